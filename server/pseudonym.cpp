#include "server/pseudonym.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace fls::server {

namespace {

std::string Hex(const unsigned char* p, size_t n) {
  static const char* k = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    out += k[p[i] >> 4];
    out += k[p[i] & 15];
  }
  return out;
}

std::string ReadKey(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

}  // namespace

Pseudonyms::Pseudonyms(const std::string& dir) {
  const std::string path = dir + "/pseudonym.key";
  key_ = ReadKey(path);
  if (key_.empty()) {
    std::filesystem::create_directories(dir);
    unsigned char raw[32];
    if (RAND_bytes(raw, sizeof raw) != 1) throw std::runtime_error("no random bytes for the pseudonym key");
    const std::string text = Hex(raw, sizeof raw) + "\n";
    // Written under a fresh name, then linked to the final one: link never replaces, so of two
    // processes racing, both end with the first one's key.
    const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) throw std::runtime_error("cannot write " + tmp);
    const bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
    ::close(fd);
    if (written) (void)::link(tmp.c_str(), path.c_str());
    ::unlink(tmp.c_str());
    key_ = ReadKey(path);
  }
  if (key_.size() < 32) throw std::runtime_error("the pseudonym key " + path + " is missing or too short");
}

std::string Pseudonyms::Of(std::string_view what) const {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key_.data(), static_cast<int>(key_.size()), reinterpret_cast<const unsigned char*>(what.data()),
       what.size(), mac, &len);
  return "ps-" + Hex(mac, 16);
}

}  // namespace fls::server
