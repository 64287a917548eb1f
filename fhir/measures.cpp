#include "fhir/measures.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <fstream>
#include <set>
#include <unordered_set>
#include <sstream>

#include "db/kpi_store.h"
#include "fhir/call_list.h"
#include "fhir/error.h"
#include "fhir/fhir_date.h"
#include "fhir/json_builder.h"
#include "fhir/kpi_cohort.h"
#include "fhir/pathway_knowledge.h"
#include "workflow/civil_date.h"

namespace fls::fhir {

namespace {

const char* kPopulationSystem = "http://terminology.hl7.org/CodeSystem/measure-population";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::invalid_argument("cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Calls f(parts, n) for each space-separated item of "a:1:x b:2:y", its colon-separated parts
// (at most 3: an item with more is skipped) viewed in place.
template <typename F>
void ForEachItem(std::string_view text, F&& f) {
  size_t i = 0;
  while (i < text.size()) {
    size_t j = text.find(' ', i);
    if (j == std::string_view::npos) j = text.size();
    const std::string_view item = text.substr(i, j - i);
    std::string_view parts[3];
    size_t n = 0, k = 0;
    bool ok = !item.empty();
    while (ok && k <= item.size()) {
      size_t c = item.find(':', k);
      if (c == std::string_view::npos) c = item.size();
      if (n == 3) ok = false;
      else parts[n++] = item.substr(k, c - k);
      k = c + 1;
    }
    if (ok) f(parts, n);
    i = j + 1;
  }
}

std::optional<int64_t> Whole(std::string_view s) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

}  // namespace

namespace kpi_detail {

workflow::KpiCase ToCase(const db::KpiStore::CaseRow& r, LocalDays& local_day) {
  workflow::KpiCase c;
  ToCaseInto(r, local_day, c);
  return c;
}

void ToCaseInto(const db::KpiStore::CaseRow& r, LocalDays& local_day, workflow::KpiCase& c) {
  c.first_event_day.Clear();
  c.dxa_result_day.reset();
  c.contacts.clear();
  c.dispenses.clear();
  c.later_fracture_days.clear();
  c.episode_id = r.episode_id;
  c.site = r.site;
  c.index_day = r.index_day;
  c.index_site = r.index_site;
  c.identified_day = local_day(r.opened_at);
  c.exclude_reason = r.exclude_reason;
  c.has_phone = r.has_phone;
  c.has_referring_physician = r.has_referring_physician;
  for (size_t i = 0; i < r.event_names.size() && i < r.event_firsts.size(); ++i) {
    c.first_event_day.Set(r.event_names[i], local_day(r.event_firsts[i]));
  }
  c.dxa_ordered = r.dxa_status == "ordered" || r.dxa_status == "resulted";
  if (r.dxa_status == "resulted" && r.dxa_result_day >= 0) c.dxa_result_day = r.dxa_result_day;
  ForEachItem(r.contacts, [&](const std::string_view* f, size_t n) {
    auto day = n == 3 ? Whole(f[0]) : std::nullopt;
    if (!day) return;
    workflow::KpiCase::Contact k;
    k.day = *day;
    k.reached = f[1] == "1";
    if (f[2] != "-") k.adherent = f[2] == "1";
    c.contacts.push_back(k);
  });
  ForEachItem(r.dispenses, [&](const std::string_view* f, size_t n) {
    auto day = n == 2 ? Whole(f[0]) : std::nullopt;
    auto supply = n == 2 ? Whole(f[1]) : std::nullopt;
    if (day && supply) c.dispenses.push_back({*day, static_cast<int>(*supply)});
  });
  ForEachItem(r.later_fracture_days, [&](const std::string_view* f, size_t n) {
    if (n != 1) return;
    if (auto day = Whole(f[0])) c.later_fracture_days.push_back(*day);
  });
}


int64_t Prorated(long long per_year, int64_t days) {
  return static_cast<int64_t>(std::llround(static_cast<double>(per_year) * static_cast<double>(days) / 365.2425));
}

Cohort LoadCohort(FhirService& service, const MeasureConfig& config, const std::string& start, const std::string& end,
                  const std::string& subject, const RequestInfo& info, const CohortWants& wants,
                  const std::function<CaseSink(const Cohort&)>& stream) {
  Cohort out;
  // The instants become days by the process's zone (LocalDays), which main sets to the sites'.
  if (const char* tz = std::getenv("TZ"); tz != nullptr && config.time_zone != tz) {
    throw std::logic_error("the measures' time zone " + config.time_zone + " is not the process's (TZ=" + tz + ")");
  }
  const std::string subject_id = subject.empty() ? "" : subject.substr(13);
  out.all_sites = subject_id.empty() && !info.sites;
  service.ReadStore([&](db::ResourceStore& st) {
    db::KpiStore k(st);
    if (!subject_id.empty()) {
      if (!k.OrganizationExists(subject_id)) throw FhirError(ErrorCode::kNotFound, "no Organization/" + subject_id, "subject");
      out.sites = k.SitesUnder(subject_id);
    }
    if (info.sites) {
      // A site's coordinator: its own sites only, and only about them.
      if (subject_id.empty()) {
        out.sites = *info.sites;
      } else {
        for (const auto& s : out.sites) {
          if (std::find(info.sites->begin(), info.sites->end(), s) == info.sites->end()) {
            throw FhirError(ErrorCode::kForbidden, "Organization/" + subject_id + " holds sites that are not yours", "subject");
          }
        }
      }
    }
    const std::string ext = ExpectedCaseloadExtension(config.canonical_base);
    if (wants.caseload) out.caseload = k.ExpectedCaseload(out.all_sites, out.sites, ext);
    if (wants.site_caseloads) out.site_caseloads = k.ExpectedCaseloads(out.all_sites, out.sites, ext);
    if (wants.goals) {
      if (!wants.cases) out.period_cases = k.CasesPerSite(start, end, out.all_sites, out.sites);
      out.baseline_cases = k.CasesPerSite(wants.baseline_start, wants.baseline_end, out.all_sites, out.sites);
      if (wants.fractures) {
        out.fractures = k.Fractures(start, end, out.all_sites, out.sites, wants.fracture_sites);
        out.baseline_fractures = k.Fractures(wants.baseline_start, wants.baseline_end, out.all_sites, out.sites, wants.fracture_sites);
      }
    }
    // The cases last: a stream's sink is made with the figures above.
    LocalDays local_day;
    std::unordered_set<std::string> case_sites;
    if (wants.cases && stream) {
      const CaseSink sink = stream(out);
      workflow::KpiCase c;  // one case reused: its vectors keep their room
      k.ForEachCase(start, end, out.all_sites, out.sites, config.dxa_item, false, [&](const db::KpiStore::CaseRow& row) {
        ToCaseInto(row, local_day, c);
        if (wants.names) case_sites.insert(c.site);
        sink(c);
      });
    } else if (wants.cases) {
      k.ForEachCase(start, end, out.all_sites, out.sites, config.dxa_item, wants.rows, [&](const db::KpiStore::CaseRow& row) {
        out.cases.push_back(ToCase(row, local_day));
        if (wants.rows) out.rows.push_back(row);
      });
      for (const auto& c : out.cases) case_sites.insert(c.site);
    }
    if (wants.names) {
      std::set<std::string> ids(out.sites.begin(), out.sites.end());
      ids.insert(case_sites.begin(), case_sites.end());
      for (const auto& [site, n] : out.baseline_cases) ids.insert(site);
      for (const auto& [site, n] : out.site_caseloads) ids.insert(site);
      out.names = k.OrganizationNames(std::vector<std::string>(ids.begin(), ids.end()));
    }
  });
  return out;
}

void CheckPeriod(const std::string& start, const std::string& end, const char* start_name, const char* end_name) {
  for (const char* name : {start_name, end_name}) {
    const std::string& v = name == start_name ? start : end;
    if (v.size() != 10 || !DayOf(v)) throw FhirError(ErrorCode::kBadRequest, std::string(name) + " must be a date YYYY-MM-DD", name);
  }
  if (*DayOf(end) < *DayOf(start)) throw FhirError(ErrorCode::kBadRequest, std::string(end_name) + " is before " + start_name, end_name);
  if (*DayOf(end) - *DayOf(start) > 366 * 20) {
    throw FhirError(ErrorCode::kBadRequest, "the period is longer than 20 years", end_name);
  }
}

std::map<std::string, std::string> OnceEach(const std::vector<QueryParam>& query, const std::vector<std::string>& allowed) {
  std::map<std::string, std::string> out;
  for (const auto& p : query) {
    if (std::find(allowed.begin(), allowed.end(), p.name) == allowed.end()) {
      std::string names;
      for (const auto& a : allowed) names += (names.empty() ? "" : ", ") + a;
      throw FhirError(ErrorCode::kBadRequest, "unknown parameter " + p.name + " (" + names + ")", p.name);
    }
    if (!out.emplace(p.name, p.value).second) throw FhirError(ErrorCode::kBadRequest, p.name + " is given twice", p.name);
  }
  return out;
}

void CheckSubject(const std::string& subject) {
  if (subject.empty()) return;
  const std::string id = subject.rfind("Organization/", 0) == 0 ? subject.substr(13) : "";
  bool ok = !id.empty() && id.size() <= 64;
  for (char c : id) ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.');
  if (!ok) throw FhirError(ErrorCode::kBadRequest, "subject must be Organization/{id} (a site or a region)", "subject");
}


Slice WholeCohort(const Cohort& cohort, int64_t days, int64_t baseline_days, int minimum_cases) {
  Slice s;
  s.days = days;
  s.baseline_days = baseline_days;
  s.cases.reserve(cohort.cases.size());
  for (const auto& c : cohort.cases) {
    s.cases.push_back(&c);
    s.reached += workflow::ExcludedFromDenominators(c) ? 0 : 1;
  }
  if (cohort.caseload.sites_with_value > 0) s.caseload_per_year = cohort.caseload.per_year;
  if (!cohort.site_caseloads.empty()) {
    long long sum = 0;
    for (const auto& [site, n] : cohort.site_caseloads) sum += n;
    s.caseload_per_year = sum;
  }
  s.active_sites = workflow::ActiveSites(s.cases, minimum_cases);
  for (const auto& [site, n] : cohort.period_cases) {
    if (n >= minimum_cases) s.active_sites.push_back(site);  // (read instead of the cases)
  }
  for (const auto& [site, n] : cohort.baseline_cases) {
    if (n >= minimum_cases) s.baseline_active_sites.push_back(site);
  }
  for (const auto& f : cohort.fractures) s.fractures.push_back(f.condition_id);
  for (const auto& f : cohort.baseline_fractures) s.baseline_fractures.push_back(f.condition_id);
  return s;
}

// The context of one Measure on a slice (the ratios' units are its kind's).
workflow::KpiContext ContextOn(const workflow::KpiDefinition& def, const Slice& slice, int64_t today) {
  workflow::KpiContext ctx;
  ctx.evaluation_day = today;
  if (slice.caseload_per_year) ctx.expected_caseload = Prorated(*slice.caseload_per_year, slice.days);
  if (def.kind == "active-sites") {
    ctx.period_units.assign(slice.active_sites.begin(), slice.active_sites.end());
    ctx.baseline_units.assign(slice.baseline_active_sites.begin(), slice.baseline_active_sites.end());
  } else if (def.kind == "hip-vertebral-change") {
    ctx.period_units.assign(slice.fractures.begin(), slice.fractures.end());
    ctx.baseline_units.assign(slice.baseline_fractures.begin(), slice.baseline_fractures.end());
  }
  ctx.period_days = slice.days;
  ctx.baseline_days = slice.baseline_days;
  return ctx;
}

workflow::KpiPopulations EvaluateOn(const workflow::KpiDefinition& def, const Slice& slice, int64_t today) {
  return workflow::EvaluateKpi(def, slice.cases, ContextOn(def, slice, today));
}

Baseline BaselineOf(const MeasureConfig& config, const std::string& start, const std::string& end) {
  if (start.empty() != end.empty()) {
    throw FhirError(ErrorCode::kBadRequest, "give both baselineStart and baselineEnd, or neither",
                    start.empty() ? "baselineStart" : "baselineEnd");
  }
  if (!start.empty()) {
    CheckPeriod(start, end, "baselineStart", "baselineEnd");
    return {start, end};
  }
  if (!config.goals) throw FhirError(ErrorCode::kBadRequest, "no baseline period is configured: give baselineStart and baselineEnd", "baselineStart");
  return {config.goals->baseline_start, config.goals->baseline_end};
}

}  // namespace kpi_detail

namespace {

using kpi_detail::CheckPeriod;
using kpi_detail::CheckSubject;
using kpi_detail::OnceEach;
using kpi_detail::ToCase;

std::string PopulationDescription(const workflow::KpiDefinition& def, const std::string& code) {
  if (def.kind == "active-sites") {
    if (code == "initial-population" || code == "numerator") return "The FLS sites with cases whose index fracture is in the period.";
    if (code == "denominator") return "The FLS sites with cases whose index fracture is in the baseline period.";
  }
  if (def.kind == "hip-vertebral-change") {
    if (code == "initial-population" || code == "numerator") return "The hip and vertebral fragility fractures dated in the period.";
    if (code == "denominator") return "The hip and vertebral fragility fractures dated in the baseline period.";
  }
  if (code == "initial-population") return "The cases (not voided) whose index fracture date is in the period, in the subject's sites.";
  if (code == "denominator-exclusion" || code == "measure-population-exclusion") {
    return "The cases of the denominator excluded as not a fragility fracture or pathological.";
  }
  if (code == "denominator") {
    if (def.kind == "identification") return "The expected caseload of the sites for the period (fractures per year, prorated by days).";
    return "See the description: what the proportion is among.";
  }
  if (code == "measure-population") return "The cases that reached the milestone (the days are the measure observations).";
  return "See the description: what is counted.";
}



}  // namespace

MeasureCatalog::MeasureCatalog(std::vector<workflow::KpiFramework> frameworks) : frameworks_(std::move(frameworks)) {
  std::set<std::string> ids;
  for (const auto& f : frameworks_) {
    for (const auto& m : f.measures) {
      if (!ids.insert(m.id).second) throw std::invalid_argument("Measure " + m.id + " is defined by two framework files");
    }
  }
}

const workflow::KpiDefinition* MeasureCatalog::Find(const std::string& id) const {
  for (const auto& f : frameworks_) {
    for (const auto& m : f.measures) {
      if (m.id == id) return &m;
    }
  }
  return nullptr;
}

MeasureCatalog LoadMeasureCatalog(const std::string& dir) {
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.is_regular_file() && e.path().extension() == ".json") files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) throw std::invalid_argument("no KPI framework file (*.json) in " + dir);
  std::vector<workflow::KpiFramework> frameworks;
  for (const auto& path : files) {
    try {
      frameworks.push_back(workflow::ParseKpiFramework(ReadFile(path)));
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(path + ": " + e.what());
    }
  }
  return MeasureCatalog(std::move(frameworks));
}

