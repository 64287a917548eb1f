// The pathway's durable timers through real servers: two processes on one database over
// simulated time (FLS_CLOCK_FILE), every effect exactly once; a server killed mid-pathway and
// restarted loses nothing and catches up. Also the events data raises: a pathway Task completed
// by PUT, an osteoporosis prescription pushed, spine imaging ordered only when its criteria hold.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <chrono>
#include <ctime>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "tests/api/fls_cases.h"
#include "tests/api/test_client.h"

namespace fls::test {
namespace {

const std::string& ClockFile() {
  static const std::string path = "/tmp/fls-timers-clock-" + std::to_string(getpid());
  return path;
}

// The simulated now in `path`, `days` from the real one (a FHIR instant in UTC).
// The server's clock `days` local calendar days from today. Moved days are pinned to local noon:
// now's time of day plus whole days crosses a local midnight near the clock changes (a June
// midnight in Paris is 22:00 UTC), which made a day-exact timer test fail between 22:00 and 23:00.
void SetClockFile(const std::string& path, int days) {
  time_t t = time(nullptr);
  if (days != 0) {
    tm local;
    localtime_r(&t, &local);
    local.tm_mday += days;
    local.tm_hour = 12;
    local.tm_min = 0;
    local.tm_sec = 0;
    local.tm_isdst = -1;
    t = mktime(&local);
  }
  tm g;
  gmtime_r(&t, &g);
  char buf[32];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &g);
  std::ofstream(path) << buf << "\n";
}
void SetClock(int days) { SetClockFile(ClockFile(), days); }

std::map<std::string, std::string> TimerEnv() {
  return {{"FLS_TIMER_INTERVAL_S", "1"}, {"FLS_CLOCK_FILE", ClockFile()}};
}

const auto* const kEnv = ::testing::AddGlobalTestEnvironment(new SuiteServer([] {
  SetClock(0);
  return TimerEnv();
}()));
int Port() { return SuiteServer::Server().port(); }

Response Get(const std::string& t) { return Http(Port(), "GET", t); }
Response Post(const std::string& t, const std::string& b) { return Http(Port(), "POST", t, b); }

// The case's Tasks with `code`, as (status, priority, notes, versionId).
struct TaskView {
  std::string id, status, priority, version;
  int notes = 0;
};
std::vector<TaskView> Tasks(int port, const std::string& patient, const std::string& code) {
  auto d = Http(port, "GET", "/Task?patient=Patient/" + patient + "&code=" + code + "&_count=100").Json();
  std::vector<TaskView> out;
  for (auto* t : Entries(d)) {
    TaskView v;
    v.id = (*t)["id"].GetString();
    v.status = (*t)["status"].GetString();
    v.priority = (*t)["priority"].GetString();
    v.version = (*t)["meta"]["versionId"].GetString();
    if (t->HasMember("note")) v.notes = static_cast<int>((*t)["note"].Size());
    out.push_back(v);
  }
  return out;
}

template <typename Pred>
bool WaitFor(Pred pred, int timeout_ms) {
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  return pred();
}

TEST(Timers, TwoProcessesFireEveryTimerExactlyOnceOverSimulatedTime) {
  SetClock(0);
  ServerProcess second(TimerEnv());
  ASSERT_TRUE(second.WaitReady(30000)) << second.LogTail();
  std::string doctor = Practitioner(Port());
  // 24 cases: 12 left unenrolled (their assess-enrol Task falls overdue), 12 enrolled (DXA chase).
  std::vector<std::string> idle, enrolled;
  for (int i = 0; i < 24; ++i) {
    int port = i % 2 ? second.port() : Port();
    std::string ep = HipFractureCase(port);
    ASSERT_FALSE(ep.empty());
    if (i < 12) {
      idle.push_back(ep);
    } else {
      ASSERT_EQ(Event(port, ep, EnrolBody(doctor)).status, 200);
      enrolled.push_back(ep);
    }
  }
  // Day 10: nothing is due yet.
  SetClock(10);
  std::this_thread::sleep_for(std::chrono::seconds(3));
  for (const auto& ep : idle) {
    auto t = Tasks(Port(), PatientOf(Port(), ep), "assess-enrol");
    ASSERT_EQ(t.size(), 1u);
    EXPECT_EQ(t[0].priority, "routine") << "escalated before it was due";
  }
  // Day 16: the assess-enrol Tasks are overdue (due on day 14), escalated once each.
  SetClock(16);
  ASSERT_TRUE(WaitFor([&] {
    for (const auto& ep : idle) {
      auto t = Tasks(Port(), PatientOf(Port(), ep), "assess-enrol");
      if (t.empty() || t[0].priority != "urgent") return false;
    }
    return true;
  }, 30000)) << second.LogTail();
  // Day 62: the DXA of the enrolled cases is not resulted 60 days after enrolment.
  SetClock(62);
  ASSERT_TRUE(WaitFor([&] {
    for (const auto& ep : enrolled) {
      if (Tasks(Port(), PatientOf(Port(), ep), "chase-dxa").empty()) return false;
    }
    return true;
  }, 30000)) << second.LogTail();
  // Both processes kept running for several more ticks: still exactly one effect each.
  std::this_thread::sleep_for(std::chrono::seconds(4));
  for (const auto& ep : idle) {
    auto t = Tasks(Port(), PatientOf(Port(), ep), "assess-enrol");
    ASSERT_EQ(t.size(), 1u);
    EXPECT_EQ(t[0].notes, 1) << "escalated twice: " << ep;
    EXPECT_EQ(t[0].version, "2") << ep;
    EXPECT_TRUE(Tasks(Port(), PatientOf(Port(), ep), "chase-dxa").empty()) << "no DXA ordered for an idle case";
  }
  for (const auto& ep : enrolled) {
    EXPECT_EQ(Tasks(Port(), PatientOf(Port(), ep), "chase-dxa").size(), 1u) << "chased twice or never: " << ep;
    auto assess = Tasks(Port(), PatientOf(Port(), ep), "assess-enrol");
    ASSERT_EQ(assess.size(), 1u);
    EXPECT_EQ(assess[0].status, "completed");
    EXPECT_EQ(assess[0].priority, "routine") << "an enrolled case is not escalated";
  }
  // 24 assess-enrol timers (12 escalations, 12 skipped: those cases were enrolled) and 12 DXA
  // chases, each done once, whichever process claimed it.
  EXPECT_EQ(Sql("SELECT kind || ' ' || split_part(outcome, ' ', 1) || ' ' || count(*) FROM fls_timer "
                "WHERE state = 'done' GROUP BY kind, split_part(outcome, ' ', 1) ORDER BY 1"),
            "assess-enrol-overdue escalated 12\nassess-enrol-overdue skipped: 12\ndxa-chase chase-dxa 12");
  EXPECT_EQ(Sql("SELECT count(*) FROM fls_timer WHERE state = 'pending'"), "0");
}

TEST(Timers, AClosedCaseHasNoTimerLeft) {
  SetClock(0);
  std::string ep = HipFractureCase(Port());
  ASSERT_EQ(Event(Port(), ep, R"({"resourceType":"Parameters","parameter":[{"name":"event","valueCode":"exclude"},{"name":"reason","valueCode":"moved-away"}]})").status, 200);
  EXPECT_EQ(Sql("SELECT state FROM fls_timer WHERE episode_id = '" + ep + "'"), "cancelled");
  SetClock(20);
  std::this_thread::sleep_for(std::chrono::seconds(3));
  auto t = Tasks(Port(), PatientOf(Port(), ep), "assess-enrol");
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].status, "cancelled");
  EXPECT_EQ(t[0].priority, "routine");
}

