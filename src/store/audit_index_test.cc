#include "store/audit_index.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "common/testing/temp_dir.h"
#include "crypto/keyring.h"

namespace phivault::store {
namespace {

using testing::TempDir;

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
    auto r = index_->EntriesFor(patient, start, end, limit);
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

  ASSERT_TRUE(index_->Extend(0, {3, std::string(32, 'a')}, {{"p1", 0}, {"p2", 1}, {"p1", 2}}).ok());
  ASSERT_TRUE(index_->Extend(3, {6, std::string(32, 'b')}, {{"p2", 4}, {"p1", 5}, {"p1", 5}}).ok());
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

TEST_F(AuditIndexTest, ExtendFromTheWrongPlaceWritesNothing) {
  ASSERT_TRUE(index_->Extend(0, {2, std::string(32, 'a')}, {{"p1", 1}}).ok());
  Status s = index_->Extend(1, {4, std::string(32, 'b')}, {{"p9", 3}});
  EXPECT_EQ(s.code(), StatusCode::kConflict) << s.ToString();
  EXPECT_TRUE(For("p9").empty());
  EXPECT_EQ(index_->Coverage()->through, 2u);
  // Postings outside the range being added, or an empty range, are refused.
  EXPECT_EQ(index_->Extend(2, {4, ""}, {{"p9", 4}}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(index_->Extend(2, {2, ""}, {}).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(For("p9").empty());
}

TEST_F(AuditIndexTest, ResetForgetsEverything) {
  ASSERT_TRUE(index_->Extend(0, {2, std::string(32, 'a')}, {{"p1", 1}}).ok());
  ASSERT_TRUE(index_->Reset().ok());
  EXPECT_EQ(index_->Coverage()->through, 0u);
  EXPECT_TRUE(For("p1").empty());
  ASSERT_TRUE(index_->Extend(0, {1, std::string(32, 'c')}, {{"p2", 0}}).ok());
  EXPECT_EQ(For("p2"), (std::vector<uint64_t>{0}));
}

TEST_F(AuditIndexTest, PatientIdsAreNotReadableOnDisk) {
  const std::string patient = "needle-patient-4711";
  std::vector<AuditPosting> postings;
  for (uint64_t i = 0; i < 500; ++i) postings.push_back({patient, i});
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
  ASSERT_TRUE(index_->Extend(0, {1, std::string(32, 'a')}, {{"p1", 0}}).ok());
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
