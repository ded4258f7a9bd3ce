// The policy test matrix: every role × care relationship × consent ×
// sensitivity × resource kind × interaction, compared with an expected outcome
// written from the issue text (not from engine.cc). A second matrix repeats
// the denials with break-glass headers, with consent override off and on.
//
// The world of every case: Patient/p1; Observation/o1 (subject p1, written by
// Device/dev1); optionally CareTeam/ct1 (subject p1, member
// Practitioner/doc); optionally Consent/c1 (p1, active, patient-privacy).
#include <map>
#include <set>
#include <string>
#include <tuple>

#include <gtest/gtest.h>

#include "policy/engine.h"
#include "policy/test_util.h"

namespace phivault::policy {
namespace {

using testing::kNow;
using testing::Res;

enum class Rel { kAbsent, kPresent };
enum class ConsentCase { kNone, kDenyActor, kDenyClass };
enum class Sens { kNormal, kRestrictedCleared, kRestrictedNotCleared };
enum class Target { kObservation, kPatient };

constexpr Role kRoles[] = {Role::kClinician, Role::kRegistration, Role::kPrivacyOfficer, Role::kSecurityAdmin,
                           Role::kDevice,    Role::kSystem,       Role::kPatient};
constexpr Interaction kInteractions[] = {Interaction::kRead,   Interaction::kSearch, Interaction::kCreate,
                                         Interaction::kUpdate, Interaction::kDelete, Interaction::kHistory};

// ---------------------------------------------------------------------------
// Expected outcomes, from the issue text.
// ---------------------------------------------------------------------------

char Letter(Interaction i) {
  switch (i) {
    case Interaction::kRead: return 'r';
    case Interaction::kSearch: return 's';
    case Interaction::kCreate: return 'c';
    case Interaction::kUpdate: return 'u';
    case Interaction::kDelete: return 'd';
    case Interaction::kHistory: return 'h';
    case Interaction::kVRead: return 'v';
  }
  return '?';
}

// Rule 1, role policy: what each role may do to an Observation (clinical)
// and to a Patient (demographics). r read, s search, h history, c create,
// u update, d delete.
const std::map<std::pair<Role, Target>, std::string>& RoleTable() {
  static const auto* t = new std::map<std::pair<Role, Target>, std::string>{
      // "clinical data of related patients"; demographics read-only (registration maintains them)
      {{Role::kClinician, Target::kObservation}, "rshcud"},
      {{Role::kClinician, Target::kPatient}, "rsh"},
      // "Patient demographics only, no clinical resources"; no deletes of patients
      {{Role::kRegistration, Target::kObservation}, ""},
      {{Role::kRegistration, Target::kPatient}, "rshcu"},
      // "no clinical content" (audit/alerts are not FHIR clinical data)
      {{Role::kPrivacyOfficer, Target::kObservation}, ""},
      {{Role::kPrivacyOfficer, Target::kPatient}, ""},
      {{Role::kSecurityAdmin, Target::kObservation}, ""},
      {{Role::kSecurityAdmin, Target::kPatient}, ""},
      // "create and update only Observation, DeviceMetric and Media for the
      // patients it is bound to. It may read back nothing but what it wrote"
      // (the device wrote o1 and is bound to p1)
      {{Role::kDevice, Target::kObservation}, "rshcu"},
      {{Role::kDevice, Target::kPatient}, ""},
      // "back-end services, limited by scopes" (full scopes here)
      {{Role::kSystem, Target::kObservation}, "rshcud"},
      {{Role::kSystem, Target::kPatient}, "rshcud"},
      // "their own compartment, read-only" (p1 is the patient)
      {{Role::kPatient, Target::kObservation}, "rsh"},
      {{Role::kPatient, Target::kPatient}, "rsh"},
  };
  return *t;
}

struct Case {
  Role role;
  Target target;
  Rel rel;
  ConsentCase consent;
  Sens sens;
  Interaction interaction;
};

// Every rule that fails, in decision order.
std::vector<std::string> ExpectedFailures(const Case& c) {
  std::vector<std::string> failed;
  if (RoleTable().at({c.role, c.target}).find(Letter(c.interaction)) == std::string::npos) return {"role"};
  // Rule 2: every principal holds full scopes in this matrix: never fails.
  // Rule 3: only clinicians need a care relationship.
  if (c.role == Role::kClinician && c.rel == Rel::kAbsent) failed.push_back("care-relationship");
  // Rule 4: the consent denies this actor, or the Observation class; it never
  // binds the patient who gave it.
  bool consent_denies = c.consent == ConsentCase::kDenyActor ||
                        (c.consent == ConsentCase::kDenyClass && c.target == Target::kObservation);
  if (c.role != Role::kPatient && consent_denies) failed.push_back("consent");
  // Rule 5: R needs clearance R, for everyone but the patient themself.
  if (c.role != Role::kPatient && c.sens == Sens::kRestrictedNotCleared) failed.push_back("sensitivity");
  return failed;
}

struct Expected {
  bool allowed;
  std::string rule;
  bool hide_existence;
  bool break_glass;
};

Expected ExpectedOutcome(const Case& c, bool break_glass_headers, bool consent_override) {
  std::vector<std::string> failed = ExpectedFailures(c);
  if (failed.empty()) return {true, "allow", false, false};
  if (failed.front() == "role") return {false, "role", false, false};
  // Break-glass: clinicians, over (3) and (5), and (4) only if configured; it
  // is opened on a concrete resource, not by a search.
  bool overridable = true;
  for (const std::string& f : failed) {
    if (f == "consent" && !consent_override) overridable = false;
  }
  if (break_glass_headers && c.role == Role::kClinician && overridable && c.interaction != Interaction::kSearch) {
    return {true, "break-glass", false, true};
  }
  // Existence is hidden for record-dependent denials of existing records.
  return {false, failed.front(), c.interaction != Interaction::kCreate, false};
}

// ---------------------------------------------------------------------------
// Running a case through the engine.
// ---------------------------------------------------------------------------

std::string ActorRef(Role role) {
  switch (role) {
    case Role::kClinician: return "Practitioner/doc";
    case Role::kRegistration: return "Practitioner/reg";
    case Role::kPrivacyOfficer: return "Practitioner/po";
    case Role::kSecurityAdmin: return "Practitioner/sa";
    case Role::kDevice: return "Device/dev1";
    case Role::kSystem: return "Organization/backend";
    case Role::kPatient: return "Patient/p1";
  }
  return "";
}

Principal PrincipalFor(const Case& c) {
  std::string scope = c.role == Role::kPatient  ? "patient/*.cruds"
                      : c.role == Role::kSystem || c.role == Role::kDevice ? "system/*.cruds"
                                                                         : "user/*.cruds";
  Principal p = testing::MakePrincipal(c.role, ActorRef(c.role), testing::Scopes({scope}));
  if (c.role == Role::kDevice) p.device_patients = {"p1"};
  if (c.sens == Sens::kRestrictedCleared) p.clearances = {"R"};
  return p;
}

std::string SecurityMeta(Sens s) {
  if (s == Sens::kNormal) return "";
  return R"("meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"R"}]},)";
}

