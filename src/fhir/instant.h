// Parsing of the FHIR `instant` type (e.g. the _since parameter):
// YYYY-MM-DDThh:mm:ss[.fraction](Z|+hh:mm|-hh:mm), as the R4 datatype
// definition requires: seconds and a zone are mandatory. Fractions beyond
// milliseconds are truncated. A leap second (60) is refused.
//
// Thread-safety: pure function. Lifetime: nothing retained.
#ifndef PHIVAULT_FHIR_INSTANT_H_
#define PHIVAULT_FHIR_INSTANT_H_

#include <cstdint>
#include <optional>
#include <string_view>

namespace phivault::fhir {

// Milliseconds since the Unix epoch (UTC), or nullopt for anything that is
// not a valid instant (including impossible dates such as 2023-02-29).
std::optional<int64_t> ParseInstantMillis(std::string_view text);

}  // namespace phivault::fhir

#endif  // PHIVAULT_FHIR_INSTANT_H_
