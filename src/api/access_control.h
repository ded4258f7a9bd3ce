// AccessControl: who is asking (authentication) and what they may see
// (authorization), for every request the FHIR layer serves.
//
// Identity comes from, in order: a registered device's client certificate
// (mTLS), a Bearer token issued by this vault's built-in accounts (EdDSA,
// keyring token key), or a Bearer token from a configured external OpenID
// Connect issuer (RS256/ES256/EdDSA against its JWKS). A request with none
// of these is unauthenticated and gets 401; nothing reaches the store.
//
// Authorization is the policy engine's (src/policy): deny by default, fed
// with the stored patient link, author and security labels of every version
// it judges, and with every committed write (OnCommitted) so that care
// relationships, consents and patient labels take effect at once.
//
// Thread-safety: all methods may be called concurrently.
// Lifetime: the keyring, store and device directory must outlive this object.
#ifndef PHIVAULT_API_ACCESS_CONTROL_H_
#define PHIVAULT_API_ACCESS_CONTROL_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/json/object.hpp>

#include "auth/jwks.h"
#include "auth/jwt.h"
#include "common/status.h"
#include "crypto/keyring.h"
#include "http/types.h"
#include "policy/engine.h"
#include "store/resource_store.h"

namespace phivault::store {
class AccountStore;
}

namespace phivault::api {

struct ExternalIssuer {
  std::string issuer;
  std::vector<std::string> audiences;
  std::string jwks_file;  // the issuer's JWKS as a file, or
  std::string jwks_url;   // fetched over HTTPS and refreshed hourly (and on an unknown kid)
  std::string ca_file;    // CA bundle for jwks_url; empty: the system store
  std::string role_claim = "role";
  std::string clearance_claim = "phivault_clearance";
};

class SessionTracker;  // auth_service.h

struct AccessConfig {
  std::string builtin_issuer;    // the vault's base URL
  std::string builtin_audience;  // base URL + "/fhir"
  std::vector<ExternalIssuer> external_issuers;
  int64_t idle_timeout_s = 15 * 60;  // built-in sessions expire after this much idleness
  // The logins of this vault's token endpoint (AuthService::sessions()), or
  // null. Its kEnded (idle, or revoked by refresh-token reuse) rejects a
  // token before its expiry; tokens it does not know (service tokens, tokens
  // from before a restart) get the idle rule above. Must outlive the
  // AccessControl.
  SessionTracker* sessions = nullptr;
  policy::PolicyConfig policy;
};

// The identity of a request plus what the audit trail wants to know of it.
struct Caller {
  policy::Principal principal;
  std::string token_id;  // jti, "" for devices
  bool builtin = false;  // a token of this vault's own issuer (sessions expire when idle)
  // Who vouches for principal.subject: the token's "iss", or "mtls" for a
  // device that authenticated with its certificate. Subjects of different
  // issuers are different accounts.
  std::string issuer;
};

class AccessControl {
 public:
  // `accounts` may be null (no devices can authenticate then).
  static StatusOr<std::unique_ptr<AccessControl>> Create(AccessConfig config, const crypto::Keyring& keyring,
                                                         store::ResourceStore* store,
                                                         store::AccountStore* accounts);

  // kUnauthenticated (401) with a short client-safe reason, or the caller.
  // Callers are cached per token (until it expires, and at most a minute so
  // that disabling a device or account takes effect quickly): a request pays
  // for one hash-map lookup, not a signature check or a claims copy.
  StatusOr<std::shared_ptr<const Caller>> Authenticate(const http::HttpRequest& request, int64_t now_ms);

  // The policy's class of a resource type ("clinical", "demographic", ...):
  // the audit entry's data category.
  std::string_view ResourceClassOf(std::string_view type) const {
    return policy::ResourceClassName(engine_->ClassOf(type));
  }

  // Type-level check before any store access (role and scope).
  // `instance_level`: the request names one resource (see
  // policy::AccessRequest::instance_level); false for type/system history.
  policy::Decision DecideType(const Caller& caller, policy::Interaction interaction, const std::string& type,
                              bool instance_level = true);
  // Instance-level check on what would be returned or written.
  // `instance_level` false for hits of history scans and bulk export.
  // A Binary in no patient's compartment whose securityContext names another
  // resource is decided as that resource (FHIR: the context stands in for
  // the Binary in access decisions); a context that is not stored denies.
  // For kVRead and kHistory (which may return an earlier version) the
  // version is decided with its own labels and those of the latest content:
  // a label added later (say, HIV) protects what the earlier versions showed.
  policy::Decision Decide(const Caller& caller, policy::Interaction interaction, const store::ResourceVersion& v,
                          const http::HttpRequest& request, int64_t now_ms, bool instance_level = true);
  // For writes: the new content and its patient link.
  policy::Decision DecideWrite(const Caller& caller, policy::Interaction interaction, const std::string& type,
                               const std::string& id, const boost::json::object& resource,
                               const std::vector<std::string>& patients, const std::string& stored_author,
                               const http::HttpRequest& request, int64_t now_ms);

