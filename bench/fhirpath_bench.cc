// FHIRPath evaluation over resources with large arrays: the union operator
// (`a | b`) against a plain path over the same kind of elements, measured
// in the same run. Index extraction evaluates these expressions on every write and
// on `_include`/`_has` reads, over content the client wrote, so their cost
// must grow linearly with the array. The ratio union ÷ path should stay flat
// as N grows (it grew with N while duplicates were found by a pairwise scan).
// Beyond 50,000 per side the union passes FhirPath::kMaxResultItems and
// fails, as index extraction would.
//
//   build/release/bench/fhirpath_bench --benchmark_repetitions=3
#include <benchmark/benchmark.h>

#include <string>

#include <boost/json.hpp>

#include "search/fhirpath.h"

namespace {

namespace json = boost::json;

// An ImagingStudy with n endpoints and n series endpoints (as a search
// parameter's expression sees them).
json::object Study(int64_t n) {
  json::array endpoints, series_endpoints;
  for (int64_t i = 0; i < n; ++i) {
    endpoints.push_back(json::object{{"reference", "Endpoint/e" + std::to_string(i)}});
    series_endpoints.push_back(json::object{{"reference", "Endpoint/s" + std::to_string(i)}});
  }
  return json::object{{"resourceType", "ImagingStudy"},
                      {"endpoint", std::move(endpoints)},
                      {"series", json::array{json::object{{"endpoint", std::move(series_endpoints)}}}}};
}

void Run(benchmark::State& state, const char* expression) {
  const json::object study = Study(state.range(0));
  auto path = phivault::search::FhirPath::Compile(expression);
  if (!path.ok()) {
    state.SkipWithError("does not compile");
    return;
  }
  size_t items = 0;
  for (auto _ : state) {
    auto out = path->Evaluate(study);
    if (!out.ok()) {
      state.SkipWithError("evaluation failed");
      return;
    }
    items = out->size();
    benchmark::DoNotOptimize(out);
  }
  state.counters["items"] = static_cast<double>(items);
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(items));
}

// Baseline: one of the two arrays by a plain path (n items). Compare
// items_per_second: union ÷ path should not fall as n grows.
void BM_PathOverOneArray(benchmark::State& state) { Run(state, "ImagingStudy.endpoint"); }
// The search parameter ImagingStudy.endpoint uses this union.
void BM_UnionOfBothArrays(benchmark::State& state) {
  Run(state, "ImagingStudy.endpoint | ImagingStudy.series.endpoint");
}

BENCHMARK(BM_PathOverOneArray)->Arg(1000)->Arg(10000)->Arg(50000)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_UnionOfBothArrays)->Arg(1000)->Arg(10000)->Arg(50000)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
