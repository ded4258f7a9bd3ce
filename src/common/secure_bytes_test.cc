#include "common/secure_bytes.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

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

// Keys come from shared slabs: a freed key's slot is wiped at once (the
// slab stays mapped, so the test can look), and live keys never share bytes.
TEST(SecureBytesTest, SmallSecretsAreWipedWhenFreed) {
  const uint8_t* where;
  {
    SecureBytes key = SecureBytes::Random(32);
    where = key.data();
    bool any = false;
    for (size_t i = 0; i < 32; ++i) any |= key.data()[i] != 0;
    ASSERT_TRUE(any);
  }
  for (size_t i = 0; i < 64; ++i) EXPECT_EQ(where[i], 0) << i;
  SecureBytes moved_over = SecureBytes::Random(32);
  where = moved_over.data();
  moved_over = SecureBytes::From("replacement");
  for (size_t i = 0; i < 32; ++i) EXPECT_EQ(where[i], 0) << i;
}

TEST(SecureBytesTest, ManySmallSecretsStayApartAcrossSlabs) {
  std::vector<SecureBytes> keys;
  for (int i = 0; i < 3000; ++i) {  // about three slabs
    keys.emplace_back(32);
    std::memset(keys.back().data(), i & 0xff, 32);
    keys.back().data()[0] = static_cast<uint8_t>(i >> 8);
  }
  keys.erase(keys.begin() + 100, keys.begin() + 900);  // slots go back and are reused
  for (int i = 0; i < 800; ++i) {
    keys.emplace_back(16);
    EXPECT_EQ(keys.back().view(), std::string(16, '\0')) << "a reused slot starts zeroed";
    std::memset(keys.back().data(), 0xee, 16);
  }
  std::vector<const uint8_t*> starts;
  for (const SecureBytes& k : keys) starts.push_back(k.data());
  std::sort(starts.begin(), starts.end());
  for (size_t i = 1; i < starts.size(); ++i) ASSERT_GE(starts[i] - starts[i - 1], 32) << "overlapping keys";
  for (int i = 0; i < 2200; ++i) {
    const int n = i < 100 ? i : i + 800;
    const SecureBytes& k = keys[static_cast<size_t>(i)];
    EXPECT_EQ(k.data()[0], static_cast<uint8_t>(n >> 8));
    for (size_t b = 1; b < 32; ++b) ASSERT_EQ(k.data()[b], n & 0xff) << n;
  }
}

TEST(SecureBytesTest, LargeSecretsAndConcurrentUse) {
  SecureBytes big = SecureBytes::From(std::string(200, 'k'));
  EXPECT_TRUE(big.Equals(big.Clone()));
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t] {
      for (int i = 0; i < 2000; ++i) {
        SecureBytes a(32), b(100);
        std::memset(a.data(), t, 32);
        std::memset(b.data(), t, 100);
        SecureBytes c = std::move(a);
        if (c.data()[31] != t || b.data()[99] != t) std::abort();
      }
    });
  }
  for (auto& th : threads) th.join();
}

TEST(SecureBytesTest, WipeClearsBuffer) {
  char buf[8] = {'s', 'e', 'c', 'r', 'e', 't', '!', '!'};
  SecureWipe(buf, sizeof buf);
  for (char c : buf) EXPECT_EQ(c, 0);
}

}  // namespace
}  // namespace phivault
