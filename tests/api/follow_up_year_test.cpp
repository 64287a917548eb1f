// A simulated year of the follow-up programme (docs/follow-up.md) through the real server: N
// patients (FLS_YEAR_PATIENTS, 120 by default; the documented long run is 1,000) taken to
// follow-up on five drugs round-robin, half of them consenting to reports; then a year of calls,
// each reached with probability 0.8 (a seeded PRNG: FLS_YEAR_SEED replays), an unreached call
// retried on the next days up to 3 attempts. The whole year lies in the past (the server refuses
// a contact in the future of the real clock): the fractures are 400 days old. The timers run on a
// simulated clock (FLS_CLOCK_FILE) moved along with the calls, then past the last lost-to-follow-up
// date. The counts the server ends with (contacts, reports to the physician, unreachable Tasks,
// lost-to-follow-up cases, denosumab alerts) are compared with the test's own model of the docs.
// Denosumab has no 6-month call (follow-up.json: 12 months only): its injections are recorded at
// the contacts answering its injection-reminder Tasks, which the walk calls like the others.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/api/fls_cases.h"
#include "tests/api/test_client.h"

namespace fls::test {
namespace {

// ---- calendar days, computed apart from the server (std::chrono) -------------------------------

int DayNum(const std::string& t) {
  using namespace std::chrono;
  sys_days d{year{std::stoi(t.substr(0, 4))} / std::stoi(t.substr(5, 2)) / std::stoi(t.substr(8, 2))};
  return static_cast<int>(d.time_since_epoch().count());
}
std::string DayText(int n) {
  using namespace std::chrono;
  year_month_day ymd{sys_days{days{n}}};
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02u", static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                static_cast<unsigned>(ymd.day()));
  return buf;
}
// Calendar months, the day kept within the month (docs/follow-up.md, "When the calls are").
int AddMonths(int day, int months) {
  using namespace std::chrono;
  year_month_day from{sys_days{days{day}}};
  year_month ym = from.year() / from.month() + std::chrono::months{months};
  year_month_day ymd = ym / from.day();
  if (!ymd.ok()) ymd = ym / last;
  return static_cast<int>(sys_days{ymd}.time_since_epoch().count());
}
int TodayNum() { return DayNum(Today()); }

// ---- the suite's server, its timers on a simulated clock ---------------------------------------

const std::string& ClockFile() {
  static const std::string path = "/tmp/fls-year-clock-" + std::to_string(getpid());
  return path;
}
// Noon UTC of `day`: in Europe/Paris the afternoon of that day, so the timers due at its local
// midnight (and before) are due, the next day's not.
std::string NoonOf(int day) { return DayText(day) + "T12:00:00Z"; }
void SetClockDay(int day) { std::ofstream(ClockFile()) << NoonOf(day) << "\n"; }

// The clock starts before the fractures: no timer fires until the walk moves it. The fractures are
// 400 days old: the case finding's look-back (FLS_CASE_LOOKBACK_DAYS, 365 by default) widened.
const auto* const kEnv = ::testing::AddGlobalTestEnvironment(new SuiteServer([] {
  SetClockDay(TodayNum() - 402);
  return std::map<std::string, std::string>{
      {"FLS_TIMER_INTERVAL_S", "1"}, {"FLS_CLOCK_FILE", ClockFile()}, {"FLS_CASE_LOOKBACK_DAYS", "800"}};
}()));
int Port() { return SuiteServer::Server().port(); }

template <typename Pred>
bool WaitFor(Pred pred, int timeout_ms) {
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return pred();
}

// Moves the simulated clock to `day` and waits until every timer due by then has fired.
bool ClockTo(int day, int timeout_ms) {
  SetClockDay(day);
  std::string q = "SELECT count(*) FROM fls_timer WHERE state = 'pending' AND due_at <= timestamptz '" + NoonOf(day) + "'";
  return WaitFor([&] { return Sql(q) == "0"; }, timeout_ms);
}

// `fn(i)` for i in [0, n) on `threads` threads.
void ParallelFor(size_t n, int threads, const std::function<void(size_t)>& fn) {
  std::atomic<size_t> next{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (size_t i = next++; i < n; i = next++) fn(i);
    });
  }
  for (auto& t : pool) t.join();
}

