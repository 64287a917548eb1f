#pragma once
// All SQL on resources, their versions, search index rows, conditional keys and search snapshots.
// One ResourceStore lives for one transaction (Database::Transact) and is not thread-safe.
// Values reach PostgreSQL only as bound parameters.

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace soci {
class session;
}

namespace fls::db {

// Search index rows of one resource version, as fhir/indexer.cpp extracts them.
struct IndexRows {
  struct Token {
    std::string param;
    std::optional<std::string> system;
    std::string code;
  };
  struct String {
    std::string param;
    std::string norm;   // normalised (one row per word start)
    std::string exact;  // as sent
  };
  struct Date {
    std::string param;
    std::string lo, hi;  // PostgreSQL instants, [lo, hi); "-infinity" / "infinity" allowed
  };
  struct Reference {
    std::string param;
    std::optional<std::string> target_type;
    std::string target_id;
  };
  struct Quantity {
    std::string param;
    std::string value;  // decimal text
    std::optional<std::string> system, code;
  };
  std::vector<Token> tokens;
  std::vector<String> strings;
  std::vector<Date> dates;
  std::vector<Reference> references;
  std::vector<Quantity> quantities;
};

struct VersionRow {
  std::string type;
  std::string id;
  int version = 0;
  long long last_updated_us = 0;  // microseconds since the epoch (UTC)
  bool deleted = false;
  std::string method;        // POST, PUT, DELETE
  std::string content;       // JSON text; empty for a deletion
};

struct CurrentState {
  int version = 0;
  bool deleted = false;
};

// A search, already parsed and checked by fhir/; this is only what SQL needs.
struct SearchPredicate {
  enum class Table { kToken, kString, kDate, kReference, kQuantity, kId, kLastUpdated };
  struct Alternative {
    // token: code (empty with system_only), system when match_system (nullopt: no system)
    std::string code;
    std::optional<std::string> system;
    bool match_system = false;
    bool system_only = false;
    // string: text with mode
    enum class StringMode { kPrefix, kExact, kContains } string_mode = StringMode::kPrefix;
    std::string text;
    // date: the comparator and the range of the search value [lo, hi); quantity: the comparator,
    // the value in lo and half a unit of its last digit in hi
    std::string prefix = "eq";
    std::string lo, hi;
    // reference
    std::optional<std::string> target_type;
    std::string target_id;
  };
  Table table = Table::kToken;
  std::string param;
  bool negate = false;                 // :not
  std::optional<bool> missing;         // :missing=true|false (alternatives unused)
  std::vector<Alternative> any_of;     // ORed
  // A chained parameter (`subject:Patient.identifier=x`): this reference parameter `param` names
  // a `chain_type` resource that matches `chain` (one level; no :not nor :missing inside).
  std::shared_ptr<const SearchPredicate> chain;
  std::string chain_type;
};

struct SearchSort {
  SearchPredicate::Table table = SearchPredicate::Table::kLastUpdated;
  std::string param;
  bool descending = false;
};

// Access by site (a coordinator's token, server/auth.h): only what belongs to the patients and
// cases of these sites (Organization ids, the FLS cases' site_org).
struct SiteScope {
  enum class Kind {
    kPatientSelf,   // Patient: a patient with a case at one of the sites
    kCase,          // EpisodeOfCare: a case of one of the sites
    kOwner,         // Task: owned by one of the sites
    kPatientParam,  // a reference parameter (`param`) to such a patient
  };
  Kind kind = Kind::kPatientSelf;
  std::string param;
  std::vector<std::string> sites;
};

struct SearchSpec {
  std::string type;
  std::vector<SearchPredicate> where;  // ANDed
  std::vector<SearchSort> sort;
  std::optional<SiteScope> site_scope;
};

struct SearchPage {
  std::vector<VersionRow> rows;  // the page, in order, current versions
  std::optional<int> total;
  std::string snapshot_id;       // empty when every match fits on this page
  int offset = 0;
  bool has_more = false;
};

struct HistoryQuery {
  std::optional<std::string> type;  // none: the whole system
  std::optional<std::string> id;
  std::optional<std::string> since;  // PostgreSQL instant
  std::optional<long long> before_seq;
  int count = 20;
};

struct HistoryPage {
  struct Entry {
    VersionRow row;
    long long seq = 0;
  };
  std::vector<Entry> entries;  // newest first
  bool has_more = false;
  std::optional<int> total;
};

class ResourceStore {
 public:
  explicit ResourceStore(soci::session& sql) : sql_(sql) {}

