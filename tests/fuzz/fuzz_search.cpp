// Hostile query strings: the first byte picks the resource type, the rest is the query, parsed
// as a search (every parameter type, modifiers, prefixes, dates, _sort, _include, _count...).
#include <cstddef>
#include <cstdint>

#include "fhir/error.h"
#include "fhir/fhir_date.h"
#include "fhir/search_request.h"
#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace fls;
  static const fhir::SearchParser parser(fuzz::Registry(), fhir::SearchLimits{});
  static const char* kTypes[] = {"Patient", "Observation", "Task", "EpisodeOfCare", "Condition", "Encounter",
                                 "AuditEvent", "MedicationRequest", "Consent", "Communication", "Organization", "Flag"};
  if (size == 0) return 0;
  const char* type = kTypes[data[0] % (sizeof kTypes / sizeof kTypes[0])];
  bool lenient = data[0] & 0x80;
  std::string_view query(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    auto params = fhir::ParseQueryString(query);
    (void)parser.Parse(type, params, lenient);
  } catch (const fhir::FhirError&) {
  }
  (void)fhir::ParseFhirDate(query);
  (void)fhir::DayOf(query);
  return 0;
}
