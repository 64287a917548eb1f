#include "fhir/case_finder.h"

#include "fhir/pathway_knowledge.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <ctime>
#include <map>
#include <set>

#include "db/case_store.h"
#include "fhir/fhir_date.h"
#include "fhir/indexer.h"
#include "fhir/json_builder.h"
#include "fhir/text.h"

namespace fls::fhir {

namespace {

using workflow::Decision;

std::vector<workflow::Coding> Codings(const JsonValue& resource, const char* element) {
  std::vector<workflow::Coding> out;
  std::vector<const JsonValue*> values;
  CollectPath(resource, std::string(element) + ".coding", values);
  for (const JsonValue* c : values) {
    auto system = StringMember(*c, "system");
    auto code = StringMember(*c, "code");
    if (system && code) out.push_back({std::string(*system), std::string(*code)});
  }
  return out;
}

std::optional<std::string> RefId(const JsonValue& resource, const char* element, const char* type) {
  const JsonValue* ref = Member(resource, element);
  if (!ref) return std::nullopt;
  auto r = StringMember(*ref, "reference");
  if (!r) return std::nullopt;
  auto parsed = ParseReference(*r);
  if (!parsed || !parsed->type || *parsed->type != type) return std::nullopt;
  return parsed->id;
}


const char* kOpenTaskStatuses = "draft,requested,received,accepted,ready,in-progress,on-hold";

class CaseFinder : public TransactionListener {
 public:
  CaseFinder(const workflow::FractureCodeList& codes, const CaseFinderConfig& config, const PathwayEngine& engine)
      : codes_(codes), config_(config), canon_(config.canonical_base), engine_(engine) {}

  void OnWrite(const WrittenResource& w) override {
    if (writing_) return;
    if (w.type == "EpisodeOfCare" && !w.created) {
      if (w.server_made) return;  // the pathway engine moving the case
      changed_cases_.emplace_back(w.id, w.deleted);
      return;
    }
    if (w.deleted) return;
    if (w.type == "Condition") {
      conditions_.emplace_back(w.id, "");
    } else if (w.type == "Encounter" && w.resource) {
      std::vector<const JsonValue*> refs;
      CollectPath(*w.resource, "diagnosis.condition", refs);
      for (const JsonValue* r : refs) {
        auto ref = StringMember(*r, "reference");
        auto parsed = ref ? ParseReference(*ref) : std::nullopt;
        if (parsed && parsed->type == "Condition") conditions_.emplace_back(parsed->id, w.id);
      }
    } else if (w.type == "Patient" && w.resource) {
      if (w.created) patients_.push_back(w.id);  // its Conditions may have arrived before it
      if (Member(*w.resource, "deceasedDateTime") ||
          (Member(*w.resource, "deceasedBoolean") && (*w.resource)["deceasedBoolean"].IsTrue())) {
        deceased_.push_back(w.id);
      }
    } else if (w.type == "EpisodeOfCare" && w.created) {
      referrals_.push_back(w.id);
    }
  }

  void BeforeCommit(WriteContext& ctx) override {
    if (conditions_.empty() && deceased_.empty() && referrals_.empty() && patients_.empty() &&
        changed_cases_.empty()) {
      return;
    }
    writing_ = true;
    now_us_ = NowMicros();
    now_us_ -= now_us_ % 1000;
    today_ = LocalDay(now_us_ / 1000000);
    db::CaseStore cases(ctx.store());
    for (const auto& [id, deleted] : changed_cases_) GuardCaseChange(ctx, cases, id, deleted);
    for (const auto& id : referrals_) Referral(ctx, cases, id);
    for (const auto& patient : patients_) {
      ctx.CheckDeadline();
      for (const auto& cond : ctx.Search("Condition", "patient=Patient/" + patient, 1000)) {
        conditions_.emplace_back(cond, "");
      }
    }
    // Site-specific fractures before site-unspecified ones, so that an event's index site is the
    // specific one whatever the order of the push.
    std::vector<std::pair<std::string, std::string>> todo;
    std::set<std::string> seen;
    for (const auto& c : conditions_) {
      if (seen.insert(c.first).second) todo.push_back(c);
    }
    std::vector<Pending> pending;
    for (const auto& [id, enc] : todo) {
      ctx.CheckDeadline();
      if (auto p = Load(ctx, id, enc)) pending.push_back(std::move(*p));
    }
    // Oldest first, so that the index fracture is the earliest whatever the order of the push;
    // on one day, site-specific fractures before site-unspecified ones.
    // By patient first: two pushes lock the patients' cases in the same order (no deadlock).
    std::stable_sort(pending.begin(), pending.end(), [](const Pending& a, const Pending& b) {
      if (a.patient_id != b.patient_id) return a.patient_id < b.patient_id;
      int64_t da = a.event.fracture_day.value_or(INT64_MAX), db = b.event.fracture_day.value_or(INT64_MAX);
      if (da != db) return da < db;
      return (a.event.classification.site == "unspecified") < (b.event.classification.site == "unspecified");
    });
    for (auto& p : pending) {
      ctx.CheckDeadline();
      Apply(ctx, cases, p);
    }
    // Each case's EpisodeOfCare once, with every diagnosis this push gave it (in the order the
    // cases were first touched, which is patient order: the order their rows were locked in).
    for (const auto& episode_id : std::vector<std::string>(draft_order_)) {
      ctx.CheckDeadline();
      FlushCase(ctx, episode_id);
    }
    std::sort(deceased_.begin(), deceased_.end());
    deceased_.erase(std::unique(deceased_.begin(), deceased_.end()), deceased_.end());
    for (const auto& id : deceased_) {
      ctx.CheckDeadline();
      Deceased(ctx, cases, id);
    }
    writing_ = false;
  }

 private:
  struct Pending {
    workflow::FractureEvent event;
    bool deceased = false;
    std::string death;  // deceasedDateTime, when given
    std::string patient_id;
    std::string site_org;
    std::optional<int64_t> birth_day;
    std::string encounter_start;
  };

