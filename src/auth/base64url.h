// Strict base64url (RFC 4648 section 5) for JOSE: encoding without padding and
// a decoder that accepts only the canonical unpadded form.
//
// The decoder rejects '=' padding, any character outside [A-Za-z0-9-_]
// (including whitespace), a length of 1 mod 4 (no whole byte), and non-zero
// unused trailing bits, so every byte string has exactly one accepted
// encoding. That keeps signatures and cache keys from being malleable.
//
// Thread-safety: pure functions, safe from any thread. Lifetime: results own
// their memory. Never throws except std::bad_alloc on exhaustion.
#ifndef PHIVAULT_AUTH_BASE64URL_H_
#define PHIVAULT_AUTH_BASE64URL_H_

#include <string>
#include <string_view>

#include "common/status.h"

namespace phivault::auth {

// Unpadded base64url of `bytes`.
std::string Base64UrlEncode(std::string_view bytes);

// Decodes canonical unpadded base64url. InvalidArgument (message never echoes
// input) on any deviation described above. The empty string decodes to "".
StatusOr<std::string> Base64UrlDecode(std::string_view text);

// True if every character of `text` is in the base64url alphabet.
bool IsBase64UrlAlphabet(std::string_view text);

}  // namespace phivault::auth

#endif  // PHIVAULT_AUTH_BASE64URL_H_
