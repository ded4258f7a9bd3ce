// Verification of JWT bearer tokens (RFC 7519, JWS compact serialization)
// signed with RS256, ES256 or EdDSA against a JWKS, and a verification cache.
//
// Verify() checks, in this order, and fails closed on the first problem:
//   1. size <= max_token_bytes; exactly three non-empty canonical base64url
//      segments (no padding, no whitespace);
//   2. the header is a JSON object without duplicate members; "alg" is one of
//      config.allowed_algs AND one of RS256/ES256/EdDSA ("none", HS*, PS*,
//      any other value and any other spelling are rejected); "crit", "cty",
//      "enc" and "zip" are rejected; "typ", if present, is JWT or at+jwt;
//      "jwk", "jku", "x5u", "x5c" are ignored and never fetched;
//   3. the key is chosen by "kid" from the CURRENT key set (exact match; an
//      absent kid is allowed only if the set holds exactly one key). The
//      algorithm comes from the key: the header "alg" must equal it exactly,
//      so an RSA key is only ever used for RS256, a P-256 key for ES256 and an
//      Ed25519 key for EdDSA (no key confusion, no HMAC with a public key);
//   4. the signature (ES256: raw 64-byte r||s only) verifies over the ASCII
//      "header.payload";
//   5. only then is the payload decoded: a JSON object, no duplicate members;
//      "iss" equals config.issuer; "aud" (string or array of strings)
//      contains one of config.audiences; "exp" is present and now < exp +
//      leeway; "nbf" (if present) <= now + leeway; "iat" (if present) <=
//      now + leeway; NumericDates are JSON numbers; "sub" is a non-empty
//      string; "scope"/"fhirUser"/"jti"/the role claim have the right types;
//      "fhirUser" names a Practitioner, PractitionerRole, Patient,
//      RelatedPerson, Person or Device.
// Every failure is StatusCode::kUnauthenticated with a short fixed reason
// ("invalid token: ...") that never echoes any part of the token.
//
// Thread-safety: JwtVerifier is immutable after construction and Verify() may
// run concurrently on many threads; it reads the key set once per call via
// KeySetProvider::Current(). CachingVerifier is thread-safe (one mutex; the
// signature check of a miss runs outside it).
// Lifetime: both keep a shared_ptr to what they use; Claims own their data.
// Nothing here throws except std::bad_alloc.
#ifndef PHIVAULT_AUTH_JWT_H_
#define PHIVAULT_AUTH_JWT_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <boost/json/object.hpp>

#include "auth/jwks.h"
#include "auth/scopes.h"
#include "common/status.h"

namespace phivault::auth {

struct VerifierConfig {
  std::string issuer;                  // REQUIRES: non-empty
  std::vector<std::string> audiences;  // REQUIRES: non-empty
  std::chrono::seconds leeway{60};
  size_t max_token_bytes = 8192;
  // Name of the role claim; if no member has this exact name and it contains
  // '.', it is also tried as a path of nested objects (e.g. "realm_access.role").
  std::string role_claim = "role";
  std::vector<std::string> allowed_algs = {"RS256", "ES256", "EdDSA"};
};

struct Claims {
  std::string sub;
  std::string iss;
  std::vector<std::string> aud;
  int64_t exp = 0;
  std::optional<int64_t> nbf;
  std::optional<int64_t> iat;
  std::string scope;          // the raw "scope" string ("" if absent)
  std::vector<Scope> scopes;  // its data-access scopes, parsed
  std::string fhir_user;      // "" if absent
  std::string role;           // the role claim (first element if it is an array); "" if absent
  std::vector<std::string> roles;  // every role if the claim is an array; {role} if a string
  std::string jti;            // "" if absent
  std::string kid;            // header kid of the verifying key ("" if none)
  std::string alg;            // "RS256" | "ES256" | "EdDSA"
  boost::json::object raw;    // the whole payload
};

// "Practitioner/123" or an absolute URL ending in "/Practitioner/123".
struct FhirUserRef {
  std::string type;
  std::string id;
};
std::optional<FhirUserRef> ParseFhirUser(std::string_view fhir_user);

class JwtVerifier {
 public:
  // REQUIRES: keys != nullptr.
  JwtVerifier(VerifierConfig config, std::shared_ptr<KeySetProvider> keys);

  // Verifies `token` at time `now_s` (seconds since the Unix epoch).
  StatusOr<Claims> Verify(std::string_view token, int64_t now_s) const;
  // As above; on success *key_set_used receives the set that held the key.
  StatusOr<Claims> Verify(std::string_view token, int64_t now_s, std::shared_ptr<const KeySet>* key_set_used) const;

  const VerifierConfig& config() const { return config_; }
  const KeySetProvider& keys() const { return *keys_; }

 private:
  VerifierConfig config_;
  std::shared_ptr<KeySetProvider> keys_;
};

// Re-checks exp/nbf/iat of already verified claims at `now_s`.
Status CheckTimes(const Claims& claims, int64_t now_s, std::chrono::seconds leeway);

// Caches successful verifications by SHA-256 of the token until the token
// expires (exp + leeway) or max_ttl passes, whichever is first; bounded, with
// least-recently-used eviction. A hit is served only while the provider still
// returns the very key set that verified the token (a JWKS refresh therefore
// re-verifies every token once). Failures are never cached.
class CachingVerifier {
 public:
  struct Options {
    size_t max_entries = 10000;
    std::chrono::seconds max_ttl{3600};
  };
  // REQUIRES: verifier != nullptr.
  CachingVerifier(std::shared_ptr<const JwtVerifier> verifier, Options options);
  explicit CachingVerifier(std::shared_ptr<const JwtVerifier> verifier)
      : CachingVerifier(std::move(verifier), Options{}) {}

  StatusOr<Claims> Verify(std::string_view token, int64_t now_s);

  size_t size() const;
  uint64_t hits() const;
  uint64_t misses() const;
  void Clear();

 private:
  struct Entry {
    std::string key;  // SHA-256 of the token
    std::shared_ptr<const Claims> claims;
    int64_t valid_until_s;
    std::weak_ptr<const KeySet> key_set;
  };
  std::shared_ptr<const JwtVerifier> verifier_;
  Options options_;
  mutable std::mutex mu_;
  std::list<Entry> lru_;  // front = most recently used
  std::unordered_map<std::string, std::list<Entry>::iterator> index_;
  uint64_t hits_ = 0;
  uint64_t misses_ = 0;
};

}  // namespace phivault::auth

#endif  // PHIVAULT_AUTH_JWT_H_
