// The audit trail on the request path (issue 4): one entry per request with
// what it returned or wrote, entries durable before answers, fail-closed when
// the log cannot be written, and writes whose entries survive a crash.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>

#include "api/audit_service.h"
#include "api/importer.h"
#include "api/testing/service_fixture.h"
#include "api/request_audit.h"
#include "audit/entry.h"
#include "audit/segment.h"
#include "audit/test_util.h"

namespace phivault::api {
namespace {

class AuditedRequestsTest : public FhirServiceTest {
 protected:
  // Every entry the log holds, decoded.
  std::vector<audit::AuditEntry> Entries() {
    std::vector<audit::AuditEntry> out;
    audit::AuditLog* log = vault_->audit_log();
    auto texts = log->ReadEntries(0, log->size());
    EXPECT_TRUE(texts.ok()) << texts.status().ToString();
    if (!texts.ok()) return out;
    for (const auto& t : *texts) {
      auto e = audit::ParseEntry(t);
      EXPECT_TRUE(e.ok()) << t;
      if (e.ok()) out.push_back(std::move(*e));
    }
    return out;
  }
  // The entries appended by `fn` (the log is only appended to).
  template <typename Fn>
  std::vector<audit::AuditEntry> EntriesOf(Fn fn) {
    size_t before = vault_->audit_log()->size();
    fn();
    auto all = Entries();
    return std::vector<audit::AuditEntry>(all.begin() + static_cast<ptrdiff_t>(before), all.end());
  }
  void ReopenVault() {
    service_.reset();
    access_.reset();
    vault_.reset();
    auto v = Vault::Open(cfg_);
    ASSERT_TRUE(v.ok()) << v.status().ToString();
    vault_ = std::move(*v);
  }
  // Waits (bounded) for the store to drop acknowledged outbox records.
  size_t PendingRecords() {
    for (int i = 0; i < 100; ++i) {
      auto p = vault_->store()->PendingAuditRecords();
      if (p.ok() && p->empty()) return 0;
      std::this_thread::sleep_for(std::chrono::milliseconds(30));
    }
    return vault_->store()->PendingAuditRecords()->size();
  }
};

using Headers = std::vector<std::pair<std::string, std::string>>;

TEST_F(AuditedRequestsTest, EveryRequestLeavesExactlyOneEntryNamingWhatItTouched) {
  ASSERT_EQ(Call("PUT", "/fhir/Patient/pat1", R"({"resourceType":"Patient","id":"pat1","name":[{"family":"Zyx"}]})")
                .status,
            201);
  ASSERT_EQ(Call("PUT", "/fhir/Observation/o1",
                 R"({"resourceType":"Observation","id":"o1","status":"final","code":{"text":"x"},)"
                 R"("subject":{"reference":"Patient/pat1"}})")
                .status,
            201);

  // A read: who, from where, what (type/id/version, the patient), outcome.
  auto read = EntriesOf([&] {
    auto r = Call("GET", "/fhir/Observation/o1", "", {{"x-request-id", "req-42"}, {"user-agent", "ehr/1.0"}});
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.Header("X-Request-Id"), "req-42");
  });
  ASSERT_EQ(read.size(), 1u);
  const audit::AuditEntry& e = read[0];
  EXPECT_EQ(e.action, audit::AuditAction::kRead);
  EXPECT_EQ(e.request_id, "req-42");
  EXPECT_EQ(e.user_agent, "ehr/1.0");
  EXPECT_EQ(e.agent.subject, "backend");
  EXPECT_EQ(e.agent.role, "system");
  ASSERT_EQ(e.resources.size(), 1u);
  EXPECT_EQ(e.resources[0], (audit::AuditResource{"Observation", "o1", "1", ""}));
  EXPECT_EQ(e.patients, std::vector<std::string>{"pat1"});
  EXPECT_EQ(e.outcome, audit::AuditOutcome::kAllowed);
  EXPECT_EQ(e.rule, "allow");
  EXPECT_EQ(e.http_status, 200);
  EXPECT_GT(e.time_ms, 0);
  EXPECT_EQ(e.data_category, "clinical");

  // An update: the version written and the one it replaced.
  auto upd = EntriesOf([&] {
    EXPECT_EQ(Call("PUT", "/fhir/Patient/pat1", R"({"resourceType":"Patient","id":"pat1"})").status, 200);
  });
  ASSERT_EQ(upd.size(), 1u);
  EXPECT_EQ(upd[0].action, audit::AuditAction::kUpdate);
  EXPECT_EQ(upd[0].resources, (std::vector<audit::AuditResource>{{"Patient", "pat1", "2", "1"}}));
  EXPECT_EQ(upd[0].data_category, "demographic");
  auto empty_search = EntriesOf([&] { EXPECT_EQ(Call("GET", "/fhir/Consent?patient=nobody").status, 200); });
  ASSERT_EQ(empty_search.size(), 1u);
  EXPECT_EQ(empty_search[0].data_category, "consent") << "named by the URL when nothing was returned";
  EXPECT_GT(upd[0].write_record, 0);
  EXPECT_EQ(PendingRecords(), 0u);  // handed on to the log and dropped

