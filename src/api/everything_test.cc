// GET /fhir/Patient/{id}/$everything through the real FhirService,
// SqliteStore and AccessControl, with real tokens.
#include <gtest/gtest.h>

#include <chrono>
#include <set>
#include <thread>

#include "api/everything.h"
#include "api/testing/service_fixture.h"

namespace phivault::api {
namespace {

namespace json = boost::json;

constexpr int kObservations = 9;

class EverythingTest : public FhirServiceTest {
 protected:
  void SetUp() override {
    FhirServiceTest::SetUp();
    Put("Practitioner/dr1", R"({"resourceType":"Practitioner","id":"dr1"})");
    Put("Organization/org1", R"({"resourceType":"Organization","id":"org1","name":"General"})");
    Put("Location/ward1", R"({"resourceType":"Location","id":"ward1"})");
    Put("Patient/pat1", R"({"resourceType":"Patient","id":"pat1","generalPractitioner":[{"reference":"Practitioner/dr1"}],)"
                        R"("managingOrganization":{"reference":"Organization/org1"}})");
    Put("Patient/pat2", R"({"resourceType":"Patient","id":"pat2"})");
    for (int i = 0; i < kObservations; ++i) {
      std::string id = "obs" + std::to_string(i);
      Put("Observation/" + id, R"({"resourceType":"Observation","id":")" + id +
                                   R"(","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/pat1"}})");
    }
    Put("Encounter/enc1", R"({"resourceType":"Encounter","id":"enc1","status":"finished","class":{"code":"AMB"},)"
                          R"("subject":{"reference":"Patient/pat1"},"location":[{"location":{"reference":"Location/ward1"}}],)"
                          R"("serviceProvider":{"reference":"Organization/gone-org"}})");
    Put("Observation/other", R"({"resourceType":"Observation","id":"other","status":"final","code":{"text":"x"},)"
                             R"("subject":{"reference":"Patient/pat2"}})");
    // Deleted resources are not part of the record any more.
    Put("Observation/deleted", R"({"resourceType":"Observation","id":"deleted","status":"final","code":{"text":"x"},)"
                               R"("subject":{"reference":"Patient/pat1"}})");
    EXPECT_EQ(Call("DELETE", "/fhir/Observation/deleted").status, 200);
  }

  void Put(const std::string& ref, const std::string& body) {
    auto r = Call("PUT", "/fhir/" + ref, body);
    EXPECT_TRUE(r.status == 201 || r.status == 200) << ref << " " << r.body;
  }

  struct Walk {
    std::vector<std::string> matches;  // in order, across pages
    std::set<std::string> includes;
    std::vector<size_t> page_sizes;    // matches per page
    int status = 0;
    std::string first_body;
  };

  // Follows next links from `target` to the end.
  Walk Everything(const std::string& target, const Headers& headers = {}) {
    Walk w;
    std::string next = target;
    for (int pages = 0; !next.empty() && pages < 100; ++pages) {
      auto r = Call("GET", next, "", headers);
      if (pages == 0) {
        w.status = r.status;
        w.first_body = r.body;
      }
      if (r.status != 200) break;
      auto b = r.Json();
      EXPECT_EQ(b["type"], "searchset");
      size_t matches = 0;
      for (const auto& e : b["entry"].as_array()) {
        const auto& res = e.as_object().at("resource").as_object();
        std::string ref = std::string(res.at("resourceType").as_string()) + "/" + std::string(res.at("id").as_string());
        EXPECT_EQ(std::string(e.as_object().at("fullUrl").as_string()), "https://vault.test/fhir/" + ref);
        if (e.as_object().at("search").as_object().at("mode") == "match") {
          w.matches.push_back(ref);
          ++matches;
        } else {
          w.includes.insert(ref);
        }
      }
      w.page_sizes.push_back(matches);
      next.clear();
      for (const auto& l : b["link"].as_array()) {
        if (l.as_object().at("relation") == "next") {
          std::string url(l.as_object().at("url").as_string());
          next = url.substr(std::string("https://vault.test").size());
        }
      }
    }
    return w;
  }

  static std::set<std::string> Pat1Record() {
    std::set<std::string> s{"Patient/pat1", "Encounter/enc1"};
    for (int i = 0; i < kObservations; ++i) s.insert("Observation/obs" + std::to_string(i));
    return s;
  }
};