TEST(Timers, AServerKilledMidPathwayLosesNothingAndCatchesUp) {
  SetClock(0);  // the suite's server fires nothing of this test: only the restarted one can
  const std::string own_clock = ClockFile() + "-own";
  SetClockFile(own_clock, 0);
  std::string doctor = Practitioner(Port());
  std::map<std::string, std::string> env = TimerEnv();
  env["FLS_CLOCK_FILE"] = own_clock;
  env["FLS_TIMER_INTERVAL_S"] = "0";  // this one never runs timers: only the restarted one does
  auto victim = std::make_unique<ServerProcess>(env);
  ASSERT_TRUE(victim->WaitReady(30000)) << victim->LogTail();
  std::vector<std::string> cases;
  for (int i = 0; i < 8; ++i) cases.push_back(HipFractureCase(victim->port()));
  // Enrolments and exercise events from 4 threads; the server is killed while they run.
  std::atomic<int> acknowledged{0};
  std::vector<std::pair<std::string, int>> acked;  // (case, events acknowledged)
  std::mutex mu;
  std::atomic<bool> stop{false};
  std::vector<std::thread> workers;
  for (int w = 0; w < 4; ++w) {
    workers.emplace_back([&, w] {
      for (int i = w; i < 8; i += 4) {
        int ok = 0;
        if (Event(victim->port(), cases[i], EnrolBody(doctor)).status == 200) ++ok;
        while (!stop) {
          Response r = Event(victim->port(), cases[i], R"({"resourceType":"Parameters","parameter":[{"name":"event","valueCode":"exercise-started"}]})");
          if (r.status != 200) break;
          ++ok;
          ++acknowledged;
        }
        std::lock_guard lock(mu);
        acked.emplace_back(cases[i], ok);
      }
    });
  }
  ASSERT_TRUE(WaitFor([&] { return acknowledged > 40; }, 30000));
  kill(victim->pid(), SIGKILL);
  stop = true;
  for (auto& t : workers) t.join();
  victim.reset();
  // Downtime spans the due dates; the restarted server catches up.
  SetClockFile(own_clock, 70);
  std::map<std::string, std::string> restart_env = TimerEnv();
  restart_env["FLS_CLOCK_FILE"] = own_clock;
  ServerProcess restarted(restart_env);
  ASSERT_TRUE(restarted.WaitReady(30000)) << restarted.LogTail();
  for (const auto& [ep, ok] : acked) {
    auto d = Http(restarted.port(), "GET", "/EpisodeOfCare/" + ep + "/$events").Json();
    int events = 0;
    for (const auto& p : d["parameter"].GetArray()) {
      std::string code;
      for (const auto& part : p["part"].GetArray()) {
        if (std::string(part["name"].GetString()) == "event") code = part["valueCode"].GetString();
      }
      if (code == "enrol" || code == "exercise-started") ++events;
    }
    // Every acknowledged event is in the log (one more may have committed as the server died).
    EXPECT_GE(events, ok) << ep;
    EXPECT_LE(events, ok + 1) << ep;
    EXPECT_EQ(Stage(restarted.port(), ep), events > 0 ? "investigating" : "identified") << ep;
  }
  ASSERT_TRUE(WaitFor([&] {
    for (const auto& [ep, ok] : acked) {
      std::string patient = PatientOf(restarted.port(), ep);
      bool enrolled = Stage(restarted.port(), ep) == "investigating";
      if (enrolled && Tasks(restarted.port(), patient, "chase-dxa").size() != 1) return false;
      if (!enrolled && Tasks(restarted.port(), patient, "assess-enrol")[0].priority != "urgent") return false;
    }
    return true;
  }, 30000)) << restarted.LogTail();
}

