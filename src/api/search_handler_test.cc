// FHIR search through the real FhirService, vault, store, access control
// and signed tokens: Bundle shape, errors, lenient handling, paging links
// and cursors, and that nothing a caller may not see leaks through hits,
// includes, totals or paging.
#include "api/search_handler.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <map>
#include <set>

#include "api/testing/service_fixture.h"

namespace phivault::api {
namespace {

constexpr const char* kBase = testing::TestVault::kIssuer;

class SearchApiTest : public FhirServiceTest {
 protected:
  // PUT with the id taken from the path (an update must carry it).
  void Put(const std::string& path, const std::string& body, const std::string& token = "") {
    json::object o = json::parse(body).as_object();
    o["id"] = path.substr(path.rfind('/') + 1);
    auto r = CallAs("PUT", path, token.empty() ? system_token_ : token, json::serialize(o));
    ASSERT_TRUE(r.status == 200 || r.status == 201) << path << " " << r.body;
  }

  // Patient/p1 in the care of Practitioner/dr1 (an active CareTeam).
  void P1InCareOfDr1() {
    Put("/fhir/Patient/p1", R"({"resourceType":"Patient"})");
    Put("/fhir/CareTeam/ct1",
        R"({"resourceType":"CareTeam","status":"active","subject":{"reference":"Patient/p1"},)"
        R"("participant":[{"member":{"reference":"Practitioner/dr1"}}]})");
  }

  // Options like the fixture service's, for a second service with other
  // limits over the same vault (its cursors open in either).
  ServiceOptions Options() {
    ServiceOptions so;
    so.base_url = testing::TestVault::kIssuer;
    so.keyring = &vault_->keyring();
    return so;
  }

  void Obs(const std::string& id, const std::string& patient, const std::string& date) {
    Put("/fhir/Observation/" + id,
        R"({"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"1234-5"}]},)"
        R"("subject":{"reference":"Patient/)" +
            patient + R"("},"effectiveDateTime":")" + date + R"("})");
  }

  static std::string Link(const json::object& bundle, std::string_view rel) {
    for (const auto& l : bundle.at("link").as_array()) {
      if (l.as_object().at("relation").as_string() == rel) {
        std::string url(l.as_object().at("url").as_string());
        return url.substr(std::string(kBase).size());
      }
    }
    return "";
  }

  static std::vector<std::string> Ids(const json::object& bundle, std::string_view mode = "match") {
    std::vector<std::string> out;
    if (!bundle.contains("entry")) return out;
    for (const auto& e : bundle.at("entry").as_array()) {
      const auto& o = e.as_object();
      if (o.at("search").as_object().at("mode").as_string() != mode) continue;
      const auto& r = o.at("resource").as_object();
      out.push_back(std::string(r.at("resourceType").as_string()) + "/" + std::string(r.at("id").as_string()));
    }
    return out;
  }

  // Follows next links from `url`; every match id in order.
  std::vector<std::string> AllPages(std::string url, const std::string& token, int* pages = nullptr) {
    std::vector<std::string> ids;
    int n = 0;
    while (!url.empty() && n < 50) {
      auto r = CallAs("GET", url, token);
      EXPECT_EQ(r.status, 200) << r.body;
      if (r.status != 200) break;
      auto b = r.Json();
      for (auto& id : Ids(b)) ids.push_back(id);
      url = Link(b, "next");
      ++n;
    }
    if (pages) *pages = n;
    return ids;
  }
};

TEST_F(SearchApiTest, SearchsetBundleWithMatchesTotalAndSelfLink) {
  Put("/fhir/Patient/p1", R"({"resourceType":"Patient","name":[{"family":"Smith"}],"birthDate":"1980-05-17"})");
  Put("/fhir/Patient/p2", R"({"resourceType":"Patient","name":[{"family":"Smithers"}],"birthDate":"1960-01-01"})");
  Put("/fhir/Patient/p3", R"({"resourceType":"Patient","name":[{"family":"Jones"}]})");
  auto r = CallAs("GET", "/fhir/Patient?family=smi&birthdate=ge1970", system_token_);
  ASSERT_EQ(r.status, 200) << r.body;
  auto b = r.Json();
  EXPECT_EQ(b.at("resourceType"), "Bundle");
  EXPECT_EQ(b.at("type"), "searchset");
  EXPECT_EQ(b.at("total").as_int64(), 1);
  EXPECT_EQ(Ids(b), (std::vector<std::string>{"Patient/p1"}));
  EXPECT_EQ(Link(b, "self"), "/fhir/Patient?family=smi&birthdate=ge1970");
  EXPECT_EQ(Link(b, "next"), "");
  EXPECT_EQ(b.at("entry").as_array()[0].as_object().at("fullUrl").as_string(), std::string(kBase) + "/fhir/Patient/p1");

  // POST _search with a form body answers the same.
  auto post = CallAs("POST", "/fhir/Patient/_search", system_token_, "family=smi&birthdate=ge1970",
                   {{"content-type", "application/x-www-form-urlencoded"}});
  ASSERT_EQ(post.status, 200) << post.body;
  EXPECT_EQ(Ids(post.Json()), (std::vector<std::string>{"Patient/p1"}));

  // _summary=count: the total only; _elements: a marked subset.
  auto count = CallAs("GET", "/fhir/Patient?family=smi&_summary=count", system_token_).Json();
  EXPECT_EQ(count.at("total").as_int64(), 2);
  EXPECT_FALSE(count.contains("entry"));
  auto el = CallAs("GET", "/fhir/Patient?_id=p1&_elements=birthDate", system_token_).Json();
  const auto& res = el.at("entry").as_array()[0].as_object().at("resource").as_object();
  EXPECT_TRUE(res.contains("birthDate"));
  EXPECT_FALSE(res.contains("name"));
  EXPECT_NE(json::serialize(res.at("meta")).find("SUBSETTED"), std::string::npos);
}

