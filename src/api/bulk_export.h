// BulkExporter: FHIR Bulk Data Access v2 `$export` (system, Patient and
// Group/{id} level) for FhirService.
//
// Kick-off (`Prefer: respond-async`) checks the request and the caller's
// right to export, queues a job and answers 202 with the status URL
// (BASE/fhir/$export-poll/{job}). One background worker thread runs the
// jobs one after another, so network threads never wait on an export: it
// walks the current version of every resource of each requested type
// (ResourceStore::ForEachCurrent), keeps those that pass `_since`, the
// level's patient filter (the stored patient link) and AccessControl::Decide
// exactly like a read, and writes them as NDJSON, one file per type (split
// every `resources_per_file`). Files are sealed as they are written
// (AES-256-GCM in 256 KiB frames under a per-job key derived from the
// keyring's bulk-export key; see bulk_export.cc for the layout), so nothing
// readable reaches DATA_DIR/exports; a download decrypts in memory.
//
// Who may export: a caller whose token carries `system/*.read` (SMART v1) or
// `system/*.rs` (v2). No other permission grants it: a user-level scope
// never does, whatever the role. Each exported resource still needs an
// allowing decision; break-glass never applies to an export (an emergency
// is about one patient, not a bulk copy).
//
// Only the subject that started a job may poll, download or cancel it; for
// anyone else the job does not exist (404). When a job completes, one audit
// entry with action "export" lists every patient exported and the count per
// type (in `query`); the manifest is served only once that entry is durable,
// and a job whose entry cannot be written fails and loses its files.
// Files are deleted on cancel (DELETE on the status URL), `retention` after
// completion (a sweep on the worker thread), and on shutdown; at start any
// leftover job directories are removed (jobs do not outlive the process,
// and their files could not be served).
//
// Thread-safety: Handle() and SweepExpired() may be called concurrently from
// any thread. Lifetime: store, access control, auditor and keyring must
// outlive the exporter; destruction cancels running jobs, joins the worker
// and deletes every file.
#ifndef PHIVAULT_API_BULK_EXPORT_H_
#define PHIVAULT_API_BULK_EXPORT_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "api/access_control.h"
#include "api/audit_trail.h"
#include "api/request_context.h"
#include "audit/entry.h"
#include "common/status.h"
#include "crypto/keyring.h"
#include "http/types.h"
#include "store/resource_store.h"

namespace phivault::api {

struct BulkExportOptions {
  std::string dir;  // REQUIRES: set; e.g. DATA_DIR/exports (created 0700)
  std::string base_url = "http://127.0.0.1:8080";
  int64_t retention_ms = 60 * 60 * 1000;  // after completion, files and manifest go
  size_t resources_per_file = 100000;
  size_t max_jobs = 16;  // jobs kept (queued, running or waiting to expire) at once
  size_t max_jobs_per_caller = 4;  // so one client cannot take every slot
  int64_t sweep_interval_ms = 30 * 1000;
  // Tests only: runs on the worker just before each job starts (to hold a
  // job in its running state, or change the world under it).
  std::function<void()> before_job;
};

class BulkExporter {
 public:
  // Creates the directory and starts the worker. REQUIRES: everything
  // passed outlives the exporter.
  static StatusOr<std::unique_ptr<BulkExporter>> Create(store::ResourceStore* store, AccessControl* access,
                                                        RequestAuditor* auditor, const crypto::Keyring& keyring,
                                                        BulkExportOptions options);
  ~BulkExporter();

  // Whether the path below /fhir (split into segments) is a bulk-export URL.
  static bool Handles(const std::vector<std::string_view>& segments);
  // Whether an absolute path is a file download (answered in NDJSON, so the
  // JSON-only Accept negotiation does not apply to it).
  static bool IsDownloadPath(std::string_view path);
  // The metrics route label of a bulk-export URL.
  static std::string_view Route(const std::vector<std::string_view>& segments);

  // Answers one authenticated bulk-export request and fills its audit
  // entry (action, query shape, patients of a downloaded file).
  // REQUIRES: Handles(segments).
  http::HttpResponse Handle(const std::shared_ptr<const Caller>& caller, const http::HttpRequest& req,
                            const QueryParams& params, const std::vector<std::string_view>& segments,
                            const OutputFormat& fmt, audit::AuditEntry& entry, int64_t now_ms);

  // Deletes the jobs (and files) completed more than `retention` before
  // `now_ms`. The worker calls it periodically; tests call it directly.
  void SweepExpired(int64_t now_ms);

  // Blocks until no job is queued or running (tests, benchmarks).
  void WaitIdle();

 private:
  struct Job;
  struct File;
  BulkExporter(store::ResourceStore* store, AccessControl* access, RequestAuditor* auditor,
               BulkExportOptions options);

  http::HttpResponse Kickoff(const std::shared_ptr<const Caller>& caller, const http::HttpRequest& req,
                             const QueryParams& params, const std::vector<std::string_view>& segments,
                             const OutputFormat& fmt, audit::AuditEntry& entry, int64_t now_ms);
  http::HttpResponse Poll(const Caller& caller, const std::string& job_id, bool cancel, const OutputFormat& fmt);
  http::HttpResponse Download(const Caller& caller, const std::string& job_id, std::string_view file_index,
                              const OutputFormat& fmt, audit::AuditEntry& entry);
  // Finds the caller's job; null when missing or someone else's. REQUIRES: mu_ held.
  std::shared_ptr<Job> FindLocked(const Caller& caller, const std::string& job_id);

  void WorkerLoop();
  // Runs one job: OK, or why it stopped (cancelled or failed).
  Status Run(Job& job);
  void Complete(const std::shared_ptr<Job>& job);
  void RemoveFiles(const Job& job);

  store::ResourceStore* store_;
  AccessControl* access_;
  RequestAuditor* auditor_;
  BulkExportOptions options_;
  SecureBytes export_key_;

  std::mutex mu_;
  std::condition_variable cv_;       // wakes the worker
  std::condition_variable idle_cv_;  // WaitIdle
  std::map<std::string, std::shared_ptr<Job>> jobs_;
  std::deque<std::shared_ptr<Job>> queue_;
  int in_flight_ = 0;  // jobs running or waiting for their audit record
  bool stopping_ = false;
  std::thread worker_;
};

}  // namespace phivault::api

#endif  // PHIVAULT_API_BULK_EXPORT_H_
