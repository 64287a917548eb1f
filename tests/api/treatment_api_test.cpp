// The treatment decision through the real server: $recommend on a case's own data (results,
// DXA, flags), the decision recording what it followed, and a prescription pushed by the EHR
// starting the treatment.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>

#include "tests/api/fls_cases.h"
#include "tests/api/test_client.h"

namespace fls::test {
namespace {

const auto* const kEnv = ::testing::AddGlobalTestEnvironment(new SuiteServer());
int Port() { return SuiteServer::Server().port(); }
Response Get(const std::string& t) { return Http(Port(), "GET", t); }
Response Post(const std::string& t, const std::string& b) { return Http(Port(), "POST", t, b); }

std::string Part(const rapidjson::Value& param, const std::string& name) {
  for (const auto& p : param["part"].GetArray()) {
    if (name != p["name"].GetString()) continue;
    for (const char* k : {"valueCode", "valueString"}) {
      if (p.HasMember(k)) return p[k].GetString();
    }
    if (p.HasMember("valueCodeableConcept")) return p["valueCodeableConcept"]["coding"][0]["code"].GetString();
    if (p.HasMember("valueReference")) return p["valueReference"]["reference"].GetString();
    if (p.HasMember("valueQuantity")) return std::to_string(p["valueQuantity"]["value"].GetDouble());
  }
  return "";
}

// A case at treatment-decision: enrolled, the lab items given (`labs`: LOINC code -> value and
// unit), a lumbar T-score, every other item waived, the falls assessment done.
std::string CaseAtTreatmentDecision(const std::map<std::string, std::pair<std::string, std::string>>& labs,
                                    const std::string& lumbar_t_score) {
  std::string ep = HipFractureCase(Port());
  std::string patient = PatientOf(Port(), ep);
  EXPECT_EQ(Event(Port(), ep, EnrolBody(Practitioner(Port()))).status, 200);
  std::string entries;
  auto add = [&](const std::string& code, const std::string& value, const std::string& unit) {
    if (!entries.empty()) entries += ",";
    entries += R"({"resource":{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":")" +
               code + R"("}]},"subject":{"reference":"Patient/)" + patient + R"("},"effectiveDateTime":")" + Today() +
               R"(","valueQuantity":{"value":)" + value + R"(,"unit":")" + unit + R"(","system":"http://unitsofmeasure.org","code":")" +
               unit + R"("}},"request":{"method":"POST","url":"Observation"}})";
  };
  for (const auto& [code, v] : labs) add(code, v.first, v.second);
  add("38267-1", lumbar_t_score, "{T-score}");
  Response bundle = Post("/", R"({"resourceType":"Bundle","type":"transaction","entry":[)" + entries + "]}");
  EXPECT_EQ(bundle.status, 200) << bundle.body;
  auto d = Get("/ServiceRequest?patient=Patient/" + patient + "&status=active&_count=100").Json();
  for (auto* s : Entries(d)) {
    bool falls = false;
    for (const auto& c : (*s)["code"]["coding"].GetArray()) falls = falls || std::string(c["code"].GetString()) == "falls-assessment";
    if (falls) continue;
    Response w = Event(Port(), ep, R"({"resourceType":"Parameters","parameter":[{"name":"event","valueCode":"waive"},{"name":"item","valueReference":{"reference":"ServiceRequest/)" +
                                         std::string((*s)["id"].GetString()) + R"("}},{"name":"reason","valueString":"not needed for this test"}]})");
    EXPECT_EQ(w.status, 200) << w.body;
  }
  Response falls = Event(Port(), ep, R"({"resourceType":"Parameters","parameter":[{"name":"event","valueCode":"falls-assessment"},{"name":"at-risk","valueBoolean":false}]})");
  EXPECT_EQ(falls.status, 200) << falls.body;
  EXPECT_EQ(Stage(Port(), ep), "treatment-decision");
  return ep;
}

std::vector<std::string> LastLog(const std::string& ep, const char* part) {
  auto d = Get("/EpisodeOfCare/" + ep + "/$events").Json();
  std::vector<std::string> out;
  for (const auto& p : d["parameter"].GetArray()) out.push_back(Part(p, part));
  return out;
}

const std::map<std::string, std::pair<std::string, std::string>> kNormalLabs = {
    {"62238-1", {"60", "mL/min/{1.73_m2}"}}, {"1989-3", {"35", "ng/mL"}}, {"29265-6", {"2.3", "mmol/L"}}};

