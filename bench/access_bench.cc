// What authorization costs on a read: the full in-process FhirService read of
// an Observation with a real clinician token (authenticate, type gate, store
// read, per-resource decision with a care relationship), against the same
// service path's authentication and decisions alone. The product has no
// switch to turn access control off, so the "unauthorized" read is the full
// read minus the measured access-control work:
//   ratio = (full - access) / full     (target: access costs <= 20%)
// Over HTTP the ratio is closer to 1 still, since both share the network cost.
// Auditing is left out here (its cost is audit_overhead_bench's subject):
// with it, each read waits for a group-commit fsync and this single-threaded
// loop would measure disk latency, not access control.
#include <benchmark/benchmark.h>

#include <condition_variable>
#include <filesystem>
#include <mutex>

#include "read_fixture.h"

namespace phivault {
namespace {

using bench::F;
using bench::Fixture;

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
