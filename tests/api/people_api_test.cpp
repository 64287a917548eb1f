// People's logins, black box: local accounts made with `fls-server user add` (Argon2id hashes),
// the login page and its form (login CSRF), sessions in HttpOnly/Secure/SameSite cookies, the CSRF
// token on every state-changing request made with a session, lockout after repeated failures (and
// its end), idle and absolute session ends, log-out, disabled accounts, the audit trail of logins;
// and the hospital provider's login (authorization code + PKCE) against a small OpenID Connect
// provider run by this test over real HTTP (its token endpoint checks the PKCE verifier, the
// client secret and the redirect URI as a real one does; ID tokens signed ES256).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/sha.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "server/auth.h"
#include "server/jose.h"
#include "tests/api/test_client.h"

namespace fls::test {
namespace {

namespace jose = server::jose;

int64_t Now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string Base64(std::string_view in) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    unsigned v = (unsigned char)in[i] << 16 | (unsigned char)in[i + 1] << 8 | (unsigned char)in[i + 2];
    out += {k[v >> 18], k[(v >> 12) & 63], k[(v >> 6) & 63], k[v & 63]};
  }
  if (i + 1 == in.size()) {
    unsigned v = (unsigned char)in[i] << 16;
    out += {k[v >> 18], k[(v >> 12) & 63], '=', '='};
  } else if (i + 2 == in.size()) {
    unsigned v = (unsigned char)in[i] << 16 | (unsigned char)in[i + 1] << 8;
    out += {k[v >> 18], k[(v >> 12) & 63], k[(v >> 6) & 63], '='};
  }
  return out;
}

std::string S256(const std::string& verifier) {
  unsigned char d[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(verifier.data()), verifier.size(), d);
  return jose::Base64UrlEncode(std::string(reinterpret_cast<char*>(d), sizeof d));
}

std::map<std::string, std::string> QueryOf(const std::string& url) {
  auto q = url.find('?');
  return q == std::string::npos ? std::map<std::string, std::string>{} : server::ParseForm(url.substr(q + 1));
}

// ------------------------------------------------------------------ the test's identity provider
// Serves POST /token as RFC 6749 4.1.3 and RFC 7636 say: the code it issued (once), the
// redirect_uri it was issued for, the verifier whose S256 is the challenge, HTTP Basic client auth.
class FakeProvider {
 public:
  struct Grant {
    std::string challenge, redirect_uri, nonce_override;
    std::string claims_json;  // extra claims: ,"fls_role":"coordinator"...
    std::string nonce;
    bool used = false;
  };
  FakeProvider() : key_(jose::Key::Generate("EC", "P-256", "idp-k1")) {
    listen_fd_ = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    listen(listen_fd_, 16);
    thread_ = std::thread([this] { Serve(); });
  }
  ~FakeProvider() {
    stop_ = true;
    shutdown(listen_fd_, SHUT_RDWR);
    close(listen_fd_);
    thread_.join();
  }
  std::string issuer() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::string jwks() const { return jose::JwksJson({&key_}); }
  const std::string client_id = "fls-web-login";
  const std::string client_secret = "s3cret+/with:odd chars";

  // The user "logs in" at the provider: a code for this authorization request.
  std::string Authorize(const std::map<std::string, std::string>& q, const std::string& claims_json) {
    std::lock_guard lock(mu_);
    std::string code = "code-" + std::to_string(++counter_);
    Grant g;
    g.challenge = q.count("code_challenge") ? q.at("code_challenge") : "";
    g.redirect_uri = q.count("redirect_uri") ? q.at("redirect_uri") : "";
    g.nonce = q.count("nonce") ? q.at("nonce") : "";
    g.claims_json = claims_json;
    grants_[code] = g;
    return code;
  }
  void SetNonceOverride(const std::string& code, const std::string& nonce) {
    std::lock_guard lock(mu_);
    grants_[code].nonce = nonce;
  }
  int token_requests() const { return token_requests_; }
  std::string last_refusal() {
    std::lock_guard lock(mu_);
    return last_refusal_;
  }

