#pragma once
// Who may do what (docs/security.md). Systems authenticate with SMART Backend Services (a signed
// client assertion exchanged at POST /auth/token for a short-lived access token); the server's
// own access tokens are JWTs signed with its signing key (ES256), checked on every request; a
// hospital's OpenID Connect provider's tokens are accepted when its issuer and keys are
// configured. Scopes (SMART v1 `system/Patient.read`, v2 `system/Patient.rs`) say which types and
// interactions a token may use; the role of the client (ehr, coordinator, quality, admin) caps
// them, whatever the token asks for. Every route declares its Access; the router refuses to start
// with a route that has none.
//
// Thread safety: Scope, Principal and Access are values. ClientRegistry, SigningKeys and
// Authenticator are safe across threads (internal mutexes guard their caches and reloads).

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "server/jose.h"

namespace fls::server {

enum class Role { kEhr, kCoordinator, kQuality, kAdmin };
const char* RoleName(Role r);
std::optional<Role> ParseRole(std::string_view name);
// "Practitioner/{id}" with a FHIR id (1-64 of A-Z a-z 0-9 - .): a person's fhirUser here.
bool IsPractitionerReference(std::string_view ref);

// Interactions as the letters of SMART v2: c(reate) r(ead) u(pdate) d(elete) s(earch).
enum Interaction : uint8_t { kCreate = 1, kRead = 2, kUpdate = 4, kDelete = 8, kSearch = 16 };
constexpr uint8_t kAllInteractions = kCreate | kRead | kUpdate | kDelete | kSearch;
// The v2 letters of a set of interactions, in cruds order ("rs").
std::string InteractionLetters(uint8_t interactions);

// One scope: `system/Patient.rs`, `system/*.read`, `user/Task.cruds`. The context (system, user,
// patient) is kept; the server grants system and user scopes only (no patient launch).
struct Scope {
  std::string context;  // system | user | patient
  std::string type;     // a resource type or "*"
  uint8_t interactions = 0;
  std::string text;     // as requested
};
// nullopt for anything that is not a SMART v1 or v2 resource scope (openid, launch, v2 query
// suffixes such as `?category=`, unknown letters, letters out of order).
std::optional<Scope> ParseScope(std::string_view text);
// Space-separated; unknown scopes are returned in `refused` and otherwise ignored.
std::vector<Scope> ParseScopes(std::string_view text, std::vector<std::string>* refused = nullptr);

// What a role may ever do on a type, whatever its scopes say (server/auth.cpp has the table;
// docs/security.md prints it). AuditEvent is never written through the API, by anyone.
uint8_t RoleCeiling(Role role, std::string_view type);
// The scopes of a role when the client asks for none, and the ceiling's own scope text.
std::string DefaultScopes(Role role);

// The FLS operations a role may call, by name ("event", "contact", "call-list"...).
bool RoleMayCall(Role role, std::string_view operation);

// Who sent the request.
struct Principal {
  std::string subject;    // the client id (systems) or the user's login (people)
  std::string client_id;  // the client the token was issued to; "fls-web" for a browser session
  std::string issuer;     // "" for the server's own tokens, else the OpenID Connect issuer
  Role role = Role::kEhr;
  std::vector<Scope> scopes;
  std::vector<std::string> sites;  // "Organization/x" a coordinator works for; empty: none
  int64_t expires_at = 0;          // seconds since the epoch
  std::string display_name;        // a person's name (browser sessions); empty for systems
  std::string practitioner;        // "Practitioner/id" the person is (SMART's fhirUser), or empty

