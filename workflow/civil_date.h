#pragma once
// Civil (proleptic Gregorian) dates as day numbers: days since 1970-01-01. Pure; the one place
// the calendar arithmetic lives (H. Hinnant's days_from_civil / civil_from_days).

#include <cstdint>

namespace fls::workflow {

int64_t CivilDay(int y, unsigned m, unsigned d);
void CivilFromDays(int64_t day, int& y, unsigned& m, unsigned& d);

}  // namespace fls::workflow
