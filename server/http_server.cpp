#include "server/http_server.h"

#include <sys/resource.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/http/string_body.hpp>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>  // before asio: boost 1.74 awaitable.hpp uses std::exchange under C++20
#include <vector>

#include "db/health_monitor.h"
#include "fhir/error.h"
#include "fhir/fhir_date.h"
#include "fhir/fhir_service.h"
#include "fhir/text.h"
#include "server/http_util.h"
#include "server/log.h"

namespace fls::server {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

HttpResponse HttpServer::ErrorResponse(const std::exception_ptr& error,
                                       const std::string& request_id) {
  using fhir::ErrorCode;
  HttpResponse resp;
  auto from = [&](const fhir::FhirError& e) {
    resp.status = fhir::Describe(e.code()).http_status;
    resp.body = fhir::OperationOutcomeJson(e);
    resp.headers = e.headers;
    bool has_retry = false;
    for (const auto& h : resp.headers) has_retry = has_retry || h.first == "Retry-After";
    if (e.code() == ErrorCode::kServiceUnavailable && !has_retry)
      resp.headers.emplace_back("Retry-After", "5");
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
    from(fhir::FhirError(ErrorCode::kPayloadTooLarge,
                         "the request needs more memory than the server allows"));
  } catch (const std::exception& e) {
    Log("error", "unhandled exception", {{"rid", request_id}, {"error", e.what()}});
    from(fhir::FhirError(ErrorCode::kInternal, "internal error (request " + request_id + ")"));
  } catch (...) {
    Log("error", "unhandled exception", {{"rid", request_id}});
    from(fhir::FhirError(ErrorCode::kInternal, "internal error (request " + request_id + ")"));
  }
  return resp;
}

namespace {

// Requests block on the database, so they run on a fixed pool of worker threads
// (Config::threads, one database session each), never on the socket threads.
class WorkerPool {
 public:
  explicit WorkerPool(int threads) {
    for (int i = 0; i < threads; ++i) workers_.emplace_back([this] { Run(); });
  }
  ~WorkerPool() { Stop(); }
  void Post(std::function<void()> job) {
    {
      std::lock_guard lock(mu_);
      jobs_.push_back(std::move(job));
    }
    cv_.notify_one();
  }
  // Runs the jobs already queued, then joins.
  void Stop() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) {
      if (t.joinable()) t.join();
    }
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
      try {
        job();
      } catch (const std::exception& e) {
        // A job formats its own errors; this is memory running out while doing so.
        Log("error", "a worker job failed", {{"error", e.what()}});
      } catch (...) {
        Log("error", "a worker job failed");
      }
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;  // guarded by mu_
  bool stop_ = false;                       // guarded by mu_
  std::vector<std::thread> workers_;
};

// Beast 1.74 speaks boost::string_view.
std::string_view SV(beast::string_view s) { return {s.data(), s.size()}; }

int64_t NowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

constexpr const char* kAllMethods = "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT";
constexpr const char* kExposeHeaders =
    "Location, ETag, Last-Modified, Content-Location, X-Request-Id";
constexpr const char* kPreflightHeaders =
    "Accept, Authorization, Content-Type, If-Match, If-Modified-Since, If-None-Exist, "
    "If-None-Match, Prefer, "
    "X-Request-Id";
constexpr const char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";

// What the socket thread keeps of a request to finish its response (the body went to the worker).
struct ReplyContext {
  std::string request_id;
  std::string method;
  std::string path;  // without the query: no patient data in the log
  Clock::time_point started;
  bool head = false;
  bool keep_alive = true;
  bool http10 = false;
  bool gzip = false;
  std::string origin;  // when CORS allows it
};

}  // namespace

class HttpServer::Impl {
 public:
  Impl(const Config& config, const Router& router, const db::Database& db)
      : config_(config),
        router_(router),
        db_(db),
        cors_(config.cors_origins),
        workers_(config.threads) {}

  ~Impl() { Stop(); }

  void Start();
  void Drain();

  class Session;

  // Everything a worker does with a request: routing and the use case (which may block on the
  // database), then the response's final form (gzip), so that socket threads only copy bytes.
  HttpResponse Process(HttpRequest& r, const ReplyContext& ctx) const {
    HttpResponse resp;
    try {
      if (refuse_work_) {
        // Shutting down past the grace period: queued requests are answered, not run.
        throw fhir::FhirError(fhir::ErrorCode::kServiceUnavailable, "the server is shutting down");
      }
      if (!db_.migrated()) {
        throw fhir::FhirError(fhir::ErrorCode::kServiceUnavailable,
                              "the database is not ready yet; retry later");
      }
      resp = router_.Dispatch(r);
    } catch (...) {
      resp = ErrorResponse(std::current_exception(), r.request_id);
    }
    Compress(resp, ctx);
    return resp;
  }

  void Compress(HttpResponse& resp, const ReplyContext& ctx) const {
    if (!ctx.gzip || resp.body.size() < config_.gzip_min_bytes) return;
    for (const auto& h : resp.headers) {
      if (IEquals(h.first, "Content-Encoding")) return;
    }
    try {
      resp.body = Gzip(resp.body);
      resp.headers.emplace_back("Content-Encoding", "gzip");
      resp.headers.emplace_back("Vary", "Accept-Encoding");
    } catch (const std::exception& e) {
      Log("warn", "gzip failed; answering uncompressed",
          {{"rid", ctx.request_id}, {"error", e.what()}});
    }
  }