 private:
  std::string Answer(const std::string& request) {
    ++token_requests_;
    auto head_end = request.find("\r\n\r\n");
    std::string head = request.substr(0, head_end), body = request.substr(head_end + 4);
    std::string lower = head;
    for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    auto refuse = [&](const std::string& why) {
      last_refusal_ = why;
      std::string b = "{\"error\":\"invalid_grant\",\"error_description\":\"" + why + "\"}";
      return "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: " +
             std::to_string(b.size()) + "\r\n\r\n" + b;
    };
    if (head.rfind("POST /token ", 0) != 0) return refuse("not POST /token");
    auto form = server::ParseForm(body);
    // HTTP Basic (RFC 6749 2.3.1: id and secret form-encoded first); header values may follow the
    // colon with or without a space.
    std::string authorization;
    for (size_t p = lower.find("\r\nauthorization:"); p != std::string::npos; p = std::string::npos) {
      size_t start = p + 16, end = head.find("\r\n", start);
      authorization = head.substr(start, end == std::string::npos ? std::string::npos : end - start);
      while (!authorization.empty() && authorization.front() == ' ') authorization.erase(0, 1);
    }
    if (authorization != "Basic " + Base64(client_id + ":" + "s3cret%2B%2Fwith%3Aodd%20chars")) {
      return refuse("client authentication failed: " + authorization);
    }
    std::lock_guard lock(mu_);
    if (form["grant_type"] != "authorization_code") return refuse("grant_type");
    auto it = grants_.find(form["code"]);
    if (it == grants_.end() || it->second.used) return refuse("unknown or used code");
    it->second.used = true;
    if (form["redirect_uri"] != it->second.redirect_uri) return refuse("redirect_uri differs");
    if (S256(form["code_verifier"]) != it->second.challenge) return refuse("PKCE verifier does not match");
    std::string payload = "{\"iss\":\"" + issuer() + "\",\"aud\":\"" + client_id + "\",\"iat\":" + std::to_string(Now()) +
                          ",\"exp\":" + std::to_string(Now() + 300) + ",\"nonce\":\"" + it->second.nonce + "\"" +
                          it->second.claims_json + "}";
    std::string id_token = jose::SignCompact(key_, "ES256", payload);
    std::string b = "{\"access_token\":\"at\",\"token_type\":\"Bearer\",\"expires_in\":300,\"id_token\":\"" + id_token + "\"}";
    return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nCache-Control: no-store\r\nConnection: close\r\n"
           "Content-Length: " + std::to_string(b.size()) + "\r\n\r\n" + b;
  }
  void Serve() {
    while (!stop_) {
      int fd = accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) continue;
      std::string req;
      char buf[4096];
      size_t need = std::string::npos;
      while (true) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        req.append(buf, static_cast<size_t>(n));
        auto end = req.find("\r\n\r\n");
        if (end != std::string::npos && need == std::string::npos) {
          std::string lower = req.substr(0, end);
          for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
          auto cl = lower.find("content-length:");
          need = end + 4 + (cl == std::string::npos ? 0 : std::stoul(lower.substr(cl + 15)));
        }
        if (need != std::string::npos && req.size() >= need) break;
      }
      std::string resp = req.empty() ? "" : Answer(req);
      send(fd, resp.data(), resp.size(), MSG_NOSIGNAL);
      close(fd);
    }
  }
  jose::Key key_;
  int listen_fd_ = -1, port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  std::map<std::string, Grant> grants_;
  int counter_ = 0;
  std::atomic<int> token_requests_{0};
  std::string last_refusal_;
};

std::string g_dir;
std::unique_ptr<FakeProvider> g_idp;
std::unique_ptr<ScratchDatabase> g_db;
std::unique_ptr<ServerProcess> g_server;
int Port() { return g_server->port(); }
std::string Base() { return "http://127.0.0.1:" + std::to_string(Port()); }

class PeopleEnv : public ::testing::Environment {
 public:
  void SetUp() override {
    char tmpl[] = "/tmp/fls-people-test-XXXXXX";
    g_dir = mkdtemp(tmpl);
    g_idp = std::make_unique<FakeProvider>();
    std::ofstream(g_dir + "/idp.jwks.json") << g_idp->jwks();
    std::ofstream(g_dir + "/idp.secret") << g_idp->client_secret << "\n";
    g_db = std::make_unique<ScratchDatabase>();
    g_server = std::make_unique<ServerProcess>(std::map<std::string, std::string>{
        {"FLS_LOGIN_MAX_FAILURES", "5"},
        {"FLS_LOGIN_LOCKOUT_S", "3"},
        {"FLS_ANON_RATE_LIMIT", "10000"},
        {"FLS_ANON_RATE_BURST", "10000"},
        {"FLS_OIDC_ISSUER", g_idp->issuer()},
        {"FLS_OIDC_JWKS_FILE", g_dir + "/idp.jwks.json"},
        {"FLS_OIDC_AUDIENCE", "fls-api"},
        {"FLS_OIDC_CLIENT_ID", g_idp->client_id},
        {"FLS_OIDC_CLIENT_SECRET_FILE", g_dir + "/idp.secret"},
        {"FLS_OIDC_AUTHORIZATION_ENDPOINT", g_idp->issuer() + "/authorize"},
        {"FLS_OIDC_TOKEN_ENDPOINT", g_idp->issuer() + "/token"}});
    ASSERT_TRUE(g_server->WaitReady(30000)) << g_server->LogTail();
  }
  void TearDown() override {
    if (::testing::UnitTest::GetInstance()->failed_test_count() > 0) std::cerr << "server log:\n" << g_server->LogTail();
    g_server.reset();
    g_db.reset();
    g_idp.reset();
    std::error_code ec;
    std::filesystem::remove_all(g_dir, ec);
  }
};
const auto* const kEnv = ::testing::AddGlobalTestEnvironment(new PeopleEnv);

