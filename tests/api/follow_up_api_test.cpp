// The follow-up programme through the real server: the calls of each drug at their dates, a
// change of drug re-planning them, $contact with the report to the physician only when the
// patient's report Consent permits (through every path), the unreachable rule, injection dates
// re-planning denosumab's reminder.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>
#include <string>

#include "tests/api/fls_cases.h"
#include "tests/api/test_client.h"

namespace fls::test {
namespace {

const auto* const kEnv = ::testing::AddGlobalTestEnvironment(new SuiteServer());
int Port() { return SuiteServer::Server().port(); }
Response Get(const std::string& t) { return Http(Port(), "GET", t); }
Response Post(const std::string& t, const std::string& b) { return Http(Port(), "POST", t, b); }

// Calendar months computed apart from the server (std::chrono), the day clamped.
std::string PlusMonths(const std::string& text, int months) {
  using namespace std::chrono;
  year_month ym = year{std::stoi(text.substr(0, 4))} / month{static_cast<unsigned>(std::stoi(text.substr(5, 2)))} +
                  std::chrono::months{months};
  year_month_day ymd = ym / std::chrono::day{static_cast<unsigned>(std::stoi(text.substr(8, 2)))};
  if (!ymd.ok()) ymd = ym / last;
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02u", static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                static_cast<unsigned>(ymd.day()));
  return buf;
}
struct TaskRow {
  std::string id, code, status, due, input;
};
// The case's Tasks of the follow-up codes, by due date.
std::vector<TaskRow> FollowUpTasks(const std::string& patient, const std::string& codes) {
  auto d = Get("/Task?patient=Patient/" + patient + "&code=" + codes + "&_count=200").Json();
  std::vector<TaskRow> out;
  for (auto* t : Entries(d)) {
    TaskRow r;
    r.id = (*t)["id"].GetString();
    r.code = (*t)["code"]["coding"][0]["code"].GetString();
    r.status = (*t)["status"].GetString();
    r.due = (*t)["restriction"]["period"]["end"].GetString();
    if (t->HasMember("input")) r.input = (*t)["input"][0]["valueString"].GetString();
    out.push_back(r);
  }
  std::sort(out.begin(), out.end(), [](const TaskRow& a, const TaskRow& b) { return a.due < b.due || (a.due == b.due && a.code < b.code); });
  return out;
}

// A case in follow-up on `atc`, started on `started` (the fracture `onset`).
std::string InFollowUp(const std::string& atc, const std::string& onset = Today(), const std::string& started = "",
                       bool consent_report = true) {
  std::string ep = HipFractureCase(Port(), "", "female", "1941-03-04", onset);
  if (!consent_report) {
    std::string body = EnrolBody(Practitioner(Port()));
    auto at = body.find("\"consent-report\",\"valueBoolean\":true");
    body.replace(at, std::string("\"consent-report\",\"valueBoolean\":true").size(), "\"consent-report\",\"valueBoolean\":false");
    EXPECT_EQ(Event(Port(), ep, body).status, 200);
    auto d = Get("/ServiceRequest?patient=Patient/" + PatientOf(Port(), ep) + "&status=active&_count=100").Json();
    for (auto* s : Entries(d)) {
      Event(Port(), ep, R"({"resourceType":"Parameters","parameter":[{"name":"event","valueCode":"waive"},{"name":"item","valueReference":{"reference":"ServiceRequest/)" +
                             std::string((*s)["id"].GetString()) + R"("}},{"name":"reason","valueString":"test"}]})");
    }
  } else {
    EXPECT_TRUE(EnrolAndWaiveAll(Port(), ep));
  }
  EXPECT_EQ(Event(Port(), ep, DrugEvent("decide-treatment", atc)).status, 200);
  Response r = Event(Port(), ep, DrugEvent("treatment-started", atc, started));
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Stage(Port(), ep), "follow-up");
  return ep;
}

std::string StartDay(const std::string& ep) { return Sql("SELECT treatment_start_day FROM fls_case WHERE episode_id = '" + ep + "'"); }

