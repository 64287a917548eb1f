// POST / with a Bundle: transaction (all or nothing, in one database transaction) and batch (each
// entry on its own), R4 http.html#transaction.
#include <map>

#include "fhir/audit.h"
#include "fhir/bundle_builder.h"
#include "fhir/fhir_date.h"
#include "fhir/fhir_service.h"
#include "fhir/text.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace fls::fhir {

namespace {

struct EntryRequest {
  size_t index = 0;
  std::string method;
  std::string type;
  std::string id;       // instance URLs
  std::string version;  // GET .../_history/n
  std::string query;    // conditional URLs and searches (raw, without '?')
  bool has_query = false;
  std::string full_url;
  std::optional<std::string> if_none_exist, if_match;
  const JsonValue* resource = nullptr;
};

std::string EntryPath(size_t i) { return "Bundle.entry[" + std::to_string(i) + "]"; }

[[noreturn]] void EntryFail(size_t i, const FhirError& e) {
  std::vector<Issue> issues = e.issues();
  for (auto& issue : issues) {
    issue.diagnostics = EntryPath(i) + ": " + issue.diagnostics;
    if (issue.expression.empty()) issue.expression = EntryPath(i);
  }
  FhirError wrapped(e.code(), std::move(issues));
  wrapped.headers = e.headers;
  throw wrapped;
}

[[noreturn]] void Bad(size_t i, const std::string& msg) {
  EntryFail(i, FhirError(ErrorCode::kBadRequest, msg));
}

// Parses entry.request.url: "Type", "Type/id", "Type/id/_history/v", "Type?query", absolute URLs
// under base_url.
void ParseEntryUrl(EntryRequest& e, std::string url, const std::string& base_url,
                   const SchemaValidator& schema) {
  if (!base_url.empty() && url.rfind(base_url + "/", 0) == 0) url = url.substr(base_url.size() + 1);
  if (!url.empty() && url[0] == '/') url = url.substr(1);
  auto q = url.find('?');
  std::string path = url.substr(0, q);
  if (q != std::string::npos) {
    e.has_query = true;
    e.query = url.substr(q + 1);
  }
  std::vector<std::string> segs;
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string::npos) slash = path.size();
    segs.push_back(path.substr(start, slash - start));
    start = slash + 1;
  }
  if (segs.empty() || segs[0].empty()) Bad(e.index, "request.url must name a resource type");
  e.type = segs[0];
  if (!schema.IsResourceType(e.type)) Bad(e.index, "unknown resource type '" + e.type + "' in request.url");
  for (const auto& seg : segs) {
    if (!seg.empty() && seg[0] == '$') {
      EntryFail(e.index, FhirError(ErrorCode::kNotImplemented,
                                   "operation " + seg + " is not supported in a Bundle entry"));
    }
  }
  if (segs.size() >= 2) {
    e.id = segs[1];
    if (!IsValidId(e.id)) Bad(e.index, "request.url has an invalid id");
  }
  if (segs.size() == 4 && segs[2] == "_history") {
    e.version = segs[3];
  } else if (segs.size() > 2) {
    Bad(e.index, "request.url '" + url + "' is not supported in a Bundle");
  }
}

// Calls fn on every Reference.reference string below `node`.
void ForEachReference(JsonValue& node, const std::function<void(JsonValue&)>& fn) {
  if (node.IsObject()) {
    for (auto& m : node.GetObject()) {
      if (std::string_view(m.name.GetString(), m.name.GetStringLength()) == "reference" &&
          IsPlainString(m.value)) {
        fn(m.value);
      } else {
        ForEachReference(m.value, fn);
      }
    }
  } else if (node.IsArray()) {
    for (auto& item : node.GetArray()) ForEachReference(item, fn);
  }
}

std::string StatusLine(int status) {
  switch (status) {
    case 200: return "200 OK";
    case 201: return "201 Created";
    case 204: return "204 No Content";
    default: return std::to_string(status);
  }
}

}  // namespace

class BundleProcessor {
 public:
  // The Bundle's clock starts here: parsing and validating it count against the limit.
  BundleProcessor(FhirService& svc, const RequestInfo& info)
      : svc_(svc), info_(info), deadline_(Deadline::In(svc.config_.transaction_timeout_ms)) {
    info_.deadline = deadline_;
  }

