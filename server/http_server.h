#pragma once
// The HTTP listener (cpprestsdk): reads each request with the body limit, gives it a request id,
// dispatches it through the Router, and is the one place where errors become OperationOutcome
// responses. Logs one line per request. Thread-safe; Drain() stops it gracefully.

#include <atomic>
#include <memory>
#include <string>

#include "db/database.h"
#include "server/config.h"
#include "server/router.h"

namespace fls::server {

class HttpServer {
 public:
  HttpServer(const Config& config, const Router& router, const db::Database& db);
  ~HttpServer();

  // Starts listening. Throws std::runtime_error when the address cannot be bound.
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