  // The current version's number and deletion flag, locking the row until the transaction ends
  // (SELECT ... FOR UPDATE) so that concurrent writers of one resource queue up.
  std::optional<CurrentState> LockCurrent(const std::string& type, const std::string& id);

  std::optional<VersionRow> ReadCurrent(const std::string& type, const std::string& id);
  std::optional<VersionRow> ReadVersion(const std::string& type, const std::string& id, int version);

  // Version 1 of a new resource. Returns false, writing nothing, when (type, id) exists already.
  bool InsertNew(const VersionRow& row, const IndexRows& index);
  // The next version of an existing resource. REQUIRES: LockCurrent(type, id) in this transaction.
  void InsertNextVersion(const VersionRow& row, const IndexRows& index);
  // A deletion version. REQUIRES: LockCurrent(type, id) in this transaction.
  void InsertDeletion(const VersionRow& row);

  // Re-indexing (fhir/reindex.cpp): up to `limit` current, not deleted resources of `type` with
  // ids after `after_id` in id order, locked (FOR UPDATE) until the transaction ends.
  std::vector<VersionRow> LockCurrentBatch(const std::string& type, const std::string& after_id, int limit);
  // Replaces the index rows of one current resource. REQUIRES: the resource locked.
  void ReplaceIndex(const std::string& type, const std::string& id, const IndexRows& index);
  // The registry fingerprint the stored index rows of `type` were built with ("" when none).
  std::string IndexFingerprint(const std::string& type);
  void SetIndexFingerprint(const std::string& type, const std::string& fingerprint);
  // Whether any current resource of `type` exists.
  bool AnyCurrent(const std::string& type);

  // Claims `query` for resource `id`. Returns nullopt when claimed, or the owner's id when another
  // resource holds it (after waiting for that writer's transaction to end).
  std::optional<std::string> ClaimConditionalKey(const std::string& type, const std::string& query,
                                                 const std::string& id);
  // Moves a key from `old_owner` to `new_owner`; false when another transaction moved it first.
  bool ReplaceConditionalKeyOwner(const std::string& type, const std::string& query,
                                  const std::string& old_owner, const std::string& new_owner);
  void DropConditionalKeys(const std::string& type, const std::string& id);

  // First page of a search; stores a snapshot when there is more than one page (the total is
  // then known; with count 0 only the total is computed).
  SearchPage Search(const SearchSpec& spec, int count);
  // A page in id order after `after_id` (keyset paging: ids never change, so every match that
  // exists throughout is seen exactly once whatever others write). has_more says whether there
  // is a next page; total is not computed.
  SearchPage SearchAfter(const SearchSpec& spec, int count, const std::string& after_id);
  // _include: the current resources that `param` of the given resources points to (local
  // references to resources that exist and are not deleted), at most `limit`.
  std::vector<VersionRow> ReferencedBy(const std::string& type, const std::vector<std::string>& ids,
                                       const std::string& param, const std::optional<std::string>& target_type,
                                       int limit);
  // _revinclude: the current resources of `source_type` whose `param` points to one of the given
  // resources, at most `limit`.
  std::vector<VersionRow> Referring(const std::string& source_type, const std::string& param,
                                    const std::string& target_type, const std::vector<std::string>& target_ids,
                                    int limit);
  // Ids of every match (for conditional operations), at most `limit`.
  std::vector<std::string> SearchIds(const SearchSpec& spec, int limit);
  // A further page of a stored snapshot; nullopt when the snapshot expired or never existed.
  std::optional<SearchPage> SnapshotPage(const std::string& snapshot_id, const std::string& type,
                                         int offset, int count);
  long long Count(const SearchSpec& spec);

  HistoryPage History(const HistoryQuery& query);

  // This transaction's statements are cancelled (SQLSTATE 57014) after `ms` milliseconds each,
  // instead of the session's statement_timeout (SET LOCAL: the transaction's end restores it).
  void SetStatementTimeout(long long ms);

 private:
  friend class CaseStore;
  friend class AuthStore;
  friend class KpiStore;
  friend class ExportStore;
  void DeleteIndex(const std::string& type, const std::string& id);
  std::vector<VersionRow> ReadCurrentMany(const std::string& type, const std::vector<std::string>& ids);

  soci::session& sql_;
};

}  // namespace fls::db
