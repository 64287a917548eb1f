#pragma once
// The Capture the Fracture goals, the Best Practice Framework levels and the projection of the
// fractures avoided (spec kpis.md, docs/kpis.md): pure functions over figures the KPI engine
// (workflow/kpi.h) has computed, with their constants in workflow/data/capture-the-fracture.json
// (each line with its source), so a clinician can correct them without a rebuild.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace fls::workflow {

struct BpfStandard {
  int number = 0;           // the Best Practice Framework's numbering (1-13)
  std::string title, measure, source;  // measure: the Measure id whose score it reads
  bool lower_is_better = false;        // a median of days: lower reaches a level
  double bronze = 0, silver = 0, gold = 0;
};

struct ProjectionRates {
  double treatment = 0, adherence = 0, bmd_testing = 0, refracture = 0;
  std::string source;
};

struct ProjectionConfig {
  std::vector<int> horizons_years;  // 1, 3, 5
  std::string capture_measure, treatment_measure, adherence_measure;
  double annual_refracture_risk = 0;  // without treatment, after a fragility fracture
  std::string annual_refracture_risk_source;
  double treatment_risk_reduction = 0;  // relative, for an adherent treated patient
  std::string treatment_risk_reduction_source;
  ProjectionRates usual_care, with_fls;  // Wu 2018
};

struct GoalsConfig {
  std::string baseline_start, baseline_end, baseline_source;  // YYYY-MM-DD
  double active_sites_target = 2.0;
  std::string active_sites_source;
  int active_site_minimum_cases = 1;
  double hip_vertebral_target = -0.25;
  std::string hip_vertebral_source;
  std::vector<std::string> hip_vertebral_sites;  // fracture sites counted (hip, vertebra)
  std::vector<BpfStandard> bpf;
  std::string bpf_source, bpf_overall_source;
  ProjectionConfig projection;
};

// Throws std::invalid_argument naming the line at fault.
GoalsConfig ParseGoalsConfig(const std::string& json_text);

// A standard's level for a score: "gold", "silver", "bronze", "below" (measured, no level), or
// "" (no score: the data cannot tell).
std::string BpfLevel(const BpfStandard& standard, std::optional<double> score);
// The overall level: the lowest level of the measured standards ("" when none is measured).
std::string OverallBpfLevel(const std::vector<std::string>& levels);

// The ratio of two counts over periods of `period_days` and `baseline_days`, each per day
// (annualised: periods of different lengths compare); none when the baseline count is 0.
std::optional<double> RateRatio(int64_t period_count, int64_t period_days, int64_t baseline_count, int64_t baseline_days);

// The projection (docs/kpis.md): patients reaching the FLS per year, the share of them treated and
// the share of those adherent at 12 months.
struct ProjectionInput {
  double patients_per_year = 0;
  std::optional<double> capture;    // identified / expected (none: no expected caseload)
  std::optional<double> treatment;  // started / recommended
  std::optional<double> adherence;  // adherent at 12 months / started
};
struct ProjectionPoint {
  int years = 0;
  double expected_refractures = 0;       // among the patients reached, without any treatment
  double avoided = 0;                    // by their treatment at the rates given
  double avoided_beyond_usual_care = 0;  // of which above what usual care would avoid (Wu 2018)
};
struct Projection {
  std::vector<std::string> missing;  // the rates that are unknown (nothing projected then)
  double patients_per_year = 0;
  double effectively_treated = 0;    // treatment x adherence
  std::vector<ProjectionPoint> points;
};
// `what_if`: rates replacing the measured ones (capture scales the patients per year, and needs
// the measured capture).
Projection Project(const ProjectionConfig& config, const ProjectionInput& measured, const ProjectionInput& what_if);

// The patients refractured by `years` (H) out of a steady intake of one patient per year from now,
// a first refracture coming at a constant hazard h = -ln(1 - annual_risk):
// the integral over t in [0, H] of 1 - e^{-h(H - t)} = H - (1 - e^{-hH}) / h.
double CumulativeRefracturesPerYearlyIntake(double annual_risk, double years);

}  // namespace fls::workflow