  // Splits a request target into decoded path segments and the raw query. Throws FhirError 400.
  static void SplitTarget(std::string_view target, HttpRequest& r) {
    // absolute-form (RFC 9112 3.2.2): a server must accept it; only the path and query matter
    if (target.rfind("http://", 0) == 0 || target.rfind("https://", 0) == 0) {
      size_t slash = target.find('/', target.find("//") + 2);
      target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
    }
    if (target.empty() || target[0] != '/') {
      throw fhir::FhirError(fhir::ErrorCode::kBadRequest, "the request target must start with '/'");
    }
    size_t q = target.find('?');
    std::string_view path = target.substr(0, q);
    if (q != std::string_view::npos) {
      r.raw_query = std::string(target.substr(q + 1));
      size_t hash = r.raw_query.find('#');
      if (hash != std::string::npos) r.raw_query.resize(hash);
    }
    size_t start = 1;
    while (start <= path.size() && path.size() > 1) {
      size_t slash = path.find('/', start);
      if (slash == std::string_view::npos) slash = path.size();
      auto seg = fhir::PercentDecode(path.substr(start, slash - start), false);
      if (!seg)
        throw fhir::FhirError(fhir::ErrorCode::kBadRequest, "the URL path is not valid UTF-8");
      for (unsigned char c : *seg) {
        if (c < 0x20 || c == 0x7f) {
          throw fhir::FhirError(fhir::ErrorCode::kBadRequest,
                                "the URL path holds a control character");
        }
      }
      r.segments.push_back(std::move(*seg));
      start = slash + 1;
    }
    while (!r.segments.empty() && r.segments.back().empty()) r.segments.pop_back();
  }

  std::string BaseUrl(const HttpRequest& r) const {
    if (!config_.public_url.empty()) return config_.public_url;
    const std::string* host = r.Header("host");
    return "http://" +
           (host && SafeHost(*host) ? *host : config_.listen + ":" + std::to_string(config_.port));
  }

  const Config& config_;
  const Router& router_;
  const db::Database& db_;
  const CorsPolicy cors_;

  // Before the io_context: sessions destroyed inside ~io_context still count themselves out.
  int max_connections_ = 0;  // constant once serving: the configured cap, lowered by the fd limit
  std::atomic<int> open_connections_{0};
  // Requests past their header checks whose response is not yet written (uploading, at a
  // worker, or being written): what Drain waits for.
  std::atomic<int> in_flight_{0};
  // Bytes of request bodies held in memory, from their reading to their response: at most
  // Config::max_body_bytes_total, so that many large uploads at once cannot exhaust memory.
  std::atomic<size_t> body_bytes_{0};
  std::atomic<bool> draining_{false};
  std::atomic<bool> refuse_work_{false};  // set by Stop: queued requests get 503, unrun
  std::atomic<bool> stopped_{false};

  // Declared before the workers: a worker's last job posts to it, and sessions hold its sockets.
  net::io_context ioc_;
  std::optional<tcp::acceptor> acceptor_;
  std::optional<net::steady_timer> accept_backoff_;
  std::vector<std::thread> io_threads_;
  WorkerPool workers_;
  std::unique_ptr<db::HealthMonitor> monitor_;

 private:
  void Accept();
  void OnAccept(beast::error_code ec, tcp::socket socket);
  void RefuseOverCapacity(tcp::socket socket);
  void Stop();
};

