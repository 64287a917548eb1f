#include "fhir/schema_validator.h"

#include <fstream>
#include <sstream>
#include <stdexcept>

#include "fhir/fhir_date.h"
#include "fhir/text.h"

namespace fls::fhir {

namespace {

constexpr size_t kMaxIssues = 50;

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v'; }

// ^-?(0|[1-9][0-9]*)$ and variants.
bool IntegerText(std::string_view s, bool allow_minus, bool allow_zero) {
  if (allow_minus && !s.empty() && s[0] == '-') s.remove_prefix(1);
  if (s.empty() || s.size() > 10) return false;
  for (char c : s) {
    if (!IsDigit(c)) return false;
  }
  if (s.size() > 1 && s[0] == '0') return false;
  if (!allow_zero && s == "0") return false;
  return std::stoll(std::string(s)) <= 2147483647LL;
}

bool DecimalText(std::string_view s) {
  size_t i = 0;
  if (i < s.size() && s[i] == '-') ++i;
  size_t start = i;
  while (i < s.size() && IsDigit(s[i])) ++i;
  if (i == start || (s[start] == '0' && i - start > 1)) return false;
  if (i < s.size() && s[i] == '.') {
    ++i;
    size_t f = i;
    while (i < s.size() && IsDigit(s[i])) ++i;
    if (i == f) return false;
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    size_t e = i;
    while (i < s.size() && IsDigit(s[i])) ++i;
    if (i == e) return false;
  }
  return i == s.size();
}

// The shape rules of the schema's patterns on top of ParseFhirDate's calendar checks.
bool DateShape(std::string_view s, bool allow_time, bool require_time) {
  if (!ParseFhirDate(s)) return false;
  bool has_time = s.size() > 10;
  if (!has_time) return !require_time && (s.size() == 4 || s.size() == 7 || s.size() == 10);
  if (!allow_time) return false;
  // dateTime and instant need seconds and a zone: YYYY-MM-DDThh:mm:ss[.f](Z|+hh:mm)
  if (s.size() < 20 || s[16] != ':') return false;
  char last = s.back();
  return last == 'Z' || (s.size() >= 25 && (s[s.size() - 6] == '+' || s[s.size() - 6] == '-'));
}

bool TimeShape(std::string_view s) {
  if (s.size() < 8 || s[2] != ':' || s[5] != ':') return false;
  for (size_t i : {0u, 1u, 3u, 4u, 6u, 7u}) {
    if (!IsDigit(s[i])) return false;
  }
  int hh = (s[0] - '0') * 10 + (s[1] - '0'), mm = (s[3] - '0') * 10 + (s[4] - '0'),
      ss = (s[6] - '0') * 10 + (s[7] - '0');
  if (hh > 23 || mm > 59 || ss > 60) return false;
  if (s.size() == 8) return true;
  if (s[8] != '.' || s.size() == 9) return false;
  for (size_t i = 9; i < s.size(); ++i) {
    if (!IsDigit(s[i])) return false;
  }
  return true;
}

bool NoWhitespace(std::string_view s) {
  for (char c : s) {
    if (IsSpace(c)) return false;
  }
  return true;
}

// ^[^\s]+(\s[^\s]+)*$
bool CodeShape(std::string_view s) {
  if (s.empty() || IsSpace(s.front()) || IsSpace(s.back())) return false;
  for (size_t i = 1; i < s.size(); ++i) {
    if (IsSpace(s[i]) && IsSpace(s[i - 1])) return false;
  }
  return true;
}

bool OidShape(std::string_view s) {
  if (s.rfind("urn:oid:", 0) != 0) return false;
  s.remove_prefix(8);
  if (s.size() < 3 || s[0] < '0' || s[0] > '2' || s[1] != '.') return false;
  size_t i = 1;
  while (i < s.size()) {
    if (s[i] != '.') return false;
    ++i;
    size_t start = i;
    while (i < s.size() && IsDigit(s[i])) ++i;
    if (i == start || (s[start] == '0' && i - start > 1)) return false;
  }
  return true;
}

bool UuidShape(std::string_view s) {
  if (s.rfind("urn:uuid:", 0) != 0 || s.size() != 45) return false;
  s.remove_prefix(9);
  for (size_t i = 0; i < s.size(); ++i) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i] != '-') return false;
    } else if (!IsDigit(s[i]) && !(s[i] >= 'a' && s[i] <= 'f')) {
      return false;
    }
  }
  return true;
}

