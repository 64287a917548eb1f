#include "server/login_routes.h"

#include <chrono>

#include <rapidjson/document.h>

#include "fhir/audit.h"
#include "fhir/call_list.h"
#include "fhir/error.h"
#include "server/http_util.h"
#include "server/log.h"

namespace fls::server {

namespace {

int64_t NowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// A `next` path inside a query string: its slashes kept.
std::string UrlPath(std::string_view s) { return PercentEncode(s, "/"); }

std::string JsonString(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

// What every page of ours says to the browser: nothing cached, no framing, no referrer, no script.
void PageHeaders(HttpResponse& r) {
  HtmlPageHeaders(r, "no-store",
                  "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'");
}

struct Texts {
  const char *lang, *title, *login, *password, *submit, *oidc, *failed, *signed_in_as, *logout, *switch_to,
      *switch_label, *oidc_failed, *role, *locked_hint, *again;
};
const Texts kFr = {"fr",
                   "Connexion — Filière fracture (FLS)",
                   "Identifiant",
                   "Mot de passe",
                   "Se connecter",
                   "Se connecter avec le compte de l'établissement",
                   "Identifiant ou mot de passe incorrect, ou compte verrouillé après plusieurs échecs.",
                   "Connecté(e) en tant que",
                   "Se déconnecter",
                   "en",
                   "English",
                   "La connexion par le compte de l'établissement a échoué.",
                   "rôle",
                   "Après plusieurs échecs, le compte est verrouillé quelques minutes ; un administrateur peut le "
                   "déverrouiller.",
                   "Réessayer"};
const Texts kEn = {"en",
                   "Log in — Fracture Liaison Service",
                   "Login",
                   "Password",
                   "Log in",
                   "Log in with the hospital account",
                   "Wrong login or password, or the account is locked after repeated failures.",
                   "Logged in as",
                   "Log out",
                   "fr",
                   "Français",
                   "The login through the hospital account failed.",
                   "role",
                   "After repeated failures the account is locked for a few minutes; an administrator can unlock it.",
                   "Try again"};

const Texts& TextsFor(const HttpRequest& req) {
  return req.raw_query.find("lang=en") != std::string::npos ? kEn : kFr;
}

std::string QueryParam(const HttpRequest& req, const std::string& name) {
  try {
    auto form = ParseForm(req.raw_query);
    auto it = form.find(name);
    return it == form.end() ? "" : it->second;
  } catch (const std::invalid_argument&) {
    return "";
  }
}

const char* kStyle =
    "<style>body{font-family:system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem;line-height:1.5}"
    "label{display:block;margin-top:1rem;font-weight:600}input{width:100%;padding:.5rem;font-size:1rem;"
    "box-sizing:border-box}button,.button{margin-top:1.25rem;padding:.6rem 1.2rem;font-size:1rem;cursor:pointer}"
    ".error{color:#8b0000;border-left:4px solid #8b0000;padding-left:.75rem}a:focus,button:focus,input:focus"
    "{outline:3px solid #1a5fb4;outline-offset:2px}</style>";

std::string Page(const Texts& t, const std::string& body, const std::string& head = "") {
  return std::string("<!doctype html><html lang=\"") + t.lang + "\"><head><meta charset=\"utf-8\">"
         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>" + fhir::HtmlEscape(t.title) +
         "</title>" + kStyle + head + "</head><body><main>" + body + "</main></body></html>";
}

}  // namespace

void HtmlPageHeaders(HttpResponse& r, const std::string& cache_control, const std::string& csp) {
  r.content_type = "text/html; charset=utf-8";
  r.headers.emplace_back("Cache-Control", cache_control);
  r.headers.emplace_back("Content-Security-Policy", csp);
  r.headers.emplace_back("X-Frame-Options", "DENY");
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  // Not no-referrer: under it a browser sends "Origin: null" with the page's form posts and
  // fetches, which the Origin check (our own origin only) then refuses.
  r.headers.emplace_back("Referrer-Policy", "same-origin");
}

std::string SafeNextPath(const std::string& next) {
  if (next.empty() || next.size() > 512 || next[0] != '/') return "/login";
  if (next.size() > 1 && (next[1] == '/' || next[1] == '\\')) return "/login";
  for (unsigned char c : next) {
    if (c < 0x21 || c == 0x7f || c == '\\') return "/login";
  }
  return next;
}

void RegisterLoginRoutes(Router& router, const LoginRoutesContext& ctx) {
  People& people = ctx.people;
  auto base_of = [ctx](const HttpRequest& req) { return ctx.public_url.empty() ? req.base_url : ctx.public_url; };

  // The page: a login form, or who is logged in.
  auto login_page = [&people, ctx](const HttpRequest& req, int status, bool failed) {
    const Texts& t = TextsFor(req);
    const std::string next = SafeNextPath(QueryParam(req, "next"));
    HttpResponse r;
    r.status = status;
    PageHeaders(r);
    std::string body = "<p><a href=\"/login?lang=" + std::string(t.switch_to) + "&amp;next=" + fhir::HtmlEscape(UrlPath(next)) +
                       "\" lang=\"" + t.switch_to + "\">" + t.switch_label + "</a></p><h1>" + fhir::HtmlEscape(t.title) + "</h1>";
    std::optional<CookieSession> session;
    if (const std::string* c = req.Header("cookie"); c && !failed) session = people.FromCookies(*c);
    if (session) {
      const Principal& p = *session->principal;
      body += "<p>" + std::string(t.signed_in_as) + " <strong>" + fhir::HtmlEscape(p.subject) + "</strong> (" + t.role + " " +
              RoleName(p.role) + ")</p><form method=\"post\" action=\"/auth/logout\"><input type=\"hidden\" "
              "name=\"csrf\" value=\"" + fhir::HtmlEscape(session->csrf) + "\"><button type=\"submit\">" + t.logout +
              "</button></form>";
      r.body = Page(t, body);
      return r;
    }
    auto fresh = people.NewLoginCsrf();
    r.headers.emplace_back("Set-Cookie", people.SetCookie(people.LoginCsrfCookieName(), fresh, 1800, "Strict"));
    if (failed) body += "<p class=\"error\" role=\"alert\">" + fhir::HtmlEscape(t.failed) + " " + fhir::HtmlEscape(t.locked_hint) + "</p>";
    body += "<form method=\"post\" action=\"/auth/login\"><input type=\"hidden\" name=\"csrf\" value=\"" + fhir::HtmlEscape(fresh) +
            "\"><input type=\"hidden\" name=\"next\" value=\"" + fhir::HtmlEscape(next) + "\"><input type=\"hidden\" name=\"lang\" "
            "value=\"" + t.lang + "\"><label for=\"login\">" + t.login +
            "</label><input id=\"login\" name=\"login\" autocomplete=\"username\" required autofocus maxlength=\"128\">"
            "<label for=\"password\">" + t.password +
            "</label><input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" "
            "required maxlength=\"256\"><button type=\"submit\">" + t.submit + "</button></form>";
    if (people.oidc_login_enabled()) {
      body += "<p><a class=\"button\" href=\"/auth/oidc/login?next=" + fhir::HtmlEscape(UrlPath(next)) + "\">" + fhir::HtmlEscape(t.oidc) +
              "</a></p>";
    }
    r.body = Page(t, body);
    return r;
  };

  router.Add("GET", "/login", "", true, Access::Public(), [login_page](HttpRequest& req) {
    return login_page(req, 200, !QueryParam(req, "failed").empty());
  });

  router.Add("POST", "/auth/login", "", true, Access::PublicAudited(), [&people, ctx, base_of, login_page](HttpRequest& req) {
    fhir::AuditRecord* audit = fhir::CurrentAudit();
    if (audit) audit->client_id = "fls-web";
    if (ctx.limiter) {
      int retry = 1;
      if (!ctx.limiter->Take("login:" + req.peer, true, NowUs(), retry)) {
        fhir::FhirError e(fhir::ErrorCode::kTooManyRequests, "too many login attempts from this address; retry later");
        e.headers.emplace_back("Retry-After", std::to_string(retry));
        throw e;
      }
    }
    if (const std::string* origin = req.Header("origin"); origin && *origin != base_of(req)) {
      throw fhir::FhirError(fhir::ErrorCode::kForbidden, "the login form was posted from another site (Origin)");
    }
    const std::string* ct = req.Header("content-type");
    const bool json = ct && Lower(*ct).rfind("application/json", 0) == 0;
    std::string login, password, next = "/login";
    if (json) {
      rapidjson::Document d;
      d.Parse(req.body.c_str(), req.body.size());
      if (d.HasParseError() || !d.IsObject() || !d.HasMember("login") || !d["login"].IsString() ||
          !d.HasMember("password") || !d["password"].IsString()) {
        throw fhir::FhirError(fhir::ErrorCode::kBadRequest, "the login body must be {\"login\": string, \"password\": string}");
      }
      login.assign(d["login"].GetString(), d["login"].GetStringLength());
      password.assign(d["password"].GetString(), d["password"].GetStringLength());
    } else if (ct && Lower(*ct).rfind("application/x-www-form-urlencoded", 0) == 0) {
      std::map<std::string, std::string> form;
      try {
        form = ParseForm(req.body);
      } catch (const std::invalid_argument& e) {
        throw fhir::FhirError(fhir::ErrorCode::kBadRequest, e.what());
      }
      // Login CSRF: the form must carry the value of the cookie the login page set.
      const std::string* cookies = req.Header("cookie");
      auto expected = cookies ? CookieValue(*cookies, people.LoginCsrfCookieName()) : std::nullopt;
      if (!expected || !ConstantTimeEquals(*expected, form["csrf"])) {
        throw fhir::FhirError(fhir::ErrorCode::kForbidden,
                              "the login form is stale or was not served by this server: reload /login and try again");
      }
      login = form["login"];
      password = form["password"];
      next = SafeNextPath(form["next"]);
      if (form["lang"] == "en") req.raw_query = "lang=en&next=" + UrlPath(next);
      else req.raw_query = "next=" + UrlPath(next);
    } else {
      throw fhir::FhirError(fhir::ErrorCode::kUnsupportedMediaType,
                            "log in with application/x-www-form-urlencoded (the login page) or application/json");
    }
    People::Login result = people.PasswordLogin(login, password, req.peer);
    if (audit) {
      audit->subject = result.ok ? result.login : (login.substr(0, 128) + " (not authenticated)");
      audit->role = result.role;
      audit->outcome_text = result.reason;
    }
    Log(result.ok ? "info" : "warn", result.ok ? "login" : "login refused",
        {{"rid", req.request_id}, {"login", result.login}, {"why", result.reason}});
    if (!result.ok) {
      if (json) {
        HttpResponse r;
        r.status = 401;
        r.content_type = "application/json";
        r.headers.emplace_back("Cache-Control", "no-store");
        r.body = "{\"error\":\"invalid_credentials\",\"error_description\":\"wrong login or password, or the account is "
                 "locked after repeated failures\"}";
        return r;
      }
      return login_page(req, 401, true);
    }
    HttpResponse r;
    r.headers.emplace_back("Set-Cookie", people.SetCookie(people.SessionCookieName(), result.cookie_value,
                                                          people.config().session_lifetime_s, "Strict"));
    r.headers.emplace_back("Cache-Control", "no-store");
    if (json) {
      r.content_type = "application/json";
      r.body = "{\"login\":" + JsonString(result.login) + ",\"role\":" + JsonString(result.role) +
               ",\"csrf\":" + JsonString(result.csrf) + "}";
    } else {
      r.status = 303;
      r.headers.emplace_back("Location", next);
    }
    return r;
  });

  router.Add("POST", "/auth/logout", "", true, Access::PublicAudited(), [&people, base_of](HttpRequest& req) {
    fhir::AuditRecord* audit = fhir::CurrentAudit();
    if (audit) audit->client_id = "fls-web";
    const std::string* cookies = req.Header("cookie");
    auto session = cookies ? people.FromCookies(*cookies) : std::nullopt;
    HttpResponse r;
    r.headers.emplace_back("Set-Cookie", people.SetCookie(people.SessionCookieName(), "", 0, "Strict"));
    r.headers.emplace_back("Cache-Control", "no-store");
    const std::string* ct = req.Header("content-type");
    const bool form_post = ct && Lower(*ct).rfind("application/x-www-form-urlencoded", 0) == 0;
    if (session) {
      if (audit) {
        audit->subject = session->principal->subject;
        audit->role = RoleName(session->principal->role);
        audit->issuer = session->principal->issuer;
      }
      std::string token;
      if (const std::string* h = req.Header("x-csrf-token")) token = *h;
      if (token.empty() && form_post) {
        try {
          token = ParseForm(req.body)["csrf"];
        } catch (const std::invalid_argument&) {
        }
      }
      if (!ConstantTimeEquals(token, session->csrf)) {
        throw fhir::FhirError(fhir::ErrorCode::kForbidden, "logging out needs the session's CSRF token");
      }
      if (const std::string* origin = req.Header("origin"); origin && *origin != base_of(req)) {
        throw fhir::FhirError(fhir::ErrorCode::kForbidden, "the request's Origin is not this server's");
      }
      people.Logout(session->id_hash);
    }
    if (form_post) {
      r.status = 303;
      r.headers.emplace_back("Location", "/login");
    } else {
      r.status = 204;
    }
    return r;
  });

  router.Add("GET", "/auth/session", "", true, Access::Authenticated(), [&people](HttpRequest& req) {
    const Principal& p = *req.principal;
    std::string csrf;
    if (!req.Header("authorization")) {
      if (const std::string* c = req.Header("cookie")) {
        if (auto s = people.FromCookies(*c)) csrf = s->csrf;
      }
    }
    std::string sites = "[";
    for (size_t i = 0; i < p.sites.size(); ++i) sites += (i ? "," : "") + JsonString(p.sites[i]);
    sites += "]";
    std::string scopes;
    for (const auto& s : p.scopes) scopes += (scopes.empty() ? "" : " ") + s.text;
    HttpResponse r;
    r.content_type = "application/json";
    r.headers.emplace_back("Cache-Control", "no-store");
    r.body = "{\"subject\":" + JsonString(p.subject) + ",\"client_id\":" + JsonString(p.client_id) +
             ",\"issuer\":" + JsonString(p.issuer) + ",\"role\":" + JsonString(RoleName(p.role)) + ",\"sites\":" + sites +
             ",\"scope\":" + JsonString(scopes) + ",\"expires_at\":" + std::to_string(p.expires_at) +
             (p.display_name.empty() ? "" : ",\"name\":" + JsonString(p.display_name)) +
             (p.practitioner.empty() ? "" : ",\"fhirUser\":" + JsonString(p.practitioner)) +
             (csrf.empty() ? "" : ",\"csrf\":" + JsonString(csrf)) + "}";
    return r;
  });

  router.Add("GET", "/auth/oidc/login", "", true, Access::Public(), [&people, base_of](HttpRequest& req) {
    if (!people.oidc_login_enabled()) {
      throw fhir::FhirError(fhir::ErrorCode::kNotFound, "no identity provider login is configured on this server");
    }
    const std::string next = SafeNextPath(QueryParam(req, "next"));
    People::FlowStart start = people.StartOidcLogin(next, base_of(req) + "/auth/oidc/callback");
    HttpResponse r;
    r.status = 302;
    r.headers.emplace_back("Location", start.redirect_url);
    r.headers.emplace_back("Cache-Control", "no-store");
    // Lax: the provider's redirect back is a cross-site top-level navigation.
    r.headers.emplace_back("Set-Cookie",
                           people.SetCookie(people.FlowCookieName(), start.flow_cookie_value, 600, "Lax", false, "/auth/oidc"));
    return r;
  });

  router.Add("GET", "/auth/oidc/callback", "", true, Access::PublicAudited(), [&people, base_of](HttpRequest& req) {
    fhir::AuditRecord* audit = fhir::CurrentAudit();
    if (audit) audit->client_id = "fls-web";
    const Texts& t = kFr;
    HttpResponse r;
    PageHeaders(r);
    r.headers.emplace_back("Set-Cookie", people.SetCookie(people.FlowCookieName(), "", 0, "Lax", false, "/auth/oidc"));
    const std::string code = QueryParam(req, "code"), state = QueryParam(req, "state");
    std::string flow_cookie;
    if (const std::string* c = req.Header("cookie")) flow_cookie = CookieValue(*c, people.FlowCookieName()).value_or("");
    People::Callback result;
    if (std::string error = QueryParam(req, "error"); !error.empty()) {
      result.reason = "the provider answered error=" + error.substr(0, 100);
    } else {
      result = people.FinishOidcLogin(code, state, flow_cookie, base_of(req) + "/auth/oidc/callback", req.peer);
    }
    if (audit) {
      audit->subject = result.ok ? result.login : "(identity provider login, not authenticated)";
      audit->role = result.role;
      audit->issuer = people.oidc_issuer();
      audit->outcome_text = result.reason;
    }
    Log(result.ok ? "info" : "warn", result.ok ? "login" : "login refused",
        {{"rid", req.request_id}, {"login", result.login}, {"why", result.reason}, {"via", "oidc"}});
    if (!result.ok) {
      r.status = 401;
      r.body = Page(t, "<h1>" + fhir::HtmlEscape(t.title) + "</h1><p class=\"error\" role=\"alert\">" + fhir::HtmlEscape(t.oidc_failed) + " " +
                           fhir::HtmlEscape(kEn.oidc_failed) + "</p><p><a href=\"/login\">" + t.again + " / " + kEn.again + "</a></p>");
      return r;
    }
    r.headers.emplace_back("Set-Cookie", people.SetCookie(people.SessionCookieName(), result.cookie_value,
                                                          people.config().session_lifetime_s, "Strict"));
    // A same-site navigation onward, so that the SameSite=Strict cookie goes with it (a redirect
    // would still count as coming from the provider's site).
    const std::string next = SafeNextPath(result.next_path);
    r.body = Page(t, "<p><a href=\"" + fhir::HtmlEscape(next) + "\">" + fhir::HtmlEscape(t.submit) + "</a></p>",
                  "<meta http-equiv=\"refresh\" content=\"0;url=" + fhir::HtmlEscape(next) + "\">");
    return r;
  });
}

}  // namespace fls::server
