#include "workflow/schedule.h"

#include <gtest/gtest.h>

#include <stdexcept>

#include "tests/support/source_files.h"
#include "workflow/civil_date.h"

namespace fls::workflow {
namespace {

int64_t D(int y, unsigned m, unsigned d) { return CivilDay(y, m, d); }

const LongTermPlan& Plan() {
  static const LongTermPlan p = LongTermPlan::Parse(test::ReadSourceFile("workflow/data/long-term.json"));
  return p;
}

TEST(Schedule, CalendarMonthsClampToTheMonthsEndAndNeverChain) {
  struct Row {
    int64_t from;
    int months;
    int64_t to;
  };
  const Row rows[] = {
      {D(2025, 1, 31), 1, D(2025, 2, 28)},   {D(2025, 1, 31), 3, D(2025, 4, 30)},  {D(2024, 1, 31), 1, D(2024, 2, 29)},
      {D(2024, 2, 29), 12, D(2025, 2, 28)},  {D(2024, 2, 29), 48, D(2028, 2, 29)}, {D(2025, 12, 15), 1, D(2026, 1, 15)},
      {D(2025, 11, 30), 3, D(2026, 2, 28)},  {D(2027, 11, 30), 3, D(2028, 2, 29)}, {D(2025, 3, 31), -1, D(2025, 2, 28)},
      {D(2025, 1, 15), -13, D(2023, 12, 15)}, {D(2025, 8, 31), 18, D(2027, 2, 28)}, {D(2025, 8, 31), 0, D(2025, 8, 31)},
  };
  for (const auto& r : rows) EXPECT_EQ(AddMonths(r.from, r.months), r.to) << r.from << " + " << r.months;
  // Never chained: 31 January + 2 months is 31 March, not 28 March.
  EXPECT_EQ(AddMonths(D(2025, 1, 31), 2), D(2025, 3, 31));
  EXPECT_NE(AddMonths(AddMonths(D(2025, 1, 31), 1), 1), AddMonths(D(2025, 1, 31), 2));
}

TEST(Schedule, TheLongTermTasksOfEachDrugClassAtTheirDates) {
  struct Item {
    const char* kind;
    int64_t from, to;
  };
  auto check = [](const std::string& drug_class, int64_t start, const std::vector<Item>& want) {
    auto got = Plan().For(drug_class, start);
    ASSERT_EQ(got.size(), want.size()) << drug_class;
    for (size_t i = 0; i < want.size(); ++i) {
      EXPECT_EQ(got[i].kind, want[i].kind) << drug_class << " " << i;
      EXPECT_EQ(got[i].from_day, want[i].from) << drug_class << " " << want[i].kind;
      EXPECT_EQ(got[i].to_day, want[i].to) << drug_class << " " << want[i].kind;
    }
  };
  // A bisphosphonate started on 29 February: 2 and 3 years fall on 28 February, 5 years too.
  check("oral-bisphosphonate", D(2024, 2, 29),
        {{"reassessment", D(2026, 2, 28), D(2027, 2, 28)},
         {"stop-evaluation", D(2027, 2, 28), D(2029, 2, 28)},
         {"beyond-five-years", D(2029, 2, 28), D(2029, 5, 29)}});
  // Teriparatide: the relay at 18-24 months; no stop evaluation (a fixed course).
  check("teriparatide", D(2025, 8, 31),
        {{"teriparatide-relay", D(2027, 2, 28), D(2027, 8, 31)},
         {"reassessment", D(2027, 8, 31), D(2028, 8, 31)},
         {"beyond-five-years", D(2030, 8, 31), D(2030, 11, 30)}});
  // Denosumab is never stopped without a relay: no stop evaluation either.
  check("denosumab", D(2025, 1, 31),
        {{"reassessment", D(2027, 1, 31), D(2028, 1, 31)}, {"beyond-five-years", D(2030, 1, 31), D(2030, 4, 30)}});
}

TEST(Schedule, DenosumabStoppedIsRelayedFromTheNextInjectionDate) {
  struct Row {
    int64_t start, stop, relay;  // start: the last injection
  };
  const Row rows[] = {
      {D(2025, 7, 31), D(2025, 9, 15), D(2026, 1, 31)},  // the next injection, 6 months after the last
      {D(2025, 1, 31), D(2025, 7, 31), D(2025, 7, 31)},  // stopped on the day it was due
      {D(2025, 1, 31), D(2025, 8, 1), D(2025, 8, 1)},    // overdue already: relay at once
      {D(2024, 8, 31), D(2024, 12, 1), D(2025, 2, 28)},  // 31 August + 6 months, clamped
      {D(2024, 2, 29), D(2024, 3, 1), D(2024, 8, 29)},
  };
  for (const auto& r : rows) {
    auto relay = Plan().RelayAfter("denosumab", r.start, r.stop);
    ASSERT_TRUE(relay.has_value());
    EXPECT_EQ(relay->from_day, r.relay) << r.start << " stopped " << r.stop;
    EXPECT_EQ(relay->to_day, r.relay + 14);
    EXPECT_EQ(relay->relay_drug, "M05BA");
    EXPECT_EQ(relay->relay_months, 12);
  }
  EXPECT_FALSE(Plan().RelayAfter("oral-bisphosphonate", D(2025, 1, 1), D(2026, 1, 1)).has_value());
  auto after = Plan().AfterStop(D(2024, 2, 29));
  EXPECT_EQ(after.from_day, D(2026, 2, 28));
  EXPECT_EQ(after.to_day, D(2026, 5, 29));
  EXPECT_EQ(after.task, "re-evaluation-after-stop");
}

TEST(Schedule, MalformedFilesAreRefused) {
  const char* bad[] = {
      "[]",
      R"({"plans":[{"kind":"a","task":"t","classes":["*"],"fromMonths":24,"toMonths":12,"description":"d","source":"s"}]})",
      R"({"plans":[]})",
      R"({"plans":[{"kind":"a","task":"t","classes":[],"fromMonths":1,"toMonths":2,"description":"d","source":"s"}]})",
  };
  for (const char* text : bad) EXPECT_THROW(LongTermPlan::Parse(text), std::invalid_argument) << text;
}

const FollowUpProgramme& Programme() {
  static const FollowUpProgramme p = FollowUpProgramme::Parse(test::ReadSourceFile("workflow/data/follow-up.json"));
  return p;
}

// Every drug's calls, exactly: a start on the 31st and on 29 February, months clamped, never
// chained, up to the 5-year horizon.
TEST(FollowUpSchedule, EveryDrugsCallsAtTheirDates) {
  struct Row {
    const char* drug_class;
    int64_t start;
    std::vector<int64_t> due;
  };
  const Row rows[] = {
      {"oral-bisphosphonate", D(2025, 1, 31),
       {D(2025, 2, 28), D(2025, 4, 30), D(2025, 7, 31), D(2026, 1, 31), D(2027, 1, 31), D(2028, 1, 31), D(2029, 1, 31),
        D(2030, 1, 31)}},
      {"oral-bisphosphonate", D(2024, 2, 29),
       {D(2024, 3, 29), D(2024, 5, 29), D(2024, 8, 29), D(2025, 2, 28), D(2026, 2, 28), D(2027, 2, 28), D(2028, 2, 29),
        D(2029, 2, 28)}},
      {"zoledronic-acid", D(2025, 8, 31), {D(2025, 11, 30), D(2026, 8, 31)}},
      {"denosumab", D(2025, 8, 31), {D(2026, 8, 31)}},
      {"teriparatide", D(2025, 12, 31),
       {D(2026, 1, 31), D(2026, 2, 28), D(2026, 3, 31), D(2026, 6, 30), D(2026, 9, 30), D(2026, 12, 31), D(2027, 3, 31),
        D(2027, 6, 30), D(2027, 9, 30), D(2027, 12, 31)}},
      {"raloxifene", D(2024, 2, 29),
       {D(2024, 5, 29), D(2025, 2, 28), D(2026, 2, 28), D(2027, 2, 28), D(2028, 2, 29), D(2029, 2, 28)}},
      {"hormone-therapy", D(2025, 3, 31),
       {D(2025, 6, 30), D(2026, 3, 31), D(2027, 3, 31), D(2028, 3, 31), D(2029, 3, 31), D(2030, 3, 31)}},
      {"no-such-class", D(2025, 1, 1), {}},
  };
  for (const auto& r : rows) {
    std::vector<int64_t> got;
    for (const auto& c : Programme().Calls(r.drug_class, r.start)) got.push_back(c.due_day);
    EXPECT_EQ(got, r.due) << r.drug_class << " from " << r.start;
  }
  auto bisphosphonate = Programme().Calls("oral-bisphosphonate", D(2025, 1, 31));
  EXPECT_TRUE(bisphosphonate[1].monitoring) << "3 months: the 16-week monitoring contact";
  EXPECT_TRUE(bisphosphonate[3].adherence) << "12 months: adherence";
  EXPECT_FALSE(bisphosphonate[2].adherence);
}

// The next dose, from the last recorded one: denosumab's reminder 14 days before and its alert 28
// days after; zoledronic acid's reminder (last + 12 months) - 1 month.
TEST(FollowUpSchedule, RemindersCountFromTheLastDose) {
  auto dmab = Programme().Next("denosumab", D(2025, 8, 31));
  ASSERT_TRUE(dmab.has_value());
  EXPECT_EQ(dmab->kind, "injection");
  EXPECT_EQ(dmab->due_day, D(2026, 2, 28));
  EXPECT_EQ(dmab->reminder_day, D(2026, 2, 14));
  EXPECT_EQ(dmab->overdue_day, D(2026, 3, 28));
  auto z = Programme().Next("zoledronic-acid", D(2024, 2, 29));
  ASSERT_TRUE(z.has_value());
  EXPECT_EQ(z->kind, "infusion");
  EXPECT_EQ(z->due_day, D(2025, 2, 28));
  EXPECT_EQ(z->reminder_day, D(2025, 1, 28)) << "(last + 12 months) - 1 month";
  EXPECT_FALSE(z->overdue_day.has_value());
  auto z31 = Programme().Next("zoledronic-acid", D(2025, 3, 31));
  EXPECT_EQ(z31->reminder_day, D(2026, 2, 28));
  EXPECT_FALSE(Programme().Next("oral-bisphosphonate", D(2025, 1, 1)).has_value());
  EXPECT_TRUE(Programme().DosedByInjection("denosumab"));
  EXPECT_FALSE(Programme().DosedByInjection("teriparatide"));
  EXPECT_EQ(Programme().unreachable_attempts(), 3);
  EXPECT_EQ(Programme().lost_after_months(), 6);
}

TEST(FollowUpSchedule, MalformedFilesAreRefused) {
  const char* bad[] = {
      R"({"horizonMonths":60,"schedules":[]})",
      R"({"horizonMonths":60,"schedules":[{"class":"x","callsMonths":[3,1],"source":"s"}]})",
      R"({"horizonMonths":60,"schedules":[{"class":"x","callsMonths":[1],"source":"s"},{"class":"x","callsMonths":[1],"source":"s"}]})",
      R"({"schedules":[{"class":"x","callsMonths":[1],"source":"s"}]})",
  };
  for (const char* text : bad) EXPECT_THROW(FollowUpProgramme::Parse(text), std::invalid_argument) << text;
}

}  // namespace
}  // namespace fls::workflow
