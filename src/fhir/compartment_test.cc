#include "fhir/compartment.h"

#include <map>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "fhir/bundle.h"
#include "fhir/json_reader.h"
#include "fhir/resource_types.h"
#include "fhir/test_util.h"

namespace phivault::fhir {
namespace {

namespace json = boost::json;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

using Strings = std::vector<std::string>;

json::object MustParse(std::string_view body) {
  auto r = ParseResource(body);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(r).value() : json::object{};
}

std::vector<std::string> Split(std::string_view s, char sep) {
  std::vector<std::string> out;
  while (true) {
    size_t i = s.find(sep);
    out.emplace_back(s.substr(0, i));
    if (i == std::string_view::npos) return out;
    s.remove_prefix(i + 1);
  }
}

// {"a":{"b":{"reference":ref}}} or, with arrays, {"a":[{"b":[{"reference":ref}]}]}.
json::object WithReferenceAt(std::string_view type, std::string_view path, const std::string& ref,
                             bool arrays) {
  std::vector<std::string> segs = Split(path, '.');
  json::value node = json::object{{"reference", ref}};
  for (auto it = segs.rbegin(); it != segs.rend(); ++it) {
    if (arrays) node = json::array{std::move(node), json::object{{"display", "other"}}};
    node = json::object{{*it, std::move(node)}};
  }
  json::object res = std::move(node.as_object());
  res["resourceType"] = type;
  return res;
}

TEST(PatientIdFromReference, Forms) {
  EXPECT_EQ(PatientIdFromReference("Patient/123"), "123");
  EXPECT_EQ(PatientIdFromReference("Patient/a-b.c"), "a-b.c");
  EXPECT_EQ(PatientIdFromReference("Patient/123/_history/4"), "123");
  EXPECT_EQ(PatientIdFromReference("http://example.org/fhir/Patient/123"), "123");
  EXPECT_EQ(PatientIdFromReference("https://example.org/Patient/123/_history/2"), "123");
  EXPECT_EQ(PatientIdFromReference("https://h/base/Patient/x/Patient/123"), "123");
  EXPECT_EQ(PatientIdFromReference("Patient/" + std::string(64, 'a')), std::string(64, 'a'));

  for (const char* bad :
       {"", "Patient", "Patient/", "Patient/1/", "Patient/1/_history", "Patient/1/_history/",
        "Patient/1/_history/a/b", "Patient/1/extra", "Patient/a b", "Patient/a_b", "Patient?identifier=x",
        "patient/1", "/Patient/1", "Practitioner/1", "Group/1", "urn:uuid:4e8ed886-fd5f-40bb-8feb-f339b04d853a",
        "#p1", "http://Patient/1", "http:///Patient/1", "https://h/Patient/1?x=y", "https://h/Patient/1#f",
        "ftp://h/Patient/1", "https://h/Patientx/1", "https://h/RelatedPerson/1"}) {
    EXPECT_EQ(PatientIdFromReference(bad), std::nullopt) << bad;
  }
  EXPECT_EQ(PatientIdFromReference("Patient/" + std::string(65, 'a')), std::nullopt);
}

// Every type with params in the official CompartmentDefinition (the committed
// copy in src/fhir/data) has paths, every param is covered, and nothing else.
TEST(PatientCompartment, TableMatchesCompartmentDefinition) {
  std::string body = testing::ReadRepoFile("src/fhir/data/compartmentdefinition-patient.json");
  ASSERT_FALSE(body.empty());
  json::object def = MustParse(body);
  ASSERT_EQ(def["code"], "Patient");
  std::map<std::string, std::set<std::string>> expected;
  size_t listed = 0;
  for (const json::value& r : def["resource"].as_array()) {
    const json::object& ro = r.as_object();
    std::string code(ro.at("code").as_string());
    ++listed;
    EXPECT_TRUE(IsKnownResourceType(code)) << code;
    const json::value* params = ro.if_contains("param");
    if (params == nullptr || params->as_array().empty()) {
      EXPECT_FALSE(HasPatientCompartment(code)) << code;
      EXPECT_THAT(PatientCompartmentPaths(code), IsEmpty()) << code;
      continue;
    }
    for (const json::value& p : params->as_array()) expected[code].insert(std::string(p.as_string()));
  }
  EXPECT_EQ(listed, 145u);
  EXPECT_GE(expected.size(), 60u);
  std::set<std::string> types_in_table;
  for (const CompartmentPath& row : PatientCompartmentPaths("")) types_in_table.insert(std::string(row.type));
  for (const auto& t : types_in_table) EXPECT_TRUE(expected.count(t)) << "table has extra type " << t;
  for (const auto& [type, params] : expected) {
    SCOPED_TRACE(type);
    EXPECT_TRUE(HasPatientCompartment(type));
    auto rows = PatientCompartmentPaths(type);
    ASSERT_FALSE(rows.empty());
    std::set<std::string> covered;
    for (const CompartmentPath& row : rows) {
      EXPECT_EQ(row.type, type);
      for (const auto& p : Split(row.params, ',')) {
        EXPECT_TRUE(params.count(p)) << "param " << p << " not in the definition";
        covered.insert(p);
      }
    }
    EXPECT_EQ(covered, params);
  }
}

// Each generated path, as a single object or inside arrays, links the patient;
// a non-Patient reference at the same place does not.
TEST(PatientCompartment, EveryPathFindsThePatient) {
  auto rows = PatientCompartmentPaths("");
  ASSERT_GE(rows.size(), 90u);
  for (const CompartmentPath& row : rows) {
    SCOPED_TRACE(std::string(row.type) + "." + std::string(row.path));
    for (bool arrays : {false, true}) {
      EXPECT_THAT(PatientCompartment(WithReferenceAt(row.type, row.path, "Patient/p1", arrays)),
                  ElementsAre("p1"));
      EXPECT_THAT(PatientCompartment(WithReferenceAt(row.type, row.path,
                                                     "https://x.org/fhir/Patient/p2/_history/3", arrays)),
                  ElementsAre("p2"));
      EXPECT_THAT(PatientCompartment(WithReferenceAt(row.type, row.path, "Practitioner/p1", arrays)),
                  IsEmpty());
      EXPECT_THAT(PatientCompartment(WithReferenceAt(row.type, row.path, "urn:uuid:1234", arrays)),
                  IsEmpty());
    }
  }
}

TEST(PatientCompartment, SortedUniqueAcrossPaths) {
  json::object obs = MustParse(R"({"resourceType":"Observation",
      "subject":{"reference":"Patient/b"},
      "performer":[{"reference":"Patient/a"},{"reference":"Practitioner/z"},{"reference":"Patient/b"},
                   {"reference":"Patient/c/_history/1"}],
      "focus":[{"reference":"Patient/notcounted"}],
      "note":[{"text":"Patient/x"}]})");
  EXPECT_THAT(PatientCompartment(obs), ElementsAre("a", "b", "c"));
}

TEST(PatientCompartment, PatientSelfAndLinks) {
  EXPECT_THAT(PatientCompartment(MustParse(R"({"resourceType":"Patient","id":"p1"})")), ElementsAre("p1"));
  EXPECT_THAT(PatientCompartment(MustParse(R"({"resourceType":"Patient"})")), IsEmpty());
  EXPECT_THAT(PatientCompartment(MustParse(R"({"resourceType":"Patient","id":"p1","link":[
      {"other":{"reference":"Patient/p0"},"type":"replaces"},
      {"other":{"reference":"RelatedPerson/r1"},"type":"seealso"},
      {"other":{"reference":"Patient/p1"},"type":"refer"}]})")),
              ElementsAre("p0", "p1"));
  EXPECT_TRUE(HasPatientCompartment("Patient"));
}