  Outcome Process(std::string_view body) {
    JsonDoc bundle = ParseJson(body, svc_.config_.json);
    if (!bundle.IsObject() || StringMember(bundle, "resourceType") != std::optional<std::string_view>("Bundle")) {
      throw FhirError(ErrorCode::kBadRequest, "POST / takes a Bundle of type transaction or batch");
    }
    auto type = StringMember(bundle, "type");
    if (!type || (*type != "transaction" && *type != "batch")) {
      throw FhirError(ErrorCode::kBadRequest, "Bundle.type must be transaction or batch", "Bundle.type");
    }
    bool transaction = *type == "transaction";
    // The audit trail names the interaction from the parsed Bundle, not from a guess at the body.
    if (AuditRecord* audit = CurrentAudit()) audit->interaction = transaction ? "transaction" : "batch";
    const JsonValue* entries = Member(bundle, "entry");
    if (entries && !entries->IsArray()) throw FhirError(ErrorCode::kBadRequest, "Bundle.entry must be an array");
    size_t n = entries ? entries->Size() : 0;
    if (n > static_cast<size_t>(svc_.config_.max_bundle_entries)) {
      throw FhirError(ErrorCode::kPayloadTooLarge,
                      "the Bundle has " + std::to_string(n) + " entries; the limit is " +
                          std::to_string(svc_.config_.max_bundle_entries));
    }
    if (transaction) {
      // The whole Bundle against the schema first: every issue of every entry in one answer.
      auto issues = svc_.schema_.Validate(bundle);
      if (!issues.empty()) throw FhirError(ErrorCode::kInvalidResource, std::move(issues));
    }
    std::vector<EntryRequest> reqs;
    for (size_t i = 0; i < n; ++i) reqs.push_back(ReadEntry((*entries)[static_cast<rapidjson::SizeType>(i)], i, transaction));
    if (transaction && deadline_.Passed()) throw PastDeadline(deadline_);
    return transaction ? Transaction(reqs) : Batch(reqs);
  }

 private:
  EntryRequest ReadEntry(const JsonValue& entry, size_t i, bool transaction) {
    EntryRequest e;
    e.index = i;
    const JsonValue* request = Member(entry, "request");
    if (!request || !request->IsObject()) Bad(i, "request is missing");
    auto method = StringMember(*request, "method");
    auto url = StringMember(*request, "url");
    if (!method || !url) Bad(i, "request.method and request.url are required");
    e.method = std::string(*method);
    if (e.method != "GET" && e.method != "POST" && e.method != "PUT" && e.method != "DELETE" &&
        e.method != "HEAD") {
      EntryFail(i, FhirError(ErrorCode::kMethodNotAllowed, "request.method " + e.method + " is not supported"));
    }
    ParseEntryUrl(e, std::string(*url), info_.base_url, svc_.schema_);
    if (info_.may) {
      char what = e.method == "POST" ? 'c' : e.method == "PUT" ? 'u' : e.method == "DELETE" ? 'd' : e.id.empty() ? 's' : 'r';
      auto if_none = StringMember(*request, "ifNoneExist");
      bool conditional = (e.method != "GET" && e.method != "HEAD" && e.has_query) || (e.method == "POST" && if_none);
      if (!info_.may(e.type, what) || (conditional && !info_.may(e.type, 's')) ||
          (e.method == "POST" && if_none && !info_.may(e.type, 'r'))) {
        FhirError err(ErrorCode::kForbidden, "the token does not allow " + e.method + " on " + e.type);
        if (transaction) EntryFail(i, err);
        failures_.insert_or_assign(i, err);
        return e;  // a batch answers this entry 403 and runs the others
      }
    }
    if (auto f = StringMember(entry, "fullUrl")) e.full_url = std::string(*f);
    if (auto v = StringMember(*request, "ifNoneExist")) e.if_none_exist = std::string(*v);
    if (auto v = StringMember(*request, "ifMatch")) e.if_match = std::string(*v);
    e.resource = Member(entry, "resource");
    if (e.method == "POST" || e.method == "PUT") {
      if (!e.resource) Bad(i, "a " + e.method + " entry needs a resource");
      if (e.method == "POST" && (!e.id.empty() || e.has_query)) Bad(i, "POST request.url must be the type alone");
      if (e.method == "PUT" && e.id.empty() && !e.has_query) Bad(i, "PUT request.url needs an id or criteria");
      try {
        if (transaction) {
          auto rt = StringMember(*e.resource, "resourceType");
          if (!rt || *rt != e.type) {
            throw FhirError(ErrorCode::kInvalidResource, "resourceType does not match request.url");
          }
        } else {
          svc_.CheckResource(e.type, *e.resource, "");
        }
        if (e.method == "PUT" && !e.id.empty()) {
          auto body_id = StringMember(*e.resource, "id");
          if (body_id && *body_id != e.id) {
            throw FhirError(ErrorCode::kBadRequest, "the resource's id differs from request.url's id");
          }
        }
      } catch (const FhirError& err) {
        if (transaction) EntryFail(i, err);
        e.resource = nullptr;
        failures_.insert_or_assign(i, err);
      }
    }
    if (e.method == "DELETE" && e.id.empty() && !e.has_query) Bad(i, "DELETE request.url needs an id or criteria");
    return e;
  }

