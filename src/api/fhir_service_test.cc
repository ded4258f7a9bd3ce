#include "api/fhir_service.h"
#include "api/testing/service_fixture.h"


#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <condition_variable>
#include <mutex>
#include <regex>

#include "api/auth_service.h"
#include "api/vault.h"
#include "auth/password.h"
#include "auth/testing/test_keys.h"
#include "auth/token_issuer.h"
#include "store/account_store.h"
#include "common/testing/temp_dir.h"
#include "http/testing/call.h"
#include "fhir/time.h"

namespace phivault::api {
namespace {

TEST_F(FhirServiceTest, CreateReadUpdateDeleteLifecycle) {
  auto c = Call("POST", "/fhir/Patient", R"({"resourceType":"Patient","id":"ignored","name":[{"family":"Doe"}]})");
  ASSERT_EQ(c.status, 201) << c.body;
  auto created = c.Json();
  std::string id(created["id"].as_string());
  EXPECT_NE(id, "ignored");
  EXPECT_EQ(c.Header("ETag"), "W/\"1\"");
  EXPECT_FALSE(c.Header("Last-Modified").empty());
  EXPECT_EQ(c.Header("Location"), "https://vault.test/fhir/Patient/" + id + "/_history/1");
  EXPECT_EQ(created["meta"].as_object()["versionId"], "1");
  EXPECT_EQ(c.Header("Content-Type"), "application/fhir+json; charset=utf-8");

  auto r = Call("GET", "/fhir/Patient/" + id);
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.Json()["name"].as_array()[0].as_object()["family"], "Doe");
  EXPECT_EQ(r.Header("ETag"), "W/\"1\"");

  auto u = Call("PUT", "/fhir/Patient/" + id, R"({"resourceType":"Patient","id":")" + id + R"(","active":true})",
                {{"if-match", "W/\"1\""}});
  ASSERT_EQ(u.status, 200) << u.body;
  EXPECT_EQ(u.Header("ETag"), "W/\"2\"");

  auto stale = Call("PUT", "/fhir/Patient/" + id, R"({"resourceType":"Patient","id":")" + id + R"("})",
                    {{"if-match", "W/\"1\""}});
  ExpectOutcome(stale, 412);

  auto d = Call("DELETE", "/fhir/Patient/" + id);
  EXPECT_EQ(d.status, 200);
  ExpectOutcome(Call("GET", "/fhir/Patient/" + id), 410);
  EXPECT_EQ(Call("GET", "/fhir/Patient/" + id + "/_history/1").status, 200);
  ExpectOutcome(Call("GET", "/fhir/Patient/" + id + "/_history/3"), 410);
  ExpectOutcome(Call("GET", "/fhir/Patient/" + id + "/_history/9"), 404);

  auto h = Call("GET", "/fhir/Patient/" + id + "/_history");
  ASSERT_EQ(h.status, 200);
  auto hb = h.Json();
  EXPECT_EQ(hb["type"], "history");
  auto& entries = hb["entry"].as_array();
  ASSERT_EQ(entries.size(), 3u);
  EXPECT_EQ(entries[0].as_object().at("request").as_object().at("method"), "DELETE");
  EXPECT_EQ(entries[2].as_object().at("request").as_object().at("method"), "POST");
}

TEST_F(FhirServiceTest, UpdateCreatesWithClientIdAndChecksIds) {
  auto c = Call("PUT", "/fhir/Practitioner/dr-1", R"({"resourceType":"Practitioner","id":"dr-1"})");
  EXPECT_EQ(c.status, 201) << c.body;
  ExpectOutcome(Call("PUT", "/fhir/Practitioner/dr-1", R"({"resourceType":"Practitioner","id":"dr-2"})"), 400);
  ExpectOutcome(Call("PUT", "/fhir/Practitioner/dr-1", R"({"resourceType":"Practitioner"})"), 400);
  ExpectOutcome(Call("PUT", "/fhir/Practitioner/dr-1", R"({"resourceType":"Patient","id":"dr-1"})"), 400);
  EXPECT_EQ(HistoryCount("Practitioner"), 1) << "rejected updates must store nothing";
}

TEST_F(FhirServiceTest, BadInputGetsOperationOutcomeAndStoresNothing) {
  ExpectOutcome(Call("POST", "/fhir/Patient", "{not json"), 400);
  ExpectOutcome(Call("POST", "/fhir/Patient", std::string("{\"resourceType\":\"Patient\",\"x\":\"\xff\xfe\"}")), 400);
  std::string deep = R"({"resourceType":"Patient","a":)";
  for (int i = 0; i < 100; ++i) deep += "[";
  for (int i = 0; i < 100; ++i) deep += "]";
  deep += "}";
  ExpectOutcome(Call("POST", "/fhir/Patient", deep), 400);
  ExpectOutcome(Call("POST", "/fhir/Patient", R"({"resourceType":"Spaceship"})"), 400);
  ExpectOutcome(Call("POST", "/fhir/Patient", R"([1,2])"), 400);
  ExpectOutcome(Call("POST", "/fhir/Patient", R"({"resourceType":"Patient"})", {{"content-type", "text/plain"}}), 415);
  ExpectOutcome(Call("GET", "/fhir/Spaceship/1"), 404);
  ExpectOutcome(Call("GET", "/fhir/Patient/bad$id"), 400);
  ExpectOutcome(Call("GET", "/nowhere"), 404);
  ExpectOutcome(Call("GET", "/fhir/metadata?_format=xml"), 406);
  auto m = Call("POST", "/fhir/Patient/x");
  ExpectOutcome(m, 405);
  EXPECT_EQ(m.Header("Allow"), "GET, PUT, PATCH, DELETE");
  EXPECT_EQ(HistoryCount("Patient"), 0);
}

TEST_F(FhirServiceTest, TransactionRewritesUrnReferencesAndIsAtomic) {
  std::string tx = R"({"resourceType":"Bundle","type":"transaction","entry":[
    {"fullUrl":"urn:uuid:11111111-1111-4111-8111-111111111111",
     "resource":{"resourceType":"Patient","name":[{"family":"Tx"}]},
     "request":{"method":"POST","url":"Patient"}},
    {"fullUrl":"urn:uuid:22222222-2222-4222-8222-222222222222",
     "resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},
                 "subject":{"reference":"urn:uuid:11111111-1111-4111-8111-111111111111"}},
     "request":{"method":"POST","url":"Observation"}}]})";
  auto r = Call("POST", "/fhir", tx);
  ASSERT_EQ(r.status, 200) << r.body;
  auto b = r.Json();
  EXPECT_EQ(b["type"], "transaction-response");
  auto& entries = b["entry"].as_array();
  ASSERT_EQ(entries.size(), 2u);
  std::string patient_loc(entries[0].as_object().at("response").as_object().at("location").as_string());
  std::string obs_loc(entries[1].as_object().at("response").as_object().at("location").as_string());
  std::string patient_id = patient_loc.substr(8, patient_loc.find("/_history") - 8);
  std::string obs_id = obs_loc.substr(12, obs_loc.find("/_history") - 12);
  auto obs = Call("GET", "/fhir/Observation/" + obs_id);
  ASSERT_EQ(obs.status, 200) << obs_loc;
  EXPECT_EQ(std::string(obs.Json()["subject"].as_object()["reference"].as_string()), "Patient/" + patient_id);

  // A transaction with one failing entry stores nothing at all.
  std::string bad = R"({"resourceType":"Bundle","type":"transaction","entry":[
    {"resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}},
    {"resource":{"resourceType":"Patient","id":")" + patient_id + R"("},
     "request":{"method":"PUT","url":"Patient/)" + patient_id + R"(","ifMatch":"W/\"9\""}}]})";
  int before = HistoryCount("Patient");
  ExpectOutcome(Call("POST", "/fhir", bad), 412);
  EXPECT_EQ(HistoryCount("Patient"), before);
}

