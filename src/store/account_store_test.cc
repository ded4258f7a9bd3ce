#include "store/account_store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <future>
#include <mutex>
#include <thread>

#include "auth/password.h"
#include "auth/totp.h"
#include "common/testing/temp_dir.h"
#include "crypto/aead.h"
#include "crypto/keyring.h"
#include "store/sqlite_store.h"

namespace phivault::store {
namespace {

using testing::TempDir;

class AccountStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    key_file_ = tmp_.Sub("master.key");
    ASSERT_TRUE(crypto::GenerateKeyFile(key_file_).ok());
    data_ = tmp_.Sub("data");
    std::filesystem::create_directories(data_);
    crypto::MasterKeySource src;
    src.key_file = key_file_;
    auto kr = crypto::Keyring::Create(data_, src);
    ASSERT_TRUE(kr.ok()) << kr.status().ToString();
    keyring_ = std::move(*kr);
    Reopen();
  }

  void Reopen() {
    store_.reset();
    auto s = OpenAccountStore(data_, *keyring_);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
  }

  static std::string Hash(std::string_view pw) {
    auth::PasswordHashParams p;
    p.opslimit = 1;
    p.memlimit = 8192;
    auto h = auth::HashPassword(pw, p);
    EXPECT_TRUE(h.ok());
    return h.ok() ? *h : "";
  }

  static UserRecord User(std::string name, std::string role, std::string fhir_user = "") {
    UserRecord u;
    u.username = std::move(name);
    u.role = std::move(role);
    u.fhir_user = std::move(fhir_user);
    u.password_hash = Hash("correct horse battery 9");
    return u;
  }

  static DeviceRecord Device(std::string id, char digest_fill) {
    DeviceRecord d;
    d.device_id = std::move(id);
    d.cert_sha256 = std::string(64, digest_fill);
    d.cert_subject = "CN=monitor-1,O=Ward 3";
    d.patients = {"p1", "p2"};
    return d;
  }

  TempDir tmp_;
  std::string key_file_, data_;
  std::unique_ptr<crypto::Keyring> keyring_;
  std::shared_ptr<AccountStore> store_;
};

TEST_F(AccountStoreTest, CreateGetListAndCaseFolding) {
  UserRecord u = User("Alice.Doc", "clinician", "Practitioner/pr1");
  u.clearances = {"R", "HIV"};
  ASSERT_TRUE(store_->CreateUser(u, nullptr).ok());
  auto got = store_->GetUser("alice.doc");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->username, "alice.doc");
  EXPECT_EQ(got->role, "clinician");
  EXPECT_EQ(got->fhir_user, "Practitioner/pr1");
  EXPECT_EQ(got->clearances, (std::vector<std::string>{"R", "HIV"}));
  EXPECT_EQ(got->scopes, DefaultScopesForRole("clinician"));
  EXPECT_FALSE(got->disabled);
  EXPECT_FALSE(got->mfa_enrolled);
  EXPECT_GT(got->created_ms, 0);
  EXPECT_TRUE(auth::VerifyPassword(got->password_hash, "correct horse battery 9"));
  EXPECT_TRUE(store_->GetUser("ALICE.DOC").ok());

  EXPECT_EQ(store_->CreateUser(User("alice.doc", "clinician", "Practitioner/x"), nullptr).code(),
            StatusCode::kAlreadyExists);
  EXPECT_EQ(store_->GetUser("nobody").status().code(), StatusCode::kNotFound);

  UserRecord p = User("pat", "patient", "Patient/123");
  p.scopes = "openid patient/Observation.rs";
  ASSERT_TRUE(store_->CreateUser(p, nullptr).ok());
  auto all = store_->ListUsers();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].username, "alice.doc");
  EXPECT_EQ((*all)[1].scopes, "openid patient/Observation.rs");
}

