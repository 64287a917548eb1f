#include "fhir/case_events.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <optional>

#include "db/case_store.h"
#include "fhir/fhir_date.h"

namespace fls::fhir {

namespace {

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

void Part(Writer& w, const char* name, const char* type, const std::string& value) {
  w.StartObject();
  w.Key("name");
  w.String(name);
  w.Key(type);
  w.String(value.c_str(), static_cast<rapidjson::SizeType>(value.size()));
  w.EndObject();
}

void IntegerPart(Writer& w, const char* name, long long value) {
  w.StartObject();
  w.Key("name");
  w.String(name);
  w.Key("valueInteger");
  w.Int64(value);
  w.EndObject();
}

}  // namespace

Outcome CaseEvents(FhirService& service, const std::string& episode_id) {
  std::optional<db::CaseRow> found;
  std::vector<db::CaseEventRow> rows;
  service.ReadStore([&](db::ResourceStore& store) {
    db::CaseStore cases(store);
    found = cases.Case(episode_id);
    rows = found ? cases.Events(episode_id) : std::vector<db::CaseEventRow>{};
  });
  if (!found)
    throw FhirError(ErrorCode::kNotFound, "EpisodeOfCare/" + episode_id + " is not an FLS case");

  rapidjson::StringBuffer sb;
  Writer w(sb);
  w.StartObject();
  w.Key("resourceType");
  w.String("Parameters");
  w.Key("parameter");
  w.StartArray();
  for (const auto& row : rows) {
    w.StartObject();
    w.Key("name");
    w.String("event");
    w.Key("part");
    w.StartArray();
    // valueInteger is 32-bit in FHIR: a sequence past it is written as a string of digits.
    if (row.seq <= 2147483647LL) {
      IntegerPart(w, "seq", row.seq);
    } else {
      Part(w, "seq", "valueString", std::to_string(row.seq));
    }
    Part(w, "event", "valueCode", row.event);
    if (!row.from_stage.empty()) Part(w, "from", "valueCode", row.from_stage);
    Part(w, "to", "valueCode", row.to_stage);
    Part(w, "occurred", "valueDateTime", FormatFhirInstant(row.occurred_us));
    Part(w, "recorded", "valueDateTime", FormatFhirInstant(row.recorded_us));
    Part(w, "source", "valueCode", row.source);
    if (!row.actor.empty()) Part(w, "actor", "valueString", row.actor);
    if (!row.reason.empty()) Part(w, "reason", "valueString", row.reason);
    if (!row.note.empty()) Part(w, "note", "valueString", row.note);
    w.EndArray();
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  Outcome out;
  out.status = 200;
  out.body = sb.GetString();
  out.resource_type = "Parameters";
  return out;
}

}  // namespace fls::fhir
