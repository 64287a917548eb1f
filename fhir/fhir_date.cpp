#include "fhir/fhir_date.h"

#include <chrono>
#include <ctime>
#include <cstdio>

#include "workflow/civil_date.h"

namespace fls::fhir {

namespace {
constexpr int64_t kUsPerSec = 1000000;
constexpr int64_t kUsPerDay = 86400 * kUsPerSec;

bool Digits(std::string_view s, size_t pos, size_t n, int& out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  out = v;
  return true;
}

unsigned DaysInMonth(int y, unsigned m) {
  static constexpr unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m == 2 && leap ? 29 : kDays[m - 1];
}
}  // namespace

std::optional<DateRange> ParseFhirDate(std::string_view s) {
  int year = 0, month = 1, day = 1;
  if (!Digits(s, 0, 4, year) || year < 1) return std::nullopt;
  if (s.size() == 4) {
    return DateRange{workflow::CivilDay(year, 1, 1) * kUsPerDay, workflow::CivilDay(year + 1, 1, 1) * kUsPerDay};
  }
  if (s[4] != '-' || !Digits(s, 5, 2, month) || month < 1 || month > 12) return std::nullopt;
  if (s.size() == 7) {
    int ny = month == 12 ? year + 1 : year;
    unsigned nm = month == 12 ? 1 : month + 1;
    return DateRange{workflow::CivilDay(year, month, 1) * kUsPerDay, workflow::CivilDay(ny, nm, 1) * kUsPerDay};
  }
  if (s.size() < 10 || s[7] != '-' || !Digits(s, 8, 2, day) || day < 1 ||
      static_cast<unsigned>(day) > DaysInMonth(year, month)) {
    return std::nullopt;
  }
  int64_t day_start = workflow::CivilDay(year, month, day) * kUsPerDay;
  if (s.size() == 10) return DateRange{day_start, day_start + kUsPerDay};
  if (s[10] != 'T') return std::nullopt;
  int hh = 0, mi = 0, ss = 0;
  if (!Digits(s, 11, 2, hh) || hh > 23 || s.size() < 16 || s[13] != ':' || !Digits(s, 14, 2, mi) ||
      mi > 59) {
    return std::nullopt;
  }
  size_t pos = 16;
  int64_t precision = 60 * kUsPerSec;
  int64_t frac_us = 0;
  if (pos < s.size() && s[pos] == ':') {
    if (!Digits(s, pos + 1, 2, ss) || ss > 60) return std::nullopt;
    pos += 3;
    precision = kUsPerSec;
    if (pos < s.size() && s[pos] == '.') {
      ++pos;
      size_t digits = 0;
      int64_t scale = 100000;
      while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
        if (digits < 6) {
          frac_us += (s[pos] - '0') * scale;
          scale /= 10;
        }
        ++digits;
        ++pos;
      }
      if (digits == 0) return std::nullopt;
      precision = digits >= 6 ? 1 : [digits] {
        int64_t p = kUsPerSec;
        for (size_t i = 0; i < digits; ++i) p /= 10;
        return p;
      }();
    }
  }
  int64_t offset_us = 0;
  if (pos < s.size()) {
    if (s[pos] == 'Z') {
      ++pos;
    } else if (s[pos] == '+' || s[pos] == '-') {
      int oh = 0, om = 0;
      if (!Digits(s, pos + 1, 2, oh) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
          !Digits(s, pos + 4, 2, om) || oh > 14 || om > 59) {
        return std::nullopt;
      }
      offset_us = (oh * 3600LL + om * 60LL) * kUsPerSec * (s[pos] == '-' ? -1 : 1);
      pos += 6;
    } else {
      return std::nullopt;
    }
  }
  if (pos != s.size()) return std::nullopt;
  int64_t lo = day_start + ((hh * 3600LL + mi * 60LL + ss) * kUsPerSec) + frac_us - offset_us;
  return DateRange{lo, lo + precision};
}

