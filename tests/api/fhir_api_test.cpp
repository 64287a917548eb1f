// Black-box tests of the FHIR REST surface: the real server binary over real HTTP against the
// real PostgreSQL started by ./deploy/fls test.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <random>
#include <set>
#include <thread>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "tests/api/test_client.h"

namespace fls::test {
namespace {

const auto* const kEnv = ::testing::AddGlobalTestEnvironment(new SuiteServer);

int Port() { return SuiteServer::Server().port(); }
Response Get(const std::string& t, std::map<std::string, std::string> h = {}) { return Http(Port(), "GET", t, "", h); }
Response Post(const std::string& t, const std::string& b, std::map<std::string, std::string> h = {}) {
  return Http(Port(), "POST", t, b, h);
}
Response Put(const std::string& t, const std::string& b, std::map<std::string, std::string> h = {}) {
  return Http(Port(), "PUT", t, b, h);
}
Response Delete(const std::string& t, std::map<std::string, std::string> h = {}) {
  return Http(Port(), "DELETE", t, "", h);
}

std::string Unique() {
  static std::mt19937_64 rng{std::random_device{}()};
  return std::to_string(rng() % 1000000000000ULL);
}

std::string PatientJson(const std::string& ident, const std::string& family = "Dupré",
                        const std::string& given = "Hélène", const std::string& birth = "1950-03-04") {
  return R"({"resourceType":"Patient","identifier":[{"system":"urn:oid:1.2.250.1.213.1.4.8","value":")" + ident +
         R"("}],"name":[{"family":")" + family + R"(","given":[")" + given + R"("]}],"gender":"female","birthDate":")" +
         birth + R"("})";
}

std::string IdOf(const Response& r) {
  auto d = r.Json();
  return d.IsObject() && d.HasMember("id") ? d["id"].GetString() : "";
}

int Total(const Response& r) {
  auto d = r.Json();
  return d.IsObject() && d.HasMember("total") ? d["total"].GetInt() : -1;
}

std::vector<std::string> EntryIds(const Response& r) {
  std::vector<std::string> ids;
  auto d = r.Json();
  if (!d.IsObject() || !d.HasMember("entry")) return ids;
  for (auto& e : d["entry"].GetArray()) {
    if (e.HasMember("resource") && e["resource"].HasMember("id")) ids.push_back(e["resource"]["id"].GetString());
  }
  return ids;
}

std::string NextLink(const Response& r) {
  auto d = r.Json();
  if (!d.IsObject() || !d.HasMember("link")) return "";
  for (auto& l : d["link"].GetArray()) {
    if (std::string(l["relation"].GetString()) == "next") {
      std::string url = l["url"].GetString();
      auto p = url.find('/', url.find("//") + 2);
      return url.substr(p);
    }
  }
  return "";
}

// Asserts an error response: the status and an OperationOutcome body.
void ExpectOutcome(const Response& r, int status, const std::string& what) {
  EXPECT_EQ(r.status, status) << what << ": " << r.body;
  auto d = r.Json();
  ASSERT_TRUE(d.IsObject()) << what << ": body is not JSON: " << r.body.substr(0, 300);
  EXPECT_STREQ(d["resourceType"].GetString(), "OperationOutcome") << what;
  EXPECT_TRUE(d.HasMember("issue") && d["issue"].Size() > 0) << what;
}

// ---------------------------------------------------------------- the basic interactions

TEST(Crud, CreateReadUpdateDeleteWithHeaders) {
  std::string ident = Unique();
  Response c = Post("/Patient", PatientJson(ident));
  ASSERT_EQ(c.status, 201) << c.body;
  std::string id = IdOf(c);
  ASSERT_FALSE(id.empty());
  EXPECT_EQ(c.Header("etag"), "W/\"1\"");
  EXPECT_NE(c.Header("location").find("/Patient/" + id + "/_history/1"), std::string::npos);
  EXPECT_FALSE(c.Header("last-modified").empty());
  EXPECT_EQ(c.Json()["meta"]["versionId"].GetString(), std::string("1"));

  Response r = Get("/Patient/" + id);
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.Header("etag"), "W/\"1\"");
  EXPECT_EQ(std::string(r.Json()["name"][0]["family"].GetString()), "Dupré");

  std::string updated = PatientJson(ident, "Martin");
  updated.insert(1, "\"id\":\"" + id + "\",");
  Response u = Put("/Patient/" + id, updated, {{"If-Match", "W/\"1\""}});
  ASSERT_EQ(u.status, 200) << u.body;
  EXPECT_EQ(u.Header("etag"), "W/\"2\"");

  Response v1 = Get("/Patient/" + id + "/_history/1");
  ASSERT_EQ(v1.status, 200);
  EXPECT_EQ(std::string(v1.Json()["name"][0]["family"].GetString()), "Dupré");

  Response h = Get("/Patient/" + id + "/_history");
  ASSERT_EQ(h.status, 200);
  EXPECT_EQ(Total(h), 2);
  EXPECT_EQ(std::string(h.Json()["type"].GetString()), "history");

  Response d = Delete("/Patient/" + id);
  EXPECT_EQ(d.status, 204);
  ExpectOutcome(Get("/Patient/" + id), 410, "read after delete");
  EXPECT_EQ(Total(Get("/Patient/" + id + "/_history")), 3);
  EXPECT_EQ(Delete("/Patient/" + id).status, 204) << "a second delete is harmless";
  ExpectOutcome(Get("/Patient/does-not-exist"), 404, "unknown id");
}

TEST(Crud, UpdateCreatesWithClientIdAndPreferMinimal) {
  std::string id = "client-" + Unique();
  std::string body = PatientJson(Unique());
  body.insert(1, "\"id\":\"" + id + "\",");
  Response c = Put("/Patient/" + id, body, {{"Prefer", "return=minimal"}});
  EXPECT_EQ(c.status, 201);
  EXPECT_TRUE(c.body.empty());
  Response again = Put("/Patient/" + id, body, {{"Prefer", "return=OperationOutcome"}});
  EXPECT_EQ(again.status, 200);
  EXPECT_STREQ(again.Json()["resourceType"].GetString(), "OperationOutcome");
  EXPECT_EQ(Get("/Patient/" + id).Header("etag"), "W/\"2\"");
}

TEST(Crud, StaleIfMatchIsRefusedAndNothingIsLost) {
  Response c = Post("/Patient", PatientJson(Unique(), "First"));
  std::string id = IdOf(c);
  std::string a = PatientJson("x", "Second");
  a.insert(1, "\"id\":\"" + id + "\",");
  ASSERT_EQ(Put("/Patient/" + id, a, {{"If-Match", "W/\"1\""}}).status, 200);
  std::string b = PatientJson("x", "Lost");
  b.insert(1, "\"id\":\"" + id + "\",");
  ExpectOutcome(Put("/Patient/" + id, b, {{"If-Match", "W/\"1\""}}), 412, "stale If-Match update");
  ExpectOutcome(Delete("/Patient/" + id, {{"If-Match", "W/\"1\""}}), 412, "stale If-Match delete");
  Response r = Get("/Patient/" + id);
  EXPECT_EQ(std::string(r.Json()["name"][0]["family"].GetString()), "Second");
  EXPECT_EQ(r.Header("etag"), "W/\"2\"");
}

TEST(Crud, ConcurrentUpdatesWithIfMatchNeverLoseAnUpdate) {
  std::string id = IdOf(Post("/Patient", PatientJson(Unique())));
  // 8 writers each apply 5 read-modify-write cycles with If-Match, retrying on 412.
  std::atomic<int> successes{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int k = 0; k < 5; ++k) {
        for (int attempt = 0; attempt < 200; ++attempt) {
          Response r = Get("/Patient/" + id);
          std::string etag = r.Header("etag");
          std::string body = PatientJson("w", "Writer" + std::to_string(t));
          body.insert(1, "\"id\":\"" + id + "\",");
          Response u = Put("/Patient/" + id, body, {{"If-Match", etag}});
          if (u.status == 200) {
            ++successes;
            break;
          }
          ASSERT_EQ(u.status, 412) << u.body;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(successes.load(), 40);
  EXPECT_EQ(Get("/Patient/" + id).Header("etag"), "W/\"41\"") << "every success made exactly one version";
}

TEST(Conditional, ThirtyTwoConcurrentIdenticalConditionalCreatesLeaveOne) {
  std::string ident = Unique();
  std::string query = "identifier=urn:oid:1.2.250.1.213.1.4.8|" + ident;
  std::vector<int> statuses(32);
  std::vector<std::string> ids(32);
  std::vector<std::thread> threads;
  for (int i = 0; i < 32; ++i) {
    threads.emplace_back([&, i] {
      Response r = Post("/Patient", PatientJson(ident), {{"If-None-Exist", query}});
      statuses[i] = r.status;
      ids[i] = IdOf(r);
    });
  }
  for (auto& t : threads) t.join();
  int created = 0, found = 0;
  for (int s : statuses) {
    created += s == 201;
    found += s == 200;
  }
  EXPECT_EQ(created, 1);
  EXPECT_EQ(found, 31);
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), 1u) << "every answer names the same Patient";
  EXPECT_EQ(Total(Get("/Patient?identifier=urn:oid:1.2.250.1.213.1.4.8%7C" + ident)), 1);
}

