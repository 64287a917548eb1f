#include "fhir/dashboard.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include "fhir/error.h"
#include "fhir/fhir_date.h"
#include "fhir/kpi_cohort.h"
#include "workflow/civil_date.h"

namespace fls::fhir {

namespace {

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;
using kpi_detail::Slice;

void Str(Writer& w, const char* key, const std::string& v) {
  w.Key(key);
  w.String(v.c_str(), static_cast<rapidjson::SizeType>(v.size()));
}
void Text(Writer& w, const std::string& v) { w.String(v.c_str(), static_cast<rapidjson::SizeType>(v.size())); }
void Number(Writer& w, const char* key, std::optional<double> v, int decimals = 4) {
  w.Key(key);
  if (!v) {
    w.Null();
    return;
  }
  const double scale = std::pow(10.0, decimals);
  w.Double(std::round(*v * scale) / scale);
}
void Count(Writer& w, const char* key, int64_t v) {
  w.Key(key);
  w.Int64(v);
}

// A decimal from 0 to 1 (a what-if rate); 400 naming the parameter otherwise.
std::optional<double> Rate(const std::map<std::string, std::string>& v, const char* name) {
  auto it = v.find(name);
  if (it == v.end()) return std::nullopt;
  const std::string& s = it->second;
  bool ok = !s.empty() && s.size() <= 12;
  int dots = 0;
  for (char c : s) {
    if (c == '.') ++dots;
    else ok = ok && std::isdigit(static_cast<unsigned char>(c));
  }
  ok = ok && dots <= 1 && s.front() != '.' && s.back() != '.';
  double d = ok ? std::stod(s) : -1;
  if (!ok || d < 0 || d > 1) throw FhirError(ErrorCode::kBadRequest, std::string(name) + " must be a decimal from 0 to 1", name);
  return d;
}

struct Quarter {
  int64_t from = 0, to = 0;
};
// The calendar quarters the period meets, each cut to the period.
std::vector<Quarter> Quarters(int64_t from, int64_t to) {
  std::vector<Quarter> out;
  int y;
  unsigned m, d;
  workflow::CivilFromDays(from, y, m, d);
  unsigned qm = (m - 1) / 3 * 3 + 1;
  while (true) {
    const int64_t qs = workflow::CivilDay(y, qm, 1);
    if (qs > to) break;
    int ny = y;
    unsigned nm = qm + 3;
    if (nm > 12) {
      nm -= 12;
      ++ny;
    }
    const int64_t qe = workflow::CivilDay(ny, nm, 1) - 1;
    out.push_back({std::max(qs, from), std::min(qe, to)});
    y = ny;
    qm = nm;
  }
  return out;
}

void Value(Writer& w, const workflow::KpiDefinition& def, const workflow::KpiPopulations& p) {
  w.StartObject();
  if (def.ratio()) {
    Count(w, "numerator", p.numerator_count);
    Count(w, "denominator", p.denominator_cases);
  } else if (def.proportion()) {
    Count(w, "initial", p.initial_count);
    Count(w, "numerator", p.numerator_count);
    Count(w, "denominator", def.kind == "identification" ? p.denominator_count.value_or(0)
                                                         : p.denominator_cases);
    Count(w, "exclusion", p.exclusion_count);
  } else {
    Count(w, "initial", p.initial_count);
    Count(w, "observations", static_cast<int64_t>(p.observations.size()));
  }
  Number(w, "score", p.score, def.proportion() || def.ratio() ? 4 : 1);
  w.Key("band");
  if (p.band.empty()) w.Null();
  else Text(w, p.band);
  w.EndObject();
}

struct Evaluated {
  std::map<std::string, workflow::KpiPopulations> by_id;
  std::optional<double> Score(const std::string& id) const {
    auto it = by_id.find(id);
    return it == by_id.end() ? std::nullopt : it->second.score;
  }
};

void Values(Writer& w, const std::vector<const workflow::KpiDefinition*>& defs, const Evaluated& e) {
  w.Key("values");
  w.StartObject();
  for (const auto* d : defs) {
    w.Key(d->id.c_str());
    Value(w, *d, e.by_id.at(d->id));
  }
  w.EndObject();
}

void Levels(Writer& w, const workflow::GoalsConfig& goals, const Evaluated& e) {
  w.Key("bpf");
  w.StartObject();
  w.Key("levels");
  w.StartObject();
  std::vector<std::string> all;
  for (const auto& s : goals.bpf) {
    const std::string level = workflow::BpfLevel(s, e.Score(s.measure));
    all.push_back(level);
    w.Key(std::to_string(s.number).c_str());
    if (level.empty()) w.Null();
    else Text(w, level);
  }
  w.EndObject();
  const std::string overall = workflow::OverallBpfLevel(all);
  w.Key("overall");
  if (overall.empty()) w.Null();
  else Text(w, overall);
  w.EndObject();
}

// The patients the FLS reached in the slice, per year: its cases less the exclusions as not a
// fragility fracture or pathological.
double PatientsPerYear(const Slice& s) {
  return s.days > 0 ? static_cast<double>(s.reached) * 365.2425 / static_cast<double>(s.days) : 0;
}

workflow::ProjectionInput Measured(const workflow::ProjectionConfig& pc, const Slice& s, const Evaluated& e) {
  workflow::ProjectionInput in;
  in.patients_per_year = PatientsPerYear(s);
  in.capture = e.Score(pc.capture_measure);
  in.treatment = e.Score(pc.treatment_measure);
  in.adherence = e.Score(pc.adherence_measure);
  return in;
}

void WriteRates(Writer& w, const char* key, const workflow::ProjectionRates& r) {
  w.Key(key);
  w.StartObject();
  Number(w, "treatment", r.treatment);
  Number(w, "adherence", r.adherence);
  Number(w, "bmdTesting", r.bmd_testing);
  Number(w, "refracture", r.refracture);
  Str(w, "source", r.source);
  w.EndObject();
}

void WriteProjection(Writer& w, const workflow::ProjectionConfig& pc, const workflow::ProjectionInput& measured,
                     const workflow::ProjectionInput& what_if) {
  const workflow::Projection p = workflow::Project(pc, measured, what_if);
  w.Key("projection");
  w.StartObject();
  auto rates = [&](const char* key, const workflow::ProjectionInput& in, bool with_patients) {
    w.Key(key);
    w.StartObject();
    if (with_patients) Number(w, "patientsPerYear", in.patients_per_year, 1);
    Number(w, "capture", in.capture);
    Number(w, "treatment", in.treatment);
    Number(w, "adherence", in.adherence);
    w.EndObject();
  };
  rates("measured", measured, true);
  rates("whatIf", what_if, false);
  w.Key("missing");
  w.StartArray();
  for (const auto& m : p.missing) Text(w, m);
  w.EndArray();
  Number(w, "patientsPerYear", p.patients_per_year, 1);
  Number(w, "effectivelyTreated", p.missing.empty() ? std::optional<double>(p.effectively_treated) : std::nullopt);
  w.Key("points");
  w.StartArray();
  for (const auto& pt : p.points) {
    w.StartObject();
    Count(w, "years", pt.years);
    Number(w, "expectedRefractures", pt.expected_refractures, 1);
    Number(w, "avoided", pt.avoided, 1);
    Number(w, "avoidedBeyondUsualCare", pt.avoided_beyond_usual_care, 1);
    w.EndObject();
  }
  w.EndArray();
  w.Key("method");
  w.StartObject();
  Str(w, "captureMeasure", pc.capture_measure);
  Str(w, "treatmentMeasure", pc.treatment_measure);
  Str(w, "adherenceMeasure", pc.adherence_measure);
  Number(w, "annualRefractureRisk", pc.annual_refracture_risk);
  Str(w, "annualRefractureRiskSource", pc.annual_refracture_risk_source);
  Number(w, "treatmentRiskReduction", pc.treatment_risk_reduction);
  Str(w, "treatmentRiskReductionSource", pc.treatment_risk_reduction_source);
  WriteRates(w, "usualCare", pc.usual_care);
  WriteRates(w, "withFls", pc.with_fls);
  w.EndObject();
  w.EndObject();
}

// The answer's first members: the period and, when there is one, the subject.
void PeriodAndSubject(Writer& w, const std::string& start, const std::string& end, const std::string& subject) {
  w.Key("period");
  w.StartObject();
  Str(w, "start", start);
  Str(w, "end", end);
  w.EndObject();
  if (!subject.empty()) Str(w, "subject", subject);
}

const workflow::GoalsConfig& Goals(const MeasureConfig& config) {
  if (!config.goals) throw FhirError(ErrorCode::kNotFound, "the Capture the Fracture goals are not configured");
  return *config.goals;
}

}  // namespace

DashboardRequest ParseDashboardRequest(const MeasureCatalog& catalog, const std::vector<QueryParam>& query) {
  DashboardRequest r;
  auto v = kpi_detail::OnceEach(query, {"periodStart", "periodEnd", "subject", "framework", "baselineStart", "baselineEnd"});
  r.period_start = v["periodStart"];
  r.period_end = v["periodEnd"];
  r.subject = v["subject"];
  if (v.count("framework")) r.framework = v["framework"];
  r.baseline_start = v["baselineStart"];
  r.baseline_end = v["baselineEnd"];
  kpi_detail::CheckPeriod(r.period_start, r.period_end);
  kpi_detail::CheckSubject(r.subject);
  bool known = false;
  std::string names;
  for (const auto& f : catalog.frameworks()) {
    if (f.id == "fls" || f.id == "ctf") continue;
    known = known || f.id == r.framework;
    names += (names.empty() ? "" : ", ") + f.id;
  }
  if (!known) throw FhirError(ErrorCode::kBadRequest, "framework must be one of " + names, "framework");
  if (*DayOf(r.period_end) - *DayOf(r.period_start) > 3660) {
    throw FhirError(ErrorCode::kBadRequest, "the dashboard shows at most 10 years (40 quarters)", "periodEnd");
  }
  return r;
}

std::string FlsDashboard(FhirService& service, const MeasureCatalog& catalog, const MeasureConfig& config,
                         const DashboardRequest& req, const RequestInfo& info) {
  const workflow::GoalsConfig& goals = Goals(config);
  const kpi_detail::Baseline baseline = kpi_detail::BaselineOf(config, req.baseline_start, req.baseline_end);
  // The framework's indicators, then the FLS's own (medians, refractures) and the goals.
  std::vector<const workflow::KpiDefinition*> defs;
  const workflow::KpiFramework* framework = nullptr;
  for (const auto& f : catalog.frameworks()) {
    if (f.id == req.framework) framework = &f;
  }
  for (const auto& m : framework->measures) defs.push_back(&m);
  for (const auto& f : catalog.frameworks()) {
    if (f.id != "fls" && f.id != "ctf") continue;
    for (const auto& m : f.measures) defs.push_back(&m);
  }
  // The standards and the projection read measures of other frameworks (FLS-DB's, by default).
  std::vector<const workflow::KpiDefinition*> extra;
  auto need = [&](const std::string& id) {
    const workflow::KpiDefinition* d = catalog.Find(id);
    if (!d) return;
    if (std::find(defs.begin(), defs.end(), d) == defs.end() && std::find(extra.begin(), extra.end(), d) == extra.end()) {
      extra.push_back(d);
    }
  };
  for (const auto& s : goals.bpf) need(s.measure);
  need(goals.projection.capture_measure);
  need(goals.projection.treatment_measure);
  need(goals.projection.adherence_measure);
  std::vector<const workflow::KpiDefinition*> computed = defs;
  computed.insert(computed.end(), extra.begin(), extra.end());

  kpi_detail::CohortWants wants;
  wants.site_caseloads = true;
  wants.names = true;
  wants.goals = true;
  wants.baseline_start = baseline.start;
  wants.baseline_end = baseline.end;
  wants.fracture_sites = goals.hip_vertebral_sites;
  const int64_t from = *DayOf(req.period_start), to = *DayOf(req.period_end);
  const int64_t baseline_days = *DayOf(baseline.end) - *DayOf(baseline.start) + 1;
  const int64_t today = LocalDay(NowMicros() / 1000000);
  const int min_cases = goals.active_site_minimum_cases;
  const std::vector<Quarter> quarters = Quarters(from, to);

  // The parts the cases are counted in as they are read, none kept: overall, each quarter (its
  // cases against the whole baseline) and each site's own cases (a region shows as its sites).
  struct Part {
    Slice slice;
    std::optional<workflow::KpiEvaluator> counter;
    std::vector<int64_t> by_quarter;  // a site's part: its cases in each quarter
    int64_t cases = 0;
    void Add(const workflow::KpiCase& c, bool excluded) {
      counter->Add(c, excluded);
      slice.reached += excluded ? 0 : 1;
      ++cases;
    }
    Evaluated Finish(const std::vector<const workflow::KpiDefinition*>& ds, int64_t day) {
      Evaluated e;
      std::vector<workflow::KpiPopulations> counted = counter->Finish();
      size_t next = 0;
      for (const auto* d : ds) {
        if (d->ratio()) e.by_id.emplace(d->id, kpi_detail::EvaluateOn(*d, slice, day));
        else e.by_id.emplace(d->id, std::move(counted[next++]));
      }
      return e;
    }
  };
  auto per_case = [](const std::vector<const workflow::KpiDefinition*>& ds) {
    std::vector<const workflow::KpiDefinition*> out;
    for (const auto* d : ds) {
      if (!d->ratio()) out.push_back(d);
    }
    return out;
  };
  Part whole;
  std::vector<Part> by_quarter(quarters.size());
  std::map<std::string, Part> by_site;
  auto start_part = [&](Part& part, const std::vector<const workflow::KpiDefinition*>& ds) {
    part.counter.emplace(per_case(ds), kpi_detail::ContextOn(workflow::KpiDefinition{}, part.slice, today), false);
  };
  const kpi_detail::Cohort cohort = kpi_detail::LoadCohort(
      service, config, req.period_start, req.period_end, req.subject, info, wants, [&](const kpi_detail::Cohort& figures) {
        whole.slice = kpi_detail::WholeCohort(figures, to - from + 1, baseline_days, min_cases);
        start_part(whole, computed);
        for (size_t i = 0; i < quarters.size(); ++i) {
          Slice& s = by_quarter[i].slice;
          s.days = quarters[i].to - quarters[i].from + 1;
          s.baseline_days = baseline_days;
          s.caseload_per_year = whole.slice.caseload_per_year;
          s.baseline_active_sites = whole.slice.baseline_active_sites;
          for (const auto& f : figures.fractures) {
            if (f.day >= quarters[i].from && f.day <= quarters[i].to) s.fractures.push_back(f.condition_id);
          }
          s.baseline_fractures = whole.slice.baseline_fractures;
          start_part(by_quarter[i], defs);
        }
        // A site's part, made when it is first met (a site with cases but no caseload or baseline
        // is only known from its cases).
        auto fractures = std::make_shared<std::map<std::string, std::vector<std::string>>>();
        auto baseline_fractures = std::make_shared<std::map<std::string, std::vector<std::string>>>();
        for (const auto& f : figures.fractures) (*fractures)[f.site].push_back(f.condition_id);
        for (const auto& f : figures.baseline_fractures) (*baseline_fractures)[f.site].push_back(f.condition_id);
        auto site_part = [&figures, &by_site, &start_part, &computed, &quarters, baseline_days, min_cases, fractures,
                          baseline_fractures, days = whole.slice.days](const std::string& id) -> Part& {
          auto [it, made] = by_site.try_emplace(id);
          if (!made) return it->second;
          Slice& s = it->second.slice;
          s.days = days;
          s.baseline_days = baseline_days;
          if (auto c = figures.site_caseloads.find(id); c != figures.site_caseloads.end()) s.caseload_per_year = c->second;
          if (auto b = figures.baseline_cases.find(id); b != figures.baseline_cases.end() && b->second >= min_cases) {
            s.baseline_active_sites.push_back(id);
          }
          if (auto f = fractures->find(id); f != fractures->end()) s.fractures = f->second;
          if (auto f = baseline_fractures->find(id); f != baseline_fractures->end()) s.baseline_fractures = f->second;
          start_part(it->second, computed);
          it->second.by_quarter.assign(quarters.size(), 0);
          return it->second;
        };
        for (const auto& [site, n] : figures.baseline_cases) site_part(site);
        for (const auto& [site, n] : figures.site_caseloads) site_part(site);
        // Each site's part by its id (hashed: a case's site is looked up for every case).
        auto index = std::make_shared<std::unordered_map<std::string, Part*>>();
        for (auto& [id, part] : by_site) index->emplace(id, &part);
        return [&whole, &by_quarter, &quarters, site_part, index](const workflow::KpiCase& c) {
          const bool excluded = workflow::ExcludedFromDenominators(c);
          whole.Add(c, excluded);
          auto q = std::upper_bound(quarters.begin(), quarters.end(), c.index_day,
                                    [](int64_t day, const Quarter& x) { return day < x.from; });
          const bool in_quarter = q != quarters.begin() && c.index_day <= (q - 1)->to;
          const size_t qi = in_quarter ? static_cast<size_t>(q - quarters.begin()) - 1 : 0;
          if (in_quarter) by_quarter[qi].Add(c, excluded);
          if (c.site.empty()) return;
          auto it = index->find(c.site);
          if (it == index->end()) it = index->emplace(c.site, &site_part(c.site)).first;
          it->second->Add(c, excluded);
          if (in_quarter) ++it->second->by_quarter[qi];
        };
      });
  // The active sites: of the period, and of each quarter (a site's cases in it).
  for (const auto& [id, part] : by_site) {
    if (part.cases >= min_cases) whole.slice.active_sites.push_back(id);
    for (size_t i = 0; i < quarters.size(); ++i) {
      if (part.by_quarter[i] >= min_cases) by_quarter[i].slice.active_sites.push_back(id);
    }
  }
  for (auto& [id, part] : by_site) {
    if (part.cases >= min_cases) part.slice.active_sites = {id};
  }
  const Evaluated overall = whole.Finish(computed, today);

  rapidjson::StringBuffer sb;
  Writer w(sb);
  w.StartObject();
  PeriodAndSubject(w, req.period_start, req.period_end, req.subject);
  if (!req.subject.empty()) {
    auto n = cohort.names.find(req.subject.substr(13));
    if (n != cohort.names.end()) Str(w, "subjectName", n->second);
  }
  Str(w, "framework", framework->id);
  Str(w, "frameworkTitle", framework->title);
  Str(w, "evaluated", FormatFhirInstant(NowMicros()));
  Str(w, "canonicalBase", config.canonical_base);

  w.Key("measures");
  w.StartArray();
  for (const auto* d : defs) {
    w.StartObject();
    Str(w, "id", d->id);
    Str(w, "framework", d->framework);
    if (d->number) Count(w, "number", d->number);
    Str(w, "kind", d->kind);
    Str(w, "title", d->title);
    Str(w, "description", d->description);
    Str(w, "scoring", d->ratio() ? "ratio" : d->proportion() ? "proportion" : "continuous-variable");
    Str(w, "improvement", d->decrease() ? "decrease" : "increase");
    w.Key("bands");
    w.StartArray();
    for (const auto& b : d->bands) {
      w.StartObject();
      Str(w, "code", b.code);
      Number(w, "min", b.min);
      w.Key("exclusive");
      w.Bool(b.min_exclusive);
      w.EndObject();
    }
    w.EndArray();
    w.EndObject();
  }
  w.EndArray();

  w.Key("overall");
  w.StartObject();
  Values(w, defs, overall);
  Levels(w, goals, overall);
  w.EndObject();

  w.Key("quarters");
  w.StartArray();
  for (size_t i = 0; i < quarters.size(); ++i) {
    const Evaluated e = by_quarter[i].Finish(defs, today);
    w.StartObject();
    Str(w, "start", DayText(quarters[i].from));
    Str(w, "end", DayText(quarters[i].to));
    Values(w, defs, e);
    w.EndObject();
  }
  w.EndArray();

  w.Key("sites");
  w.StartArray();
  for (auto& [id, part] : by_site) {
    const Evaluated e = part.Finish(computed, today);
    const Slice& s = part.slice;
    w.StartObject();
    Str(w, "id", id);
    auto n = cohort.names.find(id);
    Str(w, "name", n == cohort.names.end() ? id : n->second);
    w.Key("expectedCaseloadPerYear");
    if (s.caseload_per_year) w.Int64(*s.caseload_per_year);
    else w.Null();
    Values(w, defs, e);
    Levels(w, goals, e);
    w.Key("projectionAvoided");
    {
      const workflow::Projection p = workflow::Project(goals.projection, Measured(goals.projection, s, e), {});
      w.StartArray();
      for (const auto& pt : p.points) {
        w.StartObject();
        Count(w, "years", pt.years);
        Number(w, "avoided", pt.avoided, 1);
        w.EndObject();
      }
      w.EndArray();
    }
    w.EndObject();
  }
  w.EndArray();

  w.Key("goals");
  w.StartObject();
  w.Key("baseline");
  w.StartObject();
  Str(w, "start", baseline.start);
  Str(w, "end", baseline.end);
  Str(w, "source", req.baseline_start.empty() ? goals.baseline_source : "the request (baselineStart, baselineEnd)");
  w.EndObject();
  w.Key("activeSites");
  w.StartObject();
  Count(w, "period", static_cast<int64_t>(whole.slice.active_sites.size()));
  Count(w, "baseline", static_cast<int64_t>(whole.slice.baseline_active_sites.size()));
  Number(w, "ratio", overall.Score("ctf-active-sites"));
  Number(w, "target", goals.active_sites_target);
  Str(w, "source", goals.active_sites_source);
  w.EndObject();
  w.Key("hipVertebral");
  w.StartObject();
  Count(w, "period", static_cast<int64_t>(whole.slice.fractures.size()));
  Count(w, "baseline", static_cast<int64_t>(whole.slice.baseline_fractures.size()));
  const auto ratio = overall.Score("ctf-hip-vertebral-change");
  Number(w, "ratio", ratio);
  Number(w, "change", ratio ? std::optional<double>(*ratio - 1.0) : std::nullopt);
  Number(w, "target", goals.hip_vertebral_target);
  Str(w, "source", goals.hip_vertebral_source);
  w.Key("fractureSites");
  w.StartArray();
  for (const auto& s : goals.hip_vertebral_sites) Text(w, s);
  w.EndArray();
  w.EndObject();
  w.EndObject();

  w.Key("bpfStandards");
  w.StartObject();
  Str(w, "source", goals.bpf_source);
  Str(w, "overallRule", goals.bpf_overall_source);
  w.Key("standards");
  w.StartArray();
  for (const auto& s : goals.bpf) {
    w.StartObject();
    Count(w, "standard", s.number);
    Str(w, "title", s.title);
    Str(w, "measure", s.measure);
    w.Key("lowerIsBetter");
    w.Bool(s.lower_is_better);
    Number(w, "bronze", s.bronze);
    Number(w, "silver", s.silver);
    Number(w, "gold", s.gold);
    Number(w, "score", overall.Score(s.measure), s.lower_is_better ? 1 : 4);
    Str(w, "source", s.source);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();

  WriteProjection(w, goals.projection, Measured(goals.projection, whole.slice, overall), {});
  w.EndObject();
  return std::string(sb.GetString(), sb.GetSize());
}

ProjectionRequest ParseProjectionRequest(const std::vector<QueryParam>& query) {
  ProjectionRequest r;
  auto v = kpi_detail::OnceEach(query, {"periodStart", "periodEnd", "subject", "capture", "treatment", "adherence"});
  r.period_start = v["periodStart"];
  r.period_end = v["periodEnd"];
  r.subject = v["subject"];
  kpi_detail::CheckPeriod(r.period_start, r.period_end);
  kpi_detail::CheckSubject(r.subject);
  r.capture = Rate(v, "capture");
  r.treatment = Rate(v, "treatment");
  r.adherence = Rate(v, "adherence");
  return r;
}

std::string FlsProjection(FhirService& service, const MeasureCatalog& catalog, const MeasureConfig& config,
                          const ProjectionRequest& req, const RequestInfo& info) {
  const workflow::GoalsConfig& goals = Goals(config);
  const workflow::ProjectionConfig& pc = goals.projection;
  std::vector<const workflow::KpiDefinition*> defs;
  for (const auto& id : {pc.capture_measure, pc.treatment_measure, pc.adherence_measure}) {
    const workflow::KpiDefinition* d = catalog.Find(id);
    if (!d) throw FhirError(ErrorCode::kNotFound, "no Measure " + id + " (the projection's configuration names it)");
    defs.push_back(d);
  }
  kpi_detail::CohortWants wants;
  wants.caseload = true;
  const int64_t days = *DayOf(req.period_end) - *DayOf(req.period_start) + 1;
  const int64_t today = LocalDay(NowMicros() / 1000000);
  // The cases counted as they are read, none kept.
  Slice whole;
  std::optional<workflow::KpiEvaluator> counter;
  kpi_detail::LoadCohort(service, config, req.period_start, req.period_end, req.subject, info, wants,
                         [&](const kpi_detail::Cohort& figures) -> kpi_detail::CaseSink {
                           whole = kpi_detail::WholeCohort(figures, days, 0, goals.active_site_minimum_cases);
                           counter.emplace(defs, kpi_detail::ContextOn(workflow::KpiDefinition{}, whole, today), false);
                           return [&](const workflow::KpiCase& c) {
                             const bool excluded = workflow::ExcludedFromDenominators(c);
                             whole.reached += excluded ? 0 : 1;
                             counter->Add(c, excluded);
                           };
                         });
  Evaluated e;
  std::vector<workflow::KpiPopulations> counted = counter->Finish();
  for (size_t i = 0; i < defs.size(); ++i) e.by_id.emplace(defs[i]->id, std::move(counted[i]));
  workflow::ProjectionInput what_if;
  what_if.capture = req.capture;
  what_if.treatment = req.treatment;
  what_if.adherence = req.adherence;
  rapidjson::StringBuffer sb;
  Writer w(sb);
  w.StartObject();
  PeriodAndSubject(w, req.period_start, req.period_end, req.subject);
  WriteProjection(w, pc, Measured(pc, whole, e), what_if);
  w.EndObject();
  return std::string(sb.GetString(), sb.GetSize());
}

}  // namespace fls::fhir
