#include "fhir/fhir_service.h"

#include "fhir/audit.h"
#include "fhir/bundle_builder.h"
#include "fhir/fhir_date.h"
#include "fhir/text.h"

#include <algorithm>
#include <set>

namespace fls::fhir {

namespace {

// A coordinator's update of a case may change only `editable` (who is in charge of it): the rest,
// meta and text aside, must be what is stored (member order aside).
void CheckCaseEdit(const std::string& stored, const JsonDoc& sent, const std::vector<std::string>& editable) {
  JsonDoc before = ParseJson(stored);
  JsonDoc after;
  after.CopyFrom(sent, after.GetAllocator());
  for (JsonDoc* d : {&before, &after}) {
    for (const char* m : {"meta", "text"}) d->RemoveMember(m);
    for (const auto& m : editable) d->RemoveMember(rapidjson::StringRef(m.data(), m.size()));
  }
  if (before != after) {
    std::string names;
    for (const auto& m : editable) names += (names.empty() ? "" : ", ") + m;
    throw FhirError(ErrorCode::kForbidden, "your role changes an FLS case by update only in who is in charge of it (" + names +
                                               "); the rest moves through the pathway ($event)");
  }
}

std::string ETag(int version) { return "W/\"" + std::to_string(version) + "\""; }

// Sets id and meta.versionId/lastUpdated, keeping the rest of meta (tags, profiles, source).
void Stamp(JsonDoc& doc, const std::string& id, int version, int64_t last_updated_us) {
  auto& a = doc.GetAllocator();
  SetMember(doc, "id", MakeString(id, a), a);
  JsonValue meta(rapidjson::kObjectType);
  if (JsonValue* old = doc.HasMember("meta") ? &doc["meta"] : nullptr; old && old->IsObject()) {
    meta.CopyFrom(*old, a);
  }
  SetMember(meta, "versionId", MakeString(std::to_string(version), a), a);
  SetMember(meta, "lastUpdated", MakeString(FormatFhirInstant(last_updated_us), a), a);
  SetMember(doc, "meta", std::move(meta), a);
}

// Now, truncated to the millisecond that meta.lastUpdated shows, so that the stored instant and
// the resource's meta agree exactly.
int64_t NowInstant() {
  int64_t us = NowMicros();
  return us - us % 1000;
}

}  // namespace

FhirError FromDbError(const db::DbError& e, const std::string& request_id) {
  std::string ref = request_id.empty() ? "" : " (request " + request_id + ")";
  switch (e.kind()) {
    case db::DbErrorKind::kUnavailable:
    case db::DbErrorKind::kRetryable: {
      FhirError err(ErrorCode::kServiceUnavailable, "the database is unavailable; retry later" + ref);
      err.headers.emplace_back("Retry-After", "5");
      return err;
    }
    case db::DbErrorKind::kBadInput:
      return FhirError(ErrorCode::kBadRequest, "a value was refused by the store (too long or not storable)" + ref);
    case db::DbErrorKind::kTooCostly:
      return FhirError(ErrorCode::kTooCostly, "the request took longer than the server allows; narrow it" + ref);
    case db::DbErrorKind::kUniqueViolation:
      return FhirError(ErrorCode::kConflict, "a concurrent change conflicts with this one; retry" + ref);
    default:
      return FhirError(ErrorCode::kInternal, "internal error" + ref);
  }
}

FhirError PastDeadline(const Deadline& deadline) {
  return FhirError(ErrorCode::kTooCostly,
                   "the Bundle ran past the server's limit of " + std::to_string(deadline.limit_ms) +
                       " ms for a whole transaction or batch. A transaction is rolled back whole: nothing of it "
                       "was written. In a batch, this entry was not written; the entries answered before it "
                       "stand. Send smaller Bundles");
}

std::optional<int> ParseETagVersion(std::string_view etag) {
  if (etag.rfind("W/", 0) == 0) etag.remove_prefix(2);
  if (etag.size() >= 2 && etag.front() == '"' && etag.back() == '"') {
    etag = etag.substr(1, etag.size() - 2);
  }
  if (etag.empty() || etag.size() > 9) return std::nullopt;
  int v = 0;
  for (char c : etag) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v;
}

FhirService::FhirService(db::Database& db, const SchemaValidator& schema,
                         const SearchParamRegistry& registry, ServiceConfig config)
    : db_(db),
      schema_(schema),
      registry_(registry),
      indexer_(registry),
      parser_(registry, config.search),
      config_(config) {}

void FhirService::CheckResource(const std::string& type, const JsonValue& resource,
                                const std::string& path_prefix) const {
  if (!resource.IsObject()) {
    throw FhirError(ErrorCode::kInvalidResource, "the body must be a JSON object (a FHIR resource)");
  }
  auto rt = StringMember(resource, "resourceType");
  if (!rt) throw FhirError(ErrorCode::kInvalidResource, "resourceType is missing", path_prefix + "resourceType");
  if (*rt != type) {
    throw FhirError(ErrorCode::kInvalidResource,
                    "resourceType '" + std::string(*rt) + "' does not match the URL's type '" + type + "'",
                    path_prefix + "resourceType");
  }
  auto issues = schema_.Validate(resource);
  if (!issues.empty()) {
    if (!path_prefix.empty()) {
      for (auto& i : issues) i.diagnostics = path_prefix + i.diagnostics;
    }
    throw FhirError(ErrorCode::kInvalidResource, std::move(issues));
  }
}

JsonDoc FhirService::ParseResource(const std::string& type, std::string_view body) const {
  JsonDoc doc = ParseJson(body, config_.json);
  CheckResource(type, doc, "");
  return doc;
}

void FhirService::Notify(WriteContext& ctx, const WrittenResource& written) const {
  WrittenResource w = written;
  w.server_made = ctx.server_writes_ > 0;
  for (auto& listener : ctx.listeners_) listener->OnWrite(w);
}

void FhirService::Write(const std::function<void(WriteContext&)>& fn, const std::optional<Deadline>& deadline) {
  db_.Transact([&](db::ResourceStore& st) {
    AuditTransactionStarted();
    WriteContext ctx(*this, st);
    if (deadline) ctx.SetDeadline(*deadline, db_.config().statement_timeout_ms);
    for (const auto& factory : listener_factories_) ctx.listeners_.push_back(factory());
    fn(ctx);
    for (size_t i = 0; i < ctx.listeners_.size(); ++i) ctx.listeners_[i]->BeforeCommit(ctx);
    for (const auto& fn : ctx.after_listeners_) fn();
    ctx.CheckDeadline();  // done in time, or nothing of it commits
  });
  AuditTransactionCommitted();
}

void WriteContext::SetDeadline(const Deadline& deadline, int statement_timeout_ms) {
  deadline_ = deadline;
  armed_ms_ = statement_timeout_ms;
  CheckDeadline();
}

void WriteContext::CheckDeadline() {
  if (!deadline_) return;
  int64_t left = deadline_->RemainingMs();
  if (left <= 0) throw PastDeadline(*deadline_);
  // A statement started now must not outlive the deadline by much: re-arm once the timeout in
  // force exceeds the time left by an eighth (so a transaction re-arms a few dozen times at most).
  if (armed_ms_ > left + left / 8 + 20) {
    store_.SetStatementTimeout(left);
    armed_ms_ = left;
  }
}

void FhirService::Refresh(db::ResourceStore& st, Outcome& out, const RequestInfo& info) const {
  if (out.id.empty() || out.resource_type.empty() || (out.status != 200 && out.status != 201)) return;
  auto row = st.ReadCurrent(out.resource_type, out.id);
  if (!row || row->deleted || row->version == out.version) return;
  out = ReadOutcome(*row, info, out.status);
}

namespace {
struct ServerWrite {
  explicit ServerWrite(int& depth) : depth_(depth) { ++depth_; }
  ~ServerWrite() { --depth_; }
  int& depth_;
};
}  // namespace

Outcome WriteContext::Create(const std::string& type, JsonDoc& doc, const std::string& id) {
  ServerWrite mark(server_writes_);
  return service_.DoCreate(*this, type, doc, id, RequestInfo{});
}

Outcome WriteContext::Update(const std::string& type, const std::string& id, JsonDoc& doc) {
  ServerWrite mark(server_writes_);
  return service_.DoUpdate(*this, type, id, doc, RequestInfo{});
}

Outcome WriteContext::Current(const std::string& type, const std::string& id) {
  auto row = store_.ReadCurrent(type, id);
  if (!row || row->deleted) throw FhirError(ErrorCode::kNotFound, type + "/" + id + " is not known");
  return service_.ReadOutcome(*row, RequestInfo{}, 200);
}

std::vector<std::string> WriteContext::Search(const std::string& type, const std::string& query, int limit) {
  return service_.MatchIds(store_, type, ParseQueryString(query), limit);
}

Outcome FhirService::ReadOutcome(const db::VersionRow& row, const RequestInfo& info, int status) const {
  Outcome o;
  o.status = status;
  o.resource_type = row.type;
  o.id = row.id;
  o.version = row.version;
  o.etag = ETag(row.version);
  o.last_modified = FormatFhirInstant(row.last_updated_us);
  o.location = info.base_url + "/" + row.type + "/" + row.id + "/_history/" + std::to_string(row.version);
  o.body = row.content;
  return o;
}

namespace {

// Types without patient data: anyone who may read the type reads all of it.
bool SiteNeutral(const std::string& type) {
  static const std::set<std::string, std::less<>> k = {
      "CapabilityStatement", "OperationDefinition", "SearchParameter", "StructureDefinition", "CodeSystem",
      "ValueSet", "ConceptMap", "PlanDefinition", "ActivityDefinition", "Library", "NamingSystem",
      "Questionnaire", "Measure", "Organization", "Location", "HealthcareService", "Endpoint", "Practitioner",
      "PractitionerRole", "Medication", "Substance", "MeasureReport"};
  return k.count(type) > 0;
}

// The Patient a resource is about ("" when none): its subject, patient, for or beneficiary.
std::string PatientIdOf(const std::string& type, const JsonValue& r) {
  if (type == "Patient") return std::string(StringMember(r, "id").value_or(""));
  for (const char* field : {"subject", "patient", "for", "beneficiary"}) {
    const JsonValue* ref = Member(r, field);
    if (!ref || !ref->IsObject()) continue;
    std::string text(StringMember(*ref, "reference").value_or(""));
    if (text.rfind("Patient/", 0) == 0) {
      text = text.substr(8);
      return text.substr(0, text.find('/'));
    }
  }
  return "";
}

}  // namespace

std::optional<db::SiteScope> FhirService::SiteScopeFor(const std::string& type, const RequestInfo& info) const {
  if (!info.sites || SiteNeutral(type)) return std::nullopt;
  db::SiteScope scope;
  scope.sites = *info.sites;
  if (type == "Patient") {
    scope.kind = db::SiteScope::Kind::kPatientSelf;
  } else if (type == "EpisodeOfCare") {
    scope.kind = db::SiteScope::Kind::kCase;
  } else if (type == "Task") {
    scope.kind = db::SiteScope::Kind::kOwner;
  } else if (const auto* d = registry_.Find(type, "patient"); d && d->type == ParamType::kReference) {
    scope.kind = db::SiteScope::Kind::kPatientParam;
    scope.param = "patient";
  } else if (const auto* d2 = registry_.Find(type, "subject"); d2 && d2->type == ParamType::kReference) {
    scope.kind = db::SiteScope::Kind::kPatientParam;
    scope.param = "subject";
  } else {
    throw FhirError(ErrorCode::kForbidden, type + " cannot be attributed to a site: not available to a site's coordinator");
  }
  return scope;
}

bool FhirService::VisibleIn(db::ResourceStore& st, const std::string& type, const std::string& id,
                            const RequestInfo& info) const {
  auto scope = SiteScopeFor(type, info);
  if (!scope) return true;
  db::SearchSpec spec;
  spec.type = type;
  db::SearchPredicate id_is;
  id_is.table = db::SearchPredicate::Table::kId;
  id_is.param = "_id";
  db::SearchPredicate::Alternative alt;
  alt.code = id;
  id_is.any_of.push_back(alt);
  spec.where.push_back(id_is);
  spec.site_scope = scope;
  return !st.SearchIds(spec, 1).empty();
}

bool FhirService::Visible(const std::string& type, const std::string& id, const RequestInfo& info) {
  if (!info.sites) return true;
  bool visible = false;
  db_.Read([&](db::ResourceStore& st) { visible = VisibleIn(st, type, id, info); });
  return visible;
}

void FhirService::CheckWriteScope(db::ResourceStore& st, const std::string& type, const JsonValue& resource,
                                  const RequestInfo& info) const {
  if (!info.sites || SiteNeutral(type)) return;
  std::string patient = PatientIdOf(type, resource);
  if (type == "Patient") return;  // a new patient has no case yet; an existing one is checked by id
  if (patient.empty() || !VisibleIn(st, "Patient", patient, info)) {
    throw FhirError(ErrorCode::kForbidden, "a " + type + " about a patient of another site (or of none) cannot be written here");
  }
}

Outcome FhirService::Read(const std::string& type, const std::string& id, const RequestInfo& info) {
  std::optional<db::VersionRow> row;
  bool visible = true;
  db_.Read([&](db::ResourceStore& st) {
    row = st.ReadCurrent(type, id);
    if (row && info.sites) visible = VisibleIn(st, type, id, info);
  });
  if (!row || !visible) throw FhirError(ErrorCode::kNotFound, type + "/" + id + " is not known");
  if (row->deleted) throw FhirError(ErrorCode::kGone, type + "/" + id + " was deleted");
  Outcome o = ReadOutcome(*row, RequestInfo{}, 200);
  o.location.clear();
  return o;
}

Outcome FhirService::VRead(const std::string& type, const std::string& id, const std::string& version,
                           const RequestInfo& info) {
  auto v = ParseETagVersion(version);
  if (!v) throw FhirError(ErrorCode::kNotFound, "version '" + version + "' is not a version of " + type + "/" + id);
  std::optional<db::VersionRow> row;
  bool visible = true;
  db_.Read([&](db::ResourceStore& st) {
    row = st.ReadVersion(type, id, *v);
    if (row && info.sites) visible = VisibleIn(st, type, id, info);
  });
  if (!row || !visible) throw FhirError(ErrorCode::kNotFound, type + "/" + id + "/_history/" + version + " is not known");
  if (row->deleted) {
    throw FhirError(ErrorCode::kGone, type + "/" + id + "/_history/" + version + " is a deletion");
  }
  Outcome o = ReadOutcome(*row, RequestInfo{}, 200);
  o.location.clear();
  return o;
}

Outcome FhirService::DoCreate(WriteContext& ctx, const std::string& type, JsonDoc& doc,
                              const std::string& id, const RequestInfo& info) {
  db::ResourceStore& st = ctx.store();
  int64_t now = NowInstant();
  Stamp(doc, id, 1, now);
  db::VersionRow row{type, id, 1, now, false, "POST", Serialize(doc)};
  if (!st.InsertNew(row, indexer_.Extract(type, doc))) {
    throw FhirError(ErrorCode::kConflict, type + "/" + id + " exists already");
  }
  Notify(ctx, {type, id, 1, true, false, &doc});
  return ReadOutcome(row, info, 201);
}

Outcome FhirService::DoUpdate(WriteContext& ctx, const std::string& type, const std::string& id,
                              JsonDoc& doc, const RequestInfo& info, bool allow_create) {
  db::ResourceStore& st = ctx.store();
  auto current = st.LockCurrent(type, id);
  std::optional<int> expected;
  if (info.if_match) {
    expected = ParseETagVersion(*info.if_match);
    if (!expected) throw FhirError(ErrorCode::kBadRequest, "If-Match must be an ETag such as W/\"3\"");
  }
  if (!current) {
    if (expected) {
      throw FhirError(ErrorCode::kPreconditionFailed,
                      "If-Match names version " + std::to_string(*expected) + " but " + type + "/" +
                          id + " does not exist");
    }
    if (!allow_create) throw FhirError(ErrorCode::kNotFound, type + "/" + id + " is not known");
    if (type == "EpisodeOfCare" && !info.case_members_editable.empty()) {
      throw FhirError(ErrorCode::kForbidden, "your role does not open FLS cases by update: EpisodeOfCare/" + id + " is not known");
    }
    int64_t now = NowInstant();
    Stamp(doc, id, 1, now);
    db::VersionRow row{type, id, 1, now, false, "PUT", Serialize(doc)};
    if (st.InsertNew(row, indexer_.Extract(type, doc))) {
      Notify(ctx, {type, id, 1, true, false, &doc});
      return ReadOutcome(row, info, 201);
    }
    // Another client created it meanwhile: its transaction has committed; update on top of it.
    current = st.LockCurrent(type, id);
    if (!current) throw FhirError(ErrorCode::kConflict, "concurrent change of " + type + "/" + id);
  }
  if (expected && *expected != current->version) {
    throw FhirError(ErrorCode::kPreconditionFailed,
                    "version conflict: If-Match names version " + std::to_string(*expected) +
                        " but the current version of " + type + "/" + id + " is " +
                        std::to_string(current->version));
  }
  if (type == "EpisodeOfCare" && !info.case_members_editable.empty()) {
    auto stored = st.ReadCurrent(type, id);
    if (stored && !stored->deleted) CheckCaseEdit(stored->content, doc, info.case_members_editable);
  }
  int version = current->version + 1;
  int64_t now = NowInstant();
  Stamp(doc, id, version, now);
  db::VersionRow row{type, id, version, now, false, "PUT", Serialize(doc)};
  // Conditional keys stay with the resource: dropping them here would reopen the window in which
  // two conditional creates that both saw no match each create one. A key whose resource no
  // longer matches is moved on by ClaimConditionalKey.
  st.InsertNextVersion(row, indexer_.Extract(type, doc));
  Notify(ctx, {type, id, version, current->deleted, false, &doc});
  return ReadOutcome(row, info, current->deleted ? 201 : 200);
}

Outcome FhirService::DoDelete(WriteContext& ctx, const std::string& type, const std::string& id,
                              const RequestInfo& info) {
  db::ResourceStore& st = ctx.store();
  auto current = st.LockCurrent(type, id);
  Outcome o;
  o.status = 204;
  o.resource_type = type;
  o.id = id;
  if (!current) {
    // R4 http.html#delete lets a server answer 204 for a resource it never had; deletes are then
    // idempotent, which is what a replaying interface engine needs.
    if (info.if_match) {
      throw FhirError(ErrorCode::kPreconditionFailed, type + "/" + id + " does not exist");
    }
    return o;
  }
  if (info.if_match) {
    auto expected = ParseETagVersion(*info.if_match);
    if (!expected) throw FhirError(ErrorCode::kBadRequest, "If-Match must be an ETag such as W/\"3\"");
    if (*expected != current->version) {
      throw FhirError(ErrorCode::kPreconditionFailed,
                      "version conflict: If-Match names version " + std::to_string(*expected) +
                          " but the current version is " + std::to_string(current->version));
    }
  }
  if (current->deleted) {
    o.version = current->version;
    o.etag = ETag(current->version);
    return o;
  }
  int version = current->version + 1;
  int64_t now = NowInstant();
  st.InsertDeletion({type, id, version, now, true, "DELETE", ""});
  Notify(ctx, {type, id, version, false, true, nullptr});
  o.version = version;
  o.etag = ETag(version);
  o.last_modified = FormatFhirInstant(now);
  return o;
}

std::vector<std::string> FhirService::MatchIds(db::ResourceStore& st, const std::string& type,
                                               const std::vector<QueryParam>& query, int limit) const {
  SearchRequest req = parser_.Parse(type, query, false);
  if (req.spec.where.empty()) {
    throw FhirError(ErrorCode::kBadRequest, "a conditional operation needs search criteria");
  }
  return st.SearchIds(req.spec, limit);
}

std::optional<std::string> FhirService::ClaimConditionalKey(db::ResourceStore& st,
                                                            const std::string& type,
                                                            const SearchRequest& req,
                                                            const std::string& new_id) const {
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto owner = st.ClaimConditionalKey(type, req.canonical_query, new_id);
    if (!owner) return std::nullopt;
    // The key's resource may have changed since it was created: it counts only if it matches.
    db::SearchSpec still = req.spec;
    db::SearchPredicate id_is;
    id_is.table = db::SearchPredicate::Table::kId;
    id_is.param = "_id";
    db::SearchPredicate::Alternative alt;
    alt.code = *owner;
    id_is.any_of.push_back(alt);
    still.where.push_back(id_is);
    if (!st.SearchIds(still, 1).empty()) return owner;
    if (st.ReplaceConditionalKeyOwner(type, req.canonical_query, *owner, new_id)) return std::nullopt;
  }
  throw FhirError(ErrorCode::kConflict, "concurrent conditional writes on the same criteria; retry");
}

