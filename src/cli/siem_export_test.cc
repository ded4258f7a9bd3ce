// SIEM export settings: [audit.siem] in TOML, --siem-* flags overriding it,
// validation, and the exporter they start (and stop) against a real CA file.
#include "cli/siem_export.h"

#include <gtest/gtest.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdlib>
#include <thread>

#include "audit/test_util.h"
#include "common/testing/temp_dir.h"

namespace phivault::cli {
namespace {

using phivault::testing::TempDir;
using phivault::testing::WriteFile;

TEST(SiemConfigTest, TomlThenFlagsThenOptions) {
  TempDir tmp;
  const std::string path = tmp.Sub("phivault.toml");
  WriteFile(path, R"(data = "/srv/vault"
key_file = "/etc/k"
[audit.siem]
collector = "siem.example.org:10514"
ca_file = "/etc/phivault/siem-ca.pem"
server_name = "collector.example.org"
client_cert = "/etc/phivault/siem.crt"
client_key = "/etc/phivault/siem.key"
)");
  Config cfg;
  ASSERT_TRUE(LoadConfigFile(path, &cfg).ok());
  EXPECT_TRUE(cfg.siem.enabled());
  EXPECT_EQ(cfg.siem.collector, "siem.example.org:10514");
  EXPECT_EQ(cfg.siem.ca_file, "/etc/phivault/siem-ca.pem");
  EXPECT_EQ(cfg.siem.server_name, "collector.example.org");
  EXPECT_EQ(cfg.siem.client_cert, "/etc/phivault/siem.crt");
  EXPECT_EQ(cfg.siem.client_key, "/etc/phivault/siem.key");
  EXPECT_TRUE(cfg.Validate(false).ok());

  // Flags win over the file, field by field.
  CLI::App app;
  ConfigFlags flags;
  flags.AddVaultFlags(&app);
  flags.AddServerFlags(&app);
  app.parse("--siem-collector [2001:db8::7]:6514 --siem-ca /other/ca.pem", false);
  ASSERT_TRUE(flags.ApplyTo(&cfg).ok());
  EXPECT_EQ(cfg.siem.collector, "[2001:db8::7]:6514");
  EXPECT_EQ(cfg.siem.ca_file, "/other/ca.pem");
  EXPECT_EQ(cfg.siem.client_key, "/etc/phivault/siem.key");

  auto o = SiemOptions(cfg, "vault-1");
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->host, "2001:db8::7");
  EXPECT_EQ(o->port, 6514);
  EXPECT_EQ(o->ca_file, "/other/ca.pem");
  EXPECT_EQ(o->server_name, "collector.example.org");
  EXPECT_EQ(o->client_cert_file, "/etc/phivault/siem.crt");
  EXPECT_EQ(o->client_key_file, "/etc/phivault/siem.key");
  EXPECT_EQ(o->data_dir, "/srv/vault");
  EXPECT_EQ(o->vault_id, "vault-1");

  cfg.siem.collector = "siem.example.org";  // port defaults to RFC 5425's
  o = SiemOptions(cfg, "v");
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->port, 6514);
}

TEST(SiemConfigTest, ValidationNamesTheProblem) {
  Config base;
  base.data_dir = "/x";
  base.key.key_file = "/k";
  ASSERT_TRUE(base.Validate(false).ok()) << "no SIEM is fine";
  struct Case {
    SiemConfig siem;
    std::string expect;
  };
  const Case cases[] = {
      {{"", "/ca.pem", "", "", ""}, "collector"},
      {{"host:99999", "/ca.pem", "", "", ""}, "HOST:PORT"},
      {{"host:1/x", "/ca.pem", "", "", ""}, "HOST:PORT"},
      {{"host:6514", "", "", "", ""}, "ca_file"},
      {{"host:6514", "/ca.pem", "", "/c.pem", ""}, "client_key"},
  };
  for (const auto& c : cases) {
    Config cfg = base;
    cfg.siem = c.siem;
    Status s = cfg.Validate(false);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << c.siem.collector;
    EXPECT_NE(s.message().find(c.expect), std::string::npos) << s.message();
  }
}

TEST(SiemConfigTest, StartsAndStopsTheExporter) {
  TempDir tmp;
  auto keyring = audit::testing::MakeKeyring(tmp.path());
  auto log = audit::AuditLog::Open(tmp.path(), *keyring);
  ASSERT_TRUE(log.ok());
  Config cfg;
  cfg.data_dir = tmp.path();
  auto none = StartSiemExport(cfg, **log, keyring->vault_id());
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, nullptr) << "not configured: nothing started";

  cfg.siem.collector = "127.0.0.1:1";  // nobody listens on port 1
  cfg.siem.ca_file = tmp.Sub("missing.pem");
  EXPECT_EQ(StartSiemExport(cfg, **log, keyring->vault_id()).status().code(), StatusCode::kInvalidArgument);

  const std::string ca = tmp.Sub("ca.pem");
  ASSERT_EQ(std::system(("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout '" +
                         tmp.Sub("ca.key") + "' -out '" + ca + "' -days 1 -subj /CN=test-ca > /dev/null 2>&1")
                            .c_str()),
            0);
  cfg.siem.ca_file = ca;
  auto exporter = StartSiemExport(cfg, **log, keyring->vault_id());
  ASSERT_TRUE(exporter.ok()) << exporter.status().ToString();
  ASSERT_NE(*exporter, nullptr);
  // It runs, and a collector that is down is retried, not fatal.
  for (int i = 0; i < 200 && (*exporter)->stats().connect_failures == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_GE((*exporter)->stats().connect_failures, 1u);
  EXPECT_FALSE((*exporter)->stats().connected);
  (*exporter)->Stop();
  (*exporter)->Stop();  // idempotent
}

}  // namespace
}  // namespace phivault::cli
