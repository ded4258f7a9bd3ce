#include "auth/scopes.h"

#include <gtest/gtest.h>

namespace phivault::auth {
namespace {

constexpr uint8_t C = static_cast<uint8_t>(Interaction::kCreate);
constexpr uint8_t R = static_cast<uint8_t>(Interaction::kRead);
constexpr uint8_t U = static_cast<uint8_t>(Interaction::kUpdate);
constexpr uint8_t D = static_cast<uint8_t>(Interaction::kDelete);
constexpr uint8_t S = static_cast<uint8_t>(Interaction::kSearch);

struct ParseCase {
  const char* text;
  bool valid;
  ScopeContext context;
  const char* type;
  uint8_t bits;
  bool v1;
};

TEST(Scopes, ParseTable) {
  const ParseCase cases[] = {
      {"user/Observation.rs", true, ScopeContext::kUser, "Observation", R | S, false},
      {"patient/*.r", true, ScopeContext::kPatient, "*", R, false},
      {"system/Patient.c", true, ScopeContext::kSystem, "Patient", C, false},
      {"user/Encounter.cruds", true, ScopeContext::kUser, "Encounter", C | R | U | D | S, false},
      {"patient/Observation.cud", true, ScopeContext::kPatient, "Observation", C | U | D, false},
      {"user/*.read", true, ScopeContext::kUser, "*", R | S, true},
      {"patient/Observation.write", true, ScopeContext::kPatient, "Observation", C | U | D, true},
      {"system/*.*", true, ScopeContext::kSystem, "*", C | R | U | D | S, true},
      // Invalid
      {"user/Observation.sr", false, {}, "", 0, false},     // out of order
      {"user/Observation.rr", false, {}, "", 0, false},     // duplicate
      {"user/Observation.", false, {}, "", 0, false},       // empty permissions
      {"user/Observation.x", false, {}, "", 0, false},
      {"user/Observation.READ", false, {}, "", 0, false},
      {"admin/Observation.r", false, {}, "", 0, false},     // unknown context
      {"user/Foo.r", false, {}, "", 0, false},              // unknown resource type
      {"user/observation.r", false, {}, "", 0, false},      // case matters
      {"user/Observation", false, {}, "", 0, false},
      {"Observation.r", false, {}, "", 0, false},
      {"user//Observation.r", false, {}, "", 0, false},
      {"user/Observation.read?category=x", false, {}, "", 0, false},  // v1 has no queries
      {"user/Observation.rs?", false, {}, "", 0, false},
      {"user/Observation.rs?category", false, {}, "", 0, false},
      {"user/Observation.rs?=x", false, {}, "", 0, false},
      {"user/Observation.rs?a=b&", false, {}, "", 0, false},
      {"openid", false, {}, "", 0, false},
      {"", false, {}, "", 0, false},
  };
  for (const auto& c : cases) {
    auto s = ParseScope(c.text);
    ASSERT_EQ(s.has_value(), c.valid) << c.text;
    if (!s) continue;
    EXPECT_EQ(s->context, c.context) << c.text;
    EXPECT_EQ(s->resource_type, c.type) << c.text;
    EXPECT_EQ(s->interactions, c.bits) << c.text;
    EXPECT_EQ(s->v1, c.v1) << c.text;
    EXPECT_EQ(s->text, c.text);
    EXPECT_FALSE(s->Restricted());
  }
}

TEST(Scopes, QueryRestrictions) {
  auto s = ParseScope("patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory");
  ASSERT_TRUE(s);
  ASSERT_EQ(s->query.size(), 1u);
  EXPECT_EQ(s->query[0].first, "category");
  EXPECT_EQ(s->query[0].second, "http://terminology.hl7.org/CodeSystem/observation-category|laboratory");
  auto two = ParseScope("user/Condition.rs?category=problem-list-item&clinical-status=active");
  ASSERT_TRUE(two);
  EXPECT_EQ(two->query.size(), 2u);
  EXPECT_TRUE(two->Restricted());
}

TEST(Scopes, ParseScopesSplitsAndCountsUnknown) {
  size_t ignored = 99;
  auto v = ParseScopes("  openid fhirUser launch launch/patient offline_access user/Patient.r  bogus patient/Foo.r ",
                       &ignored);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].text, "user/Patient.r");
  EXPECT_EQ(ignored, 2u);
  EXPECT_TRUE(ParseScopes("").empty());
  EXPECT_TRUE(IsNonDataScope("launch/encounter"));
  EXPECT_FALSE(IsNonDataScope("launch/"));
}

