#include "store/sqlite_store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <atomic>
#include <boost/json.hpp>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>

#include "common/testing/temp_dir.h"
#include "crypto/keyring.h"

namespace phivault::store {
namespace {

using testing::TempDir;

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    key_file_ = tmp_.Sub("master.key");
    ASSERT_TRUE(crypto::GenerateKeyFile(key_file_).ok());
    data_ = tmp_.Sub("data");
    std::filesystem::create_directories(data_);
    crypto::MasterKeySource src;
    src.key_file = key_file_;
    auto kr = crypto::Keyring::Create(data_, src);
    ASSERT_TRUE(kr.ok()) << kr.status().ToString();
    keyring_ = std::move(*kr);
    SqliteStoreOptions o;
    o.data_dir = data_;
    o.create = true;
    auto s = OpenSqliteStore(o, keyring_.get());
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
  }

  void Reopen(SqliteStoreOptions o = {}) {
    if (store_) store_->Close();
    store_.reset();
    o.data_dir = data_;
    auto s = OpenSqliteStore(o, keyring_.get());
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
  }

  static WriteOp Put(std::string type, std::string id, std::string json, std::vector<std::string> patients = {}) {
    WriteOp op;
    op.kind = WriteOp::Kind::kPut;
    op.type = std::move(type);
    op.id = std::move(id);
    op.resource = boost::json::parse(json).as_object();
    op.patients = std::move(patients);
    return op;
  }

  CommitOutcome Commit1(WriteOp op) {
    std::vector<WriteOp> ops;
    ops.push_back(std::move(op));
    return store_->CommitAndWait(std::move(ops), true);
  }

  TempDir tmp_;
  std::string key_file_, data_;
  std::unique_ptr<crypto::Keyring> keyring_;
  std::unique_ptr<ResourceStore> store_;
};

TEST_F(StoreTest, PutReadVersionsAndHistoryAreAppendOnly) {
  auto c1 = Commit1(Put("Patient", "p1", R"({"resourceType":"Patient","name":[{"family":"Alpha"}]})", {"p1"}));
  ASSERT_TRUE(c1.status.ok()) << c1.status.ToString();
  EXPECT_TRUE(c1.results[0]->created);
  EXPECT_EQ(c1.results[0]->version, 1);
  auto c2 = Commit1(Put("Patient", "p1", R"({"resourceType":"Patient","name":[{"family":"Beta"}]})", {"p1"}));
  ASSERT_TRUE(c2.status.ok());
  EXPECT_FALSE(c2.results[0]->created);
  EXPECT_EQ(c2.results[0]->version, 2);

  auto cur = store_->Read("Patient", "p1");
  ASSERT_TRUE(cur.ok());
  EXPECT_EQ(cur->version, 2);
  auto body = boost::json::parse(cur->json).as_object();
  EXPECT_EQ(body["meta"].as_object()["versionId"], "2");
  EXPECT_EQ(body["name"].as_array()[0].as_object()["family"], "Beta");
  EXPECT_EQ(body["id"], "p1");

  auto v1 = store_->ReadVersion("Patient", "p1", 1);
  ASSERT_TRUE(v1.ok());
  EXPECT_NE(v1->json.find("Alpha"), std::string::npos);

  WriteOp del;
  del.kind = WriteOp::Kind::kDelete;
  del.type = "Patient";
  del.id = "p1";
  auto c3 = Commit1(std::move(del));
  ASSERT_TRUE(c3.status.ok());
  EXPECT_EQ(c3.results[0]->version, 3);
  auto tomb = store_->Read("Patient", "p1");
  ASSERT_TRUE(tomb.ok());
  EXPECT_TRUE(tomb->deleted);
  EXPECT_TRUE(tomb->json.empty());
  EXPECT_EQ(tomb->patients, (std::vector<std::string>{"p1"}));
  EXPECT_TRUE(store_->ReadVersion("Patient", "p1", 3)->deleted);
  EXPECT_TRUE(store_->ReadVersion("Patient", "p1", 1).ok()) << "old versions survive a delete";

  HistoryQuery hq;
  hq.type = "Patient";
  hq.id = "p1";
  auto h = store_->History(hq);
  ASSERT_TRUE(h.ok());
  ASSERT_EQ(h->entries.size(), 3u);
  EXPECT_EQ(h->entries[0].version.version, 3);
  EXPECT_TRUE(h->entries[0].version.deleted);
  EXPECT_EQ(h->entries[2].version.version, 1);

  // Reviving a deleted resource is a create (201) with the next version.
  auto c4 = Commit1(Put("Patient", "p1", R"({"resourceType":"Patient"})", {"p1"}));
  ASSERT_TRUE(c4.status.ok());
  EXPECT_TRUE(c4.results[0]->created);
  EXPECT_EQ(c4.results[0]->version, 4);
  EXPECT_EQ(store_->Read("Patient", "missing").status().code(), StatusCode::kNotFound);
}

