#include "server/handlers.h"

#include <algorithm>

#include "fhir/audit.h"
#include "fhir/capability.h"
#include "fhir/dashboard.h"
#include "fhir/call_list.h"
#include "fhir/operation_definitions.h"
#include "fhir/bulk_export.h"
#include "fhir/case_events.h"
#include "fhir/recommend.h"
#include "fhir/error.h"
#include "fhir/fhir_date.h"
#include "server/http_util.h"

namespace fls::server {

namespace {

using fhir::ErrorCode;
using fhir::FhirError;

// Refuses bodies that are not FHIR JSON (R4 http.html#mime-type): XML and others get 415.
void RequireJsonBody(const HttpRequest& req) {
  const std::string* ct = req.Header("content-type");
  if (!ct || ct->empty()) return;  // interface engines sometimes omit it; the body must parse as JSON
  std::string type = Lower(ct->substr(0, ct->find(';')));
  type.erase(std::remove(type.begin(), type.end(), ' '), type.end());
  if (type == "application/fhir+json" || type == "application/json" || type == "application/json+fhir") return;
  throw FhirError(ErrorCode::kUnsupportedMediaType,
                  "Content-Type '" + type + "' is not supported: this server speaks application/fhir+json only");
}

// Accept: a request that only takes XML gets 406.
void CheckAccept(const HttpRequest& req, const std::vector<fhir::QueryParam>& query);

// The query of a JSON operation with its own parameters: Accept and _format checked, then _format
// and _pretty taken out (the operation refuses any parameter it does not know).
std::vector<fhir::QueryParam> OperationQuery(const HttpRequest& req);

void CheckAccept(const HttpRequest& req, const std::vector<fhir::QueryParam>& query) {
  for (const auto& p : query) {
    if (p.name == "_format") {
      std::string f = Lower(p.value);
      if (f.find("xml") != std::string::npos || f == "ttl" || f.find("turtle") != std::string::npos) {
        throw FhirError(ErrorCode::kNotAcceptable, "_format " + p.value + " is not supported: JSON only");
      }
    }
  }
  const std::string* accept = req.Header("accept");
  if (!accept || accept->empty()) return;
  std::string a = Lower(*accept);
  if (a.find("json") != std::string::npos || a.find("*/*") != std::string::npos ||
      a.find("application/*") != std::string::npos) {
    return;
  }
  throw FhirError(ErrorCode::kNotAcceptable, "Accept '" + *accept + "' is not supported: application/fhir+json only");
}

fhir::RequestInfo Info(const HttpRequest& req) {
  fhir::RequestInfo info;
  info.base_url = req.base_url;
  info.request_id = req.request_id;
  if (const std::string* prefer = req.Header("prefer")) {
    std::string p = Lower(*prefer);
    if (p.find("return=minimal") != std::string::npos) info.prefer_return = "minimal";
    else if (p.find("return=operationoutcome") != std::string::npos) info.prefer_return = "OperationOutcome";
    else if (p.find("return=representation") != std::string::npos) info.prefer_return = "representation";
    info.lenient = p.find("handling=lenient") != std::string::npos;
  }
  if (const std::string* m = req.Header("if-match")) info.if_match = *m;
  if (req.principal && req.principal->role == Role::kCoordinator) {
    // A coordinator reaches the patients and cases of its own sites only.
    std::vector<std::string> sites;
    for (const auto& s : req.principal->sites) {
      if (s.rfind("Organization/", 0) == 0) sites.push_back(s.substr(13));
    }
    info.sites = std::move(sites);
    info.case_members_editable = {"careManager", "team"};
  }
  if (req.principal) {
    info.actor = req.principal->subject;
    info.may = [p = req.principal](const std::string& type, char what) {
      uint8_t bit = what == 'c' ? kCreate : what == 'u' ? kUpdate : what == 'd' ? kDelete : what == 's' ? kSearch : kRead;
      return p->May(type, bit);
    };
  }
  if (const std::string* n = req.Header("if-none-exist")) {
    std::string v = *n;
    if (!v.empty() && v[0] == '?') v = v.substr(1);
    // "Patient?identifier=x" and "identifier=x" both occur in the wild.
    if (auto q = v.find('?'); q != std::string::npos) v = v.substr(q + 1);
    info.if_none_exist = v;
  }
  return info;
}

std::string HttpDate(const std::string& fhir_instant) {
  auto r = fhir::ParseFhirDate(fhir_instant);
  return r ? fhir::FormatHttpDate(r->lo_us) : "";
}

HttpResponse ToResponse(const fhir::Outcome& o, const fhir::RequestInfo& info, bool is_write) {
  HttpResponse resp;
  resp.status = o.status;
  if (!o.location.empty() && is_write) resp.headers.emplace_back("Location", o.location);
  if (!o.etag.empty()) resp.headers.emplace_back("ETag", o.etag);
  if (!o.last_modified.empty()) resp.headers.emplace_back("Last-Modified", HttpDate(o.last_modified));
  if (is_write && info.prefer_return == "minimal") return resp;
  if (is_write && info.prefer_return == "OperationOutcome") {
    fhir::Issue issue;
    issue.severity = "information";
    issue.code = "informational";
    issue.diagnostics = o.status == 201 ? "created " + o.resource_type + "/" + o.id
                                        : "done: " + o.resource_type + "/" + o.id;
    resp.body = fhir::OperationOutcomeJson({issue}, "informational");
    return resp;
  }
  resp.body = o.body;
  return resp;
}

std::vector<fhir::QueryParam> Query(const HttpRequest& req) { return fhir::ParseQueryString(req.raw_query); }

std::vector<fhir::QueryParam> OperationQuery(const HttpRequest& req) {
  auto q = Query(req);
  CheckAccept(req, q);
  q.erase(std::remove_if(q.begin(), q.end(), [](const fhir::QueryParam& p) { return p.name == "_format" || p.name == "_pretty"; }),
          q.end());
  return q;
}

// The FLS operations act on one case: a site's coordinator reaches only its own sites' (404, as
// for a case that does not exist, so that another site's cases are not even confirmed).
void RequireCaseVisible(fhir::FhirService& svc, const HttpRequest& req) {
  auto info = Info(req);
  auto it = req.params.find("id");
  if (info.sites && it != req.params.end() && !svc.Visible("EpisodeOfCare", it->second, info)) {
    throw FhirError(ErrorCode::kNotFound, "EpisodeOfCare/" + it->second + " is not an FLS case of your sites");
  }
}

}  // namespace

void RegisterRoutes(Router& router, const HandlerContext& ctx) {
  fhir::FhirService& svc = ctx.service;
  router.SetTypeCheck([&svc](const std::string& t) { return svc.IsResourceType(t); });

  // /healthz and /readyz are answered by the listener itself, on its socket threads, so that a
  // probe never waits behind busy workers (server/http_server.cpp, Session::Probe).

  // Capability statement: generated on each call from the routes registered below.
  const fhir::SchemaValidator& schema = ctx.schema;
  std::string version = ctx.software_version;
  const bool fls_operations = ctx.engine != nullptr;
  router.Add("GET", "/metadata", "", true, Access::Public(), [&router, &schema, &svc, version, fls_operations,
                                           base = ctx.canonical_base](HttpRequest& req) {
    fhir::CapabilityInput in;
    if (fls_operations) in.operations = fhir::FlsOperations(base);
    in.software_version = version;
    in.base_url = req.base_url;
    std::set<std::string> type_codes, system_codes;
    for (const auto& r : router.Routes()) {
      if (r.interaction.empty()) continue;
      (r.system_level ? system_codes : type_codes).insert(r.interaction);
    }
    in.type_interactions.assign(type_codes.begin(), type_codes.end());
    in.system_interactions.assign(system_codes.begin(), system_codes.end());
    HttpResponse resp;
    resp.body = fhir::CapabilityStatementJson(schema, svc.registry(), in);
    return resp;
  });

  // FHIR Bulk Data export (docs/bulk-export.md): kick-off, status and manifest, cancel, files.
  {
    auto requester = [](const HttpRequest& req) {
      fhir::ExportRequester r;
      if (!req.principal) {  // authentication off (loopback only): the local administrator
        r.key = "local";
        r.admin = true;
        r.may_read = [](const std::string&) { return true; };
        return r;
      }
      auto p = req.principal;
      r.key = p->client_id + "|" + p->subject;
      r.admin = p->role == Role::kAdmin;
      r.may_read = [p](const std::string& t) { return p->May(t, kRead); };
      return r;
    };
    auto kick_off = [&svc, requester](HttpRequest& req, const std::string& level) {
      auto q = Query(req);
      CheckAccept(req, q);
      fhir::ExportKickOff k;
      k.level = level;
      if (level == "group") k.group_id = req.params["id"];
      k.query = q;
      if (const std::string* prefer = req.Header("prefer")) k.prefer = *prefer;
      std::string path;
      for (const auto& s : req.segments) path += "/" + s;
      k.request_url = req.base_url + path + (req.raw_query.empty() ? "" : "?" + req.raw_query);
      const std::string id = fhir::KickOffExport(svc, k, requester(req));
      HttpResponse resp;
      resp.status = 202;
      resp.headers.emplace_back("Content-Location", req.base_url + "/$export-status/" + id);
      resp.body = R"({"resourceType":"OperationOutcome","issue":[{"severity":"information","code":"informational","diagnostics":"export queued: poll the Content-Location"}]})";
      return resp;
    };
    auto answer = [](fhir::ExportAnswer a) {
      HttpResponse resp;
      resp.status = a.status;
      resp.headers = std::move(a.headers);
      resp.body = std::move(a.body);
      resp.content_type = a.content_type;
      return resp;
    };
    router.Add("GET", "/$export", "", true, Access::Operation("export", "", 0),
               [kick_off](HttpRequest& req) { return kick_off(req, "system"); });
    router.Add("GET", "/Patient/$export", "", false, Access::Operation("export", "Patient", 0),
               [kick_off](HttpRequest& req) { return kick_off(req, "patient"); });
    router.Add("GET", "/Group/{id}/$export", "", false, Access::Operation("export", "Group", 0),
               [kick_off](HttpRequest& req) { return kick_off(req, "group"); });
    router.Add("GET", "/$export-status/{id}", "", true, Access::Operation("export", "", 0), [&svc, requester, answer](HttpRequest& req) {
      return answer(fhir::ExportStatus(svc, req.params["id"], requester(req), req.base_url));
    });
    router.Add("DELETE", "/$export-status/{id}", "", true, Access::Operation("export", "", 0), [&svc, requester, answer](HttpRequest& req) {
      return answer(fhir::CancelExport(svc, req.params["id"], requester(req)));
    });
    router.Add("GET", "/$export-file/{id}/{vid}", "", true, Access::Operation("export", "", 0), [&svc, requester, answer](HttpRequest& req) {
      return answer(fhir::ExportFile(svc, req.params["id"], req.params["vid"], requester(req)));
    });
  }

  // The day's calls of a site or a nurse, for phone platforms that read files and for printing
  // (docs/follow-up.md): CSV unless HTML is asked for (Accept or _format).
  router.Add("GET", "/$call-list", "", true, Access::Operation("call-list", "Task", kSearch), [&svc, base = ctx.canonical_base](HttpRequest& req) {
    std::string day, owner, format;
    for (const auto& p : Query(req)) {
      if (p.name == "date") day = p.value;
      else if (p.name == "owner") owner = p.value;
      else if (p.name == "_format") format = Lower(p.value);
      else throw fhir::FhirError(fhir::ErrorCode::kBadRequest, "unknown parameter " + p.name + " (date, owner, _format)", p.name);
    }
    if (day.empty()) day = fhir::DayText(fhir::LocalDay(fhir::NowMicros() / 1000000));
    if (day.size() != 10 || !fhir::ParseFhirDate(day)) {
      throw fhir::FhirError(fhir::ErrorCode::kBadRequest, "date must be YYYY-MM-DD", "date");
    }
    if (!owner.empty()) {
      auto ref = fhir::ParseReference(owner);
      if (!ref || (ref->type != std::optional<std::string>("Organization") && ref->type != std::optional<std::string>("Practitioner")) ||
          ref->id.empty() || ref->id.find('/') != std::string::npos) {
        throw fhir::FhirError(fhir::ErrorCode::kBadRequest, "owner must be Organization/id or Practitioner/id", "owner");
      }
    }
    const std::string* accept = req.Header("accept");
    bool html = format == "html" || format == "text/html" ||
                (format.empty() && accept && Lower(*accept).find("text/html") != std::string::npos);
    if (!format.empty() && !html && format != "csv" && format != "text/csv") {
      throw fhir::FhirError(fhir::ErrorCode::kNotAcceptable, "_format must be csv or html", "_format");
    }
    auto rows = fhir::CallList(svc, base, day, owner);
    if (auto info = Info(req); info.sites) {
      // A site's coordinator: the calls of its own sites' cases only.
      rows.erase(std::remove_if(rows.begin(), rows.end(),
                                [&](const fhir::CallListRow& row) { return !svc.Visible("EpisodeOfCare", row.case_id, info); }),
                 rows.end());
    }
    if (fhir::AuditRecord* audit = fhir::CurrentAudit()) {
      // A CSV or an HTML page names patients too: the trail says whose.
      for (const auto& row : rows) {
        if (audit->patients.size() >= 100) break;
        if (!row.patient_id.empty()) audit->patients.push_back("Patient/" + row.patient_id);
      }
    }
    HttpResponse resp;
    resp.content_type = html ? "text/html; charset=utf-8" : "text/csv; charset=utf-8";
    resp.body = html ? fhir::CallListHtml(rows, day, owner) : fhir::CallListCsv(rows);
    if (!html) resp.headers.emplace_back("Content-Disposition", "attachment; filename=\"calls-" + day + ".csv\"");
    return resp;
  });

  router.Add("POST", "/", "transaction", true, Access::Bundle(), [&svc](HttpRequest& req) {
    RequireJsonBody(req);
    auto info = Info(req);
    return ToResponse(svc.ProcessBundle(req.body, info), info, false);
  });
  router.Add("GET", "/_history", "history-system", true, Access::Admin(), [&svc](HttpRequest& req) {
    auto q = Query(req);
    CheckAccept(req, q);
    return ToResponse(svc.History("", "", q, Info(req)), Info(req), false);
  });
  // batch shares POST / with transaction; listed for the CapabilityStatement.
  router.Add("BATCH", "/", "batch", true, Access::Bundle(), nullptr);

  router.Add("GET", "/{type}", "search-type", false, Access::Data(kSearch), [&svc](HttpRequest& req) {
    auto q = Query(req);
    CheckAccept(req, q);
    return ToResponse(svc.Search(req.params["type"], q, Info(req)), Info(req), false);
  });
  router.Add("POST", "/{type}/_search", "", false, Access::Data(kSearch), [&svc](HttpRequest& req) {
    // R4 http.html#search: parameters in an application/x-www-form-urlencoded body, and the URL.
    const std::string* ct = req.Header("content-type");
    if (ct && Lower(*ct).find("application/x-www-form-urlencoded") == std::string::npos) {
      throw FhirError(ErrorCode::kUnsupportedMediaType, "POST _search takes application/x-www-form-urlencoded");
    }
    auto q = Query(req);
    auto body_params = fhir::ParseQueryString(req.body);
    q.insert(q.end(), body_params.begin(), body_params.end());
    return ToResponse(svc.Search(req.params["type"], q, Info(req)), Info(req), false);
  });
  router.Add("POST", "/{type}", "create", false, Access::Data(kCreate), [&svc](HttpRequest& req) {
    RequireJsonBody(req);
    if (!req.raw_query.empty()) {
      auto q = Query(req);
      for (const auto& p : q) {
        if (p.name != "_format" && p.name != "_pretty") {
          throw FhirError(ErrorCode::kBadRequest, "create takes no query parameters (use If-None-Exist)");
        }
      }
    }
    auto info = Info(req);
    if (info.if_none_exist && info.may && !(info.may(req.params["type"], 's') && info.may(req.params["type"], 'r'))) {
      // A conditional create searches, and answers the match's body.
      throw FhirError(ErrorCode::kForbidden, "If-None-Exist needs the right to search and read " + req.params["type"]);
    }
    return ToResponse(svc.Create(req.params["type"], req.body, info), info, true);
  });
  router.Add("PUT", "/{type}", "", false, Access::Data(kUpdate | kSearch), [&svc](HttpRequest& req) {
    RequireJsonBody(req);
    auto info = Info(req);
    auto q = Query(req);
    if (q.empty()) throw FhirError(ErrorCode::kBadRequest, "PUT needs an id in the URL or search criteria");
    return ToResponse(svc.ConditionalUpdate(req.params["type"], q, req.body, info), info, true);
  });
  router.Add("DELETE", "/{type}", "", false, Access::Data(kDelete | kSearch), [&svc](HttpRequest& req) {
    auto info = Info(req);
    auto q = Query(req);
    if (q.empty()) throw FhirError(ErrorCode::kBadRequest, "DELETE needs an id in the URL or search criteria");
    return ToResponse(svc.ConditionalDelete(req.params["type"], q, info), info, true);
  });
  router.Add("GET", "/{type}/_history", "history-type", false, Access::Data(kSearch), [&svc](HttpRequest& req) {
    auto q = Query(req);
    CheckAccept(req, q);
    return ToResponse(svc.History(req.params["type"], "", q, Info(req)), Info(req), false);
  });
  router.Add("GET", "/{type}/{id}", "read", false, Access::Data(kRead), [&svc](HttpRequest& req) {
    auto q = Query(req);
    CheckAccept(req, q);
    return ToResponse(svc.Read(req.params["type"], req.params["id"], Info(req)), Info(req), false);
  });
  router.Add("PUT", "/{type}/{id}", "update", false, Access::Data(kUpdate), [&svc](HttpRequest& req) {
    RequireJsonBody(req);
    auto info = Info(req);
    return ToResponse(svc.Update(req.params["type"], req.params["id"], req.body, info), info, true);
  });
  router.Add("DELETE", "/{type}/{id}", "delete", false, Access::Data(kDelete), [&svc](HttpRequest& req) {
    auto info = Info(req);
    return ToResponse(svc.Delete(req.params["type"], req.params["id"], info), info, true);
  });
  router.Add("GET", "/{type}/{id}/_history", "history-instance", false, Access::Data(kRead), [&svc](HttpRequest& req) {
    auto q = Query(req);
    CheckAccept(req, q);
    return ToResponse(svc.History(req.params["type"], req.params["id"], q, Info(req)), Info(req), false);
  });
  // The FLS operations (operations.md); literal types come before the generic patterns' twins.
  router.Add("GET", "/EpisodeOfCare/{id}/$events", "", false, Access::Operation("events", "EpisodeOfCare", kRead), [&svc](HttpRequest& req) {
    RequireCaseVisible(svc, req);
    auto q = Query(req);
    CheckAccept(req, q);
    return ToResponse(fhir::CaseEvents(svc, req.params["id"]), Info(req), false);
  });
  if (ctx.engine) {
    const fhir::PathwayEngine& engine = *ctx.engine;
    router.Add("POST", "/EpisodeOfCare/{id}/$event", "", false, Access::Operation("event", "EpisodeOfCare", kUpdate), [&svc, &engine](HttpRequest& req) {
      RequireCaseVisible(svc, req);
      RequireJsonBody(req);
      auto info = Info(req);
      return ToResponse(engine.PostEvent(svc, req.params["id"], req.body, info), info, false);
    });
    router.Add("POST", "/EpisodeOfCare/{id}/$contact", "", false, Access::Operation("contact", "EpisodeOfCare", kUpdate), [&svc, &engine](HttpRequest& req) {
      RequireCaseVisible(svc, req);
      RequireJsonBody(req);
      auto info = Info(req);
      return ToResponse(engine.PostContact(svc, req.params["id"], req.body, info), info, false);
    });
    router.Add("POST", "/EpisodeOfCare/{id}/$accompany", "", false, Access::Operation("accompany", "EpisodeOfCare", kUpdate), [&svc, &engine](HttpRequest& req) {
      RequireCaseVisible(svc, req);
      RequireJsonBody(req);
      auto info = Info(req);
      return ToResponse(engine.PostAccompany(svc, req.params["id"], req.body, info), info, false);
    });
    router.Add("GET", "/EpisodeOfCare/{id}/$recommend", "", false, Access::Operation("recommend", "EpisodeOfCare", kRead), [&svc, &engine](HttpRequest& req) {
      RequireCaseVisible(svc, req);
      auto q = Query(req);
      CheckAccept(req, q);
      return ToResponse(fhir::Recommend(engine, svc, req.params["id"]), Info(req), false);
    });
  }
  if (ctx.measures) {
    // The quality indicators (operations.md section 6, docs/kpis.md).
    const fhir::MeasureCatalog& catalog = *ctx.measures;
    router.Add("GET", "/Measure/{id}/$evaluate-measure", "", false, Access::Operation("evaluate-measure", "Measure", kRead),
               [&svc, &catalog, mc = ctx.measure_config](HttpRequest& req) {
                 auto q = OperationQuery(req);
                 auto request = fhir::ParseEvaluateRequest(req.params["id"], q);
                 std::vector<std::string> cases;
                 HttpResponse resp;
                 resp.body = fhir::EvaluateMeasure(svc, catalog, mc, request, Info(req), &cases);
                 if (fhir::AuditRecord* audit = fhir::CurrentAudit()) {
                   for (const auto& c : cases) {
                     if (audit->entities.size() >= 100) break;
                     audit->entities.push_back("EpisodeOfCare/" + c);
                   }
                 }
                 return resp;
               });
  }
  if (ctx.measures) {
    // The dashboard's data and the projection with its "what if" (docs/kpis.md).
    const fhir::MeasureCatalog& catalog = *ctx.measures;
    router.Add("GET", "/$fls-dashboard", "", true, Access::Operation("fls-dashboard", "Measure", kRead),
               [&svc, &catalog, mc = ctx.measure_config](HttpRequest& req) {
                 auto q = OperationQuery(req);
                 auto request = fhir::ParseDashboardRequest(catalog, q);
                 HttpResponse resp;
                 resp.content_type = "application/json; charset=utf-8";
                 resp.headers.emplace_back("Cache-Control", "no-store");
                 resp.body = fhir::FlsDashboard(svc, catalog, mc, request, Info(req));
                 return resp;
               });
    router.Add("GET", "/$fls-projection", "", true, Access::Operation("fls-projection", "Measure", kRead),
               [&svc, &catalog, mc = ctx.measure_config](HttpRequest& req) {
                 auto q = OperationQuery(req);
                 auto request = fhir::ParseProjectionRequest(q);
                 HttpResponse resp;
                 resp.content_type = "application/json; charset=utf-8";
                 resp.headers.emplace_back("Cache-Control", "no-store");
                 resp.body = fhir::FlsProjection(svc, catalog, mc, request, Info(req));
                 return resp;
               });
  }
  if (ctx.measures) {
    // The case-level extract (operations.md section 6): CSV, pseudonymised unless the caller may
    // read patients.
    const fhir::MeasureCatalog& catalog = *ctx.measures;
    router.Add("GET", "/$fls-extract", "", true, Access::Operation("fls-extract", "Measure", kRead),
               [&svc, &catalog, mc = ctx.measure_config, pseudonym = ctx.pseudonym](HttpRequest& req) {
                 auto q = Query(req);
                 std::string format;
                 for (const auto& p : q) {
                   if (p.name == "_format") format = Lower(p.value);
                 }
                 q.erase(std::remove_if(q.begin(), q.end(), [](const fhir::QueryParam& p) { return p.name == "_format"; }), q.end());
                 const std::string* accept = req.Header("accept");
                 const std::string a = accept ? Lower(*accept) : "";
                 if ((!format.empty() && format != "csv" && format != "text/csv") ||
                     (format.empty() && !a.empty() && a.find("text/csv") == std::string::npos && a.find("*/*") == std::string::npos &&
                      a.find("text/*") == std::string::npos)) {
                   throw FhirError(ErrorCode::kNotAcceptable, "the extract is text/csv (Accept: text/csv)");
                 }
                 auto request = fhir::ParseExtractRequest(q);
                 const bool identified = req.principal && req.principal->May("Patient", kRead);
                 if (!identified && !pseudonym) throw FhirError(ErrorCode::kForbidden, "no pseudonym key: the extract needs identifiers");
                 std::vector<std::string> patients;
                 HttpResponse resp;
                 resp.content_type = "text/csv; charset=utf-8";
                 resp.headers.emplace_back("Content-Disposition", "attachment; filename=\"fls-extract-" + request.period_start + "-" +
                                                                      request.period_end + ".csv\"");
                 resp.headers.emplace_back("Cache-Control", "no-store");
                 resp.body = fhir::FlsExtractCsv(svc, catalog, mc, request, Info(req), identified, pseudonym, &patients);
                 if (fhir::AuditRecord* audit = fhir::CurrentAudit(); audit && identified) {
                   for (const auto& p : patients) {
                     if (audit->patients.size() >= 100) break;
                     audit->patients.push_back(p);
                   }
                 }
                 return resp;
               });
  }
  router.Add("GET", "/{type}/{id}/_history/{vid}", "vread", false, Access::Data(kRead), [&svc](HttpRequest& req) {
    auto q = Query(req);
    CheckAccept(req, q);
    return ToResponse(svc.VRead(req.params["type"], req.params["id"], req.params["vid"], Info(req)), Info(req), false);
  });
}

}  // namespace fls::server