  // Called whenever a decision opens a break-glass grant, whatever path asked
  // (read, write, history, bundle entry, PATCH...), with the request that
  // carried ETREAT and the reason and the patients the grant covers: the
  // privacy officer's alert must not depend on each caller remembering it.
  // Runs on the deciding thread; must not block. REQUIRES: set before
  // serving (or cleared after), not while decisions run.
  using BreakGlassListener = std::function<void(const Caller& caller, const http::HttpRequest& request,
                                                int64_t now_ms, const std::vector<std::string>& patients)>;
  void SetBreakGlassListener(BreakGlassListener listener) { break_glass_listener_ = std::move(listener); }

  // Feeds a committed write to the relationship/consent/label indexes.
  // Call from the commit callback, which runs in commit order.
  void OnCommitted(const store::WriteResult& write);

  // The patient link a Binary about to be written takes from its
  // securityContext when that names another resource stored in `store`
  // (docs/DECISIONS.md); nullopt for anything else (no context, a Patient
  // context, which fhir::PatientCompartment already covers, or a resource
  // not stored yet). Reads follow the context whatever is stored.
  static std::optional<std::vector<std::string>> BinaryContextLink(store::ResourceStore& store,
                                                                   const boost::json::object& binary);

  // The author id recorded with versions this caller writes.
  static std::string AuthorOf(const Caller& caller) { return policy::AuthorId(caller.principal); }

 private:
  AccessControl() = default;
  StatusOr<Caller> FromClaims(const auth::Claims& claims, const std::string& role_claim,
                              const std::string& clearance_claim, bool builtin, int64_t now_ms);

  // Decide() once tombstones and later labels are accounted for: follows a
  // Binary's securityContext, then DecideStored.
  policy::Decision DecideContent(const Caller& caller, policy::Interaction interaction,
                                 const store::ResourceVersion& v, const http::HttpRequest& request, int64_t now_ms,
                                 bool instance_level);
  policy::Decision DecideStored(const Caller& caller, policy::Interaction interaction, const store::ResourceVersion& v,
                                const http::HttpRequest& request, int64_t now_ms, bool instance_level);
  // The labels of the record's latest content (the current version, or the
  // one a deletion removed) when that is newer than `v`; "" otherwise.
  StatusOr<std::string> LatestLabels(const store::ResourceVersion& v);

  AccessConfig config_;
  store::ResourceStore* store_ = nullptr;  // securityContext, tombstone and latest-label lookups
  store::AccountStore* accounts_ = nullptr;
  std::unique_ptr<auth::CachingVerifier> builtin_;
  struct External {
    ExternalIssuer config;
    std::unique_ptr<auth::CachingVerifier> verifier;
    std::shared_ptr<auth::RefreshingKeySetProvider> refreshing;  // null for jwks_file
  };
  std::vector<External> external_;
  std::unique_ptr<policy::PolicyIndexes> indexes_;
  std::unique_ptr<policy::PolicyEngine> engine_;
  BreakGlassListener break_glass_listener_;
  policy::Decision Decided(policy::Decision d, const Caller& caller, const policy::AccessRequest& r,
                           const http::HttpRequest& request);

  // `unknown_login` (may be null) is set when the session tracker does not
  // know the token (a service token, or one issued before a restart).
  bool TouchSession(const std::string& jti, int64_t now_ms, bool* unknown_login = nullptr);

  std::mutex sessions_mu_;
  std::unordered_map<std::string, int64_t> last_seen_ms_;  // jti -> last use

  struct CachedCaller {
    std::shared_ptr<const Caller> caller;
    int64_t valid_until_ms;
  };
  std::mutex callers_mu_;
  std::unordered_map<std::string, CachedCaller> callers_;  // bearer token -> caller
};

}  // namespace phivault::api

#endif  // PHIVAULT_API_ACCESS_CONTROL_H_
