#pragma once
// What $evaluate-measure, $fls-dashboard and $fls-projection share (fhir/measures.cpp): the
// parameters' checks, and the figures of a period and subject read in one snapshot
// (db/kpi_store.h), narrowed to a coordinator's own sites.

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "db/kpi_store.h"
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
};

struct Cohort {
  std::vector<db::KpiStore::CaseRow> rows;
  db::KpiStore::Caseload caseload;
  std::map<std::string, long long> site_caseloads, baseline_cases;
  std::vector<db::KpiStore::FractureRow> fractures, baseline_fractures;
  std::map<std::string, std::string> names;
  bool all_sites = false;          // no subject and no site limit
  std::vector<std::string> sites;  // the subject's sites (or the coordinator's) otherwise
};

// 404 for an unknown subject; 403 when a requester limited to sites asks about another one.
Cohort LoadCohort(FhirService& service, const MeasureConfig& config, const std::string& start, const std::string& end,
                  const std::string& subject, const RequestInfo& info, const CohortWants& wants);

workflow::KpiCase ToCase(const db::KpiStore::CaseRow& row);

// The expected caseload of `per_year` fractures a year over `days` days (prorated).
int64_t Prorated(long long per_year, int64_t days);

// What the indicators read for one part of a cohort (all of it, a site, a quarter).
struct Slice {
  std::vector<workflow::KpiCase> cases;
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

// The baseline period: the request's (both or neither) or the configured one.
struct Baseline {
  std::string start, end;
};
Baseline BaselineOf(const MeasureConfig& config, const std::string& start, const std::string& end);

}  // namespace fls::fhir::kpi_detail
