#include "fhir/resource_types.h"

#include <algorithm>
#include <iterator>

namespace phivault::fhir {
namespace {

constexpr std::string_view kResourceTypes[] = {
#include "fhir/generated/resource_types.inc"
};

static_assert(std::is_sorted(std::begin(kResourceTypes), std::end(kResourceTypes)),
              "generated resource_types.inc must be sorted");
static_assert(std::adjacent_find(std::begin(kResourceTypes), std::end(kResourceTypes)) ==
                  std::end(kResourceTypes),
              "generated resource_types.inc must not repeat a name");

}  // namespace

bool IsKnownResourceType(std::string_view type) {
  return std::binary_search(std::begin(kResourceTypes), std::end(kResourceTypes), type);
}

std::span<const std::string_view> AllResourceTypes() { return kResourceTypes; }

}  // namespace phivault::fhir
