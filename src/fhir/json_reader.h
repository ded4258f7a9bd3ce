// Strict parsing and serialization of FHIR R4 JSON resources.
//
// ParseResource is the one door through which untrusted JSON enters phivault.
// It accepts exactly one JSON object (RFC 8259, no comments, no trailing
// commas, no trailing data) with valid UTF-8 (overlong forms, encoded or
// escaped lone surrogates and code points above U+10FFFF are rejected), no
// duplicate key in any object (duplicates are ambiguous across parsers and a
// request-smuggling vector), bounded nesting and size, and a `resourceType`
// naming an R4 resource type. If `id` is present it must be a valid FHIR id.
// Error messages never echo input content: they name the rule that failed
// and, only for a known type, the resourceType.
//
// Numbers: integers keep their int64/uint64 value; decimals become doubles and
// are written back in the shortest form that round-trips, always with a '.'
// or exponent (`1.0` stays `1.0`, but `1.50` becomes `1.5`): trailing-zero
// decimal precision is not preserved (Boost.JSON 1.81 keeps no number text).
//
// Thread-safety: all functions are reentrant; distinct values may be used on
// different threads. Lifetime: results own their memory (default allocator).
#ifndef PHIVAULT_FHIR_JSON_READER_H_
#define PHIVAULT_FHIR_JSON_READER_H_

#include <cstddef>
#include <string>
#include <string_view>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include "common/status.h"

namespace phivault::fhir {

struct ParseLimits {
  // Maximum nesting of objects and arrays; the top-level object counts as 1.
  size_t max_depth = 64;
  // Maximum body size in bytes; larger bodies fail with kTooLarge.
  size_t max_bytes = 16 << 20;
};

// Parses any JSON value with the strict rules above (UTF-8, duplicates, depth,
// size, single value) but without FHIR checks. Failures: kInvalidArgument for
// malformed input, kTooLarge for size, kResourceExhausted if memory runs out.
// The value is allocated from `sp` (default: the heap), e.g. an arena shared
// by many values that are freed together.
StatusOr<boost::json::value> ParseJson(std::string_view body, const ParseLimits& limits = {},
                                       boost::json::storage_ptr sp = {});

// ParseJson, then requires a top-level object with a known `resourceType`
// string and, if present, a string `id` satisfying IsValidId.
StatusOr<boost::json::object> ParseResource(std::string_view body, const ParseLimits& limits = {},
                                            boost::json::storage_ptr sp = {});

// FHIR R4 id: [A-Za-z0-9\-\.]{1,64}.
bool IsValidId(std::string_view id);

// Writes `v` as JSON: compact, or with `pretty` 2-space indented with one
// member per line (for _pretty=true). Strings are written as UTF-8 with the
// JSON escapes for '"', '\\' and control characters; non-finite doubles
// (which ParseJson never produces) are written as null.
// REQUIRES: nesting depth of `v` is bounded (values from ParseJson are).
std::string Serialize(const boost::json::value& v, bool pretty = false);
std::string Serialize(const boost::json::object& o, bool pretty = false);

}  // namespace phivault::fhir

#endif  // PHIVAULT_FHIR_JSON_READER_H_
