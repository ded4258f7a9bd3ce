// Focused PolicyEngine tests: break-glass, devices, each role's boundaries,
// scopes, labels, consent actors and the decision's explanations.
#include "policy/engine.h"

#include <atomic>
#include <thread>

#include <boost/json/serialize.hpp>
#include <gtest/gtest.h>

#include "policy/test_util.h"

namespace phivault::policy {
namespace {

using testing::kMinuteMs;
using testing::kNow;
using testing::Req;
using testing::Res;

constexpr const char* kObsP1 = R"({"resourceType":"Observation","id":"o1","status":"final","code":{"text":"x"},
    "subject":{"reference":"Patient/p1"}})";
constexpr const char* kObsP2 = R"({"resourceType":"Observation","id":"o2","status":"final","code":{"text":"x"},
    "subject":{"reference":"Patient/p2"}})";
constexpr const char* kCareTeamP1 = R"({"resourceType":"CareTeam","id":"ct1","status":"active",
    "subject":{"reference":"Patient/p1"},"participant":[{"member":{"reference":"Practitioner/doc"}}]})";

class EngineTest : public ::testing::Test {
 protected:
  explicit EngineTest(PolicyConfig config = {}) : indexes_(config), engine_(config, indexes_.sources()) {}

  void W(std::string_view json) { testing::Write(indexes_, Res(json)); }
  Decision Decide(const Principal& p, const AccessRequest& r) { return engine_.Decide(p, r); }

  static Principal Clinician() {
    return testing::MakePrincipal(Role::kClinician, "Practitioner/doc", testing::Scopes({"user/*.cruds"}));
  }
  static AccessRequest BreakGlass(AccessRequest r) {
    r.purpose_of_use = "ETREAT";
    r.break_glass_reason = "cardiac arrest, no records available";
    return r;
  }

  PolicyIndexes indexes_;
  PolicyEngine engine_;
};

// ---------------------------------------------------------------------------
// Break-glass
// ---------------------------------------------------------------------------

TEST_F(EngineTest, BreakGlassOverridesMissingRelationshipForTheWindow) {
  auto obs = Res(kObsP1);
  Principal doc = Clinician();
  Decision d = Decide(doc, Req(Interaction::kRead, obs));
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.rule, "care-relationship");
  EXPECT_TRUE(d.hide_existence);

  // ETREAT without a reason (or a reason without ETREAT) is not break-glass.
  AccessRequest half = Req(Interaction::kRead, obs);
  half.purpose_of_use = "ETREAT";
  EXPECT_FALSE(Decide(doc, half).allowed);
  half.purpose_of_use = "TREAT";
  half.break_glass_reason = "emergency";
  EXPECT_FALSE(Decide(doc, half).allowed);

  d = Decide(doc, BreakGlass(Req(Interaction::kRead, obs)));
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.rule, "break-glass");
  EXPECT_TRUE(d.break_glass);
  EXPECT_TRUE(d.break_glass_activated);
  EXPECT_EQ(engine_.BreakGlassExpiry(doc.subject, "p1", kNow), kNow + 60 * kMinuteMs);
  // The audit record carries the reason and the flags.
  boost::json::object rec = DecisionRecord(doc, BreakGlass(Req(Interaction::kRead, obs)), d);
  EXPECT_EQ(rec.at("break_glass").as_bool(), true);
  EXPECT_EQ(rec.at("break_glass_reason").as_string(), "cardiac arrest, no records available");
  EXPECT_EQ(rec.at("rule").as_string(), "break-glass");

  // Within the window: plain requests (and searches) are allowed, marked, no new alert.
  for (Interaction i : {Interaction::kRead, Interaction::kSearch, Interaction::kHistory, Interaction::kUpdate}) {
    d = Decide(doc, Req(i, obs, kNow + 60 * kMinuteMs - 1));
    EXPECT_TRUE(d.allowed) << InteractionName(i);
    EXPECT_TRUE(d.break_glass);
    EXPECT_FALSE(d.break_glass_activated);
  }
  // Only that patient.
  EXPECT_FALSE(Decide(doc, Req(Interaction::kRead, Res(kObsP2))).allowed);
  // Only that user.
  Principal other = Clinician();
  other.subject = "another-doctor";
  EXPECT_FALSE(Decide(other, Req(Interaction::kRead, obs)).allowed);
  // Expired at exactly activation + window.
  d = Decide(doc, Req(Interaction::kRead, obs, kNow + 60 * kMinuteMs));
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.rule, "care-relationship");
  EXPECT_FALSE(engine_.BreakGlassExpiry(doc.subject, "p1", kNow + 60 * kMinuteMs).has_value());
  // And can be opened again (a new alert).
  d = Decide(doc, BreakGlass(Req(Interaction::kRead, obs, kNow + 61 * kMinuteMs)));
  EXPECT_TRUE(d.break_glass_activated);
}

TEST_F(EngineTest, BreakGlassOverridesSensitivity) {
  W(kCareTeamP1);
  auto obs = Res(R"({"resourceType":"Observation","id":"o1","meta":{"security":[
      {"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"HIV"}]},
      "subject":{"reference":"Patient/p1"}})");
  Principal doc = Clinician();
  Decision d = Decide(doc, Req(Interaction::kRead, obs));
  EXPECT_EQ(d.rule, "sensitivity");
  EXPECT_TRUE(d.hide_existence);
  EXPECT_EQ(d.reason.find("HIV"), std::string::npos) << "the label itself is protected data";
  d = Decide(doc, BreakGlass(Req(Interaction::kRead, obs)));
  EXPECT_TRUE(d.allowed && d.break_glass && d.break_glass_activated);
  doc.clearances = {"HIV"};
  d = Decide(doc, Req(Interaction::kRead, obs));
  EXPECT_TRUE(d.allowed);
  EXPECT_FALSE(d.break_glass) << "a clearance needs no break-glass";
}

