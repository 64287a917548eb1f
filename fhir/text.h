#pragma once
// Text helpers shared by search indexing and query parsing.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fls::fhir {

// Case- and accent-insensitive form used by string search (R4 search.html#string): lower case,
// Latin accents removed ("Hélène" -> "helene"), runs of whitespace and punctuation kept as is.
std::string NormalizeForSearch(std::string_view utf8);

// The indexed form of a string is its normalised value's first kIndexedPrefix bytes (cut on a
// UTF-8 boundary): it fits a btree row, and a prefix search longer than that is rare.
inline constexpr size_t kIndexedPrefix = 128;

// The first `max_bytes` of a UTF-8 string, cut before a continuation byte.
std::string Utf8Prefix(std::string_view s, size_t max_bytes);

bool IsValidUtf8(std::string_view s);

// Percent-decodes a URL component ('+' is a space in query strings). nullopt on a bad escape or
// when the result is not valid UTF-8.
std::optional<std::string> PercentDecode(std::string_view s, bool plus_is_space);
std::string PercentEncode(std::string_view s);

// Splits on an unescaped separator (FHIR search escapes ',', '|', '$' and '\' with '\').
std::vector<std::string> SplitEscaped(std::string_view s, char sep);
std::string Unescape(std::string_view s);

// [A-Za-z0-9\-\.]{1,64} (R4 datatypes.html#id).
bool IsValidId(std::string_view id);

std::string NewUuid();

}  // namespace fls::fhir