void CheckGoalsAgainstCatalog(const workflow::GoalsConfig& goals, const MeasureCatalog& catalog) {
  auto need = [&](const std::string& id, const std::string& what) {
    if (!catalog.Find(id)) throw std::invalid_argument("capture-the-fracture.json: " + what + " names Measure " + id + ", which no framework file defines");
  };
  for (const auto& s : goals.bpf) need(s.measure, "standard " + std::to_string(s.number));
  need(goals.projection.capture_measure, "the projection's captureMeasure");
  need(goals.projection.treatment_measure, "the projection's treatmentMeasure");
  need(goals.projection.adherence_measure, "the projection's adherenceMeasure");
}

std::string ExpectedCaseloadExtension(const std::string& base) {
  return base + "/StructureDefinition/fls-expected-caseload";
}

JsonDoc MeasureResource(const workflow::KpiDefinition& def, const std::string& framework_title, const std::string& base) {
  Json j;
  j.Obj().S("resourceType", "Measure").S("id", def.id).S("url", base + "/Measure/" + def.id);
  j.Arr("identifier").Obj().S("system", base + "/kpi-framework/" + def.framework).S("value", def.number ? std::to_string(def.number) : def.id).End().EndArr();
  std::string name;
  bool up = true;
  for (char c : def.id) {
    if (c == '-' || c == '.') {
      up = true;
      continue;
    }
    name += up ? static_cast<char>(std::toupper(static_cast<unsigned char>(c))) : c;
    up = false;
  }
  j.S("name", name).S("title", def.title).S("status", "active").B("experimental", false);
  j.S("publisher", "FLS server");
  j.S("description", def.description);
  j.S("purpose", framework_title + (def.number ? ", indicator " + std::to_string(def.number) : std::string()));
  std::string guidance = "Source: " + def.source + ".";
  if (def.window_days) guidance += " Window: " + std::to_string(def.window_days) + " days after the index fracture.";
  if (def.kind == "adherence") {
    guidance += " Contacts from day " + std::to_string(def.contact_from_days) + " to day " + std::to_string(def.contact_to_days) +
                "; dispensing covering day " + std::to_string(def.at_days) + ".";
  }
  if (!def.bands.empty()) {
    guidance += " Bands:";
    for (size_t i = 0; i < def.bands.size(); ++i) {
      const auto& b = def.bands[i];
      std::ostringstream pct;
      pct << b.min * 100;
      guidance += std::string(i ? "," : "") + " " + b.code + " " + (b.min_exclusive ? "> " : ">= ") + pct.str() + "%";
    }
    guidance += ".";
  }
  j.S("guidance", guidance);
  j.Key("scoring").Obj().Arr("coding").Coding("http://terminology.hl7.org/CodeSystem/measure-scoring",
                                             def.ratio() ? "ratio" : def.proportion() ? "proportion" : "continuous-variable")
      .EndArr().End();
  j.Arr("type").Obj().Arr("coding").Coding("http://terminology.hl7.org/CodeSystem/measure-type",
                                          def.kind == "refracture" || def.kind == "treatment-gap" ? "outcome" : "process")
      .EndArr().End().EndArr();
  j.Key("improvementNotation").Obj().Arr("coding")
      .Coding("http://terminology.hl7.org/CodeSystem/measure-improvement-notation", def.decrease() ? "decrease" : "increase")
      .EndArr().End();
  j.Arr("group").Obj().Arr("population");
  std::vector<std::string> codes = def.ratio() ? std::vector<std::string>{"initial-population", "numerator", "denominator"}
                                   : def.proportion()
                                       ? std::vector<std::string>{"initial-population", "denominator", "denominator-exclusion", "numerator"}
                                       : std::vector<std::string>{"initial-population", "measure-population",
                                                                  "measure-population-exclusion", "measure-observation"};
  for (const auto& code : codes) {
    j.Obj().Key("code").Obj().Arr("coding").Coding(kPopulationSystem, code).EndArr().End();
    std::string text = code == "numerator" || code == "measure-observation"
                           ? (code == "measure-observation" ? "Days from the index fracture to the milestone." : def.description)
                           : PopulationDescription(def, code);
    j.S("description", text);
    j.Key("criteria").Obj().S("language", "text/plain").S("expression", text).End();
    j.End();
  }
  j.EndArr().End().EndArr();
  j.End();
  return j.Doc();
}

