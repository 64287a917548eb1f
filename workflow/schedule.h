#pragma once
// The treatment's calendar (pathway.md sections 5 and 6; operations.md section 5): dates in
// calendar months from a start date, the day clamped to the month's end and never chained
// (2025-01-31 + 1 month = 2025-02-28, + 3 months = 2025-04-30), and the long-term plan of a drug
// class (workflow/data/long-term.json): which Tasks the timers open, from and to which dates.
// Pure; immutable after Parse; safe across threads.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fls::workflow {

// `day` (days since 1970-01-01) plus `months` calendar months, the day of the month clamped.
int64_t AddMonths(int64_t day, int months);

struct LongTermItem {
  std::string kind;  // reassessment, stop-evaluation, beyond-five-years, teriparatide-relay
  std::string task;  // the Task code ({cb}/CodeSystem/fls-task)
  int64_t from_day = 0, to_day = 0;  // the Task's period
  std::string description;
};

struct DenosumabRelay {
  int64_t from_day = 0, to_day = 0;  // when the bisphosphonate starts (the next injection's date)
  std::string relay_drug;            // ATC
  int relay_months = 12;
  std::string description;
};

class LongTermPlan {
 public:
  // Throws std::invalid_argument naming the entry on a malformed file.
  static LongTermPlan Parse(std::string_view json_text);

  // The long-term Tasks of a treatment of `drug_class` started on `start_day`, by date.
  std::vector<LongTermItem> For(const std::string& drug_class, int64_t start_day) const;
  // The re-evaluation after a stop on `stop_day`.
  LongTermItem AfterStop(int64_t stop_day) const;
  // Denosumab started on `start_day` and stopped on `stop_day`: the bisphosphonate relay from the
  // first injection date (start + k x interval) on or after the stop. nullopt for other classes.
  std::optional<DenosumabRelay> RelayAfter(const std::string& drug_class, int64_t start_day, int64_t stop_day) const;

  const std::vector<std::pair<std::string, std::string>>& bmd_codes() const { return bmd_codes_; }  // (system|code, site)
  double bmd_loss() const { return bmd_loss_; }
  double femoral_t_score_above() const { return femoral_t_above_; }

 private:
  struct Plan {
    std::string kind, task, description;
    std::vector<std::string> classes;  // "*": every class
    int from_months = 0, to_months = 0;
  };
  std::vector<Plan> plans_;
  std::string after_stop_task_, after_stop_description_;
  int after_stop_months_ = 24, after_stop_window_ = 3;
  std::string relay_class_, relay_drug_, relay_description_;
  int relay_interval_ = 6, relay_months_ = 12, relay_window_days_ = 14;
  std::vector<std::pair<std::string, std::string>> bmd_codes_;
  double bmd_loss_ = 0.03, femoral_t_above_ = -2.5;
};

}  // namespace fls::workflow