TEST_F(EverythingTest, ReturnsTheCompartmentAndReferencedSharedResourcesPaged) {
  Walk w = Everything("/fhir/Patient/pat1/$everything?_count=4");
  ASSERT_EQ(w.status, 200) << w.first_body;
  EXPECT_EQ(std::set<std::string>(w.matches.begin(), w.matches.end()), Pat1Record());
  EXPECT_EQ(w.matches.size(), Pat1Record().size()) << "no resource twice";
  EXPECT_EQ(w.page_sizes, (std::vector<size_t>{4, 4, 3}));
  // Shared resources the record points at, but not a dangling reference.
  EXPECT_EQ(w.includes, (std::set<std::string>{"Practitioner/dr1", "Organization/org1", "Location/ward1"}));

  Walk obs = Everything("/fhir/Patient/pat1/$everything?_type=Observation,Practitioner&_count=100");
  ASSERT_EQ(obs.status, 200);
  EXPECT_EQ(obs.matches.size(), static_cast<size_t>(kObservations));
  for (const auto& m : obs.matches) EXPECT_EQ(m.rfind("Observation/", 0), 0u) << m;
  EXPECT_TRUE(obs.includes.empty()) << "observations reference no shared resource";
  Walk pat = Everything("/fhir/Patient/pat1/$everything?_type=Patient,Practitioner");
  EXPECT_EQ(pat.matches, std::vector<std::string>{"Patient/pat1"});
  EXPECT_EQ(pat.includes, std::set<std::string>{"Practitioner/dr1"});
}

TEST_F(EverythingTest, SinceKeepsOnlyLaterChanges) {
  // The pauses separate the setup writes, the cut and the change by whole milliseconds.
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  std::string cut = fhir::FormatInstant(fhir::NowMillis());
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  Put("Observation/obs3", R"({"resourceType":"Observation","id":"obs3","status":"amended","code":{"text":"x"},)"
                          R"("subject":{"reference":"Patient/pat1"}})");
  Walk w = Everything("/fhir/Patient/pat1/$everything?_since=" + cut);
  ASSERT_EQ(w.status, 200) << w.first_body;
  EXPECT_EQ(w.matches, std::vector<std::string>{"Observation/obs3"});
  EXPECT_TRUE(w.includes.empty()) << "the shared resources are older than _since";
}

TEST_F(EverythingTest, ClinicianSeesRelatedPatientOnlyAndDenialLooksLikeMissing) {
  Headers related = {{"authorization", "Bearer " + Token("alice", "clinician", "Practitioner/dr1", "user/*.rs")}};
  Walk w = Everything("/fhir/Patient/pat1/$everything?_count=3", related);
  ASSERT_EQ(w.status, 200) << w.first_body;
  EXPECT_EQ(std::set<std::string>(w.matches.begin(), w.matches.end()), Pat1Record());

  Headers stranger = {{"authorization", "Bearer " + Token("bob", "clinician", "Practitioner/dr2", "user/*.rs")}};
  auto hidden = Call("GET", "/fhir/Patient/pat1/$everything", "", stranger);
  auto missing = Call("GET", "/fhir/Patient/nobody/$everything", "", stranger);
  EXPECT_EQ(hidden.status, 404);
  EXPECT_EQ(hidden.body, missing.body) << "a hidden patient must look exactly like a missing one";
  EXPECT_EQ(Everything("/fhir/Patient/pat2/$everything", related).status, 404);
}

TEST_F(EverythingTest, HiddenResourcesAreFilteredAndPagesStayFull) {
  // A restricted observation needs a clearance the clinician does not have.
  Headers cleared = {{"authorization", "Bearer " + Token("backend", "system", "", "system/*.cruds", {"R"})}};
  ASSERT_EQ(Call("PUT", "/fhir/Observation/secret",
                 R"({"resourceType":"Observation","id":"secret","status":"final","code":{"text":"x"},)"
                 R"("meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"R"}]},)"
                 R"("subject":{"reference":"Patient/pat1"}})",
                 cleared)
                .status,
            201);
  Put("Observation/after", R"({"resourceType":"Observation","id":"after","status":"final","code":{"text":"x"},)"
                           R"("subject":{"reference":"Patient/pat1"}})");
  Headers related = {{"authorization", "Bearer " + Token("alice", "clinician", "Practitioner/dr1", "user/*.rs")}};
  Walk w = Everything("/fhir/Patient/pat1/$everything?_count=2", related);
  ASSERT_EQ(w.status, 200) << w.first_body;
  std::set<std::string> expected = Pat1Record();
  expected.insert("Observation/after");
  EXPECT_EQ(std::set<std::string>(w.matches.begin(), w.matches.end()), expected);
  EXPECT_EQ(w.matches.size(), expected.size());
  for (size_t i = 0; i + 1 < w.page_sizes.size(); ++i) EXPECT_EQ(w.page_sizes[i], 2u) << "page " << i;
  // A caller with the clearance sees it.
  Walk all = Everything("/fhir/Patient/pat1/$everything?_count=50", cleared);
  EXPECT_EQ(all.matches.size(), expected.size() + 1);
}

