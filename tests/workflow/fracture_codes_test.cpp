#include "workflow/fracture_codes.h"

#include <gtest/gtest.h>

#include "tests/support/source_files.h"

#include "workflow/case_finding.h"

namespace fls::workflow {
namespace {

const FractureCodeList& Codes() {
  static FractureCodeList list = FractureCodeList::Parse(test::ReadSourceFile("workflow/data/fracture-codes.json"));
  return list;
}

constexpr const char* kIcd10 = "http://hl7.org/fhir/sid/icd-10";
constexpr const char* kIcd10Cm = "http://hl7.org/fhir/sid/icd-10-cm";
constexpr const char* kSct = "http://snomed.info/sct";

// Every row of pathway.md section 1, and its exclusions.
TEST(FractureCodes, EverySiteOfThePathwayTable) {
  struct Row {
    const char* system;
    const char* code;
    Disposition disposition;
    const char* site;
    const char* grio;
  };
  const Row rows[] = {
      // hip S72.0-2, severe
      {kIcd10, "S72.0", Disposition::kFracture, "hip", "severe"},
      {kIcd10, "S72.1", Disposition::kFracture, "hip", "severe"},
      {kIcd10, "S72.2", Disposition::kFracture, "hip", "severe"},
      {kIcd10, "S72.00", Disposition::kFracture, "hip", "severe"},
      {kIcd10Cm, "S72.001A", Disposition::kFracture, "hip", "severe"},   // 7th character: initial encounter
      {kIcd10Cm, "S72.141D", Disposition::kFracture, "hip", "severe"},   // subsequent encounter
      {kIcd10Cm, "S72001A", Disposition::kFracture, "hip", "severe"},    // without the dot
      {kIcd10, "s72.0", Disposition::kFracture, "hip", "severe"},        // lower case
      // vertebra S22.0, S22.1, S32.0, M48.5, M80.- with the site in the 5th character
      {kIcd10, "S22.0", Disposition::kFracture, "vertebra", "severe"},
      {kIcd10, "S22.1", Disposition::kFracture, "vertebra", "severe"},
      {kIcd10, "S32.0", Disposition::kFracture, "vertebra", "severe"},
      {kIcd10Cm, "S32.010A", Disposition::kFracture, "vertebra", "severe"},
      {kIcd10, "M48.5", Disposition::kFracture, "vertebra", "severe"},
      {kIcd10Cm, "M48.50XA", Disposition::kFracture, "vertebra", "severe"},
      {kIcd10, "M80.08", Disposition::kFracture, "vertebra", "severe"},
      {kIcd10, "M80.58", Disposition::kFracture, "vertebra", "severe"},
      {kIcd10Cm, "M80.08XA", Disposition::kFracture, "vertebra", "severe"},
      {kIcd10Cm, "M80.051A", Disposition::kFracture, "hip", "severe"},
      {kIcd10Cm, "M80.031A", Disposition::kFracture, "distal-radius", "non-severe"},
      {kIcd10, "M80.0", Disposition::kFracture, "unspecified", "non-severe"},
      // pelvis S32.1, .3, .4, .5, .7, .8
      {kIcd10, "S32.1", Disposition::kFracture, "pelvis", "severe"},
      {kIcd10, "S32.3", Disposition::kFracture, "pelvis", "severe"},
      {kIcd10, "S32.4", Disposition::kFracture, "pelvis", "severe"},
      {kIcd10, "S32.5", Disposition::kFracture, "pelvis", "severe"},
      {kIcd10, "S32.7", Disposition::kFracture, "pelvis", "severe"},
      {kIcd10, "S32.8", Disposition::kFracture, "pelvis", "severe"},
      {kIcd10Cm, "S32.501A", Disposition::kFracture, "pelvis", "severe"},
      // proximal humerus, distal femur, proximal tibia: severe
      {kIcd10, "S42.2", Disposition::kFracture, "proximal-humerus", "severe"},
      {kIcd10Cm, "S42.201A", Disposition::kFracture, "proximal-humerus", "severe"},
      {kIcd10, "S72.4", Disposition::kFracture, "distal-femur", "severe"},
      {kIcd10, "S82.1", Disposition::kFracture, "proximal-tibia", "severe"},
      // ribs: severe when 3 or more at once
      {kIcd10, "S22.3", Disposition::kFracture, "ribs", "ribs"},
      {kIcd10, "S22.4", Disposition::kFracture, "ribs", "ribs"},
      // distal radius / wrist: non-severe
      {kIcd10, "S52.5", Disposition::kFracture, "distal-radius", "non-severe"},
      {kIcd10, "S52.6", Disposition::kFracture, "distal-radius", "non-severe"},
      {kIcd10Cm, "S52.501A", Disposition::kFracture, "distal-radius", "non-severe"},
      // other sites: non-severe
      {kIcd10, "S82.5", Disposition::kFracture, "ankle", "non-severe"},
      {kIcd10, "S82.6", Disposition::kFracture, "ankle", "non-severe"},
      {kIcd10, "S42.0", Disposition::kFracture, "clavicle", "non-severe"},
      {kIcd10, "S42.3", Disposition::kFracture, "humerus-shaft", "non-severe"},
      {kIcd10, "S52.2", Disposition::kFracture, "forearm", "non-severe"},
      {kIcd10, "S62.0", Disposition::kFracture, "wrist-hand", "non-severe"},  // scaphoid: not a finger
      {kIcd10, "S92.0", Disposition::kFracture, "foot", "non-severe"},
      // never fragility sites
      {kIcd10, "S02.0", Disposition::kExcludedSite, "", ""},
      {kIcd10Cm, "S02.5XXA", Disposition::kExcludedSite, "", ""},
      {kIcd10, "S12.0", Disposition::kExcludedSite, "", ""},
      {kIcd10, "S62.5", Disposition::kExcludedSite, "", ""},
      {kIcd10, "S62.6", Disposition::kExcludedSite, "", ""},
      {kIcd10Cm, "S62.610A", Disposition::kExcludedSite, "", ""},
      {kIcd10, "S62.7", Disposition::kExcludedSite, "", ""},
      {kIcd10, "S92.4", Disposition::kExcludedSite, "", ""},
      {kIcd10, "S92.5", Disposition::kExcludedSite, "", ""},
      // review: cancer-related pathological, stress, atypical
      {kIcd10, "C79.5", Disposition::kReview, "", ""},
      {kIcd10, "C79.51", Disposition::kReview, "", ""},
      {kIcd10, "C90.0", Disposition::kReview, "", ""},
      {kIcd10, "M84.5", Disposition::kReview, "", ""},
      {kIcd10Cm, "M84.50XA", Disposition::kReview, "", ""},
      {kIcd10, "M84.3", Disposition::kReview, "", ""},
      {kIcd10, "M84.7", Disposition::kReview, "", ""},
      // SNOMED CT, exact codes (what Synthea records carry)
      {kSct, "359817006", Disposition::kFracture, "hip", "severe"},
      {kSct, "5913000", Disposition::kFracture, "hip", "severe"},
      {kSct, "704330001", Disposition::kFracture, "femur", "severe"},
      {kSct, "33737001", Disposition::kFracture, "ribs", "ribs"},
      {kSct, "263102004", Disposition::kFracture, "distal-radius", "non-severe"},
      {kSct, "65966004", Disposition::kFracture, "distal-radius", "non-severe"},
      {kSct, "16114001", Disposition::kFracture, "ankle", "non-severe"},
      {kSct, "58150001", Disposition::kFracture, "clavicle", "non-severe"},
      {kSct, "443165006", Disposition::kFracture, "unspecified", "non-severe"},
      {kSct, "125605004", Disposition::kFracture, "unspecified", "non-severe"},
      // near misses: not fractures
      {kSct, "3591700", Disposition::kNotFracture, "", ""},     // a prefix of a code is not the code
      {kSct, "70704007", Disposition::kNotFracture, "", ""},    // sprain of wrist
      {kSct, "239872002", Disposition::kNotFracture, "", ""},   // osteoarthritis of hip
      {kIcd10, "S73.0", Disposition::kNotFracture, "", ""},     // dislocation of hip
      {kIcd10, "M81.0", Disposition::kNotFracture, "", ""},     // osteoporosis without fracture
      {"http://example.org/local", "S72.0", Disposition::kNotFracture, "", ""},  // unknown system
  };
  for (const auto& r : rows) {
    Classification k = Classify(Codes(), {{r.system, r.code}});
    EXPECT_EQ(k.disposition, r.disposition) << r.system << " " << r.code;
    if (r.disposition == Disposition::kFracture) {
      EXPECT_EQ(k.site, r.site) << r.code;
      EXPECT_EQ(k.grio, r.grio) << r.code;
    }
  }
}

TEST(FractureCodes, PrecedenceWithinOneCondition) {
  // A review code wins, then an excluded site, then a known site, then an unspecified one.
  EXPECT_EQ(Classify(Codes(), {{kIcd10, "S72.0"}, {kIcd10, "C79.5"}}).disposition, Disposition::kReview);
  EXPECT_EQ(Classify(Codes(), {{kIcd10, "S72.0"}, {kIcd10, "S02.0"}}).disposition, Disposition::kExcludedSite);
  auto k = Classify(Codes(), {{kSct, "443165006"}, {kIcd10, "S72.0"}});
  EXPECT_EQ(k.site, "hip");
}

TEST(FractureCodes, HighEnergyTraumaIsV01ToV99) {
  for (const char* code : {"V01", "V09.2", "V10", "V43.5", "V89.2", "V99", "V4352XA"}) {
    EXPECT_TRUE(IsHighEnergy(Codes(), {{kIcd10, code}})) << code;
  }
  for (const char* code : {"V00", "V00.1", "W01", "W19", "X59"}) {
    EXPECT_FALSE(IsHighEnergy(Codes(), {{kIcd10, code}})) << code;
  }
}

TEST(FractureCodes, MalformedListsAreRefusedWithTheReason) {
  const char* bad[] = {
      "not json",
      R"({"entries":[]})",
      R"({"systems":{"icd-10":["x"]}})",
      R"({"systems":{"icd-10":["x"]},"entries":[{"system":"nope","code":"S72","kind":"fracture","site":"hip","grio":"severe"}]})",
      R"({"systems":{"icd-10":["x"]},"entries":[{"system":"icd-10","code":"S72","kind":"broken"}]})",
      R"({"systems":{"icd-10":["x"]},"entries":[{"system":"icd-10","code":"S72","kind":"fracture","site":"hip","grio":"bad"}]})",
      R"({"systems":{"icd-10":["x"]},"entries":[{"system":"icd-10","kind":"fracture","site":"hip","grio":"severe"}]})",
  };
  for (const char* text : bad) EXPECT_THROW(FractureCodeList::Parse(text), std::invalid_argument) << text;
  auto ok = FractureCodeList::Parse(
      R"({"systems":{"local":["http://example.org/cs"]},"entries":[{"system":"local","code":"HIP","match":"exact","kind":"fracture","site":"hip","grio":"severe"}]})");
  EXPECT_EQ(Classify(ok, {{"http://example.org/cs", "HIP"}}).site, "hip") << "a clinician can add a local code system";
}

}  // namespace
}  // namespace fls::workflow