TEST_F(FhirServiceTest, BatchEntriesSucceedOrFailAlone) {
  std::string batch = R"({"resourceType":"Bundle","type":"batch","entry":[
    {"resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}},
    {"resource":{"resourceType":"Patient","id":"nope"},"request":{"method":"PUT","url":"Patient/nope","ifMatch":"W/\"4\""}},
    {"request":{"method":"GET","url":"Patient/missing"}}]})";
  auto r = Call("POST", "/fhir", batch);
  ASSERT_EQ(r.status, 200) << r.body;
  json::object body = r.Json();
  auto& e = body["entry"].as_array();
  ASSERT_EQ(e.size(), 3u);
  EXPECT_EQ(e[0].as_object().at("response").as_object().at("status"), "201 Created");
  // If-Match on a record that does not exist: 404, as for a hidden one.
  EXPECT_EQ(e[1].as_object().at("response").as_object().at("status"), "404 Not Found");
  EXPECT_EQ(e[2].as_object().at("response").as_object().at("status"), "404 Not Found");
  EXPECT_EQ(HistoryCount("Patient"), 1);
}

TEST_F(FhirServiceTest, ConditionalCreateReturnsExisting) {
  std::string body = R"({"resourceType":"Patient","identifier":[{"system":"urn:mrn","value":"M-1"}]})";
  auto a = Call("POST", "/fhir/Patient", body, {{"if-none-exist", "identifier=urn:mrn|M-1"}});
  ASSERT_EQ(a.status, 201);
  auto b = Call("POST", "/fhir/Patient", body, {{"if-none-exist", "identifier=urn:mrn|M-1"}});
  EXPECT_EQ(b.status, 200);
  EXPECT_EQ(a.Json()["id"], b.Json()["id"]);
  ExpectOutcome(Call("POST", "/fhir/Patient", body, {{"if-none-exist", "no-such-param=foo"}}), 400);
  EXPECT_EQ(HistoryCount("Patient"), 1);
}

// If-None-Exist must not tell a caller that records it may not read exist:
// for them a hidden match is no match, in a single create and in a bundle
// alike, while a match they may read is still the answer.
TEST_F(FhirServiceTest, ConditionalCreateIgnoresMatchesTheCallerMayNotSee) {
  auto observation = [](const std::string& patient, const std::string& lab_id) {
    return R"({"resourceType":"Observation","status":"final","code":{"text":"x"},)"
           R"("identifier":[{"system":"urn:lab","value":")" +
           lab_id + R"("}],"subject":{"reference":"Patient/)" + patient + R"("}})";
  };
  // pat2's records are hidden from dr2; pat3 is dr2's patient.
  ASSERT_EQ(Call("PUT", "/fhir/Patient/pat2", R"({"resourceType":"Patient","id":"pat2"})").status, 201);
  PutPatientInCareOf("pat3", "ct3", "Practitioner/dr2");
  ASSERT_EQ(Call("POST", "/fhir/Observation", observation("pat2", "L-7")).status, 201);
  ASSERT_EQ(Call("POST", "/fhir/Observation", observation("pat2", "L-9")).status, 201);
  std::string dr = "Bearer " + Token("bob", "clinician", "Practitioner/dr2", "user/*.cruds");
  const std::string own = observation("pat3", "L-7");

  // Only a hidden match: as if none.
  auto first = Call("POST", "/fhir/Observation", own, {{"authorization", dr}, {"if-none-exist", "identifier=urn:lab|L-7"}});
  EXPECT_EQ(first.status, 201) << first.body;
  // A hidden and a visible match: the visible one, not "several".
  auto again = Call("POST", "/fhir/Observation", own, {{"authorization", dr}, {"if-none-exist", "identifier=urn:lab|L-7"}});
  EXPECT_EQ(again.status, 200) << again.body;
  EXPECT_EQ(again.Json()["id"], first.Json()["id"]);
  // A bundle entry whose condition matches only a hidden record is created.
  auto b = Call("POST", "/fhir", R"({"resourceType":"Bundle","type":"batch","entry":[{"resource":)" +
                                     observation("pat3", "L-9") +
                                     R"(,"request":{"method":"POST","url":"Observation","ifNoneExist":"identifier=urn:lab|L-9"}}]})",
                {{"authorization", dr}});
  ASSERT_EQ(b.status, 200) << b.body;
  EXPECT_EQ(b.Json()["entry"].as_array()[0].as_object().at("response").as_object().at("status"), "201 Created")
      << b.body;
  // The system client sees every record: several matches.
  ExpectOutcome(Call("POST", "/fhir/Observation", own, {{"if-none-exist", "identifier=urn:lab|L-7"}}), 412);
}

TEST_F(FhirServiceTest, HistoryPagingFollowsNextLinks) {
  for (int i = 0; i < 5; ++i) ASSERT_EQ(Call("POST", "/fhir/Observation", R"({"resourceType":"Observation"})").status, 201);
  std::string url = "/fhir/Observation/_history?_count=2";
  int pages = 0, total = 0;
  while (!url.empty() && pages < 10) {
    auto r = Call("GET", url);
    ASSERT_EQ(r.status, 200) << r.body;
    auto b = r.Json();
    total += static_cast<int>(b["entry"].as_array().size());
    url.clear();
    for (auto& l : b["link"].as_array()) {
      if (l.as_object().at("relation") == "next") {
        std::string next(l.as_object().at("url").as_string());
        url = next.substr(std::string("https://vault.test").size());
      }
    }
    ++pages;
  }
  EXPECT_EQ(total, 5);
  EXPECT_EQ(pages, 3);
}

