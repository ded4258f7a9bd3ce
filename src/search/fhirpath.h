// A FHIRPath subset evaluator over Boost.JSON resources, for search indexing.
//
// Supports what the R4 search parameter expressions use: member navigation
// with array flattening and choice-type expansion (`Observation.value` finds
// valueQuantity, valueString, ...; the suffix becomes the item's type), the
// root type name (or Resource/DomainResource) as the first step, indexers
// `[n]`, `|` union, `=` / `!=`, `and` / `or`, `is T` / `as T`, parentheses,
// string/integer/boolean literals, and the functions where(), exists(),
// empty(), first(), not(), as(T), ofType(T), is(T) and resolve(). resolve()
// does not load anything: it turns a Reference into an item typed by the
// reference's target type, so `where(resolve() is Patient)` works on the
// literal reference. Types of non-choice elements are inferred from JSON
// kind only (string, boolean, number, object), since no schema is loaded.
//
// Input may be hostile: expressions are bounded in length and nesting and
// evaluation in result size; nothing throws or recurses without bound.
// Unsupported syntax fails Compile with kUnsupported.
//
// Thread-safety: a compiled FhirPath is immutable and may be evaluated from
// many threads at once. Lifetime: results point into the evaluated resource
// (or own literal values) and must not outlive it.
#ifndef PHIVAULT_SEARCH_FHIRPATH_H_
#define PHIVAULT_SEARCH_FHIRPATH_H_

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include "common/status.h"

namespace phivault::search {

// One item of a FHIRPath result collection.
struct PathItem {
  // Points into the evaluated resource, or at `owned` when it is null.
  const boost::json::value* ptr = nullptr;
  boost::json::value owned;
  // Set (and ptr null, owned null) when the item is the resource itself,
  // which the caller holds as an object rather than a value.
  const boost::json::object* root = nullptr;
  // FHIR type when known: a choice suffix ("Quantity", "dateTime"), a
  // resolve() target ("Patient"), or empty.
  std::string type;

  const boost::json::value& value() const { return ptr ? *ptr : owned; }
  // The item as an object (the resource itself included), or nullptr.
  const boost::json::object* object() const { return root ? root : value().if_object(); }
};

struct FhirPathNode;  // AST node, defined in fhirpath.cc

class FhirPath {
 public:
  static constexpr size_t kMaxExpressionBytes = 4096;
  static constexpr int kMaxNesting = 32;
  static constexpr size_t kMaxResultItems = 100000;

  // Parses `expr`. kInvalidArgument for malformed text, kUnsupported for
  // valid FHIRPath outside the subset.
  static StatusOr<FhirPath> Compile(std::string_view expr);

  // Evaluates against `resource` (the %resource and the root context).
  // kResourceExhausted if a collection grows beyond kMaxResultItems.
  StatusOr<std::vector<PathItem>> Evaluate(const boost::json::object& resource) const;

  const std::string& text() const { return text_; }

 private:
  std::shared_ptr<const FhirPathNode> root_;
  std::string text_;
};

}  // namespace phivault::search

#endif  // PHIVAULT_SEARCH_FHIRPATH_H_
