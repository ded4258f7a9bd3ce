// Access tokens for built-in accounts: short-lived EdDSA (Ed25519) JWTs signed
// with libsodium from the keyring's token signing key (a 32-byte seed,
// crypto::KeyPurpose::kTokenSign), published as a one-key JWKS for
// /.well-known/jwks.json; and opaque refresh tokens, rotated on every use.
//
// Access token: header {"alg":"EdDSA","kid":<RFC 7638 thumbprint>,"typ":"JWT"},
// claims iss, sub, aud, iat, nbf (= iat), exp (iat + lifetime, 15 minutes by
// default), jti (128 random bits), and when given scope, fhirUser, the
// role claim and "phivault_clearance" (array of clearance codes). The tokens
// verify with JwtVerifier given KeySet::Parse(JwksJson()).
//
// Refresh token: 32 random bytes, base64url (43 characters). Only its SHA-256
// is stored. Each use (Rotate) consumes it and returns a new one in the same
// family; presenting a consumed token again is treated as theft and revokes
// the whole family (OAuth 2.0 Security BCP, refresh token rotation). A family
// never outlives max_family_lifetime from its first token.
//
// Thread-safety: TokenIssuer is immutable after Create and safe to use from
// any thread. InMemoryRefreshTokenStore and RefreshTokenManager are
// thread-safe. Lifetime: TokenIssuer owns a copy of the key in SecureBytes
// (wiped on destruction); the caller may drop the keyring's copy. No function
// throws except std::bad_alloc.
#ifndef PHIVAULT_AUTH_TOKEN_ISSUER_H_
#define PHIVAULT_AUTH_TOKEN_ISSUER_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "auth/jwks.h"
#include "common/secure_bytes.h"
#include "common/status.h"

namespace phivault::auth {

struct IssuerConfig {
  std::string issuer;    // REQUIRES: non-empty (the vault's base URL)
  std::string audience;  // REQUIRES: non-empty
  std::chrono::seconds lifetime{15 * 60};
  std::string role_claim = "role";
};

struct TokenRequest {
  std::string sub;        // REQUIRES: non-empty, printable, <= 1024 bytes
  std::string scope;      // space-separated; "" for none
  std::string fhir_user;  // "" or e.g. "Practitioner/123"
  std::string role;       // "" for none
  // Clearances ("R", "V", "HIV", ...) for the policy engine, emitted as the
  // custom array claim "phivault_clearance" when non-empty. Each must be 1..64
  // printable characters without spaces; at most 64 of them.
  std::vector<std::string> clearances;
  // The login this token belongs to, emitted as "sid" (OpenID Connect's
  // session id) when non-empty, so a verifier can ask whether that login
  // was ended. At most 128 printable characters without spaces.
  std::string session_id;
};

// Name of the custom claim that carries TokenRequest::clearances.
inline constexpr std::string_view kClearanceClaim = "phivault_clearance";

struct IssuedToken {
  std::string token;
  std::string jti;
  int64_t issued_at = 0;
  int64_t expires_at = 0;
};

class TokenIssuer {
 public:
  // REQUIRES: seed.size() == 32. InvalidArgument otherwise or for an invalid config.
  static StatusOr<std::unique_ptr<TokenIssuer>> Create(const SecureBytes& seed, IssuerConfig config);

  // Signs a token for `request` issued at `now_s`. InvalidArgument for a
  // malformed request (message names the field, never its value).
  StatusOr<IssuedToken> Issue(const TokenRequest& request, int64_t now_s) const;

  // The RFC 7638 JWK thumbprint (base64url SHA-256) of the public key.
  const std::string& kid() const { return kid_; }
  // {"keys":[{"kty":"OKP","crv":"Ed25519","x":...,"kid":...,"alg":"EdDSA","use":"sig"}]}
  std::string JwksJson() const;
  const IssuerConfig& config() const { return config_; }

 private:
  TokenIssuer() = default;
  IssuerConfig config_;
  SecureBytes secret_key_;  // libsodium 64-byte form (seed || public key)
  std::string public_key_;  // 32 bytes
  std::string kid_;
};

// ---- Refresh tokens -----------------------------------------------------------

struct RefreshTokenRecord {
  std::string subject;
  std::string scope;
  std::string family;            // random id shared by every rotation of one login
  int64_t expires_at = 0;        // this token
  int64_t family_expires_at = 0;  // absolute end of the family
  bool used = false;
};

// Storage of refresh token records keyed by the token's SHA-256 (32 raw bytes).
class RefreshTokenStore {
 public:
  virtual ~RefreshTokenStore() = default;
  // AlreadyExists for a duplicate hash; ResourceExhausted if full.
  virtual Status Insert(const std::string& token_hash, const RefreshTokenRecord& record) = 0;
  // Atomically: returns the record as it was and marks it used. NotFound if
  // unknown (or already removed).
  virtual StatusOr<RefreshTokenRecord> MarkUsed(const std::string& token_hash) = 0;
  virtual void RevokeFamily(std::string_view family) = 0;
  virtual void RevokeSubject(std::string_view subject) = 0;
  // Removes records whose family or token has expired.
  virtual void Prune(int64_t now_s) = 0;
};

class InMemoryRefreshTokenStore final : public RefreshTokenStore {
 public:
  explicit InMemoryRefreshTokenStore(size_t max_entries = 100000) : max_entries_(max_entries) {}
  Status Insert(const std::string& token_hash, const RefreshTokenRecord& record) override;
  StatusOr<RefreshTokenRecord> MarkUsed(const std::string& token_hash) override;
  void RevokeFamily(std::string_view family) override;
  void RevokeSubject(std::string_view subject) override;
  void Prune(int64_t now_s) override;
  size_t size() const;

 private:
  size_t max_entries_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, RefreshTokenRecord> records_;
};

class RefreshTokenManager {
 public:
  struct Options {
    std::chrono::seconds ttl{12 * 3600};
    std::chrono::seconds max_family_lifetime{30 * 24 * 3600};
  };
  // REQUIRES: store != nullptr.
  RefreshTokenManager(std::shared_ptr<RefreshTokenStore> store, Options options);
  explicit RefreshTokenManager(std::shared_ptr<RefreshTokenStore> store)
      : RefreshTokenManager(std::move(store), Options{}) {}

  // A new token starting a new family.
  StatusOr<std::string> Issue(std::string_view subject, std::string_view scope, int64_t now_s);

  struct Rotated {
    std::string token;          // the replacement refresh token
    RefreshTokenRecord record;  // subject and scope to issue the access token for
  };
  // Consumes `token` and returns its replacement. kUnauthenticated for an
  // unknown, expired or malformed token; a reused token also revokes its family.
  StatusOr<Rotated> Rotate(std::string_view token, int64_t now_s);

  // SHA-256 of the token text (what the store keys on).
  static std::string HashToken(std::string_view token);

 private:
  StatusOr<std::string> Store(RefreshTokenRecord record);
  std::shared_ptr<RefreshTokenStore> store_;
  Options options_;
};

}  // namespace phivault::auth

#endif  // PHIVAULT_AUTH_TOKEN_ISSUER_H_