  // What case finding reads about an Encounter, once per push (every fracture of an admission
  // shares it; reading it per fracture made a push quadratic in its fractures).
  struct EncounterFacts {
    bool found = false;
    std::optional<int64_t> start_day;
    std::string site_org;
    struct Diagnosis {
      std::string condition_id;
      bool high_energy = false;   // a transport accident code
      bool valid_review = false;  // a review (cancer-related...) code, not entered in error or refuted
    };
    std::vector<Diagnosis> conditions;  // the encounter's Conditions (the first 200 by id)
  };

  // What the rules need about a Patient, once per push.
  struct PatientRecord {
    bool found = false;
    std::optional<int64_t> birth_day;
    bool deceased = false;
    std::string death;
  };

  // A patient's cases as the case tables say, read once per push and kept in step with what the
  // push adds (rows[i] and summaries[i] are the same case); dropped, to be read again, after
  // anything rarer (a case opened or closed, a concurrent push's fracture).
  struct PatientCases {
    std::vector<db::CaseRow> rows;
    std::vector<workflow::CaseSummary> summaries;
  };

  // A diagnosis for the case's EpisodeOfCare.
  struct DiagnosisDraft {
    std::string condition_id, site, role, grio;
  };

  // The EpisodeOfCare changes of one case in this push, written once by FlushCase.
  struct CaseDraft {
    bool create = false;  // opened by this push: the EpisodeOfCare is written whole
    db::CaseRow row;      // create: the case
    bool high_energy = false;
    std::vector<DiagnosisDraft> diagnoses;  // appended, in order
    bool ribs_severe = false;               // three rib fractures or more: every rib diagnosis is severe
  };

  std::optional<db::VersionRow> Read(WriteContext& ctx, const std::string& type, const std::string& id) {
    auto row = ctx.store().ReadCurrent(type, id);
    if (!row || row->deleted) return std::nullopt;
    return row;
  }

  // Locks the resource's row first, so that the read sees the last committed version and no
  // concurrent transaction can write a version in between (no lost update of the case).
  std::optional<db::VersionRow> ReadForUpdate(WriteContext& ctx, const std::string& type, const std::string& id) {
    ctx.store().LockCurrent(type, id);
    return Read(ctx, type, id);
  }

  // Reads what the rules need about one Condition; nullopt when it is not a fracture code at all.
  std::optional<Pending> Load(WriteContext& ctx, const std::string& condition_id, const std::string& encounter_hint) {
    auto row = Read(ctx, "Condition", condition_id);
    if (!row) return std::nullopt;
    JsonDoc cond = ParseJson(row->content);
    auto codings = Codings(cond, "code");
    Pending p;
    p.event.classification = workflow::Classify(codes_, codings);
    if (p.event.classification.disposition == workflow::Disposition::kNotFracture) return std::nullopt;
    p.event.condition_id = condition_id;
    auto patient = RefId(cond, "subject", "Patient");
    if (!patient) return std::nullopt;  // a Group or a Location is no FLS patient
    p.patient_id = *patient;
    auto ver = Codings(cond, "verificationStatus");
    if (!ver.empty()) p.event.verification = ver[0].code;
    p.event.encounter_id = RefId(cond, "encounter", "Encounter").value_or(encounter_hint);
    // Fracture date: onset, else the encounter's start, else the recorded date (pathway.md 1).
    if (auto onset = StringMember(cond, "onsetDateTime")) p.event.fracture_day = DayOf(*onset);
    if (!p.event.fracture_day) {
      if (const JsonValue* period = Member(cond, "onsetPeriod")) {
        if (auto start = StringMember(*period, "start")) p.event.fracture_day = DayOf(*start);
      }
    }
    if (!p.event.encounter_id.empty()) {
      const EncounterFacts& e = Encounter(ctx, p.event.encounter_id);
      if (e.found) {
        if (!p.event.fracture_day) p.event.fracture_day = e.start_day;
        if (!e.site_org.empty()) p.site_org = e.site_org;
        // The other diagnoses of the encounter: transport accidents and cancers change the answer.
        for (const auto& other : e.conditions) {
          if (other.condition_id == condition_id) continue;
          if (other.high_energy) p.event.high_energy = true;
          if (other.valid_review) p.event.cancer_on_encounter = true;
        }
      }
    }
    if (workflow::IsHighEnergy(codes_, codings)) p.event.high_energy = true;
    if (!p.event.fracture_day) {
      if (auto rec = StringMember(cond, "recordedDate")) p.event.fracture_day = DayOf(*rec);
    }
    const PatientRecord& pat = Patient(ctx, p.patient_id);
    if (!pat.found) return std::nullopt;  // no such patient (yet): nothing to attach a case to
    p.birth_day = pat.birth_day;
    p.deceased = pat.deceased;
    p.death = pat.death;
    return p;
  }

  // The Encounter's facts, read on first use in this push. Nothing this listener writes changes
  // them (it writes no Encounter and no Condition), so reading once gives every fracture of the
  // push what reading each time would.
  const EncounterFacts& Encounter(WriteContext& ctx, const std::string& encounter_id) {
    auto [it, inserted] = encounters_.try_emplace(encounter_id);
    EncounterFacts& f = it->second;
    if (!inserted) return f;
    auto enc = Read(ctx, "Encounter", encounter_id);
    if (!enc) return f;
    f.found = true;
    JsonDoc e = ParseJson(enc->content);
    if (const JsonValue* period = Member(e, "period")) {
      if (auto start = StringMember(*period, "start")) f.start_day = DayOf(*start);
    }
    if (auto org = RefId(e, "serviceProvider", "Organization")) f.site_org = *org;
    for (const auto& other : ctx.Search("Condition", "encounter=Encounter/" + encounter_id, 200)) {
      auto orow = Read(ctx, "Condition", other);
      if (!orow) continue;
      JsonDoc o = ParseJson(orow->content);
      auto oc = Codings(o, "code");
      EncounterFacts::Diagnosis d;
      d.condition_id = other;
      d.high_energy = workflow::IsHighEnergy(codes_, oc);
      auto over = Codings(o, "verificationStatus");
      bool valid = over.empty() || (over[0].code != "entered-in-error" && over[0].code != "refuted");
      d.valid_review = valid && workflow::Classify(codes_, oc).disposition == workflow::Disposition::kReview;
      f.conditions.push_back(std::move(d));
    }
    return f;
  }