// Completing a pathway Task through the API is posting its event (operations.md section 1).
TEST(DataEvents, CompletingTheAssessTaskByPutEnrolsAndABadOutputChangesNothing) {
  std::string ep = HipFractureCase(Port());
  std::string patient = PatientOf(Port(), ep);
  std::string doctor = Practitioner(Port());
  auto tasks = Tasks(Port(), patient, "assess-enrol");
  ASSERT_EQ(tasks.size(), 1u);
  auto task = Get("/Task/" + tasks[0].id).Json();
  auto put = [&](const std::string& outputs) {
    std::string body = R"({"resourceType":"Task","id":")" + tasks[0].id +
                       R"(","status":"completed","intent":"order","code":{"coding":[{"system":"http://fls-server.org/fhir/CodeSystem/fls-task","code":"assess-enrol"}]},"focus":{"reference":"EpisodeOfCare/)" +
                       ep + R"("},"for":{"reference":"Patient/)" + patient + R"("},"output":[)" + outputs + "]}";
    return Http(Port(), "PUT", "/Task/" + tasks[0].id, body);
  };
  // No phone: the enrol event's 400, and the Task is still open.
  Response bad = put(R"({"type":{"text":"consent-programme"},"valueBoolean":true},{"type":{"text":"consent-report"},"valueBoolean":false},
                      {"type":{"text":"referring-physician"},"valueReference":{"reference":"Practitioner/)" + doctor + R"("}})");
  EXPECT_EQ(bad.status, 400) << bad.body;
  EXPECT_EQ(Tasks(Port(), patient, "assess-enrol")[0].status, "requested");
  EXPECT_EQ(Stage(Port(), ep), "identified");
  Response ok = put(R"({"type":{"text":"consent-programme"},"valueBoolean":true},{"type":{"text":"consent-report"},"valueBoolean":false},
                     {"type":{"text":"phone"},"valueString":"+33 1 23 45 67 89"},
                     {"type":{"text":"referring-physician"},"valueReference":{"reference":"Practitioner/)" + doctor + R"("}})");
  EXPECT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(Stage(Port(), ep), "investigating");
  // The same PUT again (a retry): no second enrolment.
  size_t rows = Get("/EpisodeOfCare/" + ep + "/$events").Json()["parameter"].Size();
  Response again = put(R"({"type":{"text":"consent-programme"},"valueBoolean":true},{"type":{"text":"consent-report"},"valueBoolean":false},
                        {"type":{"text":"phone"},"valueString":"+33 1 23 45 67 89"},
                        {"type":{"text":"referring-physician"},"valueReference":{"reference":"Practitioner/)" + doctor + R"("}})");
  EXPECT_EQ(again.status, 200) << again.body;
  EXPECT_EQ(Get("/EpisodeOfCare/" + ep + "/$events").Json()["parameter"].Size(), rows);
  auto consents = Get("/Consent?patient=Patient/" + patient).Json();
  EXPECT_EQ(Entries(consents).size(), 2u);
  auto sr = Get("/ServiceRequest?patient=Patient/" + patient + "&_count=100").Json();
  EXPECT_EQ(Entries(sr).size(), 15u);
}