TEST(Conditional, ConditionalUpdateCreatesThenUpdatesAndConcurrentOnesLeaveOne) {
  std::string ident = Unique();
  std::string target = "/Patient?identifier=urn:oid:1.2.250.1.213.1.4.8%7C" + ident;
  std::vector<int> statuses(16);
  std::vector<std::thread> threads;
  for (int i = 0; i < 16; ++i) {
    threads.emplace_back([&, i] { statuses[i] = Put(target, PatientJson(ident)).status; });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(std::count(statuses.begin(), statuses.end(), 201), 1);
  EXPECT_EQ(std::count(statuses.begin(), statuses.end(), 200), 15);
  EXPECT_EQ(Total(Get(target)), 1);
  std::string id = EntryIds(Get(target)).at(0);
  EXPECT_EQ(Get("/Patient/" + id).Header("etag"), "W/\"16\"");
  // Two matches: 412.
  Post("/Patient", PatientJson(ident));
  ExpectOutcome(Put(target, PatientJson(ident)), 412, "conditional update with two matches");
  ExpectOutcome(Post("/Patient", PatientJson(ident), {{"If-None-Exist", target.substr(9)}}), 412,
                "conditional create with two matches");
}

TEST(Conditional, AKeyWhoseResourceNoLongerMatchesDoesNotCount) {
  std::string x = Unique(), y = Unique();
  std::string query = "identifier=urn:oid:1.2.250.1.213.1.4.8|" + x;
  Response first = Post("/Patient", PatientJson(x), {{"If-None-Exist", query}});
  ASSERT_EQ(first.status, 201);
  std::string id = IdOf(first);
  std::string moved = PatientJson(y);
  moved.insert(1, "\"id\":\"" + id + "\",");
  ASSERT_EQ(Put("/Patient/" + id, moved).status, 200);
  Response second = Post("/Patient", PatientJson(x), {{"If-None-Exist", query}});
  EXPECT_EQ(second.status, 201) << "Patient/" << id << " no longer carries identifier " << x;
  EXPECT_NE(IdOf(second), id);
  Response third = Post("/Patient", PatientJson(x), {{"If-None-Exist", query}});
  EXPECT_EQ(third.status, 200);
  EXPECT_EQ(IdOf(third), IdOf(second));
}

TEST(Conditional, ConditionalDelete) {
  std::string ident = Unique();
  Post("/Patient", PatientJson(ident));
  std::string target = "/Patient?identifier=urn:oid:1.2.250.1.213.1.4.8%7C" + ident;
  EXPECT_EQ(Delete(target).status, 204);
  EXPECT_EQ(Total(Get(target)), 0);
}

// ---------------------------------------------------------------- search

class SearchFixture : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tag_ = Unique();
    auto create = [](const std::string& type, const std::string& body) {
      Response r = Post("/" + type, body);
      EXPECT_EQ(r.status, 201) << type << ": " << r.body;
      return IdOf(r);
    };
    std::string sys = "urn:oid:1.2.250.1.213.1.4.8";
    p1_ = create("Patient", R"({"resourceType":"Patient","identifier":[{"system":")" + sys + R"(","value":"A)" + tag_ +
                                R"("}],"name":[{"family":"Lefèvre-Dupont","given":["Hélène","Marie"]}],"gender":"female","birthDate":"1948-02-29"})");
    p2_ = create("Patient", R"({"resourceType":"Patient","identifier":[{"system":"urn:ipp","value":"B)" + tag_ +
                                R"("}],"name":[{"family":"Martin","given":["Jean"]}],"gender":"male","birthDate":"1975"})");
    p3_ = create("Patient", R"({"resourceType":"Patient","identifier":[{"system":"urn:ipp","value":"C)" + tag_ +
                                R"("}],"name":[{"family":"Zola-Abadie"}],"deceasedDateTime":"2024-01-05"})");
    p4_ = create("Patient", R"({"resourceType":"Patient","identifier":[{"system":"urn:ipp","value":"D)" + tag_ +
                                R"("}],"name":[{"family":"Abadie"}],"deceasedBoolean":false})");
    org_ = create("Organization", R"({"resourceType":"Organization","name":"CHU Saint-Étienne","identifier":[{"system":"urn:finess","value":"F)" + tag_ + R"("}]})");
    enc_ = create("Encounter", R"({"resourceType":"Encounter","status":"finished","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"IMP"},"subject":{"reference":"Patient/)" +
                                  p1_ + R"("},"serviceProvider":{"reference":"Organization/)" + org_ +
                                  R"("},"period":{"start":"2024-03-01T10:00:00+01:00","end":"2024-03-05T12:00:00+01:00"},"identifier":[{"value":"E)" + tag_ + R"("}]})");
    cond_ = create("Condition", R"({"resourceType":"Condition","subject":{"reference":"Patient/)" + p1_ +
                                    R"("},"encounter":{"reference":"Encounter/)" + enc_ +
                                    R"("},"code":{"coding":[{"system":"http://hl7.org/fhir/sid/icd-10","code":"S72.0)" + tag_.substr(0, 2) +
                                    R"("}]},"clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"active"}]},"verificationStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-ver-status","code":"confirmed"}]},"onsetDateTime":"2024-03-01"})");
    obs_ = create("Observation", R"({"resourceType":"Observation","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"62292-8"}]},"subject":{"reference":"Patient/)" +
                                     p1_ + R"("},"effectiveDateTime":"2024-03-02T08:30:00Z","valueQuantity":{"value":18.50,"unit":"ng/mL","system":"http://unitsofmeasure.org","code":"ng/mL"}})");
    obs2_ = create("Observation", R"({"resourceType":"Observation","status":"final","code":{"text":"spine X-ray"},"subject":{"reference":"Patient/)" +
                                      p1_ + R"("},"valueCodeableConcept":{"text":"Tassement vertébral L1"}})");
    task_ = create("Task", R"({"resourceType":"Task","status":"requested","intent":"order","code":{"coding":[{"system":"http://fls-server.org/fhir/CodeSystem/task-code","code":"assess-)" + tag_ +
                                R"("}]},"for":{"reference":"Patient/)" + p1_ + R"("},"owner":{"reference":"Organization/)" + org_ +
                                R"("},"restriction":{"period":{"end":"2024-03-15"}}})");
    task2_ = create("Task", R"({"resourceType":"Task","status":"requested","intent":"order","code":{"coding":[{"system":"http://fls-server.org/fhir/CodeSystem/task-code","code":"assess-)" + tag_ +
                                 R"("}]},"for":{"reference":"Patient/)" + p2_ + R"("},"restriction":{"period":{"end":"2024-03-10"}}})");
  }
  static std::string tag_, p1_, p2_, p3_, p4_, org_, enc_, cond_, obs_, obs2_, task_, task2_;
};
std::string SearchFixture::tag_, SearchFixture::p1_, SearchFixture::p2_, SearchFixture::p3_, SearchFixture::p4_,
    SearchFixture::org_, SearchFixture::enc_, SearchFixture::cond_, SearchFixture::obs_, SearchFixture::obs2_,
    SearchFixture::task_, SearchFixture::task2_;

