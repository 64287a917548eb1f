#include "db/resource_store.h"

#include <soci/soci.h>

#include <atomic>
#include <chrono>
#include <map>
#include <random>
#include <unordered_map>

#include "db/database.h"

namespace fls::db {

namespace {

// Instants travel as microseconds since the epoch: no text formats (and no ':' that SOCI would
// take for a placeholder) in the SQL.
std::string InstantText(const std::string& column) {
  return "(extract(epoch FROM " + column + ") * 1000000)::bigint";
}

// Bound parameters collected while a statement's text is built; placeholders are :p0, :p1...
// and are bound by name, since the order in which a statement's pieces are built need not be the
// order of the text (operands of + are unsequenced). Each placeholder appears once in the text.
class Params {
 public:
  std::string Add(std::string value) {
    values_.push_back(std::move(value));
    names_.push_back("p" + std::to_string(values_.size() - 1));
    return ":" + names_.back();
  }
  const std::vector<std::string>& values() const { return values_; }
  const std::vector<std::string>& names() const { return names_; }

 private:
  std::vector<std::string> values_;
  std::vector<std::string> names_;
};

// Runs a query as a one-time statement (PQexecParams: one round trip, where a rowset would
// prepare, execute and deallocate) and calls f on each row.
template <typename F>
void ForEachRow(soci::session& sql, const std::string& text, const Params& params, F&& f) {
  soci::row row;
  soci::statement st(sql);
  for (size_t i = 0; i < params.values().size(); ++i) st.exchange(soci::use(params.values()[i], params.names()[i]));
  st.exchange(soci::into(row));
  st.alloc();
  st.prepare(text, soci::details::st_one_time_query);
  st.define_and_bind();
  for (bool got = st.execute(true); got; got = st.fetch()) f(static_cast<const soci::row&>(row));
}

void Exec(soci::session& sql, const std::string& text, const Params& params) {
  soci::details::once_temp_type once = sql << text;
  for (size_t i = 0; i < params.values().size(); ++i) once, soci::use(params.values()[i], params.names()[i]);
}

void JsonString(std::string& out, const std::string& s) {
  out.push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out.push_back('"');
}

void JsonOpt(std::string& out, const std::optional<std::string>& s) {
  if (s) {
    JsonString(out, *s);
  } else {
    out += "null";
  }
}

VersionRow RowToVersion(const soci::row& r, const std::string& type) {
  // columns: res_id, version_id, last_updated text, deleted int, content text (nullable)
  VersionRow v;
  v.type = type;
  v.id = r.get<std::string>(0);
  v.version = r.get<int>(1);
  v.last_updated_us = r.get<long long>(2);
  v.deleted = r.get<int>(3) != 0;
  if (r.get_indicator(4) != soci::i_null) v.content = r.get<std::string>(4);
  return v;
}

std::string EscapeLike(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '%' || c == '_' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

// The SQL condition for one alternative of a predicate on index table alias x.
std::string AlternativeSql(const SearchPredicate& p, const SearchPredicate::Alternative& a,
                           Params& params) {
  using T = SearchPredicate::Table;
  switch (p.table) {
    case T::kToken: {
      if (a.system_only) return "x.system = " + params.Add(*a.system);
      std::string s = "x.code = " + params.Add(a.code);
      if (a.match_system) {
        s += a.system ? " AND x.system = " + params.Add(*a.system) : " AND x.system IS NULL";
      }
      return "(" + s + ")";
    }
    case T::kString:
      switch (a.string_mode) {
        case SearchPredicate::Alternative::StringMode::kExact:
          return "x.exact = " + params.Add(a.text);
        case SearchPredicate::Alternative::StringMode::kContains:
          return "x.norm LIKE " + params.Add("%" + EscapeLike(a.text) + "%");
        case SearchPredicate::Alternative::StringMode::kPrefix:
          return "x.norm LIKE " + params.Add(EscapeLike(a.text) + "%");
      }
      return "false";
    case T::kDate:
    case T::kLastUpdated: {
      // R4 search.html#prefix on ranges: the target [tlo, thi) against the value [lo, hi).
      // SOCI numbers every placeholder occurrence, so each use binds the value again.
      std::string tlo = p.table == T::kDate ? "x.lo" : "r.last_updated";
      std::string thi = p.table == T::kDate ? "x.hi" : "(r.last_updated + interval '1 microsecond')";
      auto lo = [&] { return params.Add(a.lo) + "::timestamptz"; };
      auto hi = [&] { return params.Add(a.hi) + "::timestamptz"; };
      auto eq = [&] { return "(" + tlo + " >= " + lo() + " AND " + thi + " <= " + hi() + ")"; };
      if (a.prefix == "eq") return eq();
      if (a.prefix == "ne") return "NOT " + eq();
      if (a.prefix == "gt") return "(" + thi + " > " + hi() + ")";
      if (a.prefix == "lt") return "(" + tlo + " < " + lo() + ")";
      if (a.prefix == "ge") return "(" + thi + " > " + hi() + " OR " + eq() + ")";
      if (a.prefix == "le") return "(" + tlo + " < " + lo() + " OR " + eq() + ")";
      if (a.prefix == "sa") return "(" + tlo + " >= " + hi() + ")";
      if (a.prefix == "eb") return "(" + thi + " <= " + lo() + ")";
      if (a.prefix == "ap") return "(" + tlo + " < " + hi() + " AND " + thi + " > " + lo() + ")";
      return "false";
    }
    case T::kReference: {
      std::string s = "x.target_id = " + params.Add(a.target_id);
      if (a.target_type) s += " AND x.target_type = " + params.Add(*a.target_type);
      return "(" + s + ")";
    }
    case T::kQuantity: {
      // lo carries the value, hi half a unit of its last digit (R4 search.html#quantity: "eq"
      // means within the precision of the value).
      auto v = [&] { return params.Add(a.lo) + "::numeric"; };
      auto h = [&] { return params.Add(a.hi) + "::numeric"; };
      auto in_range = [&] {
        return "x.value >= (" + v() + " - " + h() + ") AND x.value < (" + v() + " + " + h() + ")";
      };
      std::string cond;
      if (a.prefix == "eq" || a.prefix == "ap") cond = in_range();
      else if (a.prefix == "ne") cond = "NOT (" + in_range() + ")";
      else if (a.prefix == "gt" || a.prefix == "sa") cond = "x.value > " + v();
      else if (a.prefix == "lt" || a.prefix == "eb") cond = "x.value < " + v();
      else if (a.prefix == "ge") cond = "x.value >= " + v();
      else if (a.prefix == "le") cond = "x.value <= " + v();
      else cond = "false";
      if (a.system) cond += " AND x.system = " + params.Add(*a.system);
      if (!a.code.empty()) cond += " AND x.code = " + params.Add(a.code);
      return "(" + cond + ")";
    }
    case T::kId:
      return "r.res_id = " + params.Add(a.code);
  }
  return "false";
}

const char* TableName(SearchPredicate::Table t) {
  using T = SearchPredicate::Table;
  switch (t) {
    case T::kToken: return "idx_token";
    case T::kString: return "idx_string";
    case T::kDate: return "idx_date";
    case T::kReference: return "idx_reference";
    case T::kQuantity: return "idx_quantity";
    default: return nullptr;
  }
}

std::string PredicateSql(const SearchPredicate& p, Params& params) {
  using T = SearchPredicate::Table;
  if (p.table == T::kId || p.table == T::kLastUpdated) {
    std::string ors;
    for (const auto& a : p.any_of) {
      if (!ors.empty()) ors += " OR ";
      ors += AlternativeSql(p, a, params);
    }
    if (ors.empty()) ors = "false";
    return (p.negate ? "NOT (" : "(") + ors + ")";
  }
  if (p.chain) {
    // The references of `param` to a chain_type resource whose own index rows match.
    const SearchPredicate& c = *p.chain;
    std::string ors;
    for (const auto& a : c.any_of) {
      if (!ors.empty()) ors += " OR ";
      ors += AlternativeSql(c, a, params);
    }
    if (ors.empty()) ors = "false";
    return "EXISTS (SELECT 1 FROM idx_reference xr WHERE xr.res_type = r.res_type AND xr.res_id = r.res_id AND xr.param = " +
           params.Add(p.param) + " AND xr.target_type = " + params.Add(p.chain_type) + " AND xr.target_id IN (SELECT x.res_id FROM " +
           TableName(c.table) + " x WHERE x.res_type = " + params.Add(p.chain_type) + " AND x.param = " + params.Add(c.param) +
           " AND (" + ors + ")))";
  }
  std::string table = TableName(p.table);
  std::string base = "SELECT 1 FROM " + table +
                     " x WHERE x.res_type = r.res_type AND x.res_id = r.res_id AND x.param = " +
                     params.Add(p.param);
  if (p.missing) return std::string(*p.missing ? "NOT EXISTS (" : "EXISTS (") + base + ")";
  std::string ors;
  for (const auto& a : p.any_of) {
    if (!ors.empty()) ors += " OR ";
    ors += AlternativeSql(p, a, params);
  }
  if (ors.empty()) ors = "false";
  return std::string(p.negate ? "NOT EXISTS (" : "EXISTS (") + base + " AND (" + ors + "))";
}

std::string SiteScopeSql(const SiteScope& scope, Params& params) {
  std::string joined;
  for (const auto& s : scope.sites) joined += (joined.empty() ? "" : ",") + s;
  // Site ids are FHIR ids ([A-Za-z0-9.-]): no comma can hide in one.
  std::string sites = "string_to_array(" + params.Add(joined) + ", ',')";
  switch (scope.kind) {
    case SiteScope::Kind::kPatientSelf:
      return "r.res_id IN (SELECT c.patient_id FROM fls_case c WHERE c.site_org = ANY(" + sites + "))";
    case SiteScope::Kind::kCase:
      return "r.res_id IN (SELECT c.episode_id FROM fls_case c WHERE c.site_org = ANY(" + sites + "))";
    case SiteScope::Kind::kOwner:
      return "EXISTS (SELECT 1 FROM idx_reference x WHERE x.res_type = r.res_type AND x.res_id = r.res_id AND "
             "x.param = 'owner' AND x.target_type = 'Organization' AND x.target_id = ANY(" + sites + "))";
    case SiteScope::Kind::kPatientParam:
      return "EXISTS (SELECT 1 FROM idx_reference x JOIN fls_case c ON c.patient_id = x.target_id "
             "WHERE x.res_type = r.res_type AND x.res_id = r.res_id AND x.param = " + params.Add(scope.param) +
             " AND x.target_type = 'Patient' AND c.site_org = ANY(" + sites + "))";
  }
  return "false";
}

std::string WhereSql(const SearchSpec& spec, Params& params) {
  std::string w = "r.res_type = " + params.Add(spec.type) + " AND NOT r.deleted";
  for (const auto& p : spec.where) w += " AND " + PredicateSql(p, params);
  if (spec.site_scope) w += " AND " + SiteScopeSql(*spec.site_scope, params);
  return w;
}

std::string OrderSql(const SearchSpec& spec, Params& params) {
  using T = SearchPredicate::Table;
  std::string order;
  for (const auto& s : spec.sort) {
    std::string expr;
    const char* dir = s.descending ? " DESC NULLS LAST" : " ASC NULLS LAST";
    switch (s.table) {
      case T::kLastUpdated: expr = "r.last_updated"; break;
      case T::kId: expr = "r.res_id"; break;
      case T::kDate:
        // A range sorts by its start ascending and its end descending; an open start (a Task
        // due date is restriction.period.end alone) sorts by its end, an open end by its start.
        expr = std::string("(SELECT ") +
               (s.descending ? "max(CASE WHEN x.hi = 'infinity' THEN x.lo ELSE x.hi END)"
                             : "min(CASE WHEN x.lo = '-infinity' THEN x.hi ELSE x.lo END)") +
               " FROM idx_date x WHERE x.res_type = r.res_type AND x.res_id = r.res_id AND x.param = " +
               params.Add(s.param) + ")";
        break;
      case T::kString:
        expr = std::string("(SELECT ") + (s.descending ? "max(x.norm)" : "min(x.norm)") +
               " FROM idx_string x WHERE x.res_type = r.res_type AND x.res_id = r.res_id AND x.param = " +
               params.Add(s.param) + ")";
        break;
      case T::kToken:
        expr = std::string("(SELECT ") + (s.descending ? "max(x.code)" : "min(x.code)") +
               " FROM idx_token x WHERE x.res_type = r.res_type AND x.res_id = r.res_id AND x.param = " +
               params.Add(s.param) + ")";
        break;
      case T::kQuantity:
        expr = std::string("(SELECT ") + (s.descending ? "max(x.value)" : "min(x.value)") +
               " FROM idx_quantity x WHERE x.res_type = r.res_type AND x.res_id = r.res_id AND x.param = " +
               params.Add(s.param) + ")";
        break;
      default: continue;
    }
    order += expr + dir + ", ";
  }
  order += "r.res_id";
  return order;
}

std::atomic<int64_t> g_last_snapshot_cleanup{0};

// Ids joined for string_to_array(:ids, ','): ids are [A-Za-z0-9.-], no separator inside.
std::string JoinIds(const std::vector<std::string>& ids) {
  std::string joined;
  for (const auto& id : ids) {
    if (!joined.empty()) joined += ',';
    joined += id;
  }
  return joined;
}

std::string NewSnapshotId() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  uint64_t a = rng(), b = rng();
  a = (a & 0xFFFFFFFFFFFF0FFFULL) | 0x4000ULL;
  b = (b & 0x3FFFFFFFFFFFFFFFULL) | 0x8000000000000000ULL;
  char buf[40];
  std::snprintf(buf, sizeof buf, "%08x-%04x-%04x-%04x-%012llx", unsigned(a >> 32),
                unsigned((a >> 16) & 0xFFFF), unsigned(a & 0xFFFF), unsigned(b >> 48),
                static_cast<unsigned long long>(b & 0xFFFFFFFFFFFFULL));
  return buf;
}

}  // namespace

std::optional<CurrentState> ResourceStore::LockCurrent(const std::string& type, const std::string& id) {
  int version = 0, deleted = 0;
  soci::indicator ind;
  sql_ << "SELECT version_id, deleted::int FROM resource WHERE res_type = :t AND res_id = :i FOR UPDATE",
      soci::use(type), soci::use(id), soci::into(version, ind), soci::into(deleted);
  if (!sql_.got_data()) return std::nullopt;
  return CurrentState{version, deleted != 0};
}

std::optional<VersionRow> ResourceStore::ReadCurrent(const std::string& type, const std::string& id) {
  auto rows = ReadCurrentMany(type, {id});
  if (rows.empty()) return std::nullopt;
  return rows.front();
}

std::vector<VersionRow> ResourceStore::ReadCurrentMany(const std::string& type,
                                                       const std::vector<std::string>& ids) {
  std::vector<VersionRow> out;
  if (ids.empty()) return out;
  std::string joined = JoinIds(ids);
  Params params;
  std::string q = "SELECT r.res_id, r.version_id, " + InstantText("r.last_updated") +
                  ", r.deleted::int, v.content::text FROM resource r JOIN resource_version v "
                  "ON v.res_type = r.res_type AND v.res_id = r.res_id AND v.version_id = r.version_id "
                  "WHERE r.res_type = " + params.Add(type) +
                  " AND r.res_id = ANY(string_to_array(" + params.Add(joined) + ", ','))";
  std::unordered_map<std::string, VersionRow> by_id;
  ForEachRow(sql_, q, params, [&](const soci::row& r) {
    VersionRow v = RowToVersion(r, type);
    by_id.emplace(v.id, std::move(v));
  });
  for (const auto& id : ids) {
    auto it = by_id.find(id);
    if (it != by_id.end()) out.push_back(std::move(it->second));
  }
  return out;
}

std::optional<VersionRow> ResourceStore::ReadVersion(const std::string& type, const std::string& id,
                                                     int version) {
  Params params;
  std::string q = "SELECT res_id, version_id, " + InstantText("last_updated") +
                  ", (content IS NULL)::int, content::text FROM resource_version WHERE res_type = " +
                  params.Add(type) + " AND res_id = " + params.Add(id) +
                  " AND version_id = " + params.Add(std::to_string(version)) + "::int";
  std::optional<VersionRow> out;
  ForEachRow(sql_, q, params, [&](const soci::row& r) { out = RowToVersion(r, type); });
  return out;
}

namespace {

// The index rows as data-modifying CTEs (", it AS (INSERT ...)...") to append to a WITH, each run
// only when the CTE named `guard` returned a row (no guard: always). Binds into `params`.
std::string IndexCtes(const std::string& type, const std::string& id, const IndexRows& ix,
                                     Params& params, const std::string& guard) {
  // Each table's rows travel as one bound JSON array, expanded by jsonb_to_recordset.
  std::string tokens = "[", strings = "[", dates = "[", refs = "[", qtys = "[";
  for (const auto& t : ix.tokens) {
    if (tokens.size() > 1) tokens += ',';
    tokens += "{\"p\":";
    JsonString(tokens, t.param);
    tokens += ",\"s\":";
    JsonOpt(tokens, t.system);
    tokens += ",\"c\":";
    JsonString(tokens, t.code);
    tokens += '}';
  }
  for (const auto& s : ix.strings) {
    if (strings.size() > 1) strings += ',';
    strings += "{\"p\":";
    JsonString(strings, s.param);
    strings += ",\"n\":";
    JsonString(strings, s.norm);
    strings += ",\"e\":";
    JsonString(strings, s.exact);
    strings += '}';
  }
  for (const auto& d : ix.dates) {
    if (dates.size() > 1) dates += ',';
    dates += "{\"p\":";
    JsonString(dates, d.param);
    dates += ",\"l\":";
    JsonString(dates, d.lo);
    dates += ",\"h\":";
    JsonString(dates, d.hi);
    dates += '}';
  }
  for (const auto& r : ix.references) {
    if (refs.size() > 1) refs += ',';
    refs += "{\"p\":";
    JsonString(refs, r.param);
    refs += ",\"t\":";
    JsonOpt(refs, r.target_type);
    refs += ",\"i\":";
    JsonString(refs, r.target_id);
    refs += '}';
  }
  for (const auto& q : ix.quantities) {
    if (qtys.size() > 1) qtys += ',';
    qtys += "{\"p\":";
    JsonString(qtys, q.param);
    qtys += ",\"v\":";
    JsonString(qtys, q.value);
    qtys += ",\"s\":";
    JsonOpt(qtys, q.system);
    qtys += ",\"c\":";
    JsonOpt(qtys, q.code);
    qtys += '}';
  }
  tokens += ']';
  strings += ']';
  dates += ']';
  refs += ']';
  qtys += ']';
  std::string when = guard.empty() ? "" : " WHERE EXISTS (SELECT 1 FROM " + guard + ")";
  std::string out;
  auto cte = [&](const char* name, bool empty, const std::string& insert, const std::string& json,
                 const std::string& columns) {
    if (empty) return;
    out += ", " + std::string(name) + " AS (INSERT INTO " + insert + " SELECT " + params.Add(type) + ", " +
           params.Add(id) + ", x.* FROM jsonb_to_recordset(CAST(" + params.Add(json) + " AS jsonb)) AS x(" + columns +
           ")" + when + ")";
  };
  cte("it", ix.tokens.empty(), "idx_token (res_type, res_id, param, system, code)", tokens, "p text, s text, c text");
  cte("is_", ix.strings.empty(), "idx_string (res_type, res_id, param, norm, exact)", strings, "p text, n text, e text");
  cte("id_", ix.dates.empty(), "idx_date (res_type, res_id, param, lo, hi)", dates, "p text, l timestamptz, h timestamptz");
  cte("ir", ix.references.empty(), "idx_reference (res_type, res_id, param, target_type, target_id)", refs,
      "p text, t text, i text");
  cte("iq", ix.quantities.empty(), "idx_quantity (res_type, res_id, param, value, system, code)", qtys,
      "p text, v numeric, s text, c text");
  return out;
}

}  // namespace

namespace {

std::string At(Params& params, long long us) {
  return "(timestamptz 'epoch' + CAST(" + params.Add(std::to_string(us)) + " AS bigint) * interval '1 microsecond')";
}

}  // namespace

bool ResourceStore::InsertNew(const VersionRow& row, const IndexRows& index) {
  // One statement, one round trip: claim (type, id), then the version and the index rows, each
  // only if the claim succeeded (a duplicate id writes nothing). The resource row's foreign key
  // to its version is deferred to commit.
  Params params;
  std::string q = "WITH ins AS (INSERT INTO resource (res_type, res_id, version_id, last_updated, deleted) VALUES (" +
                  params.Add(row.type) + ", " + params.Add(row.id) + ", 1, " + At(params, row.last_updated_us) +
                  ", false) ON CONFLICT DO NOTHING RETURNING 1), "
                  "ver AS (INSERT INTO resource_version (res_type, res_id, version_id, last_updated, method, content) "
                  "SELECT " + params.Add(row.type) + ", " + params.Add(row.id) + ", 1, " + At(params, row.last_updated_us) +
                  ", " + params.Add(row.method) + ", CAST(" + params.Add(row.content) + " AS jsonb) FROM ins)" +
                  IndexCtes(row.type, row.id, index, params, "ins") + " SELECT count(*)::int FROM ins";
  int inserted = 0;
  ForEachRow(sql_, q, params, [&](const soci::row& r) { inserted = r.get<int>(0); });
  return inserted == 1;
}

void ResourceStore::InsertNextVersion(const VersionRow& row, const IndexRows& index) {
  // One statement: the version, the pointer, the old index rows out and the new ones in (a
  // statement's DELETE does not see the rows its sibling INSERT adds).
  Params params;
  std::string t = params.Add(row.type), i = params.Add(row.id);
  std::string q = "WITH ver AS (INSERT INTO resource_version (res_type, res_id, version_id, last_updated, method, "
                  "content) VALUES (" + t + ", " + i + ", CAST(" + params.Add(std::to_string(row.version)) +
                  " AS integer), " + At(params, row.last_updated_us) + ", " + params.Add(row.method) + ", CAST(" +
                  params.Add(row.content) + " AS jsonb)))," +
                  " upd AS (UPDATE resource SET version_id = CAST(" + params.Add(std::to_string(row.version)) +
                  " AS integer), last_updated = " + At(params, row.last_updated_us) +
                  ", deleted = false WHERE res_type = " + params.Add(row.type) + " AND res_id = " + params.Add(row.id) + ")";
  int n = 0;
  for (const char* table : {"idx_token", "idx_string", "idx_date", "idx_reference", "idx_quantity"}) {
    q += ", del" + std::to_string(n++) + " AS (DELETE FROM " + table + " WHERE res_type = " + params.Add(row.type) +
         " AND res_id = " + params.Add(row.id) + ")";
  }
  q += IndexCtes(row.type, row.id, index, params, "") + " SELECT 1";
  ForEachRow(sql_, q, params, [](const soci::row&) {});
}

void ResourceStore::ReplaceIndex(const std::string& type, const std::string& id, const IndexRows& index) {
  Params params;
  std::string q = "WITH ";
  int n = 0;
  for (const char* table : {"idx_token", "idx_string", "idx_date", "idx_reference", "idx_quantity"}) {
    if (n) q += ", ";
    q += "del" + std::to_string(n++) + " AS (DELETE FROM " + table + " WHERE res_type = " + params.Add(type) +
         " AND res_id = " + params.Add(id) + ")";
  }
  q += IndexCtes(type, id, index, params, "") + " SELECT 1";
  ForEachRow(sql_, q, params, [](const soci::row&) {});
}

std::vector<VersionRow> ResourceStore::LockCurrentBatch(const std::string& type, const std::string& after_id,
                                                        int limit) {
  Params params;
  std::string q = "SELECT r.res_id, r.version_id, " + InstantText("r.last_updated") +
                  ", r.deleted::int, v.content::text FROM resource r JOIN resource_version v "
                  "ON v.res_type = r.res_type AND v.res_id = r.res_id AND v.version_id = r.version_id "
                  "WHERE r.res_type = " + params.Add(type) + " AND NOT r.deleted AND r.res_id > " + params.Add(after_id) +
                  " ORDER BY r.res_id LIMIT CAST(" + params.Add(std::to_string(limit)) + " AS integer) FOR UPDATE OF r";
  std::vector<VersionRow> out;
  ForEachRow(sql_, q, params, [&](const soci::row& r) { out.push_back(RowToVersion(r, type)); });
  return out;
}

std::string ResourceStore::IndexFingerprint(const std::string& type) {
  std::string fp;
  soci::indicator ind = soci::i_null;
  sql_ << "SELECT fingerprint FROM search_index_state WHERE res_type = :t", soci::use(type), soci::into(fp, ind);
  return sql_.got_data() && ind == soci::i_ok ? fp : std::string();
}

void ResourceStore::SetIndexFingerprint(const std::string& type, const std::string& fingerprint) {
  sql_ << "INSERT INTO search_index_state (res_type, fingerprint) VALUES (:t, :f) "
          "ON CONFLICT (res_type) DO UPDATE SET fingerprint = excluded.fingerprint, indexed_at = now()",
      soci::use(type), soci::use(fingerprint);
}

bool ResourceStore::AnyCurrent(const std::string& type) {
  int n = 0;
  sql_ << "SELECT count(*)::int FROM (SELECT 1 FROM resource WHERE res_type = :t AND NOT deleted LIMIT 1) x",
      soci::use(type), soci::into(n);
  return n > 0;
}

void ResourceStore::InsertDeletion(const VersionRow& row) {
  sql_ << "INSERT INTO resource_version (res_type, res_id, version_id, last_updated, method, content) "
          "VALUES (:t, :i, :v, (timestamptz 'epoch' + :u * interval '1 microsecond'), 'DELETE', NULL)",
      soci::use(row.type), soci::use(row.id), soci::use(row.version), soci::use(row.last_updated_us);
  sql_ << "UPDATE resource SET version_id = :v, last_updated = (timestamptz 'epoch' + :u * interval '1 microsecond'), deleted = true "
          "WHERE res_type = :t AND res_id = :i",
      soci::use(row.version), soci::use(row.last_updated_us), soci::use(row.type), soci::use(row.id);
  DeleteIndex(row.type, row.id);
  DropConditionalKeys(row.type, row.id);
}

void ResourceStore::DeleteIndex(const std::string& type, const std::string& id) {
  sql_ << "WITH a AS (DELETE FROM idx_token WHERE res_type = :t1 AND res_id = :i1), "
          "b AS (DELETE FROM idx_string WHERE res_type = :t2 AND res_id = :i2), "
          "c AS (DELETE FROM idx_date WHERE res_type = :t3 AND res_id = :i3), "
          "d AS (DELETE FROM idx_reference WHERE res_type = :t4 AND res_id = :i4) "
          "DELETE FROM idx_quantity WHERE res_type = :t5 AND res_id = :i5",
      soci::use(type), soci::use(id), soci::use(type), soci::use(id), soci::use(type), soci::use(id),
      soci::use(type), soci::use(id), soci::use(type), soci::use(id);
}

std::optional<std::string> ResourceStore::ClaimConditionalKey(const std::string& type,
                                                              const std::string& query,
                                                              const std::string& id) {
  int inserted = 0;
  // A concurrent claimer of the same key blocks here until the first transaction ends; then
  // ON CONFLICT sees its committed row (or inserts, if it rolled back).
  sql_ << "WITH ins AS (INSERT INTO conditional_key (res_type, query, res_id) VALUES (:t, :q, :i) "
          "ON CONFLICT DO NOTHING RETURNING 1) SELECT count(*)::int FROM ins",
      soci::use(type), soci::use(query), soci::use(id), soci::into(inserted);
  if (inserted == 1) return std::nullopt;
  std::string owner;
  sql_ << "SELECT res_id FROM conditional_key WHERE res_type = :t AND query = :q", soci::use(type),
      soci::use(query), soci::into(owner);
  if (!sql_.got_data()) {
    // The owner was deleted between the two statements: claim again.
    return ClaimConditionalKey(type, query, id);
  }
  return owner;
}

bool ResourceStore::ReplaceConditionalKeyOwner(const std::string& type, const std::string& query,
                                               const std::string& old_owner, const std::string& new_owner) {
  int changed = 0;
  sql_ << "WITH u AS (UPDATE conditional_key SET res_id = :n WHERE res_type = :t AND query = :q "
          "AND res_id = :o RETURNING 1) SELECT count(*)::int FROM u",
      soci::use(new_owner), soci::use(type), soci::use(query), soci::use(old_owner), soci::into(changed);
  return changed == 1;
}

void ResourceStore::DropConditionalKeys(const std::string& type, const std::string& id) {
  sql_ << "DELETE FROM conditional_key WHERE res_type = :t AND res_id = :i", soci::use(type),
      soci::use(id);
}

std::vector<std::string> ResourceStore::SearchIds(const SearchSpec& spec, int limit) {
  Params params;
  std::string q = "SELECT r.res_id FROM resource r WHERE " + WhereSql(spec, params) +
                  " ORDER BY r.res_id LIMIT " + std::to_string(limit);
  std::vector<std::string> ids;
  ForEachRow(sql_, q, params, [&](const soci::row& r) { ids.push_back(r.get<std::string>(0)); });
  return ids;
}

SearchPage ResourceStore::SearchAfter(const SearchSpec& spec, int count, const std::string& after_id) {
  Params params;
  std::string q = "SELECT r.res_id FROM resource r WHERE " + WhereSql(spec, params);
  if (!after_id.empty()) q += " AND r.res_id > " + params.Add(after_id);
  q += " ORDER BY r.res_id LIMIT " + std::to_string(count + 1);
  std::vector<std::string> ids;
  ForEachRow(sql_, q, params, [&](const soci::row& r) { ids.push_back(r.get<std::string>(0)); });
  SearchPage page;
  if (static_cast<int>(ids.size()) > count) {
    ids.pop_back();
    page.has_more = true;
  }
  page.rows = ReadCurrentMany(spec.type, ids);
  return page;
}

std::vector<VersionRow> ResourceStore::ReferencedBy(const std::string& type, const std::vector<std::string>& ids,
                                                    const std::string& param,
                                                    const std::optional<std::string>& target_type, int limit) {
  if (ids.empty()) return {};
  Params params;
  // Deleted and missing targets are left out here, not after the LIMIT, so that a caller asking
  // for one more row than it keeps learns whether there are more.
  std::string q = "SELECT DISTINCT x.target_type, x.target_id FROM idx_reference x JOIN resource t ON "
                  "t.res_type = x.target_type AND t.res_id = x.target_id AND NOT t.deleted WHERE x.res_type = " +
                  params.Add(type) + " AND x.param = " + params.Add(param) +
                  " AND x.res_id = ANY(string_to_array(" + params.Add(JoinIds(ids)) + ", ','))" +
                  " AND x.target_type IS NOT NULL AND x.target_id NOT LIKE '%/%'";
  if (target_type) q += " AND x.target_type = " + params.Add(*target_type);
  q += " ORDER BY 1, 2 LIMIT " + std::to_string(limit);
  std::map<std::string, std::vector<std::string>> by_type;
  ForEachRow(sql_, q, params, [&](const soci::row& r) {
    by_type[r.get<std::string>(0)].push_back(r.get<std::string>(1));
  });
  std::vector<VersionRow> out;
  for (const auto& [t, targets] : by_type) {
    for (auto& row : ReadCurrentMany(t, targets)) {
      if (!row.deleted) out.push_back(std::move(row));
    }
  }
  return out;
}

std::vector<VersionRow> ResourceStore::Referring(const std::string& source_type, const std::string& param,
                                                 const std::string& target_type,
                                                 const std::vector<std::string>& target_ids, int limit) {
  if (target_ids.empty()) return {};
  Params params;
  std::string q = "SELECT DISTINCT x.res_id FROM idx_reference x JOIN resource r ON r.res_type = x.res_type "
                  "AND r.res_id = x.res_id AND NOT r.deleted WHERE x.res_type = " + params.Add(source_type) +
                  " AND x.param = " + params.Add(param) + " AND x.target_type = " + params.Add(target_type) +
                  " AND x.target_id = ANY(string_to_array(" + params.Add(JoinIds(target_ids)) + ", ','))" +
                  " ORDER BY 1 LIMIT " + std::to_string(limit);
  std::vector<std::string> ids;
  ForEachRow(sql_, q, params, [&](const soci::row& r) { ids.push_back(r.get<std::string>(0)); });
  return ReadCurrentMany(source_type, ids);
}

long long ResourceStore::Count(const SearchSpec& spec) {
  Params params;
  std::string q = "SELECT count(*) FROM resource r WHERE " + WhereSql(spec, params);
  long long n = 0;
  ForEachRow(sql_, q, params, [&](const soci::row& r) { n = r.get<long long>(0); });
  return n;
}

SearchPage ResourceStore::Search(const SearchSpec& spec, int count) {
  SearchPage page;
  std::vector<std::string> ids;
  if (count > 0) {
    Params params;
    std::string where = WhereSql(spec, params);
    std::string order = OrderSql(spec, params);
    std::string q = "SELECT r.res_id FROM resource r WHERE " + where + " ORDER BY " + order +
                    " LIMIT " + std::to_string(count + 1);
    ForEachRow(sql_, q, params, [&](const soci::row& r) { ids.push_back(r.get<std::string>(0)); });
  }
  if (count == 0) {
    page.total = static_cast<int>(Count(spec));
    return page;
  }
  if (static_cast<int>(ids.size()) <= count) {
    page.total = static_cast<int>(ids.size());
    page.rows = ReadCurrentMany(spec.type, ids);
    return page;
  }
  // More than one page: store the ordered ids once so that every page reads the same list.
  int64_t now_s = std::chrono::duration_cast<std::chrono::seconds>(
                      std::chrono::steady_clock::now().time_since_epoch()).count();
  int64_t last = g_last_snapshot_cleanup.load();
  if (now_s - last >= 60 && g_last_snapshot_cleanup.compare_exchange_strong(last, now_s)) {
    sql_ << "DELETE FROM search_snapshot WHERE created < now() - interval '1 hour'";
  }
  std::string sid = NewSnapshotId();
  sql_ << "INSERT INTO search_snapshot (search_id, res_type, total) VALUES (:s::uuid, :t, 0)",
      soci::use(sid), soci::use(spec.type);
  Params params;
  std::string sid_p = params.Add(sid);
  std::string where = WhereSql(spec, params);
  std::string order = OrderSql(spec, params);
  std::string q = "INSERT INTO search_snapshot_row (search_id, pos, res_id) SELECT " + sid_p +
                  "::uuid, row_number() OVER (ORDER BY " + order + "), r.res_id FROM resource r WHERE " +
                  where;
  Exec(sql_, q, params);
  int total = 0;
  sql_ << "WITH t AS (SELECT count(*)::int AS n FROM search_snapshot_row WHERE search_id = :s::uuid) "
          "UPDATE search_snapshot SET total = t.n FROM t WHERE search_id = :s2::uuid RETURNING total",
      soci::use(sid), soci::use(sid), soci::into(total);
  auto rest = SnapshotPage(sid, spec.type, 0, count);
  return rest ? *rest : page;
}

std::optional<SearchPage> ResourceStore::SnapshotPage(const std::string& snapshot_id,
                                                      const std::string& type, int offset, int count) {
  int total = 0;
  soci::indicator ind;
  sql_ << "SELECT total FROM search_snapshot WHERE search_id = :s::uuid AND res_type = :t",
      soci::use(snapshot_id), soci::use(type), soci::into(total, ind);
  if (!sql_.got_data()) return std::nullopt;
  Params params;
  std::string q = "SELECT res_id FROM search_snapshot_row WHERE search_id = " + params.Add(snapshot_id) +
                  "::uuid AND pos > " + params.Add(std::to_string(offset)) +
                  "::int ORDER BY pos LIMIT " + std::to_string(count);
  std::vector<std::string> ids;
  ForEachRow(sql_, q, params, [&](const soci::row& r) { ids.push_back(r.get<std::string>(0)); });
  SearchPage page;
  page.total = total;
  page.snapshot_id = snapshot_id;
  page.offset = offset;
  page.has_more = offset + count < total;
  page.rows = ReadCurrentMany(type, ids);
  return page;
}

HistoryPage ResourceStore::History(const HistoryQuery& hq) {
  Params params;
  std::string where = "true";
  if (hq.type) where += " AND res_type = " + params.Add(*hq.type);
  if (hq.id) where += " AND res_id = " + params.Add(*hq.id);
  if (hq.since) where += " AND last_updated >= " + params.Add(*hq.since) + "::timestamptz";
  if (hq.before_seq) where += " AND seq < " + params.Add(std::to_string(*hq.before_seq)) + "::bigint";
  std::string q = "SELECT res_id, version_id, " + InstantText("last_updated") +
                  ", (content IS NULL)::int, content::text, res_type, method, seq FROM resource_version WHERE " +
                  where + " ORDER BY seq DESC LIMIT " + std::to_string(hq.count + 1);
  HistoryPage page;
  ForEachRow(sql_, q, params, [&](const soci::row& r) {
    HistoryPage::Entry e;
    e.row = RowToVersion(r, r.get<std::string>(5));
    e.row.method = r.get<std::string>(6);
    e.seq = r.get<long long>(7);
    page.entries.push_back(std::move(e));
  });
  if (static_cast<int>(page.entries.size()) > hq.count) {
    page.entries.pop_back();
    page.has_more = true;
  }
  if (hq.id && !hq.before_seq) {
    Params cp;
    std::string cq = "SELECT count(*) FROM resource_version WHERE res_type = " + cp.Add(*hq.type) +
                     " AND res_id = " + cp.Add(*hq.id);
    if (hq.since) cq += " AND last_updated >= " + cp.Add(*hq.since) + "::timestamptz";
    ForEachRow(sql_, cq, cp, [&](const soci::row& r) { page.total = static_cast<int>(r.get<long long>(0)); });
  }
  return page;
}

void ResourceStore::SetStatementTimeout(long long ms) {
  // set_config(..., true) is SET LOCAL with a bound value (SET itself takes no parameters).
  std::string value = std::to_string(ms);
  std::string previous;
  sql_ << "SELECT set_config('statement_timeout', :v, true)", soci::use(value), soci::into(previous);
}

}  // namespace fls::db
