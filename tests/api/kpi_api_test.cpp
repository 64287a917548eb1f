// The quality indicators through the real server (operations.md section 6): Measures published
// from the framework files, $evaluate-measure over cases driven through the pathway with
// back-dated events (a window's last day in, the next day out, exclusions), per site, per region
// (a partOf tree) and overall, summary and subject-list, the expected caseload from the sites'
// Organizations, who may ask for what (a coordinator only about its own sites, the EHR role not at
// all), bad parameters refused, and a report saved for the year's audit.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <string>

#include "tests/api/fls_cases.h"
#include "tests/api/test_client.h"

namespace fls::test {
namespace {

// Cases up to 500 days old must open (the refracture measures need 12 months of follow-up).
const auto* const kEnv = ::testing::AddGlobalTestEnvironment(
    new SuiteServer(std::map<std::string, std::string>{{"FLS_CASE_LOOKBACK_DAYS", "1000"}}));
int Port() { return SuiteServer::Server().port(); }
Response Get(const std::string& t, std::map<std::string, std::string> h = {}) { return Http(Port(), "GET", t, "", h); }
Response Post(const std::string& t, const std::string& b) { return Http(Port(), "POST", t, b); }
Response Put(const std::string& t, const std::string& b) { return Http(Port(), "PUT", t, b); }

const std::string kCb = "http://fls-server.org/fhir";

void Org(const std::string& id, const std::string& part_of, int caseload_per_year) {
  std::string body = R"({"resourceType":"Organization","id":")" + id + R"(","name":"FLS )" + id + "\"";
  if (!part_of.empty()) body += R"(,"partOf":{"reference":"Organization/)" + part_of + "\"}";
  if (caseload_per_year > 0) {
    body += R"(,"extension":[{"url":")" + kCb + R"(/StructureDefinition/fls-expected-caseload","valueInteger":)" +
            std::to_string(caseload_per_year) + "}]";
  }
  Response r = Put("/Organization/" + id, body + "}");
  ASSERT_TRUE(r.status == 200 || r.status == 201) << r.body;
}

struct Pushed {
  std::string patient, episode, day;
};
// A fracture on `day` at `site` (an Encounter whose serviceProvider is the site), as an EHR pushes
// it; `code` in WHO ICD-10.
Pushed Fracture(const std::string& site, const std::string& day, const std::string& code = "S72.0",
                const std::string& patient_in = "") {
  Pushed p;
  p.day = day;
  p.patient = patient_in.empty() ? Id(Post("/Patient", R"({"resourceType":"Patient","gender":"female","birthDate":"1940-02-03","identifier":[{"system":"urn:test","value":")" +
                                                             Unique() + "\"}]}"))
                                 : patient_in;
  std::string bundle = R"({"resourceType":"Bundle","type":"transaction","entry":[
    {"fullUrl":"urn:uuid:0d0d0d0d-0000-4000-8000-000000000001","resource":{"resourceType":"Encounter","status":"finished",
      "class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"EMER"},"subject":{"reference":"Patient/)" +
                       p.patient + R"("},"serviceProvider":{"reference":"Organization/)" + site + R"("},"period":{"start":")" + day +
                       R"(T10:00:00+01:00"}},"request":{"method":"POST","url":"Encounter"}},
    {"resource":{"resourceType":"Condition","subject":{"reference":"Patient/)" + p.patient +
                       R"("},"encounter":{"reference":"urn:uuid:0d0d0d0d-0000-4000-8000-000000000001"},"onsetDateTime":")" + day +
                       R"(","code":{"coding":[{"system":"http://hl7.org/fhir/sid/icd-10","code":")" + code +
                       R"("}]}},"request":{"method":"POST","url":"Condition"}}]})";
  Response r = Post("/", bundle);
  EXPECT_EQ(r.status, 200) << r.body.substr(0, 400);
  auto d = Get("/EpisodeOfCare?patient=Patient/" + p.patient + "&_sort=-_lastUpdated").Json();
  auto e = Entries(d);
  if (!e.empty()) p.episode = (*e[0])["id"].GetString();
  EXPECT_FALSE(p.episode.empty()) << "no case opened for the fracture of " << day;
  return p;
}

std::string At(const std::string& day) { return day + "T12:00:00+01:00"; }
std::string Occurred(const std::string& day) { return R"(,{"name":"occurred","valueDateTime":")" + At(day) + "\"}"; }

void Ok(const Response& r, const char* what) { EXPECT_EQ(r.status, 200) << what << ": " << r.body.substr(0, 400); }

void EnrolOn(const Pushed& c, const std::string& day) {
  std::string body = EnrolBody(Practitioner(Port()));
  body.insert(body.rfind(']'), Occurred(day));
  Ok(Event(Port(), c.episode, body), "enrol");
}
void Simple(const Pushed& c, const std::string& event, const std::string& day, const std::string& extra = "") {
  Ok(Event(Port(), c.episode, R"({"resourceType":"Parameters","parameter":[{"name":"event","valueCode":")" + event + "\"}" +
                                  extra + Occurred(day) + "]}"),
     event.c_str());
}
void WaiveAll(const Pushed& c, const std::string& day) {
  auto d = Get("/ServiceRequest?patient=Patient/" + c.patient + "&status=active&_count=100").Json();
  for (auto* s : Entries(d)) {
    Simple(c, "waive", day,
           R"(,{"name":"item","valueReference":{"reference":"ServiceRequest/)" + std::string((*s)["id"].GetString()) +
               R"("}},{"name":"reason","valueString":"done elsewhere"})");
  }
}

std::string T(int days_from_today) { return PlusDays(Today(), days_from_today); }

// The cohort of the suite (built once).
struct World {
  Pushed a1, a2, a3, a4, b1, c1, r1;
  std::string p_start, p_end;  // the main period
};
const World& TheWorld() {
  static const World w = [] {
    World w;
    Org("kpi-north", "", 0);
    Org("kpi-site-a", "kpi-north", 365);
    Org("kpi-site-b", "kpi-north", 730);
    Org("kpi-site-c", "", 0);
    w.p_start = T(-300);
    w.p_end = T(-100);
    // a1: assessed on day 90 (in for FLS-DB's 90 days, out for IOF's 84), falls assessed, DXA on day 80.
    w.a1 = Fracture("kpi-site-a", T(-200));
    EnrolOn(w.a1, PlusDays(w.a1.day, 90));
    Simple(w.a1, "falls-assessment", PlusDays(w.a1.day, 95), R"(,{"name":"at-risk","valueBoolean":true})");
    Response dxa = Post("/Observation", R"({"resourceType":"Observation","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"imaging"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"38267-1"}]},"subject":{"reference":"Patient/)" +
                                              w.a1.patient + R"("},"effectiveDateTime":")" + PlusDays(w.a1.day, 80) +
                                              R"(","valueQuantity":{"value":-2.7,"unit":"{T-score}","system":"http://unitsofmeasure.org","code":"{T-score}"}})");
    EXPECT_EQ(dxa.status, 201) << dxa.body;
    // a2: assessed on day 91, everything waived, treatment decided on day 100, a reached call on
    // day 110, treatment started on day 112.
    w.a2 = Fracture("kpi-site-a", T(-150));
    EnrolOn(w.a2, PlusDays(w.a2.day, 91));
    WaiveAll(w.a2, PlusDays(w.a2.day, 91));
    Ok(Event(Port(), w.a2.episode, DrugEvent("decide-treatment", "M05BA04", At(PlusDays(w.a2.day, 100)))), "decide");
    Ok(Event(Port(), w.a2.episode, DrugEvent("treatment-started", "M05BA04", At(PlusDays(w.a2.day, 112)))), "start");
    Ok(Http(Port(), "POST", "/EpisodeOfCare/" + w.a2.episode + "/$contact",
            R"({"resourceType":"Parameters","parameter":[{"name":"reached","valueBoolean":true},{"name":"adherent","valueBoolean":true},{"name":"occurred","valueDateTime":")" +
                At(PlusDays(w.a2.day, 110)) + "\"}]}"),
       "contact");
    // a3: not a fragility fracture after all (excluded from every denominator).
    w.a3 = Fracture("kpi-site-a", T(-120));
    Simple(w.a3, "exclude", PlusDays(w.a3.day, 5), R"(,{"name":"reason","valueCode":"not-fragility"})");
    // a4: outside the period.
    w.a4 = Fracture("kpi-site-a", T(-50));
    EnrolOn(w.a4, T(-45));
    // b1: a vertebral fracture at site B, excluded (declined) on day 10: assessed.
    w.b1 = Fracture("kpi-site-b", T(-180), "S22.0");
    Simple(w.b1, "exclude", PlusDays(w.b1.day, 10), R"(,{"name":"reason","valueCode":"declined"})");
    // c1: site C, in no region, nothing done.
    w.c1 = Fracture("kpi-site-c", T(-160));
    // r1: site C, 500 days ago, a second fracture 100 days later (a refracture within 12 months).
    w.r1 = Fracture("kpi-site-c", T(-500));
    Simple(w.r1, "exclude", PlusDays(w.r1.day, 3), R"(,{"name":"reason","valueCode":"declined"})");
    Fracture("kpi-site-c", T(-400), "S52.5", w.r1.patient);
    return w;
  }();
  return w;
}

