#include "auth/totp.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>

namespace phivault::auth {
namespace {

constexpr char kB32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

bool ValidParams(const TotpParams& p) {
  return p.digits >= 6 && p.digits <= 8 && p.step_s > 0 && p.window >= 0 && p.window <= 10;
}

std::string PercentEncode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
        c == '_' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

}  // namespace

SecureBytes GenerateTotpSecret(size_t bytes) { return SecureBytes::Random(bytes == 0 ? 20 : bytes); }

std::string Base32Encode(std::string_view bytes) {
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char ch : bytes) {
    acc = (acc << 8) | static_cast<unsigned char>(ch);
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out.push_back(kB32[(acc >> bits) & 31]);
    }
  }
  if (bits > 0) out.push_back(kB32[(acc << (5 - bits)) & 31]);
  return out;
}

StatusOr<SecureBytes> Base32Decode(std::string_view text) {
  std::string clean;
  clean.reserve(text.size());
  bool padding = false;
  for (char c : text) {
    if (c == ' ') continue;
    if (c == '=') {
      padding = true;
      continue;
    }
    if (padding) return InvalidArgument("invalid base32: data after padding");
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    clean.push_back(c);
  }
  SecureBytes out(clean.size() * 5 / 8);
  size_t n = 0;
  uint32_t acc = 0;
  int bits = 0;
  Status error;
  for (char c : clean) {
    int v = -1;
    if (c >= 'A' && c <= 'Z') v = c - 'A';
    if (c >= '2' && c <= '7') v = c - '2' + 26;
    if (v < 0) {
      error = InvalidArgument("invalid base32: character outside the alphabet");
      break;
    }
    acc = ((acc << 5) | static_cast<uint32_t>(v)) & 0xfff;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.data()[n++] = static_cast<uint8_t>((acc >> bits) & 0xff);
    }
  }
  if (error.ok() && bits > 0 && (acc & ((1u << bits) - 1)) != 0) {
    error = InvalidArgument("invalid base32: non-canonical trailing bits");
  }
  if (error.ok() && (bits >= 5)) error = InvalidArgument("invalid base32: bad length");
  SecureWipe(clean.data(), clean.size());
  if (!error.ok()) return error;
  return out;
}

std::string HotpCode(const SecureBytes& secret, uint64_t counter, int digits) {
  if (secret.empty()) return std::string();
  unsigned char msg[8];
  for (int i = 7; i >= 0; --i) {
    msg[i] = static_cast<unsigned char>(counter & 0xff);
    counter >>= 8;
  }
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  if (HMAC(EVP_sha1(), secret.data(), static_cast<int>(secret.size()), msg, sizeof msg, mac, &mac_len) == nullptr ||
      mac_len != 20) {
    SecureWipe(mac, sizeof mac);
    return std::string();  // never equal to a well-formed code
  }
  int offset = mac[19] & 0x0f;
  uint32_t bin = (static_cast<uint32_t>(mac[offset] & 0x7f) << 24) | (static_cast<uint32_t>(mac[offset + 1]) << 16) |
                 (static_cast<uint32_t>(mac[offset + 2]) << 8) | static_cast<uint32_t>(mac[offset + 3]);
  SecureWipe(mac, sizeof mac);
  digits = std::clamp(digits, 6, 8);
  uint32_t mod = 1;
  for (int i = 0; i < digits; ++i) mod *= 10;
  uint32_t value = bin % mod;
  std::string code(static_cast<size_t>(digits), '0');
  for (int i = digits - 1; i >= 0; --i) {
    code[static_cast<size_t>(i)] = static_cast<char>('0' + value % 10);
    value /= 10;
  }
  return code;
}

int64_t TotpStep(int64_t unix_s, int step_s) {
  if (unix_s < 0 || step_s <= 0) return 0;
  return unix_s / step_s;
}

std::string TotpCode(const SecureBytes& secret, int64_t unix_s, const TotpParams& params) {
  if (!ValidParams(params) || secret.empty()) return std::string();
  return HotpCode(secret, static_cast<uint64_t>(TotpStep(unix_s, params.step_s)), params.digits);
}

std::optional<int64_t> VerifyTotp(const SecureBytes& secret, std::string_view code, int64_t now_s,
                                  const TotpParams& params) {
  if (!ValidParams(params) || secret.empty()) return std::nullopt;
  if (code.size() != static_cast<size_t>(params.digits)) return std::nullopt;
  for (char c : code) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  int64_t now_step = TotpStep(now_s, params.step_s);
  std::optional<int64_t> matched;
  for (int64_t d = -params.window; d <= params.window; ++d) {
    int64_t step = now_step + d;
    if (step < 0) continue;
    std::string expected = HotpCode(secret, static_cast<uint64_t>(step), params.digits);
    bool eq = ConstantTimeEquals(expected, code);
    SecureWipe(expected.data(), expected.size());
    // Keep scanning the whole window so timing does not reveal which step matched.
    if (eq && !matched) matched = step;
  }
  return matched;
}

std::string OtpauthUri(std::string_view user, const SecureBytes& secret, const TotpParams& params) {
  std::string uri = "otpauth://totp/phivault:" + PercentEncode(user);
  uri += "?secret=" + Base32Encode(secret.view());
  uri += "&issuer=phivault&algorithm=SHA1&digits=" + std::to_string(params.digits);
  uri += "&period=" + std::to_string(params.step_s);
  return uri;
}

bool TotpReplayGuard::Accept(std::string_view user, int64_t step) {
  std::lock_guard lock(mu_);
  auto [it, inserted] = last_.try_emplace(std::string(user), step);
  if (inserted) return true;
  if (step <= it->second) return false;
  it->second = step;
  return true;
}

std::optional<int64_t> TotpReplayGuard::last_step(std::string_view user) const {
  std::lock_guard lock(mu_);
  auto it = last_.find(std::string(user));
  if (it == last_.end()) return std::nullopt;
  return it->second;
}

void TotpReplayGuard::Prune(int64_t min_step) {
  std::lock_guard lock(mu_);
  std::erase_if(last_, [min_step](const auto& kv) { return kv.second < min_step; });
}

bool VerifyTotpOnce(TotpReplayGuard& guard, std::string_view user, const SecureBytes& secret, std::string_view code,
                    int64_t now_s, const TotpParams& params) {
  std::optional<int64_t> step = VerifyTotp(secret, code, now_s, params);
  return step && guard.Accept(user, *step);
}

}  // namespace phivault::auth
