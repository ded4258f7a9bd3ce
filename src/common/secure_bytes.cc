#include "common/secure_bytes.h"

#include <sodium.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

namespace phivault {
namespace {

void EnsureSodium() {
  static const bool ok = sodium_init() >= 0;
  if (!ok) {
    std::fputs("phivault: fatal: libsodium failed to initialise; cannot protect keys\n", stderr);
    std::abort();
  }
}

}  // namespace

SecureBytes::SecureBytes(size_t size) : size_(size) {
  EnsureSodium();
  if (size == 0) return;
  data_ = static_cast<uint8_t*>(sodium_malloc(size));
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
    if (data_) sodium_free(data_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

SecureBytes::~SecureBytes() {
  if (data_) sodium_free(data_);  // sodium_free wipes before unmapping.
}

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
