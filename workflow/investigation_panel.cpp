#include "workflow/investigation_panel.h"

#include <rapidjson/document.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "workflow/ucum.h"

namespace fls::workflow {

namespace {

std::string Str(const rapidjson::Value& o, const char* name, const std::string& where,
                bool required = true) {
  if (!o.IsObject() || !o.HasMember(name) || !o[name].IsString()) {
    if (!required) return "";
    throw std::invalid_argument(where + ": \"" + name + "\" must be a string");
  }
  return std::string(o[name].GetString(), o[name].GetStringLength());
}

PanelCoding ParseCoding(const rapidjson::Value& o, const std::string& where) {
  PanelCoding c;
  c.system = Str(o, "system", where);
  c.code = Str(o, "code", where);
  std::string resource = Str(o, "resource", where, false);
  if (!resource.empty()) {
    if (resource != "Observation" && resource != "Procedure" && resource != "Condition") {
      throw std::invalid_argument(where + ": resource must be Observation, Procedure or Condition");
    }
    c.resource = resource;
  }
  return c;
}

}  // namespace

InvestigationPanel InvestigationPanel::Parse(std::string_view text) {
  rapidjson::Document d;
  d.Parse(text.data(), text.size());
  if (d.HasParseError() || !d.IsObject())
    throw std::invalid_argument("investigation panel: not a JSON object");
  InvestigationPanel p;
  p.version_ = Str(d, "version", "investigation panel");
  if (!d.HasMember("items") || !d["items"].IsArray() || d["items"].Empty()) {
    throw std::invalid_argument("investigation panel: \"items\" must be a non-empty array");
  }
  for (rapidjson::SizeType i = 0; i < d["items"].Size(); ++i) {
    const auto& o = d["items"][i];
    std::string where = "investigation panel item " + std::to_string(i);
    PanelItem item;
    item.code = Str(o, "code", where);
    where += " (" + item.code + ")";
    if (p.Item(item.code)) throw std::invalid_argument(where + ": listed twice");
    item.display = Str(o, "display", where);
    item.kind = Str(o, "kind", where);
    if (item.kind != "lab" && item.kind != "imaging" && item.kind != "assessment") {
      throw std::invalid_argument(where + ": kind must be lab, imaging or assessment");
    }
    if (o.HasMember("required")) {
      if (!o["required"].IsBool())
        throw std::invalid_argument(where + ": required must be true or false");
      item.required = o["required"].GetBool();
    }
    item.when = Str(o, "when", where, false);
    if (!item.when.empty() && item.when != "spine-imaging-criteria") {
      throw std::invalid_argument(where + ": when must be spine-imaging-criteria");
    }
    if (!o.HasMember("order")) throw std::invalid_argument(where + ": \"order\" is missing");
    item.order = ParseCoding(o["order"], where + " order");
    if (!o.HasMember("results") || !o["results"].IsArray() || o["results"].Empty()) {
      throw std::invalid_argument(where + ": \"results\" must be a non-empty array");
    }
    for (const auto& r : o["results"].GetArray())
      item.results.push_back(ParseCoding(r, where + " result"));
    item.source = Str(o, "source", where);
    p.items_.push_back(std::move(item));
  }
  if (d.HasMember("spineImagingCriteria")) {
    const auto& o = d["spineImagingCriteria"];
    const std::string where = "investigation panel spineImagingCriteria";
    auto strings = [&](const char* name) {
      std::vector<std::string> out;
      if (!o.IsObject() || !o.HasMember(name) || !o[name].IsArray())
        throw std::invalid_argument(where + ": \"" + std::string(name) + "\" must be an array");
      for (const auto& v : o[name].GetArray()) {
        if (!v.IsString() || v.GetStringLength() == 0)
          throw std::invalid_argument(where + ": \"" + std::string(name) + "\" holds strings");
        out.emplace_back(v.GetString(), v.GetStringLength());
      }
      return out;
    };
    p.spine_imaging_.fracture_sites = strings("fractureSites");
    p.spine_imaging_.medication_atc_prefixes = strings("medicationAtcPrefixes");
    if (!o.HasMember("heightLoss") || !o["heightLoss"].IsArray())
      throw std::invalid_argument(where + ": \"heightLoss\" must be an array");
    for (const auto& c : o["heightLoss"].GetArray())
      p.spine_imaging_.height_loss.push_back(ParseCoding(c, where + " heightLoss"));
    p.spine_imaging_.source = Str(o, "source", where);
  }
  if (d.HasMember("flags")) {
    if (!d["flags"].IsArray())
      throw std::invalid_argument("investigation panel: \"flags\" must be an array");
    for (rapidjson::SizeType i = 0; i < d["flags"].Size(); ++i) {
      const auto& o = d["flags"][i];
      std::string where = "investigation panel flag " + std::to_string(i);
      FlagRule f;
      f.code = Str(o, "code", where);
      where += " (" + f.code + ")";
      f.display = Str(o, "display", where);
      f.item = Str(o, "item", where);
      if (!p.Item(f.item)) throw std::invalid_argument(where + ": no item " + f.item);
      f.source = Str(o, "source", where);
      std::string interpretation = Str(o, "interpretation", where, false);
      if (!interpretation.empty()) {
        if (interpretation != "abnormal")
          throw std::invalid_argument(where + ": interpretation must be abnormal");
        f.on_abnormal_interpretation = true;
      } else {
        std::string cmp = Str(o, "comparator", where);
        if (cmp != "<" && cmp != ">")
          throw std::invalid_argument(where + ": comparator must be < or >");
        f.comparator = cmp[0];
        if (!o.HasMember("thresholds") || !o["thresholds"].IsArray() || o["thresholds"].Empty()) {
          throw std::invalid_argument(where + ": \"thresholds\" must be a non-empty array");
        }
        for (const auto& t : o["thresholds"].GetArray()) {
          if (!t.IsObject() || !t.HasMember("value") || !t["value"].IsNumber()) {
            throw std::invalid_argument(where + ": a threshold needs a numeric value");
          }
          FlagThreshold th{t["value"].GetDouble(), Str(t, "unit", where)};
          if (!IsKnownUcum(th.unit))
            throw std::invalid_argument(where + ": unit " + th.unit +
                                        " is not UCUM this server reads");
          f.thresholds.push_back(std::move(th));
        }
      }
      p.flags_.push_back(std::move(f));
    }
  }
  return p;
}

const PanelItem* InvestigationPanel::Item(std::string_view code) const {
  for (const auto& i : items_) {
    if (i.code == code) return &i;
  }
  return nullptr;
}

const PanelItem* InvestigationPanel::ItemForResult(std::string_view system, std::string_view code,
                                                   std::string_view resource_type) const {
  for (const auto& i : items_) {
    for (const auto& r : i.results) {
      if (r.system == system && r.code == code && r.resource == resource_type) return &i;
    }
  }
  return nullptr;
}

FlagCheck InvestigationPanel::CheckValue(std::string_view item, double value,
                                         std::string_view unit) const {
  FlagCheck out;
  for (const auto& f : flags_) {
    if (f.item != item || f.on_abnormal_interpretation) continue;
    // The threshold in the result's own unit first (no conversion, no rounding), else one the
    // result converts to by UCUM alone.
    const FlagThreshold* chosen = nullptr;
    double v = value;
    for (const auto& t : f.thresholds) {
      if (t.unit == unit) {
        chosen = &t;
        break;
      }
    }
    if (!chosen) {
      for (const auto& t : f.thresholds) {
        if (auto converted = ConvertUcum(value, unit, t.unit)) {
          chosen = &t;
          v = *converted;
          break;
        }
      }
    }
    if (!chosen) {
      out.unit_not_comparable = true;
      continue;
    }
    // Converted values can land a rounding error away from the threshold (2140 umol/L is
    // 2.1399999 mmol/L): compare at a precision no laboratory reports.
    double eps = 1e-9 * std::max(1.0, std::abs(chosen->value));
    bool fires = f.comparator == '<' ? v < chosen->value - eps : v > chosen->value + eps;
    if (fires) out.hits.push_back({&f, *chosen, v});
  }
  return out;
}

FlagCheck InvestigationPanel::CheckInterpretation(std::string_view item, bool abnormal) const {
  FlagCheck out;
  for (const auto& f : flags_) {
    if (f.item == item && f.on_abnormal_interpretation && abnormal) out.hits.push_back({&f, {}, 0});
  }
  return out;
}

}  // namespace fls::workflow
