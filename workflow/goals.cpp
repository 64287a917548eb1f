#include "workflow/goals.h"

#include <rapidjson/document.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "workflow/civil_date.h"

namespace fls::workflow {

namespace {

const rapidjson::Value& Member(const rapidjson::Value& o, const char* name, const std::string& where) {
  if (!o.IsObject() || !o.HasMember(name)) throw std::invalid_argument(where + ": \"" + name + "\" is required");
  return o[name];
}

std::string Str(const rapidjson::Value& o, const char* name, const std::string& where) {
  const auto& v = Member(o, name, where);
  if (!v.IsString() || v.GetStringLength() == 0) throw std::invalid_argument(where + ": \"" + name + "\" must be a non-empty string");
  return std::string(v.GetString(), v.GetStringLength());
}

double Num(const rapidjson::Value& o, const char* name, const std::string& where, double lo, double hi) {
  const auto& v = Member(o, name, where);
  if (!v.IsNumber() || v.GetDouble() < lo || v.GetDouble() > hi) {
    throw std::invalid_argument(where + ": \"" + name + "\" must be a number from " + std::to_string(lo) + " to " +
                                std::to_string(hi));
  }
  return v.GetDouble();
}

bool IsDate(const std::string& s) {
  if (s.size() != 10 || s[4] != '-' || s[7] != '-') return false;
  for (size_t i : {0, 1, 2, 3, 5, 6, 8, 9}) {
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
  }
  const int y = std::stoi(s.substr(0, 4));
  const unsigned m = static_cast<unsigned>(std::stoi(s.substr(5, 2))), d = static_cast<unsigned>(std::stoi(s.substr(8, 2)));
  if (m < 1 || m > 12 || d < 1 || d > 31) return false;
  int y2;
  unsigned m2, d2;
  CivilFromDays(CivilDay(y, m, d), y2, m2, d2);
  return m2 == m && d2 == d;
}

ProjectionRates Rates(const rapidjson::Value& o, const std::string& where) {
  ProjectionRates r;
  r.treatment = Num(o, "treatment", where, 0, 1);
  r.adherence = Num(o, "adherence", where, 0, 1);
  r.bmd_testing = Num(o, "bmdTesting", where, 0, 1);
  r.refracture = Num(o, "refracture", where, 0, 1);
  r.source = Str(o, "source", where);
  return r;
}

}  // namespace

GoalsConfig ParseGoalsConfig(const std::string& text) {
  rapidjson::Document d;
  d.Parse(text.c_str(), text.size());
  if (d.HasParseError() || !d.IsObject()) throw std::invalid_argument("Capture the Fracture goals: not a JSON object");
  GoalsConfig g;
  const std::string w = "Capture the Fracture goals";
  const auto& base = Member(d, "baselinePeriod", w);
  g.baseline_start = Str(base, "start", w + " baselinePeriod");
  g.baseline_end = Str(base, "end", w + " baselinePeriod");
  g.baseline_source = Str(base, "source", w + " baselinePeriod");
  if (!IsDate(g.baseline_start) || !IsDate(g.baseline_end) || g.baseline_end < g.baseline_start) {
    throw std::invalid_argument(w + " baselinePeriod: start and end are dates YYYY-MM-DD, in order");
  }
  const auto& active = Member(d, "activeSites", w);
  g.active_sites_target = Num(active, "target", w + " activeSites", 0.01, 100);
  g.active_sites_source = Str(active, "source", w + " activeSites");
  g.active_site_minimum_cases = static_cast<int>(Num(active, "minimumCases", w + " activeSites", 1, 100000));
  const auto& hv = Member(d, "hipVertebral", w);
  g.hip_vertebral_target = Num(hv, "target", w + " hipVertebral", -1, 10);
  g.hip_vertebral_source = Str(hv, "source", w + " hipVertebral");
  const auto& sites = Member(hv, "fractureSites", w + " hipVertebral");
  if (!sites.IsArray() || sites.Empty()) throw std::invalid_argument(w + " hipVertebral: \"fractureSites\" must be a non-empty array");
  for (const auto& s : sites.GetArray()) {
    if (!s.IsString() || s.GetStringLength() == 0) throw std::invalid_argument(w + " hipVertebral: fractureSites are site codes");
    g.hip_vertebral_sites.emplace_back(s.GetString(), s.GetStringLength());
  }
  const auto& bpf = Member(d, "bestPracticeFramework", w);
  g.bpf_source = Str(bpf, "source", w + " bestPracticeFramework");
  if (Str(bpf, "overall", w + " bestPracticeFramework") != "lowest") {
    throw std::invalid_argument(w + " bestPracticeFramework: \"overall\" must be \"lowest\" (the only rule built)");
  }
  g.bpf_overall_source = Str(bpf, "overallSource", w + " bestPracticeFramework");
  const auto& standards = Member(bpf, "standards", w + " bestPracticeFramework");
  if (!standards.IsArray() || standards.Empty()) throw std::invalid_argument(w + ": \"standards\" must be a non-empty array");
  for (rapidjson::SizeType i = 0; i < standards.Size(); ++i) {
    const auto& o = standards[i];
    std::string where = w + " standard " + std::to_string(i);
    BpfStandard s;
    s.number = static_cast<int>(Num(o, "standard", where, 1, 13));
    where += " (" + std::to_string(s.number) + ")";
    s.title = Str(o, "title", where);
    s.measure = Str(o, "measure", where);
    s.source = Str(o, "source", where);
    if (o.HasMember("lowerIsBetter")) {
      if (!o["lowerIsBetter"].IsBool()) throw std::invalid_argument(where + ": \"lowerIsBetter\" must be true or false");
      s.lower_is_better = o["lowerIsBetter"].GetBool();
    }
    const double hi = s.lower_is_better ? 3650 : 1;
    s.bronze = Num(o, "bronze", where, 0, hi);
    s.silver = Num(o, "silver", where, 0, hi);
    s.gold = Num(o, "gold", where, 0, hi);
    const bool ordered = s.lower_is_better ? (s.gold <= s.silver && s.silver <= s.bronze) : (s.gold >= s.silver && s.silver >= s.bronze);
    if (!ordered) throw std::invalid_argument(where + ": gold, silver and bronze must be in order (gold the hardest)");
    for (const auto& other : g.bpf) {
      if (other.number == s.number) throw std::invalid_argument(where + ": listed twice");
    }
    g.bpf.push_back(s);
  }
  const auto& p = Member(d, "projection", w);
  const std::string pw = w + " projection";
  const auto& horizons = Member(p, "horizonsYears", pw);
  if (!horizons.IsArray() || horizons.Empty()) throw std::invalid_argument(pw + ": \"horizonsYears\" must be a non-empty array");
  for (const auto& h : horizons.GetArray()) {
    if (!h.IsInt() || h.GetInt() < 1 || h.GetInt() > 30) throw std::invalid_argument(pw + ": horizons are whole years from 1 to 30");
    g.projection.horizons_years.push_back(h.GetInt());
  }
  g.projection.capture_measure = Str(p, "captureMeasure", pw);
  g.projection.treatment_measure = Str(p, "treatmentMeasure", pw);
  g.projection.adherence_measure = Str(p, "adherenceMeasure", pw);
  g.projection.annual_refracture_risk = Num(p, "annualRefractureRisk", pw, 0.0001, 0.9);
  g.projection.annual_refracture_risk_source = Str(p, "annualRefractureRiskSource", pw);
  g.projection.treatment_risk_reduction = Num(p, "treatmentRiskReduction", pw, 0, 1);
  g.projection.treatment_risk_reduction_source = Str(p, "treatmentRiskReductionSource", pw);
  g.projection.usual_care = Rates(Member(p, "usualCare", pw), pw + " usualCare");
  g.projection.with_fls = Rates(Member(p, "withFls", pw), pw + " withFls");
  return g;
}

std::string BpfLevel(const BpfStandard& s, std::optional<double> score) {
  if (!score) return "";
  auto reaches = [&](double bound) { return s.lower_is_better ? *score <= bound : *score >= bound; };
  if (reaches(s.gold)) return "gold";
  if (reaches(s.silver)) return "silver";
  if (reaches(s.bronze)) return "bronze";
  return "below";
}

std::string OverallBpfLevel(const std::vector<std::string>& levels) {
  static const std::vector<std::string> order = {"below", "bronze", "silver", "gold"};
  int lowest = -1;
  for (const auto& l : levels) {
    auto it = std::find(order.begin(), order.end(), l);
    if (it == order.end()) continue;
    const int rank = static_cast<int>(it - order.begin());
    if (lowest < 0 || rank < lowest) lowest = rank;
  }
  return lowest < 0 ? "" : order[static_cast<size_t>(lowest)];
}

std::optional<double> RateRatio(int64_t period_count, int64_t period_days, int64_t baseline_count, int64_t baseline_days) {
  if (baseline_count <= 0 || period_days <= 0 || baseline_days <= 0) return std::nullopt;
  return (static_cast<double>(period_count) / static_cast<double>(period_days)) /
         (static_cast<double>(baseline_count) / static_cast<double>(baseline_days));
}

double CumulativeRefracturesPerYearlyIntake(double annual_risk, double years) {
  const double h = -std::log(1.0 - annual_risk);
  return years - (1.0 - std::exp(-h * years)) / h;
}

Projection Project(const ProjectionConfig& config, const ProjectionInput& measured, const ProjectionInput& what_if) {
  Projection out;
  double patients = measured.patients_per_year;
  if (what_if.capture) {
    if (!measured.capture || *measured.capture <= 0) {
      out.missing.push_back("capture");
    } else {
      patients = patients * *what_if.capture / *measured.capture;
    }
  }
  const std::optional<double> treatment = what_if.treatment ? what_if.treatment : measured.treatment;
  const std::optional<double> adherence = what_if.adherence ? what_if.adherence : measured.adherence;
  if (!treatment) out.missing.push_back("treatment");
  if (!adherence) out.missing.push_back("adherence");
  out.patients_per_year = patients;
  if (!out.missing.empty()) return out;
  out.effectively_treated = *treatment * *adherence;
  const double usual = config.usual_care.treatment * config.usual_care.adherence;
  for (int years : config.horizons_years) {
    ProjectionPoint p;
    p.years = years;
    p.expected_refractures = patients * CumulativeRefracturesPerYearlyIntake(config.annual_refracture_risk, years);
    p.avoided = p.expected_refractures * out.effectively_treated * config.treatment_risk_reduction;
    p.avoided_beyond_usual_care =
        p.expected_refractures * std::max(0.0, out.effectively_treated - usual) * config.treatment_risk_reduction;
    out.points.push_back(p);
  }
  return out;
}

}  // namespace fls::workflow
