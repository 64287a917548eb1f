-- The follow-up programme: every contact with the patient ($contact), the doses given (denosumab
-- injections, zoledronic acid infusions) from which the next reminders are counted, and the day
-- the patient was last declared unreachable.
CREATE TABLE fls_contact (
  seq              bigserial   PRIMARY KEY,
  episode_id       text        NOT NULL REFERENCES fls_case,
  occurred         timestamptz NOT NULL,
  occurred_day     date        NOT NULL,            -- in the site's time zone
  direction        text        NOT NULL CHECK (direction IN ('outbound', 'inbound')),
  reached          boolean     NOT NULL,
  adherent         boolean,
  communication_id text        NOT NULL,
  report_id        text,                            -- the report to the physician, when sent
  task_id          text
);
CREATE INDEX fls_contact_episode ON fls_contact (episode_id, occurred_day);

CREATE TABLE fls_dose (
  episode_id text NOT NULL REFERENCES fls_case,
  day        date NOT NULL,
  drug       text NOT NULL,                         -- ATC
  source     text NOT NULL,                         -- the record that gave it
  PRIMARY KEY (episode_id, day, drug)
);

ALTER TABLE fls_case ADD COLUMN unreachable_day date;
