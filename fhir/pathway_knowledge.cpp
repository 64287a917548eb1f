#include "fhir/pathway_knowledge.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <functional>

#include "fhir/json.h"
#include "workflow/pathway.h"

namespace fls::fhir {

namespace {

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

void Kv(Writer& w, const char* key, const std::string& value) {
  w.Key(key);
  w.String(value.c_str(), static_cast<rapidjson::SizeType>(value.size()));
}

struct Concept {
  std::string code, display, definition;
};

// A complete CodeSystem; `concepts` in the order given.
JsonDoc CodeSystem(const std::string& base, const std::string& id, const std::string& name,
                   const std::string& title, const std::string& version,
                   const std::string& description, const std::vector<Concept>& concepts) {
  rapidjson::StringBuffer sb;
  Writer w(sb);
  w.StartObject();
  Kv(w, "resourceType", "CodeSystem");
  Kv(w, "id", id);
  Kv(w, "url", base + "/CodeSystem/" + id);
  Kv(w, "version", version);
  Kv(w, "name", name);
  Kv(w, "title", title);
  Kv(w, "status", "active");
  Kv(w, "publisher", "FLS Server");
  Kv(w, "description", description);
  w.Key("caseSensitive");
  w.Bool(true);
  Kv(w, "content", "complete");
  w.Key("count");
  w.Int(static_cast<int>(concepts.size()));
  w.Key("concept");
  w.StartArray();
  for (const auto& c : concepts) {
    w.StartObject();
    Kv(w, "code", c.code);
    Kv(w, "display", c.display);
    if (!c.definition.empty()) Kv(w, "definition", c.definition);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return ParseJson(sb.GetString());
}

std::string Number(double v) {
  std::string s = std::to_string(v);
  while (!s.empty() && s.back() == '0') s.pop_back();
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

}  // namespace

void PublishIfChanged(WriteContext& ctx, const std::string& type, const std::string& id,
                      JsonDoc& doc) {
  if (auto row = ctx.store().ReadCurrent(type, id); row && !row->deleted) {
    JsonDoc stored = ParseJson(row->content);
    RemoveMember(stored, "meta");
    JsonDoc mine;
    mine.CopyFrom(doc, mine.GetAllocator());
    RemoveMember(mine, "meta");
    if (stored == mine) return;
  }
  ctx.Update(type, id, doc);
}

void PublishPathwayKnowledge(FhirService& service, const workflow::InvestigationPanel& panel,
                             const std::string& base) {
  std::vector<Concept> stages, events, items, flags;
  for (auto s : workflow::kAllStages) {
    std::string code = workflow::StageCode(s);
    std::string allowed = workflow::AllowedList(s);
    stages.push_back(
        {code, code,
         workflow::IsOpen(s) ? "Open stage; allows: " + allowed : "Closed: allows nothing"});
  }
  for (auto e : workflow::kAllEvents) {
    std::string from;
    for (const auto& row : workflow::Transitions()) {
      if (row.event != e) continue;
      std::string f = workflow::StageCode(row.from);
      if (from.find(f) == std::string::npos) from += (from.empty() ? "" : ", ") + f;
    }
    events.push_back({workflow::EventCode(e), workflow::EventCode(e),
                      workflow::IsDataOnly(e)
                          ? "Raised by data only, never posted: an investigation result closed its item "
                            "(operations.md section 2); in: " + from
                          : "An $event (operations.md section 1); from: " + from});
  }
  for (const auto& i : panel.items()) items.push_back({i.code, i.display, i.source});
  for (const auto& f : panel.flags()) {
    std::string when;
    if (f.on_abnormal_interpretation) {
      when = "an abnormal interpretation of " + f.item;
    } else {
      for (const auto& t : f.thresholds) {
        when += (when.empty() ? f.item + " " : " or ") + std::string(1, f.comparator) + " " +
                Number(t.value) + " " + t.unit;
      }
    }
    bool seen = false;  // one concept per code: a flag with two rules (TSH low or high) is one code
    for (auto& c : flags) {
      if (c.code == f.code) {
        c.definition += "; or " + when + " (" + f.source + ")";
        seen = true;
      }
    }
    if (!seen) flags.push_back({f.code, f.display, "Raised when " + when + " (" + f.source + ")"});
  }
  std::vector<std::pair<std::string, JsonDoc>> docs;
  docs.emplace_back(
      "pathway-stage",
      CodeSystem(base, "pathway-stage", "PathwayStage", "FLS pathway stages", "1",
                 "The stages of the Capture the Fracture pathway (pathway.md section 2), the "
                 "value of the pathway-stage extension on an FLS case's EpisodeOfCare.",
                 stages));
  docs.emplace_back(
      "fls-pathway-event",
      CodeSystem(base, "fls-pathway-event", "FlsPathwayEvent", "FLS pathway events", "1",
                 "The event codes of POST EpisodeOfCare/{id}/$event (operations.md section 1), "
                 "generated from the state machine's table.",
                 events));
  docs.emplace_back(
      "fls-investigation",
      CodeSystem(
          base, "fls-investigation", "FlsInvestigation", "FLS investigation panel items",
          panel.version(),
          "The items of the investigation panel (operations.md section 2), generated from "
          "workflow/data/investigation-panel.json at start-up; each definition is its source.",
          items));
  docs.emplace_back(
      "fls-flag",
      CodeSystem(base, "fls-flag", "FlsFlag", "FLS investigation flags", panel.version(),
                 "Flags a panel result raises past its threshold (operations.md section "
                 "2), generated from workflow/data/investigation-panel.json at start-up.",
                 flags));
  service.Write([&](WriteContext& ctx) {
    for (auto& [id, doc] : docs) {
      JsonDoc copy;  // a retried attempt starts from the original
      copy.CopyFrom(doc, copy.GetAllocator());
      PublishIfChanged(ctx, "CodeSystem", id, copy);
    }
  });
}

}  // namespace fls::fhir