// Returns an error message, or empty when `v` is a valid value of primitive type `def`, or
// "?" when `def` is not a primitive type.
std::string CheckPrimitive(const std::string& def, const JsonValue& v) {
  if (def == "boolean") return v.IsBool() ? "" : "must be true or false";
  if (def == "integer" || def == "positiveInt" || def == "unsignedInt" || def == "decimal") {
    auto text = IsNumber(v) ? NumberText(v) : std::nullopt;
    if (!text) return "must be a JSON number";
    if (def == "decimal") return DecimalText(*text) ? "" : "is not a valid decimal";
    bool ok = def == "integer"       ? IntegerText(*text, true, true)
              : def == "positiveInt" ? IntegerText(*text, false, false)
                                     : IntegerText(*text, false, true);
    return ok ? "" : "is not a valid " + def;
  }
  static const std::set<std::string, std::less<>> kStringTypes = {
      "string", "markdown", "code", "id", "uri", "url", "canonical", "oid", "uuid", "date",
      "dateTime", "instant", "time", "base64Binary", "xhtml"};
  if (!kStringTypes.count(def)) return "?";
  if (!IsPlainString(v)) return "must be a JSON string";
  std::string_view s = AsStringView(v);
  bool ok = true;
  if (def == "string" || def == "markdown" || def == "xhtml") ok = !s.empty();
  else if (def == "code") ok = CodeShape(s);
  else if (def == "id") ok = IsValidId(s);
  else if (def == "uri" || def == "url" || def == "canonical") ok = NoWhitespace(s);
  else if (def == "oid") ok = OidShape(s);
  else if (def == "uuid") ok = UuidShape(s);
  else if (def == "date") ok = DateShape(s, false, false);
  else if (def == "dateTime") ok = DateShape(s, true, false);
  else if (def == "instant") ok = DateShape(s, true, true);
  else if (def == "time") ok = TimeShape(s);
  else if (def == "base64Binary") ok = true;  // decoded by whoever needs it
  return ok ? "" : "is not a valid " + def;
}

std::string RefName(const JsonValue& node) {
  auto ref = StringMember(node, "$ref");
  if (!ref) return "";
  constexpr std::string_view kPrefix = "#/definitions/";
  if (ref->substr(0, kPrefix.size()) != kPrefix) return "";
  return std::string(ref->substr(kPrefix.size()));
}

void AddIssue(std::vector<Issue>& issues, const std::string& path, std::string message,
              const char* code = "structure") {
  if (issues.size() >= kMaxIssues) return;
  Issue issue;
  issue.code = code;
  issue.expression = path;
  issue.diagnostics = path + ": " + message;
  issues.push_back(std::move(issue));
}

}  // namespace

std::unique_ptr<SchemaValidator> SchemaValidator::Load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read the FHIR schema at " + path);
  std::stringstream buf;
  buf << in.rdbuf();
  std::string text = buf.str();
  std::unique_ptr<SchemaValidator> v(new SchemaValidator());
  v->schema_.Parse(text.c_str(), text.size());
  if (v->schema_.HasParseError() || !v->schema_.IsObject()) {
    throw std::runtime_error("the FHIR schema at " + path + " is not valid JSON");
  }
  const JsonValue* defs = Member(v->schema_, "definitions");
  const JsonValue* disc = Member(v->schema_, "discriminator");
  const JsonValue* mapping = disc ? Member(*disc, "mapping") : nullptr;
  if (!defs || !defs->IsObject() || !mapping || !mapping->IsObject()) {
    throw std::runtime_error("the FHIR schema at " + path + " lacks definitions or discriminator");
  }
  for (const auto& m : defs->GetObject()) {
    v->definitions_[m.name.GetString()] = &m.value;
    auto pattern = StringMember(m.value, "pattern");
    if (pattern && !Member(m.value, "properties")) {
      // First definition wins for shared patterns (uri/url/canonical, string/markdown): their
      // checks are the same.
      v->primitive_by_pattern_.emplace(std::string(*pattern), m.name.GetString());
    }
  }
  for (const auto& m : mapping->GetObject()) {
    v->resource_types_.push_back(m.name.GetString());
    v->resource_type_set_.insert(m.name.GetString());
  }
  return v;
}

bool SchemaValidator::IsResourceType(std::string_view type) const {
  return resource_type_set_.find(type) != resource_type_set_.end();
}

bool SchemaValidator::HasElement(std::string_view type, std::string_view element) const {
  auto it = definitions_.find(std::string(type));
  if (it == definitions_.end()) return false;
  const JsonValue* props = Member(*it->second, "properties");
  return props && Member(*props, element) != nullptr;
}

std::vector<Issue> SchemaValidator::Validate(const JsonValue& resource) const {
  std::vector<Issue> issues;
  ValidateResource(resource, "", issues);
  return issues;
}

