#include "db/case_store.h"

#include <soci/soci.h>

namespace fls::db {

// Dates travel as day numbers and instants as microseconds: no text formats (and no ':' that SOCI
// would take for a placeholder) in the SQL.

CaseStore::CaseStore(ResourceStore& store) : sql_(store.sql_) {}

std::vector<CaseRow> CaseStore::CasesOfPatient(const std::string& patient_id) {
  std::vector<CaseRow> cases;
  soci::rowset<soci::row> rows =
      (sql_.prepare << "SELECT episode_id, patient_id, coalesce(site_org, ''), open::int, stage, index_site, "
                       "(index_day - date '1970-01-01'), coalesce(index_encounter, ''), coalesce(refracture_of, ''), "
                       "high_energy::int, source, (extract(epoch FROM opened_at) * 1000000)::bigint, voided::int "
                       "FROM fls_case WHERE patient_id = :p ORDER BY open DESC, opened_at",
       soci::use(patient_id));
  for (const auto& r : rows) {
    CaseRow c;
    c.episode_id = r.get<std::string>(0);
    c.patient_id = r.get<std::string>(1);
    c.site_org = r.get<std::string>(2);
    c.open = r.get<int>(3) != 0;
    c.stage = r.get<std::string>(4);
    c.index_site = r.get<std::string>(5);
    if (r.get_indicator(6) != soci::i_null) c.index_day = r.get<int>(6);
    c.index_encounter = r.get<std::string>(7);
    c.refracture_of = r.get<std::string>(8);
    c.high_energy = r.get<int>(9) != 0;
    c.source = r.get<std::string>(10);
    c.opened_at_us = r.get<long long>(11);
    c.voided = r.get<int>(12) != 0;
    cases.push_back(std::move(c));
  }
  for (auto& c : cases) {
    soci::rowset<soci::row> conds =
        (sql_.prepare << "SELECT condition_id FROM fls_case_fracture WHERE episode_id = :e ORDER BY condition_id",
         soci::use(c.episode_id));
    for (const auto& r : conds) c.condition_ids.push_back(r.get<std::string>(0));
  }
  return cases;
}

std::optional<CaseRow> CaseStore::Case(const std::string& episode_id) {
  std::string patient;
  sql_ << "SELECT patient_id FROM fls_case WHERE episode_id = :e", soci::use(episode_id), soci::into(patient);
  if (!sql_.got_data()) return std::nullopt;
  for (auto& c : CasesOfPatient(patient)) {
    if (c.episode_id == episode_id) return c;
  }
  return std::nullopt;
}

bool CaseStore::InsertOpenCase(const CaseRow& c) {
  int inserted = 0;
  long long day = c.index_day.value_or(0);
  soci::indicator day_ind = c.index_day ? soci::i_ok : soci::i_null;
  std::string refr = c.refracture_of;
  soci::indicator refr_ind = refr.empty() ? soci::i_null : soci::i_ok;
  int high = c.high_energy ? 1 : 0;
  sql_ << "WITH ins AS (INSERT INTO fls_case (episode_id, patient_id, site_org, open, stage, index_site, index_day, "
          "index_encounter, refracture_of, high_energy, source, opened_at) VALUES (:e, :p, :o, true, :s, :site, "
          "date '1970-01-01' + CAST(:d AS integer), :enc, :refr, :h <> 0, :src, "
          "timestamptz 'epoch' + :at * interval '1 microsecond') "
          "ON CONFLICT (patient_id) WHERE open DO NOTHING RETURNING 1) SELECT count(*)::int FROM ins",
      soci::use(c.episode_id), soci::use(c.patient_id), soci::use(c.site_org), soci::use(c.stage),
      soci::use(c.index_site), soci::use(day, day_ind), soci::use(c.index_encounter), soci::use(refr, refr_ind),
      soci::use(high), soci::use(c.source), soci::use(c.opened_at_us), soci::into(inserted);
  return inserted == 1;
}

bool CaseStore::AddFracture(const CaseFractureRow& f) {
  int inserted = 0;
  long long day = f.fracture_day.value_or(0);
  soci::indicator day_ind = f.fracture_day ? soci::i_ok : soci::i_null;
  sql_ << "WITH ins AS (INSERT INTO fls_case_fracture (condition_id, episode_id, role, site, grio, fracture_day, "
          "encounter_id) VALUES (:c, :e, :r, :s, :g, date '1970-01-01' + CAST(:d AS integer), :enc) "
          "ON CONFLICT DO NOTHING RETURNING 1) SELECT count(*)::int FROM ins",
      soci::use(f.condition_id), soci::use(f.episode_id), soci::use(f.role), soci::use(f.site), soci::use(f.grio),
      soci::use(day, day_ind), soci::use(f.encounter_id), soci::into(inserted);
  return inserted == 1;
}

void CaseStore::SetIndexSite(const std::string& episode_id, const std::string& site) {
  sql_ << "UPDATE fls_case SET index_site = :s WHERE episode_id = :e", soci::use(site), soci::use(episode_id);
}

void CaseStore::SetIndex(const std::string& episode_id, const std::string& site, long long day,
                         const std::string& encounter_id) {
  sql_ << "UPDATE fls_case SET index_site = :s, index_day = date '1970-01-01' + CAST(:d AS integer), "
          "index_encounter = :enc WHERE episode_id = :e",
      soci::use(site), soci::use(day), soci::use(encounter_id), soci::use(episode_id);
}

void CaseStore::SetSite(const std::string& episode_id, const std::string& site_org) {
  sql_ << "UPDATE fls_case SET site_org = :o WHERE episode_id = :e", soci::use(site_org), soci::use(episode_id);
}

void CaseStore::Close(const std::string& episode_id, const std::string& stage, long long at_us, bool voided) {
  int v = voided ? 1 : 0;
  sql_ << "UPDATE fls_case SET open = false, stage = :s, voided = :v <> 0, "
          "closed_at = timestamptz 'epoch' + :at * interval '1 microsecond' WHERE episode_id = :e",
      soci::use(stage), soci::use(v), soci::use(at_us), soci::use(episode_id);
}

void CaseStore::AppendEvent(const std::string& episode_id, long long at_us, const std::string& from_stage,
                            const std::string& to_stage, const std::string& event, const std::string& reason,
                            const std::string& source) {
  soci::indicator from_ind = from_stage.empty() ? soci::i_null : soci::i_ok;
  sql_ << "INSERT INTO fls_case_event (episode_id, at, from_stage, to_stage, event, reason, source) VALUES "
          "(:e, timestamptz 'epoch' + :at * interval '1 microsecond', :f, :t, :ev, :r, :src)",
      soci::use(episode_id), soci::use(at_us), soci::use(from_stage, from_ind), soci::use(to_stage), soci::use(event),
      soci::use(reason), soci::use(source);
  sql_ << "UPDATE fls_case SET stage = :t WHERE episode_id = :e", soci::use(to_stage), soci::use(episode_id);
}

bool CaseStore::ClaimReview(const std::string& condition_id, const std::string& task_id,
                            const std::string& patient_id, const std::string& reason) {
  int inserted = 0;
  sql_ << "WITH ins AS (INSERT INTO fls_review (condition_id, task_id, patient_id, reason) VALUES (:c, :t, :p, :r) "
          "ON CONFLICT DO NOTHING RETURNING 1) SELECT count(*)::int FROM ins",
      soci::use(condition_id), soci::use(task_id), soci::use(patient_id), soci::use(reason), soci::into(inserted);
  return inserted == 1;
}

std::vector<CaseFractureRow> CaseStore::FracturesOf(const std::string& episode_id) {
  std::vector<CaseFractureRow> out;
  soci::rowset<soci::row> rows =
      (sql_.prepare << "SELECT condition_id, role, site, grio, coalesce(encounter_id, '') FROM fls_case_fracture "
                       "WHERE episode_id = :e ORDER BY condition_id",
       soci::use(episode_id));
  for (const auto& r : rows) {
    CaseFractureRow f;
    f.condition_id = r.get<std::string>(0);
    f.episode_id = episode_id;
    f.role = r.get<std::string>(1);
    f.site = r.get<std::string>(2);
    f.grio = r.get<std::string>(3);
    f.encounter_id = r.get<std::string>(4);
    out.push_back(std::move(f));
  }
  return out;
}

std::vector<CaseEventRow> CaseStore::Events(const std::string& episode_id) {
  std::vector<CaseEventRow> out;
  soci::rowset<soci::row> rows =
      (sql_.prepare << "SELECT seq, event, coalesce(from_stage, ''), to_stage, "
                       "floor(extract(epoch FROM at) * 1000000)::bigint, "
                       "floor(extract(epoch FROM recorded) * 1000000)::bigint, source, coalesce(actor, ''), "
                       "coalesce(reason, ''), coalesce(note, '') FROM fls_case_event WHERE episode_id = :e ORDER BY seq",
       soci::use(episode_id));
  for (const auto& r : rows) {
    CaseEventRow e;
    e.seq = r.get<long long>(0);
    e.event = r.get<std::string>(1);
    e.from_stage = r.get<std::string>(2);
    e.to_stage = r.get<std::string>(3);
    e.occurred_us = r.get<long long>(4);
    e.recorded_us = r.get<long long>(5);
    e.source = r.get<std::string>(6);
    e.actor = r.get<std::string>(7);
    e.reason = r.get<std::string>(8);
    e.note = r.get<std::string>(9);
    out.push_back(std::move(e));
  }
  return out;
}

int CaseStore::CountFractures(const std::string& episode_id, const std::string& site) {
  int n = 0;
  sql_ << "SELECT count(*)::int FROM fls_case_fracture WHERE episode_id = :e AND site = :s", soci::use(episode_id),
      soci::use(site), soci::into(n);
  return n;
}

}  // namespace fls::db
