#include "auth/token_issuer.h"

#include <gtest/gtest.h>

#include <set>

#include "auth/base64url.h"
#include "auth/jwt.h"
#include "fhir/json_reader.h"

namespace phivault::auth {
namespace {

constexpr int64_t kNow = 1700000000;

SecureBytes Seed() { return SecureBytes::From(std::string(32, '\x42')); }

IssuerConfig Config() {
  IssuerConfig c;
  c.issuer = "https://vault.example.test";
  c.audience = "https://vault.example.test/fhir";
  return c;
}

class IssuerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto i = TokenIssuer::Create(Seed(), Config());
    ASSERT_TRUE(i.ok()) << i.status().ToString();
    issuer_ = std::move(i).value();
    auto set = KeySet::Parse(issuer_->JwksJson());
    ASSERT_TRUE(set.ok()) << set.status().ToString();
    VerifierConfig vc;
    vc.issuer = Config().issuer;
    vc.audiences = {Config().audience};
    verifier_ = std::make_shared<JwtVerifier>(vc, std::make_shared<StaticKeySetProvider>(*set));
  }
  std::unique_ptr<TokenIssuer> issuer_;
  std::shared_ptr<JwtVerifier> verifier_;
};

TEST_F(IssuerTest, RoundTripThroughJwks) {
  TokenRequest req{"alice", "user/*.cruds openid", "Practitioner/p-1", "admin"};
  auto t = issuer_->Issue(req, kNow);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->expires_at, kNow + 900);
  auto c = verifier_->Verify(t->token, kNow + 1);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->sub, "alice");
  EXPECT_EQ(c->alg, "EdDSA");
  EXPECT_EQ(c->kid, issuer_->kid());
  EXPECT_EQ(c->role, "admin");
  EXPECT_EQ(c->fhir_user, "Practitioner/p-1");
  EXPECT_EQ(c->jti, t->jti);
  EXPECT_EQ(c->nbf, kNow);
  EXPECT_EQ(c->raw.if_contains("sid"), nullptr) << "no login, no session id";
  EXPECT_TRUE(Permits(c->scopes, ScopeContext::kUser, "Patient", Interaction::kDelete));
  // Short-lived: 15 minutes plus the verifier's leeway, then rejected.
  EXPECT_TRUE(verifier_->Verify(t->token, kNow + 900 + 59).ok());
  EXPECT_FALSE(verifier_->Verify(t->token, kNow + 900 + 60).ok());
}

TEST_F(IssuerTest, KidIsRfc7638Thumbprint) {
  // Independent recomputation from the published JWK.
  auto doc = fhir::ParseJson(issuer_->JwksJson());
  ASSERT_TRUE(doc.ok());
  const auto& key = doc->as_object().at("keys").as_array().at(0).as_object();
  std::string x(key.at("x").as_string().c_str());
  EXPECT_EQ(key.at("kid").as_string(), issuer_->kid());
  EXPECT_EQ(key.at("use").as_string(), "sig");
  EXPECT_EQ(key.at("alg").as_string(), "EdDSA");
  EXPECT_EQ(key.if_contains("d"), nullptr);
  auto xb = Base64UrlDecode(x);
  ASSERT_TRUE(xb.ok());
  EXPECT_EQ(xb->size(), 32u);
  EXPECT_EQ(issuer_->kid().size(), 43u);
  // Deterministic from the seed.
  auto again = TokenIssuer::Create(Seed(), Config());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)->kid(), issuer_->kid());
  auto other = TokenIssuer::Create(SecureBytes::From(std::string(32, '\x43')), Config());
  ASSERT_TRUE(other.ok());
  EXPECT_NE((*other)->kid(), issuer_->kid());
  // A token from another key does not verify.
  auto foreign = (*other)->Issue({"alice", "", "", ""}, kNow);
  ASSERT_TRUE(foreign.ok());
  EXPECT_FALSE(verifier_->Verify(foreign->token, kNow).ok());
}

