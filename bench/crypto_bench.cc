// Micro benchmarks for the AEAD paths the vault hits per request: one
// database/WAL page (4096 bytes, sealed in place as the encrypted VFS does)
// and resource bodies of typical sizes (2 KiB and 16 KiB, Seal/Open); and
// the guarded memory a key is held in.
#include <benchmark/benchmark.h>
#include <sodium.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "common/secure_bytes.h"
#include "crypto/aead.h"

namespace {

using phivault::SecureBytes;
using phivault::crypto::Aead;

constexpr size_t kPage = 4096;
constexpr size_t kReserved = 32;  // matches store::kReservedBytes

std::unique_ptr<Aead> MakeAead() {
  auto a = Aead::New(SecureBytes::Random(Aead::kKeySize));
  if (!a.ok()) {
    std::fputs("crypto_bench: cannot create AEAD\n", stderr);
    std::abort();
  }
  return std::move(a).value();
}

// AAD layout as in the VFS: "db" + 8-byte page number.
const std::string kPageAad("db\0\0\0\0\0\0\0\x07", 10);

void BM_PageSeal(benchmark::State& state) {
  auto aead = MakeAead();
  std::vector<uint8_t> page(kPage, 0x5a);
  for (auto _ : state) {
    if (!aead->SealInPlace(page.data(), kPage - kReserved, kPageAad, page.data() + kPage - Aead::kOverhead).ok()) {
      state.SkipWithError("seal failed");
      break;
    }
    benchmark::DoNotOptimize(page.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(kPage));
}
BENCHMARK(BM_PageSeal);

void BM_PageOpen(benchmark::State& state) {
  auto aead = MakeAead();
  std::vector<uint8_t> sealed(kPage, 0x5a);
  if (!aead->SealInPlace(sealed.data(), kPage - kReserved, kPageAad, sealed.data() + kPage - Aead::kOverhead).ok()) {
    state.SkipWithError("seal failed");
    return;
  }
  std::vector<uint8_t> page(kPage);
  for (auto _ : state) {
    page = sealed;  // decryption is in place, so start from the sealed copy each time
    if (!aead->OpenInPlace(page.data(), kPage - kReserved, kPageAad, page.data() + kPage - Aead::kOverhead).ok()) {
      state.SkipWithError("open failed");
      break;
    }
    benchmark::DoNotOptimize(page.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(kPage));
}
BENCHMARK(BM_PageOpen);

void BM_ResourceSeal(benchmark::State& state) {
  auto aead = MakeAead();
  const std::string body(static_cast<size_t>(state.range(0)), 'r');
  const std::string aad = "Observation/123/_history/1";
  for (auto _ : state) {
    std::string sealed = aead->Seal(body, aad);
    benchmark::DoNotOptimize(sealed.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_ResourceSeal)->Arg(2 * 1024)->Arg(16 * 1024);

void BM_ResourceOpen(benchmark::State& state) {
  auto aead = MakeAead();
  const std::string aad = "Observation/123/_history/1";
  const std::string sealed = aead->Seal(std::string(static_cast<size_t>(state.range(0)), 'r'), aad);
  for (auto _ : state) {
    auto opened = aead->Open(sealed, aad);
    if (!opened.ok()) {
      state.SkipWithError("open failed");
      break;
    }
    benchmark::DoNotOptimize(opened->data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_ResourceOpen)->Arg(2 * 1024)->Arg(16 * 1024);

// Guarded memory for one key, as a patient-key cache miss and eviction pay
// it: SecureBytes (a slot of a shared slab) against the baseline of one
// sodium_malloc per key, measured in the same run.
void BM_KeyMemory(benchmark::State& state) {
  for (auto _ : state) {
    SecureBytes key(32);
    benchmark::DoNotOptimize(key.data());
  }
}
BENCHMARK(BM_KeyMemory);

void BM_KeyMemorySodiumMallocBaseline(benchmark::State& state) {
  for (auto _ : state) {
    void* key = sodium_malloc(32);
    benchmark::DoNotOptimize(key);
    sodium_free(key);
  }
}
BENCHMARK(BM_KeyMemorySodiumMallocBaseline);

}  // namespace

BENCHMARK_MAIN();
