// Black-box tests of the HTTP transport contract (docs/http.md): the real server binary, raw bytes
// on raw sockets (so that nothing encodes, frames or retries for us), the PostgreSQL of
// ./deploy/fls test. Each test names the behaviour of the contract it checks; the servers with
// other settings (small limits, CORS) are started on first use and stopped with the suite.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "tests/api/test_client.h"

namespace fls::test {
namespace {

using namespace std::string_literals;
using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------- the suite's servers

// The default server (SuiteServer) plus, started on first use, one server per set of extra
// settings; those are stopped before the scratch database is dropped. This suite is about the
// listener, below access control: its servers run with authentication off (FLS_AUTH=off, which
// the server accepts on loopback only); tests/api/auth_api_test.cpp covers tokens.
class TransportEnv : public SuiteServer {
 public:
  TransportEnv() : SuiteServer(std::map<std::string, std::string>{{"FLS_AUTH", "off"}}) {}
  void TearDown() override {
    Others().clear();
    SuiteServer::TearDown();
  }
  static std::map<std::string, std::unique_ptr<ServerProcess>>& Others() {
    static std::map<std::string, std::unique_ptr<ServerProcess>> servers;
    return servers;
  }
};
const auto* const kEnv = ::testing::AddGlobalTestEnvironment(new TransportEnv);

ServerProcess& Default() { return SuiteServer::Server(); }

// Throws (the test then fails) when the server does not become ready.
ServerProcess& ServerWith(const std::map<std::string, std::string>& env) {
  std::string key;
  for (const auto& [k, v] : env) key += k + "=" + v + ";";
  auto& servers = TransportEnv::Others();
  auto it = servers.find(key);
  if (it != servers.end()) return *it->second;
  auto with_auth_off = env;
  with_auth_off.try_emplace("FLS_AUTH", "off");
  auto server = std::make_unique<ServerProcess>(with_auth_off);
  if (!server->WaitReady(30000)) {
    throw std::runtime_error("the server with " + key + " did not start:\n" + server->LogTail());
  }
  return *servers.emplace(key, std::move(server)).first->second;
}

// Small limits, so that each one can be crossed quickly.
ServerProcess& Limited() {
  return ServerWith({{"FLS_MAX_HEADER_BYTES", "8192"},
                     {"FLS_MAX_URL_BYTES", "2048"},
                     {"FLS_HEADER_TIMEOUT_MS", "1000"},
                     {"FLS_IDLE_TIMEOUT_MS", "1000"},
                     {"FLS_BODY_TIMEOUT_MS", "2000"},
                     {"FLS_WRITE_TIMEOUT_MS", "1000"},
                     {"FLS_MAX_BODY_BYTES", "65536"}});
}

const std::string kOrigin = "https://app.example.org";
ServerProcess& WithCors() { return ServerWith({{"FLS_CORS_ORIGINS", kOrigin}}); }

// ---------------------------------------------------------------- raw HTTP on a socket

// One response as it came: the status line, every header line (names lower-cased, duplicates
// kept, in order) and the body once de-chunked.
struct Reply {
  int status = 0;  // 0: no complete response arrived
  std::string status_line;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  // Every value of the header joined with ", "; "" when absent.
  std::string Header(const std::string& lower) const {
    std::string out;
    for (const auto& [k, v] : headers) {
      if (k == lower) out += (out.empty() ? "" : ", ") + v;
    }
    return out;
  }
  size_t Count(const std::string& lower) const {
    return static_cast<size_t>(std::count_if(headers.begin(), headers.end(),
                                             [&](const auto& h) { return h.first == lower; }));
  }
  rapidjson::Document Json() const {
    rapidjson::Document d;
    d.Parse(body.c_str(), body.size());
    return d;
  }
  // For failure messages.
  std::string Describe() const {
    if (status == 0) return "(no complete response)";
    std::string out = status_line + "\n";
    for (const auto& [k, v] : headers) out += k + ": " + v + "\n";
    return out + body.substr(0, 400);
  }
};

int MsLeft(Clock::time_point deadline) {
  auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

bool WaitFor(int timeout_ms, const std::function<bool()>& condition, int step_ms = 50) {
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    if (condition()) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(step_ms));
  }
}

std::string Lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

// A client connection that keeps what it received and did not consume yet, so that pipelined
// responses, interim 100s and the bytes after a HEAD can be read one at a time. Every wait is
// bounded by a poll timeout. Not thread-safe.
class Conn {
 public:
  explicit Conn(int port) : fd_(ConnectForStreaming(port)) {}
  ~Conn() { Close(); }
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  bool ok() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  bool closed() const { return eof_; }
  const std::string& pending() const { return in_; }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  // Sends every byte; with `read_meanwhile`, whatever the server answers in the meantime is
  // kept (a server that refuses early and closes is still heard). False when the server stopped
  // the sending (reset, closed) or the time ran out.
  bool Send(std::string_view bytes, int timeout_ms = 10000, bool read_meanwhile = true) {
    if (fd_ < 0) return false;
    auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    size_t sent = 0;
    while (sent < bytes.size()) {
      pollfd p{fd_, static_cast<short>(POLLOUT | (read_meanwhile && !eof_ ? POLLIN : 0)), 0};
      int left = MsLeft(deadline);
      if (left == 0) return false;
      if (poll(&p, 1, left) <= 0) continue;
      if ((p.revents & (POLLIN | POLLHUP | POLLERR)) && read_meanwhile && !eof_) ReadOnce();
      if (p.revents & (POLLOUT | POLLERR | POLLHUP)) {
        ssize_t n =
            send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
          sent += static_cast<size_t>(n);
        } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
          return false;
        }
      }
    }
    return true;
  }

  // The next response (an interim 1xx counts as one). `head`: the response to a HEAD (headers
  // only). status 0 when none was complete before the timeout or the end of the connection.
  Reply Read(int timeout_ms = 10000, bool head = false) {
    auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      if (auto r = TryParse(head)) return *r;
      if (eof_ || !Wait(deadline)) return {};
    }
  }

  // True when the server ends the connection (EOF or reset) within the time; what arrived and
  // was not consumed goes to `extra`.
  bool ClosedWithin(int timeout_ms, std::string* extra = nullptr) {
    auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    while (!eof_ && Wait(deadline)) {
    }
    if (extra) *extra = in_;
    return eof_;
  }

  // The first `n` bytes not consumed yet, once they are there (fewer on timeout or close).
  std::string Peek(size_t n, int timeout_ms) {
    auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    while (in_.size() < n && !eof_ && Wait(deadline)) {
    }
    return in_.substr(0, n);
  }

 private:
  // Reads what is there; sets eof_ on EOF or reset (data queued before a reset is still read).
  void ReadOnce() {
    char buf[65536];
    ssize_t n = recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) {
      in_.append(buf, static_cast<size_t>(n));
    } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
      eof_ = true;
    }
  }
  // Waits for bytes or the end of the connection; false on timeout.
  bool Wait(Clock::time_point deadline) {
    if (fd_ < 0) {
      eof_ = true;
      return true;
    }
    for (;;) {
      int left = MsLeft(deadline);
      pollfd p{fd_, POLLIN, 0};
      int rc = poll(&p, 1, left);
      if (rc > 0) {
        ReadOnce();
        return true;
      }
      if (rc == 0 || left == 0) return false;
      if (errno != EINTR) return false;
    }
  }

  std::optional<Reply> TryParse(bool head) {
    size_t header_end = in_.find("\r\n\r\n");
    if (header_end == std::string::npos) return std::nullopt;
    Reply r;
    std::istringstream lines(in_.substr(0, header_end));
    std::string line;
    std::getline(lines, line);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    r.status_line = line;
    if (line.rfind("HTTP/1.", 0) == 0 && line.size() >= 12)
      r.status = std::atoi(line.substr(9, 3).c_str());
    if (r.status == 0) r.status = -1;  // something arrived, but not an HTTP response
    while (std::getline(lines, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      auto colon = line.find(':');
      if (colon == std::string::npos) continue;
      r.headers.emplace_back(Lower(line.substr(0, colon)), Trim(line.substr(colon + 1)));
    }
    size_t pos = header_end + 4;
    bool no_body =
        head || (r.status >= 100 && r.status < 200) || r.status == 204 || r.status == 304;
    if (no_body) {
      in_.erase(0, pos);
      return r;
    }
    if (Lower(r.Header("transfer-encoding")).find("chunked") != std::string::npos) {
      std::string body;
      for (;;) {
        size_t eol = in_.find("\r\n", pos);
        if (eol == std::string::npos) return std::nullopt;
        size_t size = std::strtoul(in_.substr(pos, eol - pos).c_str(), nullptr, 16);
        pos = eol + 2;
        if (size == 0) {
          if (in_.compare(pos, 2, "\r\n") == 0) {
            pos += 2;
          } else {
            size_t end = in_.find("\r\n\r\n", pos);
            if (end == std::string::npos) return std::nullopt;
            pos = end + 4;
          }
          break;
        }
        if (in_.size() < pos + size + 2) return std::nullopt;
        body += in_.substr(pos, size);
        pos += size + 2;
      }
      r.body = std::move(body);
      in_.erase(0, pos);
      return r;
    }
    std::string cl = r.Header("content-length");
    if (!cl.empty()) {
      size_t n = std::strtoull(cl.c_str(), nullptr, 10);
      if (in_.size() < pos + n) return std::nullopt;
      r.body = in_.substr(pos, n);
      in_.erase(0, pos + n);
      return r;
    }
    if (!eof_) return std::nullopt;  // delimited by the end of the connection
    r.body = in_.substr(pos);
    in_.clear();
    return r;
  }

  int fd_;
  std::string in_;  // received, not consumed yet
  bool eof_ = false;
};