TEST_F(SearchFixture, TableOfQueries) {
  struct Row {
    std::string query;  // {t} is replaced by the run's tag, {p1} etc. by ids
    std::vector<std::string> expected;
  };
  std::vector<Row> rows = {
      {"Patient?identifier=urn:oid:1.2.250.1.213.1.4.8|A{t}", {p1_}},
      {"Patient?identifier=A{t}", {p1_}},
      {"Patient?identifier=urn:ipp|A{t}", {}},
      {"Patient?identifier=|A{t}", {}},
      {"Patient?identifier=A{t},B{t}&_sort=birthdate", {p1_, p2_}},
      {"Patient?identifier=A{t},B{t}&_sort=-birthdate", {p2_, p1_}},
      {"Patient?identifier=A{t},B{t}&name=helene", {p1_}},
      {"Patient?identifier=A{t},B{t}&name=HELENE", {p1_}},
      {"Patient?identifier=A{t},B{t}&family=dupont", {}},  // from the start of the value, not of a word
      {"Patient?identifier=A{t},B{t}&family=lefevre-d", {p1_}},
      {"Patient?identifier=A{t},B{t}&family:contains=dupont", {p1_}},
      {"Patient?identifier=A{t},B{t}&family=lefevre", {p1_}},
      {"Patient?identifier=A{t},B{t}&family=efev", {}},
      {"Patient?identifier=A{t},B{t}&family:contains=efev", {p1_}},
      {"Patient?identifier=A{t},B{t}&family:exact=Lefèvre-Dupont", {p1_}},
      {"Patient?identifier=A{t},B{t}&family:exact=lefèvre-dupont", {}},
      {"Patient?identifier=A{t},B{t}&given=mar", {p1_}},
      {"Patient?identifier=A{t},B{t}&gender=male", {p2_}},
      {"Patient?identifier=A{t},B{t}&gender:not=male", {p1_}},
      {"Patient?identifier=A{t},B{t}&birthdate=1948-02-29", {p1_}},
      {"Patient?identifier=A{t},B{t}&birthdate=1948-02", {p1_}},
      {"Patient?identifier=A{t},B{t}&birthdate=1975-06-01", {}},
      {"Patient?identifier=A{t},B{t}&birthdate=ge1975-06-01", {p2_}},
      {"Patient?identifier=A{t},B{t}&birthdate=le1975-06-01", {p1_, p2_}},
      {"Patient?identifier=A{t},B{t}&birthdate=lt1975&_sort=_id", {p1_}},
      {"Patient?identifier=A{t},B{t}&birthdate=gt1948-02-29&birthdate=lt1980", {p2_}},
      {"Patient?identifier=A{t},B{t}&birthdate=ne1975", {p1_}},
      {"Patient?identifier=A{t},B{t}&_id={p2}", {p2_}},
      {"Patient?identifier=A{t},B{t}&birthdate:missing=true", {}},
      // Patient.deceased is true for a deceasedDateTime too (R4: deceased.exists() and deceased != false).
      {"Patient?identifier=A{t},C{t},D{t}&deceased=true", {p3_}},
      {"Patient?identifier=A{t},C{t},D{t}&deceased=false", {p4_}},
      {"Patient?identifier=A{t},C{t},D{t}&deceased:missing=true", {p1_}},
      // A string sorts and matches by its whole value: Zola-Abadie after Martin, not found by "abadie".
      {"Patient?identifier=B{t},C{t}&_sort=family", {p2_, p3_}},
      {"Patient?identifier=B{t},C{t}&_sort=-family", {p3_, p2_}},
      {"Patient?identifier=C{t},D{t}&family=abadie", {p4_}},
      {"Patient?identifier=C{t},D{t}&name=zola-ab", {p3_}},
      {"Organization?name=saint-etienne&identifier=F{t}", {}},
      {"Organization?name=chu%20saint-e&identifier=F{t}", {org_}},
      {"Organization?name=chu&identifier=F{t}", {org_}},
      {"Encounter?patient={p1}", {enc_}},
      {"Encounter?patient=Patient/{p1}", {enc_}},
      {"Encounter?subject:Patient={p1}", {enc_}},
      // Chained, one level (R4 search.html#chaining), with and without the type modifier.
      {"Encounter?subject:Patient.identifier=urn:oid:1.2.250.1.213.1.4.8|A{t}", {enc_}},
      {"Encounter?patient.identifier=A{t}", {enc_}},
      {"Encounter?patient.identifier=B{t}", {}},
      {"Encounter?identifier=E{t}&patient.name=helene", {enc_}},
      {"Encounter?identifier=E{t}&patient.family=martin", {}},
      {"Encounter?identifier=E{t}&patient.family:exact=Lefèvre-Dupont", {enc_}},
      {"Encounter?identifier=E{t}&service-provider.name=chu", {enc_}},
      {"Condition?code=http://hl7.org/fhir/sid/icd-10|S72.0{t2}&patient.birthdate=1948-02-29", {cond_}},
      {"Condition?code=http://hl7.org/fhir/sid/icd-10|S72.0{t2}&patient.birthdate=lt1948", {}},
      {"Condition?code=http://hl7.org/fhir/sid/icd-10|S72.0{t2}&encounter.service-provider=Organization/{org}", {cond_}},
      {"Encounter?identifier=E{t}&date=2024-03-03", {}},
      {"Encounter?identifier=E{t}&date=ge2024-03-03", {enc_}},
      {"Encounter?identifier=E{t}&date=le2024-03-03", {enc_}},
      {"Encounter?identifier=E{t}&date=gt2024-03-05T12:00:00%2B01:00", {}},
      {"Encounter?identifier=E{t}&date=lt2024-03-01T09:59:59Z", {enc_}},
      {"Encounter?identifier=E{t}&date=2024-03", {enc_}},
      {"Encounter?identifier=E{t}&status=finished&class=http://terminology.hl7.org/CodeSystem/v3-ActCode|IMP", {enc_}},
      {"Encounter?identifier=E{t}&class=AMB", {}},
      {"Encounter?identifier=E{t}&service-provider=Organization/{org}", {enc_}},
      {"Condition?patient={p1}&code=http://hl7.org/fhir/sid/icd-10|S72.0{t2}", {cond_}},
      {"Condition?subject=Patient/{p1}&onset-date=2024-03-01", {cond_}},
      {"Condition?patient={p1}&encounter=Encounter/{enc}&clinical-status=active&verification-status=confirmed", {cond_}},
      {"Condition?patient={p1}&verification-status=entered-in-error", {}},
      {"Observation?patient={p1}&code=http://loinc.org|62292-8&category=laboratory", {obs_}},
      {"Observation?patient={p1}&value-quantity=18.5", {obs_}},
      // value-string covers valueCodeableConcept.text (R4's expression).
      {"Observation?patient={p1}&value-string=tassement", {obs2_}},
      {"Observation?patient={p1}&value-string=vertebral", {}},
      {"Observation?patient={p1}&value-string:contains=VERTEBRAL", {obs2_}},
      {"Observation?patient={p1}&value-quantity=18.5|http://unitsofmeasure.org|ng/mL", {obs_}},
      {"Observation?patient={p1}&value-quantity=lt20", {obs_}},
      {"Observation?patient={p1}&value-quantity=gt18.5", {}},
      {"Observation?patient={p1}&value-quantity=ge18.5", {obs_}},
      {"Observation?patient={p1}&value-quantity=19", {obs_}},  // [18.5, 19.5)
      {"Observation?patient={p1}&value-quantity=18.6", {}},  // [18.55, 18.65)
      {"Observation?patient={p1}&value-quantity=20", {}},
      {"Observation?patient={p1}&date=2024-03-02", {obs_}},
      {"Observation?patient={p1}&date=gt2024-03-02T09:31:00%2B01:00", {}},
      {"Observation?patient={p1}&date=gt2024-03-02T09:00:00%2B01:00", {obs_}},
      {"Observation?patient={p1}&date=ge2024-03-02T09:00:00%2B01:00", {obs_}},
      // `due` is the server-defined Task.restriction.period.end; R4's `period` is executionPeriod.
      {"Task?code=assess-{t}&_sort=due", {task2_, task_}},
      {"Task?code=assess-{t}&_sort=-due", {task_, task2_}},
      {"Task?code=assess-{t}&due=eb2024-03-12", {task2_}},
      {"Task?code=assess-{t}&due=lt2024-03-12", {task2_}},
      {"Task?code=assess-{t}&due=le2024-03-15", {task_, task2_}},
      {"Task?code=assess-{t}&due=2024-03-15", {task_}},
      {"Task?code=assess-{t}&due=sa2024-03-12", {task_}},
      {"Task?code=assess-{t}&due=2024-03", {task_, task2_}},
      {"Task?code=assess-{t}&period:missing=true", {task_, task2_}},
      {"Task?code=assess-{t}&period=le2024-03-15", {}},
      {"Task?code=assess-{t}&owner=Organization/{org}&status=requested", {task_}},
      {"Task?code=assess-{t}&patient={p2}", {task2_}},
      {"Task?code=assess-{t}&_lastUpdated=gt2000-01-01&_sort=_lastUpdated", {task_, task2_}},
      {"Task?code=assess-{t}&_lastUpdated=lt2000-01-01", {}},
  };
  auto fill = [&](std::string q) {
    auto rep = [&](const std::string& from, const std::string& to) {
      for (size_t p; (p = q.find(from)) != std::string::npos;) q.replace(p, from.size(), to);
    };
    rep("{t2}", tag_.substr(0, 2));
    rep("{t}", tag_);
    rep("{p1}", p1_);
    rep("{p2}", p2_);
    rep("{org}", org_);
    rep("{enc}", enc_);
    rep("|", "%7C");
    rep("è", "%C3%A8");
    return q;
  };
  for (const auto& row : rows) {
    std::string q = fill(row.query);
    Response r = Get("/" + q);
    ASSERT_EQ(r.status, 200) << row.query << ": " << r.body;
    bool sorted = row.query.find("_sort") != std::string::npos;
    auto ids = EntryIds(r);
    if (sorted) {
      EXPECT_EQ(ids, row.expected) << row.query;
    } else {
      EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()),
                std::set<std::string>(row.expected.begin(), row.expected.end()))
          << row.query;
    }
    EXPECT_EQ(Total(r), static_cast<int>(row.expected.size())) << row.query;
  }
}

