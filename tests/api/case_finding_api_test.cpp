// Case finding through the real server: pushes over HTTP, cases read back over HTTP, against the
// PostgreSQL of ./deploy/fls test (a scratch database of its own).
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <thread>

#include "tests/api/test_client.h"

namespace fls::test {
namespace {

// A look-back wide enough for Synthea's decades of history.
const auto* const kEnv = ::testing::AddGlobalTestEnvironment(
    new SuiteServer(std::map<std::string, std::string>{{"FLS_CASE_LOOKBACK_DAYS", "40000"}}));
int Port() { return SuiteServer::Server().port(); }

Response Get(const std::string& t) { return Http(Port(), "GET", t); }
Response Post(const std::string& t, const std::string& b) { return Http(Port(), "POST", t, b); }
Response Put(const std::string& t, const std::string& b) { return Http(Port(), "PUT", t, b); }

std::string Unique() {
  static std::mt19937_64 rng{std::random_device{}()};
  return std::to_string(rng() % 1000000000000ULL);
}

int Total(const Response& r) {
  auto d = r.Json();
  return d.IsObject() && d.HasMember("total") ? d["total"].GetInt() : -1;
}

std::vector<rapidjson::Value*> Entries(rapidjson::Document& d) {
  std::vector<rapidjson::Value*> out;
  if (!d.IsObject() || !d.HasMember("entry")) return out;
  for (auto& e : d["entry"].GetArray()) {
    if (e.HasMember("resource")) out.push_back(&e["resource"]);
  }
  return out;
}

// Today in the site's zone (the server's default FLS_TIMEZONE), as the server counts due dates.
std::string Today(int plus_days = 0) {
  static const bool zone_set = [] {
    setenv("TZ", "Europe/Paris", 1);
    tzset();
    return true;
  }();
  (void)zone_set;
  time_t now = time(nullptr);
  tm g;
  localtime_r(&now, &g);
  g.tm_mday += plus_days;
  g.tm_hour = 12;  // away from daylight-saving edges
  mktime(&g);
  char buf[16];
  strftime(buf, sizeof buf, "%Y-%m-%d", &g);
  return buf;
}

std::string CreatePatient(const std::string& birth, const std::string& extra = "") {
  Response r = Post("/Patient", R"({"resourceType":"Patient","identifier":[{"system":"urn:oid:1.2.250.1.213.1.4.8","value":")" +
                                    Unique() + R"("}],"birthDate":")" + birth + "\"" + extra + "}");
  EXPECT_EQ(r.status, 201) << r.body;
  return r.Json()["id"].GetString();
}

std::string Condition(const std::string& patient, const std::string& system, const std::string& code,
                      const std::string& onset, const std::string& extra = "") {
  return R"({"resourceType":"Condition","subject":{"reference":"Patient/)" + patient +
         R"("},"code":{"coding":[{"system":")" + system + R"(","code":")" + code + R"("}]},"onsetDateTime":")" + onset +
         "\"" + extra + "}";
}

// An admission: Encounter at a site + fracture Condition, as one transaction.
std::string Admission(const std::string& patient, const std::string& org, const std::string& code,
                      const std::string& day, const std::string& extra_conditions = "") {
  std::string enc = "urn:uuid:" + std::string("aaaaaaaa-0000-4000-8000-") + std::string(12 - std::min<size_t>(12, Unique().size()), '0') + Unique().substr(0, 12);
  return R"({"resourceType":"Bundle","type":"transaction","entry":[
    {"fullUrl":")" + enc + R"(","resource":{"resourceType":"Encounter","status":"finished","class":{"code":"EMER"},
      "subject":{"reference":"Patient/)" + patient + R"("},"serviceProvider":{"reference":"Organization/)" + org +
         R"("},"period":{"start":")" + day + R"(T10:00:00+01:00"}},"request":{"method":"POST","url":"Encounter"}},
    {"resource":{"resourceType":"Condition","subject":{"reference":"Patient/)" + patient +
         R"("},"encounter":{"reference":")" + enc + R"("},"code":{"coding":[{"system":"http://hl7.org/fhir/sid/icd-10-cm","code":")" +
         code + R"("}]}},"request":{"method":"POST","url":"Condition"}})" + extra_conditions + "]}";
}

std::string Org() {
  Response r = Post("/Organization", R"({"resourceType":"Organization","name":"CHU )" + Unique() + R"("})");
  return r.Json()["id"].GetString();
}

