#include "fhir/summary.h"

#include <filesystem>
#include <functional>
#include <sstream>
#include <fstream>
#include <string>

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "fhir/json_reader.h"

namespace phivault::fhir {
namespace {

namespace json = boost::json;

json::object Obj(std::string_view text) { return json::parse(text).as_object(); }

// The flags as the R4 StructureDefinitions give them (profiles-resources.json,
// profiles-types.json 4.0.1): spot checks that the generated table carries
// them, not only that the code agrees with itself.
TEST(SummaryTable, CarriesTheR4Flags) {
  SummaryFlags name = SummaryElement("Patient", "name");
  EXPECT_TRUE(name.known && name.summary && !name.mandatory);
  EXPECT_TRUE(SummaryElement("Patient", "birthDate").summary);
  EXPECT_TRUE(SummaryElement("Patient", "deceasedDateTime").summary);  // deceased[x] expanded
  // Neither in the summary nor mandatory: not in the table at all.
  EXPECT_FALSE(SummaryElement("Patient", "photo").known);
  EXPECT_FALSE(SummaryElement("Patient", "contact").known);
  EXPECT_FALSE(SummaryElement("Patient", "text").known);
  EXPECT_FALSE(SummaryElement("Patient", "maritalStatus").known);
  // Mandatory (min 1).
  SummaryFlags status = SummaryElement("Observation", "status");
  EXPECT_TRUE(status.summary && status.mandatory);
  SummaryFlags lang = SummaryElement("Patient.communication", "language");
  EXPECT_TRUE(lang.mandatory && !lang.summary);
  EXPECT_TRUE(SummaryElement("Patient.link", "other").mandatory);
  // Data types and backbone elements.
  EXPECT_TRUE(SummaryElement("HumanName", "family").summary);
  EXPECT_FALSE(SummaryElement("HumanName", "extension").known);
  EXPECT_TRUE(SummaryElement("Observation.component", "valueQuantity").summary);
  EXPECT_FALSE(SummaryElement("Observation.component", "interpretation").known);
  EXPECT_FALSE(SummaryElement("Observation", "referenceRange").known);
  EXPECT_TRUE(SummaryElement("Encounter", "class").mandatory);
  // A modifier R4 leaves out of the summary: still in the table.
  SummaryFlags modext = SummaryElement("Patient", "modifierExtension");
  EXPECT_TRUE(modext.known && modext.modifier && !modext.summary);
  EXPECT_TRUE(SummaryElement("Patient", "active").modifier);
  // Not R4 (the definitions' package adds Meta.project): absent.
  EXPECT_FALSE(SummaryElement("Meta", "project").known);
}

constexpr std::string_view kPatient = R"({
  "resourceType": "Patient", "id": "p1",
  "meta": {"versionId": "3", "tag": [{"code": "x"}]},
  "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Ann</div>"},
  "identifier": [{"system": "urn:mrn", "value": "1"}, {"extension": [{"url": "urn:x", "valueString": "y"}]}],
  "name": [{"family": "Doe", "given": ["Ann"], "extension": [{"url": "urn:x", "valueString": "y"}]}],
  "gender": "female",
  "birthDate": "1970-01-01",
  "_birthDate": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                                "valueDateTime": "1970-01-01T10:00:00Z"}]},
  "maritalStatus": {"text": "M"},
  "photo": [{"contentType": "image/png", "data": "AAAA"}],
  "contact": [{"name": {"family": "Roe"}}],
  "communication": [{"language": {"text": "en"}, "preferred": true}],
  "link": [{"other": {"reference": "Patient/p2"}, "type": "seealso", "id": "l1"}]
})";

TEST(Summarize, TrueKeepsSummaryElementsAtEveryDepth) {
  json::object s = Summarize(Obj(kPatient), SummaryView::kTrue);
  EXPECT_EQ(s, Obj(R"({
    "resourceType": "Patient", "id": "p1",
    "meta": {"versionId": "3", "tag": [{"code": "x"}]},
    "identifier": [{"system": "urn:mrn", "value": "1"}],
    "name": [{"family": "Doe", "given": ["Ann"]}],
    "gender": "female",
    "birthDate": "1970-01-01",
    "_birthDate": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                                  "valueDateTime": "1970-01-01T10:00:00Z"}]},
    "link": [{"other": {"reference": "Patient/p2"}, "type": "seealso"}]
  })")) << json::serialize(s);
}

TEST(Summarize, TextKeepsNarrativeAndTopLevelMandatoryOnly) {
  // Patient has no mandatory top-level element.
  EXPECT_EQ(Summarize(Obj(kPatient), SummaryView::kText), Obj(R"({
    "resourceType": "Patient", "id": "p1",
    "meta": {"versionId": "3", "tag": [{"code": "x"}]},
    "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Ann</div>"}
  })"));
  // Observation.status and .code are mandatory (kept whole).
  json::object obs = Obj(R"({"resourceType": "Observation", "id": "o1", "status": "final",
    "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},
    "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "extension": [{"url": "urn:x"}]}]},
    "subject": {"reference": "Patient/p1"}, "valueQuantity": {"value": 72}})");
  EXPECT_EQ(Summarize(obs, SummaryView::kText), Obj(R"({"resourceType": "Observation", "id": "o1", "status": "final",
    "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},
    "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "extension": [{"url": "urn:x"}]}]}})"));
}

