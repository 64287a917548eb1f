#include "fhir/json.h"

#include <rapidjson/reader.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <string>
#include <unordered_set>
#include <vector>

#include "fhir/error.h"
#include "fhir/text.h"

namespace fls::fhir {

namespace {

constexpr const char* kNumberOutOfRange =
    "number out of range: a JSON number must fit an IEEE 754 double (magnitude at most about 1.8e308, "
    "and not below about 4.9e-324 unless it is 0)";

// Why a decoded string (a value or a member name) is refused, or null. The problems are named,
// never echoed: the bytes at fault are not valid text to put in an OperationOutcome.
const char* StringProblem(std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == 0) {
      // PostgreSQL's jsonb and text cannot hold U+0000 (and libpq would cut a parameter there).
      return "the character U+0000 (\\u0000) is not allowed in a string";
    }
    if (c == static_cast<unsigned char>(kNumberMark)) return "control character U+0001 is not allowed in a string";
    // The parser validates raw bytes and refuses a high surrogate escape without its low half, so
    // a UTF-8-encoded surrogate (ED A0..BF xx) here comes from an escaped lone low surrogate.
    if (c == 0xED && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) >= 0xA0) {
      return "a \\u escape names a lone UTF-16 surrogate (\\uD800-\\uDFFF without its pair); "
             "a string must be Unicode text";
    }
  }
  return nullptr;
}

// True when the number's text denotes a value a double holds (or 0): FHIR decimals are kept as
// sent, but a client reading them as doubles (JavaScript, most JSON libraries) must not get
// infinity or a silent 0 (R4 datatypes.html#decimal: "IEEE 754 double precision").
bool FitsDouble(std::string_view number) {
  double v = 0;
  auto [ptr, ec] = std::from_chars(number.data(), number.data() + number.size(), v);
  return ec == std::errc() && ptr == number.data() + number.size() && std::isfinite(v);
}

// Forwards SAX events to the Document while enforcing the depth limit and marking numbers.
class LimitingHandler {
 public:
  LimitingHandler(JsonDoc& doc, int max_depth) : doc_(doc), max_depth_(max_depth) {}

  bool Null() { return doc_.Null(); }
  bool Bool(bool b) { return doc_.Bool(b); }
  bool Int(int i) { return doc_.Int(i); }
  bool Uint(unsigned i) { return doc_.Uint(i); }
  bool Int64(int64_t i) { return doc_.Int64(i); }
  bool Uint64(uint64_t i) { return doc_.Uint64(i); }
  bool Double(double d) { return doc_.Double(d); }
  bool RawNumber(const char* str, rapidjson::SizeType length, bool) {
    if (!FitsDouble(std::string_view(str, length))) {
      problem_ = kNumberOutOfRange;
      return false;
    }
    scratch_.assign(1, kNumberMark);
    scratch_.append(str, length);
    return doc_.String(scratch_.data(), static_cast<rapidjson::SizeType>(scratch_.size()), true);
  }
  bool String(const char* str, rapidjson::SizeType length, bool copy) {
    if (const char* problem = StringProblem(std::string_view(str, length))) {
      problem_ = problem;
      return false;
    }
    return doc_.String(str, length, copy);
  }
  // Duplicate member names are refused: the checks would read the first and PostgreSQL's jsonb
  // would keep the last (RFC 8259 leaves the meaning open; FHIR JSON forbids them).
  bool Key(const char* str, rapidjson::SizeType length, bool copy) {
    if (const char* problem = StringProblem(std::string_view(str, length))) {
      problem_ = std::string(problem) + " (a member name)";
      return false;
    }
    if (!keys_.empty() && !keys_.back().emplace(str, length).second) {
      // Valid UTF-8 by now; cut on a character boundary so that the message stays valid text.
      problem_ = "duplicate member \"" + Utf8Prefix(std::string_view(str, length), 64) + "\" in an object";
      return false;
    }
    return doc_.Key(str, length, copy);
  }
  bool StartObject() {
    if (!Enter()) return false;
    keys_.emplace_back();
    return doc_.StartObject();
  }
  bool EndObject(rapidjson::SizeType n) {
    --depth_;
    keys_.pop_back();
    return doc_.EndObject(n);
  }
  bool StartArray() { return Enter() && doc_.StartArray(); }
  bool EndArray(rapidjson::SizeType n) {
    --depth_;
    return doc_.EndArray(n);
  }

  const std::string& problem() const { return problem_; }

 private:
  bool Enter() {
    if (++depth_ > max_depth_) {
      problem_ = "JSON nested deeper than " + std::to_string(max_depth_) + " levels";
      return false;
    }
    return true;
  }
  JsonDoc& doc_;
  int max_depth_;
  int depth_ = 0;
  std::string scratch_;
  std::string problem_;
  std::vector<std::unordered_set<std::string>> keys_;  // member names of each open object
};

constexpr unsigned kParseFlags = rapidjson::kParseIterativeFlag |
                                 rapidjson::kParseValidateEncodingFlag |
                                 rapidjson::kParseNumbersAsStringsFlag;