// History cursors are sealed to their history and page size: a plain
// sequence number, an edited cursor or one moved to another history is 400.
TEST_F(FhirServiceTest, HistoryCursorsAreSealed) {
  for (int i = 0; i < 3; ++i) ASSERT_EQ(Call("POST", "/fhir/Observation", R"({"resourceType":"Observation"})").status, 201);
  ASSERT_EQ(Call("POST", "/fhir/Patient", R"({"resourceType":"Patient"})").status, 201);
  auto first = Call("GET", "/fhir/Observation/_history?_count=1");
  ASSERT_EQ(first.status, 200);
  std::string cursor;
  const auto first_json = first.Json();
  for (const auto& l : first_json.at("link").as_array()) {
    if (l.at("relation") == "next") {
      std::string url(l.at("url").as_string());
      cursor = url.substr(url.find("_cursor=") + 8);
    }
  }
  ASSERT_GT(cursor.size(), 20u) << "a sealed position, not a sequence number: " << cursor;
  EXPECT_EQ(Call("GET", "/fhir/Observation/_history?_count=1&_cursor=" + cursor).status, 200);
  std::string edited = cursor;
  edited[edited.size() / 2] = edited[edited.size() / 2] == 'A' ? 'B' : 'A';
  for (const std::string& bad : {std::string("/fhir/Observation/_history?_count=1&_cursor=2"),
                                 "/fhir/Observation/_history?_count=1&_cursor=" + edited,
                                 "/fhir/Observation/_history?_count=2&_cursor=" + cursor,
                                 "/fhir/Patient/_history?_count=1&_cursor=" + cursor,
                                 "/fhir/_history?_count=1&_cursor=" + cursor}) {
    ExpectOutcome(Call("GET", bad), 400);
  }
  // A search cursor is not a history cursor.
  auto search = Call("GET", "/fhir/Observation?_count=1").Json();
  for (const auto& l : search.at("link").as_array()) {
    if (l.at("relation") == "next") {
      std::string url(l.at("url").as_string());
      ExpectOutcome(Call("GET", "/fhir/Observation/_history?_count=1&" + url.substr(url.find("_cursor="))), 400);
    }
  }
}

TEST_F(FhirServiceTest, MetadataPrettyMinimalAndProbes) {
  auto m = Call("GET", "/fhir/metadata");
  ASSERT_EQ(m.status, 200);
  auto cs = m.Json();
  EXPECT_EQ(cs["resourceType"], "CapabilityStatement");
  EXPECT_EQ(cs["fhirVersion"], "4.0.1");
  auto pretty = Call("GET", "/fhir/metadata?_pretty=true");
  EXPECT_NE(pretty.body.find('\n'), std::string::npos);
  auto plain = Call("GET", "/fhir/metadata", "", {{"accept", "application/json"}});
  EXPECT_EQ(plain.Header("Content-Type"), "application/json; charset=utf-8");

  auto minimal = Call("POST", "/fhir/Patient", R"({"resourceType":"Patient"})", {{"prefer", "return=minimal"}});
  EXPECT_EQ(minimal.status, 201);
  EXPECT_TRUE(minimal.body.empty());
  EXPECT_FALSE(minimal.Header("Location").empty());

  EXPECT_EQ(Call("GET", "/healthz").status, 200);
  EXPECT_EQ(Call("GET", "/readyz").status, 200);
  auto metrics = Call("GET", "/metrics");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_NE(metrics.body.find("phivault_store_versions 1"), std::string::npos) << metrics.body;
  service_->SetDraining();
  EXPECT_EQ(Call("GET", "/readyz").status, 503);
}

TEST_F(FhirServiceTest, EveryRouteReportsALowCardinalityRouteLabel) {
  auto r = Call("GET", "/fhir/Patient/abc");
  bool found = false;
  for (auto& [k, v] : r.headers) {
    if (k == "X-Phivault-Route") {
      found = true;
      EXPECT_EQ(v, "/fhir/{type}/{id}");
    }
  }
  EXPECT_TRUE(found);
}


TEST_F(FhirServiceTest, NoIdentityNoDataButMetadataIsPublic) {
  EXPECT_EQ(Call("GET", "/fhir/metadata", "", {{"authorization", ""}}).status, 200);
  auto r = Call("GET", "/fhir/Patient/x", "", {{"authorization", ""}});
  ExpectOutcome(r, 401);
  EXPECT_EQ(r.Header("WWW-Authenticate"), "Bearer realm=\"phivault\"");
  ExpectOutcome(Call("GET", "/fhir/Patient/x", "", {{"authorization", "Bearer not.a.token"}}), 401);
  ExpectOutcome(Call("GET", "/fhir/Patient/x", "", {{"authorization", "Basic dXNlcjpwdw=="}}), 401);
  // A token whose signature was tampered with.
  std::string t = Token("u", "system", "", "system/*.rs");
  t.back() = t.back() == 'A' ? 'B' : 'A';
  ExpectOutcome(Call("GET", "/fhir/Patient/x", "", {{"authorization", "Bearer " + t}}), 401);
  auto smart = Call("GET", "/.well-known/smart-configuration", "", {{"authorization", ""}});
  EXPECT_EQ(smart.status, 200);
  EXPECT_NE(smart.body.find("token_endpoint"), std::string::npos);
}

