// FHIR Bulk Data export through the real server (docs/bulk-export.md): the kick-off's refusals,
// a system export whose NDJSON parses and counts what the database holds, _since, a Group's
// patients and their data, cancellation, who may export what (the quality role gets no patient
// data, a coordinator no export, a job is its requester's), and an export of some 50 MB during
// which the server's peak memory grows by a small part of it (files are written and served one at
// a time).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <thread>

#include "tests/api/fls_cases.h"
#include "tests/api/test_client.h"

namespace fls::test {
namespace {

const auto* const kEnv = ::testing::AddGlobalTestEnvironment(new SuiteServer());
int Port() { return SuiteServer::Server().port(); }
Response Get(const std::string& t, std::map<std::string, std::string> h = {}) { return Http(Port(), "GET", t, "", h); }
Response Post(const std::string& t, const std::string& b) { return Http(Port(), "POST", t, b); }

const std::map<std::string, std::string> kAsync = {{"Prefer", "respond-async"}, {"Accept", "application/fhir+json"}};

// The path of an absolute URL of this server.
std::string PathOf(const std::string& url) {
  auto p = url.find("://");
  p = url.find('/', p == std::string::npos ? 0 : p + 3);
  return p == std::string::npos ? "/" : url.substr(p);
}

// Kicks off and polls until the manifest; the status path in `status_path`.
rapidjson::Document Export(const std::string& kick_off, std::map<std::string, std::string> h = kAsync,
                           std::string* status_path = nullptr) {
  Response k = Get(kick_off, h);
  EXPECT_EQ(k.status, 202) << kick_off << ": " << k.body;
  const std::string where = k.Header("content-location");
  EXPECT_NE(where.find("/$export-status/"), std::string::npos) << where;
  const std::string path = PathOf(where);
  if (status_path) *status_path = path;
  h.erase("Prefer");
  for (int i = 0; i < 600; ++i) {
    Response s = Get(path, h);
    if (s.status == 200) {
      EXPECT_EQ(s.Header("content-type").find("application/json"), 0u);
      return s.Json();
    }
    EXPECT_EQ(s.status, 202) << s.body;
    if (s.status != 202) break;
    EXPECT_FALSE(s.Header("retry-after").empty());
    EXPECT_FALSE(s.Header("x-progress").empty());
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  ADD_FAILURE() << "the export of " << kick_off << " did not complete";
  return rapidjson::Document();
}

struct Downloaded {
  std::map<std::string, int> lines;             // per type
  std::map<std::string, std::set<std::string>> ids;  // per type
  size_t bytes = 0;
  int files = 0;
};

Downloaded Download(const rapidjson::Document& manifest, std::map<std::string, std::string> h = {}) {
  Downloaded d;
  if (!manifest.IsObject() || !manifest.HasMember("output")) return d;
  for (const auto& o : manifest["output"].GetArray()) {
    const std::string type = o["type"].GetString();
    Response f = Get(PathOf(o["url"].GetString()), h);
    EXPECT_EQ(f.status, 200) << f.body.substr(0, 300);
    EXPECT_EQ(f.Header("content-type"), "application/fhir+ndjson");
    ++d.files;
    d.bytes += f.body.size();
    int n = 0;
    size_t i = 0;
    while (i < f.body.size()) {
      size_t j = f.body.find('\n', i);
      EXPECT_NE(j, std::string::npos) << "the last line ends with a newline";
      if (j == std::string::npos) break;
      rapidjson::Document r;
      r.Parse(f.body.c_str() + i, j - i);
      EXPECT_FALSE(r.HasParseError()) << "line " << n << " of a " << type << " file";
      if (!r.HasParseError()) {
        EXPECT_EQ(std::string(r["resourceType"].GetString()), type);
        EXPECT_TRUE(d.ids[type].insert(r["id"].GetString()).second) << type << "/" << r["id"].GetString() << " twice";
      }
      ++n;
      i = j + 1;
    }
    EXPECT_EQ(n, o["count"].GetInt()) << "a " << type << " file's count";
    d.lines[type] += n;
  }
  return d;
}

std::string NewPatient(const std::string& family) {
  return Id(Post("/Patient", R"({"resourceType":"Patient","name":[{"family":")" + family + R"("}]})"));
}
std::string NewObservation(const std::string& patient, const std::string& text = "") {
  std::string extra = text.empty() ? "" : R"(,"valueString":")" + text + "\"";
  return Id(Post("/Observation", R"({"resourceType":"Observation","status":"final","code":{"text":"weight"},"subject":{"reference":"Patient/)" +
                                     patient + "\"}" + extra + "}"));
}
int Count(const std::string& type) { return std::stoi(Sql("SELECT count(*) FROM resource WHERE res_type = '" + type + "' AND NOT deleted")); }

TEST(Export, KickOffRefusals) {
  struct Case {
    std::string target;
    std::map<std::string, std::string> headers;
    int status;
  };
  const std::map<std::string, std::string> sync = {{"Accept", "application/fhir+json"}};
  const Case cases[] = {
      {"/$export", sync, 400},  // no Prefer: respond-async
      {"/$export?_type=NoSuchType", kAsync, 400},
      {"/$export?_type=Patient,", kAsync, 400},
      {"/$export?_since=yesterday", kAsync, 400},
      {"/$export?_since=2026-01-01&_since=2026-02-01", kAsync, 400},
      {"/$export?_outputFormat=text/csv", kAsync, 400},
      {"/$export?_typeFilter=Patient%3Factive%3Dtrue", kAsync, 400},
      {"/Group/no-such-group/$export", kAsync, 404},
      {"/$export-status/0123456789abcdef0123456789abcdef", sync, 404},
      {"/$export-status/not-a-job", sync, 404},
      {"/$export-file/0123456789abcdef0123456789abcdef/0", sync, 404},
  };
  for (const auto& c : cases) {
    Response r = Get(c.target, c.headers);
    EXPECT_EQ(r.status, c.status) << c.target << ": " << r.body;
    EXPECT_NE(r.body.find("OperationOutcome"), std::string::npos) << c.target;
  }
}

TEST(Export, SystemExportParsesAndCountsWhatTheDatabaseHolds) {
  const std::string family = "Export-" + Unique();
  std::vector<std::string> patients;
  for (int i = 0; i < 30; ++i) patients.push_back(NewPatient(family));
  for (int i = 0; i < 60; ++i) NewObservation(patients[i % 30]);
  std::this_thread::sleep_for(std::chrono::seconds(6));  // past the transaction time's margin
  const std::string kick_off = "/$export?_type=Patient,Observation&_outputFormat=application%2Ffhir%2Bndjson";
  auto m = Export(kick_off);
  ASSERT_TRUE(m.IsObject());
  EXPECT_TRUE(m["requiresAccessToken"].GetBool());
  EXPECT_NE(std::string(m["request"].GetString()).find("/$export?_type=Patient,Observation"), std::string::npos);
  EXPECT_EQ(std::string(m["transactionTime"].GetString()).size(), 24u);
  EXPECT_TRUE(m["error"].IsArray());
  auto d = Download(m);
  EXPECT_EQ(d.lines["Patient"], Count("Patient"));
  EXPECT_EQ(d.lines["Observation"], Count("Observation"));
  EXPECT_EQ(d.lines.size(), 2u) << "only the types asked for";
  for (const auto& p : patients) EXPECT_TRUE(d.ids["Patient"].count(p)) << p;
}

TEST(Export, SinceGivesWhatChangedAfter) {
  const std::string before = NewPatient("Before-" + Unique());
  std::this_thread::sleep_for(std::chrono::seconds(6));
  auto first = Export("/$export?_type=Patient");
  ASSERT_TRUE(first.IsObject());
  const std::string t = first["transactionTime"].GetString();
  EXPECT_TRUE(Download(first).ids["Patient"].count(before));
  // Written after the first export: in the next one with _since, and alone there.
  const std::string a = NewPatient("After-" + Unique()), b = NewPatient("After-" + Unique());
  // An export promises what was written up to its transaction time, a margin before the
  // kick-off (for writers still in flight); what came later is the next _since's.
  auto too_soon = Download(Export("/$export?_type=Patient&_since=" + t));
  EXPECT_TRUE(too_soon.ids["Patient"].empty() || too_soon.ids["Patient"] == (std::set<std::string>{a, b}));
  std::this_thread::sleep_for(std::chrono::seconds(6));
  auto next = Export("/$export?_type=Patient&_since=" + t);
  auto d = Download(next);
  EXPECT_EQ(d.ids["Patient"], (std::set<std::string>{a, b}));
  EXPECT_FALSE(Download(first).ids["Patient"].count(a)) << "the first export is the data as it was";
}

TEST(Export, AGroupsPatientsAndTheirData) {
  const std::string p1 = NewPatient("Grp-" + Unique()), p2 = NewPatient("Grp-" + Unique()), other = NewPatient("Grp-" + Unique());
  const std::string o1 = NewObservation(p1);
  NewObservation(other);
  const std::string group = Id(Post("/Group", R"({"resourceType":"Group","type":"person","actual":true,"member":[{"entity":{"reference":"Patient/)" +
                                                   p1 + R"("}},{"entity":{"reference":"Patient/)" + p2 + R"("}}]})"));
  std::this_thread::sleep_for(std::chrono::seconds(6));
  auto m = Export("/Group/" + group + "/$export?_type=Patient,Observation");
  auto d = Download(m);
  EXPECT_EQ(d.ids["Patient"], (std::set<std::string>{p1, p2}));
  EXPECT_EQ(d.ids["Observation"], (std::set<std::string>{o1}));
  // Every patient's data: the Patient level.
  auto all = Download(Export("/Patient/$export?_type=Patient,Observation"));
  EXPECT_TRUE(all.ids["Patient"].count(other));
  EXPECT_EQ(all.lines["Observation"], Count("Observation"));
}