// _summary=true|text against the R4 flags (profiles-resources.json 4.0.1):
// Patient.name, .gender, .birthDate are isSummary; .text, .photo, .contact,
// .maritalStatus are not; Observation.status and .code are mandatory;
// Observation.subject and .valueQuantity are isSummary, .referenceRange and
// .note are not.
TEST_F(SearchApiTest, SummaryTrueAndTextFollowTheR4Definitions) {
  Put("/fhir/Patient/p1",
      R"({"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">A</div>"},)"
      R"("name":[{"family":"Smith","given":["Ann"]}],"gender":"female","birthDate":"1980-05-17",)"
      R"("maritalStatus":{"text":"M"},"photo":[{"contentType":"image/png","data":"AAAA"}],)"
      R"("contact":[{"name":{"family":"Roe"}}]})");
  Put("/fhir/Observation/o1",
      R"({"resourceType":"Observation","status":"final","text":{"status":"generated",)"
      R"("div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">72</div>"},)"
      R"("code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/p1"},)"
      R"("valueQuantity":{"value":72,"unit":"/min"},"note":[{"text":"after a run"}],)"
      R"("referenceRange":[{"low":{"value":60}}]})");
  auto one = [&](const std::string& url) {
    auto r = CallAs("GET", url, system_token_);
    EXPECT_EQ(r.status, 200) << r.body;
    json::object b = r.Json();
    const json::object& res = b.at("entry").as_array()[0].as_object().at("resource").as_object();
    EXPECT_NE(json::serialize(res.at("meta")).find("SUBSETTED"), std::string::npos) << url;
    EXPECT_EQ(res.at("meta").as_object().at("versionId"), "1") << url << ": the stored meta is kept";
    std::set<std::string> keys;
    for (const auto& [k, v] : res) keys.insert(k);
    return keys;
  };
  using Keys = std::set<std::string>;
  EXPECT_EQ(one("/fhir/Patient?_id=p1&_summary=true"),
            (Keys{"resourceType", "id", "meta", "name", "gender", "birthDate"}));
  EXPECT_EQ(one("/fhir/Patient?_id=p1&_summary=text"), (Keys{"resourceType", "id", "meta", "text"}));
  EXPECT_EQ(one("/fhir/Observation?_id=o1&_summary=true"),
            (Keys{"resourceType", "id", "meta", "status", "code", "subject", "valueQuantity"}));
  EXPECT_EQ(one("/fhir/Observation?_id=o1&_summary=text"), (Keys{"resourceType", "id", "meta", "text", "status", "code"}));
  // _summary=data keeps all but the narrative, as before.
  EXPECT_EQ(one("/fhir/Observation?_id=o1&_summary=data"),
            (Keys{"resourceType", "id", "meta", "status", "code", "subject", "valueQuantity", "note", "referenceRange"}));

  // Included resources are summarized too, and the summary values are the
  // stored ones.
  auto inc = CallAs("GET", "/fhir/Observation?_id=o1&_summary=true&_include=Observation:subject", system_token_).Json();
  ASSERT_EQ(Ids(inc, "include"), (std::vector<std::string>{"Patient/p1"}));
  for (const auto& e : inc.at("entry").as_array()) {
    const auto& res = e.as_object().at("resource").as_object();
    if (res.at("resourceType") != "Patient") continue;
    EXPECT_FALSE(res.contains("photo"));
    EXPECT_FALSE(res.contains("text"));
    EXPECT_EQ(res.at("name"), json::parse(R"([{"family":"Smith","given":["Ann"]}])"));
  }

  // A conditional delete takes search conditions only.
  EXPECT_EQ(CallAs("DELETE", "/fhir/Patient?_id=p1&_summary=true", system_token_).status, 400);
  EXPECT_EQ(CallAs("GET", "/fhir/Patient?_id=p1&_summary=bogus", system_token_).status, 400);
}