  // A history page: every version it returned.
  auto hist = EntriesOf([&] { EXPECT_EQ(Call("GET", "/fhir/Patient/pat1/_history").status, 200); });
  ASSERT_EQ(hist.size(), 1u);
  EXPECT_EQ(hist[0].action, audit::AuditAction::kHistory);
  EXPECT_EQ(hist[0].resources.size(), 2u);
  EXPECT_EQ(hist[0].query, "Patient/pat1/_history");

  // Unauthenticated and malformed requests are recorded too.
  auto anon = EntriesOf([&] { EXPECT_EQ(Call("GET", "/fhir/Patient/pat1", "", {{"authorization", ""}}).status, 401); });
  ASSERT_EQ(anon.size(), 1u);
  EXPECT_EQ(anon[0].outcome, audit::AuditOutcome::kDenied);
  EXPECT_EQ(anon[0].rule, "identity");
  EXPECT_EQ(anon[0].http_status, 401);
  auto bad = EntriesOf([&] { EXPECT_EQ(Call("GET", "/fhir/Patient/bad$id").status, 400); });
  ASSERT_EQ(bad.size(), 1u);
  EXPECT_EQ(bad[0].http_status, 400);

  // The operational endpoints carry no health data: not audited.
  auto ops = EntriesOf([&] {
    EXPECT_EQ(Call("GET", "/healthz").status, 200);
    EXPECT_EQ(Call("GET", "/readyz").status, 200);
    EXPECT_EQ(Call("GET", "/metrics").status, 200);  // a system token
  });
  EXPECT_TRUE(ops.empty());
  // Metrics show the record's size and activity: an anonymous or clinical
  // caller is refused, and the refusal is audited like any denial.
  auto refused = EntriesOf([&] {
    auto anon = CallAs("GET", "/metrics", "");
    EXPECT_EQ(anon.status, 401);
    EXPECT_EQ(anon.body.find("phivault_"), std::string::npos);
    auto clin = CallAs("GET", "/metrics", Token("doc", "clinician", "Practitioner/doc", "user/*.rs"));
    EXPECT_EQ(clin.status, 403);
    EXPECT_EQ(clin.body.find("phivault_"), std::string::npos);
    EXPECT_EQ(CallAs("GET", "/metrics", Token("ops", "security-admin", "Practitioner/ops", "user/Device.rs")).status,
              200);
  });
  ASSERT_EQ(refused.size(), 2u);
  EXPECT_EQ(refused[0].http_status, 401);
  EXPECT_EQ(refused[0].rule, "identity");
  EXPECT_EQ(refused[0].event, "metrics");
  EXPECT_EQ(refused[1].http_status, 403);
  EXPECT_EQ(refused[1].rule, "role");
  EXPECT_EQ(refused[1].outcome, audit::AuditOutcome::kDenied);
}

TEST_F(AuditedRequestsTest, DenialsRecordTheRuleAndTheRecordWithoutTellingTheCaller) {
  ASSERT_EQ(Call("PUT", "/fhir/Patient/pat1", R"({"resourceType":"Patient","id":"pat1"})").status, 201);
  ASSERT_EQ(Call("PUT", "/fhir/Condition/c1",
                 R"({"resourceType":"Condition","id":"c1","subject":{"reference":"Patient/pat1"}})")
                .status,
            201);
  Headers dr = {{"authorization", "Bearer " + Token("alice", "clinician", "Practitioner/dr1", "user/*.cruds")}};
  auto denied = EntriesOf([&] {
    auto r = Call("GET", "/fhir/Condition/c1", "", dr);
    EXPECT_EQ(r.status, 404);  // as if missing...
  });
  ASSERT_EQ(denied.size(), 1u);
  // ...but the privacy officer learns who tried what, and which rule said no.
  EXPECT_EQ(denied[0].outcome, audit::AuditOutcome::kDenied);
  EXPECT_EQ(denied[0].rule, "care-relationship");
  EXPECT_NE(denied[0].decision.find("care-relationship-"), std::string::npos) << denied[0].decision;
  EXPECT_EQ(denied[0].agent.fhir_user, "Practitioner/dr1");
  EXPECT_EQ(denied[0].patients, std::vector<std::string>{"pat1"});
  ASSERT_EQ(denied[0].resources.size(), 1u);
  EXPECT_EQ(denied[0].resources[0].id, "c1");

  // A refused PATCH names the record and whose it is in the same way.
  auto patch = EntriesOf([&] {
    Headers h = dr;
    h.emplace_back("content-type", "application/json-patch+json");
    auto r = Call("PATCH", "/fhir/Condition/c1", R"([{"op":"add","path":"/onsetString","value":"x"}])", h);
    EXPECT_EQ(r.status, 404) << r.body;
  });
  ASSERT_EQ(patch.size(), 1u);
  EXPECT_EQ(patch[0].outcome, audit::AuditOutcome::kDenied);
  EXPECT_EQ(patch[0].rule, "care-relationship");
  EXPECT_EQ(patch[0].patients, std::vector<std::string>{"pat1"});
  ASSERT_EQ(patch[0].resources.size(), 1u);
  EXPECT_EQ(patch[0].resources[0].id, "c1");

  // Break-glass: the grant is an event of its own, and the read it allowed
  // is marked, with the reason.
  dr.emplace_back("x-purpose-of-use", "ETREAT");
  dr.emplace_back("x-break-glass-reason", "unconscious in ED");
  auto bg = EntriesOf([&] { EXPECT_EQ(Call("GET", "/fhir/Condition/c1", "", dr).status, 200); });
  ASSERT_EQ(bg.size(), 2u);
  EXPECT_EQ(bg[0].action, audit::AuditAction::kBreakGlass);
  EXPECT_EQ(bg[0].patients, std::vector<std::string>{"pat1"});
  EXPECT_EQ(bg[1].action, audit::AuditAction::kRead);
  EXPECT_TRUE(bg[1].break_glass);
  EXPECT_EQ(bg[1].break_glass_reason, "unconscious in ED");
  EXPECT_EQ(bg[1].purpose_of_use, "ETREAT");
  EXPECT_EQ(bg[1].rule, "break-glass");

  // Within the window a plain search or $everything reaches the record only
  // through the grant: their entries are marked too.
  Headers plain = {dr[0]};
  auto searched = EntriesOf([&] {
    auto r = Call("GET", "/fhir/Condition?patient=pat1", "", plain);
    EXPECT_EQ(r.status, 200);
    EXPECT_NE(r.body.find("\"c1\""), std::string::npos) << r.body;
  });
  ASSERT_EQ(searched.size(), 1u);
  EXPECT_TRUE(searched[0].break_glass);
  auto everything = EntriesOf([&] { EXPECT_EQ(Call("GET", "/fhir/Patient/pat1/$everything", "", plain).status, 200); });
  ASSERT_EQ(everything.size(), 1u);
  EXPECT_TRUE(everything[0].break_glass);
}

// Every grant raises its own alert entry, whatever path opened it (here a
// create and a PATCH, which used to open grants silently), naming the
// request that opened it.
TEST_F(AuditedRequestsTest, EveryBreakGlassGrantIsAnAlertOfItsOwn) {
  ASSERT_EQ(Call("PUT", "/fhir/Patient/pat2", R"({"resourceType":"Patient","id":"pat2"})").status, 201);
  auto glass = [&](const std::string& sub) {
    return Headers{{"authorization", "Bearer " + Token(sub, "clinician", "Practitioner/" + sub, "user/*.cruds")},
                   {"x-purpose-of-use", "ETREAT"},
                   {"x-break-glass-reason", "unconscious in ED"}};
  };
  auto alerts = [](const std::vector<audit::AuditEntry>& entries) {
    std::vector<audit::AuditEntry> out;
    for (const auto& e : entries) {
      if (e.action == audit::AuditAction::kBreakGlass) out.push_back(e);
    }
    return out;
  };
  std::string id;
  auto created = EntriesOf([&] {
    auto r = CallAs("POST", "/fhir/Observation", "",
                    R"({"resourceType":"Observation","status":"final","code":{"text":"x"},)"
                    R"("subject":{"reference":"Patient/pat2"}})",
                    glass("dr8"));
    ASSERT_EQ(r.status, 201) << r.body;
    id = std::string(r.Json()["id"].as_string());
  });
  auto a = alerts(created);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].patients, std::vector<std::string>{"pat2"});
  EXPECT_EQ(a[0].agent.subject, "dr8");
  EXPECT_EQ(a[0].request_id, created.back().request_id) << "the alert names the request that opened the grant";

  Headers patch = glass("dr9");
  patch.emplace_back("content-type", "application/json-patch+json");
  auto patched = EntriesOf([&] {
    auto r = CallAs("PATCH", "/fhir/Observation/" + id, "", R"([{"op":"replace","path":"/status","value":"amended"}])",
                    patch);
    EXPECT_EQ(r.status, 200) << r.body;
  });
  a = alerts(patched);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].agent.subject, "dr9");
}

