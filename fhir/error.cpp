#include "fhir/error.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace fls::fhir {

namespace {
// Indexed by ErrorCode; keep in the enum's order.
constexpr ErrorInfo kTable[] = {
    {400, "invalid", "bad-request"},
    {400, "invalid", "invalid-resource"},
    {401, "login", "unauthorized"},
    {403, "forbidden", "forbidden"},
    {404, "not-found", "not-found"},
    {405, "not-supported", "method-not-allowed"},
    {406, "not-supported", "not-acceptable"},
    {409, "conflict", "conflict"},
    {410, "deleted", "gone"},
    {412, "conflict", "precondition-failed"},
    {413, "too-costly", "payload-too-large"},
    {415, "not-supported", "unsupported-media-type"},
    {422, "business-rule", "unprocessable"},
    {400, "too-costly", "too-costly"},
    {500, "exception", "internal"},
    {501, "not-supported", "not-implemented"},
    {408, "timeout", "request-timeout"},
    {414, "too-costly", "uri-too-long"},
    {417, "not-supported", "expectation-failed"},
    {431, "too-costly", "header-too-large"},
    {503, "transient", "service-unavailable"},
    {429, "throttled", "too-many-requests"},
};
static_assert(sizeof(kTable) / sizeof(kTable[0]) ==
              static_cast<size_t>(ErrorCode::kTooManyRequests) + 1);
}  // namespace

const ErrorInfo& Describe(ErrorCode code) { return kTable[static_cast<size_t>(code)]; }

FhirError::FhirError(ErrorCode code, std::string diagnostics, std::string expression)
    : code_(code) {
  Issue issue;
  issue.diagnostics = std::move(diagnostics);
  issue.expression = std::move(expression);
  what_ = issue.diagnostics;
  issues_.push_back(std::move(issue));
}

FhirError::FhirError(ErrorCode code, std::vector<Issue> issues)
    : code_(code), issues_(std::move(issues)) {
  for (const auto& i : issues_) {
    if (!what_.empty()) what_ += "; ";
    what_ += i.diagnostics;
  }
}

std::string OperationOutcomeJson(const std::vector<Issue>& issues, const char* default_code) {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  w.StartObject();
  w.Key("resourceType");
  w.String("OperationOutcome");
  w.Key("issue");
  w.StartArray();
  for (const auto& issue : issues) {
    w.StartObject();
    w.Key("severity");
    w.String(issue.severity.c_str());
    w.Key("code");
    w.String(issue.code.empty() ? default_code : issue.code.c_str());
    if (!issue.diagnostics.empty()) {
      w.Key("diagnostics");
      w.String(issue.diagnostics.c_str(), static_cast<rapidjson::SizeType>(issue.diagnostics.size()));
    }
    if (!issue.expression.empty()) {
      w.Key("expression");
      w.StartArray();
      w.String(issue.expression.c_str(), static_cast<rapidjson::SizeType>(issue.expression.size()));
      w.EndArray();
    }
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return std::string(sb.GetString(), sb.GetSize());
}

std::string OperationOutcomeJson(const FhirError& error) {
  return OperationOutcomeJson(error.issues(), Describe(error.code()).issue_code);
}

}  // namespace fls::fhir
