#include "db/kpi_store.h"

#include <libpq-fe.h>
#include <soci/postgresql/soci-postgresql.h>
#include <soci/soci.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>

#include "db/sql_words.h"

namespace fls::db {

KpiStore::KpiStore(ResourceStore& store) : sql_(store.sql_) {}

namespace {

[[noreturn]] void Fail(PGconn* conn, const PGresult* r) {
  const char* state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
  const std::string message = r ? PQresultErrorMessage(r) : PQerrorMessage(conn);
  const std::string code = state ? state : "";
  if (code.size() == 5) throw soci::postgresql_soci_error(message, code.c_str());
  throw soci::soci_error(message.empty() ? "the database did not answer" : message);
}

// Reads a query's rows (binary) one at a time on the session's own connection, in its
// transaction if it has one, so that a cohort of a million cases is never held whole, neither by
// libpq nor here: SOCI's rowset would fetch the whole result first. (A cursor fetched in batches
// was measured too: 0.7-0.95 s for a cohort of 200,000 cases against 0.5-0.6 s in single-row
// mode, which keeps PostgreSQL producing rows while they are read; docs/performance.md.) Errors
// become SOCI's, so that the pool and the handlers classify them as for any other statement; an
// unfinished result is drained before returning.
class SingleRows {
 public:
  SingleRows(soci::session& sql, const std::string& text, const std::vector<const char*>& values)
      : conn_(static_cast<soci::postgresql_session_backend*>(sql.get_backend())->conn_) {
    if (conn_ == nullptr || PQstatus(conn_) != CONNECTION_OK) throw soci::soci_error("no connection to the database");
    if (!PQsendQueryParams(conn_, text.c_str(), static_cast<int>(values.size()), nullptr, values.data(), nullptr, nullptr, 1)) {
      Fail(conn_, nullptr);
    }
    sent_ = true;
    PQsetSingleRowMode(conn_);
  }
  ~SingleRows() { Drain(); }
  SingleRows(const SingleRows&) = delete;
  SingleRows& operator=(const SingleRows&) = delete;

  // Moves to the next row; false at the end.
  bool Next() {
    Clear();
    if (!sent_) return false;
    res_ = PQgetResult(conn_);
    if (res_ == nullptr) {
      sent_ = false;
      return false;
    }
    const ExecStatusType st = PQresultStatus(res_);
    if (st == PGRES_SINGLE_TUPLE) return true;
    if (st == PGRES_TUPLES_OK) return Next();  // the end marker; PQgetResult gives null next
    try {
      Fail(conn_, res_);
    } catch (...) {
      Drain();
      throw;
    }
  }
  const PGresult* result() const { return res_; }
  int row() const { return 0; }

