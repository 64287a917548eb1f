#include "fhir/pathway_engine.h"

#include <algorithm>
#include <cmath>
#include <ctime>
#include <map>
#include <set>

#include "db/case_store.h"
#include "fhir/event_parameters.h"
#include "fhir/fhir_date.h"
#include "fhir/indexer.h"
#include "fhir/json_builder.h"
#include "fhir/recommend.h"
#include "fhir/text.h"
#include "workflow/civil_date.h"

namespace fls::fhir {

namespace {

using workflow::Effect;
using workflow::Event;
using workflow::Stage;

constexpr int64_t kUsPerDay = 86400LL * 1000000LL;
constexpr int64_t kFutureSkewUs = 5LL * 60 * 1000000;  // clocks of the EHR and the server differ
const char* const kOpenTaskStatuses = "draft,requested,received,accepted,ready,in-progress,on-hold";
const char* const kLoinc = "http://loinc.org";
const char* const kSnomed = "http://snomed.info/sct";
const char* const kUcum = "http://unitsofmeasure.org";

bool IsOpenTaskStatus(std::string_view s) {
  return s == "draft" || s == "requested" || s == "received" || s == "accepted" || s == "ready" ||
         s == "in-progress" || s == "on-hold";
}

// The version an If-Match names (nullopt without one; 400 when it is no ETag).
std::optional<int64_t> IfMatchVersion(const std::optional<std::string>& if_match) {
  if (!if_match) return std::nullopt;
  auto v = ParseETagVersion(*if_match);
  if (!v) throw FhirError(ErrorCode::kBadRequest, "If-Match must be an ETag such as W/\"3\"");
  return *v;
}

// 412 when the caller saw another version of `ref` than its current one.
void RequireVersion(std::optional<int64_t> wanted, const std::string& ref, int64_t version) {
  if (wanted && *wanted != version) {
    throw FhirError(ErrorCode::kPreconditionFailed, "If-Match W/\"" + std::to_string(*wanted) + "\" is stale: " + ref +
                                                        " is at version " + std::to_string(version));
  }
}

// The valueString of a Task's input whose type.text is `name` (the engine writes them), or "".
std::string TaskInput(const JsonValue& task, std::string_view name) {
  const JsonValue* inputs = Member(task, "input");
  if (!inputs || !inputs->IsArray()) return "";
  for (const auto& in : inputs->GetArray()) {
    const JsonValue* type = in.IsObject() ? Member(in, "type") : nullptr;
    if (type && type->IsObject() && StringMember(*type, "text") == std::optional<std::string_view>(name)) {
      return std::string(StringMember(in, "valueString").value_or(""));
    }
  }
  return "";
}

// The canonical URLs the engine writes, under FLS_CANONICAL_BASE.
struct Canon {
  explicit Canon(const std::string& base)
      : b(base),
        stage_extension(b + "/StructureDefinition/pathway-stage"),
        case_extension(b + "/StructureDefinition/fls-case"),
        evidence_extension(b + "/StructureDefinition/flag-evidence"),
        threshold_extension(b + "/StructureDefinition/flag-threshold"),
        phone_extension(b + "/StructureDefinition/contact-phone"),
        referring_extension(b + "/StructureDefinition/referring-physician"),
        gp_extension(b + "/StructureDefinition/general-practitioner"),
        task_system(b + "/CodeSystem/fls-task"),
        consent_system(b + "/CodeSystem/fls-consent"),
        investigation_system(b + "/CodeSystem/fls-investigation"),
        flag_system(b + "/CodeSystem/fls-flag"),
        requisition_system(b + "/identifier/panel-requisition"),
        plan_definition(b + "/PlanDefinition/capture-the-fracture") {}
  std::string b;
  std::string stage_extension, case_extension, evidence_extension, threshold_extension, phone_extension,
      referring_extension, gp_extension, task_system, consent_system, investigation_system, flag_system,
      requisition_system, plan_definition;
};


// The `parameter` array of an operation's Parameters body (400 for anything else); null when the
// body has no parameter at all.
FhirError Bad(const std::string& message, const std::string& part = "") {
  return FhirError(ErrorCode::kBadRequest, message,
                   part.empty() ? "" : "Parameters.parameter[" + part + "]");
}


// ---------------------------------------------------------------------------------------------
// Small edits of resources read as JSON.

void SetString(JsonDoc& d, JsonValue& obj, const char* key, const std::string& v) {
  SetMember(obj, key, MakeString(v, d.GetAllocator()), d.GetAllocator());
}

// Sets the extension `url` to `value` (under `value_key`, e.g. valueCode) in place, or adds it.
void SetExtension(JsonDoc& d, const std::string& url, const char* value_key, JsonValue value) {
  auto& a = d.GetAllocator();
  if (!d.HasMember("extension") || !d["extension"].IsArray()) SetMember(d, "extension", JsonValue(rapidjson::kArrayType), a);
  JsonValue& list = d["extension"];
  for (auto& x : list.GetArray()) {
    if (x.IsObject() && StringMember(x, "url") == std::optional<std::string_view>(url)) {
      JsonValue fresh(rapidjson::kObjectType);
      SetMember(fresh, "url", MakeString(url, a), a);
      SetMember(fresh, value_key, std::move(value), a);
      x = std::move(fresh);
      return;
    }
  }
  JsonValue x(rapidjson::kObjectType);
  SetMember(x, "url", MakeString(url, a), a);
  SetMember(x, value_key, std::move(value), a);
  list.PushBack(x, a);
}

JsonValue ReferenceValue(JsonDoc& d, const std::string& ref) {
  JsonValue v(rapidjson::kObjectType);
  SetMember(v, "reference", MakeString(ref, d.GetAllocator()), d.GetAllocator());
  return v;
}

std::string StageOf(const JsonValue& ep, const std::string& url) {
  if (const JsonValue* ext = Member(ep, "extension"); ext && ext->IsArray()) {
    for (const auto& x : ext->GetArray()) {
      if (x.IsObject() && StringMember(x, "url") == std::optional<std::string_view>(url)) {
        return std::string(StringMember(x, "valueCode").value_or(""));
      }
    }
  }
  return "";
}

// ---------------------------------------------------------------------------------------------
// A result as the listener copied it out of the written resource.

struct ResultFacts {
  std::string type, id, patient;
  std::vector<std::pair<std::string, std::string>> codings;  // (system, code)
  std::vector<std::string> based_on;                          // ServiceRequest ids
  std::string effective;                                      // as written
  std::optional<double> value;
  std::string unit;  // UCUM code (or the unit text when no code)
  bool abnormal = false;
};

std::optional<std::string> PatientOf(const JsonValue& r) {
  for (const char* el : {"subject", "patient"}) {
    const JsonValue* s = Member(r, el);
    if (!s || !s->IsObject()) continue;
    auto ref = StringMember(*s, "reference");
    auto parsed = ref ? ParseReference(*ref) : std::nullopt;
    if (parsed && parsed->type == std::optional<std::string>("Patient") && parsed->id.find('/') == std::string::npos) {
      return parsed->id;
    }
  }
  return std::nullopt;
}


std::string FirstDate(const JsonValue& r, std::initializer_list<const char*> paths) {
  for (const char* path : paths) {
    std::vector<const JsonValue*> v;
    CollectPath(r, path, v);
    for (const JsonValue* x : v) {
      if (x->IsString()) return std::string(AsStringView(*x));
    }
  }
  return "";
}

bool IsAbnormalInterpretation(std::string_view code) {
  // v3 ObservationInterpretation: N (normal) and the non-abnormal qualifiers say nothing wrong.
  return !(code == "N" || code == "NEG" || code == "ND" || code == "IND" || code == "E" || code == "EXP" ||
           code == "S" || code == "SDD" || code == "I" || code == "NS" || code == "NR" || code == "U" ||
           code == "W" || code == "B");
}

std::optional<ResultFacts> ReadResult(const std::string& type, const std::string& id, const JsonValue& r) {
  ResultFacts f;
  f.type = type;
  f.id = id;
  auto patient = PatientOf(r);
  if (!patient) return std::nullopt;
  f.patient = *patient;
  std::string status(StringMember(r, "status").value_or(""));
  if (type == "Observation") {
    if (status != "final" && status != "amended" && status != "corrected") return std::nullopt;
    f.codings = CodingsOf(r, "code");
    f.effective = FirstDate(r, {"effectiveDateTime", "effectiveInstant", "effectivePeriod.start", "issued"});
    if (const JsonValue* q = Member(r, "valueQuantity"); q && q->IsObject()) {
      if (const JsonValue* v = Member(*q, "value"); v && IsNumber(*v)) {
        if (auto text = NumberText(*v)) {
          try {
            f.value = std::stod(*text);
          } catch (...) {
          }
        }
      }
      f.unit = std::string(StringMember(*q, "code").value_or(StringMember(*q, "unit").value_or("")));
    }
    for (const auto& [system, code] : CodingsOf(r, "interpretation")) {
      (void)system;
      if (IsAbnormalInterpretation(code)) f.abnormal = true;
    }
  } else {  // Procedure
    if (status != "completed") return std::nullopt;
    f.codings = CodingsOf(r, "code");
    f.effective = FirstDate(r, {"performedDateTime", "performedPeriod.start"});
  }
  std::vector<const JsonValue*> refs;
  CollectPath(r, "basedOn", refs);
  for (const JsonValue* b : refs) {
    auto ref = b->IsObject() ? StringMember(*b, "reference") : std::nullopt;
    auto parsed = ref ? ParseReference(*ref) : std::nullopt;
    if (parsed && parsed->type == std::optional<std::string>("ServiceRequest")) f.based_on.push_back(parsed->id);
  }
  return f;
}

// A data-raised event's date: when it happened, within the fracture and now (the table refuses
// others from clients; data entered late or early is still data).
std::pair<int64_t, int64_t> ClampToCase(const std::string& when, const db::CaseRow& c, int64_t now_us) {
  auto range = when.empty() ? std::nullopt : ParseFhirDate(when);
  auto day = when.empty() ? std::nullopt : DayOf(when);
  int64_t us = range ? range->lo_us : now_us;
  int64_t d = day ? *day : LocalDay(now_us / 1000000);
  int64_t today = LocalDay(now_us / 1000000);
  if (us > now_us || d > today) {
    us = now_us;
    d = today;
  }
  // Not before the fracture, unless the fracture is dated after today (a case finding accepts):
  // then today.
  if (c.index_day && d < *c.index_day) {
    d = std::min<int64_t>(*c.index_day, today);
    us = std::min<int64_t>(std::max<int64_t>(us, LocalMidnightUs(d)), now_us);
  }
  return {us, d};
}


// The open case of the patient, if any.
std::optional<db::CaseRow> OpenCase(db::CaseStore& cases, const std::string& patient) {
  for (auto& c : cases.CasesOfPatient(patient)) {
    if (c.open) return c;
  }
  return std::nullopt;
}

// A medication record for the patient: the ATC of an osteoporosis drug, and when.
struct MedicationFacts {
  std::string type, id, patient, atc, when;
  std::optional<int> days_supply;  // MedicationDispense.daysSupply, in days
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// One event applied to one locked case: the effects, the log row, the EpisodeOfCare.

class PathwayRun {
 public:
  PathwayRun(const PathwayEngine& engine, WriteContext& ctx, db::CaseStore& cases, db::CaseRow row)
      : e_(engine), canon_(engine.config_.canonical_base), ctx_(ctx), cases_(cases), row_(std::move(row)) {
    now_us_ = NowMicros();
    now_us_ -= now_us_ % 1000;
    today_ = LocalDay(now_us_ / 1000000);
  }

  workflow::Stage Run(workflow::EventInput in, const EventOrigin& origin, int64_t occurred_us,
                      const std::optional<std::string>& if_match, const std::string& result_ref,
                      std::optional<int64_t> result_day) {
    const std::string ep_ref = "EpisodeOfCare/" + row_.episode_id;
    ctx_.store().LockCurrent("EpisodeOfCare", row_.episode_id);
    auto current = ctx_.store().ReadCurrent("EpisodeOfCare", row_.episode_id);
    if (!current || current->deleted) throw FhirError(ErrorCode::kNotFound, ep_ref + " is not known");
    RequireVersion(IfMatchVersion(if_match), ep_ref, current->version);
    auto stage = workflow::ParseStage(row_.stage);
    if (!stage) throw FhirError(ErrorCode::kInternal, "the case's stage is unknown: " + row_.stage);
    if (!row_.open && workflow::IsOpen(*stage)) {
      throw FhirError(ErrorCode::kUnprocessable, "the case was voided (its index fracture was entered in error); "
                                                 "stage " + row_.stage + " allows: nothing (the case is closed)");
    }
    items_ = cases_.Items(row_.episode_id);
    workflow::CaseFacts facts;
    facts.stage = *stage;
    facts.index_fracture_day = row_.index_day;
    facts.today = today_;
    for (const auto& i : items_) {
      std::string ref = "ServiceRequest/" + i.service_request_id;
      facts.case_items.push_back(ref);
      if (i.status == "ordered") {
        facts.open_items.push_back(ref);
        if (!i.required) facts.optional_items.push_back(ref);
      }
    }
    facts.decided_drug = row_.decided_drug;
    facts.current_drug = row_.current_drug;
    if (in.event == Event::kFallsAssessment && in.item.empty()) {
      if (const auto* falls = ItemByCode("falls-assessment"); falls && falls->status == "ordered") {
        in.item = "ServiceRequest/" + falls->service_request_id;
      }
    }
    workflow::Outcome o = workflow::Apply(facts, in, workflow::IsOsteoporosisDrugCheck, &e_.drugs_);
    if (o.kind == workflow::Outcome::Kind::kBadRequest) throw FhirError(ErrorCode::kBadRequest, o.message, o.expression);
    if (o.kind == workflow::Outcome::Kind::kNotAllowed) throw FhirError(ErrorCode::kUnprocessable, o.message);
    in_ = in;
    out_ = o;
    occurred_us_ = std::min(occurred_us, now_us_);
    result_ref_ = result_ref;
    result_day_ = result_day;
    ep_ = ParseJson(current->content);

    // A closing event ends what was planned first; its own effects may plan what follows a stop.
    if (!workflow::IsOpen(o.to)) cases_.CancelTimers(row_.episode_id);
    for (Effect effect : o.effects) ApplyEffect(effect);
    if (in.event == Event::kLostToFollowUp) DenosumabStoppedWithoutRelay();

    db::NewCaseEvent log;
    log.episode_id = row_.episode_id;
    log.occurred_us = occurred_us_;
    log.from_stage = workflow::StageCode(o.from);
    log.to_stage = workflow::StageCode(o.to);
    log.event = workflow::EventCode(in.event);
    log.reason = in.reason;
    log.note = in.note;
    if (!notes_.empty()) log.note += (log.note.empty() ? "" : "; ") + notes_;
    log.source = origin.source;
    log.actor = origin.actor;
    cases_.AppendEvent(log);
    row_.stage = log.to_stage;
    if (!workflow::IsOpen(o.to)) cases_.Close(row_.episode_id, row_.stage, now_us_);
    cases_.SetPathway(row_);
    // Every event makes a new version of the case (operations.md: 200 with a new versionId), so
    // that If-Match guards against any event a coordinator has not seen.
    WriteEpisode(true);
    return o.to;
  }

