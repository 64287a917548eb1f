#include "workflow/case_finding.h"

#include <gtest/gtest.h>

#include "tests/support/source_files.h"

namespace fls::workflow {
namespace {

const FractureCodeList& Codes() {
  static FractureCodeList list = FractureCodeList::Parse(test::ReadSourceFile("workflow/data/fracture-codes.json"));
  return list;
}

int64_t D(int y, unsigned m, unsigned d) { return CivilDay(y, m, d); }

TEST(CaseFinding, AgeOnTheFractureDate) {
  struct Row {
    int64_t birth, day;
    int age;
  };
  const Row rows[] = {
      {D(1974, 3, 4), D(2024, 3, 3), 49},   // the day before the 50th birthday
      {D(1974, 3, 4), D(2024, 3, 4), 50},   // the 50th birthday
      {D(1974, 3, 4), D(2024, 3, 5), 50},
      {D(1974, 12, 31), D(2024, 12, 30), 49},
      {D(1974, 12, 31), D(2024, 12, 31), 50},
      {D(1974, 1, 1), D(2024, 1, 1), 50},
      {D(1972, 2, 29), D(2022, 2, 28), 49},  // 29 February: reached on 1 March in common years
      {D(1972, 2, 29), D(2022, 3, 1), 50},
      {D(1972, 2, 29), D(2024, 2, 28), 51},
      {D(1972, 2, 29), D(2024, 2, 29), 52},  // leap year: on the day
      {D(1950, 6, 15), D(1950, 6, 15), 0},
  };
  for (const auto& r : rows) EXPECT_EQ(AgeOn(r.birth, r.day), r.age) << r.birth << " " << r.day;
}

FractureEvent Hip(const std::string& id, int64_t day, const std::string& encounter = "enc-1") {
  FractureEvent e;
  e.condition_id = id;
  e.encounter_id = encounter;
  e.classification = Classify(Codes(), {{"http://hl7.org/fhir/sid/icd-10", "S72.0"}});
  e.fracture_day = day;
  return e;
}

FractureEvent Wrist(const std::string& id, int64_t day, const std::string& encounter = "enc-2") {
  FractureEvent e = Hip(id, day, encounter);
  e.classification = Classify(Codes(), {{"http://snomed.info/sct", "263102004"}});
  return e;
}

const int64_t kToday = D(2026, 11, 22);
const PatientFacts kSeventy{D(1956, 5, 1)};
CaseFindingRules Rules() { return CaseFindingRules{}; }

TEST(CaseFinding, OpensACaseForAQualifyingFracture) {
  Decision d = Decide(Hip("c1", D(2026, 11, 1)), kSeventy, {}, kToday, Rules());
  EXPECT_EQ(d.action, Decision::Action::kOpenCase);
  EXPECT_FALSE(d.refracture_of_closed);
}

TEST(CaseFinding, TheFiftiethBirthdayEdge) {
  PatientFacts turning{D(1976, 11, 10)};
  EXPECT_EQ(Decide(Hip("c", D(2026, 11, 9)), turning, {}, kToday, Rules()).action, Decision::Action::kIgnore);
  EXPECT_EQ(Decide(Hip("c", D(2026, 11, 10)), turning, {}, kToday, Rules()).action, Decision::Action::kOpenCase);
}

TEST(CaseFinding, VerificationStatuses) {
  struct Row {
    const char* status;
    Decision::Action action;
  };
  const Row rows[] = {{"", Decision::Action::kOpenCase},           {"confirmed", Decision::Action::kOpenCase},
                      {"provisional", Decision::Action::kOpenCase}, {"differential", Decision::Action::kOpenCase},
                      {"unconfirmed", Decision::Action::kOpenCase}, {"refuted", Decision::Action::kIgnore},
                      {"entered-in-error", Decision::Action::kIgnore}};
  for (const auto& r : rows) {
    FractureEvent e = Hip("c", D(2026, 11, 1));
    e.verification = r.status;
    EXPECT_EQ(Decide(e, kSeventy, {}, kToday, Rules()).action, r.action) << r.status;
  }
}

TEST(CaseFinding, TheLookBackBoundary) {
  CaseFindingRules rules;
  rules.lookback_days = 365;
  EXPECT_EQ(Decide(Hip("c", kToday - 365), kSeventy, {}, kToday, rules).action, Decision::Action::kOpenCase);
  EXPECT_EQ(Decide(Hip("c", kToday - 366), kSeventy, {}, kToday, rules).action, Decision::Action::kIgnore);
  EXPECT_EQ(Decide(Hip("c", kToday), kSeventy, {}, kToday, rules).action, Decision::Action::kOpenCase);
  rules.lookback_days = 0;
  EXPECT_EQ(Decide(Hip("c", kToday - 1), kSeventy, {}, kToday, rules).action, Decision::Action::kIgnore);
}

TEST(CaseFinding, ExclusionsAndReviews) {
  FractureEvent skull = Hip("c", D(2026, 11, 1));
  skull.classification = Classify(Codes(), {{"http://hl7.org/fhir/sid/icd-10", "S02.0"}});
  EXPECT_EQ(Decide(skull, kSeventy, {}, kToday, Rules()).action, Decision::Action::kIgnore);

  FractureEvent meta = Hip("c", D(2026, 11, 1));
  meta.classification = Classify(Codes(), {{"http://hl7.org/fhir/sid/icd-10", "M84.50XA"}});
  Decision review = Decide(meta, kSeventy, {}, kToday, Rules());
  EXPECT_EQ(review.action, Decision::Action::kReviewTask);
  EXPECT_NE(review.reason.find("pathological"), std::string::npos);

  FractureEvent with_cancer = Hip("c", D(2026, 11, 1));
  with_cancer.cancer_on_encounter = true;
  EXPECT_EQ(Decide(with_cancer, kSeventy, {}, kToday, Rules()).action, Decision::Action::kReviewTask);

  FractureEvent trauma = Hip("c", D(2026, 11, 1));
  trauma.high_energy = true;
  Decision flagged = Decide(trauma, kSeventy, {}, kToday, Rules());
  EXPECT_EQ(flagged.action, Decision::Action::kOpenCase);
  EXPECT_TRUE(flagged.high_energy);

  EXPECT_EQ(Decide(Hip("c", D(2026, 11, 1)), PatientFacts{}, {}, kToday, Rules()).action,
            Decision::Action::kReviewTask)
      << "no birth date: the coordinator checks the age";
  FractureEvent undated = Hip("c", 0);
  undated.fracture_day.reset();
  EXPECT_EQ(Decide(undated, kSeventy, {}, kToday, Rules()).action, Decision::Action::kIgnore);
  FractureEvent none = Hip("c", D(2026, 11, 1));
  none.classification = Classification{};
  EXPECT_EQ(Decide(none, kSeventy, {}, kToday, Rules()).action, Decision::Action::kIgnore);
}

CaseSummary Case(const std::string& id, bool open, const std::string& site, int64_t day,
                 std::vector<std::string> conditions = {"c0"}, const std::string& encounter = "enc-0") {
  CaseSummary c;
  c.id = id;
  c.open = open;
  c.index_site = site;
  c.index_day = day;
  c.index_encounter = encounter;
  c.condition_ids = std::move(conditions);
  return c;
}

TEST(CaseFinding, OneFractureOneCaseAndThe90DayWindow) {
  const int64_t index = D(2026, 6, 1);
  struct Row {
    const char* name;
    FractureEvent event;
    std::vector<CaseSummary> cases;
    Decision::Action action;
    bool refracture_of_closed;
  };
  const Row rows[] = {
      {"the same Condition again", Hip("c0", index), {Case("e1", true, "hip", index)}, Decision::Action::kIgnore, false},
      {"same site 89 days later, case open", Hip("c1", index + 89, "enc-9"), {Case("e1", true, "hip", index)},
       Decision::Action::kAddToCase, false},
      {"same site 90 days later, case open", Hip("c1", index + 90, "enc-9"), {Case("e1", true, "hip", index)},
       Decision::Action::kAddToCase, false},
      {"same site 91 days later, case open: a refracture", Hip("c1", index + 91, "enc-9"),
       {Case("e1", true, "hip", index)}, Decision::Action::kAddRefracture, false},
      {"other site while open: a refracture", Wrist("c1", index + 30), {Case("e1", true, "hip", index)},
       Decision::Action::kAddRefracture, false},
      {"other site, same encounter: the same event", Wrist("c1", index + 1, "enc-0"),
       {Case("e1", true, "hip", index)}, Decision::Action::kAddToCase, false},
      {"other site, same day: the same event", Wrist("c1", index, "enc-7"), {Case("e1", true, "hip", index)},
       Decision::Action::kAddToCase, false},
      {"same site 89 days after a closed case: the same fracture", Hip("c1", index + 89, "enc-9"),
       {Case("e1", false, "hip", index)}, Decision::Action::kAddToCase, false},
      {"same site 91 days after a closed case: a new case, refracture", Hip("c1", index + 91, "enc-9"),
       {Case("e1", false, "hip", index)}, Decision::Action::kOpenCase, true},
      {"other site after a closed case: a new case, refracture", Wrist("c1", index + 200),
       {Case("e1", false, "hip", index)}, Decision::Action::kOpenCase, true},
      {"other site, earlier than the open case's index: history of the case", Wrist("c1", index - 150),
       {Case("e1", true, "hip", index)}, Decision::Action::kAddToCase, false},
      {"open case wins over closed ones", Wrist("c1", index + 200),
       {Case("e2", true, "ankle", index + 150), Case("e1", false, "hip", index)}, Decision::Action::kAddRefracture,
       false},
  };
  for (const auto& r : rows) {
    Decision d = Decide(r.event, kSeventy, r.cases, kToday, Rules());
    EXPECT_EQ(d.action, r.action) << r.name << ": " << ActionName(d.action) << " (" << d.reason << ")";
    EXPECT_EQ(d.refracture_of_closed, r.refracture_of_closed) << r.name;
    if (d.action == Decision::Action::kAddToCase || d.action == Decision::Action::kAddRefracture) {
      EXPECT_FALSE(d.case_id.empty()) << r.name;
    }
  }
}

TEST(CaseFinding, AReferredCaseTakesTheFirstPushedFracture) {
  CaseSummary referred = Case("e1", true, "unspecified", 0, {});
  referred.index_day.reset();
  Decision d = Decide(Hip("c1", D(2026, 11, 15)), kSeventy, {referred}, kToday, Rules());
  EXPECT_EQ(d.action, Decision::Action::kAddToCase) << d.reason;
  EXPECT_EQ(d.case_id, "e1");
}

TEST(CaseFinding, AFractureBeforeAClosedCaseIsNoRefractureOfIt) {
  const int64_t index = D(2026, 6, 1);
  Decision d = Decide(Wrist("c1", index - 100), kSeventy, {Case("e1", false, "hip", index)}, kToday, Rules());
  EXPECT_EQ(d.action, Decision::Action::kOpenCase);
  EXPECT_FALSE(d.refracture_of_closed);
}

TEST(CaseFinding, ACaseVoidedByAnErrorIsIgnored) {
  const int64_t index = D(2026, 6, 1);
  CaseSummary voided = Case("e1", false, "hip", index);
  voided.voided = true;
  Decision d = Decide(Hip("c2", index), kSeventy, {voided}, kToday, Rules());
  EXPECT_EQ(d.action, Decision::Action::kOpenCase) << "the corrected fracture opens a case";
  EXPECT_FALSE(d.refracture_of_closed) << "a voided case is no earlier fracture";
}

TEST(CaseFinding, AnUnspecifiedSiteJoinsTheEventItBelongsTo) {
  FractureEvent marker = Hip("c1", D(2026, 6, 20), "enc-5");
  marker.classification = Classify(Codes(), {{"http://snomed.info/sct", "443165006"}});
  Decision d = Decide(marker, kSeventy, {Case("e1", true, "hip", D(2026, 6, 1))}, kToday, Rules());
  EXPECT_EQ(d.action, Decision::Action::kAddToCase);
}

TEST(CaseFinding, AFractureEnteredInErrorAfterTheCaseOpened) {
  EXPECT_EQ(DecideRetraction(true, "identified", 0), Retraction::kCancelCase);
  EXPECT_EQ(DecideRetraction(true, "identified", 1), Retraction::kReviewTask) << "another fracture remains";
  EXPECT_EQ(DecideRetraction(true, "investigating", 0), Retraction::kReviewTask) << "work has started";
  EXPECT_EQ(DecideRetraction(false, "completed", 0), Retraction::kNothing);
}

}  // namespace
}  // namespace fls::workflow