struct Report {
  int status = 0;
  std::string body;
  std::map<std::string, int> count;
  std::optional<double> score;
  std::string band;
  std::map<std::string, std::vector<std::string>> lists;  // contained List id -> EpisodeOfCare ids
};

Report Evaluate(const std::string& measure, const std::string& from, const std::string& to, const std::string& subject = "",
                const std::string& extra = "", std::map<std::string, std::string> h = {}) {
  std::string q = "/Measure/" + measure + "/$evaluate-measure?periodStart=" + from + "&periodEnd=" + to;
  if (!subject.empty()) q += "&subject=" + subject;
  Response r = Get(q + extra, h);
  Report out;
  out.status = r.status;
  out.body = r.body;
  if (r.status != 200) return out;
  auto d = r.Json();
  EXPECT_STREQ(d["resourceType"].GetString(), "MeasureReport");
  EXPECT_STREQ(d["status"].GetString(), "complete");
  EXPECT_EQ(std::string(d["measure"].GetString()), kCb + "/Measure/" + measure);
  EXPECT_EQ(std::string(d["period"]["start"].GetString()), from);
  for (const auto& p : d["group"][0]["population"].GetArray()) {
    out.count[p["code"]["coding"][0]["code"].GetString()] = p["count"].GetInt();
  }
  if (d["group"][0].HasMember("measureScore")) out.score = d["group"][0]["measureScore"]["value"].GetDouble();
  if (d.HasMember("extension")) {
    for (const auto& e : d["extension"].GetArray()) {
      if (e.HasMember("valueCode")) out.band = e["valueCode"].GetString();
    }
  }
  if (d.HasMember("contained")) {
    for (const auto& l : d["contained"].GetArray()) {
      auto& v = out.lists[l["id"].GetString()];
      for (const auto& e : l["entry"].GetArray()) {
        std::string ref = e["item"]["reference"].GetString();
        v.push_back(ref.substr(ref.find('/') + 1));
      }
      std::sort(v.begin(), v.end());
    }
  }
  return out;
}

std::vector<std::string> Sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

TEST(Measures, OnePerIndicatorAndFramework) {
  auto d = Get("/Measure?_count=100").Json();
  std::set<std::string> ids;
  for (auto* m : Entries(d)) ids.insert((*m)["id"].GetString());
  for (int i = 1; i <= 11; ++i) {
    EXPECT_TRUE(ids.count("fls-db-kpi-" + std::to_string(i))) << i;
    EXPECT_TRUE(ids.count("iof-kpi-" + std::to_string(i))) << i;
  }
  for (const char* id : {"fls-median-days-to-assessment", "fls-median-days-to-dxa", "fls-median-days-to-treatment",
                         "fls-refracture-12m", "fls-refracture-24m", "fls-treatment-gap", "ctf-active-sites",
                         "ctf-hip-vertebral-change"}) {
    EXPECT_TRUE(ids.count(id)) << id;
  }
  auto m = Get("/Measure/fls-db-kpi-4").Json();
  EXPECT_STREQ(m["scoring"]["coding"][0]["code"].GetString(), "proportion");
  EXPECT_NE(std::string(m["guidance"].GetString()).find("90 days"), std::string::npos);
  EXPECT_EQ(std::string(m["url"].GetString()), kCb + "/Measure/fls-db-kpi-4");
  auto med = Get("/Measure/fls-median-days-to-dxa").Json();
  EXPECT_STREQ(med["scoring"]["coding"][0]["code"].GetString(), "continuous-variable");
}

TEST(Evaluate, AssessmentWindowsPerFrameworkSiteAndRegion) {
  const World& w = TheWorld();
  // The region: sites A and B (a4 is outside the period, c1 in another site).
  Report r = Evaluate("fls-db-kpi-4", w.p_start, w.p_end, "Organization/kpi-north");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.count["initial-population"], 4);
  EXPECT_EQ(r.count["denominator"], 4);
  EXPECT_EQ(r.count["denominator-exclusion"], 1) << "a3: not a fragility fracture";
  EXPECT_EQ(r.count["numerator"], 2) << "a1 on day 90 and b1 excluded (declined) on day 10";
  ASSERT_TRUE(r.score);
  EXPECT_NEAR(*r.score, 2.0 / 3.0, 1e-4);
  EXPECT_EQ(r.band, "amber");
  // IOF's 12 weeks: a1's day 90 is late.
  Report iof = Evaluate("iof-kpi-3", w.p_start, w.p_end, "Organization/kpi-north");
  EXPECT_EQ(iof.count["numerator"], 1);
  EXPECT_NEAR(*iof.score, 1.0 / 3.0, 1e-4);
  EXPECT_EQ(iof.band, "below-50");
  // One site.
  Report a = Evaluate("fls-db-kpi-4", w.p_start, w.p_end, "Organization/kpi-site-a");
  EXPECT_EQ(a.count["initial-population"], 3);
  EXPECT_NEAR(*a.score, 0.5, 1e-4);
  // Overall: every site.
  Report all = Evaluate("fls-db-kpi-4", w.p_start, w.p_end);
  EXPECT_EQ(all.count["initial-population"], 5);
  // The period's ends are included.
  Report day = Evaluate("fls-db-kpi-4", w.a1.day, w.a1.day);
  EXPECT_EQ(day.count["initial-population"], 1);
  Report before = Evaluate("fls-db-kpi-4", PlusDays(w.a1.day, 1), PlusDays(w.a1.day, 19));  // b1 is on day 20
  EXPECT_EQ(before.count["initial-population"], 0);
  EXPECT_FALSE(before.score) << "an empty cohort has no score";
}

TEST(Evaluate, SubjectListsNameTheCases) {
  const World& w = TheWorld();
  Report r = Evaluate("fls-db-kpi-4", w.p_start, w.p_end, "Organization/kpi-north", "&reportType=subject-list");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.lists["initial-population"], Sorted({w.a1.episode, w.a2.episode, w.a3.episode, w.b1.episode}));
  EXPECT_EQ(r.lists["denominator-exclusion"], Sorted({w.a3.episode}));
  EXPECT_EQ(r.lists["numerator"], Sorted({w.a1.episode, w.b1.episode}));
  EXPECT_NE(r.body.find("\"subjectResults\":{\"reference\":\"#numerator\"}"), std::string::npos);
  // The audit trail names the cases a list reached.
  EXPECT_NE(Sql("SELECT count(*) FROM resource_version WHERE res_type = 'AuditEvent' AND content::text LIKE '%$evaluate-measure%' "
                "AND content::text LIKE '%EpisodeOfCare/" + w.a1.episode + "%'"),
            "0");
}

