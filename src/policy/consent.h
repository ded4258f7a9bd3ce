// Patient privacy consent (rule 4): which stored FHIR R4 Consent resources
// deny an access, and an index of them per patient.
//
// Supported subset (anything else is ignored as stated):
// * A Consent is considered only if status = "active" and scope has a coding
//   with code "patient-privacy" (system
//   http://terminology.hl7.org/CodeSystem/consentscope or none). Other
//   statuses/scopes (treatment, research, adr) never deny. The patient is the
//   Consent's patient link (OnWrite's `patients`). policyRule, category,
//   verification, source* and performer are not interpreted.
// * provision is evaluated as a tree. A provision *applies* if all criteria it
//   states match the access (criteria below). The result of an applying
//   provision is the result of its applying children (deny if any applying
//   child yields deny, else permit if any yields permit) or, if no child
//   applies, its own type. R4 forbids `type` on the root; if present we use
//   it, if absent the root acts as "permit" (the Consent only denies through
//   nested deny provisions). A nested provision without a valid type is
//   treated as "deny". The Consent denies iff the root's result is deny. Any
//   denying active Consent of any linked patient denies the access.
// * Criteria:
//   - period: now within start..end.
//   - actor[].reference: matches if it equals one of the caller's actor refs
//     (RelationshipSource::ActorRefs: fhirUser, linked Practitioner /
//     PractitionerRole, their Organization, CareTeams listing them).
//     actor.role is not interpreted.
//   - purpose[] (v3-ActReason codings, system
//     http://terminology.hl7.org/CodeSystem/v3-ActReason or none): matches
//     the access purpose of use or an ancestor of it (ETREAT and BTG count as
//     TREAT; BTG counts as ETREAT).
//   - class[] (system http://hl7.org/fhir/resource-types or none): the
//     resource type.
//   - securityLabel[]: a coding equal (code, and system if the provision
//     states one) to one of the resource's own meta.security codings.
//   - action[] (system http://terminology.hl7.org/CodeSystem/consentaction or
//     none): read/vread/search/history = access, use, disclose; create =
//     collect; update, delete = correct.
//   - data[].reference with meaning "instance" (or no meaning): the resource
//     itself ("Type/id").
// * Fail closed: a criterion the engine cannot evaluate — code, dataPeriod,
//   data with another meaning, codings only in unknown systems, actor
//   references that are not literal (Group/contained/logical), a malformed
//   period, an unknown access purpose, unknown labels (no resource body) —
//   is "unknown": it counts as matching for a deny provision and as not
//   matching for a permit provision. An active patient-privacy Consent whose
//   provision tree has the wrong JSON shape denies everything.
//
// Thread-safety: free functions are pure; ConsentIndex is internally
// synchronized (shared_mutex). Lifetime: ParsedConsent owns its data; the
// index keeps no JSON.
#ifndef PHIVAULT_POLICY_CONSENT_H_
#define PHIVAULT_POLICY_CONSENT_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <boost/json/object.hpp>

#include "common/status.h"
#include "policy/labels.h"

namespace phivault::policy {

enum class ConsentAction { kAccess, kCollect, kCorrect };

struct ConsentAccess {
  std::vector<std::string> actor_refs;  // normalized "Type/id" refs of the caller
  std::string purpose_of_use;           // v3-ActReason code; "" = unknown
  std::string resource_type;
  std::string resource_ref;             // "Type/id"; "" if it has no id yet
  std::vector<SecurityLabel> labels;    // the resource's meta.security
  bool labels_known = true;             // false if the body was not available
  ConsentAction action = ConsentAction::kAccess;
  int64_t now_ms = 0;
};

struct ConsentVerdict {
  bool denied = false;
  std::string consent_ref;  // "Consent/id" that denied (for the audit record only)
  std::string detail;       // which criterion decided; never resource content
};

// A Consent reduced to what evaluation needs (opaque tree).
struct ParsedConsent;

// nullopt if the Consent never denies (not active, not patient-privacy, no
// provision).
std::optional<std::shared_ptr<const ParsedConsent>> ParseConsent(const boost::json::object& consent);
ConsentVerdict EvaluateConsent(const ParsedConsent& consent, const ConsentAccess& access);

class ConsentSource {
 public:
  virtual ~ConsentSource() = default;
  // The verdict of the patient's active Consents for this access.
  virtual ConsentVerdict Evaluate(std::string_view patient_id, const ConsentAccess& access) const = 0;
};

class ConsentIndex : public ConsentSource {
 public:
  // Feed every committed write in commit order (`resource` null = delete).
  // Only type "Consent" matters; an update replaces the previous version's
  // entry, a delete (or a new status) removes it.
  void OnWrite(std::string_view type, std::string_view id, const boost::json::object* resource,
               const std::vector<std::string>& patients);
  // REQUIRES: no concurrent OnWrite (run at startup). On error keeps the old contents.
  Status Rebuild(const ResourceEnumerator& enumerate);
  ConsentVerdict Evaluate(std::string_view patient_id, const ConsentAccess& access) const override;
  size_t size() const;

 private:
  struct Entry {
    std::vector<std::string> patients;
    std::shared_ptr<const ParsedConsent> consent;
  };
  void Apply(std::string_view id, const boost::json::object* resource, const std::vector<std::string>& patients);

  mutable std::shared_mutex mu_;
  std::unordered_map<std::string, Entry> by_id_;                              // Consent id -> entry
  std::unordered_map<std::string, std::vector<std::string>> by_patient_;      // patient -> Consent ids
};

}  // namespace phivault::policy

#endif  // PHIVAULT_POLICY_CONSENT_H_