TEST(CaseFinding, AHipFractureOpensACaseWithPlanAndTaskInTheSamePush) {
  std::string patient = CreatePatient("1950-03-04");
  std::string org = Org();
  Response push = Post("/", Admission(patient, org, "S72.001A", Today(-2)));
  ASSERT_EQ(push.status, 200) << push.body;

  auto cases = Get("/EpisodeOfCare?patient=" + patient).Json();
  auto ep = Entries(cases);
  ASSERT_EQ(ep.size(), 1u);
  auto& e = *ep[0];
  EXPECT_STREQ(e["status"].GetString(), "planned");
  EXPECT_EQ(std::string(e["managingOrganization"]["reference"].GetString()), "Organization/" + org);
  EXPECT_STREQ(e["extension"][0]["valueCode"].GetString(), "identified");
  EXPECT_STREQ(e["diagnosis"][0]["role"]["coding"][0]["code"].GetString(), "index-fracture");
  std::string episode = e["id"].GetString();
  EXPECT_EQ(Total(Get("/EpisodeOfCare?stage=identified&patient=" + patient)), 1);

  auto plans = Get("/CarePlan?patient=" + patient).Json();
  ASSERT_EQ(Entries(plans).size(), 1u);
  EXPECT_EQ(std::string((*Entries(plans)[0])["instantiatesCanonical"][0].GetString()),
            "http://fls-server.org/fhir/PlanDefinition/capture-the-fracture");

  // The coordinator's worklist: open tasks of the site, by due date.
  auto tasks = Get("/Task?owner=Organization/" + org + "&status=requested&_sort=due").Json();
  auto t = Entries(tasks);
  ASSERT_EQ(t.size(), 1u);
  EXPECT_STREQ((*t[0])["code"]["coding"][0]["code"].GetString(), "assess-enrol");
  EXPECT_EQ(std::string((*t[0])["focus"]["reference"].GetString()), "EpisodeOfCare/" + episode);
  EXPECT_EQ(std::string((*t[0])["restriction"]["period"]["end"].GetString()), Today(14));

  // The worklist with what a coordinator's screen shows beside each task.
  auto with = Get("/Task?owner=Organization/" + org + "&status=requested&_include=Task:patient&_include=Task:focus").Json();
  std::set<std::string> modes;
  for (auto& entry : with["entry"].GetArray()) {
    modes.insert(std::string(entry["resource"]["resourceType"].GetString()) + ":" + entry["search"]["mode"].GetString());
  }
  EXPECT_EQ(modes, (std::set<std::string>{"Task:match", "Patient:include", "EpisodeOfCare:include"}));
  auto rev = Get("/EpisodeOfCare?patient=" + patient + "&_revinclude=Task:focus").Json();
  ASSERT_EQ(rev["entry"].Size(), 2u);
  EXPECT_STREQ(rev["entry"][1]["resource"]["resourceType"].GetString(), "Task");
  EXPECT_STREQ(rev["entry"][1]["search"]["mode"].GetString(), "include");

  // Published with the case: the pathway and the code list.
  EXPECT_EQ(Get("/PlanDefinition/capture-the-fracture").status, 200);
  EXPECT_EQ(Get("/ConceptMap/fls-fracture-codes").status, 200);
  EXPECT_EQ(Get("/Organization/fls-default-site").status, 200);
}

TEST(CaseFinding, WhatDoesNotOpenACase) {
  struct Row {
    std::string name, birth, system, code, onset, extra;
    int cases, reviews;
  };
  const std::string icd = "http://hl7.org/fhir/sid/icd-10";
  std::vector<Row> rows = {
      {"49 on the fracture date", "1976-06-02", icd, "S72.0", "2026-06-01", "", 0, 0},
      {"50 on the fracture date", "1976-06-01", icd, "S72.0", "2026-06-01", "", 1, 0},
      {"entered in error", "1950-01-01", icd, "S72.0", "2026-06-01",
       R"(,"verificationStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-ver-status","code":"entered-in-error"}]})", 0, 0},
      {"refuted", "1950-01-01", icd, "S72.0", "2026-06-01",
       R"(,"verificationStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-ver-status","code":"refuted"}]})", 0, 0},
      {"skull", "1950-01-01", icd, "S02.0", "2026-06-01", "", 0, 0},
      {"toe", "1950-01-01", icd, "S92.4", "2026-06-01", "", 0, 0},
      {"finger", "1950-01-01", icd, "S62.6", "2026-06-01", "", 0, 0},
      {"cancer-related pathological", "1950-01-01", icd, "M84.5", "2026-06-01", "", 0, 1},
      {"stress fracture", "1950-01-01", icd, "M84.3", "2026-06-01", "", 0, 1},
      {"not a fracture", "1950-01-01", icd, "S73.0", "2026-06-01", "", 0, 0},
  };
  for (const auto& r : rows) {
    std::string patient = CreatePatient(r.birth);
    Response c = Post("/Condition", Condition(patient, r.system, r.code, r.onset, r.extra));
    ASSERT_EQ(c.status, 201) << r.name << ": " << c.body;
    EXPECT_EQ(Total(Get("/EpisodeOfCare?patient=" + patient)), r.cases) << r.name;
    EXPECT_EQ(Total(Get("/Task?patient=" + patient + "&code=review-fracture")), r.reviews) << r.name;
  }
}

