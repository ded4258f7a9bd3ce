// End-to-end tests of `phivault backup`, `backup verify` and `restore`
// through the binary: a backup taken while `serve` holds the vault (its
// entry reaches the log through the server's inbox drain), no sample
// patient's name or identifier readable in the file, a restore that serves
// the same records and whose log verifies, and the exit codes and one-line
// errors for a tampered file and a wrong master key.
#include <signal.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <set>
#include <sstream>
#include <thread>

#include "api/vault.h"
#include "audit/entry.h"
#include "audit/inbox.h"
#include "audit/publish.h"
#include "common/testing/temp_dir.h"
#include "run_bin.h"

namespace phivault {
namespace {

using testing::ReadFile;
using testing::SpawnBin;
using testing::TempDir;
using testing::WaitBin;
using testing::WriteFile;

const std::string kPatients = std::string(PHIVAULT_SOURCE_DIR) + "/data/samples/synthea-10/Patient.000.ndjson";

// Values of `"field":"…"` in the sample patients (names, identifiers,
// phones) that are long enough not to occur by chance.
std::set<std::string> Needles() {
  std::set<std::string> out;
  const std::string text = ReadFile(kPatients);
  for (const std::string field : {"\"family\":\"", "\"value\":\"", "\"line\":[\""}) {
    for (size_t pos = text.find(field); pos != std::string::npos; pos = text.find(field, pos + 1)) {
      const size_t start = pos + field.size();
      const size_t end = text.find('"', start);
      if (end != std::string::npos && end - start >= 6) out.insert(text.substr(start, end - start));
    }
  }
  return out;
}

class BackupCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    key_ = tmp_.Sub("master.key");
    data_ = tmp_.Sub("data");
    ASSERT_EQ(Run({"keys", "generate", "--out", key_}), 0) << out_;
    ASSERT_EQ(Run({"init", "--data", data_, "--key-file", key_}), 0) << out_;
    ASSERT_EQ(Run({"import", "--data", data_, "--key-file", key_, kPatients}), 0) << out_;
    src_.key_file = key_;
  }

  int Run(const std::vector<std::string>& args) {
    const std::string path = tmp_.Sub("out-" + std::to_string(++runs_) + ".txt");
    const int rc = WaitBin(SpawnBin(args, path));
    out_ = ReadFile(path);
    return rc;
  }

  std::unique_ptr<api::Vault> Open(const std::string& dir) {
    api::VaultConfig vc;
    vc.data_dir = dir;
    vc.key = src_;
    auto v = api::Vault::Open(vc);
    EXPECT_TRUE(v.ok()) << v.status().ToString();
    return v.ok() ? std::move(*v) : nullptr;
  }

  static std::vector<audit::AuditEntry> Entries(api::Vault& v) {
    auto raw = v.audit_log()->ReadEntries(0, v.audit_log()->size());
    EXPECT_TRUE(raw.ok());
    std::vector<audit::AuditEntry> out;
    for (const auto& r : raw.ok() ? *raw : std::vector<std::string>{}) {
      if (auto e = audit::ParseEntry(r); e.ok()) out.push_back(*e);
    }
    return out;
  }

  // The patients as the store serves them, keyed by id.
  static std::map<std::string, std::string> Patients(api::Vault& v) {
    std::map<std::string, std::string> out;
    std::istringstream in(ReadFile(kPatients));
    for (std::string line; std::getline(in, line);) {
      const size_t at = line.find("\"id\":\"");
      if (at == std::string::npos) continue;
      const std::string id = line.substr(at + 6, line.find('"', at + 6) - at - 6);
      auto r = v.store()->Read("Patient", id);
      EXPECT_TRUE(r.ok()) << id << ": " << r.status().ToString();
      if (r.ok()) out[id] = r->json;
    }
    return out;
  }

  TempDir tmp_;
  std::string key_, data_, out_;
  crypto::MasterKeySource src_;
  int runs_ = 0;
};

