#include "store/audit_index.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include <algorithm>
#include <mutex>
#include <tuple>
#include <utility>

#include "crypto/aead.h"
#include "store/encrypted_vfs.h"
#include "store/sqlite_store.h"
#include "store/sqlite_util.h"

namespace phivault::store {
namespace {

// PRAGMA user_version of the current layout. The first release left it at 0
// and indexed patients only, in `patient_entries`; its coverage says nothing
// about agents, so such a file (or any other version) is emptied and
// rebuilt. 1 is never used.
constexpr int kLayoutVersion = 2;

constexpr const char* kSchema = R"sql(
DROP TABLE IF EXISTS patient_entries;
DROP TABLE IF EXISTS postings;
DROP TABLE IF EXISTS coverage;
CREATE TABLE coverage (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  through INTEGER NOT NULL,
  root BLOB NOT NULL
);
CREATE TABLE postings (
  kind INTEGER NOT NULL,
  value TEXT NOT NULL,
  entry INTEGER NOT NULL,
  PRIMARY KEY (kind, value, entry)
) WITHOUT ROWID;
)sql";

Status SqlError(int rc, std::string_view what) { return sqlite::Error(rc, kAuditIndexFileName, what); }

class Stmt : public sqlite::Statement {
 public:
  Status Prepare(sqlite3* db, const char* sql) { return Statement::Prepare(db, sql, kAuditIndexFileName); }
};

Status Exec(sqlite3* db, const char* sql) { return sqlite::Exec(db, sql, kAuditIndexFileName); }

template <typename F>
Status InTransaction(sqlite3* db, F&& body) {
  return sqlite::InTransaction(db, kAuditIndexFileName, std::forward<F>(body));
}

// Two connections: lookups (an access report waiting on a network thread)
// read through their own, which WAL never blocks, while the low-priority
// follower's batch transaction runs on the other.
class SqliteAuditIndex final : public AuditIndex {
 public:
  SqliteAuditIndex(sqlite3* writer, sqlite3* reader) : writer_(writer), reader_(reader) {}
  ~SqliteAuditIndex() override {
    sqlite3_close_v2(reader_);
    sqlite3_close_v2(writer_);
  }

  // Creates the tables, or replaces those of another layout version.
  Status CreateSchema() {
    std::lock_guard<std::mutex> lock(write_mu_);
    Stmt q;
    PV_RETURN_IF_ERROR(q.Prepare(writer_, "PRAGMA user_version"));
    if (int rc = q.Step(); rc != SQLITE_ROW) return SqlError(rc, "read layout version");
    const int64_t version = q.Int(0);
    q.Reset();
    if (version == kLayoutVersion) return Status::Ok();
    const std::string set_version = "PRAGMA user_version = " + std::to_string(kLayoutVersion) + ";";
    // secure_delete would overwrite every page of the old tables, delaying
    // this one start by a full rewrite of the file. It protects nothing
    // here: the index is derived from the audit log, which keeps every
    // entry it was built from.
    PV_RETURN_IF_ERROR(Exec(writer_, "PRAGMA secure_delete=OFF;"));
    Status replaced = InTransaction(writer_, [&]() -> Status {
      PV_RETURN_IF_ERROR(Exec(writer_, kSchema));
      return Exec(writer_, set_version.c_str());
    });
    Status restored = Exec(writer_, "PRAGMA secure_delete=ON;");
    return replaced.ok() ? restored : replaced;
  }

  StatusOr<AuditIndexCoverage> Coverage() override {
    std::lock_guard<std::mutex> lock(write_mu_);
    return CoverageOf(writer_);
  }

  Status Extend(uint64_t from, const AuditIndexCoverage& next, const std::vector<AuditPosting>& postings) override {
    if (from >= next.through) return InvalidArgument("audit index: empty or backwards range");
    for (const AuditPosting& p : postings) {
      if (p.entry < from || p.entry >= next.through) return InvalidArgument("audit index: posting outside its range");
    }
    // Inserted in key order: a batch's postings then walk the B-tree once,
    // instead of jumping between hundreds of patients and agents (in log
    // order each insert missed the page cache and spilled dirty pages).
    std::vector<const AuditPosting*> sorted;
    sorted.reserve(postings.size());
    for (const AuditPosting& p : postings) sorted.push_back(&p);
    std::sort(sorted.begin(), sorted.end(), [](const AuditPosting* a, const AuditPosting* b) {
      return std::tie(a->kind, a->value, a->entry) < std::tie(b->kind, b->value, b->entry);
    });
    std::lock_guard<std::mutex> lock(write_mu_);
    return InTransaction(writer_, [&]() -> Status {
      PV_ASSIGN_OR_RETURN(AuditIndexCoverage now, CoverageOf(writer_));
      if (now.through != from) return Status(StatusCode::kConflict, "audit index: coverage moved");
      Stmt ins;
      PV_RETURN_IF_ERROR(
          ins.Prepare(writer_, "INSERT OR IGNORE INTO postings(kind, value, entry) VALUES (?1, ?2, ?3)"));
      for (const AuditPosting* p : sorted) {
        ins.Bind(1, static_cast<int64_t>(p->kind)).Bind(2, p->value).Bind(3, static_cast<int64_t>(p->entry));
        if (int rc = ins.Step(); rc != SQLITE_DONE) return SqlError(rc, "insert posting");
        ins.Reset();
      }
      Stmt cov;
      PV_RETURN_IF_ERROR(cov.Prepare(writer_, "INSERT OR REPLACE INTO coverage(id, through, root) VALUES (1, ?1, ?2)"));
      cov.Bind(1, static_cast<int64_t>(next.through)).BindBlob(2, next.root);
      if (int rc = cov.Step(); rc != SQLITE_DONE) return SqlError(rc, "update coverage");
      return Status::Ok();
    });
  }

