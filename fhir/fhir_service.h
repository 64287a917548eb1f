#pragma once
// The FHIR REST interactions as use cases (R4 http.html): read, vread, create, update, delete,
// conditional create/update/delete, search, history, and transaction/batch Bundles
// (transaction.cpp). HTTP-free: server/ turns requests into these calls and Outcomes into
// responses. Every write runs in one database transaction with its index rows.
// Thread-safe: holds only references to thread-safe collaborators and constant configuration.

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "db/database.h"
#include "db/resource_store.h"
#include "fhir/error.h"
#include "fhir/indexer.h"
#include "fhir/json.h"
#include "fhir/schema_validator.h"
#include "fhir/search_params.h"
#include "fhir/search_request.h"

namespace fls::fhir {

struct ServiceConfig {
  JsonLimits json;
  SearchLimits search;
  int max_bundle_entries = 10000;
  // The wall clock a whole transaction or batch Bundle may take, parsing included; past it the
  // transaction rolls back (400 too-costly) and a batch's remaining entries are not run.
  int transaction_timeout_ms = 120000;
  // Where database failures that become part of an answer (batch entries) are logged.
  std::function<void(const std::string& request_id, const db::DbError& error)> on_db_error;
};

// When a request must be done by, and the limit that set it (for messages). Immutable value.
struct Deadline {
  std::chrono::steady_clock::time_point at;
  int limit_ms = 0;
  static Deadline In(int limit_ms) {
    return {std::chrono::steady_clock::now() + std::chrono::milliseconds(limit_ms), limit_ms};
  }
  int64_t RemainingMs() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(at - std::chrono::steady_clock::now()).count();
  }
  bool Passed() const { return RemainingMs() <= 0; }
};

// What a client asked for beyond the URL and body.
struct RequestInfo {
  std::string base_url;                     // e.g. http://127.0.0.1:8080 (no trailing slash)
  std::string request_id;                   // for messages that point at the log
  std::string prefer_return;                // minimal | representation | OperationOutcome
  bool lenient = false;                     // Prefer: handling=lenient
  std::optional<std::string> if_match;      // ETag, W/"n" or "n"
  std::optional<std::string> if_none_exist; // conditional create query (no leading '?')
  std::optional<Deadline> deadline;         // set for the entries of a Bundle (transaction.cpp)
  // Access control beyond the route (server/auth.h): whether the requester may use `interaction`
  // ('c', 'r', 'u', 'd', 's') on `type`. Checked for each Bundle entry (a refused one is 403) and
  // for each _include/_revinclude resource (left out). Null: everything is allowed.
  std::function<bool(const std::string& type, char interaction)> may;
  // Set for a requester limited to sites (a coordinator): the Organization ids whose patients and
  // cases it may reach. Searches are narrowed to them, reads of anything else are 404, writes
  // about another site's patient 403 (FhirService::Visible).
  std::optional<std::vector<std::string>> sites;
  // Set for a requester who edits an FLS case only in who is in charge of it (a coordinator): the
  // EpisodeOfCare members an update may change (careManager, team). Any other change of an
  // existing case by update is 403: the case moves through the pathway's operations.
  std::vector<std::string> case_members_editable;
  // Who asks: the login of a person, the client id of a system (empty when unknown). The pathway's
  // event log records it as the actor of the events a request posts.
  std::string actor;
};

// The result of one interaction, as the HTTP layer or a Bundle entry needs it.
struct Outcome {
  int status = 200;
  std::string body;           // JSON; empty for no body
  std::string location;       // absolute URL with _history/n for writes
  std::string etag;           // W/"n"
  std::string last_modified;  // FHIR instant
  std::string resource_type, id;
  int version = 0;
};

// A resource version just written inside a transaction, for observers such as case finding.
struct WrittenResource {
  std::string type;
  std::string id;
  int version = 0;
  bool created = false;
  bool deleted = false;
  const JsonValue* resource = nullptr;  // null for a deletion; valid during the callback only
  bool server_made = false;  // written by the server itself (WriteContext::Create/Update)
};

class FhirService;

// The writes of one database transaction, for the use cases and for listeners that write in the
// same transaction as the data that triggered them. Lives for one transaction attempt; not
// thread-safe.
class WriteContext {
 public:
  WriteContext(FhirService& service, db::ResourceStore& store) : service_(service), store_(store) {}
  db::ResourceStore& store() { return store_; }

