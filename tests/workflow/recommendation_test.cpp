#include "workflow/recommendation.h"

#include <gtest/gtest.h>

#include <stdexcept>

#include "tests/support/source_files.h"
#include "workflow/civil_date.h"
#include "workflow/investigation_panel.h"

namespace fls::workflow {
namespace {

const GrioRules& Rules() {
  static const GrioRules r = GrioRules::Parse(test::ReadSourceFile("workflow/data/grio-2017.json"));
  return r;
}

const InvestigationPanel& Panel() {
  static const InvestigationPanel p =
      InvestigationPanel::Parse(test::ReadSourceFile("workflow/data/investigation-panel.json"));
  return p;
}

FractureFact FF(const char* site, const char* grio, bool on_case, std::optional<int64_t> day = std::nullopt,
               const char* encounter = "") {
  FractureFact f;
  f.site = site;
  f.grio = grio;
  f.on_case = on_case;
  f.day = day;
  f.encounter = encounter;
  return f;
}

// A patient: sex, age on the fracture date, the case's fracture (site, class), T-scores by site
// (lumbar, total hip, femoral neck: NaN for none), falls risk; results known.
struct Patient {
  Sex sex = Sex::kFemale;
  std::optional<int> age = 72;
  std::string site = "hip";
  std::string grio = "severe";
  std::optional<double> lumbar, total_hip, neck, other;
  std::optional<bool> falls_risk = false;
  bool climacteric = false;
  std::vector<FractureFact> history;  // other fractures on record
  std::vector<std::string> flags;

