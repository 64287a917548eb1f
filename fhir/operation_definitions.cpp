#include "fhir/operation_definitions.h"

#include "fhir/json_builder.h"
#include "fhir/pathway_knowledge.h"

namespace fls::fhir {

namespace {

struct Param {
  const char* name;
  const char* use;  // in | out
  int min;
  const char* max;
  const char* type;  // empty with parts
  const char* documentation;
  std::vector<Param> parts;
};

struct Op {
  const char* code;
  const char* type;  // resource type; empty: system level
  bool affects_state;
  const char* title;
  const char* description;
  std::vector<Param> params;
};

const std::vector<Op>& Table() {
  static const std::vector<Op> ops = {
      {"event", "EpisodeOfCare", true, "Move an FLS case along the pathway",
       "operations.md section 1: one event, its parts checked, applied in one transaction with all its effects; 422 names the "
       "stage and the events it allows. If-Match guards against a stale case.",
       {{"event", "in", 1, "1", "code", "the event code (CodeSystem fls-pathway-event)", {}},
        {"occurred", "in", 0, "1", "dateTime", "when it happened (default now; not in the future, not before the index fracture)", {}},
        {"reason", "in", 0, "1", "string", "valueCode or valueString, as the event needs", {}},
        {"note", "in", 0, "1", "string", "kept on the event", {}},
        {"consent-programme", "in", 0, "1", "boolean", "enrol", {}},
        {"consent-report", "in", 0, "1", "boolean", "enrol: may reports go to the physician", {}},
        {"phone", "in", 0, "1", "string", "enrol", {}},
        {"referring-physician", "in", 0, "1", "Reference", "enrol: a Practitioner", {}},
        {"gp", "in", 0, "1", "Reference", "enrol: a Practitioner", {}},
        {"item", "in", 0, "1", "Reference", "waive: a ServiceRequest of the case's panel", {}},
        {"at-risk", "in", 0, "1", "boolean", "falls-assessment", {}},
        {"drug", "in", 0, "1", "CodeableConcept", "decide-treatment, treatment-started: an ATC code", {}},
        {"return", "out", 1, "1", "EpisodeOfCare", "the case as updated", {}}}},
      {"events", "EpisodeOfCare", false, "The case's event log", "operations.md section 1: one event part per log row, in order.",
       {{"event", "out", 0, "*", "", "a row of the log",
         {{"seq", "out", 1, "1", "integer", "", {}},
          {"event", "out", 1, "1", "code", "", {}},
          {"from", "out", 0, "1", "code", "", {}},
          {"to", "out", 1, "1", "code", "", {}},
          {"occurred", "out", 1, "1", "dateTime", "", {}},
          {"recorded", "out", 1, "1", "dateTime", "", {}},
          {"source", "out", 1, "1", "code", "user | data | timer", {}},
          {"actor", "out", 0, "1", "string", "", {}},
          {"reason", "out", 0, "1", "string", "", {}},
          {"note", "out", 0, "1", "string", "", {}}}}}},
      {"recommend", "EpisodeOfCare", false, "The GRIO 2017 treatment recommendation",
       "operations.md section 3: every rule that fired with its grade and reasons, best first; prerequisites; the flags; "
       "missing data (docs/recommendations.md).",
       {{"recommendation", "out", 0, "*", "", "",
         {{"drug", "out", 1, "1", "CodeableConcept", "ATC", {}},
          {"rule", "out", 1, "1", "code", "grio-1 ... grio-6", {}},
          {"grade", "out", 1, "1", "code", "A | B | C | professional-agreement", {}},
          {"status", "out", 1, "1", "code", "recommended | contraindicated | defer", {}},
          {"reason", "out", 1, "1", "string", "", {}}}},
        {"prerequisite", "out", 0, "*", "", "",
         {{"code", "out", 1, "1", "code", "falls-prevention | vitamin-d | calcium", {}}, {"text", "out", 1, "1", "string", "", {}}}},
        {"flag", "out", 0, "*", "", "",
         {{"code", "out", 1, "1", "code", "", {}},
          {"value", "out", 0, "1", "Quantity", "", {}},
          {"threshold", "out", 0, "1", "Quantity", "", {}},
          {"evidence", "out", 0, "1", "Reference", "the Observation", {}}}},
        {"missing", "out", 0, "*", "string", "data a rule needed and did not have", {}},
        {"specialist-referral", "out", 0, "1", "string", "secondary osteoporosis suspected (an addition to operations.md)", {}}}},
      {"contact", "EpisodeOfCare", true, "Record a call with the patient",
       "operations.md section 5: the contact Communication, the call Task completed when reached, doses recorded, and the report "
       "to the physician only when the report Consent permits (docs/follow-up.md).",
       {{"reached", "in", 1, "1", "boolean", "", {}},
        {"occurred", "in", 0, "1", "dateTime", "", {}},
        {"direction", "in", 0, "1", "code", "outbound | inbound", {}},
        {"task", "in", 0, "1", "Reference", "the call Task it answers", {}},
        {"adherent", "in", 0, "1", "boolean", "", {}},
        {"non-adherence-reason", "in", 0, "1", "string", "", {}},
        {"side-effect", "in", 0, "*", "string", "valueString or valueCoding", {}},
        {"intake-date", "in", 0, "*", "date", "", {}},
        {"injection-date", "in", 0, "*", "date", "", {}},
        {"question", "in", 0, "1", "string", "", {}},
        {"note", "in", 0, "1", "string", "", {}},
        {"contact", "out", 1, "1", "Reference", "the contact Communication", {}},
        {"report", "out", 0, "1", "Reference", "the report to the physician, when sent", {}}}},
      {"accompany", "EpisodeOfCare", true, "Thematic accompaniment",
       "operations.md section 5: six monthly calls on one theme; after the last, the synthesis.",
       {{"theme", "in", 1, "1", "code", "adherence | recommended-tests | tobacco | physical-activity | falls-nutrition", {}},
        {"requester", "in", 1, "1", "Reference", "the Practitioner", {}},
        {"series", "out", 1, "1", "string", "the series' identifier on its Tasks", {}}}},
      {"call-list", "", false, "A nurse's day of calls",
       "docs/follow-up.md: the open call Tasks due that day or overdue, as CSV (default) or HTML.",
       {{"date", "in", 0, "1", "date", "default today", {}},
        {"owner", "in", 0, "1", "string", "Organization/id or Practitioner/id", {}},
        {"return", "out", 1, "1", "Binary", "text/csv or text/html", {}}}},
      {"fls-extract", "", false, "The case-level extract",
       "operations.md section 6, docs/kpis.md: one CSV row per case of the cohort, pseudonymised unless the caller may read patients.",
       {{"periodStart", "in", 1, "1", "date", "the index fracture dates, both ends included", {}},
        {"periodEnd", "in", 1, "1", "date", "", {}},
        {"subject", "in", 0, "1", "string", "Organization/id: a site or a region", {}},
        {"return", "out", 1, "1", "Binary", "text/csv", {}}}},
      {"fls-dashboard", "", false, "The quality dashboard's data",
       "docs/kpis.md: every indicator of a framework overall, by quarter and by site, the Capture the Fracture goals, the Best "
       "Practice Framework levels and the projection of fractures avoided, as JSON, computed as $evaluate-measure computes them.",
       {{"periodStart", "in", 1, "1", "date", "", {}},
        {"periodEnd", "in", 1, "1", "date", "at most 10 years after periodStart", {}},
        {"subject", "in", 0, "1", "string", "Organization/id: a site or a region", {}},
        {"framework", "in", 0, "1", "code", "fls-db (default) | iof", {}},
        {"baselineStart", "in", 0, "1", "date", "the goals' baseline period (default: configured)", {}},
        {"baselineEnd", "in", 0, "1", "date", "", {}},
        {"return", "out", 1, "1", "Binary", "application/json", {}}}},
      {"fls-projection", "", false, "Fractures avoided, and what if",
       "docs/kpis.md: the refractures the treatment of the FLS's patients avoids in 1, 3 and 5 years from the measured capture, "
       "treatment-start and 12-month adherence rates, or from the rates given.",
       {{"periodStart", "in", 1, "1", "date", "", {}},
        {"periodEnd", "in", 1, "1", "date", "", {}},
        {"subject", "in", 0, "1", "string", "Organization/id: a site or a region", {}},
        {"capture", "in", 0, "1", "decimal", "what if: the share of the expected fractures identified (0-1)", {}},
        {"treatment", "in", 0, "1", "decimal", "what if: the share of those recommended treatment who start it (0-1)", {}},
        {"adherence", "in", 0, "1", "decimal", "what if: the share of those treated still adherent at 12 months (0-1)", {}},
        {"return", "out", 1, "1", "Binary", "application/json", {}}}},
  };
  return ops;
}

void WriteParam(Json& j, const Param& p) {
  j.Obj().S("name", p.name).S("use", p.use).I("min", p.min).S("max", p.max);
  if (*p.documentation) j.S("documentation", p.documentation);
  if (*p.type) j.S("type", p.type);
  if (!p.parts.empty()) {
    j.Arr("part");
    for (const auto& part : p.parts) WriteParam(j, part);
    j.EndArr();
  }
  j.End();
}

// The OperationDefinition's id: fls-{code} ("fls-extract" stays itself).
std::string DefinitionId(const std::string& code) { return code.rfind("fls-", 0) == 0 ? code : "fls-" + code; }

// Its computable name: FlsCallList, FlsDashboard...
std::string DefinitionName(const std::string& code) {
  std::string out = "Fls";
  bool up = true;
  for (char c : code.rfind("fls-", 0) == 0 ? code.substr(4) : code) {
    if (c == '-') {
      up = true;
      continue;
    }
    out += up ? static_cast<char>(std::toupper(static_cast<unsigned char>(c))) : c;
    up = false;
  }
  return out;
}

}  // namespace

std::vector<CapabilityInput::Operation> FlsOperations(const std::string& base) {
  std::vector<CapabilityInput::Operation> out;
  for (const auto& op : Table()) {
    out.push_back({op.code, base + "/OperationDefinition/" + DefinitionId(op.code), op.type});
  }
  // The quality indicators: FHIR's own operation (operations.md section 6).
  out.push_back({"evaluate-measure", "http://hl7.org/fhir/OperationDefinition/Measure-evaluate-measure", "Measure"});
  // FHIR Bulk Data export (docs/bulk-export.md): the IG's own definitions.
  out.push_back({"export", "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export", ""});
  out.push_back({"export", "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export", "Patient"});
  out.push_back({"export", "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export", "Group"});
  return out;
}

void PublishOperationDefinitions(FhirService& service, const std::string& base) {
  service.Write([&](WriteContext& ctx) {
    for (const auto& op : Table()) {
      std::string id = DefinitionId(op.code);
      Json j;
      j.Obj().S("resourceType", "OperationDefinition").S("id", id);
      j.S("url", base + "/OperationDefinition/" + id).S("version", "1").S("name", DefinitionName(op.code));
      j.S("title", op.title).S("status", "active").S("kind", "operation").B("affectsState", op.affects_state);
      j.S("description", op.description).S("code", op.code);
      bool system = !*op.type;
      if (!system) j.Arr("resource").Val(op.type).EndArr();
      j.B("system", system).B("type", false).B("instance", !system);
      j.Arr("parameter");
      for (const auto& p : op.params) WriteParam(j, p);
      j.EndArr();
      j.End();
      JsonDoc doc = j.Doc();
      PublishIfChanged(ctx, "OperationDefinition", id, doc);
    }
  });
}

void PublishSearchParameters(FhirService& service, const SearchParamRegistry& registry) {
  service.Write([&](WriteContext& ctx) {
    for (const SearchParamDef* d : registry.ServerDefined()) {
      std::string id = d->resource_type + "-" + d->name;
      Json j;
      j.Obj().S("resourceType", "SearchParameter").S("id", id).S("url", d->definition).S("version", "1");
      j.S("name", d->name).S("status", "active").S("description", d->documentation.empty() ? d->name : d->documentation);
      j.S("code", d->name).Arr("base").Val(d->resource_type).EndArr().S("type", ParamTypeName(d->type));
      j.S("expression", d->expression).S("xpathUsage", "normal");
      if (d->type == ParamType::kDate) {
        j.Arr("comparator");
        for (const char* c : {"eq", "ne", "gt", "ge", "lt", "le", "sa", "eb", "ap"}) j.Val(c);
        j.EndArr();
      }
      if (d->type == ParamType::kToken) j.Arr("modifier").Val("not").Val("missing").EndArr();
      else j.Arr("modifier").Val("missing").EndArr();
      j.End();
      JsonDoc doc = j.Doc();
      PublishIfChanged(ctx, "SearchParameter", id, doc);
    }
  });
}

}  // namespace fls::fhir
