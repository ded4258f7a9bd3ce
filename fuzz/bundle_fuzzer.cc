// Fuzzes the Bundle path end to end: parse, plan, rewrite urn references to
// Type/id, then compute the patient compartment of every entry's resource.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>

#include "fhir/bundle.h"
#include "fhir/compartment.h"
#include "fhir/json_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace phivault::fhir;
  std::string_view body(reinterpret_cast<const char*>(data), size);
  ParseLimits limits;
  limits.max_bytes = 1 << 20;
  auto parsed = ParseResource(body, limits);
  if (!parsed.ok()) return 0;
  BundleLimits blimits;
  blimits.max_entries = 1000;
  auto plan = ParseBatchOrTransaction(*parsed, blimits);
  if (!plan.ok()) return 0;
  std::unordered_map<std::string, std::string> map;
  int n = 0;
  for (const auto& e : plan->entries) {
    if (!e.status.ok() || e.full_url.empty()) continue;
    map[e.full_url] = e.type + "/id" + std::to_string(n++);
  }
  (void)TransactionOrder(*plan);
  for (auto& e : plan->entries) {
    if (!e.resource) continue;
    (void)CollectUrnReferences(boost::json::value(*e.resource));
    RewriteReferences(*e.resource, map);
    auto ids = PatientCompartment(*e.resource);
    for (const auto& id : ids) {
      if (!IsValidId(id)) __builtin_trap();
    }
    (void)Serialize(*e.resource, false);
  }
  return 0;
}
