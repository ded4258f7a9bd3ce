// Resource validation on every write path, through the real FhirService,
// SqliteStore and AccessControl (and the real importer): an invalid
// resource gets an OperationOutcome naming the element, and nothing of it
// is stored.
#include <string>
#include <vector>

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "api/importer.h"
#include "api/testing/service_fixture.h"
#include "fhir/json_reader.h"
#include "search/fhirpath.h"

namespace phivault::api {
namespace {

constexpr char kValidObs[] =
    R"({"resourceType":"Observation","status":"final","code":{"text":"bp"},"effectiveDateTime":"2024-01-02"})";

class ValidationTest : public FhirServiceTest {
 protected:
  // Expects an OperationOutcome with `status` whose first issue is `invalid`
  // (or `processing` for 422) at `expression`.
  static void ExpectRejectedAt(const Reply& r, int status, const std::string& expression) {
    ASSERT_EQ(r.status, status) << r.body;
    auto o = r.Json();
    ASSERT_EQ(o["resourceType"], "OperationOutcome") << r.body;
    const auto& issue = o["issue"].as_array().at(0).as_object();
    EXPECT_EQ(issue.at("code"), status == 422 ? "processing" : "invalid") << r.body;
    ASSERT_TRUE(issue.contains("expression")) << r.body;
    EXPECT_EQ(issue.at("expression").as_array().at(0), expression.c_str()) << r.body;
  }
  // Runs the importer over `bodies` (each must parse).
  StatusOr<ImportSummary> Import(const std::vector<std::string>& bodies) {
    std::vector<boost::json::object> resources;
    for (const std::string& body : bodies) {
      auto parsed = fhir::ParseResource(body);
      EXPECT_TRUE(parsed.ok()) << body.substr(0, 200);
      if (parsed.ok()) resources.push_back(std::move(*parsed));
    }
    return ImportResources(vault_->store(), std::move(resources));
  }
  // The entry[i].response.outcome of a batch-response.
  static boost::json::object EntryOutcome(const Reply& r, size_t i) {
    auto b = r.Json();
    return b["entry"].as_array().at(i).as_object().at("response").as_object().at("outcome").as_object();
  }
};

TEST_F(ValidationTest, CreateRejectsEachRuleAndStoresNothing) {
  ExpectRejectedAt(Call("POST", "/fhir/Observation", R"({"resourceType":"Observation","status":"not-a-status"})"),
                   400, "Observation.status");
  ExpectRejectedAt(Call("POST", "/fhir/Observation",
                        R"({"resourceType":"Observation","status":"final","effectiveDateTime":"yesterday"})"),
                   400, "Observation.effectiveDateTime");
  ExpectRejectedAt(Call("POST", "/fhir/Observation", R"({"resourceType":"Observation","status":"final","mood":"ok"})"),
                   400, "Observation.mood");
  ExpectRejectedAt(Call("POST", "/fhir/Observation",
                        R"({"resourceType":"Observation","status":"final","category":{"text":"vital"}})"),
                   400, "Observation.category");
  ExpectRejectedAt(Call("POST", "/fhir/Patient", R"({"resourceType":"Patient","gender":"F"})"), 400, "Patient.gender");
  EXPECT_EQ(HistoryCount("Observation"), 0);
  EXPECT_EQ(HistoryCount("Patient"), 0);
  // The same service stores the valid form.
  EXPECT_EQ(Call("POST", "/fhir/Observation", kValidObs).status, 201);
  EXPECT_EQ(HistoryCount("Observation"), 1);
}

TEST_F(ValidationTest, UpdateAndConditionalUpdateKeepTheStoredVersion) {
  ASSERT_EQ(Call("PUT", "/fhir/Patient/p1", R"({"resourceType":"Patient","id":"p1","gender":"female"})").status, 201);
  ExpectRejectedAt(Call("PUT", "/fhir/Patient/p1", R"({"resourceType":"Patient","id":"p1","gender":"woman"})"), 400,
                   "Patient.gender");
  ExpectRejectedAt(Call("PUT", "/fhir/Patient/p2", R"({"resourceType":"Patient","id":"p2","birthDate":"1970-02-30"})"),
                   400, "Patient.birthDate");
  // Conditional update: the match exists, the new content is invalid.
  ASSERT_EQ(Call("PUT", "/fhir/Patient/p3",
                 R"({"resourceType":"Patient","id":"p3","identifier":[{"system":"urn:mrn","value":"M-3"}]})")
                .status,
            201);
  ExpectRejectedAt(Call("PUT", "/fhir/Patient?identifier=urn:mrn|M-3",
                        R"({"resourceType":"Patient","identifier":[{"system":"urn:mrn","value":"M-3"}],"active":"yes"})"),
                   400, "Patient.active");
  EXPECT_EQ(Call("GET", "/fhir/Patient/p1").Json()["gender"], "female");
  EXPECT_EQ(Call("GET", "/fhir/Patient/p2").status, 404);
  EXPECT_FALSE(Call("GET", "/fhir/Patient/p3").Json().contains("active"));
  EXPECT_EQ(HistoryCount("Patient"), 2);
}

TEST_F(ValidationTest, PatchWhoseResultIsInvalidIsUnprocessable) {
  ASSERT_EQ(Call("PUT", "/fhir/Patient/p1", R"({"resourceType":"Patient","id":"p1","gender":"female"})").status, 201);
  Headers h{{"content-type", "application/json-patch+json"}};
  ExpectRejectedAt(Call("PATCH", "/fhir/Patient/p1", R"([{"op":"replace","path":"/gender","value":"woman"}])", h), 422,
                   "Patient.gender");
  ExpectRejectedAt(Call("PATCH", "/fhir/Patient/p1", R"([{"op":"add","path":"/shoeSize","value":9}])", h), 422,
                   "Patient.shoeSize");
  EXPECT_EQ(Call("GET", "/fhir/Patient/p1").Json()["gender"], "female");
  EXPECT_EQ(Call("PATCH", "/fhir/Patient/p1", R"([{"op":"replace","path":"/gender","value":"male"}])", h).status, 200);
  EXPECT_EQ(HistoryCount("Patient"), 2);
}

TEST_F(ValidationTest, TransactionWithOneInvalidEntryStoresNothing) {
  std::string tx = R"({"resourceType":"Bundle","type":"transaction","entry":[
    {"resource":{"resourceType":"Patient","gender":"male"},"request":{"method":"POST","url":"Patient"}},
    {"resource":{"resourceType":"Observation","status":"done","code":{"text":"x"}},
     "request":{"method":"POST","url":"Observation"}}]})";
  ExpectRejectedAt(Call("POST", "/fhir", tx), 400, "Bundle.entry[1].resource.status");
  EXPECT_EQ(HistoryCount("Patient"), 0);
  EXPECT_EQ(HistoryCount("Observation"), 0);
}

