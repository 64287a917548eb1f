// What an attacker controls in access control: bearer tokens (JWS parsing, then the server's
// verification with its own keys), JWKS documents and JWKs, client assertions at the token
// endpoint, SMART scopes, url-encoded forms.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>

#include "fhir/error.h"
#include "server/auth.h"
#include "server/jose.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace fls::server;
  struct Fixture {
    std::string dir;
    std::unique_ptr<SigningKeys> keys;
    std::unique_ptr<Authenticator> auth;
    std::unique_ptr<ClientRegistry> clients;
    Fixture() {
      dir = (std::filesystem::temp_directory_path() / ("fls-fuzz-jwt-" + std::to_string(::getpid()))).string();
      keys = std::make_unique<SigningKeys>(dir);
      auth = std::make_unique<Authenticator>(*keys, "fls-server");
      RegisteredClient c;
      c.client_id = "fuzz";
      c.role = Role::kEhr;
      auto k = jose::Key::Generate("EC", "P-384", "fuzz-1");
      c.jwks_json = jose::JwksJson({&k});
      ClientRegistry::Save(dir + "/clients.json", c);
      clients = std::make_unique<ClientRegistry>(dir + "/clients.json");
    }
  };
  static Fixture f;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)jose::ParseCompact(text);
  (void)jose::Base64UrlDecode(text);
  try {
    (void)jose::ParseJwks(text);
  } catch (const std::invalid_argument&) {
  }
  try {
    (void)jose::Key::FromJwk(text);
  } catch (const std::invalid_argument&) {
  }
  try {
    (void)f.auth->Authenticate(text, 1'800'000'000);
  } catch (const fls::fhir::FhirError&) {
  }
  (void)CheckClientAssertion(*f.clients, text, {"http://127.0.0.1/auth/token"}, 1'800'000'000);
  (void)ParseScopes(text);
  try {
    (void)ParseForm(text);
  } catch (const std::invalid_argument&) {
  }
  return 0;
}