TEST_F(AuditedRequestsTest, BundleEntryListsEveryWriteAndEveryReadItReturned) {
  ASSERT_EQ(Call("PUT", "/fhir/Patient/pat1", R"({"resourceType":"Patient","id":"pat1"})").status, 201);
  std::string bundle = R"({"resourceType":"Bundle","type":"batch","entry":[
    {"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/pat1"}},
     "request":{"method":"POST","url":"Observation"}},
    {"request":{"method":"GET","url":"Patient/pat1"}}]})";
  auto entries = EntriesOf([&] { EXPECT_EQ(Call("POST", "/fhir", bundle).status, 200); });
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].action, audit::AuditAction::kBatch);
  ASSERT_EQ(entries[0].resources.size(), 2u);
  EXPECT_EQ(entries[0].resources[0].type, "Observation");
  EXPECT_EQ(entries[0].resources[1], (audit::AuditResource{"Patient", "pat1", "1", ""}));
  EXPECT_EQ(entries[0].patients, std::vector<std::string>{"pat1"});
}

// A batch's entry must fit in the log after its writes committed; otherwise
// the write stands while its answer turns into a 503. Reads past what the
// entry can hold are refused one by one instead, and nothing returned goes
// unrecorded.
TEST_F(AuditedRequestsTest, BatchReadsStopWhereTheAuditEntryWouldOverflow) {
  std::string create = R"({"resourceType":"Bundle","type":"transaction","entry":[)";
  std::string batch = R"({"resourceType":"Bundle","type":"batch","entry":[
    {"resource":{"resourceType":"Patient","id":"newcomer"},"request":{"method":"PUT","url":"Patient/newcomer"}})";
  for (int i = 0; i < 100; ++i) {
    std::string id = "budget-" + std::to_string(i);
    if (i) create += ',';
    create += R"({"resource":{"resourceType":"Patient","id":")" + id + R"("},"request":{"method":"PUT","url":"Patient/)" +
              id + R"("}})";
    batch += R"(,{"request":{"method":"GET","url":"Patient/)" + id + R"("}})";
  }
  create += "]}";
  batch += "]}";
  ASSERT_EQ(Call("POST", "/fhir", create).status, 200);

  constexpr size_t kBudget = 6000;
  ServiceOptions so;
  so.base_url = testing::TestVault::kIssuer;
  so.keyring = &vault_->keyring();
  so.max_audit_entry_bytes = kBudget;
  service_ = std::make_unique<FhirService>(vault_->store(), access_.get(), vault_->audit_trail(), so);

  Reply r;
  auto entries = EntriesOf([&] { r = Call("POST", "/fhir", batch); });
  ASSERT_EQ(r.status, 200) << r.body;
  auto answers = r.Json().at("entry").as_array();
  ASSERT_EQ(answers.size(), 101u);
  EXPECT_EQ(answers[0].at("response").at("status").as_string(), "201 Created");
  size_t served = 0, refused = 0;
  for (size_t i = 1; i < answers.size(); ++i) {
    std::string status(answers[i].at("response").at("status").as_string());
    if (status == "200 OK") {
      EXPECT_EQ(refused, 0u) << "a read after the first refusal was served";
      ++served;
    } else {
      EXPECT_EQ(status.substr(0, 3), "413") << status;
      ++refused;
    }
  }
  EXPECT_GT(served, 10u);
  EXPECT_GT(refused, 0u);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].resources.size(), 1 + served);  // the write and each read served
  EXPECT_EQ(entries[0].http_status, 200);
  EXPECT_LE(audit::Serialize(entries[0]).size(), kBudget);
  EXPECT_EQ(PendingRecords(), 0u);
  EXPECT_TRUE(vault_->audit_trail()->Healthy());
}