  // Server-made writes (no Prefer, no If-Match): create with `id`, update (creating if absent).
  Outcome Create(const std::string& type, JsonDoc& doc, const std::string& id);
  Outcome Update(const std::string& type, const std::string& id, JsonDoc& doc);
  // The current version of a resource as a client would read it (body, ETag), inside this
  // transaction; throws FhirError 404 when absent or deleted.
  Outcome Current(const std::string& type, const std::string& id);
  // The ids of the current resources matching a search query ("patient=Patient/1&status=active").
  std::vector<std::string> Search(const std::string& type, const std::string& query, int limit = 100);
  // Runs after the listeners, still inside the transaction (to report their changes).
  void AfterListeners(std::function<void()> fn) { after_listeners_.push_back(std::move(fn)); }
  // Throws FhirError(kTooCostly) once the transaction's deadline (if any) has passed, so that
  // the transaction rolls back; and keeps the statements' own timeout within the time left
  // (SET LOCAL statement_timeout, re-armed as the time left shrinks: a few round trips per
  // transaction, not one per call). Cheap otherwise: call it between steps of any length.
  void CheckDeadline();

 private:
  friend class FhirService;
  // REQUIRES: called once, first thing in the transaction. `statement_timeout_ms` is the
  // session's own limit (db::DbConfig), which the time left replaces only when shorter.
  void SetDeadline(const Deadline& deadline, int statement_timeout_ms);
  FhirService& service_;
  db::ResourceStore& store_;
  std::optional<Deadline> deadline_;
  int64_t armed_ms_ = 0;  // the statement timeout in force in this transaction
  std::vector<std::unique_ptr<class TransactionListener>> listeners_;
  std::vector<std::function<void()>> after_listeners_;
  int server_writes_ = 0;  // > 0 while Create/Update run
};

// Sees every write of a transaction and may add its own before the commit, so that what it
// writes commits or rolls back with the data that triggered it (case finding).
class TransactionListener {
 public:
  virtual ~TransactionListener() = default;
  virtual void OnWrite(const WrittenResource& written) = 0;
  // Once, after the transaction's own writes, before commit. Its writes reach OnWrite too.
  virtual void BeforeCommit(WriteContext& ctx) = 0;
};
using ListenerFactory = std::function<std::unique_ptr<TransactionListener>()>;

class FhirService {
 public:
  FhirService(db::Database& db, const SchemaValidator& schema, const SearchParamRegistry& registry,
              ServiceConfig config);

  // REQUIRES: before the first request (not synchronised). One listener per transaction attempt.
  void AddListener(ListenerFactory factory) { listener_factories_.push_back(std::move(factory)); }
  // Runs `fn` in one transaction with the listeners; retried as a whole (Database::Transact).
  // With a deadline, every attempt must end before it (WriteContext::CheckDeadline).
  void Write(const std::function<void(WriteContext&)>& fn,
             const std::optional<Deadline>& deadline = std::nullopt);

  bool IsResourceType(std::string_view type) const { return schema_.IsResourceType(type); }
  const SearchParamRegistry& registry() const { return registry_; }

  Outcome Read(const std::string& type, const std::string& id, const RequestInfo& info = {});
  Outcome VRead(const std::string& type, const std::string& id, const std::string& version,
                const RequestInfo& info = {});
  // Whether a requester limited to sites (info.sites) may reach the resource: always true without
  // sites; for patient data, true when it belongs to a patient or case of those sites.
  bool Visible(const std::string& type, const std::string& id, const RequestInfo& info);
  Outcome Create(const std::string& type, std::string_view body, const RequestInfo& info);
  Outcome Update(const std::string& type, const std::string& id, std::string_view body,
                 const RequestInfo& info);
  Outcome ConditionalUpdate(const std::string& type, const std::vector<QueryParam>& query,
                            std::string_view body, const RequestInfo& info);
  Outcome Delete(const std::string& type, const std::string& id, const RequestInfo& info);
  Outcome ConditionalDelete(const std::string& type, const std::vector<QueryParam>& query,
                            const RequestInfo& info);
  Outcome Search(const std::string& type, const std::vector<QueryParam>& query,
                 const RequestInfo& info);
  // type and id empty for system history; id empty for type history.
  Outcome History(const std::string& type, const std::string& id,
                  const std::vector<QueryParam>& query, const RequestInfo& info);
  // POST / with a transaction or batch Bundle (transaction.cpp).
  Outcome ProcessBundle(std::string_view body, const RequestInfo& info);

