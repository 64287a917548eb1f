#pragma once
// The GRIO 2017 treatment recommendation (pathway.md section 4, operations.md section 3) as a
// pure rule engine over the case's facts. The rules, their criteria, grades, drugs, the flags
// that contraindicate or defer a drug and the codes the criteria read are data
// (workflow/data/grio-2017.json, docs/recommendations.md); the criteria vocabulary is here.
// Immutable after Parse; safe across threads.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fls::workflow {

enum class Sex { kUnknown, kFemale, kMale, kOther };

// A fracture on record for the patient (case finding's site and GRIO class).
struct FractureFact {
  std::string site;  // hip, vertebra, pelvis, ribs, distal-radius, unspecified...
  std::string grio;  // severe | non-severe
  bool on_case = false;  // on this case (index or refracture), else an earlier case's
  std::optional<int64_t> day;  // the fracture date (civil day)
  std::string encounter;       // the admission it was coded on, if known
};

// The latest T-score of a site: lumbar-spine, total-hip, femoral-neck, or other.
struct TScoreFact {
  std::string site;
  double value = 0;
  std::string evidence;  // Observation/id
};

// A flag active on the case, with what a physician reads of it.
struct FlagFact {
  std::string code;
  std::optional<double> value;  // the result, in `unit`
  std::string unit;
  std::optional<double> threshold;
  std::string threshold_unit;
  std::string comparator;  // < or >
  std::string evidence;    // Observation/id
};

struct RecommendationFacts {
  Sex sex = Sex::kUnknown;
  std::optional<int> age_at_fracture;  // whole years on the index fracture date
  std::vector<FractureFact> fractures;
  std::vector<TScoreFact> t_scores;
  std::vector<FlagFact> flags;
  std::optional<bool> falls_risk;  // a falls assessment's answer or a fall history; none: unknown
  bool climacteric_symptoms = false;
  // Which contraindication checks have their result (renal-clearance, vitamin-d,
  // calcium-corrected resulted): a missing one is said.
  bool renal_known = false, vitamin_d_known = false, calcium_known = false;
};

struct RecommendationItem {
  std::string drug_atc;
  std::string rule;    // grio-1 ... grio-6
  std::string grade;   // A | B | C | professional-agreement
  std::string status;  // recommended | contraindicated | defer
  std::string reason;
};

struct Prerequisite {
  std::string code;  // falls-prevention | vitamin-d | calcium
  std::string text;
};

struct Recommendation {
  std::vector<RecommendationItem> items;  // best first: recommended, then defer, then contraindicated
  std::vector<Prerequisite> prerequisites;
  std::vector<std::string> missing;   // data a rule needed and did not have
  std::string specialist_referral;    // secondary osteoporosis suspected: why, else empty
  std::vector<std::string> fired;     // the rules that fired, in order
  std::vector<FlagFact> flags;        // the case's flags the answer took into account
};

// Whole years from `birth_day` to `on_day` (civil days); a 29 February birthday counts on
// 1 March in a common year.
int AgeInYears(int64_t birth_day, int64_t on_day);

class GrioRules {
 public:
  // Throws std::invalid_argument naming the entry on a malformed file (an unknown criterion, a
  // rule without drugs, a flag code or drug that is not a string...).
  static GrioRules Parse(std::string_view json_text);

  Recommendation Evaluate(const RecommendationFacts& facts) const;

  // The DXA site a T-score code reports, or empty.
  std::string TScoreSite(std::string_view system, std::string_view code) const;
  bool IsClimacteric(std::string_view system, std::string_view code) const;
  bool IsFallHistory(std::string_view system, std::string_view code) const;
  const std::vector<std::pair<std::string, std::string>>& t_score_codes() const { return t_score_codes_; }
  const std::vector<std::pair<std::string, std::string>>& climacteric_codes() const { return climacteric_; }
  const std::vector<std::pair<std::string, std::string>>& fall_history_codes() const { return fall_history_; }
  const std::string& version() const { return version_; }

  struct Criteria;  // a conjunction of criteria (or a disjunction of them)
  struct Rule;
  struct Contraindication {
    std::string flag;
    std::vector<std::string> drugs;  // ATC prefixes
    std::string status;              // contraindicated | defer
    std::string instead;             // ATC recommended in their place, or empty
    std::string reason, source;
  };

  GrioRules();
  ~GrioRules();
  GrioRules(GrioRules&&) noexcept;
  GrioRules& operator=(GrioRules&&) noexcept;

 private:
  std::vector<Rule> rules_;
  std::vector<Contraindication> contraindications_;
  std::vector<std::string> secondary_flags_;
  std::string secondary_text_;
  struct PrerequisiteRule {
    std::string code, text;
    std::vector<std::string> insufficient_flags;
  };
  std::vector<PrerequisiteRule> prerequisites_;
  std::vector<std::pair<std::string, std::string>> t_score_codes_;  // (system|code, site)
  std::vector<std::pair<std::string, std::string>> climacteric_, fall_history_;  // (system, code)
  double low_hip_t_score_ = -2.5;
  std::string version_;
};

}  // namespace fls::workflow
