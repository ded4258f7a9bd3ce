// FhirService: the FHIR R4 REST API (and the operational endpoints /healthz,
// /readyz, /metrics) as an http::Handler on top of a ResourceStore.
//
// It routes a request, authenticates it (401 without a valid identity),
// validates untrusted input (media type, JSON, ids, resource types), computes
// each resource's patient link once, asks AccessControl about the type and
// then about every resource it would return or write, and turns every failure
// into an OperationOutcome with the right status. A denial that depends on a
// specific record answers exactly like a missing record (404).
//
// Every request below /fhir produces exactly one audit entry (who, from
// where, what - each resource returned or written, with versions and the
// patients touched - why, and the outcome with the deciding policy rule),
// handed to the RequestAuditor; the response is released only once that
// entry is durable, and becomes a 503 when it cannot be written. A write's
// entry is stored in the write's own transaction (see audit_trail.h), so
// writes answer from the store's group-commit callback and then the audit
// log's. The operational endpoints (/healthz, /readyz, /metrics,
// /.well-known/*) carry no identity and no health data and are not audited;
// /readyz reports not ready while the audit log cannot be written.
//
// Public without authentication: /healthz, /readyz, /metrics (no health
// data), /fhir/metadata and /.well-known/smart-configuration (SMART clients
// discover the server before they have a token), and the token endpoint
// handed in as `auth_endpoints`.
//
// Thread-safety: Handle() may be called concurrently from many threads.
// Lifetime: the store must outlive the service; in-flight write callbacks hold
// no reference to the service beyond the store's own lifetime.
#ifndef PHIVAULT_API_FHIR_SERVICE_H_
#define PHIVAULT_API_FHIR_SERVICE_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "api/access_control.h"
#include "api/audit_trail.h"
#include "api/paging_cursor.h"
#include "crypto/keyring.h"
#include "fhir/json_reader.h"
#include "http/types.h"
#include "store/resource_store.h"

namespace phivault::api {

class AuditService;
class BulkExporter;

struct ServiceOptions {
  // Absolute base for links and Location headers, e.g. "https://vault.example.org".
  // Never taken from the Host header, which the client controls.
  std::string base_url = "http://127.0.0.1:8080";
  fhir::ParseLimits parse_limits;
  int default_page_size = 50;
  int max_page_size = 1000;
  // The store work one search request may do, in store::SearchBudget units
  // (SQLite: 100 virtual machine steps each). Beyond it the search answers
  // 400 "too costly". 5,000,000 units allow several seconds of scanning; the
  // searches of the benchmarks and tests use a small fraction of that.
  int64_t search_work_units = 5000000;
  // How many matches a search may examine, hidden ones included: to resolve
  // a chained or _has condition or a conditional update or delete (beyond:
  // 400), for _revinclude (beyond: left out), to fill a page past hidden
  // matches (beyond: a short page with a next link; at least 64 * _count),
  // and to count for _summary=count (400) or _total=accurate (total
  // omitted). Each request draws its own limits around these
  // (api/noisy_bound.h), so that where a limit falls does not tell whether
  // hidden matches exist.
  int64_t join_examined_limit = 20000;
  int64_t count_examined_limit = 100000;
  size_t max_bundle_entries = 10000;
  // The audit log's largest entry (audit.max_entry_bytes). A batch stops
  // answering its reads once their entry would outgrow it, so a committed
  // write is never followed by an entry the log refuses.
  size_t max_audit_entry_bytes = 1u << 20;
  // Supplies the search-cursor key (may be null: a random per-process key).
  const crypto::Keyring* keyring = nullptr;
};

class SearchHandler;

class FhirService final : public http::Handler {
 public:
  // REQUIRES: store, access and auditor outlive the service, and `access`
  // serves this one service: the service installs its break-glass listener
  // (AccessControl::SetBreakGlassListener) and clears it when destroyed.
  // `auth_endpoints` (may be null) serves /auth/* and /.well-known/jwks.json.
  FhirService(store::ResourceStore* store, AccessControl* access, RequestAuditor* auditor, ServiceOptions options,
              http::Handler* auth_endpoints = nullptr);

  ~FhirService() override;

  void Handle(http::HttpRequest request, http::Responder respond) override;

  // Routes the audit API (/audit/*, /fhir/AuditEvent, Patient/$access-report)
  // to `audit_endpoints` after authenticating; those requests are audited
  // like any other. REQUIRES: outlives the service; set before serving.
  void SetAuditEndpoints(AuditService* audit_endpoints) { audit_endpoints_ = audit_endpoints; }

  // Serves FHIR bulk $export (bulk_export.h). REQUIRES: outlives the
  // service; set before serving. Without it the $export URLs are unknown.
  void SetBulkExporter(BulkExporter* exporter) { bulk_ = exporter; }

  // /readyz reports not ready once draining starts (SIGTERM).
  void SetDraining() { draining_.store(true); }

 private:
  struct Call;
  void HandleFhir(Call& call);
  void HandleAuditApi(Call& call);
  void Read(Call& call, const std::string& type, const std::string& id);
  void VRead(Call& call, const std::string& type, const std::string& id, const std::string& vid);
  void Create(Call& call, const std::string& type);
  void Update(Call& call, const std::string& type, const std::string& id);
  void Delete(Call& call, const std::string& type, const std::string& id);
  // JSON Patch: computes the patched resource, then takes the Update path.
  void Patch(Call& call, const std::string& type, const std::string& id);
  // Patient/{id}/$everything (api/everything.h).
  void Everything(Call& call, const std::string& id);
  void History(Call& call, const std::string& type, const std::string& id);
  void Bundle(Call& call);
  void Metadata(Call& call);
  void Metrics(Call& call);
  void SmartConfiguration(Call& call);
  // Commits one write and answers from the commit callback (once durable),
  // rendering a success with `render`; feeds the policy indexes first.
  void CommitOne(Call& call, store::WriteOp op, std::string_view route,
                 std::function<http::HttpResponse(const store::WriteResult&)> render);
  // Commits `ops` with their audit record in the same transaction, renders
  // the answer (which may add to the entry), and releases it once the entry
  // is in the audit log.
  void CommitAudited(Call& call, std::vector<store::WriteOp> ops, bool atomic, std::string_view route,
                     std::function<http::HttpResponse(const store::CommitOutcome&, audit::AuditEntry&)> render);
  // Authorizes one bundle write against what is stored; OK or the denial.
  Status AuthorizeWrite(Call& call, store::WriteOp& op, int64_t now_ms);
  void RecordBreakGlassGrant(const Caller& caller, const http::HttpRequest& req, int64_t now_ms,
                             const std::vector<std::string>& patients);
  // Reads and authorizes; NotFound when hidden or missing.
  StatusOr<store::ResourceVersion> ReadAuthorized(Call& call, const std::string& type, const std::string& id,
                                                  int64_t version);

  store::ResourceStore* store_;
  AccessControl* access_;
  RequestAuditor* auditor_;
  http::Handler* auth_endpoints_;
  AuditService* audit_endpoints_ = nullptr;
  BulkExporter* bulk_ = nullptr;
  ServiceOptions options_;
  std::string capability_json_;
  PagingCursor cursors_;                   // search, history and $everything links
  std::shared_ptr<SearchHandler> search_;  // search_handler.h
  std::atomic<bool> draining_{false};
};

}  // namespace phivault::api

#endif  // PHIVAULT_API_FHIR_SERVICE_H_
