#include "fhir/summary.h"

#include <algorithm>
#include <cstdlib>
#include <iterator>
#include <tuple>

#include <boost/json/array.hpp>
#include <boost/json/value.hpp>

#include "common/log.h"

namespace phivault::fhir {
namespace {

struct Row {
  std::string_view context;
  std::string_view name;
  int flags;  // 1 isSummary, 2 mandatory, 4 isModifier
  std::string_view child;
};

constexpr Row kRows[] = {
#include "fhir/generated/summary_elements.inc"
};

constexpr int kSummary = 1;
constexpr int kMandatory = 2;
constexpr int kModifier = 4;
// Stored resources are depth-limited at parse time; this only bounds the
// recursion should a caller pass something deeper.
constexpr int kMaxDepth = 64;

// Checked once at run time: at 4,000+ rows a static_assert exceeds clang's
// constexpr step limit. Binary search on an unsorted table would silently
// drop elements, so an unsorted (hand-edited) table is fatal.
bool Sorted() {
  for (size_t i = 1; i < std::size(kRows); ++i) {
    if (std::tie(kRows[i - 1].context, kRows[i - 1].name) >= std::tie(kRows[i].context, kRows[i].name)) return false;
  }
  return true;
}

const Row* Find(std::string_view context, std::string_view name) {
  static const bool sorted = Sorted();
  if (!sorted) {
    log::Error("summary_table_unsorted", {{"file", "src/fhir/generated/summary_elements.inc"},
                                          {"action", "regenerate it with tools/gen_summary_table.py"}});
    std::abort();
  }
  auto it = std::lower_bound(std::begin(kRows), std::end(kRows), std::pair{context, name},
                             [](const Row& r, const std::pair<std::string_view, std::string_view>& k) {
                               return std::tie(r.context, r.name) < std::tie(k.first, k.second);
                             });
  if (it == std::end(kRows) || it->context != context || it->name != name) return nullptr;
  return &*it;
}

boost::json::object FilterResource(const boost::json::object& resource, int depth);

// The summary of one value of an element whose children live in `child`.
// Returns false if nothing of it is left.
bool FilterValue(const boost::json::value& in, std::string_view child, int depth, boost::json::value& out);

boost::json::object FilterObject(const boost::json::object& in, std::string_view context, int depth) {
  boost::json::object out;
  for (const auto& [key, value] : in) {
    std::string_view name = key;
    if (name.size() > 1 && name.front() == '_') name.remove_prefix(1);  // a primitive's id/extensions
    const Row* row = Find(context, name);
    if (!row) continue;
    if (name.size() != key.size()) {
      out[key] = value;
      continue;
    }
    boost::json::value kept;
    if (FilterValue(value, row->child, depth, kept)) out[key] = std::move(kept);
  }
  return out;
}

bool FilterValue(const boost::json::value& in, std::string_view child, int depth, boost::json::value& out) {
  if (child.empty()) {
    out = in;
    return true;
  }
  if (depth >= kMaxDepth) return false;
  if (const auto* arr = in.if_array()) {
    boost::json::array kept;
    for (const auto& item : *arr) {
      boost::json::value v;
      if (FilterValue(item, child, depth, v)) kept.push_back(std::move(v));
    }
    if (kept.empty()) return false;
    out = std::move(kept);
    return true;
  }
  const auto* obj = in.if_object();
  if (!obj) return false;  // malformed: a complex element that is not an object
  boost::json::object kept = child == "@" ? FilterResource(*obj, depth + 1) : FilterObject(*obj, child, depth + 1);
  if (kept.empty()) return false;
  out = std::move(kept);
  return true;
}

boost::json::object FilterResource(const boost::json::object& resource, int depth) {
  // id and meta are flagged summary in every R4 resource; resourceType is
  // not an element.
  const auto* rt = resource.if_contains("resourceType");
  if (!rt || !rt->is_string()) return {};
  boost::json::object out;
  out["resourceType"] = *rt;
  for (auto& [key, value] : FilterObject(resource, rt->get_string(), depth)) out[key] = std::move(value);
  return out;
}

}  // namespace

SummaryFlags SummaryElement(std::string_view context, std::string_view name) {
  const Row* r = Find(context, name);
  if (!r) return {};
  return {true, (r->flags & kSummary) != 0, (r->flags & kMandatory) != 0, (r->flags & kModifier) != 0};
}

boost::json::object Summarize(const boost::json::object& resource, SummaryView view) {
  if (view == SummaryView::kTrue) return FilterResource(resource, 0);
  boost::json::object out;
  const auto* rt = resource.if_contains("resourceType");
  if (!rt || !rt->is_string()) return out;
  std::string_view type = rt->get_string();
  for (const auto& [key, value] : resource) {
    std::string_view name = key;
    if (name.size() > 1 && name.front() == '_') name.remove_prefix(1);
    bool keep = key == "resourceType" || name == "id" || name == "meta" || name == "text";
    if (!keep) {
      const Row* row = Find(type, name);
      keep = row && (row->flags & kMandatory);
    }
    if (keep) out[key] = value;
  }
  return out;
}

}  // namespace phivault::fhir
