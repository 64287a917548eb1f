#pragma once
// The schema and search-parameter registry the server builds at start-up, for unit tests: loaded
// once per test binary from the source tree's data files.

#include <memory>
#include <string>

#include "fhir/schema_validator.h"
#include "fhir/search_params.h"

namespace fls::test {

inline const fhir::SchemaValidator& TestSchema() {
  static std::unique_ptr<fhir::SchemaValidator> schema =
      fhir::SchemaValidator::Load(std::string(FLS_SOURCE_DIR) + "/fhir/data/fhir.schema.json");
  return *schema;
}

inline const fhir::SearchParamRegistry& TestRegistry() {
  static fhir::SearchParamRegistry registry(TestSchema(), "http://fls-server.org/fhir");
  return registry;
}

}  // namespace fls::test