// History and $everything refill a page past hidden entries up to a drawn
// number examined (at least 64 * _count), as search does: past 64 hidden
// entries, the next visible one is sometimes on the page and sometimes
// behind a short page's next link.
TEST_F(EverythingTest, RefillPastHiddenEntriesStopsAtADrawnNumber) {
  Headers cleared = {{"authorization", "Bearer " + Token("backend", "system", "", "system/*.cruds", {"R"})}};
  auto obs = [&](const std::string& id, bool restricted) {
    std::string body = R"({"resourceType":"Observation","id":")" + id +
                       R"(","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/pat9"})";
    if (restricted) {
      body += R"(,"meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality",)"
              R"("code":"R"}]})";
    }
    ASSERT_EQ(Call("PUT", "/fhir/Observation/" + id, body + "}", cleared).status, 201) << id;
  };
  Put("Patient/pat9", R"({"resourceType":"Patient","id":"pat9"})");
  obs("first", false);
  for (int i = 0; i < 64; ++i) obs("hidden" + std::to_string(i), true);
  obs("last", false);
  ServiceOptions so;
  so.base_url = testing::TestVault::kIssuer;
  so.keyring = &vault_->keyring();
  so.join_examined_limit = 40;  // the refill bound is then 64 * _count = 64, drawn within [16, 112]
  FhirService noisy(vault_->store(), access_.get(), vault_->audit_trail(), so);
  // The system token has no clearance for the restricted ones.
  auto call = [&](const std::string& target) {
    return http::testing::CallHandler(noisy, http::testing::MakeRequest("GET", target, system_token_));
  };
  auto matches_and_next = [](const Reply& r) {
    std::vector<std::string> ids;
    std::string next;
    auto b = r.Json();
    if (b.contains("entry")) {
      for (const auto& e : b["entry"].as_array()) {
        const auto& o = e.as_object();
        if (o.contains("search") && o.at("search").as_object().at("mode") != "match") continue;
        const auto& res = o.at("resource").as_object();
        ids.push_back(std::string(res.at("resourceType").as_string()) + "/" + std::string(res.at("id").as_string()));
      }
    }
    for (const auto& l : b["link"].as_array()) {
      if (l.as_object().at("relation") == "next") {
        next = std::string(l.as_object().at("url").as_string()).substr(std::string("https://vault.test").size());
      }
    }
    return std::make_pair(ids, next);
  };
  // The page just before the 64 hidden entries, then the one after them.
  struct Case {
    std::string first_page;
    int pages_before;  // next links to follow to reach the page before
    std::string beyond;
  };
  for (const Case& c : {Case{"/fhir/Observation/_history?_count=1", 1, "Observation/first"},
                        Case{"/fhir/Patient/pat9/$everything?_count=1", 2, "Observation/last"}}) {
    std::string next = c.first_page;
    for (int i = 0; i < c.pages_before; ++i) {
      auto page = call(next);
      ASSERT_EQ(page.status, 200) << page.body;
      next = matches_and_next(page).second;
      ASSERT_FALSE(next.empty()) << c.first_page << " " << page.body;
    }
    int beyond = 0, short_with_link = 0;
    for (int i = 0; i < 60; ++i) {
      auto r = call(next);
      ASSERT_EQ(r.status, 200) << r.body;
      auto [ids, link] = matches_and_next(r);
      if (ids == std::vector<std::string>{c.beyond}) {
        ++beyond;
      } else {
        EXPECT_TRUE(ids.empty()) << c.first_page << " " << r.body;
        EXPECT_FALSE(link.empty()) << "a short page leads on";
        ++short_with_link;
      }
    }
    EXPECT_GT(beyond, 0) << c.first_page;
    EXPECT_GT(short_with_link, 0) << c.first_page;
  }
}