 private:
  void Clear() {
    if (res_) PQclear(res_);
    res_ = nullptr;
  }
  void Drain() {
    Clear();
    while (sent_) {
      PGresult* r = PQgetResult(conn_);
      if (r == nullptr) break;
      PQclear(r);
    }
    sent_ = false;
  }
  PGconn* conn_;
  PGresult* res_ = nullptr;
  bool sent_ = false;
};

// PostgreSQL's binary formats (src/backend/utils/adt): big-endian integers; dates are days and
// timestamps microseconds since 2000-01-01.
constexpr long long kDays1970To2000 = 10957;
constexpr long long kSeconds1970To2000 = kDays1970To2000 * 86400;

uint32_t Be32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return (uint32_t{u[0]} << 24) | (uint32_t{u[1]} << 16) | (uint32_t{u[2]} << 8) | uint32_t{u[3]};
}
int64_t Be64(const char* p) { return static_cast<int64_t>((uint64_t{Be32(p)} << 32) | uint64_t{Be32(p + 4)}); }

long long FloorDiv(long long a, long long b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

// The columns of the cohort statement, in order, with the type each must have (pg_type oids).
enum Oid : unsigned { kBool = 16, kText = 25, kDate = 1082, kTimestampTz = 1184, kTextArray = 1009, kTimestampTzArray = 1185 };

class Columns {
 public:
  Columns(const PGresult* r, int row) : r_(r), row_(row) {}
  bool Null(int col) const { return PQgetisnull(r_, row_, col) != 0; }
  void Text(int col, std::string& out) const {
    Want(col, kText);
    out.assign(PQgetvalue(r_, row_, col), static_cast<size_t>(PQgetlength(r_, row_, col)));
  }
  bool Bool(int col) const {
    Want(col, kBool);
    return !Null(col) && PQgetvalue(r_, row_, col)[0] != 0;
  }
  long long Day(int col, long long if_null) const {
    Want(col, kDate);
    if (Null(col)) return if_null;
    return static_cast<int32_t>(Be32(PQgetvalue(r_, row_, col))) + kDays1970To2000;
  }
  static long long Seconds(int64_t us_since_2000) { return FloorDiv(us_since_2000, 1000000) + kSeconds1970To2000; }
  long long Instant(int col) const {
    Want(col, kTimestampTz);
    return Null(col) ? 0 : Seconds(Be64(PQgetvalue(r_, row_, col)));
  }
  // A one-dimensional array's elements (none when null or empty): f(data, length), length -1 for
  // a null element.
  template <typename F>
  void Array(int col, unsigned array_oid, F&& f) const {
    Want(col, array_oid);
    if (Null(col)) return;
    const char* p = PQgetvalue(r_, row_, col);
    const int len = PQgetlength(r_, row_, col);
    if (len < 12) throw std::runtime_error("a malformed array from the database");
    const int ndim = static_cast<int32_t>(Be32(p));
    if (ndim == 0) return;
    if (ndim != 1 || len < 20) throw std::runtime_error("a multi-dimensional array from the database");
    const int n = static_cast<int32_t>(Be32(p + 12));
    const char* at = p + 20;
    const char* end = p + len;
    for (int i = 0; i < n; ++i) {
      if (end - at < 4) throw std::runtime_error("a truncated array from the database");
      const int el = static_cast<int32_t>(Be32(at));
      at += 4;
      if (el > end - at) throw std::runtime_error("a truncated array from the database");
      f(at, el);
      if (el > 0) at += el;
    }
  }

 private:
  void Want(int col, unsigned oid) const {
    if (PQftype(r_, col) != oid) throw std::runtime_error("the cohort's column " + std::to_string(col) + " has an unexpected type");
  }
  const PGresult* r_;
  int row_;
};

}  // namespace

void KpiStore::ForEachCase(const std::string& from_day, const std::string& to_day, bool all_sites,
                           const std::vector<std::string>& sites, const std::string& dxa_item, bool with_patient,
                           const std::function<void(const CaseRow&)>& f) {
  const std::string all = all_sites ? "1" : "0";
  const std::string site_list = JoinWords(sites);
  if (dxa_item != "dxa") throw std::invalid_argument("the per-case facts (migration 014) read the investigation item dxa");
  // One narrow row per case (fls_case_kpi, kept by triggers; migration 014), its columns as stored.
  static const char* kColumns =
      "SELECT k.episode_id, coalesce(k.site, ''), coalesce(k.index_site, ''), k.index_day, k.opened_at, k.has_phone,"
      "  k.has_ref, coalesce(k.exclude_reason, ''), k.event_names, k.event_firsts, coalesce(k.dxa_status, ''),"
      "  k.dxa_result_day, coalesce(k.contacts, ''), coalesce(k.dispenses, ''), coalesce(k.later_fractures, ''),"
      "  coalesce(k.patient_id, ''), coalesce(k.stage, ''), coalesce(k.decided_drug, ''), coalesce(k.current_drug, '')";
  static const char* kWhere =
      " WHERE NOT k.voided AND k.index_day BETWEEN $1::date AND $2::date"
      "  AND ($3 = '1' OR k.site = ANY(string_to_array($4, ' ')))";
  static const std::string kMeasures = std::string(kColumns) + ", ''::text, ''::text FROM fls_case_kpi k" + kWhere;
  static const std::string kExtract =
      std::string(kColumns) +
      ", coalesce(pv.content->>'birthDate', ''), coalesce(pv.content->>'gender', '') FROM fls_case_kpi k"
      " LEFT JOIN resource p ON p.res_type = 'Patient' AND p.res_id = k.patient_id AND NOT p.deleted"
      " LEFT JOIN resource_version pv ON pv.res_type = p.res_type AND pv.res_id = p.res_id AND pv.version_id = p.version_id" +
      kWhere + " ORDER BY k.index_day, k.episode_id";
  SingleRows rows(sql_, with_patient ? kExtract : kMeasures, {from_day.c_str(), to_day.c_str(), all.c_str(), site_list.c_str()});
  CaseRow c;
  while (rows.Next()) {
    const Columns col(rows.result(), rows.row());
    col.Text(0, c.episode_id);
    col.Text(1, c.site);
    col.Text(2, c.index_site);
    c.index_day = col.Day(3, 0);
    c.opened_at = col.Instant(4);
    c.has_phone = col.Bool(5);
    c.has_referring_physician = col.Bool(6);
    col.Text(7, c.exclude_reason);
    size_t n = 0;
    col.Array(8, kTextArray, [&](const char* p, int len) {
      if (c.event_names.size() <= n) c.event_names.emplace_back();
      c.event_names[n++].assign(p, len > 0 ? static_cast<size_t>(len) : 0);
    });
    c.event_names.resize(n);
    c.event_firsts.clear();
    col.Array(9, kTimestampTzArray, [&](const char* p, int len) {
      c.event_firsts.push_back(len == 8 ? Columns::Seconds(Be64(p)) : 0);
    });
    if (c.event_firsts.size() != c.event_names.size()) throw std::runtime_error("the per-case facts' event arrays differ in length");
    col.Text(10, c.dxa_status);
    c.dxa_result_day = col.Day(11, -1);
    col.Text(12, c.contacts);
    col.Text(13, c.dispenses);
    col.Text(14, c.later_fracture_days);
    col.Text(15, c.patient_id);
    col.Text(16, c.stage);
    col.Text(17, c.decided_drug);
    col.Text(18, c.current_drug);
    col.Text(19, c.birth_date);
    col.Text(20, c.gender);
    f(c);
  }
}

std::vector<std::string> KpiStore::SitesUnder(const std::string& org_id) {
  std::vector<std::string> out;
  soci::rowset<soci::row> rs =
      (sql_.prepare << "WITH RECURSIVE tree(id) AS (SELECT :o::text UNION"
                       " SELECT r.res_id FROM idx_reference r JOIN tree t ON r.target_id = t.id"
                       " WHERE r.res_type = 'Organization' AND r.param = 'partof'"
                       " AND (r.target_type = 'Organization' OR r.target_type IS NULL))"
                       " SELECT id FROM tree ORDER BY id",
       soci::use(org_id));
  for (const auto& r : rs) out.push_back(r.get<std::string>(0));
  return out;
}

bool KpiStore::OrganizationExists(const std::string& org_id) {
  int n = 0;
  sql_ << "SELECT count(*)::int FROM resource WHERE res_type = 'Organization' AND res_id = :o AND NOT deleted",
      soci::use(org_id), soci::into(n);
  return n > 0;
}

KpiStore::Caseload KpiStore::ExpectedCaseload(bool all_sites, const std::vector<std::string>& sites,
                                              const std::string& extension_url) {
  Caseload out;
  for (const auto& [site, per_year] : ExpectedCaseloads(all_sites, sites, extension_url)) {
    out.per_year += per_year;
    ++out.sites_with_value;
  }
  return out;
}

std::map<std::string, long long> KpiStore::ExpectedCaseloads(bool all_sites, const std::vector<std::string>& sites,
                                                              const std::string& extension_url) {
  std::map<std::string, long long> out;
  const int all = all_sites ? 1 : 0;
  const std::string site_list = JoinWords(sites);
  soci::rowset<soci::row> rs =
      (sql_.prepare << "SELECT r.res_id, sum((ext->>'valueInteger')::bigint)::bigint"
                       " FROM resource r JOIN resource_version v ON v.res_type = r.res_type AND v.res_id = r.res_id"
                       "  AND v.version_id = r.version_id,"
                       " jsonb_array_elements(CASE WHEN jsonb_typeof(v.content->'extension') = 'array' THEN v.content->'extension'"
                       "  ELSE '[]'::jsonb END) ext"
                       " WHERE r.res_type = 'Organization' AND NOT r.deleted AND ext->>'url' = :u"
                       "  AND jsonb_typeof(ext->'valueInteger') = 'number'"
                       "  AND (:all = 1 OR r.res_id = ANY(string_to_array(:sites, ' ')))"
                       " GROUP BY r.res_id",
       soci::use(extension_url), soci::use(all), soci::use(site_list));
  for (const auto& r : rs) out[r.get<std::string>(0)] = r.get<long long>(1);
  return out;
}

std::map<std::string, long long> KpiStore::CasesPerSite(const std::string& from_day, const std::string& to_day, bool all_sites,
                                                        const std::vector<std::string>& sites) {
  std::map<std::string, long long> out;
  const int all = all_sites ? 1 : 0;
  const std::string site_list = JoinWords(sites);
  soci::rowset<soci::row> rs =
      (sql_.prepare << "SELECT c.site_org, count(*)::bigint FROM fls_case c"
                       " WHERE NOT c.voided AND c.site_org IS NOT NULL AND c.index_day BETWEEN :from::date AND :to::date"
                       "  AND (:all = 1 OR c.site_org = ANY(string_to_array(:sites, ' ')))"
                       " GROUP BY c.site_org",
       soci::use(from_day), soci::use(to_day), soci::use(all), soci::use(site_list));
  for (const auto& r : rs) out[r.get<std::string>(0)] = r.get<long long>(1);
  return out;
}

std::vector<KpiStore::FractureRow> KpiStore::Fractures(const std::string& from_day, const std::string& to_day, bool all_sites,
                                                       const std::vector<std::string>& sites,
                                                       const std::vector<std::string>& fracture_sites) {
  std::vector<FractureRow> out;
  const std::string all = all_sites ? "1" : "0";
  const std::string site_list = JoinWords(sites), kinds = JoinWords(fracture_sites);
  // The fractures that count, kept by the refreshes of the per-case facts (migration 015): one
  // range of an index per fracture site.
  SingleRows rows(sql_,
                  "SELECT f.condition_id, f.episode_id, coalesce(f.site, ''), f.fracture_site, f.fracture_day"
                  " FROM fls_fracture_kpi f"
                  " WHERE f.fracture_site = ANY(string_to_array($3, ' ')) AND f.fracture_day BETWEEN $1::date AND $2::date"
                  "  AND ($4 = '1' OR f.site = ANY(string_to_array($5, ' ')))",
                  {from_day.c_str(), to_day.c_str(), kinds.c_str(), all.c_str(), site_list.c_str()});
  while (rows.Next()) {
    const Columns col(rows.result(), rows.row());
    FractureRow f;
    col.Text(0, f.condition_id);
    col.Text(1, f.episode_id);
    col.Text(2, f.site);
    col.Text(3, f.fracture_site);
    f.day = col.Day(4, 0);
    out.push_back(std::move(f));
  }
  return out;
}

std::map<std::string, std::string> KpiStore::OrganizationNames(const std::vector<std::string>& ids) {
  std::map<std::string, std::string> out;
  const std::string list = JoinWords(ids);
  soci::rowset<soci::row> rs =
      (sql_.prepare << "SELECT r.res_id, coalesce(v.content->>'name', '') FROM resource r"
                       " JOIN resource_version v ON v.res_type = r.res_type AND v.res_id = r.res_id AND v.version_id = r.version_id"
                       " WHERE r.res_type = 'Organization' AND NOT r.deleted AND r.res_id = ANY(string_to_array(:ids, ' '))",
       soci::use(list));
  for (const auto& r : rs) {
    auto name = r.get<std::string>(1);
    if (!name.empty()) out[r.get<std::string>(0)] = name;
  }
  return out;
}

}  // namespace fls::db
