// Who is asking: the authenticated caller as the policy engine sees it.
//
// A Principal is built by the request layer from a verified token (src/auth)
// and the account directory: role, fhirUser, pre-parsed SMART scopes and
// clearances. The policy library deliberately does not depend on src/auth;
// ScopeGrant is the minimal form of a SMART v2 data scope it needs (the lead
// converts auth::Scope into it; v1 "read" becomes r+s, "write" c+u+d).
// Scopes with query restrictions (…?category=x) must NOT be converted into an
// unrestricted ScopeGrant: the engine cannot evaluate restrictions and would
// over-grant. Dropping them fails closed.
//
// Thread-safety: plain values. Lifetime: owns its data.
#ifndef PHIVAULT_POLICY_PRINCIPAL_H_
#define PHIVAULT_POLICY_PRINCIPAL_H_

#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace phivault::policy {

enum class Role { kClinician, kRegistration, kPrivacyOfficer, kSecurityAdmin, kDevice, kSystem, kPatient };

// "clinician", "registration", "privacy-officer", "security-admin", "device",
// "system", "patient" (exact, lower case); nullopt for anything else.
std::optional<Role> ParseRole(std::string_view name);
std::string_view RoleName(Role role);

// One SMART v2 data-access scope: context/type.cruds.
struct ScopeGrant {
  enum Context { kPatient, kUser, kSystem };
  Context context = kUser;
  std::string type;  // an R4 resource type, or "*"
  bool c = false, r = false, u = false, d = false, s = false;
};

// Parses "patient/Observation.rs", "user/*.cruds", "system/Patient.read"
// (v1 read = r+s, write = c+u+d, * = all). Convenience for tests and tools;
// nullopt for anything that is not an unrestricted data scope.
std::optional<ScopeGrant> ParseScopeGrant(std::string_view text);

struct Principal {
  std::string subject;    // stable account id (token `sub`); required
  Role role = Role::kPatient;
  // fhirUser as a reference: "Practitioner/x", "PractitionerRole/x",
  // "Patient/x", "Device/x", "RelatedPerson/x", "Organization/x"; absolute
  // URLs are accepted. Clinicians need Practitioner(Role), patients Patient.
  std::string fhir_user;
  std::vector<ScopeGrant> scopes;
  // Clearances: "R", "V" (V also satisfies R) and sensitivity codes ("HIV").
  std::set<std::string> clearances;
  // Devices only: the Patient ids the device is bound to.
  std::vector<std::string> device_patients;
  std::string client_id;
  // The SMART launch context patient (for patient/… scopes). For the patient
  // role it defaults to the fhirUser patient when empty.
  std::string launch_patient;
};

// The identity recorded as the author of what this principal writes, and
// compared with AccessRequest::resource_author_device for device read-back:
// the normalized fhirUser if there is one, else "subject:" + subject.
std::string AuthorId(const Principal& p);

}  // namespace phivault::policy

#endif  // PHIVAULT_POLICY_PRINCIPAL_H_