TEST(FollowUp, EachDrugsCallsAtTheirDatesAndAChangeOfDrugRePlans) {
  std::string ep = InFollowUp("M05BA04");
  std::string patient = PatientOf(Port(), ep);
  std::string start = StartDay(ep);
  auto calls = FollowUpTasks(patient, "follow-up-call");
  std::vector<std::string> due, want;
  for (const auto& t : calls) due.push_back(t.due);
  for (int m : {1, 3, 6, 12, 24, 36, 48, 60}) want.push_back(PlusMonths(start, m));
  EXPECT_EQ(due, want) << "oral bisphosphonate: 1, 3, 6, 12 months, then yearly";
  // Denosumab instead: the bisphosphonate's open calls cancelled; the 12-month call and the
  // reminder 2 weeks before the injection due 6 months after the new start.
  Response change = Event(Port(), ep, DrugEvent("treatment-started", "M05BX04"));
  ASSERT_EQ(change.status, 200) << change.body;
  int cancelled = 0, open = 0;
  for (const auto& t : FollowUpTasks(patient, "follow-up-call")) (t.status == "cancelled" ? cancelled : open)++;
  EXPECT_EQ(cancelled, 8);
  EXPECT_EQ(open, 1);
  auto reminders = FollowUpTasks(patient, "injection-reminder");
  ASSERT_EQ(reminders.size(), 1u);
  std::string new_start = StartDay(ep);
  EXPECT_EQ(reminders[0].due, PlusDays(PlusMonths(new_start, 6), -14));
  EXPECT_EQ(reminders[0].input, PlusMonths(new_start, 6));
  // Zoledronic acid: 3 and 12 months, and the infusion reminder at (start + 12 months) - 1 month.
  std::string z = InFollowUp("M05BA08");
  std::string zs = StartDay(z);
  std::vector<std::string> zdue;
  for (const auto& t : FollowUpTasks(PatientOf(Port(), z), "follow-up-call,infusion-reminder")) zdue.push_back(t.code + " " + t.due);
  EXPECT_EQ(zdue, (std::vector<std::string>{"follow-up-call " + PlusMonths(zs, 3),
                                            "infusion-reminder " + PlusMonths(PlusMonths(zs, 12), -1),
                                            "follow-up-call " + PlusMonths(zs, 12)}));
  // Withdrawal cancels every scheduled contact.
  ASSERT_EQ(Event(Port(), z, R"({"resourceType":"Parameters","parameter":[{"name":"event","valueCode":"withdraw"}]})").status, 200);
  for (const auto& t : FollowUpTasks(PatientOf(Port(), z), "follow-up-call,infusion-reminder")) EXPECT_EQ(t.status, "cancelled");
}

std::string ContactBody(bool reached, const std::string& extra = "") {
  return R"({"resourceType":"Parameters","parameter":[{"name":"reached","valueBoolean":)" + std::string(reached ? "true" : "false") + "}" +
         extra + "]}";
}

int Reports(const std::string& patient) {
  auto d = Get("/Communication?subject=Patient/" + patient + "&category=http://fls-server.org/fhir/CodeSystem/fls-communication|report-to-physician").Json();
  return static_cast<int>(Entries(d).size());
}

