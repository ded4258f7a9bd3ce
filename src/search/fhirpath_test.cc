#include "search/fhirpath.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "search/search_params.h"
#include "search/test_util.h"

namespace phivault::search {
namespace {

using testing::Res;

// Evaluates and renders each item compactly: strings bare, others as JSON.
std::vector<std::string> Eval(std::string_view expr, const boost::json::object& r) {
  auto p = FhirPath::Compile(expr);
  EXPECT_TRUE(p.ok()) << expr << ": " << p.status().ToString();
  if (!p.ok()) return {};
  auto items = p->Evaluate(r);
  EXPECT_TRUE(items.ok()) << expr;
  if (!items.ok()) return {};
  std::vector<std::string> out;
  for (const auto& it : *items) {
    const auto& v = it.value();
    out.push_back(v.is_string() ? std::string(v.get_string()) : fhir::Serialize(v));
  }
  return out;
}

using V = std::vector<std::string>;

const char* kPatient = R"({"resourceType":"Patient","id":"p1",
  "name":[{"family":"Müller","given":["Anna","Maria"]},{"family":"Smith"}],
  "telecom":[{"system":"phone","value":"555"},{"system":"email","value":"a@b.c"}],
  "deceasedBoolean":false,
  "generalPractitioner":[{"reference":"Practitioner/7"},{"reference":"Patient/9"}]})";

TEST(FhirPath, NavigationFlattensArrays) {
  auto r = Res(kPatient);
  EXPECT_EQ(Eval("Patient.name.family", r), (V{"Müller", "Smith"}));
  EXPECT_EQ(Eval("Patient.name.given", r), (V{"Anna", "Maria"}));
  EXPECT_EQ(Eval("Resource.id", r), (V{"p1"}));
  EXPECT_EQ(Eval("Patient.nothing.here", r), V{});
  // A path rooted at another type yields nothing.
  EXPECT_EQ(Eval("Observation.id", r), V{});
  EXPECT_EQ(Eval("Patient.name[1].family", r), (V{"Smith"}));
  EXPECT_EQ(Eval("Patient.name.first().family", r), (V{"Müller"}));
}

TEST(FhirPath, UnionWhereAndResolve) {
  auto r = Res(kPatient);
  EXPECT_EQ(Eval("Patient.telecom.where(system='email').value", r), (V{"a@b.c"}));
  EXPECT_EQ(Eval("Patient.name.family | Patient.id", r), (V{"Müller", "Smith", "p1"}));
  // Union removes duplicates.
  EXPECT_EQ(Eval("Patient.id | Patient.id", r), (V{"p1"}));
  EXPECT_EQ(Eval("Patient.generalPractitioner.where(resolve() is Patient).reference", r),
            (V{"Patient/9"}));
  EXPECT_EQ(Eval("Patient.generalPractitioner.where(resolve() is Practitioner).reference", r),
            (V{"Practitioner/7"}));
}

// Items from the resource are the same item only when they are the same
// element; literals are compared by value. Checked on arrays large enough
// that a pairwise duplicate scan would be felt (bench/fhirpath_bench.cc
// times the growth).
TEST(FhirPath, UnionKeepsDistinctElementsAndDropsRepeatsAtScale) {
  constexpr int kN = 20000;
  boost::json::array endpoints, series_endpoints;
  for (int i = 0; i < kN; ++i) {
    // Equal values, distinct elements: both sides keep theirs.
    endpoints.push_back(boost::json::object{{"reference", "Endpoint/" + std::to_string(i)}});
    series_endpoints.push_back(boost::json::object{{"reference", "Endpoint/" + std::to_string(i)}});
  }
  boost::json::object r{{"resourceType", "ImagingStudy"},
                        {"endpoint", endpoints},
                        {"series", boost::json::array{boost::json::object{{"endpoint", series_endpoints}}}}};
  auto p = FhirPath::Compile("ImagingStudy.endpoint | ImagingStudy.series.endpoint");
  ASSERT_TRUE(p.ok());
  auto both = p->Evaluate(r);
  ASSERT_TRUE(both.ok());
  EXPECT_EQ(both->size(), 2u * kN);
  // Order: the left side first, each side in document order.
  EXPECT_EQ((*both)[0].ptr, &r["endpoint"].as_array()[0]);
  EXPECT_EQ((*both)[kN].ptr, &r["series"].as_array()[0].as_object()["endpoint"].as_array()[0]);
  auto same = FhirPath::Compile("ImagingStudy.endpoint | ImagingStudy.endpoint | ImagingStudy.endpoint");
  ASSERT_TRUE(same.ok());
  auto once = same->Evaluate(r);
  ASSERT_TRUE(once.ok());
  ASSERT_EQ(once->size(), static_cast<size_t>(kN)) << "the same elements are listed once";
  EXPECT_EQ((*once)[kN - 1].ptr, &r["endpoint"].as_array()[kN - 1]);

  auto res = Res(kPatient);
  EXPECT_EQ(Eval("'a' | 'b' | 'a' | Patient.id | 'b'", res), (V{"a", "b", "p1"}));
  EXPECT_EQ(Eval("Patient | Patient", res).size(), 1u) << "the resource itself, once";
}

