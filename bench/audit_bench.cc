// Audit log benchmarks (run in a release build):
//   * durable append throughput with group commit, many appending threads,
//     each keeping many appends in flight as request handlers would;
//   * `audit verify` rate over a 1M-entry log (entries/s);
//   * inclusion proof latency: in a 10M-leaf tree (in-memory level hashes,
//     the algorithm's cost) and through AuditLog on its file-backed cache;
//   * Open() of a 1M log: with the history checked at open (full rescan and
//     cache check), with it checked in the background (time until the log
//     serves), and the background check to its end.
// PHIVAULT_AUDIT_BENCH_ENTRIES sets the shared log's size (default 1M).
// Entries are ~200-byte JSON lines, the size of a typical audit event.
#include <benchmark/benchmark.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "audit/audit_log.h"
#include "audit/merkle.h"
#include "audit/verify.h"
#include "crypto/keyring.h"
#include "scratch_keyring.h"

namespace {

using namespace phivault;
using namespace phivault::audit;

void Die(const std::string& what) {
  std::fprintf(stderr, "audit_bench: %s\n", what.c_str());
  std::abort();
}

// A scratch keyring directory named after this benchmark.
struct Vault : bench::ScratchKeyring {
  Vault() : ScratchKeyring("audit-bench") {}
};

std::string Entry(uint64_t i) {
  std::string e =
      "{\"ts\":\"2026-01-01T00:00:00.000Z\",\"actor\":\"practitioner/1f0c\",\"action\":\"read\","
      "\"route\":\"GET /Patient/{id}/$everything\",\"status\":200,\"patients\":[\"pt-";
  e += std::to_string(i);
  e += "\"],\"request\":\"7d0c9e1f-2b4a-4c55-9a0e-8f3b6d21c4aa\"}";
  return e;
}

// Appends `total` entries from `threads` threads, each with up to `window`
// appends awaiting durability, and waits until all are durable.
void AppendMany(AuditLog& log, int threads, uint64_t total, int window) {
  std::vector<std::thread> ts;
  std::atomic<uint64_t> failures{0};
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      std::mutex m;
      std::condition_variable cv;
      int inflight = 0;
      const uint64_t mine = total / threads + (static_cast<uint64_t>(t) < total % threads ? 1 : 0);
      for (uint64_t i = 0; i < mine; ++i) {
        {
          std::unique_lock<std::mutex> lock(m);
          cv.wait(lock, [&] { return inflight < window; });
          ++inflight;
        }
        log.Append(Entry(i), [&](StatusOr<uint64_t> r) {
          if (!r.ok()) ++failures;
          std::lock_guard<std::mutex> lock(m);
          --inflight;
          cv.notify_one();
        });
      }
      std::unique_lock<std::mutex> lock(m);
      cv.wait(lock, [&] { return inflight == 0; });
    });
  }
  for (auto& t : ts) t.join();
  if (failures.load() != 0) Die("appends failed");
}

void BM_DurableAppend(benchmark::State& state) {
  Vault v;
  auto log = AuditLog::Open(v.dir, *v.keyring);
  if (!log.ok()) Die(log.status().ToString());
  const int threads = static_cast<int>(state.range(0));
  constexpr uint64_t kPerIteration = 200'000;
  for (auto _ : state) AppendMany(**log, threads, kPerIteration, 4096);
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kPerIteration));
  state.counters["entries"] = static_cast<double>((*log)->size());
}
BENCHMARK(BM_DurableAppend)->Arg(4)->Arg(16)->Arg(64)->Unit(benchmark::kMillisecond)->UseRealTime();

// A 1M-entry log shared by the verify, proof and open benchmarks.
struct BigLog {
  static inline const uint64_t kEntries = [] {
    const char* n = std::getenv("PHIVAULT_AUDIT_BENCH_ENTRIES");
    return n ? std::strtoull(n, nullptr, 10) : 1'000'000ull;
  }();
  Vault vault;
  std::string vkey;
  BigLog() {
    auto log = AuditLog::Open(vault.dir, *vault.keyring);
    if (!log.ok()) Die(log.status().ToString());
    AppendMany(**log, 8, kEntries, 8192);
    vkey = (*log)->VerifierKey();
    if (!(*log)->SignCheckpoint().ok()) Die("checkpoint");
  }
  static BigLog& Get() {
    static BigLog b;  // built once; its directory is removed at exit
    return b;
  }
};

