#pragma once
// The Capture the Fracture pathway as a state machine (pathway.md section 2, operations.md
// section 1): one table of (stage, event) -> next stage, guard, effects, from which the
// transition function, the 422's "allowed events", the Mermaid diagram of docs/pathway.md and the
// transition-table test are all derived. Pure: the case's facts and the event's parts come in as
// values; the next stage and the effects go out as values, for the shell (fhir/) to apply inside
// the request's transaction. Thread-safe: the table is constant.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fls::workflow {

enum class Stage {
  kIdentified,
  kInvestigating,
  kTreatmentDecision,
  kTreating,
  kFollowUp,
  kCompleted,
  kExcluded,
  kWithdrawn,
  kLostToFollowUp,
  kDeceased,
};
inline constexpr Stage kAllStages[] = {
    Stage::kIdentified,     Stage::kInvestigating, Stage::kTreatmentDecision, Stage::kTreating,
    Stage::kFollowUp,       Stage::kCompleted,     Stage::kExcluded,          Stage::kWithdrawn,
    Stage::kLostToFollowUp, Stage::kDeceased};

// The event codes of operations.md section 1 (the API: never rename them).
enum class Event {
  kEnrol,
  kExclude,
  kWaive,
  kFallsAssessment,
  kExerciseStarted,
  kDecideTreatment,
  kDecideNoTreatment,
  kReferSpecialist,
  kTreatmentStarted,
  kComplete,
  kLostToFollowUp,
  kWithdraw,
  kDeceased,
  // Raised by data only (source data in the log), never posted: an investigation result closed a
  // panel item (operations.md section 2). $event refuses it as an unknown event.
  kResult,
};
inline constexpr Event kAllEvents[] = {Event::kEnrol,
                                       Event::kExclude,
                                       Event::kWaive,
                                       Event::kFallsAssessment,
                                       Event::kExerciseStarted,
                                       Event::kDecideTreatment,
                                       Event::kDecideNoTreatment,
                                       Event::kReferSpecialist,
                                       Event::kTreatmentStarted,
                                       Event::kComplete,
                                       Event::kLostToFollowUp,
                                       Event::kWithdraw,
                                       Event::kDeceased,
                                       Event::kResult};

const char* StageCode(Stage stage);
const char* EventCode(Event event);
std::optional<Stage> ParseStage(std::string_view code);
std::optional<Event> ParseEvent(std::string_view code);
bool IsOpen(Stage stage);  // not one of the terminal stages
// Whether only data raises the event (a client posting it gets 400, unknown event).
bool IsDataOnly(Event event);

// What an event does besides moving the stage and appending its log row. The shell maps each to
// resources (operations.md section 1's "effects" column).
enum class Effect {
  kEpisodeActive,           // EpisodeOfCare.status active
  kEpisodeCancelled,        // EpisodeOfCare.status cancelled
  kEpisodeFinished,         // EpisodeOfCare.status finished
  kWriteConsents,           // the programme and report Consents (operations.md section 4)
  kRecordContacts,          // phone, referring physician, GP on the case
  kCompleteAssessTask,      // the assess-enrol Task completed
  kOrderPanel,              // the investigation panel ordered (operations.md section 2)
  kCancelOpenTasks,         // every open Task of the case cancelled
  kEndCarePlan,             // the CarePlan ended: completed with a completed case, else revoked
  kRevokeItem,              // the waived ServiceRequest revoked, its Task cancelled
  kCompleteFallsTask,       // the falls Task completed
  kRecordFallsObservation,  // an Observation of the falls assessment
  kRecordExercise,          // recorded for KPI 8 (the log row is the record)
  kAddDrugActivity,         // a CarePlan activity for the decided drug
  kOpenStartTreatmentTask,  // Task start-treatment
  kOrderReferral,           // a referral ServiceRequest and its Task
  kPlanFollowUp,            // the follow-up schedule for the drug (re-planned on a change)
  kCancelScheduledTasks,    // the scheduled follow-up Tasks cancelled
  kInactivateConsents,      // both Consents inactive
  kCloseItem,               // a result closed its item: ServiceRequest completed, its Task completed
  kPlanAfterStop,           // the treatment stopped: re-evaluation in 2 years; denosumab's relay
};
const char* EffectCode(Effect effect);

