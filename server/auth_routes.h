#pragma once
// The authorization endpoints (SMART App Launch 2.x, Backend Services):
// GET /.well-known/smart-configuration, GET /.well-known/jwks.json, POST /auth/token.

#include <string>

#include "db/database.h"
#include "server/auth.h"
#include "server/router.h"

namespace fls::server {

struct AuthRoutesContext {
  ClientRegistry& clients;
  const SigningKeys& keys;
  const Authenticator& authenticator;
  db::Database& db;
  std::string public_url;     // FLS_PUBLIC_URL ("" = from the request's Host)
  int token_lifetime_s = 300;
};

// REQUIRES: the objects the context refers to outlive the router (the context itself is copied).
void RegisterAuthRoutes(Router& router, const AuthRoutesContext& ctx);

// The scopes granted to `client` for `requested`: system scopes only, each narrowed to what the
// role and the client's registered scope allow; scopes left with nothing are dropped.
std::vector<Scope> GrantScopes(const RegisteredClient& client, const std::vector<Scope>& requested);

}  // namespace fls::server