TEST(Evaluate, EveryDataSourceReachesItsIndicator) {
  const World& w = TheWorld();
  const std::string R = "Organization/kpi-north";
  Report falls = Evaluate("fls-db-kpi-6", w.p_start, w.p_end, R);
  EXPECT_EQ(falls.count["numerator"], 1) << "a1's falls-assessment event";
  Report dxa = Evaluate("fls-db-kpi-5", w.p_start, w.p_end, R, "&reportType=subject-list");
  EXPECT_EQ(dxa.lists["denominator"], Sorted({w.a1.episode})) << "a2's DXA was waived; a3 and b1 were never enrolled";
  EXPECT_EQ(dxa.lists["numerator"], Sorted({w.a1.episode})) << "a1's DXA resulted on day 80";
  Report recommended = Evaluate("fls-db-kpi-7", w.p_start, w.p_end, R);
  EXPECT_EQ(recommended.count["denominator"], 2) << "the enrolled: a1, a2";
  EXPECT_EQ(recommended.count["numerator"], 1);
  Report monitoring = Evaluate("fls-db-kpi-9", w.p_start, w.p_end, R);
  EXPECT_EQ(monitoring.count["denominator"], 1);
  EXPECT_EQ(monitoring.count["numerator"], 1) << "a2's reached call on day 110";
  Report started = Evaluate("fls-db-kpi-10", w.p_start, w.p_end, R);
  EXPECT_EQ(started.count["numerator"], 1) << "a2 started on day 112, the window's last day";
  Report spine = Evaluate("fls-db-kpi-3", w.p_start, w.p_end, R);
  EXPECT_EQ(spine.count["numerator"], 1) << "b1 is vertebral";
  Report median = Evaluate("fls-median-days-to-assessment", w.p_start, w.p_end, R);
  EXPECT_EQ(median.count["measure-population"], 3);
  EXPECT_EQ(median.count["measure-population-exclusion"], 1);
  ASSERT_TRUE(median.score);
  EXPECT_DOUBLE_EQ(*median.score, 90) << "days 10, 90, 91";
  EXPECT_NE(median.body.find("\"code\":\"d\""), std::string::npos) << "a median in days (UCUM d)";
  // A refracture of the patient 100 days after the index fracture (a later case at site C).
  Report refracture = Evaluate("fls-refracture-12m", T(-600), T(-450), "Organization/kpi-site-c");
  EXPECT_EQ(refracture.count["denominator"], 1);
  EXPECT_EQ(refracture.count["numerator"], 1);
}

TEST(Evaluate, IdentificationAgainstTheSitesExpectedCaseload) {
  const World& w = TheWorld();
  Report r = Evaluate("fls-db-kpi-2", w.p_start, w.p_end, "Organization/kpi-north");
  ASSERT_EQ(r.status, 200) << r.body;
  const int days = DaysBetween(w.p_start, w.p_end) + 1;
  const int expected = static_cast<int>(std::llround(1095.0 * days / 365.2425));
  EXPECT_EQ(r.count["denominator"], expected);
  EXPECT_EQ(r.count["numerator"], 3) << "a1, a2, b1 (a3 was no fragility fracture)";
  EXPECT_NEAR(*r.score, 3.0 / expected, 1e-4);
  Report iof = Evaluate("iof-kpi-1", w.p_start, w.p_end, "Organization/kpi-north");
  EXPECT_EQ(iof.count["numerator"], 2) << "IOF counts non-spinal fractures";
  Report none = Evaluate("fls-db-kpi-2", w.p_start, w.p_end, "Organization/kpi-site-c");
  EXPECT_EQ(none.count["denominator"], 0);
  EXPECT_FALSE(none.score) << "no caseload configured for site C: no score";
}

TEST(Evaluate, BadRequestsAreRefusedWithAnOutcome) {
  const World& w = TheWorld();
  struct Case {
    std::string query;
    int status;
  };
  const std::string base = "/Measure/fls-db-kpi-4/$evaluate-measure";
  const Case cases[] = {
      {base + "?periodEnd=" + w.p_end, 400},
      {base + "?periodStart=" + w.p_start, 400},
      {base + "?periodStart=2026-13-01&periodEnd=2026-12-31", 400},
      {base + "?periodStart=2026-02-30&periodEnd=2026-12-31", 400},
      {base + "?periodStart=2026-06-01&periodEnd=2026-05-31", 400},
      {base + "?periodStart=2026-01-01T00:00:00Z&periodEnd=2026-12-31", 400},
      {base + "?periodStart=2026-01-01&periodEnd=2026-12-31&subject=Patient/x", 400},
      {base + "?periodStart=2026-01-01&periodEnd=2026-12-31&subject=Organization/no-such-site", 404},
      {base + "?periodStart=2026-01-01&periodEnd=2026-12-31&reportType=population", 400},
      {base + "?periodStart=2026-01-01&periodEnd=2026-12-31&measure=x", 400},
      {base + "?periodStart=2026-01-01&periodStart=2026-02-01&periodEnd=2026-12-31", 400},
      {"/Measure/no-such-kpi/$evaluate-measure?periodStart=2026-01-01&periodEnd=2026-12-31", 404},
      {base + "?periodStart=2026-01-01&periodEnd=2026-12-31&subject=Organization/%27%3B%20DROP", 400},
  };
  for (const auto& c : cases) {
    Response r = Get(c.query);
    EXPECT_EQ(r.status, c.status) << c.query << ": " << r.body;
    EXPECT_NE(r.body.find("OperationOutcome"), std::string::npos) << c.query;
  }
}

TEST(Evaluate, WhoMayAskForWhat) {
  const World& w = TheWorld();
  const std::string pw = "a long enough password";
  auto add = [&](const std::string& args) {
    std::string cmd = "printf '%s\\n' '" + pw + "' | FLS_DATABASE_URL='" + TestDatabaseUrl() + "' '" + Env("FLS_SERVER_BIN") +
                      "' user add " + args + " >/dev/null 2>&1";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << args;
  };
  add("--login kpi-coord --role coordinator --sites Organization/kpi-site-a");
  add("--login kpi-quality --role quality");
  add("--login kpi-ehr --role ehr");
  auto session = [&](const std::string& login) {
    Response r = Http(Port(), "POST", "/auth/login", "{\"login\":\"" + login + "\",\"password\":\"" + pw + "\"}",
                      {{"Authorization", ""}, {"Content-Type", "application/json"}});
    EXPECT_EQ(r.status, 200) << r.body;
    std::string c = r.Header("set-cookie");
    return std::map<std::string, std::string>{{"Authorization", ""}, {"Cookie", c.substr(0, c.find(';'))}};
  };
  auto coord = session("kpi-coord"), quality = session("kpi-quality"), ehr = session("kpi-ehr");
  // A coordinator: its own site by default, never another site or a region holding one.
  Report mine = Evaluate("fls-db-kpi-4", w.p_start, w.p_end, "", "&reportType=subject-list", coord);
  ASSERT_EQ(mine.status, 200) << mine.body;
  EXPECT_EQ(mine.lists["initial-population"], Sorted({w.a1.episode, w.a2.episode, w.a3.episode}));
  EXPECT_EQ(Evaluate("fls-db-kpi-4", w.p_start, w.p_end, "Organization/kpi-site-a", "", coord).status, 200);
  EXPECT_EQ(Evaluate("fls-db-kpi-4", w.p_start, w.p_end, "Organization/kpi-site-b", "", coord).status, 403);
  EXPECT_EQ(Evaluate("fls-db-kpi-4", w.p_start, w.p_end, "Organization/kpi-north", "", coord).status, 403);
  // Quality: any site and region; the EHR role: none.
  Report q = Evaluate("fls-db-kpi-4", w.p_start, w.p_end, "Organization/kpi-north", "", quality);
  EXPECT_EQ(q.status, 200) << q.body;
  EXPECT_EQ(q.count["numerator"], 2);
  EXPECT_EQ(Evaluate("fls-db-kpi-4", w.p_start, w.p_end, "", "", ehr).status, 403);
  // A report kept for the year's audit, by the quality team.
  Response page = Get("/Measure/fls-db-kpi-4/$evaluate-measure?periodStart=" + w.p_start + "&periodEnd=" + w.p_end, quality);
  ASSERT_EQ(page.status, 200);
  std::map<std::string, std::string> write = quality;
  auto who = Http(Port(), "GET", "/auth/session", "", quality).Json();
  write["X-CSRF-Token"] = who["csrf"].GetString();
  Response saved = Http(Port(), "POST", "/MeasureReport", page.body, write);
  EXPECT_EQ(saved.status, 201) << saved.body;
}