TEST_F(StoreTest, PatientLinkAndAuthorAreStoredWithEachVersion) {
  WriteOp op = Put("Observation", "o1", R"({"resourceType":"Observation"})", {"pa", "pb"});
  op.author = "Device/monitor-7";
  op.resource["meta"] = boost::json::parse(R"({"security":[{"system":"s","code":"R"}]})");
  ASSERT_TRUE(Commit1(std::move(op)).status.ok());
  auto v = store_->Read("Observation", "o1");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->patients, (std::vector<std::string>{"pa", "pb"}));
  EXPECT_EQ(v->author, "Device/monitor-7");
  EXPECT_EQ(v->security_labels, R"([{"system":"s","code":"R"}])");

  WriteOp del;
  del.kind = WriteOp::Kind::kDelete;
  del.type = "Observation";
  del.id = "o1";
  auto d = Commit1(std::move(del));
  ASSERT_TRUE(d.status.ok());
  EXPECT_EQ(d.results[0]->prior_version, 1);
  EXPECT_EQ(d.results[0]->patients, (std::vector<std::string>{"pa", "pb"})) << "tombstones keep the link";
  HistoryQuery q;
  q.type = "Observation";
  q.id = "o1";
  auto h = store_->History(q);
  ASSERT_TRUE(h.ok());
  ASSERT_EQ(h->entries.size(), 2u);
  EXPECT_EQ(h->entries[0].version.patients, (std::vector<std::string>{"pa", "pb"}));

  int seen = 0;
  ASSERT_TRUE(Commit1(Put("CareTeam", "ct", R"({"resourceType":"CareTeam"})", {"pa"})).status.ok());
  ASSERT_TRUE(store_->ForEachCurrent({"CareTeam", "Observation"}, [&](const ResourceVersion& rv) {
                       ++seen;
                       EXPECT_EQ(rv.type, "CareTeam");
                       return Status::Ok();
                     }).ok());
  EXPECT_EQ(seen, 1) << "deleted resources are not current";
}

TEST_F(StoreTest, RolledBackWritesLeaveNoKeyOrCachedVersionBehind) {
  // An atomic batch creates patient "np"'s first resource (and data key),
  // then fails: neither the key nor the version may survive in memory.
  std::vector<WriteOp> ops;
  ops.push_back(Put("Observation", "rb1", R"({"resourceType":"Observation"})", {"np"}));
  WriteOp bad = Put("Patient", "ghost", R"({"resourceType":"Patient"})", {"ghost"});
  bad.if_match_version = 5;
  ops.push_back(std::move(bad));
  EXPECT_FALSE(store_->CommitAndWait(std::move(ops), true).status.ok());
  EXPECT_EQ(store_->Read("Observation", "rb1").status().code(), StatusCode::kNotFound);
  // A later write for the same patient must mint (and persist) a key anew,
  // so the data stays readable after a restart.
  ASSERT_TRUE(Commit1(Put("Observation", "rb2", R"({"resourceType":"Observation","status":"final"})", {"np"})).status.ok());
  Reopen();
  auto v = store_->Read("Observation", "rb2");
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_NE(v->json.find("final"), std::string::npos);
}

TEST_F(StoreTest, CachedReadsFollowEveryCommittedWrite) {
  for (int i = 1; i <= 5; ++i) {
    ASSERT_TRUE(Commit1(Put("Patient", "c", R"({"resourceType":"Patient","birthDate":"200)" + std::to_string(i) +
                                                R"(-01-01"})", {"c"}))
                    .status.ok());
    auto v = store_->Read("Patient", "c");  // the second read on is a cache hit
    ASSERT_TRUE(v.ok());
    EXPECT_EQ(v->version, i);
    EXPECT_NE(v->json.find("200" + std::to_string(i)), std::string::npos);
    EXPECT_EQ(v->patients, (std::vector<std::string>{"c"}));
  }
  WriteOp del;
  del.kind = WriteOp::Kind::kDelete;
  del.type = "Patient";
  del.id = "c";
  ASSERT_TRUE(Commit1(std::move(del)).status.ok());
  EXPECT_TRUE(store_->Read("Patient", "c")->deleted);
}

TEST_F(StoreTest, HistoryPagesWithCursor) {
  for (int i = 0; i < 7; ++i) {
    ASSERT_TRUE(Commit1(Put("Observation", "o" + std::to_string(i), R"({"resourceType":"Observation"})")).status.ok());
  }
  HistoryQuery q;
  q.type = "Observation";
  q.count = 3;
  std::vector<std::string> seen;
  for (int page = 0; page < 5; ++page) {
    auto h = store_->History(q);
    ASSERT_TRUE(h.ok());
    for (auto& e : h->entries) seen.push_back(e.version.id);
    if (!h->next_cursor) break;
    q.before_seq = h->next_cursor;
  }
  ASSERT_EQ(seen.size(), 7u);
  EXPECT_EQ(seen.front(), "o6");
  EXPECT_EQ(seen.back(), "o0");
}

