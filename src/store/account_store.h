// AccountStore: the directory of built-in user accounts, registered devices
// (mTLS client certificates) and refresh tokens, kept in its own database
// file DIR/accounts.db beside the vault database.
//
// The file is opened through the same encrypting SQLite VFS as the vault
// (VaultVfsName, storage key; see encrypted_vfs.h), so every page and
// WAL frame is AES-256-GCM sealed at rest: user names, roles and hashes are
// never readable on disk. It lives in a separate file (not in vault.db)
// because account changes come from admin commands and logins, not from the
// FHIR writer's group commit, and because the vault database refuses UPDATE
// on its tables by design while accounts are mutable.
//
// TOTP secrets are additionally sealed (column totp_secret_sealed) with an
// AES-256-GCM key derived by HKDF from the token signing key with info
// "phivault/totp-seal/v1", AAD = "phivault/totp/v1" || 0x00 || username, so a
// secret copied to another row fails to open. Deriving (rather than reusing
// the signing seed directly) keeps "one key, one purpose": the HKDF output is
// independent of the Ed25519 seed. The derivation is tied to the token key
// because a TOTP secret is worthless without the ability to mint tokens
// anyway, and rotating the token key forces MFA re-enrolment, which is what
// an operator rotating after a compromise wants.
//
// Refresh tokens: the store implements auth::RefreshTokenStore (records keyed
// by SHA-256 of the token; the token itself is never stored).
//
// Durability: every mutating method runs in its own transaction and returns
// only after COMMIT, with journal_mode=WAL and synchronous=FULL, i.e. after
// the WAL is fsynced. Several processes may use the file at once (the server
// and the `phivault user ...` admin commands): SQLite's locking serialises
// them and each read sees the latest committed state, so a disabled user
// cannot log in from the next request on.
//
// Thread-safety: every method is safe to call concurrently. Writes share
// one connection and mutex (logins and admin actions are rare and dominated
// by Argon2id, so a pool would buy nothing). Lookups (users, devices, a
// login's liveness) have their own connection and mutex, because a device's
// certificate is looked up on a network thread for each of its requests and
// must not wait behind a write's fsync; they see the last committed state. Lifetime: Open registers (or
// re-registers) the encrypting VFS with the keyring's storage key; as with
// SqliteStore::Init, do it at startup before the server runs. The store keeps
// its own copy of the TOTP sealing key (wiped on destruction) and does not
// keep a reference to the keyring.
#ifndef PHIVAULT_STORE_ACCOUNT_STORE_H_
#define PHIVAULT_STORE_ACCOUNT_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/token_issuer.h"
#include "common/secure_bytes.h"
#include "common/status.h"
#include "crypto/keyring.h"
#include "store/resource_store.h"

namespace phivault::store {

inline constexpr const char* kAccountsFileName = "accounts.db";

// Account roles (same spelling as policy::Role). Devices are not users: they
// authenticate with a certificate and live in the devices table.
inline constexpr std::string_view kRoleClinician = "clinician";
inline constexpr std::string_view kRoleRegistration = "registration";
inline constexpr std::string_view kRolePrivacyOfficer = "privacy-officer";
inline constexpr std::string_view kRoleSecurityAdmin = "security-admin";
inline constexpr std::string_view kRolePatient = "patient";

// True for the five roles above.
bool IsUserRole(std::string_view role);
// True for the roles whose accounts must use TOTP (every clinical and admin
// role; only patients may go without, and only if they never enrolled).
bool RoleRequiresMfa(std::string_view role);
// The SMART v2 scopes a new account of `role` gets unless the admin gives
// others. Scopes only narrow what the policy engine allows for the role.
std::string DefaultScopesForRole(std::string_view role);

// 1..64 characters of [a-z0-9._@-], starting with a letter or digit. Names
// are case-folded (ASCII) before validation, lookup and storage, so "Alice"
// and "alice" are the same account.
bool IsValidUsername(std::string_view username);
std::string NormalizeUsername(std::string_view username);
// A clearance code: 1..32 of [A-Za-z0-9_-].
bool IsValidClearance(std::string_view clearance);
// A device id: a FHIR id ([A-Za-z0-9.-]{1,64}).
bool IsValidDeviceId(std::string_view id);

struct UserRecord {
  std::string username;       // normalized
  std::string password_hash;  // Argon2id PHC string; a secret, never print it
  std::string role;
  std::string fhir_user;                 // "" or e.g. "Practitioner/123"
  std::vector<std::string> clearances;   // e.g. {"R", "HIV"}
  std::string scopes;                    // space-separated SMART scopes
  bool disabled = false;
  bool mfa_enrolled = false;             // a TOTP secret is stored
  int64_t created_ms = 0;
  int64_t totp_last_step = -1;           // last accepted TOTP step (replay guard)
};

struct DeviceRecord {
  std::string device_id;
  std::string cert_sha256;  // lower-case hex SHA-256 of the certificate DER
  std::string cert_subject;  // RFC 2253 one-line subject, as the HTTP server reports it
  std::vector<std::string> patients;  // Patient ids the device may write for
  bool disabled = false;
  int64_t created_ms = 0;
};

// An administrative change to an account, for its audit record.
struct AccountChange {
  std::string kind;    // "user" or "device"
  std::string id;      // user name or device id
  std::string action;  // "add", "disable", "enable", "password", "mfa-reset"
};
// Builds the audit record of a change (see SetChangeRecordBuilder).
using ChangeRecordBuilder = std::function<std::string(const AccountChange&)>;

class AccountStore : public auth::RefreshTokenStore {
 public:
  ~AccountStore() override = default;