TEST_F(SearchApiTest, UnknownParametersAreErrorsUnlessLenient) {
  Put("/fhir/Patient/p1", R"({"resourceType":"Patient","name":[{"family":"Smith"}]})");
  auto strict = CallAs("GET", "/fhir/Patient?family=smi&secret-param=SensitiveValue42", system_token_);
  EXPECT_EQ(strict.status, 400);
  EXPECT_EQ(strict.Json().at("resourceType"), "OperationOutcome");
  EXPECT_EQ(strict.body.find("SensitiveValue42"), std::string::npos) << "values are never echoed";
  auto bad_value = CallAs("GET", "/fhir/Patient?birthdate=1980-99-SensitiveValue42", system_token_);
  EXPECT_EQ(bad_value.status, 400);
  EXPECT_EQ(bad_value.body.find("SensitiveValue42"), std::string::npos);

  auto lenient = CallAs("GET", "/fhir/Patient?family=smi&secret-param=x&_content=x", system_token_, "",
                      {{"prefer", "handling=lenient"}});
  ASSERT_EQ(lenient.status, 200) << lenient.body;
  auto b = lenient.Json();
  EXPECT_EQ(Link(b, "self"), "/fhir/Patient?family=smi") << "the self link shows only what was applied";
  EXPECT_EQ(Ids(b), (std::vector<std::string>{"Patient/p1"}));
  bool outcome = false;
  for (const auto& e : b.at("entry").as_array()) {
    outcome |= e.as_object().at("search").as_object().at("mode").as_string() == "outcome";
  }
  EXPECT_TRUE(outcome);
}

TEST_F(SearchApiTest, PagingLinksAreSealedAndStableAcrossWrites) {
  Put("/fhir/Patient/p1", R"({"resourceType":"Patient"})");
  for (int i = 0; i < 7; ++i) Obs("o" + std::to_string(i), "p1", "2024-01-0" + std::to_string(i + 1));
  int pages = 0;
  auto ids = AllPages("/fhir/Observation?patient=p1&_sort=-date&_count=3", system_token_, &pages);
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(ids, (std::vector<std::string>{"Observation/o6", "Observation/o5", "Observation/o4", "Observation/o3",
                                           "Observation/o2", "Observation/o1", "Observation/o0"}));

  auto first = CallAs("GET", "/fhir/Observation?patient=p1&_sort=-date&_count=3", system_token_).Json();
  std::string next = Link(first, "next");
  ASSERT_FALSE(next.empty());
  EXPECT_EQ(Link(first, "previous"), "");
  // Writes between pages: a new newest one (before the cursor) and an
  // update of one on the next page; the next page neither repeats nor skips.
  Obs("o9", "p1", "2024-02-01");
  Obs("o3", "p1", "2024-01-04");
  auto second = CallAs("GET", next, system_token_).Json();
  EXPECT_EQ(Ids(second), (std::vector<std::string>{"Observation/o3", "Observation/o2", "Observation/o1"}));
  // previous leads back to the first page.
  std::string prev = Link(second, "previous");
  ASSERT_FALSE(prev.empty());
  EXPECT_EQ(Ids(CallAs("GET", prev, system_token_).Json()),
            (std::vector<std::string>{"Observation/o6", "Observation/o5", "Observation/o4"}));

  // The cursor is bound to its parameters and cannot be altered.
  std::string other = next;
  other.replace(other.find("patient=p1"), 10, "patient=p2");
  EXPECT_EQ(CallAs("GET", other, system_token_).status, 400);
  std::string flipped = next;
  flipped[flipped.size() - 5] = flipped[flipped.size() - 5] == 'A' ? 'B' : 'A';
  EXPECT_EQ(CallAs("GET", flipped, system_token_).status, 400);
  EXPECT_EQ(CallAs("GET", "/fhir/Observation?patient=p1&_cursor=garbage", system_token_).status, 400);
  EXPECT_EQ(next.find("2024"), std::string::npos) << "sort keys inside the cursor are sealed";
}

