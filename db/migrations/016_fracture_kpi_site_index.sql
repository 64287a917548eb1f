-- A site's or a region's hip and vertebral fractures (the goal per site, the dashboard's sites):
-- the range of each site, where the index of migration 015 (by fracture site and date) would read
-- every site's fractures of the period and keep a few.
CREATE INDEX fls_fracture_kpi_site_day ON fls_fracture_kpi (site, fracture_day) INCLUDE (fracture_site, condition_id, episode_id);
