#include "auth/jwks.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "auth/base64url.h"
#include "auth/testing/test_keys.h"

namespace phivault::auth {
namespace {

using testing::PublicJwk;
using testing::TestKey;

std::string Set(const std::string& jwk) { return "{\"keys\":[" + jwk + "]}"; }

TEST(Jwks, ParsesAllThreeKeyTypes) {
  auto set = KeySet::Parse(testing::TestJwks());
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  ASSERT_EQ((*set)->size(), 3u);
  const VerificationKey* r = (*set)->FindByKid("rsa-1");
  const VerificationKey* e = (*set)->FindByKid("ec-1");
  const VerificationKey* d = (*set)->FindByKid("ed-1");
  ASSERT_TRUE(r && e && d);
  EXPECT_EQ(r->type(), KeyType::kRsa);
  EXPECT_EQ(r->algorithm(), JwsAlgorithm::kRS256);
  EXPECT_EQ(r->bits(), 2048);
  EXPECT_EQ(r->use(), "sig");
  EXPECT_EQ(e->algorithm(), JwsAlgorithm::kES256);
  EXPECT_EQ(d->algorithm(), JwsAlgorithm::kEdDSA);
  EXPECT_EQ((*set)->FindByKid("nope"), nullptr);
  EXPECT_EQ((*set)->FindByKid(""), nullptr);
}

TEST(Jwks, RejectsSymmetricAndPrivateKeys) {
  TestKey ed = testing::TestEdKey();
  std::string good = PublicJwk(ed.get(), "ed");
  EXPECT_FALSE(KeySet::Parse(Set("{\"kty\":\"oct\",\"k\":\"c2VjcmV0\",\"kid\":\"h\"}," + good)).ok());
  auto priv = KeySet::Parse(Set(PublicJwk(ed.get(), "ed", ",\"d\":\"AAAA\"")));
  ASSERT_FALSE(priv.ok());
  EXPECT_NE(priv.status().message().find("private"), std::string::npos);
}

TEST(Jwks, RejectsShortRsaKeys) {
  TestKey weak = testing::GenerateKey("rsa", 1024);
  auto s = KeySet::Parse(Set(PublicJwk(weak.get(), "weak")));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("2048"), std::string::npos);
}

TEST(Jwks, SkipsEncryptionKeysAndUnsupportedTypes) {
  TestKey ed = testing::TestEdKey();
  TestKey rsa = testing::TestRsaKey();
  std::string body = Set(PublicJwk(rsa.get(), "enc", ",\"use\":\"enc\"") + "," +
                         PublicJwk(rsa.get(), "ps", ",\"alg\":\"PS256\"") + "," +
                         "{\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"AA\",\"y\":\"AA\",\"kid\":\"p384\"}," +
                         "{\"kty\":\"OKP\",\"crv\":\"X25519\",\"x\":\"AA\",\"kid\":\"x\"}," +
                         "{\"kty\":\"NEW\",\"kid\":\"n\"}," + PublicJwk(ed.get(), "ops", ",\"key_ops\":[\"encrypt\"]") +
                         "," + PublicJwk(ed.get(), "ed"));
  auto s = KeySet::Parse(body);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ((*s)->size(), 1u);
  EXPECT_NE((*s)->FindByKid("ed"), nullptr);
  EXPECT_EQ((*s)->skipped().size(), 6u);
}

TEST(Jwks, KeyAlgMustMatchKeyType) {
  TestKey rsa = testing::TestRsaKey();
  EXPECT_FALSE(KeySet::Parse(Set(PublicJwk(rsa.get(), "r", ",\"alg\":\"ES256\""))).ok());
  EXPECT_FALSE(KeySet::Parse(Set(PublicJwk(rsa.get(), "r", ",\"alg\":\"EdDSA\""))).ok());
  EXPECT_TRUE(KeySet::Parse(Set(PublicJwk(rsa.get(), "r", ",\"alg\":\"RS256\""))).ok());
  TestKey ec = testing::TestEcKey();
  EXPECT_FALSE(KeySet::Parse(Set(PublicJwk(ec.get(), "e", ",\"alg\":\"RS256\""))).ok());
}

TEST(Jwks, MalformedDocuments) {
  for (const char* doc : {"", "[]", "{}", "{\"keys\":{}}", "{\"keys\":[1]}", "{\"keys\":[]}", "{\"keys\":[{}]}",
                          "{\"keys\":[{\"kty\":1}]}", "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"AQAB\"}]}",
                          "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"AAAA\"}]}",
                          "{\"keys\":[{\"kty\":\"OKP\",\"x\":\"AAAA\"}]}", "{\"keys\":[],\"keys\":[]}", "nul"}) {
    EXPECT_FALSE(KeySet::Parse(doc).ok()) << doc;
  }
}

TEST(Jwks, RejectsDuplicateKidsAndDuplicateMembers) {
  TestKey ed = testing::TestEdKey(), ec = testing::TestEcKey();
  EXPECT_FALSE(KeySet::Parse(Set(PublicJwk(ed.get(), "k") + "," + PublicJwk(ec.get(), "k"))).ok());
  EXPECT_FALSE(KeySet::Parse(Set(PublicJwk(ed.get(), "k", ",\"kid\":\"k\""))).ok());
}

TEST(Jwks, RejectsEcPointOffTheCurve) {
  TestKey ec = testing::TestEcKey();
  std::string x = testing::BnParam(ec.get(), OSSL_PKEY_PARAM_EC_PUB_X);
  x.insert(0, 32 - x.size(), '\0');
  std::string y(32, '\x01');
  std::string jwk = "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"" + Base64UrlEncode(x) + "\",\"y\":\"" +
                    Base64UrlEncode(y) + "\",\"kid\":\"bad\"}";
  EXPECT_FALSE(KeySet::Parse(Set(jwk)).ok());
  // Coordinates of the wrong size.
  std::string short_jwk = "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"" + Base64UrlEncode(x.substr(1)) +
                          "\",\"y\":\"" + Base64UrlEncode(y) + "\"}";
  EXPECT_FALSE(KeySet::Parse(Set(short_jwk)).ok());
}

TEST(Jwks, NonCanonicalBase64IsRejected) {
  TestKey ed = testing::TestEdKey();
  std::string jwk = PublicJwk(ed.get(), "ed");
  size_t x = jwk.find("\"x\":\"") + 5;
  std::string padded = jwk;
  padded.insert(jwk.find('"', x), "=");
  EXPECT_FALSE(KeySet::Parse(Set(padded)).ok());
}

TEST(Jwks, LoadFileMissing) {
  auto s = KeySet::LoadFile("/nonexistent/jwks.json");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kNotFound);
}