// A clinician related to p1 only: p2's observations are interleaved with
// p1's in the sort order but never appear, pages still hold _count visible
// matches, and totals, includes and revincludes count and show only p1's.
TEST_F(SearchApiTest, HiddenRecordsNeverLeakThroughHitsIncludesTotalsOrPaging) {
  Put("/fhir/Patient/p1", R"({"resourceType":"Patient","name":[{"family":"Visible"}]})");
  Put("/fhir/Patient/p2", R"({"resourceType":"Patient","name":[{"family":"Hidden"}]})");
  Put("/fhir/CareTeam/ct1",
      R"({"resourceType":"CareTeam","status":"active","subject":{"reference":"Patient/p1"},)"
      R"("participant":[{"member":{"reference":"Practitioner/dr1"}}]})");
  for (int i = 0; i < 6; ++i) {
    Obs("a" + std::to_string(i), i % 2 ? "p2" : "p1", "2024-03-0" + std::to_string(i + 1));
    Obs("b" + std::to_string(i), "p2", "2024-03-0" + std::to_string(i + 1));
  }
  std::string dr = Token("alice", "clinician", "Practitioner/dr1", "user/*.rs");

  int pages = 0;
  auto ids = AllPages("/fhir/Observation?code=http://loinc.org|1234-5&_sort=date&_count=2", dr, &pages);
  EXPECT_EQ(ids, (std::vector<std::string>{"Observation/a0", "Observation/a2", "Observation/a4"}));
  EXPECT_EQ(pages, 2) << "a full first page, then the rest";
  // Matches after the last visible one are all hidden: no next link that
  // would lead to an empty page (and so reveal them).
  auto last = CallAs("GET", "/fhir/Observation?code=http://loinc.org|1234-5&_sort=date&_count=3", dr).Json();
  EXPECT_EQ(Ids(last), (std::vector<std::string>{"Observation/a0", "Observation/a2", "Observation/a4"}));
  EXPECT_EQ(Link(last, "next"), "");
  EXPECT_EQ(last.at("total").as_int64(), 3);

  auto total = CallAs("GET", "/fhir/Observation?code=1234-5&_total=accurate&_count=1", dr).Json();
  EXPECT_EQ(total.at("total").as_int64(), 3);
  auto count = CallAs("GET", "/fhir/Observation?code=1234-5&_summary=count", dr).Json();
  EXPECT_EQ(count.at("total").as_int64(), 3);
  auto sys_count = CallAs("GET", "/fhir/Observation?code=1234-5&_summary=count", system_token_).Json();
  EXPECT_EQ(sys_count.at("total").as_int64(), 12);

  // Chaining and _has reach only what the index holds, but the hits are
  // authorized: searching by the hidden patient's name finds nothing.
  auto chained = CallAs("GET", "/fhir/Observation?patient.name=hidden", dr);
  ASSERT_EQ(chained.status, 200);
  EXPECT_TRUE(Ids(chained.Json()).empty());
  auto chained_total = CallAs("GET", "/fhir/Observation?patient.name=hidden&_total=accurate", dr).Json();
  EXPECT_EQ(chained_total.at("total").as_int64(), 0);

  auto inc = CallAs("GET", "/fhir/Observation?_id=a0,b0&_include=Observation:patient", dr).Json();
  EXPECT_EQ(Ids(inc), (std::vector<std::string>{"Observation/a0"}));
  EXPECT_EQ(Ids(inc, "include"), (std::vector<std::string>{"Patient/p1"}));

  auto rev = CallAs("GET", "/fhir/Patient?_revinclude=Observation:patient", dr).Json();
  EXPECT_EQ(Ids(rev), (std::vector<std::string>{"Patient/p1"}));
  std::set<std::string> revs;
  for (auto& id : Ids(rev, "include")) revs.insert(id);
  EXPECT_EQ(revs, (std::set<std::string>{"Observation/a0", "Observation/a2", "Observation/a4"}));

  // The system account sees every observation; the include resolves both.
  auto sys = CallAs("GET", "/fhir/Observation?_id=a0,b0&_include=Observation:patient", system_token_).Json();
  EXPECT_EQ(Ids(sys, "include").size(), 2u);

  // A restricted result of the visible patient p1 is hidden from the
  // clinician: _has and chains must not let it select p1 (or anything).
  std::string cleared = Token("backend", "system", "", "system/*.cruds", {"R"});
  Put("/fhir/Observation/secret",
      R"({"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"HIV-1"}]},)"
      R"("subject":{"reference":"Patient/p1"},"meta":{"security":[{"system":)"
      R"("http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"R"}]}})",
      cleared);
  EXPECT_EQ(Ids(CallAs("GET", "/fhir/Observation?_id=secret", cleared).Json()),
            (std::vector<std::string>{"Observation/secret"}));
  EXPECT_TRUE(Ids(CallAs("GET", "/fhir/Observation?_id=secret", dr).Json()).empty());
  auto has_hidden = CallAs("GET", "/fhir/Patient?_has:Observation:patient:code=HIV-1&_total=accurate", dr);
  ASSERT_EQ(has_hidden.status, 200) << has_hidden.body;
  EXPECT_TRUE(Ids(has_hidden.Json()).empty()) << "a hidden result must not select its patient";
  EXPECT_EQ(has_hidden.Json().at("total").as_int64(), 0);
  EXPECT_EQ(Ids(CallAs("GET", "/fhir/Patient?_has:Observation:patient:code=HIV-1", cleared).Json()),
            (std::vector<std::string>{"Patient/p1"}));
  auto has_visible = CallAs("GET", "/fhir/Patient?_has:Observation:patient:code=1234-5", dr).Json();
  EXPECT_EQ(Ids(has_visible), (std::vector<std::string>{"Patient/p1"}));
  auto chain_visible = CallAs("GET", "/fhir/Observation?patient.family=visible&code=1234-5", dr).Json();
  EXPECT_EQ(Ids(chain_visible).size(), 3u);

  // A role without Observation access is refused at the type gate.
  std::string reg = Token("reg", "registration", "Practitioner/r1", "user/*.cruds");
  EXPECT_EQ(CallAs("GET", "/fhir/Observation?code=1234-5", reg).status, 403);
}

// If-None-Exist with arbitrary search parameters of the created type: no
// match creates, one match returns it (200), several are 412 (R4 3.1.0.8.1);
// conditions on other resources (chains, _has) are refused.
TEST_F(SearchApiTest, IfNoneExistTakesAnySearchCondition) {
  Put("/fhir/Patient/p1", R"({"resourceType":"Patient","name":[{"family":"Smith"}],"birthDate":"1980-05-17"})");
  Put("/fhir/Patient/p2", R"({"resourceType":"Patient","name":[{"family":"Smith"}],"birthDate":"1990-01-01"})");
  auto create = [&](const std::string& cond) {
    return CallAs("POST", "/fhir/Patient", system_token_, R"({"resourceType":"Patient","name":[{"family":"Smith"}]})",
                {{"if-none-exist", cond}});
  };
  auto one = create("family=smith&birthdate=1980-05-17");
  EXPECT_EQ(one.status, 200) << one.body;
  EXPECT_EQ(one.Json().at("id").as_string(), "p1");
  EXPECT_EQ(create("family=smith").status, 412);
  auto none = create("family=smith&birthdate=ge2000");
  EXPECT_EQ(none.status, 201) << none.body;
  EXPECT_EQ(create("family:exact=Smith&birthdate:missing=true").status, 200) << "the new one now matches";
  EXPECT_EQ(create("_has:Observation:patient:code=x").status, 400);
  EXPECT_EQ(create("general-practitioner.name=x").status, 400);
  EXPECT_EQ(create("family=smith&_sort=birthdate").status, 400);
  EXPECT_EQ(create("nonsense=1").status, 400);
  // Inside a transaction Bundle too.
  auto bundle = CallAs("POST", "/fhir", system_token_,
                     R"({"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Patient",)"
                     R"("name":[{"family":"Smith"}]},"request":{"method":"POST","url":"Patient",)"
                     R"("ifNoneExist":"birthdate=1990-01-01"}}]})");
  ASSERT_EQ(bundle.status, 200) << bundle.body;
  EXPECT_NE(bundle.body.find("Patient/p2"), std::string::npos) << bundle.body;
}

