#pragma once
// The HTTP/1.1 listener (Boost.Beast's parser over Boost.Asio; docs/http.md is its contract):
// reads each request under the limits and timeouts of Config, gives it a request id, answers the
// probes and OPTIONS on its socket threads, runs every other request on a worker thread through
// the Router, and is the one place where errors become OperationOutcome responses. Logs one line
// per request. Thread-safe; Drain() stops it gracefully.

#include <exception>
#include <memory>
#include <string>

#include "db/database.h"
#include "server/config.h"
#include "server/router.h"

namespace fls::server {

class HttpServer {
 public:
  // REQUIRES: `config`, `router` and `db` outlive the server.
  HttpServer(const Config& config, const Router& router, const db::Database& db);
  ~HttpServer();

  // Binds and starts serving. Throws std::runtime_error when the address cannot be bound.
  void Start();
  // Refuses new requests with 503, waits for in-flight ones (up to the grace period), closes.
  void Drain();

  // Exposed for tests of the error mapping.
  static HttpResponse ErrorResponse(const std::exception_ptr& error, const std::string& request_id);

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fls::server
