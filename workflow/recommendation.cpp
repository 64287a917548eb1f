#include "workflow/recommendation.h"

#include <rapidjson/document.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <set>
#include <stdexcept>

#include "workflow/civil_date.h"

namespace fls::workflow {

// A rule's `when`: every criterion set must hold (anyOf: one of the alternatives).
struct GrioRules::Criteria {
  std::optional<bool> hip_fracture;
  std::optional<int> vertebral_at_least;
  std::optional<Sex> sex;
  std::optional<int> age_below;
  std::optional<int> age_at_least;
  std::vector<std::string> needs_treatment;  // rule ids: one of them holds
  bool no_low_hip_t_score = false;
  bool no_falls_risk = false;
  bool falls_risk = false;
  bool no_non_vertebral_fracture = false;
  bool climacteric_symptoms = false;
  bool no_severe_fracture = false;
  bool severe_fracture = false;
  bool non_severe_fracture = false;
  std::optional<double> t_score_at_most;
  std::optional<double> t_score_above;
  std::vector<Criteria> any_of;
};

struct GrioRules::Rule {
  std::string id, grade, reason, source;
  Criteria when;
  std::vector<std::string> drugs;
};

GrioRules::GrioRules() = default;
GrioRules::~GrioRules() = default;
GrioRules::GrioRules(GrioRules&&) noexcept = default;
GrioRules& GrioRules::operator=(GrioRules&&) noexcept = default;

namespace {

using Value = rapidjson::Value;

std::string Str(const Value& o, const char* name, const std::string& where, bool required = true) {
  if (!o.IsObject() || !o.HasMember(name) || !o[name].IsString() || o[name].GetStringLength() == 0) {
    if (!required) return "";
    throw std::invalid_argument(where + ": \"" + name + "\" must be a non-empty string");
  }
  return std::string(o[name].GetString(), o[name].GetStringLength());
}

std::vector<std::string> Strings(const Value& o, const char* name, const std::string& where) {
  if (!o.IsObject() || !o.HasMember(name) || !o[name].IsArray() || o[name].Empty()) {
    throw std::invalid_argument(where + ": \"" + name + "\" must be a non-empty array of strings");
  }
  std::vector<std::string> out;
  for (const auto& v : o[name].GetArray()) {
    if (!v.IsString() || v.GetStringLength() == 0) throw std::invalid_argument(where + ": \"" + name + "\" holds strings");
    out.emplace_back(v.GetString(), v.GetStringLength());
  }
  return out;
}

bool True(const Value& v, const std::string& where, const char* name) {
  if (!v.IsBool() || !v.GetBool()) throw std::invalid_argument(where + ": " + name + " must be true");
  return true;
}

GrioRules::Criteria ParseCriteria(const Value& o, const std::string& where) {
  if (!o.IsObject() || o.MemberCount() == 0) throw std::invalid_argument(where + ": \"when\" must be a non-empty object");
  GrioRules::Criteria c;
  for (auto it = o.MemberBegin(); it != o.MemberEnd(); ++it) {
    std::string k(it->name.GetString(), it->name.GetStringLength());
    const Value& v = it->value;
    auto number = [&]() {
      if (!v.IsNumber()) throw std::invalid_argument(where + ": " + k + " must be a number");
      return v.GetDouble();
    };
    if (k == "hipFracture") {
      c.hip_fracture = True(v, where, "hipFracture");
    } else if (k == "vertebralFracturesAtLeast") {
      c.vertebral_at_least = static_cast<int>(number());
    } else if (k == "sex") {
      std::string s = v.IsString() ? v.GetString() : "";
      if (s == "female") c.sex = Sex::kFemale;
      else if (s == "male") c.sex = Sex::kMale;
      else throw std::invalid_argument(where + ": sex must be female or male");
    } else if (k == "ageBelow") {
      c.age_below = static_cast<int>(number());
    } else if (k == "ageAtLeast") {
      c.age_at_least = static_cast<int>(number());
    } else if (k == "needsTreatment") {
      if (!v.IsArray() || v.Empty()) throw std::invalid_argument(where + ": needsTreatment must list rule ids");
      for (const auto& id : v.GetArray()) {
        if (!id.IsString()) throw std::invalid_argument(where + ": needsTreatment must list rule ids");
        c.needs_treatment.emplace_back(id.GetString(), id.GetStringLength());
      }
    } else if (k == "noLowHipTScore") {
      c.no_low_hip_t_score = True(v, where, "noLowHipTScore");
    } else if (k == "noFallsRisk") {
      c.no_falls_risk = True(v, where, "noFallsRisk");
    } else if (k == "fallsRisk") {
      c.falls_risk = True(v, where, "fallsRisk");
    } else if (k == "noNonVertebralFracture") {
      c.no_non_vertebral_fracture = True(v, where, "noNonVertebralFracture");
    } else if (k == "climactericSymptoms") {
      c.climacteric_symptoms = True(v, where, "climactericSymptoms");
    } else if (k == "noSevereFracture") {
      c.no_severe_fracture = True(v, where, "noSevereFracture");
    } else if (k == "severeFracture") {
      c.severe_fracture = True(v, where, "severeFracture");
    } else if (k == "nonSevereFracture") {
      c.non_severe_fracture = True(v, where, "nonSevereFracture");
    } else if (k == "tScoreAtMost") {
      c.t_score_at_most = number();
    } else if (k == "tScoreAbove") {
      c.t_score_above = number();
    } else if (k == "anyOf") {
      if (!v.IsArray() || v.Empty()) throw std::invalid_argument(where + ": anyOf must be a non-empty array");
      for (const auto& alt : v.GetArray()) c.any_of.push_back(ParseCriteria(alt, where + " anyOf"));
    } else {
      throw std::invalid_argument(where + ": unknown criterion " + k);
    }
  }
  return c;
}

std::vector<std::pair<std::string, std::string>> Codes(const Value& d, const char* name) {
  std::vector<std::pair<std::string, std::string>> out;
  if (!d.HasMember(name)) return out;
  if (!d[name].IsArray()) throw std::invalid_argument(std::string("recommendation rules: \"") + name + "\" must be an array");
  for (const auto& c : d[name].GetArray()) {
    std::string where = std::string("recommendation rules ") + name;
    out.emplace_back(Str(c, "system", where), Str(c, "code", where));
    Str(c, "source", where);
  }
  return out;
}

bool HasPrefix(std::string_view s, std::string_view p) { return s.size() >= p.size() && s.substr(0, p.size()) == p; }

std::string Number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// Three-valued: a criterion holds, does not, or cannot be told (the data is missing).
enum class Truth { kFalse, kTrue, kUnknown };

struct Evaluator {
  const RecommendationFacts& f;
  const GrioRules& rules;
  const std::vector<GrioRules::Rule>& all;
  double low_hip;
  std::set<std::string> missing;

