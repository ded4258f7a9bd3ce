// End-to-end tests of `phivault audit ...` through the binary: pubkey,
// export (without the master key), verify naming the first bad index of a
// tampered export, a rewritten and re-signed history caught as a fork by a
// checkpoint published earlier, and publish --follow; and the audit entries
// of `audit export` and `keys rotate-master`, offline and while serving.
//
// Entries are written with the audit library directly (AuditLog over the
// vault's keyring), so these tests do not depend on which requests the
// server audits.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "api/vault.h"
#include "audit/audit_log.h"
#include "audit/checkpoint.h"
#include "audit/entry.h"
#include "audit/inbox.h"
#include "audit/publish.h"
#include "audit/rsyslog_test_util.h"
#include "audit/test_util.h"
#include "common/testing/temp_dir.h"
#include "crypto/keyring.h"
#include "run_bin.h"

namespace phivault {
namespace {

using testing::ReadFile;
using testing::SpawnBin;
using testing::TempDir;
using testing::WaitBin;

class AuditCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    key_ = tmp_.Sub("master.key");
    data_ = tmp_.Sub("data");
    ASSERT_EQ(Run({"keys", "generate", "--out", key_}), 0) << out_;
    ASSERT_EQ(Run({"init", "--data", data_, "--key-file", key_}), 0) << out_;
    crypto::MasterKeySource src;
    src.key_file = key_;
    auto k = crypto::Keyring::Open(data_, src);
    ASSERT_TRUE(k.ok()) << k.status().ToString();
    keyring_ = std::move(*k);
  }

  // Runs the binary; its combined output is in out_.
  int Run(const std::vector<std::string>& args) {
    const std::string path = tmp_.Sub("out-" + std::to_string(++runs_) + ".txt");
    const int rc = WaitBin(SpawnBin(args, path));
    out_ = ReadFile(path);
    return rc;
  }

  // Appends `n` entries tagged `tag` and signs a checkpoint covering them;
  // size_ is then the log's size (which includes the vault's own events,
  // such as its creation).
  void AppendAndSign(int n, const std::string& tag) {
    auto log = audit::AuditLog::Open(data_, *keyring_);
    ASSERT_TRUE(log.ok()) << log.status().ToString();
    base_ = (*log)->size();
    for (int i = 0; i < n; ++i) {
      audit::AuditEntry e;
      e.time_ms = 1767225600000 + i;
      e.request_id = tag + "-" + std::to_string(i);
      e.agent.subject = "dr-" + tag;
      e.patients = {"p" + std::to_string(i % 4)};
      ASSERT_TRUE((*log)->AppendAndWait(audit::Serialize(e)).ok());
    }
    ASSERT_TRUE((*log)->SignCheckpoint().ok());
    size_ = (*log)->size();
  }
  std::string OkLine() const { return "audit log OK: " + std::to_string(size_) + " entries"; }

  std::string Vkey() {
    EXPECT_EQ(Run({"audit", "pubkey", "--data", data_, "--key-file", key_}), 0) << out_;
    std::string k = out_.substr(0, out_.find('\n'));
    EXPECT_EQ(k, *audit::AuditVerifierKey(*keyring_));
    return k;
  }

  TempDir tmp_;
  std::string key_, data_, out_;
  std::unique_ptr<crypto::Keyring> keyring_;
  int runs_ = 0;
  uint64_t base_ = 0;  // log size before the last AppendAndSign
  uint64_t size_ = 0;  // and after it
};

// The vault's entries after opening it (which drains the audit inbox).
std::vector<audit::AuditEntry> VaultEntries(const std::string& data, const crypto::MasterKeySource& key) {
  api::VaultConfig vc;
  vc.data_dir = data;
  vc.key = key;
  auto vault = api::Vault::Open(vc);
  EXPECT_TRUE(vault.ok()) << vault.status().ToString();
  if (!vault.ok()) return {};
  auto raw = (*vault)->audit_log()->ReadEntries(0, (*vault)->audit_log()->size());
  EXPECT_TRUE(raw.ok());
  std::vector<audit::AuditEntry> out;
  for (const auto& r : *raw) {
    if (auto e = audit::ParseEntry(r); e.ok()) out.push_back(*e);
  }
  return out;
}

