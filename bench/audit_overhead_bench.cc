// What auditing costs on the hottest request, GET of one resource with a
// real clinician token: the product's audited read (entry built, appended,
// group-committed and fsynced before the answer is released) against the
// same read with an auditor that records nothing (bench/unaudited.h, which
// only benchmarks can construct). Target: audited >= 0.8x unaudited.
//
// Requests are issued the way the HTTP server runs them: asynchronously, with
// a fixed number in flight (the benchmark argument; like wrk's connections),
// on a pool with one thread per core; an answer frees its slot for the next
// request. The audited path pays its fsync latency only through the group
// commit, as in production, so its throughput is bounded by
// in-flight / (fsync latency): the ratio depends on concurrency, and both
// are reported (bench/README.md).
#include <benchmark/benchmark.h>

#include <atomic>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "read_fixture.h"

namespace phivault {
namespace {

using bench::F;
using bench::Fixture;

constexpr int kRequestsPerIteration = 20000;

// Runs `total` reads through `service` with at most `window` in flight.
// Returns the number that did not answer 200.
int DriveReads(api::FhirService& service, const http::HttpRequest& request, int total, int window) {
  unsigned threads = std::max(2u, std::thread::hardware_concurrency());
  boost::asio::thread_pool pool(threads);
  std::atomic<int> issued{0}, failed{0};
  std::mutex mu;
  std::condition_variable cv;
  int answered = 0;
  std::function<void()> issue = [&] {
    if (issued.fetch_add(1) >= total) return;
    service.Handle(request, [&](http::HttpResponse r) {
      if (r.status != 200) failed.fetch_add(1);
      {
        std::lock_guard lk(mu);
        if (++answered == total) cv.notify_one();
      }
      // Back to the pool, as the server posts to the connection's strand.
      boost::asio::post(pool, issue);
    });
  };
  for (int i = 0; i < window; ++i) boost::asio::post(pool, issue);
  {
    std::unique_lock lk(mu);
    cv.wait(lk, [&] { return answered == total; });
  }
  pool.join();
  return failed.load();
}

void Run(benchmark::State& state, bool audited) {
  Fixture& f = F();
  api::FhirService& service = audited ? *f.audited_service : *f.service;
  http::HttpRequest req = f.ReadRequest();
  for (auto _ : state) {
    if (DriveReads(service, req, kRequestsPerIteration, static_cast<int>(state.range(0))) != 0) state.SkipWithError("a read failed");
  }
  state.SetItemsProcessed(state.iterations() * kRequestsPerIteration);
}

void BM_ReadUnaudited(benchmark::State& state) { Run(state, false); }
void BM_ReadAudited(benchmark::State& state) { Run(state, true); }

// Interleaved, repeated: the ratio comes from runs measured side by side.
BENCHMARK(BM_ReadUnaudited)->UseRealTime()->Unit(benchmark::kMillisecond)->Iterations(3)->Arg(64)->Arg(256)->Arg(1024);
BENCHMARK(BM_ReadAudited)->UseRealTime()->Unit(benchmark::kMillisecond)->Iterations(3)->Arg(64)->Arg(256)->Arg(1024);

}  // namespace
}  // namespace phivault

BENCHMARK_MAIN();