struct World {
  boost::json::object patient, observation;
  PolicyIndexes indexes;
};

void Populate(const Case& c, World& w) {
  w.patient = Res(R"({"resourceType":"Patient","id":"p1",)" +
                  (c.target == Target::kPatient ? SecurityMeta(c.sens) : std::string()) + R"("active":true})");
  w.observation = Res(R"({"resourceType":"Observation","id":"o1",)" +
                      (c.target == Target::kObservation ? SecurityMeta(c.sens) : std::string()) +
                      R"("status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p1"}})");
  testing::Write(w.indexes, w.patient);
  testing::Write(w.indexes, w.observation);
  if (c.rel == Rel::kPresent) {
    testing::Write(w.indexes, Res(R"({"resourceType":"CareTeam","id":"ct1","status":"active",
        "subject":{"reference":"Patient/p1"},"participant":[{"member":{"reference":"Practitioner/doc"}}]})"));
  }
  std::string criteria;
  if (c.consent == ConsentCase::kDenyActor) {
    criteria = R"("actor":[{"role":{"text":"x"},"reference":{"reference":")" + ActorRef(c.role) + R"("}}])";
  } else if (c.consent == ConsentCase::kDenyClass) {
    criteria = R"("class":[{"system":"http://hl7.org/fhir/resource-types","code":"Observation"}])";
  }
  if (c.consent != ConsentCase::kNone) {
    testing::Write(w.indexes, Res(R"({"resourceType":"Consent","id":"c1","status":"active",
        "scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"patient-privacy"}]},
        "category":[{"text":"x"}],"patient":{"reference":"Patient/p1"},
        "provision":{"type":"deny",)" + criteria + "}}"));
  }
}

AccessRequest RequestFor(const Case& c, const World& w) {
  const boost::json::object& r = c.target == Target::kObservation ? w.observation : w.patient;
  AccessRequest q = testing::Req(c.interaction, r);
  if (c.interaction != Interaction::kCreate) {
    q.resource_author_device = c.target == Target::kObservation ? "Device/dev1" : "Practitioner/reg";
  }
  return q;
}

