// Operations: the database going away and coming back, and graceful shutdown. These stop and
// start the test PostgreSQL (FLS_TEST_PG_STOP / FLS_TEST_PG_START from ./deploy/fls test), so
// ctest runs them alone (RESOURCE_LOCK database).
#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <thread>

#include "tests/api/test_client.h"

namespace fls::test {
namespace {

bool PgCtl(const char* var) {
  std::string cmd = Env(var);
  if (cmd.empty()) return false;
  std::string full = "bash -c '" + cmd + "' >/dev/null 2>&1";
  return std::system(full.c_str()) == 0;
}

std::string Patient(const std::string& family) {
  return R"({"resourceType":"Patient","name":[{"family":")" + family + R"("}]})";
}

class ScratchEnv : public ::testing::Environment {
 public:
  void SetUp() override { db_ = std::make_unique<ScratchDatabase>(); }
  void TearDown() override { db_.reset(); }

 private:
  std::unique_ptr<ScratchDatabase> db_;
};
const auto* const kEnv = ::testing::AddGlobalTestEnvironment(new ScratchEnv);

TEST(Database, UnreachableGives503WithRetryAfterAndTheServerRecoversByItself) {
  ASSERT_FALSE(Env("FLS_TEST_PG_STOP").empty()) << "FLS_TEST_PG_STOP is required (./deploy/fls test sets it)";
  ServerProcess server;
  ASSERT_TRUE(server.WaitReady(30000)) << server.LogTail();
  Response created = Http(server.port(), "POST", "/Patient", Patient("Before"));
  ASSERT_EQ(created.status, 201);

  ASSERT_TRUE(PgCtl("FLS_TEST_PG_STOP"));
  Response down = Http(server.port(), "POST", "/Patient", Patient("During"));
  EXPECT_EQ(down.status, 503) << down.body;
  EXPECT_FALSE(down.Header("retry-after").empty());
  EXPECT_NE(down.body.find("OperationOutcome"), std::string::npos);
  EXPECT_EQ(Http(server.port(), "GET", "/Patient?family=before").status, 503);
  // /readyz reads the database monitor, which pings every 500 ms: it turns within a few seconds.
  int readyz = 0;
  for (int i = 0; i < 50 && readyz != 503; ++i) {
    readyz = Http(server.port(), "GET", "/readyz").status;
    if (readyz != 503) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(readyz, 503);
  EXPECT_EQ(Http(server.port(), "GET", "/healthz").status, 200) << "the process itself is fine";

  ASSERT_TRUE(PgCtl("FLS_TEST_PG_START"));
  // No restart of the server: the next requests work again.
  bool ready = server.WaitReady(20000);
  EXPECT_TRUE(ready) << server.LogTail();
  EXPECT_EQ(Http(server.port(), "POST", "/Patient", Patient("After")).status, 201);
  Response search = Http(server.port(), "GET", "/Patient?family=before");
  EXPECT_EQ(search.status, 200);
}

TEST(Database, ServerStartedBeforeTheDatabaseBecomesReady) {
  ASSERT_TRUE(PgCtl("FLS_TEST_PG_STOP"));
  ServerProcess server;
  bool early = server.WaitReady(1500);
  EXPECT_FALSE(early);
  EXPECT_EQ(Http(server.port(), "GET", "/Patient").status, 503);
  ASSERT_TRUE(PgCtl("FLS_TEST_PG_START"));
  EXPECT_TRUE(server.WaitReady(30000)) << server.LogTail();
  EXPECT_EQ(Http(server.port(), "GET", "/Patient?_count=1").status, 200);
}

TEST(Shutdown, SigtermFinishesInFlightRequests) {
  ServerProcess server;
  ASSERT_TRUE(server.WaitReady(30000)) << server.LogTail();
  // A large transaction (the biggest Synthea bundle) in flight when SIGTERM arrives.
  std::string body = ReadFile(SharedDir() +
                              "/testdata/synthea-r4-transaction/Clorinda_Wilkinson_3a77c3ad-6d14-4ec5-ac60-05a01355bb27.json");
  ASSERT_FALSE(body.empty());
  Response in_flight;
  std::thread client([&] { in_flight = Http(server.port(), "POST", "/", body); });
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  int exit_code = server.Stop();
  client.join();
  EXPECT_EQ(exit_code, 0) << server.LogTail();
  EXPECT_EQ(in_flight.status, 200) << in_flight.body.substr(0, 500);
  EXPECT_NE(server.LogTail().find("\"stopped\""), std::string::npos);
}

// An upgrade that changes a type's search parameters (here: rows built before Task `due` existed,
// with `period` still covering restriction.period) rebuilds that type's rows at start-up, before
// the first request is served, and only once.
TEST(SearchIndex, RowsBuiltByAnOlderDefinitionAreRebuiltAtStartUp) {
  std::string task;
  {
    ServerProcess server;
    ASSERT_TRUE(server.WaitReady(30000)) << server.LogTail();
    Response r = Http(server.port(), "POST", "/Task",
                      R"({"resourceType":"Task","status":"requested","intent":"order",)"
                      R"("code":{"text":"reindex-check"},"restriction":{"period":{"end":"2031-01-15"}}})");
    ASSERT_EQ(r.status, 201) << r.body;
    task = r.Json()["id"].GetString();
    EXPECT_NE(Http(server.port(), "GET", "/Task?due=2031-01-15").body.find(task), std::string::npos);
    EXPECT_EQ(server.Stop(), 0);
  }
  // What an older server left: no `due` rows, a `period` row from restriction.period, and the
  // older fingerprint.
  Sql("DELETE FROM idx_date WHERE res_type = 'Task' AND res_id = '" + task + "' AND param = 'due'");
  Sql("INSERT INTO idx_date (res_type, res_id, param, lo, hi) VALUES ('Task', '" + task +
      "', 'period', '-infinity', '2031-01-16T00:00:00Z')");
  Sql("UPDATE search_index_state SET fingerprint = 'older' WHERE res_type = 'Task'");
  std::string patient_fp = Sql("SELECT fingerprint FROM search_index_state WHERE res_type = 'Patient'");
  {
    ServerProcess server;
    ASSERT_TRUE(server.WaitReady(30000)) << server.LogTail();
    Response due = Http(server.port(), "GET", "/Task?due=2031-01-15");
    EXPECT_NE(due.body.find(task), std::string::npos) << due.body.substr(0, 400);
    Response period = Http(server.port(), "GET", "/Task?period=le2031-01-15&_id=" + task);
    EXPECT_EQ(period.Json()["total"].GetInt(), 0) << period.body.substr(0, 400);
    EXPECT_NE(server.LogTail().find("search index brought up to the registry"), std::string::npos);
    EXPECT_EQ(server.Stop(), 0);
  }
  EXPECT_NE(Sql("SELECT fingerprint FROM search_index_state WHERE res_type = 'Task'"), "older\n");
  EXPECT_EQ(Sql("SELECT fingerprint FROM search_index_state WHERE res_type = 'Patient'"), patient_fp);
  {
    // Nothing changed since: a third start rebuilds nothing.
    ServerProcess server;
    ASSERT_TRUE(server.WaitReady(30000)) << server.LogTail();
    EXPECT_EQ(server.LogTail().find("search index brought up to the registry"), std::string::npos);
    EXPECT_EQ(server.Stop(), 0);
  }
}

}  // namespace
}  // namespace fls::test