TEST(CaseFinding, HighEnergyTraumaOpensAFlaggedCase) {
  std::string patient = CreatePatient("1950-01-01");
  // The V code must share the encounter: put it on the same urn:uuid encounter by building the bundle by hand.
  std::string bundle = Admission(patient, Org(), "S32.010A", Today(-1));
  auto enc_pos = bundle.find("urn:uuid:");
  std::string enc = bundle.substr(enc_pos, bundle.find('"', enc_pos) - enc_pos);
  std::string v = R"(,{"resource":{"resourceType":"Condition","subject":{"reference":"Patient/)" + patient +
                  R"("},"encounter":{"reference":")" + enc + R"("},"code":{"coding":[{"system":"http://hl7.org/fhir/sid/icd-10-cm","code":"V43.52XA"}]}},"request":{"method":"POST","url":"Condition"}})";
  bundle.insert(bundle.rfind(']'), v);
  ASSERT_EQ(Post("/", bundle).status, 200);
  EXPECT_EQ(Total(Get("/EpisodeOfCare?patient=" + patient + "&flag=high-energy-trauma")), 1);
}

TEST(CaseFinding, EightConcurrentPushesOfOneAdmissionLeaveOneCase) {
  std::string patient = CreatePatient("1945-07-14");
  std::string org = Org();
  std::string day = Today(-3);
  std::vector<int> statuses(8);
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] { statuses[i] = Post("/", Admission(patient, org, "S72.001A", day)).status; });
  }
  for (auto& t : threads) t.join();
  for (int s : statuses) EXPECT_EQ(s, 200);
  auto cases = Get("/EpisodeOfCare?patient=" + patient).Json();
  ASSERT_EQ(Entries(cases).size(), 1u);
  EXPECT_EQ((*Entries(cases)[0])["diagnosis"].Size(), 8u) << "every push's Condition is on the one case";
  EXPECT_EQ(Total(Get("/Task?patient=" + patient + "&code=assess-enrol")), 1);
  EXPECT_EQ(Sql("SELECT count(*) FROM fls_case WHERE patient_id = '" + patient + "'"), "1");
}

TEST(CaseFinding, AFailedPushLeavesNoCase) {
  std::string patient = CreatePatient("1950-01-01");
  std::string bundle = Admission(patient, Org(), "S72.001A", Today(-1),
                                 R"(,{"request":{"method":"GET","url":"Patient/no-such-patient"}})");
  EXPECT_EQ(Post("/", bundle).status, 404);
  EXPECT_EQ(Total(Get("/EpisodeOfCare?patient=" + patient)), 0);
  EXPECT_EQ(Total(Get("/Task?patient=" + patient)), 0);
  EXPECT_EQ(Sql("SELECT count(*) FROM fls_case WHERE patient_id = '" + patient + "'"), "0");
}

TEST(CaseFinding, RefractureOnAnOpenCaseAndANewCaseAfterDeath) {
  std::string patient = CreatePatient("1940-01-01");
  std::string org = Org();
  ASSERT_EQ(Post("/", Admission(patient, org, "S52.501A", Today(-200))).status, 200);
  ASSERT_EQ(Post("/", Admission(patient, org, "S72.001A", Today(-10))).status, 200);
  auto cases = Get("/EpisodeOfCare?patient=" + patient).Json();
  ASSERT_EQ(Entries(cases).size(), 1u);
  auto& diag = (*Entries(cases)[0])["diagnosis"];
  ASSERT_EQ(diag.Size(), 2u);
  EXPECT_STREQ(diag[1]["role"]["coding"][0]["code"].GetString(), "refracture");
  EXPECT_EQ(Total(Get("/Task?patient=" + patient + "&code=review-refracture")), 1);

  // Death closes the open case and cancels its open tasks.
  Response p = Get("/Patient/" + patient);
  std::string body = p.body;
  body.insert(body.rfind('}'), R"(,"deceasedDateTime":")" + Today(-1) + R"(T08:00:00Z")");
  ASSERT_EQ(Put("/Patient/" + patient, body).status, 200);
  auto closed = Get("/EpisodeOfCare?patient=" + patient).Json();
  EXPECT_STREQ((*Entries(closed)[0])["status"].GetString(), "finished");
  EXPECT_EQ(Total(Get("/EpisodeOfCare?patient=" + patient + "&stage=deceased")), 1);
  EXPECT_EQ(Total(Get("/Task?patient=" + patient + "&status=requested")), 0);
  EXPECT_EQ(Total(Get("/Task?patient=" + patient + "&status=cancelled")), 2);
  EXPECT_EQ(Total(Get("/CarePlan?patient=" + patient + "&status=revoked")), 1) << "the plan ends with the case";
  EXPECT_EQ(Total(Get("/CarePlan?patient=" + patient + "&status=active")), 0);
}

