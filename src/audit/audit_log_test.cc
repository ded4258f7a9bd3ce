// AuditLog: append/reopen, crash recovery, group commit, failure injection,
// checkpoints and proofs, and no plaintext at rest.
#include "audit/audit_log.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <future>
#include <mutex>
#include <set>
#include <thread>

#include "audit/publish.h"
#include "audit/test_util.h"
#include "audit/verify.h"

namespace phivault::audit {
namespace {

using phivault::testing::FilesBelow;
using phivault::testing::ReadFile;
using phivault::testing::TempDir;
using phivault::testing::WriteFile;
using testing::Faults;
using testing::MakeKeyring;

std::string Entry(uint64_t i) { return "{\"event\":\"read\",\"n\":" + std::to_string(i) + "}"; }

class AuditLogTest : public ::testing::Test {
 protected:
  void SetUp() override { keyring_ = MakeKeyring(tmp_.path()); }
  std::unique_ptr<AuditLog> OpenLog(AuditLogOptions o = {}) {
    auto log = AuditLog::Open(tmp_.path(), *keyring_, std::move(o));
    EXPECT_TRUE(log.ok()) << log.status().ToString();
    return log.ok() ? std::move(log).value() : nullptr;
  }
  std::string AuditDir() const { return AuditLog::AuditDir(tmp_.path()); }

