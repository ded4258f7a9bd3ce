// Small, defensive readers for the FHIR values the policy engine looks at:
// references, dateTimes and Periods, plus kind-checked JSON member access.
//
// Every function accepts arbitrary (untrusted, possibly ill-typed) JSON and
// answers "absent" / nullopt instead of throwing or asserting: the stored
// resources were parsed strictly but are not schema-validated, so any element
// may have the wrong JSON kind.
//
// Thread-safety: pure functions. Lifetime: returned pointers point into the
// JSON value passed in and live as long as it does.
#ifndef PHIVAULT_POLICY_VALUES_H_
#define PHIVAULT_POLICY_VALUES_H_

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

namespace phivault::policy {

inline constexpr int64_t kMinTime = std::numeric_limits<int64_t>::min();
inline constexpr int64_t kMaxTime = std::numeric_limits<int64_t>::max();

// Member `key` of `o` if it exists and has the wanted kind, else nullptr / "".
const boost::json::object* GetObject(const boost::json::object& o, std::string_view key);
const boost::json::array* GetArray(const boost::json::object& o, std::string_view key);
std::string_view GetString(const boost::json::object& o, std::string_view key);

// "Type/id" for a literal reference to a known R4 type with a valid id:
// "Type/id", "Type/id/_history/v", or an absolute http(s) URL ending in one of
// those. Contained ("#x"), urn:, conditional ("Type?x") and logical
// references denote nothing we can compare and yield nullopt.
std::optional<std::string> NormalizeReference(std::string_view reference);

// NormalizeReference of a Reference datatype's `reference` member.
std::optional<std::string> ReferenceOf(const boost::json::value& reference_datatype);

// The type part of a normalized "Type/id".
std::string_view RefType(std::string_view normalized_ref);

// The closed interval [first_ms, last_ms] a FHIR date, dateTime or instant
// denotes: "2024" is the whole year, "2024-03-01" the whole UTC day,
// "2024-03-01T10:00:00+02:00" that second. Date-only values carry no zone in
// FHIR; we read them as UTC (a fixed, documented choice). nullopt if malformed.
struct TimeRange {
  int64_t first_ms = 0;
  int64_t last_ms = 0;
};
std::optional<TimeRange> ParseFhirDateTime(std::string_view text);

// A Period's bounds: from = start's first instant (kMinTime if absent), to =
// end's last instant (kMaxTime if absent). nullopt if the Period or one of its
// present members is malformed: callers decide which way that fails.
struct Bounds {
  int64_t from = kMinTime;
  int64_t to = kMaxTime;
  bool Contains(int64_t t) const { return from <= t && t <= to; }
};
std::optional<Bounds> ParsePeriod(const boost::json::value& period);

// a + b clamped to the int64 range (window arithmetic near kMaxTime).
int64_t SaturatingAdd(int64_t a, int64_t b);

}  // namespace phivault::policy

#endif  // PHIVAULT_POLICY_VALUES_H_
