// AuditService: the read side of the audit log over HTTP, for privacy
// officers (and, for their own record, patients).
//
//   GET /audit/checkpoint                       latest signed checkpoint (C2SP signed note, text/plain)
//   GET /audit/proof/inclusion?index=N&size=M   RFC 6962 inclusion proof (JSON, base64 hashes)
//   GET /audit/proof/consistency?from=A&to=B    RFC 6962 consistency proof (JSON, base64 hashes)
//   GET /audit/entries?start=&end=&_count=      decrypted entries, paged, with a next link
//   GET /fhir/AuditEvent?patient=&agent=&date=&action=&outcome=   ITI-81 searchset of BALP AuditEvents
//   GET /fhir/AuditEvent/{index}                one entry as an AuditEvent (the search's fullUrls resolve)
//   GET /fhir/Patient/{id}/$access-report?start=&end=&_sort=      accounting of disclosures
// The JSON shapes are in docs/AUDIT-LOG-FORMAT.md ("HTTP API").
//
// Who may call: every path needs an authenticated caller
// (AccessControl::Authenticate, else 401) with role privacy-officer; the
// access report also answers a caller with role patient whose fhirUser is
// that Patient. The FHIR paths additionally need a SMART scope granting
// search (AuditEvent search) or read (AuditEvent read, access report) on
// AuditEvent or "*". Anyone else gets 403 with an OperationOutcome; the
// answer never depends on whether the patient exists (the report is built
// from the log alone), so 403 reveals nothing.
//
// Paging is over the append-only log, whose indices never change, so the
// cursors are plain numbers and stay valid while entries arrive:
//   * AuditEvent search and /audit/entries go forward in index order; the
//     next link continues at the first index not yet examined. One request
//     examines at most max_scan_entries entries: a page may hold fewer than
//     _count matches and still have a next link (FHIR allows short pages).
//   * The access report must sort the whole result, so its first page fixes
//     the log size it looked at (_snapshot) and later pages re-read exactly
//     that prefix with an _offset: new entries never shift a page.
// Scans run on the calling thread: a linear scan with decryption costs a few
// microseconds per entry. With an AuditIndexer, the access report and an
// AuditEvent search with `patient` or `agent` read only the entries the index
// lists for that patient (or agent), and scan only the entries past what the
// index covers.
//
// This service never writes to the audit log. The request itself must be
// audited by whoever routes to it (FhirService): Describe() says what that
// entry should record.
//
// Thread-safety: Handle() may be called concurrently from any thread (the log
// and AccessControl are thread-safe, the service holds no mutable state).
// Lifetime: log and access must outlive the service; Handle() answers before
// it returns.
#ifndef PHIVAULT_API_AUDIT_SERVICE_H_
#define PHIVAULT_API_AUDIT_SERVICE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "api/access_control.h"
#include "api/audit_indexer.h"
#include "audit/audit_log.h"
#include "audit/entry.h"
#include "http/types.h"

namespace phivault::api {

struct AuditServiceOptions {
  // Absolute base for links, e.g. "https://vault.example.org" (never from Host).
  std::string base_url = "http://127.0.0.1:8080";
  int default_page_size = 50;
  int max_page_size = 1000;
  // Entries one AuditEvent search page may decrypt and examine (bounds the
  // latency of one request; the next link continues the scan). The access
  // report is not bounded by it: it must see its whole snapshot to sort.
  uint64_t max_scan_entries = 100000;
};

// What the audit entry for a request to this service should record (the
// router writes it; this service does not).
struct AuditRequestInfo {
  audit::AuditAction action = audit::AuditAction::kAuditQuery;
  // The patient the request is about: the access report's {id}, or the
  // values of AuditEvent's patient parameter. Ids without "Patient/".
  std::vector<std::string> patients;
  // Resource type and parameter NAMES ("AuditEvent?date&patient"), never values.
  std::string query;
};

class AuditService final : public http::Handler {
 public:
  // REQUIRES: log is non-null; both outlive the service. `access` may be
  // null only if Handle() is never called (HandleAs needs no AccessControl).
  // `indexer` (may be null: every query scans the log) narrows access
  // reports and AuditEvent searches by patient to that patient's entries.
  AuditService(audit::AuditLog* log, AccessControl* access, AuditServiceOptions options,
               AuditIndexer* indexer = nullptr);

  // True for every path this service answers (see the file comment); the
  // router sends those here instead of to the FHIR store.
  static bool Handles(std::string_view path);
  // What the request's audit entry should say. Pure; works on any request
  // for which Handles(path) is true.
  static AuditRequestInfo Describe(const http::HttpRequest& request);

  // Authenticates, then HandleAs.
  void Handle(http::HttpRequest request, http::Responder respond) override;
  // For a router that has already authenticated the caller.
  void HandleAs(const Caller& caller, const http::HttpRequest& request, http::Responder respond);

 private:
  audit::AuditLog* log_;
  AccessControl* access_;
  AuditServiceOptions options_;
  AuditIndexer* indexer_;
};

}  // namespace phivault::api

#endif  // PHIVAULT_API_AUDIT_SERVICE_H_
