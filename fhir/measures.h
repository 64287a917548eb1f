#pragma once
// The quality indicators as FHIR (operations.md section 6, docs/kpis.md): one Measure per line of
// the framework files (workflow/data/kpi-frameworks/*.json), published at start-up, and
// `$evaluate-measure`, which reads a cohort of cases in one statement (db/kpi_store.h), computes
// the populations with workflow/kpi.h and answers a MeasureReport (summary or subject-list).

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "fhir/fhir_service.h"
#include "workflow/goals.h"
#include "workflow/kpi.h"

namespace fls::fhir {

struct MeasureConfig {
  std::string canonical_base;
  std::string time_zone = "Europe/Paris";  // the sites' zone: event times become days in it
  std::string dxa_item = "dxa";            // the investigation panel's DXA item
  // The Capture the Fracture goals (workflow/data/capture-the-fracture.json): the baseline period,
  // the fracture sites counted, the Best Practice Framework levels, the projection's figures.
  std::shared_ptr<const workflow::GoalsConfig> goals;
};

class MeasureCatalog {
 public:
  explicit MeasureCatalog(std::vector<workflow::KpiFramework> frameworks);
  const workflow::KpiDefinition* Find(const std::string& id) const;
  const std::vector<workflow::KpiFramework>& frameworks() const { return frameworks_; }

 private:
  std::vector<workflow::KpiFramework> frameworks_;
};

// The framework files of `dir` (*.json, in name order); throws std::invalid_argument naming the
// file and line at fault, or when two files define one Measure id.
MeasureCatalog LoadMeasureCatalog(const std::string& dir);

// The goals name Measures (the Best Practice Framework's standards, the projection's rates): each
// must be in the catalog; throws std::invalid_argument naming the one missing.
void CheckGoalsAgainstCatalog(const workflow::GoalsConfig& goals, const MeasureCatalog& catalog);

// The Measure resource of a definition.
JsonDoc MeasureResource(const workflow::KpiDefinition& def, const std::string& framework_title,
                        const std::string& canonical_base);
// One transaction; a restart with unchanged files adds no version.
void PublishMeasures(FhirService& service, const MeasureCatalog& catalog, const std::string& canonical_base);

// The Organization extension holding a site's expected fractures per year (KPI 2).
std::string ExpectedCaseloadExtension(const std::string& canonical_base);

struct EvaluateRequest {
  std::string measure_id;
  std::string period_start, period_end;  // YYYY-MM-DD, both included
  std::string subject;                   // "" or Organization/{site or region}
  std::string report_type = "summary";   // summary | subject-list
  std::string baseline_start, baseline_end;  // the goals' baseline ("": the configured one)
};
// Parses the query of GET /Measure/{id}/$evaluate-measure; throws FhirError 400 naming the
// parameter.
EvaluateRequest ParseEvaluateRequest(const std::string& measure_id, const std::vector<QueryParam>& query);

// The MeasureReport JSON. Throws FhirError: 404 for an unknown Measure or subject, 403 when a
// requester limited to sites asks about another site. `cases_reached` receives the EpisodeOfCare
// ids a subject-list names (for the audit trail).
std::string EvaluateMeasure(FhirService& service, const MeasureCatalog& catalog, const MeasureConfig& config,
                            const EvaluateRequest& request, const RequestInfo& info,
                            std::vector<std::string>* cases_reached = nullptr);

// GET /$fls-extract?periodStart=&periodEnd=[&subject=] (operations.md section 6, docs/kpis.md):
// one CSV row per case of the cohort, excluded ones included, voided ones not, with the fields the
// indicators use. `identified`: the caller may see identifiers (the case and patient ids, the
// index date, the age); otherwise `pseudonym` maps "EpisodeOfCare/x" and "Patient/y" to stable
// per-deployment pseudonyms, dates are months and ages 5-year bands. `patients_reached` receives
// the patients whose rows were given (the audit trail).
struct ExtractRequest {
  std::string period_start, period_end, subject;
};
ExtractRequest ParseExtractRequest(const std::vector<QueryParam>& query);
std::string FlsExtractCsv(FhirService& service, const MeasureCatalog& catalog, const MeasureConfig& config,
                          const ExtractRequest& request, const RequestInfo& info, bool identified,
                          const std::function<std::string(const std::string&)>& pseudonym,
                          std::vector<std::string>* patients_reached = nullptr);
// The extract's columns, in order.
const std::vector<std::string>& ExtractColumns();

}  // namespace fls::fhir