// An open checks the audit history before the latest checkpoint in the
// background (the log grows without bound; checking it all first would keep
// the vault down for minutes). A rewritten entry found by that check stops
// every request that needs the log, readiness with it, and the vault then
// refuses to open until the log is restored.
TEST_F(AuditedRequestsTest, RewrittenAuditHistoryFoundAfterOpenStopsService) {
  ASSERT_EQ(Call("PUT", "/fhir/Patient/pat1", R"({"resourceType":"Patient","id":"pat1","name":[{"family":"Qwertyson"}]})")
                .status,
            201);
  ASSERT_EQ(Call("GET", "/fhir/Patient/pat1").status, 200);
  service_.reset();
  access_.reset();
  vault_.reset();  // closing signs a checkpoint over every entry

  const std::string seg_path = audit::AuditLog::AuditDir(cfg_.data_dir) + "/seg-000001.log";
  auto seg = audit::testing::ReadSegment(seg_path);
  ASSERT_GE(seg.records.size(), 3u);
  std::string payload(seg.payloads[1]);
  payload[payload.size() / 2] ^= 1;
  seg.records[1] = audit::testing::EncodeRecord(**audit::ReadSegmentFirstIndex(seg_path) + 1, payload);
  audit::testing::WriteSegment(seg_path, seg);

  // Hold the check until the service is up, as on a log large enough for
  // the check to take a while.
  std::mutex m;
  std::condition_variable cv;
  bool go = false;
  cfg_.audit.before_history_check = [&] {
    std::unique_lock<std::mutex> lock(m);
    cv.wait(lock, [&] { return go; });
  };
  auto release = [&] {
    {
      std::lock_guard<std::mutex> lock(m);
      go = true;
    }
    cv.notify_all();
  };
  struct ReleaseOnExit {
    std::function<void()> f;
    ~ReleaseOnExit() { f(); }
  } release_on_exit{release};
  auto v = Vault::Open(cfg_);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  vault_ = std::move(*v);
  AccessConfig ac;
  ac.builtin_issuer = testing::TestVault::kIssuer;
  ac.builtin_audience = testing::TestVault::kAudience;
  auto access = AccessControl::Create(ac, vault_->keyring(), vault_->store(), nullptr);
  ASSERT_TRUE(access.ok()) << access.status().ToString();
  access_ = std::move(*access);
  ServiceOptions so;
  so.base_url = testing::TestVault::kIssuer;
  so.keyring = &vault_->keyring();
  service_ = std::make_unique<FhirService>(vault_->store(), access_.get(), vault_->audit_trail(), so);
  EXPECT_EQ(Call("GET", "/fhir/Patient/pat1").status, 200) << "serving while the history is checked";

  release();
  EXPECT_EQ(vault_->audit_log()->WaitForHistoryCheck().code(), StatusCode::kDataLoss);
  auto r = Call("GET", "/fhir/Patient/pat1");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.body.find("Qwertyson"), std::string::npos) << "health data left unaudited";
  EXPECT_EQ(Call("GET", "/readyz").status, 503);
  service_.reset();
  access_.reset();
  vault_.reset();
  cfg_.audit.before_history_check = nullptr;
  auto again = Vault::Open(cfg_);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), StatusCode::kDataLoss);
}

