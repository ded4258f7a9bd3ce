// Timestamps as FHIR and HTTP write them.
//
// FormatInstant gives a FHIR `instant` in UTC with milliseconds
// ("2024-01-02T03:04:05.678Z", for meta.lastUpdated); FormatHttpDate gives an
// RFC 7231 IMF-fixdate ("Tue, 02 Jan 2024 03:04:05 GMT", for Last-Modified).
// Inputs are milliseconds since the Unix epoch; values before 0001-01-01 or
// after 9999-12-31T23:59:59.999Z are clamped to those bounds so the output
// always has four-digit years.
//
// Thread-safety: pure functions (no locale, no tz database, no static
// buffers); safe from any thread.
#ifndef PHIVAULT_FHIR_TIME_H_
#define PHIVAULT_FHIR_TIME_H_

#include <cstdint>
#include <string>

namespace phivault::fhir {

std::string FormatInstant(int64_t unix_ms);
std::string FormatHttpDate(int64_t unix_ms);
// Wall-clock time (system_clock) in milliseconds since the Unix epoch.
int64_t NowMillis();

}  // namespace phivault::fhir

#endif  // PHIVAULT_FHIR_TIME_H_
