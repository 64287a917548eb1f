// `fls-server user ...`: people's local accounts (server/people.h), kept in the database.
#include <termios.h>
#include <unistd.h>

#include <ctime>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "db/auth_store.h"
#include "db/database.h"
#include "server/admin_cli.h"
#include "server/people.h"

namespace fls::server {

namespace {

// One line from standard input; without echo when it is a terminal (asked twice then).
std::string ReadPassword(const std::string& login) {
  const bool tty = ::isatty(STDIN_FILENO);
  auto read_line = [&](const char* prompt) {
    termios old{};
    if (tty) {
      std::cerr << prompt << std::flush;
      ::tcgetattr(STDIN_FILENO, &old);
      termios quiet = old;
      quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
      ::tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
    }
    std::string line;
    std::getline(std::cin, line);
    if (tty) {
      ::tcsetattr(STDIN_FILENO, TCSANOW, &old);
      std::cerr << "\n";
    }
    if (!line.empty() && line.back() == '\r') line.pop_back();
    return line;
  };
  std::string pw = read_line(("password for " + login + ": ").c_str());
  if (tty && read_line("again: ") != pw) throw std::invalid_argument("the two passwords differ");
  if (auto why = PasswordProblem(pw, login)) throw std::invalid_argument(*why);
  return pw;
}

std::string Time(long long s) {
  if (s == 0) return "-";
  std::time_t t = static_cast<std::time_t>(s);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

int RunUserCommand(const std::vector<std::string>& words, std::map<std::string, std::string>& flags,
                   const std::string& home, const std::string& database_url) {
  if (database_url.empty()) throw std::invalid_argument("FLS_DATABASE_URL (or --database-url) is required: accounts live in the database");
  db::DbConfig cfg;
  cfg.url = database_url;
  cfg.pool_size = 1;
  cfg.migrations_dir = home + "/db/migrations";
  db::Database db(cfg);
  db.Migrate();
  const std::string verb = words.empty() ? "" : words[0];
  if (verb == "list") {
    std::vector<db::AuthStore::User> users;
    db.Read([&](db::ResourceStore& st) { users = db::AuthStore(st).ListUsers(); });
    std::cout << "login\trole\tname\tsites\tlocal password\tprovider subject\tstate\tlast login\tpractitioner\n";
    for (const auto& u : users) {
      std::string state = u.disabled ? "disabled" : u.locked_until_s > std::time(nullptr) ? "locked until " + Time(u.locked_until_s) : "active";
      std::cout << u.login << "\t" << u.role << "\t" << u.display_name << "\t" << (u.sites.empty() ? "-" : u.sites) << "\t"
                << (u.password_hash.empty() ? "no" : "yes") << "\t" << (u.oidc_subject.empty() ? "-" : u.oidc_subject)
                << "\t" << state << "\t" << Time(u.last_login_at_s) << "\t" << (u.practitioner.empty() ? "-" : u.practitioner)
                << "\n";
    }
    return 0;
  }
  auto login = NormaliseLogin(flags["login"]);
  if (!login) throw std::invalid_argument("--login: 1-128 letters, digits, '.', '_', '-' or '@'");
  if (verb == "add") {
    db::AuthStore::User u;
    u.login = *login;
    u.display_name = flags.count("name") ? flags["name"] : *login;
    auto role = ParseRole(flags["role"]);
    if (!role) throw std::invalid_argument("--role must be coordinator, quality, admin or ehr");
    u.role = RoleName(*role);
    std::string sites;
    for (char& c : flags["sites"]) {
      if (c == ',') c = ' ';
    }
    std::string cur;
    for (char c : flags["sites"] + " ") {
      if (c != ' ') {
        cur += c;
        continue;
      }
      if (cur.empty()) continue;
      if (cur.rfind("Organization/", 0) != 0 || cur.size() == 13) throw std::invalid_argument("--sites: Organization/id, comma-separated");
      sites += (sites.empty() ? "" : " ") + cur;
      cur.clear();
    }
    u.sites = sites;
    if (*role == Role::kCoordinator && sites.empty()) std::cerr << "note: a coordinator without --sites works for no site\n";
    u.practitioner = flags["practitioner"];
    if (!u.practitioner.empty() && !IsPractitionerReference(u.practitioner)) {
      throw std::invalid_argument("--practitioner: Practitioner/id, the Practitioner this person is (e.g. the nurse)");
    }
    u.oidc_issuer = flags.count("oidc-subject") ? flags["oidc-issuer"] : "";
    u.oidc_subject = flags["oidc-subject"];
    if (!u.oidc_subject.empty() && u.oidc_issuer.empty()) {
      throw std::invalid_argument("--oidc-subject needs --oidc-issuer (or FLS_OIDC_ISSUER)");
    }
    const bool no_password = flags.count("no-password") > 0;
    if (no_password && u.oidc_subject.empty()) {
      std::cerr << "note: without a password nor --oidc-subject, the account logs in only through the provider's "
                   "role claim matching its login\n";
    }
    if (!no_password) u.password_hash = HashPassword(ReadPassword(*login));
    db.Transact([&](db::ResourceStore& st) { db::AuthStore(st).UpsertUser(u, false); });
    std::cout << "account " << u.login << " (role " << u.role << (sites.empty() ? "" : ", sites " + sites)
              << ") saved; its sessions, if any, ended\n";
    return 0;
  }
  bool found = false;
  if (verb == "passwd") {
    std::optional<db::AuthStore::User> u;
    db.Read([&](db::ResourceStore& st) { u = db::AuthStore(st).FindUser(*login); });
    if (!u) throw std::invalid_argument("no account " + *login);
    u->password_hash = HashPassword(ReadPassword(*login));
    db.Transact([&](db::ResourceStore& st) {
      db::AuthStore(st).UpsertUser(*u, false);
      db::AuthStore(st).Unlock(*login);
    });
    std::cout << "password of " << *login << " changed; its sessions ended\n";
    return 0;
  } else if (verb == "unlock") {
    db.Transact([&](db::ResourceStore& st) { found = db::AuthStore(st).Unlock(*login); });
  } else if (verb == "disable" || verb == "enable") {
    db.Transact([&](db::ResourceStore& st) { found = db::AuthStore(st).SetDisabled(*login, verb == "disable"); });
  } else if (verb == "remove") {
    db.Transact([&](db::ResourceStore& st) { found = db::AuthStore(st).RemoveUser(*login); });
  } else if (verb == "logout") {
    int n = 0;
    db.Transact([&](db::ResourceStore& st) { n = db::AuthStore(st).EndSessionsOf(*login); });
    std::cout << n << " session(s) of " << *login << " ended\n";
    return 0;
  } else {
    throw std::invalid_argument("user add|list|passwd|unlock|disable|enable|remove|logout; see fls-server --help");
  }
  std::cout << (found ? verb + " " + *login + ": done" : "no account " + *login) << "\n";
  return found ? 0 : 1;
}

}  // namespace fls::server