TEST_F(EngineTest, BreakGlassRefusedForOtherRoles) {
  auto patient = Res(R"({"resourceType":"Patient","id":"p1","meta":{"security":[{"code":"R"}]}})");
  W(boost::json::serialize(patient));
  Principal reg = testing::MakePrincipal(Role::kRegistration, "Practitioner/reg", testing::Scopes({"user/*.cruds"}));
  Decision d = Decide(reg, BreakGlass(Req(Interaction::kRead, patient)));
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.rule, "sensitivity");
  EXPECT_TRUE(d.break_glass_requested);
  EXPECT_FALSE(engine_.BreakGlassExpiry(reg.subject, "p1", kNow).has_value());
  Principal sys = testing::MakePrincipal(Role::kSystem, "", testing::Scopes({"system/*.cruds"}));
  sys.subject = "backend";
  EXPECT_FALSE(Decide(sys, BreakGlass(Req(Interaction::kRead, patient))).allowed);
}

TEST_F(EngineTest, BreakGlassCannotBeOpenedBySearch) {
  auto obs = Res(kObsP1);
  Decision d = Decide(Clinician(), BreakGlass(Req(Interaction::kSearch, obs)));
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.rule, "care-relationship");
  EXPECT_FALSE(engine_.BreakGlassExpiry("clinician-account", "p1", kNow).has_value());
}

// What a history scan or a bulk export returns is not "one concrete
// resource": a request there would open grants for every patient reached.
TEST_F(EngineTest, BreakGlassCannotBeOpenedByHistoryScansOrExport) {
  auto obs = Res(kObsP1);
  Principal doc = Clinician();
  for (Interaction i : {Interaction::kHistory, Interaction::kRead}) {
    AccessRequest scanned = BreakGlass(Req(i, obs));
    scanned.instance_level = false;  // a hit of type/system history, or an exported resource
    Decision d = Decide(doc, scanned);
    EXPECT_FALSE(d.allowed) << InteractionName(i);
    EXPECT_FALSE(d.break_glass_activated) << InteractionName(i);
  }
  EXPECT_FALSE(engine_.BreakGlassExpiry(doc.subject, "p1", kNow).has_value());
  // Named instance: still possible.
  EXPECT_TRUE(Decide(doc, BreakGlass(Req(Interaction::kHistory, obs))).break_glass_activated);
}

// Break-glass opens one patient's record for an hour; it must not let the
// clinician write themselves a care relationship that outlives the grant.
TEST_F(EngineTest, BreakGlassCannotWriteCareRelationships) {
  Principal doc = Clinician();
  ASSERT_TRUE(Decide(doc, BreakGlass(Req(Interaction::kRead, Res(kObsP1)))).break_glass_activated);
  const char* relationship_makers[] = {
      kCareTeamP1,
      R"({"resourceType":"Encounter","id":"e1","status":"in-progress","subject":{"reference":"Patient/p1"},
          "participant":[{"individual":{"reference":"Practitioner/doc"}}]})",
      R"({"resourceType":"EpisodeOfCare","id":"eoc1","status":"active","patient":{"reference":"Patient/p1"},
          "careManager":{"reference":"Practitioner/doc"}})"};
  for (const char* json : relationship_makers) {
    auto r = Res(json);
    for (Interaction i : {Interaction::kCreate, Interaction::kUpdate}) {
      for (bool headers : {false, true}) {  // inside the grant, with or without sending ETREAT again
        Decision d = Decide(doc, headers ? BreakGlass(Req(i, r)) : Req(i, r));
        EXPECT_FALSE(d.allowed) << json << " " << InteractionName(i);
        EXPECT_EQ(d.rule, "care-relationship");
      }
    }
    EXPECT_TRUE(Decide(doc, Req(Interaction::kRead, r)).allowed) << "reading them stays open under the grant";
  }
  // Other clinical writes in the emergency are what break-glass is for.
  EXPECT_TRUE(Decide(doc, Req(Interaction::kCreate, Res(kObsP1))).allowed);
  // A clinician already related may still maintain the care team under a
  // sensitivity override.
  W(kCareTeamP1);
  auto labelled = Res(R"({"resourceType":"CareTeam","id":"ct2","status":"active","meta":{"security":[
      {"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"PSY"}]},
      "subject":{"reference":"Patient/p1"},"participant":[{"member":{"reference":"Practitioner/doc"}}]})");
  Decision d = Decide(doc, BreakGlass(Req(Interaction::kUpdate, labelled)));
  EXPECT_TRUE(d.allowed) << d.reason;
  EXPECT_TRUE(d.break_glass);
}

// A CareTeam with no patient relates its members to the patient of every
// EpisodeOfCare that lists it: a clinician must not be able to join one.
TEST_F(EngineTest, ClinicianCannotWriteACareTeamThatNamesNoPatient) {
  W(R"({"resourceType":"EpisodeOfCare","id":"eoc1","status":"active","patient":{"reference":"Patient/p1"},
        "team":[{"reference":"CareTeam/org-team"}]})");
  auto team = Res(R"({"resourceType":"CareTeam","id":"org-team","status":"active",
      "participant":[{"member":{"reference":"Practitioner/doc"}}]})");
  Principal doc = Clinician();
  for (Interaction i : {Interaction::kCreate, Interaction::kUpdate}) {
    Decision d = Decide(doc, Req(i, team));
    EXPECT_FALSE(d.allowed) << InteractionName(i);
    EXPECT_EQ(d.rule, "care-relationship");
    EXPECT_FALSE(Decide(doc, BreakGlass(Req(i, team))).allowed) << "break-glass does not open it either";
  }
  EXPECT_TRUE(Decide(doc, Req(Interaction::kRead, team)).allowed) << "reading it is not joining it";
  Principal sys = testing::MakePrincipal(Role::kSystem, "", testing::Scopes({"system/*.cruds"}));
  sys.subject = "integration-engine";
  EXPECT_TRUE(Decide(sys, Req(Interaction::kUpdate, team)).allowed);
}

