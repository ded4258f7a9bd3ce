// Backups of a real vault (SqliteStore, audit log, accounts database) taken
// while the vault is open, as under `serve`: the restored vault opens with
// the same master key and serves the same resources byte for byte, its audit
// log verifies, no patient string is readable in the backup file, every
// backup and restore (refused ones too) leaves exactly one audit entry, and
// a damaged backup is never restored, not even in part.
#include "backup/backup.h"

#include <sys/stat.h>

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <filesystem>
#include <set>

#include "api/importer.h"
#include "api/testing/test_vault.h"
#include "api/vault.h"
#include "audit/audit_log.h"
#include "audit/entry.h"
#include "audit/segment.h"
#include "audit/verify.h"
#include "common/testing/temp_dir.h"
#include "fhir/time.h"
#include "store/account_store.h"

namespace phivault::backup {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using api::testing::TestVault;
using phivault::testing::ReadFile;
using phivault::testing::TempDir;
using phivault::testing::WriteFile;

// Strings of the test patient that must never be readable in a backup.
const std::vector<std::string> kNeedles = {"Quetzalcoatlus", "Wimbleforth", "MRN-777-31337", "555-0142-9876"};

std::vector<json::object> Resources() {
  std::vector<json::object> out;
  out.push_back(json::parse(R"({"resourceType":"Patient","id":"pat-1",
      "identifier":[{"system":"urn:mrn","value":"MRN-777-31337"}],
      "name":[{"family":"Quetzalcoatlus","given":["Wimbleforth"]}],
      "telecom":[{"system":"phone","value":"555-0142-9876"}],"gender":"female","birthDate":"1970-01-02"})")
                    .as_object());
  for (int i = 0; i < 40; ++i) {
    out.push_back(json::parse(R"({"resourceType":"Observation","id":"obs-)" + std::to_string(i) +
                              R"(","status":"final","code":{"text":"Wimbleforth heart rate"},)"
                              R"("subject":{"reference":"Patient/pat-1"},"valueQuantity":{"value":)" +
                              std::to_string(60 + i) + R"(,"unit":"/min"}})")
                      .as_object());
  }
  return out;
}

std::vector<audit::AuditEntry> LogEntries(api::Vault& v) {
  auto raw = v.audit_log()->ReadEntries(0, v.audit_log()->size());
  EXPECT_TRUE(raw.ok());
  std::vector<audit::AuditEntry> out;
  for (const auto& r : raw.ok() ? *raw : std::vector<std::string>{}) {
    auto e = audit::ParseEntry(r);
    EXPECT_TRUE(e.ok());
    if (e.ok()) out.push_back(*e);
  }
  return out;
}

std::vector<audit::AuditEntry> WithAction(const std::vector<audit::AuditEntry>& all, audit::AuditAction a) {
  std::vector<audit::AuditEntry> out;
  for (const auto& e : all) {
    if (e.action == a) out.push_back(e);
  }
  return out;
}

int Mode(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? static_cast<int>(st.st_mode & 0777) : -1;
}

// Names in `dir` starting with `prefix`: staging leftovers.
std::vector<std::string> Leftovers(const std::string& dir, const std::string& prefix) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.starts_with(prefix) && name != prefix) out.push_back(name);
  }
  return out;
}

class BackupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tv_ = TestVault::Create(tmp_);
    ASSERT_NE(tv_.access, nullptr);
    key_ = tv_.config.key;
    api::ImportOptions opts;
    opts.auditor = tv_.vault->audit_trail();
    auto s = api::ImportResources(tv_.vault->store(), Resources(), opts);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    ASSERT_EQ(s->loaded, 41);
    auto accounts = store::OpenAccountStore(tv_.data_dir, tv_.vault->keyring());
    ASSERT_TRUE(accounts.ok()) << accounts.status().ToString();
    store::DeviceRecord dev;
    dev.device_id = "monitor-7";
    dev.cert_sha256 = std::string(64, 'a');
    dev.patients = {"pat-1"};
    ASSERT_TRUE((*accounts)->AddDevice(dev).ok());
    out_ = tmp_.Sub("vault.pvbackup");
  }

  // Every resource as the store serves it.
  std::map<std::string, std::string> Snapshot(api::Vault& v) {
    std::map<std::string, std::string> out;
    for (const auto& r : Resources()) {
      const std::string type(r.at("resourceType").as_string()), id(r.at("id").as_string());
      auto read = v.store()->Read(type, id);
      EXPECT_TRUE(read.ok()) << type << "/" << id << ": " << read.status().ToString();
      if (read.ok()) out[type + "/" + id] = std::to_string(read->version) + " " + read->json;
    }
    return out;
  }

  StatusOr<std::unique_ptr<api::Vault>> OpenAt(const std::string& dir) {
    api::VaultConfig c = tv_.config;
    c.data_dir = dir;
    return api::Vault::Open(c);
  }

  crypto::MasterKeySource WrongKey() {
    crypto::MasterKeySource k;
    k.key_file = tmp_.Sub("wrong.key");
    if (!fs::exists(k.key_file)) {
      EXPECT_TRUE(crypto::GenerateKeyFile(k.key_file).ok());
    }
    return k;
  }

  // Reopens the source vault (closing the test's handle) and returns its log.
  std::vector<audit::AuditEntry> SourceLog() {
    tv_.access.reset();
    tv_.vault.reset();
    auto v = OpenAt(tv_.data_dir);
    EXPECT_TRUE(v.ok()) << v.status().ToString();
    if (!v.ok()) return {};
    auto entries = LogEntries(**v);
    tv_.vault = std::move(*v);
    return entries;
  }

  TempDir tmp_;
  TestVault tv_;
  crypto::MasterKeySource key_;
  std::string out_;
};

TEST_F(BackupTest, BackupOfAnOpenVaultRestoresByteIdentically) {
  const auto before = Snapshot(*tv_.vault);
  // The vault stays open (lock held, log and store running), as under serve.
  auto made = AuditedBackup(tv_.data_dir, key_, out_);
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  EXPECT_EQ(Mode(out_), 0600);
  EXPECT_EQ(made->header.vault_id, tv_.vault->keyring().vault_id());
  EXPECT_TRUE(Leftovers(tmp_.path(), "vault.pvbackup").empty()) << "staging removed";
  std::vector<std::string> names;
  for (const auto& f : made->files) names.push_back(f.name);
  EXPECT_EQ(names, (std::vector<std::string>{"vault.db", "accounts.db", "audit/checkpoints", "audit/seg-000001.log"}));

  // Nothing readable: no patient string in the file.
  const std::string bytes = ReadFile(out_);
  for (const auto& n : kNeedles) EXPECT_EQ(bytes.find(n), std::string::npos) << n << " readable in the backup";

  auto checked = VerifyBackup(out_, key_);
  ASSERT_TRUE(checked.ok()) << checked.status().ToString();
  EXPECT_GT(checked->audit_entries, 0u);
  EXPECT_EQ(checked->files, made->files);

  const std::string restored_dir = tmp_.Sub("restored");
  auto restored = AuditedRestore(out_, key_, restored_dir);
  ASSERT_TRUE(restored.ok()) << restored.status().ToString();
  EXPECT_EQ(Mode(restored_dir), 0700);
  EXPECT_EQ(Mode(restored_dir + "/vault.db"), 0600);
  EXPECT_TRUE(Leftovers(tmp_.path(), "restored").empty());
  uint64_t restored_log_size = 0;
  {
    auto v = OpenAt(restored_dir);
    ASSERT_TRUE(v.ok()) << v.status().ToString();
    EXPECT_EQ((*v)->keyring().vault_id(), made->header.vault_id);
    EXPECT_EQ(Snapshot(**v), before);
    // Exactly one restore entry, naming the backup, last in the log.
    auto entries = LogEntries(**v);
    auto restores = WithAction(entries, audit::AuditAction::kRestore);
    ASSERT_EQ(restores.size(), 1u);
    EXPECT_EQ(entries.back(), restores[0]);
    EXPECT_EQ(restores[0].outcome, audit::AuditOutcome::kAllowed);
    EXPECT_EQ(restores[0].request_id, "backup-" + BackupIdHex(made->header));
    ASSERT_EQ(restores[0].resources.size(), 1u);
    EXPECT_EQ(restores[0].resources[0].type, "Backup");
    EXPECT_EQ(restores[0].resources[0].id, made->header.vault_id);
    EXPECT_EQ(restores[0].resources[0].version, fhir::FormatInstant(made->header.created_ms));
    EXPECT_TRUE(restores[0].agent.subject.starts_with("os-user:"));
    EXPECT_TRUE(restores[0].patients.empty());
    // The restored accounts database came along.
    auto accounts = store::OpenAccountStore(restored_dir, (*v)->keyring());
    ASSERT_TRUE(accounts.ok()) << accounts.status().ToString();
    auto dev = (*accounts)->GetDevice("monitor-7");
    ASSERT_TRUE(dev.ok()) << dev.status().ToString();
    EXPECT_EQ(dev->patients, std::vector<std::string>{"pat-1"});
    restored_log_size = (*v)->audit_log()->size();
    auto vkey = audit::AuditVerifierKey((*v)->keyring());
    ASSERT_TRUE(vkey.ok());
    v->reset();
    auto verified = audit::Verify(restored_dir, *vkey);
    ASSERT_TRUE(verified.ok());
    EXPECT_TRUE(verified->ok) << verified->reason;
    EXPECT_EQ(verified->entries, restored_log_size);
  }
  // Nothing readable in the restored directory either.
  for (const auto& f : testing::FilesBelow(restored_dir)) {
    const std::string content = ReadFile(f);
    for (const auto& n : kNeedles) EXPECT_EQ(content.find(n), std::string::npos) << n << " readable in " << f;
  }

  // The source vault records exactly one backup entry, taken while open.
  auto source = SourceLog();
  auto backups = WithAction(source, audit::AuditAction::kBackup);
  ASSERT_EQ(backups.size(), 1u);
  EXPECT_EQ(backups[0].outcome, audit::AuditOutcome::kAllowed);
  EXPECT_EQ(backups[0].request_id, "backup-" + BackupIdHex(made->header));
  EXPECT_TRUE(WithAction(source, audit::AuditAction::kRestore).empty());
}