// The case-level extract: one row per case of the cohort, excluded ones included; identifiers for
// those who may read patients, per-deployment pseudonyms, months and age bands for the others.
std::vector<std::map<std::string, std::string>> Rows(const std::string& csv) {
  std::vector<std::map<std::string, std::string>> out;
  std::vector<std::string> header;
  size_t i = 0;
  while (i < csv.size()) {
    size_t j = csv.find("\r\n", i);
    if (j == std::string::npos) j = csv.size();
    std::string line = csv.substr(i, j - i);
    i = j + 2;
    std::vector<std::string> cells;
    size_t k = 0;
    while (k <= line.size()) {
      size_t c = line.find(',', k);
      if (c == std::string::npos) c = line.size();
      cells.push_back(line.substr(k, c - k));
      k = c + 1;
    }
    if (header.empty()) {
      header = cells;
      continue;
    }
    std::map<std::string, std::string> row;
    for (size_t n = 0; n < header.size() && n < cells.size(); ++n) row[header[n]] = cells[n];
    out.push_back(row);
  }
  return out;
}

TEST(Extract, OneRowPerCaseIdentifiedOrPseudonymised) {
  const World& w = TheWorld();
  const std::string q = "/$fls-extract?periodStart=" + w.p_start + "&periodEnd=" + w.p_end + "&subject=Organization/kpi-north";
  Response r = Get(q, {{"Accept", "text/csv"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Header("content-type"), "text/csv; charset=utf-8");
  EXPECT_EQ(r.body.rfind("case,patient,site,index_fracture_date,index_fracture_site,sex,age_at_fracture,stage,", 0), 0u) << r.body;
  auto rows = Rows(r.body);
  ASSERT_EQ(rows.size(), 4u) << "a1, a2, a3 (excluded: in the extract), b1";
  std::map<std::string, std::map<std::string, std::string>> by_case;
  for (auto& row : rows) by_case[row["case"]] = row;
  auto& a1 = by_case[w.a1.episode];
  EXPECT_EQ(a1["patient"], w.a1.patient);
  EXPECT_EQ(a1["site"], "kpi-site-a");
  EXPECT_EQ(a1["index_fracture_date"], w.a1.day);
  EXPECT_EQ(a1["index_fracture_site"], "hip");
  EXPECT_EQ(a1["sex"], "female");
  EXPECT_EQ(a1["days_to_assessment"], "90");
  EXPECT_EQ(a1["days_to_dxa"], "80");
  EXPECT_EQ(a1["days_to_falls_assessment"], "95");
  EXPECT_EQ(a1["dxa"], "resulted");
  EXPECT_EQ(a1["enrolled"], "yes");
  EXPECT_EQ(a1["key_fields_complete"], "yes");
  auto& a2 = by_case[w.a2.episode];
  EXPECT_EQ(a2["days_to_treatment"], "112");
  EXPECT_EQ(a2["days_to_first_reached_contact"], "110");
  EXPECT_EQ(a2["decided_drug"], "M05BA04");
  EXPECT_EQ(a2["dxa"], "waived");
  EXPECT_EQ(a2["adherent_52w"], "") << "not 52 weeks old yet";
  EXPECT_EQ(by_case[w.a3.episode]["exclude_reason"], "not-fragility");
  EXPECT_EQ(by_case[w.b1.episode]["index_fracture_site"], "vertebra");
  const int age = std::stoi(a1["age_at_fracture"]);
  EXPECT_TRUE(age == 85 || age == 86) << age;  // born 1940-02-03

  // The quality role: the same rows, no identifier.
  const std::string pw = "a long enough password";
  std::string cmd = "printf '%s\\n' '" + pw + "' | FLS_DATABASE_URL='" + TestDatabaseUrl() + "' '" + Env("FLS_SERVER_BIN") +
                    "' user add --login extract-quality --role quality >/dev/null 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  Response login = Http(Port(), "POST", "/auth/login", "{\"login\":\"extract-quality\",\"password\":\"" + pw + "\"}",
                        {{"Authorization", ""}, {"Content-Type", "application/json"}});
  ASSERT_EQ(login.status, 200);
  std::string cookie = login.Header("set-cookie");
  std::map<std::string, std::string> quality = {{"Authorization", ""}, {"Cookie", cookie.substr(0, cookie.find(';'))}};
  Response p = Get(q, quality);
  ASSERT_EQ(p.status, 200) << p.body;
  auto prow = Rows(p.body);
  ASSERT_EQ(prow.size(), 4u);
  for (const auto* id : {&w.a1.patient, &w.a2.patient, &w.a3.patient, &w.b1.patient, &w.a1.episode, &w.a2.episode,
                         &w.a3.episode, &w.b1.episode}) {
    EXPECT_EQ(p.body.find(*id), std::string::npos) << "an identifier in the quality role's extract: " << *id;
  }
  std::set<std::string> pseudonyms;
  for (auto& row : prow) {
    EXPECT_EQ(row["case"].rfind("ps-", 0), 0u);
    EXPECT_EQ(row["patient"].rfind("ps-", 0), 0u);
    EXPECT_EQ(row["index_fracture_date"].size(), 7u) << "a month, not a day";
    pseudonyms.insert(row["patient"]);
  }
  EXPECT_EQ(pseudonyms.size(), 4u);
  EXPECT_NE(p.body.find(",85-89,"), std::string::npos) << "ages in 5-year bands";
  // The same pseudonyms every time (one deployment, one key).
  EXPECT_EQ(Get(q, quality).body, p.body);
  // Refused: not CSV, bad periods, the EHR role.
  EXPECT_EQ(Get(q, {{"Accept", "application/fhir+json"}}).status, 406);
  EXPECT_EQ(Get("/$fls-extract?periodStart=2026-01-01", {}).status, 400);
  EXPECT_EQ(Get("/$fls-extract?periodStart=2026-01-01&periodEnd=2026-12-31&reportType=summary", {}).status, 400);
}

// The Capture the Fracture goals (their own region, so that the suite's other cases stay out):
// a baseline period and a period of 300 days each.
//   baseline: site A hip (g1), vertebra (g2), wrist (g3); site B nothing.
//   period:   site A hip (g4), wrist (g5), and g1's patient's second hip fracture (a refracture);
//             site B vertebra (g6), hip excluded as not a fragility fracture (g7).
// Active sites: A and B against A = 2.0. Hip and vertebral fractures: g4, the refracture, g6
// against g1, g2 = 3 / 2 = 1.5 (both periods 300 days). Site A alone: 2 against 2 = 1.0.
struct Goals {
  std::string b_start, b_end, p_start, p_end;
  Pushed g1, g4, g6, g7;
};
const Goals& TheGoals() {
  static const Goals g = [] {
    Goals g;
    Org("ctf-region", "", 0);
    Org("ctf-a", "ctf-region", 200);
    Org("ctf-b", "ctf-region", 0);
    g.b_start = T(-700);
    g.b_end = T(-401);
    g.p_start = T(-400);
    g.p_end = T(-101);
    g.g1 = Fracture("ctf-a", T(-650));
    Simple(g.g1, "exclude", PlusDays(g.g1.day, 3), R"(,{"name":"reason","valueCode":"declined"})");
    Fracture("ctf-a", T(-600), "S22.0");
    Fracture("ctf-a", T(-550), "S52.5");
    g.g4 = Fracture("ctf-a", T(-350));
    EnrolOn(g.g4, PlusDays(g.g4.day, 20));
    WaiveAll(g.g4, PlusDays(g.g4.day, 25));
    Ok(Event(Port(), g.g4.episode, DrugEvent("decide-treatment", "M05BA04", At(PlusDays(g.g4.day, 30)))), "decide");
    Ok(Event(Port(), g.g4.episode, DrugEvent("treatment-started", "M05BA04", At(PlusDays(g.g4.day, 40)))), "start");
    Fracture("ctf-a", T(-300), "S52.5");
    Fracture("ctf-a", T(-380), "S72.0", g.g1.patient);
    g.g6 = Fracture("ctf-b", T(-250), "S22.0");
    g.g7 = Fracture("ctf-b", T(-200));
    Simple(g.g7, "exclude", PlusDays(g.g7.day, 2), R"(,{"name":"reason","valueCode":"not-fragility"})");
    return g;
  }();
  return g;
}

TEST(Goals, CaptureTheFractureGoalsAsMeasureReports) {
  const Goals& g = TheGoals();
  const std::string baseline = "&baselineStart=" + g.b_start + "&baselineEnd=" + g.b_end;
  Report sites = Evaluate("ctf-active-sites", g.p_start, g.p_end, "Organization/ctf-region", baseline + "&reportType=subject-list");
  ASSERT_EQ(sites.status, 200) << sites.body;
  EXPECT_EQ(sites.count["numerator"], 2);
  EXPECT_EQ(sites.count["denominator"], 1);
  EXPECT_NEAR(*sites.score, 2.0, 1e-9) << "twice as many active sites: the goal";
  EXPECT_EQ(sites.lists["numerator"], (std::vector<std::string>{"ctf-a", "ctf-b"}));
  EXPECT_EQ(sites.lists["denominator"], (std::vector<std::string>{"ctf-a"}));
  EXPECT_NE(sites.body.find("\"reference\":\"Organization/ctf-a\""), std::string::npos);
  EXPECT_NE(sites.body.find("measure-report-baseline-period\",\"valuePeriod\":{\"start\":\"" + g.b_start), std::string::npos);

  Report hv = Evaluate("ctf-hip-vertebral-change", g.p_start, g.p_end, "Organization/ctf-region", baseline + "&reportType=subject-list");
  ASSERT_EQ(hv.status, 200) << hv.body;
  EXPECT_EQ(hv.count["numerator"], 3) << "g4, the refracture, g6; not g7 (not a fragility fracture) nor the wrists";
  EXPECT_EQ(hv.count["denominator"], 2);
  EXPECT_NEAR(*hv.score, 1.5, 1e-9);
  EXPECT_NE(hv.body.find("\"reference\":\"Condition/"), std::string::npos);
  Report a = Evaluate("ctf-hip-vertebral-change", g.p_start, g.p_end, "Organization/ctf-a", baseline);
  EXPECT_NEAR(*a.score, 1.0, 1e-9);
  // A longer period compares per day: the same 3 fractures over 600 days are half the rate.
  Report longer = Evaluate("ctf-hip-vertebral-change", PlusDays(g.p_start, -300), g.p_end, "Organization/ctf-region",
                           "&baselineStart=" + g.b_start + "&baselineEnd=" + g.b_end);
  EXPECT_EQ(longer.count["numerator"], 5) << "the baseline's two are in the longer period too";
  EXPECT_NEAR(*longer.score, (5.0 / 600) / (2.0 / 300), 1e-4);
  // The Measures say what they are.
  auto m = Get("/Measure/ctf-active-sites").Json();
  EXPECT_STREQ(m["scoring"]["coding"][0]["code"].GetString(), "ratio");
  auto m2 = Get("/Measure/ctf-hip-vertebral-change").Json();
  EXPECT_STREQ(m2["improvementNotation"]["coding"][0]["code"].GetString(), "decrease");
  // The configured baseline (2025) when none is given; a baseline means nothing to other measures.
  Report configured = Evaluate("ctf-active-sites", g.p_start, g.p_end, "Organization/ctf-region");
  ASSERT_EQ(configured.status, 200) << configured.body;
  EXPECT_NE(configured.body.find("\"valuePeriod\":{\"start\":\"2025-01-01\",\"end\":\"2025-12-31\"}"), std::string::npos);
  for (const std::string& q : std::vector<std::string>{"&baselineStart=" + g.b_start, "&baselineStart=" + g.b_end + "&baselineEnd=" + g.b_start,
                               "&baselineStart=2025-02-29&baselineEnd=2025-12-31"}) {
    EXPECT_EQ(Evaluate("ctf-active-sites", g.p_start, g.p_end, "", q).status, 400) << q;
  }
  EXPECT_EQ(Evaluate("fls-db-kpi-4", g.p_start, g.p_end, "", baseline).status, 400);
}

std::optional<double> ScoreOf(const rapidjson::Value& v) {
  if (!v.HasMember("score") || v["score"].IsNull()) return std::nullopt;
  return v["score"].GetDouble();
}

// The dashboard's numbers are $evaluate-measure's, overall, per quarter and per site.
TEST(Dashboard, EveryNumberIsTheMeasureReportsOne) {
  const Goals& g = TheGoals();
  const std::string baseline = "&baselineStart=" + g.b_start + "&baselineEnd=" + g.b_end;
  Response r = Get("/$fls-dashboard?periodStart=" + g.p_start + "&periodEnd=" + g.p_end + "&subject=Organization/ctf-region" + baseline);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Header("content-type"), "application/json; charset=utf-8");
  auto d = r.Json();
  EXPECT_STREQ(d["framework"].GetString(), "fls-db");
  EXPECT_STREQ(d["subjectName"].GetString(), "FLS ctf-region");
  std::vector<std::string> ids;
  for (const auto& m : d["measures"].GetArray()) ids.push_back(m["id"].GetString());
  ASSERT_GE(ids.size(), 18u);
  EXPECT_EQ(ids[0], "fls-db-kpi-1");
  auto same = [&](const rapidjson::Value& values, const std::string& from, const std::string& to, const std::string& subject,
                  const std::string& where) {
    for (const auto& id : ids) {
      const bool ctf = id.rfind("ctf-", 0) == 0;
      Report e = Evaluate(id, from, to, subject, ctf ? baseline : "");
      ASSERT_EQ(e.status, 200) << id << ": " << e.body;
      const auto got = ScoreOf(values[id.c_str()]);
      ASSERT_EQ(got.has_value(), e.score.has_value()) << where << " " << id;
      if (got) {
        EXPECT_NEAR(*got, *e.score, id.find("median") != std::string::npos ? 0.05 : 1e-4) << where << " " << id;
      }
      if (values[id.c_str()].HasMember("numerator")) {
        EXPECT_EQ(values[id.c_str()]["numerator"].GetInt(), e.count["numerator"]) << where << " " << id;
      }
    }
  };
  same(d["overall"]["values"], g.p_start, g.p_end, "Organization/ctf-region", "overall");
  // Sites side by side.
  ASSERT_EQ(d["sites"].Size(), 2u);
  EXPECT_STREQ(d["sites"][0]["id"].GetString(), "ctf-a");
  EXPECT_STREQ(d["sites"][0]["name"].GetString(), "FLS ctf-a");
  EXPECT_EQ(d["sites"][0]["expectedCaseloadPerYear"].GetInt(), 200);
  same(d["sites"][0]["values"], g.p_start, g.p_end, "Organization/ctf-a", "site A");
  same(d["sites"][1]["values"], g.p_start, g.p_end, "Organization/ctf-b", "site B");
  // The quarters: the calendar quarters the period meets, cut to it.
  const auto& quarters = d["quarters"];
  ASSERT_GE(quarters.Size(), 4u);
  EXPECT_STREQ(quarters[0]["start"].GetString(), g.p_start.c_str());
  EXPECT_STREQ(quarters[quarters.Size() - 1]["end"].GetString(), g.p_end.c_str());
  for (rapidjson::SizeType i = 0; i + 1 < quarters.Size(); ++i) {
    EXPECT_EQ(PlusDays(quarters[i]["end"].GetString(), 1), quarters[i + 1]["start"].GetString());
    const std::string next = quarters[i + 1]["start"].GetString();
    EXPECT_EQ(next.substr(8), "01");
    EXPECT_TRUE(next.substr(5, 2) == "01" || next.substr(5, 2) == "04" || next.substr(5, 2) == "07" || next.substr(5, 2) == "10") << next;
  }
  for (rapidjson::SizeType i = 0; i < quarters.Size(); ++i) {
    const std::string from = quarters[i]["start"].GetString(), to = quarters[i]["end"].GetString();
    if (i == 1) same(quarters[i]["values"], from, to, "Organization/ctf-region", "quarter " + from);
  }
  // The goals.
  const auto& goals = d["goals"];
  EXPECT_EQ(goals["activeSites"]["period"].GetInt(), 2);
  EXPECT_EQ(goals["activeSites"]["baseline"].GetInt(), 1);
  EXPECT_NEAR(goals["activeSites"]["ratio"].GetDouble(), 2.0, 1e-9);
  EXPECT_NEAR(goals["activeSites"]["target"].GetDouble(), 2.0, 1e-9);
  EXPECT_EQ(goals["hipVertebral"]["period"].GetInt(), 3);
  EXPECT_EQ(goals["hipVertebral"]["baseline"].GetInt(), 2);
  EXPECT_NEAR(goals["hipVertebral"]["change"].GetDouble(), 0.5, 1e-9);
  EXPECT_NEAR(goals["hipVertebral"]["target"].GetDouble(), -0.25, 1e-9);
  // Levels: site A's case was assessed on day 20 and started treatment (standards 2, 3, 9 gold).
  const auto& a_levels = d["sites"][0]["bpf"]["levels"];
  EXPECT_STREQ(a_levels["3"].GetString(), "gold") << "median 20 days to assessment";
  EXPECT_STREQ(a_levels["9"].GetString(), "gold");
  EXPECT_TRUE(d["sites"][1]["bpf"]["levels"]["9"].IsNull()) << "site B decided no treatment: the data cannot tell";
  EXPECT_TRUE(d["bpfStandards"]["standards"].Size() >= 6);
  // The projection reads the same figures.
  const auto& p = d["projection"];
  EXPECT_NEAR(p["measured"]["treatment"].GetDouble(), *ScoreOf(d["overall"]["values"]["fls-db-kpi-10"]), 1e-4);
  EXPECT_NEAR(p["measured"]["capture"].GetDouble(), *ScoreOf(d["overall"]["values"]["fls-db-kpi-2"]), 1e-4);
  EXPECT_STREQ(p["method"]["usualCare"]["source"].GetString(),
               "Wu CH et al. 2018, meta-analysis of 74 controlled studies, usual care (spec kpis.md)");
}

TEST(Dashboard, ProjectionAndWhatIf) {
  const Goals& g = TheGoals();
  const std::string q = "/$fls-projection?periodStart=" + g.p_start + "&periodEnd=" + g.p_end + "&subject=Organization/ctf-region";
  Response measured = Get(q);
  ASSERT_EQ(measured.status, 200) << measured.body;
  auto m = measured.Json();
  // Cases reached: 5 in 300 days less g7 (not a fragility fracture) = 4 in 300 days.
  EXPECT_NEAR(m["projection"]["measured"]["patientsPerYear"].GetDouble(), 4 * 365.2425 / 300, 0.05);
  EXPECT_NEAR(m["projection"]["measured"]["capture"].GetDouble(), 4.0 / std::llround(200 * 300 / 365.2425), 1e-4);
  // No case of the period was followed 12 months with a contact: adherence is unknown.
  ASSERT_TRUE(m["projection"]["missing"].IsArray());
  Response what_if = Get(q + "&capture=0.9&treatment=0.8&adherence=0.6");
  ASSERT_EQ(what_if.status, 200) << what_if.body;
  auto w = what_if.Json();
  const auto& p = w["projection"];
  EXPECT_EQ(p["missing"].Size(), 0u);
  const double patients = m["projection"]["measured"]["patientsPerYear"].GetDouble() * 0.9 /
                          m["projection"]["measured"]["capture"].GetDouble();
  // (the measured figures above are rounded: 1% apart at most)
  EXPECT_NEAR(p["patientsPerYear"].GetDouble(), patients, patients * 0.01);
  ASSERT_EQ(p["points"].Size(), 3u);
  const double h = -std::log(1 - 0.063);
  for (const auto& pt : p["points"].GetArray()) {
    const double years = pt["years"].GetInt();
    const double expected = patients * (years - (1 - std::exp(-h * years)) / h);
    EXPECT_NEAR(pt["expectedRefractures"].GetDouble(), expected, expected * 0.01) << years;
    EXPECT_NEAR(pt["avoided"].GetDouble(), expected * 0.8 * 0.6 * 0.4, expected * 0.01) << years;
    EXPECT_NEAR(pt["avoided"].GetDouble() / pt["expectedRefractures"].GetDouble(), 0.8 * 0.6 * 0.4, 0.002) << years;
  }
  for (const std::string bad : {"&capture=1.5", "&treatment=-0.1", "&adherence=abc", "&adherence=.5", "&capture=0.5&capture=0.6",
                                 "&whatever=1"}) {
    Response r = Get(q + bad);
    EXPECT_EQ(r.status, 400) << bad << ": " << r.body;
    EXPECT_NE(r.body.find("OperationOutcome"), std::string::npos) << bad;
  }
  for (const std::string bad : {"&framework=nope", "&framework=fls", "&periodEnd=2040-01-01"}) {
    Response r = Get("/$fls-dashboard?periodStart=" + g.p_start + (bad.find("periodEnd") == std::string::npos ? "&periodEnd=" + g.p_end : "") + bad);
    EXPECT_EQ(r.status, 400) << bad << ": " << r.body;
  }
  EXPECT_EQ(Get("/$fls-dashboard?periodStart=" + g.p_start + "&periodEnd=" + g.p_end + "&framework=iof").status, 200);
}

// A local time on `day` in the site's zone (TZ is Europe/Paris in the suites), with its offset
// as that day has it (winter +01:00, summer +02:00): "2026-03-30T23:30:00+02:00".
std::string LocalAt(const std::string& day, int hour, int minute) {
  tm t{};
  t.tm_year = std::stoi(day.substr(0, 4)) - 1900;
  t.tm_mon = std::stoi(day.substr(5, 2)) - 1;
  t.tm_mday = std::stoi(day.substr(8, 2));
  t.tm_hour = hour;
  t.tm_min = minute;
  t.tm_isdst = -1;
  time_t when = mktime(&t);
  tm back{};
  localtime_r(&when, &back);
  char buf[40];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S%z", &back);
  std::string out = buf;
  return out.substr(0, out.size() - 2) + ":" + out.substr(out.size() - 2);
}

void EnrolAt(const Pushed& c, const std::string& instant) {
  std::string body = EnrolBody(Practitioner(Port()));
  body.insert(body.rfind(']'), R"(,{"name":"occurred","valueDateTime":")" + instant + "\"}");
  Ok(Event(Port(), c.episode, body), "enrol");
}
void Contact(const Pushed& c, const std::string& day, bool reached, std::optional<bool> adherent) {
  std::string body = R"({"resourceType":"Parameters","parameter":[{"name":"reached","valueBoolean":)" + std::string(reached ? "true" : "false") + "}";
  if (adherent) body += R"(,{"name":"adherent","valueBoolean":)" + std::string(*adherent ? "true" : "false") + "}";
  Ok(Http(Port(), "POST", "/EpisodeOfCare/" + c.episode + "/$contact", body + Occurred(day) + "]}"), "contact");
}
void Dxa(const Pushed& c, const std::string& day) {
  Response r = Post("/Observation", R"({"resourceType":"Observation","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"imaging"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"38267-1"}]},"subject":{"reference":"Patient/)" +
                                       c.patient + R"("},"effectiveDateTime":")" + day + R"(","valueQuantity":{"value":-2.6,"unit":"{T-score}","system":"http://unitsofmeasure.org","code":"{T-score}"}})");
  EXPECT_EQ(r.status, 201) << r.body;
}

