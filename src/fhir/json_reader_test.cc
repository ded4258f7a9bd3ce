#include "fhir/json_reader.h"

#include <cstdlib>
#include <limits>
#include <string>
#include <string_view>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <gtest/gtest.h>

#include "fhir/resource_types.h"

namespace phivault::fhir {
namespace {

namespace json = boost::json;

std::string Obs(std::string_view extra = "") {
  return std::string(R"({"resourceType":"Observation","id":"o1")") + std::string(extra) + "}";
}

void ExpectInvalid(std::string_view body, std::string_view why = "") {
  auto r = ParseResource(body);
  ASSERT_FALSE(r.ok()) << "accepted: " << why;
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << why << ": " << r.status().ToString();
}

TEST(ResourceTypes, KnowsR4TypesOnly) {
  EXPECT_TRUE(IsKnownResourceType("Patient"));
  EXPECT_TRUE(IsKnownResourceType("Observation"));
  EXPECT_TRUE(IsKnownResourceType("Bundle"));
  EXPECT_TRUE(IsKnownResourceType("Parameters"));
  EXPECT_TRUE(IsKnownResourceType("VisionPrescription"));
  EXPECT_FALSE(IsKnownResourceType("patient"));
  EXPECT_FALSE(IsKnownResourceType("Resource"));
  EXPECT_FALSE(IsKnownResourceType("DomainResource"));
  EXPECT_FALSE(IsKnownResourceType("Project"));  // Medplum extension in the schema
  EXPECT_FALSE(IsKnownResourceType("User"));
  EXPECT_FALSE(IsKnownResourceType(""));
  EXPECT_FALSE(IsKnownResourceType(std::string_view("Patient\0", 8)));
  auto all = AllResourceTypes();
  EXPECT_EQ(all.size(), 146u);
  for (size_t i = 1; i < all.size(); ++i) EXPECT_LT(all[i - 1], all[i]);
}

TEST(IsValidId, Rules) {
  EXPECT_TRUE(IsValidId("a"));
  EXPECT_TRUE(IsValidId("abc-DEF.123"));
  EXPECT_TRUE(IsValidId("08bcda9c-f8c8-3244-82d4-fc306a7a55d3"));
  EXPECT_TRUE(IsValidId(std::string(64, 'x')));
  EXPECT_FALSE(IsValidId(std::string(65, 'x')));
  EXPECT_FALSE(IsValidId(""));
  EXPECT_FALSE(IsValidId("a/b"));
  EXPECT_FALSE(IsValidId("a b"));
  EXPECT_FALSE(IsValidId("a_b"));
  EXPECT_FALSE(IsValidId("é"));
  EXPECT_FALSE(IsValidId(std::string_view("a\0b", 3)));
}

TEST(ParseResource, AcceptsMinimalResource) {
  auto r = ParseResource(R"({"resourceType":"Patient","id":"p1","active":true,"x":[1,2.5,null]})");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->at("resourceType").as_string(), "Patient");
  EXPECT_EQ(r->size(), 4u);
}

TEST(ParseResource, AcceptsNoIdAndWhitespace) {
  auto r = ParseResource(" \n\t{ \"resourceType\" : \"Observation\" } \r\n");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
}

TEST(ParseResource, RejectsMalformedJson) {
  ExpectInvalid("", "empty");
  ExpectInvalid("   ", "blank");
  ExpectInvalid("{", "truncated");
  ExpectInvalid(R"({"resourceType":"Patient",})", "trailing comma");
  ExpectInvalid(R"({"resourceType":"Patient"} {})", "two documents");
  ExpectInvalid(R"({"resourceType":"Patient"}x)", "trailing garbage");
  ExpectInvalid(R"({"resourceType":"Patient" /* c */})", "comment");
  ExpectInvalid(R"({'resourceType':'Patient'})", "single quotes");
  ExpectInvalid(R"({"resourceType":"Patient","a":NaN})", "NaN");
  ExpectInvalid(R"({"resourceType":"Patient","a":01})", "leading zero");
  ExpectInvalid("{\"resourceType\":\"Pat\nient\"}", "raw control char in string");
  ExpectInvalid(R"({"resourceType":"Patient","a":"\x"})", "bad escape");
}

TEST(ParseResource, RejectsNonObjectTopLevel) {
  ExpectInvalid("[]");
  ExpectInvalid("\"Patient\"");
  ExpectInvalid("null");
  ExpectInvalid("42");
}

TEST(ParseResource, RejectsMissingOrUnknownResourceType) {
  ExpectInvalid("{}");
  ExpectInvalid(R"({"id":"x"})");
  ExpectInvalid(R"({"resourceType":42})");
  ExpectInvalid(R"({"resourceType":null})");
  ExpectInvalid(R"({"resourceType":"Patientx"})");
  ExpectInvalid(R"({"resourceType":"patient"})");
  ExpectInvalid(R"({"resourceType":"Resource"})");
  ExpectInvalid(R"({"resourceType":"AccessPolicy"})");
}

TEST(ParseResource, RejectsInvalidId) {
  ExpectInvalid(R"({"resourceType":"Patient","id":""})");
  ExpectInvalid(R"({"resourceType":"Patient","id":"a/b"})");
  ExpectInvalid(R"({"resourceType":"Patient","id":7})");
  ExpectInvalid(R"({"resourceType":"Patient","id":null})");
  ExpectInvalid(R"({"resourceType":"Patient","id":")" + std::string(65, 'a') + "\"}");
}

