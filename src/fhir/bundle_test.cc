#include "fhir/bundle.h"

#include <string>
#include <unordered_map>
#include <vector>

#include <boost/json/object.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "fhir/compartment.h"
#include "fhir/json_reader.h"
#include "fhir/test_util.h"

namespace phivault::fhir {
namespace {

namespace json = boost::json;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

json::object MustParse(std::string_view body) {
  auto r = ParseResource(body);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(r).value() : json::object{};
}

std::string Bundle(std::string_view type, std::string_view entries) {
  return std::string(R"({"resourceType":"Bundle","type":")") + std::string(type) + R"(","entry":[)" +
         std::string(entries) + "]}";
}

std::string Entry(std::string_view method, std::string_view url, std::string_view resource = "",
                  std::string_view full_url = "") {
  std::string s = "{";
  if (!full_url.empty()) s += R"("fullUrl":")" + std::string(full_url) + "\",";
  if (!resource.empty()) s += R"("resource":)" + std::string(resource) + ",";
  s += R"("request":{"method":")" + std::string(method) + R"(","url":")" + std::string(url) + "\"}}";
  return s;
}

StatusOr<ParsedBundle> Plan(std::string_view body) { return ParseBatchOrTransaction(MustParse(body)); }

StatusCode TxnCode(std::string_view entry) {
  auto r = Plan(Bundle("transaction", entry));
  return r.ok() ? StatusCode::kOk : r.status().code();
}

TEST(Bundle, ParsesAllUrlForms) {
  auto r = Plan(Bundle("transaction",
                       Entry("POST", "Patient", R"({"resourceType":"Patient"})", "urn:uuid:a") + "," +
                           Entry("PUT", "Observation/o1", R"({"resourceType":"Observation","id":"o1"})") +
                           "," + Entry("PUT", "Observation?identifier=x%7Cy", R"({"resourceType":"Observation"})") +
                           "," + Entry("DELETE", "Encounter/e1") + "," +
                           Entry("DELETE", "Encounter?status=cancelled") + "," + Entry("GET", "Patient/p1") +
                           "," + Entry("GET", "Patient/p1/_history/3") + "," +
                           Entry("GET", "Observation?subject=Patient/p1&_count=10") + "," +
                           Entry("GET", "/Condition")));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->kind, BundleKind::kTransaction);
  const auto& e = r->entries;
  ASSERT_EQ(e.size(), 9u);
  EXPECT_EQ(e[0].method, "POST");
  EXPECT_EQ(e[0].type, "Patient");
  EXPECT_EQ(e[0].full_url, "urn:uuid:a");
  ASSERT_TRUE(e[0].resource.has_value());
  EXPECT_EQ(e[0].resource->at("resourceType"), "Patient");
  EXPECT_EQ(e[1].id, "o1");
  EXPECT_TRUE(e[1].query.empty());
  EXPECT_EQ(e[2].query, "identifier=x%7Cy");
  EXPECT_TRUE(e[2].id.empty());
  EXPECT_EQ(e[3].method, "DELETE");
  EXPECT_FALSE(e[3].resource.has_value());
  EXPECT_EQ(e[4].query, "status=cancelled");
  EXPECT_EQ(e[5].id, "p1");
  EXPECT_EQ(e[6].vid, "3");
  EXPECT_EQ(e[7].type, "Observation");
  EXPECT_EQ(e[7].query, "subject=Patient/p1&_count=10");
  EXPECT_EQ(e[8].type, "Condition");
  for (const auto& x : e) EXPECT_TRUE(x.status.ok());
}

TEST(Bundle, ConditionalHeaders) {
  auto r = Plan(Bundle("batch", R"({"resource":{"resourceType":"Patient"},"request":{"method":"POST",
      "url":"Patient","ifNoneExist":"identifier=a|b"}},
      {"resource":{"resourceType":"Patient","id":"p"},"request":{"method":"PUT","url":"Patient/p",
      "ifMatch":"W/\"2\""}},{"request":{"method":"GET","url":"Patient/p","ifNoneMatch":"W/\"1\""}})"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->entries[0].if_none_exist, "identifier=a|b");
  EXPECT_EQ(r->entries[1].if_match, "W/\"2\"");
  EXPECT_EQ(r->entries[2].if_none_match, "W/\"1\"");
  EXPECT_EQ(TxnCode(R"({"resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient",
      "ifNoneExist":7}})"),
            StatusCode::kInvalidArgument);
}

