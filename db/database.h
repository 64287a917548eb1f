#pragma once
// The connection pool, transactions with retry, and schema migrations. The only SOCI user besides
// resource_store.cpp; nothing above db/ sees a SOCI type.
//
// Thread-safety: Database is safe for concurrent use. A ResourceStore handed to a transaction
// function belongs to that call alone.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

namespace soci {
class session;
}

namespace fls::db {

class ResourceStore;

enum class DbErrorKind {
  kUnavailable,    // cannot reach the database, or no connection free in time: 503
  kUniqueViolation,
  kRetryable,      // serialization failure or deadlock that survived the retries
  kBadInput,       // the database refused a value (22xxx, 54000) or it nests too deep (54001): 400
  kTooCostly,      // the statement ran past statement_timeout (57014): 400 too-costly
  kOther,
};

// A database failure. what() is safe to log: PostgreSQL's primary message only, without the
// bound values, DETAIL or CONTEXT (which can quote data), hence no patient data.
class DbError : public std::runtime_error {
 public:
  DbError(DbErrorKind kind, std::string sqlstate, const std::string& message)
      : std::runtime_error(message), kind_(kind), sqlstate_(std::move(sqlstate)) {}
  DbErrorKind kind() const { return kind_; }
  const std::string& sqlstate() const { return sqlstate_; }

 private:
  DbErrorKind kind_;
  std::string sqlstate_;
};

struct DbConfig {
  std::string url;                 // libpq URL or keyword/value conninfo
  int pool_size = 8;
  int lease_timeout_ms = 10000;    // waiting longer for a free connection answers 503
  int connect_timeout_s = 3;
  int statement_timeout_ms = 30000;  // no request may hold a session longer
  std::string migrations_dir;      // folder of NNN_name.sql files
};

class Database {
 public:
  explicit Database(DbConfig config);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  // Applies the migrations not yet applied, each in its own transaction, under an advisory lock so
  // that two servers starting together do not race. Throws DbError.
  void Migrate();
  // Requests are served (not 503) once the start-up steps after Migrate (knowledge published,
  // search index brought up to the registry) have run: main calls MarkReady.
  void MarkReady() { migrated_ = true; }
  bool migrated() const { return migrated_.load(); }

  // True when a connection answers `SELECT 1`.
  bool Ping();

  // Runs fn inside one transaction and commits. A serialization failure or deadlock rolls back
  // and runs fn again (up to 5 times, jittered back-off), so fn must have no effect outside the
  // transaction. Any exception from fn rolls back and propagates; database failures propagate as
  // DbError. A lost connection is never retried here: the outcome of a write is then unknown.
  void Transact(const std::function<void(ResourceStore&)>& fn);

  // Runs read-only statements without an explicit transaction (each statement sees the data
  // committed when it starts): one round trip per statement instead of three. Reads are
  // idempotent, so a connection found dead is replaced and fn is run once more.
  void Read(const std::function<void(ResourceStore&)>& fn);

  const DbConfig& config() const { return config_; }
  // The libpq connect string every session uses (the URL with timeouts and quiet notices).
  std::string ConnectString() const;

 private:
  struct Slot {
    std::unique_ptr<soci::session> session;  // null until connected; reset after a lost connection
    bool busy = false;
  };
  size_t Lease();
  void GiveBack(size_t slot, bool broken);
  soci::session& Connected(size_t slot);

  const DbConfig config_;  // constant after construction
  std::mutex mu_;
  std::condition_variable free_cv_;
  std::vector<Slot> slots_;  // guarded by mu_ (the busy flags; a leased slot's session belongs to
                             // its lessee)
  std::atomic<bool> migrated_{false};
};

}  // namespace fls::db
