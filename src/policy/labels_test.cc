#include "policy/labels.h"

#include <gtest/gtest.h>

#include "policy/test_util.h"

namespace phivault::policy {
namespace {

using testing::Res;

TEST(Labels, ExtractsCodingsAndSkipsIllTyped) {
  auto r = Res(R"({"resourceType":"Observation","id":"o","meta":{"security":[
      {"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"R"},
      {"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"HIV"},
      {"code":5}, "text", {"system":"x"}]}})");
  auto labels = ExtractSecurityLabels(r);
  ASSERT_EQ(labels.size(), 2u);
  EXPECT_EQ(labels[0].code, "R");
  EXPECT_EQ(labels[1].code, "HIV");
  EXPECT_EQ(RequiredClearances(labels), (std::vector<std::string>{"HIV", "R"}));
  EXPECT_TRUE(ExtractSecurityLabels(Res(R"({"resourceType":"Observation","meta":[]})")).empty());
  EXPECT_TRUE(ExtractSecurityLabels(Res(R"({"resourceType":"Observation","meta":{"security":{}}})")).empty());
}

TEST(Labels, RequiredClearances) {
  std::vector<SecurityLabel> labels = {
      {std::string(kConfidentialitySystem), "N"},          // normal: nothing
      {std::string(kConfidentialitySystem), "V"},          // very restricted
      {"http://hl7.org/fhir/v3/ActCode", "PSY"},           // legacy system URL
      {"", "SUD"},                                         // no system: fail closed
      {"http://example.org/local", "HIV"},                 // other system: not ours
      {std::string(kActCodeSystem), "PSY"},                // duplicate
  };
  EXPECT_EQ(RequiredClearances(labels), (std::vector<std::string>{"PSY", "SUD", "V"}));
  for (std::string_view c : SensitivityCodes()) {
    EXPECT_EQ(RequiredClearances({{std::string(kActCodeSystem), std::string(c)}}).size(), 1u) << c;
  }
}

TEST(Labels, MissingClearance) {
  EXPECT_FALSE(MissingClearance({}, {}).has_value());
  EXPECT_EQ(MissingClearance({"R"}, {}), "R");
  EXPECT_FALSE(MissingClearance({"R"}, {"R"}).has_value());
  EXPECT_FALSE(MissingClearance({"R"}, {"V"}).has_value());  // V covers R
  EXPECT_EQ(MissingClearance({"V"}, {"R"}), "V");             // but not the reverse
  EXPECT_EQ(MissingClearance({"HIV", "PSY"}, {"HIV"}), "PSY");
}

TEST(PatientLabelIndex, FollowsWritesAndDeletes) {
  PatientLabelIndex idx;
  testing::Write(idx, Res(R"({"resourceType":"Patient","id":"p1","meta":{"security":[
      {"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"ETH"}]}})"));
  EXPECT_EQ(idx.PatientClearances("p1"), (std::vector<std::string>{"ETH"}));
  EXPECT_TRUE(idx.PatientClearances("p2").empty());
  testing::Write(idx, Res(R"({"resourceType":"Patient","id":"p1"})"));
  EXPECT_TRUE(idx.PatientClearances("p1").empty());
  testing::Write(idx, Res(R"({"resourceType":"Patient","id":"p1","meta":{"security":[{"code":"R"}]}})"));
  EXPECT_EQ(idx.PatientClearances("p1"), (std::vector<std::string>{"R"}));
  testing::Delete(idx, "Patient", "p1");
  EXPECT_TRUE(idx.PatientClearances("p1").empty());
  // Other types never label a patient.
  testing::Write(idx, Res(R"({"resourceType":"Observation","id":"p1","meta":{"security":[{"code":"R"}]}})"));
  EXPECT_TRUE(idx.PatientClearances("p1").empty());
}

TEST(PatientLabelIndex, RebuildReplacesOrKeeps) {
  PatientLabelIndex idx;
  testing::Write(idx, Res(R"({"resourceType":"Patient","id":"old","meta":{"security":[{"code":"R"}]}})"));
  auto fresh = Res(R"({"resourceType":"Patient","id":"new","meta":{"security":[{"code":"V"}]}})");
  EXPECT_FALSE(idx.Rebuild([&](const ResourceVisitor&) { return Unavailable("store closed"); }).ok());
  EXPECT_FALSE(idx.PatientClearances("old").empty());
  ASSERT_TRUE(idx.Rebuild([&](const ResourceVisitor& v) {
                   v("Patient", "new", fresh, {"new"});
                   return Status::Ok();
                 }).ok());
  EXPECT_TRUE(idx.PatientClearances("old").empty());
  EXPECT_EQ(idx.PatientClearances("new"), (std::vector<std::string>{"V"}));
}

}  // namespace
}  // namespace phivault::policy