  // ---- users ----
  // Validates the record (name, role, fhirUser type for the role, clearances)
  // and inserts it; `totp_secret` (may be null) is sealed before it is
  // stored. AlreadyExists for a taken name. Empty scopes get the role default.
  virtual Status CreateUser(const UserRecord& user, const SecureBytes* totp_secret) = 0;
  // NotFound if there is no such user.
  virtual StatusOr<UserRecord> GetUser(std::string_view username) = 0;
  // Every user, by name. No secrets are cleared from the records: callers
  // that print them must not print password_hash.
  virtual StatusOr<std::vector<UserRecord>> ListUsers() = 0;
  // Disabling also deletes the user's refresh tokens in the same transaction.
  virtual Status SetUserDisabled(std::string_view username, bool disabled) = 0;
  virtual Status SetPasswordHash(std::string_view username, std::string_view password_hash) = 0;
  // Replaces the TOTP secret (enrolment / reset), resets the replay guard and
  // sets mfa_enrolled. Also revokes the user's refresh tokens: a reset MFA
  // means the old factor may be compromised.
  virtual Status SetTotpSecret(std::string_view username, const SecureBytes& secret) = 0;
  // The unsealed secret. NotFound if the user has none; DataLoss if the
  // sealed value does not open (moved between rows or another token key).
  virtual StatusOr<SecureBytes> GetTotpSecret(std::string_view username) = 0;
  // Durable TOTP replay guard: atomically records `step` if it is later than
  // the last accepted step. True if recorded; false for a replayed or older
  // step (or an unknown user, or on a storage error, failing closed).
  virtual bool AcceptTotpStep(std::string_view username, int64_t step) = 0;

  // ---- devices ----
  // Validates (id, hex digest, patient ids) and inserts. AlreadyExists if
  // the id or the certificate is already registered.
  virtual Status AddDevice(const DeviceRecord& device) = 0;
  virtual StatusOr<DeviceRecord> GetDevice(std::string_view device_id) = 0;
  // The device registered for a client certificate (lower-case hex SHA-256,
  // as in http::HttpRequest::client_cert_sha256). NotFound if none; the
  // caller must still check `disabled`.
  virtual StatusOr<DeviceRecord> FindDeviceByCert(std::string_view cert_sha256) = 0;
  virtual StatusOr<std::vector<DeviceRecord>> ListDevices() = 0;
  virtual Status SetDeviceDisabled(std::string_view device_id, bool disabled) = 0;

  // ---- audit of changes ----
  // With a builder set, every user and device change stores its audit record
  // in accounts.db in the change's own transaction (an outbox, as resource
  // writes do in vault.db), so a change and its record are durable together.
  // Whoever holds the audit log moves the records there and drops them:
  // `phivault serve` does so at start and every second, so changes made by
  // the CLI beside a running server are audited within a second.
  virtual void SetChangeRecordBuilder(ChangeRecordBuilder builder) = 0;
  virtual StatusOr<std::vector<PendingAuditRecord>> PendingChangeRecords() = 0;
  virtual Status DropChangeRecord(int64_t id) = 0;

  // ---- refresh tokens (auth::RefreshTokenStore) ----
  // Insert/MarkUsed report storage errors as kUnavailable; the void methods
  // log storage errors (operator log, no token data) and carry on.
  Status Insert(const std::string& token_hash, const auth::RefreshTokenRecord& record) override = 0;
  StatusOr<auth::RefreshTokenRecord> MarkUsed(const std::string& token_hash) override = 0;
  void RevokeFamily(std::string_view family) override = 0;
  void RevokeSubject(std::string_view subject) override = 0;
  void Prune(int64_t now_s) override = 0;
  // Number of stored refresh token records (tests, metrics).
  virtual StatusOr<int64_t> RefreshTokenCount() = 0;
  // Whether login `family` still has a refresh token record that has not
  // reached the login's end: false once it was revoked (reuse, a disabled
  // account) or expired. Lets a restarted server refuse access tokens of
  // logins ended before the restart.
  virtual StatusOr<bool> RefreshFamilyLive(std::string_view family, int64_t now_s) = 0;
};

struct AccountStoreOptions {
  // Upper bound on stored refresh token records; Insert fails with
  // ResourceExhausted beyond it (after pruning expired ones).
  int64_t max_refresh_tokens = 1000000;
  // Clock for created_ms (milliseconds since the epoch); tests inject.
  int64_t (*now_ms)() = nullptr;
};

// Opens DIR/accounts.db, creating it (and its schema) if it does not exist.
// DIR must already hold the vault's keyring (the caller has opened `keyring`
// from it). PermissionDenied if the file belongs to another vault, DataLoss
// if it does not authenticate with this vault's storage key.
StatusOr<std::shared_ptr<AccountStore>> OpenAccountStore(const std::string& dir, const crypto::Keyring& keyring,
                                                         const AccountStoreOptions& options = {});

}  // namespace phivault::store

#endif  // PHIVAULT_STORE_ACCOUNT_STORE_H_