  // Whether the scopes and the role both allow `interaction` on `type`.
  bool May(std::string_view type, uint8_t interaction) const;
  // Whether the scopes alone allow it (the FLS operations: the role is checked by RoleMayCall).
  bool ScopesAllow(std::string_view type, uint8_t interaction) const;
};

// What a route needs; declared with each route (server/router.h).
struct Access {
  enum class Kind {
    kUndeclared,  // the router refuses to start with such a route
    kPublic,      // no token: /metadata, /.well-known/*, the token endpoint
    kData,        // a token whose scopes and role allow `interaction` on the path's {type} (or `type`)
    kBundle,      // a token; each entry of the Bundle is checked on its own (fhir/transaction.cpp)
    kOperation,   // a token, a role that may call `operation`, and `interaction` on `type`
    kAdmin,       // the admin role
    kAuthenticated,  // any valid token or browser session (who am I, log out)
  };
  Kind kind = Kind::kUndeclared;
  uint8_t interaction = 0;
  std::string type;       // "" for the path's {type}
  std::string operation;  // kOperation
  bool audited = true;    // an AuditEvent for each request (fhir/audit.h)

  static Access Public() { return {Kind::kPublic, 0, "", "", false}; }
  // Public, and audited: the token endpoint (every refused attempt leaves a trace).
  static Access PublicAudited() { return {Kind::kPublic, 0, "", "", true}; }
  static Access Data(uint8_t interaction, std::string type = "") { return {Kind::kData, interaction, std::move(type), "", true}; }
  static Access Bundle() { return {Kind::kBundle, 0, "", "", true}; }
  static Access Operation(std::string op, std::string type, uint8_t interaction) {
    return {Kind::kOperation, interaction, std::move(type), std::move(op), true};
  }
  static Access Admin() { return {Kind::kAdmin, 0, "", "", true}; }
  static Access Authenticated() { return {Kind::kAuthenticated, 0, "", "", true}; }
  // "public", "Patient r", "operation event (EpisodeOfCare u)"... for the route matrix and logs.
  std::string Describe() const;
};

// A registered system (a hospital EHR, an interface engine, the phone platform, the warehouse).
struct RegisteredClient {
  std::string client_id;
  std::string name;
  Role role = Role::kEhr;
  std::string scope;               // the most it may ask for ("" = the role's default)
  std::vector<std::string> sites;  // for coordinators: the Organizations it works for
  std::string jwks_json;           // its public keys
  std::shared_ptr<const jose::KeySet> keys;
};

// The clients file (FLS_CLIENTS_FILE, JSON; written by `fls-server client add`). Re-read when its
// modification time changes, so a new client or a rotated key needs no restart.
class ClientRegistry {
 public:
  explicit ClientRegistry(std::string path);
  // nullptr when unknown. The file is checked for changes at most once a second.
  std::shared_ptr<const RegisteredClient> Find(const std::string& client_id);
  const std::string& path() const { return path_; }

  // The file's clients, parsed; throws std::invalid_argument on a malformed file. An absent file is
  // no clients.
  static std::vector<RegisteredClient> Load(const std::string& path);
  // Adds or replaces the client (same client_id), writing the file atomically (mode 0600).
  static void Save(const std::string& path, const RegisteredClient& client);
  static bool Remove(const std::string& path, const std::string& client_id);

 private:
  void ReloadIfChanged();
  std::string path_;
  std::mutex mu_;
  int64_t checked_at_ms_ = 0;
  int64_t mtime_ns_ = -1;
  std::map<std::string, std::shared_ptr<const RegisteredClient>> clients_;
};

// The server's signing keys: `signing-*.pem` in the auth folder. The newest (its kid sorts last)
// signs; all verify, so a rotation (`fls-server keys rotate`) never cuts tokens already issued.
// A folder without a key gets one (EC P-256), written atomically, so several processes starting
// together on one folder end with one key.
// A key this process does not know (another process's first key, a rotation elsewhere) makes it
// read the folder again, at most once every 5 seconds.
class SigningKeys {
 public:
  explicit SigningKeys(std::string dir);
  std::shared_ptr<const jose::Key> Current() const;
  std::shared_ptr<const jose::Key> Find(std::string_view kid) const;
  std::vector<std::shared_ptr<const jose::Key>> All() const;
  // Writes a new key; the next start (or SigningKeys) signs with it.
  static std::string Rotate(const std::string& dir);

