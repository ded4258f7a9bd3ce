// Fuzzes the strict JSON/resource parser and the serializer: any input must be
// accepted or rejected cleanly; an accepted resource must serialize (compact
// and pretty) to JSON that parses back to an equal value.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "fhir/compartment.h"
#include "fhir/json_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace phivault::fhir;
  std::string_view body(reinterpret_cast<const char*>(data), size);
  ParseLimits limits;
  limits.max_bytes = 1 << 20;
  auto any = ParseJson(body, limits);
  auto r = ParseResource(body, limits);
  if (r.ok() && !any.ok()) std::abort();  // ParseResource is ParseJson plus checks
  if (!r.ok()) return 0;
  for (bool pretty : {false, true}) {
    auto again = ParseResource(Serialize(*r, pretty), limits);
    if (!again.ok()) std::abort();
    // Doubles round-trip exactly through the shortest form, except NaN which
    // the parser never produces.
    if (*again != *r) std::abort();
  }
  (void)PatientCompartment(*r);
  return 0;
}