TEST_F(StoreTest, IfMatchConflictIs412AndStoresNothing) {
  ASSERT_TRUE(Commit1(Put("Patient", "p", R"({"resourceType":"Patient"})", {"p"})).status.ok());
  WriteOp op = Put("Patient", "p", R"({"resourceType":"Patient","active":true})", {"p"});
  op.if_match_version = 7;
  auto c = Commit1(std::move(op));
  EXPECT_EQ(c.status.code(), StatusCode::kPreconditionFailed);
  EXPECT_EQ(store_->Read("Patient", "p")->version, 1);
  WriteOp ok = Put("Patient", "p", R"({"resourceType":"Patient","active":true})", {"p"});
  ok.if_match_version = 1;
  EXPECT_TRUE(Commit1(std::move(ok)).status.ok());
}

TEST_F(StoreTest, AtomicBatchIsAllOrNothing) {
  ASSERT_TRUE(Commit1(Put("Patient", "p", R"({"resourceType":"Patient"})", {"p"})).status.ok());
  std::vector<WriteOp> ops;
  ops.push_back(Put("Observation", "new1", R"({"resourceType":"Observation"})", {"p"}));
  WriteOp bad = Put("Patient", "p", R"({"resourceType":"Patient"})", {"p"});
  bad.if_match_version = 99;
  ops.push_back(std::move(bad));
  auto out = store_->CommitAndWait(std::move(ops), true);
  EXPECT_FALSE(out.status.ok());
  EXPECT_EQ(store_->Read("Observation", "new1").status().code(), StatusCode::kNotFound);

  // The same ops as a non-atomic batch: the good one lands.
  std::vector<WriteOp> ops2;
  ops2.push_back(Put("Observation", "new1", R"({"resourceType":"Observation"})", {"p"}));
  WriteOp bad2 = Put("Patient", "p", R"({"resourceType":"Patient"})", {"p"});
  bad2.if_match_version = 99;
  ops2.push_back(std::move(bad2));
  auto out2 = store_->CommitAndWait(std::move(ops2), false);
  ASSERT_TRUE(out2.status.ok());
  EXPECT_TRUE(out2.results[0].ok());
  EXPECT_FALSE(out2.results[1].ok());
  EXPECT_TRUE(store_->Read("Observation", "new1").ok());
}

// Commits with an audit record builder and waits; the builder records what
// it was shown.
CommitOutcome CommitAudited(ResourceStore& store, std::vector<WriteOp> ops, bool atomic,
                            std::vector<std::string>* built = nullptr) {
  std::mutex mu;
  std::condition_variable cv;
  std::optional<CommitOutcome> result;
  store.Commit(
      std::move(ops), atomic,
      [&](CommitOutcome out) {
        std::lock_guard lk(mu);
        result = std::move(out);
        cv.notify_one();
      },
      [built](const CommitOutcome& out, int64_t id) {
        // The record can name what the batch wrote: versions are assigned.
        std::string r = "record " + std::to_string(id) + ":";
        for (const auto& w : out.results) r += w.ok() ? " v" + std::to_string(w->version) : " failed";
        if (built) built->push_back(r);
        return r;
      });
  std::unique_lock lk(mu);
  cv.wait(lk, [&] { return result.has_value(); });
  return std::move(*result);
}

TEST_F(StoreTest, AuditRecordIsStoredWithTheWriteAndNamesItsVersions) {
  ASSERT_TRUE(Commit1(Put("Patient", "p", R"({"resourceType":"Patient"})", {"p"})).status.ok());
  std::vector<WriteOp> ops;
  ops.push_back(Put("Patient", "p", R"({"resourceType":"Patient","active":true})", {"p"}));
  auto out = CommitAudited(*store_, std::move(ops), true);
  ASSERT_TRUE(out.status.ok()) << out.status.ToString();
  ASSERT_GT(out.audit_record_id, 0);
  EXPECT_EQ(out.audit_record, "record " + std::to_string(out.audit_record_id) + ": v2");

  // Durable with the write: still there after a restart until acknowledged.
  Reopen();
  auto pending = store_->PendingAuditRecords();
  ASSERT_TRUE(pending.ok());
  ASSERT_EQ(pending->size(), 1u);
  EXPECT_EQ((*pending)[0].id, out.audit_record_id);
  EXPECT_EQ((*pending)[0].record, out.audit_record);
  EXPECT_GT((*pending)[0].created_ms, 0);

  // Acknowledged records are dropped by the writer's next transaction, and
  // ids are never handed out twice, even after a restart.
  store_->AckAuditRecord(out.audit_record_id);
  ASSERT_TRUE(Commit1(Put("Patient", "q", R"({"resourceType":"Patient"})", {"q"})).status.ok());
  EXPECT_TRUE(store_->PendingAuditRecords()->empty());
  Reopen();
  std::vector<WriteOp> ops2;
  ops2.push_back(Put("Patient", "p", R"({"resourceType":"Patient"})", {"p"}));
  auto out2 = CommitAudited(*store_, std::move(ops2), true);
  ASSERT_TRUE(out2.status.ok());
  EXPECT_GT(out2.audit_record_id, out.audit_record_id);
}

