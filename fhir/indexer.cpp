#include "fhir/indexer.h"

#include <set>
#include <tuple>

#include "fhir/fhir_date.h"
#include "fhir/text.h"

namespace fls::fhir {

namespace {

bool LooksLikeType(std::string_view s) {
  if (s.empty() || s[0] < 'A' || s[0] > 'Z') return false;
  for (char c : s) {
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'))) return false;
  }
  return true;
}

void CollectSegments(const JsonValue& node, const std::vector<std::string_view>& segs, size_t i,
                     std::vector<const JsonValue*>& out) {
  if (node.IsArray()) {
    for (const auto& item : node.GetArray()) CollectSegments(item, segs, i, out);
    return;
  }
  if (i == segs.size()) {
    out.push_back(&node);
    return;
  }
  if (!node.IsObject()) return;
  std::string_view seg = segs[i];
  if (seg.size() > 3 && seg.substr(seg.size() - 3) == "[x]") {
    std::string_view prefix = seg.substr(0, seg.size() - 3);
    for (const auto& m : node.GetObject()) {
      std::string_view name(m.name.GetString(), m.name.GetStringLength());
      if (name.size() > prefix.size() && name.substr(0, prefix.size()) == prefix &&
          name[prefix.size()] >= 'A' && name[prefix.size()] <= 'Z') {
        CollectSegments(m.value, segs, i + 1, out);
      }
    }
    return;
  }
  if (const JsonValue* child = Member(node, seg)) CollectSegments(*child, segs, i + 1, out);
}

// Values longer than this are stored but not indexed (a btree row holds about 2.7 kB): such an
// identifier or code cannot be searched, which no real one needs.
constexpr size_t kMaxIndexedToken = 1024;

void AddToken(db::IndexRows& rows, const std::string& param, std::optional<std::string> system,
              std::string code) {
  if (code.empty() || code.size() > kMaxIndexedToken || (system && system->size() > kMaxIndexedToken)) return;
  rows.tokens.push_back({param, std::move(system), std::move(code)});
}

void ExtractTokens(const JsonValue& v, const std::string& param, db::IndexRows& rows) {
  if (IsPlainString(v)) {
    AddToken(rows, param, std::nullopt, std::string(AsStringView(v)));
  } else if (v.IsBool()) {
    AddToken(rows, param, std::nullopt, v.GetBool() ? "true" : "false");
  } else if (v.IsObject()) {
    if (const JsonValue* coding = Member(v, "coding"); coding && coding->IsArray()) {
      for (const auto& c : coding->GetArray()) ExtractTokens(c, param, rows);
      return;
    }
    auto system = StringMember(v, "system");
    std::optional<std::string> sys = system ? std::optional<std::string>(std::string(*system)) : std::nullopt;
    if (auto code = StringMember(v, "code")) {
      AddToken(rows, param, sys, std::string(*code));
    } else if (auto value = StringMember(v, "value")) {  // Identifier, ContactPoint
      AddToken(rows, param, sys, std::string(*value));
    }
  }
}

// A string matches from the start of its whole value (R4 search.html#string, fhir-contract.md):
// each name part is a value of its own, "Saint-Étienne" is found by "saint", not by "etienne".
void AddString(db::IndexRows& rows, const std::string& param, std::string_view value) {
  if (value.empty()) return;
  rows.strings.push_back({param, Utf8Prefix(NormalizeForSearch(value), kIndexedPrefix), Utf8Prefix(value, kMaxIndexedToken)});
}

void ExtractStrings(const JsonValue& v, const std::string& param, db::IndexRows& rows) {
  if (IsPlainString(v)) {
    AddString(rows, param, AsStringView(v));
    return;
  }
  if (!v.IsObject()) return;
  // HumanName and Address parts (R4 search.html#string: "name" searches every part).
  static const char* kParts[] = {"text", "family", "given", "prefix", "suffix", "line", "city",
                                 "district", "state", "postalCode", "country"};
  for (const char* part : kParts) {
    const JsonValue* p = Member(v, part);
    if (!p) continue;
    if (p->IsArray()) {
      for (const auto& item : p->GetArray()) {
        if (IsPlainString(item)) AddString(rows, param, AsStringView(item));
      }
    } else if (IsPlainString(*p)) {
      AddString(rows, param, AsStringView(*p));
    }
  }
}

void ExtractDates(const JsonValue& v, const std::string& param, db::IndexRows& rows) {
  if (IsPlainString(v)) {
    if (auto r = ParseFhirDate(AsStringView(v))) {
      rows.dates.push_back({param, FormatPgInstant(r->lo_us), FormatPgInstant(r->hi_us)});
    }
    return;
  }
  if (!v.IsObject()) return;
  auto start = StringMember(v, "start");
  auto end = StringMember(v, "end");
  if (!start && !end) return;
  std::optional<DateRange> s = start ? ParseFhirDate(*start) : std::nullopt;
  std::optional<DateRange> e = end ? ParseFhirDate(*end) : std::nullopt;
  int64_t lo = s ? s->lo_us : kMinusInfinity;
  int64_t hi = e ? e->hi_us : kPlusInfinity;
  if (lo != kMinusInfinity || hi != kPlusInfinity) {
    rows.dates.push_back({param, FormatPgInstant(lo), FormatPgInstant(hi)});
  }
}

void ExtractReferences(const JsonValue& v, const SearchParamDef& def, db::IndexRows& rows) {
  std::string_view ref;
  if (IsPlainString(v)) {
    ref = AsStringView(v);  // canonical
  } else if (auto r = StringMember(v, "reference")) {
    ref = *r;
  } else {
    return;
  }
  auto parsed = ParseReference(ref);
  if (!parsed) return;
  if (!def.targets.empty()) {
    bool ok = false;
    for (const auto& t : def.targets) ok = ok || (parsed->type && *parsed->type == t);
    if (!ok) return;
  }
  if (parsed->id.size() > kMaxIndexedToken) return;
  rows.references.push_back({def.name, parsed->type, parsed->id});
}

void ExtractQuantities(const JsonValue& v, const std::string& param, db::IndexRows& rows) {
  if (!v.IsObject()) return;
  const JsonValue* value = Member(v, "value");
  if (!value) return;
  auto text = NumberText(*value);
  if (!text) return;
  auto system = StringMember(v, "system");
  auto code = StringMember(v, "code");
  if (!code) code = StringMember(v, "unit");
  rows.quantities.push_back({param, *text,
                             system ? std::optional<std::string>(std::string(*system)) : std::nullopt,
                             code ? std::optional<std::string>(std::string(*code)) : std::nullopt});
}

template <typename T, typename Key>
void Dedupe(std::vector<T>& v, Key key) {
  std::set<decltype(key(v[0]))> seen;
  std::vector<T> out;
  for (auto& item : v) {
    if (seen.insert(key(item)).second) out.push_back(std::move(item));
  }
  v = std::move(out);
}

}  // namespace

std::optional<ParsedReference> ParseReference(std::string_view ref, bool (*is_type)(std::string_view)) {
  if (ref.empty() || ref[0] == '#') return std::nullopt;
  if (ref.rfind("urn:", 0) == 0) return ParsedReference{std::nullopt, std::string(ref)};
  auto type_ok = [&](std::string_view t) { return is_type ? is_type(t) : LooksLikeType(t); };
  // Strip a version: .../_history/n
  std::string_view core = ref;
  if (auto h = core.find("/_history/"); h != std::string_view::npos) core = core.substr(0, h);
  bool absolute = core.find("://") != std::string_view::npos;
  auto last = core.rfind('/');
  if (last != std::string_view::npos && last > 0) {
    std::string_view id = core.substr(last + 1);
    auto prev = core.rfind('/', last - 1);
    std::string_view type = core.substr(prev == std::string_view::npos ? 0 : prev + 1,
                                        last - (prev == std::string_view::npos ? 0 : prev + 1));
    if (type_ok(type) && IsValidId(id)) {
      // An absolute URL names a resource on another server: it keeps its type but its id is the
      // whole URL, so it never matches a local resource of the same id.
      if (absolute) return ParsedReference{std::string(type), std::string(core)};
      if (prev == std::string_view::npos) return ParsedReference{std::string(type), std::string(id)};
    }
  }
  return ParsedReference{std::nullopt, std::string(ref)};
}

void CollectPath(const JsonValue& node, std::string_view path, std::vector<const JsonValue*>& out) {
  std::vector<std::string_view> segs;
  size_t start = 0;
  while (start <= path.size()) {
    size_t dot = path.find('.', start);
    if (dot == std::string_view::npos) dot = path.size();
    segs.push_back(path.substr(start, dot - start));
    start = dot + 1;
  }
  CollectSegments(node, segs, 0, out);
}

db::IndexRows Indexer::Extract(std::string_view type, const JsonValue& resource) const {
  db::IndexRows rows;
  for (const auto& def : registry_.ForType(type)) {
    if (def.paths.empty()) continue;  // _id and _lastUpdated live on the resource row
    std::vector<const JsonValue*> values;
    if (!def.extension_url.empty()) {
      if (const JsonValue* ext = Member(resource, "extension"); ext && ext->IsArray()) {
        for (const auto& x : ext->GetArray()) {
          if (StringMember(x, "url") != std::optional<std::string_view>(def.extension_url)) continue;
          for (const auto& path : def.paths) CollectPath(x, path, values);
        }
      }
    } else {
      for (const auto& path : def.paths) CollectPath(resource, path, values);
    }
    for (const JsonValue* v : values) {
      switch (def.type) {
        case ParamType::kToken:
        case ParamType::kUri:
          if (def.present_is_true && !v->IsBool()) {
            if (!v->IsNull()) AddToken(rows, def.name, std::nullopt, "true");
          } else {
            ExtractTokens(*v, def.name, rows);
          }
          break;
        case ParamType::kString:
          ExtractStrings(*v, def.name, rows);
          break;
        case ParamType::kDate:
          ExtractDates(*v, def.name, rows);
          break;
        case ParamType::kReference:
          ExtractReferences(*v, def, rows);
          break;
        case ParamType::kQuantity:
          ExtractQuantities(*v, def.name, rows);
          break;
        default:
          break;
      }
    }
  }
  Dedupe(rows.tokens, [](const auto& t) { return std::make_tuple(t.param, t.system, t.code); });
  Dedupe(rows.strings, [](const auto& s) { return std::make_tuple(s.param, s.norm, s.exact); });
  Dedupe(rows.dates, [](const auto& d) { return std::make_tuple(d.param, d.lo, d.hi); });
  Dedupe(rows.references,
         [](const auto& r) { return std::make_tuple(r.param, r.target_type, r.target_id); });
  Dedupe(rows.quantities,
         [](const auto& q) { return std::make_tuple(q.param, q.value, q.system, q.code); });
  return rows;
}

std::vector<std::pair<std::string, std::string>> CodingsOf(const JsonValue& resource, std::string_view element) {
  std::vector<std::pair<std::string, std::string>> out;
  std::vector<const JsonValue*> codings;
  CollectPath(resource, std::string(element) + ".coding", codings);
  for (const JsonValue* c : codings) {
    auto code = StringMember(*c, "code");
    if (code) out.emplace_back(std::string(StringMember(*c, "system").value_or("")), std::string(*code));
  }
  return out;
}

}  // namespace fls::fhir