// `audit export` runs without the master key and `keys rotate-master` with
// the current one; each queues its entry, which lands when the vault is next
// opened: one export, one refused rotation (wrong key), one rotation, in
// that order, by the operating system user, and the new key opens the vault.
TEST_F(AuditCliTest, ExportAndKeyRotationAreAudited) {
  const std::string vkey = Vkey();
  ASSERT_EQ(Run({"audit", "export", "--data", data_, "--out", tmp_.Sub("x"), "--vkey", vkey}), 0) << out_;
  const std::string wrong = tmp_.Sub("wrong.key");
  const std::string next = tmp_.Sub("next.key");
  ASSERT_EQ(Run({"keys", "generate", "--out", wrong}), 0) << out_;
  ASSERT_EQ(Run({"keys", "generate", "--out", next}), 0) << out_;
  EXPECT_EQ(Run({"keys", "rotate-master", "--data", data_, "--key-file", wrong, "--new-key-file", next}), 3) << out_;
  ASSERT_EQ(Run({"keys", "rotate-master", "--data", data_, "--key-file", key_, "--new-key-file", next}), 0) << out_;
  EXPECT_EQ(Run({"audit", "pubkey", "--data", data_, "--key-file", key_}), 3) << out_;  // the old key is retired

  crypto::MasterKeySource src;
  src.key_file = next;
  std::vector<audit::AuditEntry> entries = VaultEntries(data_, src);
  std::vector<audit::AuditEntry> events;
  for (const auto& e : entries) {
    if (e.action == audit::AuditAction::kExport || e.action == audit::AuditAction::kKeyChange) events.push_back(e);
  }
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].action, audit::AuditAction::kExport);
  EXPECT_EQ(events[0].event, "audit-log-export");
  EXPECT_EQ(events[1].action, audit::AuditAction::kKeyChange);
  EXPECT_EQ(events[1].outcome, audit::AuditOutcome::kDenied);
  EXPECT_EQ(events[2].action, audit::AuditAction::kKeyChange);
  EXPECT_EQ(events[2].outcome, audit::AuditOutcome::kAllowed);
  for (const auto& e : events) EXPECT_EQ(e.agent.subject, audit::OsUserSubject());
  EXPECT_LE(events[0].time_ms, events[1].time_ms);
  EXPECT_LE(events[1].time_ms, events[2].time_ms);
  // Drained once: opening again adds no second copy.
  std::vector<audit::AuditEntry> again = VaultEntries(data_, src);
  size_t copies = 0;
  for (const auto& e : again) copies += e.action == audit::AuditAction::kExport;
  EXPECT_EQ(copies, 1u);
}

// A token minted from the command line is recorded with what it grants
// (never the token itself); when its entry cannot be queued, no token is
// printed.
TEST_F(AuditCliTest, MintedTokensAreAudited) {
  // The scope tries to pose as another role in the entry's query.
  ASSERT_EQ(Run({"token", "issue", "--data", data_, "--key-file", key_, "--sub", "nightly-export", "--role",
                 "system", "--scope", "system/*.rs&role=nurse", "--clearance", "R"}),
            0)
      << out_;
  const std::string token = out_.substr(0, out_.find('\n'));
  ASSERT_EQ(std::count(token.begin(), token.end(), '.'), 2) << out_;

  crypto::MasterKeySource src;
  src.key_file = key_;
  std::vector<audit::AuditEntry> minted;
  for (const auto& e : VaultEntries(data_, src)) {
    if (e.action == audit::AuditAction::kTokenIssued) minted.push_back(e);
  }
  ASSERT_EQ(minted.size(), 1u);
  EXPECT_EQ(minted[0].event, "token.minted");
  EXPECT_EQ(minted[0].agent.subject, audit::OsUserSubject());
  ASSERT_EQ(minted[0].resources.size(), 1u);
  EXPECT_EQ(minted[0].resources[0].id, "nightly-export");
  EXPECT_EQ(minted[0].query,
            "role=system&scope=system/%2A.rs%26role%3Dnurse&fhirUser=&lifetime_minutes=15&clearance=R");
  EXPECT_EQ(audit::Serialize(minted[0]).find(token.substr(token.rfind('.') + 1)), std::string::npos)
      << "the token's signature is in the log";

  // The inbox cannot be written (a file stands where its directory goes).
  std::filesystem::remove_all(audit::InboxDir(data_));
  { std::ofstream(audit::InboxDir(data_)) << "not a directory"; }
  EXPECT_NE(Run({"token", "issue", "--data", data_, "--key-file", key_, "--sub", "unrecorded", "--role", "system",
                 "--scope", "system/*.rs"}),
            0);
  EXPECT_EQ(out_.find("eyJ"), std::string::npos) << "a token was printed: " << out_;
  EXPECT_NE(out_.find("audit"), std::string::npos) << out_;
}