  // A due timer of this (locked) case, at the timers' clock `now_us`: its effect, once; returns
  // what it did (kept on the timer's row).
  std::string FireTimer(const db::TimerRow& timer, int64_t now_us) {
    now_us_ = now_us - now_us % 1000;
    today_ = LocalDay(now_us_ / 1000000);
    items_ = cases_.Items(row_.episode_id);
    if (timer.kind == "after-stop") {
      if (row_.stage != "completed") return "skipped: stage " + row_.stage;
      if (auto p = ctx_.store().ReadCurrent("Patient", row_.patient_id); p && !p->deleted) {
        JsonDoc pd = ParseJson(p->content);
        const JsonValue* dead = Member(pd, "deceasedBoolean");
        if (Member(pd, "deceasedDateTime") || (dead && dead->IsTrue())) return "skipped: the patient died";
      }
      auto stop = DayOf(timer.key.substr(timer.key.rfind(':') + 1));
      if (!stop) return "skipped: no stop date";
      auto after = e_.long_term_.AfterStop(*stop);
      WriteTask(NewUuid(), after.task, "Re-evaluate after the stop", after.description, "EpisodeOfCare/" + row_.episode_id,
                after.to_day, "routine", after.from_day);
      return "re-evaluation-after-stop Task opened";
    }
    if (!row_.open) return "skipped: the case is closed";
    if (timer.kind.rfind("lt-", 0) == 0) return FireLongTerm(timer);
    if (timer.kind == "dose-overdue") {
      auto due = DayOf(timer.key.substr(timer.key.rfind(':') + 1));
      if (!due || row_.stage != "follow-up") return "skipped: stage " + row_.stage;
      auto last = cases_.LastDoseDay(row_.episode_id, row_.current_drug);
      if (last && *last > *due - 60) return "skipped: a dose was given on " + DayText(*last);
      WriteTask(NewUuid(), "denosumab-overdue", "Denosumab injection overdue",
                "The injection of " + DrugName(row_.current_drug) + " due on " + DayText(*due) +
                    " is not recorded 4 weeks later. Stopping denosumab without a relay causes rebound vertebral fractures: "
                    "reach the patient and the physician today.",
                "EpisodeOfCare/" + row_.episode_id, today_, "urgent");
      return "denosumab-overdue Task opened";
    }
    if (timer.kind == "lost-to-follow-up") {
      auto since = DayOf(timer.key.substr(timer.key.rfind(':') + 1));
      auto reached = cases_.LastReachedDay(row_.episode_id);
      if (row_.stage != "follow-up") return "skipped: stage " + row_.stage;
      if (since && reached && *reached >= *since) return "skipped: reached on " + DayText(*reached);
      return "event:lost-to-follow-up";
    }
    if (timer.kind == "assess-enrol-overdue") {
      if (row_.stage != "identified") return "skipped: stage " + row_.stage;
      int n = 0;
      for (const auto& id : OpenTasks("focus=EpisodeOfCare/" + row_.episode_id + "&code=" +
                                      PercentEncode(canon_.task_system + "|assess-enrol"))) {
        bool done = Edit("Task", id, [&](JsonDoc& d) {
          auto& a = d.GetAllocator();
          SetString(d, d, "priority", "urgent");
          SetString(d, d, "lastModified", Instant(now_us_));
          if (!d.HasMember("note") || !d["note"].IsArray()) SetMember(d, "note", JsonValue(rapidjson::kArrayType), a);
          JsonValue n(rapidjson::kObjectType);
          SetMember(n, "time", MakeString(Instant(now_us_), a), a);
          SetMember(n, "text", MakeString("Overdue: the patient was not enrolled or excluded in time; escalated to urgent.", a), a);
          d["note"].PushBack(n, a);
          return true;
        });
        if (done) ++n;
      }
      return "escalated " + std::to_string(n) + " assess-enrol Task(s)";
    }
    if (timer.kind == "dxa-chase") {
      const auto* dxa = ItemByCode("dxa");
      if (!dxa || dxa->status != "ordered") return "skipped: the DXA is resulted or waived";
      WriteTask(NewUuid(), "chase-dxa", "Chase the DXA",
                "The bone density scan ordered at enrolment is not resulted after " +
                    std::to_string(e_.config_.dxa_chase_days) + " days: chase the appointment or the report.",
                "ServiceRequest/" + dxa->service_request_id, today_ + 7, "urgent");
      return "chase-dxa Task opened";
    }
    return "skipped: unknown timer kind " + timer.kind;
  }

 private:
  // A long-term rule due (lt-{kind}): its Task, for the treatment it was planned for.
  std::string FireLongTerm(const db::TimerRow& timer) {
    // key lt:{kind}:{episode}:{start}:{atc}
    std::string atc = timer.key.substr(timer.key.rfind(':') + 1);
    if (row_.stage != "follow-up" || row_.current_drug != atc || !row_.treatment_start_day) {
      return "skipped: the case is no longer in follow-up on " + atc;
    }
    const auto* drug = e_.drugs_.Find(atc);
    std::string kind = timer.kind.substr(3);
    for (const auto& item : e_.long_term_.For(drug ? drug->drug_class : "", *row_.treatment_start_day)) {
      if (item.kind != kind) continue;
      std::vector<std::pair<std::string, std::string>> inputs;
      std::string description = item.description;
      if (kind == "stop-evaluation") inputs = StopCriteria(description);
      WriteTask(NewUuid(), item.task, item.task == "relay" ? "Plan the relay" : "Re-evaluate the treatment",
                description + " Treatment: " + DrugName(atc) + " since " + DayText(*row_.treatment_start_day) + ".",
                "EpisodeOfCare/" + row_.episode_id, item.to_day, "routine", item.from_day, inputs);
      return item.task + " Task opened";
    }
    return "skipped: no " + kind + " for " + atc;
  }

  // The four stop criteria (pathway.md section 6) as the data says them now: met, not met, or
  // to check (no data).
  std::vector<std::pair<std::string, std::string>> StopCriteria(std::string& description) {
    const auto& lt = e_.long_term_;
    std::vector<std::pair<std::string, std::string>> out;
    int64_t start = *row_.treatment_start_day;
    bool fracture = false;
    for (const auto& c : cases_.CasesOfPatient(row_.patient_id)) {
      if (c.voided) continue;
      // A fracture after the start (the index fracture is why the treatment began).
      for (const auto& f : cases_.FracturesOf(c.episode_id)) fracture = fracture || (f.fracture_day && *f.fracture_day > start);
    }
    out.emplace_back("no fracture under treatment", fracture ? "not met: a fracture since the start" : "met");
    out.emplace_back("no new risk factor", "to check with the patient (not recorded as data)");
    // BMD: the first and the latest measure of each site; a decrease past the threshold is a loss.
    std::map<std::string, std::vector<std::pair<std::string, double>>> bmd;  // site -> (date, g/cm2)
    std::string codes;
    for (const auto& [key, site] : lt.bmd_codes()) codes += (codes.empty() ? "" : ",") + PercentEncode(key);
    for (const auto& id : ctx_.Search("Observation", "subject=Patient/" + row_.patient_id + "&code=" + codes +
                                                         "&status=final,amended,corrected", 200)) {
      auto obs = ctx_.store().ReadCurrent("Observation", id);
      if (!obs || obs->deleted) continue;
      JsonDoc d = ParseJson(obs->content);
      auto facts = ReadResult("Observation", id, d);
      if (!facts || !facts->value) continue;
      for (const auto& [system, code] : facts->codings) {
        for (const auto& [key, site] : lt.bmd_codes()) {
          if (key == system + "|" + code) bmd[site].emplace_back(facts->effective, *facts->value);
        }
      }
    }
    std::string loss = bmd.empty() ? "to check: no BMD on record" : "met";
    bool compared = false;
    for (auto& [site, values] : bmd) {
      std::sort(values.begin(), values.end());
      if (values.size() < 2) continue;
      compared = true;
      double drop = values.front().second - values.back().second;
      if (drop > lt.bmd_loss() + 1e-9) {
        loss = "not met: " + site + " BMD decreased by " + std::to_string(drop).substr(0, 5) + " g/cm2";
      }
    }
    if (!bmd.empty() && !compared) loss = "to check: a single BMD measure";
    out.emplace_back("no significant BMD decrease", loss);
    std::optional<double> femoral;
    std::string t_codes;
    for (const auto& [key, site] : e_.grio_.t_score_codes()) {
      if (site == "total-hip" || site == "femoral-neck") t_codes += (t_codes.empty() ? "" : ",") + PercentEncode(key);
    }
    std::string latest;
    for (const auto& id : ctx_.Search("Observation", "subject=Patient/" + row_.patient_id + "&code=" + t_codes +
                                                         "&status=final,amended,corrected", 200)) {
      auto obs = ctx_.store().ReadCurrent("Observation", id);
      if (!obs || obs->deleted) continue;
      JsonDoc d = ParseJson(obs->content);
      auto facts = ReadResult("Observation", id, d);
      if (facts && facts->value && facts->effective >= latest) {
        latest = facts->effective;
        femoral = facts->value;
      }
    }
    char threshold[16];
    std::snprintf(threshold, sizeof threshold, "%g", lt.femoral_t_score_above());
    out.emplace_back("femoral T-score above " + std::string(threshold),
                     !femoral ? "to check: no femoral T-score on record"
                     : *femoral > lt.femoral_t_score_above() ? "met"
                                                              : "not met: " + std::to_string(*femoral).substr(0, 5));
    description += " Criteria now:";
    for (const auto& [name, value] : out) description += " " + name + ": " + value + ";";
    return out;
  }

  const db::CaseItemRow* ItemByCode(const std::string& code) const {
    for (const auto& i : items_) {
      if (i.item == code) return &i;
    }
    return nullptr;
  }
  const db::CaseItemRow* ItemByRef(const std::string& ref) const {
    for (const auto& i : items_) {
      if ("ServiceRequest/" + i.service_request_id == ref) return &i;
    }
    return nullptr;
  }
  void Note(const std::string& n) { notes_ += (notes_.empty() ? "" : "; ") + n; }

  std::string Instant(int64_t us) const { return FormatFhirInstant(us); }

  void ApplyEffect(Effect effect) {
    switch (effect) {
      case Effect::kEpisodeActive:
        status_ = "active";
        break;
      case Effect::kEpisodeCancelled:
        status_ = "cancelled";
        break;
      case Effect::kEpisodeFinished:
        status_ = "finished";
        break;
      case Effect::kWriteConsents:
        WriteConsents();
        break;
      case Effect::kRecordContacts:
        RecordContacts();
        break;
      case Effect::kCompleteAssessTask:
        for (const auto& id : OpenTasks("focus=EpisodeOfCare/" + row_.episode_id + "&code=" +
                                        PercentEncode(canon_.task_system + "|assess-enrol"))) {
          SetTaskStatus(id, "completed", "");
        }
        break;
      case Effect::kOrderPanel:
        OrderPanel();
        break;
      case Effect::kCancelOpenTasks:
      case Effect::kCancelScheduledTasks:
        CancelOpenTasks();
        break;
      case Effect::kEndCarePlan:
        EndCarePlan();
        break;
      case Effect::kRevokeItem:
        CloseItem(in_.item, "waived", "revoked", "cancelled", in_.reason);
        break;
      case Effect::kCompleteFallsTask:
        falls_observation_id_ = NewUuid();
        if (!in_.item.empty() && ItemByRef(in_.item) && ItemByRef(in_.item)->status == "ordered") {
          result_ref_ = "Observation/" + falls_observation_id_;
          result_day_ = in_.occurred_day;
          CloseItem(in_.item, "resulted", "completed", "completed", "");
        }
        break;
      case Effect::kRecordFallsObservation:
        RecordFallsObservation();
        break;
      case Effect::kRecordExercise:
        break;  // the log row is the record (KPI 8)
      case Effect::kAddDrugActivity:
        // The decision says which recommendation it followed, or that it departed from it.
        Note(DecisionAgainstRecommendation(e_, RecommendFor(e_, ctx_, cases_, row_), out_.drug_atc));
        row_.decided_drug = out_.drug_atc;
        AddDrugActivity(out_.drug_atc, "not-started");
        break;
      case Effect::kOpenStartTreatmentTask:
        WriteTask(NewUuid(), "start-treatment", "Start the treatment",
                  "Start " + DrugName(out_.drug_atc) + " as decided (post treatment-started, or the prescription is "
                  "recognised when it is pushed).",
                  "EpisodeOfCare/" + row_.episode_id, today_ + e_.config_.start_treatment_due_days, "routine");
        break;
      case Effect::kOrderReferral:
        OrderReferral();
        break;
      case Effect::kPlanFollowUp:
        PlanFollowUp();
        break;
      case Effect::kInactivateConsents:
        for (const auto& id : {row_.consent_programme_id, row_.consent_report_id}) {
          if (!id.empty()) SetStatus("Consent", id, "inactive");
        }
        break;
      case Effect::kPlanAfterStop:
        PlanAfterStop();
        break;
      case Effect::kCloseItem:
        if (const auto* item = ItemByRef(in_.item); item && item->status == "ordered") {
          CloseItem(in_.item, "resulted", "completed", "completed", "");
        }
        break;
    }
  }

