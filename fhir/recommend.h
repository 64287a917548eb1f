#pragma once
// GET /EpisodeOfCare/{id}/$recommend (operations.md section 3): the case's facts read from the
// record (fractures, the patient, T-scores, the case's Flags, the falls assessment, climacteric
// symptoms) and handed to the pure GRIO rule engine (workflow/recommendation.h), its answer
// written as Parameters. The same facts tell which recommendation a decide-treatment followed.
// Thread-safe: stateless functions over the caller's transaction.

#include <string>

#include "db/case_store.h"
#include "fhir/fhir_service.h"
#include "workflow/recommendation.h"

namespace fls::fhir {

class PathwayEngine;

// The recommendation for a case, from what the transaction sees.
workflow::Recommendation RecommendFor(const PathwayEngine& engine, WriteContext& ctx, db::CaseStore& cases,
                                      const db::CaseRow& row);

// What a decision says about the recommendation: "follows grio-1 (M05BA08 zoledronic acid, grade
// A)", "departs from the recommendation (first recommended: ...)", or that none was recommended.
std::string DecisionAgainstRecommendation(const PathwayEngine& engine, const workflow::Recommendation& r,
                                          const std::string& decided_atc);

// The operation: 404 when the id is not an FLS case.
Outcome Recommend(const PathwayEngine& engine, FhirService& service, const std::string& episode_id);

}  // namespace fls::fhir
