#include "fhir/bulk_export.h"

#include <algorithm>
#include <chrono>
#include <random>
#include <set>
#include <sstream>

#include "db/database.h"
#include "db/export_store.h"
#include "fhir/error.h"
#include "fhir/fhir_date.h"
#include "fhir/json_builder.h"

namespace fls::fhir {

namespace {

std::string NewJobId() {
  std::random_device rd;  // /dev/urandom
  std::string out;
  static const char* kHex = "0123456789abcdef";
  for (int i = 0; i < 32; ++i) out += kHex[rd() % 16];
  return out;
}

std::vector<std::string> SplitCommas(const std::string& s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i <= s.size()) {
    size_t j = s.find(',', i);
    if (j == std::string::npos) j = s.size();
    std::string part = s.substr(i, j - i);
    while (!part.empty() && part.front() == ' ') part.erase(part.begin());
    while (!part.empty() && part.back() == ' ') part.pop_back();
    out.push_back(part);
    i = j + 1;
  }
  return out;
}

bool PreferAsync(const std::string& prefer) {
  for (const auto& p : SplitCommas(prefer)) {
    std::string v = p;
    std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return std::tolower(c); });
    if (v == "respond-async") return true;
  }
  return false;
}

std::optional<db::ExportStore::Job> JobOf(FhirService& service, const std::string& id, const ExportRequester& who) {
  bool ok = id.size() == 32;
  for (char c : id) ok = ok && std::isxdigit(static_cast<unsigned char>(c));
  if (!ok) return std::nullopt;
  std::optional<db::ExportStore::Job> job;
  service.ReadStore([&](db::ResourceStore& st) { job = db::ExportStore(st).Get(id); });
  if (!job || job->status == "cancelled" || (!who.admin && job->requester != who.key)) return std::nullopt;
  return job;
}

FhirError NoJob() { return FhirError(ErrorCode::kNotFound, "no such export (cancelled, expired, or not yours)"); }

}  // namespace

std::string KickOffExport(FhirService& service, const ExportKickOff& req, const ExportRequester& who) {
  if (!PreferAsync(req.prefer)) {
    throw FhirError(ErrorCode::kBadRequest, "a Bulk Data export needs the header Prefer: respond-async");
  }
  std::vector<std::string> types;
  std::set<std::string> seen_params;
  long long since = -1;
  for (const auto& p : req.query) {
    if (p.name == "_type") {
      for (const auto& t : SplitCommas(p.value)) {
        if (t.empty()) throw FhirError(ErrorCode::kBadRequest, "_type has an empty type", "_type");
        if (!service.IsResourceType(t)) throw FhirError(ErrorCode::kBadRequest, "_type: " + t + " is not an R4 resource type", "_type");
        if (std::find(types.begin(), types.end(), t) == types.end()) types.push_back(t);
      }
      continue;
    }
    if (!seen_params.insert(p.name).second) throw FhirError(ErrorCode::kBadRequest, p.name + " is given twice", p.name);
    if (p.name == "_outputFormat") {
      if (p.value != "application/fhir+ndjson" && p.value != "application/ndjson" && p.value != "ndjson") {
        throw FhirError(ErrorCode::kBadRequest, "_outputFormat must be application/fhir+ndjson", "_outputFormat");
      }
    } else if (p.name == "_since") {
      auto r = ParseFhirDate(p.value);
      if (!r || p.value.size() < 10) throw FhirError(ErrorCode::kBadRequest, "_since must be a FHIR instant", "_since");
      since = r->lo_us;
    } else if (p.name == "_format") {
      // JSON only; CheckAccept has refused the others.
    } else {
      throw FhirError(ErrorCode::kBadRequest,
                      "parameter " + p.name + " is not supported by this export (_type, _since, _outputFormat)", p.name);
    }
  }
  if (req.level != "system" && !who.may_read("Patient")) {
    throw FhirError(ErrorCode::kForbidden, "a Patient or Group export needs the right to read patients");
  }
  if (req.level == "group") {
    if (!who.may_read("Group")) throw FhirError(ErrorCode::kForbidden, "reading Groups is not allowed to this requester");
    bool exists = false;
    service.ReadStore([&](db::ResourceStore& st) { exists = db::ExportStore(st).GroupExists(req.group_id); });
    if (!exists) throw FhirError(ErrorCode::kNotFound, "no Group/" + req.group_id);
  }
  if (types.empty()) {
    // Every type the requester may read, and nothing else: the quality role's export holds no
    // patient data.
    for (const auto& t : service.ResourceTypes()) {
      if (who.may_read(t)) types.push_back(t);
    }
  } else {
    for (const auto& t : types) {
      if (!who.may_read(t)) throw FhirError(ErrorCode::kForbidden, "this requester may not read " + t, "_type");
    }
  }
  if (types.empty()) throw FhirError(ErrorCode::kForbidden, "this requester may read no resource type");
  db::ExportStore::Job job;
  job.id = NewJobId();
  job.level = req.level;
  job.group_id = req.group_id;
  job.types = types;
  job.since_us = since;
  job.requester = who.key;
  job.request_url = req.request_url;
  service.TransactStore([&](db::ResourceStore& st) { db::ExportStore(st).Create(job); });
  return job.id;
}

