#include "fhir/event_parameters.h"

#include <map>

#include "fhir/fhir_date.h"
#include "fhir/indexer.h"
#include "fhir/text.h"

namespace fls::fhir {

namespace {

using workflow::Event;

constexpr int64_t kFutureSkewUs = 5LL * 60 * 1000000;  // clocks of the EHR and the server differ

FhirError Bad(const std::string& message, const std::string& part = "") {
  return FhirError(ErrorCode::kBadRequest, message,
                   part.empty() ? "" : "Parameters.parameter[" + part + "]");
}

// ---------------------------------------------------------------------------------------------
// The Parameters of $event (operations.md section 1).

enum class PartType { kCode, kCodeOrString, kString, kBoolean, kDateTime, kReference, kConcept };

struct PartSpec {
  const char* name;
  PartType type;
};

// The parts every event takes.
constexpr PartSpec kCommonParts[] = {{"event", PartType::kCode},
                                     {"occurred", PartType::kDateTime},
                                     {"reason", PartType::kCodeOrString},
                                     {"note", PartType::kString}};

std::vector<PartSpec> EventParts(Event e) {
  switch (e) {
    case Event::kEnrol:
      return {{"consent-programme", PartType::kBoolean},
              {"consent-report", PartType::kBoolean},
              {"phone", PartType::kString},
              {"referring-physician", PartType::kReference},
              {"gp", PartType::kReference}};
    case Event::kWaive:
      return {{"item", PartType::kReference}};
    case Event::kFallsAssessment:
      return {{"at-risk", PartType::kBoolean}};
    case Event::kDecideTreatment:
    case Event::kTreatmentStarted:
      return {{"drug", PartType::kConcept}};
    default:
      return {};
  }
}

const char* ValueKey(PartType t) {
  switch (t) {
    case PartType::kCode:
      return "valueCode";
    case PartType::kString:
      return "valueString";
    case PartType::kBoolean:
      return "valueBoolean";
    case PartType::kDateTime:
      return "valueDateTime";
    case PartType::kReference:
      return "valueReference";
    case PartType::kConcept:
      return "valueCodeableConcept";
    case PartType::kCodeOrString:
      return "valueCode or valueString";
  }
  return "";
}

// "Practitioner/12" from a valueReference of that type, else 400.
}  // namespace

const JsonValue* ParameterArray(const JsonDoc& doc, const std::string& operation) {
  if (!doc.IsObject() || StringMember(doc, "resourceType") != std::optional<std::string_view>("Parameters")) {
    throw FhirError(ErrorCode::kBadRequest, "the body of $" + operation + " must be a Parameters resource");
  }
  const JsonValue* params = Member(doc, "parameter");
  if (params && !params->IsArray()) throw FhirError(ErrorCode::kBadRequest, "Parameters.parameter must be an array");
  return params;
}

// An operation's 200 answer: the Parameters `j` wrote.
Outcome ParametersAnswer(Json& j) {
  Outcome out;
  out.status = 200;
  out.body = Serialize(j.Doc());
  out.resource_type = "Parameters";
  return out;
}

std::string LocalReference(const JsonValue& v, const char* type, const std::string& part) {
  auto ref = v.IsObject() ? StringMember(v, "reference") : std::nullopt;
  auto parsed = ref ? ParseReference(*ref) : std::nullopt;
  if (!parsed || parsed->type != std::optional<std::string>(type) ||
      parsed->id.find('/') != std::string::npos || parsed->id.empty()) {
    throw Bad(part + " must be a reference to a " + std::string(type) + " of this server (" + type + "/id)",
              part);
  }
  return std::string(type) + "/" + parsed->id;
}



// Each named part once, with the value type the event's table says: anything else is 400.
ParsedEvent ParseEventParameters(std::string_view body, const JsonLimits& limits, int64_t now_us,
                                 const workflow::DrugList& drugs) {
  JsonDoc doc = ParseJson(body, limits);
  const JsonValue* params = ParameterArray(doc, "event");
  for (auto it = doc.MemberBegin(); it != doc.MemberEnd(); ++it) {
    std::string_view k = AsStringView(it->name);
    if (k != "resourceType" && k != "id" && k != "meta" && k != "parameter") {
      throw FhirError(ErrorCode::kBadRequest, "Parameters has no element " + std::string(k), "Parameters." + std::string(k));
    }
  }
  std::map<std::string, const JsonValue*> by_name;
  if (params) {
    for (const auto& p : params->GetArray()) {
      auto name = p.IsObject() ? StringMember(p, "name") : std::nullopt;
      if (!name || name->empty()) throw FhirError(ErrorCode::kBadRequest, "every parameter needs a name", "Parameters.parameter");
      const JsonValue* value = nullptr;
      for (auto it = p.MemberBegin(); it != p.MemberEnd(); ++it) {
        std::string_view k = AsStringView(it->name);
        if (k == "name") continue;
        if (k.substr(0, 5) != "value" || value) {
          throw Bad("parameter " + std::string(*name) + " must hold exactly one value[x] (no part, no resource)",
                    std::string(*name));
        }
        value = &p;  // the parameter itself; the key is checked per type below
      }
      if (!value) throw Bad("parameter " + std::string(*name) + " has no value", std::string(*name));
      if (!by_name.emplace(std::string(*name), &p).second) {
        throw Bad("parameter " + std::string(*name) + " is given twice", std::string(*name));
      }
    }
  }
  auto event_param = by_name.find("event");
  if (event_param == by_name.end()) throw Bad("event (valueCode) is required", "event");
  auto code = StringMember(*event_param->second, "valueCode");
  if (!code) throw Bad("event must be a valueCode", "event");
  auto event = workflow::ParseEvent(*code);
  if (!event || workflow::IsDataOnly(*event)) {
    std::string known;
    for (Event e : workflow::kAllEvents) {
      if (!workflow::IsDataOnly(e)) known += (known.empty() ? "" : ", ") + std::string(workflow::EventCode(e));
    }
    throw Bad("unknown event " + std::string(*code) + " (events: " + known + ")", "event");
  }
  std::vector<PartSpec> allowed(std::begin(kCommonParts), std::end(kCommonParts));
  for (const auto& p : EventParts(*event)) allowed.push_back(p);

  ParsedEvent out;
  workflow::EventInput& in = out.input;
  in.event = *event;
  out.occurred_us = now_us;
  in.occurred_day = LocalDay(now_us / 1000000);
  for (const auto& [name, p] : by_name) {
    const PartSpec* spec = nullptr;
    for (const auto& a : allowed) {
      if (name == a.name) spec = &a;
    }
    if (!spec) throw Bad(name + " is not a part of event " + std::string(*code), name);
    auto string_of = [&, p = p, name = name](const char* key) -> std::optional<std::string> {
      const JsonValue* v = Member(*p, key);
      if (!v) return std::nullopt;
      if (!IsPlainString(*v) || v->GetStringLength() == 0) throw Bad(name + " must be a non-empty " + key, name);
      return std::string(AsStringView(*v));
    };
    auto require_key = [&, p = p, name = name](const char* key) -> const JsonValue& {
      const JsonValue* v = Member(*p, key);
      if (!v) throw Bad(name + " must be a " + std::string(ValueKey(spec->type)), name);
      return *v;
    };
    switch (spec->type) {
      case PartType::kCode: {
        if (!string_of("valueCode")) throw Bad(name + " must be a valueCode", name);
        break;
      }
      case PartType::kCodeOrString: {
        auto v = string_of("valueCode");
        if (!v) v = string_of("valueString");
        if (!v) throw Bad(name + " must be a valueCode or a valueString", name);
        in.reason = *v;
        break;
      }
      case PartType::kString: {
        auto v = string_of("valueString");
        if (!v) throw Bad(name + " must be a valueString", name);
        if (name == "note") in.note = *v;
        if (name == "phone") in.phone = *v;
        break;
      }
      case PartType::kBoolean: {
        const JsonValue& v = require_key("valueBoolean");
        if (!v.IsBool()) throw Bad(name + " must be a valueBoolean (true or false)", name);
        if (name == "consent-programme") in.consent_programme = v.GetBool();
        if (name == "consent-report") in.consent_report = v.GetBool();
        if (name == "at-risk") in.at_risk = v.GetBool();
        break;
      }
      case PartType::kDateTime: {
        auto v = string_of("valueDateTime");
        if (!v) throw Bad(name + " must be a valueDateTime", name);
        auto range = ParseFhirDate(*v);
        auto day = DayOf(*v);
        if (!range || !day) throw Bad(name + " is not a FHIR dateTime: " + *v, name);
        if (range->lo_us > now_us + kFutureSkewUs) throw Bad("occurred is in the future", name);
        out.occurred_us = range->lo_us;
        in.occurred_day = *day;
        break;
      }
      case PartType::kReference: {
        const JsonValue& v = require_key("valueReference");
        if (name == "item") {
          in.item = LocalReference(v, "ServiceRequest", name);
        } else {
          std::string ref = LocalReference(v, "Practitioner", name);
          (name == "gp" ? in.gp : in.referring_physician) = ref;
        }
        break;
      }
      case PartType::kConcept: {
        const JsonValue& v = require_key("valueCodeableConcept");
        std::vector<const JsonValue*> codings;
        if (v.IsObject()) CollectPath(v, "coding", codings);
        if (codings.empty()) throw Bad(name + " must be coded (an ATC code)", name);
        std::string first;
        for (const JsonValue* c : codings) {
          auto system = StringMember(*c, "system");
          auto coding = StringMember(*c, "code");
          if (!coding) continue;
          if (first.empty()) first = std::string(*coding);
          if (auto atc = drugs.AtcOf(system.value_or(""), *coding)) {
            in.drug_atc = *atc;
            break;
          }
        }
        // Not an osteoporosis drug: the table's check names it (400).
        if (in.drug_atc.empty()) in.drug_atc = first.empty() ? "?" : first;
        break;
      }
    }
  }
  return out;
}
}  // namespace fls::fhir
