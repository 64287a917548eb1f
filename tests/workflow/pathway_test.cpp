#include "workflow/pathway.h"

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "tests/support/source_files.h"

namespace fls::workflow {
namespace {

bool IsOsteoporosisDrug(std::string_view atc, const void*) {
  for (std::string_view p :
       {"M05BA", "M05BB", "M05BX04", "M05BX06", "H05AA02", "H05AA04", "G03XC01", "G03C", "G03F"}) {
    if (atc.substr(0, p.size()) == p) return true;
  }
  return false;
}

constexpr int64_t kToday = 20'000;
constexpr int64_t kFracture = 19'990;

CaseFacts Facts(Stage stage) {
  CaseFacts f;
  f.stage = stage;
  f.today = kToday;
  f.index_fracture_day = kFracture;
  f.case_items = {"ServiceRequest/dxa", "ServiceRequest/vitd"};
  f.open_items = {"ServiceRequest/dxa", "ServiceRequest/vitd"};
  f.decided_drug = "M05BA08";
  f.current_drug = "M05BA08";
  return f;
}

// An input with every part the event needs, valid.
EventInput Valid(Event e) {
  EventInput in;
  in.event = e;
  in.occurred_day = kToday - 1;
  switch (e) {
    case Event::kEnrol:
      in.consent_programme = true;
      in.consent_report = false;
      in.phone = "+33 6 12 34 56 78";
      in.referring_physician = "Practitioner/dr-martin";
      break;
    case Event::kExclude:
      in.reason = "declined";
      break;
    case Event::kWaive:
      in.item = "ServiceRequest/dxa";
      in.reason = "hip fracture at 80: treated without DXA";
      break;
    case Event::kFallsAssessment:
      in.at_risk = true;
      in.item = "ServiceRequest/dxa";  // the falls item, as the shell fills it
      break;
    case Event::kResult:
      in.item = "ServiceRequest/dxa";
      break;
    case Event::kDecideTreatment:
      in.drug_atc = "M05BA08";
      break;
    case Event::kDecideNoTreatment:
    case Event::kReferSpecialist:
      in.reason = "a reason";
      break;
    case Event::kTreatmentStarted:
      in.drug_atc = "M05BX04";  // in follow-up on M05BA08: a change of drug
      break;
    default:
      break;
  }
  return in;
}

// operations.md section 1, written out independently of the table: (from, event) -> to ("" = no
// change). A row added to or missing from the table fails here.
std::map<std::pair<std::string, std::string>, std::string> SpecTable() {
  std::map<std::pair<std::string, std::string>, std::string> t = {
      {{"identified", "enrol"}, "investigating"},
      {{"identified", "exclude"}, "excluded"},
      {{"investigating", "waive"}, "treatment-decision"},  // when it was the last open item
      {{"treatment-decision", "decide-treatment"}, "treating"},
      {{"treatment-decision", "decide-no-treatment"}, "completed"},
      {{"treatment-decision", "refer-specialist"}, ""},
      {{"treating", "treatment-started"}, "follow-up"},
      {{"follow-up", "treatment-started"}, "follow-up"},
      {{"follow-up", "complete"}, "completed"},
      {{"follow-up", "lost-to-follow-up"}, "lost-to-follow-up"},
  };
  for (const char* s : {"investigating", "treatment-decision", "treating", "follow-up"}) {
    t[{s, "falls-assessment"}] = "";
    t[{s, "exercise-started"}] = "";
    t[{s, "result"}] = "";  // raised by data (operations.md section 2), never posted
  }
  // The falls assessment and a result close a panel item: the last one moves the case on.
  t[{"investigating", "falls-assessment"}] = "treatment-decision";
  t[{"investigating", "result"}] = "treatment-decision";
  for (const char* s :
       {"identified", "investigating", "treatment-decision", "treating", "follow-up"}) {
    t[{s, "withdraw"}] = "withdrawn";
    t[{s, "deceased"}] = "deceased";
  }
  return t;
}

TEST(PathwayTable, RowsAreExactlyTheSpecsTable) {
  auto spec = SpecTable();
  std::set<std::pair<std::string, std::string>> seen;
  for (const auto& row : Transitions()) {
    std::pair<std::string, std::string> key{StageCode(row.from), EventCode(row.event)};
    EXPECT_TRUE(seen.insert(key).second) << "two rows for " << key.first << " + " << key.second;
    auto it = spec.find(key);
    ASSERT_NE(it, spec.end()) << "row not in operations.md: " << key.first << " + " << key.second;
    EXPECT_EQ(row.to ? StageCode(*row.to) : "", it->second) << key.first << " + " << key.second;
    EXPECT_FALSE(row.effects.empty())
        << "an event with no effect: " << key.first << " + " << key.second;
  }
  EXPECT_EQ(seen.size(), spec.size()) << "rows of operations.md missing from the table";
}

// Every stage x event pair, generated from the enums: an allowed pair moves to the table's stage
// with the table's effects; any other is 422 naming the stage and the allowed events.
TEST(PathwayTable, EveryStageAndEventPairIsAppliedOrRefusedWithTheAllowedList) {
  int applied = 0, refused = 0;
  for (Stage stage : kAllStages) {
    for (Event event : kAllEvents) {
      CaseFacts facts = Facts(stage);
      // The last open item, so that the guarded rows move.
      if (event == Event::kWaive || event == Event::kResult || event == Event::kFallsAssessment) {
        facts.open_items = {"ServiceRequest/dxa"};
      }
      Outcome o = Apply(facts, Valid(event), IsOsteoporosisDrug);
      const Transition* row = Find(stage, event);
      std::string pair = std::string(StageCode(stage)) + " + " + EventCode(event);
      if (row) {
        ++applied;
        ASSERT_EQ(o.kind, Outcome::Kind::kApplied) << pair << ": " << o.message;
        EXPECT_EQ(o.from, stage) << pair;
        EXPECT_EQ(o.to, row->to.value_or(stage)) << pair;
        EXPECT_EQ(o.effects, row->effects) << pair;
        EXPECT_TRUE(IsOpen(stage)) << "a closed case accepts nothing: " << pair;
      } else {
        ++refused;
        ASSERT_EQ(o.kind, Outcome::Kind::kNotAllowed) << pair;
        EXPECT_NE(o.message.find("stage " + std::string(StageCode(stage)) +
                                 " allows: " + AllowedList(stage)),
                  std::string::npos)
            << pair << ": " << o.message;
      }
    }
  }
  EXPECT_EQ(applied, static_cast<int>(Transitions().size()));
  EXPECT_EQ(applied + refused, 10 * 14);
}

TEST(PathwayTable, ClosedStagesAllowNothingAndOpenOnesCanAlwaysWithdrawOrDie) {
  for (Stage stage : kAllStages) {
    auto allowed = AllowedEvents(stage);
    if (!IsOpen(stage)) {
      EXPECT_TRUE(allowed.empty()) << StageCode(stage);
      EXPECT_EQ(AllowedList(stage), "nothing (the case is closed)");
    } else {
      EXPECT_NE(std::find(allowed.begin(), allowed.end(), Event::kWithdraw), allowed.end())
          << StageCode(stage);
      EXPECT_NE(std::find(allowed.begin(), allowed.end(), Event::kDeceased), allowed.end())
          << StageCode(stage);
    }
  }
  EXPECT_EQ(AllowedList(Stage::kTreating),
            "falls-assessment, exercise-started, treatment-started, withdraw, deceased");
}

TEST(PathwayCodes, RoundTripAndUnknown) {
  for (Stage s : kAllStages) EXPECT_EQ(ParseStage(StageCode(s)), s);
  for (Event e : kAllEvents) EXPECT_EQ(ParseEvent(EventCode(e)), e);
  EXPECT_FALSE(ParseEvent("Enrol"));
  EXPECT_FALSE(ParseEvent(""));
  EXPECT_FALSE(ParseStage("closed"));
}

TEST(PathwayParts, MissingOrIllFormedPartsAre400WhateverTheStage) {
  struct Row {
    const char* name;
    Event event;
    void (*spoil)(EventInput&);
    const char* part;
  };
  const Row rows[] = {
      {"enrol without consent-programme", Event::kEnrol,
       [](EventInput& in) { in.consent_programme.reset(); }, "consent-programme"},
      {"enrol without consent-report", Event::kEnrol,
       [](EventInput& in) { in.consent_report.reset(); }, "consent-report"},
      {"enrol without phone", Event::kEnrol, [](EventInput& in) { in.phone.clear(); }, "phone"},
      {"enrol without referring physician", Event::kEnrol,
       [](EventInput& in) { in.referring_physician.clear(); }, "referring-physician"},
      {"exclude without reason", Event::kExclude, [](EventInput& in) { in.reason.clear(); },
       "reason"},
      {"exclude with an unknown reason", Event::kExclude,
       [](EventInput& in) { in.reason = "bored"; }, "reason"},
      {"waive without item", Event::kWaive, [](EventInput& in) { in.item.clear(); }, "item"},
      {"waive of another case's order", Event::kWaive,
       [](EventInput& in) { in.item = "ServiceRequest/other"; }, "item"},
      {"waive without reason", Event::kWaive, [](EventInput& in) { in.reason.clear(); }, "reason"},
      {"falls-assessment without at-risk", Event::kFallsAssessment,
       [](EventInput& in) { in.at_risk.reset(); }, "at-risk"},
      {"decide-treatment without drug", Event::kDecideTreatment,
       [](EventInput& in) { in.drug_atc.clear(); }, "drug"},
      {"decide-treatment with a statin", Event::kDecideTreatment,
       [](EventInput& in) { in.drug_atc = "C10AA01"; }, "drug"},
      {"decide-treatment with a bare class letter", Event::kDecideTreatment,
       [](EventInput& in) { in.drug_atc = "M05"; }, "drug"},
      {"decide-no-treatment without reason", Event::kDecideNoTreatment,
       [](EventInput& in) { in.reason.clear(); }, "reason"},
      {"refer-specialist without reason", Event::kReferSpecialist,
       [](EventInput& in) { in.reason.clear(); }, "reason"},
      {"treatment-started with a non-osteoporosis drug", Event::kTreatmentStarted,
       [](EventInput& in) { in.drug_atc = "N02BE01"; }, "drug"},
      {"occurred tomorrow", Event::kWithdraw, [](EventInput& in) { in.occurred_day = kToday + 1; },
       "occurred"},
      {"occurred the day before the fracture", Event::kWithdraw,
       [](EventInput& in) { in.occurred_day = kFracture - 1; }, "occurred"},
  };
  for (const auto& row : rows) {
    for (Stage stage : {Stage::kIdentified, Stage::kInvestigating, Stage::kTreatmentDecision,
                        Stage::kFollowUp, Stage::kCompleted}) {
      EventInput in = Valid(row.event);
      row.spoil(in);
      Outcome o = Apply(Facts(stage), in, IsOsteoporosisDrug);
      EXPECT_EQ(o.kind, Outcome::Kind::kBadRequest) << row.name << " at " << StageCode(stage);
      EXPECT_NE(o.expression.find(row.part), std::string::npos) << row.name << ": " << o.expression;
    }
  }
}

TEST(PathwayDates, BackDatedEventsAreNormalWithinTheFractureAndToday) {
  struct Row {
    int64_t occurred;
    bool ok;
  };
  const Row rows[] = {{kToday, true},
                      {kToday + 1, false},
                      {kFracture, true},
                      {kFracture - 1, false},
                      {kFracture + 3, true}};
  for (const auto& row : rows) {
    EventInput in = Valid(Event::kExclude);
    in.occurred_day = row.occurred;
    EXPECT_EQ(Apply(Facts(Stage::kIdentified), in).kind == Outcome::Kind::kApplied, row.ok)
        << row.occurred;
  }
  CaseFacts referral = Facts(Stage::kIdentified);
  referral.index_fracture_day
      .reset();  // a referral without a fracture yet: only the future is refused
  EventInput old = Valid(Event::kExclude);
  old.occurred_day = 1000;
  EXPECT_EQ(Apply(referral, old).kind, Outcome::Kind::kApplied);
}

TEST(PathwayGuards, EnrolNeedsTheProgrammeConsent) {
  EventInput in = Valid(Event::kEnrol);
  in.consent_programme = false;
  Outcome o = Apply(Facts(Stage::kIdentified), in);
  EXPECT_EQ(o.kind, Outcome::Kind::kNotAllowed);
  EXPECT_NE(o.message.find("exclude with reason declined"), std::string::npos);
  EXPECT_NE(o.message.find("stage identified allows: enrol, exclude, withdraw, deceased"),
            std::string::npos)
      << "a guard's 422 names the stage and its events too: " << o.message;
  in.consent_programme = true;
  in.consent_report = false;  // reports refused: still enrolled
  o = Apply(Facts(Stage::kIdentified), in);
  ASSERT_EQ(o.kind, Outcome::Kind::kApplied);
  EXPECT_EQ(o.to, Stage::kInvestigating);
}

TEST(PathwayGuards, WaivingTheLastOpenItemEndsTheInvestigation) {
  CaseFacts facts = Facts(Stage::kInvestigating);
  EventInput in = Valid(Event::kWaive);
  Outcome o = Apply(facts, in);  // two open items: stays
  ASSERT_EQ(o.kind, Outcome::Kind::kApplied);
  EXPECT_EQ(o.to, Stage::kInvestigating);
  EXPECT_EQ(o.effects, std::vector<Effect>{Effect::kRevokeItem});
  facts.open_items = {"ServiceRequest/dxa"};
  EXPECT_EQ(Apply(facts, in).to, Stage::kTreatmentDecision);
  facts.open_items = {"ServiceRequest/vitd"};  // dxa already resulted
  o = Apply(facts, in);
  EXPECT_EQ(o.kind, Outcome::Kind::kNotAllowed);
  EXPECT_NE(o.message.find("already resulted or waived"), std::string::npos);
}

// A result or the falls assessment closes its item; the last open required item moves the case
// to treatment-decision. Items that are not required never hold it; a repeat assessment (no open
// item) changes nothing.
TEST(PathwayGuards, ResultsAndTheFallsAssessmentMayCloseTheLastItem) {
  struct Row {
    const char* name;
    Event event;
    std::vector<std::string> open, optional;
    std::string item;
    Stage to;
  };
  const std::string dxa = "ServiceRequest/dxa", vitd = "ServiceRequest/vitd";
  const Row rows[] = {
      {"result, another item still open", Event::kResult, {dxa, vitd}, {}, dxa,
       Stage::kInvestigating},
      {"result of the last item", Event::kResult, {dxa}, {}, dxa, Stage::kTreatmentDecision},
      {"result, only an optional item left", Event::kResult, {dxa, vitd}, {vitd}, dxa,
       Stage::kTreatmentDecision},
      {"result of the optional item", Event::kResult, {dxa, vitd}, {vitd}, vitd,
       Stage::kInvestigating},
      {"result of an item already closed", Event::kResult, {vitd}, {}, dxa,
       Stage::kInvestigating},
      {"falls assessment closing the last item", Event::kFallsAssessment, {dxa}, {}, dxa,
       Stage::kTreatmentDecision},
      {"falls assessment again (no open item)", Event::kFallsAssessment, {vitd}, {}, "",
       Stage::kInvestigating},
  };
  for (const auto& row : rows) {
    CaseFacts facts = Facts(Stage::kInvestigating);
    facts.open_items = row.open;
    facts.optional_items = row.optional;
    EventInput in = Valid(row.event);
    in.item = row.item;
    Outcome o = Apply(facts, in);
    ASSERT_EQ(o.kind, Outcome::Kind::kApplied) << row.name << ": " << o.message;
    EXPECT_EQ(o.to, row.to) << row.name;
  }
  EXPECT_TRUE(IsDataOnly(Event::kResult));
  EXPECT_EQ(AllowedList(Stage::kInvestigating),
            "waive, falls-assessment, exercise-started, withdraw, deceased")
      << "a client never posts result";
}

TEST(PathwayGuards, TreatmentStartedUsesTheDecidedDrugAndInFollowUpIsAChange) {
  CaseFacts treating = Facts(Stage::kTreating);
  treating.current_drug.clear();
  EventInput in = Valid(Event::kTreatmentStarted);
  in.drug_atc.clear();
  Outcome o = Apply(treating, in, IsOsteoporosisDrug);
  ASSERT_EQ(o.kind, Outcome::Kind::kApplied);
  EXPECT_EQ(o.drug_atc, "M05BA08") << "default: the decided drug";
  EXPECT_EQ(o.to, Stage::kFollowUp);
  treating.decided_drug.clear();
  EXPECT_EQ(Apply(treating, in, IsOsteoporosisDrug).kind, Outcome::Kind::kBadRequest)
      << "no drug at all";

  CaseFacts follow = Facts(Stage::kFollowUp);
  in.drug_atc = "M05BA08";
  EXPECT_EQ(Apply(follow, in, IsOsteoporosisDrug).kind, Outcome::Kind::kNotAllowed)
      << "the same drug again";
  in.drug_atc = "M05BX04";
  o = Apply(follow, in, IsOsteoporosisDrug);
  ASSERT_EQ(o.kind, Outcome::Kind::kApplied);
  EXPECT_EQ(o.to, Stage::kFollowUp);
  EXPECT_EQ(o.effects, std::vector<Effect>{Effect::kPlanFollowUp}) << "a re-plan";
}

TEST(PathwayEffects, ClosingTheCaseLeavesNothingScheduledOrOpen) {
  for (const auto& row : Transitions()) {
    if (!row.to || IsOpen(*row.to)) continue;
    auto has = [&](Effect e) {
      return std::find(row.effects.begin(), row.effects.end(), e) != row.effects.end();
    };
    std::string pair = std::string(StageCode(row.from)) + " + " + EventCode(row.event);
    EXPECT_TRUE(has(Effect::kCancelOpenTasks)) << pair;
    EXPECT_TRUE(has(Effect::kEndCarePlan)) << pair;
    EXPECT_TRUE(has(Effect::kEpisodeFinished) || has(Effect::kEpisodeCancelled)) << pair;
  }
  const Transition* w = Find(Stage::kFollowUp, Event::kWithdraw);
  ASSERT_NE(w, nullptr);
  EXPECT_NE(std::find(w->effects.begin(), w->effects.end(), Effect::kInactivateConsents),
            w->effects.end());
}

TEST(PathwayDiagram, DocsShowTheDiagramGeneratedFromTheTable) {
  std::string doc = test::ReadSourceFile("docs/pathway.md");
  std::string mermaid = MermaidDiagram();
  EXPECT_NE(doc.find("```mermaid\n" + mermaid + "```"), std::string::npos)
      << "docs/pathway.md must embed exactly:\n```mermaid\n"
      << mermaid << "```";
  for (const auto& row : Transitions())
    EXPECT_NE(mermaid.find(EventCode(row.event)), std::string::npos);
}

}  // namespace
}  // namespace fls::workflow
