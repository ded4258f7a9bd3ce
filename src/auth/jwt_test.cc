#include "auth/jwt.h"

#include <gtest/gtest.h>

#include <openssl/hmac.h>
#include <openssl/x509.h>

#include <atomic>
#include <thread>

#include "auth/base64url.h"
#include "auth/testing/test_keys.h"

namespace phivault::auth {
namespace {

using testing::SignRaw;
using testing::TestKey;

constexpr int64_t kNow = 1700000000;
constexpr char kIss[] = "https://idp.example.test";

std::string Payload(const std::string& extra = "", int64_t exp = kNow + 600) {
  std::string p = "{\"iss\":\"" + std::string(kIss) + "\",\"aud\":\"phivault\",\"sub\":\"user-1\",\"iat\":" +
                  std::to_string(kNow) + ",\"exp\":" + std::to_string(exp) +
                  ",\"scope\":\"user/Observation.rs patient/*.read openid\",\"fhirUser\":\"Practitioner/p1\","
                  "\"role\":\"clinician\",\"jti\":\"j-1\"";
  p += extra;
  p += "}";
  return p;
}
std::string MakeClaims(const std::string& body) { return "{\"iss\":\"" + std::string(kIss) + "\",\"aud\":\"phivault\"," + body + "}"; }

class JwtTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto set = KeySet::Parse(testing::TestJwks());
    ASSERT_TRUE(set.ok()) << set.status().ToString();
    provider_ = std::make_shared<StaticKeySetProvider>(*set);
    config_.issuer = kIss;
    config_.audiences = {"phivault", "https://vault.example.test/fhir"};
    verifier_ = std::make_shared<JwtVerifier>(config_, provider_);
  }
  StatusOr<auth::Claims> V(const std::string& token, int64_t now = kNow) { return verifier_->Verify(token, now); }
  void ExpectReject(const std::string& token, std::string_view reason, int64_t now = kNow) {
    auto r = V(token, now);
    ASSERT_FALSE(r.ok()) << "accepted: " << reason;
    EXPECT_EQ(r.status().code(), StatusCode::kUnauthenticated);
    EXPECT_NE(r.status().message().find(reason), std::string::npos) << r.status().message();
    // The reason never echoes the token (or any segment of it).
    for (size_t i = 0; i + 16 <= token.size(); i += 16) {
      EXPECT_EQ(r.status().message().find(token.substr(i, 16)), std::string::npos);
    }
  }

  TestKey rsa_ = testing::TestRsaKey();
  TestKey ec_ = testing::TestEcKey();
  TestKey ed_ = testing::TestEdKey();
  std::shared_ptr<StaticKeySetProvider> provider_;
  VerifierConfig config_;
  std::shared_ptr<JwtVerifier> verifier_;
};

TEST_F(JwtTest, AcceptsAllThreeAlgorithms) {
  struct Case {
    EVP_PKEY* key;
    const char* header;
    const char* alg;
  } cases[] = {{rsa_.get(), R"({"alg":"RS256","kid":"rsa-1","typ":"JWT"})", "RS256"},
               {ec_.get(), R"({"alg":"ES256","kid":"ec-1"})", "ES256"},
               {ed_.get(), R"({"alg":"EdDSA","kid":"ed-1","typ":"at+jwt"})", "EdDSA"}};
  for (const auto& c : cases) {
    auto r = V(SignRaw(c.header, Payload(), c.key));
    ASSERT_TRUE(r.ok()) << c.alg << ": " << r.status().ToString();
    EXPECT_EQ(r->alg, c.alg);
    EXPECT_EQ(r->sub, "user-1");
    EXPECT_EQ(r->iss, kIss);
    EXPECT_EQ(r->aud, std::vector<std::string>{"phivault"});
    EXPECT_EQ(r->exp, kNow + 600);
    EXPECT_EQ(r->iat, kNow);
    EXPECT_FALSE(r->nbf.has_value());
    EXPECT_EQ(r->fhir_user, "Practitioner/p1");
    EXPECT_EQ(r->role, "clinician");
    EXPECT_EQ(r->jti, "j-1");
    ASSERT_EQ(r->scopes.size(), 2u);
    EXPECT_TRUE(Permits(r->scopes, ScopeContext::kUser, "Observation", Interaction::kSearch));
    EXPECT_TRUE(Permits(r->scopes, ScopeContext::kPatient, "Condition", Interaction::kRead));
    EXPECT_FALSE(Permits(r->scopes, ScopeContext::kPatient, "Condition", Interaction::kUpdate));
    EXPECT_NE(r->raw.if_contains("jti"), nullptr);
  }
}

