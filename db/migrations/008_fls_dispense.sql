-- Dispensing of the current drug during follow-up (MedicationDispense pushed by the pharmacy or
-- the EHR): with the 12-month contact, what adherence at 52 weeks is computed from (KPI 11).
CREATE TABLE fls_dispense (
  episode_id  text NOT NULL REFERENCES fls_case,
  source      text NOT NULL,        -- MedicationDispense/id
  day         date NOT NULL,        -- whenHandedOver (else whenPrepared), in the site's zone
  drug        text NOT NULL,        -- ATC
  days_supply integer,              -- daysSupply in days, when given
  PRIMARY KEY (episode_id, source)
);