TEST_F(FhirServiceTest, ClinicianNeedsACareRelationshipAndDenialLooksLikeMissing) {
  PutPatientWithObservation("pat1", "obs1");
  Headers dr = {{"authorization", "Bearer " + Token("alice", "clinician", "Practitioner/dr1", "user/*.cruds")}};
  auto denied = Call("GET", "/fhir/Observation/obs1", "", dr);
  auto missing = Call("GET", "/fhir/Observation/nope", "", dr);
  EXPECT_EQ(denied.status, 404);
  EXPECT_EQ(denied.body, missing.body) << "a denied read must look exactly like a missing record";

  // A CareTeam naming the practitioner takes effect at once.
  ASSERT_EQ(Call("PUT", "/fhir/CareTeam/ct1",
                 R"({"resourceType":"CareTeam","id":"ct1","status":"active","subject":{"reference":"Patient/pat1"},)"
                 R"("participant":[{"member":{"reference":"Practitioner/dr1"}}]})")
                .status,
            201);
  EXPECT_EQ(Call("GET", "/fhir/Observation/obs1", "", dr).status, 200);
  // ...and is withdrawn at once when the CareTeam is deleted.
  ASSERT_EQ(Call("DELETE", "/fhir/CareTeam/ct1").status, 200);
  EXPECT_EQ(Call("GET", "/fhir/Observation/obs1", "", dr).status, 404);

  // Writes do not tell a hidden record from a missing one either.
  auto del_hidden = Call("DELETE", "/fhir/Observation/obs1", "", dr);
  auto del_missing = Call("DELETE", "/fhir/Observation/never-existed", "", dr);
  EXPECT_EQ(del_hidden.status, 404);
  EXPECT_EQ(del_hidden.body, del_missing.body);
  std::string other_patient =
      R"({"resourceType":"Observation","id":"ID","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/pat1"}})";
  auto put_hidden = Call("PUT", "/fhir/Observation/obs1", std::regex_replace(other_patient, std::regex("ID"), "obs1"), dr);
  auto put_missing =
      Call("PUT", "/fhir/Observation/fresh-id", std::regex_replace(other_patient, std::regex("ID"), "fresh-id"), dr);
  EXPECT_EQ(put_hidden.status, put_missing.status);
  EXPECT_EQ(put_hidden.body, put_missing.body);
  EXPECT_EQ(put_missing.status, 403) << "creating data for an unrelated patient is refused";
  // With If-Match and content the caller may create, a PUT creates nothing
  // either way, so it must not tell the hidden record from a missing one.
  std::string unlinked = R"({"resourceType":"Observation","id":"ID","status":"final","code":{"text":"x"}})";
  Headers dr_if_match = dr;
  dr_if_match.emplace_back("if-match", "W/\"1\"");
  auto if_match_hidden =
      Call("PUT", "/fhir/Observation/obs1", std::regex_replace(unlinked, std::regex("ID"), "obs1"), dr_if_match);
  auto if_match_missing =
      Call("PUT", "/fhir/Observation/fresh-2", std::regex_replace(unlinked, std::regex("ID"), "fresh-2"), dr_if_match);
  EXPECT_EQ(if_match_hidden.status, 404) << if_match_hidden.body;
  EXPECT_EQ(if_match_missing.status, 404) << if_match_missing.body;
  EXPECT_EQ(if_match_hidden.body, if_match_missing.body);
  EXPECT_EQ(Call("GET", "/fhir/Observation/fresh-2").status, 404) << "nothing was created";
  // ...and with content the caller may not create, both are that create's
  // refusal (403), as without If-Match.
  auto refused_hidden =
      Call("PUT", "/fhir/Observation/obs1", std::regex_replace(other_patient, std::regex("ID"), "obs1"), dr_if_match);
  auto refused_missing =
      Call("PUT", "/fhir/Observation/fresh-3", std::regex_replace(other_patient, std::regex("ID"), "fresh-3"),
           dr_if_match);
  EXPECT_EQ(refused_hidden.status, 403) << refused_hidden.body;
  EXPECT_EQ(refused_missing.status, refused_hidden.status) << refused_missing.body;
  EXPECT_EQ(refused_missing.body, refused_hidden.body);

  // History shows only what the caller may see.
  auto h = Call("GET", "/fhir/Observation/_history", "", dr);
  ASSERT_EQ(h.status, 200);
  auto hb = h.Json();
  EXPECT_TRUE(!hb.contains("entry") || hb["entry"].as_array().empty()) << h.body;
}

// pat2 with one Observation (obs2), written by the system client. Clinicians
// in these tests have no care relationship with pat2.
class HiddenRecordTest : public FhirServiceTest {
 protected:
  void SetUp() override {
    FhirServiceTest::SetUp();
    if (HasFatalFailure()) return;
    PutPatientWithObservation("pat2", "obs2");
  }
};

TEST_F(HiddenRecordTest, BreakGlassOpensOneRecordForAClinicianOnly) {
  std::string dr = "Bearer " + Token("bob", "clinician", "Practitioner/dr2", "user/*.cruds");
  EXPECT_EQ(Call("GET", "/fhir/Observation/obs2", "", {{"authorization", dr}}).status, 404);
  EXPECT_EQ(Call("GET", "/fhir/Observation/obs2", "",
                 {{"authorization", dr}, {"x-purpose-of-use", "ETREAT"}, {"x-break-glass-reason", ""}})
                .status,
            404)
      << "a reason is required";
  EXPECT_EQ(Call("GET", "/fhir/Observation/obs2", "",
                 {{"authorization", dr}, {"x-purpose-of-use", "ETREAT"}, {"x-break-glass-reason", "unconscious in ED"}})
                .status,
            200);
  // The grant holds for that patient for the window.
  EXPECT_EQ(Call("GET", "/fhir/Patient/pat2", "", {{"authorization", dr}}).status, 200);
  std::string reg = "Bearer " + Token("carol", "registration", "Practitioner/clerk", "user/*.cruds");
  auto r = Call("GET", "/fhir/Observation/obs2", "",
                {{"authorization", reg}, {"x-purpose-of-use", "ETREAT"}, {"x-break-glass-reason", "curious"}});
  ExpectOutcome(r, 403);
  EXPECT_NE(r.body.find("role"), std::string::npos) << r.body;
}

// Break-glass needs one named record: type or system history with the
// headers must not open grants for every patient it scans, and history
// across a type needs the `s` scope letter, like a search.
TEST_F(HiddenRecordTest, HistoryScansNeitherBreakGlassNorPassWithReadScope) {
  std::string dr = "Bearer " + Token("bob", "clinician", "Practitioner/dr2", "user/*.cruds");
  const Headers glass = {
      {"authorization", dr}, {"x-purpose-of-use", "ETREAT"}, {"x-break-glass-reason", "unconscious in ED"}};
  for (const char* path : {"/fhir/Observation/_history", "/fhir/_history"}) {
    auto h = Call("GET", path, "", glass);
    ASSERT_EQ(h.status, 200) << path << ": " << h.body;
    EXPECT_EQ(h.body.find("obs2"), std::string::npos) << path;
  }
  EXPECT_EQ(Call("GET", "/fhir/Observation/obs2", "", {{"authorization", dr}}).status, 404) << "no grant was opened";

  std::string read_only = "Bearer " + Token("dee", "clinician", "Practitioner/dr2", "user/Observation.r");
  ExpectOutcome(Call("GET", "/fhir/Observation/_history", "", {{"authorization", read_only}}), 403);
  EXPECT_EQ(Call("GET", "/fhir/Observation/obs2/_history", "", {{"authorization", read_only}}).status, 404)
      << "instance history needs only r (and is hidden here for lack of a relationship)";
}

