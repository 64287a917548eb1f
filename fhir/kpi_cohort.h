#pragma once
// What $evaluate-measure, $fls-dashboard and $fls-projection share (fhir/measures.cpp): the
// parameters' checks, and the figures of a period and subject read in one snapshot
// (db/kpi_store.h), narrowed to a coordinator's own sites.

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "db/kpi_store.h"
#include "fhir/fhir_date.h"
#include "fhir/fhir_service.h"
#include "fhir/measures.h"
#include "workflow/kpi.h"

namespace fls::fhir::kpi_detail {

// periodStart/periodEnd (or the names given): dates, in order, at most 20 years apart; 400 naming
// the parameter otherwise.
void CheckPeriod(const std::string& start, const std::string& end, const char* start_name = "periodStart",
                 const char* end_name = "periodEnd");
// Each parameter of `allowed` at most once, no other: name -> value.
std::map<std::string, std::string> OnceEach(const std::vector<QueryParam>& query, const std::vector<std::string>& allowed);
// "" or Organization/{id}.
void CheckSubject(const std::string& subject);

struct CohortWants {
  bool caseload = false;       // the sum of the sites' expected caseloads
  bool site_caseloads = false;  // each site's expected caseload
  bool names = false;           // the sites' names
  // The Capture the Fracture goals: the baseline period's cases per site, and the hip and
  // vertebral fractures of both periods.
  bool goals = false;
  std::string baseline_start, baseline_end;
  std::vector<std::string> fracture_sites;
  bool rows = false;  // the rows as read, beside the cases (the case-level extract's fields)
  // The cases themselves (not for the goals' ratios: those count sites and fractures only, and
  // read the period's cases per site instead), and the fractures of the goals.
  bool cases = true;
  bool fractures = true;
};

struct Cohort {
  std::vector<workflow::KpiCase> cases;     // none when streamed (LoadCohort's `stream`)
  std::vector<db::KpiStore::CaseRow> rows;  // only when wanted (CohortWants::rows), one per case
  db::KpiStore::Caseload caseload;
  // The period's cases per site, read when the cases are not (CohortWants::cases false).
  std::map<std::string, long long> site_caseloads, baseline_cases, period_cases;
  std::vector<db::KpiStore::FractureRow> fractures, baseline_fractures;
  std::map<std::string, std::string> names;
  bool all_sites = false;          // no subject and no site limit
  std::vector<std::string> sites;  // the subject's sites (or the coordinator's) otherwise
};

// What a streamed cohort gives each case to: one KpiCase reused from case to case (copy what must
// outlive the call).
using CaseSink = std::function<void(const workflow::KpiCase&)>;
// 404 for an unknown subject; 403 when a requester limited to sites asks about another one. With
// `stream`, the cases are not kept (Cohort::cases stays empty, memory flat whatever their
// number): once every other figure is read, `stream(cohort)` makes the sink that each case is
// given to, in no particular order.
Cohort LoadCohort(FhirService& service, const MeasureConfig& config, const std::string& start, const std::string& end,
                  const std::string& subject, const RequestInfo& info, const CohortWants& wants,
                  const std::function<CaseSink(const Cohort&)>& stream = {});

// A row as the indicators read it, its instants made days in the sites' zone (ToCaseInto: into
// `c`, reusing its room).
workflow::KpiCase ToCase(const db::KpiStore::CaseRow& row, LocalDays& local_day);
void ToCaseInto(const db::KpiStore::CaseRow& row, LocalDays& local_day, workflow::KpiCase& c);

// The expected caseload of `per_year` fractures a year over `days` days (prorated).
int64_t Prorated(long long per_year, int64_t days);

// What the indicators read for one part of a cohort (all of it, a site, a quarter).
struct Slice {
  std::vector<const workflow::KpiCase*> cases;  // of the Cohort, which outlives the slice (none when streamed)
  int64_t reached = 0;  // its cases less the exclusions as not a fragility fracture or pathological
  int64_t days = 0;                     // the part's period, in days
  std::optional<long long> caseload_per_year;  // the sites' expected caseload (none: no site says)
  // The Capture the Fracture goals: the active sites of the period and of the baseline period,
  // and the hip and vertebral fractures (Condition ids) of each.
  std::vector<std::string> active_sites, baseline_active_sites, fractures, baseline_fractures;
  int64_t baseline_days = 0;
};
// The whole cohort as one slice (`days`: the period's).
Slice WholeCohort(const Cohort& cohort, int64_t days, int64_t baseline_days, int minimum_cases);
workflow::KpiPopulations EvaluateOn(const workflow::KpiDefinition& def, const Slice& slice, int64_t today);
// What EvaluateOn gives the engine: today, the slice's expected caseload and days, and for a
// ratio its kind's units (views of the slice's).
workflow::KpiContext ContextOn(const workflow::KpiDefinition& def, const Slice& slice, int64_t today);
// The baseline period: the request's (both or neither) or the configured one.
struct Baseline {
  std::string start, end;
};
Baseline BaselineOf(const MeasureConfig& config, const std::string& start, const std::string& end);

}  // namespace fls::fhir::kpi_detail