void PublishMeasures(FhirService& service, const MeasureCatalog& catalog, const std::string& base) {
  service.Write([&](WriteContext& ctx) {
    for (const auto& f : catalog.frameworks()) {
      for (const auto& m : f.measures) {
        JsonDoc doc = MeasureResource(m, f.title, base);
        PublishIfChanged(ctx, "Measure", m.id, doc);
      }
    }
  });
}

EvaluateRequest ParseEvaluateRequest(const std::string& measure_id, const std::vector<QueryParam>& query) {
  EvaluateRequest r;
  r.measure_id = measure_id;
  auto v = OnceEach(query, {"periodStart", "periodEnd", "subject", "reportType", "baselineStart", "baselineEnd"});
  r.period_start = v["periodStart"];
  r.period_end = v["periodEnd"];
  r.subject = v["subject"];
  r.baseline_start = v["baselineStart"];
  r.baseline_end = v["baselineEnd"];
  if (v.count("reportType")) r.report_type = v["reportType"];
  CheckPeriod(r.period_start, r.period_end);
  if (r.report_type != "summary" && r.report_type != "subject-list") {
    throw FhirError(ErrorCode::kBadRequest, "reportType must be summary or subject-list (population: not served)", "reportType");
  }
  CheckSubject(r.subject);
  return r;
}

