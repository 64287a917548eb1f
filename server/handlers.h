#pragma once
// The thin handlers of the FHIR REST surface: each parses the edges of the request (headers,
// Prefer, content type), calls one FhirService use case and writes the headers.

#include <functional>
#include <string>

#include "db/database.h"
#include "fhir/fhir_service.h"
#include "fhir/measures.h"
#include "fhir/pathway_engine.h"
#include "fhir/schema_validator.h"
#include "server/router.h"

namespace fls::server {

struct HandlerContext {
  fhir::FhirService& service;
  const fhir::SchemaValidator& schema;
  db::Database& db;
  std::string software_version;
  const fhir::PathwayEngine* engine = nullptr;  // the FLS operations; none without it
  std::string canonical_base = "http://fls-server.org/fhir";
  const fhir::MeasureCatalog* measures = nullptr;  // the quality indicators; none without it
  fhir::MeasureConfig measure_config = {};
  // "Type/id" -> a per-deployment pseudonym, for the extracts of callers who may not see
  // identifiers (server/pseudonym.h); none: such callers get no extract.
  std::function<std::string(const std::string&)> pseudonym = nullptr;
};

// Registers every route: FHIR interactions, /metadata, the FLS operations (the probes are the
// listener's). REQUIRES: `ctx`'s members outlive the router.
void RegisterRoutes(Router& router, const HandlerContext& ctx);

}  // namespace fls::server
