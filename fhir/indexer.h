#pragma once
// Extracts the search index rows of a resource, one set per search parameter of its type, as the
// registry's paths say. Pure: no I/O. Immutable after construction; safe across threads.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "db/resource_store.h"
#include "fhir/json.h"
#include "fhir/search_params.h"

namespace fls::fhir {

// A reference split into its target type and id ("Patient/1", "Patient/1/_history/2" -> Patient,
// 1). An absolute URL ("http://x/fhir/Patient/1") is another server's resource: type Patient, id
// the whole URL (without _history). Unparseable references keep the whole string as the id and
// no type. Contained references ("#x") give nullopt.
struct ParsedReference {
  std::optional<std::string> type;
  std::string id;
};
std::optional<ParsedReference> ParseReference(std::string_view reference,
                                              bool (*is_type)(std::string_view) = nullptr);

// Collects the values found at `path` (dot-separated, [x] choice segments) below `node`.
void CollectPath(const JsonValue& node, std::string_view path, std::vector<const JsonValue*>& out);

// The (system, code) of every coding at `element` (a CodeableConcept path: "code",
// "medicationCodeableConcept", "category"...); codings without a code are left out.
std::vector<std::pair<std::string, std::string>> CodingsOf(const JsonValue& resource, std::string_view element);

class Indexer {
 public:
  explicit Indexer(const SearchParamRegistry& registry) : registry_(registry) {}
  db::IndexRows Extract(std::string_view type, const JsonValue& resource) const;

 private:
  const SearchParamRegistry& registry_;
};

}  // namespace fls::fhir
