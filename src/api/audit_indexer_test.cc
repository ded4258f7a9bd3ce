// AuditIndexer against a real vault's audit log: catching up, reopening, and
// refusing to trust an index that does not describe the log it is opened
// with. (audit_service_test.cc runs every query with and without an index.)
#include "api/audit_indexer.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "api/testing/test_vault.h"
#include "audit/entry.h"
#include "audit/segment.h"
#include "common/log.h"

namespace phivault::api {
namespace {

class AuditIndexerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tv_ = testing::TestVault::Create(tmp_);
    ASSERT_NE(tv_.vault, nullptr);
    log_ = tv_.vault->audit_log();
  }

  uint64_t Append(std::vector<std::string> patients) {
    audit::AuditEntry e;
    e.time_ms = 1767225600000;
    e.request_id = "req";
    e.agent.subject = "dr-a";
    e.action = audit::AuditAction::kRead;
    e.patients = std::move(patients);
    auto idx = log_->AppendAndWait(audit::Serialize(e));
    EXPECT_TRUE(idx.ok()) << idx.status().ToString();
    return idx.ok() ? *idx : 0;
  }

  std::unique_ptr<AuditIndexer> Open() {
    auto i = AuditIndexer::Open(tv_.data_dir, tv_.vault->keyring(), log_);
    EXPECT_TRUE(i.ok()) << i.status().ToString();
    return i.ok() ? std::move(*i) : nullptr;
  }

  static std::vector<uint64_t> For(AuditIndexer& ix, std::string_view patient, uint64_t start = 0,
                                   uint64_t end = UINT64_MAX) {
    auto r = ix.EntriesFor(patient, start, end, SIZE_MAX);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : std::vector<uint64_t>{};
  }

  // Writes an index state directly, as a stale or foreign file would hold it.
  void WriteIndexState(uint64_t through, std::string root, std::vector<store::AuditPosting> postings) {
    auto index = store::OpenAuditIndex(tv_.data_dir, tv_.vault->keyring());
    ASSERT_TRUE(index.ok()) << index.status().ToString();
    ASSERT_TRUE((*index)->Reset().ok());
    ASSERT_TRUE((*index)->Extend(0, {through, std::move(root)}, postings).ok());
  }

  phivault::testing::TempDir tmp_;
  testing::TestVault tv_;
  audit::AuditLog* log_ = nullptr;
};

TEST_F(AuditIndexerTest, CatchesUpInStepsAndKeepsItsPlaceAcrossReopen) {
  const uint64_t a = Append({"p1"});
  const uint64_t b = Append({"p2", "p1", "p1"});  // a search: each patient once
  ASSERT_TRUE(log_->AppendAndWait("not json at all").ok());  // skipped, as scans skip it
  // Entries record bare ids. One that does not is indexed as stored, and a
  // lookup strips "Patient/" from the query just as Matches does, so index
  // and scan agree that it matches neither "p3" nor "Patient/p3".
  const uint64_t c = Append({"Patient/p3"});
  const uint64_t d = Append({});
  {
    auto ix = Open();
    ASSERT_NE(ix, nullptr);
    EXPECT_EQ(ix->covered(), 0u);
    auto r = ix->CatchUp(b + 1);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(*r, b + 1);
    EXPECT_EQ(For(*ix, "p1"), (std::vector<uint64_t>{a, b}));
    EXPECT_TRUE(For(*ix, "Patient/p3").empty()) << "not covered yet";
    r = ix->CatchUp(UINT64_MAX);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(*r, d + 1);
    EXPECT_EQ(For(*ix, "Patient/p1"), (std::vector<uint64_t>{a, b})) << "the prefix is stripped";
    EXPECT_EQ(For(*ix, "p2"), std::vector<uint64_t>{b});
    EXPECT_EQ(For(*ix, "p1", a + 1), std::vector<uint64_t>{b});
    EXPECT_TRUE(For(*ix, "p1", 0, a).empty());
    EXPECT_TRUE(For(*ix, "p3").empty());
    EXPECT_TRUE(For(*ix, "Patient/p3").empty());
    auto raw = ix->EntriesFor("Patient/Patient/p3", 0, UINT64_MAX, SIZE_MAX);
    ASSERT_TRUE(raw.ok());
    EXPECT_EQ(*raw, std::vector<uint64_t>{c}) << "stored exactly as the entry holds it";
  }
  const uint64_t e = Append({"p1"});
  auto ix = Open();
  ASSERT_NE(ix, nullptr);
  EXPECT_EQ(ix->covered(), d + 1) << "a reopened index keeps what it covered";
  EXPECT_EQ(For(*ix, "p1"), (std::vector<uint64_t>{a, b})) << "lookups never reach past the covered prefix";
  ASSERT_TRUE(ix->CatchUp(UINT64_MAX).ok());
  EXPECT_EQ(For(*ix, "p1"), (std::vector<uint64_t>{a, b, e}));
}

