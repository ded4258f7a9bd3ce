#include "api/audit_trail.h"

#include <algorithm>
#include <unordered_set>

#include "common/log.h"
#include "fhir/time.h"

namespace phivault::api {
namespace {

// Entries are time-stamped when their request starts and appended when it
// ends, so the log is only roughly in time order. Recovery looks this far
// before the oldest outbox record for entries that already carry it.
constexpr int64_t kRecoverySlackMs = 10 * 60 * 1000;
constexpr uint64_t kReadChunk = 10000;  // AuditLog::ReadEntries' limit

Status AuditUnavailable() {
  return Unavailable("the audit log cannot be written, so nothing is served (see /readyz)");
}

}  // namespace

StatusOr<size_t> AuditTrail::Recover() {
  PV_ASSIGN_OR_RETURN(std::vector<store::PendingAuditRecord> pending, store_->PendingAuditRecords());
  if (pending.empty()) return size_t{0};
  int64_t oldest = pending.front().created_ms;
  for (const auto& p : pending) oldest = std::min(oldest, p.created_ms);
  const int64_t horizon = oldest - kRecoverySlackMs;

  // Which of them the log already holds: scan back from the end.
  std::unordered_set<int64_t> logged;
  uint64_t end = log_->size();
  while (end > 0) {
    uint64_t start = end > kReadChunk ? end - kReadChunk : 0;
    PV_ASSIGN_OR_RETURN(std::vector<std::string> chunk, log_->ReadEntries(start, end));
    int64_t newest_in_chunk = 0;
    for (const std::string& text : chunk) {
      auto e = audit::ParseEntry(text);
      if (!e.ok()) return DataLoss("audit log entry does not parse during recovery: " + e.status().message());
      newest_in_chunk = std::max(newest_in_chunk, e->time_ms);
      if (e->write_record != 0) logged.insert(e->write_record);
    }
    if (newest_in_chunk < horizon) break;
    end = start;
  }

  size_t appended = 0;
  for (auto& p : pending) {
    if (!logged.contains(p.id)) {
      auto r = log_->AppendAndWait(std::move(p.record));
      if (!r.ok()) return r.status();
      ++appended;
    }
    store_->AckAuditRecord(p.id);
  }
  if (appended > 0) {
    log::Warn("audit.recovered_write_records",
              {{"appended", std::to_string(appended)}, {"pending", std::to_string(pending.size())}});
  }
  return appended;
}

void AuditTrail::Record(const audit::AuditEntry& entry, Done done) {
  Append(0, audit::Serialize(entry), {}, std::move(done));
}

void AuditTrail::RecordWrite(int64_t record_id, std::string entry, std::string stored_record, Done done) {
  Append(record_id, std::move(entry), std::move(stored_record), std::move(done));
}

void AuditTrail::Append(int64_t record_id, std::string record, std::string retry_record, Done done) {
  log_->Append(std::move(record), [this, record_id, keep = std::move(retry_record),
                                   done = std::move(done)](StatusOr<uint64_t> r) mutable {
    if (!r.ok()) {
      if (record_id) {
        std::lock_guard lk(mu_);
        retry_.emplace_back(record_id, std::move(keep));
      }
      if (done) done(AuditUnavailable());
      return;
    }
    if (record_id) store_->AckAuditRecord(record_id);
    if (done) done(Status::Ok());
    RetryFailedWrites();
  });
}

void AuditTrail::RetryFailedWrites() {
  std::vector<std::pair<int64_t, std::string>> again;
  {
    std::lock_guard lk(mu_);
    if (retry_.empty()) return;
    again.swap(retry_);
  }
  log::Info("audit.retrying_write_records", {{"records", std::to_string(again.size())}});
  for (auto& [id, record] : again) {
    std::string copy = record;
    Append(id, std::move(record), std::move(copy), nullptr);
  }
}

bool AuditTrail::Healthy() {
  bool retries_waiting;
  {
    std::lock_guard lk(mu_);
    retries_waiting = !retry_.empty();
  }
  if (log_->healthy() && !retries_waiting) return true;
  // Probe with a real event: its success marks the log healthy again and
  // lets waiting write records through.
  if (!probing_.exchange(true)) {
    audit::AuditEntry probe;
    probe.time_ms = fhir::NowMillis();
    probe.action = audit::AuditAction::kSystem;
    probe.event = "audit-probe";
    Record(probe, [this](Status) { probing_.store(false); });
  }
  return false;
}

StatusOr<size_t> AuditTrail::DrainChangeRecords(store::AccountStore& accounts) {
  PV_ASSIGN_OR_RETURN(auto pending, accounts.PendingChangeRecords());
  // A record appended but not yet dropped when the process died is appended
  // again at the next drain: at least once, and the duplicate has the same
  // request id. (Rare: the window is one SQLite delete.)
  for (auto& p : pending) {
    auto r = log_->AppendAndWait(std::move(p.record));
    if (!r.ok()) return r.status();
    PV_RETURN_IF_ERROR(accounts.DropChangeRecord(p.id));
  }
  return pending.size();
}

Status AuditTrail::RecordSystemEvent(std::string_view event) {
  audit::AuditEntry e;
  e.time_ms = fhir::NowMillis();
  e.action = audit::AuditAction::kSystem;
  e.event = std::string(event);
  auto r = log_->AppendAndWait(audit::Serialize(e));
  return r.ok() ? Status::Ok() : r.status();
}

}  // namespace phivault::api