  std::string DrugName(const std::string& atc) const {
    const auto* d = e_.drugs_.Find(atc);
    return d && d->atc == atc ? d->display + " (" + atc + ")" : atc;
  }

  std::string CarePlanId() {
    if (!row_.care_plan_id.empty()) return row_.care_plan_id;
    for (const auto& id : ctx_.Search("CarePlan", "patient=Patient/" + row_.patient_id + "&instantiates-canonical=" +
                                                      PercentEncode(canon_.plan_definition), 20)) {
      auto plan = ctx_.store().ReadCurrent("CarePlan", id);
      if (!plan || plan->deleted) continue;
      JsonDoc d = ParseJson(plan->content);
      std::vector<const JsonValue*> refs;
      CollectPath(d, "supportingInfo.reference", refs);
      for (const JsonValue* r : refs) {
        if (r->IsString() && AsStringView(*r) == "EpisodeOfCare/" + row_.episode_id) {
          row_.care_plan_id = id;
          return id;
        }
      }
    }
    return "";
  }

  std::vector<std::string> OpenTasks(const std::string& query) {
    return ctx_.Search("Task", query + "&status=" + kOpenTaskStatuses, 1000);
  }

  // Reads a resource for update (its row locked), lets `edit` change it, writes it back.
  template <typename Fn>
  bool Edit(const std::string& type, const std::string& id, Fn edit) {
    ctx_.store().LockCurrent(type, id);
    auto current = ctx_.store().ReadCurrent(type, id);
    if (!current || current->deleted) return false;
    JsonDoc d = ParseJson(current->content);
    if (!edit(d)) return false;
    ctx_.Update(type, id, d);
    return true;
  }

  void SetStatus(const std::string& type, const std::string& id, const std::string& status) {
    Edit(type, id, [&](JsonDoc& d) {
      if (StringMember(d, "status") == std::optional<std::string_view>(status)) return false;
      SetString(d, d, "status", status);
      return true;
    });
  }

  void SetTaskStatus(const std::string& id, const std::string& status, const std::string& why) {
    Edit("Task", id, [&](JsonDoc& d) {
      auto current = StringMember(d, "status");
      if (!current || !IsOpenTaskStatus(*current)) return false;  // done already: keep it
      SetString(d, d, "status", status);
      SetString(d, d, "lastModified", Instant(now_us_));
      if (!why.empty()) {
        JsonValue reason(rapidjson::kObjectType);
        SetMember(reason, "text", MakeString(why, d.GetAllocator()), d.GetAllocator());
        SetMember(d, "statusReason", std::move(reason), d.GetAllocator());
      }
      return true;
    });
  }

  void WriteTask(const std::string& id, const std::string& code, const std::string& display,
                 const std::string& description, const std::string& focus, int64_t due_day,
                 const std::string& priority, std::optional<int64_t> from_day = std::nullopt,
                 const std::vector<std::pair<std::string, std::string>>& inputs = {}) {
    std::string plan = CarePlanId();
    Json t;
    t.Obj().S("resourceType", "Task").S("id", id);
    if (!plan.empty()) t.Arr("basedOn").Obj().S("reference", "CarePlan/" + plan).End().EndArr();
    t.S("status", "requested").S("intent", "order").S("priority", priority);
    t.Concept("code", canon_.task_system, code, display);
    t.S("description", description);
    t.Ref("focus", focus);
    t.Ref("for", "Patient/" + row_.patient_id);
    t.S("authoredOn", Instant(now_us_)).S("lastModified", Instant(now_us_));
    if (!row_.site_org.empty()) t.Ref("owner", "Organization/" + row_.site_org);
    t.Key("restriction").Obj().Key("period").Obj();
    if (from_day) t.S("start", DayText(*from_day));
    t.S("end", DayText(due_day)).End().End();
    if (!inputs.empty()) {
      t.Arr("input");
      for (const auto& [name, value] : inputs) t.Obj().Key("type").Obj().S("text", name).End().S("valueString", value).End();
      t.EndArr();
    }
    t.End();
    JsonDoc doc = t.Doc();
    ctx_.Create("Task", doc, id);
  }

  void WriteConsents() {
    for (const char* kind : {"programme", "report-to-physician"}) {
      bool report = std::string_view(kind) == "report-to-physician";
      std::string id = NewUuid();
      Json c;
      c.Obj().S("resourceType", "Consent").S("id", id);
      c.Arr("extension").Obj().S("url", canon_.case_extension).Ref("valueReference", "EpisodeOfCare/" + row_.episode_id).End().EndArr();
      c.S("status", "active");
      c.Concept("scope", "http://terminology.hl7.org/CodeSystem/consentscope", "patient-privacy", "Privacy Consent");
      c.Arr("category").Obj().Arr("coding").Coding(kLoinc, "59284-0", "Patient Consent").EndArr().End().EndArr();
      c.Ref("patient", "Patient/" + row_.patient_id);
      c.S("dateTime", Instant(occurred_us_));
      if (!row_.site_org.empty()) c.Arr("organization").Obj().S("reference", "Organization/" + row_.site_org).End().EndArr();
      c.Concept("policyRule", canon_.consent_system, kind,
                report ? "Reports to the physician" : "The FLS programme");
      c.Key("provision").Obj().S("type", !report || *in_.consent_report ? "permit" : "deny").End();
      c.End();
      JsonDoc doc = c.Doc();
      ctx_.Create("Consent", doc, id);
      (report ? row_.consent_report_id : row_.consent_programme_id) = id;
    }
    row_.consent_report = *in_.consent_report;
    row_.enrolled_day = in_.occurred_day;
  }

  void RecordContacts() {
    for (const auto* ref : {&in_.referring_physician, &in_.gp}) {
      if (ref->empty()) continue;
      std::string id = ref->substr(ref->find('/') + 1);
      auto found = ctx_.store().ReadCurrent("Practitioner", id);
      if (!found || found->deleted) {
        throw Bad(*ref + " is not known to this server",
                  ref == &in_.gp ? "gp" : "referring-physician");
      }
    }
    row_.phone = in_.phone;
    row_.referring_physician = in_.referring_physician;
    row_.gp = in_.gp;
    SetExtension(ep_, canon_.phone_extension, "valueString", MakeString(in_.phone, ep_.GetAllocator()));
    SetExtension(ep_, canon_.referring_extension, "valueReference", ReferenceValue(ep_, in_.referring_physician));
    if (!in_.gp.empty()) SetExtension(ep_, canon_.gp_extension, "valueReference", ReferenceValue(ep_, in_.gp));
  }

  // Spine imaging only when pathway.md section 3's criteria hold (data: the panel file).
  bool SpineImagingIndicated(std::string& why) {
    const auto& crit = e_.panel_.spine_imaging();
    if (cases_.PatientHasFractureAt(row_.patient_id, crit.fracture_sites)) {
      why = "a vertebral fracture on record";
      return true;
    }
    for (const auto& id : ctx_.Search("MedicationRequest", "subject=Patient/" + row_.patient_id + "&status=active", 200)) {
      auto mr = ctx_.store().ReadCurrent("MedicationRequest", id);
      if (!mr || mr->deleted) continue;
      JsonDoc d = ParseJson(mr->content);
      for (const auto& [system, code] : CodingsOf(d, "medicationCodeableConcept")) {
        if (system != e_.drugs_.atc_system()) continue;
        for (const auto& prefix : crit.medication_atc_prefixes) {
          if (code.compare(0, prefix.size(), prefix) == 0) {
            why = "an active prescription of " + code;
            return true;
          }
        }
      }
    }
    for (const auto& c : crit.height_loss) {
      std::string param = c.resource == "Condition" ? "code" : "code";
      if (!ctx_.Search(c.resource, "subject=Patient/" + row_.patient_id + "&" + param + "=" +
                                       PercentEncode(c.system + "|" + c.code), 1).empty()) {
        why = "a recorded height loss";
        return true;
      }
    }
    return false;
  }

  void OrderPanel() {
    std::string plan = CarePlanId();
    std::string requisition = NewUuid();
    std::string spine_why;
    bool spine = SpineImagingIndicated(spine_why);
    for (const auto& item : e_.panel_.items()) {
      if (item.when == "spine-imaging-criteria" && !spine) continue;
      db::CaseItemRow row;
      row.item = item.code;
      row.service_request_id = NewUuid();
      row.task_id = NewUuid();
      row.required = item.required;
      row.status = "ordered";
      if (!cases_.InsertItem(row_.episode_id, row)) continue;  // ordered already: once per item
      Json s;
      s.Obj().S("resourceType", "ServiceRequest").S("id", row.service_request_id);
      s.Arr("extension").Obj().S("url", canon_.case_extension).Ref("valueReference", "EpisodeOfCare/" + row_.episode_id).End().EndArr();
      s.Arr("identifier").Obj().S("system", canon_.requisition_system).S("value", requisition).End().EndArr();
      if (!plan.empty()) s.Arr("basedOn").Obj().S("reference", "CarePlan/" + plan).End().EndArr();
      s.Key("requisition").Obj().S("system", canon_.requisition_system).S("value", requisition).End();
      s.S("status", "active").S("intent", "order");
      s.Key("code").Obj().Arr("coding");
      s.Coding(canon_.investigation_system, item.code, item.display);
      if (item.order.system != canon_.investigation_system) s.Coding(item.order.system, item.order.code);
      s.EndArr().S("text", item.display).End();
      s.Ref("subject", "Patient/" + row_.patient_id);
      s.S("authoredOn", Instant(occurred_us_));
      if (item.code == "spine-imaging" && !spine_why.empty()) s.Arr("reasonCode").Obj().S("text", spine_why).End().EndArr();
      s.Arr("supportingInfo").Obj().S("reference", "EpisodeOfCare/" + row_.episode_id).End().EndArr();
      s.End();
      JsonDoc doc = s.Doc();
      ctx_.Create("ServiceRequest", doc, row.service_request_id);
      WriteTask(row.task_id, "investigation", item.display,
                item.code == "falls-assessment"
                    ? "Assess the falls risk, then post the falls-assessment event (or complete this Task)."
                    : "Obtain the result of: " + item.display + " (it closes when the result is pushed, or waive it with a reason).",
                "ServiceRequest/" + row.service_request_id, today_ + e_.config_.investigation_due_days, "routine");
      items_.push_back(row);
      if (item.code == "dxa") {
        cases_.ScheduleTimer("dxa-chase:" + row_.episode_id, row_.episode_id, "dxa-chase",
                             LocalMidnightUs(in_.occurred_day + e_.config_.dxa_chase_days));
      }
    }
  }

  // The item's ServiceRequest and Task to their final statuses, the item row with it.
  void CloseItem(const std::string& ref, const std::string& item_status, const std::string& sr_status,
                 const std::string& task_status, const std::string& why) {
    const db::CaseItemRow* item = ItemByRef(ref);
    if (!item) return;
    Edit("ServiceRequest", item->service_request_id, [&](JsonDoc& d) {
      SetString(d, d, "status", sr_status);
      if (!why.empty()) {
        auto& a = d.GetAllocator();
        JsonValue note(rapidjson::kArrayType);
        JsonValue n(rapidjson::kObjectType);
        SetMember(n, "text", MakeString("Waived: " + why, a), a);
        SetMember(n, "time", MakeString(Instant(now_us_), a), a);
        note.PushBack(n, a);
        SetMember(d, "note", std::move(note), a);
      }
      return true;
    });
    SetTaskStatus(item->task_id, task_status, why);
    cases_.SetItemStatus(row_.episode_id, item->item, item_status, result_ref_, item_status == "resulted" ? result_day_ : std::nullopt);
    for (auto& i : items_) {
      if (i.service_request_id == item->service_request_id) i.status = item_status;
    }
  }

  void CancelOpenTasks() {
    std::set<std::string> ids;
    for (const auto& id : OpenTasks("focus=EpisodeOfCare/" + row_.episode_id)) ids.insert(id);
    std::string plan = CarePlanId();
    if (!plan.empty()) {
      for (const auto& id : OpenTasks("based-on=CarePlan/" + plan)) ids.insert(id);
    }
    for (const auto& i : items_) {
      if (i.status == "ordered") ids.insert(i.task_id);
    }
    std::string why = "FLS case " + std::string(workflow::StageCode(out_.to));
    for (const auto& id : ids) SetTaskStatus(id, "cancelled", why);
  }

  void EndCarePlan() {
    std::string plan = CarePlanId();
    bool completed = out_.to == Stage::kCompleted;
    // The case's orders end with it: open panel items and the referral are revoked.
    for (auto& i : items_) {
      if (i.status != "ordered") continue;
      SetStatus("ServiceRequest", i.service_request_id, "revoked");
      cases_.SetItemStatus(row_.episode_id, i.item, "revoked");
      i.status = "revoked";
    }
    if (plan.empty()) return;
    for (const auto& id : ctx_.Search("ServiceRequest", "based-on=CarePlan/" + plan + "&status=active,on-hold,draft", 200)) {
      SetStatus("ServiceRequest", id, "revoked");
    }
    Edit("CarePlan", plan, [&](JsonDoc& d) {
      SetString(d, d, "status", completed ? "completed" : "revoked");
      auto& a = d.GetAllocator();
      JsonValue period(rapidjson::kObjectType);
      if (const JsonValue* p = Member(d, "period"); p && p->IsObject()) period.CopyFrom(*p, a);
      SetMember(period, "end", MakeString(Instant(std::max(occurred_us_, PeriodStartUs(period))), a), a);
      SetMember(d, "period", std::move(period), a);
      return true;
    });
  }

