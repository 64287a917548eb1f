#pragma once
// The one place that moves FLS cases (docs/architecture.md, "the path of an $event"): it locks
// the case, asks the pure transition table (workflow/pathway.h) what an event does, and applies
// the effects it returns (statuses, Consents, orders, Tasks, Flags, timers, the log row) inside
// the caller's transaction, so that an event commits with all its effects or not at all.
// Everything that moves a case comes through here: `POST /EpisodeOfCare/{id}/$event`, results
// and deaths pushed as data, pathway Tasks completed through the API, and the timers.
// Thread-safe: holds constant configuration and data; each call works in its own transaction.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "fhir/fhir_service.h"
#include "workflow/drug_list.h"
#include "workflow/investigation_panel.h"
#include "workflow/pathway.h"
#include "workflow/recommendation.h"
#include "workflow/schedule.h"

namespace fls::db {
class CaseStore;
}

namespace fls::fhir {

struct PathwayConfig {
  std::string canonical_base = "http://fls-server.org/fhir";
  int assess_due_days = 14;        // the assess-enrol Task (pathway.md section 2)
  int investigation_due_days = 30;  // each panel Task
  int dxa_chase_days = 60;          // DXA not resulted this long after enrolment: a Task to chase it
  int start_treatment_due_days = 30;
  // The clock of the timers (a test may drive it); null: the system clock.
  std::function<int64_t()> now_us;
};

// Who or what raised an event: the log's `source` and `actor`.
struct EventOrigin {
  std::string source = "user";  // user | data | timer
  std::string actor;
};

class PathwayEngine {
 public:
  PathwayEngine(const workflow::InvestigationPanel& panel, const workflow::DrugList& drugs,
                const workflow::GrioRules& grio, const workflow::LongTermPlan& long_term,
                const workflow::FollowUpProgramme& follow_up, PathwayConfig config);

  // POST /EpisodeOfCare/{id}/$contact (operations.md section 5): the contact Communication, the
  // call Task completed when reached, the doses recorded (re-planning the reminders), the
  // unreachable rule, and the report to the physician only when the report Consent permits, in
  // one transaction. Answers Parameters with `contact` and, when sent, `report`. `If-Match` (412
  // when stale) is the call Task's version when `task` is given, else the case's.
  Outcome PostContact(FhirService& service, const std::string& episode_id, std::string_view body,
                      const RequestInfo& info) const;
  // POST /EpisodeOfCare/{id}/$accompany (operations.md section 5): six monthly accompaniment-call
  // Tasks on one theme; after the last, the synthesis (to the physician only with consent).
  Outcome PostAccompany(FhirService& service, const std::string& episode_id, std::string_view body,
                        const RequestInfo& info) const;

  // POST /EpisodeOfCare/{id}/$event: parses the Parameters (400), applies the event in one
  // transaction (404, 412 on a stale If-Match, 422), and answers the updated EpisodeOfCare.
  Outcome PostEvent(FhirService& service, const std::string& episode_id, std::string_view body,
                    const RequestInfo& info) const;

  // Applies one event inside `ctx`'s transaction. Throws FhirError: 404 (not a case), 412
  // (`if_match` stale), 400 (a part), 422 (not allowed now). Returns the stage reached.
  workflow::Stage Apply(WriteContext& ctx, const std::string& episode_id, workflow::EventInput input,
                        const EventOrigin& origin, int64_t occurred_us,
                        const std::optional<std::string>& if_match = std::nullopt) const;

  // An event data raised (source data), dated `when` (a FHIR date or dateTime as the data wrote
  // it; empty: now), kept within the index fracture date and now.
  workflow::Stage ApplyData(WriteContext& ctx, const std::string& episode_id, workflow::EventInput input,
                            const std::string& when) const;

  // The listener that raises the events data carries (results, deaths, pathway Tasks completed
  // through the API) in the transaction that wrote the data. Register with FhirService.
  ListenerFactory DataListener() const;

  // Fires the timers due at the clock's now, each in its own transaction with its effect
  // (exactly once across processes: claimed FOR UPDATE SKIP LOCKED, marked done on commit).
  // Returns how many fired.
  int RunDueTimers(FhirService& service, int limit = 100) const;

  // Called by case finding when it opens a case (the assess-enrol escalation timer).
  void CaseOpened(WriteContext& ctx, const std::string& episode_id, int64_t opened_us) const;

  int64_t NowUs() const;
  const workflow::DrugList& drugs() const { return drugs_; }
  const workflow::InvestigationPanel& panel() const { return panel_; }
  const workflow::GrioRules& grio() const { return grio_; }
  const workflow::LongTermPlan& long_term() const { return long_term_; }
  const workflow::FollowUpProgramme& follow_up() const { return follow_up_; }
  const PathwayConfig& config() const { return config_; }

 private:
  friend class PathwayRun;
  workflow::Stage ResultsOnRecord(WriteContext& ctx, db::CaseStore& cases, const std::string& episode_id,
                                  workflow::Stage stage) const;
  friend class PathwayDataListener;
  const workflow::InvestigationPanel& panel_;
  const workflow::DrugList& drugs_;
  const workflow::GrioRules& grio_;
  const workflow::LongTermPlan& long_term_;
  const workflow::FollowUpProgramme& follow_up_;
  const PathwayConfig config_;
};

}  // namespace fls::fhir