// One connection. Lives in shared_ptrs held by its pending operations; every handler runs on the
// connection's strand, so its members need no lock. At most one read or write is outstanding.
class HttpServer::Impl::Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, Impl& server)
      : socket_(std::move(socket)),
        timer_(socket_.get_executor()),
        buffer_(server.config_.max_header_bytes + (64u << 10)),
        server_(server) {
    ++server_.open_connections_;
  }
  ~Session() {
    Uncount();
    --server_.open_connections_;
  }

  void Start() { WaitRequest(); }

  // On a worker thread: hands the response back to the connection's strand.
  void PostResponse(HttpResponse resp, ReplyContext ctx) {
    net::post(socket_.get_executor(),
              [self = shared_from_this(), resp = std::move(resp), ctx = std::move(ctx)]() mutable {
                self->Respond(std::move(resp), ctx, true);
              });
  }

 private:
  enum class Phase { kIdle, kHeader, kBody, kProcessing, kWriting, kClosing, kClosed };

  const Config& config() const { return server_.config_; }

  // Waits for the first byte of the next request (it may already be buffered: pipelining).
  void WaitRequest() {
    phase_ = Phase::kIdle;
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(config().max_header_bytes));
    parser_->body_limit(static_cast<std::uint64_t>(config().max_body_bytes));
    parser_->eager(false);  // stop after the header, to check it before reading the body
    line_checked_ = false;
    header_checked_ = false;
    header_fields_ = 0;
    request_id_.clear();
    method_.clear();
    path_.clear();
    if (buffer_.size() == 0 && buffer_.capacity() > (64u << 10)) buffer_.shrink_to_fit();
    if (buffer_.size() > 0) {
      OnBytes();
      return;
    }
    ArmTimer(config().idle_timeout_ms);
    ReadSome();
  }

  void ReadSome() {
    size_t room = buffer_.max_size() - buffer_.size();
    size_t chunk = phase_ == Phase::kBody ? (64u << 10) : (16u << 10);
    if (room == 0) {
      // Cannot happen while the parser enforces its header limit below the buffer's size.
      Refuse(fhir::ErrorCode::kHeaderTooLarge,
             "the request headers are larger than the server accepts");
      return;
    }
    socket_.async_read_some(
        buffer_.prepare(std::min(room, chunk)),
        [self = shared_from_this()](beast::error_code ec, size_t n) { self->OnRead(ec, n); });
  }

  void OnRead(beast::error_code ec, size_t n) {
    // The deadline first: its timer may have fired after this read completed but before this
    // handler ran, when there was nothing left to cancel.
    if (timed_out_) {
      OnTimeout();
      return;
    }
    if (ec) {
      Close();  // the client closed or reset the connection: nobody to answer
      return;
    }
    buffer_.commit(n);
    OnBytes();
  }

  // Feeds the buffered bytes to the parser; reads more, checks the header, or dispatches.
  void OnBytes() {
    if (phase_ == Phase::kIdle) {
      // Blank lines between requests are ignored (RFC 9112 2.2), and do not start a request:
      // the connection stays idle, under the idle timeout.
      auto data = buffer_.data();
      const char* p = static_cast<const char*>(data.data());
      size_t blank = 0;
      while (blank < data.size() && (p[blank] == '\r' || p[blank] == '\n')) ++blank;
      buffer_.consume(blank);
      if (buffer_.size() == 0) {
        ReadSome();
        return;
      }
      phase_ = Phase::kHeader;
      started_ = Clock::now();
      ArmTimer(config().header_timeout_ms);
    }
    if (!line_checked_ && !CheckRequestLine()) return;
    for (;;) {
      beast::error_code ec;
      size_t used = parser_->put(buffer_.data(), ec);
      buffer_.consume(used);
      if (ec == bhttp::error::need_more) break;
      if (ec) {
        ParserError(ec);
        return;
      }
      if (parser_->is_header_done() && !header_checked_) {
        header_checked_ = true;
        if (!CheckHeader()) return;
        if (phase_ != Phase::kBody) return;  // a 100 Continue is being written; it resumes
      }
      if (parser_->chunked() && header_checked_) {
        // A chunked body's size is known only as it arrives: reserve as it grows.
        size_t held = parser_->get().body().size();
        if (held > reserved_ && !Reserve(held - reserved_)) {
          Refuse(fhir::ErrorCode::kServiceUnavailable,
                 "the server is holding too many request bodies at once; retry in a moment");
          return;
        }
      }
      if (parser_->is_done()) {
        Dispatch();
        return;
      }
      if (used == 0 || buffer_.size() == 0) break;
    }
    ReadSome();
  }

  // The request line, before the parser sees it: blank lines before it are skipped (RFC 9112
  // 2.2), an overlong target is 414, and raw spaces in the target are repaired.
  bool CheckRequestLine() {
    for (;;) {
      auto data = buffer_.data();
      std::string_view bytes(static_cast<const char*>(data.data()), data.size());
      size_t eol = bytes.find('\n');
      size_t line_limit = config().max_url_bytes + 64;  // method and version around the target
      if (eol == std::string_view::npos) {
        if (bytes.size() > line_limit) {
          Refuse(fhir::ErrorCode::kUriTooLong, "the request target is longer than " +
                                                   std::to_string(config().max_url_bytes) +
                                                   " bytes");
          return false;
        }
        ReadSome();
        return false;
      }
      std::string_view line = bytes.substr(0, eol);
      if (line.empty() || line == "\r") {
        buffer_.consume(eol + 1);
        if (buffer_.size() == 0) {
          ReadSome();
          return false;
        }
        continue;
      }
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      size_t first = line.find(' ');
      size_t last = line.rfind(" HTTP/");
      if (first != std::string_view::npos && last != std::string_view::npos && last > first &&
          last - first - 1 > config().max_url_bytes) {
        Refuse(fhir::ErrorCode::kUriTooLong, "the request target is longer than " +
                                                 std::to_string(config().max_url_bytes) + " bytes");
        return false;
      }
      if (auto repaired = RepairRequestLine(line)) {
        std::string rest(bytes.substr(line.size()));  // the line ending and what follows
        buffer_.consume(buffer_.size());
        std::string all = *repaired + rest;
        if (all.size() > buffer_.max_size()) {
          Refuse(fhir::ErrorCode::kUriTooLong, "the request target is too long");
          return false;
        }
        auto out = buffer_.prepare(all.size());
        std::memcpy(out.data(), all.data(), all.size());
        buffer_.commit(all.size());
      }
      line_checked_ = true;
      return true;
    }
  }

  void ParserError(beast::error_code ec) {
    using fhir::ErrorCode;
    if (ec == bhttp::error::header_limit) {
      Refuse(ErrorCode::kHeaderTooLarge, "the request line and headers are larger than " +
                                             std::to_string(config().max_header_bytes) + " bytes");
    } else if (ec == bhttp::error::body_limit) {
      Refuse(ErrorCode::kPayloadTooLarge,
             "the body is larger than " + std::to_string(config().max_body_bytes) + " bytes");
    } else if (ec == bhttp::error::bad_content_length) {
      Refuse(ErrorCode::kBadRequest, "Content-Length must be one non-negative decimal integer");
    } else if (ec == bhttp::error::bad_transfer_encoding) {
      Refuse(ErrorCode::kBadRequest,
             "Transfer-Encoding must be chunked alone, without Content-Length");
    } else if (ec == bhttp::error::bad_chunk || ec == bhttp::error::bad_chunk_extension) {
      Refuse(ErrorCode::kBadRequest, "the chunked body is malformed");
    } else if (ec == bhttp::error::bad_target) {
      Refuse(ErrorCode::kBadRequest, "the request target holds a control character or is empty");
    } else if (ec == bhttp::error::bad_method) {
      Refuse(ErrorCode::kBadRequest, "the request method is malformed");
    } else if (ec == bhttp::error::bad_version) {
      Refuse(ErrorCode::kBadRequest, "the request line must end with HTTP/1.0 or HTTP/1.1");
    } else {
      Refuse(ErrorCode::kBadRequest, "the request is not valid HTTP/1.1 (" + ec.message() + ")");
    }
  }

  // The header is complete: refuse from it alone what can be refused, answer 100 Continue.
  // Returns false when a response is on its way instead of the body.
  bool CheckHeader() {
    using fhir::ErrorCode;
    const auto& req = parser_->get();
    request_id_ = SafeRequestId(SV(req["X-Request-Id"]));
    method_ = std::string(SV(req.method_string()));
    std::string_view target = SV(req.target());
    path_ = std::string(target.substr(0, std::min<size_t>(target.find('?'), 200)));

    int content_lengths = 0, transfer_encodings = 0;
    bool bad_te = false, bad_ce = false, list_cl = false;
    std::string_view expect;
    for (const auto& f : req) {
      switch (f.name()) {
        case bhttp::field::content_length:
          ++content_lengths;
          list_cl = list_cl || SV(f.value()).find(',') != std::string_view::npos;
          break;
        case bhttp::field::transfer_encoding:
          ++transfer_encodings;
          bad_te = bad_te || !IEquals(SV(f.value()), "chunked");
          break;
        case bhttp::field::content_encoding:
          bad_ce = bad_ce || !IEquals(SV(f.value()), "identity");
          break;
        case bhttp::field::expect:
          expect = SV(f.value());
          break;
        default:
          break;
      }
    }
    // RFC 9112 6.3: a message with conflicting or repeated framing is refused, and the connection
    // closed, so that a second request hidden in its body is never read (request smuggling).
    if (content_lengths > 1 || list_cl) {
      Refuse(ErrorCode::kBadRequest, "the request has more than one Content-Length");
      return false;
    }
    if (transfer_encodings > 1 || bad_te) {
      Refuse(ErrorCode::kBadRequest, "the only Transfer-Encoding accepted is chunked");
      return false;
    }
    if (transfer_encodings > 0 && req.version() < 11) {
      // RFC 9112 6.1: faulty framing from an HTTP/1.0 client (a desync with 1.0 front ends).
      Refuse(ErrorCode::kBadRequest, "Transfer-Encoding is not HTTP/1.0");
      return false;
    }
    switch (req.method()) {
      case bhttp::verb::get:
      case bhttp::verb::head:
      case bhttp::verb::post:
      case bhttp::verb::put:
      case bhttp::verb::delete_:
      case bhttp::verb::patch:
      case bhttp::verb::options:
        break;
      default: {
        // TRACE would echo credentials (cross-site tracing); CONNECT and the rest mean nothing
        // here.
        fhir::FhirError e(ErrorCode::kMethodNotAllowed,
                          "the method " + method_.substr(0, 32) + " is not supported");
        e.headers.emplace_back("Allow", kAllMethods);
        Refuse(e);
        return false;
      }
    }
    if (bad_ce) {
      Refuse(ErrorCode::kUnsupportedMediaType,
             "request bodies are accepted without Content-Encoding only");
      return false;
    }
    if (server_.draining_) {
      Refuse(ErrorCode::kServiceUnavailable, "the server is shutting down");
      return false;
    }
    bool has_body = parser_->chunked() || parser_->content_length().value_or(0) > 0;
    bool send_continue = false;
    if (!expect.empty()) {
      if (!IEquals(expect, "100-continue")) {
        Refuse(ErrorCode::kExpectationFailed, "the only Expect value understood is 100-continue");
        return false;
      }
      send_continue = has_body && req.version() >= 11;
    }
    if (auto length = parser_->content_length(); length && *length > 0 && !Reserve(*length)) {
      Refuse(ErrorCode::kServiceUnavailable,
             "the server is holding too many request bodies at once; retry in a moment");
      return false;
    }
    // Only these fields are the request's headers: a chunked body's trailer fields join the
    // parser's field list later and must not pass for headers (RFC 9110 6.5.1).
    header_fields_ = static_cast<size_t>(std::distance(req.begin(), req.end()));
    counted_ = true;
    ++server_.in_flight_;
    phase_ = Phase::kBody;
    ArmTimer(config().body_timeout_ms);
    parser_->eager(true);
    if (send_continue) {
      phase_ = Phase::kWriting;
      net::async_write(socket_, net::buffer(kContinue, sizeof kContinue - 1),
                       [self = shared_from_this()](beast::error_code ec, size_t) {
                         if (ec) {
                           self->Close();
                           return;
                         }
                         self->phase_ = Phase::kBody;
                         self->OnBytes();
                       });
    }
    return true;
  }

  // The whole request is here: answer probes and OPTIONS at once, hand the rest to a worker.
  void Dispatch() {
    phase_ = Phase::kProcessing;
    CancelTimer();
    auto& msg = parser_->get();
    ReplyContext ctx;
    ctx.request_id = request_id_;
    ctx.method = method_;
    ctx.path = path_;
    ctx.started = started_;
    ctx.head = msg.method() == bhttp::verb::head;
    ctx.keep_alive = parser_->keep_alive();  // every Connection field, not only the first
    ctx.http10 = msg.version() < 11;

    HttpRequest r;
    r.method = method_;
    r.request_id = request_id_;
    {
      beast::error_code ec;
      auto endpoint = socket_.remote_endpoint(ec);
      if (!ec) r.peer = endpoint.address().to_string();
    }
    size_t field = 0;
    for (const auto& f : msg) {
      if (field++ == header_fields_) break;  // the rest are trailer fields
      std::string key = Lower(SV(f.name_string()));
      auto [it, inserted] = r.headers.emplace(key, std::string(SV(f.value())));
      if (!inserted) it->second += ", " + std::string(SV(f.value()));
    }
    if (const std::string* ae = r.Header("accept-encoding")) ctx.gzip = AcceptsGzip(*ae);
    const std::string* origin = r.Header("origin");
    if (origin && server_.cors_.Allows(*origin)) ctx.origin = *origin;

    if (msg.target() == "*" && msg.method() == bhttp::verb::options) {
      HttpResponse resp;
      resp.status = 204;
      resp.headers.emplace_back("Allow", kAllMethods);
      Respond(std::move(resp), ctx, false);
      return;
    }
    try {
      Impl::SplitTarget(SV(msg.target()), r);
    } catch (...) {
      Respond(ErrorResponse(std::current_exception(), request_id_), ctx, false);
      return;
    }
    r.base_url = server_.BaseUrl(r);
    r.body = std::move(msg.body());

    bool get_like = msg.method() == bhttp::verb::get || msg.method() == bhttp::verb::head;
    if (get_like && r.segments.size() == 1 &&
        (r.segments[0] == "healthz" || r.segments[0] == "readyz")) {
      Respond(Probe(r.segments[0] == "readyz"), ctx, false);
      return;
    }
    if (msg.method() == bhttp::verb::options) {
      Respond(Options(r, ctx), ctx, false);
      return;
    }
    server_.workers_.Post(
        [self = shared_from_this(), r = std::move(r), ctx = std::move(ctx)]() mutable {
          HttpResponse resp = self->server_.Process(r, ctx);
          self->PostResponse(std::move(resp), std::move(ctx));
        });
  }

  // Answered on the socket thread: never queued behind busy workers (docs/http.md, Probes).
  HttpResponse Probe(bool readiness) const {
    HttpResponse r;
    r.content_type = "application/json";
    r.headers.emplace_back("Cache-Control", "no-store");
    if (!readiness) {
      r.body = "{\"status\":\"ok\"}";
      return r;
    }
    bool migrated = server_.db_.migrated();
    bool reachable = server_.monitor_ && server_.monitor_->Reachable();
    r.status = migrated && reachable ? 200 : 503;
    r.body = std::string("{\"status\":\"") + (r.status == 200 ? "ready" : "not-ready") +
             "\",\"database\":" + (reachable ? "true" : "false") +
             ",\"migrations\":" + (migrated ? "true" : "false") + "}";
    if (r.status != 200) r.headers.emplace_back("Retry-After", "2");
    return r;
  }

  // OPTIONS: a CORS preflight, or the path's Allow.
  HttpResponse Options(const HttpRequest& r, const ReplyContext& ctx) const {
    HttpResponse resp;
    resp.status = 204;
    bool probe =
        r.segments.size() == 1 && (r.segments[0] == "healthz" || r.segments[0] == "readyz");
    resp.headers.emplace_back("Allow",
                              probe ? "GET, HEAD, OPTIONS" : server_.router_.AllowedMethods(r));
    const std::string* method = r.Header("access-control-request-method");
    if (method && !ctx.origin.empty()) {
      resp.headers.emplace_back("Access-Control-Allow-Methods", kAllMethods);
      std::string asked = SafeHeaderList(r.Header("access-control-request-headers")
                                             ? *r.Header("access-control-request-headers")
                                             : std::string());
      resp.headers.emplace_back("Access-Control-Allow-Headers",
                                asked.empty() ? kPreflightHeaders : asked);
      resp.headers.emplace_back("Access-Control-Max-Age", "600");
      resp.headers.emplace_back("Vary",
                                "Access-Control-Request-Method, Access-Control-Request-Headers");
    }
    return resp;
  }

  void Refuse(fhir::ErrorCode code, const std::string& why) { Refuse(fhir::FhirError(code, why)); }

  // A refusal by the listener itself: an OperationOutcome, logged, and the connection closed
  // after it (what follows on the connection cannot be trusted to be a request boundary).
  void Refuse(const fhir::FhirError& error) {
    CancelTimer();
    if (request_id_.empty()) {
      // The fields parsed before a bad one are kept; a header too large or too broken to parse
      // is still in the buffer.
      std::string_view id;
      if (parser_) id = SV(parser_->get()["X-Request-Id"]);
      if (id.empty()) {
        auto data = buffer_.data();
        id = RawHeaderValue(std::string_view(static_cast<const char*>(data.data()), data.size()),
                            "x-request-id");
      }
      request_id_ = SafeRequestId(id);
    }
    ReplyContext ctx;
    ctx.request_id = request_id_;
    ctx.method = method_.empty() ? "-" : method_;
    ctx.path = path_;
    ctx.started = phase_ == Phase::kIdle ? Clock::now() : started_;
    ctx.keep_alive = false;
    ctx.head = method_ == "HEAD";
    Log("warn", "refused",
        {{"rid", request_id_},
         {"status", std::to_string(fhir::Describe(error.code()).http_status)},
         {"reason", error.what()}});
    Respond(ErrorResponse(std::make_exception_ptr(error), request_id_), ctx, false);
  }

  void Respond(HttpResponse resp, const ReplyContext& ctx, bool from_worker) {
    if (phase_ == Phase::kClosed) return;
    if (!from_worker && resp.body.size() >= config().gzip_min_bytes) server_.Compress(resp, ctx);
    // Caches must know what the answer depends on even when it did not vary this time.
    bool compressed = false;
    for (const auto& h : resp.headers)
      compressed = compressed || IEquals(h.first, "Content-Encoding");
    if (!compressed && !ctx.head && resp.body.size() >= config().gzip_min_bytes) {
      resp.headers.emplace_back("Vary", "Accept-Encoding");
    }
    if (server_.cors_.enabled() && ctx.origin.empty()) resp.headers.emplace_back("Vary", "Origin");
    close_after_ = !ctx.keep_alive || server_.draining_ || resp.status == 413 ||
                   resp.status == 431 || resp.status == 414 || resp.status == 408;
    if (!ctx.origin.empty()) {
      resp.headers.emplace_back("Access-Control-Allow-Origin", ctx.origin);
      resp.headers.emplace_back("Access-Control-Expose-Headers", kExposeHeaders);
      resp.headers.emplace_back("Vary", "Origin");
    }
    std::string& out = write_buf_;
    out.clear();
    int status = resp.status;
    auto reason = bhttp::obsolete_reason(bhttp::int_to_status(static_cast<unsigned>(status)));
    out += "HTTP/1.1 " + std::to_string(status) + " ";
    out.append(reason.data(), reason.size());
    out += "\r\nDate: " + fhir::FormatHttpDate(NowUs()) + "\r\nX-Request-Id: " + ctx.request_id +
           "\r\n";
    // Vary values from several sources merge into one header.
    std::string vary;
    for (const auto& [k, v] : resp.headers) {
      if (IEquals(k, "Vary")) {
        vary += (vary.empty() ? "" : ", ") + v;
        continue;
      }
      out += k + ": " + v + "\r\n";
    }
    if (!vary.empty()) out += "Vary: " + vary + "\r\n";
    bool bodiless = status == 204 || status == 304;
    if (!bodiless) {
      if (!resp.body.empty()) out += "Content-Type: " + resp.content_type + "\r\n";
      out += "Content-Length: " + std::to_string(resp.body.size()) + "\r\n";
    }
    if (close_after_) {
      out += "Connection: close\r\n";
    } else if (ctx.http10) {
      out += "Connection: keep-alive\r\n";
    }
    out += "\r\n";
    if (!ctx.head && !bodiless) out += resp.body;

    double ms = std::chrono::duration<double, std::milli>(Clock::now() - ctx.started).count();
    Log(status >= 500 ? "error" : "info", "request",
        {{"rid", ctx.request_id},
         {"method", ctx.method},
         {"path", ctx.path},
         {"status", std::to_string(status)},
         {"ms", std::to_string(ms).substr(0, 8)}});

    phase_ = Phase::kWriting;
    ArmTimer(config().write_timeout_ms);
    net::async_write(
        socket_, net::buffer(write_buf_),
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnWritten(ec); });
  }

  void Uncount() {
    if (counted_) {
      counted_ = false;
      --server_.in_flight_;
    }
    if (reserved_ > 0) {
      server_.body_bytes_ -= reserved_;
      reserved_ = 0;
    }
  }

  // Takes `n` bytes of the server's body budget for this request; false, taking nothing, when
  // the budget cannot hold them.
  bool Reserve(size_t n) {
    size_t before = server_.body_bytes_.fetch_add(n);
    if (before + n > config().max_body_bytes_total) {
      server_.body_bytes_ -= n;
      return false;
    }
    reserved_ += n;
    return true;
  }

  void OnWritten(beast::error_code ec) {
    Uncount();
    write_buf_.clear();
    if (write_buf_.capacity() > (1u << 20)) write_buf_.shrink_to_fit();
    if (ec) {
      Close();
      return;
    }
    if (close_after_) {
      LingeringClose();
      return;
    }
    WaitRequest();
  }

  // Half-closes, then reads and drops what the client still sends (an upload we refused) for a
  // moment before closing: closing with unread bytes would send a reset that can destroy the
  // response in flight (the reason for nginx's lingering_close).
  void LingeringClose() {
    phase_ = Phase::kClosing;
    beast::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_send, ignored);
    buffer_.consume(buffer_.size());
    linger_bytes_ = 0;
    ArmTimer(2000);
    Drop();
  }

  void Drop() {
    socket_.async_read_some(buffer_.prepare(16u << 10),
                            [self = shared_from_this()](beast::error_code ec, size_t n) {
                              self->linger_bytes_ += n;
                              if (self->timed_out_ || ec || self->linger_bytes_ > (4u << 20)) {
                                self->Close();
                                return;
                              }
                              self->Drop();
                            });
  }

  void OnTimeout() {
    switch (phase_) {
      case Phase::kHeader:
        Refuse(fhir::ErrorCode::kRequestTimeout, "the request headers did not arrive within " +
                                                     std::to_string(config().header_timeout_ms) +
                                                     " ms");
        break;
      case Phase::kBody:
        Refuse(fhir::ErrorCode::kRequestTimeout, "the request body did not arrive within " +
                                                     std::to_string(config().body_timeout_ms) +
                                                     " ms");
        break;
      default:  // idle keep-alive, a client that does not read, or the end of a lingering close
        Close();
        break;
    }
  }

  // A deadline for the operations that follow. Generations make a stale expiry harmless.
  void ArmTimer(int ms) {
    timed_out_ = false;
    unsigned gen = ++timer_gen_;
    timer_.expires_after(std::chrono::milliseconds(ms));
    timer_.async_wait([self = shared_from_this(), gen](beast::error_code ec) {
      if (ec || gen != self->timer_gen_ || self->phase_ == Phase::kClosed) return;
      self->timed_out_ = true;
      if (self->phase_ == Phase::kHeader || self->phase_ == Phase::kBody) {
        // A 408 follows (OnTimeout, from the read's handler): stop the read, keep the socket.
        beast::error_code ignored;
        self->socket_.cancel(ignored);
      } else {
        // Idle, writing (a composed write between two sends would miss a cancel) or lingering:
        // nothing to answer; closing fails whatever operation comes next.
        self->Close();
      }
    });
  }

  void CancelTimer() {
    ++timer_gen_;
    timed_out_ = false;
    timer_.cancel();
  }

  void Close() {
    if (phase_ == Phase::kClosed) return;
    phase_ = Phase::kClosed;
    Uncount();
    CancelTimer();
    beast::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
  }

  tcp::socket socket_;
  net::steady_timer timer_;
  beast::flat_buffer buffer_;
  Impl& server_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  Phase phase_ = Phase::kIdle;
  bool line_checked_ = false;
  bool header_checked_ = false;
  bool timed_out_ = false;
  unsigned timer_gen_ = 0;
  bool close_after_ = false;
  bool counted_ = false;      // counted in the server's in_flight_ (from the header checks on)
  size_t header_fields_ = 0;  // the header's fields; those after them are a chunked trailer
  size_t reserved_ = 0;       // bytes of the server's body budget this request holds
  size_t linger_bytes_ = 0;
  Clock::time_point started_ = Clock::now();
  std::string request_id_, method_, path_;
  std::string write_buf_;
};