  RequestInfo EntryInfo(const EntryRequest& e) const {
    RequestInfo ri = info_;
    ri.if_match = e.if_match;
    ri.if_none_exist = e.if_none_exist;
    return ri;
  }

  Outcome Transaction(const std::vector<EntryRequest>& reqs) {
    std::vector<Outcome> results(reqs.size());
    try {
      TransactionSteps(reqs, results);
    } catch (const db::DbError& e) {
      // A statement cancelled by the timeout armed from the deadline (WriteContext::CheckDeadline).
      if (e.kind() == db::DbErrorKind::kTooCostly && deadline_.Passed()) throw PastDeadline(deadline_);
      throw;
    }
    for (const auto& [entry, first] : same_as_) {
      results[entry] = results[first];
      results[entry].status = 200;
    }
    return Response("transaction-response", reqs, results, {});
  }

  void TransactionSteps(const std::vector<EntryRequest>& reqs, std::vector<Outcome>& results) {
    svc_.Write([&](WriteContext& ctx) {
      db::ResourceStore& st = ctx.store();
      ctx.AfterListeners([&] {
        for (const auto& e : reqs) {
          if (e.method != "GET" && e.method != "HEAD") svc_.Refresh(st, results[e.index], info_);
        }
      });
      // Fresh copies each attempt: a retried transaction starts again from the Bundle.
      std::vector<JsonDoc> docs(reqs.size());
      std::map<std::string, std::string> resolved;  // fullUrl -> Type/id
      std::vector<std::string> target_ids(reqs.size());
      std::vector<bool> matched(reqs.size(), false);
      std::map<std::string, size_t> seen_targets;
      // ifNoneExist criteria already decided in this Bundle: a second entry with the same
      // criteria is the same resource as the first (not a second create).
      std::map<std::string, size_t> criteria_owner;
      std::map<size_t, size_t> same_as;

      // 1. Decide every entry's target id (R4: ids are assigned before references are rewritten).
      for (const auto& e : reqs) {
        ctx.CheckDeadline();
        try {
          if (e.resource) docs[e.index].CopyFrom(*e.resource, docs[e.index].GetAllocator());
          if (e.method == "POST") {
            std::string id = NewUuid();
            if (e.if_none_exist) {
              std::string criteria =
                  e.type + "?" + svc_.parser_.Parse(e.type, ParseQueryString(*e.if_none_exist), false).canonical_query;
              if (auto first = criteria_owner.find(criteria); first != criteria_owner.end()) {
                id = target_ids[first->second];
                matched[e.index] = true;
                same_as[e.index] = first->second;
              } else if (auto found = svc_.FindForConditionalCreate(st, e.type, *e.if_none_exist, id, &info_)) {
                id = found->id;
                matched[e.index] = true;
                results[e.index] = *found;
                results[e.index].location = info_.base_url + "/" + e.type + "/" + found->id + "/_history/" +
                                            std::to_string(found->version);
                criteria_owner[criteria] = e.index;
              } else {
                criteria_owner[criteria] = e.index;
              }
            }
            target_ids[e.index] = id;
          } else if (e.method == "PUT" || e.method == "DELETE") {
            if (!e.has_query) {
              target_ids[e.index] = e.id;
            } else {
              auto params = ParseQueryString(e.query);
              auto ids = ScopedMatch(st, e.type, params, false);
              if (ids.size() > 1) {
                throw FhirError(ErrorCode::kPreconditionFailed, "the criteria match several resources");
              }
              if (ids.size() == 1) {
                target_ids[e.index] = ids[0];
              } else if (e.method == "PUT") {
                auto body_id = StringMember(docs[e.index], "id");
                std::string id = body_id ? std::string(*body_id) : NewUuid();
                SearchRequest req = svc_.parser_.Parse(e.type, params, false);
                if (auto owner = svc_.ClaimConditionalKey(st, e.type, req, id)) id = *owner;
                target_ids[e.index] = id;
              }
            }
          }
          if (!target_ids[e.index].empty() && e.method != "GET") {
            std::string key = e.type + "/" + target_ids[e.index];
            if (!matched[e.index] && seen_targets.count(key) && !same_as.count(e.index)) {
              throw FhirError(ErrorCode::kBadRequest, key + " is the target of two entries of this transaction");
            }
            seen_targets[key] = e.index;
            if (!e.full_url.empty()) resolved[e.full_url] = key;
          }
        } catch (const FhirError& err) {
          EntryFail(e.index, err);
        }
      }
      same_as_ = same_as;
      // 2. Rewrite references to other entries (urn:uuid: fullUrls) and conditional references.
      for (const auto& e : reqs) {
        if (!e.resource || matched[e.index]) continue;
        ctx.CheckDeadline();
        try {
          ForEachReference(docs[e.index], [&](JsonValue& ref) {
            std::string value(AsStringView(ref));
            auto it = resolved.find(value);
            std::string replacement;
            if (it != resolved.end()) {
              replacement = it->second;
            } else if (value.rfind("urn:uuid:", 0) == 0 || value.rfind("urn:oid:", 0) == 0) {
              throw FhirError(ErrorCode::kBadRequest,
                              "reference '" + value + "' names no entry of this transaction");
            } else if (auto q = value.find('?'); q != std::string::npos && value.find('/') > q) {
              std::string type = value.substr(0, q);
              if (!svc_.schema_.IsResourceType(type)) {
                throw FhirError(ErrorCode::kBadRequest, "conditional reference '" + value + "' names no type");
              }
              // A conditional reference is a search whose answer is stored: it needs the right to
              // search and read the type, within the requester's sites.
              auto ids = ScopedMatch(st, type, ParseQueryString(value.substr(q + 1)), true);
              if (ids.size() != 1) {
                throw FhirError(ErrorCode::kPreconditionFailed,
                                "conditional reference '" + value + "' matches " +
                                    (ids.empty() ? std::string("nothing") : std::string("several resources")));
              }
              replacement = type + "/" + ids[0];
            } else {
              return;
            }
            ref = MakeString(replacement, docs[e.index].GetAllocator());
          });
        } catch (const FhirError& err) {
          EntryFail(e.index, err);
        }
      }
      // 3. Writes in R4's order: DELETE, POST, PUT; then reads.
      for (const char* method : {"DELETE", "POST", "PUT", "GET", "HEAD"}) {
        for (const auto& e : reqs) {
          if (e.method != method || matched[e.index]) continue;
          ctx.CheckDeadline();
          try {
            RequestInfo ri = EntryInfo(e);
            const std::string& id = target_ids[e.index];
            if (ri.sites && (e.method == "DELETE" || e.method == "PUT") && !id.empty()) {
              // A site's coordinator changes only its own sites' resources (a new id is a create).
              auto existing = st.ReadCurrent(e.type, id);
              if (existing && !existing->deleted && !svc_.VisibleIn(st, e.type, id, ri)) {
                throw FhirError(ErrorCode::kNotFound, e.type + "/" + id + " is not known");
              }
            }
            if (ri.sites && (e.method == "POST" || e.method == "PUT")) svc_.CheckWriteScope(st, e.type, docs[e.index], ri);
            if (e.method == "DELETE") {
              if (id.empty()) {
                results[e.index].status = 204;
              } else {
                results[e.index] = svc_.DoDelete(ctx, e.type, id, ri);
              }
            } else if (e.method == "POST") {
              results[e.index] = svc_.DoCreate(ctx, e.type, docs[e.index], id, ri);
            } else if (e.method == "PUT") {
              results[e.index] = svc_.DoUpdate(ctx, e.type, id, docs[e.index], ri);
            } else {
              results[e.index] = Read(st, e);
            }
          } catch (const FhirError& err) {
            EntryFail(e.index, err);
          }
        }
      }
    }, deadline_);
  }