struct PermitCase {
  const char* scopes;
  ScopeContext context;
  const char* type;
  Interaction interaction;
  bool permitted;
};

TEST(Scopes, PermitsTable) {
  using I = Interaction;
  using X = ScopeContext;
  const PermitCase cases[] = {
      {"user/Observation.rs", X::kUser, "Observation", I::kRead, true},
      {"user/Observation.rs", X::kUser, "Observation", I::kSearch, true},
      {"user/Observation.rs", X::kUser, "Observation", I::kCreate, false},
      {"user/Observation.rs", X::kPatient, "Observation", I::kRead, false},  // context must match
      {"user/Observation.rs", X::kUser, "Patient", I::kRead, false},
      {"patient/*.r", X::kPatient, "Condition", I::kRead, true},
      {"patient/*.r", X::kPatient, "Condition", I::kSearch, false},
      {"system/Patient.c", X::kSystem, "Patient", I::kCreate, true},
      {"system/Patient.c", X::kSystem, "Patient", I::kUpdate, false},
      // v1 mapping: read -> r+s, write -> c+u+d
      {"user/*.read", X::kUser, "Encounter", I::kSearch, true},
      {"user/*.read", X::kUser, "Encounter", I::kUpdate, false},
      {"user/Observation.write", X::kUser, "Observation", I::kCreate, true},
      {"user/Observation.write", X::kUser, "Observation", I::kDelete, true},
      {"user/Observation.write", X::kUser, "Observation", I::kRead, false},
      {"user/*.*", X::kUser, "Patient", I::kDelete, true},
      // Several scopes combine.
      {"user/Patient.r user/Patient.u", X::kUser, "Patient", I::kUpdate, true},
      // Restricted scopes never permit through Permits().
      {"patient/Observation.rs?category=laboratory", X::kPatient, "Observation", I::kRead, false},
      {"openid fhirUser offline_access", X::kUser, "Patient", I::kRead, false},
      {"", X::kUser, "Patient", I::kRead, false},
  };
  for (const auto& c : cases) {
    auto scopes = ParseScopes(c.scopes);
    EXPECT_EQ(Permits(scopes, c.context, c.type, c.interaction), c.permitted)
        << c.scopes << " " << c.type << " " << static_cast<int>(c.interaction);
  }
  auto all = ParseScopes("user/*.cruds");
  EXPECT_FALSE(Permits(all, ScopeContext::kUser, "*", Interaction::kRead));
  EXPECT_FALSE(Permits(all, ScopeContext::kUser, "", Interaction::kRead));
}

TEST(Scopes, RestrictedGrants) {
  auto scopes = ParseScopes(
      "patient/Observation.rs?category=laboratory patient/Observation.rs?category=vital-signs patient/Condition.rs");
  auto g = RestrictedGrants(scopes, ScopeContext::kPatient, "Observation", Interaction::kSearch);
  ASSERT_EQ(g.size(), 2u);
  EXPECT_EQ(g[0][0].second, "laboratory");
  EXPECT_EQ(g[1][0].second, "vital-signs");
  EXPECT_TRUE(RestrictedGrants(scopes, ScopeContext::kPatient, "Observation", Interaction::kCreate).empty());
  EXPECT_TRUE(RestrictedGrants(scopes, ScopeContext::kPatient, "Condition", Interaction::kRead).empty());
}

}  // namespace
}  // namespace phivault::auth