// A request as raw bytes: the request line, Host, `headers` (each "Name: value\r\n"), and for
// a non-empty body its Content-Type and Content-Length.
std::string Req(const std::string& method, const std::string& target,
                const std::string& headers = "", const std::string& body = "") {
  std::string r = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers;
  if (!body.empty()) {
    r += "Content-Type: application/fhir+json\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n";
  }
  return r + "\r\n" + body;
}

// `raw` on a new connection; its first response.
Reply Exchange(int port, const std::string& raw, int timeout_ms = 10000) {
  Conn c(port);
  if (!c.ok()) return {};
  c.Send(raw, timeout_ms);
  return c.Read(timeout_ms);
}

// ---------------------------------------------------------------- FHIR helpers

std::string Letters(size_t n) {
  static std::mt19937_64 rng{std::random_device{}()};
  std::string s;
  for (size_t i = 0; i < n; ++i) s += static_cast<char>('a' + rng() % 26);
  return s;
}

const std::string kSystem = "urn:oid:1.2.250.1.213.1.4.8";

// `value_json` is already escaped for a JSON string.
std::string PatientJson(const std::string& family, const std::string& given,
                        const std::string& value_json) {
  return R"({"resourceType":"Patient","identifier":[{"system":")" + kSystem + R"(","value":")" +
         value_json + R"("}],"name":[{"family":")" + family + R"(","given":[")" + given +
         R"("]}],"gender":"female","birthDate":"1950-03-04"})";
}

std::string IdOf(const Reply& r) {
  auto d = r.Json();
  return d.IsObject() && d.HasMember("id") && d["id"].IsString() ? d["id"].GetString() : "";
}

// The id of the created Patient, "" when the create failed.
std::string CreatePatient(int port, const std::string& json) {
  Reply r = Exchange(port, Req("POST", "/Patient", "", json));
  return r.status == 201 ? IdOf(r) : "";
}

std::vector<std::string> EntryIds(const Reply& r) {
  std::vector<std::string> ids;
  auto d = r.Json();
  if (!d.IsObject() || !d.HasMember("entry")) return ids;
  for (auto& e : d["entry"].GetArray()) {
    if (e.HasMember("resource") && e["resource"].HasMember("id"))
      ids.push_back(e["resource"]["id"].GetString());
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

std::string ResourceType(const rapidjson::Document& d) {
  return d.IsObject() && d.HasMember("resourceType") && d["resourceType"].IsString()
             ? d["resourceType"].GetString()
             : "";
}

// Whether a comma-separated header value lists `token` (case-insensitive).
bool Lists(const std::string& value, const std::string& token) {
  std::stringstream ss(value);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (Lower(Trim(item)) == Lower(token)) return true;
  }
  return false;
}

bool IsUuid(const std::string& s) {
  static const std::regex kUuid(
      "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$");
  return std::regex_match(s, kUuid);
}

// The server logs one JSON line for each refusal, naming its request id.
::testing::AssertionResult LoggedWith(const ServerProcess& server, const std::string& id) {
  std::string tail;
  bool found = WaitFor(3000, [&] {
    tail = server.LogTail();
    std::istringstream lines(tail);
    std::string line;
    while (std::getline(lines, line)) {
      if (line.find(id) == std::string::npos) continue;
      rapidjson::Document d;
      d.Parse(line.c_str(), line.size());
      if (!d.HasParseError() && d.IsObject()) return true;
    }
    return false;
  });
  if (found) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "no JSON log line names request id " << id << "; log tail:\n"
         << tail.substr(tail.size() > 1500 ? tail.size() - 1500 : 0);
}

// The shape of every refusal (docs/http.md): `status`, an OperationOutcome with issues as
// application/fhir+json, an X-Request-Id and a JSON log line naming it. Returns the id.
std::string ExpectRefusal(const Reply& r, int status, const ServerProcess& server,
                          const std::string& what) {
  EXPECT_EQ(r.status, status) << what << "\n" << r.Describe();
  if (r.status <= 0) return "";
  EXPECT_EQ(r.Header("content-type").rfind("application/fhir+json", 0), 0u)
      << what << ": Content-Type " << r.Header("content-type");
  auto d = r.Json();
  EXPECT_EQ(ResourceType(d), "OperationOutcome") << what << ": " << r.body.substr(0, 300);
  if (ResourceType(d) == "OperationOutcome") {
    EXPECT_TRUE(d.HasMember("issue") && d["issue"].IsArray() && d["issue"].Size() > 0) << what;
  }
  std::string id = r.Header("x-request-id");
  EXPECT_EQ(r.Count("x-request-id"), 1u) << what;
  if (!id.empty()) {
    EXPECT_TRUE(LoggedWith(server, id)) << what;
  }
  return id;
}

std::string Gzip(const std::string& in) {
  z_stream zs{};
  deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&zs, in.size()) + 32, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

// nullopt when `in` is not one complete gzip stream.
std::optional<std::string> Gunzip(const std::string& in) {
  z_stream zs{};
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) return std::nullopt;
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  std::string out;
  char buf[65536];
  int rc;
  do {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof buf;
    rc = inflate(&zs, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) {
      inflateEnd(&zs);
      return std::nullopt;
    }
    out.append(buf, sizeof buf - zs.avail_out);
  } while (rc != Z_STREAM_END);
  inflateEnd(&zs);
  return out;
}

// ---------------------------------------------------------------- processes, load, the database

long RssKb(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  }
  return -1;
}

bool IsZombie(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto paren = stat.rfind(") ");
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'Z';
}

// Samples a process's resident memory every 10 ms on a thread of its own until destroyed.
class RssSampler {
 public:
  explicit RssSampler(int pid) : pid_(pid), before_kb_(RssKb(pid)) {
    thread_ = std::thread([this] {
      while (!stop_) {
        max_kb_ = std::max(max_kb_.load(), RssKb(pid_));
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    });
  }
  ~RssSampler() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  long before_kb() const { return before_kb_; }
  long max_kb() const { return max_kb_; }

 private:
  int pid_;
  long before_kb_;
  std::atomic<long> max_kb_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// Slowloris: `n` connections that each trickle three bytes of a never-ending header every
// 200 ms; a connection the server answers or closes is replaced, as an attacker would.
class Slowloris {
 public:
  Slowloris(int port, int n) : port_(port), n_(n) {
    thread_ = std::thread([this] { Run(); });
  }
  ~Slowloris() {
    stop_ = true;
    thread_.join();
  }
  int connected() const { return connected_; }
  int rounds() const { return rounds_; }
  int replaced() const { return replaced_; }

 private:
  void Run() {
    const std::string head = "GET /Patient HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
    struct Peer {
      int fd = -1;
      size_t sent = 0;
    };
    std::vector<Peer> peers(static_cast<size_t>(n_));
    while (!stop_) {
      int up = 0;
      for (auto& p : peers) {
        if (p.fd < 0) {
          p.fd = ConnectForStreaming(port_);
          p.sent = 0;
          if (p.fd < 0) continue;
        }
        pollfd pf{p.fd, POLLIN, 0};
        if (poll(&pf, 1, 0) > 0) {  // answered (408) or closed
          ::close(p.fd);
          p.fd = -1;
          ++replaced_;
          continue;
        }
        std::string chunk = p.sent < head.size() ? head.substr(p.sent, 3) : "aaa";
        if (send(p.fd, chunk.data(), chunk.size(), MSG_NOSIGNAL | MSG_DONTWAIT) <= 0) {
          ::close(p.fd);
          p.fd = -1;
          ++replaced_;
          continue;
        }
        p.sent += chunk.size();
        ++up;
      }
      connected_ = up;
      ++rounds_;
      for (int i = 0; i < 20 && !stop_; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    for (auto& p : peers) {
      if (p.fd >= 0) ::close(p.fd);
    }
  }

  int port_, n_;
  std::atomic<bool> stop_{false};
  std::atomic<int> connected_{0}, rounds_{0}, replaced_{0};
  std::thread thread_;
};

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size())));
  return v[std::min(v.size() - 1, i == 0 ? 0 : i - 1)];
}

double MsSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

int SqlInt(const std::string& query) {
  std::string out = Sql(query);
  return out.empty() ? -1 : std::atoi(out.c_str());
}

// Sessions of the server waiting for a lock in the suite's database.
int ServerSessionsWaitingForALock() {
  return SqlInt(
      "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
      "AND application_name = 'fls-server' AND wait_event_type = 'Lock'");
}

