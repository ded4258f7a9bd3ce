// PatientKeyCache: the unwrapped patient data keys a store keeps in memory,
// most recently used first, at most `capacity` of them.
//
// Each key holds its bytes in locked memory and its expanded AES schedule in
// cipher contexts, so the cache is bounded by the patients in recent use,
// not by every patient the process has ever touched. An evicted key is
// unwrapped again from the database when next needed; callers that still
// hold it keep it alive until they let go.
//
// Thread-safety: all methods are safe to call concurrently.
#ifndef PHIVAULT_STORE_PATIENT_KEY_CACHE_H_
#define PHIVAULT_STORE_PATIENT_KEY_CACHE_H_

#include <algorithm>
#include <cstddef>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>

#include "crypto/aead.h"

namespace phivault::store {

class PatientKeyCache {
 public:
  // A capacity of 0 is taken as 1.
  explicit PatientKeyCache(size_t capacity) : capacity_(std::max<size_t>(capacity, 1)) {}

  // The key, now the most recently used; null if not cached.
  std::shared_ptr<const crypto::Aead> Get(const std::string& owner) {
    std::lock_guard lk(mu_);
    auto it = map_.find(owner);
    if (it == map_.end()) return nullptr;
    order_.splice(order_.begin(), order_, it->second.second);
    return it->second.first;
  }

  // Caches `key` as the most recently used, evicting the least recently
  // used beyond capacity. If `owner` is cached already, the cached key stays
  // (it is the same wrapped key unwrapped twice) and becomes most recent.
  void Put(const std::string& owner, std::shared_ptr<const crypto::Aead> key) {
    std::shared_ptr<const crypto::Aead> evicted;  // released after the lock: wiping takes time
    std::lock_guard lk(mu_);
    if (auto it = map_.find(owner); it != map_.end()) {
      order_.splice(order_.begin(), order_, it->second.second);
      return;
    }
    order_.push_front(owner);
    map_.emplace(owner, std::make_pair(std::move(key), order_.begin()));
    if (map_.size() > capacity_) {
      auto last = map_.find(order_.back());
      evicted = std::move(last->second.first);
      map_.erase(last);
      order_.pop_back();
    }
  }

  size_t size() {
    std::lock_guard lk(mu_);
    return map_.size();
  }

 private:
  using Order = std::list<std::string>;
  const size_t capacity_;
  std::mutex mu_;
  Order order_;  // guarded by mu_: most recent first
  std::unordered_map<std::string, std::pair<std::shared_ptr<const crypto::Aead>, Order::iterator>>
      map_;  // guarded by mu_
};

}  // namespace phivault::store

#endif  // PHIVAULT_STORE_PATIENT_KEY_CACHE_H_
