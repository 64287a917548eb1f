#pragma once
// The part of UCUM (https://ucum.org/ucum) that laboratory results need to be compared with a
// threshold: prefixes (m, u, n, d, c, k...), the atoms g, mol, L, [IU], U, eq, s, min, h, d and %,
// products ('.'), quotients ('/') and integer exponents; annotations ({1.73_m2}) are 1, as UCUM
// says. Mass and amount of substance stay apart: converting mg/dL to mmol/L needs the analyte's
// molar mass, which is data (workflow/data/investigation-panel.json gives thresholds per unit).
// Pure; thread-safe.

#include <optional>
#include <string_view>

namespace fls::workflow {

// `value` in `from` expressed in `to`, or nullopt when either unit is not understood or the two
// measure different things. The common lab spelling "IU" is read as "[IU]", "mcg" as "ug".
std::optional<double> ConvertUcum(double value, std::string_view from, std::string_view to);

// Whether the unit is understood at all.
bool IsKnownUcum(std::string_view unit);

}  // namespace fls::workflow
