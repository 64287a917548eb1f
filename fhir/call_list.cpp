#include "fhir/call_list.h"

#include <algorithm>

#include "fhir/fhir_date.h"
#include "fhir/indexer.h"
#include "fhir/text.h"

namespace fls::fhir {

namespace {

// The Task codes of a nurse's calls (operations.md section 5).
constexpr const char* kCallCodes[] = {"follow-up-call", "injection-reminder", "infusion-reminder", "denosumab-overdue",
                                      "unreachable",    "accompaniment-call", "relay"};

std::string Str(const JsonValue& v, const char* k) { return std::string(StringMember(v, k).value_or("")); }

std::string NameOf(const JsonValue& patient) {
  const JsonValue* names = Member(patient, "name");
  if (!names || !names->IsArray() || names->Empty() || !(*names)[0].IsObject()) return "";
  const JsonValue& n = (*names)[0];
  if (auto text = StringMember(n, "text")) return std::string(*text);
  std::string out = Str(n, "family");
  if (const JsonValue* given = Member(n, "given"); given && given->IsArray()) {
    std::string g;
    for (const auto& x : given->GetArray()) {
      if (x.IsString()) g += (g.empty() ? "" : " ") + std::string(AsStringView(x));
    }
    if (!g.empty()) out = out.empty() ? g : out + ", " + g;
  }
  return out;
}

std::string PhoneOf(const JsonValue& r) {
  const JsonValue* telecom = Member(r, "telecom");
  if (!telecom || !telecom->IsArray()) return "";
  for (const auto& t : telecom->GetArray()) {
    if (t.IsObject() && StringMember(t, "system") == std::optional<std::string_view>("phone")) return Str(t, "value");
  }
  return "";
}

}  // namespace

std::string CsvField(const std::string& v, bool text) {
  std::string s = v;
  if (text && !s.empty() && (s[0] == '=' || s[0] == '+' || s[0] == '-' || s[0] == '@' || s[0] == '\t' || s[0] == '\r')) {
    s = "'" + s;
  }
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string HtmlEscape(std::string_view v) {
  std::string out;
  for (char c : v) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::vector<CallListRow> CallList(FhirService& service, const std::string& base, const std::string& day,
                                  const std::string& owner) {
  auto today = DayOf(day);
  std::vector<CallListRow> rows;
  service.Write([&](WriteContext& ctx) {
    rows.clear();
    std::string codes;
    for (const char* c : kCallCodes) codes += (codes.empty() ? "" : ",") + PercentEncode(base + "/CodeSystem/fls-task|" + c);
    std::string query = "code=" + codes + "&status=requested,received,accepted,ready,in-progress,on-hold&due=le" + day;
    if (!owner.empty()) query += "&owner=" + PercentEncode(owner);
    for (const auto& id : ctx.Search("Task", query, 5000)) {
      auto t = ctx.store().ReadCurrent("Task", id);
      if (!t || t->deleted) continue;
      JsonDoc d = ParseJson(t->content);
      const JsonValue* restriction = Member(d, "restriction");
      const JsonValue* period = restriction && restriction->IsObject() ? Member(*restriction, "period") : nullptr;
      std::string due = period && period->IsObject() ? Str(*period, "end").substr(0, 10) : "";
      auto due_day = DayOf(due);
      if (!due_day || !today || *due_day > *today) continue;
      CallListRow r;
      r.due = due;
      r.overdue_days = static_cast<int>(*today - *due_day);
      r.task_id = id;
      r.priority = Str(d, "priority");
      r.description = Str(d, "description");
      if (const JsonValue* code = Member(d, "code"); code && code->IsObject()) {
        std::vector<const JsonValue*> codings;
        CollectPath(*code, "coding", codings);
        for (const JsonValue* c : codings) {
          if (StringMember(*c, "system") == std::optional<std::string_view>(base + "/CodeSystem/fls-task")) {
            r.code = Str(*c, "code");
            r.display = Str(*c, "display");
          }
        }
      }
      auto ref_id = [&](const char* element, const char* type) -> std::string {
        const JsonValue* v = Member(d, element);
        auto ref = v && v->IsObject() ? StringMember(*v, "reference") : std::nullopt;
        auto parsed = ref ? ParseReference(*ref) : std::nullopt;
        return parsed && parsed->type == std::optional<std::string>(type) ? parsed->id : "";
      };
      r.patient_id = ref_id("for", "Patient");
      r.case_id = ref_id("focus", "EpisodeOfCare");
      if (!r.patient_id.empty()) {
        if (auto p = ctx.store().ReadCurrent("Patient", r.patient_id); p && !p->deleted) {
          JsonDoc pd = ParseJson(p->content);
          r.name = NameOf(pd);
          r.birth_date = Str(pd, "birthDate");
          r.phone = PhoneOf(pd);
        }
      }
      // The phone the patient gave at enrolment comes first.
      if (!r.case_id.empty()) {
        if (auto e = ctx.store().ReadCurrent("EpisodeOfCare", r.case_id); e && !e->deleted) {
          JsonDoc ed = ParseJson(e->content);
          if (const JsonValue* ext = Member(ed, "extension"); ext && ext->IsArray()) {
            for (const auto& x : ext->GetArray()) {
              if (x.IsObject() && StringMember(x, "url") == std::optional<std::string_view>(base + "/StructureDefinition/contact-phone")) {
                if (auto phone = StringMember(x, "valueString")) r.phone = std::string(*phone);
              }
            }
          }
        }
      }
      rows.push_back(std::move(r));
    }
  });
  std::stable_sort(rows.begin(), rows.end(), [](const CallListRow& a, const CallListRow& b) {
    if (a.due != b.due) return a.due < b.due;
    if ((a.priority == "urgent") != (b.priority == "urgent")) return a.priority == "urgent";
    return a.name < b.name;
  });
  return rows;
}

std::string CallListCsv(const std::vector<CallListRow>& rows) {
  std::string out = "due,overdue_days,priority,task,task_id,patient_id,name,birth_date,phone,case_id,description\r\n";
  for (const auto& r : rows) {
    out += CsvField(r.due, false) + "," + std::to_string(r.overdue_days) + "," + CsvField(r.priority, false) + "," + CsvField(r.code, false) +
           "," + CsvField(r.task_id, false) + "," + CsvField(r.patient_id, false) + "," + CsvField(r.name, true) + "," +
           CsvField(r.birth_date, false) + "," + CsvField(r.phone, false) + "," + CsvField(r.case_id, false) + "," + CsvField(r.description, true) +
           "\r\n";
  }
  return out;
}

std::string CallListHtml(const std::vector<CallListRow>& rows, const std::string& day, const std::string& owner) {
  std::string out =
      "<!doctype html>\n<html lang=\"fr\"><head><meta charset=\"utf-8\"><title>Appels du " + HtmlEscape(day) +
      "</title><style>body{font-family:sans-serif;margin:1em}table{border-collapse:collapse;width:100%}"
      "th,td{border:1px solid #999;padding:4px 6px;text-align:left;vertical-align:top}th{background:#eee}"
      ".urgent{font-weight:bold}@media print{body{margin:0}}</style></head><body>\n<h1>Appels du " + HtmlEscape(day) +
      " <small lang=\"en\">(calls of " + HtmlEscape(day) + ")</small></h1>\n";
  if (!owner.empty()) out += "<p>" + HtmlEscape(owner) + "</p>\n";
  out += "<p>" + std::to_string(rows.size()) + " appel(s) / call(s)</p>\n<table><thead><tr><th>Échéance / due</th><th>Retard / late (days)"
         "</th><th>Tâche / task</th><th>Patient</th><th>Naissance / born</th><th>Téléphone / phone</th><th>Consigne / what to do"
         "</th><th>Fait / done</th></tr></thead><tbody>\n";
  for (const auto& r : rows) {
    out += "<tr" + std::string(r.priority == "urgent" ? " class=\"urgent\"" : "") + "><td>" + HtmlEscape(r.due) + "</td><td>" +
           std::to_string(r.overdue_days) + "</td><td>" + HtmlEscape(r.display.empty() ? r.code : r.display) + "</td><td>" +
           HtmlEscape(r.name) + "</td><td>" + HtmlEscape(r.birth_date) + "</td><td>" + HtmlEscape(r.phone) + "</td><td>" + HtmlEscape(r.description) +
           "</td><td>&#9744;</td></tr>\n";
  }
  out += "</tbody></table>\n</body></html>\n";
  return out;
}

}  // namespace fls::fhir
