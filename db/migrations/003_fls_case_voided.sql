-- A case cancelled because its index fracture turned out to be entered in error or refuted: it
-- never existed clinically, so the rules "same fracture as a closed case" and "refracture after a
-- closed case" ignore it.
ALTER TABLE fls_case ADD COLUMN voided boolean NOT NULL DEFAULT false;
