-- The pathway engine's state ($event, enrolment, the investigation panel, timers), written in
-- the same transactions as the resources it describes.

-- What enrolment records on the case, and the drug decided and started: the FHIR resources say
-- it too (EpisodeOfCare extensions, Consents, CarePlan), these columns let the rules read it
-- without parsing them.
ALTER TABLE fls_case
  ADD COLUMN care_plan_id         text,
  ADD COLUMN phone                text,
  ADD COLUMN referring_physician  text,
  ADD COLUMN gp                   text,
  ADD COLUMN consent_programme_id text,
  ADD COLUMN consent_report_id    text,
  ADD COLUMN consent_report       boolean,
  ADD COLUMN enrolled_day         date,
  ADD COLUMN decided_drug         text,
  ADD COLUMN current_drug         text;

-- The investigation panel of each case: one ServiceRequest (and one Task) per item, once, which
-- the primary key enforces whatever the concurrency.
CREATE TABLE fls_case_item (
  episode_id         text    NOT NULL REFERENCES fls_case,
  item               text    NOT NULL,            -- {cb}/CodeSystem/fls-investigation code
  service_request_id text    NOT NULL UNIQUE,
  task_id            text    NOT NULL,
  required           boolean NOT NULL,
  status             text    NOT NULL CHECK (status IN ('ordered', 'resulted', 'waived', 'revoked')),
  result_ref         text,                        -- the Observation or Procedure that closed it
  result_day         date,                        -- its effective date
  PRIMARY KEY (episode_id, item)
);

-- Flags raised on a case: one per flag code and evidence (a re-sent result raises nothing new).
CREATE TABLE fls_case_flag (
  episode_id text NOT NULL REFERENCES fls_case,
  code       text NOT NULL,
  evidence   text NOT NULL,                       -- Observation/id
  flag_id    text NOT NULL,
  PRIMARY KEY (episode_id, code, evidence)
);

-- Durable timers: one row per effect to come, its key unique (so an effect is planned once),
-- claimed by one process at a time (FOR UPDATE SKIP LOCKED) and marked done in the transaction
-- that applies its effect (so it fires exactly once, also after downtime).
CREATE TABLE fls_timer (
  key        text        PRIMARY KEY,             -- e.g. assess-enrol-overdue:{episode}
  episode_id text        NOT NULL REFERENCES fls_case,
  kind       text        NOT NULL,
  due_at     timestamptz NOT NULL,
  state      text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'cancelled')),
  fired_at   timestamptz,
  outcome    text
);
CREATE INDEX fls_timer_due ON fls_timer (due_at) WHERE state = 'pending';

-- The cases open before this migration still get their escalation when their assess-enrol Task
-- falls due (14 days after identification).
INSERT INTO fls_timer (key, episode_id, kind, due_at)
SELECT 'assess-enrol-overdue:' || episode_id, episode_id, 'assess-enrol-overdue', opened_at + interval '14 days'
FROM fls_case WHERE open AND stage = 'identified'
ON CONFLICT DO NOTHING;