TEST_F(JwtTest, AlgNoneIsRejectedInEveryForm) {
  std::string payload = Base64UrlEncode(Payload());
  for (const char* h : {R"({"alg":"none"})", R"({"alg":"none","kid":"rsa-1"})", R"({"alg":"None","kid":"ed-1"})",
                        R"({"alg":"NONE"})", R"({"alg":""})"}) {
    std::string hb = Base64UrlEncode(h);
    ExpectReject(hb + "." + payload + ".", "unsigned");
    ExpectReject(hb + "." + payload + ".AAAA", "algorithm not allowed");
  }
  ExpectReject(Base64UrlEncode(R"({"kid":"ed-1"})") + "." + payload + ".AAAA", "missing alg");
  ExpectReject(Base64UrlEncode(R"({"alg":["EdDSA"]})") + "." + payload + ".AAAA", "missing alg");
}

TEST_F(JwtTest, HmacKeyConfusionIsRejected) {
  // HS256 keyed with the RSA public key (as SPKI DER, the JWK text, and n):
  // the verifier must never treat a public key as an HMAC secret.
  std::string input = Base64UrlEncode(R"({"alg":"HS256","kid":"rsa-1"})") + "." + Base64UrlEncode(Payload());
  unsigned char* der = nullptr;
  int der_len = i2d_PUBKEY(rsa_.get(), &der);
  ASSERT_GT(der_len, 0);
  std::string secrets[] = {std::string(reinterpret_cast<char*>(der), static_cast<size_t>(der_len)),
                           testing::PublicJwk(rsa_.get(), "rsa-1"),
                           testing::BnParam(rsa_.get(), OSSL_PKEY_PARAM_RSA_N)};
  OPENSSL_free(der);
  for (const auto& secret : secrets) {
    unsigned char mac[32];
    unsigned int len = 0;
    HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
         reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &len);
    ExpectReject(input + "." + Base64UrlEncode(std::string_view(reinterpret_cast<char*>(mac), len)),
                 "algorithm not allowed");
  }
  // Even if an operator lists HS256 as allowed, it is not a supported algorithm.
  config_.allowed_algs.push_back("HS256");
  JwtVerifier lax(config_, provider_);
  EXPECT_FALSE(lax.Verify(input + ".AAAA", kNow).ok());
}

TEST_F(JwtTest, AlgorithmMustMatchTheKey) {
  // Header claims ES256 but names the RSA key, signed with the EC key.
  ExpectReject(SignRaw(R"({"alg":"ES256","kid":"rsa-1"})", Payload(), ec_.get()), "does not match the key");
  ExpectReject(SignRaw(R"({"alg":"RS256","kid":"ec-1"})", Payload(), rsa_.get()), "does not match the key");
  ExpectReject(SignRaw(R"({"alg":"EdDSA","kid":"rsa-1"})", Payload(), ed_.get()), "does not match the key");
  ExpectReject(SignRaw(R"({"alg":"RS256","kid":"ed-1"})", Payload(), rsa_.get()), "does not match the key");
  // Other algorithms on the right key type.
  ExpectReject(SignRaw(R"({"alg":"PS256","kid":"rsa-1"})", Payload(), rsa_.get()), "algorithm not allowed");
  ExpectReject(SignRaw(R"({"alg":"RS384","kid":"rsa-1"})", Payload(), rsa_.get()), "algorithm not allowed");
  ExpectReject(SignRaw(R"({"alg":"Ed25519","kid":"ed-1"})", Payload(), ed_.get()), "algorithm not allowed");
  // An algorithm the operator disabled.
  config_.allowed_algs = {"EdDSA"};
  JwtVerifier only_ed(config_, provider_);
  auto r = only_ed.Verify(SignRaw(R"({"alg":"RS256","kid":"rsa-1"})", Payload(), rsa_.get()), kNow);
  EXPECT_FALSE(r.ok());
}