TEST(TokenIssuer, Rfc8037KnownAnswerThumbprint) {
  // RFC 8037 appendix A.1 (private key d = seed) and A.3 (thumbprint).
  auto seed = Base64UrlDecode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A");
  ASSERT_TRUE(seed.ok());
  auto issuer = TokenIssuer::Create(SecureBytes::From(*seed), Config());
  ASSERT_TRUE(issuer.ok());
  EXPECT_EQ((*issuer)->kid(), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
  EXPECT_NE((*issuer)->JwksJson().find("\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\""), std::string::npos);
}

TEST_F(IssuerTest, RejectsBadInputs) {
  EXPECT_FALSE(TokenIssuer::Create(SecureBytes::From("short"), Config()).ok());
  IssuerConfig no_iss = Config();
  no_iss.issuer.clear();
  EXPECT_FALSE(TokenIssuer::Create(Seed(), no_iss).ok());
  EXPECT_FALSE(issuer_->Issue({"", "", "", ""}, kNow).ok());
  EXPECT_FALSE(issuer_->Issue({"a\nb", "", "", ""}, kNow).ok());
  EXPECT_FALSE(issuer_->Issue({"a", "", "Organization/1", ""}, kNow).ok());
  TokenRequest spaced{"a", "", "", ""};
  spaced.session_id = "a login";
  EXPECT_FALSE(issuer_->Issue(spaced, kNow).ok());
  TokenRequest with_login{"a", "", "", ""};
  with_login.session_id = "family-7";
  auto s = issuer_->Issue(with_login, kNow);
  ASSERT_TRUE(s.ok());
  auto sc = verifier_->Verify(s->token, kNow);
  ASSERT_TRUE(sc.ok());
  ASSERT_NE(sc->raw.if_contains("sid"), nullptr);
  EXPECT_EQ(sc->raw.at("sid").as_string(), "family-7");
  // Characters needing JSON escapes are escaped correctly.
  auto t = issuer_->Issue({"we\"ird\\sub", "", "", ""}, kNow);
  ASSERT_TRUE(t.ok());
  auto c = verifier_->Verify(t->token, kNow);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->sub, "we\"ird\\sub");
}

TEST_F(IssuerTest, UniqueJti) {
  std::set<std::string> jtis;
  for (int i = 0; i < 50; ++i) {
    auto t = issuer_->Issue({"alice", "", "", ""}, kNow);
    ASSERT_TRUE(t.ok());
    jtis.insert(t->jti);
  }
  EXPECT_EQ(jtis.size(), 50u);
}

TEST(RefreshTokens, RotationAndReuseDetection) {
  auto store = std::make_shared<InMemoryRefreshTokenStore>();
  RefreshTokenManager m(store);
  auto t1 = m.Issue("alice", "user/*.rs", kNow);
  ASSERT_TRUE(t1.ok());
  EXPECT_EQ(t1->size(), 43u);
  auto r1 = m.Rotate(*t1, kNow + 10);
  ASSERT_TRUE(r1.ok()) << r1.status().ToString();
  EXPECT_EQ(r1->record.subject, "alice");
  EXPECT_EQ(r1->record.scope, "user/*.rs");
  EXPECT_NE(r1->token, *t1);
  auto r2 = m.Rotate(r1->token, kNow + 20);
  ASSERT_TRUE(r2.ok());
  // Replaying the first token: rejected, and the whole family is revoked.
  auto replay = m.Rotate(*t1, kNow + 30);
  ASSERT_FALSE(replay.ok());
  EXPECT_EQ(replay.status().code(), StatusCode::kUnauthenticated);
  EXPECT_FALSE(m.Rotate(r2->token, kNow + 40).ok());
  // Only hashes are stored.
  auto t3 = m.Issue("bob", "", kNow);
  ASSERT_TRUE(t3.ok());
  EXPECT_EQ(store->size(), 1u);
  auto rec = store->MarkUsed(*t3);
  EXPECT_FALSE(rec.ok());  // the plaintext token is not a key
}

TEST(RefreshTokens, ExpiryAndFamilyLifetime) {
  auto store = std::make_shared<InMemoryRefreshTokenStore>();
  RefreshTokenManager::Options opt;
  opt.ttl = std::chrono::seconds(100);
  opt.max_family_lifetime = std::chrono::seconds(250);
  RefreshTokenManager m(store, opt);
  auto t = m.Issue("alice", "", kNow);
  ASSERT_TRUE(t.ok());
  EXPECT_FALSE(m.Rotate(*t, kNow + 100).ok());  // expired
  auto t2 = m.Issue("alice", "", kNow);
  ASSERT_TRUE(t2.ok());
  auto a = m.Rotate(*t2, kNow + 90);
  ASSERT_TRUE(a.ok());
  auto b = m.Rotate(a->token, kNow + 180);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->record.expires_at, kNow + 250);  // capped by the family
  EXPECT_FALSE(m.Rotate(b->token, kNow + 250).ok());
  store->Prune(kNow + 1000);
  EXPECT_EQ(store->size(), 0u);
}

TEST(RefreshTokens, MalformedAndRevoked) {
  auto store = std::make_shared<InMemoryRefreshTokenStore>();
  RefreshTokenManager m(store);
  for (std::string bad : {std::string(""), std::string(43, '='), std::string(44, 'A'), std::string("x")}) {
    EXPECT_FALSE(m.Rotate(bad, kNow).ok());
  }
  auto t = m.Issue("alice", "", kNow);
  ASSERT_TRUE(t.ok());
  store->RevokeSubject("alice");
  EXPECT_FALSE(m.Rotate(*t, kNow).ok());
  EXPECT_FALSE(m.Issue("", "", kNow).ok());
}

}  // namespace
}  // namespace phivault::auth
