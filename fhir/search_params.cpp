#include "fhir/search_params.h"

#include <cstdint>
#include <cstdio>

#include <algorithm>

#include "fhir/schema_validator.h"

namespace fls::fhir {

namespace {

struct Row {
  const char* type;
  const char* name;
  ParamType kind;
  std::vector<std::string> paths;
  std::vector<std::string> targets;
};

using P = ParamType;

// R4 search parameters by resource (R4 <Resource>.html#search). Where the server departs from
// R4, the comment says why.
const std::vector<Row>& Table() {
  static const std::vector<Row> rows = {
      // Patient
      {"Patient", "name", P::kString, {"name"}, {}},
      {"Patient", "family", P::kString, {"name.family"}, {}},
      {"Patient", "given", P::kString, {"name.given"}, {}},
      {"Patient", "birthdate", P::kDate, {"birthDate"}, {}},
      {"Patient", "gender", P::kToken, {"gender"}, {}},
      {"Patient", "active", P::kToken, {"active"}, {}},
      {"Patient", "address", P::kString, {"address"}, {}},
      {"Patient", "address-city", P::kString, {"address.city"}, {}},
      {"Patient", "address-postalcode", P::kString, {"address.postalCode"}, {}},
      {"Patient", "telecom", P::kToken, {"telecom"}, {}},
      {"Patient", "phone", P::kToken, {"telecom"}, {}},
      {"Patient", "death-date", P::kDate, {"deceasedDateTime"}, {}},
      {"Patient", "deceased", P::kToken, {"deceasedBoolean", "deceasedDateTime"}, {}},
      {"Patient", "general-practitioner", P::kReference, {"generalPractitioner"}, {}},
      {"Patient", "organization", P::kReference, {"managingOrganization"}, {"Organization"}},
      {"Patient", "link", P::kReference, {"link.other"}, {}},
      // Practitioner
      {"Practitioner", "name", P::kString, {"name"}, {}},
      {"Practitioner", "family", P::kString, {"name.family"}, {}},
      {"Practitioner", "given", P::kString, {"name.given"}, {}},
      {"Practitioner", "active", P::kToken, {"active"}, {}},
      {"Practitioner", "telecom", P::kToken, {"telecom"}, {}},
      {"PractitionerRole", "practitioner", P::kReference, {"practitioner"}, {"Practitioner"}},
      {"PractitionerRole", "organization", P::kReference, {"organization"}, {"Organization"}},
      {"PractitionerRole", "role", P::kToken, {"code"}, {}},
      {"PractitionerRole", "specialty", P::kToken, {"specialty"}, {}},
      // Organization
      {"Organization", "name", P::kString, {"name", "alias"}, {}},
      {"Organization", "partof", P::kReference, {"partOf"}, {"Organization"}},
      {"Organization", "type", P::kToken, {"type"}, {}},
      {"Organization", "active", P::kToken, {"active"}, {}},
      {"Organization", "address-city", P::kString, {"address.city"}, {}},
      {"Location", "name", P::kString, {"name", "alias"}, {}},
      {"Location", "organization", P::kReference, {"managingOrganization"}, {"Organization"}},
      // Encounter
      {"Encounter", "patient", P::kReference, {"subject"}, {"Patient"}},
      {"Encounter", "subject", P::kReference, {"subject"}, {}},
      {"Encounter", "date", P::kDate, {"period"}, {}},
      {"Encounter", "status", P::kToken, {"status"}, {}},
      {"Encounter", "class", P::kToken, {"class"}, {}},
      {"Encounter", "type", P::kToken, {"type"}, {}},
      {"Encounter", "service-provider", P::kReference, {"serviceProvider"}, {"Organization"}},
      {"Encounter", "participant", P::kReference, {"participant.individual"}, {}},
      {"Encounter", "practitioner", P::kReference, {"participant.individual"}, {"Practitioner"}},
      {"Encounter", "reason-code", P::kToken, {"reasonCode"}, {}},
      {"Encounter", "diagnosis", P::kReference, {"diagnosis.condition"}, {}},
      {"Encounter", "episode-of-care", P::kReference, {"episodeOfCare"}, {"EpisodeOfCare"}},
      {"Encounter", "location", P::kReference, {"location.location"}, {"Location"}},
      // Condition
      {"Condition", "patient", P::kReference, {"subject"}, {"Patient"}},
      {"Condition", "subject", P::kReference, {"subject"}, {}},
      {"Condition", "code", P::kToken, {"code"}, {}},
      {"Condition", "onset-date", P::kDate, {"onset[x]"}, {}},
      {"Condition", "abatement-date", P::kDate, {"abatement[x]"}, {}},
      {"Condition", "recorded-date", P::kDate, {"recordedDate"}, {}},
      {"Condition", "encounter", P::kReference, {"encounter"}, {"Encounter"}},
      {"Condition", "clinical-status", P::kToken, {"clinicalStatus"}, {}},
      {"Condition", "verification-status", P::kToken, {"verificationStatus"}, {}},
      {"Condition", "category", P::kToken, {"category"}, {}},
      {"Condition", "body-site", P::kToken, {"bodySite"}, {}},
      {"Condition", "severity", P::kToken, {"severity"}, {}},
      // Observation
      {"Observation", "patient", P::kReference, {"subject"}, {"Patient"}},
      {"Observation", "subject", P::kReference, {"subject"}, {}},
      {"Observation", "code", P::kToken, {"code"}, {}},
      {"Observation", "date", P::kDate, {"effective[x]"}, {}},
      {"Observation", "category", P::kToken, {"category"}, {}},
      {"Observation", "status", P::kToken, {"status"}, {}},
      {"Observation", "based-on", P::kReference, {"basedOn"}, {}},
      {"Observation", "encounter", P::kReference, {"encounter"}, {"Encounter"}},
      {"Observation", "performer", P::kReference, {"performer"}, {}},
      {"Observation", "value-quantity", P::kQuantity, {"valueQuantity"}, {}},
      {"Observation", "value-concept", P::kToken, {"valueCodeableConcept"}, {}},
      {"Observation", "value-date", P::kDate, {"valueDateTime", "valuePeriod"}, {}},
      {"Observation", "value-string", P::kString, {"valueString", "valueCodeableConcept.text"}, {}},
      {"Observation", "component-code", P::kToken, {"component.code"}, {}},
      {"Observation", "derived-from", P::kReference, {"derivedFrom"}, {}},
      {"Observation", "has-member", P::kReference, {"hasMember"}, {}},
      // Procedure
      {"Procedure", "patient", P::kReference, {"subject"}, {"Patient"}},
      {"Procedure", "subject", P::kReference, {"subject"}, {}},
      {"Procedure", "code", P::kToken, {"code"}, {}},
      {"Procedure", "date", P::kDate, {"performed[x]"}, {}},
      {"Procedure", "status", P::kToken, {"status"}, {}},
      {"Procedure", "encounter", P::kReference, {"encounter"}, {"Encounter"}},
      {"Procedure", "based-on", P::kReference, {"basedOn"}, {}},
      {"Procedure", "category", P::kToken, {"category"}, {}},
      // Medications
      {"MedicationRequest", "patient", P::kReference, {"subject"}, {"Patient"}},
      {"MedicationRequest", "subject", P::kReference, {"subject"}, {}},
      {"MedicationRequest", "code", P::kToken, {"medicationCodeableConcept"}, {}},
      {"MedicationRequest", "medication", P::kReference, {"medicationReference"}, {"Medication"}},
      {"MedicationRequest", "status", P::kToken, {"status"}, {}},
      {"MedicationRequest", "intent", P::kToken, {"intent"}, {}},
      {"MedicationRequest", "authoredon", P::kDate, {"authoredOn"}, {}},
      {"MedicationRequest", "encounter", P::kReference, {"encounter"}, {"Encounter"}},
      {"MedicationRequest", "requester", P::kReference, {"requester"}, {}},
      {"MedicationRequest", "category", P::kToken, {"category"}, {}},
      {"MedicationDispense", "patient", P::kReference, {"subject"}, {"Patient"}},
      {"MedicationDispense", "subject", P::kReference, {"subject"}, {}},
      {"MedicationDispense", "code", P::kToken, {"medicationCodeableConcept"}, {}},
      {"MedicationDispense", "medication", P::kReference, {"medicationReference"}, {"Medication"}},
      {"MedicationDispense", "status", P::kToken, {"status"}, {}},
      {"MedicationDispense", "whenhandedover", P::kDate, {"whenHandedOver"}, {}},
      {"MedicationDispense", "whenprepared", P::kDate, {"whenPrepared"}, {}},
      {"MedicationDispense", "prescription", P::kReference, {"authorizingPrescription"}, {"MedicationRequest"}},
      {"MedicationStatement", "patient", P::kReference, {"subject"}, {"Patient"}},
      {"MedicationStatement", "subject", P::kReference, {"subject"}, {}},
      {"MedicationStatement", "code", P::kToken, {"medicationCodeableConcept"}, {}},
      {"MedicationStatement", "medication", P::kReference, {"medicationReference"}, {"Medication"}},
      {"MedicationStatement", "status", P::kToken, {"status"}, {}},
      {"MedicationStatement", "effective", P::kDate, {"effective[x]"}, {}},
      {"MedicationAdministration", "patient", P::kReference, {"subject"}, {"Patient"}},
      {"MedicationAdministration", "code", P::kToken, {"medicationCodeableConcept"}, {}},
      {"MedicationAdministration", "status", P::kToken, {"status"}, {}},
      {"MedicationAdministration", "effective-time", P::kDate, {"effective[x]"}, {}},
      {"Medication", "code", P::kToken, {"code"}, {}},
      // Orders and results
      {"ServiceRequest", "patient", P::kReference, {"subject"}, {"Patient"}},
      {"ServiceRequest", "subject", P::kReference, {"subject"}, {}},
      {"ServiceRequest", "code", P::kToken, {"code"}, {}},
      {"ServiceRequest", "status", P::kToken, {"status"}, {}},
      {"ServiceRequest", "intent", P::kToken, {"intent"}, {}},
      {"ServiceRequest", "category", P::kToken, {"category"}, {}},
      {"ServiceRequest", "based-on", P::kReference, {"basedOn"}, {}},
      {"ServiceRequest", "authored", P::kDate, {"authoredOn"}, {}},
      {"ServiceRequest", "encounter", P::kReference, {"encounter"}, {"Encounter"}},
      {"ServiceRequest", "requester", P::kReference, {"requester"}, {}},
      {"DiagnosticReport", "patient", P::kReference, {"subject"}, {"Patient"}},
      {"DiagnosticReport", "subject", P::kReference, {"subject"}, {}},
      {"DiagnosticReport", "code", P::kToken, {"code"}, {}},
      {"DiagnosticReport", "date", P::kDate, {"effective[x]"}, {}},
      {"DiagnosticReport", "status", P::kToken, {"status"}, {}},
      {"DiagnosticReport", "category", P::kToken, {"category"}, {}},
      {"DiagnosticReport", "result", P::kReference, {"result"}, {"Observation"}},
      {"DiagnosticReport", "based-on", P::kReference, {"basedOn"}, {}},
      {"DiagnosticReport", "encounter", P::kReference, {"encounter"}, {"Encounter"}},
      {"ImagingStudy", "patient", P::kReference, {"subject"}, {"Patient"}},
      {"ImagingStudy", "subject", P::kReference, {"subject"}, {}},
      {"ImagingStudy", "started", P::kDate, {"started"}, {}},
      {"ImagingStudy", "modality", P::kToken, {"series.modality"}, {}},
      {"ImagingStudy", "basedon", P::kReference, {"basedOn"}, {}},
      // Other clinical data hospital feeds carry
      {"AllergyIntolerance", "patient", P::kReference, {"patient"}, {"Patient"}},
      {"AllergyIntolerance", "code", P::kToken, {"code", "reaction.substance"}, {}},
      {"AllergyIntolerance", "clinical-status", P::kToken, {"clinicalStatus"}, {}},
      {"Immunization", "patient", P::kReference, {"patient"}, {"Patient"}},
      {"Immunization", "date", P::kDate, {"occurrence[x]"}, {}},
      {"Immunization", "vaccine-code", P::kToken, {"vaccineCode"}, {}},
      {"Immunization", "status", P::kToken, {"status"}, {}},
      {"Claim", "patient", P::kReference, {"patient"}, {"Patient"}},
      {"Claim", "created", P::kDate, {"created"}, {}},
      {"ExplanationOfBenefit", "patient", P::kReference, {"patient"}, {"Patient"}},
      {"ExplanationOfBenefit", "created", P::kDate, {"created"}, {}},
      {"Goal", "patient", P::kReference, {"subject"}, {"Patient"}},
      {"Goal", "lifecycle-status", P::kToken, {"lifecycleStatus"}, {}},
      {"CareTeam", "patient", P::kReference, {"subject"}, {"Patient"}},
      {"CareTeam", "status", P::kToken, {"status"}, {}},
      {"Device", "patient", P::kReference, {"patient"}, {"Patient"}},
      {"DocumentReference", "patient", P::kReference, {"subject"}, {"Patient"}},
      {"DocumentReference", "date", P::kDate, {"date"}, {}},
      {"DocumentReference", "type", P::kToken, {"type"}, {}},
      {"FamilyMemberHistory", "patient", P::kReference, {"patient"}, {"Patient"}},
      {"RiskAssessment", "patient", P::kReference, {"subject"}, {"Patient"}},
      {"Flag", "patient", P::kReference, {"subject"}, {"Patient"}},
      {"Flag", "date", P::kDate, {"period"}, {}},
      {"DetectedIssue", "patient", P::kReference, {"patient"}, {"Patient"}},
      {"Coverage", "patient", P::kReference, {"beneficiary"}, {"Patient"}},
      {"Specimen", "patient", P::kReference, {"subject"}, {"Patient"}},
      {"QuestionnaireResponse", "patient", P::kReference, {"subject"}, {"Patient"}},
      {"QuestionnaireResponse", "authored", P::kDate, {"authored"}, {}},
      {"QuestionnaireResponse", "status", P::kToken, {"status"}, {}},
      {"Provenance", "target", P::kReference, {"target"}, {}},
      {"AuditEvent", "date", P::kDate, {"recorded"}, {}},
      {"AuditEvent", "agent", P::kReference, {"agent.who"}, {}},
      {"AuditEvent", "entity", P::kReference, {"entity.what"}, {}},
      {"AuditEvent", "type", P::kToken, {"type"}, {}},
      {"AuditEvent", "action", P::kToken, {"action"}, {}},
      {"AuditEvent", "subtype", P::kToken, {"subtype"}, {}},
      {"AuditEvent", "outcome", P::kToken, {"outcome"}, {}},
      {"AuditEvent", "altid", P::kToken, {"agent.altId"}, {}},
      {"AuditEvent", "agent-name", P::kString, {"agent.name"}, {}},
      {"AuditEvent", "address", P::kString, {"agent.network.address"}, {}},
      {"AuditEvent", "patient", P::kReference, {"entity.what"}, {"Patient"}},
      {"AuditEvent", "site", P::kToken, {"source.site"}, {}},
      // FLS pathway resources
      {"Task", "status", P::kToken, {"status"}, {}},
      {"Task", "business-status", P::kToken, {"businessStatus"}, {}},
      {"Task", "code", P::kToken, {"code"}, {}},
      {"Task", "owner", P::kReference, {"owner"}, {}},
      {"Task", "patient", P::kReference, {"for"}, {"Patient"}},
      {"Task", "subject", P::kReference, {"for"}, {}},
      {"Task", "focus", P::kReference, {"focus"}, {}},
      // R4's `period` is Task.executionPeriod; the due date (restriction.period.end) is the
      // server-defined `due` below (fhir-contract.md).
      {"Task", "period", P::kDate, {"executionPeriod"}, {}},
      {"Task", "authored-on", P::kDate, {"authoredOn"}, {}},
      {"Task", "modified", P::kDate, {"lastModified"}, {}},
      {"Task", "intent", P::kToken, {"intent"}, {}},
      {"Task", "priority", P::kToken, {"priority"}, {}},
      {"Task", "based-on", P::kReference, {"basedOn"}, {}},
      {"Task", "part-of", P::kReference, {"partOf"}, {"Task"}},
      {"Task", "requester", P::kReference, {"requester"}, {}},
      {"Task", "encounter", P::kReference, {"encounter"}, {"Encounter"}},
      {"EpisodeOfCare", "patient", P::kReference, {"patient"}, {"Patient"}},
      {"EpisodeOfCare", "status", P::kToken, {"status"}, {}},
      {"EpisodeOfCare", "organization", P::kReference, {"managingOrganization"}, {"Organization"}},
      {"EpisodeOfCare", "date", P::kDate, {"period"}, {}},
      {"EpisodeOfCare", "type", P::kToken, {"type"}, {}},
      {"EpisodeOfCare", "condition", P::kReference, {"diagnosis.condition"}, {"Condition"}},
      {"EpisodeOfCare", "care-manager", P::kReference, {"careManager"}, {"Practitioner"}},
      {"EpisodeOfCare", "incoming-referral", P::kReference, {"referralRequest"}, {"ServiceRequest"}},
      {"CarePlan", "patient", P::kReference, {"subject"}, {"Patient"}},
      {"CarePlan", "subject", P::kReference, {"subject"}, {}},
      {"CarePlan", "status", P::kToken, {"status"}, {}},
      {"CarePlan", "category", P::kToken, {"category"}, {}},
      {"CarePlan", "intent", P::kToken, {"intent"}, {}},
      {"CarePlan", "date", P::kDate, {"period"}, {}},
      {"CarePlan", "instantiates-canonical", P::kReference, {"instantiatesCanonical"}, {}},
      {"CarePlan", "encounter", P::kReference, {"encounter"}, {"Encounter"}},
      {"CarePlan", "activity-reference", P::kReference, {"activity.reference"}, {}},
      {"Communication", "patient", P::kReference, {"subject"}, {"Patient"}},
      {"Communication", "subject", P::kReference, {"subject"}, {}},
      {"Communication", "recipient", P::kReference, {"recipient"}, {}},
      {"Communication", "sender", P::kReference, {"sender"}, {}},
      {"Communication", "sent", P::kDate, {"sent"}, {}},
      {"Communication", "received", P::kDate, {"received"}, {}},
      {"Communication", "status", P::kToken, {"status"}, {}},
      {"Communication", "category", P::kToken, {"category"}, {}},
      {"Communication", "based-on", P::kReference, {"basedOn"}, {}},
      {"Communication", "part-of", P::kReference, {"partOf"}, {}},
      {"Communication", "encounter", P::kReference, {"encounter"}, {"Encounter"}},
      {"Consent", "patient", P::kReference, {"patient"}, {"Patient"}},
      {"Consent", "status", P::kToken, {"status"}, {}},
      {"Consent", "category", P::kToken, {"category"}, {}},
      {"Consent", "scope", P::kToken, {"scope"}, {}},
      {"Consent", "date", P::kDate, {"dateTime"}, {}},
      {"Consent", "period", P::kDate, {"provision.period"}, {}},
      {"Consent", "organization", P::kReference, {"organization"}, {"Organization"}},
      // Knowledge resources the server publishes
      {"PlanDefinition", "url", P::kUri, {"url"}, {}},
      {"PlanDefinition", "name", P::kString, {"name"}, {}},
      {"PlanDefinition", "status", P::kToken, {"status"}, {}},
      {"PlanDefinition", "version", P::kToken, {"version"}, {}},
      {"Measure", "url", P::kUri, {"url"}, {}},
      {"Measure", "name", P::kString, {"name"}, {}},
      {"Measure", "status", P::kToken, {"status"}, {}},
      {"MeasureReport", "measure", P::kReference, {"measure"}, {}},
      {"MeasureReport", "subject", P::kReference, {"subject"}, {}},
      {"MeasureReport", "period", P::kDate, {"period"}, {}},
      {"MeasureReport", "status", P::kToken, {"status"}, {}},
      {"CodeSystem", "url", P::kUri, {"url"}, {}},
      {"ValueSet", "url", P::kUri, {"url"}, {}},
      {"ConceptMap", "url", P::kUri, {"url"}, {}},
      {"StructureDefinition", "url", P::kUri, {"url"}, {}},
      {"Questionnaire", "url", P::kUri, {"url"}, {}},
      {"Group", "code", P::kToken, {"code"}, {}},
      {"Group", "member", P::kReference, {"member.entity"}, {}},
  };
  return rows;
}

}  // namespace

const char* ParamTypeName(ParamType t) {
  switch (t) {
    case P::kToken: return "token";
    case P::kString: return "string";
    case P::kDate: return "date";
    case P::kReference: return "reference";
    case P::kQuantity: return "quantity";
    case P::kUri: return "uri";
    case P::kNumber: return "number";
    case P::kSpecial: return "special";
  }
  return "special";
}

void SearchParamRegistry::Add(SearchParamDef def) {
  auto& list = by_type_[def.resource_type];
  for (auto& existing : list) {
    if (existing.name == def.name) {
      existing = std::move(def);
      return;
    }
  }
  list.push_back(std::move(def));
}

SearchParamRegistry::SearchParamRegistry(const SchemaValidator& schema, const std::string& canonical_base) {
  for (const auto& type : schema.ResourceTypes()) {
    Add({type, "_id", P::kToken, {}, {}, "Logical id of this artifact"});
    Add({type, "_lastUpdated", P::kDate, {}, {}, "When the resource version last changed"});
    Add({type, "_tag", P::kToken, {"meta.tag"}, {}, "Tags applied to this resource"});
    Add({type, "_profile", P::kUri, {"meta.profile"}, {}, "Profiles this resource claims to conform to"});
    Add({type, "_security", P::kToken, {"meta.security"}, {}, "Security Labels applied to this resource"});
    if (schema.HasElement(type, "identifier")) {
      Add({type, "identifier", P::kToken, {"identifier"}, {}, "A business identifier"});
    }
  }
  for (const auto& r : Table()) {
    if (!schema.IsResourceType(r.type)) continue;
    Add({r.type, r.name, r.kind, r.paths, r.targets, ""});
  }
  // The FLS case's pathway stage and flags (fhir-contract.md: EpisodeOfCare is searchable by stage).
  SearchParamDef stage{"EpisodeOfCare", "stage", P::kToken, {"valueCode"}, {}, "The case's pathway stage"};
  stage.extension_url = canonical_base + "/StructureDefinition/pathway-stage";
  Add(stage);
  SearchParamDef flag{"EpisodeOfCare", "flag", P::kToken, {"valueCode"}, {}, "A flag on the case (high-energy-trauma)"};
  flag.extension_url = canonical_base + "/StructureDefinition/case-flag";
  Add(flag);
  // The worklist's due date (fhir-contract.md: `due` on Task.restriction.period.end, `_sort=due`).
  SearchParamDef due{"Task", "due", P::kDate, {"restriction.period.end"}, {},
                     "The date the task is due (Task.restriction.period.end), in the site's time zone"};
  Add(due);
  for (auto* def : {&by_type_["EpisodeOfCare"], &by_type_["Task"]}) {
    for (auto& d : *def) {
      bool server = (d.resource_type == "EpisodeOfCare" && (d.name == "stage" || d.name == "flag")) ||
                    (d.resource_type == "Task" && d.name == "due");
      if (!server) continue;
      d.definition = canonical_base + "/SearchParameter/" + d.resource_type + "-" + d.name;
      d.expression = d.extension_url.empty()
                         ? d.resource_type + "." + d.paths.front()
                         : d.resource_type + ".extension('" + d.extension_url + "').value";
    }
  }
  for (auto& d : by_type_["Patient"]) d.present_is_true = d.present_is_true || d.name == "deceased";
  for (auto& [type, list] : by_type_) {
    std::sort(list.begin(), list.end(),
              [](const SearchParamDef& a, const SearchParamDef& b) { return a.name < b.name; });
  }
}

const SearchParamDef* SearchParamRegistry::Find(std::string_view type, std::string_view name) const {
  auto it = by_type_.find(type);
  if (it == by_type_.end()) return nullptr;
  for (const auto& def : it->second) {
    if (def.name == name) return &def;
  }
  return nullptr;
}

std::vector<std::string> SearchParamRegistry::Types() const {
  std::vector<std::string> out;
  for (const auto& [type, list] : by_type_) {
    if (!list.empty()) out.push_back(type);
  }
  return out;
}

std::vector<const SearchParamDef*> SearchParamRegistry::ServerDefined() const {
  std::vector<const SearchParamDef*> out;
  for (const auto& [type, list] : by_type_) {
    for (const auto& d : list) {
      if (!d.definition.empty()) out.push_back(&d);
    }
  }
  return out;
}

std::string SearchParamRegistry::Fingerprint(std::string_view type) const {
  // Bump when fhir/indexer.cpp extracts different rows from the same definitions (normalisation,
  // date ranges...): the stored rows of every type are then rebuilt.
  // indexer-2: a string is indexed by its whole value only (a prefix of any word matched before).
  constexpr const char* kIndexerVersion = "indexer-2";
  std::string text = kIndexerVersion;
  for (const auto& d : ForType(type)) {
    text += '\n' + d.name + '|' + ParamTypeName(d.type) + '|' + d.extension_url + '|' + (d.present_is_true ? "present|" : "");
    for (const auto& p : d.paths) text += p + ',';
    text += '|';
    for (const auto& t : d.targets) text += t + ',';
  }
  // FNV-1a, 64 bits: deterministic across builds and machines (std::hash is not promised to be).
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

const std::vector<SearchParamDef>& SearchParamRegistry::ForType(std::string_view type) const {
  static const std::vector<SearchParamDef> kNone;
  auto it = by_type_.find(type);
  return it == by_type_.end() ? kNone : it->second;
}

}  // namespace fls::fhir