int Total(const std::string& target) {
  auto d = Http(Port(), "GET", target).Json();
  return d.IsObject() && d.HasMember("total") ? d["total"].GetInt() : -1;
}

// ---- the drugs and their calls (workflow/data/follow-up.json) ----------------------------------

struct Drug {
  std::string atc, drug_class;
  std::vector<int> first_year_calls;  // months after the start
};
const std::vector<Drug>& Drugs() {
  static const std::vector<Drug> d = {
      {"M05BA04", "oral-bisphosphonate", {1, 3, 6, 12}},
      {"M05BA08", "zoledronic-acid", {3, 12}},
      {"M05BX04", "denosumab", {12}},
      {"H05AA02", "teriparatide", {1, 2, 3, 6, 9, 12}},
      {"G03XC01", "raloxifene", {3, 12}},
  };
  return d;
}

// ---- one patient's year -------------------------------------------------------------------------

struct Call {
  std::string task, code;
  int due = 0;
};

struct Patient {
  int index = 0;
  std::string episode, patient;
  const Drug* drug = nullptr;
  bool consent = false;
  std::mt19937_64 rng;
  std::vector<Call> calls;  // in due order; denosumab's injection reminders join as they are planned
  std::set<std::string> known;
  size_t next = 0;
  int attempts = 0;   // of calls[next]
  int action = -1;    // the day of the next attempt; -1: no more calls
  std::optional<int> unreachable;
  std::vector<int> injections;
  std::vector<int> alert_days;  // expected denosumab-overdue Tasks, by the day the server raises them
  int posts_ok = 0, reached_ok = 0;
  std::string error;
};

std::string WithOccurred(const std::string& body, const std::string& day) {
  std::string b = body;
  b.insert(b.rfind(']'), R"(,{"name":"occurred","valueDateTime":")" + day + R"("})");
  return b;
}

// Enrolment (consent to reports or not) and every investigation waived, dated `day`.
bool EnrolAndWaive(int port, const std::string& episode, const std::string& day, bool consent_report) {
  std::string enrol = EnrolBody(Practitioner(port));
  if (!consent_report) {
    const std::string yes = "\"consent-report\",\"valueBoolean\":true";
    auto at = enrol.find(yes);
    if (at == std::string::npos) return false;
    enrol.replace(at, yes.size(), "\"consent-report\",\"valueBoolean\":false");
  }
  if (Event(port, episode, WithOccurred(enrol, day)).status != 200) return false;
  auto d = Http(port, "GET", "/ServiceRequest?patient=Patient/" + PatientOf(port, episode) + "&status=active&_count=100").Json();
  for (auto* s : Entries(d)) {
    std::string body = R"({"resourceType":"Parameters","parameter":[{"name":"event","valueCode":"waive"},{"name":"item","valueReference":{"reference":"ServiceRequest/)" +
                       std::string((*s)["id"].GetString()) + R"("}},{"name":"reason","valueString":"simulated year"}]})";
    if (Event(port, episode, WithOccurred(body, day)).status != 200) return false;
  }
  return Stage(port, episode) == "treatment-decision";
}

// The patient's open Tasks with `code` due by `horizon`, not seen yet.
std::vector<Call> OpenTasks(int port, Patient& p, const std::string& code, int horizon) {
  auto d = Http(port, "GET", "/Task?patient=Patient/" + p.patient + "&code=" + code + "&_count=200").Json();
  std::vector<Call> out;
  for (auto* t : Entries(d)) {
    std::string id = (*t)["id"].GetString();
    if (std::string((*t)["status"].GetString()) != "requested" || p.known.count(id)) continue;
    int due = DayNum((*t)["restriction"]["period"]["end"].GetString());
    if (due > horizon) continue;
    p.known.insert(id);
    out.push_back({id, code, due});
  }
  return out;
}