std::optional<Outcome> FhirService::FindForConditionalCreate(db::ResourceStore& st,
                                                             const std::string& type,
                                                             const std::string& query,
                                                             const std::string& new_id,
                                                             const RequestInfo* info) {
  auto params = ParseQueryString(query);
  SearchRequest req = parser_.Parse(type, params, false);
  if (req.spec.where.empty()) {
    throw FhirError(ErrorCode::kBadRequest, "If-None-Exist needs search criteria");
  }
  // A site's coordinator matches (and is answered) only its own sites' resources; a match
  // elsewhere is not revealed, and the create goes ahead.
  if (info) req.spec.site_scope = SiteScopeFor(type, *info);
  auto ids = st.SearchIds(req.spec, 2);
  if (ids.size() > 1) {
    throw FhirError(ErrorCode::kPreconditionFailed,
                    "If-None-Exist matches several " + type + " resources");
  }
  std::optional<std::string> existing;
  if (ids.size() == 1) {
    existing = ids[0];
  } else {
    existing = ClaimConditionalKey(st, type, req, new_id);
  }
  if (!existing) return std::nullopt;
  auto row = st.ReadCurrent(type, *existing);
  if (!row || row->deleted) {
    throw FhirError(ErrorCode::kConflict, "a concurrent change touched the matching " + type);
  }
  Outcome o = ReadOutcome(*row, RequestInfo{}, 200);
  return o;
}