// Whether a record or one of its versions exists must not show through a
// refusal: not in vread's wording, not in a batch GET's status.
TEST_F(HiddenRecordTest, ReadsAnswerAlikeWhetherTheRecordExistsOrNot) {
  std::string dr = "Bearer " + Token("bob", "clinician", "Practitioner/dr2", "user/*.cruds");
  auto missing = Call("GET", "/fhir/Observation/nope/_history/1", "", {{"authorization", dr}});
  ExpectOutcome(missing, 404);
  for (const char* path : {"/fhir/Observation/obs2/_history/1", "/fhir/Observation/obs2/_history/7"}) {
    auto r = Call("GET", path, "", {{"authorization", dr}});
    EXPECT_EQ(r.status, 404) << path;
    EXPECT_EQ(r.body, missing.body) << path;
  }
  // Even for a caller who sees the record, a missing version reads like a missing record.
  auto no_version = Call("GET", "/fhir/Observation/obs2/_history/7");
  EXPECT_EQ(no_version.status, 404);
  EXPECT_EQ(no_version.body, missing.body);

  // A type outside the token's scopes: refused alike, present or not.
  std::string patients_only = "Bearer " + Token("eve", "clinician", "Practitioner/dr2", "user/Patient.rs");
  auto r = Call("POST", "/fhir", R"({"resourceType":"Bundle","type":"batch","entry":[
      {"request":{"method":"GET","url":"Observation/obs2"}},
      {"request":{"method":"GET","url":"Observation/nope"}},
      {"request":{"method":"GET","url":"Observation/obs2/_history/1"}},
      {"request":{"method":"GET","url":"Observation/obs2/_history/7"}}]})",
                {{"authorization", patients_only}});
  ASSERT_EQ(r.status, 200) << r.body;
  json::object body = r.Json();
  auto& e = body["entry"].as_array();
  ASSERT_EQ(e.size(), 4u);
  for (const auto& entry : e) {
    EXPECT_EQ(entry.as_object().at("response").as_object().at("status"), "403 Forbidden") << r.body;
  }
}

TEST_F(FhirServiceTest, ScopesLimitWritesAndTransactionsAreAuthorizedWhole) {
  std::string reader = "Bearer " + Token("svc", "system", "", "system/Observation.rs");
  auto c = Call("POST", "/fhir/Observation", R"({"resourceType":"Observation","status":"final","code":{"text":"x"}})",
                {{"authorization", reader}});
  ExpectOutcome(c, 403);
  std::string tx = R"({"resourceType":"Bundle","type":"transaction","entry":[
    {"resource":{"resourceType":"Observation","status":"final","code":{"text":"a"}},"request":{"method":"POST","url":"Observation"}},
    {"resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}}]})";
  std::string obs_writer = "Bearer " + Token("svc2", "system", "", "system/Observation.cruds");
  ExpectOutcome(Call("POST", "/fhir", tx, {{"authorization", obs_writer}}), 403);
  EXPECT_EQ(HistoryCount("Observation"), 0) << "a transaction with a denied entry stores nothing";
}

// An external OpenID Connect provider (RS256, its JWKS from a file) and a
// registered device authenticating by client certificate.
TEST_F(FhirServiceTest, ExternalIssuerTokensAndDeviceCertificates) {
  std::string jwks = tmp_.Sub("idp-jwks.json");
  phivault::testing::WriteFile(jwks, auth::testing::TestJwks());
  auto accounts = store::OpenAccountStore(tmp_.Sub("data"), vault_->keyring());
  ASSERT_TRUE(accounts.ok()) << accounts.status().ToString();
  store::DeviceRecord dev;
  dev.device_id = "monitor-1";
  dev.cert_sha256 = std::string(64, 'a');
  dev.patients = {"bound"};
  ASSERT_TRUE((*accounts)->AddDevice(dev).ok());

  AccessConfig ac;
  ac.builtin_issuer = "https://vault.test";
  ac.builtin_audience = "https://vault.test/fhir";
  ExternalIssuer idp;
  idp.issuer = "https://idp.test";
  idp.audiences = {"https://vault.test/fhir"};
  idp.jwks_file = jwks;
  ac.external_issuers.push_back(idp);
  auto access = AccessControl::Create(ac, vault_->keyring(), vault_->store(), accounts->get());
  ASSERT_TRUE(access.ok()) << access.status().ToString();
  ServiceOptions so;
  so.base_url = "https://vault.test";
  FhirService svc(vault_->store(), access->get(), vault_->audit_trail(), so);
  auto call = [&](http::HttpRequest req) { return http::testing::CallHandler(svc, std::move(req)); };
  ASSERT_EQ(Call("PUT", "/fhir/Patient/bound", R"({"resourceType":"Patient","id":"bound"})").status, 201);

  int64_t now = fhir::NowMillis() / 1000;
  std::string payload = R"({"iss":"https://idp.test","aud":"https://vault.test/fhir","sub":"svc-1","role":"system",)"
                        R"("scope":"system/Patient.rs","exp":)" + std::to_string(now + 300) + "}";
  auth::testing::TestKey rsa = auth::testing::TestRsaKey();
  std::string token = auth::testing::SignRaw(R"({"alg":"RS256","kid":"rsa-1","typ":"JWT"})", payload, rsa.get());
  http::HttpRequest r1;
  r1.method = "GET";
  r1.path = "/fhir/Patient/bound";
  r1.headers = {{"authorization", "Bearer " + token}};
  EXPECT_EQ(call(r1).status, 200);
  // The same claims signed by a key the provider does not publish.
  auth::testing::TestKey other = auth::testing::GenerateKey("rsa");
  r1.headers = {{"authorization", "Bearer " + auth::testing::SignRaw(R"({"alg":"RS256","kid":"rsa-1"})", payload,
                                                                     other.get())}};
  EXPECT_EQ(call(r1).status, 401);

  // The device may write an Observation for its bound patient only.
  http::HttpRequest d;
  d.method = "POST";
  d.path = "/fhir/Observation";
  d.client_cert_sha256 = std::string(64, 'a');
  d.headers = {{"content-type", "application/fhir+json"}};
  d.body = R"({"resourceType":"Observation","status":"final","code":{"text":"hr"},"subject":{"reference":"Patient/bound"}})";
  http::testing::Reply created = call(d);
  ASSERT_EQ(created.status, 201) << created.body;
  std::string own_id(json::parse(created.body).as_object().at("id").as_string());
  d.body = R"({"resourceType":"Observation","status":"final","code":{"text":"hr"},"subject":{"reference":"Patient/other"}})";
  EXPECT_EQ(call(d).status, 403);
  // It reads back what it wrote, and nothing else, even for its patient.
  ASSERT_EQ(Call("PUT", "/fhir/Observation/by-nurse",
                 R"({"resourceType":"Observation","id":"by-nurse","status":"final","code":{"text":"bp"},)"
                 R"("subject":{"reference":"Patient/bound"}})")
                .status,
            201);
  http::HttpRequest dr;
  dr.method = "GET";
  dr.path = "/fhir/Observation/" + own_id;
  dr.client_cert_sha256 = std::string(64, 'a');
  EXPECT_EQ(call(dr).status, 200);
  dr.path = "/fhir/Observation/by-nurse";
  EXPECT_EQ(call(dr).status, 404) << "devices read back only what they wrote";
  // Once somebody else deletes its Observation, the device neither learns
  // that nor brings it back at the same id.
  ASSERT_EQ(Call("DELETE", "/fhir/Observation/" + own_id).status, 200);
  dr.path = "/fhir/Observation/" + own_id;
  EXPECT_EQ(call(dr).status, 404);
  http::HttpRequest again = d;
  again.method = "PUT";
  again.path = "/fhir/Observation/" + own_id;
  again.body = R"({"resourceType":"Observation","id":")" + own_id +
               R"(","status":"final","code":{"text":"hr"},"subject":{"reference":"Patient/bound"}})";
  EXPECT_EQ(call(again).status, 404);
  dr.client_cert_sha256 = std::string(64, 'b');  // unregistered certificate
  EXPECT_EQ(call(dr).status, 401);

  // A disabled built-in account's tokens stop working (new tokens at once,
  // tokens already seen within the caller cache's minute).
  store::UserRecord nurse;
  nurse.username = "nurse1";
  nurse.password_hash = *auth::HashPassword("correct horse battery staple", {1, 8u << 20});
  nurse.role = "clinician";
  nurse.fhir_user = "Practitioner/nurse1";
  ASSERT_TRUE((*accounts)->CreateUser(nurse, nullptr).ok());
  http::HttpRequest nr;
  nr.method = "GET";
  nr.path = "/fhir/Patient/bound";
  nr.headers = {{"authorization", "Bearer " + Token("nurse1", "clinician", "Practitioner/nurse1", "user/*.rs")}};
  EXPECT_EQ(call(nr).status, 404) << "authenticated, but no care relationship";
  ASSERT_TRUE((*accounts)->SetUserDisabled("nurse1", true).ok());
  nr.headers = {{"authorization", "Bearer " + Token("nurse1", "clinician", "Practitioner/nurse1", "user/*.rs")}};
  EXPECT_EQ(call(nr).status, 401);
}