ExportAnswer ExportStatus(FhirService& service, const std::string& id, const ExportRequester& who, const std::string& base) {
  auto job = JobOf(service, id, who);
  if (!job) throw NoJob();
  ExportAnswer a;
  if (job->status == "queued" || job->status == "running") {
    a.status = 202;
    a.headers.emplace_back("X-Progress", job->status == "queued" ? std::string("queued")
                                                                  : "running: " + std::to_string(job->done_types) + " of " +
                                                                        std::to_string(job->types.size()) + " types");
    a.headers.emplace_back("Retry-After", "2");
    a.headers.emplace_back("Cache-Control", "no-store");
    return a;
  }
  if (job->status == "failed") {
    throw FhirError(ErrorCode::kInternal, "the export failed: " + (job->error.empty() ? std::string("see the server's log") : job->error));
  }
  std::vector<db::ExportStore::File> files;
  service.ReadStore([&](db::ResourceStore& st) { files = db::ExportStore(st).Files(id); });
  Json j;
  j.Obj().S("transactionTime", FormatFhirInstant(job->transaction_time_us)).S("request", job->request_url);
  j.B("requiresAccessToken", true);
  j.Arr("output");
  for (const auto& f : files) {
    j.Obj().S("type", f.type).S("url", base + "/$export-file/" + id + "/" + std::to_string(f.seq)).I("count", f.count).End();
  }
  j.EndArr().Arr("error").EndArr().End();
  a.body = Serialize(j.Doc());
  a.headers.emplace_back("Cache-Control", "no-store");
  if (job->finished_us > 0) {
    a.headers.emplace_back("Expires", FormatHttpDate(job->finished_us + 86400LL * 1000000));
  }
  return a;
}

ExportAnswer CancelExport(FhirService& service, const std::string& id, const ExportRequester& who) {
  if (!JobOf(service, id, who)) throw NoJob();
  bool cancelled = false;
  service.TransactStore([&](db::ResourceStore& st) { cancelled = db::ExportStore(st).Cancel(id); });
  if (!cancelled) throw NoJob();
  ExportAnswer a;
  a.status = 202;
  Json j;
  j.Obj().S("resourceType", "OperationOutcome").Arr("issue");
  j.Obj().S("severity", "information").S("code", "informational").S("diagnostics", "the export is cancelled and its files deleted").End();
  j.EndArr().End();
  a.body = Serialize(j.Doc());
  a.content_type = "application/fhir+json; charset=utf-8";
  return a;
}

ExportAnswer ExportFile(FhirService& service, const std::string& id, const std::string& seq, const ExportRequester& who) {
  auto job = JobOf(service, id, who);
  if (!job || job->status != "complete") throw NoJob();
  bool digits = !seq.empty() && seq.size() <= 9;
  for (char c : seq) digits = digits && std::isdigit(static_cast<unsigned char>(c));
  if (!digits) throw NoJob();
  std::optional<std::string> data;
  service.ReadStore([&](db::ResourceStore& st) { data = db::ExportStore(st).FileData(id, std::stoi(seq)); });
  if (!data) throw NoJob();
  ExportAnswer a;
  a.content_type = "application/fhir+ndjson";
  a.body = std::move(*data);
  a.headers.emplace_back("Cache-Control", "private, no-store");
  return a;
}

