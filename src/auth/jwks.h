// JSON Web Key Sets (RFC 7517) of signature verification keys, and providers
// that hand the current set to the JWT verifier.
//
// KeySet::Parse accepts a JWKS object {"keys":[...]} and builds an OpenSSL 3
// EVP_PKEY (EVP_PKEY_fromdata) for every usable key:
//   - RSA  ("n","e"; modulus 2048..8192 bits)      -> RS256 (PKCS#1 v1.5, SHA-256)
//   - EC   (crv "P-256", "x","y" 32 bytes each)    -> ES256 (point checked on the curve)
//   - OKP  (crv "Ed25519", "x" 32 bytes)           -> EdDSA
// The key's algorithm is fixed by its type; a JWK "alg" member, if present,
// must agree with it. Skipped (listed in skipped(), never used): keys with
// "use" other than "sig", "key_ops" without "verify", other curves, other
// algorithms (RS384, PS256, ES384, ...) and unknown "kty" values. Rejected (the
// whole set fails with InvalidArgument, because this is a configuration error
// the operator must see): symmetric "oct" keys, any private key member ("d",
// "p", ...), RSA keys below 2048 bits, malformed members of a supported key,
// duplicate "kid"s, duplicate JSON members, and a set with no usable key.
// Embedded certificates ("x5c", "x5u") are ignored; nothing is ever fetched.
//
// Thread-safety: a KeySet and its keys are immutable after Parse and safe to
// share between threads (OpenSSL 3 EVP_PKEYs are safe for concurrent
// verification). The providers are thread-safe: Current() may race with
// Replace()/Refresh(); readers keep the set they got alive via shared_ptr.
// Lifetime: keys are owned by their KeySet (shared_ptr); a reader holding the
// shared_ptr<const KeySet> keeps every key valid. No function throws except
// std::bad_alloc.
#ifndef PHIVAULT_AUTH_JWKS_H_
#define PHIVAULT_AUTH_JWKS_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

struct evp_pkey_st;  // OpenSSL's EVP_PKEY

namespace phivault::auth {

// The only JWS algorithms phivault accepts.
enum class JwsAlgorithm { kRS256, kES256, kEdDSA };
std::string_view JwsAlgorithmName(JwsAlgorithm alg);
// Exact (case-sensitive) match of "RS256", "ES256" or "EdDSA"; nullopt otherwise.
std::optional<JwsAlgorithm> ParseJwsAlgorithm(std::string_view name);

enum class KeyType { kRsa, kEcP256, kEd25519 };

// One public verification key.
class VerificationKey {
 public:
  VerificationKey(std::string kid, KeyType type, std::string use, int bits, evp_pkey_st* pkey);
  ~VerificationKey();
  VerificationKey(const VerificationKey&) = delete;
  VerificationKey& operator=(const VerificationKey&) = delete;

  const std::string& kid() const { return kid_; }  // "" if the JWK had none
  KeyType type() const { return type_; }
  JwsAlgorithm algorithm() const;  // fixed by type()
  const std::string& use() const { return use_; }  // "sig" or "" (absent)
  int bits() const { return bits_; }
  evp_pkey_st* pkey() const { return pkey_; }

  // Verifies a JOSE signature (RSA: modulus-sized PKCS#1 v1.5; ES256: raw
  // 64-byte r||s, converted to DER for OpenSSL; EdDSA: 64 bytes) of
  // `signing_input` with this key's algorithm. False on any mismatch or
  // malformed signature; never throws, never leaves OpenSSL errors queued.
  bool Verify(std::string_view signing_input, std::string_view signature) const;

 private:
  std::string kid_;
  KeyType type_;
  std::string use_;
  int bits_;
  evp_pkey_st* pkey_;  // owned
};

struct JwksParseOptions {
  int min_rsa_bits = 2048;
  int max_rsa_bits = 8192;
  size_t max_bytes = 1 << 20;
  size_t max_keys = 64;
};

class KeySet {
 public:
  // Parses a JWKS document as described above.
  static StatusOr<std::shared_ptr<const KeySet>> Parse(std::string_view json, const JwksParseOptions& options = {});
  // Reads and parses a JWKS file (for a statically configured issuer).
  static StatusOr<std::shared_ptr<const KeySet>> LoadFile(const std::string& path, const JwksParseOptions& options = {});