// Observation.modifierExtension is isModifier but not isSummary in R4: kept
// (see summary.h), and whole although Extension.value[x] is not isSummary.
TEST(Summarize, TrueFiltersBackboneElementsAndKeepsModifierExtensionsWhole) {
  json::object obs = Obj(R"({"resourceType": "Observation", "id": "o1", "status": "final",
    "modifierExtension": [{"url": "urn:m", "valueBoolean": true}],
    "code": {"text": "BP"},
    "referenceRange": [{"low": {"value": 1}}],
    "interpretation": [{"text": "high"}],
    "component": [
      {"code": {"text": "sys"}, "valueQuantity": {"value": 120, "unit": "mmHg"}, "interpretation": [{"text": "H"}]},
      {"code": {"text": "dia"}, "dataAbsentReason": {"text": "lost"}}]})");
  EXPECT_EQ(Summarize(obs, SummaryView::kTrue), Obj(R"({"resourceType": "Observation", "id": "o1", "status": "final",
    "modifierExtension": [{"url": "urn:m", "valueBoolean": true}],
    "code": {"text": "BP"},
    "component": [{"code": {"text": "sys"}, "valueQuantity": {"value": 120, "unit": "mmHg"}},
                  {"code": {"text": "dia"}}]})"))
      << json::serialize(Summarize(obs, SummaryView::kTrue));
}

TEST(Summarize, TrueRecursesIntoResourcesInsideResources) {
  json::object bundle = Obj(R"({"resourceType": "Bundle", "id": "b", "type": "collection",
    "entry": [{"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Patient", "id": "p", "photo": [{"data": "AA"}],
               "gender": "male"}}]})");
  EXPECT_EQ(Summarize(bundle, SummaryView::kTrue), Obj(R"({"resourceType": "Bundle", "id": "b", "type": "collection",
    "entry": [{"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Patient", "id": "p", "gender": "male"}}]})"));
}

TEST(Summarize, MalformedInputNeverThrows) {
  EXPECT_TRUE(Summarize(Obj(R"({"id": "x"})"), SummaryView::kTrue).empty());
  EXPECT_EQ(Summarize(Obj(R"({"resourceType": "NotAType", "id": "x", "name": 1})"), SummaryView::kTrue),
            Obj(R"({"resourceType": "NotAType"})"));
  // A complex element that is not an object is dropped, not kept as is.
  EXPECT_EQ(Summarize(Obj(R"({"resourceType": "Patient", "name": [1, "x", {"family": "D"}], "address": 3})"),
                      SummaryView::kTrue),
            Obj(R"({"resourceType": "Patient", "name": [{"family": "D"}]})"));
}

// Over every resource of the Synthea samples shipped in the repo: a summary
// is a subset of the resource, keeps only table elements at the top level,
// loses no summary element present, and summarizing twice changes nothing.
TEST(Summarize, SyntheaSamplesProperties) {
  namespace fs = std::filesystem;
  size_t checked = 0;
  std::function<void(const json::object&)> check = [&](const json::object& r) {
    std::string type(r.at("resourceType").as_string());
    for (SummaryView view : {SummaryView::kTrue, SummaryView::kText}) {
      json::object s = Summarize(r, view);
      EXPECT_EQ(Summarize(s, view), s) << type;
      if (r.contains("id")) {
        EXPECT_EQ(s.at("id"), r.at("id")) << type;
      }
      for (const auto& [k, v] : s) {
        ASSERT_TRUE(r.contains(k)) << type << "." << k;
        if (k == "resourceType" || k == "id" || k == "meta" || k == "text") continue;
        SummaryFlags f = SummaryElement(type, k);
        EXPECT_TRUE(view == SummaryView::kTrue ? f.known : f.mandatory) << type << "." << k;
        if (view == SummaryView::kText) {
          EXPECT_EQ(v, r.at(k)) << type << "." << k;
        }
      }
      for (const auto& [k, v] : r) {
        SummaryFlags f = SummaryElement(type, k);
        if (view == SummaryView::kText && f.mandatory) {
          EXPECT_TRUE(s.contains(k)) << type << "." << k;
        }
        if (view == SummaryView::kTrue && f.summary && !v.is_object() && !v.is_array()) {
          EXPECT_TRUE(s.contains(k)) << type << "." << k;
        }
      }
    }
    ++checked;
  };
  for (const auto& e : fs::recursive_directory_iterator(std::string(PHIVAULT_SOURCE_DIR) + "/data/samples")) {
    std::ifstream in(e.path());
    if (e.path().extension() == ".ndjson") {
      std::string line;
      for (int n = 0; n < 30 && std::getline(in, line); ++n) {
        json::object r = json::parse(line).as_object();
        if (r.contains("resourceType")) check(r);  // log.ndjson is the export's log, not resources
      }
    } else if (e.path().extension() == ".json") {
      std::ostringstream text;
      text << in.rdbuf();
      json::object b = json::parse(text.str()).as_object();
      if (b["resourceType"] != "Bundle") continue;
      const json::array& entries = b["entry"].as_array();
      for (size_t i = 0; i < entries.size() && i < 60; ++i) check(entries[i].as_object().at("resource").as_object());
    }
  }
  EXPECT_GT(checked, 1000u);  // 60 per Bundle, 30 per NDJSON file
}

}  // namespace
}  // namespace phivault::fhir