TEST(Export, CancelDeletesTheJob) {
  Response k = Get("/$export", kAsync);
  ASSERT_EQ(k.status, 202) << k.body;
  const std::string path = PathOf(k.Header("content-location"));
  Response c = Http(Port(), "DELETE", path, "");
  EXPECT_EQ(c.status, 202) << c.body;
  EXPECT_EQ(Get(path).status, 404);
  EXPECT_EQ(Http(Port(), "DELETE", path, "").status, 404);
  const std::string id = path.substr(path.rfind('/') + 1);
  std::this_thread::sleep_for(std::chrono::seconds(2));
  EXPECT_EQ(Sql("SELECT count(*) FROM fls_export_file WHERE job_id = '" + id + "'"), "0") << "no file left of a cancelled export";
  EXPECT_EQ(Sql("SELECT status FROM fls_export_job WHERE id = '" + id + "'"), "cancelled");
}

std::map<std::string, std::string> Session(const std::string& role, const std::string& extra = "") {
  const std::string login = "export-" + role + "-" + Unique(), pw = "a long enough password";
  std::string cmd = "printf '%s\\n' '" + pw + "' | FLS_DATABASE_URL='" + TestDatabaseUrl() + "' '" + Env("FLS_SERVER_BIN") +
                    "' user add --login " + login + " --role " + role + " " + extra + " >/dev/null 2>&1";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  Response r = Http(Port(), "POST", "/auth/login", "{\"login\":\"" + login + "\",\"password\":\"" + pw + "\"}",
                    {{"Authorization", ""}, {"Content-Type", "application/json"}});
  EXPECT_EQ(r.status, 200) << r.body;
  std::string c = r.Header("set-cookie");
  return {{"Authorization", ""}, {"Cookie", c.substr(0, c.find(';'))}};
}

