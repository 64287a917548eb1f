#include "server/config.h"

#include <gtest/gtest.h>

#include <map>
#include <stdexcept>

namespace fls::server {
namespace {

std::map<std::string, std::string> g_env;
const char* FakeEnv(const char* name) {
  auto it = g_env.find(name);
  return it == g_env.end() ? nullptr : it->second.c_str();
}

Config Load(std::vector<const char*> args) {
  args.insert(args.begin(), "fls-server");
  return LoadConfig(static_cast<int>(args.size()), args.data(), FakeEnv);
}

TEST(Config, EnvironmentThenFlags) {
  g_env = {{"FLS_DATABASE_URL", "postgresql://x/db"}, {"FLS_PORT", "9000"}, {"FLS_THREADS", "3"},
           {"FLS_PUBLIC_URL", "https://fls.example.org/fhir/"}};
  Config c = Load({"--port=9100", "--max-body-bytes=4096"});
  EXPECT_EQ(c.port, 9100) << "flags win";
  EXPECT_EQ(c.threads, 3);
  EXPECT_EQ(c.db_pool, 3) << "one database session per worker by default";
  EXPECT_EQ(c.max_body_bytes, 4096u);
  EXPECT_EQ(c.public_url, "https://fls.example.org/fhir") << "trailing slash removed";
  EXPECT_EQ(c.listen, "127.0.0.1");
}

TEST(Config, DefaultsAndValidation) {
  g_env = {{"FLS_DATABASE_URL", "postgresql://x/db"}};
  Config c = Load({});
  EXPECT_EQ(c.port, 8080);
  EXPECT_EQ(c.max_body_bytes, 32u << 20);
  EXPECT_GE(c.threads, 4);
  EXPECT_EQ(c.timezone, "Europe/Paris");
  EXPECT_EQ(c.case_lookback_days, 365);
  EXPECT_EQ(Load({"--timezone=America/Argentina/Buenos_Aires"}).timezone, "America/Argentina/Buenos_Aires");
  for (std::vector<const char*> bad : std::vector<std::vector<const char*>>{
           {"--port=0"}, {"--port=70000"}, {"--port=abc"}, {"--threads=0"}, {"--nope=1"}, {"positional"},
           {"--max-body-bytes=10"}, {"--timezone=../../etc/passwd"}, {"--timezone=Europe/Paris;rm"}}) {
    EXPECT_THROW(Load(bad), std::invalid_argument) << bad[0];
  }
  g_env.clear();
  EXPECT_THROW(Load({}), std::invalid_argument) << "the database URL is required";
}

}  // namespace
}  // namespace fls::server
