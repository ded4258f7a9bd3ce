#include "store/sqlite_store.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <list>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>

#include <boost/json.hpp>

#include "common/log.h"
#include "crypto/aead.h"
#include "fhir/json_reader.h"
#include "fhir/time.h"
#include "store/body_codec.h"
#include "store/encrypted_vfs.h"
#include "store/patient_key_cache.h"
#include "store/sqlite_search.h"
#include "store/sqlite_util.h"

namespace phivault::store {
namespace {

constexpr int kSchemaVersion = 1;

using sqlite::Statement;

Status SqliteError(sqlite3* /*db*/, int rc, std::string_view what) { return sqlite::Error(rc, kDatabaseFileName, what); }

class Connection {
 public:
  explicit Connection(sqlite3* db) : db_(db) {}
  ~Connection() {
    for (auto& [sql, s] : cache_) sqlite3_finalize(s);
    sqlite3_close_v2(db_);
  }
  sqlite3* db() { return db_; }

  // REQUIRES: `sql` is a string literal (the cache is keyed by its address).
  StatusOr<sqlite3_stmt*> Prepare(const char* sql) {
    auto it = cache_.find(sql);
    if (it != cache_.end()) return it->second;
    sqlite3_stmt* s = nullptr;
    int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, nullptr);
    if (rc != SQLITE_OK) return SqliteError(db_, rc, "prepare");
    cache_[sql] = s;
    return s;
  }

  Status Exec(const char* sql) {
    char* err = nullptr;
    int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
    if (err) sqlite3_free(err);
    if (rc != SQLITE_OK) return SqliteError(db_, rc, "exec");
    return Status::Ok();
  }

  // A COMMIT that fails (disk full, I/O error) can leave the transaction
  // open, and every later BEGIN on this connection would then fail: roll it
  // back so the connection stays usable, and return the commit's error.
  Status Commit() {
    Status s = Exec("COMMIT");
    if (!s.ok() && !sqlite3_get_autocommit(db_)) Exec("ROLLBACK").IgnoreError();
    return s;
  }

