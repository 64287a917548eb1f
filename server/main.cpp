// Builds the object graph on the stack in dependency order (config -> schema -> database ->
// service -> router -> listener), serves until SIGINT/SIGTERM, and tears down in reverse.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <iostream>
#include <mutex>
#include <thread>

#include "db/database.h"
#include "fhir/audit.h"
#include "fhir/bulk_export.h"
#include "fhir/case_finder.h"
#include "fhir/fhir_date.h"
#include "fhir/fhir_service.h"
#include "fhir/measures.h"
#include "fhir/operation_definitions.h"
#include "fhir/reindex.h"
#include "fhir/pathway_engine.h"
#include "fhir/pathway_knowledge.h"
#include "fhir/schema_validator.h"
#include "fhir/search_params.h"

#include "server/admin_cli.h"
#include "server/auth.h"
#include "server/auth_routes.h"
#include "server/config.h"
#include "server/handlers.h"
#include "server/http_server.h"
#include "server/log.h"
#include "server/login_routes.h"
#include "server/people.h"
#include "server/pseudonym.h"
#include "server/web_routes.h"
#include "workflow/fracture_codes.h"
#include "workflow/drug_list.h"
#include "workflow/investigation_panel.h"
#include "workflow/recommendation.h"
#include "workflow/schedule.h"

namespace {
constexpr const char* kVersion = "0.1.0";

const char* Env(const char* name) { return std::getenv(name); }

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
}  // namespace

