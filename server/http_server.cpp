#include "server/http_server.h"

#include <utility>  // before asio: boost 1.74 awaitable.hpp uses std::exchange under C++20

#include <cpprest/http_listener.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "fhir/error.h"
#include "fhir/fhir_service.h"
#include "fhir/fhir_date.h"
#include "fhir/text.h"
#include "server/log.h"

namespace fls::server {

namespace http = web::http;

namespace {

std::string SafeRequestId(const http::http_headers& headers) {
  auto it = headers.find("X-Request-Id");
  if (it != headers.end()) {
    const std::string& v = it->second;
    bool ok = !v.empty() && v.size() <= 64;
    for (char c : v) {
      ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_' || c == '.');
    }
    if (ok) return v;
  }
  return fhir::NewUuid();
}

bool SafeHost(const std::string& host) {
  if (host.empty() || host.size() > 255) return false;
  for (char c : host) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '-' || c == ':' || c == '[' || c == ']';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

HttpResponse HttpServer::ErrorResponse(const std::exception_ptr& error, const std::string& request_id) {
  using fhir::ErrorCode;
  HttpResponse resp;
  auto from = [&](const fhir::FhirError& e) {
    resp.status = fhir::Describe(e.code()).http_status;
    resp.body = fhir::OperationOutcomeJson(e);
    resp.headers = e.headers;
    bool has_retry = false;
    for (const auto& h : resp.headers) has_retry = has_retry || h.first == "Retry-After";
    if (e.code() == ErrorCode::kServiceUnavailable && !has_retry) resp.headers.emplace_back("Retry-After", "5");
  };
  try {
    std::rethrow_exception(error);
  } catch (const fhir::FhirError& e) {
    from(e);
  } catch (const db::DbError& e) {
    Log(e.kind() == db::DbErrorKind::kOther ? "error" : "warn", "database error",
        {{"rid", request_id}, {"sqlstate", e.sqlstate()}, {"error", e.what()}});
    fhir::FhirError mapped = fhir::FromDbError(e, request_id);
    resp.status = fhir::Describe(mapped.code()).http_status;
    resp.body = fhir::OperationOutcomeJson(mapped);
    resp.headers = mapped.headers;
  } catch (const std::bad_alloc&) {
    Log("error", "out of memory", {{"rid", request_id}});
    from(fhir::FhirError(ErrorCode::kPayloadTooLarge, "the request needs more memory than the server allows"));
  } catch (const std::exception& e) {
    Log("error", "unhandled exception", {{"rid", request_id}, {"error", e.what()}});
    from(fhir::FhirError(ErrorCode::kInternal, "internal error (request " + request_id + ")"));
  } catch (...) {
    Log("error", "unhandled exception", {{"rid", request_id}});
    from(fhir::FhirError(ErrorCode::kInternal, "internal error (request " + request_id + ")"));
  }
  return resp;
}

// Threads: cpprest's pplx pool does the socket I/O and must never block (a blocking wait on a
// pplx thread for body bytes that another pplx task delivers deadlocks the pool once every thread
// waits). The body is therefore read with continuations, and the request, which blocks on the
// database, runs on a fixed pool of worker threads (Config::threads, one per database session).
class WorkerPool {
 public:
  explicit WorkerPool(int threads) {
    for (int i = 0; i < threads; ++i) workers_.emplace_back([this] { Run(); });
  }
  ~WorkerPool() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }
  void Post(std::function<void()> job) {
    {
      std::lock_guard lock(mu_);
      jobs_.push_back(std::move(job));
    }
    cv_.notify_one();
  }

 private:
  void Run() {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [this] { return stop_ || !jobs_.empty(); });
        if (jobs_.empty()) return;
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      job();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;  // guarded by mu_
  bool stop_ = false;                       // guarded by mu_
  std::vector<std::thread> workers_;
};

class HttpServer::Impl {
 public:
  Impl(const Config& config, const Router& router, const db::Database& db)
      : config_(config), router_(router), db_(db), workers_(config.threads) {}

  void Start() {
    std::string url = "http://" + config_.listen + ":" + std::to_string(config_.port);
    http::experimental::listener::http_listener_config lc;
    lc.set_timeout(std::chrono::seconds(120));
    listener_ = std::make_unique<http::experimental::listener::http_listener>(url, lc);
    listener_->support([this](http::http_request req) { Accept(std::move(req)); });
    listener_->open().wait();
  }

