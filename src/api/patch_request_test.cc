// PATCH /fhir/{type}/{id} with JSON Patch through the real FhirService,
// SqliteStore and AccessControl.
#include <gtest/gtest.h>

#include "api/testing/service_fixture.h"

namespace phivault::api {
namespace {

class PatchTest : public FhirServiceTest {
 protected:
  void SetUp() override {
    FhirServiceTest::SetUp();
    ASSERT_EQ(Call("PUT", "/fhir/Patient/pat1",
                   R"({"resourceType":"Patient","id":"pat1","active":false,"name":[{"family":"Old","given":["A"]}]})")
                  .status,
              201);
  }

  Reply Patch(const std::string& target, const std::string& patch, Headers headers = {}) {
    headers.emplace_back("content-type", "application/json-patch+json");
    return Call("PATCH", target, patch, std::move(headers));
  }

  int Versions(const std::string& type, const std::string& id) {
    auto h = Call("GET", "/fhir/" + type + "/" + id + "/_history");
    return h.status == 200 ? static_cast<int>(h.Json()["entry"].as_array().size()) : 0;
  }
};

TEST_F(PatchTest, AppliesThePatchAsANewVersion) {
  auto r = Patch("/fhir/Patient/pat1", R"([{"op":"test","path":"/active","value":false},
      {"op":"replace","path":"/active","value":true},
      {"op":"add","path":"/name/0/given/-","value":"B"},
      {"op":"replace","path":"/name/0/family","value":"New"}])");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Header("ETag"), "W/\"2\"");
  auto stored = Call("GET", "/fhir/Patient/pat1");
  ASSERT_EQ(stored.status, 200);
  auto o = stored.Json();
  EXPECT_EQ(o["active"], true);
  auto& name = o["name"].as_array()[0].as_object();
  EXPECT_EQ(name["family"], "New");
  EXPECT_EQ(name["given"].as_array().size(), 2u);
  EXPECT_EQ(name["given"].as_array()[1], "B");
  EXPECT_EQ(o["meta"].as_object()["versionId"], "2");
  // Prefer is honoured as for PUT.
  auto minimal = Patch("/fhir/Patient/pat1", R"([{"op":"remove","path":"/active"}])", {{"prefer", "return=minimal"}});
  EXPECT_EQ(minimal.status, 200);
  EXPECT_TRUE(minimal.body.empty());
  EXPECT_FALSE(Call("GET", "/fhir/Patient/pat1").Json().contains("active"));
}

TEST_F(PatchTest, IfMatchIsHonoured) {
  ExpectOutcome(Patch("/fhir/Patient/pat1", R"([{"op":"add","path":"/gender","value":"other"}])",
                      {{"if-match", "W/\"7\""}}),
                412);
  EXPECT_EQ(Versions("Patient", "pat1"), 1);
  auto ok = Patch("/fhir/Patient/pat1", R"([{"op":"add","path":"/gender","value":"other"}])", {{"if-match", "W/\"1\""}});
  EXPECT_EQ(ok.status, 200) << ok.body;
  ExpectOutcome(Patch("/fhir/Patient/pat1", R"([{"op":"add","path":"/gender","value":"male"}])",
                      {{"if-match", "W/\"1\""}}),
                412);
  ExpectOutcome(Patch("/fhir/Patient/pat1", "[]", {{"if-match", "nonsense"}}), 400);
  EXPECT_EQ(Versions("Patient", "pat1"), 2);
}