  static int64_t PeriodStartUs(const JsonValue& period) {
    auto start = StringMember(period, "start");
    auto range = start ? ParseFhirDate(*start) : std::nullopt;
    return range ? range->lo_us : INT64_MIN;
  }

  void RecordFallsObservation() {
    const auto* falls = e_.panel_.Item("falls-assessment");
    std::string id = falls_observation_id_.empty() ? NewUuid() : falls_observation_id_;
    Json o;
    o.Obj().S("resourceType", "Observation").S("id", id);
    o.Arr("extension").Obj().S("url", canon_.case_extension).Ref("valueReference", "EpisodeOfCare/" + row_.episode_id).End().EndArr();
    if (const auto* item = ItemByCode("falls-assessment")) {
      o.Arr("basedOn").Obj().S("reference", "ServiceRequest/" + item->service_request_id).End().EndArr();
    }
    o.S("status", "final");
    o.Arr("category").Obj().Arr("coding").Coding("http://terminology.hl7.org/CodeSystem/observation-category", "survey").EndArr().End().EndArr();
    if (falls && !falls->results.empty()) {
      o.Key("code").Obj().Arr("coding").Coding(falls->results[0].system, falls->results[0].code).EndArr().S("text", "Falls risk assessment").End();
    } else {
      o.Key("code").Obj().S("text", "Falls risk assessment").End();
    }
    o.Ref("subject", "Patient/" + row_.patient_id);
    o.S("effectiveDateTime", Instant(occurred_us_));
    o.B("valueBoolean", *in_.at_risk);
    if (!in_.note.empty()) o.Arr("note").Obj().S("text", in_.note).End().EndArr();
    o.End();
    JsonDoc doc = o.Doc();
    ctx_.Create("Observation", doc, id);
  }

  void AddDrugActivity(const std::string& atc, const std::string& status) {
    std::string plan = CarePlanId();
    if (plan.empty()) return;
    Edit("CarePlan", plan, [&](JsonDoc& d) {
      auto& a = d.GetAllocator();
      if (!d.HasMember("activity") || !d["activity"].IsArray()) SetMember(d, "activity", JsonValue(rapidjson::kArrayType), a);
      Json act;
      act.Obj().Key("detail").Obj().S("kind", "MedicationRequest");
      act.Concept("code", e_.drugs_.atc_system(), atc, DrugName(atc));
      act.S("status", status).S("description", (status == "not-started" ? "Decided: " : "Started: ") + DrugName(atc));
      act.End().End();
      JsonDoc activity = act.Doc();
      JsonValue copy;
      copy.CopyFrom(activity, a);
      d["activity"].PushBack(copy, a);
      return true;
    });
  }

  void OrderReferral() {
    std::string plan = CarePlanId();
    std::string id = NewUuid();
    Json s;
    s.Obj().S("resourceType", "ServiceRequest").S("id", id);
    s.Arr("extension").Obj().S("url", canon_.case_extension).Ref("valueReference", "EpisodeOfCare/" + row_.episode_id).End().EndArr();
    if (!plan.empty()) s.Arr("basedOn").Obj().S("reference", "CarePlan/" + plan).End().EndArr();
    s.S("status", "active").S("intent", "order");
    s.Key("code").Obj().Arr("coding").Coding(kSnomed, "3457005", "Patient referral").EndArr().S("text", "Referral to a specialist").End();
    s.Ref("subject", "Patient/" + row_.patient_id);
    s.S("authoredOn", Instant(occurred_us_));
    s.Arr("reasonCode").Obj().S("text", in_.reason).End().EndArr();
    s.Arr("supportingInfo").Obj().S("reference", "EpisodeOfCare/" + row_.episode_id).End().EndArr();
    s.End();
    JsonDoc doc = s.Doc();
    ctx_.Create("ServiceRequest", doc, id);
    WriteTask(NewUuid(), "referral", "Refer to a specialist", "Refer the patient to a specialist: " + in_.reason,
              "ServiceRequest/" + id, today_ + e_.config_.investigation_due_days, "routine");
  }

  // Denosumab stopped without a relay (the patient is lost to follow-up): an urgent alert, since
  // rebound vertebral fractures follow (pathway.md section 5).
  void DenosumabStoppedWithoutRelay() {
    const auto* drug = row_.current_drug.empty() ? nullptr : e_.drugs_.Find(row_.current_drug);
    if (!drug || drug->drug_class != "denosumab") return;
    WriteTask(NewUuid(), "denosumab-overdue", "Denosumab stopped without a relay",
              "The case is lost to follow-up while on " + DrugName(row_.current_drug) +
                  ": stopping denosumab without a relay causes rebound vertebral fractures. Reach the patient's physician.",
              "EpisodeOfCare/" + row_.episode_id, today_, "urgent");
  }

  // The treatment stopped at the end of the sequence (complete): the re-evaluation 2 years after
  // the stop, as a timer (it fires on the closed case); stopping denosumab, its bisphosphonate
  // relay at once, from the day the next injection would have been due (never a gap).
  void PlanAfterStop() {
    if (row_.current_drug.empty()) return;
    auto after = e_.long_term_.AfterStop(in_.occurred_day);
    cases_.ScheduleTimer("after-stop:" + row_.episode_id + ":" + DayText(in_.occurred_day), row_.episode_id,
                         "after-stop", LocalMidnightUs(after.from_day));
    const auto* drug = e_.drugs_.Find(row_.current_drug);
    if (!drug || !row_.treatment_start_day) return;
    // Teriparatide stopped before its relay was opened: the antiresorptive now.
    if (drug->drug_class == "teriparatide") {
      WriteTask(NewUuid(), "relay", "Relay teriparatide",
                "Teriparatide stopped: start an antiresorptive (a bisphosphonate or denosumab) now, without a gap.",
                "EpisodeOfCare/" + row_.episode_id, today_ + 14, "urgent", in_.occurred_day);
      return;
    }
    auto last = cases_.LastDoseDay(row_.episode_id, row_.current_drug);
    auto relay = e_.long_term_.RelayAfter(drug->drug_class, last.value_or(*row_.treatment_start_day), in_.occurred_day);
    if (!relay) return;
    std::string id = NewUuid();
    WriteTask(id, "relay", "Relay denosumab",
              relay->description + " Start " + DrugName(relay->relay_drug) + " for " + std::to_string(relay->relay_months) +
                  " months from " + DayText(relay->from_day) + ".",
              "EpisodeOfCare/" + row_.episode_id, relay->to_day, "urgent", relay->from_day);
    Note("denosumab relay planned from " + DayText(relay->from_day));
  }

  // The treatment started: the decided drug's activity in progress (or a new one on a change),
  // the start-treatment Task done. The follow-up schedule by drug is generated from here.
  void PlanFollowUp() {
    bool change = !row_.current_drug.empty() && row_.current_drug != out_.drug_atc;
    row_.current_drug = out_.drug_atc;
    row_.treatment_start_day = in_.occurred_day;
    // The long-term rules of the drug (pathway.md section 6), as timers from the start: a new drug
    // re-plans them from its own start.
    cases_.CancelTimers(row_.episode_id, "lt-");
    const auto* drug = e_.drugs_.Find(out_.drug_atc);
    for (const auto& item : e_.long_term_.For(drug ? drug->drug_class : "", in_.occurred_day)) {
      cases_.ScheduleTimer("lt:" + item.kind + ":" + row_.episode_id + ":" + DayText(in_.occurred_day) + ":" + out_.drug_atc,
                           row_.episode_id, "lt-" + item.kind, LocalMidnightUs(item.from_day));
    }
    for (const auto& id : OpenTasks("focus=EpisodeOfCare/" + row_.episode_id + "&code=" +
                                    PercentEncode(canon_.task_system + "|start-treatment"))) {
      SetTaskStatus(id, "completed", "");
    }
    std::string plan = CarePlanId();
    if (plan.empty()) return;
    bool found = false;
    Edit("CarePlan", plan, [&](JsonDoc& d) {
      bool changed = false;
      if (const JsonValue* acts = Member(d, "activity"); acts && acts->IsArray()) {
        for (auto& act : d["activity"].GetArray()) {
          if (!act.IsObject() || !act.HasMember("detail") || !act["detail"].IsObject()) continue;
          JsonValue& detail = act["detail"];
          bool same = false;
          for (const auto& [system, code] : CodingsOf(detail, "code")) {
            if (system == e_.drugs_.atc_system() && code == out_.drug_atc) same = true;
          }
          std::string status(StringMember(detail, "status").value_or(""));
          if (same && !change) {
            found = true;
            if (status != "in-progress") {
              SetMember(detail, "status", MakeString("in-progress", d.GetAllocator()), d.GetAllocator());
              changed = true;
            }
          } else if (change && status == "in-progress") {
            SetMember(detail, "status", MakeString("stopped", d.GetAllocator()), d.GetAllocator());
            changed = true;
          }
        }
      }
      return changed;
    });
    if (!found) AddDrugActivity(out_.drug_atc, "in-progress");
    PlanCalls(drug ? drug->drug_class : "", in_.occurred_day);
  }

  // The follow-up programme of the drug (pathway.md section 5, workflow/data/follow-up.json): the
  // calls from the start, and for a drug given by injection or infusion its next reminder, counted
  // from the start (the first dose). A new drug cancels the old one's open scheduled Tasks first.
  void PlanCalls(const std::string& drug_class, int64_t start) {
    CancelScheduled("re-planned for " + DrugName(out_.drug_atc));
    for (const auto& call : e_.follow_up_.Calls(drug_class, start)) {
      std::string what = std::to_string(call.months) + "-month call";
      std::string description = "Call the patient (" + what + " of " + DrugName(out_.drug_atc) +
                                "): prescription renewed, correct use, side effects, questions; record it with $contact.";
      if (call.monitoring) description += " This is the 16-week monitoring contact.";
      if (call.adherence) description += " Record adherence (still taking the drug as prescribed).";
      WriteTask(NewUuid(), "follow-up-call", what, description, "EpisodeOfCare/" + row_.episode_id, call.due_day, "routine");
    }
    if (e_.follow_up_.DosedByInjection(drug_class)) {
      cases_.InsertDose(row_.episode_id, start, out_.drug_atc, "treatment-started");
      PlanNextDose(drug_class, out_.drug_atc, start);
    }
  }

  void CancelScheduled(const std::string& why) {
    for (const char* code : {"follow-up-call", "injection-reminder", "infusion-reminder"}) {
      for (const auto& id : OpenTasks("focus=EpisodeOfCare/" + row_.episode_id + "&code=" +
                                      PercentEncode(canon_.task_system + "|" + code))) {
        SetTaskStatus(id, "cancelled", why);
      }
    }
    cases_.CancelTimers(row_.episode_id, "dose-");
  }

  // The reminder of the next dose after `last` (and, for denosumab, its overdue alert).
  void PlanNextDose(const std::string& drug_class, const std::string& atc, int64_t last) {
    auto next = e_.follow_up_.Next(drug_class, last);
    if (!next) return;
    bool injection = next->kind == "injection";
    WriteTask(NewUuid(), injection ? "injection-reminder" : "infusion-reminder",
              injection ? "Injection reminder" : "Infusion reminder",
              "Remind the patient of the next " + std::string(injection ? "injection" : "infusion") + " of " + DrugName(atc) +
                  ", due on " + DayText(next->due_day) + " (the last one: " + DayText(last) + ").",
              "EpisodeOfCare/" + row_.episode_id, next->reminder_day, "routine", std::nullopt,
              {{"dose-due", DayText(next->due_day)}, {"last-dose", DayText(last)}});
    if (next->overdue_day) {
      cases_.ScheduleTimer("dose-overdue:" + row_.episode_id + ":" + DayText(next->due_day), row_.episode_id,
                           "dose-overdue", LocalMidnightUs(*next->overdue_day));
    }
  }

 public:
  // A dose given (an injection date from $contact, a MedicationAdministration): the next reminder
  // and alert are counted from the latest dose recorded.
  void RecordDose(int64_t day, const std::string& source) {
    if (row_.current_drug.empty() || row_.stage != "follow-up") return;
    const auto* drug = e_.drugs_.Find(row_.current_drug);
    std::string drug_class = drug ? drug->drug_class : "";
    if (!e_.follow_up_.DosedByInjection(drug_class)) return;
    auto last = cases_.LastDoseDay(row_.episode_id, row_.current_drug);
    if (!cases_.InsertDose(row_.episode_id, day, row_.current_drug, source)) return;
    if (last && day <= *last) return;  // an earlier dose entered late: the plan counts from the latest
    for (const char* code : {"injection-reminder", "infusion-reminder"}) {
      for (const auto& id : OpenTasks("focus=EpisodeOfCare/" + row_.episode_id + "&code=" +
                                      PercentEncode(canon_.task_system + "|" + code))) {
        SetTaskStatus(id, "completed", "dose given on " + DayText(day));
      }
    }
    for (const auto& id : OpenTasks("focus=EpisodeOfCare/" + row_.episode_id + "&code=" +
                                    PercentEncode(canon_.task_system + "|denosumab-overdue"))) {
      SetTaskStatus(id, "completed", "dose given on " + DayText(day));
    }
    cases_.CancelTimers(row_.episode_id, "dose-");
    PlanNextDose(drug_class, row_.current_drug, day);
  }

