// AuditService against a real vault, a real AuditLog in a temp dir and real
// EdDSA tokens: role and scope checks, proofs that verify with the RFC 6962
// verifier, ITI-81 filters and paging, and the access report.
#include "api/audit_service.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <set>

#include "api/testing/test_vault.h"
#include "audit/checkpoint.h"
#include "audit/entry.h"
#include "audit/merkle.h"
#include "fhir/time.h"
#include "http/testing/call.h"

namespace phivault::api {
namespace {

namespace json = boost::json;
using http::testing::Reply;

constexpr int64_t kT0 = 1767225600000;  // 2026-01-01T00:00:00Z

std::string Str(const json::value& v) { return std::string(v.as_string()); }

// The value[x] of the part named `name` of a Parameters "row".
const json::value* Part(const json::object& row, std::string_view name) {
  for (const auto& p : row.at("part").as_array()) {
    const auto& o = p.as_object();
    if (o.at("name").as_string() != name) continue;
    for (const auto& [k, v] : o) {
      if (k.starts_with("value")) return &v;
    }
  }
  return nullptr;
}

// Every query test runs three ways: scanning the log (no index), through
// an index that covers the whole log, and through one that covers only part
// of it (so the answer joins index lookups with a scan of the rest). The
// answers must be identical.
enum class IndexMode { kNone, kFull, kPartial };

class AuditServiceTest : public ::testing::TestWithParam<IndexMode> {
 protected:
  void SetUp() override {
    tv_ = testing::TestVault::Create(tmp_);
    ASSERT_NE(tv_.access, nullptr);
    // The vault's own log: it already holds the vault's events (creation,
    // start); the entries the tests append start at base_.
    log_ = tv_.vault->audit_log();
    ASSERT_NE(log_, nullptr);
    base_ = log_->size();
    AuditServiceOptions so;
    so.base_url = "https://vault.test";
    if (GetParam() != IndexMode::kNone) {
      auto indexer = AuditIndexer::Open(tv_.data_dir, tv_.vault->keyring(), log_);
      ASSERT_TRUE(indexer.ok()) << indexer.status().ToString();
      indexer_ = std::move(*indexer);
    }
    service_ = std::make_unique<AuditService>(log_, tv_.access.get(), so, indexer_.get());
    po_token_ = Token("po-1", "privacy-officer", "Practitioner/po", "user/*.rs");
  }

  std::string Token(const std::string& sub, const std::string& role, const std::string& fhir_user,
                    const std::string& scope) {
    return tv_.Token(sub, role, fhir_user, scope);
  }

  Reply Get(const std::string& target, const std::string& token,
            std::vector<std::pair<std::string, std::string>> headers = {}) {
    return GetWith(*service_, target, token, std::move(headers));
  }
  // Moves the index forward before each request as the mode says.
  void AdvanceIndex() {
    if (!indexer_) return;
    const uint64_t behind = log_->size() - indexer_->covered();
    auto r = indexer_->CatchUp(GetParam() == IndexMode::kFull ? behind : behind / 2);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }
  Reply GetWith(AuditService& service, const std::string& target, const std::string& token,
                std::vector<std::pair<std::string, std::string>> headers = {}) {
    AdvanceIndex();
    // Links are absolute; the server sees only the path and query.
    std::string t = target;
    if (t.starts_with("https://vault.test")) t = t.substr(18);
    http::HttpRequest req = http::testing::MakeRequest("GET", std::move(t), token);
    for (auto& h : headers) req.headers.push_back(std::move(h));
    req.remote_address = "127.0.0.1:1234";
    return http::testing::CallHandler(service, std::move(req));
  }

  // Appends an entry; returns its index.
  uint64_t Append(audit::AuditEntry e) {
    auto idx = log_->AppendAndWait(audit::Serialize(e));
    EXPECT_TRUE(idx.ok()) << idx.status().ToString();
    return idx.ok() ? *idx : 0;
  }

