#include "server/rate_limit.h"

#include <algorithm>
#include <cmath>

namespace fls::server {

bool RateLimiter::Take(const std::string& key, bool anonymous, int64_t now_us, int& retry_after_s) {
  const RateLimits& l = anonymous ? anonymous_ : clients_;
  if (l.per_second <= 0) return true;
  const double burst = std::max(l.burst, l.per_second);
  std::lock_guard lock(mu_);
  if (buckets_.size() > 100000) {
    // Idle buckets are full again: dropping them changes nothing.
    for (auto it = buckets_.begin(); it != buckets_.end();) {
      double refill = (now_us - it->second.at_us) / 1e6 * l.per_second;
      it = it->second.tokens + refill >= burst ? buckets_.erase(it) : std::next(it);
    }
  }
  auto [it, fresh] = buckets_.try_emplace(key, Bucket{burst, now_us});
  Bucket& b = it->second;
  if (!fresh) {
    b.tokens = std::min(burst, b.tokens + std::max<int64_t>(0, now_us - b.at_us) / 1e6 * l.per_second);
    b.at_us = now_us;
  }
  if (b.tokens >= 1) {
    b.tokens -= 1;
    return true;
  }
  retry_after_s = std::max(1, static_cast<int>(std::ceil((1 - b.tokens) / l.per_second)));
  return false;
}

bool RateLimiter::Enter(const std::string& key) {
  if (clients_.in_flight <= 0) return true;
  std::lock_guard lock(mu_);
  int& n = in_flight_[key];
  if (n >= clients_.in_flight) return false;
  ++n;
  return true;
}

void RateLimiter::Leave(const std::string& key) {
  if (clients_.in_flight <= 0) return;
  std::lock_guard lock(mu_);
  auto it = in_flight_.find(key);
  if (it == in_flight_.end()) return;
  if (--it->second <= 0) in_flight_.erase(it);
}

}  // namespace fls::server