  const PatientRecord& Patient(WriteContext& ctx, const std::string& patient_id) {
    auto [it, inserted] = patients_read_.try_emplace(patient_id);
    PatientRecord& r = it->second;
    if (!inserted) return r;
    auto pat = Read(ctx, "Patient", patient_id);
    if (!pat) return r;
    r.found = true;
    JsonDoc pd = ParseJson(pat->content);
    if (auto birth = StringMember(pd, "birthDate")) r.birth_day = DayOf(*birth);
    if (auto death = StringMember(pd, "deceasedDateTime")) {
      r.deceased = true;
      r.death = std::string(*death);
    } else if (const JsonValue* dead = Member(pd, "deceasedBoolean"); dead && dead->IsTrue()) {
      r.deceased = true;
    }
    return r;
  }

  PatientCases& CasesOf(db::CaseStore& cases, const std::string& patient_id) {
    auto [it, inserted] = cases_.try_emplace(patient_id);
    if (inserted) {
      it->second.rows = cases.CasesOfPatient(patient_id);
      it->second.summaries = Summaries(it->second.rows);
    }
    return it->second;
  }
  void Forget(const std::string& patient_id) { cases_.erase(patient_id); }

  // The draft of an existing case's EpisodeOfCare; the first call locks its row, as a
  // read-modify-write would (concurrent pushes to one case queue there; no diagnosis is lost).
  CaseDraft& Draft(WriteContext& ctx, const std::string& episode_id) {
    auto [it, inserted] = drafts_.try_emplace(episode_id);
    if (inserted) {
      ctx.store().LockCurrent("EpisodeOfCare", episode_id);
      draft_order_.push_back(episode_id);
    }
    return it->second;
  }

  static std::vector<workflow::CaseSummary> Summaries(const std::vector<db::CaseRow>& rows) {
    std::vector<workflow::CaseSummary> out;
    for (const auto& r : rows) {
      workflow::CaseSummary s;
      s.id = r.episode_id;
      s.open = r.open;
      s.voided = r.voided;
      s.index_site = r.index_site;
      if (r.index_day) s.index_day = *r.index_day;
      s.index_encounter = r.index_encounter;
      s.condition_ids = r.condition_ids;
      out.push_back(std::move(s));
    }
    return out;
  }

  bool InError(const std::string& verification) {
    return verification == "entered-in-error" || verification == "refuted";
  }

  // A Condition on a case that is now entered in error or refuted (workflow::DecideRetraction).
  void Retract(WriteContext& ctx, db::CaseStore& cases, Pending& p, const db::CaseRow& c) {
    // Once per Condition: a feed that re-sends the corrected record must not pile up Tasks.
    if (!cases.ClaimReview(p.event.condition_id + "#" + p.event.verification, c.episode_id, p.patient_id,
                           "retraction")) {
      return;
    }
    int valid = 0;
    for (const auto& f : cases.FracturesOf(c.episode_id)) {
      if (f.condition_id == p.event.condition_id || f.role != "index-fracture") continue;
      auto row = Read(ctx, "Condition", f.condition_id);
      if (!row) continue;
      JsonDoc cd = ParseJson(row->content);
      auto ver = Codings(cd, "verificationStatus");
      if (ver.empty() || !InError(ver[0].code)) ++valid;
    }
    switch (workflow::DecideRetraction(c.open, c.stage, valid)) {
      case workflow::Retraction::kNothing:
        return;
      case workflow::Retraction::kCancelCase:
        CloseCase(ctx, cases, c, "excluded", "cancelled", "index fracture " + p.event.verification, "",
                  "the index fracture was " + p.event.verification, true);
        return;
      case workflow::Retraction::kReviewTask:
        WriteTask(ctx, NewUuid(), "review-diagnosis", "Review diagnosis",
                  "A fracture on this case is now " + p.event.verification +
                      ": check whether the case still stands (exclude it if not).",
                  p.patient_id, "EpisodeOfCare/" + c.episode_id, c.site_org.empty() ? Site(p) : c.site_org,
                  "Condition/" + p.event.condition_id, "");
        return;
    }
  }

  void Apply(WriteContext& ctx, db::CaseStore& cases, Pending& p) {
    if (InError(p.event.verification)) {
      std::vector<db::CaseRow> rows = CasesOf(cases, p.patient_id).rows;  // a copy: Retract may close one
      for (const auto& c : rows) {
        if (std::find(c.condition_ids.begin(), c.condition_ids.end(), p.event.condition_id) != c.condition_ids.end()) {
          Retract(ctx, cases, p, c);
          Forget(p.patient_id);
        }
      }
      return;
    }
    for (int attempt = 0; attempt < 2; ++attempt) {
      PatientCases& pc = CasesOf(cases, p.patient_id);
      const std::vector<db::CaseRow>& rows = pc.rows;
      Decision d = workflow::Decide(p.event, {p.birth_day}, pc.summaries, today_, config_.rules);
      switch (d.action) {
        case Decision::Action::kIgnore:
          return;
        case Decision::Action::kReviewTask:
          Review(ctx, cases, p, d.reason);
          return;
        case Decision::Action::kOpenCase: {
          bool opened = OpenCase(ctx, cases, p, d, rows);
          Forget(p.patient_id);  // read the patient's cases again, with the new one
          if (opened) {
            // Recorded (it counts as an identified fracture), then closed with the patient's
            // other cases once every fracture of this push is on it.
            if (p.deceased) deceased_.push_back(p.patient_id);
            return;
          }
          continue;  // a concurrent push opened the patient's case first: decide again
        }
        case Decision::Action::kAddToCase:
        case Decision::Action::kAddRefracture:
          AddToCase(ctx, cases, p, d, pc);
          return;
      }
    }
  }

