-- The Practitioner a login is (SMART's fhirUser): the nurse whose calls are "my calls" in the
-- coordinators' app and who is named as a case's careManager. Optional; a session carries the
-- value its login had when it opened.
ALTER TABLE fls_user ADD COLUMN practitioner text
  CHECK (practitioner ~ '^Practitioner/[A-Za-z0-9.-]{1,64}$');
ALTER TABLE fls_session ADD COLUMN practitioner text NOT NULL DEFAULT '';
