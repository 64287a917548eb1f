// The Capture the Fracture goals, the Best Practice Framework levels and the projection,
// table-driven: the levels at their bounds (higher-is-better and a median of days), the overall
// level, rates of periods of unequal length (a leap year), the projection against an independent
// numerical integration, its "what if" and what it needs, and the configuration file (the shipped
// one parses and names only Measures that exist; broken lines are refused with their place).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include "workflow/goals.h"
#include "workflow/kpi.h"

namespace fls::workflow {
namespace {

std::string Read(const std::string& path) {
  std::ifstream in(std::string(FLS_SOURCE_DIR) + "/" + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const GoalsConfig& Shipped() {
  static const GoalsConfig g = ParseGoalsConfig(Read("workflow/data/capture-the-fracture.json"));
  return g;
}

TEST(Goals, TheShippedFileParsesAndNamesMeasuresThatExist) {
  const GoalsConfig& g = Shipped();
  EXPECT_EQ(g.baseline_start, "2025-01-01");
  EXPECT_DOUBLE_EQ(g.active_sites_target, 2.0);
  EXPECT_DOUBLE_EQ(g.hip_vertebral_target, -0.25);
  EXPECT_EQ(g.hip_vertebral_sites, (std::vector<std::string>{"hip", "vertebra"}));
  EXPECT_EQ(g.projection.horizons_years, (std::vector<int>{1, 3, 5}));
  EXPECT_GE(g.bpf.size(), 6u);
  std::set<std::string> ids;
  for (const char* f : {"fls-db.json", "iof.json", "fls.json", "ctf.json"}) {
    for (const auto& m : ParseKpiFramework(Read(std::string("workflow/data/kpi-frameworks/") + f)).measures) ids.insert(m.id);
  }
  for (const auto& s : g.bpf) {
    EXPECT_TRUE(ids.count(s.measure)) << "standard " << s.number << " names " << s.measure;
    EXPECT_FALSE(s.source.empty());
  }
  EXPECT_TRUE(ids.count(g.projection.capture_measure));
  EXPECT_TRUE(ids.count(g.projection.treatment_measure));
  EXPECT_TRUE(ids.count(g.projection.adherence_measure));
  EXPECT_TRUE(ids.count("ctf-active-sites") && ids.count("ctf-hip-vertebral-change"));
  // The published figures it carries (spec kpis.md, Wu 2018).
  EXPECT_DOUBLE_EQ(g.projection.usual_care.refracture, 0.134);
  EXPECT_DOUBLE_EQ(g.projection.with_fls.refracture, 0.064);
  EXPECT_DOUBLE_EQ(g.projection.annual_refracture_risk, 0.063);
}

TEST(Goals, BrokenLinesAreRefusedWithTheirPlace) {
  const std::string good = Read("workflow/data/capture-the-fracture.json");
  struct Case {
    std::string from, to, message;
  };
  const std::vector<Case> cases = {
      {"\"start\": \"2025-01-01\"", "\"start\": \"2025-02-30\"", "baselinePeriod"},
      {"\"end\": \"2025-12-31\"", "\"end\": \"2024-12-31\"", "baselinePeriod"},
      {"\"overall\": \"lowest\"", "\"overall\": \"average\"", "overall"},
      {"\"bronze\": 0.5, \"silver\": 0.7, \"gold\": 0.9,\n    \"source\": \"BPF standard 1",
       "\"bronze\": 0.9, \"silver\": 0.7, \"gold\": 0.5,\n    \"source\": \"BPF standard 1", "standard 0 (1): gold, silver and bronze"},
      {"\"bronze\": 112, \"silver\": 84, \"gold\": 56", "\"bronze\": 56, \"silver\": 84, \"gold\": 112", "standard 2 (3)"},
      {"\"horizonsYears\": [1, 3, 5]", "\"horizonsYears\": [0]", "horizons"},
      {"\"annualRefractureRisk\": 0.063", "\"annualRefractureRisk\": 1.5", "annualRefractureRisk"},
      {"\"fractureSites\": [\"hip\", \"vertebra\"]", "\"fractureSites\": []", "fractureSites"},
      {"\"treatment\": 0.172", "\"treatment\": \"17%\"", "usualCare"},
  };
  for (const auto& c : cases) {
    std::string text = good;
    const auto at = text.find(c.from);
    ASSERT_NE(at, std::string::npos) << c.from;
    text.replace(at, c.from.size(), c.to);
    try {
      ParseGoalsConfig(text);
      ADD_FAILURE() << "accepted " << c.to;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(c.message), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(ParseGoalsConfig("[]"), std::invalid_argument);
}

TEST(Goals, BestPracticeLevelsAtTheirBounds) {
  BpfStandard share{9, "Medication initiation", "fls-db-kpi-10", "", false, 0.5, 0.7, 0.9};
  BpfStandard days{3, "Assessment timing", "fls-median-days-to-assessment", "", true, 112, 84, 56};
  struct Case {
    const BpfStandard* s;
    std::optional<double> score;
    const char* level;
  };
  const std::vector<Case> cases = {
      {&share, 1.0, "gold"},    {&share, 0.9, "gold"},      {&share, 0.8999, "silver"}, {&share, 0.7, "silver"},
      {&share, 0.6999, "bronze"}, {&share, 0.5, "bronze"},  {&share, 0.4999, "below"},  {&share, 0.0, "below"},
      {&share, std::nullopt, ""}, {&days, 0.0, "gold"},     {&days, 56, "gold"},        {&days, 56.5, "silver"},
      {&days, 84, "silver"},    {&days, 85, "bronze"},      {&days, 112, "bronze"},     {&days, 112.5, "below"},
      {&days, std::nullopt, ""},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(BpfLevel(*c.s, c.score), c.level) << c.s->title << " " << (c.score ? std::to_string(*c.score) : "none");
  }
  struct Overall {
    std::vector<std::string> levels;
    const char* want;
  };
  for (const auto& o : std::vector<Overall>{{{"gold", "gold"}, "gold"},
                                            {{"gold", "silver", ""}, "silver"},
                                            {{"", "bronze", "gold"}, "bronze"},
                                            {{"gold", "below"}, "below"},
                                            {{"", ""}, ""},
                                            {{}, ""}}) {
    EXPECT_EQ(OverallBpfLevel(o.levels), o.want);
  }
}

TEST(Goals, RatesComparePerDay) {
  struct Case {
    int64_t p, pd, b, bd;
    std::optional<double> want;
  };
  const std::vector<Case> cases = {
      {10, 365, 10, 365, 1.0},
      {75, 365, 100, 365, 0.75},                       // the goal: 25% fewer
      {30, 91, 100, 365, (30.0 / 91) / (100.0 / 365)},  // a quarter against a year
      {100, 366, 100, 365, 365.0 / 366},                // a leap year has one more day
      {0, 365, 10, 365, 0.0},
      {10, 365, 0, 365, std::nullopt},                  // no baseline: no ratio
  };
  for (const auto& c : cases) {
    auto got = RateRatio(c.p, c.pd, c.b, c.bd);
    ASSERT_EQ(got.has_value(), c.want.has_value()) << c.p << "/" << c.pd << " vs " << c.b << "/" << c.bd;
    if (got) EXPECT_NEAR(*got, *c.want, 1e-12);
  }
}

TEST(Goals, RatioMeasuresCountThePeriodAgainstTheBaseline) {
  KpiDefinition sites;
  sites.id = "ctf-active-sites";
  sites.kind = "active-sites";
  KpiDefinition fractures;
  fractures.id = "ctf-hip-vertebral-change";
  fractures.kind = "hip-vertebral-change";
  EXPECT_TRUE(sites.ratio());
  EXPECT_FALSE(sites.proportion());
  KpiContext ctx;
  ctx.period_units = {"a", "b", "c"};
  ctx.baseline_units = {"a", "b"};
  ctx.period_days = 365;
  ctx.baseline_days = 365;
  auto p = EvaluateKpi(sites, std::vector<KpiCase>{}, ctx);
  EXPECT_EQ(p.numerator.size(), 3u);
  EXPECT_EQ(p.denominator.size(), 2u);
  EXPECT_DOUBLE_EQ(*p.score, 1.5);
  // Fractures of half a year against a year: per day.
  ctx.period_days = 182;
  p = EvaluateKpi(fractures, std::vector<KpiCase>{}, ctx);
  EXPECT_NEAR(*p.score, (3.0 / 182) / (2.0 / 365), 1e-12);
  // Active sites are a count, whatever the period's length.
  p = EvaluateKpi(sites, std::vector<KpiCase>{}, ctx);
  EXPECT_DOUBLE_EQ(*p.score, 1.5);
  ctx.baseline_units.clear();
  EXPECT_FALSE(EvaluateKpi(sites, std::vector<KpiCase>{}, ctx).score);
  EXPECT_FALSE(EvaluateKpi(fractures, std::vector<KpiCase>{}, ctx).score);

  // Active sites: those with at least the minimum of cases; a case with no site counts for none.
  std::vector<KpiCase> cases(5);
  cases[0].site = "a";
  cases[1].site = "a";
  cases[2].site = "b";
  cases[3].site = "";
  cases[4].site = "c";
  EXPECT_EQ(ActiveSites(cases, 1), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(ActiveSites(cases, 2), (std::vector<std::string>{"a"}));
}

// The refractures by H years of one patient a year, by summing small steps of intake, each
// exposed (H - t) years to a risk that compounds yearly as 1 - (1 - r)^years.
double Integrated(double r, double years) {
  const int steps = 200000;
  double sum = 0;
  for (int i = 0; i < steps; ++i) {
    const double t = (i + 0.5) * years / steps;
    sum += (1.0 - std::pow(1.0 - r, years - t)) * years / steps;
  }
  return sum;
}

TEST(Goals, TheProjectionAgreesWithAnIndependentIntegration) {
  for (double r : {0.01, 0.063, 0.2}) {
    for (double h : {1.0, 3.0, 5.0, 10.0}) {
      EXPECT_NEAR(CumulativeRefracturesPerYearlyIntake(r, h), Integrated(r, h), 1e-6) << r << " over " << h;
    }
  }
  // One patient a year at 6.3% a year: about half a year's risk after one year.
  EXPECT_NEAR(CumulativeRefracturesPerYearlyIntake(0.063, 1), 0.0318, 0.0001);
}

TEST(Goals, ProjectionFromMeasuredRatesAndWhatIf) {
  const ProjectionConfig& pc = Shipped().projection;
  ProjectionInput measured{100, 0.5, 0.6, 0.5};
  const double usual = 0.172 * 0.341;
  auto p = Project(pc, measured, {});
  ASSERT_TRUE(p.missing.empty());
  ASSERT_EQ(p.points.size(), 3u);
  EXPECT_DOUBLE_EQ(p.effectively_treated, 0.3);
  for (const auto& pt : p.points) {
    const double expected = 100 * CumulativeRefracturesPerYearlyIntake(0.063, pt.years);
    EXPECT_NEAR(pt.expected_refractures, expected, 1e-9) << pt.years;
    EXPECT_NEAR(pt.avoided, expected * 0.3 * 0.4, 1e-9) << pt.years;
    EXPECT_NEAR(pt.avoided_beyond_usual_care, expected * (0.3 - usual) * 0.4, 1e-9) << pt.years;
  }
  EXPECT_LT(p.points[0].avoided, p.points[1].avoided);
  EXPECT_LT(p.points[1].avoided, p.points[2].avoided);

  struct WhatIf {
    ProjectionInput in;
    double patients, effective;
  };
  const std::vector<WhatIf> cases = {
      {{0, 1.0, std::nullopt, std::nullopt}, 200, 0.3},  // every expected fracture identified: twice the patients
      {{0, 0.25, std::nullopt, std::nullopt}, 50, 0.3},
      {{0, std::nullopt, 0.9, std::nullopt}, 100, 0.45},
      {{0, std::nullopt, std::nullopt, 0.8}, 100, 0.48},
      {{0, 1.0, 1.0, 1.0}, 200, 1.0},
  };
  for (const auto& c : cases) {
    auto q = Project(pc, measured, c.in);
    ASSERT_TRUE(q.missing.empty());
    EXPECT_NEAR(q.patients_per_year, c.patients, 1e-9);
    EXPECT_NEAR(q.effectively_treated, c.effective, 1e-12);
    EXPECT_NEAR(q.points[2].avoided, c.patients * CumulativeRefracturesPerYearlyIntake(0.063, 5) * c.effective * 0.4, 1e-9);
  }
  // Worse than usual care avoids nothing beyond it.
  auto low = Project(pc, ProjectionInput{100, 0.5, 0.1, 0.2}, {});
  EXPECT_GT(low.points[0].avoided, 0);
  EXPECT_EQ(low.points[0].avoided_beyond_usual_care, 0);
}

TEST(Goals, TheProjectionSaysWhatItLacks) {
  const ProjectionConfig& pc = Shipped().projection;
  struct Case {
    ProjectionInput measured, what_if;
    std::vector<std::string> missing;
  };
  const std::vector<Case> cases = {
      {{100, 0.5, 0.6, std::nullopt}, {}, {"adherence"}},  // no case is a year old yet
      {{100, 0.5, std::nullopt, std::nullopt}, {}, {"treatment", "adherence"}},
      {{100, 0.5, 0.6, std::nullopt}, {0, std::nullopt, std::nullopt, 0.5}, {}},  // the what-if supplies it
      {{100, std::nullopt, 0.6, 0.5}, {0, 0.8, std::nullopt, std::nullopt}, {"capture"}},  // no expected caseload
      {{100, std::nullopt, 0.6, 0.5}, {}, {}},
  };
  for (const auto& c : cases) {
    auto p = Project(pc, c.measured, c.what_if);
    EXPECT_EQ(p.missing, c.missing);
    EXPECT_EQ(p.points.empty(), !c.missing.empty());
  }
}

}  // namespace
}  // namespace fls::workflow