// An osteoporosis drug prescribed for the patient: decided and started by the data itself, and
// the RxNorm code Synthea uses is mapped to ATC (workflow/data/osteoporosis-drugs.json).
TEST(DataEvents, APrescriptionPushedStartsTheTreatment) {
  std::string ep = HipFractureCase(Port());
  std::string patient = PatientOf(Port(), ep);
  std::string doctor = Practitioner(Port());
  ASSERT_EQ(Event(Port(), ep, EnrolBody(doctor)).status, 200);
  auto sr = Get("/ServiceRequest?patient=Patient/" + patient + "&_count=100").Json();
  for (auto* s : Entries(sr)) {
    std::string body = R"({"resourceType":"Parameters","parameter":[{"name":"event","valueCode":"waive"},{"name":"item","valueReference":{"reference":"ServiceRequest/)" +
                       std::string((*s)["id"].GetString()) + R"("}},{"name":"reason","valueString":"test"}]})";
    ASSERT_EQ(Event(Port(), ep, body).status, 200);
  }
  ASSERT_EQ(Stage(Port(), ep), "treatment-decision");
  // A prescription of something else changes nothing.
  Post("/MedicationRequest", R"({"resourceType":"MedicationRequest","status":"active","intent":"order","subject":{"reference":"Patient/)" + patient +
                                 R"("},"medicationCodeableConcept":{"coding":[{"system":"http://www.whocc.no/atc","code":"N02BE01"}]},"authoredOn":")" + Today() + R"("})");
  EXPECT_EQ(Stage(Port(), ep), "treatment-decision");
  Response mr = Post("/MedicationRequest", R"({"resourceType":"MedicationRequest","status":"active","intent":"order","subject":{"reference":"Patient/)" + patient +
                                               R"("},"medicationCodeableConcept":{"coding":[{"system":"http://www.nlm.nih.gov/research/umls/rxnorm","code":"904419"}]},"authoredOn":")" +
                                               Today() + R"("})");
  ASSERT_EQ(mr.status, 201) << mr.body;
  EXPECT_EQ(Stage(Port(), ep), "follow-up");
  auto d = Get("/EpisodeOfCare/" + ep + "/$events").Json();
  std::vector<std::string> tail;
  for (const auto& p : d["parameter"].GetArray()) {
    std::string code, source;
    for (const auto& part : p["part"].GetArray()) {
      std::string n = part["name"].GetString();
      if (n == "event") code = part["valueCode"].GetString();
      if (n == "source") source = part["valueCode"].GetString();
    }
    tail.push_back(code + "/" + source);
  }
  ASSERT_GE(tail.size(), 2u);
  EXPECT_EQ(tail[tail.size() - 2], "decide-treatment/data");
  EXPECT_EQ(tail[tail.size() - 1], "treatment-started/data");
  auto plan = Get("/CarePlan?patient=Patient/" + patient).Json();
  auto plans = Entries(plan);
  ASSERT_EQ(plans.size(), 1u);
  std::string activity = (*plans[0])["activity"][1]["detail"]["code"]["coding"][0]["code"].GetString();
  EXPECT_EQ(activity, "M05BA04");
}

