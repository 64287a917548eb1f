#include "server/people.h"

#include <sodium.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <thread>

#include <utility>

#include <cpprest/http_client.h>
#include <pplx/threadpool.h>
#include <rapidjson/document.h>

#include "db/auth_store.h"
#include "server/http_util.h"
#include "server/log.h"

namespace fls::server {

namespace {

int64_t NowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

void InitSodium() {
  static const bool ok = sodium_init() >= 0;
  if (!ok) throw std::runtime_error("libsodium cannot be initialised");
}

std::string RandomToken(size_t bytes) {
  InitSodium();
  std::string raw(bytes, '\0');
  randombytes_buf(raw.data(), raw.size());
  return jose::Base64UrlEncode(raw);
}

std::string Sha256(std::string_view data) {
  unsigned char out[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(out, reinterpret_cast<const unsigned char*>(data.data()), data.size());
  return std::string(reinterpret_cast<const char*>(out), sizeof out);
}

std::string Hex(std::string_view bytes) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

bool SameSecret(std::string_view a, std::string_view b) {
  if (a.size() != b.size() || a.empty()) return false;
  return sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

bool ValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 2) return false;
    }
    i += n;
  }
  return true;
}

std::string JoinSites(const std::vector<std::string>& sites) {
  std::string out;
  for (const auto& s : sites) {
    if (s.empty() || s.find_first_of(" \t\r\n") != std::string::npos) continue;
    out += (out.empty() ? "" : " ") + s;
  }
  return out;
}

