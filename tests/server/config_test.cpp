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

TEST(Config, ListenerLimitsHaveSafeDefaultsAndBounds) {
  g_env = {{"FLS_DATABASE_URL", "postgresql://x/db"}, {"FLS_CORS_ORIGINS", "https://app.example.org"}};
  Config c = Load({});
  EXPECT_EQ(c.max_header_bytes, 64u << 10);
  EXPECT_EQ(c.max_url_bytes, 16u << 10);
  EXPECT_EQ(c.header_timeout_ms, 10000);
  EXPECT_EQ(c.idle_timeout_ms, 60000);
  EXPECT_EQ(c.max_connections, 2048);
  EXPECT_EQ(c.max_body_bytes_total, 512u << 20);
  EXPECT_GE(c.io_threads, 1);
  EXPECT_LE(c.io_threads, 4);
  EXPECT_EQ(c.cors_origins, "https://app.example.org");
  EXPECT_EQ(c.max_sort_keys, 8);
  EXPECT_EQ(c.max_include, 1000);
  EXPECT_EQ(c.transaction_timeout_ms, 120000);
  Config small = Load({"--max-header-bytes=4096", "--max-url-bytes=8192", "--idle-timeout-ms=500"});
  EXPECT_EQ(small.max_url_bytes, 4096u) << "a URL never exceeds the header limit it is part of";
  EXPECT_EQ(small.idle_timeout_ms, 500);
  for (std::vector<const char*> bad : std::vector<std::vector<const char*>>{
           {"--max-header-bytes=100"}, {"--header-timeout-ms=0"}, {"--max-connections=0"}, {"--io-threads=0"},
           {"--idle-timeout-ms=-5"}, {"--max-sort-keys=0"}, {"--transaction-timeout-ms=abc"}}) {
    EXPECT_THROW(Load(bad), std::invalid_argument) << bad[0];
  }
}

}  // namespace
}  // namespace fls::server
