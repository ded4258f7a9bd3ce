// Helpers shared by the policy tests (test-only; not part of phivault_policy).
#ifndef PHIVAULT_POLICY_TEST_UTIL_H_
#define PHIVAULT_POLICY_TEST_UTIL_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/object.hpp>
#include <gtest/gtest.h>

#include "fhir/compartment.h"
#include "fhir/json_reader.h"
#include "policy/engine.h"
#include "policy/values.h"

namespace phivault::policy::testing {

// 2024-06-01T00:00:00Z
inline constexpr int64_t kNow = 1717200000000;
inline constexpr int64_t kDayMs = 86400000;
inline constexpr int64_t kMinuteMs = 60000;

// Parses with the product's strict reader; a test typo fails loudly.
inline boost::json::object Res(std::string_view json) {
  auto r = fhir::ParseResource(json);
  EXPECT_TRUE(r.ok()) << r.status().ToString() << " in " << json;
  return r.ok() ? std::move(*r) : boost::json::object();
}

inline std::string TypeOf(const boost::json::object& r) { return std::string(GetString(r, "resourceType")); }
inline std::string IdOf(const boost::json::object& r) { return std::string(GetString(r, "id")); }

// Feeds a write to `idx` with the patient link the store would record.
template <typename Index>
void Write(Index& idx, const boost::json::object& r) {
  idx.OnWrite(TypeOf(r), IdOf(r), &r, fhir::PatientCompartment(r));
}
template <typename Index>
void Delete(Index& idx, std::string_view type, std::string_view id) {
  idx.OnWrite(type, id, nullptr, {});
}

inline std::vector<ScopeGrant> Scopes(std::initializer_list<std::string_view> texts) {
  std::vector<ScopeGrant> out;
  for (std::string_view t : texts) {
    auto g = ParseScopeGrant(t);
    EXPECT_TRUE(g.has_value()) << t;
    if (g) out.push_back(*g);
  }
  return out;
}

inline Principal MakePrincipal(Role role, std::string fhir_user, std::vector<ScopeGrant> scopes) {
  Principal p;
  p.subject = std::string(RoleName(role)) + "-account";
  p.role = role;
  p.fhir_user = std::move(fhir_user);
  p.scopes = std::move(scopes);
  return p;
}

// An access request for `r` (may be null for create-before-parse).
inline AccessRequest Req(Interaction i, const boost::json::object& r, int64_t now = kNow) {
  AccessRequest q;
  q.interaction = i;
  q.type = TypeOf(r);
  q.id = i == Interaction::kCreate ? "" : IdOf(r);
  q.patients = fhir::PatientCompartment(r);
  q.resource = &r;
  q.now_ms = now;
  return q;
}

}  // namespace phivault::policy::testing

#endif  // PHIVAULT_POLICY_TEST_UTIL_H_