void Schedule(Patient& p, std::vector<Call> more) {
  p.calls.insert(p.calls.end(), more.begin(), more.end());
  std::stable_sort(p.calls.begin() + static_cast<long>(p.next), p.calls.end(),
                   [](const Call& a, const Call& b) { return a.due < b.due; });
}

void NextAction(Patient& p, int after) {
  p.action = p.next < p.calls.size() ? std::max(p.calls[p.next].due, after + 1) : -1;
}

TEST(FollowUpYear, ASimulatedYearOfPatientsOnMixedDrugs) {
  const auto t0 = std::chrono::steady_clock::now();
  const int n = Env("FLS_YEAR_PATIENTS").empty() ? 120 : std::stoi(Env("FLS_YEAR_PATIENTS"));
  const uint64_t seed = Env("FLS_YEAR_SEED").empty() ? std::random_device{}() : std::stoull(Env("FLS_YEAR_SEED"));
  std::cout << "[ year ] FLS_YEAR_SEED=" << seed << " FLS_YEAR_PATIENTS=" << n << std::endl;
  RecordProperty("seed", std::to_string(seed));
  ASSERT_GT(n, 0);

  const int today = TodayNum();
  const int fracture = today - 400, start = today - 399;
  const int horizon = std::max(start + 365, AddMonths(start, 12));  // the first year, its 12-month call included
  const std::string start_text = DayText(start);

  // ---- set-up: N cases in follow-up, from 4 client threads ----
  std::vector<Patient> patients(static_cast<size_t>(n));
  ParallelFor(patients.size(), 4, [&](size_t i) {
    Patient& p = patients[i];
    p.index = static_cast<int>(i);
    p.drug = &Drugs()[i % Drugs().size()];
    p.consent = i % 2 == 0;
    std::seed_seq ss{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32), static_cast<uint32_t>(i)};
    p.rng.seed(ss);
    p.episode = HipFractureCase(Port(), "", "female", "1941-03-04", DayText(fracture));
    if (p.episode.empty()) {
      p.error = "no case opened";
      return;
    }
    p.patient = PatientOf(Port(), p.episode);
    if (!EnrolAndWaive(Port(), p.episode, start_text, p.consent)) {
      p.error = "enrolment or waivers failed";
      return;
    }
    Response d = Event(Port(), p.episode, DrugEvent("decide-treatment", p.drug->atc, start_text));
    Response s = Event(Port(), p.episode, DrugEvent("treatment-started", p.drug->atc, start_text));
    if (d.status != 200 || s.status != 200) {
      p.error = "drug events: " + std::to_string(d.status) + " " + d.body + " / " + std::to_string(s.status) + " " + s.body;
      return;
    }
    if (Stage(Port(), p.episode) != "follow-up") {
      p.error = "not in follow-up";
      return;
    }
    Schedule(p, OpenTasks(Port(), p, "follow-up-call", horizon));
    // The calls at their dates: calendar months from the start (docs/follow-up.md's table).
    std::vector<int> want;
    for (int m : p.drug->first_year_calls) want.push_back(AddMonths(start, m));
    std::vector<int> got;
    for (const auto& c : p.calls) got.push_back(c.due);
    if (got != want) p.error = "the first year's calls are not at the documented dates";
    if (p.drug->drug_class == "denosumab") {
      // Denosumab has no 6-month call (follow-up.json: calls at 12 months only): the injection is
      // recorded at the contact that answers its reminder (2 weeks before the injection is due).
      auto reminders = OpenTasks(Port(), p, "injection-reminder", horizon);
      if (reminders.size() != 1 || reminders[0].due != AddMonths(start, 6) - 14) p.error = "the first injection reminder";
      Schedule(p, reminders);
    }
    NextAction(p, start);
  });
  for (const auto& p : patients) ASSERT_TRUE(p.error.empty()) << "patient " << p.index << " (" << p.episode << "): " << p.error;
  const double setup_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  // ---- the year: day by day, the timers' clock kept on the day of the calls ----
  std::atomic<int> posts{0}, posts_ok{0};
  int steps = 0, last_walk_day = start;
  for (;;) {
    int day = -1;
    for (const auto& p : patients) {
      if (p.action >= 0 && (day < 0 || p.action < day)) day = p.action;
    }
    if (day < 0) break;
    ASSERT_LE(day, today) << "a call in the future of the real clock";
    ASSERT_TRUE(ClockTo(day, 60000)) << "the timers due by " << DayText(day) << " did not run";
    ++steps;
    last_walk_day = day;
    std::vector<Patient*> due;
    for (auto& p : patients) {
      if (p.action == day) due.push_back(&p);
    }
    ParallelFor(due.size(), 4, [&](size_t k) {
      Patient& p = *due[k];
      const Call& call = p.calls[p.next];
      bool reached = p.rng() % 1000 < 800;
      bool injection = reached && call.code == "injection-reminder";
      std::string body = R"({"resourceType":"Parameters","parameter":[{"name":"reached","valueBoolean":)" +
                         std::string(reached ? "true" : "false") + R"(},{"name":"task","valueReference":{"reference":"Task/)" + call.task +
                         R"("}},{"name":"occurred","valueDateTime":")" + NoonOf(day) + "\"}";
      if (injection) body += R"(,{"name":"injection-date","valueDate":")" + DayText(day) + "\"}";
      body += "]}";
      ++posts;
      Response r = Http(Port(), "POST", "/EpisodeOfCare/" + p.episode + "/$contact", body);
      if (r.status != 200) {
        p.error = "$contact on " + DayText(day) + ": " + std::to_string(r.status) + " " + r.body;
        p.action = -1;
        return;
      }
      ++posts_ok;
      ++p.posts_ok;
      if (reached) {
        ++p.reached_ok;
        if (injection) {
          p.injections.push_back(day);
          ++p.next;
          p.attempts = 0;
          Schedule(p, OpenTasks(Port(), p, "injection-reminder", horizon));  // the next one, from this injection
        } else {
          ++p.next;
          p.attempts = 0;
        }
        NextAction(p, day);
      } else if (++p.attempts == 3) {
        p.unreachable = day;  // three different days: stop calling
        p.action = -1;
      } else {
        p.action = day + 1;
      }
    });
    for (const auto& p : patients) ASSERT_TRUE(p.error.empty()) << "patient " << p.index << ": " << p.error;
  }
  const double walk_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() - setup_s;

  // ---- the expected counts, from docs/follow-up.md ----
  int contacts = 0, reports = 0, unreachable = 0, lost = 0, alerts = 0;
  int last_lost = horizon;
  for (const auto& p : patients) {
    if (p.unreachable) last_lost = std::max(last_lost, AddMonths(*p.unreachable, 6));
  }
  // Past the last lost-to-follow-up date (6 months after the last unreachable declaration).
  const int end = last_lost + 3;
  for (auto& p : patients) {
    contacts += p.posts_ok;
    if (p.consent) reports += p.reached_ok;  // a report after each reached call, only with consent
    if (p.unreachable) ++unreachable;
    std::optional<int> lost_day;
    if (p.unreachable && AddMonths(*p.unreachable, 6) <= end) {
      lost_day = AddMonths(*p.unreachable, 6);  // no reached contact since: lost to follow-up
      ++lost;
    }
    if (p.drug->drug_class == "denosumab") {
      // The overdue alert 4 weeks after the injection due 6 months after the last one (the start
      // counts as the first), when no injection was recorded by then and the case is still in
      // follow-up; and the stopped-without-relay alert when the case becomes lost to follow-up.
      // (A dose-overdue timer due the day the case is lost runs first: "dose-overdue:" < "lost:".)
      int last = start;
      int overdue = AddMonths(last, 6) + 28;
      for (int d : p.injections) {
        if (overdue <= d && (!lost_day || overdue <= *lost_day)) p.alert_days.push_back(overdue);
        last = d;
        overdue = AddMonths(last, 6) + 28;
      }
      if (overdue <= end && (!lost_day || overdue <= *lost_day)) p.alert_days.push_back(overdue);
      if (lost_day) p.alert_days.push_back(*lost_day);
      alerts += static_cast<int>(p.alert_days.size());
    }
  }
  auto alerts_by = [&](int day) {
    int k = 0;
    for (const auto& p : patients) k += static_cast<int>(std::count_if(p.alert_days.begin(), p.alert_days.end(), [&](int d) { return d <= day; }));
    return k;
  };
  // Within the year (the timers' clock still on the last day of calls): only the denosumab
  // patients whose injection was not recorded 4 weeks after it was due, or who were lost.
  const int year_alerts = alerts_by(last_walk_day);
  EXPECT_EQ(Total("/Task?code=denosumab-overdue&_summary=count"), year_alerts) << "by " << DayText(last_walk_day);

  // ---- the server's counts, after its timers caught up ----
  ASSERT_TRUE(ClockTo(end, 60000)) << "the timers due by " << DayText(end) << " did not run: "
                                   << Sql("SELECT count(*) FROM fls_timer WHERE state = 'pending' AND due_at <= timestamptz '" + NoonOf(end) + "'");
  std::cout << "[ year ] " << n << " patients, " << posts.load() << " contacts posted over " << steps << " days from "
            << DayText(start) << "; timers' clock at the end " << DayText(end) << "; expected: contacts " << contacts
            << ", reports " << reports << ", unreachable " << unreachable << ", lost " << lost << ", denosumab alerts "
            << alerts << std::endl;
  EXPECT_EQ(posts_ok.load(), posts.load());
  EXPECT_EQ(Sql("SELECT count(*) FROM fls_contact"), std::to_string(contacts));
  EXPECT_EQ(Total("/Communication?category=http://fls-server.org/fhir/CodeSystem/fls-communication|contact&_summary=count"), contacts);
  EXPECT_EQ(Total("/Communication?category=http://fls-server.org/fhir/CodeSystem/fls-communication|report-to-physician&_summary=count"),
            reports);
  EXPECT_EQ(Total("/Task?code=unreachable&_summary=count"), unreachable);
  EXPECT_EQ(Total("/Task?code=denosumab-overdue&_summary=count"), alerts);
  int lost_seen = 0;
  std::mutex mu;
  ParallelFor(patients.size(), 4, [&](size_t i) {
    const Patient& p = patients[i];
    std::string stage = Stage(Port(), p.episode);
    std::string want = p.unreachable ? "lost-to-follow-up" : "follow-up";
    int reports_of = Total("/Communication?subject=Patient/" + p.patient +
                           "&category=http://fls-server.org/fhir/CodeSystem/fls-communication|report-to-physician&_summary=count");
    int alerts_of = p.drug->drug_class == "denosumab" ? Total("/Task?patient=Patient/" + p.patient + "&code=denosumab-overdue&_summary=count") : 0;
    std::lock_guard lock(mu);
    EXPECT_EQ(alerts_of, static_cast<int>(p.alert_days.size())) << "patient " << p.index << " (" << p.drug->drug_class
                                                                << ", EpisodeOfCare/" << p.episode << ")";
    EXPECT_EQ(stage, want) << "patient " << p.index << " (" << p.drug->drug_class << ", EpisodeOfCare/" << p.episode << ")";
    EXPECT_EQ(reports_of, p.consent ? p.reached_ok : 0) << "patient " << p.index << " consent " << p.consent;
    if (stage == "lost-to-follow-up") ++lost_seen;
  });
  EXPECT_EQ(lost_seen, lost);
  const double total_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::ostringstream summary;
  summary << "[ year ] seed " << seed << ", " << n << " patients, " << posts.load() << " contacts posted over " << steps
          << " days from " << DayText(start) << ", timers' clock at the end " << DayText(end) << "; expected: contacts "
          << contacts << ", reports " << reports << ", unreachable " << unreachable << ", lost " << lost
          << ", denosumab alerts " << alerts << " (" << year_alerts << " by " << DayText(last_walk_day) << "); set-up " << setup_s << " s, walk " << walk_s << " s, total " << total_s
          << " s\n";
  std::cout << summary.str() << std::flush;
  if (!Env("FLS_YEAR_REPORT").empty()) std::ofstream(Env("FLS_YEAR_REPORT"), std::ios::app) << summary.str();
}

}  // namespace
}  // namespace fls::test
