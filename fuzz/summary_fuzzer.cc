// Fuzzes the _summary=true|text views (fhir/summary.h) over any resource the
// parser accepts: Summarize must never crash on odd shapes (a complex element
// that is a string, arrays of mixed values, resources inside resources), a
// view must be a subset of its input at the top level, and summarizing a
// view again must change nothing.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "fhir/json_reader.h"
#include "fhir/summary.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace phivault::fhir;
  ParseLimits limits;
  limits.max_bytes = 1 << 20;
  auto r = ParseResource(std::string_view(reinterpret_cast<const char*>(data), size), limits);
  if (!r.ok()) return 0;
  for (SummaryView view : {SummaryView::kTrue, SummaryView::kText}) {
    boost::json::object s = Summarize(*r, view);
    for (const auto& [k, v] : s) {
      if (!r->contains(k)) std::abort();
    }
    if (Summarize(s, view) != s) std::abort();
  }
  return 0;
}