// While `serve` holds the vault, an export's entry still reaches the log:
// the server moves it in within its one-second drain, so it sits before the
// server's own "stop" entry.
TEST_F(AuditCliTest, ExportWhileServingIsAuditedByTheServer) {
  const std::string vkey = Vkey();
  const std::string log_path = tmp_.Sub("serve.log");
  const pid_t server = testing::SpawnServing(data_, key_, log_path);
  ASSERT_GT(server, 0) << ReadFile(log_path);
  ASSERT_EQ(Run({"audit", "export", "--data", data_, "--out", tmp_.Sub("x"), "--vkey", vkey}), 0) << out_;
  EXPECT_TRUE(testing::DirEmptied(audit::InboxDir(data_)));
  ::kill(server, SIGTERM);
  ASSERT_EQ(WaitBin(server), 0) << ReadFile(log_path);

  crypto::MasterKeySource src;
  src.key_file = key_;
  std::vector<audit::AuditEntry> entries = VaultEntries(data_, src);
  ptrdiff_t export_at = -1, stop_at = -1;
  for (size_t i = 0; i < entries.size(); ++i) {
    if (entries[i].action == audit::AuditAction::kExport) export_at = static_cast<ptrdiff_t>(i);
    if (entries[i].action == audit::AuditAction::kSystem && entries[i].event == "stop") stop_at = static_cast<ptrdiff_t>(i);
  }
  ASSERT_GE(export_at, 0);
  ASSERT_GE(stop_at, 0);
  EXPECT_LT(export_at, stop_at);
}

// A request the HTTP layer refuses (here a malformed header line) never
// reaches the FHIR service, and is still audited.
TEST_F(AuditCliTest, RequestsRefusedByTheHttpLayerAreAudited) {
  const std::string log_path = tmp_.Sub("serve.log");
  const pid_t server = testing::SpawnServing(data_, key_, log_path);
  ASSERT_GT(server, 0) << ReadFile(log_path);
  const std::string log = ReadFile(log_path);
  const size_t at = log.find("event=server.listening port=");
  ASSERT_NE(at, std::string::npos) << log;
  const int port = std::atoi(log.c_str() + at + std::strlen("event=server.listening port="));
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  const std::string bad = "GET /fhir/Patient HTTP/1.1\r\nHost: h\r\nBad Header: v\r\n\r\n";
  ASSERT_EQ(::write(fd, bad.data(), bad.size()), static_cast<ssize_t>(bad.size()));
  char buf[512];
  const ssize_t n = ::read(fd, buf, sizeof buf);
  ::close(fd);
  ASSERT_GT(n, 12);
  EXPECT_EQ(std::string(buf, 12), "HTTP/1.1 400");
  ::kill(server, SIGTERM);
  ASSERT_EQ(WaitBin(server), 0) << ReadFile(log_path);

  crypto::MasterKeySource src;
  src.key_file = key_;
  int found = 0;
  for (const audit::AuditEntry& e : VaultEntries(data_, src)) {
    if (e.event != "http.rejected") continue;
    ++found;
    EXPECT_EQ(e.http_status, 400);
    EXPECT_EQ(e.rule, "malformed");
    EXPECT_EQ(e.outcome, audit::AuditOutcome::kDenied);
    EXPECT_EQ(e.source_address, "127.0.0.1");
  }
  EXPECT_EQ(found, 1);
}