TEST_F(BackupTest, WrongMasterKeyIsDeniedWritesNothingAndIsAudited) {
  auto made = AuditedBackup(tv_.data_dir, WrongKey(), out_);
  EXPECT_EQ(made.status().code(), StatusCode::kPermissionDenied);
  EXPECT_FALSE(fs::exists(out_));
  EXPECT_TRUE(Leftovers(tmp_.path(), "vault.pvbackup").empty());
  auto backups = WithAction(SourceLog(), audit::AuditAction::kBackup);
  ASSERT_EQ(backups.size(), 1u);
  EXPECT_EQ(backups[0].outcome, audit::AuditOutcome::kDenied);
  EXPECT_EQ(backups[0].rule, "PERMISSION_DENIED");
}

// The keyring travels in the backup: the master key that opened the vault
// when the backup was taken opens it, also after a rotation (which is why
// docs/DECISIONS.md says to keep retired master keys with their backups).
TEST_F(BackupTest, BackupOpensWithTheMasterKeyOfItsTime) {
  ASSERT_TRUE(CreateBackup(tv_.data_dir, key_, out_).ok());
  crypto::MasterKeySource next;
  next.key_file = tmp_.Sub("next.key");
  ASSERT_TRUE(crypto::GenerateKeyFile(next.key_file).ok());
  ASSERT_TRUE(crypto::Keyring::RotateMasterKey(tv_.data_dir, key_, next).ok());
  EXPECT_TRUE(VerifyBackup(out_, key_).ok());
  EXPECT_EQ(VerifyBackup(out_, next).status().code(), StatusCode::kPermissionDenied);
  // A backup taken after the rotation opens with the new key only.
  const std::string later = tmp_.Sub("later.pvbackup");
  ASSERT_TRUE(CreateBackup(tv_.data_dir, next, later).ok());
  EXPECT_TRUE(VerifyBackup(later, next).ok());
  EXPECT_EQ(VerifyBackup(later, key_).status().code(), StatusCode::kPermissionDenied);
  auto restored = RestoreBackup(later, next, tmp_.Sub("restored"));
  ASSERT_TRUE(restored.ok()) << restored.status().ToString();
  EXPECT_EQ(restored->header.vault_id, tv_.vault->keyring().vault_id());
}