Outcome FhirService::Create(const std::string& type, std::string_view body, const RequestInfo& info) {
  JsonDoc parsed = ParseResource(type, body);
  Outcome out;
  Write([&](WriteContext& ctx) {
    db::ResourceStore& st = ctx.store();
    ctx.AfterListeners([&] { Refresh(st, out, info); });
    JsonDoc doc;
    doc.CopyFrom(parsed, doc.GetAllocator());  // a retried transaction starts from the body again
    std::string id = NewUuid();
    CheckWriteScope(st, type, doc, info);
    if (info.if_none_exist) {
      if (auto found = FindForConditionalCreate(st, type, *info.if_none_exist, id, &info)) {
        out = *found;
        out.location = info.base_url + "/" + type + "/" + out.id + "/_history/" + std::to_string(out.version);
        return;
      }
    }
    out = DoCreate(ctx, type, doc, id, info);
  }, info.deadline);
  return out;
}

Outcome FhirService::Update(const std::string& type, const std::string& id, std::string_view body,
                            const RequestInfo& info) {
  if (!IsValidId(id)) throw FhirError(ErrorCode::kBadRequest, "the id in the URL is not a valid FHIR id");
  JsonDoc parsed = ParseResource(type, body);
  auto body_id = StringMember(parsed, "id");
  if (!body_id) {
    throw FhirError(ErrorCode::kBadRequest, "the resource has no id; an update needs the URL's id in the body", "id");
  }
  if (*body_id != id) {
    throw FhirError(ErrorCode::kBadRequest,
                    "the resource's id '" + std::string(*body_id) + "' differs from the URL's id '" + id + "'", "id");
  }
  Outcome out;
  Write([&](WriteContext& ctx) {
    ctx.AfterListeners([&] { Refresh(ctx.store(), out, info); });
    JsonDoc doc;
    doc.CopyFrom(parsed, doc.GetAllocator());
    if (info.sites) {
      auto existing = ctx.store().ReadCurrent(type, id);
      if (existing && !existing->deleted && !VisibleIn(ctx.store(), type, id, info)) {
        throw FhirError(ErrorCode::kNotFound, type + "/" + id + " is not known");
      }
      CheckWriteScope(ctx.store(), type, doc, info);
    }
    out = DoUpdate(ctx, type, id, doc, info);
  }, info.deadline);
  return out;
}