TEST_F(SearchFixture, PostSearchAndTotalModes) {
  Response r = Post("/Patient/_search", "identifier=A" + tag_, {{"Content-Type", "application/x-www-form-urlencoded"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(EntryIds(r), std::vector<std::string>{p1_});
  EXPECT_EQ(Total(Get("/Patient?identifier=A" + tag_ + "&_total=none")), -1);
  Response count = Get("/Patient?identifier=A" + tag_ + "&_summary=count");
  EXPECT_EQ(Total(count), 1);
  EXPECT_TRUE(EntryIds(count).empty());
}

TEST_F(SearchFixture, BadSearchParametersAre400UnlessLenient) {
  ExpectOutcome(Get("/Patient?nonsense=1"), 400, "unknown parameter");
  ExpectOutcome(Get("/Patient?birthdate=1948-13-01"), 400, "month 13");
  ExpectOutcome(Get("/Patient?birthdate=xx2020"), 400, "bad prefix");
  ExpectOutcome(Get("/Patient?_count=-1"), 400, "negative count");
  ExpectOutcome(Get("/Patient?_sort=nonsense"), 400, "unknown sort");
  ExpectOutcome(Get("/Patient?name:fuzzy=x"), 400, "unknown modifier");
  ExpectOutcome(Get("/Patient?name=%ZZ"), 400, "bad escape");
  ExpectOutcome(Get("/Patient?name=%C3%28"), 400, "invalid UTF-8 in the query");
  ExpectOutcome(Get("/Patient?_getpages=not-a-token"), 400, "forged page token");
  ExpectOutcome(Get("/Patient?_getpages=00000000-0000-4000-8000-000000000000&_getpagesoffset=20"), 410,
                "expired page");
  ExpectOutcome(Get("/Observation?value-quantity=abc"), 400, "bad number");
  ExpectOutcome(Get("/Patient?general-practitioner.name=x"), 400, "a chain without its target type");
  ExpectOutcome(Get("/Encounter?patient.name.family=x"), 400, "two levels of chaining");
  ExpectOutcome(Get("/Encounter?patient.nonsense=x"), 400, "an unknown parameter of the chain's target");
  ExpectOutcome(Get("/Encounter?status.name=x"), 400, "a chain on a token");
  ExpectOutcome(Get("/Encounter?patient:Practitioner.name=x"), 400, "a type the parameter never targets");
  ExpectOutcome(Get("/Encounter?subject=Patient/"), 400, "empty reference");
  ExpectOutcome(Get("/Encounter?subject:Nonsense=1"), 400, "unknown type in a modifier");
  Response lenient = Get("/Patient?nonsense=1&identifier=A" + tag_, {{"Prefer", "handling=lenient"}});
  EXPECT_EQ(lenient.status, 200);
  EXPECT_EQ(EntryIds(lenient), std::vector<std::string>{p1_});
  EXPECT_EQ(lenient.Json()["entry"].Size(), 2u) << "the match and the OperationOutcome entry";
  std::string hostile = "/Patient?name=%27%3B%20DROP%20TABLE%20resource%3B--&family=%25&given=_";
  EXPECT_EQ(Get(hostile).status, 200);
  EXPECT_EQ(Get("/Patient/" + p1_).status, 200) << "still there";
}

TEST(Paging, EveryMatchExactlyOnceWhileOthersWrite) {
  std::string tag = Unique();
  std::set<std::string> created;
  for (int i = 0; i < 55; ++i) {
    std::string id = IdOf(Post("/Patient", PatientJson("page-" + tag, "Page" + std::to_string(i))));
    created.insert(id);
  }
  std::string first = "/Patient?identifier=page-" + tag + "&_count=10&_sort=-_lastUpdated";
  std::vector<std::string> seen;
  Response r = Get(first);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Total(r), 55);
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    int i = 0;
    while (!stop) {
      // New matches, and updates that move existing matches to the front of the sort order.
      Post("/Patient", PatientJson("page-" + tag, "Late" + std::to_string(i++)));
      std::string id = *std::next(created.begin(), i % created.size());
      std::string body = PatientJson("page-" + tag, "Moved");
      body.insert(1, "\"id\":\"" + id + "\",");
      Put("/Patient/" + id, body);
    }
  });
  for (int pages = 0; pages < 20; ++pages) {
    for (auto& id : EntryIds(r)) seen.push_back(id);
    std::string next = NextLink(r);
    if (next.empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    r = Get(next);
    ASSERT_EQ(r.status, 200) << r.body;
  }
  stop = true;
  writer.join();
  EXPECT_EQ(seen.size(), 55u);
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()), created);
}

TEST(Paging, IdOrderPagesNeverRepeatOrSkipWhileOthersWrite) {
  std::string tag = Unique();
  std::set<std::string> created;
  for (int i = 0; i < 45; ++i) created.insert(IdOf(Post("/Patient", PatientJson("keyset-" + tag, "K" + std::to_string(i)))));
  Response r = Get("/Patient?identifier=keyset-" + tag + "&_count=7");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Total(r), 45);
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    int i = 0;
    while (!stop) {
      Post("/Patient", PatientJson("keyset-" + tag, "Late" + std::to_string(i++)));
      std::string id = *std::next(created.begin(), i % created.size());
      std::string body = PatientJson("keyset-" + tag, "Moved");
      body.insert(1, "\"id\":\"" + id + "\",");
      Put("/Patient/" + id, body);
    }
  });
  std::vector<std::string> seen;
  for (int pages = 0; pages < 40; ++pages) {
    for (auto& id : EntryIds(r)) seen.push_back(id);
    std::string next = NextLink(r);
    if (next.empty()) break;
    r = Get(next);
    ASSERT_EQ(r.status, 200) << r.body;
  }
  stop = true;
  writer.join();
  std::set<std::string> unique(seen.begin(), seen.end());
  EXPECT_EQ(unique.size(), seen.size()) << "a match was repeated";
  for (const auto& id : created) EXPECT_TRUE(unique.count(id)) << "a match was skipped: " << id;
}

// ---------------------------------------------------------------- bundles

TEST(Bundle, TransactionResolvesReferencesAndConditionals) {
  std::string ident = Unique();
  std::string bundle = R"({"resourceType":"Bundle","type":"transaction","entry":[
    {"fullUrl":"urn:uuid:11111111-1111-4111-8111-111111111111","resource":)" + PatientJson(ident) + R"(,
     "request":{"method":"POST","url":"Patient","ifNoneExist":"identifier=urn:oid:1.2.250.1.213.1.4.8|)" + ident + R"("}},
    {"fullUrl":"urn:uuid:22222222-2222-4222-8222-222222222222","resource":{"resourceType":"Encounter","status":"finished",
     "class":{"code":"EMER"},"subject":{"reference":"urn:uuid:11111111-1111-4111-8111-111111111111"}},
     "request":{"method":"POST","url":"Encounter"}},
    {"resource":{"resourceType":"Condition","subject":{"reference":"urn:uuid:11111111-1111-4111-8111-111111111111"},
     "encounter":{"reference":"urn:uuid:22222222-2222-4222-8222-222222222222"},"code":{"text":"hip fracture"}},
     "request":{"method":"POST","url":"Condition"}}]})";
  Response r = Post("/", bundle);
  ASSERT_EQ(r.status, 200) << r.body;
  auto d = r.Json();
  ASSERT_EQ(d["entry"].Size(), 3u);
  EXPECT_EQ(std::string(d["entry"][0]["response"]["status"].GetString()), "201 Created");
  std::string loc = d["entry"][2]["response"]["location"].GetString();
  std::string cond_path = loc.substr(loc.find("/Condition/"));
  cond_path = cond_path.substr(0, cond_path.find("/_history"));
  auto cond = Get(cond_path).Json();
  std::string subject = cond["subject"]["reference"].GetString();
  EXPECT_EQ(subject.rfind("Patient/", 0), 0u) << subject;
  // Again: the conditional create matches, the rest is new; conditional references resolve.
  std::string again = R"({"resourceType":"Bundle","type":"transaction","entry":[
    {"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},
     "subject":{"reference":"Patient?identifier=urn:oid:1.2.250.1.213.1.4.8|)" + ident + R"("}},
     "request":{"method":"POST","url":"Observation"}}]})";
  Response r2 = Post("/", again);
  ASSERT_EQ(r2.status, 200) << r2.body;
  Response obs = Get("/Observation?subject=" + subject);
  EXPECT_EQ(Total(obs), 1);
}

