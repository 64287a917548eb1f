#include "workflow/kpi.h"

#include "workflow/goals.h"

#include <rapidjson/document.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>

namespace fls::workflow {

namespace {

std::string Str(const rapidjson::Value& o, const char* name, const std::string& where, bool required = true) {
  if (!o.IsObject() || !o.HasMember(name)) {
    if (required) throw std::invalid_argument(where + ": \"" + name + "\" is required");
    return "";
  }
  if (!o[name].IsString() || (required && o[name].GetStringLength() == 0)) {
    throw std::invalid_argument(where + ": \"" + name + "\" must be a non-empty string");
  }
  return std::string(o[name].GetString(), o[name].GetStringLength());
}

int Int(const rapidjson::Value& o, const char* name, const std::string& where, int lo, int hi) {
  if (!o.HasMember(name)) return 0;
  if (!o[name].IsInt() || o[name].GetInt() < lo || o[name].GetInt() > hi) {
    throw std::invalid_argument(where + ": \"" + name + "\" must be a whole number from " + std::to_string(lo) + " to " +
                                std::to_string(hi));
  }
  return o[name].GetInt();
}

std::vector<KpiDefinition::Band> Bands(const rapidjson::Value& v, const std::string& where) {
  std::vector<KpiDefinition::Band> out;
  if (!v.IsArray()) throw std::invalid_argument(where + ": \"bands\" must be an array");
  for (rapidjson::SizeType i = 0; i < v.Size(); ++i) {
    const std::string w = where + " band " + std::to_string(i);
    KpiDefinition::Band b;
    b.code = Str(v[i], "code", w);
    const bool has_min = v[i].HasMember("min"), has_above = v[i].HasMember("above");
    if (has_min == has_above) throw std::invalid_argument(w + ": give exactly one of \"min\" (>=) or \"above\" (>)");
    const auto& n = v[i][has_min ? "min" : "above"];
    if (!n.IsNumber() || n.GetDouble() < 0 || n.GetDouble() > 1) throw std::invalid_argument(w + ": the bound is a proportion from 0 to 1");
    b.min = n.GetDouble();
    b.min_exclusive = has_above;
    if (!out.empty() && b.min > out.back().min) throw std::invalid_argument(w + ": bands go from the best to the worst");
    out.push_back(b);
  }
  return out;
}

bool InWindow(int64_t day, int64_t index_day, int window_days) {
  const int64_t d = day - index_day;
  return d >= 0 && (window_days == 0 || d <= window_days);
}

// The events the indicators read, interned once.
const std::string_view kEnrol = EventDays::Intern("enrol"), kExclude = EventDays::Intern("exclude"),
                       kFalls = EventDays::Intern("falls-assessment"), kExercise = EventDays::Intern("exercise-started"),
                       kDecideTreatment = EventDays::Intern("decide-treatment"),
                       kTreatmentStarted = EventDays::Intern("treatment-started");

std::optional<int64_t> First(const KpiCase& c, std::string_view interned) { return c.first_event_day.FindInterned(interned); }

enum class Milestone { kIdentification, kAssessment, kDxa, kTreatment, kNone };
Milestone MilestoneOf(const std::string& m) {
  if (m == "identification") return Milestone::kIdentification;
  if (m == "assessment") return Milestone::kAssessment;
  if (m == "dxa") return Milestone::kDxa;
  if (m == "treatment") return Milestone::kTreatment;
  return Milestone::kNone;
}

std::optional<int64_t> MilestoneDay(const KpiCase& c, Milestone milestone) {
  switch (milestone) {
    case Milestone::kIdentification: return c.identified_day ? std::optional<int64_t>(c.identified_day) : std::nullopt;
    case Milestone::kAssessment: return AssessedDay(c);
    case Milestone::kDxa: return c.dxa_result_day;
    case Milestone::kTreatment: return First(c, kTreatmentStarted);
    case Milestone::kNone: break;
  }
  return std::nullopt;
}

}  // namespace

void EventDays::Set(std::string_view event, int64_t day) {
  for (auto& [name, d] : days_) {
    if (name == event) {
      d = day;
      return;
    }
  }
  days_.emplace_back(Intern(event), day);
}

// The event names seen by this process, each stored once (the pathway's event codes: a few dozen).
std::string_view EventDays::Intern(std::string_view name) {
  static std::mutex mutex;
  static std::set<std::string, std::less<>> names;
  std::lock_guard<std::mutex> lock(mutex);
  auto it = names.find(name);
  if (it == names.end()) it = names.emplace(name).first;
  return *it;
}

std::optional<int64_t> EventDays::FindInterned(std::string_view interned) const {
  for (const auto& [name, d] : days_) {
    if (name.data() == interned.data()) return d;
  }
  return std::nullopt;
}

std::optional<int64_t> EventDays::Find(std::string_view event) const {
  for (const auto& [name, d] : days_) {
    if (name == event) return d;
  }
  return std::nullopt;
}

std::optional<int64_t> AssessedDay(const KpiCase& c) {
  auto e = First(c, kEnrol), x = First(c, kExclude);
  if (e && x) return std::min(*e, *x);
  return e ? e : x;
}

bool KeyFieldsFilled(const KpiCase& c) {
  if (c.index_day == 0 || c.site.empty() || c.index_site.empty() || c.index_site == "unspecified") return false;
  if (!AssessedDay(c)) return false;
  if (First(c, kEnrol) && (!c.has_phone || !c.has_referring_physician)) return false;
  return true;
}

static bool Adherent(const KpiCase& c, const KpiDefinition& def) {
  return AdherentAt(c, def.at_days, def.contact_from_days, def.contact_to_days);
}

bool AdherentAt(const KpiCase& c, int at_days, int contact_from_days, int contact_to_days) {
  const KpiCase::Contact* last = nullptr;
  for (const auto& k : c.contacts) {
    const int64_t d = k.day - c.index_day;
    if (!k.reached || !k.adherent || d < contact_from_days || d > contact_to_days) continue;
    if (!last || k.day >= last->day) last = &k;
  }
  if (last && *last->adherent) return true;
  const int64_t at = c.index_day + at_days;
  for (const auto& dsp : c.dispenses) {
    if (dsp.days_supply > 0 && dsp.day <= at && at < dsp.day + dsp.days_supply) return true;
  }
  return false;
}

const std::vector<std::string>& KpiKinds() {
  static const std::vector<std::string> k = {
      "data-completeness", "identification", "spine-identified", "assessment",  "dxa",        "falls-assessment",
      "therapy-recommended", "strength-balance", "monitoring", "treatment-started", "adherence", "median-days",
      "refracture", "active-sites", "hip-vertebral-change", "treatment-gap"};
  return k;
}

bool KpiDefinition::proportion() const { return kind != "median-days" && !ratio(); }
bool KpiDefinition::ratio() const { return kind == "active-sites" || kind == "hip-vertebral-change"; }
bool KpiDefinition::decrease() const {
  return kind == "refracture" || kind == "median-days" || kind == "hip-vertebral-change" || kind == "treatment-gap";
}

namespace {
std::vector<const KpiCase*> Pointers(const std::vector<KpiCase>& cases) {
  std::vector<const KpiCase*> out;
  out.reserve(cases.size());
  for (const auto& c : cases) out.push_back(&c);
  return out;
}
}  // namespace

std::vector<std::string> ActiveSites(const std::vector<KpiCase>& cases, int minimum_cases) {
  return ActiveSites(Pointers(cases), minimum_cases);
}

KpiPopulations EvaluateKpi(const KpiDefinition& def, const std::vector<KpiCase>& cases, const KpiContext& ctx) {
  return EvaluateKpi(def, Pointers(cases), ctx);
}

std::vector<std::string> ActiveSites(const std::vector<const KpiCase*>& cases, int minimum_cases) {
  std::map<std::string_view, int> per_site;
  for (const KpiCase* c : cases) {
    if (!c->site.empty()) ++per_site[c->site];
  }
  std::vector<std::string> out;
  for (const auto& [site, n] : per_site) {
    if (n >= minimum_cases) out.emplace_back(site);
  }
  return out;
}

KpiFramework ParseKpiFramework(const std::string& text) {
  rapidjson::Document d;
  d.Parse(text.c_str(), text.size());
  if (d.HasParseError() || !d.IsObject()) throw std::invalid_argument("KPI framework: not a JSON object");
  KpiFramework f;
  f.id = Str(d, "framework", "KPI framework");
  f.title = Str(d, "title", "KPI framework " + f.id);
  f.source = Str(d, "source", "KPI framework " + f.id);
  const std::string prefix = Str(d, "idPrefix", "KPI framework " + f.id, false);
  std::vector<KpiDefinition::Band> default_bands;
  if (d.HasMember("bands")) default_bands = Bands(d["bands"], "KPI framework " + f.id);
  if (!d.HasMember("measures") || !d["measures"].IsArray() || d["measures"].Empty()) {
    throw std::invalid_argument("KPI framework " + f.id + ": \"measures\" must be a non-empty array");
  }
  std::set<std::string> ids;
  for (rapidjson::SizeType i = 0; i < d["measures"].Size(); ++i) {
    const auto& o = d["measures"][i];
    std::string where = "KPI framework " + f.id + " measure " + std::to_string(i);
    KpiDefinition k;
    k.framework = f.id;
    k.number = Int(o, "number", where, 1, 99);
    k.id = Str(o, "id", where, false);
    if (k.id.empty()) {
      if (prefix.empty() || k.number == 0) throw std::invalid_argument(where + ": needs an \"id\", or a \"number\" and the framework's \"idPrefix\"");
      k.id = prefix + std::to_string(k.number);
    }
    for (char c : k.id) {
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.') || k.id.size() > 64) {
        throw std::invalid_argument(where + ": the id " + k.id + " is not a FHIR id");
      }
    }
    where += " (" + k.id + ")";
    if (!ids.insert(k.id).second) throw std::invalid_argument(where + ": listed twice");
    k.kind = Str(o, "kind", where);
    if (std::find(KpiKinds().begin(), KpiKinds().end(), k.kind) == KpiKinds().end()) {
      throw std::invalid_argument(where + ": unknown kind " + k.kind + " (docs/kpis.md lists them)");
    }
    k.title = Str(o, "title", where);
    k.description = Str(o, "description", where);
    k.source = Str(o, "source", where);
    k.window_days = Int(o, "windowDays", where, 1, 3650);
    k.contact_from_days = Int(o, "contactFromDays", where, 0, 3650);
    k.contact_to_days = Int(o, "contactToDays", where, 0, 3650);
    k.at_days = Int(o, "atDays", where, 1, 3650);
    if (o.HasMember("nonSpinalOnly")) {
      if (!o["nonSpinalOnly"].IsBool()) throw std::invalid_argument(where + ": \"nonSpinalOnly\" must be true or false");
      k.non_spinal_only = o["nonSpinalOnly"].GetBool();
    }
    k.milestone = Str(o, "milestone", where, false);
    const bool windowed = k.kind == "assessment" || k.kind == "dxa" || k.kind == "strength-balance" ||
                          k.kind == "monitoring" || k.kind == "treatment-started" || k.kind == "refracture";
    if (windowed && k.window_days == 0) throw std::invalid_argument(where + ": kind " + k.kind + " needs \"windowDays\"");
    if (k.kind == "adherence" && (k.at_days == 0 || k.contact_to_days < k.contact_from_days || k.contact_to_days == 0)) {
      throw std::invalid_argument(where + ": adherence needs \"atDays\" and \"contactFromDays\" <= \"contactToDays\"");
    }
    if (k.kind == "median-days" && k.milestone != "identification" && k.milestone != "assessment" && k.milestone != "dxa" &&
        k.milestone != "treatment") {
      throw std::invalid_argument(where + ": median-days needs \"milestone\": identification, assessment, dxa or treatment");
    }
    k.bands = o.HasMember("bands") ? Bands(o["bands"], where) : (k.proportion() && k.kind != "refracture" && k.kind != "treatment-gap" ? default_bands
                                                                                                      : std::vector<KpiDefinition::Band>{});
    f.measures.push_back(std::move(k));
  }
  return f;
}