 private:
  void Load() const;  // REQUIRES: mu_ held
  std::string dir_;
  mutable std::mutex mu_;
  mutable int64_t loaded_at_ms_ = 0;
  mutable std::vector<std::shared_ptr<const jose::Key>> keys_;
};

struct OidcConfig {
  std::string issuer;          // FLS_OIDC_ISSUER; empty: no provider
  std::string jwks_file;       // FLS_OIDC_JWKS_FILE: the provider's keys
  std::string audience;        // FLS_OIDC_AUDIENCE: the `aud` tokens must carry
  std::string role_claim = "fls_role";    // FLS_OIDC_ROLE_CLAIM
  std::string sites_claim = "fls_sites";  // FLS_OIDC_SITES_CLAIM: array of Organization/x
};

// Issues and checks access tokens.
class Authenticator {
 public:
  Authenticator(const SigningKeys& keys, std::string issuer, OidcConfig oidc = {});

  // An access token for `client` with `scopes` (already capped by the role), valid `lifetime_s`.
  std::string Issue(const RegisteredClient& client, const std::vector<Scope>& scopes, int64_t now_s,
                    int64_t lifetime_s) const;
  // The Principal of a bearer token; throws FhirError(kUnauthorized) with a WWW-Authenticate
  // header naming the problem (expired, bad signature, unknown issuer...). Verified tokens are
  // cached until they expire (a token is typically used for hundreds of requests).
  std::shared_ptr<const Principal> Authenticate(std::string_view token, int64_t now_s) const;

  const std::string& issuer() const { return issuer_; }
  const OidcConfig& oidc() const { return oidc_; }

  // An OpenID Connect ID token from the provider's token endpoint (the authorization-code login of
  // people, server/people.h): signed by a key of the provider's JWKS with an algorithm that key
  // allows, iss = the configured issuer, aud holding `client_id` (and azp = client_id when there
  // are several audiences), exp in the future, iat not in the future, nonce = `nonce`. Throws
  // std::invalid_argument saying what is wrong.
  struct IdToken {
    std::string subject, login, name;  // login: preferred_username, else sub
    std::optional<Role> role;          // from the role claim, when it names a role
    std::vector<std::string> sites;    // from the sites claim
    std::string practitioner;          // the fhirUser claim, when it is "Practitioner/id"
    int64_t expires_at = 0;
  };
  IdToken VerifyIdToken(std::string_view id_token, const std::string& client_id, const std::string& nonce,
                        int64_t now_s) const;

 private:
  std::shared_ptr<const Principal> Verify(std::string_view token, int64_t now_s) const;
  const SigningKeys& keys_;
  std::string issuer_;
  OidcConfig oidc_;
  std::shared_ptr<const jose::KeySet> oidc_keys_;
  mutable std::mutex mu_;
  mutable std::map<std::string, std::shared_ptr<const Principal>, std::less<>> cache_;
};

// Why a client assertion was refused: the OAuth error code (RFC 6749 5.2) and its description.
struct TokenError {
  int status;  // 400 or 401
  std::string error;
  std::string description;
};

// Checks a client assertion as SMART Backend Services says: JWS signed RS384 or ES384 with the key
// its `kid` names in the client's JWKS; iss = sub = a registered client; aud = `token_url`; exp in
// the future and at most 5 minutes ahead; a `jti`. Returns the client, or the error. The jti's
// uniqueness is the caller's (it needs the database).
struct AssertionCheck {
  std::shared_ptr<const RegisteredClient> client;
  std::string claimed_client;  // the assertion's iss, verified or not (for the audit trail)
  std::string jti;
  int64_t exp = 0;
  std::optional<TokenError> error;
};
AssertionCheck CheckClientAssertion(ClientRegistry& registry, std::string_view assertion,
                                    const std::vector<std::string>& token_urls, int64_t now_s);

// application/x-www-form-urlencoded: name -> value ('+' is a space, %XX decoded). Throws
// std::invalid_argument on a bad escape or a repeated name.
std::map<std::string, std::string> ParseForm(std::string_view body);

}  // namespace fls::server
