// The authorization decision engine: one pure-ish function from (who, what)
// to allow/deny with the rule that decided, evaluated for every request and
// for every resource a search, history or bundle would return.
//
// A decision is the intersection, in this order (README.md has the tables):
//   identity → role (incl. patient-compartment, device-binding) → scope →
//   care-relationship (clinicians) → consent → sensitivity.
// Role and scope denials are final. Denials by care-relationship and
// sensitivity (and consent, if PolicyConfig::break_glass_overrides_consent)
// can be overridden by a clinician's break-glass; the engine keeps the
// break-glass grants (subject + patient → expiry).
//
// Callers: call DecideType() before touching the store (type-level gate; a
// denial there is the same for present and missing ids, so it may be a 403),
// then Decide() for each concrete resource (version, search hit, _include,
// bundle entry). For update, call Decide on the stored version and on the new
// content. When a Decision has hide_existence, answer exactly as for a missing
// resource (404 "resource not found"; drop search hits silently).
//
// Thread-safety: Decide/DecideType are safe from any thread (grants are under
// a mutex; the sources synchronize themselves). Lifetime: the sources passed
// to the constructor must outlive the engine.
#ifndef PHIVAULT_POLICY_ENGINE_H_
#define PHIVAULT_POLICY_ENGINE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/json/object.hpp>

#include "common/status.h"
#include "policy/consent.h"
#include "policy/labels.h"
#include "policy/principal.h"
#include "policy/relationships.h"

namespace phivault::policy {

enum class Interaction { kRead, kVRead, kSearch, kCreate, kUpdate, kDelete, kHistory };
std::string_view InteractionName(Interaction i);

// How the role policy classifies a resource type.
enum class ResourceClass {
  kClinical,        // default for every type not listed otherwise (fail closed)
  kDemographic,     // Patient, RelatedPerson, Person
  kAdministrative,  // directory, scheduling, conformance and terminology
  kDevice,          // Device, DeviceDefinition, DeviceMetric
  kConsent,         // Consent
  kAudit,           // AuditEvent
};
std::string_view ResourceClassName(ResourceClass c);

// The default type → class map (types not in it are clinical).
std::map<std::string, ResourceClass, std::less<>> DefaultResourceClasses();

inline constexpr int64_t kDefaultBreakGlassWindowMs = 60LL * 60 * 1000;

struct PolicyConfig {
  int64_t encounter_window_ms = kDefaultEncounterWindowMs;  // used by PolicyIndexes
  int64_t break_glass_window_ms = kDefaultBreakGlassWindowMs;
  // May break-glass override consent denials? Off by default (issue 3).
  bool break_glass_overrides_consent = false;
  std::map<std::string, ResourceClass, std::less<>> resource_classes = DefaultResourceClasses();
  // What a device may create/update (for its bound patients).
  std::set<std::string, std::less<>> device_writable_types = {"Observation", "DeviceMetric", "Media"};
  // What a patient may create/update in their own compartment. Empty by
  // default: FHIR permits patient-authored resources (e.g.
  // QuestionnaireResponse) but none is enabled until a deployment decides.
  std::set<std::string, std::less<>> patient_writable_types = {};
  // Purpose of use assumed when the request names none, per role (matched
  // against Consent purpose criteria). "" = unknown (fail closed for deny).
  std::map<Role, std::string> default_purpose_of_use = {
      {Role::kClinician, "TREAT"},       {Role::kRegistration, "HOPERAT"}, {Role::kPrivacyOfficer, "HOPERAT"},
      {Role::kSecurityAdmin, "HOPERAT"}, {Role::kDevice, "TREAT"},         {Role::kPatient, "PATRQT"},
      {Role::kSystem, ""},
  };
};

struct AccessRequest {
  Interaction interaction = Interaction::kRead;
  std::string type;
  std::string id;  // "" for create and for type/system-level search/history
  // The resource's patient link (stored link; for create/update the link of
  // the new content). Sorted/unique not required.
  std::vector<std::string> patients;
  // The resource (the version being returned, or the new content); may be
  // null when not available (then its labels count as unknown).
  const boost::json::object* resource = nullptr;
  std::string purpose_of_use;      // X-Purpose-Of-Use (v3-ActReason code)
  std::string break_glass_reason;  // X-Break-Glass-Reason
  int64_t now_ms = 0;
  // AuthorId() of whoever wrote the stored version (any principal, not only
  // devices); "" if there is no stored version yet. Device read-back and
  // device updates compare it with the device's AuthorId.
  std::string resource_author_device;
  // The request names this one resource (read, vread, instance history, a
  // write). False for what a search, a type- or system-level history or a
  // bulk export returns: history then needs the `s` scope letter, and no
  // break-glass grant opens, since one request would open grants for every
  // patient it happens to reach.
  bool instance_level = true;
};

// One evaluated rule, for the audit record. `detail` may name ids, codes and
// labels (the audit log is sealed) but never resource content.
struct RuleCheck {
  std::string rule;
  bool passed = false;
  std::string detail;
};

struct Decision {
  bool allowed = false;
  // The deciding rule: "allow" (all passed), "break-glass" (allowed by a
  // break-glass grant), or for denials "identity", "request", "role",
  // "patient-compartment", "device-binding", "scope", "care-relationship",
  // "consent", "sensitivity".
  std::string rule;
  std::string reason;  // safe for clients: names the rule, never data or labels
  bool break_glass = false;            // allowed only through break-glass (audit must mark it)
  bool break_glass_activated = false;  // this request opened the grant: raise the privacy-officer alert
  bool hide_existence = false;         // answer exactly as for a missing resource
  bool break_glass_requested = false;  // the request carried ETREAT + a reason
  std::vector<RuleCheck> trace;        // every rule evaluated, in order
};

// The indexes the engine reads. Not owned.
struct PolicySources {
  const RelationshipSource* relationships = nullptr;
  const ConsentSource* consents = nullptr;
  const PatientLabelSource* patient_labels = nullptr;
};

// The default in-memory indexes, fed together.
class PolicyIndexes {
 public:
  explicit PolicyIndexes(const PolicyConfig& config = {});
  // Feed every committed write (and delete: resource == nullptr) in commit order.
  void OnWrite(std::string_view type, std::string_view id, const boost::json::object* resource,
               const std::vector<std::string>& patients);
  // Warm all indexes at startup. `enumerate` is called once per index.
  Status Rebuild(const ResourceEnumerator& enumerate);
  PolicySources sources() const { return {&relationships, &consents, &patient_labels}; }

