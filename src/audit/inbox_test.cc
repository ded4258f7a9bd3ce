// Audit inbox: events queued by commands reach the log exactly as submitted,
// in time order, once each; forged or malformed files never do.
#include "audit/inbox.h"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "audit/test_util.h"

namespace phivault::audit {
namespace {

namespace fs = std::filesystem;
using phivault::testing::TempDir;
using phivault::testing::WriteFile;
using testing::MakeKeyring;

AuditEntry KeyChange(int64_t time_ms) {
  AuditEntry e;
  e.time_ms = time_ms;
  e.action = AuditAction::kKeyChange;
  e.event = "master-key-rotated";
  e.agent.subject = OsUserSubject();
  e.agent.client_id = "phivault-cli";
  return e;
}

std::vector<AuditEntry> Entries(const AuditLog& log) {
  auto raw = log.ReadEntries(0, log.size());
  EXPECT_TRUE(raw.ok());
  std::vector<AuditEntry> out;
  for (const auto& r : *raw) {
    auto e = ParseEntry(r);
    EXPECT_TRUE(e.ok());
    if (e.ok()) out.push_back(*e);
  }
  return out;
}

size_t FilesIn(const std::string& dir) {
  size_t n = 0;
  for ([[maybe_unused]] const auto& f : fs::directory_iterator(dir)) ++n;
  return n;
}

TEST(AuditInbox, SubmittedEntriesLandOnceInTimeOrder) {
  TempDir tmp;
  auto keyring = MakeKeyring(tmp.path());
  AuditEntry later = KeyChange(2000);
  AuditEntry earlier = KeyChange(1000);
  earlier.action = AuditAction::kExport;
  earlier.event = "audit-log";
  ASSERT_TRUE(SubmitToInbox(tmp.path(), later).ok());
  ASSERT_TRUE(SubmitToInbox(tmp.path(), earlier).ok());
  EXPECT_EQ(FilesIn(InboxDir(tmp.path())), 2u);

  auto log = AuditLog::Open(tmp.path(), *keyring, {});
  ASSERT_TRUE(log.ok());
  auto n = DrainInbox(tmp.path(), **log);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, 2u);
  EXPECT_EQ(Entries(**log), (std::vector<AuditEntry>{earlier, later}));
  EXPECT_EQ(FilesIn(InboxDir(tmp.path())), 0u);
  // Drained files are gone: a second drain appends nothing.
  auto again = DrainInbox(tmp.path(), **log);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, 0u);
  EXPECT_EQ((*log)->size(), 2u);
}

// `sudo phivault ...` beside a server that runs as the data directory's
// owner: the inbox and its entries are handed to that owner, or the server
// could not read them. (Needs root to hand files over; skipped otherwise.)
TEST(AuditInbox, EntriesSubmittedByRootBelongToTheDataDirectorysOwner) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  TempDir tmp;
  const std::string data = tmp.path() + "/data";
  ASSERT_EQ(::mkdir(data.c_str(), 0700), 0);
  const uid_t owner = 65534;  // nobody
  const gid_t group = 65534;
  ASSERT_EQ(::chown(data.c_str(), owner, group), 0);
  ASSERT_TRUE(SubmitToInbox(data, KeyChange(1000)).ok());
  struct stat st;
  ASSERT_EQ(::stat(InboxDir(data).c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, owner);
  EXPECT_EQ(st.st_gid, group);
  size_t files = 0;
  for (const auto& f : fs::directory_iterator(InboxDir(data))) {
    ASSERT_EQ(::stat(f.path().c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, owner) << f.path();
    EXPECT_EQ(st.st_mode & 0777, 0600u) << f.path();
    ++files;
  }
  EXPECT_EQ(files, 1u);
}

TEST(AuditInbox, NoInboxIsNothingToDo) {
  TempDir tmp;
  auto keyring = MakeKeyring(tmp.path());
  auto log = AuditLog::Open(tmp.path(), *keyring, {});
  ASSERT_TRUE(log.ok());
  auto n = DrainInbox(tmp.path(), **log);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 0u);
}