  // The matches of a conditional entry or reference, as the requester may see them (403 when it
  // may not search the type, or read it when `read_too`).
  std::vector<std::string> ScopedMatch(db::ResourceStore& st, const std::string& type,
                                       const std::vector<QueryParam>& params, bool read_too) {
    if (info_.may && (!info_.may(type, 's') || (read_too && !info_.may(type, 'r')))) {
      throw FhirError(ErrorCode::kForbidden, "the token does not allow searching " + type + " (a conditional entry or reference)");
    }
    SearchRequest req = svc_.parser_.Parse(type, params, false);
    if (req.spec.where.empty()) throw FhirError(ErrorCode::kBadRequest, "a conditional operation needs search criteria");
    req.spec.site_scope = svc_.SiteScopeFor(type, info_);
    return st.SearchIds(req.spec, 2);
  }

  Outcome Read(db::ResourceStore& st, const EntryRequest& e) {
    if (!e.id.empty()) {
      auto row = e.version.empty() ? st.ReadCurrent(e.type, e.id)
                                   : [&]() -> std::optional<db::VersionRow> {
                                       auto v = ParseETagVersion(e.version);
                                       if (!v) return std::nullopt;
                                       return st.ReadVersion(e.type, e.id, *v);
                                     }();
      if (!row || (info_.sites && !svc_.VisibleIn(st, e.type, e.id, info_))) {
        throw FhirError(ErrorCode::kNotFound, e.type + "/" + e.id + " is not known");
      }
      if (row->deleted) throw FhirError(ErrorCode::kGone, e.type + "/" + e.id + " was deleted");
      return svc_.ReadOutcome(*row, info_, 200);
    }
    SearchRequest req = svc_.parser_.Parse(e.type, ParseQueryString(e.query), info_.lenient);
    req.spec.site_scope = svc_.SiteScopeFor(e.type, info_);
    auto page = st.Search(req.spec, req.count);
    BundleLinks links;
    links.self = info_.base_url + "/" + e.type + (req.canonical_query.empty() ? "" : "?" + req.canonical_query);
    Outcome o;
    o.status = 200;
    o.body = SearchsetBundle(page.rows, info_.base_url, page.total, links, req.warnings);
    return o;
  }

