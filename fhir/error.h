#pragma once
// The one error type of the server and the one table that maps each error code to its HTTP status
// and OperationOutcome issue code (FHIR R4 http.html, "Error handling"). Anything that fails a
// request throws FhirError; server/ catches it once per request and formats the OperationOutcome.

#include <exception>
#include <string>
#include <vector>

namespace fls::fhir {

enum class ErrorCode {
  kBadRequest,            // 400 malformed request (syntax, bad parameter)
  kInvalidResource,       // 400 the resource fails validation
  kUnauthorized,          // 401
  kForbidden,             // 403
  kNotFound,              // 404
  kMethodNotAllowed,      // 405
  kNotAcceptable,         // 406
  kConflict,              // 409 version conflict or concurrent change
  kGone,                  // 410 deleted
  kPreconditionFailed,    // 412 If-Match mismatch, ambiguous conditional
  kPayloadTooLarge,       // 413
  kUnsupportedMediaType,  // 415
  kUnprocessable,         // 422 business rule refused
  kTooCostly,             // 400 the request would cost too much (a search past the time limit)
  kInternal,              // 500
  kNotImplemented,        // 501
  kRequestTimeout,        // 408 the request did not arrive in time
  kUriTooLong,            // 414
  kExpectationFailed,     // 417 an Expect the server cannot meet
  kHeaderTooLarge,        // 431 request line and headers over the limit
  kServiceUnavailable,    // 503 database unreachable, draining
  kTooManyRequests,       // 429 a client's request rate or concurrency limit (server/rate_limit.h)
};

struct ErrorInfo {
  int http_status;
  const char* issue_code;  // OperationOutcome.issue.code (IssueType value set)
  const char* name;
};

const ErrorInfo& Describe(ErrorCode code);

struct Issue {
  std::string severity = "error";  // fatal | error | warning | information
  std::string code;                // IssueType; empty means the code's default
  std::string diagnostics;         // safe for the client: never SQL, stack or patient data
  std::string expression;          // FHIRPath of the element concerned, optional
};

// Thread-safe to copy; immutable after construction.
class FhirError : public std::exception {
 public:
  FhirError(ErrorCode code, std::string diagnostics, std::string expression = {});
  FhirError(ErrorCode code, std::vector<Issue> issues);

  ErrorCode code() const { return code_; }
  const std::vector<Issue>& issues() const { return issues_; }
  const char* what() const noexcept override { return what_.c_str(); }

  // Extra response headers (e.g. Allow for 405, Retry-After for 503).
  std::vector<std::pair<std::string, std::string>> headers;

 private:
  ErrorCode code_;
  std::vector<Issue> issues_;
  std::string what_;
};

// Serialises an OperationOutcome with the given issues; issues without a code get `default_code`.
std::string OperationOutcomeJson(const std::vector<Issue>& issues, const char* default_code);
std::string OperationOutcomeJson(const FhirError& error);

}  // namespace fls::fhir
