#pragma once
// The fracture code list (workflow/data/fracture-codes.json): which codes mean a fracture, at
// which site and GRIO 2017 class, which sites are never fragility sites, which codes send the
// case to the coordinator for review, and which mean high-energy trauma. Data, not code: a
// clinician edits the file and restarts the server. Pure; immutable after Parse; safe across
// threads.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fls::workflow {

enum class CodeKind { kFracture, kExcludedSite, kReview, kHighEnergyTrauma };

const char* CodeKindName(CodeKind kind);

struct CodeEntry {
  std::string system_alias;  // a key of "systems" (icd-10, sct)
  std::string code;          // as written in the file (S72.0, M80.?8)
  std::string pattern;       // normalised: ICD dots removed, upper case; '?' matches one character
  bool exact = false;        // exact match instead of prefix
  CodeKind kind = CodeKind::kFracture;
  std::string site;          // fractures: hip, vertebra, ... unspecified
  std::string grio;          // fractures: severe, non-severe, ribs (severe when 3 or more at once)
  std::string display;
  std::string reason;
};

struct Coding {
  std::string system;
  std::string code;
};

class FractureCodeList {
 public:
  // Throws std::invalid_argument with the problem (and the entry's index) on a malformed file.
  static FractureCodeList Parse(std::string_view json_text);

  // The entry for one coding: exact entries first, then the longest matching prefix. nullopt
  // when the system is not listed or no entry matches.
  const CodeEntry* Lookup(const Coding& coding) const;

  const std::vector<CodeEntry>& entries() const { return entries_; }
  // System URLs of an alias ("icd-10" -> the ICD-10 and ICD-10-CM URLs).
  std::vector<std::string> SystemUrls(const std::string& alias) const;
  int same_fracture_window_days() const { return same_fracture_window_days_; }
  const std::string& version() const { return version_; }

 private:
  std::vector<CodeEntry> entries_;
  std::vector<std::pair<std::string, std::string>> systems_;  // (url, alias)
  int same_fracture_window_days_ = 90;
  std::string version_;
};

// "S72.001A" -> "S72001A": the form patterns are matched against.
std::string NormalizeCode(std::string_view code);

}  // namespace fls::workflow