TEST_F(JwtTest, WrongKeyIsRejected) {
  TestKey other_rsa = testing::GenerateKey("rsa");
  TestKey other_ec = testing::GenerateKey("ec");
  TestKey other_ed = testing::GenerateKey("ed");
  ExpectReject(SignRaw(R"({"alg":"RS256","kid":"rsa-1"})", Payload(), other_rsa.get()), "bad signature");
  ExpectReject(SignRaw(R"({"alg":"ES256","kid":"ec-1"})", Payload(), other_ec.get()), "bad signature");
  ExpectReject(SignRaw(R"({"alg":"EdDSA","kid":"ed-1"})", Payload(), other_ed.get()), "bad signature");
}

TEST_F(JwtTest, TimeClaims) {
  const std::string h = R"({"alg":"EdDSA","kid":"ed-1"})";
  ExpectReject(SignRaw(h, Payload("", kNow - 3600), ed_.get()), "expired");
  ExpectReject(SignRaw(h, Payload("", kNow - 60), ed_.get()), "expired");  // exactly at exp + leeway
  EXPECT_TRUE(V(SignRaw(h, Payload("", kNow - 59), ed_.get())).ok());      // inside the leeway
  ExpectReject(SignRaw(h, Payload(",\"nbf\":" + std::to_string(kNow + 3600)), ed_.get()), "not yet valid");
  EXPECT_TRUE(V(SignRaw(h, Payload(",\"nbf\":" + std::to_string(kNow + 60)), ed_.get())).ok());
  ExpectReject(SignRaw(h, Payload(",\"nbf\":" + std::to_string(kNow + 61)), ed_.get()), "not yet valid");
  ExpectReject(SignRaw(h, MakeClaims("\"sub\":\"a\",\"iat\":" + std::to_string(kNow + 3600) + ",\"exp\":" +
                                     std::to_string(kNow + 7200)),
                       ed_.get()),
               "issued in the future");
  ExpectReject(SignRaw(h, MakeClaims("\"sub\":\"a\""), ed_.get()), "missing exp");
  ExpectReject(SignRaw(h, MakeClaims("\"sub\":\"a\",\"exp\":\"" + std::to_string(kNow + 60) + "\""), ed_.get()),
               "malformed exp");
  ExpectReject(SignRaw(h, MakeClaims("\"sub\":\"a\",\"exp\":1e300"), ed_.get()), "malformed exp");
  ExpectReject(SignRaw(h, MakeClaims("\"sub\":\"a\",\"exp\":true"), ed_.get()), "malformed exp");
  ExpectReject(SignRaw(h, MakeClaims("\"sub\":\"a\",\"exp\":" + std::to_string(kNow + 60) + ",\"nbf\":null"), ed_.get()),
               "malformed nbf");
  // Fractional NumericDate is accepted and floored.
  auto frac = V(SignRaw(h, MakeClaims("\"sub\":\"a\",\"exp\":" + std::to_string(kNow + 60) + ".75"), ed_.get()));
  ASSERT_TRUE(frac.ok()) << frac.status().ToString();
  EXPECT_EQ(frac->exp, kNow + 60);
  // Leeway is configurable.
  config_.leeway = std::chrono::seconds(0);
  JwtVerifier strict(config_, provider_);
  EXPECT_FALSE(strict.Verify(SignRaw(h, Payload("", kNow - 1), ed_.get()), kNow).ok());
}

