// Search at scale, in-process against the real SqliteStore (encrypting VFS,
// sealed bodies, write-time indexing): loads PHIVAULT_SEARCH_PATIENTS
// synthetic patients (default 1000), each with 30 Observations (10 LOINC
// codes x 3 dates) and 5 Encounters, through group commits as import does,
// then times the issue's queries one by one and prints p50/p99 per query,
// the load rate with indexing, and the database bytes per resource.
// Query parsing and result decryption are included; HTTP and authorization
// are not (bench/access_bench.cc and server_bench.sh cover those).
//
//   PHIVAULT_SEARCH_PATIENTS=1000 build/release/bench/search_bench
#include <algorithm>
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "api/vault.h"
#include "fhir/time.h"
#include "search/index_values.h"
#include "search/query.h"

namespace phivault {
namespace {

using Clock = std::chrono::steady_clock;

// CPU seconds of the whole process (all threads): the machine is shared, so
// wall time alone says little.
double CpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

constexpr const char* kFamilies[] = {"Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis",
                                     "Rodriguez", "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson",
                                     "Thomas", "Taylor", "Moore", "Jackson", "Martin"};
constexpr const char* kCodes[] = {"8867-4", "8480-6", "8462-4", "9279-1", "8310-5",
                                  "29463-7", "8302-2", "39156-5", "2339-0", "718-7"};

std::string PatientJson(int i) {
  char buf[512];
  std::snprintf(buf, sizeof buf,
                R"({"resourceType":"Patient","identifier":[{"system":"urn:mrn","value":"MRN%06d"}],)"
                R"("name":[{"family":"%s%d","given":["Given%d"]}],"gender":"%s","birthDate":"%04d-%02d-%02d"})",
                i, kFamilies[i % 20], i / 20, i, i % 2 ? "male" : "female", 1930 + i % 80, 1 + i % 12, 1 + i % 28);
  return buf;
}

std::string ObservationJson(int patient, int code, int n) {
  char buf[768];
  std::snprintf(buf, sizeof buf,
                R"({"resourceType":"Observation","status":"final","category":[{"coding":[{"system":)"
                R"("http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],)"
                R"("code":{"coding":[{"system":"http://loinc.org","code":"%s","display":"Code %d"}]},)"
                R"("subject":{"reference":"Patient/p%d"},"effectiveDateTime":"20%02d-%02d-%02dT10:%02d:00Z",)"
                R"("valueQuantity":{"value":%d.%d,"unit":"mmHg","system":"http://unitsofmeasure.org","code":"mm[Hg]"}})",
                kCodes[code], code, patient, 15 + n * 3, 1 + (patient + n) % 12, 1 + patient % 28, code, 60 + code,
                n);
  return buf;
}

std::string EncounterJson(int patient, int n) {
  char buf[512];
  std::snprintf(buf, sizeof buf,
                R"({"resourceType":"Encounter","status":"finished","class":{"system":)"
                R"("http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},)"
                R"("subject":{"reference":"Patient/p%d"},"participant":[{"individual":{"reference":"Practitioner/dr%d"}}],)"
                R"("period":{"start":"20%02d-03-01T09:00:00Z","end":"20%02d-03-01T10:00:00Z"}})",
                patient, patient % 50, 15 + n, 15 + n);
  return buf;
}

void Report(const char* name, std::vector<double>& us, size_t hits) {
  std::sort(us.begin(), us.end());
  std::printf("%-70s p50 %8.3f ms  p99 %8.3f ms  (%zu queries, %zu hits)\n", name, us[us.size() / 2] / 1000,
              us[us.size() * 99 / 100] / 1000, us.size(), hits);
}

