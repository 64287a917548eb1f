#include "server/router.h"

#include <set>

#include "fhir/error.h"

namespace fls::server {

const std::string* HttpRequest::Header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  return it == headers.end() ? nullptr : &it->second;
}

void Router::Add(const std::string& method, const std::string& pattern, const std::string& interaction,
                 bool system_level, Handler handler) {
  Route r;
  r.info = {method, pattern, interaction, system_level};
  size_t start = 1;
  while (start <= pattern.size() && pattern.size() > 1) {
    size_t slash = pattern.find('/', start);
    if (slash == std::string::npos) slash = pattern.size();
    r.segments.push_back(pattern.substr(start, slash - start));
    start = slash + 1;
  }
  r.handler = std::move(handler);
  routes_.push_back(std::move(r));
}

bool Router::Match(const Route& route, const HttpRequest& req, std::map<std::string, std::string>& params,
                   std::string& unknown_type) const {
  if (route.segments.size() != req.segments.size()) return false;
  for (size_t i = 0; i < route.segments.size(); ++i) {
    const std::string& pat = route.segments[i];
    const std::string& seg = req.segments[i];
    if (pat == "{type}") {
      if (seg.empty() || seg[0] < 'A' || seg[0] > 'Z') return false;
      if (is_type_ && !is_type_(seg)) {
        unknown_type = seg;
        return false;
      }
      params["type"] = seg;
    } else if (pat == "{op}") {
      if (seg.size() < 2 || seg[0] != '$') return false;
      params["op"] = seg.substr(1);
    } else if (pat == "{id}" || pat == "{vid}") {
      if (seg.empty() || seg[0] == '_' || seg[0] == '$') return false;
      params[pat.substr(1, pat.size() - 2)] = seg;
    } else if (pat != seg) {
      return false;
    }
  }
  return true;
}

namespace {
std::string AllowHeader(std::set<std::string> methods) {
  if (methods.count("GET")) methods.insert("HEAD");
  methods.insert("OPTIONS");
  std::string allow;
  for (const auto& m : methods) allow += (allow.empty() ? "" : ", ") + m;
  return allow;
}
}  // namespace

std::string Router::AllowedMethods(const HttpRequest& req) const {
  std::set<std::string> allowed;
  std::string unknown_type;
  for (const auto& route : routes_) {
    if (!route.handler) continue;
    std::map<std::string, std::string> params;
    if (Match(route, req, params, unknown_type)) allowed.insert(route.info.method);
  }
  return AllowHeader(std::move(allowed));
}

HttpResponse Router::Dispatch(HttpRequest& req) const {
  std::set<std::string> allowed;
  std::string unknown_type;
  const std::string& method = req.method == "HEAD" ? std::string("GET") : req.method;
  for (const auto& route : routes_) {
    if (!route.handler) continue;  // listed for the CapabilityStatement only
    std::map<std::string, std::string> params;
    if (!Match(route, req, params, unknown_type)) continue;
    if (route.info.method == method) {
      req.params = std::move(params);
      return route.handler(req);
    }
    allowed.insert(route.info.method);
  }
  if (!allowed.empty()) {
    std::string allow = AllowHeader(std::move(allowed));
    fhir::FhirError e(fhir::ErrorCode::kMethodNotAllowed, req.method + " is not allowed here; allowed: " + allow);
    e.headers.emplace_back("Allow", allow);
    throw e;
  }
  if (!unknown_type.empty()) {
    throw fhir::FhirError(fhir::ErrorCode::kNotFound, "'" + unknown_type + "' is not a FHIR R4 resource type");
  }
  throw fhir::FhirError(fhir::ErrorCode::kNotFound, "no such endpoint");
}

std::vector<RouteInfo> Router::Routes() const {
  std::vector<RouteInfo> out;
  for (const auto& r : routes_) out.push_back(r.info);
  return out;
}

}  // namespace fls::server