  std::string Site(const Pending& p) const { return p.site_org.empty() ? config_.default_site_id : p.site_org; }

  // The GRIO class of one fracture; ribs are non-severe until three are on the case (AddToCase).
  static std::string Grio(const workflow::Classification& k) { return k.grio == "ribs" ? "non-severe" : k.grio; }

  void AddDiagnosis(Json& j, const DiagnosisDraft& d, int rank) {
    j.Obj();
    j.Arr("extension")
        .Obj().S("url", canon_.site_extension).S("valueCode", d.site).End()
        .Obj().S("url", canon_.grio_extension).S("valueCode", d.grio).End()
        .EndArr();
    j.Ref("condition", "Condition/" + d.condition_id);
    j.Concept("role", canon_.role_system, d.role, d.role == "refracture" ? "Refracture" : "Index fracture");
    j.I("rank", rank);
    j.End();
  }

  bool OpenCase(WriteContext& ctx, db::CaseStore& cases, Pending& p, const Decision& d,
                const std::vector<db::CaseRow>& rows) {
    std::string episode = NewUuid(), plan = NewUuid(), task = NewUuid();
    db::CaseRow row;
    row.episode_id = episode;
    row.patient_id = p.patient_id;
    row.site_org = Site(p);
    row.stage = "identified";
    row.index_site = p.event.classification.site;
    row.index_day = *p.event.fracture_day;
    row.index_encounter = p.event.encounter_id;
    row.high_energy = d.high_energy;
    row.source = "data";
    row.opened_at_us = now_us_;
    if (d.refracture_of_closed) {
      for (const auto& r : rows) {
        if (!r.open && !r.voided && (!r.index_day || *r.index_day <= *p.event.fracture_day)) {
          row.refracture_of = r.episode_id;
        }
      }
    }
    if (!cases.InsertOpenCase(row)) return false;
    engine_.CaseOpened(ctx, episode, now_us_);
    std::string grio = Grio(p.event.classification);
    cases.AddFracture({p.event.condition_id, episode, "index-fracture", p.event.classification.site, grio,
                       p.event.fracture_day, p.event.encounter_id});
    cases.AppendEvent(episode, now_us_, "", "identified", "identify", d.reason, "data");
    // The EpisodeOfCare is written by FlushCase, once, with the fractures the rest of the push adds.
    CaseDraft& draft = drafts_[episode];
    draft.create = true;
    draft.row = row;
    draft.high_energy = d.high_energy;
    draft.diagnoses.push_back({p.event.condition_id, p.event.classification.site, "index-fracture", grio});
    draft_order_.push_back(episode);
    WriteCaseResources(ctx, row, plan, p.deceased ? "" : task, "Condition/" + p.event.condition_id, d.high_energy);
    return true;
  }

  // The EpisodeOfCare of a case opened by case finding (status planned, stage identified), with
  // an empty diagnosis list for FlushCase to fill.
  JsonDoc NewEpisode(const db::CaseRow& row, bool high_energy) {
    std::string now = FormatFhirInstant(now_us_);
    Json e;
    e.Obj().S("resourceType", "EpisodeOfCare").S("id", row.episode_id);
    e.Arr("extension");
    e.Obj().S("url", canon_.stage_extension).S("valueCode", row.stage).End();
    if (high_energy) {
      e.Obj().S("url", canon_.flag_extension).S("valueCode", "high-energy-trauma").End();
    }
    if (!row.refracture_of.empty()) {
      e.Obj().S("url", canon_.refracture_of_extension).Ref("valueReference", "EpisodeOfCare/" + row.refracture_of).End();
    }
    e.EndArr();
    e.S("status", "planned");
    e.Arr("statusHistory").Obj().S("status", "planned").Key("period").Obj().S("start", now).End().End().EndArr();
    e.Arr("type").Obj().Arr("coding").Coding(canon_.episode_type_system, "fls-case", "FLS case").EndArr().End().EndArr();
    e.Arr("diagnosis").EndArr();
    e.Ref("patient", "Patient/" + row.patient_id);
    e.Ref("managingOrganization", "Organization/" + row.site_org);
    e.Key("period").Obj().S("start", now).End();
    e.End();
    return e.Doc();
  }

  // Writes the case's EpisodeOfCare with what this push gave it: created whole for a new case,
  // else read (its row is locked since Draft), the diagnoses appended, written once. Nothing
  // to do when the case has no draft or was flushed already.
  void FlushCase(WriteContext& ctx, const std::string& episode_id) {
    auto it = drafts_.find(episode_id);
    if (it == drafts_.end()) return;
    CaseDraft draft = std::move(it->second);
    drafts_.erase(it);
    if (draft.create) {
      JsonDoc ep = NewEpisode(draft.row, draft.high_energy);
      AppendDiagnoses(ep, draft);
      ctx.Create("EpisodeOfCare", ep, episode_id);
      return;
    }
    auto current = Read(ctx, "EpisodeOfCare", episode_id);
    if (!current) return;  // the case's resource is gone: the case table alone records the fractures
    JsonDoc ep = ParseJson(current->content);
    AppendDiagnoses(ep, draft);
    ctx.Update("EpisodeOfCare", episode_id, ep);
  }