TEST(Bundle, FailingTransactionLeavesNothing) {
  std::string ident = Unique();
  std::string before = Sql("SELECT count(*) FROM resource_version WHERE res_type <> 'AuditEvent'");
  std::string bundle = R"({"resourceType":"Bundle","type":"transaction","entry":[
    {"resource":)" + PatientJson(ident) + R"(,"request":{"method":"POST","url":"Patient"}},
    {"resource":)" + PatientJson(ident) + R"(,"request":{"method":"POST","url":"Patient"}},
    {"request":{"method":"GET","url":"Patient/never-existed-)" + ident + R"("}}]})";
  Response r = Post("/", bundle);
  ExpectOutcome(r, 404, "transaction with a failing read");
  EXPECT_NE(r.body.find("Bundle.entry[2]"), std::string::npos) << r.body;
  EXPECT_EQ(Sql("SELECT count(*) FROM resource_version WHERE res_type <> 'AuditEvent'"), before);
  EXPECT_EQ(Total(Get("/Patient?identifier=" + ident)), 0);
  // An invalid resource anywhere: 400 naming it, nothing written.
  std::string invalid = R"({"resourceType":"Bundle","type":"transaction","entry":[
    {"resource":)" + PatientJson(ident) + R"(,"request":{"method":"POST","url":"Patient"}},
    {"resource":{"resourceType":"Patient","birthDate":"not-a-date"},"request":{"method":"POST","url":"Patient"}}]})";
  Response bad = Post("/", invalid);
  ExpectOutcome(bad, 400, "transaction with an invalid resource");
  EXPECT_NE(bad.body.find("entry[1]"), std::string::npos) << bad.body;
  EXPECT_EQ(Total(Get("/Patient?identifier=" + ident)), 0);
  // A dangling urn:uuid reference.
  std::string dangling = R"({"resourceType":"Bundle","type":"transaction","entry":[
    {"resource":{"resourceType":"Encounter","status":"finished","class":{"code":"EMER"},"subject":{"reference":"urn:uuid:33333333-3333-4333-8333-333333333333"}},
     "request":{"method":"POST","url":"Encounter"}}]})";
  ExpectOutcome(Post("/", dangling), 400, "dangling urn:uuid");
  EXPECT_EQ(Sql("SELECT count(*) FROM resource_version WHERE res_type <> 'AuditEvent'"), before);
}

TEST(Bundle, BatchEntriesSucceedOrFailOnTheirOwn) {
  std::string ident = Unique();
  std::string bundle = R"({"resourceType":"Bundle","type":"batch","entry":[
    {"resource":)" + PatientJson(ident) + R"(,"request":{"method":"POST","url":"Patient"}},
    {"resource":{"resourceType":"Patient","birthDate":"1950-02-30"},"request":{"method":"POST","url":"Patient"}},
    {"request":{"method":"GET","url":"Patient?identifier=)" + ident + R"("}},
    {"request":{"method":"GET","url":"Patient/nope-)" + ident + R"("}}]})";
  Response r = Post("/", bundle);
  ASSERT_EQ(r.status, 200) << r.body;
  auto d = r.Json();
  EXPECT_EQ(std::string(d["type"].GetString()), "batch-response");
  EXPECT_EQ(std::string(d["entry"][0]["response"]["status"].GetString()), "201 Created");
  EXPECT_EQ(std::string(d["entry"][1]["response"]["status"].GetString()), "400");
  EXPECT_TRUE(d["entry"][1]["response"].HasMember("outcome"));
  EXPECT_EQ(std::string(d["entry"][2]["response"]["status"].GetString()), "200 OK");
  EXPECT_EQ(d["entry"][2]["resource"]["total"].GetInt(), 1);
  EXPECT_EQ(std::string(d["entry"][3]["response"]["status"].GetString()), "404");
}

TEST(Bundle, EverySyntheaBundleLoadsAndReadsBack) {
  namespace fs = std::filesystem;
  std::string dir = SharedDir() + "/testdata/synthea-r4-transaction";
  std::vector<fs::path> files;
  for (auto& e : fs::directory_iterator(dir)) files.push_back(e.path());
  std::sort(files.begin(), files.end(), [](const fs::path& a, const fs::path& b) {
    // hospital and practitioner files first, as Synthea's loader does
    bool ai = a.filename().string().find("Information") != std::string::npos;
    bool bi = b.filename().string().find("Information") != std::string::npos;
    return ai != bi ? ai : a < b;
  });
  ASSERT_EQ(files.size(), 33u);
  int patients = 0;
  for (const auto& f : files) {
    std::string body = ReadFile(f.string());
    Response r = Post("/", body);
    ASSERT_EQ(r.status, 200) << f.filename() << ": " << r.body.substr(0, 1000);
    rapidjson::Document in;
    in.Parse(body.c_str());
    auto out = r.Json();
    ASSERT_EQ(out["entry"].Size(), in["entry"].Size()) << f.filename();
    for (auto& e : in["entry"].GetArray()) {
      if (std::string(e["resource"]["resourceType"].GetString()) != "Patient") continue;
      ++patients;
      // Read the patient back by its Synthea identifier and its conditions by patient.
      std::string ident = e["resource"]["identifier"][0]["value"].GetString();
      Response p = Get("/Patient?identifier=https://github.com/synthetichealth/synthea%7C" + ident);
      ASSERT_EQ(Total(p), 1) << f.filename();
      std::string pid = EntryIds(p).at(0);
      int conditions = 0;
      for (auto& c : in["entry"].GetArray()) {
        conditions += std::string(c["resource"]["resourceType"].GetString()) == "Condition";
      }
      EXPECT_EQ(Total(Get("/Condition?patient=" + pid + "&_count=1")), conditions) << f.filename();
    }
  }
  EXPECT_EQ(patients, 31);
}