  struct ContactInput {
    int64_t occurred_us = 0, day = 0;
    std::string direction = "outbound";
    bool reached = false;
    std::string task;  // Task/id
    // If-Match: the version of the call's Task when `task` is given (two nurses recording the same
    // call: the second is refused), else of the case.
    std::optional<std::string> if_match;
    std::optional<bool> adherent;
    std::string non_adherence_reason, question, note;
    std::vector<std::string> side_effects;
    std::vector<int64_t> intake_days, injection_days;
  };

  // $accompany on this (locked) case: six monthly calls on `theme`, one series.
  // `if_match`, when given, is the case's version the caller saw (412 when it moved since). A
  // second series on a theme whose calls are still open is refused (422): two nurses starting the
  // same accompaniment at once make one series, not two.
  std::string Accompany(const std::string& theme, const std::string& requester, int64_t start_day,
                        const std::optional<std::string>& if_match) {
    now_us_ = NowMicros();
    today_ = LocalDay(now_us_ / 1000000);
    const std::string ep_ref = "EpisodeOfCare/" + row_.episode_id;
    if (auto wanted = IfMatchVersion(if_match)) {
      if (auto current = ctx_.store().ReadCurrent("EpisodeOfCare", row_.episode_id)) RequireVersion(wanted, ep_ref, current->version);
    }
    if (!row_.open) {
      throw FhirError(ErrorCode::kUnprocessable, "the case is closed (stage " + row_.stage + "): no accompaniment");
    }
    for (const auto& id : OpenTasks("focus=" + ep_ref + "&code=" + PercentEncode(canon_.task_system + "|accompaniment-call"))) {
      auto t = ctx_.store().ReadCurrent("Task", id);
      if (!t || t->deleted) continue;
      JsonDoc d = ParseJson(t->content);
      if (TaskInput(d, "theme") != theme) continue;
      std::string due;
      if (const JsonValue* r = Member(d, "restriction"); r && r->IsObject()) {
        if (const JsonValue* per = Member(*r, "period"); per && per->IsObject()) due = std::string(StringMember(*per, "end").value_or(""));
      }
      throw FhirError(ErrorCode::kUnprocessable, "an accompaniment on " + theme + " is already running for this case (series " +
                                                     TaskInput(d, "series") + (due.empty() ? "" : ", a call due " + due) +
                                                     "): record its calls with $contact, or choose another theme");
    }
    std::string id = requester.substr(requester.find('/') + 1);
    if (auto p = ctx_.store().ReadCurrent("Practitioner", id); !p || p->deleted) {
      throw Bad(requester + " is not known to this server", "requester");
    }
    std::string series = NewUuid();
    for (int month = 1; month <= 6; ++month) {
      std::string task = NewUuid();
      WriteTask(task, "accompaniment-call", "Accompaniment call " + std::to_string(month) + "/6",
                "Thematic accompaniment (" + theme + "), call " + std::to_string(month) + " of 6, asked by " + requester +
                    ": record it with $contact (task this Task).",
                "EpisodeOfCare/" + row_.episode_id, workflow::AddMonths(start_day, month), "routine", std::nullopt,
                {{"theme", theme}, {"requester", requester}, {"series", series}});
    }
    return series;
  }

  // $contact on this (locked) case: returns the contact and report Communication ids.
  std::pair<std::string, std::string> Contact(const ContactInput& c) {
    now_us_ = NowMicros();
    today_ = LocalDay(now_us_ / 1000000);
    if (!row_.open) {
      throw FhirError(ErrorCode::kUnprocessable, "the case is closed (stage " + row_.stage +
                                                     "): contacts are recorded on open cases");
    }
    if (row_.index_day && c.day < *row_.index_day) throw Bad("occurred is before the index fracture date", "occurred");
    for (int64_t d : c.injection_days) {
      if (d > today_ || (row_.index_day && d < *row_.index_day)) {
        throw Bad("injection-date " + DayText(d) + " is in the future or before the index fracture", "injection-date");
      }
    }
    const std::optional<int64_t> wanted = IfMatchVersion(c.if_match);
    auto stale = [&](const std::string& ref, int64_t version) { RequireVersion(wanted, ref, version); };
    std::string task_id;
    if (!c.task.empty()) {
      task_id = c.task.substr(c.task.find('/') + 1);
      ctx_.store().LockCurrent("Task", task_id);
      auto t = ctx_.store().ReadCurrent("Task", task_id);
      bool ours = false;
      if (t && !t->deleted) {
        JsonDoc d = ParseJson(t->content);
        const JsonValue* focus = Member(d, "focus");
        ours = focus && focus->IsObject() &&
               StringMember(*focus, "reference") == std::optional<std::string_view>("EpisodeOfCare/" + row_.episode_id);
      }
      if (!ours) throw Bad(c.task + " is not a Task of this case", "task");
      stale(c.task, t->version);
    } else if (wanted) {
      auto current = ctx_.store().ReadCurrent("EpisodeOfCare", row_.episode_id);
      if (current) stale("EpisodeOfCare/" + row_.episode_id, current->version);
    }
    std::vector<std::string> lines;  // the answers, one payload entry each
    lines.push_back(std::string(c.direction == "inbound" ? "Inbound call from the patient" : "Call to the patient") +
                    (c.reached ? ": reached" : ": not reached"));
    if (c.adherent) lines.push_back(std::string("Adherent: ") + (*c.adherent ? "yes" : "no") +
                                    (c.non_adherence_reason.empty() ? "" : " (" + c.non_adherence_reason + ")"));
    for (const auto& se : c.side_effects) lines.push_back("Side effect: " + se);
    for (int64_t d : c.intake_days) lines.push_back("Intake: " + DayText(d));
    for (int64_t d : c.injection_days) lines.push_back("Injection: " + DayText(d));
    if (!c.question.empty()) lines.push_back("Question: " + c.question);
    if (!c.note.empty()) lines.push_back("Note: " + c.note);
    std::string contact_id = NewUuid();
    {
      Json m;
      m.Obj().S("resourceType", "Communication").S("id", contact_id);
      if (!task_id.empty()) m.Arr("basedOn").Obj().S("reference", "Task/" + task_id).End().EndArr();
      m.S("status", "completed");
      m.Arr("category").Obj().Arr("coding").Coding(canon_.b + "/CodeSystem/fls-communication", "contact", "FLS contact").EndArr().End().EndArr();
      m.Arr("medium").Obj().Arr("coding").Coding("http://terminology.hl7.org/CodeSystem/v3-ParticipationMode", "PHONE", "telephone").EndArr().End().EndArr();
      m.Ref("subject", "Patient/" + row_.patient_id);
      m.Arr("about").Obj().S("reference", "EpisodeOfCare/" + row_.episode_id).End().EndArr();
      m.S(c.direction == "inbound" ? "received" : "sent", Instant(c.occurred_us));
      if (c.direction == "inbound") {
        m.Ref("sender", "Patient/" + row_.patient_id);
        if (!row_.site_org.empty()) m.Arr("recipient").Obj().S("reference", "Organization/" + row_.site_org).End().EndArr();
      } else {
        m.Arr("recipient").Obj().S("reference", "Patient/" + row_.patient_id).End().EndArr();
        if (!row_.site_org.empty()) m.Ref("sender", "Organization/" + row_.site_org);
      }
      m.Arr("payload");
      for (const auto& l : lines) m.Obj().S("contentString", l).End();
      m.EndArr();
      m.End();
      JsonDoc doc = m.Doc();
      ctx_.Create("Communication", doc, contact_id);
    }
    if (c.reached && !task_id.empty()) SetTaskStatus(task_id, "completed", "");
    if (!task_id.empty()) MaybeSynthesis(task_id);
    for (int64_t d : c.injection_days) RecordDose(d, "Communication/" + contact_id);
    std::string report_id;
    if (c.reached && ReportPermitted()) report_id = WriteReport(c, contact_id);
    db::ContactRow row;
    row.episode_id = row_.episode_id;
    row.occurred_us = c.occurred_us;
    row.occurred_day = c.day;
    row.direction = c.direction;
    row.reached = c.reached;
    row.adherent = c.adherent;
    row.communication_id = contact_id;
    row.report_id = report_id;
    row.task_id = task_id;
    cases_.InsertContact(row);
    if (!c.reached) Unreachable(c.day);
    return {contact_id, report_id};
  }

  // Whether the report Consent is active and permits (operations.md section 4): read now, so
  // that a change of the Consent takes effect at once.
  bool ReportPermitted() {
    if (row_.consent_report_id.empty()) return false;
    auto consent = ctx_.store().ReadCurrent("Consent", row_.consent_report_id);
    if (!consent || consent->deleted) return false;
    JsonDoc d = ParseJson(consent->content);
    const JsonValue* provision = Member(d, "provision");
    return StringMember(d, "status") == std::optional<std::string_view>("active") && provision && provision->IsObject() &&
           StringMember(*provision, "type") == std::optional<std::string_view>("permit");
  }

 private:
  // The report to the referring physician and the GP, French then English, naming the dates of
  // intake or injection.
  std::string WriteReport(const ContactInput& c, const std::string& contact_id) {
    std::string id = NewUuid();
    std::string drug = row_.current_drug.empty() ? "-" : DrugName(row_.current_drug);
    auto dates = [](const std::vector<int64_t>& days) {
      std::string out;
      for (int64_t d : days) out += (out.empty() ? "" : ", ") + DayText(d);
      return out.empty() ? std::string("-") : out;
    };
    std::string effects;
    for (const auto& se : c.side_effects) effects += (effects.empty() ? "" : ", ") + se;
    std::string fr = "Compte-rendu d'appel de suivi FLS du " + DayText(c.day) + " : patient(e) joint(e). Traitement : " + drug +
                     ". Observance : " + (!c.adherent ? "non renseignée" : *c.adherent ? "oui" : "non") +
                     (c.non_adherence_reason.empty() ? "" : " (" + c.non_adherence_reason + ")") +
                     ". Effets indésirables : " + (effects.empty() ? "aucun signalé" : effects) +
                     ". Dates de prise : " + dates(c.intake_days) + ". Dates d'injection : " + dates(c.injection_days) + ".";
    std::string en = "FLS follow-up call report of " + DayText(c.day) + ": patient reached. Treatment: " + drug +
                     ". Adherent: " + (!c.adherent ? "not recorded" : *c.adherent ? "yes" : "no") +
                     (c.non_adherence_reason.empty() ? "" : " (" + c.non_adherence_reason + ")") +
                     ". Side effects: " + (effects.empty() ? "none reported" : effects) +
                     ". Intake dates: " + dates(c.intake_days) + ". Injection dates: " + dates(c.injection_days) + ".";
    Json m;
    m.Obj().S("resourceType", "Communication").S("id", id);
    m.Arr("partOf").Obj().S("reference", "Communication/" + contact_id).End().EndArr();
    m.S("status", "completed");
    m.Arr("category").Obj().Arr("coding").Coding(canon_.b + "/CodeSystem/fls-communication", "report-to-physician", "Report to the physician").EndArr().End().EndArr();
    m.Ref("subject", "Patient/" + row_.patient_id);
    m.Arr("about").Obj().S("reference", "EpisodeOfCare/" + row_.episode_id).End().EndArr();
    m.S("sent", Instant(now_us_));
    m.Arr("recipient");
    if (!row_.referring_physician.empty()) m.Obj().S("reference", row_.referring_physician).End();
    if (!row_.gp.empty() && row_.gp != row_.referring_physician) m.Obj().S("reference", row_.gp).End();
    m.EndArr();
    if (!row_.site_org.empty()) m.Ref("sender", "Organization/" + row_.site_org);
    m.Arr("payload").Obj().S("contentString", fr).End().Obj().S("contentString", en).End().EndArr();
    m.End();
    JsonDoc doc = m.Doc();
    ctx_.Create("Communication", doc, id);
    return id;
  }

  // After the last call of an accompaniment series: the synthesis to the patient and, when the
  // report Consent permits, to the physician (operations.md section 5), once.
  void MaybeSynthesis(const std::string& task_id) {
    auto t = ctx_.store().ReadCurrent("Task", task_id);
    if (!t || t->deleted) return;
    JsonDoc d = ParseJson(t->content);
    bool accompaniment = false;
    for (const auto& [system, code] : CodingsOf(d, "code")) accompaniment = accompaniment || code == "accompaniment-call";
    if (!accompaniment) return;
    // The series' inputs, on each of its Tasks.
    const std::string series = TaskInput(d, "series"), theme = TaskInput(d, "theme"), requester = TaskInput(d, "requester");
    if (series.empty()) return;
    std::vector<std::string> done;
    for (const auto& id : ctx_.Search("Task", "focus=EpisodeOfCare/" + row_.episode_id + "&code=" +
                                                  PercentEncode(canon_.task_system + "|accompaniment-call"), 100)) {
      auto other = ctx_.store().ReadCurrent("Task", id);
      if (!other || other->deleted) continue;
      JsonDoc od = ParseJson(other->content);
      if (Serialize(od).find(series) == std::string::npos) continue;
      std::string status(StringMember(od, "status").value_or(""));
      if (IsOpenTaskStatus(status)) return;  // calls still to make
      if (status == "completed") done.push_back(id);
    }
    const std::string system = canon_.b + "/identifier/accompaniment";
    if (!ctx_.Search("Communication", "identifier=" + PercentEncode(system + "|" + series), 1).empty()) return;
    bool physician = ReportPermitted();
    std::string id = NewUuid();
    std::string fr = "Synthèse de l'accompagnement thématique (" + theme + ") : " + std::to_string(done.size()) +
                     " appel(s) sur 6 réalisé(s), terminé le " + DayText(today_) + ".";
    std::string en = "Synthesis of the thematic accompaniment (" + theme + "): " + std::to_string(done.size()) +
                     " of 6 calls made, ended on " + DayText(today_) + ".";
    Json m;
    m.Obj().S("resourceType", "Communication").S("id", id);
    m.Arr("identifier").Obj().S("system", system).S("value", series).End().EndArr();
    m.S("status", "completed");
    m.Arr("category").Obj().Arr("coding").Coding(canon_.b + "/CodeSystem/fls-communication", "accompaniment-synthesis", "Accompaniment synthesis").EndArr().End().EndArr();
    m.Ref("subject", "Patient/" + row_.patient_id);
    m.Arr("about").Obj().S("reference", "EpisodeOfCare/" + row_.episode_id).End().EndArr();
    m.S("sent", Instant(now_us_));
    m.Arr("recipient").Obj().S("reference", "Patient/" + row_.patient_id).End();
    if (physician) {
      if (!requester.empty()) m.Obj().S("reference", requester).End();
      if (!row_.referring_physician.empty() && row_.referring_physician != requester) m.Obj().S("reference", row_.referring_physician).End();
      if (!row_.gp.empty() && row_.gp != requester && row_.gp != row_.referring_physician) m.Obj().S("reference", row_.gp).End();
    }
    m.EndArr();
    m.Arr("payload").Obj().S("contentString", fr).End().Obj().S("contentString", en).End().EndArr();
    m.End();
    JsonDoc doc = m.Doc();
    ctx_.Create("Communication", doc, id);
  }