  TempDir tmp_;
  std::unique_ptr<crypto::Keyring> keyring_;
};

TEST_F(AuditLogTest, AppendReadReopen) {
  {
    auto log = OpenLog();
    for (uint64_t i = 0; i < 100; ++i) {
      auto idx = log->AppendAndWait(Entry(i));
      ASSERT_TRUE(idx.ok());
      EXPECT_EQ(*idx, i);
    }
    EXPECT_EQ(log->size(), 100u);
    auto entries = log->ReadEntries(10, 20);
    ASSERT_TRUE(entries.ok()) << entries.status().ToString();
    ASSERT_EQ(entries->size(), 10u);
    EXPECT_EQ((*entries)[0], Entry(10));
  }
  auto log = OpenLog();
  EXPECT_EQ(log->size(), 100u);
  auto idx = log->AppendAndWait(Entry(100));
  ASSERT_TRUE(idx.ok());
  EXPECT_EQ(*idx, 100u);
  auto all = log->ReadEntries(0, 101);
  ASSERT_TRUE(all.ok());
  for (uint64_t i = 0; i < 101; ++i) EXPECT_EQ((*all)[i], Entry(i));
  EXPECT_FALSE(log->ReadEntries(0, 102).ok());
  EXPECT_FALSE(log->ReadEntries(5, 4).ok());
}

TEST_F(AuditLogTest, CheckpointsAndProofsVerify) {
  auto log = OpenLog();
  for (uint64_t i = 0; i < 37; ++i) ASSERT_TRUE(log->AppendAndWait(Entry(i)).ok());
  auto cp1 = log->SignCheckpoint();
  ASSERT_TRUE(cp1.ok());
  for (uint64_t i = 37; i < 300; ++i) ASSERT_TRUE(log->AppendAndWait(Entry(i)).ok());
  auto cp2 = log->SignCheckpoint();
  ASSERT_TRUE(cp2.ok());
  auto key = ParseVerifierKey(log->VerifierKey());
  ASSERT_TRUE(key.ok());
  EXPECT_EQ(key->name, "phivault/" + keyring_->vault_id());
  auto h1 = VerifyCheckpoint(*cp1, *key);
  auto h2 = VerifyCheckpoint(*cp2, *key);
  ASSERT_TRUE(h1.ok() && h2.ok());
  EXPECT_EQ(h1->size, 37u);
  EXPECT_EQ(h2->size, 300u);
  EXPECT_EQ(*log->Root(300), HashString(h2->root));
  auto vk = AuditVerifierKey(*keyring_);
  ASSERT_TRUE(vk.ok());
  EXPECT_EQ(*vk, log->VerifierKey());
  for (uint64_t i = 0; i < 300; i += 7) {
    auto proof = log->InclusionProof(i, 300);
    ASSERT_TRUE(proof.ok());
    auto leaf = log->LeafHash(i);
    ASSERT_TRUE(leaf.ok());
    EXPECT_TRUE(VerifyInclusion(i, 300, *leaf, *proof, HashView(h2->root)).ok()) << i;
  }
  auto cons = log->ConsistencyProof(37, 300);
  ASSERT_TRUE(cons.ok());
  EXPECT_TRUE(VerifyConsistency(37, 300, *cons, HashView(h1->root), HashView(h2->root)).ok());
  EXPECT_FALSE(log->InclusionProof(0, 301).ok());
  // The same checkpoint comes back while the size is unchanged.
  EXPECT_EQ(*log->SignCheckpoint(), *cp2);
}

TEST_F(AuditLogTest, CheckpointsIssuedWhileEntriesArrive) {
  AuditLogOptions o;
  o.checkpoint_interval = std::chrono::milliseconds(50);
  auto log = OpenLog(o);
  for (int round = 0; round < 4; ++round) {
    for (int i = 0; i < 10; ++i) ASSERT_TRUE(log->AppendAndWait(Entry(i)).ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    // The writer signed on its own: Checkpoint() already covers everything.
    auto key = ParseVerifierKey(log->VerifierKey());
    auto head = VerifyCheckpoint(*log->Checkpoint(), *key);
    ASSERT_TRUE(head.ok());
    EXPECT_EQ(head->size, log->size());
  }
  EXPECT_GE(SplitNotes(ReadFile(AuditDir() + "/checkpoints")).size(), 4u);
}

TEST_F(AuditLogTest, TornTailIsTruncatedOnOpen) {
  {
    auto log = OpenLog();
    for (uint64_t i = 0; i < 10; ++i) ASSERT_TRUE(log->AppendAndWait(Entry(i)).ok());
  }
  const std::string seg = AuditDir() + "/seg-000001.log";
  const std::string good = ReadFile(seg);
  // A crash mid-write: half of a record, then a complete-length record with garbage.
  std::string torn = testing::EncodeRecord(10, std::string(120, 'x'));
  WriteFile(seg, good + torn.substr(0, 50));
  {
    auto log = OpenLog();
    EXPECT_EQ(log->size(), 10u);
    EXPECT_EQ(ReadFile(seg), good);
    ASSERT_EQ(*log->AppendAndWait(Entry(10)), 10u);
  }
  // Torn checkpoint note at the end of the checkpoints file.
  const std::string cps = ReadFile(AuditDir() + "/checkpoints");
  WriteFile(AuditDir() + "/checkpoints", cps + "phivault/x\n12\nabc");
  auto log = OpenLog();
  EXPECT_EQ(log->size(), 11u);
  EXPECT_EQ(ReadFile(AuditDir() + "/checkpoints"), cps);
  auto v = Verify(tmp_.path(), log->VerifierKey());
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->ok) << v->reason;
}

// Where the records of a segment end; `padding`: zeros follow them.
uint64_t RecordsEnd(const std::string& path, bool* padding) {
  auto r = SegmentReader::Open(path);
  EXPECT_TRUE(r.ok());
  Record rec;
  SegmentReader::Result res;
  while ((res = (*r)->Next(&rec)) == SegmentReader::Result::kRecord) {
  }
  EXPECT_EQ(res, SegmentReader::Result::kEnd);
  *padding = (*r)->padding();
  return (*r)->good_offset();
}

TEST_F(AuditLogTest, SegmentSpaceIsZeroFilledAheadAndTrimmedOnClose) {
  AuditLogOptions o;
  o.preallocate_bytes = 64 << 10;
  const std::string seg = AuditDir() + "/seg-000001.log";
  std::string live;
  std::string vkey;
  {
    auto log = OpenLog(o);
    vkey = log->VerifierKey();
    for (uint64_t i = 0; i < 20; ++i) ASSERT_TRUE(log->AppendAndWait(Entry(i)).ok());
    live = ReadFile(seg);
    bool padding = false;
    const uint64_t end = RecordsEnd(seg, &padding);
    EXPECT_TRUE(padding);
    EXPECT_GE(live.size(), end + (64 << 10));
    EXPECT_EQ(live.find_first_not_of('\0', end), std::string::npos);
    // The live files verify, and an export carries no padding.
    auto v = Verify(tmp_.path(), vkey);
    ASSERT_TRUE(v.ok());
    EXPECT_TRUE(v->ok) << v->reason;
    EXPECT_EQ(v->entries, 20u);
    TempDir out;
    ASSERT_TRUE(ExportSnapshot(AuditDir(), out.path() + "/x", "").ok());
    EXPECT_EQ(ReadFile(out.path() + "/x/seg-000001.log"), live.substr(0, end));
  }
  // Closing cuts the padding off.
  const std::string closed = ReadFile(seg);
  EXPECT_LT(closed.size(), live.size());
  EXPECT_EQ(closed, live.substr(0, closed.size()));
  bool padding = true;
  EXPECT_EQ(RecordsEnd(seg, &padding), closed.size());
  EXPECT_FALSE(padding);

  // A crash leaves the padding: the log opens with every entry and appends
  // into it.
  WriteFile(seg, live);
  {
    auto log = OpenLog(o);
    EXPECT_EQ(log->size(), 20u);
    for (uint64_t i = 20; i < 25; ++i) ASSERT_EQ(*log->AppendAndWait(Entry(i)), i);
    EXPECT_EQ(ReadFile(seg).size(), live.size());  // within the reserved space
    auto all = log->ReadEntries(0, 25);
    ASSERT_TRUE(all.ok());
    for (uint64_t i = 0; i < 25; ++i) EXPECT_EQ((*all)[i], Entry(i));
  }
  auto v = Verify(tmp_.path(), vkey);
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->ok) << v->reason;
  EXPECT_EQ(v->entries, 25u);

