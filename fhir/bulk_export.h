#pragma once
// FHIR Bulk Data export (HL7 Bulk Data Access IG v2, docs/bulk-export.md): the asynchronous
// kick-off (system, Patient and Group level, _type, _since, _outputFormat), the status and its
// manifest, cancellation, the NDJSON files, and the runner that writes them in the background.
//
// The export is the data as it was at its transaction time, read page by page from the version
// history (no long transaction), written as files of at most a few MiB in the database
// (db/export_store.h): memory stays flat whatever the size, and any server process on the
// database can run a job, answer its status and serve its files. A job whose process died is taken
// over after its heartbeat goes stale, and starts again.

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "fhir/fhir_service.h"

namespace fls::fhir {

// Who asks: a job is theirs alone (an administrator sees every job).
struct ExportRequester {
  std::string key;  // the principal's client and subject
  bool admin = false;
  std::function<bool(const std::string& type)> may_read;  // the types the requester may read
};

struct ExportKickOff {
  std::string level = "system";  // system | patient | group
  std::string group_id;
  std::vector<QueryParam> query;
  std::string prefer;       // the Prefer header
  std::string request_url;  // as the manifest's `request`
};
// Validates and queues the job; its id. Throws FhirError: 400 (no Prefer: respond-async, an
// unknown type, a bad _since, an unsupported parameter or format), 403 (a type the requester may
// not read; Patient and Group level need Patient), 404 (no such Group).
std::string KickOffExport(FhirService& service, const ExportKickOff& request, const ExportRequester& requester);

struct ExportAnswer {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string content_type = "application/json";
};
// 202 with X-Progress and Retry-After while queued or running; 200 with the manifest when
// complete; a failed job is 500 with an OperationOutcome. 404 for an unknown or cancelled job, or
// one of another requester.
ExportAnswer ExportStatus(FhirService& service, const std::string& id, const ExportRequester& requester,
                          const std::string& base_url);
// DELETE of the status URL: 202, the files deleted; 404 as above.
ExportAnswer CancelExport(FhirService& service, const std::string& id, const ExportRequester& requester);
// One NDJSON file (application/fhir+ndjson); 404 as above.
ExportAnswer ExportFile(FhirService& service, const std::string& id, const std::string& seq, const ExportRequester& requester);

struct ExportRunnerConfig {
  std::string owner;              // this process, for the job's owner column
  size_t file_bytes = 4u << 20;   // a file ends at the first resource past this size
  int page = 200;                 // resources read per statement
  int poll_ms = 1000;             // how often an idle runner looks for a queued job
  int stale_s = 60;               // a running job without heartbeat this long is taken over
  int keep_s = 86400;             // finished jobs and their files are deleted after this
  int margin_s = 5;               // the transaction time is this much before the kick-off was run
};

class ExportRunner {
 public:
  ExportRunner(FhirService& service, ExportRunnerConfig config);
  ~ExportRunner();
  void Start();
  void Stop();
  // Runs one queued job to its end, if there is one (true); for tests and the loop.
  bool RunOnce();

 private:
  void Loop();
  void Run(const std::string& id);

  FhirService& service_;
  ExportRunnerConfig config_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<bool> stop_{false};
};

}  // namespace fls::fhir
