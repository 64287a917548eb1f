#pragma once
// Request rate and concurrency limits (docs/security.md): a token bucket per client (its client
// id) and per address for requests without a valid token, and a cap on each client's requests in
// flight. Past a limit the answer is 429 with Retry-After, before any work, and an anonymous
// caller's throttled refusals are not recorded one by one (so that nobody can grow the audit
// trail without limit). Safe across threads (one mutex; the table is pruned as it grows).

#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

namespace fls::server {

struct RateLimits {
  double per_second = 0;  // 0: no rate limit
  double burst = 0;       // bucket size (at least per_second)
  int in_flight = 0;      // 0: no concurrency limit
};

class RateLimiter {
 public:
  RateLimiter(RateLimits clients, RateLimits anonymous) : clients_(clients), anonymous_(anonymous) {}

  // Takes one token from `key`'s bucket; false (and the seconds to wait) when it is empty.
  bool Take(const std::string& key, bool anonymous, int64_t now_us, int& retry_after_s);
  // Counts a request in flight for `key`; false when the client is at its cap (nothing counted).
  bool Enter(const std::string& key);
  void Leave(const std::string& key);

 private:
  struct Bucket {
    double tokens = 0;
    int64_t at_us = 0;
  };
  RateLimits clients_, anonymous_;
  std::mutex mu_;
  std::unordered_map<std::string, Bucket> buckets_;
  std::unordered_map<std::string, int> in_flight_;
};

}  // namespace fls::server