  // Read-only statements outside a transaction (db::Database::Read), for the FLS operations
  // (fhir/case_events.cpp...) that read their own tables.
  void ReadStore(const std::function<void(db::ResourceStore&)>& fn) { db_.Read(fn); }
  // One transaction on the FLS operations' own tables (db::Database::Transact: retried on a
  // serialization failure, so fn has no effect outside it).
  void TransactStore(const std::function<void(db::ResourceStore&)>& fn) { db_.Transact(fn); }
  const std::vector<std::string>& ResourceTypes() const { return schema_.ResourceTypes(); }

 private:
  friend class BundleProcessor;
  friend class WriteContext;

  // The site restriction of a search of `type` (nullopt: none); throws 403 for a type that holds
  // patient data the server cannot attribute to a site.
  std::optional<db::SiteScope> SiteScopeFor(const std::string& type, const RequestInfo& info) const;
  bool VisibleIn(db::ResourceStore& st, const std::string& type, const std::string& id, const RequestInfo& info) const;
  // A requester limited to sites writes only about its own patients (403 otherwise).
  void CheckWriteScope(db::ResourceStore& st, const std::string& type, const JsonValue& resource,
                       const RequestInfo& info) const;

  // Parses and validates a resource body for `type`; throws FhirError with every issue.
  JsonDoc ParseResource(const std::string& type, std::string_view body) const;
  void CheckResource(const std::string& type, const JsonValue& resource,
                     const std::string& path_prefix) const;

  // The write steps, inside a transaction. `doc` is stamped with id and meta.
  Outcome DoCreate(WriteContext& ctx, const std::string& type, JsonDoc& doc,
                   const std::string& id, const RequestInfo& info);
  Outcome DoUpdate(WriteContext& ctx, const std::string& type, const std::string& id,
                   JsonDoc& doc, const RequestInfo& info, bool allow_create = true);
  Outcome DoDelete(WriteContext& ctx, const std::string& type, const std::string& id,
                   const RequestInfo& info);
  // Conditional create's lookup: the existing match (200) or nullopt when the caller must create
  // under the claimed key. Throws 412 on several matches.
  std::optional<Outcome> FindForConditionalCreate(db::ResourceStore& st, const std::string& type,
                                                  const std::string& query, const std::string& new_id,
                                                  const RequestInfo* info = nullptr);
  // Claims the conditional key of `req` for `new_id`. Returns nullopt when the caller must create
  // `new_id`, or the id of the resource that a concurrent or earlier writer created for the same
  // criteria and that still matches them.
  std::optional<std::string> ClaimConditionalKey(db::ResourceStore& st, const std::string& type,
                                                 const SearchRequest& req, const std::string& new_id) const;
  std::vector<std::string> MatchIds(db::ResourceStore& st, const std::string& type,
                                    const std::vector<QueryParam>& query, int limit) const;
  Outcome ReadOutcome(const db::VersionRow& row, const RequestInfo& info, int status) const;
  // The _include / _revinclude resources of a page of matches, at most search.max_include;
  // `truncated` says whether the cap left some out.
  std::vector<db::VersionRow> Included(db::ResourceStore& st, const std::string& type, const SearchRequest& req,
                                       const std::vector<db::VersionRow>& matches, bool& truncated) const;
  // A listener may have written a later version of what the use case wrote: answer with it.
  void Refresh(db::ResourceStore& st, Outcome& out, const RequestInfo& info) const;
  void Notify(WriteContext& ctx, const WrittenResource& w) const;

  db::Database& db_;
  const SchemaValidator& schema_;
  const SearchParamRegistry& registry_;
  const Indexer indexer_;
  const SearchParser parser_;
  const ServiceConfig config_;
  std::vector<ListenerFactory> listener_factories_;
};

// The FhirError a database failure means for the client (SQLSTATE classes in db/database.cpp).
// The message is safe for clients; `request_id` ties it to the log line with the details.
FhirError FromDbError(const db::DbError& error, const std::string& request_id);

// The answer to a Bundle, or one of its transactions, that ran past `deadline`: 400 too-costly,
// saying the limit and that the transaction was rolled back.
FhirError PastDeadline(const Deadline& deadline);

// Parses an ETag / If-Match value (W/"3", "3", 3) into a version number; nullopt if malformed.
std::optional<int> ParseETagVersion(std::string_view etag);

}  // namespace fls::fhir