std::vector<std::string> SplitSites(const std::string& sites) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < sites.size()) {
    size_t j = sites.find(' ', i);
    if (j == std::string::npos) j = sites.size();
    if (j > i) out.push_back(sites.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

}  // namespace

std::string HashPassword(std::string_view password) {
  InitSodium();
  char out[crypto_pwhash_STRBYTES];
  if (crypto_pwhash_str_alg(out, password.data(), password.size(), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                            crypto_pwhash_MEMLIMIT_INTERACTIVE, crypto_pwhash_ALG_ARGON2ID13) != 0) {
    throw std::runtime_error("out of memory while hashing a password");
  }
  return out;
}

bool VerifyPassword(const std::string& hash, std::string_view password) {
  InitSodium();
  if (hash.empty() || hash.size() >= crypto_pwhash_STRBYTES) return false;
  return crypto_pwhash_str_verify(hash.c_str(), password.data(), password.size()) == 0;
}

std::optional<std::string> PasswordProblem(std::string_view password, std::string_view login) {
  if (!ValidUtf8(password)) return "the password is not valid UTF-8";
  size_t chars = 0;
  for (unsigned char c : password) chars += (c >> 6) != 2;
  if (chars < 12) return "the password must have at least 12 characters";
  if (password.size() > 256) return "the password must have at most 256 bytes";
  std::string lower(password);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  if (!login.empty() && lower.find(login) != std::string::npos) return "the password must not contain the login";
  return std::nullopt;
}

std::optional<std::string> NormaliseLogin(std::string_view login) {
  if (login.empty() || login.size() > 128) return std::nullopt;
  std::string out;
  for (unsigned char c : login) {
    if (!(std::isalnum(c) || c == '.' || c == '_' || c == '-' || c == '@')) return std::nullopt;
    out += static_cast<char>(std::tolower(c));
  }
  return out;
}

std::optional<std::string> CookieValue(std::string_view header, std::string_view name) {
  size_t i = 0;
  while (i < header.size()) {
    size_t j = header.find(';', i);
    if (j == std::string_view::npos) j = header.size();
    std::string_view part = header.substr(i, j - i);
    while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
    while (!part.empty() && part.back() == ' ') part.remove_suffix(1);
    size_t eq = part.find('=');
    if (eq != std::string_view::npos && part.substr(0, eq) == name) {
      std::string_view v = part.substr(eq + 1);
      if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
      return std::string(v);
    }
    i = j + 1;
  }
  return std::nullopt;
}

std::vector<Scope> SessionScopes(Role role) {
  std::string text = DefaultScopes(role);
  for (size_t p = text.find("system/"); p != std::string::npos; p = text.find("system/", p)) {
    text.replace(p, 7, "user/");
  }
  return ParseScopes(text);
}

People::People(db::Database& db, const Authenticator& authenticator, PeopleConfig config)
    : db_(db),
      authenticator_(authenticator),
      config_(std::move(config)),
      hashing_(static_cast<std::ptrdiff_t>(std::clamp(std::thread::hardware_concurrency(), 1u, 64u))) {
  dummy_hash_ = HashPassword(RandomToken(16));
  if (oidc_login_enabled()) {
    // Outbound HTTP (the provider's token endpoint) runs on cpprestsdk's pool: two threads, not
    // its default forty.
    static std::once_flag once;
    std::call_once(once, [] { crossplat::threadpool::initialize_with_threads(2); });
  }
}

std::string People::NewLoginCsrf() { return RandomToken(24); }

std::string People::SessionCookieName() const {
  return config_.public_url.rfind("https://", 0) == 0 ? "__Host-fls-session" : "fls-session";
}
std::string People::FlowCookieName() const {
  return config_.public_url.rfind("https://", 0) == 0 ? "__Secure-fls-login-flow" : "fls-login-flow";
}
std::string People::LoginCsrfCookieName() const {
  return config_.public_url.rfind("https://", 0) == 0 ? "__Host-fls-login-csrf" : "fls-login-csrf";
}

std::string People::SetCookie(const std::string& name, const std::string& value, int max_age_s, const char* same_site,
                              bool readable_by_script, const std::string& path) const {
  std::string c = name + "=" + value + "; Path=" + path + "; Max-Age=" + std::to_string(max_age_s) + "; Secure; SameSite=" +
                  same_site;
  if (!readable_by_script) c += "; HttpOnly";
  return c;
}

std::optional<CookieSession> People::FromCookies(std::string_view cookie_header) const {
  auto secret = CookieValue(cookie_header, SessionCookieName());
  if (!secret || secret->empty() || secret->size() > 128) return std::nullopt;
  const std::string id_hash = Hex(Sha256(*secret));
  std::optional<db::AuthStore::Session> s;
  db_.Read([&](db::ResourceStore& st) { s = db::AuthStore(st).FindSession(id_hash, config_.session_idle_s); });
  if (!s) return std::nullopt;
  auto role = ParseRole(s->role);
  if (!role) return std::nullopt;
  auto p = std::make_shared<Principal>();
  p->subject = s->login;
  p->client_id = "fls-web";
  p->issuer = s->issuer;
  p->role = *role;
  p->scopes = SessionScopes(*role);
  p->sites = SplitSites(s->sites);
  p->display_name = s->display_name;
  p->practitioner = s->practitioner;
  p->expires_at = std::min<int64_t>(s->expires_at_s, std::max<int64_t>(s->last_seen_at_s, NowSeconds()) + config_.session_idle_s);
  return CookieSession{std::move(p), s->csrf, id_hash};
}

People::Login People::OpenSession(const std::string& login, const std::string& display_name, const std::string& issuer,
                                  const std::string& role, const std::string& sites, const std::string& practitioner,
                                  const std::string& address) {
  Login out;
  out.cookie_value = RandomToken(32);
  out.csrf = RandomToken(24);
  db::AuthStore::Session s;
  s.login = login;
  s.display_name = display_name;
  s.issuer = issuer;
  s.role = role;
  s.sites = sites;
  s.practitioner = practitioner;
  s.csrf = out.csrf;
  s.expires_at_s = NowSeconds() + config_.session_lifetime_s;
  const std::string id_hash = Hex(Sha256(out.cookie_value));
  db_.Transact([&](db::ResourceStore& st) { db::AuthStore(st).CreateSession(id_hash, s, address.substr(0, 200)); });
  out.ok = true;
  out.login = login;
  out.role = role;
  return out;
}

People::Login People::PasswordLogin(std::string_view login_in, std::string_view password, const std::string& address) {
  Login fail;
  auto login = NormaliseLogin(login_in);
  // The attempt is counted (and a lock checked) before the slow hash check.
  std::optional<db::AuthStore::User> user;
  if (login) db_.Transact([&](db::ResourceStore& st) { user = db::AuthStore(st).BeginLogin(*login); });
  const bool usable = user && !user->password_hash.empty() && user->failed_logins <= config_.max_failures;
  bool verified = false;
  if (password.size() <= 1024) {
    if (!hashing_.try_acquire_for(std::chrono::seconds(10))) {
      fail.reason = "too many logins being checked at once";
      return fail;
    }
    struct Release {
      std::counting_semaphore<64>& s;
      ~Release() { s.release(); }
    } release{hashing_};
    verified = VerifyPassword(usable ? user->password_hash : dummy_hash_, password) && usable;
  }
  if (!verified) {
    if (!login) {
      fail.reason = "the login is not a valid login name";
    } else if (!user) {
      fail.reason = "unknown login, disabled account or account locked";
    } else if (user->password_hash.empty()) {
      fail.reason = "the account has no local password (it logs in through the identity provider)";
    } else {
      fail.reason = "wrong password (failure " + std::to_string(user->failed_logins) + " of " +
                    std::to_string(config_.max_failures) + ")";
    }
    if (user) {
      db_.Transact([&](db::ResourceStore& st) {
        db::AuthStore(st).LoginFailed(*login, config_.max_failures, config_.lockout_s);
      });
      if (user->failed_logins >= config_.max_failures) {
        fail.reason += "; the account is now locked for " + std::to_string(config_.lockout_s) + " s";
        Log("warn", "account locked after repeated login failures", {{"login", *login}});
      }
    }
    fail.login = login.value_or("");
    return fail;
  }
  db_.Transact([&](db::ResourceStore& st) { db::AuthStore(st).LoginSucceeded(*login); });
  Login ok = OpenSession(user->login, user->display_name, "", user->role, user->sites, user->practitioner, address);
  ok.reason = "password login";
  return ok;
}

bool People::Logout(const std::string& id_hash) {
  bool ended = false;
  db_.Transact([&](db::ResourceStore& st) { ended = db::AuthStore(st).EndSession(id_hash); });
  return ended;
}

People::FlowStart People::StartOidcLogin(const std::string& next_path, const std::string& redirect_uri) {
  if (!oidc_login_enabled()) throw std::logic_error("no identity provider login is configured");
  FlowStart out;
  out.flow_cookie_value = RandomToken(32);
  db::AuthStore::LoginFlow f;
  f.state = RandomToken(24);
  f.nonce = RandomToken(24);
  f.code_verifier = RandomToken(48);  // 64 characters: RFC 7636 allows 43 to 128
  f.browser_hash_hex = Hex(Sha256(out.flow_cookie_value));
  f.next_path = next_path;
  db_.Transact([&](db::ResourceStore& st) { db::AuthStore(st).SaveLoginFlow(f, 600); });
  const std::string challenge = jose::Base64UrlEncode(Sha256(f.code_verifier));
  const std::string& ep = config_.oidc_authorization_endpoint;
  out.redirect_url = ep + (ep.find('?') == std::string::npos ? "?" : "&") + "response_type=code&client_id=" +
                     PercentEncode(config_.oidc_client_id) + "&redirect_uri=" + PercentEncode(redirect_uri) +
                     "&scope=" + PercentEncode(config_.oidc_scope) + "&state=" + f.state + "&nonce=" + f.nonce +
                     "&code_challenge=" + challenge + "&code_challenge_method=S256";
  return out;
}

People::Callback People::FinishOidcLogin(const std::string& code, const std::string& state,
                                         const std::string& flow_cookie, const std::string& redirect_uri,
                                         const std::string& address) {
  Callback out;
  auto fail = [&](std::string why) {
    out.ok = false;
    out.reason = std::move(why);
    return out;
  };
  if (!oidc_login_enabled()) return fail("no identity provider login is configured");
  if (state.empty() || state.size() > 128 || code.empty() || code.size() > 4096) return fail("missing or oversized code or state");
  std::optional<db::AuthStore::LoginFlow> flow;
  db_.Transact([&](db::ResourceStore& st) { flow = db::AuthStore(st).TakeLoginFlow(state); });
  if (!flow) return fail("unknown, used or expired login state");
  if (!SameSecret(Hex(Sha256(flow_cookie)), flow->browser_hash_hex)) {
    return fail("the login was started by another browser (flow cookie missing or different)");
  }
  out.next_path = flow->next_path;
  // The code for tokens, at the provider's token endpoint (RFC 6749 4.1.3 with RFC 7636's verifier).
  std::string id_token;
  try {
    web::http::client::http_client_config cfg;
    cfg.set_timeout(std::chrono::seconds(15));
    web::http::client::http_client client(config_.oidc_token_endpoint, cfg);
    web::http::http_request rq(web::http::methods::POST);
    std::string body = "grant_type=authorization_code&code=" + PercentEncode(code) + "&redirect_uri=" +
                       PercentEncode(redirect_uri) + "&code_verifier=" + flow->code_verifier;
    if (config_.oidc_client_secret.empty()) {
      body += "&client_id=" + PercentEncode(config_.oidc_client_id);
    } else {
      // client_secret_basic (RFC 6749 2.3.1): both parts form-encoded, then Base64.
      std::string basic = PercentEncode(config_.oidc_client_id) + ":" + PercentEncode(config_.oidc_client_secret);
      std::string b64(sodium_base64_ENCODED_LEN(basic.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
      sodium_bin2base64(b64.data(), b64.size(), reinterpret_cast<const unsigned char*>(basic.data()), basic.size(),
                        sodium_base64_VARIANT_ORIGINAL);
      b64.resize(std::strlen(b64.c_str()));
      rq.headers().add("Authorization", "Basic " + b64);
    }
    rq.headers().add("Accept", "application/json");
    rq.set_body(body, "application/x-www-form-urlencoded");
    web::http::http_response resp = client.request(rq).get();
    std::string text = resp.extract_utf8string(true).get();
    if (resp.status_code() != 200) {
      return fail("the provider's token endpoint answered " + std::to_string(resp.status_code()) + ": " + text.substr(0, 300));
    }
    rapidjson::Document doc;
    doc.Parse(text.c_str(), text.size());
    if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("id_token") || !doc["id_token"].IsString()) {
      return fail("the provider's token answer has no id_token");
    }
    id_token = doc["id_token"].GetString();
  } catch (const std::exception& e) {
    return fail(std::string("the provider's token endpoint cannot be reached: ") + e.what());
  }
  Authenticator::IdToken t;
  try {
    t = authenticator_.VerifyIdToken(id_token, config_.oidc_client_id, flow->nonce, NowSeconds());
  } catch (const std::invalid_argument& e) {
    return fail(e.what());
  }
  // The role and sites: the provider's claims, else the local account linked to this subject.
  std::string role = t.role ? RoleName(*t.role) : "";
  std::string sites = JoinSites(t.sites);
  std::string login = t.login, name = t.name, practitioner = t.practitioner;
  std::optional<db::AuthStore::User> linked;
  db_.Read([&](db::ResourceStore& st) {
    linked = db::AuthStore(st).FindUserByOidc(authenticator_.oidc().issuer, t.subject);
  });
  if (linked) {
    if (linked->disabled) return fail("the local account linked to this provider account is disabled");
    if (role.empty()) {
      role = linked->role;
      sites = linked->sites;
    }
    login = linked->login;
    if (name == t.login) name = linked->display_name;
    if (!linked->practitioner.empty()) practitioner = linked->practitioner;
  }
  if (role.empty()) return fail("the provider's account carries no FLS role and is linked to no local account");
  Login s = OpenSession(login, name, authenticator_.oidc().issuer, role, sites, practitioner, address);
  static_cast<Login&>(out) = s;
  out.reason = "identity provider login";
  return out;
}

}  // namespace fls::server
