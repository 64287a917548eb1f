#include "workflow/kpi.h"

#include "workflow/goals.h"

#include <rapidjson/document.h>

#include <algorithm>
#include <map>
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

std::optional<int64_t> First(const KpiCase& c, const char* event) {
  auto it = c.first_event_day.find(event);
  if (it == c.first_event_day.end()) return std::nullopt;
  return it->second;
}

std::optional<int64_t> MilestoneDay(const KpiCase& c, const std::string& milestone) {
  if (milestone == "identification") return c.identified_day ? std::optional<int64_t>(c.identified_day) : std::nullopt;
  if (milestone == "assessment") return AssessedDay(c);
  if (milestone == "dxa") return c.dxa_result_day;
  if (milestone == "treatment") return First(c, "treatment-started");
  return std::nullopt;
}

}  // namespace

std::optional<int64_t> AssessedDay(const KpiCase& c) {
  auto e = First(c, "enrol"), x = First(c, "exclude");
  if (e && x) return std::min(*e, *x);
  return e ? e : x;
}

bool KeyFieldsFilled(const KpiCase& c) {
  if (c.index_day == 0 || c.site.empty() || c.index_site.empty() || c.index_site == "unspecified") return false;
  if (!AssessedDay(c)) return false;
  if (First(c, "enrol") && (!c.has_phone || !c.has_referring_physician)) return false;
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

std::vector<std::string> ActiveSites(const std::vector<KpiCase>& cases, int minimum_cases) {
  std::map<std::string, int> per_site;
  for (const auto& c : cases) {
    if (!c.site.empty()) ++per_site[c.site];
  }
  std::vector<std::string> out;
  for (const auto& [site, n] : per_site) {
    if (n >= minimum_cases) out.push_back(site);
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
  return First(c, "exclude") && (c.exclude_reason == "not-fragility" || c.exclude_reason == "pathological");
}

std::optional<double> Median(std::vector<double> v) {
  if (v.empty()) return std::nullopt;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

KpiPopulations EvaluateKpi(const KpiDefinition& def, const std::vector<KpiCase>& cases, const KpiContext& ctx) {
  KpiPopulations out;
  const std::string& kind = def.kind;
  if (def.ratio()) {
    out.initial = ctx.period_units;
    out.numerator = ctx.period_units;
    out.denominator = ctx.baseline_units;
    const auto n = static_cast<int64_t>(ctx.period_units.size()), d = static_cast<int64_t>(ctx.baseline_units.size());
    if (kind == "active-sites") {
      if (d > 0) out.score = static_cast<double>(n) / static_cast<double>(d);
    } else {
      out.score = RateRatio(n, ctx.period_days, d, ctx.baseline_days);
    }
    return out;
  }
  for (const auto& c : cases) {
    out.initial.push_back(c.episode_id);
    const bool excluded = ExcludedFromDenominators(c);
    if (kind == "median-days") {
      if (excluded) {
        out.exclusion.push_back(c.episode_id);
        continue;
      }
      auto day = MilestoneDay(c, def.milestone);
      if (!day || *day < c.index_day) continue;
      out.denominator.push_back(c.episode_id);  // the measure population
      out.observations.push_back(static_cast<double>(*day - c.index_day));
      continue;
    }
    if (kind == "identification") {
      if (!excluded && !(def.non_spinal_only && c.index_site == "vertebra")) out.numerator.push_back(c.episode_id);
      continue;
    }
    // Who is in the denominator.
    bool in_denominator = true;
    if (kind == "dxa") in_denominator = c.dxa_ordered;
    else if (kind == "therapy-recommended") in_denominator = First(c, "enrol").has_value();
    else if (kind == "strength-balance") in_denominator = c.index_site != "hip";
    else if (kind == "monitoring" || kind == "treatment-started") in_denominator = First(c, "decide-treatment").has_value();
    else if (kind == "adherence") {
      in_denominator = First(c, "treatment-started").has_value() && c.index_day + def.at_days <= ctx.evaluation_day;
    } else if (kind == "refracture") {
      in_denominator = c.index_day + def.window_days <= ctx.evaluation_day;
    } else if (kind == "treatment-gap" && def.window_days) {
      in_denominator = c.index_day + def.window_days <= ctx.evaluation_day;  // followed the whole window
    }
    if (!in_denominator) continue;
    out.denominator.push_back(c.episode_id);
    if (excluded) {
      out.exclusion.push_back(c.episode_id);
      continue;
    }
    bool met = false;
    if (kind == "data-completeness") {
      met = KeyFieldsFilled(c);
    } else if (kind == "spine-identified") {
      met = c.index_site == "vertebra";
    } else if (kind == "assessment") {
      auto d = AssessedDay(c);
      met = d && InWindow(*d, c.index_day, def.window_days);
    } else if (kind == "dxa") {
      met = c.dxa_result_day && InWindow(*c.dxa_result_day, c.index_day, def.window_days);
    } else if (kind == "falls-assessment") {
      met = First(c, "falls-assessment").has_value();
    } else if (kind == "therapy-recommended") {
      met = First(c, "decide-treatment").has_value();
    } else if (kind == "strength-balance") {
      auto d = First(c, "exercise-started");
      met = d && InWindow(*d, c.index_day, def.window_days);
    } else if (kind == "monitoring") {
      for (const auto& k : c.contacts) met = met || (k.reached && InWindow(k.day, c.index_day, def.window_days));
    } else if (kind == "treatment-started") {
      auto d = First(c, "treatment-started");
      met = d && InWindow(*d, c.index_day, def.window_days);
    } else if (kind == "adherence") {
      met = Adherent(c, def);
    } else if (kind == "refracture") {
      for (int64_t d : c.later_fracture_days) met = met || (d > c.index_day && d - c.index_day <= def.window_days);
    } else if (kind == "treatment-gap") {
      // No treatment started (within the window, when there is one): the gap an FLS closes.
      auto d = First(c, "treatment-started");
      met = !(d && InWindow(*d, c.index_day, def.window_days));
    }
    if (met) out.numerator.push_back(c.episode_id);
  }
  if (kind == "median-days") {
    out.score = Median(out.observations);
    return out;
  }
  if (kind == "identification") {
    out.denominator_count = ctx.expected_caseload;
    if (ctx.expected_caseload && *ctx.expected_caseload > 0) {
      out.score = static_cast<double>(out.numerator.size()) / static_cast<double>(*ctx.expected_caseload);
    }
  } else {
    const size_t effective = out.denominator.size() - out.exclusion.size();
    if (effective > 0) out.score = static_cast<double>(out.numerator.size()) / static_cast<double>(effective);
  }
  if (out.score) {
    for (const auto& b : def.bands) {
      if (b.min_exclusive ? *out.score > b.min : *out.score >= b.min) {
        out.band = b.code;
        break;
      }
    }
  }
  return out;
}

}  // namespace fls::workflow
