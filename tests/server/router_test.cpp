#include "server/router.h"

#include <gtest/gtest.h>

#include "fhir/error.h"

namespace fls::server {
namespace {

Router MakeRouter(std::string& hit) {
  Router r;
  r.SetTypeCheck([](const std::string& t) { return t == "Patient" || t == "Task"; });
  auto h = [&hit](const char* name) {
    return [&hit, name](HttpRequest& req) {
      hit = name;
      for (const auto& [k, v] : req.params) hit += " " + k + "=" + v;
      return HttpResponse{};
    };
  };
  r.Add("GET", "/metadata", "", true, Access::Public(), h("metadata"));
  r.Add("POST", "/", "transaction", true, Access::Public(), h("bundle"));
  r.Add("GET", "/{type}", "search-type", false, Access::Public(), h("search"));
  r.Add("POST", "/{type}", "create", false, Access::Public(), h("create"));
  r.Add("GET", "/{type}/_history", "history-type", false, Access::Public(), h("type-history"));
  r.Add("GET", "/{type}/{id}", "read", false, Access::Public(), h("read"));
  r.Add("PUT", "/{type}/{id}", "update", false, Access::Public(), h("update"));
  r.Add("GET", "/{type}/{id}/_history/{vid}", "vread", false, Access::Public(), h("vread"));
  r.Add("POST", "/{type}/{id}/{op}", "", false, Access::Public(), h("operation"));
  r.Add("BATCH", "/", "batch", true, Access::Public(), nullptr);
  return r;
}

HttpRequest Req(const std::string& method, std::vector<std::string> segs) {
  HttpRequest r;
  r.method = method;
  r.segments = std::move(segs);
  return r;
}

TEST(Router, RoutesByMethodAndPattern) {
  std::string hit;
  Router r = MakeRouter(hit);
  struct Row {
    std::string method;
    std::vector<std::string> segs;
    std::string expected;
  };
  const Row rows[] = {
      {"GET", {"metadata"}, "metadata"},
      {"POST", {}, "bundle"},
      {"GET", {"Patient"}, "search type=Patient"},
      {"POST", {"Task"}, "create type=Task"},
      {"GET", {"Patient", "_history"}, "type-history type=Patient"},
      {"GET", {"Patient", "p1"}, "read id=p1 type=Patient"},
      {"GET", {"Patient", "p1", "_history", "2"}, "vread id=p1 type=Patient vid=2"},
      {"POST", {"Task", "t1", "$event"}, "operation id=t1 op=event type=Task"},
  };
  for (const auto& row : rows) {
    hit.clear();
    HttpRequest req = Req(row.method, row.segs);
    r.Dispatch(req);
    EXPECT_EQ(hit, row.expected);
  }
}

TEST(Router, WrongMethodIs405WithAllowAndUnknownIs404) {
  std::string hit;
  Router r = MakeRouter(hit);
  HttpRequest del = Req("DELETE", {"Patient", "p1"});
  try {
    r.Dispatch(del);
    FAIL();
  } catch (const fhir::FhirError& e) {
    EXPECT_EQ(e.code(), fhir::ErrorCode::kMethodNotAllowed);
    ASSERT_EQ(e.headers.size(), 1u);
    EXPECT_EQ(e.headers[0].second, "GET, HEAD, OPTIONS, PUT") << "HEAD with GET, OPTIONS always";
  }
  EXPECT_EQ(r.AllowedMethods(del), "GET, HEAD, OPTIONS, PUT");
  hit.clear();
  HttpRequest head = Req("HEAD", {"Patient", "p1"});
  r.Dispatch(head);
  EXPECT_EQ(hit, "read id=p1 type=Patient") << "HEAD runs the GET route";
  for (auto segs : std::vector<std::vector<std::string>>{{"Nope"}, {"Nope", "1"}, {"a", "b", "c", "d", "e"}}) {
    HttpRequest req = Req("GET", segs);
    try {
      r.Dispatch(req);
      FAIL();
    } catch (const fhir::FhirError& e) {
      EXPECT_EQ(e.code(), fhir::ErrorCode::kNotFound);
    }
  }
  HttpRequest batch = Req("BATCH", {});
  EXPECT_THROW(r.Dispatch(batch), fhir::FhirError) << "a route listed only for the CapabilityStatement never runs";
}

}  // namespace
}  // namespace fls::server
