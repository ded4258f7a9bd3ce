#include "common/secure_bytes.h"

#include <sodium.h>

#if defined(__SANITIZE_ADDRESS__)
#define PHIVAULT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PHIVAULT_ASAN 1
#endif
#endif
#if defined(PHIVAULT_ASAN)
#include <sanitizer/asan_interface.h>
#endif

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <utility>
#include <vector>

#include "common/log.h"

namespace phivault {
namespace {

void EnsureSodium() {
  static const bool ok = sodium_init() >= 0;
  if (!ok) {
    std::fputs("phivault: fatal: libsodium failed to initialise; cannot protect keys\n", stderr);
    std::abort();
  }
}

// Secrets of up to kSlotSize bytes (keys: 32; Ed25519 secret keys: 64) are
// slots of slabs of sodium_malloc memory instead of a sodium_malloc each.
// sodium_malloc maps, guards and locks at least three pages per call (about
// 12 us here) and sodium_free unmaps them (about 10 us, plus a TLB shootdown
// on every core running a thread of the process), so each patient-key cache
// miss cost about 50 us, and every key locked a whole page: only about 2,000
// fit the default 8 MiB RLIMIT_MEMLOCK. A slab is locked and guarded as a
// whole; slots are wiped when given back, and slabs are kept for reuse.
//
// The cost: guard pages surround a slab, not each slot, so an overrun of one
// key's buffer reads or writes its neighbours instead of faulting, and
// libsodium's canary (checked when a sodium_malloc block is freed) never
// runs. Keys are only written through SecureBytes, whose size is fixed, and
// in AddressSanitizer builds every byte outside a live key is poisoned, so
// the test suite catches such an overrun.
class SmallSecretPool {
 public:
  static constexpr size_t kSlotSize = 64;
  static constexpr size_t kSlotsPerSlab = 1024;  // 64 KiB
  static constexpr size_t kSlabBytes = kSlotSize * kSlotsPerSlab;

  // A slot whose first `size` bytes may be used (contents undefined), or
  // null if no guarded memory can be had.
  uint8_t* Take(size_t size) {
    std::lock_guard<std::mutex> lock(mu_);
    if (free_.empty() && !AddSlab()) return nullptr;
    uint8_t* slot = free_.back();
    free_.pop_back();
    Unpoison(slot, size);
    return slot;
  }

  // Wipes the whole slot and keeps it for the next Take(). Never allocates:
  // the free list has room for every slot of every slab.
  void Give(uint8_t* slot) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!Owns(slot)) {
      std::fputs("phivault: fatal: key memory released to the wrong allocator\n", stderr);
      std::abort();
    }
    Unpoison(slot, kSlotSize);
    sodium_memzero(slot, kSlotSize);
    Poison(slot, kSlotSize);
    free_.push_back(slot);
  }

 private:
  bool AddSlab() {
    try {
      free_.reserve(free_.capacity() + kSlotsPerSlab);
      slabs_.reserve(slabs_.size() + 1);
    } catch (const std::bad_alloc&) {
      return false;
    }
    auto* slab = static_cast<uint8_t*>(sodium_malloc(kSlabBytes));
    if (slab == nullptr) return false;
    // sodium_malloc ignores a failed mlock. A slab serves many keys for the
    // life of the process, so say so once rather than run quietly unlocked.
    if (sodium_mlock(slab, kSlabBytes) != 0 && !warned_unlocked_) {
      warned_unlocked_ = true;
      log::Warn("key_memory_unlocked", {{"reason", "mlock failed"},
                                        {"action", "raise RLIMIT_MEMLOCK (LimitMEMLOCK): keys may be written to swap"}});
    }
    slabs_.push_back(slab);
    Poison(slab, kSlabBytes);
    for (size_t i = kSlotsPerSlab; i-- > 0;) free_.push_back(slab + i * kSlotSize);
    return true;
  }
  bool Owns(const uint8_t* slot) const {
    for (const uint8_t* slab : slabs_) {
      if (slot >= slab && slot < slab + kSlabBytes) return (slot - slab) % kSlotSize == 0;
    }
    return false;
  }
  static void Poison(const uint8_t* p, size_t n) {
#if defined(PHIVAULT_ASAN)
    __asan_poison_memory_region(p, n);
#else
    (void)p;
    (void)n;
#endif
  }
  static void Unpoison(const uint8_t* p, size_t n) {
#if defined(PHIVAULT_ASAN)
    __asan_unpoison_memory_region(p, n);
#else
    (void)p;
    (void)n;
#endif
  }

  std::mutex mu_;
  std::vector<uint8_t*> free_;
  std::vector<uint8_t*> slabs_;
  bool warned_unlocked_ = false;
};

// Never destroyed: SecureBytes held by static objects may die after it.
SmallSecretPool& Pool() {
  static SmallSecretPool* pool = new SmallSecretPool();
  return *pool;
}

void Release(uint8_t* data, size_t size) {
  if (data == nullptr) return;
  if (size <= SmallSecretPool::kSlotSize) {
    Pool().Give(data);
  } else {
    sodium_free(data);  // sodium_free wipes before unmapping.
  }
}

}  // namespace

SecureBytes::SecureBytes(size_t size) : size_(size) {
  EnsureSodium();
  if (size == 0) return;
  data_ = size <= SmallSecretPool::kSlotSize ? Pool().Take(size) : static_cast<uint8_t*>(sodium_malloc(size));
  if (data_ == nullptr) {
    std::fputs("phivault: fatal: cannot allocate locked memory for key material (check ulimit -l)\n", stderr);
    std::abort();
  }
  sodium_memzero(data_, size);
}

SecureBytes SecureBytes::From(std::string_view bytes) {
  SecureBytes s(bytes.size());
  if (!bytes.empty()) std::memcpy(s.data_, bytes.data(), bytes.size());
  return s;
}

SecureBytes SecureBytes::Random(size_t size) {
  SecureBytes s(size);
  if (size) randombytes_buf(s.data_, size);
  return s;
}

SecureBytes::SecureBytes(SecureBytes&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

SecureBytes& SecureBytes::operator=(SecureBytes&& other) noexcept {
  if (this != &other) {
    Release(data_, size_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

SecureBytes::~SecureBytes() { Release(data_, size_); }

SecureBytes SecureBytes::Clone() const { return From(view()); }

bool SecureBytes::Equals(const SecureBytes& other) const { return ConstantTimeEquals(view(), other.view()); }

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  EnsureSodium();
  return sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

void SecureWipe(void* data, size_t size) {
  if (size) sodium_memzero(data, size);
}

}  // namespace phivault