void BM_Verify(benchmark::State& state) {
  BigLog& b = BigLog::Get();
  for (auto _ : state) {
    auto r = Verify(b.vault.dir, b.vkey);
    if (!r.ok() || !r->ok) Die("verify failed");
    benchmark::DoNotOptimize(r->root);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * BigLog::kEntries));
}
BENCHMARK(BM_Verify)->Unit(benchmark::kMillisecond)->UseRealTime();

// Arg 0: history checked at open. 1: in the background, timed until Open()
// returns (the vault serves from then on). 2: the same, until the
// background check has ended.
void BM_Open(benchmark::State& state) {
  BigLog& b = BigLog::Get();
  AuditLogOptions o;
  if (state.range(0) == 0) o.history_check = AuditLogOptions::HistoryCheck::kAtOpen;
  for (auto _ : state) {
    auto log = AuditLog::Open(b.vault.dir, *b.vault.keyring, o);
    if (!log.ok() || (*log)->size() != BigLog::kEntries) Die("open failed");
    if (state.range(0) == 2 && !(*log)->WaitForHistoryCheck().ok()) Die("history check failed");
    state.PauseTiming();
    log->reset();  // with arg 1, cancels the background check
    state.ResumeTiming();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * BigLog::kEntries));
}
BENCHMARK(BM_Open)->ArgName("history")->Arg(0)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(2);

void BM_InclusionProofLog1M(benchmark::State& state) {
  BigLog& b = BigLog::Get();
  auto log = AuditLog::Open(b.vault.dir, *b.vault.keyring);
  if (!log.ok()) Die(log.status().ToString());
  uint64_t i = 12345;
  for (auto _ : state) {
    i = (i * 6364136223846793005ull + 1442695040888963407ull);
    auto p = (*log)->InclusionProof(i % BigLog::kEntries, BigLog::kEntries);
    if (!p.ok()) Die("proof");
    benchmark::DoNotOptimize(p->data());
  }
}
BENCHMARK(BM_InclusionProofLog1M)->Unit(benchmark::kMicrosecond);

void BM_InclusionProof10M(benchmark::State& state) {
  static MemoryHashStore* store = [] {
    auto* s = new MemoryHashStore();
    constexpr uint64_t kLeaves = 10'000'000;
    s->Reserve(kLeaves);
    for (uint64_t i = 0; i < kLeaves; ++i) {
      Hash h{};
      for (int k = 0; k < 8; ++k) h[k] = static_cast<uint8_t>(i >> (8 * k));
      s->Append(HashLeaf(HashView(h)));
    }
    return s;
  }();
  const uint64_t n = store->size();
  const Hash root = store->Root();
  uint64_t i = 777;
  for (auto _ : state) {
    i = (i * 6364136223846793005ull + 1442695040888963407ull);
    auto p = InclusionProof(*store, i % n, n);
    if (!p.ok()) Die("proof");
    benchmark::DoNotOptimize(p->data());
  }
  // Sanity outside the timed loop: the last proof verifies.
  auto p = InclusionProof(*store, i % n, n);
  std::vector<std::string> ps;
  for (const Hash& h : *p) ps.push_back(HashString(h));
  auto leaf = store->Node(0, i % n);
  if (!VerifyInclusion(i % n, n, HashView(*leaf), ps, HashView(root)).ok()) Die("proof does not verify");
}
BENCHMARK(BM_InclusionProof10M)->Unit(benchmark::kMicrosecond);

void BM_NodeHash(benchmark::State& state) {
  Hash a = HashLeaf("a"), b = HashLeaf("b");
  for (auto _ : state) {
    a = HashChildren(a, b);
    benchmark::DoNotOptimize(a);
  }
}
BENCHMARK(BM_NodeHash);

}  // namespace

BENCHMARK_MAIN();