TEST_F(AuditedRequestsTest, NothingIsServedWhileTheLogCannotBeWrittenAndServiceResumesByItself) {
  ASSERT_EQ(Call("PUT", "/fhir/Patient/pat1", R"({"resourceType":"Patient","id":"pat1","name":[{"family":"Qwertyson"}]})")
                .status,
            201);
  const size_t before = vault_->audit_log()->size();

  faults_->fail_writes = true;  // the disk is full
  auto r = Call("GET", "/fhir/Patient/pat1");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.body.find("Qwertyson"), std::string::npos) << "health data left unaudited";
  EXPECT_EQ(r.Json()["resourceType"], "OperationOutcome");
  EXPECT_EQ(Call("GET", "/readyz").status, 503);
  // A write is refused before anything is stored: the client is told that
  // nothing happened, so its retry cannot store a record twice.
  auto w = Call("PUT", "/fhir/Patient/pat1", R"({"resourceType":"Patient","id":"pat1","active":true})");
  ExpectOutcome(w, 503);
  EXPECT_NE(w.body.find("nothing was stored"), std::string::npos) << w.body;
  auto created = Call("POST", "/fhir/Patient", R"({"resourceType":"Patient","name":[{"family":"Retry"}]})");
  ExpectOutcome(created, 503);
  auto batch = Call("POST", "/fhir",
                    R"({"resourceType":"Bundle","type":"transaction","entry":[{"resource":)"
                    R"({"resourceType":"Patient","id":"pat2"},"request":{"method":"PUT","url":"Patient/pat2"}}]})");
  ExpectOutcome(batch, 503);
  EXPECT_EQ(vault_->audit_log()->size(), before);
  EXPECT_EQ(vault_->store()->Read("Patient", "pat1")->version, 1);
  EXPECT_EQ(vault_->store()->Read("Patient", "pat2").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(PendingRecords(), 0u) << "a refused write left a record in the outbox";

  // Once the disk works again, with no request at all, readiness returns
  // (the probe writes).
  faults_->fail_writes = false;
  bool ready = false;
  for (int i = 0; i < 100 && !ready; ++i) {
    ready = Call("GET", "/readyz").status == 200;
    if (!ready) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(ready);
  EXPECT_EQ(Call("GET", "/fhir/Patient/pat1").status, 200);
  EXPECT_EQ(HistoryCount("Patient"), 1) << "a refused write was stored";
  EXPECT_EQ(Call("PUT", "/fhir/Patient/pat1", R"({"resourceType":"Patient","id":"pat1","active":true})").status, 200);
}

// Moving a record to another patient touches both records: the entry names
// the patient it left as well as the one it joined.
TEST_F(AuditedRequestsTest, AWriteThatMovesARecordNamesThePatientItLeaves) {
  PutPatientWithObservation("pa", "moved");
  ASSERT_EQ(Call("PUT", "/fhir/Patient/pb", R"({"resourceType":"Patient","id":"pb"})").status, 201);
  auto moved = EntriesOf([&] {
    EXPECT_EQ(Call("PUT", "/fhir/Observation/moved",
                   R"({"resourceType":"Observation","id":"moved","status":"final","code":{"text":"x"},)"
                   R"("subject":{"reference":"Patient/pb"}})")
                  .status,
              200);
  });
  ASSERT_EQ(moved.size(), 1u);
  EXPECT_EQ(moved[0].patients, (std::vector<std::string>{"pa", "pb"}));
  auto unlinked = EntriesOf([&] {
    EXPECT_EQ(Call("PUT", "/fhir/Observation/moved",
                   R"({"resourceType":"Observation","id":"moved","status":"final","code":{"text":"x"}})")
                  .status,
              200);
  });
  ASSERT_EQ(unlinked.size(), 1u);
  EXPECT_EQ(unlinked[0].patients, std::vector<std::string>{"pb"});
}

// Reports the log healthy whatever it is, as a health check that ran just
// before the disk filled up would: everything else goes to the real trail.
class StaleHealthAuditor final : public RequestAuditor {
 public:
  explicit StaleHealthAuditor(RequestAuditor* real) : real_(real) {}
  void Record(const audit::AuditEntry& entry, Done done) override { real_->Record(entry, std::move(done)); }
  void RecordWrite(int64_t record_id, std::string entry, std::string stored_record, Done done) override {
    real_->RecordWrite(record_id, std::move(entry), std::move(stored_record), std::move(done));
  }
  bool Healthy() override { return true; }

 private:
  RequestAuditor* real_;
};

TEST_F(AuditedRequestsTest, AWriteCommittedAsTheLogFailsIsWithheldAndItsEntryLandsOnceTheLogRecovers) {
  ASSERT_EQ(Call("PUT", "/fhir/Patient/pat1", R"({"resourceType":"Patient","id":"pat1","name":[{"family":"Qwertyson"}]})")
                .status,
            201);
  StaleHealthAuditor stale(vault_->audit_trail());
  ServiceOptions so;
  so.base_url = testing::TestVault::kIssuer;
  so.keyring = &vault_->keyring();
  service_ = std::make_unique<FhirService>(vault_->store(), access_.get(), &stale, so);
  const size_t before = vault_->audit_log()->size();

  faults_->fail_writes = true;  // fills up after the write was let through
  auto w = Call("PUT", "/fhir/Patient/pat1", R"({"resourceType":"Patient","id":"pat1","active":true})");
  EXPECT_EQ(w.status, 503);
  EXPECT_EQ(w.body.find("Qwertyson"), std::string::npos);
  EXPECT_EQ(vault_->audit_log()->size(), before);
  EXPECT_FALSE(vault_->audit_trail()->Healthy());

  faults_->fail_writes = false;
  bool healthy = false;
  for (int i = 0; i < 100 && !healthy; ++i) {
    healthy = vault_->audit_trail()->Healthy();
    if (!healthy) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(healthy);
  EXPECT_EQ(PendingRecords(), 0u);

  // The committed write has exactly one entry (the one the store kept: no
  // answer was sent, so it has no status).
  int second_version_entries = 0;
  for (const auto& e : Entries()) {
    for (const auto& r : e.resources) {
      if (e.action == audit::AuditAction::kUpdate && r.version == "2") {
        EXPECT_EQ(r, (audit::AuditResource{"Patient", "pat1", "2", "1"}));
        EXPECT_GT(e.write_record, 0);
        EXPECT_EQ(e.http_status, 0);
        ++second_version_entries;
      }
    }
  }
  EXPECT_EQ(second_version_entries, 1);
  EXPECT_EQ(vault_->store()->Read("Patient", "pat1")->version, 2);
  service_.reset();  // it points at `stale`
}

// Commits one Patient with an audit record that nobody hands on to the log,
// as if the process died right after the store's COMMIT. Returns the record.
store::CommitOutcome CommitWithoutAppending(store::ResourceStore& store, const std::string& id) {
  store::WriteOp op;
  op.kind = store::WriteOp::Kind::kPut;
  op.type = "Patient";
  op.id = id;
  op.resource = boost::json::parse(R"({"resourceType":"Patient"})").as_object();
  op.patients = {id};
  std::vector<store::WriteOp> ops;
  ops.push_back(std::move(op));
  std::mutex mu;
  std::condition_variable cv;
  std::optional<store::CommitOutcome> result;
  store.Commit(
      std::move(ops), true,
      [&](store::CommitOutcome out) {
        std::lock_guard lk(mu);
        result = std::move(out);
        cv.notify_one();
      },
      [](const store::CommitOutcome& out, int64_t record_id) {
        audit::AuditEntry e;
        e.time_ms = fhir::NowMillis();
        e.action = audit::AuditAction::kUpdate;
        e.write_record = record_id;
        AddWriteResults(e, out.results);
        return audit::Serialize(e);
      });
  std::unique_lock lk(mu);
  cv.wait(lk, [&] { return result.has_value(); });
  return std::move(*result);
}

TEST_F(AuditedRequestsTest, AWriteWhoseEntryDidNotReachTheLogIsRecordedAtTheNextStartExactlyOnce) {
  auto out = CommitWithoutAppending(*vault_->store(), "crash");
  ASSERT_TRUE(out.status.ok());
  ASSERT_EQ(vault_->store()->PendingAuditRecords()->size(), 1u);
  auto count = [&] {
    int n = 0;
    for (const auto& e : Entries()) n += e.write_record == out.audit_record_id;
    return n;
  };
  EXPECT_EQ(count(), 0);
  ReopenVault();
  EXPECT_EQ(count(), 1);
  EXPECT_EQ(PendingRecords(), 0u);
  ReopenVault();
  EXPECT_EQ(count(), 1);
}

// The store refuses, before committing, a write whose audit record the log
// would refuse: otherwise the write stays unaudited, its record is retried
// forever (readiness never returns) and the vault cannot open again.
TEST_F(AuditedRequestsTest, StoreRefusesWritesTheLogCouldNotRecord) {
  cfg_.audit.max_entry_bytes = 100;  // smaller than any write's entry
  ReopenVault();
  auto out = CommitWithoutAppending(*vault_->store(), "too-big-to-audit");
  EXPECT_EQ(out.status.code(), StatusCode::kTooLarge) << out.status.ToString();
  EXPECT_EQ(vault_->store()->Read("Patient", "too-big-to-audit").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(PendingRecords(), 0u);
  EXPECT_TRUE(vault_->audit_trail()->Healthy());
  cfg_.audit.max_entry_bytes = 1u << 20;
  ReopenVault();  // nothing was left to recover
  EXPECT_TRUE(CommitWithoutAppending(*vault_->store(), "fits").status.ok());
}

TEST_F(AuditedRequestsTest, RecoveryDoesNotAppendARecordTheLogAlreadyHolds) {
  // The entry reached the log, but the process died before the store
  // dropped the record: at the next start it is pending, and must not be
  // appended a second time.
  auto out = CommitWithoutAppending(*vault_->store(), "p");
  ASSERT_TRUE(out.status.ok());
  ASSERT_TRUE(vault_->audit_log()->AppendAndWait(out.audit_record).ok());
  auto count = [&] {
    int n = 0;
    for (const auto& e : Entries()) n += e.write_record == out.audit_record_id;
    return n;
  };
  EXPECT_EQ(count(), 1);
  ReopenVault();
  EXPECT_EQ(count(), 1);
  EXPECT_EQ(PendingRecords(), 0u);
}

TEST_F(AuditedRequestsTest, ImportedBatchesAreAuditedLikeApiWrites) {
  std::vector<boost::json::object> resources;
  resources.push_back(boost::json::parse(R"({"resourceType":"Patient","id":"imp1"})").as_object());
  resources.push_back(boost::json::parse(
                          R"({"resourceType":"Observation","id":"o9","status":"final","code":{"text":"x"},)"
                          R"("subject":{"reference":"Patient/imp1"}})")
                          .as_object());
  ImportOptions opts;
  opts.auditor = vault_->audit_trail();
  auto entries = EntriesOf([&] {
    auto summary = ImportResources(vault_->store(), std::move(resources), opts);
    ASSERT_TRUE(summary.ok());
    EXPECT_EQ(summary->loaded, 2);
  });
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].event, "import");
  EXPECT_EQ(entries[0].resources.size(), 2u);
  EXPECT_EQ(entries[0].patients, std::vector<std::string>{"imp1"});
  EXPECT_GT(entries[0].write_record, 0);
  EXPECT_EQ(PendingRecords(), 0u);
}

TEST_F(AuditedRequestsTest, UserAndDeviceChangesReachTheLogOnce) {
  auto accounts = store::OpenAccountStore(cfg_.data_dir, vault_->keyring());
  ASSERT_TRUE(accounts.ok());
  (*accounts)->SetChangeRecordBuilder(AccountChangeRecorder("operator"));
  store::DeviceRecord dev;
  dev.device_id = "pump-7";
  dev.cert_sha256 = std::string(64, 'b');
  dev.patients = {"p1"};
  ASSERT_TRUE((*accounts)->AddDevice(dev).ok());
  ASSERT_TRUE((*accounts)->SetDeviceDisabled("pump-7", true).ok());
  auto entries = EntriesOf([&] {
    auto moved = vault_->audit_trail()->DrainChangeRecords(**accounts);
    ASSERT_TRUE(moved.ok());
    EXPECT_EQ(*moved, 2u);
    EXPECT_EQ(*vault_->audit_trail()->DrainChangeRecords(**accounts), 0u);
  });
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].action, audit::AuditAction::kDeviceChange);
  EXPECT_EQ(entries[0].event, "device.add");
  EXPECT_EQ(entries[1].event, "device.disable");
  EXPECT_EQ(entries[1].agent.subject, "operator");
  EXPECT_EQ(entries[1].resources, (std::vector<audit::AuditResource>{{"Device", "pump-7", "", ""}}));
}