TEST_F(JwtTest, IssuerAndAudience) {
  const std::string h = R"({"alg":"ES256","kid":"ec-1"})";
  const std::string exp = ",\"sub\":\"a\",\"exp\":" + std::to_string(kNow + 60);
  ExpectReject(SignRaw(h, "{\"iss\":\"https://evil.example\",\"aud\":\"phivault\"" + exp + "}", ec_.get()),
               "wrong issuer");
  ExpectReject(SignRaw(h, "{\"iss\":\"https://idp.example.test/\",\"aud\":\"phivault\"" + exp + "}", ec_.get()),
               "wrong issuer");
  ExpectReject(SignRaw(h, "{\"aud\":\"phivault\"" + exp + "}", ec_.get()), "missing issuer");
  ExpectReject(SignRaw(h, "{\"iss\":7,\"aud\":\"phivault\"" + exp + "}", ec_.get()), "missing issuer");
  std::string iss = "{\"iss\":\"" + std::string(kIss) + "\"";
  ExpectReject(SignRaw(h, iss + ",\"aud\":\"other\"" + exp + "}", ec_.get()), "wrong audience");
  ExpectReject(SignRaw(h, iss + ",\"aud\":[\"a\",\"b\"]" + exp + "}", ec_.get()), "wrong audience");
  ExpectReject(SignRaw(h, iss + exp + "}", ec_.get()), "missing audience");
  ExpectReject(SignRaw(h, iss + ",\"aud\":[]" + exp + "}", ec_.get()), "malformed audience");
  ExpectReject(SignRaw(h, iss + ",\"aud\":[\"phivault\",1]" + exp + "}", ec_.get()), "malformed audience");
  auto ok = V(SignRaw(h, iss + ",\"aud\":[\"x\",\"https://vault.example.test/fhir\"]" + exp + "}", ec_.get()));
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->aud.size(), 2u);
}

TEST_F(JwtTest, KidHandling) {
  ExpectReject(SignRaw(R"({"alg":"EdDSA","kid":"forged"})", Payload(), ed_.get()), "unknown kid");
  ExpectReject(SignRaw(R"({"alg":"EdDSA"})", Payload(), ed_.get()), "missing kid");
  ExpectReject(SignRaw(R"({"alg":"EdDSA","kid":""})", Payload(), ed_.get()), "malformed kid");
  ExpectReject(SignRaw(R"({"alg":"EdDSA","kid":5})", Payload(), ed_.get()), "malformed kid");
  // With a single key in the set, a missing kid is fine.
  auto one = KeySet::Parse("{\"keys\":[" + testing::PublicJwk(ed_.get(), "") + "]}");
  ASSERT_TRUE(one.ok()) << one.status().ToString();
  JwtVerifier single(config_, std::make_shared<StaticKeySetProvider>(*one));
  EXPECT_TRUE(single.Verify(SignRaw(R"({"alg":"EdDSA"})", Payload(), ed_.get()), kNow).ok());
  EXPECT_FALSE(single.Verify(SignRaw(R"({"alg":"EdDSA","kid":"x"})", Payload(), ed_.get()), kNow).ok());
}