TEST(Treatment, AHipFractureGetsZoledronicAcidAndThePrescriptionStartsIt) {
  std::string ep = CaseAtTreatmentDecision(kNormalLabs, "-2.0");
  std::string patient = PatientOf(Port(), ep);
  Response r = Get("/EpisodeOfCare/" + ep + "/$recommend");
  ASSERT_EQ(r.status, 200) << r.body;
  auto d = r.Json();
  ASSERT_STREQ(d["resourceType"].GetString(), "Parameters");
  std::vector<std::string> recs, prerequisites, missing;
  for (const auto& p : d["parameter"].GetArray()) {
    std::string name = p["name"].GetString();
    if (name == "recommendation") {
      recs.push_back(Part(p, "drug") + " " + Part(p, "rule") + " " + Part(p, "grade") + " " + Part(p, "status"));
    }
    if (name == "prerequisite") prerequisites.push_back(Part(p, "code"));
    if (name == "missing") missing.push_back(p["valueString"].GetString());
  }
  ASSERT_FALSE(recs.empty());
  EXPECT_EQ(recs[0], "M05BA08 grio-1 A recommended");
  // A severe fracture with T -2.0 fires rule 6 too (a bisphosphonate).
  EXPECT_NE(std::find(recs.begin(), recs.end(), "M05BA grio-6 professional-agreement recommended"), recs.end());
  EXPECT_EQ(prerequisites, (std::vector<std::string>{"falls-prevention", "vitamin-d", "calcium"}));
  EXPECT_TRUE(missing.empty()) << missing[0];

  Response decide = Event(Port(), ep, R"({"resourceType":"Parameters","parameter":[{"name":"event","valueCode":"decide-treatment"},{"name":"drug","valueCodeableConcept":{"coding":[{"system":"http://www.whocc.no/atc","code":"M05BA08"}]}}]})");
  ASSERT_EQ(decide.status, 200) << decide.body;
  EXPECT_EQ(Stage(Port(), ep), "treating");
  EXPECT_NE(LastLog(ep, "note").back().find("follows grio-1"), std::string::npos) << LastLog(ep, "note").back();
  // The EHR pushes the prescription: the treatment started (source data).
  Response given = Post("/MedicationRequest", R"({"resourceType":"MedicationRequest","status":"active","intent":"order","subject":{"reference":"Patient/)" +
                                                   patient + R"("},"medicationCodeableConcept":{"coding":[{"system":"http://www.whocc.no/atc","code":"M05BA08"}]},"authoredOn":")" +
                                                   Today() + R"("})");
  ASSERT_EQ(given.status, 201) << given.body;
  EXPECT_EQ(Stage(Port(), ep), "follow-up");
  auto events = LastLog(ep, "event");
  auto sources = LastLog(ep, "source");
  EXPECT_EQ(events.back(), "treatment-started");
  EXPECT_EQ(sources.back(), "data");
  auto tasks = Get("/Task?patient=Patient/" + patient + "&code=start-treatment").Json();
  auto t = Entries(tasks);
  ASSERT_EQ(t.size(), 1u);
  EXPECT_STREQ((*t[0])["status"].GetString(), "completed");
}

