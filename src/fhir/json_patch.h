// JSON Patch (RFC 6902) over JSON Pointer (RFC 6901), applied to Boost.JSON
// values: the engine behind FHIR `PATCH` with application/json-patch+json.
//
// ApplyJsonPatch takes an untrusted patch document and a document, and
// either returns the patched copy or an error; the input document is never
// left half-patched (RFC 6902 section 5: a patch applies completely or not at
// all). All six operations are supported: add, remove, replace, move, copy
// and test. Pointers follow RFC 6901 (`~0` is '~', `~1` is '/', array indexes
// without leading zeros, '-' meaning "after the last element", only where
// `add` can insert). `test` compares numbers by value (1 equals 1.0) and
// objects regardless of member order (RFC 6902 section 4.6).
//
// Untrusted input never crashes: the number of operations, the depth the
// document may reach and the total size it may grow to (a `copy` doubling a
// subtree a thousand times) are bounded, as is the total work, so a small
// patch cannot make the server copy gigabytes. Error messages name the
// operation by position and the rule that failed, never the pointer or a
// value (they may contain health data).
//
// Errors: kInvalidArgument when the patch document itself is malformed (not
// an array, unknown op, missing member, bad pointer syntax, too many
// operations); kConflict when a well-formed operation cannot be applied to
// this document (missing target, failed test, index out of range, move into
// its own child, a limit reached while applying). FHIR answers the first
// with 400 and the second with 422.
//
// Thread-safety: pure functions; distinct values may be used on different
// threads. Lifetime: results own their memory.
#ifndef PHIVAULT_FHIR_JSON_PATCH_H_
#define PHIVAULT_FHIR_JSON_PATCH_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/value.hpp>

#include "common/status.h"

namespace phivault::fhir {

struct JsonPatchLimits {
  size_t max_operations = 1000;
  // Nesting the patched document may reach (the root counts as 1); matches
  // ParseLimits::max_depth so the result can be parsed back.
  size_t max_depth = 64;
  // Approximate bytes the patched document may occupy (strings, keys and a
  // fixed cost per node).
  size_t max_document_bytes = 32u << 20;
  // Approximate bytes all operations together may copy or compare.
  size_t max_work_bytes = 256u << 20;
};

// Splits an RFC 6901 pointer into unescaped reference tokens ("" -> none).
// kInvalidArgument if it does not start with '/', has a '~' not followed
// by '0' or '1', or has more than `max_tokens` tokens (checked before any
// token is built: a pointer of millions of '/' must not cost a string each).
StatusOr<std::vector<std::string>> ParseJsonPointer(std::string_view pointer, size_t max_tokens = SIZE_MAX);

// The value `pointer` designates in `doc`, or nullptr if there is none.
const boost::json::value* ResolveJsonPointer(const boost::json::value& doc, const std::vector<std::string>& tokens);

// RFC 6902 equality: numbers by value, objects regardless of member order.
bool JsonEqual(const boost::json::value& a, const boost::json::value& b);

// Applies `patch` (a JSON array of operation objects) to a copy of `doc`.
StatusOr<boost::json::value> ApplyJsonPatch(const boost::json::value& patch, const boost::json::value& doc,
                                            const JsonPatchLimits& limits = {});

}  // namespace phivault::fhir

#endif  // PHIVAULT_FHIR_JSON_PATCH_H_