  // Three unreached contacts on three different days (since the last reached one, and since the
  // last time): an `unreachable` Task, and the lost-to-follow-up timer 6 months later.
  void Unreachable(int64_t day) {
    auto reached = cases_.LastReachedDay(row_.episode_id);
    std::optional<long long> after = reached;
    if (row_.unreachable_day && (!after || *row_.unreachable_day > *after)) after = row_.unreachable_day;
    if (cases_.UnreachedDaysAfter(row_.episode_id, after) < e_.follow_up_.unreachable_attempts()) return;
    row_.unreachable_day = day;
    cases_.SetPathway(row_);
    int64_t lost = workflow::AddMonths(day, e_.follow_up_.lost_after_months());
    WriteTask(NewUuid(), "unreachable", "Patient unreachable",
              std::to_string(e_.follow_up_.unreachable_attempts()) +
                  " calls on different days did not reach the patient: try another number, the GP, or a letter. Without a reached "
                  "contact by " + DayText(lost) + " the case becomes lost to follow-up.",
              "EpisodeOfCare/" + row_.episode_id, today_ + 7, "urgent");
    cases_.ScheduleTimer("lost:" + row_.episode_id + ":" + DayText(day), row_.episode_id, "lost-to-follow-up",
                         LocalMidnightUs(lost));
  }


  void WriteEpisode(bool changed) {
    auto& a = ep_.GetAllocator();
    std::string to = workflow::StageCode(out_.to);
    if (StageOf(ep_, canon_.stage_extension) != to) {
      SetExtension(ep_, canon_.stage_extension, "valueCode", MakeString(to, a));
      changed = true;
    }
    if (!status_.empty() && StringMember(ep_, "status") != std::optional<std::string_view>(status_)) {
      std::string at = Instant(std::max(occurred_us_, LastStatusStartUs()));
      if (!ep_.HasMember("statusHistory") || !ep_["statusHistory"].IsArray()) {
        SetMember(ep_, "statusHistory", JsonValue(rapidjson::kArrayType), a);
      }
      JsonValue& history = ep_["statusHistory"];
      if (!history.Empty() && history[history.Size() - 1].IsObject()) {
        JsonValue& last = history[history.Size() - 1];
        if (!last.HasMember("period") || !last["period"].IsObject()) SetMember(last, "period", JsonValue(rapidjson::kObjectType), a);
        SetMember(last["period"], "end", MakeString(at, a), a);
      }
      Json h;
      h.Obj().S("status", status_).Key("period").Obj().S("start", at).End().End();
      JsonDoc entry = h.Doc();
      JsonValue copy;
      copy.CopyFrom(entry, a);
      history.PushBack(copy, a);
      SetString(ep_, ep_, "status", status_);
      changed = true;
    }
    if (!workflow::IsOpen(out_.to)) {
      JsonValue period(rapidjson::kObjectType);
      if (const JsonValue* p = Member(ep_, "period"); p && p->IsObject()) period.CopyFrom(*p, a);
      // period.end never before period.start (FHIR per-1): a death recorded before the case
      // opened ends the case when it opened.
      SetMember(period, "end", MakeString(Instant(std::max(occurred_us_, PeriodStartUs(period))), a), a);
      SetMember(ep_, "period", std::move(period), a);
      changed = true;
    }
    if (changed) ctx_.Update("EpisodeOfCare", row_.episode_id, ep_);
  }

  int64_t LastStatusStartUs() const {
    int64_t latest = INT64_MIN;
    if (const JsonValue* h = Member(ep_, "statusHistory"); h && h->IsArray()) {
      for (const auto& entry : h->GetArray()) {
        if (const JsonValue* p = entry.IsObject() ? Member(entry, "period") : nullptr; p && p->IsObject()) {
          latest = std::max(latest, PeriodStartUs(*p));
        }
      }
    }
    return latest;
  }

  const PathwayEngine& e_;
  const Canon canon_;
  WriteContext& ctx_;
  db::CaseStore& cases_;
  db::CaseRow row_;
  std::vector<db::CaseItemRow> items_;
  workflow::EventInput in_;
  workflow::Outcome out_;
  JsonDoc ep_;
  int64_t now_us_ = 0, today_ = 0, occurred_us_ = 0;
  std::string status_;  // the EpisodeOfCare status the effects set
  std::string result_ref_;
  std::optional<int64_t> result_day_;
  std::string falls_observation_id_;
  std::string notes_;
};

// Results matched against a case's panel (operations.md section 2): pushed ones (the data
// listener) and those already on record when the panel is ordered (results of the admission).
class ResultMatcher {
 public:
  explicit ResultMatcher(const PathwayEngine& engine) : e_(engine), canon_(engine.config().canonical_base) {}

  void Apply(WriteContext& ctx, db::CaseStore& cases, const ResultFacts& r) {
    auto open = OpenCase(cases, r.patient);
    if (!open) return;
    auto c = cases.LockCase(open->episode_id);
    if (!c || !c->open) return;
    auto stage = workflow::ParseStage(c->stage);
    if (!stage || *stage == Stage::kIdentified) return;  // nothing ordered yet
    auto items = cases.Items(c->episode_id);
    const db::CaseItemRow* matched = nullptr;
    // By basedOn, when the result is one of that item's result codes (a creatinine based on the
    // calcium order closes nothing of the calcium's); else by code below.
    auto is_result_of = [&](const std::string& item_code) {
      for (const auto& [system, code] : r.codings) {
        const auto* panel_item = e_.panel().ItemForResult(system, code, r.type);
        if (panel_item && panel_item->code == item_code) return true;
      }
      return false;
    };
    for (const auto& sr : r.based_on) {
      for (const auto& i : items) {
        if (i.service_request_id == sr && is_result_of(i.item)) matched = &i;
      }
    }
    auto day = DayOf(r.effective);
    if (!matched) {
      // By code, within the case's window (from the fracture; the case is open).
      if (!day || (c->index_day && *day < *c->index_day)) return;
      for (const auto& [system, code] : r.codings) {
        const auto* panel_item = e_.panel().ItemForResult(system, code, r.type);
        if (!panel_item) continue;
        for (const auto& i : items) {
          if (i.item == panel_item->code && (!matched || i.status == "ordered")) matched = &i;
        }
      }
    }
    if (!matched) return;
    std::string result_ref = r.type + "/" + r.id;
    std::string note = matched->item + " resulted by " + result_ref;
    // A result past its threshold raises its Flag whatever became of the order (waived, revoked
    // with the case's orders, resulted earlier).
    if (r.type == "Observation") Flags(ctx, cases, *c, matched->item, r, note);
    if (matched->status != "ordered") return;  // a result of a closed item: its flags only
    workflow::EventInput in;
    in.event = Event::kResult;
    in.item = "ServiceRequest/" + matched->service_request_id;
    auto [us, d] = ClampToCase(r.effective, *c, NowMicros());
    in.occurred_day = d;
    in.note = note;
    PathwayRun run(e_, ctx, cases, std::move(*c));
    run.Run(in, {"data", ""}, us, std::nullopt, result_ref, day.value_or(d));
  }

  // A Flag no longer in force: inactive, its period ended, with why.
  static void Retire(WriteContext& ctx, const std::string& flag_id, const std::string& why) {
    ctx.store().LockCurrent("Flag", flag_id);
    auto row = ctx.store().ReadCurrent("Flag", flag_id);
    if (!row || row->deleted) return;
    JsonDoc d = ParseJson(row->content);
    if (StringMember(d, "status") != std::optional<std::string_view>("active")) return;
    auto& a = d.GetAllocator();
    SetMember(d, "status", MakeString("inactive", a), a);
    JsonValue period(rapidjson::kObjectType);
    if (const JsonValue* p = Member(d, "period"); p && p->IsObject()) period.CopyFrom(*p, a);
    SetMember(period, "end", MakeString(FormatFhirInstant(NowMicros()), a), a);
    SetMember(d, "period", std::move(period), a);
    JsonValue text(rapidjson::kObjectType);
    if (const JsonValue* code = Member(d, "code"); code && code->IsObject()) text.CopyFrom(*code, a);
    SetMember(text, "text", MakeString(std::string(StringMember(text, "text").value_or("")) + " (retired: " + why + ")", a), a);
    SetMember(d, "code", std::move(text), a);
    ctx.Update("Flag", flag_id, d);
  }

 public:
  // A result entered in error: the flags it raised are retired.
  void Retract(WriteContext& ctx, db::CaseStore& cases, const std::string& evidence) {
    for (const auto& f : cases.FlagsFromEvidence(evidence)) Retire(ctx, f.flag_id, evidence + " entered in error");
  }

 private:
  // The flags a result raises (operations.md section 2), once per flag and result.
  std::vector<std::string> Flags(WriteContext& ctx, db::CaseStore& cases, const db::CaseRow& c, const std::string& item,
                                 const ResultFacts& r, std::string& note) {
    std::vector<std::string> raised;
    std::vector<workflow::FlagHit> hits;
    if (r.value) {
      auto check = e_.panel().CheckValue(item, *r.value, r.unit);
      hits = check.hits;
      if (check.unit_not_comparable) {
        note += "; unit " + (r.unit.empty() ? std::string("(none)") : r.unit) +
                " not comparable with the flag thresholds: no flag raised";
      }
    }
    for (const auto& h : e_.panel().CheckInterpretation(item, r.abnormal).hits) hits.push_back(h);
    // A flag of this item that this result (newer, or as recent) no longer raises is retired: the
    // vitamin D corrected, a value amended.
    for (const auto& rule : e_.panel().flags()) {
      if (rule.item != item) continue;
      bool still = false;
      for (const auto& h : hits) still = still || h.rule->code == rule.code;
      if (still) continue;
      for (const auto& f : cases.Flags(c.episode_id, rule.code)) {
        if (f.evidence == r.type + "/" + r.id) {
          Retire(ctx, f.flag_id, "amended: " + f.evidence + " no longer past the threshold");
          continue;
        }
        auto ref = ParseReference(f.evidence);
        auto obs = ref ? ctx.store().ReadCurrent("Observation", ref->id) : std::nullopt;
        std::string when = obs && !obs->deleted ? FirstDate(ParseJson(obs->content), {"effectiveDateTime", "effectiveInstant", "effectivePeriod.start", "issued"}) : "";
        if (!r.effective.empty() && when <= r.effective) {
          Retire(ctx, f.flag_id, r.type + "/" + r.id + " of " + r.effective + " is within the threshold");
          note += "; flag " + rule.code + " retired";
        }
      }
    }
    for (const auto& h : hits) {
      std::string flag_id = NewUuid();
      if (!cases.ClaimFlag(c.episode_id, h.rule->code, r.type + "/" + r.id, flag_id)) continue;
      Json f;
      f.Obj().S("resourceType", "Flag").S("id", flag_id);
      f.Arr("extension");
      f.Obj().S("url", canon_.case_extension).Ref("valueReference", "EpisodeOfCare/" + c.episode_id).End();
      f.Obj().S("url", canon_.evidence_extension).Ref("valueReference", r.type + "/" + r.id).End();
      if (!h.threshold.unit.empty()) {
        f.Obj().S("url", canon_.threshold_extension).Key("valueQuantity").Obj();
        f.S("comparator", h.rule->comparator == '<' ? "<" : ">").Num("value", h.threshold.value);
        f.S("unit", h.threshold.unit).S("system", kUcum).S("code", h.threshold.unit).End().End();
      }
      f.EndArr();
      f.S("status", "active");
      f.Arr("category").Obj().Arr("coding").Coding("http://terminology.hl7.org/CodeSystem/flag-category", "clinical", "Clinical").EndArr().End().EndArr();
      f.Key("code").Obj().Arr("coding").Coding(canon_.flag_system, h.rule->code, h.rule->display).EndArr().S("text", h.rule->display).End();
      f.Ref("subject", "Patient/" + c.patient_id);
      if (!r.effective.empty() && ParseFhirDate(r.effective)) f.Key("period").Obj().S("start", r.effective).End();
      f.End();
      JsonDoc doc = f.Doc();
      ctx.Create("Flag", doc, flag_id);
      raised.push_back(h.rule->code);
      note += "; flag " + h.rule->code;
    }
    return raised;
  }