// ------------------------------------------------------------------------------------ helpers

// `fls-server user ...` on the suite's database; the password (if any) on standard input.
int UserCli(const std::string& args, const std::string& password = "", std::string* out = nullptr) {
  std::string file = g_dir + "/cli-out";
  std::string cmd = "printf '%s\\n' '" + password + "' | FLS_DATABASE_URL='" + TestDatabaseUrl() + "' FLS_OIDC_ISSUER='" +
                    g_idp->issuer() + "' '" + Env("FLS_SERVER_BIN") + "' user " + args + " >'" + file + "' 2>&1";
  int rc = std::system(cmd.c_str());
  if (out) *out = ReadFile(file);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

// The value of cookie `name` in a response's Set-Cookie lines, and that line's attributes.
std::string SetCookieLine(const Response& r, const std::string& name) {
  std::string all = r.Header("set-cookie");
  size_t i = 0;
  while (i < all.size()) {
    size_t j = all.find('\n', i);
    if (j == std::string::npos) j = all.size();
    std::string line = all.substr(i, j - i);
    if (line.rfind(name + "=", 0) == 0) return line;
    i = j + 1;
  }
  return "";
}
std::string CookieValueOf(const Response& r, const std::string& name) {
  std::string line = SetCookieLine(r, name);
  if (line.empty()) return "";
  auto semi = line.find(';');
  return line.substr(name.size() + 1, semi - name.size() - 1);
}

std::string HiddenField(const std::string& html, const std::string& name) {
  std::string marker = "name=\"" + name + "\" value=\"";
  auto p = html.find(marker);
  if (p == std::string::npos) return "";
  p += marker.size();
  return html.substr(p, html.find('"', p) - p);
}

std::string FormEncode(const std::map<std::string, std::string>& f) {
  std::string out;
  for (const auto& [k, v] : f) {
    out += (out.empty() ? "" : "&") + k + "=";
    for (unsigned char c : v) {
      if (std::isalnum(c)) {
        out += static_cast<char>(c);
      } else {
        char buf[4];
        std::snprintf(buf, sizeof buf, "%%%02X", c);
        out += buf;
      }
    }
  }
  return out;
}

const std::map<std::string, std::string> kNoBearer = {{"Authorization", ""}};

Response Get(const std::string& path, const std::string& cookie = "", std::map<std::string, std::string> h = kNoBearer) {
  if (!cookie.empty()) h["Cookie"] = cookie;
  return Http(Port(), "GET", path, "", h);
}

// The login page, then its form posted: what a browser does.
Response FormLogin(const std::string& login, const std::string& password, const std::string& next = "") {
  Response page = Get("/login" + (next.empty() ? "" : "?next=" + next));
  std::string csrf_cookie = CookieValueOf(page, "fls-login-csrf");
  std::map<std::string, std::string> f = {{"login", login}, {"password", password}, {"csrf", HiddenField(page.body, "csrf")},
                                          {"next", HiddenField(page.body, "next")}};
  return Http(Port(), "POST", "/auth/login", FormEncode(f),
              {{"Authorization", ""}, {"Content-Type", "application/x-www-form-urlencoded"},
               {"Cookie", "fls-login-csrf=" + csrf_cookie}, {"Origin", Base()}});
}

Response JsonLogin(const std::string& login, const std::string& password) {
  return Http(Port(), "POST", "/auth/login", "{\"login\":\"" + login + "\",\"password\":\"" + password + "\"}",
              {{"Authorization", ""}, {"Content-Type", "application/json"}});
}

struct Session {
  std::string cookie;  // "fls-session=..."
  std::string csrf;
};
Session LoggedIn(const std::string& login, const std::string& password) {
  Response r = JsonLogin(login, password);
  EXPECT_EQ(r.status, 200) << r.body;
  Session s;
  s.cookie = "fls-session=" + CookieValueOf(r, "fls-session");
  if (r.status == 200) s.csrf = r.Json()["csrf"].GetString();
  return s;
}

const std::string kPassword = "correct horse battery";

class People : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto add = [](const std::string& args, const std::string& password) {
      std::string out;
      int rc = UserCli("add " + args, password, &out);
      ASSERT_EQ(rc, 0) << args << ": " << out;
    };
    add("--login Nurse.A --name 'Infirmière A' --role coordinator --sites Organization/site-a "
        "--practitioner Practitioner/nurse-a", kPassword);
    add("--login analyst --name 'Analyste' --role quality", kPassword);
    add("--login locky --name 'Locky' --role coordinator --sites Organization/site-a", kPassword);
    add("--login racer --name 'Racer' --role coordinator", kPassword);
    add("--login dr.link --name 'Dr Linked' --role coordinator --sites Organization/site-b --no-password "
        "--oidc-subject idp-sub-77", "");
  }
};