std::string Name(const Case& c) {
  static const char* kRel[] = {"NoRel", "Rel"};
  static const char* kConsent[] = {"NoConsent", "ConsentDenyActor", "ConsentDenyClass"};
  static const char* kSens[] = {"Normal", "RCleared", "RNotCleared"};
  std::string role(RoleName(c.role));
  std::erase(role, '-');
  return role + "_" + (c.target == Target::kObservation ? "Observation" : "Patient") + "_" +
         kRel[static_cast<int>(c.rel)] + "_" + kConsent[static_cast<int>(c.consent)] + "_" +
         kSens[static_cast<int>(c.sens)] + "_" + std::string(InteractionName(c.interaction));
}

using Params = std::tuple<Role, Target, Rel, ConsentCase, Sens, Interaction>;
Case ToCase(const Params& p) {
  return {std::get<0>(p), std::get<1>(p), std::get<2>(p), std::get<3>(p), std::get<4>(p), std::get<5>(p)};
}

void CheckCase(const Case& c, bool break_glass_headers, bool consent_override) {
  World w;
  Populate(c, w);
  PolicyConfig config;
  config.break_glass_overrides_consent = consent_override;
  PolicyEngine engine(config, w.indexes.sources());
  AccessRequest q = RequestFor(c, w);
  if (break_glass_headers) {
    q.purpose_of_use = "ETREAT";
    q.break_glass_reason = "unconscious patient in the emergency department";
  }
  Decision d = engine.Decide(PrincipalFor(c), q);
  Expected e = ExpectedOutcome(c, break_glass_headers, consent_override);
  EXPECT_EQ(d.allowed, e.allowed) << d.rule << ": " << d.reason;
  EXPECT_EQ(d.rule, e.rule) << d.reason;
  EXPECT_EQ(d.hide_existence, e.hide_existence);
  EXPECT_EQ(d.break_glass, e.break_glass);
  EXPECT_EQ(d.break_glass_activated, e.break_glass);
  // The client-facing reason names the rule and never data or labels.
  if (!d.allowed) {
    EXPECT_NE(d.reason.find("'" + d.rule + "'"), std::string::npos) << d.reason;
    EXPECT_EQ(d.reason.find("p1"), std::string::npos) << d.reason;
    EXPECT_EQ(d.reason.find("\"R\""), std::string::npos) << d.reason;
    EXPECT_EQ(d.reason.find("clearance R"), std::string::npos) << d.reason;
  }
}

class PolicyMatrix : public ::testing::TestWithParam<Params> {};

TEST_P(PolicyMatrix, MatchesExpectedOutcome) { CheckCase(ToCase(GetParam()), false, false); }

INSTANTIATE_TEST_SUITE_P(
    All, PolicyMatrix,
    ::testing::Combine(::testing::ValuesIn(kRoles), ::testing::Values(Target::kObservation, Target::kPatient),
                       ::testing::Values(Rel::kAbsent, Rel::kPresent),
                       ::testing::Values(ConsentCase::kNone, ConsentCase::kDenyActor, ConsentCase::kDenyClass),
                       ::testing::Values(Sens::kNormal, Sens::kRestrictedCleared, Sens::kRestrictedNotCleared),
                       ::testing::ValuesIn(kInteractions)),
    [](const ::testing::TestParamInfo<Params>& info) { return Name(ToCase(info.param)); });

// The same matrix with X-Purpose-Of-Use: ETREAT + a reason, consent override
// off (the default) and on.
class BreakGlassMatrix : public ::testing::TestWithParam<std::tuple<Params, bool>> {};

TEST_P(BreakGlassMatrix, MatchesExpectedOutcome) {
  CheckCase(ToCase(std::get<0>(GetParam())), true, std::get<1>(GetParam()));
}

INSTANTIATE_TEST_SUITE_P(
    All, BreakGlassMatrix,
    ::testing::Combine(
        ::testing::Combine(::testing::ValuesIn(kRoles), ::testing::Values(Target::kObservation, Target::kPatient),
                           ::testing::Values(Rel::kAbsent, Rel::kPresent),
                           ::testing::Values(ConsentCase::kNone, ConsentCase::kDenyActor, ConsentCase::kDenyClass),
                           ::testing::Values(Sens::kNormal, Sens::kRestrictedCleared, Sens::kRestrictedNotCleared),
                           ::testing::ValuesIn(kInteractions)),
        ::testing::Bool()),
    [](const ::testing::TestParamInfo<std::tuple<Params, bool>>& info) {
      return Name(ToCase(std::get<0>(info.param))) + (std::get<1>(info.param) ? "_ConsentOverride" : "");
    });

}  // namespace
}  // namespace phivault::policy