TEST(FollowUp, AReportGoesToThePhysicianOnlyWhenTheReportConsentPermits) {
  std::string yes = InFollowUp("M05BA04");
  std::string yes_patient = PatientOf(Port(), yes);
  auto calls = FollowUpTasks(yes_patient, "follow-up-call");
  Response c = Post("/EpisodeOfCare/" + yes + "/$contact",
                    ContactBody(true, R"(,{"name":"task","valueReference":{"reference":"Task/)" + calls[0].id +
                                          R"("}},{"name":"adherent","valueBoolean":true},{"name":"intake-date","valueDate":")" + Today() +
                                          R"("},{"name":"side-effect","valueString":"brûlures d'estomac"})"));
  ASSERT_EQ(c.status, 200) << c.body;
  auto answer = c.Json();
  ASSERT_EQ(answer["parameter"].Size(), 2u) << c.body;
  EXPECT_STREQ(answer["parameter"][1]["name"].GetString(), "report");
  std::string report = answer["parameter"][1]["valueReference"]["reference"].GetString();
  auto rd = Get("/" + report).Json();
  std::string fr = rd["payload"][0]["contentString"].GetString();
  std::string en = rd["payload"][1]["contentString"].GetString();
  EXPECT_NE(fr.find("Dates de prise : " + Today()), std::string::npos) << fr;
  EXPECT_NE(en.find("Intake dates: " + Today()), std::string::npos) << en;
  EXPECT_NE(fr.find("brûlures d'estomac"), std::string::npos);
  EXPECT_EQ(std::string(rd["recipient"][0]["reference"].GetString()).rfind("Practitioner/", 0), 0u);
  EXPECT_EQ(FollowUpTasks(yes_patient, "follow-up-call")[0].status, "completed") << "the call Task is done";
  // An unreached call: no report.
  ASSERT_EQ(Post("/EpisodeOfCare/" + yes + "/$contact", ContactBody(false)).status, 200);
  EXPECT_EQ(Reports(yes_patient), 1);

  // The patient refused reports: nothing reaches the physician, whatever the path.
  std::string no = InFollowUp("M05BA04", Today(), "", false);
  std::string no_patient = PatientOf(Port(), no);
  Response nc = Post("/EpisodeOfCare/" + no + "/$contact", ContactBody(true));
  ASSERT_EQ(nc.status, 200) << nc.body;
  EXPECT_EQ(nc.Json()["parameter"].Size(), 1u) << "no report part";
  std::string direct = R"({"resourceType":"Communication","status":"completed","category":[{"coding":[{"system":"http://fls-server.org/fhir/CodeSystem/fls-communication","code":"report-to-physician"}]}],"subject":{"reference":"Patient/)" +
                       no_patient + R"("},"about":[{"reference":"EpisodeOfCare/)" + no + R"("}],"payload":[{"contentString":"x"}]})";
  Response post = Post("/Communication", direct);
  EXPECT_EQ(post.status, 422) << post.body;
  Response bundle = Post("/", R"({"resourceType":"Bundle","type":"transaction","entry":[{"resource":)" + direct +
                                  R"(,"request":{"method":"POST","url":"Communication"}}]})");
  EXPECT_EQ(bundle.status, 422) << bundle.body;
  Response batch = Post("/", R"({"resourceType":"Bundle","type":"batch","entry":[{"resource":)" + direct +
                                 R"(,"request":{"method":"POST","url":"Communication"}}]})");
  ASSERT_EQ(batch.status, 200);
  EXPECT_EQ(std::string(batch.Json()["entry"][0]["response"]["status"].GetString()).substr(0, 3), "422");
  // A report with no case to check the consent of is refused too.
  std::string orphan = direct;
  orphan.replace(orphan.find(R"(,"about":[{"reference":"EpisodeOfCare/)" + no + R"("}])"),
                 std::string(R"(,"about":[{"reference":"EpisodeOfCare/)" + no + R"("}])").size(), "");
  EXPECT_EQ(Post("/Communication", orphan).status, 422);
  // A PUT turning an ordinary Communication into a report: refused.
  Response plain = Post("/Communication", R"({"resourceType":"Communication","status":"completed","subject":{"reference":"Patient/)" + no_patient +
                                              R"("},"about":[{"reference":"EpisodeOfCare/)" + no + R"("}]})");
  ASSERT_EQ(plain.status, 201);
  std::string plain_id = Id(plain);
  std::string as_report = direct;
  as_report.insert(1, R"("id":")" + plain_id + R"(",)");
  EXPECT_EQ(Http(Port(), "PUT", "/Communication/" + plain_id, as_report).status, 422);
  EXPECT_EQ(Reports(no_patient), 0);
  // A direct report for the consenting patient is accepted.
  std::string allowed = direct;
  allowed.replace(allowed.find(no_patient), no_patient.size(), yes_patient);
  allowed.replace(allowed.find("EpisodeOfCare/" + no), ("EpisodeOfCare/" + no).size(), "EpisodeOfCare/" + yes);
  EXPECT_EQ(Post("/Communication", allowed).status, 201);
  // The patient changes their mind: a PUT of the report Consent to deny takes effect at once.
  std::string consent_id = Sql("SELECT consent_report_id FROM fls_case WHERE episode_id = '" + yes + "'");
  auto consent = Get("/Consent/" + consent_id).Json();
  std::string text = Get("/Consent/" + consent_id).body;
  auto at = text.find("\"permit\"");
  ASSERT_NE(at, std::string::npos);
  text.replace(at, 8, "\"deny\"");
  ASSERT_EQ(Http(Port(), "PUT", "/Consent/" + consent_id, text).status, 200);
  Response after = Post("/EpisodeOfCare/" + yes + "/$contact", ContactBody(true));
  ASSERT_EQ(after.status, 200);
  EXPECT_EQ(after.Json()["parameter"].Size(), 1u) << "no report after the patient said no";
  EXPECT_EQ(Post("/Communication", allowed).status, 422);
  // Withdrawn: nothing more, contacts refused.
  ASSERT_EQ(Event(Port(), yes, R"({"resourceType":"Parameters","parameter":[{"name":"event","valueCode":"withdraw"}]})").status, 200);
  EXPECT_EQ(Post("/EpisodeOfCare/" + yes + "/$contact", ContactBody(true)).status, 422);
}