// Holds ACCESS EXCLUSIVE on the resource table for `seconds` from a psql session of its own,
// so that every request that reads resources blocks until then. The constructor returns once
// the lock is granted (granted()); the destructor waits for psql to end.
class ResourceTableLock {
 public:
  explicit ResourceTableLock(int seconds) {
    std::string cmd =
        "psql -X -q -v ON_ERROR_STOP=1 '" + TestDatabaseUrl() +
        "' -c \"BEGIN; LOCK TABLE resource IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(" +
        std::to_string(seconds) + "); COMMIT;\" >/dev/null 2>&1";
    thread_ = std::thread([this, cmd] {
      rc_ = std::system(cmd.c_str());
      done_ = true;
    });
    granted_ =
        WaitFor(
            10000,
            [this] {
              return done_ ||
                     SqlInt(
                         "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                         "WHERE c.relname = 'resource' AND l.mode = 'AccessExclusiveLock' AND "
                         "l.granted "
                         "AND l.database = (SELECT oid FROM pg_database WHERE datname = "
                         "current_database())") == 1;
            }) &&
        !done_;
  }
  ~ResourceTableLock() { thread_.join(); }
  bool granted() const { return granted_; }
  bool released() const { return done_; }
  int exit_status() const { return rc_; }

 private:
  std::thread thread_;
  std::atomic<bool> done_{false};
  std::atomic<int> rc_{-1};
  bool granted_ = false;
};

// ================================================================ request targets

TEST(HttpTransport, RawPipeInATokenSearchFindsExactlyThatIdentifier) {
  int port = Default().port();
  std::string id = CreatePatient(port, PatientJson("Pipe", "Raw", "1234567890123"));
  ASSERT_FALSE(id.empty());
  ASSERT_FALSE(CreatePatient(port, PatientJson("Pipe", "Other", "1234567890124")).empty());

  Reply raw =
      Exchange(port,
               "GET /Patient?identifier=urn:oid:1.2.250.1.213.1.4.8|1234567890123 HTTP/1.1\r\n"
               "Host: 127.0.0.1\r\n\r\n");
  ASSERT_EQ(raw.status, 200) << raw.Describe();
  EXPECT_EQ(EntryIds(raw), std::vector<std::string>{id});
  Reply encoded = Exchange(
      port, Req("GET", "/Patient?identifier=urn%3Aoid%3A1.2.250.1.213.1.4.8%7C1234567890123"));
  EXPECT_EQ(EntryIds(encoded), EntryIds(raw)) << "the raw and the percent-encoded forms differ";
}

TEST(HttpTransport, RawCommaBracketsBracesCaretQuoteAnglesAndBacktickReachTheSearchAsIfEncoded) {
  int port = Default().port();
  std::string u = Letters(8);
  // The value holds [ ] { } ^ " < > ` (escaped for JSON); a second patient to find with a raw
  // comma.
  std::string value = "v[1]{2}^3\"4<5>6`7" + u;
  std::string json_value = "v[1]{2}^3\\\"4<5>6`7" + u;
  std::string id = CreatePatient(port, PatientJson("Special", "Chars", json_value));
  std::string other = CreatePatient(port, PatientJson("Special", "Comma", "w" + u));
  ASSERT_FALSE(id.empty());
  ASSERT_FALSE(other.empty());

  Reply raw = Exchange(port, Req("GET", "/Patient?identifier=" + kSystem + "|" + value));
  ASSERT_EQ(raw.status, 200) << raw.Describe();
  EXPECT_EQ(EntryIds(raw), std::vector<std::string>{id});
  Reply encoded = Exchange(port, Req("GET", "/Patient?identifier=" + kSystem +
                                                "%7Cv%5B1%5D%7B2%7D%5E3%224%3C5%3E6%607" + u));
  EXPECT_EQ(EntryIds(encoded), EntryIds(raw)) << "the raw and the percent-encoded forms differ";

  Reply comma = Exchange(
      port, Req("GET", "/Patient?identifier=" + kSystem + "|" + value + "," + kSystem + "|w" + u));
  ASSERT_EQ(comma.status, 200) << comma.Describe();
  std::vector<std::string> both{id, other};
  std::sort(both.begin(), both.end());
  EXPECT_EQ(EntryIds(comma), both) << "a raw comma is the search's OR";
}

TEST(HttpTransport, RawBackslashIsTheSearchEscapeAsIfEncoded) {
  int port = Default().port();
  std::string u = Letters(8);
  std::string id =
      CreatePatient(port, PatientJson("Back", "Slash", "back\\\\slash" + u));  // back\slash
  ASSERT_FALSE(id.empty());
  // `\\` in a search value is one literal backslash (FHIR search escaping).
  Reply raw = Exchange(port, Req("GET", "/Patient?identifier=" + kSystem + "|back\\\\slash" + u));
  ASSERT_EQ(raw.status, 200) << raw.Describe();
  EXPECT_EQ(EntryIds(raw), std::vector<std::string>{id});
  Reply encoded =
      Exchange(port, Req("GET", "/Patient?identifier=" + kSystem + "|back%5C%5Cslash" + u));
  EXPECT_EQ(EntryIds(encoded), EntryIds(raw));
}

TEST(HttpTransport, RawUtf8FamilyFindsTheAccentedPatient) {
  int port = Default().port();
  std::string given = "G" + Letters(10);
  std::string accented = CreatePatient(port, PatientJson("Hélène", given, "utf8-a-" + given));
  std::string plain = CreatePatient(port, PatientJson("Helene", given, "utf8-b-" + given));
  ASSERT_FALSE(accented.empty());
  ASSERT_FALSE(plain.empty());

  Reply raw = Exchange(port, Req("GET", "/Patient?family:exact=Hélène&given=" + given));
  ASSERT_EQ(raw.status, 200) << raw.Describe();
  EXPECT_EQ(EntryIds(raw), std::vector<std::string>{accented});
  Reply encoded =
      Exchange(port, Req("GET", "/Patient?family:exact=H%C3%A9l%C3%A8ne&given=" + given));
  EXPECT_EQ(EntryIds(encoded), EntryIds(raw));
}

