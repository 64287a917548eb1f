#include "db/database.h"

#include <soci/postgresql/soci-postgresql.h>
#include <soci/soci.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "db/resource_store.h"

namespace fls::db {

namespace {

DbErrorKind KindOf(const std::string& state) {
  if (state == "23505") return DbErrorKind::kUniqueViolation;
  if (state == "40001" || state == "40P01") return DbErrorKind::kRetryable;
  if (state.rfind("08", 0) == 0 || state == "57P01" || state == "57P02" || state == "57P03" ||
      state == "53300") {
    return DbErrorKind::kUnavailable;
  }
  if (state.rfind("22", 0) == 0 || state == "54000" || state == "54001") return DbErrorKind::kBadInput;
  if (state == "57014") return DbErrorKind::kTooCostly;
  return DbErrorKind::kOther;
}

// PostgreSQL's primary message alone: its DETAIL and CONTEXT lines can quote the data (a
// unique key's value, "JSON data, line 1: {...}" of a refused jsonb), which must not reach the log.
std::string PrimaryMessage(const std::string& message) {
  return message.substr(0, message.find('\n'));
}

// Converts a SOCI exception into a DbError without the bound values SOCI appends to what().
DbError Translate(const soci::soci_error& e, const soci::session* sql) {
  std::string state;
  if (auto pe = dynamic_cast<const soci::postgresql_soci_error*>(&e)) state = pe->sqlstate();
  DbErrorKind kind = KindOf(state);
  if (kind == DbErrorKind::kOther &&
      (e.get_error_category() == soci::soci_error::connection_error || sql == nullptr ||
       !sql->is_connected())) {
    kind = DbErrorKind::kUnavailable;
  }
  return DbError(kind, state, PrimaryMessage(e.get_error_message()));
}

bool ConnectionBroken(soci::session& sql) {
  auto* backend = static_cast<soci::postgresql_session_backend*>(sql.get_backend());
  return backend == nullptr || backend->conn_ == nullptr || PQstatus(backend->conn_) != CONNECTION_OK;
}

}  // namespace

Database::Database(DbConfig config) : config_(std::move(config)), slots_(config_.pool_size) {}

Database::~Database() = default;

std::string Database::ConnectString() const {
  // Quiet NOTICEs (cpp-stack.md pitfall 11), a bounded connect time, and no JIT: the server's
  // statements are short, and PostgreSQL 15 compiles any whose estimated cost passes 100,000,
  // which took 0.9-1.5 s of a 1.6 s KPI cohort read of 20,000 cases (docs/performance.md).
  const std::string& url = config_.url;
  std::string timeout = std::to_string(config_.statement_timeout_ms);
  std::string extra_kv = "connect_timeout=" + std::to_string(config_.connect_timeout_s) +
                         " application_name=fls-server options='-c client_min_messages=warning -c jit=off -c statement_timeout=" +
                         timeout + "'";
  if (url.rfind("postgresql://", 0) == 0 || url.rfind("postgres://", 0) == 0) {
    std::string sep = url.find('?') == std::string::npos ? "?" : "&";
    return url + sep + "connect_timeout=" + std::to_string(config_.connect_timeout_s) +
           "&application_name=fls-server&options=-c%20client_min_messages%3Dwarning%20-c%20jit%3Doff%20-c%20statement_timeout%3D" +
           timeout;
  }
  return url + " " + extra_kv;
}

size_t Database::Lease() {
  std::unique_lock lock(mu_);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(config_.lease_timeout_ms);
  for (;;) {
    // Prefer a connected idle slot, then any idle slot.
    size_t best = slots_.size();
    for (size_t i = 0; i < slots_.size(); ++i) {
      if (slots_[i].busy) continue;
      if (slots_[i].session) {
        best = i;
        break;
      }
      if (best == slots_.size()) best = i;
    }
    if (best < slots_.size()) {
      slots_[best].busy = true;
      return best;
    }
    if (free_cv_.wait_until(lock, deadline) == std::cv_status::timeout) {
      throw DbError(DbErrorKind::kUnavailable, "", "no database connection free in time");
    }
  }
}

void Database::GiveBack(size_t slot, bool broken) {
  std::unique_ptr<soci::session> dead;
  {
    std::lock_guard lock(mu_);
    if (broken) dead = std::move(slots_[slot].session);
    slots_[slot].busy = false;
  }
  free_cv_.notify_one();
}

soci::session& Database::Connected(size_t slot) {
  auto& s = slots_[slot].session;  // leased: only this thread touches it
  if (s && ConnectionBroken(*s)) s.reset();
  if (!s) {
    try {
      s = std::make_unique<soci::session>(soci::postgresql, ConnectString());
    } catch (const soci::soci_error& e) {
      s.reset();
      throw DbError(DbErrorKind::kUnavailable, "", e.get_error_message());
    }
  }
  return *s;
}

bool Database::Ping() {
  size_t slot;
  try {
    slot = Lease();
  } catch (const DbError&) {
    return false;
  }
  bool ok = false;
  bool broken = false;
  try {
    soci::session& sql = Connected(slot);
    int one = 0;
    sql << "SELECT 1", soci::into(one);
    ok = one == 1;
  } catch (...) {
    broken = true;
  }
  GiveBack(slot, broken);
  return ok;
}

void Database::Transact(const std::function<void(ResourceStore&)>& fn) {
  static thread_local std::mt19937 rng{std::random_device{}()};
  constexpr int kAttempts = 5;
  for (int attempt = 1;; ++attempt) {
    size_t slot = Lease();
    bool broken = false;
    try {
      soci::session& sql = Connected(slot);
      try {
        sql.begin();
        ResourceStore store(sql);
        fn(store);
        sql.commit();
        GiveBack(slot, false);
        return;
      } catch (const soci::soci_error& e) {
        DbError err = Translate(e, &sql);
        broken = err.kind() == DbErrorKind::kUnavailable || ConnectionBroken(sql);
        if (!broken) {
          try {
            sql.rollback();
          } catch (...) {
            broken = true;
          }
        }
        throw err;
      } catch (...) {
        broken = broken || ConnectionBroken(sql);
        if (!broken) {
          try {
            sql.rollback();
          } catch (...) {
            broken = true;
          }
        }
        throw;
      }
    } catch (const DbError& e) {
      GiveBack(slot, broken || e.kind() == DbErrorKind::kUnavailable);
      if (e.kind() == DbErrorKind::kRetryable && attempt < kAttempts) {
        std::uniform_int_distribution<int> jitter(1, 10 * attempt * attempt);
        std::this_thread::sleep_for(std::chrono::milliseconds(jitter(rng)));
        continue;
      }
      throw;
    } catch (...) {
      GiveBack(slot, broken);
      throw;
    }
  }
}

void Database::Read(const std::function<void(ResourceStore&)>& fn) {
  for (int attempt = 1;; ++attempt) {
    size_t slot = Lease();
    try {
      soci::session& sql = Connected(slot);
      try {
        ResourceStore store(sql);
        fn(store);
        GiveBack(slot, false);
        return;
      } catch (const soci::soci_error& e) {
        throw Translate(e, &sql);
      }
    } catch (const DbError& e) {
      bool broken = e.kind() == DbErrorKind::kUnavailable;
      GiveBack(slot, broken);
      if (broken && attempt < 2) continue;
      throw;
    } catch (...) {
      GiveBack(slot, false);
      throw;
    }
  }
}

void Database::Migrate() {
  namespace fs = std::filesystem;
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(config_.migrations_dir)) {
    if (entry.path().extension() == ".sql") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());

