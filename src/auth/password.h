// Passwords of built-in accounts: Argon2id hashing (libsodium
// crypto_pwhash_str, PHC string format "$argon2id$v=19$m=...,t=...,p=1$..."),
// verification, rehash detection and the minimum password policy.
//
// Policy (CheckPasswordPolicy): at least 12 characters (code points), at most
// 1024 bytes, not only one character class (lower, upper, digit, other), not
// one of a built-in list of common passwords (case-insensitive), and not
// containing the user name (case-insensitive, for names of 3+ characters).
// Failures are InvalidArgument with a reason that never repeats the password.
//
// Thread-safety: all functions are reentrant. HashPassword/VerifyPassword are
// deliberately slow and memory-hungry (memlimit bytes each): bound how many
// run at once. Lifetime: results own their memory. No function throws except
// std::bad_alloc. Passwords are taken as string_view; the caller wipes its
// copy (SecureWipe) when done. Intermediate copies made here are wiped.
#ifndef PHIVAULT_AUTH_PASSWORD_H_
#define PHIVAULT_AUTH_PASSWORD_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace phivault::auth {

struct PasswordHashParams {
  // libsodium's MODERATE ops and 64 MiB; tests lower both (ops >= 1, mem >= 8 KiB).
  uint64_t opslimit = 3;
  size_t memlimit = size_t{64} << 20;
};

struct PasswordPolicy {
  size_t min_chars = 12;
  size_t max_bytes = 1024;
  int min_classes = 2;
};

// Checks `password` for `username` against the policy.
Status CheckPasswordPolicy(std::string_view password, std::string_view username, const PasswordPolicy& policy = {});

// Argon2id PHC string for `password`. InvalidArgument if the password is
// longer than policy max_bytes (1024) or the params are out of libsodium's
// range; ResourceExhausted if the memory cannot be had.
StatusOr<std::string> HashPassword(std::string_view password, const PasswordHashParams& params = {});

// True iff `hash` is an Argon2id PHC string and `password` matches it.
// Malformed hashes return false. Runs in time independent of where a
// mismatch is (libsodium compares in constant time).
bool VerifyPassword(std::string_view hash, std::string_view password);

// Spends the time of one verification with `params`, for an unknown user, so
// response time does not reveal which user names exist.
void DummyVerifyPassword(std::string_view password, const PasswordHashParams& params = {});

// True if `hash` was made with parameters other than `params` (or is not an
// Argon2id hash): rehash after the next successful login.
bool PasswordNeedsRehash(std::string_view hash, const PasswordHashParams& params = {});

}  // namespace phivault::auth

#endif  // PHIVAULT_AUTH_PASSWORD_H_
