#include "store/audit_index.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "common/testing/temp_dir.h"
#include "crypto/keyring.h"
#include "store/encrypted_vfs.h"
#include "store/sqlite_store.h"

namespace phivault::store {
namespace {

using testing::TempDir;

constexpr AuditKey P = AuditKey::kPatient;
constexpr AuditKey A = AuditKey::kAgent;

class AuditIndexTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string key_file = tmp_.Sub("master.key");
    ASSERT_TRUE(crypto::GenerateKeyFile(key_file).ok());
    data_ = tmp_.Sub("data");
    std::filesystem::create_directories(data_);
    crypto::MasterKeySource src;
    src.key_file = key_file;
    auto kr = crypto::Keyring::Create(data_, src);
    ASSERT_TRUE(kr.ok()) << kr.status().ToString();
    keyring_ = std::move(*kr);
    Reopen();
  }

  void Reopen() {
    index_.reset();
    auto i = OpenAuditIndex(data_, *keyring_);
    ASSERT_TRUE(i.ok()) << i.status().ToString();
    index_ = std::move(*i);
  }

  std::vector<uint64_t> For(std::string_view patient, uint64_t start = 0, uint64_t end = UINT64_MAX,
                            size_t limit = SIZE_MAX) {
    return ForKey(P, patient, start, end, limit);
  }
  std::vector<uint64_t> ForKey(AuditKey kind, std::string_view value, uint64_t start = 0,
                               uint64_t end = UINT64_MAX, size_t limit = SIZE_MAX) {
    auto r = index_->EntriesFor(kind, value, start, end, limit);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : std::vector<uint64_t>{};
  }

  TempDir tmp_;
  std::string data_;
  std::unique_ptr<crypto::Keyring> keyring_;
  std::unique_ptr<AuditIndex> index_;
};

TEST_F(AuditIndexTest, ExtendsCoverageAndFindsEntriesByPatientAcrossReopen) {
  auto c = index_->Coverage();
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->through, 0u);
  EXPECT_TRUE(c->root.empty());

  ASSERT_TRUE(index_->Extend(0, {3, std::string(32, 'a')}, {{P, "p1", 0}, {P, "p2", 1}, {P, "p1", 2}}).ok());
  ASSERT_TRUE(index_->Extend(3, {6, std::string(32, 'b')}, {{P, "p2", 4}, {P, "p1", 5}, {P, "p1", 5}}).ok());
  Reopen();
  c = index_->Coverage();
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->through, 6u);
  EXPECT_EQ(c->root, std::string(32, 'b'));
  EXPECT_EQ(For("p1"), (std::vector<uint64_t>{0, 2, 5}));
  EXPECT_EQ(For("p2"), (std::vector<uint64_t>{1, 4}));
  EXPECT_TRUE(For("p3").empty());
  // A prefix of "p1" is another patient, not a match.
  EXPECT_TRUE(For("p").empty());
  // Range [start, end) and limit.
  EXPECT_EQ(For("p1", 1, 5), (std::vector<uint64_t>{2}));
  EXPECT_EQ(For("p1", 0, UINT64_MAX, 2), (std::vector<uint64_t>{0, 2}));
  EXPECT_TRUE(For("p1", 5, 5).empty());
}

TEST_F(AuditIndexTest, PatientsAndAgentsAreSeparateKeys) {
  // "x" is both a patient id and an agent id here: each kind has its own list.
  ASSERT_TRUE(index_->Extend(0, {4, std::string(32, 'a')},
                             {{P, "x", 0}, {A, "x", 1}, {A, "dr-a", 1}, {A, "Practitioner/dr-a", 1}, {P, "x", 2},
                              {A, "dr-a", 3}})
                  .ok());
  Reopen();
  EXPECT_EQ(ForKey(P, "x"), (std::vector<uint64_t>{0, 2}));
  EXPECT_EQ(ForKey(A, "x"), (std::vector<uint64_t>{1}));
  EXPECT_EQ(ForKey(A, "dr-a"), (std::vector<uint64_t>{1, 3}));
  EXPECT_EQ(ForKey(A, "Practitioner/dr-a"), (std::vector<uint64_t>{1}));
  EXPECT_EQ(ForKey(A, "dr-a", 2, UINT64_MAX), (std::vector<uint64_t>{3}));
  EXPECT_TRUE(ForKey(P, "dr-a").empty());
}

