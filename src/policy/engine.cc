#include "policy/engine.h"

#include <algorithm>

#include <boost/json/array.hpp>

#include "fhir/compartment.h"
#include "fhir/operation_outcome.h"
#include "fhir/resource_types.h"
#include "policy/values.h"

namespace phivault::policy {

namespace json = boost::json;

std::string_view InteractionName(Interaction i) {
  switch (i) {
    case Interaction::kRead: return "read";
    case Interaction::kVRead: return "vread";
    case Interaction::kSearch: return "search";
    case Interaction::kCreate: return "create";
    case Interaction::kUpdate: return "update";
    case Interaction::kDelete: return "delete";
    case Interaction::kHistory: return "history";
  }
  return "unknown";
}

std::string_view ResourceClassName(ResourceClass c) {
  switch (c) {
    case ResourceClass::kClinical: return "clinical";
    case ResourceClass::kDemographic: return "demographic";
    case ResourceClass::kAdministrative: return "administrative";
    case ResourceClass::kDevice: return "device";
    case ResourceClass::kConsent: return "consent";
    case ResourceClass::kAudit: return "audit";
  }
  return "unknown";
}

std::map<std::string, ResourceClass, std::less<>> DefaultResourceClasses() {
  std::map<std::string, ResourceClass, std::less<>> m;
  for (const char* t : {"Patient", "RelatedPerson", "Person"}) m[t] = ResourceClass::kDemographic;
  // Not patient data: who/where/what the organisation is and the definitions
  // it works with. Everything else defaults to clinical (fail closed).
  for (const char* t :
       {"Organization", "OrganizationAffiliation", "Practitioner", "PractitionerRole", "Location",
        "HealthcareService", "Endpoint", "Schedule", "Slot", "CapabilityStatement", "StructureDefinition",
        "ValueSet", "CodeSystem", "ConceptMap", "NamingSystem", "SearchParameter", "OperationDefinition",
        "CompartmentDefinition", "ImplementationGuide", "Questionnaire", "Medication", "MedicationKnowledge",
        "Substance", "ActivityDefinition", "PlanDefinition", "ObservationDefinition", "SpecimenDefinition"}) {
    m[t] = ResourceClass::kAdministrative;
  }
  for (const char* t : {"Device", "DeviceDefinition", "DeviceMetric"}) m[t] = ResourceClass::kDevice;
  m["Consent"] = ResourceClass::kConsent;
  m["AuditEvent"] = ResourceClass::kAudit;
  return m;
}

namespace {

// Interaction kinds as the role table and SMART letters see them.
constexpr unsigned kOpC = 1, kOpR = 2, kOpU = 4, kOpD = 8, kOpS = 16, kOpAll = 31;

// SMART v2: r = read, vread, instance history; s = search, type/system history.
unsigned OpOf(Interaction i, bool id_known) {
  switch (i) {
    case Interaction::kRead:
    case Interaction::kVRead: return kOpR;
    case Interaction::kHistory: return id_known ? kOpR : kOpS;
    case Interaction::kSearch: return kOpS;
    case Interaction::kCreate: return kOpC;
    case Interaction::kUpdate: return kOpU;
    case Interaction::kDelete: return kOpD;
  }
  return 0;
}

char OpLetter(unsigned op) {
  switch (op) {
    case kOpC: return 'c';
    case kOpR: return 'r';
    case kOpU: return 'u';
    case kOpD: return 'd';
    default: return 's';
  }
}

std::string PatientIdOf(const Principal& p) {
  auto ref = NormalizeReference(p.fhir_user);
  if (!ref || RefType(*ref) != "Patient") return {};
  return ref->substr(std::string_view("Patient/").size());
}

std::string ContextPatient(const Principal& p) {
  if (!p.launch_patient.empty()) return p.launch_patient;
  return p.role == Role::kPatient ? PatientIdOf(p) : std::string();
}

bool Contains(const std::vector<std::string>& v, std::string_view x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

std::string Join(const std::vector<std::string>& v) {
  std::string out;
  for (const std::string& s : v) {
    if (!out.empty()) out += ',';
    out += s;
  }
  return out;
}

std::string DeniedBy(std::string_view rule, std::string_view what) {
  std::string s = "access denied by policy rule '";
  s.append(rule).append("': ").append(what);
  return s;
}

void Trace(Decision& d, std::string rule, bool passed, std::string detail) {
  d.trace.push_back({std::move(rule), passed, std::move(detail)});
}

void Deny(Decision& d, std::string rule, std::string reason) {
  d.allowed = false;
  d.rule = std::move(rule);
  d.reason = std::move(reason);
}

}  // namespace

struct PolicyEngine::Gate {
  bool ok = false;
  bool instance_dependent = false;  // the failure depended on the resource, not only on its type
};

PolicyIndexes::PolicyIndexes(const PolicyConfig& config)
    : relationships(RelationshipOptions{config.encounter_window_ms}) {}

void PolicyIndexes::OnWrite(std::string_view type, std::string_view id, const json::object* resource,
                            const std::vector<std::string>& patients) {
  relationships.OnWrite(type, id, resource, patients);
  consents.OnWrite(type, id, resource, patients);
  patient_labels.OnWrite(type, id, resource, patients);
}

Status PolicyIndexes::Rebuild(const ResourceEnumerator& enumerate) {
  PV_RETURN_IF_ERROR(relationships.Rebuild(enumerate));
  PV_RETURN_IF_ERROR(consents.Rebuild(enumerate));
  return patient_labels.Rebuild(enumerate);
}

PolicyEngine::PolicyEngine(PolicyConfig config, PolicySources sources)
    : config_(std::move(config)), sources_(sources) {}

ResourceClass PolicyEngine::ClassOf(std::string_view type) const {
  auto it = config_.resource_classes.find(type);
  return it == config_.resource_classes.end() ? ResourceClass::kClinical : it->second;
}

PolicyEngine::Gate PolicyEngine::CheckGates(const Principal& p, Interaction interaction, std::string_view type,
                                            bool id_known, const AccessRequest* inst, Decision& d) const {
  Gate g;
  const std::string role(RoleName(p.role));
  const std::string what = std::string(InteractionName(interaction)) + " " + std::string(type);

  // Identity: every role needs a subject; clinicians and patients need a
  // fhirUser of the right kind because later rules key on it.
  std::string_view identity_problem;
  auto user_ref = NormalizeReference(p.fhir_user);
  if (p.subject.empty()) {
    identity_problem = "no subject";
  } else if (p.role == Role::kClinician &&
             (!user_ref || (RefType(*user_ref) != "Practitioner" && RefType(*user_ref) != "PractitionerRole"))) {
    identity_problem = "clinician without a Practitioner/PractitionerRole fhirUser";
  } else if (p.role == Role::kPatient && PatientIdOf(p).empty()) {
    identity_problem = "patient without a Patient fhirUser";
  }
  if (!identity_problem.empty()) {
    Trace(d, "identity", false, std::string(identity_problem));
    Deny(d, "identity", DeniedBy("identity", "the token does not identify a user suitable for role '" + role + "'"));
    return g;
  }
  Trace(d, "identity", true, role + " " + (user_ref ? *user_ref : "subject:" + p.subject));

  if (!fhir::IsKnownResourceType(type)) {
    Trace(d, "request", false, "unknown resource type");
    Deny(d, "request", DeniedBy("request", "unknown resource type"));
    return g;
  }

  // Role policy (README "What each role can do").
  const unsigned op = OpOf(interaction, id_known);
  const ResourceClass cls = ClassOf(type);
  unsigned caps = 0;
  switch (p.role) {
    case Role::kClinician:
      caps = cls == ResourceClass::kClinical ? kOpAll : cls == ResourceClass::kAudit ? 0 : (kOpR | kOpS);
      break;
    case Role::kRegistration:
      caps = cls == ResourceClass::kDemographic      ? (kOpR | kOpS | kOpC | kOpU)
             : cls == ResourceClass::kAdministrative ? (kOpR | kOpS)
                                                     : 0;
      break;
    case Role::kPrivacyOfficer:
      caps = cls == ResourceClass::kConsent                                          ? (kOpR | kOpS | kOpC | kOpU)
             : cls == ResourceClass::kAudit || cls == ResourceClass::kAdministrative ? (kOpR | kOpS)
                                                                                     : 0;
      break;
    case Role::kSecurityAdmin:
      caps = cls == ResourceClass::kAdministrative || cls == ResourceClass::kDevice ? kOpAll : 0;
      break;
    case Role::kDevice:
      // Writes of the configured types; reads of the same types, narrowed to
      // its own writes below (it can only have written these).
      caps = config_.device_writable_types.count(type) ? (kOpC | kOpU | kOpR | kOpS) : 0;
      break;
    case Role::kSystem:
      caps = kOpAll;  // back-end services are limited by their scopes
      break;
    case Role::kPatient:
      caps = cls == ResourceClass::kAudit ? 0 : (kOpR | kOpS);
      if (config_.patient_writable_types.count(type)) caps |= kOpC | kOpU;
      break;
  }
  if ((caps & op) == 0) {
    Trace(d, "role", false, role + " may not " + what + " (" + std::string(ResourceClassName(cls)) + ")");
    Deny(d, "role", DeniedBy("role", "role '" + role + "' may not " + what));
    return g;
  }
  Trace(d, "role", true, std::string(ResourceClassName(cls)));

  if (inst) {
    if (p.role == Role::kPatient) {
      // Own compartment only. Patient-less resources are readable only if they
      // are not patient data by class (directory, devices).
      const std::string self = PatientIdOf(p);
      bool ok;
      if (op & (kOpC | kOpU)) {
        ok = !inst->patients.empty() &&
             std::all_of(inst->patients.begin(), inst->patients.end(), [&](const std::string& x) { return x == self; });
      } else if (inst->patients.empty()) {
        ok = cls == ResourceClass::kAdministrative || cls == ResourceClass::kDevice;
      } else {
        ok = Contains(inst->patients, self);
      }
      if (!ok) {
        Trace(d, "patient-compartment", false, "not in the compartment of Patient/" + self);
        Deny(d, "patient-compartment", DeniedBy("patient-compartment", "outside the patient's own compartment"));
        g.instance_dependent = true;
        return g;
      }
      Trace(d, "patient-compartment", true, "");
    }
    if (p.role == Role::kDevice) {
      const std::string me = AuthorId(p);
      std::string problem;
      if (op & (kOpC | kOpU)) {
        for (const std::string& x : inst->patients) {
          if (!Contains(p.device_patients, x)) problem = "patient not bound to the device: " + x;
        }
        // A patient-compartment type written without a patient would be
        // unattributable; a device must say whose data it is.
        if (problem.empty() && inst->patients.empty() && fhir::HasPatientCompartment(type)) {
          problem = "no patient link";
        }
        if (problem.empty() && op == kOpU && !inst->resource_author_device.empty() &&
            inst->resource_author_device != me) {
          problem = "stored version written by another principal";
        }
      } else if (inst->resource_author_device.empty() || inst->resource_author_device != me) {
        problem = "not written by this device";
      }
      if (!problem.empty()) {
        Trace(d, "device-binding", false, problem);
        Deny(d, "device-binding",
             DeniedBy("device-binding",
                      "a device may write only its permitted types for its bound patients and read only its own writes"));
        g.instance_dependent = true;
        return g;
      }
      Trace(d, "device-binding", true, "");
    }
  }

  // Scopes (SMART v2). patient/ scopes only reach the context patient's
  // compartment (and resources in no compartment).
  const std::string ctx = ContextPatient(p);
  bool granted = false, context_mismatch = false;
  for (const ScopeGrant& s : p.scopes) {
    if (s.type != "*" && s.type != type) continue;
    bool letter = (op == kOpC && s.c) || (op == kOpR && s.r) || (op == kOpU && s.u) || (op == kOpD && s.d) ||
                  (op == kOpS && s.s);
    if (!letter) continue;
    if (s.context == ScopeGrant::kPatient) {
      if (ctx.empty()) continue;
      if (inst && !inst->patients.empty() && !Contains(inst->patients, ctx)) {
        context_mismatch = true;
        continue;
      }
    }
    granted = true;
    break;
  }
  if (!granted) {
    std::string letter(1, OpLetter(op));
    Trace(d, "scope", false,
          context_mismatch ? "patient/ scope for another patient" : "no scope grants " + letter + " on " + std::string(type));
    Deny(d, "scope", DeniedBy("scope", "the token's scopes do not permit " + what));
    g.instance_dependent = context_mismatch;
    return g;
  }
  Trace(d, "scope", true, "");
  g.ok = true;
  return g;
}

Decision PolicyEngine::DecideType(const Principal& p, Interaction interaction, std::string_view type,
                                  bool id_known) const {
  Decision d;
  Gate g = CheckGates(p, interaction, type, id_known, nullptr, d);
  if (g.ok) {
    d.allowed = true;
    d.rule = "allow";
  }
  return d;
}

std::optional<int64_t> PolicyEngine::BreakGlassExpiry(std::string_view subject, std::string_view patient_id,
                                                      int64_t now_ms) const {
  std::lock_guard lock(grants_mu_);
  auto it = grants_.find({std::string(subject), std::string(patient_id)});
  if (it == grants_.end() || now_ms >= it->second) return std::nullopt;
  return it->second;
}

namespace {

// Creates and updates of the types care relationships are derived from
// (relationships.h); deletes only remove relationships.
bool WritesCareRelationship(const AccessRequest& req) {
  if (req.interaction != Interaction::kCreate && req.interaction != Interaction::kUpdate) return false;
  return req.type == "CareTeam" || req.type == "Encounter" || req.type == "EpisodeOfCare";
}

}  // namespace

Decision PolicyEngine::Decide(const Principal& p, const AccessRequest& req) {
  Decision d;
  d.break_glass_requested = req.purpose_of_use == "ETREAT" && !req.break_glass_reason.empty();
  const bool id_known = req.instance_level && !req.id.empty();
  Gate g = CheckGates(p, req.interaction, req.type, id_known, &req, d);
  if (!g.ok) {
    d.hide_existence = g.instance_dependent && req.interaction != Interaction::kCreate;
    return d;
  }
  const int64_t now = req.now_ms;
  std::vector<std::string> patients = req.patients;
  std::sort(patients.begin(), patients.end());
  patients.erase(std::unique(patients.begin(), patients.end()), patients.end());
  // A patient's own consent and labels never restrict the patient.
  const std::string self = p.role == Role::kPatient ? PatientIdOf(p) : std::string();

  std::vector<std::string> failed;  // in decision order

  // 3. Care relationship: clinicians, for every linked patient.
  if (p.role == Role::kClinician && !patients.empty()) {
    std::vector<std::string> missing;
    for (const std::string& x : patients) {
      if (!sources_.relationships || !sources_.relationships->HasCareRelationship(p.fhir_user, x, now)) {
        missing.push_back(x);
      }
    }
    Trace(d, "care-relationship", missing.empty(), missing.empty() ? "" : "no relationship with Patient/" + Join(missing));
    if (!missing.empty()) failed.push_back("care-relationship");
  } else if (p.role == Role::kClinician && req.type == "CareTeam" && WritesCareRelationship(req)) {
    // A CareTeam that names no patient still makes its members related to
    // the patient of every EpisodeOfCare listing it (relationships.h, rule
    // 4), and there is no patient to check a relationship with: a clinician
    // could add themselves to such a team and so to its episodes' patients.
    // Teams like that are maintained by administrative (system) identities.
    Trace(d, "care-relationship", false, "a CareTeam without a patient relates its members through EpisodeOfCare");
    failed.push_back("care-relationship");
  }

  // 4. Consent of every linked patient (other than the patient themself).
  // Consents and audit events are the privacy machinery, not the data a
  // consent governs: a deny-all Consent must not lock the privacy officer out
  // of the Consent itself (or of the audit trail).
  std::vector<SecurityLabel> labels;
  if (req.resource) labels = ExtractSecurityLabels(*req.resource);
  const ResourceClass cls = ClassOf(req.type);
  if (cls != ResourceClass::kConsent && cls != ResourceClass::kAudit) {
    ConsentAccess a;
    if (sources_.relationships) {
      a.actor_refs = sources_.relationships->ActorRefs(p.fhir_user, now);
    } else if (auto ref = NormalizeReference(p.fhir_user)) {
      a.actor_refs.push_back(*ref);
    }
    a.purpose_of_use = req.purpose_of_use;
    if (a.purpose_of_use.empty()) {
      auto it = config_.default_purpose_of_use.find(p.role);
      if (it != config_.default_purpose_of_use.end()) a.purpose_of_use = it->second;
    }
    a.resource_type = req.type;
    a.resource_ref = req.id.empty() ? std::string() : req.type + "/" + req.id;
    a.labels = labels;
    a.labels_known = req.resource != nullptr;
    a.action = req.interaction == Interaction::kCreate ? ConsentAction::kCollect
               : (req.interaction == Interaction::kUpdate || req.interaction == Interaction::kDelete)
                   ? ConsentAction::kCorrect
                   : ConsentAction::kAccess;
    a.now_ms = now;
    std::string detail;
    for (const std::string& x : patients) {
      if (x == self || !sources_.consents) continue;
      ConsentVerdict v = sources_.consents->Evaluate(x, a);
      if (v.denied) {
        detail = v.consent_ref + ": " + v.detail;
        break;
      }
    }
    if (!patients.empty()) Trace(d, "consent", detail.empty(), detail);
    if (!detail.empty()) failed.push_back("consent");
  }

  // 5. Sensitivity: the resource's labels and its patients' labels.
  {
    std::vector<std::string> required;
    if (self.empty() || !Contains(patients, self)) required = RequiredClearances(labels);
    for (const std::string& x : patients) {
      if (x == self || !sources_.patient_labels) continue;
      for (std::string& c : sources_.patient_labels->PatientClearances(x)) required.push_back(std::move(c));
    }
    std::sort(required.begin(), required.end());
    required.erase(std::unique(required.begin(), required.end()), required.end());
    auto missing = MissingClearance(required, p.clearances);
    Trace(d, "sensitivity", !missing, missing ? "missing clearance " + *missing : "");
    if (missing) failed.push_back("sensitivity");
  }

  if (failed.empty()) {
    d.allowed = true;
    d.rule = "allow";
    return d;
  }

  // Break-glass: clinicians only, and only over relationship/sensitivity
  // (consent too if configured).
  auto overridable = [&](const std::string& rule) {
    return rule == "care-relationship" || rule == "sensitivity" ||
           (rule == "consent" && config_.break_glass_overrides_consent);
  };
  const bool all_overridable = std::all_of(failed.begin(), failed.end(), overridable);
  std::string bg_refusal;
  if (p.role != Role::kClinician) {
    bg_refusal = "role cannot break glass";
  } else if (!all_overridable) {
    bg_refusal = "consent denial cannot be overridden";
  } else if (WritesCareRelationship(req) && Contains(failed, "care-relationship")) {
    // Break-glass is for the emergency, not a way in for good: a CareTeam,
    // Encounter or EpisodeOfCare written under it could name the writer and
    // so outlast the grant as a care relationship.
    bg_refusal = "break-glass does not extend to writing care relationships (" + req.type + ")";
  } else {
    bool covered = !patients.empty();
    {
      std::lock_guard lock(grants_mu_);
      for (const std::string& x : patients) {
        auto it = grants_.find({p.subject, x});
        if (it == grants_.end() || now >= it->second) covered = false;
      }
    }
    if (covered) {
      Trace(d, "break-glass", true, "active grant for Patient/" + Join(patients));
      d.allowed = true;
      d.break_glass = true;
      d.rule = "break-glass";
      return d;
    }
    // Opening a grant needs one concrete resource: a search (or type-level
    // history) would otherwise open every patient it happens to match.
    const bool can_activate = req.instance_level && req.interaction != Interaction::kSearch &&
                              !(req.interaction == Interaction::kHistory && !id_known);
    if (d.break_glass_requested && can_activate) {
      {
        std::lock_guard lock(grants_mu_);
        // Drop expired grants so the map stays proportional to active ones.
        std::erase_if(grants_, [&](const auto& kv) { return now >= kv.second; });
        for (const std::string& x : patients) {
          grants_[{p.subject, x}] = SaturatingAdd(now, config_.break_glass_window_ms);
        }
      }
      Trace(d, "break-glass", true,
            (patients.empty() ? std::string("activated for this resource only")
                              : "activated for Patient/" + Join(patients)) +
                " (overrides " + Join(failed) + ")");
      d.allowed = true;
      d.break_glass = true;
      d.break_glass_activated = true;
      d.rule = "break-glass";
      return d;
    }
    if (d.break_glass_requested) bg_refusal = "break-glass activates only on a single resource, not a search";
  }
  if (d.break_glass_requested) Trace(d, "break-glass", false, bg_refusal);

  const std::string& rule = failed.front();
  std::string reason;
  if (rule == "care-relationship") {
    reason = DeniedBy(rule, "no care relationship with the patient");
  } else if (rule == "consent") {
    reason = DeniedBy(rule, "a patient consent directive denies this access");
  } else {
    reason = DeniedBy(rule, "the data requires a clearance the user does not hold");
  }
  if (d.break_glass_requested && !bg_refusal.empty()) reason += " (break-glass not applicable)";
  Deny(d, rule, std::move(reason));
  // These rules depend on the record (its patient, consent, labels): a caller
  // denied by them must not learn that it exists.
  d.hide_existence = req.interaction != Interaction::kCreate;
  return d;
}

Status DecisionStatus(const Decision& d) {
  if (d.allowed) return Status::Ok();
  if (d.hide_existence) return NotFound("resource not found");
  return PermissionDenied(d.reason);
}

std::string DenialOperationOutcome(const Decision& d) {
  return fhir::OperationOutcomeJson("error", "forbidden", d.reason);
}

json::object DecisionRecord(const Principal& p, const AccessRequest& r, const Decision& d) {
  json::object rec;
  json::object who;
  who["subject"] = p.subject;
  who["role"] = RoleName(p.role);
  who["fhir_user"] = p.fhir_user;
  who["client_id"] = p.client_id;
  rec["principal"] = std::move(who);
  rec["interaction"] = InteractionName(r.interaction);
  rec["type"] = r.type;
  rec["id"] = r.id;
  json::array pats;
  for (const std::string& x : r.patients) pats.emplace_back(x);
  rec["patients"] = std::move(pats);
  rec["purpose_of_use"] = r.purpose_of_use;
  if (!r.break_glass_reason.empty()) rec["break_glass_reason"] = r.break_glass_reason;
  json::array labels;
  if (r.resource) {
    for (const SecurityLabel& l : ExtractSecurityLabels(*r.resource)) labels.emplace_back(l.code);
  }
  rec["resource_labels"] = std::move(labels);
  rec["allowed"] = d.allowed;
  rec["rule"] = d.rule;
  rec["break_glass"] = d.break_glass;
  rec["break_glass_activated"] = d.break_glass_activated;
  rec["hide_existence"] = d.hide_existence;
  json::array trace;
  for (const RuleCheck& c : d.trace) {
    json::object t;
    t["rule"] = c.rule;
    t["passed"] = c.passed;
    if (!c.detail.empty()) t["detail"] = c.detail;
    trace.push_back(std::move(t));
  }
  rec["trace"] = std::move(trace);
  return rec;
}

}  // namespace phivault::policy
