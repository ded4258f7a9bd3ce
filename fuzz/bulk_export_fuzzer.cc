// Fuzzes bulk $export request handling (api/bulk_export.h) with hostile
// paths, query strings and Prefer headers against a real vault holding a
// patient, an observation and a Group. Every request must get a valid status,
// never a 500 (the vault is intact, so a 500 would be a parameter-handling
// bug), and every error must be an OperationOutcome; a 202 kick-off must name
// its status URL. Started jobs are cancelled at once so they do not pile up.
//
// Input: byte 0 picks the URL template and the method, byte 1 the Prefer
// header and the caller's scope; the rest is "ID?QUERY".

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include <boost/json.hpp>

#include "api/bulk_export.h"
#include "api/vault.h"
#include "fuzz_scratch.h"

namespace {

using namespace phivault;

struct Fixture {
  std::unique_ptr<api::Vault> vault;
  std::unique_ptr<api::AccessControl> access;
  std::unique_ptr<api::BulkExporter> exporter;
};

void Put(api::Vault& v, const std::string& type, const std::string& id, const std::string& json,
         std::vector<std::string> patients) {
  store::WriteOp op;
  op.kind = store::WriteOp::Kind::kPut;
  op.type = type;
  op.id = id;
  op.resource = boost::json::parse(json).as_object();
  op.patients = std::move(patients);
  std::vector<store::WriteOp> ops;
  ops.push_back(std::move(op));
  if (!v.store()->CommitAndWait(std::move(ops), true).status.ok()) std::abort();
}

Fixture& Get() {
  static Fixture* f = [] {
    auto* fx = new Fixture;
    const std::string dir = fuzzing::MakeScratchDir();
    api::VaultConfig cfg{dir + "/data", fuzzing::MakeKeyFile(dir)};
    if (!api::Vault::Init(cfg).ok()) std::abort();
    fx->vault = std::move(api::Vault::Open(cfg)).value();
    Put(*fx->vault, "Patient", "p1", R"({"resourceType":"Patient","id":"p1"})", {"p1"});
    Put(*fx->vault, "Observation", "o1",
        R"({"resourceType":"Observation","id":"o1","status":"final","code":{"text":"x"},)"
        R"("subject":{"reference":"Patient/p1"}})",
        {"p1"});
    Put(*fx->vault, "Group", "g1",
        R"({"resourceType":"Group","id":"g1","type":"person","actual":true,"member":[{"entity":{"reference":"Patient/p1"}}]})",
        {"p1"});
    api::AccessConfig ac;
    ac.builtin_issuer = "https://vault.fuzz";
    ac.builtin_audience = "https://vault.fuzz/fhir";
    fx->access = std::move(api::AccessControl::Create(ac, fx->vault->keyring(), fx->vault->store(), nullptr)).value();
    api::BulkExportOptions o;
    o.dir = cfg.data_dir + "/exports";
    o.base_url = "https://vault.fuzz";
    fx->exporter = std::move(api::BulkExporter::Create(fx->vault->store(), fx->access.get(), fx->vault->audit_trail(),
                                                       fx->vault->keyring(), o))
                       .value();
    return fx;
  }();
  return *f;
}

void Check(const http::HttpResponse& r) {
  if (r.status < 200 || r.status > 599 || r.status == 500) std::abort();
  if (r.status >= 400 && r.body.find("OperationOutcome") == std::string::npos) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint8_t shape = data[0], flags = data[1];
  std::string id, query;
  {
    std::string_view text(reinterpret_cast<const char*>(data + 2), size - 2);
    auto split = text.find('?');
    id = std::string(text.substr(0, split));
    if (split != std::string_view::npos) query = std::string(text.substr(split + 1));
  }
  if (id.empty()) id = "g1";
  if (id.find('/') != std::string::npos) return 0;  // one path segment
  Fixture& fx = Get();

  static const char* const kMethods[] = {"GET", "GET", "DELETE", "POST"};
  std::vector<std::string> parts;  // the path below /fhir
  switch (shape % 5) {
    case 0: parts = {"$export"}; break;
    case 1: parts = {"Patient", "$export"}; break;
    case 2: parts = {"Group", id, "$export"}; break;
    case 3: parts = {"$export-poll", id}; break;
    default: parts = {"$export-file", id, query.empty() ? "0" : query.substr(0, 3)}; break;
  }
  http::HttpRequest req;
  req.method = kMethods[(shape >> 4) % 4];
  req.path = "/fhir";
  for (const auto& p : parts) req.path += "/" + p;
  req.query = query;
  req.target = req.path + (query.empty() ? "" : "?" + query);
  static const char* const kPrefer[] = {"", "respond-async", "respond-async, handling=lenient", "handling=lenient"};
  if (flags % 4) req.headers.emplace_back("prefer", kPrefer[flags % 4]);
  std::vector<std::string_view> segments(parts.begin(), parts.end());
  if (!api::BulkExporter::Handles(segments)) return 0;  // e.g. an empty file index
  (void)api::BulkExporter::Route(segments);
  (void)api::BulkExporter::IsDownloadPath(req.path);
  auto params = api::ParseQuery(req.query);
  if (!params.ok()) return 0;  // FhirService answers these before routing

  auto caller = std::make_shared<api::Caller>();
  caller->principal.subject = "fuzz-" + std::to_string(flags >> 4);
  caller->principal.role = policy::Role::kSystem;
  auto scope = policy::ParseScopeGrant((flags & 4) ? "system/*.rs" : "system/Patient.rs");
  if (scope) caller->principal.scopes.push_back(*scope);

  audit::AuditEntry entry;
  http::HttpResponse r =
      fx.exporter->Handle(caller, req, *params, segments, api::OutputFormat{}, entry, 1767225600000);
  Check(r);
  if (r.status == 202 && req.method == "GET" && shape % 5 < 3) {
    std::string loc;
    for (const auto& [k, v] : r.headers) {
      if (k == "Content-Location") loc = v;
    }
    const std::string prefix = "https://vault.fuzz/fhir/$export-poll/";
    if (loc.rfind(prefix, 0) != 0) std::abort();
    std::string job = loc.substr(prefix.size());
    req.method = "DELETE";
    std::vector<std::string_view> cancel = {"$export-poll", job};
    Check(fx.exporter->Handle(caller, req, {}, cancel, api::OutputFormat{}, entry, 1767225600000));
  }
  return 0;
}
