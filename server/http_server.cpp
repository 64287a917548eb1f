#include "server/http_server.h"

#include <utility>  // before asio: boost 1.74 awaitable.hpp uses std::exchange under C++20

#include <cpprest/http_listener.h>

#include <chrono>
#include <thread>

#include "fhir/error.h"
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
    if (e.code() == ErrorCode::kServiceUnavailable) resp.headers.emplace_back("Retry-After", "5");
  };
  try {
    std::rethrow_exception(error);
  } catch (const fhir::FhirError& e) {
    from(e);
  } catch (const db::DbError& e) {
    switch (e.kind()) {
      case db::DbErrorKind::kUnavailable:
      case db::DbErrorKind::kRetryable:
        Log("warn", "database unavailable", {{"rid", request_id}, {"sqlstate", e.sqlstate()}, {"error", e.what()}});
        from(fhir::FhirError(ErrorCode::kServiceUnavailable,
                             "the database is unavailable; retry later (request " + request_id + ")"));
        break;
      case db::DbErrorKind::kBadInput:
        Log("info", "database refused a value", {{"rid", request_id}, {"sqlstate", e.sqlstate()}, {"error", e.what()}});
        from(fhir::FhirError(ErrorCode::kBadRequest, "a value was refused by the store (request " + request_id + ")"));
        break;
      case db::DbErrorKind::kUniqueViolation:
        Log("info", "unique violation", {{"rid", request_id}, {"error", e.what()}});
        from(fhir::FhirError(ErrorCode::kConflict, "a concurrent change conflicts with this one; retry"));
        break;
      default:
        Log("error", "database error", {{"rid", request_id}, {"sqlstate", e.sqlstate()}, {"error", e.what()}});
        from(fhir::FhirError(ErrorCode::kInternal, "internal error (request " + request_id + ")"));
    }
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

class HttpServer::Impl {
 public:
  Impl(const Config& config, const Router& router, const db::Database& db)
      : config_(config), router_(router), db_(db) {}

  void Start() {
    std::string url = "http://" + config_.listen + ":" + std::to_string(config_.port);
    http::experimental::listener::http_listener_config lc;
    lc.set_timeout(std::chrono::seconds(120));
    listener_ = std::make_unique<http::experimental::listener::http_listener>(url, lc);
    listener_->support([this](http::http_request req) { Handle(std::move(req)); });
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
  // Reads the body up to the limit. Returns false (and leaves the rest unread) when it is larger.
  bool ReadBody(http::http_request& req, std::string& body) {
    auto stream = req.body();
    if (!stream.is_valid()) return true;
    concurrency::streams::container_buffer<std::string> buf;
    for (;;) {
      size_t n = stream.read(buf, 64 * 1024).get();
      if (n == 0) break;
      if (buf.collection().size() > config_.max_body_bytes) return false;
    }
    body = std::move(buf.collection());
    return true;
  }

  void Handle(http::http_request req) {
    auto started = std::chrono::steady_clock::now();
    ++in_flight_;
    HttpRequest r;
    r.request_id = SafeRequestId(req.headers());
    r.method = req.method();
    std::string path;
    HttpResponse resp;
    try {
      path = req.relative_uri().path();
      if (draining_) {
        fhir::FhirError e(fhir::ErrorCode::kServiceUnavailable, "the server is shutting down");
        throw e;
      }
      for (const auto& [k, v] : req.headers()) {
        std::string key = k;
        for (auto& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        r.headers[key] = v;
      }
      if (req.headers().has("Content-Length")) {
        auto len = req.headers().content_length();
        if (len > config_.max_body_bytes) {
          throw fhir::FhirError(fhir::ErrorCode::kPayloadTooLarge,
                                "the body is " + std::to_string(len) + " bytes; the limit is " +
                                    std::to_string(config_.max_body_bytes));
        }
      }
      // Split and decode the path.
      std::string raw_path = path;
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
      r.raw_query = req.relative_uri().query();
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
        throw fhir::FhirError(fhir::ErrorCode::kServiceUnavailable,
                              "the database is not ready yet; retry later");
      }
      if (!ReadBody(req, r.body)) {
        throw fhir::FhirError(fhir::ErrorCode::kPayloadTooLarge,
                              "the body is larger than " + std::to_string(config_.max_body_bytes) + " bytes");
      }
      resp = router_.Dispatch(r);
    } catch (...) {
      resp = ErrorResponse(std::current_exception(), r.request_id);
      if (resp.content_type.empty()) resp.content_type = "application/fhir+json; charset=utf-8";
    }

    http::http_response out(static_cast<http::status_code>(resp.status));
    for (const auto& [k, v] : resp.headers) out.headers().add(k, v);
    out.headers().add("X-Request-Id", r.request_id);
    if (resp.status == 413 || draining_) out.headers().add("Connection", "close");
    if (!resp.body.empty()) {
      out.set_body(std::move(resp.body), resp.content_type);
    }
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
    Log(resp.status >= 500 ? "error" : "info", "request",
        {{"rid", r.request_id}, {"method", r.method}, {"path", path.substr(0, 200)},
         {"status", std::to_string(resp.status)}, {"ms", std::to_string(ms).substr(0, 8)}});
    // Observe the reply's outcome: an unobserved pplx exception terminates the process
    // (cpp-stack.md pitfall 4).
    req.reply(out).then([](pplx::task<void> t) {
      try {
        t.get();
      } catch (...) {
      }
    });
    --in_flight_;
  }

  const Config& config_;
  const Router& router_;
  const db::Database& db_;
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
