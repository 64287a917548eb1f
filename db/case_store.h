#pragma once
// SQL for the FLS case tables (migration 002). Used inside a transaction, through the
// ResourceStore of that transaction. Not thread-safe (one per transaction).

#include <optional>
#include <string>
#include <vector>

#include "db/resource_store.h"

namespace fls::db {

struct CaseRow {
  std::string episode_id;
  std::string patient_id;
  std::string site_org;
  bool open = true;
  std::string stage;
  std::string index_site;
  std::optional<long long> index_day;  // days since 1970-01-01
  std::string index_encounter;
  std::string refracture_of;
  bool high_energy = false;
  bool voided = false;  // cancelled: its index fracture was entered in error
  std::string source;
  long long opened_at_us = 0;
  std::vector<std::string> condition_ids;
  // The pathway (migration 005): empty until enrolment or a decision sets them.
  std::string care_plan_id;
  std::string phone, referring_physician, gp;
  std::string consent_programme_id, consent_report_id;
  std::optional<bool> consent_report;
  std::optional<long long> enrolled_day;
  std::string decided_drug, current_drug;
  std::optional<long long> treatment_start_day;
  std::optional<long long> unreachable_day;
};

// One contact with the patient (fls_contact).
struct ContactRow {
  std::string episode_id;
  long long occurred_us = 0;
  long long occurred_day = 0;
  std::string direction;  // outbound | inbound
  bool reached = false;
  std::optional<bool> adherent;
  std::string communication_id, report_id, task_id;
};

// One item of a case's investigation panel (fls_case_item).
struct CaseItemRow {
  std::string item;
  std::string service_request_id;
  std::string task_id;
  bool required = true;
  std::string status;  // ordered | resulted | waived | revoked
  std::string result_ref;
  std::optional<long long> result_day;
};

// A timer due, as claimed by one process (fls_timer).
struct TimerRow {
  std::string key, episode_id, kind;
  long long due_us = 0;
};

// A row to append to a case's event log.
struct NewCaseEvent {
  std::string episode_id;
  long long occurred_us = 0;
  std::string from_stage;  // empty for the row that opens the case
  std::string to_stage;
  std::string event;
  std::string reason;
  std::string note;
  std::string source;  // user | data | timer
  std::string actor;
};

struct CaseFractureRow {
  std::string condition_id;
  std::string episode_id;
  std::string role;
  std::string site;
  std::string grio;
  std::optional<long long> fracture_day;
  std::string encounter_id;
};

// One row of a case's event log (fls_case_event), in the order it was appended.
struct CaseEventRow {
  long long seq = 0;
  std::string event;
  std::string from_stage;  // empty for the row that opened the case
  std::string to_stage;
  long long occurred_us = 0;
  long long recorded_us = 0;
  std::string source;  // user | data | timer
  std::string actor;
  std::string reason;
  std::string note;
};

class CaseStore {
 public:
  explicit CaseStore(ResourceStore& store);

  // One case by its EpisodeOfCare id (without its Condition ids).
  std::optional<CaseRow> Case(const std::string& episode_id);
  // The case's row, locked until the transaction ends (SELECT ... FOR UPDATE): the events of one
  // case queue up here, so that they never interleave.
  std::optional<CaseRow> LockCase(const std::string& episode_id);
  void SetCarePlan(const std::string& episode_id, const std::string& care_plan_id);
  // Writes the pathway columns of `row` (care plan, contacts, consents, drugs).
  void SetPathway(const CaseRow& row);
  // Every case of the patient (open first), with its Condition ids.
  std::vector<CaseRow> CasesOfPatient(const std::string& patient_id);
  // Inserts an open case. Returns false, writing nothing, when the patient already has an open
  // case (after waiting for a concurrent transaction that opened one to end).
  bool InsertOpenCase(const CaseRow& row);
  // Returns false when the Condition is already on a case.
  bool AddFracture(const CaseFractureRow& row);
  void SetIndexSite(const std::string& episode_id, const std::string& site);
  void SetIndex(const std::string& episode_id, const std::string& site, long long day, const std::string& encounter_id);
  void SetSite(const std::string& episode_id, const std::string& site_org);
  void Close(const std::string& episode_id, const std::string& stage, long long at_us, bool voided = false);
  void AppendEvent(const std::string& episode_id, long long at_us, const std::string& from_stage,
                   const std::string& to_stage, const std::string& event, const std::string& reason,
                   const std::string& source);
  // Returns false when the Condition already has a review Task.
  bool ClaimReview(const std::string& condition_id, const std::string& task_id,
                   const std::string& patient_id, const std::string& reason);
  void AppendEvent(const NewCaseEvent& event);
  std::vector<CaseFractureRow> FracturesOf(const std::string& episode_id);
  // Whether any case of the patient holds a fracture at one of `sites`.
  bool PatientHasFractureAt(const std::string& patient_id, const std::vector<std::string>& sites);

