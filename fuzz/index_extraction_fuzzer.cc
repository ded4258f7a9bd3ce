// Fuzzes write-time index extraction (search/index_values.h): every search
// parameter's FHIRPath expression evaluated over a resource the client
// wrote, then the values turned into index rows. Any parsed resource must
// give rows or none, never a crash or a hang (the write path runs this on a
// network thread; a quadratic union once cost 20 s per write). Validation
// runs first on the write path, but extraction must not rely on it, so
// unvalidated resources are extracted too. Extraction is deterministic.
// One seed holds 1,500 endpoints a side (ImagingStudy's union), so that
// inputs of that size are explored (libFuzzer's length limit follows the
// largest seed).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "fhir/json_reader.h"
#include "search/index_values.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace phivault;
  fhir::ParseLimits limits;
  limits.max_bytes = 1 << 20;
  auto parsed = fhir::ParseResource(std::string_view(reinterpret_cast<const char*>(data), size), limits);
  if (!parsed.ok()) return 0;
  const auto a = search::ExtractIndexEntries(*parsed);
  const auto b = search::ExtractIndexEntries(*parsed);
  if (a.ok() != b.ok() || (a.ok() && a->size() != b->size())) std::abort();
  return 0;
}
