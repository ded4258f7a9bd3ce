// phivault-synth: grows the Synthea samples into N synthetic patients as
// NDJSON for `phivault import` (see synth.h). A separate program rather than
// a `phivault` subcommand: it is a test-data generator that needs no keys and
// no vault, so it stays out of the production binary and its attack surface.
#include <cstdio>
#include <fstream>
#include <iostream>

#include <CLI/CLI.hpp>

#include "synth.h"

int main(int argc, char** argv) {
  CLI::App app{"Grow the Synthea samples into N synthetic patients (NDJSON for `phivault import`)"};
  int64_t patients = 10;
  uint64_t seed = 1;
  std::string out;
  std::vector<std::string> samples{"data/samples"};
  app.add_option("--patients", patients, "number of patients to generate")->required()->check(CLI::NonNegativeNumber);
  app.add_option("--seed", seed, "seed: the same seed and samples give the same bytes")->required();
  app.add_option("--out", out, "output file (.ndjson)")->required();
  app.add_option("--samples", samples, "sample files or directories (default data/samples)");
  CLI11_PARSE(app, argc, argv);

  auto templates = phivault::synth::Templates::Load(samples);
  if (!templates.ok()) {
    std::cerr << "synth: cannot load the samples: " << templates.status().message() << "\n";
    return 1;
  }
  std::string tmp = out + ".tmp";
  std::ofstream file(tmp, std::ios::binary | std::ios::trunc);
  if (!file) {
    std::cerr << "synth: cannot write " << tmp << "\n";
    return 1;
  }
  auto summary = phivault::synth::Generate(*templates, {patients, seed}, [&](std::string_view line) {
    file.write(line.data(), static_cast<std::streamsize>(line.size()));
    file.put('\n');
    return file ? phivault::Status::Ok() : phivault::Status(phivault::StatusCode::kInternal, "write failed");
  });
  file.close();
  if (!summary.ok() || !file) {
    std::remove(tmp.c_str());
    std::cerr << "synth: failed writing " << out << ": " << (summary.ok() ? "write failed" : summary.status().message())
              << "\n";
    return 1;
  }
  if (std::rename(tmp.c_str(), out.c_str()) != 0) {
    std::cerr << "synth: cannot rename " << tmp << " to " << out << "\n";
    return 1;
  }
  std::cerr << "synth: " << summary->patients << " patients, " << summary->resources << " resources ("
            << templates->patient_count() << " templates, " << templates->shared_count() << " shared) -> " << out
            << "\n";
  return 0;
}