  void Drain() {
    draining_ = true;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(config_.shutdown_grace_s);
    while (in_flight_.load() > 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (listener_) listener_->close().wait();
  }

 private:
  struct Pending {
    http::http_request req;
    HttpRequest r;
    std::string path;
    std::chrono::steady_clock::time_point started;
    concurrency::streams::container_buffer<std::string> buf;
    size_t total = 0;
  };

  // On a pplx thread: everything that needs no database, then the body, read asynchronously.
  void Accept(http::http_request req) {
    ++in_flight_;
    auto p = std::make_shared<Pending>();
    p->started = std::chrono::steady_clock::now();
    p->req = req;
    p->r.request_id = SafeRequestId(req.headers());
    p->r.method = req.method();
    try {
      p->path = req.relative_uri().path();
      if (draining_) throw fhir::FhirError(fhir::ErrorCode::kServiceUnavailable, "the server is shutting down");
      if (req.headers().has("Content-Length")) {
        auto len = req.headers().content_length();
        if (len > config_.max_body_bytes) {
          throw fhir::FhirError(fhir::ErrorCode::kPayloadTooLarge,
                                "the body is " + std::to_string(len) + " bytes; the limit is " +
                                    std::to_string(config_.max_body_bytes));
        }
      }
    } catch (...) {
      StopReading(p);
      Finish(p, ErrorResponse(std::current_exception(), p->r.request_id));
      return;
    }
    ReadMore(p);
  }

  // cpprest sends a response only once the whole request body has arrived (it drains it into
  // memory). Closing the body's buffer with an error makes it stop there: the response goes out
  // at once, then the connection closes (the 413 carries Connection: close).
  static void StopReading(const std::shared_ptr<Pending>& p) {
    try {
      auto buf = p->req.body().streambuf();
      buf.close(std::ios_base::out, std::make_exception_ptr(std::runtime_error("request body refused")))
          .then([](pplx::task<void> t) {
            try {
              t.get();
            } catch (...) {
            }
          });
    } catch (...) {
    }
  }

  void ReadMore(const std::shared_ptr<Pending>& p) {
    auto stream = p->req.body();
    if (!stream.is_valid()) {
      workers_.Post([this, p] { Process(p); });
      return;
    }
    stream.read(p->buf, 64 * 1024).then([this, p](pplx::task<size_t> t) {
      size_t n = 0;
      try {
        n = t.get();
      } catch (...) {
        Finish(p, ErrorResponse(std::make_exception_ptr(fhir::FhirError(fhir::ErrorCode::kBadRequest,
                                                                          "the body could not be read")),
                                p->r.request_id));
        return;
      }
      if (n == 0) {
        // The buffer's string may have grown past what was written: keep the bytes read.
        p->r.body = std::move(p->buf.collection());
        p->r.body.resize(p->total);
        workers_.Post([this, p] { Process(p); });
        return;
      }
      p->total += n;
      if (p->total > config_.max_body_bytes) {
        StopReading(p);
        Finish(p, ErrorResponse(std::make_exception_ptr(fhir::FhirError(
                                    fhir::ErrorCode::kPayloadTooLarge,
                                    "the body is larger than " + std::to_string(config_.max_body_bytes) + " bytes")),
                                p->r.request_id));
        return;
      }
      ReadMore(p);
    });
  }

  // On a worker thread: routing and the use case (which may block on the database).
  void Process(const std::shared_ptr<Pending>& p) {
    HttpRequest& r = p->r;
    HttpResponse resp;
    try {
      for (const auto& [k, v] : p->req.headers()) {
        std::string key = k;
        for (auto& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        r.headers[key] = v;
      }
      const std::string& raw_path = p->path;
      size_t start = 1;
      while (start <= raw_path.size() && raw_path.size() > 1) {
        size_t slash = raw_path.find('/', start);
        if (slash == std::string::npos) slash = raw_path.size();
        auto seg = fhir::PercentDecode(std::string_view(raw_path).substr(start, slash - start), false);
        if (!seg) throw fhir::FhirError(fhir::ErrorCode::kBadRequest, "the URL path is not valid UTF-8");
        r.segments.push_back(*seg);
        start = slash + 1;
      }
      while (!r.segments.empty() && r.segments.back().empty()) r.segments.pop_back();
      r.raw_query = p->req.relative_uri().query();
      if (!config_.public_url.empty()) {
        r.base_url = config_.public_url;
      } else {
        auto host = r.headers.find("host");
        r.base_url = "http://" + (host != r.headers.end() && SafeHost(host->second)
                                      ? host->second
                                      : config_.listen + ":" + std::to_string(config_.port));
      }
      bool is_probe = r.segments.size() == 1 && (r.segments[0] == "healthz" || r.segments[0] == "readyz");
      if (!is_probe && !db_.migrated()) {
        throw fhir::FhirError(fhir::ErrorCode::kServiceUnavailable, "the database is not ready yet; retry later");
      }
      resp = router_.Dispatch(r);
    } catch (...) {
      resp = ErrorResponse(std::current_exception(), r.request_id);
    }
    Finish(p, std::move(resp));
  }

  void Finish(const std::shared_ptr<Pending>& p, HttpResponse resp) {
    http::http_response out(static_cast<http::status_code>(resp.status));
    for (const auto& [k, v] : resp.headers) out.headers().add(k, v);
    out.headers().add("X-Request-Id", p->r.request_id);
    if (resp.status == 413 || draining_) out.headers().add("Connection", "close");
    if (!resp.body.empty()) out.set_body(std::move(resp.body), resp.content_type);
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - p->started).count();
    Log(resp.status >= 500 ? "error" : "info", "request",
        {{"rid", p->r.request_id}, {"method", p->r.method}, {"path", p->path.substr(0, 200)},
         {"status", std::to_string(resp.status)}, {"ms", std::to_string(ms).substr(0, 8)}});
    // Observe the reply's outcome: an unobserved pplx exception terminates the process
    // (cpp-stack.md pitfall 4).
    // The request counts as in flight until its response is written, so that Drain() does not
    // close the listener under a response still being sent.
    p->req.reply(out).then([this](pplx::task<void> t) {
      try {
        t.get();
      } catch (...) {
      }
      --in_flight_;
    });
  }

  const Config& config_;
  const Router& router_;
  const db::Database& db_;
  WorkerPool workers_;
  std::unique_ptr<http::experimental::listener::http_listener> listener_;
  std::atomic<int> in_flight_{0};
  std::atomic<bool> draining_{false};
};

HttpServer::HttpServer(const Config& config, const Router& router, const db::Database& db)
    : impl_(std::make_unique<Impl>(config, router, db)) {}
HttpServer::~HttpServer() = default;
void HttpServer::Start() { impl_->Start(); }
void HttpServer::Drain() { impl_->Drain(); }

}  // namespace fls::server