  RelationshipIndex relationships;
  ConsentIndex consents;
  PatientLabelIndex patient_labels;
};

class PolicyEngine {
 public:
  PolicyEngine(PolicyConfig config, PolicySources sources);

  // The per-resource decision. Records or uses break-glass grants.
  Decision Decide(const Principal& principal, const AccessRequest& request);
  // The type-level gate (identity, role and scope only; no instance data).
  // `id_known`: the request names a resource id (instance history vs type history).
  Decision DecideType(const Principal& principal, Interaction interaction, std::string_view type,
                      bool id_known = true) const;

  ResourceClass ClassOf(std::string_view type) const;
  const PolicyConfig& config() const { return config_; }

  // The expiry of the principal's break-glass grant for the patient, if active.
  std::optional<int64_t> BreakGlassExpiry(std::string_view subject, std::string_view patient_id,
                                          int64_t now_ms) const;

 private:
  struct Gate;  // result of the identity/role/scope gates
  // Identity, request, role (+ instance rules when `instance` is given) and
  // scope; appends to d.trace and fills d on failure.
  Gate CheckGates(const Principal& p, Interaction interaction, std::string_view type, bool id_known,
                  const AccessRequest* instance, Decision& d) const;

  PolicyConfig config_;
  PolicySources sources_;
  mutable std::mutex grants_mu_;
  std::map<std::pair<std::string, std::string>, int64_t> grants_;  // (subject, patient) -> expiry (exclusive)
};

// The client-visible failure for a denial: NotFound("resource not found")
// when hide_existence (the same message FhirService uses for a missing
// resource), else PermissionDenied(reason). OK if allowed.
Status DecisionStatus(const Decision& d);
// OperationOutcome JSON for a non-hidden denial (403, issue code
// "forbidden", diagnostics = reason naming the rule).
std::string DenialOperationOutcome(const Decision& d);
// The decision record handed to the audit layer: inputs (principal summary,
// interaction, type, id, patients, purpose, break-glass reason, resource
// labels) and outcome (allowed, rule, break-glass flags, trace).
boost::json::object DecisionRecord(const Principal& p, const AccessRequest& r, const Decision& d);

}  // namespace phivault::policy

#endif  // PHIVAULT_POLICY_ENGINE_H_