  // Nothing hides behind padding: a byte after the zeros is damage.
  std::string hidden = ReadFile(seg) + std::string(100, '\0') + testing::EncodeRecord(25, "x");
  WriteFile(seg, hidden);
  v = Verify(tmp_.path(), vkey);
  ASSERT_TRUE(v.ok());
  EXPECT_FALSE(v->ok);
  EXPECT_EQ(v->first_bad_index, 25u);
}

TEST_F(AuditLogTest, OnlyTheSegmentBeingAppendedToIsPadded) {
  AuditLogOptions o;
  o.segment_bytes = 2048;
  o.preallocate_bytes = 8192;
  auto log = OpenLog(o);
  for (uint64_t i = 0; i < 200; ++i) ASSERT_TRUE(log->AppendAndWait(Entry(i)).ok());
  auto segs = ListSegments(AuditDir());
  ASSERT_TRUE(segs.ok());
  ASSERT_GT(segs->size(), 5u);
  for (size_t i = 0; i < segs->size(); ++i) {
    bool padding = false;
    const uint64_t end = RecordsEnd((*segs)[i].path, &padding);
    const bool last = i + 1 == segs->size();
    EXPECT_EQ(padding, last) << (*segs)[i].path;
    if (!last) {
      EXPECT_EQ(ReadFile((*segs)[i].path).size(), end);
    }
  }
  auto v = Verify(AuditDir(), log->VerifierKey());
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->ok) << v->reason;
  EXPECT_EQ(v->entries, 200u);
}

TEST_F(AuditLogTest, HashCacheIsRebuilt) {
  {
    auto log = OpenLog();
    for (uint64_t i = 0; i < 100; ++i) ASSERT_TRUE(log->AppendAndWait(Entry(i)).ok());
  }
  // Lose the cache entirely, then corrupt it: both are recomputed from records.
  std::filesystem::remove_all(AuditDir() + "/tree");
  std::string root_before;
  {
    auto log = OpenLog();
    // Without a cache there is no border to trust: open rehashed everything.
    EXPECT_EQ(log->history_state(), AuditLog::HistoryState::kVerified);
    root_before = *log->Root(100);
  }
  std::string l0 = ReadFile(AuditDir() + "/tree/level-00.hash");
  l0[5 * 32] ^= 1;
  WriteFile(AuditDir() + "/tree/level-00.hash", l0);
  auto log = OpenLog();
  // The flipped node is not on the border at 100, so open trusts the border
  // and the background check finds and rewrites the node.
  ASSERT_TRUE(log->WaitForHistoryCheck().ok());
  EXPECT_EQ(*log->Root(100), root_before);
  auto leaf = log->LeafHash(5);
  auto proof = log->InclusionProof(5, 100);
  ASSERT_TRUE(leaf.ok() && proof.ok());
  EXPECT_TRUE(VerifyInclusion(5, 100, *leaf, *proof, root_before).ok());
}

// A latch the history thread waits on, so a test sees the log while its
// history is still being checked.
struct Gate {
  std::mutex m;
  std::condition_variable cv;
  bool open = false;
  void Wait() {
    std::unique_lock<std::mutex> lock(m);
    cv.wait(lock, [&] { return open; });
  }
  void Open() {
    {
      std::lock_guard<std::mutex> lock(m);
      open = true;
    }
    cv.notify_all();
  }
};

class AuditHistoryTest : public AuditLogTest {
 protected:
  // 3,000 entries over many small segments, closed with a final checkpoint.
  void SetUp() override {
    AuditLogTest::SetUp();
    auto log = OpenLog(Small());
    // In groups of 25, so that segments fill and roll over between groups.
    for (uint64_t i = 0; i < kEntries; i += 25) {
      std::vector<std::future<bool>> done;
      for (uint64_t j = i; j < i + 25; ++j) {
        auto p = std::make_shared<std::promise<bool>>();
        done.push_back(p->get_future());
        log->Append(Entry(j), [p](StatusOr<uint64_t> r) { p->set_value(r.ok()); });
      }
      for (auto& f : done) ASSERT_TRUE(f.get());
    }
    root_ = *log->Root(kEntries);
  }
  static AuditLogOptions Small() {
    AuditLogOptions o;
    o.segment_bytes = 8 * 1024;
    return o;
  }
  std::string Segment(int n) const {
    char name[32];
    std::snprintf(name, sizeof(name), "/seg-%06d.log", n);
    return AuditDir() + name;
  }
  static constexpr uint64_t kEntries = 3000;
  std::string root_;
};