std::string EvaluateMeasure(FhirService& service, const MeasureCatalog& catalog, const MeasureConfig& config,
                            const EvaluateRequest& req, const RequestInfo& info, std::vector<std::string>* cases_reached) {
  const workflow::KpiDefinition* def = catalog.Find(req.measure_id);
  if (!def) throw FhirError(ErrorCode::kNotFound, "no Measure " + req.measure_id + " (GET /Measure lists them)");
  if (!def->ratio() && !(req.baseline_start.empty() && req.baseline_end.empty())) {
    throw FhirError(ErrorCode::kBadRequest, "a baseline period applies to the Capture the Fracture measures only",
                    req.baseline_start.empty() ? "baselineEnd" : "baselineStart");
  }
  const std::string subject_id = req.subject.empty() ? "" : req.subject.substr(13);
  kpi_detail::CohortWants wants;
  wants.caseload = def->kind == "identification";
  kpi_detail::Baseline baseline;
  if (def->ratio()) {
    baseline = kpi_detail::BaselineOf(config, req.baseline_start, req.baseline_end);
    wants.goals = true;
    wants.baseline_start = baseline.start;
    wants.baseline_end = baseline.end;
    if (config.goals) wants.fracture_sites = config.goals->hip_vertebral_sites;
    wants.cases = false;  // sites or fractures are counted, not cases
    wants.fractures = def->kind == "hip-vertebral-change";
  }
  const int64_t days = *DayOf(req.period_end) - *DayOf(req.period_start) + 1;
  const int64_t baseline_days = def->ratio() ? *DayOf(baseline.end) - *DayOf(baseline.start) + 1 : 0;
  const int minimum_cases = config.goals ? config.goals->active_site_minimum_cases : 1;
  const int64_t today = LocalDay(NowMicros() / 1000000);
  const bool list = req.report_type == "subject-list";
  kpi_detail::Cohort cohort;
  kpi_detail::Slice slice;     // what the populations' lists view: lives as long as they do
  workflow::KpiPopulations p;
  if (list || def->ratio()) {
    // The lists name the cases: kept, in index fracture order.
    cohort = kpi_detail::LoadCohort(service, config, req.period_start, req.period_end, req.subject, info, wants);
    for (auto* fractures : {&cohort.fractures, &cohort.baseline_fractures}) {
      std::sort(fractures->begin(), fractures->end(), [](const db::KpiStore::FractureRow& a, const db::KpiStore::FractureRow& b) {
        return a.day != b.day ? a.day < b.day : a.condition_id < b.condition_id;
      });
    }
    slice = kpi_detail::WholeCohort(cohort, days, baseline_days, minimum_cases);
    std::sort(slice.cases.begin(), slice.cases.end(), [](const workflow::KpiCase* a, const workflow::KpiCase* b) {
      return a->index_day != b->index_day ? a->index_day < b->index_day : a->episode_id < b->episode_id;
    });
    p = kpi_detail::EvaluateOn(*def, slice, today);
  } else {
    // A summary counts each case as it is read, and keeps none.
    std::optional<workflow::KpiEvaluator> counter;
    cohort = kpi_detail::LoadCohort(service, config, req.period_start, req.period_end, req.subject, info, wants,
                                    [&](const kpi_detail::Cohort& figures) -> kpi_detail::CaseSink {
                                      const kpi_detail::Slice s = kpi_detail::WholeCohort(figures, days, baseline_days, minimum_cases);
                                      counter.emplace(std::vector<const workflow::KpiDefinition*>{def},
                                                      kpi_detail::ContextOn(*def, s, today), false);
                                      return [&](const workflow::KpiCase& c) { counter->Add(c); };
                                    });
    if (!counter) throw std::logic_error("the cohort was not streamed");
    p = std::move(counter->Finish()[0]);
  }

  const std::string& base = config.canonical_base;
  // What the lists name: cases, or for the goals sites and fractures.
  const std::string unit_type = def->kind == "active-sites" ? "Organization/" : def->kind == "hip-vertebral-change" ? "Condition/" : "EpisodeOfCare/";
  Json j;
  j.Obj().S("resourceType", "MeasureReport");
  if (list) {
    j.Arr("contained");
    auto add_list = [&](const char* id, const std::vector<std::string_view>& members) {
      j.Obj().S("resourceType", "List").S("id", id).S("status", "current").S("mode", "snapshot");
      j.Arr("entry");
      for (const auto& m : members) j.Obj().Ref("item", unit_type + std::string(m)).End();
      j.EndArr().End();
    };
    add_list("initial-population", p.initial);
    if (def->ratio()) {
      add_list("numerator", p.numerator);
      add_list("denominator", p.denominator);
    } else {
      add_list(def->proportion() ? "denominator" : "measure-population", p.denominator);
      add_list(def->proportion() ? "denominator-exclusion" : "measure-population-exclusion", p.exclusion);
      if (def->proportion()) add_list("numerator", p.numerator);
    }
    j.EndArr();
    if (cases_reached) {
      if (!def->ratio()) {
        cases_reached->assign(p.initial.begin(), p.initial.end());
      } else if (def->kind == "hip-vertebral-change") {
        for (const auto& f : cohort.fractures) cases_reached->push_back(f.episode_id);
        for (const auto& f : cohort.baseline_fractures) cases_reached->push_back(f.episode_id);
      }
    }
  }
  if (!p.band.empty() || def->ratio()) {
    j.Arr("extension");
    if (!p.band.empty()) j.Obj().S("url", base + "/StructureDefinition/measure-report-band").S("valueCode", p.band).End();
    if (def->ratio()) {
      j.Obj().S("url", base + "/StructureDefinition/measure-report-baseline-period");
      j.Key("valuePeriod").Obj().S("start", baseline.start).S("end", baseline.end).End().End();
    }
    j.EndArr();
  }
  j.S("status", "complete").S("type", list ? "subject-list" : "summary");
  j.S("measure", base + "/Measure/" + def->id);
  j.S("date", FormatFhirInstant(NowMicros()));
  if (!subject_id.empty()) j.Ref("reporter", "Organization/" + subject_id);
  j.Key("period").Obj().S("start", req.period_start).S("end", req.period_end).End();
  j.Key("improvementNotation").Obj().Arr("coding")
      .Coding("http://terminology.hl7.org/CodeSystem/measure-improvement-notation", def->decrease() ? "decrease" : "increase")
      .EndArr().End();
  j.Arr("group").Obj();
  j.Arr("population");
  auto population = [&](const char* code, int64_t count, const char* list_id) {
    j.Obj().Key("code").Obj().Arr("coding").Coding(kPopulationSystem, code).EndArr().End();
    j.I("count", static_cast<int>(count));
    if (list && list_id) j.Key("subjectResults").Obj().S("reference", std::string("#") + list_id).End();
    j.End();
  };
  population("initial-population", p.initial_count, "initial-population");
  if (def->ratio()) {
    population("numerator", p.numerator_count, "numerator");
    population("denominator", p.denominator_cases, "denominator");
  } else if (def->proportion()) {
    if (def->kind == "identification") {
      population("denominator", p.denominator_count.value_or(0), nullptr);
      population("denominator-exclusion", 0, nullptr);
    } else {
      population("denominator", p.denominator_cases, "denominator");
      population("denominator-exclusion", p.exclusion_count, "denominator-exclusion");
    }
    population("numerator", p.numerator_count, "numerator");
  } else {
    population("measure-population", p.denominator_cases, "measure-population");
    population("measure-population-exclusion", p.exclusion_count, "measure-population-exclusion");
    population("measure-observation", static_cast<int64_t>(p.observations.size()), nullptr);
  }
  j.EndArr();
  if (p.score) {
    j.Key("measureScore").Obj();
    if (def->proportion() || def->ratio()) {
      j.Num("value", std::round(*p.score * 10000.0) / 10000.0);
    } else {
      j.Num("value", *p.score).S("unit", "d").S("system", "http://unitsofmeasure.org").S("code", "d");
    }
    j.End();
  }
  j.End().EndArr();
  j.End();
  return Serialize(j.Doc());
}