TEST_F(ValidationTest, BatchEntryFailsAlone) {
  std::string batch = R"({"resourceType":"Bundle","type":"batch","entry":[
    {"resource":{"resourceType":"Patient","gender":"male"},"request":{"method":"POST","url":"Patient"}},
    {"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"effectiveDateTime":"soon"},
     "request":{"method":"POST","url":"Observation"}}]})";
  auto r = Call("POST", "/fhir", batch);
  ASSERT_EQ(r.status, 200) << r.body;
  auto b = r.Json();
  EXPECT_EQ(b["entry"].as_array().at(1).as_object().at("response").as_object().at("status"), "400 Bad Request")
      << r.body;
  auto outcome = EntryOutcome(r, 1);
  EXPECT_EQ(outcome["issue"].as_array().at(0).as_object().at("expression").as_array().at(0),
            "Bundle.entry[1].resource.effectiveDateTime");
  EXPECT_EQ(HistoryCount("Patient"), 1);
  EXPECT_EQ(HistoryCount("Observation"), 0);
}

TEST_F(ValidationTest, ImportRejectsAndCountsInvalidResources) {
  auto summary = Import({R"({"resourceType":"Patient","id":"i1","gender":"female"})",
                         R"({"resourceType":"Patient","id":"i2","gender":"unknown-ish"})",
                         R"({"resourceType":"Observation","id":"o1","status":"final","code":{"text":"x"},"effectivePeriod":[]})"});
  ASSERT_TRUE(summary.ok()) << summary.status().ToString();
  EXPECT_EQ(summary->loaded, 1);
  EXPECT_EQ(summary->rejected, 2);
  ASSERT_EQ(summary->reasons.size(), 2u);
  EXPECT_NE(summary->reasons[0].find("Patient.gender"), std::string::npos) << summary->reasons[0];
  EXPECT_NE(summary->reasons[1].find("Observation.effectivePeriod"), std::string::npos) << summary->reasons[1];
  EXPECT_EQ(Call("GET", "/fhir/Patient/i1").status, 200);
  EXPECT_EQ(Call("GET", "/fhir/Patient/i2").status, 404);
  EXPECT_EQ(Call("GET", "/fhir/Observation/o1").status, 404);
}

// A resource one of whose search parameters would take more values than the
// indexer evaluates (search::FhirPath::kMaxResultItems) is refused, by every
// write path, instead of being stored where that parameter cannot find it.
TEST_F(ValidationTest, AResourceTooLargeToIndexIsRefusedNotStoredUnsearchable) {
  auto patient = [](const std::string& id, size_t identifiers) {
    std::string body = R"({"resourceType":"Patient","id":")" + id + R"(","identifier":[)";
    for (size_t i = 0; i < identifiers; ++i) body += i ? R"(,{"value":"v"})" : R"({"value":"v"})";
    return body + "]}";
  };
  const size_t too_many = search::FhirPath::kMaxResultItems + 1;
  auto r = Call("PUT", "/fhir/Patient/big", patient("big", too_many));
  ExpectOutcome(r, 400);
  EXPECT_NE(r.body.find("search parameter 'identifier'"), std::string::npos) << r.body.substr(0, 500);
  EXPECT_EQ(Call("GET", "/fhir/Patient/big").status, 404);
  // An update to that size keeps the stored version.
  ASSERT_EQ(Call("PUT", "/fhir/Patient/p1", patient("p1", 2)).status, 201);
  ExpectOutcome(Call("PUT", "/fhir/Patient/p1", patient("p1", too_many)), 400);
  EXPECT_EQ(Call("GET", "/fhir/Patient/p1").Json()["identifier"].as_array().size(), 2u);
  EXPECT_EQ(HistoryCount("Patient"), 1);
  // The largest indexable resource is stored and found by that parameter.
  ASSERT_EQ(Call("PUT", "/fhir/Patient/edge", patient("edge", too_many - 1)).status, 201);
  auto found = Call("GET", "/fhir/Patient?identifier=v&_summary=count");
  EXPECT_EQ(found.Json()["total"], 2) << found.body;

  auto summary = Import({patient("i1", 1), patient("i2", too_many)});
  ASSERT_TRUE(summary.ok()) << summary.status().ToString();
  EXPECT_EQ(summary->loaded, 1);
  EXPECT_EQ(summary->rejected, 1);
  ASSERT_EQ(summary->reasons.size(), 1u);
  EXPECT_NE(summary->reasons[0].find("'identifier'"), std::string::npos) << summary->reasons[0];
  EXPECT_EQ(Call("GET", "/fhir/Patient/i2").status, 404);
}

}  // namespace
}  // namespace phivault::api
