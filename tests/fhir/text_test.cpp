#include "fhir/text.h"

#include <gtest/gtest.h>

namespace fls::fhir {
namespace {

TEST(Text, NormalizeFoldsCaseAndLatinAccents) {
  struct Row {
    const char* in;
    const char* out;
  };
  const Row rows[] = {
      {"Hélène", "helene"},       {"DUPRÉ", "dupre"},         {"Œuvre", "oeuvre"},
      {"Straße", "strasse"},      {"Łódź", "lodz"},           {"Ærø", "aero"},
      {"Saint-Étienne", "saint-etienne"}, {"Müller", "muller"}, {"Ñúñez", "nunez"},
      {"Ğöç", "goc"},             {"plain", "plain"},         {"日本", "日本"},
  };
  for (const auto& r : rows) EXPECT_EQ(NormalizeForSearch(r.in), r.out) << r.in;
}

TEST(Text, Utf8Validation) {
  EXPECT_TRUE(IsValidUtf8("Hélène 日本 \xF0\x9F\x98\x80"));
  EXPECT_FALSE(IsValidUtf8("\xC3"));
  EXPECT_FALSE(IsValidUtf8("\xC0\xAF"));          // overlong
  EXPECT_FALSE(IsValidUtf8("\xED\xA0\x80"));      // surrogate
  EXPECT_FALSE(IsValidUtf8("\xF4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_FALSE(IsValidUtf8("\xFF"));
}

TEST(Text, PercentDecoding) {
  EXPECT_EQ(*PercentDecode("Dupr%C3%A9", false), "Dupré");
  EXPECT_EQ(*PercentDecode("a+b", true), "a b");
  EXPECT_EQ(*PercentDecode("a+b", false), "a+b");
  EXPECT_EQ(*PercentDecode("%7C", false), "|");
  EXPECT_FALSE(PercentDecode("%", false));
  EXPECT_FALSE(PercentDecode("%4", false));
  EXPECT_FALSE(PercentDecode("%ZZ", false));
  EXPECT_FALSE(PercentDecode("%C3%28", false));  // decodes to invalid UTF-8
  EXPECT_EQ(PercentEncode("a|b é"), "a%7Cb%20%C3%A9");
}

TEST(Text, SplitEscapedHonoursBackslash) {
  EXPECT_EQ(SplitEscaped("a,b\\,c,d", ','), (std::vector<std::string>{"a", "b\\,c", "d"}));
  EXPECT_EQ(Unescape("b\\,c\\|d"), "b,c|d");
  EXPECT_EQ(SplitEscaped("sys|code", '|'), (std::vector<std::string>{"sys", "code"}));
  EXPECT_EQ(SplitEscaped("|code", '|'), (std::vector<std::string>{"", "code"}));
}

TEST(Text, FhirIds) {
  EXPECT_TRUE(IsValidId("a"));
  EXPECT_TRUE(IsValidId("123a.B-9"));
  EXPECT_TRUE(IsValidId(std::string(64, 'x')));
  EXPECT_FALSE(IsValidId(std::string(65, 'x')));
  EXPECT_FALSE(IsValidId(""));
  EXPECT_FALSE(IsValidId("a_b"));
  EXPECT_FALSE(IsValidId("a/b"));
  EXPECT_FALSE(IsValidId("é"));
  EXPECT_TRUE(IsValidId(NewUuid()));
  EXPECT_NE(NewUuid(), NewUuid());
}

}  // namespace
}  // namespace fls::fhir
