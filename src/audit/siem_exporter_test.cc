// SiemExporter against a real collector: rsyslogd (Debian's rsyslog +
// rsyslog-gnutls) started on loopback with a TLS listener (imtcp, gtls
// driver) and a test CA made with the openssl CLI. Checks RFC 5424 +
// octet-counted framing as rsyslog parses it, delivery of every entry,
// at-least-once across a collector stop/restart (duplicates allowed and
// counted; never a gap, never out of index order within a connection), the
// durable cursor, and certificate name checking. Also unit tests of the
// message format and the cursor file that need no collector.
#include "audit/siem_exporter.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "audit/entry.h"
#include "audit/publish.h"
#include "audit/rsyslog_test_util.h"
#include "audit/test_util.h"
#include "fhir/time.h"

extern char** environ;

namespace phivault::audit {
namespace {

using phivault::testing::ReadFile;
using phivault::testing::TempDir;
using phivault::testing::WriteFile;
using namespace std::chrono_literals;

using testing::FreePort;
using testing::kRsyslogd;
using testing::MakeCerts;
using testing::Rsyslog;
using testing::WaitFor;

AuditEntry TestEntry(uint64_t i) {
  AuditEntry e;
  e.time_ms = fhir::NowMillis();
  e.request_id = "req-" + std::to_string(i);
  e.agent = {"user-" + std::to_string(i % 3), "clinician", "Practitioner/pr1", "app", ""};
  e.source_address = "192.0.2.1";
  e.user_agent = "test \xC3\xA9";  // non-ASCII: must arrive \u-escaped
  e.action = i % 5 == 0 ? AuditAction::kSearch : AuditAction::kRead;
  e.resources = {{"Observation", "o" + std::to_string(i), "1", ""}};
  e.patients = {"pat-" + std::to_string(i % 7)};
  e.purpose_of_use = "TREAT";
  e.outcome = i % 11 == 0 ? AuditOutcome::kDenied : AuditOutcome::kAllowed;
  e.rule = e.outcome == AuditOutcome::kDenied ? "consent" : "allow";
  e.http_status = e.outcome == AuditOutcome::kDenied ? 403 : 200;
  return e;
}

class SiemTest : public ::testing::Test {
 protected:
  void SetUp() override {
    keyring_ = testing::MakeKeyring(data_.path());
    auto log = AuditLog::Open(data_.path(), *keyring_);
    ASSERT_TRUE(log.ok()) << log.status().ToString();
    log_ = std::move(log).value();
  }
  void Append(uint64_t from, uint64_t to) {
    for (uint64_t i = from; i < to; ++i) {
      auto idx = log_->AppendAndWait(Serialize(TestEntry(i)));
      ASSERT_TRUE(idx.ok());
      ASSERT_EQ(*idx, i);
    }
  }
  SiemExporterOptions Options(uint16_t port) const {
    SiemExporterOptions o;
    o.data_dir = data_.path();
    o.host = "127.0.0.1";
    o.port = port;
    o.ca_file = collector_.path() + "/ca.pem";
    o.vault_id = keyring_->vault_id();
    o.hostname = "vault-test";
    o.batch_size = 16;  // several writes per burst
    o.poll_interval = 20ms;
    o.backoff_initial = 50ms;
    o.backoff_max = 200ms;
    o.connect_timeout = 2s;
    o.write_timeout = 2s;
    o.ack_grace = 100ms;
    o.max_unacked = 32;  // exercise the drain pause
    return o;
  }

