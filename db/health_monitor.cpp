#include "db/health_monitor.h"

#include <libpq-fe.h>

#include <memory>

namespace fls::db {

namespace {
long long NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
struct ConnCloser {
  void operator()(PGconn* c) const { PQfinish(c); }
};
}  // namespace

namespace {
// TCP keepalives and a user timeout: a ping on a connection whose peer vanished (a failover, a
// cable) fails within seconds instead of waiting on the kernel's retransmissions, so Stop()
// never waits long and /readyz turns not-ready.
std::string WithKeepalives(const std::string& conninfo) {
  bool url = conninfo.rfind("postgresql://", 0) == 0 || conninfo.rfind("postgres://", 0) == 0;
  if (url) {
    return conninfo + (conninfo.find('?') == std::string::npos ? "?" : "&") +
           "keepalives=1&keepalives_idle=5&keepalives_interval=2&keepalives_count=2&tcp_user_"
           "timeout=5000";
  }
  return conninfo +
         " keepalives=1 keepalives_idle=5 keepalives_interval=2 keepalives_count=2 "
         "tcp_user_timeout=5000";
}
}  // namespace

HealthMonitor::HealthMonitor(std::string connect_string, std::chrono::milliseconds period)
    : connect_string_(WithKeepalives(connect_string)),
      period_(period),
      thread_([this] { Run(); }) {}

HealthMonitor::~HealthMonitor() { Stop(); }

void HealthMonitor::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool HealthMonitor::Reachable() const {
  return ok_.load() && NowMs() - last_ok_ms_.load() <= 4 * period_.count();
}

// libpq directly: one tiny statement on one connection, reconnected when it breaks.
void HealthMonitor::Run() {
  std::unique_ptr<PGconn, ConnCloser> conn;
  std::unique_lock lock(mu_);
  while (!stop_) {
    lock.unlock();
    if (!conn || PQstatus(conn.get()) != CONNECTION_OK)
      conn.reset(PQconnectdb(connect_string_.c_str()));
    bool ok = false;
    if (PQstatus(conn.get()) == CONNECTION_OK) {
      PGresult* r = PQexec(conn.get(), "SELECT 1");
      ok = PQresultStatus(r) == PGRES_TUPLES_OK;
      PQclear(r);
      if (!ok) conn.reset();
    } else {
      conn.reset();
    }
    ok_ = ok;
    if (ok) last_ok_ms_ = NowMs();
    lock.lock();
    cv_.wait_for(lock, period_, [this] { return stop_; });
  }
}

}  // namespace fls::db