TEST_F(AuditCliTest, VerifyNamesTheFirstBadIndexOfATamperedExport) {
  AppendAndSign(40, "a");
  const std::string vkey = Vkey();
  EXPECT_EQ(Run({"audit", "verify", "--data", data_, "--key-file", key_}), 0) << out_;
  EXPECT_NE(out_.find(OkLine()), std::string::npos) << out_;

  // Export and verify with no master key anywhere: only the public key.
  const std::string x = tmp_.Sub("export");
  ASSERT_EQ(Run({"audit", "export", "--data", data_, "--out", x, "--vkey", vkey}), 0) << out_;
  EXPECT_EQ(ReadFile(x + "/vkey.txt"), vkey + "\n");
  for (const auto& f : testing::FilesBelow(x)) EXPECT_EQ(ReadFile(f).find("dr-a"), std::string::npos) << f;
  ASSERT_EQ(Run({"audit", "verify", "--data", x, "--vkey", vkey}), 0) << out_;
  EXPECT_NE(out_.find(OkLine()), std::string::npos) << out_;
  ASSERT_EQ(Run({"audit", "verify", "--data", x}), 0) << out_;
  EXPECT_NE(out_.find("vkey.txt"), std::string::npos) << "says which key it trusted: " << out_;
  const std::string vkey_file = tmp_.Sub("vkey.txt");
  testing::WriteFile(vkey_file, vkey + "\n");
  ASSERT_EQ(Run({"audit", "verify", "--data", x, "--vkey", vkey_file}), 0) << out_;
  EXPECT_NE(Run({"audit", "verify", "--data", data_}), 0) << "a data dir without any key: " << out_;
  EXPECT_NE(out_.find("--vkey"), std::string::npos) << out_;

  // Flip one byte of entry 17's sealed payload.
  const std::string seg = x + "/seg-000001.log";
  const std::string pristine = ReadFile(seg);
  audit::testing::RawSegment raw = audit::testing::ReadSegment(seg);
  ASSERT_EQ(raw.records.size(), size_);
  const uint64_t victim = base_ + 17;
  raw.records[victim][audit::kRecordHeaderSize + 5] ^= 0x01;
  audit::testing::WriteSegment(seg, raw);
  EXPECT_EQ(Run({"audit", "verify", "--data", x, "--vkey", vkey}), 4) << out_;
  EXPECT_NE(out_.find("first bad index: " + std::to_string(victim)), std::string::npos) << out_;
  EXPECT_NE(out_.find("FAILED"), std::string::npos) << out_;

  // Remove entry 30 instead.
  testing::WriteFile(seg, pristine);
  raw = audit::testing::ReadSegment(seg);
  const uint64_t removed = base_ + 30;
  raw.records.erase(raw.records.begin() + static_cast<std::ptrdiff_t>(removed));
  audit::testing::WriteSegment(seg, raw);
  EXPECT_EQ(Run({"audit", "verify", "--data", x, "--vkey", vkey}), 4) << out_;
  EXPECT_NE(out_.find("first bad index: " + std::to_string(removed)), std::string::npos) << out_;

  // A key for another vault does not verify this one.
  testing::WriteFile(seg, pristine);
  TempDir other;
  auto other_keyring = audit::testing::MakeKeyring(other.path());
  std::string other_vkey = *audit::AuditVerifierKey(*other_keyring);
  EXPECT_NE(Run({"audit", "verify", "--data", x, "--vkey", other_vkey}), 0) << out_;
}

TEST_F(AuditCliTest, PublishedCheckpointExposesARewrittenHistory) {
  AppendAndSign(30, "a");
  const std::string vkey = Vkey();
  const std::string pub = tmp_.Sub("published.txt");
  ASSERT_EQ(Run({"audit", "publish", "--data", data_, "--key-file", key_, "--to", pub}), 0) << out_;
  const std::vector<std::string> first = audit::ExtractCheckpoints(ReadFile(pub));
  ASSERT_FALSE(first.empty());
  ASSERT_EQ(Run({"audit", "publish", "--data", data_, "--vkey", vkey, "--to", pub}), 0) << out_;
  EXPECT_NE(out_.find("published 0 checkpoint"), std::string::npos) << "nothing new: " << out_;
  EXPECT_EQ(audit::ExtractCheckpoints(ReadFile(pub)), first);

  // The attacker holds the master key: throws the log away, writes another
  // history of the same length and more, and signs it with the real key.
  std::filesystem::remove_all(audit::AuditLog::AuditDir(data_));
  AppendAndSign(30, "forged");
  AppendAndSign(5, "forged-more");
  EXPECT_EQ(Run({"audit", "verify", "--data", data_, "--key-file", key_}), 0)
      << "self-consistent on its own: " << out_;
  EXPECT_EQ(Run({"audit", "verify", "--data", data_, "--vkey", vkey, "--checkpoint", pub}), 4) << out_;
  EXPECT_NE(out_.find("fork"), std::string::npos) << out_;
  // The publisher refuses to carry on as if nothing happened.
  EXPECT_EQ(Run({"audit", "publish", "--data", data_, "--vkey", vkey, "--to", pub}), 4) << out_;
  EXPECT_NE(out_.find("fork"), std::string::npos) << out_;
  EXPECT_EQ(audit::ExtractCheckpoints(ReadFile(pub)), first);

  const std::string junk = tmp_.Sub("junk.txt");
  testing::WriteFile(junk, "not a checkpoint\n");
  EXPECT_EQ(Run({"audit", "verify", "--data", data_, "--vkey", vkey, "--checkpoint", junk}), 1) << out_;
}