// ------------------------------------------------------------------------------------- tests

TEST_F(People, TheUserCommandStoresArgon2idHashesAndRefusesWeakPasswords) {
  std::string hash = Sql("SELECT password_hash FROM fls_user WHERE login = 'nurse.a'");
  EXPECT_EQ(hash.rfind("$argon2id$", 0), 0u) << hash;
  EXPECT_EQ(hash.find(kPassword), std::string::npos);
  std::string out;
  EXPECT_EQ(UserCli("add --login weak --role coordinator", "short", &out), 2) << out;
  EXPECT_NE(out.find("at least 12 characters"), std::string::npos) << out;
  EXPECT_EQ(UserCli("add --login weak2 --role coordinator", "weak2-and-long-enough", &out), 2) << out;
  EXPECT_NE(out.find("must not contain the login"), std::string::npos) << out;
  EXPECT_EQ(UserCli("add --login 'bad login' --role coordinator", kPassword, &out), 2) << out;
  EXPECT_EQ(UserCli("add --login someone --role superuser", kPassword, &out), 2) << out;
  EXPECT_EQ(UserCli("add --login someone --role coordinator --practitioner Patient/x", kPassword, &out), 2) << out;
  EXPECT_NE(out.find("--practitioner: Practitioner/id"), std::string::npos) << out;
  EXPECT_EQ(UserCli("add --login someone --role coordinator --practitioner 'Practitioner/a b'", kPassword, &out), 2) << out;
  EXPECT_EQ(Sql("SELECT count(*) FROM fls_user WHERE login IN ('weak', 'weak2', 'someone')"), "0");
  EXPECT_EQ(UserCli("list", "", &out), 0);
  EXPECT_NE(out.find("nurse.a\tcoordinator\tInfirmière A\tOrganization/site-a\tyes"), std::string::npos) << out;
  EXPECT_NE(out.find("dr.link\tcoordinator\tDr Linked\tOrganization/site-b\tno\tidp-sub-77"), std::string::npos) << out;
  EXPECT_NE(out.find("\tPractitioner/nurse-a\n"), std::string::npos) << out;
}

TEST_F(People, TheLoginPageIsFrenchFirstWithItsProtections) {
  Response r = Get("/login");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.Header("content-type"), "text/html; charset=utf-8");
  EXPECT_NE(r.body.find("<html lang=\"fr\">"), std::string::npos);
  EXPECT_NE(r.body.find("Mot de passe"), std::string::npos);
  EXPECT_NE(r.body.find("Se connecter avec le compte de l"), std::string::npos)
      << "the provider's login is offered when configured";
  EXPECT_NE(r.Header("content-security-policy").find("frame-ancestors 'none'"), std::string::npos);
  EXPECT_EQ(r.Header("x-frame-options"), "DENY");
  EXPECT_EQ(r.Header("cache-control"), "no-store");
  std::string csrf = SetCookieLine(r, "fls-login-csrf");
  EXPECT_NE(csrf.find("HttpOnly"), std::string::npos) << csrf;
  EXPECT_NE(csrf.find("Secure"), std::string::npos) << csrf;
  EXPECT_NE(csrf.find("SameSite=Strict"), std::string::npos) << csrf;
  Response en = Get("/login?lang=en");
  EXPECT_NE(en.body.find("<html lang=\"en\">"), std::string::npos);
  EXPECT_NE(en.body.find("Password"), std::string::npos);
  // A hostile next is not reflected as a place to go.
  Response evil = Get("/login?next=//evil.example/x");
  EXPECT_EQ(HiddenField(evil.body, "next"), "/login");
  Response xss = Get("/login?next=/%22%3E%3Cscript%3E");
  EXPECT_EQ(xss.body.find("<script>"), std::string::npos);
}

