#include "auth/password.h"

#include <sodium.h>

#include <array>
#include <cstdlib>
#include <mutex>
#include <string>

#include "common/secure_bytes.h"

namespace phivault::auth {
namespace {

// A short list of the most common passwords of 12+ characters (shorter ones
// fail the length rule anyway), compared lower-cased.
constexpr std::array<std::string_view, 40> kCommonPasswords = {
    "123456789012", "1234567890123", "12345678910111", "qwertyuiop12", "qwertyuiopasdf", "password1234",
    "password12345", "password123!", "passw0rd1234", "p@ssw0rd1234", "p@ssword1234", "iloveyou1234",
    "welcome12345", "welcome123456", "letmein12345", "administrator", "administrator1", "admin1234567",
    "qwerty123456", "1q2w3e4r5t6y", "1qaz2wsx3edc", "zaq12wsxcde3", "abc123456789", "abcdefghijkl",
    "abcd12345678", "football1234", "baseball1234", "sunshine1234", "princess1234", "trustno1trustno1",
    "changeme1234", "changeme123!", "qwertyqwerty", "asdfghjkl123", "monkey123456", "dragon123456",
    "superman1234", "11111111111a", "aaaaaaaaaaa1", "phivault1234"};

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// Wipes a std::string holding secret text when it goes out of scope.
struct WipeOnExit {
  std::string& s;
  ~WipeOnExit() { SecureWipe(s.data(), s.size()); }
};

void EnsureSodium() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (sodium_init() < 0) std::abort();  // as SecureBytes does: no safe way on without it
  });
}

}  // namespace

Status CheckPasswordPolicy(std::string_view password, std::string_view username, const PasswordPolicy& policy) {
  if (password.size() > policy.max_bytes) return InvalidArgument("password is too long");
  size_t chars = 0;
  bool lower = false, upper = false, digit = false, other = false;
  for (char ch : password) {
    unsigned char c = static_cast<unsigned char>(ch);
    if ((c & 0xc0) != 0x80) ++chars;  // count UTF-8 lead bytes only
    if (c >= 'a' && c <= 'z') {
      lower = true;
    } else if (c >= 'A' && c <= 'Z') {
      upper = true;
    } else if (c >= '0' && c <= '9') {
      digit = true;
    } else {
      other = true;
    }
  }
  if (chars < policy.min_chars) {
    return InvalidArgument("password is too short: at least " + std::to_string(policy.min_chars) + " characters");
  }
  int classes = int{lower} + int{upper} + int{digit} + int{other};
  if (classes < policy.min_classes) {
    return InvalidArgument("password must mix character classes (lower case, upper case, digits, symbols)");
  }
  std::string lowered = Lower(password);
  WipeOnExit wipe{lowered};
  for (std::string_view common : kCommonPasswords) {
    if (lowered == common) return InvalidArgument("password is too common");
  }
  if (username.size() >= 3 && lowered.find(Lower(username)) != std::string::npos) {
    return InvalidArgument("password must not contain the user name");
  }
  return Status::Ok();
}

StatusOr<std::string> HashPassword(std::string_view password, const PasswordHashParams& params) {
  EnsureSodium();
  if (password.size() > PasswordPolicy{}.max_bytes) return InvalidArgument("password is too long");
  if (params.opslimit < crypto_pwhash_OPSLIMIT_MIN || params.opslimit > crypto_pwhash_OPSLIMIT_MAX ||
      params.memlimit < crypto_pwhash_MEMLIMIT_MIN || params.memlimit > crypto_pwhash_MEMLIMIT_MAX) {
    return InvalidArgument("Argon2id parameters out of range");
  }
  char out[crypto_pwhash_STRBYTES];
  if (crypto_pwhash_str_alg(out, password.data(), password.size(), params.opslimit, params.memlimit,
                            crypto_pwhash_ALG_ARGON2ID13) != 0) {
    return Status(StatusCode::kResourceExhausted, "Argon2id hashing failed: not enough memory");
  }
  return std::string(out);
}

bool VerifyPassword(std::string_view hash, std::string_view password) {
  EnsureSodium();
  if (password.size() > PasswordPolicy{}.max_bytes) return false;
  if (hash.size() >= crypto_pwhash_STRBYTES || !hash.starts_with("$argon2id$")) return false;
  if (hash.find('\0') != std::string_view::npos) return false;
  std::string h(hash);  // NUL-terminated copy for libsodium
  return crypto_pwhash_str_verify(h.c_str(), password.data(), password.size()) == 0;
}

void DummyVerifyPassword(std::string_view password, const PasswordHashParams& params) {
  // A fixed-salt hash computed once per parameter set would do too; hashing
  // afresh costs the same as one verification, which is the point.
  auto h = HashPassword(password.substr(0, PasswordPolicy{}.max_bytes), params);
  (void)h.ok();
}

bool PasswordNeedsRehash(std::string_view hash, const PasswordHashParams& params) {
  EnsureSodium();
  if (hash.size() >= crypto_pwhash_STRBYTES || !hash.starts_with("$argon2id$")) return true;
  if (hash.find('\0') != std::string_view::npos) return true;
  std::string h(hash);
  return crypto_pwhash_str_needs_rehash(h.c_str(), params.opslimit, params.memlimit) != 0;
}

}  // namespace phivault::auth
