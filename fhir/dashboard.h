#pragma once
// The dashboard's data (docs/kpis.md, "The dashboard's data"): one call answers every indicator of
// a framework for a period and subject, overall, by quarter and by site, with the Capture the
// Fracture goals, the Best Practice Framework levels and the projection of the fractures avoided,
// all from one cohort read in one snapshot and computed by the same code as $evaluate-measure
// (so the numbers agree with it). $fls-projection answers the projection alone, with "what if"
// rates.

#include <optional>
#include <string>
#include <vector>

#include "fhir/fhir_service.h"
#include "fhir/measures.h"

namespace fls::fhir {

struct DashboardRequest {
  std::string period_start, period_end, subject;
  std::string framework = "fls-db";  // fls-db | iof (or any framework file's id but fls and ctf)
  std::string baseline_start, baseline_end;  // "": the configured baseline
};
// GET /$fls-dashboard?periodStart=&periodEnd=[&subject=][&framework=][&baselineStart=&baselineEnd=]
DashboardRequest ParseDashboardRequest(const MeasureCatalog& catalog, const std::vector<QueryParam>& query);
// The JSON document (application/json). Throws FhirError as EvaluateMeasure does.
std::string FlsDashboard(FhirService& service, const MeasureCatalog& catalog, const MeasureConfig& config,
                         const DashboardRequest& request, const RequestInfo& info);

struct ProjectionRequest {
  std::string period_start, period_end, subject;
  std::optional<double> capture, treatment, adherence;  // what if (0-1)
};
// GET /$fls-projection?periodStart=&periodEnd=[&subject=][&capture=][&treatment=][&adherence=]
ProjectionRequest ParseProjectionRequest(const std::vector<QueryParam>& query);
std::string FlsProjection(FhirService& service, const MeasureCatalog& catalog, const MeasureConfig& config,
                          const ProjectionRequest& request, const RequestInfo& info);

}  // namespace fls::fhir
