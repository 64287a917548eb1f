#pragma once
// Turns a search's query parameters into a checked db::SearchSpec (R4 search.html): parameter
// types, modifiers, prefixes, escaping, _sort, _count, _total, paging. Pure; safe across threads.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "db/resource_store.h"
#include "fhir/error.h"
#include "fhir/search_params.h"

namespace fls::fhir {

struct QueryParam {
  std::string name;   // with its modifier, e.g. "name:exact"
  std::string value;  // percent-decoded
};

// Splits and decodes a raw query string ("a=1&b=2"). Throws FhirError(kBadRequest) on a bad
// escape or invalid UTF-8.
std::vector<QueryParam> ParseQueryString(std::string_view raw);

struct SearchRequest {
  db::SearchSpec spec;
  int count = 0;
  enum class Total { kDefault, kNone, kEstimate, kAccurate } total = Total::kDefault;
  bool summary_count = false;
  std::string snapshot_id;  // a further page of an earlier sorted search
  std::string cursor;       // a further page of an id-ordered search: the last id seen
  int snapshot_offset = 0;
  // The filter parameters in a canonical order, encoded (self links, conditional keys).
  std::string canonical_query;
  std::vector<Issue> warnings;  // parameters ignored under Prefer: handling=lenient
  // _include=Source:param[:Target] and _revinclude=Source:param[:Target] (one level).
  struct Include {
    std::string source_type;
    std::string param;
    std::optional<std::string> target_type;
  };
  std::vector<Include> includes, revincludes;
};

// What one search may cost. Constant after start-up (server/config.h fills it).
struct SearchLimits {
  int default_count = 20;
  int max_count = 1000;
  int max_sort_keys = 8;   // more _sort keys answer 400: each is a join and an ORDER BY term
  int max_include = 1000;  // _include/_revinclude resources per page; past it the Bundle says so
};

class SearchParser {
 public:
  SearchParser(const SearchParamRegistry& registry, SearchLimits limits)
      : registry_(registry), limits_(limits) {}

  // Throws FhirError(kBadRequest) naming the parameter on anything unknown or malformed, unless
  // `lenient`, in which case unknown parameters are ignored and reported as warnings.
  SearchRequest Parse(std::string_view type, const std::vector<QueryParam>& params, bool lenient) const;

 private:
  const SearchParamRegistry& registry_;
  SearchLimits limits_;
};

}  // namespace fls::fhir
