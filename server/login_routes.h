#pragma once
// The endpoints of people's logins (server/people.h, docs/security.md "People"):
//   GET  /login                 the login page (French, English with ?lang=en); with a live
//                               session, who is logged in and a log-out button
//   POST /auth/login            a local account's login and password (form or JSON)
//   POST /auth/logout           ends the session (its CSRF token in X-CSRF-Token or the form)
//   GET  /auth/session          who the request acts for, and the session's CSRF token
//   GET  /auth/oidc/login       to the hospital's provider (authorization code + PKCE)
//   GET  /auth/oidc/callback    back from it

#include <string>

#include "server/people.h"
#include "server/rate_limit.h"
#include "server/router.h"

namespace fls::server {

struct LoginRoutesContext {
  People& people;
  RateLimiter* limiter = nullptr;  // login attempts count against the address's anonymous budget
  std::string public_url;          // FLS_PUBLIC_URL ("" = the request's base URL, loopback only)
};

// REQUIRES: the objects the context refers to outlive the router.
void RegisterLoginRoutes(Router& router, const LoginRoutesContext& ctx);

// The headers of every HTML page of ours (the login page, the built pages): its caching and
// Content-Security-Policy, no framing, no sniffing, a same-origin referrer.
void HtmlPageHeaders(HttpResponse& r, const std::string& cache_control, const std::string& csp);

// A `next` parameter made safe: a path on this server ("/..."), never "//host" or a URL; "/login"
// when it is not one.
std::string SafeNextPath(const std::string& next);

}  // namespace fls::server
