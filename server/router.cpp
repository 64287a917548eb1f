#include "server/router.h"

#include <chrono>
#include <climits>
#include <set>
#include <stdexcept>

#include "fhir/error.h"
#include "server/http_util.h"
#include "server/people.h"

namespace fls::server {

const std::string* HttpRequest::Header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  return it == headers.end() ? nullptr : &it->second;
}

void Router::Add(const std::string& method, const std::string& pattern, const std::string& interaction,
                 bool system_level, Access access, Handler handler) {
  if (access.kind == Access::Kind::kUndeclared) {
    throw std::logic_error("route " + method + " " + pattern + " declares no access: every route must");
  }
  Route r;
  r.info = {method, pattern, interaction, system_level, std::move(access)};
  size_t start = 1;
  while (start <= pattern.size() && pattern.size() > 1) {
    size_t slash = pattern.find('/', start);
    if (slash == std::string::npos) slash = pattern.size();
    r.segments.push_back(pattern.substr(start, slash - start));
    start = slash + 1;
  }
  r.handler = std::move(handler);
  routes_.push_back(std::move(r));
}

bool Router::Match(const Route& route, const HttpRequest& req, std::map<std::string, std::string>& params,
                   std::string& unknown_type) const {
  if (route.segments.size() != req.segments.size()) return false;
  for (size_t i = 0; i < route.segments.size(); ++i) {
    const std::string& pat = route.segments[i];
    const std::string& seg = req.segments[i];
    if (pat == "{type}") {
      if (seg.empty() || seg[0] < 'A' || seg[0] > 'Z') return false;
      if (is_type_ && !is_type_(seg)) {
        unknown_type = seg;
        return false;
      }
      params["type"] = seg;
    } else if (pat == "{op}") {
      if (seg.size() < 2 || seg[0] != '$') return false;
      params["op"] = seg.substr(1);
    } else if (pat == "{id}" || pat == "{vid}") {
      if (seg.empty() || seg[0] == '_' || seg[0] == '$') return false;
      params[pat.substr(1, pat.size() - 2)] = seg;
    } else if (pat != seg) {
      return false;
    }
  }
  return true;
}

namespace {
std::string AllowHeader(std::set<std::string> methods) {
  if (methods.count("GET")) methods.insert("HEAD");
  methods.insert("OPTIONS");
  std::string allow;
  for (const auto& m : methods) allow += (allow.empty() ? "" : ", ") + m;
  return allow;
}
}  // namespace

std::string Router::AllowedMethods(const HttpRequest& req) const {
  std::set<std::string> allowed;
  std::string unknown_type;
  for (const auto& route : routes_) {
    if (!route.handler) continue;
    std::map<std::string, std::string> params;
    if (Match(route, req, params, unknown_type)) allowed.insert(route.info.method);
  }
  return AllowHeader(std::move(allowed));
}

namespace {

// What every audit record of a request says: its id, method, path, redacted query and sender.
fhir::AuditRecord RequestRecord(const HttpRequest& req) {
  fhir::AuditRecord rec;
  rec.request_id = req.request_id;
  rec.method = req.method;
  for (const auto& seg : req.segments) rec.path += "/" + seg;
  if (rec.path.empty()) rec.path = "/";
  rec.query = fhir::RedactedQuery(req.raw_query);
  rec.address = req.peer;
  if (const std::string* f = req.Header("x-forwarded-for")) rec.forwarded = *f;
  return rec;
}

void FillPrincipal(fhir::AuditRecord& rec, const HttpRequest& req) {
  if (!req.principal) return;
  rec.subject = req.principal->subject;
  rec.client_id = req.principal->client_id;
  rec.role = RoleName(req.principal->role);
  rec.issuer = req.principal->issuer;
}

}  // namespace

HttpResponse Router::Dispatch(HttpRequest& req) const {
  std::set<std::string> allowed;
  std::string unknown_type;
  const std::string& method = req.method == "HEAD" ? std::string("GET") : req.method;
  for (const auto& route : routes_) {
    if (!route.handler) continue;  // listed for the CapabilityStatement only
    std::map<std::string, std::string> params;
    if (!Match(route, req, params, unknown_type)) continue;
    if (route.info.method == method) {
      req.params = std::move(params);
      if (!route.info.access.audited || !auditor_) return Run(route.info, route.handler, req);
      return AuditedCall(route.info, route.handler, req);
    }
    allowed.insert(route.info.method);
  }
  // No route serves it: refused, and recorded like any refusal (probing leaves a trace too).
  auto record = [&](const fhir::FhirError& e) {
    if (!auditor_) return;
    fhir::AuditRecord rec = RequestRecord(req);
    rec.action = 'E';
    rec.status = fhir::Describe(e.code()).http_status;
    rec.outcome_text = e.what();
    try {
      auditor_(rec);
    } catch (...) {
    }
  };
  if (!allowed.empty()) {
    std::string allow = AllowHeader(std::move(allowed));
    fhir::FhirError e(fhir::ErrorCode::kMethodNotAllowed, req.method + " is not allowed here; allowed: " + allow);
    e.headers.emplace_back("Allow", allow);
    record(e);
    throw e;
  }
  fhir::FhirError e = !unknown_type.empty()
                          ? fhir::FhirError(fhir::ErrorCode::kNotFound, "'" + unknown_type + "' is not a FHIR R4 resource type")
                          : fhir::FhirError(fhir::ErrorCode::kNotFound, "no such endpoint");
  record(e);
  throw e;
}