  size_t slot = Lease();
  bool broken = false;
  try {
    soci::session& sql = Connected(slot);
    auto* backend = static_cast<soci::postgresql_session_backend*>(sql.get_backend());
    // Multi-statement files need the simple query protocol, hence PQexec on the raw connection.
    auto exec = [&](const std::string& text) {
      PGresult* res = PQexec(backend->conn_, text.c_str());
      ExecStatusType st = PQresultStatus(res);
      if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        const char* state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        std::string s = state ? state : "";
        std::string msg = PrimaryMessage(PQresultErrorMessage(res));
        PQclear(res);
        throw DbError(s.empty() ? DbErrorKind::kUnavailable : KindOf(s), s, msg);
      }
      PQclear(res);
    };
    exec("SET statement_timeout = 0");  // a long migration is not a slow request
    exec("SELECT pg_advisory_lock(7314159)");
    try {
      exec("CREATE TABLE IF NOT EXISTS schema_migration (version integer PRIMARY KEY, name text NOT NULL, "
           "applied_at timestamptz NOT NULL DEFAULT now())");
      for (const auto& file : files) {
        std::string name = file.filename().string();
        int version = std::stoi(name.substr(0, name.find('_')));
        int count = 0;
        sql << "SELECT count(*) FROM schema_migration WHERE version = :v", soci::use(version),
            soci::into(count);
        if (count > 0) continue;
        std::ifstream in(file);
        std::stringstream text;
        text << in.rdbuf();
        exec("BEGIN");
        try {
          exec(text.str());
          exec("INSERT INTO schema_migration (version, name) VALUES (" + std::to_string(version) +
               ", '" + name + "')");  // file names are ours: [0-9a-z_.]
          exec("COMMIT");
        } catch (...) {
          try {
            exec("ROLLBACK");
          } catch (...) {
          }
          throw;
        }
      }
    } catch (...) {
      try {
        exec("SELECT pg_advisory_unlock(7314159)");
      } catch (...) {
      }
      throw;
    }
    exec("SELECT pg_advisory_unlock(7314159)");
    exec("RESET statement_timeout");
  } catch (const soci::soci_error& e) {
    broken = true;
    GiveBack(slot, broken);
    throw Translate(e, nullptr);
  } catch (const DbError& e) {
    GiveBack(slot, e.kind() == DbErrorKind::kUnavailable);
    throw;
  } catch (...) {
    GiveBack(slot, true);
    throw;
  }
  GiveBack(slot, false);
}

}  // namespace fls::db
