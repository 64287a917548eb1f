#pragma once
// The registry of search parameters: R4 names and meanings (R4 searchparameter-registry.html),
// each with the element paths its values come from. The indexer, the query parser and the
// CapabilityStatement all read this one table, so what is indexed, what is accepted and what is
// advertised cannot drift apart. Immutable after construction; safe across threads.

#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace fls::fhir {

class SchemaValidator;

enum class ParamType { kToken, kString, kDate, kReference, kQuantity, kUri, kNumber, kSpecial };

const char* ParamTypeName(ParamType t);

struct SearchParamDef {
  std::string resource_type;
  std::string name;
  ParamType type;
  // Element paths below the resource, dot-separated; a segment ending in "[x]" is a choice
  // element (onset[x] matches onsetDateTime, onsetPeriod...). Several paths are a union.
  std::vector<std::string> paths;
  // Reference parameters: the target types the reference must have (empty: any).
  std::vector<std::string> targets;
  std::string documentation;
  // When set, the paths apply to the resource's extensions with this URL (e.g. "valueCode").
  std::string extension_url = {};
  // Server-defined parameters (not in R4): the canonical URL of the SearchParameter the server
  // publishes ({cb}/SearchParameter/{Type}-{name}) and its FHIRPath expression.
  std::string definition = {};
  std::string expression = {};
  // Token parameters over a choice with non-boolean kinds: `true` when a path holds any value
  // other than false (Patient `deceased`: R4's "deceased.exists() and deceased != false", so a
  // deceasedDateTime is true).
  bool present_is_true = false;
};

class SearchParamRegistry {
 public:
  // Builds the table: the explicit R4 parameters below plus, for every type the schema knows,
  // _id, _lastUpdated, _tag, _profile, _security and `identifier` where the type has one.
  // `canonical_base` names the server's own extensions (EpisodeOfCare `stage`).
  SearchParamRegistry(const SchemaValidator& schema, const std::string& canonical_base);

  const SearchParamDef* Find(std::string_view type, std::string_view name) const;
  // The type's parameters in name order (for the indexer and the CapabilityStatement).
  const std::vector<SearchParamDef>& ForType(std::string_view type) const;
  // Every type with parameters, in name order.
  std::vector<std::string> Types() const;
  // The parameters the server defines beyond R4 (published as SearchParameter resources).
  std::vector<const SearchParamDef*> ServerDefined() const;
  // A stable digest of everything that decides the type's index rows (names, types, paths,
  // targets, extension URLs, and the indexer's own version): when it changes, the stored rows of
  // the type are rebuilt at start-up (fhir/reindex.h).
  std::string Fingerprint(std::string_view type) const;

 private:
  void Add(SearchParamDef def);
  std::map<std::string, std::vector<SearchParamDef>, std::less<>> by_type_;
};

}  // namespace fls::fhir
