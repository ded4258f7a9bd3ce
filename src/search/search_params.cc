#include "search/search_params.h"

#include <algorithm>
#include <array>

#include "fhir/resource_types.h"

namespace phivault::search {
namespace {

constexpr SearchParamDef kParams[] = {
#include "search/generated/search_params.inc"
};

// Rows are sorted by (base, code): equal_range finds a base's block.
std::span<const SearchParamDef> RowsOf(std::string_view base) {
  auto lo = std::lower_bound(std::begin(kParams), std::end(kParams), base,
                             [](const SearchParamDef& d, std::string_view b) { return d.base < b; });
  auto hi = std::upper_bound(lo, std::end(kParams), base,
                             [](std::string_view b, const SearchParamDef& d) { return b < d.base; });
  return {lo, hi};
}

}  // namespace

std::string_view ParamTypeName(ParamType type) {
  switch (type) {
    case ParamType::kString: return "string";
    case ParamType::kToken: return "token";
    case ParamType::kReference: return "reference";
    case ParamType::kDate: return "date";
    case ParamType::kNumber: return "number";
    case ParamType::kQuantity: return "quantity";
    case ParamType::kUri: return "uri";
  }
  return "unknown";
}

std::span<const SearchParamDef> AllSearchParams() { return kParams; }

std::vector<const SearchParamDef*> SearchParamsFor(std::string_view type) {
  std::vector<const SearchParamDef*> out;
  if (!fhir::IsKnownResourceType(type)) return out;
  for (const auto& d : RowsOf(type)) out.push_back(&d);
  for (const auto& d : RowsOf("Resource")) out.push_back(&d);
  return out;
}

const SearchParamDef* FindSearchParam(std::string_view type, std::string_view code) {
  if (!fhir::IsKnownResourceType(type)) return nullptr;
  for (std::string_view base : {type, std::string_view("Resource")}) {
    for (const auto& d : RowsOf(base)) {
      if (d.code == code) return &d;
    }
  }
  return nullptr;
}

}  // namespace phivault::search
