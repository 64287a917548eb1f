#pragma once
// Helpers of the black-box suites that drive FLS cases: a hip fracture pushed, the case's
// patient and stage, $event bodies. Header-only; every call is one real HTTP request.

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <random>
#include <string>
#include <vector>

#include "tests/api/test_client.h"

namespace fls::test {

inline std::string Unique() {
  static std::mt19937_64 rng{std::random_device{}()};
  return std::to_string(rng() % 1000000000000ULL);
}

// The suites count days as the server does, in the site's zone (FLS_TIMEZONE's default,
// Europe/Paris), set once before main: a test run near midnight UTC would otherwise date its
// data a day apart from the server.
inline const bool kSiteZoneSet = [] {
  setenv("TZ", "Europe/Paris", 1);
  tzset();
  return true;
}();

inline std::string Today() {
  time_t now = time(nullptr);
  tm g;
  localtime_r(&now, &g);
  char buf[16];
  strftime(buf, sizeof buf, "%Y-%m-%d", &g);
  return buf;
}

// A day (YYYY-MM-DD) plus `days`, computed apart from the server (std::chrono).
inline std::string PlusDays(const std::string& text, int days) {
  using namespace std::chrono;
  sys_days d = sys_days{year{std::stoi(text.substr(0, 4))} / std::stoi(text.substr(5, 2)) / std::stoi(text.substr(8, 2))} + std::chrono::days{days};
  year_month_day ymd{d};
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02u", static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                static_cast<unsigned>(ymd.day()));
  return buf;
}

// Whole days from `a` to `b` (YYYY-MM-DD).
inline int DaysBetween(const std::string& a, const std::string& b) {
  using namespace std::chrono;
  auto parse = [](const std::string& t) {
    return sys_days{year{std::stoi(t.substr(0, 4))} / std::stoi(t.substr(5, 2)) / std::stoi(t.substr(8, 2))};
  };
  return static_cast<int>((parse(b) - parse(a)).count());
}

inline std::string Id(const Response& r) {
  auto d = r.Json();
  return d.IsObject() && d.HasMember("id") ? d["id"].GetString() : "";
}

inline std::vector<rapidjson::Value*> Entries(rapidjson::Document& d) {
  std::vector<rapidjson::Value*> out;
  if (!d.IsObject() || !d.HasMember("entry")) return out;
  for (auto& e : d["entry"].GetArray()) out.push_back(&e["resource"]);
  return out;
}

// A patient (a woman born 1941-03-04 unless told) with a hip fracture today: the case it opens
// (stage identified). `extra_condition`: the members of a second Condition pushed after it.
inline std::string HipFractureCase(int port, const std::string& extra_condition = "",
                                   const std::string& gender = "female", const std::string& birth = "1941-03-04",
                                   const std::string& onset = Today()) {
  Response p = Http(port, "POST", "/Patient",
                    R"({"resourceType":"Patient","gender":")" + gender + R"(","birthDate":")" + birth +
                        R"(","identifier":[{"system":"urn:test","value":")" + Unique() + R"("}]})");
  std::string patient = Id(p);
  Http(port, "POST", "/Condition",
       R"({"resourceType":"Condition","subject":{"reference":"Patient/)" + patient +
           R"("},"code":{"coding":[{"system":"http://hl7.org/fhir/sid/icd-10-cm","code":"S72.001A"}]},"onsetDateTime":")" +
           onset + R"("})");
  if (!extra_condition.empty()) {
    Http(port, "POST", "/Condition",
         R"({"resourceType":"Condition","subject":{"reference":"Patient/)" + patient + "\"}," + extra_condition + "}");
  }
  auto d = Http(port, "GET", "/EpisodeOfCare?patient=Patient/" + patient).Json();
  auto e = Entries(d);
  return e.empty() ? "" : (*e[0])["id"].GetString();
}

inline std::string PatientOf(int port, const std::string& episode) {
  auto d = Http(port, "GET", "/EpisodeOfCare/" + episode).Json();
  std::string ref = d["patient"]["reference"].GetString();
  return ref.substr(ref.find('/') + 1);
}

inline std::string Practitioner(int port) {
  return Id(Http(port, "POST", "/Practitioner", R"({"resourceType":"Practitioner","name":[{"family":"Martin"}]})"));
}

inline std::string EnrolBody(const std::string& doctor) {
  return R"({"resourceType":"Parameters","parameter":[{"name":"event","valueCode":"enrol"},
    {"name":"consent-programme","valueBoolean":true},{"name":"consent-report","valueBoolean":true},
    {"name":"phone","valueString":"+33 6 00 00 00 00"},
    {"name":"referring-physician","valueReference":{"reference":"Practitioner/)" + doctor + R"("}}]})";
}

inline Response Event(int port, const std::string& episode, const std::string& body) {
  return Http(port, "POST", "/EpisodeOfCare/" + episode + "/$event", body);
}

inline std::string Stage(int port, const std::string& episode) {
  auto d = Http(port, "GET", "/EpisodeOfCare/" + episode).Json();
  for (const auto& x : d["extension"].GetArray()) {
    if (std::string(x["url"].GetString()).find("pathway-stage") != std::string::npos) return x["valueCode"].GetString();
  }
  return "";
}

// Enrols the case and waives every item of its panel: the case reaches treatment-decision.
inline bool EnrolAndWaiveAll(int port, const std::string& episode, const std::string& occurred = "") {
  std::string when = occurred.empty() ? "" : R"(,{"name":"occurred","valueDateTime":")" + occurred + R"("})";
  std::string enrol = EnrolBody(Practitioner(port));
  enrol.insert(enrol.rfind(']'), when);
  if (Event(port, episode, enrol).status != 200) return false;
  auto d = Http(port, "GET", "/ServiceRequest?patient=Patient/" + PatientOf(port, episode) + "&status=active&_count=100").Json();
  for (auto* s : Entries(d)) {
    std::string body = R"({"resourceType":"Parameters","parameter":[{"name":"event","valueCode":"waive"},{"name":"item","valueReference":{"reference":"ServiceRequest/)" +
                       std::string((*s)["id"].GetString()) + R"("}},{"name":"reason","valueString":"not needed for this test"})" + when + "]}";
    if (Event(port, episode, body).status != 200) return false;
  }
  return Stage(port, episode) == "treatment-decision";
}

// A drug event (decide-treatment, treatment-started) with an ATC code and an optional date.
inline std::string DrugEvent(const std::string& event, const std::string& atc, const std::string& occurred = "") {
  std::string when = occurred.empty() ? "" : R"(,{"name":"occurred","valueDateTime":")" + occurred + R"("})";
  return R"({"resourceType":"Parameters","parameter":[{"name":"event","valueCode":")" + event +
         R"("},{"name":"drug","valueCodeableConcept":{"coding":[{"system":"http://www.whocc.no/atc","code":")" + atc + R"("}]}})" +
         when + "]}";
}

}  // namespace fls::test