const std::vector<std::string>& ExtractColumns() {
  static const std::vector<std::string> c = {
      "case", "patient", "site", "index_fracture_date", "index_fracture_site", "sex", "age_at_fracture", "stage",
      "exclude_reason", "key_fields_complete", "days_to_identification", "days_to_assessment", "enrolled", "dxa",
      "days_to_dxa", "days_to_falls_assessment", "days_to_exercise", "days_to_treatment_decision", "decided_drug",
      "days_to_treatment", "current_drug", "days_to_first_reached_contact", "adherent_52w", "refracture_12m",
      "refracture_24m"};
  return c;
}

ExtractRequest ParseExtractRequest(const std::vector<QueryParam>& query) {
  ExtractRequest r;
  auto v = OnceEach(query, {"periodStart", "periodEnd", "subject"});
  r.period_start = v["periodStart"];
  r.period_end = v["periodEnd"];
  r.subject = v["subject"];
  CheckPeriod(r.period_start, r.period_end);
  CheckSubject(r.subject);
  return r;
}

namespace {

// Whole years from a FHIR birth date (YYYY, YYYY-MM or YYYY-MM-DD: the missing parts as the
// first month or day) to `day`; nullopt when unknown.
std::optional<int> AgeOn(const std::string& birth_date, int64_t day) {
  auto b = DayOf(birth_date.size() == 4 ? birth_date + "-01-01" : birth_date.size() == 7 ? birth_date + "-01" : birth_date);
  if (!b || *b > day) return std::nullopt;
  int by, dy;
  unsigned bm, bd, dm, dd;
  workflow::CivilFromDays(*b, by, bm, bd);
  workflow::CivilFromDays(day, dy, dm, dd);
  int age = dy - by;
  if (dm < bm || (dm == bm && dd < bd)) --age;
  return age;
}

std::string Days(std::optional<int64_t> day, int64_t index_day) {
  return day ? std::to_string(*day - index_day) : "";
}

}  // namespace