// A reused refresh token means the login is compromised: the access tokens
// already issued to it must stop working at once, not at their expiry.
TEST_F(FhirServiceTest, RefreshTokenReuseEndsTheLoginsAccessTokensAtOnce) {
  auto accounts = store::OpenAccountStore(tmp_.Sub("data"), vault_->keyring());
  ASSERT_TRUE(accounts.ok()) << accounts.status().ToString();
  const std::string password = "correct horse battery staple";
  store::UserRecord pat;
  pat.username = "pat1";
  pat.password_hash = *auth::HashPassword(password, {1, 8u << 20});
  pat.role = "patient";  // no MFA needed, so the login is one form post
  pat.fhir_user = "Patient/pat1";
  ASSERT_TRUE((*accounts)->CreateUser(pat, nullptr).ok());
  ASSERT_EQ(Call("PUT", "/fhir/Patient/pat1", R"({"resourceType":"Patient","id":"pat1"})").status, 201);

  AuthServiceOptions ao;
  ao.issuer = "https://vault.test";
  ao.password_params = {1, 8u << 20};
  auto auth = AuthService::Create(*accounts, vault_->keyring(), ao);
  ASSERT_TRUE(auth.ok()) << auth.status().ToString();
  AccessConfig ac;
  ac.builtin_issuer = "https://vault.test";
  ac.builtin_audience = "https://vault.test/fhir";
  ac.sessions = &(*auth)->sessions();
  auto access = AccessControl::Create(ac, vault_->keyring(), vault_->store(), accounts->get());
  ASSERT_TRUE(access.ok()) << access.status().ToString();
  ServiceOptions so;
  so.base_url = "https://vault.test";
  FhirService svc(vault_->store(), access->get(), vault_->audit_trail(), so);

  auto token_call = [&](const std::string& body) {
    http::HttpRequest r;
    r.method = "POST";
    r.path = r.target = "/auth/token";
    r.remote_address = "192.0.2.9:1";
    r.headers = {{"content-type", "application/x-www-form-urlencoded"}};
    r.body = body;
    http::testing::Reply reply = http::testing::CallHandler(**auth, std::move(r));
    return reply.status == 200 ? json::parse(reply.body).as_object() : json::object{};
  };
  auto read_own_via = [&](FhirService& service, const json::object& tokens) {
    http::HttpRequest r;
    r.method = "GET";
    r.path = r.target = "/fhir/Patient/pat1";
    r.headers = {{"authorization", "Bearer " + std::string(tokens.at("access_token").as_string())}};
    return http::testing::CallHandler(service, std::move(r)).status;
  };
  auto read_own = [&](const json::object& tokens) { return read_own_via(svc, tokens); };
  json::object other_login = token_call("grant_type=password&username=pat1&password=" + password);
  ASSERT_TRUE(other_login.contains("access_token"));
  json::object login = token_call("grant_type=password&username=pat1&password=" + password);
  ASSERT_TRUE(login.contains("access_token"));
  EXPECT_EQ(read_own(login), 200);
  const std::string r1(login.at("refresh_token").as_string());
  json::object refreshed = token_call("grant_type=refresh_token&refresh_token=" + r1);
  ASSERT_TRUE(refreshed.contains("access_token"));
  EXPECT_EQ(read_own(refreshed), 200);
  EXPECT_EQ(read_own(login), 200) << "the first access token is still valid: rotation alone does not end it";

  // Someone replays the exchanged refresh token.
  EXPECT_TRUE(token_call("grant_type=refresh_token&refresh_token=" + r1).empty());
  EXPECT_EQ(read_own(login), 401) << "cached callers are checked too";
  EXPECT_EQ(read_own(refreshed), 401);
  EXPECT_EQ(read_own(other_login), 200) << "the user's other login is not affected";
  // A service token the tracker never saw keeps the ordinary idle rule.
  EXPECT_EQ(Call("GET", "/fhir/Patient/pat1").status, 200);

  // After a restart the tracker is empty, but the ended login stays ended:
  // its refresh token records were revoked, and the token names its login.
  auto auth2 = AuthService::Create(*accounts, vault_->keyring(), ao);
  ASSERT_TRUE(auth2.ok());
  ac.sessions = &(*auth2)->sessions();
  auto access2 = AccessControl::Create(ac, vault_->keyring(), vault_->store(), accounts->get());
  ASSERT_TRUE(access2.ok());
  FhirService restarted(vault_->store(), access2->get(), vault_->audit_trail(), so);
  EXPECT_EQ(read_own_via(restarted, refreshed), 401);
  EXPECT_EQ(read_own_via(restarted, other_login), 200);
}