  // The key with exactly this kid, or nullptr.
  const VerificationKey* FindByKid(std::string_view kid) const;
  const std::vector<std::unique_ptr<VerificationKey>>& keys() const { return keys_; }
  size_t size() const { return keys_.size(); }
  // "kid: reason" for each ignored key (no key material), for one operator log line.
  const std::vector<std::string>& skipped() const { return skipped_; }

 private:
  KeySet() = default;
  std::vector<std::unique_ptr<VerificationKey>> keys_;
  std::vector<std::string> skipped_;
};

// Supplies the key set the verifier uses for each token.
class KeySetProvider {
 public:
  virtual ~KeySetProvider() = default;
  // The current set, or nullptr if none is available (every token then fails).
  virtual std::shared_ptr<const KeySet> Current() const = 0;
  // Called by the verifier when a token names a kid the current set lacks
  // (the issuer may have rotated). May refresh (and block the calling thread
  // for one fetch); returns true if a new set is now current. Default: no.
  virtual bool RefreshForUnknownKid(int64_t /*now_s*/) { return false; }
};

// A set given by the caller (a JWKS file, or the vault's own issuer key),
// replaceable atomically, e.g. on SIGHUP.
class StaticKeySetProvider final : public KeySetProvider {
 public:
  explicit StaticKeySetProvider(std::shared_ptr<const KeySet> set) : set_(std::move(set)) {}
  std::shared_ptr<const KeySet> Current() const override;
  void Replace(std::shared_ptr<const KeySet> set);

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const KeySet> set_;
};

// A JWKS fetched from the issuer (e.g. https://idp/.well-known/jwks.json) by
// an injected fetcher and cached for refresh_interval. A failed refresh keeps
// the previous set for up to max_stale after its last successful fetch; a
// refresh attempt after that drops it and Current() returns nullptr (fail
// closed). Staleness is judged when Refresh*/RefreshIfDue run, so call
// RefreshIfDue periodically. Fetches are serialised: one at
// a time, never while holding the lock Current() takes.
class RefreshingKeySetProvider final : public KeySetProvider {
 public:
  // Returns the JWKS body. The HTTPS client (TLS verification, timeouts, size
  // limit) is the caller's; the lead wires the server's client in.
  using Fetcher = std::function<StatusOr<std::string>()>;
  struct Options {
    std::chrono::seconds refresh_interval{3600};
    // Minimum time between two fetches triggered by an unknown kid.
    std::chrono::seconds min_refresh_interval{60};
    std::chrono::seconds max_stale{24 * 3600};
    JwksParseOptions parse;
  };

  // REQUIRES: fetcher is callable from any thread.
  RefreshingKeySetProvider(Fetcher fetcher, Options options);
  RefreshingKeySetProvider(Fetcher fetcher) : RefreshingKeySetProvider(std::move(fetcher), Options{}) {}

  std::shared_ptr<const KeySet> Current() const override;
  // Fetches now; on failure the previous set stays (until max_stale).
  Status Refresh(int64_t now_s);
  // Refresh() if refresh_interval has passed since the last successful fetch
  // (or nothing was ever fetched), and no attempt was made in the last
  // min_refresh_interval (so an unreachable issuer is not asked on every
  // request). Safe to call on every request: it never waits for a fetch
  // another thread is running.
  Status RefreshIfDue(int64_t now_s);
  // For a token with an unknown kid (the issuer may have rotated keys):
  // refreshes at most once per min_refresh_interval. True if a new set was loaded.
  bool RefreshForUnknownKid(int64_t now_s) override;

 private:
  Fetcher fetcher_;
  Options options_;
  std::mutex fetch_mu_;  // serialises fetches
  mutable std::mutex mu_;
  std::shared_ptr<const KeySet> set_;
  int64_t last_success_s_ = 0;
  int64_t last_attempt_s_ = 0;
  bool have_set_ = false;
};

}  // namespace phivault::auth

#endif  // PHIVAULT_AUTH_JWKS_H_
