#include "policy/relationships.h"

#include <algorithm>
#include <mutex>
#include <set>
#include <unordered_map>

#include "policy/values.h"

namespace phivault::policy {

namespace json = boost::json;

std::string_view RelationshipPathName(RelationshipPath path) {
  switch (path) {
    case RelationshipPath::kCareTeam: return "CareTeam";
    case RelationshipPath::kEncounter: return "Encounter";
    case RelationshipPath::kGeneralPractitioner: return "Patient.generalPractitioner";
    case RelationshipPath::kEpisodeOfCare: return "EpisodeOfCare";
  }
  return "unknown";
}

std::vector<std::string> RelationshipSource::ActorRefs(std::string_view fhir_user, int64_t /*now_ms*/) const {
  std::vector<std::string> out;
  if (auto ref = NormalizeReference(fhir_user)) out.push_back(*ref);
  return out;
}

namespace {

// When something is valid: a closed interval, or for finished Encounters an
// end that is extended by the (configurable) window at query time.
struct Validity {
  int64_t from = kMinTime;
  int64_t to = kMaxTime;
  bool windowed = false;
  bool Contains(int64_t now, int64_t window_ms) const {
    if (now < from) return false;
    return now <= (windowed ? SaturatingAdd(to, window_ms) : to);
  }
};

struct Member {
  std::string ref;  // normalized Practitioner/… or PractitionerRole/…
  Validity valid;
};

// What one stored resource contributes. Kept per resource so that its next
// version (or its delete) can remove exactly this and nothing else.
struct Contribution {
  std::string type;
  std::vector<std::string> patients;
  bool counts = false;  // status (and well-formed period) make it count at all
  Validity valid;       // resource-level period / encounter window
  std::vector<Member> members;
  std::vector<std::string> teams;  // EpisodeOfCare.team (CareTeam refs)
  std::string practitioner;        // PractitionerRole.practitioner
  std::string organization;        // PractitionerRole.organization
};

bool IsPractitionerRef(std::string_view ref) {
  std::string_view t = RefType(ref);
  return t == "Practitioner" || t == "PractitionerRole";
}

std::optional<std::string> PractitionerRefOf(const json::value* reference) {
  if (!reference) return std::nullopt;
  auto ref = ReferenceOf(*reference);
  if (!ref || !IsPractitionerRef(*ref)) return std::nullopt;
  return ref;
}

// Resource-level period: absent = always; malformed = the resource does not
// count (a grant of access must be well-formed to take effect).
bool ApplyPeriod(const json::object& o, std::string_view key, Contribution& c) {
  const json::value* p = o.if_contains(key);
  if (!p) return true;
  auto b = ParsePeriod(*p);
  if (!b) return false;
  c.valid.from = b->from;
  c.valid.to = b->to;
  return true;
}

// CareTeam.participant[] members with their optional participant.period.
void CareTeamMembers(const json::object& r, Contribution& c) {
  const json::array* parts = GetArray(r, "participant");
  if (!parts) return;
  for (const json::value& pv : *parts) {
    const json::object* p = pv.if_object();
    if (!p) continue;
    auto ref = PractitionerRefOf(p->if_contains("member"));
    if (!ref) continue;
    Member m{*ref, {}};
    if (const json::value* period = p->if_contains("period")) {
      auto b = ParsePeriod(*period);
      if (!b) continue;  // malformed membership period: this membership grants nothing
      m.valid.from = b->from;
      m.valid.to = b->to;
    }
    c.members.push_back(std::move(m));
  }
}

Contribution Parse(std::string_view type, const json::object& r, const std::vector<std::string>& patients) {
  Contribution c;
  c.type = std::string(type);
  c.patients = patients;
  std::string_view status = GetString(r, "status");
  if (type == "CareTeam") {
    c.counts = (status.empty() && !r.contains("status")) || status == "active";
    if (!ApplyPeriod(r, "period", c)) c.counts = false;
    CareTeamMembers(r, c);
  } else if (type == "Encounter") {
    if (status == "in-progress" || status == "arrived" || status == "triaged" || status == "onleave") {
      c.counts = true;
    } else if (status == "finished") {
      const json::object* period = GetObject(r, "period");
      std::string_view end = period ? GetString(*period, "end") : std::string_view();
      if (auto range = ParseFhirDateTime(end)) {
        c.counts = true;
        c.valid.to = range->last_ms;
        c.valid.windowed = true;
      }
    }
    if (const json::array* parts = GetArray(r, "participant")) {
      for (const json::value& pv : *parts) {
        const json::object* p = pv.if_object();
        if (!p) continue;
        if (auto ref = PractitionerRefOf(p->if_contains("individual"))) c.members.push_back({*ref, {}});
      }
    }
  } else if (type == "Patient") {
    c.counts = true;
    if (const json::array* gps = GetArray(r, "generalPractitioner")) {
      for (const json::value& g : *gps) {
        if (auto ref = PractitionerRefOf(&g)) c.members.push_back({*ref, {}});
      }
    }
  } else if (type == "EpisodeOfCare") {
    c.counts = status == "active" || status == "onhold";
    if (!ApplyPeriod(r, "period", c)) c.counts = false;
    if (auto ref = PractitionerRefOf(r.if_contains("careManager"))) c.members.push_back({*ref, {}});
    if (const json::array* teams = GetArray(r, "team")) {
      for (const json::value& t : *teams) {
        auto ref = ReferenceOf(t);
        if (ref && RefType(*ref) == "CareTeam") c.teams.push_back(*ref);
      }
    }
  } else if (type == "PractitionerRole") {
    const json::value* active = r.if_contains("active");
    c.counts = !(active && active->is_bool() && !active->get_bool());
    if (const json::value* pr = r.if_contains("practitioner")) {
      auto ref = ReferenceOf(*pr);
      if (ref && RefType(*ref) == "Practitioner") c.practitioner = *ref;
    }
    if (const json::value* org = r.if_contains("organization")) {
      auto ref = ReferenceOf(*org);
      if (ref && RefType(*ref) == "Organization") c.organization = *ref;
    }
  }
  return c;
}

bool Relevant(std::string_view type) {
  return type == "CareTeam" || type == "Encounter" || type == "Patient" || type == "EpisodeOfCare" ||
         type == "PractitionerRole";
}

}  // namespace

struct RelationshipIndex::State {
  std::unordered_map<std::string, Contribution> resources;  // "Type/id" -> contribution
  // member ref -> patient -> keys of resources with a direct edge between them
  std::unordered_map<std::string, std::unordered_map<std::string, std::set<std::string>>> edges;
  // patient -> EpisodeOfCare keys that list teams
  std::unordered_map<std::string, std::set<std::string>> patient_episodes;
  // member ref -> CareTeam keys listing it
  std::unordered_map<std::string, std::set<std::string>> member_teams;
  // Practitioner ref -> active PractitionerRole keys
  std::unordered_map<std::string, std::set<std::string>> practitioner_roles;

