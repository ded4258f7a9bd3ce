// The structured FHIR search query every ResourceStore engine answers, and
// its result page.
//
// A SearchQuery is engine-agnostic: the API layer parses URL parameters into
// it (search/query.h) with the values already normalized the way the index
// stores them (strings folded, dates as [low, high) millisecond ranges,
// numbers with their implied precision range), so an engine only translates
// it into its own index lookups. Conditions are AND-ed; the values of one
// condition are OR-ed. Matches are current, non-deleted versions only.
//
// Order is stable: the requested sort keys, then the logical id as the final
// tie-breaker (ids never change, unlike version sequence numbers), so a page
// position ("after this sort-key tuple and id") still means the same place
// while other resources are written. Positions are opaque engine strings;
// the API layer seals them into tamper-proof cursors before a client sees
// them.
//
// Thread-safety: plain values. Lifetime: no references to anything, except
// the optional SearchBudget, which must outlive the searches charged to it.
#ifndef PHIVAULT_STORE_SEARCH_QUERY_H_
#define PHIVAULT_STORE_SEARCH_QUERY_H_

#include <cstdint>
#include <string>
#include <vector>

#include "search/search_params.h"

namespace phivault::store {

enum class SearchPrefix { kEq, kNe, kGt, kLt, kGe, kLe, kSa, kEb, kAp };

enum class SearchModifier {
  kNone,
  kExact,     // string: exact, case-sensitive
  kContains,  // string: folded substring
  kText,      // token: folded display / CodeableConcept.text, starts-with
  kNot,       // token: resources without a matching value (also without any)
  kOfType,    // token: Identifier type system|code plus value
  kMissing,   // any type: SearchValue::missing says which
  kBelow,     // uri: the value is a prefix of the stored uri
  kAbove,     // uri: the stored uri is a prefix of the value
  kIdentifier,  // reference: the reference's identifier system|value
};

// One value of a condition; which fields count depends on the parameter type.
struct SearchValue {
  SearchPrefix prefix = SearchPrefix::kEq;
  // string: folded text (kNone, kContains) or exact text (kExact); uri: uri;
  // token :text: folded text.
  std::string text;
  // token / quantity / reference :identifier: system, when has_system.
  bool has_system = false;
  std::string system;
  // token: code (empty with has_system means "any code of this system");
  // quantity: unit code (matches code or unit text); reference :identifier: value.
  std::string code;
  // token :of-type: Identifier.type coding.
  std::string type_system, type_code;
  // reference: target type ("" = any) and id; or an absolute/canonical URL.
  std::string ref_type, ref_id, url;
  // date: the search value's precision range [low_ms, high_ms).
  int64_t low_ms = 0, high_ms = 0;
  // number / quantity: the value and its implied precision range [lo, hi).
  double number = 0, number_low = 0, number_high = 0;
  // kMissing: true = the resource has no value for the parameter.
  bool missing = false;
};

struct SearchCondition {
  enum class Kind { kPlain, kChain, kHas };
  Kind kind = Kind::kPlain;
  // The parameter on the searched type (kPlain, kChain: a reference).
  std::string param;
  search::ParamType type = search::ParamType::kString;
  SearchModifier modifier = SearchModifier::kNone;
  std::vector<SearchValue> values;  // OR-ed; empty only with kMissing
  // kChain: the reference must point at a `target_type` resource matching
  // `nested[0]` (one level deep). kHas: a `target_type` resource whose
  // reference parameter `has_param` points at the searched resource must
  // match `nested[0]`.
  std::string target_type;
  std::string has_param;
  std::vector<SearchCondition> nested;
};

struct SearchSortKey {
  std::string param;
  search::ParamType type = search::ParamType::kString;
  bool descending = false;
};

// The work one request's searches may do together. Untrusted parameters
// can make a query that no index narrows (`ne`, `:not`, many values): the
// engine charges each search's work here and fails it with InvalidArgument
// ("too costly") once the budget is spent, instead of holding a network
// thread for minutes. SQLite charges one unit per 100 virtual machine
// steps. Not thread-safe: one request's searches run one after another.
struct SearchBudget {
  int64_t units_left = 0;
};

struct SearchQuery {
  std::string type;  // REQUIRES: a known resource type
  std::vector<SearchCondition> conditions;  // AND-ed
  std::vector<SearchSortKey> sort;
  int count = 50;          // matches to return at most (the store caps it)
  std::string after;       // position from a previous page's hit; "" = start
  // Page backwards: the `count` matches just before `after` (REQUIRES:
  // non-empty), still returned in forward order.
  bool backward = false;
  SearchBudget* budget = nullptr;  // charged by the engine; null = unbounded
};

}  // namespace phivault::store

#endif  // PHIVAULT_STORE_SEARCH_QUERY_H_