TEST_F(AccountStoreTest, RejectsInvalidUsers) {
  EXPECT_EQ(store_->CreateUser(User("", "clinician", "Practitioner/1"), nullptr).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->CreateUser(User("a b", "clinician", "Practitioner/1"), nullptr).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->CreateUser(User(std::string(65, 'a'), "clinician", "Practitioner/1"), nullptr).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->CreateUser(User("bob", "root"), nullptr).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->CreateUser(User("bob", "clinician"), nullptr).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->CreateUser(User("bob", "clinician", "Patient/1"), nullptr).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->CreateUser(User("bob", "patient", "Practitioner/1"), nullptr).code(),
            StatusCode::kInvalidArgument);
  UserRecord bad_clear = User("bob", "registration");
  bad_clear.clearances = {"R,V"};
  EXPECT_EQ(store_->CreateUser(bad_clear, nullptr).code(), StatusCode::kInvalidArgument);
  UserRecord plain = User("bob", "registration");
  plain.password_hash = "hunter2";
  EXPECT_EQ(store_->CreateUser(plain, nullptr).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(store_->CreateUser(User("bob", "registration"), nullptr).ok());
}

TEST_F(AccountStoreTest, TotpSecretIsSealedAndReplayGuardIsDurable) {
  SecureBytes secret = auth::GenerateTotpSecret();
  ASSERT_TRUE(store_->CreateUser(User("carol", "security-admin"), &secret).ok());
  EXPECT_TRUE(store_->GetUser("carol")->mfa_enrolled);
  auto back = store_->GetTotpSecret("carol");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(back->Equals(secret));

  EXPECT_TRUE(store_->AcceptTotpStep("carol", 100));
  EXPECT_FALSE(store_->AcceptTotpStep("carol", 100));
  EXPECT_FALSE(store_->AcceptTotpStep("carol", 99));
  EXPECT_FALSE(store_->AcceptTotpStep("nobody", 100));
  Reopen();
  EXPECT_FALSE(store_->AcceptTotpStep("carol", 100)) << "the guard survives a restart";
  EXPECT_TRUE(store_->AcceptTotpStep("carol", 101));

  // Reset: new secret, guard cleared.
  SecureBytes fresh = auth::GenerateTotpSecret();
  ASSERT_TRUE(store_->SetTotpSecret("carol", fresh).ok());
  EXPECT_TRUE(store_->GetTotpSecret("carol")->Equals(fresh));
  EXPECT_TRUE(store_->AcceptTotpStep("carol", 50));

  ASSERT_TRUE(store_->CreateUser(User("dave", "patient", "Patient/9"), nullptr).ok());
  EXPECT_EQ(store_->GetTotpSecret("dave").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->SetTotpSecret("nobody", fresh).code(), StatusCode::kNotFound);
}

// TOTP secrets have their own key purpose. A secret sealed the old way
// (under a key derived from the token-signing key) is re-sealed under it at
// the next open, so a later token-key rotation cannot lock MFA users out.
TEST_F(AccountStoreTest, LegacySealedTotpSecretsAreResealedUnderTheirOwnKey) {
  SecureBytes secret = auth::GenerateTotpSecret();
  ASSERT_TRUE(store_->CreateUser(User("hana", "security-admin"), &secret).ok());
  store_.reset();

  // What a vault from before kTotpSeal holds: the same secret sealed with
  // HKDF(token-signing key, "phivault/totp-seal/v1"), AAD "phivault/totp/v1\0<user>".
  auto legacy = crypto::Aead::New(
      crypto::DeriveKey(keyring_->Key(crypto::KeyPurpose::kTokenSign), "phivault/totp-seal/v1"));
  ASSERT_TRUE(legacy.ok());
  std::string aad = "phivault/totp/v1";
  aad += '\0';
  aad += "hana";
  const std::string legacy_sealed = (*legacy)->Seal(secret.view(), aad);
  auto raw_column = [&](const char* sql, const std::string* bind) {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open_v2((data_ + "/accounts.db").c_str(), &db, SQLITE_OPEN_READWRITE,
                              VaultVfsName(keyring_->vault_id()).c_str()),
              SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, sql, -1, &st, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
    if (bind) sqlite3_bind_blob(st, 1, bind->data(), static_cast<int>(bind->size()), SQLITE_TRANSIENT);
    std::string out;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) == SQLITE_BLOB) {
      out.assign(static_cast<const char*>(sqlite3_column_blob(st, 0)), sqlite3_column_bytes(st, 0));
    }
    sqlite3_finalize(st);
    sqlite3_close_v2(db);
    return out;
  };
  raw_column("UPDATE users SET totp_secret_sealed = ?1 WHERE username = 'hana'", &legacy_sealed);
  ASSERT_EQ(raw_column("SELECT totp_secret_sealed FROM users WHERE username = 'hana'", nullptr), legacy_sealed);

  Reopen();
  auto back = store_->GetTotpSecret("hana");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(back->Equals(secret));
  store_.reset();
  const std::string now_sealed = raw_column("SELECT totp_secret_sealed FROM users WHERE username = 'hana'", nullptr);
  EXPECT_NE(now_sealed, legacy_sealed);
  EXPECT_FALSE((*legacy)->Open(now_sealed, aad).ok()) << "still sealed under the token-signing key";
  auto own = crypto::Aead::New(keyring_->Key(crypto::KeyPurpose::kTotpSeal));
  ASSERT_TRUE(own.ok());
  auto opened = (*own)->Open(now_sealed, aad);
  ASSERT_TRUE(opened.ok());
  EXPECT_TRUE(SecureBytes::From(*opened).Equals(secret));
}