  // The investigation panel.
  std::vector<CaseItemRow> Items(const std::string& episode_id);
  // The case and item a panel ServiceRequest belongs to, or nullopt.
  std::optional<std::pair<std::string, CaseItemRow>> ItemOfServiceRequest(const std::string& service_request_id);
  // Returns false, writing nothing, when the case already has the item.
  bool InsertItem(const std::string& episode_id, const CaseItemRow& item);
  void SetItemStatus(const std::string& episode_id, const std::string& item, const std::string& status,
                     const std::string& result_ref = "", std::optional<long long> result_day = std::nullopt);
  // Returns false when the case already has this flag from this evidence.
  bool ClaimFlag(const std::string& episode_id, const std::string& code, const std::string& evidence,
                 const std::string& flag_id);

  // The follow-up programme.
  void InsertContact(const ContactRow& contact);
  // The day of the last reached contact, if any.
  std::optional<long long> LastReachedDay(const std::string& episode_id);
  // How many different days had an unreached contact after `after_day` (exclusive; none: all).
  int UnreachedDaysAfter(const std::string& episode_id, std::optional<long long> after_day);
  // Returns false when this dose (day, drug) is recorded already.
  bool InsertDose(const std::string& episode_id, long long day, const std::string& drug, const std::string& source);
  std::optional<long long> LastDoseDay(const std::string& episode_id, const std::string& drug);
  // A dispensing of the current drug (a re-sent one is updated, not doubled).
  void UpsertDispense(const std::string& episode_id, const std::string& source, long long day, const std::string& drug,
                      std::optional<int> days_supply);

  // The flags of a case with `code` (or, code empty, every case's flags from `evidence`), as
  // (flag id, evidence, episode id).
  struct FlagRow {
    std::string flag_id, evidence, episode_id;
  };
  std::vector<FlagRow> Flags(const std::string& episode_id, const std::string& code);
  std::vector<FlagRow> FlagsFromEvidence(const std::string& evidence);

  // Timers. Schedule is a no-op when the key is pending or done (an effect is planned once); a
  // cancelled one is planned again (a drug stopped, then resumed).
  void ScheduleTimer(const std::string& key, const std::string& episode_id, const std::string& kind, long long due_us);
  // The pending timers of the case cancelled (it closed), or only those of a kind prefix.
  void CancelTimers(const std::string& episode_id, const std::string& kind_prefix = "");
  // Up to `limit` pending timers due at `now_us`, oldest first, locked for this transaction;
  // those another process holds are skipped (FOR UPDATE SKIP LOCKED).
  std::vector<TimerRow> ClaimDueTimers(long long now_us, int limit);
  void FinishTimer(const std::string& key, long long at_us, const std::string& outcome);
  // The case's event log, oldest first.
  std::vector<CaseEventRow> Events(const std::string& episode_id);
  int CountFractures(const std::string& episode_id, const std::string& site);

 private:
  soci::session& sql_;
};

}  // namespace fls::db