void SchemaValidator::ValidateResource(const JsonValue& value, const std::string& path,
                                       std::vector<Issue>& issues) const {
  if (!value.IsObject()) {
    AddIssue(issues, path.empty() ? "resource" : path, "a resource must be a JSON object");
    return;
  }
  auto type = StringMember(value, "resourceType");
  if (!type) {
    AddIssue(issues, path.empty() ? "resource" : path, "resourceType is missing", "required");
    return;
  }
  if (!IsResourceType(*type)) {
    AddIssue(issues, path.empty() ? "resourceType" : path + ".resourceType",
             "unknown resource type '" + std::string(*type) + "'", "not-supported");
    return;
  }
  ValidateDefinition(value, std::string(*type), path.empty() ? std::string(*type) : path, issues);
}

void SchemaValidator::ValidateDefinition(const JsonValue& value, const std::string& def,
                                         const std::string& path, std::vector<Issue>& issues) const {
  if (issues.size() >= kMaxIssues) return;
  if (def == "ResourceList") {
    ValidateResource(value, path, issues);
    return;
  }
  std::string problem = CheckPrimitive(def, value);
  if (problem != "?") {
    if (!problem.empty()) AddIssue(issues, path, problem, "value");
    return;
  }
  auto it = definitions_.find(def);
  if (it == definitions_.end()) return;  // nothing known to check
  const JsonValue& node = *it->second;
  const JsonValue* props = Member(node, "properties");
  if (!props) {
    ValidateNode(value, node, path, issues);
    return;
  }
  if (!value.IsObject()) {
    AddIssue(issues, path, "must be a JSON object (" + def + ")");
    return;
  }
  for (const auto& m : value.GetObject()) {
    std::string name(m.name.GetString(), m.name.GetStringLength());
    const JsonValue* prop = Member(*props, name);
    std::string child = path + "." + name;
    if (!prop) {
      AddIssue(issues, child, "unknown element '" + name + "' in " + def);
      continue;
    }
    if (m.value.IsNull()) {
      AddIssue(issues, child, "null is not allowed: leave the element out", "value");
      continue;
    }
    ValidateNode(m.value, *prop, child, issues);
  }
  if (const JsonValue* req = Member(node, "required"); req && req->IsArray()) {
    for (const auto& r : req->GetArray()) {
      if (r.IsString() && !Member(value, AsStringView(r))) {
        AddIssue(issues, path + "." + r.GetString(), "is required", "required");
      }
    }
  }
}

void SchemaValidator::ValidateNode(const JsonValue& value, const JsonValue& node,
                                   const std::string& path, std::vector<Issue>& issues) const {
  if (issues.size() >= kMaxIssues) return;
  auto type = StringMember(node, "type");
  if (type && *type == "array") {
    if (!value.IsArray()) {
      AddIssue(issues, path, "must be a JSON array");
      return;
    }
    if (value.Empty()) {
      AddIssue(issues, path, "an array must not be empty: leave the element out", "value");
      return;
    }
    const JsonValue* items = Member(node, "items");
    if (!items) return;
    size_t i = 0;
    for (const auto& item : value.GetArray()) {
      std::string child = path + "[" + std::to_string(i++) + "]";
      if (item.IsNull()) {
        // null is allowed inside arrays only to keep primitive extensions aligned (_given)
        continue;
      }
      ValidateNode(item, *items, child, issues);
    }
    return;
  }
  if (const JsonValue* c = Member(node, "const")) {
    if (!IsPlainString(value) || !c->IsString() || AsStringView(value) != AsStringView(*c)) {
      AddIssue(issues, path, "must be '" + std::string(c->IsString() ? c->GetString() : "") + "'",
               "value");
    }
    return;
  }
  if (const JsonValue* e = Member(node, "enum"); e && e->IsArray()) {
    if (IsPlainString(value)) {
      for (const auto& option : e->GetArray()) {
        if (option.IsString() && AsStringView(option) == AsStringView(value)) return;
      }
    }
    std::string allowed;
    for (const auto& option : e->GetArray()) {
      if (!allowed.empty()) allowed += ", ";
      if (option.IsString()) allowed += option.GetString();
    }
    AddIssue(issues, path, "must be one of: " + allowed, "code-invalid");
    return;
  }
  std::string ref = RefName(node);
  if (!ref.empty()) {
    ValidateDefinition(value, ref, path, issues);
    return;
  }
  if (auto pattern = StringMember(node, "pattern")) {
    auto it = primitive_by_pattern_.find(std::string(*pattern));
    if (it != primitive_by_pattern_.end()) {
      ValidateDefinition(value, it->second, path, issues);
      return;
    }
  }
  if (type) {
    bool ok = *type == "string"    ? IsPlainString(value)
              : *type == "number"  ? IsNumber(value)
              : *type == "boolean" ? value.IsBool()
              : *type == "object"  ? value.IsObject()
                                   : true;
    if (!ok) AddIssue(issues, path, "must be a JSON " + std::string(*type), "value");
    return;
  }
  if (const JsonValue* one_of = Member(node, "oneOf"); one_of) {
    ValidateResource(value, path, issues);
  }
}

}  // namespace fls::fhir