void HttpServer::Impl::Start() {
  // Every connection is a file descriptor, and so is every database session: raise the soft
  // limit as far as the hard one allows, and never promise more connections than it permits.
  int max_connections = config_.max_connections;
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0) {
    rlim_t want = static_cast<rlim_t>(config_.max_connections) + config_.db_pool + 128;
    if (lim.rlim_cur < want) {
      lim.rlim_cur = std::min(want, lim.rlim_max);
      setrlimit(RLIMIT_NOFILE, &lim);
      getrlimit(RLIMIT_NOFILE, &lim);
    }
    rlim_t usable = lim.rlim_cur > static_cast<rlim_t>(config_.db_pool + 128)
                        ? lim.rlim_cur - config_.db_pool - 128
                        : 16;
    if (usable < static_cast<rlim_t>(max_connections)) {
      max_connections = static_cast<int>(usable);
      Log("warn", "the open-file limit lowers the connection cap",
          {{"max_connections", std::to_string(max_connections)},
           {"nofile", std::to_string(lim.rlim_cur)}});
    }
  }
  max_connections_ = max_connections;

  monitor_ =
      std::make_unique<db::HealthMonitor>(db_.ConnectString(), std::chrono::milliseconds(500));

  beast::error_code ec;
  auto address = net::ip::make_address(config_.listen, ec);
  if (ec) throw std::runtime_error("FLS_LISTEN is not an IP address: " + config_.listen);
  tcp::endpoint endpoint(address, static_cast<unsigned short>(config_.port));
  acceptor_.emplace(net::make_strand(ioc_));
  acceptor_->open(endpoint.protocol(), ec);
  if (!ec) acceptor_->set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_->bind(endpoint, ec);
  if (!ec) acceptor_->listen(net::socket_base::max_listen_connections, ec);
  if (ec)
    throw std::runtime_error("cannot listen on " + config_.listen + ":" +
                             std::to_string(config_.port) + ": " + ec.message());
  accept_backoff_.emplace(acceptor_->get_executor());
  Accept();
  for (int i = 0; i < config_.io_threads; ++i) {
    io_threads_.emplace_back([this] {
      for (;;) {
        try {
          ioc_.run();
          return;
        } catch (const std::exception& e) {
          Log("error", "exception on a socket thread", {{"error", e.what()}});
        }
      }
    });
  }
}

