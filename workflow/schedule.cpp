#include "workflow/schedule.h"

#include <rapidjson/document.h>

#include <algorithm>
#include <stdexcept>

#include "workflow/civil_date.h"

namespace fls::workflow {

namespace {

using Value = rapidjson::Value;

unsigned DaysIn(int y, unsigned m) {
  static const unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m == 2 && leap ? 29 : kDays[m - 1];
}

std::string Str(const Value& o, const char* name, const std::string& where) {
  if (!o.IsObject() || !o.HasMember(name) || !o[name].IsString() || o[name].GetStringLength() == 0) {
    throw std::invalid_argument(where + ": \"" + name + "\" must be a non-empty string");
  }
  return std::string(o[name].GetString(), o[name].GetStringLength());
}

int Int(const Value& o, const char* name, const std::string& where, int lo, int hi) {
  if (!o.IsObject() || !o.HasMember(name) || !o[name].IsInt() || o[name].GetInt() < lo || o[name].GetInt() > hi) {
    throw std::invalid_argument(where + ": \"" + name + "\" must be an integer from " + std::to_string(lo) + " to " +
                                std::to_string(hi));
  }
  return o[name].GetInt();
}

double Num(const Value& o, const char* name, const std::string& where) {
  if (!o.IsObject() || !o.HasMember(name) || !o[name].IsNumber()) throw std::invalid_argument(where + ": \"" + name + "\" must be a number");
  return o[name].GetDouble();
}

}  // namespace

int64_t AddMonths(int64_t day, int months) {
  int y;
  unsigned m, d;
  CivilFromDays(day, y, m, d);
  int total = y * 12 + static_cast<int>(m) - 1 + months;
  int ny = total >= 0 ? total / 12 : -((-total + 11) / 12);
  unsigned nm = static_cast<unsigned>(total - ny * 12) + 1;
  return CivilDay(ny, nm, std::min(d, DaysIn(ny, nm)));
}

LongTermPlan LongTermPlan::Parse(std::string_view text) {
  rapidjson::Document d;
  d.Parse(text.data(), text.size());
  if (d.HasParseError() || !d.IsObject()) throw std::invalid_argument("long-term plan: not a JSON object");
  LongTermPlan p;
  if (!d.HasMember("plans") || !d["plans"].IsArray()) throw std::invalid_argument("long-term plan: \"plans\" must be an array");
  for (rapidjson::SizeType i = 0; i < d["plans"].Size(); ++i) {
    const auto& o = d["plans"][i];
    std::string where = "long-term plan " + std::to_string(i);
    Plan plan;
    plan.kind = Str(o, "kind", where);
    where += " (" + plan.kind + ")";
    plan.task = Str(o, "task", where);
    plan.description = Str(o, "description", where);
    Str(o, "source", where);
    plan.from_months = Int(o, "fromMonths", where, 0, 600);
    plan.to_months = Int(o, "toMonths", where, plan.from_months, 600);
    if (!o.HasMember("classes") || !o["classes"].IsArray() || o["classes"].Empty()) {
      throw std::invalid_argument(where + ": \"classes\" must list drug classes, or \"*\"");
    }
    for (const auto& c : o["classes"].GetArray()) {
      if (!c.IsString()) throw std::invalid_argument(where + ": \"classes\" holds strings");
      plan.classes.emplace_back(c.GetString(), c.GetStringLength());
    }
    for (const auto& other : p.plans_) {
      if (other.kind == plan.kind) throw std::invalid_argument(where + ": listed twice");
    }
    p.plans_.push_back(std::move(plan));
  }
  for (const char* section : {"afterStop", "denosumabRelay", "stopCriteria"}) {
    if (!d.HasMember(section) || !d[section].IsObject()) {
      throw std::invalid_argument(std::string("long-term plan: \"") + section + "\" must be an object");
    }
  }
  const Value& a = d["afterStop"];
  p.after_stop_task_ = Str(a, "task", "long-term afterStop");
  p.after_stop_description_ = Str(a, "description", "long-term afterStop");
  p.after_stop_months_ = Int(a, "months", "long-term afterStop", 1, 600);
  p.after_stop_window_ = Int(a, "windowMonths", "long-term afterStop", 0, 120);
  const Value& r = d["denosumabRelay"];
  p.relay_class_ = Str(r, "class", "long-term denosumabRelay");
  p.relay_drug_ = Str(r, "relayDrug", "long-term denosumabRelay");
  p.relay_description_ = Str(r, "description", "long-term denosumabRelay");
  p.relay_interval_ = Int(r, "intervalMonths", "long-term denosumabRelay", 1, 60);
  p.relay_months_ = Int(r, "relayMonths", "long-term denosumabRelay", 1, 120);
  p.relay_window_days_ = Int(r, "windowDays", "long-term denosumabRelay", 0, 365);
  const Value& s = d["stopCriteria"];
  if (!s.IsObject() || !s.HasMember("bmdCodes") || !s["bmdCodes"].IsArray()) {
    throw std::invalid_argument("long-term stopCriteria: \"bmdCodes\" must be an array");
  }
  for (const auto& c : s["bmdCodes"].GetArray()) {
    p.bmd_codes_.emplace_back(Str(c, "system", "long-term bmdCodes") + "|" + Str(c, "code", "long-term bmdCodes"),
                              Str(c, "site", "long-term bmdCodes"));
  }
  p.bmd_loss_ = Num(s, "bmdLossGcm2", "long-term stopCriteria");
  p.femoral_t_above_ = Num(s, "femoralTScoreAbove", "long-term stopCriteria");
  return p;
}

std::vector<LongTermItem> LongTermPlan::For(const std::string& drug_class, int64_t start) const {
  std::vector<LongTermItem> out;
  for (const auto& plan : plans_) {
    bool applies = std::find(plan.classes.begin(), plan.classes.end(), "*") != plan.classes.end() ||
                   std::find(plan.classes.begin(), plan.classes.end(), drug_class) != plan.classes.end();
    if (!applies) continue;
    out.push_back({plan.kind, plan.task, AddMonths(start, plan.from_months), AddMonths(start, plan.to_months),
                   plan.description});
  }
  std::stable_sort(out.begin(), out.end(), [](const LongTermItem& a, const LongTermItem& b) { return a.from_day < b.from_day; });
  return out;
}

LongTermItem LongTermPlan::AfterStop(int64_t stop_day) const {
  int64_t from = AddMonths(stop_day, after_stop_months_);
  return {"re-evaluation-after-stop", after_stop_task_, from, AddMonths(stop_day, after_stop_months_ + after_stop_window_),
          after_stop_description_};
}

std::optional<DenosumabRelay> LongTermPlan::RelayAfter(const std::string& drug_class, int64_t last, int64_t stop) const {
  if (drug_class != relay_class_) return std::nullopt;
  int64_t next = std::max(AddMonths(last, relay_interval_), stop);
  return DenosumabRelay{next, next + relay_window_days_, relay_drug_, relay_months_, relay_description_};
}

FollowUpProgramme FollowUpProgramme::Parse(std::string_view text) {
  rapidjson::Document d;
  d.Parse(text.data(), text.size());
  if (d.HasParseError() || !d.IsObject()) throw std::invalid_argument("follow-up programme: not a JSON object");
  FollowUpProgramme p;
  p.horizon_months_ = Int(d, "horizonMonths", "follow-up programme", 1, 600);
  if (!d.HasMember("schedules") || !d["schedules"].IsArray() || d["schedules"].Empty()) {
    throw std::invalid_argument("follow-up programme: \"schedules\" must be a non-empty array");
  }
  for (rapidjson::SizeType i = 0; i < d["schedules"].Size(); ++i) {
    const auto& o = d["schedules"][i];
    std::string where = "follow-up schedule " + std::to_string(i);
    Schedule sc;
    sc.drug_class = Str(o, "class", where);
    where += " (" + sc.drug_class + ")";
    if (p.Find(sc.drug_class)) throw std::invalid_argument(where + ": listed twice");
    Str(o, "source", where);
    if (!o.HasMember("callsMonths") || !o["callsMonths"].IsArray()) throw std::invalid_argument(where + ": \"callsMonths\" must be an array");
    int last = 0;
    for (const auto& m : o["callsMonths"].GetArray()) {
      if (!m.IsInt() || m.GetInt() <= last) throw std::invalid_argument(where + ": callsMonths must be increasing positive integers");
      last = m.GetInt();
      sc.calls_months.push_back(last);
    }
    if (o.HasMember("yearlyFromMonths")) sc.yearly_from = Int(o, "yearlyFromMonths", where, last + 1, 600);
    if (o.HasMember("adherenceMonths")) sc.adherence_months = Int(o, "adherenceMonths", where, 1, 600);
    if (o.HasMember("monitoringMonths")) sc.monitoring_months = Int(o, "monitoringMonths", where, 1, 600);
    if (o.HasMember("injection")) {
      const auto& j = o["injection"];
      sc.dose_kind = "injection";
      sc.dose_interval_months = Int(j, "intervalMonths", where + " injection", 1, 60);
      sc.reminder_before_days = Int(j, "reminderBeforeDays", where + " injection", 0, 365);
      if (j.HasMember("overdueAfterDays")) sc.overdue_after_days = Int(j, "overdueAfterDays", where + " injection", 1, 365);
    } else if (o.HasMember("infusion")) {
      const auto& j = o["infusion"];
      sc.dose_kind = "infusion";
      sc.dose_interval_months = Int(j, "intervalMonths", where + " infusion", 1, 60);
      sc.reminder_before_months = Int(j, "reminderBeforeMonths", where + " infusion", 0, 12);
    }
    p.schedules_.push_back(std::move(sc));
  }
  if (d.HasMember("unreachable")) {
    p.unreachable_attempts_ = Int(d["unreachable"], "attempts", "follow-up unreachable", 1, 100);
    p.lost_after_months_ = Int(d["unreachable"], "lostAfterMonths", "follow-up unreachable", 1, 120);
  }
  return p;
}

const FollowUpProgramme::Schedule* FollowUpProgramme::Find(const std::string& drug_class) const {
  for (const auto& s : schedules_) {
    if (s.drug_class == drug_class) return &s;
  }
  return nullptr;
}

std::vector<ScheduledCall> FollowUpProgramme::Calls(const std::string& drug_class, int64_t start) const {
  std::vector<ScheduledCall> out;
  const Schedule* s = Find(drug_class);
  if (!s) return out;
  std::vector<int> months = s->calls_months;
  if (s->yearly_from > 0) {
    for (int m = s->yearly_from; m <= horizon_months_; m += 12) months.push_back(m);
  }
  for (int m : months) {
    if (m > horizon_months_) break;
    out.push_back({m, AddMonths(start, m), m == s->adherence_months, m == s->monitoring_months});
  }
  return out;
}

std::optional<NextDose> FollowUpProgramme::Next(const std::string& drug_class, int64_t last) const {
  const Schedule* s = Find(drug_class);
  if (!s || s->dose_kind.empty()) return std::nullopt;
  NextDose n;
  n.kind = s->dose_kind;
  n.due_day = AddMonths(last, s->dose_interval_months);
  // "1 month before the yearly infusion" is (last + 12 months) - 1 month (operations.md section 5).
  n.reminder_day = s->reminder_before_months > 0 ? AddMonths(n.due_day, -s->reminder_before_months)
                                                 : n.due_day - s->reminder_before_days;
  if (s->overdue_after_days) n.overdue_day = n.due_day + *s->overdue_after_days;
  return n;
}

bool FollowUpProgramme::DosedByInjection(const std::string& drug_class) const {
  const Schedule* s = Find(drug_class);
  return s && !s->dose_kind.empty();
}

}  // namespace fls::workflow