TEST_F(AuditHistoryTest, OpenScansOnlyTheTailAndChecksTheHistoryInTheBackground) {
  ASSERT_TRUE(std::filesystem::exists(Segment(20)));
  Gate gate;
  AuditLogOptions o = Small();
  o.before_history_check = [&] { gate.Wait(); };
  auto log = OpenLog(o);
  ASSERT_NE(log, nullptr);
  // A failed ASSERT below returns early: the gate must open before the log
  // closes, or its destructor would wait for the history thread forever.
  struct OpenOnExit {
    Gate& g;
    std::unique_ptr<AuditLog>& log;
    ~OpenOnExit() {
      g.Open();
      log.reset();
    }
  } open_on_exit{gate, log};
  EXPECT_EQ(log->size(), kEntries);
  EXPECT_EQ(log->history_state(), AuditLog::HistoryState::kChecking);
  // While unchecked: older entries are found by scanning their segment, the
  // tree answers from the border, and new entries are appended.
  EXPECT_TRUE(log->healthy());
  for (uint64_t start : {0ul, 5ul, 1023ul, 1024ul, 2047ul, 2990ul}) {
    auto e = log->ReadEntries(start, start + 10);
    ASSERT_TRUE(e.ok()) << start << ": " << e.status().ToString();
    for (uint64_t i = 0; i < 10; ++i) EXPECT_EQ((*e)[i], Entry(start + i));
  }
  EXPECT_EQ(*log->Root(kEntries), root_);
  auto appended = log->AppendAndWait(Entry(kEntries));
  ASSERT_TRUE(appended.ok()) << appended.status().ToString();
  EXPECT_EQ(*appended, kEntries);
  gate.Open();
  ASSERT_TRUE(log->WaitForHistoryCheck().ok());
  EXPECT_EQ(log->history_state(), AuditLog::HistoryState::kVerified);
  for (uint64_t start : {0ul, 1024ul, 2995ul}) {
    auto e = log->ReadEntries(start, start + 6);
    ASSERT_TRUE(e.ok()) << start << ": " << e.status().ToString();
    for (uint64_t i = 0; i < 6; ++i) EXPECT_EQ((*e)[i], Entry(start + i));
  }
  auto v = Verify(AuditDir(), log->VerifierKey());
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->ok) << v->reason;
}