bool ExcludedFromDenominators(const KpiCase& c) {
  return First(c, kExclude) && (c.exclude_reason == "not-fragility" || c.exclude_reason == "pathological");
}

std::optional<double> Median(std::vector<double> v) {
  if (v.empty()) return std::nullopt;
  const size_t n = v.size();
  auto mid = v.begin() + static_cast<std::ptrdiff_t>(n / 2);
  std::nth_element(v.begin(), mid, v.end());
  if (n % 2) return *mid;
  return (*std::max_element(v.begin(), mid) + *mid) / 2.0;  // the largest of the lower half
}

namespace {
// The kinds and milestones as numbers: an evaluation compares them once per case.
enum class Kind { kDataCompleteness, kIdentification, kSpineIdentified, kAssessment, kDxa, kFallsAssessment, kTherapyRecommended, kStrengthBalance, kMonitoring, kTreatmentStarted, kAdherence, kMedianDays, kRefracture, kActiveSites, kHipVertebralChange, kTreatmentGap, kUnknown };
Kind KindOf(const std::string& kind) {
  if (kind == "data-completeness") return Kind::kDataCompleteness;
  if (kind == "identification") return Kind::kIdentification;
  if (kind == "spine-identified") return Kind::kSpineIdentified;
  if (kind == "assessment") return Kind::kAssessment;
  if (kind == "dxa") return Kind::kDxa;
  if (kind == "falls-assessment") return Kind::kFallsAssessment;
  if (kind == "therapy-recommended") return Kind::kTherapyRecommended;
  if (kind == "strength-balance") return Kind::kStrengthBalance;
  if (kind == "monitoring") return Kind::kMonitoring;
  if (kind == "treatment-started") return Kind::kTreatmentStarted;
  if (kind == "adherence") return Kind::kAdherence;
  if (kind == "median-days") return Kind::kMedianDays;
  if (kind == "refracture") return Kind::kRefracture;
  if (kind == "active-sites") return Kind::kActiveSites;
  if (kind == "hip-vertebral-change") return Kind::kHipVertebralChange;
  if (kind == "treatment-gap") return Kind::kTreatmentGap;
  return Kind::kUnknown;
}
}  // namespace