TEST_F(StoreTest, AcknowledgedRecordsAreDroppedWithoutFurtherWrites) {
  std::vector<WriteOp> ops;
  ops.push_back(Put("Patient", "p", R"({"resourceType":"Patient"})", {"p"}));
  auto out = CommitAudited(*store_, std::move(ops), true);
  ASSERT_TRUE(out.status.ok());
  store_->AckAuditRecord(out.audit_record_id);
  // No write follows: the idle writer drops it on its own.
  for (int i = 0; i < 100 && !store_->PendingAuditRecords()->empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(store_->PendingAuditRecords()->empty());
}

// A batch whose audit record the log would refuse must store nothing: the
// write could never be audited, and its record would be retried forever.
TEST_F(StoreTest, BatchWhoseAuditRecordIsTooLargeStoresNothing) {
  store_->Close();
  SqliteStoreOptions o;
  o.data_dir = data_;
  o.max_audit_record_bytes = 64;
  auto s = OpenSqliteStore(o, keyring_.get());
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  store_ = std::move(*s);
  for (bool atomic : {true, false}) {
    std::vector<WriteOp> ops;
    for (int i = 0; i < 30; ++i) {
      ops.push_back(Put("Observation", "big" + std::to_string(i), R"({"resourceType":"Observation"})"));
    }
    auto out = CommitAudited(*store_, std::move(ops), atomic);  // "record N: v1 v1 …" is ~100 bytes
    EXPECT_EQ(out.status.code(), StatusCode::kTooLarge) << atomic << " " << out.status.ToString();
    EXPECT_EQ(out.audit_record_id, 0);
    if (!atomic) {
      for (const auto& r : out.results) EXPECT_FALSE(r.ok());  // an atomic batch fails as a whole (status)
    }
    EXPECT_EQ(store_->Read("Observation", "big0").status().code(), StatusCode::kNotFound) << atomic;
    EXPECT_TRUE(store_->PendingAuditRecords()->empty());
  }
  // Nothing is stuck: the next batch commits and is recorded.
  std::vector<WriteOp> one;
  one.push_back(Put("Observation", "small", R"({"resourceType":"Observation"})"));
  auto out = CommitAudited(*store_, std::move(one), false);
  ASSERT_TRUE(out.status.ok()) << out.status.ToString();
  EXPECT_GT(out.audit_record_id, 0);
  EXPECT_TRUE(store_->Read("Observation", "small").ok());
}

TEST_F(StoreTest, FailedAtomicBatchStoresNoAuditRecord) {
  ASSERT_TRUE(Commit1(Put("Patient", "p", R"({"resourceType":"Patient"})", {"p"})).status.ok());
  std::vector<WriteOp> ops;
  ops.push_back(Put("Observation", "o1", R"({"resourceType":"Observation"})", {"p"}));
  WriteOp bad = Put("Patient", "p", R"({"resourceType":"Patient"})", {"p"});
  bad.if_match_version = 99;
  ops.push_back(std::move(bad));
  std::vector<std::string> built;
  auto out = CommitAudited(*store_, std::move(ops), true, &built);
  EXPECT_FALSE(out.status.ok());
  EXPECT_TRUE(built.empty());
  EXPECT_EQ(out.audit_record_id, 0);
  EXPECT_TRUE(store_->PendingAuditRecords()->empty());
  EXPECT_EQ(store_->Read("Observation", "o1").status().code(), StatusCode::kNotFound);

  // A non-atomic batch stores what succeeded, and one record for all of it.
  std::vector<WriteOp> ops2;
  ops2.push_back(Put("Observation", "o1", R"({"resourceType":"Observation"})", {"p"}));
  WriteOp bad2 = Put("Patient", "p", R"({"resourceType":"Patient"})", {"p"});
  bad2.if_match_version = 99;
  ops2.push_back(std::move(bad2));
  auto out2 = CommitAudited(*store_, std::move(ops2), false, &built);
  ASSERT_TRUE(out2.status.ok());
  EXPECT_EQ(out2.audit_record, "record " + std::to_string(out2.audit_record_id) + ": v1 failed");
  EXPECT_EQ(store_->PendingAuditRecords()->size(), 1u);
}

// Ops of an audited non-atomic batch share the batch's savepoint: a failed op
// must still leave no trace, and the ops around it (including ones that build
// on earlier ops of the same batch) must land with their search rows.
TEST_F(StoreTest, AuditedNonAtomicBatchKeepsEachOpsOutcomeAndIndex) {
  ASSERT_TRUE(Commit1(Put("Patient", "p", R"({"resourceType":"Patient"})", {"p"})).status.ok());
  auto obs = [](const std::string& id, const std::string& status) {
    return Put("Observation", id, R"({"resourceType":"Observation","status":")" + status + R"("})", {"p"});
  };
  std::vector<WriteOp> ops;
  ops.push_back(obs("o1", "preliminary"));
  WriteOp conflict = obs("o1", "cancelled");  // create of an id that the op before took: 409
  conflict.kind = WriteOp::Kind::kCreate;
  ops.push_back(std::move(conflict));
  ops.push_back(obs("o1", "final"));  // v2 replaces v1's index rows
  WriteOp stale = obs("o2", "cancelled");
  stale.if_match_version = 3;  // o2 does not exist: 412
  ops.push_back(std::move(stale));
  ops.push_back(obs("o3", "amended"));
  auto out = CommitAudited(*store_, std::move(ops), false);
  ASSERT_TRUE(out.status.ok()) << out.status.ToString();
  ASSERT_EQ(out.results.size(), 5u);
  EXPECT_EQ(out.results[1].status().code(), StatusCode::kConflict);
  EXPECT_EQ(out.results[3].status().code(), StatusCode::kPreconditionFailed);
  EXPECT_EQ(out.audit_record, "record " + std::to_string(out.audit_record_id) + ": v1 failed v2 failed v1");
  EXPECT_EQ(store_->Read("Observation", "o2").status().code(), StatusCode::kNotFound);

  auto ids_with_status = [&](const std::string& code) {
    SearchQuery q;
    q.type = "Observation";
    SearchCondition c;
    c.param = "status";
    c.type = search::ParamType::kToken;
    SearchValue v;
    v.code = code;
    c.values.push_back(v);
    q.conditions.push_back(c);
    auto page = store_->Search(q);
    std::vector<std::string> ids;
    if (!page.ok()) return std::vector<std::string>{"error: " + page.status().ToString()};
    for (const auto& h : page->hits) ids.push_back(h.version.id + "/" + std::to_string(h.version.version));
    return ids;
  };
  EXPECT_EQ(ids_with_status("final"), std::vector<std::string>{"o1/2"});
  EXPECT_TRUE(ids_with_status("preliminary").empty());
  EXPECT_TRUE(ids_with_status("cancelled").empty());
  EXPECT_EQ(ids_with_status("amended"), std::vector<std::string>{"o3/1"});
}

TEST_F(StoreTest, ConditionalCreateMatchesIdentifier) {
  WriteOp a;
  a.kind = WriteOp::Kind::kCreate;
  a.type = "Patient";
  a.id = "first";
  a.resource = boost::json::parse(R"({"resourceType":"Patient","identifier":[{"system":"urn:mrn","value":"42"}]})").as_object();
  a.if_none_exist = ExistCondition{"", std::string("urn:mrn"), "42"};
  auto r1 = Commit1(std::move(a));
  ASSERT_TRUE(r1.status.ok());
  EXPECT_FALSE(r1.results[0]->no_op);

  WriteOp b;
  b.kind = WriteOp::Kind::kCreate;
  b.type = "Patient";
  b.id = "second";
  b.resource = boost::json::parse(R"({"resourceType":"Patient","identifier":[{"system":"urn:mrn","value":"42"}]})").as_object();
  b.if_none_exist = ExistCondition{"", std::string("urn:mrn"), "42"};
  auto r2 = Commit1(std::move(b));
  ASSERT_TRUE(r2.status.ok());
  EXPECT_TRUE(r2.results[0]->no_op);
  EXPECT_EQ(r2.results[0]->id, "first");
  EXPECT_EQ(store_->Read("Patient", "second").status().code(), StatusCode::kNotFound);
}

// An If-None-Exist search runs on the writer: it is bounded by its own
// budget, and a spent budget fails only that write.
TEST_F(StoreTest, ConditionalCreateSearchIsBoundedByItsOwnBudget) {
  for (int i = 0; i < 40; ++i) {
    ASSERT_TRUE(Commit1(Put("Observation", "o" + std::to_string(i),
                            R"({"resourceType":"Observation","status":"final","code":{"text":"x"}})", {}))
                    .status.ok());
  }
  auto create = [&](const std::string& id, int64_t units) {
    WriteOp op;
    op.kind = WriteOp::Kind::kCreate;
    op.type = "Observation";
    op.id = id;
    op.resource = boost::json::parse(R"({"resourceType":"Observation","status":"final","code":{"text":"y"}})").as_object();
    SearchQuery q;
    SearchCondition c;
    c.param = "status";
    c.type = search::ParamType::kToken;
    c.modifier = SearchModifier::kNot;  // no index narrows it: every Observation is examined
    SearchValue v;
    v.code = "cancelled";
    c.values.push_back(v);
    q.conditions.push_back(c);
    ExistCondition cond;
    cond.query = q;
    cond.work_units = units;
    op.if_none_exist = cond;
    return Commit1(std::move(op));
  };
  auto spent = create("n1", 1);
  ASSERT_EQ(spent.results.size(), 1u);
  ASSERT_FALSE(spent.results[0].ok());
  EXPECT_EQ(spent.results[0].status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(spent.results[0].status().message().find("too costly"), std::string::npos)
      << spent.results[0].status().ToString();
  EXPECT_EQ(store_->Read("Observation", "n1").status().code(), StatusCode::kNotFound);
  auto ample = create("n2", 100000);
  ASSERT_EQ(ample.results.size(), 1u);
  ASSERT_FALSE(ample.results[0].ok());
  EXPECT_EQ(ample.results[0].status().code(), StatusCode::kPreconditionFailed)
      << "with its budget the search finds the 40 existing matches (several: 412): "
      << ample.results[0].status().ToString();
}

TEST_F(StoreTest, ConcurrentWritersShareGroupCommitsAndAllLand) {
  constexpr int kThreads = 8, kPerThread = 50;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        std::string id = "t" + std::to_string(t) + "-" + std::to_string(i);
        if (Commit1(Put("Observation", id, R"({"resourceType":"Observation"})", {"pt" + std::to_string(t)})).status.ok()) {
          ok++;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), kThreads * kPerThread);
  StoreStats stats = store_->Stats();
  EXPECT_EQ(stats.committed_ops, kThreads * kPerThread);
  // Writers that arrive while a group is being fsynced share the next one.
  EXPECT_LT(stats.group_commits, stats.committed_ops) << "no two writes ever shared an fsync";
  Reopen();
  EXPECT_TRUE(store_->Read("Observation", "t7-49").ok());
  EXPECT_EQ(store_->Stats().patients_with_keys, kThreads);
}

// Unwrapped patient keys are bounded: a key evicted from memory is
// unwrapped again for reads and for further writes, never replaced.
TEST_F(StoreTest, PatientKeyCacheIsBoundedAndEvictedKeysStillWork) {
  SqliteStoreOptions small;
  small.max_cached_patient_keys = 3;
  small.cache_bytes = 0;  // every read opens the sealed body with its patient's key
  Reopen(small);
  constexpr int kPatients = 10;
  for (int p = 0; p < kPatients; ++p) {
    const std::string pt = "pt" + std::to_string(p);
    ASSERT_TRUE(Commit1(Put("Observation", "o" + std::to_string(p), R"({"resourceType":"Observation"})", {pt})).status.ok());
  }
  EXPECT_EQ(store_->Stats().cached_patient_keys, 3);
  for (int round = 0; round < 2; ++round) {
    for (int p = 0; p < kPatients; ++p) {
      auto r = store_->Read("Observation", "o" + std::to_string(p));
      ASSERT_TRUE(r.ok()) << p << ": " << r.status().ToString();
    }
  }
  // A second write for the first patient, whose key was evicted long ago.
  ASSERT_TRUE(Commit1(Put("Observation", "o0b", R"({"resourceType":"Observation"})", {"pt0"})).status.ok());
  EXPECT_LE(store_->Stats().cached_patient_keys, 3);
  Reopen();
  for (int p = 0; p < kPatients; ++p) EXPECT_TRUE(store_->Read("Observation", "o" + std::to_string(p)).ok()) << p;
  EXPECT_TRUE(store_->Read("Observation", "o0b").ok());
  EXPECT_EQ(store_->Stats().patients_with_keys, kPatients);
}

TEST_F(StoreTest, SurvivesReopenAndRejectsAnotherVaultsKeys) {
  ASSERT_TRUE(Commit1(Put("Patient", "p", R"({"resourceType":"Patient"})", {"p"})).status.ok());
  Reopen();
  EXPECT_TRUE(store_->Read("Patient", "p").ok());
  store_->Close();

  // A keyring of another vault cannot open this database.
  TempDir other;
  std::string key2 = other.Sub("k");
  ASSERT_TRUE(crypto::GenerateKeyFile(key2).ok());
  crypto::MasterKeySource src;
  src.key_file = key2;
  auto kr2 = crypto::Keyring::Create(other.path(), src);
  ASSERT_TRUE(kr2.ok());
  SqliteStoreOptions o;
  o.data_dir = data_;
  auto s = OpenSqliteStore(o, kr2->get());
  EXPECT_FALSE(s.ok());
}

TEST_F(StoreTest, FlippedByteInDatabaseIsAnIntegrityErrorNotWrongData) {
  std::string big(6000, 'x');
  ASSERT_TRUE(Commit1(Put("Patient", "p", R"({"resourceType":"Patient","text":{"div":")" + big + R"("}})", {"p"}))
                  .status.ok());
  store_->Close();
  store_.reset();
  std::string db = data_ + "/" + kDatabaseFileName;
  std::string bytes = testing::ReadFile(db);
  ASSERT_GT(bytes.size(), 3u * 4096);
  // Damage every page but the first so that whichever page holds the row is hit.
  for (size_t page = 1; page * 4096 < bytes.size(); ++page) bytes[page * 4096 + 100] ^= 0x5a;
  testing::WriteFile(db, bytes);
  SqliteStoreOptions o;
  o.data_dir = data_;
  auto s = OpenSqliteStore(o, keyring_.get());
  if (!s.ok()) {
    EXPECT_EQ(s.status().code(), StatusCode::kDataLoss) << s.status().ToString();
    return;
  }
  auto r = (*s)->Read("Patient", "p");
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss) << r.status().ToString();
}