TEST_F(People, AFormLoginOpensASessionInAHardenedCookie) {
  Response r = FormLogin("Nurse.A", kPassword, "/auth/session");
  ASSERT_EQ(r.status, 303) << r.body;
  EXPECT_EQ(r.Header("location"), "/auth/session");
  std::string line = SetCookieLine(r, "fls-session");
  ASSERT_FALSE(line.empty()) << r.Header("set-cookie");
  for (const char* attr : {"HttpOnly", "Secure", "SameSite=Strict", "Path=/"}) {
    EXPECT_NE(line.find(attr), std::string::npos) << attr << " missing: " << line;
  }
  std::string cookie = "fls-session=" + CookieValueOf(r, "fls-session");
  Response who = Get("/auth/session", cookie);
  ASSERT_EQ(who.status, 200) << who.body;
  auto j = who.Json();
  EXPECT_STREQ(j["subject"].GetString(), "nurse.a");
  EXPECT_STREQ(j["role"].GetString(), "coordinator");
  EXPECT_STREQ(j["client_id"].GetString(), "fls-web");
  EXPECT_STREQ(j["name"].GetString(), "Infirmière A");
  EXPECT_STREQ(j["fhirUser"].GetString(), "Practitioner/nurse-a") << "the Practitioner this person is (SMART's fhirUser)";
  ASSERT_EQ(j["sites"].Size(), 1u);
  EXPECT_STREQ(j["sites"][0].GetString(), "Organization/site-a");
  EXPECT_TRUE(j.HasMember("csrf"));
  // The session acts as the coordinator: reads its work, not what its role may not.
  EXPECT_EQ(Get("/Task?_count=1", cookie).status, 200);
  EXPECT_EQ(Get("/AuditEvent", cookie).status, 403);
  // The database keeps the cookie's hash only.
  std::string secret = CookieValueOf(r, "fls-session");
  EXPECT_EQ(Sql("SELECT count(*) FROM fls_session WHERE encode(id_hash, 'escape') LIKE '%" + secret.substr(0, 20) + "%'"), "0");
  EXPECT_EQ(Sql("SELECT count(*) FROM fls_session WHERE login = 'nurse.a' AND octet_length(id_hash) = 32") != "0", true);
}

TEST_F(People, TheLoginFormNeedsItsCsrfCookieAndOurOrigin) {
  Response page = Get("/login");
  std::string csrf = HiddenField(page.body, "csrf");
  std::string cookie = "fls-login-csrf=" + CookieValueOf(page, "fls-login-csrf");
  auto post = [&](std::map<std::string, std::string> h, const std::string& field) {
    h["Authorization"] = "";
    h["Content-Type"] = "application/x-www-form-urlencoded";
    return Http(Port(), "POST", "/auth/login", FormEncode({{"login", "nurse.a"}, {"password", kPassword}, {"csrf", field}}), h);
  };
  EXPECT_EQ(post({}, csrf).status, 403) << "no cookie";
  EXPECT_EQ(post({{"Cookie", cookie}}, csrf + "x").status, 403) << "wrong field";
  EXPECT_EQ(post({{"Cookie", cookie}, {"Origin", "https://evil.example"}}, csrf).status, 403) << "another site";
  Response ok = post({{"Cookie", cookie}, {"Origin", Base()}}, csrf);
  EXPECT_EQ(ok.status, 303) << ok.body;
  // Not a form, not JSON.
  Response xml = Http(Port(), "POST", "/auth/login", "<login/>", {{"Authorization", ""}, {"Content-Type", "text/xml"}});
  EXPECT_EQ(xml.status, 415);
  EXPECT_EQ(JsonLogin(std::string(200, 'a'), kPassword).status, 401);
  Response broken = Http(Port(), "POST", "/auth/login", "{\"login\":", {{"Authorization", ""}, {"Content-Type", "application/json"}});
  EXPECT_EQ(broken.status, 400);
}

TEST_F(People, WrongPasswordsAndUnknownLoginsGetTheSameAnswer) {
  Response wrong = JsonLogin("analyst", "not the password at all");
  Response unknown = JsonLogin("nobody-here", "not the password at all");
  EXPECT_EQ(wrong.status, 401);
  EXPECT_EQ(unknown.status, 401);
  EXPECT_EQ(wrong.body, unknown.body);
  EXPECT_TRUE(SetCookieLine(wrong, "fls-session").empty());
  Response page = FormLogin("analyst", "not the password at all");
  EXPECT_EQ(page.status, 401);
  EXPECT_NE(page.body.find("role=\"alert\""), std::string::npos);
  EXPECT_TRUE(SetCookieLine(page, "fls-session").empty());
  // The right one still works (two failures are below the limit) and resets the count.
  LoggedIn("analyst", kPassword);
  EXPECT_EQ(Sql("SELECT failed_logins FROM fls_user WHERE login = 'analyst'"), "0");
}