int main(int argc, char** argv) {
  using namespace fls;
  // Signals are taken by sigwait below; block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  // Operator commands (client add, token, keys rotate) run and exit without serving.
  if (int code = 0; server::RunAdminCommand(argc, argv, Env, code)) return code;

  server::Config config;
  try {
    config = server::LoadConfig(argc, argv, Env);
  } catch (const std::invalid_argument& e) {
    std::cerr << e.what() << "\n";
    return 2;
  }
  if (config.home.empty()) config.home = FLS_HOME_DEFAULT;
  if (config.web_dir.empty()) config.web_dir = config.home + "/web/dist";
  // The site's time zone, once, before any thread starts: localtime_r then reads it safely.
  if (!std::filesystem::exists("/usr/share/zoneinfo/" + config.timezone)) {
    server::Log("warn", "time zone not found in /usr/share/zoneinfo; dates are computed in UTC",
                {{"timezone", config.timezone}});
  }
  setenv("TZ", config.timezone.c_str(), 1);
  tzset();

  std::unique_ptr<fhir::SchemaValidator> schema;
  try {
    schema = fhir::SchemaValidator::Load(config.home + "/fhir/data/fhir.schema.json");
  } catch (const std::exception& e) {
    server::Log("fatal", e.what());
    return 1;
  }
  fhir::SearchParamRegistry registry(*schema, config.canonical_base);

  // Case finding's data: the fracture code list and the pathway's PlanDefinition.
  std::string codes_text, plan_text;
  std::unique_ptr<workflow::FractureCodeList> codes;
  std::unique_ptr<workflow::InvestigationPanel> panel;
  std::unique_ptr<workflow::DrugList> drugs;
  std::unique_ptr<workflow::GrioRules> grio;
  std::unique_ptr<workflow::LongTermPlan> long_term;
  std::unique_ptr<workflow::FollowUpProgramme> follow_up;
  std::unique_ptr<fhir::MeasureCatalog> measures;
  std::shared_ptr<const workflow::GoalsConfig> goals;
  try {
    codes_text = ReadFile(config.home + "/workflow/data/fracture-codes.json");
    plan_text = ReadFile(config.home + "/workflow/data/plandefinition-capture-the-fracture.json");
    codes = std::make_unique<workflow::FractureCodeList>(workflow::FractureCodeList::Parse(codes_text));
    // The pathway's data: a malformed file stops the start-up here, naming the entry.
    panel = std::make_unique<workflow::InvestigationPanel>(
        workflow::InvestigationPanel::Parse(ReadFile(config.home + "/workflow/data/investigation-panel.json")));
    drugs = std::make_unique<workflow::DrugList>(
        workflow::DrugList::Parse(ReadFile(config.home + "/workflow/data/osteoporosis-drugs.json")));
    grio = std::make_unique<workflow::GrioRules>(
        workflow::GrioRules::Parse(ReadFile(config.home + "/workflow/data/grio-2017.json")));
    long_term = std::make_unique<workflow::LongTermPlan>(
        workflow::LongTermPlan::Parse(ReadFile(config.home + "/workflow/data/long-term.json")));
    follow_up = std::make_unique<workflow::FollowUpProgramme>(
        workflow::FollowUpProgramme::Parse(ReadFile(config.home + "/workflow/data/follow-up.json")));
    // The quality indicators: one Measure per line of the framework files.
    measures = std::make_unique<fhir::MeasureCatalog>(fhir::LoadMeasureCatalog(config.home + "/workflow/data/kpi-frameworks"));
    goals = std::make_shared<const workflow::GoalsConfig>(
        workflow::ParseGoalsConfig(ReadFile(config.home + "/workflow/data/capture-the-fracture.json")));
    fhir::CheckGoalsAgainstCatalog(*goals, *measures);
  } catch (const std::exception& e) {
    server::Log("fatal", e.what());
    return 1;
  }
  fhir::CaseFinderConfig case_config;
  case_config.canonical_base = config.canonical_base;
  case_config.default_site_id = config.default_site;
  case_config.rules.lookback_days = config.case_lookback_days;
  case_config.rules.same_fracture_window_days = codes->same_fracture_window_days();

  db::DbConfig db_config;
  db_config.url = config.database_url;
  db_config.pool_size = config.db_pool;
  db_config.migrations_dir = config.home + "/db/migrations";
  db::Database database(db_config);

  // Migrations: now if the database answers, else keep trying in the background while the
  // server answers 503 (and /readyz says not ready).
  std::atomic<bool> stopping{false};
  std::mutex stop_mu;
  std::condition_variable stop_cv;
  std::unique_ptr<fhir::FhirService> service_ptr;  // set before the first migration attempt
  auto migrate_once = [&]() {
    try {
      database.Migrate();
      auto reindexed = fhir::BringIndexUpToDate(database, registry, [](const std::string& type, long long done) {
        server::Log("info", "search index rebuilt in part", {{"type", type}, {"resources", std::to_string(done)}});
      });
      if (reindexed.types_rebuilt > 0) {
        server::Log("info", "search index brought up to the registry",
                    {{"types", std::to_string(reindexed.types_rebuilt)},
                     {"resources", std::to_string(reindexed.resources_reindexed)}});
      }
      fhir::PublishCaseFindingKnowledge(*service_ptr, *codes, case_config, plan_text);
      fhir::PublishPathwayKnowledge(*service_ptr, *panel, config.canonical_base);
      fhir::PublishOperationDefinitions(*service_ptr, config.canonical_base);
      fhir::PublishSearchParameters(*service_ptr, registry);
      fhir::PublishMeasures(*service_ptr, *measures, config.canonical_base);
      database.MarkReady();
      server::Log("info", "database ready: migrations applied, pathway published");
      return true;
    } catch (const db::DbError& e) {
      server::Log(e.kind() == db::DbErrorKind::kUnavailable ? "warn" : "error", "migrations not applied",
                  {{"error", e.what()}, {"sqlstate", e.sqlstate()}});
      return false;
    } catch (const std::exception& e) {
      server::Log("error", "migrations not applied", {{"error", e.what()}});
      return false;
    }
  };
  fhir::ServiceConfig service_config;
  service_config.json.max_depth = config.json_max_depth;
  service_config.search.default_count = config.default_count;
  service_config.search.max_count = config.max_count;
  service_config.search.max_sort_keys = config.max_sort_keys;
  service_config.search.max_include = config.max_include;
  service_config.max_bundle_entries = config.max_bundle_entries;
  service_config.transaction_timeout_ms = config.transaction_timeout_ms;
  service_config.on_db_error = [](const std::string& rid, const db::DbError& e) {
    server::Log("warn", "database error in a batch entry", {{"rid", rid}, {"sqlstate", e.sqlstate()}, {"error", e.what()}});
  };
  service_ptr = std::make_unique<fhir::FhirService>(database, *schema, registry, service_config);
  fhir::FhirService& service = *service_ptr;

  // The pathway engine: $event, the events data raises, the timers.
  fhir::PathwayConfig pathway_config;
  pathway_config.canonical_base = config.canonical_base;
  if (!config.clock_file.empty()) {
    pathway_config.now_us = [path = config.clock_file]() -> int64_t {
      std::ifstream in(path);
      std::string text;
      std::getline(in, text);
      auto range = fhir::ParseFhirDate(text);
      return range ? range->lo_us : fhir::NowMicros();
    };
  }
  fhir::PathwayEngine engine(*panel, *drugs, *grio, *long_term, *follow_up, pathway_config);
  service.AddListener(fhir::MakeCaseFinder(*codes, case_config, engine));
  service.AddListener(engine.DataListener());
  service.AddListener(fhir::MakeAuditListener());  // last: it reports what the others wrote

  std::thread migrator;
  if (!migrate_once()) {
    migrator = std::thread([&] {
      std::unique_lock lock(stop_mu);
      while (!stopping) {
        if (stop_cv.wait_for(lock, std::chrono::seconds(2), [&] { return stopping.load(); })) break;
        lock.unlock();
        bool ok = migrate_once();
        lock.lock();
        if (ok) break;
      }
    });
  }

  // Access control: the signing keys, the registered clients, the token endpoint.
  server::AuthPaths auth_paths = server::ResolveAuthPaths(config.home, config.auth_dir, config.clients_file);
  std::unique_ptr<server::SigningKeys> signing_keys;
  std::unique_ptr<server::Authenticator> authenticator;
  std::unique_ptr<server::Pseudonyms> pseudonyms;  // the extracts' pseudonym key (server/pseudonym.h)
  try {
    pseudonyms = std::make_unique<server::Pseudonyms>(auth_paths.auth_dir);
    signing_keys = std::make_unique<server::SigningKeys>(auth_paths.auth_dir);
    server::OidcConfig oidc{config.oidc_issuer, config.oidc_jwks_file, config.oidc_audience, config.oidc_role_claim,
                            config.oidc_sites_claim};
    authenticator = std::make_unique<server::Authenticator>(
        *signing_keys, config.public_url.empty() ? "fls-server" : config.public_url, oidc);
    server::ClientRegistry::Load(auth_paths.clients_file);  // a malformed file stops the start-up
    if (!config.dev_token_file.empty()) {
      server::WriteDevToken(auth_paths, *signing_keys, *authenticator, config.dev_token_file, config.dev_token_lifetime_s);
      server::Log("info", "development token written",
                  {{"file", config.dev_token_file}, {"client", "local-admin"},
                   {"lifetime_s", std::to_string(config.dev_token_lifetime_s)}});
    }
  } catch (const std::exception& e) {
    server::Log("fatal", "access control not set up", {{"error", e.what()}, {"auth_dir", auth_paths.auth_dir}});
    return 2;
  }
  server::ClientRegistry clients(auth_paths.clients_file);
  if (!config.auth) {
    server::Log("warn", "authentication is OFF (FLS_AUTH=off): every request acts as an administrator; loopback only",
                {{"listen", config.listen}});
  }

  server::RateLimiter limiter({config.rate_limit, config.rate_burst, config.max_in_flight_per_client},
                              {config.anon_rate_limit, config.anon_rate_burst, 0});
  // People's logins: local accounts and the provider's login flow, browser sessions.
  server::PeopleConfig people_config;
  people_config.max_failures = config.login_max_failures;
  people_config.lockout_s = config.login_lockout_s;
  people_config.session_idle_s = config.session_idle_s;
  people_config.session_lifetime_s = config.session_lifetime_s;
  people_config.public_url = config.public_url;
  people_config.oidc_client_id = config.oidc_client_id;
  people_config.oidc_authorization_endpoint = config.oidc_authorization_endpoint;
  people_config.oidc_token_endpoint = config.oidc_token_endpoint;
  people_config.oidc_scope = config.oidc_login_scope;
  if (!config.oidc_client_secret_file.empty()) {
    std::ifstream in(config.oidc_client_secret_file);
    std::getline(in, people_config.oidc_client_secret);
    if (people_config.oidc_client_secret.empty()) {
      server::Log("fatal", "cannot read the identity provider's client secret", {{"file", config.oidc_client_secret_file}});
      return 2;
    }
  }
  server::People people(database, *authenticator, people_config);
  // The origin state-changing session requests must come from: FLS_PUBLIC_URL's scheme and host.
  std::string origin;
  if (!config.public_url.empty()) {
    size_t scheme = config.public_url.find("://");
    size_t path = scheme == std::string::npos ? std::string::npos : config.public_url.find('/', scheme + 3);
    origin = config.public_url.substr(0, path);
  }

  server::Router router;
  router.SetAuth({authenticator.get(), !config.auth, &limiter, &people, origin});
  router.SetAuditor([&service](const fhir::AuditRecord& record) { fhir::WriteAudit(service, record); });
  server::RegisterAuthRoutes(router, {clients, *signing_keys, *authenticator, database, config.public_url,
                                      config.token_lifetime_s});
  server::RegisterLoginRoutes(router, {people, &limiter, config.public_url});
  server::RegisterWebRoutes(router, config.web_dir);
  server::RegisterRoutes(router, {service, *schema, database, kVersion, &engine, config.canonical_base, measures.get(),
                                  fhir::MeasureConfig{config.canonical_base, config.timezone, "dxa", goals},
                                  [p = pseudonyms.get()](const std::string& what) { return p->Of(what); }});

  server::HttpServer http(config, router, database);
  try {
    http.Start();
  } catch (const std::exception& e) {
    server::Log("fatal", "cannot listen", {{"error", e.what()}});
    stopping = true;
    stop_cv.notify_all();
    if (migrator.joinable()) migrator.join();
    return 1;
  }
  server::Log("info", "serving",
              {{"url", "http://" + config.listen + ":" + std::to_string(config.port)},
               {"threads", std::to_string(config.threads)},
               {"io_threads", std::to_string(config.io_threads)},
               {"db_pool", std::to_string(config.db_pool)},
               {"version", kVersion}});

  // The timers: every FLS_TIMER_INTERVAL_S, the due ones fire (each exactly once, whichever
  // process on the database claims it first). A failure is logged; the next run catches up.
  std::thread timers;
  if (config.timer_interval_s > 0) {
    timers = std::thread([&] {
      std::unique_lock lock(stop_mu);
      while (!stopping) {
        lock.unlock();
        try {
          if (database.migrated()) {
            int fired = engine.RunDueTimers(service, 1000);
            if (fired > 0) server::Log("info", "timers fired", {{"count", std::to_string(fired)}});
          }
        } catch (const std::exception& e) {
          server::Log("warn", "timers not run", {{"error", e.what()}});
        }
        lock.lock();
        stop_cv.wait_for(lock, std::chrono::seconds(config.timer_interval_s), [&] { return stopping.load(); });
      }
    });
  }

  // Bulk Data exports: whichever process on the database claims a queued job runs it
  // (docs/bulk-export.md).
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  fhir::ExportRunner exports(service, {std::string(host) + ":" + std::to_string(getpid())});
  exports.Start();

  int sig = 0;
  sigwait(&signals, &sig);
  server::Log("info", "stopping", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
  http.Drain();
  {
    std::lock_guard lock(stop_mu);
    stopping = true;
  }
  stop_cv.notify_all();
  if (migrator.joinable()) migrator.join();
  if (timers.joinable()) timers.join();
  exports.Stop();
  server::Log("info", "stopped");
  return 0;
}