std::string FormatPgInstant(int64_t us) {
  if (us == kMinusInfinity) return "-infinity";
  if (us == kPlusInfinity) return "infinity";
  int64_t days = us >= 0 ? us / kUsPerDay : -((-us + kUsPerDay - 1) / kUsPerDay);
  int64_t rem = us - days * kUsPerDay;
  int y;
  unsigned m, d;
  workflow::CivilFromDays(days, y, m, d);
  int64_t secs = rem / kUsPerSec;
  char buf[48];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d.%06dZ", y, m, d,
                static_cast<int>(secs / 3600), static_cast<int>(secs / 60 % 60),
                static_cast<int>(secs % 60), static_cast<int>(rem % kUsPerSec));
  return buf;
}

std::string FormatFhirInstant(int64_t us) {
  std::string pg = FormatPgInstant(us);  // ...ss.ffffffZ
  return pg.substr(0, 23) + "Z";
}

std::string FormatHttpDate(int64_t us) {
  static constexpr const char* kDays[] = {"Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  int64_t days = us / kUsPerDay;
  int64_t secs = (us % kUsPerDay) / kUsPerSec;
  int y;
  unsigned m, d;
  workflow::CivilFromDays(days, y, m, d);
  char buf[40];
  std::snprintf(buf, sizeof buf, "%s, %02u %s %04d %02d:%02d:%02d GMT", kDays[days % 7], d,
                kMonths[m - 1], y, static_cast<int>(secs / 3600), static_cast<int>(secs / 60 % 60),
                static_cast<int>(secs % 60));
  return buf;
}

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::optional<int64_t> DayOf(std::string_view s) {
  if (s.size() < 4) return std::nullopt;
  auto num = [&](size_t pos, size_t n) -> int {
    int v = 0;
    for (size_t i = pos; i < pos + n; ++i) {
      if (i >= s.size() || s[i] < '0' || s[i] > '9') return -1;
      v = v * 10 + (s[i] - '0');
    }
    return v;
  };
  int y = num(0, 4);
  int m = s.size() >= 7 ? num(5, 2) : 1;
  int d = s.size() >= 10 ? num(8, 2) : 1;
  if (y < 1 || m < 1 || m > 12 || d < 1 || d > 31) return std::nullopt;
  return workflow::CivilDay(y, static_cast<unsigned>(m), static_cast<unsigned>(d));
}

int64_t LocalDay(int64_t epoch_seconds) {
  time_t t = static_cast<time_t>(epoch_seconds);
  tm local{};
  localtime_r(&t, &local);
  return workflow::CivilDay(local.tm_year + 1900, static_cast<unsigned>(local.tm_mon + 1),
                            static_cast<unsigned>(local.tm_mday));
}

namespace {
constexpr long kMixed = 1L << 40;
int64_t FloorDiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }
long OffsetAt(int64_t epoch_seconds) {
  time_t t = static_cast<time_t>(epoch_seconds);
  tm local{};
  localtime_r(&t, &local);
  return local.tm_gmtoff;
}
}  // namespace

int64_t LocalDays::operator()(int64_t epoch_seconds) {
  const int64_t hour = FloorDiv(epoch_seconds, 3600);
  auto it = offsets_.find(hour);
  if (it == offsets_.end()) {
    const long first = OffsetAt(hour * 3600), last = OffsetAt(hour * 3600 + 3599);
    it = offsets_.emplace(hour, first == last ? first : kMixed).first;
  }
  if (it->second == kMixed) return LocalDay(epoch_seconds);
  return FloorDiv(epoch_seconds + it->second, 86400);
}

std::string DayText(int64_t day) { return FormatPgInstant(day * kUsPerDay).substr(0, 10); }

int64_t LocalMidnightUs(int64_t day) {
  int y = 1970;
  unsigned m = 1, d = 1;
  workflow::CivilFromDays(day, y, m, d);
  tm t{};
  t.tm_year = y - 1900;
  t.tm_mon = static_cast<int>(m) - 1;
  t.tm_mday = static_cast<int>(d);
  t.tm_isdst = -1;
  return static_cast<int64_t>(mktime(&t)) * 1000000LL;
}

}  // namespace fls::fhir