// Two nurses record the same call: each sends If-Match with the version of the call's Task they
// saw; the second is refused (412) and nothing of it is written. Without a Task, If-Match is the
// case's version.
TEST(FollowUp, TwoNursesRecordingOneCallTheSecondIsRefused) {
  std::string ep = InFollowUp("M05BA04");
  std::string patient = PatientOf(Port(), ep);
  auto calls = FollowUpTasks(patient, "follow-up-call");
  ASSERT_FALSE(calls.empty());
  auto task = Get("/Task/" + calls[0].id).Json();
  const std::string seen = std::string("W/\"") + task["meta"]["versionId"].GetString() + "\"";
  const std::string body = ContactBody(true, R"(,{"name":"task","valueReference":{"reference":"Task/)" + calls[0].id +
                                                 R"("}},{"name":"adherent","valueBoolean":true})");
  auto contacts = [&] {
    auto d = Get("/Communication?subject=Patient/" + patient +
                 "&category=http://fls-server.org/fhir/CodeSystem/fls-communication|contact").Json();
    return Entries(d).size();
  };
  Response first = Http(Port(), "POST", "/EpisodeOfCare/" + ep + "/$contact", body, {{"If-Match", seen}});
  ASSERT_EQ(first.status, 200) << first.body;
  EXPECT_EQ(FollowUpTasks(patient, "follow-up-call")[0].status, "completed");
  const size_t after_first = contacts();
  Response second = Http(Port(), "POST", "/EpisodeOfCare/" + ep + "/$contact", body, {{"If-Match", seen}});
  EXPECT_EQ(second.status, 412) << second.body;
  EXPECT_NE(second.body.find("is stale: Task/" + calls[0].id), std::string::npos) << second.body;
  EXPECT_EQ(contacts(), after_first) << "nothing of the refused call is written";
  // Without a Task: the case's version.
  Response case_stale = Http(Port(), "POST", "/EpisodeOfCare/" + ep + "/$contact", ContactBody(false), {{"If-Match", "W/\"1\""}});
  EXPECT_EQ(case_stale.status, 412) << case_stale.body;
  auto episode = Get("/EpisodeOfCare/" + ep).Json();
  const std::string current = std::string("W/\"") + episode["meta"]["versionId"].GetString() + "\"";
  EXPECT_EQ(Http(Port(), "POST", "/EpisodeOfCare/" + ep + "/$contact", ContactBody(false), {{"If-Match", current}}).status, 200);
  EXPECT_EQ(Http(Port(), "POST", "/EpisodeOfCare/" + ep + "/$contact", ContactBody(false), {{"If-Match", "abc"}}).status, 400);
  EXPECT_EQ(contacts(), after_first + 1);
}

