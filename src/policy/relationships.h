// Care relationships between practitioners and patients (rule 3), derived
// from stored resources and kept in memory.
//
// A practitioner is related to patient P at time `now` through any of:
//  1. CareTeam   — status "active" or absent, CareTeam.period (if any)
//                  containing now, listing the practitioner in
//                  participant.member with participant.period (if any)
//                  containing now; P is in the CareTeam's patient link.
//  2. Encounter  — listing the practitioner in participant.individual, P in
//                  its patient link, and either status in-progress, arrived,
//                  triaged or onleave, or status finished with period.end E
//                  and now <= E + encounter window (default 30 days; E is the
//                  last instant of the written end value). Other statuses
//                  (planned, cancelled, entered-in-error, unknown) and
//                  finished-without-end never count (fail closed).
//                  participant.period is not consulted.
//  3. Patient.generalPractitioner — for the Patient's link (its id and
//                  link.other patients).
//  4. EpisodeOfCare — status active or onhold, period (if any) containing now,
//                  with the practitioner as careManager, or a member (rule 1's
//                  status/period tests, ignoring the team's own subject) of a
//                  CareTeam listed in EpisodeOfCare.team.
// Practitioner references: "Practitioner/x" and "PractitionerRole/y" (any
// reference form NormalizeReference accepts). PractitionerRole resources are
// indexed too (active != false): a caller whose fhirUser is Practitioner/x
// also matches every PractitionerRole whose `practitioner` is x, and a caller
// whose fhirUser is PractitionerRole/y also matches its Practitioner and that
// Practitioner's other roles. Organization, RelatedPerson, Patient and nested
// CareTeam members never make a practitioner related.
//
// The "patient link" is the one passed to OnWrite (the stored compartment
// link, DESIGN-NOTES), never recomputed here.
//
// This index is the cache of relationship lookups: nothing queries the store
// per request. Invalidation is exact: OnWrite first removes everything the
// resource's previous version contributed, then adds the new version's
// contribution (nothing for a delete), so a relationship appears or disappears
// with the write that causes it. Time-dependent validity (windows, periods) is
// evaluated at query time, so nothing goes stale as the clock moves.
//
// Thread-safety: all methods are safe from any thread (std::shared_mutex:
// queries share, writes exclude). OnWrite calls for the same resource must
// arrive in commit order (the store's single writer thread gives that).
#ifndef PHIVAULT_POLICY_RELATIONSHIPS_H_
#define PHIVAULT_POLICY_RELATIONSHIPS_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/object.hpp>

#include "common/status.h"
#include "policy/labels.h"  // ResourceVisitor, ResourceEnumerator

namespace phivault::policy {

inline constexpr int64_t kDefaultEncounterWindowMs = 30LL * 24 * 3600 * 1000;

enum class RelationshipPath { kCareTeam, kEncounter, kGeneralPractitioner, kEpisodeOfCare };
std::string_view RelationshipPathName(RelationshipPath path);

class RelationshipSource {
 public:
  virtual ~RelationshipSource() = default;
  // `practitioner_ref` is the caller's fhirUser (Practitioner/… or
  // PractitionerRole/…); false for anything else.
  virtual bool HasCareRelationship(std::string_view practitioner_ref, std::string_view patient_id,
                                   int64_t now_ms) const = 0;
  // Every normalized reference the caller is known by, used to match Consent
  // actors: the fhirUser itself, linked Practitioner/PractitionerRoles, their
  // Organizations and the CareTeams listing any of them (valid at now_ms).
  // The default knows only the fhirUser.
  virtual std::vector<std::string> ActorRefs(std::string_view fhir_user, int64_t now_ms) const;
};

struct RelationshipOptions {
  int64_t encounter_window_ms = kDefaultEncounterWindowMs;
};

class RelationshipIndex : public RelationshipSource {
 public:
  explicit RelationshipIndex(RelationshipOptions options = {});
  ~RelationshipIndex() override;
  RelationshipIndex(const RelationshipIndex&) = delete;
  RelationshipIndex& operator=(const RelationshipIndex&) = delete;

  // Feed every committed write: `resource` is the new version, or null for a
  // delete; `patients` its patient link. Types other than CareTeam,
  // Encounter, Patient, EpisodeOfCare and PractitionerRole are ignored.
  void OnWrite(std::string_view type, std::string_view id, const boost::json::object* resource,
               const std::vector<std::string>& patients);

  // Replaces the contents with what `enumerate` yields (built aside, then
  // swapped in); on error the old contents stay. REQUIRES: no concurrent
  // OnWrite (writes during the enumeration would be lost): run at startup.
  Status Rebuild(const ResourceEnumerator& enumerate);

  bool HasCareRelationship(std::string_view practitioner_ref, std::string_view patient_id,
                           int64_t now_ms) const override;
  // The first path found (for the audit trail), or nullopt.
  std::optional<RelationshipPath> FindCareRelationship(std::string_view practitioner_ref, std::string_view patient_id,
                                                       int64_t now_ms) const;
  std::vector<std::string> ActorRefs(std::string_view fhir_user, int64_t now_ms) const override;

  // Incremented by every OnWrite/Rebuild that changed the index; callers that
  // memoize decisions compare it to invalidate.
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }
  // Number of indexed contributing resources (for tests and metrics).
  size_t size() const;

  struct State;  // opaque; defined in relationships.cc

 private:
  RelationshipOptions options_;
  mutable std::shared_mutex mu_;
  std::unique_ptr<State> state_;
  std::atomic<uint64_t> generation_{0};
};

}  // namespace phivault::policy

#endif  // PHIVAULT_POLICY_RELATIONSHIPS_H_