TEST_F(StoreTest, SealedBodyMovedToAnotherRecordFailsToOpen) {
  ASSERT_TRUE(Commit1(Put("Patient", "a", R"({"resourceType":"Patient","gender":"female"})", {"a"})).status.ok());
  ASSERT_TRUE(Commit1(Put("Patient", "b", R"({"resourceType":"Patient","gender":"male"})", {"b"})).status.ok());
  ASSERT_TRUE(Commit1(Put("Organization", "o1", R"({"resourceType":"Organization","name":"x"})")).status.ok());
  ASSERT_TRUE(Commit1(Put("Organization", "o2", R"({"resourceType":"Organization","name":"y"})")).status.ok());
  store_->Close();
  store_.reset();
  // An attacker with database access (here: through the VFS, with the storage
  // key) swaps sealed bodies between records. Both shared-key and per-patient
  // bodies must refuse to open in their new place.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2((data_ + "/" + kDatabaseFileName).c_str(), &db, SQLITE_OPEN_READWRITE,
                            VaultVfsName(keyring_->vault_id()).c_str()),
            SQLITE_OK);
  const char* sql =
      "DROP TRIGGER resource_versions_no_update;"
      "CREATE TEMP TABLE swap AS SELECT id, body FROM resource_versions;"
      "UPDATE resource_versions SET body = (SELECT body FROM swap WHERE swap.id = 'b') WHERE id = 'a';"
      "UPDATE resource_versions SET body = (SELECT body FROM swap WHERE swap.id = 'o1') WHERE id = 'o2';";
  ASSERT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  sqlite3_close(db);
  Reopen();
  EXPECT_EQ(store_->Read("Patient", "a").status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(store_->Read("Organization", "o2").status().code(), StatusCode::kDataLoss);
  EXPECT_TRUE(store_->Read("Patient", "b").ok());
}