TEST(CaseFinding, AClosedCaseThenTheSameFractureOrANewOne) {
  std::string patient = CreatePatient("1940-01-01");
  std::string org = Org();
  ASSERT_EQ(Post("/", Admission(patient, org, "S72.001A", Today(-300))).status, 200);
  std::string episode = Sql("SELECT episode_id FROM fls_case WHERE patient_id = '" + patient + "'");
  // Close it as the pathway would (withdrawn); $event arrives with the pathway state machine.
  Sql("UPDATE fls_case SET open = false, stage = 'withdrawn' WHERE episode_id = '" + episode + "'");
  ASSERT_EQ(Post("/", Admission(patient, org, "S72.001D", Today(-300 + 89))).status, 200);
  EXPECT_EQ(Total(Get("/EpisodeOfCare?patient=" + patient)), 1) << "89 days later at the same site: the same fracture";
  ASSERT_EQ(Post("/", Admission(patient, org, "S72.001A", Today(-300 + 91 + 1))).status, 200);
  auto cases = Get("/EpisodeOfCare?patient=" + patient + "&_sort=date").Json();
  ASSERT_EQ(Entries(cases).size(), 2u) << "91 days later: a new case";
  auto& second = *Entries(cases)[1];
  bool refracture_of = false;
  for (auto& x : second["extension"].GetArray()) {
    if (std::string(x["url"].GetString()).find("refracture-of") != std::string::npos) {
      refracture_of = std::string(x["valueReference"]["reference"].GetString()) == "EpisodeOfCare/" + episode;
    }
  }
  EXPECT_TRUE(refracture_of);
}

TEST(CaseFinding, AnIndexFractureEnteredInErrorCancelsAnUntouchedCase) {
  std::string patient = CreatePatient("1950-01-01");
  Response c = Post("/Condition", Condition(patient, "http://hl7.org/fhir/sid/icd-10", "S72.0", Today(-5)));
  ASSERT_EQ(c.status, 201);
  std::string cond = c.Json()["id"].GetString();
  ASSERT_EQ(Total(Get("/EpisodeOfCare?patient=" + patient + "&status=planned")), 1);
  std::string body = Condition(patient, "http://hl7.org/fhir/sid/icd-10", "S72.0", Today(-5),
                               R"(,"verificationStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-ver-status","code":"entered-in-error"}]})");
  body.insert(1, "\"id\":\"" + cond + "\",");
  ASSERT_EQ(Put("/Condition/" + cond, body).status, 200);
  EXPECT_EQ(Total(Get("/EpisodeOfCare?patient=" + patient + "&status=cancelled&stage=excluded")), 1);
  EXPECT_EQ(Total(Get("/Task?patient=" + patient + "&status=requested")), 0);
  // Re-sending the same record changes nothing more.
  ASSERT_EQ(Put("/Condition/" + cond, body).status, 200);
  EXPECT_EQ(Total(Get("/Task?patient=" + patient)), 1) << "no Task piles up";
  // The same Condition corrected back does not reopen anything by itself: it is on the voided case.
  EXPECT_EQ(Sql("SELECT count(*) FROM fls_case WHERE patient_id = '" + patient + "' AND open"), "0");
  // A new, correct record of the fracture opens a case: the voided one does not count.
  ASSERT_EQ(Post("/Condition", Condition(patient, "http://hl7.org/fhir/sid/icd-10", "S72.0", Today(-5))).status, 201);
  EXPECT_EQ(Total(Get("/EpisodeOfCare?patient=" + patient + "&status=planned")), 1);
}

TEST(CaseFinding, AConditionPushedBeforeItsPatient) {
  std::string id = "late-" + Unique();
  ASSERT_EQ(Put("/Condition/c" + id, R"({"resourceType":"Condition","id":"c)" + id + R"(","subject":{"reference":"Patient/)" +
                                          id + R"("},"code":{"coding":[{"system":"http://hl7.org/fhir/sid/icd-10","code":"S72.0"}]},"onsetDateTime":")" +
                                          Today(-3) + "\"}").status, 201);
  EXPECT_EQ(Total(Get("/EpisodeOfCare?patient=" + id)), 0);
  ASSERT_EQ(Put("/Patient/" + id, R"({"resourceType":"Patient","id":")" + id + R"(","birthDate":"1940-01-01"})").status, 201);
  EXPECT_EQ(Total(Get("/EpisodeOfCare?patient=" + id)), 1) << "the Patient's arrival finds its fracture";
}

TEST(CaseFinding, APatientAlreadyDeadGetsARecordedClosedCase) {
  std::string patient = CreatePatient("1930-01-01", R"(,"deceasedDateTime":")" + Today(-1) + R"(T06:00:00Z")");
  ASSERT_EQ(Post("/Condition", Condition(patient, "http://hl7.org/fhir/sid/icd-10", "S72.0", Today(-4))).status, 201);
  EXPECT_EQ(Total(Get("/EpisodeOfCare?patient=" + patient + "&stage=deceased&status=finished")), 1);
  EXPECT_EQ(Total(Get("/Task?patient=" + patient)), 0) << "nobody to assess";
  auto ep = Get("/EpisodeOfCare?patient=" + patient).Json();
  std::string start = ep["entry"][0]["resource"]["period"]["start"].GetString();
  std::string end = ep["entry"][0]["resource"]["period"]["end"].GetString();
  EXPECT_LE(start, end) << "a period never ends before it starts";
}