std::string FlsExtractCsv(FhirService& service, const MeasureCatalog& catalog, const MeasureConfig& config,
                          const ExtractRequest& req, const RequestInfo& info, bool identified,
                          const std::function<std::string(const std::string&)>& pseudonym,
                          std::vector<std::string>* patients_reached) {
  kpi_detail::CohortWants wants;
  wants.rows = true;
  const kpi_detail::Cohort loaded = kpi_detail::LoadCohort(service, config, req.period_start, req.period_end, req.subject, info, wants);
  // The windows of the 12-month adherence and the refracture columns: the framework files'.
  int at = 364, from = 280, to = 448, r12 = 365, r24 = 730;
  for (const auto& f : catalog.frameworks()) {
    for (const auto& m : f.measures) {
      if (m.kind == "adherence" && f.id == "fls-db") {
        at = m.at_days;
        from = m.contact_from_days;
        to = m.contact_to_days;
      }
      if (m.id == "fls-refracture-12m") r12 = m.window_days;
      if (m.id == "fls-refracture-24m") r24 = m.window_days;
    }
  }
  const int64_t today = LocalDay(NowMicros() / 1000000);
  std::string out;
  for (size_t i = 0; i < ExtractColumns().size(); ++i) out += (i ? "," : "") + ExtractColumns()[i];
  out += "\r\n";
  for (size_t n = 0; n < loaded.rows.size(); ++n) {
    const db::KpiStore::CaseRow& row = loaded.rows[n];
    const workflow::KpiCase& c = loaded.cases[n];
    if (patients_reached && !row.patient_id.empty()) patients_reached->push_back("Patient/" + row.patient_id);
    auto first = [&](const char* e) { return c.first_event_day.Find(e); };
    std::optional<int64_t> contact;
    for (const auto& k : c.contacts) {
      if (k.reached && k.day >= c.index_day && (!contact || k.day < *contact)) contact = k.day;
    }
    auto later = [&](int window) -> std::string {
      if (c.index_day + window > today) return "";
      for (int64_t d : c.later_fracture_days) {
        if (d > c.index_day && d - c.index_day <= window) return "yes";
      }
      return "no";
    };
    std::string adherent;
    if (first("treatment-started") && c.index_day + at <= today) adherent = workflow::AdherentAt(c, at, from, to) ? "yes" : "no";
    std::string age, date = DayText(c.index_day);
    auto years = AgeOn(row.birth_date, c.index_day);
    if (identified) {
      if (years) age = std::to_string(*years);
    } else {
      date = date.substr(0, 7);
      if (years) age = *years >= 100 ? "100+" : std::to_string(*years / 5 * 5) + "-" + std::to_string(*years / 5 * 5 + 4);
    }
    const std::vector<std::string> cells = {
        identified ? row.episode_id : pseudonym("EpisodeOfCare/" + row.episode_id),
        row.patient_id.empty() ? "" : identified ? row.patient_id : pseudonym("Patient/" + row.patient_id),
        row.site,
        date,
        row.index_site,
        row.gender,
        age,
        row.stage,
        row.exclude_reason,
        workflow::KeyFieldsFilled(c) ? "yes" : "no",
        Days(c.identified_day, c.index_day),
        Days(workflow::AssessedDay(c), c.index_day),
        first("enrol") ? "yes" : "no",
        row.dxa_status.empty() ? "none" : row.dxa_status,
        Days(c.dxa_result_day, c.index_day),
        Days(first("falls-assessment"), c.index_day),
        Days(first("exercise-started"), c.index_day),
        Days(first("decide-treatment"), c.index_day),
        row.decided_drug,
        Days(first("treatment-started"), c.index_day),
        row.current_drug,
        Days(contact, c.index_day),
        adherent,
        later(r12),
        later(r24)};
    // Day counts stay numbers; every other cell is guarded against spreadsheet formulas.
    static const std::set<size_t> kNumeric = {6, 10, 11, 14, 15, 16, 17, 19, 21};
    for (size_t i = 0; i < cells.size(); ++i) out += (i ? "," : "") + CsvField(cells[i], !kNumeric.count(i));
    out += "\r\n";
  }
  return out;
}

}  // namespace fls::fhir
