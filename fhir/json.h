#pragma once
// JSON for FHIR resources: parsing with limits and serialisation that keeps decimals exactly as
// sent. FHIR decimals carry precision ("1.50" is not "1.5", R4 datatypes.html#decimal), so numbers
// are kept as their source text: inside a parsed Document a number is a string value that starts
// with kNumberMark, and Serialize() writes it back as the raw number. Strings sent by a client can
// never start with kNumberMark: control character U+0001 in a string is refused at parse time.

#include <rapidjson/document.h>

#include <optional>
#include <string>
#include <string_view>

namespace fls::fhir {

using JsonDoc = rapidjson::Document;
using JsonValue = rapidjson::Value;
using JsonAlloc = rapidjson::Document::AllocatorType;

inline constexpr char kNumberMark = '\x01';

struct JsonLimits {
  int max_depth = 64;  // objects and arrays nested deeper than this are refused
};

// Parses `text` (which must be valid UTF-8) into a Document. Throws FhirError(kBadRequest) with
// the offset of the problem on malformed JSON, invalid UTF-8, a lone UTF-16 surrogate escape,
// U+0000 or U+0001 in a string or member name, a number no double can hold ("number out of
// range": 1e400, 1e-400) or too deep nesting. The message names the problem, never the bytes.
// Never recurses on the input: safe on hostile bodies.
JsonDoc ParseJson(std::string_view text, const JsonLimits& limits = {});

// Serialises a value parsed by ParseJson (or built in code) to compact JSON.
std::string Serialize(const JsonValue& value);

// Accessors; all return null / nullopt when absent or of another type.
const JsonValue* Member(const JsonValue& object, std::string_view name);
std::optional<std::string_view> StringMember(const JsonValue& object, std::string_view name);
bool IsNumber(const JsonValue& v);                     // a marked number or a native number
std::optional<std::string> NumberText(const JsonValue& v);  // the number's source text
bool IsPlainString(const JsonValue& v);                // a string that is not a marked number
std::string_view AsStringView(const JsonValue& v);     // REQUIRES: v.IsString()

// Builders for code that edits resources.
JsonValue MakeString(std::string_view s, JsonAlloc& alloc);
JsonValue MakeNumber(std::string_view number_text, JsonAlloc& alloc);
void SetMember(JsonValue& object, std::string_view name, JsonValue value, JsonAlloc& alloc);
void RemoveMember(JsonValue& object, std::string_view name);

}  // namespace fls::fhir
