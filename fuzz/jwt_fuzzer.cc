// Fuzzes the auth parsers with untrusted input. The first byte picks a mode:
//   0: the rest is a JWKS document for KeySet::Parse;
//   1: byte 2 picks a test key (RSA, P-256, Ed25519); the rest is
//      "<header JSON>\n<payload JSON>", signed with that key and verified, so
//      the claim checks behind the signature are reached;
//   2: the rest is a SMART scope string; also a refresh token / base64url input;
//   else: the whole input is a compact JWT for JwtVerifier and CachingVerifier
//      against a fixed JWKS of all three key types.
// Every input must be accepted or rejected cleanly; an accepted token must
// satisfy the verifier's guarantees (issuer, audience, time window), and the
// cached and uncached verifiers must agree.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "auth/base64url.h"
#include "auth/jwks.h"
#include "auth/jwt.h"
#include "auth/scopes.h"
#include "auth/testing/test_keys.h"

namespace {

using namespace phivault::auth;

constexpr int64_t kNow = 1700000000;
constexpr char kIss[] = "https://idp.example.test";
constexpr char kAud[] = "phivault";

struct Fixture {
  Fixture() {
    auto set = KeySet::Parse(testing::TestJwks());
    if (!set.ok()) std::abort();
    VerifierConfig config;
    config.issuer = kIss;
    config.audiences = {kAud};
    verifier = std::make_shared<JwtVerifier>(config, std::make_shared<StaticKeySetProvider>(*set));
    cache = std::make_unique<CachingVerifier>(verifier, CachingVerifier::Options{64, std::chrono::seconds(3600)});
    keys[0] = testing::TestRsaKey();
    keys[1] = testing::TestEcKey();
    keys[2] = testing::TestEdKey();
  }
  std::shared_ptr<JwtVerifier> verifier;
  std::unique_ptr<CachingVerifier> cache;
  testing::TestKey keys[3];
};

Fixture& F() {
  static Fixture* f = new Fixture();
  return *f;
}

void CheckAccepted(const Claims& c) {
  if (c.iss != kIss) std::abort();
  bool aud = false;
  for (const auto& a : c.aud) aud |= (a == kAud);
  if (!aud) std::abort();
  if (kNow >= c.exp + 60) std::abort();
  if (c.nbf && *c.nbf > kNow + 60) std::abort();
  if (c.iat && *c.iat > kNow + 60) std::abort();
  if (c.sub.empty()) std::abort();
  if (c.alg != "RS256" && c.alg != "ES256" && c.alg != "EdDSA") std::abort();
}

void VerifyBoth(std::string_view token) {
  Fixture& f = F();
  auto r = f.verifier->Verify(token, kNow);
  auto c = f.cache->Verify(token, kNow);
  if (r.ok() != c.ok()) std::abort();
  if (r.ok()) {
    CheckAccepted(*r);
    if (r->sub != c->sub || r->exp != c->exp) std::abort();
  } else if (r.status().code() != phivault::StatusCode::kUnauthenticated) {
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  const uint8_t mode = data[0];
  std::string_view rest = in.substr(1);
  switch (mode) {
    case 0: {
      auto set = KeySet::Parse(rest);
      if (set.ok()) {
        if ((*set)->size() == 0) std::abort();
        for (const auto& k : (*set)->keys()) {
          if (k->pkey() == nullptr) std::abort();
          (void)k->Verify("a.b", std::string(64, '\0'));
        }
      }
      return 0;
    }
    case 1: {
      if (rest.empty()) return 0;
      size_t key = static_cast<uint8_t>(rest[0]) % 3;
      rest.remove_prefix(1);
      size_t nl = rest.find('\n');
      if (nl == std::string_view::npos) return 0;
      std::string token = testing::SignRaw(rest.substr(0, nl), rest.substr(nl + 1), F().keys[key].get());
      VerifyBoth(token);
      return 0;
    }
    case 2: {
      size_t ignored = 0;
      auto scopes = ParseScopes(rest, &ignored);
      for (const auto& s : scopes) {
        if (s.interactions == 0 || s.interactions > 0x1f) std::abort();
        auto again = ParseScope(s.text);
        if (!again || !(*again == s)) std::abort();
      }
      (void)Permits(scopes, ScopeContext::kUser, "Observation", Interaction::kRead);
      auto d = Base64UrlDecode(rest);
      if (d.ok() && Base64UrlEncode(*d) != rest) std::abort();  // canonical: one encoding per byte string
      (void)ParseFhirUser(rest);
      return 0;
    }
    default:
      VerifyBoth(in);
      return 0;
  }
}
