#include "fhir/json.h"

#include <gtest/gtest.h>

#include "fhir/error.h"

namespace fls::fhir {
namespace {

TEST(Json, DecimalsKeepTheirPrecision) {
  struct Row {
    const char* in;
    const char* out;
  };
  const Row rows[] = {
      {R"({"v":1.50})", R"({"v":1.50})"},
      {R"({"v":0.000})", R"({"v":0.000})"},
      {R"({"v":-12})", R"({"v":-12})"},
      {R"({"v":1e-3})", R"({"v":1e-3})"},
      {R"({"v":12345678901234567890.123456789})", R"({"v":12345678901234567890.123456789})"},
      {R"({"a":[1,2.0,{"b":true,"c":null}],"s":"é"})", R"({"a":[1,2.0,{"b":true,"c":null}],"s":"é"})"},
  };
  for (const auto& r : rows) {
    EXPECT_EQ(Serialize(ParseJson(r.in)), r.out) << r.in;
  }
}

TEST(Json, NumbersAreReadableAsNumbers) {
  auto d = ParseJson(R"({"n":18.50,"s":"18.50"})");
  EXPECT_TRUE(IsNumber(d["n"]));
  EXPECT_EQ(*NumberText(d["n"]), "18.50");
  EXPECT_FALSE(IsNumber(d["s"]));
  EXPECT_TRUE(IsPlainString(d["s"]));
  EXPECT_FALSE(IsPlainString(d["n"]));
}

TEST(Json, RefusesBadInputWith400) {
  struct Row {
    std::string name, text;
  };
  std::string deep = std::string(65, '[') + std::string(65, ']');
  const Row rows[] = {
      {"truncated", R"({"a":)"},
      {"trailing garbage", R"({"a":1} x)"},
      {"empty", ""},
      {"invalid UTF-8", "{\"a\":\"\xC3\x28\"}"},
      {"overlong UTF-8", "{\"a\":\"\xC0\xAF\"}"},
      {"surrogate in UTF-8", "{\"a\":\"\xED\xA0\x80\"}"},
      {"too deep", deep},
      {"U+0001 in a string", "{\"a\":\"\\u0001x\"}"},
      {"single quotes", "{'a':1}"},
      {"duplicate member", R"({"id":"x","id":"spoof"})"},
      {"duplicate nested member", R"({"meta":{"versionId":"1","versionId":"99"}})"},
  };
  for (const auto& r : rows) {
    try {
      ParseJson(r.text);
      ADD_FAILURE() << r.name << " was accepted";
    } catch (const FhirError& e) {
      EXPECT_EQ(e.code(), ErrorCode::kBadRequest) << r.name;
      EXPECT_FALSE(e.issues().empty());
    }
  }
}

TEST(Json, DepthLimitIsExactAndSurvivesHugeNesting) {
  std::string at_limit = std::string(64, '[') + std::string(64, ']');
  EXPECT_NO_THROW(ParseJson(at_limit));
  std::string huge = std::string(1000000, '[');
  EXPECT_THROW(ParseJson(huge), FhirError);
  JsonLimits tight{3};
  EXPECT_NO_THROW(ParseJson("[[[1]]]", tight));
  EXPECT_THROW(ParseJson("[[[[1]]]]", tight), FhirError);
}

TEST(Json, SetMemberReplacesInPlaceAndRemoveKeepsOrder) {
  auto d = ParseJson(R"({"a":1,"b":2,"c":3})");
  SetMember(d, "b", MakeString("x", d.GetAllocator()), d.GetAllocator());
  RemoveMember(d, "a");
  SetMember(d, "z", MakeNumber("4.0", d.GetAllocator()), d.GetAllocator());
  EXPECT_EQ(Serialize(d), R"({"b":"x","c":3,"z":4.0})");
}

}  // namespace
}  // namespace fls::fhir