TEST(CaseFinding, AReferenceToAnotherServersPatientIsNotOurs) {
  std::string patient = CreatePatient("1940-01-01");
  ASSERT_EQ(Post("/Condition", R"({"resourceType":"Condition","subject":{"reference":"https://other.example/fhir/Patient/)" + patient +
                                   R"("},"code":{"coding":[{"system":"http://hl7.org/fhir/sid/icd-10","code":"S72.0"}]},"onsetDateTime":")" +
                                   Today(-3) + "\"}").status, 201);
  EXPECT_EQ(Total(Get("/EpisodeOfCare?patient=" + patient)), 0);
  EXPECT_EQ(Total(Get("/Condition?patient=" + patient)), 0);
}

TEST(CaseFinding, ACaseMovesOnlyThroughThePathway) {
  std::string patient = CreatePatient("1945-01-01");
  ASSERT_EQ(Post("/Condition", Condition(patient, "http://hl7.org/fhir/sid/icd-10", "S72.0", Today(-3))).status, 201);
  auto cases = Get("/EpisodeOfCare?patient=" + patient).Json();
  ASSERT_EQ(Entries(cases).size(), 1u);
  std::string id = (*Entries(cases)[0])["id"].GetString();
  Response current = Get("/EpisodeOfCare/" + id);
  std::string body = current.body;
  // An edit that keeps status and stage is fine.
  std::string edited = body;
  edited.insert(edited.rfind('}'), R"(,"careManager":{"display":"Nurse Martin"})");
  EXPECT_EQ(Put("/EpisodeOfCare/" + id, edited).status, 200);
  // Moving it by update, or deleting it, is refused: nothing changes.
  std::string moved = Get("/EpisodeOfCare/" + id).body;
  moved.replace(moved.find("\"planned\""), 9, "\"finished\"");
  EXPECT_EQ(Put("/EpisodeOfCare/" + id, moved).status, 422);
  EXPECT_EQ(Http(Port(), "DELETE", "/EpisodeOfCare/" + id).status, 422);
  std::string other = Get("/EpisodeOfCare/" + id).body;
  std::string someone = CreatePatient("1950-01-01");
  other.replace(other.find("Patient/" + patient), ("Patient/" + patient).size(), "Patient/" + someone);
  EXPECT_EQ(Put("/EpisodeOfCare/" + id, other).status, 422) << "a case stays with its patient";
  EXPECT_STREQ(Get("/EpisodeOfCare/" + id).Json()["status"].GetString(), "planned");
}

TEST(CaseFinding, ACaseOpenedByHand) {
  std::string patient = CreatePatient("1960-01-01");
  std::string referral = R"({"resourceType":"EpisodeOfCare","status":"planned","patient":{"reference":"Patient/)" + patient + R"("}})";
  Response r = Post("/EpisodeOfCare", referral);
  ASSERT_EQ(r.status, 201) << r.body;
  std::string id = r.Json()["id"].GetString();
  EXPECT_EQ(r.Header("etag"), Get("/EpisodeOfCare/" + id).Header("etag")) << "the answer is what was committed";
  auto e = Get("/EpisodeOfCare/" + id).Json();
  EXPECT_EQ(std::string(e["managingOrganization"]["reference"].GetString()), "Organization/fls-default-site");
  EXPECT_EQ(Total(Get("/Task?patient=" + patient + "&code=assess-enrol")), 1);
  EXPECT_EQ(Total(Get("/EpisodeOfCare?stage=identified&patient=" + patient)), 1);
  Response again = Post("/EpisodeOfCare", referral);
  EXPECT_EQ(again.status, 422) << "one open case per patient";
  Response nobody = Post("/EpisodeOfCare", R"({"resourceType":"EpisodeOfCare","status":"planned","patient":{"reference":"Patient/nobody"}})");
  EXPECT_EQ(nobody.status, 422);
  Response waitlist = Post("/EpisodeOfCare", R"({"resourceType":"EpisodeOfCare","status":"waitlist","patient":{"reference":"Patient/)" +
                                                 CreatePatient("1960-01-01") + R"("}})");
  EXPECT_EQ(waitlist.status, 422);
  // The hospital's feed then names the fracture: it becomes the referred case's index fracture.
  ASSERT_EQ(Post("/Condition", Condition(patient, "http://hl7.org/fhir/sid/icd-10", "S72.0", Today(-7))).status, 201);
  auto referred = Get("/EpisodeOfCare/" + id).Json();
  auto& diag = referred["diagnosis"];
  ASSERT_GE(diag.Size(), 1u);
  EXPECT_STREQ(diag[diag.Size() - 1]["role"]["coding"][0]["code"].GetString(), "index-fracture");
  EXPECT_EQ(Total(Get("/Task?patient=" + patient + "&code=review-refracture")), 0);
  Response active = Post("/EpisodeOfCare", R"({"resourceType":"EpisodeOfCare","status":"active","patient":{"reference":"Patient/)" +
                                               CreatePatient("1960-01-01") + R"("}})");
  EXPECT_EQ(active.status, 422);
}