// A hand-computed proportion: its populations and score over a period and subject.
struct HandProportion {
  const char* id;
  int numerator, denominator, exclusion;
  double score;
};
void ExpectProportions(const std::vector<HandProportion>& wants, const std::string& from, const std::string& to,
                       const std::string& subject, int initial) {
  for (const auto& w : wants) {
    Report r = Evaluate(w.id, from, to, subject);
    ASSERT_EQ(r.status, 200) << w.id << ": " << r.body;
    EXPECT_EQ(r.count["initial-population"], initial) << w.id;
    EXPECT_EQ(r.count["numerator"], w.numerator) << w.id;
    EXPECT_EQ(r.count["denominator"], w.denominator) << w.id;
    EXPECT_EQ(r.count["denominator-exclusion"], w.exclusion) << w.id;
    ASSERT_TRUE(r.score) << w.id;
    EXPECT_NEAR(*r.score, w.score, 1e-4) << w.id;
  }
}
// A hand-computed median: its number of observations and its days.
struct HandMedian {
  const char* id;
  int observations;
  double days;
};
void ExpectMedians(const std::vector<HandMedian>& wants, const std::string& from, const std::string& to,
                   const std::string& subject) {
  for (const auto& m : wants) {
    Report r = Evaluate(m.id, from, to, subject);
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.count["measure-observation"], m.observations) << m.id;
    ASSERT_TRUE(r.score) << m.id;
    EXPECT_DOUBLE_EQ(*r.score, m.days) << m.id;
  }
}

