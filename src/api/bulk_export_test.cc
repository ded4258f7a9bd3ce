// FHIR bulk $export against a real vault, real tokens and the real audit
// log: the kick-off / poll / manifest / download round trip, filters,
// Group and Patient level, cancel, refusals, per-resource authorization,
// encryption at rest, retention and the export's audit record.
#include "api/bulk_export.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "api/audit_service.h"
#include "api/testing/service_fixture.h"
#include "audit/entry.h"
#include "auth/testing/test_keys.h"
#include "common/testing/temp_dir.h"
#include "fhir/time.h"

namespace phivault::api {
namespace {

using Headers = std::vector<std::pair<std::string, std::string>>;
const Headers kAsync = {{"prefer", "respond-async"}, {"accept", "application/fhir+json"}};
constexpr std::string_view kBase = "https://vault.test";

class BulkExportTest : public FhirServiceTest {
 protected:
  void SetUp() override {
    FhirServiceTest::SetUp();
    if (HasFatalFailure()) return;
    StartExporter();
  }
  void StartExporter() {
    BulkExportOptions o;
    o.dir = cfg_.data_dir + "/exports";
    o.base_url = std::string(kBase);
    o.resources_per_file = per_file_;
    o.before_job = before_job_;
    auto x = BulkExporter::Create(vault_->store(), access_.get(), vault_->audit_trail(), vault_->keyring(), o);
    ASSERT_TRUE(x.ok()) << x.status().ToString();
    exporter_ = std::move(*x);
    service_->SetBulkExporter(exporter_.get());
  }

  void Put(const std::string& path, const std::string& body, Headers h = {}) {
    auto r = Call("PUT", path, body, std::move(h));
    ASSERT_TRUE(r.status == 200 || r.status == 201) << path << " " << r.body;
  }
  void PutPatient(const std::string& id, const std::string& family) {
    Put("/fhir/Patient/" + id,
        R"({"resourceType":"Patient","id":")" + id + R"(","name":[{"family":")" + family + R"("}]})");
  }
  void PutObservation(const std::string& id, const std::string& patient, const std::string& extra = "",
                      Headers h = {}) {
    Put("/fhir/Observation/" + id,
        R"({"resourceType":"Observation","id":")" + id +
            R"(","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/)" + patient + R"("})" + extra +
            "}",
        std::move(h));
  }

  // Restarts the exporter so that each job waits for the returned promise.
  std::promise<void> HoldJobs() {
    std::promise<void> go;
    exporter_.reset();
    before_job_ = [released = go.get_future().share()] { released.wait(); };
    StartExporter();
    return go;
  }
  // A URL of ours as the path the test caller takes.
  static std::string Local(const std::string& url) {
    EXPECT_EQ(url.rfind(kBase, 0), 0u) << url;
    return url.substr(kBase.size());
  }
  // Kicks off; returns the status URL's path ("" and a failure otherwise).
  std::string KickOff(const std::string& target, Headers h = kAsync) {
    auto r = Call("GET", target, "", std::move(h));
    EXPECT_EQ(r.status, 202) << r.body;
    std::string loc = r.Header("Content-Location");
    EXPECT_FALSE(loc.empty());
    return loc.empty() ? "" : Local(loc);
  }
  // Polls until done (every 202 carries progress and a retry hint).
  json::object Manifest(const std::string& poll, Headers h = {}) {
    for (int i = 0; i < 500; ++i) {
      auto r = Call("GET", poll, "", h);
      if (r.status == 200) {
        EXPECT_EQ(r.Header("Content-Type").rfind("application/json", 0), 0u);
        EXPECT_FALSE(r.Header("Expires").empty());
        return r.Json();
      }
      EXPECT_EQ(r.status, 202) << r.body;
      if (r.status != 202) return {};
      EXPECT_FALSE(r.Header("X-Progress").empty());
      EXPECT_EQ(r.Header("Retry-After"), "2");
      exporter_->WaitIdle();
    }
    ADD_FAILURE() << "export never finished";
    return {};
  }
  // Every exported resource as "Type/id", per manifest type, downloaded.
  std::map<std::string, std::set<std::string>> Download(const json::object& manifest, Headers h = {}) {
    std::map<std::string, std::set<std::string>> out;
    for (const auto& f : manifest.at("output").as_array()) {
      std::string type(f.at("type").as_string());
      auto r = Call("GET", Local(std::string(f.at("url").as_string())), "", h);
      EXPECT_EQ(r.status, 200) << r.body;
      EXPECT_EQ(r.Header("Content-Type"), "application/fhir+ndjson");
      std::istringstream lines(r.body);
      std::string line;
      int64_t n = 0;
      while (std::getline(lines, line)) {
        auto v = json::parse(line).as_object();
        EXPECT_EQ(v.at("resourceType").as_string(), type);
        out[type].insert(type + "/" + std::string(v.at("id").as_string()));
        ++n;
      }
      EXPECT_EQ(n, f.at("count").as_int64());
    }
    return out;
  }
  std::map<std::string, std::set<std::string>> Export(const std::string& target) {
    return Download(Manifest(KickOff(target)));
  }
  // Every byte under the exports directory.
  std::string ExportBytes() {
    std::string all;
    for (const auto& e : std::filesystem::recursive_directory_iterator(cfg_.data_dir + "/exports")) {
      if (!e.is_regular_file()) continue;
      std::ifstream in(e.path(), std::ios::binary);
      all.append(std::istreambuf_iterator<char>(in), {});
    }
    return all;
  }
  size_t ExportFiles() {
    size_t n = 0;
    for (const auto& e : std::filesystem::recursive_directory_iterator(cfg_.data_dir + "/exports")) {
      n += e.is_regular_file();
    }
    return n;
  }
  std::vector<audit::AuditEntry> ExportEntries() {
    std::vector<audit::AuditEntry> out;
    audit::AuditLog* log = vault_->audit_log();
    auto texts = log->ReadEntries(0, log->size());
    EXPECT_TRUE(texts.ok());
    if (!texts.ok()) return out;
    for (const auto& t : *texts) {
      auto e = audit::ParseEntry(t);
      if (e.ok() && e->action == audit::AuditAction::kExport) out.push_back(std::move(*e));
    }
    return out;
  }

  size_t per_file_ = 100000;
  std::function<void()> before_job_;
  std::unique_ptr<BulkExporter> exporter_;
};