TEST_F(BackupCliTest, BackupWhileServingRestoresAndIsAudited) {
  const std::string log_path = tmp_.Sub("serve.log");
  const pid_t server = testing::SpawnServing(data_, key_, log_path);
  ASSERT_GT(server, 0) << ReadFile(log_path);
  const std::string file = tmp_.Sub("vault.pvbackup");
  ASSERT_EQ(Run({"backup", "--data", data_, "--out", file, "--key-file", key_}), 0) << out_;
  EXPECT_NE(out_.find("backup written to " + file), std::string::npos) << out_;
  EXPECT_TRUE(testing::DirEmptied(audit::InboxDir(data_))) << "serve moves the backup entry into its log";
  ::kill(server, SIGTERM);
  ASSERT_EQ(WaitBin(server), 0) << ReadFile(log_path);

  const std::set<std::string> needles = Needles();
  ASSERT_GT(needles.size(), 10u);
  const std::string bytes = ReadFile(file);
  for (const auto& n : needles) EXPECT_EQ(bytes.find(n), std::string::npos) << n << " readable in the backup";

  ASSERT_EQ(Run({"backup", "verify", "--in", file, "--key-file", key_}), 0) << out_;
  EXPECT_NE(out_.find("backup OK: "), std::string::npos) << out_;

  const std::string restored = tmp_.Sub("restored");
  ASSERT_EQ(Run({"restore", "--from", file, "--data", restored, "--key-file", key_}), 0) << out_;
  ASSERT_EQ(Run({"audit", "verify", "--data", restored, "--key-file", key_}), 0) << out_;

  std::map<std::string, std::string> original;
  {
    auto v = Open(data_);
    ASSERT_NE(v, nullptr);
    original = Patients(*v);
    auto entries = Entries(*v);
    size_t backups = 0, backup_at = 0, stop_at = 0;
    for (size_t i = 0; i < entries.size(); ++i) {
      if (entries[i].action == audit::AuditAction::kBackup) {
        ++backups;
        backup_at = i;
        EXPECT_EQ(entries[i].outcome, audit::AuditOutcome::kAllowed);
      }
      if (entries[i].action == audit::AuditAction::kSystem && entries[i].event == "stop") stop_at = i;
    }
    EXPECT_EQ(backups, 1u);
    EXPECT_LT(backup_at, stop_at) << "recorded by the running server";
  }
  ASSERT_FALSE(original.empty());
  auto v = Open(restored);
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(Patients(*v), original);
  auto entries = Entries(*v);
  ASSERT_FALSE(entries.empty());
  EXPECT_EQ(entries.back().action, audit::AuditAction::kRestore);
  EXPECT_EQ(entries.back().outcome, audit::AuditOutcome::kAllowed);
}

// `--checkpoint` takes the file `audit publish` keeps outside the vault:
// checkpoints from before the backup are checked against its log, later ones
// are reported as not checkable, and a missing or empty file is an error,
// never a silent "nothing to compare".
TEST_F(BackupCliTest, VerifyAndRestoreCrossCheckPublishedCheckpoints) {
  const std::string published = tmp_.Sub("published.txt");
  ASSERT_EQ(Run({"audit", "publish", "--data", data_, "--to", published, "--key-file", key_}), 0) << out_;
  const std::string file = tmp_.Sub("vault.pvbackup");
  ASSERT_EQ(Run({"backup", "--data", data_, "--out", file, "--key-file", key_}), 0) << out_;
  ASSERT_EQ(Run({"import", "--data", data_, "--key-file", key_, kPatients}), 0) << out_;  // newer entries
  ASSERT_EQ(Run({"audit", "publish", "--data", data_, "--to", published, "--key-file", key_}), 0) << out_;

  ASSERT_EQ(Run({"backup", "verify", "--in", file, "--key-file", key_, "--checkpoint", published}), 0) << out_;
  const size_t at = out_.find("published checkpoints: ");
  ASSERT_NE(at, std::string::npos) << out_;
  const std::string counts = out_.substr(at);
  EXPECT_EQ(counts.rfind("published checkpoints: 0 ", 0), std::string::npos) << out_;
  EXPECT_NE(counts.find("agree with the backup's audit log"), std::string::npos) << out_;
  EXPECT_EQ(counts.find(", 0 are newer"), std::string::npos) << out_;
  EXPECT_EQ(out_.find("warning"), std::string::npos) << out_;
  ASSERT_EQ(Run({"restore", "--from", file, "--data", tmp_.Sub("restored"), "--key-file", key_, "--checkpoint",
                 published}),
            0)
      << out_;

  // Only the newest checkpoint: none covers the backup. Refused unless the
  // operator says the backup predates publication.
  const std::vector<std::string> notes = audit::ExtractCheckpoints(ReadFile(published));
  ASSERT_GE(notes.size(), 2u);
  const std::string newest = tmp_.Sub("newest.txt");
  WriteFile(newest, notes.back() + "\n");
  EXPECT_EQ(Run({"backup", "verify", "--in", file, "--key-file", key_, "--checkpoint", newest}), 1) << out_;
  EXPECT_NE(out_.find("--allow-uncovered"), std::string::npos) << out_;
  EXPECT_EQ(Run({"backup", "verify", "--in", file, "--key-file", key_, "--checkpoint", newest, "--allow-uncovered"}),
            0)
      << out_;
  EXPECT_NE(out_.find("warning: no published checkpoint is old enough"), std::string::npos) << out_;

  EXPECT_EQ(Run({"backup", "verify", "--in", file, "--key-file", key_, "--checkpoint", tmp_.Sub("nope")}), 1)
      << out_;
  WriteFile(tmp_.Sub("empty.txt"), "not a checkpoint\n");
  EXPECT_EQ(Run({"restore", "--from", file, "--data", tmp_.Sub("r3"), "--key-file", key_, "--checkpoint",
                 tmp_.Sub("empty.txt"), "--audit-data", data_}),
            1)
      << out_;
  EXPECT_NE(out_.find("no checkpoint found"), std::string::npos) << out_;
  EXPECT_FALSE(std::filesystem::exists(tmp_.Sub("r3")));
  // Refused before it began, and still recorded where the operator said.
  auto v = Open(data_);
  ASSERT_NE(v, nullptr);
  std::vector<audit::AuditOutcome> restores;
  for (const auto& e : Entries(*v)) {
    if (e.action == audit::AuditAction::kRestore) restores.push_back(e.outcome);
  }
  EXPECT_EQ(restores, (std::vector<audit::AuditOutcome>{audit::AuditOutcome::kDenied}));
}

