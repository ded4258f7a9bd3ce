#include "search/search_params.h"

#include <set>
#include <string>
#include <tuple>

#include <gtest/gtest.h>

#include "fhir/resource_types.h"

namespace phivault::search {
namespace {

void ExpectParam(std::string_view type, std::string_view code, ParamType want,
                 std::string_view expression = {}) {
  const SearchParamDef* d = FindSearchParam(type, code);
  ASSERT_NE(d, nullptr) << type << "." << code;
  EXPECT_EQ(d->type, want) << type << "." << code;
  if (!expression.empty()) {
    EXPECT_EQ(d->expression, expression) << type << "." << code;
  }
}

TEST(SearchParams, PatientAndObservation) {
  ExpectParam("Patient", "family", ParamType::kString, "Patient.name.family");
  ExpectParam("Patient", "birthdate", ParamType::kDate, "Patient.birthDate");
  ExpectParam("Patient", "identifier", ParamType::kToken, "Patient.identifier");
  ExpectParam("Patient", "phone", ParamType::kToken, "Patient.telecom.where(system='phone')");
  ExpectParam("Observation", "code", ParamType::kToken, "Observation.code");
  ExpectParam("Observation", "date", ParamType::kDate, "Observation.effective");
  ExpectParam("Observation", "subject", ParamType::kReference, "Observation.subject");
  ExpectParam("Observation", "value-quantity", ParamType::kQuantity);
  ExpectParam("RiskAssessment", "probability", ParamType::kNumber);
  ExpectParam("ValueSet", "url", ParamType::kUri, "ValueSet.url");
  // Resource-level parameters apply to every type.
  ExpectParam("Patient", "_id", ParamType::kToken, "Resource.id");
  ExpectParam("Observation", "_lastUpdated", ParamType::kDate, "Resource.meta.lastUpdated");
  EXPECT_EQ(FindSearchParam("Patient", "no-such-param"), nullptr);
  EXPECT_EQ(FindSearchParam("NotAType", "_id"), nullptr);
  // Composite and special parameters are not in the table.
  EXPECT_EQ(FindSearchParam("Observation", "code-value-quantity"), nullptr);
  EXPECT_EQ(FindSearchParam("Location", "near"), nullptr);
}

TEST(SearchParams, SharedExpressionsKeepOnlyTheBasesPart) {
  // family is defined once for Patient and Practitioner as
  // "Patient.name.family | Practitioner.name.family".
  ExpectParam("Practitioner", "family", ParamType::kString, "Practitioner.name.family");
  // InsurancePlan-name is written relative to the resource in R4.
  ExpectParam("InsurancePlan", "name", ParamType::kString, "InsurancePlan.name | InsurancePlan.alias");
}

TEST(SearchParams, ReferenceTargets) {
  const SearchParamDef* d = FindSearchParam("Observation", "patient");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->targets, "Patient");
  EXPECT_EQ(d->expression, "Observation.subject.where(resolve() is Patient)");
  d = FindSearchParam("Observation", "subject");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->targets, "Device,Group,Location,Patient");
}

TEST(SearchParams, TableIsSortedUniqueAndWellFormed) {
  auto all = AllSearchParams();
  EXPECT_EQ(all.size(), 1633u);
  std::set<std::pair<std::string_view, std::string_view>> seen;
  for (size_t i = 0; i < all.size(); ++i) {
    const auto& d = all[i];
    EXPECT_TRUE(d.base == "Resource" || fhir::IsKnownResourceType(d.base)) << d.base;
    EXPECT_FALSE(d.expression.empty()) << d.base << "." << d.code;
    EXPECT_TRUE(seen.insert({d.base, d.code}).second) << d.base << "." << d.code;
    if (i > 0) {
      EXPECT_LT(std::tie(all[i - 1].base, all[i - 1].code), std::tie(d.base, d.code));
    }
    if (d.type == ParamType::kReference && d.targets.empty()) {
      // R4 defines RequestGroup-instantiates-canonical without a target.
      EXPECT_EQ(std::string(d.base) + "." + std::string(d.code), "RequestGroup.instantiates-canonical");
    }
  }
  auto patient = SearchParamsFor("Patient");
  // 23 Patient rows + 6 Resource rows.
  EXPECT_EQ(patient.size(), 29u);
  EXPECT_EQ(ParamTypeName(ParamType::kQuantity), "quantity");
}

}  // namespace
}  // namespace phivault::search
