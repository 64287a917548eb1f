#include "server/config.h"

#include <algorithm>
#include <charconv>
#include <map>
#include <stdexcept>
#include <thread>

namespace fls::server {

namespace {

long long ToInt(const std::string& name, const std::string& v, long long min, long long max) {
  long long out = 0;
  auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc() || ptr != v.data() + v.size() || out < min || out > max) {
    throw std::invalid_argument(name + " must be an integer between " + std::to_string(min) +
                                " and " + std::to_string(max) + ", not '" + v + "'");
  }
  return out;
}

}  // namespace

std::string Usage() {
  return "usage: fls-server [--listen=ADDR] [--port=N] [--database-url=URL] [--threads=N]\n"
         "                  [--db-pool=N] [--max-body-bytes=N] [--json-max-depth=N] [--home=DIR] [--web-dir=DIR]\n"
         "                  [--public-url=URL] [--shutdown-grace-s=N] [--default-count=N]\n"
         "                  [--max-count=N] [--max-bundle-entries=N] [--case-lookback-days=N]\n"
         "                  [--default-site=ORGANIZATION_ID] [--canonical-base=URL]\n"
         "                  [--timezone=IANA_ZONE] [--max-header-bytes=N] [--max-url-bytes=N]\n"
         "                  [--header-timeout-ms=N] [--body-timeout-ms=N] [--idle-timeout-ms=N]\n"
         "                  [--write-timeout-ms=N] [--max-connections=N] [--io-threads=N]\n"
         "                  [--cors-origins=ORIGIN,...] [--gzip-min-bytes=N] [--max-sort-keys=N]\n"
         "                  [--max-include=N] [--transaction-timeout-ms=N] [--max-body-bytes-total=N]\n"
         "                  [--timer-interval-s=N] [--clock-file=PATH] [--auth=on|off]\n"
         "                  [--auth-dir=DIR] [--clients-file=PATH] [--token-lifetime-s=N]\n"
         "                  [--dev-token-file=PATH] [--dev-token-lifetime-s=N] [--oidc-issuer=URL]\n"
         "                  [--oidc-jwks-file=PATH] [--oidc-audience=AUD] [--oidc-role-claim=NAME]\n"
         "                  [--oidc-sites-claim=NAME] [--rate-limit=N] [--rate-burst=N]\n"
         "                  [--max-in-flight-per-client=N] [--anon-rate-limit=N] [--anon-rate-burst=N]\n"
         "                  [--login-max-failures=N] [--login-lockout-s=N] [--session-idle-s=N]\n"
         "                  [--session-lifetime-s=N] [--oidc-client-id=ID] [--oidc-client-secret-file=PATH]\n"
         "                  [--oidc-authorization-endpoint=URL] [--oidc-token-endpoint=URL]\n"
         "                  [--oidc-login-scope=SCOPES]\n"
         "       fls-server client add --name=ID --role=ehr|coordinator|quality|admin --jwks=FILE\n"
         "                  [--sites=Organization/a,...] [--scope=SCOPES]\n"
         "       fls-server client list | client remove --name=ID | token [--client=ID]\n"
         "       fls-server keys rotate\n"
         "       fls-server user add --login=LOGIN --name=NAME --role=coordinator|quality|admin|ehr\n"
         "                  [--sites=Organization/a,...] [--practitioner=Practitioner/id] [--oidc-subject=SUB]\n"
         "                  [--no-password]\n"
         "                  (the password is read from standard input)\n"
         "       fls-server user list | user passwd|unlock|disable|enable|remove --login=LOGIN\n"
         "Each flag can also be set as FLS_<NAME> in the environment (FLS_DATABASE_URL...).\n";
}

bool IsLoopback(const std::string& listen) {
  return listen == "localhost" || listen == "::1" || listen == "[::1]" || listen.rfind("127.", 0) == 0;
}