  std::optional<double> TScore() const {
    std::optional<double> best, other;
    for (const auto& t : f.t_scores) {
      if (t.site == "lumbar-spine" || t.site == "total-hip" || t.site == "femoral-neck") {
        best = best ? std::min(*best, t.value) : t.value;
      } else {
        other = other ? std::min(*other, t.value) : t.value;
      }
    }
    return best ? best : other;
  }
  std::optional<double> HipTScore() const {
    std::optional<double> best;
    for (const auto& t : f.t_scores) {
      if (t.site == "total-hip" || t.site == "femoral-neck") best = best ? std::min(*best, t.value) : t.value;
    }
    return best;
  }
  // Vertebral fractures as events, not Conditions: codes of one admission (S32.0 with M80.08) or
  // of the same fracture again within 90 days count once (pathway.md section 1).
  int Vertebral() const {
    std::vector<const FractureFact*> rows;
    for (const auto& fr : f.fractures) {
      if (fr.site == "vertebra") rows.push_back(&fr);
    }
    std::stable_sort(rows.begin(), rows.end(), [](const FractureFact* a, const FractureFact* b) {
      return a->day.value_or(INT64_MAX) < b->day.value_or(INT64_MAX);
    });
    std::set<std::string> encounters;
    std::vector<int64_t> days;
    int n = 0;
    for (const auto* fr : rows) {
      if (!fr->encounter.empty() && !encounters.insert(fr->encounter).second) continue;
      bool same = false;
      for (int64_t d : days) same = same || (fr->day && *fr->day - d <= 90 && *fr->day >= d);
      if (same) continue;
      if (fr->day) days.push_back(*fr->day);
      ++n;
    }
    return n;
  }

