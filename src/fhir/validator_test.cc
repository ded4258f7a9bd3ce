#include "fhir/validator.h"

#include <dirent.h>

#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/object.hpp>
#include <gtest/gtest.h>

#include "fhir/json_reader.h"
#include "fhir/test_util.h"

namespace phivault::fhir {
namespace {

// Parses `body` (which must be well-formed) and validates it.
Status Check(std::string_view body) {
  auto parsed = ParseResource(body);
  if (!parsed.ok()) return Internal("test body does not parse: " + parsed.status().ToString());
  return ValidateResource(*parsed);
}

std::string Obs(std::string_view extra) {
  return std::string(R"({"resourceType":"Observation","status":"final","code":{"text":"x"})") + std::string(extra) +
         "}";
}

void ExpectValid(std::string_view body) {
  Status s = Check(body);
  EXPECT_TRUE(s.ok()) << body << " -> " << s.ToString();
}

void ExpectInvalidAt(std::string_view body, std::string_view expression) {
  Status s = Check(body);
  ASSERT_FALSE(s.ok()) << "accepted: " << body;
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  EXPECT_EQ(s.expression(), expression) << body << " -> " << s.ToString();
}

TEST(Validator, AcceptsAPlainObservation) { ExpectValid(Obs("")); }

TEST(Validator, RequiredBindingCodes) {
  ExpectValid(Obs(R"(,"subject":{"reference":"Patient/1"})"));
  ExpectInvalidAt(R"({"resourceType":"Observation","status":"not-a-status"})", "Observation.status");
  ExpectValid(R"({"resourceType":"Patient","gender":"female"})");
  ExpectInvalidAt(R"({"resourceType":"Patient","gender":"F"})", "Patient.gender");
  // Codes are case-sensitive.
  ExpectInvalidAt(R"({"resourceType":"Patient","gender":"Female"})", "Patient.gender");
  // A repeating coded element (Timing.repeat.when) checks each item.
  ExpectValid(Obs(R"(,"effectiveTiming":{"repeat":{"when":["MORN","EVE"]}})"));
  ExpectInvalidAt(Obs(R"(,"effectiveTiming":{"repeat":{"when":["MORN","LATER"]}})"),
                  "Observation.effectiveTiming.repeat.when[1]");
}

TEST(Validator, UnknownElements) {
  ExpectInvalidAt(Obs(R"(,"colour":"red")"), "Observation.colour");
  ExpectInvalidAt(Obs(R"(,"valueCodeableConcept":{"text":"x","colour":"red"})"), "Observation.valueCodeableConcept.colour");
  // Choice types exist only under their concrete names.
  ExpectValid(Obs(R"(,"valueString":"high")"));
  ExpectInvalidAt(Obs(R"(,"value":"high")"), "Observation.value");
  ExpectInvalidAt(Obs(R"(,"valuePatient":"high")"), "Observation.valuePatient");
  // Medplum's additions to R4 are not R4.
  ExpectInvalidAt(Obs(R"(,"meta":{"project":"p1"})"), "Observation.meta.project");
  ExpectInvalidAt(Obs(R"(,"subject":{"reference":"Patient/1","resource":{"resourceType":"Patient"}})"),
                  "Observation.subject.resource");
  ExpectInvalidAt(R"({"resourceType":"OperationOutcome","issue":[],"status":400})", "OperationOutcome.status");
  // A key that is not a plain identifier is not echoed.
  Status s = Check(Obs(R"(,"John Smith 1970":1)"));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.expression(), "Observation");
  EXPECT_EQ(s.message().find("John"), std::string::npos);
}

TEST(Validator, PrimitiveExtensions) {
  ExpectValid(Obs(R"(,"_status":{"extension":[{"url":"http://x","valueString":"y"}]})"));
  ExpectValid(R"({"resourceType":"Patient","name":[{"given":["A",null],"_given":[null,{"id":"g2"}]}]})");
  // `_x` exists only for primitives, and is an Element.
  ExpectInvalidAt(Obs(R"(,"_code":{"id":"c"})"), "Observation._code");
  ExpectInvalidAt(Obs(R"(,"_status":{"colour":"red"})"), "Observation._status.colour");
  ExpectInvalidAt(Obs(R"(,"_status":"x")"), "Observation._status");
  // null is a placeholder only next to a `_x` array.
  ExpectInvalidAt(R"({"resourceType":"Patient","name":[{"given":["A",null]}]})", "Patient.name[0].given[1]");
}

TEST(Validator, Cardinality) {
  ExpectInvalidAt(Obs(R"(,"category":{"text":"vital"})"), "Observation.category");
  ExpectValid(Obs(R"(,"category":[{"text":"vital"}])"));
  ExpectInvalidAt(R"({"resourceType":"Observation","status":["final"]})", "Observation.status");
  ExpectInvalidAt(Obs(R"(,"subject":[{"reference":"Patient/1"}])"), "Observation.subject");
  ExpectInvalidAt(Obs(R"(,"subject":"Patient/1")"), "Observation.subject");
}

TEST(Validator, Booleans) {
  ExpectValid(R"({"resourceType":"Patient","active":true})");
  ExpectInvalidAt(R"({"resourceType":"Patient","active":"true"})", "Patient.active");
  ExpectInvalidAt(R"({"resourceType":"Patient","active":1})", "Patient.active");
}

TEST(Validator, Integers) {
  ExpectValid(Obs(R"(,"valueInteger":-5)"));
  ExpectValid(Obs(R"(,"valueInteger":2147483647)"));
  ExpectInvalidAt(Obs(R"(,"valueInteger":2147483648)"), "Observation.valueInteger");
  ExpectInvalidAt(Obs(R"(,"valueInteger":1.5)"), "Observation.valueInteger");
  ExpectInvalidAt(Obs(R"(,"valueInteger":"5")"), "Observation.valueInteger");
  // positiveInt (Patient.multipleBirthInteger is integer; use RiskAssessment-free types)
  ExpectValid(R"({"resourceType":"Observation","status":"final","code":{"text":"x"},"referenceRange":[{"age":{"low":{"value":1}}}]})");
  ExpectValid(R"({"resourceType":"Patient","photo":[{"size":0}]})");
  ExpectInvalidAt(R"({"resourceType":"Patient","photo":[{"size":-1}]})", "Patient.photo[0].size");
  ExpectValid(R"({"resourceType":"Patient","communication":[{"language":{"text":"en"}}],"contact":[{"name":{"text":"A"}}]})");
  ExpectValid(R"({"resourceType":"ImmunizationRecommendation","recommendation":[{"doseNumberPositiveInt":1}]})");
  ExpectInvalidAt(R"({"resourceType":"ImmunizationRecommendation","recommendation":[{"doseNumberPositiveInt":0}]})",
                  "ImmunizationRecommendation.recommendation[0].doseNumberPositiveInt");
}

TEST(Validator, Decimals) {
  ExpectValid(Obs(R"(,"valueQuantity":{"value":1.5e3,"unit":"mg"})"));
  ExpectValid(Obs(R"(,"valueQuantity":{"value":-2})"));
  ExpectInvalidAt(Obs(R"(,"valueQuantity":{"value":"1.5"})"), "Observation.valueQuantity.value");
}

TEST(Validator, Strings) {
  ExpectValid(Obs(R"(,"valueString":" spaced\ttext\n")"));
  ExpectValid(Obs(R"(,"valueString":"caf\u00e9\u00a0x")"));
  ExpectInvalidAt(Obs(R"(,"valueString":"")"), "Observation.valueString");
  ExpectInvalidAt(Obs(R"(,"valueString":"a\fb")"), "Observation.valueString");
  ExpectInvalidAt(Obs(R"(,"valueString":5)"), "Observation.valueString");
}

TEST(Validator, CodesIdsUris) {
  ExpectValid(Obs(R"(,"valueCodeableConcept":{"coding":[{"code":"8302-2 a","system":"http://loinc.org"}]})"));
  ExpectInvalidAt(Obs(R"(,"valueCodeableConcept":{"coding":[{"code":" 8302-2"}]})"), "Observation.valueCodeableConcept.coding[0].code");
  ExpectInvalidAt(Obs(R"(,"valueCodeableConcept":{"coding":[{"code":"a  b"}]})"), "Observation.valueCodeableConcept.coding[0].code");
  ExpectInvalidAt(Obs(R"(,"valueCodeableConcept":{"coding":[{"code":"a "}]})"), "Observation.valueCodeableConcept.coding[0].code");
  ExpectInvalidAt(Obs(R"(,"valueCodeableConcept":{"coding":[{"system":"http://loinc .org"}]})"), "Observation.valueCodeableConcept.coding[0].system");
  ExpectInvalidAt(Obs(R"(,"valueCodeableConcept":{"coding":[{"system":""}]})"), "Observation.valueCodeableConcept.coding[0].system");
  ExpectValid(Obs(R"(,"meta":{"versionId":"a-1.2"})"));
  ExpectInvalidAt(Obs(R"(,"meta":{"versionId":"a_1"})"), "Observation.meta.versionId");
  ExpectValid(Obs(R"(,"identifier":[{"system":"urn:oid:2.16.840.1"}])"));
  ExpectValid(R"({"resourceType":"Task","status":"draft","intent":"order","input":[{"type":{"text":"t"},"valueOid":"urn:oid:1.2.3"}]})");
  ExpectInvalidAt(R"({"resourceType":"Task","status":"draft","intent":"order","input":[{"type":{"text":"t"},"valueOid":"urn:oid:1.02"}]})",
                  "Task.input[0].valueOid");
  ExpectValid(R"({"resourceType":"Task","status":"draft","intent":"order","input":[{"type":{"text":"t"},"valueUuid":"urn:uuid:0a1b2c3d-0a1b-0a1b-0a1b-0a1b2c3d4e5f"}]})");
  ExpectInvalidAt(R"({"resourceType":"Task","status":"draft","intent":"order","input":[{"type":{"text":"t"},"valueUuid":"urn:uuid:0A1B2C3D-0a1b-0a1b-0a1b-0a1b2c3d4e5f"}]})",
                  "Task.input[0].valueUuid");
}

TEST(Validator, Base64) {
  ExpectValid(R"({"resourceType":"Binary","contentType":"text/plain","data":"aGVsbG8="})");
  ExpectValid(R"({"resourceType":"Binary","contentType":"text/plain","data":"aGVs bG8=\n"})");
  ExpectInvalidAt(R"({"resourceType":"Binary","contentType":"text/plain","data":"aGVsbG8"})", "Binary.data");
  ExpectInvalidAt(R"({"resourceType":"Binary","contentType":"text/plain","data":"aG!sbG8="})", "Binary.data");
}

TEST(Validator, DatesAndTimes) {
  for (const char* ok : {"2024", "2024-02", "2024-02-29", "2024-02-29T23:59:60Z", "2024-01-02T03:04:05.678+14:00",
                         "0001-01-01T00:00:00-13:59"}) {
    ExpectValid(Obs(std::string(R"(,"effectiveDateTime":")") + ok + "\""));
  }
  for (const char* bad : {"yesterday", "2023-02-29", "2024-13", "0000", "2024-01-02T03:04Z", "2024-01-02T03:04:05",
                          "2024-01-02T24:00:00Z", "2024-01-02T03:04:05+14:30", "2024-01-02 03:04:05Z", "2024-1-2",
                          "2024-01-02T03:04:05.Z"}) {
    ExpectInvalidAt(Obs(std::string(R"(,"effectiveDateTime":")") + bad + "\""), "Observation.effectiveDateTime");
  }
  ExpectValid(Obs(R"(,"issued":"2024-01-02T03:04:05Z")"));
  ExpectInvalidAt(Obs(R"(,"issued":"2024-01-02")"), "Observation.issued");
  ExpectValid(R"({"resourceType":"Patient","birthDate":"1970-12-31"})");
  ExpectInvalidAt(R"({"resourceType":"Patient","birthDate":"1970-12-31T00:00:00Z"})", "Patient.birthDate");
  ExpectValid(Obs(R"(,"valueTime":"23:59:59.5")"));
  ExpectInvalidAt(Obs(R"(,"valueTime":"23:59")"), "Observation.valueTime");
}

TEST(Validator, ContainedAndNestedResources) {
  ExpectValid(Obs(R"(,"contained":[{"resourceType":"Patient","id":"p","gender":"male"}])"));
  ExpectInvalidAt(Obs(R"(,"contained":[{"resourceType":"Patient","id":"p","gender":"man"}])"),
                  "Observation.contained[0].gender");
  ExpectInvalidAt(Obs(R"(,"contained":[{"resourceType":"Project","id":"p"}])"), "Observation.contained[0].resourceType");
  ExpectInvalidAt(Obs(R"(,"contained":[{"id":"p"}])"), "Observation.contained[0].resourceType");
  ExpectInvalidAt(Obs(R"(,"contained":{"resourceType":"Patient"})"), "Observation.contained");
  ExpectInvalidAt(R"({"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Patient","gender":"x"}}]})",
                  "Bundle.entry[0].resource.gender");
}

TEST(Validator, RootPrefix) {
  auto parsed = ParseResource(R"({"resourceType":"Patient","gender":"x"})");
  ASSERT_TRUE(parsed.ok());
  Status s = ValidateResource(*parsed, "Bundle.entry[3].resource");
  EXPECT_EQ(s.expression(), "Bundle.entry[3].resource.gender");
  EXPECT_NE(s.message().find("Bundle.entry[3].resource.gender"), std::string::npos);
}

// Every resource of the Synthea samples the demo and tests import is valid.
TEST(Validator, SyntheaSamplesValidate) {
  std::string dir = std::string(PHIVAULT_SOURCE_DIR) + "/data/samples/synthea-10";
  DIR* d = opendir(dir.c_str());
  ASSERT_NE(d, nullptr);
  std::vector<std::string> files;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    // Resource files are named after their type (log.ndjson is not one).
    if (n.size() > 7 && n.substr(n.size() - 7) == ".ndjson" && n[0] >= 'A' && n[0] <= 'Z') {
      files.push_back(dir + "/" + n);
    }
  }
  closedir(d);
  ASSERT_FALSE(files.empty());
  size_t count = 0;
  for (const auto& f : files) {
    std::ifstream in(f);
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      auto parsed = ParseResource(line);
      ASSERT_TRUE(parsed.ok()) << f;
      Status s = ValidateResource(*parsed);
      EXPECT_TRUE(s.ok()) << f << ": " << s.ToString();
      ++count;
    }
  }
  EXPECT_GT(count, 100u);
  // The transaction Bundles, validated whole (entries included).
  std::string bdir = std::string(PHIVAULT_SOURCE_DIR) + "/data/samples/synthea-bundles";
  d = opendir(bdir.c_str());
  ASSERT_NE(d, nullptr);
  std::vector<std::string> bundles;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n.size() > 5 && n.substr(n.size() - 5) == ".json") bundles.push_back(n);
  }
  closedir(d);
  ASSERT_FALSE(bundles.empty());
  for (const auto& name : bundles) {
    std::string body = testing::ReadRepoFile("data/samples/synthea-bundles/" + name);
    Status s = Check(body);
    EXPECT_TRUE(s.ok()) << name << ": " << s.ToString();
  }
}

}  // namespace
}  // namespace phivault::fhir
