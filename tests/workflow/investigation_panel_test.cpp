#include "workflow/investigation_panel.h"

#include <gtest/gtest.h>

#include <set>
#include <stdexcept>

#include "tests/support/source_files.h"

namespace fls::workflow {
namespace {

const InvestigationPanel& Panel() {
  static const InvestigationPanel panel =
      InvestigationPanel::Parse(test::ReadSourceFile("workflow/data/investigation-panel.json"));
  return panel;
}

TEST(InvestigationPanel, TheShippedFileHoldsExactlyTheItemsOfTheContract) {
  std::set<std::string> codes;
  for (const auto& i : Panel().items()) {
    codes.insert(i.code);
    EXPECT_FALSE(i.source.empty()) << i.code << ": every line says where it comes from";
    EXPECT_FALSE(i.results.empty()) << i.code;
  }
  EXPECT_EQ(codes,
            (std::set<std::string>{"calcium-corrected", "phosphate", "cbc", "crp", "creatinine",
                                   "renal-clearance", "ctx", "alkaline-phosphatase", "tsh",
                                   "protein-electrophoresis", "ferritin", "transferrin-saturation",
                                   "vitamin-d", "dxa", "spine-imaging", "falls-assessment"}))
      << "operations.md section 2";
  EXPECT_EQ(Panel().Item("spine-imaging")->when, "spine-imaging-criteria");
  EXPECT_EQ(Panel().Item("dxa")->order.code, "312681000");
  for (const auto& f : Panel().flags()) EXPECT_FALSE(f.source.empty()) << f.code;
}

TEST(InvestigationPanel, DocsListEveryItemAndFlag) {
  std::string doc = test::ReadSourceFile("docs/pathway.md");
  for (const auto& i : Panel().items())
    EXPECT_NE(doc.find("| `" + i.code + "` |"), std::string::npos) << i.code;
  for (const auto& f : Panel().flags())
    EXPECT_NE(doc.find("| `" + f.code + "` |"), std::string::npos) << f.code;
}

TEST(InvestigationPanel, ResultsFindTheirItemWhateverUnitVariantTheLabCodes) {
  struct Row {
    const char* system;
    const char* code;
    const char* resource;
    const char* item;  // nullptr: no item
  };
  const Row rows[] = {
      {"http://loinc.org", "29265-6", "Observation", "calcium-corrected"},
      {"http://loinc.org", "46099-8", "Observation", "calcium-corrected"},
      {"http://loinc.org", "14635-7", "Observation", "vitamin-d"},
      {"http://loinc.org", "1989-3", "Observation", "vitamin-d"},
      {"http://loinc.org", "14682-9", "Observation", "creatinine"},
      {"http://loinc.org", "98979-8", "Observation", "renal-clearance"},
      {"http://loinc.org", "38265-5", "Observation", "dxa"},  // Synthea's generic DXA T-score
      {"http://loinc.org", "80947-5", "Observation", "dxa"},
      {"http://snomed.info/sct", "312681000", "Procedure", "dxa"},
      {"http://snomed.info/sct", "312681000", "Observation",
       nullptr},                                               // a procedure code, not a result
      {"http://loinc.org", "2345-7", "Observation", nullptr},  // glucose: not on the panel
      {"http://snomed.info/sct", "29265-6", "Observation",
       nullptr},  // the right code in the wrong system
  };
  for (const auto& row : rows) {
    const PanelItem* item = Panel().ItemForResult(row.system, row.code, row.resource);
    if (!row.item) {
      EXPECT_EQ(item, nullptr) << row.code;
    } else {
      ASSERT_NE(item, nullptr) << row.code;
      EXPECT_EQ(item->code, row.item) << row.code;
    }
  }
}

// Each threshold at, just past and just short of its value, in every unit the labs report and in
// prefix variants converted by UCUM.
TEST(InvestigationPanel, FlagsFireStrictlyPastTheirThresholdInEveryUnit) {
  struct Row {
    const char* item;
    double value;
    const char* unit;
    std::set<std::string> flags;
  };
  const Row rows[] = {
      {"vitamin-d", 9.99, "ng/mL", {"vitamin-d-severe-deficiency", "vitamin-d-insufficiency"}},
      {"vitamin-d", 10, "ng/mL", {"vitamin-d-insufficiency"}},
      {"vitamin-d", 29.9, "ng/mL", {"vitamin-d-insufficiency"}},
      {"vitamin-d", 30, "ng/mL", {}},
      {"vitamin-d", 24.9, "nmol/L", {"vitamin-d-severe-deficiency", "vitamin-d-insufficiency"}},
      {"vitamin-d", 25, "nmol/L", {"vitamin-d-insufficiency"}},
      {"vitamin-d",
       74.9,
       "nmol/L",
       {"vitamin-d-insufficiency"}},  // the nmol/L threshold itself: no rounding
      {"vitamin-d", 75, "nmol/L", {}},
      {"vitamin-d", 0.0299, "ug/mL", {"vitamin-d-insufficiency"}},
      {"vitamin-d", 29.9, "ug/L", {"vitamin-d-insufficiency"}},
      {"calcium-corrected", 2.14, "mmol/L", {"hypocalcaemia"}},
      {"calcium-corrected", 2.15, "mmol/L", {}},
      {"calcium-corrected", 2150, "umol/L", {}},
      {"calcium-corrected", 2140, "umol/L", {"hypocalcaemia"}},
      {"calcium-corrected", 2.60, "mmol/L", {}},
      {"calcium-corrected", 2.61, "mmol/L", {"hypercalcaemia"}},
      {"calcium-corrected", 8.5, "mg/dL", {"hypocalcaemia"}},
      {"calcium-corrected", 85, "mg/L", {"hypocalcaemia"}},
      {"calcium-corrected", 10.5, "mg/dL", {"hypercalcaemia"}},
      {"renal-clearance", 34.9, "mL/min", {"renal-impairment"}},
      {"renal-clearance", 35, "mL/min", {}},
      {"renal-clearance", 34, "mL/min/{1.73_m2}", {"renal-impairment"}},
      {"renal-clearance", 0.5, "mL/s", {"renal-impairment"}},
      {"crp", 10, "mg/L", {}},
      {"crp", 10.1, "mg/L", {"inflammation"}},
      {"crp", 1.2, "mg/dL", {"inflammation"}},
      {"tsh", 0.39, "m[IU]/L", {"thyroid"}},
      {"tsh", 0.4, "mIU/L", {}},
      {"tsh", 4.1, "u[IU]/mL", {"thyroid"}},
      {"transferrin-saturation", 45, "%", {}},
      {"transferrin-saturation", 46, "%", {"iron-overload-suspected"}},
      {"ferritin", 2000, "ug/L", {}},  // no threshold on the panel for ferritin
  };
  for (const auto& row : rows) {
    FlagCheck c = Panel().CheckValue(row.item, row.value, row.unit);
    std::set<std::string> got;
    for (const auto& h : c.hits) got.insert(h.rule->code);
    EXPECT_EQ(got, row.flags) << row.item << " " << row.value << " " << row.unit;
    EXPECT_FALSE(c.unit_not_comparable) << row.item << " " << row.unit;
  }
}

TEST(InvestigationPanel, AUnitThatCannotBeComparedRaisesNothingAndSaysSo) {
  for (const char* unit : {"mEq/L", "furlong", ""}) {
    FlagCheck c = Panel().CheckValue("calcium-corrected", 1.0, unit);
    EXPECT_TRUE(c.hits.empty()) << unit << ": never a wrong flag";
    EXPECT_TRUE(c.unit_not_comparable) << unit;
  }
  FlagCheck vit = Panel().CheckValue("vitamin-d", 5, "mmol/L");  // mmol/L converts to nmol/L
  EXPECT_EQ(vit.hits.size(), 0u) << "5 mmol/L is 5,000,000 nmol/L";
}

TEST(InvestigationPanel, TheHitSaysWhichThresholdFiredInItsOwnUnit) {
  FlagCheck c = Panel().CheckValue("calcium-corrected", 2140, "umol/L");
  ASSERT_EQ(c.hits.size(), 1u);
  EXPECT_EQ(c.hits[0].threshold.unit, "mmol/L");
  EXPECT_DOUBLE_EQ(c.hits[0].threshold.value, 2.15);
  EXPECT_NEAR(c.hits[0].value, 2.14, 1e-9);
}

TEST(InvestigationPanel, AnAbnormalElectrophoresisRaisesTheMonoclonalPeakFlag) {
  EXPECT_EQ(Panel().CheckInterpretation("protein-electrophoresis", true).hits.size(), 1u);
  EXPECT_TRUE(Panel().CheckInterpretation("protein-electrophoresis", false).hits.empty());
  EXPECT_TRUE(Panel().CheckInterpretation("crp", true).hits.empty());
}

TEST(InvestigationPanel, MalformedFilesAreRefusedWithTheEntry) {
  const char* bad[] = {
      "[]",
      R"({"version":"1","items":[]})",
      R"({"version":"1","items":[{"code":"x","display":"X","kind":"blood","order":{"system":"s","code":"c"},"results":[{"system":"s","code":"c"}],"source":"s"}]})",
      R"({"version":"1","items":[{"code":"x","display":"X","kind":"lab","order":{"system":"s","code":"c"},"results":[],"source":"s"}]})",
      R"({"version":"1","items":[{"code":"x","display":"X","kind":"lab","order":{"system":"s","code":"c"},"results":[{"system":"s","code":"c"}],"source":"s"}],
          "flags":[{"code":"f","display":"F","item":"nope","comparator":"<","thresholds":[{"value":1,"unit":"mg"}],"source":"s"}]})",
      R"({"version":"1","items":[{"code":"x","display":"X","kind":"lab","order":{"system":"s","code":"c"},"results":[{"system":"s","code":"c"}],"source":"s"}],
          "flags":[{"code":"f","display":"F","item":"x","comparator":"<=","thresholds":[{"value":1,"unit":"mg"}],"source":"s"}]})",
      R"({"version":"1","items":[{"code":"x","display":"X","kind":"lab","order":{"system":"s","code":"c"},"results":[{"system":"s","code":"c"}],"source":"s"}],
          "flags":[{"code":"f","display":"F","item":"x","comparator":"<","thresholds":[{"value":1,"unit":"furlong"}],"source":"s"}]})",
      R"({"version":"1","items":[{"code":"x","display":"X","kind":"lab","order":{"system":"s","code":"c"},"results":[{"system":"s","code":"c"}]}]})",
  };
  for (const char* text : bad)
    EXPECT_THROW(InvestigationPanel::Parse(text), std::invalid_argument) << text;
}

}  // namespace
}  // namespace fls::workflow
