#include "server/auth_routes.h"

#include <chrono>

#include "db/auth_store.h"
#include "fhir/audit.h"
#include "server/http_util.h"
#include "server/log.h"

namespace fls::server {

namespace {

int64_t NowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string Quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) continue;
    out += c;
  }
  return out + "\"";
}

// RFC 6749 5.2: {"error": ..., "error_description": ...}, never cached.
HttpResponse OAuthError(int status, const std::string& error, const std::string& description) {
  HttpResponse r;
  r.status = status;
  r.content_type = "application/json";
  r.headers.emplace_back("Cache-Control", "no-store");
  r.headers.emplace_back("Pragma", "no-cache");
  if (status == 401) r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"fls\"");
  r.body = "{\"error\":" + Quote(error) + ",\"error_description\":" + Quote(description) + "}";
  return r;
}

std::string BaseOf(const AuthRoutesContext& ctx, const HttpRequest& req) {
  return ctx.public_url.empty() ? req.base_url : ctx.public_url;
}

}  // namespace

std::vector<Scope> GrantScopes(const RegisteredClient& client, const std::vector<Scope>& requested) {
  std::vector<Scope> registered = ParseScopes(client.scope.empty() ? DefaultScopes(client.role) : client.scope);
  std::vector<Scope> out;
  for (const auto& s : requested) {
    if (s.context != "system") continue;  // backend services act as themselves, not for a user
    uint8_t cap = 0;
    for (const auto& r : registered) {
      if (r.type == "*" || r.type == s.type) cap |= r.interactions;
    }
    uint8_t role_cap = s.type == "*" ? kAllInteractions : RoleCeiling(client.role, s.type);
    uint8_t granted = s.interactions & cap & role_cap;
    if (!granted) continue;
    Scope g = s;
    if (granted != s.interactions) {
      g.interactions = granted;
      g.text = "system/" + s.type + "." + InteractionLetters(granted);
    }
    out.push_back(std::move(g));
  }
  return out;
}

