#include "fhir/json.h"

#include <gtest/gtest.h>

#include "fhir/error.h"
#include "fhir/text.h"

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

// The diagnostics of a refusal: one issue, naming the problem, valid UTF-8 that does not echo the
// invalid bytes (a UTF-8-encoded surrogate starts with 0xED; U+0000 is a NUL byte).
std::string Refusal(const std::string& text) {
  try {
    ParseJson(text);
  } catch (const FhirError& e) {
    EXPECT_EQ(e.code(), ErrorCode::kBadRequest) << text;
    EXPECT_EQ(e.issues().size(), 1u) << text;
    std::string d = e.issues().empty() ? "" : e.issues()[0].diagnostics;
    EXPECT_TRUE(IsValidUtf8(d)) << text;
    EXPECT_EQ(d.find('\xED'), std::string::npos) << text;
    EXPECT_EQ(d.find('\0'), std::string::npos) << text;
    return d;
  }
  ADD_FAILURE() << text << " was accepted";
  return "";
}

TEST(Json, LoneSurrogatesAndNulAreRefusedWithoutEchoingThem) {
  struct Row {
    const char* name;
    std::string text;
    const char* says;  // in the diagnostics
  };
  const Row rows[] = {
      {"lone low surrogate", R"({"a":"\udc00"})", "surrogate"},
      {"lone low surrogate, upper case", R"({"a":"x\uDFFFy"})", "surrogate"},
      {"lone high surrogate then text", R"({"a":"\ud800x"})", "surrogate"},
      {"lone high surrogate at the end", R"({"a":"\ud800"})", "surrogate"},
      {"high surrogate then a non-surrogate escape", R"({"a":"\ud800\u0041"})", "surrogate"},
      {"two high surrogates", R"({"a":"\ud83d\ud83d"})", "surrogate"},
      {"a pair in the wrong order", R"({"a":"\ude00\ud83d"})", "surrogate"},
      {"lone surrogate in a member name", R"({"\udc00":1})", "member name"},
      {"lone surrogate deep in an array", R"({"a":[1,{"b":["ok","\udbff"]}]})", "surrogate"},
      {"U+0000 in a string", R"({"a":"Dupr\u0000"})", "U+0000"},
      {"U+0000 alone", R"({"a":"\u0000"})", "U+0000"},
      {"U+0000 in a member name", R"({"a\u0000b":1})", "U+0000"},
      {"U+0000 in a nested value", R"({"name":[{"given":["x","\u0000"]}]})", "U+0000"},
      {"U+0001 in a string", R"({"a":"\u0001"})", "U+0001"},
      {"bad hex in an escape", R"({"a":"\u12G4"})", "four hexadecimal digits"},
  };
  for (const auto& r : rows) {
    std::string d = Refusal(r.text);
    EXPECT_NE(d.find(r.says), std::string::npos) << r.name << ": " << d;
    EXPECT_NE(d.find("at byte"), std::string::npos) << r.name << ": " << d;
  }
}

TEST(Json, ValidEscapesAreAccepted) {
  struct Row {
    std::string text, value;
  };
  const Row rows[] = {
      {R"({"a":"\ud83d\ude00"})", "\xF0\x9F\x98\x80"},  // U+1F600, a surrogate pair
      {R"({"a":"\uD83D\uDE00!"})", "\xF0\x9F\x98\x80!"},
      {R"({"a":"\udbff\udfff"})", "\xF4\x8F\xBF\xBF"},  // U+10FFFF, the last code point
      {R"({"a":"\ud800\udc00"})", "\xF0\x90\x80\x80"},  // U+10000, the first pair
      {R"({"a":"Dupr\u00e9"})", "Dupr\xC3\xA9"},
      {R"({"a":"\ud7ff\ue000"})", "\xED\x9F\xBF\xEE\x80\x80"},  // either side of the surrogates
      {R"({"a":"\u0002\u001f"})", "\x02\x1F"},
      {"{\"a\":\"\xED\x9F\xBF\"}", "\xED\x9F\xBF"},  // U+D7FF sent raw
  };
  for (const auto& r : rows) {
    auto d = ParseJson(r.text);
    EXPECT_EQ(std::string(AsStringView(d["a"])), r.value) << r.text;
  }
}

TEST(Json, NumbersADoubleCannotHoldAreOutOfRange) {
  const std::string refused[] = {
      "1e400", "-1e400", "1e309", "10e308", "1.8e308", "-1.8e308", "1.797693134862316e308", "1E+400",
      "1e-400", "-1e-400", "2e-324", "1" + std::string(400, '0'), "0.00001e-320",
  };
  for (const auto& n : refused) {
    std::string d = Refusal(R"({"v":)" + n + "}");
    EXPECT_NE(d.find("number out of range"), std::string::npos) << n << ": " << d;
    EXPECT_EQ(d.find("malformed"), std::string::npos) << n << ": " << d;
  }
  // At the edges, and kept exactly as sent.
  const std::string accepted[] = {
      "1e308", "-1e308", "1.7976931348623157e308", "1E+308", "4.9e-324", "2.2250738585072014e-308",
      "1" + std::string(308, '0'), "0e10", "0.000", "-0", "1e-3", "12345678901234567890.123456789",
  };
  for (const auto& n : accepted) {
    std::string text = R"({"v":)" + n + "}";
    EXPECT_EQ(Serialize(ParseJson(text)), text) << n;
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
