#pragma once
// Fragility-fracture case finding (pathway.md section 1): classify a pushed Condition's codes and
// decide what it does to the patient's FLS cases. Pure logic: the facts come in as values, the
// decision goes out as a value; fhir/case_finder.cpp reads and writes the resources.
// Dates are civil days (days since 1970-01-01) in the clinical record's own reading of the date.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "workflow/civil_date.h"
#include "workflow/fracture_codes.h"

namespace fls::workflow {

enum class Disposition {
  kNotFracture,   // no code of the list: nothing to do
  kFracture,      // a fracture at a fragility site (or site unspecified)
  kExcludedSite,  // skull, face, cervical spine, fingers, toes: never a case
  kReview,        // cancer-related pathological, stress or atypical fracture: a review Task
};

struct Classification {
  Disposition disposition = Disposition::kNotFracture;
  std::string site;     // hip, vertebra, ..., unspecified
  std::string grio;     // severe | non-severe | ribs
  std::string reason;   // for exclusions and reviews
  std::string code;     // the coding that decided
  std::string system;
  std::string display;
};

// The codes of one Condition. A review code wins over everything (a fracture coded together with
// bone metastasis is not an automatic case), then an excluded site, then a fracture with a known
// site, then a fracture with the site unspecified.
Classification Classify(const FractureCodeList& list, const std::vector<Coding>& codings);

// True when any coding is a transport accident (V01-V99): high-energy trauma.
bool IsHighEnergy(const FractureCodeList& list, const std::vector<Coding>& codings);

// Completed years of age on `day`. A 29 February birthday is reached on 1 March in other years.
int AgeOn(int64_t birth_day, int64_t day);

struct FractureEvent {
  std::string condition_id;
  std::string encounter_id;  // empty when unknown
  Classification classification;
  std::optional<int64_t> fracture_day;  // onset, else encounter start, else recorded date
  std::string verification;             // verificationStatus code, empty when absent
  bool high_energy = false;             // a V01-V99 code on the same encounter
  bool cancer_on_encounter = false;     // a review code on another Condition of the encounter
};

struct PatientFacts {
  std::optional<int64_t> birth_day;
};

// What the patient's FLS cases look like now.
struct CaseSummary {
  std::string id;  // EpisodeOfCare id
  bool open = true;
  bool voided = false;  // cancelled because its index fracture was entered in error: ignored
  std::string index_site;
  std::optional<int64_t> index_day;  // none: a referral that named no fracture yet
  std::string index_encounter;
  std::vector<std::string> condition_ids;  // every Condition on the case
};

struct Decision {
  enum class Action {
    kIgnore,          // reason says why
    kOpenCase,        // a new case (refracture_of_closed when the patient had a closed case)
    kAddToCase,       // the same fracture event or the same fracture again (or the first fracture
                      // of a referred case): an index diagnosis
    kAddRefracture,   // a new fracture while the case is open: a refracture diagnosis
    kReviewTask,      // no case: the coordinator reviews (reason says why)
  };
  Action action = Action::kIgnore;
  std::string case_id;  // kAddToCase, kAddRefracture
  std::string reason;
  bool refracture_of_closed = false;
  bool high_energy = false;
};

struct CaseFindingRules {
  int lookback_days = 365;
  int same_fracture_window_days = 90;
  int minimum_age = 50;
};

Decision Decide(const FractureEvent& event, const PatientFacts& patient,
                const std::vector<CaseSummary>& cases, int64_t today, const CaseFindingRules& rules);

const char* ActionName(Decision::Action action);

// A Condition already on a case is now entered-in-error or refuted. While the case is still at
// `identified` and no valid index fracture remains, nothing justifies it: it is cancelled
// (stage excluded). Once work has started, or when other fractures remain, a person decides: a
// review Task. Closed cases are left alone.
enum class Retraction { kNothing, kCancelCase, kReviewTask };
Retraction DecideRetraction(bool case_open, const std::string& stage, int valid_index_fractures_left);

}  // namespace fls::workflow
