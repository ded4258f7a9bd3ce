// FhirServiceTest: a real vault (temporary directory, key file, SqliteStore,
// and an audit log whose files can be made to fail: faults_ is off until a
// test flips it), real AccessControl with this vault's token issuer, and a
// FhirService auditing through the vault's trail, for API tests. Call() sends a request through FhirService::Handle with a system
// token unless the headers given replace it. For tests only.
#ifndef PHIVAULT_API_TESTING_SERVICE_FIXTURE_H_
#define PHIVAULT_API_TESTING_SERVICE_FIXTURE_H_

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "api/access_control.h"
#include "audit/test_util.h"
#include "api/fhir_service.h"
#include "api/vault.h"
#include "auth/token_issuer.h"
#include "common/testing/temp_dir.h"
#include "fhir/time.h"
#include "http/testing/call.h"

namespace phivault::api {

namespace json = boost::json;
using Headers = std::vector<std::pair<std::string, std::string>>;


class FhirServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string key = tmp_.Sub("master.key");
    ASSERT_TRUE(crypto::GenerateKeyFile(key).ok());
    VaultConfig cfg{tmp_.Sub("data"), {}};
    cfg.key.key_file = key;
    cfg.audit.open_file = audit::testing::FaultyOpener(faults_);
    cfg_ = cfg;
    ASSERT_TRUE(Vault::Init(cfg).ok());
    auto v = Vault::Open(cfg);
    ASSERT_TRUE(v.ok()) << v.status().ToString();
    vault_ = std::move(*v);
    AccessConfig ac;
    ac.builtin_issuer = "https://vault.test";
    ac.builtin_audience = "https://vault.test/fhir";
    auto access = AccessControl::Create(ac, vault_->keyring(), vault_->store(), nullptr);
    ASSERT_TRUE(access.ok()) << access.status().ToString();
    access_ = std::move(*access);
    auto issuer = auth::TokenIssuer::Create(vault_->keyring().Key(crypto::KeyPurpose::kTokenSign),
                                            {ac.builtin_issuer, ac.builtin_audience});
    ASSERT_TRUE(issuer.ok());
    issuer_ = std::move(*issuer);
    system_token_ = Token("backend", "system", "", "system/*.cruds");
    ServiceOptions so;
    so.base_url = "https://vault.test";
    so.parse_limits.max_depth = 32;
    service_ = std::make_unique<FhirService>(vault_->store(), access_.get(), vault_->audit_trail(), so);
  }

  std::string Token(const std::string& sub, const std::string& role, const std::string& fhir_user,
                    const std::string& scope, std::vector<std::string> clearances = {}) {
    auth::TokenRequest tr;
    tr.sub = sub;
    tr.role = role;
    tr.fhir_user = fhir_user;
    tr.scope = scope;
    tr.clearances = std::move(clearances);
    auto t = issuer_->Issue(tr, fhir::NowMillis() / 1000);
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    return t.ok() ? t->token : "";
  }

  using Reply = http::testing::Reply;

  Reply Call(std::string method, std::string target, std::string body = "",
             std::vector<std::pair<std::string, std::string>> headers = {}) {
    http::HttpRequest req;
    req.method = std::move(method);
    req.target = target;
    auto q = target.find('?');
    req.path = target.substr(0, q);
    req.query = q == std::string::npos ? "" : target.substr(q + 1);
    req.body = std::move(body);
    if (!req.body.empty()) req.headers.emplace_back("content-type", "application/fhir+json");
    req.headers.emplace_back("authorization", "Bearer " + system_token_);
    for (auto& h : headers) {
      std::erase_if(req.headers, [&](auto& e) { return e.first == h.first; });
      req.headers.push_back(h);
    }
    return http::testing::CallHandler(*service_, std::move(req));
  }

  static void ExpectOutcome(const Reply& r, int status) {
    EXPECT_EQ(r.status, status) << r.body;
    auto o = r.Json();
    EXPECT_EQ(o["resourceType"], "OperationOutcome") << r.body;
  }

  int HistoryCount(const std::string& type) {
    auto r = Call("GET", "/fhir/" + type + "/_history?_count=1000");
    auto o = r.Json();
    return o.contains("entry") ? static_cast<int>(o["entry"].as_array().size()) : -1;
  }

  testing::TempDir tmp_;
  std::shared_ptr<audit::testing::Faults> faults_ = std::make_shared<audit::testing::Faults>();
  VaultConfig cfg_;
  std::unique_ptr<Vault> vault_;
  std::unique_ptr<AccessControl> access_;
  std::unique_ptr<auth::TokenIssuer> issuer_;
  std::string system_token_;
  std::unique_ptr<FhirService> service_;
};

}  // namespace phivault::api

#endif  // PHIVAULT_API_TESTING_SERVICE_FIXTURE_H_