namespace {

// One Measure being evaluated: its definition read once, and its populations so far.
struct Evaluation {
  const KpiDefinition* def;
  Kind kind;
  Milestone milestone;
  KpiPopulations out;
};

void Add(std::vector<std::string_view>& list, int64_t& count, const KpiCase& c, bool lists) {
  ++count;
  if (lists) list.push_back(c.episode_id);
}

// What case `c` adds to one Measure's populations (`excluded`: ExcludedFromDenominators(c)).
void Visit(Evaluation& e, const KpiCase& c, bool excluded, const KpiContext& ctx, bool lists) {
  const KpiDefinition& def = *e.def;
  KpiPopulations& out = e.out;
  const Kind kind = e.kind;
  Add(out.initial, out.initial_count, c, lists);
  if (kind == Kind::kMedianDays) {
    if (excluded) {
      Add(out.exclusion, out.exclusion_count, c, lists);
      return;
    }
    auto day = MilestoneDay(c, e.milestone);
    if (!day || *day < c.index_day) return;
    Add(out.denominator, out.denominator_cases, c, lists);  // the measure population
    out.observations.push_back(static_cast<double>(*day - c.index_day));
    return;
  }
  if (kind == Kind::kIdentification) {
    if (!excluded && !(def.non_spinal_only && c.index_site == "vertebra")) Add(out.numerator, out.numerator_count, c, lists);
    return;
  }
  // Who is in the denominator.
  bool in_denominator = true;
  switch (kind) {
    case Kind::kDxa: in_denominator = c.dxa_ordered; break;
    case Kind::kTherapyRecommended: in_denominator = First(c, kEnrol).has_value(); break;
    case Kind::kStrengthBalance: in_denominator = c.index_site != "hip"; break;
    case Kind::kMonitoring:
    case Kind::kTreatmentStarted: in_denominator = First(c, kDecideTreatment).has_value(); break;
    case Kind::kAdherence:
      in_denominator = First(c, kTreatmentStarted).has_value() && c.index_day + def.at_days <= ctx.evaluation_day;
      break;
    case Kind::kRefracture: in_denominator = c.index_day + def.window_days <= ctx.evaluation_day; break;
    case Kind::kTreatmentGap:  // followed the whole window, when there is one
      in_denominator = def.window_days == 0 || c.index_day + def.window_days <= ctx.evaluation_day;
      break;
    default: break;
  }
  if (!in_denominator) return;
  Add(out.denominator, out.denominator_cases, c, lists);
  if (excluded) {
    Add(out.exclusion, out.exclusion_count, c, lists);
    return;
  }
  bool met = false;
  switch (kind) {
    case Kind::kDataCompleteness: met = KeyFieldsFilled(c); break;
    case Kind::kSpineIdentified: met = c.index_site == "vertebra"; break;
    case Kind::kAssessment: {
      auto d = AssessedDay(c);
      met = d && InWindow(*d, c.index_day, def.window_days);
      break;
    }
    case Kind::kDxa: met = c.dxa_result_day && InWindow(*c.dxa_result_day, c.index_day, def.window_days); break;
    case Kind::kFallsAssessment: met = First(c, kFalls).has_value(); break;
    case Kind::kTherapyRecommended: met = First(c, kDecideTreatment).has_value(); break;
    case Kind::kStrengthBalance: {
      auto d = First(c, kExercise);
      met = d && InWindow(*d, c.index_day, def.window_days);
      break;
    }
    case Kind::kMonitoring:
      for (const auto& k : c.contacts) met = met || (k.reached && InWindow(k.day, c.index_day, def.window_days));
      break;
    case Kind::kTreatmentStarted: {
      auto d = First(c, kTreatmentStarted);
      met = d && InWindow(*d, c.index_day, def.window_days);
      break;
    }
    case Kind::kAdherence: met = Adherent(c, def); break;
    case Kind::kRefracture:
      for (int64_t d : c.later_fracture_days) met = met || (d > c.index_day && d - c.index_day <= def.window_days);
      break;
    case Kind::kTreatmentGap: {
      // No treatment started (within the window, when there is one): the gap an FLS closes.
      auto d = First(c, kTreatmentStarted);
      met = !(d && InWindow(*d, c.index_day, def.window_days));
      break;
    }
    default: break;
  }
  if (met) Add(out.numerator, out.numerator_count, c, lists);
}

// The score and band once every case was seen.
void Score(Evaluation& e, const KpiContext& ctx) {
  const KpiDefinition& def = *e.def;
  KpiPopulations& out = e.out;
  if (e.kind == Kind::kMedianDays) {
    out.score = Median(out.observations);
    return;
  }
  if (e.kind == Kind::kIdentification) {
    out.denominator_count = ctx.expected_caseload;
    if (ctx.expected_caseload && *ctx.expected_caseload > 0) {
      out.score = static_cast<double>(out.numerator_count) / static_cast<double>(*ctx.expected_caseload);
    }
  } else {
    const int64_t effective = out.denominator_cases - out.exclusion_count;
    if (effective > 0) out.score = static_cast<double>(out.numerator_count) / static_cast<double>(effective);
  }
  if (out.score) {
    for (const auto& b : def.bands) {
      if (b.min_exclusive ? *out.score > b.min : *out.score >= b.min) {
        out.band = b.code;
        break;
      }
    }
  }
}

KpiPopulations Ratio(const KpiDefinition& def, const KpiContext& ctx) {
  KpiPopulations out;
  out.initial = ctx.period_units;
  out.numerator = ctx.period_units;
  out.denominator = ctx.baseline_units;
  const auto n = static_cast<int64_t>(ctx.period_units.size()), d = static_cast<int64_t>(ctx.baseline_units.size());
  out.initial_count = out.numerator_count = n;
  out.denominator_cases = d;
  if (KindOf(def.kind) == Kind::kActiveSites) {
    if (d > 0) out.score = static_cast<double>(n) / static_cast<double>(d);
  } else {
    out.score = RateRatio(n, ctx.period_days, d, ctx.baseline_days);
  }
  return out;
}

}  // namespace

