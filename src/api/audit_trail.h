// RequestAuditor and AuditTrail: how the API hands each request's audit entry
// to the tamper-evident audit log, and waits for it before answering.
//
// Every request below /fhir and /audit produces exactly one entry, whatever
// its outcome. The FHIR layer fills the entry as it handles the request and
// calls Record() with the response it would send; the response is released
// only once the entry is durable. When the log cannot be written the caller
// answers 503 instead, so nothing leaves unaudited (fail closed).
//
// Writes take another path so that a write and its entry become durable
// together: the entry is built inside the store's write transaction and kept
// in the store's audit outbox (store::AuditRecordBuilder); once the write is
// committed, RecordWrite() appends that same entry to the log and then
// acknowledges it to the store. A crash between the two leaves the record in
// the outbox, and Recover() appends it at the next start unless the log
// already holds it (matched by AuditEntry::write_record). If the append
// fails, the record is retried with the next successful append, and the
// trail reports unhealthy until it lands.
//
// Thread-safety: all methods are safe from any thread. Callbacks run on the
// audit log's writer thread (or the caller's, for immediate failures) and
// must not block. Lifetime: the log and the store must outlive the trail.
#ifndef PHIVAULT_API_AUDIT_TRAIL_H_
#define PHIVAULT_API_AUDIT_TRAIL_H_

#include <atomic>
#include <functional>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "audit/audit_log.h"
#include "audit/entry.h"
#include "common/status.h"
#include "store/account_store.h"
#include "store/resource_store.h"

namespace phivault::api {

// The seam between the API and the audit log. The product has exactly one
// implementation (AuditTrail); the benchmarks supply an unaudited one to
// measure what auditing costs, which the product cannot be configured to use.
class RequestAuditor {
 public:
  using Done = std::function<void(Status)>;
  virtual ~RequestAuditor() = default;
  // Appends `entry`; `done` gets OK once it is durable, else Unavailable.
  virtual void Record(const audit::AuditEntry& entry, Done done) = 0;
  // Appends the entry of a committed write and acknowledges its record to
  // the store once durable. `entry` is the final entry (with the answer's
  // status); `stored_record` is what the store kept (CommitOutcome::
  // audit_record), which is appended instead if `entry` cannot be: the
  // answer is then withheld, and the stored record says no answer was sent.
  virtual void RecordWrite(int64_t record_id, std::string entry, std::string stored_record, Done done) = 0;
  // False while entries cannot be written (or a write record waits for a
  // retry). Calling it while unhealthy also probes the log, so service
  // resumes on its own once the disk works again, even without traffic.
  virtual bool Healthy() = 0;
};

class AuditTrail final : public RequestAuditor {
 public:
  // REQUIRES: log and store outlive the trail.
  AuditTrail(audit::AuditLog* log, store::ResourceStore* store) : log_(log), store_(store) {}

  // Before serving: appends the write records a crash left in the store's
  // outbox and the log does not hold yet, and acknowledges all of them.
  // Returns how many were appended.
  StatusOr<size_t> Recover();

  void Record(const audit::AuditEntry& entry, Done done) override;
  void RecordWrite(int64_t record_id, std::string entry, std::string stored_record, Done done) override;
  bool Healthy() override;

  // Moves the change records an AccountStore kept (user and device changes)
  // into the log, then drops them there. Returns how many moved.
  StatusOr<size_t> DrainChangeRecords(store::AccountStore& accounts);

  // Records a vault lifecycle event ("start", "stop") and waits for it.
  Status RecordSystemEvent(std::string_view event);

 private:
  // `retry_record` (write records only) is queued for a retry on failure.
  void Append(int64_t record_id, std::string record, std::string retry_record, Done done);
  void RetryFailedWrites();

  audit::AuditLog* log_;
  store::ResourceStore* store_;
  std::mutex mu_;
  // Write records whose append failed: committed writes waiting for their
  // entry to reach the log.
  std::vector<std::pair<int64_t, std::string>> retry_;
  std::atomic<bool> probing_{false};
};

}  // namespace phivault::api

#endif  // PHIVAULT_API_AUDIT_TRAIL_H_