constexpr const char* kDenyDocConsent = R"({"resourceType":"Consent","id":"c1","status":"active",
    "scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"patient-privacy"}]},
    "category":[{"text":"x"}],"patient":{"reference":"Patient/p1"},
    "provision":{"type":"deny","actor":[{"reference":{"reference":"Practitioner/doc"}}]}})";

TEST_F(EngineTest, ConsentsDoNotHideThemselvesOrTheAuditTrail) {
  W(R"({"resourceType":"Consent","id":"c1","status":"active","scope":{"coding":[{"code":"patient-privacy"}]},
        "patient":{"reference":"Patient/p1"},"provision":{"type":"deny"}})");
  Principal po = testing::MakePrincipal(Role::kPrivacyOfficer, "Practitioner/po", testing::Scopes({"user/*.cruds"}));
  auto consent = Res(kDenyDocConsent);
  EXPECT_TRUE(Decide(po, Req(Interaction::kRead, consent)).allowed);
  EXPECT_TRUE(Decide(po, Req(Interaction::kUpdate, consent)).allowed) << "so it can be revoked";
  auto audit = Res(R"({"resourceType":"AuditEvent","id":"a1","agent":[{"who":{"reference":"Patient/p1"}}]})");
  EXPECT_TRUE(Decide(po, Req(Interaction::kRead, audit)).allowed);
  // Everything else about p1 is denied to everyone but the patient.
  W(kCareTeamP1);
  EXPECT_EQ(Decide(Clinician(), Req(Interaction::kRead, Res(kObsP1))).rule, "consent");
  EXPECT_TRUE(Decide(Clinician(), Req(Interaction::kRead, consent)).allowed);
}

TEST_F(EngineTest, BreakGlassDoesNotOverrideConsentByDefault) {
  W(kCareTeamP1);
  W(kDenyDocConsent);
  auto obs = Res(kObsP1);
  Decision d = Decide(Clinician(), BreakGlass(Req(Interaction::kRead, obs)));
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.rule, "consent");
  EXPECT_TRUE(d.hide_existence);
}

class OverrideEngineTest : public EngineTest {
 protected:
  static PolicyConfig Config() {
    PolicyConfig c;
    c.break_glass_overrides_consent = true;
    c.break_glass_window_ms = 5 * kMinuteMs;
    return c;
  }
  OverrideEngineTest() : EngineTest(Config()) {}
};

TEST_F(OverrideEngineTest, BreakGlassOverridesConsentWhenConfigured) {
  W(kCareTeamP1);
  W(kDenyDocConsent);
  auto obs = Res(kObsP1);
  EXPECT_EQ(Decide(Clinician(), Req(Interaction::kRead, obs)).rule, "consent");
  Decision d = Decide(Clinician(), BreakGlass(Req(Interaction::kRead, obs)));
  EXPECT_TRUE(d.allowed && d.break_glass_activated);
  EXPECT_TRUE(Decide(Clinician(), Req(Interaction::kRead, obs, kNow + 5 * kMinuteMs - 1)).allowed);
  EXPECT_FALSE(Decide(Clinician(), Req(Interaction::kRead, obs, kNow + 5 * kMinuteMs)).allowed);
}

// ---------------------------------------------------------------------------
// Relationships through the engine take effect with the write.
// ---------------------------------------------------------------------------

TEST_F(EngineTest, RelationshipWritesTakeEffectImmediately) {
  auto obs = Res(kObsP1);
  EXPECT_FALSE(Decide(Clinician(), Req(Interaction::kRead, obs)).allowed);
  W(kCareTeamP1);
  EXPECT_TRUE(Decide(Clinician(), Req(Interaction::kRead, obs)).allowed);
  W(R"({"resourceType":"CareTeam","id":"ct1","status":"inactive","subject":{"reference":"Patient/p1"},
        "participant":[{"member":{"reference":"Practitioner/doc"}}]})");
  EXPECT_FALSE(Decide(Clinician(), Req(Interaction::kRead, obs)).allowed);
  W(R"({"resourceType":"Patient","id":"p1","generalPractitioner":[{"reference":"Practitioner/doc"}]})");
  EXPECT_TRUE(Decide(Clinician(), Req(Interaction::kRead, obs)).allowed);
  testing::Delete(indexes_, "Patient", "p1");
  EXPECT_FALSE(Decide(Clinician(), Req(Interaction::kRead, obs)).allowed);
}

TEST_F(EngineTest, MultiPatientResourcesNeedEveryRelationship) {
  W(kCareTeamP1);
  // A Group-less multi-patient link (the compartment may list several patients).
  auto obs = Res(kObsP1);
  AccessRequest r = Req(Interaction::kRead, obs);
  r.patients = {"p1", "p2"};
  Decision d = Decide(Clinician(), r);
  EXPECT_EQ(d.rule, "care-relationship");
}

// ---------------------------------------------------------------------------
// Devices
// ---------------------------------------------------------------------------