namespace {

std::shared_ptr<const Principal> AdminWithoutAuth() {
  static const auto p = [] {
    auto a = std::make_shared<Principal>();
    a->subject = a->client_id = "unauthenticated-loopback";
    a->role = Role::kAdmin;
    a->scopes = ParseScopes("system/*.cruds");
    a->expires_at = INT64_MAX;
    return a;
  }();
  return p;
}

int64_t NowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

fhir::FhirError Forbidden(const std::string& why) { return fhir::FhirError(fhir::ErrorCode::kForbidden, why); }

}  // namespace

void Router::Throttle(const std::string& key, bool anonymous) const {
  if (!auth_.limiter) return;
  int retry_after = 1;
  if (auth_.limiter->Take(key, anonymous, NowSeconds() * 1000000LL + 0, retry_after)) return;
  fhir::FhirError e(fhir::ErrorCode::kTooManyRequests,
                    anonymous ? "too many requests without a valid token from this address; retry later"
                              : "this client's request rate is over its limit; retry after the Retry-After delay");
  e.headers.emplace_back("Retry-After", std::to_string(retry_after));
  throw e;
}

HttpResponse Router::Run(const RouteInfo& route, const Handler& handler, HttpRequest& req) const {
  Authorize(route, req);
  // Before the handler: a write's record is made inside its transaction.
  if (fhir::AuditRecord* rec = fhir::CurrentAudit()) FillPrincipal(*rec, req);
  if (!req.principal || !auth_.limiter) return handler(req);
  const std::string key = req.principal->issuer + "|" + req.principal->client_id;
  Throttle(key, false);
  if (!auth_.limiter->Enter(key)) {
    fhir::FhirError e(fhir::ErrorCode::kTooManyRequests, "this client has too many requests in flight; retry shortly");
    e.headers.emplace_back("Retry-After", "1");
    throw e;
  }
  struct Leave {
    RateLimiter* l;
    const std::string& k;
    ~Leave() { l->Leave(k); }
  } leave{auth_.limiter, key};
  return handler(req);
}

void Router::SessionFromCookie(const std::string& cookies, HttpRequest& req) const {
  auto session = auth_.people->FromCookies(cookies);
  if (!session) {
    Throttle("ip:" + req.peer, true);
    fhir::FhirError e(fhir::ErrorCode::kUnauthorized, "no session: it ended or expired; log in again at /login");
    e.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"fls\"");
    throw e;
  }
  const bool safe = req.method == "GET" || req.method == "HEAD" || req.method == "OPTIONS";
  if (!safe) {
    // A session's cookie goes with any request the browser makes, whoever's page asked: a
    // state-changing one must prove it comes from a page that read the session's CSRF token.
    const std::string* token = req.Header("x-csrf-token");
    if (!token || token->size() != session->csrf.size() || !ConstantTimeEquals(*token, session->csrf)) {
      throw Forbidden("a state-changing request made with a session cookie needs the session's X-CSRF-Token header (GET /auth/session)");
    }
    if (const std::string* origin = req.Header("origin")) {
      const std::string& own = auth_.origin.empty() ? req.base_url : auth_.origin;
      if (*origin != own) throw Forbidden("the request's Origin is not this server's");
    }
  }
  req.principal = std::move(session->principal);
}

