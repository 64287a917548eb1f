#pragma once
// SQL of the quality indicators (workflow/kpi.h, fhir/measures.h): a cohort of cases read in one
// statement (one snapshot: the figures agree with each other and with the worklist at that
// instant), the sites under an Organization (its partOf tree), and the sites' expected caseloads.
// Used through the ResourceStore of a read or a transaction. Not thread-safe (one per use).

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "db/resource_store.h"

namespace fls::db {

class KpiStore {
 public:
  explicit KpiStore(ResourceStore& store);

  // One case of the cohort. Days are days since 1970-01-01; instants are seconds since 1970 UTC
  // (the caller makes them days in the sites' zone).
  struct CaseRow {
    std::string episode_id, site, index_site, exclude_reason;
    long long index_day = 0;
    long long opened_at = 0;  // the case was opened (identified)
    bool has_phone = false, has_referring_physician = false;
    // Each event of the log once, with the instant of its first occurrence.
    std::vector<std::string> event_names;
    std::vector<long long> event_firsts;
    std::string dxa_status;  // "" (no DXA item), ordered, resulted, waived, revoked
    long long dxa_result_day = -1;
    std::string contacts;    // "day:reached(0|1):adherent(0|1|-)" space-separated
    std::string dispenses;   // "day:days_supply" space-separated (0: not given)
    std::string later_fracture_days;  // the patient's later fragility fractures, space-separated days
    // For the case-level extract.
    std::string patient_id, birth_date, gender, stage, decided_drug, current_drug;
  };
  // The cases (not voided) whose index fracture day is in [from_day, to_day] ("YYYY-MM-DD"), of
  // `sites` (Organization ids) unless `all_sites`, from the per-case facts (fls_case_kpi, kept by
  // triggers: migration 014), which hold the DXA item only (`dxa_item` must be "dxa"). `f` sees
  // each row as it arrives (libpq's single-row mode, binary: memory stays flat whatever the
  // cohort, and PostgreSQL formats no dates) in one CaseRow reused from row to row. With
  // `with_patient` (the extract), the rows come in index day order with the patient's birth date
  // and gender; otherwise in no order and without them.
  void ForEachCase(const std::string& from_day, const std::string& to_day, bool all_sites,
                   const std::vector<std::string>& sites, const std::string& dxa_item, bool with_patient,
                   const std::function<void(const CaseRow&)>& f);
  // `org_id` and every Organization partOf it, at any depth (a cycle ends the walk).
  std::vector<std::string> SitesUnder(const std::string& org_id);
  // Whether Organization/org_id exists (not deleted).
  bool OrganizationExists(const std::string& org_id);
  // The sum of the `extension_url` valueInteger of the Organizations `sites` (every Organization
  // when `all_sites`), and how many carry one.
  struct Caseload {
    long long per_year = 0;
    int sites_with_value = 0;
  };
  Caseload ExpectedCaseload(bool all_sites, const std::vector<std::string>& sites, const std::string& extension_url);
  // Each Organization's `extension_url` valueInteger (of `sites`, or every one when `all_sites`).
  std::map<std::string, long long> ExpectedCaseloads(bool all_sites, const std::vector<std::string>& sites,
                                                     const std::string& extension_url);
  // The number of cases (not voided) per site whose index fracture day is in [from_day, to_day].
  std::map<std::string, long long> CasesPerSite(const std::string& from_day, const std::string& to_day, bool all_sites,
                                                const std::vector<std::string>& sites);
  // The fragility fractures dated in [from_day, to_day] at the `fracture_sites` (hip, vertebra),
  // index fractures and refractures of cases neither voided nor high-energy nor excluded as not a
  // fragility fracture or pathological (fls_fracture_kpi, kept by triggers: migration 015), in
  // no particular order.
  struct FractureRow {
    std::string condition_id, episode_id, site, fracture_site;
    long long day = 0;
  };
  std::vector<FractureRow> Fractures(const std::string& from_day, const std::string& to_day, bool all_sites,
                                     const std::vector<std::string>& sites, const std::vector<std::string>& fracture_sites);
  // The names of the Organizations `ids` (those that exist and have one).
  std::map<std::string, std::string> OrganizationNames(const std::vector<std::string>& ids);

 private:
  soci::session& sql_;
};

}  // namespace fls::db