TEST_F(BulkExportTest, SystemExportRoundTripsThroughManifestAndDownloads) {
  PutPatient("p1", "Quixotez");
  PutPatient("p2", "Brandywine");
  PutObservation("o1", "p1");
  PutObservation("o2", "p2");
  Put("/fhir/Organization/org1", R"({"resourceType":"Organization","id":"org1","name":"Clinic"})");

  auto r = Call("GET", "/fhir/$export", "", kAsync);
  ASSERT_EQ(r.status, 202) << r.body;
  std::string poll = Local(r.Header("Content-Location"));
  ASSERT_EQ(poll.rfind("/fhir/$export-poll/", 0), 0u) << poll;
  json::object m = Manifest(poll);
  ASSERT_FALSE(m.empty());
  EXPECT_EQ(m.at("request").as_string(), "https://vault.test/fhir/$export");
  EXPECT_TRUE(m.at("requiresAccessToken").as_bool());
  EXPECT_TRUE(m.at("error").as_array().empty());
  EXPECT_FALSE(m.at("transactionTime").as_string().empty());
  auto got = Download(m);
  EXPECT_EQ(got["Patient"], (std::set<std::string>{"Patient/p1", "Patient/p2"}));
  EXPECT_EQ(got["Observation"], (std::set<std::string>{"Observation/o1", "Observation/o2"}));
  EXPECT_EQ(got["Organization"], (std::set<std::string>{"Organization/org1"}));
  EXPECT_EQ(got.size(), 3u);

  // A second download of the same file works until the retention ends.
  std::string url = Local(std::string(m.at("output").as_array()[0].at("url").as_string()));
  EXPECT_EQ(Call("GET", url, "", {{"accept", "application/fhir+ndjson"}}).status, 200);
  EXPECT_EQ(Call("GET", url + "9", "").status, 404);
  EXPECT_EQ(Call("POST", poll, "{}").status, 405);
}