  template <typename Map, typename Key>
  static void EraseFrom(Map& map, const Key& k, const std::string& value) {
    auto it = map.find(k);
    if (it == map.end()) return;
    it->second.erase(value);
    if (it->second.empty()) map.erase(it);
  }

  void Remove(const std::string& key) {
    auto it = resources.find(key);
    if (it == resources.end()) return;
    const Contribution& c = it->second;
    for (const Member& m : c.members) {
      auto e = edges.find(m.ref);
      if (e != edges.end()) {
        for (const std::string& p : c.patients) EraseFrom(e->second, p, key);
        if (e->second.empty()) edges.erase(e);
      }
      EraseFrom(member_teams, m.ref, key);
    }
    for (const std::string& p : c.patients) EraseFrom(patient_episodes, p, key);
    if (!c.practitioner.empty()) EraseFrom(practitioner_roles, c.practitioner, key);
    resources.erase(it);
  }

  void Add(const std::string& key, Contribution c) {
    if (c.counts) {
      if (c.type != "PractitionerRole") {
        for (const Member& m : c.members) {
          for (const std::string& p : c.patients) edges[m.ref][p].insert(key);
        }
      }
      if (c.type == "CareTeam") {
        for (const Member& m : c.members) member_teams[m.ref].insert(key);
      }
      if (c.type == "EpisodeOfCare" && !c.teams.empty()) {
        for (const std::string& p : c.patients) patient_episodes[p].insert(key);
      }
      if (c.type == "PractitionerRole" && !c.practitioner.empty()) practitioner_roles[c.practitioner].insert(key);
    }
    resources[key] = std::move(c);
  }

