// JSON parse and serialize of real Synthea resources (a Patient and an
// Observation), the per-request CPU cost of every read-modify-write.
#include <benchmark/benchmark.h>

#include <boost/json.hpp>
#include <fstream>
#include <sstream>

#include "fhir/compartment.h"
#include "fhir/json_reader.h"

namespace {

std::string SampleResource(const std::string& type) {
  std::ifstream in(std::string(PHIVAULT_SOURCE_DIR) + "/data/samples/synthea-bundles/patient-001.json");
  std::stringstream ss;
  ss << in.rdbuf();
  boost::json::value b = boost::json::parse(ss.str());
  for (auto& e : b.at("entry").as_array()) {
    const auto& r = e.at("resource").as_object();
    if (r.at("resourceType") == type.c_str()) return boost::json::serialize(r);
  }
  return "{}";
}

void BM_ParseResource(benchmark::State& state, const std::string& type) {
  std::string json = SampleResource(type);
  for (auto _ : state) {
    auto r = phivault::fhir::ParseResource(json);
    benchmark::DoNotOptimize(r);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * json.size()));
}

void BM_SerializeResource(benchmark::State& state, const std::string& type) {
  auto obj = *phivault::fhir::ParseResource(SampleResource(type));
  size_t bytes = 0;
  for (auto _ : state) {
    std::string s = boost::json::serialize(obj);
    bytes += s.size();
    benchmark::DoNotOptimize(s);
  }
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
}

void BM_PatientCompartment(benchmark::State& state, const std::string& type) {
  auto obj = *phivault::fhir::ParseResource(SampleResource(type));
  for (auto _ : state) {
    auto p = phivault::fhir::PatientCompartment(obj);
    benchmark::DoNotOptimize(p);
  }
}

BENCHMARK_CAPTURE(BM_ParseResource, Patient, std::string("Patient"));
BENCHMARK_CAPTURE(BM_ParseResource, Observation, std::string("Observation"));
BENCHMARK_CAPTURE(BM_SerializeResource, Patient, std::string("Patient"));
BENCHMARK_CAPTURE(BM_SerializeResource, Observation, std::string("Observation"));
BENCHMARK_CAPTURE(BM_PatientCompartment, Observation, std::string("Observation"));

}  // namespace

BENCHMARK_MAIN();