  static audit::AuditEntry Entry(int64_t t_ms, std::string subject, audit::AuditAction action,
                                 std::vector<std::string> patients, audit::AuditOutcome outcome = audit::AuditOutcome::kAllowed) {
    audit::AuditEntry e;
    e.time_ms = t_ms;
    e.request_id = "req-" + std::to_string(t_ms);
    e.agent.subject = std::move(subject);
    e.agent.role = "clinician";
    e.agent.fhir_user = "Practitioner/" + e.agent.subject;
    e.action = action;
    e.patients = std::move(patients);
    e.outcome = outcome;
    e.http_status = outcome == audit::AuditOutcome::kAllowed ? 200 : 403;
    e.purpose_of_use = "TREAT";
    for (const auto& p : e.patients) e.resources.push_back({"Observation", "obs-" + p, "1", ""});
    return e;
  }

  // Ten entries over ten minutes: who/what/whom varies so that every filter
  // selects a different subset.
  void AppendSample() {
    using A = audit::AuditAction;
    using O = audit::AuditOutcome;
    Append(Entry(kT0 + 0 * 60000, "dr-a", A::kRead, {"p1"}));
    Append(Entry(kT0 + 1 * 60000, "dr-b", A::kRead, {"p2"}));
    Append(Entry(kT0 + 2 * 60000, "dr-a", A::kSearch, {"p1", "p2"}));
    Append(Entry(kT0 + 3 * 60000, "dr-c", A::kRead, {"p1"}, O::kDenied));
    Append(Entry(kT0 + 4 * 60000, "dr-a", A::kUpdate, {"p1"}));
    audit::AuditEntry bg = Entry(kT0 + 5 * 60000, "dr-c", A::kRead, {"p1"});
    bg.break_glass = true;
    bg.purpose_of_use = "ETREAT";
    bg.break_glass_reason = "unconscious";
    Append(bg);
    Append(Entry(kT0 + 6 * 60000, "dr-b", A::kCreate, {"p3"}));
    audit::AuditEntry login = Entry(kT0 + 7 * 60000, "dr-b", A::kLogin, {});
    Append(login);
    Append(Entry(kT0 + 8 * 60000, "dr-a", A::kRead, {"p2"}));
    Append(Entry(kT0 + 9 * 60000, "dr-b", A::kDelete, {"p1"}));
  }

  // Follows next links of a searchset and returns the AuditEvent ids seen,
  // relative to base_ (the vault's own earlier events are left out).
  // `service` defaults to the fixture's.
  std::vector<uint64_t> SearchAll(const std::string& first, int* pages = nullptr, AuditService* service = nullptr) {
    std::vector<uint64_t> ids;
    std::string url = first;
    int n = 0;
    while (!url.empty() && n < 100) {
      ++n;
      Reply r = GetWith(service != nullptr ? *service : *service_, url, po_token_);
      EXPECT_EQ(r.status, 200) << url << " " << r.body;
      if (r.status != 200) break;
      auto b = r.Json();
      EXPECT_EQ(b["type"], "searchset");
      if (b.contains("entry")) {
        for (const auto& e : b["entry"].as_array()) {
          const auto& res = e.as_object().at("resource").as_object();
          EXPECT_EQ(res.at("resourceType"), "AuditEvent");
          const uint64_t id = std::stoull(Str(res.at("id")));
          if (id >= base_) ids.push_back(id - base_);  // relative to the tests' first entry
          EXPECT_EQ(Str(e.as_object().at("fullUrl")), "https://vault.test/fhir/AuditEvent/" + Str(res.at("id")));
        }
      }
      url.clear();
      for (const auto& l : b["link"].as_array()) {
        if (l.as_object().at("relation") == "next") url = Str(l.as_object().at("url"));
      }
    }
    if (pages) *pages = n;
    return ids;
  }

  std::string Ev(uint64_t n) const { return "AuditEvent/" + std::to_string(base_ + n); }
  std::string Idx(uint64_t n) const { return std::to_string(base_ + n); }

