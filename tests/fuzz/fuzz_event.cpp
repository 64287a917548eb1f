// The Parameters body of $event (operations.md section 1): every event's parts, value types,
// references, dates and drug codes.
#include <cstddef>
#include <cstdint>

#include "fhir/error.h"
#include "fhir/event_parameters.h"
#include "tests/fuzz/fuzz_common.h"
#include "workflow/drug_list.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace fls;
  static const workflow::DrugList drugs = workflow::DrugList::Parse(fuzz::ReadData("workflow/data/osteoporosis-drugs.json"));
  std::string_view body(reinterpret_cast<const char*>(data), size);
  try {
    (void)fhir::ParseEventParameters(body, fhir::JsonLimits{64}, 1'800'000'000'000'000LL, drugs);
  } catch (const fhir::FhirError&) {
  }
  return 0;
}