// Stored labels that do not parse (only a damaged database has them) could
// hide any sensitivity: the decision fails closed, even for a system caller.
TEST_F(FhirServiceTest, UnreadableStoredLabelsDenyEveryone) {
  ASSERT_EQ(Call("PUT", "/fhir/Patient/lab1", R"({"resourceType":"Patient","id":"lab1"})").status, 201);
  auto stored = vault_->store()->Read("Patient", "lab1");
  ASSERT_TRUE(stored.ok());
  store::ResourceVersion damaged = *stored;
  http::HttpRequest req = http::testing::MakeRequest("GET", "/fhir/Patient/lab1", system_token_);
  auto caller = access_->Authenticate(req, fhir::NowMillis());
  ASSERT_TRUE(caller.ok());
  EXPECT_TRUE(access_->Decide(**caller, policy::Interaction::kRead, damaged, req, fhir::NowMillis()).allowed);
  // Cut short, or parsing but not Codings: neither may pass as "no labels".
  for (const char* labels : {R"([{"code":"R")", "null", "{}", R"([{"code":5}])", R"(["R"])"}) {
    damaged.security_labels = labels;
    policy::Decision d = access_->Decide(**caller, policy::Interaction::kRead, damaged, req, fhir::NowMillis());
    EXPECT_FALSE(d.allowed) << labels;
    EXPECT_EQ(d.rule, "sensitivity") << labels;
    EXPECT_TRUE(d.hide_existence) << labels;
  }
  damaged.security_labels = R"([{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"N"}])";
  EXPECT_TRUE(access_->Decide(**caller, policy::Interaction::kRead, damaged, req, fhir::NowMillis()).allowed);
}

// A Binary (a scanned letter, a PDF report) is in no compartment, but its
// securityContext says whose it is: access follows that resource, so a
// clinician with the Binary scope cannot read every patient's documents.
TEST_F(FhirServiceTest, BinaryAccessFollowsItsSecurityContext) {
  PutPatientInCareOf("bp1", "bct1", "Practitioner/bdoc");
  ASSERT_EQ(Call("PUT", "/fhir/DocumentReference/bdr1",
                 R"({"resourceType":"DocumentReference","id":"bdr1","status":"current",)"
                 R"("subject":{"reference":"Patient/bp1"},"content":[{"attachment":{"url":"Binary/bin-doc"}}]})")
                .status,
            201);
  auto put_binary = [&](const std::string& id, const std::string& context) {
    std::string body = R"({"resourceType":"Binary","id":")" + id + R"(","contentType":"text/plain","data":"aGk=")";
    if (!context.empty()) body += R"(,"securityContext":{"reference":")" + context + R"("})";
    return Call("PUT", "/fhir/Binary/" + id, body + "}").status;
  };
  ASSERT_EQ(put_binary("bin-doc", "DocumentReference/bdr1"), 201);
  ASSERT_EQ(put_binary("bin-pat", "Patient/bp1"), 201);
  ASSERT_EQ(put_binary("bin-gone", "DocumentReference/never-stored"), 201);
  ASSERT_EQ(put_binary("bin-abs", "https://elsewhere.example/fhir/DocumentReference/x"), 201);
  ASSERT_EQ(put_binary("bin-free", ""), 201);

  const Headers related = {{"authorization", "Bearer " + Token("bd", "clinician", "Practitioner/bdoc", "user/*.rs")}};
  const Headers other = {{"authorization", "Bearer " + Token("bo", "clinician", "Practitioner/bother", "user/*.rs")}};
  for (const char* id : {"bin-doc", "bin-pat"}) {
    EXPECT_EQ(Call("GET", std::string("/fhir/Binary/") + id, "", related).status, 200) << id;
    ExpectOutcome(Call("GET", std::string("/fhir/Binary/") + id, "", other), 404);
  }
  // A context that cannot be followed denies everyone, the system too.
  for (const char* id : {"bin-gone", "bin-abs"}) {
    ExpectOutcome(Call("GET", std::string("/fhir/Binary/") + id, "", related), 404);
    ExpectOutcome(Call("GET", std::string("/fhir/Binary/") + id), 404);
  }
  // Without a securityContext a Binary is shared data, as before.
  EXPECT_EQ(Call("GET", "/fhir/Binary/bin-free", "", other).status, 200);
  // Whose it is, is stored with it (a Patient context, or the stored link of
  // the resource named), so the audit trail, $everything and exports see it.
  for (const char* id : {"bin-pat", "bin-doc"}) {
    auto stored = vault_->store()->Read("Binary", id);
    ASSERT_TRUE(stored.ok());
    EXPECT_EQ(stored->patients, std::vector<std::string>{"bp1"}) << id;
  }
  // Refused through the context's own type gate, the answer is still the
  // one for a missing Binary, not a 403 that would confirm it exists.
  const Headers binary_only = {
      {"authorization", "Bearer " + Token("bd2", "clinician", "Practitioner/bdoc", "user/Binary.rs")}};
  auto through_gate = Call("GET", "/fhir/Binary/bin-doc", "", binary_only);
  auto missing = Call("GET", "/fhir/Binary/no-such-binary", "", binary_only);
  EXPECT_EQ(through_gate.status, 404);
  EXPECT_EQ(through_gate.body, missing.body);
  // And a clinician cannot file a document into an unrelated patient's record.
  ExpectOutcome(Call("PUT", "/fhir/Binary/bin-new",
                     R"({"resourceType":"Binary","id":"bin-new","contentType":"text/plain","data":"aGk=",)"
                     R"("securityContext":{"reference":"DocumentReference/bdr1"}})",
                     {{"authorization", "Bearer " + Token("bo", "clinician", "Practitioner/bother", "user/*.cruds")}}),
                403);
}

