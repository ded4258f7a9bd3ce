// Test helper: a real vault in a temp directory with AccessControl for the
// built-in issuer "https://vault.test" and a TokenIssuer that mints real
// EdDSA tokens for it. For tests only.
//
// Thread-safety: as the members. Lifetime: owns everything; the TempDir
// passed to Create must outlive it.
#ifndef PHIVAULT_API_TESTING_TEST_VAULT_H_
#define PHIVAULT_API_TESTING_TEST_VAULT_H_

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "api/access_control.h"
#include "api/vault.h"
#include "audit/audit_log.h"
#include "auth/token_issuer.h"
#include "common/testing/temp_dir.h"
#include "fhir/time.h"

namespace phivault::api::testing {

struct TestVault {
  static constexpr const char* kIssuer = "https://vault.test";
  static constexpr const char* kAudience = "https://vault.test/fhir";

  std::string data_dir;
  std::string vault_id;
  VaultConfig config;  // what the vault was opened with (to reopen it)
  std::unique_ptr<Vault> vault;
  std::unique_ptr<AccessControl> access;
  std::unique_ptr<auth::TokenIssuer> issuer;

  // Initialises DIR/data with a key file DIR/master.key; the audit log's
  // files are opened with `audit_opener` (e.g. audit::testing::FaultyOpener)
  // when given. Check `access != nullptr` (failures are reported as test
  // failures).
  static TestVault Create(phivault::testing::TempDir& tmp, audit::FileOpener audit_opener = {}) {
    TestVault t;
    std::string key = tmp.Sub("master.key");
    EXPECT_TRUE(crypto::GenerateKeyFile(key).ok());
    t.data_dir = tmp.Sub("data");
    VaultConfig cfg{t.data_dir, {}};
    cfg.key.key_file = key;
    cfg.audit.open_file = std::move(audit_opener);
    t.config = cfg;
    EXPECT_TRUE(Vault::Init(cfg).ok());
    auto v = Vault::Open(cfg);
    EXPECT_TRUE(v.ok()) << v.status().ToString();
    if (!v.ok()) return t;
    t.vault = std::move(*v);
    t.vault_id = t.vault->keyring().vault_id();
    AccessConfig ac;
    ac.builtin_issuer = kIssuer;
    ac.builtin_audience = kAudience;
    auto issuer = auth::TokenIssuer::Create(t.vault->keyring().Key(crypto::KeyPurpose::kTokenSign),
                                            {ac.builtin_issuer, ac.builtin_audience});
    EXPECT_TRUE(issuer.ok());
    if (!issuer.ok()) return t;
    t.issuer = std::move(*issuer);
    auto access = AccessControl::Create(ac, t.vault->keyring(), t.vault->store(), nullptr);
    EXPECT_TRUE(access.ok()) << access.status().ToString();
    if (access.ok()) t.access = std::move(*access);
    return t;
  }

  std::string Token(const std::string& sub, const std::string& role, const std::string& fhir_user,
                    const std::string& scope, std::vector<std::string> clearances = {}) const {
    return MintToken(*issuer, sub, role, fhir_user, scope, std::move(clearances));
  }

  // A token from `issuer`, valid from now; "" (and a test failure) if it fails.
  static std::string MintToken(const auth::TokenIssuer& issuer, const std::string& sub, const std::string& role,
                               const std::string& fhir_user, const std::string& scope,
                               std::vector<std::string> clearances = {}) {
    auth::TokenRequest tr;
    tr.sub = sub;
    tr.role = role;
    tr.fhir_user = fhir_user;
    tr.scope = scope;
    tr.clearances = std::move(clearances);
    auto t = issuer.Issue(tr, fhir::NowMillis() / 1000);
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    return t.ok() ? t->token : "";
  }
};

}  // namespace phivault::api::testing

#endif  // PHIVAULT_API_TESTING_TEST_VAULT_H_