// `phivault backup` and `phivault restore` queue their entries here too;
// a forged backup entry by someone who is not an OS user still is refused.
TEST(AuditInbox, BackupAndRestoreEntriesAreAccepted) {
  TempDir tmp;
  auto keyring = MakeKeyring(tmp.path());
  AuditEntry backup = KeyChange(10);
  backup.action = AuditAction::kBackup;
  backup.event = "backup";
  AuditEntry restore = KeyChange(11);
  restore.action = AuditAction::kRestore;
  restore.event = "restore";
  restore.outcome = AuditOutcome::kDenied;
  ASSERT_TRUE(SubmitToInbox(tmp.path(), backup).ok());
  ASSERT_TRUE(SubmitToInbox(tmp.path(), restore).ok());
  AuditEntry forged = backup;
  forged.agent.subject = "dr-mallory";
  EXPECT_EQ(SubmitToInbox(tmp.path(), forged).code(), StatusCode::kInvalidArgument);
  WriteFile(InboxDir(tmp.path()) + "/evt-000000000000001-dddd.json", Serialize(forged));

  auto log = AuditLog::Open(tmp.path(), *keyring, {});
  ASSERT_TRUE(log.ok());
  auto n = DrainInbox(tmp.path(), **log);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 2u);
  EXPECT_EQ(Entries(**log), (std::vector<AuditEntry>{backup, restore}));
  EXPECT_TRUE(fs::exists(InboxDir(tmp.path()) + "/rejected-000000000000001-dddd.json"));
}

TEST(AuditInbox, SubmitRefusesWhatTheDrainWouldReject) {
  TempDir tmp;
  AuditEntry read = KeyChange(1);
  read.action = AuditAction::kRead;
  EXPECT_EQ(SubmitToInbox(tmp.path(), read).code(), StatusCode::kInvalidArgument);
  AuditEntry nobody = KeyChange(1);
  nobody.agent.subject = "user-1";
  EXPECT_EQ(SubmitToInbox(tmp.path(), nobody).code(), StatusCode::kInvalidArgument);
}

// Someone with write access to the data directory drops files: a forged
// clinical read, a non-entry, and a huge file. None reaches the log; each
// is set aside, and the genuine entry still lands.
TEST(AuditInbox, ForgedAndMalformedFilesAreSetAside) {
  TempDir tmp;
  auto keyring = MakeKeyring(tmp.path());
  ASSERT_TRUE(SubmitToInbox(tmp.path(), KeyChange(5)).ok());
  const std::string dir = InboxDir(tmp.path());
  AuditEntry forged = KeyChange(1);
  forged.action = AuditAction::kRead;
  forged.patients = {"p1"};
  WriteFile(dir + "/evt-000000000000001-aaaa.json", Serialize(forged));
  WriteFile(dir + "/evt-000000000000002-bbbb.json", "not json");
  WriteFile(dir + "/evt-000000000000003-cccc.json", std::string(kMaxEntryBytes + 10, '{'));
  WriteFile(dir + "/unrelated.txt", "ignored");

  auto log = AuditLog::Open(tmp.path(), *keyring, {});
  ASSERT_TRUE(log.ok());
  auto n = DrainInbox(tmp.path(), **log);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 1u);
  auto entries = Entries(**log);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0], KeyChange(5));
  EXPECT_TRUE(fs::exists(dir + "/rejected-000000000000001-aaaa.json"));
  EXPECT_TRUE(fs::exists(dir + "/rejected-000000000000002-bbbb.json"));
  EXPECT_TRUE(fs::exists(dir + "/rejected-000000000000003-cccc.json"));
  EXPECT_TRUE(fs::exists(dir + "/unrelated.txt"));
  // Rejected files are not retried.
  auto again = DrainInbox(tmp.path(), **log);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, 0u);
}

// The log cannot be written: the entry stays queued and lands once it can.
TEST(AuditInbox, EntryStaysQueuedWhileTheLogFails) {
  TempDir tmp;
  auto keyring = MakeKeyring(tmp.path());
  ASSERT_TRUE(SubmitToInbox(tmp.path(), KeyChange(7)).ok());
  auto faults = std::make_shared<testing::Faults>();
  AuditLogOptions o;
  o.open_file = testing::FaultyOpener(faults);
  auto log = AuditLog::Open(tmp.path(), *keyring, o);
  ASSERT_TRUE(log.ok());
  faults->fail_syncs = true;
  EXPECT_FALSE(DrainInbox(tmp.path(), **log).ok());
  EXPECT_EQ(FilesIn(InboxDir(tmp.path())), 1u);
  faults->fail_syncs = false;
  auto n = DrainInbox(tmp.path(), **log);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 1u);
  EXPECT_EQ(Entries(**log), std::vector<AuditEntry>{KeyChange(7)});
}

}  // namespace
}  // namespace phivault::audit