TEST(FhirPath, ChoiceTypesAndBooleans) {
  auto r = Res(kPatient);
  EXPECT_EQ(Eval("Patient.deceased", r), (V{"false"}));
  EXPECT_EQ(Eval("Patient.deceased.ofType(boolean)", r), (V{"false"}));
  EXPECT_EQ(Eval("Patient.deceased.ofType(dateTime)", r), V{});
  EXPECT_EQ(Eval("Patient.deceased.exists() and Patient.deceased != false", r), (V{"false"}));
  auto dead = Res(R"({"resourceType":"Patient","deceasedDateTime":"2020-01-01"})");
  EXPECT_EQ(Eval("Patient.deceased.exists() and Patient.deceased != false", dead), (V{"true"}));
  EXPECT_EQ(Eval("(Patient.deceased.ofType(dateTime))", dead), (V{"2020-01-01"}));
  EXPECT_EQ(Eval("Patient.deceased as dateTime", dead), (V{"2020-01-01"}));
  EXPECT_EQ(Eval("Patient.deceased.as(dateTime)", dead), (V{"2020-01-01"}));
  auto alive = Res(R"({"resourceType":"Patient"})");
  EXPECT_EQ(Eval("Patient.deceased.exists() and Patient.deceased != false", alive), (V{"false"}));
  EXPECT_EQ(Eval("Patient.name.empty()", alive), (V{"true"}));
}

TEST(FhirPath, ObservationValueAndCodes) {
  auto r = Res(R"({"resourceType":"Observation",
    "code":{"coding":[{"system":"http://loinc.org","code":"8302-2"}]},
    "valueQuantity":{"value":1.5,"unit":"cm"},
    "component":[{"code":{"coding":[{"code":"a"}]},"valueString":"x"},
                 {"code":{"coding":[{"code":"b"}]},"valueQuantity":{"value":2}}]})");
  EXPECT_EQ(Eval("(Observation.value.ofType(Quantity)).unit", r), (V{"cm"}));
  EXPECT_EQ(Eval("Observation.value.ofType(string)", r), V{});
  EXPECT_EQ(Eval("Observation.component.value.ofType(string)", r), (V{"x"}));
  EXPECT_EQ(Eval("Observation.component.where(code.coding.code='b').value.value", r), (V{"2"}));
  EXPECT_EQ(Eval("Observation.code.coding.exists(system='http://loinc.org')", r), (V{"true"}));
  EXPECT_EQ(Eval("Observation.code.coding.where(system='http://snomed.info/sct').exists()", r),
            (V{"false"}));
}

TEST(FhirPath, SyntheaPatient) {
  auto p = testing::SyntheaResource("Patient", [](const auto&) { return true; });
  ASSERT_FALSE(p.empty());
  EXPECT_EQ(Eval("Patient.name.family", p), (V{"Atencio"}));
  EXPECT_EQ(Eval("Patient.birthDate", p), (V{"1993-06-07"}));
  EXPECT_EQ(Eval("Patient.identifier.where(type.coding.code='SS').value", p), (V{"999-61-3984"}));
  EXPECT_EQ(Eval("Patient.telecom.where(system='phone').value", p), (V{"555-961-9901"}));
  EXPECT_EQ(Eval("Patient.address.city", p), (V{"Boston"}));
}

TEST(FhirPath, RejectsMalformedAndUnsupported) {
  for (const char* bad : {"", "Patient.", "Patient.name(", "(Patient", "Patient.name[0",
                          "'open", "Patient.where()", "Patient # x"}) {
    auto p = FhirPath::Compile(bad);
    EXPECT_FALSE(p.ok()) << bad;
  }
  auto p = FhirPath::Compile("Patient.name.count()");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), StatusCode::kUnsupported);
  p = FhirPath::Compile("Patient.a xor Patient.b");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), StatusCode::kUnsupported);
  // Hostile nesting fails cleanly instead of exhausting the stack.
  std::string deep(5000, '(');
  EXPECT_FALSE(FhirPath::Compile(deep).ok());
  std::string nested;
  for (int i = 0; i < 200; ++i) nested += "(";
  nested += "Patient";
  for (int i = 0; i < 200; ++i) nested += ")";
  EXPECT_FALSE(FhirPath::Compile(nested).ok());
  std::string wheres = "Patient";
  for (int i = 0; i < 200; ++i) wheres += ".where(exists(";
  EXPECT_FALSE(FhirPath::Compile(wheres).ok());
  // Long member chains compile (no nesting) but evaluation stops at its
  // recursion bound with an error, not a crash.
  std::string chain = "Patient";
  for (int i = 0; i < 600; ++i) chain += ".name";
  auto c = FhirPath::Compile(chain);
  ASSERT_TRUE(c.ok());
  auto r = c->Evaluate(Res(kPatient));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted);
  EXPECT_FALSE(FhirPath::Compile(std::string(FhirPath::kMaxExpressionBytes + 1, 'a')).ok());
}

// Every expression in the generated table must compile; the ones outside
// the subset are listed here and must stay under 3%.
TEST(FhirPath, CoverageOfTheSearchParameterTable) {
  size_t ok = 0;
  std::vector<std::string> unsupported;
  for (const auto& d : AllSearchParams()) {
    auto p = FhirPath::Compile(d.expression);
    if (p.ok()) {
      ++ok;
    } else {
      unsupported.push_back(std::string(d.base) + "." + std::string(d.code) + ": " +
                            p.status().message());
    }
  }
  for (const auto& u : unsupported) ADD_FAILURE() << "unsupported: " << u;
  std::printf("fhirpath coverage: %zu of %zu expressions compile, %zu unsupported\n", ok,
              AllSearchParams().size(), unsupported.size());
  EXPECT_LE(unsupported.size() * 100, AllSearchParams().size() * 3);
}

}  // namespace
}  // namespace phivault::search