// Conditional update and delete (R4 3.1.0.4.3, 3.1.0.7.1): 0 / 1 / many
// matches, the body id rule, and hidden records never count as matches.
TEST_F(SearchApiTest, ConditionalUpdateAndDelete) {
  Put("/fhir/Patient/p1", R"({"resourceType":"Patient","identifier":[{"system":"urn:mrn","value":"1"}],"gender":"male"})");
  Put("/fhir/Patient/p2", R"({"resourceType":"Patient","identifier":[{"system":"urn:mrn","value":"2"}],"gender":"male"})");
  const std::string body = R"({"resourceType":"Patient","identifier":[{"system":"urn:mrn","value":"1"}],"gender":"female"})";
  // One match, no id in the body: updates that resource.
  auto one = CallAs("PUT", "/fhir/Patient?identifier=urn:mrn|1", system_token_, body);
  ASSERT_EQ(one.status, 200) << one.body;
  EXPECT_EQ(one.Json().at("id").as_string(), "p1");
  EXPECT_EQ(Ids(CallAs("GET", "/fhir/Patient?gender=female", system_token_).Json()), (std::vector<std::string>{"Patient/p1"}));
  // One match, another id in the body: 400. Many matches: 412.
  std::string other = R"({"resourceType":"Patient","id":"p2","gender":"other"})";
  EXPECT_EQ(CallAs("PUT", "/fhir/Patient?identifier=urn:mrn|1", system_token_, other).status, 400);
  EXPECT_EQ(CallAs("PUT", "/fhir/Patient?identifier=urn:mrn|", system_token_, body).status, 412);
  // No match: create (server id), or update-as-create with the body's id.
  auto created = CallAs("PUT", "/fhir/Patient?identifier=urn:mrn|9", system_token_,
                      R"({"resourceType":"Patient","identifier":[{"system":"urn:mrn","value":"9"}]})");
  EXPECT_EQ(created.status, 201) << created.body;
  auto as_create = CallAs("PUT", "/fhir/Patient?identifier=urn:mrn|8", system_token_,
                        R"({"resourceType":"Patient","id":"p8","identifier":[{"system":"urn:mrn","value":"8"}]})");
  EXPECT_EQ(as_create.status, 201) << as_create.body;
  EXPECT_EQ(as_create.Json().at("id").as_string(), "p8");
  // No match, but the body names a stored record that the criteria did not
  // select: 409, and that record is left as it was.
  auto clash = CallAs("PUT", "/fhir/Patient?identifier=urn:mrn|7", system_token_,
                      R"({"resourceType":"Patient","id":"p2","identifier":[{"system":"urn:mrn","value":"7"}]})");
  ExpectOutcome(clash, 409);
  auto p2 = CallAs("GET", "/fhir/Patient/p2", system_token_);
  EXPECT_EQ(p2.Json().at("meta").at("versionId").as_string(), "1") << p2.body;
  EXPECT_EQ(p2.Json().at("identifier").as_array()[0].at("value").as_string(), "2");
  // Delete: many -> 412, one -> deleted, none -> nothing to delete.
  EXPECT_EQ(CallAs("DELETE", "/fhir/Patient?identifier=urn:mrn|", system_token_).status, 412);
  EXPECT_EQ(CallAs("DELETE", "/fhir/Patient?identifier=urn:mrn|2", system_token_).status, 200);
  EXPECT_EQ(CallAs("GET", "/fhir/Patient/p2", system_token_).status, 410);
  auto none = CallAs("DELETE", "/fhir/Patient?identifier=urn:mrn|2", system_token_);
  EXPECT_EQ(none.status, 200);
  EXPECT_NE(none.body.find("nothing to delete"), std::string::npos);
  EXPECT_EQ(CallAs("DELETE", "/fhir/Patient", system_token_).status, 400) << "criteria are required";

  // A clinician related to p1 only: the other patients are invisible, so
  // criteria matching all of them select p1 alone (no 412 that would reveal
  // the others), and p8 cannot be deleted by search.
  Put("/fhir/CareTeam/ct1",
      R"({"resourceType":"CareTeam","status":"active","subject":{"reference":"Patient/p1"},)"
      R"("participant":[{"member":{"reference":"Practitioner/dr1"}}]})");
  std::string dr = Token("alice", "clinician", "Practitioner/dr1", "user/*.cruds");
  auto dr_del = CallAs("DELETE", "/fhir/Patient?identifier=urn:mrn|8", dr);
  EXPECT_EQ(dr_del.status, 200);
  EXPECT_NE(dr_del.body.find("nothing to delete"), std::string::npos);
  EXPECT_EQ(CallAs("GET", "/fhir/Patient/p8", system_token_).status, 200) << "a hidden record is never deleted by search";
  auto dr_put = CallAs("PUT", "/fhir/Patient?identifier=urn:mrn|", dr, body);
  EXPECT_NE(dr_put.status, 412) << dr_put.body;
  if (dr_put.status == 200) {
    EXPECT_EQ(dr_put.Json().at("id").as_string(), "p1");
  }
  // A hidden record named in the body answers as a plain PUT onto it would
  // (no 409 that would tell the clinician it exists), and is not changed.
  const std::string p8_body = R"({"resourceType":"Patient","id":"p8","gender":"other"})";
  auto plain = CallAs("PUT", "/fhir/Patient/p8", dr, p8_body);
  auto cond = CallAs("PUT", "/fhir/Patient?identifier=urn:mrn|77", dr, p8_body);
  EXPECT_NE(plain.status / 100, 2) << plain.body;
  EXPECT_EQ(cond.status, plain.status) << cond.body;
  auto p8 = CallAs("GET", "/fhir/Patient/p8", system_token_);
  EXPECT_EQ(p8.Json().at("meta").at("versionId").as_string(), "1") << p8.body;
}

