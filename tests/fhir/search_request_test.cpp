#include "fhir/search_request.h"

#include <gtest/gtest.h>

#include "tests/support/fhir_fixture.h"

namespace fls::fhir {
namespace {

struct Fixture {
  SearchParser parser{test::TestRegistry(), SearchLimits{20, 1000}};
};

Fixture& F() {
  static Fixture f;
  return f;
}

SearchRequest Parse(const std::string& type, const std::string& query, bool lenient = false) {
  return F().parser.Parse(type, ParseQueryString(query), lenient);
}

using Table = db::SearchPredicate::Table;

TEST(SearchRequest, TokenForms) {
  auto r = Parse("Patient", "identifier=urn:oid:1.2|123,|456,789,urn:x|");
  ASSERT_EQ(r.spec.where.size(), 1u);
  const auto& alts = r.spec.where[0].any_of;
  ASSERT_EQ(alts.size(), 4u);
  EXPECT_TRUE(alts[0].match_system);
  EXPECT_EQ(alts[0].system, "urn:oid:1.2");
  EXPECT_EQ(alts[0].code, "123");
  EXPECT_TRUE(alts[1].match_system);
  EXPECT_FALSE(alts[1].system) << "|code means no system";
  EXPECT_FALSE(alts[2].match_system);
  EXPECT_TRUE(alts[3].system_only);
  EXPECT_EQ(Parse("Patient", "gender:not=male").spec.where[0].negate, true);
  EXPECT_EQ(Parse("Patient", "_id=a,b").spec.where[0].table, Table::kId);
}

TEST(SearchRequest, DatePrefixesAndPartialDates) {
  struct Row {
    const char* q;
    const char* prefix;
    const char* lo;
    const char* hi;
  };
  const Row rows[] = {
      {"birthdate=1950", "eq", "1950-01-01T00:00:00.000000Z", "1951-01-01T00:00:00.000000Z"},
      {"birthdate=ge1950-03", "ge", "1950-03-01T00:00:00.000000Z", "1950-04-01T00:00:00.000000Z"},
      {"birthdate=lt1950-03-04", "lt", "1950-03-04T00:00:00.000000Z", "1950-03-05T00:00:00.000000Z"},
      {"birthdate=ne1950-03-04", "ne", "1950-03-04T00:00:00.000000Z", "1950-03-05T00:00:00.000000Z"},
      {"birthdate=sa1950", "sa", "1950-01-01T00:00:00.000000Z", "1951-01-01T00:00:00.000000Z"},
      {"birthdate=eb1950", "eb", "1950-01-01T00:00:00.000000Z", "1951-01-01T00:00:00.000000Z"},
      {"birthdate=le2024-03-01T10%3A00%3A00%2B01%3A00", "le", "2024-03-01T09:00:00.000000Z", "2024-03-01T09:00:01.000000Z"},
  };
  for (const auto& r : rows) {
    auto req = Parse("Patient", r.q);
    const auto& a = req.spec.where.at(0).any_of.at(0);
    EXPECT_EQ(a.prefix, r.prefix) << r.q;
    EXPECT_EQ(a.lo, r.lo) << r.q;
    EXPECT_EQ(a.hi, r.hi) << r.q;
  }
}

TEST(SearchRequest, StringModifiersNormalise) {
  auto plain = Parse("Patient", "name=H%C3%A9l%C3%A8ne");
  EXPECT_EQ(plain.spec.where[0].any_of[0].text, "helene");
  auto exact = Parse("Patient", "family:exact=Dupr%C3%A9");
  EXPECT_EQ(exact.spec.where[0].any_of[0].text, "Dupré");
  EXPECT_EQ(exact.spec.where[0].any_of[0].string_mode, db::SearchPredicate::Alternative::StringMode::kExact);
  auto contains = Parse("Patient", "family:contains=EFEV");
  EXPECT_EQ(contains.spec.where[0].any_of[0].string_mode, db::SearchPredicate::Alternative::StringMode::kContains);
}

TEST(SearchRequest, ReferencesQuantitiesSortCountTotal) {
  auto ref = Parse("Encounter", "patient=123&subject:Patient=456&service-provider=http://x/fhir/Organization/9");
  EXPECT_EQ(ref.spec.where[0].any_of[0].target_type, "Patient") << "the parameter has one target type";
  EXPECT_EQ(ref.spec.where[1].any_of[0].target_type, "Patient");
  EXPECT_EQ(ref.spec.where[2].any_of[0].target_id, "http://x/fhir/Organization/9");
  auto q = Parse("Observation", "value-quantity=ge5.40|http://unitsofmeasure.org|mmol/L");
  const auto& qa = q.spec.where[0].any_of[0];
  EXPECT_EQ(qa.prefix, "ge");
  EXPECT_EQ(qa.lo, "5.40");
  EXPECT_EQ(qa.hi, "0.005");
  EXPECT_EQ(qa.code, "mmol/L");
  auto s = Parse("Task", "_sort=-period,_lastUpdated&_count=5000&_total=accurate");
  ASSERT_EQ(s.spec.sort.size(), 2u);
  EXPECT_TRUE(s.spec.sort[0].descending);
  EXPECT_EQ(s.spec.sort[0].table, Table::kDate);
  EXPECT_EQ(s.spec.sort[1].table, Table::kLastUpdated);
  EXPECT_EQ(s.count, 1000) << "capped at the maximum";
  EXPECT_EQ(s.total, SearchRequest::Total::kAccurate);
  EXPECT_EQ(Parse("Patient", "").count, 20);
}

TEST(SearchRequest, SortKeysAreCappedAndTheRefusalSaysTheLimit) {
  SearchParser three(test::TestRegistry(), SearchLimits{20, 1000, 3, 1000});
  auto sort = [&](const std::string& query) { return three.Parse("Patient", ParseQueryString(query), false); };
  struct Row {
    std::string query;
    bool ok;
  };
  const Row rows[] = {
      {"_sort=birthdate", true},
      {"_sort=birthdate,-_lastUpdated,_id", true},                 // at the limit
      {"_sort=birthdate&_sort=-_lastUpdated&_sort=_id", true},     // counted across _sort parameters
      {"_sort=birthdate,-_lastUpdated,_id,family", false},         // one over
      {"_sort=birthdate,_id&_sort=family,gender", false},
      {"_sort=" + [] {
         std::string keys = "_id";
         for (int i = 0; i < 2000; ++i) keys += ",_id";
         return keys;
       }(), false},
  };
  for (const auto& r : rows) {
    if (r.ok) {
      EXPECT_NO_THROW(sort(r.query)) << r.query;
      continue;
    }
    try {
      sort(r.query);
      ADD_FAILURE() << r.query << " was accepted";
    } catch (const FhirError& e) {
      EXPECT_EQ(e.code(), ErrorCode::kBadRequest) << r.query;
      EXPECT_NE(e.issues()[0].diagnostics.find("at most 3"), std::string::npos) << e.issues()[0].diagnostics;
      EXPECT_EQ(e.issues()[0].expression, "_sort");
    }
  }
  // The default limit is 8.
  EXPECT_NO_THROW(Parse("Patient", "_sort=_id,_lastUpdated,birthdate,family,given,gender,identifier,name"));
  EXPECT_THROW(Parse("Patient", "_sort=_id,_lastUpdated,birthdate,family,given,gender,identifier,name,address"),
               FhirError);
}

TEST(SearchRequest, IncludesNameReferenceParameters) {
  auto r = Parse("Task", "_include=Task:patient&_include=Task:focus:EpisodeOfCare&_revinclude=Communication:based-on");
  ASSERT_EQ(r.includes.size(), 2u);
  EXPECT_EQ(r.includes[1].target_type, "EpisodeOfCare");
  ASSERT_EQ(r.revincludes.size(), 1u);
  EXPECT_EQ(r.revincludes[0].source_type, "Communication");
  for (const char* bad : {"_include=Task", "_include=Task:status", "_include=Patient:organization",
                          "_include=Task:nope", "_revinclude=Task:focus:Patient"}) {
    EXPECT_THROW(Parse("Task", bad), FhirError) << bad;
  }
}

TEST(SearchRequest, CanonicalQueryIsOrderIndependent) {
  EXPECT_EQ(Parse("Patient", "name=a&identifier=x|1&_count=3").canonical_query,
            Parse("Patient", "identifier=x%7C1&name=a").canonical_query);
}

TEST(SearchRequest, OneLevelOfChaining) {
  auto r = Parse("Encounter", "subject:Patient.identifier=urn:x|1&patient.name:exact=Dupré");
  ASSERT_EQ(r.spec.where.size(), 2u);
  const auto& a = r.spec.where[0];
  EXPECT_EQ(a.table, Table::kReference);
  EXPECT_EQ(a.param, "subject");
  EXPECT_EQ(a.chain_type, "Patient");
  ASSERT_TRUE(a.chain);
  EXPECT_EQ(a.chain->table, Table::kToken);
  EXPECT_EQ(a.chain->param, "identifier");
  EXPECT_EQ(a.chain->any_of[0].code, "1");
  const auto& b = r.spec.where[1];
  EXPECT_EQ(b.chain_type, "Patient") << "patient has one target type";
  EXPECT_EQ(b.chain->any_of[0].string_mode, db::SearchPredicate::Alternative::StringMode::kExact);
  for (const char* bad : {"subject.name=x", "patient.name.family=x", "patient.nonsense=x", "status.name=x",
                          "patient:Practitioner.name=x", "patient:Nonsense.name=x", "patient._id=1",
                          "patient.name:missing=true", "patient.gender:not=male", "patient.birthdate=xx"}) {
    EXPECT_THROW(Parse("Encounter", bad), FhirError) << bad;
  }
  EXPECT_EQ(Parse("Encounter", "nonsense.name=x", true).warnings.size(), 1u) << "lenient: ignored and named";
}

TEST(SearchRequest, BadParametersAre400AndLenientIgnoresUnknownOnes) {
  for (const char* bad : {"nonsense=1", "birthdate=19500304", "birthdate=xx1950", "_count=abc", "_count=-1",
                          "_sort=nonsense", "_sort=general-practitioner", "name:fuzzy=x", "gender:text=x",
                          "general-practitioner.name=x", "_total=some", "_getpages=../../etc",
                          "identifier=a|b|c", "name=", "_id=bad_id"}) {
    EXPECT_THROW(Parse("Patient", bad), FhirError) << bad;
  }
  // References: an empty or malformed relative one, an unknown type or one the parameter never
  // targets are refused, never answered with an empty page.
  for (const char* bad : {"subject=Patient/", "subject=Patient/a/b", "subject=/x", "subject:Nonsense=1",
                          "patient:Practitioner=1", "subject:Patient=Practitioner/1", "subject:patient=1"}) {
    EXPECT_THROW(Parse("Encounter", bad), FhirError) << bad;
  }
  for (const char* good : {"subject=Patient/1", "subject=1", "subject:Group=1", "subject=urn:uuid:0a1b",
                           "subject=https://other.example/fhir/Patient/1", "patient:Patient=1"}) {
    EXPECT_NO_THROW(Parse("Encounter", good)) << good;
  }
  EXPECT_THROW(Parse("Observation", "value-quantity=abc"), FhirError);
  EXPECT_THROW(ParseQueryString("name=%ZZ"), FhirError);
  EXPECT_THROW(ParseQueryString("name=%C3%28"), FhirError);
  auto lenient = Parse("Patient", "nonsense=1&name=x", true);
  EXPECT_EQ(lenient.spec.where.size(), 1u);
  EXPECT_EQ(lenient.warnings.size(), 1u);
}

}  // namespace
}  // namespace fls::fhir
