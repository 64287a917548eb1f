#pragma once
// The audit trail (docs/security.md): one R4 AuditEvent per request that reaches patient data or
// is refused, saying who (the client, the user, the role), from where (the address), what (the
// interaction, the resources and the patients concerned, the query), when and with what outcome.
// A write's AuditEvent is written by a transaction listener in the same transaction as the data
// (it commits or rolls back with it); reads, searches, refusals and failed writes get theirs in a
// transaction of their own once the answer is known. AuditEvents are never written, changed or
// deleted through the API (server/auth.cpp).
//
// The request being served is a thread-local AuditScope: a worker serves one request at a time,
// and every transaction of a request runs on its worker thread.

#include <cstdint>
#include <string>
#include <vector>

#include "fhir/fhir_service.h"

namespace fls::fhir {

struct AuditRecord {
  // Who.
  std::string subject;    // the user or the client
  std::string client_id;
  std::string role;
  std::string issuer;     // "" for the server's own tokens
  std::string address;    // the peer's IP address
  std::string forwarded;  // X-Forwarded-For as received (not trusted, kept for the record)
  // What.
  std::string request_id;
  std::string method, path, query;
  std::string interaction;  // restful-interaction code (read, search-type, create, operation...) or "login"
  char action = 'R';        // C R U D E
  int status = 0;           // the HTTP status answered
  std::string outcome_text; // the error, for refusals and failures
  std::vector<std::string> entities;  // "Type/id" reached or written
  std::vector<std::string> patients;  // "Patient/id" whose data it was
  int64_t recorded_us = 0;
};

// FhirService::Write calls these around each transaction: a write's AuditEvent counts as the
// request's record only once its transaction committed.
void AuditTransactionStarted();
void AuditTransactionCommitted();

// The query as it may be kept: secrets (access_token, client_assertion, code, password, token)
// replaced, at most 1,000 bytes.
std::string RedactedQuery(std::string_view query);

// Makes `record` the request being served on this thread until destruction.
class AuditScope {
 public:
  explicit AuditScope(AuditRecord& record);
  ~AuditScope();
  AuditScope(const AuditScope&) = delete;
  AuditScope& operator=(const AuditScope&) = delete;
  // True once a write transaction of this request committed its AuditEvent.
  bool audited_in_transaction() const;
};
AuditRecord* CurrentAudit();

// The AuditEvent of a record, as JSON.
JsonDoc AuditEventResource(const AuditRecord& record);

// Adds the resources of an answer (a resource, or a Bundle's entries) and their patients to the
// record, up to 100 of each.
void AddAnswerEntities(AuditRecord& record, std::string_view body);

// Writes the record in a transaction of its own. Throws on a database failure (the caller then
// does not answer with the data).
void WriteAudit(FhirService& service, const AuditRecord& record);

// The listener that writes a request's AuditEvent in the same transaction as its writes.
// REQUIRES: registered after every other listener (it reports what they wrote too).
ListenerFactory MakeAuditListener();

}  // namespace fls::fhir
