// Helpers shared by the fhir tests (test-only; not part of phivault_fhir).
#ifndef PHIVAULT_FHIR_TEST_UTIL_H_
#define PHIVAULT_FHIR_TEST_UTIL_H_

#include <fstream>
#include <sstream>
#include <string>

namespace phivault::fhir::testing {

inline std::string ReadRepoFile(const std::string& rel) {
  std::ifstream in(std::string(PHIVAULT_SOURCE_DIR) + "/" + rel, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace phivault::fhir::testing

#endif  // PHIVAULT_FHIR_TEST_UTIL_H_
