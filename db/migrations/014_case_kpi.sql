-- What the quality indicators read of each case (docs/kpis.md, db/kpi_store.cpp), one narrow row
-- per case, kept up to date in the transaction of every write to the case's tables by the
-- triggers below, so that an evaluation reads one row per case instead of its whole event log
-- (docs/performance.md). `fls_case_kpi_full` is the same computed from the source tables: the
-- triggers copy from it, and a test checks that the kept rows equal it.
CREATE VIEW fls_case_kpi_full AS
SELECT c.episode_id, c.patient_id, c.site_org AS site, c.index_day, c.voided, c.index_site, c.opened_at,
       (coalesce(c.phone, '') <> '') AS has_phone, (coalesce(c.referring_physician, '') <> '') AS has_ref, c.stage,
       coalesce(c.decided_drug, '') AS decided_drug, coalesce(c.current_drug, '') AS current_drug,
       coalesce((SELECT reason FROM fls_case_event WHERE episode_id = c.episode_id AND event = 'exclude' ORDER BY seq LIMIT 1),
                '') AS exclude_reason,
       coalesce((SELECT array_agg(e.event ORDER BY e.event) FROM
                 (SELECT event FROM fls_case_event WHERE episode_id = c.episode_id GROUP BY event) e), '{}') AS event_names,
       coalesce((SELECT array_agg(e.first ORDER BY e.event) FROM
                 (SELECT event, min(at) AS first FROM fls_case_event WHERE episode_id = c.episode_id GROUP BY event) e),
                '{}') AS event_firsts,
       coalesce((SELECT status FROM fls_case_item WHERE episode_id = c.episode_id AND item = 'dxa'), '') AS dxa_status,
       (SELECT result_day FROM fls_case_item WHERE episode_id = c.episode_id AND item = 'dxa') AS dxa_result_day,
       coalesce((SELECT string_agg((occurred_day - DATE '1970-01-01') || ':' || reached::int || ':' ||
                 coalesce(adherent::int::text, '-'), ' ' ORDER BY seq) FROM fls_contact WHERE episode_id = c.episode_id),
                '') AS contacts,
       coalesce((SELECT string_agg((day - DATE '1970-01-01') || ':' || coalesce(days_supply, 0), ' ' ORDER BY day, source)
                 FROM fls_dispense WHERE episode_id = c.episode_id), '') AS dispenses,
       coalesce((SELECT string_agg(DISTINCT (f.fracture_day - DATE '1970-01-01')::text, ' ')
                 FROM fls_case c2 JOIN fls_case_fracture f ON f.episode_id = c2.episode_id
                 WHERE c2.patient_id = c.patient_id AND NOT c2.voided AND NOT c2.high_energy
                  AND f.fracture_day > c.index_day
                  AND NOT (f.episode_id = c.episode_id AND f.role = 'index-fracture')), '') AS later_fractures
FROM fls_case c;

CREATE TABLE fls_case_kpi AS SELECT * FROM fls_case_kpi_full;
ALTER TABLE fls_case_kpi ADD PRIMARY KEY (episode_id);
CREATE INDEX fls_case_kpi_site_day ON fls_case_kpi (site, index_day) WHERE NOT voided;
CREATE INDEX fls_case_kpi_day ON fls_case_kpi (index_day) WHERE NOT voided;
CREATE INDEX fls_case_kpi_patient ON fls_case_kpi (patient_id);