// A record of the history rewritten with a valid CRC: the open that trusts
// the border succeeds, the background check finds the rewrite, and from
// then on nothing is appended (so nothing is served unaudited). The cached
// nodes that still hash the original record are kept, and the damage is
// marked on disk, so the next open checks everything first and refuses.
TEST_F(AuditHistoryTest, ReadSelectedReturnsExactlyTheAskedEntries) {
  const std::vector<uint64_t> picks = {0, 1, 2, 1023, 1024, 1500, 2047, 2048, 2999};
  auto check = [&](const AuditLog& log) {
    auto e = log.ReadSelected(picks);
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    ASSERT_EQ(e->size(), picks.size());
    for (size_t k = 0; k < picks.size(); ++k) EXPECT_EQ((*e)[k], Entry(picks[k]));
  };
  {
    // While the history is unchecked, positions come from scanning segments.
    Gate gate;
    AuditLogOptions o = Small();
    o.before_history_check = [&] { gate.Wait(); };
    auto log = OpenLog(o);
    ASSERT_NE(log, nullptr);
    check(*log);
    gate.Open();
  }
  auto log = OpenLog(Small());
  ASSERT_NE(log, nullptr);
  ASSERT_TRUE(log->WaitForHistoryCheck().ok());
  check(*log);
  auto none = log->ReadSelected({});
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  EXPECT_EQ(log->ReadSelected({5, 4}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(log->ReadSelected({5, 5}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(log->ReadSelected({5, kEntries}).status().code(), StatusCode::kInvalidArgument);
  std::vector<uint64_t> too_many(10001);
  for (size_t k = 0; k < too_many.size(); ++k) too_many[k] = k;
  EXPECT_EQ(log->ReadSelected(too_many).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(AuditHistoryTest, RewrittenHistoryStopsTheLogOnceFound) {
  auto seg = testing::ReadSegment(Segment(2));
  std::string payload(seg.payloads[3]);
  payload[payload.size() / 2] ^= 1;
  seg.records[3] = testing::EncodeRecord(**ReadSegmentFirstIndex(Segment(2)) + 3, payload);
  testing::WriteSegment(Segment(2), seg);
  const std::string cache = ReadFile(AuditDir() + "/tree/level-00.hash");
  {
    auto log = OpenLog(Small());
    Status st = log->WaitForHistoryCheck();
    EXPECT_EQ(st.code(), StatusCode::kDataLoss) << st.ToString();
    EXPECT_EQ(log->history_state(), AuditLog::HistoryState::kDamaged);
    EXPECT_FALSE(log->healthy());
    auto appended = log->AppendAndWait(Entry(kEntries));
    EXPECT_EQ(appended.status().code(), StatusCode::kUnavailable);
    EXPECT_EQ(log->size(), kEntries);
  }
  EXPECT_EQ(ReadFile(AuditDir() + "/tree/level-00.hash"), cache) << "evidence of the original record kept";
  EXPECT_TRUE(std::filesystem::exists(AuditDir() + "/history-damaged"));
  for (auto check : {AuditLogOptions::HistoryCheck::kBackground, AuditLogOptions::HistoryCheck::kAtOpen}) {
    AuditLogOptions o = Small();
    o.history_check = check;
    auto refused = AuditLog::Open(tmp_.path(), *keyring_, o);
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.status().code(), StatusCode::kDataLoss);
  }
}

// An open that checks first refuses a rewritten history before serving.
TEST_F(AuditHistoryTest, CheckAtOpenRefusesARewrittenHistory) {
  auto seg = testing::ReadSegment(Segment(3));
  std::string payload(seg.payloads[0]);
  payload[0] ^= 1;
  seg.records[0] = testing::EncodeRecord(**ReadSegmentFirstIndex(Segment(3)), payload);
  testing::WriteSegment(Segment(3), seg);
  AuditLogOptions o = Small();
  o.history_check = AuditLogOptions::HistoryCheck::kAtOpen;
  auto refused = AuditLog::Open(tmp_.path(), *keyring_, o);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kDataLoss);
}

// A record the CRC rejects in an older segment: the same, found by the
// background check. The cache border is intact, so only the marker keeps
// the next open from serving again; once the segment is restored, a full
// check passes and clears it.
TEST_F(AuditHistoryTest, DamagedHistoryRecordIsFoundInTheBackgroundAndRemembered) {
  const std::string original = ReadFile(Segment(1));
  auto seg = testing::ReadSegment(Segment(1));
  seg.records[7].back() ^= 1;
  testing::WriteSegment(Segment(1), seg);
  {
    auto log = OpenLog(Small());
    EXPECT_EQ(log->WaitForHistoryCheck().code(), StatusCode::kDataLoss);
    EXPECT_FALSE(log->healthy());
  }
  auto refused = AuditLog::Open(tmp_.path(), *keyring_, Small());
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kDataLoss);

  WriteFile(Segment(1), original);  // restored from a backup
  auto log = OpenLog(Small());
  ASSERT_NE(log, nullptr);
  EXPECT_EQ(log->history_state(), AuditLog::HistoryState::kVerified);
  EXPECT_FALSE(std::filesystem::exists(AuditDir() + "/history-damaged"));
  EXPECT_TRUE(log->AppendAndWait(Entry(kEntries)).ok());
}

// The latest checkpoint falls exactly where a segment starts, and entries
// after it were never checkpointed (a crash): the history ends with the
// segment before, which is read to its end.
TEST_F(AuditLogTest, CheckpointOnASegmentBoundary) {
  AuditLogOptions o;
  o.segment_bytes = 1;  // every group starts a segment
  o.checkpoint_interval = std::chrono::hours(1);
  const std::string copy = tmp_.path() + "/crashed";
  {
    auto log = OpenLog(o);
    for (uint64_t i = 0; i < 10; ++i) ASSERT_TRUE(log->AppendAndWait(Entry(i)).ok());
    ASSERT_TRUE(log->SignCheckpoint().ok());
    for (uint64_t i = 10; i < 15; ++i) ASSERT_TRUE(log->AppendAndWait(Entry(i)).ok());
    // The files as a crash now would leave them: no checkpoint past 10.
    std::filesystem::create_directories(copy);
    std::filesystem::copy(AuditDir(), AuditLog::AuditDir(copy), std::filesystem::copy_options::recursive);
  }
  ASSERT_EQ(**ReadSegmentFirstIndex(AuditLog::AuditDir(copy) + "/seg-000011.log"), 10u);
  auto log = AuditLog::Open(copy, *keyring_, o);
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  EXPECT_EQ((*log)->size(), 15u);
  Status st = (*log)->WaitForHistoryCheck();
  EXPECT_TRUE(st.ok()) << st.ToString();
  EXPECT_TRUE((*log)->healthy());
  auto e = (*log)->ReadEntries(0, 15);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_EQ((*e)[9], Entry(9));
  EXPECT_EQ((*e)[14], Entry(14));
}

// Cached nodes of the history that are wrong (bit rot) are rewritten by the
// background check; proofs then verify against the signed root.
TEST_F(AuditHistoryTest, BackgroundCheckRepairsTheHashCache) {
  const std::string l0_path = AuditDir() + "/tree/level-00.hash";
  const std::string l3_path = AuditDir() + "/tree/level-03.hash";
  const std::string l0 = ReadFile(l0_path);
  const std::string l3 = ReadFile(l3_path);
  std::string bad0 = l0, bad3 = l3;
  bad0[100 * 32 + 7] ^= 1;  // leaf 100
  bad3[40 * 32] ^= 1;       // leaves 320..327
  WriteFile(l0_path, bad0);
  WriteFile(l3_path, bad3);
  auto log = OpenLog(Small());
  ASSERT_TRUE(log->WaitForHistoryCheck().ok());
  EXPECT_EQ(ReadFile(l0_path).substr(0, l0.size()), l0);
  EXPECT_EQ(ReadFile(l3_path).substr(0, l3.size()), l3);
  for (uint64_t i : {100ul, 323ul}) {
    auto leaf = log->LeafHash(i);
    auto proof = log->InclusionProof(i, kEntries);
    ASSERT_TRUE(leaf.ok() && proof.ok());
    EXPECT_TRUE(VerifyInclusion(i, kEntries, *leaf, *proof, root_).ok()) << i;
  }
}

// A cache that does not reproduce the signed root at its border, or lacks
// nodes of the history, is not trusted: open rehashes everything (no
// background check follows) and repairs it.
TEST_F(AuditHistoryTest, UntrustedCacheFallsBackToAFullScan) {
  const std::string l11_path = AuditDir() + "/tree/level-11.hash";  // 2048 of 3000: on the border
  std::string l11 = ReadFile(l11_path);
  ASSERT_EQ(l11.size(), 32u);
  l11[0] ^= 1;
  WriteFile(l11_path, l11);
  {
    auto log = OpenLog(Small());
    EXPECT_EQ(log->history_state(), AuditLog::HistoryState::kVerified);
    EXPECT_EQ(*log->Root(kEntries), root_);
  }
  EXPECT_EQ(ReadFile(l11_path), std::string(l11).replace(0, 1, 1, static_cast<char>(l11[0] ^ 1)));
  // A short level: the border may be whole, but the check needs every node.
  std::filesystem::resize_file(AuditDir() + "/tree/level-01.hash", 100 * 32);
  auto log = OpenLog(Small());
  EXPECT_EQ(log->history_state(), AuditLog::HistoryState::kVerified);
  EXPECT_EQ(std::filesystem::file_size(AuditDir() + "/tree/level-01.hash"), (kEntries / 2) * 32);
  auto e = log->ReadEntries(5, 6);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ((*e)[0], Entry(5));
}

TEST_F(AuditLogTest, SegmentsRollOver) {
  AuditLogOptions o;
  o.segment_bytes = 2048;
  {
    auto log = OpenLog(o);
    for (uint64_t i = 0; i < 200; ++i) ASSERT_TRUE(log->AppendAndWait(Entry(i)).ok());
  }
  int segs = 0;
  for (const auto& f : FilesBelow(AuditDir())) segs += f.find("/seg-") != std::string::npos;
  EXPECT_GT(segs, 5);
  auto log = OpenLog(o);
  EXPECT_EQ(log->size(), 200u);
  auto e = log->ReadEntries(150, 200);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_EQ((*e)[49], Entry(199));
  auto v = Verify(AuditDir(), log->VerifierKey());
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->ok) << v->reason;
  EXPECT_EQ(v->entries, 200u);
}

TEST_F(AuditLogTest, GroupCommitWithConcurrentAppenders) {
  auto faults = std::make_shared<Faults>();
  AuditLogOptions o;
  o.open_file = testing::FaultyOpener(faults);
  auto log = OpenLog(o);
  constexpr int kThreads = 8;
  constexpr int kPerThread = 2000;
  std::mutex m;
  std::vector<uint64_t> got;
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        if (i % 2 == 0) {
          auto r = log->AppendAndWait(Entry(t * kPerThread + i));
          std::lock_guard<std::mutex> lock(m);
          r.ok() ? got.push_back(*r) : void(++errors);
        } else {
          log->Append(Entry(t * kPerThread + i), [&](StatusOr<uint64_t> r) {
            std::lock_guard<std::mutex> lock(m);
            r.ok() ? got.push_back(*r) : void(++errors);
          });
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  log.reset();  // drains the queue
  EXPECT_EQ(errors.load(), 0);
  ASSERT_EQ(got.size(), size_t{kThreads * kPerThread});
  std::sort(got.begin(), got.end());
  for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], i);
  // Group commit: far fewer syncs than entries.
  EXPECT_LT(faults->syncs.load(), kThreads * kPerThread / 4);
  auto reopened = OpenLog();
  EXPECT_EQ(reopened->size(), got.size());
  auto v = Verify(tmp_.path(), reopened->VerifierKey());
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->ok) << v->reason;
}

