#include "fhir/fhir_date.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "workflow/civil_date.h"

namespace fls::fhir {
namespace {

TEST(FhirDate, RangesOfPartialAndFullValues) {
  struct Row {
    const char* in;
    const char* lo;
    const char* hi;
  };
  const Row rows[] = {
      {"2024", "2024-01-01T00:00:00.000000Z", "2025-01-01T00:00:00.000000Z"},
      {"2024-02", "2024-02-01T00:00:00.000000Z", "2024-03-01T00:00:00.000000Z"},
      {"2024-12", "2024-12-01T00:00:00.000000Z", "2025-01-01T00:00:00.000000Z"},
      {"2024-02-29", "2024-02-29T00:00:00.000000Z", "2024-03-01T00:00:00.000000Z"},
      {"2024-03-01T10:00:00+01:00", "2024-03-01T09:00:00.000000Z", "2024-03-01T09:00:01.000000Z"},
      {"2024-03-01T10:00:00-05:30", "2024-03-01T15:30:00.000000Z", "2024-03-01T15:30:01.000000Z"},
      {"2024-03-01T00:30:00+01:00", "2024-02-29T23:30:00.000000Z", "2024-02-29T23:30:01.000000Z"},
      {"2024-03-01T10:00", "2024-03-01T10:00:00.000000Z", "2024-03-01T10:01:00.000000Z"},
      {"2024-03-01T10:00:00.5Z", "2024-03-01T10:00:00.500000Z", "2024-03-01T10:00:00.600000Z"},
      {"2024-03-01T10:00:00.123Z", "2024-03-01T10:00:00.123000Z", "2024-03-01T10:00:00.124000Z"},
      {"1900-02-28", "1900-02-28T00:00:00.000000Z", "1900-03-01T00:00:00.000000Z"},
      {"1969-12-31T23:59:59Z", "1969-12-31T23:59:59.000000Z", "1970-01-01T00:00:00.000000Z"},
  };
  for (const auto& r : rows) {
    auto range = ParseFhirDate(r.in);
    ASSERT_TRUE(range) << r.in;
    EXPECT_EQ(FormatPgInstant(range->lo_us), r.lo) << r.in;
    EXPECT_EQ(FormatPgInstant(range->hi_us), r.hi) << r.in;
  }
}

TEST(FhirDate, RefusesMalformedAndImpossibleDates) {
  for (const char* bad : {"", "24", "2024-13", "2024-00", "2023-02-29", "1900-02-29", "2024-04-31",
                          "2024-03-01T24:00:00Z", "2024-03-01T10:60:00Z", "2024-03-01 10:00:00Z",
                          "2024-03-01T10:00:00+15:00", "2024-03-01T10:00:00.Z", "2024-3-1",
                          "0000", "2024-03-01TZ", "2024-03-01T10:00:00Zjunk"}) {
    EXPECT_FALSE(ParseFhirDate(bad)) << bad;
  }
}

TEST(FhirDate, Formats) {
  auto r = ParseFhirDate("1994-11-06T08:49:37Z");
  EXPECT_EQ(FormatHttpDate(r->lo_us), "Sun, 06 Nov 1994 08:49:37 GMT");
  EXPECT_EQ(FormatFhirInstant(r->lo_us), "1994-11-06T08:49:37.000Z");
  EXPECT_EQ(FormatPgInstant(kMinusInfinity), "-infinity");
  EXPECT_EQ(FormatPgInstant(kPlusInfinity), "infinity");
}

TEST(FhirDate, CivilDaysRoundTrip) {
  for (int64_t day = -800000; day <= 800000; day += 997) {
    int y;
    unsigned m, d;
    workflow::CivilFromDays(day, y, m, d);
    EXPECT_EQ(workflow::CivilDay(y, m, d), day);
  }
  EXPECT_EQ(workflow::CivilDay(1970, 1, 1), 0);
  EXPECT_EQ(workflow::CivilDay(2000, 3, 1), 11017);
}

}  // namespace
}  // namespace fls::fhir

namespace fls::fhir {
namespace {

// Timers fire at local midnight of their date in the site's zone, across the daylight-saving
// changes: 23:00Z the evening before in winter, 22:00Z in summer (Europe/Paris).
TEST(FhirDate, LocalMidnightFollowsTheSitesZoneAcrossDaylightSaving) {
  const char* old = getenv("TZ");
  std::string saved = old ? old : "";
  setenv("TZ", "Europe/Paris", 1);
  tzset();
  struct Row {
    int y;
    unsigned m, d;
    const char* utc;
  };
  const Row rows[] = {
      {2026, 3, 28, "2026-03-27T23:00:00.000Z"},  // winter time
      {2026, 3, 29, "2026-03-28T23:00:00.000Z"},  // the day the clocks go forward, its midnight still winter
      {2026, 3, 30, "2026-03-29T22:00:00.000Z"},  // summer time
      {2026, 10, 25, "2026-10-24T22:00:00.000Z"},  // the day the clocks go back
      {2026, 10, 26, "2026-10-25T23:00:00.000Z"},
      {2024, 2, 29, "2024-02-28T23:00:00.000Z"},
  };
  for (const auto& r : rows) {
    EXPECT_EQ(FormatFhirInstant(LocalMidnightUs(workflow::CivilDay(r.y, r.m, r.d))), r.utc) << r.y << "-" << r.m << "-" << r.d;
    EXPECT_EQ(LocalDay(LocalMidnightUs(workflow::CivilDay(r.y, r.m, r.d)) / 1000000), workflow::CivilDay(r.y, r.m, r.d));
  }
  if (old) {
    setenv("TZ", saved.c_str(), 1);
  } else {
    unsetenv("TZ");
  }
  tzset();
}

// The cohort's cached conversion gives LocalDay's answer for every instant: each minute of the
// days around the changes of Paris (an hour), Lord Howe Island (half an hour, at 02:00 local) and
// Kathmandu (+05:45, no change), a run of instants before 1970, and instants in random order.
TEST(FhirDate, LocalDaysAgreeWithLocalDayAcrossEveryChange) {
  const char* old = getenv("TZ");
  std::string saved = old ? old : "";
  struct Zone {
    const char* tz;
    const char* around;  // a UTC day of a change
  };
  const Zone zones[] = {{"Europe/Paris", "2026-03-29"}, {"Europe/Paris", "2026-10-25"}, {"Australia/Lord_Howe", "2026-04-04"},
                        {"Australia/Lord_Howe", "2026-10-03"}, {"Asia/Kathmandu", "2026-06-01"}, {"America/St_Johns", "2026-11-01"},
                        {"Europe/Paris", "1969-12-31"}};
  for (const auto& z : zones) {
    setenv("TZ", z.tz, 1);
    tzset();
    LocalDays cached;
    const int64_t start = (*DayOf(z.around) - 1) * 86400;
    int differ = 0;
    for (int64_t t = start; t < start + 3 * 86400; t += 60) differ += cached(t) != LocalDay(t);
    for (int64_t t = start + 3 * 86400 - 1; t >= start; t -= 7919) differ += cached(t) != LocalDay(t);  // backwards, odd steps
    EXPECT_EQ(differ, 0) << z.tz << " around " << z.around;
  }
  if (old) {
    setenv("TZ", saved.c_str(), 1);
  } else {
    unsetenv("TZ");
  }
  tzset();
}

}  // namespace
}  // namespace fls::fhir
