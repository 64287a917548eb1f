-- The quality indicators read a period's cases of some sites, and the goals a period's fractures
-- (db/kpi_store.cpp): without these, every evaluation scans every case (docs/performance.md).
CREATE INDEX fls_case_site_day ON fls_case (site_org, index_day) WHERE NOT voided;
CREATE INDEX fls_case_day ON fls_case (index_day) WHERE NOT voided;
CREATE INDEX fls_case_fracture_day ON fls_case_fracture (fracture_day);