TEST(ParseResource, RejectsDuplicateKeys) {
  ExpectInvalid(R"({"resourceType":"Patient","resourceType":"Patient"})", "top-level dup");
  ExpectInvalid(R"({"resourceType":"Patient","a":1,"a":2})", "dup member");
  ExpectInvalid(R"({"resourceType":"Patient","a":{"b":1,"c":{"d":1,"d":1}}})", "nested dup");
  ExpectInvalid(R"({"resourceType":"Patient","a":[{"b":1},{"b":1,"b":2}]})", "dup in array elem");
  // The escaped form of a key is the same key.
  ExpectInvalid(R"({"resourceType":"Patient","ab":1,"a\u0062":2})", "escaped dup");
  // Same key in sibling or nested objects is fine.
  auto ok = ParseResource(R"({"resourceType":"Patient","a":{"a":{"a":1}},"b":[{"a":1},{"a":2}]})");
  EXPECT_TRUE(ok.ok()) << ok.status().ToString();
}

TEST(ParseResource, DuplicateKeyAfterNestedObjectIsStillCaught) {
  ExpectInvalid(R"({"resourceType":"Patient","a":{"x":{"y":1}},"z":1,"a":2})");
}

TEST(ParseResource, RejectsInvalidUtf8) {
  ExpectInvalid(Obs(",\"a\":\"\xC0\xAF\""), "overlong 2-byte '/'");
  ExpectInvalid(Obs(",\"a\":\"\xE0\x80\xAF\""), "overlong 3-byte");
  ExpectInvalid(Obs(",\"a\":\"\xF0\x80\x80\xAF\""), "overlong 4-byte");
  ExpectInvalid(Obs(",\"a\":\"\xED\xA0\x80\""), "UTF-8 encoded surrogate");
  ExpectInvalid(Obs(",\"a\":\"\xF4\x90\x80\x80\""), "above U+10FFFF");
  ExpectInvalid(Obs(",\"a\":\"\xC3\""), "truncated sequence");
  ExpectInvalid(Obs(",\"a\":\"\x80\""), "lone continuation byte");
  ExpectInvalid(Obs(",\"a\":\"\xFF\""), "0xFF");
  ExpectInvalid(Obs(",\"\xC0\xAF\":1"), "invalid UTF-8 in a key");
}