TEST(Export, WhoMayExportWhat) {
  NewPatient("Secret-" + Unique());
  auto quality = Session("quality");
  auto q = quality;
  q.insert(kAsync.begin(), kAsync.end());
  // The warehouse: no patient data by any level or type.
  EXPECT_EQ(Get("/Patient/$export", q).status, 403);
  EXPECT_EQ(Get("/$export?_type=Patient", q).status, 403);
  EXPECT_EQ(Get("/$export?_type=Organization,Observation", q).status, 403);
  std::string status;
  auto m = Export("/$export", q, &status);
  ASSERT_TRUE(m.IsObject());
  std::set<std::string> types;
  for (const auto& o : m["output"].GetArray()) types.insert(o["type"].GetString());
  for (const char* t : {"Patient", "Observation", "Condition", "EpisodeOfCare", "Encounter", "Task", "AuditEvent"}) {
    EXPECT_FALSE(types.count(t)) << t << " in the quality role's export";
  }
  EXPECT_TRUE(types.count("Measure")) << "the Measures are the quality role's to export";
  auto d = Download(m, quality);
  EXPECT_GT(d.lines["Measure"], 20);
  // A job is its requester's: the administrator's token sees it, another person does not.
  EXPECT_EQ(Get(status).status, 200) << "an administrator sees every job";
  auto other = Session("quality");
  EXPECT_EQ(Get(status, other).status, 404);
  // A coordinator works case by case: no export.
  auto coordinator = Session("coordinator", "--sites Organization/x");
  coordinator.insert(kAsync.begin(), kAsync.end());
  EXPECT_EQ(Get("/$export", coordinator).status, 403);
}

