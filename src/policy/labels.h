// Security labels (meta.security) and the clearances they require.
//
// A resource needs a clearance for each of these meta.security codings:
//   confidentiality, system http://terminology.hl7.org/CodeSystem/v3-Confidentiality
//     R (restricted) needs "R"; V (very restricted) needs "V". A "V" clearance
//     also satisfies R. U, L, M, N need nothing.
//   sensitivity, system http://terminology.hl7.org/CodeSystem/v3-ActCode, the
//     codes in SensitivityCodes(): each needs a clearance of the same code.
//       ETH substance abuse · HIV · PSY psychiatry · PSYTHPN psychotherapy note
//       SDV sexual assault/abuse/domestic violence · SUD substance use disorder
//       STD sexually transmitted disease · SCA sickle cell · SEX sexuality and
//       reproductive health · GDIS genetic disease · BH behavioral health ·
//       MH mental health · TBOO taboo
// The legacy system URLs http://hl7.org/fhir/v3/Confidentiality and
// http://hl7.org/fhir/v3/ActCode are accepted too. A coding with NO system
// whose code is one of the above counts as that label (fail closed: an
// unlabelled system must not hide a restriction); codings with another system
// are not sensitivity labels. Codes compare case-sensitively.
//
// A patient is labelled by the meta.security of their Patient resource; every
// resource in that patient's compartment then needs those clearances too
// (PatientLabelIndex keeps them, fed on every write).
//
// Thread-safety: free functions are pure; PatientLabelIndex is internally
// synchronized (shared_mutex) and safe from any thread.
#ifndef PHIVAULT_POLICY_LABELS_H_
#define PHIVAULT_POLICY_LABELS_H_

#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <boost/json/object.hpp>

#include "common/status.h"

namespace phivault::policy {

inline constexpr std::string_view kConfidentialitySystem = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality";
inline constexpr std::string_view kActCodeSystem = "http://terminology.hl7.org/CodeSystem/v3-ActCode";

struct SecurityLabel {
  std::string system;  // "" if the coding has none
  std::string code;
  bool operator==(const SecurityLabel&) const = default;
};

// The meta.security codings of `resource` that have a string code
// (ill-typed entries are skipped).
std::vector<SecurityLabel> ExtractSecurityLabels(const boost::json::object& resource);

// The sensitivity codes listed above.
std::span<const std::string_view> SensitivityCodes();

// The clearances `labels` require, sorted and unique ("R", "V", "HIV", ...).
std::vector<std::string> RequiredClearances(const std::vector<SecurityLabel>& labels);

// The first required clearance `clearances` does not satisfy, or nullopt.
std::optional<std::string> MissingClearance(const std::vector<std::string>& required,
                                            const std::set<std::string>& clearances);

// Enumerates every current (non-deleted) resource: call `visit` once per
// resource with its patient link. Returns an error to abort a rebuild.
using ResourceVisitor = std::function<void(std::string_view type, std::string_view id,
                                           const boost::json::object& resource, const std::vector<std::string>& patients)>;
using ResourceEnumerator = std::function<Status(const ResourceVisitor&)>;

class PatientLabelSource {
 public:
  virtual ~PatientLabelSource() = default;
  // Clearances required by the patient's own labels (empty if none/unknown).
  virtual std::vector<std::string> PatientClearances(std::string_view patient_id) const = 0;
};

// Patient-level labels, from each Patient resource's meta.security.
class PatientLabelIndex : public PatientLabelSource {
 public:
  // Feed every committed write in commit order; `resource` is null for a
  // delete. Only type "Patient" matters; the patient is `id` (not the link,
  // so a Patient's labels never spread to the records it links to).
  void OnWrite(std::string_view type, std::string_view id, const boost::json::object* resource,
               const std::vector<std::string>& patients);
  // Replaces the contents with what `enumerate` yields; on error keeps the old
  // contents. REQUIRES: no concurrent OnWrite (run at startup).
  Status Rebuild(const ResourceEnumerator& enumerate);
  std::vector<std::string> PatientClearances(std::string_view patient_id) const override;

 private:
  mutable std::shared_mutex mu_;
  std::unordered_map<std::string, std::vector<std::string>> required_;  // only labelled patients
};

}  // namespace phivault::policy

#endif  // PHIVAULT_POLICY_LABELS_H_