Config LoadConfig(int argc, const char* const* argv, const char* (*env)(const char*)) {
  static const char* kNames[] = {"listen", "port", "database-url", "threads", "db-pool",
                                 "max-body-bytes", "json-max-depth", "home", "public-url",
                                 "shutdown-grace-s", "default-count", "max-count",
                                 "max-bundle-entries", "case-lookback-days", "default-site",
                                 "canonical-base", "timezone", "max-header-bytes", "max-url-bytes",
                                 "header-timeout-ms", "body-timeout-ms", "idle-timeout-ms",
                                 "write-timeout-ms", "max-connections", "io-threads", "cors-origins",
                                 "gzip-min-bytes", "max-sort-keys", "max-include", "max-body-bytes-total",
                                 "transaction-timeout-ms", "timer-interval-s", "clock-file", "auth", "auth-dir",
                                 "clients-file", "token-lifetime-s", "dev-token-file", "dev-token-lifetime-s",
                                 "oidc-issuer", "oidc-jwks-file", "oidc-audience", "oidc-role-claim",
                                 "oidc-sites-claim", "rate-limit", "rate-burst", "max-in-flight-per-client",
                                 "anon-rate-limit", "anon-rate-burst", "login-max-failures", "login-lockout-s",
                                 "session-idle-s", "session-lifetime-s", "oidc-client-id", "oidc-client-secret-file",
                                 "oidc-authorization-endpoint", "oidc-token-endpoint", "oidc-login-scope", "web-dir"};
  std::map<std::string, std::string> values;
  for (const char* name : kNames) {
    std::string var = "FLS_";
    for (const char* c = name; *c; ++c) var += *c == '-' ? '_' : static_cast<char>(std::toupper(*c));
    if (const char* v = env(var.c_str()); v && *v) values[name] = v;
  }
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") throw std::invalid_argument(Usage());
    auto eq = arg.find('=');
    if (arg.rfind("--", 0) != 0 || eq == std::string::npos) {
      throw std::invalid_argument("unexpected argument '" + arg + "'\n" + Usage());
    }
    std::string name = arg.substr(2, eq - 2);
    bool known = false;
    for (const char* n : kNames) known = known || name == n;
    if (!known) throw std::invalid_argument("unknown flag --" + name + "\n" + Usage());
    values[name] = arg.substr(eq + 1);
  }
  Config c;
  auto get = [&](const char* n) -> const std::string* {
    auto it = values.find(n);
    return it == values.end() ? nullptr : &it->second;
  };
  if (auto v = get("listen")) c.listen = *v;
  if (auto v = get("port")) c.port = static_cast<int>(ToInt("port", *v, 1, 65535));
  if (auto v = get("database-url")) c.database_url = *v;
  if (auto v = get("threads")) c.threads = static_cast<int>(ToInt("threads", *v, 1, 256));
  if (auto v = get("db-pool")) c.db_pool = static_cast<int>(ToInt("db-pool", *v, 1, 256));
  if (auto v = get("max-body-bytes")) {
    c.max_body_bytes = static_cast<size_t>(ToInt("max-body-bytes", *v, 1024, 1LL << 32));
  }
  if (auto v = get("json-max-depth")) c.json_max_depth = static_cast<int>(ToInt("json-max-depth", *v, 8, 1000));
  if (auto v = get("home")) c.home = *v;
  if (auto v = get("web-dir")) c.web_dir = *v;
  if (auto v = get("public-url")) c.public_url = *v;
  if (auto v = get("shutdown-grace-s")) c.shutdown_grace_s = static_cast<int>(ToInt("shutdown-grace-s", *v, 0, 3600));
  if (auto v = get("default-count")) c.default_count = static_cast<int>(ToInt("default-count", *v, 1, 100000));
  if (auto v = get("max-count")) c.max_count = static_cast<int>(ToInt("max-count", *v, 1, 100000));
  if (auto v = get("max-bundle-entries")) {
    c.max_bundle_entries = static_cast<int>(ToInt("max-bundle-entries", *v, 1, 1000000));
  }
  if (auto v = get("case-lookback-days")) {
    c.case_lookback_days = static_cast<int>(ToInt("case-lookback-days", *v, 0, 100000));
  }
  if (auto v = get("default-site")) c.default_site = *v;
  if (auto v = get("canonical-base")) c.canonical_base = *v;
  if (auto v = get("timezone")) c.timezone = *v;
  if (auto v = get("max-header-bytes")) {
    c.max_header_bytes = static_cast<size_t>(ToInt("max-header-bytes", *v, 1024, 16 << 20));
  }
  if (auto v = get("max-url-bytes")) c.max_url_bytes = static_cast<size_t>(ToInt("max-url-bytes", *v, 256, 16 << 20));
  if (auto v = get("header-timeout-ms")) c.header_timeout_ms = static_cast<int>(ToInt("header-timeout-ms", *v, 100, 3600000));
  if (auto v = get("body-timeout-ms")) c.body_timeout_ms = static_cast<int>(ToInt("body-timeout-ms", *v, 100, 3600000));
  if (auto v = get("idle-timeout-ms")) c.idle_timeout_ms = static_cast<int>(ToInt("idle-timeout-ms", *v, 100, 3600000));
  if (auto v = get("write-timeout-ms")) c.write_timeout_ms = static_cast<int>(ToInt("write-timeout-ms", *v, 100, 3600000));
  if (auto v = get("max-connections")) c.max_connections = static_cast<int>(ToInt("max-connections", *v, 1, 1000000));
  if (auto v = get("max-body-bytes-total")) {
    c.max_body_bytes_total = static_cast<size_t>(ToInt("max-body-bytes-total", *v, 1024, 1LL << 40));
  }
  if (auto v = get("io-threads")) c.io_threads = static_cast<int>(ToInt("io-threads", *v, 1, 64));
  if (auto v = get("cors-origins")) c.cors_origins = *v;
  if (auto v = get("gzip-min-bytes")) c.gzip_min_bytes = static_cast<size_t>(ToInt("gzip-min-bytes", *v, 0, 1LL << 32));
  if (auto v = get("max-sort-keys")) c.max_sort_keys = static_cast<int>(ToInt("max-sort-keys", *v, 1, 64));
  if (auto v = get("max-include")) c.max_include = static_cast<int>(ToInt("max-include", *v, 1, 100000));
  if (auto v = get("transaction-timeout-ms")) {
    c.transaction_timeout_ms = static_cast<int>(ToInt("transaction-timeout-ms", *v, 100, 3600000));
  }
  if (auto v = get("timer-interval-s")) c.timer_interval_s = static_cast<int>(ToInt("timer-interval-s", *v, 0, 86400));
  if (auto v = get("clock-file")) c.clock_file = *v;
  if (auto v = get("auth")) {
    if (*v != "on" && *v != "off") throw std::invalid_argument("auth must be on or off");
    c.auth = *v == "on";
  }
  if (auto v = get("auth-dir")) c.auth_dir = *v;
  if (auto v = get("clients-file")) c.clients_file = *v;
  if (auto v = get("token-lifetime-s")) c.token_lifetime_s = static_cast<int>(ToInt("token-lifetime-s", *v, 10, 300));
  if (auto v = get("dev-token-file")) c.dev_token_file = *v;
  if (auto v = get("dev-token-lifetime-s")) {
    c.dev_token_lifetime_s = static_cast<int>(ToInt("dev-token-lifetime-s", *v, 60, 7 * 86400));
  }
  if (auto v = get("oidc-issuer")) c.oidc_issuer = *v;
  if (auto v = get("oidc-jwks-file")) c.oidc_jwks_file = *v;
  if (auto v = get("oidc-audience")) c.oidc_audience = *v;
  if (auto v = get("oidc-role-claim")) c.oidc_role_claim = *v;
  if (auto v = get("oidc-sites-claim")) c.oidc_sites_claim = *v;
  if (auto v = get("rate-limit")) c.rate_limit = static_cast<double>(ToInt("rate-limit", *v, 0, 1000000));
  if (auto v = get("rate-burst")) c.rate_burst = static_cast<double>(ToInt("rate-burst", *v, 1, 10000000));
  if (auto v = get("max-in-flight-per-client")) {
    c.max_in_flight_per_client = static_cast<int>(ToInt("max-in-flight-per-client", *v, 0, 100000));
  }
  if (auto v = get("anon-rate-limit")) c.anon_rate_limit = static_cast<double>(ToInt("anon-rate-limit", *v, 0, 1000000));
  if (auto v = get("anon-rate-burst")) c.anon_rate_burst = static_cast<double>(ToInt("anon-rate-burst", *v, 1, 10000000));
  if (auto v = get("login-max-failures")) c.login_max_failures = static_cast<int>(ToInt("login-max-failures", *v, 1, 100));
  if (auto v = get("login-lockout-s")) c.login_lockout_s = static_cast<int>(ToInt("login-lockout-s", *v, 1, 7 * 86400));
  if (auto v = get("session-idle-s")) c.session_idle_s = static_cast<int>(ToInt("session-idle-s", *v, 60, 86400));
  if (auto v = get("session-lifetime-s")) {
    c.session_lifetime_s = static_cast<int>(ToInt("session-lifetime-s", *v, 60, 7 * 86400));
  }
  if (auto v = get("oidc-client-id")) c.oidc_client_id = *v;
  if (auto v = get("oidc-client-secret-file")) c.oidc_client_secret_file = *v;
  if (auto v = get("oidc-authorization-endpoint")) c.oidc_authorization_endpoint = *v;
  if (auto v = get("oidc-token-endpoint")) c.oidc_token_endpoint = *v;
  if (auto v = get("oidc-login-scope")) c.oidc_login_scope = *v;
  if (!c.oidc_client_id.empty()) {
    if (c.oidc_issuer.empty()) {
      throw std::invalid_argument("FLS_OIDC_CLIENT_ID needs FLS_OIDC_ISSUER, FLS_OIDC_JWKS_FILE and FLS_OIDC_AUDIENCE "
                                  "(the provider whose ID tokens are checked)");
    }
    for (const auto* ep : {&c.oidc_authorization_endpoint, &c.oidc_token_endpoint}) {
      const bool https = ep->rfind("https://", 0) == 0;
      const bool local = ep->rfind("http://127.", 0) == 0 || ep->rfind("http://localhost", 0) == 0 ||
                         ep->rfind("http://[::1]", 0) == 0;
      if (!https && !local) {
        throw std::invalid_argument("FLS_OIDC_AUTHORIZATION_ENDPOINT and FLS_OIDC_TOKEN_ENDPOINT must be https:// URLs "
                                    "(http:// only on loopback), as the provider's discovery document gives them");
      }
    }
    if (c.oidc_login_scope.find("openid") == std::string::npos) {
      throw std::invalid_argument("FLS_OIDC_LOGIN_SCOPE must include openid");
    }
  }
  if (c.session_lifetime_s < c.session_idle_s) c.session_idle_s = c.session_lifetime_s;
  if (!c.auth && !IsLoopback(c.listen)) {
    throw std::invalid_argument("FLS_AUTH=off is refused on " + c.listen +
                                ": without authentication the server listens on loopback only");
  }
  if (c.auth && c.public_url.empty() && !IsLoopback(c.listen)) {
    // Token audiences and links must not follow a client's Host header.
    throw std::invalid_argument("FLS_PUBLIC_URL is required when the server listens beyond loopback (" + c.listen +
                                "): the URL clients reach it at, e.g. https://fls.chu.example");
  }
  if (!c.oidc_issuer.empty() && c.oidc_audience.empty()) {
    throw std::invalid_argument("FLS_OIDC_ISSUER needs FLS_OIDC_AUDIENCE (the aud its tokens carry for this server)");
  }
  if (!c.oidc_issuer.empty() && c.oidc_jwks_file.empty()) {
    throw std::invalid_argument("FLS_OIDC_ISSUER needs FLS_OIDC_JWKS_FILE (the provider's keys)");
  }
  if (c.max_url_bytes > c.max_header_bytes) c.max_url_bytes = c.max_header_bytes;
  for (char ch : c.timezone) {
    if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '/' || ch == '_' || ch == '-' || ch == '+')) {
      throw std::invalid_argument("timezone must be an IANA zone name such as Europe/Paris");
    }
  }
  while (!c.canonical_base.empty() && c.canonical_base.back() == '/') c.canonical_base.pop_back();
  if (c.database_url.empty()) throw std::invalid_argument("FLS_DATABASE_URL (or --database-url) is required");
  if (c.threads == 0) {
    unsigned cores = std::max(1u, std::thread::hardware_concurrency());
    c.threads = static_cast<int>(std::max(4u, 4 * cores));
  }
  if (c.db_pool == 0) c.db_pool = c.threads;
  if (c.io_threads == 0) {
    unsigned cores = std::max(1u, std::thread::hardware_concurrency());
    c.io_threads = static_cast<int>(std::min(4u, cores));
  }
  if (c.default_count > c.max_count) c.default_count = c.max_count;
  while (!c.public_url.empty() && c.public_url.back() == '/') c.public_url.pop_back();
  return c;
}

}  // namespace fls::server