TEST_F(AccountStoreTest, ConcurrentTotpStepIsAcceptedOnce) {
  ASSERT_TRUE(store_->CreateUser(User("erin", "registration"), nullptr).ok());
  std::atomic<int> accepted{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] {
      if (store_->AcceptTotpStep("erin", 7)) accepted++;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(accepted.load(), 1);
}

TEST_F(AccountStoreTest, DisableAndPasswordChange) {
  ASSERT_TRUE(store_->CreateUser(User("frank", "privacy-officer"), nullptr).ok());
  auth::RefreshTokenRecord r{"frank", "openid", "fam1", 2'000'000'000, 2'000'000'000, false};
  ASSERT_TRUE(store_->Insert(std::string(32, 'a'), r).ok());
  ASSERT_TRUE(store_->SetUserDisabled("frank", true).ok());
  EXPECT_TRUE(store_->GetUser("frank")->disabled);
  EXPECT_EQ(*store_->RefreshTokenCount(), 0) << "disabling revokes refresh tokens";
  ASSERT_TRUE(store_->SetUserDisabled("frank", false).ok());
  EXPECT_FALSE(store_->GetUser("frank")->disabled);
  EXPECT_EQ(store_->SetUserDisabled("nobody", true).code(), StatusCode::kNotFound);

  std::string h = Hash("another passphrase 77");
  ASSERT_TRUE(store_->SetPasswordHash("frank", h).ok());
  EXPECT_TRUE(auth::VerifyPassword(store_->GetUser("frank")->password_hash, "another passphrase 77"));
  EXPECT_EQ(store_->SetPasswordHash("frank", "plain").code(), StatusCode::kInvalidArgument);
}

TEST_F(AccountStoreTest, Devices) {
  ASSERT_TRUE(store_->AddDevice(Device("monitor-1", 'a')).ok());
  EXPECT_EQ(store_->AddDevice(Device("monitor-1", 'b')).code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(store_->AddDevice(Device("monitor-2", 'a')).code(), StatusCode::kAlreadyExists) << "same certificate";
  EXPECT_EQ(store_->AddDevice(Device("bad id", 'c')).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->AddDevice(Device("m3", 'A')).code(), StatusCode::kInvalidArgument) << "upper-case hex";
  DeviceRecord no_patients = Device("m4", 'd');
  no_patients.patients.clear();
  EXPECT_EQ(store_->AddDevice(no_patients).code(), StatusCode::kInvalidArgument);
  DeviceRecord bad_patient = Device("m5", 'e');
  bad_patient.patients = {"a,b"};
  EXPECT_EQ(store_->AddDevice(bad_patient).code(), StatusCode::kInvalidArgument);

  auto d = store_->FindDeviceByCert(std::string(64, 'a'));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->device_id, "monitor-1");
  EXPECT_EQ(d->cert_subject, "CN=monitor-1,O=Ward 3");
  EXPECT_EQ(d->patients, (std::vector<std::string>{"p1", "p2"}));
  EXPECT_EQ(store_->FindDeviceByCert(std::string(64, 'f')).status().code(), StatusCode::kNotFound);
  ASSERT_TRUE(store_->SetDeviceDisabled("monitor-1", true).ok());
  EXPECT_TRUE(store_->GetDevice("monitor-1")->disabled);
  EXPECT_EQ(store_->SetDeviceDisabled("nope", true).code(), StatusCode::kNotFound);
  ASSERT_TRUE(store_->AddDevice(Device("monitor-0", 'b')).ok());
  auto all = store_->ListDevices();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].device_id, "monitor-0");
}