  // The references that denote the caller for relationship purposes.
  std::vector<std::string> Identities(std::string_view fhir_user) const {
    std::vector<std::string> out;
    auto ref = NormalizeReference(fhir_user);
    if (!ref || !IsPractitionerRef(*ref)) return out;
    std::string practitioner;
    if (RefType(*ref) == "Practitioner") {
      practitioner = *ref;
    } else {
      out.push_back(*ref);
      auto it = resources.find(*ref);
      if (it != resources.end() && it->second.counts) practitioner = it->second.practitioner;
    }
    if (!practitioner.empty()) {
      out.push_back(practitioner);
      auto roles = practitioner_roles.find(practitioner);
      if (roles != practitioner_roles.end()) out.insert(out.end(), roles->second.begin(), roles->second.end());
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
  }

  std::optional<RelationshipPath> Find(std::string_view fhir_user, std::string_view patient, int64_t now,
                                       int64_t window) const {
    std::vector<std::string> ids = Identities(fhir_user);
    if (ids.empty()) return std::nullopt;
    std::string pat(patient);
    for (const std::string& id : ids) {
      auto e = edges.find(id);
      if (e == edges.end()) continue;
      auto keys = e->second.find(pat);
      if (keys == e->second.end()) continue;
      for (const std::string& key : keys->second) {
        const Contribution& c = resources.at(key);
        if (!c.valid.Contains(now, window)) continue;
        for (const Member& m : c.members) {
          if (m.ref != id || !m.valid.Contains(now, window)) continue;
          if (c.type == "CareTeam") return RelationshipPath::kCareTeam;
          if (c.type == "Encounter") return RelationshipPath::kEncounter;
          if (c.type == "Patient") return RelationshipPath::kGeneralPractitioner;
          return RelationshipPath::kEpisodeOfCare;
        }
      }
    }
    auto eps = patient_episodes.find(pat);
    if (eps == patient_episodes.end()) return std::nullopt;
    for (const std::string& key : eps->second) {
      const Contribution& ep = resources.at(key);
      if (!ep.valid.Contains(now, window)) continue;
      for (const std::string& team : ep.teams) {
        auto t = resources.find(team);
        if (t == resources.end() || t->second.type != "CareTeam" || !t->second.counts ||
            !t->second.valid.Contains(now, window)) {
          continue;
        }
        for (const Member& m : t->second.members) {
          if (m.valid.Contains(now, window) && std::binary_search(ids.begin(), ids.end(), m.ref)) {
            return RelationshipPath::kEpisodeOfCare;
          }
        }
      }
    }
    return std::nullopt;
  }
};

RelationshipIndex::RelationshipIndex(RelationshipOptions options)
    : options_(options), state_(std::make_unique<State>()) {}
RelationshipIndex::~RelationshipIndex() = default;

void RelationshipIndex::OnWrite(std::string_view type, std::string_view id, const json::object* resource,
                                const std::vector<std::string>& patients) {
  if (!Relevant(type)) return;
  std::string key = std::string(type) + "/" + std::string(id);
  // Parse outside the lock: readers are blocked only for the map updates.
  std::optional<Contribution> c;
  if (resource) c = Parse(type, *resource, patients);
  std::unique_lock lock(mu_);
  state_->Remove(key);
  if (c) state_->Add(key, std::move(*c));
  generation_.fetch_add(1, std::memory_order_acq_rel);
}

Status RelationshipIndex::Rebuild(const ResourceEnumerator& enumerate) {
  auto fresh = std::make_unique<State>();
  Status st = enumerate([&](std::string_view type, std::string_view id, const json::object& r,
                            const std::vector<std::string>& patients) {
    if (!Relevant(type)) return;
    std::string key = std::string(type) + "/" + std::string(id);
    fresh->Remove(key);  // an enumerator that yields a resource twice keeps the last
    fresh->Add(key, Parse(type, r, patients));
  });
  if (!st.ok()) return st;
  std::unique_lock lock(mu_);
  state_ = std::move(fresh);
  generation_.fetch_add(1, std::memory_order_acq_rel);
  return Status::Ok();
}

bool RelationshipIndex::HasCareRelationship(std::string_view practitioner_ref, std::string_view patient_id,
                                            int64_t now_ms) const {
  return FindCareRelationship(practitioner_ref, patient_id, now_ms).has_value();
}

std::optional<RelationshipPath> RelationshipIndex::FindCareRelationship(std::string_view practitioner_ref,
                                                                        std::string_view patient_id,
                                                                        int64_t now_ms) const {
  std::shared_lock lock(mu_);
  return state_->Find(practitioner_ref, patient_id, now_ms, options_.encounter_window_ms);
}

std::vector<std::string> RelationshipIndex::ActorRefs(std::string_view fhir_user, int64_t now_ms) const {
  std::set<std::string> out;
  auto self = NormalizeReference(fhir_user);
  if (!self) return {};
  out.insert(*self);
  std::shared_lock lock(mu_);
  std::vector<std::string> ids = state_->Identities(fhir_user);
  for (const std::string& id : ids) {
    out.insert(id);
    auto r = state_->resources.find(id);
    if (r != state_->resources.end() && r->second.counts && !r->second.organization.empty()) {
      out.insert(r->second.organization);
    }
  }
  // CareTeams listing the caller (any of its identities, or the raw fhirUser
  // for non-practitioners) with a membership valid now.
  if (ids.empty()) ids.push_back(*self);
  for (const std::string& id : ids) {
    auto teams = state_->member_teams.find(id);
    if (teams == state_->member_teams.end()) continue;
    for (const std::string& team : teams->second) {
      const Contribution& t = state_->resources.at(team);
      if (!t.valid.Contains(now_ms, 0)) continue;
      for (const Member& m : t.members) {
        if (m.ref == id && m.valid.Contains(now_ms, 0)) out.insert(team);
      }
    }
  }
  return {out.begin(), out.end()};
}

size_t RelationshipIndex::size() const {
  std::shared_lock lock(mu_);
  return state_->resources.size();
}

}  // namespace phivault::policy