TEST(Treatment, ClearanceBelow35GetsDenosumabAndADepartureIsRecorded) {
  auto labs = kNormalLabs;
  labs["62238-1"] = {"30", "mL/min/{1.73_m2}"};
  std::string ep = CaseAtTreatmentDecision(labs, "-2.0");
  auto d = Get("/EpisodeOfCare/" + ep + "/$recommend").Json();
  std::string first, zoledronic;
  std::vector<std::string> flags;
  for (const auto& p : d["parameter"].GetArray()) {
    std::string name = p["name"].GetString();
    if (name == "recommendation") {
      if (first.empty() && Part(p, "status") == "recommended") first = Part(p, "drug") + " " + Part(p, "rule");
      if (Part(p, "drug") == "M05BA08" && Part(p, "rule") == "grio-1") zoledronic = Part(p, "status");
    }
    if (name == "flag") flags.push_back(Part(p, "code") + " " + Part(p, "value") + " " + Part(p, "threshold"));
  }
  EXPECT_EQ(first, "M05BX04 grio-1");
  EXPECT_EQ(zoledronic, "contraindicated");
  ASSERT_EQ(flags.size(), 1u);
  EXPECT_EQ(flags[0], "renal-impairment 30.000000 35.000000");
  // The physician chooses an oral bisphosphonate anyway: recorded as a departure.
  Response decide = Event(Port(), ep, R"({"resourceType":"Parameters","parameter":[{"name":"event","valueCode":"decide-treatment"},{"name":"drug","valueCodeableConcept":{"coding":[{"system":"http://www.whocc.no/atc","code":"M05BA04"}]}}]})");
  ASSERT_EQ(decide.status, 200) << decide.body;
  EXPECT_NE(LastLog(ep, "note").back().find("departs from the recommendation (first recommended: M05BX04"), std::string::npos)
      << LastLog(ep, "note").back();
}

TEST(Treatment, MissingDataIsSaidAndAnUnknownCaseIs404) {
  std::string ep = HipFractureCase(Port());
  auto d = Get("/EpisodeOfCare/" + ep + "/$recommend").Json();
  std::set<std::string> missing;
  std::string first;
  for (const auto& p : d["parameter"].GetArray()) {
    std::string name = p["name"].GetString();
    if (name == "missing") missing.insert(p["valueString"].GetString());
    if (name == "recommendation" && first.empty()) first = Part(p, "drug") + " " + Part(p, "rule");
  }
  EXPECT_EQ(first, "M05BA08 grio-1") << "a hip fracture needs no DXA for rule 1";
  EXPECT_TRUE(missing.count("a T-score (DXA) (grio-5)"));
  bool renal = false;
  for (const auto& m : missing) renal = renal || m.find("renal clearance") != std::string::npos;
  EXPECT_TRUE(renal) << "the contraindication check that could not be made is said";
  Response unknown = Get("/EpisodeOfCare/no-such-case/$recommend");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_STREQ(unknown.Json()["resourceType"].GetString(), "OperationOutcome");
}

// A result is matched by its own code even when its basedOn names another order; a newer
// normal result retires the flags an earlier one raised; a prescription of another drug while in
// follow-up changes nothing by itself.
TEST(Treatment, ResultsMatchTheirCodeFlagsRetireAndFollowUpIsNotSwitchedByData) {
  std::string ep = HipFractureCase(Port());
  std::string patient = PatientOf(Port(), ep);
  ASSERT_EQ(Event(Port(), ep, EnrolBody(Practitioner(Port()))).status, 200);
  std::map<std::string, std::string> order;  // item -> ServiceRequest id
  auto srs = Get("/ServiceRequest?patient=Patient/" + patient + "&_count=100").Json();
  for (auto* s : Entries(srs)) {
    for (const auto& c : (*s)["code"]["coding"].GetArray()) {
      if (std::string(c["system"].GetString()).find("fls-investigation") != std::string::npos) order[c["code"].GetString()] = (*s)["id"].GetString();
    }
  }
  auto observe = [&](const std::string& code, const std::string& value, const std::string& unit, const std::string& based_on) {
    std::string b = based_on.empty() ? "" : R"(,"basedOn":[{"reference":"ServiceRequest/)" + based_on + R"("}])";
    Response r = Post("/Observation", R"({"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":")" + code +
                                          R"("}]},"subject":{"reference":"Patient/)" + patient + R"("},"effectiveDateTime":")" + Today() +
                                          R"(","valueQuantity":{"value":)" + value + R"(,"unit":")" + unit + R"(","system":"http://unitsofmeasure.org","code":")" +
                                          unit + "\"}" + b + "}");
    EXPECT_EQ(r.status, 201) << r.body;
  };
  auto status = [&](const std::string& item) { return std::string(Get("/ServiceRequest/" + order[item]).Json()["status"].GetString()); };
  auto active_flags = [&] {
    std::set<std::string> out;
    auto d = Get("/Flag?patient=Patient/" + patient).Json();
    for (auto* f : Entries(d)) {
      if (std::string((*f)["status"].GetString()) == "active") out.insert((*f)["code"]["coding"][0]["code"].GetString());
    }
    return out;
  };
  // A creatinine of 1.1 mg/dL sent with basedOn the calcium order: it is a creatinine.
  observe("2160-0", "1.1", "mg/dL", order["calcium-corrected"]);
  EXPECT_EQ(status("calcium-corrected"), "active");
  EXPECT_EQ(status("creatinine"), "completed");
  EXPECT_TRUE(active_flags().empty()) << "no hypocalcaemia from a creatinine";
  // Vitamin D 8 ng/mL, then 40 after supplementation.
  observe("1989-3", "8", "ng/mL", "");
  EXPECT_EQ(active_flags(), (std::set<std::string>{"vitamin-d-severe-deficiency", "vitamin-d-insufficiency"}));
  observe("1989-3", "40", "ng/mL", "");
  EXPECT_TRUE(active_flags().empty()) << "the corrected vitamin D retires both flags";
  // Follow-up on zoledronic acid; an estradiol prescription pushed later switches nothing.
  for (const auto& [item, id] : order) {
    if (status(item) != "active") continue;
    Event(Port(), ep, R"({"resourceType":"Parameters","parameter":[{"name":"event","valueCode":"waive"},{"name":"item","valueReference":{"reference":"ServiceRequest/)" +
                           id + R"("}},{"name":"reason","valueString":"test"}]})");
  }
  ASSERT_EQ(Stage(Port(), ep), "treatment-decision");
  ASSERT_EQ(Event(Port(), ep, DrugEvent("decide-treatment", "M05BA08")).status, 200);
  ASSERT_EQ(Event(Port(), ep, DrugEvent("treatment-started", "M05BA08")).status, 200);
  size_t rows = LastLog(ep, "event").size();
  Response hrt = Post("/MedicationRequest", R"({"resourceType":"MedicationRequest","status":"active","intent":"order","subject":{"reference":"Patient/)" + patient +
                                                R"("},"medicationCodeableConcept":{"coding":[{"system":"http://www.whocc.no/atc","code":"G03CA03"}]},"authoredOn":")" + Today() + R"("})");
  ASSERT_EQ(hrt.status, 201) << hrt.body;
  EXPECT_EQ(LastLog(ep, "event").size(), rows) << "no treatment-started inferred in follow-up";
  EXPECT_EQ(Sql("SELECT current_drug FROM fls_case WHERE episode_id = '" + ep + "'"), "M05BA08");
}