TEST_F(JwtTest, EmbeddedKeysAndUrlsAreIgnored) {
  TestKey attacker = testing::GenerateKey("ed");
  std::string jwk = testing::PublicJwk(attacker.get(), "ed-1");
  ExpectReject(SignRaw(R"({"alg":"EdDSA","kid":"ed-1","jwk":)" + jwk + "}", Payload(), attacker.get()),
               "bad signature");
  ExpectReject(SignRaw(R"({"alg":"EdDSA","jwk":)" + jwk + "}", Payload(), attacker.get()), "missing kid");
  ExpectReject(
      SignRaw(R"({"alg":"EdDSA","kid":"evil","jku":"https://evil.example/jwks"})", Payload(), attacker.get()),
      "unknown kid");
  ExpectReject(SignRaw(R"({"alg":"EdDSA","kid":"ed-1","x5u":"https://evil.example/c"})", Payload(), attacker.get()),
               "bad signature");
  // The same headers on a token signed by the real key do not matter.
  EXPECT_TRUE(V(SignRaw(R"({"alg":"EdDSA","kid":"ed-1","jwk":)" + jwk + R"(,"jku":"https://evil.example"})",
                        Payload(), ed_.get()))
                  .ok());
}

TEST_F(JwtTest, ForbiddenHeaders) {
  ExpectReject(SignRaw(R"({"alg":"EdDSA","kid":"ed-1","crit":["exp"],"exp":1})", Payload(), ed_.get()),
               "unsupported header");
  ExpectReject(SignRaw(R"({"alg":"EdDSA","kid":"ed-1","cty":"JWT"})", Payload(), ed_.get()), "unsupported header");
  ExpectReject(SignRaw(R"({"alg":"EdDSA","kid":"ed-1","zip":"DEF"})", Payload(), ed_.get()), "unsupported header");
  ExpectReject(SignRaw(R"({"alg":"EdDSA","kid":"ed-1","typ":"dpop+jwt"})", Payload(), ed_.get()), "typ");
  ExpectReject(SignRaw(R"({"alg":"EdDSA","kid":"ed-1","alg":"none"})", Payload(), ed_.get()), "malformed header");
  ExpectReject(SignRaw(R"(["EdDSA"])", Payload(), ed_.get()), "header is not an object");
}

TEST_F(JwtTest, TamperingIsDetected) {
  std::string t = SignRaw(R"({"alg":"RS256","kid":"rsa-1"})", Payload(), rsa_.get());
  size_t d1 = t.find('.'), d2 = t.rfind('.');
  std::string h = t.substr(0, d1), p = t.substr(d1 + 1, d2 - d1 - 1), s = t.substr(d2 + 1);
  ExpectReject(h + "." + Base64UrlEncode(Payload(",\"admin\":true")) + "." + s, "bad signature");
  ExpectReject(Base64UrlEncode(R"({"alg":"RS256","kid":"rsa-1","typ":"JWT"})") + "." + p + "." + s, "bad signature");
  std::string flipped = s;
  flipped[10] = flipped[10] == 'A' ? 'B' : 'A';
  ExpectReject(h + "." + p + "." + flipped, "bad signature");
  ExpectReject(h + "." + p + "." + s + "==", "malformed signature");
  ExpectReject(h + "." + p + "." + s.substr(0, s.size() - 1), "malformed signature");
  ExpectReject(h + "=." + p + "." + s, "malformed header");
  ExpectReject(h + "." + p + "." + s + "." + s, "malformed");
  ExpectReject(h + "." + p, "malformed");
  ExpectReject(" " + t, "malformed header");
  ExpectReject("", "empty");
  ExpectReject("..", "malformed");
}

TEST_F(JwtTest, Es256SignatureFormat) {
  // A DER-encoded ECDSA signature (what OpenSSL produces natively) is rejected.
  ExpectReject(SignRaw(R"({"alg":"ES256","kid":"ec-1"})", Payload(), ec_.get(), /*der=*/true), "bad signature");
  // Raw r||s with r or s zero, or too long / short.
  std::string t = SignRaw(R"({"alg":"ES256","kid":"ec-1"})", Payload(), ec_.get());
  std::string input = t.substr(0, t.rfind('.'));
  ExpectReject(input + "." + Base64UrlEncode(std::string(64, '\0')), "bad signature");
  auto sig = Base64UrlDecode(t.substr(t.rfind('.') + 1));
  ASSERT_TRUE(sig.ok());
  ExpectReject(input + "." + Base64UrlEncode(*sig + std::string(1, '\0')), "bad signature");
  ExpectReject(input + "." + Base64UrlEncode(sig->substr(0, 63)), "bad signature");
}

TEST_F(JwtTest, OversizedTokenIsRejectedBeforeParsing) {
  std::string big = SignRaw(R"({"alg":"EdDSA","kid":"ed-1"})", Payload(",\"pad\":\"" + std::string(9000, 'x') + "\""),
                            ed_.get());
  ExpectReject(big, "too large");
  ExpectReject(std::string(100000, 'A'), "too large");
}

TEST_F(JwtTest, PayloadShape) {
  const std::string h = R"({"alg":"EdDSA","kid":"ed-1"})";
  ExpectReject(SignRaw(h, "[1,2]", ed_.get()), "payload is not an object");
  ExpectReject(SignRaw(h, "\"str\"", ed_.get()), "payload is not an object");
  ExpectReject(SignRaw(h, "{\"sub\":\"a\"", ed_.get()), "malformed payload");
  ExpectReject(SignRaw(h, Payload(",\"sub\":\"admin\""), ed_.get()), "malformed payload");  // duplicate sub
  ExpectReject(SignRaw(h, MakeClaims("\"exp\":" + std::to_string(kNow + 60)), ed_.get()), "sub");
  ExpectReject(SignRaw(h, MakeClaims("\"sub\":\"\",\"exp\":" + std::to_string(kNow + 60)), ed_.get()), "sub");
  ExpectReject(SignRaw(h, Payload(",\"x\":\"\xff\""), ed_.get()), "malformed payload");  // invalid UTF-8
}

TEST_F(JwtTest, OptionalClaimTypes) {
  const std::string h = R"({"alg":"EdDSA","kid":"ed-1"})";
  const std::string base = "\"sub\":\"a\",\"exp\":" + std::to_string(kNow + 60);
  ExpectReject(SignRaw(h, MakeClaims(base + ",\"scope\":[\"user/*.rs\"]"), ed_.get()), "malformed scope");
  ExpectReject(SignRaw(h, MakeClaims(base + ",\"fhirUser\":\"Organization/1\""), ed_.get()), "fhirUser");
  ExpectReject(SignRaw(h, MakeClaims(base + ",\"fhirUser\":5"), ed_.get()), "fhirUser");
  ExpectReject(SignRaw(h, MakeClaims(base + ",\"role\":{\"a\":1}"), ed_.get()), "role");
  ExpectReject(SignRaw(h, MakeClaims(base + ",\"jti\":1"), ed_.get()), "jti");
  auto r = V(SignRaw(h,
                     MakeClaims(base + ",\"scp\":[\"system/Patient.c\",\"user/Observation.read\"],"
                                   "\"fhirUser\":\"https://ehr.example/fhir/Device/d-1\",\"role\":[\"a\",\"b\"]"),
                     ed_.get()));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->scope, "system/Patient.c user/Observation.read");
  EXPECT_TRUE(Permits(r->scopes, ScopeContext::kSystem, "Patient", Interaction::kCreate));
  EXPECT_EQ(r->role, "a");
  EXPECT_EQ(r->roles, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(ParseFhirUser(r->fhir_user)->type, "Device");
  // A configured, nested role claim.
  config_.role_claim = "realm_access.role";
  JwtVerifier nested(config_, provider_);
  auto n = nested.Verify(SignRaw(h, MakeClaims(base + ",\"realm_access\":{\"role\":\"admin\"}"), ed_.get()), kNow);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(n->role, "admin");
}

TEST(FhirUser, Forms) {
  EXPECT_EQ(ParseFhirUser("Practitioner/123")->id, "123");
  EXPECT_EQ(ParseFhirUser("Patient/abc")->type, "Patient");
  EXPECT_EQ(ParseFhirUser("https://x.example/fhir/PractitionerRole/r.1")->type, "PractitionerRole");
  EXPECT_FALSE(ParseFhirUser(""));
  EXPECT_FALSE(ParseFhirUser("Practitioner"));
  EXPECT_FALSE(ParseFhirUser("Practitioner/"));
  EXPECT_FALSE(ParseFhirUser("Practitioner/a/b"));
  EXPECT_FALSE(ParseFhirUser("Observation/1"));
  EXPECT_FALSE(ParseFhirUser("Patient/1 "));
  EXPECT_FALSE(ParseFhirUser("https://x/Patient/1?x=1"));
  EXPECT_FALSE(ParseFhirUser("Patient/" + std::string(65, 'a')));
}

TEST_F(JwtTest, NoKeysAvailable) {
  JwtVerifier none(config_, std::make_shared<StaticKeySetProvider>(nullptr));
  auto r = none.Verify(SignRaw(R"({"alg":"EdDSA","kid":"ed-1"})", Payload(), ed_.get()), kNow);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnauthenticated);
}

TEST_F(JwtTest, UnknownKidTriggersRateLimitedRefresh) {
  TestKey rotated = testing::GenerateKey("ed");
  std::string jwks = testing::TestJwks();
  int fetches = 0;
  auto refreshing = std::make_shared<RefreshingKeySetProvider>([&]() -> StatusOr<std::string> {
    ++fetches;
    return jwks;
  });
  ASSERT_TRUE(refreshing->Refresh(kNow - 1000).ok());
  JwtVerifier v(config_, refreshing);
  std::string token = SignRaw(R"({"alg":"EdDSA","kid":"new"})", Payload(), rotated.get());
  EXPECT_FALSE(v.Verify(token, kNow).ok());
  EXPECT_EQ(fetches, 2);
  // The issuer rotates: the new key appears in the JWKS.
  jwks = "{\"keys\":[" + testing::PublicJwk(rotated.get(), "new") + "]}";
  EXPECT_FALSE(v.Verify(token, kNow + 10).ok());  // rate limited, no fetch
  EXPECT_EQ(fetches, 2);
  auto ok = v.Verify(token, kNow + 61);
  EXPECT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(fetches, 3);
}

TEST_F(JwtTest, CachingVerifierServesHitsUntilExpiry) {
  CachingVerifier::Options opt;
  opt.max_entries = 3;
  CachingVerifier cache(verifier_, opt);
  std::string t = SignRaw(R"({"alg":"RS256","kid":"rsa-1"})", Payload("", kNow + 100), rsa_.get());
  ASSERT_TRUE(cache.Verify(t, kNow).ok());
  EXPECT_EQ(cache.misses(), 1u);
  auto hit = cache.Verify(t, kNow + 50);
  ASSERT_TRUE(hit.ok());
  EXPECT_EQ(hit->sub, "user-1");
  EXPECT_EQ(cache.hits(), 1u);
  // exp 100 + leeway 60: still fine at +159, rejected at +160 even from the cache.
  EXPECT_TRUE(cache.Verify(t, kNow + 159).ok());
  auto late = cache.Verify(t, kNow + 160);
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.status().code(), StatusCode::kUnauthenticated);
  // A tampered token never hits the cache entry of the original.
  std::string tampered = t;
  tampered.back() = tampered.back() == 'A' ? 'B' : 'A';
  EXPECT_FALSE(cache.Verify(tampered, kNow).ok());
  // Bounded: LRU eviction keeps at most max_entries.
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(cache.Verify(SignRaw(R"({"alg":"EdDSA","kid":"ed-1"})", Payload(",\"n\":" + std::to_string(i)),
                                     ed_.get()),
                             kNow)
                    .ok());
  }
  EXPECT_LE(cache.size(), 3u);
}