// A disk that hangs fails nothing, yet every request waits on it: the log
// must say it is unhealthy while a group write runs too long, so /readyz
// takes the node out of rotation, and healthy again once the write ends.
TEST_F(AuditLogTest, StalledWriteIsUnhealthyWhileItLasts) {
  TempDir dir;
  auto keyring = MakeKeyring(dir.path());
  auto faults = std::make_shared<Faults>();
  AuditLogOptions o;
  o.open_file = testing::FaultyOpener(faults);
  o.stall_after = std::chrono::milliseconds(100);
  auto opened = AuditLog::Open(dir.path(), *keyring, o);
  ASSERT_TRUE(opened.ok());
  auto log = std::move(opened).value();
  ASSERT_TRUE(log->AppendAndWait(Entry(0)).ok());
  EXPECT_TRUE(log->healthy());

  faults->sync_delay_ms = 600;
  std::atomic<bool> durable{false};
  log->Append(Entry(1), [&](StatusOr<uint64_t> r) {
    EXPECT_TRUE(r.ok());
    durable = true;
  });
  bool saw_unhealthy = false;
  while (!durable && !saw_unhealthy) {
    saw_unhealthy = !log->healthy();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(saw_unhealthy) << "a 600 ms sync went unnoticed";
  faults->sync_delay_ms = 0;
  while (!durable) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_TRUE(log->healthy());
}

TEST_F(AuditLogTest, WriteFailureFailsCallbacksThenRecovers) {
  for (bool fail_sync : {false, true}) {
    SCOPED_TRACE(fail_sync ? "fsync fails" : "write fails");
    TempDir dir;
    auto keyring = MakeKeyring(dir.path());
    auto faults = std::make_shared<Faults>();
    AuditLogOptions o;
    o.open_file = testing::FaultyOpener(faults);
    auto opened = AuditLog::Open(dir.path(), *keyring, o);
    ASSERT_TRUE(opened.ok());
    auto log = std::move(opened).value();
    for (uint64_t i = 0; i < 5; ++i) ASSERT_EQ(*log->AppendAndWait(Entry(i)), i);
    EXPECT_TRUE(log->healthy());

    (fail_sync ? faults->fail_syncs : faults->fail_writes) = true;
    std::atomic<int> unavailable{0};
    for (int i = 0; i < 20; ++i) {
      log->Append("lost " + std::to_string(i), [&](StatusOr<uint64_t> r) {
        EXPECT_FALSE(r.ok()) << "index acknowledged during failure";
        if (!r.ok() && r.status().code() == StatusCode::kUnavailable) ++unavailable;
      });
    }
    auto r = log->AppendAndWait("lost too");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
    EXPECT_EQ(unavailable.load(), 20);
    EXPECT_FALSE(log->healthy());
    EXPECT_EQ(log->size(), 5u);

    // The disk works again: the next append repairs the segment and succeeds
    // with the next index; nothing of the failed batches remains.
    faults->fail_syncs = false;
    faults->fail_writes = false;
    ASSERT_EQ(*log->AppendAndWait(Entry(5)), 5u);
    EXPECT_TRUE(log->healthy());
    ASSERT_EQ(*log->AppendAndWait(Entry(6)), 6u);
    ASSERT_TRUE(log->SignCheckpoint().ok());
    auto entries = log->ReadEntries(0, 7);
    ASSERT_TRUE(entries.ok()) << entries.status().ToString();
    for (uint64_t i = 0; i < 7; ++i) EXPECT_EQ((*entries)[i], Entry(i));
    const std::string vkey = log->VerifierKey();
    log.reset();
    auto v = Verify(dir.path(), vkey);
    ASSERT_TRUE(v.ok());
    EXPECT_TRUE(v->ok) << v->reason;
    EXPECT_EQ(v->entries, 7u);
    auto again = AuditLog::Open(dir.path(), *keyring);
    ASSERT_TRUE(again.ok()) << again.status().ToString();
    EXPECT_EQ((*again)->size(), 7u);
  }
}

TEST_F(AuditLogTest, CheckpointWriteFailureIsReportedAndRetried) {
  auto faults = std::make_shared<Faults>();
  AuditLogOptions o;
  o.open_file = testing::FaultyOpener(faults);
  o.checkpoint_interval = std::chrono::hours(1);  // only explicit checkpoints
  auto log = OpenLog(o);
  ASSERT_TRUE(log->AppendAndWait(Entry(0)).ok());  // the writer signs the first entry's checkpoint
  ASSERT_TRUE(log->AppendAndWait(Entry(1)).ok());
  faults->fail_writes = true;
  EXPECT_FALSE(log->SignCheckpoint().ok());
  faults->fail_writes = false;
  auto cp = log->SignCheckpoint();
  ASSERT_TRUE(cp.ok());
  const std::string vkey = log->VerifierKey();
  log.reset();
  auto v = Verify(tmp_.path(), vkey);
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->ok) << v->reason;
}