Outcome FhirService::ConditionalUpdate(const std::string& type, const std::vector<QueryParam>& query,
                                       std::string_view body, const RequestInfo& info) {
  JsonDoc parsed = ParseResource(type, body);
  auto body_id = StringMember(parsed, "id");
  SearchRequest req = parser_.Parse(type, query, false);
  if (req.spec.where.empty()) throw FhirError(ErrorCode::kBadRequest, "a conditional update needs search criteria");
  req.spec.site_scope = SiteScopeFor(type, info);
  Outcome out;
  Write([&](WriteContext& ctx) {
    db::ResourceStore& st = ctx.store();
    ctx.AfterListeners([&] { Refresh(st, out, info); });
    JsonDoc doc;
    doc.CopyFrom(parsed, doc.GetAllocator());
    CheckWriteScope(st, type, doc, info);
    auto ids = st.SearchIds(req.spec, 2);
    if (ids.size() > 1) {
      throw FhirError(ErrorCode::kPreconditionFailed, "the criteria match several " + type + " resources");
    }
    std::string id;
    if (ids.size() == 1) {
      id = ids[0];
      if (body_id && *body_id != id) {
        throw FhirError(ErrorCode::kBadRequest, "the resource's id differs from the matching resource's id", "id");
      }
    } else {
      id = body_id ? std::string(*body_id) : NewUuid();
      if (auto owner = ClaimConditionalKey(st, type, req, id)) id = *owner;
    }
    if (info.sites) {
      // No match among its sites' resources: the id (the body's, or a claimed key's) must not be
      // another site's resource.
      auto existing = st.ReadCurrent(type, id);
      if (existing && !existing->deleted && !VisibleIn(st, type, id, info)) {
        throw FhirError(ErrorCode::kNotFound, type + "/" + id + " is not known");
      }
    }
    out = DoUpdate(ctx, type, id, doc, info);
  }, info.deadline);
  return out;
}

