#include "fhir/time.h"

#include <gtest/gtest.h>

namespace phivault::fhir {
namespace {

TEST(Time, FormatInstant) {
  EXPECT_EQ(FormatInstant(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(FormatInstant(1704164645678), "2024-01-02T03:04:05.678Z");
  EXPECT_EQ(FormatInstant(951782400000), "2000-02-29T00:00:00.000Z");
  EXPECT_EQ(FormatInstant(4107542399999), "2100-02-28T23:59:59.999Z");
  EXPECT_EQ(FormatInstant(-1), "1969-12-31T23:59:59.999Z");
  EXPECT_EQ(FormatInstant(-86400000), "1969-12-31T00:00:00.000Z");
  EXPECT_EQ(FormatInstant(-2208988800000), "1900-01-01T00:00:00.000Z");
  EXPECT_EQ(FormatInstant(-62135596800000), "0001-01-01T00:00:00.000Z");
  EXPECT_EQ(FormatInstant(253402300799999), "9999-12-31T23:59:59.999Z");
  EXPECT_EQ(FormatInstant(INT64_MIN), "0001-01-01T00:00:00.000Z");
  EXPECT_EQ(FormatInstant(INT64_MAX), "9999-12-31T23:59:59.999Z");
}

TEST(Time, FormatHttpDate) {
  EXPECT_EQ(FormatHttpDate(784111777000), "Sun, 06 Nov 1994 08:49:37 GMT");  // RFC 7231 example
  EXPECT_EQ(FormatHttpDate(0), "Thu, 01 Jan 1970 00:00:00 GMT");
  EXPECT_EQ(FormatHttpDate(1704164645678), "Tue, 02 Jan 2024 03:04:05 GMT");
  EXPECT_EQ(FormatHttpDate(-1), "Wed, 31 Dec 1969 23:59:59 GMT");
  EXPECT_EQ(FormatHttpDate(951782400000), "Tue, 29 Feb 2000 00:00:00 GMT");
  EXPECT_EQ(FormatHttpDate(INT64_MIN), "Mon, 01 Jan 0001 00:00:00 GMT");
  EXPECT_EQ(FormatHttpDate(INT64_MAX), "Fri, 31 Dec 9999 23:59:59 GMT");
}

TEST(Time, NowIsPlausible) {
  int64_t now = NowMillis();
  EXPECT_GT(now, 1700000000000);  // after Nov 2023
  EXPECT_LT(now, 4102444800000);  // before 2100
  EXPECT_LE(now, NowMillis());
}

}  // namespace
}  // namespace phivault::fhir