// Held at the start of its run, a job reports progress with a retry hint;
// released, it completes.
TEST_F(BulkExportTest, StatusReportsProgressWhileTheJobRuns) {
  std::promise<void> go = HoldJobs();
  PutPatient("p1", "Quixotez");
  std::string poll = KickOff("/fhir/$export?_type=Patient");
  for (int i = 0; i < 2; ++i) {
    auto r = Call("GET", poll);
    EXPECT_EQ(r.status, 202) << r.body;
    EXPECT_FALSE(r.Header("X-Progress").empty());
    EXPECT_EQ(r.Header("Retry-After"), "2");
    EXPECT_EQ(r.body.find("Quixotez"), std::string::npos);
  }
  go.set_value();
  EXPECT_EQ(Download(Manifest(poll))["Patient"].size(), 1u);
}

// The manifest is handed out only once the export's audit record is
// durable; an export that cannot be recorded fails and its files go.
TEST_F(BulkExportTest, AnExportThatCannotBeAuditedIsNotServed) {
  std::promise<void> go = HoldJobs();
  PutPatient("p1", "Quixotez");
  std::string poll = KickOff("/fhir/$export?_type=Patient");
  faults_->fail_writes = true;
  go.set_value();
  exporter_->WaitIdle();
  faults_->fail_writes = false;
  bool ready = false;
  for (int i = 0; i < 100 && !ready; ++i) {
    ready = Call("GET", "/readyz").status == 200;
    if (!ready) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(ready);
  auto r = Call("GET", poll);
  ExpectOutcome(r, 500);
  EXPECT_EQ(ExportFiles(), 0u);
  EXPECT_TRUE(ExportEntries().empty());
}

TEST_F(BulkExportTest, LargeTypesAreSplitIntoSeveralFiles) {
  exporter_.reset();
  per_file_ = 3;
  StartExporter();
  PutPatient("p1", "Quixotez");
  for (int i = 0; i < 7; ++i) PutObservation("o" + std::to_string(i), "p1");
  json::object m = Manifest(KickOff("/fhir/$export?_type=Observation"));
  ASSERT_EQ(m.at("output").as_array().size(), 3u);
  EXPECT_EQ(Download(m)["Observation"].size(), 7u);
}

TEST_F(BulkExportTest, KickOffRequiresRespondAsyncAndKnownParameters) {
  ExpectOutcome(Call("GET", "/fhir/$export"), 400);
  ExpectOutcome(Call("GET", "/fhir/$export?_typeFilter=Observation%3Fcode%3Dx", "", kAsync), 400);
  ExpectOutcome(Call("GET", "/fhir/$export?_type=Nonsense", "", kAsync), 400);
  ExpectOutcome(Call("GET", "/fhir/$export?_since=yesterday", "", kAsync), 400);
  ExpectOutcome(Call("GET", "/fhir/$export?_outputFormat=text/csv", "", kAsync), 400);
  ExpectOutcome(Call("POST", "/fhir/$export", "{}", kAsync), 405);
  // Lenient handling ignores what it does not support.
  Headers lenient = {{"prefer", "respond-async, handling=lenient"}};
  EXPECT_FALSE(KickOff("/fhir/$export?_typeFilter=x&_type=Patient,Nonsense", lenient).empty());
  exporter_->WaitIdle();
}

// One client cannot take every job slot; finished jobs count until they
// expire or are cancelled.
TEST_F(BulkExportTest, JobsPerCallerAreLimited) {
  PutPatient("p1", "Quixotez");
  std::vector<std::string> polls;
  for (int i = 0; i < 4; ++i) polls.push_back(KickOff("/fhir/$export?_type=Patient"));
  auto r = Call("GET", "/fhir/$export?_type=Patient", "", kAsync);
  ExpectOutcome(r, 429);
  EXPECT_FALSE(r.Header("Retry-After").empty());
  Headers other = kAsync;
  other.emplace_back("authorization", "Bearer " + Token("svc9", "system", "", "system/*.rs"));
  EXPECT_FALSE(KickOff("/fhir/$export?_type=Patient", other).empty());
  EXPECT_EQ(Call("DELETE", polls[0]).status, 202);
  EXPECT_FALSE(KickOff("/fhir/$export?_type=Patient").empty());
  exporter_->WaitIdle();
}

TEST_F(BulkExportTest, TypeAndSinceFiltersAreHonoured) {
  PutPatient("p1", "Quixotez");
  PutObservation("old", "p1");
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::string since = fhir::FormatInstant(fhir::NowMillis());
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  PutObservation("new", "p1");
  Put("/fhir/Organization/org1", R"({"resourceType":"Organization","id":"org1"})");

  auto got = Export("/fhir/$export?_type=Observation&_since=" + since);
  EXPECT_EQ(got, (std::map<std::string, std::set<std::string>>{{"Observation", {"Observation/new"}}}));
  auto both = Export("/fhir/$export?_type=Observation,Patient");
  EXPECT_EQ(both.size(), 2u);
  EXPECT_EQ(both["Observation"].size(), 2u);
}

TEST_F(BulkExportTest, PatientAndGroupLevelExportOnlyTheirCompartments) {
  PutPatient("p1", "Quixotez");
  PutPatient("p2", "Brandywine");
  PutPatient("p3", "Tollemache");
  PutObservation("o1", "p1");
  PutObservation("o2", "p2");
  PutObservation("o3", "p3");
  Put("/fhir/Organization/org1", R"({"resourceType":"Organization","id":"org1"})");
  Put("/fhir/Group/g1", R"({"resourceType":"Group","id":"g1","type":"person","actual":true,"member":[)"
                        R"({"entity":{"reference":"Patient/p1"}},{"entity":{"reference":"https://x.org/fhir/Patient/p3"}},)"
                        R"({"entity":{"reference":"Practitioner/dr1"}}]})");

  auto group = Export("/fhir/Group/g1/$export");
  EXPECT_EQ(group["Patient"], (std::set<std::string>{"Patient/p1", "Patient/p3"}));
  EXPECT_EQ(group["Observation"], (std::set<std::string>{"Observation/o1", "Observation/o3"}));
  EXPECT_EQ(group.count("Organization"), 0u);
  // The Group is in its members' compartments, so it goes along.
  EXPECT_EQ(group["Group"], (std::set<std::string>{"Group/g1"}));

  auto patients = Export("/fhir/Patient/$export");
  EXPECT_EQ(patients["Patient"].size(), 3u);
  EXPECT_EQ(patients["Observation"].size(), 3u);
  EXPECT_EQ(patients.count("Organization"), 0u);

  ExpectOutcome(Call("GET", "/fhir/Group/nope/$export", "", kAsync), 404);
}

TEST_F(BulkExportTest, CancelRemovesTheJobAndItsFiles) {
  PutPatient("p1", "Quixotez");
  for (int i = 0; i < 20; ++i) PutObservation("o" + std::to_string(i), "p1");
  std::string poll = KickOff("/fhir/$export");
  exporter_->WaitIdle();
  EXPECT_GT(ExportFiles(), 0u);
  auto c = Call("DELETE", poll);
  EXPECT_EQ(c.status, 202) << c.body;
  EXPECT_EQ(Call("GET", poll).status, 404);
  EXPECT_EQ(Call("DELETE", poll).status, 404);
  EXPECT_EQ(ExportFiles(), 0u);

  // Cancelled at once, whether or not the worker got to it.
  std::string poll2 = KickOff("/fhir/$export");
  EXPECT_EQ(Call("DELETE", poll2).status, 202);
  exporter_->WaitIdle();
  EXPECT_EQ(Call("GET", poll2).status, 404);
  EXPECT_EQ(ExportFiles(), 0u);
}

TEST_F(BulkExportTest, ExportNeedsTheSystemScopeAndJobsBelongToTheirCaller) {
  PutPatient("p1", "Quixotez");
  auto as = [&](const std::string& token) {
    Headers h = kAsync;
    h.emplace_back("authorization", "Bearer " + token);
    return h;
  };
  // A scope for one type, a user-level scope, or a write-only scope: no.
  ExpectOutcome(Call("GET", "/fhir/$export", "", as(Token("svc", "system", "", "system/Observation.rs"))), 403);
  ExpectOutcome(
      Call("GET", "/fhir/$export", "", as(Token("alice", "clinician", "Practitioner/dr1", "user/*.cruds"))), 403);
  ExpectOutcome(Call("GET", "/fhir/$export", "", as(Token("svc", "system", "", "system/*.cud"))), 403);
  // v1 read and v2 rs: yes.
  std::string v1 = Token("svc1", "system", "", "system/*.read");
  std::string poll = KickOff("/fhir/$export?_type=Patient", as(v1));
  EXPECT_FALSE(KickOff("/fhir/$export?_type=Patient", as(Token("svc2", "system", "", "system/*.rs"))).empty());
  Headers mine = {{"authorization", "Bearer " + v1}};
  json::object m = Manifest(poll, mine);
  ASSERT_EQ(m.at("output").as_array().size(), 1u);
  std::string file = Local(std::string(m.at("output").as_array()[0].at("url").as_string()));
  EXPECT_EQ(Download(m, mine)["Patient"].size(), 1u);

  // Someone else (another subject, even with the same rights) sees nothing.
  Headers other = {{"authorization", "Bearer " + Token("svc3", "system", "", "system/*.read")}};
  EXPECT_EQ(Call("GET", poll, "", other).status, 404);
  EXPECT_EQ(Call("GET", file, "", other).status, 404);
  EXPECT_EQ(Call("DELETE", poll, "", other).status, 404);
  EXPECT_EQ(Call("GET", poll, "", mine).status, 200);
  // The same account with a token that no longer carries the export scope
  // (another role, a narrower scope) cannot poll, download or cancel.
  for (const std::string& downgraded :
       {Token("svc1", "system", "", "system/Patient.rs"), Token("svc1", "patient", "Patient/p1", "patient/*.rs")}) {
    Headers h = {{"authorization", "Bearer " + downgraded}};
    EXPECT_EQ(Call("GET", poll, "", h).status, 404);
    EXPECT_EQ(Call("GET", file, "", h).status, 404);
    EXPECT_EQ(Call("DELETE", poll, "", h).status, 404);
  }
  EXPECT_EQ(Call("GET", file, "", mine).status, 200) << "the job is still there for its owner";
  // Without a token: 401 as everywhere below /fhir.
  EXPECT_EQ(Call("GET", poll, "", {{"authorization", ""}}).status, 401);
}

// Subjects of different issuers are different accounts: a token from an
// external identity provider that names the same `sub` as the job's owner
// (a built-in account) gets nowhere with the job, even with the export scope.
TEST_F(BulkExportTest, JobsBelongToTheIssuerAsWellAsTheSubject) {
  PutPatient("p1", "Quixotez");
  std::string jwks = tmp_.Sub("idp-jwks.json");
  phivault::testing::WriteFile(jwks, auth::testing::TestJwks());
  AccessConfig ac;
  ac.builtin_issuer = testing::TestVault::kIssuer;
  ac.builtin_audience = testing::TestVault::kAudience;
  ExternalIssuer idp;
  idp.issuer = "https://idp.test";
  idp.audiences = {testing::TestVault::kAudience};
  idp.jwks_file = jwks;
  ac.external_issuers.push_back(idp);
  auto both = AccessControl::Create(ac, vault_->keyring(), vault_->store(), nullptr);
  ASSERT_TRUE(both.ok()) << both.status().ToString();
  ServiceOptions so;
  so.base_url = testing::TestVault::kIssuer;
  so.keyring = &vault_->keyring();
  service_ = std::make_unique<FhirService>(vault_->store(), both->get(), vault_->audit_trail(), so);
  service_->SetBulkExporter(exporter_.get());

  const std::string builtin = "Bearer " + Token("svc1", "system", "", "system/*.read");
  Headers kick = kAsync;
  kick.emplace_back("authorization", builtin);
  std::string poll = KickOff("/fhir/$export?_type=Patient", kick);
  ASSERT_FALSE(poll.empty());
  Headers mine = {{"authorization", builtin}};
  json::object m = Manifest(poll, mine);
  ASSERT_EQ(m.at("output").as_array().size(), 1u);
  std::string file = Local(std::string(m.at("output").as_array()[0].at("url").as_string()));

  const int64_t now = fhir::NowMillis() / 1000;
  const std::string payload = R"({"iss":"https://idp.test","aud":")" + std::string(testing::TestVault::kAudience) +
                              R"(","sub":"svc1","role":"system","scope":"system/*.read","exp":)" +
                              std::to_string(now + 300) + "}";
  auth::testing::TestKey rsa = auth::testing::TestRsaKey();
  Headers external = {{"authorization", "Bearer " + auth::testing::SignRaw(R"({"alg":"RS256","kid":"rsa-1","typ":"JWT"})",
                                                                            payload, rsa.get())}};
  // The external token is good: it may start an export of its own.
  Headers external_kick = kAsync;
  external_kick.push_back(external[0]);
  EXPECT_FALSE(KickOff("/fhir/$export?_type=Patient", external_kick).empty());
  EXPECT_EQ(Call("GET", poll, "", external).status, 404);
  EXPECT_EQ(Call("GET", file, "", external).status, 404);
  EXPECT_EQ(Call("DELETE", poll, "", external).status, 404);
  EXPECT_EQ(Call("GET", file, "", mine).status, 200) << "the job is still there for its owner";
  service_.reset();  // it points at `both`, which goes first
}

