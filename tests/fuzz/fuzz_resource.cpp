// Resource JSON as a client sends it: parsing (depth, UTF-8, numbers), schema validation, and the
// search index rows the server would extract.
#include <cstddef>
#include <cstdint>

#include "fhir/error.h"
#include "fhir/indexer.h"
#include "fhir/json.h"
#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace fls;
  static const fhir::Indexer indexer(fuzz::Registry());
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    fhir::JsonDoc doc = fhir::ParseJson(text, fhir::JsonLimits{64});
    if (!doc.IsObject()) return 0;
    auto type = fhir::StringMember(doc, "resourceType");
    if (!type || !fuzz::Schema().IsResourceType(*type)) return 0;
    auto issues = fuzz::Schema().Validate(doc);
    (void)indexer.Extract(*type, doc);
    (void)fhir::Serialize(doc);
    (void)issues;
  } catch (const fhir::FhirError&) {
  }
  return 0;
}
