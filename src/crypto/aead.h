// Aead: AES-256-GCM authenticated encryption with nonces chosen internally.
//
// Callers never pick a nonce. Each instance starts from a random 96-bit value
// and increments it atomically for every seal, so nonces never repeat within a
// process and collide across processes only with negligible probability
// (unlike purely random nonces, whose 2^32-message limit a busy vault reaches).
//
// Sealed form: nonce (12) || ciphertext || tag (16). `aad` binds context (what
// record, which page) so a ciphertext moved elsewhere fails to open.
//
// Thread-safety: all methods are const and safe to call concurrently.
// Lifetime: holds a copy of the key in locked memory, and its expanded key
// schedule in up to four reusable cipher contexts (ordinary heap, as
// OpenSSL allocates them); all are wiped on destruction. Keep instances
// only as long as the key is in use (see the store's bounded key cache).
#ifndef PHIVAULT_CRYPTO_AEAD_H_
#define PHIVAULT_CRYPTO_AEAD_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/secure_bytes.h"
#include "common/status.h"

namespace phivault::crypto {

class Aead {
 public:
  static constexpr size_t kKeySize = 32;
  static constexpr size_t kNonceSize = 12;
  static constexpr size_t kTagSize = 16;
  static constexpr size_t kOverhead = kNonceSize + kTagSize;

  // REQUIRES: key.size() == kKeySize, else InvalidArgument.
  static StatusOr<std::unique_ptr<Aead>> New(const SecureBytes& key);
  virtual ~Aead() = default;

  // Returns nonce || ciphertext || tag.
  virtual std::string Seal(std::string_view plaintext, std::string_view aad) const = 0;
  // DataLoss if the input was modified, truncated, or sealed with other aad/key.
  virtual StatusOr<std::string> Open(std::string_view sealed, std::string_view aad) const = 0;

  // Detached forms for fixed layouts such as database pages: `data` is
  // encrypted in place and `trailer` receives nonce || tag (kOverhead bytes).
  virtual Status SealInPlace(uint8_t* data, size_t len, std::string_view aad, uint8_t* trailer) const = 0;
  // On failure `data` is left in an unspecified state; callers must discard it.
  virtual Status OpenInPlace(uint8_t* data, size_t len, std::string_view aad, const uint8_t* trailer) const = 0;
};

// HKDF-SHA256(ikm, info) -> `size` bytes, no salt (RFC 5869: HashLen zeros).
// Used to derive purpose-bound keys. `ikm` must be non-empty and `size` at
// most 255 * 32; breaking either is a programming error and aborts.
SecureBytes DeriveKey(const SecureBytes& ikm, std::string_view info, size_t size = 32);
// The same with an explicit salt (full RFC 5869 form; also used to check the
// implementation against the RFC's test vectors).
SecureBytes DeriveKeyWithSalt(const SecureBytes& ikm, std::string_view salt, std::string_view info, size_t size = 32);

}  // namespace phivault::crypto

#endif  // PHIVAULT_CRYPTO_AEAD_H_
