#include "db/export_store.h"

#include <soci/soci.h>

#include "db/sql_words.h"

namespace fls::db {

namespace {

const char* kJobColumns =
    "id, status, level, coalesce(group_id, ''), array_to_string(types, ' '),"
    " coalesce((extract(epoch FROM since) * 1000000)::bigint, -1), requester, request_url,"
    " (extract(epoch FROM created_at) * 1000000)::bigint,"
    " coalesce((extract(epoch FROM finished_at) * 1000000)::bigint, -1),"
    " coalesce((extract(epoch FROM transaction_time) * 1000000)::bigint, -1), done_types,"
    " coalesce(error, ''), coalesce(owner, '')";

ExportStore::Job ToJob(const soci::row& r) {
  ExportStore::Job j;
  j.id = r.get<std::string>(0);
  j.status = r.get<std::string>(1);
  j.level = r.get<std::string>(2);
  j.group_id = r.get<std::string>(3);
  j.types = SplitWords(r.get<std::string>(4));
  j.since_us = r.get<long long>(5);
  j.requester = r.get<std::string>(6);
  j.request_url = r.get<std::string>(7);
  j.created_us = r.get<long long>(8);
  j.finished_us = r.get<long long>(9);
  j.transaction_time_us = r.get<long long>(10);
  j.done_types = r.get<int>(11);
  j.error = r.get<std::string>(12);
  j.owner = r.get<std::string>(13);
  return j;
}

}  // namespace

ExportStore::ExportStore(ResourceStore& store) : sql_(store.sql_) {}

void ExportStore::Create(const Job& j) {
  const std::string types = JoinWords(j.types);
  const long long since = j.since_us;
  sql_ << "INSERT INTO fls_export_job (id, status, level, group_id, types, since, requester, request_url)"
          " VALUES (:id, 'queued', :level, nullif(:g, ''), string_to_array(:types, ' '),"
          " CASE WHEN :s1::bigint < 0 THEN NULL ELSE to_timestamp(:s2 / 1000000.0) END, :who, :url)",
      soci::use(j.id), soci::use(j.level), soci::use(j.group_id), soci::use(types), soci::use(since), soci::use(since),
      soci::use(j.requester), soci::use(j.request_url);
}

std::optional<ExportStore::Job> ExportStore::Get(const std::string& id) {
  soci::rowset<soci::row> rs = (sql_.prepare << "SELECT " << kJobColumns << " FROM fls_export_job WHERE id = :id", soci::use(id));
  for (const auto& r : rs) return ToJob(r);
  return std::nullopt;
}

std::optional<ExportStore::Job> ExportStore::Claim(const std::string& owner, int stale_s, long long transaction_time_us) {
  std::optional<Job> out;
  soci::rowset<soci::row> rs =
      (sql_.prepare << "UPDATE fls_export_job SET status = 'running', owner = :o, heartbeat = now(),"
                       " started_at = coalesce(started_at, now()),"
                       " transaction_time = coalesce(transaction_time, to_timestamp(:t / 1000000.0))"
                       " WHERE id = (SELECT id FROM fls_export_job WHERE status = 'queued'"
                       "  OR (status = 'running' AND heartbeat < now() - make_interval(secs => :stale))"
                       "  ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED)"
                       " RETURNING " << kJobColumns,
       soci::use(owner), soci::use(transaction_time_us), soci::use(stale_s));
  for (const auto& r : rs) out = ToJob(r);
  if (out) {
    // A job taken over starts again from its first type: what a dead process wrote goes.
    sql_ << "DELETE FROM fls_export_file WHERE job_id = :id", soci::use(out->id);
    sql_ << "UPDATE fls_export_job SET done_types = 0 WHERE id = :id", soci::use(out->id);
    out->done_types = 0;
  }
  return out;
}

bool ExportStore::Heartbeat(const std::string& id, const std::string& owner, int done_types) {
  soci::rowset<soci::row> rs =
      (sql_.prepare << "UPDATE fls_export_job SET heartbeat = now(), done_types = :d"
                       " WHERE id = :id AND owner = :o AND status = 'running' RETURNING id",
       soci::use(done_types), soci::use(id), soci::use(owner));
  for (const auto& r : rs) {
    (void)r;
    return true;
  }
  return false;
}

void ExportStore::AddFile(const std::string& id, int seq, const std::string& type, int count, const std::string& ndjson) {
  sql_ << "INSERT INTO fls_export_file (job_id, seq, res_type, count, data) VALUES (:id, :seq, :t, :n, :d)", soci::use(id),
      soci::use(seq), soci::use(type), soci::use(count), soci::use(ndjson);
}

void ExportStore::Finish(const std::string& id, const std::string& owner, const std::string& status, const std::string& error) {
  sql_ << "UPDATE fls_export_job SET status = :s, error = nullif(:e, ''), finished_at = now(), heartbeat = now()"
          " WHERE id = :id AND owner = :o AND status = 'running'",
      soci::use(status), soci::use(error), soci::use(id), soci::use(owner);
}

bool ExportStore::Cancel(const std::string& id) {
  bool found = false;
  soci::rowset<soci::row> rs =
      (sql_.prepare << "UPDATE fls_export_job SET status = 'cancelled', finished_at = now()"
                       " WHERE id = :id AND status <> 'cancelled' RETURNING id",
       soci::use(id));
  for (const auto& r : rs) {
    (void)r;
    found = true;
  }
  if (found) sql_ << "DELETE FROM fls_export_file WHERE job_id = :id", soci::use(id);
  return found;
}

std::vector<ExportStore::File> ExportStore::Files(const std::string& id) {
  std::vector<File> out;
  soci::rowset<soci::row> rs =
      (sql_.prepare << "SELECT seq, res_type, count FROM fls_export_file WHERE job_id = :id ORDER BY seq", soci::use(id));
  for (const auto& r : rs) out.push_back({r.get<int>(0), r.get<std::string>(1), r.get<int>(2)});
  return out;
}

std::optional<std::string> ExportStore::FileData(const std::string& id, int seq) {
  soci::rowset<soci::row> rs =
      (sql_.prepare << "SELECT data FROM fls_export_file WHERE job_id = :id AND seq = :s", soci::use(id), soci::use(seq));
  for (const auto& r : rs) return r.get<std::string>(0);
  return std::nullopt;
}

int ExportStore::DeleteExpired(int max_age_s) {
  int n = 0;
  soci::rowset<soci::row> rs =
      (sql_.prepare << "DELETE FROM fls_export_job WHERE status IN ('complete', 'failed', 'cancelled')"
                       " AND finished_at < now() - make_interval(secs => :a) RETURNING id",
       soci::use(max_age_s));
  for (const auto& r : rs) {
    (void)r;
    ++n;
  }
  return n;
}

long long ExportStore::SafeNow(int margin_s) {
  long long t = 0;
  sql_ << "SELECT (extract(epoch FROM least(now(), coalesce((SELECT min(xact_start) FROM pg_stat_activity"
          "  WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL"
          "  AND backend_type = 'client backend' AND xact_start > now() - interval '10 minutes'), now()))"
          " - make_interval(secs => :m)) * 1000000)::bigint",
      soci::use(margin_s), soci::into(t);
  return t;
}

ExportStore::Page ExportStore::Read(const std::string& type, const std::string& after_id, int limit, long long at_us,
                                    long long since_us, const std::vector<std::string>* patients, bool any_patient) {
  Page out;
  const int filter = patients ? 1 : any_patient ? 2 : 0;
  const int is_patient = type == "Patient" ? 1 : 0;
  const std::string list = patients ? JoinWords(*patients) : "";
  soci::rowset<soci::row> rs =
      (sql_.prepare
           << "SELECT r.res_id, v.content::text FROM resource r"
              " JOIN LATERAL (SELECT content, last_updated FROM resource_version x"
              "  WHERE x.res_type = r.res_type AND x.res_id = r.res_id AND x.last_updated <= to_timestamp(:at / 1000000.0)"
              "  ORDER BY x.version_id DESC LIMIT 1) v ON v.content IS NOT NULL"
              " WHERE r.res_type = :t AND r.res_id > :after"
              "  AND (:s1::bigint < 0 OR v.last_updated > to_timestamp(:s2 / 1000000.0))"
              "  AND (:f1 = 0"
              "   OR (:f2 = 1 AND :p1 = 1 AND r.res_id = ANY(string_to_array(:l1, ' ')))"
              "   OR (:f3 = 1 AND :p2 = 0 AND EXISTS (SELECT 1 FROM idx_reference i WHERE i.res_type = r.res_type"
              "       AND i.res_id = r.res_id AND i.target_type = 'Patient' AND i.target_id = ANY(string_to_array(:l2, ' '))))"
              "   OR (:f4 = 2 AND :p3 = 1)"
              "   OR (:f5 = 2 AND :p4 = 0 AND EXISTS (SELECT 1 FROM idx_reference i WHERE i.res_type = r.res_type"
              "       AND i.res_id = r.res_id AND i.target_type = 'Patient')))"
              " ORDER BY r.res_id LIMIT :lim",
       soci::use(at_us), soci::use(type), soci::use(after_id), soci::use(since_us), soci::use(since_us), soci::use(filter),
       soci::use(filter), soci::use(is_patient), soci::use(list), soci::use(filter), soci::use(is_patient), soci::use(list),
       soci::use(filter), soci::use(is_patient), soci::use(filter), soci::use(is_patient), soci::use(limit));
  for (const auto& r : rs) {
    out.ids.push_back(r.get<std::string>(0));
    out.json.push_back(r.get<std::string>(1));
  }
  return out;
}

std::vector<std::string> ExportStore::GroupPatients(const std::string& group_id) {
  std::vector<std::string> out;
  soci::rowset<soci::row> rs =
      (sql_.prepare << "SELECT DISTINCT target_id FROM idx_reference WHERE res_type = 'Group' AND res_id = :g"
                       " AND param = 'member' AND target_type = 'Patient' ORDER BY target_id",
       soci::use(group_id));
  for (const auto& r : rs) out.push_back(r.get<std::string>(0));
  return out;
}

bool ExportStore::GroupExists(const std::string& group_id) {
  int n = 0;
  sql_ << "SELECT count(*)::int FROM resource WHERE res_type = 'Group' AND res_id = :g AND NOT deleted", soci::use(group_id),
      soci::into(n);
  return n > 0;
}

}  // namespace fls::db