TEST_F(StoreTest, VersionsTableRefusesUpdateAndDelete) {
  ASSERT_TRUE(Commit1(Put("Patient", "p", R"({"resourceType":"Patient"})", {"p"})).status.ok());
  store_->Close();
  store_.reset();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2((data_ + "/" + kDatabaseFileName).c_str(), &db, SQLITE_OPEN_READWRITE,
                            VaultVfsName(keyring_->vault_id()).c_str()),
            SQLITE_OK);
  EXPECT_NE(sqlite3_exec(db, "UPDATE resource_versions SET deleted = 1", nullptr, nullptr, nullptr), SQLITE_OK);
  EXPECT_NE(sqlite3_exec(db, "DELETE FROM resource_versions", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
}

TEST_F(StoreTest, NothingReadableOnDisk) {
  const std::string marker = "Zyxwvutsrq-Marker-Family";
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE(Commit1(Put("Patient", "p" + std::to_string(i),
                            R"({"resourceType":"Patient","identifier":[{"system":"urn:ssn","value":"999-55-)" + std::to_string(i) + R"("}],"name":[{"family":")" + marker + R"("}],"telecom":[{"value":"555-0100-)" +
                                std::to_string(i) + R"("}]})",
                            {"p" + std::to_string(i)}))
                    .status.ok());
  }
  auto scan = [&] {
    for (const auto& f : testing::FilesBelow(data_)) {
      std::string bytes = testing::ReadFile(f);
      EXPECT_EQ(bytes.find(marker), std::string::npos) << f;
      EXPECT_EQ(bytes.find("555-0100-"), std::string::npos) << f;
      EXPECT_EQ(bytes.find("Zyxwvutsrq"), std::string::npos) << f;
      // Identifier values sit in an index column, protected only by the page layer.
      EXPECT_EQ(bytes.find("999-55-"), std::string::npos) << f;
    }
  };
  scan();  // while open: WAL and shm present
  for (const auto& f : testing::FilesBelow(data_)) {
    struct stat st;
    ASSERT_EQ(::stat(f.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 077, 0u) << f << " is readable by group or others";
  }
  store_->Close();
  scan();
}