TEST(PatientCompartment, TypesOutsideTheCompartment) {
  for (const char* t : {"Practitioner", "Organization", "Location", "Medication", "Bundle", "Binary",
                        "ValueSet", "Nonexistent", ""}) {
    EXPECT_FALSE(HasPatientCompartment(t)) << t;
  }
  // Even with a Patient reference somewhere, a Practitioner is in no compartment.
  EXPECT_THAT(PatientCompartment(MustParse(R"({"resourceType":"Practitioner","id":"d",
      "extension":[{"url":"x","valueReference":{"reference":"Patient/p1"}}]})")),
              IsEmpty());
}

// The one addition to the CompartmentDefinition: a Binary's securityContext.
TEST(PatientCompartment, BinaryFollowsASecurityContextPatient) {
  EXPECT_THAT(PatientCompartment(MustParse(R"({"resourceType":"Binary","contentType":"text/plain",
      "securityContext":{"reference":"Patient/p1"}})")),
              ElementsAre("p1"));
  EXPECT_THAT(PatientCompartment(MustParse(R"({"resourceType":"Binary","contentType":"text/plain",
      "securityContext":{"reference":"DocumentReference/d1"}})")),
              IsEmpty());
}

TEST(BinarySecurityContext, Forms) {
  auto ctx = [](const std::string& ref_json) {
    return BinarySecurityContext(R"({"resourceType":"Binary","contentType":"text/plain")" +
                                 (ref_json.empty() ? std::string() : ",\"securityContext\":" + ref_json) + "}");
  };
  EXPECT_FALSE(ctx("").has_value());
  EXPECT_FALSE(BinarySecurityContext(R"({"resourceType":"Basic","code":{"text":"x"}})").has_value());
  auto doc = ctx(R"({"reference":"DocumentReference/d-1"})");
  ASSERT_TRUE(doc.has_value());
  EXPECT_EQ(doc->type, "DocumentReference");
  EXPECT_EQ(doc->id, "d-1");
  auto versioned = ctx(R"({"reference":"Patient/p1/_history/3"})");
  ASSERT_TRUE(versioned.has_value());
  EXPECT_EQ(versioned->type, "Patient");
  EXPECT_EQ(versioned->id, "p1");
  // Present but not followable: an empty type, never "no context".
  for (const char* bad : {R"({"reference":"https://x.example/fhir/Patient/p1"})", R"({"reference":"#c1"})",
                          R"({"reference":"Nope/x"})", R"({"reference":"Patient/bad id"})",
                          R"({"identifier":{"value":"x"}})", R"("Patient/p1")"}) {
    auto c = ctx(bad);
    ASSERT_TRUE(c.has_value()) << bad;
    EXPECT_TRUE(c->type.empty()) << bad;
  }
  auto broken = BinarySecurityContext("{not json");
  ASSERT_TRUE(broken.has_value());
  EXPECT_TRUE(broken->type.empty());
}