// Peak resident memory of the server (kB), from /proc.
long PeakKb() {
  std::ifstream in("/proc/" + std::to_string(SuiteServer::Server().pid()) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

TEST(Export, ALargeExportIsWrittenAndServedInFilesNotInMemory) {
  const std::string patient = NewPatient("Large-" + Unique());
  const std::string text(4000, 'x');
  const int bundles = 30, per_bundle = 400;
  for (int b = 0; b < bundles; ++b) {
    std::string body = R"({"resourceType":"Bundle","type":"batch","entry":[)";
    for (int i = 0; i < per_bundle; ++i) {
      body += std::string(i ? "," : "") + R"({"resource":{"resourceType":"Observation","status":"final","code":{"text":"note"},"subject":{"reference":"Patient/)" +
              patient + R"("},"valueString":")" + text + R"("},"request":{"method":"POST","url":"Observation"}})";
    }
    Response r = Post("/", body + "]}");
    ASSERT_EQ(r.status, 200) << r.body.substr(0, 300);
  }
  std::this_thread::sleep_for(std::chrono::seconds(6));
  const long before = PeakKb();
  ASSERT_GT(before, 0);
  auto m = Export("/$export?_type=Observation");
  auto d = Download(m);
  const long after = PeakKb();
  EXPECT_EQ(d.lines["Observation"], Count("Observation"));
  EXPECT_GE(d.lines["Observation"], bundles * per_bundle);
  EXPECT_GT(d.bytes, 48u << 20) << "some 50 MB exported";
  EXPECT_GE(d.files, 10) << "in files of a few MiB";
  // Buffered, the export alone would add its 50 MB; in files, the peak grows by a few of them.
  EXPECT_LT(after - before, 24 * 1024) << "peak memory grew by " << (after - before) << " kB for " << (d.bytes >> 10)
                                       << " kB exported";
  std::printf("[ export ] %d Observations, %zu bytes in %d files; server peak memory %ld kB -> %ld kB\n",
              d.lines["Observation"], d.bytes, d.files, before, after);
}

}  // namespace
}  // namespace fls::test