  // `out` receives what was missing, only when that is why the answer is unknown.
  Truth Eval(const GrioRules::Criteria& c, const std::string& rule, std::set<std::string>& out) {
    std::set<std::string> local;
    bool unknown = false;
    auto need = [&](bool known, const std::string& what) {
      if (!known) {
        local.insert(what + " (" + rule + ")");
        unknown = true;
      }
      return known;
    };
    auto fail = [] { return Truth::kFalse; };
    if (c.hip_fracture) {
      bool hip = false;
      for (const auto& fr : f.fractures) hip = hip || (fr.on_case && fr.site == "hip");
      if (!hip) return fail();
    }
    if (c.vertebral_at_least && Vertebral() < *c.vertebral_at_least) return fail();
    if (c.sex && need(f.sex != Sex::kUnknown, "the patient's sex") && f.sex != *c.sex) return fail();
    if ((c.age_below || c.age_at_least) && need(f.age_at_fracture.has_value(), "the age on the fracture date (birth date)")) {
      if (c.age_below && !(*f.age_at_fracture < *c.age_below)) return fail();
      if (c.age_at_least && !(*f.age_at_fracture >= *c.age_at_least)) return fail();
    }
    if (c.no_non_vertebral_fracture) {
      for (const auto& fr : f.fractures) {
        if (fr.site != "vertebra") return fail();
      }
    }
    if (c.climacteric_symptoms && !f.climacteric_symptoms) return fail();
    if (c.no_severe_fracture) {
      for (const auto& fr : f.fractures) {
        if (fr.grio == "severe") return fail();
      }
    }
    if (c.severe_fracture || c.non_severe_fracture) {
      bool severe = false, any = false;
      for (const auto& fr : f.fractures) {
        if (!fr.on_case) continue;
        any = true;
        severe = severe || fr.grio == "severe";
      }
      if (c.severe_fracture && !severe) return fail();
      if (c.non_severe_fracture && (!any || severe)) return fail();
    }
    if (c.no_falls_risk && need(f.falls_risk.has_value(), "a falls assessment") && *f.falls_risk) return fail();
    if (c.falls_risk && need(f.falls_risk.has_value(), "a falls assessment") && !*f.falls_risk) return fail();
    if (c.no_low_hip_t_score) {
      auto hip = HipTScore();
      if (need(hip.has_value(), "a hip T-score (DXA)") && *hip <= low_hip) return fail();
    }
    if (c.t_score_at_most || c.t_score_above) {
      auto t = TScore();
      if (need(t.has_value(), "a T-score (DXA)")) {
        if (c.t_score_at_most && !(*t <= *c.t_score_at_most)) return fail();
        if (c.t_score_above && !(*t > *c.t_score_above)) return fail();
      }
    }
    // One of several (needsTreatment's rules, anyOf's alternatives): true if one holds; unknown
    // (with what each unknown one lacked) if none holds but some cannot be told.
    auto one_of = [&](const std::vector<const GrioRules::Criteria*>& alts) {
      std::set<std::string> lacking;
      Truth any = Truth::kFalse;
      for (const auto* alt : alts) {
        std::set<std::string> m;
        Truth t = Eval(*alt, rule, m);
        if (t == Truth::kTrue) return Truth::kTrue;
        if (t == Truth::kUnknown) {
          any = Truth::kUnknown;
          lacking.insert(m.begin(), m.end());
        }
      }
      if (any == Truth::kUnknown) local.insert(lacking.begin(), lacking.end());
      return any;
    };
    if (!c.needs_treatment.empty()) {
      std::vector<const GrioRules::Criteria*> alts;
      for (const auto& id : c.needs_treatment) {
        for (const auto& r : all) {
          if (r.id == id) alts.push_back(&r.when);
        }
      }
      Truth t = one_of(alts);
      if (t == Truth::kFalse) return fail();
      if (t == Truth::kUnknown) unknown = true;
    }
    if (!c.any_of.empty()) {
      std::vector<const GrioRules::Criteria*> alts;
      for (const auto& alt : c.any_of) alts.push_back(&alt);
      Truth t = one_of(alts);
      if (t == Truth::kFalse) return fail();
      if (t == Truth::kUnknown) unknown = true;
    }
    if (!unknown) return Truth::kTrue;
    out.insert(local.begin(), local.end());
    return Truth::kUnknown;
  }
};

int StatusRank(const std::string& s) { return s == "recommended" ? 0 : s == "defer" ? 1 : 2; }

}  // namespace

int AgeInYears(int64_t birth_day, int64_t on_day) {
  int by, oy;
  unsigned bm, bd, om, od;
  CivilFromDays(birth_day, by, bm, bd);
  CivilFromDays(on_day, oy, om, od);
  int age = oy - by;
  if (om < bm || (om == bm && od < bd)) --age;
  return age;
}

GrioRules GrioRules::Parse(std::string_view text) {
  rapidjson::Document d;
  d.Parse(text.data(), text.size());
  if (d.HasParseError() || !d.IsObject()) throw std::invalid_argument("recommendation rules: not a JSON object");
  GrioRules g;
  g.version_ = Str(d, "version", "recommendation rules");
  if (d.HasMember("thresholds")) {
    const auto& t = d["thresholds"];
    if (!t.IsObject() || !t.HasMember("lowHipTScore") || !t["lowHipTScore"].IsNumber()) {
      throw std::invalid_argument("recommendation rules thresholds: lowHipTScore must be a number");
    }
    g.low_hip_t_score_ = t["lowHipTScore"].GetDouble();
  }
  if (!d.HasMember("rules") || !d["rules"].IsArray() || d["rules"].Empty()) {
    throw std::invalid_argument("recommendation rules: \"rules\" must be a non-empty array");
  }
  for (rapidjson::SizeType i = 0; i < d["rules"].Size(); ++i) {
    const auto& o = d["rules"][i];
    std::string where = "recommendation rule " + std::to_string(i);
    Rule r;
    r.id = Str(o, "id", where);
    where += " (" + r.id + ")";
    for (const auto& other : g.rules_) {
      if (other.id == r.id) throw std::invalid_argument(where + ": listed twice");
    }
    r.grade = Str(o, "grade", where);
    if (r.grade != "A" && r.grade != "B" && r.grade != "C" && r.grade != "professional-agreement") {
      throw std::invalid_argument(where + ": grade must be A, B, C or professional-agreement");
    }
    r.reason = Str(o, "reason", where);
    r.source = Str(o, "source", where);
    r.drugs = Strings(o, "drugs", where);
    if (!o.HasMember("when")) throw std::invalid_argument(where + ": \"when\" is missing");
    r.when = ParseCriteria(o["when"], where);
    g.rules_.push_back(std::move(r));
  }
  // needsTreatment names earlier or later rules: they must exist.
  std::function<void(const Criteria&, const std::string&)> check = [&](const Criteria& c, const std::string& id) {
    for (const auto& n : c.needs_treatment) {
      bool found = false;
      for (const auto& r : g.rules_) found = found || (r.id == n && r.id != id);
      if (!found) throw std::invalid_argument("recommendation rule " + id + ": needsTreatment names no other rule " + n);
    }
    for (const auto& alt : c.any_of) check(alt, id);
  };
  for (const auto& r : g.rules_) check(r.when, r.id);
  if (d.HasMember("contraindications")) {
    if (!d["contraindications"].IsArray()) throw std::invalid_argument("recommendation rules: contraindications must be an array");
    for (rapidjson::SizeType i = 0; i < d["contraindications"].Size(); ++i) {
      const auto& o = d["contraindications"][i];
      std::string where = "recommendation contraindication " + std::to_string(i);
      Contraindication c;
      c.flag = Str(o, "flag", where);
      c.drugs = Strings(o, "drugs", where);
      c.status = Str(o, "status", where);
      if (c.status != "contraindicated" && c.status != "defer") {
        throw std::invalid_argument(where + ": status must be contraindicated or defer");
      }
      c.instead = Str(o, "instead", where, false);
      c.reason = Str(o, "reason", where);
      c.source = Str(o, "source", where);
      g.contraindications_.push_back(std::move(c));
    }
  }
  if (d.HasMember("secondaryCauseFlags")) {
    const auto& o = d["secondaryCauseFlags"];
    g.secondary_flags_ = Strings(o, "flags", "recommendation secondaryCauseFlags");
    g.secondary_text_ = Str(o, "text", "recommendation secondaryCauseFlags");
  }
  if (!d.HasMember("prerequisites") || !d["prerequisites"].IsArray()) {
    throw std::invalid_argument("recommendation rules: \"prerequisites\" must be an array");
  }
  for (const auto& o : d["prerequisites"].GetArray()) {
    PrerequisiteRule p;
    p.code = Str(o, "code", "recommendation prerequisite");
    p.text = Str(o, "text", "recommendation prerequisite " + p.code);
    Str(o, "source", "recommendation prerequisite " + p.code);
    if (o.HasMember("insufficientFlags")) p.insufficient_flags = Strings(o, "insufficientFlags", "recommendation prerequisite " + p.code);
    g.prerequisites_.push_back(std::move(p));
  }
  if (d.HasMember("tScoreCodes")) {
    for (const auto& c : d["tScoreCodes"].GetArray()) {
      std::string site = Str(c, "site", "recommendation tScoreCodes");
      if (site != "lumbar-spine" && site != "total-hip" && site != "femoral-neck" && site != "other") {
        throw std::invalid_argument("recommendation tScoreCodes: site must be lumbar-spine, total-hip, femoral-neck or other");
      }
      Str(c, "source", "recommendation tScoreCodes");
      g.t_score_codes_.emplace_back(Str(c, "system", "recommendation tScoreCodes") + "|" + Str(c, "code", "recommendation tScoreCodes"), site);
    }
  }
  g.climacteric_ = Codes(d, "climactericCodes");
  g.fall_history_ = Codes(d, "fallHistoryCodes");
  return g;
}

std::string GrioRules::TScoreSite(std::string_view system, std::string_view code) const {
  std::string key = std::string(system) + "|" + std::string(code);
  for (const auto& [k, site] : t_score_codes_) {
    if (k == key) return site;
  }
  return "";
}

bool GrioRules::IsClimacteric(std::string_view system, std::string_view code) const {
  for (const auto& [s, c] : climacteric_) {
    if (s == system && c == code) return true;
  }
  return false;
}

bool GrioRules::IsFallHistory(std::string_view system, std::string_view code) const {
  for (const auto& [s, c] : fall_history_) {
    if (s == system && c == code) return true;
  }
  return false;
}

Recommendation GrioRules::Evaluate(const RecommendationFacts& f) const {
  Recommendation out;
  Evaluator ev{f, *this, rules_, low_hip_t_score_, {}};
  std::set<std::string> flags;
  for (const auto& fl : f.flags) flags.insert(fl.code);
  for (const auto& r : rules_) {
    Truth t = ev.Eval(r.when, r.id, ev.missing);
    if (t != Truth::kTrue) continue;
    out.fired.push_back(r.id);
    for (const auto& drug : r.drugs) out.items.push_back({drug, r.id, r.grade, "recommended", r.reason});
  }
  // The flags: a drug instead of a contraindicated one (once per rule), then the statuses.
  for (const auto& c : contraindications_) {
    if (!flags.count(c.flag) || c.instead.empty()) continue;
    std::vector<RecommendationItem> added;
    for (const auto& item : out.items) {
      bool hit = false;
      for (const auto& p : c.drugs) hit = hit || HasPrefix(item.drug_atc, p);
      if (!hit) continue;
      bool present = false;
      for (const auto& other : out.items) present = present || (other.rule == item.rule && other.drug_atc == c.instead);
      for (const auto& other : added) present = present || (other.rule == item.rule && other.drug_atc == c.instead);
      if (!present) added.push_back({c.instead, item.rule, item.grade, "recommended", c.reason});
    }
    for (auto& a : added) out.items.push_back(std::move(a));
  }
  for (auto& item : out.items) {
    for (const auto& c : contraindications_) {
      if (!flags.count(c.flag)) continue;
      bool hit = false;
      for (const auto& p : c.drugs) hit = hit || HasPrefix(item.drug_atc, p);
      if (!hit) continue;
      if (StatusRank(c.status) > StatusRank(item.status)) item.status = c.status;
      if (item.reason.find(c.reason) == std::string::npos) item.reason += "; " + c.reason;
    }
  }
  std::stable_sort(out.items.begin(), out.items.end(), [](const RecommendationItem& a, const RecommendationItem& b) {
    return StatusRank(a.status) < StatusRank(b.status);
  });
  for (const auto& p : prerequisites_) {
    std::string text = p.text;
    for (const auto& fl : f.flags) {
      if (std::find(p.insufficient_flags.begin(), p.insufficient_flags.end(), fl.code) == p.insufficient_flags.end()) continue;
      if (fl.value) {
        text += " Now " + Number(*fl.value) + " " + fl.unit + ": supplement.";
      } else {
        text += " Insufficient now: supplement.";
      }
      break;
    }
    out.prerequisites.push_back({p.code, text});
  }
  std::string secondary;
  for (const auto& fl : f.flags) {
    if (std::find(secondary_flags_.begin(), secondary_flags_.end(), fl.code) != secondary_flags_.end()) {
      secondary += (secondary.empty() ? "" : ", ") + fl.code;
    }
  }
  if (!secondary.empty()) out.specialist_referral = secondary_text_ + " (" + secondary + ")";
  out.missing.assign(ev.missing.begin(), ev.missing.end());
  out.flags = f.flags;
  if (!out.items.empty()) {
    if (!f.renal_known) out.missing.push_back("a renal clearance result: the contraindications of zoledronic acid and oral bisphosphonates are not checked");
    if (!f.vitamin_d_known) out.missing.push_back("a 25-OH vitamin D result: the deferral of zoledronic acid and denosumab is not checked");
    if (!f.calcium_known) out.missing.push_back("a corrected calcium result: the deferral of zoledronic acid and denosumab is not checked");
  }
  return out;
}

}  // namespace fls::workflow