TEST(Bundle, OfficialTransactionExampleLoads) {
  // The HL7 example (bundle-transaction.json) assumes a server that already holds Patient/123a at
  // version 2 and Patient/12334, and posts to ValueSet/$lookup, an operation this server does not
  // offer: as sent it must fail whole, naming the entry, and write nothing.
  std::string path = SharedDir() + "/testdata/fhir-r4-official-examples/Bundle-bundle-transaction.json";
  std::string body = ReadFile(path);
  std::string before = Sql("SELECT count(*) FROM resource_version WHERE res_type <> 'AuditEvent'");
  Response as_sent = Post("/", body);
  ExpectOutcome(as_sent, 501, "the official example as sent");
  EXPECT_NE(as_sent.body.find("Bundle.entry["), std::string::npos) << as_sent.body;
  EXPECT_EQ(Sql("SELECT count(*) FROM resource_version WHERE res_type <> 'AuditEvent'"), before);

  // With its preconditions met and the operation entry left out, every entry is processed.
  Sql("DELETE FROM conditional_key WHERE query LIKE '%234234%' OR query LIKE '%456456%'");
  for (const char* id : {"123a", "12334"}) {
    std::string p = std::string(R"({"resourceType":"Patient","id":")") + id + R"(","active":true})";
    Put(std::string("/Patient/") + id, p);
  }
  Put("/Patient/123a", R"({"resourceType":"Patient","id":"123a","active":true,"gender":"male"})");
  std::string v = Get("/Patient/123a").Header("etag");
  rapidjson::Document doc;
  doc.Parse(body.c_str());
  auto& entries = doc["entry"];
  for (auto it = entries.Begin(); it != entries.End();) {
    std::string url = (*it)["request"]["url"].GetString();
    if (url.find('$') != std::string::npos) {
      it = entries.Erase(it);
    } else {
      if (url == "Patient/123a") (*it)["request"]["ifMatch"].SetString(v.c_str(), static_cast<rapidjson::SizeType>(v.size()), doc.GetAllocator());
      ++it;
    }
  }
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  doc.Accept(w);
  Response r = Post("/", sb.GetString());
  ASSERT_EQ(r.status, 200) << r.body;
  auto out = r.Json();
  ASSERT_EQ(out["entry"].Size(), entries.Size());
  for (auto& e : out["entry"].GetArray()) {
    std::string status = e["response"]["status"].GetString();
    EXPECT_TRUE(status.rfind("200", 0) == 0 || status.rfind("201", 0) == 0 || status.rfind("204", 0) == 0) << status;
  }
  EXPECT_EQ(Get("/Patient/123").status, 200);
  EXPECT_EQ(Get("/Patient/123a").Header("etag"), "W/\"3\"") << "two versions before, one by the transaction";
}

// ---------------------------------------------------------------- bad input

TEST(BadInput, EachGetsItsStatusAndAnOutcomeAndTheServerKeepsServing) {
  struct Case {
    std::string name, method, target, body;
    std::map<std::string, std::string> headers;
    int status;
  };
  std::string deep(200, '[');
  std::string deep_body = R"({"resourceType":"Patient","extension":)" + deep + std::string(200, ']') + "}";
  std::vector<Case> cases = {
      {"malformed JSON", "POST", "/Patient", "{\"resourceType\":\"Patient\",", {}, 400},
      {"not an object", "POST", "/Patient", "[1,2]", {}, 400},
      {"empty body", "POST", "/Patient", "", {{"Content-Type", "application/fhir+json"}}, 400},
      {"wrong type for birthDate", "POST", "/Patient", R"({"resourceType":"Patient","birthDate":19500304})", {}, 400},
      {"wrong type for name", "POST", "/Patient", R"({"resourceType":"Patient","name":"Dupont"})", {}, 400},
      {"unknown element", "POST", "/Patient", R"({"resourceType":"Patient","shoeSize":42})", {}, 400},
      {"bad code", "POST", "/Patient", R"({"resourceType":"Patient","gender":"lady"})", {}, 400},
      {"null value", "POST", "/Patient", R"({"resourceType":"Patient","active":null})", {}, 400},
      {"deep nesting", "POST", "/Patient", deep_body, {}, 400},
      {"invalid UTF-8", "POST", "/Patient", "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"\xC3\x28\"}]}", {}, 400},
      {"overlong UTF-8", "POST", "/Patient", "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"\xC0\xAF\"}]}", {}, 400},
      {"resourceType differs from URL", "POST", "/Patient", R"({"resourceType":"Observation","status":"final","code":{"text":"x"}})", {}, 400},
      {"unknown resourceType in URL", "POST", "/Patientx", R"({"resourceType":"Patientx"})", {}, 404},
      {"missing resourceType", "POST", "/Patient", R"({"name":[{"family":"x"}]})", {}, 400},
      {"invalid id in URL", "PUT", "/Patient/bad_id!", R"({"resourceType":"Patient","id":"bad_id!"})", {}, 400},
      {"id too long", "PUT", "/Patient/" + std::string(65, 'a'), R"({"resourceType":"Patient","id":")" + std::string(65, 'a') + "\"}", {}, 400},
      {"body id differs from URL id", "PUT", "/Patient/abc", R"({"resourceType":"Patient","id":"abd"})", {}, 400},
      {"update without id in body", "PUT", "/Patient/abc", R"({"resourceType":"Patient"})", {}, 400},
      {"XML body", "POST", "/Patient", "<Patient xmlns=\"http://hl7.org/fhir\"/>", {{"Content-Type", "application/fhir+xml"}}, 415},
      {"XML accepted only", "GET", "/Patient", "", {{"Accept", "application/fhir+xml"}}, 406},
      {"method not allowed", "PATCH", "/Patient/abc", "{}", {}, 405},
      {"bundle that is not a transaction", "POST", "/", R"({"resourceType":"Bundle","type":"collection"})", {}, 400},
      {"If-Match not an ETag", "PUT", "/Patient/abc", R"({"resourceType":"Patient","id":"abc"})", {{"If-Match", "yesterday"}}, 400},
      {"unknown path", "GET", "/no/such/thing/here/at/all", "", {}, 404},
      {"duplicate member", "POST", "/Patient", R"({"resourceType":"Patient","id":"x","id":"spoof"})", {}, 400},
      {"NUL in a query", "GET", "/Patient?identifier=12%00999", "", {}, 400},
      {"too many search parameters", "GET", "/Patient?" + [] {
         std::string q;
         for (int i = 0; i < 65; ++i) q += "gender=male&";
         return q;
       }(), "", {}, 400},
  };
  std::string before = Sql("SELECT count(*) FROM resource_version WHERE res_type <> 'AuditEvent'");
  for (const auto& c : cases) {
    Response r = Http(Port(), c.method, c.target, c.body, c.headers);
    ExpectOutcome(r, c.status, c.name);
    if (c.status == 405) {
      EXPECT_FALSE(r.Header("allow").empty()) << c.name;
    }
    EXPECT_EQ(Get("/healthz").status, 200) << "server down after: " << c.name;
  }
  EXPECT_EQ(Sql("SELECT count(*) FROM resource_version WHERE res_type <> 'AuditEvent'"), before) << "a refused request wrote something";
}

TEST(BadInput, RawBytesInTheRequestLineAreReadAsIfEncodedAndNonsenseIsAnOutcome) {
  // Raw UTF-8 in the query is read as if it were percent-encoded (docs/http.md, Request targets).
  ASSERT_EQ(Post("/Patient", R"({"resourceType":"Patient","name":[{"family":"Dupré"}]})").status, 201);
  Response raw = RawHttp(Port(), "GET /Patient?name=Dupr\xC3\xA9 HTTP/1.1\r\nHost: x\r\n" + AuthHeaderLine(Port()) +
                                     "Connection: close\r\n\r\n");
  EXPECT_EQ(raw.status, 200) << raw.body;
  EXPECT_GE(Total(raw), 1);
  EXPECT_EQ(Total(raw), Total(Get("/Patient?name=Dupr%C3%A9")));
  const std::string refused[] = {
      "GET /Patient?name=\xFF\xFE HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
      "GET /Pat ient HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
      "NONSENSE\r\n\r\n",
      "POST /Patient HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\nConnection: close\r\n\r\n{}",
  };
  for (const auto& bytes : refused) {
    Response r = RawHttp(Port(), bytes);
    EXPECT_TRUE(r.status >= 400 && r.status < 500) << r.status << " for " << bytes.substr(0, 40);
    EXPECT_NE(r.body.find("\"OperationOutcome\""), std::string::npos) << bytes.substr(0, 40);
    EXPECT_FALSE(r.Header("x-request-id").empty()) << bytes.substr(0, 40);
    EXPECT_EQ(Get("/healthz").status, 200) << "server down after: " << bytes.substr(0, 40);
  }
  // Percent-encoded invalid UTF-8 gets an OperationOutcome too.
  ExpectOutcome(Get("/Patient?name=%FF%FE"), 400, "percent-encoded invalid UTF-8");
  ExpectOutcome(Get("/Patient/%FF"), 400, "invalid UTF-8 in the path");
}

TEST(BadInput, LongValuesAreStoredAndShortOnesStillFound) {
  std::string words;
  for (int i = 0; i < 8000; ++i) words += "ab ";
  std::string long_id(4000, 'x');
  Response r = Post("/Patient", R"({"resourceType":"Patient","name":[{"text":")" + words + R"(","family":"Longname"}],"identifier":[{"system":"urn:x","value":")" +
                                    long_id + R"("}]})");
  ASSERT_EQ(r.status, 201) << r.body.substr(0, 300);
  EXPECT_EQ(Total(Get("/Patient?family=longname")), 1);
  EXPECT_EQ(Get("/Patient/" + IdOf(r)).status, 200);
}

TEST(Bundle, TwoEntriesWithTheSameIfNoneExistAreOneResource) {
  std::string ident = Unique();
  std::string entry = R"({"fullUrl":"urn:uuid:%U","resource":)" + PatientJson(ident) +
                      R"(,"request":{"method":"POST","url":"Patient","ifNoneExist":"identifier=urn:oid:1.2.250.1.213.1.4.8|)" + ident + R"("}})";
  auto with = [&](const char* uuid) {
    std::string e = entry;
    e.replace(e.find("%U"), 2, uuid);
    return e;
  };
  std::string bundle = R"({"resourceType":"Bundle","type":"transaction","entry":[)" +
                       with("44444444-4444-4444-8444-444444444444") + "," + with("55555555-5555-4555-8555-555555555555") + "]}";
  Response r = Post("/", bundle);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Total(Get("/Patient?identifier=" + ident)), 1);
  auto d = r.Json();
  EXPECT_EQ(std::string(d["entry"][0]["fullUrl"].GetString()), std::string(d["entry"][1]["fullUrl"].GetString()));
  EXPECT_EQ(Post("/Patient", PatientJson(ident), {{"If-None-Exist", "identifier=urn:oid:1.2.250.1.213.1.4.8|" + ident}}).status, 200);
}

