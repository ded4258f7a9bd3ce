// Signed checkpoints of the audit log: the C2SP tlog-checkpoint body wrapped
// in a C2SP signed note with one Ed25519 signature.
//
//   body  = "<origin>\n<size>\n<base64 root>\n"        (tlog-checkpoint)
//   note  = body "\n" "— <name> <base64(keyid || sig)>\n"  (signed-note, U+2014)
//   keyid = SHA-256(name || "\n" || 0x01 || pubkey)[0:4]
//   vkey  = "<name>+<8 hex keyid>+<base64(0x01 || pubkey)>"
//
// The key name is the origin ("phivault/<vault-id>"), so a verifier key names
// the log it speaks for. Everything that parses (ParseVerifierKey,
// ParseTreeHead, OpenNote, VerifyCheckpoint) takes untrusted bytes and either
// accepts them or returns an error; it never crashes or reads out of bounds.
//
// Thread-safety: NoteSigner is immutable after construction and safe to use
// from many threads. Lifetime: NoteSigner owns its secret key in SecureBytes
// (locked, wiped on destruction).
#ifndef PHIVAULT_AUDIT_CHECKPOINT_H_
#define PHIVAULT_AUDIT_CHECKPOINT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "audit/merkle.h"
#include "common/secure_bytes.h"
#include "common/status.h"

namespace phivault::audit {

// Standard base64 with padding (RFC 4648 §4), as both C2SP specs use.
std::string Base64Encode(std::string_view bytes);
// Strict: rejects whitespace, missing padding and non-canonical encodings,
// so a signed text has exactly one spelling.
StatusOr<std::string> Base64Decode(std::string_view text);

// The checkpoint body (a tree head).
struct TreeHead {
  std::string origin;
  uint64_t size = 0;
  Hash root{};
  std::vector<std::string> extensions;  // optional extra lines, kept verbatim
};
std::string FormatTreeHead(const TreeHead& head);
StatusOr<TreeHead> ParseTreeHead(std::string_view body);

// A parsed verifier key.
struct VerifierKey {
  std::string name;
  uint32_t key_id = 0;
  std::string public_key;  // 32 raw bytes
};
StatusOr<VerifierKey> ParseVerifierKey(std::string_view vkey);
// Key ID per signed-note: first 4 bytes (big-endian) of SHA-256(name "\n" 0x01 pubkey).
uint32_t NoteKeyId(std::string_view name, std::string_view public_key);

class NoteSigner {
 public:
  // Derives the Ed25519 key pair from a 32-byte seed (crypto_sign_seed_keypair).
  // InvalidArgument for a bad name (empty, spaces, '+') or seed size.
  static StatusOr<std::unique_ptr<NoteSigner>> FromSeed(std::string name, const SecureBytes& seed);

  const std::string& name() const { return name_; }
  uint32_t key_id() const { return key_id_; }
  const std::string& public_key() const { return public_key_; }
  std::string VerifierKeyString() const;
  // Returns the signed note: text "\n" signature line. REQUIRES `text` to be a
  // valid note text (ends with "\n", no blank line); checked, else InvalidArgument.
  StatusOr<std::string> Sign(std::string_view text) const;

 private:
  NoteSigner() = default;
  std::string name_;
  uint32_t key_id_ = 0;
  std::string public_key_;
  SecureBytes secret_key_;  // libsodium's 64-byte form (seed || pubkey)
};

// Verifies a signed note against one key and returns its text (the signed
// part, with its final newline). Signatures by other keys are ignored; at
// least one must be by `key`, and every signature claiming to be by `key`
// must verify. PermissionDenied for a missing or bad signature,
// InvalidArgument for a malformed note.
StatusOr<std::string> OpenNote(std::string_view note, const VerifierKey& key);

// OpenNote + ParseTreeHead + the origin must equal the key name.
StatusOr<TreeHead> VerifyCheckpoint(std::string_view note, const VerifierKey& key);

// Splits a checkpoints file (signed notes, each followed by one empty line)
// into notes. `complete_bytes` receives the length of the prefix made of
// complete notes, so a torn final note can be cut off.
std::vector<std::string> SplitNotes(std::string_view file, size_t* complete_bytes = nullptr);

}  // namespace phivault::audit

#endif  // PHIVAULT_AUDIT_CHECKPOINT_H_