struct KpiEvaluator::Impl {
  std::vector<const KpiDefinition*> defs;
  KpiContext ctx;
  bool lists = false;
  std::vector<Evaluation> evals;  // the Measures counted case by case
  std::vector<size_t> where;      // evals[i] is defs[where[i]]
};

KpiEvaluator::KpiEvaluator(std::vector<const KpiDefinition*> defs, KpiContext ctx, bool lists) : impl_(std::make_unique<Impl>()) {
  impl_->defs = std::move(defs);
  impl_->ctx = std::move(ctx);
  impl_->lists = lists;
  for (size_t i = 0; i < impl_->defs.size(); ++i) {
    const KpiDefinition* d = impl_->defs[i];
    if (d->ratio()) continue;
    impl_->evals.push_back({d, KindOf(d->kind), MilestoneOf(d->milestone), {}});
    impl_->where.push_back(i);
  }
}
KpiEvaluator::~KpiEvaluator() = default;
KpiEvaluator::KpiEvaluator(KpiEvaluator&&) noexcept = default;
KpiEvaluator& KpiEvaluator::operator=(KpiEvaluator&&) noexcept = default;

void KpiEvaluator::Add(const KpiCase& c) { Add(c, ExcludedFromDenominators(c)); }

void KpiEvaluator::Add(const KpiCase& c, bool excluded) {
  for (auto& e : impl_->evals) Visit(e, c, excluded, impl_->ctx, impl_->lists);
}