 private:
  const PathwayEngine& e_;
  const Canon canon_;
};

// ---------------------------------------------------------------------------------------------

PathwayEngine::PathwayEngine(const workflow::InvestigationPanel& panel, const workflow::DrugList& drugs,
                             const workflow::GrioRules& grio, const workflow::LongTermPlan& long_term,
                             const workflow::FollowUpProgramme& follow_up, PathwayConfig config)
    : panel_(panel), drugs_(drugs), grio_(grio), long_term_(long_term), follow_up_(follow_up),
      config_(std::move(config)) {}

int64_t PathwayEngine::NowUs() const { return config_.now_us ? config_.now_us() : NowMicros(); }

workflow::Stage PathwayEngine::Apply(WriteContext& ctx, const std::string& episode_id, workflow::EventInput input,
                                     const EventOrigin& origin, int64_t occurred_us,
                                     const std::optional<std::string>& if_match) const {
  db::CaseStore cases(ctx.store());
  auto row = cases.LockCase(episode_id);
  if (!row) throw FhirError(ErrorCode::kNotFound, "EpisodeOfCare/" + episode_id + " is not an FLS case");
  const bool enrol = input.event == Event::kEnrol;
  PathwayRun run(*this, ctx, cases, std::move(*row));
  Stage to = run.Run(std::move(input), origin, occurred_us, if_match, "", std::nullopt);
  if (enrol) to = ResultsOnRecord(ctx, cases, episode_id, to);
  return to;
}

// The results already on record when the panel is ordered (the admission's labs, a DXA done
// before enrolment): each closes its item as if pushed now, oldest first, in the enrol's
// transaction.
Stage PathwayEngine::ResultsOnRecord(WriteContext& ctx, db::CaseStore& cases, const std::string& episode_id,
                                     Stage stage) const {
  auto c = cases.LockCase(episode_id);
  if (!c || !c->open) return stage;
  std::string since = c->index_day ? "&date=ge" + DayText(*c->index_day) : "";
  std::vector<ResultFacts> found;
  for (const char* type : {"Observation", "Procedure"}) {
    std::string codes;
    for (const auto& item : panel_.items()) {
      for (const auto& r : item.results) {
        if (r.resource == type) codes += (codes.empty() ? "" : ",") + PercentEncode(r.system + "|" + r.code);
      }
    }
    if (codes.empty()) continue;
    std::string status = std::string(type) == "Observation" ? "final,amended,corrected" : "completed";
    for (const auto& id : ctx.Search(type, "subject=Patient/" + c->patient_id + "&code=" + codes + "&status=" + status + since, 200)) {
      auto row = ctx.store().ReadCurrent(type, id);
      if (!row || row->deleted) continue;
      JsonDoc d = ParseJson(row->content);
      if (auto f = ReadResult(type, id, d)) found.push_back(std::move(*f));
    }
  }
  std::stable_sort(found.begin(), found.end(),
                   [](const ResultFacts& a, const ResultFacts& b) { return a.effective < b.effective; });
  ResultMatcher matcher(*this);
  for (const auto& f : found) {
    ctx.CheckDeadline();
    matcher.Apply(ctx, cases, f);
  }
  auto after = cases.LockCase(episode_id);
  auto parsed = after ? workflow::ParseStage(after->stage) : std::nullopt;
  return parsed.value_or(stage);
}

workflow::Stage PathwayEngine::ApplyData(WriteContext& ctx, const std::string& episode_id, workflow::EventInput input,
                                         const std::string& when) const {
  db::CaseStore cases(ctx.store());
  auto row = cases.LockCase(episode_id);
  if (!row) throw FhirError(ErrorCode::kNotFound, "EpisodeOfCare/" + episode_id + " is not an FLS case");
  auto [us, day] = ClampToCase(when, *row, NowMicros());
  input.occurred_day = day;
  PathwayRun run(*this, ctx, cases, std::move(*row));
  return run.Run(std::move(input), {"data", ""}, us, std::nullopt, "", std::nullopt);
}

int PathwayEngine::RunDueTimers(FhirService& service, int limit) const {
  int fired = 0;
  while (fired < limit) {
    const int64_t now = NowUs();
    std::optional<db::TimerRow> claimed;
    try {
      service.Write([&](WriteContext& ctx) {
        claimed.reset();
        db::CaseStore cases(ctx.store());
        auto due = cases.ClaimDueTimers(now, 1);
        if (due.empty()) return;
        claimed = due[0];
        auto row = cases.LockCase(due[0].episode_id);
        std::string outcome = "skipped: the case is gone";
        if (row) {
          PathwayRun run(*this, ctx, cases, std::move(*row));
          outcome = run.FireTimer(due[0], now);
        }
        if (outcome.rfind("event:", 0) == 0) {
          // A timer event (source timer in the log), dated by the timer's clock, never after now.
          auto event = workflow::ParseEvent(outcome.substr(6));
          int64_t at = std::min(now, NowMicros());
          workflow::EventInput in;
          in.event = *event;
          in.occurred_day = LocalDay(at / 1000000);
          in.reason = "no reached contact since the patient was declared unreachable";
          Apply(ctx, due[0].episode_id, in, {"timer", ""}, at);
          outcome = outcome.substr(6) + " applied";
        }
        cases.FinishTimer(due[0].key, now, outcome);
      });
    } catch (const db::DbError& e) {
      // The database unreachable: the timer stays pending for the next run. Any other database
      // failure of this timer's effect is recorded below, so that it never blocks the others.
      if (!claimed || e.kind() == db::DbErrorKind::kUnavailable) throw;
      std::string why = std::string("database: ") + e.what();
      service.Write([&](WriteContext& ctx) { db::CaseStore(ctx.store()).FinishTimer(claimed->key, now, "failed: " + why); });
    } catch (const FhirError& e) {
      // An effect the data no longer allows: recorded on the timer, which then never blocks the
      // others.
      if (!claimed) throw;
      std::string why = e.issues().empty() ? "error" : e.issues()[0].diagnostics;
      service.Write([&](WriteContext& ctx) { db::CaseStore(ctx.store()).FinishTimer(claimed->key, now, "failed: " + why); });
    }
    if (!claimed) break;
    ++fired;
  }
  return fired;
}

Outcome PathwayEngine::PostAccompany(FhirService& service, const std::string& episode_id, std::string_view body,
                                     const RequestInfo& info) const {
  JsonDoc doc = ParseJson(body, JsonLimits{});
  const JsonValue* params = ParameterArray(doc, "accompany");
  static const std::set<std::string> kThemes = {"adherence", "recommended-tests", "tobacco", "physical-activity",
                                                "falls-nutrition"};
  std::string theme, requester;
  int64_t start = LocalDay(NowMicros() / 1000000);
  std::set<std::string> seen;
  if (params) {
    for (const auto& p : params->GetArray()) {
      auto n = p.IsObject() ? StringMember(p, "name") : std::nullopt;
      if (!n || n->empty()) throw FhirError(ErrorCode::kBadRequest, "every parameter needs a name", "Parameters.parameter");
      std::string name(*n);
      if (!seen.insert(name).second) throw Bad("parameter " + name + " is given twice", name);
      if (name == "theme") {
        auto v = StringMember(p, "valueCode");
        if (!v || !kThemes.count(std::string(*v))) {
          throw Bad("theme must be a valueCode: adherence, recommended-tests, tobacco, physical-activity or falls-nutrition", name);
        }
        theme = std::string(*v);
      } else if (name == "requester") {
        const JsonValue* v = Member(p, "valueReference");
        if (!v) throw Bad("requester must be a valueReference to a Practitioner", name);
        requester = LocalReference(*v, "Practitioner", name);
      } else {
        throw Bad(name + " is not a part of $accompany (theme, requester)", name);
      }
    }
  }
  if (theme.empty()) throw Bad("theme (valueCode) is required", "theme");
  if (requester.empty()) throw Bad("requester (valueReference) is required", "requester");
  std::string series;
  service.Write([&](WriteContext& ctx) {
    db::CaseStore cases(ctx.store());
    auto row = cases.LockCase(episode_id);
    if (!row) throw FhirError(ErrorCode::kNotFound, "EpisodeOfCare/" + episode_id + " is not an FLS case");
    PathwayRun run(*this, ctx, cases, std::move(*row));
    series = run.Accompany(theme, requester, start, info.if_match);
  });
  Json j;
  j.Obj().S("resourceType", "Parameters").Arr("parameter");
  j.Obj().S("name", "series").S("valueString", series).End();
  j.EndArr().End();
  return ParametersAnswer(j);
}

Outcome PathwayEngine::PostContact(FhirService& service, const std::string& episode_id, std::string_view body,
                                   const RequestInfo& info) const {
  JsonDoc doc = ParseJson(body, JsonLimits{});
  const JsonValue* params = ParameterArray(doc, "contact");
  const int64_t now = NowMicros();
  PathwayRun::ContactInput c;
  c.occurred_us = now;
  c.day = LocalDay(now / 1000000);
  std::set<std::string> seen;
  bool reached_given = false;
  const std::set<std::string> repeating = {"side-effect", "intake-date", "injection-date"};
  auto date_of = [&](const JsonValue& p, const std::string& name) {
    auto v = StringMember(p, "valueDate");
    auto day = v && v->size() == 10 ? DayOf(*v) : std::nullopt;
    if (!day || !ParseFhirDate(*v)) throw Bad(name + " must be a valueDate (YYYY-MM-DD)", name);
    return *day;
  };
  auto text_of = [&](const JsonValue& p, const std::string& name) {
    auto v = StringMember(p, "valueString");
    if (!v || v->empty() || !IsPlainString(*Member(p, "valueString"))) throw Bad(name + " must be a non-empty valueString", name);
    return std::string(*v);
  };
  auto bool_of = [&](const JsonValue& p, const std::string& name) {
    const JsonValue* v = Member(p, "valueBoolean");
    if (!v || !v->IsBool()) throw Bad(name + " must be a valueBoolean (true or false)", name);
    return v->GetBool();
  };
  if (params) {
    for (const auto& p : params->GetArray()) {
      auto n = p.IsObject() ? StringMember(p, "name") : std::nullopt;
      if (!n || n->empty()) throw FhirError(ErrorCode::kBadRequest, "every parameter needs a name", "Parameters.parameter");
      std::string name(*n);
      int values = 0;
      for (auto it = p.MemberBegin(); it != p.MemberEnd(); ++it) {
        std::string_view k = AsStringView(it->name);
        if (k == "name") continue;
        if (k.substr(0, 5) != "value") throw Bad("parameter " + name + " must hold one value[x]", name);
        ++values;
      }
      if (values != 1) throw Bad("parameter " + name + " must hold exactly one value[x]", name);
      if (!repeating.count(name) && !seen.insert(name).second) throw Bad("parameter " + name + " is given twice", name);
      if (name == "occurred") {
        auto v = StringMember(p, "valueDateTime");
        auto range = v ? ParseFhirDate(*v) : std::nullopt;
        auto day = v ? DayOf(*v) : std::nullopt;
        if (!range || !day) throw Bad("occurred must be a valueDateTime", name);
        if (range->lo_us > now + kFutureSkewUs) throw Bad("occurred is in the future", name);
        c.occurred_us = range->lo_us;
        c.day = *day;
      } else if (name == "direction") {
        auto v = StringMember(p, "valueCode");
        if (!v || (*v != "outbound" && *v != "inbound")) throw Bad("direction must be a valueCode: outbound or inbound", name);
        c.direction = std::string(*v);
      } else if (name == "reached") {
        c.reached = bool_of(p, name);
        reached_given = true;
      } else if (name == "task") {
        const JsonValue* v = Member(p, "valueReference");
        if (!v) throw Bad("task must be a valueReference", name);
        c.task = LocalReference(*v, "Task", name);
      } else if (name == "adherent") {
        c.adherent = bool_of(p, name);
      } else if (name == "non-adherence-reason") {
        c.non_adherence_reason = text_of(p, name);
      } else if (name == "side-effect") {
        if (const JsonValue* coding = Member(p, "valueCoding"); coding && coding->IsObject()) {
          auto display = StringMember(*coding, "display");
          auto code = StringMember(*coding, "code");
          if (!display && !code) throw Bad("side-effect valueCoding needs a code or a display", name);
          c.side_effects.emplace_back(display ? *display : *code);
        } else {
          c.side_effects.push_back(text_of(p, name));
        }
      } else if (name == "intake-date") {
        c.intake_days.push_back(date_of(p, name));
      } else if (name == "injection-date") {
        c.injection_days.push_back(date_of(p, name));
      } else if (name == "question") {
        c.question = text_of(p, name);
      } else if (name == "note") {
        c.note = text_of(p, name);
      } else {
        throw Bad(name + " is not a part of $contact", name);
      }
    }
  }
  if (!reached_given) throw Bad("reached (valueBoolean) is required", "reached");
  c.if_match = info.if_match;
  std::pair<std::string, std::string> ids;
  service.Write([&](WriteContext& ctx) {
    db::CaseStore cases(ctx.store());
    auto row = cases.LockCase(episode_id);
    if (!row) throw FhirError(ErrorCode::kNotFound, "EpisodeOfCare/" + episode_id + " is not an FLS case");
    PathwayRun run(*this, ctx, cases, std::move(*row));
    ids = run.Contact(c);
  });
  Json j;
  j.Obj().S("resourceType", "Parameters").Arr("parameter");
  j.Obj().S("name", "contact").Ref("valueReference", "Communication/" + ids.first).End();
  if (!ids.second.empty()) j.Obj().S("name", "report").Ref("valueReference", "Communication/" + ids.second).End();
  j.EndArr().End();
  return ParametersAnswer(j);
}

Outcome PathwayEngine::PostEvent(FhirService& service, const std::string& episode_id, std::string_view body,
                                 const RequestInfo& info) const {
  JsonLimits limits;
  ParsedEvent parsed = ParseEventParameters(body, limits, NowMicros(), drugs_);
  Outcome out;
  service.Write([&](WriteContext& ctx) {
    Apply(ctx, episode_id, parsed.input, {"user", info.actor}, parsed.occurred_us, info.if_match);
    ctx.AfterListeners([&] { out = ctx.Current("EpisodeOfCare", episode_id); });
  });
  out.location.clear();
  return out;
}

void PathwayEngine::CaseOpened(WriteContext& ctx, const std::string& episode_id, int64_t opened_us) const {
  db::CaseStore cases(ctx.store());
  int64_t due_day = LocalDay(opened_us / 1000000) + config_.assess_due_days;
  // Overdue once the Task's due day has ended in the site's zone.
  cases.ScheduleTimer("assess-enrol-overdue:" + episode_id, episode_id, "assess-enrol-overdue",
                      LocalMidnightUs(due_day + 1));
}

// ---------------------------------------------------------------------------------------------
// Events raised by data, in the transaction that wrote it.

class PathwayDataListener : public TransactionListener {
 public:
  explicit PathwayDataListener(const PathwayEngine& engine) : e_(engine), canon_(engine.config_.canonical_base) {}