void WriteValue(const JsonValue& v, rapidjson::Writer<rapidjson::StringBuffer>& w) {
  // Recursion is bounded: every Document came through ParseJson's depth limit or was built in
  // code with a fixed shape.
  switch (v.GetType()) {
    case rapidjson::kNullType:
      w.Null();
      break;
    case rapidjson::kFalseType:
      w.Bool(false);
      break;
    case rapidjson::kTrueType:
      w.Bool(true);
      break;
    case rapidjson::kNumberType:
      if (v.IsInt64()) {
        w.Int64(v.GetInt64());
      } else if (v.IsUint64()) {
        w.Uint64(v.GetUint64());
      } else {
        w.Double(v.GetDouble());
      }
      break;
    case rapidjson::kStringType:
      if (v.GetStringLength() > 0 && v.GetString()[0] == kNumberMark) {
        w.RawValue(v.GetString() + 1, v.GetStringLength() - 1, rapidjson::kNumberType);
      } else {
        w.String(v.GetString(), v.GetStringLength());
      }
      break;
    case rapidjson::kArrayType:
      w.StartArray();
      for (const auto& item : v.GetArray()) WriteValue(item, w);
      w.EndArray();
      break;
    case rapidjson::kObjectType:
      w.StartObject();
      for (const auto& m : v.GetObject()) {
        w.Key(m.name.GetString(), m.name.GetStringLength());
        WriteValue(m.value, w);
      }
      w.EndObject();
      break;
  }
}

}  // namespace

JsonDoc ParseJson(std::string_view text, const JsonLimits& limits) {
  JsonDoc doc;
  rapidjson::MemoryStream ms(text.data(), text.size());
  rapidjson::EncodedInputStream<rapidjson::UTF8<>, rapidjson::MemoryStream> stream(ms);
  rapidjson::Reader reader;
  LimitingHandler handler(doc, limits.max_depth);
  auto generator = [&](JsonDoc&) { return !reader.Parse<kParseFlags>(stream, handler).IsError(); };
  doc.Populate(generator);
  if (reader.HasParseError()) {
    std::string msg = handler.problem();
    if (msg.empty()) {
      switch (reader.GetParseErrorCode()) {
        case rapidjson::kParseErrorStringInvalidEncoding:
          msg = "invalid UTF-8 in a string";
          break;
        case rapidjson::kParseErrorStringUnicodeSurrogateInvalid:
          msg = "a \\u escape of a UTF-16 high surrogate (\\uD800-\\uDBFF) is not followed by its low "
                "surrogate (\\uDC00-\\uDFFF); a string must be Unicode text";
          break;
        case rapidjson::kParseErrorStringUnicodeEscapeInvalidHex:
          msg = "a \\u escape needs four hexadecimal digits";
          break;
        case rapidjson::kParseErrorNumberTooBig:
          msg = kNumberOutOfRange;
          break;
        case rapidjson::kParseErrorDocumentEmpty:
          msg = "the body is empty";
          break;
        default:
          msg = "malformed JSON";
      }
    }
    throw FhirError(ErrorCode::kBadRequest,
                    msg + " (at byte " + std::to_string(reader.GetErrorOffset()) + ")");
  }
  return doc;
}

std::string Serialize(const JsonValue& value) {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  WriteValue(value, w);
  return std::string(sb.GetString(), sb.GetSize());
}

const JsonValue* Member(const JsonValue& object, std::string_view name) {
  if (!object.IsObject()) return nullptr;
  auto it = object.FindMember(
      rapidjson::Value(rapidjson::StringRef(name.data(), static_cast<rapidjson::SizeType>(name.size()))));
  return it == object.MemberEnd() ? nullptr : &it->value;
}

std::optional<std::string_view> StringMember(const JsonValue& object, std::string_view name) {
  const JsonValue* v = Member(object, name);
  if (v == nullptr || !IsPlainString(*v)) return std::nullopt;
  return AsStringView(*v);
}

bool IsNumber(const JsonValue& v) {
  return v.IsNumber() ||
         (v.IsString() && v.GetStringLength() > 0 && v.GetString()[0] == kNumberMark);
}

std::optional<std::string> NumberText(const JsonValue& v) {
  if (v.IsString() && v.GetStringLength() > 0 && v.GetString()[0] == kNumberMark) {
    return std::string(v.GetString() + 1, v.GetStringLength() - 1);
  }
  if (v.IsInt64()) return std::to_string(v.GetInt64());
  if (v.IsUint64()) return std::to_string(v.GetUint64());
  if (v.IsDouble()) return Serialize(v);
  return std::nullopt;
}

bool IsPlainString(const JsonValue& v) {
  return v.IsString() && !(v.GetStringLength() > 0 && v.GetString()[0] == kNumberMark);
}

std::string_view AsStringView(const JsonValue& v) {
  return std::string_view(v.GetString(), v.GetStringLength());
}

JsonValue MakeString(std::string_view s, JsonAlloc& alloc) {
  return JsonValue(s.data(), static_cast<rapidjson::SizeType>(s.size()), alloc);
}

JsonValue MakeNumber(std::string_view number_text, JsonAlloc& alloc) {
  std::string marked(1, kNumberMark);
  marked.append(number_text);
  return JsonValue(marked.data(), static_cast<rapidjson::SizeType>(marked.size()), alloc);
}

void SetMember(JsonValue& object, std::string_view name, JsonValue value, JsonAlloc& alloc) {
  auto it = object.FindMember(
      rapidjson::Value(rapidjson::StringRef(name.data(), static_cast<rapidjson::SizeType>(name.size()))));
  if (it != object.MemberEnd()) {
    it->value = std::move(value);
  } else {
    object.AddMember(MakeString(name, alloc), std::move(value), alloc);
  }
}

void RemoveMember(JsonValue& object, std::string_view name) {
  object.EraseMember(
      rapidjson::Value(rapidjson::StringRef(name.data(), static_cast<rapidjson::SizeType>(name.size()))));
}

}  // namespace fls::fhir