TEST(FollowUp, ThreeUnreachedDaysRaiseUnreachableOnceAndInjectionsRePlanDenosumab) {
  std::string onset = PlusDays(Today(), -20);
  std::string ep = InFollowUp("M05BX04", onset, PlusDays(Today(), -15));
  std::string patient = PatientOf(Port(), ep);
  auto unreached = [&](int days_ago, const std::string& time) {
    std::string body = ContactBody(false, R"(,{"name":"occurred","valueDateTime":")" + PlusDays(Today(), -days_ago) + "T" + time + R"(:00+01:00"})");
    Response r = Post("/EpisodeOfCare/" + ep + "/$contact", body);
    EXPECT_EQ(r.status, 200) << r.body;
  };
  unreached(5, "09");
  unreached(5, "15");  // same day: one attempt-day
  unreached(4, "10");
  EXPECT_TRUE(FollowUpTasks(patient, "unreachable").empty()) << "two days so far";
  unreached(3, "11");
  EXPECT_EQ(FollowUpTasks(patient, "unreachable").size(), 1u) << "three different days";
  unreached(2, "11");
  EXPECT_EQ(FollowUpTasks(patient, "unreachable").size(), 1u) << "raised once";
  // An injection recorded at the call: the reminder counts from it.
  std::string injection = PlusDays(Today(), -1);
  Response inj = Post("/EpisodeOfCare/" + ep + "/$contact",
                      ContactBody(true, R"(,{"name":"injection-date","valueDate":")" + injection + R"("})"));
  ASSERT_EQ(inj.status, 200) << inj.body;
  auto reminders = FollowUpTasks(patient, "injection-reminder");
  ASSERT_EQ(reminders.size(), 2u);
  std::map<std::string, TaskRow> by_status;
  for (const auto& r : reminders) by_status[r.status] = r;
  EXPECT_EQ(by_status["requested"].input, PlusMonths(injection, 6));
  EXPECT_EQ(by_status["requested"].due, PlusDays(PlusMonths(injection, 6), -14));
  EXPECT_EQ(by_status["completed"].input, PlusMonths(PlusDays(Today(), -15), 6)) << "the first reminder, done";
  // Bad contacts change nothing.
  for (const char* bad : {R"({"resourceType":"Parameters","parameter":[]})",
                          R"({"resourceType":"Parameters","parameter":[{"name":"reached","valueString":"yes"}]})",
                          R"({"resourceType":"Parameters","parameter":[{"name":"reached","valueBoolean":true},{"name":"mood","valueString":"x"}]})",
                          R"({"resourceType":"Parameters","parameter":[{"name":"reached","valueBoolean":true},{"name":"injection-date","valueDate":"2999-01-01"}]})",
                          R"({"resourceType":"Parameters","parameter":[{"name":"reached","valueBoolean":true},{"name":"task","valueReference":{"reference":"Task/nope"}}]})",
                          R"({"resourceType":"Patient"})"}) {
    Response r = Post("/EpisodeOfCare/" + ep + "/$contact", bad);
    EXPECT_EQ(r.status, 400) << bad << " -> " << r.body;
  }
  EXPECT_EQ(Sql("SELECT count(*) FROM fls_contact WHERE episode_id = '" + ep + "'"), "6");
  EXPECT_EQ(Post("/EpisodeOfCare/no-such-case/$contact", ContactBody(true)).status, 404);
}