  void OnWrite(const WrittenResource& w) override {
    if (w.server_made || w.deleted || !w.resource) return;
    const JsonValue& r = *w.resource;
    if (w.type == "Observation" || w.type == "Procedure") {
      if (auto f = ReadResult(w.type, w.id, r)) results_.push_back(std::move(*f));
      if (w.type == "Observation" && StringMember(r, "status") == std::optional<std::string_view>("entered-in-error")) {
        retracted_.push_back("Observation/" + w.id);
      }
    } else if (w.type == "Communication") {
      ReadCommunication(w.id, r);
    } else if (w.type == "Task" && !w.created) {
      ReadTaskCompletion(w.id, w.version, r);
    } else if (w.type == "MedicationRequest" || w.type == "MedicationDispense" ||
               w.type == "MedicationAdministration" || w.type == "MedicationStatement") {
      ReadMedication(w.type, w.id, r);
    }
  }

  void BeforeCommit(WriteContext& ctx) override {
    if (results_.empty() && tasks_.empty() && medications_.empty() && reports_.empty() && retracted_.empty()) return;
    db::CaseStore cases(ctx.store());
    for (const auto& [id, about] : reports_) GuardReport(ctx, cases, id, about);
    // Task completions first (a coordinator's action), then results and medications, each
    // patient's in the order they came. (Deaths: case finding, which sees every Patient write.)
    for (auto& t : tasks_) {
      ctx.CheckDeadline();
      CompleteTask(ctx, cases, t);
    }
    std::stable_sort(results_.begin(), results_.end(),
                     [](const ResultFacts& a, const ResultFacts& b) { return a.patient < b.patient; });
    ResultMatcher matcher(e_);
    for (const auto& evidence : retracted_) matcher.Retract(ctx, cases, evidence);
    for (const auto& r : results_) {
      ctx.CheckDeadline();
      matcher.Apply(ctx, cases, r);
    }
    for (const auto& m : medications_) {
      ctx.CheckDeadline();
      Medication(ctx, cases, m);
    }
  }

 private:
  // A report to the physician, whoever writes it (a client's POST or PUT, a Bundle entry, the
  // server itself): only about an FLS case whose report Consent permits it (operations.md
  // section 5), else the whole write is refused (422).
  void ReadCommunication(const std::string& id, const JsonValue& r) {
    bool report = false;
    for (const auto& [system, code] : CodingsOf(r, "category")) {
      if (system != canon_.b + "/CodeSystem/fls-communication") continue;
      if (code == "report-to-physician") report = true;
      // The accompaniment's synthesis reaches a physician only with the same consent.
      if (code == "accompaniment-synthesis") {
        std::vector<const JsonValue*> recipients;
        CollectPath(r, "recipient.reference", recipients);
        for (const JsonValue* ref : recipients) {
          if (ref->IsString() && AsStringView(*ref).find("Practitioner/") != std::string_view::npos) report = true;
        }
      }
    }
    if (!report) return;
    std::vector<std::string> about;
    std::vector<const JsonValue*> refs;
    CollectPath(r, "about", refs);
    for (const JsonValue* a : refs) {
      auto ref = a->IsObject() ? StringMember(*a, "reference") : std::nullopt;
      auto parsed = ref ? ParseReference(*ref) : std::nullopt;
      if (parsed && parsed->type == std::optional<std::string>("EpisodeOfCare")) about.push_back(parsed->id);
    }
    reports_.emplace_back(id, about);
  }

  void GuardReport(WriteContext& ctx, db::CaseStore& cases, const std::string& id, const std::vector<std::string>& about) {
    bool any = false;
    for (const auto& episode : about) {
      auto row = cases.Case(episode);
      if (!row) continue;
      any = true;
      PathwayRun run(e_, ctx, cases, std::move(*row));
      if (!run.ReportPermitted()) {
        throw FhirError(ErrorCode::kUnprocessable,
                        "Communication/" + id + ": the patient's report Consent for EpisodeOfCare/" + episode +
                            " does not permit reports to the physician (inactive or deny)",
                        "Communication.category");
      }
    }
    if (!any) {
      throw FhirError(ErrorCode::kUnprocessable,
                      "Communication/" + id + ": a report to the physician must be about its FLS case (about: EpisodeOfCare/id), "
                      "so that the patient's consent can be checked",
                      "Communication.about");
    }
  }

  struct TaskCompletion {
    std::string id, code, focus;
    int version = 0;
    workflow::EventInput input;
    std::string parameters;
  };

  void ReadTaskCompletion(const std::string& id, int version, const JsonValue& r) {
    if (StringMember(r, "status") != std::optional<std::string_view>("completed")) return;
    std::string code;
    for (const auto& [system, c] : CodingsOf(r, "code")) {
      if (system == canon_.task_system) code = c;
    }
    if (code != "assess-enrol" && code != "investigation" && code != "start-treatment") return;
    TaskCompletion t;
    t.id = id;
    t.version = version;
    t.code = code;
    if (const JsonValue* f = Member(r, "focus"); f && f->IsObject()) t.focus = std::string(StringMember(*f, "reference").value_or(""));
    // Task.output: each part's name in type.text, its value in value[x] (operations.md section 1).
    rapidjson::Document params(rapidjson::kObjectType);
    auto& a = params.GetAllocator();
    params.AddMember("resourceType", "Parameters", a);
    JsonValue list(rapidjson::kArrayType);
    std::string event = code == "assess-enrol" ? "enrol" : code == "start-treatment" ? "treatment-started" : "falls-assessment";
    {
      JsonValue p(rapidjson::kObjectType);
      p.AddMember("name", "event", a);
      p.AddMember("valueCode", JsonValue(event.c_str(), a), a);
      list.PushBack(p, a);
    }
    if (const JsonValue* outs = Member(r, "output"); outs && outs->IsArray()) {
      for (const auto& o : outs->GetArray()) {
        if (!o.IsObject()) continue;
        const JsonValue* type = Member(o, "type");
        auto name = type && type->IsObject() ? StringMember(*type, "text") : std::nullopt;
        if (!name) continue;
        JsonValue p(rapidjson::kObjectType);
        p.AddMember("name", JsonValue(name->data(), static_cast<rapidjson::SizeType>(name->size()), a), a);
        for (auto it = o.MemberBegin(); it != o.MemberEnd(); ++it) {
          std::string_view k = AsStringView(it->name);
          if (k.substr(0, 5) == "value") {
            JsonValue key(k.data(), static_cast<rapidjson::SizeType>(k.size()), a);
            JsonValue v;
            v.CopyFrom(it->value, a);
            p.AddMember(key, v, a);
          }
        }
        list.PushBack(p, a);
      }
    }
    params.AddMember("parameter", list, a);
    t.parameters = Serialize(params);
    tasks_.push_back(std::move(t));
  }

  void CompleteTask(WriteContext& ctx, db::CaseStore& cases, const TaskCompletion& t) {
    // Only the change to completed is the event: a retried PUT, or an edit of a Task completed
    // already (a note added), raises nothing.
    if (t.version > 1) {
      auto before = ctx.store().ReadVersion("Task", t.id, t.version - 1);
      if (before && !before->deleted &&
          StringMember(ParseJson(before->content), "status") == std::optional<std::string_view>("completed")) {
        return;
      }
    }
    auto focus = ParseReference(t.focus);
    std::string episode;
    if (t.code == "investigation") {
      if (!focus || focus->type != std::optional<std::string>("ServiceRequest")) return;
      auto item = cases.ItemOfServiceRequest(focus->id);
      if (!item) return;
      if (item->second.item != "falls-assessment") {
        throw FhirError(ErrorCode::kUnprocessable,
                        "an investigation closes with its result (an Observation) or a waive event; only the "
                        "falls-assessment Task is completed by hand",
                        "Task.status");
      }
      episode = item->first;
    } else {
      if (!focus || focus->type != std::optional<std::string>("EpisodeOfCare")) return;
      if (!cases.Case(focus->id)) return;
      episode = focus->id;
    }
    ParsedEvent parsed;
    try {
      parsed = ParseEventParameters(t.parameters, JsonLimits{}, NowMicros(), e_.drugs_);
    } catch (const FhirError& err) {
      std::string what = err.issues().empty() ? "" : err.issues()[0].diagnostics;
      throw FhirError(ErrorCode::kBadRequest, "Task.output of a completed " + t.code + " Task: " + what, "Task.output");
    }
    e_.Apply(ctx, episode, parsed.input, {"user", ""}, parsed.occurred_us);
  }



  void ReadMedication(const std::string& type, const std::string& id, const JsonValue& r) {
    std::string status(StringMember(r, "status").value_or(""));
    bool ok = type == "MedicationRequest"         ? (status == "active" || status == "completed")
              : type == "MedicationStatement"     ? (status == "active" || status == "completed")
              : type == "MedicationDispense"      ? (status == "completed" || status == "in-progress")
                                                  : status == "completed";
    if (!ok) return;
    // An order, not a proposal or a plan; never a "do not give".
    if (type == "MedicationRequest") {
      std::string intent(StringMember(r, "intent").value_or(""));
      if (intent != "order" && intent != "original-order" && intent != "reflex-order" && intent != "filler-order" &&
          intent != "instance-order") {
        return;
      }
      if (const JsonValue* dnp = Member(r, "doNotPerform"); dnp && dnp->IsTrue()) return;
    }
    auto patient = PatientOf(r);
    if (!patient) return;
    for (const auto& [system, code] : CodingsOf(r, "medicationCodeableConcept")) {
      if (auto atc = e_.drugs_.AtcOf(system, code)) {
        MedicationFacts m{type, id, *patient, *atc,
                          FirstDate(r, {"authoredOn", "whenHandedOver", "whenPrepared", "effectiveDateTime",
                                        "effectivePeriod.start", "dateAsserted"}),
                          std::nullopt};
        if (const JsonValue* supply = Member(r, "daysSupply"); supply && supply->IsObject()) {
          const JsonValue* v = Member(*supply, "value");
          std::string unit(StringMember(*supply, "code").value_or(StringMember(*supply, "unit").value_or("d")));
          auto text = v && IsNumber(*v) ? NumberText(*v) : std::nullopt;
          if (text && (unit == "d" || unit == "day" || unit == "days")) {
            try {
              double days = std::stod(*text);
              if (days >= 0 && days <= 3650) m.days_supply = static_cast<int>(days + 0.5);
            } catch (...) {
            }
          }
        }
        medications_.push_back(std::move(m));
        return;
      }
    }
  }

  // An osteoporosis drug prescribed, dispensed, given or taken: the treatment started
  // (operations.md section 1: from treatment-decision, decided then started).
  void Medication(WriteContext& ctx, db::CaseStore& cases, const MedicationFacts& m) {
    auto open = OpenCase(cases, m.patient);
    if (!open) return;
    auto c = cases.LockCase(open->episode_id);
    if (!c || !c->open) return;
    auto stage = workflow::ParseStage(c->stage);
    if (!stage) return;
    // A record dated before the fracture is a treatment the patient was already on (admission
    // reconciliation), not the start of this case's treatment.
    if (auto when = DayOf(m.when); when && c->index_day && *when < *c->index_day) return;
    auto [us, d] = ClampToCase(m.when, *c, NowMicros());
    std::string note = m.atc + " from " + m.type + "/" + m.id;
    workflow::EventInput in;
    in.occurred_day = d;
    in.drug_atc = m.atc;
    in.note = note;
    if (*stage == Stage::kTreatmentDecision) {
      in.event = Event::kDecideTreatment;
      e_.Apply(ctx, c->episode_id, in, {"data", ""}, us);
      stage = Stage::kTreating;
      c->current_drug.clear();
    }
    // In follow-up a record of another drug changes nothing by itself (an old prescription
    // completed, a hormone therapy for other reasons): a change of drug is the physician's
    // treatment-started, never inferred (operations.md raises data events from treating and
    // treatment-decision only).
    if (*stage == Stage::kTreating) {
      in.event = Event::kTreatmentStarted;
      e_.Apply(ctx, c->episode_id, in, {"data", ""}, us);
    } else if (*stage == Stage::kFollowUp && m.type == "MedicationDispense" && c->current_drug == m.atc) {
      // Dispensing of the current drug: what adherence at 52 weeks is computed from.
      cases.UpsertDispense(c->episode_id, m.type + "/" + m.id, d, m.atc, m.days_supply);
    } else if (*stage == Stage::kFollowUp && m.type == "MedicationAdministration" && c->current_drug == m.atc) {
      // An injection or infusion of the current drug: the next reminder counts from it.
      auto locked = cases.LockCase(c->episode_id);
      PathwayRun run(e_, ctx, cases, std::move(*locked));
      run.RecordDose(d, m.type + "/" + m.id);
    }
  }

  const PathwayEngine& e_;
  const Canon canon_;
  std::vector<ResultFacts> results_;
  std::vector<TaskCompletion> tasks_;
  std::vector<MedicationFacts> medications_;
  std::vector<std::pair<std::string, std::vector<std::string>>> reports_;  // (Communication id, EpisodeOfCare ids)
  std::vector<std::string> retracted_;  // Observations entered in error
};

ListenerFactory PathwayEngine::DataListener() const {
  return [this] { return std::make_unique<PathwayDataListener>(*this); };
}

}  // namespace fls::fhir
