// Verify: a clean log passes; each kind of tampering is detected with the
// first bad index; a re-signed rewritten history (fork) is caught by an
// earlier published checkpoint.
#include "audit/verify.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "audit/audit_log.h"
#include "audit/test_util.h"

namespace phivault::audit {
namespace {

using phivault::testing::ReadFile;
using phivault::testing::TempDir;
using phivault::testing::WriteFile;
using testing::EncodeRecord;
using testing::MakeKeyring;
using testing::ReadSegment;
using testing::WriteSegment;

constexpr uint64_t kEntries = 100;

// A log of 100 entries with checkpoints at 20, 50 and 100.
class VerifyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    keyring_ = MakeKeyring(tmp_.path());
    auto log = AuditLog::Open(tmp_.path(), *keyring_);
    ASSERT_TRUE(log.ok());
    for (uint64_t i = 0; i < kEntries; ++i) {
      ASSERT_TRUE((*log)->AppendAndWait("entry " + std::to_string(i)).ok());
      if (i + 1 == 20 || i + 1 == 50 || i + 1 == 100) {
        auto cp = (*log)->SignCheckpoint();
        ASSERT_TRUE(cp.ok());
        checkpoints_.push_back(*cp);
      }
    }
    vkey_ = (*log)->VerifierKey();
  }
  std::string Dir() const { return AuditLog::AuditDir(tmp_.path()); }
  std::string Seg() const { return Dir() + "/seg-000001.log"; }
  VerifyResult Run(std::vector<std::string> published = {}) {
    auto r = Verify(tmp_.path(), vkey_, published);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : VerifyResult{};
  }

  TempDir tmp_;
  std::unique_ptr<crypto::Keyring> keyring_;
  std::string vkey_;
  std::vector<std::string> checkpoints_;
};

TEST_F(VerifyTest, CleanLogVerifies) {
  auto r = Run(checkpoints_);
  EXPECT_TRUE(r.ok) << r.reason;
  EXPECT_EQ(r.entries, kEntries);
  EXPECT_GE(r.checkpoints, 6u);  // ours (plus the writer's first, at size 1) and the published
  EXPECT_EQ(r.first_bad_index, VerifyResult::kNoIndex);
}

TEST_F(VerifyTest, ExportVerifiesWithoutAnyKey) {
  auto log = AuditLog::Open(tmp_.path(), *keyring_);
  ASSERT_TRUE(log.ok());
  ASSERT_TRUE((*log)->Export(tmp_.Sub("export")).ok());
  const std::string vkey = ReadFile(tmp_.Sub("export/vkey.txt"));
  ASSERT_FALSE(vkey.empty());
  auto r = Verify(tmp_.Sub("export"), vkey.substr(0, vkey.size() - 1), checkpoints_);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->ok) << r->reason;
  EXPECT_EQ(r->entries, kEntries);
}

TEST_F(VerifyTest, DetectsModifiedRecordByte) {
  auto seg = ReadSegment(Seg());
  seg.records[37][40] ^= 0x20;
  WriteSegment(Seg(), seg);
  auto r = Run();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.problem, Problem::kModified);
  EXPECT_EQ(r.first_bad_index, 37u);
}

TEST_F(VerifyTest, DetectsReframedModificationViaCheckpoint) {
  // The attacker fixes length and CRC: only the signed roots can tell.
  auto seg = ReadSegment(Seg());
  std::string payload = seg.payloads[37];
  payload[20] ^= 0x01;
  seg.records[37] = EncodeRecord(37, payload);
  WriteSegment(Seg(), seg);
  auto r = Run();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.problem, Problem::kModified);
  EXPECT_EQ(r.first_bad_index, 20u);  // last checkpoint that still matched
  EXPECT_NE(r.reason.find("(size 50)"), std::string::npos) << r.reason;
}

TEST_F(VerifyTest, DetectsDeletedRecord) {
  auto seg = ReadSegment(Seg());
  seg.records.erase(seg.records.begin() + 37);
  WriteSegment(Seg(), seg);
  auto r = Run();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.problem, Problem::kDeleted);
  EXPECT_EQ(r.first_bad_index, 37u);
}

TEST_F(VerifyTest, DetectsInsertedRecord) {
  auto seg = ReadSegment(Seg());
  seg.records.insert(seg.records.begin() + 37, EncodeRecord(37, std::string(60, 'f')));
  WriteSegment(Seg(), seg);
  auto r = Run();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.problem, Problem::kInserted);
  EXPECT_EQ(r.first_bad_index, 37u);
}