Outcome FhirService::Delete(const std::string& type, const std::string& id, const RequestInfo& info) {
  if (!IsValidId(id)) throw FhirError(ErrorCode::kBadRequest, "the id in the URL is not a valid FHIR id");
  Outcome out;
  Write([&](WriteContext& ctx) {
    if (info.sites && !VisibleIn(ctx.store(), type, id, info)) {
      throw FhirError(ErrorCode::kNotFound, type + "/" + id + " is not known");
    }
    out = DoDelete(ctx, type, id, info);
  }, info.deadline);
  return out;
}

Outcome FhirService::ConditionalDelete(const std::string& type, const std::vector<QueryParam>& query,
                                       const RequestInfo& info) {
  Outcome out;
  Write([&](WriteContext& ctx) {
    auto ids = MatchIds(ctx.store(), type, query, 2);
    if (ids.size() > 1) {
      throw FhirError(ErrorCode::kPreconditionFailed, "the criteria match several " + type + " resources");
    }
    if (!ids.empty() && info.sites && !VisibleIn(ctx.store(), type, ids[0], info)) ids.clear();
    if (ids.empty()) {
      out = Outcome{};
      out.status = 204;
      return;
    }
    out = DoDelete(ctx, type, ids[0], info);
  }, info.deadline);
  return out;
}

