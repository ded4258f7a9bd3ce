#include "policy/consent.h"

#include <algorithm>
#include <mutex>

#include "policy/values.h"

namespace phivault::policy {

namespace json = boost::json;

namespace {

enum class Tri { kNo, kYes, kUnknown };

constexpr std::string_view kActReason = "http://terminology.hl7.org/CodeSystem/v3-ActReason";
constexpr std::string_view kActReasonLegacy = "http://hl7.org/fhir/v3/ActReason";
constexpr std::string_view kResourceTypes = "http://hl7.org/fhir/resource-types";
constexpr std::string_view kConsentAction = "http://terminology.hl7.org/CodeSystem/consentaction";
constexpr std::string_view kConsentScope = "http://terminology.hl7.org/CodeSystem/consentscope";
// Nesting beyond this is treated as malformed; ParseJson bounds depth anyway.
constexpr int kMaxProvisionDepth = 16;

struct Criterion {
  bool present = false;
  std::vector<std::string> values;  // comparable values (refs, codes)
  bool has_unknown = false;         // some entry could not be evaluated

  // Yes if any value satisfies `match`; else Unknown if some entry was not
  // evaluable; else No. Not present: Yes (no restriction).
  template <typename F>
  Tri Eval(F match) const {
    if (!present) return Tri::kYes;
    for (const std::string& v : values) {
      if (match(v)) return Tri::kYes;
    }
    return has_unknown ? Tri::kUnknown : Tri::kNo;
  }
};

struct Provision {
  enum Type { kDeny, kPermit } type = kPermit;
  bool has_period = false;
  std::optional<Bounds> period;  // nullopt with has_period: malformed
  Criterion actor, purpose, klass, action, data;
  std::vector<SecurityLabel> labels;
  bool has_labels = false;
  bool unsupported = false;  // code / dataPeriod: cannot be evaluated here
  std::vector<Provision> children;
};

}  // namespace

struct ParsedConsent {
  bool malformed = false;
  Provision root;
};

namespace {

// The codes of a Coding array whose system is `system`/`legacy` or absent.
// Codings in other systems or without a code make the criterion "unknown".
bool ReadCodings(const json::value& v, std::string_view system, std::string_view legacy, Criterion& out) {
  const json::array* arr = v.if_array();
  if (!arr) return false;
  if (arr->empty()) return true;  // an empty list states no restriction
  out.present = true;
  for (const json::value& cv : *arr) {
    const json::object* c = cv.if_object();
    if (!c) {
      out.has_unknown = true;
      continue;
    }
    std::string_view sys = GetString(*c, "system");
    std::string_view code = GetString(*c, "code");
    bool sys_ok = (!c->contains("system")) || sys == system || (!legacy.empty() && sys == legacy);
    if (!sys_ok || code.empty()) {
      out.has_unknown = true;
      continue;
    }
    out.values.emplace_back(code);
  }
  return true;
}

bool ParseProvision(const json::value& v, bool root, int depth, Provision& p) {
  const json::object* o = v.if_object();
  if (!o || depth > kMaxProvisionDepth) return false;
  if (const json::value* t = o->if_contains("type")) {
    if (!t->is_string()) return false;
    std::string_view type(t->get_string().data(), t->get_string().size());
    if (type == "deny") {
      p.type = Provision::kDeny;
    } else if (type == "permit") {
      p.type = Provision::kPermit;
    } else {
      return false;
    }
  } else {
    // R4: no type on the root (it then only hosts exceptions); nested rules
    // require one, and a nested rule we cannot classify must not open access.
    p.type = root ? Provision::kPermit : Provision::kDeny;
  }
  if (const json::value* period = o->if_contains("period")) {
    p.has_period = true;
    p.period = ParsePeriod(*period);
  }
  if (const json::value* actors = o->if_contains("actor")) {
    const json::array* arr = actors->if_array();
    if (!arr) return false;
    p.actor.present = !arr->empty();
    for (const json::value& av : *arr) {
      const json::object* a = av.if_object();
      auto ref = a ? (a->if_contains("reference") ? ReferenceOf(a->at("reference")) : std::nullopt) : std::nullopt;
      // Group membership is not resolved here: a Group actor is "unknown".
      if (ref && RefType(*ref) != "Group") {
        p.actor.values.push_back(*ref);
      } else {
        p.actor.has_unknown = true;
      }
    }
  }
  if (const json::value* purpose = o->if_contains("purpose")) {
    if (!ReadCodings(*purpose, kActReason, kActReasonLegacy, p.purpose)) return false;
  }
  if (const json::value* klass = o->if_contains("class")) {
    if (!ReadCodings(*klass, kResourceTypes, {}, p.klass)) return false;
  }
  if (const json::value* actions = o->if_contains("action")) {
    // action is CodeableConcept[]: flatten their codings into one Coding list.
    const json::array* arr = actions->if_array();
    if (!arr) return false;
    json::array codings;
    bool any_unknown = false;
    for (const json::value& cc : *arr) {
      const json::object* c = cc.if_object();
      const json::array* cs = c ? GetArray(*c, "coding") : nullptr;
      if (!cs || cs->empty()) {
        any_unknown = true;
        continue;
      }
      for (const json::value& x : *cs) codings.push_back(x);
    }
    if (!arr->empty()) {
      ReadCodings(codings, kConsentAction, {}, p.action);
      p.action.present = true;
      p.action.has_unknown = p.action.has_unknown || any_unknown;
    }
  }
  if (const json::value* labels = o->if_contains("securityLabel")) {
    const json::array* arr = labels->if_array();
    if (!arr) return false;
    for (const json::value& lv : *arr) {
      const json::object* l = lv.if_object();
      if (!l || GetString(*l, "code").empty()) {
        p.unsupported = true;  // an unreadable label cannot be compared
        continue;
      }
      p.labels.push_back({std::string(GetString(*l, "system")), std::string(GetString(*l, "code"))});
    }
    p.has_labels = !arr->empty();
  }
  if (const json::value* data = o->if_contains("data")) {
    const json::array* arr = data->if_array();
    if (!arr) return false;
    p.data.present = !arr->empty();
    for (const json::value& dv : *arr) {
      const json::object* d = dv.if_object();
      std::string_view meaning = d ? GetString(*d, "meaning") : std::string_view();
      auto ref = d && d->if_contains("reference") ? ReferenceOf(d->at("reference")) : std::nullopt;
      if (ref && (meaning.empty() || meaning == "instance")) {
        p.data.values.push_back(*ref);
      } else {
        p.data.has_unknown = true;
      }
    }
  }
  if (o->contains("code") || o->contains("dataPeriod")) p.unsupported = true;
  if (const json::value* nested = o->if_contains("provision")) {
    const json::array* arr = nested->if_array();
    if (!arr) return false;
    for (const json::value& child : *arr) {
      Provision c;
      if (!ParseProvision(child, /*root=*/false, depth + 1, c)) return false;
      p.children.push_back(std::move(c));
    }
  }
  return true;
}

std::vector<std::string> PurposeWithAncestors(const std::string& purpose) {
  std::vector<std::string> out{purpose};
  if (purpose == "ETREAT") out.push_back("TREAT");
  if (purpose == "BTG") {
    out.push_back("ETREAT");
    out.push_back("TREAT");
  }
  return out;
}

bool ActionCovers(std::string_view code, ConsentAction a) {
  switch (a) {
    case ConsentAction::kAccess: return code == "access" || code == "use" || code == "disclose";
    case ConsentAction::kCollect: return code == "collect";
    case ConsentAction::kCorrect: return code == "correct";
  }
  return false;
}

Tri Combine(Tri a, Tri b) {
  if (a == Tri::kNo || b == Tri::kNo) return Tri::kNo;
  if (a == Tri::kUnknown || b == Tri::kUnknown) return Tri::kUnknown;
  return Tri::kYes;
}

Tri Matches(const Provision& p, const ConsentAccess& a, std::string* why) {
  Tri t = Tri::kYes;
  auto step = [&](Tri r, const char* name) {
    if (r != Tri::kYes && why->empty()) *why = name;
    t = Combine(t, r);
  };
  if (p.has_period) {
    step(!p.period ? Tri::kUnknown : (p.period->Contains(a.now_ms) ? Tri::kYes : Tri::kNo), "period");
  }
  step(p.actor.Eval([&](const std::string& r) {
    return std::find(a.actor_refs.begin(), a.actor_refs.end(), r) != a.actor_refs.end();
  }), "actor");
  if (p.purpose.present && a.purpose_of_use.empty()) {
    step(Tri::kUnknown, "purpose");
  } else {
    std::vector<std::string> purposes = PurposeWithAncestors(a.purpose_of_use);
    step(p.purpose.Eval([&](const std::string& c) {
      return std::find(purposes.begin(), purposes.end(), c) != purposes.end();
    }), "purpose");
  }
  step(p.klass.Eval([&](const std::string& c) { return c == a.resource_type; }), "class");
  step(p.action.Eval([&](const std::string& c) { return ActionCovers(c, a.action); }), "action");
  if (p.data.present && a.resource_ref.empty()) {
    step(Tri::kUnknown, "data");
  } else {
    step(p.data.Eval([&](const std::string& r) { return r == a.resource_ref; }), "data");
  }
  if (p.has_labels) {
    Tri r = Tri::kNo;
    if (!a.labels_known) {
      r = Tri::kUnknown;
    } else {
      for (const SecurityLabel& want : p.labels) {
        for (const SecurityLabel& have : a.labels) {
          if (want.code == have.code && (want.system.empty() || want.system == have.system)) r = Tri::kYes;
        }
      }
    }
    step(r, "securityLabel");
  }
  if (p.unsupported) step(Tri::kUnknown, "unsupported criterion");
  return t;
}

// The result of an applying provision, or nullopt if it does not apply.
std::optional<Provision::Type> Eval(const Provision& p, const ConsentAccess& a, std::string* detail) {
  std::string why;
  Tri m = Matches(p, a, &why);
  bool applies = m == Tri::kYes || (m == Tri::kUnknown && p.type == Provision::kDeny);
  if (!applies) return std::nullopt;
  bool any_child = false, child_deny = false;
  std::string child_detail;
  for (const Provision& c : p.children) {
    std::string d;
    auto r = Eval(c, a, &d);
    if (!r) continue;
    any_child = true;
    if (*r == Provision::kDeny && !child_deny) {
      child_deny = true;
      child_detail = d;
    }
  }
  if (any_child) {
    if (child_deny) *detail = child_detail;
    return child_deny ? Provision::kDeny : Provision::kPermit;
  }
  if (p.type == Provision::kDeny) {
    *detail = m == Tri::kUnknown ? "deny provision applied (criterion not evaluable: " + why + ")"
                                 : "deny provision applied";
  }
  return p.type;
}

bool IsPatientPrivacy(const json::object& consent) {
  const json::object* scope = GetObject(consent, "scope");
  const json::array* codings = scope ? GetArray(*scope, "coding") : nullptr;
  if (!codings) return false;
  for (const json::value& cv : *codings) {
    const json::object* c = cv.if_object();
    if (!c || GetString(*c, "code") != "patient-privacy") continue;
    if (!c->contains("system") || GetString(*c, "system") == kConsentScope) return true;
  }
  return false;
}

}  // namespace

std::optional<std::shared_ptr<const ParsedConsent>> ParseConsent(const json::object& consent) {
  if (GetString(consent, "status") != "active" || !IsPatientPrivacy(consent)) return std::nullopt;
  const json::value* provision = consent.if_contains("provision");
  if (!provision) return std::nullopt;  // no rules: nothing is denied
  auto parsed = std::make_shared<ParsedConsent>();
  if (!ParseProvision(*provision, /*root=*/true, 0, parsed->root)) {
    parsed->malformed = true;
    parsed->root = Provision{};
  }
  return std::shared_ptr<const ParsedConsent>(std::move(parsed));
}

ConsentVerdict EvaluateConsent(const ParsedConsent& consent, const ConsentAccess& access) {
  ConsentVerdict v;
  if (consent.malformed) {
    v.denied = true;
    v.detail = "active privacy consent is malformed (fail closed)";
    return v;
  }
  std::string detail;
  auto r = Eval(consent.root, access, &detail);
  if (r && *r == Provision::kDeny) {
    v.denied = true;
    v.detail = detail.empty() ? "deny provision applied" : detail;
  }
  return v;
}

void ConsentIndex::Apply(std::string_view id, const json::object* resource, const std::vector<std::string>& patients) {
  std::string key(id);
  // Remove the previous version's entry first: an update replaces, a delete removes.
  auto old = by_id_.find(key);
  if (old != by_id_.end()) {
    for (const std::string& p : old->second.patients) {
      auto it = by_patient_.find(p);
      if (it == by_patient_.end()) continue;
      std::erase(it->second, key);
      if (it->second.empty()) by_patient_.erase(it);
    }
    by_id_.erase(old);
  }
  if (!resource || patients.empty()) return;
  auto parsed = ParseConsent(*resource);
  if (!parsed) return;
  by_id_[key] = Entry{patients, *parsed};
  for (const std::string& p : patients) by_patient_[p].push_back(key);
}

void ConsentIndex::OnWrite(std::string_view type, std::string_view id, const json::object* resource,
                           const std::vector<std::string>& patients) {
  if (type != "Consent") return;
  std::unique_lock lock(mu_);
  Apply(id, resource, patients);
}

Status ConsentIndex::Rebuild(const ResourceEnumerator& enumerate) {
  ConsentIndex fresh;
  Status st = enumerate([&](std::string_view type, std::string_view id, const json::object& r,
                            const std::vector<std::string>& patients) {
    if (type == "Consent") fresh.Apply(id, &r, patients);
  });
  if (!st.ok()) return st;
  std::unique_lock lock(mu_);
  by_id_ = std::move(fresh.by_id_);
  by_patient_ = std::move(fresh.by_patient_);
  return Status::Ok();
}

ConsentVerdict ConsentIndex::Evaluate(std::string_view patient_id, const ConsentAccess& access) const {
  std::shared_lock lock(mu_);
  auto it = by_patient_.find(std::string(patient_id));
  if (it == by_patient_.end()) return {};
  for (const std::string& id : it->second) {
    ConsentVerdict v = EvaluateConsent(*by_id_.at(id).consent, access);
    if (v.denied) {
      v.consent_ref = "Consent/" + id;
      return v;
    }
  }
  return {};
}

size_t ConsentIndex::size() const {
  std::shared_lock lock(mu_);
  return by_id_.size();
}

}  // namespace phivault::policy
