#pragma once
// The operator's commands, run by `fls-server client ...`, `fls-server token`, `fls-server keys
// rotate` (and `./deploy/fls client ...`): they work on the auth folder and the clients file
// directly, with no server running.

#include <map>
#include <string>
#include <vector>

#include "server/auth.h"

namespace fls::server {

// True when argv[1] names an operator command; `exit_code` is then what main returns.
bool RunAdminCommand(int argc, const char* const* argv, const char* (*env)(const char*), int& exit_code);

// `fls-server user add|list|passwd|unlock|disable|enable|remove|logout` (server/user_cli.cpp):
// people's local accounts, in the database (migrated first). Returns the exit code; throws
// std::invalid_argument on bad flags.
int RunUserCommand(const std::vector<std::string>& words, std::map<std::string, std::string>& flags,
                   const std::string& home, const std::string& database_url);

struct AuthPaths {
  std::string auth_dir, clients_file;
};
// FLS_AUTH_DIR / FLS_CLIENTS_FILE with their defaults under `home`.
AuthPaths ResolveAuthPaths(const std::string& home, const std::string& auth_dir, const std::string& clients_file);

// The local administrator client of a development server (`./deploy/fls run`): registered on the
// first call (an EC P-384 key pair; the private key in AUTH_DIR/local-admin.key.pem, mode 0600,
// for the SMART flow), then a token for it written to `token_file` (mode 0600).
void WriteDevToken(const AuthPaths& paths, const SigningKeys& keys, const Authenticator& auth,
                   const std::string& token_file, int lifetime_s);

}  // namespace fls::server
