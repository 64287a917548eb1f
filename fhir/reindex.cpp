#include "fhir/reindex.h"

#include <map>
#include <utility>
#include <vector>

#include "fhir/indexer.h"
#include "fhir/json.h"

namespace fls::fhir {

ReindexReport BringIndexUpToDate(db::Database& database, const SearchParamRegistry& registry,
                                 const ReindexLog& progress, int batch_size) {
  ReindexReport report;
  Indexer indexer(registry);
  std::map<std::string, std::string> stored;
  const auto types = registry.Types();
  database.Read([&](db::ResourceStore& st) {
    for (const auto& type : types) stored[type] = st.IndexFingerprint(type);
  });
  std::vector<std::pair<std::string, std::string>> changed;
  for (const auto& type : types) {
    ++report.types_checked;
    const std::string fingerprint = registry.Fingerprint(type);
    if (stored[type] == fingerprint) continue;
    bool any = false;
    database.Read([&](db::ResourceStore& st) { any = st.AnyCurrent(type); });
    if (any) {
      ++report.types_rebuilt;
      std::string after;  // ids sort after ""
      long long done = 0;
      for (;;) {
        int n = 0;
        std::string last;
        database.Transact([&](db::ResourceStore& st) {
          auto rows = st.LockCurrentBatch(type, after, batch_size);
          n = static_cast<int>(rows.size());
          for (const auto& row : rows) {
            JsonDoc doc = ParseJson(row.content, JsonLimits{1 << 20});  // stored: accepted once
            st.ReplaceIndex(type, row.id, indexer.Extract(type, doc));
            last = row.id;
          }
        });
        if (n == 0) break;
        after = last;
        done += n;
        if (progress) progress(type, done);
        if (n < batch_size) break;
      }
      report.resources_reindexed += done;
    }
    changed.emplace_back(type, fingerprint);
  }
  if (!changed.empty()) {
    database.Transact([&](db::ResourceStore& st) {
      for (const auto& [type, fingerprint] : changed) st.SetIndexFingerprint(type, fingerprint);
    });
  }
  return report;
}

}  // namespace fls::fhir
