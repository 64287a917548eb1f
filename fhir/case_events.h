#pragma once
// GET /EpisodeOfCare/{id}/$events (operations.md section 1): a case's event log, read back as a
// Parameters with one `event` part per row in order. Thread-safe (reads only).

#include <string>

#include "fhir/fhir_service.h"

namespace fls::fhir {

// 404 when the id is not an FLS case.
Outcome CaseEvents(FhirService& service, const std::string& episode_id);

}  // namespace fls::fhir