TEST(ParseResource, RejectsLoneSurrogateEscapes) {
  ExpectInvalid(Obs(R"(,"a":"\ud800")"), "lone high surrogate");
  ExpectInvalid(Obs(R"(,"a":"\udc00")"), "lone low surrogate");
  ExpectInvalid(Obs(R"(,"a":"\ud800x")"), "high surrogate then text");
  ExpectInvalid(Obs(R"(,"a":"\ud800\u0041")"), "high surrogate then BMP");
  ExpectInvalid(Obs(R"(,"a":"\udc00\ud800")"), "reversed pair");
}

TEST(ParseResource, AcceptsValidUnicode) {
  auto r = ParseResource(Obs(R"(,"a":"\ud83d\ude00 caf\u00e9 )" "\xE2\x82\xAC \xF0\x9F\x98\x80\"" ));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->at("a").as_string(), "\xF0\x9F\x98\x80 caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80");
  auto nul = ParseResource(Obs(R"(,"a":"x\u0000y")"));
  ASSERT_TRUE(nul.ok());
  EXPECT_EQ(nul->at("a").as_string().size(), 3u);
}

std::string NestedArrays(size_t depth) {
  std::string s = R"({"resourceType":"Basic","a":)";
  for (size_t i = 1; i < depth; ++i) s += '[';
  for (size_t i = 1; i < depth; ++i) s += ']';
  return s + "}";
}

TEST(ParseResource, DepthLimit) {
  ParseLimits limits;
  limits.max_depth = 10;
  EXPECT_TRUE(ParseResource(NestedArrays(10), limits).ok());
  auto r = ParseResource(NestedArrays(11), limits);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("deeper"), std::string::npos);
  EXPECT_TRUE(ParseResource(NestedArrays(64)).ok());
  EXPECT_FALSE(ParseResource(NestedArrays(65)).ok());
  // Far too deep must fail cleanly, not overflow the stack.
  EXPECT_FALSE(ParseResource(std::string(1 << 20, '[')).ok());
}

TEST(ParseResource, SizeLimit) {
  ParseLimits limits;
  limits.max_bytes = 40;
  std::string body = R"({"resourceType":"Basic","id":"x"})";
  EXPECT_TRUE(ParseResource(body, limits).ok());
  body.insert(body.size() - 1, std::string(limits.max_bytes, ' '));
  auto r = ParseResource(body, limits);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kTooLarge);
}

TEST(ParseResource, ErrorsNeverEchoInput) {
  const std::string secret = "SECRETVALUE123";
  const std::string cases[] = {
      R"({"resourceType":"SECRETVALUE123"})",
      R"({"resourceType":"Patient","SECRETVALUE123":1,"SECRETVALUE123":2})",
      R"({"resourceType":"Patient","id":"SECRETVALUE123/"})",
      R"({"resourceType":"Patient","name":"SECRETVALUE123)",
      R"({"resourceType":"Patient","name":SECRETVALUE123})",
      "{\"resourceType\":\"Patient\",\"name\":\"SECRETVALUE123\xC0\xAF\"}",
      R"(["SECRETVALUE123"])",
  };
  for (const auto& c : cases) {
    auto r = ParseResource(c);
    ASSERT_FALSE(r.ok()) << c;
    EXPECT_EQ(r.status().message().find(secret), std::string::npos) << r.status().message();
  }
  auto known = ParseResource(R"({"resourceType":"Patient","id":"bad id"})");
  ASSERT_FALSE(known.ok());
  EXPECT_NE(known.status().message().find("Patient"), std::string::npos);
  EXPECT_EQ(known.status().message().find("bad id"), std::string::npos);
}

TEST(ParseJson, AcceptsAnyValue) {
  EXPECT_TRUE(ParseJson("[1,2]").ok());
  EXPECT_TRUE(ParseJson("\"x\"").ok());
  EXPECT_FALSE(ParseJson("[1,2]]").ok());
  EXPECT_FALSE(ParseJson(R"([{"a":1,"a":1}])").ok());
}

