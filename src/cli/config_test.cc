#include "cli/config.h"

#include <gtest/gtest.h>

#include <CLI/CLI.hpp>

#include "common/testing/temp_dir.h"

namespace phivault::cli {
namespace {

TEST(ConfigTest, TomlFileThenValidate) {
  testing::TempDir tmp;
  std::string path = tmp.Sub("phivault.toml");
  testing::WriteFile(path, R"(data = "/srv/vault"
key_file = "/etc/phivault/master.key"
allow_core_dumps = true
[server]
listen = "0.0.0.0:8443"
max_body_bytes = 1048576
body_timeout_seconds = 45
min_body_rate = 4096
max_connections_per_address = 32
[tls]
cert = "/etc/c.pem"
key = "/etc/k.pem"
[auth]
session_idle_seconds = 600
[export]
retention_seconds = 7200
[audit]
commit_delay_us = 500
history_check = "at-open"
[[auth.issuers]]
issuer = "https://idp.example.org"
audience = "https://vault.example.org/fhir"
jwks_file = "/etc/phivault/idp.json"
role_claim = "phivault_role"
[log]
level = "warn"
)");
  Config cfg;
  ASSERT_TRUE(LoadConfigFile(path, &cfg).ok());
  EXPECT_EQ(cfg.data_dir, "/srv/vault");
  EXPECT_EQ(cfg.key.key_file, "/etc/phivault/master.key");
  EXPECT_TRUE(cfg.allow_core_dumps);
  EXPECT_EQ(cfg.max_body_bytes, 1048576u);
  EXPECT_EQ(cfg.body_timeout_seconds, 45);
  EXPECT_EQ(cfg.min_body_rate, 4096u);
  EXPECT_EQ(cfg.max_connections_per_address, 32u);
  EXPECT_EQ(cfg.log_level, log::Level::kWarn);
  EXPECT_EQ(cfg.session_idle_seconds, 600);
  EXPECT_EQ(cfg.export_retention_seconds, 7200);
  EXPECT_EQ(cfg.Vault().audit.max_gather, std::chrono::microseconds(500));
  EXPECT_EQ(cfg.Vault().audit.history_check, audit::AuditLogOptions::HistoryCheck::kAtOpen);
  ASSERT_EQ(cfg.issuers.size(), 1u);
  EXPECT_EQ(cfg.issuers[0].issuer, "https://idp.example.org");
  EXPECT_EQ(cfg.issuers[0].audiences, (std::vector<std::string>{"https://vault.example.org/fhir"}));
  EXPECT_EQ(cfg.issuers[0].role_claim, "phivault_role");
  EXPECT_EQ(cfg.BaseUrl(), "https://0.0.0.0:8443");
  EXPECT_TRUE(cfg.Validate(false).ok());
  std::string host;
  uint16_t port = 0;
  ASSERT_TRUE(cfg.SplitListen(&host, &port).ok());
  EXPECT_EQ(host, "0.0.0.0");
  EXPECT_EQ(port, 8443);
}

TEST(ConfigTest, RejectsInconsistentSettings) {
  Config cfg;
  EXPECT_FALSE(cfg.allow_core_dumps) << "core dumps must be off by default";
  EXPECT_FALSE(cfg.Validate(false).ok()) << "no data dir";
  cfg.data_dir = "/x";
  cfg.key.key_file = "/k";
  cfg.key.passphrase_file = "/p";
  EXPECT_FALSE(cfg.Validate(false).ok()) << "two key sources";
  cfg.key.passphrase_file.clear();
  cfg.tls_cert = "/c";
  EXPECT_FALSE(cfg.Validate(false).ok()) << "cert without key";
  cfg.tls_cert.clear();
  cfg.listen = "nope";
  EXPECT_FALSE(cfg.Validate(false).ok());
  cfg.listen = "127.0.0.1:99999";
  EXPECT_FALSE(cfg.Validate(false).ok());
  cfg.listen = "127.0.0.1:8080";
  EXPECT_TRUE(cfg.Validate(false).ok());
  cfg.audit_commit_delay_us = -1;
  EXPECT_FALSE(cfg.Validate(false).ok());
  cfg.audit_commit_delay_us = 20001;
  EXPECT_FALSE(cfg.Validate(false).ok());
  cfg.audit_commit_delay_us = 0;
  EXPECT_TRUE(cfg.Validate(false).ok());
  EXPECT_EQ(cfg.Vault().audit.history_check, audit::AuditLogOptions::HistoryCheck::kBackground);
  cfg.audit_history_check = "later";
  EXPECT_FALSE(cfg.Validate(false).ok());
  cfg.audit_history_check = "at-open";
  EXPECT_TRUE(cfg.Validate(false).ok());
  cfg.body_timeout_seconds = 0;
  EXPECT_FALSE(cfg.Validate(false).ok()) << "a body deadline of zero refuses every upload";
  cfg.body_timeout_seconds = 30;
  EXPECT_TRUE(cfg.Validate(false).ok());
  cfg.min_body_rate = 10;
  EXPECT_FALSE(cfg.Validate(false).ok()) << "so low a rate lets a trickling client keep extending its deadline";
  cfg.min_body_rate = 0;
  EXPECT_TRUE(cfg.Validate(false).ok());
}

TEST(ConfigTest, AuditHistoryCheckFlagOverridesTheFile) {
  Config cfg;
  cfg.audit_history_check = "at-open";
  CLI::App app;
  ConfigFlags flags;
  flags.AddVaultFlags(&app);
  app.parse("--audit-history-check background", false);
  ASSERT_TRUE(flags.ApplyTo(&cfg).ok());
  EXPECT_EQ(cfg.Vault().audit.history_check, audit::AuditLogOptions::HistoryCheck::kBackground);
}

TEST(ConfigTest, BadTomlNamesTheLine) {
  testing::TempDir tmp;
  std::string path = tmp.Sub("bad.toml");
  testing::WriteFile(path, "data = \"x\"\n[server\n");
  Config cfg;
  Status s = LoadConfigFile(path, &cfg);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("line 2"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace phivault::cli
