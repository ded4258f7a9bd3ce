#include "api/audit_indexer.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <filesystem>

#include "audit/entry.h"
#include "audit/query.h"
#include "common/log.h"

namespace phivault::api {
namespace {

constexpr uint64_t kBatch = 10000;  // AuditLog::ReadEntries' limit; one transaction each

// The follower runs at the lowest nice level: a busy server must not pay for
// an index that the next query can do without. Not SCHED_IDLE: the follower
// briefly takes the audit log's mutex (ReadEntries), and a SCHED_IDLE thread
// preempted inside it on a saturated machine could hold up the log's writer
// for long; at nice 19 CFS still gives it a small share.
void LowerThisThreadPriority() { (void)::setpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)), 19); }

// Opens the index, deleting a file that does not authenticate (it is derived
// data; the log rebuilds it).
StatusOr<std::unique_ptr<store::AuditIndex>> OpenOrRecreate(const std::string& data_dir,
                                                            const crypto::Keyring& keyring) {
  auto index = store::OpenAuditIndex(data_dir, keyring);
  if (index.ok() || index.status().code() != StatusCode::kDataLoss) return index;
  log::Warn("audit.index_unreadable", {{"action", "rebuild"}});
  const std::string path = data_dir + "/" + store::kAuditIndexFileName;
  std::error_code ec;
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix, ec);
  return store::OpenAuditIndex(data_dir, keyring);
}

}  // namespace

StatusOr<std::unique_ptr<AuditIndexer>> AuditIndexer::Open(const std::string& data_dir,
                                                           const crypto::Keyring& keyring, audit::AuditLog* log) {
  PV_ASSIGN_OR_RETURN(std::unique_ptr<store::AuditIndex> index, OpenOrRecreate(data_dir, keyring));
  PV_ASSIGN_OR_RETURN(store::AuditIndexCoverage c, index->Coverage());
  bool matches = c.through <= log->size();
  if (matches && c.through > 0) {
    auto root = log->Root(c.through);
    matches = root.ok() && *root == c.root;
  }
  if (!matches) {
    log::Warn("audit.index_stale",
              {{"covered", std::to_string(c.through)}, {"log_size", std::to_string(log->size())}, {"action", "rebuild"}});
    PV_RETURN_IF_ERROR(index->Reset());
    c = {};
  }
  return std::unique_ptr<AuditIndexer>(new AuditIndexer(log, std::move(index), c.through));
}

AuditIndexer::~AuditIndexer() {
  if (follower_.joinable()) {
    follower_.request_stop();
    follower_.join();
  }
}

Status AuditIndexer::IndexBatch(uint64_t from, uint64_t to) {
  PV_ASSIGN_OR_RETURN(std::vector<std::string> raw, log_->ReadEntries(from, to));
  if (raw.size() != to - from) return DataLoss("audit log returned fewer entries than asked for");
  std::vector<store::AuditPosting> postings;
  for (uint64_t k = 0; k < raw.size(); ++k) {
    auto entry = audit::ParseEntry(raw[k]);
    if (!entry.ok()) continue;  // skipped by every scan too
    // A value named twice is stored once (the index ignores repeats).
    for (std::string& p : entry->patients) postings.push_back({store::AuditKey::kPatient, std::move(p), from + k});
    for (std::string* a : {&entry->agent.subject, &entry->agent.fhir_user, &entry->agent.client_id,
                           &entry->agent.device_id}) {
      if (!a->empty()) postings.push_back({store::AuditKey::kAgent, std::move(*a), from + k});
    }
  }
  PV_ASSIGN_OR_RETURN(std::string root, log_->Root(to));
  return index_->Extend(from, {to, std::move(root)}, postings);
}

StatusOr<uint64_t> AuditIndexer::CatchUp(uint64_t max_entries) {
  std::lock_guard<std::mutex> lock(catch_up_mu_);
  uint64_t at = covered();
  const uint64_t goal = std::min(log_->size(), at + std::min(max_entries, UINT64_MAX - at));
  while (at < goal) {
    const uint64_t to = std::min(goal, at + kBatch);
    PV_RETURN_IF_ERROR(IndexBatch(at, to));
    at = to;
    covered_.store(at, std::memory_order_release);
  }
  return at;
}

StatusOr<std::vector<uint64_t>> AuditIndexer::EntriesFor(store::AuditKey kind, std::string_view value,
                                                         uint64_t start, uint64_t end, size_t limit) {
  // Agent values match exactly (audit/query.h); patient ids without the prefix.
  if (kind == store::AuditKey::kPatient) value = audit::StripPatientPrefix(value);
  return index_->EntriesFor(kind, value, start, std::min(end, covered()), limit);
}

void AuditIndexer::StartFollowing(std::chrono::milliseconds period) {
  if (follower_.joinable()) return;
  follower_ = std::jthread([this, period](std::stop_token stop) {
    LowerThisThreadPriority();
    std::mutex mu;
    std::condition_variable_any cv;
    // After a failure the wait doubles, up to a minute: a damaged log must
    // not fill the operator's log with one line every period.
    std::chrono::milliseconds wait = period;
    while (!stop.stop_requested()) {
      {
        std::unique_lock lk(mu);
        cv.wait_for(lk, stop, wait, [] { return false; });
      }
      bool failed = false;
      // One batch at a time, so a stop request is seen within one batch.
      while (!stop.stop_requested() && covered() < log_->size()) {
        auto r = CatchUp(kBatch);
        if (!r.ok()) {
          log::Error("audit.index_not_updated", {{"error", r.status().message()}});
          failed = true;
          break;
        }
      }
      wait = failed ? std::min<std::chrono::milliseconds>(2 * wait, std::chrono::minutes(1)) : period;
    }
  });
}

}  // namespace phivault::api