TEST_F(StoreTest, CompartmentPagesCurrentVersionsOfOnePatient) {
  ASSERT_TRUE(Commit1(Put("Patient", "p1", R"({"resourceType":"Patient","id":"p1"})", {"p1"})).status.ok());
  ASSERT_TRUE(Commit1(Put("Patient", "p2", R"({"resourceType":"Patient","id":"p2"})", {"p2"})).status.ok());
  for (int i = 0; i < 7; ++i) {
    std::string id = "o" + std::to_string(i);
    ASSERT_TRUE(Commit1(Put("Observation", id, R"({"resourceType":"Observation","id":")" + id + R"("})", {"p1"})).status.ok());
  }
  ASSERT_TRUE(Commit1(Put("Condition", "c1", R"({"resourceType":"Condition","id":"c1"})", {"p1"})).status.ok());
  ASSERT_TRUE(Commit1(Put("Observation", "other", R"({"resourceType":"Observation","id":"other"})", {"p2"})).status.ok());
  // o0 rewritten (it moves to the end), o1 deleted, o2 moved to patient p2;
  // the pause puts the rewrite in a later millisecond than the rest (_since).
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_TRUE(Commit1(Put("Observation", "o0", R"({"resourceType":"Observation","id":"o0","status":"final"})", {"p1"})).status.ok());
  WriteOp del;
  del.kind = WriteOp::Kind::kDelete;
  del.type = "Observation";
  del.id = "o1";
  ASSERT_TRUE(Commit1(std::move(del)).status.ok());
  ASSERT_TRUE(Commit1(Put("Observation", "o2", R"({"resourceType":"Observation","id":"o2"})", {"p2"})).status.ok());

  auto all = [&](CompartmentQuery q) {
    std::vector<std::string> seen;
    for (int pages = 0; pages < 20; ++pages) {
      auto page = store_->Compartment(q);
      EXPECT_TRUE(page.ok()) << page.status().ToString();
      if (!page.ok()) break;
      EXPECT_LE(static_cast<int>(page->entries.size()), q.count);
      for (const auto& e : page->entries) {
        EXPECT_FALSE(e.version.deleted);
        EXPECT_EQ(e.version.patients, std::vector<std::string>{"p1"});
        EXPECT_FALSE(e.version.json.empty());
        seen.push_back(e.version.type + "/" + e.version.id + "/" + std::to_string(e.version.version));
      }
      if (page->next_cursor == 0) break;
      q.after_cursor = page->next_cursor;
    }
    return seen;
  };
  CompartmentQuery q;
  q.patient_id = "p1";
  q.count = 3;
  EXPECT_EQ(all(q), (std::vector<std::string>{"Patient/p1/1", "Observation/o3/1", "Observation/o4/1",
                                              "Observation/o5/1", "Observation/o6/1", "Condition/c1/1",
                                              "Observation/o0/2"}));
  q.types = {"Condition", "Patient"};
  q.count = 1;
  EXPECT_EQ(all(q), (std::vector<std::string>{"Patient/p1/1", "Condition/c1/1"}));
  q.types.clear();
  q.count = 50;
  auto latest = store_->Read("Observation", "o0");
  ASSERT_TRUE(latest.ok());
  q.since_ms = latest->last_updated_ms;
  auto since = all(q);
  ASSERT_FALSE(since.empty());
  EXPECT_EQ(since.back(), "Observation/o0/2");
  for (const auto& s : since) EXPECT_NE(s, "Patient/p1/1") << "older than _since";
  q.since_ms = 0;
  q.patient_id = "nobody";
  EXPECT_TRUE(all(q).empty());
}