TEST_F(PatchTest, ErrorsAreOperationOutcomesAndStoreNothing) {
  // Well-formed but not applicable: 422.
  for (const char* patch : {R"([{"op":"test","path":"/active","value":true}])",
                            R"([{"op":"remove","path":"/birthDate"}])",
                            R"([{"op":"replace","path":"/id","value":"other"}])",
                            R"([{"op":"remove","path":"/id"}])",
                            R"([{"op":"replace","path":"/resourceType","value":"Observation"}])",
                            R"([{"op":"replace","path":"","value":[]}])",
                            R"([{"op":"add","path":"/name/5","value":{}}])"}) {
    auto r = Patch("/fhir/Patient/pat1", patch);
    ExpectOutcome(r, 422);
    EXPECT_EQ(r.Json()["issue"].as_array()[0].as_object()["code"], "processing") << patch;
  }
  // A malformed patch document: 400.
  for (const char* patch : {R"({"op":"remove","path":"/active"})", R"([{"op":"explode","path":"/active"}])",
                            R"([{"op":"remove","path":"active"}])", "[", R"([{"op":"add","path":"/a","value":1,"op":"x"}])"}) {
    ExpectOutcome(Patch("/fhir/Patient/pat1", patch), 400);
  }
  // The patched resource must stay within the service's parse limits (depth
  // 32 here): each round wraps /x in one more array.
  std::string deepen = R"([{"op":"add","path":"/x","value":1})";
  for (int i = 0; i < 40; ++i) {
    deepen += R"(,{"op":"move","from":"/x","path":"/y"},{"op":"add","path":"/x","value":[]},)"
              R"({"op":"move","from":"/y","path":"/x/0"})";
  }
  auto too_deep = Patch("/fhir/Patient/pat1", deepen + "]");
  ExpectOutcome(too_deep, 422);
  EXPECT_NE(too_deep.body.find("nest too deeply"), std::string::npos) << too_deep.body;
  // Only JSON Patch is accepted.
  ExpectOutcome(Call("PATCH", "/fhir/Patient/pat1", R"([{"op":"remove","path":"/active"}])"), 415);
  // Missing and deleted resources.
  ExpectOutcome(Patch("/fhir/Patient/nope", R"([{"op":"remove","path":"/active"}])"), 404);
  ASSERT_EQ(Call("PUT", "/fhir/Patient/gone", R"({"resourceType":"Patient","id":"gone"})").status, 201);
  ASSERT_EQ(Call("DELETE", "/fhir/Patient/gone").status, 200);
  ExpectOutcome(Patch("/fhir/Patient/gone", R"([{"op":"add","path":"/active","value":true}])"), 410);
  EXPECT_EQ(Versions("Patient", "pat1"), 1);
  EXPECT_EQ(Versions("Patient", "gone"), 2);
}

TEST_F(PatchTest, AuthorizationIsThatOfAnUpdate) {
  ASSERT_EQ(Call("PUT", "/fhir/Observation/obs1",
                 R"({"resourceType":"Observation","id":"obs1","status":"preliminary","code":{"text":"x"},)"
                 R"("subject":{"reference":"Patient/pat1"}})")
                .status,
            201);
  const std::string fix = R"([{"op":"replace","path":"/status","value":"final"}])";
  // A clinician without a care relationship: the record looks missing.
  Headers stranger = {{"authorization", "Bearer " + Token("bob", "clinician", "Practitioner/dr2", "user/*.cruds")}};
  auto hidden = Patch("/fhir/Observation/obs1", fix, stranger);
  auto missing = Patch("/fhir/Observation/nope", fix, stranger);
  EXPECT_EQ(hidden.status, 404);
  EXPECT_EQ(hidden.body, missing.body);
  // A read-only scope may not patch.
  Headers reader = {{"authorization", "Bearer " + Token("svc", "system", "", "system/*.rs")}};
  ExpectOutcome(Patch("/fhir/Observation/obs1", fix, reader), 403);
  // Moving the observation to another patient needs the right to write for
  // that patient too: the related clinician may not move it to a stranger,
  // and is answered exactly as the equivalent PUT.
  ASSERT_EQ(Call("PUT", "/fhir/CareTeam/ct1",
                 R"({"resourceType":"CareTeam","id":"ct1","status":"active","subject":{"reference":"Patient/pat1"},)"
                 R"("participant":[{"member":{"reference":"Practitioner/dr1"}}]})")
                .status,
            201);
  ASSERT_EQ(Call("PUT", "/fhir/Patient/pat2", R"({"resourceType":"Patient","id":"pat2"})").status, 201);
  Headers dr = {{"authorization", "Bearer " + Token("alice", "clinician", "Practitioner/dr1", "user/*.cruds")}};
  auto moved = Patch("/fhir/Observation/obs1", R"([{"op":"replace","path":"/subject/reference","value":"Patient/pat2"}])", dr);
  auto put = Call("PUT", "/fhir/Observation/obs1",
                  R"({"resourceType":"Observation","id":"obs1","status":"preliminary","code":{"text":"x"},)"
                  R"("subject":{"reference":"Patient/pat2"}})",
                  dr);
  EXPECT_GE(moved.status, 400);
  EXPECT_EQ(moved.status, put.status);
  EXPECT_EQ(moved.body, put.body);
  EXPECT_EQ(Versions("Observation", "obs1"), 1);
  auto r = Patch("/fhir/Observation/obs1", fix, dr);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Call("GET", "/fhir/Observation/obs1").Json()["status"], "final");
}