class DeviceTest : public EngineTest {
 protected:
  Principal Dev() {
    Principal p = testing::MakePrincipal(Role::kDevice, "Device/dev1", testing::Scopes({"system/*.cruds"}));
    p.device_patients = {"p1"};
    return p;
  }
};

TEST_F(DeviceTest, WritesOnlyAllowedTypesForBoundPatients) {
  EXPECT_TRUE(Decide(Dev(), Req(Interaction::kCreate, Res(kObsP1))).allowed);
  EXPECT_TRUE(Decide(Dev(), Req(Interaction::kCreate, Res(R"({"resourceType":"Media","id":"m",
      "status":"completed","content":{},"subject":{"reference":"Patient/p1"}})"))).allowed);
  EXPECT_TRUE(Decide(Dev(), Req(Interaction::kCreate, Res(R"({"resourceType":"DeviceMetric","id":"dm",
      "type":{},"category":"measurement","source":{"reference":"Device/dev1"}})"))).allowed);
  Decision d = Decide(Dev(), Req(Interaction::kCreate, Res(kObsP2)));
  EXPECT_EQ(d.rule, "device-binding");
  EXPECT_FALSE(d.hide_existence) << "nothing exists to hide on create";
  EXPECT_EQ(Decide(Dev(), Req(Interaction::kCreate, Res(R"({"resourceType":"Condition","id":"c",
      "subject":{"reference":"Patient/p1"}})"))).rule, "role");
  EXPECT_EQ(Decide(Dev(), Req(Interaction::kCreate, Res(R"({"resourceType":"Observation","id":"o",
      "status":"final","code":{}})"))).rule, "device-binding") << "an Observation must name its patient";
  AccessRequest del = Req(Interaction::kDelete, Res(kObsP1));
  del.resource_author_device = "Device/dev1";
  EXPECT_EQ(Decide(Dev(), del).rule, "role");
}

TEST_F(DeviceTest, UpdatesOnlyItsOwnOrNewResources) {
  auto obs = Res(kObsP1);
  AccessRequest u = Req(Interaction::kUpdate, obs);
  u.resource_author_device = "Device/dev1";
  EXPECT_TRUE(Decide(Dev(), u).allowed);
  u.resource_author_device = "";  // update-as-create
  EXPECT_TRUE(Decide(Dev(), u).allowed);
  u.resource_author_device = "Practitioner/doc";
  Decision d = Decide(Dev(), u);
  EXPECT_EQ(d.rule, "device-binding");
  EXPECT_TRUE(d.hide_existence);
}

TEST_F(DeviceTest, ReadsBackOnlyItsOwnWrites) {
  auto obs = Res(kObsP1);
  for (Interaction i : {Interaction::kRead, Interaction::kVRead, Interaction::kSearch, Interaction::kHistory}) {
    AccessRequest r = Req(i, obs);
    r.resource_author_device = "Device/dev1";
    EXPECT_TRUE(Decide(Dev(), r).allowed) << InteractionName(i);
    r.resource_author_device = "Device/dev2";
    Decision d = Decide(Dev(), r);
    EXPECT_EQ(d.rule, "device-binding") << InteractionName(i);
    EXPECT_TRUE(d.hide_existence);
    r.resource_author_device = "";
    EXPECT_FALSE(Decide(Dev(), r).allowed);
  }
  AccessRequest r = Req(Interaction::kRead, Res(R"({"resourceType":"Patient","id":"p1"})"));
  r.resource_author_device = "Device/dev1";
  EXPECT_EQ(Decide(Dev(), r).rule, "role") << "a device never reads patients";
}

// ---------------------------------------------------------------------------
// Role boundaries
// ---------------------------------------------------------------------------

TEST_F(EngineTest, RegistrationDemographicsOnly) {
  Principal reg = testing::MakePrincipal(Role::kRegistration, "Practitioner/reg", testing::Scopes({"user/*.cruds"}));
  auto patient = Res(R"({"resourceType":"Patient","id":"p1"})");
  for (Interaction i : {Interaction::kRead, Interaction::kSearch, Interaction::kCreate, Interaction::kUpdate,
                        Interaction::kHistory, Interaction::kVRead}) {
    EXPECT_TRUE(Decide(reg, Req(i, patient)).allowed) << InteractionName(i);
  }
  EXPECT_EQ(Decide(reg, Req(Interaction::kDelete, patient)).rule, "role");
  auto rp = Res(R"({"resourceType":"RelatedPerson","id":"rp","patient":{"reference":"Patient/p1"}})");
  EXPECT_TRUE(Decide(reg, Req(Interaction::kCreate, rp)).allowed);
  EXPECT_EQ(Decide(reg, Req(Interaction::kRead, Res(kObsP1))).rule, "role");
  EXPECT_EQ(Decide(reg, Req(Interaction::kCreate, Res(kObsP1))).rule, "role");
  EXPECT_TRUE(Decide(reg, Req(Interaction::kRead, Res(R"({"resourceType":"Practitioner","id":"x"})"))).allowed);
}

TEST_F(EngineTest, PrivacyOfficerAndSecurityAdminSeeNoClinicalContent) {
  Principal po = testing::MakePrincipal(Role::kPrivacyOfficer, "Practitioner/po", testing::Scopes({"user/*.cruds"}));
  Principal sa = testing::MakePrincipal(Role::kSecurityAdmin, "Practitioner/sa", testing::Scopes({"user/*.cruds"}));
  auto audit = Res(R"({"resourceType":"AuditEvent","id":"a1","type":{},"recorded":"2024-01-01T00:00:00Z",
      "agent":[{"who":{"reference":"Patient/p1"},"requestor":false}],"source":{"observer":{}}})");
  auto consent = Res(kDenyDocConsent);
  auto device = Res(R"({"resourceType":"Device","id":"d1","patient":{"reference":"Patient/p1"}})");
  auto practitioner = Res(R"({"resourceType":"Practitioner","id":"x"})");
  for (const char* clinical : {kObsP1, R"({"resourceType":"Condition","id":"c","subject":{"reference":"Patient/p1"}})",
                               R"({"resourceType":"DocumentReference","id":"d","subject":{"reference":"Patient/p1"}})",
                               R"({"resourceType":"Patient","id":"p1"})"}) {
    auto r = Res(clinical);
    for (Interaction i : {Interaction::kRead, Interaction::kSearch, Interaction::kHistory}) {
      EXPECT_EQ(Decide(po, Req(i, r)).rule, "role") << clinical;
      EXPECT_EQ(Decide(sa, Req(i, r)).rule, "role") << clinical;
    }
  }
  EXPECT_TRUE(Decide(po, Req(Interaction::kRead, audit)).allowed);
  EXPECT_TRUE(Decide(po, Req(Interaction::kSearch, audit)).allowed);
  EXPECT_EQ(Decide(po, Req(Interaction::kDelete, audit)).rule, "role") << "audit is append-only";
  EXPECT_TRUE(Decide(po, Req(Interaction::kCreate, consent)).allowed);
  EXPECT_TRUE(Decide(po, Req(Interaction::kUpdate, consent)).allowed);
  EXPECT_EQ(Decide(sa, Req(Interaction::kRead, audit)).rule, "role");
  EXPECT_EQ(Decide(sa, Req(Interaction::kRead, consent)).rule, "role");
  for (Interaction i : {Interaction::kRead, Interaction::kCreate, Interaction::kUpdate, Interaction::kDelete}) {
    EXPECT_TRUE(Decide(sa, Req(i, device)).allowed) << InteractionName(i);
    EXPECT_TRUE(Decide(sa, Req(i, practitioner)).allowed) << InteractionName(i);
  }
}

TEST_F(EngineTest, PatientReadsOwnCompartmentOnly) {
  Principal pat = testing::MakePrincipal(Role::kPatient, "Patient/p1", testing::Scopes({"patient/*.cruds"}));
  W(R"({"resourceType":"Patient","id":"p1","meta":{"security":[{"code":"PSY"}]}})");
  W(R"({"resourceType":"Consent","id":"c9","status":"active","scope":{"coding":[{"code":"patient-privacy"}]},
        "patient":{"reference":"Patient/p1"},"provision":{"type":"deny"}})");
  auto own = Res(R"({"resourceType":"Observation","id":"o1","meta":{"security":[{"code":"R"}]},
      "subject":{"reference":"Patient/p1"}})");
  for (Interaction i : {Interaction::kRead, Interaction::kVRead, Interaction::kSearch, Interaction::kHistory}) {
    Decision d = Decide(pat, Req(i, own));
    EXPECT_TRUE(d.allowed) << InteractionName(i) << " " << d.rule << " (own labels/consent never restrict)";
  }
  for (Interaction i : {Interaction::kCreate, Interaction::kUpdate, Interaction::kDelete}) {
    EXPECT_EQ(Decide(pat, Req(i, own)).rule, "role") << InteractionName(i);
  }
  Decision other = Decide(pat, Req(Interaction::kRead, Res(kObsP2)));
  EXPECT_EQ(other.rule, "patient-compartment");
  EXPECT_TRUE(other.hide_existence);
  EXPECT_TRUE(Decide(pat, Req(Interaction::kRead, Res(R"({"resourceType":"Practitioner","id":"x"})"))).allowed);
  EXPECT_EQ(Decide(pat, Req(Interaction::kRead, Res(R"({"resourceType":"Group","id":"g"})"))).rule,
            "patient-compartment") << "patient-less clinical-class data is not theirs";
  EXPECT_EQ(Decide(pat, Req(Interaction::kRead, Res(R"({"resourceType":"AuditEvent","id":"a",
      "agent":[{"who":{"reference":"Patient/p1"}}]})"))).rule, "role");
  Principal wrong = testing::MakePrincipal(Role::kPatient, "Practitioner/x", testing::Scopes({"patient/*.rs"}));
  EXPECT_EQ(Decide(wrong, Req(Interaction::kRead, own)).rule, "identity");
}

class PatientWritesTest : public EngineTest {
 protected:
  static PolicyConfig Config() {
    PolicyConfig c;
    c.patient_writable_types = {"QuestionnaireResponse"};
    return c;
  }
  PatientWritesTest() : EngineTest(Config()) {}
};

TEST_F(PatientWritesTest, ConfiguredPatientWritesStayInOwnCompartment) {
  Principal pat = testing::MakePrincipal(Role::kPatient, "Patient/p1", testing::Scopes({"patient/*.cruds"}));
  auto mine = Res(R"({"resourceType":"QuestionnaireResponse","id":"q","status":"completed",
      "subject":{"reference":"Patient/p1"}})");
  auto theirs = Res(R"({"resourceType":"QuestionnaireResponse","id":"q","status":"completed",
      "subject":{"reference":"Patient/p2"}})");
  EXPECT_TRUE(Decide(pat, Req(Interaction::kCreate, mine)).allowed);
  EXPECT_TRUE(Decide(pat, Req(Interaction::kUpdate, mine)).allowed);
  EXPECT_EQ(Decide(pat, Req(Interaction::kDelete, mine)).rule, "role");
  EXPECT_EQ(Decide(pat, Req(Interaction::kCreate, theirs)).rule, "patient-compartment");
}

// ---------------------------------------------------------------------------
// Scopes
// ---------------------------------------------------------------------------

TEST_F(EngineTest, ScopesIntersectWithRole) {
  W(kCareTeamP1);
  auto obs = Res(kObsP1);
  Principal doc = Clinician();
  doc.scopes = testing::Scopes({"user/Observation.rs"});
  EXPECT_TRUE(Decide(doc, Req(Interaction::kRead, obs)).allowed);
  EXPECT_TRUE(Decide(doc, Req(Interaction::kSearch, obs)).allowed);
  Decision d = Decide(doc, Req(Interaction::kCreate, obs));
  EXPECT_EQ(d.rule, "scope");
  EXPECT_FALSE(d.hide_existence);
  EXPECT_EQ(Decide(doc, Req(Interaction::kUpdate, obs)).rule, "scope");
  EXPECT_EQ(Decide(doc, Req(Interaction::kRead, Res(R"({"resourceType":"Condition","id":"c",
      "subject":{"reference":"Patient/p1"}})"))).rule, "scope");
  // r covers instance history; s covers type-level history.
  doc.scopes = testing::Scopes({"user/Observation.r"});
  EXPECT_TRUE(Decide(doc, Req(Interaction::kHistory, obs)).allowed);
  AccessRequest type_history = Req(Interaction::kHistory, obs);
  type_history.id.clear();
  EXPECT_EQ(Decide(doc, type_history).rule, "scope");
  // A type-history hit names its resource but is still type-level history.
  AccessRequest history_hit = Req(Interaction::kHistory, obs);
  history_hit.instance_level = false;
  EXPECT_EQ(Decide(doc, history_hit).rule, "scope");
  EXPECT_EQ(engine_.DecideType(doc, Interaction::kHistory, "Observation", /*id_known=*/false).rule, "scope");
  EXPECT_EQ(Decide(doc, Req(Interaction::kSearch, obs)).rule, "scope");
  doc.scopes.clear();
  EXPECT_EQ(Decide(doc, Req(Interaction::kRead, obs)).rule, "scope") << "no scopes, no access";
}

TEST_F(EngineTest, PatientScopesStayInTheLaunchContext) {
  W(kCareTeamP1);
  W(R"({"resourceType":"CareTeam","id":"ct2","subject":{"reference":"Patient/p2"},
        "participant":[{"member":{"reference":"Practitioner/doc"}}]})");
  Principal doc = Clinician();
  doc.scopes = testing::Scopes({"patient/Observation.rs"});
  EXPECT_EQ(Decide(doc, Req(Interaction::kRead, Res(kObsP1))).rule, "scope") << "no launch context";
  doc.launch_patient = "p1";
  EXPECT_TRUE(Decide(doc, Req(Interaction::kRead, Res(kObsP1))).allowed);
  Decision d = Decide(doc, Req(Interaction::kRead, Res(kObsP2)));
  EXPECT_EQ(d.rule, "scope");
  EXPECT_TRUE(d.hide_existence) << "the denial depends on the record's patient";
}

TEST_F(EngineTest, SystemRoleIsLimitedByScopesOnly) {
  Principal sys = testing::MakePrincipal(Role::kSystem, "", testing::Scopes({"system/Observation.rs"}));
  sys.subject = "lab-interface";
  auto obs = Res(kObsP1);
  EXPECT_TRUE(Decide(sys, Req(Interaction::kRead, obs)).allowed) << "no care relationship needed";
  EXPECT_TRUE(Decide(sys, Req(Interaction::kSearch, Res(kObsP2))).allowed);
  EXPECT_EQ(Decide(sys, Req(Interaction::kCreate, obs)).rule, "scope");
  EXPECT_EQ(Decide(sys, Req(Interaction::kRead, Res(R"({"resourceType":"Patient","id":"p1"})"))).rule, "scope");
  sys.scopes = testing::Scopes({"system/*.cruds"});
  EXPECT_TRUE(Decide(sys, Req(Interaction::kDelete, Res(R"({"resourceType":"AuditEvent","id":"a"})"))).allowed);
}

TEST_F(EngineTest, DecideTypeIsTheTypeLevelGate) {
  Principal reg = testing::MakePrincipal(Role::kRegistration, "Practitioner/reg", testing::Scopes({"user/*.cruds"}));
  EXPECT_EQ(engine_.DecideType(reg, Interaction::kSearch, "Observation").rule, "role");
  EXPECT_TRUE(engine_.DecideType(reg, Interaction::kSearch, "Patient").allowed);
  EXPECT_TRUE(engine_.DecideType(Clinician(), Interaction::kRead, "Observation").allowed);
  Principal doc = Clinician();
  doc.scopes = testing::Scopes({"user/Observation.r"});
  EXPECT_TRUE(engine_.DecideType(doc, Interaction::kHistory, "Observation", /*id_known=*/true).allowed);
  EXPECT_EQ(engine_.DecideType(doc, Interaction::kHistory, "Observation", /*id_known=*/false).rule, "scope");
  EXPECT_EQ(engine_.DecideType(Clinician(), Interaction::kRead, "NotAType").rule, "request");
  Principal dev = testing::MakePrincipal(Role::kDevice, "Device/d", testing::Scopes({"system/*.cruds"}));
  EXPECT_EQ(engine_.DecideType(dev, Interaction::kRead, "Condition").rule, "role");
  EXPECT_TRUE(engine_.DecideType(dev, Interaction::kCreate, "Observation").allowed);
}

TEST_F(EngineTest, IdentityIsRequired) {
  Principal doc = Clinician();
  doc.subject.clear();
  EXPECT_EQ(Decide(doc, Req(Interaction::kRead, Res(kObsP1))).rule, "identity");
  doc = Clinician();
  doc.fhir_user = "Patient/p1";
  EXPECT_EQ(Decide(doc, Req(Interaction::kRead, Res(kObsP1))).rule, "identity");
  doc.fhir_user = "PractitionerRole/r1";
  W(R"({"resourceType":"CareTeam","id":"ct","subject":{"reference":"Patient/p1"},
        "participant":[{"member":{"reference":"PractitionerRole/r1"}}]})");
  EXPECT_TRUE(Decide(doc, Req(Interaction::kRead, Res(kObsP1))).allowed);
}

// ---------------------------------------------------------------------------
// Labels, consent actors, explanations
// ---------------------------------------------------------------------------

TEST_F(EngineTest, PatientLevelLabelsCoverTheirRecords) {
  W(kCareTeamP1);
  W(R"({"resourceType":"Patient","id":"p1","meta":{"security":[
        {"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"PSY"}]}})");
  auto obs = Res(kObsP1);
  Principal doc = Clinician();
  EXPECT_EQ(Decide(doc, Req(Interaction::kRead, obs)).rule, "sensitivity");
  doc.clearances = {"PSY"};
  EXPECT_TRUE(Decide(doc, Req(Interaction::kRead, obs)).allowed);
  W(R"({"resourceType":"Patient","id":"p1"})");  // label removed
  EXPECT_TRUE(Decide(Clinician(), Req(Interaction::kRead, obs)).allowed);
}

TEST_F(EngineTest, ConsentActorsIncludeRolesOrganizationsAndTeams) {
  W(kCareTeamP1);
  W(R"({"resourceType":"PractitionerRole","id":"r1","practitioner":{"reference":"Practitioner/doc"},
        "organization":{"reference":"Organization/hospB"}})");
  W(R"({"resourceType":"Consent","id":"c1","status":"active","scope":{"coding":[{"code":"patient-privacy"}]},
        "patient":{"reference":"Patient/p1"},
        "provision":{"type":"deny","actor":[{"reference":{"reference":"Organization/hospB"}}]}})");
  auto obs = Res(kObsP1);
  EXPECT_EQ(Decide(Clinician(), Req(Interaction::kRead, obs)).rule, "consent");
  W(R"({"resourceType":"Consent","id":"c1","status":"active","scope":{"coding":[{"code":"patient-privacy"}]},
        "patient":{"reference":"Patient/p1"},
        "provision":{"type":"deny","actor":[{"reference":{"reference":"CareTeam/ct1"}}]}})");
  EXPECT_EQ(Decide(Clinician(), Req(Interaction::kRead, obs)).rule, "consent");
  W(R"({"resourceType":"Consent","id":"c1","status":"active","scope":{"coding":[{"code":"patient-privacy"}]},
        "patient":{"reference":"Patient/p1"},
        "provision":{"type":"deny","actor":[{"reference":{"reference":"Practitioner/someone-else"}}]}})");
  EXPECT_TRUE(Decide(Clinician(), Req(Interaction::kRead, obs)).allowed);
}

TEST_F(EngineTest, ConsentPurposeUsesRoleDefaults) {
  W(kCareTeamP1);
  W(R"({"resourceType":"Consent","id":"c1","status":"active","scope":{"coding":[{"code":"patient-privacy"}]},
        "patient":{"reference":"Patient/p1"},"provision":{"type":"deny","purpose":[{"code":"HMARKT"}]}})");
  auto obs = Res(kObsP1);
  EXPECT_TRUE(Decide(Clinician(), Req(Interaction::kRead, obs)).allowed) << "clinicians default to TREAT";
  Principal sys = testing::MakePrincipal(Role::kSystem, "", testing::Scopes({"system/*.rs"}));
  sys.subject = "backend";
  EXPECT_EQ(Decide(sys, Req(Interaction::kRead, obs)).rule, "consent") << "unknown purpose fails closed";
  AccessRequest r = Req(Interaction::kRead, obs);
  r.purpose_of_use = "HOPERAT";
  EXPECT_TRUE(Decide(sys, r).allowed);
}

TEST_F(EngineTest, MissingBodyMeansUnknownLabels) {
  W(kCareTeamP1);
  W(R"({"resourceType":"Consent","id":"c1","status":"active","scope":{"coding":[{"code":"patient-privacy"}]},
        "patient":{"reference":"Patient/p1"},"provision":{"type":"deny","securityLabel":[{"code":"PSY"}]}})");
  auto obs = Res(kObsP1);
  EXPECT_TRUE(Decide(Clinician(), Req(Interaction::kRead, obs)).allowed);
  AccessRequest r = Req(Interaction::kRead, obs);
  r.resource = nullptr;
  EXPECT_EQ(Decide(Clinician(), r).rule, "consent");
}