// The admission's labs, pushed before the coordinator enrols the patient, close their items when
// the panel is ordered; a result dated before the fracture does not.
TEST(DataEvents, ResultsOnRecordCloseTheirItemsAtEnrolment) {
  std::string ep = HipFractureCase(Port());
  std::string patient = PatientOf(Port(), ep);
  auto obs = [&](const std::string& code, const std::string& value, const std::string& unit, const std::string& day) {
    Response r = Post("/Observation", R"({"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":")" +
                                          code + R"("}]},"subject":{"reference":"Patient/)" + patient + R"("},"effectiveDateTime":")" + day +
                                          R"(","valueQuantity":{"value":)" + value + R"(,"unit":")" + unit +
                                          R"(","system":"http://unitsofmeasure.org","code":")" + unit + R"("}})");
    EXPECT_EQ(r.status, 201) << r.body;
  };
  time_t y = time(nullptr) - 86400 * 3;
  tm g;
  localtime_r(&y, &g);
  char before[16];
  strftime(before, sizeof before, "%Y-%m-%d", &g);
  obs("14635-7", "20", "nmol/L", Today());   // 25-OH vitamin D, severe deficiency
  obs("2160-0", "0.9", "mg/dL", before);     // creatinine, before the fracture: not this case's
  EXPECT_EQ(Stage(Port(), ep), "identified") << "nothing ordered yet: results wait";
  ASSERT_EQ(Event(Port(), ep, EnrolBody(Practitioner(Port()))).status, 200);
  std::map<std::string, std::string> status;
  auto d = Get("/ServiceRequest?patient=Patient/" + patient + "&_count=100").Json();
  for (auto* s : Entries(d)) {
    for (const auto& c : (*s)["code"]["coding"].GetArray()) {
      if (std::string(c["system"].GetString()).find("fls-investigation") != std::string::npos) status[c["code"].GetString()] = (*s)["status"].GetString();
    }
  }
  EXPECT_EQ(status["vitamin-d"], "completed");
  EXPECT_EQ(status["creatinine"], "active");
  auto flags = Get("/Flag?patient=Patient/" + patient).Json();
  std::set<std::string> codes;
  for (auto* f : Entries(flags)) codes.insert((*f)["code"]["coding"][0]["code"].GetString());
  EXPECT_EQ(codes, (std::set<std::string>{"vitamin-d-severe-deficiency", "vitamin-d-insufficiency"}));
  auto log = Get("/EpisodeOfCare/" + ep + "/$events").Json();
  std::vector<std::string> events;
  for (const auto& p : log["parameter"].GetArray()) {
    for (const auto& part : p["part"].GetArray()) {
      if (std::string(part["name"].GetString()) == "event") events.push_back(part["valueCode"].GetString());
    }
  }
  EXPECT_EQ(events, (std::vector<std::string>{"identify", "enrol", "result"}));
}