TEST_F(People, FiveFailuresLockTheAccountUntilTheLockoutEndsOrAnAdministratorUnlocks) {
  for (int i = 0; i < 5; ++i) EXPECT_EQ(JsonLogin("locky", "wrong password number " + std::to_string(i)).status, 401);
  Response locked = JsonLogin("locky", kPassword);
  EXPECT_EQ(locked.status, 401) << "the right password does not open a locked account";
  EXPECT_EQ(Sql("SELECT locked_until > now() FROM fls_user WHERE login = 'locky'"), "t");
  std::string out;
  EXPECT_EQ(UserCli("unlock --login locky", "", &out), 0) << out;
  LoggedIn("locky", kPassword);
  // Locked again; this time the lock (3 s in this suite) runs out by itself.
  for (int i = 0; i < 5; ++i) JsonLogin("locky", "wrong again " + std::to_string(i));
  EXPECT_EQ(JsonLogin("locky", kPassword).status, 401);
  std::this_thread::sleep_for(std::chrono::milliseconds(3500));
  LoggedIn("locky", kPassword);
  // Every attempt left its trace.
  EXPECT_GE(std::stoi(Sql("SELECT count(*) FROM resource_version WHERE res_type = 'AuditEvent' AND "
                          "content->'subtype'->0->>'code' = '110122' AND content->>'outcome' <> '0' AND "
                          "content::text LIKE '%locky (not authenticated)%'")),
            12);
}