// The first release indexed patients only. Its coverage says nothing about
// agents, so a file in that layout must not answer agent lookups as if
// complete: it is emptied at open and the log rebuilds it.
TEST_F(AuditIndexTest, AFileInTheFirstLayoutIsEmptiedAtOpen) {
  index_.reset();
  const std::string path = data_ + "/" + kAuditIndexFileName;
  std::filesystem::remove(path);
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                            VaultVfsName(keyring_->vault_id()).c_str()),
            SQLITE_OK);
  ASSERT_TRUE(PrepareEncryptedDatabase(db).ok());
  ASSERT_EQ(sqlite3_exec(db,
                         "PRAGMA journal_mode=WAL;"
                         "CREATE TABLE coverage (id INTEGER PRIMARY KEY CHECK (id = 1), through INTEGER NOT NULL,"
                         " root BLOB NOT NULL);"
                         "CREATE TABLE patient_entries (patient TEXT NOT NULL, entry INTEGER NOT NULL,"
                         " PRIMARY KEY (patient, entry)) WITHOUT ROWID;"
                         "INSERT INTO coverage VALUES (1, 7, x'00');"
                         "INSERT INTO patient_entries VALUES ('p1', 3);",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close_v2(db);
  Reopen();
  auto c = index_->Coverage();
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->through, 0u) << "coverage of the old layout is not trusted";
  EXPECT_TRUE(For("p1").empty());
  // And the new layout is in place and sticks across a reopen.
  ASSERT_TRUE(index_->Extend(0, {2, std::string(32, 'b')}, {{A, "dr-a", 1}}).ok());
  Reopen();
  EXPECT_EQ(index_->Coverage()->through, 2u);
  EXPECT_EQ(ForKey(A, "dr-a"), (std::vector<uint64_t>{1}));
}

TEST_F(AuditIndexTest, ExtendFromTheWrongPlaceWritesNothing) {
  ASSERT_TRUE(index_->Extend(0, {2, std::string(32, 'a')}, {{P, "p1", 1}}).ok());
  Status s = index_->Extend(1, {4, std::string(32, 'b')}, {{P, "p9", 3}});
  EXPECT_EQ(s.code(), StatusCode::kConflict) << s.ToString();
  EXPECT_TRUE(For("p9").empty());
  EXPECT_EQ(index_->Coverage()->through, 2u);
  // Postings outside the range being added, or an empty range, are refused.
  EXPECT_EQ(index_->Extend(2, {4, ""}, {{P, "p9", 4}}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(index_->Extend(2, {2, ""}, {}).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(For("p9").empty());
}

TEST_F(AuditIndexTest, ResetForgetsEverything) {
  ASSERT_TRUE(index_->Extend(0, {2, std::string(32, 'a')}, {{P, "p1", 1}}).ok());
  ASSERT_TRUE(index_->Reset().ok());
  EXPECT_EQ(index_->Coverage()->through, 0u);
  EXPECT_TRUE(For("p1").empty());
  ASSERT_TRUE(index_->Extend(0, {1, std::string(32, 'c')}, {{P, "p2", 0}}).ok());
  EXPECT_EQ(For("p2"), (std::vector<uint64_t>{0}));
}

TEST_F(AuditIndexTest, PatientIdsAreNotReadableOnDisk) {
  const std::string patient = "needle-patient-4711";
  std::vector<AuditPosting> postings;
  for (uint64_t i = 0; i < 500; ++i) postings.push_back({P, patient, i});
  ASSERT_TRUE(index_->Extend(0, {500, std::string(32, 'a')}, postings).ok());
  index_.reset();  // checkpoints the WAL into the database file
  for (const auto& f : std::filesystem::directory_iterator(data_)) {
    if (!f.is_regular_file()) continue;
    std::ifstream in(f.path(), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(bytes.find(patient), std::string::npos) << f.path();
  }
  Reopen();
  EXPECT_EQ(For(patient).size(), 500u);
}

TEST_F(AuditIndexTest, AFileFromAnotherVaultDoesNotOpen) {
  ASSERT_TRUE(index_->Extend(0, {1, std::string(32, 'a')}, {{P, "p1", 0}}).ok());
  index_.reset();
  const std::string other_dir = tmp_.Sub("other");
  std::filesystem::create_directories(other_dir);
  const std::string other_key = tmp_.Sub("other.key");
  ASSERT_TRUE(crypto::GenerateKeyFile(other_key).ok());
  crypto::MasterKeySource src;
  src.key_file = other_key;
  auto other = crypto::Keyring::Create(other_dir, src);
  ASSERT_TRUE(other.ok());
  std::filesystem::copy_file(data_ + "/" + kAuditIndexFileName, other_dir + "/" + kAuditIndexFileName);
  auto i = OpenAuditIndex(other_dir, **other);
  ASSERT_FALSE(i.ok());
  EXPECT_EQ(i.status().code(), StatusCode::kDataLoss) << i.status().ToString();
}

}  // namespace
}  // namespace phivault::store
