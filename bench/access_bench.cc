// What authorization costs on a read: the full in-process FhirService read of
// an Observation with a real clinician token (authenticate, type gate, store
// read, per-resource decision with a care relationship), against the same
// service path's authentication and decisions alone. The product has no
// switch to turn access control off, so the "unauthorized" read is the full
// read minus the measured access-control work:
//   ratio = (full - access) / full     (target: access costs <= 20%)
// Over HTTP the ratio is closer to 1 still, since both share the network cost.
#include <benchmark/benchmark.h>

#include <condition_variable>
#include <filesystem>
#include <mutex>

#include "api/access_control.h"
#include "api/fhir_service.h"
#include "api/vault.h"
#include "auth/token_issuer.h"
#include "fhir/time.h"
#include "http/testing/call.h"

namespace phivault {
namespace {

struct Fixture {
  std::string dir;
  std::unique_ptr<api::Vault> vault;
  std::unique_ptr<api::AccessControl> access;
  std::unique_ptr<api::FhirService> service;
  std::string token;

  Fixture() {
    dir = std::filesystem::temp_directory_path() / ("phivault-access-bench-" + std::to_string(::getpid()));
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
    service = std::make_unique<api::FhirService>(vault->store(), access.get(), vault->audit_trail(), so);
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

Fixture& F() {
  static Fixture* f = new Fixture();  // lives for the whole run
  return *f;
}

void BM_AuthorizedRead(benchmark::State& state) {
  Fixture& f = F();
  for (auto _ : state) {
    http::testing::Reply r = f.Call(f.ReadRequest());
    if (r.status != 200) state.SkipWithError("read failed");
    benchmark::DoNotOptimize(r);
  }
}

// Authentication (cached verification), the type gate and the per-resource
// decision, exactly as the read above performs them.
void BM_AccessControlOnly(benchmark::State& state) {
  Fixture& f = F();
  http::HttpRequest req = f.ReadRequest();
  store::ResourceVersion v = *f.vault->store()->Read("Observation", "o1");
  for (auto _ : state) {
    int64_t now = fhir::NowMillis();
    auto caller = f.access->Authenticate(req, now);
    auto gate = f.access->DecideType(**caller, policy::Interaction::kRead, "Observation");
    auto d = f.access->Decide(**caller, policy::Interaction::kRead, v, req, now);
    if (!gate.allowed || !d.allowed) state.SkipWithError("denied");
    benchmark::DoNotOptimize(d);
  }
}

BENCHMARK(BM_AuthorizedRead)->UseRealTime();
BENCHMARK(BM_AccessControlOnly)->UseRealTime();

}  // namespace
}  // namespace phivault

BENCHMARK_MAIN();