TEST(Bundle, RejectsBadEnvelope) {
  EXPECT_FALSE(Plan(R"({"resourceType":"Patient","type":"transaction"})").ok());
  EXPECT_FALSE(Plan(R"({"resourceType":"Bundle"})").ok());
  for (const char* t : {"document", "collection", "searchset", "history", "message", "Transaction"}) {
    auto r = Plan(Bundle(t, ""));
    ASSERT_FALSE(r.ok()) << t;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  }
  EXPECT_FALSE(Plan(R"({"resourceType":"Bundle","type":"batch","entry":{}})").ok());
  auto empty = Plan(R"({"resourceType":"Bundle","type":"batch"})");
  ASSERT_TRUE(empty.ok());
  EXPECT_THAT(empty->entries, IsEmpty());
}

TEST(Bundle, EntryLimit) {
  std::string entries;
  for (int i = 0; i < 5; ++i) entries += (i ? "," : "") + Entry("GET", "Patient/p" + std::to_string(i));
  json::object b = MustParse(Bundle("batch", entries));
  BundleLimits limits;
  limits.max_entries = 5;
  EXPECT_TRUE(ParseBatchOrTransaction(b, limits).ok());
  limits.max_entries = 4;
  auto r = ParseBatchOrTransaction(b, limits);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kTooLarge);
}

TEST(Bundle, RejectsBadEntries) {
  const std::string pat = R"({"resourceType":"Patient"})";
  const std::string pat1 = R"({"resourceType":"Patient","id":"p1"})";
  struct Case {
    std::string entry;
    StatusCode code;
  } cases[] = {
      {"7", StatusCode::kInvalidArgument},
      {R"({"resource":{"resourceType":"Patient"}})", StatusCode::kInvalidArgument},
      {R"({"request":{"url":"Patient"}})", StatusCode::kInvalidArgument},
      {R"({"request":{"method":"GET"}})", StatusCode::kInvalidArgument},
      {R"({"request":{"method":"GET","url":5}})", StatusCode::kInvalidArgument},
      {R"({"request":"GET Patient"})", StatusCode::kInvalidArgument},
      {Entry("get", "Patient/1"), StatusCode::kInvalidArgument},
      {Entry("OPTIONS", "Patient/1"), StatusCode::kInvalidArgument},
      {Entry("PATCH", "Patient/1"), StatusCode::kUnsupported},
      {Entry("HEAD", "Patient/1"), StatusCode::kUnsupported},
      {Entry("GET", ""), StatusCode::kInvalidArgument},
      {Entry("GET", "Foo/1"), StatusCode::kInvalidArgument},
      {Entry("GET", "patient/1"), StatusCode::kInvalidArgument},
      {Entry("GET", "Patient/a b"), StatusCode::kInvalidArgument},
      {Entry("GET", "Patient/a_b"), StatusCode::kInvalidArgument},
      {Entry("POST", "Patient/_search"), StatusCode::kUnsupported},
      {Entry("GET", "Patient/"), StatusCode::kInvalidArgument},
      {Entry("GET", "Patient//1"), StatusCode::kInvalidArgument},
      {Entry("GET", "Patient/1/x"), StatusCode::kInvalidArgument},
      {Entry("GET", "Patient/1/_history"), StatusCode::kUnsupported},
      {Entry("GET", "Patient/1/_history/"), StatusCode::kInvalidArgument},
      {Entry("GET", "Patient/1/_history/2/3"), StatusCode::kInvalidArgument},
      {Entry("GET", "Patient/1/_history/2/3/4"), StatusCode::kUnsupported},
      {Entry("GET", "Patient/$everything"), StatusCode::kUnsupported},
      {Entry("GET", "Patient/1/$everything"), StatusCode::kUnsupported},
      {Entry("GET", "$export"), StatusCode::kUnsupported},
      {Entry("GET", "_history"), StatusCode::kUnsupported},
      {Entry("GET", "?_type=Patient"), StatusCode::kUnsupported},
      {Entry("GET", "metadata"), StatusCode::kUnsupported},
      {Entry("GET", "http://example.org/fhir/Patient/1"), StatusCode::kInvalidArgument},
      {Entry("GET", "Patient/1#x"), StatusCode::kInvalidArgument},
      {Entry("GET", "Patient/1\\u0000"), StatusCode::kInvalidArgument},
      {Entry("GET", "Patient/1", pat1), StatusCode::kInvalidArgument},
      {Entry("DELETE", "Patient/1", pat1), StatusCode::kInvalidArgument},
      {Entry("DELETE", "Patient"), StatusCode::kInvalidArgument},
      {Entry("DELETE", "Patient?"), StatusCode::kInvalidArgument},
      {Entry("DELETE", "Patient/1/_history/2"), StatusCode::kInvalidArgument},
      {Entry("POST", "Patient"), StatusCode::kInvalidArgument},
      {Entry("POST", "Patient/p1", pat1), StatusCode::kInvalidArgument},
      {Entry("POST", "Patient?x=y", pat), StatusCode::kInvalidArgument},
      {Entry("POST", "Observation", pat), StatusCode::kInvalidArgument},
      {Entry("POST", "Patient", "[]"), StatusCode::kInvalidArgument},
      {Entry("POST", "Patient", R"({"id":"p"})"), StatusCode::kInvalidArgument},
      {Entry("POST", "Patient", R"({"resourceType":"Patient","id":"bad/id"})"), StatusCode::kInvalidArgument},
      {Entry("PUT", "Patient/p1"), StatusCode::kInvalidArgument},
      {Entry("PUT", "Patient", pat), StatusCode::kInvalidArgument},
      {Entry("PUT", "Patient/p1", pat), StatusCode::kInvalidArgument},  // body has no id
      {Entry("PUT", "Patient/p2", pat1), StatusCode::kInvalidArgument},
      {Entry("PUT", "Patient/p1?x=y", pat1), StatusCode::kInvalidArgument},
      {Entry("PUT", "Observation/p1", pat1), StatusCode::kInvalidArgument},
      {R"({"fullUrl":5,"request":{"method":"GET","url":"Patient/1"}})", StatusCode::kInvalidArgument},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(TxnCode(c.entry), c.code) << c.entry;
    // In a batch the same entry fails alone.
    auto b = Plan(Bundle("batch", c.entry + "," + Entry("GET", "Patient/ok")));
    ASSERT_TRUE(b.ok()) << c.entry << ": " << b.status().ToString();
    ASSERT_EQ(b->entries.size(), 2u);
    EXPECT_EQ(b->entries[0].status.code(), c.code) << c.entry;
    EXPECT_TRUE(b->entries[1].status.ok());
    EXPECT_EQ(b->entries[1].id, "ok");
  }
}

