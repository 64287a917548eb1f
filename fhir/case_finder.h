#pragma once
// Case finding wired into every write: a TransactionListener that, before a transaction that
// wrote Conditions, Encounters, Patients or EpisodeOfCare referrals commits, applies the rules of
// workflow/case_finding.h and writes the FLS case (EpisodeOfCare, CarePlan, Task), the review
// Tasks and the case tables in that same transaction. So: when the push answers 2xx the case
// exists; when it fails, nothing of the case exists. Thread-safe factory; each listener belongs
// to one transaction attempt.

#include <functional>
#include <memory>
#include <string>

#include "fhir/fhir_service.h"
#include "fhir/pathway_engine.h"
#include "workflow/case_finding.h"
#include "workflow/fracture_codes.h"

namespace fls::fhir {

struct CaseFinderConfig {
  std::string canonical_base = "http://fls-server.org/fhir";
  std::string default_site_id = "fls-default-site";  // Organization id when no serviceProvider
  workflow::CaseFindingRules rules;
  int task_due_days = 14;
};

// The canonical URLs of what the server defines, under the configured base.
struct FlsCanonicals {
  explicit FlsCanonicals(const std::string& base);
  std::string stage_extension, flag_extension, refracture_of_extension, site_extension, grio_extension;
  std::string stage_system, task_system, role_system, episode_type_system, flag_system, plan_definition;
};

// Returns the factory to register with FhirService::AddListener, before the engine's
// DataListener. `codes` and `engine` must outlive it. A case it opens gets its timers from the
// engine; a death closes the patient's cases through the engine's deceased event.
ListenerFactory MakeCaseFinder(const workflow::FractureCodeList& codes, CaseFinderConfig config,
                               const PathwayEngine& engine);

// Writes (or refreshes) what case finding relies on: PlanDefinition/capture-the-fracture (from
// `plan_definition_json`), the default site Organization, and ConceptMap/fls-fracture-codes (the
// code list, published read-only). Idempotent; run at start-up once migrations are applied.
void PublishCaseFindingKnowledge(FhirService& service, const workflow::FractureCodeList& codes,
                                 const CaseFinderConfig& config, const std::string& plan_definition_json);

}  // namespace fls::fhir
