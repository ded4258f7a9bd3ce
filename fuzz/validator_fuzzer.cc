// Fuzzes the resource validator (fhir/validator.h) behind the strict parser,
// as every write path runs it: any parsed resource is accepted or refused
// with kInvalidArgument and an expression under the given root, never a
// crash; the verdict does not depend on the root.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "fhir/json_reader.h"
#include "fhir/validator.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace phivault;
  fhir::ParseLimits limits;
  limits.max_bytes = 1 << 20;
  auto parsed = fhir::ParseResource(std::string_view(reinterpret_cast<const char*>(data), size), limits);
  if (!parsed.ok()) return 0;
  Status a = fhir::ValidateResource(*parsed);
  Status b = fhir::ValidateResource(*parsed, "Bundle.entry[0].resource");
  if (a.ok() != b.ok()) std::abort();
  if (!a.ok()) {
    if (a.code() != StatusCode::kInvalidArgument || a.expression().empty()) std::abort();
    if (b.expression().rfind("Bundle.entry[0].resource", 0) != 0) std::abort();
  }
  return 0;
}