  void AppendDiagnoses(JsonDoc& ep, const CaseDraft& draft) {
    auto& a = ep.GetAllocator();
    if (!ep.HasMember("diagnosis") || !ep["diagnosis"].IsArray()) {
      SetMember(ep, "diagnosis", JsonValue(rapidjson::kArrayType), a);
    }
    JsonValue& list = ep["diagnosis"];
    list.Reserve(static_cast<rapidjson::SizeType>(list.Size() + draft.diagnoses.size()), a);
    for (const auto& dg : draft.diagnoses) {
      Json dj;
      AddDiagnosis(dj, dg, static_cast<int>(list.Size()) + 1);
      JsonDoc diag = dj.Doc();
      JsonValue copy;
      copy.CopyFrom(diag, a);
      list.PushBack(copy, a);
    }
    if (!draft.ribs_severe) return;
    // Every rib diagnosis of the case becomes severe once there are three.
    // (A client may have edited the diagnoses: every member is checked before it is read.)
    auto url_is = [](const JsonValue& x, const std::string& url) {
      return x.IsObject() && StringMember(x, "url") == std::optional<std::string_view>(url);
    };
    for (auto& dg : list.GetArray()) {
      if (!dg.IsObject() || !dg.HasMember("extension") || !dg["extension"].IsArray()) continue;
      bool ribs = false;
      for (auto& x : dg["extension"].GetArray()) {
        if (url_is(x, canon_.site_extension) && StringMember(x, "valueCode") == std::optional<std::string_view>("ribs")) {
          ribs = true;
        }
      }
      if (!ribs) continue;
      for (auto& x : dg["extension"].GetArray()) {
        if (url_is(x, canon_.grio_extension)) SetMember(x, "valueCode", MakeString("severe", a), a);
      }
    }
  }

  // The CarePlan and the "assess and enrol" Task of a new case (its EpisodeOfCare is written
  // apart: NewEpisode and FlushCase for case finding, the referral itself for a referral).
  void WriteCaseResources(WriteContext& ctx, const db::CaseRow& row, const std::string& plan, const std::string& task,
                          const std::string& reason_ref, bool high_energy) {
    std::string now = FormatFhirInstant(now_us_);
    std::string episode_ref = "EpisodeOfCare/" + row.episode_id;
    db::CaseStore(ctx.store()).SetCarePlan(row.episode_id, plan);
    {
      Json c;
      c.Obj().S("resourceType", "CarePlan").S("id", plan);
      c.Arr("instantiatesCanonical").Val(canon_.plan_definition).EndArr();
      c.S("status", "active").S("intent", "plan");
      c.Arr("category").Obj().Arr("coding").Coding(canon_.episode_type_system, "fls-case", "FLS case").EndArr().End().EndArr();
      c.S("title", "Capture the Fracture pathway");
      c.Ref("subject", "Patient/" + row.patient_id);
      c.Key("period").Obj().S("start", now).End();
      c.S("created", now);
      c.Arr("supportingInfo").Obj().S("reference", episode_ref).End().EndArr();
      if (!reason_ref.empty()) c.Arr("addresses").Obj().S("reference", reason_ref).End().EndArr();
      if (!task.empty()) c.Arr("activity").Obj().Ref("reference", "Task/" + task).End().EndArr();
      c.End();
      JsonDoc doc = c.Doc();
      ctx.Create("CarePlan", doc, plan);
    }
    if (task.empty()) return;  // nobody to assess: the patient has died
    std::string description = "Assess the patient and enrol them in the FLS programme (consent, contact, referring physician), or exclude with a reason.";
    if (high_energy) description += " High-energy trauma is recorded on the admission: confirm a fragility fracture or exclude.";
    WriteTask(ctx, task, "assess-enrol", "Assess and enrol", description, row.patient_id, episode_ref, row.site_org,
              reason_ref, "CarePlan/" + plan);
  }

  void WriteTask(WriteContext& ctx, const std::string& id, const std::string& code, const std::string& display,
                 const std::string& description, const std::string& patient, const std::string& focus,
                 const std::string& site, const std::string& reason_ref, const std::string& based_on) {
    Json t;
    t.Obj().S("resourceType", "Task").S("id", id);
    if (!based_on.empty()) t.Arr("basedOn").Obj().S("reference", based_on).End().EndArr();
    t.S("status", "requested").S("intent", "order").S("priority", "routine");
    t.Concept("code", canon_.task_system, code, display);
    t.S("description", description);
    t.Ref("focus", focus);
    t.Ref("for", "Patient/" + patient);
    t.S("authoredOn", FormatFhirInstant(now_us_));
    t.S("lastModified", FormatFhirInstant(now_us_));
    t.Ref("owner", "Organization/" + site);
    if (!reason_ref.empty()) t.Ref("reasonReference", reason_ref);
    t.Key("restriction").Obj().Key("period").Obj().S("end", DayText(today_ + config_.task_due_days)).End().End();
    t.End();
    JsonDoc doc = t.Doc();
    ctx.Create("Task", doc, id);
  }

  // The fracture joins a case: the case tables now (the next fracture's decision reads them,
  // through `pc`), the EpisodeOfCare's diagnosis in the case's draft (FlushCase writes it once).
  void AddToCase(WriteContext& ctx, db::CaseStore& cases, Pending& p, const Decision& d, PatientCases& pc) {
    bool refracture = d.action == Decision::Action::kAddRefracture;
    const char* role = refracture ? "refracture" : "index-fracture";
    const std::string& site = p.event.classification.site;
    std::string grio = Grio(p.event.classification);
    // The case's row first, as the pathway engine locks it (fls_case, then the EpisodeOfCare):
    // the same order everywhere, and the stage read under the lock.
    auto locked = cases.LockCase(d.case_id);
    if (!cases.AddFracture({p.event.condition_id, d.case_id, role, site, grio, p.event.fracture_day,
                            p.event.encounter_id})) {
      Forget(p.patient_id);  // on a case already (a concurrent push): read the cases again
      return;
    }
    db::CaseRow* row = nullptr;
    workflow::CaseSummary* summary = nullptr;
    for (size_t i = 0; i < pc.rows.size(); ++i) {
      if (pc.rows[i].episode_id == d.case_id) {
        row = &pc.rows[i];
        summary = &pc.summaries[i];
      }
    }
    if (row) {
      row->condition_ids.push_back(p.event.condition_id);
      summary->condition_ids.push_back(p.event.condition_id);
    }
    if (row && !row->index_day) {
      cases.SetIndex(d.case_id, site, *p.event.fracture_day, p.event.encounter_id);
      row->index_site = summary->index_site = site;
      row->index_day = summary->index_day = *p.event.fracture_day;
      row->index_encounter = summary->index_encounter = p.event.encounter_id;
    } else if (!refracture && row && row->index_site == "unspecified" && site != "unspecified") {
      cases.SetIndexSite(d.case_id, site);
      row->index_site = summary->index_site = site;
    }
    CaseDraft& draft = Draft(ctx, d.case_id);
    // Ribs: severe when 3 or more at once (pathway.md section 1). The case table's count, read
    // once the case is locked, then kept here.
    auto ribs = rib_counts_.find(d.case_id);
    if (ribs != rib_counts_.end() && site == "ribs") ++ribs->second;
    if (p.event.classification.grio == "ribs") {
      if (ribs == rib_counts_.end()) {
        ribs = rib_counts_.emplace(d.case_id, cases.CountFractures(d.case_id, "ribs")).first;
      }
      if (ribs->second >= 3) {
        grio = "severe";
        draft.ribs_severe = true;
      }
    }
    draft.diagnoses.push_back({p.event.condition_id, site, role, grio});
    if (refracture && row && row->open) {
      std::string stage = locked ? locked->stage : row->stage;  // not a stage read before a concurrent event
      cases.AppendEvent(d.case_id, now_us_, stage, stage, "refracture", d.reason, "data");
      WriteTask(ctx, NewUuid(), "review-refracture", "Review refracture",
                "A new fracture while the case is open: review the treatment (a fracture under treatment "
                "is a reason to reconsider it).",
                p.patient_id, "EpisodeOfCare/" + d.case_id, row->site_org.empty() ? Site(p) : row->site_org,
                "Condition/" + p.event.condition_id, "");
    }
  }

