#include "workflow/fracture_codes.h"

#include <rapidjson/document.h>

#include <stdexcept>

namespace fls::workflow {

namespace {

bool Matches(const CodeEntry& e, const std::string& code) {
  if (e.exact ? code.size() != e.pattern.size() : code.size() < e.pattern.size()) return false;
  for (size_t i = 0; i < e.pattern.size(); ++i) {
    if (e.pattern[i] != '?' && e.pattern[i] != code[i]) return false;
  }
  return true;
}

std::string Str(const rapidjson::Value& obj, const char* name, size_t index, bool required) {
  auto it = obj.FindMember(name);
  if (it == obj.MemberEnd() || !it->value.IsString()) {
    if (required) {
      throw std::invalid_argument("fracture code list: entry " + std::to_string(index) + " lacks '" + name + "'");
    }
    return "";
  }
  return it->value.GetString();
}

}  // namespace

const char* CodeKindName(CodeKind kind) {
  switch (kind) {
    case CodeKind::kFracture: return "fracture";
    case CodeKind::kExcludedSite: return "excluded-site";
    case CodeKind::kReview: return "review";
    case CodeKind::kHighEnergyTrauma: return "high-energy-trauma";
  }
  return "fracture";
}

std::string NormalizeCode(std::string_view code) {
  std::string out;
  for (char c : code) {
    if (c == '.' || c == ' ') continue;
    out.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  }
  return out;
}

FractureCodeList FractureCodeList::Parse(std::string_view json_text) {
  rapidjson::Document d;
  d.Parse(json_text.data(), json_text.size());
  if (d.HasParseError() || !d.IsObject()) throw std::invalid_argument("fracture code list: not a JSON object");
  FractureCodeList list;
  if (d.HasMember("version") && d["version"].IsString()) list.version_ = d["version"].GetString();
  if (d.HasMember("sameFractureWindowDays") && d["sameFractureWindowDays"].IsInt()) {
    list.same_fracture_window_days_ = d["sameFractureWindowDays"].GetInt();
  }
  if (!d.HasMember("systems") || !d["systems"].IsObject()) {
    throw std::invalid_argument("fracture code list: 'systems' is missing");
  }
  for (const auto& m : d["systems"].GetObject()) {
    if (!m.value.IsArray()) throw std::invalid_argument("fracture code list: systems." + std::string(m.name.GetString()));
    for (const auto& url : m.value.GetArray()) {
      if (url.IsString()) list.systems_.emplace_back(url.GetString(), m.name.GetString());
    }
  }
  if (!d.HasMember("entries") || !d["entries"].IsArray()) {
    throw std::invalid_argument("fracture code list: 'entries' is missing");
  }
  size_t i = 0;
  for (const auto& e : d["entries"].GetArray()) {
    if (!e.IsObject()) throw std::invalid_argument("fracture code list: entry " + std::to_string(i) + " is not an object");
    CodeEntry entry;
    entry.system_alias = Str(e, "system", i, true);
    if (!d["systems"].HasMember(entry.system_alias.c_str())) {
      throw std::invalid_argument("fracture code list: entry " + std::to_string(i) + " names the unknown system '" +
                                  entry.system_alias + "'");
    }
    entry.code = Str(e, "code", i, true);
    entry.pattern = NormalizeCode(entry.code);
    std::string match = Str(e, "match", i, false);
    entry.exact = match == "exact";
    std::string kind = Str(e, "kind", i, true);
    if (kind == "fracture") entry.kind = CodeKind::kFracture;
    else if (kind == "excluded-site") entry.kind = CodeKind::kExcludedSite;
    else if (kind == "review") entry.kind = CodeKind::kReview;
    else if (kind == "high-energy-trauma") entry.kind = CodeKind::kHighEnergyTrauma;
    else throw std::invalid_argument("fracture code list: entry " + std::to_string(i) + " has the unknown kind '" + kind + "'");
    entry.site = Str(e, "site", i, entry.kind == CodeKind::kFracture);
    entry.grio = Str(e, "grio", i, entry.kind == CodeKind::kFracture);
    if (entry.kind == CodeKind::kFracture && entry.grio != "severe" && entry.grio != "non-severe" && entry.grio != "ribs") {
      throw std::invalid_argument("fracture code list: entry " + std::to_string(i) + ": grio must be severe, non-severe or ribs");
    }
    entry.display = Str(e, "display", i, false);
    entry.reason = Str(e, "reason", i, false);
    list.entries_.push_back(std::move(entry));
    ++i;
  }
  return list;
}

const CodeEntry* FractureCodeList::Lookup(const Coding& coding) const {
  std::string alias;
  for (const auto& [url, a] : systems_) {
    if (url == coding.system) alias = a;
  }
  if (alias.empty()) return nullptr;
  std::string code = NormalizeCode(coding.code);
  const CodeEntry* best = nullptr;
  for (const auto& e : entries_) {
    if (e.system_alias != alias || !Matches(e, code)) continue;
    if (e.exact) return &e;
    if (!best || e.pattern.size() > best->pattern.size()) best = &e;
  }
  return best;
}

std::vector<std::string> FractureCodeList::SystemUrls(const std::string& alias) const {
  std::vector<std::string> out;
  for (const auto& [url, a] : systems_) {
    if (a == alias) out.push_back(url);
  }
  return out;
}

}  // namespace fls::workflow
