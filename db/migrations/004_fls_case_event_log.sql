-- The event log as operations.md section 1 reads it back ($events): when the row was recorded
-- (apart from `at`, when the event occurred: back-dated events are normal) and the event's note.
-- Rows written before this migration get the migration's time as their recorded time.
ALTER TABLE fls_case_event ADD COLUMN recorded timestamptz NOT NULL DEFAULT clock_timestamp();
ALTER TABLE fls_case_event ADD COLUMN note text;
