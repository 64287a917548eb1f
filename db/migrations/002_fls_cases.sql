-- FLS cases: the pathway state of the EpisodeOfCare resources that are FLS cases, written in the
-- same transactions as those resources (clients may edit a case's details, but its status and
-- stage change only through the server, and a case is never deleted), so that the rules can ask
-- "what cases does this patient have" cheaply and the database itself refuses a second open
-- case for one patient.

CREATE TABLE fls_case (
  episode_id      text        PRIMARY KEY,   -- EpisodeOfCare id
  patient_id      text        NOT NULL,
  site_org        text,                      -- Organization id of the FLS site
  open            boolean     NOT NULL DEFAULT true,
  stage           text        NOT NULL,
  index_site      text        NOT NULL,
  index_day       date,
  index_encounter text,
  refracture_of   text,                      -- the closed case before this one, if any
  high_energy     boolean     NOT NULL DEFAULT false,
  source          text        NOT NULL,      -- data (case finding) or user (referral)
  opened_at       timestamptz NOT NULL,
  closed_at       timestamptz
);
-- One open case per patient: of two concurrent pushes of one admission, the second waits here
-- and then adds its fracture to the first's case.
CREATE UNIQUE INDEX fls_case_one_open_per_patient ON fls_case (patient_id) WHERE open;
CREATE INDEX fls_case_patient ON fls_case (patient_id);

-- Every fracture Condition on a case, once.
CREATE TABLE fls_case_fracture (
  condition_id text PRIMARY KEY,
  episode_id   text NOT NULL REFERENCES fls_case,
  role         text NOT NULL CHECK (role IN ('index-fracture', 'refracture')),
  site         text NOT NULL,
  grio         text NOT NULL,
  fracture_day date,
  encounter_id text
);
CREATE INDEX fls_case_fracture_episode ON fls_case_fracture (episode_id);

-- The event log of each case: the case's stage is what the last event says.
CREATE TABLE fls_case_event (
  seq        bigserial   PRIMARY KEY,
  episode_id text        NOT NULL REFERENCES fls_case,
  at         timestamptz NOT NULL,
  from_stage text,
  to_stage   text        NOT NULL,
  event      text        NOT NULL,
  reason     text,
  source     text        NOT NULL CHECK (source IN ('user', 'data', 'timer')),
  actor      text
);
CREATE INDEX fls_case_event_episode ON fls_case_event (episode_id, seq);

-- Fractures sent to the coordinator for review instead of opening a case: one Task per Condition.
CREATE TABLE fls_review (
  condition_id text PRIMARY KEY,
  task_id      text NOT NULL,
  patient_id   text NOT NULL,
  reason       text NOT NULL
);
