// FhirServiceTest: a testing::TestVault (real vault in a temporary directory,
// AccessControl and token issuer) whose audit log files can be made to fail
// (faults_ is off until a test flips it), and a FhirService auditing through
// the vault's trail, for API tests. Call() sends a request through
// FhirService::Handle with a system token unless the headers given replace
// it; CallAs with another token. For tests only.
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
#include "api/testing/test_vault.h"
#include "api/vault.h"
#include "common/testing/temp_dir.h"
#include "http/testing/call.h"

namespace phivault::api {

namespace json = boost::json;
using Headers = std::vector<std::pair<std::string, std::string>>;


class FhirServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto tv = testing::TestVault::Create(tmp_, audit::testing::FaultyOpener(faults_));
    ASSERT_NE(tv.access, nullptr);
    cfg_ = tv.config;
    vault_ = std::move(tv.vault);
    access_ = std::move(tv.access);
    issuer_ = std::move(tv.issuer);
    system_token_ = Token("backend", "system", "", "system/*.cruds");
    ServiceOptions so;
    so.base_url = testing::TestVault::kIssuer;
    so.parse_limits.max_depth = 32;
    so.keyring = &vault_->keyring();  // search cursors sealed under the vault's key
    service_ = std::make_unique<FhirService>(vault_->store(), access_.get(), vault_->audit_trail(), so);
  }

  std::string Token(const std::string& sub, const std::string& role, const std::string& fhir_user,
                    const std::string& scope, std::vector<std::string> clearances = {}) {
    return testing::TestVault::MintToken(*issuer_, sub, role, fhir_user, scope, std::move(clearances));
  }

  using Reply = http::testing::Reply;

  Reply Call(std::string method, std::string target, std::string body = "", Headers headers = {}) {
    return CallAs(std::move(method), std::move(target), system_token_, std::move(body), std::move(headers));
  }

  // As Call, with `token` (no Authorization header if empty).
  Reply CallAs(std::string method, std::string target, const std::string& token, std::string body = "",
               Headers headers = {}) {
    http::HttpRequest req = http::testing::MakeRequest(std::move(method), std::move(target), token);
    req.body = std::move(body);
    if (!req.body.empty()) req.headers.emplace_back("content-type", "application/fhir+json");
    for (auto& h : headers) {
      std::erase_if(req.headers, [&](auto& e) { return e.first == h.first; });
      req.headers.push_back(h);
    }
    return http::testing::CallHandler(*service_, std::move(req));
  }

  // Stores Patient/`patient` and a final Observation `obs` about them.
  void PutPatientWithObservation(const std::string& patient, const std::string& obs) {
    ASSERT_EQ(Call("PUT", "/fhir/Patient/" + patient, R"({"resourceType":"Patient","id":")" + patient + R"("})").status,
              201);
    ASSERT_EQ(Call("PUT", "/fhir/Observation/" + obs,
                   R"({"resourceType":"Observation","id":")" + obs +
                       R"(","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/)" + patient + R"("}})")
                  .status,
              201);
  }

  // Stores Patient/`patient` and an active CareTeam `team` that relates
  // `practitioner` (e.g. "Practitioner/dr2") to it.
  void PutPatientInCareOf(const std::string& patient, const std::string& team, const std::string& practitioner) {
    ASSERT_EQ(Call("PUT", "/fhir/Patient/" + patient, R"({"resourceType":"Patient","id":")" + patient + R"("})").status,
              201);
    ASSERT_EQ(Call("PUT", "/fhir/CareTeam/" + team,
                   R"({"resourceType":"CareTeam","id":")" + team +
                       R"(","status":"active","subject":{"reference":"Patient/)" + patient +
                       R"("},"participant":[{"member":{"reference":")" + practitioner + R"("}}]})")
                  .status,
              201);
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

  phivault::testing::TempDir tmp_;
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
