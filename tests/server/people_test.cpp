// People's logins, the pure parts: Argon2id hashes, the password policy, login names, cookies,
// the `next` of a login, and the ID token checks of the provider's login (every refusal).
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "server/auth.h"
#include "server/jose.h"
#include "server/login_routes.h"
#include "server/people.h"

namespace fls::server {
namespace {

TEST(Passwords, Argon2idHashesVerifyOnlyTheirPassword) {
  std::string h = HashPassword("correct horse battery");
  EXPECT_EQ(h.rfind("$argon2id$v=19$m=65536,t=2,p=1$", 0), 0u) << h;
  EXPECT_TRUE(VerifyPassword(h, "correct horse battery"));
  EXPECT_FALSE(VerifyPassword(h, "correct horse batterY"));
  EXPECT_FALSE(VerifyPassword(h, ""));
  EXPECT_FALSE(VerifyPassword("", "correct horse battery"));
  EXPECT_FALSE(VerifyPassword("$argon2id$garbage", "correct horse battery"));
  EXPECT_NE(HashPassword("correct horse battery"), h) << "each hash has its own salt";
}

TEST(Passwords, ThePolicy) {
  struct Case {
    std::string password, login;
    bool ok;
  };
  const Case cases[] = {
      {"abcdefghijkl", "nurse", true},                         // 12 characters
      {"abcdefghijk", "nurse", false},                         // 11
      {"éééééééééééé", "nurse", true},                         // 12 characters, 24 bytes
      {"ééééééééééé", "nurse", false},                         // 11 characters, 22 bytes
      {std::string(256, 'x'), "nurse", true},
      {std::string(257, 'x'), "nurse", false},
      {"my nurse password", "nurse", false},                   // holds the login
      {"MY NURSE PASSWORD", "nurse", false},
      {std::string("abcdefghijk\xff"), "nurse", false},        // not UTF-8
      {std::string("abcdefghijkl\xc3"), "nurse", false},       // truncated sequence
  };
  for (const auto& c : cases) EXPECT_EQ(!PasswordProblem(c.password, c.login).has_value(), c.ok) << c.password;
}

TEST(Logins, NormalisedOrRefused) {
  EXPECT_EQ(NormaliseLogin("Nurse.A"), "nurse.a");
  EXPECT_EQ(NormaliseLogin("c.martin@chu-lyon.fr"), "c.martin@chu-lyon.fr");
  EXPECT_EQ(NormaliseLogin("a_b-c"), "a_b-c");
  for (const char* bad : {"", "a b", "a/b", "a'b", "é", "a\nb"}) EXPECT_FALSE(NormaliseLogin(bad)) << bad;
  EXPECT_FALSE(NormaliseLogin(std::string(129, 'a')));
  EXPECT_TRUE(NormaliseLogin(std::string(128, 'a')));
}

TEST(Cookies, ValuesByName) {
  EXPECT_EQ(CookieValue("fls-session=abc", "fls-session"), "abc");
  EXPECT_EQ(CookieValue("a=1; fls-session=abc; b=2", "fls-session"), "abc");
  EXPECT_EQ(CookieValue("a=1;fls-session=\"abc\"", "fls-session"), "abc");
  EXPECT_EQ(CookieValue("xfls-session=abc", "fls-session"), std::nullopt);
  EXPECT_EQ(CookieValue("fls-session-old=abc", "fls-session"), std::nullopt);
  EXPECT_EQ(CookieValue("", "fls-session"), std::nullopt);
  EXPECT_EQ(CookieValue("fls-session=", "fls-session"), "");
}

TEST(Logins, TheNextPlaceIsOnThisServer) {
  EXPECT_EQ(SafeNextPath("/app/worklist?site=a"), "/app/worklist?site=a");
  EXPECT_EQ(SafeNextPath("/"), "/");
  for (const char* bad : {"", "//evil.example", "/\\evil.example", "https://evil.example/", "app", "/a b", "/a\\b",
                          "javascript:alert(1)", "/\x01"}) {
    EXPECT_EQ(SafeNextPath(bad), "/login") << bad;
  }
  EXPECT_EQ(SafeNextPath("/" + std::string(600, 'a')), "/login");
}

TEST(Sessions, ScopesAreTheRolesOwnInTheUserContext) {
  auto scopes = SessionScopes(Role::kQuality);
  ASSERT_FALSE(scopes.empty());
  for (const auto& s : scopes) EXPECT_EQ(s.context, "user") << s.text;
  Principal p;
  p.role = Role::kQuality;
  p.scopes = scopes;
  EXPECT_FALSE(p.May("Patient", kRead));
  EXPECT_TRUE(p.May("Measure", kRead));
}

// ID tokens of the provider's login.
class IdTokens : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("fls-idtoken-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    std::ofstream((dir_ / "idp.json").string()) << jose::JwksJson({&idp_, &rsa_});
    keys_ = std::make_unique<SigningKeys>(dir_.string());
    OidcConfig oidc;
    oidc.issuer = "https://idp.chu.example";
    oidc.jwks_file = (dir_ / "idp.json").string();
    oidc.audience = "fls-api";
    auth_ = std::make_unique<Authenticator>(*keys_, "fls-server", oidc);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Claims(const std::string& extra = "", const std::string& aud = "\"fls-web\"", int64_t exp_in = 300,
                     int64_t iat_in = 0, const std::string& iss = "https://idp.chu.example",
                     const std::string& nonce = "n-1") {
    return "{\"iss\":\"" + iss + "\",\"aud\":" + aud + ",\"sub\":\"u-9\",\"exp\":" + std::to_string(now_ + exp_in) +
           ",\"iat\":" + std::to_string(now_ + iat_in) + ",\"nonce\":\"" + nonce + "\"" + extra + "}";
  }
  bool Accepted(const std::string& token) {
    try {
      auth_->VerifyIdToken(token, "fls-web", "n-1", now_);
      return true;
    } catch (const std::invalid_argument&) {
      return false;
    }
  }

  int64_t now_ = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  jose::Key idp_ = jose::Key::Generate("EC", "P-256", "idp-1");
  jose::Key rsa_ = jose::Key::Generate("RSA", "2048", "idp-rsa");
  jose::Key stranger_ = jose::Key::Generate("EC", "P-256", "idp-1");  // same kid, other key
  std::filesystem::path dir_;
  std::unique_ptr<SigningKeys> keys_;
  std::unique_ptr<Authenticator> auth_;
};

TEST_F(IdTokens, AGoodOneGivesTheUserRoleAndSites) {
  auto t = auth_->VerifyIdToken(
      jose::SignCompact(idp_, "ES256",
                        Claims(R"(,"preferred_username":"c.martin","name":"Claire Martin","fls_role":"coordinator","fls_sites":["Organization/a"])")),
      "fls-web", "n-1", now_);
  EXPECT_EQ(t.subject, "u-9");
  EXPECT_EQ(t.login, "c.martin");
  EXPECT_EQ(t.name, "Claire Martin");
  ASSERT_TRUE(t.role);
  EXPECT_EQ(*t.role, Role::kCoordinator);
  ASSERT_EQ(t.sites.size(), 1u);
  EXPECT_TRUE(Accepted(jose::SignCompact(rsa_, "RS256", Claims())));
  EXPECT_TRUE(Accepted(jose::SignCompact(idp_, "ES256", Claims(R"(,"azp":"fls-web")", R"(["fls-web","other"])"))));
}

TEST_F(IdTokens, EveryRefusal) {
  auto es = [&](const std::string& claims) { return jose::SignCompact(idp_, "ES256", claims); };
  const std::string good = es(Claims());
  const std::string header_none = jose::Base64UrlEncode(R"({"alg":"none","kid":"idp-1"})");
  const std::string payload = jose::Base64UrlEncode(Claims());
  struct Case {
    const char* why;
    std::string token;
  };
  const Case cases[] = {
      {"another issuer", es(Claims("", "\"fls-web\"", 300, 0, "https://evil.example"))},
      {"another audience", es(Claims("", "\"other-app\""))},
      {"several audiences without azp", es(Claims("", R"(["fls-web","other"])"))},
      {"several audiences, azp another", es(Claims(R"(,"azp":"other")", R"(["fls-web","other"])"))},
      {"expired", es(Claims("", "\"fls-web\"", -1))},
      {"issued in the future", es(Claims("", "\"fls-web\"", 600, 300))},
      {"another nonce", es(Claims("", "\"fls-web\"", 300, 0, "https://idp.chu.example", "n-2"))},
      {"no nonce", es(R"({"iss":"https://idp.chu.example","aud":"fls-web","sub":"u","exp":)" + std::to_string(now_ + 60) +
                      ",\"iat\":" + std::to_string(now_) + "}")},
      {"no sub", es(R"({"iss":"https://idp.chu.example","aud":"fls-web","nonce":"n-1","exp":)" + std::to_string(now_ + 60) +
                    ",\"iat\":" + std::to_string(now_) + "}")},
      {"signed by another key with the same kid", jose::SignCompact(stranger_, "ES256", Claims())},
      {"alg none", header_none + "." + payload + "."},
      {"an RSA key's token whose header says ES256", [&] {
         std::string t = jose::SignCompact(rsa_, "RS256", Claims());
         return jose::Base64UrlEncode(R"({"alg":"ES256","kid":"idp-rsa"})") + t.substr(t.find('.'));
       }()},
      {"HS256 with the public key as the secret", [&] {
         return jose::Base64UrlEncode(R"({"alg":"HS256","kid":"idp-1"})") + "." + payload + ".c2lnbmF0dXJl";
       }()},
      {"tampered payload", good.substr(0, good.find('.') + 1) + jose::Base64UrlEncode(Claims(R"(,"fls_role":"admin")")) +
                               good.substr(good.rfind('.'))},
      {"not a JWS", "not-a-token"},
  };
  for (const auto& c : cases) EXPECT_FALSE(Accepted(c.token)) << c.why;
  EXPECT_TRUE(Accepted(good));
}

}  // namespace
}  // namespace fls::server
