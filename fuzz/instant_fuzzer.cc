// Fuzzes the FHIR instant parser (the _since parameter): any input is parsed
// or refused cleanly, and an accepted instant formats back to one that parses
// to the same moment.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "fhir/instant.h"
#include "fhir/time.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace phivault::fhir;
  auto ms = ParseInstantMillis(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!ms || *ms < 0 || *ms > 253402300799999) return 0;  // FormatInstant covers years 1970..9999
  if (ParseInstantMillis(FormatInstant(*ms)) != ms) std::abort();
  return 0;
}
