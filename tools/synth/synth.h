// Synthetic population growth for benchmarks and scale tests: turns the
// Synthea sample patients (data/samples: bulk NDJSON and transaction Bundles)
// into N patients, deterministically.
//
// Templates::Load reads the samples once and normalizes them: urn:uuid and
// conditional ("Practitioner?identifier=sys|val") references become literal
// "Type/id" references, and each resource is assigned to the patient whose
// compartment it is in (fhir::PatientCompartment, the one definition of the
// patient link). Resources in no patient compartment (Practitioner,
// Organization, Location, ...) are shared.
//
// Generate writes the shared resources once, unchanged, then clone k =
// 0..N-1 of template patient k mod T. A clone is a new identity:
//  - every id of the template's resources is replaced by an id derived from
//    (seed, k, type/id), and every reference to them is rewritten, so a
//    clone's references point at its own resources (or at shared ones);
//  - every identifier value is replaced by a derived value;
//  - the patient's names, the mother's maiden name, address lines, phone
//    numbers and e-mail addresses get generated replacements wherever they
//    occur in the clone's strings, including base64 text attachments
//    (Synthea clinical notes name the patient);
//  - every date, dateTime and instant (and dates inside text notes) is
//    shifted back by one per-clone number of days, so intervals and ages
//    stay consistent.
// Output is one resource per line (NDJSON), which `phivault import` loads.
// The same samples, seed and N give the same bytes.
//
// Thread-safety: a loaded Templates is immutable and may be shared.
// Lifetime: Generate keeps nothing after it returns.
#ifndef PHIVAULT_TOOLS_SYNTH_SYNTH_H_
#define PHIVAULT_TOOLS_SYNTH_SYNTH_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace phivault::synth {

struct TemplateData;

class Templates {
 public:
  // `paths`: files (.ndjson: one resource per line; .json: a Bundle) or
  // directories holding such files (read in name order; other files are
  // ignored). Fails if nothing usable is found or a file is malformed.
  static StatusOr<Templates> Load(const std::vector<std::string>& paths);

  size_t patient_count() const;
  size_t shared_count() const;
  // Resources of all template patients together.
  size_t patient_resource_count() const;

  const TemplateData& data() const { return *data_; }

 private:
  std::shared_ptr<const TemplateData> data_;
};

struct SynthOptions {
  int64_t patients = 10;
  uint64_t seed = 1;
};

struct SynthSummary {
  int64_t patients = 0;
  int64_t resources = 0;  // lines written, shared ones included
};

// Calls `sink` with each output line (one JSON resource, no newline) in
// order; stops at the sink's first error.
StatusOr<SynthSummary> Generate(const Templates& templates, const SynthOptions& options,
                                const std::function<Status(std::string_view line)>& sink);

}  // namespace phivault::synth

#endif  // PHIVAULT_TOOLS_SYNTH_SYNTH_H_