void RegisterAuthRoutes(Router& router, const AuthRoutesContext& ctx) {
  router.Add("GET", "/.well-known/smart-configuration", "", true, Access::Public(), [ctx](HttpRequest& req) {
    std::string base = BaseOf(ctx, req);
    HttpResponse r;
    r.content_type = "application/json";
    r.body = "{\"issuer\":" + Quote(ctx.authenticator.issuer()) + ",\"jwks_uri\":" + Quote(base + "/.well-known/jwks.json") +
             ",\"token_endpoint\":" + Quote(base + "/auth/token") +
             ",\"token_endpoint_auth_methods_supported\":[\"private_key_jwt\"]"
             ",\"token_endpoint_auth_signing_alg_values_supported\":[\"RS384\",\"ES384\"]"
             ",\"grant_types_supported\":[\"client_credentials\"]"
             ",\"scopes_supported\":[\"system/*.read\",\"system/*.rs\",\"system/*.write\",\"system/*.cruds\","
             "\"system/Patient.read\",\"system/Patient.rs\",\"system/Measure.rs\",\"system/MeasureReport.crs\"]"
             ",\"response_types_supported\":[\"token\"]"
             ",\"capabilities\":[\"client-confidential-asymmetric\",\"permission-v1\",\"permission-v2\"]}";
    return r;
  });
  router.Add("GET", "/.well-known/jwks.json", "", true, Access::Public(), [ctx](HttpRequest&) {
    HttpResponse r;
    r.content_type = "application/json";
    std::vector<const jose::Key*> keys;
    auto all = ctx.keys.All();
    for (const auto& k : all) keys.push_back(k.get());
    r.body = jose::JwksJson(keys);
    return r;
  });
  router.Add("POST", "/auth/token", "", true, Access::PublicAudited(), [ctx](HttpRequest& req) {
    const std::string* ct = req.Header("content-type");
    if (!ct || Lower(*ct).rfind("application/x-www-form-urlencoded", 0) != 0) {
      return OAuthError(400, "invalid_request", "the token request must be application/x-www-form-urlencoded");
    }
    std::map<std::string, std::string> form;
    try {
      form = ParseForm(req.body);
    } catch (const std::invalid_argument& e) {
      return OAuthError(400, "invalid_request", e.what());
    }
    auto get = [&](const char* n) {
      auto it = form.find(n);
      return it == form.end() ? std::string() : it->second;
    };
    if (get("grant_type") != "client_credentials") {
      return OAuthError(400, "unsupported_grant_type", "grant_type must be client_credentials");
    }
    if (get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer") {
      return OAuthError(400, "invalid_request",
                        "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
    }
    std::string assertion = get("client_assertion");
    if (assertion.empty()) return OAuthError(400, "invalid_request", "client_assertion is required");
    std::string scope = get("scope");
    if (scope.empty()) return OAuthError(400, "invalid_scope", "scope is required (e.g. system/Patient.rs)");
    const int64_t now = NowSeconds();
    // The audience is the configured public URL's token endpoint; the Host header decides only
    // on loopback, where no public URL is required (server/config.cpp).
    std::vector<std::string> token_urls = {(ctx.public_url.empty() ? req.base_url : ctx.public_url) + "/auth/token"};
    AssertionCheck check = CheckClientAssertion(ctx.clients, assertion, token_urls, now);
    if (fhir::AuditRecord* audit = fhir::CurrentAudit()) {
      if (check.client) {
        audit->client_id = audit->subject = check.client->client_id;
        audit->role = RoleName(check.client->role);
      } else if (!check.claimed_client.empty()) {
        // Who the assertion claims to be, marked as not proven.
        audit->client_id = check.claimed_client;
        audit->subject = check.claimed_client + " (not authenticated)";
      }
    }
    if (check.error) {
      // The reason goes to the log only: the answer does not tell a prober which clients and
      // keys exist.
      Log("warn", "token request refused", {{"rid", req.request_id}, {"error", check.error->description}});
      if (fhir::AuditRecord* audit = fhir::CurrentAudit()) audit->outcome_text = check.error->description;
      std::string why = check.error->error == "invalid_client"
                            ? "client authentication failed; the server's log has the reason under request id " + req.request_id
                            : check.error->description;
      return OAuthError(check.error->status, check.error->error, why);
    }
    bool fresh = false;
    ctx.db.Transact([&](db::ResourceStore& st) { fresh = db::AuthStore(st).ClaimJti(check.client->client_id, check.jti, check.exp, now); });
    if (!fresh) {
      Log("warn", "token request refused", {{"rid", req.request_id}, {"error", "jti replayed"}, {"client", check.client->client_id}});
      return OAuthError(401, "invalid_client", "this client_assertion's jti was already used");
    }
    std::vector<std::string> refused;
    auto requested = ParseScopes(scope, &refused);
    auto granted = GrantScopes(*check.client, requested);
    if (granted.empty()) {
      return OAuthError(400, "invalid_scope",
                        "none of the requested scopes can be granted to a client of role " + std::string(RoleName(check.client->role)));
    }
    std::string granted_text;
    for (const auto& g : granted) granted_text += (granted_text.empty() ? "" : " ") + g.text;
    std::string token = ctx.authenticator.Issue(*check.client, granted, now, ctx.token_lifetime_s);
    Log("info", "access token issued", {{"rid", req.request_id}, {"client", check.client->client_id}, {"scope", granted_text}});
    HttpResponse r;
    r.content_type = "application/json";
    r.headers.emplace_back("Cache-Control", "no-store");
    r.headers.emplace_back("Pragma", "no-cache");
    r.body = "{\"access_token\":" + Quote(token) + ",\"token_type\":\"bearer\",\"expires_in\":" +
             std::to_string(ctx.token_lifetime_s) + ",\"scope\":" + Quote(granted_text) + "}";
    return r;
  });
}

}  // namespace fls::server