// Spine imaging is ordered only when pathway.md section 3's criteria hold: here a vertebral
// fracture on record.
TEST(DataEvents, SpineImagingOnlyWithItsCriteria) {
  std::string doctor = Practitioner(Port());
  auto items = [&](const std::string& ep) {
    std::set<std::string> out;
    auto d = Get("/ServiceRequest?patient=Patient/" + PatientOf(Port(), ep) + "&_count=100").Json();
    for (auto* s : Entries(d)) {
      for (const auto& c : (*s)["code"]["coding"].GetArray()) {
        if (std::string(c["system"].GetString()).find("fls-investigation") != std::string::npos) out.insert(c["code"].GetString());
      }
    }
    return out;
  };
  std::string plain = HipFractureCase(Port());
  ASSERT_EQ(Event(Port(), plain, EnrolBody(doctor)).status, 200);
  EXPECT_EQ(items(plain).count("spine-imaging"), 0u);
  EXPECT_EQ(items(plain).size(), 15u);
  std::string vertebral = HipFractureCase(
      Port(), R"("code":{"coding":[{"system":"http://hl7.org/fhir/sid/icd-10-cm","code":"S32.010A"}]},"onsetDateTime":")" + Today() + "\"");
  ASSERT_EQ(Event(Port(), vertebral, EnrolBody(doctor)).status, 200);
  EXPECT_EQ(items(vertebral).count("spine-imaging"), 1u);
  EXPECT_EQ(items(vertebral).size(), 16u);
}

std::string StartDayOf(const std::string& ep) {
  return Sql("SELECT treatment_start_day FROM fls_case WHERE episode_id = '" + ep + "'");
}

// Dates computed apart from the server: std::chrono's calendar, the day clamped.
std::string PlusMonths(const std::string& text, int months) {
  using namespace std::chrono;
  int y = std::stoi(text.substr(0, 4));
  unsigned m = static_cast<unsigned>(std::stoi(text.substr(5, 2))), d = static_cast<unsigned>(std::stoi(text.substr(8, 2)));
  year_month ym = year{y} / month{m} + std::chrono::months{months};
  year_month_day ymd = ym / std::chrono::day{d};
  if (!ymd.ok()) ymd = ym / last;
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02u", static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                static_cast<unsigned>(ymd.day()));
  return buf;
}
int DaysFromToday(const std::string& day) {
  using namespace std::chrono;
  auto parse = [](const std::string& t) {
    return sys_days{year{std::stoi(t.substr(0, 4))} / std::stoi(t.substr(5, 2)) / std::stoi(t.substr(8, 2))};
  };
  return static_cast<int>((parse(day) - parse(Today())).count());
}

struct PeriodTask {
  std::string status, start, end, priority;
  std::vector<std::string> inputs;
};
std::vector<PeriodTask> PeriodTasks(const std::string& patient, const std::string& code) {
  auto d = Get("/Task?patient=Patient/" + patient + "&code=" + code + "&_count=100").Json();
  std::vector<PeriodTask> out;
  for (auto* t : Entries(d)) {
    PeriodTask v;
    v.status = (*t)["status"].GetString();
    v.priority = (*t)["priority"].GetString();
    const auto& period = (*t)["restriction"]["period"];
    if (period.HasMember("start")) v.start = period["start"].GetString();
    v.end = period["end"].GetString();
    if (t->HasMember("input")) {
      for (const auto& in : (*t)["input"].GetArray()) {
        v.inputs.push_back(std::string(in["type"]["text"].GetString()) + ": " + in["valueString"].GetString());
      }
    }
    out.push_back(v);
  }
  return out;
}

// The long-term rules (pathway.md section 6) open their Tasks at their dates, counted in calendar
// months from the treatment start; a change of drug re-plans them.
TEST(LongTerm, ReassessmentAndStopEvaluationAtTheirDates) {
  SetClock(0);
  std::string ep = HipFractureCase(Port());
  std::string patient = PatientOf(Port(), ep);
  ASSERT_TRUE(EnrolAndWaiveAll(Port(), ep));
  ASSERT_EQ(Event(Port(), ep, DrugEvent("decide-treatment", "M05BA04")).status, 200);
  ASSERT_EQ(Event(Port(), ep, DrugEvent("treatment-started", "M05BA04")).status, 200);
  std::string start = Sql("SELECT treatment_start_day FROM fls_case WHERE episode_id = '" + ep + "'");
  ASSERT_EQ(start.size(), 10u) << start;
  EXPECT_EQ(Sql("SELECT string_agg(kind, ',' ORDER BY due_at) FROM fls_timer WHERE episode_id = '" + ep +
                "' AND state = 'pending' AND kind LIKE 'lt-%'"),
            "lt-reassessment,lt-stop-evaluation,lt-beyond-five-years");
  // Due at midnight in the site's time zone (FLS_TIMEZONE, Europe/Paris by default).
  EXPECT_EQ(Sql("SELECT DISTINCT (due_at AT TIME ZONE 'Europe/Paris')::time FROM fls_timer WHERE episode_id = '" + ep +
                "' AND kind LIKE 'lt-%'"),
            "00:00:00");
  EXPECT_EQ(Sql("SELECT (due_at AT TIME ZONE 'Europe/Paris')::date FROM fls_timer WHERE episode_id = '" + ep +
                "' AND kind = 'lt-reassessment'"),
            PlusMonths(start, 24));
  // The day before 2 years: nothing; the day itself: the reassessment, 2 to 3 years.
  SetClock(DaysFromToday(PlusMonths(start, 24)) - 1);
  std::this_thread::sleep_for(std::chrono::seconds(3));
  EXPECT_TRUE(PeriodTasks(patient, "reassessment").empty());
  SetClock(DaysFromToday(PlusMonths(start, 24)) + 1);
  ASSERT_TRUE(WaitFor([&] { return !PeriodTasks(patient, "reassessment").empty(); }, 20000));
  auto re = PeriodTasks(patient, "reassessment");
  ASSERT_EQ(re.size(), 1u);
  EXPECT_EQ(re[0].start, PlusMonths(start, 24));
  EXPECT_EQ(re[0].end, PlusMonths(start, 36));
  // 3 years: the stop evaluation, with its four criteria read from the data.
  SetClock(DaysFromToday(PlusMonths(start, 36)) + 1);
  ASSERT_TRUE(WaitFor([&] { return !PeriodTasks(patient, "stop-evaluation").empty(); }, 20000));
  auto stop = PeriodTasks(patient, "stop-evaluation");
  ASSERT_EQ(stop.size(), 1u);
  EXPECT_EQ(stop[0].start, PlusMonths(start, 36));
  EXPECT_EQ(stop[0].end, PlusMonths(start, 60));
  ASSERT_EQ(stop[0].inputs.size(), 4u);
  EXPECT_EQ(stop[0].inputs[0], "no fracture under treatment: met");
  EXPECT_EQ(stop[0].inputs[2], "no significant BMD decrease: to check: no BMD on record");
  SetClock(0);
}

// Stopping denosumab (complete) plans its bisphosphonate relay from the day the next injection
// would have been due, never a gap; and the re-evaluation 2 years after the stop.
TEST(LongTerm, DenosumabStoppedGetsItsRelayAtTheNextInjectionDate) {
  SetClock(0);
  time_t t = time(nullptr) - 200 * 86400;
  tm g;
  localtime_r(&t, &g);
  char onset[16];
  strftime(onset, sizeof onset, "%Y-%m-%d", &g);
  t = time(nullptr) - 190 * 86400;
  localtime_r(&t, &g);
  char started[16];
  strftime(started, sizeof started, "%Y-%m-%d", &g);
  std::string ep = HipFractureCase(Port(), "", "female", "1941-03-04", onset);
  std::string patient = PatientOf(Port(), ep);
  ASSERT_TRUE(EnrolAndWaiveAll(Port(), ep));
  ASSERT_EQ(Event(Port(), ep, DrugEvent("decide-treatment", "M05BX04")).status, 200);
  Response s = Event(Port(), ep, DrugEvent("treatment-started", "M05BX04", started));
  ASSERT_EQ(s.status, 200) << s.body;
  // The second injection, recorded at a call 10 days ago; then the stop.
  t = time(nullptr) - 10 * 86400;
  localtime_r(&t, &g);
  char injected[16];
  strftime(injected, sizeof injected, "%Y-%m-%d", &g);
  Response call = Post("/EpisodeOfCare/" + ep + "/$contact",
                       R"({"resourceType":"Parameters","parameter":[{"name":"reached","valueBoolean":true},{"name":"injection-date","valueDate":")" +
                           std::string(injected) + R"("}]})");
  ASSERT_EQ(call.status, 200) << call.body;
  ASSERT_EQ(Event(Port(), ep, R"({"resourceType":"Parameters","parameter":[{"name":"event","valueCode":"complete"},{"name":"reason","valueString":"end of the sequence"}]})").status, 200);
  EXPECT_EQ(Stage(Port(), ep), "completed");
  // The relay starts when the next injection would have been due: 6 months after the last one.
  std::string next = PlusMonths(injected, 6);
  auto relay = PeriodTasks(patient, "relay");
  ASSERT_EQ(relay.size(), 1u);
  EXPECT_EQ(relay[0].status, "requested") << "the relay outlives the closed case";
  EXPECT_EQ(relay[0].priority, "urgent");
  EXPECT_EQ(relay[0].start, next);
  EXPECT_EQ(Sql("SELECT kind || ' ' || (due_at AT TIME ZONE 'Europe/Paris')::date FROM fls_timer WHERE episode_id = '" + ep +
                "' AND state = 'pending'"),
            "after-stop " + PlusMonths(Today(), 24)) << "the long-term timers of the stopped drug are cancelled";
  SetClock(DaysFromToday(PlusMonths(Today(), 24)) + 1);
  ASSERT_TRUE(WaitFor([&] { return !PeriodTasks(patient, "re-evaluation-after-stop").empty(); }, 20000));
  auto after = PeriodTasks(patient, "re-evaluation-after-stop");
  EXPECT_EQ(after[0].start, PlusMonths(Today(), 24));
  SetClock(0);
}

