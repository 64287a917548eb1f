// The route x role matrix, generated from the server's own route table (the routes main
// registers): for every route, every role's token and no token at all, the access check answers
// what docs/security.md promises: allowed, 401 or 403. The expected ceilings are written out here
// apart from server/auth.cpp's table, so that a change to either shows up.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "db/database.h"
#include "fhir/audit.h"
#include "fhir/error.h"
#include "fhir/fhir_service.h"
#include "fhir/pathway_engine.h"
#include "server/auth.h"
#include "server/auth_routes.h"
#include "server/login_routes.h"
#include "server/people.h"
#include "server/rate_limit.h"
#include "server/handlers.h"
#include "server/router.h"
#include "tests/support/fhir_fixture.h"
#include "workflow/drug_list.h"
#include "workflow/investigation_panel.h"
#include "workflow/recommendation.h"
#include "workflow/schedule.h"

namespace fls::server {
namespace {

std::string Data(const std::string& name) {
  std::ifstream in(std::string(FLS_SOURCE_DIR) + "/workflow/data/" + name);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// What each role may do on a sample of types, as docs/security.md states it.
const std::map<std::string, std::map<Role, std::string>>& Expected() {
  static const std::map<std::string, std::map<Role, std::string>> k = {
      {"Patient", {{Role::kEhr, "cruds"}, {Role::kCoordinator, "crus"}, {Role::kQuality, ""}, {Role::kAdmin, "cruds"}}},
      {"Observation", {{Role::kEhr, "cruds"}, {Role::kCoordinator, "crus"}, {Role::kQuality, ""}, {Role::kAdmin, "cruds"}}},
      {"Condition", {{Role::kEhr, "cruds"}, {Role::kCoordinator, "rs"}, {Role::kQuality, ""}, {Role::kAdmin, "cruds"}}},
      {"Task", {{Role::kEhr, "cruds"}, {Role::kCoordinator, "crus"}, {Role::kQuality, ""}, {Role::kAdmin, "cruds"}}},
      {"EpisodeOfCare", {{Role::kEhr, "cruds"}, {Role::kCoordinator, "rus"}, {Role::kQuality, ""}, {Role::kAdmin, "cruds"}}},
      {"Measure", {{Role::kEhr, "rs"}, {Role::kCoordinator, "rs"}, {Role::kQuality, "rs"}, {Role::kAdmin, "cruds"}}},
      {"MeasureReport", {{Role::kEhr, ""}, {Role::kCoordinator, "rs"}, {Role::kQuality, "crs"}, {Role::kAdmin, "cruds"}}},
      {"Organization", {{Role::kEhr, "cruds"}, {Role::kCoordinator, "rs"}, {Role::kQuality, "rs"}, {Role::kAdmin, "cruds"}}},
      {"CodeSystem", {{Role::kEhr, "rs"}, {Role::kCoordinator, "rs"}, {Role::kQuality, "rs"}, {Role::kAdmin, "cruds"}}},
      {"AuditEvent", {{Role::kEhr, ""}, {Role::kCoordinator, ""}, {Role::kQuality, ""}, {Role::kAdmin, "rs"}}},
  };
  return k;
}

// The interaction letter of a data route.
char Letter(const RouteInfo& r) {
  const std::string& m = r.method;
  const std::string& p = r.pattern;
  if (m == "POST" && p == "/{type}") return 'c';
  if (m == "PUT") return 'u';
  if (m == "DELETE") return 'd';
  if (p == "/{type}" || p == "/{type}/_search" || p == "/{type}/_history") return 's';
  return 'r';
}

class RouteMatrix : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = std::filesystem::temp_directory_path() / ("fls-route-matrix-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    db::DbConfig dbc;
    dbc.url = "postgresql://nobody@127.0.0.1:1/none";  // never connected: only the route table is used
    dbc.pool_size = 1;
    database_ = std::make_unique<db::Database>(dbc);
    service_ = std::make_unique<fhir::FhirService>(*database_, test::TestSchema(), test::TestRegistry(), fhir::ServiceConfig{});
    panel_ = std::make_unique<workflow::InvestigationPanel>(workflow::InvestigationPanel::Parse(Data("investigation-panel.json")));
    drugs_ = std::make_unique<workflow::DrugList>(workflow::DrugList::Parse(Data("osteoporosis-drugs.json")));
    grio_ = std::make_unique<workflow::GrioRules>(workflow::GrioRules::Parse(Data("grio-2017.json")));
    long_term_ = std::make_unique<workflow::LongTermPlan>(workflow::LongTermPlan::Parse(Data("long-term.json")));
    follow_up_ = std::make_unique<workflow::FollowUpProgramme>(workflow::FollowUpProgramme::Parse(Data("follow-up.json")));
    engine_ = std::make_unique<fhir::PathwayEngine>(*panel_, *drugs_, *grio_, *long_term_, *follow_up_, fhir::PathwayConfig{});
    keys_ = std::make_unique<SigningKeys>(dir_.string());
    auth_ = std::make_unique<Authenticator>(*keys_, "fls-server");
    clients_ = std::make_unique<ClientRegistry>((dir_ / "clients.json").string());
    router_ = std::make_unique<Router>();
    people_ = std::make_unique<People>(*database_, *auth_, PeopleConfig{});
    router_->SetAuth({auth_.get(), false, nullptr, nullptr, ""});
    auth_ctx_ = std::make_unique<AuthRoutesContext>(AuthRoutesContext{*clients_, *keys_, *auth_, *database_, "", 300});
    RegisterAuthRoutes(*router_, *auth_ctx_);
    RegisterLoginRoutes(*router_, {*people_, nullptr, ""});
    measures_ = std::make_unique<fhir::MeasureCatalog>(
        fhir::LoadMeasureCatalog(std::string(FLS_SOURCE_DIR) + "/workflow/data/kpi-frameworks"));
    RegisterRoutes(*router_, {*service_, test::TestSchema(), *database_, "test", engine_.get(), "http://fls-server.org/fhir",
                              measures_.get(), fhir::MeasureConfig{"http://fls-server.org/fhir"}});
  }
  static void TearDownTestSuite() {
    router_.reset();
    std::filesystem::remove_all(dir_);
  }

  // 0: allowed; else the HTTP status of the refusal.
  static int Check(const RouteInfo& route, const std::string& type, const std::string& token) {
    HttpRequest req;
    req.method = route.method;
    if (!token.empty()) req.headers["authorization"] = "Bearer " + token;
    if (!type.empty()) req.params["type"] = type;
    try {
      router_->Authorize(route, req);
      return 0;
    } catch (const fhir::FhirError& e) {
      return e.code() == fhir::ErrorCode::kUnauthorized ? 401 : e.code() == fhir::ErrorCode::kForbidden ? 403 : 500;
    }
  }

  static std::string Token(Role role) {
    RegisteredClient c;
    c.client_id = std::string("matrix-") + RoleName(role);
    c.role = role;
    return auth_->Issue(c, ParseScopes(DefaultScopes(role)), std::time(nullptr), 300);
  }

  static inline std::filesystem::path dir_;
  static inline std::unique_ptr<db::Database> database_;
  static inline std::unique_ptr<fhir::FhirService> service_;
  static inline std::unique_ptr<workflow::InvestigationPanel> panel_;
  static inline std::unique_ptr<workflow::DrugList> drugs_;
  static inline std::unique_ptr<workflow::GrioRules> grio_;
  static inline std::unique_ptr<workflow::LongTermPlan> long_term_;
  static inline std::unique_ptr<workflow::FollowUpProgramme> follow_up_;
  static inline std::unique_ptr<fhir::PathwayEngine> engine_;
  static inline std::unique_ptr<SigningKeys> keys_;
  static inline std::unique_ptr<Authenticator> auth_;
  static inline std::unique_ptr<ClientRegistry> clients_;
  static inline std::unique_ptr<AuthRoutesContext> auth_ctx_;
  static inline std::unique_ptr<People> people_;
  static inline std::unique_ptr<fhir::MeasureCatalog> measures_;
  static inline std::unique_ptr<Router> router_;
};

TEST_F(RouteMatrix, EveryRouteEveryRoleAndNoToken) {
  const Role roles[] = {Role::kEhr, Role::kCoordinator, Role::kQuality, Role::kAdmin};
  std::map<Role, std::string> tokens;
  for (Role r : roles) tokens[r] = Token(r);
  // What needs no token: discovery, the token endpoint, and people's login steps (each of which
  // checks its own proof: a password, a login CSRF cookie, a provider's code with its flow cookie,
  // a session's CSRF token for logging out).
  const std::set<std::string> kPublic = {"/metadata", "/.well-known/smart-configuration", "/.well-known/jwks.json",
                                         "/auth/token", "/login", "/auth/login", "/auth/logout", "/auth/oidc/login",
                                         "/auth/oidc/callback"};
  const std::set<std::string> kPathwayOps = {"$event", "$events", "$contact", "$accompany", "$recommend", "$call-list"};
  int checked = 0;
  std::set<std::string> seen;
  for (const auto& route : router_->Routes()) {
    if (route.method == "BATCH") continue;  // listed for the CapabilityStatement; POST / serves it
    seen.insert(route.method + " " + route.pattern);
    EXPECT_NE(route.access.kind, Access::Kind::kUndeclared) << route.pattern;
    std::string op;
    if (auto d = route.pattern.find('$'); d != std::string::npos) op = route.pattern.substr(d);
    const bool generic = route.pattern.find("{type}") != std::string::npos;
    std::vector<std::string> types;
    if (generic) {
      for (const auto& [t, _] : Expected()) types.push_back(t);
    } else {
      types.push_back("");
    }
    for (const auto& type : types) {
      const std::string where = route.method + " " + route.pattern + (type.empty() ? "" : " (" + type + ")");
      // No token.
      int anon = Check(route, type, "");
      EXPECT_EQ(anon, kPublic.count(route.pattern) ? 0 : 401) << where << " without a token";
      ++checked;
      for (Role role : roles) {
        int want = 403;
        if (kPublic.count(route.pattern)) want = 0;
        else if (route.pattern == "/") want = 0;  // a Bundle: each entry is checked on its own
        else if (route.pattern == "/auth/session") want = 0;  // who am I: any valid token
        else if (route.pattern == "/_history") want = role == Role::kAdmin ? 0 : 403;
        else if (kPathwayOps.count(op)) want = role == Role::kCoordinator || role == Role::kAdmin ? 0 : 403;
        else if (op.rfind("$export", 0) == 0) want = role == Role::kAdmin || role == Role::kQuality ? 0 : 403;
        else if (op == "$evaluate-measure" || op == "$fls-extract" || op == "$fls-dashboard" || op == "$fls-projection") want = role == Role::kEhr ? 403 : 0;  // quality, coordinators, admins
        else if (generic) want = Expected().at(type).at(role).find(Letter(route)) != std::string::npos ? 0 : 403;
        else ADD_FAILURE() << "no expectation for " << where << ": add it here and to docs/security.md";
        EXPECT_EQ(Check(route, type, tokens[role]), want) << where << " as " << RoleName(role);
        ++checked;
      }
    }
  }
  // The table has what the server serves (a route missing here would be unchecked).
  for (const char* r : {"GET /{type}/{id}", "POST /", "POST /EpisodeOfCare/{id}/$event", "GET /$call-list",
                        "POST /auth/token", "GET /_history", "DELETE /{type}/{id}", "POST /auth/login",
                        "GET /auth/session", "GET /auth/oidc/callback",
                        "GET /Measure/{id}/$evaluate-measure"}) {
    EXPECT_TRUE(seen.count(r)) << r;
  }
  EXPECT_GT(checked, 500);
}

TEST(RouterAccess, ARouteWithoutDeclaredAccessDoesNotStart) {
  Router r;
  EXPECT_THROW(r.Add("GET", "/x", "", true, Access{}, [](HttpRequest&) { return HttpResponse{}; }), std::logic_error);
}

TEST(Scopes, V1AndV2FormsAndWhatIsRefused) {
  struct Case {
    const char* text;
    bool ok;
    uint8_t interactions;
  };
  const Case cases[] = {
      {"system/Patient.read", true, kRead | kSearch},
      {"system/Patient.write", true, kCreate | kUpdate | kDelete},
      {"system/*.*", true, kAllInteractions},
      {"system/Patient.rs", true, kRead | kSearch},
      {"system/Patient.cruds", true, kAllInteractions},
      {"system/Observation.c", true, kCreate},
      {"user/Task.u", true, kUpdate},
      {"system/Patient.sr", false, 0},      // v2 letters are in cruds order
      {"system/Patient.rr", false, 0},
      {"system/Patient.x", false, 0},
      {"system/Patient.rs?category=x", false, 0},  // granular v2 scopes are not granted
      {"system/patient.read", false, 0},
      {"openid", false, 0},
      {"launch/patient", false, 0},
      {"device/Patient.read", false, 0},
      {"system/.read", false, 0},
  };
  for (const auto& c : cases) {
    auto s = ParseScope(c.text);
    EXPECT_EQ(s.has_value(), c.ok) << c.text;
    if (s && c.ok) {
      EXPECT_EQ(s->interactions, c.interactions) << c.text;
    }
  }
}

TEST(Scopes, GrantedScopesAreNarrowedToTheRole) {
  RegisteredClient quality;
  quality.client_id = "q";
  quality.role = Role::kQuality;
  auto granted = GrantScopes(quality, ParseScopes("system/Patient.rs system/MeasureReport.cruds system/Measure.read user/Measure.rs"));
  std::vector<std::string> texts;
  for (const auto& g : granted) texts.push_back(g.text);
  EXPECT_EQ(texts, (std::vector<std::string>{"system/MeasureReport.crs", "system/Measure.read"}));
  RegisteredClient ehr;
  ehr.client_id = "e";
  ehr.role = Role::kEhr;
  ehr.scope = "system/Patient.cruds system/Observation.rs";  // registered narrower than the role
  granted = GrantScopes(ehr, ParseScopes("system/*.cruds system/Observation.cruds system/Condition.rs"));
  texts.clear();
  for (const auto& g : granted) texts.push_back(g.text);
  // `*` is not narrowed to the registered types: it is dropped (ask for the types by name).
  EXPECT_EQ(texts, (std::vector<std::string>{"system/Observation.rs"}));
}

TEST(Tokens, ExpiryIssuerAndCacheAreChecked) {
  auto dir = std::filesystem::temp_directory_path() / ("fls-tokens-" + std::to_string(::getpid()));
  SigningKeys keys(dir.string());
  Authenticator auth(keys, "fls-server");
  RegisteredClient c;
  c.client_id = "x";
  c.role = Role::kEhr;
  const int64_t t0 = 1'800'000'000;
  std::string token = auth.Issue(c, ParseScopes("system/Patient.rs"), t0, 300);
  auto p = auth.Authenticate(token, t0 + 10);
  EXPECT_EQ(p->client_id, "x");
  EXPECT_TRUE(p->May("Patient", kRead));
  EXPECT_FALSE(p->May("Patient", kCreate));
  EXPECT_FALSE(p->May("Observation", kRead));
  EXPECT_EQ(p->expires_at, t0 + 300);
  // Cached, and still refused once expired.
  EXPECT_THROW(auth.Authenticate(token, t0 + 300), fhir::FhirError);
  EXPECT_THROW(auth.Authenticate(auth.Issue(c, ParseScopes("system/Patient.rs"), t0, 300), t0 + 301), fhir::FhirError);
  // Another server's issuer or key is refused.
  Authenticator other(keys, "another-server");
  EXPECT_THROW(other.Authenticate(auth.Issue(c, ParseScopes("system/Patient.rs"), t0, 300), t0 + 1), fhir::FhirError);
  // A tampered payload fails the signature.
  std::string tampered = token;
  auto dot = tampered.find('.');
  tampered[dot + 5] = tampered[dot + 5] == 'A' ? 'B' : 'A';
  EXPECT_THROW(auth.Authenticate(tampered, t0 + 1), fhir::FhirError);
  // A rotation keeps the old tokens valid and signs new ones with the new key.
  SigningKeys::Rotate(dir.string());
  SigningKeys rotated(dir.string());
  Authenticator after(rotated, "fls-server");
  EXPECT_NO_THROW(after.Authenticate(token, t0 + 20));
  EXPECT_NE(jose::ParseCompact(after.Issue(c, ParseScopes("system/Patient.rs"), t0, 300))->kid,
            jose::ParseCompact(token)->kid);
  std::filesystem::remove_all(dir);
}

TEST(RateLimits, TokenBucketsRefillAtTheirRate) {
  RateLimiter l({2, 4, 2}, {1, 1, 0});
  int wait = 0;
  const int64_t t0 = 1'000'000'000;
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(l.Take("a", false, t0, wait)) << "the burst, " << i;
  EXPECT_FALSE(l.Take("a", false, t0, wait));
  EXPECT_EQ(wait, 1);
  EXPECT_TRUE(l.Take("b", false, t0, wait)) << "each client its own bucket";
  EXPECT_TRUE(l.Take("a", false, t0 + 500'000, wait)) << "2/s: one token back after half a second";
  EXPECT_FALSE(l.Take("a", false, t0 + 500'000, wait));
  EXPECT_TRUE(l.Take("a", false, t0 + 10'000'000, wait));
  // Anonymous callers have their own, smaller limits.
  EXPECT_TRUE(l.Take("ip:1", true, t0, wait));
  EXPECT_FALSE(l.Take("ip:1", true, t0, wait));
  EXPECT_TRUE(l.Take("ip:1", true, t0 + 1'000'000, wait));
  // In flight.
  EXPECT_TRUE(l.Enter("a"));
  EXPECT_TRUE(l.Enter("a"));
  EXPECT_FALSE(l.Enter("a"));
  l.Leave("a");
  EXPECT_TRUE(l.Enter("a"));
  // No limits configured: everything passes.
  RateLimiter none({0, 0, 0}, {0, 0, 0});
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(none.Take("x", i % 2, t0, wait));
}

// A hospital's OpenID Connect provider: its tokens are accepted with its issuer, its keys, this
// server's audience and an FLS role; a scope claim limits them.
TEST(Tokens, TheHospitalProvidersTokens) {
  auto dir = std::filesystem::temp_directory_path() / ("fls-oidc-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto idp = jose::Key::Generate("RSA", "2048", "idp-1");
  std::ofstream((dir / "idp.jwks.json").string()) << jose::JwksJson({&idp});
  SigningKeys keys((dir / "server").string());
  OidcConfig oidc{"https://idp.chu.example", (dir / "idp.jwks.json").string(), "fls-server-prod", "fls_role", "fls_sites"};
  Authenticator auth(keys, "fls-server", oidc);
  const int64_t now = 1'800'000'000;
  auto token = [&](const std::string& extra, const char* aud = "fls-server-prod", const jose::Key* key = nullptr) {
    return jose::SignCompact(key ? *key : idp, "RS256",
                             std::string(R"({"iss":"https://idp.chu.example","aud":")") + aud + R"(","sub":"u1",)" +
                                 R"("preferred_username":"ide.martin","exp":)" + std::to_string(now + 600) + extra + "}");
  };
  auto p = auth.Authenticate(token(R"(,"fls_role":"coordinator","fls_sites":["Organization/site-a"])"), now);
  EXPECT_EQ(p->subject, "ide.martin");
  EXPECT_EQ(p->role, Role::kCoordinator);
  EXPECT_EQ(p->sites, std::vector<std::string>{"Organization/site-a"});
  EXPECT_TRUE(p->May("Task", kUpdate)) << "no scope claim: the role's own scopes";
  auto limited = auth.Authenticate(token(R"(,"fls_role":"coordinator","scope":"openid profile system/Task.rs")"), now);
  EXPECT_TRUE(limited->May("Task", kRead));
  EXPECT_FALSE(limited->May("Task", kUpdate)) << "a scope claim limits the token";
  auto none = auth.Authenticate(token(R"(,"fls_role":"coordinator","scope":"openid profile")"), now);
  EXPECT_FALSE(none->May("Task", kRead)) << "a scope claim with no SMART scope grants nothing";
  EXPECT_THROW(auth.Authenticate(token(R"(,"fls_role":"coordinator")", "another-app"), now), fhir::FhirError);
  EXPECT_THROW(auth.Authenticate(token(R"(,"fls_role":"superuser")"), now), fhir::FhirError);
  auto stranger = jose::Key::Generate("RSA", "2048", "idp-1");  // same kid, another key
  EXPECT_THROW(auth.Authenticate(token(R"(,"fls_role":"admin")", "fls-server-prod", &stranger), now), fhir::FhirError);
  OidcConfig no_audience = oidc;
  no_audience.audience.clear();
  EXPECT_THROW(Authenticator(keys, "fls-server", no_audience), std::invalid_argument);
  std::filesystem::remove_all(dir);
}

TEST(Forms, UrlEncodedBodies) {
  auto f = ParseForm("grant_type=client_credentials&scope=system%2FPatient.rs+system%2F*.read&empty=");
  EXPECT_EQ(f["grant_type"], "client_credentials");
  EXPECT_EQ(f["scope"], "system/Patient.rs system/*.read");
  EXPECT_EQ(f["empty"], "");
  EXPECT_THROW(ParseForm("a=1&a=2"), std::invalid_argument);
  EXPECT_THROW(ParseForm("a=%zz"), std::invalid_argument);
  EXPECT_THROW(ParseForm("a=%4"), std::invalid_argument);
}

}  // namespace
}  // namespace fls::server

namespace fls::fhir {
namespace {

TEST(AuditQuery, SecretsAreRedactedAndLongQueriesCut) {
  EXPECT_EQ(RedactedQuery("name=dupont&access_token=abc.def.ghi&_count=10"), "name=dupont&access_token=REDACTED&_count=10");
  EXPECT_EQ(RedactedQuery("client_assertion=x&code=y&password=z"), "client_assertion=REDACTED&code=REDACTED&password=REDACTED");
  EXPECT_EQ(RedactedQuery("codex=1&token_type=2"), "codex=1&token_type=2") << "only the exact names";
  EXPECT_EQ(RedactedQuery(""), "");
  std::string longq(5000, 'a');
  EXPECT_EQ(RedactedQuery("q=" + longq).size(), 1003u);
}

}  // namespace
}  // namespace fls::fhir