Outcome FhirService::Search(const std::string& type, const std::vector<QueryParam>& query,
                            const RequestInfo& info) {
  SearchRequest req = parser_.Parse(type, query, info.lenient);
  req.spec.site_scope = SiteScopeFor(type, info);
  int count = req.summary_count ? 0 : req.count;
  std::string type_url = info.base_url + "/" + type;
  std::string self = type_url + (req.canonical_query.empty() ? "" : "?" + req.canonical_query);
  bool id_order = req.spec.sort.empty() ||
                  (req.spec.sort.size() == 1 && req.spec.sort[0].table == db::SearchPredicate::Table::kId &&
                   !req.spec.sort[0].descending);
  db::SearchPage page;
  BundleLinks links;
  if (req.snapshot_id.empty() && id_order && count > 0) {
    // Id order: keyset paging, no snapshot (ids never change, so pages neither repeat nor skip).
    db_.Read([&](db::ResourceStore& st) {
      page = st.SearchAfter(req.spec, count, req.cursor);
      bool want_total = req.total != SearchRequest::Total::kNone && req.cursor.empty();
      if (want_total) {
        page.total = page.has_more ? static_cast<int>(st.Count(req.spec)) : static_cast<int>(page.rows.size());
      }
    });
    std::string sep = req.canonical_query.empty() ? "?" : "&";
    std::string page_base = self + sep + "_count=" + std::to_string(count) +
                            (req.spec.sort.empty() ? "" : "&_sort=_id");
    links.self = req.cursor.empty() ? self : page_base + "&_cursor=" + req.cursor;
    if (page.has_more && !page.rows.empty()) links.next = page_base + "&_cursor=" + page.rows.back().id;
  } else {
    bool gone = false;
    db_.Transact([&](db::ResourceStore& st) {
      if (!req.snapshot_id.empty()) {
        auto p = st.SnapshotPage(req.snapshot_id, type, req.snapshot_offset, std::max(count, 1));
        if (!p) {
          gone = true;
          return;
        }
        page = std::move(*p);
      } else {
        page = st.Search(req.spec, count);
      }
    });
    if (gone) throw FhirError(ErrorCode::kGone, "this page's search has expired; run the search again");
    if (!page.snapshot_id.empty()) {
      auto page_url = [&](int offset) {
        return type_url + "?_getpages=" + page.snapshot_id + "&_getpagesoffset=" + std::to_string(offset) +
               "&_count=" + std::to_string(count);
      };
      links.self = page_url(page.offset);
      if (page.has_more) links.next = page_url(page.offset + count);
      if (page.offset > 0) links.previous = page_url(std::max(0, page.offset - count));
    } else {
      links.self = self;
    }
  }
  std::vector<db::VersionRow> included;
  if (!page.rows.empty() && (!req.includes.empty() || !req.revincludes.empty())) {
    bool truncated = false;
    db_.Read([&](db::ResourceStore& st) { included = Included(st, type, req, page.rows, truncated); });
    if (info.may || info.sites) {
      // What the requester may not read is left out, and said so (a quality analyst's
      // `_include=Task:patient` reaches no Patient; a coordinator's, no other site's patient).
      size_t before = included.size();
      db_.Read([&](db::ResourceStore& st) {
        included.erase(std::remove_if(included.begin(), included.end(),
                                      [&](const db::VersionRow& r) {
                                        if (info.may && !info.may(r.type, 'r')) return true;
                                        try {
                                          return info.sites && !VisibleIn(st, r.type, r.id, info);
                                        } catch (const FhirError&) {
                                          return true;  // a type no site owns
                                        }
                                      }),
                       included.end());
      });
      if (included.size() != before) {
        req.warnings.push_back({"information", "suppressed",
                                "_include/_revinclude: resources of types the token may not read were left out", ""});
      }
    }
    if (truncated) {
      // R4 search.html#errors: what the server left out is said in an OperationOutcome entry.
      req.warnings.push_back({"warning", "incomplete",
                              "_include/_revinclude: the cap of " + std::to_string(config_.search.max_include) +
                                  " included resources per page was reached; more were left out. Narrow the "
                                  "search or lower _count",
                              ""});
    }
  }
  std::optional<int> total = page.total;
  if (req.total == SearchRequest::Total::kNone) total.reset();
  Outcome o;
  o.status = 200;
  o.body = SearchsetBundle(page.rows, info.base_url, total, links, req.warnings, included);
  return o;
}

