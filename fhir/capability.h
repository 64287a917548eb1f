#pragma once
// The CapabilityStatement, generated from the route table (which interactions exist) and the
// search-parameter registry (which parameters each type takes), never written by hand.

#include <string>
#include <vector>

#include "fhir/schema_validator.h"
#include "fhir/search_params.h"

namespace fls::fhir {

struct CapabilityInput {
  std::string software_version;
  std::string base_url;
  std::vector<std::string> type_interactions;    // R4 TypeRestfulInteraction codes
  std::vector<std::string> system_interactions;  // transaction, batch, history-system, ...
  struct Operation {
    std::string name;        // without '$'
    std::string definition;  // canonical URL of the OperationDefinition
    std::string type;        // resource type, empty for system level
  };
  std::vector<Operation> operations;
};

std::string CapabilityStatementJson(const SchemaValidator& schema, const SearchParamRegistry& registry,
                                    const CapabilityInput& input);

}  // namespace fls::fhir
