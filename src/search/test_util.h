// Helpers shared by the search tests (test-only; not part of phivault_search).
#ifndef PHIVAULT_SEARCH_TEST_UTIL_H_
#define PHIVAULT_SEARCH_TEST_UTIL_H_

#include <fstream>
#include <sstream>
#include <string>
#include <string_view>

#include <boost/json/object.hpp>

#include "fhir/json_reader.h"

namespace phivault::search::testing {

inline std::string ReadRepoFile(const std::string& rel) {
  std::ifstream in(std::string(PHIVAULT_SOURCE_DIR) + "/" + rel, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Parses a resource literal; an empty object on error (the test then fails
// on its first expectation).
inline boost::json::object Res(std::string_view json) {
  auto r = fhir::ParseResource(json);
  return r.ok() ? *r : boost::json::object();
}

// The first entry of the Synthea bundle with `type` for which `pred` holds.
template <typename Pred>
boost::json::object SyntheaResource(std::string_view type, Pred pred) {
  auto b = fhir::ParseJson(ReadRepoFile("src/fhir/testdata/synthea-patient-004.json"));
  if (!b.ok() || !b->is_object()) return {};
  auto* entries = b->get_object().if_contains("entry");
  if (!entries || !entries->is_array()) return {};
  for (const auto& e : entries->get_array()) {
    const auto* r = e.as_object().if_contains("resource");
    if (!r || !r->is_object()) continue;
    const auto& o = r->get_object();
    if (o.at("resourceType").as_string() == type && pred(o)) return o;
  }
  return {};
}

}  // namespace phivault::search::testing

#endif  // PHIVAULT_SEARCH_TEST_UTIL_H_