// A nurse's day: the calls due that day and overdue, as CSV for a phone platform and as a
// printable page, with the patient's name and the phone given at enrolment; hostile names are
// neither run by a spreadsheet nor by a browser.
TEST(FollowUp, TheCallListOfADay) {
  std::string onset = PlusDays(Today(), -60);
  std::string ep = InFollowUp("M05BA04", onset, PlusDays(Today(), -40));
  std::string patient = PatientOf(Port(), ep);
  std::string p = Get("/Patient/" + patient).body;
  p.insert(p.rfind('}'), R"J(,"name":[{"family":"=HYPERLINK(\"http://x\")","given":["<b>Hélène</b>"]}])J");
  ASSERT_EQ(Http(Port(), "PUT", "/Patient/" + patient, p).status, 200);
  std::string site = Get("/EpisodeOfCare/" + ep).Json()["managingOrganization"]["reference"].GetString();
  std::string start = StartDay(ep);
  std::string due = PlusMonths(start, 1);  // the 1-month call, overdue
  Response csv = Http(Port(), "GET", "/$call-list?date=" + Today() + "&owner=" + site);
  ASSERT_EQ(csv.status, 200) << csv.body;
  EXPECT_EQ(csv.Header("content-type").rfind("text/csv", 0), 0u);
  std::string row;
  std::stringstream lines(csv.body);
  for (std::string line; std::getline(lines, line);) {
    if (line.find(patient) != std::string::npos) row = line;
  }
  ASSERT_FALSE(row.empty()) << csv.body;
  EXPECT_EQ(row.rfind(due + "," + std::to_string(-DaysBetween(Today(), due)) + ",routine,follow-up-call,", 0), 0u) << row;
  EXPECT_NE(row.find("+33 6 00 00 00 00"), std::string::npos) << "the phone given at enrolment";
  EXPECT_NE(row.find("\"'=HYPERLINK(\"\"http://x\"\"), <b>Hélène</b>\""), std::string::npos) << row;
  // The calls due later are not on today's list; the 3-month call is due in the future.
  EXPECT_EQ(csv.body.find(PlusMonths(start, 3)), std::string::npos);
  Response html = Http(Port(), "GET", "/$call-list?date=" + Today() + "&owner=" + site, "", {{"Accept", "text/html"}});
  ASSERT_EQ(html.status, 200);
  EXPECT_EQ(html.Header("content-type").rfind("text/html", 0), 0u);
  EXPECT_NE(html.body.find("&lt;b&gt;Hélène&lt;/b&gt;"), std::string::npos);
  EXPECT_EQ(html.body.find("<b>Hélène</b>"), std::string::npos);
  // The same day as one FHIR search, for clients that speak FHIR: due today or overdue, by due
  // date, with the patient and the case (the phone given at enrolment) in the same answer.
  Response day = Get("/Task?owner=" + site + "&status=requested&code=http://fls-server.org/fhir/CodeSystem/fls-task%7Cfollow-up-call"
                     "&due=le" + Today() + "&_sort=due&_include=Task:patient&_include=Task:focus&_count=500");
  ASSERT_EQ(day.status, 200) << day.body.substr(0, 400);
  auto dj = day.Json();
  std::vector<std::string> dues;
  bool has_patient = false, has_case = false;
  for (auto& e : dj["entry"].GetArray()) {
    auto& res = e["resource"];
    std::string type = res["resourceType"].GetString(), id = res["id"].GetString();
    if (type == "Task" && std::string(res["for"]["reference"].GetString()) == "Patient/" + patient) {
      dues.push_back(res["restriction"]["period"]["end"].GetString());
      EXPECT_STREQ(e["search"]["mode"].GetString(), "match");
    }
    if (type == "Patient" && id == patient) has_patient = std::string(e["search"]["mode"].GetString()) == "include";
    if (type == "EpisodeOfCare" && id == ep) has_case = res.HasMember("extension");
  }
  EXPECT_EQ(dues, std::vector<std::string>{due}) << "the 1-month call only; the 3-month call is not due yet";
  EXPECT_TRUE(has_patient);
  EXPECT_TRUE(has_case);
  std::string previous;
  for (auto& e : dj["entry"].GetArray()) {
    if (std::string(e["search"]["mode"].GetString()) != "match") continue;
    std::string d = e["resource"]["restriction"]["period"]["end"].GetString();
    EXPECT_LE(previous, d) << "sorted by due date";
    EXPECT_LE(d.substr(0, 10), Today());
    previous = d;
  }
  // Another site's list does not show this patient; bad parameters are 400.
  EXPECT_EQ(Http(Port(), "GET", "/$call-list?date=" + Today() + "&owner=Organization/elsewhere").body.find(patient), std::string::npos);
  EXPECT_EQ(Http(Port(), "GET", "/$call-list?date=tomorrow").status, 400);
  EXPECT_EQ(Http(Port(), "GET", "/$call-list?date=" + Today() + "&owner=Patient/x").status, 400);
  EXPECT_EQ(Http(Port(), "GET", "/$call-list?date=" + Today() + "&drop=table").status, 400);
}

