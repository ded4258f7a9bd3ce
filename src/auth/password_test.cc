#include "auth/password.h"

#include <gtest/gtest.h>

namespace phivault::auth {
namespace {

PasswordHashParams Fast() {
  PasswordHashParams p;
  p.opslimit = 1;
  p.memlimit = 64 * 1024;
  return p;
}

TEST(PasswordPolicy, Rules) {
  EXPECT_TRUE(CheckPasswordPolicy("correct-Horse-battery", "alice").ok());
  EXPECT_TRUE(CheckPasswordPolicy("tr0ub4dor&3xyz", "alice").ok());
  struct Case {
    const char* pw;
    const char* user;
    const char* reason;
  } bad[] = {
      {"Short1!", "alice", "too short"},
      {"", "alice", "too short"},
      {"abcdefghijklmnop", "alice", "mix character classes"},
      {"ABCDEFGHIJKLMNOP", "alice", "mix character classes"},
      {"1234567890123456", "alice", "mix character classes"},
      {"Password1234", "alice", "too common"},
      {"QWERTY123456", "alice", "too common"},
      {"my-alice-password", "alice", "user name"},
      {"my-ALICE-password", "Alice", "user name"},
  };
  for (const auto& c : bad) {
    Status s = CheckPasswordPolicy(c.pw, c.user);
    ASSERT_FALSE(s.ok()) << c.pw;
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find(c.reason), std::string::npos) << s.message();
    if (std::string_view(c.pw).size() > 3) {
      EXPECT_EQ(s.message().find(c.pw), std::string::npos);
    }
  }
  // Short user names are not checked for containment.
  EXPECT_TRUE(CheckPasswordPolicy("al-is-a-fine-Name", "al").ok());
  // 12 code points, not 12 bytes: 11 multi-byte characters fail.
  EXPECT_TRUE(CheckPasswordPolicy("ééééééééééé1", "bob").ok());
  EXPECT_FALSE(CheckPasswordPolicy("éééééé1", "bob").ok());
  EXPECT_TRUE(CheckPasswordPolicy("éééééééééé1x", "bob").ok());
  EXPECT_FALSE(CheckPasswordPolicy(std::string(2000, 'a') + "B", "bob").ok());
}

TEST(Password, HashVerifyRehash) {
  auto h = HashPassword("correct-Horse-battery", Fast());
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  EXPECT_TRUE(h->starts_with("$argon2id$"));
  EXPECT_TRUE(VerifyPassword(*h, "correct-Horse-battery"));
  EXPECT_FALSE(VerifyPassword(*h, "correct-Horse-batterY"));
  EXPECT_FALSE(VerifyPassword(*h, ""));
  // Same password, different salt.
  auto h2 = HashPassword("correct-Horse-battery", Fast());
  ASSERT_TRUE(h2.ok());
  EXPECT_NE(*h, *h2);
  EXPECT_FALSE(PasswordNeedsRehash(*h, Fast()));
  PasswordHashParams stronger = Fast();
  stronger.opslimit = 2;
  EXPECT_TRUE(PasswordNeedsRehash(*h, stronger));
}

TEST(Password, MalformedHashesNeverVerify) {
  for (std::string bad : {std::string(""), std::string("$argon2i$v=19$m=64,t=1,p=1$c2FsdA$aGFzaA"),
                          std::string("$argon2id$"), std::string("$argon2id$v=19$m=64,t=1,p=1$$"),
                          std::string("$argon2id$") + std::string(500, 'x'), std::string("plain")}) {
    EXPECT_FALSE(VerifyPassword(bad, "x")) << bad;
    EXPECT_TRUE(PasswordNeedsRehash(bad, Fast())) << bad;
  }
  auto h = HashPassword("correct-Horse-battery", Fast());
  ASSERT_TRUE(h.ok());
  std::string with_nul = *h;
  with_nul.insert(10, 1, '\0');
  EXPECT_FALSE(VerifyPassword(with_nul, "correct-Horse-battery"));
}

TEST(Password, ParamsAndLengthLimits) {
  PasswordHashParams bad = Fast();
  bad.opslimit = 0;
  EXPECT_FALSE(HashPassword("x", bad).ok());
  EXPECT_FALSE(HashPassword(std::string(5000, 'a'), Fast()).ok());
  DummyVerifyPassword("whatever", Fast());
}

}  // namespace
}  // namespace phivault::auth