// WAL frames reach the database file while the store is open, once 32 MB of
// WAL has built up: copied by the writer itself while serving, and by the
// checkpointer thread during a bulk load. Either way the database grows
// during the writes rather than only when the store closes.
TEST_F(StoreTest, WalIsFoldedIntoTheDatabaseWhileOpenServingAndBulkLoading) {
  const std::string db_path = data_ + "/" + kDatabaseFileName;
  auto file_size = [](const std::string& path) -> int64_t {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0 ? st.st_size : 0;
  };
  uint64_t x = 88172645463325252ull;
  for (bool bulk : {false, true}) {
    SCOPED_TRACE(bulk ? "bulk load" : "serving");
    if (bulk) {
      ASSERT_TRUE(store_->BeginBulkLoad().ok());
    }
    const int64_t before = file_size(db_path);
    // Incompressible notes (hex of pseudo-random bytes), 40 MB in all.
    for (int batch = 0; batch < 10; ++batch) {
      std::vector<WriteOp> ops;
      for (int i = 0; i < 40; ++i) {
        std::string note;
        note.reserve(100000);
        while (note.size() < 100000) {
          x ^= x << 13, x ^= x >> 7, x ^= x << 17;
          char hex[17];
          std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(x));
          note += hex;
        }
        ops.push_back(Put("Basic", std::string(bulk ? "k" : "s") + std::to_string(batch) + "-" + std::to_string(i),
                          R"({"resourceType":"Basic","code":{"text":")" + note + R"("}})"));
      }
      ASSERT_TRUE(store_->CommitAndWait(std::move(ops), true).status.ok());
    }
    // A bulk load's checkpoint runs beside the writes; wait for it (bounded).
    for (int i = 0; i < 300 && file_size(db_path) - before < (24 << 20); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    EXPECT_GE(file_size(db_path) - before, 24 << 20);
    if (bulk) {
      ASSERT_TRUE(store_->EndBulkLoad().ok());
    }
  }
  // Still all readable, through the database and what is left in the WAL.
  for (const char* id : {"s9-39", "k9-39"}) {
    auto v = store_->Read("Basic", id);
    ASSERT_TRUE(v.ok()) << id << ": " << v.status().ToString();
  }
}

TEST_F(StoreTest, BulkLoadOnAClosedStoreIsUnavailableNotACrash) {
  store_->Close();
  EXPECT_EQ(store_->BeginBulkLoad().code(), StatusCode::kUnavailable);
  EXPECT_EQ(store_->EndBulkLoad().code(), StatusCode::kUnavailable);
}

}  // namespace
}  // namespace phivault::store
