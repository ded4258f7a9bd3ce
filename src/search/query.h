// Parsing of FHIR R4 search URL parameters into the engine-agnostic
// store::SearchQuery plus the result controls the API layer applies
// (_summary, _elements, _total, _include, _revinclude).
//
// Semantics (FHIR R4 3.1.1): parameters AND, comma-separated values OR
// (`\,` escapes a comma); strings starts-with on the folded text (case and
// Latin accents ignored), :exact, :contains; tokens [system]|[code], |code,
// system|, :not, :text, :of-type (identifiers); references Type/id, id,
// absolute URLs (those under the vault's own base are local), :Type,
// :identifier, one level of chaining (subject:Patient.name=...) and _has
// reverse chaining (nested at most twice); dates with the prefixes
// eq ne lt gt le ge sa eb ap and the value's precision as a range
// (see ParseDateRange); numbers with their implied precision
// (100 = [99.5, 100.5)); quantities number|system|code or number||unit;
// uris with :below/:above; :missing on every type. ap is +-10% of the
// value for numbers and quantities and +-10% of the distance from now
// (at least one day) for dates.
//
// An unknown or unsupported parameter, modifier or malformed value is
// InvalidArgument unless `lenient` is set, in which case it is skipped and
// named in `ignored`. Error messages name at most the parameter, never a
// value (values are health data).
//
// Thread-safety: pure functions. Lifetime: results own their data.
#ifndef PHIVAULT_SEARCH_QUERY_H_
#define PHIVAULT_SEARCH_QUERY_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "store/search_query.h"

namespace phivault::search {

using QueryPairs = std::vector<std::pair<std::string, std::string>>;

struct IncludeSpec {
  std::string source_type;  // the type holding the reference
  std::string param;        // a reference parameter of source_type
  std::string target_type;  // "" = any target
  bool reverse = false;     // _revinclude
  bool iterate = false;     // :iterate
};

// _summary: kTrue and kText are applied by fhir::Summarize (the R4 isSummary
// and mandatory-element table), kData drops the narrative.
enum class SummaryMode { kFalse, kTrue, kText, kData, kCount };
enum class TotalMode { kNone, kEstimate, kAccurate };

struct SearchRequest {
  store::SearchQuery query;  // query.count set from _count (or the default)
  SummaryMode summary = SummaryMode::kFalse;
  std::vector<std::string> elements;  // _elements, top-level names
  TotalMode total = TotalMode::kNone;
  std::vector<IncludeSpec> includes;
  // The parameters applied, as given (name, raw value), in request order:
  // the self link shows exactly these. Paging parameters are not included.
  QueryPairs applied;
  // Names of parameters skipped under lenient handling.
  std::vector<std::string> ignored;
};

struct SearchParseOptions {
  bool lenient = false;     // Prefer: handling=lenient
  int default_count = 50;
  int max_count = 1000;
  std::string base_url;     // the vault's base, e.g. "https://vault.example.org"
  int64_t now_ms = 0;       // for date ap
  // Parameters the caller handles itself (e.g. _format, _cursor); skipped.
  std::vector<std::string> passthrough = {"_format", "_pretty", "_cursor"};
};

StatusOr<SearchRequest> ParseSearch(std::string_view type, const QueryPairs& params,
                                    const SearchParseOptions& options);

// Splits a parameter value on unescaped `sep` (',' between OR-ed values,
// '|' inside tokens and quantities) and unescapes `\,` `\|` `\$` `\\` in
// each part. Exposed for tests.
std::vector<std::string> SplitEscaped(std::string_view value, char sep);

}  // namespace phivault::search

#endif  // PHIVAULT_SEARCH_QUERY_H_
