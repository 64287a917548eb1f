#include "db/auth_store.h"

#include <soci/soci.h>

namespace fls::db {

AuthStore::AuthStore(ResourceStore& store) : sql_(store.sql_) {}

bool AuthStore::ClaimJti(const std::string& client_id, const std::string& jti, long long expires_at_s,
                         long long now_s) {
  // Rows whose assertion can no longer pass the exp check (the server's clock, with its 30 s of
  // skew, and a margin) cannot be replayed, so they may go; the database's clock does not decide.
  sql_ << "DELETE FROM auth_jti WHERE ctid = ANY(ARRAY(SELECT ctid FROM auth_jti WHERE expires_at < "
          "to_timestamp(:n) - interval '5 minutes' LIMIT 100))",
      soci::use(now_s);
  int inserted = 0;
  sql_ << "WITH ins AS (INSERT INTO auth_jti (client_id, jti, expires_at) VALUES (:c, :j, to_timestamp(:e)) "
          "ON CONFLICT DO NOTHING RETURNING 1) SELECT count(*)::int FROM ins",
      soci::use(client_id), soci::use(jti), soci::use(expires_at_s), soci::into(inserted);
  return inserted == 1;
}

}  // namespace fls::db

namespace fls::db {

namespace {

// The columns of fls_user, NULLs folded, times as epoch seconds, in User's order.
constexpr const char* kUserColumns =
    "login, display_name, role, array_to_string(sites, ' '), coalesce(password_hash, ''), "
    "coalesce(oidc_issuer, ''), coalesce(oidc_subject, ''), failed_logins, "
    "coalesce(extract(epoch from locked_until)::bigint, 0), disabled::int, extract(epoch from created_at)::bigint, "
    "coalesce(extract(epoch from last_login_at)::bigint, 0), coalesce(practitioner, '')";

AuthStore::User UserFrom(const soci::row& r) {
  AuthStore::User u;
  u.login = r.get<std::string>(0);
  u.display_name = r.get<std::string>(1);
  u.role = r.get<std::string>(2);
  u.sites = r.get<std::string>(3);
  u.password_hash = r.get<std::string>(4);
  u.oidc_issuer = r.get<std::string>(5);
  u.oidc_subject = r.get<std::string>(6);
  u.failed_logins = r.get<int>(7);
  u.locked_until_s = r.get<long long>(8);
  u.disabled = r.get<int>(9) != 0;
  u.created_at_s = r.get<long long>(10);
  u.last_login_at_s = r.get<long long>(11);
  u.practitioner = r.get<std::string>(12);
  return u;
}

}  // namespace

void AuthStore::UpsertUser(const User& u, bool keep_password) {
  const int keep = keep_password ? 1 : 0;
  sql_ << "INSERT INTO fls_user (login, display_name, role, sites, password_hash, oidc_issuer, oidc_subject, "
          "disabled, password_changed_at, practitioner) VALUES (:l, :n, :r, coalesce(string_to_array(nullif(:s, ''), ' '), '{}'), "
          "nullif(:p, ''), nullif(:oi, ''), nullif(:os, ''), :d::int::boolean, CASE WHEN :p2 = '' THEN NULL ELSE now() END, "
          "nullif(:pr, '')) "
          "ON CONFLICT (login) DO UPDATE SET display_name = excluded.display_name, role = excluded.role, "
          "sites = excluded.sites, oidc_issuer = excluded.oidc_issuer, oidc_subject = excluded.oidc_subject, "
          "disabled = excluded.disabled, practitioner = excluded.practitioner, "
          "password_hash = CASE WHEN :k = 1 AND excluded.password_hash IS NULL THEN fls_user.password_hash "
          "ELSE excluded.password_hash END, "
          "password_changed_at = CASE WHEN excluded.password_hash IS NULL THEN fls_user.password_changed_at "
          "ELSE now() END",
      soci::use(u.login), soci::use(u.display_name), soci::use(u.role), soci::use(u.sites), soci::use(u.password_hash),
      soci::use(u.oidc_issuer), soci::use(u.oidc_subject), soci::use(u.disabled ? 1 : 0), soci::use(u.password_hash),
      soci::use(u.practitioner), soci::use(keep);
  EndSessionsOf(u.login);
}

std::optional<AuthStore::User> AuthStore::FindUser(const std::string& login) {
  soci::rowset<soci::row> rs = (sql_.prepare << "SELECT " << kUserColumns << " FROM fls_user WHERE login = :l",
                                soci::use(login));
  for (const auto& r : rs) return UserFrom(r);
  return std::nullopt;
}

std::optional<AuthStore::User> AuthStore::FindUserByOidc(const std::string& issuer, const std::string& subject) {
  soci::rowset<soci::row> rs = (sql_.prepare << "SELECT " << kUserColumns
                                             << " FROM fls_user WHERE oidc_issuer = :i AND oidc_subject = :s",
                                soci::use(issuer), soci::use(subject));
  for (const auto& r : rs) return UserFrom(r);
  return std::nullopt;
}

std::vector<AuthStore::User> AuthStore::ListUsers() {
  std::vector<User> out;
  soci::rowset<soci::row> rs = (sql_.prepare << "SELECT " << kUserColumns << " FROM fls_user ORDER BY login");
  for (const auto& r : rs) out.push_back(UserFrom(r));
  return out;
}

bool AuthStore::RemoveUser(const std::string& login) {
  EndSessionsOf(login);
  soci::statement st = (sql_.prepare << "DELETE FROM fls_user WHERE login = :l", soci::use(login));
  st.execute(true);
  return st.get_affected_rows() > 0;
}

int AuthStore::EndSessionsOf(const std::string& login) {
  soci::statement st = (sql_.prepare << "DELETE FROM fls_session WHERE login = :l", soci::use(login));
  st.execute(true);
  return static_cast<int>(st.get_affected_rows());
}

bool AuthStore::SetDisabled(const std::string& login, bool disabled) {
  const int d = disabled ? 1 : 0;
  soci::statement st = (sql_.prepare << "UPDATE fls_user SET disabled = :d::int::boolean WHERE login = :l",
                        soci::use(d), soci::use(login));
  st.execute(true);
  const bool found = st.get_affected_rows() > 0;
  if (disabled) EndSessionsOf(login);
  return found;
}

bool AuthStore::Unlock(const std::string& login) {
  soci::statement st = (sql_.prepare << "UPDATE fls_user SET failed_logins = 0, locked_until = NULL WHERE login = :l",
                        soci::use(login));
  st.execute(true);
  return st.get_affected_rows() > 0;
}

std::optional<AuthStore::User> AuthStore::BeginLogin(const std::string& login) {
  // A lock that has run out starts a new count.
  soci::rowset<soci::row> rs =
      (sql_.prepare << "UPDATE fls_user SET "
                       "failed_logins = CASE WHEN locked_until IS NOT NULL THEN 1 ELSE failed_logins + 1 END, "
                       "locked_until = NULL "
                       "WHERE login = :l AND NOT disabled AND (locked_until IS NULL OR locked_until <= now()) "
                       "RETURNING "
                    << kUserColumns,
       soci::use(login));
  for (const auto& r : rs) return UserFrom(r);
  return std::nullopt;
}

void AuthStore::LoginSucceeded(const std::string& login) {
  sql_ << "UPDATE fls_user SET failed_logins = 0, locked_until = NULL, last_login_at = now() WHERE login = :l",
      soci::use(login);
}

void AuthStore::LoginFailed(const std::string& login, int max_failures, int lockout_s) {
  sql_ << "UPDATE fls_user SET locked_until = now() + make_interval(secs => :s) "
          "WHERE login = :l AND failed_logins >= :m AND locked_until IS NULL",
      soci::use(lockout_s), soci::use(login), soci::use(max_failures);
}

void AuthStore::CreateSession(const std::string& id_hash_hex, const Session& s, const std::string& address) {
  // A few expired sessions go on the way.
  sql_ << "DELETE FROM fls_session WHERE ctid = ANY(ARRAY(SELECT ctid FROM fls_session WHERE expires_at < now() "
          "LIMIT 100))";
  sql_ << "INSERT INTO fls_session (id_hash, login, display_name, issuer, role, sites, csrf, address, expires_at, practitioner) "
          "VALUES (decode(:h, 'hex'), :l, :n, :i, :r, coalesce(string_to_array(nullif(:s, ''), ' '), '{}'), :c, :a, to_timestamp(:e), "
          ":pr)",
      soci::use(id_hash_hex), soci::use(s.login), soci::use(s.display_name), soci::use(s.issuer), soci::use(s.role),
      soci::use(s.sites), soci::use(s.csrf), soci::use(address), soci::use(s.expires_at_s), soci::use(s.practitioner);
}

std::optional<AuthStore::Session> AuthStore::FindSession(const std::string& id_hash_hex, int idle_s) {
  std::optional<Session> out;
  int stale = 0;
  soci::rowset<soci::row> rs =
      (sql_.prepare << "SELECT login, display_name, issuer, role, array_to_string(sites, ' '), csrf, "
                       "extract(epoch from created_at)::bigint, extract(epoch from last_seen_at)::bigint, "
                       "extract(epoch from expires_at)::bigint, (last_seen_at < now() - interval '60 seconds')::int, "
                       "practitioner FROM fls_session WHERE id_hash = decode(:h, 'hex') AND expires_at > now() "
                       "AND last_seen_at > now() - make_interval(secs => :i)",
       soci::use(id_hash_hex), soci::use(idle_s));
  for (const auto& r : rs) {
    Session s;
    s.login = r.get<std::string>(0);
    s.display_name = r.get<std::string>(1);
    s.issuer = r.get<std::string>(2);
    s.role = r.get<std::string>(3);
    s.sites = r.get<std::string>(4);
    s.csrf = r.get<std::string>(5);
    s.created_at_s = r.get<long long>(6);
    s.last_seen_at_s = r.get<long long>(7);
    s.expires_at_s = r.get<long long>(8);
    stale = r.get<int>(9);
    s.practitioner = r.get<std::string>(10);
    out = std::move(s);
  }
  if (out && stale) {
    sql_ << "UPDATE fls_session SET last_seen_at = now() WHERE id_hash = decode(:h, 'hex')", soci::use(id_hash_hex);
  }
  return out;
}

bool AuthStore::EndSession(const std::string& id_hash_hex) {
  soci::statement st = (sql_.prepare << "DELETE FROM fls_session WHERE id_hash = decode(:h, 'hex')", soci::use(id_hash_hex));
  st.execute(true);
  return st.get_affected_rows() > 0;
}

void AuthStore::SaveLoginFlow(const LoginFlow& f, int lifetime_s) {
  sql_ << "DELETE FROM fls_login_flow WHERE ctid = ANY(ARRAY(SELECT ctid FROM fls_login_flow WHERE expires_at < now() "
          "LIMIT 100))";
  sql_ << "INSERT INTO fls_login_flow (state, browser_hash, nonce, code_verifier, next_path, expires_at) VALUES "
          "(:s, decode(:b, 'hex'), :n, :v, :p, now() + make_interval(secs => :t))",
      soci::use(f.state), soci::use(f.browser_hash_hex), soci::use(f.nonce), soci::use(f.code_verifier),
      soci::use(f.next_path), soci::use(lifetime_s);
}

std::optional<AuthStore::LoginFlow> AuthStore::TakeLoginFlow(const std::string& state) {
  std::optional<LoginFlow> out;
  soci::rowset<soci::row> rs =
      (sql_.prepare << "DELETE FROM fls_login_flow WHERE state = :s RETURNING state, encode(browser_hash, 'hex'), "
                       "nonce, code_verifier, next_path, (expires_at > now())::int",
       soci::use(state));
  for (const auto& r : rs) {
    if (r.get<int>(5) == 0) continue;
    LoginFlow f;
    f.state = r.get<std::string>(0);
    f.browser_hash_hex = r.get<std::string>(1);
    f.nonce = r.get<std::string>(2);
    f.code_verifier = r.get<std::string>(3);
    f.next_path = r.get<std::string>(4);
    out = std::move(f);
  }
  return out;
}

}  // namespace fls::db
