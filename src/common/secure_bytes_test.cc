#include "common/secure_bytes.h"

#include <gtest/gtest.h>

#if defined(__SANITIZE_ADDRESS__)
#define PHIVAULT_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PHIVAULT_TEST_ASAN 1
#endif
#endif
#if defined(PHIVAULT_TEST_ASAN)
#include <sanitizer/asan_interface.h>
#endif

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

// Bytes of a slot the pool holds, which AddressSanitizer builds poison.
std::string PeekFreed(const uint8_t* p, size_t n) {
#if defined(PHIVAULT_TEST_ASAN)
  __asan_unpoison_memory_region(p, n);
#endif
  std::string out(reinterpret_cast<const char*>(p), n);
#if defined(PHIVAULT_TEST_ASAN)
  __asan_poison_memory_region(p, n);
#endif
  return out;
}

// Keys come from shared slabs: a freed key's slot is wiped at once (the
// slab stays mapped, so the test can look), and is the next one handed out.
TEST(SecureBytesTest, SmallSecretsAreWipedWhenFreedAndReused) {
  const uint8_t* where;
  {
    SecureBytes key = SecureBytes::Random(32);
    where = key.data();
    ASSERT_NE(key.view(), std::string(32, '\0'));
  }
  EXPECT_EQ(PeekFreed(where, 64), std::string(64, '\0'));
  SecureBytes next(32);
  EXPECT_EQ(next.data(), where) << "freed slots go back on the free list";
  const uint8_t* replaced = next.data();
  next = SecureBytes::From("replacement");
  EXPECT_EQ(PeekFreed(replaced, 64), std::string(64, '\0'));
}

// 64 bytes (an Ed25519 secret key) is the largest slot; 65 gets its own
// sodium_malloc. Releasing either the wrong way aborts (sodium_free checks
// its canary; the pool checks the slot is its own).
TEST(SecureBytesTest, SizesAroundTheSlotBoundary) {
  for (size_t n : {1u, 63u, 64u, 65u, 200u}) {
    SecureBytes a = SecureBytes::Random(n);
    SecureBytes b = a.Clone();
    EXPECT_TRUE(a.Equals(b)) << n;
    b.data()[n - 1] ^= 1;
    EXPECT_FALSE(a.Equals(b)) << n;
    SecureBytes moved = std::move(a);
    EXPECT_EQ(moved.size(), n);
  }
}

#if defined(PHIVAULT_TEST_ASAN)
// Every byte outside a live key is poisoned, so an overrun within a slab
// (which has guard pages only at its ends) is caught in sanitizer builds.
TEST(SecureBytesDeathTest, OverrunIntoTheRestOfTheSlotIsCaught) {
  EXPECT_DEATH(
      {
        SecureBytes key(32);
        volatile uint8_t past = key.data()[40];
        (void)past;
      },
      "use-after-poison");
}
#endif

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