  phivault::testing::TempDir tmp_;
  testing::TestVault tv_;
  audit::AuditLog* log_ = nullptr;
  uint64_t base_ = 0;
  std::unique_ptr<AuditIndexer> indexer_;
  std::unique_ptr<AuditService> service_;
  std::string po_token_;
};

INSTANTIATE_TEST_SUITE_P(IndexModes, AuditServiceTest,
                         ::testing::Values(IndexMode::kNone, IndexMode::kFull, IndexMode::kPartial),
                         [](const ::testing::TestParamInfo<IndexMode>& i) {
                           return std::string(i.param == IndexMode::kNone   ? "Scan"
                                              : i.param == IndexMode::kFull ? "FullIndex"
                                                                            : "PartialIndex");
                         });

TEST_P(AuditServiceTest, OnlyPrivacyOfficersAndThePatientThemself) {
  AppendSample();
  const std::vector<std::string> officer_only = {
      "/audit/checkpoint", "/audit/proof/inclusion?index=0&size=1", "/audit/proof/consistency?from=1&to=2",
      "/audit/entries", "/fhir/AuditEvent", "/fhir/AuditEvent/0"};
  const std::string report = "/fhir/Patient/p1/$access-report";
  std::string clinician = Token("dr-a", "clinician", "Practitioner/dr-a", "user/*.cruds");
  std::string admin = Token("sec", "security-admin", "", "user/*.cruds");
  std::string patient1 = Token("pat-1", "patient", "Patient/p1", "patient/*.rs");
  std::string patient2 = Token("pat-2", "patient", "Patient/p2", "patient/*.rs");
  std::string patient1_url = Token("pat-1", "patient", "https://vault.test/fhir/Patient/p1", "patient/*.rs");
  for (const auto& path : officer_only) {
    EXPECT_EQ(Get(path, po_token_).status, 200) << path;
    for (const auto* t : {&clinician, &admin, &patient1}) {
      Reply r = Get(path, *t);
      EXPECT_EQ(r.status, 403) << path;
      EXPECT_EQ(r.Json()["resourceType"], "OperationOutcome") << path;
    }
    Reply anon = Get(path, "");
    EXPECT_EQ(anon.status, 401) << path;
    EXPECT_EQ(anon.Json()["resourceType"], "OperationOutcome");
  }
  EXPECT_EQ(Get(report, po_token_).status, 200);
  EXPECT_EQ(Get(report, patient1).status, 200);
  EXPECT_EQ(Get(report, patient1_url).status, 200);
  EXPECT_EQ(Get(report, patient2).status, 403) << "another patient's report";
  EXPECT_EQ(Get("/fhir/Patient/nobody/$access-report", patient1).status, 403)
      << "same answer whether or not the patient exists";
  EXPECT_EQ(Get(report, clinician).status, 403);
  EXPECT_EQ(Get(report, "").status, 401);

  // SMART scopes still limit what the app may do for the user.
  std::string po_obs_only = Token("po-2", "privacy-officer", "Practitioner/po2", "user/Observation.rs");
  EXPECT_EQ(Get("/fhir/AuditEvent", po_obs_only).status, 403);
  EXPECT_EQ(Get(report, po_obs_only).status, 403);
  std::string po_audit = Token("po-3", "privacy-officer", "Practitioner/po3", "user/AuditEvent.rs");
  EXPECT_EQ(Get("/fhir/AuditEvent", po_audit).status, 200);
  std::string pat_read_only = Token("pat-1", "patient", "Patient/p1", "patient/Observation.rs");
  EXPECT_EQ(Get(report, pat_read_only).status, 403);
}

TEST_P(AuditServiceTest, RoutesAndDescribesTheRequestForItsAuditEntry) {
  EXPECT_TRUE(AuditService::Handles("/audit/checkpoint"));
  EXPECT_TRUE(AuditService::Handles("/audit/nothing"));
  EXPECT_TRUE(AuditService::Handles("/fhir/AuditEvent"));
  EXPECT_TRUE(AuditService::Handles("/fhir/AuditEvent/12"));
  EXPECT_TRUE(AuditService::Handles("/fhir/Patient/p1/$access-report"));
  EXPECT_FALSE(AuditService::Handles("/fhir/Patient/p1"));
  EXPECT_FALSE(AuditService::Handles("/fhir/Patient/p1/$everything"));
  EXPECT_FALSE(AuditService::Handles("/fhir/AuditEventX"));
  EXPECT_FALSE(AuditService::Handles("/auditx"));

  http::HttpRequest req;
  req.path = "/fhir/Patient/p9/$access-report";
  req.query = "start=2026&_sort=-when";
  AuditRequestInfo info = AuditService::Describe(req);
  EXPECT_EQ(info.action, audit::AuditAction::kAccessReport);
  EXPECT_EQ(info.patients, std::vector<std::string>{"p9"});
  EXPECT_EQ(info.query, "Patient/$access-report?_sort&start");
  req.path = "/fhir/AuditEvent";
  req.query = "patient=Patient/p1,p2&date=ge2026&agent=secret-value";
  info = AuditService::Describe(req);
  EXPECT_EQ(info.action, audit::AuditAction::kAuditQuery);
  EXPECT_EQ(info.patients, (std::vector<std::string>{"p1", "p2"}));
  EXPECT_EQ(info.query, "AuditEvent?agent&date&patient") << "names only, never values";
  req.query = "John%20Smith=1&patient=p1";
  EXPECT_EQ(AuditService::Describe(req).query, "AuditEvent??&patient")
      << "free text in a name is not recorded";
  req.path = "/audit/entries";
  req.query = "start=1";
  info = AuditService::Describe(req);
  EXPECT_EQ(info.action, audit::AuditAction::kAuditQuery);
  EXPECT_TRUE(info.patients.empty());
  EXPECT_EQ(info.query, "/audit/entries?start");

  // Writes are not possible through this service.
  http::HttpRequest post;
  post.method = "POST";
  post.path = post.target = "/fhir/AuditEvent";
  post.headers.emplace_back("authorization", "Bearer " + po_token_);
  EXPECT_EQ(http::testing::CallHandler(*service_, post).status, 405);
}

TEST_P(AuditServiceTest, CheckpointAndProofsVerify) {
  AppendSample();
  ASSERT_TRUE(log_->SignCheckpoint().ok());  // GET serves the latest; make it cover all ten
  Reply cp1 = Get("/audit/checkpoint", po_token_);
  ASSERT_EQ(cp1.status, 200);
  EXPECT_EQ(cp1.Header("Content-Type"), "text/plain; charset=utf-8");
  auto vkey = audit::ParseVerifierKey(log_->VerifierKey());
  ASSERT_TRUE(vkey.ok());
  auto head1 = audit::VerifyCheckpoint(cp1.body, *vkey);
  ASSERT_TRUE(head1.ok()) << head1.status().ToString() << cp1.body;
  EXPECT_EQ(head1->size, base_ + 10);
  EXPECT_EQ(head1->origin, log_->origin());

  for (int i = 0; i < 7; ++i) Append(Entry(kT0 + 600000 + i, "dr-z", audit::AuditAction::kRead, {"p4"}));
  ASSERT_TRUE(log_->SignCheckpoint().ok());
  Reply cp2 = Get("/audit/checkpoint", po_token_);
  auto head2 = audit::VerifyCheckpoint(cp2.body, *vkey);
  ASSERT_TRUE(head2.ok());
  const uint64_t n = base_ + 17;
  ASSERT_EQ(head2->size, n);
  const std::string size = "&size=" + std::to_string(n);

  // Inclusion of every entry in the tree, checked against the signed root
  // with the independent RFC 9162 verification.
  for (uint64_t i = 0; i < n; ++i) {
    Reply r = Get("/audit/proof/inclusion?index=" + std::to_string(i) + size, po_token_);
    ASSERT_EQ(r.status, 200) << r.body;
    auto o = r.Json();
    EXPECT_EQ(o["index"].to_number<uint64_t>(), i);
    EXPECT_EQ(o["size"].to_number<uint64_t>(), n);
    std::vector<std::string> proof;
    for (const auto& h : o["proof"].as_array()) proof.push_back(*audit::Base64Decode(Str(h)));
    auto leaf = audit::Base64Decode(Str(o["leafHash"]));
    ASSERT_TRUE(leaf.ok());
    EXPECT_EQ(*audit::Base64Decode(Str(o["rootHash"])), audit::HashString(head2->root));
    EXPECT_TRUE(audit::VerifyInclusion(i, n, *leaf, proof, audit::HashView(head2->root)).ok()) << i;
    // The leaf is the hash of the sealed record, not of anything we chose.
    EXPECT_EQ(*leaf, *log_->LeafHash(i));
    if (!proof.empty()) {
      proof[0][0] ^= 1;
      EXPECT_FALSE(audit::VerifyInclusion(i, n, *leaf, proof, audit::HashView(head2->root)).ok());
    }
  }

  // Consistency between the two signed checkpoints.
  Reply c = Get("/audit/proof/consistency?from=" + Idx(10) + "&to=" + std::to_string(n), po_token_);
  ASSERT_EQ(c.status, 200) << c.body;
  auto co = c.Json();
  std::vector<std::string> cproof;
  for (const auto& h : co["proof"].as_array()) cproof.push_back(*audit::Base64Decode(Str(h)));
  EXPECT_EQ(*audit::Base64Decode(Str(co["fromRoot"])), audit::HashString(head1->root));
  EXPECT_EQ(*audit::Base64Decode(Str(co["toRoot"])), audit::HashString(head2->root));
  EXPECT_TRUE(audit::VerifyConsistency(base_ + 10, n, cproof, audit::HashView(head1->root), audit::HashView(head2->root)).ok());
  EXPECT_FALSE(audit::VerifyConsistency(base_ + 10, n, cproof, audit::HashView(head2->root), audit::HashView(head1->root)).ok());

  // Untrusted parameters: OperationOutcome 400, never a crash.
  const std::string n_s = std::to_string(n), n1_s = std::to_string(n + 1);
  for (std::string bad :
       {"/audit/proof/inclusion?index=" + n_s + "&size=" + n_s, "/audit/proof/inclusion?index=0&size=" + n1_s,
        std::string("/audit/proof/inclusion?index=0"), std::string("/audit/proof/inclusion?index=-1&size=3"),
        std::string("/audit/proof/inclusion?index=0&size=3&size=4"),
        std::string("/audit/proof/inclusion?index=99999999999999999999999&size=2"),
        std::string("/audit/proof/consistency?from=0&to=3"), std::string("/audit/proof/consistency?from=5&to=3"),
        "/audit/proof/consistency?from=1&to=" + n1_s, std::string("/audit/proof/consistency?from=x&to=3")}) {
    Reply r = Get(bad, po_token_);
    EXPECT_EQ(r.status, 400) << bad << " " << r.body;
    EXPECT_EQ(r.Json()["resourceType"], "OperationOutcome") << bad;
  }
  EXPECT_EQ(Get("/audit/nothing", po_token_).status, 404);
}

TEST_P(AuditServiceTest, EntriesArePagedAndDecrypted) {
  std::vector<std::string> request_ids;
  for (int i = 0; i < 25; ++i) {
    audit::AuditEntry e = Entry(kT0 + i, "dr-a", audit::AuditAction::kRead, {"p1"});
    request_ids.push_back(e.request_id);
    Append(e);
  }
  ASSERT_TRUE(log_->AppendAndWait("not json at all").ok());  // a foreign record is shown, not dropped
  std::vector<std::string> seen;
  std::string url = "/audit/entries?start=" + Idx(3) + "&_count=10";
  int pages = 0;
  bool saw_raw = false;
  while (!url.empty()) {
    ASSERT_LT(++pages, 10);
    Reply r = Get(url, po_token_);
    ASSERT_EQ(r.status, 200) << r.body;
    auto o = r.Json();
    EXPECT_EQ(o["logSize"].to_number<uint64_t>(), base_ + 26);
    uint64_t expect_index = o["start"].to_number<uint64_t>();
    for (const auto& e : o["entries"].as_array()) {
      const auto& eo = e.as_object();
      EXPECT_EQ(eo.at("index").to_number<uint64_t>(), expect_index++);
      if (eo.contains("entry")) {
        seen.push_back(Str(eo.at("entry").as_object().at("request_id")));
      } else {
        EXPECT_EQ(*audit::Base64Decode(Str(eo.at("raw"))), "not json at all");
        saw_raw = true;
      }
    }
    url = o.contains("next") ? Str(o["next"]) : "";
  }
  EXPECT_EQ(pages, 3);
  EXPECT_TRUE(saw_raw);
  EXPECT_EQ(seen, std::vector<std::string>(request_ids.begin() + 3, request_ids.end()));

  auto bounded = Get("/audit/entries?start=" + Idx(5) + "&end=" + Idx(7), po_token_).Json();
  EXPECT_EQ(bounded["entries"].as_array().size(), 2u);
  EXPECT_FALSE(bounded.contains("next"));
  EXPECT_EQ(Get("/audit/entries?start=5&end=" + Idx(27), po_token_).status, 400);
  EXPECT_EQ(Get("/audit/entries?start=8&end=7", po_token_).status, 400);
  EXPECT_EQ(Get("/audit/entries?_count=0", po_token_).status, 400);
}

TEST_P(AuditServiceTest, AuditEventSearchFiltersLikeIti81) {
  AppendSample();
  auto ids = [&](const std::string& q) { return SearchAll("/fhir/AuditEvent" + q); };
  using V = std::vector<uint64_t>;
  EXPECT_EQ(ids(""), (V{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_EQ(ids("?patient=p1"), (V{0, 2, 3, 4, 5, 9}));
  EXPECT_EQ(ids("?patient=Patient/p2"), (V{1, 2, 8}));
  EXPECT_EQ(ids("?patient=p3,p2"), (V{1, 2, 6, 8}));
  EXPECT_EQ(ids("?agent=dr-a"), (V{0, 2, 4, 8}));
  EXPECT_EQ(ids("?agent=Practitioner/dr-c"), (V{3, 5}));
  EXPECT_EQ(ids("?action=read"), (V{0, 1, 3, 5, 8}));
  EXPECT_EQ(ids("?action=C,D"), (V{6, 9}));
  EXPECT_EQ(ids("?outcome=denied"), (V{3}));
  EXPECT_EQ(ids("?outcome=4"), (V{3}));
  EXPECT_EQ(ids("?date=ge2026-01-01T00:04:00Z&date=le2026-01-01T00:06:30Z"), (V{4, 5, 6}));
  EXPECT_EQ(ids("?date=lt2026-01-01T00:01:00Z"), (V{0}));
  EXPECT_EQ(ids("?date=ge2026-01-02"), V{});
  EXPECT_EQ(ids("?patient=p1&agent=dr-a&action=read,update"), (V{0, 4}));

  // One event as BALP: patient entity, agent id, action code, break-glass purpose.
  Reply one = Get("/fhir/AuditEvent?patient=p1&outcome=allowed&agent=dr-c", po_token_);
  ASSERT_EQ(one.status, 200);
  auto b = one.Json();
  ASSERT_EQ(b["entry"].as_array().size(), 1u);
  const auto& ev = b["entry"].as_array()[0].as_object().at("resource").as_object();
  EXPECT_EQ(Str(ev.at("id")), Idx(5));
  EXPECT_EQ(ev.at("action"), "R");
  std::string text = json::serialize(ev);
  EXPECT_NE(text.find("Patient/p1"), std::string::npos);
  EXPECT_NE(text.find("ETREAT"), std::string::npos);
  Reply read = Get("/fhir/" + Ev(5), po_token_);
  ASSERT_EQ(read.status, 200);
  EXPECT_EQ(read.Json(), ev) << "the fullUrl resolves to the same resource";
  EXPECT_EQ(Get("/fhir/" + Ev(10), po_token_).status, 404);
  EXPECT_EQ(Get("/fhir/AuditEvent/abc", po_token_).status, 404);

  // Bad values: 400 OperationOutcome.
  for (std::string bad : {"?date=ge2026-13-01", "?date=xx2026", "?patient=", "?patient=p1&patient=p2",
                                 "?_cursor=999", "?_count=abc"}) {
    Reply r = Get("/fhir/AuditEvent" + bad, po_token_);
    EXPECT_EQ(r.status, 400) << bad << " " << r.body;
    EXPECT_EQ(r.Json()["resourceType"], "OperationOutcome");
  }
}

TEST_P(AuditServiceTest, AuditEventUnknownParametersNeedLenientHandling) {
  AppendSample();
  for (std::string q : {"?entity-type=Patient", "?_sort=-date", "?patient:missing=true", "?_include=x"}) {
    Reply strict = Get("/fhir/AuditEvent" + q, po_token_);
    EXPECT_EQ(strict.status, 400) << q;
    EXPECT_EQ(strict.Json()["resourceType"], "OperationOutcome");
  }
  Reply lenient = Get("/fhir/AuditEvent?subtype=x&agent=dr-b&_sort=-date", po_token_,
                      {{"prefer", "handling=lenient"}});
  ASSERT_EQ(lenient.status, 200) << lenient.body;
  auto b = lenient.Json();
  EXPECT_EQ(b["entry"].as_array().size(), 4u) << "the ignored parameters filter nothing";
  std::string self = Str(b["link"].as_array()[0].as_object().at("url"));
  EXPECT_NE(self.find("agent=dr-b"), std::string::npos) << self;
  EXPECT_EQ(self.find("subtype"), std::string::npos) << "self shows what was applied: " << self;
  EXPECT_EQ(self.find("_sort"), std::string::npos) << self;
}

TEST_P(AuditServiceTest, AuditEventPagingSeesEachMatchOnceWhileEntriesArrive) {
  AppendSample();
  // Page size 2 over the six p1 events: every page link continues exactly
  // where the previous one stopped, and entries appended meanwhile show up
  // at the end instead of shifting pages.
  Reply first = Get("/fhir/AuditEvent?patient=p1&_count=2", po_token_);
  ASSERT_EQ(first.status, 200);
  auto fb = first.Json();
  ASSERT_EQ(fb["entry"].as_array().size(), 2u);
  std::string next;
  for (const auto& l : fb["link"].as_array()) {
    if (l.as_object().at("relation") == "next") next = Str(l.as_object().at("url"));
  }
  ASSERT_FALSE(next.empty());
  EXPECT_NE(next.find("patient=p1"), std::string::npos);
  Append(Entry(kT0 + 3600000, "dr-d", audit::AuditAction::kRead, {"p1"}));
  int pages = 0;
  std::vector<uint64_t> rest = SearchAll(next, &pages);
  EXPECT_EQ(rest, (std::vector<uint64_t>{3, 4, 5, 9, 10}));

  // A small scan budget gives short pages, never lost matches.
  AuditServiceOptions so;
  so.base_url = "https://vault.test";
  so.max_scan_entries = 3;
  AuditService small(log_, tv_.access.get(), so, indexer_.get());
  int n = 0;
  EXPECT_EQ(SearchAll("/fhir/AuditEvent?patient=p2", &n, &small), (std::vector<uint64_t>{1, 2, 8}));
  if (GetParam() == IndexMode::kNone) {
    EXPECT_EQ(static_cast<uint64_t>(n), (base_ + 11 + 2) / 3) << "3 entries examined per page";
  } else if (GetParam() == IndexMode::kFull) {
    // p2's entries come from the index (at most 3 per page), and the page
    // that lists the last of them also covers the rest of the log.
    EXPECT_LE(n, 3) << "the index skips entries that are not p2's";
  }

  // The same for an agent (a privacy officer's "what did dr-c do"), by
  // account id and by fhirUser.
  for (const std::string who : {"dr-c", "Practitioner/dr-c"}) {
    EXPECT_EQ(SearchAll("/fhir/AuditEvent?agent=" + who, &n, &small), (std::vector<uint64_t>{3, 5})) << who;
    if (GetParam() == IndexMode::kNone) {
      EXPECT_EQ(static_cast<uint64_t>(n), (base_ + 11 + 2) / 3) << who;
    } else if (GetParam() == IndexMode::kFull) {
      EXPECT_LE(n, 2) << who << ": the index skips entries by other agents";
    }
  }
}

TEST_P(AuditServiceTest, AccessReportListsWhoTouchedThePatient) {
  AppendSample();
  std::string patient1 = Token("pat-1", "patient", "Patient/p1", "patient/*.rs");
  Reply r = Get("/fhir/Patient/p1/$access-report", patient1);
  ASSERT_EQ(r.status, 200) << r.body;
  auto o = r.Json();
  EXPECT_EQ(o["resourceType"], "Parameters");
  std::vector<const json::object*> rows;
  uint64_t total = 0;
  for (const auto& p : o["parameter"].as_array()) {
    const auto& po = p.as_object();
    if (po.at("name") == "row") rows.push_back(&po);
    if (po.at("name") == "total") total = po.at("valueUnsignedInt").to_number<uint64_t>();
    if (po.at("name") == "patient") {
      EXPECT_EQ(po.at("valueReference").as_object().at("reference"), "Patient/p1");
    }
  }
  ASSERT_EQ(rows.size(), 6u);
  EXPECT_EQ(total, 6u);
  std::vector<std::string> events;
  for (const auto* row : rows) events.push_back(Str(Part(*row, "event")->as_object().at("reference")));
  EXPECT_EQ(events, (std::vector<std::string>{Ev(0), Ev(2), Ev(3), Ev(4), Ev(5), Ev(9)}));
  // The search at index 2 also touched p2: only counts, no ids of p2's records.
  EXPECT_EQ(json::serialize(*rows[1]).find("obs-p2"), std::string::npos) << json::serialize(*rows[1]);
  EXPECT_EQ(json::serialize(o).find("p2"), std::string::npos) << "nothing of another patient";
  // Denied attempts and break-glass are part of the accounting.
  EXPECT_EQ(Str(*Part(*rows[2], "outcome")), "denied");
  EXPECT_EQ(Part(*rows[4], "breakGlass")->as_bool(), true);
  EXPECT_EQ(Str(*Part(*rows[4], "breakGlassReason")), "unconscious");
  EXPECT_EQ(Str(Part(*rows[4], "purpose")->as_object().at("code")), "ETREAT");
  EXPECT_EQ(Str(*Part(*rows[0], "who")), "dr-a");
  EXPECT_EQ(Str(*Part(*rows[0], "when")), "2026-01-01T00:00:00.000Z");

  // Sorted by another field, narrowed by time.
  auto whos = [&](const std::string& q) {
    std::vector<std::string> out;
    Reply rr = Get("/fhir/Patient/p1/$access-report" + q, po_token_);
    EXPECT_EQ(rr.status, 200) << q << rr.body;
    const json::object body = rr.Json();
    for (const auto& p : body.at("parameter").as_array()) {
      const auto& po = p.as_object();
      if (po.at("name") == "row") out.push_back(Str(*Part(po, "who")) + "@" + Str(*Part(po, "when")).substr(14, 2));
    }
    return out;
  };
  using S = std::vector<std::string>;
  EXPECT_EQ(whos("?_sort=-who"), (S{"dr-c@03", "dr-c@05", "dr-b@09", "dr-a@00", "dr-a@02", "dr-a@04"}));
  EXPECT_EQ(whos("?_sort=-when"), (S{"dr-b@09", "dr-c@05", "dr-a@04", "dr-c@03", "dr-a@02", "dr-a@00"}));
  EXPECT_EQ(whos("?start=2026-01-01T00:03:00Z&end=2026-01-01T00:05:00Z"), (S{"dr-c@03", "dr-a@04", "dr-c@05"}));
  EXPECT_EQ(whos("?start=2026-01-02"), S{});
  EXPECT_EQ(Get("/fhir/Patient/p1/$access-report?_sort=colour", po_token_).status, 400);
  EXPECT_EQ(Get("/fhir/Patient/p1/$access-report?start=yesterday", po_token_).status, 400);
  EXPECT_EQ(Get("/fhir/Patient/p1/$access-report?bogus=1", po_token_).status, 400);
  EXPECT_EQ(Get("/fhir/Patient/p1/$access-report?bogus=1", po_token_, {{"prefer", "handling=lenient"}}).status, 200);
  EXPECT_EQ(Get("/fhir/Patient/bad$id/$access-report", po_token_).status, 400);
}

TEST_P(AuditServiceTest, AccessReportPagesStayStableWhileEntriesArrive) {
  AppendSample();
  auto page = [&](const std::string& url, std::string* next) {
    std::vector<std::string> events;
    Reply r = Get(url, po_token_);
    EXPECT_EQ(r.status, 200) << r.body;
    next->clear();
    const json::object body = r.Json();
    for (const auto& p : body.at("parameter").as_array()) {
      const auto& po = p.as_object();
      if (po.at("name") == "row") events.push_back(Str(Part(po, "event")->as_object().at("reference")));
      if (po.at("name") == "next") *next = Str(po.at("valueUri"));
    }
    return events;
  };
  std::string next;
  auto p1 = page("/fhir/Patient/p1/$access-report?_sort=-when&_count=4", &next);
  EXPECT_EQ(p1, (std::vector<std::string>{Ev(9), Ev(5), Ev(4), Ev(3)}));
  ASSERT_FALSE(next.empty());
  // A newer access would sort first; the second page must not repeat #3.
  Append(Entry(kT0 + 3600000, "dr-d", audit::AuditAction::kRead, {"p1"}));
  auto p2 = page(next, &next);
  EXPECT_EQ(p2, (std::vector<std::string>{Ev(2), Ev(0)}));
  EXPECT_TRUE(next.empty());
  // A new report sees the new access.
  auto fresh = page("/fhir/Patient/p1/$access-report?_sort=-when&_count=1", &next);
  EXPECT_EQ(fresh, std::vector<std::string>{Ev(10)});
  EXPECT_EQ(Get("/fhir/Patient/p1/$access-report?_snapshot=99", po_token_).status, 400);
}

}  // namespace
}  // namespace phivault::api
