#pragma once
// Structural validation of every R4 resource type against the official FHIR R4 JSON schema
// (fhir/data/fhir.schema.json: HL7's fhir.schema.json for 4.0.1, descriptions stripped). The
// schema is data loaded at start-up; the primitive types' regular expressions are implemented by
// hand (see CheckPrimitive) so that a hostile 30 MB string cannot make a regex engine recurse.
// Immutable after construction; safe across threads.

#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "fhir/error.h"
#include "fhir/json.h"

namespace fls::fhir {

class SchemaValidator {
 public:
  // Throws std::runtime_error when the file is missing or not the expected schema.
  static std::unique_ptr<SchemaValidator> Load(const std::string& path);

  const std::vector<std::string>& ResourceTypes() const { return resource_types_; }
  bool IsResourceType(std::string_view type) const;
  bool HasElement(std::string_view type, std::string_view element) const;

  // Every problem found (at most 50), each with the FHIRPath of the element; empty when valid.
  // REQUIRES: `resource` went through ParseJson (numbers marked) or has the same shape.
  std::vector<Issue> Validate(const JsonValue& resource) const;

 private:
  SchemaValidator() = default;
  void ValidateNode(const JsonValue& value, const JsonValue& node, const std::string& path,
                    std::vector<Issue>& issues) const;
  void ValidateDefinition(const JsonValue& value, const std::string& def, const std::string& path,
                          std::vector<Issue>& issues) const;
  void ValidateResource(const JsonValue& value, const std::string& path,
                        std::vector<Issue>& issues) const;

  JsonDoc schema_;
  std::unordered_map<std::string, const JsonValue*> definitions_;
  // Choice-type elements (valueDateTime, multipleBirthInteger...) carry their primitive's pattern
  // inline instead of a $ref: the pattern names the primitive type.
  std::unordered_map<std::string, std::string> primitive_by_pattern_;
  std::vector<std::string> resource_types_;
  std::set<std::string, std::less<>> resource_type_set_;
};

}  // namespace fls::fhir