// A tombstone is decided as the version it deleted: its labels and a
// Binary's securityContext are not stored with it, and a 410 to someone who
// could never read the record would tell them it existed.
TEST_F(FhirServiceTest, DeletedRecordsAreDecidedAsWhatTheyDeleted) {
  PutPatientInCareOf("dp1", "dct1", "Practitioner/ddoc");
  const Headers cleared = {{"authorization", "Bearer " + Token("backend", "system", "", "system/*.cruds", {"R"})}};
  ASSERT_EQ(Call("PUT", "/fhir/Observation/dsecret",
                 R"({"resourceType":"Observation","id":"dsecret","status":"final","code":{"text":"x"},)"
                 R"("meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality",)"
                 R"("code":"R"}]},"subject":{"reference":"Patient/dp1"}})",
                 cleared)
                .status,
            201);
  // A Binary whose context is stored only after it, so it stores no link.
  ASSERT_EQ(Call("PUT", "/fhir/Binary/dbin",
                 R"({"resourceType":"Binary","id":"dbin","contentType":"text/plain","data":"aGk=",)"
                 R"("securityContext":{"reference":"DocumentReference/ddr"}})")
                .status,
            201);
  ASSERT_EQ(Call("PUT", "/fhir/DocumentReference/ddr",
                 R"({"resourceType":"DocumentReference","id":"ddr","status":"current",)"
                 R"("subject":{"reference":"Patient/dp1"},"content":[{"attachment":{"url":"Binary/dbin"}}]})")
                .status,
            201);
  ASSERT_EQ(Call("DELETE", "/fhir/Observation/dsecret", "", cleared).status, 200);
  ASSERT_EQ(Call("DELETE", "/fhir/Binary/dbin").status, 200);

  const Headers related = {{"authorization", "Bearer " + Token("dd", "clinician", "Practitioner/ddoc", "user/*.rs")}};
  const Headers other = {{"authorization", "Bearer " + Token("do", "clinician", "Practitioner/dother", "user/*.rs")}};
  // Related but not cleared for R: the deleted record looks missing.
  auto hidden = Call("GET", "/fhir/Observation/dsecret", "", related);
  EXPECT_EQ(hidden.status, 404);
  EXPECT_EQ(hidden.body, Call("GET", "/fhir/Observation/never-stored", "", related).body);
  ExpectOutcome(Call("GET", "/fhir/Observation/dsecret", "", cleared), 410);
  // The deleted Binary follows its context: gone for the related clinician,
  // missing for everyone else.
  ExpectOutcome(Call("GET", "/fhir/Binary/dbin", "", related), 410);
  auto other_binary = Call("GET", "/fhir/Binary/dbin", "", other);
  EXPECT_EQ(other_binary.status, 404);
  EXPECT_EQ(other_binary.body, Call("GET", "/fhir/Binary/never-stored", "", other).body);
}

// A label added in a later version protects what the earlier versions
// showed: vread, history and a bundle's versioned GET decide an old version
// with the latest labels too, while a caller cleared for them still reads it.
TEST_F(FhirServiceTest, LabelsAddedLaterProtectEarlierVersions) {
  PutPatientInCareOf("lp1", "lct1", "Practitioner/ldoc");
  const Headers cleared = {{"authorization", "Bearer " + Token("backend", "system", "", "system/*.cruds", {"R"})}};
  ASSERT_EQ(Call("PUT", "/fhir/Observation/lobs",
                 R"({"resourceType":"Observation","id":"lobs","status":"final","code":{"text":"Zyxhiv"},)"
                 R"("subject":{"reference":"Patient/lp1"}})")
                .status,
            201);
  ASSERT_EQ(Call("PUT", "/fhir/Observation/lobs",
                 R"({"resourceType":"Observation","id":"lobs","status":"final","code":{"text":"Zyxhiv"},)"
                 R"("meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality",)"
                 R"("code":"R"}]},"subject":{"reference":"Patient/lp1"}})",
                 cleared)
                .status,
            200);
  const Headers related = {{"authorization", "Bearer " + Token("ld", "clinician", "Practitioner/ldoc", "user/*.rs")}};
  EXPECT_EQ(Call("GET", "/fhir/Observation/lobs", "", related).status, 404);
  auto vread = Call("GET", "/fhir/Observation/lobs/_history/1", "", related);
  EXPECT_EQ(vread.status, 404);
  EXPECT_EQ(vread.body.find("Zyxhiv"), std::string::npos);
  for (const char* history : {"/fhir/Observation/lobs/_history", "/fhir/Observation/_history", "/fhir/_history"}) {
    auto h = Call("GET", history, "", related);
    EXPECT_EQ(h.body.find("Zyxhiv"), std::string::npos) << history << ": " << h.body;
  }
  auto batch = Call("POST", "/fhir",
                    R"({"resourceType":"Bundle","type":"batch","entry":[)"
                    R"({"request":{"method":"GET","url":"Observation/lobs/_history/1"}}]})",
                    related);
  EXPECT_EQ(batch.status, 200) << batch.body;
  EXPECT_EQ(batch.body.find("Zyxhiv"), std::string::npos) << batch.body;
  EXPECT_NE(batch.body.find("404"), std::string::npos) << batch.body;

  // Deleting the labelled version does not lift the protection either.
  ASSERT_EQ(Call("DELETE", "/fhir/Observation/lobs", "", cleared).status, 200);
  EXPECT_EQ(Call("GET", "/fhir/Observation/lobs/_history/1", "", related).status, 404);

  // Cleared for R: every version is readable.
  auto cleared_vread = Call("GET", "/fhir/Observation/lobs/_history/1", "", cleared);
  EXPECT_EQ(cleared_vread.status, 200);
  EXPECT_NE(cleared_vread.body.find("Zyxhiv"), std::string::npos);
  auto cleared_history = Call("GET", "/fhir/Observation/lobs/_history", "", cleared).Json();
  EXPECT_EQ(cleared_history.at("entry").as_array().size(), 3u);

  // An unlabelled record's history is unaffected.
  ASSERT_EQ(Call("PUT", "/fhir/Observation/lplain",
                 R"({"resourceType":"Observation","id":"lplain","status":"final","code":{"text":"x"},)"
                 R"("subject":{"reference":"Patient/lp1"}})")
                .status,
            201);
  EXPECT_EQ(Call("GET", "/fhir/Observation/lplain/_history/1", "", related).status, 200);
}


}  // namespace
}  // namespace phivault::api
