// Normalized search index values extracted from a FHIR R4 resource.
//
// For every search parameter of the resource's type (search_params.h) the
// parameter's FHIRPath is evaluated and each resulting element becomes zero
// or more IndexEntry rows, normalized per parameter type:
//   string    exact text and a folded form (FoldString: case and accents
//             removed, whitespace collapsed) for the default starts-with match;
//             HumanName and Address contribute each of their text parts.
//   token     system + code (Coding, CodeableConcept, Identifier,
//             ContactPoint, code/boolean/string primitives); `text` holds the
//             folded display/CodeableConcept.text for :text; identifiers also
//             carry their type coding for :of-type.
//   reference "Type/id" for relative and absolute literal references (the
//             absolute URL kept in `url`), canonical/uri targets in `url`.
//   date      [low_ms, high_ms) in Unix milliseconds from the value's
//             precision (year, month, day, minute, second, millisecond);
//             timezones applied; values without a zone are taken as UTC.
//             Period uses start's low and end's high (open ends unbounded).
//   number, quantity  the value as shortest decimal text and as a double;
//             quantities also system, code and unit (Money: currency).
//   uri       the uri text.
// Unparseable or unsupported values are skipped, never fatal.
//
// Thread-safety: pure functions, safe from any thread. Lifetime: entries own
// their strings except `param`, which points at static storage.
#ifndef PHIVAULT_SEARCH_INDEX_VALUES_H_
#define PHIVAULT_SEARCH_INDEX_VALUES_H_

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include "search/fhirpath.h"
#include "search/search_params.h"

namespace phivault::search {

struct IndexEntry {
  std::string_view param;  // search parameter code
  ParamType type = ParamType::kString;

  // string: exact text; token: code; reference: "Type/id" (or the raw
  // reference for contained/urn references); uri: the uri;
  // number/quantity: shortest decimal text.
  std::string value;
  // string: folded text (FoldString).
  std::string folded;
  // token and quantity: system.
  std::string system;
  // token: folded display text for :text.
  std::string text;
  // token from an Identifier: Identifier.type coding, for :of-type.
  std::string type_system, type_code;
  // reference: target type and id; absolute or canonical URL.
  std::string ref_type, ref_id, url;
  // date: [low_ms, high_ms).
  int64_t low_ms = 0, high_ms = 0;
  // number/quantity: numeric value; quantity: unit code and unit text.
  double number = 0;
  std::string code, unit;
};

constexpr int64_t kMinDateMs = std::numeric_limits<int64_t>::min();
constexpr int64_t kMaxDateMs = std::numeric_limits<int64_t>::max();

// All entries of `resource` for its type's parameters, in table order.
// Empty for an unknown or missing resourceType. kInvalidArgument when a
// parameter's expression cannot be evaluated on it, in practice because a
// collection along the way has more items than FHIRPath evaluates
// (FhirPath::kMaxResultItems): such a resource cannot be indexed whole, and
// storing it with a parameter left out would hide it from searches.
StatusOr<std::vector<IndexEntry>> ExtractIndexEntries(const boost::json::object& resource);

// Entries of one parameter (helper for ExtractIndexEntries and tests); the
// same error.
StatusOr<std::vector<IndexEntry>> ExtractParam(const SearchParamDef& def, const boost::json::object& resource);

// Folds text for the default (case- and accent-insensitive) string match,
// applied alike to index values and query values: ASCII is lowercased; any
// other code point is mapped by a table generated from Unicode 14.0 data
// (tools/gen_fold_table.py): canonical decomposition (not of Hangul
// syllables nor symbols, so "≠" stays), nonspacing marks (category Mn, in
// any script: also Hebrew points, kana voicing marks, variation selectors)
// dropped, full case folding. So "Ольга" -> "ольга", "Nguyễn" -> "nguyen",
// "ΣΟΦΟΣ" and "σοφος" -> "σοφοσ", "İ" -> "i", "e" + U+0301 -> "e". Latin-1
// and Latin Extended-A keep their older ASCII folds (ß -> "ss", æ -> "ae",
// þ -> "th", œ -> "oe", ø -> "o", ł -> "l", đ -> "d", ...). CJK ideographs,
// Hangul syllables, emoji and symbols without case stay as they are. Runs of
// whitespace (ASCII or Unicode White_Space such as U+00A0, U+2003) become one
// space, trimmed at both ends. Invalid UTF-8 (bad or truncated sequences,
// overlong forms, surrogates, values above U+10FFFF) is dropped byte by
// byte. Idempotent.
std::string FoldString(std::string_view s);

// The version of FoldString's output. The search index stores folded values,
// so sqlite_search::Fingerprint includes it and a vault indexed with another
// version is re-indexed on open. Bump it whenever FoldString's output changes
// for any input: a changed rule, a regenerated table, a new Unicode version.
// (FoldString.OutputIsPinned in index_values_test.cc fails until you do.)
// 1: ASCII, Latin-1 and Latin Extended-A only. 2: the Unicode table.
inline constexpr int kFoldVersion = 2;

struct DateRange {
  int64_t low_ms, high_ms;
};
// Parses a FHIR date, dateTime or instant ("2024", "2024-02",
// "2024-02-29", "2024-02-29T10:30", "...:05.123+02:00") into its precision
// range. nullopt if malformed.
std::optional<DateRange> ParseDateRange(std::string_view s);

}  // namespace phivault::search

#endif  // PHIVAULT_SEARCH_INDEX_VALUES_H_
