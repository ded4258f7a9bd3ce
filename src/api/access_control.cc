#include "api/access_control.h"

#include "api/auth_service.h"

#include <algorithm>
#include <optional>

#include <boost/json.hpp>

#include "auth/jwks.h"
#include "auth/token_issuer.h"
#include "common/log.h"
#include "fhir/compartment.h"
#include "fhir/json_reader.h"
#include "fhir/time.h"
#include "http/client.h"
#include "store/account_store.h"

namespace phivault::api {
namespace {

constexpr std::string_view kBearer = "Bearer ";

// Types whose current versions feed the policy indexes at startup.
const std::vector<std::string> kIndexedTypes = {"Patient",       "CareTeam", "Encounter", "EpisodeOfCare",
                                                "PractitionerRole", "Consent"};

std::vector<policy::ScopeGrant> ToGrants(const std::vector<auth::Scope>& scopes) {
  std::vector<policy::ScopeGrant> out;
  for (const auth::Scope& s : scopes) {
    // The engine cannot evaluate ?query restrictions; honouring them
    // partially would over-grant, so restricted scopes grant nothing.
    if (!s.query.empty()) continue;
    policy::ScopeGrant g;
    g.context = s.context == auth::ScopeContext::kPatient  ? policy::ScopeGrant::kPatient
                : s.context == auth::ScopeContext::kSystem ? policy::ScopeGrant::kSystem
                                                           : policy::ScopeGrant::kUser;
    g.type = s.resource_type;
    auto has = [&](auth::Interaction i) { return (s.interactions & static_cast<uint8_t>(i)) != 0; };
    g.c = has(auth::Interaction::kCreate);
    g.r = has(auth::Interaction::kRead);
    g.u = has(auth::Interaction::kUpdate);
    g.d = has(auth::Interaction::kDelete);
    g.s = has(auth::Interaction::kSearch);
    out.push_back(std::move(g));
  }
  return out;
}

// A minimal resource carrying only the stored meta.security, so decisions on
// reads need not parse the body.
// nullopt when the stored labels are not an array of Codings (objects whose
// system and code, when present, are strings): the store wrote them from
// validated resources, so only a damaged database gets here, and the caller
// must then fail closed rather than read them as no labels.
std::optional<boost::json::object> LabelsOnly(const std::string& security_labels) {
  boost::json::object o;
  if (security_labels.empty()) return o;
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(security_labels, ec);
  if (ec || !v.is_array()) return std::nullopt;
  for (const boost::json::value& coding : v.get_array()) {
    const boost::json::object* c = coding.if_object();
    if (c == nullptr) return std::nullopt;
    for (const char* field : {"system", "code"}) {
      const boost::json::value* f = c->if_contains(field);
      if (f != nullptr && !f->is_string()) return std::nullopt;
    }
  }
  o["meta"] = boost::json::object{{"security", std::move(v)}};
  return o;
}

// `own` with every coding of `later` it lacks (same system and code)
// appended; `own` unchanged when it lacks none. Nullopt if either does not
// parse as a label array.
std::optional<std::string> MergeLabels(const std::string& own, const std::string& later) {
  auto parse = [](const std::string& text) -> std::optional<boost::json::array> {
    if (text.empty()) return boost::json::array();
    boost::system::error_code ec;
    boost::json::value v = boost::json::parse(text, ec);
    if (ec || !v.is_array()) return std::nullopt;
    for (const boost::json::value& c : v.get_array()) {
      if (!c.is_object()) return std::nullopt;
    }
    return std::move(v.get_array());
  };
  std::optional<boost::json::array> a = parse(own), b = parse(later);
  if (!a || !b) return std::nullopt;
  auto field = [](const boost::json::value& coding, const char* name) -> const boost::json::value* {
    return coding.get_object().if_contains(name);
  };
  bool added = false;
  for (const boost::json::value& c : *b) {
    bool present = false;
    for (const boost::json::value& mine : *a) {
      auto same = [&](const char* name) {
        const boost::json::value *x = field(c, name), *y = field(mine, name);
        return (x == nullptr && y == nullptr) || (x != nullptr && y != nullptr && *x == *y);
      };
      if (same("system") && same("code")) {
        present = true;
        break;
      }
    }
    if (!present) {
      a->push_back(c);
      added = true;
    }
  }
  if (!added) return own;
  return boost::json::serialize(*a);
}

std::string HeaderOr(const http::HttpRequest& r, std::string_view name) {
  const std::string* v = r.Header(name);
  return v ? *v : std::string();
}

}  // namespace

StatusOr<std::unique_ptr<AccessControl>> AccessControl::Create(AccessConfig config, const crypto::Keyring& keyring,
                                                               store::ResourceStore* store,
                                                               store::AccountStore* accounts) {
  std::unique_ptr<AccessControl> ac(new AccessControl());
  ac->config_ = std::move(config);
  ac->store_ = store;
  ac->accounts_ = accounts;

  // The built-in issuer's public key, derived from the same keyring seed
  // the token endpoint signs with.
  auth::IssuerConfig ic;
  ic.issuer = ac->config_.builtin_issuer;
  ic.audience = ac->config_.builtin_audience;
  PV_ASSIGN_OR_RETURN(auto issuer, auth::TokenIssuer::Create(keyring.Key(crypto::KeyPurpose::kTokenSign), ic));
  PV_ASSIGN_OR_RETURN(auto keys, auth::KeySet::Parse(issuer->JwksJson()));
  auth::VerifierConfig vc;
  vc.issuer = ic.issuer;
  vc.audiences = {ic.audience};
  vc.allowed_algs = {"EdDSA"};
  ac->builtin_ = std::make_unique<auth::CachingVerifier>(
      std::make_shared<auth::JwtVerifier>(vc, std::make_shared<auth::StaticKeySetProvider>(keys)));

  for (const ExternalIssuer& e : ac->config_.external_issuers) {
    auth::VerifierConfig evc;
    evc.issuer = e.issuer;
    evc.audiences = e.audiences;
    evc.role_claim = e.role_claim;
    std::shared_ptr<auth::KeySetProvider> keys;
    std::shared_ptr<auth::RefreshingKeySetProvider> refreshing;
    if (!e.jwks_url.empty()) {
      http::ClientOptions co;
      co.ca_file = e.ca_file;
      refreshing = std::make_shared<auth::RefreshingKeySetProvider>(
          [url = e.jwks_url, co]() { return http::HttpsGet(url, co); });
      // An unreachable provider at startup is not fatal: its tokens are
      // refused until a fetch succeeds, and every other login keeps working.
      Status first = refreshing->Refresh(fhir::NowMillis() / 1000);
      if (!first.ok()) {
        log::Warn("auth.jwks_fetch_failed", {{"issuer", e.issuer}, {"error", first.message()},
                                             {"action", "check jwks_url and ca_file; retrying"}});
      }
      keys = refreshing;
    } else {
      auto set = auth::KeySet::LoadFile(e.jwks_file);
      if (!set.ok()) return Status(set.status().code(), "JWKS for issuer " + e.issuer + ": " + set.status().message());
      keys = std::make_shared<auth::StaticKeySetProvider>(*set);
    }
    ac->external_.push_back(External{
        e, std::make_unique<auth::CachingVerifier>(std::make_shared<auth::JwtVerifier>(evc, keys)), refreshing});
  }

  ac->indexes_ = std::make_unique<policy::PolicyIndexes>(ac->config_.policy);
  Status warm = ac->indexes_->Rebuild([store](const policy::ResourceVisitor& visit) -> Status {
    return store->ForEachCurrent(kIndexedTypes, [&](const store::ResourceVersion& v) -> Status {
      auto parsed = fhir::ParseResource(v.json, fhir::ParseLimits{64, 64u << 20});
      if (!parsed.ok()) return DataLoss("a stored resource no longer parses: " + parsed.status().message());
      visit(v.type, v.id, *parsed, v.patients);
      return Status::Ok();
    });
  });
  PV_RETURN_IF_ERROR(warm);
  ac->engine_ = std::make_unique<policy::PolicyEngine>(ac->config_.policy, ac->indexes_->sources());
  return ac;
}

StatusOr<Caller> AccessControl::FromClaims(const auth::Claims& claims, const std::string& role_claim,
                                           const std::string& clearance_claim, bool builtin, int64_t now_ms) {
  (void)role_claim;  // the verifier already extracted the configured role claim
  Caller c;
  c.issuer = claims.iss;
  policy::Principal& p = c.principal;
  p.subject = claims.sub;
  auto role = policy::ParseRole(claims.role);
  if (!role) return Status(StatusCode::kPermissionDenied, "the token carries no recognised role");
  p.role = *role;
  p.fhir_user = claims.fhir_user;
  p.scopes = ToGrants(claims.scopes);
  if (const boost::json::value* cl = claims.raw.if_contains(clearance_claim); cl && cl->is_array()) {
    for (const auto& v : cl->get_array()) {
      if (v.is_string()) p.clearances.insert(std::string(v.get_string()));
    }
  }
  if (const boost::json::value* pt = claims.raw.if_contains("patient"); pt && pt->is_string()) {
    p.launch_patient = std::string(pt->get_string());
  }
  for (const char* k : {"client_id", "azp"}) {
    if (const boost::json::value* v = claims.raw.if_contains(k); v && v->is_string()) {
      p.client_id = std::string(v->get_string());
      break;
    }
  }
  if (p.role == policy::Role::kDevice) {
    // A device token is only as good as the device's registration: the
    // registry, not the token, says which patients it serves.
    constexpr std::string_view kDevicePrefix = "Device/";
    if (accounts_ == nullptr || p.fhir_user.rfind(kDevicePrefix, 0) != 0) {
      return Status(StatusCode::kPermissionDenied, "device tokens need a registered Device fhirUser");
    }
    auto device = accounts_->GetDevice(std::string_view(p.fhir_user).substr(kDevicePrefix.size()));
    if (!device.ok() || device->disabled) {
      return Status(StatusCode::kPermissionDenied, "the device is not registered or is disabled");
    }
    p.device_patients = device->patients;
  }
  c.token_id = claims.jti;
  if (builtin && accounts_ != nullptr && p.role != policy::Role::kDevice) {
    // Built-in accounts can be disabled: their tokens stop working within
    // the caller cache's minute, not at token expiry. Service tokens from
    // `phivault token issue` have no account and are not affected.
    auto user = accounts_->GetUser(p.subject);
    if (user.ok() && user->disabled) return Status(StatusCode::kUnauthenticated, "the account is disabled");
  }
  bool unknown_login = false;
  if (builtin && !claims.jti.empty() && !TouchSession(claims.jti, now_ms, &unknown_login)) {
    return Status(StatusCode::kUnauthenticated, "the session has ended (inactivity or revocation); sign in again");
  }
  if (unknown_login && accounts_ != nullptr) {
    // A login token the session tracker does not know was issued before a
    // restart: its login may have been revoked since. The refresh token
    // records outlive the restart and say so. Checked when the token is
    // verified, so at most a minute (the caller cache) after the restart.
    if (const boost::json::value* sid = claims.raw.if_contains("sid"); sid && sid->is_string()) {
      auto live = accounts_->RefreshFamilyLive(std::string_view(sid->get_string()), now_ms / 1000);
      if (!live.ok() || !*live) {
        return Status(StatusCode::kUnauthenticated, "the session has ended (inactivity or revocation); sign in again");
      }
    }
  }
  return c;
}

bool AccessControl::TouchSession(const std::string& jti, int64_t now_ms, bool* unknown_login) {
  if (config_.sessions != nullptr) {
    switch (config_.sessions->Touch(jti, now_ms / 1000)) {
      case SessionTracker::State::kLive:
        return true;
      case SessionTracker::State::kEnded:
        return false;
      case SessionTracker::State::kUnknown:
        if (unknown_login != nullptr) *unknown_login = true;
        break;
    }
  }
  // Built-in sessions end after a period without requests.
  std::lock_guard lk(sessions_mu_);
  auto [it, inserted] = last_seen_ms_.emplace(jti, now_ms);
  if (!inserted) {
    if (now_ms - it->second > config_.idle_timeout_s * 1000) return false;
    it->second = now_ms;
  }
  if (last_seen_ms_.size() > 100000) {
    std::erase_if(last_seen_ms_, [&](const auto& e) { return now_ms - e.second > config_.idle_timeout_s * 1000; });
  }
  return true;
}

StatusOr<std::shared_ptr<const Caller>> AccessControl::Authenticate(const http::HttpRequest& request,
                                                                    int64_t now_ms) {
  if (!request.client_cert_sha256.empty() && accounts_ != nullptr) {
    auto device = accounts_->FindDeviceByCert(request.client_cert_sha256);
    if (device.ok() && !device->disabled) {
      Caller c;
      c.issuer = "mtls";
      c.principal.subject = "Device/" + device->device_id;
      c.principal.role = policy::Role::kDevice;
      c.principal.fhir_user = "Device/" + device->device_id;
      c.principal.device_patients = device->patients;
      for (const char* type : {"Observation", "DeviceMetric", "Media"}) {
        policy::ScopeGrant g;
        g.context = policy::ScopeGrant::kSystem;
        g.type = type;
        g.c = g.r = g.u = true;
        c.principal.scopes.push_back(g);
      }
      return std::make_shared<const Caller>(std::move(c));
    }
    // An unregistered or disabled certificate falls through to tokens.
  }
  const std::string* authz = request.Header("authorization");
  if (!authz) return Status(StatusCode::kUnauthenticated, "authentication required");
  if (authz->size() <= kBearer.size() || authz->compare(0, kBearer.size(), kBearer) != 0) {
    return Status(StatusCode::kUnauthenticated, "use the Bearer authentication scheme");
  }
  std::string token = authz->substr(kBearer.size());
  {
    std::lock_guard lk(callers_mu_);
    auto it = callers_.find(token);
    if (it != callers_.end()) {
      if (now_ms < it->second.valid_until_ms) {
        std::shared_ptr<const Caller> hit = it->second.caller;
        if (!hit->builtin || hit->token_id.empty()) return hit;
        if (!TouchSession(hit->token_id, now_ms)) {
          return Status(StatusCode::kUnauthenticated, "the session has ended (inactivity or revocation); sign in again");
        }
        return hit;
      }
      callers_.erase(it);
    }
  }
  int64_t now_s = now_ms / 1000;
  StatusOr<Caller> caller = Status(StatusCode::kUnauthenticated, "invalid token");
  int64_t exp_s = 0;
  bool builtin = false;
  auto claims = builtin_->Verify(token, now_s);
  if (claims.ok()) {
    builtin = true;
    exp_s = claims->exp;
    caller = FromClaims(*claims, "role", "phivault_clearance", true, now_ms);
  } else {
    Status first = claims.status();
    caller = Status(StatusCode::kUnauthenticated, first.message());
    for (External& e : external_) {
      if (e.refreshing) e.refreshing->RefreshIfDue(now_s).IgnoreError();  // hourly; cheap when not due
      auto ec = e.verifier->Verify(token, now_s);
      if (ec.ok()) {
        exp_s = ec->exp;
        caller = FromClaims(*ec, e.config.role_claim, e.config.clearance_claim, false, now_ms);
        break;
      }
    }
  }
  if (!caller.ok()) return caller.status();
  caller->builtin = builtin;
  auto shared = std::make_shared<const Caller>(std::move(*caller));
  int64_t until = std::min(exp_s * 1000, now_ms + 60 * 1000);
  std::lock_guard lk(callers_mu_);
  if (callers_.size() >= 10000) {
    std::erase_if(callers_, [&](const auto& e) { return e.second.valid_until_ms <= now_ms; });
    if (callers_.size() >= 10000) callers_.clear();  // bounded; the next requests refill it
  }
  callers_[token] = CachedCaller{shared, until};
  return shared;
}

policy::Decision AccessControl::DecideType(const Caller& caller, policy::Interaction interaction,
                                           const std::string& type, bool instance_level) {
  bool id_known = instance_level && interaction != policy::Interaction::kCreate &&
                  interaction != policy::Interaction::kSearch;
  return engine_->DecideType(caller.principal, interaction, type, id_known);
}

policy::Decision AccessControl::Decide(const Caller& caller, policy::Interaction interaction,
                                       const store::ResourceVersion& v, const http::HttpRequest& request,
                                       int64_t now_ms, bool instance_level) {
  if (v.deleted && store_ != nullptr) {
    // A tombstone keeps the patient link of what it deleted, but not its
    // security labels or its body (a Binary's securityContext). Decided on
    // its own, a deleted restricted record would answer 410 to callers who
    // were never allowed to know it existed: decide it as that version.
    StatusOr<store::ResourceVersion> deleted_version = NotFound("no version before the deletion");
    if (v.version > 1) deleted_version = store_->ReadVersion(v.type, v.id, v.version - 1);
    if (!deleted_version.ok() && deleted_version.status().code() != StatusCode::kNotFound) {
      log::Error("access.deleted_version_unreadable",
                 {{"type", v.type}, {"error", deleted_version.status().message()},
                  {"action", "if this persists the database is damaged; restore from a verified backup"}});
    }
    if (!deleted_version.ok() || deleted_version->deleted) {
      policy::Decision d;  // fail closed: what it was can no longer be told
      d.rule = "deleted";
      d.reason = "denied: the deleted version cannot be read";
      d.hide_existence = true;
      d.trace.push_back({"deleted", false, "version " + std::to_string(v.version - 1) + " is not readable"});
      return d;
    }
    // Who deleted it stays the author: a device may not bring back at the
    // same id a record that somebody else deleted.
    deleted_version->author = v.author;
    policy::Decision d = Decide(caller, interaction, *deleted_version, request, now_ms, instance_level);
    d.trace.insert(d.trace.begin(), {"deleted", true, "decided as version " + std::to_string(v.version - 1)});
    return d;
  }
  if ((interaction == policy::Interaction::kVRead || interaction == policy::Interaction::kHistory) &&
      store_ != nullptr) {
    StatusOr<std::string> latest = LatestLabels(v);
    if (!latest.ok()) {
      log::Error("access.latest_version_unreadable",
                 {{"type", v.type}, {"error", latest.status().message()},
                  {"action", "if this persists the database is damaged; restore from a verified backup"}});
      policy::Decision d;  // fail closed: the labels that apply cannot be told
      d.rule = "sensitivity";
      d.reason = "denied by sensitivity: the latest version's labels cannot be read";
      d.hide_existence = true;
      d.trace.push_back({"sensitivity", false, "latest version not readable"});
      return d;
    }
    if (!latest->empty()) {
      std::optional<std::string> merged = MergeLabels(v.security_labels, *latest);
      if (!merged || *merged != v.security_labels) {
        store::ResourceVersion relabelled = v;
        // Labels that do not parse (this version's or the latest's) stay
        // unparseable, and DecideStored denies them.
        relabelled.security_labels = merged ? std::move(*merged) : std::string("unreadable");
        policy::Decision d = DecideContent(caller, interaction, relabelled, request, now_ms, instance_level);
        d.trace.insert(d.trace.begin(), {"sensitivity", true, "with the latest version's labels"});
        return d;
      }
    }
  }
  return DecideContent(caller, interaction, v, request, now_ms, instance_level);
}

policy::Decision AccessControl::DecideContent(const Caller& caller, policy::Interaction interaction,
                                              const store::ResourceVersion& v, const http::HttpRequest& request,
                                              int64_t now_ms, bool instance_level) {
  if (v.type == "Binary" && !v.json.empty()) {
    std::optional<fhir::ResourceRef> ctx = fhir::BinarySecurityContext(v.json);
    if (ctx && ctx->type == "Patient") {
      // The patient is the Binary's own link (stored since it was written;
      // added here for Binaries stored before that).
      if (v.patients.empty()) {
        store::ResourceVersion linked = v;
        linked.patients = {ctx->id};
        return DecideStored(caller, interaction, linked, request, now_ms, instance_level);
      }
    } else if (ctx) {
      StatusOr<store::ResourceVersion> target = NotFound("the securityContext cannot be followed");
      if (!ctx->type.empty() && store_ != nullptr) target = store_->Read(ctx->type, ctx->id);
      if (!target.ok() || target->deleted) {
        // Fail closed: whatever the Binary belonged to, nobody can tell now.
        policy::Decision d;
        d.rule = "security-context";
        d.reason = "denied by security-context: the resource this Binary belongs to is not available";
        d.hide_existence = true;
        d.trace.push_back({"security-context", false,
                           ctx->type.empty() ? "not a relative reference" : ctx->type + "/" + ctx->id + " is not stored"});
        return d;
      }
      // One level only: the context's own context is not followed. Any
      // refusal answers as for a missing Binary: a 403 from the target's
      // type gate would tell that this Binary exists.
      policy::Decision d = DecideStored(caller, interaction, *target, request, now_ms, instance_level);
      d.trace.insert(d.trace.begin(), {"security-context", true, "decided as " + ctx->type + "/" + ctx->id});
      if (!d.allowed) d.hide_existence = true;
      return d;
    }
  }
  return DecideStored(caller, interaction, v, request, now_ms, instance_level);
}

StatusOr<std::string> AccessControl::LatestLabels(const store::ResourceVersion& v) {
  StatusOr<store::ResourceVersion> latest = store_->Read(v.type, v.id);
  if (!latest.ok()) {
    if (latest.status().code() == StatusCode::kNotFound) return std::string();
    return latest.status();
  }
  if (latest->deleted) {
    // A tombstone carries no labels: the content is what it deleted.
    if (latest->version - 1 <= v.version) return std::string();
    latest = store_->ReadVersion(v.type, v.id, latest->version - 1);
    if (!latest.ok()) return latest.status();
  }
  if (latest->version <= v.version) return std::string();
  return latest->security_labels;
}

std::optional<std::vector<std::string>> AccessControl::BinaryContextLink(store::ResourceStore& store,
                                                                        const boost::json::object& binary) {
  std::optional<fhir::ResourceRef> ctx = fhir::BinarySecurityContext(binary);
  if (!ctx || ctx->type.empty() || ctx->type == "Patient") return std::nullopt;
  auto target = store.Read(ctx->type, ctx->id);
  if (!target.ok()) return std::nullopt;
  return target->patients;
}

policy::Decision AccessControl::DecideStored(const Caller& caller, policy::Interaction interaction,
                                             const store::ResourceVersion& v, const http::HttpRequest& request,
                                             int64_t now_ms, bool instance_level) {
  std::optional<boost::json::object> labels = LabelsOnly(v.security_labels);
  if (!labels) {
    // Unknown labels could be any sensitivity: deny, for every role.
    log::Error("access.labels_unreadable",
               {{"type", v.type}, {"action", "the database is damaged; restore from a verified backup"}});
    policy::Decision d;
    d.rule = "sensitivity";
    d.reason = "denied by sensitivity: the record's labels cannot be read";
    d.hide_existence = true;
    d.trace.push_back({"sensitivity", false, "stored labels do not parse"});
    return d;
  }
  policy::AccessRequest r;
  r.interaction = interaction;
  r.instance_level = instance_level;
  r.type = v.type;
  r.id = v.id;
  r.patients = v.patients;
  r.resource = &*labels;
  r.purpose_of_use = HeaderOr(request, "x-purpose-of-use");
  r.break_glass_reason = HeaderOr(request, "x-break-glass-reason");
  r.now_ms = now_ms;
  r.resource_author_device = v.author;
  return Decided(engine_->Decide(caller.principal, r), caller, r, request);
}

policy::Decision AccessControl::Decided(policy::Decision d, const Caller& caller, const policy::AccessRequest& r,
                                        const http::HttpRequest& request) {
  if (d.break_glass_activated && break_glass_listener_) break_glass_listener_(caller, request, r.now_ms, r.patients);
  return d;
}

policy::Decision AccessControl::DecideWrite(const Caller& caller, policy::Interaction interaction,
                                            const std::string& type, const std::string& id,
                                            const boost::json::object& resource,
                                            const std::vector<std::string>& patients,
                                            const std::string& stored_author, const http::HttpRequest& request,
                                            int64_t now_ms) {
  policy::AccessRequest r;
  r.interaction = interaction;
  r.type = type;
  r.id = interaction == policy::Interaction::kCreate ? std::string() : id;
  r.patients = patients;
  r.resource = &resource;
  r.purpose_of_use = HeaderOr(request, "x-purpose-of-use");
  r.break_glass_reason = HeaderOr(request, "x-break-glass-reason");
  r.now_ms = now_ms;
  r.resource_author_device = stored_author;
  return Decided(engine_->Decide(caller.principal, r), caller, r, request);
}

void AccessControl::OnCommitted(const store::WriteResult& w) {
  if (w.no_op || std::find(kIndexedTypes.begin(), kIndexedTypes.end(), w.type) == kIndexedTypes.end()) return;
  if (w.json.empty()) {
    indexes_->OnWrite(w.type, w.id, nullptr, w.patients);
    return;
  }
  auto parsed = fhir::ParseResource(w.json, fhir::ParseLimits{64, 64u << 20});
  if (!parsed.ok()) {
    log::Error("policy.index_update_failed", {{"type", w.type}, {"action", "restart to rebuild the policy indexes"}});
    return;
  }
  indexes_->OnWrite(w.type, w.id, &*parsed, w.patients);
}

}  // namespace phivault::api
