#include "workflow/drug_list.h"

#include <rapidjson/document.h>

#include <stdexcept>

namespace fls::workflow {

namespace {

std::string Str(const rapidjson::Value& o, const char* name, const std::string& where) {
  if (!o.IsObject() || !o.HasMember(name) || !o[name].IsString() || o[name].GetStringLength() == 0) {
    throw std::invalid_argument(where + ": \"" + name + "\" must be a non-empty string");
  }
  return std::string(o[name].GetString(), o[name].GetStringLength());
}

}  // namespace

DrugList DrugList::Parse(std::string_view text) {
  rapidjson::Document d;
  d.Parse(text.data(), text.size());
  if (d.HasParseError() || !d.IsObject()) throw std::invalid_argument("drug list: not a JSON object");
  DrugList list;
  list.atc_system_ = Str(d, "atcSystem", "drug list");
  if (!d.HasMember("drugs") || !d["drugs"].IsArray() || d["drugs"].Empty()) {
    throw std::invalid_argument("drug list: \"drugs\" must be a non-empty array");
  }
  for (rapidjson::SizeType i = 0; i < d["drugs"].Size(); ++i) {
    std::string where = "drug list entry " + std::to_string(i);
    const auto& o = d["drugs"][i];
    DrugEntry e{Str(o, "atc", where), Str(o, "display", where), Str(o, "class", where), Str(o, "source", where)};
    for (const auto& other : list.drugs_) {
      if (other.atc == e.atc) throw std::invalid_argument(where + " (" + e.atc + "): listed twice");
    }
    list.drugs_.push_back(std::move(e));
  }
  if (d.HasMember("mappings")) {
    if (!d["mappings"].IsArray()) throw std::invalid_argument("drug list: \"mappings\" must be an array");
    for (rapidjson::SizeType i = 0; i < d["mappings"].Size(); ++i) {
      std::string where = "drug list mapping " + std::to_string(i);
      const auto& o = d["mappings"][i];
      DrugMapping m{Str(o, "system", where), Str(o, "code", where), Str(o, "atc", where),
                    Str(o, "display", where), Str(o, "source", where)};
      if (!list.Find(m.atc)) {
        throw std::invalid_argument(where + " (" + m.code + "): maps to " + m.atc + ", not an osteoporosis drug of the list");
      }
      list.mappings_.push_back(std::move(m));
    }
  }
  return list;
}

const DrugEntry* DrugList::Find(std::string_view atc) const {
  const DrugEntry* best = nullptr;
  for (const auto& e : drugs_) {
    if (atc.size() >= e.atc.size() && atc.substr(0, e.atc.size()) == e.atc &&
        (!best || e.atc.size() > best->atc.size())) {
      best = &e;
    }
  }
  return best;
}

std::optional<std::string> DrugList::AtcOf(std::string_view system, std::string_view code) const {
  if (system == atc_system_) {
    if (IsOsteoporosisDrug(code)) return std::string(code);
    return std::nullopt;
  }
  for (const auto& m : mappings_) {
    if (m.system == system && m.code == code) return m.atc;
  }
  return std::nullopt;
}

bool IsOsteoporosisDrugCheck(std::string_view atc, const void* context) {
  return context != nullptr && static_cast<const DrugList*>(context)->IsOsteoporosisDrug(atc);
}

}  // namespace fls::workflow
