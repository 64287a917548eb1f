#pragma once
// People's logins (docs/security.md, "People"): the coordinators, nurses, quality analysts and
// administrators who use the web pages. Two ways in:
//  - a local account (fls_user, `fls-server user add`): the password checked against its Argon2id
//    hash (libsodium's crypto_pwhash_str), the account locked for FLS_LOGIN_LOCKOUT_S after
//    FLS_LOGIN_MAX_FAILURES failures in a row;
//  - the hospital's OpenID Connect provider: the authorization-code flow with PKCE (S256), state
//    and nonce, the ID token checked by Authenticator::VerifyIdToken.
// Either ends in a browser session (fls_session): a random secret in an HttpOnly, Secure,
// SameSite=Strict cookie, the database keeping only its SHA-256; an idle timeout and an absolute
// lifetime; a CSRF token that every state-changing request made with the cookie must echo in
// X-CSRF-Token. The router (server/router.cpp) turns a session into a Principal.
//
// Thread safety: People is safe across threads (the database is; the rest is immutable).

#include <cstdint>
#include <memory>
#include <optional>
#include <semaphore>
#include <string>
#include <string_view>

#include "db/database.h"
#include "server/auth.h"

namespace fls::server {

struct PeopleConfig {
  int max_failures = 5;             // FLS_LOGIN_MAX_FAILURES
  int lockout_s = 900;              // FLS_LOGIN_LOCKOUT_S
  int session_idle_s = 1800;        // FLS_SESSION_IDLE_S
  int session_lifetime_s = 43200;   // FLS_SESSION_LIFETIME_S
  std::string public_url;           // FLS_PUBLIC_URL: https there gives the __Host- cookie names
  // The provider's login flow (all four set, or none): FLS_OIDC_CLIENT_ID,
  // FLS_OIDC_CLIENT_SECRET_FILE (optional: a public client uses PKCE alone),
  // FLS_OIDC_AUTHORIZATION_ENDPOINT, FLS_OIDC_TOKEN_ENDPOINT.
  std::string oidc_client_id, oidc_client_secret, oidc_authorization_endpoint, oidc_token_endpoint;
  std::string oidc_scope = "openid profile";  // FLS_OIDC_LOGIN_SCOPE
};

// Argon2id through libsodium (crypto_pwhash_str, the "interactive" limits: 2 passes, 64 MiB).
std::string HashPassword(std::string_view password);
bool VerifyPassword(const std::string& hash, std::string_view password);
// Why a new password is refused (nullopt: acceptable): at least 12 characters, at most 256 bytes,
// valid UTF-8, not the login.
std::optional<std::string> PasswordProblem(std::string_view password, std::string_view login);
// Logins are lower-cased; letters, digits and . _ - @, 1 to 128 characters.
std::optional<std::string> NormaliseLogin(std::string_view login);

// A cookie's value from a Cookie header ("a=1; b=2"); nullopt when absent.
std::optional<std::string> CookieValue(std::string_view cookie_header, std::string_view name);

// A request's browser session, resolved.
struct CookieSession {
  std::shared_ptr<const Principal> principal;
  std::string csrf;
  std::string id_hash;  // hex SHA-256 of the cookie's secret
};

class People {
 public:
  // REQUIRES: `db` and `authenticator` outlive this object.
  People(db::Database& db, const Authenticator& authenticator, PeopleConfig config);

  const PeopleConfig& config() const { return config_; }
  bool oidc_login_enabled() const { return !config_.oidc_client_id.empty(); }
  const std::string& oidc_issuer() const { return authenticator_.oidc().issuer; }
  // A fresh random value for the login form's double-submit cookie.
  static std::string NewLoginCsrf();
  // "__Host-fls-session" behind https, "fls-session" on a plain-http loopback server.
  std::string SessionCookieName() const;
  std::string FlowCookieName() const;
  std::string LoginCsrfCookieName() const;
  // A Set-Cookie value: HttpOnly (unless readable_by_script), Secure, SameSite, Path; Max-Age 0
  // deletes.
  std::string SetCookie(const std::string& name, const std::string& value, int max_age_s, const char* same_site,
                        bool readable_by_script = false, const std::string& path = "/") const;

  // The session named by the request's Cookie header, when it is alive.
  std::optional<CookieSession> FromCookies(std::string_view cookie_header) const;

  struct Login {
    bool ok = false;
    std::string reason;        // for the log and the audit trail only (never shown)
    std::string cookie_value;  // the session's secret, for Set-Cookie
    std::string csrf;
    std::string login, role;
  };
  // Checks a local account's password (at most as many Argon2 checks at once as there are cores)
  // and opens a session. Unknown logins cost a hash check too, so timing does not tell them.
  Login PasswordLogin(std::string_view login, std::string_view password, const std::string& address);
  bool Logout(const std::string& id_hash);

  // The provider's login: where to send the browser, and the cookie binding the flow to it.
  struct FlowStart {
    std::string redirect_url;
    std::string flow_cookie_value;
  };
  FlowStart StartOidcLogin(const std::string& next_path, const std::string& redirect_uri);
  // The callback: the flow of `state` (once, bound to the cookie), the code exchanged at the token
  // endpoint with the PKCE verifier, the ID token checked, a session opened. On failure `ok` is
  // false and `reason` says why.
  struct Callback : Login {
    std::string next_path = "/";
  };
  Callback FinishOidcLogin(const std::string& code, const std::string& state, const std::string& flow_cookie,
                           const std::string& redirect_uri, const std::string& address);

 private:
  Login OpenSession(const std::string& login, const std::string& display_name, const std::string& issuer,
                    const std::string& role, const std::string& sites, const std::string& practitioner,
                    const std::string& address);
  db::Database& db_;
  const Authenticator& authenticator_;
  PeopleConfig config_;
  std::string dummy_hash_;
  mutable std::counting_semaphore<64> hashing_;
};

// The scopes of a person's session: the role's own (DefaultScopes) in the user context.
std::vector<Scope> SessionScopes(Role role);

}  // namespace fls::server
