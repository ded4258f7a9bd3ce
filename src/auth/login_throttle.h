// Brute-force protection for password logins: exponential backoff per account
// and per source address, and an account lockout after repeated failures.
//
// Per account: each failure within `window` of the previous one counts; after
// n failures the next attempt is allowed only after base_delay * 2^(n-1)
// (capped at max_delay); at lockout_threshold failures the account is locked
// until Unlock() (or lockout_duration, if non-zero). A success clears the
// account's count. Per address: the same backoff, starting after
// address_free_failures failures (several people may share an address), up
// to max_delay, and never a lock (an address cannot lock other accounts). Entries that
// have been quiet for `window` are forgotten; at most max_entries addresses
// and accounts are tracked (the oldest are evicted first).
//
// The caller should run the same sequence for unknown user names (Check,
// DummyVerifyPassword, RecordFailure) so unknown and known names look alike.
//
// Thread-safety: every method is thread-safe (one mutex). Lifetime: the clock
// is copied and must stay callable for the throttle's lifetime. No method
// throws except std::bad_alloc.
#ifndef PHIVAULT_AUTH_LOGIN_THROTTLE_H_
#define PHIVAULT_AUTH_LOGIN_THROTTLE_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace phivault::auth {

struct ThrottleConfig {
  int lockout_threshold = 5;  // account failures within the window that lock it
  int address_free_failures = 5;  // failures from one address before its backoff starts
  std::chrono::seconds window{15 * 60};
  std::chrono::milliseconds base_delay{1000};
  std::chrono::milliseconds max_delay{5 * 60 * 1000};
  std::chrono::seconds lockout_duration{0};  // 0: locked until Unlock()
  size_t max_entries = 100000;
};

class LoginThrottle {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;

  struct Decision {
    bool allowed = true;
    bool locked = false;  // the account is locked (allowed is false)
    std::chrono::milliseconds retry_after{0};
  };

  // REQUIRES: clock, if given, is monotonic. Defaults to steady_clock::now.
  explicit LoginThrottle(ThrottleConfig config = {}, Clock clock = {});

  // Whether an attempt for `account` from `address` may proceed now.
  Decision Check(std::string_view account, std::string_view address);
  void RecordFailure(std::string_view account, std::string_view address);
  // Clears the account's failures (not the address's: one success from an
  // address that guessed at many accounts does not excuse it).
  void RecordSuccess(std::string_view account, std::string_view address);
  void Unlock(std::string_view account);
  bool IsLocked(std::string_view account);
  int AccountFailures(std::string_view account);

 private:
  struct Entry {
    int failures = 0;
    std::chrono::steady_clock::time_point last_failure{};
    bool locked = false;
  };
  std::chrono::milliseconds DelayFor(int failures) const;
  void Expire(Entry& e, std::chrono::steady_clock::time_point now, bool is_account) const;
  void Evict(std::unordered_map<std::string, Entry>& map, std::chrono::steady_clock::time_point now);

  ThrottleConfig config_;
  Clock clock_;
  std::mutex mu_;
  std::unordered_map<std::string, Entry> accounts_;
  std::unordered_map<std::string, Entry> addresses_;
};

}  // namespace phivault::auth

#endif  // PHIVAULT_AUTH_LOGIN_THROTTLE_H_
