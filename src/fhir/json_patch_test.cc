#include "fhir/json_patch.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "fhir/json_reader.h"

namespace phivault::fhir {
namespace {

namespace json = boost::json;

json::value J(std::string_view text) {
  auto v = ParseJson(text);
  EXPECT_TRUE(v.ok()) << v.status().ToString() << " in " << text;
  return v.ok() ? *v : json::value();
}

// Applies and expects success with exactly `expected`.
void ExpectPatched(std::string_view doc, std::string_view patch, std::string_view expected) {
  auto r = ApplyJsonPatch(J(patch), J(doc));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(JsonEqual(*r, J(expected))) << Serialize(*r);
}

StatusCode PatchError(std::string_view doc, std::string_view patch, const JsonPatchLimits& limits = {}) {
  auto r = ApplyJsonPatch(J(patch), J(doc), limits);
  EXPECT_FALSE(r.ok()) << Serialize(*r);
  return r.ok() ? StatusCode::kOk : r.status().code();
}

// RFC 6902 Appendix A, each example with the document, patch and result it gives.
TEST(JsonPatchRfc6902, A1AddingAnObjectMember) {
  ExpectPatched(R"({"foo":"bar"})", R"([{"op":"add","path":"/baz","value":"qux"}])", R"({"baz":"qux","foo":"bar"})");
}
TEST(JsonPatchRfc6902, A2AddingAnArrayElement) {
  ExpectPatched(R"({"foo":["bar","baz"]})", R"([{"op":"add","path":"/foo/1","value":"qux"}])",
                R"({"foo":["bar","qux","baz"]})");
}
TEST(JsonPatchRfc6902, A3RemovingAnObjectMember) {
  ExpectPatched(R"({"baz":"qux","foo":"bar"})", R"([{"op":"remove","path":"/baz"}])", R"({"foo":"bar"})");
}
TEST(JsonPatchRfc6902, A4RemovingAnArrayElement) {
  ExpectPatched(R"({"foo":["bar","qux","baz"]})", R"([{"op":"remove","path":"/foo/1"}])", R"({"foo":["bar","baz"]})");
}
TEST(JsonPatchRfc6902, A5ReplacingAValue) {
  ExpectPatched(R"({"baz":"qux","foo":"bar"})", R"([{"op":"replace","path":"/baz","value":"boo"}])",
                R"({"baz":"boo","foo":"bar"})");
}
TEST(JsonPatchRfc6902, A6MovingAValue) {
  ExpectPatched(R"({"foo":{"bar":"baz","waldo":"fred"},"qux":{"corge":"grault"}})",
                R"([{"op":"move","from":"/foo/waldo","path":"/qux/thud"}])",
                R"({"foo":{"bar":"baz"},"qux":{"corge":"grault","thud":"fred"}})");
}
TEST(JsonPatchRfc6902, A7MovingAnArrayElement) {
  ExpectPatched(R"({"foo":["all","grass","cows","eat"]})", R"([{"op":"move","from":"/foo/1","path":"/foo/3"}])",
                R"({"foo":["all","cows","eat","grass"]})");
}
TEST(JsonPatchRfc6902, A8TestingAValueSuccess) {
  ExpectPatched(R"({"baz":"qux","foo":["a",2,"c"]})",
                R"([{"op":"test","path":"/baz","value":"qux"},{"op":"test","path":"/foo/1","value":2}])",
                R"({"baz":"qux","foo":["a",2,"c"]})");
}
TEST(JsonPatchRfc6902, A9TestingAValueError) {
  EXPECT_EQ(PatchError(R"({"baz":"qux"})", R"([{"op":"test","path":"/baz","value":"bar"}])"), StatusCode::kConflict);
}
TEST(JsonPatchRfc6902, A10AddingANestedMemberObject) {
  ExpectPatched(R"({"foo":"bar"})", R"([{"op":"add","path":"/child","value":{"grandchild":{}}}])",
                R"({"foo":"bar","child":{"grandchild":{}}})");
}
TEST(JsonPatchRfc6902, A11IgnoringUnrecognizedElements) {
  ExpectPatched(R"({"foo":"bar"})", R"([{"op":"add","path":"/baz","value":"qux","xyz":123}])",
                R"({"foo":"bar","baz":"qux"})");
}
TEST(JsonPatchRfc6902, A12AddingToANonexistentTarget) {
  EXPECT_EQ(PatchError(R"({"foo":"bar"})", R"([{"op":"add","path":"/baz/bat","value":"qux"}])"),
            StatusCode::kConflict);
}
TEST(JsonPatchRfc6902, A13InvalidPatchDocumentWithTwoOps) {
  // The document repeats "op"; the strict reader refuses duplicate keys, so
  // such a patch never reaches ApplyJsonPatch.
  EXPECT_EQ(ParseJson(R"([{"op":"add","path":"/baz","value":"qux","op":"remove"}])").status().code(),
            StatusCode::kInvalidArgument);
}
TEST(JsonPatchRfc6902, A14EscapeOrdering) {
  ExpectPatched(R"({"/":9,"~1":10})", R"([{"op":"test","path":"/~01","value":10}])", R"({"/":9,"~1":10})");
}
TEST(JsonPatchRfc6902, A15ComparingStringsAndNumbers) {
  EXPECT_EQ(PatchError(R"({"/":9,"~1":10})", R"([{"op":"test","path":"/~01","value":"10"}])"),
            StatusCode::kConflict);
}
TEST(JsonPatchRfc6902, A16AddingAnArrayValue) {
  ExpectPatched(R"({"foo":["bar"]})", R"([{"op":"add","path":"/foo/-","value":["abc","def"]}])",
                R"({"foo":["bar",["abc","def"]]})");
}

// RFC 6901 section 5: every pointer of the example and the value it designates.
TEST(JsonPointerRfc6901, Section5Examples) {
  json::value doc = J(R"({"foo":["bar","baz"],"":0,"a/b":1,"c%d":2,"e^f":3,"g|h":4,"i\\j":5,"k\"l":6," ":7,"m~n":8})");
  const std::pair<std::string_view, std::string_view> cases[] = {
      {"", ""},         {"/foo", R"(["bar","baz"])"}, {"/foo/0", R"("bar")"}, {"/", "0"},     {"/a~1b", "1"},
      {"/c%d", "2"},    {"/e^f", "3"},                {"/g|h", "4"},          {"/i\\j", "5"}, {"/k\"l", "6"},
      {"/ ", "7"},      {"/m~0n", "8"}};
  for (const auto& [pointer, expected] : cases) {
    auto tokens = ParseJsonPointer(pointer);
    ASSERT_TRUE(tokens.ok()) << pointer;
    const json::value* got = ResolveJsonPointer(doc, *tokens);
    ASSERT_NE(got, nullptr) << pointer;
    if (expected.empty()) {
      EXPECT_EQ(got, &doc);
    } else {
      EXPECT_TRUE(JsonEqual(*got, J(expected))) << pointer;
    }
  }
}

TEST(JsonPointer, SyntaxAndIndexRules) {
  EXPECT_FALSE(ParseJsonPointer("foo").ok());
  EXPECT_FALSE(ParseJsonPointer("/a~2b").ok());
  EXPECT_FALSE(ParseJsonPointer("/a~").ok());
  auto t = ParseJsonPointer("/a//b/");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(*t, (std::vector<std::string>{"a", "", "b", ""}));
  EXPECT_TRUE(ParseJsonPointer("/a/b", 2).ok());
  EXPECT_FALSE(ParseJsonPointer("/a/b/c", 2).ok()) << "more tokens than allowed";
  EXPECT_TRUE(ParseJsonPointer("/a~1b/c", 2).ok()) << "an escaped '/' is not a separator";
  json::value doc = J(R"({"a":[10,11]})");
  EXPECT_NE(ResolveJsonPointer(doc, *ParseJsonPointer("/a/1")), nullptr);
  EXPECT_EQ(ResolveJsonPointer(doc, *ParseJsonPointer("/a/01")), nullptr) << "leading zeros are not indexes";
  EXPECT_EQ(ResolveJsonPointer(doc, *ParseJsonPointer("/a/-")), nullptr) << "'-' designates no existing element";
  EXPECT_EQ(ResolveJsonPointer(doc, *ParseJsonPointer("/a/2")), nullptr);
  EXPECT_EQ(ResolveJsonPointer(doc, *ParseJsonPointer("/a/1/x")), nullptr);
}

TEST(JsonPatch, EqualityFollowsRfc6902) {
  EXPECT_TRUE(JsonEqual(J("1"), J("1.0")));
  EXPECT_TRUE(JsonEqual(J(R"({"a":1,"b":[true,null]})"), J(R"({"b":[true,null],"a":1})")));
  EXPECT_FALSE(JsonEqual(J("[1,2]"), J("[2,1]")));
  EXPECT_FALSE(JsonEqual(J("-1"), J("18446744073709551615")));
  EXPECT_TRUE(JsonEqual(J("5"), J("5")));
  EXPECT_FALSE(JsonEqual(J("null"), J("false")));
  EXPECT_FALSE(JsonEqual(J(R"({"a":1})"), J(R"({"b":1})")));
}

TEST(JsonPatch, MalformedPatchDocumentsAreInvalidArgument) {
  const char* doc = R"({"a":1})";
  for (const char* patch : {R"({"op":"add"})", R"([1])", R"([{"path":"/a"}])", R"([{"op":"frobnicate","path":"/a"}])",
                            R"([{"op":"add","path":"/b"}])", R"([{"op":"add","path":"b","value":1}])",
                            R"([{"op":"move","path":"/b"}])", R"([{"op":"copy","from":"x","path":"/b"}])",
                            R"([{"op":"remove","path":7}])"}) {
    EXPECT_EQ(PatchError(doc, patch), StatusCode::kInvalidArgument) << patch;
  }
  JsonPatchLimits few;
  few.max_operations = 2;
  EXPECT_EQ(PatchError(doc, R"([{"op":"test","path":"/a","value":1},{"op":"test","path":"/a","value":1},
                              {"op":"test","path":"/a","value":1}])",
                       few),
            StatusCode::kInvalidArgument);
  // A path deeper than the document may nest is refused as it is read: a
  // pointer of a million '/' used to become a million strings, for every
  // operation, before any was applied.
  JsonPatchLimits shallow;
  shallow.max_depth = 8;
  const std::string deep(9, '/');
  EXPECT_EQ(PatchError(doc, R"([{"op":"test","path":")" + deep + R"(","value":1}])", shallow),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(PatchError(doc, R"([{"op":"copy","from":")" + deep + R"(","path":"/b"}])", shallow),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(PatchError(doc, R"([{"op":"test","path":")" + std::string(8, '/') + R"(","value":1}])", shallow),
            StatusCode::kConflict)
      << "within the depth, a missing target is a conflict as before";
}

TEST(JsonPatch, InapplicableOperationsAreConflictsAndChangeNothing) {
  const char* doc = R"({"a":{"b":[1,2]},"c":3})";
  for (const char* patch : {R"([{"op":"remove","path":"/x"}])", R"([{"op":"replace","path":"/a/b/2","value":0}])",
                            R"([{"op":"add","path":"/a/b/3","value":0}])", R"([{"op":"add","path":"/a/b/01","value":0}])",
                            R"([{"op":"move","from":"/a","path":"/a/b/0"}])", R"([{"op":"remove","path":""}])",
                            R"([{"op":"add","path":"/c/d","value":0}])", R"([{"op":"copy","from":"/nope","path":"/d"}])",
                            R"([{"op":"remove","path":"/a/b/-"}])",
                            // The first operation applies, the second fails: nothing of the first stays.
                            R"([{"op":"remove","path":"/c"},{"op":"test","path":"/c","value":3}])"}) {
    EXPECT_EQ(PatchError(doc, patch), StatusCode::kConflict) << patch;
  }
}

TEST(JsonPatch, MoveCopyAndRootOperations) {
  ExpectPatched(R"({"a":[1,2,3]})", R"([{"op":"move","from":"/a/0","path":"/a/-"}])", R"({"a":[2,3,1]})");
  ExpectPatched(R"({"a":{"x":1}})", R"([{"op":"copy","from":"/a","path":"/b"},{"op":"replace","path":"/b/x","value":2}])",
                R"({"a":{"x":1},"b":{"x":2}})");
  ExpectPatched(R"({"a":1})", R"([{"op":"move","from":"/a","path":"/a"}])", R"({"a":1})");
  ExpectPatched(R"({"a":1})", R"([{"op":"replace","path":"","value":{"b":2}}])", R"({"b":2})");
  ExpectPatched(R"({"a":1})", R"([{"op":"add","path":"/a","value":null}])", R"({"a":null})");
}

TEST(JsonPatch, CopyDoublingHitsTheSizeLimitInsteadOfMemory) {
  // Each copy doubles the document: 40 of them would need terabytes.
  std::string patch = R"([{"op":"add","path":"/a","value":"0123456789012345678901234567890123456789"})";
  for (int i = 0; i < 40; ++i) patch += R"(,{"op":"copy","from":"/a","path":"/a/-"},{"op":"copy","from":"","path":"/a"})";
  patch += "]";
  JsonPatchLimits limits;
  limits.max_document_bytes = 1 << 20;
  EXPECT_EQ(PatchError(R"({"a":[]})", patch, limits), StatusCode::kConflict);
}

TEST(JsonPatch, NestingIsBounded) {
  // Repeatedly copying the document under itself deepens it by one level each time.
  std::string patch = "[";
  for (int i = 0; i < 100; ++i) patch += std::string(i ? "," : "") + R"({"op":"copy","from":"","path":"/x"})";
  patch += "]";
  JsonPatchLimits limits;
  limits.max_depth = 8;
  EXPECT_EQ(PatchError(R"({"a":1})", patch, limits), StatusCode::kConflict);
}

}  // namespace
}  // namespace phivault::fhir