TEST_F(AuditLogTest, RejectsOversizedEntryAndAppendsAfterShutdownFail) {
  AuditLogOptions o;
  o.max_entry_bytes = 100;
  auto log = OpenLog(o);
  auto r = log->AppendAndWait(std::string(101, 'a'));
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(*log->AppendAndWait("small"), 0u);
}

TEST_F(AuditLogTest, NoPlaintextAtRest) {
  const std::string marker = "Zebulon-Quartermaine-MRN-4471-0932";
  {
    auto log = OpenLog();
    for (int i = 0; i < 50; ++i) {
      ASSERT_TRUE(log->AppendAndWait("{\"patient\":\"" + marker + "\",\"i\":" + std::to_string(i) + "}").ok());
    }
    ASSERT_TRUE(log->SignCheckpoint().ok());
    ASSERT_TRUE(log->Export(tmp_.Sub("export")).ok());
  }
  int files = 0;
  for (const std::string& f : FilesBelow(tmp_.path())) {
    if (f.find("/audit/") == std::string::npos && f.find("/export/") == std::string::npos) continue;
    ++files;
    const std::string bytes = ReadFile(f);
    EXPECT_EQ(bytes.find(marker), std::string::npos) << f;
    EXPECT_EQ(bytes.find("Zebulon"), std::string::npos) << f;
  }
  EXPECT_GE(files, 6);
}

