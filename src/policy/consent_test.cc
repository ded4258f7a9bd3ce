#include "policy/consent.h"

#include <gtest/gtest.h>

#include "policy/test_util.h"

namespace phivault::policy {
namespace {

using testing::kNow;
using testing::Res;

// An active patient-privacy Consent for p1 with the given provision JSON.
std::string ConsentJson(std::string_view provision, std::string_view status = "active",
                        std::string_view scope = "patient-privacy") {
  return std::string(R"({"resourceType":"Consent","id":"c1","status":")") + std::string(status) +
         R"(","scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":")" +
         std::string(scope) + R"("}]},"category":[{"text":"privacy"}],"patient":{"reference":"Patient/p1"},
         "provision":)" + std::string(provision) + "}";
}

ConsentAccess Access(std::string actor = "Practitioner/doc", std::string type = "Observation") {
  ConsentAccess a;
  a.actor_refs = {std::move(actor)};
  a.purpose_of_use = "TREAT";
  a.resource_type = std::move(type);
  a.resource_ref = a.resource_type + "/x1";
  a.now_ms = kNow;
  return a;
}

bool Denies(std::string_view provision, const ConsentAccess& a) {
  auto parsed = ParseConsent(Res(ConsentJson(provision)));
  if (!parsed) return false;
  return EvaluateConsent(**parsed, a).denied;
}

TEST(Consent, OnlyActivePatientPrivacyConsentsCount) {
  const char* deny_all = R"({"type":"deny"})";
  EXPECT_TRUE(ParseConsent(Res(ConsentJson(deny_all))).has_value());
  for (const char* status : {"draft", "proposed", "rejected", "inactive", "entered-in-error"}) {
    EXPECT_FALSE(ParseConsent(Res(ConsentJson(deny_all, status))).has_value()) << status;
  }
  for (const char* scope : {"treatment", "research", "adr"}) {
    EXPECT_FALSE(ParseConsent(Res(ConsentJson(deny_all, "active", scope))).has_value()) << scope;
  }
  EXPECT_FALSE(ParseConsent(Res(R"({"resourceType":"Consent","status":"active",
      "scope":{"coding":[{"system":"http://other","code":"patient-privacy"}]},"provision":{"type":"deny"}})")));
  EXPECT_FALSE(ParseConsent(Res(R"({"resourceType":"Consent","status":"active",
      "scope":{"coding":[{"code":"patient-privacy"}]}})"))) << "no provision: nothing denied";
}

TEST(Consent, DenyByActor) {
  const char* p = R"({"type":"deny","actor":[{"role":{"text":"x"},"reference":{"reference":"Practitioner/doc"}}]})";
  EXPECT_TRUE(Denies(p, Access("Practitioner/doc")));
  EXPECT_FALSE(Denies(p, Access("Practitioner/other")));
  // Absolute actor references compare by Type/id.
  EXPECT_TRUE(Denies(R"({"type":"deny","actor":[{"reference":{"reference":"https://h/fhir/Practitioner/doc"}}]})",
                     Access("Practitioner/doc")));
}

TEST(Consent, DenyByClassPurposeLabelAction) {
  const char* by_class = R"({"type":"deny","class":[{"system":"http://hl7.org/fhir/resource-types","code":"Observation"}]})";
  EXPECT_TRUE(Denies(by_class, Access("Practitioner/doc", "Observation")));
  EXPECT_FALSE(Denies(by_class, Access("Practitioner/doc", "Condition")));

  const char* by_purpose = R"({"type":"deny","purpose":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActReason","code":"HMARKT"}]})";
  ConsentAccess a = Access();
  EXPECT_FALSE(Denies(by_purpose, a));
  a.purpose_of_use = "HMARKT";
  EXPECT_TRUE(Denies(by_purpose, a));
  a.purpose_of_use = "";
  EXPECT_TRUE(Denies(by_purpose, a)) << "unknown purpose: a deny by purpose applies (fail closed)";
  const char* deny_treat = R"({"type":"deny","purpose":[{"code":"TREAT"}]})";
  a.purpose_of_use = "ETREAT";
  EXPECT_TRUE(Denies(deny_treat, a)) << "ETREAT is a kind of TREAT";

  const char* by_label = R"({"type":"deny","securityLabel":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"PSY"}]})";
  ConsentAccess l = Access();
  EXPECT_FALSE(Denies(by_label, l));
  l.labels = {{"http://terminology.hl7.org/CodeSystem/v3-ActCode", "PSY"}};
  EXPECT_TRUE(Denies(by_label, l));
  l.labels = {{"http://example.org/other", "PSY"}};
  EXPECT_FALSE(Denies(by_label, l)) << "the provision names a system";
  l.labels.clear();
  l.labels_known = false;
  EXPECT_TRUE(Denies(by_label, l)) << "labels unknown: deny applies";

  const char* by_action = R"({"type":"deny","action":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentaction","code":"access"}]}]})";
  ConsentAccess act = Access();
  EXPECT_TRUE(Denies(by_action, act));
  act.action = ConsentAction::kCollect;
  EXPECT_FALSE(Denies(by_action, act));
}

