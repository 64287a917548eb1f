-- Which definition of its search parameters each type's index rows were built with. At start-up
-- the server compares the registry's fingerprint of each type (fhir/reindex.cpp) with the one
-- stored here and rebuilds the index rows of the types whose parameters changed (a parameter
-- added, such as Task `due`, or its paths changed), so that an upgrade never answers a search from
-- rows built by an older definition.
CREATE TABLE search_index_state (
  res_type    text        PRIMARY KEY,
  fingerprint text        NOT NULL,
  indexed_at  timestamptz NOT NULL DEFAULT now()
);
