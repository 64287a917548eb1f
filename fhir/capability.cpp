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
     "answers 204. Task's period parameter also covers restriction.period (the FLS due date); "
     "EpisodeOfCare is searchable by stage and flag. _include and _revinclude work one level deep "
     "(up to 1000 included resources a page).");
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
