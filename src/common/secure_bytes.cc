#include "common/secure_bytes.h"

#include <sodium.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <utility>
#include <vector>

namespace phivault {
namespace {

void EnsureSodium() {
  static const bool ok = sodium_init() >= 0;
  if (!ok) {
    std::fputs("phivault: fatal: libsodium failed to initialise; cannot protect keys\n", stderr);
    std::abort();
  }
}

// Secrets of up to kSlotSize bytes (every key is 32) are slots of slabs of
// sodium_malloc memory instead of a sodium_malloc each. sodium_malloc maps,
// guards and locks at least three pages per call (about 12 us here) and
// sodium_free unmaps them (about 10 us, plus a TLB shootdown on every core
// running a thread of the process), so each patient-key cache miss cost
// about 50 us, and every key locked a whole page: only about 2,000 fit the
// default 8 MiB RLIMIT_MEMLOCK. A slab is locked and guarded as a whole;
// slots are wiped when given back, and slabs are kept for reuse.
//
// The cost: guard pages surround a slab, not each slot, so an overrun of
// one key's buffer reaches its neighbours instead of faulting. Keys are
// written only through SecureBytes, whose size is fixed at construction.
class SmallSecretPool {
 public:
  static constexpr size_t kSlotSize = 64;
  static constexpr size_t kSlotsPerSlab = 1024;  // 64 KiB

  // A slot (contents undefined), or null if no guarded memory can be had.
  uint8_t* Take() {
    std::lock_guard<std::mutex> lock(mu_);
    if (free_.empty()) {
      auto* slab = static_cast<uint8_t*>(sodium_malloc(kSlotSize * kSlotsPerSlab));
      if (slab == nullptr) return nullptr;
      free_.reserve(free_.capacity() + kSlotsPerSlab);
      for (size_t i = kSlotsPerSlab; i-- > 0;) free_.push_back(slab + i * kSlotSize);
    }
    uint8_t* slot = free_.back();
    free_.pop_back();
    return slot;
  }

  // Wipes the whole slot and keeps it for the next Take().
  void Give(uint8_t* slot) {
    sodium_memzero(slot, kSlotSize);
    std::lock_guard<std::mutex> lock(mu_);
    free_.push_back(slot);  // never allocates: capacity covers every slot of every slab
  }

 private:
  std::mutex mu_;
  std::vector<uint8_t*> free_;
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
  data_ = size <= SmallSecretPool::kSlotSize ? Pool().Take() : static_cast<uint8_t*>(sodium_malloc(size));
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