// A device's certificate is looked up on a network thread for each of its
// requests. That lookup must not wait while a write holds the store (here a
// user being created, held inside its transaction by the change-record
// builder), and it sees the last committed state, not the write in flight.
TEST_F(AccountStoreTest, LookupsDoNotWaitForAWriteInProgress) {
  ASSERT_TRUE(store_->AddDevice(Device("monitor-1", 'a')).ok());
  std::mutex mu;
  std::condition_variable cv;
  bool inside = false, release = false, write_returned = false;
  store_->SetChangeRecordBuilder([&](const AccountChange& c) {
    std::unique_lock lk(mu);
    inside = true;
    cv.notify_all();
    cv.wait(lk, [&] { return release; });
    return c.kind + "|" + c.id;
  });
  std::thread writer([&] {
    Status s = store_->CreateUser(User("hank", "clinician", "Practitioner/h"), nullptr);
    EXPECT_TRUE(s.ok()) << s.ToString();
    std::lock_guard lk(mu);
    write_returned = true;
    cv.notify_all();
  });
  {
    std::unique_lock lk(mu);
    cv.wait(lk, [&] { return inside || write_returned; });
  }
  if (!inside) {
    writer.join();
    FAIL() << "the write never reached its change record";
  }
  // The write now holds the store's write lock and its SQLite transaction.
  auto lookups = std::async(std::launch::async, [&] {
    auto d = store_->FindDeviceByCert(std::string(64, 'a'));
    EXPECT_TRUE(d.ok()) << d.status().ToString();
    EXPECT_EQ(store_->GetUser("hank").status().code(), StatusCode::kNotFound) << "not committed yet";
    EXPECT_TRUE(store_->ListDevices().ok());
  });
  // Generous: this bounds a wait that must not happen at all; it is not a
  // speed check. Without the lookup connection the lookups wait for release.
  const bool finished = lookups.wait_for(std::chrono::seconds(20)) == std::future_status::ready;
  EXPECT_TRUE(finished) << "a lookup waited for the write in progress";
  {
    std::lock_guard lk(mu);
    release = true;
  }
  cv.notify_all();
  writer.join();
  lookups.get();
  auto hank = store_->GetUser("hank");
  ASSERT_TRUE(hank.ok()) << "a committed write is seen by the next lookup: " << hank.status().ToString();
  EXPECT_EQ(hank->role, "clinician");
}

TEST_F(AccountStoreTest, EveryChangeKeepsItsAuditRecordAndAFailedChangeKeepsNone) {
  store_->SetChangeRecordBuilder([](const AccountChange& c) { return c.kind + "|" + c.id + "|" + c.action; });
  ASSERT_TRUE(store_->CreateUser(User("gina", "clinician", "Practitioner/g"), nullptr).ok());
  ASSERT_TRUE(store_->SetUserDisabled("gina", true).ok());
  ASSERT_TRUE(store_->SetPasswordHash("gina", Hash("yet another pass 12")).ok());
  ASSERT_TRUE(store_->SetTotpSecret("gina", SecureBytes::From("0123456789abcdef")).ok());
  ASSERT_TRUE(store_->AddDevice(Device("pump-1", 'c')).ok());
  ASSERT_TRUE(store_->SetDeviceDisabled("pump-1", true).ok());
  // Refused changes store nothing, record included.
  EXPECT_FALSE(store_->CreateUser(User("gina", "clinician", "Practitioner/g"), nullptr).ok());
  EXPECT_FALSE(store_->SetUserDisabled("nobody", true).ok());

  Reopen();  // durable with the changes
  auto pending = store_->PendingChangeRecords();
  ASSERT_TRUE(pending.ok());
  std::vector<std::string> records;
  for (const auto& p : *pending) records.push_back(p.record);
  EXPECT_EQ(records, (std::vector<std::string>{"user|gina|add", "user|gina|disable", "user|gina|password",
                                               "user|gina|mfa-reset", "device|pump-1|add", "device|pump-1|disable"}));
  for (const auto& p : *pending) ASSERT_TRUE(store_->DropChangeRecord(p.id).ok());
  EXPECT_TRUE(store_->PendingChangeRecords()->empty());
}

