-- Resource storage: every version of every resource, the current version pointer, and the
-- search index rows of the current version (written in the same transaction as the resource).

CREATE TABLE resource_version (
  res_type     text        NOT NULL,
  res_id       text        NOT NULL,
  version_id   integer     NOT NULL,
  last_updated timestamptz NOT NULL,
  method       text        NOT NULL CHECK (method IN ('POST', 'PUT', 'DELETE')),
  content      jsonb,                      -- NULL for a deletion
  seq          bigserial   NOT NULL UNIQUE, -- global order of writes, for history paging
  PRIMARY KEY (res_type, res_id, version_id)
);
CREATE INDEX resource_version_type_seq ON resource_version (res_type, seq);

CREATE TABLE resource (
  res_type     text        NOT NULL,
  res_id       text        NOT NULL,
  version_id   integer     NOT NULL,
  last_updated timestamptz NOT NULL,
  deleted      boolean     NOT NULL DEFAULT false,
  PRIMARY KEY (res_type, res_id),
  FOREIGN KEY (res_type, res_id, version_id) REFERENCES resource_version (res_type, res_id, version_id)
    DEFERRABLE INITIALLY DEFERRED
);
CREATE INDEX resource_type_updated ON resource (res_type, last_updated, res_id) WHERE NOT deleted;

-- Search index rows; (res_type, res_id) is the resource they describe.
CREATE TABLE idx_token (
  res_type text NOT NULL, res_id text NOT NULL, param text NOT NULL,
  system text, code text NOT NULL
);
CREATE INDEX idx_token_lookup ON idx_token (res_type, param, code, system);
CREATE INDEX idx_token_owner ON idx_token (res_type, res_id);

CREATE TABLE idx_string (
  res_type text NOT NULL, res_id text NOT NULL, param text NOT NULL,
  norm text NOT NULL,   -- lower case, accents removed; one row per word start
  exact text NOT NULL   -- the value as sent (for :exact)
);
CREATE INDEX idx_string_lookup ON idx_string (res_type, param, norm text_pattern_ops);
CREATE INDEX idx_string_owner ON idx_string (res_type, res_id);

CREATE TABLE idx_date (
  res_type text NOT NULL, res_id text NOT NULL, param text NOT NULL,
  lo timestamptz NOT NULL, hi timestamptz NOT NULL  -- [lo, hi)
);
CREATE INDEX idx_date_lookup ON idx_date (res_type, param, lo, hi);
CREATE INDEX idx_date_owner ON idx_date (res_type, res_id);

CREATE TABLE idx_reference (
  res_type text NOT NULL, res_id text NOT NULL, param text NOT NULL,
  target_type text, target_id text NOT NULL  -- target_id holds the whole URL for external ones
);
CREATE INDEX idx_reference_lookup ON idx_reference (res_type, param, target_id, target_type);
CREATE INDEX idx_reference_owner ON idx_reference (res_type, res_id);

CREATE TABLE idx_quantity (
  res_type text NOT NULL, res_id text NOT NULL, param text NOT NULL,
  value numeric NOT NULL, system text, code text
);
CREATE INDEX idx_quantity_lookup ON idx_quantity (res_type, param, value);
CREATE INDEX idx_quantity_owner ON idx_quantity (res_type, res_id);

-- Conditional create and conditional update claim their normalised query here first: of two
-- concurrent writers with the same query, the second waits on this key and then sees the first's
-- resource (hapi-fhir #3141, microsoft/fhir-server #1382, medplum #4878 are the search-then-insert
-- races this prevents). A resource's keys are dropped when it is updated or deleted.
CREATE TABLE conditional_key (
  res_type text NOT NULL,
  query    text NOT NULL,
  res_id   text NOT NULL,
  PRIMARY KEY (res_type, query)
);
CREATE INDEX conditional_key_owner ON conditional_key (res_type, res_id);

-- Search result snapshots for stable paging: a search with more than one page stores the ordered
-- ids of its matches once; every page reads from that list.
CREATE UNLOGGED TABLE search_snapshot (
  search_id uuid PRIMARY KEY,
  res_type  text        NOT NULL,
  total     integer     NOT NULL,
  created   timestamptz NOT NULL DEFAULT now()
);
CREATE UNLOGGED TABLE search_snapshot_row (
  search_id uuid    NOT NULL REFERENCES search_snapshot ON DELETE CASCADE,
  pos       integer NOT NULL,
  res_id    text    NOT NULL,
  PRIMARY KEY (search_id, pos)
);