// A patch (within the body limit) that makes the resource larger than a
// body may be: the patch is what cannot be applied (422), not a request too
// large (413).
TEST_F(PatchTest, AResultBeyondTheSizeLimitIsUnprocessable) {
  ServiceOptions so;
  so.base_url = testing::TestVault::kIssuer;
  so.keyring = &vault_->keyring();
  so.parse_limits.max_bytes = 4096;
  FhirService small(vault_->store(), access_.get(), vault_->audit_trail(), so);
  const std::string note(3000, 'n');
  auto call = [&](std::string method, std::string target, std::string body, Headers headers) {
    http::HttpRequest req = http::testing::MakeRequest(std::move(method), std::move(target), system_token_);
    req.body = std::move(body);
    for (auto& h : headers) req.headers.push_back(std::move(h));
    return http::testing::CallHandler(small, std::move(req));
  };
  ASSERT_EQ(call("PUT", "/fhir/Patient/big",
                 R"({"resourceType":"Patient","id":"big","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">)" +
                     note + R"(</div>"}})",
                 {{"content-type", "application/fhir+json"}})
                .status,
            201);
  auto doubled = call("PATCH", "/fhir/Patient/big", R"([{"op":"add","path":"/name","value":[{"text":")" + note + R"("}]}])",
                      {{"content-type", "application/json-patch+json"}});
  ExpectOutcome(doubled, 422);
  EXPECT_NE(doubled.body.find("exceed"), std::string::npos) << doubled.body;
  EXPECT_EQ(Versions("Patient", "big"), 1);
}

// A patch is applied to the stored content and its result is returned, so
// it needs the right to read the record as well as to change it. Without
// that, an empty patch "[]" read the record for a write-only scope, and for
// a clinician whose patient's consent denies access but not correction.
TEST_F(PatchTest, AlsoNeedsTheRightToReadTheRecord) {
  ASSERT_EQ(Call("PUT", "/fhir/Observation/obs1",
                 R"({"resourceType":"Observation","id":"obs1","status":"preliminary","code":{"text":"secret-x"},)"
                 R"("subject":{"reference":"Patient/pat1"}})")
                .status,
            201);
  Headers writer = {{"authorization", "Bearer " + Token("svcw", "system", "", "system/Observation.cud")}};
  ExpectOutcome(Call("GET", "/fhir/Observation/obs1", "", writer), 403);
  auto blind = Patch("/fhir/Observation/obs1", "[]", writer);
  ExpectOutcome(blind, 403);
  EXPECT_EQ(blind.body.find("secret-x"), std::string::npos) << blind.body;
  ExpectOutcome(Patch("/fhir/Observation/obs1", R"([{"op":"test","path":"/code/text","value":"secret-x"}])", writer),
                403);
  // The same scope may still replace the record whole: PUT returns only what
  // the caller sent.
  EXPECT_EQ(Call("PUT", "/fhir/Observation/obs1",
                 R"({"resourceType":"Observation","id":"obs1","status":"final","code":{"text":"y"},)"
                 R"("subject":{"reference":"Patient/pat1"}})",
                 writer)
                .status,
            200);

  // A related clinician whose access (not correction) the patient's consent
  // denies: the record looks missing to a read, and to a patch.
  ASSERT_EQ(Call("PUT", "/fhir/CareTeam/ct1",
                 R"({"resourceType":"CareTeam","id":"ct1","status":"active","subject":{"reference":"Patient/pat1"},)"
                 R"("participant":[{"member":{"reference":"Practitioner/dr1"}}]})")
                .status,
            201);
  Headers dr = {{"authorization", "Bearer " + Token("alice", "clinician", "Practitioner/dr1", "user/*.cruds")}};
  ASSERT_EQ(Call("GET", "/fhir/Observation/obs1", "", dr).status, 200);
  ASSERT_EQ(Call("PUT", "/fhir/Consent/c1",
                 R"({"resourceType":"Consent","id":"c1","status":"active",)"
                 R"("scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"patient-privacy"}]},)"
                 R"("category":[{"text":"privacy"}],"patient":{"reference":"Patient/pat1"},)"
                 R"("provision":{"type":"deny","actor":[{"reference":{"reference":"Practitioner/dr1"}}],)"
                 R"("action":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentaction","code":"access"}]}]}})")
                .status,
            201);
  auto read = Call("GET", "/fhir/Observation/obs1", "", dr);
  EXPECT_EQ(read.status, 404) << read.body;
  auto patched = Patch("/fhir/Observation/obs1", "[]", dr);
  auto missing = Patch("/fhir/Observation/nope", "[]", dr);
  EXPECT_EQ(patched.status, 404) << patched.body;
  EXPECT_EQ(patched.body, missing.body) << "a patch refused by the consent must look like a missing record";
  EXPECT_EQ(Versions("Observation", "obs1"), 2) << "refused patches store nothing";
}

}  // namespace
}  // namespace phivault::api