-- Each refresh first takes the patient's lock: two transactions writing two cases of one
-- patient refresh one after the other, the second reading (its statements' snapshots are taken
-- after the lock) what the first committed, so no row is left with the other's later fractures
-- missing, and no two inserts of one row collide.
CREATE FUNCTION fls_case_kpi_refresh(ep text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE pid text;
BEGIN
  SELECT patient_id INTO pid FROM fls_case WHERE episode_id = ep;
  IF pid IS NULL THEN
    DELETE FROM fls_case_kpi WHERE episode_id = ep;
    RETURN;
  END IF;
  PERFORM pg_advisory_xact_lock(hashtext('fls_case_kpi:' || pid));
  DELETE FROM fls_case_kpi WHERE episode_id = ep;
  INSERT INTO fls_case_kpi SELECT * FROM fls_case_kpi_full WHERE episode_id = ep;
END $$;

-- A patient's later fractures are in each of their cases' rows: a fracture, or a case voided or
-- marked high-energy, changes them all.
CREATE FUNCTION fls_case_kpi_refresh_patient(pid text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF pid IS NULL THEN
    RETURN;
  END IF;
  PERFORM pg_advisory_xact_lock(hashtext('fls_case_kpi:' || pid));
  DELETE FROM fls_case_kpi WHERE patient_id = pid;
  INSERT INTO fls_case_kpi SELECT * FROM fls_case_kpi_full WHERE patient_id = pid;
END $$;

CREATE FUNCTION fls_case_kpi_on_case() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND OLD.patient_id IS DISTINCT FROM NEW.patient_id THEN
    PERFORM fls_case_kpi_refresh_patient(OLD.patient_id);
  END IF;
  PERFORM fls_case_kpi_refresh_patient(NEW.patient_id);
  RETURN NULL;
END $$;

CREATE FUNCTION fls_case_kpi_on_child() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP IN ('UPDATE', 'DELETE') THEN
    PERFORM fls_case_kpi_refresh(OLD.episode_id);
  END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') AND (TG_OP = 'INSERT' OR NEW.episode_id IS DISTINCT FROM OLD.episode_id) THEN
    PERFORM fls_case_kpi_refresh(NEW.episode_id);
  END IF;
  RETURN NULL;
END $$;

CREATE FUNCTION fls_case_kpi_on_fracture() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP IN ('UPDATE', 'DELETE') THEN
    PERFORM fls_case_kpi_refresh_patient((SELECT patient_id FROM fls_case WHERE episode_id = OLD.episode_id));
  END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') THEN
    PERFORM fls_case_kpi_refresh_patient((SELECT patient_id FROM fls_case WHERE episode_id = NEW.episode_id));
  END IF;
  RETURN NULL;
END $$;

CREATE TRIGGER fls_case_kpi AFTER INSERT OR UPDATE ON fls_case FOR EACH ROW EXECUTE FUNCTION fls_case_kpi_on_case();
CREATE TRIGGER fls_case_kpi AFTER INSERT OR UPDATE OR DELETE ON fls_case_event FOR EACH ROW EXECUTE FUNCTION fls_case_kpi_on_child();
-- Of the investigation panel, the indicators read the DXA item only.
CREATE TRIGGER fls_case_kpi_insert AFTER INSERT ON fls_case_item FOR EACH ROW WHEN (NEW.item = 'dxa')
  EXECUTE FUNCTION fls_case_kpi_on_child();
CREATE TRIGGER fls_case_kpi_update AFTER UPDATE ON fls_case_item FOR EACH ROW WHEN (NEW.item = 'dxa' OR OLD.item = 'dxa')
  EXECUTE FUNCTION fls_case_kpi_on_child();
CREATE TRIGGER fls_case_kpi_delete AFTER DELETE ON fls_case_item FOR EACH ROW WHEN (OLD.item = 'dxa')
  EXECUTE FUNCTION fls_case_kpi_on_child();
CREATE TRIGGER fls_case_kpi AFTER INSERT OR UPDATE OR DELETE ON fls_contact FOR EACH ROW EXECUTE FUNCTION fls_case_kpi_on_child();
CREATE TRIGGER fls_case_kpi AFTER INSERT OR UPDATE OR DELETE ON fls_dispense FOR EACH ROW EXECUTE FUNCTION fls_case_kpi_on_child();
CREATE TRIGGER fls_case_kpi AFTER INSERT OR UPDATE OR DELETE ON fls_case_fracture FOR EACH ROW EXECUTE FUNCTION fls_case_kpi_on_fracture();