TEST(Bundle, ErrorMessagesNameIndexNotContent) {
  auto r = Plan(Bundle("transaction", Entry("GET", "Patient/1") + "," + Entry("GET", "SECRET123/x")));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("entry[1]"), std::string::npos) << r.status().message();
  EXPECT_EQ(r.status().message().find("SECRET123"), std::string::npos);
}

TEST(Bundle, TransactionIdentitiesMustNotOverlap) {
  const std::string pat = R"({"resourceType":"Patient"})";
  const std::string pat1 = R"({"resourceType":"Patient","id":"p1"})";
  EXPECT_EQ(TxnCode(Entry("POST", "Patient", pat, "urn:uuid:a") + "," + Entry("POST", "Patient", pat, "urn:uuid:a")),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(TxnCode(Entry("PUT", "Patient/p1", pat1) + "," + Entry("DELETE", "Patient/p1")),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(TxnCode(Entry("PUT", "Patient/p1", pat1) + "," + Entry("GET", "Patient/p1")), StatusCode::kOk);
  EXPECT_EQ(TxnCode(Entry("PUT", "Patient/p1", pat1) + "," + Entry("DELETE", "Observation/p1")), StatusCode::kOk);
  auto batch = Plan(Bundle("batch", Entry("POST", "Patient", pat, "urn:uuid:a") + "," +
                                        Entry("POST", "Patient", pat, "urn:uuid:a")));
  ASSERT_TRUE(batch.ok());
}

TEST(Bundle, TransactionOrder) {
  const std::string pat = R"({"resourceType":"Patient"})";
  const std::string pat1 = R"({"resourceType":"Patient","id":"p1"})";
  auto r = Plan(Bundle("batch", Entry("GET", "Patient/a") + "," + Entry("PUT", "Patient/p1", pat1) + "," +
                                    Entry("POST", "Patient", pat) + "," + Entry("PATCH", "Patient/x") + "," +
                                    Entry("DELETE", "Patient/b") + "," + Entry("GET", "Patient/c") + "," +
                                    Entry("POST", "Patient", pat) + "," + Entry("DELETE", "Patient/d")));
  ASSERT_TRUE(r.ok());
  EXPECT_THAT(TransactionOrder(*r), ElementsAre(4, 7, 2, 6, 1, 0, 5, 3));
  EXPECT_THAT(TransactionOrder(ParsedBundle{}), IsEmpty());
}

TEST(RewriteReferences, ReplacesOnlyExactReferenceMembers) {
  auto v = ParseJson(R"({"resourceType":"Observation",
      "subject":{"reference":"urn:uuid:p"},
      "performer":[{"reference":"urn:uuid:d"},{"reference":"urn:uuid:unknown"},{"reference":"urn:uuid:p"}],
      "extension":[{"url":"x","valueReference":{"reference":"urn:uuid:p"}}],
      "note":[{"text":"urn:uuid:p"}],
      "identifier":[{"value":"urn:uuid:p","reference":5}],
      "contained":[{"resourceType":"Provenance","target":[{"reference":"urn:uuid:p"}]}],
      "reference":"urn:uuid:p"})");
  ASSERT_TRUE(v.ok());
  std::unordered_map<std::string, std::string> map{{"urn:uuid:p", "Patient/123"},
                                                   {"urn:uuid:d", "Practitioner/9"}};
  EXPECT_THAT(CollectUrnReferences(*v), ElementsAre("urn:uuid:d", "urn:uuid:p", "urn:uuid:unknown"));
  RewriteReferences(*v, map);
  const json::object& o = v->as_object();
  EXPECT_EQ(o.at("subject").at("reference"), "Patient/123");
  EXPECT_EQ(o.at("performer").at(0).at("reference"), "Practitioner/9");
  EXPECT_EQ(o.at("performer").at(1).at("reference"), "urn:uuid:unknown");
  EXPECT_EQ(o.at("performer").at(2).at("reference"), "Patient/123");
  EXPECT_EQ(o.at("extension").at(0).at("valueReference").at("reference"), "Patient/123");
  EXPECT_EQ(o.at("note").at(0).at("text"), "urn:uuid:p");
  EXPECT_EQ(o.at("identifier").at(0).at("value"), "urn:uuid:p");
  EXPECT_EQ(o.at("contained").at(0).at("target").at(0).at("reference"), "Patient/123");
  EXPECT_EQ(o.at("reference"), "Patient/123");
  EXPECT_THAT(CollectUrnReferences(*v), ElementsAre("urn:uuid:unknown"));
  EXPECT_THAT(PatientCompartment(o), ElementsAre("123"));

  json::object obj = MustParse(R"({"resourceType":"Encounter","subject":{"reference":"urn:uuid:p"}})");
  RewriteReferences(obj, map);
  EXPECT_EQ(obj.at("subject").at("reference"), "Patient/123");
}

TEST(RewriteReferences, DeepInputDoesNotRecurse) {
  // 100k nested arrays (built directly; ParseJson would refuse this depth).
  json::value v = json::object{{"reference", "urn:uuid:x"}};
  for (int i = 0; i < 100000; ++i) v = json::array{std::move(v)};
  RewriteReferences(v, {{"urn:uuid:x", "Patient/1"}});
  EXPECT_THAT(CollectUrnReferences(v), IsEmpty());
  // Tear down iteratively too: the recursive value destructor would overflow.
  while (v.is_array() && !v.as_array().empty()) {
    json::value inner = std::move(v.as_array()[0]);
    v = std::move(inner);
  }
  EXPECT_EQ(v.at("reference"), "Patient/1");
}

TEST(Bundle, SyntheaTransactionPlan) {
  std::string body = testing::ReadRepoFile("src/fhir/testdata/synthea-patient-004.json");
  auto b = ParseResource(body);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  auto plan = ParseBatchOrTransaction(*b);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_EQ(plan->entries.size(), 76u);
  for (const auto& e : plan->entries) {
    EXPECT_EQ(e.method, "POST");
    EXPECT_TRUE(e.resource.has_value());
    EXPECT_EQ(e.resource->at("resourceType").as_string(), e.type);
  }
}

}  // namespace
}  // namespace phivault::fhir