TEST(ParseJson, BigNumbers) {
  auto r = ParseJson("[9223372036854775807,18446744073709551615,-9223372036854775808,1.5]");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(Serialize(*r), "[9223372036854775807,18446744073709551615,-9223372036854775808,1.5]");
  auto big = ParseJson("[18446744073709551616]");
  ASSERT_TRUE(big.ok());
  EXPECT_TRUE(big->as_array()[0].is_double());
  for (const char* s : {"[1e400]", "[-1e400]", "[1.7976931348623159e308]"}) {
    auto inf = ParseJson(s);
    ASSERT_FALSE(inf.ok()) << s;
    EXPECT_EQ(inf.status().code(), StatusCode::kInvalidArgument);
  }
  // Underflow is not an error: tiny values become 0 or a denormal.
  EXPECT_TRUE(ParseJson("[1e-400, 4.9e-324]").ok());
}

TEST(ParseJson, DecimalsAreCorrectlyRounded) {
  // Values that need more than a naive multiply-by-power-of-ten.
  for (const char* s : {"0.1", "0.3", "2.2250738585072011e-308", "9007199254740993.0", "1.00000000000000011102230246251565404236316680908203125",
                        "7.2057594037927933e16", "3.0517578125e-5", "123456789012345678901234567890.0",
                        "0.000000000000000000000000000000000000001234567890123456789"}) {
    auto v = ParseJson(s);
    ASSERT_TRUE(v.ok()) << s;
    ASSERT_TRUE(v->is_double()) << s;
    EXPECT_EQ(v->get_double(), std::strtod(s, nullptr)) << s;
    auto back = ParseJson(Serialize(*v));
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(back->get_double(), v->get_double()) << s;
  }
}

TEST(Serialize, CompactRoundTrip) {
  const std::string body =
      R"({"resourceType":"Observation","id":"o1","valueQuantity":{"value":1.5,"unit":"mg"},)"
      R"("n":[1,-2,18446744073709551615,true,false,null],"s":"a\"b\\c\n\u0001\u00e9","e":{},"ea":[]})";
  auto r = ParseResource(body);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::string out = Serialize(*r);
  EXPECT_EQ(out,
            R"({"resourceType":"Observation","id":"o1","valueQuantity":{"value":1.5,"unit":"mg"},)"
            R"("n":[1,-2,18446744073709551615,true,false,null],"s":"a\"b\\c\n\u0001)"
            "\xC3\xA9"
            R"(","e":{},"ea":[]})");
  auto again = ParseResource(out);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *r);
}

TEST(Serialize, Pretty) {
  auto r = ParseResource(R"({"resourceType":"Patient","name":[{"given":["A","B"]}],"e":{},"a":[]})");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(Serialize(*r, true),
            "{\n"
            "  \"resourceType\": \"Patient\",\n"
            "  \"name\": [\n"
            "    {\n"
            "      \"given\": [\n"
            "        \"A\",\n"
            "        \"B\"\n"
            "      ]\n"
            "    }\n"
            "  ],\n"
            "  \"e\": {},\n"
            "  \"a\": []\n"
            "}");
  EXPECT_EQ(Serialize(json::value(json::object(*r)), true), Serialize(*r, true));
}

TEST(Serialize, Doubles) {
  EXPECT_EQ(Serialize(json::value(0.1)), "0.1");
  EXPECT_EQ(Serialize(json::value(100.0)), "100.0");
  EXPECT_EQ(Serialize(json::value(-0.0)), "-0.0");
  EXPECT_TRUE(ParseJson("1.0")->is_double());
  EXPECT_EQ(Serialize(*ParseJson("[1.0,1,1.50]")), "[1.0,1,1.5]");
  EXPECT_EQ(Serialize(json::value(-2.5e-7)), "-2.5e-07");
  EXPECT_EQ(Serialize(json::value(1e300)), "1e+300");
  EXPECT_EQ(Serialize(json::value(std::numeric_limits<double>::infinity())), "null");
  EXPECT_EQ(Serialize(json::value(std::numeric_limits<double>::quiet_NaN())), "null");
  for (const char* s : {"-2.5e-07", "1e+300", "0.1", "3.14159"}) {
    auto v = ParseJson(s);
    ASSERT_TRUE(v.ok()) << s;
  }
}

}  // namespace
}  // namespace phivault::fhir
