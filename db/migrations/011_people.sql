-- People who log in to the web pages (docs/security.md, "People"): local accounts with an
-- Argon2id password hash (libsodium's crypto_pwhash_str format, parameters inside the string) or
-- accounts of the hospital's OpenID Connect provider; their browser sessions; the provider login
-- flows in progress. Shared by every server process on the database.
CREATE TABLE fls_user (
  login               text        PRIMARY KEY CHECK (login = lower(login) AND length(login) BETWEEN 1 AND 128),
  display_name        text        NOT NULL,
  role                text        NOT NULL CHECK (role IN ('ehr', 'coordinator', 'quality', 'admin')),
  sites               text[]      NOT NULL DEFAULT '{}',
  password_hash       text,       -- NULL: no local password (the provider's login only)
  oidc_issuer         text,
  oidc_subject        text,
  failed_logins       integer     NOT NULL DEFAULT 0,
  locked_until        timestamptz,
  disabled            boolean     NOT NULL DEFAULT false,
  created_at          timestamptz NOT NULL DEFAULT now(),
  password_changed_at timestamptz,
  last_login_at       timestamptz,
  UNIQUE (oidc_issuer, oidc_subject)
);

-- A browser session: the cookie carries a random secret; only its SHA-256 is stored, so a copy of
-- the database opens no session.
CREATE TABLE fls_session (
  id_hash      bytea       PRIMARY KEY,
  login        text        NOT NULL,
  display_name text        NOT NULL,
  issuer       text        NOT NULL DEFAULT '',  -- '' local account, else the provider's issuer
  role         text        NOT NULL,
  sites        text[]      NOT NULL DEFAULT '{}',
  csrf         text        NOT NULL,
  address      text        NOT NULL DEFAULT '',
  created_at   timestamptz NOT NULL DEFAULT now(),
  last_seen_at timestamptz NOT NULL DEFAULT now(),
  expires_at   timestamptz NOT NULL
);
CREATE INDEX fls_session_login ON fls_session (login);
CREATE INDEX fls_session_expiry ON fls_session (expires_at);

-- An OpenID Connect authorization-code login in progress (state, nonce, PKCE verifier), bound to
-- the browser that started it by the hash of a cookie; taken (deleted) once by the callback.
CREATE TABLE fls_login_flow (
  state         text        PRIMARY KEY,
  browser_hash  bytea       NOT NULL,
  nonce         text        NOT NULL,
  code_verifier text        NOT NULL,
  next_path     text        NOT NULL,
  expires_at    timestamptz NOT NULL
);
