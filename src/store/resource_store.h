// ResourceStore: the storage engine interface behind the FHIR API.
//
// A store keeps every version of every resource, append-only: a write adds a
// version, a delete adds a tombstone, and nothing stored is ever overwritten.
// Each version records the patients whose compartment it belongs to (the
// patient link, computed once by the caller from the official Patient
// CompartmentDefinition) and its body is sealed with that patient's data key.
//
// Writes are asynchronous: Commit() queues them for a single writer thread
// that applies many callers' batches in one database transaction and one
// fsync (group commit), then calls each `done` callback. A callback that sees
// success may acknowledge the write: it is durable. Reads are synchronous and
// may run on any thread concurrently with writes.
//
// Engine specifics (SQL, files, pragmas) stay behind this interface so a
// PostgreSQL engine can implement it later.
//
// Thread-safety: every method is safe to call from any thread.
// Lifetime: Close() (or destruction) drains queued writes first.
#ifndef PHIVAULT_STORE_RESOURCE_STORE_H_
#define PHIVAULT_STORE_RESOURCE_STORE_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <boost/json/object.hpp>

#include "common/status.h"
#include "store/search_query.h"

namespace phivault::store {

// One stored version. `json` is the plaintext resource (with meta.versionId
// and meta.lastUpdated set) and is empty for a tombstone.
struct ResourceVersion {
  std::string type;
  std::string id;
  int64_t version = 0;
  int64_t last_updated_ms = 0;
  bool deleted = false;
  std::string json;
  // The patient link recorded at write time (sorted, unique).
  std::vector<std::string> patients;
  // Who wrote this version (an opaque principal reference such as
  // "Device/monitor-1"); empty for imports. Devices may read back only
  // what they wrote.
  std::string author;
  // meta.security of this version as a JSON array text ("" if none), kept
  // beside the body so access decisions need not parse the body.
  std::string security_labels;
};

// A condition evaluated inside the write transaction (If-None-Exist): the
// logical id and identifier system|value, or (when `query` is set) any
// search conditions on the written type, which the store evaluates against
// its index in the same transaction, so two racing creates cannot both
// miss each other.
struct ExistCondition {
  std::string id;                 // _id=..., empty if unused
  std::optional<std::string> identifier_system;  // nullopt: any system; "": no system
  std::string identifier_value;   // identifier=..., empty if unused
  std::optional<SearchQuery> query;  // when set, the only condition (type filled in by the store)
  // Whether the writer may count a match (If-None-Exist): a match the
  // caller may not see is no match for them, or the answer (created, found,
  // several) would tell them it exists. Null: every match counts. Runs on
  // the writer thread inside the write's transaction; must not block or
  // call into the store. At most kMaxConditionMatches matches are examined.
  std::function<bool(const ResourceVersion&)> visible;
  // The work a `query` condition may do, in SearchBudget units (its
  // query.budget is ignored). It runs on the writer, which every write
  // waits for, so it gets much less than a search request: 10 million
  // SQLite steps. Beyond it the write fails with InvalidArgument ("too
  // costly").
  int64_t work_units = 100000;
};
inline constexpr int kMaxConditionMatches = 64;

struct WriteOp {
  enum class Kind { kCreate, kPut, kDelete };
  Kind kind = Kind::kCreate;
  std::string type;
  std::string id;  // REQUIRES: set by the caller, also for creates (server-assigned)
  // The resource to store (kCreate, kPut). The store sets meta.versionId and
  // meta.lastUpdated; everything else is kept as given.
  boost::json::object resource;
  // Patient ids from the compartment definition; sorted, unique.
  std::vector<std::string> patients;
  // Who is writing (see ResourceVersion::author).
  std::string author;
  // kPut/kDelete: PreconditionFailed unless the current version equals this.
  std::optional<int64_t> if_match_version;
  // kCreate: skip the create and report the match if this finds one resource;
  // PreconditionFailed if it finds several.
  std::optional<ExistCondition> if_none_exist;
};

struct WriteResult {
  std::string type;
  std::string id;
  int64_t version = 0;
  int64_t last_updated_ms = 0;
  bool created = false;   // a new logical resource (201) rather than a new version (200)
  bool no_op = false;     // conditional create matched, or delete of a missing/deleted resource
  std::string json;       // the stored resource as returned to clients; empty for deletes
  int64_t prior_version = 0;          // the version this write replaced (0: none)
  std::vector<std::string> patients;  // the patient link stored with the new version
};

// Per batch: all results (atomic batches), or one Status per op (non-atomic).
struct CommitOutcome {
  Status status;                      // failure of the whole batch (atomic, or commit/fsync failed)
  std::vector<StatusOr<WriteResult>> results;  // one per op, in order
  // When the batch was committed with an AuditRecordBuilder and something was
  // stored: the id and text of the audit record kept with it (see below).
  int64_t audit_record_id = 0;
  std::string audit_record;
};

using CommitCallback = std::function<void(CommitOutcome)>;

// Builds the audit record of a batch from its outcome, on the writer thread,
// inside the batch's transaction and before COMMIT, so it can name the
// versions written. `record_id` is the id the record will have (unique,
// increasing). The store keeps the record in the same transaction as the
// writes (an outbox), so a write and its audit record become durable
// together or not at all. The caller moves the record on to the audit log
// and then acknowledges it (AckAuditRecords); whatever a crash left
// unacknowledged is returned by PendingAuditRecords at the next start.
// Not called for a batch that stores nothing (a failed atomic batch).
// Must not block or call back into the store.
using AuditRecordBuilder = std::function<std::string(const CommitOutcome& outcome, int64_t record_id)>;

struct PendingAuditRecord {
  int64_t id = 0;
  int64_t created_ms = 0;  // commit time of its batch
  std::string record;
};

struct HistoryQuery {
  std::string type;  // empty: whole system
  std::string id;    // empty: whole type
  int64_t before_seq = 0;  // cursor from a previous page; 0 = newest
  int count = 50;
};

struct HistoryEntry {
  ResourceVersion version;
  int64_t seq = 0;
};

struct HistoryPage {
  std::vector<HistoryEntry> entries;  // newest first
  int64_t next_cursor = 0;            // 0: no more pages
};

// One search match and the position just after it (resume there to continue).
struct SearchHit {
  ResourceVersion version;
  std::string position;
};

struct SearchPage {
  std::vector<SearchHit> hits;  // in the query's order
  bool more = false;            // matches exist after the last hit (before the first when backward)
};

// One page of a patient's compartment (Patient/{id}/$everything, export):
// the current, non-deleted version of every resource whose stored patient
// link names the patient, in the order they were last written. The cursor is
// the store's position of the last row examined, so pages stay disjoint and
// complete while writes happen (a resource rewritten after a page was read
// moves behind the cursor and shows up again later, once, as its new version).
struct CompartmentQuery {
  std::string patient_id;          // REQUIRES: non-empty
  std::vector<std::string> types;  // only these types; empty: all
  int64_t since_ms = 0;            // only versions last updated at or after this; 0: all
  int64_t after_cursor = 0;        // cursor of the previous page; 0 = first page
  int count = 50;
};

struct CompartmentPage {
  std::vector<HistoryEntry> entries;  // seq is the cursor position of each entry
  int64_t next_cursor = 0;            // 0: no more pages
};

struct StoreStats {
  int64_t versions = 0;
  int64_t group_commits = 0;  // transactions (fsyncs) since open
  int64_t committed_ops = 0;  // writes applied by those transactions since open
  int64_t patients_with_keys = 0;
  int64_t cached_patient_keys = 0;  // unwrapped in memory now
  int64_t file_bytes = 0;
};

class ResourceStore {
 public:
  virtual ~ResourceStore() = default;

