#pragma once
// Keeps the stored search index rows in step with the registry. At start-up, for every type whose
// registry fingerprint (SearchParamRegistry::Fingerprint) differs from the one recorded with its
// rows (table search_index_state), the rows of its current resources are rebuilt in batches, each
// batch one transaction that locks its resources; then the new fingerprint is recorded. A type with
// no resources is only recorded. Idempotent: a crash part-way rebuilds the type again on the next
// start. Writers that run meanwhile index with the same registry, so nothing is missed.

#include <functional>
#include <string>

#include "db/database.h"
#include "fhir/search_params.h"

namespace fls::fhir {

struct ReindexReport {
  int types_checked = 0;
  int types_rebuilt = 0;
  long long resources_reindexed = 0;
};

using ReindexLog = std::function<void(const std::string& type, long long done)>;

ReindexReport BringIndexUpToDate(db::Database& database, const SearchParamRegistry& registry,
                                 const ReindexLog& progress = {}, int batch_size = 500);

}  // namespace fls::fhir
