#pragma once
// The server's configuration: one immutable struct, read once at start-up from flags
// (--name=value) and FLS_* environment variables (flags win), validated, then passed by const
// reference. No mutable globals.

#include <cstddef>
#include <string>

namespace fls::server {

struct Config {
  std::string listen = "127.0.0.1";  // FLS_LISTEN
  int port = 8080;                   // FLS_PORT
  std::string database_url;          // FLS_DATABASE_URL (required)
  int threads = 0;                   // FLS_THREADS; 0: 4 per core, at least 4
  int db_pool = 0;                   // FLS_DB_POOL; 0: same as threads
  size_t max_body_bytes = 32u << 20; // FLS_MAX_BODY_BYTES
  int json_max_depth = 64;           // FLS_JSON_MAX_DEPTH
  std::string web_dir;               // FLS_WEB_DIR: the built pages ("": FLS_HOME/web/dist)
  std::string home;                  // FLS_HOME: folder holding fhir/data and db/migrations
  std::string public_url;            // FLS_PUBLIC_URL: base URL in links; default from Host
  int shutdown_grace_s = 30;         // FLS_SHUTDOWN_GRACE_S
  int default_count = 20;            // FLS_DEFAULT_COUNT
  int max_count = 1000;              // FLS_MAX_COUNT
  int max_bundle_entries = 10000;    // FLS_MAX_BUNDLE_ENTRIES
  int case_lookback_days = 365;      // FLS_CASE_LOOKBACK_DAYS: older fractures are history
  std::string default_site = "fls-default-site";  // FLS_DEFAULT_SITE: Organization id
  std::string canonical_base = "http://fls-server.org/fhir";  // FLS_CANONICAL_BASE
  std::string timezone = "Europe/Paris";  // FLS_TIMEZONE: the site's zone, for "today" and due dates

  // The listener's limits (server/http_server.cpp). Past each one the client gets a 4xx or 503
  // OperationOutcome and the connection is closed.
  size_t max_header_bytes = 64u << 10;  // FLS_MAX_HEADER_BYTES: request line and headers (431)
  size_t max_url_bytes = 16u << 10;     // FLS_MAX_URL_BYTES: the request target (414)
  int header_timeout_ms = 10000;        // FLS_HEADER_TIMEOUT_MS: first byte to end of headers (408)
  int body_timeout_ms = 120000;         // FLS_BODY_TIMEOUT_MS: end of headers to end of body (408)
  int idle_timeout_ms = 60000;          // FLS_IDLE_TIMEOUT_MS: a kept-alive connection with no request
  int write_timeout_ms = 60000;         // FLS_WRITE_TIMEOUT_MS: a response the client does not read
  int max_connections = 2048;           // FLS_MAX_CONNECTIONS: open at once; more get 503
  size_t max_body_bytes_total = 512u << 20;  // FLS_MAX_BODY_BYTES_TOTAL: request bodies held at once (503)
  int io_threads = 0;                   // FLS_IO_THREADS: socket threads; 0: one per core, at most 4
  std::string cors_origins;             // FLS_CORS_ORIGINS: comma-separated origins allowed, or *
  size_t gzip_min_bytes = 1024;         // FLS_GZIP_MIN_BYTES: smaller bodies go uncompressed

  // What one request may cost (fhir/).
  int max_sort_keys = 8;                // FLS_MAX_SORT_KEYS: more _sort keys answer 400
  int max_include = 1000;               // FLS_MAX_INCLUDE: _include/_revinclude resources per page
  int transaction_timeout_ms = 120000;  // FLS_TRANSACTION_TIMEOUT_MS: a whole Bundle's wall clock

  // The pathway's timers (fhir/pathway_engine.h).
  int timer_interval_s = 60;  // FLS_TIMER_INTERVAL_S: how often due timers run; 0: never
  // FLS_CLOCK_FILE: for tests and drills only: the timers' clock reads a FHIR instant from this
  // file at each run (simulated time) instead of the system clock.
  std::string clock_file;

  // Access control (server/auth.h, docs/security.md).
  bool auth = true;                 // FLS_AUTH: "off" only with a loopback FLS_LISTEN
  std::string auth_dir;             // FLS_AUTH_DIR: signing keys (default HOME/var/auth)
  std::string clients_file;         // FLS_CLIENTS_FILE: registered clients (default AUTH_DIR/clients.json)
  int token_lifetime_s = 300;       // FLS_TOKEN_LIFETIME_S: access tokens, at most 300
  std::string dev_token_file;       // FLS_DEV_TOKEN_FILE: write a local administrator's token here at start
  int dev_token_lifetime_s = 43200; // FLS_DEV_TOKEN_LIFETIME_S: that token's lifetime (12 h)
  std::string oidc_issuer;          // FLS_OIDC_ISSUER: a hospital OpenID Connect provider
  std::string oidc_jwks_file;       // FLS_OIDC_JWKS_FILE: its keys
  std::string oidc_audience;        // FLS_OIDC_AUDIENCE
  std::string oidc_role_claim = "fls_role";    // FLS_OIDC_ROLE_CLAIM
  std::string oidc_sites_claim = "fls_sites";  // FLS_OIDC_SITES_CLAIM
  // People's logins (server/people.h).
  int login_max_failures = 5;       // FLS_LOGIN_MAX_FAILURES: failures in a row that lock an account
  int login_lockout_s = 900;        // FLS_LOGIN_LOCKOUT_S: how long it stays locked
  int session_idle_s = 1800;        // FLS_SESSION_IDLE_S: a session unused this long ends
  int session_lifetime_s = 43200;   // FLS_SESSION_LIFETIME_S: and ends this long after the login anyway
  std::string oidc_client_id;       // FLS_OIDC_CLIENT_ID: the server as a client of the provider (login)
  std::string oidc_client_secret_file;      // FLS_OIDC_CLIENT_SECRET_FILE (none: a public client, PKCE)
  std::string oidc_authorization_endpoint;  // FLS_OIDC_AUTHORIZATION_ENDPOINT
  std::string oidc_token_endpoint;          // FLS_OIDC_TOKEN_ENDPOINT
  std::string oidc_login_scope = "openid profile";  // FLS_OIDC_LOGIN_SCOPE
  // Abuse limits (server/rate_limit.h): per client, and per address without a valid token.
  double rate_limit = 1000;        // FLS_RATE_LIMIT: requests/s per client (0: none)
  double rate_burst = 2000;        // FLS_RATE_BURST
  int max_in_flight_per_client = 0;  // FLS_MAX_IN_FLIGHT_PER_CLIENT (0: none; at most the workers anyway)
  double anon_rate_limit = 20;     // FLS_ANON_RATE_LIMIT: requests/s per address without a valid token
  double anon_rate_burst = 40;     // FLS_ANON_RATE_BURST
};

// Whether `listen` is a loopback address (127.0.0.0/8, ::1, localhost).
bool IsLoopback(const std::string& listen);

// Throws std::invalid_argument naming the bad setting. `env` is getenv in production.
Config LoadConfig(int argc, const char* const* argv, const char* (*env)(const char*));

std::string Usage();

}  // namespace fls::server