  void Review(WriteContext& ctx, db::CaseStore& cases, Pending& p, const std::string& reason) {
    std::string task = NewUuid();
    if (!cases.ClaimReview(p.event.condition_id, task, p.patient_id, reason)) return;
    WriteTask(ctx, task, "review-fracture", "Review fracture",
              "No FLS case was opened automatically (" + reason +
                  "). Review the record: open a case by referral if this is a fragility fracture.",
              p.patient_id, "Condition/" + p.event.condition_id, Site(p), "Condition/" + p.event.condition_id, "");
  }

  // Closes a case: the case table, the event log, the EpisodeOfCare (status, stage, period.end)
  // and its open Tasks (cancelled).
  void CloseCase(WriteContext& ctx, db::CaseStore& cases, const db::CaseRow& c, const std::string& stage,
                 const std::string& status, const std::string& event, const std::string& end,
                 const std::string& reason, bool voided = false) {
    FlushCase(ctx, c.episode_id);  // what this push added to the case, before it closes
    cases.Close(c.episode_id, stage, now_us_, voided);
    cases.AppendEvent(c.episode_id, now_us_, c.stage, stage, event, reason, "data");
    if (auto ep_row = ReadForUpdate(ctx, "EpisodeOfCare", c.episode_id)) {
      JsonDoc ep = ParseJson(ep_row->content);
      auto& a = ep.GetAllocator();
      SetMember(ep, "status", MakeString(status, a), a);
      if (ep.HasMember("extension") && ep["extension"].IsArray()) {
        for (auto& x : ep["extension"].GetArray()) {
          if (x.IsObject() && StringMember(x, "url") == std::optional<std::string_view>(canon_.stage_extension)) {
            SetMember(x, "valueCode", MakeString(stage, a), a);
          }
        }
      }
      JsonValue period(rapidjson::kObjectType);
      if (ep.HasMember("period") && ep["period"].IsObject()) period.CopyFrom(ep["period"], a);
      // period.end is the date of death when known, but never before period.start (FHIR per-1):
      // a death recorded before the case opened ends the case when it opened.
      std::string end_text = end.empty() ? FormatFhirInstant(now_us_) : end;
      if (auto start = StringMember(period, "start")) {
        auto s_range = ParseFhirDate(*start);
        auto e_range = ParseFhirDate(end_text);
        if (s_range && e_range && e_range->lo_us < s_range->lo_us) end_text = std::string(*start);
      }
      SetMember(period, "end", MakeString(end_text, a), a);
      SetMember(ep, "period", std::move(period), a);
      ctx.Update("EpisodeOfCare", c.episode_id, ep);
    }
    // The case's plan ends with it (one open case per patient: its active FLS plan is this one's).
    for (const auto& plan_id : ctx.Search("CarePlan", "patient=Patient/" + c.patient_id +
                                                          "&status=active&instantiates-canonical=" +
                                                          PercentEncode(canon_.plan_definition), 10)) {
      auto plan = ReadForUpdate(ctx, "CarePlan", plan_id);
      if (!plan) continue;
      JsonDoc pd = ParseJson(plan->content);
      auto& a = pd.GetAllocator();
      SetMember(pd, "status", MakeString(voided ? "entered-in-error" : stage == "completed" ? "completed" : "revoked", a), a);
      ctx.Update("CarePlan", plan_id, pd);
    }
    for (const auto& task_id : ctx.Search("Task", "focus=EpisodeOfCare/" + c.episode_id + "&status=" + kOpenTaskStatuses, 500)) {
      auto t = ReadForUpdate(ctx, "Task", task_id);
      if (!t) continue;
      JsonDoc td = ParseJson(t->content);
      auto& a = td.GetAllocator();
      SetMember(td, "status", MakeString("cancelled", a), a);
      JsonValue why(rapidjson::kObjectType);
      SetMember(why, "text", MakeString(reason, a), a);
      SetMember(td, "statusReason", std::move(why), a);
      SetMember(td, "lastModified", MakeString(FormatFhirInstant(now_us_), a), a);
      ctx.Update("Task", task_id, td);
    }
  }