TEST_F(JwtTest, CachingVerifierReverifiesAfterKeySetChange) {
  CachingVerifier cache(verifier_);
  std::string t = SignRaw(R"({"alg":"EdDSA","kid":"ed-1"})", Payload(), ed_.get());
  ASSERT_TRUE(cache.Verify(t, kNow).ok());
  ASSERT_TRUE(cache.Verify(t, kNow).ok());
  EXPECT_EQ(cache.hits(), 1u);
  // The key is rotated out: the cached verification must not survive it.
  auto without_ed = KeySet::Parse("{\"keys\":[" + testing::PublicJwk(rsa_.get(), "rsa-1") + "]}");
  ASSERT_TRUE(without_ed.ok());
  provider_->Replace(*without_ed);
  auto r = cache.Verify(t, kNow);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(cache.size(), 0u);
}

TEST_F(JwtTest, ConcurrentVerification) {
  CachingVerifier cache(verifier_);
  std::vector<std::string> tokens;
  for (int i = 0; i < 8; ++i) {
    tokens.push_back(SignRaw(R"({"alg":"ES256","kid":"ec-1"})", Payload(",\"n\":" + std::to_string(i)), ec_.get()));
  }
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        const std::string& tok = tokens[static_cast<size_t>((i + t) % 8)];
        if (!cache.Verify(tok, kNow).ok() || !verifier_->Verify(tok, kNow).ok()) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
}

}  // namespace
}  // namespace phivault::auth
