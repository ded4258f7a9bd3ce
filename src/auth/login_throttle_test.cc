#include "auth/login_throttle.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace phivault::auth {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

struct FakeClock {
  std::chrono::steady_clock::time_point now{std::chrono::hours(1000)};
  LoginThrottle::Clock fn() {
    return [this] { return now; };
  }
};

TEST(LoginThrottle, ExponentialBackoffPerAccount) {
  FakeClock clock;
  LoginThrottle t({}, clock.fn());
  EXPECT_TRUE(t.Check("alice", "10.0.0.1").allowed);
  t.RecordFailure("alice", "10.0.0.1");
  auto d = t.Check("alice", "10.0.0.2");
  EXPECT_FALSE(d.allowed);
  EXPECT_FALSE(d.locked);
  EXPECT_EQ(d.retry_after, milliseconds(1000));
  clock.now += milliseconds(1000);
  EXPECT_TRUE(t.Check("alice", "10.0.0.2").allowed);
  t.RecordFailure("alice", "10.0.0.2");
  EXPECT_EQ(t.Check("alice", "10.0.0.3").retry_after, milliseconds(2000));
  clock.now += seconds(2);
  t.RecordFailure("alice", "10.0.0.3");
  EXPECT_EQ(t.Check("alice", "10.0.0.4").retry_after, milliseconds(4000));
  // Other accounts are unaffected.
  EXPECT_TRUE(t.Check("bob", "10.0.0.9").allowed);
  // Success clears the account.
  clock.now += seconds(4);
  t.RecordSuccess("alice", "10.0.0.4");
  EXPECT_EQ(t.AccountFailures("alice"), 0);
  EXPECT_TRUE(t.Check("alice", "10.0.0.5").allowed);
}

TEST(LoginThrottle, LocksAfterThresholdUntilUnlocked) {
  FakeClock clock;
  LoginThrottle t({}, clock.fn());
  for (int i = 0; i < 5; ++i) {
    clock.now += seconds(60);
    t.RecordFailure("alice", "10.0.0." + std::to_string(i));
  }
  EXPECT_TRUE(t.IsLocked("alice"));
  auto d = t.Check("alice", "192.168.1.1");
  EXPECT_FALSE(d.allowed);
  EXPECT_TRUE(d.locked);
  // A success (e.g. a racing correct password) does not unlock; time does not either.
  t.RecordSuccess("alice", "192.168.1.1");
  clock.now += std::chrono::hours(24 * 30);
  EXPECT_TRUE(t.IsLocked("alice"));
  t.Unlock("alice");
  EXPECT_FALSE(t.IsLocked("alice"));
  EXPECT_TRUE(t.Check("alice", "192.168.1.1").allowed);
}

TEST(LoginThrottle, WindowForgetsOldFailures) {
  FakeClock clock;
  LoginThrottle t({}, clock.fn());
  for (int i = 0; i < 4; ++i) {
    clock.now += seconds(30);
    t.RecordFailure("alice", "a");
  }
  clock.now += seconds(15 * 60);
  t.RecordFailure("alice", "a");
  EXPECT_FALSE(t.IsLocked("alice"));
  EXPECT_EQ(t.AccountFailures("alice"), 1);
}

TEST(LoginThrottle, TimedLockout) {
  FakeClock clock;
  ThrottleConfig cfg;
  cfg.lockout_threshold = 2;
  cfg.lockout_duration = seconds(600);
  LoginThrottle t(cfg, clock.fn());
  t.RecordFailure("alice", "a");
  t.RecordFailure("alice", "a");
  auto d = t.Check("alice", "b");
  EXPECT_TRUE(d.locked);
  EXPECT_EQ(d.retry_after, milliseconds(600000));
  clock.now += seconds(600);
  EXPECT_FALSE(t.IsLocked("alice"));
}

TEST(LoginThrottle, PerAddressBackoffAcrossAccounts) {
  FakeClock clock;
  ThrottleConfig cfg;
  cfg.address_free_failures = 3;
  LoginThrottle t(cfg, clock.fn());
  // One address guessing at many accounts: no account is locked, but the address slows down.
  for (int i = 0; i < 3; ++i) t.RecordFailure("user" + std::to_string(i), "6.6.6.6");
  EXPECT_TRUE(t.Check("fresh", "6.6.6.6").allowed);
  t.RecordFailure("user3", "6.6.6.6");
  auto d = t.Check("fresh", "6.6.6.6");
  EXPECT_FALSE(d.allowed);
  EXPECT_FALSE(d.locked);
  EXPECT_EQ(d.retry_after, milliseconds(1000));
  for (int i = 0; i < 30; ++i) t.RecordFailure("u" + std::to_string(i), "6.6.6.6");
  EXPECT_EQ(t.Check("fresh", "6.6.6.6").retry_after, cfg.max_delay);
  EXPECT_TRUE(t.Check("fresh", "7.7.7.7").allowed);
  EXPECT_FALSE(t.IsLocked("fresh"));
}

TEST(LoginThrottle, BoundedMemory) {
  FakeClock clock;
  ThrottleConfig cfg;
  cfg.max_entries = 100;
  LoginThrottle t(cfg, clock.fn());
  for (int i = 0; i < 5000; ++i) {
    clock.now += milliseconds(1);
    t.RecordFailure("acct" + std::to_string(i), "addr" + std::to_string(i));
  }
  EXPECT_EQ(t.AccountFailures("acct0"), 0);  // evicted
  EXPECT_EQ(t.AccountFailures("acct4999"), 1);
}

TEST(LoginThrottle, ThreadSafe) {
  LoginThrottle t;
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&t, i] {
      for (int j = 0; j < 500; ++j) {
        (void)t.Check("acct", "addr" + std::to_string(i));
        t.RecordFailure("acct" + std::to_string(j % 7), "addr" + std::to_string(i));
        if (j % 50 == 0) t.Unlock("acct3");
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_TRUE(t.IsLocked("acct0"));
}

}  // namespace
}  // namespace phivault::auth