// Includes are bounded per page; a Bundle cut at the bound says so in an
// outcome entry instead of looking complete.
TEST_F(SearchApiTest, IncludesCutAtTheBoundSaySo) {
  Put("/fhir/Patient/many", R"({"resourceType":"Patient"})");
  Put("/fhir/Patient/few", R"({"resourceType":"Patient"})");
  Obs("few-1", "few", "2024-01-01");
  // `n` Observations about `patient`, labelled R if `restricted`.
  auto observations = [&](const std::string& patient, size_t n, bool restricted) {
    std::string bundle = R"({"resourceType":"Bundle","type":"transaction","entry":[)";
    for (size_t i = 0; i < n; ++i) {
      if (i) bundle += ',';
      bundle += R"({"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},)";
      if (restricted) {
        bundle += R"("meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality",)"
                  R"("code":"R"}]},)";
      }
      bundle += R"("subject":{"reference":"Patient/)" + patient +
                R"("}},"request":{"method":"POST","url":"Observation"}})";
    }
    bundle += "]}";
    const std::string cleared = Token("backend", "system", "", "system/*.cruds", {"R"});
    ASSERT_EQ(CallAs("POST", "/fhir", cleared, bundle).status, 200);
  };
  observations("many", SearchHandler::kMaxIncluded + 5, false);

  auto count = [](const json::object& b, std::string_view mode) {
    size_t c = 0;
    for (const auto& e : b.at("entry").as_array()) c += e.at("search").at("mode").as_string() == mode;
    return c;
  };
  auto cut = CallAs("GET", "/fhir/Patient?_id=many&_revinclude=Observation:patient", system_token_).Json();
  EXPECT_EQ(count(cut, "match"), 1u);
  EXPECT_EQ(count(cut, "include"), SearchHandler::kMaxIncluded);
  ASSERT_EQ(count(cut, "outcome"), 1u);
  EXPECT_NE(json::serialize(cut).find(R"("code":"incomplete")"), std::string::npos);

  auto whole = CallAs("GET", "/fhir/Patient?_id=few&_revinclude=Observation:patient", system_token_).Json();
  EXPECT_EQ(count(whole, "include"), 1u);
  EXPECT_EQ(count(whole, "outcome"), 0u);

  // Hidden records never trigger the warning: a clinician who may see two
  // of a patient's Observations, the other 1,005 being restricted, gets the
  // two and no hint that more exist.
  Put("/fhir/Patient/guarded", R"({"resourceType":"Patient"})");
  Put("/fhir/CareTeam/guarded-team",
      R"({"resourceType":"CareTeam","status":"active","subject":{"reference":"Patient/guarded"},)"
      R"("participant":[{"member":{"reference":"Practitioner/drg"}}]})");
  observations("guarded", SearchHandler::kMaxIncluded + 5, true);
  observations("guarded", 2, false);
  const std::string dr = Token("gina", "clinician", "Practitioner/drg", "user/*.rs");
  auto guarded = CallAs("GET", "/fhir/Patient?_id=guarded&_revinclude=Observation:patient", dr).Json();
  EXPECT_EQ(count(guarded, "match"), 1u);
  EXPECT_EQ(count(guarded, "include"), 2u) << "the visible ones past the first 1,000 hits are found";
  EXPECT_EQ(count(guarded, "outcome"), 0u);
  const std::string cleared = Token("backend", "system", "", "system/*.cruds", {"R"});
  auto all = CallAs("GET", "/fhir/Patient?_id=guarded&_revinclude=Observation:patient", cleared).Json();
  EXPECT_EQ(count(all, "include"), SearchHandler::kMaxIncluded);
  EXPECT_EQ(count(all, "outcome"), 1u);
}