  TempDir data_;
  TempDir collector_;
  std::unique_ptr<crypto::Keyring> keyring_;
  std::unique_ptr<AuditLog> log_;
};

TEST(SiemFormatTest, Rfc5424MessageAndFraming) {
  AuditEntry e = TestEntry(1);
  e.time_ms = 1704164645678;
  SyslogIdentity id{"host name\x01", "4242", "vault\"]\\x"};
  const std::string msg = FormatSyslogMessage(Serialize(e), 7, id);
  EXPECT_EQ(msg,
            "<110>1 2024-01-02T03:04:05.678Z hostname phivault 4242 audit "
            "[phivault@32473 index=\"7\" vault=\"vault\\\"\\]\\\\x\"] " +
                Serialize(e));
  e.outcome = AuditOutcome::kDenied;
  EXPECT_EQ(FormatSyslogMessage(Serialize(e), 7, id).substr(0, 5), "<109>");
  e.break_glass = true;
  EXPECT_EQ(FormatSyslogMessage(Serialize(e), 7, id).substr(0, 5), "<108>");
  // Not an entry: still sent, as base64, flagged.
  const std::string raw = FormatSyslogMessage("\xff\n{junk", 8, {});
  EXPECT_EQ(raw, "<109>1 - - phivault - audit [phivault@32473 index=\"8\" vault=\"\" enc=\"base64\"] /wp7anVuaw==");
  EXPECT_EQ(OctetFrame("abc"), "3 abc");
  EXPECT_EQ(OctetFrame(""), "0 ");
}

TEST(SiemFormatTest, CursorFile) {
  TempDir dir;
  const std::string path = dir.path() + "/siem.cursor";
  EXPECT_EQ(ReadSiemCursor(path).status().code(), StatusCode::kNotFound);
  ASSERT_TRUE(WriteSiemCursor(path, 12345).ok());
  auto c = ReadSiemCursor(path);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(*c, 12345u);
  EXPECT_EQ(ReadFile(path), "phivault-siem-cursor 1 12345\n");
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  for (const char* bad :
       {"", "12\n", "phivault-siem-cursor 1 \n", "phivault-siem-cursor 1 12", "phivault-siem-cursor 1 1x\n",
        "phivault-siem-cursor 1 99999999999999999999\n", "phivault-siem-cursor 2 5\n"}) {
    WriteFile(path, bad);
    EXPECT_EQ(ReadSiemCursor(path).status().code(), StatusCode::kDataLoss) << bad;
  }
}

TEST_F(SiemTest, StartValidatesOptions) {
  SiemExporterOptions o = Options(6514);
  o.ca_file = "";
  EXPECT_EQ(SiemExporter::Start(*log_, o).status().code(), StatusCode::kInvalidArgument);
  o.ca_file = collector_.path() + "/missing.pem";
  EXPECT_EQ(SiemExporter::Start(*log_, o).status().code(), StatusCode::kInvalidArgument);
  o = Options(6514);
  o.host = "";
  EXPECT_EQ(SiemExporter::Start(*log_, o).status().code(), StatusCode::kInvalidArgument);
  o = Options(6514);
  o.client_cert_file = "x.pem";
  EXPECT_EQ(SiemExporter::Start(*log_, o).status().code(), StatusCode::kInvalidArgument);
  o = Options(6514);
  o.batch_size = 0;
  EXPECT_EQ(SiemExporter::Start(*log_, o).status().code(), StatusCode::kInvalidArgument);
  // A cursor beyond the log (another vault's?) is refused.
  ASSERT_TRUE(MakeCerts(collector_.path()));
  ASSERT_TRUE(WriteSiemCursor(SiemCursorPath(data_.path()), 5).ok());
  EXPECT_EQ(SiemExporter::Start(*log_, Options(6514)).status().code(), StatusCode::kDataLoss);
}

TEST_F(SiemTest, DeliversEveryEntryAcrossCollectorRestart) {
  if (::access(kRsyslogd, X_OK) != 0)
    GTEST_SKIP() << "rsyslogd is not installed (apt-get install rsyslog rsyslog-gnutls)";
  ASSERT_TRUE(MakeCerts(collector_.path())) << ReadFile(collector_.path() + "/openssl.log");
  const uint16_t port = FreePort();
  ASSERT_NE(port, 0);
  Rsyslog collector(collector_.path(), port);
  ASSERT_TRUE(collector.Start()) << collector.Stderr();

  // Phase 1: a backlog written before the exporter starts, then live entries.
  Append(0, 40);
  auto exporter = SiemExporter::Start(*log_, Options(port));
  ASSERT_TRUE(exporter.ok()) << exporter.status().ToString();
  Append(40, 60);
  (*exporter)->Notify();
  ASSERT_TRUE(WaitFor([&] { return (*exporter)->cursor() == 60; }, 10s))
      << "cursor " << (*exporter)->cursor() << "; " << (*exporter)->stats().last_error << "\n"
      << collector.Stderr();
  ASSERT_TRUE(WaitFor([&] { return collector.Indices().size() >= 60; }, 5s));

  // What rsyslog parsed: RFC 5424 version 1, facility 13 (log audit), our
  // header fields and SD, and MSG = the entry, byte for byte.
  std::map<uint64_t, AuditEntry> sent;
  auto stored = log_->ReadEntries(0, 60);
  ASSERT_TRUE(stored.ok());
  for (uint64_t i = 0; i < 60; ++i) sent[i] = ParseEntry((*stored)[i]).value();
  for (const Rsyslog::Line& l : collector.Lines()) {
    EXPECT_EQ(l.version, "1");
    EXPECT_TRUE(l.pri == "110" || l.pri == "109") << l.pri;
    EXPECT_EQ(l.hostname, "vault-test");
    EXPECT_EQ(l.app, "phivault");
    EXPECT_EQ(l.msgid, "audit");
    EXPECT_NE(l.sd.find("vault=\"" + keyring_->vault_id() + "\""), std::string::npos) << l.sd;
    const uint64_t index = std::stoull(l.sd.substr(l.sd.find("index=\"") + 7));
    auto parsed = ParseEntry(l.msg);
    ASSERT_TRUE(parsed.ok()) << l.msg;
    EXPECT_EQ(*parsed, sent[index]);
    EXPECT_EQ(l.msg.find("\xC3"), std::string::npos);  // ASCII on the wire
  }
  EXPECT_EQ(ReadSiemCursor(SiemCursorPath(data_.path())).value(), 60u);

  // Phase 2: the collector goes away; entries keep arriving in the log and
  // appends never wait for the exporter.
  collector.Stop();
  const auto t0 = std::chrono::steady_clock::now();
  Append(60, 90);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  ASSERT_TRUE(WaitFor([&] { return !(*exporter)->stats().connected; }, 5s));
  std::this_thread::sleep_for(300ms);  // a few failed reconnects with backoff
  EXPECT_GE((*exporter)->stats().connect_failures, 1u);
  EXPECT_LE((*exporter)->cursor(), 90u);

  // Phase 3: the collector returns; the exporter resumes from its cursor.
  ASSERT_TRUE(collector.Start()) << collector.Stderr();
  Append(90, 100);
  ASSERT_TRUE(WaitFor([&] { return (*exporter)->cursor() == 100; }, 10s))
      << "cursor " << (*exporter)->cursor() << "; " << (*exporter)->stats().last_error;
  ASSERT_TRUE(WaitFor(
      [&] {
        std::set<uint64_t> got;
        for (uint64_t i : collector.Indices()) got.insert(i);
        return got.size() == 100;
      },
      5s));

  // At least once: every index arrived; a later message never skips ahead
  // (after a reconnect the exporter may go back and resend, never forward).
  const std::vector<uint64_t> arrived = collector.Indices();
  std::set<uint64_t> unique(arrived.begin(), arrived.end());
  EXPECT_EQ(unique.size(), 100u);
  EXPECT_EQ(*unique.rbegin(), 99u);
  for (size_t k = 1; k < arrived.size(); ++k) {
    EXPECT_LE(arrived[k], arrived[k - 1] + 1) << "gap at arrival " << k;
  }
  const size_t duplicates = arrived.size() - unique.size();
  RecordProperty("duplicates", static_cast<int>(duplicates));
  std::printf("[ info     ] %zu messages for 100 entries (%zu duplicates)\n", arrived.size(), duplicates);
  const SiemExporter::Stats stats = (*exporter)->stats();
  EXPECT_GE(stats.connects, 2u);
  EXPECT_GE(stats.sent, 100u);

  // The cursor is durable: a new exporter resends nothing already confirmed.
  (*exporter)->Stop();
  EXPECT_EQ(ReadSiemCursor(SiemCursorPath(data_.path())).value(), 100u);
  exporter = SiemExporter::Start(*log_, Options(port));
  ASSERT_TRUE(exporter.ok());
  Append(100, 101);
  (*exporter)->Notify();
  ASSERT_TRUE(WaitFor([&] { return (*exporter)->cursor() == 101; }, 10s)) << (*exporter)->stats().last_error;
  ASSERT_TRUE(WaitFor([&] { return collector.Indices().size() == arrived.size() + 1; }, 5s));
  EXPECT_EQ(collector.Indices().back(), 100u);
  exporter->reset();
}

// The collector stops and restarts while entries stream in: the case where
// bytes are in flight (in our socket, in rsyslog's buffers) when it goes.
TEST_F(SiemTest, CollectorRestartMidStreamLosesNothing) {
  if (::access(kRsyslogd, X_OK) != 0) GTEST_SKIP() << "rsyslogd is not installed";
  ASSERT_TRUE(MakeCerts(collector_.path()));
  const uint16_t port = FreePort();
  Rsyslog collector(collector_.path(), port);
  ASSERT_TRUE(collector.Start()) << collector.Stderr();
  SiemExporterOptions o = Options(port);
  o.batch_size = 4;
  auto exporter = SiemExporter::Start(*log_, o);
  ASSERT_TRUE(exporter.ok());

  constexpr uint64_t kTotal = 600;
  std::atomic<bool> append_ok{true};
  std::thread appender([&] {
    for (uint64_t i = 0; i < kTotal; ++i) {
      auto idx = log_->AppendAndWait(Serialize(TestEntry(i)));
      if (!idx.ok() || *idx != i) append_ok = false;
      (*exporter)->Notify();
      std::this_thread::sleep_for(2ms);
    }
  });
  ASSERT_TRUE(WaitFor([&] { return log_->size() >= kTotal / 4; }, 10s));
  collector.Stop();
  std::this_thread::sleep_for(300ms);
  ASSERT_TRUE(collector.Start()) << collector.Stderr();
  appender.join();
  ASSERT_TRUE(append_ok);
  ASSERT_TRUE(WaitFor([&] { return (*exporter)->cursor() == kTotal; }, 10s))
      << "cursor " << (*exporter)->cursor() << "; " << (*exporter)->stats().last_error;
  exporter->reset();
  const std::vector<uint64_t> arrived = collector.Indices();
  const std::set<uint64_t> unique(arrived.begin(), arrived.end());
  std::vector<uint64_t> missing;
  for (uint64_t i = 0; i < kTotal; ++i) {
    if (!unique.count(i)) missing.push_back(i);
  }
  EXPECT_TRUE(missing.empty()) << missing.size() << " entries lost, first " << missing.front();
  for (size_t k = 1; k < arrived.size(); ++k) EXPECT_LE(arrived[k], arrived[k - 1] + 1) << "gap at arrival " << k;
  std::printf("[ info     ] %zu messages for %llu entries (%zu duplicates)\n", arrived.size(),
              static_cast<unsigned long long>(kTotal), arrived.size() - unique.size());
}

TEST_F(SiemTest, RefusesCollectorWithWrongName) {
  if (::access(kRsyslogd, X_OK) != 0) GTEST_SKIP() << "rsyslogd is not installed";
  ASSERT_TRUE(MakeCerts(collector_.path()));
  const uint16_t port = FreePort();
  Rsyslog collector(collector_.path(), port);
  ASSERT_TRUE(collector.Start()) << collector.Stderr();
  Append(0, 3);
  SiemExporterOptions o = Options(port);
  o.server_name = "siem.example.org";  // the certificate names 127.0.0.1 and localhost only
  auto exporter = SiemExporter::Start(*log_, o);
  ASSERT_TRUE(exporter.ok());
  ASSERT_TRUE(WaitFor([&] { return (*exporter)->stats().connect_failures >= 2; }, 5s));
  EXPECT_NE((*exporter)->stats().last_error.find("certificate"), std::string::npos) << (*exporter)->stats().last_error;
  EXPECT_EQ((*exporter)->cursor(), 0u);
  EXPECT_EQ((*exporter)->stats().connects, 0u);
  EXPECT_TRUE(collector.Indices().empty());

  // The right name (via the DNS SAN) works.
  exporter->reset();
  o.server_name = "localhost";
  exporter = SiemExporter::Start(*log_, o);
  ASSERT_TRUE(exporter.ok());
  ASSERT_TRUE(WaitFor([&] { return (*exporter)->cursor() == 3; }, 10s)) << (*exporter)->stats().last_error;
}

// `phivault audit publish --to syslog+tls://…`: checkpoints reach a real
// collector and read back from its output as notes that verify.
TEST_F(SiemTest, PublishesCheckpointsToCollector) {
  if (::access(kRsyslogd, X_OK) != 0) GTEST_SKIP() << "rsyslogd is not installed";
  ASSERT_TRUE(MakeCerts(collector_.path()));
  const uint16_t port = FreePort();
  Rsyslog collector(collector_.path(), port);
  ASSERT_TRUE(collector.Start()) << collector.Stderr();
  std::vector<std::string> notes;
  for (uint64_t i = 0; i < 3; ++i) {
    Append(i, i + 1);
    auto note = log_->SignCheckpoint();
    ASSERT_TRUE(note.ok());
    notes.push_back(*note);
  }
  auto target = ParseSyslogUrl("syslog+tls://127.0.0.1:" + std::to_string(port));
  ASSERT_TRUE(target.ok());
  target->ca_file = collector_.path() + "/ca.pem";
  SyslogTarget wrong = *target;
  wrong.server_name = "siem.example.org";
  auto refused = SyslogPublisher::Connect(wrong, 5000);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("certificate"), std::string::npos) << refused.status().message();
  auto pub = SyslogPublisher::Connect(*target, 5000);
  ASSERT_TRUE(pub.ok()) << pub.status().ToString();
  for (size_t i = 0; i < notes.size(); ++i) {
    ASSERT_TRUE((*pub)->Send(FormatCheckpointMessage(notes[i], i + 1, "vault-test", fhir::NowMillis())).ok());
  }
  pub->reset();
  ASSERT_TRUE(WaitFor([&] { return ExtractCheckpoints(ReadFile(collector_.path() + "/out.log")).size() == 3; }, 10s))
      << ReadFile(collector_.path() + "/out.log") << collector.Stderr();
  auto vkey = ParseVerifierKey(log_->VerifierKey());
  ASSERT_TRUE(vkey.ok());
  std::vector<std::string> back = ExtractCheckpoints(ReadFile(collector_.path() + "/out.log"));
  EXPECT_EQ(back, notes);
  for (const auto& n : back) EXPECT_TRUE(VerifyCheckpoint(n, *vkey).ok());
  for (const auto& l : collector.Lines()) {
    EXPECT_EQ(l.app, "phivault");
    EXPECT_EQ(l.msgid, "checkpoint");
  }
}

}  // namespace
}  // namespace phivault::audit
