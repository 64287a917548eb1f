#include "fhir/audit.h"

#include <algorithm>
#include <functional>
#include <set>

#include "fhir/fhir_date.h"
#include "fhir/json_builder.h"
#include "fhir/text.h"

namespace fls::fhir {

namespace {

struct ThreadAudit {
  AuditRecord* record = nullptr;
  bool audited_in_transaction = false;
  bool pending = false;  // this transaction attempt wrote the record; not committed yet
};
thread_local ThreadAudit t_audit;

constexpr size_t kMaxEntities = 100;

std::string Str(const JsonValue& v, const char* k) { return std::string(StringMember(v, k).value_or("")); }

void AddUnique(std::vector<std::string>& list, const std::string& value) {
  if (value.empty() || list.size() >= kMaxEntities) return;
  if (std::find(list.begin(), list.end(), value) == list.end()) list.push_back(value);
}

// The Patient a resource is about: itself, or its subject / patient / for / beneficiary.
std::string PatientOf(const std::string& type, const std::string& id, const JsonValue& r) {
  if (type == "Patient") return "Patient/" + id;
  for (const char* field : {"subject", "patient", "for", "beneficiary"}) {
    const JsonValue* ref = Member(r, field);
    if (!ref || !ref->IsObject()) continue;
    std::string text = Str(*ref, "reference");
    if (text.rfind("Patient/", 0) == 0) return text.substr(0, text.find("/_history"));
  }
  return "";
}

void AddResource(AuditRecord& record, const JsonValue& r) {
  if (!r.IsObject()) return;
  std::string type = Str(r, "resourceType"), id = Str(r, "id");
  if (type.empty() || id.empty() || type == "OperationOutcome") return;
  AddUnique(record.entities, type + "/" + id);
  AddUnique(record.patients, PatientOf(type, id, r));
}

const char* OutcomeCode(int status) {
  if (status < 400) return "0";  // success
  if (status < 500) return "4";  // minor failure: the request was refused
  return "8";                    // serious failure: the server failed
}

std::string Base64(std::string_view in) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    out += k[v >> 18];
    out += k[(v >> 12) & 63];
    out += k[(v >> 6) & 63];
    out += k[v & 63];
  }
  if (i + 1 == in.size()) {
    uint32_t v = uint8_t(in[i]) << 16;
    out += k[v >> 18];
    out += k[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out += k[v >> 18];
    out += k[(v >> 12) & 63];
    out += k[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

class AuditListener : public TransactionListener {
 public:
  void OnWrite(const WrittenResource& w) override {
    if (w.type == "AuditEvent") return;
    if (AuditRecord* rec = t_audit.record; rec) {
      written_.push_back(w.type + "/" + w.id + (w.version ? "/_history/" + std::to_string(w.version) : ""));
      if (w.resource) {
        std::string p = PatientOf(w.type, w.id, *w.resource);
        if (!p.empty()) patients_.insert(p);
      }
    }
  }
  void BeforeCommit(WriteContext& ctx) override {
    AuditRecord* rec = t_audit.record;
    if (!rec || written_.empty()) return;
    AuditRecord copy = *rec;
    copy.status = copy.status ? copy.status : 200;
    copy.recorded_us = NowMicros();
    for (const auto& e : written_) AddUnique(copy.entities, e);
    for (const auto& p : patients_) AddUnique(copy.patients, p);
    JsonDoc doc = AuditEventResource(copy);
    ctx.Create("AuditEvent", doc, NewUuid());
    t_audit.pending = true;
  }

 private:
  std::vector<std::string> written_;
  std::set<std::string> patients_;
};

}  // namespace

void AuditTransactionStarted() { t_audit.pending = false; }

void AuditTransactionCommitted() {
  if (t_audit.pending) t_audit.audited_in_transaction = true;
  t_audit.pending = false;
}

std::string RedactedQuery(std::string_view query) {
  static const char* kSecret[] = {"access_token", "client_assertion", "code", "password", "token", "refresh_token"};
  std::string out;
  size_t i = 0;
  while (i <= query.size()) {
    size_t j = query.find('&', i);
    if (j == std::string_view::npos) j = query.size();
    std::string_view part = query.substr(i, j - i);
    std::string_view name = part.substr(0, part.find('='));
    bool secret = false;
    for (const char* k : kSecret) secret = secret || name == k;
    if (!out.empty() || i > 0) out += '&';
    if (secret) {
      out += std::string(name) + "=REDACTED";
    } else {
      out += std::string(part);
    }
    i = j + 1;
  }
  if (out.size() > 1000) out = out.substr(0, 1000) + "...";
  return out;
}

AuditScope::AuditScope(AuditRecord& record) {
  t_audit.record = &record;
  t_audit.audited_in_transaction = false;
}

AuditScope::~AuditScope() {
  t_audit.record = nullptr;
  t_audit.audited_in_transaction = false;
}

bool AuditScope::audited_in_transaction() const { return t_audit.audited_in_transaction; }

AuditRecord* CurrentAudit() { return t_audit.record; }

JsonDoc AuditEventResource(const AuditRecord& r) {
  Json j;
  j.Obj().S("resourceType", "AuditEvent");
  const bool login = r.interaction == "login" || r.interaction == "logout";
  if (login) {
    const bool out = r.interaction == "logout";
    j.Key("type").Obj().S("system", "http://dicom.nema.org/resources/ontology/DCM").S("code", "110114").S("display", "User Authentication").End();
    j.Arr("subtype").Obj().S("system", "http://dicom.nema.org/resources/ontology/DCM").S("code", out ? "110123" : "110122").S("display", out ? "Logout" : "Login").End().EndArr();
  } else {
    j.Key("type").Obj().S("system", "http://terminology.hl7.org/CodeSystem/audit-event-type").S("code", "rest").S("display", "RESTful Operation").End();
    if (!r.interaction.empty()) {
      j.Arr("subtype").Obj().S("system", "http://hl7.org/fhir/restful-interaction").S("code", r.interaction).End().EndArr();
    }
  }
  j.S("action", std::string(1, r.action));
  j.S("recorded", FormatFhirInstant(r.recorded_us ? r.recorded_us : NowMicros()));
  j.S("outcome", OutcomeCode(r.status));
  std::string desc = std::to_string(r.status) + (r.outcome_text.empty() ? "" : " " + r.outcome_text);
  j.S("outcomeDesc", desc.substr(0, 1000));
  j.Arr("agent").Obj();
  j.Key("type").Obj().Arr("coding").Obj().S("system", "http://fls-server.org/fhir/CodeSystem/fls-role").S("code", r.role.empty() ? "none" : r.role).End().EndArr().End();
  j.Key("who").Obj();
  if (!r.client_id.empty()) j.Key("identifier").Obj().S("system", r.issuer.empty() ? "urn:fls-server:client" : r.issuer).S("value", r.client_id).End();
  j.S("display", r.subject.empty() ? (r.client_id.empty() ? "unauthenticated" : r.client_id) : r.subject).End();
  if (!r.client_id.empty()) j.S("altId", r.client_id);
  j.S("name", r.subject.empty() ? (r.client_id.empty() ? "unauthenticated" : r.client_id) : r.subject);
  j.B("requestor", true);
  if (!r.address.empty()) j.Key("network").Obj().S("address", r.address).S("type", "2").End();
  j.End().EndArr();
  j.Key("source").Obj().S("site", "fls-server").Key("observer").Obj().S("display", "fls-server").End();
  j.Arr("type").Obj().S("system", "http://terminology.hl7.org/CodeSystem/security-source-type").S("code", "4").S("display", "Application Server").End().EndArr();
  j.End();
  j.Arr("entity");
  for (const auto& p : r.patients) {
    j.Obj().Key("what").Obj().S("reference", p).End();
    j.Key("type").Obj().S("system", "http://terminology.hl7.org/CodeSystem/audit-entity-type").S("code", "1").S("display", "Person").End();
    j.Key("role").Obj().S("system", "http://terminology.hl7.org/CodeSystem/object-role").S("code", "1").S("display", "Patient").End();
    j.End();
  }
  for (const auto& e : r.entities) {
    if (std::find(r.patients.begin(), r.patients.end(), e) != r.patients.end()) continue;
    j.Obj().Key("what").Obj().S("reference", e).End();
    j.Key("type").Obj().S("system", "http://terminology.hl7.org/CodeSystem/audit-entity-type").S("code", "2").S("display", "System Object").End();
    j.End();
  }
  // The request itself: method, path and query, and the request id that joins the server's log.
  j.Obj().Key("type").Obj().S("system", "http://terminology.hl7.org/CodeSystem/audit-entity-type").S("code", "2").End();
  j.S("description", (r.method + " " + r.path).substr(0, 2000));
  if (!r.query.empty()) j.S("query", Base64(RedactedQuery(r.query)));
  j.Arr("detail");
  j.Obj().S("type", "request-id").S("valueString", r.request_id.empty() ? "-" : r.request_id).End();
  if (!r.forwarded.empty()) j.Obj().S("type", "x-forwarded-for").S("valueString", r.forwarded.substr(0, 500)).End();
  j.EndArr().End();
  j.EndArr();
  j.End();
  return j.Doc();
}

void AddAnswerEntities(AuditRecord& record, std::string_view body) {
  if (body.empty() || body.front() != '{') return;
  JsonDoc d;
  try {
    d = ParseJson(body, JsonLimits{1 << 20});
  } catch (...) {
    return;
  }
  if (!d.IsObject()) return;
  // A resource, a searchset, or a batch/transaction response whose entries are searchsets.
  std::function<void(const JsonValue&, int)> add = [&](const JsonValue& r, int depth) {
    if (!r.IsObject()) return;
    if (Str(r, "resourceType") != "Bundle") {
      AddResource(record, r);
      return;
    }
    const JsonValue* entries = Member(r, "entry");
    if (!entries || !entries->IsArray() || depth > 1) return;
    for (const auto& e : entries->GetArray()) {
      if (const JsonValue* inner = e.IsObject() ? Member(e, "resource") : nullptr) add(*inner, depth + 1);
    }
  };
  add(d, 0);
}

void WriteAudit(FhirService& service, const AuditRecord& record) {
  AuditRecord copy = record;
  if (!copy.recorded_us) copy.recorded_us = NowMicros();
  JsonDoc doc = AuditEventResource(copy);
  service.Write([&](WriteContext& ctx) {
    JsonDoc mine;
    mine.CopyFrom(doc, mine.GetAllocator());
    ctx.Create("AuditEvent", mine, NewUuid());
  });
}

ListenerFactory MakeAuditListener() {
  return [] { return std::make_unique<AuditListener>(); };
}

}  // namespace fls::fhir