// Thematic accompaniment: six monthly calls on one theme; after the sixth, the synthesis goes to
// the patient, and to the physicians only when the report Consent permits.
TEST(FollowUp, AccompanimentSixCallsThenTheSynthesis) {
  for (bool consent : {true, false}) {
    std::string ep = InFollowUp("M05BA04", Today(), "", consent);
    std::string patient = PatientOf(Port(), ep);
    std::string doctor = Practitioner(Port());
    Response bad = Post("/EpisodeOfCare/" + ep + "/$accompany", R"({"resourceType":"Parameters","parameter":[{"name":"theme","valueCode":"gardening"},{"name":"requester","valueReference":{"reference":"Practitioner/)" + doctor + R"("}}]})");
    EXPECT_EQ(bad.status, 400);
    Response a = Post("/EpisodeOfCare/" + ep + "/$accompany", R"({"resourceType":"Parameters","parameter":[{"name":"theme","valueCode":"tobacco"},{"name":"requester","valueReference":{"reference":"Practitioner/)" + doctor + R"("}}]})");
    ASSERT_EQ(a.status, 200) << a.body;
    auto calls = FollowUpTasks(patient, "accompaniment-call");
    ASSERT_EQ(calls.size(), 6u);
    std::string start = Today();
    for (int m = 1; m <= 6; ++m) EXPECT_EQ(calls[m - 1].due, PlusMonths(start, m)) << m;
    auto synthesis = [&] {
      auto d = Get("/Communication?subject=Patient/" + patient + "&category=http://fls-server.org/fhir/CodeSystem/fls-communication|accompaniment-synthesis").Json();
      return Entries(d).size();
    };
    for (size_t i = 0; i < calls.size(); ++i) {
      EXPECT_EQ(synthesis(), 0u) << "before the last call";
      Response c = Post("/EpisodeOfCare/" + ep + "/$contact", ContactBody(true, R"(,{"name":"task","valueReference":{"reference":"Task/)" + calls[i].id + R"("}})"));
      ASSERT_EQ(c.status, 200) << c.body;
    }
    auto d = Get("/Communication?subject=Patient/" + patient + "&category=http://fls-server.org/fhir/CodeSystem/fls-communication|accompaniment-synthesis").Json();
    auto found = Entries(d);
    ASSERT_EQ(found.size(), 1u);
    std::set<std::string> to;
    for (const auto& r : (*found[0])["recipient"].GetArray()) to.insert(r["reference"].GetString());
    EXPECT_TRUE(to.count("Patient/" + patient));
    EXPECT_EQ(to.count("Practitioner/" + doctor), consent ? 1u : 0u) << "the physician only with consent";
    if (!consent) {
      std::string direct = R"({"resourceType":"Communication","status":"completed","category":[{"coding":[{"system":"http://fls-server.org/fhir/CodeSystem/fls-communication","code":"accompaniment-synthesis"}]}],"subject":{"reference":"Patient/)" +
                           patient + R"("},"about":[{"reference":"EpisodeOfCare/)" + ep + R"("}],"recipient":[{"reference":"Practitioner/)" + doctor + R"("}]})";
      EXPECT_EQ(Post("/Communication", direct).status, 422);
    }
  }
}

// One series per theme at a time: two nurses starting the same accompaniment make one series; a
// stale If-Match is 412; another theme runs beside it; once its calls are done, the theme can start again.
TEST(FollowUp, OneAccompanimentPerThemeAtATime) {
  std::string ep = InFollowUp("M05BA04");
  std::string patient = PatientOf(Port(), ep);
  std::string doctor = Practitioner(Port());
  auto body = [&](const std::string& theme) {
    return R"({"resourceType":"Parameters","parameter":[{"name":"theme","valueCode":")" + theme +
           R"("},{"name":"requester","valueReference":{"reference":"Practitioner/)" + doctor + R"("}}]})";
  };
  auto version = [&] {
    return std::string("W/\"") + Get("/EpisodeOfCare/" + ep).Json()["meta"]["versionId"].GetString() + "\"";
  };
  const std::string seen = version();
  EXPECT_EQ(Http(Port(), "POST", "/EpisodeOfCare/" + ep + "/$accompany", body("tobacco"), {{"If-Match", "W/\"1\""}}).status, 412);
  EXPECT_EQ(FollowUpTasks(patient, "accompaniment-call").size(), 0u) << "nothing of the refused one is written";
  ASSERT_EQ(Http(Port(), "POST", "/EpisodeOfCare/" + ep + "/$accompany", body("tobacco"), {{"If-Match", seen}}).status, 200);
  Response twice = Http(Port(), "POST", "/EpisodeOfCare/" + ep + "/$accompany", body("tobacco"), {{"If-Match", seen}});
  EXPECT_EQ(twice.status, 422) << twice.body;
  EXPECT_NE(twice.body.find("already running"), std::string::npos) << twice.body;
  EXPECT_EQ(FollowUpTasks(patient, "accompaniment-call").size(), 6u) << "one series, not two";
  EXPECT_EQ(Post("/EpisodeOfCare/" + ep + "/$accompany", body("falls-nutrition")).status, 200);
  EXPECT_EQ(Http(Port(), "POST", "/EpisodeOfCare/" + ep + "/$accompany", body("adherence"), {{"If-Match", "three"}}).status, 400);
  auto calls = FollowUpTasks(patient, "accompaniment-call");
  ASSERT_EQ(calls.size(), 12u);
  for (const auto& c : calls) {
    auto task = Get("/Task/" + c.id).Json();
    if (std::string(task["description"].GetString()).find("(tobacco)") == std::string::npos) continue;
    ASSERT_EQ(Post("/EpisodeOfCare/" + ep + "/$contact", ContactBody(true, R"(,{"name":"task","valueReference":{"reference":"Task/)" + c.id + R"("}})")).status, 200);
  }
  EXPECT_EQ(Post("/EpisodeOfCare/" + ep + "/$accompany", body("tobacco")).status, 200) << "the first series is over";
  EXPECT_EQ(Post("/EpisodeOfCare/" + ep + "/$accompany", body("falls-nutrition")).status, 422) << "its calls are still open";
}