TEST_F(AuditedRequestsTest, AuthenticationEventsMapToTheirActions) {
  EXPECT_EQ(AuthEventEntry("login.success", "ann", "10.0.0.1", "success", 5).action, audit::AuditAction::kLogin);
  EXPECT_EQ(AuthEventEntry("token.issued", "ann", "10.0.0.1", "success", 5).outcome, audit::AuditOutcome::kAllowed);
  auto lock = AuthEventEntry("account.lockout", "ann", "10.0.0.1", "locked", 5);
  EXPECT_EQ(lock.action, audit::AuditAction::kLockout);
  EXPECT_EQ(lock.outcome, audit::AuditOutcome::kDenied);
  auto fail = AuthEventEntry("login.failure", "", "10.0.0.1", "invalid_grant", 5);
  EXPECT_EQ(fail.action, audit::AuditAction::kLoginFailure);
  EXPECT_EQ(fail.source_address, "10.0.0.1");
  EXPECT_EQ(fail.rule, "invalid_grant");
  EXPECT_EQ(AuthEventEntry("token.refresh_reuse", "ann", "", "family_revoked", 5).action,
            audit::AuditAction::kLoginFailure);
}

TEST_F(AuditedRequestsTest, TheAuditApiIsRoutedAuthorizedAndItselfAudited) {
  AuditServiceOptions aso;
  aso.base_url = "https://vault.test";
  AuditService audit_api(vault_->audit_log(), access_.get(), aso);
  service_->SetAuditEndpoints(&audit_api);
  ASSERT_EQ(Call("PUT", "/fhir/Patient/pat1", R"({"resourceType":"Patient","id":"pat1"})").status, 201);

  Headers po = {{"authorization", "Bearer " + Token("olga", "privacy-officer", "Practitioner/po", "user/*.rs")}};
  auto allowed = EntriesOf([&] {
    auto r = Call("GET", "/fhir/Patient/pat1/$access-report", "", po);
    EXPECT_EQ(r.status, 200) << r.body;
  });
  ASSERT_EQ(allowed.size(), 1u);
  EXPECT_EQ(allowed[0].action, audit::AuditAction::kAccessReport);
  EXPECT_EQ(allowed[0].patients, std::vector<std::string>{"pat1"});
  EXPECT_EQ(allowed[0].agent.role, "privacy-officer");

  Headers dr = {{"authorization", "Bearer " + Token("alice", "clinician", "Practitioner/dr1", "user/*.cruds")}};
  auto refused = EntriesOf([&] { EXPECT_EQ(Call("GET", "/audit/checkpoint", "", dr).status, 403); });
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_EQ(refused[0].outcome, audit::AuditOutcome::kDenied);
  EXPECT_EQ(refused[0].agent.fhir_user, "Practitioner/dr1");

  auto anon = EntriesOf([&] { EXPECT_EQ(Call("GET", "/audit/checkpoint", "", {{"authorization", ""}}).status, 401); });
  ASSERT_EQ(anon.size(), 1u);
  EXPECT_EQ(anon[0].rule, "identity");
}

