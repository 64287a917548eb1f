#include "db/case_store.h"

#include <soci/soci.h>

namespace fls::db {

// Dates travel as day numbers and instants as microseconds: no text formats (and no ':' that SOCI
// would take for a placeholder) in the SQL.

CaseStore::CaseStore(ResourceStore& store) : sql_(store.sql_) {}

namespace {

// The columns of a CaseRow, in the order ReadCase reads them.
constexpr const char* kCaseColumns =
    "episode_id, patient_id, coalesce(site_org, ''), open::int, stage, index_site, "
    "(index_day - date '1970-01-01'), coalesce(index_encounter, ''), coalesce(refracture_of, ''), "
    "high_energy::int, source, (extract(epoch FROM opened_at) * 1000000)::bigint, voided::int, "
    "coalesce(care_plan_id, ''), coalesce(phone, ''), coalesce(referring_physician, ''), coalesce(gp, ''), "
    "coalesce(consent_programme_id, ''), coalesce(consent_report_id, ''), consent_report::int, "
    "(enrolled_day - date '1970-01-01'), coalesce(decided_drug, ''), coalesce(current_drug, ''), "
    "(treatment_start_day - date '1970-01-01'), (unreachable_day - date '1970-01-01') ";

CaseRow ReadCase(const soci::row& r) {
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
  c.care_plan_id = r.get<std::string>(13);
  c.phone = r.get<std::string>(14);
  c.referring_physician = r.get<std::string>(15);
  c.gp = r.get<std::string>(16);
  c.consent_programme_id = r.get<std::string>(17);
  c.consent_report_id = r.get<std::string>(18);
  if (r.get_indicator(19) != soci::i_null) c.consent_report = r.get<int>(19) != 0;
  if (r.get_indicator(20) != soci::i_null) c.enrolled_day = r.get<int>(20);
  c.decided_drug = r.get<std::string>(21);
  c.current_drug = r.get<std::string>(22);
  if (r.get_indicator(23) != soci::i_null) c.treatment_start_day = r.get<int>(23);
  if (r.get_indicator(24) != soci::i_null) c.unreachable_day = r.get<int>(24);
  return c;
}

}  // namespace

std::vector<CaseRow> CaseStore::CasesOfPatient(const std::string& patient_id) {
  std::vector<CaseRow> cases;
  soci::rowset<soci::row> rows =
      (sql_.prepare << std::string("SELECT ") + kCaseColumns +
                           "FROM fls_case WHERE patient_id = :p ORDER BY open DESC, opened_at",
       soci::use(patient_id));
  for (const auto& r : rows) cases.push_back(ReadCase(r));
  for (auto& c : cases) {
    soci::rowset<soci::row> conds =
        (sql_.prepare << "SELECT condition_id FROM fls_case_fracture WHERE episode_id = :e ORDER BY condition_id",
         soci::use(c.episode_id));
    for (const auto& r : conds) c.condition_ids.push_back(r.get<std::string>(0));
  }
  return cases;
}

std::optional<CaseRow> CaseStore::LockCase(const std::string& episode_id) {
  soci::rowset<soci::row> rows =
      (sql_.prepare << std::string("SELECT ") + kCaseColumns + "FROM fls_case WHERE episode_id = :e FOR UPDATE",
       soci::use(episode_id));
  for (const auto& r : rows) return ReadCase(r);
  return std::nullopt;
}

void CaseStore::SetCarePlan(const std::string& episode_id, const std::string& care_plan_id) {
  sql_ << "UPDATE fls_case SET care_plan_id = :p WHERE episode_id = :e", soci::use(care_plan_id), soci::use(episode_id);
}

void CaseStore::SetPathway(const CaseRow& row) {
  CaseRow c = row;  // SOCI binds lvalues, with their indicators
  auto ind = [](const std::string& v) { return v.empty() ? soci::i_null : soci::i_ok; };
  soci::indicator i_plan = ind(c.care_plan_id), i_phone = ind(c.phone), i_ref = ind(c.referring_physician),
                  i_gp = ind(c.gp), i_cp = ind(c.consent_programme_id), i_cr = ind(c.consent_report_id),
                  i_dd = ind(c.decided_drug), i_cd = ind(c.current_drug);
  int report = c.consent_report.value_or(false) ? 1 : 0;
  soci::indicator report_ind = c.consent_report ? soci::i_ok : soci::i_null;
  long long enrolled = c.enrolled_day.value_or(0);
  soci::indicator enrolled_ind = c.enrolled_day ? soci::i_ok : soci::i_null;
  long long started = c.treatment_start_day.value_or(0);
  soci::indicator started_ind = c.treatment_start_day ? soci::i_ok : soci::i_null;
  long long unreachable = c.unreachable_day.value_or(0);
  soci::indicator unreachable_ind = c.unreachable_day ? soci::i_ok : soci::i_null;
  sql_ << "UPDATE fls_case SET care_plan_id = :cp, phone = :ph, referring_physician = :rp, gp = :gp, "
          "consent_programme_id = :cpi, consent_report_id = :cri, consent_report = (:cr <> 0), "
          "enrolled_day = date '1970-01-01' + CAST(:ed AS integer), decided_drug = :dd, current_drug = :cd, "
          "treatment_start_day = date '1970-01-01' + CAST(:ts AS integer), "
          "unreachable_day = date '1970-01-01' + CAST(:ud AS integer) WHERE episode_id = :e",
      soci::use(c.care_plan_id, i_plan), soci::use(c.phone, i_phone), soci::use(c.referring_physician, i_ref),
      soci::use(c.gp, i_gp), soci::use(c.consent_programme_id, i_cp), soci::use(c.consent_report_id, i_cr),
      soci::use(report, report_ind), soci::use(enrolled, enrolled_ind), soci::use(c.decided_drug, i_dd),
      soci::use(c.current_drug, i_cd), soci::use(started, started_ind), soci::use(unreachable, unreachable_ind),
      soci::use(c.episode_id);
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
      (sql_.prepare << "SELECT condition_id, role, site, grio, coalesce(encounter_id, ''), "
                       "(fracture_day - date '1970-01-01') FROM fls_case_fracture "
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
    if (r.get_indicator(5) != soci::i_null) f.fracture_day = r.get<int>(5);
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

void CaseStore::AppendEvent(const NewCaseEvent& event) {
  NewCaseEvent e = event;  // SOCI binds lvalues, with their indicators
  auto ind = [](const std::string& v) { return v.empty() ? soci::i_null : soci::i_ok; };
  soci::indicator i_from = ind(e.from_stage), i_reason = ind(e.reason), i_actor = ind(e.actor), i_note = ind(e.note);
  sql_ << "INSERT INTO fls_case_event (episode_id, at, from_stage, to_stage, event, reason, source, actor, note) "
          "VALUES (:e, timestamptz 'epoch' + :at * interval '1 microsecond', :f, :t, :ev, :r, :src, :a, :n)",
      soci::use(e.episode_id), soci::use(e.occurred_us), soci::use(e.from_stage, i_from), soci::use(e.to_stage),
      soci::use(e.event), soci::use(e.reason, i_reason), soci::use(e.source), soci::use(e.actor, i_actor),
      soci::use(e.note, i_note);
  sql_ << "UPDATE fls_case SET stage = :t WHERE episode_id = :e", soci::use(e.to_stage), soci::use(e.episode_id);
}

bool CaseStore::PatientHasFractureAt(const std::string& patient_id, const std::vector<std::string>& sites) {
  for (const auto& site : sites) {
    int n = 0;
    sql_ << "SELECT count(*)::int FROM fls_case_fracture f JOIN fls_case c USING (episode_id) "
            "WHERE c.patient_id = :p AND f.site = :s AND NOT c.voided",
        soci::use(patient_id), soci::use(site), soci::into(n);
    if (n > 0) return true;
  }
  return false;
}

std::vector<CaseItemRow> CaseStore::Items(const std::string& episode_id) {
  std::vector<CaseItemRow> out;
  soci::rowset<soci::row> rows =
      (sql_.prepare << "SELECT item, service_request_id, task_id, required::int, status, coalesce(result_ref, ''), "
                       "(result_day - date '1970-01-01') FROM fls_case_item WHERE episode_id = :e ORDER BY item",
       soci::use(episode_id));
  for (const auto& r : rows) {
    CaseItemRow i;
    i.item = r.get<std::string>(0);
    i.service_request_id = r.get<std::string>(1);
    i.task_id = r.get<std::string>(2);
    i.required = r.get<int>(3) != 0;
    i.status = r.get<std::string>(4);
    i.result_ref = r.get<std::string>(5);
    if (r.get_indicator(6) != soci::i_null) i.result_day = r.get<int>(6);
    out.push_back(std::move(i));
  }
  return out;
}

std::optional<std::pair<std::string, CaseItemRow>> CaseStore::ItemOfServiceRequest(const std::string& sr) {
  std::string episode;
  sql_ << "SELECT episode_id FROM fls_case_item WHERE service_request_id = :s", soci::use(sr), soci::into(episode);
  if (!sql_.got_data()) return std::nullopt;
  for (auto& item : Items(episode)) {
    if (item.service_request_id == sr) return std::make_pair(episode, item);
  }
  return std::nullopt;
}

bool CaseStore::InsertItem(const std::string& episode_id, const CaseItemRow& i) {
  int inserted = 0;
  int required = i.required ? 1 : 0;
  sql_ << "WITH ins AS (INSERT INTO fls_case_item (episode_id, item, service_request_id, task_id, required, status) "
          "VALUES (:e, :i, :sr, :t, :r <> 0, :s) ON CONFLICT (episode_id, item) DO NOTHING RETURNING 1) "
          "SELECT count(*)::int FROM ins",
      soci::use(episode_id), soci::use(i.item), soci::use(i.service_request_id), soci::use(i.task_id),
      soci::use(required), soci::use(i.status), soci::into(inserted);
  return inserted == 1;
}

void CaseStore::SetItemStatus(const std::string& episode_id, const std::string& item, const std::string& status,
                              const std::string& result_ref, std::optional<long long> result_day) {
  long long day = result_day.value_or(0);
  soci::indicator day_ind = result_day ? soci::i_ok : soci::i_null;
  soci::indicator ref_ind = result_ref.empty() ? soci::i_null : soci::i_ok;
  sql_ << "UPDATE fls_case_item SET status = :s, result_ref = :r, "
          "result_day = date '1970-01-01' + CAST(:d AS integer) WHERE episode_id = :e AND item = :i",
      soci::use(status), soci::use(result_ref, ref_ind), soci::use(day, day_ind), soci::use(episode_id),
      soci::use(item);
}

bool CaseStore::ClaimFlag(const std::string& episode_id, const std::string& code, const std::string& evidence,
                          const std::string& flag_id) {
  int inserted = 0;
  sql_ << "WITH ins AS (INSERT INTO fls_case_flag (episode_id, code, evidence, flag_id) VALUES (:e, :c, :ev, :f) "
          "ON CONFLICT DO NOTHING RETURNING 1) SELECT count(*)::int FROM ins",
      soci::use(episode_id), soci::use(code), soci::use(evidence), soci::use(flag_id), soci::into(inserted);
  return inserted == 1;
}

void CaseStore::InsertContact(const ContactRow& row) {
  ContactRow c = row;  // SOCI binds lvalues, with their indicators
  int reached = c.reached ? 1 : 0;
  int adherent = c.adherent.value_or(false) ? 1 : 0;
  soci::indicator adherent_ind = c.adherent ? soci::i_ok : soci::i_null;
  soci::indicator report_ind = c.report_id.empty() ? soci::i_null : soci::i_ok;
  soci::indicator task_ind = c.task_id.empty() ? soci::i_null : soci::i_ok;
  sql_ << "INSERT INTO fls_contact (episode_id, occurred, occurred_day, direction, reached, adherent, communication_id, "
          "report_id, task_id) VALUES (:e, timestamptz 'epoch' + :at * interval '1 microsecond', "
          "date '1970-01-01' + CAST(:d AS integer), :dir, :r <> 0, (:a <> 0), :c, :rep, :t)",
      soci::use(c.episode_id), soci::use(c.occurred_us), soci::use(c.occurred_day), soci::use(c.direction),
      soci::use(reached), soci::use(adherent, adherent_ind), soci::use(c.communication_id), soci::use(c.report_id, report_ind),
      soci::use(c.task_id, task_ind);
}

std::optional<long long> CaseStore::LastReachedDay(const std::string& episode_id) {
  int day = 0;
  soci::indicator ind = soci::i_null;
  sql_ << "SELECT max(occurred_day) - date '1970-01-01' FROM fls_contact WHERE episode_id = :e AND reached",
      soci::use(episode_id), soci::into(day, ind);
  if (ind == soci::i_null) return std::nullopt;
  return day;
}

int CaseStore::UnreachedDaysAfter(const std::string& episode_id, std::optional<long long> after_day) {
  int n = 0;
  long long after = after_day.value_or(-1000000);
  sql_ << "SELECT count(DISTINCT occurred_day)::int FROM fls_contact WHERE episode_id = :e AND NOT reached "
          "AND occurred_day > date '1970-01-01' + CAST(:d AS integer)",
      soci::use(episode_id), soci::use(after), soci::into(n);
  return n;
}

bool CaseStore::InsertDose(const std::string& episode_id, long long day, const std::string& drug, const std::string& source) {
  int inserted = 0;
  sql_ << "WITH ins AS (INSERT INTO fls_dose (episode_id, day, drug, source) VALUES "
          "(:e, date '1970-01-01' + CAST(:d AS integer), :drug, :s) ON CONFLICT DO NOTHING RETURNING 1) "
          "SELECT count(*)::int FROM ins",
      soci::use(episode_id), soci::use(day), soci::use(drug), soci::use(source), soci::into(inserted);
  return inserted == 1;
}

std::optional<long long> CaseStore::LastDoseDay(const std::string& episode_id, const std::string& drug) {
  int day = 0;
  soci::indicator ind = soci::i_null;
  sql_ << "SELECT max(day) - date '1970-01-01' FROM fls_dose WHERE episode_id = :e AND drug = :d", soci::use(episode_id),
      soci::use(drug), soci::into(day, ind);
  if (ind == soci::i_null) return std::nullopt;
  return day;
}

std::vector<CaseStore::FlagRow> CaseStore::Flags(const std::string& episode_id, const std::string& code) {
  std::vector<FlagRow> out;
  soci::rowset<soci::row> rows = (sql_.prepare << "SELECT flag_id, evidence, episode_id FROM fls_case_flag "
                                                   "WHERE episode_id = :e AND code = :c ORDER BY flag_id",
                                  soci::use(episode_id), soci::use(code));
  for (const auto& r : rows) out.push_back({r.get<std::string>(0), r.get<std::string>(1), r.get<std::string>(2)});
  return out;
}

std::vector<CaseStore::FlagRow> CaseStore::FlagsFromEvidence(const std::string& evidence) {
  std::vector<FlagRow> out;
  soci::rowset<soci::row> rows = (sql_.prepare << "SELECT flag_id, evidence, episode_id FROM fls_case_flag "
                                                   "WHERE evidence = :ev ORDER BY flag_id",
                                  soci::use(evidence));
  for (const auto& r : rows) out.push_back({r.get<std::string>(0), r.get<std::string>(1), r.get<std::string>(2)});
  return out;
}

void CaseStore::UpsertDispense(const std::string& episode_id, const std::string& source, long long day,
                               const std::string& drug, std::optional<int> days_supply) {
  int supply = days_supply.value_or(0);
  soci::indicator supply_ind = days_supply ? soci::i_ok : soci::i_null;
  sql_ << "INSERT INTO fls_dispense (episode_id, source, day, drug, days_supply) VALUES (:e, :s, "
          "date '1970-01-01' + CAST(:d AS integer), :drug, :n) ON CONFLICT (episode_id, source) DO UPDATE SET "
          "day = EXCLUDED.day, drug = EXCLUDED.drug, days_supply = EXCLUDED.days_supply",
      soci::use(episode_id), soci::use(source), soci::use(day), soci::use(drug), soci::use(supply, supply_ind);
}

void CaseStore::ScheduleTimer(const std::string& key, const std::string& episode_id, const std::string& kind,
                              long long due_us) {
  sql_ << "INSERT INTO fls_timer (key, episode_id, kind, due_at) VALUES "
          "(:k, :e, :kind, timestamptz 'epoch' + :at * interval '1 microsecond') "
          "ON CONFLICT (key) DO UPDATE SET state = 'pending', due_at = EXCLUDED.due_at, fired_at = NULL, outcome = NULL "
          "WHERE fls_timer.state = 'cancelled'",
      soci::use(key), soci::use(episode_id), soci::use(kind), soci::use(due_us);
}

void CaseStore::CancelTimers(const std::string& episode_id, const std::string& kind_prefix) {
  std::string pattern = kind_prefix + "%";
  sql_ << "UPDATE fls_timer SET state = 'cancelled' WHERE episode_id = :e AND state = 'pending' "
          "AND kind LIKE :k",
      soci::use(episode_id), soci::use(pattern);
}

std::vector<TimerRow> CaseStore::ClaimDueTimers(long long now_us, int limit) {
  std::vector<TimerRow> out;
  soci::rowset<soci::row> rows =
      (sql_.prepare << "SELECT key, episode_id, kind, floor(extract(epoch FROM due_at) * 1000000)::bigint "
                       "FROM fls_timer WHERE state = 'pending' AND due_at <= timestamptz 'epoch' + "
                       ":now * interval '1 microsecond' ORDER BY due_at, key LIMIT :n FOR UPDATE SKIP LOCKED",
       soci::use(now_us), soci::use(limit));
  for (const auto& r : rows) {
    out.push_back({r.get<std::string>(0), r.get<std::string>(1), r.get<std::string>(2), r.get<long long>(3)});
  }
  return out;
}

void CaseStore::FinishTimer(const std::string& key, long long at_us, const std::string& outcome) {
  sql_ << "UPDATE fls_timer SET state = 'done', fired_at = timestamptz 'epoch' + :at * interval '1 microsecond', "
          "outcome = :o WHERE key = :k",
      soci::use(at_us), soci::use(outcome), soci::use(key);
}

}  // namespace fls::db
