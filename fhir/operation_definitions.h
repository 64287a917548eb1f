#pragma once
// The FLS operations (operations.md) as R4 OperationDefinitions: published at start-up under
// {cb}/OperationDefinition/fls-{code} and listed in the CapabilityStatement, so that a client
// discovers their parameters from the server itself. Generated from one table (this unit).

#include <string>
#include <vector>

#include "fhir/capability.h"
#include "fhir/fhir_service.h"
#include "fhir/search_params.h"

namespace fls::fhir {

// The operations for the CapabilityStatement (name, definition, resource type).
std::vector<CapabilityInput::Operation> FlsOperations(const std::string& canonical_base);

// One transaction; a restart with an unchanged table adds no version.
void PublishOperationDefinitions(FhirService& service, const std::string& canonical_base);

// The search parameters the server defines beyond R4 (Task `due`, EpisodeOfCare `stage` and
// `flag`) as R4 SearchParameter resources under their `definition` URL, the same way.
void PublishSearchParameters(FhirService& service, const SearchParamRegistry& registry);

}  // namespace fls::fhir
