#include "policy/values.h"

#include <gtest/gtest.h>

#include "policy/principal.h"
#include "policy/test_util.h"

namespace phivault::policy {
namespace {

TEST(NormalizeReference, AcceptsLiteralForms) {
  EXPECT_EQ(NormalizeReference("Practitioner/a1"), "Practitioner/a1");
  EXPECT_EQ(NormalizeReference("Practitioner/a1/_history/3"), "Practitioner/a1");
  EXPECT_EQ(NormalizeReference("https://ehr.example/fhir/r4/Patient/p-1"), "Patient/p-1");
  EXPECT_EQ(NormalizeReference("http://x/Patient/p/_history/2"), "Patient/p");
}

TEST(NormalizeReference, RejectsWhatIsNotALiteralReference) {
  for (const char* bad : {"", "#contained", "urn:uuid:1234", "Patient?identifier=x", "Patient", "Patient/",
                          "Unknown/1", "Patient/bad id", "foo/Patient/1", "https://host", "https://host/Patient"}) {
    EXPECT_FALSE(NormalizeReference(bad).has_value()) << bad;
  }
  EXPECT_FALSE(ReferenceOf(boost::json::value(42)).has_value());
  EXPECT_FALSE(ReferenceOf(boost::json::value{{"reference", 1}}).has_value());
}

TEST(ParseFhirDateTime, RangesFollowPrecision) {
  auto year = ParseFhirDateTime("2024");
  ASSERT_TRUE(year);
  EXPECT_EQ(year->first_ms, 1704067200000);  // 2024-01-01T00:00:00Z
  EXPECT_EQ(year->last_ms, 1735689600000 - 1);
  auto month = ParseFhirDateTime("2024-02");
  ASSERT_TRUE(month);
  EXPECT_EQ(month->last_ms - month->first_ms + 1, 29 * testing::kDayMs);  // leap year
  auto day = ParseFhirDateTime("2024-06-01");
  ASSERT_TRUE(day);
  EXPECT_EQ(day->first_ms, testing::kNow);
  EXPECT_EQ(day->last_ms, testing::kNow + testing::kDayMs - 1);
  auto sec = ParseFhirDateTime("2024-06-01T02:00:00+02:00");
  ASSERT_TRUE(sec);
  EXPECT_EQ(sec->first_ms, testing::kNow);
  EXPECT_EQ(sec->last_ms, testing::kNow + 999);
  auto ms = ParseFhirDateTime("2024-06-01T00:00:00.250Z");
  ASSERT_TRUE(ms);
  EXPECT_EQ(ms->first_ms, testing::kNow + 250);
  EXPECT_EQ(ms->last_ms, testing::kNow + 250);
}

TEST(ParseFhirDateTime, RejectsMalformed) {
  for (const char* bad : {"", "24", "2024-13", "2023-02-29", "2024-06-01T10:00", "2024-06-01T10:00:00",
                          "2024-06-01T25:00:00Z", "2024-06-01T10:00:00+15:00", "2024-06-01T10:00:00.Z",
                          "2024-06-01T10:00:00Zjunk", "0000", "2024-06-01 10:00:00Z"}) {
    EXPECT_FALSE(ParseFhirDateTime(bad).has_value()) << bad;
  }
}

TEST(ParsePeriod, BoundsAndMalformed) {
  auto b = ParsePeriod(boost::json::value{{"start", "2024-01-01"}, {"end", "2024-01-31"}});
  ASSERT_TRUE(b);
  EXPECT_TRUE(b->Contains(ParseFhirDateTime("2024-01-31T23:59:59Z")->first_ms));
  EXPECT_FALSE(b->Contains(ParseFhirDateTime("2024-02-01")->first_ms));
  auto open = ParsePeriod(boost::json::object{});
  ASSERT_TRUE(open);
  EXPECT_TRUE(open->Contains(kMinTime) && open->Contains(kMaxTime));
  EXPECT_FALSE(ParsePeriod(boost::json::value{{"end", 5}}).has_value());
  EXPECT_FALSE(ParsePeriod(boost::json::value("2024")).has_value());
  EXPECT_EQ(SaturatingAdd(kMaxTime - 1, 10), kMaxTime);
}

TEST(Principal, RoleNamesRoundTrip) {
  for (Role r : {Role::kClinician, Role::kRegistration, Role::kPrivacyOfficer, Role::kSecurityAdmin, Role::kDevice,
                 Role::kSystem, Role::kPatient}) {
    EXPECT_EQ(ParseRole(RoleName(r)), r);
  }
  EXPECT_EQ(ParseRole("privacy-officer"), Role::kPrivacyOfficer);
  EXPECT_FALSE(ParseRole("Clinician").has_value());
  EXPECT_FALSE(ParseRole("admin").has_value());
}

TEST(Principal, ParseScopeGrant) {
  auto g = ParseScopeGrant("user/Observation.rs");
  ASSERT_TRUE(g);
  EXPECT_EQ(g->context, ScopeGrant::kUser);
  EXPECT_TRUE(g->r && g->s && !g->c && !g->u && !g->d);
  auto v1 = ParseScopeGrant("patient/*.read");
  ASSERT_TRUE(v1);
  EXPECT_TRUE(v1->r && v1->s && !v1->c);
  auto w = ParseScopeGrant("system/Patient.write");
  ASSERT_TRUE(w);
  EXPECT_TRUE(w->c && w->u && w->d && !w->r);
  for (const char* bad : {"openid", "user/Observation.sr", "user/Observation.rs?category=x", "user/Nope.r",
                          "admin/Patient.r", "user/Patient.", "user/Patient.rr"}) {
    EXPECT_FALSE(ParseScopeGrant(bad).has_value()) << bad;
  }
}

TEST(Principal, AuthorId) {
  Principal p;
  p.subject = "s1";
  EXPECT_EQ(AuthorId(p), "subject:s1");
  p.fhir_user = "https://h/fhir/Device/d1";
  EXPECT_EQ(AuthorId(p), "Device/d1");
}

}  // namespace
}  // namespace phivault::policy