// The hand-computed fixture: a region of two sites (A expects 100 fractures a year, B 50), a
// period of 300 days, P = [d0, d0 + 299] with d0 = 500 days ago (so that the adherence and
// refracture windows have passed). Offsets are days after each case's own fracture.
//
//   a1 A hip       d0       enrol +20, falls +30, DXA result +60, the rest waived +65,
//                           decide-treatment +70, treatment-started +80, contact reached +100,
//                           contact reached adherent +300
//   a2 A vertebra  d0+10    enrol +90 at 23:30 local (day 90: in FLS-DB's 90 days, out of IOF's 84)
//                           falls +95 (DXA ordered, never resulted)
//   a3 A wrist     d0+20    enrol +91 at 00:30 local (day 91: out; in UTC it is still day 90 in
//                           winter, 22:30 or 23:30: a server counting UTC days would count it),
//                           exercise-started +100
//   a4 A hip       d0+30    excluded, not a fragility fracture, +5 (out of every denominator)
//   a5 A hip       d0+40    excluded, declined, +10 (assessed)
//   a6 A hip       d0-1     enrol +10 (the day before the period: not in the cohort)
//   a7 A wrist     d0+299   nothing (the last day of the period: in the cohort)
//   b1 B hip       d0+50    enrol +50, all waived +55, decide-treatment +60, contact reached +105,
//                           treatment-started +112 (the window's last day), contact reached
//                           not adherent +350
//   b2 B vertebra  d0+60    enrol +30, falls +40, exercise-started +113 (a day late)
//   b3 B hip       d0+300   (the day after the period: not in the cohort)
//
// The cohort: a1 a2 a3 a4 a5 a7 b1 b2 (8), a4 the one exclusion (7 counted).
//   FLS-DB / IOF
//   1  completeness  a1 a2 a3 a5 b1 b2 (a7 not assessed)          6/7 = 0.8571 (IOF 11 the same)
//   2  identification 7 / round(150 x 300 / 365.2425) = 7/123 = 0.0569; IOF 1 non-spinal 5/123 = 0.0407
//   3  spine          a2 b2                                        2/7 = 0.2857 (IOF 2)
//   4  assessment  90 d: a1 a2 a5 b1 b2 = 5/7 = 0.7143; IOF 3, 84 d: a1 a5 b1 b2 = 4/7 = 0.5714
//   5  DXA  ordered: a1 a2 a3 b2 (b1 waived); in time: a1 (day 60)  1/4 = 0.25 (IOF 4 the same)
//   6  falls          a1 a2 b2                                     3/7 = 0.4286 (IOF 5)
//   7  recommended    decided a1 b1 of enrolled a1 a2 a3 b1 b2     2/5 = 0.4 (IOF 6)
//   8  strength, non-hip a2 a3 a7 b2: a3 (day 100; b2's 113 late)  1/4 = 0.25 (IOF 7)
//   9  monitoring     decided a1 b1: contacts days 100, 105        2/2 = 1 (IOF 8)
//   10 started        a1 day 80, b1 day 112                        2/2 = 1 (IOF 9)
//   11 adherence      a1 (day 300 adherent), b1 (day 350 not)      1/2 = 0.5 (IOF 10)
//   medians: assessment 10 20 30 50 90 91 -> 40; DXA 60; treatment 80 112 -> 96
TEST(Fixture, EveryIndicatorAsComputedByHand) {
  Org("fx-region", "", 0);
  Org("fx-a", "fx-region", 100);
  Org("fx-b", "fx-region", 50);
  const std::string d0 = T(-500), end = PlusDays(d0, 299);
  auto at = [](const Pushed& c, int days) { return PlusDays(c.day, days); };
  Pushed a1 = Fracture("fx-a", d0);
  EnrolOn(a1, at(a1, 20));
  Simple(a1, "falls-assessment", at(a1, 30), R"(,{"name":"at-risk","valueBoolean":true})");
  Dxa(a1, at(a1, 60));
  WaiveAll(a1, at(a1, 65));
  Ok(Event(Port(), a1.episode, DrugEvent("decide-treatment", "M05BA04", At(at(a1, 70)))), "decide");
  Ok(Event(Port(), a1.episode, DrugEvent("treatment-started", "M05BA04", At(at(a1, 80)))), "start");
  Contact(a1, at(a1, 100), true, std::nullopt);
  Contact(a1, at(a1, 300), true, true);
  Pushed a2 = Fracture("fx-a", PlusDays(d0, 10), "S22.0");
  EnrolAt(a2, LocalAt(at(a2, 90), 23, 30));
  Simple(a2, "falls-assessment", at(a2, 95), R"(,{"name":"at-risk","valueBoolean":false})");
  Pushed a3 = Fracture("fx-a", PlusDays(d0, 20), "S52.5");
  EnrolAt(a3, LocalAt(at(a3, 91), 0, 30));
  Simple(a3, "exercise-started", at(a3, 100));
  Pushed a4 = Fracture("fx-a", PlusDays(d0, 30));
  Simple(a4, "exclude", at(a4, 5), R"(,{"name":"reason","valueCode":"not-fragility"})");
  Pushed a5 = Fracture("fx-a", PlusDays(d0, 40));
  Simple(a5, "exclude", at(a5, 10), R"(,{"name":"reason","valueCode":"declined"})");
  Pushed a6 = Fracture("fx-a", PlusDays(d0, -1));
  EnrolOn(a6, at(a6, 10));
  Fracture("fx-a", end, "S52.5");
  Pushed b1 = Fracture("fx-b", PlusDays(d0, 50));
  EnrolOn(b1, at(b1, 50));
  WaiveAll(b1, at(b1, 55));
  Ok(Event(Port(), b1.episode, DrugEvent("decide-treatment", "M05BA04", At(at(b1, 60)))), "decide");
  Contact(b1, at(b1, 105), true, std::nullopt);
  Ok(Event(Port(), b1.episode, DrugEvent("treatment-started", "M05BA04", At(at(b1, 112)))), "start");
  Contact(b1, at(b1, 350), true, false);
  Pushed b2 = Fracture("fx-b", PlusDays(d0, 60), "S22.0");
  EnrolOn(b2, at(b2, 30));
  Simple(b2, "falls-assessment", at(b2, 40), R"(,{"name":"at-risk","valueBoolean":true})");
  Simple(b2, "exercise-started", at(b2, 113));
  Fracture("fx-b", PlusDays(end, 1));

  const int caseload = static_cast<int>(std::llround(150 * 300 / 365.2425));
  ASSERT_EQ(caseload, 123);
  ExpectProportions({
      {"fls-db-kpi-1", 6, 8, 1, 6.0 / 7},   {"iof-kpi-11", 6, 8, 1, 6.0 / 7},
      {"fls-db-kpi-2", 7, 123, 0, 7.0 / 123}, {"iof-kpi-1", 5, 123, 0, 5.0 / 123},
      {"fls-db-kpi-3", 2, 8, 1, 2.0 / 7},   {"iof-kpi-2", 2, 8, 1, 2.0 / 7},
      {"fls-db-kpi-4", 5, 8, 1, 5.0 / 7},   {"iof-kpi-3", 4, 8, 1, 4.0 / 7},
      {"fls-db-kpi-5", 1, 4, 0, 0.25},      {"iof-kpi-4", 1, 4, 0, 0.25},
      {"fls-db-kpi-6", 3, 8, 1, 3.0 / 7},   {"iof-kpi-5", 3, 8, 1, 3.0 / 7},
      {"fls-db-kpi-7", 2, 5, 0, 0.4},       {"iof-kpi-6", 2, 5, 0, 0.4},
      {"fls-db-kpi-8", 1, 4, 0, 0.25},      {"iof-kpi-7", 1, 4, 0, 0.25},
      {"fls-db-kpi-9", 2, 2, 0, 1.0},       {"iof-kpi-8", 2, 2, 0, 1.0},
      {"fls-db-kpi-10", 2, 2, 0, 1.0},      {"iof-kpi-9", 2, 2, 0, 1.0},
      {"fls-db-kpi-11", 1, 2, 0, 0.5},      {"iof-kpi-10", 1, 2, 0, 0.5},
  }, d0, end, "Organization/fx-region", 8);
  ExpectMedians({{"fls-median-days-to-assessment", 6, 40}, {"fls-median-days-to-dxa", 1, 60}, {"fls-median-days-to-treatment", 2, 96}},
                d0, end, "Organization/fx-region");
  // The region is its two sites: site A alone, for one indicator of each kind.
  Report a = Evaluate("fls-db-kpi-4", d0, end, "Organization/fx-a");
  EXPECT_EQ(a.count["initial-population"], 6) << "a1 a2 a3 a4 a5 a7";
  EXPECT_NEAR(*a.score, 3.0 / 5, 1e-4) << "a1 a2 a5 of 5 counted";
  Report b = Evaluate("fls-db-kpi-2", d0, end, "Organization/fx-b");
  EXPECT_EQ(b.count["denominator"], static_cast<int>(std::llround(50 * 300 / 365.2425)));
  // The period's edges: one day later at both ends, a1 leaves and the day after the end (b3) joins.
  Report shifted = Evaluate("fls-db-kpi-1", PlusDays(d0, 1), PlusDays(end, 1), "Organization/fx-region");
  EXPECT_EQ(shifted.count["initial-population"], 8) << "without a1, with b3";
  EXPECT_EQ(shifted.count["numerator"], 5) << "a1 was complete, b3 is not assessed";
}

