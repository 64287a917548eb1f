#include "db/kpi_store.h"

#include <soci/soci.h>

#include <stdexcept>

#include "db/sql_words.h"

namespace fls::db {

KpiStore::KpiStore(ResourceStore& store) : sql_(store.sql_) {}

std::vector<KpiStore::CaseRow> KpiStore::Cohort(const std::string& from_day, const std::string& to_day, bool all_sites,
                                                const std::vector<std::string>& sites, const std::string& time_zone,
                                                const std::string& dxa_item) {
  const int all = all_sites ? 1 : 0;
  const std::string site_list = JoinWords(sites);
  if (dxa_item != "dxa") throw std::invalid_argument("the per-case facts (migration 014) read the investigation item dxa");
  // One narrow row per case (fls_case_kpi, kept by triggers; migration 014); the time zone is bound
  // like any value: AT TIME ZONE takes an expression.
  soci::rowset<soci::row> rs =
      (sql_.prepare
           << "SELECT k.episode_id, coalesce(k.site, ''), k.index_site, (k.index_day - DATE '1970-01-01'),"
              "  ((k.opened_at AT TIME ZONE :tz1)::date - DATE '1970-01-01'), k.has_phone::int, k.has_ref::int, k.exclude_reason,"
              "  coalesce((SELECT string_agg(u.e || ':' || ((u.t AT TIME ZONE :tz2)::date - DATE '1970-01-01'), ' ')"
              "            FROM unnest(k.event_names, k.event_firsts) AS u(e, t)), ''),"
              "  k.dxa_status, coalesce((k.dxa_result_day - DATE '1970-01-01')::bigint, -1), k.contacts, k.dispenses,"
              "  k.later_fractures, k.patient_id, coalesce(pv.content->>'birthDate', ''), coalesce(pv.content->>'gender', ''),"
              "  k.stage, k.decided_drug, k.current_drug"
              " FROM fls_case_kpi k"
              " LEFT JOIN resource p ON p.res_type = 'Patient' AND p.res_id = k.patient_id AND NOT p.deleted"
              " LEFT JOIN resource_version pv ON pv.res_type = p.res_type AND pv.res_id = p.res_id AND pv.version_id = p.version_id"
              " WHERE NOT k.voided AND k.index_day BETWEEN :from::date AND :to::date"
              "  AND (:all = 1 OR k.site = ANY(string_to_array(:sites, ' ')))"
              " ORDER BY k.index_day, k.episode_id",
       soci::use(time_zone), soci::use(time_zone), soci::use(from_day), soci::use(to_day), soci::use(all), soci::use(site_list));
  std::vector<CaseRow> out;
  for (const auto& r : rs) {
    CaseRow c;
    c.episode_id = r.get<std::string>(0);
    c.site = r.get<std::string>(1);
    c.index_site = r.get<std::string>(2);
    c.index_day = r.get<int>(3);
    c.identified_day = r.get<int>(4);
    c.has_phone = r.get<int>(5) != 0;
    c.has_referring_physician = r.get<int>(6) != 0;
    c.exclude_reason = r.get<std::string>(7);
    c.first_events = r.get<std::string>(8);
    c.dxa_status = r.get<std::string>(9);
    c.dxa_result_day = r.get<long long>(10);
    c.contacts = r.get<std::string>(11);
    c.dispenses = r.get<std::string>(12);
    c.later_fracture_days = r.get<std::string>(13);
    c.patient_id = r.get<std::string>(14);
    c.birth_date = r.get<std::string>(15);
    c.gender = r.get<std::string>(16);
    c.stage = r.get<std::string>(17);
    c.decided_drug = r.get<std::string>(18);
    c.current_drug = r.get<std::string>(19);
    out.push_back(std::move(c));
  }
  return out;
}

std::vector<std::string> KpiStore::SitesUnder(const std::string& org_id) {
  std::vector<std::string> out;
  soci::rowset<soci::row> rs =
      (sql_.prepare << "WITH RECURSIVE tree(id) AS (SELECT :o::text UNION"
                       " SELECT r.res_id FROM idx_reference r JOIN tree t ON r.target_id = t.id"
                       " WHERE r.res_type = 'Organization' AND r.param = 'partof'"
                       " AND (r.target_type = 'Organization' OR r.target_type IS NULL))"
                       " SELECT id FROM tree ORDER BY id",
       soci::use(org_id));
  for (const auto& r : rs) out.push_back(r.get<std::string>(0));
  return out;
}

bool KpiStore::OrganizationExists(const std::string& org_id) {
  int n = 0;
  sql_ << "SELECT count(*)::int FROM resource WHERE res_type = 'Organization' AND res_id = :o AND NOT deleted",
      soci::use(org_id), soci::into(n);
  return n > 0;
}

KpiStore::Caseload KpiStore::ExpectedCaseload(bool all_sites, const std::vector<std::string>& sites,
                                              const std::string& extension_url) {
  Caseload out;
  for (const auto& [site, per_year] : ExpectedCaseloads(all_sites, sites, extension_url)) {
    out.per_year += per_year;
    ++out.sites_with_value;
  }
  return out;
}

std::map<std::string, long long> KpiStore::ExpectedCaseloads(bool all_sites, const std::vector<std::string>& sites,
                                                              const std::string& extension_url) {
  std::map<std::string, long long> out;
  const int all = all_sites ? 1 : 0;
  const std::string site_list = JoinWords(sites);
  soci::rowset<soci::row> rs =
      (sql_.prepare << "SELECT r.res_id, sum((ext->>'valueInteger')::bigint)::bigint"
                       " FROM resource r JOIN resource_version v ON v.res_type = r.res_type AND v.res_id = r.res_id"
                       "  AND v.version_id = r.version_id,"
                       " jsonb_array_elements(CASE WHEN jsonb_typeof(v.content->'extension') = 'array' THEN v.content->'extension'"
                       "  ELSE '[]'::jsonb END) ext"
                       " WHERE r.res_type = 'Organization' AND NOT r.deleted AND ext->>'url' = :u"
                       "  AND jsonb_typeof(ext->'valueInteger') = 'number'"
                       "  AND (:all = 1 OR r.res_id = ANY(string_to_array(:sites, ' ')))"
                       " GROUP BY r.res_id",
       soci::use(extension_url), soci::use(all), soci::use(site_list));
  for (const auto& r : rs) out[r.get<std::string>(0)] = r.get<long long>(1);
  return out;
}

std::map<std::string, long long> KpiStore::CasesPerSite(const std::string& from_day, const std::string& to_day, bool all_sites,
                                                        const std::vector<std::string>& sites) {
  std::map<std::string, long long> out;
  const int all = all_sites ? 1 : 0;
  const std::string site_list = JoinWords(sites);
  soci::rowset<soci::row> rs =
      (sql_.prepare << "SELECT c.site_org, count(*)::bigint FROM fls_case c"
                       " WHERE NOT c.voided AND c.site_org IS NOT NULL AND c.index_day BETWEEN :from::date AND :to::date"
                       "  AND (:all = 1 OR c.site_org = ANY(string_to_array(:sites, ' ')))"
                       " GROUP BY c.site_org",
       soci::use(from_day), soci::use(to_day), soci::use(all), soci::use(site_list));
  for (const auto& r : rs) out[r.get<std::string>(0)] = r.get<long long>(1);
  return out;
}

std::vector<KpiStore::FractureRow> KpiStore::Fractures(const std::string& from_day, const std::string& to_day, bool all_sites,
                                                       const std::vector<std::string>& sites,
                                                       const std::vector<std::string>& fracture_sites) {
  std::vector<FractureRow> out;
  const int all = all_sites ? 1 : 0;
  const std::string site_list = JoinWords(sites), kinds = JoinWords(fracture_sites);
  soci::rowset<soci::row> rs =
      (sql_.prepare << "SELECT f.condition_id, f.episode_id, coalesce(c.site_org, ''), f.site,"
                       "  (f.fracture_day - DATE '1970-01-01')::bigint"
                       " FROM fls_case_fracture f JOIN fls_case c ON c.episode_id = f.episode_id"
                       " JOIN fls_case_kpi k ON k.episode_id = f.episode_id"  // the case's exclusion (migration 014)
                       " WHERE NOT c.voided AND NOT c.high_energy AND f.fracture_day BETWEEN :from::date AND :to::date"
                       "  AND f.site = ANY(string_to_array(:kinds, ' '))"
                       "  AND (:all = 1 OR c.site_org = ANY(string_to_array(:sites, ' ')))"
                       "  AND k.exclude_reason NOT IN ('not-fragility', 'pathological')"
                       " ORDER BY f.fracture_day, f.condition_id",
       soci::use(from_day), soci::use(to_day), soci::use(kinds), soci::use(all), soci::use(site_list));
  for (const auto& r : rs) {
    FractureRow f;
    f.condition_id = r.get<std::string>(0);
    f.episode_id = r.get<std::string>(1);
    f.site = r.get<std::string>(2);
    f.fracture_site = r.get<std::string>(3);
    f.day = r.get<long long>(4);
    out.push_back(std::move(f));
  }
  return out;
}

std::map<std::string, std::string> KpiStore::OrganizationNames(const std::vector<std::string>& ids) {
  std::map<std::string, std::string> out;
  const std::string list = JoinWords(ids);
  soci::rowset<soci::row> rs =
      (sql_.prepare << "SELECT r.res_id, coalesce(v.content->>'name', '') FROM resource r"
                       " JOIN resource_version v ON v.res_type = r.res_type AND v.res_id = r.res_id AND v.version_id = r.version_id"
                       " WHERE r.res_type = 'Organization' AND NOT r.deleted AND r.res_id = ANY(string_to_array(:ids, ' '))",
       soci::use(list));
  for (const auto& r : rs) {
    auto name = r.get<std::string>(1);
    if (!name.empty()) out[r.get<std::string>(0)] = name;
  }
  return out;
}

}  // namespace fls::db
