#include "auth/totp.h"

#include <gtest/gtest.h>

#include "auth/base64url.h"

namespace phivault::auth {
namespace {

SecureBytes RfcSeed() { return SecureBytes::From("12345678901234567890"); }

TEST(Totp, Rfc6238AppendixBSha1Vectors) {
  struct V {
    int64_t t;
    const char* code;
  } vectors[] = {{59, "94287082"},         {1111111109, "07081804"}, {1111111111, "14050471"},
                 {1234567890, "89005924"}, {2000000000, "69279037"}, {20000000000, "65353130"}};
  TotpParams p;
  p.digits = 8;
  SecureBytes seed = RfcSeed();
  for (const auto& v : vectors) {
    EXPECT_EQ(TotpCode(seed, v.t, p), v.code) << v.t;
    auto step = VerifyTotp(seed, v.code, v.t, p);
    ASSERT_TRUE(step) << v.t;
    EXPECT_EQ(*step, v.t / 30);
  }
}

TEST(Totp, Rfc4226HotpVectors) {
  const char* expected[] = {"755224", "287082", "359152", "969429", "338314",
                            "254676", "287922", "162583", "399871", "520489"};
  SecureBytes seed = RfcSeed();
  for (uint64_t i = 0; i < 10; ++i) EXPECT_EQ(HotpCode(seed, i, 6), expected[i]);
}

TEST(Totp, WindowAndFormat) {
  SecureBytes s = GenerateTotpSecret();
  EXPECT_EQ(s.size(), 20u);
  const int64_t now = 1700000015;  // step 56666667, 15 s in
  std::string prev = TotpCode(s, now - 30), cur = TotpCode(s, now), next = TotpCode(s, now + 30);
  EXPECT_EQ(cur.size(), 6u);
  EXPECT_TRUE(VerifyTotp(s, cur, now));
  EXPECT_TRUE(VerifyTotp(s, prev, now));
  EXPECT_TRUE(VerifyTotp(s, next, now));
  std::string old = TotpCode(s, now - 60);
  if (old != prev && old != cur && old != next) {
    EXPECT_FALSE(VerifyTotp(s, old, now));
  }
  TotpParams strict;
  strict.window = 0;
  if (prev != cur) {
    EXPECT_FALSE(VerifyTotp(s, prev, now, strict));
  }
  EXPECT_FALSE(VerifyTotp(s, cur + "0", now));
  EXPECT_FALSE(VerifyTotp(s, cur.substr(1), now));
  EXPECT_FALSE(VerifyTotp(s, " " + cur.substr(1), now));
  EXPECT_FALSE(VerifyTotp(s, "", now));
  EXPECT_FALSE(VerifyTotp(SecureBytes(), cur, now));
  TotpParams bad;
  bad.digits = 12;
  EXPECT_FALSE(VerifyTotp(s, cur, now, bad));
}

TEST(Totp, Base32) {
  EXPECT_EQ(Base32Encode(""), "");
  EXPECT_EQ(Base32Encode("f"), "MY");
  EXPECT_EQ(Base32Encode("fo"), "MZXQ");
  EXPECT_EQ(Base32Encode("foo"), "MZXW6");
  EXPECT_EQ(Base32Encode("foob"), "MZXW6YQ");
  EXPECT_EQ(Base32Encode("fooba"), "MZXW6YTB");
  EXPECT_EQ(Base32Encode("foobar"), "MZXW6YTBOI");
  EXPECT_EQ(Base32Encode("12345678901234567890"), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
  auto d = Base32Decode("mzxw 6ytb oi======");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->view(), "foobar");
  EXPECT_FALSE(Base32Decode("MZXW6YTB1").ok());  // '1' is not base32
  EXPECT_FALSE(Base32Decode("M").ok());          // bad length
  EXPECT_FALSE(Base32Decode("MZ").ok());         // non-zero trailing bits
  EXPECT_FALSE(Base32Decode("MY=A").ok());       // data after padding
  SecureBytes r = GenerateTotpSecret(32);
  auto rt = Base32Decode(Base32Encode(r.view()));
  ASSERT_TRUE(rt.ok());
  EXPECT_TRUE(rt->Equals(r));
}

TEST(Totp, OtpauthUri) {
  SecureBytes seed = RfcSeed();
  EXPECT_EQ(OtpauthUri("alice smith@example", seed),
            "otpauth://totp/phivault:alice%20smith%40example?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
            "&issuer=phivault&algorithm=SHA1&digits=6&period=30");
}

TEST(Totp, ReplayGuard) {
  TotpReplayGuard guard;
  SecureBytes s = GenerateTotpSecret();
  const int64_t now = 1700000015;
  std::string code = TotpCode(s, now);
  EXPECT_TRUE(VerifyTotpOnce(guard, "alice", s, code, now));
  EXPECT_FALSE(VerifyTotpOnce(guard, "alice", s, code, now));       // replay
  EXPECT_FALSE(VerifyTotpOnce(guard, "alice", s, code, now + 20));  // same step, still a replay
  std::string prev = TotpCode(s, now - 30);
  EXPECT_FALSE(VerifyTotpOnce(guard, "alice", s, prev, now));       // older step
  EXPECT_TRUE(VerifyTotpOnce(guard, "bob", s, code, now));          // per user
  EXPECT_TRUE(VerifyTotpOnce(guard, "alice", s, TotpCode(s, now + 30), now + 30));
  EXPECT_EQ(guard.last_step("alice"), TotpStep(now + 30, 30));
  guard.Prune(TotpStep(now + 30, 30));
  EXPECT_FALSE(guard.last_step("bob"));
  EXPECT_TRUE(guard.last_step("alice"));
}

}  // namespace
}  // namespace phivault::auth
