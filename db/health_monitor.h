#pragma once
// Whether the database answers, known without waiting: a thread pings PostgreSQL every period on
// a connection of its own (never one of the pool's, so a busy pool cannot make /readyz wait or
// fail), and Reachable() reads the last answer. Thread-safe; Stop() (or the destructor) joins.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

namespace fls::db {

class HealthMonitor {
 public:
  // `connect_string` as Database::ConnectString(). Starts the thread at once.
  HealthMonitor(std::string connect_string, std::chrono::milliseconds period);
  ~HealthMonitor();
  HealthMonitor(const HealthMonitor&) = delete;
  HealthMonitor& operator=(const HealthMonitor&) = delete;

  // True when the last ping succeeded, at most four periods ago (a hung ping goes stale).
  bool Reachable() const;
  void Stop();

 private:
  void Run();

  const std::string connect_string_;
  const std::chrono::milliseconds period_;
  std::atomic<bool> ok_{false};
  std::atomic<long long> last_ok_ms_{0};  // steady clock, ms
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;  // guarded by mu_
  std::thread thread_;
};

}  // namespace fls::db