TEST_F(AccountStoreTest, RefreshTokenStoreSemantics) {
  auth::RefreshTokenRecord r{"alice", "openid", "famA", 1000, 5000, false};
  ASSERT_TRUE(store_->Insert(std::string(32, '\x01'), r).ok());
  EXPECT_EQ(store_->Insert(std::string(32, '\x01'), r).code(), StatusCode::kAlreadyExists);
  auto first = store_->MarkUsed(std::string(32, '\x01'));
  ASSERT_TRUE(first.ok());
  EXPECT_FALSE(first->used);
  EXPECT_EQ(first->subject, "alice");
  EXPECT_EQ(first->family, "famA");
  EXPECT_EQ(first->expires_at, 1000);
  EXPECT_EQ(first->family_expires_at, 5000);
  auto second = store_->MarkUsed(std::string(32, '\x01'));
  ASSERT_TRUE(second.ok());
  EXPECT_TRUE(second->used);
  EXPECT_EQ(store_->MarkUsed(std::string(32, '\x02')).status().code(), StatusCode::kNotFound);

  ASSERT_TRUE(store_->Insert(std::string(32, '\x03'), {"bob", "", "famB", 1000, 5000, false}).ok());
  ASSERT_TRUE(store_->Insert(std::string(32, '\x04'), {"bob", "", "famC", 3000, 5000, false}).ok());
  EXPECT_TRUE(*store_->RefreshFamilyLive("famB", 2000));
  store_->RevokeFamily("famB");
  EXPECT_EQ(store_->MarkUsed(std::string(32, '\x03')).status().code(), StatusCode::kNotFound);
  EXPECT_FALSE(*store_->RefreshFamilyLive("famB", 2000)) << "revoked";
  EXPECT_TRUE(*store_->RefreshFamilyLive("famA", 2000)) << "a used token still marks a live login";
  EXPECT_FALSE(*store_->RefreshFamilyLive("famA", 5000)) << "the login reached its end";
  EXPECT_FALSE(*store_->RefreshFamilyLive("never", 2000));
  // At 2000: the unused famC token lives on; the used famA token stays until its family ends.
  store_->Prune(2000);
  EXPECT_EQ(*store_->RefreshTokenCount(), 2);
  store_->Prune(5000);
  EXPECT_EQ(*store_->RefreshTokenCount(), 0);
}

TEST_F(AccountStoreTest, WorksWithRefreshTokenManager) {
  auth::RefreshTokenManager mgr(store_);
  auto t = mgr.Issue("alice", "openid", 100);
  ASSERT_TRUE(t.ok());
  auto r1 = mgr.Rotate(*t, 200);
  ASSERT_TRUE(r1.ok()) << r1.status().ToString();
  EXPECT_EQ(r1->record.subject, "alice");
  Reopen();
  auth::RefreshTokenManager mgr2(store_);
  EXPECT_FALSE(mgr2.Rotate(*t, 300).ok()) << "reuse after restart is still detected";
  EXPECT_FALSE(mgr2.Rotate(r1->token, 300).ok()) << "the reuse revoked the whole family";
}

