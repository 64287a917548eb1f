#include "fhir/capability.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "fhir/fhir_date.h"

namespace fls::fhir {

std::string CapabilityStatementJson(const SchemaValidator& schema, const SearchParamRegistry& registry,
                                    const CapabilityInput& in) {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  auto str = [&](const std::string& s) { w.String(s.c_str(), static_cast<rapidjson::SizeType>(s.size())); };
  auto kv = [&](const char* k, const std::string& v) {
    w.Key(k);
    str(v);
  };
  w.StartObject();
  kv("resourceType", "CapabilityStatement");
  kv("status", "active");
  kv("date", FormatFhirInstant(NowMicros()).substr(0, 10));
  kv("publisher", "FLS Server");
  kv("kind", "instance");
  // FHIR Bulk Data export (docs/bulk-export.md).
  w.Key("instantiates");
  w.StartArray();
  str("http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data");
  w.EndArray();
  w.Key("software");
  w.StartObject();
  kv("name", "FLS Server");
  kv("version", in.software_version);
  w.EndObject();
  w.Key("implementation");
  w.StartObject();
  kv("description", "Fracture Liaison Service server");
  kv("url", in.base_url);
  w.EndObject();
  kv("fhirVersion", "4.0.1");
  w.Key("format");
  w.StartArray();
  str("application/fhir+json");
  str("json");
  w.EndArray();
  w.Key("rest");
  w.StartArray();
  w.StartObject();
  kv("mode", "server");
  kv("documentation",
     "JSON only. Conditional create (If-None-Exist), conditional update and delete, If-Match on "
     "update and delete, transaction and batch Bundles with urn:uuid and conditional references. "
     "Search paging is stable: searches in id order (the default) page by id (_cursor); searches "
     "sorted on other values snapshot their matches and every page reads the snapshot "
     "(_getpages). Unknown search parameters are refused with 400 unless the request carries "
     "Prefer: handling=lenient. At most 64 parameters and 100 comma-separated values each. String "
     "search matches the first 128 bytes of each word start; values over 1024 bytes are stored but "
     "not searchable. Absolute references are other servers' resources. DELETE of an unknown id "
     "answers 204. Task's due date (restriction.period.end) is the server-defined parameter due "
     "(SearchParameter/Task-due); EpisodeOfCare is searchable by stage and flag. _include and "
     "_revinclude work one level deep (up to 1000 included resources a page).");
  // SMART App Launch 2.x: the token endpoint, for clients that read it here rather than from
  // /.well-known/smart-configuration.
  w.Key("security");
  w.StartObject();
  w.Key("extension");
  w.StartArray();
  w.StartObject();
  kv("url", "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris");
  w.Key("extension");
  w.StartArray();
  w.StartObject();
  kv("url", "token");
  kv("valueUri", in.base_url + "/auth/token");
  w.EndObject();
  w.EndArray();
  w.EndObject();
  w.EndArray();
  w.Key("cors");
  w.Bool(true);
  w.Key("service");
  w.StartArray();
  w.StartObject();
  w.Key("coding");
  w.StartArray();
  w.StartObject();
  kv("system", "http://terminology.hl7.org/CodeSystem/restful-security-service");
  kv("code", "SMART-on-FHIR");
  w.EndObject();
  w.EndArray();
  w.EndObject();
  w.EndArray();
  kv("description",
     "Every request but /metadata, /.well-known/* and the token endpoint needs a bearer token: SMART "
     "Backend Services (client_credentials, private_key_jwt signed RS384 or ES384), SMART v1 and v2 "
     "system scopes, capped by the client's role (ehr, coordinator, quality, admin).");
  w.EndObject();
  w.Key("resource");
  w.StartArray();
  for (const auto& type : schema.ResourceTypes()) {
    w.StartObject();
    kv("type", type);
    w.Key("interaction");
    w.StartArray();
    for (const auto& code : in.type_interactions) {
      w.StartObject();
      kv("code", code);
      w.EndObject();
    }
    w.EndArray();
    kv("versioning", "versioned-update");
    w.Key("readHistory");
    w.Bool(true);
    w.Key("updateCreate");
    w.Bool(true);
    w.Key("conditionalCreate");
    w.Bool(true);
    kv("conditionalRead", "not-supported");
    w.Key("conditionalUpdate");
    w.Bool(true);
    kv("conditionalDelete", "single");
    w.Key("searchInclude");
    w.StartArray();
    for (const auto& def : registry.ForType(type)) {
      if (def.type == ParamType::kReference) str(type + ":" + def.name);
    }
    w.EndArray();
    w.Key("searchParam");
    w.StartArray();
    for (const auto& def : registry.ForType(type)) {
      w.StartObject();
      kv("name", def.name);
      if (!def.definition.empty()) kv("definition", def.definition);
      kv("type", ParamTypeName(def.type == ParamType::kUri ? ParamType::kUri : def.type));
      if (!def.documentation.empty()) kv("documentation", def.documentation);
      w.EndObject();
    }
    w.EndArray();
    bool any_op = false;
    for (const auto& op : in.operations) {
      if (op.type != type) continue;
      if (!any_op) {
        w.Key("operation");
        w.StartArray();
        any_op = true;
      }
      w.StartObject();
      kv("name", op.name);
      kv("definition", op.definition);
      w.EndObject();
    }
    if (any_op) w.EndArray();
    w.EndObject();
  }
  w.EndArray();
  w.Key("interaction");
  w.StartArray();
  for (const auto& code : in.system_interactions) {
    w.StartObject();
    kv("code", code);
    w.EndObject();
  }
  w.EndArray();
  bool system_op = false;
  for (const auto& op : in.operations) {
    if (!op.type.empty()) continue;
    if (!system_op) {
      w.Key("operation");
      w.StartArray();
      system_op = true;
    }
    w.StartObject();
    kv("name", op.name);
    kv("definition", op.definition);
    w.EndObject();
  }
  if (system_op) w.EndArray();
  w.EndObject();
  w.EndArray();
  w.EndObject();
  return std::string(sb.GetString(), sb.GetSize());
}

}  // namespace fls::fhir
