#include "server/admin_cli.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

namespace fls::server {

namespace {

int64_t NowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::invalid_argument("cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteSecret(const std::string& path, const std::string& text) {
  // 0600 from creation, a fresh name each time (O_EXCL), no symbolic link followed.
  std::string tmp = path + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(NowSeconds());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) throw std::runtime_error("cannot write " + tmp);
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n <= 0) {
      ::close(fd);
      ::unlink(tmp.c_str());
      throw std::runtime_error("cannot write " + tmp);
    }
    done += static_cast<size_t>(n);
  }
  ::fsync(fd);
  ::close(fd);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw std::runtime_error("cannot write " + path);
}

bool ValidClientId(const std::string& id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) return false;
  }
  return true;
}

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == sep) {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

}  // namespace

AuthPaths ResolveAuthPaths(const std::string& home, const std::string& auth_dir, const std::string& clients_file) {
  AuthPaths p;
  p.auth_dir = auth_dir.empty() ? home + "/var/auth" : auth_dir;
  p.clients_file = clients_file.empty() ? p.auth_dir + "/clients.json" : clients_file;
  return p;
}

void WriteDevToken(const AuthPaths& paths, const SigningKeys& keys, const Authenticator& auth,
                   const std::string& token_file, int lifetime_s) {
  (void)keys;
  std::shared_ptr<const RegisteredClient> admin;
  for (const auto& c : ClientRegistry::Load(paths.clients_file)) {
    if (c.client_id == "local-admin") admin = std::make_shared<RegisteredClient>(c);
  }
  if (!admin) {
    jose::Key key = jose::Key::Generate("EC", "P-384", "local-admin-1");
    std::filesystem::create_directories(paths.auth_dir);
    WriteSecret(paths.auth_dir + "/local-admin.key.pem", key.PrivatePem());
    RegisteredClient c;
    c.client_id = "local-admin";
    c.name = "the local administrator of this server";
    c.role = Role::kAdmin;
    c.jwks_json = jose::JwksJson({&key});
    c.keys = std::make_shared<jose::KeySet>(jose::ParseJwks(c.jwks_json));
    ClientRegistry::Save(paths.clients_file, c);
    admin = std::make_shared<RegisteredClient>(c);
  }
  std::string token = auth.Issue(*admin, ParseScopes(DefaultScopes(Role::kAdmin)), NowSeconds(), lifetime_s);
  std::filesystem::path dir = std::filesystem::path(token_file).parent_path();
  if (!dir.empty()) std::filesystem::create_directories(dir);
  WriteSecret(token_file, token + "\n");
}