void Router::Authorize(const RouteInfo& route, HttpRequest& req) const {
  const Access& a = route.access;
  if (a.kind == Access::Kind::kPublic) return;
  if (auth_.disabled) {
    req.principal = AdminWithoutAuth();
  } else {
    const std::string* h = req.Header("authorization");
    const std::string* cookies = req.Header("cookie");
    if ((!h || h->empty()) && auth_.people && cookies) {
      SessionFromCookie(*cookies, req);
    } else {
      if (!h || h->empty()) {
        Throttle("ip:" + req.peer, true);
        fhir::FhirError e(fhir::ErrorCode::kUnauthorized, "this endpoint needs a bearer token (POST /auth/token) or a session (/login)");
        e.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"fls\"");
        throw e;
      }
      std::string_view v(*h);
      if (v.size() < 7 || !IEquals(v.substr(0, 7), "Bearer ")) {
        Throttle("ip:" + req.peer, true);
        fhir::FhirError e(fhir::ErrorCode::kUnauthorized, "the Authorization header must be 'Bearer <token>'");
        e.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"fls\", error=\"invalid_request\"");
        throw e;
      }
      v.remove_prefix(7);
      while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
      if (!auth_.authenticator) throw fhir::FhirError(fhir::ErrorCode::kUnauthorized, "no authenticator configured");
      try {
        req.principal = auth_.authenticator->Authenticate(v, NowSeconds());
      } catch (const fhir::FhirError&) {
        Throttle("ip:" + req.peer, true);  // bad tokens count as no token
        throw;
      }
    }
  }
  const Principal& p = *req.principal;
  auto type_of = [&]() -> std::string {
    if (!a.type.empty()) return a.type;
    auto it = req.params.find("type");
    return it == req.params.end() ? std::string() : it->second;
  };
  switch (a.kind) {
    case Access::Kind::kData: {
      std::string type = type_of();
      if (!p.May(type, a.interaction)) {
        throw Forbidden("the token (role " + std::string(RoleName(p.role)) + ") does not allow " + a.Describe() +
                        (a.type.empty() ? " on " + type : ""));
      }
      return;
    }
    case Access::Kind::kOperation: {
      if (!RoleMayCall(p.role, a.operation)) {
        throw Forbidden("role " + std::string(RoleName(p.role)) + " may not call $" + a.operation);
      }
      std::string type = type_of();
      if (a.interaction && !p.ScopesAllow(type, a.interaction)) {
        throw Forbidden("the token's scopes do not allow $" + a.operation + " (" + a.Describe() + ")");
      }
      return;
    }
    case Access::Kind::kAdmin:
      if (p.role != Role::kAdmin) throw Forbidden("this endpoint is for administrators");
      return;
    case Access::Kind::kAuthenticated:
      return;
    case Access::Kind::kBundle:
      return;  // each entry is checked by the Bundle's processing (RequestInfo::may)
    default:
      throw Forbidden("this endpoint declares no access");
  }
}

namespace {

char ActionOf(const std::string& method, const RouteInfo& route) {
  if (route.pattern.find('$') != std::string::npos || route.pattern == "/") return 'E';
  if (method == "POST") return route.pattern.find("_search") != std::string::npos ? 'E' : 'C';
  if (method == "PUT") return 'U';
  if (method == "DELETE") return 'D';
  return route.interaction.rfind("search", 0) == 0 || route.interaction.rfind("history-type", 0) == 0 ? 'E' : 'R';
}

std::string InteractionOf(const RouteInfo& route) {
  if (route.pattern == "/auth/logout") return "logout";
  if (route.pattern.rfind("/auth/", 0) == 0 && route.pattern != "/auth/session") return "login";
  if (route.pattern.find('$') != std::string::npos) return "operation";
  if (route.pattern == "/{type}/_search") return "search-type";
  if (route.pattern == "/") return "transaction";  // fhir/transaction.cpp says "batch" once it read Bundle.type
  if (!route.interaction.empty()) return route.interaction;
  if (route.method == "PUT") return "update";
  if (route.method == "DELETE") return "delete";
  return "";
}

}  // namespace

HttpResponse Router::AuditedCall(const RouteInfo& route, const Handler& handler, HttpRequest& req) const {
  fhir::AuditRecord rec = RequestRecord(req);
  rec.interaction = InteractionOf(route);
  rec.action = ActionOf(req.method, route);
  auto it = req.params.find("type");
  std::string type = it != req.params.end() ? it->second : "";
  if (auto id = req.params.find("id"); id != req.params.end()) {
    std::string t = !type.empty() ? type : route.pattern.rfind("/EpisodeOfCare/", 0) == 0 ? "EpisodeOfCare" : "";
    if (!t.empty()) rec.entities.push_back(t + "/" + id->second);
  }
  fhir::AuditScope scope(rec);
  auto fill_principal = [&] { FillPrincipal(rec, req); };
  auto record_refusal = [&](int status, const std::string& why) {
    fill_principal();
    rec.status = status;
    rec.outcome_text = why;
    try {
      auditor_(rec);
    } catch (...) {
      // The refusal stands; the log has the request id. A database that cannot take the record
      // cannot take the request either.
    }
  };
  HttpResponse resp;
  try {
    resp = Run(route, handler, req);
    fill_principal();
  } catch (const fhir::FhirError& e) {
    // A throttled request did nothing and is not recorded one by one (the log counts them):
    // otherwise a flood would grow the audit trail without limit.
    if (e.code() != fhir::ErrorCode::kTooManyRequests) record_refusal(fhir::Describe(e.code()).http_status, e.what());
    throw;
  } catch (const std::exception& e) {
    record_refusal(500, "internal error");
    throw;
  }
  rec.status = resp.status;
  // A single write's record went with its transaction; a Bundle also gets its own (its reads,
  // its refused entries, its searches), as does anything that failed.
  if (scope.audited_in_transaction() && resp.status < 400 && route.pattern != "/") return resp;
  if (resp.status < 400 && rec.action != 'C' && rec.action != 'U' && rec.action != 'D') {
    fhir::AddAnswerEntities(rec, resp.body);
  }
  if (resp.status >= 400 && rec.outcome_text.empty()) {
    rec.outcome_text = resp.body.substr(0, 300);
  }
  auditor_(rec);  // throws on failure: an unrecorded read is not answered
  return resp;
}

std::vector<RouteInfo> Router::Routes() const {
  std::vector<RouteInfo> out;
  for (const auto& r : routes_) out.push_back(r.info);
  return out;
}

}  // namespace fls::server