TEST_F(AuditCliTest, PublishFollowAppendsEachNewCheckpoint) {
  AppendAndSign(5, "a");
  const std::string vkey = Vkey();
  const std::string pub = tmp_.Sub("published.txt");
  const std::string log_path = tmp_.Sub("follow.txt");
  pid_t pid = SpawnBin({"audit", "publish", "--data", data_, "--vkey", vkey, "--to", pub, "--follow",
                        "--interval-ms", "50"},
                       log_path);
  ASSERT_GT(pid, 0);
  auto vk = audit::ParseVerifierKey(vkey);
  ASSERT_TRUE(vk.ok());
  auto max_published = [&] {
    uint64_t m = 0;
    for (const auto& n : audit::ExtractCheckpoints(ReadFile(pub))) {
      auto h = audit::VerifyCheckpoint(n, *vk);
      EXPECT_TRUE(h.ok());
      if (h.ok()) m = std::max(m, h->size);
    }
    return m;
  };
  auto wait_for = [&](uint64_t size) {
    for (int i = 0; i < 200 && max_published() < size; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(25));
    return max_published();
  };
  EXPECT_EQ(wait_for(size_), size_) << ReadFile(log_path);
  AppendAndSign(7, "b");
  EXPECT_EQ(wait_for(size_), size_) << ReadFile(log_path);
  ::kill(pid, SIGTERM);
  EXPECT_EQ(WaitBin(pid), 0) << ReadFile(log_path);
  // Every note in the published file verifies, in increasing size.
  uint64_t last = 0;
  for (const auto& n : audit::ExtractCheckpoints(ReadFile(pub))) {
    auto h = audit::VerifyCheckpoint(n, *vk);
    ASSERT_TRUE(h.ok());
    EXPECT_GT(h->size, last);
    last = h->size;
  }
}

TEST_F(AuditCliTest, PublishToSyslogCollectorAndVerifyFromItsLog) {
  if (::access(audit::testing::kRsyslogd, X_OK) != 0) GTEST_SKIP() << "rsyslogd is not installed";
  TempDir collector_dir;
  ASSERT_TRUE(audit::testing::MakeCerts(collector_dir.path()));
  const uint16_t port = audit::testing::FreePort();
  audit::testing::Rsyslog collector(collector_dir.path(), port);
  ASSERT_TRUE(collector.Start()) << collector.Stderr();
  const std::string received = collector_dir.path() + "/out.log";

  AppendAndSign(10, "a");
  const std::string vkey = Vkey();
  // The collector's CA comes from the SIEM settings of the config file.
  const std::string conf = tmp_.Sub("phivault.toml");
  testing::WriteFile(conf, "[audit.siem]\ncollector = \"127.0.0.1:" + std::to_string(port) + "\"\nca_file = \"" +
                               collector_dir.path() + "/ca.pem\"\n");
  const std::string to = "syslog+tls://127.0.0.1:" + std::to_string(port);
  ASSERT_EQ(Run({"audit", "publish", "--config", conf, "--data", data_, "--vkey", vkey, "--to", to}), 0) << out_;
  auto count = [&] { return audit::ExtractCheckpoints(ReadFile(received)).size(); };
  ASSERT_TRUE(audit::testing::WaitFor([&] { return count() >= 1; }, std::chrono::seconds(10))) << collector.Stderr();
  const size_t first = count();
  ASSERT_EQ(Run({"audit", "verify", "--data", data_, "--vkey", vkey, "--checkpoint", received}), 0) << out_;

  AppendAndSign(3, "b");
  ASSERT_EQ(Run({"audit", "publish", "--config", conf, "--data", data_, "--vkey", vkey, "--to", to}), 0) << out_;
  ASSERT_TRUE(audit::testing::WaitFor([&] { return count() == first + 1; }, std::chrono::seconds(10)))
      << "only the new checkpoint is sent: " << ReadFile(received);

  // The copy on the collector exposes a rewritten history.
  std::filesystem::remove_all(audit::AuditLog::AuditDir(data_));
  AppendAndSign(13, "forged");
  EXPECT_EQ(Run({"audit", "verify", "--data", data_, "--vkey", vkey, "--checkpoint", received}), 4) << out_;
  EXPECT_NE(out_.find("fork"), std::string::npos) << out_;
}

}  // namespace
}  // namespace phivault
