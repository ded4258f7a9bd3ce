#include "common/secure_bytes.h"

#include <gtest/gtest.h>

namespace phivault {
namespace {

TEST(SecureBytesTest, RandomKeysDifferAndCompareInConstantTimeApi) {
  SecureBytes a = SecureBytes::Random(32);
  SecureBytes b = SecureBytes::Random(32);
  ASSERT_EQ(a.size(), 32u);
  EXPECT_FALSE(a.Equals(b));
  SecureBytes c = a.Clone();
  EXPECT_TRUE(a.Equals(c));
  c.data()[31] ^= 1;
  EXPECT_FALSE(a.Equals(c));
}

TEST(SecureBytesTest, MoveLeavesSourceEmpty) {
  SecureBytes a = SecureBytes::From("0123456789abcdef");
  SecureBytes b = std::move(a);
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): checking the moved-from contract
  EXPECT_EQ(b.view(), "0123456789abcdef");
}

TEST(SecureBytesTest, ConstantTimeEqualsHandlesLengths) {
  EXPECT_TRUE(ConstantTimeEquals("", ""));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abcd"));
  EXPECT_TRUE(ConstantTimeEquals("abc", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abd"));
}

TEST(SecureBytesTest, WipeClearsBuffer) {
  char buf[8] = {'s', 'e', 'c', 'r', 'e', 't', '!', '!'};
  SecureWipe(buf, sizeof buf);
  for (char c : buf) EXPECT_EQ(c, 0);
}

}  // namespace
}  // namespace phivault
