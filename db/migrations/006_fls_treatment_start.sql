-- The day the current treatment started (treatment-started's occurred, in the site's zone): the
-- long-term rules (reassessment, stop evaluation, sequences) count their months from it.
ALTER TABLE fls_case ADD COLUMN treatment_start_day date;