TEST_F(VerifyTest, DetectsReplayedRecord) {
  auto seg = ReadSegment(Seg());
  seg.records.insert(seg.records.begin() + 37, seg.records[10]);
  WriteSegment(Seg(), seg);
  auto r = Run();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.problem, Problem::kInserted);
  EXPECT_EQ(r.first_bad_index, 37u);
}

TEST_F(VerifyTest, DetectsDuplicatedPredecessor) {
  auto seg = ReadSegment(Seg());
  seg.records.insert(seg.records.begin() + 37, seg.records[36]);
  WriteSegment(Seg(), seg);
  auto r = Run();
  EXPECT_EQ(r.problem, Problem::kInserted);
  EXPECT_EQ(r.first_bad_index, 37u);
}

TEST_F(VerifyTest, DetectsSwappedRecords) {
  auto seg = ReadSegment(Seg());
  std::swap(seg.records[37], seg.records[38]);
  WriteSegment(Seg(), seg);
  auto r = Run();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.problem, Problem::kReordered);
  EXPECT_EQ(r.first_bad_index, 37u);
}

TEST_F(VerifyTest, DetectsTruncationAgainstOwnCheckpoint) {
  auto seg = ReadSegment(Seg());
  seg.records.resize(60);
  WriteSegment(Seg(), seg);
  auto r = Run();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.problem, Problem::kTruncated);
  EXPECT_EQ(r.first_bad_index, 60u);
}

TEST_F(VerifyTest, DetectsTruncationHiddenByDroppingCheckpoints) {
  // The attacker also drops the checkpoint that covered the lost entries;
  // the one published earlier still does.
  auto seg = ReadSegment(Seg());
  seg.records.resize(60);
  WriteSegment(Seg(), seg);
  WriteFile(Dir() + "/checkpoints", checkpoints_[0] + "\n" + checkpoints_[1] + "\n");
  EXPECT_TRUE(Run().ok);  // self-consistent without outside knowledge
  auto r = Run({checkpoints_[2]});
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.problem, Problem::kTruncated);
  EXPECT_EQ(r.first_bad_index, 60u);
}

// A backup holds an earlier prefix of the log that later published
// checkpoints were issued for: those are counted, not called truncation,
// while its own checkpoints must still all fit and earlier published ones
// must still match.
TEST_F(VerifyTest, PrefixModeSkipsOnlyPublishedCheckpointsBeyondTheLog) {
  auto seg = ReadSegment(Seg());
  seg.records.resize(60);
  WriteSegment(Seg(), seg);
  WriteFile(Dir() + "/checkpoints", checkpoints_[0] + "\n" + checkpoints_[1] + "\n");
  std::filesystem::remove_all(Dir() + "/tree");
  VerifyOptions prefix;
  prefix.log_may_be_prefix = true;

  auto plain = Verify(tmp_.path(), vkey_, checkpoints_);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->problem, Problem::kTruncated);

  auto r = Verify(tmp_.path(), vkey_, checkpoints_, prefix);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->ok) << r->reason;
  EXPECT_EQ(r->entries, 60u);
  EXPECT_EQ(r->published_checked, 2u);  // at 20 and 50
  EXPECT_EQ(r->published_beyond, 1u);   // at 100

  // The log's own checkpoint beyond its records is still truncation.
  WriteFile(Dir() + "/checkpoints",
            checkpoints_[0] + "\n" + checkpoints_[1] + "\n" + checkpoints_[2] + "\n");
  r = Verify(tmp_.path(), vkey_, {}, prefix);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->problem, Problem::kTruncated);
  EXPECT_EQ(r->first_bad_index, 60u);

  // A published checkpoint that does not verify is refused, beyond or not.
  std::string bad = checkpoints_[2];
  bad[bad.find("\xE2\x80\x94 ") + 12] ^= 0x01;
  WriteFile(Dir() + "/checkpoints", checkpoints_[0] + "\n" + checkpoints_[1] + "\n");
  const std::vector<std::string> bad_only = {bad};
  r = Verify(tmp_.path(), vkey_, bad_only, prefix);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->problem, Problem::kBadCheckpoint);
}