TEST_F(AuditLogTest, RefusesToOpenWhenCheckpointCoversLostEntries) {
  {
    auto log = OpenLog();
    for (uint64_t i = 0; i < 10; ++i) ASSERT_TRUE(log->AppendAndWait(Entry(i)).ok());
    ASSERT_TRUE(log->SignCheckpoint().ok());
  }
  auto seg = testing::ReadSegment(AuditDir() + "/seg-000001.log");
  seg.records.resize(8);
  testing::WriteSegment(AuditDir() + "/seg-000001.log", seg);
  auto log = AuditLog::Open(tmp_.path(), *keyring_);
  ASSERT_FALSE(log.ok());
  EXPECT_EQ(log.status().code(), StatusCode::kDataLoss);
}

// A damaged record before acknowledged ones in the last segment refuses the
// open, and the file is left as it was: the evidence must not be cut off.
TEST_F(AuditLogTest, DamageBeforeCheckpointedEntriesIsLeftOnDisk) {
  {
    auto log = OpenLog();
    for (uint64_t i = 0; i < 10; ++i) ASSERT_TRUE(log->AppendAndWait(Entry(i)).ok());
    ASSERT_TRUE(log->SignCheckpoint().ok());
  }
  const std::string path = AuditDir() + "/seg-000001.log";
  auto seg = testing::ReadSegment(path);
  seg.records[4].back() ^= 1;  // bit rot in the payload: the CRC no longer matches
  testing::WriteSegment(path, seg);
  const std::string damaged = ReadFile(path);
  auto log = AuditLog::Open(tmp_.path(), *keyring_);
  ASSERT_FALSE(log.ok());
  EXPECT_EQ(log.status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(ReadFile(path), damaged);
}

// Records of a group whose sync failed were answered as failed: closing the
// log cuts them off, so the next open does not count them.
TEST_F(AuditLogTest, FailedGroupIsCutOffWhenTheLogCloses) {
  auto faults = std::make_shared<Faults>();
  AuditLogOptions o;
  o.open_file = testing::FaultyOpener(faults);
  {
    auto log = OpenLog(o);
    ASSERT_EQ(*log->AppendAndWait(Entry(0)), 0u);
    faults->fail_syncs = true;
    EXPECT_FALSE(log->AppendAndWait(Entry(1)).ok());
    faults->fail_syncs = false;
  }
  auto log = OpenLog();
  EXPECT_EQ(log->size(), 1u);
}

TEST_F(AuditLogTest, ReaderBoundsPaddingAndTellsItFromDamage) {
  {
    auto log = OpenLog();
    ASSERT_TRUE(log->AppendAndWait(Entry(0)).ok());
  }
  const std::string path = AuditDir() + "/seg-000001.log";
  bool padding = false;
  const uint64_t end = RecordsEnd(path, &padding);
  ASSERT_FALSE(padding);
  auto last_result = [&] {
    auto r = SegmentReader::Open(path);
    EXPECT_TRUE(r.ok());
    Record rec;
    SegmentReader::Result res;
    while ((res = (*r)->Next(&rec)) == SegmentReader::Result::kRecord) {
    }
    return res;
  };
  // Fewer zeros than a record header still end the records.
  std::filesystem::resize_file(path, end + 5);
  EXPECT_EQ(last_result(), SegmentReader::Result::kEnd);
  // The most padding a reader accepts, as a sparse file...
  std::filesystem::resize_file(path, end + kMaxPaddingBytes);
  EXPECT_EQ(last_result(), SegmentReader::Result::kEnd);
  // ...and beyond it, which no writer leaves: damage, not hours of reading.
  std::filesystem::resize_file(path, end + kMaxPaddingBytes + 4096);
  EXPECT_EQ(last_result(), SegmentReader::Result::kCorrupt);
}

TEST_F(AuditLogTest, EntriesAreBoundToTheirPosition) {
  {
    auto log = OpenLog();
    for (uint64_t i = 0; i < 3; ++i) ASSERT_TRUE(log->AppendAndWait(Entry(i)).ok());
  }
  // Move entry 2's ciphertext into slot 1 with a correct record header: the
  // AEAD (AAD = vault id + index) refuses to open it there.
  const std::string path = AuditDir() + "/seg-000001.log";
  auto seg = testing::ReadSegment(path);
  seg.records[1] = testing::EncodeRecord(1, seg.payloads[2]);
  testing::WriteSegment(path, seg);
  std::filesystem::remove_all(AuditDir() + "/tree");
  std::filesystem::remove(AuditDir() + "/checkpoints");  // else Open refuses: the root changed
  auto log = OpenLog();
  auto e = log->ReadEntries(1, 2);
  EXPECT_EQ(e.status().code(), StatusCode::kDataLoss);
}

}  // namespace
}  // namespace phivault::audit
