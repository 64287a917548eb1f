#include "fhir/indexer.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "tests/support/fhir_fixture.h"

namespace fls::fhir {
namespace {

struct Fixture {
  const SearchParamRegistry& registry = test::TestRegistry();
  Indexer indexer{registry};
};

Fixture& F() {
  static Fixture f;
  return f;
}

db::IndexRows Extract(const std::string& type, const std::string& json) {
  return F().indexer.Extract(type, ParseJson(json));
}

template <typename Rows, typename Pred>
bool Has(const Rows& rows, Pred pred) {
  return std::any_of(rows.begin(), rows.end(), pred);
}

TEST(Indexer, PatientTokensStringsAndDates) {
  auto rows = Extract("Patient", R"({"resourceType":"Patient","identifier":[{"system":"urn:oid:1.2.250.1.213.1.4.8","value":"123"}],
      "name":[{"family":"Lefèvre-Dupont","given":["Hélène"]}],"gender":"female","birthDate":"1950-03-04","active":true,
      "meta":{"tag":[{"system":"s","code":"t"}]}})");
  EXPECT_TRUE(Has(rows.tokens, [](auto& t) { return t.param == "identifier" && t.system == "urn:oid:1.2.250.1.213.1.4.8" && t.code == "123"; }));
  EXPECT_TRUE(Has(rows.tokens, [](auto& t) { return t.param == "gender" && !t.system && t.code == "female"; }));
  EXPECT_TRUE(Has(rows.tokens, [](auto& t) { return t.param == "active" && t.code == "true"; }));
  EXPECT_TRUE(Has(rows.tokens, [](auto& t) { return t.param == "_tag" && t.system == "s" && t.code == "t"; }));
  EXPECT_TRUE(Has(rows.strings, [](auto& s) { return s.param == "family" && s.norm == "lefevre-dupont" && s.exact == "Lefèvre-Dupont"; }));
  EXPECT_FALSE(Has(rows.strings, [](auto& s) { return s.norm == "dupont"; })) << "the whole value, not each word";
  EXPECT_FALSE(Has(rows.tokens, [](auto& t) { return t.param == "deceased"; })) << "no deceased[x]: no token";
  for (const auto& [deceased, token] : std::vector<std::pair<std::string, std::string>>{
           {R"("deceasedBoolean":true)", "true"}, {R"("deceasedBoolean":false)", "false"},
           {R"("deceasedDateTime":"2024-01-05")", "true"}, {R"("deceasedDateTime":"2024-01-05T10:00:00+01:00")", "true"}}) {
    auto d = Extract("Patient", R"({"resourceType":"Patient",)" + deceased + "}");
    EXPECT_TRUE(Has(d.tokens, [&](auto& t) { return t.param == "deceased" && t.code == token; })) << deceased;
    EXPECT_EQ(std::count_if(d.tokens.begin(), d.tokens.end(), [](auto& t) { return t.param == "deceased"; }), 1) << deceased;
  }
  EXPECT_TRUE(Has(rows.strings, [](auto& s) { return s.param == "name" && s.norm == "helene"; }));
  EXPECT_TRUE(Has(rows.strings, [](auto& s) { return s.param == "given" && s.norm == "helene"; }));
  EXPECT_TRUE(Has(rows.dates, [](auto& d) {
    return d.param == "birthdate" && d.lo == "1950-03-04T00:00:00.000000Z" && d.hi == "1950-03-05T00:00:00.000000Z";
  }));
}

TEST(Indexer, ChoiceTypesPeriodsReferencesAndQuantities) {
  auto cond = Extract("Condition", R"({"resourceType":"Condition","subject":{"reference":"Patient/p1"},
      "encounter":{"reference":"http://other.example/fhir/Encounter/e1/_history/2"},
      "code":{"coding":[{"system":"http://hl7.org/fhir/sid/icd-10-cm","code":"S72.001A"},{"system":"http://snomed.info/sct","code":"359817006"}]},
      "onsetPeriod":{"start":"2024-03-01"}})");
  EXPECT_TRUE(Has(cond.references, [](auto& r) { return r.param == "patient" && r.target_type == "Patient" && r.target_id == "p1"; }));
  EXPECT_TRUE(Has(cond.references, [](auto& r) { return r.param == "subject" && r.target_id == "p1"; }));
  EXPECT_TRUE(Has(cond.references, [](auto& r) {
    return r.param == "encounter" && r.target_type == "Encounter" && r.target_id == "http://other.example/fhir/Encounter/e1";
  })) << "another server's Encounter is not the local Encounter/e1";
  EXPECT_EQ(std::count_if(cond.tokens.begin(), cond.tokens.end(), [](auto& t) { return t.param == "code"; }), 2);
  EXPECT_TRUE(Has(cond.dates, [](auto& d) { return d.param == "onset-date" && d.lo == "2024-03-01T00:00:00.000000Z" && d.hi == "infinity"; }));

