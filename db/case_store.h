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
  std::vector<CaseFractureRow> FracturesOf(const std::string& episode_id);
  // The case's event log, oldest first.
  std::vector<CaseEventRow> Events(const std::string& episode_id);
  int CountFractures(const std::string& episode_id, const std::string& site);

 private:
  soci::session& sql_;
};

}  // namespace fls::db
