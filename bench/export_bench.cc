// Bulk $export throughput, in-process through the product's path: FhirService
// (audited) with the real SqliteStore, AccessControl and BulkExporter. Loads
// PHIVAULT_EXPORT_PATIENTS synthetic patients (default 2000), each with 25
// Observations, then times a system-level export from kick-off to manifest
// (every resource read, decrypted, authorized, written and sealed) and the
// download of every file (read, opened, handed out). Issue 5's target is
// >= 50,000 resources/s for the export.
//
//   PHIVAULT_EXPORT_PATIENTS=2000 build/release/bench/export_bench
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "api/access_control.h"
#include "api/bulk_export.h"
#include "api/fhir_service.h"
#include "api/vault.h"
#include "read_fixture.h"
#include "auth/token_issuer.h"
#include "fhir/time.h"
#include "http/testing/call.h"

namespace phivault {
namespace {

using Clock = std::chrono::steady_clock;

// CPU seconds of the process, all threads (std::clock on Linux).
double ProcessCpuSeconds() { return static_cast<double>(std::clock()) / CLOCKS_PER_SEC; }

std::string Observation(int patient, int n) {
  char buf[640];
  std::snprintf(buf, sizeof buf,
                R"({"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org",)"
                R"("code":"%d-%d","display":"Measurement %d"}]},"subject":{"reference":"Patient/x%d"},)"
                R"("effectiveDateTime":"2024-%02d-%02dT08:30:00Z","valueQuantity":{"value":%d,"unit":"mg/dL",)"
                R"("system":"http://unitsofmeasure.org","code":"mg/dL"}})",
                1000 + n, n % 10, n, patient, 1 + n % 12, 1 + patient % 28, 50 + (patient * 7 + n) % 150);
  return buf;
}

http::HttpRequest Get(const std::string& target, const std::string& token) {
  http::HttpRequest r = http::testing::MakeRequest("GET", target, token);
  r.headers.emplace_back("prefer", "respond-async");
  return r;
}

int Main() {
  int patients = 2000;
  if (const char* e = std::getenv("PHIVAULT_EXPORT_PATIENTS")) patients = std::max(10, std::atoi(e));
  bench::Fixture& fx = bench::F();  // a vault in a temporary directory, access control, the audited service
  api::Vault* vault = fx.vault.get();
  int64_t resources = 3;  // the fixture's own patient, care team and observation
  std::vector<store::WriteOp> batch;
  auto add = [&](std::string type, std::string id, const std::string& json, int patient) {
    batch.push_back(store::WriteOp{.kind = store::WriteOp::Kind::kPut,
                                   .type = std::move(type),
                                   .id = std::move(id),
                                   .resource = boost::json::parse(json).as_object(),
                                   .patients = {"x" + std::to_string(patient)}});
    ++resources;
    if (batch.size() < 2000) return;
    if (!vault->store()->CommitAndWait(std::move(batch), false).status.ok()) std::abort();
    batch.clear();
  };
  for (int p = 0; p < patients; ++p) {
    add("Patient", "x" + std::to_string(p), R"({"resourceType":"Patient","gender":"other"})", p);
    for (int n = 0; n < 25; ++n) add("Observation", "x" + std::to_string(p) + "-" + std::to_string(n), Observation(p, n), p);
  }
  if (!batch.empty() && !vault->store()->CommitAndWait(std::move(batch), false).status.ok()) std::abort();

  auto issuer = std::move(auth::TokenIssuer::Create(vault->keyring().Key(crypto::KeyPurpose::kTokenSign),
                                                    {"https://vault.bench", "https://vault.bench/fhir"}))
                    .value();
  std::string token = issuer->Issue({"etl", "system/*.rs", "", "system", {}}, fhir::NowMillis() / 1000)->token;
  const std::string base = "https://vault.bench";
  api::FhirService& service = *fx.audited_service;
  api::BulkExportOptions bo;
  bo.dir = fx.dir + "/data/exports";
  bo.base_url = base;
  auto exporter = std::move(api::BulkExporter::Create(vault->store(), fx.access.get(), vault->audit_trail(),
                                                      vault->keyring(), bo))
                      .value();
  service.SetBulkExporter(exporter.get());

  for (const char* target : {"/fhir/$export?_type=Patient,Observation", "/fhir/$export"}) {
    auto t0 = Clock::now();
    double c0 = ProcessCpuSeconds();
    auto kick = http::testing::CallHandler(service, Get(target, token));
    if (kick.status != 202) std::abort();
    std::string poll = kick.Header("Content-Location").substr(base.size());
    exporter->WaitIdle();
    auto manifest = http::testing::CallHandler(service, Get(poll, token));
    if (manifest.status != 200) std::abort();
    double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    double cpu = ProcessCpuSeconds() - c0;
    int64_t exported = 0;
    std::vector<std::string> urls;
    const boost::json::object m = manifest.Json();
    for (const auto& f : m.at("output").as_array()) {
      exported += f.at("count").as_int64();
      urls.emplace_back(f.at("url").as_string());
    }
    std::printf("%-42s %lld of %lld resources in %.2f s = %.0f resources/s (%.2f CPU s, all threads)\n", target,
                static_cast<long long>(exported), static_cast<long long>(resources), secs, exported / secs, cpu);
    t0 = Clock::now();
    size_t bytes = 0;
    for (const auto& u : urls) {
      auto file = http::testing::CallHandler(service, Get(u.substr(base.size()), token));
      if (file.status != 200) std::abort();
      bytes += file.body.size();
    }
    secs = std::chrono::duration<double>(Clock::now() - t0).count();
    std::printf("%-42s %zu files, %.1f MB NDJSON in %.2f s = %.0f resources/s\n", "  download", urls.size(),
                static_cast<double>(bytes) / 1e6, secs, exported / secs);
    http::HttpRequest cancel = Get(poll, token);
    cancel.method = "DELETE";
    http::testing::CallHandler(service, std::move(cancel));
  }
  exporter.reset();  // the fixture itself lives until exit
  return 0;
}

}  // namespace
}  // namespace phivault

int main() { return phivault::Main(); }