TEST_F(BackupTest, ExistingOutputIsNeverReplaced) {
  WriteFile(out_, "precious");
  auto made = AuditedBackup(tv_.data_dir, key_, out_);
  EXPECT_EQ(made.status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(ReadFile(out_), "precious");
  auto backups = WithAction(SourceLog(), audit::AuditAction::kBackup);
  ASSERT_EQ(backups.size(), 1u);
  EXPECT_EQ(backups[0].outcome, audit::AuditOutcome::kDenied);
}

TEST_F(BackupTest, DamagedBackupIsNeverRestored) {
  ASSERT_TRUE(CreateBackup(tv_.data_dir, key_, out_).ok());
  const std::string good = ReadFile(out_);
  ASSERT_GT(good.size(), 20000u);
  struct Damage {
    std::string what;
    std::string bytes;
  };
  auto flip = [&good](size_t off) {
    std::string b = good;
    b[off] ^= 0x20;
    return b;
  };
  const std::vector<Damage> cases = {
      {"magic", flip(1)},
      {"version", flip(11)},
      {"vault id in the header", flip(20)},
      {"keyring in the header", flip(120)},
      {"first chunk", flip(good.size() / 8)},
      {"middle chunk", flip(good.size() / 2)},
      {"manifest (last chunk)", flip(good.size() - 40)},
      {"truncated", good.substr(0, good.size() - 1)},
      {"truncated to half", good.substr(0, good.size() / 2)},
      {"appended", good + "\n"},
  };
  const std::string target = tmp_.Sub("target");
  const std::string empty_target = tmp_.Sub("empty-target");
  ASSERT_TRUE(fs::create_directory(empty_target));
  for (const auto& c : cases) {
    const std::string file = tmp_.Sub("damaged.pvbackup");
    fs::remove(file);
    WriteFile(file, c.bytes);
    auto v = VerifyBackup(file, key_);
    EXPECT_FALSE(v.ok()) << c.what;
    auto r = AuditedRestore(file, key_, target);
    ASSERT_FALSE(r.ok()) << c.what;
    EXPECT_TRUE(r.status().code() == StatusCode::kDataLoss || r.status().code() == StatusCode::kUnsupported)
        << c.what << ": " << r.status().ToString();
    EXPECT_FALSE(fs::exists(target)) << c.what;
    r = AuditedRestore(file, key_, empty_target);
    ASSERT_FALSE(r.ok()) << c.what;
    EXPECT_TRUE(fs::is_empty(empty_target)) << c.what;
    EXPECT_TRUE(Leftovers(tmp_.path(), "target").empty()) << c.what;
    EXPECT_TRUE(Leftovers(tmp_.path(), "empty-target").empty()) << c.what;
  }
  // The intact file still restores into the same empty directory.
  ASSERT_TRUE(AuditedRestore(out_, key_, empty_target).ok());
  EXPECT_TRUE(fs::exists(empty_target + "/vault.db"));
}

TEST_F(BackupTest, TamperedAuditLogInsideTheBackupFailsVerification) {
  tv_.access.reset();
  tv_.vault.reset();
  // Damage a record in the middle of the live log (payload byte, CRC
  // unchanged): the backup copies evidence as it is, verification names it.
  const std::string seg = tv_.data_dir + "/audit/seg-000001.log";
  std::string bytes = ReadFile(seg);
  ASSERT_GT(bytes.size(), audit::kSegmentHeaderSize + audit::kRecordHeaderSize + 40);
  bytes[audit::kSegmentHeaderSize + audit::kRecordHeaderSize + 20] ^= 0x01;
  WriteFile(seg, bytes);
  ASSERT_TRUE(CreateBackup(tv_.data_dir, key_, out_).ok());
  auto v = VerifyBackup(out_, key_);
  ASSERT_EQ(v.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(v.status().message().find("audit log in the backup does not verify"), std::string::npos)
      << v.status().message();
  EXPECT_NE(v.status().message().find("index 0"), std::string::npos) << v.status().message();
  EXPECT_FALSE(RestoreBackup(out_, key_, tmp_.Sub("restored")).ok());
  EXPECT_FALSE(fs::exists(tmp_.Sub("restored")));
}

// Appends `n` entries to the log of the (closed) vault in `dir` and returns
// a checkpoint signed over them, as `audit publish` would carry it away.
std::string AppendAndSign(const std::string& dir, const crypto::MasterKeySource& key, const std::string& event,
                          int n) {
  auto keyring = crypto::Keyring::Open(dir, key);
  EXPECT_TRUE(keyring.ok());
  if (!keyring.ok()) return "";
  auto log = audit::AuditLog::Open(dir, **keyring);
  EXPECT_TRUE(log.ok());
  if (!log.ok()) return "";
  for (int i = 0; i < n; ++i) {
    audit::AuditEntry e;
    e.time_ms = fhir::NowMillis();
    e.action = audit::AuditAction::kRead;
    e.event = event + "-" + std::to_string(i);
    EXPECT_TRUE((*log)->AppendAndWait(audit::Serialize(e)).ok());
  }
  auto note = (*log)->SignCheckpoint();
  EXPECT_TRUE(note.ok());
  return note.ok() ? *note : "";
}

// Checkpoints published outside the vault: those a backup is old enough to
// cover must agree with its log, newer ones are counted but cannot be
// checked, and a backup whose history was rewritten and re-signed with the
// vault's own key (a fork; internally consistent) is refused by verify and
// restore alike.
TEST_F(BackupTest, PublishedCheckpointsRefuseABackupWithARewrittenHistory) {
  tv_.access.reset();
  tv_.vault.reset();
  // The attacker's copy: the same keyring (stolen master key) and history so far.
  const std::string forked = tmp_.Sub("forked");
  fs::copy(tv_.data_dir, forked, fs::copy_options::recursive);

  std::vector<std::string> published;
  published.push_back(AppendAndSign(tv_.data_dir, key_, "real", 3));
  ASSERT_TRUE(CreateBackup(tv_.data_dir, key_, out_).ok());
  published.push_back(AppendAndSign(tv_.data_dir, key_, "real-later", 50));

  CrossCheck cross;
  cross.published = published;
  auto good = VerifyBackup(out_, key_, cross);
  ASSERT_TRUE(good.ok()) << good.status().ToString();
  EXPECT_EQ(good->published_checked, 1u);
  EXPECT_EQ(good->published_beyond, 1u);
  const std::string restored = tmp_.Sub("restored");
  auto r = RestoreBackup(out_, key_, restored, cross);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->published_checked, 1u);

  // Other entries where the real ones went, checkpoints re-signed with the real key.
  AppendAndSign(forked, key_, "forged", 10);
  const std::string forged_backup = tmp_.Sub("forged.pvbackup");
  ASSERT_TRUE(CreateBackup(forked, key_, forged_backup).ok());
  ASSERT_TRUE(VerifyBackup(forged_backup, key_).ok()) << "self-consistent: only outside knowledge can tell";
  auto v = VerifyBackup(forged_backup, key_, cross);
  ASSERT_EQ(v.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(v.status().message().find("fork"), std::string::npos) << v.status().message();
  const std::string target = tmp_.Sub("forged-restored");
  EXPECT_EQ(AuditedRestore(forged_backup, key_, target, "", cross).status().code(), StatusCode::kDataLoss);
  EXPECT_FALSE(fs::exists(target));
  EXPECT_TRUE(Leftovers(tmp_.path(), "forged-restored").empty());

  // Only checkpoints newer than the backup: nothing can be cross-checked,
  // which is also what a log cut short to hide entries looks like.
  CrossCheck newer_only;
  newer_only.published = {published.back()};
  auto uncovered = VerifyBackup(out_, key_, newer_only);
  EXPECT_EQ(uncovered.status().code(), StatusCode::kPreconditionFailed) << uncovered.status().ToString();
  EXPECT_FALSE(RestoreBackup(out_, key_, tmp_.Sub("uncovered"), newer_only).ok());
  EXPECT_FALSE(fs::exists(tmp_.Sub("uncovered")));
  newer_only.allow_uncovered = true;  // the operator knows the backup predates publication
  auto allowed = VerifyBackup(out_, key_, newer_only);
  ASSERT_TRUE(allowed.ok()) << allowed.status().ToString();
  EXPECT_EQ(allowed->published_checked, 0u);
  EXPECT_EQ(allowed->published_beyond, 1u);
}

// The log copy may hold entries of writes committed after the database copy
// (simulated: an entry naming write record 1000, which the database never
// handed out). The restored database must not hand that id out again, or
// crash recovery would take a new write's record as already logged.
TEST_F(BackupTest, RestoredOutboxIdsStartAboveEveryIdInTheLog) {
  tv_.access.reset();
  tv_.vault.reset();
  {
    auto keyring = crypto::Keyring::Open(tv_.data_dir, key_);
    ASSERT_TRUE(keyring.ok());
    auto log = audit::AuditLog::Open(tv_.data_dir, **keyring);
    ASSERT_TRUE(log.ok());
    audit::AuditEntry later;
    later.time_ms = fhir::NowMillis();
    later.action = audit::AuditAction::kCreate;
    later.write_record = 1000;
    ASSERT_TRUE((*log)->AppendAndWait(audit::Serialize(later)).ok());
  }
  ASSERT_TRUE(CreateBackup(tv_.data_dir, key_, out_).ok());
  const std::string restored_dir = tmp_.Sub("restored");
  ASSERT_TRUE(RestoreBackup(out_, key_, restored_dir).ok());
  auto v = OpenAt(restored_dir);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  api::ImportOptions opts;
  opts.auditor = (*v)->audit_trail();
  std::vector<json::object> one;
  one.push_back(json::parse(R"({"resourceType":"Observation","id":"obs-new","status":"final",)"
                            R"("code":{"text":"x"},"subject":{"reference":"Patient/pat-1"}})")
                    .as_object());
  auto s = api::ImportResources((*v)->store(), std::move(one), opts);
  ASSERT_TRUE(s.ok() && s->loaded == 1);
  std::vector<int64_t> ids;
  for (const auto& e : LogEntries(**v)) {
    if (e.write_record != 0) ids.push_back(e.write_record);
  }
  ASSERT_GE(ids.size(), 3u);  // the original import, the simulated entry, the new write
  EXPECT_EQ(ids[ids.size() - 2], 1000);
  EXPECT_GT(ids.back(), 1000) << "a new write reused an id the restored log already names";
}

TEST_F(BackupTest, RefusedRestoresAreAuditedWhereTheOperatorSays) {
  ASSERT_TRUE(CreateBackup(tv_.data_dir, key_, out_).ok());
  tv_.access.reset();
  tv_.vault.reset();
  // Wrong key: denied, recorded in the named vault's inbox.
  auto r = AuditedRestore(out_, WrongKey(), tmp_.Sub("restored"), tv_.data_dir);
  EXPECT_EQ(r.status().code(), StatusCode::kPermissionDenied);
  EXPECT_FALSE(fs::exists(tmp_.Sub("restored")));
  // A non-empty target is refused and left alone.
  const std::string busy = tmp_.Sub("busy");
  ASSERT_TRUE(fs::create_directory(busy));
  WriteFile(busy + "/keep.txt", "mine");
  r = AuditedRestore(out_, key_, busy, tv_.data_dir);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ReadFile(busy + "/keep.txt"), "mine");
  EXPECT_EQ(std::distance(fs::directory_iterator(busy), fs::directory_iterator()), 1);

  auto restores = WithAction(SourceLog(), audit::AuditAction::kRestore);
  ASSERT_EQ(restores.size(), 2u);
  for (const auto& e : restores) {
    EXPECT_EQ(e.outcome, audit::AuditOutcome::kDenied);
    ASSERT_EQ(e.resources.size(), 1u) << "the header still names the backup";
    EXPECT_EQ(e.resources[0].id, tv_.vault->keyring().vault_id());
  }
  // Both may carry the same millisecond, so the inbox order between them is open.
  std::set<std::string> rules = {restores[0].rule, restores[1].rule};
  EXPECT_EQ(rules, (std::set<std::string>{"PERMISSION_DENIED", "INVALID_ARGUMENT"}));
}

}  // namespace
}  // namespace phivault::backup