// One transaction of `n` fracture Conditions of one patient, all on `day`.
std::string FractureBundle(const std::string& patient, int n, const std::string& code, const std::string& day) {
  std::string b = R"({"resourceType":"Bundle","type":"transaction","entry":[)";
  for (int i = 0; i < n; ++i) {
    if (i) b += ",";
    b += R"({"resource":)" + Condition(patient, "http://hl7.org/fhir/sid/icd-10", code, day) +
         R"(,"request":{"method":"POST","url":"Condition"}})";
  }
  return b + "]}";
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The push that once ran 804 s: each fracture rewrote the case's EpisodeOfCare with every
// diagnosis so far. The case is now written once per push, whatever the number of fractures.
TEST(CaseFinding, ThreeThousandFracturesInOneTransactionMakeOneCaseWrittenOnce) {
  std::string patient = CreatePatient("1940-01-01");
  std::string bundle = FractureBundle(patient, 3000, "S72.0", Today(-3));
  auto start = std::chrono::steady_clock::now();
  Response r = Post("/", bundle);
  double seconds = SecondsSince(start);
  std::cout << "3000 fracture Conditions of one patient in one transaction (" << bundle.size() / 1024
            << " KiB): " << r.status << " in " << seconds << " s\n";
  ASSERT_EQ(r.status, 200) << r.body.substr(0, 500);
  auto cases = Get("/EpisodeOfCare?patient=" + patient).Json();
  auto list = Entries(cases);
  ASSERT_EQ(list.size(), 1u);
  auto& diagnosis = (*list[0])["diagnosis"];
  ASSERT_EQ(diagnosis.Size(), 3000u);
  std::set<std::string> listed;
  for (auto& d : diagnosis.GetArray()) listed.insert(d["condition"]["reference"].GetString());
  std::set<std::string> pushed;
  auto answer = r.Json();
  for (auto& e : answer["entry"].GetArray()) {
    std::string location = e["response"]["location"].GetString();
    size_t from = location.find("Condition/");
    pushed.insert(location.substr(from, location.find("/_history") - from));
  }
  EXPECT_EQ(listed, pushed) << "every Condition of the push, once";
  EXPECT_EQ(std::string(diagnosis[0]["role"]["coding"][0]["code"].GetString()), "index-fracture");
  EXPECT_EQ(diagnosis[2999]["rank"].GetInt(), 3000);
  std::string episode = (*list[0])["id"].GetString();
  EXPECT_EQ(Get("/EpisodeOfCare/" + episode).Header("etag"), "W/\"1\"") << "one version: written once";
  EXPECT_EQ(Sql("SELECT count(*) FROM fls_case_fracture WHERE episode_id = '" + episode + "'"), "3000");
  EXPECT_EQ(Total(Get("/Task?patient=" + patient + "&code=assess-enrol")), 1);
  EXPECT_EQ(Total(Get("/CarePlan?patient=" + patient)), 1);
}

TEST(CaseFinding, TenConcurrentTransactionsOfFourHundredFracturesEach) {
  std::vector<std::string> patients, bundles;
  for (int i = 0; i < 10; ++i) {
    patients.push_back(CreatePatient("1945-01-01"));
    bundles.push_back(FractureBundle(patients.back(), 400, "S32.0", Today(-2)));
  }
  std::vector<int> statuses(10);
  std::vector<std::thread> threads;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 10; ++i) threads.emplace_back([&, i] { statuses[i] = Post("/", bundles[i]).status; });
  for (auto& t : threads) t.join();
  std::cout << "10 concurrent transactions of 400 fracture Conditions: " << SecondsSince(start) << " s\n";
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(statuses[i], 200);
    auto cases = Get("/EpisodeOfCare?patient=" + patients[i]).Json();
    ASSERT_EQ(Entries(cases).size(), 1u);
    EXPECT_EQ((*Entries(cases)[0])["diagnosis"].Size(), 400u);
  }
}

// Ribs are non-severe until three are on the case; then every rib diagnosis is severe, whether
// they came in one push or several.
TEST(CaseFinding, RibFracturesBecomeSevereAtThree) {
  auto grios = [](const std::string& patient) {
    auto cases = Get("/EpisodeOfCare?patient=" + patient).Json();
    std::vector<std::string> out;
    for (auto& d : (*Entries(cases).at(0))["diagnosis"].GetArray()) {
      for (auto& x : d["extension"].GetArray()) {
        if (std::string(x["url"].GetString()).find("grio-class") != std::string::npos) {
          out.push_back(x["valueCode"].GetString());
        }
      }
    }
    return out;
  };
  std::string patient = CreatePatient("1945-01-01");
  ASSERT_EQ(Post("/", FractureBundle(patient, 2, "S22.3", Today(-4))).status, 200);
  EXPECT_EQ(grios(patient), (std::vector<std::string>{"non-severe", "non-severe"}));
  ASSERT_EQ(Post("/", FractureBundle(patient, 1, "S22.4", Today(-4))).status, 200);
  EXPECT_EQ(grios(patient), (std::vector<std::string>{"severe", "severe", "severe"}));
  std::string other = CreatePatient("1945-01-01");
  ASSERT_EQ(Post("/", FractureBundle(other, 4, "S22.3", Today(-4))).status, 200);
  EXPECT_EQ(grios(other), (std::vector<std::string>{"severe", "severe", "severe", "severe"})) << "four in one push";
  auto cases = Get("/EpisodeOfCare?patient=" + patient).Json();
  EXPECT_EQ(Get("/EpisodeOfCare/" + std::string((*Entries(cases)[0])["id"].GetString())).Header("etag"), "W/\"2\"")
      << "one version per push";
}

