// SecureBytes: a fixed-size buffer for key material.
//
// The bytes live in libsodium guarded memory (sodium_malloc): locked so they
// are never swapped, behind guard pages, and wiped (sodium_memzero) when the
// object dies. Buffers of up to 64 bytes (keys) share slabs of such memory,
// guarded per slab, because a sodium_malloc per key costs about 12 us and a
// locked page; larger ones get their own. Move-only so a key is never
// silently duplicated. Equality is constant-time.
//
// Thread-safety: like a std::string, const access from many threads is safe.
// Lifetime: owns its memory; moved-from objects are empty.
#ifndef PHIVAULT_COMMON_SECURE_BYTES_H_
#define PHIVAULT_COMMON_SECURE_BYTES_H_

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace phivault {

class SecureBytes {
 public:
  SecureBytes() = default;
  // Allocates `size` zeroed bytes. Aborts if guarded memory cannot be had:
  // running with keys in swappable memory is worse than not running.
  explicit SecureBytes(size_t size);
  // Copies `bytes` into guarded memory. The caller wipes its own copy.
  static SecureBytes From(std::string_view bytes);
  // `size` bytes from the OS CSPRNG.
  static SecureBytes Random(size_t size);

  SecureBytes(SecureBytes&& other) noexcept;
  SecureBytes& operator=(SecureBytes&& other) noexcept;
  SecureBytes(const SecureBytes&) = delete;
  SecureBytes& operator=(const SecureBytes&) = delete;
  ~SecureBytes();

  // An explicit copy, for the rare case a key must exist twice.
  SecureBytes Clone() const;

  uint8_t* data() { return data_; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  std::string_view view() const { return {reinterpret_cast<const char*>(data_), size_}; }

  // Constant-time comparison; sizes are not secret.
  bool Equals(const SecureBytes& other) const;

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Constant-time comparison of two byte strings of public length.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

// Wipes a buffer the compiler might otherwise optimise the clearing of away.
void SecureWipe(void* data, size_t size);

}  // namespace phivault

#endif  // PHIVAULT_COMMON_SECURE_BYTES_H_