void HttpServer::Impl::Accept() {
  acceptor_->async_accept(net::make_strand(ioc_), [this](beast::error_code ec, tcp::socket socket) {
    if (stopped_) return;
    try {
      OnAccept(ec, std::move(socket));
    } catch (const std::exception& e) {
      Log("error", "accepting a connection failed", {{"error", e.what()}});  // it is dropped
    }
  });
}

void HttpServer::Impl::OnAccept(beast::error_code ec, tcp::socket socket) {
  {
    if (ec) {
      if (ec == net::error::operation_aborted) return;
      // EMFILE and friends: wait a moment rather than spin.
      Log("warn", "accept failed", {{"error", ec.message()}});
      accept_backoff_->expires_after(std::chrono::milliseconds(50));
      accept_backoff_->async_wait([this](beast::error_code) {
        if (!stopped_) Accept();
      });
      return;
    }
    beast::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    // Re-armed first: whatever happens to this connection, the next one is accepted.
    Accept();
    if (open_connections_.load() >= max_connections_) {
      RefuseOverCapacity(std::move(socket));
    } else {
      std::make_shared<Session>(std::move(socket), *this)->Start();
    }
  }
}

// Over the cap: one small 503 written without waiting (it fits in the socket's send buffer), then
// the connection closed. No session, no buffer: this stays cheap under a flood.
void HttpServer::Impl::RefuseOverCapacity(tcp::socket socket) {
  std::string rid = fhir::NewUuid();
  std::string body = fhir::OperationOutcomeJson(
      {fhir::Issue{"error", "transient", "the server has too many open connections; retry later",
                   ""}},
      "transient");
  std::string out = "HTTP/1.1 503 Service Unavailable\r\nX-Request-Id: " + rid +
                    "\r\nRetry-After: 1\r\nContent-Type: application/fhir+json; "
                    "charset=utf-8\r\nContent-Length: " +
                    std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
  beast::error_code ec;
  socket.non_blocking(true, ec);
  // What the client already sent is read first: closing over unread bytes sends a reset, which
  // can destroy the 503 on its way (bytes arriving later still can; a client retrying after
  // Retry-After is the remedy).
  char sink[16384];
  for (int i = 0; i < 4 && socket.available(ec) > 0 && !ec; ++i)
    socket.read_some(net::buffer(sink), ec);
  socket.write_some(net::buffer(out), ec);
  socket.shutdown(tcp::socket::shutdown_send, ec);
  for (int i = 0; i < 4 && socket.available(ec) > 0 && !ec; ++i)
    socket.read_some(net::buffer(sink), ec);
  socket.close(ec);
  Log("warn", "refused", {{"rid", rid}, {"status", "503"}, {"reason", "connection cap reached"}});
}

