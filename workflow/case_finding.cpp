#include "workflow/case_finding.h"

#include <algorithm>
#include <cstdlib>

namespace fls::workflow {

namespace {

bool Excluded(const std::string& verification) {
  return verification == "entered-in-error" || verification == "refuted";
}

bool SameSite(const std::string& a, const std::string& b) {
  return a == b || a == "unspecified" || b == "unspecified";
}

}  // namespace

Classification Classify(const FractureCodeList& list, const std::vector<Coding>& codings) {
  Classification best;
  auto rank = [](Disposition d, const std::string& site) {
    switch (d) {
      case Disposition::kReview: return 4;
      case Disposition::kExcludedSite: return 3;
      case Disposition::kFracture: return site == "unspecified" ? 1 : 2;
      default: return 0;
    }
  };
  for (const auto& c : codings) {
    const CodeEntry* e = list.Lookup(c);
    if (!e || e->kind == CodeKind::kHighEnergyTrauma) continue;
    Classification k;
    k.disposition = e->kind == CodeKind::kReview         ? Disposition::kReview
                    : e->kind == CodeKind::kExcludedSite ? Disposition::kExcludedSite
                                                         : Disposition::kFracture;
    k.site = e->site;
    k.grio = e->grio;
    k.reason = e->reason;
    k.code = c.code;
    k.system = c.system;
    k.display = e->display;
    if (rank(k.disposition, k.site) > rank(best.disposition, best.site)) best = k;
  }
  return best;
}

bool IsHighEnergy(const FractureCodeList& list, const std::vector<Coding>& codings) {
  return std::any_of(codings.begin(), codings.end(), [&](const Coding& c) {
    const CodeEntry* e = list.Lookup(c);
    return e && e->kind == CodeKind::kHighEnergyTrauma;
  });
}

int AgeOn(int64_t birth_day, int64_t day) {
  int by, y;
  unsigned bm, bd, m, d;
  CivilFromDays(birth_day, by, bm, bd);
  CivilFromDays(day, y, m, d);
  int age = y - by;
  // Before the birthday in the year of `day`? (29 February counts as 1 March in common years.)
  unsigned eff_m = bm, eff_d = bd;
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (bm == 2 && bd == 29 && !leap) {
    eff_m = 3;
    eff_d = 1;
  }
  if (m < eff_m || (m == eff_m && d < eff_d)) --age;
  return age;
}

const char* ActionName(Decision::Action action) {
  switch (action) {
    case Decision::Action::kIgnore: return "ignore";
    case Decision::Action::kOpenCase: return "open-case";
    case Decision::Action::kAddToCase: return "add-to-case";
    case Decision::Action::kAddRefracture: return "add-refracture";
    case Decision::Action::kReviewTask: return "review-task";
  }
  return "ignore";
}

Decision Decide(const FractureEvent& event, const PatientFacts& patient,
                const std::vector<CaseSummary>& cases, int64_t today, const CaseFindingRules& rules) {
  Decision out;
  auto ignore = [&](std::string reason) {
    out.action = Decision::Action::kIgnore;
    out.reason = std::move(reason);
    return out;
  };
  const Classification& k = event.classification;
  if (k.disposition == Disposition::kNotFracture) return ignore("not a fracture code");
  if (Excluded(event.verification)) return ignore("verification status " + event.verification);
  if (k.disposition == Disposition::kExcludedSite) return ignore(k.reason.empty() ? "excluded site" : k.reason);
  for (const auto& c : cases) {
    if (std::find(c.condition_ids.begin(), c.condition_ids.end(), event.condition_id) != c.condition_ids.end()) {
      return ignore("already on case " + c.id);
    }
  }
  if (!event.fracture_day) return ignore("no fracture date (onset, encounter start or recorded date)");
  int64_t day = *event.fracture_day;
  if (day < today - rules.lookback_days) {
    return ignore("fracture dated before the look-back window of " + std::to_string(rules.lookback_days) + " days");
  }
  if (!patient.birth_day) {
    out.action = Decision::Action::kReviewTask;
    out.reason = "fracture in a patient without a birth date: check the age";
    return out;
  }
  if (AgeOn(*patient.birth_day, day) < rules.minimum_age) {
    return ignore("under " + std::to_string(rules.minimum_age) + " on the fracture date");
  }
  if (k.disposition == Disposition::kReview || event.cancer_on_encounter) {
    out.action = Decision::Action::kReviewTask;
    out.reason = k.disposition == Disposition::kReview ? k.reason : "cancer diagnosis on the same encounter";
    return out;
  }
  out.high_energy = event.high_energy;

  const int window = rules.same_fracture_window_days;
  auto same_event = [&](const CaseSummary& c) {
    return (!event.encounter_id.empty() && event.encounter_id == c.index_encounter) || (c.index_day && day == *c.index_day);
  };
  auto same_fracture = [&](const CaseSummary& c) {
    return c.index_day && SameSite(k.site, c.index_site) && std::llabs(day - *c.index_day) <= window;
  };
  for (const auto& c : cases) {
    if (!c.open) continue;
    out.case_id = c.id;
    if (!c.index_day) {
      // A referral names the patient before the hospital's feed names the fracture.
      out.action = Decision::Action::kAddToCase;
      out.reason = "the first fracture of a referred case";
    } else if (same_event(c) || same_fracture(c)) {
      out.action = Decision::Action::kAddToCase;
      out.reason = same_event(c) ? "same fracture event" : "same site within " + std::to_string(window) + " days";
    } else if (day < *c.index_day) {
      // Reported late: a fracture before the index one is part of the history the case already
      // addresses, not a fracture under follow-up.
      out.action = Decision::Action::kAddToCase;
      out.reason = "a fracture before the index fracture";
    } else {
      out.action = Decision::Action::kAddRefracture;
      out.reason = "new fracture while the case is open";
    }
    return out;
  }
  bool any_closed_before = false;
  for (const auto& c : cases) {
    if (c.voided) continue;
    if (same_event(c) || same_fracture(c)) {
      out.action = Decision::Action::kAddToCase;
      out.case_id = c.id;
      out.reason = "the same fracture as closed case " + c.id;
      return out;
    }
    // Only a case whose index fracture came first makes this one a refracture.
    if (!c.index_day || *c.index_day <= day) any_closed_before = true;
  }
  out.action = Decision::Action::kOpenCase;
  out.refracture_of_closed = any_closed_before;
  out.reason = out.refracture_of_closed ? "refracture after a closed case" : "fragility fracture";
  return out;
}

Retraction DecideRetraction(bool case_open, const std::string& stage, int valid_index_fractures_left) {
  if (!case_open) return Retraction::kNothing;
  if (stage == "identified" && valid_index_fractures_left == 0) return Retraction::kCancelCase;
  return Retraction::kReviewTask;
}

}  // namespace fls::workflow