  // The patient died: each open case takes the pathway's deceased event (source data), dated
  // by deceasedDateTime when given.
  void Deceased(WriteContext& ctx, db::CaseStore& cases, const std::string& patient_id) {
    auto pat = Read(ctx, "Patient", patient_id);
    if (!pat) return;
    JsonDoc pd = ParseJson(pat->content);
    std::string when(StringMember(pd, "deceasedDateTime").value_or(""));
    for (const auto& c : cases.CasesOfPatient(patient_id)) {
      if (!c.open) continue;
      workflow::EventInput in;
      in.event = workflow::Event::kDeceased;
      in.reason = "patient deceased";
      engine_.ApplyData(ctx, c.episode_id, in, when);
    }
  }

  static std::string ExpectedStatus(const db::CaseRow& c) {
    if (c.stage == "identified") return "planned";
    if (c.stage == "excluded" || c.stage == "withdrawn") return "cancelled";
    if (!c.open) return "finished";
    return "active";
  }

  // Until the pathway's $event exists, a client may edit an FLS case's details but not move it
  // (status, stage) nor delete it: the case table and the event log must keep saying what the
  // EpisodeOfCare says.
  void GuardCaseChange(WriteContext& ctx, db::CaseStore& cases, const std::string& episode_id, bool deleted) {
    auto row = cases.Case(episode_id);
    if (!row) return;  // not an FLS case the server knows
    if (deleted) {
      throw FhirError(ErrorCode::kUnprocessable,
                      "an FLS case is not deleted: exclude or withdraw it through the pathway (EpisodeOfCare/" +
                          episode_id + ")");
    }
    auto current = Read(ctx, "EpisodeOfCare", episode_id);
    if (!current) return;
    JsonDoc ep = ParseJson(current->content);
    std::string stage;
    if (const JsonValue* ext = Member(ep, "extension"); ext && ext->IsArray()) {
      for (const auto& x : ext->GetArray()) {
        if (StringMember(x, "url") == std::optional<std::string_view>(canon_.stage_extension)) {
          stage = std::string(StringMember(x, "valueCode").value_or(""));
        }
      }
    }
    auto patient = RefId(ep, "patient", "Patient");
    if (!patient || *patient != row->patient_id) {
      throw FhirError(ErrorCode::kUnprocessable,
                      "an FLS case stays with its patient (Patient/" + row->patient_id +
                          "); exclude it and refer the right patient instead",
                      "EpisodeOfCare.patient");
    }
    if (auto site = RefId(ep, "managingOrganization", "Organization"); site && *site != row->site_org) {
      cases.SetSite(episode_id, *site);  // a transfer to another FLS site
    }
    std::string status(StringMember(ep, "status").value_or(""));
    if (stage != row->stage || status != ExpectedStatus(*row)) {
      throw FhirError(ErrorCode::kUnprocessable,
                      "the case is at stage " + row->stage + " (status " + ExpectedStatus(*row) +
                          "); its stage and status change through the pathway, not by update",
                      "EpisodeOfCare.status");
    }
  }

  // A case opened by hand: POST EpisodeOfCare (a referral by a physician or the coordinator).
  void Referral(WriteContext& ctx, db::CaseStore& cases, const std::string& episode_id) {
    auto row = Read(ctx, "EpisodeOfCare", episode_id);
    if (!row) return;
    JsonDoc ep = ParseJson(row->content);
    auto patient = RefId(ep, "patient", "Patient");
    if (!patient || !Read(ctx, "Patient", *patient)) {
      throw FhirError(ErrorCode::kUnprocessable, "an FLS referral must name an existing Patient", "EpisodeOfCare.patient");
    }
    auto status = StringMember(ep, "status");
    if (!status || *status != "planned") {
      throw FhirError(ErrorCode::kUnprocessable,
                      "a new FLS case starts as planned (identified); use $event to move it along the pathway",
                      "EpisodeOfCare.status");
    }
    db::CaseRow c;
    c.episode_id = episode_id;
    c.patient_id = *patient;
    c.site_org = RefId(ep, "managingOrganization", "Organization").value_or(config_.default_site_id);
    c.stage = "identified";
    c.index_site = "unspecified";
    c.source = "user";
    c.opened_at_us = now_us_;
    std::vector<std::string> diagnosis_conditions;
    std::vector<const JsonValue*> refs;
    CollectPath(ep, "diagnosis.condition", refs);
    for (const JsonValue* r : refs) {
      auto ref = StringMember(*r, "reference");
      auto parsed = ref ? ParseReference(*ref) : std::nullopt;
      if (parsed && parsed->type == "Condition") diagnosis_conditions.push_back(parsed->id);
    }
    for (const auto& existing : cases.CasesOfPatient(*patient)) {
      if (existing.open) {
        throw FhirError(ErrorCode::kUnprocessable, "Patient/" + *patient + " already has an open FLS case: EpisodeOfCare/" +
                                                       existing.episode_id);
      }
      if (!existing.voided) c.refracture_of = existing.episode_id;
    }
    if (!cases.InsertOpenCase(c)) {
      throw FhirError(ErrorCode::kConflict, "a concurrent change opened a case for Patient/" + *patient + "; retry");
    }
    engine_.CaseOpened(ctx, episode_id, now_us_);
    for (const auto& cond : diagnosis_conditions) {
      cases.AddFracture({cond, episode_id, "index-fracture", "unspecified", "non-severe", std::nullopt, ""});
    }
    cases.AppendEvent(episode_id, now_us_, "", "identified", "refer", "referral", "user");
    // The case's own markers: stage, type, site.
    auto& a = ep.GetAllocator();
    if (!ep.HasMember("extension") || !ep["extension"].IsArray()) SetMember(ep, "extension", JsonValue(rapidjson::kArrayType), a);
    bool has_stage = false;
    for (auto& x : ep["extension"].GetArray()) {
      if (x.IsObject() && StringMember(x, "url") == std::optional<std::string_view>(canon_.stage_extension)) {
        SetMember(x, "valueCode", MakeString("identified", a), a);
        has_stage = true;
      }
    }
    if (!has_stage) {
      JsonValue x(rapidjson::kObjectType);
      SetMember(x, "url", MakeString(canon_.stage_extension, a), a);
      SetMember(x, "valueCode", MakeString("identified", a), a);
      ep["extension"].PushBack(x, a);
    }
    if (!ep.HasMember("managingOrganization")) {
      JsonValue org(rapidjson::kObjectType);
      SetMember(org, "reference", MakeString("Organization/" + c.site_org, a), a);
      SetMember(ep, "managingOrganization", std::move(org), a);
    }
    ctx.Update("EpisodeOfCare", episode_id, ep);
    WriteCaseResources(ctx, c, NewUuid(), NewUuid(),
                       diagnosis_conditions.empty() ? "" : "Condition/" + diagnosis_conditions[0], false);
  }

