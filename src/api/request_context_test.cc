#include "api/request_context.h"

#include <gtest/gtest.h>

#include <set>

namespace phivault::api {
namespace {

TEST(ParseQueryTest, DecodesAndKeepsPlus) {
  auto q = ParseQuery("a=1&date=ge2020-01-01T00:00:00+01:00&name=J%C3%BCrgen&flag&&x=");
  ASSERT_TRUE(q.ok());
  ASSERT_EQ(q->size(), 5u);
  EXPECT_EQ(*FindParam(*q, "date"), "ge2020-01-01T00:00:00+01:00");
  EXPECT_EQ(*FindParam(*q, "name"), "J\xC3\xBCrgen");
  EXPECT_EQ(*FindParam(*q, "flag"), "");
  EXPECT_FALSE(ParseQuery("a=%zz").ok());
  EXPECT_FALSE(ParseQuery("a=%4").ok());
  EXPECT_FALSE(ParseQuery("a=%00").ok());
  EXPECT_FALSE(ParseQuery("a=%").ok());
}

TEST(IfMatchTest, AcceptsWeakAndStrongVersionTags) {
  EXPECT_EQ(*ParseIfMatch("W/\"3\""), 3);
  EXPECT_EQ(*ParseIfMatch("\"12\""), 12);
  EXPECT_FALSE(ParseIfMatch("3").ok());
  EXPECT_FALSE(ParseIfMatch("W/\"\"").ok());
  EXPECT_FALSE(ParseIfMatch("W/\"-1\"").ok());
  EXPECT_FALSE(ParseIfMatch("W/\"1x\"").ok());
  EXPECT_EQ(ETag(5), "W/\"5\"");
}

TEST(ContentTypeTest, OnlyJsonInUtf8) {
  http::HttpRequest r;
  EXPECT_EQ(CheckContentType(r).code(), StatusCode::kUnsupportedMedia);
  r.headers = {{"content-type", "application/fhir+json; charset=UTF-8"}};
  EXPECT_TRUE(CheckContentType(r).ok());
  r.headers = {{"content-type", "application/json"}};
  EXPECT_TRUE(CheckContentType(r).ok());
  r.headers = {{"content-type", "application/fhir+xml"}};
  EXPECT_EQ(CheckContentType(r).code(), StatusCode::kUnsupportedMedia);
  r.headers = {{"content-type", "application/fhir+json; charset=latin1"}};
  EXPECT_EQ(CheckContentType(r).code(), StatusCode::kUnsupportedMedia);
}

TEST(NegotiateTest, FormatAndAccept) {
  http::HttpRequest r;
  QueryParams p{{"_format", "application/fhir+xml"}};
  EXPECT_FALSE(NegotiateFormat(r, p).ok());
  p = {{"_format", "json"}, {"_pretty", "true"}};
  auto f = NegotiateFormat(r, p);
  ASSERT_TRUE(f.ok());
  EXPECT_TRUE(f->pretty);
  r.headers = {{"accept", "application/fhir+xml"}};
  EXPECT_FALSE(NegotiateFormat(r, {}).ok());
  r.headers = {{"accept", "text/html, */*;q=0.1"}};
  EXPECT_TRUE(NegotiateFormat(r, {}).ok());
}

TEST(ExistConditionTest, IdentifierAndId) {
  auto c = ParseExistCondition("identifier=http://x|123");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->identifier_system, "http://x");
  EXPECT_EQ(c->identifier_value, "123");
  auto any = ParseExistCondition("identifier=123");
  ASSERT_TRUE(any.ok());
  EXPECT_FALSE(any->identifier_system.has_value());
  EXPECT_EQ(ParseExistCondition("family=smith").status().code(), StatusCode::kUnsupported);
  EXPECT_FALSE(ParseExistCondition("_id=bad$").ok());
  EXPECT_FALSE(ParseExistCondition("").ok());
}

TEST(NewIdTest, UuidV4Shape) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    std::string id = NewId();
    ASSERT_EQ(id.size(), 36u);
    EXPECT_EQ(id[14], '4');
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 1000u);
}

}  // namespace
}  // namespace phivault::api