TEST_F(AccountStoreTest, NothingReadableAtRest) {
  const std::string name = "zebulon.quartermaine";
  UserRecord u = User(name, "privacy-officer", "Practitioner/prac-zq-4711");
  u.clearances = {"SENSITIVEXYZ"};
  SecureBytes secret = auth::GenerateTotpSecret();
  const std::string b32 = auth::Base32Encode(secret.view());
  ASSERT_TRUE(store_->CreateUser(u, &secret).ok());
  DeviceRecord d = Device("infusion-pump-zq", 'c');
  d.cert_subject = "CN=pump-subject-zq";
  d.patients = {"patient-zq-0815"};
  ASSERT_TRUE(store_->AddDevice(d).ok());
  const std::string hash = store_->GetUser(name)->password_hash;

  auto scan = [&](bool expect_files) {
    size_t files = 0;
    for (const std::string& f : testing::FilesBelow(data_)) {
      if (f.find("accounts.db") == std::string::npos) continue;
      ++files;
      std::string bytes = testing::ReadFile(f);
      for (std::string_view needle : {std::string_view(name), std::string_view("privacy-officer"),
                                      std::string_view("prac-zq-4711"), std::string_view("SENSITIVEXYZ"),
                                      std::string_view(b32), secret.view(), std::string_view("$argon2id$"),
                                      std::string_view(hash), std::string_view("infusion-pump-zq"),
                                      std::string_view("pump-subject-zq"), std::string_view("patient-zq-0815"),
                                      std::string_view("CREATE TABLE")}) {
        EXPECT_EQ(bytes.find(needle), std::string::npos) << f << " contains a plaintext value";
      }
    }
    if (expect_files) {
      EXPECT_GE(files, 1u);
    }
  };
  scan(true);
  Reopen();  // closing checkpoints the WAL into the database file
  store_.reset();
  scan(true);
  Reopen();
  auto back = store_->GetUser(name);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->fhir_user, "Practitioner/prac-zq-4711");
  EXPECT_TRUE(store_->GetTotpSecret(name)->Equals(secret));
  EXPECT_EQ(store_->GetDevice("infusion-pump-zq")->patients, d.patients);
}

TEST_F(AccountStoreTest, AnotherVaultsKeyCannotOpen) {
  ASSERT_TRUE(store_->CreateUser(User("gina", "registration"), nullptr).ok());
  store_.reset();
  // A second vault: copy its accounts file over ours' place.
  std::string other_dir = tmp_.Sub("other");
  std::filesystem::create_directories(other_dir);
  std::string other_key = tmp_.Sub("other.key");
  ASSERT_TRUE(crypto::GenerateKeyFile(other_key).ok());
  crypto::MasterKeySource src;
  src.key_file = other_key;
  auto other = crypto::Keyring::Create(other_dir, src);
  ASSERT_TRUE(other.ok());
  std::filesystem::copy_file(data_ + "/accounts.db", other_dir + "/accounts.db");
  auto s = OpenAccountStore(other_dir, **other);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kDataLoss) << s.status().ToString();
}

TEST_F(AccountStoreTest, TotpSecretMovedToAnotherRowFailsToOpen) {
  SecureBytes s1 = auth::GenerateTotpSecret();
  ASSERT_TRUE(store_->CreateUser(User("hank", "clinician", "Practitioner/h"), &s1).ok());
  ASSERT_TRUE(store_->CreateUser(User("ivan", "clinician", "Practitioner/i"), nullptr).ok());
  store_.reset();
  // Re-open the raw database through the encrypting VFS (already registered
  // with this vault's key by OpenAccountStore) and copy the sealed secret.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2((data_ + "/accounts.db").c_str(), &db, SQLITE_OPEN_READWRITE,
                            VaultVfsName(keyring_->vault_id()).c_str()),
            SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "UPDATE users SET totp_secret_sealed = (SELECT totp_secret_sealed FROM users WHERE "
                         "username='hank'), mfa_enrolled = 1 WHERE username = 'ivan'",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close_v2(db);
  Reopen();
  EXPECT_EQ(store_->GetTotpSecret("ivan").status().code(), StatusCode::kDataLoss);
  EXPECT_TRUE(store_->GetTotpSecret("hank").ok());
}

}  // namespace
}  // namespace phivault::store