TEST_F(People, ConcurrentGuessesCannotOverrunTheLimit) {
  std::vector<std::thread> threads;
  std::atomic<int> refused{0};
  for (int i = 0; i < 12; ++i) {
    threads.emplace_back([&, i] {
      if (JsonLogin("racer", "parallel guess " + std::to_string(i)).status == 401) ++refused;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(refused.load(), 12);
  EXPECT_EQ(Sql("SELECT locked_until > now() FROM fls_user WHERE login = 'racer'"), "t");
  EXPECT_EQ(JsonLogin("racer", kPassword).status, 401);
  UserCli("unlock --login racer");
}

TEST_F(People, SessionWritesNeedTheCsrfTokenAndOurOrigin) {
  Session s = LoggedIn("nurse.a", kPassword);
  const std::string patient = R"({"resourceType":"Patient","name":[{"family":"Cookie"}]})";
  auto post = [&](std::map<std::string, std::string> h) {
    h["Authorization"] = "";
    h["Cookie"] = s.cookie;
    h["Content-Type"] = "application/fhir+json";
    return Http(Port(), "POST", "/Patient", patient, h);
  };
  const std::string before = Sql("SELECT count(*) FROM resource WHERE res_type = 'Patient'");
  Response none = post({});
  EXPECT_EQ(none.status, 403) << none.body;
  EXPECT_NE(none.body.find("X-CSRF-Token"), std::string::npos);
  EXPECT_EQ(post({{"X-CSRF-Token", s.csrf + "0"}}).status, 403);
  EXPECT_EQ(post({{"X-CSRF-Token", s.csrf}, {"Origin", "https://evil.example"}}).status, 403);
  EXPECT_EQ(Sql("SELECT count(*) FROM resource WHERE res_type = 'Patient'"), before) << "a refused write wrote nothing";
  Response ok = post({{"X-CSRF-Token", s.csrf}, {"Origin", Base()}});
  EXPECT_EQ(ok.status, 201) << ok.body;
  // Reads need no token; the session's user is in the audit trail.
  EXPECT_EQ(Get("/Patient?family=Cookie", s.cookie).status, 200);
  EXPECT_NE(Sql("SELECT count(*) FROM resource_version WHERE res_type = 'AuditEvent' AND content::text LIKE '%nurse.a%' AND "
                "content::text LIKE '%fls-web%'"),
            "0");
}

TEST_F(People, LogoutEndsTheSessionEverywhere) {
  Session s = LoggedIn("nurse.a", kPassword);
  ASSERT_EQ(Get("/auth/session", s.cookie).status, 200);
  Response no_token = Http(Port(), "POST", "/auth/logout", "", {{"Authorization", ""}, {"Cookie", s.cookie}});
  EXPECT_EQ(no_token.status, 403) << "logging out is a state change: it needs the CSRF token";
  EXPECT_EQ(Get("/auth/session", s.cookie).status, 200);
  Response out = Http(Port(), "POST", "/auth/logout", "", {{"Authorization", ""}, {"Cookie", s.cookie}, {"X-CSRF-Token", s.csrf}});
  EXPECT_EQ(out.status, 204) << out.body;
  EXPECT_NE(SetCookieLine(out, "fls-session").find("Max-Age=0"), std::string::npos);
  Response after = Get("/auth/session", s.cookie);
  EXPECT_EQ(after.status, 401);
  EXPECT_NE(after.body.find("log in again"), std::string::npos);
  EXPECT_NE(Sql("SELECT count(*) FROM resource_version WHERE res_type = 'AuditEvent' AND content->'subtype'->0->>'code' = '110123'"), "0");
  // The page's own log-out form (its CSRF field) works too.
  Session s2 = LoggedIn("nurse.a", kPassword);
  Response page = Get("/login", s2.cookie);
  EXPECT_NE(page.body.find("nurse.a"), std::string::npos) << "the login page says who is logged in";
  Response form = Http(Port(), "POST", "/auth/logout", FormEncode({{"csrf", HiddenField(page.body, "csrf")}}),
                       {{"Authorization", ""}, {"Cookie", s2.cookie}, {"Content-Type", "application/x-www-form-urlencoded"}});
  EXPECT_EQ(form.status, 303);
  EXPECT_EQ(Get("/auth/session", s2.cookie).status, 401);
}

TEST_F(People, SessionsEndWhenIdleAtTheirLifetimeAndWhenTheAccountChanges) {
  Session idle = LoggedIn("nurse.a", kPassword);
  Sql("UPDATE fls_session SET last_seen_at = now() - interval '31 minutes' WHERE id_hash = (SELECT id_hash FROM "
      "fls_session WHERE login = 'nurse.a' ORDER BY created_at DESC LIMIT 1)");
  EXPECT_EQ(Get("/auth/session", idle.cookie).status, 401) << "30 minutes idle ends a session";
  Session old = LoggedIn("nurse.a", kPassword);
  Sql("UPDATE fls_session SET expires_at = now() - interval '1 second' WHERE id_hash = (SELECT id_hash FROM fls_session "
      "WHERE login = 'nurse.a' ORDER BY created_at DESC LIMIT 1)");
  EXPECT_EQ(Get("/auth/session", old.cookie).status, 401) << "the lifetime ends it however busy it is";
  Session s = LoggedIn("analyst", kPassword);
  EXPECT_EQ(Get("/auth/session", s.cookie).status, 200);
  std::string out;
  EXPECT_EQ(UserCli("disable --login analyst", "", &out), 0) << out;
  EXPECT_EQ(Get("/auth/session", s.cookie).status, 401) << "a disabled account's sessions end at once";
  EXPECT_EQ(JsonLogin("analyst", kPassword).status, 401);
  EXPECT_EQ(UserCli("enable --login analyst", "", &out), 0) << out;
  LoggedIn("analyst", kPassword);
  // A forged cookie is no session.
  EXPECT_EQ(Get("/auth/session", "fls-session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").status, 401);
  EXPECT_EQ(Get("/Patient", "fls-session=" + std::string(5000, 'A')).status, 401);
}

TEST_F(People, TheQualityRoleLoggedInStillReachesNoPatient) {
  Session s = LoggedIn("analyst", kPassword);
  EXPECT_EQ(Get("/Patient", s.cookie).status, 403);
  EXPECT_EQ(Get("/Measure", s.cookie).status, 200);
}

// ------------------------------------------------------------------- the provider's login

struct Flow {
  std::map<std::string, std::string> authorize;  // the query the browser was sent with
  std::string flow_cookie;                       // "fls-login-flow=..."
};
Flow StartFlow(const std::string& next = "/auth/session") {
  Response r = Get("/auth/oidc/login?next=" + next);
  EXPECT_EQ(r.status, 302) << r.body;
  Flow f;
  std::string location = r.Header("location");
  EXPECT_EQ(location.rfind(g_idp->issuer() + "/authorize?", 0), 0u) << location;
  f.authorize = QueryOf(location);
  std::string line = SetCookieLine(r, "fls-login-flow");
  EXPECT_NE(line.find("SameSite=Lax"), std::string::npos) << line;
  EXPECT_NE(line.find("HttpOnly"), std::string::npos) << line;
  f.flow_cookie = "fls-login-flow=" + CookieValueOf(r, "fls-login-flow");
  return f;
}
Response Callback(const Flow& f, const std::string& code, const std::string& state_override = "", const std::string& cookie = "\x7f") {
  std::string state = state_override.empty() ? f.authorize.at("state") : state_override;
  return Get("/auth/oidc/callback?code=" + code + "&state=" + state, cookie == "\x7f" ? f.flow_cookie : cookie);
}

TEST_F(People, TheProvidersLoginUsesPkceStateAndNonce) {
  Flow f = StartFlow();
  EXPECT_EQ(f.authorize["response_type"], "code");
  EXPECT_EQ(f.authorize["client_id"], g_idp->client_id);
  EXPECT_EQ(f.authorize["redirect_uri"], Base() + "/auth/oidc/callback");
  EXPECT_EQ(f.authorize["code_challenge_method"], "S256");
  EXPECT_EQ(f.authorize["code_challenge"].size(), 43u);
  EXPECT_GE(f.authorize["state"].size(), 32u);
  EXPECT_GE(f.authorize["nonce"].size(), 32u);
  EXPECT_NE(f.authorize["scope"].find("openid"), std::string::npos);
  std::string code = g_idp->Authorize(f.authorize, R"(,"sub":"idp-sub-1","preferred_username":"c.martin","name":"Claire Martin","fls_role":"coordinator","fls_sites":["Organization/site-a"],"fhirUser":"Practitioner/c-martin")");
  Response cb = Callback(f, code);
  ASSERT_EQ(cb.status, 200) << cb.body << "\nprovider: " << g_idp->last_refusal();
  EXPECT_NE(cb.body.find("http-equiv=\"refresh\" content=\"0;url=/auth/session\""), std::string::npos) << cb.body;
  std::string cookie = "fls-session=" + CookieValueOf(cb, "fls-session");
  EXPECT_NE(SetCookieLine(cb, "fls-session").find("SameSite=Strict"), std::string::npos);
  Response who = Get("/auth/session", cookie);
  ASSERT_EQ(who.status, 200) << who.body;
  auto j = who.Json();
  EXPECT_STREQ(j["subject"].GetString(), "c.martin");
  EXPECT_EQ(std::string(j["issuer"].GetString()), g_idp->issuer());
  EXPECT_STREQ(j["role"].GetString(), "coordinator");
  EXPECT_STREQ(j["sites"][0].GetString(), "Organization/site-a");
  EXPECT_STREQ(j["name"].GetString(), "Claire Martin");
  EXPECT_STREQ(j["fhirUser"].GetString(), "Practitioner/c-martin") << "the provider's fhirUser claim";
  // The state works once.
  Response again = Callback(f, code);
  EXPECT_EQ(again.status, 401);
}

TEST_F(People, TheProvidersLoginRefusesWhatIsNotItsOwn) {
  // Another browser (no flow cookie, or another one) cannot finish the login.
  Flow f = StartFlow();
  std::string code = g_idp->Authorize(f.authorize, R"(,"sub":"s2","fls_role":"coordinator")");
  EXPECT_EQ(Callback(f, code, "", "").status, 401);
  Flow f2 = StartFlow();
  std::string code2 = g_idp->Authorize(f2.authorize, R"(,"sub":"s2","fls_role":"coordinator")");
  EXPECT_EQ(Callback(f2, code2, "", f.flow_cookie).status, 401);
  // An unknown state.
  Flow f3 = StartFlow();
  EXPECT_EQ(Callback(f3, "whatever", "forged-state").status, 401);
  // An ID token whose nonce is not the login's (a replayed token).
  Flow f4 = StartFlow();
  std::string code4 = g_idp->Authorize(f4.authorize, R"(,"sub":"s4","fls_role":"coordinator")");
  g_idp->SetNonceOverride(code4, "another-nonce");
  Response r4 = Callback(f4, code4);
  EXPECT_EQ(r4.status, 401);
  EXPECT_TRUE(SetCookieLine(r4, "fls-session").empty());
  // The provider refused (here: the PKCE verifier of another flow).
  Flow f5 = StartFlow();
  Flow f6 = StartFlow();
  std::string code5 = g_idp->Authorize(f6.authorize, R"(,"sub":"s5","fls_role":"coordinator")");
  EXPECT_EQ(Callback(f5, code5).status, 401);
  EXPECT_EQ(g_idp->last_refusal(), "PKCE verifier does not match");
  // The user declined at the provider.
  Flow f7 = StartFlow();
  EXPECT_EQ(Get("/auth/oidc/callback?error=access_denied&state=" + f7.authorize["state"], f7.flow_cookie).status, 401);
  // No FLS role and no local account: no session.
  Flow f8 = StartFlow();
  std::string code8 = g_idp->Authorize(f8.authorize, R"(,"sub":"stranger","preferred_username":"stranger")");
  EXPECT_EQ(Callback(f8, code8).status, 401);
  EXPECT_NE(Sql("SELECT count(*) FROM resource_version WHERE res_type = 'AuditEvent' AND content::text LIKE '%linked to no local account%'"), "0");
}

TEST_F(People, AProviderAccountLinkedToALocalOneTakesItsRoleAndSites) {
  Flow f = StartFlow();
  std::string code = g_idp->Authorize(f.authorize, R"(,"sub":"idp-sub-77","preferred_username":"jdupont","name":"J. Dupont","fhirUser":"https://ehr.example/fhir/Practitioner/9")");
  Response cb = Callback(f, code);
  ASSERT_EQ(cb.status, 200) << cb.body;
  Response who = Get("/auth/session", "fls-session=" + CookieValueOf(cb, "fls-session"));
  ASSERT_EQ(who.status, 200);
  auto j = who.Json();
  EXPECT_STREQ(j["subject"].GetString(), "dr.link");
  EXPECT_STREQ(j["role"].GetString(), "coordinator");
  EXPECT_STREQ(j["sites"][0].GetString(), "Organization/site-b");
  EXPECT_FALSE(j.HasMember("fhirUser")) << "another server's Practitioner is not one of ours";
  // A local account without a password cannot log in with one.
  EXPECT_EQ(JsonLogin("dr.link", "").status, 401);
}

}  // namespace
}  // namespace fls::test
