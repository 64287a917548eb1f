// Access control, black box: SMART Backend Services at POST /auth/token (every refusal the
// specification lists, each with its OAuth error), bearer tokens on every route, scopes and roles
// (the quality role reaches no Patient by any route), and the operator's `client add` command.
// Client keys and assertions are made here with the server's JOSE unit (server/jose.h, itself
// checked against RFC 7515's examples in tests/server/jose_test.cpp).
#include <gtest/gtest.h>
#include <openssl/hmac.h>
#include <rapidjson/document.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <regex>
#include <thread>

#include "server/auth.h"
#include "server/jose.h"
#include "tests/api/test_client.h"
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace fls::test {
namespace {

using server::Role;
namespace jose = server::jose;

struct TestClient {
  std::string id;
  Role role;
  std::shared_ptr<jose::Key> key;  // private
  std::string alg;
  std::vector<std::string> sites;
};

std::string g_dir;
std::vector<TestClient> g_clients;
std::unique_ptr<ScratchDatabase> g_db;
std::unique_ptr<ServerProcess> g_server;

int Port() { return g_server->port(); }

std::string Serialize(const rapidjson::Value& v) {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  v.Accept(w);
  return std::string(sb.GetString(), sb.GetSize());
}
std::string Base() { return "http://127.0.0.1:" + std::to_string(Port()); }
std::string TokenUrl() { return Base() + "/auth/token"; }

const TestClient& Client(const std::string& id) {
  for (const auto& c : g_clients) {
    if (c.id == id) return c;
  }
  throw std::runtime_error("no test client " + id);
}

int64_t Now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string NewJti() {
  static std::mt19937_64 rng(std::random_device{}());
  return "jti-" + std::to_string(rng());
}

std::string Claims(const std::string& iss, const std::string& sub, const std::string& aud, int64_t exp,
                   const std::string& jti) {
  std::string out = "{\"iss\":\"" + iss + "\",\"sub\":\"" + sub + "\",\"aud\":\"" + aud + "\",\"exp\":" + std::to_string(exp);
  if (!jti.empty()) out += ",\"jti\":\"" + jti + "\"";
  return out + "}";
}

std::string Assertion(const std::string& client_id, int64_t exp_in = 240, std::string jti = "") {
  const TestClient& c = Client(client_id);
  if (jti.empty()) jti = NewJti();
  return jose::SignCompact(*c.key, c.alg, Claims(c.id, c.id, TokenUrl(), Now() + exp_in, jti));
}

std::string Form(const std::map<std::string, std::string>& fields) {
  std::string out;
  for (const auto& [k, v] : fields) {
    if (!out.empty()) out += '&';
    out += k + "=";
    for (unsigned char ch : v) {
      if (std::isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == '~') {
        out += static_cast<char>(ch);
      } else {
        char buf[4];
        std::snprintf(buf, sizeof buf, "%%%02X", ch);
        out += buf;
      }
    }
  }
  return out;
}

Response TokenRequest(const std::string& assertion, const std::string& scope = "system/*.rs",
                      std::map<std::string, std::string> extra = {}) {
  std::map<std::string, std::string> f = {
      {"grant_type", "client_credentials"},
      {"client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
      {"client_assertion", assertion},
      {"scope", scope}};
  for (auto& [k, v] : extra) {
    if (v == "\x7f") f.erase(k);
    else f[k] = v;
  }
  return Http(Port(), "POST", "/auth/token", Form(f),
              {{"Content-Type", "application/x-www-form-urlencoded"}, {"Authorization", ""}});
}

std::string TokenFor(const std::string& client_id, const std::string& scope = "") {
  const TestClient& c = Client(client_id);
  std::string s = scope.empty() ? server::DefaultScopes(c.role) : scope;
  Response r = TokenRequest(Assertion(client_id), s);
  if (r.status != 200) throw std::runtime_error("token for " + client_id + ": " + std::to_string(r.status) + " " + r.body);
  return r.Json()["access_token"].GetString();
}

Response As(const std::string& token, const std::string& method, const std::string& path, const std::string& body = "",
            std::map<std::string, std::string> headers = {}) {
  headers["Authorization"] = "Bearer " + token;
  return Http(Port(), method, path, body, headers);
}

class AuthEnv : public ::testing::Environment {
 public:
  void SetUp() override {
    char tmpl[] = "/tmp/fls-auth-test-XXXXXX";
    g_dir = mkdtemp(tmpl);
    auto make = [](std::string id, Role role, const char* kty, const char* size, const char* alg,
                   std::vector<std::string> sites = {}) {
      TestClient c{id, role, std::make_shared<jose::Key>(jose::Key::Generate(kty, size, id + "-k1")), alg, sites};
      return c;
    };
    g_clients.push_back(make("ehr-es", Role::kEhr, "EC", "P-384", "ES384"));
    g_clients.push_back(make("ehr-rs", Role::kEhr, "RSA", "2048", "RS384"));
    g_clients.push_back(make("coord-a", Role::kCoordinator, "EC", "P-384", "ES384", {"Organization/site-a"}));
    g_clients.push_back(make("quality", Role::kQuality, "EC", "P-384", "ES384"));
    g_clients.push_back(make("admin", Role::kAdmin, "EC", "P-384", "ES384"));
    for (const auto& c : g_clients) {
      server::RegisteredClient rc;
      rc.client_id = c.id;
      rc.name = c.id;
      rc.role = c.role;
      rc.sites = c.sites;
      rc.jwks_json = jose::JwksJson({c.key.get()});
      server::ClientRegistry::Save(g_dir + "/clients.json", rc);
    }
    g_db = std::make_unique<ScratchDatabase>();
    g_server = std::make_unique<ServerProcess>(std::map<std::string, std::string>{
        {"FLS_AUTH_DIR", g_dir}, {"FLS_CLIENTS_FILE", g_dir + "/clients.json"}});
    ASSERT_TRUE(g_server->WaitReady(30000)) << g_server->LogTail();
  }
  void TearDown() override {
    g_server.reset();
    g_db.reset();
    std::error_code ec;
    std::filesystem::remove_all(g_dir, ec);
  }
};
const auto* const kEnv = ::testing::AddGlobalTestEnvironment(new AuthEnv);

// ---------------------------------------------------------------------------------- discovery

TEST(Smart, ConfigurationAndKeysArePublic) {
  Response r = Http(Port(), "GET", "/.well-known/smart-configuration", "", {{"Authorization", ""}});
  ASSERT_EQ(r.status, 200) << r.body;
  auto d = r.Json();
  EXPECT_EQ(std::string(d["token_endpoint"].GetString()), TokenUrl());
  std::set<std::string> caps, algs;
  for (auto& c : d["capabilities"].GetArray()) caps.insert(c.GetString());
  for (auto& a : d["token_endpoint_auth_signing_alg_values_supported"].GetArray()) algs.insert(a.GetString());
  EXPECT_TRUE(caps.count("client-confidential-asymmetric"));
  EXPECT_TRUE(caps.count("permission-v1") && caps.count("permission-v2"));
  EXPECT_EQ(algs, (std::set<std::string>{"RS384", "ES384"}));
  EXPECT_STREQ(d["token_endpoint_auth_methods_supported"][0].GetString(), "private_key_jwt");
  Response jwks = Http(Port(), "GET", "/.well-known/jwks.json", "", {{"Authorization", ""}});
  ASSERT_EQ(jwks.status, 200);
  auto set = jose::ParseJwks(jwks.body);
  ASSERT_FALSE(set.keys.empty());
  EXPECT_FALSE(set.keys[0]->has_private()) << "only public keys are published";
  // The metadata and the probes need no token either; the CapabilityStatement names the token endpoint.
  Response meta = Http(Port(), "GET", "/metadata", "", {{"Authorization", ""}});
  ASSERT_EQ(meta.status, 200);
  auto mj = meta.Json();
  auto& security = mj["rest"][0]["security"];
  EXPECT_STREQ(security["service"][0]["coding"][0]["code"].GetString(), "SMART-on-FHIR");
  EXPECT_EQ(std::string(security["extension"][0]["extension"][0]["valueUri"].GetString()), TokenUrl());
  EXPECT_EQ(Http(Port(), "GET", "/healthz", "", {{"Authorization", ""}}).status, 200);
}

// ---------------------------------------------------------------------------------- token endpoint

TEST(Token, Es384AndRs384AssertionsGetShortLivedTokensThatWork) {
  for (const char* id : {"ehr-es", "ehr-rs"}) {
    Response r = TokenRequest(Assertion(id), "system/Patient.rs system/Observation.read");
    ASSERT_EQ(r.status, 200) << id << ": " << r.body;
    EXPECT_EQ(r.Header("cache-control"), "no-store");
    auto d = r.Json();
    EXPECT_STREQ(d["token_type"].GetString(), "bearer");
    EXPECT_LE(d["expires_in"].GetInt(), 300);
    EXPECT_GT(d["expires_in"].GetInt(), 0);
    EXPECT_EQ(std::string(d["scope"].GetString()), "system/Patient.rs system/Observation.read");
    std::string token = d["access_token"].GetString();
    EXPECT_EQ(As(token, "GET", "/Patient?_count=1").status, 200) << id;
    // The token's own claims: at most 5 minutes.
    auto jws = jose::ParseCompact(token);
    ASSERT_TRUE(jws);
    rapidjson::Document claims;
    claims.Parse(jws->payload_json.c_str());
    EXPECT_LE(claims["exp"].GetInt64() - claims["iat"].GetInt64(), 300);
    EXPECT_STREQ(claims["sub"].GetString(), id);
  }
}

struct Refusal {
  const char* name;
  std::function<Response()> send;
  int status;
  const char* error;
};

TEST(Token, EveryRefusalWithItsError) {
  const TestClient& c = Client("ehr-es");
  auto other = std::make_shared<jose::Key>(jose::Key::Generate("EC", "P-384", "ehr-es-k1"));  // same kid, other key
  auto raw = [&](const std::string& header, const std::string& claims, const std::string& sig) {
    return jose::Base64UrlEncode(header) + "." + jose::Base64UrlEncode(claims) + "." + jose::Base64UrlEncode(sig);
  };
  std::string replayed = Assertion("ehr-es");
  ASSERT_EQ(TokenRequest(replayed).status, 200);
  const Refusal cases[] = {
      {"bad signature", [&] { return TokenRequest(jose::SignCompact(*other, "ES384", Claims(c.id, c.id, TokenUrl(), Now() + 60, NewJti()))); }, 401, "invalid_client"},
      {"wrong aud", [&] { return TokenRequest(jose::SignCompact(*c.key, "ES384", Claims(c.id, c.id, Base() + "/token", Now() + 60, NewJti()))); }, 401, "invalid_client"},
      {"expired", [&] { return TokenRequest(Assertion("ehr-es", -120)); }, 401, "invalid_client"},
      {"exp too far ahead", [&] { return TokenRequest(Assertion("ehr-es", 3600)); }, 401, "invalid_client"},
      {"replayed jti", [&] { return TokenRequest(replayed); }, 401, "invalid_client"},
      {"unknown kid", [&] {
         auto k = jose::Key::Generate("EC", "P-384", "not-registered");
         return TokenRequest(jose::SignCompact(k, "ES384", Claims(c.id, c.id, TokenUrl(), Now() + 60, NewJti())));
       }, 401, "invalid_client"},
      {"wrong algorithm (RS256)", [&] {
         const TestClient& r = Client("ehr-rs");
         return TokenRequest(jose::SignCompact(*r.key, "RS256", Claims(r.id, r.id, TokenUrl(), Now() + 60, NewJti())));
       }, 401, "invalid_client"},
      {"alg none", [&] {
         return TokenRequest(raw(R"({"alg":"none","kid":"ehr-es-k1","typ":"JWT"})", Claims(c.id, c.id, TokenUrl(), Now() + 60, NewJti()), ""));
       }, 401, "invalid_client"},
      {"HMAC with the public key as secret", [&] {
         std::string header = R"({"alg":"HS384","kid":"ehr-es-k1","typ":"JWT"})";
         std::string input = jose::Base64UrlEncode(header) + "." +
                             jose::Base64UrlEncode(Claims(c.id, c.id, TokenUrl(), Now() + 60, NewJti()));
         std::string secret = c.key->PublicJwk();
         unsigned char mac[64];
         unsigned int len = 0;
         HMAC(EVP_sha384(), secret.data(), static_cast<int>(secret.size()), reinterpret_cast<const unsigned char*>(input.data()),
              input.size(), mac, &len);
         return TokenRequest(input + "." + jose::Base64UrlEncode(std::string(reinterpret_cast<char*>(mac), len)));
       }, 401, "invalid_client"},
      {"iss differs from sub", [&] { return TokenRequest(jose::SignCompact(*c.key, "ES384", Claims(c.id, "someone", TokenUrl(), Now() + 60, NewJti()))); }, 401, "invalid_client"},
      {"unknown client", [&] { return TokenRequest(jose::SignCompact(*c.key, "ES384", Claims("nobody", "nobody", TokenUrl(), Now() + 60, NewJti()))); }, 401, "invalid_client"},
      {"no jti", [&] { return TokenRequest(jose::SignCompact(*c.key, "ES384", Claims(c.id, c.id, TokenUrl(), Now() + 60, ""))); }, 401, "invalid_client"},
      {"not a JWS", [&] { return TokenRequest("abc.def"); }, 401, "invalid_client"},
      {"grant_type password", [&] { return TokenRequest(Assertion("ehr-es"), "system/*.rs", {{"grant_type", "password"}}); }, 400, "unsupported_grant_type"},
      {"wrong assertion type", [&] { return TokenRequest(Assertion("ehr-es"), "system/*.rs", {{"client_assertion_type", "urn:x"}}); }, 400, "invalid_request"},
      {"no assertion", [&] { return TokenRequest("", "system/*.rs", {{"client_assertion", "\x7f"}}); }, 400, "invalid_request"},
      {"no scope", [&] { return TokenRequest(Assertion("ehr-es"), "", {{"scope", "\x7f"}}); }, 400, "invalid_scope"},
      {"only scopes the role cannot have", [&] { return TokenRequest(Assertion("ehr-es"), "system/AuditEvent.rs patient/Patient.rs"); }, 400, "invalid_scope"},
      {"JSON instead of a form", [&] {
         return Http(Port(), "POST", "/auth/token", R"({"grant_type":"client_credentials"})",
                     {{"Content-Type", "application/json"}, {"Authorization", ""}});
       }, 400, "invalid_request"},
  };
  for (const auto& k : cases) {
    Response r = k.send();
    EXPECT_EQ(r.status, k.status) << k.name << ": " << r.body;
    auto d = r.Json();
    ASSERT_TRUE(d.IsObject() && d.HasMember("error")) << k.name << ": " << r.body;
    EXPECT_STREQ(d["error"].GetString(), k.error) << k.name << ": " << r.body;
    EXPECT_TRUE(d.HasMember("error_description")) << k.name;
    EXPECT_EQ(r.body.find("access_token"), std::string::npos) << k.name;
  }
}

// ---------------------------------------------------------------------------------- bearer tokens

TEST(Bearer, NoTokenOrABadOneIs401WithAnOutcome) {
  for (const std::string& header : {std::string(""), std::string("Basic YTpi"), std::string("Bearer "),
                                    std::string("Bearer not.a.token"), std::string("Bearer ") + Assertion("ehr-es")}) {
    Response r = Http(Port(), "GET", "/Patient", "", {{"Authorization", header}});
    EXPECT_EQ(r.status, 401) << "'" << header.substr(0, 20) << "': " << r.body;
    EXPECT_NE(r.body.find("OperationOutcome"), std::string::npos);
    EXPECT_EQ(r.Header("www-authenticate").rfind("Bearer", 0), 0u) << header.substr(0, 20);
  }
  // A token signed by a key this server never had (another server's).
  auto foreign = jose::Key::Generate("EC", "P-256", "20990101000000-beef");
  std::string forged = jose::SignCompact(
      foreign, "ES256",
      R"({"iss":"fls-server","aud":"fls-server","sub":"admin","client_id":"admin","exp":)" + std::to_string(Now() + 60) +
          R"(,"scope":"system/*.cruds","fls_role":"admin","fls_sites":[]})");
  EXPECT_EQ(As(forged, "GET", "/Patient").status, 401);
  // Writes without a token write nothing.
  Response w = Http(Port(), "POST", "/Patient", R"({"resourceType":"Patient","name":[{"family":"Sanstoken"}]})", {{"Authorization", ""}});
  EXPECT_EQ(w.status, 401);
  EXPECT_EQ(Sql("SELECT count(*) FROM resource_version WHERE content::text LIKE '%Sanstoken%' AND res_type <> 'AuditEvent'"), "0");
}

TEST(Scopes, V1AndV2ScopesLimitTypesAndInteractions) {
  std::string rs = TokenFor("ehr-es", "system/Patient.rs");
  EXPECT_EQ(As(rs, "GET", "/Patient?_count=1").status, 200);
  EXPECT_EQ(As(rs, "POST", "/Patient", R"({"resourceType":"Patient"})").status, 403);
  EXPECT_EQ(As(rs, "GET", "/Observation?_count=1").status, 403);
  std::string v1 = TokenFor("ehr-es", "system/Observation.read system/Patient.write");
  EXPECT_EQ(As(v1, "GET", "/Observation?_count=1").status, 200);
  EXPECT_EQ(As(v1, "POST", "/Observation", R"({"resourceType":"Observation","status":"final","code":{"text":"x"}})").status, 403);
  Response created = As(v1, "POST", "/Patient", R"({"resourceType":"Patient"})");
  EXPECT_EQ(created.status, 201) << created.body;
  EXPECT_EQ(As(v1, "GET", "/Patient?_count=1").status, 403) << "write is not read";
  // A transaction is checked entry by entry: one refused entry refuses the whole Bundle.
  std::string bundle = R"({"resourceType":"Bundle","type":"transaction","entry":[
    {"resource":{"resourceType":"Patient","name":[{"family":"Scopetx"}]},"request":{"method":"POST","url":"Patient"}},
    {"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"}},"request":{"method":"POST","url":"Observation"}}]})";
  Response tx = As(v1, "POST", "/", bundle);
  EXPECT_EQ(tx.status, 403) << tx.body;
  EXPECT_EQ(Sql("SELECT count(*) FROM resource_version WHERE content::text LIKE '%Scopetx%' AND res_type <> 'AuditEvent'"), "0");
}

TEST(Roles, TheQualityRoleReachesNoPatientByAnyRoute) {
  // Data to reach for: a patient with a Task (admin writes it).
  Response p = Http(Port(), "POST", "/Patient", R"({"resourceType":"Patient","name":[{"family":"Qualitynot"}],"identifier":[{"system":"urn:x","value":"Q1"}]})");
  ASSERT_EQ(p.status, 201) << p.body;
  std::string pid = p.Json()["id"].GetString();
  ASSERT_EQ(Http(Port(), "POST", "/Task", R"({"resourceType":"Task","status":"requested","intent":"order","for":{"reference":"Patient/)" + pid + R"("}})").status, 201);
  std::string q = TokenFor("quality");
  struct Try {
    const char* method;
    std::string path, body;
  };
  const Try tries[] = {
      {"GET", "/Patient/" + pid, ""},
      {"GET", "/Patient?identifier=Q1", ""},
      {"POST", "/Patient/_search", ""},
      {"GET", "/Patient/" + pid + "/_history", ""},
      {"GET", "/Patient/_history", ""},
      {"GET", "/_history", ""},
      {"GET", "/Task?patient=" + pid, ""},
      {"GET", "/Task?patient=" + pid + "&_include=Task:patient", ""},
      {"GET", "/Observation", ""},
      {"GET", "/EpisodeOfCare", ""},
      {"GET", "/$call-list", ""},
      {"POST", "/", R"({"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"GET","url":"Patient/)" + pid + R"("}}]})"},
  };
  for (const auto& t : tries) {
    Response r = As(q, t.method, t.path, t.body);
    EXPECT_EQ(r.status, 403) << t.method << " " << t.path << ": " << r.body.substr(0, 300);
    EXPECT_EQ(r.body.find("Qualitynot"), std::string::npos) << t.path;
  }
  // A batch answers the Patient entry 403 and the others as usual.
  Response batch = As(q, "POST", "/", R"({"resourceType":"Bundle","type":"batch","entry":[
    {"request":{"method":"GET","url":"Patient/)" + pid + R"("}},
    {"request":{"method":"GET","url":"Measure?_count=1"}}]})");
  ASSERT_EQ(batch.status, 200) << batch.body;
  auto b = batch.Json();
  EXPECT_EQ(std::string(b["entry"][0]["response"]["status"].GetString()).substr(0, 3), "403");
  EXPECT_EQ(std::string(b["entry"][1]["response"]["status"].GetString()).substr(0, 3), "200");
  EXPECT_EQ(batch.body.find("Qualitynot"), std::string::npos);
  // What the role is for.
  EXPECT_EQ(As(q, "GET", "/Measure").status, 200);
  EXPECT_EQ(As(q, "GET", "/Organization").status, 200);
  EXPECT_EQ(As(q, "GET", "/metadata").status, 200);
}

TEST(Roles, EachRoleOnlyWhatItsJobNeeds) {
  std::string ehr = TokenFor("ehr-es"), coord = TokenFor("coord-a"), admin = TokenFor("admin");
  // The EHR pushes and reads clinical data but does not drive the pathway nor read the audit.
  EXPECT_EQ(As(ehr, "POST", "/Patient", R"({"resourceType":"Patient"})").status, 201);
  EXPECT_EQ(As(ehr, "POST", "/EpisodeOfCare/x/$event", R"({"resourceType":"Parameters"})").status, 403);
  EXPECT_EQ(As(ehr, "GET", "/$call-list").status, 403);
  EXPECT_EQ(As(ehr, "GET", "/AuditEvent").status, 403);
  EXPECT_EQ(As(ehr, "GET", "/_history").status, 403);
  // The coordinator drives the pathway (past access control: an unknown case is 404) and never deletes.
  EXPECT_EQ(As(coord, "POST", "/EpisodeOfCare/none/$event", R"({"resourceType":"Parameters","parameter":[{"name":"event","valueCode":"enrol"}]})").status, 404);
  EXPECT_EQ(As(coord, "GET", "/$call-list").status, 200);
  EXPECT_EQ(As(coord, "DELETE", "/Patient/x").status, 403);
  EXPECT_EQ(As(coord, "PUT", "/EpisodeOfCare/x", R"({"resourceType":"EpisodeOfCare","id":"x","status":"active","patient":{"reference":"Patient/x"}})").status, 403)
      << "a case changes through $event only";
  // Nobody writes the audit trail through the API, not even an administrator.
  EXPECT_EQ(As(admin, "POST", "/AuditEvent", R"({"resourceType":"AuditEvent"})").status, 403);
  EXPECT_EQ(As(admin, "DELETE", "/AuditEvent/x").status, 403);
  EXPECT_EQ(As(admin, "GET", "/AuditEvent").status, 200);
}

// A hip fracture pushed by the EHR for a patient admitted at `site`: the FLS case is that site's.
struct SiteCase {
  std::string patient, episode;
};
SiteCase CaseAt(const std::string& site) {
  std::string tag = NewJti();
  std::string bundle = R"({"resourceType":"Bundle","type":"transaction","entry":[
    {"fullUrl":"urn:uuid:6f1c0a52-0000-4000-8000-000000000001","resource":{"resourceType":"Patient","gender":"female","birthDate":"1940-05-06","identifier":[{"system":"urn:test","value":")" + tag + R"("}]},"request":{"method":"POST","url":"Patient"}},
    {"fullUrl":"urn:uuid:6f1c0a52-0000-4000-8000-000000000002","resource":{"resourceType":"Encounter","status":"finished","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"IMP"},"subject":{"reference":"urn:uuid:6f1c0a52-0000-4000-8000-000000000001"},"serviceProvider":{"reference":"Organization/)" + site + R"("}},"request":{"method":"POST","url":"Encounter"}},
    {"resource":{"resourceType":"Condition","subject":{"reference":"urn:uuid:6f1c0a52-0000-4000-8000-000000000001"},"encounter":{"reference":"urn:uuid:6f1c0a52-0000-4000-8000-000000000002"},"code":{"coding":[{"system":"http://hl7.org/fhir/sid/icd-10-cm","code":"S72.001A"}]},"onsetDateTime":")" + std::string("2026-11-20") + R"("},"request":{"method":"POST","url":"Condition"}}]})";
  Response r = Http(Port(), "POST", "/", bundle);
  EXPECT_EQ(r.status, 200) << r.body.substr(0, 400);
  SiteCase c;
  auto d = Http(Port(), "GET", "/Patient?identifier=urn:test%7C" + tag).Json();
  c.patient = d["entry"][0]["resource"]["id"].GetString();
  auto e = Http(Port(), "GET", "/EpisodeOfCare?patient=Patient/" + c.patient).Json();
  EXPECT_TRUE(e.HasMember("entry")) << "no case opened at " << site;
  if (e.HasMember("entry")) c.episode = e["entry"][0]["resource"]["id"].GetString();
  return c;
}

std::set<std::string> Ids(const Response& r, const std::string& type) {
  std::set<std::string> out;
  auto d = r.Json();
  if (!d.IsObject() || !d.HasMember("entry")) return out;
  for (auto& e : d["entry"].GetArray()) {
    if (std::string(e["resource"]["resourceType"].GetString()) == type) out.insert(e["resource"]["id"].GetString());
  }
  return out;
}

// A coordinator of site A reaches nothing of site B's cases and patients, by any route.
TEST(Sites, ACoordinatorReachesOnlyItsOwnSitesCasesAndPatients) {
  SiteCase a = CaseAt("site-a"), b = CaseAt("site-b");
  ASSERT_FALSE(a.episode.empty());
  ASSERT_FALSE(b.episode.empty());
  std::string coord = TokenFor("coord-a");
  // Reads.
  EXPECT_EQ(As(coord, "GET", "/Patient/" + a.patient).status, 200);
  EXPECT_EQ(As(coord, "GET", "/Patient/" + b.patient).status, 404);
  EXPECT_EQ(As(coord, "GET", "/Patient/" + b.patient + "/_history/1").status, 404);
  EXPECT_EQ(As(coord, "GET", "/Patient/" + b.patient + "/_history").status, 404);
  EXPECT_EQ(As(coord, "GET", "/EpisodeOfCare/" + b.episode).status, 404);
  EXPECT_EQ(As(coord, "GET", "/Patient/_history").status, 403);
  // Searches, includes, reverse includes.
  auto patients = Ids(As(coord, "GET", "/Patient?_id=" + a.patient + "," + b.patient), "Patient");
  EXPECT_EQ(patients, std::set<std::string>{a.patient});
  auto cases = Ids(As(coord, "GET", "/EpisodeOfCare?_count=500"), "EpisodeOfCare");
  EXPECT_TRUE(cases.count(a.episode));
  EXPECT_FALSE(cases.count(b.episode));
  Response tasks = As(coord, "GET", "/Task?_include=Task:patient&_include=Task:focus&_count=500");
  EXPECT_FALSE(Ids(tasks, "Patient").count(b.patient));
  EXPECT_TRUE(Ids(tasks, "Patient").count(a.patient));
  EXPECT_FALSE(Ids(tasks, "EpisodeOfCare").count(b.episode));
  EXPECT_TRUE(Ids(As(coord, "GET", "/Condition?patient=Patient/" + b.patient), "Condition").empty());
  EXPECT_FALSE(Ids(As(coord, "GET", "/Condition?patient=Patient/" + a.patient), "Condition").empty());
  EXPECT_TRUE(Ids(As(coord, "GET", "/Encounter?subject=Patient/" + b.patient), "Encounter").empty());
  Response rev = As(coord, "GET", "/Patient?_id=" + a.patient + "&_revinclude=EpisodeOfCare:patient");
  EXPECT_TRUE(Ids(rev, "EpisodeOfCare").count(a.episode));
  // The operations on another site's case.
  EXPECT_EQ(As(coord, "GET", "/EpisodeOfCare/" + b.episode + "/$events").status, 404);
  EXPECT_EQ(As(coord, "GET", "/EpisodeOfCare/" + b.episode + "/$recommend").status, 404);
  EXPECT_EQ(As(coord, "POST", "/EpisodeOfCare/" + b.episode + "/$event",
               R"({"resourceType":"Parameters","parameter":[{"name":"event","valueCode":"exclude"},{"name":"reason","valueString":"x"}]})").status, 404);
  EXPECT_EQ(As(coord, "GET", "/EpisodeOfCare/" + a.episode + "/$events").status, 200);
  // Writes about another site's patient.
  std::string obs = R"({"resourceType":"Observation","status":"final","code":{"text":"falls"},"subject":{"reference":"Patient/)";
  EXPECT_EQ(As(coord, "POST", "/Observation", obs + b.patient + R"("}})").status, 403);
  EXPECT_EQ(As(coord, "POST", "/Observation", obs + a.patient + R"("}})").status, 201);
  EXPECT_EQ(As(coord, "PUT", "/Patient/" + b.patient, R"({"resourceType":"Patient","id":")" + b.patient + R"("})").status, 404);
  // Bundles: a batch's read of another site's patient is 404, its search empty; a transaction
  // writing about it is refused whole.
  Response batch = As(coord, "POST", "/", R"({"resourceType":"Bundle","type":"batch","entry":[
    {"request":{"method":"GET","url":"Patient/)" + b.patient + R"("}},
    {"request":{"method":"GET","url":"Condition?patient=Patient/)" + b.patient + R"("}},
    {"request":{"method":"GET","url":"Patient/)" + a.patient + R"("}}]})");
  ASSERT_EQ(batch.status, 200) << batch.body.substr(0, 300);
  auto bj = batch.Json();
  EXPECT_EQ(std::string(bj["entry"][0]["response"]["status"].GetString()).substr(0, 3), "404");
  EXPECT_EQ(bj["entry"][1]["resource"]["total"].GetInt(), 0);
  EXPECT_EQ(std::string(bj["entry"][2]["response"]["status"].GetString()).substr(0, 3), "200");
  Response tx = As(coord, "POST", "/", R"({"resourceType":"Bundle","type":"transaction","entry":[
    {"resource":)" + obs + b.patient + R"("}},"request":{"method":"POST","url":"Observation"}}]})");
  EXPECT_EQ(tx.status, 403) << tx.body.substr(0, 300);
  // Another site's coordinator, or one with no site, sees nothing of either.
  EXPECT_EQ(As(TokenFor("ehr-es"), "GET", "/Patient/" + b.patient).status, 200) << "the EHR is not limited to a site";
}

// The audit trail: who, which client, what, when, outcome, from where; refusals too; the write's
// record in the write's own transaction; readable by administrators only, never writable.
TEST(Audit, EveryAccessAndEveryRefusalLeavesAnAuditEvent) {
  std::string ehr = TokenFor("ehr-es"), coord = TokenFor("coord-a"), quality = TokenFor("quality"), admin = TokenFor("admin");
  Response p = As(ehr, "POST", "/Patient", R"({"resourceType":"Patient","name":[{"family":"Auditee"}]})");
  ASSERT_EQ(p.status, 201);
  std::string pid = p.Json()["id"].GetString();
  auto events = [&](const std::string& query) {
    Response r = As(admin, "GET", "/AuditEvent?" + query + "&_count=100");
    EXPECT_EQ(r.status, 200) << r.body.substr(0, 300);
    return r.Json();
  };
  auto count = [&](const std::string& query) {
    auto d = events(query);
    return d.HasMember("entry") ? static_cast<int>(d["entry"].Size()) : 0;
  };
  // The create: in the same transaction, action C, the patient as entity, the client as agent.
  auto created = events("patient=Patient/" + pid + "&action=C");
  ASSERT_TRUE(created.HasMember("entry")) << "no AuditEvent for the create";
  auto& ae = created["entry"][0]["resource"];
  EXPECT_STREQ(ae["outcome"].GetString(), "0");
  EXPECT_STREQ(ae["agent"][0]["altId"].GetString(), "ehr-es");
  EXPECT_STREQ(ae["agent"][0]["type"]["coding"][0]["code"].GetString(), "ehr");
  EXPECT_STREQ(ae["agent"][0]["network"]["address"].GetString(), "127.0.0.1");
  EXPECT_STREQ(ae["subtype"][0]["code"].GetString(), "create");
  // A read and a search by the coordinator (of a patient of its site): the patient reached is named.
  SiteCase mine = CaseAt("site-a");
  ASSERT_EQ(As(coord, "GET", "/Patient/" + mine.patient).status, 200);
  EXPECT_EQ(count("patient=Patient/" + mine.patient + "&altid=coord-a&subtype=read"), 1);
  ASSERT_EQ(As(coord, "GET", "/Condition?patient=Patient/" + mine.patient).status, 200);
  EXPECT_EQ(count("patient=Patient/" + mine.patient + "&altid=coord-a&subtype=search-type"), 1);
  // A refusal (the quality role and a Patient), and a request without any token.
  ASSERT_EQ(As(quality, "GET", "/Patient/" + pid).status, 403);
  auto refused = events("altid=quality&outcome=4");
  ASSERT_TRUE(refused.HasMember("entry"));
  EXPECT_NE(std::string(refused["entry"][0]["resource"]["outcomeDesc"].GetString()).find("403"), std::string::npos);
  int before = count("agent-name=unauthenticated");
  ASSERT_EQ(Http(Port(), "GET", "/Patient/" + pid, "", {{"Authorization", ""}}).status, 401);
  EXPECT_EQ(count("agent-name=unauthenticated"), before + 1);
  // A token request leaves a login record, refused ones too.
  int logins = count("altid=ehr-es&type=http://dicom.nema.org/resources/ontology/DCM%7C110114");
  ASSERT_EQ(TokenRequest(Assertion("ehr-es", 3600)).status, 401);
  EXPECT_EQ(count("altid=ehr-es&type=http://dicom.nema.org/resources/ontology/DCM%7C110114"), logins + 1);
  // A transaction that fails writes nothing but the record of its failure.
  std::string bad = R"({"resourceType":"Bundle","type":"transaction","entry":[
    {"resource":{"resourceType":"Patient","name":[{"family":"Rolledback"}]},"request":{"method":"POST","url":"Patient"}},
    {"resource":{"resourceType":"Patient","birthDate":"not-a-date"},"request":{"method":"POST","url":"Patient"}}]})";
  Response tx = As(ehr, "POST", "/", bad);
  ASSERT_GE(tx.status, 400);
  EXPECT_EQ(Sql("SELECT count(*) FROM resource_version WHERE content::text LIKE '%Rolledback%' AND res_type = 'Patient'"), "0");
  auto failed = events("altid=ehr-es&subtype=transaction&outcome=4");
  EXPECT_TRUE(failed.HasMember("entry")) << "the failed transaction is recorded";
  // A batch that writes gets a record of its own too, with the patients its reads reached.
  Response batch = As(ehr, "POST", "/", R"({"resourceType":"Bundle","type":"batch","entry":[
    {"resource":{"resourceType":"Flag","status":"active","code":{"text":"x"},"subject":{"reference":"Patient/)" + pid + R"("}},"request":{"method":"POST","url":"Flag"}},
    {"request":{"method":"GET","url":"Patient?_id=)" + mine.patient + R"("}}]})");
  ASSERT_EQ(batch.status, 200) << batch.body.substr(0, 300);
  EXPECT_GE(count("patient=Patient/" + mine.patient + "&altid=ehr-es&subtype=batch"), 1);
  // Nobody else reads the trail; nobody changes it.
  EXPECT_EQ(As(coord, "GET", "/AuditEvent").status, 403);
  EXPECT_EQ(As(quality, "GET", "/AuditEvent").status, 403);
  std::string some = ae["id"].GetString();
  EXPECT_EQ(As(admin, "PUT", "/AuditEvent/" + some, Serialize(ae)).status, 403);
  EXPECT_EQ(As(admin, "DELETE", "/AuditEvent/" + some).status, 403);
  EXPECT_EQ(As(ehr, "POST", "/", R"({"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"DELETE","url":"AuditEvent/)" + some + R"("}}]})").status, 403);
}

// Abuse limits: a client over its rate gets 429 with Retry-After and others go on; requests
// without a valid token are throttled per address, and throttled ones do not grow the audit trail.
// A second server on the same auth folder also shows that tokens work across processes.
TEST(Limits, RateLimitsPerClientAndPerAddress) {
  ServerProcess limited(std::map<std::string, std::string>{
      {"FLS_AUTH_DIR", g_dir}, {"FLS_CLIENTS_FILE", g_dir + "/clients.json"}, {"FLS_DEV_TOKEN_FILE", g_dir + "/dev-token-2"},
      {"FLS_RATE_LIMIT", "5"}, {"FLS_RATE_BURST", "5"}, {"FLS_ANON_RATE_LIMIT", "1"}, {"FLS_ANON_RATE_BURST", "3"}});
  ASSERT_TRUE(limited.WaitReady(30000)) << limited.LogTail();
  std::string busy = TokenFor("ehr-es"), calm = TokenFor("ehr-rs");  // issued by the other server
  int ok = 0, throttled = 0;
  for (int i = 0; i < 15; ++i) {
    Response r = Http(limited.port(), "GET", "/Patient?_count=1", "", {{"Authorization", "Bearer " + busy}});
    if (r.status == 200) ++ok;
    if (r.status == 429) {
      ++throttled;
      EXPECT_GE(std::stoi("0" + r.Header("retry-after")), 1);
      EXPECT_NE(r.body.find("throttled"), std::string::npos) << r.body;
    }
  }
  EXPECT_GE(ok, 5);
  EXPECT_GE(throttled, 5) << "a burst of 5 at 5/s cannot take 15 at once";
  EXPECT_EQ(Http(limited.port(), "GET", "/Patient?_count=1", "", {{"Authorization", "Bearer " + calm}}).status, 200)
      << "another client is not throttled";
  std::string before = Sql("SELECT count(*) FROM resource_version WHERE res_type = 'AuditEvent' AND content::text LIKE '%unauthenticated%'");
  int refused = 0, anon_throttled = 0;
  for (int i = 0; i < 12; ++i) {
    Response r = Http(limited.port(), "GET", "/Patient", "", {{"Authorization", ""}});
    refused += r.status == 401;
    anon_throttled += r.status == 429;
  }
  EXPECT_LE(refused, 5);
  EXPECT_GE(anon_throttled, 7);
  std::string after = Sql("SELECT count(*) FROM resource_version WHERE res_type = 'AuditEvent' AND content::text LIKE '%unauthenticated%'");
  EXPECT_LE(std::stoi(after) - std::stoi(before), refused) << "throttled refusals are not recorded one by one";
  EXPECT_EQ(limited.Stop(), 0);
}

TEST(Operator, ClientAddRegistersASystemWithoutARestart) {
  auto key = jose::Key::Generate("EC", "P-384", "late-k1");
  std::string jwks = g_dir + "/late.jwks.json";
  std::ofstream(jwks) << jose::JwksJson({&key});
  std::string cmd = "FLS_AUTH_DIR='" + g_dir + "' FLS_CLIENTS_FILE='" + g_dir + "/clients.json' '" +
                    Env("FLS_SERVER_BIN") + "' client add --name late-ehr --role ehr --jwks '" + jwks + "' >/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));  // the registry looks again after a second
  std::string assertion = jose::SignCompact(key, "ES384", Claims("late-ehr", "late-ehr", TokenUrl(), Now() + 60, NewJti()));
  Response r = TokenRequest(assertion, "system/Patient.rs");
  EXPECT_EQ(r.status, 200) << r.body;
  // A private key is never registered.
  std::string bad = g_dir + "/private.jwks.json";
  {
    // RFC 7515 appendix A.3's EC key, private part included.
    std::ofstream out(bad);
    out << R"({"keys":[{"kty":"EC","crv":"P-256","kid":"a3","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",)"
        << R"("y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","d":"jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"}]})";
  }
  std::string cmd2 = "FLS_AUTH_DIR='" + g_dir + "' FLS_CLIENTS_FILE='" + g_dir + "/clients.json' '" + Env("FLS_SERVER_BIN") +
                     "' client add --name bad --role ehr --jwks '" + bad + "' >/dev/null 2>&1";
  EXPECT_NE(std::system(cmd2.c_str()), 0);
  EXPECT_EQ(ReadFile(g_dir + "/clients.json").find("\"d\""), std::string::npos) << "a private key was registered";
}

// What a token's scopes say is what it can do, on the conditional forms and the operations too.
TEST(Scopes, ConditionalFormsAndOperationsNeedTheirLetters) {
  // A create-only token cannot use If-None-Exist to read what matches.
  std::string c_only = TokenFor("ehr-es", "system/Patient.c");
  Response r = Http(Port(), "POST", "/Patient", R"({"resourceType":"Patient"})",
                    {{"Authorization", "Bearer " + c_only}, {"If-None-Exist", "identifier=urn:x|1"}});
  EXPECT_EQ(r.status, 403) << r.body;
  EXPECT_EQ(As(c_only, "POST", "/Patient", R"({"resourceType":"Patient"})").status, 201);
  // Conditional update and delete search first.
  std::string ud = TokenFor("ehr-es", "system/Patient.ud");
  EXPECT_EQ(As(ud, "PUT", "/Patient?identifier=urn:x%7C1", R"({"resourceType":"Patient"})").status, 403);
  EXPECT_EQ(As(ud, "DELETE", "/Patient?identifier=urn:x%7C1").status, 403);
  // The pathway operations write: a read-only token of a coordinator cannot move a case.
  SiteCase a = CaseAt("site-a");
  std::string ro = TokenFor("coord-a", "system/EpisodeOfCare.rs system/Task.rs");
  EXPECT_EQ(As(ro, "POST", "/EpisodeOfCare/" + a.episode + "/$event",
               R"({"resourceType":"Parameters","parameter":[{"name":"event","valueCode":"exclude"},{"name":"reason","valueString":"x"}]})").status, 403);
  EXPECT_EQ(As(ro, "GET", "/EpisodeOfCare/" + a.episode + "/$events").status, 200);
}

// A conditional reference is a search: the quality role cannot use one to find a patient.
TEST(Roles, AConditionalReferenceIsASearchTheRoleMustBeAllowed) {
  std::string q = TokenFor("quality");
  std::string bundle = R"({"resourceType":"Bundle","type":"transaction","entry":[
    {"resource":{"resourceType":"MeasureReport","status":"complete","type":"individual","measure":"http://x/Measure/1",
     "subject":{"reference":"Patient?name=Aud"},"period":{"start":"2026-01-01","end":"2026-12-31"}},
     "request":{"method":"POST","url":"MeasureReport"}}]})";
  Response r = As(q, "POST", "/", bundle);
  EXPECT_EQ(r.status, 403) << r.body.substr(0, 300);
  // Its own MeasureReports it may save.
  Response ok = As(q, "POST", "/MeasureReport", R"({"resourceType":"MeasureReport","status":"complete","type":"summary","measure":"http://x/Measure/1","period":{"start":"2026-01-01","end":"2026-12-31"}})");
  EXPECT_EQ(ok.status, 201) << ok.body.substr(0, 300);
}

// A coordinator puts a nurse in charge of a case of its sites (EpisodeOfCare.careManager, by a
// plain update with If-Match) and changes nothing else of a case that way: the rest moves through
// the pathway. Another site's case stays unknown; no case is opened by update.
TEST(Sites, ACoordinatorChangesOnlyWhoIsInChargeOfACase) {
  SiteCase a = CaseAt("site-a"), b = CaseAt("site-b");
  std::string coord = TokenFor("coord-a");
  auto current = [&](const std::string& id) { return As(coord, "GET", "/EpisodeOfCare/" + id); };
  Response seen = current(a.episode);
  ASSERT_EQ(seen.status, 200);
  std::string body = seen.body;
  std::string assigned = body;
  assigned.insert(assigned.rfind('}'), R"(,"careManager":{"reference":"Practitioner/nurse-1","display":"Claire Bernard"})");
  Response stale = As(coord, "PUT", "/EpisodeOfCare/" + a.episode, assigned, {{"If-Match", "W/\"0\""}});
  EXPECT_EQ(stale.status, 412) << stale.body;
  Response ok = As(coord, "PUT", "/EpisodeOfCare/" + a.episode, assigned, {{"If-Match", seen.Header("etag")}});
  ASSERT_EQ(ok.status, 200) << ok.body;
  auto j = current(a.episode).Json();
  EXPECT_STREQ(j["careManager"]["reference"].GetString(), "Practitioner/nurse-1");
  auto found = As(coord, "GET", "/EpisodeOfCare?care-manager=Practitioner/nurse-1&_id=" + a.episode).Json();
  EXPECT_EQ(found["total"].GetInt(), 1);
  // Anything else of the case by update: 403, nothing written.
  const std::string now = current(a.episode).body;
  std::string tagged = now;
  const std::string moved = std::regex_replace(now, std::regex(R"("managingOrganization"\s*:\s*\{[^}]*\})"),
                                               R"("managingOrganization":{"reference":"Organization/site-b"})");
  const std::string closed = std::regex_replace(now, std::regex(R"("status"\s*:\s*"[a-z-]+")"), R"("status":"finished")",
                                                std::regex_constants::format_first_only);
  ASSERT_NE(moved, now);
  ASSERT_NE(closed, now);
  tagged.insert(tagged.rfind('}'), R"(,"identifier":[{"system":"urn:x","value":"x"}])");
  for (const std::string& edited : {moved, tagged, closed}) {
    Response r = As(coord, "PUT", "/EpisodeOfCare/" + a.episode, edited);
    EXPECT_EQ(r.status, 403) << r.body;
    EXPECT_NE(r.body.find("only in who is in charge of it (careManager, team)"), std::string::npos) << r.body;
  }
  EXPECT_EQ(current(a.episode).Header("etag"), ok.Header("etag")) << "nothing written";
  // Released: the case as it was, without the member.
  ASSERT_EQ(As(coord, "PUT", "/EpisodeOfCare/" + a.episode, body).status, 200);
  EXPECT_FALSE(current(a.episode).Json().HasMember("careManager"));
  // Another site's case, and a case opened by update.
  const std::string ehr = TokenFor("ehr-es");
  std::string bb = As(ehr, "GET", "/EpisodeOfCare/" + b.episode).body;
  EXPECT_EQ(As(coord, "PUT", "/EpisodeOfCare/" + b.episode, bb).status, 404);
  std::string fresh = R"({"resourceType":"EpisodeOfCare","id":"by-put-)" + a.patient.substr(0, 8) +
                      R"(","status":"planned","patient":{"reference":"Patient/)" + a.patient + R"("}})";
  EXPECT_EQ(As(coord, "PUT", "/EpisodeOfCare/by-put-" + a.patient.substr(0, 8), fresh).status, 403);
  // The EHR's updates are not limited so.
  std::string by_ehr = As(ehr, "GET", "/EpisodeOfCare/" + a.episode).body;
  by_ehr.insert(by_ehr.rfind('}'), R"(,"identifier":[{"system":"urn:ehr","value":"ep-1"}])");
  EXPECT_EQ(As(ehr, "PUT", "/EpisodeOfCare/" + a.episode, by_ehr).status, 200);
}

// A coordinator's conditional create or update never reveals nor overwrites another site's resource.
TEST(Sites, ConditionalWritesStayWithinTheSites) {
  SiteCase b = CaseAt("site-b");
  std::string coord = TokenFor("coord-a");
  std::string identifier = Sql("SELECT content->'identifier'->0->>'value' FROM resource_version WHERE res_type = 'Patient' AND res_id = '" + b.patient + "'");
  ASSERT_FALSE(identifier.empty());
  Response created = Http(Port(), "POST", "/Patient", R"({"resourceType":"Patient","name":[{"family":"Autre"}]})",
                          {{"Authorization", "Bearer " + coord}, {"If-None-Exist", "identifier=urn:test|" + identifier},
                           {"Prefer", "return=representation"}});
  EXPECT_EQ(created.status, 201) << "another site's match is not revealed: " << created.body.substr(0, 200);
  EXPECT_NE(created.body.find("Autre"), std::string::npos);
  EXPECT_EQ(created.body.find("\"" + b.patient + "\""), std::string::npos);
  Response put = As(coord, "PUT", "/Patient?identifier=urn:none%7Cnothing",
                    R"({"resourceType":"Patient","id":")" + b.patient + R"(","name":[{"family":"Overwritten"}]})");
  EXPECT_EQ(put.status, 404) << put.body.substr(0, 200);
  EXPECT_EQ(Sql("SELECT count(*) FROM resource_version WHERE res_type = 'Patient' AND content::text LIKE '%Overwritten%'"), "0");
}

}  // namespace
}  // namespace fls::test
