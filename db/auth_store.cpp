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
