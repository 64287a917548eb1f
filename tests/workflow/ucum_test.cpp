#include "workflow/ucum.h"

#include <gtest/gtest.h>

#include <cmath>
#include <optional>

namespace fls::workflow {
namespace {

TEST(Ucum, ConvertsPrefixesQuotientsAndTimeThatLabsUse) {
  struct Row {
    double value;
    const char* from;
    const char* to;
    std::optional<double> expected;
  };
  const Row rows[] = {
      {2140, "umol/L", "mmol/L", 2.14},
      {85, "mg/L", "mg/dL", 8.5},
      {1.2, "mg/dL", "mg/L", 12},
      {30, "ng/mL", "ug/L", 30},
      {0.03, "ug/mL", "ng/mL", 30},
      {0.5, "mL/s", "mL/min", 30},
      {34, "mL/min/{1.73_m2}", "mL/min", 34},  // an annotation is 1 (UCUM)
      {4.1, "u[IU]/mL", "m[IU]/L", 4.1},
      {4.1, "mIU/L", "m[IU]/L", 4.1},  // the common spelling
      {1, "g/dL", "mg/dL", 1000},
      {45, "%", "%", 45},
      {3, "{ratio}", "1", 3},
      {1, "", "mg", std::nullopt},
      {0.45, "1", "%", 45},
      {2.4, "mmol/L", "mg/dL", std::nullopt},  // amount vs mass: needs the molar mass
      {2.4, "mEq/L", "mmol/L", std::nullopt},
      {35, "mL/min", "mL", std::nullopt},
      {1, "furlong", "m", std::nullopt},
      {1, "mg/{unclosed", "mg", std::nullopt},
      {1, "mg//dL", "mg/dL", std::nullopt},
  };
  for (const auto& row : rows) {
    auto got = ConvertUcum(row.value, row.from, row.to);
    ASSERT_EQ(got.has_value(), row.expected.has_value()) << row.from << " -> " << row.to;
    if (got) {
      EXPECT_NEAR(*got, *row.expected, 1e-9 * std::max(1.0, *row.expected))
          << row.from << " -> " << row.to;
    }
  }
}

TEST(Ucum, LeftAssociativeLikeTheSpecification) {
  // a/b.c is (a/b).c: mg/dL.h is mass per volume times time, not mass per (volume . time).
  EXPECT_NEAR(*ConvertUcum(1, "mg/dL.h", "mg/L.min"), 600, 1e-9);
  EXPECT_FALSE(ConvertUcum(1, "mg/dL.h", "mg/dL/h"));
  EXPECT_NEAR(*ConvertUcum(2, "/min", "/s"), 2.0 / 60, 1e-12);
  EXPECT_FALSE(ConvertUcum(1, "m2", "dm2"))
      << "lengths are outside the subset: refused, never guessed";
}

}  // namespace
}  // namespace fls::workflow
