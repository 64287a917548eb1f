#pragma once
// The pathway's code systems, published at start-up so that a client can resolve every code the
// server writes: CodeSystem/pathway-stage and CodeSystem/fls-pathway-event (from the state
// machine's table, workflow/pathway.cpp), CodeSystem/fls-investigation and CodeSystem/fls-flag
// (from workflow/data/investigation-panel.json, each concept with its source).

#include <string>

#include "fhir/fhir_service.h"
#include "workflow/investigation_panel.h"

namespace fls::fhir {

// Writes `doc` as type/id unless the stored current version says the same (meta aside): a
// restart with unchanged data adds no version. REQUIRES: inside `ctx`'s transaction.
void PublishIfChanged(WriteContext& ctx, const std::string& type, const std::string& id,
                      JsonDoc& doc);

// One transaction; throws what the store throws (the caller retries at the next start-up step).
void PublishPathwayKnowledge(FhirService& service, const workflow::InvestigationPanel& panel,
                             const std::string& canonical_base);

}  // namespace fls::fhir