TEST_F(EverythingTest, BadParametersAre400AndOtherMethods405) {
  for (const char* q : {"_count=0", "_count=x", "_since=yesterday", "_since=2024-01-01", "_type=Spaceship",
                        "_type=Observation,", "_cursor=abc", "_cursor=-1", "start=2020", "_elements=id"}) {
    ExpectOutcome(Call("GET", std::string("/fhir/Patient/pat1/$everything?") + q), 400);
  }
  auto m = Call("POST", "/fhir/Patient/pat1/$everything");
  ExpectOutcome(m, 405);
  ExpectOutcome(Call("GET", "/fhir/Observation/obs1/$everything"), 404);
}

TEST_F(EverythingTest, ReportsWhatTheBundleDisclosesForTheAudit) {
  http::HttpRequest req;
  req.method = "GET";
  req.headers.emplace_back("authorization", "Bearer " + system_token_);
  auto caller = access_->Authenticate(req, fhir::NowMillis());
  ASSERT_TRUE(caller.ok());
  PagingCursor cursors(&vault_->keyring());
  EverythingContext ctx{*vault_->store(), *access_, **caller, req, cursors, fhir::NowMillis(), "https://vault.test",
                        50, 1000};
  auto r = PatientEverything(ctx, {{"_count", "5"}}, "pat1");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  auto bundle = json::parse(r->bundle).as_object();
  const auto& entries = bundle["entry"].as_array();
  ASSERT_EQ(r->returned.size(), entries.size());
  for (size_t i = 0; i < entries.size(); ++i) {
    const auto& res = entries[i].as_object().at("resource").as_object();
    EXPECT_EQ(r->returned[i].type, res.at("resourceType").as_string());
    EXPECT_EQ(r->returned[i].id, res.at("id").as_string());
    EXPECT_EQ(std::to_string(r->returned[i].version), res.at("meta").as_object().at("versionId").as_string());
    bool match = entries[i].as_object().at("search").as_object().at("mode") == "match";
    EXPECT_EQ(r->returned[i].patients.empty(), !match) << "matches carry the patient link, shared includes none";
  }
}

// The next link's cursor is sealed: it cannot be read, edited, or used with
// another patient, filter or page size.
TEST_F(EverythingTest, CursorsAreSealedToTheirRequest) {
  auto first = Call("GET", "/fhir/Patient/pat1/$everything?_count=1");
  ASSERT_EQ(first.status, 200) << first.body;
  std::string next;
  const auto first_json = first.Json();
  for (const auto& l : first_json.at("link").as_array()) {
    if (l.at("relation") == "next") next = std::string(l.at("url").as_string());
  }
  ASSERT_FALSE(next.empty());
  const std::string cursor = next.substr(next.find("_cursor=") + 8);
  EXPECT_EQ(cursor.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
            std::string::npos);
  EXPECT_GT(cursor.size(), 20u) << "a sealed position, not a plain number";
  auto second = Call("GET", "/fhir/Patient/pat1/$everything?_count=1&_cursor=" + cursor);
  ASSERT_EQ(second.status, 200) << second.body;
  const auto second_json = second.Json();
  EXPECT_NE(second_json.at("entry").as_array()[0], first_json.at("entry").as_array()[0]);

  std::string edited = cursor;
  edited[edited.size() / 2] = edited[edited.size() / 2] == 'A' ? 'B' : 'A';
  for (const std::string& bad :
       {"/fhir/Patient/pat1/$everything?_count=1&_cursor=" + edited,
        "/fhir/Patient/pat1/$everything?_count=2&_cursor=" + cursor,
        "/fhir/Patient/pat1/$everything?_count=1&_type=Observation&_cursor=" + cursor,
        "/fhir/Patient/pat2/$everything?_count=1&_cursor=" + cursor,
        std::string("/fhir/Patient/pat1/$everything?_count=1&_cursor=12")}) {
    ExpectOutcome(Call("GET", bad), 400);
  }
  // A history cursor is not a $everything cursor, and the other way round.
  ExpectOutcome(Call("GET", "/fhir/Patient/pat1/_history?_count=1&_cursor=" + cursor), 400);
}

}  // namespace
}  // namespace phivault::api