TEST_F(AuditIndexerTest, ListsEachEntryUnderEveryIdentifierOfItsAgent) {
  // What an agent= search matches (audit/query.h): subject, fhirUser,
  // client id, device id, each exactly as stored.
  audit::AuditEntry user;
  user.time_ms = 1767225600000;
  user.action = audit::AuditAction::kRead;
  user.agent.subject = "u-17";
  user.agent.fhir_user = "Practitioner/pr-17";
  user.agent.client_id = "ward-app";
  user.patients = {"p1"};
  audit::AuditEntry device = user;
  device.agent = {};
  device.agent.subject = "pump-3";
  device.agent.device_id = "dev-serial-99";
  device.action = audit::AuditAction::kCreate;
  audit::AuditEntry anonymous = user;
  anonymous.agent = {};
  anonymous.action = audit::AuditAction::kLoginFailure;
  auto append = [&](const audit::AuditEntry& e) {
    auto idx = log_->AppendAndWait(audit::Serialize(e));
    EXPECT_TRUE(idx.ok());
    return idx.ok() ? *idx : 0;
  };
  const uint64_t u = append(user);
  const uint64_t d = append(device);
  const uint64_t anon = append(anonymous);
  const uint64_t u2 = append(user);
  auto ix = Open();
  ASSERT_NE(ix, nullptr);
  ASSERT_TRUE(ix->CatchUp(UINT64_MAX).ok());
  auto agent = [&](std::string_view v) {
    auto r = ix->EntriesFor(store::AuditKey::kAgent, v, 0, UINT64_MAX, SIZE_MAX);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : std::vector<uint64_t>{};
  };
  EXPECT_EQ(agent("u-17"), (std::vector<uint64_t>{u, u2}));
  EXPECT_EQ(agent("Practitioner/pr-17"), (std::vector<uint64_t>{u, u2}));
  EXPECT_EQ(agent("ward-app"), (std::vector<uint64_t>{u, u2}));
  EXPECT_EQ(agent("pump-3"), std::vector<uint64_t>{d});
  EXPECT_EQ(agent("dev-serial-99"), std::vector<uint64_t>{d});
  EXPECT_TRUE(agent("pr-17").empty()) << "agent values match exactly";
  EXPECT_TRUE(agent("").empty()) << "an entry without an agent is listed under nothing";
  EXPECT_TRUE(agent("p1").empty()) << "patients are another key";
  EXPECT_EQ(For(*ix, "p1"), (std::vector<uint64_t>{u, d, anon, u2}));
}

TEST_F(AuditIndexerTest, AnIndexThatDoesNotMatchTheLogIsRebuilt) {
  const uint64_t a = Append({"p1"});
  const uint64_t size = log_->size();
  auto root = log_->Root(size);
  ASSERT_TRUE(root.ok());

  // The same coverage, but another history's root: a log replaced or restored
  // from elsewhere. Its postings would point at other entries.
  WriteIndexState(size, std::string(32, 'x'), {{store::AuditKey::kPatient, "ghost", a}});
  auto ix = Open();
  ASSERT_NE(ix, nullptr);
  EXPECT_EQ(ix->covered(), 0u);
  EXPECT_TRUE(For(*ix, "ghost").empty());
  ix.reset();

  // More entries than the log holds: a log truncated or restored to an
  // earlier point.
  WriteIndexState(size + 5, *root, {{store::AuditKey::kPatient, "ghost", a}});
  ix = Open();
  ASSERT_NE(ix, nullptr);
  EXPECT_EQ(ix->covered(), 0u);
  EXPECT_TRUE(For(*ix, "ghost").empty());
  ix.reset();

  // The matching state is kept as it is.
  WriteIndexState(size, *root, {{store::AuditKey::kPatient, "kept", a}});
  ix = Open();
  ASSERT_NE(ix, nullptr);
  EXPECT_EQ(ix->covered(), size);
  EXPECT_EQ(For(*ix, "kept"), std::vector<uint64_t>{a});
}

