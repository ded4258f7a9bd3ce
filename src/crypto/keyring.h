// Keyring: the vault's key hierarchy, unlocked by the master key.
//
//   master key (key file | passphrase via Argon2id | env)
//     └─ key-encryption key (KEK), random, versioned, wrapped by the master key
//          ├─ storage key       (whole-file page encryption of the database and WAL)
//          ├─ shared data key   (resource bodies in no patient compartment)
//          ├─ audit seal key, audit signing key, token signing key, backup key
//          └─ per-patient data keys (generated on demand, wrapped by the KEK and
//             stored by the caller, e.g. in the database)
//
// The keyring file (DIR/keyring.txt, mode 0600) holds only wrapped keys, the
// vault id and the KDF parameters; never a key in plaintext. It is a small
// line-based "name=value" text file (see keyring.cc for the grammar) rather
// than JSON so this component needs no JSON library; it ends with a SHA-256
// checksum line so an edited or corrupted file is told apart from a wrong key.
// Every wrapped key is sealed with AAD = vault id, purpose and version, so
// entries cannot be swapped. The KEK is wrapped by a key derived (HKDF) from
// the master key, never by the master key itself. A wrong master key fails to
// unwrap the KEK and Open returns PermissionDenied without touching any file.
// The file is written once, atomically (temp file, fsync, link, fsync dir).
//
// Thread-safety: immutable after Open/Create; all const methods are safe to
// call concurrently. Lifetime: owns every unwrapped key; wipes them on
// destruction.
#ifndef PHIVAULT_CRYPTO_KEYRING_H_
#define PHIVAULT_CRYPTO_KEYRING_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/secure_bytes.h"
#include "common/status.h"
#include "crypto/aead.h"

namespace phivault::crypto {

// Where the master key comes from. Exactly one field is set.
struct MasterKeySource {
  std::string key_file;         // 32 raw bytes; the file must be mode 0600 (no group/other bits)
  std::string passphrase_file;  // first line is the passphrase; mode 0600 as well
  std::string key_env;          // name of an env var holding the key as 64 hex chars
  // Argon2id cost for new vaults; tests lower it. Stored in the keyring file.
  uint64_t argon2_opslimit = 3;
  uint64_t argon2_memlimit = 256ull << 20;
};

// Reads a key file. InvalidArgument with a clear message if it is missing, has
// group/other permission bits, or is not exactly 32 bytes.
StatusOr<SecureBytes> ReadKeyFile(const std::string& path);
// Writes 32 random bytes to `path` with mode 0600. Refuses to overwrite.
Status GenerateKeyFile(const std::string& path);

// DIR/keyring.txt. Use this (e.g. to tell a fresh data directory from an
// initialised one) rather than spelling the file name out.
std::string KeyringFilePath(const std::string& dir);

// kSearchCursor seals FHIR search paging cursors (AEAD: they carry sort-key
// values, so they are encrypted as well as authenticated). kBulkExport seals
// bulk $export NDJSON files while they wait in DATA_DIR/exports. kTotpSeal
// seals built-in accounts' TOTP secrets (until it existed they were sealed
// under a key derived from kTokenSign, so a token-key rotation would have
// had to re-seal them: one key, one purpose).
enum class KeyPurpose {
  kStorage,
  kSharedData,
  kAuditSeal,
  kAuditSign,
  kTokenSign,
  kBackup,
  kSearchCursor,
  kBulkExport,
  kTotpSeal
};
// Stable names, used in the keyring file and in AAD: never rename one.
std::string_view KeyPurposeName(KeyPurpose p);
inline constexpr int kKeyPurposeCount = 9;
// Purposes from this index on were added after the first release: Open
// creates, wraps and persists them when an older keyring file lacks them.
inline constexpr int kFirstAddedKeyPurpose = 6;

class Keyring {
 public:
  // Creates DIR/keyring.txt for a new vault (and DIR itself, mode 0700, if it
  // is missing). AlreadyExists if a keyring is there.
  static StatusOr<std::unique_ptr<Keyring>> Create(const std::string& dir, const MasterKeySource& source);
  // Unlocks an existing vault (adding keys for purposes the file predates,
  // see kFirstAddedKeyPurpose, and rewriting it atomically). PermissionDenied on a wrong key or passphrase
  // (or a key file given for a passphrase vault and vice versa), DataLoss if
  // the keyring file was modified, NotFound if there is none.
  static StatusOr<std::unique_ptr<Keyring>> Open(const std::string& dir, const MasterKeySource& source);
  // Rewraps the KEK under the master key `next` (which may be of another
  // kind: key file, passphrase, env) and replaces the keyring file
  // atomically; afterwards only `next` opens the vault. The KEK itself, the
  // purpose keys and the patients' data keys do not change, so no data is
  // re-encrypted and a process that has the vault open is unaffected.
  // PermissionDenied if `current` does not open the keyring. REQUIRES: no
  // other rotation of this keyring runs at the same time (the caller locks).
  static Status RotateMasterKey(const std::string& dir, const MasterKeySource& current, const MasterKeySource& next);

  const std::string& vault_id() const { return vault_id_; }
  uint32_t kek_version() const { return kek_version_; }

  // The unwrapped key for a purpose (32 bytes).
  const SecureBytes& Key(KeyPurpose purpose) const;

  // Wraps a data key under the current KEK; `context` (for example the
  // patient id) is bound as AAD. The result is binary (4-byte big-endian KEK
  // version || nonce || ciphertext || tag) and safe to store anywhere.
  // UnwrapDataKey returns DataLoss for a modified blob or another context.
  std::string WrapDataKey(const SecureBytes& data_key, std::string_view context) const;
  StatusOr<SecureBytes> UnwrapDataKey(std::string_view wrapped, std::string_view context) const;

  ~Keyring();

 private:
  Keyring() = default;
  std::string vault_id_;
  uint32_t kek_version_ = 1;
  SecureBytes kek_;
  SecureBytes keys_[kKeyPurposeCount];  // indexed by KeyPurpose
  std::unique_ptr<Aead> kek_aead_;
  friend class KeyringLoader;
};

}  // namespace phivault::crypto

#endif  // PHIVAULT_CRYPTO_KEYRING_H_
