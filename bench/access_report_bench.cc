// Access report (Patient/{id}/$access-report) over a large audit log, run in
// a release build:
//   * scanning the whole log (no index), the baseline;
//   * through the audit index (api/audit_indexer.h), caught up;
//   * building the index from scratch (entries indexed per second: the CPU
//     the background follower spends per audit entry).
// The log holds PHIVAULT_REPORT_BENCH_ENTRIES entries (default 200,000) of
// single-patient reads spread over entries/100 patients, so a report lists
// about 100 rows. The service is called in-process, without HTTP.
#include <benchmark/benchmark.h>

#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>

#include "api/audit_indexer.h"
#include "api/audit_service.h"
#include "audit/audit_log.h"
#include "audit/entry.h"
#include "crypto/keyring.h"
#include "policy/principal.h"
#include "scratch_keyring.h"

namespace {

using namespace phivault;

void Die(const std::string& what) {
  std::fprintf(stderr, "access_report_bench: %s\n", what.c_str());
  std::abort();
}

uint64_t Entries() {
  const char* v = std::getenv("PHIVAULT_REPORT_BENCH_ENTRIES");
  return v ? std::strtoull(v, nullptr, 10) : 200000;
}

struct Fixture : bench::ScratchKeyring {
  std::unique_ptr<audit::AuditLog> log;
  uint64_t patients = 0;

  Fixture() : ScratchKeyring("report-bench") {
    auto l = audit::AuditLog::Open(dir, *keyring);
    if (!l.ok()) Die(l.status().ToString());
    log = std::move(l).value();
    Fill(Entries());
  }
  ~Fixture() { log.reset(); }  // before the directory goes

  // Appends n reads with up to 4,096 awaiting durability at a time.
  void Fill(uint64_t n) {
    patients = std::max<uint64_t>(1, n / 100);
    std::mutex mu;
    std::condition_variable cv;
    uint64_t done = 0, failed = 0;
    for (uint64_t i = 0; i < n; ++i) {
      audit::AuditEntry e;
      e.time_ms = 1767225600000 + static_cast<int64_t>(i) * 10;
      e.request_id = "req-" + std::to_string(i);
      e.agent.subject = "dr-" + std::to_string(i % 300);
      e.agent.role = "clinician";
      e.agent.fhir_user = "Practitioner/dr-" + std::to_string(i % 300);
      e.action = audit::AuditAction::kRead;
      e.patients = {"pt-" + std::to_string(i % patients)};
      e.resources.push_back({"Observation", "obs-" + std::to_string(i), "1", ""});
      e.http_status = 200;
      e.purpose_of_use = "TREAT";
      {
        std::unique_lock lk(mu);
        cv.wait(lk, [&] { return i - done < 4096; });
      }
      log->Append(audit::Serialize(e), [&](StatusOr<uint64_t> r) {
        std::lock_guard lk(mu);
        ++done;
        if (!r.ok()) ++failed;
        cv.notify_all();
      });
    }
    std::unique_lock lk(mu);
    cv.wait(lk, [&] { return done == n; });
    if (failed) Die("appends failed");
  }
};

// One log for every case, removed at exit.
Fixture& Shared() {
  static Fixture f;
  return f;
}

api::Caller PrivacyOfficer() {
  api::Caller c;
  c.principal.subject = "po-1";
  c.principal.role = policy::Role::kPrivacyOfficer;
  c.principal.fhir_user = "Practitioner/po";
  c.principal.scopes.push_back(*policy::ParseScopeGrant("user/AuditEvent.rs"));
  return c;
}

void RunReports(benchmark::State& state, api::AuditIndexer* indexer) {
  Fixture& f = Shared();
  api::AuditService service(f.log.get(), nullptr, {}, indexer);
  const api::Caller caller = PrivacyOfficer();
  uint64_t i = 0, rows = 0;
  for (auto _ : state) {
    http::HttpRequest req;
    req.method = "GET";
    req.path = "/fhir/Patient/pt-" + std::to_string(i++ * 7919 % f.patients) + "/$access-report";
    req.query = "_count=1000";
    req.target = req.path + "?" + req.query;
    int status = 0;
    size_t bytes = 0;
    service.HandleAs(caller, req, [&](http::HttpResponse r) {
      status = r.status;
      bytes = r.body.size();
    });
    if (status != 200) Die("report answered " + std::to_string(status));
    rows += bytes;
    benchmark::DoNotOptimize(bytes);
  }
  state.counters["log_entries"] = static_cast<double>(f.log->size());
  state.counters["body_bytes"] = static_cast<double>(rows) / static_cast<double>(state.iterations());
}

void BM_AccessReportScanningTheLog(benchmark::State& state) { RunReports(state, nullptr); }
BENCHMARK(BM_AccessReportScanningTheLog)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_AccessReportThroughTheIndex(benchmark::State& state) {
  Fixture& f = Shared();
  auto indexer = api::AuditIndexer::Open(f.dir, *f.keyring, f.log.get());
  if (!indexer.ok()) Die(indexer.status().ToString());
  if (auto r = (*indexer)->CatchUp(UINT64_MAX); !r.ok()) Die(r.status().ToString());
  RunReports(state, indexer->get());
}
BENCHMARK(BM_AccessReportThroughTheIndex)->Unit(benchmark::kMillisecond)->UseRealTime();

// Indexing the whole log from nothing: items/s is entries indexed per second.
void BM_IndexCatchUpFromScratch(benchmark::State& state) {
  Fixture& f = Shared();
  for (auto _ : state) {
    state.PauseTiming();
    std::error_code ec;
    for (const char* suffix : {"", "-wal", "-shm"}) {
      std::filesystem::remove(f.dir + "/" + store::kAuditIndexFileName + suffix, ec);
    }
    auto indexer = api::AuditIndexer::Open(f.dir, *f.keyring, f.log.get());
    if (!indexer.ok()) Die(indexer.status().ToString());
    state.ResumeTiming();
    if (auto r = (*indexer)->CatchUp(UINT64_MAX); !r.ok()) Die(r.status().ToString());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * f.log->size()));
}
BENCHMARK(BM_IndexCatchUpFromScratch)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);

}  // namespace

BENCHMARK_MAIN();