  RecommendationFacts Facts() const {
    RecommendationFacts f;
    f.sex = sex;
    f.age_at_fracture = age;
    f.fractures.push_back(FF(site.c_str(), grio.c_str(), true));
    for (const auto& h : history) f.fractures.push_back(h);
    if (lumbar) f.t_scores.push_back({"lumbar-spine", *lumbar, "Observation/l"});
    if (total_hip) f.t_scores.push_back({"total-hip", *total_hip, "Observation/h"});
    if (neck) f.t_scores.push_back({"femoral-neck", *neck, "Observation/n"});
    if (other) f.t_scores.push_back({"other", *other, "Observation/o"});
    f.falls_risk = falls_risk;
    f.climacteric_symptoms = climacteric;
    for (const auto& code : flags) f.flags.push_back({code, std::nullopt, "", std::nullopt, "", "", ""});
    f.renal_known = f.vitamin_d_known = f.calcium_known = true;
    return f;
  }
};

bool Fired(const Recommendation& r, const std::string& rule) {
  return std::find(r.fired.begin(), r.fired.end(), rule) != r.fired.end();
}

std::string First(const Recommendation& r) {
  for (const auto& i : r.items) {
    if (i.status == "recommended") return i.drug_atc + " " + i.rule + " " + i.grade;
  }
  return "";
}

std::string StatusOf(const Recommendation& r, const std::string& drug, const std::string& rule) {
  for (const auto& i : r.items) {
    if (i.drug_atc == drug && i.rule == rule) return i.status;
  }
  return "absent";
}

TEST(GrioRules, EachRuleAtItsEdges) {
  struct Row {
    const char* name;
    Patient p;
    const char* rule;
    bool fires;
  };
  auto with = [](auto change) {
    Patient p;
    change(p);
    return p;
  };
  const Row rows[] = {
      // Rule 1: a hip fracture, whatever the T-score, women and men.
      {"hip fracture", with([](Patient& p) { p.lumbar = -1.2; }), "grio-1", true},
      {"hip fracture, a man, no DXA", with([](Patient& p) { p.sex = Sex::kMale; }), "grio-1", true},
      {"pelvis (severe, not hip)", with([](Patient& p) { p.site = "pelvis"; }), "grio-1", false},
      {"wrist", with([](Patient& p) { p.site = "distal-radius"; p.grio = "non-severe"; }), "grio-1", false},
      // Rule 2: two or more vertebral fractures on record.
      {"one vertebral fracture", with([](Patient& p) { p.site = "vertebra"; }), "grio-2", false},
      {"two vertebral fractures", with([](Patient& p) { p.site = "vertebra"; p.history = {FF("vertebra", "severe", false)}; }), "grio-2", true},
      {"a hip and a vertebral fracture", with([](Patient& p) { p.history = {FF("vertebra", "severe", false)}; }), "grio-2", false},
      {"two vertebral codes of one admission", with([](Patient& p) { p.site = "pelvis"; p.history = {FF("vertebra", "severe", true, 20000, "enc-1"), FF("vertebra", "severe", true, 20000, "enc-1")}; }), "grio-2", false},
      {"the same vertebral fracture again within 90 days", with([](Patient& p) { p.site = "pelvis"; p.history = {FF("vertebra", "severe", true, 20000, "enc-1"), FF("vertebra", "severe", true, 20060, "enc-2")}; }), "grio-2", false},
      {"two vertebral fractures 91 days apart", with([](Patient& p) { p.site = "pelvis"; p.history = {FF("vertebra", "severe", true, 20000, "enc-1"), FF("vertebra", "severe", true, 20091, "enc-2")}; }), "grio-2", true},
      // Rule 3: a woman under 65 needing treatment, low non-vertebral risk.
      {"woman 64, vertebral, T -1.5, hip T -2.0, no falls risk",
       with([](Patient& p) { p.age = 64; p.site = "vertebra"; p.lumbar = -1.5; p.total_hip = -2.0; }), "grio-3", true},
      {"woman 65", with([](Patient& p) { p.age = 65; p.site = "vertebra"; p.lumbar = -1.5; p.total_hip = -2.0; }), "grio-3", false},
      {"man 60", with([](Patient& p) { p.sex = Sex::kMale; p.age = 60; p.site = "vertebra"; p.lumbar = -1.5; p.total_hip = -2.0; }), "grio-3", false},
      {"a falls risk", with([](Patient& p) { p.age = 60; p.site = "vertebra"; p.lumbar = -1.5; p.total_hip = -2.0; p.falls_risk = true; }), "grio-3", false},
      {"a low hip T-score (-2.5)", with([](Patient& p) { p.age = 60; p.site = "vertebra"; p.lumbar = -1.5; p.neck = -2.5; }), "grio-3", false},
      {"hip T-score -2.4", with([](Patient& p) { p.age = 60; p.site = "vertebra"; p.lumbar = -1.5; p.neck = -2.4; }), "grio-3", true},
      {"a prior wrist fracture", with([](Patient& p) { p.age = 60; p.site = "vertebra"; p.lumbar = -1.5; p.total_hip = -2.0; p.history = {FF("distal-radius", "non-severe", false)}; }), "grio-3", false},
      {"the index fracture is non-vertebral", with([](Patient& p) { p.age = 60; p.site = "pelvis"; p.lumbar = -1.5; p.total_hip = -2.0; }), "grio-3", false},
      {"no treatment needed (T -0.9)", with([](Patient& p) { p.age = 60; p.site = "vertebra"; p.lumbar = -0.9; p.total_hip = -0.5; }), "grio-3", false},
      // Rule 4: a woman under 60 with climacteric symptoms, no severe fracture.
      {"woman 59, climacteric, wrist, T -2.0", with([](Patient& p) { p.age = 59; p.climacteric = true; p.site = "distal-radius"; p.grio = "non-severe"; p.lumbar = -2.0; }), "grio-4", true},
      {"woman 59, climacteric, wrist, T -1.9 (no treatment needed)", with([](Patient& p) { p.age = 59; p.climacteric = true; p.site = "distal-radius"; p.grio = "non-severe"; p.lumbar = -1.9; }), "grio-4", false},
      {"woman 60", with([](Patient& p) { p.age = 60; p.climacteric = true; p.site = "distal-radius"; p.grio = "non-severe"; p.lumbar = -2.0; }), "grio-4", false},
      {"no climacteric symptoms", with([](Patient& p) { p.age = 55; p.site = "distal-radius"; p.grio = "non-severe"; }), "grio-4", false},
      {"a severe fracture", with([](Patient& p) { p.age = 55; p.climacteric = true; p.site = "pelvis"; }), "grio-4", false},
      {"a severe fracture on record", with([](Patient& p) { p.age = 55; p.climacteric = true; p.site = "distal-radius"; p.grio = "non-severe"; p.history = {FF("hip", "severe", false)}; }), "grio-4", false},
      {"a man", with([](Patient& p) { p.sex = Sex::kMale; p.age = 55; p.climacteric = true; p.site = "distal-radius"; p.grio = "non-severe"; }), "grio-4", false},
      // Rule 5: T-score <= -3 (the lowest of lumbar, total hip, femoral neck).
      {"T -2.9", with([](Patient& p) { p.site = "pelvis"; p.lumbar = -2.9; p.neck = -2.0; }), "grio-5", false},
      {"T -3.0 at the femoral neck", with([](Patient& p) { p.site = "pelvis"; p.lumbar = -1.0; p.neck = -3.0; }), "grio-5", true},
      {"radius -3.5 ignored when a central site exists", with([](Patient& p) { p.site = "pelvis"; p.lumbar = -2.0; p.other = -3.5; }), "grio-5", false},
      {"radius -3.0 alone counts", with([](Patient& p) { p.site = "pelvis"; p.other = -3.0; }), "grio-5", true},
      // Rule 6: severe with T <= -1, non-severe with T <= -2.
      {"severe, T -0.9", with([](Patient& p) { p.site = "pelvis"; p.lumbar = -0.9; }), "grio-6", false},
      {"severe, T -1.0", with([](Patient& p) { p.site = "pelvis"; p.lumbar = -1.0; }), "grio-6", true},
      {"non-severe, T -1.9", with([](Patient& p) { p.site = "distal-radius"; p.grio = "non-severe"; p.lumbar = -1.9; }), "grio-6", false},
      {"non-severe, T -2.0", with([](Patient& p) { p.site = "distal-radius"; p.grio = "non-severe"; p.total_hip = -2.0; }), "grio-6", true},
      {"severe, no DXA", with([](Patient& p) { p.site = "pelvis"; }), "grio-6", false},
  };
  for (const auto& row : rows) {
    Recommendation r = Rules().Evaluate(row.p.Facts());
    EXPECT_EQ(Fired(r, row.rule), row.fires) << row.name << " (" << row.rule << ")";
  }
}

TEST(GrioRules, TheAnswerIsOrderedBestFirstWithGradesAndReasons) {
  Patient hip;
  hip.lumbar = -3.2;
  Recommendation r = Rules().Evaluate(hip.Facts());
  EXPECT_EQ(r.fired, (std::vector<std::string>{"grio-1", "grio-5", "grio-6"}));
  EXPECT_EQ(First(r), "M05BA08 grio-1 A");
  ASSERT_GE(r.items.size(), 5u);
  EXPECT_EQ(r.items[1].drug_atc + " " + r.items[1].rule + " " + r.items[1].grade, "M05BA08 grio-5 professional-agreement");
  EXPECT_EQ(r.items[2].drug_atc, "M05BX04");
  EXPECT_EQ(r.items[3].drug_atc, "H05AA02");
  EXPECT_EQ(r.items[4].drug_atc + " " + r.items[4].rule, "M05BA grio-6");
  EXPECT_NE(r.items[0].reason.find("hip fracture"), std::string::npos);
  ASSERT_EQ(r.prerequisites.size(), 3u);
  EXPECT_EQ(r.prerequisites[0].code, "falls-prevention");
  EXPECT_EQ(r.prerequisites[1].code, "vitamin-d");
  EXPECT_EQ(r.prerequisites[2].code, "calcium");
  EXPECT_TRUE(r.missing.empty());
}

TEST(GrioRules, ANonSevereFractureAboveMinusTwoGetsOnlyThePrerequisites) {
  Patient wrist;
  wrist.site = "distal-radius";
  wrist.grio = "non-severe";
  wrist.lumbar = -1.9;
  Recommendation r = Rules().Evaluate(wrist.Facts());
  EXPECT_TRUE(r.items.empty());
  EXPECT_EQ(r.prerequisites.size(), 3u);
}

TEST(GrioRules, MissingDataIsSaidOnlyWhereARuleNeededIt) {
  Patient hip;  // no DXA
  Recommendation r = Rules().Evaluate(hip.Facts());
  EXPECT_EQ(First(r), "M05BA08 grio-1 A");
  EXPECT_NE(std::find(r.missing.begin(), r.missing.end(), "a T-score (DXA) (grio-5)"), r.missing.end());
  EXPECT_NE(std::find(r.missing.begin(), r.missing.end(), "a T-score (DXA) (grio-6)"), r.missing.end());
  // A man needs no falls assessment for rule 3 (a woman's rule): nothing about it.
  Patient man;
  man.sex = Sex::kMale;
  man.site = "vertebra";
  man.lumbar = -1.5;
  man.falls_risk.reset();
  for (const auto& m : Rules().Evaluate(man.Facts()).missing) EXPECT_EQ(m.find("falls"), std::string::npos) << m;
  // A young woman with a vertebral fracture and no falls assessment: rule 3 cannot be told.
  Patient woman = man;
  woman.sex = Sex::kFemale;
  woman.age = 58;
  woman.total_hip = -1.0;
  auto missing = Rules().Evaluate(woman.Facts()).missing;
  EXPECT_NE(std::find(missing.begin(), missing.end(), "a falls assessment (grio-3)"), missing.end());
  // No birth date.
  Patient unknown_age = woman;
  unknown_age.age.reset();
  unknown_age.falls_risk = false;
  missing = Rules().Evaluate(unknown_age.Facts()).missing;
  EXPECT_NE(std::find(missing.begin(), missing.end(), "the age on the fracture date (birth date) (grio-3)"), missing.end());
}

// Each flag's effect, from the result value through the panel's thresholds (workflow/data/
// investigation-panel.json) to the recommendation for a hip fracture.
TEST(GrioRules, FlagsChangeTheAnswerAtTheirThresholdsInEveryUnit) {
  struct Row {
    const char* item;
    double value;
    const char* unit;
    const char* zoledronic;  // status of M05BA08 under grio-1
    const char* first;       // the first recommended drug
    bool supplement;         // the vitamin D prerequisite says to supplement
  };
  const Row rows[] = {
      {"renal-clearance", 34, "mL/min", "contraindicated", "M05BX04", false},
      {"renal-clearance", 35, "mL/min", "recommended", "M05BA08", false},
      {"renal-clearance", 34, "mL/min/{1.73_m2}", "contraindicated", "M05BX04", false},
      {"vitamin-d", 9, "ng/mL", "defer", "", true},
      {"vitamin-d", 10, "ng/mL", "recommended", "M05BA08", true},
      {"vitamin-d", 29, "ng/mL", "recommended", "M05BA08", true},
      {"vitamin-d", 30, "ng/mL", "recommended", "M05BA08", false},
      {"vitamin-d", 24, "nmol/L", "defer", "", true},
      {"vitamin-d", 25, "nmol/L", "recommended", "M05BA08", true},
      {"vitamin-d", 74, "nmol/L", "recommended", "M05BA08", true},
      {"vitamin-d", 75, "nmol/L", "recommended", "M05BA08", false},
      {"calcium-corrected", 2.14, "mmol/L", "defer", "", false},
      {"calcium-corrected", 2.15, "mmol/L", "recommended", "M05BA08", false},
      {"calcium-corrected", 8.5, "mg/dL", "defer", "", false},
      {"calcium-corrected", 8.6, "mg/dL", "recommended", "M05BA08", false},
  };
  for (const auto& row : rows) {
    Patient hip;
    for (const auto& h : Panel().CheckValue(row.item, row.value, row.unit).hits) hip.flags.push_back(h.rule->code);
    Recommendation r = Rules().Evaluate(hip.Facts());
    std::string label = std::string(row.item) + " " + std::to_string(row.value) + " " + row.unit;
    EXPECT_EQ(StatusOf(r, "M05BA08", "grio-1"), row.zoledronic) << label;
    std::string first = First(r);
    EXPECT_EQ(first.substr(0, first.find(' ')), row.first) << label;
    EXPECT_EQ(r.prerequisites[1].text.find("supplement") != std::string::npos, row.supplement) << label;
  }
  // Clearance < 35 and vitamin D < 10 together: zoledronic acid contraindicated, denosumab
  // (its replacement) deferred until vitamin D is corrected.
  Patient both;
  both.flags = {"renal-impairment", "vitamin-d-severe-deficiency", "vitamin-d-insufficiency"};
  Recommendation r = Rules().Evaluate(both.Facts());
  EXPECT_EQ(StatusOf(r, "M05BA08", "grio-1"), "contraindicated");
  EXPECT_EQ(StatusOf(r, "M05BX04", "grio-1"), "defer");
  EXPECT_EQ(First(r), "");
  // Vitamin D 29 ng/mL: no deferral, but the prerequisite says to supplement.
  Patient low;
  low.flags = {"vitamin-d-insufficiency"};
  auto pre = Rules().Evaluate(low.Facts()).prerequisites;
  EXPECT_NE(pre[1].text.find("supplement"), std::string::npos);
  Patient fine;
  EXPECT_EQ(Rules().Evaluate(fine.Facts()).prerequisites[1].text.find("supplement"), std::string::npos);
}

TEST(GrioRules, SecondaryCauseFlagsAskForASpecialist) {
  for (const char* flag : {"monoclonal-peak-suspected", "inflammation", "hypercalcaemia", "thyroid", "iron-overload-suspected"}) {
    Patient p;
    p.flags = {flag};
    Recommendation r = Rules().Evaluate(p.Facts());
    EXPECT_NE(r.specialist_referral.find(flag), std::string::npos) << flag;
    EXPECT_EQ(First(r), "M05BA08 grio-1 A") << "the rules still answer: " << flag;
  }
  Patient none;
  none.flags = {"vitamin-d-insufficiency"};
  EXPECT_TRUE(Rules().Evaluate(none.Facts()).specialist_referral.empty());
}

TEST(GrioRules, AgeOnTheFractureDateCountsWholeYears) {
  struct Row {
    int by, bm, bd, oy, om, od, age;
  };
  const Row rows[] = {{1960, 3, 15, 2025, 3, 14, 64}, {1960, 3, 15, 2025, 3, 15, 65}, {1966, 1, 1, 2025, 12, 31, 59},
                      {1966, 1, 1, 2026, 1, 1, 60},   {1960, 2, 29, 2025, 2, 28, 64}, {1960, 2, 29, 2025, 3, 1, 65},
                      {1960, 2, 29, 2024, 2, 29, 64}, {1961, 12, 31, 2026, 12, 30, 64}};
  for (const auto& r : rows) {
    EXPECT_EQ(AgeInYears(CivilDay(r.by, r.bm, r.bd), CivilDay(r.oy, r.om, r.od)), r.age)
        << r.by << "-" << r.bm << "-" << r.bd << " on " << r.oy << "-" << r.om << "-" << r.od;
  }
}

TEST(GrioRules, TheShippedCodesAndMalformedFiles) {
  EXPECT_EQ(Rules().TScoreSite("http://loinc.org", "38267-1"), "lumbar-spine");
  EXPECT_EQ(Rules().TScoreSite("http://loinc.org", "38264-8"), "total-hip");
  EXPECT_EQ(Rules().TScoreSite("http://loinc.org", "38263-0"), "femoral-neck");
  EXPECT_EQ(Rules().TScoreSite("http://loinc.org", "38265-5"), "other");
  EXPECT_EQ(Rules().TScoreSite("http://loinc.org", "2160-0"), "");
  EXPECT_TRUE(Rules().IsClimacteric("http://hl7.org/fhir/sid/icd-10", "N95.1"));
  EXPECT_TRUE(Rules().IsClimacteric("http://snomed.info/sct", "161712005"));
  const char* bad[] = {
      R"({"version":"x","rules":[]})",
      R"({"version":"x","rules":[{"id":"r","grade":"Z","when":{"hipFracture":true},"drugs":["M05BA08"],"reason":"x","source":"s"}],"prerequisites":[]})",
      R"({"version":"x","rules":[{"id":"r","grade":"A","when":{"tallPatient":true},"drugs":["M05BA08"],"reason":"x","source":"s"}],"prerequisites":[]})",
      R"({"version":"x","rules":[{"id":"r","grade":"A","when":{"hipFracture":true},"drugs":[],"reason":"x","source":"s"}],"prerequisites":[]})",
      R"({"version":"x","rules":[{"id":"r","grade":"A","when":{"needsTreatment":["nope"]},"drugs":["M05BA08"],"reason":"x","source":"s"}],"prerequisites":[]})",
  };
  for (const char* text : bad) EXPECT_THROW(GrioRules::Parse(text), std::invalid_argument) << text;
}

}  // namespace
}  // namespace fls::workflow
