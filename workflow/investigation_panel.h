#pragma once
// The investigation panel (workflow/data/investigation-panel.json; operations.md section 2): the
// items ordered on entering `investigating`, the result codes that close each, and the thresholds
// that raise a Flag. Data, not code: a clinician edits the file and restarts the server. Pure;
// immutable after Parse; safe across threads.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fls::workflow {

struct PanelCoding {
  std::string system;
  std::string code;
  std::string resource = "Observation";  // what carries it: Observation, or Procedure
};

struct PanelItem {
  std::string code;  // the item code in {cb}/CodeSystem/fls-investigation (the API)
  std::string display;
  std::string kind;  // lab | imaging | assessment
  bool required = true;
  std::string when;  // empty: always ordered; "spine-imaging-criteria": pathway.md section 3
  PanelCoding order;
  std::vector<PanelCoding> results;
  std::string source;
};

struct FlagThreshold {
  double value = 0;
  std::string unit;  // UCUM
};

struct FlagRule {
  std::string code;  // in {cb}/CodeSystem/fls-flag
  std::string display;
  std::string item;
  char comparator = '<';                  // '<' or '>': strictly below or above
  std::vector<FlagThreshold> thresholds;  // one per unit the labs report
  bool on_abnormal_interpretation = false;
  std::string source;
};

// A flag a result raised, with the threshold that fired (in its own unit) and the value in it.
struct FlagHit {
  const FlagRule* rule = nullptr;
  FlagThreshold threshold;
  double value = 0;  // the result in the threshold's unit
};

struct FlagCheck {
  std::vector<FlagHit> hits;
  // A rule applied to the item but the result's unit could not be compared with any of its
  // thresholds: nothing is raised (never a wrong flag), and the caller logs it.
  bool unit_not_comparable = false;
};

// When spine imaging is ordered (pathway.md section 3): a prior vertebral fracture on record, an
// active prescription of one of the ATC classes, or a recorded height loss.
struct SpineImagingCriteria {
  std::vector<std::string> fracture_sites;           // case finding's site codes ("vertebra")
  std::vector<std::string> medication_atc_prefixes;  // corticosteroids H02AB, aromatase inhibitors L02BG
  std::vector<PanelCoding> height_loss;              // Observation or Condition codes
  std::string source;
};

class InvestigationPanel {
 public:
  // Throws std::invalid_argument naming the problem (and the entry) on a malformed file: an
  // unknown field value, a flag on an unknown item, a threshold unit UCUM does not read.
  static InvestigationPanel Parse(std::string_view json_text);

  const std::vector<PanelItem>& items() const { return items_; }
  const std::vector<FlagRule>& flags() const { return flags_; }
  const std::string& version() const { return version_; }
  const SpineImagingCriteria& spine_imaging() const { return spine_imaging_; }

  const PanelItem* Item(std::string_view code) const;
  // The item a result closes: one of its result codes, carried by that kind of resource.
  const PanelItem* ItemForResult(std::string_view system, std::string_view code,
                                 std::string_view resource_type = "Observation") const;

  // The flags a numeric result of `item` raises. `unit` is the result's UCUM code.
  FlagCheck CheckValue(std::string_view item, double value, std::string_view unit) const;
  // The flags an interpretation raises (a result whose interpretation is abnormal).
  FlagCheck CheckInterpretation(std::string_view item, bool abnormal) const;

 private:
  std::vector<PanelItem> items_;
  std::vector<FlagRule> flags_;
  std::string version_;
  SpineImagingCriteria spine_imaging_;
};

}  // namespace fls::workflow