TEST_F(EngineTest, DenialsExplainThemselvesWithoutContent) {
  W(R"({"resourceType":"Patient","id":"secret-patient-id","meta":{"security":[{"code":"HIV"}]}})");
  auto obs = Res(R"({"resourceType":"Observation","id":"o1","code":{"text":"HIV viral load"},
      "subject":{"reference":"Patient/secret-patient-id"}})");
  Principal doc = Clinician();
  Decision d = Decide(doc, Req(Interaction::kRead, obs));
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.rule, "care-relationship");
  for (const char* secret : {"secret-patient-id", "HIV", "viral"}) {
    EXPECT_EQ(d.reason.find(secret), std::string::npos) << d.reason;
    EXPECT_EQ(DenialOperationOutcome(d).find(secret), std::string::npos);
  }
  EXPECT_NE(DenialOperationOutcome(d).find("care-relationship"), std::string::npos);
  Status st = DecisionStatus(d);
  EXPECT_EQ(st.code(), StatusCode::kNotFound);
  EXPECT_EQ(st.message(), "resource not found") << "the same as a missing resource";
  // The trace names every rule evaluated, for the audit record.
  std::vector<std::string> rules;
  for (const RuleCheck& c : d.trace) rules.push_back(c.rule);
  EXPECT_EQ(rules, (std::vector<std::string>{"identity", "role", "scope", "care-relationship", "consent",
                                             "sensitivity"}));
  boost::json::object rec = DecisionRecord(doc, Req(Interaction::kRead, obs), d);
  EXPECT_EQ(rec.at("rule").as_string(), "care-relationship");
  EXPECT_EQ(rec.at("trace").as_array().size(), 6u);
  EXPECT_EQ(boost::json::serialize(rec).find("viral"), std::string::npos) << "no resource content in the record";

  Principal reg = testing::MakePrincipal(Role::kRegistration, "Practitioner/reg", testing::Scopes({"user/*.cruds"}));
  Decision role = Decide(reg, Req(Interaction::kRead, obs));
  EXPECT_EQ(DecisionStatus(role).code(), StatusCode::kPermissionDenied);
  EXPECT_NE(DecisionStatus(role).message().find("'role'"), std::string::npos);
  EXPECT_TRUE(DecisionStatus(Decide(reg, Req(Interaction::kRead, Res(R"({"resourceType":"Patient","id":"p"})")))).ok());
}

