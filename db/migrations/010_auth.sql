-- Client assertions already used (SMART Backend Services: a jti is never accepted twice). Shared
-- by every server process on the database; rows past their expiry are deleted as new ones come.
CREATE TABLE auth_jti (
  client_id  text        NOT NULL,
  jti        text        NOT NULL,
  expires_at timestamptz NOT NULL,
  PRIMARY KEY (client_id, jti)
);
CREATE INDEX auth_jti_expiry ON auth_jti (expires_at);