ExportRunner::ExportRunner(FhirService& service, ExportRunnerConfig config) : service_(service), config_(std::move(config)) {}

ExportRunner::~ExportRunner() { Stop(); }

void ExportRunner::Start() {
  if (thread_.joinable()) return;
  stop_ = false;
  thread_ = std::thread([this] { Loop(); });
}

void ExportRunner::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void ExportRunner::Loop() {
  auto last_cleanup = std::chrono::steady_clock::time_point{};
  while (!stop_) {
    bool worked = false;
    try {
      if (std::chrono::steady_clock::now() - last_cleanup > std::chrono::minutes(1)) {
        service_.TransactStore([&](db::ResourceStore& st) { db::ExportStore(st).DeleteExpired(config_.keep_s); });
        last_cleanup = std::chrono::steady_clock::now();
      }
      worked = RunOnce();
    } catch (const std::exception&) {
      // The database is away: try again at the next poll (the job's heartbeat goes stale and it
      // is taken over, here or by another process).
    }
    if (worked) continue;
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::milliseconds(config_.poll_ms), [this] { return stop_.load(); });
  }
}

bool ExportRunner::RunOnce() {
  std::optional<db::ExportStore::Job> job;
  service_.TransactStore([&](db::ResourceStore& st) {
    db::ExportStore x(st);
    job = x.Claim(config_.owner, config_.stale_s, x.SafeNow(config_.margin_s));
  });
  if (!job) return false;
  try {
    Run(job->id);
  } catch (const FhirError& e) {
    service_.TransactStore([&](db::ResourceStore& st) { db::ExportStore(st).Finish(job->id, config_.owner, "failed", e.what()); });
  } catch (const db::DbError&) {
    throw;  // the database is away: the job is taken over once its heartbeat is stale
  } catch (const std::exception& e) {
    service_.TransactStore([&](db::ResourceStore& st) { db::ExportStore(st).Finish(job->id, config_.owner, "failed", e.what()); });
  }
  return true;
}

void ExportRunner::Run(const std::string& id) {
  std::optional<db::ExportStore::Job> job;
  service_.ReadStore([&](db::ResourceStore& st) { job = db::ExportStore(st).Get(id); });
  if (!job) return;
  std::vector<std::string> patients;
  if (job->level == "group") {
    service_.ReadStore([&](db::ResourceStore& st) { patients = db::ExportStore(st).GroupPatients(job->group_id); });
  }
  const std::vector<std::string>* only = job->level == "group" ? &patients : nullptr;
  const bool any_patient = job->level == "patient";
  int seq = 0;
  for (size_t ti = 0; ti < job->types.size(); ++ti) {
    const std::string& type = job->types[ti];
    std::string buffer, after;
    int count = 0;
    // Writes the file so far; false when the job is no longer ours (cancelled, taken over).
    auto flush = [&]() {
      bool ours = false;
      service_.TransactStore([&](db::ResourceStore& st) {
        db::ExportStore x(st);
        ours = x.Heartbeat(id, config_.owner, static_cast<int>(ti));
        if (ours && count > 0) x.AddFile(id, seq, type, count, buffer);
      });
      if (ours && count > 0) ++seq;
      buffer.clear();
      count = 0;
      return ours;
    };
    if (job->level == "group" && patients.empty()) break;
    while (true) {
      if (stop_) return;  // shutting down: the job stays running and is taken over when stale
      db::ExportStore::Page page;
      service_.ReadStore([&](db::ResourceStore& st) {
        page = db::ExportStore(st).Read(type, after, config_.page, job->transaction_time_us, job->since_us, only, any_patient);
      });
      for (auto& json : page.json) {
        buffer += json;
        buffer += '\n';
        ++count;
        if (buffer.size() >= config_.file_bytes && !flush()) return;
      }
      if (static_cast<int>(page.ids.size()) < config_.page) break;
      after = page.ids.back();
    }
    if (!flush()) return;
  }
  bool ours = false;
  service_.TransactStore([&](db::ResourceStore& st) {
    db::ExportStore x(st);
    ours = x.Heartbeat(id, config_.owner, static_cast<int>(job->types.size()));
    if (ours) x.Finish(id, config_.owner, "complete", "");
  });
}

}  // namespace fls::fhir