  const workflow::FractureCodeList& codes_;
  const CaseFinderConfig& config_;
  const FlsCanonicals canon_;
  const PathwayEngine& engine_;
  bool writing_ = false;  // true while this listener writes: its own writes are not inputs
  int64_t now_us_ = 0;
  int64_t today_ = 0;
  std::vector<std::pair<std::string, std::string>> conditions_;  // (Condition id, Encounter id hint)
  std::vector<std::string> deceased_;
  std::vector<std::string> referrals_;
  std::vector<std::string> patients_;
  std::vector<std::pair<std::string, bool>> changed_cases_;  // (EpisodeOfCare id, deleted)
  // Read once per push (BeforeCommit), so that its cost is linear in the push's fractures.
  std::map<std::string, EncounterFacts> encounters_;
  std::map<std::string, PatientRecord> patients_read_;
  std::map<std::string, PatientCases> cases_;  // by patient id
  std::map<std::string, int> rib_counts_;      // rib fractures on a case, by EpisodeOfCare id
  // The EpisodeOfCare writes of this push, one per case, in the order the cases were first touched.
  std::map<std::string, CaseDraft> drafts_;
  std::vector<std::string> draft_order_;
};

}  // namespace

FlsCanonicals::FlsCanonicals(const std::string& base)
    : stage_extension(base + "/StructureDefinition/pathway-stage"),
      flag_extension(base + "/StructureDefinition/case-flag"),
      refracture_of_extension(base + "/StructureDefinition/refracture-of"),
      site_extension(base + "/StructureDefinition/fracture-site"),
      grio_extension(base + "/StructureDefinition/grio-class"),
      stage_system(base + "/CodeSystem/pathway-stage"),
      task_system(base + "/CodeSystem/fls-task"),
      role_system(base + "/CodeSystem/diagnosis-role"),
      episode_type_system(base + "/CodeSystem/episode-type"),
      flag_system(base + "/CodeSystem/case-flag"),
      plan_definition(base + "/PlanDefinition/capture-the-fracture") {}

ListenerFactory MakeCaseFinder(const workflow::FractureCodeList& codes, CaseFinderConfig config,
                               const PathwayEngine& engine) {
  auto shared = std::make_shared<const CaseFinderConfig>(std::move(config));
  return [&codes, shared, &engine]() -> std::unique_ptr<TransactionListener> {
    return std::make_unique<CaseFinder>(codes, *shared, engine);
  };
}

void PublishCaseFindingKnowledge(FhirService& service, const workflow::FractureCodeList& codes,
                                 const CaseFinderConfig& config, const std::string& plan_definition_json) {
  // ConceptMap: the code list, so that clients can read what the server recognises.
  Json m;
  m.Obj().S("resourceType", "ConceptMap").S("id", "fls-fracture-codes");
  m.S("url", config.canonical_base + "/ConceptMap/fls-fracture-codes");
  m.S("version", codes.version()).S("name", "FlsFractureCodes").S("title", "FLS fracture codes");
  m.S("status", "active").S("publisher", "FLS Server");
  m.S("description", "Codes that case finding recognises, with their fracture site, GRIO 2017 class and kind "
                     "(fracture, excluded-site, review, high-energy-trauma). ICD-10 codes match by prefix "
                     "('?' is any one character); SNOMED CT codes match exactly. Generated from "
                     "workflow/data/fracture-codes.json at start-up.");
  m.Arr("group");
  for (const char* alias : {"icd-10", "sct"}) {
    auto urls = codes.SystemUrls(alias);
    if (urls.empty()) continue;
    m.Obj().S("source", urls[0]).S("target", config.canonical_base + "/CodeSystem/fracture-site");
    m.Arr("element");
    for (const auto& e : codes.entries()) {
      if (e.system_alias != alias) continue;
      m.Obj().S("code", e.code);
      if (!e.display.empty()) m.S("display", e.display);
      m.Arr("target").Obj();
      m.S("code", e.kind == workflow::CodeKind::kFracture ? e.site : workflow::CodeKindName(e.kind));
      m.S("equivalence", e.exact ? "equivalent" : "wider");
      std::string comment = std::string(workflow::CodeKindName(e.kind)) + (e.exact ? ", exact" : ", prefix");
      if (!e.grio.empty()) comment += ", GRIO " + e.grio;
      if (!e.reason.empty()) comment += ", " + e.reason;
      m.S("comment", comment);
      m.End().EndArr();
      m.End();
    }
    m.EndArr().End();
  }
  m.EndArr().End();
  JsonDoc map_doc = m.Doc();
  JsonDoc plan = ParseJson(plan_definition_json);
  service.Write([&](WriteContext& ctx) {
    JsonDoc map_copy, plan_copy;
    map_copy.CopyFrom(map_doc, map_copy.GetAllocator());
    plan_copy.CopyFrom(plan, plan_copy.GetAllocator());
    PublishIfChanged(ctx, "ConceptMap", "fls-fracture-codes", map_copy);
    if (auto plan_id = StringMember(plan_copy, "id")) PublishIfChanged(ctx, "PlanDefinition", std::string(*plan_id), plan_copy);
    auto site = ctx.store().ReadCurrent("Organization", config.default_site_id);
    if (!site) {
      JsonDoc od = ParseJson(R"({"resourceType":"Organization","id":")" + config.default_site_id +
                             R"j(","active":true,"name":"FLS site (default)"})j");
      ctx.Update("Organization", config.default_site_id, od);
    }
  });
}

}  // namespace fls::fhir
