#include "fhir/bundle_builder.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "fhir/fhir_date.h"

namespace fls::fhir {

namespace {

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

void Str(Writer& w, const std::string& s) { w.String(s.c_str(), static_cast<rapidjson::SizeType>(s.size())); }

void Links(Writer& w, const BundleLinks& links) {
  w.Key("link");
  w.StartArray();
  auto one = [&](const char* rel, const std::string& url) {
    if (url.empty()) return;
    w.StartObject();
    w.Key("relation");
    w.String(rel);
    w.Key("url");
    Str(w, url);
    w.EndObject();
  };
  one("self", links.self);
  one("next", links.next);
  one("previous", links.previous);
  w.EndArray();
}

void Start(Writer& w, const char* type, std::optional<int> total) {
  w.StartObject();
  w.Key("resourceType");
  w.String("Bundle");
  w.Key("type");
  w.String(type);
  w.Key("timestamp");
  Str(w, FormatFhirInstant(NowMicros()));
  if (total) {
    w.Key("total");
    w.Int(*total);
  }
}

}  // namespace

std::string SearchsetBundle(const std::vector<db::VersionRow>& rows, const std::string& base_url,
                            std::optional<int> total, const BundleLinks& links,
                            const std::vector<Issue>& warnings, const std::vector<db::VersionRow>& included) {
  rapidjson::StringBuffer sb;
  Writer w(sb);
  Start(w, "searchset", total);
  Links(w, links);
  w.Key("entry");
  w.StartArray();
  auto entry = [&](const db::VersionRow& row, const char* mode) {
    if (row.deleted) return;
    w.StartObject();
    w.Key("fullUrl");
    Str(w, base_url + "/" + row.type + "/" + row.id);
    w.Key("resource");
    w.RawValue(row.content.c_str(), row.content.size(), rapidjson::kObjectType);
    w.Key("search");
    w.StartObject();
    w.Key("mode");
    w.String(mode);
    w.EndObject();
    w.EndObject();
  };
  for (const auto& row : rows) entry(row, "match");
  for (const auto& row : included) entry(row, "include");
  if (!warnings.empty()) {
    // R4 search.html#errors: an OperationOutcome entry with mode "outcome".
    std::string oo = OperationOutcomeJson(warnings, "informational");
    w.StartObject();
    w.Key("resource");
    w.RawValue(oo.c_str(), oo.size(), rapidjson::kObjectType);
    w.Key("search");
    w.StartObject();
    w.Key("mode");
    w.String("outcome");
    w.EndObject();
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return std::string(sb.GetString(), sb.GetSize());
}

std::string HistoryBundle(const std::vector<db::HistoryPage::Entry>& entries,
                          const std::string& base_url, std::optional<int> total,
                          const BundleLinks& links) {
  rapidjson::StringBuffer sb;
  Writer w(sb);
  Start(w, "history", total);
  Links(w, links);
  w.Key("entry");
  w.StartArray();
  for (const auto& e : entries) {
    const auto& row = e.row;
    std::string url = row.type + "/" + row.id;
    w.StartObject();
    w.Key("fullUrl");
    Str(w, base_url + "/" + url);
    if (!row.deleted) {
      w.Key("resource");
      w.RawValue(row.content.c_str(), row.content.size(), rapidjson::kObjectType);
    }
    w.Key("request");
    w.StartObject();
    w.Key("method");
    Str(w, row.method);
    w.Key("url");
    Str(w, row.method == "POST" ? row.type : url);
    w.EndObject();
    w.Key("response");
    w.StartObject();
    w.Key("status");
    w.String(row.deleted ? "204" : (row.version == 1 ? "201" : "200"));
    w.Key("etag");
    Str(w, "W/\"" + std::to_string(row.version) + "\"");
    w.Key("lastModified");
    Str(w, FormatFhirInstant(row.last_updated_us));
    w.EndObject();
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return std::string(sb.GetString(), sb.GetSize());
}

}  // namespace fls::fhir
