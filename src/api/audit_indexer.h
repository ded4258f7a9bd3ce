// AuditIndexer: keeps the audit index (store/audit_index.h) caught up with
// the audit log, and tells the audit API which entries touched a patient or
// were made by an agent.
//
// Without it, every page of an access report decrypted the whole log: at a
// few microseconds per entry, a log of a year's accesses took minutes per
// page, on a network thread. With it, a report reads the covered prefix's
// entries for that patient through the index and scans only the entries the
// index has not reached yet. Answers do not change: the caller still parses
// each entry and applies the same filters (audit/query.h), so the index only
// narrows which entries are read. It lists every entry that names the
// patient in its `patients` field, exactly as stored, and skips entries that
// do not parse, as the scans do.
//
// Following: StartFollowing() runs a background thread at nice 19 that
// indexes new durable entries every `period`; after a failed attempt it
// waits twice as long, up to a minute. Indexing costs one decryption and one
// parse per entry, once (4–6 µs on the 2-core benchmark VM). On a machine
// that is never idle the index falls behind, and queries scan more of the
// tail; they stay complete.
//
// Trust: the index is checked against the log at Open(): if it covers more
// entries than the log holds, or the log's Merkle root over the covered
// prefix is not the one the index recorded (a restored, truncated or
// replaced log), it is emptied and rebuilt. An index file that does not
// authenticate is deleted and rebuilt.
//
// Thread-safety: all methods may be called concurrently; CatchUp calls are
// serialized. Lifetime: `log` must outlive the indexer; the destructor stops
// the background thread.
#ifndef PHIVAULT_API_AUDIT_INDEXER_H_
#define PHIVAULT_API_AUDIT_INDEXER_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "audit/audit_log.h"
#include "common/status.h"
#include "crypto/keyring.h"
#include "store/audit_index.h"

namespace phivault::api {

class AuditIndexer {
 public:
  // Opens (or creates, or rebuilds) DATA_DIR's audit index for `log`.
  static StatusOr<std::unique_ptr<AuditIndexer>> Open(const std::string& data_dir, const crypto::Keyring& keyring,
                                                      audit::AuditLog* log);
  ~AuditIndexer();
  AuditIndexer(const AuditIndexer&) = delete;
  AuditIndexer& operator=(const AuditIndexer&) = delete;

  // Indexes at most `max_entries` durable entries past covered(), in
  // batches of at most 10,000 (each one transaction). Returns covered().
  StatusOr<uint64_t> CatchUp(uint64_t max_entries);

  // Entries [0, covered()) are in the index.
  uint64_t covered() const { return covered_.load(std::memory_order_acquire); }

  // The entries in [start, min(end, covered())) that touched `patient`
  // ("Patient/x" or "x"), ascending, at most `limit`.
  StatusOr<std::vector<uint64_t>> EntriesFor(std::string_view patient, uint64_t start, uint64_t end, size_t limit) {
    return EntriesFor(store::AuditKey::kPatient, patient, start, end, limit);
  }
  // The same for any key: for kAgent, the entries whose agent has `value`
  // as its subject, fhirUser, client id or device id.
  StatusOr<std::vector<uint64_t>> EntriesFor(store::AuditKey kind, std::string_view value, uint64_t start,
                                             uint64_t end, size_t limit);

  // Starts the background thread (once; later calls do nothing).
  void StartFollowing(std::chrono::milliseconds period);

 private:
  AuditIndexer(audit::AuditLog* log, std::unique_ptr<store::AuditIndex> index, uint64_t covered)
      : log_(log), index_(std::move(index)), covered_(covered) {}
  Status IndexBatch(uint64_t from, uint64_t to);

  audit::AuditLog* const log_;
  const std::unique_ptr<store::AuditIndex> index_;
  std::atomic<uint64_t> covered_;
  std::mutex catch_up_mu_;
  std::jthread follower_;
};

}  // namespace phivault::api

#endif  // PHIVAULT_API_AUDIT_INDEXER_H_