// What an event's parts must hold (checked before the guard; a failure is 400).
enum class Part {
  kReasonCode,    // reason: one of the exclusion codes
  kReasonText,    // reason: required text
  kConsents,      // consent-programme and consent-report booleans, phone, referring physician
  kItem,          // item: a ServiceRequest of this case's panel, still open
  kAtRisk,        // at-risk boolean
  kDrug,          // drug: an ATC code of an osteoporosis drug
  kOptionalDrug,  // drug optional (default: the decided drug)
};

// A guard that can refuse an otherwise allowed event (422), or choose between two next stages.
enum class Guard {
  kNone,
  kProgrammeConsentGiven,  // enrol: consent-programme must be true (else record exclude/declined)
  kLastOpenItem,           // waive: to treatment-decision when it was the last open item
  kDrugChange,             // treatment-started in follow-up: the drug differs (a re-plan)
  // falls-assessment and result in investigating: when the event closes the last open required
  // item (EventInput.item), to treatment-decision; else, or with no item, no change.
  kMayCloseLastItem,
};

struct Transition {
  Stage from;
  Event event;
  std::optional<Stage> to;  // nullopt: the stage does not change
  Guard guard;
  std::vector<Part> parts;
  std::vector<Effect> effects;
};

// The table, in operations.md's order. Every (stage, event) pair not in it is refused (422).
const std::vector<Transition>& Transitions();

// The row for (stage, event), or null.
const Transition* Find(Stage from, Event event);

// The events a client may post from a stage, in table order ("enrol, exclude, withdraw,
// deceased"); data-only events are left out.
std::vector<Event> AllowedEvents(Stage from);
std::string AllowedList(Stage from);

// The exclusion reasons of `exclude` (operations.md section 1).
bool IsExclusionReason(std::string_view code);

// The event as the shell parsed it from Parameters (or from data, a timer or a Task's output).
struct EventInput {
  Event event = Event::kEnrol;
  int64_t occurred_day = 0;  // civil day (days since 1970-01-01) in the site's time zone
  std::string reason;        // a code or a text, as the event needs
  std::string note;
  std::optional<bool> consent_programme;
  std::optional<bool> consent_report;
  std::string phone;
  std::string referring_physician;  // a reference, "Practitioner/id"
  std::string gp;
  std::string item;  // "ServiceRequest/id"
  std::optional<bool> at_risk;
  std::string drug_atc;  // empty when absent
};

// What the rule needs to know of the case.
struct CaseFacts {
  Stage stage = Stage::kIdentified;
  std::optional<int64_t> index_fracture_day;  // civil day; none for a referral without fracture
  int64_t today = 0;                          // civil day in the site's time zone
  // "ServiceRequest/id" of the panel not yet resulted or waived; of those, the ones that are not
  // required (they do not hold the case in investigating).
  std::vector<std::string> open_items;
  std::vector<std::string> optional_items;
  std::vector<std::string> case_items;  // every panel ServiceRequest of the case
  std::string decided_drug;             // ATC of decide-treatment, empty before
  std::string current_drug;             // ATC of the last treatment-started, empty before
};

// Whether an ATC code is an osteoporosis drug (pathway.md section 4, by prefix). A function so
// that the drug list stays data (workflow/data/), loaded by the caller.
using DrugCheck = bool (*)(std::string_view atc, const void* context);

struct Outcome {
  enum class Kind { kApplied, kBadRequest, kNotAllowed };
  Kind kind = Kind::kApplied;
  std::string message;     // for 400 and 422: what is wrong, in words a client developer reads
  std::string expression;  // the Parameters part concerned, for 400
  Stage from = Stage::kIdentified;
  Stage to = Stage::kIdentified;
  std::vector<Effect> effects;
  std::string drug_atc;  // the drug the effects concern (decided or started)
};

// The transition function: checks the parts, the dates, the row and its guard, and returns the
// next stage with the effects. `drug_check` may be null when no event needs it.
Outcome Apply(const CaseFacts& facts, const EventInput& input, DrugCheck drug_check = nullptr,
              const void* drug_context = nullptr);

// The state diagram in Mermaid (docs/pathway.md embeds it; a test checks it is this text).
std::string MermaidDiagram();

}  // namespace fls::workflow