// Denosumab's overdue alert 4 weeks after a missed injection, and a patient declared unreachable
// becoming lost to follow-up 6 months later (source timer), which raises the relay alert too.
TEST(FollowUpTimers, DenosumabOverdueThenUnreachableThenLostToFollowUp) {
  SetClock(0);
  auto day = [](int offset) {
    time_t t = time(nullptr) + static_cast<time_t>(offset) * 86400;
    tm g;
    localtime_r(&t, &g);
    char buf[16];
    strftime(buf, sizeof buf, "%Y-%m-%d", &g);
    return std::string(buf);
  };
  std::string ep = HipFractureCase(Port(), "", "female", "1941-03-04", day(-20));
  std::string patient = PatientOf(Port(), ep);
  ASSERT_TRUE(EnrolAndWaiveAll(Port(), ep));
  ASSERT_EQ(Event(Port(), ep, DrugEvent("decide-treatment", "M05BX04")).status, 200);
  ASSERT_EQ(Event(Port(), ep, DrugEvent("treatment-started", "M05BX04", day(-15))).status, 200);
  std::string start = StartDayOf(ep);
  std::string due = PlusMonths(start, 6);
  // 27 days late: nothing; 28 days late (the day after 4 weeks): the alert, once.
  SetClock(DaysFromToday(due) + 27);
  std::this_thread::sleep_for(std::chrono::seconds(3));
  EXPECT_TRUE(PeriodTasks(patient, "denosumab-overdue").empty());
  SetClock(DaysFromToday(due) + 29);
  ASSERT_TRUE(WaitFor([&] { return !PeriodTasks(patient, "denosumab-overdue").empty(); }, 20000));
  std::this_thread::sleep_for(std::chrono::seconds(2));
  auto overdue = PeriodTasks(patient, "denosumab-overdue");
  ASSERT_EQ(overdue.size(), 1u);
  EXPECT_EQ(overdue[0].priority, "urgent");
  // Three unreached calls on three days: unreachable; 6 months on, lost to follow-up.
  for (int d : {-5, -4, -3}) {
    Response r = Post("/EpisodeOfCare/" + ep + "/$contact",
                      R"({"resourceType":"Parameters","parameter":[{"name":"reached","valueBoolean":false},{"name":"occurred","valueDateTime":")" +
                          day(d) + R"(T10:00:00+01:00"}]})");
    ASSERT_EQ(r.status, 200) << r.body;
  }
  ASSERT_EQ(PeriodTasks(patient, "unreachable").size(), 1u);
  SetClock(DaysFromToday(PlusMonths(day(-3), 6)) + 1);
  ASSERT_TRUE(WaitFor([&] { return Stage(Port(), ep) == "lost-to-follow-up"; }, 20000));
  auto d = Get("/EpisodeOfCare/" + ep + "/$events").Json();
  const auto& last = d["parameter"][d["parameter"].Size() - 1];
  std::map<std::string, std::string> parts;
  for (const auto& p : last["part"].GetArray()) {
    if (p.HasMember("valueCode")) parts[p["name"].GetString()] = p["valueCode"].GetString();
  }
  EXPECT_EQ(parts["event"], "lost-to-follow-up");
  EXPECT_EQ(parts["source"], "timer");
  EXPECT_EQ(PeriodTasks(patient, "denosumab-overdue").size(), 2u) << "stopped without a relay: alerted";
  SetClock(0);
}

}  // namespace
}  // namespace fls::test
