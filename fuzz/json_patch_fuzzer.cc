// Fuzzes JSON Patch: the input is split at the first NUL into a document and
// a patch. Any input must be applied or refused cleanly; a successful patch
// must leave a document within the limits that serializes and parses back.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "fhir/json_patch.h"
#include "fhir/json_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace phivault::fhir;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  size_t nul = in.find('\0');
  if (nul == std::string_view::npos) return 0;
  ParseLimits parse;
  parse.max_bytes = 1 << 16;
  parse.max_depth = 16;
  auto doc = ParseJson(in.substr(0, nul), parse);
  auto patch = ParseJson(in.substr(nul + 1), parse);
  if (!doc.ok() || !patch.ok()) return 0;
  JsonPatchLimits limits;
  limits.max_depth = 16;
  limits.max_document_bytes = 1 << 20;
  limits.max_work_bytes = 8 << 20;
  auto out = ApplyJsonPatch(*patch, *doc, limits);
  if (!out.ok()) {
    auto c = out.status().code();
    if (c != phivault::StatusCode::kInvalidArgument && c != phivault::StatusCode::kConflict) std::abort();
    return 0;
  }
  ParseLimits back;
  back.max_bytes = 64 << 20;
  back.max_depth = 16;
  auto again = ParseJson(Serialize(*out), back);
  if (!again.ok() || !JsonEqual(*again, *out)) std::abort();
  return 0;
}
