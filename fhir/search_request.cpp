#include "fhir/search_request.h"

#include <algorithm>
#include <charconv>

#include "fhir/fhir_date.h"
#include "fhir/indexer.h"
#include "fhir/text.h"

namespace fls::fhir {

namespace {

using Alt = db::SearchPredicate::Alternative;
using Table = db::SearchPredicate::Table;

[[noreturn]] void Bad(const std::string& param, const std::string& msg) {
  throw FhirError(ErrorCode::kBadRequest, "search parameter '" + param + "': " + msg, param);
}

const char* kPrefixes[] = {"eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"};

std::string SplitPrefix(std::string& value) {
  if (value.size() >= 2) {
    std::string p = value.substr(0, 2);
    for (const char* k : kPrefixes) {
      if (p == k) {
        value = value.substr(2);
        return p;
      }
    }
  }
  return "eq";
}

Alt ParseDateValue(const std::string& param, std::string value) {
  Alt a;
  a.prefix = SplitPrefix(value);
  auto range = ParseFhirDate(value);
  if (!range) Bad(param, "'" + value + "' is not a FHIR date, dateTime or instant");
  a.lo = FormatPgInstant(range->lo_us);
  a.hi = FormatPgInstant(range->hi_us);
  return a;
}

Alt ParseTokenValue(const std::string& param, const std::string& raw) {
  Alt a;
  auto parts = SplitEscaped(raw, '|');
  if (parts.size() > 2) Bad(param, "a token has at most one unescaped '|'");
  if (parts.size() == 1) {
    a.code = Unescape(parts[0]);
    if (a.code.empty()) Bad(param, "empty value");
    return a;
  }
  std::string system = Unescape(parts[0]);
  std::string code = Unescape(parts[1]);
  if (code.empty()) {
    if (system.empty()) Bad(param, "empty value");
    a.system = system;
    a.system_only = true;
    return a;
  }
  a.code = code;
  a.match_system = true;
  if (!system.empty()) a.system = system;  // "|code": the code without a system
  return a;
}

// Half a unit of the last digit of a decimal: "5.4" -> "0.05", "100" -> "0.5".
std::string HalfUnit(const std::string& number) {
  if (number.find_first_of("eE") != std::string::npos) return "0";
  auto dot = number.find('.');
  size_t decimals = dot == std::string::npos ? 0 : number.size() - dot - 1;
  return "0." + std::string(decimals, '0') + "5";
}

bool IsDecimal(const std::string& s) {
  if (s.empty()) return false;
  size_t i = s[0] == '-' ? 1 : 0;
  bool digits = false, dot = false;
  for (; i < s.size(); ++i) {
    if (s[i] >= '0' && s[i] <= '9') {
      digits = true;
    } else if (s[i] == '.' && !dot) {
      dot = true;
    } else {
      return false;
    }
  }
  return digits && s.size() <= 40;
}

Alt ParseQuantityValue(const std::string& param, const std::string& raw) {
  auto parts = SplitEscaped(raw, '|');
  if (parts.size() != 1 && parts.size() != 3) Bad(param, "expected [prefix]number[|system|code]");
  Alt a;
  std::string number = Unescape(parts[0]);
  a.prefix = SplitPrefix(number);
  if (!IsDecimal(number)) Bad(param, "'" + number + "' is not a number");
  a.lo = number;
  a.hi = HalfUnit(number);
  if (parts.size() == 3) {
    std::string system = Unescape(parts[1]);
    if (!system.empty()) a.system = system;
    a.code = Unescape(parts[2]);
  }
  return a;
}

Alt ParseReferenceValue(const std::string& param, const SearchParamDef& def, const std::string& raw,
                        const std::optional<std::string>& type_modifier) {
  Alt a;
  std::string value = Unescape(raw);
  if (value.empty()) Bad(param, "empty value");
  if (value.find('/') == std::string::npos && value.find(':') == std::string::npos) {
    a.target_id = value;
    if (type_modifier) {
      a.target_type = type_modifier;
    } else if (def.targets.size() == 1) {
      a.target_type = def.targets[0];
    }
    return a;
  }
  auto parsed = ParseReference(value);
  if (!parsed) Bad(param, "'" + value + "' is not a reference");
  // A relative value must be Type/id: "Patient/" or "Patient/a/b" would silently match nothing.
  if (!parsed->type && value.rfind("urn:", 0) != 0 && value.find("://") == std::string::npos) {
    Bad(param, "'" + value + "' is not a reference (Type/id, an id, or an absolute URL)");
  }
  a.target_type = parsed->type;
  a.target_id = parsed->id;
  if (type_modifier && parsed->type && *parsed->type != *type_modifier) {
    Bad(param, "the type modifier and the reference's type differ");
  }
  return a;
}

bool IsControl(const std::string& name) {
  static const char* kControl[] = {"_count", "_sort", "_total", "_format", "_pretty", "_summary",
                                   "_getpages", "_getpagesoffset", "_elements", "_cursor",
                                   "_include", "_revinclude"};
  for (const char* c : kControl) {
    if (name == c) return true;
  }
  return false;
}

int ParseInt(const std::string& param, const std::string& value, int min) {
  int v = 0;
  auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
  if (ec != std::errc() || ptr != value.data() + value.size() || v < min) {
    Bad(param, "'" + value + "' is not an integer >= " + std::to_string(min));
  }
  return v;
}

}  // namespace

std::vector<QueryParam> ParseQueryString(std::string_view raw) {
  std::vector<QueryParam> out;
  size_t start = 0;
  while (start < raw.size()) {
    size_t amp = raw.find('&', start);
    if (amp == std::string_view::npos) amp = raw.size();
    std::string_view part = raw.substr(start, amp - start);
    start = amp + 1;
    if (part.empty()) continue;
    size_t eq = part.find('=');
    auto name = PercentDecode(part.substr(0, eq), true);
    auto value = PercentDecode(eq == std::string_view::npos ? "" : part.substr(eq + 1), true);
    if (!name || !value) {
      throw FhirError(ErrorCode::kBadRequest,
                      "the query string has a malformed percent-escape or is not valid UTF-8");
    }
    if (name->empty()) throw FhirError(ErrorCode::kBadRequest, "a query parameter has no name");
    out.push_back({std::move(*name), std::move(*value)});
  }
  return out;
}

SearchRequest SearchParser::Parse(std::string_view type, const std::vector<QueryParam>& params,
                                  bool lenient) const {
  SearchRequest req;
  req.spec.type = std::string(type);
  req.count = limits_.default_count;
  std::vector<std::pair<std::string, std::string>> canonical;

  if (params.size() > 64) {
    throw FhirError(ErrorCode::kBadRequest, "a search takes at most 64 parameters");
  }
  // One filter parameter (already looked up as `def`, of the searched type or a chain's target)
  // into its predicate.
  auto build = [&](const std::string& full, const std::string& name, const std::string& modifier,
                   const SearchParamDef* def, const std::string& value) {
    db::SearchPredicate pred;
    pred.param = name;
    if (modifier == "missing") {
      if (value != "true" && value != "false") Bad(full, "expected true or false");
      if (name == "_id" || name == "_lastUpdated") Bad(full, ":missing is not supported here");
      pred.missing = value == "true";
    }
    std::optional<std::string> type_modifier;
    switch (def->type) {
      case ParamType::kToken:
      case ParamType::kUri:
        pred.table = name == "_id" ? Table::kId : Table::kToken;
        if (modifier == "not") pred.negate = true;
        else if (!modifier.empty() && modifier != "missing") Bad(full, "modifier :" + modifier + " is not supported");
        break;
      case ParamType::kString:
        pred.table = Table::kString;
        if (!modifier.empty() && modifier != "missing" && modifier != "exact" && modifier != "contains") {
          Bad(full, "modifier :" + modifier + " is not supported");
        }
        break;
      case ParamType::kDate:
        pred.table = name == "_lastUpdated" ? Table::kLastUpdated : Table::kDate;
        if (!modifier.empty() && modifier != "missing") Bad(full, "modifier :" + modifier + " is not supported");
        break;
      case ParamType::kReference:
        pred.table = Table::kReference;
        if (!modifier.empty() && modifier != "missing") {
          if (modifier.empty() || modifier[0] < 'A' || modifier[0] > 'Z') {
            Bad(full, "modifier :" + modifier + " is not supported");
          }
          type_modifier = modifier;
          if (!registry_.Find(modifier, "_id")) Bad(full, "modifier :" + modifier + " is not a resource type");
          if (!def->targets.empty() && std::find(def->targets.begin(), def->targets.end(), modifier) == def->targets.end()) {
            Bad(full, "'" + name + "' never references a " + modifier);
          }
        }
        break;
      case ParamType::kQuantity:
        pred.table = Table::kQuantity;
        if (!modifier.empty() && modifier != "missing") Bad(full, "modifier :" + modifier + " is not supported");
        break;
      default:
        Bad(full, "not supported");
    }
    if (!pred.missing) {
      auto values = SplitEscaped(value, ',');
      if (values.size() > 100) Bad(full, "at most 100 comma-separated values");
      for (const auto& raw : values) {
        Alt a;
        switch (pred.table) {
          case Table::kId:
            a.code = Unescape(raw);
            if (!IsValidId(a.code)) Bad(full, "'" + a.code + "' is not a valid id");
            break;
          case Table::kToken:
            a = ParseTokenValue(full, raw);
            break;
          case Table::kString:
            a.text = Unescape(raw);
            if (modifier == "exact") {
              a.string_mode = Alt::StringMode::kExact;
            } else {
              // Only the first kIndexedPrefix bytes of each value are indexed.
              a.text = Utf8Prefix(NormalizeForSearch(a.text), kIndexedPrefix);
              a.string_mode = modifier == "contains" ? Alt::StringMode::kContains : Alt::StringMode::kPrefix;
            }
            if (a.text.empty()) Bad(full, "empty value");
            break;
          case Table::kDate:
          case Table::kLastUpdated:
            a = ParseDateValue(full, Unescape(raw));
            break;
          case Table::kReference:
            a = ParseReferenceValue(full, *def, raw, type_modifier);
            break;
          case Table::kQuantity:
            a = ParseQuantityValue(full, raw);
            break;
        }
        pred.any_of.push_back(std::move(a));
      }
    }
    return pred;
  };
  for (const auto& qp : params) {
    const std::string& full = qp.name;
    if (full.size() > 200 || qp.value.size() > 8192) Bad(full.substr(0, 64), "too long");
    if (IsControl(full)) {
      if (full == "_count") {
        req.count = std::min(ParseInt(full, qp.value, 0), limits_.max_count);
      } else if (full == "_total") {
        if (qp.value == "none") req.total = SearchRequest::Total::kNone;
        else if (qp.value == "estimate") req.total = SearchRequest::Total::kEstimate;
        else if (qp.value == "accurate") req.total = SearchRequest::Total::kAccurate;
        else Bad(full, "expected none, estimate or accurate");
      } else if (full == "_summary") {
        if (qp.value == "count") req.summary_count = true;
        else if (qp.value != "false") {
          if (!lenient) Bad(full, "only _summary=count and _summary=false are supported");
          req.warnings.push_back({"warning", "not-supported", "_summary=" + qp.value + " ignored", ""});
        }
      } else if (full == "_elements") {
        if (!lenient) Bad(full, "not supported");
        req.warnings.push_back({"warning", "not-supported", "_elements ignored", ""});
      } else if (full == "_getpages") {
        std::string v = qp.value;
        bool ok = v.size() == 36;
        for (size_t i = 0; ok && i < v.size(); ++i) {
          char c = v[i];
          ok = (i == 8 || i == 13 || i == 18 || i == 23) ? c == '-'
                                                          : ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
        }
        if (!ok) Bad(full, "not a page token of this server");
        req.snapshot_id = v;
      } else if (full == "_include" || full == "_revinclude") {
        auto parts = SplitEscaped(qp.value, ':');
        if (parts.size() < 2 || parts.size() > 3) Bad(full, "expected Type:parameter[:TargetType]");
        SearchRequest::Include inc{parts[0], parts[1], std::nullopt};
        if (parts.size() == 3) inc.target_type = parts[2];
        const SearchParamDef* def = registry_.Find(inc.source_type, inc.param);
        if (!def || def->type != ParamType::kReference) {
          Bad(full, "'" + qp.value + "' names no reference parameter");
        }
        if (full == "_include" && inc.source_type != type) Bad(full, "must start with " + std::string(type));
        if (full == "_revinclude" && inc.target_type && *inc.target_type != type) {
          Bad(full, "the target type must be " + std::string(type));
        }
        if (req.includes.size() + req.revincludes.size() >= 10) Bad(full, "at most 10 includes");
        (full == "_include" ? req.includes : req.revincludes).push_back(inc);
        canonical.emplace_back(full, qp.value);
      } else if (full == "_cursor") {
        if (!IsValidId(qp.value)) Bad(full, "not a page token of this server");
        req.cursor = qp.value;
      } else if (full == "_getpagesoffset") {
        req.snapshot_offset = ParseInt(full, qp.value, 0);
      } else if (full == "_sort") {
        auto keys = SplitEscaped(qp.value, ',');
        if (req.spec.sort.size() + keys.size() > static_cast<size_t>(limits_.max_sort_keys)) {
          Bad("_sort", std::to_string(req.spec.sort.size() + keys.size()) + " sort keys; a search takes at most " +
                           std::to_string(limits_.max_sort_keys));
        }
        for (auto& key : keys) {
          db::SearchSort s;
          if (!key.empty() && key[0] == '-') {
            s.descending = true;
            key = key.substr(1);
          }
          if (key == "_lastUpdated") {
            s.table = Table::kLastUpdated;
          } else if (key == "_id") {
            s.table = Table::kId;
          } else {
            const SearchParamDef* def = registry_.Find(type, key);
            if (!def) Bad("_sort", "unknown parameter '" + key + "' for " + std::string(type));
            switch (def->type) {
              case ParamType::kDate: s.table = Table::kDate; break;
              case ParamType::kString: s.table = Table::kString; break;
              case ParamType::kToken:
              case ParamType::kUri: s.table = Table::kToken; break;
              case ParamType::kQuantity: s.table = Table::kQuantity; break;
              default: Bad("_sort", "cannot sort by the reference parameter '" + key + "'");
            }
            s.param = key;
          }
          req.spec.sort.push_back(s);
        }
      }
      continue;  // _format, _pretty: JSON is the only format; accepted and ignored
    }

    // A filter parameter: name[:modifier]
    std::string name = full, modifier;
    if (auto colon = full.find(':'); colon != std::string::npos) {
      name = full.substr(0, colon);
      modifier = full.substr(colon + 1);
    }
    if (auto dot = full.find('.'); dot != std::string::npos) {
      // A chain, one level: ref[:Type].param[:modifier]=value (R4 search.html#chaining).
      std::string head = full.substr(0, dot), tail = full.substr(dot + 1);
      std::string ref_name = head, ref_type;
      if (auto c = head.find(':'); c != std::string::npos) {
        ref_name = head.substr(0, c);
        ref_type = head.substr(c + 1);
      }
      const SearchParamDef* ref = registry_.Find(type, ref_name);
      if (!ref) {
        if (lenient) {
          req.warnings.push_back({"warning", "not-supported", "unknown search parameter '" + full + "' ignored", ""});
          continue;
        }
        Bad(full, "'" + ref_name + "' is unknown for " + std::string(type) + " (see GET /metadata for the supported ones)");
      }
      if (ref->type != ParamType::kReference) Bad(full, "'" + ref_name + "' is not a reference parameter: it cannot be chained");
      if (tail.find('.') != std::string::npos) Bad(full, "one level of chaining is supported");
      if (ref_type.empty()) {
        if (ref->targets.size() != 1) Bad(full, "name the target type, e.g. " + ref_name + ":Patient." + tail);
        ref_type = ref->targets[0];
      } else if (!registry_.Find(ref_type, "_id")) {
        Bad(full, "modifier :" + ref_type + " is not a resource type");
      } else if (!ref->targets.empty() && std::find(ref->targets.begin(), ref->targets.end(), ref_type) == ref->targets.end()) {
        Bad(full, "'" + ref_name + "' never references a " + ref_type);
      }
      std::string inner = tail, inner_modifier;
      if (auto c = tail.find(':'); c != std::string::npos) {
        inner = tail.substr(0, c);
        inner_modifier = tail.substr(c + 1);
      }
      const SearchParamDef* inner_def = registry_.Find(ref_type, inner);
      if (!inner_def) Bad(full, "'" + inner + "' is unknown for " + ref_type);
      if (inner == "_id" || inner == "_lastUpdated" || inner_modifier == "missing" || inner_modifier == "not") {
        Bad(full, "a chain ends in a parameter of the target's own index (not _id, _lastUpdated, :missing or :not)");
      }
      db::SearchPredicate chained = build(full, inner, inner_modifier, inner_def, qp.value);
      db::SearchPredicate outer;
      outer.table = Table::kReference;
      outer.param = ref_name;
      outer.chain_type = ref_type;
      outer.chain = std::make_shared<const db::SearchPredicate>(std::move(chained));
      canonical.emplace_back(full, qp.value);
      req.spec.where.push_back(std::move(outer));
      continue;
    }
    const SearchParamDef* def = registry_.Find(type, name);
    if (!def) {
      if (lenient) {
        req.warnings.push_back(
            {"warning", "not-supported", "unknown search parameter '" + full + "' ignored", ""});
        continue;
      }
      Bad(full, "unknown for " + std::string(type) + " (see GET /metadata for the supported ones)");
    }
    canonical.emplace_back(full, qp.value);

    req.spec.where.push_back(build(full, name, modifier, def, qp.value));
  }
  std::sort(canonical.begin(), canonical.end());
  for (const auto& [k, v] : canonical) {
    if (!req.canonical_query.empty()) req.canonical_query += '&';
    req.canonical_query += PercentEncode(k) + "=" + PercentEncode(v);
  }
  return req;
}

}  // namespace fls::fhir
