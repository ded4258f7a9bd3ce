// Cost of fhir::ValidateResource, which runs on every write and on every
// imported resource: all resources of the Synthea samples (the NDJSON files
// and every entry of the transaction Bundles), parsed once up front. The
// counter `us_per_resource` is the mean over that mix; BM_ParseResourceMix
// gives the parse cost of the same mix for comparison.
#include <benchmark/benchmark.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "fhir/json_reader.h"
#include "fhir/validator.h"

namespace {

std::vector<std::string> SampleResources() {
  std::vector<std::string> out;
  namespace fs = std::filesystem;
  std::string root = std::string(PHIVAULT_SOURCE_DIR) + "/data/samples";
  for (const auto& f : fs::directory_iterator(root + "/synthea-10")) {
    std::string name = f.path().filename().string();
    if (f.path().extension() != ".ndjson" || name[0] < 'A' || name[0] > 'Z') continue;
    std::ifstream in(f.path());
    std::string line;
    while (std::getline(in, line)) {
      if (!line.empty()) out.push_back(line);
    }
  }
  for (const auto& f : fs::directory_iterator(root + "/synthea-bundles")) {
    if (f.path().extension() != ".json") continue;
    std::ifstream in(f.path());
    std::stringstream ss;
    ss << in.rdbuf();
    boost::json::value b = boost::json::parse(ss.str());
    for (auto& e : b.at("entry").as_array()) out.push_back(boost::json::serialize(e.at("resource")));
  }
  return out;
}

const std::vector<boost::json::object>& Parsed() {
  static const std::vector<boost::json::object> parsed = [] {
    std::vector<boost::json::object> v;
    for (const auto& s : SampleResources()) v.push_back(*phivault::fhir::ParseResource(s));
    return v;
  }();
  return parsed;
}

void BM_ValidateSyntheaMix(benchmark::State& state) {
  const auto& resources = Parsed();
  for (auto _ : state) {
    for (const auto& r : resources) {
      phivault::Status s = phivault::fhir::ValidateResource(r);
      if (!s.ok()) state.SkipWithError(s.message().c_str());
      benchmark::DoNotOptimize(s);
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * resources.size()));
  state.counters["us_per_resource"] = benchmark::Counter(
      static_cast<double>(state.iterations() * resources.size()),
      benchmark::Counter::kIsRate | benchmark::Counter::kInvert, benchmark::Counter::OneK::kIs1000);
  state.counters["resources"] = static_cast<double>(resources.size());
}
BENCHMARK(BM_ValidateSyntheaMix)->Unit(benchmark::kMillisecond);

void BM_ParseResourceMix(benchmark::State& state) {
  static const std::vector<std::string> texts = SampleResources();
  for (auto _ : state) {
    for (const auto& t : texts) benchmark::DoNotOptimize(phivault::fhir::ParseResource(t));
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * texts.size()));
}
BENCHMARK(BM_ParseResourceMix)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
