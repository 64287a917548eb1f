#pragma once
// Test support for black-box API tests: a minimal blocking HTTP/1.1 client over raw sockets (so
// that tests can send what real clients would never send: invalid UTF-8, lying Content-Length,
// truncated bodies) and a fixture that runs the real server binary against the real PostgreSQL
// that ./deploy/fls test started (FLS_SERVER_BIN, FLS_TEST_DATABASE_URL).

#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <memory>

namespace fls::test {

struct Response {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names; several Set-Cookie: one per line
  std::string body;
  rapidjson::Document Json() const;
  std::string Header(const std::string& lower) const;
};

// Sends one request on a new connection; `raw_target` goes on the request line as is.
Response Http(int port, const std::string& method, const std::string& raw_target,
              const std::string& body = "", std::map<std::string, std::string> headers = {});

// The bearer token Http sends to the server on `port` ("" before it is ready); its header line
// ("Authorization: Bearer ...\r\n") for raw requests.
std::string TokenOf(int port);
void SetToken(int port, const std::string& token);
std::string AuthHeaderLine(int port);
// How many requests Http sent to `port` that reach a route (each must leave an AuditEvent).
long long AuditedRequests(int port);

// Sends raw bytes and reads one response (for requests no client library would build).
Response RawHttp(int port, const std::string& bytes);

// A connected socket for tests that stream by hand; -1 on failure.
int ConnectForStreaming(int port);

std::string Env(const char* name);  // "" when unset
int FreePort();

// The server under test, as a child process. The database it uses is shared by the suite.
// A database of its own for a test binary: created from FLS_TEST_DATABASE_URL's server on
// construction, dropped on destruction, so that runs are independent of each other.
class ScratchDatabase {
 public:
  ScratchDatabase();
  ~ScratchDatabase();
  const std::string& url() const { return url_; }

 private:
  std::string admin_url_, name_, url_;
};

// The database URL the suite uses (a ScratchDatabase's once one exists).
std::string& TestDatabaseUrl();

class ServerProcess {
 public:
  explicit ServerProcess(std::map<std::string, std::string> extra_env = {});
  ~ServerProcess();
  int port() const { return port_; }
  int pid() const { return pid_; }
  // Sends SIGTERM and waits; returns the exit status (or -1 when it had to be killed).
  int Stop();
  // Waits for /readyz, then takes the server's administrator token (FLS_DEV_TOKEN_FILE) for Http.
  bool WaitReady(int timeout_ms);
  std::string LogTail() const;
  const std::string& auth_dir() const { return auth_dir_; }

 private:
  std::string auth_dir_, token_file_;
  int port_ = 0;
  int pid_ = -1;
  std::string log_path_;
};

// The usual set-up of a black-box suite: a scratch database and one server on it for the whole
// binary (register with ::testing::AddGlobalTestEnvironment). Server() is valid in tests.
class SuiteServer : public ::testing::Environment {
 public:
  explicit SuiteServer(std::map<std::string, std::string> server_env = {}) : env_(std::move(server_env)) {}
  void SetUp() override;
  void TearDown() override;
  static ServerProcess& Server();

 private:
  std::map<std::string, std::string> env_;
  std::unique_ptr<ScratchDatabase> db_;
  std::unique_ptr<ServerProcess> server_;
};

// Runs SQL through psql against FLS_TEST_DATABASE_URL and returns the output (-At).
std::string Sql(const std::string& query);

std::string ReadFile(const std::string& path);
std::string SharedDir();

}  // namespace fls::test
