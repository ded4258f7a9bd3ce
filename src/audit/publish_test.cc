// Snapshot export of a log that is being appended to, reading published
// checkpoints back in every form we write, and the syslog URL parser. The
// syslog publisher against a real rsyslog is in siem_exporter_test.cc.
#include "audit/publish.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "audit/checkpoint.h"
#include "audit/test_util.h"
#include "audit/verify.h"

namespace phivault::audit {
namespace {

using phivault::testing::ReadFile;
using phivault::testing::TempDir;
using phivault::testing::WriteFile;

class PublishTest : public ::testing::Test {
 protected:
  void SetUp() override {
    keyring_ = testing::MakeKeyring(tmp_.path());
    AuditLogOptions o;
    o.segment_bytes = 4096;  // many segments
    o.checkpoint_interval = std::chrono::milliseconds(1);
    auto log = AuditLog::Open(tmp_.path(), *keyring_, o);
    ASSERT_TRUE(log.ok()) << log.status().ToString();
    log_ = std::move(*log);
  }
  // Appends `n` entries, signs a checkpoint over them and closes the log.
  // Returns the verifier key.
  std::string FillAndClose(int n) {
    for (int i = 0; i < n; ++i) EXPECT_TRUE(log_->AppendAndWait("{\"n\":" + std::to_string(i) + "}").ok());
    EXPECT_TRUE(log_->SignCheckpoint().ok());
    std::string vkey = log_->VerifierKey();
    log_.reset();
    return vkey;
  }
  TempDir tmp_;
  std::unique_ptr<crypto::Keyring> keyring_;
  std::unique_ptr<AuditLog> log_;
};

TEST_F(PublishTest, SnapshotsOfALiveLogVerify) {
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int i = 0; !stop; ++i) {
      log_->Append("{\"n\":" + std::to_string(i) + "}", [](StatusOr<uint64_t>) {});
      if (i % 50 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  const std::string vkey = log_->VerifierKey();
  uint64_t last = 0;
  for (int round = 0; round < 8; ++round) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    const std::string out = tmp_.Sub("export-" + std::to_string(round));
    ASSERT_TRUE(ExportSnapshot(AuditLog::AuditDir(tmp_.path()), out, vkey).ok());
    EXPECT_EQ(ReadFile(out + "/vkey.txt"), vkey + "\n");
    auto r = Verify(out, vkey);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_TRUE(r->ok) << round << ": " << r->reason;
    EXPECT_GE(r->entries, last);
    last = r->entries;
  }
  stop = true;
  writer.join();
  EXPECT_GT(last, 0u);
  // The source was only read: the live log still opens and verifies.
  log_.reset();
  auto r = Verify(tmp_.path(), vkey);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->ok) << r->reason;
}

TEST_F(PublishTest, SnapshotKeepsDamageForTheVerifier) {
  const std::string vkey = FillAndClose(100);
  auto segs = ListSegments(AuditLog::AuditDir(tmp_.path()));
  ASSERT_TRUE(segs.ok());
  ASSERT_GT(segs->size(), 1u);
  // Flip a byte inside the first segment's first payload.
  std::string bytes = ReadFile((*segs)[0].path);
  bytes[kSegmentHeaderSize + kRecordHeaderSize + 3] ^= 1;
  WriteFile((*segs)[0].path, bytes);
  const std::string out = tmp_.Sub("export");
  ASSERT_TRUE(ExportSnapshot(AuditLog::AuditDir(tmp_.path()), out, "").ok());
  auto r = Verify(out, vkey);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->ok);
  EXPECT_EQ(r->first_bad_index, 0u);
  EXPECT_EQ(r->problem, Problem::kModified);
}

// A group whose write stalls (the writer preempted on a loaded machine)
// looks damaged to the exporter until the write completes. Export waits for
// it instead of copying it as damage; damage that stays is still copied.
TEST_F(PublishTest, SnapshotWaitsForAStalledWriteButKeepsLastingDamage) {
  const std::string vkey = FillAndClose(100);
  auto segs = ListSegments(AuditLog::AuditDir(tmp_.path()));
  ASSERT_TRUE(segs.ok());
  const std::string last = segs->back().path;
  const std::string whole = ReadFile(last);
  const off_t inside_last_payload = static_cast<off_t>(whole.size() - 5);
  auto put_byte = [&](char c) {
    int fd = ::open(last.c_str(), O_WRONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::pwrite(fd, &c, 1, inside_last_payload), 1);
    ::close(fd);
  };
  const char original = whole[static_cast<size_t>(inside_last_payload)];

  put_byte(static_cast<char>(original ^ 1));
  std::thread finisher([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    put_byte(original);
  });
  const std::string out = tmp_.Sub("export-stalled");
  ASSERT_TRUE(ExportSnapshot(AuditLog::AuditDir(tmp_.path()), out, vkey).ok());
  finisher.join();
  auto r = Verify(out, vkey);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->ok) << r->reason;
  EXPECT_EQ(r->entries, 100u);

  put_byte(static_cast<char>(original ^ 1));
  const std::string damaged = tmp_.Sub("export-damaged");
  ASSERT_TRUE(ExportSnapshot(AuditLog::AuditDir(tmp_.path()), damaged, vkey).ok());
  r = Verify(damaged, vkey);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->ok);
  EXPECT_EQ(r->first_bad_index, 99u);
}