std::vector<KpiPopulations> KpiEvaluator::Finish() {
  std::vector<KpiPopulations> out(impl_->defs.size());
  for (size_t i = 0; i < impl_->defs.size(); ++i) {
    if (impl_->defs[i]->ratio()) out[i] = Ratio(*impl_->defs[i], impl_->ctx);
  }
  for (size_t i = 0; i < impl_->evals.size(); ++i) {
    Score(impl_->evals[i], impl_->ctx);
    out[impl_->where[i]] = std::move(impl_->evals[i].out);
  }
  impl_->evals.clear();
  return out;
}

std::vector<KpiPopulations> EvaluateKpis(const std::vector<const KpiDefinition*>& defs, const std::vector<const KpiCase*>& cases,
                                         const KpiContext& ctx, bool lists) {
  // Case by case, every Measure: a case is read from memory once, whatever the number of Measures.
  KpiEvaluator e(defs, ctx, lists);
  for (const KpiCase* c : cases) e.Add(*c);
  return e.Finish();
}

KpiPopulations EvaluateKpi(const KpiDefinition& def, const std::vector<const KpiCase*>& cases, const KpiContext& ctx) {
  return std::move(EvaluateKpis({&def}, cases, ctx, true)[0]);
}

}  // namespace fls::workflow