std::vector<db::VersionRow> FhirService::Included(db::ResourceStore& st, const std::string& type,
                                                  const SearchRequest& req,
                                                  const std::vector<db::VersionRow>& matches, bool& truncated) const {
  const size_t cap = static_cast<size_t>(config_.search.max_include);
  std::vector<std::string> ids;
  std::set<std::string> seen;
  for (const auto& m : matches) {
    ids.push_back(m.id);
    seen.insert(m.type + "/" + m.id);
  }
  std::vector<db::VersionRow> out;
  truncated = false;
  auto add = [&](std::vector<db::VersionRow> rows) {
    for (auto& r : rows) {
      if (!seen.insert(r.type + "/" + r.id).second) continue;  // a match, or included already
      if (out.size() == cap) {
        truncated = true;
        return;
      }
      out.push_back(std::move(r));
    }
  };
  // Each query asks for one row more than could be new (at most seen.size() of its rows are not):
  // when it fills its limit, at least cap + 1 new resources exist and the cap truncates.
  auto limit = [&] { return static_cast<int>(cap + 1 + seen.size()); };
  for (const auto& inc : req.includes) {
    if (truncated) break;
    add(st.ReferencedBy(type, ids, inc.param, inc.target_type, limit()));
  }
  for (const auto& inc : req.revincludes) {
    if (truncated) break;
    add(st.Referring(inc.source_type, inc.param, type, ids, limit()));
  }
  return out;
}