TEST_F(AuditIndexerTest, AnUnreadableIndexFileIsReplaced) {
  const uint64_t a = Append({"p1"});
  {
    auto ix = Open();
    ASSERT_NE(ix, nullptr);
    ASSERT_TRUE(ix->CatchUp(UINT64_MAX).ok());
  }
  const std::string path = tv_.data_dir + "/" + store::kAuditIndexFileName;
  ASSERT_TRUE(std::filesystem::exists(path));
  {
    // Overwrite the first page: it no longer authenticates.
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    const std::string junk(4096, '\x5a');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  auto ix = Open();
  ASSERT_NE(ix, nullptr);
  EXPECT_EQ(ix->covered(), 0u);
  ASSERT_TRUE(ix->CatchUp(UINT64_MAX).ok());
  EXPECT_EQ(For(*ix, "p1"), std::vector<uint64_t>{a});
}

TEST_F(AuditIndexerTest, TheFollowerIndexesNewEntriesByItself) {
  auto ix = Open();
  ASSERT_NE(ix, nullptr);
  ix->StartFollowing(std::chrono::milliseconds(10));
  const uint64_t a = Append({"p7"});
  // Generous: the follower runs at nice 19, and CI machines are busy.
  // This bounds a hang; it is not a speed check.
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (ix->covered() < log_->size() && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_GE(ix->covered(), a + 1);
  EXPECT_EQ(For(*ix, "p7"), std::vector<uint64_t>{a});
  ix.reset();  // stops the thread
}

TEST_F(AuditIndexerTest, TheFollowerBacksOffWhileTheLogCannotBeRead) {
  Append({"p1"});
  // Damage the first record of the first segment: every read of the log
  // from entry 0 now fails its checksum, so every catch-up fails.
  std::string first_segment;
  for (const auto& f : std::filesystem::directory_iterator(tv_.data_dir + "/audit")) {
    const std::string name = f.path().filename();
    if (name.starts_with("seg-") && (first_segment.empty() || f.path().string() < first_segment)) {
      first_segment = f.path().string();
    }
  }
  ASSERT_FALSE(first_segment.empty());
  {
    std::fstream seg(first_segment, std::ios::in | std::ios::out | std::ios::binary);
    seg.seekg(audit::kSegmentHeaderSize + audit::kRecordHeaderSize + 3);
    char c = 0;
    seg.read(&c, 1);
    seg.seekp(audit::kSegmentHeaderSize + audit::kRecordHeaderSize + 3);
    c = static_cast<char>(c ^ 0x01);
    seg.write(&c, 1);
  }
  auto ix = Open();
  ASSERT_NE(ix, nullptr);
  ASSERT_FALSE(ix->CatchUp(UINT64_MAX).ok());

  const std::string log_path = tmp_.Sub("operator.log");
  const int fd = ::open(log_path.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0600);
  ASSERT_GE(fd, 0);
  log::SetFd(fd);
  // A 10 ms period: without backoff, 700 ms would hold about 70 attempts;
  // doubling from 10 ms allows at most 7 (10+20+40+...+640 ms).
  ix->StartFollowing(std::chrono::milliseconds(10));
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  ix.reset();
  log::SetFd(2);
  ::close(fd);
  std::ifstream in(log_path);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t failures = 0;
  for (size_t at = text.find("audit.index_not_updated"); at != std::string::npos;
       at = text.find("audit.index_not_updated", at + 1)) {
    ++failures;
  }
  EXPECT_GE(failures, 1u) << text;
  EXPECT_LE(failures, 12u) << "the follower retried without backing off:\n" << text;
}

}  // namespace
}  // namespace phivault::api
