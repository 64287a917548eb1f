#pragma once
// GET /$call-list?date=YYYY-MM-DD[&owner=Organization/x|Practitioner/y] (the follow-up
// programme, docs/follow-up.md): the calls a nurse makes that day, overdue first then due that
// day, with the patient's name, birth date and phone, as CSV (for phone platforms that read
// files) or a printable HTML page. The same list is a Task search for clients that speak FHIR.
// Thread-safe: stateless functions.

#include <string>
#include <string_view>
#include <vector>

#include "fhir/fhir_service.h"

namespace fls::fhir {

struct CallListRow {
  std::string due;  // YYYY-MM-DD
  int overdue_days = 0;
  std::string task_id, code, display, priority, description;
  std::string patient_id, name, birth_date, phone;
  std::string case_id;
};

// The open call Tasks due on or before `day` (YYYY-MM-DD), of `owner` when given, sorted by due
// date (overdue first), urgent before routine on a day. `canonical_base` names the Task codes.
std::vector<CallListRow> CallList(FhirService& service, const std::string& canonical_base, const std::string& day,
                                  const std::string& owner);

// A CSV field (RFC 4180): quoted when needed; free text (`free_text`) that a spreadsheet would
// run as a formula is prefixed with an apostrophe (CSV injection).
std::string CsvField(const std::string& value, bool free_text);
// Text for an HTML page: & < > " ' escaped.
std::string HtmlEscape(std::string_view text);

std::string CallListCsv(const std::vector<CallListRow>& rows);
std::string CallListHtml(const std::vector<CallListRow>& rows, const std::string& day, const std::string& owner);

}  // namespace fls::fhir
