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
  // Denosumab whose last injection was on `last_dose_day`, stopped on `stop_day`: the
  // bisphosphonate relay from the day the next injection is due (last + interval), or from the
  // stop when that day has passed already (an injection overdue: relay at once). nullopt for
  // other classes.
  std::optional<DenosumabRelay> RelayAfter(const std::string& drug_class, int64_t last_dose_day, int64_t stop_day) const;

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

// A nurse call of the follow-up programme (pathway.md section 5).
struct ScheduledCall {
  int months = 0;
  int64_t due_day = 0;
  bool adherence = false;   // the contact that records adherence (12 months)
  bool monitoring = false;  // the 16-week monitoring contact
};

// The next injection or infusion after the last recorded one, with its reminder and (denosumab)
// the day it is overdue.
struct NextDose {
  std::string kind;  // injection | infusion
  int64_t due_day = 0;
  int64_t reminder_day = 0;
  std::optional<int64_t> overdue_day;
};

class FollowUpProgramme {
 public:
  // Throws std::invalid_argument naming the entry on a malformed file.
  static FollowUpProgramme Parse(std::string_view json_text);

  // The calls of a treatment of `drug_class` started on `start_day`, by date, up to the horizon.
  std::vector<ScheduledCall> Calls(const std::string& drug_class, int64_t start_day) const;
  // The next dose after one given on `last_dose_day`, for the classes dosed by injection or
  // infusion (denosumab, zoledronic acid); nullopt for the others.
  std::optional<NextDose> Next(const std::string& drug_class, int64_t last_dose_day) const;
  bool DosedByInjection(const std::string& drug_class) const;

  int unreachable_attempts() const { return unreachable_attempts_; }
  int lost_after_months() const { return lost_after_months_; }

 private:
  struct Schedule {
    std::string drug_class;
    std::vector<int> calls_months;
    int yearly_from = 0;  // 0: no yearly calls
    int adherence_months = 0, monitoring_months = 0;
    std::string dose_kind;  // injection | infusion | empty
    int dose_interval_months = 0, reminder_before_days = 0, reminder_before_months = 0;
    std::optional<int> overdue_after_days;
  };
  const Schedule* Find(const std::string& drug_class) const;
  std::vector<Schedule> schedules_;
  int horizon_months_ = 60;
  int unreachable_attempts_ = 3, lost_after_months_ = 6;
};

}  // namespace fls::workflow