// Ground truth from the files themselves: a patient has a case when at least one Condition is a
// fragility fracture (a fracture code of the list, at 50 or over on the onset date, not entered in
// error or refuted); every such Condition is on that case; the case is closed when the patient died.
void ExpectOutcomeStatus(const Response& r, int status) {
  EXPECT_EQ(r.status, status) << r.body;
  EXPECT_NE(r.body.find("\"OperationOutcome\""), std::string::npos) << r.body;
}

// The event log, read back as operations.md section 1 says: one `event` part per row, in order.
TEST(CaseEvents, TheLogOfACaseIsReadBackInOrderWithItsParts) {
  std::string patient = CreatePatient("1948-05-06");
  std::string org = Org();
  ASSERT_EQ(Post("/", Admission(patient, org, "S72.001A", Today(-3))).status, 200);
  auto cases = Get("/EpisodeOfCare?patient=" + patient).Json();
  ASSERT_EQ(Entries(cases).size(), 1u);
  std::string episode = (*Entries(cases)[0])["id"].GetString();

  auto parts = [](const rapidjson::Value& event) {
    std::map<std::string, std::string> out;
    for (const auto& p : event["part"].GetArray()) {
      std::string value;
      for (auto m = p.MemberBegin(); m != p.MemberEnd(); ++m) {
        std::string key = m->name.GetString();
        if (key.rfind("value", 0) == 0) value = m->value.IsString() ? m->value.GetString() : std::to_string(m->value.GetInt64());
      }
      out[p["name"].GetString()] = value;
    }
    return out;
  };
  Response log = Get("/EpisodeOfCare/" + episode + "/$events");
  ASSERT_EQ(log.status, 200) << log.body;
  auto d = log.Json();
  EXPECT_STREQ(d["resourceType"].GetString(), "Parameters");
  ASSERT_EQ(d["parameter"].Size(), 1u) << log.body;
  auto first = parts(d["parameter"][0]);
  EXPECT_EQ(d["parameter"][0]["name"].GetString(), std::string("event"));
  EXPECT_EQ(first["event"], "identify");
  EXPECT_EQ(first.count("from"), 0u) << "the row that opened the case comes from nowhere";
  EXPECT_EQ(first["to"], "identified");
  EXPECT_EQ(first["source"], "data");
  ASSERT_EQ(first["occurred"].size(), 24u) << "an instant such as 2026-12-01T21:27:49.123Z: " << first["occurred"];
  EXPECT_EQ(first["occurred"][10], 'T');
  EXPECT_EQ(first["occurred"].back(), 'Z');
  EXPECT_FALSE(first["recorded"].empty());
  EXPECT_FALSE(first["seq"].empty());

  // The patient dies: the case closes, and the log says so after the first row.
  std::string body = R"({"resourceType":"Patient","id":")" + patient + R"(","birthDate":"1948-05-06","deceasedDateTime":")" +
                     Today(-1) + R"("})";
  ASSERT_EQ(Put("/Patient/" + patient, body).status, 200);
  d = Get("/EpisodeOfCare/" + episode + "/$events").Json();
  ASSERT_EQ(d["parameter"].Size(), 2u);
  auto second = parts(d["parameter"][1]);
  EXPECT_EQ(second["from"], "identified");
  EXPECT_EQ(second["to"], "deceased");
  EXPECT_GT(std::stoll(second["seq"]), std::stoll(first["seq"]));

  ExpectOutcomeStatus(Get("/EpisodeOfCare/no-such-case/$events"), 404);
  ExpectOutcomeStatus(Get("/Patient/" + patient + "/$events"), 404);
}