TEST_F(BackupCliTest, TamperedFileAndWrongKeyGiveOneLineAndTheirExitCodes) {
  const std::string file = tmp_.Sub("vault.pvbackup");
  ASSERT_EQ(Run({"backup", "--data", data_, "--out", file, "--key-file", key_}), 0) << out_;
  const std::string wrong = tmp_.Sub("wrong.key");
  ASSERT_EQ(Run({"keys", "generate", "--out", wrong}), 0) << out_;

  EXPECT_EQ(Run({"backup", "--data", data_, "--out", tmp_.Sub("other"), "--key-file", wrong}), 3) << out_;
  EXPECT_FALSE(std::filesystem::exists(tmp_.Sub("other")));
  EXPECT_EQ(Run({"backup", "verify", "--in", file, "--key-file", wrong}), 3) << out_;
  EXPECT_EQ(Run({"restore", "--from", file, "--data", tmp_.Sub("r1"), "--key-file", wrong}), 3) << out_;
  EXPECT_FALSE(std::filesystem::exists(tmp_.Sub("r1")));

  std::string bytes = ReadFile(file);
  bytes[bytes.size() / 2] ^= 0x04;
  const std::string bad = tmp_.Sub("tampered.pvbackup");
  WriteFile(bad, bytes);
  EXPECT_EQ(Run({"backup", "verify", "--in", bad, "--key-file", key_}), 4) << out_;
  EXPECT_EQ(out_.rfind("phivault backup verify: FAILED: backup file is damaged or was modified: chunk ", 0), 0u)
      << out_;
  EXPECT_EQ(std::count(out_.begin(), out_.end(), '\n'), 1) << out_;
  EXPECT_EQ(Run({"restore", "--from", bad, "--data", tmp_.Sub("r2"), "--key-file", key_}), 4) << out_;
  EXPECT_FALSE(std::filesystem::exists(tmp_.Sub("r2")));

  // One entry per backup: the good one allowed, the wrong-key one denied.
  auto v = Open(data_);
  ASSERT_NE(v, nullptr);
  std::vector<audit::AuditOutcome> outcomes;
  for (const auto& e : Entries(*v)) {
    if (e.action == audit::AuditAction::kBackup) outcomes.push_back(e.outcome);
  }
  EXPECT_EQ(outcomes, (std::vector<audit::AuditOutcome>{audit::AuditOutcome::kAllowed, audit::AuditOutcome::kDenied}));
}

}  // namespace
}  // namespace phivault