TEST(Jwks, StaticProviderSwapsAtomically) {
  auto a = KeySet::Parse(testing::TestJwks());
  ASSERT_TRUE(a.ok());
  TestKey ed = testing::TestEdKey();
  auto b = KeySet::Parse(Set(PublicJwk(ed.get(), "only")));
  ASSERT_TRUE(b.ok());
  StaticKeySetProvider p(*a);
  std::atomic<bool> stop{false};
  std::thread reader([&] {
    while (!stop) {
      auto cur = p.Current();
      ASSERT_TRUE(cur);
      ASSERT_TRUE(cur->size() == 3 || cur->size() == 1);
    }
  });
  for (int i = 0; i < 2000; ++i) p.Replace(i % 2 ? *a : *b);
  stop = true;
  reader.join();
}

TEST(Jwks, RefreshingProviderKeepsOldSetOnFailureUntilStale) {
  std::string body = testing::TestJwks();
  bool fail = false;
  int fetches = 0;
  RefreshingKeySetProvider::Options opt;
  opt.refresh_interval = std::chrono::seconds(100);
  opt.min_refresh_interval = std::chrono::seconds(10);
  opt.max_stale = std::chrono::seconds(1000);
  RefreshingKeySetProvider p(
      [&]() -> StatusOr<std::string> {
        ++fetches;
        if (fail) return Unavailable("network down");
        return body;
      },
      opt);
  EXPECT_EQ(p.Current(), nullptr);
  ASSERT_TRUE(p.RefreshIfDue(1000).ok());
  auto first = p.Current();
  ASSERT_TRUE(first);
  EXPECT_TRUE(p.RefreshIfDue(1050).ok());
  EXPECT_EQ(fetches, 1);  // not due yet
  fail = true;
  EXPECT_FALSE(p.RefreshIfDue(1200).ok());
  EXPECT_EQ(p.Current(), first);  // old set kept
  EXPECT_FALSE(p.RefreshForUnknownKid(1205));  // rate limited: last attempt at 1200
  EXPECT_EQ(fetches, 2);
  EXPECT_FALSE(p.RefreshIfDue(2100).ok());
  EXPECT_EQ(p.Current(), nullptr);  // stale beyond max_stale: fail closed
  fail = false;
  EXPECT_TRUE(p.RefreshForUnknownKid(2200));
  EXPECT_NE(p.Current(), nullptr);
}

// RefreshIfDue runs on every request (network threads). An unreachable
// issuer must not be asked on each one, and nobody may wait for a fetch
// another thread is running.
TEST(Jwks, RefreshIfDueNeitherHammersNorWaitsForADownIssuer) {
  std::atomic<int> fetches{0};
  std::mutex gate;
  gate.lock();  // the first fetch hangs until released
  RefreshingKeySetProvider::Options opt;
  opt.min_refresh_interval = std::chrono::seconds(10);
  RefreshingKeySetProvider p(
      [&]() -> StatusOr<std::string> {
        if (fetches.fetch_add(1) == 0) std::lock_guard hold(gate);
        return Unavailable("network down");
      },
      opt);
  std::thread stuck([&] { (void)p.RefreshIfDue(1000); });
  while (fetches.load() == 0) std::this_thread::yield();
  // Meanwhile: no second fetch, and these calls return at once.
  for (int64_t t = 1000; t < 1010; ++t) (void)p.RefreshIfDue(t);
  EXPECT_EQ(fetches.load(), 1);
  gate.unlock();
  stuck.join();
  for (int64_t t = 1001; t < 1010; ++t) (void)p.RefreshIfDue(t);
  EXPECT_EQ(fetches.load(), 1) << "within min_refresh_interval of the failed attempt";
  (void)p.RefreshIfDue(1010);
  EXPECT_EQ(fetches.load(), 2);
  EXPECT_EQ(p.Current(), nullptr);
}

TEST(Jwks, VerifyRejectsWrongSignatureSizes) {
  auto set = KeySet::Parse(testing::TestJwks());
  ASSERT_TRUE(set.ok());
  for (const auto& k : (*set)->keys()) {
    EXPECT_FALSE(k->Verify("a.b", ""));
    EXPECT_FALSE(k->Verify("a.b", std::string(64, '\0')));
    EXPECT_FALSE(k->Verify("a.b", std::string(256, '\xff')));
  }
}

}  // namespace
}  // namespace phivault::auth
