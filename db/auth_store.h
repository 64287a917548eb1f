#pragma once
// SQL of access control (migration 010). Used inside a transaction, through the ResourceStore of
// that transaction. Not thread-safe (one per transaction).

#include <string>

#include "db/resource_store.h"

namespace fls::db {

class AuthStore {
 public:
  explicit AuthStore(ResourceStore& store);
  // Records a client assertion's jti; false when the client used it before (a replay). Deletes a
  // few expired rows on the way.
  // `now_s` is the server's clock, the one the assertion's exp was checked against.
  bool ClaimJti(const std::string& client_id, const std::string& jti, long long expires_at_s, long long now_s);

 private:
  soci::session& sql_;
};

}  // namespace fls::db