TEST(BadInput, OversizedBodyGets413BeforeItIsAllSent) {
  // Announce 40 MiB and stream it: the 413 must come back long before the upload would end.
  const size_t announced = 40u << 20;
  int fd = ConnectForStreaming(Port());
  ASSERT_GE(fd, 0);
  std::string head = "POST /Patient HTTP/1.1\r\nHost: x\r\nContent-Type: application/fhir+json\r\n"
                     "Content-Length: " + std::to_string(announced) + "\r\n\r\n";
  ASSERT_EQ(send(fd, head.data(), head.size(), MSG_NOSIGNAL), static_cast<ssize_t>(head.size()));
  std::string chunk(256 * 1024, ' ');
  size_t sent = 0;
  std::string answer;
  while (sent < announced) {
    ssize_t n = send(fd, chunk.data(), chunk.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) sent += static_cast<size_t>(n);
    char buf[4096];
    ssize_t got = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (got > 0) {
      answer.append(buf, static_cast<size_t>(got));
      if (answer.find("\r\n\r\n") != std::string::npos) break;
    }
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) break;  // the server closed on us
    if (n <= 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  for (int i = 0; i < 200 && answer.find("\r\n\r\n") == std::string::npos; ++i) {
    char buf[4096];
    ssize_t got = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (got > 0) answer.append(buf, static_cast<size_t>(got));
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  close(fd);
  EXPECT_EQ(answer.rfind("HTTP/1.1 413", 0), 0u) << answer.substr(0, 200);
  EXPECT_LT(sent, announced / 2) << "the server let the client upload most of the body first";
  EXPECT_EQ(Get("/healthz").status, 200);
}

TEST(BadInput, LimitsAreConfigurable) {
  ServerProcess small({{"FLS_MAX_BODY_BYTES", "2048"}, {"FLS_JSON_MAX_DEPTH", "10"}});
  ASSERT_TRUE(small.WaitReady(20000)) << small.LogTail();
  std::string big = PatientJson(Unique(), std::string(3000, 'x'));
  ExpectOutcome(Http(small.port(), "POST", "/Patient", big), 413, "3000 bytes over a 2048 limit");
  // Chunked, no Content-Length: still refused once the limit is passed.
  std::string chunked = "POST /Patient HTTP/1.1\r\nHost: x\r\nContent-Type: application/fhir+json\r\n"
                        "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
  char size[16];
  std::snprintf(size, sizeof size, "%zx\r\n", big.size());
  chunked += size + big + "\r\n0\r\n\r\n";
  ExpectOutcome(RawHttp(small.port(), chunked), 413, "chunked body over the limit");
  std::string nested = R"({"resourceType":"Patient","extension":[{"url":"a","extension":[{"url":"b","extension":[{"url":"c","extension":[{"url":"d","extension":[{"url":"e","valueString":"x"}]}]}]}]}]})";
  ExpectOutcome(Http(small.port(), "POST", "/Patient", nested), 400, "nesting over 10");
  EXPECT_EQ(Http(small.port(), "POST", "/Patient", PatientJson(Unique())).status, 201);
}

// ---------------------------------------------------------------- operations basics

TEST(Operations, ProbesRequestIdAndCapabilityStatement) {
  EXPECT_EQ(Get("/healthz").status, 200);
  EXPECT_EQ(Get("/readyz").status, 200);
  Response r = Get("/metadata", {{"X-Request-Id", "abc-123"}});
  EXPECT_EQ(r.Header("x-request-id"), "abc-123");
  EXPECT_FALSE(Get("/metadata").Header("x-request-id").empty());
  auto cs = r.Json();
  ASSERT_EQ(r.status, 200);
  EXPECT_STREQ(cs["resourceType"].GetString(), "CapabilityStatement");
  EXPECT_STREQ(cs["fhirVersion"].GetString(), "4.0.1");
  auto& resources = cs["rest"][0]["resource"];
  EXPECT_GE(resources.Size(), 140u) << "every R4 resource type";
  std::set<std::string> task_params, interactions;
  std::string due_definition;
  for (auto& res : resources.GetArray()) {
    if (std::string(res["type"].GetString()) != "Task") continue;
    for (auto& p : res["searchParam"].GetArray()) {
      task_params.insert(p["name"].GetString());
      if (std::string(p["name"].GetString()) == "due") due_definition = p["definition"].GetString();
    }
    for (auto& i : res["interaction"].GetArray()) interactions.insert(i["code"].GetString());
  }
  for (const char* p : {"status", "owner", "patient", "focus", "code", "period", "due", "business-status", "_id", "_lastUpdated"}) {
    EXPECT_TRUE(task_params.count(p)) << p;
  }
  // The server-defined `due` is published where the CapabilityStatement says.
  ASSERT_FALSE(due_definition.empty());
  EXPECT_EQ(due_definition.substr(due_definition.rfind("/SearchParameter/")), "/SearchParameter/Task-due");
  Response sp = Get("/SearchParameter/Task-due");
  ASSERT_EQ(sp.status, 200) << sp.body;
  auto spj = sp.Json();
  EXPECT_STREQ(spj["code"].GetString(), "due");
  EXPECT_STREQ(spj["type"].GetString(), "date");
  EXPECT_STREQ(spj["expression"].GetString(), "Task.restriction.period.end");
  EXPECT_EQ(std::string(spj["url"].GetString()), due_definition);
  EXPECT_STREQ(spj["base"][0].GetString(), "Task");
  Response stage = Get("/SearchParameter/EpisodeOfCare-stage");
  ASSERT_EQ(stage.status, 200) << stage.body;
  EXPECT_NE(std::string(stage.Json()["expression"].GetString()).find("pathway-stage"), std::string::npos);
  for (const char* i : {"read", "vread", "update", "delete", "history-instance", "history-type", "create", "search-type"}) {
    EXPECT_TRUE(interactions.count(i)) << i;
  }
  // Every R4 type accepts a create: a feed carrying a Claim or an ImagingStudy must not fail.
  EXPECT_EQ(Post("/Claim", R"({"resourceType":"Claim","status":"active","type":{"text":"x"},"use":"claim","patient":{"reference":"Patient/x"},"created":"2024-01-01","provider":{"reference":"Organization/x"},"priority":{"text":"normal"},"insurance":[{"sequence":1,"focal":true,"coverage":{"reference":"Coverage/x"}}]})").status, 201);
}

TEST(Operations, TypeAndSystemHistoryPage) {
  std::string since = "2000-01-01T00:00:00Z";
  Response t = Get("/Patient/_history?_count=3");
  ASSERT_EQ(t.status, 200) << t.body;
  EXPECT_EQ(EntryIds(t).size(), 3u);
  std::string next = NextLink(t);
  ASSERT_FALSE(next.empty());
  Response t2 = Get(next);
  EXPECT_EQ(t2.status, 200);
  EXPECT_EQ(Get("/_history?_count=2&_since=" + since).status, 200);
  ExpectOutcome(Get("/Patient/nope/_history"), 404, "history of an unknown resource");
}

// ---------------------------------------------------------------- bad input: strings and numbers

bool ValidUtf8Json(const std::string& body) {
  rapidjson::Document d;
  d.Parse<rapidjson::kParseValidateEncodingFlag>(body.c_str(), body.size());
  return !d.HasParseError();
}

TEST(BadInput, SurrogatesNulAndHugeNumbersAreRefusedBeforeTheDatabase) {
  struct Case {
    std::string name, target, body, says;
  };
  auto patient = [](const std::string& family) {
    return R"({"resourceType":"Patient","name":[{"family":")" + family + R"("}]})";
  };
  auto observation = [](const std::string& value) {
    return R"({"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":)" +
           value + "}}";
  };
  const std::vector<Case> cases = {
      {"lone low surrogate", "/Patient", patient(R"(Secret\udc00Name)"), "surrogate"},
      {"lone high surrogate then text", "/Patient", patient(R"(Secret\ud800xName)"), "surrogate"},
      {"high surrogate then a non-low one", "/Patient", patient(R"(Secret\ud800\u0041Name)"), "surrogate"},
      {"U+0000 in a value", "/Patient", patient(R"(Secret\u0000Name)"), "U+0000"},
      {"U+0000 in a member name", "/Patient", R"({"resourceType":"Patient","Secret\u0000Name":1})", "U+0000"},
      {"1e400", "/Observation", observation("1e400"), "number out of range"},
      {"-1e400", "/Observation", observation("-1e400"), "number out of range"},
      {"U+0000 in a transaction entry", "/",
       R"({"resourceType":"Bundle","type":"transaction","entry":[{"resource":)" + patient(R"(Secret\u0000Name)") +
           R"(,"request":{"method":"POST","url":"Patient"}}]})",
       "U+0000"},
  };
  std::string before = Sql("SELECT count(*) FROM resource_version WHERE res_type <> 'AuditEvent'");
  for (const auto& c : cases) {
    Response r = Post(c.target, c.body);
    ExpectOutcome(r, 400, c.name);
    auto d = r.Json();
    ASSERT_TRUE(d.IsObject() && d.HasMember("issue")) << c.name;
    std::string diagnostics = d["issue"][0]["diagnostics"].GetString();
    EXPECT_NE(diagnostics.find(c.says), std::string::npos) << c.name << ": " << diagnostics;
    EXPECT_EQ(diagnostics.find("malformed"), std::string::npos) << c.name << ": " << diagnostics;
    EXPECT_TRUE(ValidUtf8Json(r.body)) << c.name << ": the OperationOutcome is not valid UTF-8";
    EXPECT_EQ(r.body.find("Secret"), std::string::npos) << c.name << ": the value is echoed: " << r.body;
  }
  EXPECT_EQ(Sql("SELECT count(*) FROM resource_version WHERE res_type <> 'AuditEvent'"), before) << "a refused body reached the database";
  EXPECT_EQ(SuiteServer::Server().LogTail().find("Secret"), std::string::npos) << "patient data in the log";
}

TEST(BadInput, SurrogatePairsAndNumbersADoubleHoldsAreAccepted) {
  Response p = Post("/Patient", R"({"resourceType":"Patient","name":[{"family":"\ud83d\ude00 Sourire"}]})");
  ASSERT_EQ(p.status, 201) << p.body;
  auto read = Get("/Patient/" + IdOf(p)).Json();
  EXPECT_EQ(std::string(read["name"][0]["family"].GetString()), "\xF0\x9F\x98\x80 Sourire");
  for (const char* value : {"1e308", "-1e308", "1.7976931348623157e308", "2.5e-300", "18.50"}) {
    std::string body = R"({"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":)";
    Response o = Post("/Observation", body + value + "}}");
    EXPECT_EQ(o.status, 201) << value << ": " << o.body;
  }
}

// ---------------------------------------------------------------- what one request may cost

TEST(Limits, MoreSortKeysThanTheLimitAre400) {
  Response ok = Get("/Patient?_sort=_id,_lastUpdated,birthdate,family,given,gender,identifier,name&_count=1");
  EXPECT_EQ(ok.status, 200) << ok.body;
  Response r = Get("/Patient?_sort=_id,_lastUpdated,birthdate,family,given,gender,identifier,name,address");
  ExpectOutcome(r, 400, "9 sort keys");
  EXPECT_NE(r.body.find("at most 8"), std::string::npos) << r.body;
}

TEST(Limits, IncludedResourcesAreCappedAndTheBundleSaysSo) {
  ServerProcess small(std::map<std::string, std::string>{{"FLS_MAX_INCLUDE", "3"}});
  ASSERT_TRUE(small.WaitReady(20000)) << small.LogTail();
  auto post = [&](const std::string& type, const std::string& body) {
    Response r = Http(small.port(), "POST", "/" + type, body);
    EXPECT_EQ(r.status, 201) << r.body;
    return IdOf(r);
  };
  auto observation = [](const std::string& tag, const std::string& patient) {
    return R"({"resourceType":"Observation","status":"final","code":{"coding":[{"system":"urn:cap","code":")" + tag +
           R"("}]},"subject":{"reference":"Patient/)" + patient + R"("}})";
  };
  // Search.mode of each entry, and the outcome entry's issue if any.
  struct Page {
    int match = 0, include = 0, outcome = 0;
    std::string severity, diagnostics;
  };
  auto page = [&](const std::string& target) {
    Response r = Http(small.port(), "GET", target);
    EXPECT_EQ(r.status, 200) << target << ": " << r.body;
    Page p;
    auto d = r.Json();
    for (auto& e : d["entry"].GetArray()) {
      std::string mode = e["search"]["mode"].GetString();
      if (mode == "match") ++p.match;
      if (mode == "include") ++p.include;
      if (mode == "outcome") {
        ++p.outcome;
        EXPECT_STREQ(e["resource"]["resourceType"].GetString(), "OperationOutcome");
        p.severity = e["resource"]["issue"][0]["severity"].GetString();
        p.diagnostics = e["resource"]["issue"][0]["diagnostics"].GetString();
      }
    }
    return p;
  };
  std::string five = Unique(), three = Unique(), one = Unique();
  for (int i = 0; i < 5; ++i) post("Observation", observation(five, post("Patient", PatientJson(Unique()))));
  for (int i = 0; i < 3; ++i) post("Observation", observation(three, post("Patient", PatientJson(Unique()))));
  std::string patient = post("Patient", PatientJson(Unique()));
  for (int i = 0; i < 5; ++i) post("Observation", observation(one, patient));

  Page over = page("/Observation?code=urn:cap%7C" + five + "&_include=Observation:patient");
  EXPECT_EQ(over.match, 5);
  EXPECT_EQ(over.include, 3) << "capped";
  EXPECT_EQ(over.outcome, 1);
  EXPECT_EQ(over.severity, "warning");
  EXPECT_NE(over.diagnostics.find("cap of 3"), std::string::npos) << over.diagnostics;

  Page rev = page("/Patient?_id=" + patient + "&_revinclude=Observation:patient");
  EXPECT_EQ(rev.match, 1);
  EXPECT_EQ(rev.include, 3);
  EXPECT_EQ(rev.outcome, 1);

  Page at = page("/Observation?code=urn:cap%7C" + three + "&_include=Observation:patient");
  EXPECT_EQ(at.include, 3);
  EXPECT_EQ(at.outcome, 0) << "exactly at the cap nothing is left out";
  Page paged = page("/Observation?code=urn:cap%7C" + five + "&_include=Observation:patient&_count=2");
  EXPECT_EQ(paged.include, 2);
  EXPECT_EQ(paged.outcome, 0);
}

