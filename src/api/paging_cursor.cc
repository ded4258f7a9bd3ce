#include "api/paging_cursor.h"

#include <cstdlib>

#include "auth/base64url.h"
#include "common/log.h"

namespace phivault::api {

PagingCursor::PagingCursor(const crypto::Keyring* keyring) {
  SecureBytes key = keyring ? keyring->Key(crypto::KeyPurpose::kSearchCursor).Clone()
                            : SecureBytes::Random(crypto::Aead::kKeySize);
  auto aead = crypto::Aead::New(key);
  if (!aead.ok()) {
    // A 32-byte key cannot be refused; reaching this is a build defect.
    log::Error("paging_cursor.key_refused", {{"error", aead.status().message()}, {"action", "report this defect"}});
    std::abort();
  }
  key_ = std::move(*aead);
}

std::string PagingCursor::Seal(std::string_view position, std::string_view bound_to) const {
  return auth::Base64UrlEncode(key_->Seal(position, bound_to));
}

StatusOr<std::string> PagingCursor::Open(std::string_view cursor, std::string_view bound_to) const {
  auto sealed = auth::Base64UrlDecode(cursor);
  StatusOr<std::string> plain = sealed.ok() ? key_->Open(*sealed, bound_to) : sealed.status();
  if (!plain.ok()) return InvalidArgument("invalid paging cursor (it must be used with the parameters it came with)");
  return plain;
}

}  // namespace phivault::api