TEST(HttpTransport, RawSpaceInTheTargetIsReadAsPercent20) {
  int port = Default().port();
  std::string given = "G" + Letters(10);
  std::string id = CreatePatient(port, PatientJson("Van Gogh", given, "space-" + given));
  ASSERT_FALSE(id.empty());

  Reply raw = Exchange(port, "GET /Patient?family:exact=Van Gogh&given=" + given +
                                 " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  ASSERT_EQ(raw.status, 200) << raw.Describe();
  EXPECT_EQ(EntryIds(raw), std::vector<std::string>{id});
  Reply encoded = Exchange(port, Req("GET", "/Patient?family:exact=Van%20Gogh&given=" + given));
  EXPECT_EQ(EntryIds(encoded), EntryIds(raw));
}

TEST(HttpTransport, ControlCharacterInTheRequestLineIs400) {
  ServerProcess& s = Default();
  const std::vector<std::pair<std::string, std::string>> lines = {
      {"SOH in the query",
       "GET /Patient?family=a\x01"
       "b HTTP/1.1"},
      {"DEL in the query", "GET /Patient?family=a\x7f HTTP/1.1"},
      {"TAB in the query", "GET /Patient?family=a\tb HTTP/1.1"},
      {"ESC in the path", "GET /Pat\x1bient HTTP/1.1"},
      {"NUL in the path", "GET /Pat"s + '\0' + "ient HTTP/1.1"},
  };
  for (const auto& [what, line] : lines) {
    Reply r = Exchange(s.port(), line + "\r\nHost: 127.0.0.1\r\nX-Request-Id: ctl-1\r\n\r\n");
    std::string id = ExpectRefusal(r, 400, s, what);
    // The request line is refused before the headers are read: the client's id or a new one.
    EXPECT_TRUE(id == "ctl-1" || IsUuid(id)) << what << ": X-Request-Id " << id;
  }
}

TEST(HttpTransport, PathThatIsNotUtf8OnceDecodedIs400) {
  ServerProcess& s = Default();
  for (const std::string& path :
       {"/Patient/%C3%28"s, "/Patient/%FF%FE"s, "/Patient/\xC3\x28"s, "/Patient/\xFF"s}) {
    Reply r = Exchange(s.port(), Req("GET", path, "X-Request-Id: utf8-path-1\r\n"));
    std::string id = ExpectRefusal(r, 400, s, path);
    EXPECT_TRUE(id == "utf8-path-1" || IsUuid(id)) << path << ": X-Request-Id " << id;
  }
}

// ================================================================ refusals and request ids

TEST(HttpTransport, RefusalEchoesASafeClientRequestIdAndLogsIt) {
  ServerProcess& s = Default();
  Reply r = Exchange(s.port(), Req("FOO", "/Patient", "X-Request-Id: abc-123\r\n"));
  EXPECT_EQ(ExpectRefusal(r, 405, s, "FOO"), "abc-123");
}

TEST(HttpTransport, UnsafeClientRequestIdIsReplacedByANewUuid) {
  ServerProcess& s = Default();
  for (const std::string& unsafe : {"a b\"<script>"s, std::string(200, 'x'), "semi;colon"s}) {
    Reply r = Exchange(s.port(), Req("FOO", "/Patient", "X-Request-Id: " + unsafe + "\r\n"));
    std::string id = ExpectRefusal(r, 405, s, "unsafe id " + unsafe.substr(0, 20));
    EXPECT_TRUE(IsUuid(id)) << "X-Request-Id " << id;
    EXPECT_EQ(s.LogTail().find(unsafe), std::string::npos) << "the unsafe id reached the log";
  }
}

TEST(HttpTransport, RefusalWithoutAClientRequestIdGetsANewUuid) {
  ServerProcess& s = Default();
  Reply r = Exchange(s.port(), Req("FOO", "/Patient"));
  EXPECT_TRUE(IsUuid(ExpectRefusal(r, 405, s, "FOO without id")));
}

// ================================================================ limits

TEST(HttpTransport, HeadersPastTheLimitAre431AndTheConnectionIsClosed) {
  ServerProcess& s = Limited();
  Reply fine =
      Exchange(s.port(), Req("GET", "/healthz", "X-Pad: " + std::string(6000, 'a') + "\r\n"));
  EXPECT_EQ(fine.status, 200) << "6,000 bytes of headers are under the 8,192 limit\n"
                              << fine.Describe();

  Conn c(s.port());
  ASSERT_TRUE(c.ok());
  c.Send(Req("GET", "/healthz",
             "X-Request-Id: big-header-1\r\nX-Big: " + std::string(9000, 'a') + "\r\n"));
  std::string id = ExpectRefusal(c.Read(), 431, s, "9,000-byte header");
  EXPECT_TRUE(id == "big-header-1" || IsUuid(id)) << id;
  EXPECT_TRUE(c.ClosedWithin(5000));
}

TEST(HttpTransport, MegabyteHeaderIs431AndTheServerStaysUp) {
  ServerProcess& s = Default();
  Conn c(s.port());
  ASSERT_TRUE(c.ok());
  c.Send(Req("GET", "/Patient",
             "X-Request-Id: mega-header-1\r\nX-Big: " + std::string(1 << 20, 'a') + "\r\n"));
  std::string id = ExpectRefusal(c.Read(), 431, s, "1 MB header");
  EXPECT_TRUE(id == "mega-header-1" || IsUuid(id)) << id;
  EXPECT_TRUE(c.ClosedWithin(5000));
  EXPECT_EQ(kill(s.pid(), 0), 0) << "the server died";
  EXPECT_EQ(Exchange(s.port(), Req("GET", "/healthz")).status, 200);
}

TEST(HttpTransport, TargetPastTheUrlLimitIs414AndTheConnectionIsClosed) {
  ServerProcess& s = Limited();
  const std::string prefix = "/Patient?family=";
  Reply at_limit = Exchange(s.port(), Req("GET", prefix + std::string(2048 - prefix.size(), 'a')));
  EXPECT_EQ(at_limit.status, 200) << "a 2,048-byte target is at the limit, not past it\n"
                                  << at_limit.Describe();

  Conn c(s.port());
  ASSERT_TRUE(c.ok());
  c.Send(
      Req("GET", prefix + std::string(2049 - prefix.size(), 'a'), "X-Request-Id: long-url-1\r\n"));
  std::string id = ExpectRefusal(c.Read(), 414, s, "2,049-byte target");
  EXPECT_TRUE(id == "long-url-1" || IsUuid(id)) << id;
  EXPECT_TRUE(c.ClosedWithin(5000));
}

TEST(HttpTransport, TargetPastTheDefaultUrlLimitIs414) {
  ServerProcess& s = Default();
  Reply r = Exchange(s.port(), Req("GET", "/Patient?family=" + std::string(17000, 'a'),
                                   "X-Request-Id: long-url-2\r\n"));
  std::string id = ExpectRefusal(r, 414, s, "17,000-byte target, default 16,384 limit");
  EXPECT_TRUE(id == "long-url-2" || IsUuid(id)) << id;
}

TEST(HttpTransport, ContentLengthPastTheBodyLimitIs413WithoutSendingTheBody) {
  ServerProcess& s = Limited();
  Conn c(s.port());
  ASSERT_TRUE(c.ok());
  // Only the headers: the answer must come without waiting for the body (else it would be 408).
  c.Send(
      "POST /Patient HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Request-Id: big-body-1\r\n"
      "Content-Type: application/fhir+json\r\nContent-Length: 100000\r\n\r\n");
  EXPECT_EQ(ExpectRefusal(c.Read(5000), 413, s, "Content-Length 100000, limit 65536"),
            "big-body-1");
  EXPECT_TRUE(c.ClosedWithin(5000));
}

TEST(HttpTransport, BodyAtTheLimitIsAccepted) {
  ServerProcess& s = Limited();
  std::string body = PatientJson("Limit", "Exact", "at-limit-" + Letters(8));
  body += std::string(65536 - body.size(), ' ');  // JSON whitespace up to exactly the limit
  Reply r = Exchange(s.port(), Req("POST", "/Patient", "", body));
  EXPECT_EQ(r.status, 201) << r.Describe();
}

TEST(HttpTransport, ChunkedBodyPastTheLimitIs413) {
  ServerProcess& s = Limited();
  Conn c(s.port());
  ASSERT_TRUE(c.ok());
  std::string req =
      "POST /Patient HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Request-Id: big-chunked-1\r\n"
      "Content-Type: application/fhir+json\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 7; ++i) req += "4000\r\n" + std::string(0x4000, ' ') + "\r\n";  // 112 KiB
  req += "0\r\n\r\n";
  c.Send(req);
  EXPECT_EQ(ExpectRefusal(c.Read(), 413, s, "112 KiB chunked, limit 64 KiB"), "big-chunked-1");
  EXPECT_TRUE(c.ClosedWithin(5000));
}

TEST(HttpTransport, HeadersNotFinishedInTimeAre408ThenClose) {
  ServerProcess& s = Limited();
  Conn c(s.port());
  ASSERT_TRUE(c.ok());
  c.Send("GET /Patient HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Request-Id: slow-header-1\r\n");
  std::string id =
      ExpectRefusal(c.Read(8000), 408, s, "headers never finished, 1 s header timeout");
  EXPECT_TRUE(id == "slow-header-1" || IsUuid(id)) << id;
  EXPECT_TRUE(c.ClosedWithin(5000));
}

TEST(HttpTransport, TricklingHeadersAre408AtTheHeaderDeadlineCountedFromTheFirstByte) {
  ServerProcess& s = Limited();
  Conn c(s.port());
  ASSERT_TRUE(c.ok());
  c.Send("GET /Patient HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Request-Id: trickle-1\r\nX-Slow: ");
  // One byte every 200 ms never leaves the connection idle; the 1 s header deadline still ends it.
  Reply r;
  for (int i = 0; i < 40 && r.status == 0 && !c.closed(); ++i) {
    c.Send("a", 1000);
    r = c.Read(200);
  }
  std::string id = ExpectRefusal(r, 408, s, "header trickled a byte every 200 ms");
  EXPECT_TRUE(id == "trickle-1" || IsUuid(id)) << id;
  EXPECT_TRUE(c.ClosedWithin(5000));
}

TEST(HttpTransport, BodyNotFinishedInTimeIs408ThenClose) {
  ServerProcess& s = Limited();
  Conn c(s.port());
  ASSERT_TRUE(c.ok());
  c.Send(
      "POST /Patient HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Request-Id: slow-body-1\r\n"
      "Content-Type: application/fhir+json\r\nContent-Length: 100\r\n\r\n{\"resourceType\"");
  EXPECT_EQ(ExpectRefusal(c.Read(8000), 408, s, "10 of 100 body bytes, 2 s body timeout"),
            "slow-body-1");
  EXPECT_TRUE(c.ClosedWithin(5000));
}

TEST(HttpTransport, NewConnectionWithoutARequestIsClosedSilentlyAfterTheIdleTimeout) {
  Conn c(Limited().port());
  ASSERT_TRUE(c.ok());
  std::string extra;
  EXPECT_TRUE(c.ClosedWithin(6000, &extra)) << "still open 6 s after connecting (1 s idle timeout)";
  EXPECT_EQ(extra, "") << "an idle connection is closed without a response";
}

TEST(HttpTransport, KeptAliveConnectionIsClosedSilentlyAfterTheIdleTimeout) {
  Conn c(Limited().port());
  ASSERT_TRUE(c.ok());
  c.Send(Req("GET", "/healthz"));
  ASSERT_EQ(c.Read().status, 200);
  std::string extra;
  EXPECT_TRUE(c.ClosedWithin(6000, &extra))
      << "still open 6 s after the response (1 s idle timeout)";
  EXPECT_EQ(extra, "") << "an idle connection is closed without a response";
}

TEST(HttpTransport, ResponsesTheClientDoesNotReadAreCutAfterTheWriteTimeout) {
  ServerProcess& s = Limited();
  Reply one = Exchange(s.port(), Req("GET", "/metadata"));
  ASSERT_EQ(one.status, 200);
  ASSERT_GT(one.body.size(), 0u);
  // Far more response bytes than the socket buffers hold (the client's is made small).
  size_t n = std::min<size_t>(20000, (32u << 20) / one.body.size() + 1);
  Conn c(s.port());
  ASSERT_TRUE(c.ok());
  int small = 65536;
  setsockopt(c.fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  std::string pipeline;
  for (size_t i = 0; i < n; ++i) pipeline += Req("GET", "/metadata");
  c.Send(pipeline, 3000, /*read_meanwhile=*/false);
  std::this_thread::sleep_for(std::chrono::milliseconds(3000));  // 1 s write timeout, and margin
  size_t answered = 0;
  while (c.Read(5000).status == 200) ++answered;
  std::cout << "[write timeout] " << answered << " of " << n << " pipelined GET /metadata ("
            << one.body.size() << " bytes each) answered before the connection was cut"
            << std::endl;
  EXPECT_TRUE(c.closed()) << "the connection is still open";
  EXPECT_LT(answered, n) << "every response was written although the client did not read for 3 s";
}

// ================================================================ framing

// Sends `request` and, in the same send(), a harmless second request with its own id: the first
// must be refused with 400 and the connection closed before the second is read.
void ExpectSmugglingRefused(const std::string& request, const std::string& rid,
                            const std::string& what) {
  ServerProcess& s = Default();
  std::string smuggled_id = rid + "-smuggled";
  Conn c(s.port());
  ASSERT_TRUE(c.ok());
  c.Send(request + "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Request-Id: " + smuggled_id +
         "\r\n\r\n");
  EXPECT_EQ(ExpectRefusal(c.Read(), 400, s, what), rid) << what;
  std::string extra;
  EXPECT_TRUE(c.ClosedWithin(5000, &extra)) << what << ": the connection stayed open";
  EXPECT_EQ(extra, "") << what << ": bytes after the 400 (the smuggled request answered?)";
  EXPECT_EQ(s.LogTail().find(smuggled_id), std::string::npos)
      << what << ": the smuggled request was processed";
}

std::string PostHead(const std::string& rid, const std::string& framing) {
  return "POST /Patient HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Request-Id: " + rid +
         "\r\nContent-Type: application/fhir+json\r\n" + framing + "\r\n";
}

TEST(HttpTransport, TwoEqualContentLengthsAre400AndTheRequestAfterIsNeverRead) {
  ExpectSmugglingRefused(
      PostHead("cl-cl-equal", "Content-Length: 2\r\nContent-Length: 2\r\n") + "{}", "cl-cl-equal",
      "two equal Content-Length");
}

TEST(HttpTransport, TwoDifferentContentLengthsAre400AndTheRequestAfterIsNeverRead) {
  ExpectSmugglingRefused(
      PostHead("cl-cl-differ", "Content-Length: 2\r\nContent-Length: 40\r\n") + "{}",
      "cl-cl-differ", "two different Content-Length");
}

TEST(HttpTransport, Http10WithTransferEncodingIs400AndTheRequestAfterIsNeverRead) {
  ExpectSmugglingRefused(
      "POST /Patient HTTP/1.0\r\nConnection: keep-alive\r\nX-Request-Id: te-10\r\n"
      "Content-Type: application/fhir+json\r\nTransfer-Encoding: chunked\r\n\r\n"
      "1a\r\n{\"resourceType\":\"Patient\"}\r\n0\r\n\r\n",
      "te-10", "HTTP/1.0 with Transfer-Encoding");
}

TEST(HttpTransport, TrailerFieldsOfAChunkedBodyAreNotHeaders) {
  ServerProcess& s = Default();
  std::string id = "trailer-" + Letters(8);
  std::string body = R"({"resourceType":"Patient","id":")" + id + R"("})";
  ASSERT_EQ(Exchange(s.port(), Req("PUT", "/Patient/" + id, "", body)).status, 201);
  char size[16];
  std::snprintf(size, sizeof size, "%zx", body.size());
  // A trailer If-Match for a version that does not exist: were it a header, the answer is 412.
  Reply r = Exchange(s.port(), "PUT /Patient/" + id +
                                   " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/fhir+json\r\n"
                                   "Transfer-Encoding: chunked\r\n\r\n" +
                                   size + "\r\n" + body + "\r\n0\r\nIf-Match: W/\"99\"\r\n\r\n");
  EXPECT_EQ(r.status, 200) << r.status_line << " " << r.body;
}

TEST(HttpTransport, ConnectionCloseInASecondConnectionHeaderClosesTheConnection) {
  Conn c(Default().port());
  ASSERT_TRUE(c.ok());
  c.Send("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n");
  Reply r = c.Read();
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(Lists(r.Header("connection"), "close")) << r.Header("connection");
  EXPECT_TRUE(c.ClosedWithin(5000));
}

TEST(HttpTransport, BlankLineAfterARequestLeavesTheConnectionIdleAndSilent) {
  Conn c(Limited().port());
  ASSERT_TRUE(c.ok());
  c.Send(Req("GET", "/healthz") + "\r\n");  // a client's stray CRLF after its request
  ASSERT_EQ(c.Read().status, 200);
  std::string extra;
  EXPECT_TRUE(c.ClosedWithin(6000, &extra));
  EXPECT_EQ(extra, "") << "a 408 for a request nobody sent";
}

TEST(HttpTransport, RefusalOfAHeadRequestHasNoBody) {
  Conn c(Default().port());
  ASSERT_TRUE(c.ok());
  c.Send("HEAD /metadata HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: something-else\r\n\r\n");
  Reply r = c.Read(10000, /*head=*/true);
  EXPECT_EQ(r.status, 417);
  std::string extra;
  EXPECT_TRUE(c.ClosedWithin(5000, &extra));
  EXPECT_EQ(extra, "") << "a body after the headers of a HEAD answer";
}

TEST(HttpTransport, ContentLengthThatIsNotADecimalIntegerIs400AndClose) {
  int i = 0;
  for (std::string value : {"-1", "abc", "1,1", "0x10"}) {
    std::string rid = "cl-bad-" + std::to_string(++i);
    ExpectSmugglingRefused(PostHead(rid, "Content-Length: " + value + "\r\n") + "{}", rid,
                           "Content-Length: " + value);
  }
}

TEST(HttpTransport, ContentLengthWithTransferEncodingIs400AndTheRequestAfterIsNeverRead) {
  ExpectSmugglingRefused(
      PostHead("cl-te", "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n") + "0\r\n\r\n",
      "cl-te", "Content-Length with Transfer-Encoding: chunked");
}

TEST(HttpTransport, TransferEncodingOtherThanChunkedIs400AndClose) {
  ExpectSmugglingRefused(PostHead("te-gzip", "Transfer-Encoding: gzip\r\n"), "te-gzip",
                         "Transfer-Encoding: gzip");
  ExpectSmugglingRefused(
      PostHead("te-gzip-chunked", "Transfer-Encoding: gzip, chunked\r\n") + "0\r\n\r\n",
      "te-gzip-chunked", "Transfer-Encoding: gzip, chunked");
}

TEST(HttpTransport, ChunkedBodyIsAccepted) {
  std::string body = PatientJson("Chunked", "Body", "chunked-" + Letters(8));
  std::string req = PostHead("chunked-ok", "Transfer-Encoding: chunked\r\n");
  for (size_t pos = 0; pos < body.size(); pos += 50) {
    std::string part = body.substr(pos, 50);
    char size[16];
    std::snprintf(size, sizeof size, "%zx", part.size());
    req += size + "\r\n"s + part + "\r\n";
  }
  req += "0\r\n\r\n";
  Reply r = Exchange(Default().port(), req);
  EXPECT_EQ(r.status, 201) << r.Describe();
}

TEST(HttpTransport, ContentEncodingOtherThanIdentityIs415) {
  ServerProcess& s = Default();
  std::string body = Gzip(PatientJson("Gzipped", "Body", "gz-" + Letters(8)));
  Reply r = Exchange(s.port(), PostHead("ce-gzip", "Content-Encoding: gzip\r\nContent-Length: " +
                                                       std::to_string(body.size()) + "\r\n") +
                                   body);
  EXPECT_EQ(ExpectRefusal(r, 415, s, "Content-Encoding: gzip"), "ce-gzip");

  std::string plain = PatientJson("Identity", "Body", "ce-id-" + Letters(8));
  Reply ok = Exchange(s.port(), Req("POST", "/Patient", "Content-Encoding: identity\r\n", plain));
  EXPECT_EQ(ok.status, 201) << ok.Describe();
}

// ================================================================ methods

TEST(HttpTransport, TraceIs405WithAllowAndNeverEchoesTheRequest) {
  ServerProcess& s = Default();
  Reply r =
      Exchange(s.port(), Req("TRACE", "/Patient",
                             "X-Request-Id: trace-1\r\nAuthorization: Bearer secret-token-4f2a9\r\n"
                             "Cookie: session=cookie-value-77c1\r\n"));
  EXPECT_EQ(ExpectRefusal(r, 405, s, "TRACE"), "trace-1");
  EXPECT_FALSE(r.Header("allow").empty());
  std::string all = r.Describe() + r.body;
  EXPECT_EQ(all.find("secret-token-4f2a9"), std::string::npos)
      << "the Authorization header was echoed";
  EXPECT_EQ(all.find("cookie-value-77c1"), std::string::npos) << "the Cookie header was echoed";
  EXPECT_EQ(s.LogTail().find("secret-token-4f2a9"), std::string::npos)
      << "the Authorization header was logged";
}

TEST(HttpTransport, ConnectIs405WithAllow) {
  ServerProcess& s = Default();
  Reply r = Exchange(s.port(),
                     "CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\nX-Request-Id: "
                     "connect-1\r\n\r\n");
  EXPECT_EQ(ExpectRefusal(r, 405, s, "CONNECT"), "connect-1");
  EXPECT_FALSE(r.Header("allow").empty());
}

TEST(HttpTransport, UnknownMethodIs405WithAllow) {
  ServerProcess& s = Default();
  Reply r = Exchange(s.port(), Req("FOO", "/Patient", "X-Request-Id: foo-1\r\n"));
  EXPECT_EQ(ExpectRefusal(r, 405, s, "FOO"), "foo-1");
  EXPECT_TRUE(Lists(r.Header("allow"), "GET")) << r.Header("allow");
}

// HEAD is the GET's status and headers, its Content-Length, and not one body byte: the next
// pipelined response must follow the HEAD's headers at once.
void ExpectHeadLikeGet(const std::string& target) {
  int port = Default().port();
  Reply get = Exchange(port, Req("GET", target));
  ASSERT_EQ(get.status, 200) << get.Describe();
  ASSERT_FALSE(get.Header("content-length").empty()) << "the GET has no Content-Length";
  Conn c(port);
  ASSERT_TRUE(c.ok());
  c.Send(Req("HEAD", target) + Req("GET", "/healthz"));
  Reply head = c.Read(10000, /*head=*/true);
  EXPECT_EQ(head.status, 200) << head.Describe();
  EXPECT_EQ(head.Header("content-length"), get.Header("content-length"));
  EXPECT_EQ(head.Header("content-type"), get.Header("content-type"));
  EXPECT_EQ(head.Header("etag"), get.Header("etag"));
  EXPECT_EQ(c.Peek(9, 5000), "HTTP/1.1 ")
      << "bytes after the HEAD's headers: " << c.pending().substr(0, 200);
  Reply next = c.Read();
  EXPECT_EQ(next.status, 200) << next.Describe();
  EXPECT_NE(next.body.find("ok"), std::string::npos) << next.Describe();
}

TEST(HttpTransport, HeadOnAResourceIsTheGetWithoutItsBody) {
  std::string id =
      CreatePatient(Default().port(), PatientJson("Head", "Resource", "head-" + Letters(8)));
  ASSERT_FALSE(id.empty());
  ExpectHeadLikeGet("/Patient/" + id);
}

TEST(HttpTransport, HeadOnMetadataIsTheGetWithoutItsBody) { ExpectHeadLikeGet("/metadata"); }

TEST(HttpTransport, OptionsWithoutPreflightIs204WithThePathsAllow) {
  int port = Default().port();
  Reply type = Exchange(port, Req("OPTIONS", "/Patient"));
  EXPECT_EQ(type.status, 204) << type.Describe();
  EXPECT_TRUE(Lists(type.Header("allow"), "GET")) << type.Header("allow");
  EXPECT_TRUE(Lists(type.Header("allow"), "POST")) << type.Header("allow");

  Reply instance = Exchange(port, Req("OPTIONS", "/Patient/some-id"));
  EXPECT_EQ(instance.status, 204) << instance.Describe();
  for (const char* m : {"GET", "PUT", "DELETE"}) {
    EXPECT_TRUE(Lists(instance.Header("allow"), m)) << m << " in " << instance.Header("allow");
  }
  EXPECT_FALSE(Lists(instance.Header("allow"), "POST")) << instance.Header("allow");
}

// ================================================================ Expect

TEST(HttpTransport, Expect100ContinueIsAnsweredBeforeTheBodyIsSent) {
  Conn c(Default().port());
  ASSERT_TRUE(c.ok());
  std::string body = PatientJson("Expect", "Continue", "expect-" + Letters(8));
  c.Send(
      "POST /Patient HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\n"
      "Content-Type: application/fhir+json\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\n\r\n");
  Reply interim = c.Read(5000);
  EXPECT_EQ(interim.status, 100) << interim.Describe();
  EXPECT_EQ(interim.status_line.rfind("HTTP/1.1 100 Continue", 0), 0u) << interim.status_line;
  c.Send(body);
  Reply created = c.Read();
  EXPECT_EQ(created.status, 201) << created.Describe();
  EXPECT_FALSE(IdOf(created).empty());
}

TEST(HttpTransport, Expect100ContinueWithABodyPastTheLimitIsOnly413) {
  ServerProcess& s = Default();
  Conn c(s.port());
  ASSERT_TRUE(c.ok());
  c.Send(
      "POST /Patient HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Request-Id: expect-413\r\nExpect: "
      "100-continue\r\n"
      "Content-Type: application/fhir+json\r\nContent-Length: 33554433\r\n\r\n");  // 32 MiB + 1
  EXPECT_EQ(ExpectRefusal(c.Read(5000), 413, s, "Expect: 100-continue past the default body limit"),
            "expect-413");
  EXPECT_TRUE(c.ClosedWithin(5000));
}

TEST(HttpTransport, Expect100ContinueWithAContentEncodingIsOnly415) {
  ServerProcess& s = Default();
  Conn c(s.port());
  ASSERT_TRUE(c.ok());
  c.Send(
      "POST /Patient HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Request-Id: expect-415\r\nExpect: "
      "100-continue\r\n"
      "Content-Type: application/fhir+json\r\nContent-Encoding: gzip\r\nContent-Length: "
      "20\r\n\r\n");
  EXPECT_EQ(ExpectRefusal(c.Read(5000), 415, s, "Expect: 100-continue with Content-Encoding: gzip"),
            "expect-415");
}

TEST(HttpTransport, OtherExpectationIs417) {
  ServerProcess& s = Default();
  std::string body = PatientJson("Expect", "Other", "expect-417-" + Letters(8));
  Reply r = Exchange(s.port(), Req("POST", "/Patient",
                                   "X-Request-Id: expect-417\r\nExpect: something-else\r\n", body));
  EXPECT_EQ(ExpectRefusal(r, 417, s, "Expect: something-else"), "expect-417");
}

// ================================================================ keep-alive and pipelining

TEST(HttpTransport, PipelinedRequestsAreAnsweredInOrderOnOneConnection) {
  int port = Default().port();
  std::string family = "Pipe" + Letters(8);
  std::string id = CreatePatient(port, PatientJson(family, "Lined", "pipe-" + family));
  ASSERT_FALSE(id.empty());
  Conn c(port);
  ASSERT_TRUE(c.ok());
  // A search (a worker), a probe (answered on the socket thread), a read (a worker), in one send().
  ASSERT_TRUE(c.Send(Req("GET", "/Patient?family=" + family, "X-Request-Id: pipe-1\r\n") +
                     Req("GET", "/healthz", "X-Request-Id: pipe-2\r\n") +
                     Req("GET", "/Patient/" + id, "X-Request-Id: pipe-3\r\n")));
  Reply first = c.Read(), second = c.Read(), third = c.Read();
  ASSERT_EQ(first.status, 200) << first.Describe();
  EXPECT_EQ(ResourceType(first.Json()), "Bundle") << first.Describe();
  EXPECT_EQ(EntryIds(first), std::vector<std::string>{id});
  ASSERT_EQ(second.status, 200) << second.Describe();
  EXPECT_NE(second.body.find("ok"), std::string::npos) << second.Describe();
  ASSERT_EQ(third.status, 200) << third.Describe();
  EXPECT_EQ(IdOf(third), id) << third.Describe();
  int n = 0;
  for (const Reply* r : {&first, &second, &third}) {
    ++n;
    std::string rid = r->Header("x-request-id");
    if (!rid.empty()) {
      EXPECT_EQ(rid, "pipe-" + std::to_string(n));
    }
  }
  c.Send(Req("GET", "/healthz"));
  EXPECT_EQ(c.Read().status, 200) << "the connection did not persist after the pipeline";
}

TEST(HttpTransport, Http11ConnectionPersistsUntilConnectionClose) {
  Conn c(Default().port());
  ASSERT_TRUE(c.ok());
  for (int i = 0; i < 3; ++i) {
    c.Send(Req("GET", "/healthz"));
    EXPECT_EQ(c.Read().status, 200) << "request " << i << " on the kept-alive connection";
  }
  c.Send(Req("GET", "/healthz", "Connection: close\r\n"));
  Reply last = c.Read();
  EXPECT_EQ(last.status, 200);
  EXPECT_TRUE(Lists(last.Header("connection"), "close")) << last.Describe();
  std::string extra;
  EXPECT_TRUE(c.ClosedWithin(5000, &extra)) << "still open after Connection: close";
  EXPECT_EQ(extra, "");
}

TEST(HttpTransport, Http10ConnectionClosesUnlessKeepAlive) {
  int port = Default().port();
  Conn plain(port);
  ASSERT_TRUE(plain.ok());
  plain.Send("GET /healthz HTTP/1.0\r\n\r\n");
  EXPECT_EQ(plain.Read().status, 200);
  EXPECT_TRUE(plain.ClosedWithin(5000)) << "an HTTP/1.0 connection without keep-alive stayed open";

  Conn kept(port);
  ASSERT_TRUE(kept.ok());
  kept.Send("GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  Reply first = kept.Read();
  EXPECT_EQ(first.status, 200);
  EXPECT_FALSE(kept.closed()) << "closed although the HTTP/1.0 request asked for keep-alive";
  kept.Send("GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  EXPECT_EQ(kept.Read().status, 200) << "the second HTTP/1.0 keep-alive request was not answered";
}

// ================================================================ compression

// A search whose identity body is over 1 KB: six patients of one family.
std::string LargeSearch() {
  static std::string target;
  if (!target.empty()) return target;
  std::string family = "Gz" + Letters(10);
  for (int i = 0; i < 6; ++i) {
    CreatePatient(Default().port(), PatientJson(family, "Given" + std::to_string(i),
                                                family + "-" + std::to_string(i)));
  }
  target = "/Patient?family=" + family;
  return target;
}

TEST(HttpTransport, GzipWhenAcceptedAndTheBodyIsOver1KB) {
  int port = Default().port();
  Reply identity = Exchange(port, Req("GET", LargeSearch()));
  ASSERT_EQ(identity.status, 200);
  ASSERT_GT(identity.body.size(), 1024u) << "the search is too small to test compression";
  EXPECT_EQ(identity.Header("content-encoding"), "");

  Reply gz = Exchange(port, Req("GET", LargeSearch(), "Accept-Encoding: gzip\r\n"));
  ASSERT_EQ(gz.status, 200) << gz.Describe();
  EXPECT_EQ(Lower(gz.Header("content-encoding")), "gzip");
  EXPECT_TRUE(Lists(gz.Header("vary"), "Accept-Encoding")) << "Vary: " << gz.Header("vary");
  auto inflated = Gunzip(gz.body);
  ASSERT_TRUE(inflated.has_value()) << "the body is not gzip";
  rapidjson::Document d;
  d.Parse(inflated->c_str(), inflated->size());
  ASSERT_FALSE(d.HasParseError()) << inflated->substr(0, 300);
  EXPECT_EQ(ResourceType(d), "Bundle");
  EXPECT_EQ(d.HasMember("entry") ? d["entry"].Size() : 0u, 6u);
}

TEST(HttpTransport, GzipWithQZeroIsIdentity) {
  Reply r = Exchange(Default().port(), Req("GET", LargeSearch(), "Accept-Encoding: gzip;q=0\r\n"));
  ASSERT_EQ(r.status, 200);
  EXPECT_TRUE(r.Header("content-encoding").empty() ||
              Lower(r.Header("content-encoding")) == "identity")
      << r.Header("content-encoding");
  EXPECT_EQ(ResourceType(r.Json()), "Bundle") << r.body.substr(0, 100);
}

TEST(HttpTransport, BodyUnder1KBIsNotCompressed) {
  int port = Default().port();
  std::string id = CreatePatient(port, PatientJson("Small", "Body", "small-" + Letters(8)));
  ASSERT_FALSE(id.empty());
  Reply r = Exchange(port, Req("GET", "/Patient/" + id, "Accept-Encoding: gzip\r\n"));
  ASSERT_EQ(r.status, 200);
  ASSERT_LT(r.body.size(), 1024u);
  EXPECT_EQ(r.Header("content-encoding"), "");
  EXPECT_EQ(IdOf(r), id);
}

// ================================================================ CORS

TEST(HttpTransport, CorsListedOriginGetsAllowOriginVaryAndExposeHeaders) {
  Reply r = Exchange(WithCors().port(), Req("GET", "/metadata", "Origin: " + kOrigin + "\r\n"));
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.Header("access-control-allow-origin"), kOrigin);
  EXPECT_TRUE(Lists(r.Header("vary"), "Origin")) << "Vary: " << r.Header("vary");
  for (const char* h : {"Location", "ETag", "Last-Modified", "Content-Location", "X-Request-Id"}) {
    EXPECT_TRUE(Lists(r.Header("access-control-expose-headers"), h))
        << h << " in " << r.Header("access-control-expose-headers");
  }
}

TEST(HttpTransport, CorsPreflightFromAListedOriginIs204WithAllowMethods) {
  Reply r =
      Exchange(WithCors().port(), Req("OPTIONS", "/Patient",
                                      "Origin: " + kOrigin +
                                          "\r\nAccess-Control-Request-Method: POST\r\n"
                                          "Access-Control-Request-Headers: content-type\r\n"));
  EXPECT_EQ(r.status, 204) << r.Describe();
  EXPECT_EQ(r.Header("access-control-allow-origin"), kOrigin);
  EXPECT_TRUE(Lists(r.Header("access-control-allow-methods"), "POST"))
      << r.Header("access-control-allow-methods");
  EXPECT_TRUE(Lists(r.Header("access-control-allow-headers"), "content-type"))
      << r.Header("access-control-allow-headers");
  EXPECT_EQ(r.Header("access-control-max-age"), "600");
}

TEST(HttpTransport, CorsVaryOriginIsOnEveryAnswerSoThatCachesKeepThemApart) {
  Reply r = Exchange(WithCors().port(), Req("GET", "/metadata", "Connection: close\r\n"));
  ASSERT_EQ(r.status, 200);
  EXPECT_TRUE(Lists(r.Header("vary"), "Origin")) << "no Origin sent, yet the answer depends on it: " << r.Header("vary");
  EXPECT_TRUE(Lists(r.Header("vary"), "Accept-Encoding")) << r.Header("vary");
}

TEST(HttpTransport, CorsUnlistedOriginGetsNoAccessControlHeader) {
  int port = WithCors().port();
  const std::string evil = "Origin: https://evil.example.com\r\n";
  for (const Reply& r : {Exchange(port, Req("GET", "/metadata", evil)),
                         Exchange(port, Req("OPTIONS", "/Patient",
                                            evil + "Access-Control-Request-Method: POST\r\n"))}) {
    EXPECT_GT(r.status, 0);
    EXPECT_LT(r.status, 500) << r.Describe();
    for (const auto& [k, v] : r.headers) {
      EXPECT_NE(k.rfind("access-control-", 0), 0u) << k << ": " << v;
    }
  }
}

// ================================================================ hostile load

TEST(HttpTransport, SlowlorisDoesNotDelayOtherClientsNorGrowTheServer) {
  ServerProcess& s = Default();
  std::string id = CreatePatient(s.port(), PatientJson("Slow", "Loris", "slowloris-" + Letters(8)));
  ASSERT_FALSE(id.empty());
  RssSampler rss(s.pid());
  Slowloris attack(s.port(), 500);
  ASSERT_TRUE(WaitFor(15000, [&] { return attack.connected() == 500 && attack.rounds() >= 3; }))
      << "only " << attack.connected() << " slowloris connections are up";

  std::vector<double> healthz_ms, patient_ms;
  int failures = 0;
  for (int i = 0; i < 200; ++i) {
    auto t0 = Clock::now();
    Reply h = Exchange(s.port(), Req("GET", "/healthz"));
    healthz_ms.push_back(MsSince(t0));
    t0 = Clock::now();
    Reply p = Exchange(s.port(), Req("GET", "/Patient/" + id));
    patient_ms.push_back(MsSince(t0));
    if (h.status != 200 || p.status != 200) ++failures;
  }
  int still_connected = attack.connected();
  rss.Stop();
  std::cout << "[slowloris] 500 connections trickling 3 bytes / 200 ms (" << still_connected
            << " connected at the end, " << attack.replaced() << " replaced)\n"
            << "[slowloris] GET /healthz ms: p50 " << Percentile(healthz_ms, 0.5) << ", p99 "
            << Percentile(healthz_ms, 0.99) << ", max " << Percentile(healthz_ms, 1.0) << "\n"
            << "[slowloris] GET /Patient/{id} ms: p50 " << Percentile(patient_ms, 0.5) << ", p99 "
            << Percentile(patient_ms, 0.99) << ", max " << Percentile(patient_ms, 1.0) << "\n"
            << "[slowloris] server RSS: before " << rss.before_kb() / 1024 << " MB, max "
            << rss.max_kb() / 1024 << " MB" << std::endl;
  EXPECT_EQ(failures, 0) << "requests not answered 200 during the slowloris";
  EXPECT_LT(Percentile(healthz_ms, 0.99), 100.0) << "/healthz p99 under slowloris";
  EXPECT_LT(rss.max_kb(), 300 * 1024) << "server RSS during the slowloris";
}

TEST(HttpTransport, TwentyParallelMegabyteHeadersAre431AndKeepTheServerUnder300MB) {
  ServerProcess& s = Default();
  RssSampler rss(s.pid());
  std::vector<int> statuses(20, 0);
  std::vector<std::thread> clients;
  for (int i = 0; i < 20; ++i) {
    clients.emplace_back([&, i] {
      Conn c(s.port());
      c.Send(Req("GET", "/Patient", "X-Big: " + std::string(1 << 20, 'a') + "\r\n"), 20000);
      statuses[static_cast<size_t>(i)] = c.Read(20000).status;
    });
  }
  for (auto& t : clients) t.join();
  rss.Stop();
  std::cout << "[1 MB headers] 20 in parallel: server RSS before " << rss.before_kb() / 1024
            << " MB, max " << rss.max_kb() / 1024 << " MB" << std::endl;
  for (int st : statuses) EXPECT_EQ(st, 431);
  EXPECT_LT(rss.max_kb(), 300 * 1024);
  EXPECT_EQ(Exchange(s.port(), Req("GET", "/healthz")).status, 200);
}

TEST(HttpTransport, BodiesPastTheServersTotalBudgetGet503UntilOthersAreDone) {
  ServerProcess& s = ServerWith({{"FLS_MAX_BODY_BYTES_TOTAL", "1048576"}, {"FLS_MAX_BODY_BYTES", "1048576"}});
  auto head = [](const std::string& rid) {
    return "POST /Patient HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Request-Id: " + rid +
           "\r\nContent-Type: application/fhir+json\r\nExpect: 100-continue\r\nContent-Length: 700000\r\n\r\n";
  };
  Conn a(s.port());
  ASSERT_TRUE(a.ok());
  a.Send(head("budget-a"));
  ASSERT_EQ(a.Read().status, 100) << "the first upload fits the budget";
  Conn b(s.port());
  ASSERT_TRUE(b.ok());
  b.Send(head("budget-b"));
  Reply refused = b.Read();
  EXPECT_EQ(ExpectRefusal(refused, 503, s, "a second 700 KB body with a 1 MiB budget"), "budget-b");
  EXPECT_FALSE(refused.Header("retry-after").empty());
  a.Close();  // the first upload gives up: its share of the budget comes back
  bool accepted = WaitFor(5000, [&] {
    Conn c(s.port());
    c.Send(head("budget-c"));
    return c.Read(2000).status == 100;
  });
  EXPECT_TRUE(accepted) << "the budget was not given back when the first upload ended";
}

TEST(HttpTransport, ConnectionsPastTheCapGet503WithRetryAfterUntilOthersClose) {
  ServerProcess server(std::map<std::string, std::string>{{"FLS_MAX_CONNECTIONS", "50"}});
  ASSERT_TRUE(server.WaitReady(30000)) << server.LogTail();
  std::vector<std::unique_ptr<Conn>> held;
  for (int i = 0; i < 50; ++i) {
    auto c = std::make_unique<Conn>(server.port());
    ASSERT_TRUE(c->ok());
    c->Send(Req("GET", "/healthz"));
    ASSERT_EQ(c->Read().status, 200) << "connection " << i + 1 << " of 50";
    held.push_back(std::move(c));
  }
  for (int i = 51; i <= 53; ++i) {
    Conn c(server.port());
    ASSERT_TRUE(c.ok());
    c.Send(Req("GET", "/healthz", "X-Request-Id: over-cap-" + std::to_string(i) + "\r\n"));
    Reply r = c.Read(5000);
    ExpectRefusal(r, 503, server, "connection " + std::to_string(i) + " with a cap of 50");
    EXPECT_FALSE(r.Header("retry-after").empty()) << r.Describe();
    EXPECT_TRUE(c.ClosedWithin(5000));
  }
  held.clear();
  EXPECT_TRUE(WaitFor(
      5000, [&] { return Exchange(server.port(), Req("GET", "/healthz"), 2000).status == 200; },
      100))
      << "still refused after the 50 connections closed";
  for (int i = 0; i < 10; ++i)
    EXPECT_EQ(Exchange(server.port(), Req("GET", "/metadata")).status, 200);
}

TEST(HttpTransport, HealthzAndReadyzAnswerWhileEveryWorkerIsBusy) {
  ServerProcess server(
      std::map<std::string, std::string>{{"FLS_THREADS", "2"}, {"FLS_DB_POOL", "2"}, {"FLS_AUTH", "off"}});
  ASSERT_TRUE(server.WaitReady(30000)) << server.LogTail();
  std::string id =
      CreatePatient(server.port(), PatientJson("Busy", "Workers", "busy-" + Letters(8)));
  ASSERT_FALSE(id.empty());

  ResourceTableLock lock(4);
  ASSERT_TRUE(lock.granted()) << "could not lock the resource table";
  std::vector<int> statuses(4, 0);
  std::atomic<int> done{0};
  std::vector<std::thread> blocked;
  for (size_t i = 0; i < 4; ++i) {
    blocked.emplace_back([&, i] {
      statuses[i] = Exchange(server.port(), Req("GET", "/Patient/" + id), 30000).status;
      ++done;
    });
  }
  // Both workers wait for the lock in the database; the other two requests queue behind them.
  bool busy = WaitFor(5000, [] { return ServerSessionsWaitingForALock() >= 2; });
  std::vector<double> healthz_ms;
  std::vector<int> probe_statuses;
  for (int i = 0; i < 5; ++i) {
    auto t0 = Clock::now();
    probe_statuses.push_back(Exchange(server.port(), Req("GET", "/healthz"), 5000).status);
    healthz_ms.push_back(MsSince(t0));
  }
  int readyz = Exchange(server.port(), Req("GET", "/readyz"), 5000).status;
  int done_during_probes = done;
  bool lock_held_during_probes = !lock.released();
  for (auto& t : blocked) t.join();

  std::cout << "[busy workers] GET /healthz ms while both workers wait on the lock: max "
            << Percentile(healthz_ms, 1.0) << "; the 4 blocked requests got";
  for (int st : statuses) std::cout << " " << st;
  std::cout << std::endl;
  EXPECT_TRUE(busy) << "the workers never waited on the lock: the test proves nothing";
  EXPECT_TRUE(lock_held_during_probes && done_during_probes == 0)
      << "the lock ended before the probes were checked: the test proves nothing";
  for (size_t i = 0; i < probe_statuses.size(); ++i) {
    EXPECT_EQ(probe_statuses[i], 200);
    EXPECT_LT(healthz_ms[i], 100.0) << "/healthz while every worker is busy";
  }
  EXPECT_EQ(readyz, 200) << "/readyz while every worker is busy";
  for (int st : statuses) {
    EXPECT_TRUE(st == 200 || st == 503) << "a blocked request got " << st;
  }
}

// ================================================================ shutdown

TEST(HttpTransport, SigtermAnswers503ToNewRequestsAndFinishesTheOneInFlight) {
  ServerProcess server(std::map<std::string, std::string>{{"FLS_AUTH", "off"}});
  ASSERT_TRUE(server.WaitReady(30000)) << server.LogTail();
  std::string id =
      CreatePatient(server.port(), PatientJson("Shut", "Down", "shutdown-" + Letters(8)));
  ASSERT_FALSE(id.empty());
  Conn kept(server.port());
  ASSERT_TRUE(kept.ok());
  kept.Send(Req("GET", "/healthz"));
  ASSERT_EQ(kept.Read().status, 200);

  ResourceTableLock lock(3);
  ASSERT_TRUE(lock.granted());
  Reply in_flight;
  std::thread client(
      [&] { in_flight = Exchange(server.port(), Req("GET", "/Patient/" + id), 30000); });
  bool waiting = WaitFor(3000, [] { return ServerSessionsWaitingForALock() >= 1; });
  kill(server.pid(), SIGTERM);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // for the signal to be handled

  kept.Send(Req("GET", "/Patient/" + id, "X-Request-Id: draining-1\r\n"));
  Reply on_kept = kept.Read(5000);
  EXPECT_EQ(ExpectRefusal(on_kept, 503, server, "request on a kept-alive connection after SIGTERM"),
            "draining-1");
  EXPECT_TRUE(Lists(on_kept.Header("connection"), "close")) << on_kept.Describe();
  EXPECT_TRUE(kept.ClosedWithin(5000));
  Reply fresh =
      Exchange(server.port(), Req("GET", "/Patient/" + id, "X-Request-Id: draining-2\r\n"), 5000);
  EXPECT_EQ(ExpectRefusal(fresh, 503, server, "request on a new connection after SIGTERM"),
            "draining-2");
  EXPECT_TRUE(Lists(fresh.Header("connection"), "close")) << fresh.Describe();
  bool lock_held = !lock.released();

  client.join();
  EXPECT_TRUE(waiting && lock_held)
      << "the request was not in flight during the shutdown: the test proves nothing";
  EXPECT_EQ(in_flight.status, 200) << in_flight.Describe();
  EXPECT_TRUE(WaitFor(15000, [&] { return IsZombie(server.pid()); }))
      << "the server did not exit after draining";
  EXPECT_EQ(server.Stop(), 0) << server.LogTail();
}

}  // namespace
}  // namespace fls::test
