#include "fhir/schema_validator.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "tests/support/fhir_fixture.h"
#include <fstream>
#include <sstream>

namespace fls::fhir {
namespace {

const SchemaValidator& Schema() { return test::TestSchema(); }

std::vector<Issue> Check(const std::string& json) { return Schema().Validate(ParseJson(json)); }

TEST(SchemaValidator, KnowsEveryR4ResourceType) {
  EXPECT_EQ(Schema().ResourceTypes().size(), 146u);
  for (const char* t : {"Patient", "Claim", "ImagingStudy", "EpisodeOfCare", "MeasureReport", "Bundle"}) {
    EXPECT_TRUE(Schema().IsResourceType(t)) << t;
  }
  EXPECT_FALSE(Schema().IsResourceType("Patientx"));
  EXPECT_FALSE(Schema().IsResourceType("Element"));
  EXPECT_TRUE(Schema().HasElement("Goal", "description"));
  EXPECT_TRUE(Schema().HasElement("Patient", "identifier"));
  EXPECT_FALSE(Schema().HasElement("Patient", "shoeSize"));
  EXPECT_FALSE(Schema().HasElement("Nope", "identifier"));
}

TEST(SchemaValidator, AcceptsValidResources) {
  const char* valid[] = {
      R"({"resourceType":"Patient","id":"a1","birthDate":"1950-03-04","gender":"female","active":true,
          "name":[{"family":"Dupré","given":["Hélène",null]}],"_active":{"extension":[{"url":"x","valueBoolean":true}]}})",
      R"({"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1.50},
          "effectiveDateTime":"2024-03-01T10:00:00+01:00","issued":"2024-03-01T10:00:00.123Z"})",
      R"({"resourceType":"Condition","subject":{"reference":"Patient/1"},"onsetDateTime":"2024","recordedDate":"2024-03"})",
      R"({"resourceType":"CapabilityStatement","status":"active","date":"2024","kind":"instance","fhirVersion":"4.0.1","format":["json"]})",
      R"({"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}}]})",
  };
  for (const char* json : valid) {
    auto issues = Check(json);
    EXPECT_TRUE(issues.empty()) << json << "\n" << (issues.empty() ? "" : issues[0].diagnostics);
  }
}

TEST(SchemaValidator, RefusesEachKindOfError) {
  struct Row {
    const char* json;
    const char* expression;
  };
  const Row rows[] = {
      {R"({"resourceType":"Patient","birthDate":19500304})", "Patient.birthDate"},
      {R"({"resourceType":"Patient","birthDate":"1950-02-30"})", "Patient.birthDate"},
      {R"({"resourceType":"Patient","birthDate":"1950-03-04T10:00:00Z"})", "Patient.birthDate"},
      {R"({"resourceType":"Patient","gender":"lady"})", "Patient.gender"},
      {R"({"resourceType":"Patient","active":"true"})", "Patient.active"},
      {R"({"resourceType":"Patient","name":{"family":"x"}})", "Patient.name"},
      {R"({"resourceType":"Patient","name":[]})", "Patient.name"},
      {R"({"resourceType":"Patient","name":[{"family":""}]})", "Patient.name[0].family"},
      {R"({"resourceType":"Patient","shoeSize":42})", "Patient.shoeSize"},
      {R"({"resourceType":"Patient","id":"bad id"})", "Patient.id"},
      {R"({"resourceType":"Patient","multipleBirthInteger":1.5})", "Patient.multipleBirthInteger"},
      {R"({"resourceType":"Patient","active":null})", "Patient.active"},
      {R"({"resourceType":"Patient","deceasedDateTime":"yesterday"})", "Patient.deceasedDateTime"},
      {R"({"resourceType":"Patient","deceasedBoolean":"no"})", "Patient.deceasedBoolean"},
      {R"({"resourceType":"Condition","subject":{"reference":"Patient/1"},"onsetDateTime":"2024-02-30"})", "Condition.onsetDateTime"},
      {R"({"resourceType":"Observation","status":"final","code":{"text":"x"},"effectiveDateTime":"2024-03-01T10:00:00"})", "Observation.effectiveDateTime"},
      {R"({"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":"1.5"}})", "Observation.valueQuantity.value"},
      {R"({"resourceType":"Observation","status":"final","code":{"coding":[{"code":" x"}]}})", "Observation.code.coding[0].code"},
      {R"({"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Patient","gender":1}}]})", "Bundle.entry[0].resource.gender"},
      {R"({"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Nope"}}]})", "Bundle.entry[0].resource.resourceType"},
      {R"({"resourceType":"Patient","contained":[{"resourceType":"Practitioner","active":"x"}]})", "Patient.contained[0].active"},
  };
  for (const auto& r : rows) {
    auto issues = Check(r.json);
    ASSERT_FALSE(issues.empty()) << r.json;
    bool found = false;
    for (const auto& i : issues) found = found || i.expression == r.expression;
    EXPECT_TRUE(found) << r.json << " -> " << issues[0].expression << ": " << issues[0].diagnostics;
  }
}

TEST(SchemaValidator, StopsAfterFiftyIssues) {
  std::string many = R"({"resourceType":"Patient")";
  for (int i = 0; i < 200; ++i) many += ",\"bad" + std::to_string(i) + "\":1";
  many += "}";
  EXPECT_EQ(Check(many).size(), 50u);
}

TEST(SchemaValidator, EveryShippedTestResourceValidates) {
  namespace fs = std::filesystem;
  std::string dir = std::string(FLS_SOURCE_DIR) + "/../shared/testdata";
  if (const char* d = std::getenv("FLS_SHARED_DIR")) dir = std::string(d) + "/testdata";
  int files = 0;
  for (const char* sub : {"/synthea-r4-transaction", "/fhir-r4-official-examples"}) {
    for (const auto& e : fs::directory_iterator(dir + sub)) {
      std::ifstream in(e.path());
      std::stringstream ss;
      ss << in.rdbuf();
      auto issues = Schema().Validate(ParseJson(ss.str()));
      EXPECT_TRUE(issues.empty()) << e.path() << ": " << (issues.empty() ? "" : issues[0].diagnostics);
      ++files;
    }
  }
  EXPECT_EQ(files, 33 + 16);
}

}  // namespace
}  // namespace fls::fhir
