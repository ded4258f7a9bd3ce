// Time-based one-time passwords (RFC 6238 over RFC 4226 HOTP) for the second
// factor of built-in accounts: HMAC-SHA1, 6 digits, 30 s steps, and a window
// of +-1 step for clock drift. Secrets are random 20-byte keys held in
// SecureBytes and shown to the user once as base32 (RFC 4648, no padding) in
// an otpauth:// URI for authenticator apps. Codes are compared in constant
// time against every step in the window. TotpReplayGuard refuses a code from
// a step at or before the last one accepted for the user, so an observed code
// cannot be used twice.
//
// Thread-safety: the free functions are reentrant; TotpReplayGuard is
// thread-safe. Lifetime: results own their memory; intermediate HMAC output
// and codes are wiped. No function throws except std::bad_alloc.
#ifndef PHIVAULT_AUTH_TOTP_H_
#define PHIVAULT_AUTH_TOTP_H_

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/secure_bytes.h"
#include "common/status.h"

namespace phivault::auth {

struct TotpParams {
  int digits = 6;      // 6..8
  int step_s = 30;     // > 0
  int window = 1;      // steps accepted on each side of the current one, 0..10
};

// A new random secret (default 160 bits, RFC 4226's recommendation).
SecureBytes GenerateTotpSecret(size_t bytes = 20);

// RFC 4648 base32, upper case, without padding.
std::string Base32Encode(std::string_view bytes);
// Accepts upper or lower case, ignores spaces, accepts optional '=' padding
// only at the end; rejects anything else and non-zero trailing bits.
StatusOr<SecureBytes> Base32Decode(std::string_view text);

// RFC 4226 HOTP value for `counter`, as a zero-padded decimal string of
// `digits` (6..8) digits. REQUIRES: !secret.empty().
std::string HotpCode(const SecureBytes& secret, uint64_t counter, int digits);
// The TOTP step that contains `unix_s` (floor division; negative times give step 0).
int64_t TotpStep(int64_t unix_s, int step_s);
// The code for `unix_s`.
std::string TotpCode(const SecureBytes& secret, int64_t unix_s, const TotpParams& params = {});

// The step (within +-window of now) whose code equals `code`, or nullopt. All
// window steps are computed and compared in constant time, whatever matches.
// A code that is not exactly `digits` ASCII digits never matches.
std::optional<int64_t> VerifyTotp(const SecureBytes& secret, std::string_view code, int64_t now_s,
                                  const TotpParams& params = {});

// otpauth://totp/phivault:<user>?secret=<base32>&issuer=phivault&algorithm=SHA1&digits=6&period=30
// with the label and values percent-encoded.
std::string OtpauthUri(std::string_view user, const SecureBytes& secret, const TotpParams& params = {});

// Remembers the last accepted step per user. The state is in memory only;
// persist last_step() with the account if replays across restarts matter.
class TotpReplayGuard {
 public:
  // True (and records `step`) if `step` is later than the last accepted one.
  bool Accept(std::string_view user, int64_t step);
  std::optional<int64_t> last_step(std::string_view user) const;
  // Forgets users whose last step is older than `min_step` (bounds memory).
  void Prune(int64_t min_step);

 private:
  mutable std::mutex mu_;
  std::unordered_map<std::string, int64_t> last_;
};

// VerifyTotp then guard.Accept: true only for a fresh, correct code.
bool VerifyTotpOnce(TotpReplayGuard& guard, std::string_view user, const SecureBytes& secret, std::string_view code,
                    int64_t now_s, const TotpParams& params = {});

}  // namespace phivault::auth

#endif  // PHIVAULT_AUTH_TOTP_H_
