// Patient/$everything throughput in process: a vault holding one clone of
// every Synthea sample patient (tools/synth), read through FhirService with a
// system token, following next links with _count=1000 until the end. Every
// resource passes the type gate and the per-resource decision, and every
// page waits for its audit entry, as in production; TLS and HTTP framing
// are left out. Reported: resources/s
// (items_per_second) for the patient with the largest record.
// Target (issue 5): >= 50,000 resources/s.
#include <benchmark/benchmark.h>

#include <filesystem>
#include <fstream>
#include <map>

#include <boost/json.hpp>

#include "../tools/synth/synth.h"
#include "api/access_control.h"
#include "api/fhir_service.h"
#include "api/importer.h"
#include "api/vault.h"
#include "auth/token_issuer.h"
#include "fhir/time.h"
#include "http/testing/call.h"

namespace phivault {
namespace {

struct EverythingFixture {
  std::string dir;
  std::unique_ptr<api::Vault> vault;
  std::unique_ptr<api::AccessControl> access;
  std::unique_ptr<api::FhirService> service;
  std::string token;
  std::string patient;  // the largest record
  int64_t resources = 0;

  EverythingFixture() {
    char tmpl[] = "/tmp/phivault-everything-XXXXXX";
    dir = ::mkdtemp(tmpl);
    std::string key = dir + "/master.key";
    Check(crypto::GenerateKeyFile(key));
    api::VaultConfig cfg{dir + "/data", {}};
    cfg.key.key_file = key;
    Check(api::Vault::Init(cfg));
    vault = std::move(api::Vault::Open(cfg)).value();
    auto templates = synth::Templates::Load({std::string(PHIVAULT_SOURCE_DIR) + "/data/samples"});
    Check(templates.status());
    std::map<std::string, int64_t> per_patient;
    std::string ndjson, current;
    auto sum = synth::Generate(*templates, {static_cast<int64_t>(templates->patient_count()), 1},
                               [&](std::string_view line) {
                                 ndjson.append(line).push_back('\n');
                                 auto v = boost::json::parse(line).as_object();
                                 if (v["resourceType"] == "Patient") current = std::string(v["id"].as_string());
                                 if (!current.empty()) ++per_patient[current];
                                 return Status::Ok();
                               });
    Check(sum.status());
    std::ofstream(dir + "/synth.ndjson") << ndjson;
    Check(api::ImportFiles(vault->store(), {dir + "/synth.ndjson"}).status());
    for (const auto& [p, n] : per_patient) {
      if (n > resources) resources = n, patient = p;
    }
    api::AccessConfig ac;
    ac.builtin_issuer = "https://vault.bench";
    ac.builtin_audience = "https://vault.bench/fhir";
    access = std::move(api::AccessControl::Create(ac, vault->keyring(), vault->store(), nullptr)).value();
    auto issuer = auth::TokenIssuer::Create(vault->keyring().Key(crypto::KeyPurpose::kTokenSign),
                                            {ac.builtin_issuer, ac.builtin_audience});
    auth::TokenRequest tr;
    tr.sub = "bench";
    tr.role = "system";
    tr.scope = "system/*.rs";
    token = (*issuer)->Issue(tr, fhir::NowMillis() / 1000)->token;
    api::ServiceOptions so;
    so.base_url = "https://vault.bench";
    service = std::make_unique<api::FhirService>(vault->store(), access.get(), vault->audit_trail(), so);
  }
  ~EverythingFixture() {
    service.reset();
    access.reset();
    vault.reset();
    std::filesystem::remove_all(dir);
  }
  static void Check(const Status& s) {
    if (!s.ok()) {
      std::fprintf(stderr, "everything_bench setup: %s\n", s.ToString().c_str());
      std::abort();
    }
  }

  // One full $everything walk; returns the resources received.
  int64_t Walk() {
    std::string target = "/fhir/Patient/" + patient + "/$everything?_count=1000";
    int64_t n = 0;
    while (!target.empty()) {
      auto r = http::testing::CallHandler(*service, http::testing::MakeRequest("GET", target, token));
      if (r.status != 200) return -1;
      // Counted and followed by text search: parsing the Bundle here would
      // time the client, not the server.
      constexpr std::string_view kMode = R"(fullUrl":")";
      for (size_t pos = r.body.find(kMode); pos != std::string::npos; pos = r.body.find(kMode, pos + 1)) ++n;
      target.clear();
      constexpr std::string_view kNext = R"({"relation":"next","url":"https://vault.bench)";
      if (size_t at = r.body.find(kNext); at != std::string::npos) {
        size_t start = at + kNext.size();
        target = r.body.substr(start, r.body.find('"', start) - start);
      }
    }
    return n;
  }
};

EverythingFixture& F() {
  static EverythingFixture f;
  return f;
}

void BM_PatientEverything(benchmark::State& state) {
  EverythingFixture& f = F();
  int64_t total = 0;
  for (auto _ : state) {
    int64_t n = f.Walk();
    if (n < 0) state.SkipWithError("$everything failed");
    total += n;
  }
  state.SetItemsProcessed(total);
  state.counters["resources_per_call"] = static_cast<double>(total) / static_cast<double>(state.iterations());
}

BENCHMARK(BM_PatientEverything)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace phivault

BENCHMARK_MAIN();