Outcome FhirService::History(const std::string& type, const std::string& id,
                             const std::vector<QueryParam>& query, const RequestInfo& info) {
  if (info.sites && SiteScopeFor(type.empty() ? "Bundle" : type, info)) {
    // History lists every version, including those of other sites' patients: only one's own
    // resource's history is open to a site's coordinator.
    if (id.empty()) throw FhirError(ErrorCode::kForbidden, "type history is not available to a site's coordinator; search instead");
    if (!Visible(type, id, info)) throw FhirError(ErrorCode::kNotFound, type + "/" + id + " is not known");
  }
  db::HistoryQuery hq;
  if (!type.empty()) hq.type = type;
  if (!id.empty()) hq.id = id;
  hq.count = config_.search.default_count;
  for (const auto& p : query) {
    if (p.name == "_count") {
      int n = 0;
      try {
        n = std::stoi(p.value);
      } catch (...) {
        n = -1;
      }
      if (n < 1) throw FhirError(ErrorCode::kBadRequest, "_count must be a positive integer", "_count");
      hq.count = std::min(n, config_.search.max_count);
    } else if (p.name == "_since") {
      auto r = ParseFhirDate(p.value);
      if (!r) throw FhirError(ErrorCode::kBadRequest, "_since must be an instant", "_since");
      hq.since = FormatPgInstant(r->lo_us);
    } else if (p.name == "_cursor") {
      try {
        hq.before_seq = std::stoll(p.value);
      } catch (...) {
        throw FhirError(ErrorCode::kBadRequest, "_cursor is not a page token of this server", "_cursor");
      }
    } else if (p.name == "_format" || p.name == "_pretty") {
      continue;
    } else if (!info.lenient) {
      throw FhirError(ErrorCode::kBadRequest, "history does not support the parameter '" + p.name + "'", p.name);
    }
  }
  db::HistoryPage page;
  bool exists = true;
  db_.Read([&](db::ResourceStore& st) {
    page = st.History(hq);
    if (hq.id && page.entries.empty() && !hq.before_seq) exists = st.ReadCurrent(type, id).has_value();
  });
  if (!exists) throw FhirError(ErrorCode::kNotFound, type + "/" + id + " is not known");
  std::string url = info.base_url + (type.empty() ? "" : "/" + type) + (id.empty() ? "" : "/" + id) + "/_history";
  std::string common = "_count=" + std::to_string(hq.count);
  for (const auto& p : query) {
    if (p.name == "_since") common += "&_since=" + PercentEncode(p.value);
  }
  BundleLinks links;
  links.self = url + "?" + common + (hq.before_seq ? "&_cursor=" + std::to_string(*hq.before_seq) : "");
  if (page.has_more && !page.entries.empty()) {
    links.next = url + "?" + common + "&_cursor=" + std::to_string(page.entries.back().seq);
  }
  Outcome o;
  o.status = 200;
  o.body = HistoryBundle(page.entries, info.base_url, page.total, links);
  return o;
}

}  // namespace fls::fhir