TEST(PatientCompartment, MalformedShapesAreIgnored) {
  // Built directly (not via ParseResource) so shapes can be arbitrary.
  const char* bodies[] = {
      R"({"resourceType":"Observation","subject":"Patient/p1"})",
      R"({"resourceType":"Observation","subject":{"reference":7}})",
      R"({"resourceType":"Observation","subject":{"reference":["Patient/p1"]}})",
      R"({"resourceType":"Observation","subject":[[{"reference":"Patient/p9"}]],"performer":null})",
      R"({"resourceType":"Appointment","participant":{"actor":[1,"x",null,{"reference":{}}]}})",
      R"({"resourceType":"Patient","id":5,"link":"x"})",
      R"({"resourceType":5,"subject":{"reference":"Patient/p1"}})",
      R"({"subject":{"reference":"Patient/p1"}})",
  };
  for (const char* b : bodies) {
    auto v = ParseJson(b);
    ASSERT_TRUE(v.ok()) << b;
    auto ids = PatientCompartment(v->as_object());
    // Nested arrays are walked (p9); everything else yields nothing.
    for (const auto& id : ids) EXPECT_EQ(id, "p9") << b;
  }
}

// Synthea: after urn:uuid references are rewritten to Type/id, every resource
// of a compartment type maps to exactly the bundle's patient, and the others
// (Practitioner, Organization) to none.
TEST(PatientCompartment, SyntheaBundle) {
  std::string body = testing::ReadRepoFile("src/fhir/testdata/synthea-patient-004.json");
  ASSERT_GT(body.size(), 1000u);
  auto parsed = ParseResource(body);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  json::value bundle(std::move(parsed).value());
  auto plan = ParseBatchOrTransaction(bundle.as_object());
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  ASSERT_EQ(plan->kind, BundleKind::kTransaction);

  std::unordered_map<std::string, std::string> map;
  std::string patient_id;
  for (const auto& e : plan->entries) {
    ASSERT_TRUE(e.full_url.starts_with("urn:uuid:"));
    std::string id = e.full_url.substr(9);
    ASSERT_TRUE(IsValidId(id));
    map[e.full_url] = e.type + "/" + id;
    if (e.type == "Patient") patient_id = id;
  }
  ASSERT_FALSE(patient_id.empty());
  auto urns = CollectUrnReferences(bundle);
  EXPECT_FALSE(urns.empty());
  for (const auto& u : urns) EXPECT_TRUE(map.count(u)) << "dangling reference in sample";
  RewriteReferences(bundle, map);
  EXPECT_THAT(CollectUrnReferences(bundle), IsEmpty());

  std::map<std::string, int> per_type;
  for (const json::value& ev : bundle.at("entry").as_array()) {
    const json::object& res = ev.at("resource").as_object();
    std::string type(res.at("resourceType").as_string());
    SCOPED_TRACE(type);
    auto ids = PatientCompartment(res);
    if (HasPatientCompartment(type)) {
      EXPECT_THAT(ids, ElementsAre(patient_id));
      ++per_type[type];
    } else {
      EXPECT_THAT(ids, IsEmpty());
      EXPECT_TRUE(type == "Practitioner" || type == "Organization") << type;
    }
  }
  for (const char* t : {"Patient", "Observation", "Encounter", "Condition", "Claim", "ExplanationOfBenefit",
                        "Immunization", "Procedure", "MedicationRequest", "DiagnosticReport"}) {
    EXPECT_GT(per_type[t], 0) << t;
  }
}

}  // namespace
}  // namespace phivault::fhir