void HttpServer::Impl::Drain() {
  draining_ = true;
  auto deadline = Clock::now() + std::chrono::seconds(config_.shutdown_grace_s);
  while (in_flight_.load() > 0 && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  Stop();
}

// The order matters: the workers finish while the socket threads still run, so that every
// request a worker ran gets its response written; requests still queued are answered 503
// without being run (a client may retry them: nothing of them was committed).
void HttpServer::Impl::Stop() {
  if (stopped_.exchange(true)) return;
  refuse_work_ = true;
  workers_.Stop();
  auto flush_deadline = Clock::now() + std::chrono::seconds(2);
  while (in_flight_.load() > 0 && Clock::now() < flush_deadline && !io_threads_.empty()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ioc_.stop();
  for (auto& t : io_threads_) {
    if (t.joinable()) t.join();
  }
  if (acceptor_) {
    beast::error_code ignored;
    acceptor_->close(ignored);  // no socket thread runs any more: safe from here
  }
  if (monitor_) monitor_->Stop();
}

HttpServer::HttpServer(const Config& config, const Router& router, const db::Database& db)
    : impl_(std::make_unique<Impl>(config, router, db)) {}
HttpServer::~HttpServer() = default;
void HttpServer::Start() { impl_->Start(); }
void HttpServer::Drain() { impl_->Drain(); }

}  // namespace fls::server
