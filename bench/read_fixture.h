// A vault with one clinician, one patient in their care and one Observation,
// served in-process by FhirService twice: audited (the product's path) and
// not audited (bench/unaudited.h), for the read benchmarks.
#ifndef PHIVAULT_BENCH_READ_FIXTURE_H_
#define PHIVAULT_BENCH_READ_FIXTURE_H_

#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>

#include "api/access_control.h"
#include "api/fhir_service.h"
#include "api/vault.h"
#include "auth/token_issuer.h"
#include "fhir/time.h"
#include "http/testing/call.h"
#include "unaudited.h"

namespace phivault::bench {

struct Fixture {
  std::string dir;
  std::unique_ptr<api::Vault> vault;
  std::unique_ptr<api::AccessControl> access;
  std::unique_ptr<bench::UnauditedForBenchmarks> unaudited;
  std::unique_ptr<api::FhirService> service;          // not audited
  std::unique_ptr<api::FhirService> audited_service;  // the product's path
  std::string token;

  Fixture() {
    dir = std::filesystem::temp_directory_path() / ("phivault-bench-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    std::string key = dir + "/master.key";
    if (!crypto::GenerateKeyFile(key).ok()) std::abort();
    api::VaultConfig cfg{dir + "/data", {}};
    cfg.key.key_file = key;
    if (!api::Vault::Init(cfg).ok()) std::abort();
    vault = std::move(api::Vault::Open(cfg)).value();
    api::AccessConfig ac;
    ac.builtin_issuer = "https://vault.bench";
    ac.builtin_audience = "https://vault.bench/fhir";
    access = std::move(api::AccessControl::Create(ac, vault->keyring(), vault->store(), nullptr)).value();
    auto issuer = std::move(auth::TokenIssuer::Create(vault->keyring().Key(crypto::KeyPurpose::kTokenSign),
                                                      {ac.builtin_issuer, ac.builtin_audience}))
                      .value();
    auth::TokenRequest tr{"dr", "user/*.cruds", "Practitioner/dr", "clinician", {}};
    token = issuer->Issue(tr, fhir::NowMillis() / 1000)->token;
    api::ServiceOptions so;
    so.base_url = "https://vault.bench";
    unaudited = std::make_unique<bench::UnauditedForBenchmarks>(vault->store());
    service = std::make_unique<api::FhirService>(vault->store(), access.get(), unaudited.get(), so);
    audited_service = std::make_unique<api::FhirService>(vault->store(), access.get(), vault->audit_trail(), so);
    std::string admin = issuer->Issue({"etl", "system/*.cruds", "", "system", {}}, fhir::NowMillis() / 1000)->token;
    Put(admin, "Patient", "p1", R"({"resourceType":"Patient","id":"p1"})");
    Put(admin, "CareTeam", "ct1",
        R"({"resourceType":"CareTeam","id":"ct1","status":"active","subject":{"reference":"Patient/p1"},)"
        R"("participant":[{"member":{"reference":"Practitioner/dr"}}]})");
    Put(admin, "Observation", "o1",
        R"({"resourceType":"Observation","id":"o1","status":"final","code":{"coding":[{"system":"http://loinc.org",)"
        R"("code":"8867-4"}]},"subject":{"reference":"Patient/p1"},"valueQuantity":{"value":72,"unit":"/min"}})");
  }
  ~Fixture() {
    audited_service.reset();
    service.reset();
    access.reset();
    vault.reset();
    std::filesystem::remove_all(dir);
  }

  http::testing::Reply Call(http::HttpRequest req) { return http::testing::CallHandler(*service, std::move(req)); }
  void Put(const std::string& tok, const std::string& type, const std::string& id, const std::string& body) {
    http::HttpRequest r;
    r.method = "PUT";
    r.path = "/fhir/" + type + "/" + id;
    r.headers = {{"authorization", "Bearer " + tok}, {"content-type", "application/fhir+json"}};
    r.body = body;
    if (Call(std::move(r)).status >= 300) std::abort();
  }
  http::HttpRequest ReadRequest() const {
    http::HttpRequest r;
    r.method = "GET";
    r.path = "/fhir/Observation/o1";
    r.headers = {{"authorization", "Bearer " + token}};
    return r;
  }
};

inline Fixture& F() {
  static Fixture* f = new Fixture();  // lives for the whole run
  return *f;
}

}  // namespace phivault::bench

#endif  // PHIVAULT_BENCH_READ_FIXTURE_H_