// The refracture rates, the treatment gap and the delays, by hand: a site of its own (fx-c, in no
// region, no caseload), a period of 100 days P2 = [e0, e0 + 99], e0 = 900 days ago (so that 24
// months of follow-up have passed). Offsets are days after each case's own fracture; every case
// was identified today (pushed now), so its days to identification are its age in days.
//
//   c1 hip       e0       enrol +10, decide-treatment +20, treatment-started +30, refracture +200
//   c2 wrist     e0+10    enrol +15, refracture +500
//   c3 vertebra  e0+20    excluded, declined, +5 (counted: only not-fragility and pathological leave)
//   c4 hip       e0+30    excluded, not a fragility fracture, +3 (out of every denominator)
//   c5 hip       e0+40    enrol +40, decide-treatment +50, treatment-started +400 (after the 16 weeks
//                         and after the year)
//   c6 hip       e0+50    nothing
//
//   fls-refracture-12m   c1 (+200) of c1 c2 c3 c5 c6                1/5 = 0.2
//   fls-refracture-24m   c1 (+200), c2 (+500)                       2/5 = 0.4
//   fls-treatment-gap    untreated a year on: c2 c3 c5 c6            4/5 = 0.8
//   fls-db-kpi-10        decided c1 c5, started in 112 days: c1      1/2 = 0.5 (IOF 9 the same)
//   medians: identification 900 890 880 860 850 -> 880; assessment 10 15 5 40 -> 12.5;
//            treatment 30 400 -> 215
TEST(Fixture, RefracturesTreatmentGapAndDelaysAsComputedByHand) {
  Org("fx-c", "", 0);
  const std::string e0 = T(-900), end = PlusDays(e0, 99);
  auto at = [](const Pushed& c, int days) { return PlusDays(c.day, days); };
  Pushed c1 = Fracture("fx-c", e0);
  EnrolOn(c1, at(c1, 10));
  WaiveAll(c1, at(c1, 12));
  Ok(Event(Port(), c1.episode, DrugEvent("decide-treatment", "M05BA04", At(at(c1, 20)))), "decide");
  Ok(Event(Port(), c1.episode, DrugEvent("treatment-started", "M05BA04", At(at(c1, 30)))), "start");
  Fracture("fx-c", at(c1, 200), "S72.0", c1.patient);
  Pushed c2 = Fracture("fx-c", PlusDays(e0, 10), "S52.5");
  EnrolOn(c2, at(c2, 15));
  Fracture("fx-c", at(c2, 500), "S52.5", c2.patient);
  Pushed c3 = Fracture("fx-c", PlusDays(e0, 20), "S22.0");
  Simple(c3, "exclude", at(c3, 5), R"(,{"name":"reason","valueCode":"declined"})");
  Pushed c4 = Fracture("fx-c", PlusDays(e0, 30));
  Simple(c4, "exclude", at(c4, 3), R"(,{"name":"reason","valueCode":"not-fragility"})");
  Pushed c5 = Fracture("fx-c", PlusDays(e0, 40));
  EnrolOn(c5, at(c5, 40));
  WaiveAll(c5, at(c5, 45));
  Ok(Event(Port(), c5.episode, DrugEvent("decide-treatment", "M05BA04", At(at(c5, 50)))), "decide");
  Ok(Event(Port(), c5.episode, DrugEvent("treatment-started", "M05BA04", At(at(c5, 400)))), "start");
  Fracture("fx-c", PlusDays(e0, 50));

  ExpectProportions({{"fls-refracture-12m", 1, 6, 1, 0.2}, {"fls-refracture-24m", 2, 6, 1, 0.4}, {"fls-treatment-gap", 4, 6, 1, 0.8},
                     {"fls-db-kpi-10", 1, 2, 0, 0.5}, {"iof-kpi-9", 1, 2, 0, 0.5}},
                    e0, end, "Organization/fx-c", 6);
  ExpectMedians({{"fls-median-days-to-identification", 5, 880}, {"fls-median-days-to-assessment", 4, 12.5},
                 {"fls-median-days-to-treatment", 2, 215}},
                e0, end, "Organization/fx-c");
  // The same figures with the cases listed (a subject-list keeps them, a summary counts them as
  // they are read): the lists hold exactly the counted cases.
  Report list = Evaluate("fls-refracture-24m", e0, end, "Organization/fx-c", "&reportType=subject-list");
  ASSERT_EQ(list.status, 200) << list.body;
  EXPECT_EQ(list.count["numerator"], 2);
  EXPECT_EQ(Sorted(list.lists["numerator"]), Sorted({c1.episode, c2.episode}));
}

}  // namespace
}  // namespace fls::test
