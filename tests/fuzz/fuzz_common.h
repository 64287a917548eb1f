#pragma once
// What the fuzz targets share: the server's own data files, loaded once per process as the server
// loads them at start-up. A target catches the errors the code promises for bad input (FhirError,
// std::invalid_argument); anything else escaping (another exception, a crash, a sanitizer report)
// is a finding.

#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "fhir/schema_validator.h"
#include "fhir/search_params.h"

namespace fls::fuzz {

inline std::string Home() {
  const char* h = std::getenv("FLS_HOME");
  return h && *h ? h : FLS_SOURCE_DIR;
}

inline std::string ReadData(const std::string& relative) {
  std::ifstream in(Home() + "/" + relative, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline const fhir::SchemaValidator& Schema() {
  static std::unique_ptr<fhir::SchemaValidator> s = fhir::SchemaValidator::Load(Home() + "/fhir/data/fhir.schema.json");
  return *s;
}

inline const fhir::SearchParamRegistry& Registry() {
  static fhir::SearchParamRegistry r(Schema(), "http://fls-server.org/fhir");
  return r;
}

}  // namespace fls::fuzz