TEST(Knowledge, ThePathwaysCodeSystemsArePublishedFromTheTableAndTheData) {
  struct Row {
    const char* id;
    unsigned concepts;
    const char* some_code;
  };
  const Row rows[] = {{"pathway-stage", 10, "treatment-decision"},
                      {"fls-pathway-event", 14, "result"},
                      {"fls-investigation", 16, "renal-clearance"},
                      {"fls-flag", 9, "thyroid"}};  // thyroid has two rules (low, high) and one code
  for (const auto& row : rows) {
    Response r = Get(std::string("/CodeSystem/") + row.id);
    ASSERT_EQ(r.status, 200) << row.id;
    auto d = r.Json();
    EXPECT_EQ(std::string(d["url"].GetString()), std::string("http://fls-server.org/fhir/CodeSystem/") + row.id);
    EXPECT_STREQ(d["content"].GetString(), "complete");
    ASSERT_EQ(d["concept"].Size(), row.concepts) << row.id;
    bool found = false;
    for (const auto& c : d["concept"].GetArray()) found = found || std::string(c["code"].GetString()) == row.some_code;
    EXPECT_TRUE(found) << row.id << " lacks " << row.some_code;
  }
  auto flags = Get("/CodeSystem/fls-flag").Json();
  for (const auto& c : flags["concept"].GetArray()) {
    if (std::string(c["code"].GetString()) != "thyroid") continue;
    std::string definition = c["definition"].GetString();
    EXPECT_NE(definition.find("< 0.4 m[IU]/L"), std::string::npos) << definition;
    EXPECT_NE(definition.find("> 4 m[IU]/L"), std::string::npos) << definition;
  }
  // A second server starting on the same database with the same data adds no version.
  ServerProcess again;
  ASSERT_TRUE(again.WaitReady(30000)) << again.LogTail();
  for (const auto& row : rows) {
    Response r = Http(again.port(), "GET", std::string("/CodeSystem/") + row.id);
    EXPECT_STREQ(r.Json()["meta"]["versionId"].GetString(), "1") << row.id;
  }
}

TEST(CaseFinding, EverySyntheaPatientGetsTheCasesTheFilesCallFor) {
  namespace fs = std::filesystem;
  const std::set<std::string> fracture_codes = {"359817006", "5913000",  "704330001", "33737001", "263102004",
                                                "65966004",  "16114001", "58150001",  "443165006", "125605004"};
  std::vector<fs::path> files;
  for (auto& e : fs::directory_iterator(SharedDir() + "/testdata/synthea-r4-transaction")) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  int patients = 0, with_cases = 0;
  for (const auto& f : files) {
    std::string body = ReadFile(f.string());
    Response r = Post("/", body);
    ASSERT_EQ(r.status, 200) << f.filename();
    rapidjson::Document in;
    in.Parse(body.c_str());
    std::string birth, ident;
    bool deceased = false;
    int expected_fractures = 0;
    for (auto& e : in["entry"].GetArray()) {
      auto& res = e["resource"];
      std::string type = res["resourceType"].GetString();
      if (type == "Patient") {
        birth = res["birthDate"].GetString();
        ident = res["identifier"][0]["value"].GetString();
        deceased = res.HasMember("deceasedDateTime");
      }
    }
    if (ident.empty()) continue;
    ++patients;
    int by = std::stoi(birth.substr(0, 4)), bm = std::stoi(birth.substr(5, 2)), bd = std::stoi(birth.substr(8, 2));
    for (auto& e : in["entry"].GetArray()) {
      auto& res = e["resource"];
      if (std::string(res["resourceType"].GetString()) != "Condition") continue;
      bool fracture = false;
      for (auto& c : res["code"]["coding"].GetArray()) {
        fracture = fracture || (std::string(c["system"].GetString()) == "http://snomed.info/sct" &&
                                fracture_codes.count(c["code"].GetString()));
      }
      if (!fracture || !res.HasMember("onsetDateTime")) continue;
      if (res.HasMember("verificationStatus")) {
        std::string v = res["verificationStatus"]["coding"][0]["code"].GetString();
        if (v == "entered-in-error" || v == "refuted") continue;
      }
      std::string onset = res["onsetDateTime"].GetString();
      int y = std::stoi(onset.substr(0, 4)), m = std::stoi(onset.substr(5, 2)), d = std::stoi(onset.substr(8, 2));
      int age = y - by - ((m < bm || (m == bm && d < bd)) ? 1 : 0);
      if (age >= 50) ++expected_fractures;
    }
    Response p = Get("/Patient?identifier=https://github.com/synthetichealth/synthea%7C" + ident);
    ASSERT_EQ(Total(p), 1);
    std::string pid = p.Json()["entry"][0]["resource"]["id"].GetString();
    auto cases = Get("/EpisodeOfCare?patient=" + pid).Json();
    auto list = Entries(cases);
    EXPECT_EQ(list.size(), expected_fractures > 0 ? 1u : 0u) << f.filename() << ": " << expected_fractures << " fragility fractures";
    if (!list.empty()) {
      ++with_cases;
      EXPECT_EQ(static_cast<int>((*list[0])["diagnosis"].Size()), expected_fractures) << f.filename();
      EXPECT_STREQ((*list[0])["status"].GetString(), deceased ? "finished" : "planned") << f.filename();
    }
  }
  EXPECT_EQ(patients, 31);
  EXPECT_GT(with_cases, 0) << "the data set holds fragility fractures";
  std::cout << "Synthea: " << patients << " patients, " << with_cases << " with an FLS case\n";
}

}  // namespace
}  // namespace fls::test