  // The latest version, a tombstone (deleted == true, empty json) included:
  // the caller decides whether the caller may learn it was deleted before
  // answering 410. NotFound if never stored.
  virtual StatusOr<ResourceVersion> Read(const std::string& type, const std::string& id) = 0;
  // One version (tombstones included). NotFound if absent.
  virtual StatusOr<ResourceVersion> ReadVersion(const std::string& type, const std::string& id, int64_t version) = 0;
  virtual StatusOr<HistoryPage> History(const HistoryQuery& query) = 0;
  // See CompartmentQuery.
  virtual StatusOr<CompartmentPage> Compartment(const CompartmentQuery& query) = 0;

  // The current, non-deleted resources matching `query` in its stable order,
  // starting after `query.after`, at most `query.count` of them. The caller
  // authorizes each hit. InvalidArgument for a query the engine cannot
  // evaluate (unknown parameter, malformed position), and "too costly" once
  // `query.budget` (if set) is spent.
  virtual StatusOr<SearchPage> Search(const SearchQuery& query) = 0;

  // Calls `fn` with the current, non-deleted version of every resource of
  // the given types (e.g. to warm the care-relationship index at startup).
  // Stops early and returns fn's error if fn fails.
  virtual Status ForEachCurrent(const std::vector<std::string>& types,
                                const std::function<Status(const ResourceVersion&)>& fn) = 0;

  // Queues a batch of writes. `atomic`: all succeed or none is stored (FHIR
  // transaction); otherwise each op stands alone (FHIR batch, import).
  // `done` runs on the writer thread once the outcome is durable (or failed);
  // it must not block. With `audit_record`, the batch's audit record is
  // stored in the same transaction (see AuditRecordBuilder).
  virtual void Commit(std::vector<WriteOp> ops, bool atomic, CommitCallback done,
                      AuditRecordBuilder audit_record) = 0;
  void Commit(std::vector<WriteOp> ops, bool atomic, CommitCallback done) {
    Commit(std::move(ops), atomic, std::move(done), nullptr);
  }

  // The audit outbox. Records stay until acknowledged; acknowledged records
  // are dropped by a later transaction of the writer.
  virtual StatusOr<std::vector<PendingAuditRecord>> PendingAuditRecords() = 0;
  virtual void AckAuditRecord(int64_t record_id) = 0;

  // Synchronous convenience for tools and tests.
  CommitOutcome CommitAndWait(std::vector<WriteOp> ops, bool atomic);

  // Bulk loading, for a large offline import. Between the two calls the
  // engine may stop maintaining its search lookup structures and build them
  // once in EndBulkLoad by sorting, which costs far less than millions of
  // random inserts into large B-trees. Every write still stores its index
  // rows in its own transaction, so nothing is committed unindexed; searches
  // in between stay correct but may be slow. A bulk load that never reached
  // EndBulkLoad (a crash) is completed when the store next opens.
  // REQUIRES: no Commit is in flight while either runs.
  virtual Status BeginBulkLoad() = 0;
  virtual Status EndBulkLoad() = 0;

  virtual StoreStats Stats() = 0;
  // True while the store can serve; false after a fatal storage error.
  virtual bool Healthy() = 0;
  // Drains queued writes and closes. Idempotent.
  virtual void Close() = 0;
};

}  // namespace phivault::store

#endif  // PHIVAULT_STORE_RESOURCE_STORE_H_