int Main() {
  int patients = 1000;
  if (const char* e = std::getenv("PHIVAULT_SEARCH_PATIENTS")) patients = std::max(10, std::atoi(e));
  std::string dir = std::filesystem::temp_directory_path() / ("phivault-search-bench-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::string key = dir + "/master.key";
  if (!crypto::GenerateKeyFile(key).ok()) return 1;
  api::VaultConfig cfg{dir + "/data", {}};
  cfg.key.key_file = key;
  if (!api::Vault::Init(cfg).ok()) return 1;
  auto vault = std::move(api::Vault::Open(cfg)).value();
  store::ResourceStore* store = vault->store();

  // Load, as import does: non-atomic batches through the group commit.
  auto t0 = Clock::now();
  double cpu0 = CpuSeconds();
  int64_t resources = 0;
  std::vector<store::WriteOp> batch;
  auto flush = [&] {
    if (batch.empty()) return;
    auto out = store->CommitAndWait(std::move(batch), false);
    if (!out.status.ok()) std::abort();
    batch.clear();
  };
  auto add = [&](const std::string& type, const std::string& id, const std::string& json, int patient) {
    store::WriteOp op;
    op.kind = store::WriteOp::Kind::kPut;
    op.type = type;
    op.id = id;
    op.resource = boost::json::parse(json).as_object();
    op.patients = {"p" + std::to_string(patient)};
    batch.push_back(std::move(op));
    ++resources;
    if (batch.size() >= 2000) flush();
  };
  for (int p = 0; p < patients; ++p) {
    add("Patient", "p" + std::to_string(p), PatientJson(p), p);
    for (int c = 0; c < 10; ++c)
      for (int n = 0; n < 3; ++n)
        add("Observation", "o" + std::to_string(p) + "-" + std::to_string(c) + "-" + std::to_string(n),
            ObservationJson(p, c, n), p);
    for (int n = 0; n < 5; ++n) add("Encounter", "e" + std::to_string(p) + "-" + std::to_string(n), EncounterJson(p, n), p);
  }
  flush();
  double load_s = std::chrono::duration<double>(Clock::now() - t0).count();
  double load_cpu = CpuSeconds() - cpu0;
  auto stats = store->Stats();
  std::printf("patients %d, resources %lld, load with indexing %.1f s wall = %.0f resources/s; %.1f CPU s = %.0f "
              "resources per CPU second\ndatabase %.1f MB = %.0f bytes/resource (bodies, versions and index "
              "together)\n",
              patients, static_cast<long long>(resources), load_s, resources / load_s, load_cpu, resources / load_cpu,
              stats.file_bytes / 1e6, static_cast<double>(stats.file_bytes) / static_cast<double>(resources));
  {
    // The index extraction alone (FHIRPath over every parameter), per type.
    for (auto [type, json] : {std::pair<const char*, std::string>{"Patient", PatientJson(1)},
                              {"Observation", ObservationJson(1, 1, 1)}, {"Encounter", EncounterJson(1, 1)}}) {
      auto obj = boost::json::parse(json).as_object();
      size_t rows = 0;
      double c0 = CpuSeconds();
      for (int i = 0; i < 2000; ++i) rows = search::ExtractIndexEntries(obj).value().size();
      std::printf("index extraction %-12s %5.1f us/resource, %zu index rows\n", type, (CpuSeconds() - c0) / 2000 * 1e6,
                  rows);
    }
  }

  search::SearchParseOptions po;
  po.base_url = "https://vault.bench";
  po.now_ms = fhir::NowMillis();
  auto run = [&](const char* name, const char* type, auto make_query, int n) {
    std::vector<double> us;
    size_t hits = 0;
    for (int i = 0; i < n; ++i) {
      search::QueryPairs q = make_query(i);
      auto start = Clock::now();
      auto req = search::ParseSearch(type, q, po);
      if (!req.ok()) std::abort();
      auto page = store->Search(req->query);
      if (!page.ok()) std::abort();
      us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count());
      hits += page->hits.size();
    }
    Report(name, us, hits);
  };
  const int n = 400;
  run("Patient?family=<prefix>&birthdate=ge1970-01-01", "Patient", [&](int i) {
    return search::QueryPairs{{"family", std::string(kFamilies[i % 20]) + std::to_string((i * 7) % (patients / 20 + 1))},
                              {"birthdate", "ge1970-01-01"}};
  }, n);
  run("Observation?patient=X&code=http://loinc.org|Y&date=ge2016-01-01&_sort=-date&_count=50", "Observation", [&](int i) {
    return search::QueryPairs{{"patient", "p" + std::to_string((i * 7919) % patients)},
                              {"code", std::string("http://loinc.org|") + kCodes[i % 10]},
                              {"date", "ge2016-01-01"},
                              {"_sort", "-date"},
                              {"_count", "50"}};
  }, n);
  run("Observation?patient=X&_sort=-date&_count=50", "Observation", [&](int i) {
    return search::QueryPairs{{"patient", "p" + std::to_string((i * 7919) % patients)},
                              {"_sort", "-date"},
                              {"_count", "50"}};
  }, n);
  run("Encounter?subject:Patient.identifier=urn:mrn|MRN...", "Encounter", [&](int i) {
    char mrn[32];
    std::snprintf(mrn, sizeof mrn, "urn:mrn|MRN%06d", (i * 7919) % patients);
    return search::QueryPairs{{"subject:Patient.identifier", mrn}};
  }, n);
  run("Observation?code=http://loinc.org|Y&_count=50 (first page of a large result)", "Observation", [&](int i) {
    return search::QueryPairs{{"code", std::string("http://loinc.org|") + kCodes[i % 10]},
                              {"_count", "50"}};
  }, n / 4);
  vault.reset();
  std::filesystem::remove_all(dir);
  return 0;
}

}  // namespace
}  // namespace phivault

int main() { return phivault::Main(); }