  auto grp = Extract("Condition", R"({"resourceType":"Condition","subject":{"reference":"Group/g1"}})");
  EXPECT_FALSE(Has(grp.references, [](auto& r) { return r.param == "patient"; })) << "patient only takes Patient targets";
  EXPECT_TRUE(Has(grp.references, [](auto& r) { return r.param == "subject" && r.target_type == "Group"; }));

  auto obs = Extract("Observation", R"({"resourceType":"Observation","status":"final","code":{"text":"x"},
      "valueQuantity":{"value":18.50,"unit":"ng/mL","system":"http://unitsofmeasure.org","code":"ng/mL"},
      "effectiveDateTime":"2024-03-02T08:30:00Z","basedOn":[{"reference":"ServiceRequest/s1"}],"subject":{"reference":"#contained"}})");
  EXPECT_TRUE(Has(obs.quantities, [](auto& q) { return q.param == "value-quantity" && q.value == "18.50" && q.code == "ng/mL"; }));
  EXPECT_TRUE(Has(obs.dates, [](auto& d) { return d.param == "date" && d.lo == "2024-03-02T08:30:00.000000Z"; }));
  EXPECT_TRUE(Has(obs.references, [](auto& r) { return r.param == "based-on" && r.target_type == "ServiceRequest"; }));
  EXPECT_FALSE(Has(obs.references, [](auto& r) { return r.param == "subject"; })) << "contained references are not indexed";

  auto task = Extract("Task", R"({"resourceType":"Task","status":"requested","intent":"order","restriction":{"period":{"end":"2024-03-15"}}})");
  // The due date is `due` (a day); R4's `period` is executionPeriod only.
  EXPECT_TRUE(Has(task.dates, [](auto& d) {
    return d.param == "due" && d.lo == "2024-03-15T00:00:00.000000Z" && d.hi == "2024-03-16T00:00:00.000000Z";
  }));
  EXPECT_FALSE(Has(task.dates, [](auto& d) { return d.param == "period"; }));
}

TEST(Indexer, ParseReference) {
  struct Row {
    const char* in;
    std::optional<std::string> type;
    std::string id;
  };
  const Row rows[] = {
      {"Patient/1", "Patient", "1"},
      {"Patient/1/_history/3", "Patient", "1"},
      {"http://x.org/fhir/Patient/abc", "Patient", "http://x.org/fhir/Patient/abc"},
      {"http://x.org/fhir/Patient/abc/_history/2", "Patient", "http://x.org/fhir/Patient/abc"},
      {"urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a", std::nullopt, "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"},
      {"http://x.org/some/page", std::nullopt, "http://x.org/some/page"},
      {"patient/1", std::nullopt, "patient/1"},
  };
  for (const auto& r : rows) {
    auto p = ParseReference(r.in);
    ASSERT_TRUE(p) << r.in;
    EXPECT_EQ(p->type, r.type) << r.in;
    EXPECT_EQ(p->id, r.id) << r.in;
  }
  EXPECT_FALSE(ParseReference("#c1"));
  EXPECT_FALSE(ParseReference(""));
}

TEST(Indexer, EveryRequiredSearchParameterIsRegistered) {
  const std::pair<const char*, std::vector<const char*>> required[] = {
      {"Patient", {"identifier", "name", "family", "given", "birthdate", "gender"}},
      {"Encounter", {"patient", "subject", "date", "status", "class", "identifier"}},
      {"Condition", {"patient", "subject", "code", "onset-date", "encounter", "clinical-status", "verification-status"}},
      {"Observation", {"patient", "subject", "code", "date", "category", "based-on", "value-quantity"}},
      {"Procedure", {"patient", "code", "date"}},
      {"MedicationRequest", {"patient", "code", "status", "authoredon", "intent"}},
      {"MedicationDispense", {"patient", "code", "status"}},
      {"MedicationStatement", {"patient", "code", "status"}},
      {"ServiceRequest", {"patient", "code", "status", "based-on"}},
      {"Task", {"status", "owner", "patient", "focus", "code", "period", "due", "business-status"}},
      {"EpisodeOfCare", {"patient", "status", "organization", "date", "type"}},
      {"CarePlan", {"patient", "status", "category"}},
      {"Communication", {"patient", "recipient", "sent"}},
      {"Consent", {"patient", "status"}},
      {"Organization", {"identifier", "name"}},
      {"Practitioner", {"identifier", "name"}},
      {"Claim", {"_id", "_lastUpdated"}},
  };
  for (const auto& [type, names] : required) {
    for (const char* n : names) EXPECT_NE(F().registry.Find(type, n), nullptr) << type << "." << n;
  }
}

}  // namespace
}  // namespace fls::fhir