  Status Reset() override {
    std::lock_guard<std::mutex> lock(write_mu_);
    return InTransaction(writer_, [&] { return Exec(writer_, "DELETE FROM postings; DELETE FROM coverage;"); });
  }

  StatusOr<std::vector<uint64_t>> EntriesFor(AuditKey kind, std::string_view value, uint64_t start, uint64_t end,
                                             size_t limit) override {
    std::vector<uint64_t> out;
    if (start >= end || limit == 0) return out;
    std::lock_guard<std::mutex> lock(read_mu_);
    Stmt q;
    PV_RETURN_IF_ERROR(q.Prepare(reader_,
                                 "SELECT entry FROM postings WHERE kind = ?1 AND value = ?2 AND entry >= ?3 "
                                 "AND entry < ?4 ORDER BY entry LIMIT ?5"));
    // Indices are below 2^63 (a log of that many entries does not exist), so
    // the signed bind is exact.
    q.Bind(1, static_cast<int64_t>(kind))
        .Bind(2, value)
        .Bind(3, static_cast<int64_t>(start))
        .Bind(4, static_cast<int64_t>(std::min<uint64_t>(end, INT64_MAX)))
        .Bind(5, static_cast<int64_t>(std::min<size_t>(limit, INT64_MAX)));
    int rc;
    while ((rc = q.Step()) == SQLITE_ROW) out.push_back(static_cast<uint64_t>(q.Int(0)));
    if (rc != SQLITE_DONE) return SqlError(rc, "lookup");
    return out;
  }

 private:
  static StatusOr<AuditIndexCoverage> CoverageOf(sqlite3* db) {
    Stmt q;
    PV_RETURN_IF_ERROR(q.Prepare(db, "SELECT through, root FROM coverage WHERE id = 1"));
    AuditIndexCoverage c;
    const int rc = q.Step();
    if (rc == SQLITE_ROW) {
      if (q.Int(0) < 0) return DataLoss("audit index: negative coverage");
      c.through = static_cast<uint64_t>(q.Int(0));
      c.root = q.Blob(1);
    } else if (rc != SQLITE_DONE) {
      return SqlError(rc, "read coverage");
    }
    return c;
  }

  std::mutex write_mu_, read_mu_;
  sqlite3* const writer_;
  sqlite3* const reader_;
};

// Opens one connection through the encrypting VFS and checks its key. On
// failure *db is closed and null.
Status OpenConnection(const std::string& path, const std::string& vfs_name, sqlite3** db) {
  const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_PRIVATECACHE;
  int rc = sqlite3_open_v2(path.c_str(), db, flags, vfs_name.c_str());
  Status s;
  if (rc != SQLITE_OK) {
    if (*db != nullptr) rc = sqlite3_extended_errcode(*db);
    s = SqlError(rc, "open");
  } else {
    sqlite3_extended_result_codes(*db, 1);
    sqlite3_busy_timeout(*db, 5000);
    s = PrepareEncryptedDatabase(*db);
    if (s.ok()) {
      s = Exec(*db,
               "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA temp_store=MEMORY; "
               "PRAGMA mmap_size=0; PRAGMA secure_delete=ON;");
    }
  }
  if (!s.ok()) {
    sqlite3_close_v2(*db);
    *db = nullptr;
  }
  return s;
}

}  // namespace

StatusOr<std::unique_ptr<AuditIndex>> OpenAuditIndex(const std::string& dir, const crypto::Keyring& keyring) {
  PV_ASSIGN_OR_RETURN(std::unique_ptr<crypto::Aead> page_aead,
                      crypto::Aead::New(keyring.Key(crypto::KeyPurpose::kStorage)));
  const std::string vfs_name = VaultVfsName(keyring.vault_id());
  PV_RETURN_IF_ERROR(RegisterEncryptedVfs(vfs_name, std::shared_ptr<const crypto::Aead>(std::move(page_aead))));
  const std::string path = dir + "/" + kAuditIndexFileName;
  struct stat st;
  const bool existed = ::stat(path.c_str(), &st) == 0;
  sqlite3* writer = nullptr;
  PV_RETURN_IF_ERROR(OpenConnection(path, vfs_name, &writer));
  if (!existed) ::chmod(path.c_str(), 0600);
  sqlite3* reader = nullptr;
  if (Status s = OpenConnection(path, vfs_name, &reader); !s.ok()) {
    sqlite3_close_v2(writer);
    return s;
  }
  auto index = std::make_unique<SqliteAuditIndex>(writer, reader);  // owns both from here
  PV_RETURN_IF_ERROR(index->CreateSchema());
  return std::unique_ptr<AuditIndex>(std::move(index));
}

}  // namespace phivault::store
