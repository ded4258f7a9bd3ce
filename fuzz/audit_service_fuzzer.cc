// Fuzzes the audit HTTP API (api/audit_service.h) with hostile paths, query
// strings and headers against a real AuditLog holding a few entries. Every
// request must get exactly one answer with a valid status and never a 500
// (the log is intact, so a 500 would be a bug in parameter handling);
// Handles() and Describe() must cope with anything.
//
// Input: byte 0 picks the path template, byte 1 the caller's role and the
// Prefer header; the rest is "ID?QUERY" (ID used by templates that take one).

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "api/audit_service.h"
#include "audit/entry.h"
#include "crypto/keyring.h"
#include "fuzz_scratch.h"

namespace {

using namespace phivault;

struct Fixture {
  std::unique_ptr<crypto::Keyring> keyring;
  std::unique_ptr<audit::AuditLog> log;
  std::unique_ptr<api::AuditService> service;
};

Fixture& Get() {
  static Fixture* f = [] {
    auto* fx = new Fixture;
    const std::string dir = fuzzing::MakeScratchDir();
    auto k = crypto::Keyring::Create(dir, fuzzing::MakeKeyFile(dir));
    if (!k.ok()) std::abort();
    fx->keyring = std::move(*k);
    auto log = audit::AuditLog::Open(dir, *fx->keyring);
    if (!log.ok()) std::abort();
    fx->log = std::move(*log);
    for (int i = 0; i < 40; ++i) {
      audit::AuditEntry e;
      e.time_ms = 1767225600000 + i * 60000;
      e.agent.subject = "dr-" + std::to_string(i % 3);
      e.agent.fhir_user = "Practitioner/" + e.agent.subject;
      e.action = static_cast<audit::AuditAction>(i % audit::kAuditActionCount);
      e.patients = {"p" + std::to_string(i % 4)};
      if (i % 7 == 0) e.patients.push_back("p9");
      e.resources = {{"Observation", "o" + std::to_string(i), "1", i % 2 ? "" : "1"}};
      e.outcome = i % 5 == 0 ? audit::AuditOutcome::kDenied : audit::AuditOutcome::kAllowed;
      e.break_glass = i % 11 == 0;
      if (!fx->log->AppendAndWait(audit::Serialize(e)).ok()) std::abort();
    }
    api::AuditServiceOptions o;
    o.base_url = "https://vault.fuzz";
    o.max_scan_entries = 7;  // exercise short pages
    // HandleAs only: no AccessControl needed.
    fx->service = std::make_unique<api::AuditService>(fx->log.get(), nullptr, o);
    return fx;
  }();
  return *f;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  Fixture& fx = Get();
  std::string_view rest(reinterpret_cast<const char*>(data) + 2, size - 2);
  const size_t q = rest.find('?');
  const std::string id(rest.substr(0, q));
  const std::string query(q == std::string_view::npos ? std::string_view() : rest.substr(q + 1));
  static const char* const kPaths[] = {"/audit/checkpoint", "/audit/proof/inclusion", "/audit/proof/consistency",
                                       "/audit/entries",    "/fhir/AuditEvent",       "/fhir/AuditEvent/",
                                       "/fhir/Patient/",    "/audit/"};
  const size_t which = data[0] % 8;
  http::HttpRequest req;
  req.method = (data[0] & 0x80) ? "POST" : "GET";
  req.path = kPaths[which];
  if (which == 5 || which == 7) req.path += id;
  if (which == 6) req.path += id + "/$access-report";
  req.query = query;
  req.target = req.path + "?" + query;
  if (data[1] & 1) req.headers.emplace_back("prefer", "handling=lenient");
  if (data[1] & 2) req.headers.emplace_back("accept", std::string(id));

  api::Caller caller;
  caller.principal.subject = "fuzz";
  switch ((data[1] >> 2) % 3) {
    case 0: caller.principal.role = policy::Role::kPrivacyOfficer; break;
    case 1:
      caller.principal.role = policy::Role::kPatient;
      caller.principal.fhir_user = "Patient/" + id;
      break;
    default: caller.principal.role = policy::Role::kClinician; break;
  }
  policy::ScopeGrant g;
  g.type = (data[1] & 0x40) ? "AuditEvent" : "*";
  g.r = g.s = !(data[1] & 0x20);
  caller.principal.scopes.push_back(g);

  (void)api::AuditService::Handles(req.path);
  (void)api::AuditService::Describe(req);
  int answers = 0;
  fx.service->HandleAs(caller, req, [&](http::HttpResponse r) {
    ++answers;
    if (r.status < 200 || r.status > 599 || r.status == 500) std::abort();
    if (r.status >= 400 && r.body.find("OperationOutcome") == std::string::npos) std::abort();
  });
  if (answers != 1) std::abort();
  return 0;
}