// The FLS operations are discoverable: listed in the CapabilityStatement with their
// OperationDefinitions, which are valid R4 (a PUT of each back is accepted by the validator).
TEST(Operations, TheCapabilityStatementListsEachWithItsDefinition) {
  auto cap = Get("/metadata").Json();
  std::set<std::string> on_case, system;
  for (const auto& r : cap["rest"][0]["resource"].GetArray()) {
    if (std::string(r["type"].GetString()) != "EpisodeOfCare" || !r.HasMember("operation")) continue;
    for (const auto& op : r["operation"].GetArray()) on_case.insert(op["name"].GetString());
  }
  if (cap["rest"][0].HasMember("operation")) {
    for (const auto& op : cap["rest"][0]["operation"].GetArray()) system.insert(op["name"].GetString());
  }
  EXPECT_EQ(on_case, (std::set<std::string>{"accompany", "contact", "event", "events", "recommend"}));
  EXPECT_EQ(system, (std::set<std::string>{"call-list", "fls-extract", "fls-dashboard", "fls-projection", "export"}));
  for (const std::string code : {"event", "events", "recommend", "contact", "accompany", "call-list", "fls-extract", "fls-dashboard",
                                 "fls-projection"}) {
    const std::string id = code.rfind("fls-", 0) == 0 ? code : "fls-" + code;
    Response r = Get("/OperationDefinition/" + id);
    ASSERT_EQ(r.status, 200) << code;
    auto d = r.Json();
    EXPECT_EQ(std::string(d["code"].GetString()), code);
    EXPECT_EQ(std::string(d["url"].GetString()), "http://fls-server.org/fhir/OperationDefinition/" + id);
    EXPECT_EQ(std::string(d["name"].GetString()).find('-'), std::string::npos) << d["name"].GetString();
    Response back = Http(Port(), "PUT", "/OperationDefinition/" + id, r.body);
    EXPECT_EQ(back.status, 200) << code << ": " << back.body;
  }
  auto event = Get("/OperationDefinition/fls-event").Json();
  EXPECT_STREQ(event["parameter"][0]["name"].GetString(), "event");
  EXPECT_EQ(event["parameter"][0]["min"].GetInt(), 1);
}

}  // namespace
}  // namespace fls::test
