// The extracts' pseudonyms: stable under one deployment's key, different under another's, the key
// made once (0600) and kept.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "server/pseudonym.h"

namespace fls::server {
namespace {

TEST(Pseudonyms, StablePerDeploymentAndUnlinkableAcross) {
  auto base = std::filesystem::temp_directory_path() / ("fls-pseudonym-" + std::to_string(::getpid()));
  std::filesystem::remove_all(base);
  Pseudonyms one((base / "a").string());
  Pseudonyms again((base / "a").string());  // a restart, or a second process: the same key
  Pseudonyms other((base / "b").string());  // another deployment
  const std::string p = one.Of("Patient/123");
  EXPECT_EQ(p.size(), 3u + 32u);
  EXPECT_EQ(p.rfind("ps-", 0), 0u);
  EXPECT_EQ(again.Of("Patient/123"), p);
  EXPECT_NE(other.Of("Patient/123"), p);
  EXPECT_NE(one.Of("Patient/124"), p);
  EXPECT_NE(one.Of("EpisodeOfCare/123"), p);
  EXPECT_EQ(p.find("123"), std::string::npos);
  struct stat st {};
  ASSERT_EQ(::stat((base / "a" / "pseudonym.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::filesystem::remove_all(base);
}

}  // namespace
}  // namespace fls::server