  Outcome Batch(const std::vector<EntryRequest>& reqs) {
    std::vector<Outcome> results(reqs.size());
    std::map<size_t, FhirError> errors = failures_;
    for (const auto& e : reqs) {
      if (errors.count(e.index)) continue;
      if (deadline_.Passed()) {
        // Entries run so far stand (each was its own transaction); the rest are not run.
        errors.emplace(e.index, FhirError(ErrorCode::kTooCostly,
                                          "not run: the batch ran past the server's limit of " +
                                              std::to_string(deadline_.limit_ms) +
                                              " ms for a whole transaction or batch; the entries before it "
                                              "were processed. Send the rest again"));
        continue;
      }
      try {
        RequestInfo ri = EntryInfo(e);
        if (e.method == "POST") {
          results[e.index] = svc_.Create(e.type, Serialize(*e.resource), ri);
        } else if (e.method == "PUT") {
          if (e.has_query) {
            results[e.index] = svc_.ConditionalUpdate(e.type, ParseQueryString(e.query), Serialize(*e.resource), ri);
          } else {
            std::string body;
            if (!StringMember(*e.resource, "id")) {
              JsonDoc copy;
              copy.CopyFrom(*e.resource, copy.GetAllocator());
              SetMember(copy, "id", MakeString(e.id, copy.GetAllocator()), copy.GetAllocator());
              body = Serialize(copy);
            } else {
              body = Serialize(*e.resource);
            }
            results[e.index] = svc_.Update(e.type, e.id, body, ri);
          }
        } else if (e.method == "DELETE") {
          results[e.index] = e.has_query ? svc_.ConditionalDelete(e.type, ParseQueryString(e.query), ri)
                                         : svc_.Delete(e.type, e.id, ri);
        } else if (!e.id.empty()) {
          results[e.index] = e.version.empty() ? svc_.Read(e.type, e.id, ri) : svc_.VRead(e.type, e.id, e.version, ri);
        } else {
          results[e.index] = svc_.Search(e.type, ParseQueryString(e.query), ri);
        }
      } catch (const FhirError& err) {
        errors.emplace(e.index, err);
      } catch (const db::DbError& err) {
        // This entry's own transaction rolled back; the others stand (R4 batch semantics).
        if (err.kind() == db::DbErrorKind::kTooCostly && deadline_.Passed()) {
          errors.emplace(e.index, PastDeadline(deadline_));
          continue;
        }
        if (svc_.config_.on_db_error) svc_.config_.on_db_error(info_.request_id, err);
        errors.emplace(e.index, FromDbError(err, info_.request_id));
      }
    }
    return Response("batch-response", reqs, results, errors);
  }

