#pragma once
// Serialises searchset and history Bundles around stored resource text (no re-parsing of the
// stored JSON: it is written raw into the entry).

#include <optional>
#include <string>
#include <vector>

#include "db/resource_store.h"
#include "fhir/error.h"

namespace fls::fhir {

struct BundleLinks {
  std::string self, next, previous;
};

// `included` are _include/_revinclude resources (search.mode "include").
std::string SearchsetBundle(const std::vector<db::VersionRow>& rows, const std::string& base_url,
                            std::optional<int> total, const BundleLinks& links,
                            const std::vector<Issue>& warnings,
                            const std::vector<db::VersionRow>& included = {});

std::string HistoryBundle(const std::vector<db::HistoryPage::Entry>& entries,
                          const std::string& base_url, std::optional<int> total,
                          const BundleLinks& links);

}  // namespace fls::fhir
