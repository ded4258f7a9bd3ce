#include "fhir/instant.h"

#include <gtest/gtest.h>

#include "fhir/time.h"

namespace phivault::fhir {
namespace {

TEST(Instant, ParsesTheR4InstantFormat) {
  EXPECT_EQ(ParseInstantMillis("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(ParseInstantMillis("1970-01-01T00:00:01.5Z"), 1500);
  EXPECT_EQ(ParseInstantMillis("1970-01-01T01:00:00+01:00"), 0);
  EXPECT_EQ(ParseInstantMillis("1969-12-31T23:00:00-01:00"), 0);
  // 2000-03-01 is day 11017 after the epoch (a leap year's February has 29 days).
  EXPECT_EQ(ParseInstantMillis("2000-03-01T00:00:00Z"), 11017LL * 86400 * 1000);
  EXPECT_EQ(ParseInstantMillis("2000-02-29T12:00:00.123456Z"), (11016LL * 86400 + 12 * 3600) * 1000 + 123);
  int64_t now = NowMillis();
  EXPECT_EQ(ParseInstantMillis(FormatInstant(now)), now);
}

TEST(Instant, RefusesWhatIsNotAnInstant) {
  for (const char* bad : {"", "2020", "2020-01-01", "2020-01-01T00:00", "2020-01-01T00:00:00", "2020-01-01T24:00:00Z",
                          "2020-13-01T00:00:00Z", "2023-02-29T00:00:00Z", "2020-01-01T00:00:60Z",
                          "2020-01-01T00:00:00.Z", "2020-01-01T00:00:00+1:00", "2020-01-01T00:00:00+15:00",
                          "2020-01-01T00:00:00Zx", "2020-01-01 00:00:00Z", "2020-01-01T00:00:00z",
                          "20a0-01-01T00:00:00Z", "2020-01-01T00:00:00.1234567890Z"}) {
    EXPECT_FALSE(ParseInstantMillis(bad).has_value()) << bad;
  }
}

}  // namespace
}  // namespace phivault::fhir
