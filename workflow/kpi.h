#pragma once
// The quality indicators (spec kpis.md, operations.md section 6, docs/kpis.md): pure functions
// from the cases of a cohort, as their event logs describe them, to the populations and the score
// of each Measure. Frameworks (UK FLS-DB, IOF, the FLS's own measures) are data files
// (workflow/data/kpi-frameworks/*.json): each line names one of the kinds below with its windows
// and benchmark bands, so a third framework is a file, not code.
//
// Days are civil days (days since 1970-01-01) in the site's time zone; a window of N days holds
// an event whose day minus the index fracture day is at most N (and not negative).

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace fls::workflow {

// The first day of each event of a case's log, by event name: a handful of entries kept flat,
// the names interned once per process (a cohort holds hundreds of thousands of cases, and a map
// of strings per case cost more than the indicators themselves: docs/performance.md).
class EventDays {
 public:
  void Set(std::string_view event, int64_t day);  // replaces the event's day if it has one
  std::optional<int64_t> Find(std::string_view event) const;
  // The process's one copy of an event name, and Find by it (a comparison of pointers).
  static std::string_view Intern(std::string_view event);
  std::optional<int64_t> FindInterned(std::string_view interned) const;
  size_t size() const { return days_.size(); }
  void Clear() { days_.clear(); }

 private:
  std::vector<std::pair<std::string_view, int64_t>> days_;  // views of interned names
};

// What one case contributes, read from fls_case and its logs (db/kpi_store.h).
struct KpiCase {
  std::string episode_id;
  std::string site;        // the FLS site's Organization id ("" when unknown)
  int64_t index_day = 0;   // the index fracture's day
  std::string index_site;  // hip, vertebra, pelvis, wrist... (workflow/data/fracture-codes.json), or unspecified
  int64_t identified_day = 0;  // the case was opened
  // The first day of each event of its log (enrol, exclude, falls-assessment, exercise-started,
  // decide-treatment, decide-no-treatment, treatment-started...).
  EventDays first_event_day;
  std::string exclude_reason;  // of the exclude event, when there is one
  // The DXA item of the investigation panel.
  bool dxa_ordered = false;                // an item exists and was not waived (nor revoked)
  std::optional<int64_t> dxa_result_day;   // the first result's effective day
  struct Contact {
    int64_t day = 0;
    bool reached = false;
    std::optional<bool> adherent;
  };
  std::vector<Contact> contacts;
  struct Dispense {
    int64_t day = 0;
    int days_supply = 0;  // 0 when not given
  };
  std::vector<Dispense> dispenses;
  std::vector<int64_t> later_fracture_days;  // the patient's fragility fractures after the index one
  // Key fields for data completeness (docs/kpis.md).
  bool has_phone = false;
  bool has_referring_physician = false;
};

// One line of a framework file.
struct KpiDefinition {
  std::string id;         // Measure id: fls-db-kpi-4, iof-kpi-3, fls-median-days-to-dxa...
  std::string framework;  // fls-db, iof, fls
  int number = 0;         // in its framework's numbering (0: none)
  std::string kind;       // see KpiKinds()
  std::string title, description, source;
  int window_days = 0;    // 0: no window
  // adherence: the contact window (days after the fracture) and the day dispensing must cover.
  int contact_from_days = 0, contact_to_days = 0, at_days = 0;
  bool non_spinal_only = false;  // identification (IOF counts non-spinal cases)
  std::string milestone;         // median-days: identification, assessment, dxa, treatment
  struct Band {
    std::string code;      // green, amber, red...
    double min = 0;        // the score's lower bound (inclusive unless min_exclusive)
    bool min_exclusive = false;
  };
  std::vector<Band> bands;  // best first; the first whose bound the score reaches
  bool proportion() const;  // false: continuous variable (a median of days) or a ratio
  bool ratio() const;       // the Capture the Fracture goals: the period against a baseline period
  bool decrease() const;    // less is better: delays, refractures, fractures, the treatment gap
};

// The kinds the engine computes (each documented in docs/kpis.md).
const std::vector<std::string>& KpiKinds();

struct KpiFramework {
  std::string id, title, source;
  std::vector<KpiDefinition> measures;
};
// Throws std::invalid_argument naming the line at fault (unknown kind, missing window...).
KpiFramework ParseKpiFramework(const std::string& json_text);

// The facts the indicators read, for the case-level extract (docs/kpis.md).
std::optional<int64_t> AssessedDay(const KpiCase& c);  // the first enrol or exclude
bool KeyFieldsFilled(const KpiCase& c);
// Adherent `at_days` after the fracture: the last reached contact from contact_from_days to
// contact_to_days that says so, or a dispensing whose supply covers that day.
bool AdherentAt(const KpiCase& c, int at_days, int contact_from_days, int contact_to_days);

// Exclusions of every denominator: cases excluded as not a fragility fracture or pathological.
bool ExcludedFromDenominators(const KpiCase& c);

struct KpiPopulations {
  // The size of each population (the identification measure's denominator is a number:
  // denominator_count).
  int64_t initial_count = 0, denominator_cases = 0, exclusion_count = 0, numerator_count = 0;
  // Episode ids of each population, when lists were asked for: views of the cases' ids (or of the
  // context's units), valid while they are.
  std::vector<std::string_view> initial, denominator, exclusion, numerator;
  std::optional<int64_t> denominator_count;  // identification: the expected caseload
  std::vector<double> observations;          // continuous variable: days, one per measure-population case
  std::optional<double> score;               // proportion 0-1, or the median in days; none when undefined
  std::string band;                          // the first band the score reaches ("" when none)
};

struct KpiContext {
  int64_t evaluation_day = 0;     // today, in the site's zone: adherence and refracture need time
  std::optional<int64_t> expected_caseload;  // identification: for the period and the sites
  // The Capture the Fracture ratios (active-sites, hip-vertebral-change): what is counted in the
  // period and in the baseline period (site ids, or the fractures' Condition ids), and the
  // periods' lengths in days (the fractures compare per day, so periods of unequal length do).
  std::vector<std::string_view> period_units, baseline_units;  // views, valid while the populations are read
  int64_t period_days = 0, baseline_days = 0;
};

// The sites of `cases` with at least `minimum_cases` cases: the active FLS sites of a period.
std::vector<std::string> ActiveSites(const std::vector<const KpiCase*>& cases, int minimum_cases);
std::vector<std::string> ActiveSites(const std::vector<KpiCase>& cases, int minimum_cases);

// `cases`: the cohort (index fracture day in the period, voided cases left out by the caller).
// With the lists of each population.
KpiPopulations EvaluateKpi(const KpiDefinition& def, const std::vector<const KpiCase*>& cases, const KpiContext& ctx);
KpiPopulations EvaluateKpi(const KpiDefinition& def, const std::vector<KpiCase>& cases, const KpiContext& ctx);
// Several Measures over cases given one at a time (Add), so that one pass over a cohort can feed
// several parts of it (the dashboard's overall figures, quarters and sites); Finish gives one
// result per definition, in order, with the lists only if `lists`. A ratio Measure reads the
// context's units (give each ratio kind its own context).
class KpiEvaluator {
 public:
  KpiEvaluator(std::vector<const KpiDefinition*> defs, KpiContext ctx, bool lists);
  ~KpiEvaluator();
  KpiEvaluator(KpiEvaluator&&) noexcept;
  KpiEvaluator& operator=(KpiEvaluator&&) noexcept;
  void Add(const KpiCase& c);
  void Add(const KpiCase& c, bool excluded);  // excluded: ExcludedFromDenominators(c), computed once
  std::vector<KpiPopulations> Finish();       // once

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Several Measures over the same cases in one pass, one result per definition, with the lists
// only if `lists`.
std::vector<KpiPopulations> EvaluateKpis(const std::vector<const KpiDefinition*>& defs, const std::vector<const KpiCase*>& cases,
                                         const KpiContext& ctx, bool lists);

// The median of `values` (the mean of the two middle ones for an even count); none when empty.
std::optional<double> Median(std::vector<double> values);

}  // namespace fls::workflow
