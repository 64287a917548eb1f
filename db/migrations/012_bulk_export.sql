-- FHIR Bulk Data export (docs/bulk-export.md): the jobs a kick-off queues, run by whichever
-- server process claims them (FOR UPDATE SKIP LOCKED, a heartbeat so that a job of a process
-- that died is taken over), and their NDJSON files, each at most a few MiB, so that neither the
-- writer nor a download holds more than one file in memory whatever the size of the export.
CREATE TABLE fls_export_job (
  id               text        PRIMARY KEY,
  status           text        NOT NULL CHECK (status IN ('queued', 'running', 'complete', 'failed', 'cancelled')),
  level            text        NOT NULL CHECK (level IN ('system', 'patient', 'group')),
  group_id         text,
  types            text[]      NOT NULL,     -- the resource types exported, in order
  since            timestamptz,
  requester        text        NOT NULL,     -- who asked: the principal's client and subject
  request_url      text        NOT NULL,
  created_at       timestamptz NOT NULL DEFAULT now(),
  started_at       timestamptz,
  finished_at      timestamptz,
  transaction_time timestamptz,               -- the export is the data as it was then
  done_types       integer     NOT NULL DEFAULT 0,
  error            text,
  owner            text,                      -- the process running it
  heartbeat        timestamptz
);
CREATE INDEX fls_export_job_queue ON fls_export_job (status, created_at);

CREATE TABLE fls_export_file (
  job_id   text    NOT NULL REFERENCES fls_export_job ON DELETE CASCADE,
  seq      integer NOT NULL,
  res_type text    NOT NULL,
  count    integer NOT NULL,
  data     text    NOT NULL,                  -- NDJSON: one resource per line
  PRIMARY KEY (job_id, seq)
);