bool RunAdminCommand(int argc, const char* const* argv, const char* (*env)(const char*), int& exit_code) {
  if (argc < 2) return false;
  std::string cmd = argv[1];
  if (cmd != "client" && cmd != "token" && cmd != "keys" && cmd != "user") return false;
  exit_code = 2;
  std::vector<std::string> words;
  std::map<std::string, std::string> flags;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) == 0) {
      auto eq = a.find('=');
      if (a == "--no-password") {
        flags["no-password"] = "1";
      } else if (eq != std::string::npos) {
        flags[a.substr(2, eq - 2)] = a.substr(eq + 1);
      } else if (i + 1 < argc) {
        flags[a.substr(2)] = argv[++i];
      } else {
        std::cerr << "flag " << a << " needs a value\n";
        return true;
      }
    } else {
      words.push_back(a);
    }
  }
  auto envs = [&](const char* n) { const char* v = env(n); return std::string(v ? v : ""); };
  std::string home = envs("FLS_HOME").empty() ? FLS_HOME_DEFAULT : envs("FLS_HOME");
  AuthPaths paths = ResolveAuthPaths(home, flags.count("auth-dir") ? flags["auth-dir"] : envs("FLS_AUTH_DIR"),
                                     flags.count("clients-file") ? flags["clients-file"] : envs("FLS_CLIENTS_FILE"));
  try {
    if (cmd == "user") {
      std::string url = flags.count("database-url") ? flags["database-url"] : envs("FLS_DATABASE_URL");
      if (!flags.count("oidc-issuer")) flags["oidc-issuer"] = envs("FLS_OIDC_ISSUER");
      exit_code = RunUserCommand(words, flags, home, url);
      return true;
    }
    if (cmd == "client" && !words.empty() && words[0] == "add") {
      RegisteredClient c;
      c.client_id = flags["name"];
      if (!ValidClientId(c.client_id)) throw std::invalid_argument("--name: 1-64 letters, digits, '.', '-' or '_'");
      auto role = ParseRole(flags["role"]);
      if (!role) throw std::invalid_argument("--role must be ehr, coordinator, quality or admin");
      c.role = *role;
      c.name = flags.count("description") ? flags["description"] : c.client_id;
      if (flags["jwks"].empty()) throw std::invalid_argument("--jwks FILE is required (the client's public keys)");
      c.jwks_json = ReadAll(flags["jwks"]);
      auto set = jose::ParseJwks(c.jwks_json);
      if (set.keys.empty()) throw std::invalid_argument("no usable key in " + flags["jwks"]);
      for (const auto& k : set.keys) {
        if (k->has_private()) throw std::invalid_argument("the JWKS holds a private key: register the public keys only");
      }
      for (const auto& why : set.skipped) std::cerr << "skipped a key: " << why << "\n";
      std::vector<const jose::Key*> pub;
      for (const auto& k : set.keys) pub.push_back(k.get());
      c.jwks_json = jose::JwksJson(pub);
      c.sites = Split(flags["sites"], ',');
      for (const auto& s : c.sites) {
        if (s.rfind("Organization/", 0) != 0) throw std::invalid_argument("--sites: Organization/id, comma-separated");
      }
      if (c.role == Role::kCoordinator && c.sites.empty()) {
        std::cerr << "note: a coordinator without --sites works for no site\n";
      }
      c.scope = flags["scope"];
      if (!c.scope.empty()) {
        std::vector<std::string> refused;
        ParseScopes(c.scope, &refused);
        if (!refused.empty()) throw std::invalid_argument("--scope: not a SMART scope: " + refused.front());
      }
      std::filesystem::create_directories(std::filesystem::path(paths.clients_file).parent_path());
      ClientRegistry::Save(paths.clients_file, c);
      std::cout << "registered client " << c.client_id << " (role " << RoleName(c.role) << ", " << set.keys.size()
                << " key(s)) in " << paths.clients_file << "\n"
                << "it gets tokens at POST {server}/auth/token (SMART Backend Services); a running server sees it "
                   "within a second\n";
      exit_code = 0;
    } else if (cmd == "client" && !words.empty() && words[0] == "list") {
      for (const auto& c : ClientRegistry::Load(paths.clients_file)) {
        std::cout << c.client_id << "\t" << RoleName(c.role) << "\t" << (c.keys ? c.keys->keys.size() : 0) << " key(s)";
        for (const auto& s : c.sites) std::cout << "\t" << s;
        std::cout << "\n";
      }
      exit_code = 0;
    } else if (cmd == "client" && !words.empty() && words[0] == "remove") {
      bool removed = ClientRegistry::Remove(paths.clients_file, flags["name"]);
      std::cout << (removed ? "removed " : "no such client: ") << flags["name"] << "\n";
      exit_code = removed ? 0 : 1;
    } else if (cmd == "token") {
      // Minted with the server's signing key: for the operator of this machine, who can read it.
      SigningKeys keys(paths.auth_dir);
      std::string issuer = flags.count("public-url") ? flags["public-url"] : envs("FLS_PUBLIC_URL");
      while (!issuer.empty() && issuer.back() == '/') issuer.pop_back();  // as server/config.cpp does
      if (issuer.empty()) issuer = "fls-server";
      Authenticator auth(keys, issuer);
      std::string id = flags.count("client") ? flags["client"] : "local-admin";
      std::shared_ptr<const RegisteredClient> client;
      for (const auto& c : ClientRegistry::Load(paths.clients_file)) {
        if (c.client_id == id) client = std::make_shared<RegisteredClient>(c);
      }
      if (!client) throw std::invalid_argument("no client " + id + " in " + paths.clients_file);
      int lifetime = flags.count("lifetime") ? std::stoi(flags["lifetime"]) : 300;
      if (lifetime < 10 || lifetime > 300) throw std::invalid_argument("--lifetime: 10 to 300 seconds");
      std::cout << auth.Issue(*client, ParseScopes(client->scope.empty() ? DefaultScopes(client->role) : client->scope),
                              NowSeconds(), lifetime)
                << "\n";
      exit_code = 0;
    } else if (cmd == "keys" && !words.empty() && words[0] == "rotate") {
      std::string kid = SigningKeys::Rotate(paths.auth_dir);
      std::cout << "new signing key " << kid << " in " << paths.auth_dir
                << "; restart the servers to sign with it (tokens signed before stay valid until they expire;"
                   " delete the old signing-*.pem after that)\n";
      exit_code = 0;
    } else {
      std::cerr << "unknown command; see fls-server --help\n";
    }
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    exit_code = 2;
  }
  return true;
}

}  // namespace fls::server