// Dispensing of the current drug is kept for adherence at 52 weeks (KPI 11); another drug's is
// not, and a re-sent dispense is counted once.
TEST(FollowUp, DispensingOfTheCurrentDrugIsKeptForAdherence) {
  std::string ep = InFollowUp("M05BA04");
  std::string patient = PatientOf(Port(), ep);
  auto dispense = [&](const std::string& atc) {
    return Post("/MedicationDispense", R"({"resourceType":"MedicationDispense","status":"completed","subject":{"reference":"Patient/)" + patient +
                                           R"("},"medicationCodeableConcept":{"coding":[{"system":"http://www.whocc.no/atc","code":")" + atc +
                                           R"("}]},"whenHandedOver":")" + Today() + R"(","daysSupply":{"value":28,"unit":"days","system":"http://unitsofmeasure.org","code":"d"}})");
  };
  Response d = dispense("M05BA04");
  ASSERT_EQ(d.status, 201) << d.body;
  std::string id = Id(d);
  EXPECT_EQ(Sql("SELECT day || ' ' || drug || ' ' || days_supply FROM fls_dispense WHERE episode_id = '" + ep + "'"),
            Today() + " M05BA04 28");
  std::string again = Get("/MedicationDispense/" + id).body;
  ASSERT_EQ(Http(Port(), "PUT", "/MedicationDispense/" + id, again).status, 200);
  EXPECT_EQ(Sql("SELECT count(*) FROM fls_dispense WHERE episode_id = '" + ep + "'"), "1");
  ASSERT_EQ(dispense("N02BE01").status, 201);
  EXPECT_EQ(Sql("SELECT count(*) FROM fls_dispense WHERE episode_id = '" + ep + "'"), "1") << "not an osteoporosis drug";
  EXPECT_EQ(Stage(Port(), ep), "follow-up");
}

// A death recorded by the EHR closes the case and cancels every scheduled call and reminder; a
// completed case too.
TEST(FollowUp, DeathAndClosureCancelTheSchedule) {
  std::string ep = InFollowUp("M05BX04");
  std::string patient = PatientOf(Port(), ep);
  std::string p = Get("/Patient/" + patient).body;
  p.insert(p.rfind('}'), R"(,"deceasedDateTime":")" + Today() + "\"");
  ASSERT_EQ(Http(Port(), "PUT", "/Patient/" + patient, p).status, 200);
  EXPECT_EQ(Stage(Port(), ep), "deceased");
  auto tasks = FollowUpTasks(patient, "follow-up-call,injection-reminder");
  ASSERT_FALSE(tasks.empty());
  for (const auto& t : tasks) EXPECT_EQ(t.status, "cancelled") << t.code << " " << t.due;
  EXPECT_EQ(Sql("SELECT count(*) FROM fls_timer WHERE episode_id = '" + ep + "' AND state = 'pending'"), "0");
  std::string done = InFollowUp("M05BA04");
  ASSERT_EQ(Event(Port(), done, R"({"resourceType":"Parameters","parameter":[{"name":"event","valueCode":"complete"}]})").status, 200);
  for (const auto& t : FollowUpTasks(PatientOf(Port(), done), "follow-up-call")) EXPECT_EQ(t.status, "cancelled");
}

}  // namespace
}  // namespace fls::test
