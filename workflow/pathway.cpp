#include "workflow/pathway.h"

#include <algorithm>

namespace fls::workflow {

namespace {

struct StageName {
  Stage stage;
  const char* code;
};
constexpr StageName kStageNames[] = {
    {Stage::kIdentified, "identified"},
    {Stage::kInvestigating, "investigating"},
    {Stage::kTreatmentDecision, "treatment-decision"},
    {Stage::kTreating, "treating"},
    {Stage::kFollowUp, "follow-up"},
    {Stage::kCompleted, "completed"},
    {Stage::kExcluded, "excluded"},
    {Stage::kWithdrawn, "withdrawn"},
    {Stage::kLostToFollowUp, "lost-to-follow-up"},
    {Stage::kDeceased, "deceased"},
};

struct EventName {
  Event event;
  const char* code;
};
constexpr EventName kEventNames[] = {
    {Event::kEnrol, "enrol"},
    {Event::kExclude, "exclude"},
    {Event::kWaive, "waive"},
    {Event::kFallsAssessment, "falls-assessment"},
    {Event::kExerciseStarted, "exercise-started"},
    {Event::kDecideTreatment, "decide-treatment"},
    {Event::kDecideNoTreatment, "decide-no-treatment"},
    {Event::kReferSpecialist, "refer-specialist"},
    {Event::kTreatmentStarted, "treatment-started"},
    {Event::kComplete, "complete"},
    {Event::kLostToFollowUp, "lost-to-follow-up"},
    {Event::kWithdraw, "withdraw"},
    {Event::kDeceased, "deceased"},
    {Event::kResult, "result"},
};

constexpr const char* kEffectNames[] = {
    "episode-active",      "episode-cancelled",   "episode-finished",
    "write-consents",      "record-contacts",     "complete-assess-task",
    "order-panel",         "cancel-open-tasks",   "end-care-plan",
    "revoke-item",         "complete-falls-task", "record-falls-observation",
    "record-exercise",     "add-drug-activity",   "open-start-treatment-task",
    "order-referral",      "plan-follow-up",      "cancel-scheduled-tasks",
    "inactivate-consents", "close-item", "plan-after-stop",
};
static_assert(sizeof(kEffectNames) / sizeof(kEffectNames[0]) ==
              static_cast<size_t>(Effect::kPlanAfterStop) + 1);

constexpr const char* kExclusionReasons[] = {"declined",      "treated-by-specialist",
                                             "not-fragility", "pathological",
                                             "palliative",    "moved-away",
                                             "other"};

using S = Stage;
using E = Event;
using F = Effect;
using P = Part;
using G = Guard;

// The table. operations.md section 1 fixes the rows; where it is silent, the choices are said:
// - closing a case (decide-no-treatment, complete, lost-to-follow-up) also cancels the case's
//   open Tasks and ends its CarePlan, so that nothing of a closed case stays on a worklist;
// - exclude, withdraw and deceased end the CarePlan too (revoked), as case finding already does.
std::vector<Transition> BuildTable() {
  std::vector<Transition> t = {
      {S::kIdentified,
       E::kEnrol,
       S::kInvestigating,
       G::kProgrammeConsentGiven,
       {P::kConsents},
       {F::kEpisodeActive, F::kWriteConsents, F::kRecordContacts, F::kCompleteAssessTask,
        F::kOrderPanel}},
      {S::kIdentified,
       E::kExclude,
       S::kExcluded,
       G::kNone,
       {P::kReasonCode},
       {F::kEpisodeCancelled, F::kCancelOpenTasks, F::kEndCarePlan}},
      {S::kInvestigating,
       E::kWaive,
       S::kTreatmentDecision,
       G::kLastOpenItem,
       {P::kItem, P::kReasonText},
       {F::kRevokeItem}},
  };
  // The falls assessment is a panel item too: in investigating it may close the last one.
  for (Stage from : {S::kInvestigating, S::kTreatmentDecision, S::kTreating, S::kFollowUp}) {
    t.push_back({from,
                 E::kFallsAssessment,
                 from == S::kInvestigating ? std::optional<Stage>(S::kTreatmentDecision)
                                           : std::nullopt,
                 from == S::kInvestigating ? G::kMayCloseLastItem : G::kNone,
                 {P::kAtRisk},
                 {F::kCompleteFallsTask, F::kRecordFallsObservation}});
  }
  for (Stage from : {S::kInvestigating, S::kTreatmentDecision, S::kTreating, S::kFollowUp}) {
    t.push_back({from, E::kExerciseStarted, std::nullopt, G::kNone, {}, {F::kRecordExercise}});
  }
  t.push_back({S::kTreatmentDecision,
               E::kDecideTreatment,
               S::kTreating,
               G::kNone,
               {P::kDrug},
               {F::kAddDrugActivity, F::kOpenStartTreatmentTask}});
  t.push_back({S::kTreatmentDecision,
               E::kDecideNoTreatment,
               S::kCompleted,
               G::kNone,
               {P::kReasonText},
               {F::kEpisodeFinished, F::kCancelOpenTasks, F::kEndCarePlan}});
  t.push_back({S::kTreatmentDecision,
               E::kReferSpecialist,
               std::nullopt,
               G::kNone,
               {P::kReasonText},
               {F::kOrderReferral}});
  t.push_back({S::kTreating,
               E::kTreatmentStarted,
               S::kFollowUp,
               G::kNone,
               {P::kOptionalDrug},
               {F::kPlanFollowUp}});
  t.push_back({S::kFollowUp,
               E::kTreatmentStarted,
               S::kFollowUp,
               G::kDrugChange,
               {P::kOptionalDrug},
               {F::kPlanFollowUp}});
  t.push_back(
      {S::kFollowUp,
       E::kComplete,
       S::kCompleted,
       G::kNone,
       {},
       {F::kEpisodeFinished, F::kCancelScheduledTasks, F::kCancelOpenTasks, F::kEndCarePlan,
        F::kPlanAfterStop}});
  t.push_back(
      {S::kFollowUp,
       E::kLostToFollowUp,
       S::kLostToFollowUp,
       G::kNone,
       {},
       {F::kEpisodeFinished, F::kCancelScheduledTasks, F::kCancelOpenTasks, F::kEndCarePlan}});
  for (Stage from :
       {S::kIdentified, S::kInvestigating, S::kTreatmentDecision, S::kTreating, S::kFollowUp}) {
    t.push_back({from,
                 E::kWithdraw,
                 S::kWithdrawn,
                 G::kNone,
                 {},
                 {F::kEpisodeCancelled, F::kCancelOpenTasks, F::kCancelScheduledTasks,
                  F::kInactivateConsents, F::kEndCarePlan}});
  }
  for (Stage from :
       {S::kIdentified, S::kInvestigating, S::kTreatmentDecision, S::kTreating, S::kFollowUp}) {
    t.push_back({from,
                 E::kDeceased,
                 S::kDeceased,
                 G::kNone,
                 {},
                 {F::kEpisodeFinished, F::kCancelOpenTasks, F::kCancelScheduledTasks,
                  F::kInactivateConsents, F::kEndCarePlan}});
  }
  // A result (data) closes its item; in investigating it may close the last one. Later stages
  // keep it (an optional item, a late result), without a change of stage.
  for (Stage from : {S::kInvestigating, S::kTreatmentDecision, S::kTreating, S::kFollowUp}) {
    t.push_back({from,
                 E::kResult,
                 from == S::kInvestigating ? std::optional<Stage>(S::kTreatmentDecision)
                                           : std::nullopt,
                 from == S::kInvestigating ? G::kMayCloseLastItem : G::kNone,
                 {P::kItem},
                 {F::kCloseItem}});
  }
  return t;
}

// The parts an event needs, whatever the stage (the same on every row of the event).
std::vector<Part> PartsOf(Event event) {
  for (const auto& row : Transitions()) {
    if (row.event == event) return row.parts;
  }
  return {};
}

bool Contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

// Whether closing `item` leaves no open required item.
bool ClosesLast(const CaseFacts& facts, const std::string& item) {
  for (const auto& open : facts.open_items) {
    if (open != item && !Contains(facts.optional_items, open)) return false;
  }
  return true;
}

Outcome Bad(std::string message, std::string expression) {
  Outcome o;
  o.kind = Outcome::Kind::kBadRequest;
  o.message = std::move(message);
  o.expression = std::move(expression);
  return o;
}

Outcome NotAllowed(std::string message) {
  Outcome o;
  o.kind = Outcome::Kind::kNotAllowed;
  o.message = std::move(message);
  return o;
}

// A guard's refusal names the stage and what it allows too (operations.md: every 422 does).
Outcome NotAllowed(Stage stage, const std::string& why);

}  // namespace

namespace {
Outcome NotAllowed(Stage stage, const std::string& why) {
  return NotAllowed(why + "; stage " + StageCode(stage) + " allows: " + AllowedList(stage));
}
}  // namespace

const char* StageCode(Stage stage) {
  for (const auto& n : kStageNames) {
    if (n.stage == stage) return n.code;
  }
  return "?";
}

const char* EventCode(Event event) {
  for (const auto& n : kEventNames) {
    if (n.event == event) return n.code;
  }
  return "?";
}

std::optional<Stage> ParseStage(std::string_view code) {
  for (const auto& n : kStageNames) {
    if (code == n.code) return n.stage;
  }
  return std::nullopt;
}

std::optional<Event> ParseEvent(std::string_view code) {
  for (const auto& n : kEventNames) {
    if (code == n.code) return n.event;
  }
  return std::nullopt;
}

bool IsOpen(Stage stage) {
  switch (stage) {
    case Stage::kIdentified:
    case Stage::kInvestigating:
    case Stage::kTreatmentDecision:
    case Stage::kTreating:
    case Stage::kFollowUp:
      return true;
    default:
      return false;
  }
}

const char* EffectCode(Effect effect) { return kEffectNames[static_cast<size_t>(effect)]; }

const std::vector<Transition>& Transitions() {
  static const std::vector<Transition> table = BuildTable();
  return table;
}

const Transition* Find(Stage from, Event event) {
  for (const auto& row : Transitions()) {
    if (row.from == from && row.event == event) return &row;
  }
  return nullptr;
}

bool IsDataOnly(Event event) { return event == Event::kResult; }

std::vector<Event> AllowedEvents(Stage from) {
  std::vector<Event> out;
  for (const auto& row : Transitions()) {
    if (row.from == from && !IsDataOnly(row.event)) out.push_back(row.event);
  }
  return out;
}

std::string AllowedList(Stage from) {
  std::string out;
  for (Event e : AllowedEvents(from)) out += (out.empty() ? "" : ", ") + std::string(EventCode(e));
  return out.empty() ? "nothing (the case is closed)" : out;
}

bool IsExclusionReason(std::string_view code) {
  for (const char* r : kExclusionReasons) {
    if (code == r) return true;
  }
  return false;
}

Outcome Apply(const CaseFacts& facts, const EventInput& in, DrugCheck drug_check,
              const void* drug_context) {
  // The dates first: every date rule uses `occurred`, which may be back-dated but never in the
  // future, nor before the fracture that opened the case.
  if (in.occurred_day > facts.today)
    return Bad("occurred is in the future", "Parameters.parameter[occurred]");
  if (facts.index_fracture_day && in.occurred_day < *facts.index_fracture_day) {
    return Bad("occurred is before the index fracture date", "Parameters.parameter[occurred]");
  }
  auto is_drug = [&](const std::string& atc) {
    return !atc.empty() && drug_check != nullptr && drug_check(atc, drug_context);
  };
  // The parts (400: the request is malformed whatever the stage).
  for (Part part : PartsOf(in.event)) {
    switch (part) {
      case Part::kReasonCode:
        if (in.reason.empty()) return Bad("reason is required", "Parameters.parameter[reason]");
        if (!IsExclusionReason(in.reason)) {
          return Bad(
              "reason must be one of declined, treated-by-specialist, not-fragility, pathological, "
              "palliative, moved-away, other",
              "Parameters.parameter[reason]");
        }
        break;
      case Part::kReasonText:
        if (in.reason.empty()) return Bad("reason is required", "Parameters.parameter[reason]");
        break;
      case Part::kConsents:
        if (!in.consent_programme) {
          return Bad("consent-programme (valueBoolean) is required",
                     "Parameters.parameter[consent-programme]");
        }
        if (!in.consent_report) {
          return Bad("consent-report (valueBoolean) is required",
                     "Parameters.parameter[consent-report]");
        }
        if (in.phone.empty()) return Bad("phone is required", "Parameters.parameter[phone]");
        if (in.referring_physician.empty()) {
          return Bad("referring-physician is required",
                     "Parameters.parameter[referring-physician]");
        }
        break;
      case Part::kItem:
        if (in.item.empty()) return Bad("item is required", "Parameters.parameter[item]");
        if (!Contains(facts.case_items, in.item)) {
          return Bad("item " + in.item + " is not an investigation of this case",
                     "Parameters.parameter[item]");
        }
        break;
      case Part::kAtRisk:
        if (!in.at_risk)
          return Bad("at-risk (valueBoolean) is required", "Parameters.parameter[at-risk]");
        break;
      case Part::kDrug:
        if (in.drug_atc.empty())
          return Bad("drug (an ATC code) is required", "Parameters.parameter[drug]");
        if (!is_drug(in.drug_atc)) {
          return Bad(
              "drug " + in.drug_atc + " is not an osteoporosis drug (ATC, pathway.md section 4)",
              "Parameters.parameter[drug]");
        }
        break;
      case Part::kOptionalDrug:
        if (!in.drug_atc.empty() && !is_drug(in.drug_atc)) {
          return Bad(
              "drug " + in.drug_atc + " is not an osteoporosis drug (ATC, pathway.md section 4)",
              "Parameters.parameter[drug]");
        }
        break;
    }
  }
  // The row (422: not now).
  const Transition* row = Find(facts.stage, in.event);
  if (!row) {
    return NotAllowed("stage " + std::string(StageCode(facts.stage)) + " allows: " +
                      AllowedList(facts.stage) + " (not " + EventCode(in.event) + ")");
  }
  Outcome out;
  out.from = facts.stage;
  out.to = row->to.value_or(facts.stage);
  out.effects = row->effects;
  if (in.event == Event::kDecideTreatment) out.drug_atc = in.drug_atc;
  if (in.event == Event::kTreatmentStarted) {
    out.drug_atc = !in.drug_atc.empty() ? in.drug_atc : facts.decided_drug;
    if (out.drug_atc.empty()) {
      return Bad("drug is required: no treatment was decided for this case",
                 "Parameters.parameter[drug]");
    }
  }
  switch (row->guard) {
    case Guard::kNone:
      break;
    case Guard::kProgrammeConsentGiven:
      if (!*in.consent_programme) {
        return NotAllowed(facts.stage, 
            "enrol needs the patient's consent to the programme; record exclude with reason "
            "declined");
      }
      break;
    case Guard::kLastOpenItem:
      if (!Contains(facts.open_items, in.item)) {
        return NotAllowed(facts.stage, "item " + in.item + " is already resulted or waived");
      }
      if (!ClosesLast(facts, in.item)) out.to = facts.stage;
      break;
    case Guard::kMayCloseLastItem:
      if (in.item.empty() || !Contains(facts.open_items, in.item) || !ClosesLast(facts, in.item)) {
        out.to = facts.stage;
      }
      break;
    case Guard::kDrugChange:
      if (out.drug_atc == facts.current_drug) {
        return NotAllowed(facts.stage, "the case is already in follow-up on " + out.drug_atc +
                          "; treatment-started in follow-up is a change of drug");
      }
      break;
  }
  return out;
}

std::string MermaidDiagram() {
  // Mermaid state ids cannot hold '-': an id with '_', labelled with the code.
  auto id = [](Stage s) {
    std::string v = StageCode(s);
    std::replace(v.begin(), v.end(), '-', '_');
    return v;
  };
  std::string out = "stateDiagram-v2\n";
  for (Stage s : kAllStages)
    out += "    state \"" + std::string(StageCode(s)) + "\" as " + id(s) + "\n";
  out += "    [*] --> identified\n";
  for (const auto& row : Transitions()) {
    std::string label = EventCode(row.event);
    if (row.guard == Guard::kLastOpenItem || row.guard == Guard::kMayCloseLastItem) {
      label += " (last open item)";
    }
    if (row.guard == Guard::kDrugChange) label += " (another drug)";
    out += "    " + id(row.from) + " --> " + id(row.to.value_or(row.from)) + " : " + label + "\n";
  }
  for (Stage s : kAllStages) {
    if (!IsOpen(s)) out += "    " + id(s) + " --> [*]\n";
  }
  return out;
}

}  // namespace fls::workflow