std::string PatientsBundle(const char* type, const std::string& system, int n) {
  std::string b = std::string(R"({"resourceType":"Bundle","type":")") + type + R"(","entry":[)";
  for (int i = 0; i < n; ++i) {
    if (i) b += ",";
    b += R"({"resource":{"resourceType":"Patient","identifier":[{"system":")" + system + R"(","value":")" +
         std::to_string(i) + R"("}],"name":[{"family":"Limite","given":["Hélène"]}],"birthDate":"1950-03-04"},)" +
         R"("request":{"method":"POST","url":"Patient"}})";
  }
  return b + "]}";
}

TEST(Limits, ABundlePastItsTimeLimitIsRolledBackWhole) {
  ServerProcess tight(std::map<std::string, std::string>{{"FLS_TRANSACTION_TIMEOUT_MS", "100"}});
  ASSERT_TRUE(tight.WaitReady(20000)) << tight.LogTail();
  std::string small_system = "urn:limit:" + Unique();
  ASSERT_EQ(Http(tight.port(), "POST", "/", PatientsBundle("transaction", small_system, 1)).status, 200)
      << "a small transaction is well within the limit";

  std::string system = "urn:limit:" + Unique();
  auto stored = [&](const std::string& sys) {
    return std::stoi(Sql("SELECT count(*) FROM idx_token WHERE res_type = 'Patient' AND system = '" + sys + "'"));
  };
  std::string before = Sql("SELECT count(*) FROM resource_version WHERE res_type <> 'AuditEvent'");
  Response r = Http(tight.port(), "POST", "/", PatientsBundle("transaction", system, 3000));
  ExpectOutcome(r, 400, "a transaction past the limit");
  auto d = r.Json();
  ASSERT_TRUE(d.IsObject() && d.HasMember("issue"));
  EXPECT_STREQ(d["issue"][0]["code"].GetString(), "too-costly");
  std::string diagnostics = d["issue"][0]["diagnostics"].GetString();
  EXPECT_NE(diagnostics.find("100 ms"), std::string::npos) << diagnostics;
  EXPECT_NE(diagnostics.find("nothing of it was written"), std::string::npos) << diagnostics;
  EXPECT_EQ(stored(system), 0) << "no Patient of the transaction is stored";
  EXPECT_EQ(Sql("SELECT count(*) FROM resource_version WHERE res_type <> 'AuditEvent'"), before);
  EXPECT_EQ(Http(tight.port(), "GET", "/healthz").status, 200);

  // A batch: the entries run in time stand, the others are not run, and each says which.
  std::string batch_system = "urn:limit:" + Unique();
  Response b = Http(tight.port(), "POST", "/", PatientsBundle("batch", batch_system, 3000));
  ASSERT_EQ(b.status, 200) << b.body.substr(0, 300);
  int created = 0, refused = 0;
  auto answer = b.Json();
  for (auto& e : answer["entry"].GetArray()) {
    std::string status = e["response"]["status"].GetString();
    if (status.rfind("201", 0) == 0) {
      ++created;
    } else {
      EXPECT_EQ(status, "400");
      EXPECT_STREQ(e["response"]["outcome"]["issue"][0]["code"].GetString(), "too-costly");
      ++refused;
    }
  }
  EXPECT_GT(refused, 0);
  EXPECT_EQ(created + refused, 3000);
  EXPECT_EQ(stored(batch_system), created) << "exactly the entries answered 201 are stored";
}

}  // namespace
}  // namespace fls::test