// The CapabilityStatement lists exactly the parameters search accepts.
TEST_F(SearchApiTest, CapabilityStatementListsExactlyTheSupportedParameters) {
  auto cs = CallAs("GET", "/fhir/metadata", system_token_).Json();
  const json::object* patient = nullptr;
  for (const auto& r : cs.at("rest").as_array()[0].as_object().at("resource").as_array()) {
    if (r.as_object().at("type").as_string() == "Patient") patient = &r.as_object();
  }
  ASSERT_NE(patient, nullptr);
  bool search_type = false;
  for (const auto& i : patient->at("interaction").as_array()) {
    search_type |= i.as_object().at("code").as_string() == "search-type";
  }
  EXPECT_TRUE(search_type);
  std::set<std::string> listed;
  for (const auto& p : patient->at("searchParam").as_array()) {
    std::string name(p.as_object().at("name").as_string());
    listed.insert(name);
    // Every listed parameter is accepted by search.
    auto r = CallAs("GET", "/fhir/Patient?" + name + ":missing=true", system_token_);
    EXPECT_EQ(r.status, 200) << name << " " << r.body;
  }
  for (const char* p : {"family", "birthdate", "identifier", "general-practitioner", "_id", "_lastUpdated", "_tag"}) {
    EXPECT_TRUE(listed.count(p)) << p;
  }
  EXPECT_FALSE(listed.count("_text")) << "special parameters are not supported and not listed";
  EXPECT_EQ(CallAs("GET", "/fhir/Patient?_text=x", system_token_).status, 400);
  bool revinclude = false;
  for (const auto& v : patient->at("searchRevInclude").as_array()) revinclude |= v.as_string() == "Observation:patient";
  EXPECT_TRUE(revinclude);
}

// A search that no index narrows is stopped once it has spent the
// request's work budget (ServiceOptions::search_work_units), with a 400
// OperationOutcome, not after minutes on a network thread.
TEST_F(SearchApiTest, ASearchBeyondItsWorkBudgetIsRefused) {
  for (int i = 0; i < 30; ++i) Obs("b" + std::to_string(i), "pb", "2024-01-" + std::to_string(10 + i % 18));
  const std::string costly = "/fhir/Observation?status:not=cancelled&_sort=-date";
  auto fine = Call("GET", costly);
  ASSERT_EQ(fine.status, 200) << fine.body;
  EXPECT_EQ(fine.Json()["entry"].as_array().size(), 30u);

  ServiceOptions so = Options();
  so.search_work_units = 20;
  FhirService tight(vault_->store(), access_.get(), vault_->audit_trail(), so);
  auto refused = http::testing::CallHandler(tight, http::testing::MakeRequest("GET", costly, system_token_));
  ExpectOutcome(refused, 400);
  EXPECT_NE(refused.body.find("too costly"), std::string::npos) << refused.body;
  // The budget is per request: an indexed search right after fits in it.
  auto cheap =
      http::testing::CallHandler(tight, http::testing::MakeRequest("GET", "/fhir/Observation?_id=b1", system_token_));
  ASSERT_EQ(cheap.status, 200) << cheap.body;
  EXPECT_EQ(cheap.Json()["entry"].as_array().size(), 1u);
}

// When the budget runs out while looking past a full page for anything
// visible (AnyVisible), the page already built is answered with a next link,
// as after the refill bound, rather than turned into an error: the caller
// paid for the page, and whether anything visible lies beyond stays unsaid.
TEST_F(SearchApiTest, ABudgetSpentLookingPastAFullPageStillAnswersThePage) {
  P1InCareOfDr1();
  Obs("v0", "p1", "2024-01-01");
  Obs("v1", "p1", "2024-01-02");
  for (int i = 0; i < 300; ++i) Obs("h" + std::to_string(i), "p2", "2024-02-" + std::to_string(10 + i % 18));
  const std::string dr = Token("alice", "clinician", "Practitioner/dr1", "user/*.rs");
  const std::string target = "/fhir/Observation?code=http://loinc.org|1234-5&_sort=date&_count=2";
  // With the whole budget, the 300 hidden matches beyond the page are
  // looked through: no next link.
  auto full = CallAs("GET", target, dr);
  ASSERT_EQ(full.status, 200) << full.body;
  EXPECT_EQ(Ids(full.Json()), (std::vector<std::string>{"Observation/v0", "Observation/v1"}));
  EXPECT_EQ(Link(full.Json(), "next"), "");

  int refused = 0, cut_short = 0, whole = 0;
  for (int64_t units = 1; units < 1000000 && whole == 0; units += units / 8 + 1) {
    ServiceOptions so = Options();
    so.search_work_units = units;
    FhirService tight(vault_->store(), access_.get(), vault_->audit_trail(), so);
    auto r = http::testing::CallHandler(tight, http::testing::MakeRequest("GET", target, dr));
    if (r.status == 400) {
      EXPECT_EQ(cut_short, 0) << "a larger budget was refused after a smaller one answered";
      EXPECT_NE(r.body.find("too costly"), std::string::npos) << r.body;
      ++refused;
      continue;
    }
    ASSERT_EQ(r.status, 200) << units << " " << r.body;
    EXPECT_EQ(Ids(r.Json()), (std::vector<std::string>{"Observation/v0", "Observation/v1"})) << units;
    if (Link(r.Json(), "next").empty()) {
      ++whole;
    } else {
      ++cut_short;
    }
  }
  EXPECT_GT(refused, 0) << "the smallest budgets do not even build the page";
  EXPECT_GT(cut_short, 0) << "some budget builds the page but runs out beyond it";
  EXPECT_EQ(whole, 1);
}

