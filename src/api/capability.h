// The CapabilityStatement served at /fhir/metadata. It lists exactly what
// this build implements, so clients never discover a missing feature by
// trial and error.
#ifndef PHIVAULT_API_CAPABILITY_H_
#define PHIVAULT_API_CAPABILITY_H_

#include <string>

namespace phivault::api {

inline constexpr const char* kSoftwareVersion = "0.1.0";

std::string BuildCapabilityStatement(const std::string& base_url);

}  // namespace phivault::api

#endif  // PHIVAULT_API_CAPABILITY_H_