 private:
  sqlite3* db_;
  std::map<const char*, sqlite3_stmt*> cache_;
};

#define PV_STMT(var, conn, sql)                      \
  PV_ASSIGN_OR_RETURN(sqlite3_stmt * var##_raw, (conn).Prepare(sql)); \
  Statement var(var##_raw)

// Vaults created before the index was separate carry the same constraint as
// SQLite's automatic index of a table-level UNIQUE, which cannot be dropped;
// they keep it, and bulk loads into them maintain it row by row.
constexpr const char* kAutoVersionIndex = "sqlite_autoindex_resource_versions_1";
constexpr const char* kVersionIndex =
    "CREATE UNIQUE INDEX IF NOT EXISTS resource_versions_by_version ON resource_versions(type, id, version);";
// Its keys are (type, random id): once it outgrows the cache every insert
// dirties a page of its own, about an eighth of a bulk import's CPU.
constexpr const char* kDropVersionIndex = "DROP INDEX IF EXISTS resource_versions_by_version;";

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS vault_meta(
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
) WITHOUT ROWID;

-- Every version ever written. Append-only: the triggers below refuse UPDATE
-- and DELETE, so no code path can overwrite or remove a stored version.
CREATE TABLE IF NOT EXISTS resource_versions(
  seq INTEGER PRIMARY KEY,
  type TEXT NOT NULL,
  id TEXT NOT NULL,
  version INTEGER NOT NULL,
  last_updated INTEGER NOT NULL,
  deleted INTEGER NOT NULL,
  key_owner TEXT NOT NULL,
  author TEXT NOT NULL,
  labels TEXT NOT NULL,
  body BLOB
);
-- (type, id, version) is unique: a separate index (kVersionIndex), not a
-- table constraint, so that a bulk load can build it once at the end.
CREATE INDEX IF NOT EXISTS resource_versions_by_type ON resource_versions(type, seq);
CREATE TRIGGER IF NOT EXISTS resource_versions_no_update BEFORE UPDATE ON resource_versions
  BEGIN SELECT RAISE(ABORT, 'resource_versions is append-only'); END;
CREATE TRIGGER IF NOT EXISTS resource_versions_no_delete BEFORE DELETE ON resource_versions
  BEGIN SELECT RAISE(ABORT, 'resource_versions is append-only'); END;

-- The patient link: which patients' compartments each version belongs to.
CREATE TABLE IF NOT EXISTS resource_patients(
  patient_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  PRIMARY KEY(patient_id, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS resource_patients_by_seq ON resource_patients(seq);

-- Latest version per logical resource: derivable from resource_versions, kept
-- for O(log n) reads.
CREATE TABLE IF NOT EXISTS current_versions(
  type TEXT NOT NULL,
  id TEXT NOT NULL,
  version INTEGER NOT NULL,
  deleted INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  PRIMARY KEY(type, id)
) WITHOUT ROWID;

-- Identifier index of current, non-deleted versions (conditional create).
CREATE TABLE IF NOT EXISTS identifiers(
  type TEXT NOT NULL,
  value TEXT NOT NULL,
  system TEXT NOT NULL,
  id TEXT NOT NULL,
  PRIMARY KEY(type, value, system, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS identifiers_by_resource ON identifiers(type, id);

-- Per-patient data keys, wrapped by the keyring's KEK.
CREATE TABLE IF NOT EXISTS patient_keys(
  patient_id TEXT PRIMARY KEY,
  kek_version INTEGER NOT NULL,
  wrapped BLOB NOT NULL
) WITHOUT ROWID;
)sql";

std::string PatientKeyContext(std::string_view patient_id) {
  std::string c = "patient-data-key:";
  c += patient_id;
  return c;
}

std::string BodyAad(std::string_view type, std::string_view id, int64_t version, std::string_view key_owner) {
  std::string aad = "phivault/resource/v1";
  aad += '\0';
  aad += type;
  aad += '\0';
  aad += id;
  aad += '\0';
  aad += std::to_string(version);
  aad += '\0';
  aad += key_owner;
  return aad;
}

// Identifier system/value pairs of a resource, for the conditional-create index.
std::vector<std::pair<std::string, std::string>> Identifiers(const boost::json::object& resource) {
  std::vector<std::pair<std::string, std::string>> out;
  auto add = [&](const boost::json::value& v) {
    const boost::json::object* o = v.if_object();
    if (!o) return;
    const boost::json::value* value = o->if_contains("value");
    if (!value || !value->is_string()) return;
    std::string system;
    if (const boost::json::value* s = o->if_contains("system"); s && s->is_string()) system = s->get_string();
    out.emplace_back(std::move(system), std::string(value->get_string()));
  };
  const boost::json::value* ids = resource.if_contains("identifier");
  if (!ids) return out;
  if (const boost::json::array* a = ids->if_array()) {
    for (const auto& v : *a) add(v);
  } else {
    add(*ids);
  }
  return out;
}

// meta.security as JSON text, or "" when absent.
std::string SecurityLabelsOf(const boost::json::object& resource) {
  const boost::json::value* meta = resource.if_contains("meta");
  if (!meta || !meta->is_object()) return {};
  const boost::json::value* security = meta->get_object().if_contains("security");
  if (!security || !security->is_array() || security->get_array().empty()) return {};
  return boost::json::serialize(*security);
}

// An LRU of decrypted latest versions keyed by type and id. The writer puts
// every version it commits (after COMMIT succeeds); readers put what they read
// from the database only if it is not older than what is cached, so a reader
// that raced a commit can never re-insert a stale version.
class VersionCache {
 public:
  explicit VersionCache(size_t budget) : budget_(budget) {}

  std::shared_ptr<const ResourceVersion> Get(const std::string& key) {
    if (!budget_) return nullptr;
    std::lock_guard lk(mu_);
    auto it = map_.find(key);
    if (it == map_.end()) return nullptr;
    lru_.splice(lru_.begin(), lru_, it->second.pos);
    return it->second.value;
  }

  void Put(const std::string& key, std::shared_ptr<const ResourceVersion> v, bool authoritative) {
    if (!budget_) return;
    size_t cost = Cost(key, *v);
    if (cost > budget_ / 8) {  // do not let one huge body evict everything
      if (authoritative) Erase(key);
      return;
    }
    std::lock_guard lk(mu_);
    auto it = map_.find(key);
    if (it != map_.end()) {
      if (!authoritative && it->second.value->version >= v->version) return;
      bytes_ -= it->second.cost;
      lru_.erase(it->second.pos);
      map_.erase(it);
    }
    lru_.push_front(key);
    map_.emplace(key, Entry{std::move(v), lru_.begin(), cost});
    bytes_ += cost;
    while (bytes_ > budget_ && !lru_.empty()) {
      auto victim = map_.find(lru_.back());
      bytes_ -= victim->second.cost;
      map_.erase(victim);
      lru_.pop_back();
    }
  }

  void Erase(const std::string& key) {
    std::lock_guard lk(mu_);
    auto it = map_.find(key);
    if (it == map_.end()) return;
    bytes_ -= it->second.cost;
    lru_.erase(it->second.pos);
    map_.erase(it);
  }

  static std::string Key(std::string_view type, std::string_view id) {
    std::string k(type);
    k += '/';
    k += id;
    return k;
  }

 private:
  static size_t Cost(const std::string& key, const ResourceVersion& v) {
    size_t c = 2 * key.size() + v.json.size() + v.author.size() + v.security_labels.size() + 160;
    for (const auto& p : v.patients) c += p.size() + 32;
    return c;
  }
  struct Entry {
    std::shared_ptr<const ResourceVersion> value;
    std::list<std::string>::iterator pos;
    size_t cost;
  };
  const size_t budget_;
  std::mutex mu_;
  std::list<std::string> lru_;
  std::unordered_map<std::string, Entry> map_;
  size_t bytes_ = 0;
};

struct PendingBatch {
  std::vector<WriteOp> ops;
  bool atomic = false;
  CommitCallback done;
  AuditRecordBuilder audit;
  // One per op (empty for deletes), extracted by the submitting thread.
  std::vector<sqlite_search::PreparedRows> prepared;
  // One per op (unusable for deletes): bodies serialized and compressed by
  // the submitting thread, leaving the writer to fill in version and time.
  std::vector<body::PreparedBody> bodies;
};

// The audit outbox (see AuditRecordBuilder). Created on every open, not only
// at init, so vaults made before it existed get it too. AUTOINCREMENT: ids
// are never reused after rows are dropped, because the audit log refers to
// them (AuditEntry::write_record).
constexpr const char* kOutboxSchema = R"sql(
CREATE TABLE IF NOT EXISTS audit_outbox(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  created INTEGER NOT NULL,
  record TEXT NOT NULL
);
)sql";

// Acknowledged outbox records are dropped with the next write group, or by a
// transaction of their own when this many wait or the writer idles this long.
constexpr size_t kMaxPendingAcks = 4096;
constexpr std::chrono::milliseconds kAckIdleFlush{1000};

class SqliteStore final : public ResourceStore {
 public:
  SqliteStore(SqliteStoreOptions options, const crypto::Keyring* keyring)
      : options_(std::move(options)),
        keyring_(keyring),
        key_cache_(options_.max_cached_patient_keys),
        cache_(options_.cache_bytes) {}
  ~SqliteStore() override { Close(); }

  Status Init();

  StatusOr<ResourceVersion> Read(const std::string& type, const std::string& id) override;
  StatusOr<ResourceVersion> ReadFromDatabase(const std::string& type, const std::string& id);
  StatusOr<ResourceVersion> ReadVersion(const std::string& type, const std::string& id, int64_t version) override;
  StatusOr<HistoryPage> History(const HistoryQuery& query) override;
  StatusOr<CompartmentPage> Compartment(const CompartmentQuery& query) override;
  Status ForEachCurrent(const std::vector<std::string>& types,
                        const std::function<Status(const ResourceVersion&)>& fn) override;
  StatusOr<SearchPage> Search(const SearchQuery& query) override;
  using ResourceStore::Commit;
  void Commit(std::vector<WriteOp> ops, bool atomic, CommitCallback done, AuditRecordBuilder audit) override;
  StatusOr<std::vector<PendingAuditRecord>> PendingAuditRecords() override;
  void AckAuditRecord(int64_t record_id) override;
  Status BeginBulkLoad() override;
  Status EndBulkLoad() override;
  StoreStats Stats() override;
  bool Healthy() override { return healthy_.load(); }
  void Close() override;

 private:
  StatusOr<std::unique_ptr<Connection>> OpenConnection(bool create);
  // Read connections are pooled; a Lease returns its connection on destruction.
  class Lease {
   public:
    Lease(SqliteStore* s, std::unique_ptr<Connection> c) : s_(s), c_(std::move(c)) {}
    ~Lease() {
      if (c_) s_->ReleaseReader(std::move(c_));
    }
    Connection& operator*() { return *c_; }
    Connection* operator->() { return c_.get(); }

   private:
    SqliteStore* s_;
    std::unique_ptr<Connection> c_;
  };
  StatusOr<std::unique_ptr<Lease>> AcquireReader();
  void ReleaseReader(std::unique_ptr<Connection> c);

  // Data keys: `owner` is a patient id, or "" for the shared key.
  StatusOr<std::shared_ptr<const crypto::Aead>> KeyForRead(Connection& conn, const std::string& owner);
  StatusOr<std::shared_ptr<const crypto::Aead>> KeyForWrite(const std::string& owner);
  StatusOr<std::string> OpenBody(Connection& conn, const std::string& type, const std::string& id, int64_t version,
                                 const std::string& owner, const std::string& sealed);

  void WriterLoop();
  void ApplyGroup(std::vector<PendingBatch>& group, std::vector<int64_t>& acks);
  // Held by the writer thread while it uses writer_ (ApplyGroup), and by
  // maintenance that runs on writer_ from another thread (bulk load).
  std::mutex writer_mu_;
  // Stores the batch's audit record (writer thread, inside the transaction).
  Status StoreAuditRecord(PendingBatch& batch, CommitOutcome& out);
  // `prepared`: the op's index rows from PreparedRows::Extract, or null;
  // `prepared_body`: its body from PreparedBody::Prepare, or null.
  StatusOr<WriteResult> ApplyOp(WriteOp& op, const sqlite_search::PreparedRows* prepared,
                                const body::PreparedBody* prepared_body);
  Status InsertVersion(WriteOp& op, int64_t version, bool deleted, WriteResult* result,
                       const sqlite_search::PreparedRows* prepared, const body::PreparedBody* prepared_body);
  StatusOr<std::vector<std::string>> FindExisting(const std::string& type, const ExistCondition& cond);
  struct Current {
    int64_t version = 0;
    bool deleted = false;
    int64_t seq = 0;
  };
  StatusOr<std::optional<Current>> CurrentOf(Connection& conn, const std::string& type, const std::string& id);
  StatusOr<ResourceVersion> LoadVersion(Connection& conn, int64_t seq, const std::string& type, const std::string& id);
  StatusOr<std::vector<std::string>> PatientsOf(Connection& conn, int64_t seq);
  // A row of (seq, type, id, version, last_updated, deleted, key_owner, body,
  // author, labels) with its body opened; patients are left to the caller.
  StatusOr<HistoryEntry> EntryFromRow(Connection& conn, Statement& q);

  // Creates the search index, or rebuilds it from the current versions when
  // it is missing or was built for another layout or parameter table.
  Status PrepareSearchIndex();
  // Creates the (type, id, version) index unless the table carries it as a
  // constraint (older vaults); also finishes a bulk load cut short.
  Status EnsureVersionIndex();

  SqliteStoreOptions options_;
  const crypto::Keyring* keyring_;
  std::string db_path_;
  std::atomic<bool> healthy_{true};
  std::atomic<int64_t> group_commits_{0};
  std::atomic<int64_t> committed_ops_{0};

  std::mutex pool_mu_;
  std::vector<std::unique_ptr<Connection>> idle_readers_;

  PatientKeyCache key_cache_;
  std::shared_ptr<const crypto::Aead> shared_key_;
  // Keys created in the group being applied; published only after COMMIT.
  // A savepoint rolled back also takes back the keys (and cached versions)
  // its writes created, so memory never holds what the database does not.
  std::unordered_map<std::string, std::shared_ptr<const crypto::Aead>> group_new_keys_;
  std::vector<std::string> group_new_key_order_;
  struct GroupMark {
    size_t keys = 0;
    size_t versions = 0;
  };
  GroupMark Mark() const { return {group_new_key_order_.size(), group_versions_.size()}; }
  void RollBackTo(const GroupMark& m) {
    while (group_new_key_order_.size() > m.keys) {
      group_new_keys_.erase(group_new_key_order_.back());
      group_new_key_order_.pop_back();
    }
    group_versions_.resize(m.versions);
  }
  // Applies each op in its own savepoint: a failed op leaves no trace.
  void ApplyOpsEachInSavepoint(PendingBatch& batch, std::vector<StatusOr<WriteResult>>* results);
  // The same outcome inside the batch's open savepoint "batch", without a
  // savepoint per op. Returns false, with the batch rolled back to
  // `batch_mark` and `results` empty, when a failed op left writes behind;
  // the caller then uses ApplyOpsEachInSavepoint.
  bool ApplyOpsInBatchSavepoint(PendingBatch& batch, const GroupMark& batch_mark,
                                std::vector<StatusOr<WriteResult>>* results);
  VersionCache cache_;
  // Versions written by the group being applied; cached only after COMMIT.
  std::vector<std::shared_ptr<const ResourceVersion>> group_versions_;

  // Writer state: only the writer thread touches writer_.
  std::unique_ptr<Connection> writer_;
  std::unique_ptr<sqlite_search::IndexWriter> index_;
  int64_t group_time_ms_ = 0;
  std::string group_time_text_;  // group_time_ms_ as meta.lastUpdated
  int64_t last_group_time_ms_ = 0;
  int64_t last_audit_record_id_ = 0;  // highest id handed out

  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::deque<PendingBatch> queue_;
  std::vector<int64_t> acks_;  // acknowledged outbox records not yet dropped
  bool closing_ = false;
  std::thread writer_thread_;
  // Frees applied batches' ops (parsed resources, prepared index rows) off
  // the writer thread: many small frees of another thread's allocations were
  // about a tenth of the writer's time, and the writer bounds write
  // throughput.
  void ReaperLoop();
  std::mutex reap_mu_;
  std::condition_variable reap_cv_;
  std::vector<std::vector<PendingBatch>> reap_;
  bool reap_stop_ = false;
  std::thread reaper_thread_;
  // During a bulk load, WAL frames are copied into the database on a
  // connection and thread of their own (SQLite's passive checkpoint runs
  // beside a writer): done by the writer, checkpoints were a sixth of its
  // time in an import (each frame read, decrypted, encrypted and written
  // again, then an fsync of the database). While serving, the writer
  // checkpoints itself: beside the requests on two cores, the checkpoint's
  // CPU and fsync cost about 10% of durable-write throughput, more than the
  // latency it saves is worth (p99 13 ms instead of 40 ms).
  static int OnWalCommit(void* self, sqlite3* db, const char* schema, int frames);
  std::atomic<bool> bulk_loading_{false};
  void CheckpointLoop();
  std::unique_ptr<Connection> checkpointer_;
  std::mutex checkpoint_mu_;
  std::condition_variable checkpoint_cv_;
  bool checkpoint_wanted_ = false;
  bool checkpoint_stop_ = false;
  std::thread checkpoint_thread_;
  std::string vfs_name_;
  std::once_flag close_once_;
};

// WAL frames (pages) after which a checkpoint starts: 32 MB. The search
// index's lookup B-trees dirty pages all over the file, and a rarer
// checkpoint copies each hot page once instead of once per few MB of writes.
constexpr int kCheckpointFrames = 8192;
// Should the checkpointer fall this far behind during a bulk load (a slow
// disk), the writer checkpoints too, so the WAL stays bounded.
constexpr int kWriterCheckpointFrames = 8 * kCheckpointFrames;

StatusOr<std::unique_ptr<Connection>> SqliteStore::OpenConnection(bool create) {
  sqlite3* db = nullptr;
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_PRIVATECACHE;
  if (create) flags |= SQLITE_OPEN_CREATE;
  int rc = sqlite3_open_v2(db_path_.c_str(), &db, flags, vfs_name_.c_str());
  if (rc != SQLITE_OK) {
    Status s = SqliteError(db, rc, "open " + std::string(kDatabaseFileName));
    sqlite3_close_v2(db);
    if (rc == SQLITE_CANTOPEN) return NotFound("no vault database at " + db_path_ + " (run `phivault init`)");
    return s;
  }
  auto conn = std::make_unique<Connection>(db);
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, 5000);
  PV_RETURN_IF_ERROR(PrepareEncryptedDatabase(db));
  // temp_store=FILE still keeps temp files in memory (the encrypting VFS
  // serves every non-database file from a wiped buffer), but lets SQLite spill
  // statement sub-journals to those buffers. Its own in-memory sub-journal
  // walks a linked list on every RELEASE, which made a per-op savepoint
  // inside an import batch's savepoint cost O(pages touched by the batch).
  PV_RETURN_IF_ERROR(conn->Exec(
      "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA temp_store=FILE; "
      "PRAGMA foreign_keys=OFF; PRAGMA cache_size=-8192; PRAGMA mmap_size=0;"));
  return conn;
}

Status SqliteStore::Init() {
  db_path_ = options_.data_dir + "/" + kDatabaseFileName;
  auto page_aead = crypto::Aead::New(keyring_->Key(crypto::KeyPurpose::kStorage));
  if (!page_aead.ok()) return page_aead.status();
  vfs_name_ = VaultVfsName(keyring_->vault_id());
  PV_RETURN_IF_ERROR(RegisterEncryptedVfs(vfs_name_, std::shared_ptr<const crypto::Aead>(std::move(*page_aead))));
  auto shared = crypto::Aead::New(keyring_->Key(crypto::KeyPurpose::kSharedData));
  if (!shared.ok()) return shared.status();
  shared_key_ = std::move(*shared);

  struct stat st;
  bool exists = ::stat(db_path_.c_str(), &st) == 0;
  if (options_.create && exists) return Status(StatusCode::kAlreadyExists, "a vault database already exists at " + db_path_);
  if (!options_.create && !exists) return NotFound("no vault database at " + db_path_ + " (run `phivault init` first)");

  PV_ASSIGN_OR_RETURN(writer_, OpenConnection(options_.create));
  // Replaces the writer's own automatic checkpoints (see CheckpointLoop).
  sqlite3_wal_hook(writer_->db(), &SqliteStore::OnWalCommit, this);
  // Every page the writer misses is read and decrypted, and search index
  // inserts land all over the lookup B-trees.
  const std::string writer_cache =
      "PRAGMA cache_size=-" + std::to_string(std::max<size_t>(options_.writer_cache_bytes >> 10, 1024)) + ";";
  PV_RETURN_IF_ERROR(writer_->Exec(writer_cache.c_str()));
  if (options_.create) {
    // Ciphertext only, but still nobody else's business; SQLite gives its
    // -wal and -shm files the database file's mode.
    ::chmod(db_path_.c_str(), 0600);
    PV_RETURN_IF_ERROR(writer_->Exec(kSchema));
    PV_STMT(ins, *writer_, "INSERT INTO vault_meta(key, value) VALUES (?1, ?2)");
    ins.Bind(1, "vault_id").Bind(2, keyring_->vault_id());
    if (int rc = ins.Step(); rc != SQLITE_DONE) return SqliteError(writer_->db(), rc, "write vault id");
    PV_STMT(ins2, *writer_, "INSERT INTO vault_meta(key, value) VALUES ('schema_version', ?1)");
    ins2.Bind(1, std::to_string(kSchemaVersion));
    if (int rc = ins2.Step(); rc != SQLITE_DONE) return SqliteError(writer_->db(), rc, "write schema version");
  }
  {
    PV_STMT(q, *writer_, "SELECT value FROM vault_meta WHERE key = 'vault_id'");
    int rc = q.Step();
    if (rc != SQLITE_ROW) {
      if (rc == SQLITE_DONE) return DataLoss("vault database has no vault id; it is damaged or not a phivault database");
      return SqliteError(writer_->db(), rc, "read vault id");
    }
    if (q.Text(0) != keyring_->vault_id()) {
      return PermissionDenied("the vault database belongs to another vault than this keyring");
    }
  }
  PV_RETURN_IF_ERROR(writer_->Exec(kOutboxSchema));
  {
    PV_STMT(q, *writer_, "SELECT seq FROM sqlite_sequence WHERE name = 'audit_outbox'");
    int rc = q.Step();
    if (rc == SQLITE_ROW) {
      last_audit_record_id_ = q.Int(0);
    } else if (rc != SQLITE_DONE) {
      return SqliteError(writer_->db(), rc, "read audit outbox sequence");
    }
  }
  index_ = std::make_unique<sqlite_search::IndexWriter>(writer_->db());
  PV_RETURN_IF_ERROR(PrepareSearchIndex());
  PV_RETURN_IF_ERROR(EnsureVersionIndex());
  PV_ASSIGN_OR_RETURN(checkpointer_, OpenConnection(false));
  checkpoint_thread_ = std::thread([this] { CheckpointLoop(); });
  reaper_thread_ = std::thread([this] { ReaperLoop(); });
  writer_thread_ = std::thread([this] { WriterLoop(); });
  return Status::Ok();
}

int SqliteStore::OnWalCommit(void* self, sqlite3* db, const char* /*schema*/, int frames) {
  auto* store = static_cast<SqliteStore*>(self);
  const bool bulk = store->bulk_loading_.load(std::memory_order_relaxed);
  if (frames >= kWriterCheckpointFrames || (!bulk && frames >= kCheckpointFrames)) {
    // Passive: copies what it can without waiting; SQLITE_BUSY while the
    // checkpointer is at it, which is fine.
    sqlite3_wal_checkpoint_v2(db, "main", SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
  } else if (frames >= kCheckpointFrames) {
    {
      std::lock_guard lk(store->checkpoint_mu_);
      store->checkpoint_wanted_ = true;
    }
    store->checkpoint_cv_.notify_one();
  }
  return SQLITE_OK;
}

void SqliteStore::CheckpointLoop() {
  std::unique_lock lk(checkpoint_mu_);
  for (;;) {
    checkpoint_cv_.wait(lk, [&] { return checkpoint_wanted_ || checkpoint_stop_; });
    if (checkpoint_stop_) return;
    checkpoint_wanted_ = false;
    lk.unlock();
    int rc = sqlite3_wal_checkpoint_v2(checkpointer_->db(), "main", SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
      // The frames stay in the WAL, durable; the next commit asks again.
      log::Warn("store.checkpoint_failed",
                {{"error", sqlite3_errstr(rc)}, {"action", "check disk space and the data directory"}});
    }
    lk.lock();
  }
}

StatusOr<std::unique_ptr<SqliteStore::Lease>> SqliteStore::AcquireReader() {
  {
    std::lock_guard lk(pool_mu_);
    if (!idle_readers_.empty()) {
      auto c = std::move(idle_readers_.back());
      idle_readers_.pop_back();
      return std::make_unique<Lease>(this, std::move(c));
    }
  }
  PV_ASSIGN_OR_RETURN(auto c, OpenConnection(false));
  PV_RETURN_IF_ERROR(c->Exec("PRAGMA query_only=ON;"));
  return std::make_unique<Lease>(this, std::move(c));
}

void SqliteStore::ReleaseReader(std::unique_ptr<Connection> c) {
  std::lock_guard lk(pool_mu_);
  idle_readers_.push_back(std::move(c));
}

StatusOr<std::shared_ptr<const crypto::Aead>> SqliteStore::KeyForRead(Connection& conn, const std::string& owner) {
  if (owner.empty()) return shared_key_;
  if (auto key = key_cache_.Get(owner)) return key;
  PV_STMT(q, conn, "SELECT wrapped FROM patient_keys WHERE patient_id = ?1");
  q.Bind(1, owner);
  int rc = q.Step();
  if (rc == SQLITE_DONE) return DataLoss("a resource's patient data key is missing (shredded or damaged)");
  if (rc != SQLITE_ROW) return SqliteError(conn.db(), rc, "read patient key");
  PV_ASSIGN_OR_RETURN(SecureBytes dek, keyring_->UnwrapDataKey(q.Blob(0), PatientKeyContext(owner)));
  PV_ASSIGN_OR_RETURN(std::unique_ptr<crypto::Aead> aead, crypto::Aead::New(dek));
  std::shared_ptr<const crypto::Aead> shared(std::move(aead));
  key_cache_.Put(owner, shared);
  return shared;
}

StatusOr<std::shared_ptr<const crypto::Aead>> SqliteStore::KeyForWrite(const std::string& owner) {
  if (owner.empty()) return shared_key_;
  if (auto it = group_new_keys_.find(owner); it != group_new_keys_.end()) return it->second;
  auto existing = KeyForRead(*writer_, owner);
  if (existing.ok()) return existing;
  if (existing.status().code() != StatusCode::kDataLoss) return existing.status();
  // No key yet: this is the patient's first resource. Ensure the row is truly
  // absent (not unreadable) before minting a key.
  {
    PV_STMT(q, *writer_, "SELECT 1 FROM patient_keys WHERE patient_id = ?1");
    q.Bind(1, owner);
    int rc = q.Step();
    if (rc == SQLITE_ROW) return existing.status();
    if (rc != SQLITE_DONE) return SqliteError(writer_->db(), rc, "read patient key");
  }
  SecureBytes dek = SecureBytes::Random(crypto::Aead::kKeySize);
  std::string wrapped = keyring_->WrapDataKey(dek, PatientKeyContext(owner));
  PV_STMT(ins, *writer_, "INSERT INTO patient_keys(patient_id, kek_version, wrapped) VALUES (?1, ?2, ?3)");
  ins.Bind(1, owner).Bind(2, static_cast<int64_t>(keyring_->kek_version())).BindBlob(3, wrapped);
  if (int rc = ins.Step(); rc != SQLITE_DONE) return SqliteError(writer_->db(), rc, "store patient key");
  PV_ASSIGN_OR_RETURN(std::unique_ptr<crypto::Aead> aead, crypto::Aead::New(dek));
  std::shared_ptr<const crypto::Aead> key(std::move(aead));
  group_new_keys_.emplace(owner, key);
  group_new_key_order_.push_back(owner);
  return key;
}

StatusOr<std::string> SqliteStore::OpenBody(Connection& conn, const std::string& type, const std::string& id,
                                            int64_t version, const std::string& owner, const std::string& sealed) {
  PV_ASSIGN_OR_RETURN(auto key, KeyForRead(conn, owner));
  auto plain = key->Open(sealed, BodyAad(type, id, version, owner));
  if (!plain.ok()) {
    return DataLoss("a stored resource failed its integrity check; the data directory was modified outside phivault");
  }
  auto json = body::Decode(*plain);
  SecureWipe(plain->data(), plain->size());
  return json;
}

StatusOr<std::optional<SqliteStore::Current>> SqliteStore::CurrentOf(Connection& conn, const std::string& type,
                                                                     const std::string& id) {
  PV_STMT(q, conn, "SELECT version, deleted, seq FROM current_versions WHERE type = ?1 AND id = ?2");
  q.Bind(1, type).Bind(2, id);
  int rc = q.Step();
  if (rc == SQLITE_DONE) return std::optional<Current>();
  if (rc != SQLITE_ROW) return SqliteError(conn.db(), rc, "read current version");
  return std::optional<Current>(Current{q.Int(0), q.Int(1) != 0, q.Int(2)});
}

StatusOr<ResourceVersion> SqliteStore::LoadVersion(Connection& conn, int64_t seq, const std::string& type,
                                                   const std::string& id) {
  PV_STMT(q, conn,
          "SELECT version, last_updated, deleted, key_owner, body, type, id, author, labels FROM resource_versions "
          "WHERE seq = ?1");
  q.Bind(1, seq);
  int rc = q.Step();
  if (rc == SQLITE_DONE) return DataLoss("a version listed as current is missing from the database");
  if (rc != SQLITE_ROW) return SqliteError(conn.db(), rc, "read version");
  ResourceVersion v;
  v.type = q.Text(5);
  v.id = q.Text(6);
  if (v.type != type || v.id != id) return DataLoss("the version index points at another resource");
  v.version = q.Int(0);
  v.last_updated_ms = q.Int(1);
  v.deleted = q.Int(2) != 0;
  v.author = q.Text(7);
  v.security_labels = q.Text(8);
  if (!v.deleted) {
    std::string owner = q.Text(3);
    PV_ASSIGN_OR_RETURN(v.json, OpenBody(conn, v.type, v.id, v.version, owner, q.Blob(4)));
  }
  PV_ASSIGN_OR_RETURN(v.patients, PatientsOf(conn, seq));
  return v;
}

StatusOr<std::vector<std::string>> SqliteStore::PatientsOf(Connection& conn, int64_t seq) {
  PV_STMT(q, conn, "SELECT patient_id FROM resource_patients WHERE seq = ?1 ORDER BY patient_id");
  q.Bind(1, seq);
  std::vector<std::string> out;
  int rc;
  while ((rc = q.Step()) == SQLITE_ROW) out.push_back(q.Text(0));
  if (rc != SQLITE_DONE) return SqliteError(conn.db(), rc, "read patient link");
  return out;
}

Status SqliteStore::ForEachCurrent(const std::vector<std::string>& types,
                                   const std::function<Status(const ResourceVersion&)>& fn) {
  PV_ASSIGN_OR_RETURN(auto lease, AcquireReader());
  Connection& conn = **lease;
  for (const std::string& type : types) {
    std::vector<std::pair<std::string, int64_t>> rows;
    {
      PV_STMT(q, conn, "SELECT id, seq FROM current_versions WHERE type = ?1 AND deleted = 0");
      q.Bind(1, type);
      int rc;
      while ((rc = q.Step()) == SQLITE_ROW) rows.emplace_back(q.Text(0), q.Int(1));
      if (rc != SQLITE_DONE) return SqliteError(conn.db(), rc, "list current versions");
    }
    for (const auto& [id, seq] : rows) {
      PV_ASSIGN_OR_RETURN(ResourceVersion v, LoadVersion(conn, seq, type, id));
      PV_RETURN_IF_ERROR(fn(v));
    }
  }
  return Status::Ok();
}

Status SqliteStore::PrepareSearchIndex() {
  const std::string want = sqlite_search::Fingerprint();
  {
    PV_STMT(q, *writer_, "SELECT value FROM vault_meta WHERE key = 'search_index'");
    int rc = q.Step();
    if (rc == SQLITE_ROW && q.Text(0) == want) return writer_->Exec(sqlite_search::kIndexSchema);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return SqliteError(writer_->db(), rc, "read search index version");
  }
  if (!options_.create) {
    log::Info("store.search_index_rebuild",
              {{"reason", "missing or built for another parameter table or string folding"}});
  }
  PV_RETURN_IF_ERROR(writer_->Exec("BEGIN IMMEDIATE"));
  Status s = [&]() -> Status {
    PV_RETURN_IF_ERROR(writer_->Exec(sqlite_search::kDropIndexSchema));
    PV_RETURN_IF_ERROR(writer_->Exec(sqlite_search::kIndexSchema));
    std::vector<std::tuple<std::string, std::string, int64_t>> rows;
    {
      PV_STMT(q, *writer_, "SELECT type, id, seq FROM current_versions WHERE deleted = 0");
      int rc;
      while ((rc = q.Step()) == SQLITE_ROW) rows.emplace_back(q.Text(0), q.Text(1), q.Int(2));
      if (rc != SQLITE_DONE) return SqliteError(writer_->db(), rc, "list current versions");
    }
    int64_t unindexable = 0;
    for (const auto& [type, id, seq] : rows) {
      PV_ASSIGN_OR_RETURN(ResourceVersion v, LoadVersion(*writer_, seq, type, id));
      PV_ASSIGN_OR_RETURN(boost::json::object resource, fhir::ParseResource(v.json));
      SecureWipe(v.json.data(), v.json.size());
      // A resource stored before writes refused what cannot be indexed whole
      // must not keep the vault from opening: as when it was written, it is
      // indexed under every parameter but the ones that cannot be.
      int skipped = 0;
      PV_RETURN_IF_ERROR(index_->Add(type, seq, resource, nullptr, &skipped));
      if (skipped > 0) ++unindexable;
    }
    if (unindexable > 0) {
      log::Warn("store.search_index_unindexable",
                {{"resources", std::to_string(unindexable)},
                 {"action", "some of their search parameters find nothing; update them to a size that can be "
                            "indexed"}});
    }
    PV_STMT(meta, *writer_,
            "INSERT INTO vault_meta(key, value) VALUES ('search_index', ?1) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value");
    meta.Bind(1, want);
    if (int rc = meta.Step(); rc != SQLITE_DONE) return SqliteError(writer_->db(), rc, "write search index version");
    if (!options_.create) log::Info("store.search_index_rebuilt", {{"resources", std::to_string(rows.size())}});
    return Status::Ok();
  }();
  if (!s.ok()) {
    writer_->Exec("ROLLBACK").IgnoreError();
    return s;
  }
  return writer_->Commit();
}

Status SqliteStore::EnsureVersionIndex() {
  PV_STMT(q, *writer_, "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?1");
  q.Bind(1, kAutoVersionIndex);
  int rc = q.Step();
  if (rc == SQLITE_ROW) return Status::Ok();
  if (rc != SQLITE_DONE) return SqliteError(writer_->db(), rc, "look up the version index");
  Status built = writer_->Exec(kVersionIndex);
  if (!built.ok() && sqlite3_extended_errcode(writer_->db()) == SQLITE_CONSTRAINT_UNIQUE) {
    // Two rows for one (type, id, version): only a bug or a damaged file.
    return DataLoss("the vault holds two copies of one resource version, so its version index cannot be built; "
                    "restore from a verified backup (" + built.message() + ")");
  }
  return built;
}

Status SqliteStore::BeginBulkLoad() {
  std::lock_guard writer_lk(writer_mu_);
  if (!writer_) return Unavailable("the store is closed");
  PV_RETURN_IF_ERROR(writer_->Exec("BEGIN IMMEDIATE"));
  // Versions are numbered from current_versions by this single writer, so
  // nothing needs the unique index to refuse a duplicate meanwhile; the
  // CREATE at the end would refuse one.
  Status s = writer_->Exec(sqlite_search::kDropLookupIndexSchema);
  if (s.ok()) s = writer_->Exec(kDropVersionIndex);
  if (!s.ok()) {
    writer_->Exec("ROLLBACK").IgnoreError();
    return s;
  }
  PV_RETURN_IF_ERROR(writer_->Commit());
  bulk_loading_.store(true);
  return Status::Ok();
}

Status SqliteStore::EndBulkLoad() {
  std::lock_guard writer_lk(writer_mu_);
  if (!writer_) return Unavailable("the store is closed");
  bulk_loading_.store(false);
  // kIndexSchema creates only what is missing. CREATE INDEX sorts the rows
  // and writes the B-tree bottom-up, each page once.
  const auto start = std::chrono::steady_clock::now();
  PV_RETURN_IF_ERROR(writer_->Exec("BEGIN IMMEDIATE"));
  Status s = writer_->Exec(sqlite_search::kIndexSchema);
  if (s.ok()) s = EnsureVersionIndex();
  if (!s.ok()) {
    writer_->Exec("ROLLBACK").IgnoreError();
    return s;
  }
  PV_RETURN_IF_ERROR(writer_->Commit());
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
  log::Info("store.bulk_load_indexed", {{"ms", std::to_string(ms.count())}});
  return Status::Ok();
}

StatusOr<SearchPage> SqliteStore::Search(const SearchQuery& query) {
  PV_ASSIGN_OR_RETURN(auto lease, AcquireReader());
  Connection& conn = **lease;
  int count = std::clamp(query.count, 1, 1000);
  PV_RETURN_IF_ERROR(conn.Exec("BEGIN"));  // one snapshot for matches and bodies
  auto result = [&]() -> StatusOr<SearchPage> {
    PV_ASSIGN_OR_RETURN(auto matches, sqlite_search::FindMatches(conn.db(), query, count + 1));
    SearchPage page;
    page.more = static_cast<int>(matches.size()) > count;
    if (page.more) {
      // The surplus match lies beyond the page: at the end going forward, at
      // the start going backward (matches come back in forward order).
      if (query.backward) {
        matches.erase(matches.begin());
      } else {
        matches.resize(static_cast<size_t>(count));
      }
    }
    for (auto& m : matches) {
      SearchHit hit;
      PV_ASSIGN_OR_RETURN(hit.version, LoadVersion(conn, m.seq, query.type, m.id));
      hit.position = std::move(m.position);
      page.hits.push_back(std::move(hit));
    }
    return page;
  }();
  conn.Commit().IgnoreError();
  return result;
}

StatusOr<ResourceVersion> SqliteStore::Read(const std::string& type, const std::string& id) {
  std::string key = VersionCache::Key(type, id);
  if (auto hit = cache_.Get(key)) return *hit;
  auto v = ReadFromDatabase(type, id);
  if (v.ok()) cache_.Put(key, std::make_shared<const ResourceVersion>(*v), false);
  return v;
}

StatusOr<ResourceVersion> SqliteStore::ReadFromDatabase(const std::string& type, const std::string& id) {
  PV_ASSIGN_OR_RETURN(auto lease, AcquireReader());
  Connection& conn = **lease;
  PV_RETURN_IF_ERROR(conn.Exec("BEGIN"));  // one snapshot for both lookups
  auto result = [&]() -> StatusOr<ResourceVersion> {
    PV_ASSIGN_OR_RETURN(std::optional<Current> cur, CurrentOf(conn, type, id));
    if (!cur) return NotFound("resource not found");
    return LoadVersion(conn, cur->seq, type, id);
  }();
  conn.Commit().IgnoreError();
  return result;
}

StatusOr<ResourceVersion> SqliteStore::ReadVersion(const std::string& type, const std::string& id, int64_t version) {
  PV_ASSIGN_OR_RETURN(auto lease, AcquireReader());
  Connection& conn = **lease;
  PV_STMT(q, conn, "SELECT seq, deleted FROM resource_versions WHERE type = ?1 AND id = ?2 AND version = ?3");
  q.Bind(1, type).Bind(2, id).Bind(3, version);
  int rc = q.Step();
  if (rc == SQLITE_DONE) return NotFound("version not found");
  if (rc != SQLITE_ROW) return SqliteError(conn.db(), rc, "read version");
  return LoadVersion(conn, q.Int(0), type, id);
}

StatusOr<HistoryPage> SqliteStore::History(const HistoryQuery& query) {
  PV_ASSIGN_OR_RETURN(auto lease, AcquireReader());
  Connection& conn = **lease;
  int count = std::clamp(query.count, 1, 1000);
  int64_t before = query.before_seq > 0 ? query.before_seq : INT64_MAX;
  const char* sql;
  if (!query.id.empty()) {
    sql = "SELECT seq, type, id, version, last_updated, deleted, key_owner, body, author, labels "
          "FROM resource_versions "
          "WHERE type = ?1 AND id = ?2 AND seq < ?3 ORDER BY seq DESC LIMIT ?4";
  } else if (!query.type.empty()) {
    sql = "SELECT seq, type, id, version, last_updated, deleted, key_owner, body, author, labels "
          "FROM resource_versions "
          "WHERE type = ?1 AND ?2 = '' AND seq < ?3 ORDER BY seq DESC LIMIT ?4";
  } else {
    sql = "SELECT seq, type, id, version, last_updated, deleted, key_owner, body, author, labels "
          "FROM resource_versions "
          "WHERE ?1 = '' AND ?2 = '' AND seq < ?3 ORDER BY seq DESC LIMIT ?4";
  }
  PV_STMT(q, conn, sql);
  q.Bind(1, query.type).Bind(2, query.id).Bind(3, before).Bind(4, static_cast<int64_t>(count + 1));
  HistoryPage page;
  int rc;
  while ((rc = q.Step()) == SQLITE_ROW) {
    if (static_cast<int>(page.entries.size()) == count) {
      page.next_cursor = page.entries.back().seq;
      break;
    }
    PV_ASSIGN_OR_RETURN(HistoryEntry e, EntryFromRow(conn, q));
    page.entries.push_back(std::move(e));
  }
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return SqliteError(conn.db(), rc, "read history");
  for (auto& e : page.entries) {
    PV_ASSIGN_OR_RETURN(e.version.patients, PatientsOf(conn, e.seq));
  }
  return page;
}

StatusOr<HistoryEntry> SqliteStore::EntryFromRow(Connection& conn, Statement& q) {
  HistoryEntry e;
  e.seq = q.Int(0);
  e.version.type = q.Text(1);
  e.version.id = q.Text(2);
  e.version.version = q.Int(3);
  e.version.last_updated_ms = q.Int(4);
  e.version.deleted = q.Int(5) != 0;
  e.version.author = q.Text(8);
  e.version.security_labels = q.Text(9);
  if (!e.version.deleted) {
    PV_ASSIGN_OR_RETURN(e.version.json,
                        OpenBody(conn, e.version.type, e.version.id, e.version.version, q.Text(6), q.Blob(7)));
  }
  return e;
}

StatusOr<CompartmentPage> SqliteStore::Compartment(const CompartmentQuery& query) {
  PV_ASSIGN_OR_RETURN(auto lease, AcquireReader());
  Connection& conn = **lease;
  PV_RETURN_IF_ERROR(conn.Exec("BEGIN"));  // one snapshot for the rows and their patient links
  auto result = [&]() -> StatusOr<CompartmentPage> {
    size_t count = static_cast<size_t>(std::clamp(query.count, 1, 1000));
    // The patient link's primary key (patient_id, seq) drives the scan; the
    // joins are key lookups that keep only current, live versions.
    PV_STMT(q, conn,
            "SELECT rv.seq, rv.type, rv.id, rv.version, rv.last_updated, rv.deleted, rv.key_owner, rv.body, "
            "rv.author, rv.labels FROM resource_patients rp "
            "CROSS JOIN resource_versions rv ON rv.seq = rp.seq "
            "CROSS JOIN current_versions cv ON cv.type = rv.type AND cv.id = rv.id "
            "WHERE rp.patient_id = ?1 AND rp.seq > ?2 AND cv.seq = rp.seq AND cv.deleted = 0 "
            "AND rv.last_updated >= ?3 ORDER BY rp.seq");
    q.Bind(1, query.patient_id).Bind(2, query.after_cursor).Bind(3, query.since_ms);
    CompartmentPage page;
    int rc;
    while ((rc = q.Step()) == SQLITE_ROW) {
      if (!query.types.empty() &&
          std::find(query.types.begin(), query.types.end(), q.Text(1)) == query.types.end()) {
        continue;  // filtered before its body is opened
      }
      if (page.entries.size() == count) {
        page.next_cursor = page.entries.back().seq;
        break;
      }
      PV_ASSIGN_OR_RETURN(HistoryEntry e, EntryFromRow(conn, q));
      page.entries.push_back(std::move(e));
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return SqliteError(conn.db(), rc, "read compartment");
    for (auto& e : page.entries) {
      PV_ASSIGN_OR_RETURN(e.version.patients, PatientsOf(conn, e.seq));
    }
    return page;
  }();
  conn.Commit().IgnoreError();
  return result;
}

void SqliteStore::Commit(std::vector<WriteOp> ops, bool atomic, CommitCallback done, AuditRecordBuilder audit) {
  std::vector<sqlite_search::PreparedRows> prepared(ops.size());
  std::vector<body::PreparedBody> bodies(ops.size());
  for (size_t i = 0; i < ops.size(); ++i) {
    if (ops[i].kind == WriteOp::Kind::kDelete) continue;
    // InsertVersion sets the same id; set here so `_id` rows can be prepared.
    ops[i].resource["id"] = ops[i].id;
    prepared[i] = sqlite_search::PreparedRows::Extract(ops[i].type, ops[i].resource);
    // After Extract: this sets meta placeholders, which the index must not see.
    bodies[i] = body::PreparedBody::Prepare(ops[i].resource, options_.zstd_level);
  }
  {
    std::lock_guard lk(queue_mu_);
    if (!closing_) {
      queue_.push_back(PendingBatch{std::move(ops), atomic, std::move(done), std::move(audit), std::move(prepared),
                                  std::move(bodies)});
      queue_cv_.notify_one();
      return;
    }
  }
  CommitOutcome out;
  out.status = Unavailable("the store is shutting down");
  done(std::move(out));
}

StatusOr<std::vector<PendingAuditRecord>> SqliteStore::PendingAuditRecords() {
  PV_ASSIGN_OR_RETURN(auto lease, AcquireReader());
  PV_STMT(q, **lease, "SELECT id, created, record FROM audit_outbox ORDER BY id");
  std::vector<PendingAuditRecord> out;
  int rc;
  while ((rc = q.Step()) == SQLITE_ROW) out.push_back({q.Int(0), q.Int(1), q.Text(2)});
  if (rc != SQLITE_DONE) return SqliteError((*lease)->db(), rc, "read audit outbox");
  return out;
}

void SqliteStore::AckAuditRecord(int64_t record_id) {
  // After Close() the ack is simply lost: the record is reconciled (and
  // dropped) at the next start.
  std::lock_guard lk(queue_mu_);
  acks_.push_back(record_id);
  // The first ack starts the writer's idle timer; many acks flush at once.
  if (acks_.size() == 1 || acks_.size() >= kMaxPendingAcks) queue_cv_.notify_one();
}

void SqliteStore::WriterLoop() {
  for (;;) {
    std::vector<PendingBatch> group;
    std::vector<int64_t> acks;
    {
      std::unique_lock lk(queue_mu_);
      // Acks alone do not wake the writer at once: they ride along with the
      // next write group, or go in a transaction of their own when many wait
      // or nothing else happens for a while.
      auto ready = [&] { return !queue_.empty() || closing_ || acks_.size() >= kMaxPendingAcks; };
      queue_cv_.wait(lk, [&] { return ready() || !acks_.empty(); });
      if (!ready()) queue_cv_.wait_for(lk, kAckIdleFlush, ready);
      acks.swap(acks_);
      if (queue_.empty()) {
        if (!acks.empty()) {
          lk.unlock();
          std::lock_guard writer_lk(writer_mu_);
          ApplyGroup(group, acks);
          continue;
        }
        if (closing_) return;  // closing and drained
        continue;
      }
      size_t ops = 0;
      while (!queue_.empty() &&
             (group.empty() || ops + queue_.front().ops.size() <= static_cast<size_t>(options_.max_group_ops))) {
        ops += queue_.front().ops.size();
        group.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    {
      std::lock_guard writer_lk(writer_mu_);
      ApplyGroup(group, acks);
    }
    // Only the data goes: callbacks (and what they capture) end here as before.
    std::vector<PendingBatch> spent(group.size());
    for (size_t i = 0; i < group.size(); ++i) {
      spent[i].ops = std::move(group[i].ops);
      spent[i].prepared = std::move(group[i].prepared);
      spent[i].bodies = std::move(group[i].bodies);
    }
    {
      std::lock_guard lk(reap_mu_);
      reap_.push_back(std::move(spent));
    }
    reap_cv_.notify_one();
  }
}

void SqliteStore::ReaperLoop() {
  std::unique_lock lk(reap_mu_);
  for (;;) {
    reap_cv_.wait(lk, [&] { return reap_stop_ || !reap_.empty(); });
    if (reap_.empty() && reap_stop_) return;
    std::vector<std::vector<PendingBatch>> batches;
    batches.swap(reap_);
    lk.unlock();
    batches.clear();
    lk.lock();
  }
}

void SqliteStore::ApplyOpsEachInSavepoint(PendingBatch& batch, std::vector<StatusOr<WriteResult>>* results) {
  for (size_t i = 0; i < batch.ops.size(); ++i) {
    WriteOp& op = batch.ops[i];
    Status sp = writer_->Exec("SAVEPOINT op");
    if (!sp.ok()) {
      results->push_back(sp);
      continue;
    }
    GroupMark mark = Mark();
    auto r = ApplyOp(op, &batch.prepared[i], &batch.bodies[i]);
    if (!r.ok()) {
      writer_->Exec("ROLLBACK TO op").IgnoreError();
      RollBackTo(mark);
    }
    writer_->Exec("RELEASE op").IgnoreError();
    results->push_back(std::move(r));
  }
}

bool SqliteStore::ApplyOpsInBatchSavepoint(PendingBatch& batch, const GroupMark& batch_mark,
                                           std::vector<StatusOr<WriteResult>>* results) {
  // A nested savepoint per op makes SQLite journal again every page the op
  // touches that the batch already touched (about one page per B-tree: the
  // version, its links and each search index tree), which was most of an
  // import's cost. Ops that fail almost always fail before writing
  // (preconditions, conflicts); such a failure changed no row and leaves
  // nothing to undo. A failure that did change rows (a storage error
  // mid-write) undoes the whole batch so the caller can redo it op by op.
  for (size_t i = 0; i < batch.ops.size(); ++i) {
    GroupMark mark = Mark();
    const int64_t changes_before = sqlite3_total_changes64(writer_->db());
    auto r = ApplyOp(batch.ops[i], &batch.prepared[i], &batch.bodies[i]);
    if (!r.ok()) {
      RollBackTo(mark);
      if (sqlite3_total_changes64(writer_->db()) != changes_before) {
        writer_->Exec("ROLLBACK TO batch").IgnoreError();
        RollBackTo(batch_mark);
        results->clear();
        return false;
      }
    }
    results->push_back(std::move(r));
  }
  return true;
}

Status SqliteStore::StoreAuditRecord(PendingBatch& batch, CommitOutcome& out) {
  int64_t id = last_audit_record_id_ + 1;
  std::string record = batch.audit(out, id);
  if (record.size() > options_.max_audit_record_bytes) {
    // Checked before anything commits: a record the audit log would refuse
    // leaves a write that can never be audited.
    const size_t size = record.size();
    SecureWipe(record.data(), record.size());
    return Status(StatusCode::kTooLarge, "the request touches too much for one audit entry (" +
                                             std::to_string(size) + " bytes, at most " +
                                             std::to_string(options_.max_audit_record_bytes) +
                                             "); split it into smaller requests");
  }
  last_audit_record_id_ = id;
  PV_STMT(ins, *writer_, "INSERT INTO audit_outbox(id, created, record) VALUES (?1, ?2, ?3)");
  ins.Bind(1, id).Bind(2, group_time_ms_).Bind(3, record);
  if (int rc = ins.Step(); rc != SQLITE_DONE) return SqliteError(writer_->db(), rc, "store audit record");
  out.audit_record_id = id;
  out.audit_record = std::move(record);
  return Status::Ok();
}

void SqliteStore::ApplyGroup(std::vector<PendingBatch>& group, std::vector<int64_t>& acks) {
  std::vector<CommitOutcome> outcomes(group.size());
  group_new_keys_.clear();
  group_new_key_order_.clear();
  group_versions_.clear();
  // Monotonic per group: every write in a group shares one lastUpdated.
  group_time_ms_ = std::max(fhir::NowMillis(), last_group_time_ms_);
  group_time_text_ = fhir::FormatInstant(group_time_ms_);
  auto keep_acks = [&] {
    std::lock_guard lk(queue_mu_);
    acks_.insert(acks_.end(), acks.begin(), acks.end());
  };
  Status begin = writer_->Exec("BEGIN IMMEDIATE");
  if (!begin.ok()) {
    keep_acks();
    for (size_t i = 0; i < group.size(); ++i) {
      outcomes[i].status = begin;
      group[i].done(std::move(outcomes[i]));
    }
    return;
  }
  for (int64_t id : acks) {
    auto del = writer_->Prepare("DELETE FROM audit_outbox WHERE id = ?1");
    if (!del.ok()) break;
    Statement d(*del);
    d.Bind(1, id);
    if (d.Step() != SQLITE_DONE) break;  // left for the next start to reconcile
  }
  Status group_failure;  // a failure that must take the whole group back
  for (size_t b = 0; b < group.size(); ++b) {
    PendingBatch& batch = group[b];
    CommitOutcome& out = outcomes[b];
    out.results.reserve(batch.ops.size());
    if (batch.atomic) {
      Status sp = writer_->Exec("SAVEPOINT batch");
      if (!sp.ok()) {
        out.status = sp;
        continue;
      }
      Status failed;
      GroupMark mark = Mark();
      for (size_t i = 0; i < batch.ops.size(); ++i) {
        auto r = ApplyOp(batch.ops[i], &batch.prepared[i], &batch.bodies[i]);
        if (!r.ok() && failed.ok()) failed = r.status();
        out.results.push_back(std::move(r));
        if (!failed.ok()) break;
      }
      if (failed.ok() && batch.audit) failed = StoreAuditRecord(batch, out);
      if (!failed.ok()) {
        out.audit_record_id = 0;
        out.audit_record.clear();
        writer_->Exec("ROLLBACK TO batch").IgnoreError();
        RollBackTo(mark);
        out.status = failed;
      }
      writer_->Exec("RELEASE batch").IgnoreError();
    } else {
      // Non-atomic ops stand alone, but all of them stand or fall with the
      // batch's audit record: nothing is stored unaudited.
      GroupMark batch_mark = Mark();
      if (batch.audit) {
        if (Status sp = writer_->Exec("SAVEPOINT batch"); !sp.ok()) {
          out.status = sp;
          continue;
        }
      }
      if (!batch.audit || !ApplyOpsInBatchSavepoint(batch, batch_mark, &out.results)) {
        ApplyOpsEachInSavepoint(batch, &out.results);
      }
      if (batch.audit) {
        Status a = StoreAuditRecord(batch, out);
        if (a.code() == StatusCode::kTooLarge) {
          // This batch alone goes back; the others in the group stand.
          writer_->Exec("ROLLBACK TO batch").IgnoreError();
          RollBackTo(batch_mark);
          out.status = a;
          for (auto& r : out.results) {
            if (r.ok()) r = a;
          }
        } else if (!a.ok() && group_failure.ok()) {
          // A record that cannot be stored (a storage error) takes the whole
          // group back below: nothing is committed unaudited.
          group_failure = a;
        }
        writer_->Exec("RELEASE batch").IgnoreError();
      }
    }
  }
  Status commit = group_failure.ok() ? writer_->Commit() : group_failure;
  if (!commit.ok()) {
    writer_->Exec("ROLLBACK").IgnoreError();
    log::Error("store.commit_failed", {{"error", commit.message()}, {"action", "check disk space and the data directory"}});
    // Not ready until a later commit succeeds: /readyz tells load balancers.
    healthy_.store(false);
    for (auto& out : outcomes) {
      out.status = commit;
      out.results.clear();
      out.audit_record_id = 0;
      out.audit_record.clear();
    }
    keep_acks();
    group_new_keys_.clear();
    group_new_key_order_.clear();
    group_versions_.clear();
  } else {
    healthy_.store(true);
    group_commits_.fetch_add(1, std::memory_order_relaxed);
    for (const auto& b : group) committed_ops_.fetch_add(static_cast<int64_t>(b.ops.size()), std::memory_order_relaxed);
    last_group_time_ms_ = group_time_ms_;
    // Before any callback acknowledges a write, so no later read misses it.
    for (auto& v : group_versions_) {
      std::string key = VersionCache::Key(v->type, v->id);  // before v is moved from
      cache_.Put(key, std::move(v), true);
    }
    group_versions_.clear();
    for (auto& [owner, key] : group_new_keys_) key_cache_.Put(owner, key);
    group_new_keys_.clear();
    group_new_key_order_.clear();
  }
  for (size_t i = 0; i < group.size(); ++i) group[i].done(std::move(outcomes[i]));
}

StatusOr<std::vector<std::string>> SqliteStore::FindExisting(const std::string& type, const ExistCondition& cond) {
  std::vector<std::string> ids;
  if (cond.query) {
    SearchQuery q = *cond.query;
    q.type = type;
    q.sort.clear();
    q.after.clear();
    q.backward = false;
    // This search runs on the writer, which every write waits for: its own,
    // small budget (a copied pointer from the request must never be used
    // on this thread). An If-None-Exist that no index narrows fails its
    // write with "too costly" instead of stalling the others.
    SearchBudget budget{cond.work_units};
    q.budget = &budget;
    // Three tell "one" from "several" when every match counts; a
    // visibility filter may have to skip hidden ones.
    const int limit = cond.visible ? kMaxConditionMatches : 3;
    PV_ASSIGN_OR_RETURN(auto matches, sqlite_search::FindMatches(writer_->db(), q, limit));
    for (auto& m : matches) ids.push_back(std::move(m.id));
    return ids;
  }
  if (!cond.id.empty()) {
    PV_ASSIGN_OR_RETURN(auto cur, CurrentOf(*writer_, type, cond.id));
    if (!cur || cur->deleted) return ids;
    if (cond.identifier_value.empty()) {
      ids.push_back(cond.id);
      return ids;
    }
  }
  if (!cond.identifier_value.empty()) {
    const char* sql = cond.identifier_system
                          ? "SELECT DISTINCT id FROM identifiers WHERE type = ?1 AND value = ?2 AND system = ?3 LIMIT ?4"
                          : "SELECT DISTINCT id FROM identifiers WHERE type = ?1 AND value = ?2 AND ?3 = '' LIMIT ?4";
    PV_STMT(q, *writer_, sql);
    q.Bind(1, type).Bind(2, cond.identifier_value).Bind(3, cond.identifier_system.value_or(""));
    q.Bind(4, int64_t{cond.visible ? kMaxConditionMatches : 3});
    int rc;
    while ((rc = q.Step()) == SQLITE_ROW) {
      std::string id = q.Text(0);
      if (cond.id.empty() || id == cond.id) ids.push_back(std::move(id));
    }
    if (rc != SQLITE_DONE) return SqliteError(writer_->db(), rc, "search identifiers");
  }
  return ids;
}

StatusOr<WriteResult> SqliteStore::ApplyOp(WriteOp& op, const sqlite_search::PreparedRows* prepared,
                                           const body::PreparedBody* prepared_body) {
  WriteResult result;
  result.type = op.type;
  result.id = op.id;
  if (op.kind == WriteOp::Kind::kCreate && op.if_none_exist) {
    PV_ASSIGN_OR_RETURN(auto matches, FindExisting(op.type, *op.if_none_exist));
    std::optional<ResourceVersion> match;
    int counted = 0;
    for (const std::string& id : matches) {
      PV_ASSIGN_OR_RETURN(auto cur, CurrentOf(*writer_, op.type, id));
      if (!cur || cur->deleted) continue;
      PV_ASSIGN_OR_RETURN(ResourceVersion v, LoadVersion(*writer_, cur->seq, op.type, id));
      if (op.if_none_exist->visible && !op.if_none_exist->visible(v)) continue;
      if (++counted == 1) match = std::move(v);
    }
    if (counted > 1) {
      return Status(StatusCode::kPreconditionFailed, "If-None-Exist matched more than one resource");
    }
    if (match) {
      ResourceVersion& v = *match;
      result.id = v.id;
      result.version = v.version;
      result.last_updated_ms = v.last_updated_ms;
      result.json = std::move(v.json);
      result.patients = std::move(v.patients);
      result.no_op = true;
      return result;
    }
  }
  // Before any row is written: a refused op then leaves nothing to undo.
  if (op.kind != WriteOp::Kind::kDelete && prepared) PV_RETURN_IF_ERROR(prepared->status());
  PV_ASSIGN_OR_RETURN(std::optional<Current> cur, CurrentOf(*writer_, op.type, op.id));
  if (op.if_match_version && (!cur || cur->deleted || cur->version != *op.if_match_version)) {
    return Status(StatusCode::kPreconditionFailed, "version conflict: If-Match does not name the current version");
  }
  switch (op.kind) {
    case WriteOp::Kind::kCreate:
      if (cur) return Status(StatusCode::kConflict, "a resource with this id already exists");
      result.created = true;
      PV_RETURN_IF_ERROR(InsertVersion(op, 1, false, &result, prepared, prepared_body));
      return result;
    case WriteOp::Kind::kPut:
      result.created = !cur || cur->deleted;
      if (cur) result.prior_version = cur->version;
      PV_RETURN_IF_ERROR(InsertVersion(op, cur ? cur->version + 1 : 1, false, &result, prepared, prepared_body));
      return result;
    case WriteOp::Kind::kDelete:
      if (!cur || cur->deleted) {
        result.no_op = true;
        if (cur) result.version = cur->version;
        return result;
      }
      // The tombstone keeps the patient link of what it deletes, so history,
      // access control and audit can still tell whose record it was.
      PV_ASSIGN_OR_RETURN(op.patients, PatientsOf(*writer_, cur->seq));
      result.prior_version = cur->version;
      PV_RETURN_IF_ERROR(InsertVersion(op, cur->version + 1, true, &result, prepared, prepared_body));
      return result;
  }
  return Internal("unknown write kind");
}

Status SqliteStore::InsertVersion(WriteOp& op, int64_t version, bool deleted, WriteResult* result,
                                  const sqlite_search::PreparedRows* prepared,
                                  const body::PreparedBody* prepared_body) {
  const std::string owner = op.patients.empty() ? std::string() : op.patients.front();
  std::string sealed;
  if (!deleted) {
    op.resource["id"] = op.id;
    const std::string version_id = std::to_string(version);
    const std::string& last_updated = group_time_text_;
    body::SetMeta(op.resource, version_id, last_updated);
    std::string envelope;
    if (prepared_body && prepared_body->usable()) {
      prepared_body->Finish(version_id, last_updated, &result->json, &envelope);
    } else {
      result->json = boost::json::serialize(op.resource);
      PV_ASSIGN_OR_RETURN(envelope, body::Encode(result->json, options_.zstd_level));
    }
    PV_ASSIGN_OR_RETURN(auto key, KeyForWrite(owner));
    sealed = key->Seal(envelope, BodyAad(op.type, op.id, version, owner));
    SecureWipe(envelope.data(), envelope.size());
  }
  PV_STMT(ins, *writer_,
          "INSERT INTO resource_versions(type, id, version, last_updated, deleted, key_owner, body, author, labels) "
          "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
  ins.Bind(1, op.type).Bind(2, op.id).Bind(3, version).Bind(4, group_time_ms_).Bind(5, int64_t{deleted ? 1 : 0});
  ins.Bind(6, owner);
  if (deleted) {
    ins.BindNull(7);
  } else {
    ins.BindBlob(7, sealed);
  }
  ins.Bind(8, op.author);
  ins.Bind(9, deleted ? std::string() : SecurityLabelsOf(op.resource));
  if (int rc = ins.Step(); rc != SQLITE_DONE) return SqliteError(writer_->db(), rc, "insert version");
  int64_t seq = sqlite3_last_insert_rowid(writer_->db());

  for (const std::string& p : op.patients) {
    PV_STMT(link, *writer_, "INSERT INTO resource_patients(patient_id, seq) VALUES (?1, ?2)");
    link.Bind(1, p).Bind(2, seq);
    if (int rc = link.Step(); rc != SQLITE_DONE) return SqliteError(writer_->db(), rc, "insert patient link");
  }
  if (version > 1) {
    // The replaced version leaves the search index in this transaction.
    PV_ASSIGN_OR_RETURN(std::optional<Current> prior, CurrentOf(*writer_, op.type, op.id));
    if (prior) PV_RETURN_IF_ERROR(index_->Remove(prior->seq));
  }
  if (!deleted) PV_RETURN_IF_ERROR(index_->Add(op.type, seq, op.resource, prepared));
  {
    PV_STMT(cur, *writer_,
            "INSERT INTO current_versions(type, id, version, deleted, seq) VALUES (?1, ?2, ?3, ?4, ?5) "
            "ON CONFLICT(type, id) DO UPDATE SET version = excluded.version, deleted = excluded.deleted, "
            "seq = excluded.seq");
    cur.Bind(1, op.type).Bind(2, op.id).Bind(3, version).Bind(4, int64_t{deleted ? 1 : 0}).Bind(5, seq);
    if (int rc = cur.Step(); rc != SQLITE_DONE) return SqliteError(writer_->db(), rc, "update current version");
  }
  if (version > 1) {
    PV_STMT(del, *writer_, "DELETE FROM identifiers WHERE type = ?1 AND id = ?2");
    del.Bind(1, op.type).Bind(2, op.id);
    if (int rc = del.Step(); rc != SQLITE_DONE) return SqliteError(writer_->db(), rc, "update identifier index");
  }
  if (!deleted) {
    for (const auto& [system, value] : Identifiers(op.resource)) {
      PV_STMT(idx, *writer_, "INSERT OR IGNORE INTO identifiers(type, value, system, id) VALUES (?1, ?2, ?3, ?4)");
      idx.Bind(1, op.type).Bind(2, value).Bind(3, system).Bind(4, op.id);
      if (int rc = idx.Step(); rc != SQLITE_DONE) return SqliteError(writer_->db(), rc, "update identifier index");
    }
  }
  result->version = version;
  result->last_updated_ms = group_time_ms_;
  result->patients = op.patients;
  auto cached = std::make_shared<ResourceVersion>();
  cached->type = op.type;
  cached->id = op.id;
  cached->version = version;
  cached->last_updated_ms = group_time_ms_;
  cached->deleted = deleted;
  cached->json = result->json;
  cached->patients = op.patients;
  cached->author = op.author;
  cached->security_labels = deleted ? std::string() : SecurityLabelsOf(op.resource);
  group_versions_.push_back(std::move(cached));
  return Status::Ok();
}

StoreStats SqliteStore::Stats() {
  StoreStats s;
  s.group_commits = group_commits_.load(std::memory_order_relaxed);
  s.committed_ops = committed_ops_.load(std::memory_order_relaxed);
  auto lease = AcquireReader();
  if (!lease.ok()) return s;
  Connection& conn = ***lease;
  auto count = [&](const char* sql) -> int64_t {
    auto st = conn.Prepare(sql);
    if (!st.ok()) return -1;
    Statement q(*st);
    return q.Step() == SQLITE_ROW ? q.Int(0) : -1;
  };
  s.versions = count("SELECT COALESCE(MAX(seq), 0) FROM resource_versions");
  s.patients_with_keys = count("SELECT COUNT(*) FROM patient_keys");
  s.cached_patient_keys = static_cast<int64_t>(key_cache_.size());
  struct stat st;
  if (::stat(db_path_.c_str(), &st) == 0) s.file_bytes = st.st_size;
  std::string wal = db_path_ + "-wal";
  if (::stat(wal.c_str(), &st) == 0) s.file_bytes += st.st_size;
  return s;
}

void SqliteStore::Close() {
  std::call_once(close_once_, [this] {
    {
      std::lock_guard lk(queue_mu_);
      closing_ = true;
    }
    queue_cv_.notify_all();
    if (writer_thread_.joinable()) writer_thread_.join();
    {
      std::lock_guard lk(reap_mu_);
      reap_stop_ = true;
    }
    reap_cv_.notify_all();
    if (reaper_thread_.joinable()) reaper_thread_.join();
    {
      std::lock_guard lk(checkpoint_mu_);
      checkpoint_stop_ = true;
    }
    checkpoint_cv_.notify_all();
    if (checkpoint_thread_.joinable()) checkpoint_thread_.join();
    checkpointer_.reset();
    {
      std::lock_guard lk(pool_mu_);
      idle_readers_.clear();
    }
    std::lock_guard writer_lk(writer_mu_);  // bulk-load calls racing Close find it closed
    index_.reset();
    if (writer_) {
      // Fold the WAL into the database so a stopped vault is one file.
      writer_->Exec("PRAGMA wal_checkpoint(TRUNCATE);").IgnoreError();
      writer_.reset();
    }
  });
}

}  // namespace

CommitOutcome ResourceStore::CommitAndWait(std::vector<WriteOp> ops, bool atomic) {
  std::mutex mu;
  std::condition_variable cv;
  std::optional<CommitOutcome> result;
  Commit(std::move(ops), atomic, [&](CommitOutcome out) {
    std::lock_guard lk(mu);
    result = std::move(out);
    cv.notify_one();
  });
  std::unique_lock lk(mu);
  cv.wait(lk, [&] { return result.has_value(); });
  return std::move(*result);
}

StatusOr<std::unique_ptr<ResourceStore>> OpenSqliteStore(const SqliteStoreOptions& options,
                                                         const crypto::Keyring* keyring) {
  auto store = std::make_unique<SqliteStore>(options, keyring);
  Status s = store->Init();
  if (!s.ok()) {
    store->Close();
    return s;
  }
  return std::unique_ptr<ResourceStore>(std::move(store));
}

}  // namespace phivault::store
