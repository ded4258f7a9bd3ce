#include "auth/login_throttle.h"

#include <algorithm>

namespace phivault::auth {

using std::chrono::milliseconds;
using TimePoint = std::chrono::steady_clock::time_point;

LoginThrottle::LoginThrottle(ThrottleConfig config, Clock clock) : config_(config), clock_(std::move(clock)) {
  if (!clock_) clock_ = [] { return std::chrono::steady_clock::now(); };
  config_.lockout_threshold = std::max(config_.lockout_threshold, 1);
  config_.address_free_failures = std::max(config_.address_free_failures, 0);
  config_.max_entries = std::max<size_t>(config_.max_entries, 16);
}

milliseconds LoginThrottle::DelayFor(int failures) const {
  if (failures <= 0) return milliseconds(0);
  milliseconds d = config_.base_delay;
  for (int i = 1; i < failures && d < config_.max_delay; ++i) d *= 2;
  return std::min(d, config_.max_delay);
}

void LoginThrottle::Expire(Entry& e, TimePoint now, bool is_account) const {
  if (e.failures == 0) return;
  if (e.locked) {
    if (is_account && config_.lockout_duration.count() > 0 && now - e.last_failure >= config_.lockout_duration) {
      e = Entry{};
    }
    return;
  }
  if (now - e.last_failure >= config_.window) e = Entry{};
}

void LoginThrottle::Evict(std::unordered_map<std::string, Entry>& map, TimePoint now) {
  if (map.size() < config_.max_entries) return;
  // Drop quiet entries first; if still full, the oldest unlocked ones.
  std::erase_if(map, [&](const auto& kv) { return !kv.second.locked && now - kv.second.last_failure >= config_.window; });
  while (map.size() >= config_.max_entries) {
    auto oldest = map.end();
    for (auto it = map.begin(); it != map.end(); ++it) {
      if (it->second.locked) continue;
      if (oldest == map.end() || it->second.last_failure < oldest->second.last_failure) oldest = it;
    }
    if (oldest == map.end()) break;  // everything is locked: keep locks, grow
    map.erase(oldest);
  }
}

LoginThrottle::Decision LoginThrottle::Check(std::string_view account, std::string_view address) {
  std::lock_guard lock(mu_);
  TimePoint now = clock_();
  Decision d;
  auto wait = [&](const Entry& e, int failures) {
    if (failures <= 0) return;
    TimePoint next = e.last_failure + DelayFor(failures);
    if (next > now) {
      d.allowed = false;
      d.retry_after = std::max(d.retry_after, std::chrono::ceil<milliseconds>(next - now));
    }
  };
  if (auto it = accounts_.find(std::string(account)); it != accounts_.end()) {
    Expire(it->second, now, true);
    if (it->second.locked) {
      d.allowed = false;
      d.locked = true;
      if (config_.lockout_duration.count() > 0) {
        d.retry_after = std::chrono::ceil<milliseconds>(it->second.last_failure + config_.lockout_duration - now);
      }
      return d;
    }
    wait(it->second, it->second.failures);
  }
  if (auto it = addresses_.find(std::string(address)); it != addresses_.end()) {
    Expire(it->second, now, false);
    wait(it->second, it->second.failures - config_.address_free_failures);
  }
  return d;
}

void LoginThrottle::RecordFailure(std::string_view account, std::string_view address) {
  std::lock_guard lock(mu_);
  TimePoint now = clock_();
  auto bump = [&](std::unordered_map<std::string, Entry>& map, std::string_view key, bool is_account) {
    auto it = map.find(std::string(key));
    if (it == map.end()) {
      Evict(map, now);
      it = map.emplace(std::string(key), Entry{}).first;
    }
    Entry& e = it->second;
    Expire(e, now, is_account);
    if (e.failures < 1000000) ++e.failures;
    e.last_failure = now;
    if (is_account && e.failures >= config_.lockout_threshold) e.locked = true;
  };
  bump(accounts_, account, true);
  bump(addresses_, address, false);
}

void LoginThrottle::RecordSuccess(std::string_view account, std::string_view /*address*/) {
  std::lock_guard lock(mu_);
  auto it = accounts_.find(std::string(account));
  if (it != accounts_.end() && !it->second.locked) accounts_.erase(it);
}

void LoginThrottle::Unlock(std::string_view account) {
  std::lock_guard lock(mu_);
  accounts_.erase(std::string(account));
}

bool LoginThrottle::IsLocked(std::string_view account) {
  std::lock_guard lock(mu_);
  auto it = accounts_.find(std::string(account));
  if (it == accounts_.end()) return false;
  Expire(it->second, clock_(), true);
  return it->second.locked;
}

int LoginThrottle::AccountFailures(std::string_view account) {
  std::lock_guard lock(mu_);
  auto it = accounts_.find(std::string(account));
  if (it == accounts_.end()) return 0;
  Expire(it->second, clock_(), true);
  return it->second.failures;
}

}  // namespace phivault::auth