TEST(Consent, NestedExceptions) {
  // Opt-out with one exception: deny everyone, permit Dr Doc.
  const char* opt_out = R"({"type":"deny","provision":[{"type":"permit","actor":[{"reference":{"reference":"Practitioner/doc"}}]}]})";
  EXPECT_FALSE(Denies(opt_out, Access("Practitioner/doc")));
  EXPECT_TRUE(Denies(opt_out, Access("Practitioner/other")));
  // Base permit (root without type) with a nested deny of one class.
  const char* nested_deny = R"({"provision":[{"type":"deny","class":[{"code":"MedicationRequest"}]}]})";
  EXPECT_FALSE(Denies(nested_deny, Access("Practitioner/doc", "Observation")));
  EXPECT_TRUE(Denies(nested_deny, Access("Practitioner/doc", "MedicationRequest")));
  // Deny Observation, except for Dr Doc — but not PSY-labelled ones even for him.
  const char* deeper = R"({"type":"deny","class":[{"code":"Observation"}],"provision":[
      {"type":"permit","actor":[{"reference":{"reference":"Practitioner/doc"}}],"provision":[
        {"type":"deny","securityLabel":[{"code":"PSY"}]}]}]})";
  ConsentAccess a = Access();
  EXPECT_FALSE(Denies(deeper, a));
  a.labels = {{"", "PSY"}};
  EXPECT_TRUE(Denies(deeper, a));
  EXPECT_TRUE(Denies(deeper, Access("Practitioner/other")));
  EXPECT_FALSE(Denies(deeper, Access("Practitioner/other", "Condition")));
}

TEST(Consent, PeriodsAndData) {
  const char* past = R"({"type":"deny","period":{"start":"2020-01-01","end":"2020-12-31"}})";
  EXPECT_FALSE(Denies(past, Access()));
  const char* current = R"({"type":"deny","period":{"start":"2024-01-01"}})";
  EXPECT_TRUE(Denies(current, Access()));
  const char* data = R"({"type":"deny","data":[{"meaning":"instance","reference":{"reference":"Observation/x1"}}]})";
  EXPECT_TRUE(Denies(data, Access()));
  ConsentAccess other = Access();
  other.resource_ref = "Observation/x2";
  EXPECT_FALSE(Denies(data, other));
}

TEST(Consent, UnevaluableCriteriaFailClosedForDenyOnly) {
  // `code` cannot be evaluated: a deny with it applies...
  EXPECT_TRUE(Denies(R"({"type":"deny","code":[{"text":"x"}]})", Access()));
  // ...a permit with it does not (so the base deny stays).
  EXPECT_TRUE(Denies(R"({"type":"deny","provision":[{"type":"permit","code":[{"text":"x"}]}]})", Access()));
  // Group actors are not resolved: deny applies to everyone.
  EXPECT_TRUE(Denies(R"({"type":"deny","actor":[{"reference":{"reference":"Group/admitting"}}]})", Access()))
      << "Group membership is not resolved";
  EXPECT_TRUE(Denies(R"({"type":"deny","actor":[{"reference":{"reference":"#contained"}}]})", Access()));
  // Malformed provision tree: the whole consent denies.
  EXPECT_TRUE(Denies(R"({"type":"deny","actor":{"reference":"x"}})", Access("Practitioner/zzz")));
  EXPECT_TRUE(Denies(R"({"type":"maybe"})", Access()));
  EXPECT_TRUE(Denies(R"([])", Access()));
  EXPECT_TRUE(Denies(R"({"provision":[1]})", Access()));
}

TEST(ConsentIndex, UpdatesReplaceAndDeletesRemove) {
  ConsentIndex idx;
  testing::Write(idx, Res(ConsentJson(R"({"type":"deny"})")));
  ConsentVerdict v = idx.Evaluate("p1", Access());
  EXPECT_TRUE(v.denied);
  EXPECT_EQ(v.consent_ref, "Consent/c1");
  EXPECT_FALSE(idx.Evaluate("p2", Access()).denied);
  testing::Write(idx, Res(ConsentJson(R"({"type":"deny"})", "inactive")));
  EXPECT_FALSE(idx.Evaluate("p1", Access()).denied) << "revoked";
  EXPECT_EQ(idx.size(), 0u);
  testing::Write(idx, Res(ConsentJson(R"({"type":"deny"})")));
  EXPECT_TRUE(idx.Evaluate("p1", Access()).denied);
  testing::Delete(idx, "Consent", "c1");
  EXPECT_FALSE(idx.Evaluate("p1", Access()).denied);
  // Non-Consent writes are ignored.
  testing::Write(idx, Res(R"({"resourceType":"Observation","id":"c1","subject":{"reference":"Patient/p1"}})"));
  EXPECT_EQ(idx.size(), 0u);
}

TEST(ConsentIndex, Rebuild) {
  ConsentIndex idx;
  auto c = Res(ConsentJson(R"({"type":"deny"})"));
  ASSERT_TRUE(idx.Rebuild([&](const ResourceVisitor& v) {
                   v("Consent", "c1", c, {"p1"});
                   return Status::Ok();
                 }).ok());
  EXPECT_TRUE(idx.Evaluate("p1", Access()).denied);
}

}  // namespace
}  // namespace phivault::policy
