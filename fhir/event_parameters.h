#pragma once
// The Parameters bodies of the FLS operations (operations.md sections 1 and 5): the shape every
// operation shares, and the parts of `$event` checked against the event's table. Pure: no I/O;
// safe across threads. Also the entry point of the `$event` fuzz target (tests/fuzz/).

#include <cstdint>
#include <string>
#include <string_view>

#include "fhir/error.h"
#include "fhir/fhir_service.h"
#include "fhir/json.h"
#include "fhir/json_builder.h"
#include "workflow/drug_list.h"
#include "workflow/pathway.h"

namespace fls::fhir {

// The `parameter` array of a Parameters body (null when absent); 400 for anything but a
// Parameters resource.
const JsonValue* ParameterArray(const JsonDoc& doc, const std::string& operation);

// An operation's 200 answer: the Parameters `j` wrote.
Outcome ParametersAnswer(Json& j);

// A valueReference to a resource of `type` on this server ("Type/id"); 400 otherwise.
std::string LocalReference(const JsonValue& v, const char* type, const std::string& part);

struct ParsedEvent {
  workflow::EventInput input;
  int64_t occurred_us = 0;
};

// Each named part once, with the value type the event's table says: anything else is 400
// (FhirError). `now_us` bounds `occurred` (not in the future, give or take the clocks' skew).
ParsedEvent ParseEventParameters(std::string_view body, const JsonLimits& limits, int64_t now_us,
                                 const workflow::DrugList& drugs);

}  // namespace fls::fhir
