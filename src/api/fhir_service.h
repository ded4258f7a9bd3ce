// FhirService: the FHIR R4 REST API (and the operational endpoints /healthz,
// /readyz, /metrics) as an http::Handler on top of a ResourceStore.
//
// It routes a request, authenticates it (401 without a valid identity),
// validates untrusted input (media type, JSON, ids, resource types), computes
// each resource's patient link once, asks AccessControl about the type and
// then about every resource it would return or write, and turns every failure
// into an OperationOutcome with the right status. A denial that depends on a
// specific record answers exactly like a missing record (404). Reads answer
// synchronously; writes answer from the store's group-commit callback, i.e.
// only once they are durable.
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
#include <string>

#include "api/access_control.h"
#include "fhir/json_reader.h"
#include "http/types.h"
#include "store/resource_store.h"

namespace phivault::api {

struct ServiceOptions {
  // Absolute base for links and Location headers, e.g. "https://vault.example.org".
  // Never taken from the Host header, which the client controls.
  std::string base_url = "http://127.0.0.1:8080";
  fhir::ParseLimits parse_limits;
  int default_page_size = 50;
  int max_page_size = 1000;
  size_t max_bundle_entries = 10000;
};

class FhirService final : public http::Handler {
 public:
  // REQUIRES: store and access outlive the service. `auth_endpoints` (may be
  // null) serves /auth/* and /.well-known/jwks.json.
  FhirService(store::ResourceStore* store, AccessControl* access, ServiceOptions options,
              http::Handler* auth_endpoints = nullptr);

  void Handle(http::HttpRequest request, http::Responder respond) override;

  // /readyz reports not ready once draining starts (SIGTERM).
  void SetDraining() { draining_.store(true); }

 private:
  struct Call;
  void HandleFhir(Call& call);
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
  // Authorizes one bundle write against what is stored; OK or the denial.
  Status AuthorizeWrite(Call& call, store::WriteOp& op, int64_t now_ms);
  // Reads and authorizes; NotFound when hidden or missing.
  StatusOr<store::ResourceVersion> ReadAuthorized(Call& call, const std::string& type, const std::string& id,
                                                  int64_t version);

  store::ResourceStore* store_;
  AccessControl* access_;
  http::Handler* auth_endpoints_;
  ServiceOptions options_;
  std::string capability_json_;
  std::atomic<bool> draining_{false};
};

}  // namespace phivault::api

#endif  // PHIVAULT_API_FHIR_SERVICE_H_
