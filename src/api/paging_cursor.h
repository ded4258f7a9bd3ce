// PagingCursor: turns a paging position into the opaque `_cursor` of a
// `next`/`previous` link, and back.
//
// A position (a store sequence number, a keyset position holding sort-key
// values) says how much the vault has written and may hold health data, and
// an edited one would page from anywhere. So a cursor is the position sealed
// with AES-256-GCM under the keyring's search-cursor key, with the request
// it pages through as associated data: it cannot be read, forged, altered,
// or reused with other parameters or by another kind of paging (search,
// history and $everything bind different labels). Cursors survive a
// restart; without a keyring (tests, tools) a random key is used and they
// do not.
//
// Thread-safety: immutable after construction; safe from any thread.
// Lifetime: none beyond its own.
#ifndef PHIVAULT_API_PAGING_CURSOR_H_
#define PHIVAULT_API_PAGING_CURSOR_H_

#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"
#include "crypto/aead.h"
#include "crypto/keyring.h"

namespace phivault::api {

class PagingCursor {
 public:
  // `keyring` may be null (random key).
  explicit PagingCursor(const crypto::Keyring* keyring);

  // The URL-safe cursor for `position`. `bound_to` names the paging kind and
  // its request (e.g. "history\0Patient/p1\0_count=10").
  std::string Seal(std::string_view position, std::string_view bound_to) const;
  // The position sealed in `cursor`; InvalidArgument (one message for every
  // failure) if it was not made by Seal with the same `bound_to` and key.
  StatusOr<std::string> Open(std::string_view cursor, std::string_view bound_to) const;

 private:
  std::unique_ptr<crypto::Aead> key_;
};

}  // namespace phivault::api

#endif  // PHIVAULT_API_PAGING_CURSOR_H_
