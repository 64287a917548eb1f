#include "tests/api/test_client.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace fls::test {

rapidjson::Document Response::Json() const {
  rapidjson::Document d;
  d.Parse(body.c_str(), body.size());
  return d;
}

std::string Response::Header(const std::string& lower) const {
  auto it = headers.find(lower);
  return it == headers.end() ? "" : it->second;
}

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  int port = ntohs(addr.sin_port);
  close(fd);
  return port;
}

namespace {

int ConnectImpl(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  timeval tv{120, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

Response ReadResponse(int fd) {
  std::string data;
  std::array<char, 65536> buf;
  Response r;
  size_t header_end = std::string::npos;
  long long content_length = -1;
  bool chunked = false;
  for (;;) {
    if (header_end == std::string::npos) {
      header_end = data.find("\r\n\r\n");
      if (header_end != std::string::npos) {
        std::istringstream hs(data.substr(0, header_end));
        std::string line;
        std::getline(hs, line);
        if (line.size() > 12) r.status = std::stoi(line.substr(9, 3));
        while (std::getline(hs, line)) {
          if (!line.empty() && line.back() == '\r') line.pop_back();
          auto colon = line.find(':');
          if (colon == std::string::npos) continue;
          std::string k = line.substr(0, colon);
          for (auto& c : k) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
          std::string v = line.substr(colon + 1);
          while (!v.empty() && v[0] == ' ') v.erase(0, 1);
          // Several Set-Cookie headers cannot be joined with commas: one per line.
          if (k == "set-cookie" && r.headers.count(k)) r.headers[k] += "\n" + v;
          else r.headers[k] = v;
        }
        if (r.headers.count("content-length")) content_length = std::stoll(r.headers["content-length"]);
        chunked = r.headers["transfer-encoding"].find("chunked") != std::string::npos;
      }
    }
    if (header_end != std::string::npos) {
      size_t have = data.size() - header_end - 4;
      if (content_length >= 0 && have >= static_cast<size_t>(content_length)) break;
      if (content_length < 0 && !chunked && (r.status == 204 || r.status == 304)) break;
      if (chunked && data.find("\r\n0\r\n\r\n", header_end) != std::string::npos) break;
    }
    ssize_t n = recv(fd, buf.data(), buf.size(), 0);
    if (n <= 0) break;
    data.append(buf.data(), static_cast<size_t>(n));
  }
  if (header_end == std::string::npos) return r;
  std::string body = data.substr(header_end + 4);
  if (chunked) {
    std::string out;
    size_t pos = 0;
    while (pos < body.size()) {
      size_t eol = body.find("\r\n", pos);
      if (eol == std::string::npos) break;
      size_t len = std::stoul(body.substr(pos, eol - pos), nullptr, 16);
      if (len == 0) break;
      out += body.substr(eol + 2, len);
      pos = eol + 2 + len + 2;
    }
    body = out;
  } else if (content_length >= 0) {
    body = body.substr(0, static_cast<size_t>(content_length));
  }
  r.body = body;
  return r;
}

}  // namespace

int ConnectForStreaming(int port) { return ConnectImpl(port); }

std::string& TestDatabaseUrl() {
  static std::string url = Env("FLS_TEST_DATABASE_URL");
  return url;
}

namespace {
int RunPsql(const std::string& url, const std::string& sql) {
  std::string cmd = "psql -X -q -v ON_ERROR_STOP=1 '" + url + "' -c \"" + sql + "\" >/dev/null 2>&1";
  return std::system(cmd.c_str());
}
}  // namespace

ScratchDatabase::ScratchDatabase() {
  std::string base = Env("FLS_TEST_DATABASE_URL");
  if (base.empty()) throw std::runtime_error("FLS_TEST_DATABASE_URL must be set (./deploy/fls test does)");
  auto slash = base.rfind('/');
  admin_url_ = base.substr(0, slash) + "/postgres";
  name_ = "fls_scratch_" + std::to_string(getpid());
  RunPsql(admin_url_, "DROP DATABASE IF EXISTS " + name_);
  if (RunPsql(admin_url_, "CREATE DATABASE " + name_) != 0) {
    throw std::runtime_error("cannot create the scratch database " + name_);
  }
  url_ = base.substr(0, slash) + "/" + name_;
  TestDatabaseUrl() = url_;
}

ScratchDatabase::~ScratchDatabase() {
  RunPsql(admin_url_, "DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
}

Response RawHttp(int port, const std::string& bytes) {
  int fd = ConnectImpl(port);
  if (fd < 0) return {};
  size_t sent = 0;
  while (sent < bytes.size()) {
    ssize_t n = send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  Response r = ReadResponse(fd);
  close(fd);
  return r;
}

namespace {
std::mutex g_tokens_mu;
std::map<int, std::string> g_tokens;  // port -> the local administrator's token of that server
std::map<int, long long> g_audited_requests;  // port -> requests sent through Http that reach a route
}  // namespace

void SetToken(int port, const std::string& token) {
  std::lock_guard lock(g_tokens_mu);
  g_tokens[port] = token;
}

std::string TokenOf(int port) {
  std::lock_guard lock(g_tokens_mu);
  auto it = g_tokens.find(port);
  return it == g_tokens.end() ? "" : it->second;
}

std::string AuthHeaderLine(int port) {
  std::string t = TokenOf(port);
  return t.empty() ? "" : "Authorization: Bearer " + t + "\r\n";
}

Response Http(int port, const std::string& method, const std::string& target, const std::string& body,
              std::map<std::string, std::string> headers) {
  // The server's administrator token unless the test says otherwise: an "Authorization" header
  // of its own, or an empty one for none at all.
  if (auto it = headers.find("Authorization"); it == headers.end()) {
    if (std::string t = TokenOf(port); !t.empty()) headers["Authorization"] = "Bearer " + t;
  } else if (it->second.empty()) {
    headers.erase(it);
  }
  const bool audited_route = target.rfind("/metadata", 0) != 0 && target.rfind("/healthz", 0) != 0 &&
                             target.rfind("/readyz", 0) != 0 && target.rfind("/.well-known", 0) != 0 && method != "OPTIONS";
  std::string req = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
                    "\r\nConnection: close\r\n";
  if (!body.empty() && !headers.count("Content-Type")) headers["Content-Type"] = "application/fhir+json";
  if (!headers.count("Content-Length")) headers["Content-Length"] = std::to_string(body.size());
  for (const auto& [k, v] : headers) req += k + ": " + v + "\r\n";
  req += "\r\n" + body;
  Response r = RawHttp(port, req);
  // Refusals of the listener itself (size and time limits, draining) come before any route.
  if (audited_route && r.status != 0 && r.status != 408 && r.status != 413 && r.status != 414 && r.status != 431 &&
      r.status != 503) {
    std::lock_guard lock(g_tokens_mu);
    ++g_audited_requests[port];
  }
  return r;
}

long long AuditedRequests(int port) {
  std::lock_guard lock(g_tokens_mu);
  return g_audited_requests[port];
}

ServerProcess::ServerProcess(std::map<std::string, std::string> extra_env) {
  std::string bin = Env("FLS_SERVER_BIN");
  std::string db = TestDatabaseUrl();
  if (bin.empty() || db.empty()) {
    throw std::runtime_error("FLS_SERVER_BIN and FLS_TEST_DATABASE_URL must be set (./deploy/fls test does)");
  }
  port_ = FreePort();
  char tmpl[] = "/tmp/fls-api-server-XXXXXX";
  int fd = mkstemp(tmpl);
  close(fd);
  log_path_ = tmpl;
  extra_env.try_emplace("FLS_DATABASE_URL", db);
  extra_env["FLS_PORT"] = std::to_string(port_);
  extra_env.try_emplace("FLS_LISTEN", "127.0.0.1");
  extra_env.try_emplace("FLS_THREADS", "8");
  if (!extra_env.count("FLS_AUTH_DIR")) {
    char dir[] = "/tmp/fls-api-auth-XXXXXX";
    if (!mkdtemp(dir)) throw std::runtime_error("mkdtemp failed");
    auth_dir_ = dir;
    extra_env["FLS_AUTH_DIR"] = auth_dir_;
  } else {
    auth_dir_ = extra_env["FLS_AUTH_DIR"];
  }
  extra_env.try_emplace("FLS_DEV_TOKEN_FILE", auth_dir_ + "/dev-token");
  token_file_ = extra_env["FLS_DEV_TOKEN_FILE"];
  pid_ = fork();
  if (pid_ == 0) {
    int log = open(log_path_.c_str(), O_WRONLY | O_TRUNC);
    dup2(log, 1);
    dup2(log, 2);
    for (const auto& [k, v] : extra_env) setenv(k.c_str(), v.c_str(), 1);
    execl(bin.c_str(), bin.c_str(), nullptr);
    _exit(127);
  }
}

bool ServerProcess::WaitReady(int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    Response r = Http(port_, "GET", "/readyz");
    if (r.status == 200) {
      std::string token = ReadFile(token_file_);
      while (!token.empty() && (token.back() == '\n' || token.back() == '\r')) token.pop_back();
      SetToken(port_, token);
      return true;
    }
    int st;
    if (waitpid(pid_, &st, WNOHANG) == pid_) {
      pid_ = -1;
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

int ServerProcess::Stop() {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  for (int i = 0; i < 600; ++i) {
    int st = 0;
    if (waitpid(pid_, &st, WNOHANG) == pid_) {
      pid_ = -1;
      return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
  return -1;
}

ServerProcess::~ServerProcess() {
  Stop();
  unlink(log_path_.c_str());
  if (auth_dir_.rfind("/tmp/fls-api-auth-", 0) == 0) {
    std::error_code ec;
    std::filesystem::remove_all(auth_dir_, ec);
  }
}

std::string ServerProcess::LogTail() const {
  std::string all = ReadFile(log_path_);
  return all.size() > 4000 ? all.substr(all.size() - 4000) : all;
}

namespace {
ServerProcess* g_suite_server = nullptr;
}  // namespace

void SuiteServer::SetUp() {
  db_ = std::make_unique<ScratchDatabase>();
  server_ = std::make_unique<ServerProcess>(env_);
  ASSERT_TRUE(server_->WaitReady(30000)) << server_->LogTail();
  g_suite_server = server_.get();
}

void SuiteServer::TearDown() {
  // Every request of the suite that reached a route left its AuditEvent (docs/security.md).
  if (server_) {
    long long sent = AuditedRequests(server_->port());
    long long recorded = std::stoll("0" + Sql("SELECT count(*) FROM resource WHERE res_type = 'AuditEvent'"));
    if (recorded < sent) {
      ADD_FAILURE() << "the suite sent " << sent << " requests that reach a route; only " << recorded
                    << " AuditEvents were recorded";
    }
    // The per-case facts the indicators read (migration 014), kept by triggers through every write
    // of the suite, equal a full recomputation from the cases' tables.
    const std::string drift = Sql("SELECT count(*) FROM ((TABLE fls_case_kpi EXCEPT TABLE fls_case_kpi_full)"
                                  " UNION ALL (TABLE fls_case_kpi_full EXCEPT TABLE fls_case_kpi)) d");
    if (!drift.empty() && drift != "0") {
      ADD_FAILURE() << drift << " per-case KPI rows differ from their recomputation (fls_case_kpi vs fls_case_kpi_full)";
    }
    // And the fractures the goals count (migration 015).
    const std::string fractures = Sql("SELECT count(*) FROM ((TABLE fls_fracture_kpi EXCEPT TABLE fls_fracture_kpi_full)"
                                      " UNION ALL (TABLE fls_fracture_kpi_full EXCEPT TABLE fls_fracture_kpi)) d");
    if (!fractures.empty() && fractures != "0") {
      ADD_FAILURE() << fractures << " fracture KPI rows differ from their recomputation (fls_fracture_kpi vs fls_fracture_kpi_full)";
    }
  }
  g_suite_server = nullptr;
  server_.reset();
  db_.reset();
}

ServerProcess& SuiteServer::Server() { return *g_suite_server; }

std::string Sql(const std::string& query) {
  std::string cmd = "psql -X -At -v ON_ERROR_STOP=1 '" + TestDatabaseUrl() + "' -c \"" + query + "\"";
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  pclose(p);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string SharedDir() {
  std::string d = Env("FLS_SHARED_DIR");
  return d.empty() ? std::string(FLS_SOURCE_DIR) + "/../shared" : d;
}

}  // namespace fls::test