TEST_F(PublishTest, PublishedCheckpointsReadBackInEveryForm) {
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(log_->AppendAndWait("{}").ok());
    ASSERT_TRUE(log_->SignCheckpoint().ok());
  }
  auto vkey = ParseVerifierKey(log_->VerifierKey());
  ASSERT_TRUE(vkey.ok());
  std::vector<std::string> notes = SplitNotes(ReadFile(AuditLog::AuditDir(tmp_.path()) + "/checkpoints"));
  ASSERT_GE(notes.size(), 3u);

  // A file written by AppendCheckpointToFile.
  const std::string file = tmp_.Sub("published");
  for (const auto& n : notes) ASSERT_TRUE(AppendCheckpointToFile(file, n).ok());
  EXPECT_EQ(ExtractCheckpoints(ReadFile(file)), notes);

  // A collector's file: one line per syslog message, other lines around.
  std::string syslog = "1|134|host|sshd|-|-|unrelated line\n";
  for (size_t i = 0; i < notes.size(); ++i) {
    syslog += "1|110|vault|phivault|checkpoint|-|" + FormatCheckpointMessage(notes[i], i + 1, "vault", 0).substr(0) +
              "\n";
  }
  std::vector<std::string> back = ExtractCheckpoints(syslog);
  ASSERT_EQ(back, notes);
  for (const auto& n : back) EXPECT_TRUE(VerifyCheckpoint(n, *vkey).ok());

  // One note saved without its terminating blank line (curl > file).
  std::string single = notes.back();
  EXPECT_EQ(ExtractCheckpoints(single), std::vector<std::string>{notes.back()});

  // Junk: nothing, and no crash.
  size_t undecodable = 0;
  EXPECT_TRUE(ExtractCheckpoints("PVCKPT1:!!!! PVCKPT1:", &undecodable).empty());
  EXPECT_EQ(undecodable, 2u);
  EXPECT_TRUE(ExtractCheckpoints("\n\n\n").empty());

  // Reading `--checkpoint` files: every form above is accepted, in order;
  // a token cut short by a relay is an error, not one checkpoint fewer.
  WriteFile(tmp_.Sub("syslog"), syslog);
  const std::vector<std::string> files = {file, tmp_.Sub("syslog")};
  auto read = ReadPublishedCheckpoints(files);
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(read->size(), 2 * notes.size());
  const size_t cut_at = syslog.rfind("PVCKPT1:") + 20;
  WriteFile(tmp_.Sub("cut"), syslog.substr(0, cut_at) + "\n");
  const std::vector<std::string> cut = {tmp_.Sub("cut")};
  EXPECT_EQ(ReadPublishedCheckpoints(cut).status().code(), StatusCode::kInvalidArgument);
  const std::vector<std::string> missing = {tmp_.Sub("missing")};
  EXPECT_EQ(ReadPublishedCheckpoints(missing).status().code(), StatusCode::kNotFound);
  WriteFile(tmp_.Sub("empty"), "nothing here\n");
  const std::vector<std::string> empty = {tmp_.Sub("empty")};
  EXPECT_EQ(ReadPublishedCheckpoints(empty).status().code(), StatusCode::kInvalidArgument);
}

TEST(PublishFormatTest, CheckpointMessageIsRfc5424) {
  std::string m = FormatCheckpointMessage("note\n\n\xE2\x80\x94 sig\n", 42, "vault host\n", 1767225600123);
  EXPECT_EQ(m.rfind("<110>1 2026-01-01T00:00:00.123Z vaulthost phivault ", 0), 0u) << m;
  EXPECT_NE(m.find(" checkpoint [phivault@32473 size=\"42\"] PVCKPT1:"), std::string::npos) << m;
  for (unsigned char c : m) EXPECT_TRUE(c >= 32 && c < 127) << m;
}

TEST(PublishFormatTest, ParsesSyslogUrls) {
  auto a = ParseSyslogUrl("syslog+tls://collector.example.org:10514");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->host, "collector.example.org");
  EXPECT_EQ(a->port, 10514);
  auto b = ParseSyslogUrl("syslog+tls://[::1]:6514/");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->host, "::1");
  auto c = ParseSyslogUrl("syslog+tls://127.0.0.1");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->port, 6514);
  for (const char* bad : {"syslog://h:1", "syslog+tls://", "syslog+tls://h:0", "syslog+tls://h:70000",
                          "syslog+tls://h:x", "syslog+tls://[::1", "syslog+tls://u@h:1", "/tmp/file"}) {
    EXPECT_FALSE(ParseSyslogUrl(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace phivault::audit