// The bounds on matches examined (hidden ones included) are drawn anew for
// each request around ServiceOptions::join_examined_limit and
// count_examined_limit, so the same search right at the bound is sometimes
// refused and sometimes answered: whether one more (hidden) match exists
// cannot be read off a single refusal. Far below the bound nothing is
// refused; beyond its clamp (7/4 of the base) everything is.
TEST_F(SearchApiTest, LimitsOnMatchesExaminedAreDrawnPerRequest) {
  auto patients = [&](const std::string& prefix, int n, const std::string& family) {
    for (int i = 0; i < n; ++i) {
      Put("/fhir/Patient/" + prefix + std::to_string(i),
          R"({"resourceType":"Patient","name":[{"family":")" + family + R"("}]})");
    }
  };
  patients("s", 40, "Same");
  patients("f", 5, "Few");
  patients("o", 30, "Other");
  ServiceOptions so = Options();
  so.join_examined_limit = 40;  // drawn within [10, 70]
  so.count_examined_limit = 40;
  FhirService noisy(vault_->store(), access_.get(), vault_->audit_trail(), so);
  auto outcomes = [&](const std::string& target) {
    std::map<int, int> by_status;
    for (int i = 0; i < 60; ++i) {
      auto r = http::testing::CallHandler(noisy, http::testing::MakeRequest("GET", target, system_token_));
      ++by_status[r.status];
    }
    return by_status;
  };
  // 40 Patients examined against a limit drawn around 40: both answers.
  for (const std::string target :
       {"/fhir/Observation?subject:Patient.family=Same", "/fhir/Patient?family=Same&_summary=count"}) {
    auto at_bound = outcomes(target);
    EXPECT_GT(at_bound[200], 0) << target;
    EXPECT_GT(at_bound[400], 0) << target;
    EXPECT_EQ(at_bound[200] + at_bound[400], 60) << target;
  }
  EXPECT_EQ(outcomes("/fhir/Observation?subject:Patient.family=Few")[200], 60);
  EXPECT_EQ(outcomes("/fhir/Patient?family=Few&_summary=count")[200], 60);
  EXPECT_EQ(outcomes("/fhir/Patient?_summary=count")[400], 60) << "75 matches lie beyond every draw";
  // A count that completes is exact, whatever the draw.
  for (int i = 0; i < 20; ++i) {
    auto counted = http::testing::CallHandler(
        noisy, http::testing::MakeRequest("GET", "/fhir/Patient?family=Same&_summary=count", system_token_));
    if (counted.status == 200) {
      EXPECT_EQ(counted.Json()["total"], 40) << counted.body;
    }
  }
}

// Filling a page past hidden matches also stops at a drawn number of
// matches examined (at least 64 * _count): past 64 hidden matches, the next
// visible one is sometimes on the page and sometimes behind a short page's
// next link, so the short page does not say that exactly 64 or more hidden
// matches came first.
TEST_F(SearchApiTest, RefillingAPagePastHiddenMatchesStopsAtADrawnNumber) {
  P1InCareOfDr1();
  Obs("v0", "p1", "2024-01-01");
  for (int i = 0; i < 64; ++i) Obs("h" + std::to_string(100 + i), "p2", "2024-02-" + std::to_string(10 + i % 18));
  Obs("v1", "p1", "2024-03-01");
  const std::string dr = Token("alice", "clinician", "Practitioner/dr1", "user/*.rs");
  ServiceOptions so = Options();
  so.join_examined_limit = 40;  // the page bound is then 64 * _count = 64, drawn within [16, 112]
  FhirService noisy(vault_->store(), access_.get(), vault_->audit_trail(), so);
  auto call = [&](const std::string& target) {
    return http::testing::CallHandler(noisy, http::testing::MakeRequest("GET", target, dr));
  };
  auto first = call("/fhir/Observation?code=http://loinc.org|1234-5&_sort=date&_count=1");
  ASSERT_EQ(first.status, 200) << first.body;
  ASSERT_EQ(Ids(first.Json()), (std::vector<std::string>{"Observation/v0"}));
  const std::string next = Link(first.Json(), "next");
  ASSERT_FALSE(next.empty()) << first.body;
  int with_v1 = 0, short_with_link = 0;
  for (int i = 0; i < 60; ++i) {
    auto r = call(next);
    ASSERT_EQ(r.status, 200) << r.body;
    const auto ids = Ids(r.Json());
    if (ids == std::vector<std::string>{"Observation/v1"}) {
      ++with_v1;
    } else {
      EXPECT_TRUE(ids.empty()) << r.body;
      EXPECT_FALSE(Link(r.Json(), "next").empty()) << "a short page leads on";
      ++short_with_link;
    }
  }
  EXPECT_GT(with_v1, 0);
  EXPECT_GT(short_with_link, 0);
}

}  // namespace
}  // namespace phivault::api