TEST_F(VerifyTest, DetectsForkReSignedWithStolenKey) {
  // The attacker holds the keyring: rewrites entries from 30 on, recomputes
  // every record, re-signs checkpoints over the new history and replaces the
  // checkpoints file. Nothing inside the log gives this away.
  auto seg = ReadSegment(Seg());
  auto aead = crypto::Aead::New(keyring_->Key(crypto::KeyPurpose::kAuditSeal));
  ASSERT_TRUE(aead.ok());
  MemoryHashStore tree;
  for (uint64_t i = 0; i < kEntries; ++i) {
    if (i >= 30) {
      std::string aad = "phivault-audit-entry";
      aad += '\0';
      aad += keyring_->vault_id();
      aad += '\0';
      for (int b = 7; b >= 0; --b) aad += static_cast<char>(i >> (8 * b));
      seg.payloads[i] = (*aead)->Seal("forged " + std::to_string(i), aad);
      seg.records[i] = EncodeRecord(i, seg.payloads[i]);
    }
    tree.Append(HashLeaf(seg.payloads[i]));
  }
  WriteSegment(Seg(), seg);
  auto signer = NoteSigner::FromSeed("phivault/" + keyring_->vault_id(), keyring_->Key(crypto::KeyPurpose::kAuditSign));
  ASSERT_TRUE(signer.ok());
  std::string file;
  for (uint64_t size : {20, 50, 100}) {
    auto note = (*signer)->Sign(FormatTreeHead({(*signer)->name(), size, *RootAt(tree, size), {}}));
    ASSERT_TRUE(note.ok());
    file += *note + "\n";
  }
  WriteFile(Dir() + "/checkpoints", file);
  std::filesystem::remove_all(Dir() + "/tree");

  EXPECT_TRUE(Run().ok);  // internally consistent: only outside knowledge helps
  auto r = Run({checkpoints_[0], checkpoints_[1]});
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.problem, Problem::kFork);
  EXPECT_EQ(r.first_bad_index, 20u);  // the fork lies after the last published match
  EXPECT_LE(r.first_bad_index, 30u);
  // The forged log also opens (the attacker did everything right), which is
  // why checkpoints must be published outside the vault.
  auto log = AuditLog::Open(tmp_.path(), *keyring_);
  EXPECT_TRUE(log.ok()) << log.status().ToString();
}

TEST_F(VerifyTest, DetectsBadCheckpointSignature) {
  std::string cps = ReadFile(Dir() + "/checkpoints");
  const size_t sig = cps.find("\xE2\x80\x94 ");
  cps[cps.find(' ', sig + 4) + 5] ^= 0x01;
  WriteFile(Dir() + "/checkpoints", cps);
  auto r = Run();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.problem, Problem::kBadCheckpoint);
}

TEST_F(VerifyTest, WrongKeyIsRejected) {
  auto other = NoteSigner::FromSeed("phivault/" + keyring_->vault_id(), SecureBytes::Random(32));
  ASSERT_TRUE(other.ok());
  auto r = Verify(tmp_.path(), (*other)->VerifierKeyString());
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->ok);
  EXPECT_EQ(r->problem, Problem::kBadCheckpoint);
  EXPECT_FALSE(Verify(tmp_.path(), "not a key").ok());
}

TEST_F(VerifyTest, DetectsMissingSegment) {
  // Re-create the log with small segments, then delete one in the middle.
  TempDir dir;
  auto keyring = MakeKeyring(dir.path());
  AuditLogOptions o;
  o.segment_bytes = 1024;
  std::string vkey;
  {
    auto log = AuditLog::Open(dir.path(), *keyring, o);
    ASSERT_TRUE(log.ok());
    for (int i = 0; i < 100; ++i) ASSERT_TRUE((*log)->AppendAndWait("entry " + std::to_string(i)).ok());
    vkey = (*log)->VerifierKey();
  }
  const std::string seg2 = AuditLog::AuditDir(dir.path()) + "/seg-000002.log";
  auto raw = ReadSegment(seg2);
  ASSERT_FALSE(raw.records.empty());
  const uint64_t first = static_cast<uint8_t>(raw.header[8]);
  std::filesystem::remove(seg2);
  auto r = Verify(dir.path(), vkey);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->ok);
  EXPECT_EQ(r->problem, Problem::kDeleted);
  EXPECT_EQ(r->first_bad_index, first);
}

TEST_F(VerifyTest, GarbageFilesNeverCrash) {
  // Random bytes as segment and checkpoints: findings, not crashes.
  std::string junk;
  uint32_t x = 12345;
  for (int i = 0; i < 5000; ++i) {
    x = x * 1103515245 + 12345;
    junk += static_cast<char>(x >> 16);
  }
  WriteFile(Seg(), std::string(kSegmentMagic) + junk);
  WriteFile(Dir() + "/checkpoints", junk);
  auto r = Run();
  EXPECT_FALSE(r.ok);
}

}  // namespace
}  // namespace phivault::audit
