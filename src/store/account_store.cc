#include "store/account_store.h"

#include "store/sqlite_util.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <mutex>
#include <utility>

#include "auth/jwt.h"
#include "common/log.h"
#include "crypto/aead.h"
#include "store/encrypted_vfs.h"
#include "store/sqlite_store.h"

namespace phivault::store {
namespace {

constexpr int kSchemaVersion = 1;
// How TOTP secrets were sealed before KeyPurpose::kTotpSeal: HKDF of the
// token-signing key with this info. Read only, to re-seal them (see
// ResealLegacyTotpSecrets).
constexpr std::string_view kLegacyTotpSealInfo = "phivault/totp-seal/v1";
constexpr std::string_view kTotpAadPrefix = "phivault/totp/v1";

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS account_meta(
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS users(
  username TEXT PRIMARY KEY,
  password_hash TEXT NOT NULL,
  totp_secret_sealed BLOB,
  role TEXT NOT NULL,
  fhir_user TEXT NOT NULL DEFAULT '',
  clearances TEXT NOT NULL DEFAULT '',
  scopes TEXT NOT NULL DEFAULT '',
  disabled INTEGER NOT NULL DEFAULT 0,
  created_ms INTEGER NOT NULL,
  mfa_enrolled INTEGER NOT NULL DEFAULT 0,
  totp_last_step INTEGER NOT NULL DEFAULT -1
);
CREATE TABLE IF NOT EXISTS devices(
  device_id TEXT PRIMARY KEY,
  cert_sha256 TEXT NOT NULL UNIQUE,
  cert_subject TEXT NOT NULL DEFAULT '',
  patients TEXT NOT NULL DEFAULT '',
  disabled INTEGER NOT NULL DEFAULT 0,
  created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS refresh_tokens(
  hash BLOB PRIMARY KEY,
  subject TEXT NOT NULL,
  family TEXT NOT NULL,
  scope TEXT NOT NULL,
  expires_ms INTEGER NOT NULL,
  family_expires_ms INTEGER NOT NULL,
  used INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS refresh_tokens_family ON refresh_tokens(family);
CREATE INDEX IF NOT EXISTS refresh_tokens_subject ON refresh_tokens(subject);
)sql";

int64_t SystemNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Status SqliteError(int rc, std::string_view what) { return sqlite::Error(rc, "accounts.db", what); }

// Statements here are prepared per call, not cached: account operations are
// rare and each costs an Argon2id or an fsync, next to which preparing is noise.
class Stmt : public sqlite::Statement {
 public:
  Status Prepare(sqlite3* db, const char* sql) { return Statement::Prepare(db, sql, "accounts.db"); }
};

Status Exec(sqlite3* db, const char* sql) { return sqlite::Exec(db, sql, "accounts.db"); }

// A concurrent admin process makes us wait instead of failing half-way.
template <typename F>
Status InTransaction(sqlite3* db, F&& body) {
  return sqlite::InTransaction(db, "accounts.db", std::forward<F>(body));
}

Status StepDone(Stmt& st, std::string_view what) {
  int rc = st.Step();
  return rc == SQLITE_DONE ? Status::Ok() : SqliteError(rc, what);
}

std::vector<std::string> SplitList(std::string_view s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find(sep, start);
    if (end == std::string_view::npos) end = s.size();
    if (end > start) out.emplace_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

std::string JoinList(const std::vector<std::string>& v, char sep) {
  std::string out;
  for (const auto& s : v) {
    if (!out.empty()) out += sep;
    out += s;
  }
  return out;
}

bool IsLowerHex(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

std::string TotpAad(std::string_view username) {
  std::string aad(kTotpAadPrefix);
  aad += '\0';
  aad += username;
  return aad;
}

Status ValidateUser(const UserRecord& u) {
  if (!IsValidUsername(u.username)) {
    return InvalidArgument("user name must be 1-64 characters of a-z 0-9 . _ @ - starting with a letter or digit");
  }
  if (!IsUserRole(u.role)) {
    return InvalidArgument("role must be one of clinician, registration, privacy-officer, security-admin, patient");
  }
  if (u.password_hash.rfind("$argon2id$", 0) != 0) return InvalidArgument("password hash must be Argon2id");
  if (!u.fhir_user.empty()) {
    auto ref = auth::ParseFhirUser(u.fhir_user);
    if (!ref) return InvalidArgument("fhirUser must be a reference such as Practitioner/123");
  }
  // The policy engine's identity rule: clinicians act as a Practitioner(Role),
  // patients as their Patient; anything else would be denied on every request.
  if (u.role == kRoleClinician) {
    auto ref = auth::ParseFhirUser(u.fhir_user);
    if (!ref || (ref->type != "Practitioner" && ref->type != "PractitionerRole")) {
      return InvalidArgument("a clinician needs --fhir-user Practitioner/<id> or PractitionerRole/<id>");
    }
  }
  if (u.role == kRolePatient) {
    auto ref = auth::ParseFhirUser(u.fhir_user);
    if (!ref || ref->type != "Patient") return InvalidArgument("a patient account needs --fhir-user Patient/<id>");
  }
  if (u.clearances.size() > 32) return InvalidArgument("too many clearances");
  for (const auto& c : u.clearances) {
    if (!IsValidClearance(c)) return InvalidArgument("clearance codes are 1-32 characters of A-Z a-z 0-9 _ -");
  }
  if (u.scopes.size() > 4096) return InvalidArgument("scopes are too long");
  for (char c : u.scopes) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return InvalidArgument("scopes contain a control character");
  }
  return Status::Ok();
}

class SqliteAccountStore final : public AccountStore {
 public:
  SqliteAccountStore(sqlite3* db, std::unique_ptr<crypto::Aead> totp_aead, AccountStoreOptions options)
      : db_(db), totp_aead_(std::move(totp_aead)), options_(options) {
    if (options_.now_ms == nullptr) options_.now_ms = SystemNowMs;
  }
  ~SqliteAccountStore() override {
    sqlite3_close_v2(reader_);
    sqlite3_close_v2(db_);
  }

  // Lookups get their own connection (see reader_): called once, after Init.
  void AttachReader(sqlite3* reader) { reader_ = reader; }

  Status CreateUser(const UserRecord& in, const SecureBytes* totp_secret) override {
    UserRecord u = in;
    u.username = NormalizeUsername(u.username);
    PV_RETURN_IF_ERROR(ValidateUser(u));
    if (u.scopes.empty()) u.scopes = DefaultScopesForRole(u.role);
    std::lock_guard lock(mu_);
    return InTransaction(db_, [&]() -> Status {
      Stmt st;
      PV_RETURN_IF_ERROR(st.Prepare(db_,
                                    "INSERT INTO users(username, password_hash, totp_secret_sealed, role, fhir_user, "
                                    "clearances, scopes, disabled, created_ms, mfa_enrolled, totp_last_step) "
                                    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, -1)"));
      st.Bind(1, u.username).Bind(2, u.password_hash);
      if (totp_secret != nullptr && !totp_secret->empty()) {
        st.BindBlob(3, totp_aead_->Seal(totp_secret->view(), TotpAad(u.username)));
      } else {
        st.BindNull(3);
      }
      st.Bind(4, u.role).Bind(5, u.fhir_user).Bind(6, JoinList(u.clearances, ',')).Bind(7, u.scopes);
      st.Bind(8, int64_t{u.disabled ? 1 : 0}).Bind(9, options_.now_ms());
      st.Bind(10, int64_t{totp_secret != nullptr && !totp_secret->empty() ? 1 : 0});
      int rc = st.Step();
      if ((rc & 0xff) == SQLITE_CONSTRAINT) return Status(StatusCode::kAlreadyExists, "a user with this name exists");
      if (rc != SQLITE_DONE) return SqliteError(rc, "insert user");
      return QueueChange({"user", u.username, "add"});
    });
  }

  StatusOr<UserRecord> GetUser(std::string_view username) override {
    std::string name = NormalizeUsername(username);
    std::lock_guard lock(read_mu_);
    Stmt st;
    PV_RETURN_IF_ERROR(st.Prepare(reader_, std::string(kUserColumns).append(" WHERE username = ?1").c_str()));
    st.Bind(1, name);
    int rc = st.Step();
    if (rc == SQLITE_DONE) return NotFound("no such user");
    if (rc != SQLITE_ROW) return SqliteError(rc, "read user");
    return ReadUser(st);
  }

  StatusOr<std::vector<UserRecord>> ListUsers() override {
    std::lock_guard lock(read_mu_);
    Stmt st;
    PV_RETURN_IF_ERROR(st.Prepare(reader_, std::string(kUserColumns).append(" ORDER BY username").c_str()));
    std::vector<UserRecord> out;
    for (;;) {
      int rc = st.Step();
      if (rc == SQLITE_DONE) break;
      if (rc != SQLITE_ROW) return SqliteError(rc, "list users");
      out.push_back(ReadUser(st));
    }
    return out;
  }

  Status SetUserDisabled(std::string_view username, bool disabled) override {
    std::string name = NormalizeUsername(username);
    std::lock_guard lock(mu_);
    return InTransaction(db_, [&]() -> Status {
      PV_RETURN_IF_ERROR(UpdateOne("UPDATE users SET disabled = ?2 WHERE username = ?1", name, int64_t{disabled}));
      if (disabled) PV_RETURN_IF_ERROR(DeleteSubjectTokens(name));
      return QueueChange({"user", name, disabled ? "disable" : "enable"});
    });
  }

  Status SetPasswordHash(std::string_view username, std::string_view password_hash) override {
    if (password_hash.rfind("$argon2id$", 0) != 0) return InvalidArgument("password hash must be Argon2id");
    std::string name = NormalizeUsername(username);
    std::lock_guard lock(mu_);
    return InTransaction(db_, [&]() -> Status {
      Stmt st;
      PV_RETURN_IF_ERROR(st.Prepare(db_, "UPDATE users SET password_hash = ?2 WHERE username = ?1"));
      st.Bind(1, name).Bind(2, password_hash);
      PV_RETURN_IF_ERROR(StepDone(st, "update password"));
      if (sqlite3_changes(db_) != 1) return NotFound("no such user");
      return QueueChange({"user", name, "password"});
    });
  }

  Status SetTotpSecret(std::string_view username, const SecureBytes& secret) override {
    if (secret.size() < 10) return InvalidArgument("TOTP secret is too short");
    std::string name = NormalizeUsername(username);
    std::lock_guard lock(mu_);
    return InTransaction(db_, [&]() -> Status {
      Stmt st;
      PV_RETURN_IF_ERROR(st.Prepare(
          db_, "UPDATE users SET totp_secret_sealed = ?2, mfa_enrolled = 1, totp_last_step = -1 WHERE username = ?1"));
      st.Bind(1, name).BindBlob(2, totp_aead_->Seal(secret.view(), TotpAad(name)));
      PV_RETURN_IF_ERROR(StepDone(st, "update TOTP secret"));
      if (sqlite3_changes(db_) != 1) return NotFound("no such user");
      PV_RETURN_IF_ERROR(DeleteSubjectTokens(name));
      return QueueChange({"user", name, "mfa-reset"});
    });
  }

  StatusOr<SecureBytes> GetTotpSecret(std::string_view username) override {
    std::string name = NormalizeUsername(username);
    std::string sealed;
    {
      std::lock_guard lock(read_mu_);
      Stmt st;
      PV_RETURN_IF_ERROR(st.Prepare(reader_, "SELECT totp_secret_sealed FROM users WHERE username = ?1"));
      st.Bind(1, name);
      int rc = st.Step();
      if (rc == SQLITE_DONE) return NotFound("no such user");
      if (rc != SQLITE_ROW) return SqliteError(rc, "read TOTP secret");
      if (st.IsNull(0)) return NotFound("the user has no TOTP secret");
      sealed = st.Blob(0);
    }
    auto plain = totp_aead_->Open(sealed, TotpAad(name));
    if (!plain.ok()) return DataLoss("a stored TOTP secret does not authenticate (moved, modified or another token key)");
    SecureBytes out = SecureBytes::From(*plain);
    SecureWipe(plain->data(), plain->size());
    return out;
  }

  bool AcceptTotpStep(std::string_view username, int64_t step) override {
    std::string name = NormalizeUsername(username);
    std::lock_guard lock(mu_);
    bool accepted = false;
    Status s = InTransaction(db_, [&]() -> Status {
      Stmt st;
      PV_RETURN_IF_ERROR(
          st.Prepare(db_, "UPDATE users SET totp_last_step = ?2 WHERE username = ?1 AND totp_last_step < ?2"));
      st.Bind(1, name).Bind(2, step);
      PV_RETURN_IF_ERROR(StepDone(st, "record TOTP step"));
      accepted = sqlite3_changes(db_) == 1;
      return Status::Ok();
    });
    if (!s.ok()) {
      log::Error("accounts.totp_guard_failed", {{"error", s.message()}, {"action", "check the data directory's disk"}});
      return false;
    }
    return accepted;
  }

  Status AddDevice(const DeviceRecord& d) override {
    if (!IsValidDeviceId(d.device_id)) return InvalidArgument("device id must be 1-64 characters of A-Z a-z 0-9 . -");
    if (d.cert_sha256.size() != 64 || !IsLowerHex(d.cert_sha256)) {
      return InvalidArgument("certificate digest must be 64 lower-case hex characters");
    }
    if (d.patients.empty()) return InvalidArgument("a device needs at least one --patient");
    if (d.patients.size() > 1000) return InvalidArgument("too many patients for one device");
    for (const auto& p : d.patients) {
      if (!IsValidDeviceId(p)) return InvalidArgument("patient ids must be FHIR ids (A-Z a-z 0-9 . -, at most 64)");
    }
    if (d.cert_subject.size() > 4096) return InvalidArgument("certificate subject is too long");
    std::lock_guard lock(mu_);
    return InTransaction(db_, [&]() -> Status {
      Stmt st;
      PV_RETURN_IF_ERROR(st.Prepare(db_,
                                    "INSERT INTO devices(device_id, cert_sha256, cert_subject, patients, disabled, "
                                    "created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"));
      st.Bind(1, d.device_id).Bind(2, d.cert_sha256).Bind(3, d.cert_subject).Bind(4, JoinList(d.patients, ','));
      st.Bind(5, int64_t{d.disabled ? 1 : 0}).Bind(6, options_.now_ms());
      int rc = st.Step();
      if ((rc & 0xff) == SQLITE_CONSTRAINT) {
        return Status(StatusCode::kAlreadyExists, "a device with this id or certificate is already registered");
      }
      if (rc != SQLITE_DONE) return SqliteError(rc, "insert device");
      return QueueChange({"device", d.device_id, "add"});
    });
  }

  StatusOr<DeviceRecord> GetDevice(std::string_view device_id) override {
    return OneDevice(" WHERE device_id = ?1", device_id);
  }

  StatusOr<DeviceRecord> FindDeviceByCert(std::string_view cert_sha256) override {
    return OneDevice(" WHERE cert_sha256 = ?1", cert_sha256);
  }

  StatusOr<std::vector<DeviceRecord>> ListDevices() override {
    std::lock_guard lock(read_mu_);
    Stmt st;
    PV_RETURN_IF_ERROR(st.Prepare(reader_, std::string(kDeviceColumns).append(" ORDER BY device_id").c_str()));
    std::vector<DeviceRecord> out;
    for (;;) {
      int rc = st.Step();
      if (rc == SQLITE_DONE) break;
      if (rc != SQLITE_ROW) return SqliteError(rc, "list devices");
      out.push_back(ReadDevice(st));
    }
    return out;
  }

  Status SetDeviceDisabled(std::string_view device_id, bool disabled) override {
    std::lock_guard lock(mu_);
    return InTransaction(db_, [&]() -> Status {
      PV_RETURN_IF_ERROR(
          UpdateOne("UPDATE devices SET disabled = ?2 WHERE device_id = ?1", device_id, int64_t{disabled}));
      return QueueChange({"device", std::string(device_id), disabled ? "disable" : "enable"});
    });
  }

  // ---- audit of changes ----

  void SetChangeRecordBuilder(ChangeRecordBuilder builder) override {
    std::lock_guard lock(mu_);
    change_builder_ = std::move(builder);
  }

  StatusOr<std::vector<PendingAuditRecord>> PendingChangeRecords() override {
    std::lock_guard lock(mu_);
    Stmt st;
    PV_RETURN_IF_ERROR(st.Prepare(db_, "SELECT id, created, record FROM change_outbox ORDER BY id"));
    std::vector<PendingAuditRecord> out;
    for (;;) {
      int rc = st.Step();
      if (rc == SQLITE_DONE) break;
      if (rc != SQLITE_ROW) return SqliteError(rc, "read change records");
      out.push_back({st.Int(0), st.Int(1), st.Text(2)});
    }
    return out;
  }

  Status DropChangeRecord(int64_t id) override {
    std::lock_guard lock(mu_);
    Stmt st;
    PV_RETURN_IF_ERROR(st.Prepare(db_, "DELETE FROM change_outbox WHERE id = ?1"));
    st.Bind(1, id);
    return StepDone(st, "drop change record");
  }

  // ---- refresh tokens ----

  Status Insert(const std::string& token_hash, const auth::RefreshTokenRecord& r) override {
    std::lock_guard lock(mu_);
    return InTransaction(db_, [&]() -> Status {
      PV_ASSIGN_OR_RETURN(int64_t count, CountTokens());
      if (count >= options_.max_refresh_tokens) {
        // Make room from expired records before refusing.
        PV_RETURN_IF_ERROR(DeleteExpired(NowS()));
        PV_ASSIGN_OR_RETURN(count, CountTokens());
        if (count >= options_.max_refresh_tokens) {
          return Status(StatusCode::kResourceExhausted, "refresh token store is full");
        }
      }
      Stmt st;
      PV_RETURN_IF_ERROR(st.Prepare(db_,
                                    "INSERT INTO refresh_tokens(hash, subject, family, scope, expires_ms, "
                                    "family_expires_ms, used) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"));
      st.BindBlob(1, token_hash).Bind(2, r.subject).Bind(3, r.family).Bind(4, r.scope);
      st.Bind(5, r.expires_at * 1000).Bind(6, r.family_expires_at * 1000).Bind(7, int64_t{r.used ? 1 : 0});
      int rc = st.Step();
      if ((rc & 0xff) == SQLITE_CONSTRAINT) return Status(StatusCode::kAlreadyExists, "refresh token collision");
      if (rc != SQLITE_DONE) return SqliteError(rc, "insert refresh token");
      return Status::Ok();
    });
  }

  StatusOr<auth::RefreshTokenRecord> MarkUsed(const std::string& token_hash) override {
    std::lock_guard lock(mu_);
    auth::RefreshTokenRecord before;
    Status s = InTransaction(db_, [&]() -> Status {
      Stmt st;
      PV_RETURN_IF_ERROR(st.Prepare(db_,
                                    "SELECT subject, family, scope, expires_ms, family_expires_ms, used "
                                    "FROM refresh_tokens WHERE hash = ?1"));
      st.BindBlob(1, token_hash);
      int rc = st.Step();
      if (rc == SQLITE_DONE) return NotFound("unknown refresh token");
      if (rc != SQLITE_ROW) return SqliteError(rc, "read refresh token");
      before.subject = st.Text(0);
      before.family = st.Text(1);
      before.scope = st.Text(2);
      before.expires_at = st.Int(3) / 1000;
      before.family_expires_at = st.Int(4) / 1000;
      before.used = st.Int(5) != 0;
      if (before.used) return Status::Ok();
      Stmt up;
      PV_RETURN_IF_ERROR(up.Prepare(db_, "UPDATE refresh_tokens SET used = 1 WHERE hash = ?1"));
      up.BindBlob(1, token_hash);
      return StepDone(up, "mark refresh token used");
    });
    if (!s.ok()) return s;
    return before;
  }

  void RevokeFamily(std::string_view family) override {
    std::lock_guard lock(mu_);
    Status s = InTransaction(db_, [&]() -> Status {
      Stmt st;
      PV_RETURN_IF_ERROR(st.Prepare(db_, "DELETE FROM refresh_tokens WHERE family = ?1"));
      st.Bind(1, family);
      return StepDone(st, "revoke refresh token family");
    });
    if (!s.ok()) log::Error("accounts.revoke_failed", {{"error", s.message()}, {"action", "check the data directory"}});
  }

  void RevokeSubject(std::string_view subject) override {
    std::lock_guard lock(mu_);
    Status s = InTransaction(db_, [&]() -> Status { return DeleteSubjectTokens(subject); });
    if (!s.ok()) log::Error("accounts.revoke_failed", {{"error", s.message()}, {"action", "check the data directory"}});
  }

  void Prune(int64_t now_s) override {
    std::lock_guard lock(mu_);
    Status s = InTransaction(db_, [&]() -> Status { return DeleteExpired(now_s); });
    if (!s.ok()) log::Warn("accounts.prune_failed", {{"error", s.message()}});
  }

  StatusOr<int64_t> RefreshTokenCount() override {
    std::lock_guard lock(mu_);
    return CountTokens();
  }

  StatusOr<bool> RefreshFamilyLive(std::string_view family, int64_t now_s) override {
    std::lock_guard lock(read_mu_);
    Stmt q;
    PV_RETURN_IF_ERROR(
        q.Prepare(reader_, "SELECT 1 FROM refresh_tokens WHERE family = ?1 AND family_expires_ms > ?2 LIMIT 1"));
    q.Bind(1, family);
    q.Bind(2, now_s * 1000);
    int rc = q.Step();
    if (rc == SQLITE_ROW) return true;
    if (rc != SQLITE_DONE) return SqliteError(rc, "look up a login");
    return false;
  }

  // `legacy_totp_aead` opens TOTP secrets sealed before kTotpSeal existed;
  // only the re-seal here needs it.
  Status Init(const std::string& vault_id, const crypto::Aead& legacy_totp_aead) {
    // Decided by the schema, not by whether the file existed, so a file left
    // empty by a crash during the very first open is initialised next time.
    bool fresh = false;
    {
      Stmt q;
      PV_RETURN_IF_ERROR(q.Prepare(db_, "SELECT count(*) FROM sqlite_master WHERE name = 'account_meta'"));
      int rc = q.Step();
      if (rc != SQLITE_ROW) return SqliteError(rc, "read schema");
      fresh = q.Int(0) == 0;
    }
    if (fresh) {
      PV_RETURN_IF_ERROR(InTransaction(db_, [&]() -> Status {
        PV_RETURN_IF_ERROR(Exec(db_, kSchema));
        Stmt st;
        PV_RETURN_IF_ERROR(st.Prepare(db_, "INSERT INTO account_meta(key, value) VALUES ('vault_id', ?1), "
                                           "('schema_version', ?2)"));
        st.Bind(1, vault_id).Bind(2, std::to_string(kSchemaVersion));
        return StepDone(st, "write vault id");
      }));
    }
    // Every open, so files from before the outbox get it too.
    PV_RETURN_IF_ERROR(Exec(db_,
                            "CREATE TABLE IF NOT EXISTS change_outbox(id INTEGER PRIMARY KEY AUTOINCREMENT, "
                            "created INTEGER NOT NULL, record TEXT NOT NULL)"));
    Stmt st;
    PV_RETURN_IF_ERROR(st.Prepare(db_, "SELECT value FROM account_meta WHERE key = 'vault_id'"));
    int rc = st.Step();
    if (rc == SQLITE_DONE) return DataLoss("accounts.db has no vault id; it is damaged or not a phivault accounts file");
    if (rc != SQLITE_ROW) return SqliteError(rc, "read vault id");
    if (st.Text(0) != vault_id) return PermissionDenied("accounts.db belongs to another vault than this keyring");
    return ResealLegacyTotpSecrets(legacy_totp_aead);
  }

 private:
  // Re-seals, under the kTotpSeal key, every TOTP secret that opens only
  // with the legacy key (a vault from before that purpose existed), in one
  // transaction. A secret that opens with neither is left for
  // GetTotpSecret to report.
  Status ResealLegacyTotpSecrets(const crypto::Aead& legacy_totp_aead) {
    std::vector<std::pair<std::string, std::string>> resealed;
    {
      Stmt q;
      PV_RETURN_IF_ERROR(
          q.Prepare(db_, "SELECT username, totp_secret_sealed FROM users WHERE totp_secret_sealed IS NOT NULL"));
      int rc;
      while ((rc = q.Step()) == SQLITE_ROW) {
        const std::string name = q.Text(0);
        const std::string sealed = q.Blob(1);
        if (totp_aead_->Open(sealed, TotpAad(name)).ok()) continue;
        auto plain = legacy_totp_aead.Open(sealed, TotpAad(name));
        if (!plain.ok()) continue;
        resealed.emplace_back(name, totp_aead_->Seal(*plain, TotpAad(name)));
        SecureWipe(plain->data(), plain->size());
      }
      if (rc != SQLITE_DONE) return SqliteError(rc, "read TOTP secrets");
    }
    if (resealed.empty()) return Status::Ok();
    PV_RETURN_IF_ERROR(InTransaction(db_, [&]() -> Status {
      for (const auto& [name, sealed] : resealed) {
        Stmt st;
        PV_RETURN_IF_ERROR(st.Prepare(db_, "UPDATE users SET totp_secret_sealed = ?2 WHERE username = ?1"));
        st.Bind(1, name).BindBlob(2, sealed);
        PV_RETURN_IF_ERROR(StepDone(st, "re-seal a TOTP secret"));
      }
      return Status::Ok();
    }));
    log::Info("accounts.totp_secrets_resealed", {{"count", std::to_string(resealed.size())}});
    return Status::Ok();
  }

  static constexpr std::string_view kUserColumns =
      "SELECT username, password_hash, role, fhir_user, clearances, scopes, disabled, mfa_enrolled, created_ms, "
      "totp_last_step FROM users";
  static constexpr std::string_view kDeviceColumns =
      "SELECT device_id, cert_sha256, cert_subject, patients, disabled, created_ms FROM devices";

  int64_t NowS() const { return options_.now_ms() / 1000; }

  static UserRecord ReadUser(Stmt& st) {
    UserRecord u;
    u.username = st.Text(0);
    u.password_hash = st.Text(1);
    u.role = st.Text(2);
    u.fhir_user = st.Text(3);
    u.clearances = SplitList(st.Text(4), ',');
    u.scopes = st.Text(5);
    u.disabled = st.Int(6) != 0;
    u.mfa_enrolled = st.Int(7) != 0;
    u.created_ms = st.Int(8);
    u.totp_last_step = st.Int(9);
    return u;
  }

  static DeviceRecord ReadDevice(Stmt& st) {
    DeviceRecord d;
    d.device_id = st.Text(0);
    d.cert_sha256 = st.Text(1);
    d.cert_subject = st.Text(2);
    d.patients = SplitList(st.Text(3), ',');
    d.disabled = st.Int(4) != 0;
    d.created_ms = st.Int(5);
    return d;
  }

  StatusOr<DeviceRecord> OneDevice(const char* where, std::string_view key) {
    std::lock_guard lock(read_mu_);
    Stmt st;
    PV_RETURN_IF_ERROR(st.Prepare(reader_, std::string(kDeviceColumns).append(where).c_str()));
    st.Bind(1, key);
    int rc = st.Step();
    if (rc == SQLITE_DONE) return NotFound("no such device");
    if (rc != SQLITE_ROW) return SqliteError(rc, "read device");
    return ReadDevice(st);
  }

  // REQUIRES: mu_ held, inside a transaction.
  Status UpdateOne(const char* sql, std::string_view key, int64_t value) {
    Stmt st;
    PV_RETURN_IF_ERROR(st.Prepare(db_, sql));
    st.Bind(1, key).Bind(2, value);
    PV_RETURN_IF_ERROR(StepDone(st, "update"));
    if (sqlite3_changes(db_) != 1) return NotFound("no such account");
    return Status::Ok();
  }

  // REQUIRES: mu_ held, inside the change's transaction.
  Status QueueChange(const AccountChange& change) {
    if (!change_builder_) return Status::Ok();
    Stmt st;
    PV_RETURN_IF_ERROR(st.Prepare(db_, "INSERT INTO change_outbox(created, record) VALUES (?1, ?2)"));
    st.Bind(1, options_.now_ms()).Bind(2, change_builder_(change));
    return StepDone(st, "store change record");
  }

  Status DeleteSubjectTokens(std::string_view subject) {
    Stmt st;
    PV_RETURN_IF_ERROR(st.Prepare(db_, "DELETE FROM refresh_tokens WHERE subject = ?1"));
    st.Bind(1, subject);
    return StepDone(st, "revoke refresh tokens");
  }

  // Used tokens stay until their family ends, so a replay is still recognised.
  Status DeleteExpired(int64_t now_s) {
    Stmt st;
    PV_RETURN_IF_ERROR(st.Prepare(db_,
                                  "DELETE FROM refresh_tokens WHERE family_expires_ms <= ?1 "
                                  "OR (used = 0 AND expires_ms <= ?1)"));
    st.Bind(1, now_s * 1000);
    return StepDone(st, "prune refresh tokens");
  }

  StatusOr<int64_t> CountTokens() {
    Stmt st;
    PV_RETURN_IF_ERROR(st.Prepare(db_, "SELECT count(*) FROM refresh_tokens"));
    int rc = st.Step();
    if (rc != SQLITE_ROW) return SqliteError(rc, "count refresh tokens");
    return st.Int(0);
  }

  // Writes (and the reads inside their transactions) go through db_ under
  // mu_. Lookups go through reader_ under read_mu_: an mTLS device lookup
  // runs on a network thread for every request, and must not wait behind a
  // refresh-token write's fsync. WAL lets the reader see the last commit
  // while a write is in progress.
  std::mutex mu_, read_mu_;
  sqlite3* db_;
  sqlite3* reader_ = nullptr;
  std::unique_ptr<crypto::Aead> totp_aead_;
  AccountStoreOptions options_;
  ChangeRecordBuilder change_builder_;  // guarded by mu_
};

}  // namespace

bool IsUserRole(std::string_view role) {
  return role == kRoleClinician || role == kRoleRegistration || role == kRolePrivacyOfficer ||
         role == kRoleSecurityAdmin || role == kRolePatient;
}

bool RoleRequiresMfa(std::string_view role) { return IsUserRole(role) && role != kRolePatient; }

std::string DefaultScopesForRole(std::string_view role) {
  // Broad enough for what the policy engine grants the role, no broader: the
  // engine still decides per resource, scopes can only take away.
  if (role == kRoleClinician) return "openid fhirUser user/*.cruds";
  if (role == kRoleRegistration) {
    return "openid fhirUser user/Patient.crus user/RelatedPerson.crus user/Person.crus user/*.rs";
  }
  if (role == kRolePrivacyOfficer) return "openid fhirUser user/Consent.crus user/*.rs";
  if (role == kRoleSecurityAdmin) return "openid fhirUser user/*.cruds";
  if (role == kRolePatient) return "openid fhirUser patient/*.rs";
  return "";
}

std::string NormalizeUsername(std::string_view username) {
  std::string out(username);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

bool IsValidUsername(std::string_view username) {
  if (username.empty() || username.size() > 64) return false;
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!alnum(username[0])) return false;
  return std::all_of(username.begin(), username.end(),
                     [&](char c) { return alnum(c) || c == '.' || c == '_' || c == '@' || c == '-'; });
}

bool IsValidClearance(std::string_view c) {
  if (c.empty() || c.size() > 32) return false;
  return std::all_of(c.begin(), c.end(), [](char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-';
  });
}

bool IsValidDeviceId(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  return std::all_of(id.begin(), id.end(), [](char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '.';
  });
}

StatusOr<std::shared_ptr<AccountStore>> OpenAccountStore(const std::string& dir, const crypto::Keyring& keyring,
                                                         const AccountStoreOptions& options) {
  auto page_aead = crypto::Aead::New(keyring.Key(crypto::KeyPurpose::kStorage));
  if (!page_aead.ok()) return page_aead.status();
  // The same VFS as the vault database (VaultVfsName): one registration
  // serves both files.
  const std::string vfs_name = VaultVfsName(keyring.vault_id());
  PV_RETURN_IF_ERROR(RegisterEncryptedVfs(vfs_name, std::shared_ptr<const crypto::Aead>(std::move(*page_aead))));
  PV_ASSIGN_OR_RETURN(std::unique_ptr<crypto::Aead> totp_aead,
                      crypto::Aead::New(keyring.Key(crypto::KeyPurpose::kTotpSeal)));
  SecureBytes legacy_key = crypto::DeriveKey(keyring.Key(crypto::KeyPurpose::kTokenSign), kLegacyTotpSealInfo);
  PV_ASSIGN_OR_RETURN(std::unique_ptr<crypto::Aead> legacy_totp_aead, crypto::Aead::New(legacy_key));

  const std::string path = dir + "/" + kAccountsFileName;
  struct stat st;
  const bool existed = ::stat(path.c_str(), &st) == 0;
  sqlite3* db = nullptr;
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_PRIVATECACHE;
  int rc = sqlite3_open_v2(path.c_str(), &db, flags, vfs_name.c_str());
  if (rc != SQLITE_OK) {
    // Extended codes are not on yet: ask for the extended one so a page that
    // fails authentication (SQLITE_IOERR_DATA) is reported as DataLoss.
    if (db != nullptr) rc = sqlite3_extended_errcode(db);
    Status s = SqliteError(rc, "open " + std::string(kAccountsFileName));
    sqlite3_close_v2(db);
    return s;
  }
  // The store owns `db` from here, so every early return closes it.
  auto store = std::make_shared<SqliteAccountStore>(db, std::move(totp_aead), options);
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, 5000);
  PV_RETURN_IF_ERROR(PrepareEncryptedDatabase(db));
  PV_RETURN_IF_ERROR(Exec(db,
                          "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA temp_store=MEMORY; "
                          "PRAGMA mmap_size=0; PRAGMA secure_delete=ON;"));
  // Owner-only like the keyring; SQLite creates files with the umask's mode.
  if (!existed) ::chmod(path.c_str(), 0600);
  // The legacy key schedule lives only until open returns.
  PV_RETURN_IF_ERROR(store->Init(keyring.vault_id(), *legacy_totp_aead));
  // The lookup connection, opened once the schema exists.
  sqlite3* reader = nullptr;
  rc = sqlite3_open_v2(path.c_str(), &reader, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_PRIVATECACHE,
                       vfs_name.c_str());
  if (rc != SQLITE_OK) {
    if (reader != nullptr) rc = sqlite3_extended_errcode(reader);
    sqlite3_close_v2(reader);
    return SqliteError(rc, "open " + std::string(kAccountsFileName) + " for lookups");
  }
  store->AttachReader(reader);  // owned by the store from here
  sqlite3_extended_result_codes(reader, 1);
  sqlite3_busy_timeout(reader, 5000);
  PV_RETURN_IF_ERROR(PrepareEncryptedDatabase(reader));
  PV_RETURN_IF_ERROR(Exec(reader, "PRAGMA temp_store=MEMORY; PRAGMA mmap_size=0; PRAGMA query_only=ON;"));
  return std::shared_ptr<AccountStore>(std::move(store));
}

}  // namespace phivault::store
