#include "fhir/recommend.h"

#include <algorithm>
#include <map>

#include "fhir/fhir_date.h"
#include "fhir/indexer.h"
#include "fhir/json_builder.h"
#include "fhir/pathway_engine.h"
#include "fhir/text.h"

namespace fls::fhir {

namespace {


std::string Effective(const JsonValue& r) {
  for (const char* k : {"effectiveDateTime", "effectiveInstant", "issued"}) {
    if (auto v = StringMember(r, k)) return std::string(*v);
  }
  if (const JsonValue* p = Member(r, "effectivePeriod"); p && p->IsObject()) {
    if (auto v = StringMember(*p, "start")) return std::string(*v);
  }
  return "";
}

std::optional<double> QuantityValue(const JsonValue& q) {
  if (!q.IsObject()) return std::nullopt;
  const JsonValue* v = Member(q, "value");
  if (!v || !IsNumber(*v)) return std::nullopt;
  auto text = NumberText(*v);
  if (!text) return std::nullopt;
  try {
    return std::stod(*text);
  } catch (...) {
    return std::nullopt;
  }
}

std::string QuantityUnit(const JsonValue& q) {
  return std::string(StringMember(q, "code").value_or(StringMember(q, "unit").value_or("")));
}

bool Refuted(const JsonValue& r) {
  for (const auto& [system, code] : CodingsOf(r, "verificationStatus")) {
    (void)system;
    if (code == "entered-in-error" || code == "refuted") return true;
  }
  return false;
}

// "system|code,system|code" for a search.
std::string TokenList(const std::vector<std::pair<std::string, std::string>>& codes) {
  std::string out;
  for (const auto& [system, code] : codes) out += (out.empty() ? "" : ",") + PercentEncode(system + "|" + code);
  return out;
}

std::vector<JsonDoc> Found(WriteContext& ctx, const std::string& type, const std::string& query) {
  std::vector<JsonDoc> out;
  for (const auto& id : ctx.Search(type, query, 200)) {
    auto row = ctx.store().ReadCurrent(type, id);
    if (row && !row->deleted) out.push_back(ParseJson(row->content));
  }
  return out;
}

}  // namespace

workflow::Recommendation RecommendFor(const PathwayEngine& engine, WriteContext& ctx, db::CaseStore& cases,
                                      const db::CaseRow& row) {
  const std::string base = engine.config().canonical_base;
  const std::string subject = "subject=Patient/" + row.patient_id;
  workflow::RecommendationFacts f;
  if (auto p = ctx.store().ReadCurrent("Patient", row.patient_id); p && !p->deleted) {
    JsonDoc d = ParseJson(p->content);
    std::string gender(StringMember(d, "gender").value_or(""));
    f.sex = gender == "female" ? workflow::Sex::kFemale
            : gender == "male" ? workflow::Sex::kMale
            : gender.empty() || gender == "unknown" ? workflow::Sex::kUnknown
                                                    : workflow::Sex::kOther;
    if (auto birth = StringMember(d, "birthDate"); birth && birth->size() == 10) {
      if (auto b = DayOf(*birth)) {
        int64_t on = row.index_day.value_or(LocalDay(NowMicros() / 1000000));
        f.age_at_fracture = workflow::AgeInYears(*b, on);
      }
    }
  }
  std::vector<workflow::FractureFact> all;
  for (const auto& c : cases.CasesOfPatient(row.patient_id)) {
    if (c.voided) continue;
    for (const auto& fr : cases.FracturesOf(c.episode_id)) {
      all.push_back({fr.site, fr.grio, c.episode_id == row.episode_id, fr.fracture_day, fr.encounter_id});
    }
  }
  // A site-unspecified code on an admission that also codes the site (443165006 with a vertebral
  // fracture) is that fracture, not another one.
  for (const auto& fr : all) {
    bool shadowed = false;
    if (fr.site == "unspecified" && !fr.encounter.empty()) {
      for (const auto& other : all) shadowed = shadowed || (other.encounter == fr.encounter && other.site != "unspecified");
    }
    if (!shadowed) f.fractures.push_back(fr);
  }
  // Each site's T-score from its latest visit; of a visit's values (left and right), the lowest.
  std::map<std::string, std::pair<std::string, workflow::TScoreFact>> latest;  // site -> (effective day, fact)
  std::vector<std::pair<std::string, std::string>> t_codes;
  for (const auto& [key, site] : engine.grio().t_score_codes()) {
    (void)site;
    auto bar = key.find('|');
    t_codes.emplace_back(key.substr(0, bar), key.substr(bar + 1));
  }
  if (!t_codes.empty()) {
    for (const auto& o : Found(ctx, "Observation", subject + "&code=" + TokenList(t_codes) + "&status=final,amended,corrected")) {
      std::string site;
      for (const auto& [system, code] : CodingsOf(o, "code")) {
        if (site.empty()) site = engine.grio().TScoreSite(system, code);
      }
      const JsonValue* q = Member(o, "valueQuantity");
      auto value = q ? QuantityValue(*q) : std::nullopt;
      if (site.empty() || !value) continue;
      std::string when = Effective(o).substr(0, 10);
      auto it = latest.find(site);
      workflow::TScoreFact fact{site, *value, "Observation/" + std::string(StringMember(o, "id").value_or(""))};
      if (it == latest.end() || it->second.first < when) {
        latest[site] = {when, fact};
      } else if (it->second.first == when && *value < it->second.second.value) {
        it->second.second = fact;
      }
    }
  }
  for (const auto& [site, v] : latest) f.t_scores.push_back(v.second);
  // The case's active Flags, with the result and threshold a physician reads.
  // (R4 has no Flag status search parameter: the status is read.)
  for (const auto& flag : Found(ctx, "Flag", "patient=Patient/" + row.patient_id)) {
    if (StringMember(flag, "status") != std::optional<std::string_view>("active")) continue;
    workflow::FlagFact ff;
    bool ours = false;
    if (const JsonValue* ext = Member(flag, "extension"); ext && ext->IsArray()) {
      for (const auto& x : ext->GetArray()) {
        std::string url(StringMember(x, "url").value_or(""));
        const JsonValue* ref = Member(x, "valueReference");
        std::string target = ref && ref->IsObject() ? std::string(StringMember(*ref, "reference").value_or("")) : "";
        if (url == base + "/StructureDefinition/fls-case") ours = target == "EpisodeOfCare/" + row.episode_id;
        if (url == base + "/StructureDefinition/flag-evidence") ff.evidence = target;
        if (url == base + "/StructureDefinition/flag-threshold") {
          if (const JsonValue* q = Member(x, "valueQuantity"); q && q->IsObject()) {
            ff.threshold = QuantityValue(*q);
            ff.threshold_unit = QuantityUnit(*q);
            ff.comparator = std::string(StringMember(*q, "comparator").value_or(""));
          }
        }
      }
    }
    for (const auto& [system, code] : CodingsOf(flag, "code")) {
      if (system == base + "/CodeSystem/fls-flag") ff.code = code;
    }
    if (!ours || ff.code.empty()) continue;
    if (auto ref = ParseReference(ff.evidence); ref && ref->type == std::optional<std::string>("Observation")) {
      if (auto obs = ctx.store().ReadCurrent("Observation", ref->id); obs && !obs->deleted) {
        JsonDoc od = ParseJson(obs->content);
        if (const JsonValue* q = Member(od, "valueQuantity")) {
          ff.value = QuantityValue(*q);
          ff.unit = QuantityUnit(*q);
        }
      }
    }
    f.flags.push_back(std::move(ff));
  }
  // The falls risk: the latest falls assessment, or a fall history on record.
  if (const auto* falls = engine.panel().Item("falls-assessment")) {
    std::vector<std::pair<std::string, std::string>> codes;
    for (const auto& r : falls->results) codes.emplace_back(r.system, r.code);
    std::string when;
    for (const auto& o : Found(ctx, "Observation", subject + "&code=" + TokenList(codes) + "&status=final,amended,corrected")) {
      const JsonValue* v = Member(o, "valueBoolean");
      if (!v || !v->IsBool()) continue;
      std::string e = Effective(o);
      if (!f.falls_risk || when < e) {
        f.falls_risk = v->GetBool();
        when = e;
      }
    }
  }
  if (!engine.grio().fall_history_codes().empty()) {
    for (const auto& c : Found(ctx, "Condition", subject + "&code=" + TokenList(engine.grio().fall_history_codes()))) {
      if (!Refuted(c)) f.falls_risk = true;
    }
  }
  if (!engine.grio().climacteric_codes().empty()) {
    for (const auto& c : Found(ctx, "Condition", subject + "&code=" + TokenList(engine.grio().climacteric_codes()))) {
      if (!Refuted(c)) f.climacteric_symptoms = true;
    }
  }
  for (const auto& item : cases.Items(row.episode_id)) {
    bool resulted = item.status == "resulted";
    if (item.item == "renal-clearance") f.renal_known = resulted;
    if (item.item == "vitamin-d") f.vitamin_d_known = resulted;
    if (item.item == "calcium-corrected") f.calcium_known = resulted;
  }
  return engine.grio().Evaluate(f);
}

std::string DecisionAgainstRecommendation(const PathwayEngine& engine, const workflow::Recommendation& r,
                                          const std::string& decided) {
  auto name = [&](const std::string& atc) {
    const auto* d = engine.drugs().Find(atc);
    return d && d->atc == atc ? atc + " " + d->display : atc;
  };
  const workflow::RecommendationItem* first = nullptr;
  for (const auto& item : r.items) {
    if (item.status != "recommended") continue;
    if (!first) first = &item;
    if (decided.compare(0, item.drug_atc.size(), item.drug_atc) == 0) {
      return "follows " + item.rule + " (" + name(item.drug_atc) + ", grade " + item.grade + ")";
    }
  }
  if (!first) return "no drug is recommended by the rules for this case (decided: " + name(decided) + ")";
  return "departs from the recommendation (first recommended: " + name(first->drug_atc) + " under " + first->rule +
         "; decided: " + name(decided) + ")";
}

Outcome Recommend(const PathwayEngine& engine, FhirService& service, const std::string& episode_id) {
  workflow::Recommendation r;
  service.Write([&](WriteContext& ctx) {
    db::CaseStore cases(ctx.store());
    auto row = cases.Case(episode_id);
    if (!row) throw FhirError(ErrorCode::kNotFound, "EpisodeOfCare/" + episode_id + " is not an FLS case");
    r = RecommendFor(engine, ctx, cases, *row);
  });
  const std::string atc = engine.drugs().atc_system();
  Json j;
  j.Obj().S("resourceType", "Parameters").Arr("parameter");
  for (const auto& item : r.items) {
    j.Obj().S("name", "recommendation").Arr("part");
    const auto* d = engine.drugs().Find(item.drug_atc);
    j.Obj().S("name", "drug").Key("valueCodeableConcept").Obj().Arr("coding");
    j.Coding(atc, item.drug_atc, d && d->atc == item.drug_atc ? d->display : "");
    j.EndArr().End().End();
    j.Obj().S("name", "rule").S("valueCode", item.rule).End();
    j.Obj().S("name", "grade").S("valueCode", item.grade).End();
    j.Obj().S("name", "status").S("valueCode", item.status).End();
    j.Obj().S("name", "reason").S("valueString", item.reason).End();
    j.EndArr().End();
  }
  for (const auto& p : r.prerequisites) {
    j.Obj().S("name", "prerequisite").Arr("part");
    j.Obj().S("name", "code").S("valueCode", p.code).End();
    j.Obj().S("name", "text").S("valueString", p.text).End();
    j.EndArr().End();
  }
  auto quantity = [&](const char* name, double value, const std::string& unit, const std::string& comparator) {
    j.Obj().S("name", name).Key("valueQuantity").Obj();
    if (!comparator.empty()) j.S("comparator", comparator);
    j.Num("value", value);
    if (!unit.empty()) j.S("unit", unit).S("system", "http://unitsofmeasure.org").S("code", unit);
    j.End().End();
  };
  for (const auto& fl : r.flags) {
    j.Obj().S("name", "flag").Arr("part");
    j.Obj().S("name", "code").S("valueCode", fl.code).End();
    if (fl.value) quantity("value", *fl.value, fl.unit, "");
    if (fl.threshold) quantity("threshold", *fl.threshold, fl.threshold_unit, fl.comparator);
    if (!fl.evidence.empty()) j.Obj().S("name", "evidence").Ref("valueReference", fl.evidence).End();
    j.EndArr().End();
  }
  for (const auto& m : r.missing) j.Obj().S("name", "missing").S("valueString", m).End();
  if (!r.specialist_referral.empty()) j.Obj().S("name", "specialist-referral").S("valueString", r.specialist_referral).End();
  j.EndArr().End();
  Outcome out;
  out.status = 200;
  out.body = Serialize(j.Doc());
  out.resource_type = "Parameters";
  return out;
}

}  // namespace fls::fhir
