#pragma once
// The route table: method + path pattern -> handler, with the FHIR interaction each route serves
// (the CapabilityStatement is generated from it). A path that matches a pattern under another
// method answers 405 with Allow. No cpprest here: requests arrive as plain structs.
// Routes are added before serving; Dispatch is then safe across threads.

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "fhir/audit.h"
#include "fhir/search_request.h"
#include "server/auth.h"
#include "server/rate_limit.h"

namespace fls::server {

struct HttpRequest {
  std::string method;
  std::vector<std::string> segments;  // percent-decoded path segments
  std::string raw_query;              // as received, without '?'
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;
  std::string request_id;
  std::string base_url;
  // Filled by the router from the pattern: "type", "id", "vid", "op".
  std::map<std::string, std::string> params;
  // Filled by the router from the bearer token before the handler runs (null on public routes).
  std::shared_ptr<const Principal> principal;
  std::string peer;  // the client's address, for the audit trail

  const std::string* Header(const std::string& lower_name) const;
};

struct HttpResponse {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string content_type = "application/fhir+json; charset=utf-8";
};

using Handler = std::function<HttpResponse(HttpRequest&)>;

struct RouteInfo {
  std::string method;
  std::string pattern;      // e.g. "/{type}/{id}/_history/{vid}"
  std::string interaction;  // R4 interaction code, or "" for non-FHIR routes
  bool system_level = false;
  Access access;            // what the route needs (server/auth.h)
};

// How the router checks tokens: with the Authenticator, or (explicitly, on loopback only) not at
// all, every request then acting as an administrator.
class People;
struct AuthPolicy {
  const Authenticator* authenticator = nullptr;
  bool disabled = false;
  RateLimiter* limiter = nullptr;  // none: no rate or concurrency limits
  // People's browser sessions (server/people.h); none: bearer tokens only. A request without an
  // Authorization header is then served for the session its cookie names; a state-changing one
  // (not GET, HEAD, OPTIONS) also needs X-CSRF-Token = the session's CSRF token and, when it
  // carries an Origin header, the server's own origin (`origin`, from FLS_PUBLIC_URL; on loopback
  // without one, the request's own base URL).
  const People* people = nullptr;
  std::string origin;
};

class Router {
 public:
  // `pattern` segments: literals, "{type}" (a resource type, checked by `is_type`), "{id}",
  // "{vid}", "{op}" (a segment starting with '$'). Earlier routes win. Every route declares its
  // Access: an undeclared one throws std::logic_error, so the server does not start.
  void Add(const std::string& method, const std::string& pattern, const std::string& interaction,
           bool system_level, Access access, Handler handler);
  void SetAuth(AuthPolicy policy) { auth_ = policy; }
  // Where each audited request's record goes once it is answered (fhir::WriteAudit); none: not
  // recorded (unit tests). A failure to record a successful read is a failure of the request.
  void SetAuditor(std::function<void(const fhir::AuditRecord&)> auditor) { auditor_ = std::move(auditor); }
  void SetTypeCheck(std::function<bool(const std::string&)> is_type) { is_type_ = std::move(is_type); }

  // Runs the matching handler. HEAD runs the GET route (the listener drops the body). Throws
  // FhirError: 404 for no route or unknown type, 405 with an Allow header when only the method
  // differs, 401 without a valid token on a route that needs one, 403 when the token's scopes or
  // role do not allow the route.
  HttpResponse Dispatch(HttpRequest& request) const;

  // The methods of the routes whose pattern matches the request's path, HEAD with GET, OPTIONS
  // always ("GET, HEAD, OPTIONS, POST"): the Allow header of 405 and OPTIONS answers.
  std::string AllowedMethods(const HttpRequest& request) const;

  std::vector<RouteInfo> Routes() const;

  // The access check Dispatch runs before a route's handler: sets req.principal from the bearer
  // token, or throws FhirError 401 (no or bad token) or 403 (scopes or role). Public for the
  // route x role matrix test.
  void Authorize(const RouteInfo& route, HttpRequest& req) const;

 private:
  struct Route {
    RouteInfo info;
    std::vector<std::string> segments;
    Handler handler;
  };
  bool Match(const Route& route, const HttpRequest& req, std::map<std::string, std::string>& params,
             std::string& unknown_type) const;

  HttpResponse AuditedCall(const RouteInfo& route, const Handler& handler, HttpRequest& req) const;
  // Authorize, the client's rate and concurrency limits (429), then the handler.
  HttpResponse Run(const RouteInfo& route, const Handler& handler, HttpRequest& req) const;
  void Throttle(const std::string& key, bool anonymous) const;
  void SessionFromCookie(const std::string& cookies, HttpRequest& req) const;

  std::vector<Route> routes_;
  std::function<bool(const std::string&)> is_type_;
  AuthPolicy auth_;
  std::function<void(const fhir::AuditRecord&)> auditor_;
};

}  // namespace fls::server