TEST_F(BulkExportTest, ResourcesTheCallerMayNotReadAreNotExported) {
  std::string cleared = Token("admin", "system", "", "system/*.cruds", {"R"});
  Headers ch = {{"authorization", "Bearer " + cleared}};
  PutPatient("p1", "Quixotez");
  PutObservation("open", "p1");
  PutObservation("restricted", "p1",
                 R"(,"meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality",)"
                 R"("code":"R"}]})",
                 ch);
  // The exporting account has no clearance for restricted records.
  auto got = Export("/fhir/$export?_type=Observation");
  EXPECT_EQ(got["Observation"], (std::set<std::string>{"Observation/open"}));
  // With the clearance, both (the filter is the caller's, not a fixed one).
  Headers cleared_async = kAsync;
  cleared_async.emplace_back("authorization", "Bearer " + cleared);
  auto all = Download(Manifest(KickOff("/fhir/$export?_type=Observation", cleared_async), ch), ch);
  EXPECT_EQ(all["Observation"].size(), 2u);
}

TEST_F(BulkExportTest, FilesAreSealedAtRestAndTamperingIsDetected) {
  PutPatient("p1", "Quixotez");
  PutObservation("o1", "p1");
  json::object m = Manifest(KickOff("/fhir/$export?_type=Patient"));
  ASSERT_EQ(m.at("output").as_array().size(), 1u);
  std::string bytes = ExportBytes();
  ASSERT_GT(bytes.size(), 0u);
  EXPECT_EQ(bytes.find("Quixotez"), std::string::npos);
  EXPECT_EQ(bytes.find("Patient"), std::string::npos);
  EXPECT_EQ(Download(m)["Patient"].size(), 1u);
  // Still sealed after the download.
  EXPECT_EQ(ExportBytes().find("Quixotez"), std::string::npos);

  for (const auto& e : std::filesystem::recursive_directory_iterator(cfg_.data_dir + "/exports")) {
    if (!e.is_regular_file()) continue;
    std::fstream f(e.path(), std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(20);
    f.put('\x5a');
  }
  auto r = Call("GET", Local(std::string(m.at("output").as_array()[0].at("url").as_string())));
  EXPECT_EQ(r.status, 500) << r.body;
  EXPECT_EQ(r.body.find("Quixotez"), std::string::npos);
}

TEST_F(BulkExportTest, FinishedExportsExpireAfterTheRetentionPeriod) {
  PutPatient("p1", "Quixotez");
  std::string poll = KickOff("/fhir/$export?_type=Patient");
  json::object m = Manifest(poll);
  std::string file = Local(std::string(m.at("output").as_array()[0].at("url").as_string()));
  exporter_->SweepExpired(fhir::NowMillis() + 30 * 60 * 1000);  // within the default hour: kept
  EXPECT_EQ(Call("GET", poll).status, 200);
  EXPECT_GT(ExportFiles(), 0u);
  exporter_->SweepExpired(fhir::NowMillis() + 61 * 60 * 1000);
  EXPECT_EQ(Call("GET", poll).status, 404);
  EXPECT_EQ(Call("GET", file).status, 404);
  EXPECT_EQ(ExportFiles(), 0u);

  // Files an earlier process left behind are removed at start.
  std::string poll2 = KickOff("/fhir/$export?_type=Patient");
  Manifest(poll2);
  exporter_.reset();  // shutdown removes what is left
  EXPECT_EQ(ExportFiles(), 0u);
  std::filesystem::create_directories(cfg_.data_dir + "/exports/0123456789abcdef0123456789abcdef");
  std::ofstream(cfg_.data_dir + "/exports/0123456789abcdef0123456789abcdef/Patient.0.ndjson.sealed") << "x";
  StartExporter();
  EXPECT_EQ(ExportFiles(), 0u);
}

TEST_F(BulkExportTest, TheExportIsAuditedWithItsPatientsAndVisibleToThePrivacyOfficer) {
  PutPatient("p1", "Quixotez");
  PutPatient("p2", "Brandywine");
  PutObservation("o1", "p1");
  PutObservation("o2", "p1");
  Put("/fhir/Organization/org1", R"({"resourceType":"Organization","id":"org1"})");
  json::object m = Manifest(KickOff("/fhir/$export?_type=Patient,Observation,Organization"));
  ASSERT_FALSE(m.empty());
  auto entries = ExportEntries();
  ASSERT_EQ(entries.size(), 1u);
  const audit::AuditEntry& e = entries[0];
  EXPECT_EQ(e.patients, (std::vector<std::string>{"p1", "p2"}));
  EXPECT_EQ(e.agent.subject, "backend");
  EXPECT_EQ(e.outcome, audit::AuditOutcome::kAllowed);
  EXPECT_NE(e.query.find("Observation:2"), std::string::npos) << e.query;
  EXPECT_NE(e.query.find("Patient:2"), std::string::npos) << e.query;
  EXPECT_NE(e.query.find("Organization:1"), std::string::npos) << e.query;
  EXPECT_EQ(e.query.find("Quixotez"), std::string::npos);

  // Downloads name the patients of the file they handed out.
  audit::AuditLog* log = vault_->audit_log();
  size_t before = log->size();
  for (const auto& f : m.at("output").as_array()) {
    if (f.at("type").as_string() != "Observation") continue;
    EXPECT_EQ(Call("GET", Local(std::string(f.at("url").as_string()))).status, 200);
  }
  auto texts = log->ReadEntries(before, log->size());
  ASSERT_TRUE(texts.ok());
  ASSERT_EQ(texts->size(), 1u);
  auto dl = audit::ParseEntry((*texts)[0]);
  ASSERT_TRUE(dl.ok());
  EXPECT_EQ(dl->patients, std::vector<std::string>{"p1"});

  // The privacy officer finds it through the audit API.
  AuditServiceOptions aso;
  aso.base_url = std::string(kBase);
  AuditService audit_api(vault_->audit_log(), access_.get(), aso);
  service_->SetAuditEndpoints(&audit_api);
  Headers po = {{"authorization", "Bearer " + Token("olga", "privacy-officer", "Practitioner/po", "user/*.rs")}};
  auto found = Call("GET", "/fhir/AuditEvent?action=export", "", po);
  ASSERT_EQ(found.status, 200) << found.body;
  EXPECT_NE(found.body.find("Patient/p2"), std::string::npos) << found.body;
}

}  // namespace
}  // namespace phivault::api
