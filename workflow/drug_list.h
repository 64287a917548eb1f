#pragma once
// The osteoporosis drugs (workflow/data/osteoporosis-drugs.json; pathway.md section 4): which ATC
// codes the pathway accepts as a treatment, matched by prefix (the longest wins), each with the
// class the follow-up schedules use; and the RxNorm or local codes mapped to ATC. Data, not
// code. Pure; immutable after Parse; safe across threads.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fls::workflow {

struct DrugEntry {
  std::string atc;  // a substance or a class prefix
  std::string display;
  std::string drug_class;  // oral-bisphosphonate, zoledronic-acid, denosumab, teriparatide...
  std::string source;
};

struct DrugMapping {
  std::string system, code, atc, display, source;
};

class DrugList {
 public:
  // Throws std::invalid_argument naming the entry on a malformed file.
  static DrugList Parse(std::string_view json_text);

  const std::string& atc_system() const { return atc_system_; }
  const std::vector<DrugEntry>& drugs() const { return drugs_; }
  const std::vector<DrugMapping>& mappings() const { return mappings_; }

  // The entry an ATC code falls under (the longest matching prefix), or null.
  const DrugEntry* Find(std::string_view atc) const;
  bool IsOsteoporosisDrug(std::string_view atc) const { return Find(atc) != nullptr; }
  // A coding's ATC code: the code itself in the ATC system, else the mapped one; nullopt when the
  // coding is neither an osteoporosis drug nor mapped to one.
  std::optional<std::string> AtcOf(std::string_view system, std::string_view code) const;

 private:
  std::string atc_system_;
  std::vector<DrugEntry> drugs_;
  std::vector<DrugMapping> mappings_;
};

// For workflow::Apply's DrugCheck: `context` is a const DrugList*.
bool IsOsteoporosisDrugCheck(std::string_view atc, const void* context);

}  // namespace fls::workflow
