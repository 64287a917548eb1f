#pragma once
// FHIR date, dateTime and instant values as half-open ranges of instants [lo, hi), in microseconds
// since the Unix epoch, UTC. A partial value is the whole range it names ("2024-03" is March 2024);
// a value without a time zone is read as UTC (R4 search.html#date leaves the zone to the server).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace fls::fhir {

struct DateRange {
  int64_t lo_us;
  int64_t hi_us;  // exclusive
};

inline constexpr int64_t kMinusInfinity = INT64_MIN;
inline constexpr int64_t kPlusInfinity = INT64_MAX;

// Parses YYYY, YYYY-MM, YYYY-MM-DD, YYYY-MM-DDThh:mm[:ss[.fff]][Z|(+|-)hh:mm]. nullopt when
// malformed or out of range (month 13, day 31 in April, hour 24).
std::optional<DateRange> ParseFhirDate(std::string_view text);

// Microseconds since the epoch -> "YYYY-MM-DDThh:mm:ss.ffffffZ" (PostgreSQL timestamptz input),
// or "-infinity" / "infinity".
std::string FormatPgInstant(int64_t us);

// Microseconds since the epoch -> FHIR instant "YYYY-MM-DDThh:mm:ss.mmmZ".
std::string FormatFhirInstant(int64_t us);

// RFC 7231 HTTP-date ("Sun, 06 Nov 1994 08:49:37 GMT") for Last-Modified.
std::string FormatHttpDate(int64_t us);

int64_t NowMicros();

// The civil day (days since 1970-01-01) of a FHIR date or dateTime as written
// ("2024-03-01T23:30:00-05:00" -> 2024-03-01: the clinical record's own date); nullopt when
// malformed.
std::optional<int64_t> DayOf(std::string_view text);
// The civil day of an instant in the process's time zone (TZ, set once at start-up to the FLS
// site's zone, fhir-contract.md: "due on the 3rd" means the site's 3rd).
int64_t LocalDay(int64_t epoch_seconds);
// LocalDay for many instants (a cohort's events): the UTC offset of each hour is looked up once.
// An hour whose first and last seconds have the same offset has it throughout (no zone changes
// its offset twice within an hour); an hour with a change in it falls back to LocalDay per instant.
class LocalDays {
 public:
  int64_t operator()(int64_t epoch_seconds);

 private:
  std::unordered_map<int64_t, long> offsets_;  // UTC hour -> offset in seconds, or kMixed
};
// A civil day as YYYY-MM-DD.
std::string DayText(int64_t day);
// The instant local midnight starts `day` in the process's zone (TZ), daylight saving included:
// when the timers fire for a date.
int64_t LocalMidnightUs(int64_t day);


}  // namespace fls::fhir
