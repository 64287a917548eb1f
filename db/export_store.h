#pragma once
// SQL of FHIR Bulk Data export (fhir/bulk_export.h, docs/bulk-export.md): the jobs, their NDJSON
// files, and the reads of an export, page by page, each resource as it was at the export's
// transaction time (from resource_version: no long transaction is held). Used through the
// ResourceStore of a read or a transaction. Not thread-safe (one per use).

#include <optional>
#include <string>
#include <vector>

#include "db/resource_store.h"

namespace fls::db {

class ExportStore {
 public:
  explicit ExportStore(ResourceStore& store);

  struct Job {
    std::string id, status, level, group_id, requester, request_url, error, owner;
    std::vector<std::string> types;
    long long since_us = -1;             // -1: none
    long long transaction_time_us = -1;  // -1: not started
    long long created_us = 0, finished_us = -1;
    int done_types = 0;
  };
  void Create(const Job& job);
  std::optional<Job> Get(const std::string& id);
  // Claims the oldest queued job, or a running one whose heartbeat is older than `stale_s` (its
  // process died): running, owned by `owner`, its old files deleted, its transaction time set
  // (kept when it had one). None when there is nothing to do.
  std::optional<Job> Claim(const std::string& owner, int stale_s, long long transaction_time_us);
  // Still this owner's running job? Updates the heartbeat and progress; false when it was
  // cancelled or taken over (the runner then stops).
  bool Heartbeat(const std::string& id, const std::string& owner, int done_types);
  void AddFile(const std::string& id, int seq, const std::string& type, int count, const std::string& ndjson);
  // complete or failed, when still this owner's running job.
  void Finish(const std::string& id, const std::string& owner, const std::string& status, const std::string& error);
  // Cancels a job and deletes its files; false when there is no such job (or it was cancelled).
  bool Cancel(const std::string& id);
  struct File {
    int seq = 0;
    std::string type;
    int count = 0;
  };
  std::vector<File> Files(const std::string& id);
  std::optional<std::string> FileData(const std::string& id, int seq);
  // Deletes the jobs that finished (or were cancelled) more than `max_age_s` ago; their number.
  int DeleteExpired(int max_age_s);

  // The instant an export started now can promise complete: the database's now, or the start
  // of the oldest transaction still open when earlier, less `margin_s` (for the clocks of the
  // processes that stamp lastUpdated). Microseconds since the epoch.
  long long SafeNow(int margin_s);

  struct Page {
    std::vector<std::string> ids, json;  // in id order
  };
  // Up to `limit` resources of `type` with an id after `after_id`, each in its version current at
  // `at_us` (none when it did not exist or was deleted then), last updated after `since_us`
  // (-1: any). `patients`: only those resources (Patient) or those referring to one of them
  // (other types); `any_patient`: only Patients and resources referring to some Patient.
  Page Read(const std::string& type, const std::string& after_id, int limit, long long at_us, long long since_us,
            const std::vector<std::string>* patients, bool any_patient);
  // The Patients a Group's members name (Group.member.entity), as they are now.
  std::vector<std::string> GroupPatients(const std::string& group_id);
  bool GroupExists(const std::string& group_id);

 private:
  soci::session& sql_;
};

}  // namespace fls::db
