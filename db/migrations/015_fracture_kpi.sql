-- The fragility fractures the Capture the Fracture goal counts (hip and vertebral fractures against
-- a baseline period, docs/kpis.md): one narrow row per fracture of a case that counts (not voided,
-- not high-energy, not excluded as not a fragility fracture or pathological), kept in the
-- transaction of every write that can change it by the triggers below, so that the goal reads a
-- range of one index instead of joining every case (docs/performance.md).
-- `fls_fracture_kpi_full` is the same computed from the source tables; a test checks they agree.
CREATE VIEW fls_fracture_kpi_full AS
SELECT f.condition_id, f.episode_id, c.patient_id, c.site_org AS site, f.site AS fracture_site, f.fracture_day
FROM fls_case_fracture f JOIN fls_case c ON c.episode_id = f.episode_id
WHERE NOT c.voided AND NOT c.high_energy AND f.fracture_day IS NOT NULL
  AND coalesce((SELECT reason FROM fls_case_event WHERE episode_id = c.episode_id AND event = 'exclude' ORDER BY seq LIMIT 1),
               '') NOT IN ('not-fragility', 'pathological');

CREATE TABLE fls_fracture_kpi AS SELECT * FROM fls_fracture_kpi_full;
ALTER TABLE fls_fracture_kpi ADD PRIMARY KEY (condition_id);
CREATE INDEX fls_fracture_kpi_day ON fls_fracture_kpi (fracture_site, fracture_day) INCLUDE (site, condition_id, episode_id);
CREATE INDEX fls_fracture_kpi_episode ON fls_fracture_kpi (episode_id);

-- A fracture's row depends on the fracture and on its case only: a fracture written rewrites its
-- own row, a case written (voided, high-energy, site, patient) or excluded rewrites its cases'
-- rows. Each takes the patient's lock of migration 014 first, so that a case change and a
-- fracture written at the same time are applied one after the other, the second reading what
-- the first committed.
CREATE FUNCTION fls_fracture_kpi_lock(ep text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE pid text;
BEGIN
  SELECT patient_id INTO pid FROM fls_case WHERE episode_id = ep;
  IF pid IS NOT NULL THEN
    PERFORM pg_advisory_xact_lock(hashtext('fls_case_kpi:' || pid));
  END IF;
END $$;

CREATE FUNCTION fls_fracture_kpi_refresh_case(ep text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM fls_fracture_kpi_lock(ep);
  DELETE FROM fls_fracture_kpi WHERE episode_id = ep;
  INSERT INTO fls_fracture_kpi SELECT * FROM fls_fracture_kpi_full WHERE episode_id = ep;
END $$;

CREATE FUNCTION fls_fracture_kpi_refresh_one(cid text, ep text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM fls_fracture_kpi_lock(ep);
  DELETE FROM fls_fracture_kpi WHERE condition_id = cid;
  INSERT INTO fls_fracture_kpi SELECT * FROM fls_fracture_kpi_full WHERE condition_id = cid;
END $$;

CREATE FUNCTION fls_fracture_kpi_on_case() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' OR (OLD.voided, OLD.high_energy, OLD.site_org, OLD.patient_id)
                         IS DISTINCT FROM (NEW.voided, NEW.high_energy, NEW.site_org, NEW.patient_id) THEN
    PERFORM fls_fracture_kpi_refresh_case(NEW.episode_id);
  END IF;
  RETURN NULL;
END $$;

CREATE FUNCTION fls_fracture_kpi_on_fracture() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP IN ('UPDATE', 'DELETE') THEN
    PERFORM fls_fracture_kpi_refresh_one(OLD.condition_id, OLD.episode_id);
  END IF;
  IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.condition_id IS DISTINCT FROM OLD.condition_id) THEN
    PERFORM fls_fracture_kpi_refresh_one(NEW.condition_id, NEW.episode_id);
  END IF;
  RETURN NULL;
END $$;

CREATE FUNCTION fls_fracture_kpi_on_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP IN ('UPDATE', 'DELETE') THEN
    PERFORM fls_fracture_kpi_refresh_case(OLD.episode_id);
  END IF;
  IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.episode_id IS DISTINCT FROM OLD.episode_id) THEN
    PERFORM fls_fracture_kpi_refresh_case(NEW.episode_id);
  END IF;
  RETURN NULL;
END $$;

CREATE TRIGGER fls_fracture_kpi AFTER INSERT OR UPDATE ON fls_case FOR EACH ROW EXECUTE FUNCTION fls_fracture_kpi_on_case();
CREATE TRIGGER fls_fracture_kpi AFTER INSERT OR UPDATE OR DELETE ON fls_case_fracture
  FOR EACH ROW EXECUTE FUNCTION fls_fracture_kpi_on_fracture();
-- Of the event log, the exclusions only (the reason decides whether the case's fractures count).
CREATE TRIGGER fls_fracture_kpi_insert AFTER INSERT ON fls_case_event FOR EACH ROW WHEN (NEW.event = 'exclude')
  EXECUTE FUNCTION fls_fracture_kpi_on_event();
CREATE TRIGGER fls_fracture_kpi_update AFTER UPDATE ON fls_case_event FOR EACH ROW WHEN (NEW.event = 'exclude' OR OLD.event = 'exclude')
  EXECUTE FUNCTION fls_fracture_kpi_on_event();
CREATE TRIGGER fls_fracture_kpi_delete AFTER DELETE ON fls_case_event FOR EACH ROW WHEN (OLD.event = 'exclude')
  EXECUTE FUNCTION fls_fracture_kpi_on_event();
