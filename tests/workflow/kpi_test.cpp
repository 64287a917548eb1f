// The KPI engine, table-driven: each kind of kpis.md with the edges of its window (the day of the
// limit in, the day after out, an event before the fracture out), the exclusions, the bands at
// their bounds, the medians, and the framework files (the shipped ones parse; broken lines are
// refused with their place).
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "workflow/civil_date.h"
#include "workflow/kpi.h"

namespace fls::workflow {
namespace {

std::string Read(const std::string& name) {
  std::ifstream in(std::string(FLS_SOURCE_DIR) + "/workflow/data/kpi-frameworks/" + name);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const KpiFramework& FlsDb() {
  static const KpiFramework f = ParseKpiFramework(Read("fls-db.json"));
  return f;
}
const KpiFramework& Iof() {
  static const KpiFramework f = ParseKpiFramework(Read("iof.json"));
  return f;
}
const KpiFramework& Fls() {
  static const KpiFramework f = ParseKpiFramework(Read("fls.json"));
  return f;
}
const KpiDefinition& Def(const KpiFramework& f, const std::string& id) {
  for (const auto& m : f.measures) {
    if (m.id == id) return m;
  }
  throw std::runtime_error("no measure " + id);
}

const int64_t kIndex = CivilDay(2026, 1, 31);  // a month end

KpiCase Case(const std::string& id, std::map<std::string, int> events = {}, const std::string& site = "hip") {
  KpiCase c;
  c.episode_id = id;
  c.site = "site-a";
  c.index_day = kIndex;
  c.index_site = site;
  c.identified_day = kIndex + 2;
  for (const auto& [e, d] : events) c.first_event_day.Set(e, kIndex + d);
  c.has_phone = c.has_referring_physician = true;
  return c;
}

struct Row {
  const char* what;
  std::string measure;
  KpiCase c;
  bool in_denominator, excluded, in_numerator;
};

void Check(const KpiFramework& f, const std::vector<Row>& rows, int64_t evaluation_day = CivilDay(2028, 6, 1)) {
  for (const auto& r : rows) {
    KpiPopulations p = EvaluateKpi(Def(f, r.measure), {r.c}, {evaluation_day, std::nullopt});
    auto has = [&](const std::vector<std::string_view>& v) { return std::find(v.begin(), v.end(), r.c.episode_id) != v.end(); };
    EXPECT_TRUE(has(p.initial)) << r.what;
    EXPECT_EQ(has(p.denominator), r.in_denominator) << r.measure << ": " << r.what << " (denominator)";
    EXPECT_EQ(has(p.exclusion), r.excluded) << r.measure << ": " << r.what << " (exclusion)";
    EXPECT_EQ(has(p.numerator), r.in_numerator) << r.measure << ": " << r.what << " (numerator)";
    EXPECT_EQ(p.initial_count, static_cast<int64_t>(p.initial.size())) << r.what;
    EXPECT_EQ(p.numerator_count, static_cast<int64_t>(p.numerator.size())) << r.what;
    EXPECT_EQ(p.denominator_cases, static_cast<int64_t>(p.denominator.size())) << r.what;
    EXPECT_EQ(p.exclusion_count, static_cast<int64_t>(p.exclusion.size())) << r.what;
  }
  // All the table's Measures over all its cases in one pass (the dashboard's way, counts only)
  // equal each Measure evaluated alone with its lists.
  std::vector<const KpiDefinition*> defs;
  std::vector<const KpiCase*> cases;
  for (const auto& r : rows) {
    const KpiDefinition* d = &Def(f, r.measure);
    if (std::find(defs.begin(), defs.end(), d) == defs.end()) defs.push_back(d);
    cases.push_back(&r.c);
  }
  const KpiContext ctx{evaluation_day, std::nullopt};
  const std::vector<KpiPopulations> together = EvaluateKpis(defs, cases, ctx, false);
  ASSERT_EQ(together.size(), defs.size());
  for (size_t i = 0; i < defs.size(); ++i) {
    const KpiPopulations alone = EvaluateKpi(*defs[i], cases, ctx);
    EXPECT_TRUE(together[i].numerator.empty() && together[i].initial.empty()) << "no lists were asked for";
    EXPECT_EQ(together[i].initial_count, static_cast<int64_t>(alone.initial.size())) << defs[i]->id;
    EXPECT_EQ(together[i].denominator_cases, static_cast<int64_t>(alone.denominator.size())) << defs[i]->id;
    EXPECT_EQ(together[i].exclusion_count, static_cast<int64_t>(alone.exclusion.size())) << defs[i]->id;
    EXPECT_EQ(together[i].numerator_count, static_cast<int64_t>(alone.numerator.size())) << defs[i]->id;
    EXPECT_EQ(together[i].score, alone.score) << defs[i]->id;
    EXPECT_EQ(together[i].band, alone.band) << defs[i]->id;
    EXPECT_EQ(together[i].observations, alone.observations) << defs[i]->id;
  }
}

TEST(Kpi, MedianOfOddAndEvenCounts) {
  struct M {
    std::vector<double> values;
    std::optional<double> median;
  };
  const M rows[] = {{{}, std::nullopt},          {{5}, 5},           {{3, 1}, 2},        {{3, 1, 2}, 2},
                    {{4, 1, 3, 2}, 2.5},         {{7, 7, 1, 9}, 7},  {{9, 1, 9, 1}, 5},  {{90, 10, 30, 20, 91, 50}, 40},
                    {{0, 0, 0}, 0}};
  for (const auto& r : rows) EXPECT_EQ(Median(r.values), r.median) << r.values.size() << " values";
}

TEST(Kpi, TheShippedFrameworksParse) {
  EXPECT_EQ(FlsDb().measures.size(), 11u);
  EXPECT_EQ(Iof().measures.size(), 11u);
  for (int i = 1; i <= 11; ++i) {
    EXPECT_NO_THROW(Def(FlsDb(), "fls-db-kpi-" + std::to_string(i)));
    EXPECT_NO_THROW(Def(Iof(), "iof-kpi-" + std::to_string(i)));
  }
  for (const char* id : {"fls-median-days-to-assessment", "fls-median-days-to-dxa", "fls-median-days-to-treatment",
                         "fls-refracture-12m", "fls-refracture-24m"}) {
    EXPECT_NO_THROW(Def(Fls(), id)) << id;
  }
  EXPECT_EQ(Def(FlsDb(), "fls-db-kpi-4").window_days, 90);
  EXPECT_EQ(Def(Iof(), "iof-kpi-3").window_days, 84);
  EXPECT_EQ(Def(Iof(), "iof-kpi-1").kind, "identification");
  EXPECT_TRUE(Def(Iof(), "iof-kpi-1").non_spinal_only);
  for (const auto* f : {&FlsDb(), &Iof(), &Fls()}) {
    for (const auto& m : f->measures) EXPECT_FALSE(m.source.empty()) << m.id << " has no source";
  }
}

TEST(Kpi, AssessmentWithinTheWindow) {
  Check(FlsDb(), {
      {"enrolled on day 90", "fls-db-kpi-4", Case("a", {{"enrol", 90}}), true, false, true},
      {"enrolled on day 91", "fls-db-kpi-4", Case("b", {{"enrol", 91}}), true, false, false},
      {"excluded (declined) on day 0", "fls-db-kpi-4", Case("c", {{"exclude", 0}}), true, false, true},
      {"never assessed", "fls-db-kpi-4", Case("d"), true, false, false},
  });
  Check(Iof(), {
      {"enrolled on day 84", "iof-kpi-3", Case("a", {{"enrol", 84}}), true, false, true},
      {"enrolled on day 85", "iof-kpi-3", Case("b", {{"enrol", 85}}), true, false, false},
  });
  KpiCase not_fragility = Case("x", {{"exclude", 3}});
  not_fragility.exclude_reason = "not-fragility";
  KpiCase pathological = Case("y", {{"exclude", 3}});
  pathological.exclude_reason = "pathological";
  KpiCase declined = Case("z", {{"exclude", 3}});
  declined.exclude_reason = "declined";
  Check(FlsDb(), {
      {"excluded: not a fragility fracture", "fls-db-kpi-4", not_fragility, true, true, false},
      {"excluded: pathological", "fls-db-kpi-4", pathological, true, true, false},
      {"excluded: declined (assessed, counts)", "fls-db-kpi-4", declined, true, false, true},
  });
}

TEST(Kpi, DxaCountsTheOrderedOnes) {
  KpiCase on90 = Case("a", {{"enrol", 5}});
  on90.dxa_ordered = true;
  on90.dxa_result_day = kIndex + 90;
  KpiCase on91 = on90;
  on91.episode_id = "b";
  on91.dxa_result_day = kIndex + 91;
  KpiCase pending = on90;
  pending.episode_id = "c";
  pending.dxa_result_day.reset();
  KpiCase waived = Case("d", {{"enrol", 5}});  // waived or never ordered: not in the denominator
  KpiCase before = on90;
  before.episode_id = "e";
  before.dxa_result_day = kIndex - 1;  // a scan before the fracture is not the work-up
  Check(FlsDb(), {
      {"result on day 90", "fls-db-kpi-5", on90, true, false, true},
      {"result on day 91", "fls-db-kpi-5", on91, true, false, false},
      {"ordered, no result yet", "fls-db-kpi-5", pending, true, false, false},
      {"waived", "fls-db-kpi-5", waived, false, false, false},
      {"result before the fracture", "fls-db-kpi-5", before, true, false, false},
  });
}

TEST(Kpi, FallsTherapyStrengthMonitoringTreatment) {
  KpiCase reached = Case("m1", {{"enrol", 5}, {"decide-treatment", 30}});
  reached.contacts = {{kIndex + 112, true, true}};
  KpiCase late = Case("m2", {{"enrol", 5}, {"decide-treatment", 30}});
  late.contacts = {{kIndex + 113, true, true}, {kIndex + 50, false, std::nullopt}};
  Check(FlsDb(), {
      {"falls assessed", "fls-db-kpi-6", Case("f1", {{"falls-assessment", 200}}), true, false, true},
      {"falls not assessed", "fls-db-kpi-6", Case("f2"), true, false, false},
      {"enrolled and decided", "fls-db-kpi-7", Case("t1", {{"enrol", 5}, {"decide-treatment", 40}}), true, false, true},
      {"enrolled, no decision", "fls-db-kpi-7", Case("t2", {{"enrol", 5}}), true, false, false},
      {"not enrolled", "fls-db-kpi-7", Case("t3"), false, false, false},
      {"wrist, exercise on day 112", "fls-db-kpi-8", Case("s1", {{"exercise-started", 112}}, "wrist"), true, false, true},
      {"wrist, exercise on day 113", "fls-db-kpi-8", Case("s2", {{"exercise-started", 113}}, "wrist"), true, false, false},
      {"hip: not in the denominator", "fls-db-kpi-8", Case("s3", {{"exercise-started", 10}}, "hip"), false, false, false},
      {"reached on day 112", "fls-db-kpi-9", reached, true, false, true},
      {"reached on day 113 only (the day-50 call was not reached)", "fls-db-kpi-9", late, true, false, false},
      {"no decision: not in the denominator", "fls-db-kpi-9", Case("m3"), false, false, false},
      {"started on day 112", "fls-db-kpi-10", Case("r1", {{"decide-treatment", 30}, {"treatment-started", 112}}), true, false, true},
      {"started on day 113", "fls-db-kpi-10", Case("r2", {{"decide-treatment", 30}, {"treatment-started", 113}}), true, false, false},
      {"decided, not started", "fls-db-kpi-10", Case("r3", {{"decide-treatment", 30}}), true, false, false},
  });
}

TEST(Kpi, AdherenceAtTwelveMonths) {
  auto treated = [](const std::string& id) { return Case(id, {{"decide-treatment", 20}, {"treatment-started", 30}}); };
  KpiCase said_yes = treated("a1");
  said_yes.contacts = {{kIndex + 280, true, true}};
  KpiCase said_no_last = treated("a2");
  said_no_last.contacts = {{kIndex + 300, true, true}, {kIndex + 448, true, false}};
  KpiCase too_early = treated("a3");
  too_early.contacts = {{kIndex + 279, true, true}};
  KpiCase too_late = treated("a4");
  too_late.contacts = {{kIndex + 449, true, true}};
  KpiCase unreached = treated("a5");
  unreached.contacts = {{kIndex + 360, false, true}};
  KpiCase dispensed = treated("a6");
  dispensed.dispenses = {{kIndex + 335, 30}};  // covers days 335..364
  KpiCase dispensed_short = treated("a7");
  dispensed_short.dispenses = {{kIndex + 334, 30}};  // covers days 334..363
  Check(FlsDb(), {
      {"adherent on day 280", "fls-db-kpi-11", said_yes, true, false, true},
      {"the last contact of the window says not adherent", "fls-db-kpi-11", said_no_last, true, false, false},
      {"contact on day 279", "fls-db-kpi-11", too_early, true, false, false},
      {"contact on day 449", "fls-db-kpi-11", too_late, true, false, false},
      {"not reached", "fls-db-kpi-11", unreached, true, false, false},
      {"dispensing covers day 364", "fls-db-kpi-11", dispensed, true, false, true},
      {"dispensing ends on day 363", "fls-db-kpi-11", dispensed_short, true, false, false},
      {"never started", "fls-db-kpi-11", Case("a8", {{"decide-treatment", 20}}), false, false, false},
  });
  // The fracture must be 52 weeks old on the day of the evaluation.
  Check(FlsDb(), {{"fracture 363 days before the evaluation", "fls-db-kpi-11", said_yes, false, false, false}},
        kIndex + 363);
  Check(FlsDb(), {{"fracture 364 days before the evaluation", "fls-db-kpi-11", said_yes, true, false, true}}, kIndex + 364);
}

TEST(Kpi, CompletenessAndSpine) {
  KpiCase complete = Case("k1", {{"enrol", 5}});
  KpiCase no_phone = complete;
  no_phone.episode_id = "k2";
  no_phone.has_phone = false;
  KpiCase unassessed = Case("k3");
  KpiCase excluded = Case("k4", {{"exclude", 2}});  // excluded: no phone needed
  excluded.exclude_reason = "declined";
  excluded.has_phone = false;
  KpiCase unknown_site = Case("k5", {{"enrol", 5}}, "unspecified");
  KpiCase no_fls_site = complete;
  no_fls_site.episode_id = "k6";
  no_fls_site.site = "";
  Check(FlsDb(), {
      {"all key fields", "fls-db-kpi-1", complete, true, false, true},
      {"enrolled without a phone", "fls-db-kpi-1", no_phone, true, false, false},
      {"not assessed", "fls-db-kpi-1", unassessed, true, false, false},
      {"excluded (declined), no phone", "fls-db-kpi-1", excluded, true, false, true},
      {"fracture site unspecified", "fls-db-kpi-1", unknown_site, true, false, false},
      {"no FLS site", "fls-db-kpi-1", no_fls_site, true, false, false},
      {"vertebral", "fls-db-kpi-3", Case("v1", {}, "vertebra"), true, false, true},
      {"hip", "fls-db-kpi-3", Case("v2", {}, "hip"), true, false, false},
  });
}

TEST(Kpi, IdentificationAgainstTheExpectedCaseload) {
  std::vector<KpiCase> cases = {Case("i1", {}, "hip"), Case("i2", {}, "vertebra"), Case("i3", {}, "wrist")};
  auto fls_db = EvaluateKpi(Def(FlsDb(), "fls-db-kpi-2"), cases, {CivilDay(2027, 1, 1), 4});
  EXPECT_EQ(fls_db.numerator.size(), 3u);
  ASSERT_TRUE(fls_db.denominator_count);
  EXPECT_EQ(*fls_db.denominator_count, 4);
  EXPECT_DOUBLE_EQ(*fls_db.score, 0.75);
  EXPECT_EQ(fls_db.band, "amber");
  auto iof = EvaluateKpi(Def(Iof(), "iof-kpi-1"), cases, {CivilDay(2027, 1, 1), 4});
  EXPECT_EQ(iof.numerator.size(), 2u) << "IOF counts non-spinal cases";
  EXPECT_DOUBLE_EQ(*iof.score, 0.5);
  EXPECT_EQ(iof.band, "50-80");
  auto none = EvaluateKpi(Def(FlsDb(), "fls-db-kpi-2"), cases, {CivilDay(2027, 1, 1), std::nullopt});
  EXPECT_FALSE(none.score) << "no caseload configured: no score, not a division by zero";
}

TEST(Kpi, BandsAtTheirBounds) {
  auto score_of = [](const std::string& measure, int met, int total, const KpiFramework& f) {
    std::vector<KpiCase> cases;
    for (int i = 0; i < total; ++i) cases.push_back(Case("c" + std::to_string(i), i < met ? std::map<std::string, int>{{"falls-assessment", 1}} : std::map<std::string, int>{}, i < met && measure.find("kpi-3") != std::string::npos ? "vertebra" : "hip"));
    return EvaluateKpi(Def(f, measure), cases, {CivilDay(2027, 1, 1), std::nullopt});
  };
  EXPECT_EQ(score_of("fls-db-kpi-6", 8, 10, FlsDb()).band, "green");   // 80%: green
  EXPECT_EQ(score_of("fls-db-kpi-6", 79, 100, FlsDb()).band, "amber");
  EXPECT_EQ(score_of("fls-db-kpi-6", 50, 100, FlsDb()).band, "amber");
  EXPECT_EQ(score_of("fls-db-kpi-6", 49, 100, FlsDb()).band, "red");
  EXPECT_EQ(score_of("fls-db-kpi-3", 20, 100, FlsDb()).band, "amber");  // green is above 20%
  EXPECT_EQ(score_of("fls-db-kpi-3", 21, 100, FlsDb()).band, "green");
  EXPECT_EQ(score_of("fls-db-kpi-3", 10, 100, FlsDb()).band, "amber");
  EXPECT_EQ(score_of("fls-db-kpi-3", 9, 100, FlsDb()).band, "red");
  EXPECT_EQ(score_of("iof-kpi-5", 8, 10, Iof()).band, "50-80");         // IOF: above 80%
  EXPECT_EQ(score_of("iof-kpi-5", 81, 100, Iof()).band, "above-80");
  auto empty = EvaluateKpi(Def(FlsDb(), "fls-db-kpi-6"), std::vector<KpiCase>{}, {CivilDay(2027, 1, 1), std::nullopt});
  EXPECT_FALSE(empty.score) << "no cases: no score";
  EXPECT_EQ(empty.band, "");
  // Exclusions leave the denominator's count but not the score's.
  KpiCase x = Case("x");
  x.first_event_day.Set("exclude", kIndex + 1);
  x.exclude_reason = "pathological";
  auto p = EvaluateKpi(Def(FlsDb(), "fls-db-kpi-6"), {Case("a", {{"falls-assessment", 2}}), Case("b"), x},
                       {CivilDay(2027, 1, 1), std::nullopt});
  EXPECT_EQ(p.denominator.size(), 3u);
  EXPECT_EQ(p.exclusion.size(), 1u);
  EXPECT_DOUBLE_EQ(*p.score, 0.5);
}

TEST(Kpi, MediansAndRefractures) {
  std::vector<KpiCase> cases = {Case("a", {{"enrol", 10}}), Case("b", {{"exclude", 20}}), Case("c", {{"enrol", 31}}),
                                Case("d", {{"enrol", 45}}), Case("e")};
  auto m = EvaluateKpi(Def(Fls(), "fls-median-days-to-assessment"), cases, {CivilDay(2027, 1, 1), std::nullopt});
  EXPECT_EQ(m.denominator.size(), 4u) << "the measure population: the assessed cases";
  ASSERT_TRUE(m.score);
  EXPECT_DOUBLE_EQ(*m.score, 25.5);
  EXPECT_EQ(Median({3}), 3);
  EXPECT_EQ(Median({5, 1, 3}), 3);
  EXPECT_FALSE(Median({}));
  auto id = EvaluateKpi(Def(Fls(), "fls-median-days-to-identification"), cases, {CivilDay(2027, 1, 1), std::nullopt});
  EXPECT_DOUBLE_EQ(*id.score, 2);

  KpiCase within = Case("r1");
  within.later_fracture_days = {kIndex + 365};
  KpiCase after = Case("r2");
  after.later_fracture_days = {kIndex + 366};
  KpiCase same_day = Case("r3");
  same_day.later_fracture_days = {kIndex};  // the index fracture's own records are not a refracture
  Check(Fls(), {
      {"refracture on day 365", "fls-refracture-12m", within, true, false, true},
      {"refracture on day 366", "fls-refracture-12m", after, true, false, false},
      {"a fracture on the index day", "fls-refracture-12m", same_day, true, false, false},
      {"refracture on day 366 within 24 months", "fls-refracture-24m", after, true, false, true},
  });
  Check(Fls(), {{"not followed 12 months yet", "fls-refracture-12m", within, false, false, false}}, kIndex + 364);
}

TEST(Kpi, TheTreatmentGap) {
  KpiCase excluded = Case("x", {{"exclude", 5}});
  excluded.exclude_reason = "pathological";
  Check(Fls(), {
      {"started on day 100", "fls-treatment-gap", Case("t1", {{"treatment-started", 100}}), true, false, false},
      {"started on day 365, the window's last", "fls-treatment-gap", Case("t2", {{"treatment-started", 365}}), true, false, false},
      {"started on day 366: a year untreated", "fls-treatment-gap", Case("t3", {{"treatment-started", 366}}), true, false, true},
      {"decided, never started", "fls-treatment-gap", Case("t4", {{"decide-treatment", 30}}), true, false, true},
      {"nothing done", "fls-treatment-gap", Case("t5"), true, false, true},
      {"pathological: out of the gap", "fls-treatment-gap", excluded, true, true, false},
  });
  // A case not yet a year old is not in the gap's denominator: it still has time.
  Check(Fls(), {{"not followed a year yet", "fls-treatment-gap", Case("t6"), false, false, false}}, kIndex + 364);
  EXPECT_EQ(Def(Fls(), "fls-treatment-gap").bands.size(), 0u) << "no benchmark band for the gap";
}

TEST(Kpi, BrokenFrameworkLinesAreRefusedWithTheirPlace) {
  struct Case {
    const char* why;
    std::string text;
    const char* says;
  };
  const std::string head = R"({"framework":"x","title":"X","source":"s","idPrefix":"x-","measures":[)";
  const Case cases[] = {
      {"not JSON", "{", "not a JSON object"},
      {"no measures", R"({"framework":"x","title":"X","source":"s","measures":[]})", "non-empty array"},
      {"unknown kind", head + R"({"number":1,"kind":"magic","title":"t","description":"d","source":"s"}]})", "unknown kind magic"},
      {"window missing", head + R"({"number":1,"kind":"assessment","title":"t","description":"d","source":"s"}]})", "windowDays"},
      {"no source", head + R"({"number":1,"kind":"falls-assessment","title":"t","description":"d"}]})", "\"source\""},
      {"twice", head + R"({"number":1,"kind":"falls-assessment","title":"t","description":"d","source":"s"},{"number":1,"kind":"falls-assessment","title":"t","description":"d","source":"s"}]})", "listed twice"},
      {"bands upside down", head + R"({"number":1,"kind":"falls-assessment","title":"t","description":"d","source":"s","bands":[{"code":"red","min":0},{"code":"green","min":0.8}]}]})", "best to the worst"},
      {"median without milestone", head + R"({"number":1,"kind":"median-days","title":"t","description":"d","source":"s"}]})", "milestone"},
      {"bad id", R"({"framework":"x","title":"X","source":"s","measures":[{"id":"a b","kind":"falls-assessment","title":"t","description":"d","source":"s"}]})", "not a FHIR id"},
  };
  for (const auto& c : cases) {
    try {
      ParseKpiFramework(c.text);
      ADD_FAILURE() << c.why << ": accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(c.says), std::string::npos) << c.why << ": " << e.what();
    }
  }
  // A third framework is a file.
  auto third = ParseKpiFramework(head + R"({"number":7,"kind":"assessment","windowDays":30,"title":"t","description":"d","source":"s"}]})");
  EXPECT_EQ(third.measures[0].id, "x-7");
  EXPECT_EQ(third.measures[0].window_days, 30);
}

}  // namespace
}  // namespace fls::workflow
