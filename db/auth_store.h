#pragma once
// SQL of access control (migrations 010 and 011). Used inside a transaction, through the ResourceStore of
// that transaction. Not thread-safe (one per transaction).

#include <optional>
#include <string>
#include <vector>

#include "db/resource_store.h"

namespace fls::db {

class AuthStore {
 public:
  explicit AuthStore(ResourceStore& store);
  // Records a client assertion's jti; false when the client used it before (a replay). Deletes a
  // few expired rows on the way.
  // `now_s` is the server's clock, the one the assertion's exp was checked against.
  bool ClaimJti(const std::string& client_id, const std::string& jti, long long expires_at_s, long long now_s);

  // People (migration 011). Sites travel as space-separated Organization references.
  struct User {
    std::string login, display_name, role, sites, password_hash, oidc_issuer, oidc_subject;
    std::string practitioner;  // "Practitioner/id" this login is (its fhirUser), or empty
    int failed_logins = 0;
    long long locked_until_s = 0;  // 0: not locked
    bool disabled = false;
    long long created_at_s = 0, last_login_at_s = 0;
  };
  // Adds or replaces the account (its password hash kept when `user.password_hash` is empty and
  // `keep_password`); every session of the login ends. False when keep_password and none exists.
  void UpsertUser(const User& user, bool keep_password);
  std::optional<User> FindUser(const std::string& login);
  std::optional<User> FindUserByOidc(const std::string& issuer, const std::string& subject);
  std::vector<User> ListUsers();
  bool RemoveUser(const std::string& login);
  // Ends every session of the login; the number ended.
  int EndSessionsOf(const std::string& login);
  bool SetDisabled(const std::string& login, bool disabled);
  bool Unlock(const std::string& login);

  // A login attempt, counted before the password is checked so that concurrent guesses cannot
  // overrun the limit: nullopt when the account is unknown, disabled or locked; else the account
  // with its failure count including this attempt.
  std::optional<User> BeginLogin(const std::string& login);
  void LoginSucceeded(const std::string& login);
  // Locks the account for `lockout_s` once `max_failures` attempts in a row failed.
  void LoginFailed(const std::string& login, int max_failures, int lockout_s);

  struct Session {
    std::string login, display_name, issuer, role, sites, csrf, practitioner;
    long long created_at_s = 0, last_seen_at_s = 0, expires_at_s = 0;
  };
  void CreateSession(const std::string& id_hash_hex, const Session& s, const std::string& address);
  // The session if it exists, has not expired and was seen within `idle_s`; its last_seen_at is
  // moved forward when it is more than a minute old.
  std::optional<Session> FindSession(const std::string& id_hash_hex, int idle_s);
  bool EndSession(const std::string& id_hash_hex);

  struct LoginFlow {
    std::string state, browser_hash_hex, nonce, code_verifier, next_path;
  };
  void SaveLoginFlow(const LoginFlow& flow, int lifetime_s);
  // Deletes and returns the flow of `state` unless it expired: a state works once.
  std::optional<LoginFlow> TakeLoginFlow(const std::string& state);

 private:
  soci::session& sql_;
};

}  // namespace fls::db