TEST_F(EngineTest, UnknownTypesAreClinical) {
  EXPECT_EQ(engine_.ClassOf("Observation"), ResourceClass::kClinical);
  EXPECT_EQ(engine_.ClassOf("Patient"), ResourceClass::kDemographic);
  EXPECT_EQ(engine_.ClassOf("Organization"), ResourceClass::kAdministrative);
  EXPECT_EQ(engine_.ClassOf("Consent"), ResourceClass::kConsent);
  EXPECT_EQ(engine_.ClassOf("Whatever"), ResourceClass::kClinical);
  AccessRequest r;
  r.type = "Whatever";
  EXPECT_EQ(Decide(Clinician(), r).rule, "request");
}

TEST_F(EngineTest, UntrustedResourcesNeverCrash) {
  // Deeply nested provisions beyond the supported depth make the consent deny (fail closed).
  std::string deep = R"({"type":"deny","provision":[)";
  std::string close = "]}";
  for (int i = 0; i < 20; ++i) {
    deep += R"({"type":"permit","provision":[)";
    close += "]}";
  }
  deep += R"({"type":"permit"})" + close;
  std::vector<std::string> garbage = {
      R"({"resourceType":"Patient","id":"p1","meta":5,"generalPractitioner":"x"})",
      R"({"resourceType":"Patient","id":"p1","meta":{"security":[null,1,[],{"code":{}}]}})",
      R"({"resourceType":"Consent","id":"c","status":"active","scope":[],"patient":{"reference":"Patient/p1"}})",
      R"({"resourceType":"Consent","id":"c","status":"active","scope":{"coding":[{"code":"patient-privacy"}]},
          "patient":{"reference":"Patient/p2"},"provision":{"type":"deny","purpose":{"code":"x"},"period":[]}})",
      R"({"resourceType":"EpisodeOfCare","id":"e","status":["active"],"patient":"Patient/p1"})",
      R"({"resourceType":"Encounter","id":"e","status":null,"participant":[{"individual":[]}]})",
      R"({"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/p1"},"meta":{"security":"R"}})",
  };
  for (const std::string& g : garbage) W(g);
  W(R"({"resourceType":"Consent","id":"deep","status":"active","scope":{"coding":[{"code":"patient-privacy"}]},
        "patient":{"reference":"Patient/p3"},"provision":)" + deep + "}");
  W(kCareTeamP1);
  for (const std::string& g : garbage) {
    auto r = Res(g);
    for (Interaction i : {Interaction::kRead, Interaction::kSearch, Interaction::kUpdate}) {
      (void)Decide(Clinician(), Req(i, r));
    }
  }
  EXPECT_TRUE(Decide(Clinician(), Req(Interaction::kRead, Res(kObsP1))).allowed);
  EXPECT_EQ(Decide(Clinician(), Req(Interaction::kRead, Res(kObsP2))).rule, "care-relationship");
  W(R"({"resourceType":"CareTeam","id":"ct3","subject":{"reference":"Patient/p3"},
        "participant":[{"member":{"reference":"Practitioner/doc"}}]})");
  EXPECT_EQ(Decide(Clinician(), Req(Interaction::kRead, Res(R"({"resourceType":"Observation","id":"o3",
      "subject":{"reference":"Patient/p3"}})"))).rule, "consent") << "too-deep consent denies";
}

TEST_F(EngineTest, ConcurrentDecisionsAndWrites) {
  auto obs = Res(kObsP1);
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int i = 0; i < 500; ++i) {
      if (i % 2) {
        W(kCareTeamP1);
      } else {
        testing::Delete(indexes_, "CareTeam", "ct1");
      }
    }
    stop = true;
  });
  std::vector<std::thread> readers;
  for (int t = 0; t < 2; ++t) {
    readers.emplace_back([&, t] {
      Principal doc = Clinician();
      doc.subject += std::to_string(t);
      int n = 0;
      while (!stop || n < 10) {
        AccessRequest r = Req(Interaction::kRead, obs, kNow + n);
        if (n % 7 == 0) r = BreakGlass(r);
        (void)Decide(doc, r);
        ++n;
      }
    });
  }
  writer.join();
  for (auto& r : readers) r.join();
}

}  // namespace
}  // namespace phivault::policy