  Outcome Response(const char* type, const std::vector<EntryRequest>& reqs,
                   const std::vector<Outcome>& results, const std::map<size_t, FhirError>& errors) {
    rapidjson::StringBuffer sb;
    rapidjson::Writer<rapidjson::StringBuffer> w(sb);
    auto str = [&](const std::string& s) { w.String(s.c_str(), static_cast<rapidjson::SizeType>(s.size())); };
    w.StartObject();
    w.Key("resourceType");
    w.String("Bundle");
    w.Key("type");
    w.String(type);
    w.Key("timestamp");
    str(FormatFhirInstant(NowMicros()));
    w.Key("entry");
    w.StartArray();
    bool representation = info_.prefer_return == "representation";
    for (const auto& e : reqs) {
      const Outcome& o = results[e.index];
      w.StartObject();
      auto err = errors.find(e.index);
      if (err == errors.end() && !o.id.empty() && e.method != "GET" && e.method != "DELETE") {
        w.Key("fullUrl");
        str(info_.base_url + "/" + o.resource_type + "/" + o.id);
      }
      bool body_is_resource = err == errors.end() && !o.body.empty() &&
                              (e.method == "GET" || representation);
      if (body_is_resource) {
        w.Key("resource");
        w.RawValue(o.body.c_str(), o.body.size(), rapidjson::kObjectType);
      }
      w.Key("response");
      w.StartObject();
      w.Key("status");
      if (err != errors.end()) {
        str(std::to_string(Describe(err->second.code()).http_status));
        std::string oo = OperationOutcomeJson(err->second);
        w.Key("outcome");
        w.RawValue(oo.c_str(), oo.size(), rapidjson::kObjectType);
      } else {
        str(StatusLine(o.status));
        if (!o.location.empty()) {
          w.Key("location");
          str(o.location);
        }
        if (!o.etag.empty()) {
          w.Key("etag");
          str(o.etag);
        }
        if (!o.last_modified.empty()) {
          w.Key("lastModified");
          str(o.last_modified);
        }
      }
      w.EndObject();
      w.EndObject();
    }
    w.EndArray();
    w.EndObject();
    Outcome out;
    out.status = 200;
    out.body = std::string(sb.GetString(), sb.GetSize());
    return out;
  }

  FhirService& svc_;
  RequestInfo info_;          // the client's, with the Bundle's deadline for every entry
  const Deadline deadline_;
  std::map<size_t, FhirError> failures_;  // batch entries refused before processing
  std::map<size_t, size_t> same_as_;       // transaction entries that are another entry's resource
};

Outcome FhirService::ProcessBundle(std::string_view body, const RequestInfo& info) {
  BundleProcessor processor(*this, info);
  return processor.Process(body);
}

}  // namespace fls::fhir