TEST_F(AuditedRequestsTest, SearchesPatchesAndEverythingNameWhatTheyReturnedOrWrote) {
  PutPatientWithObservation("pat1", "o1");
  auto search = EntriesOf([&] { EXPECT_EQ(Call("GET", "/fhir/Observation?subject=Patient/pat1").status, 200); });
  ASSERT_EQ(search.size(), 1u);
  EXPECT_EQ(search[0].action, audit::AuditAction::kSearch);
  EXPECT_EQ(search[0].query, "Observation?subject");  // names, never values
  EXPECT_EQ(search[0].resources, (std::vector<audit::AuditResource>{{"Observation", "o1", "1", ""}}));
  EXPECT_EQ(search[0].patients, std::vector<std::string>{"pat1"});

  auto everything = EntriesOf([&] { EXPECT_EQ(Call("GET", "/fhir/Patient/pat1/$everything").status, 200); });
  ASSERT_EQ(everything.size(), 1u);
  EXPECT_EQ(everything[0].action, audit::AuditAction::kOperation);
  EXPECT_EQ(everything[0].resources.size(), 2u);

  auto patched = EntriesOf([&] {
    auto r = Call("PATCH", "/fhir/Observation/o1", R"([{"op":"replace","path":"/status","value":"amended"}])",
                  {{"content-type", "application/json-patch+json"}});
    EXPECT_EQ(r.status, 200) << r.body;
  });
  ASSERT_EQ(patched.size(), 1u);
  EXPECT_EQ(patched[0].action, audit::AuditAction::kUpdate);
  EXPECT_EQ(patched[0].resources, (std::vector<audit::AuditResource>{{"Observation", "o1", "2", "1"}}));
}

}  // namespace
}  // namespace phivault::api
