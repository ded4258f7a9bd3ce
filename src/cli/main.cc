// phivault: the single binary. Subcommands: init, serve, import, demo, keys,
// token, user, device, audit, backup, restore.
//
// Every option can come from a TOML config file (--config) or a flag; flags
// win. Defaults are the safe choice: loopback only, no plaintext key in the
// data directory, key files must be private (mode 0600).
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <sstream>
#include <stop_token>
#include <thread>

#include <boost/json.hpp>
#include <iostream>
#include <string>
#include <vector>

#include "api/access_control.h"
#include "api/audit_indexer.h"
#include "api/audit_service.h"
#include "api/auth_service.h"
#include "api/bulk_export.h"
#include "api/fhir_service.h"
#include "auth/token_issuer.h"
#include "fhir/time.h"
#include "store/account_store.h"
#include "api/importer.h"
#include "api/request_audit.h"
#include "api/request_context.h"
#include "api/vault.h"
#include "audit/inbox.h"
#include "cli/siem_export.h"
#include "cli/account_commands.h"
#include "cli/audit_commands.h"
#include "cli/backup_commands.h"
#include "cli/config.h"
#include "cli/key_commands.h"
#include "common/log.h"
#include "common/process.h"
#include "fhir/operation_outcome.h"
#include "http/server.h"

#ifndef PHIVAULT_SAMPLES_DIR
#define PHIVAULT_SAMPLES_DIR "data/samples"
#endif

namespace phivault::cli {
namespace {

void HardenProcess(bool allow_core_dumps) {
  if (allow_core_dumps) return;
  if (Status s = DisableCoreDumps(); !s.ok()) {
    log::Warn("core_dumps_not_disabled",
              {{"error", s.message()}, {"action", "set LimitCORE=0 for the service, or disable core dumps system-wide"}});
  }
}

int Fail(const Status& s) {
  std::fprintf(stderr, "phivault: %s\n", s.message().c_str());
  switch (s.code()) {
    case StatusCode::kPermissionDenied: return 3;
    case StatusCode::kDataLoss: return 4;
    default: return 1;
  }
}

void PrintSummary(const api::ImportSummary& s) {
  std::fprintf(stderr, "\nimport finished: %lld loaded, %lld rejected, %.2f s (%.0f resources/s)\n",
               static_cast<long long>(s.loaded), static_cast<long long>(s.rejected), s.seconds,
               s.seconds > 0 ? static_cast<double>(s.loaded) / s.seconds : 0.0);
  for (const auto& r : s.reasons) std::fprintf(stderr, "  rejected %s\n", r.c_str());
  if (static_cast<int64_t>(s.reasons.size()) < s.rejected) {
    std::fprintf(stderr, "  … and %lld more\n", static_cast<long long>(s.rejected - static_cast<int64_t>(s.reasons.size())));
  }
}

// `bulk_load`: "on", "off" or "auto" (api::BulkLoadPays on the input's and
// the vault's sizes).
StatusOr<api::ImportSummary> RunImport(api::Vault* vault, const std::vector<std::string>& files,
                                       const std::string& bulk_load = "auto") {
  api::ImportOptions opts;
  opts.auditor = vault->audit_trail();
  if (bulk_load == "auto") {
    uint64_t input = 0;
    for (const auto& f : files) {
      std::error_code ec;
      uint64_t n = std::filesystem::file_size(f, ec);
      if (!ec) input += n;
    }
    opts.bulk_load = api::BulkLoadPays(input, static_cast<uint64_t>(vault->store()->Stats().file_bytes));
  } else {
    opts.bulk_load = bulk_load == "on";
  }
  if (::isatty(STDERR_FILENO)) {
    opts.progress = [](int64_t processed, size_t done, size_t total) {
      std::fprintf(stderr, "\rimporting: %lld resources, file %zu/%zu", static_cast<long long>(processed),
                   std::min(done + 1, total), total);
      std::fflush(stderr);
    };
  }
  return api::ImportFiles(vault->store(), files, opts);
}

// Blocks the termination signals in every thread so that only the main
// thread's sigwait sees them.
sigset_t BlockTerminationSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

http::HttpResponse RenderHttpError(int status, std::string_view message) {
  http::HttpResponse r;
  r.status = status;
  r.headers.emplace_back("Content-Type", "application/fhir+json; charset=utf-8");
  std::string_view code = status == 413 ? "too-long" : (status == 431 ? "too-long" : "invalid");
  if (status == 503) code = "transient";
  r.body = fhir::OperationOutcomeJson("error", code, message);
  return r;
}

struct Served {
  // Streams audit entries to the configured SIEM (none if unconfigured).
  std::unique_ptr<audit::SiemExporter> siem;
  std::shared_ptr<store::AccountStore> accounts;
  // Moves user and device change records (made by the CLI beside the
  // server) into the audit log every second. Stops before the rest.
  std::jthread change_drainer;
  std::unique_ptr<api::AuthService> auth;      // its sessions outlive `access`, which uses them
  std::unique_ptr<api::AccessControl> access;
  // Which audit entries touched which patient (access reports read only
  // those); follows the log from a background thread at nice 19.
  std::unique_ptr<api::AuditIndexer> audit_index;
  std::unique_ptr<api::AuditService> audit_api;
  std::unique_ptr<api::BulkExporter> bulk_export;
  std::unique_ptr<api::FhirService> service;
  std::unique_ptr<http::Server> server;
};

// The built-in token issuer's identity: tokens are minted for, and only
// accepted from, this vault's base URL.
std::string Audience(const Config& cfg) { return cfg.BaseUrl() + "/fhir"; }

StatusOr<Served> StartServing(api::Vault* vault, const Config& cfg) {
  // A vault whose audit log cannot be written does not start serving.
  PV_RETURN_IF_ERROR(vault->audit_trail()->RecordSystemEvent("start"));
  Served s;
  PV_ASSIGN_OR_RETURN(s.siem, StartSiemExport(cfg, *vault->audit_log(), vault->keyring().vault_id()));
  PV_ASSIGN_OR_RETURN(s.accounts, store::OpenAccountStore(cfg.data_dir, vault->keyring()));
  s.accounts->SetChangeRecordBuilder(api::AccountChangeRecorder("operator"));
  PV_RETURN_IF_ERROR(vault->audit_trail()->DrainChangeRecords(*s.accounts).status());
  // Account changes and the audit inbox (events of other phivault commands,
  // see audit/inbox.h) move into the log every second.
  s.change_drainer = std::jthread([trail = vault->audit_trail(), accounts = s.accounts, log = vault->audit_log(),
                                   data_dir = cfg.data_dir](std::stop_token stop) {
    std::mutex mu;
    std::condition_variable_any cv;
    while (!stop.stop_requested()) {
      {
        std::unique_lock lk(mu);
        cv.wait_for(lk, stop, std::chrono::seconds(1), [] { return false; });
      }
      if (stop.stop_requested()) break;
      if (auto n = trail->DrainChangeRecords(*accounts); !n.ok()) {
        log::Error("audit.change_records_not_moved", {{"error", n.status().message()}});
      }
      if (auto n = audit::DrainInbox(data_dir, *log); !n.ok()) {
        log::Error("audit.inbox_not_moved", {{"error", n.status().message()}});
      }
    }
  });
  api::AuthServiceOptions ao;
  ao.issuer = cfg.BaseUrl();
  ao.audience = Audience(cfg);
  ao.sessions.idle_timeout = std::chrono::seconds(cfg.session_idle_seconds);
  PV_ASSIGN_OR_RETURN(s.auth, api::AuthService::Create(s.accounts, vault->keyring(), std::move(ao)));
  // Authentication events are audited without holding up the answer: a
  // token is not health data, and a refused login must not wait on a disk.
  s.auth->SetAuditHook([trail = vault->audit_trail()](std::string_view event, std::string_view username,
                                                       std::string_view source, std::string_view outcome) {
    trail->Record(api::AuthEventEntry(event, username, source, outcome, fhir::NowMillis()), {});
  });
  api::AccessConfig ac;
  ac.builtin_issuer = cfg.BaseUrl();
  ac.builtin_audience = Audience(cfg);
  ac.external_issuers = cfg.issuers;
  ac.idle_timeout_s = cfg.session_idle_seconds;
  ac.sessions = &s.auth->sessions();  // refresh-token reuse ends the login's access tokens at once
  PV_ASSIGN_OR_RETURN(s.access,
                      api::AccessControl::Create(std::move(ac), vault->keyring(), vault->store(), s.accounts.get()));
  api::ServiceOptions so;
  so.base_url = cfg.BaseUrl();
  so.parse_limits.max_bytes = cfg.max_body_bytes;
  so.max_audit_entry_bytes = cfg.Vault().audit.max_entry_bytes;
  so.keyring = &vault->keyring();  // search cursor key
  s.service = std::make_unique<api::FhirService>(vault->store(), s.access.get(), vault->audit_trail(), so, s.auth.get());
  api::AuditServiceOptions aso;
  aso.base_url = cfg.BaseUrl();
  PV_ASSIGN_OR_RETURN(s.audit_index, api::AuditIndexer::Open(cfg.data_dir, vault->keyring(), vault->audit_log()));
  s.audit_index->StartFollowing(std::chrono::seconds(2));
  s.audit_api = std::make_unique<api::AuditService>(vault->audit_log(), s.access.get(), aso, s.audit_index.get());
  s.service->SetAuditEndpoints(s.audit_api.get());
  api::BulkExportOptions beo;
  beo.dir = cfg.data_dir + "/exports";
  beo.base_url = cfg.BaseUrl();
  beo.retention_ms = cfg.export_retention_seconds * 1000;
  PV_ASSIGN_OR_RETURN(s.bulk_export, api::BulkExporter::Create(vault->store(), s.access.get(), vault->audit_trail(),
                                                               vault->keyring(), std::move(beo)));
  s.service->SetBulkExporter(s.bulk_export.get());
  http::ServerOptions ho;
  PV_RETURN_IF_ERROR(cfg.SplitListen(&ho.host, &ho.port));
  ho.threads = cfg.threads;
  ho.max_body_bytes = cfg.max_body_bytes;
  ho.max_connections = cfg.max_connections;
  ho.max_connections_per_address = cfg.max_connections_per_address;
  ho.header_timeout = std::chrono::seconds(cfg.header_timeout_seconds);
  ho.idle_timeout = std::chrono::seconds(cfg.idle_timeout_seconds);
  ho.body_timeout = std::chrono::seconds(cfg.body_timeout_seconds);
  // Requests refused by the HTTP layer never reach FhirService, which audits
  // every other one. The answer waits for the entry (as a 401's does), so a
  // client cannot outrun the log; it carries no health data, so it goes out
  // even if the entry could not be written.
  ho.on_rejected = [trail = vault->audit_trail()](std::string_view remote, int status, std::string_view,
                                                   std::function<void()> release) {
    trail->Record(api::RejectedRequestEntry(remote, status, fhir::NowMillis()),
                  [release = std::move(release)](const Status&) { release(); });
  };
  ho.min_body_rate = cfg.min_body_rate;
  ho.tls_cert_file = cfg.tls_cert;
  ho.tls_key_file = cfg.tls_key;
  ho.tls_client_ca_file = cfg.tls_client_ca;
  ho.error_renderer = RenderHttpError;
  PV_ASSIGN_OR_RETURN(s.server, http::Server::Start(std::move(ho), s.service.get()));
  return s;
}

// Mints a token with the vault's built-in issuer key: for service accounts,
// scripts and the demo. Whoever holds the master key can do this anyway.
StatusOr<std::string> IssueToken(const crypto::Keyring& keyring, const Config& cfg, const auth::TokenRequest& req,
                                 int lifetime_minutes) {
  auth::IssuerConfig ic;
  ic.issuer = cfg.BaseUrl();
  ic.audience = Audience(cfg);
  ic.lifetime = std::chrono::minutes(lifetime_minutes);
  PV_ASSIGN_OR_RETURN(auto issuer, auth::TokenIssuer::Create(keyring.Key(crypto::KeyPurpose::kTokenSign), ic));
  PV_ASSIGN_OR_RETURN(auto token, issuer->Issue(req, fhir::NowMillis() / 1000));
  return token.token;
}

int WaitAndShutdown(Served& served, api::Vault* vault, const sigset_t& signals) {
  int sig = 0;
  sigwait(&signals, &sig);
  log::Info("server.draining", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
  served.service->SetDraining();
  served.server->Shutdown(std::chrono::seconds(30));
  served.auth->Stop();  // its last refusals are audited before the stop
  served.change_drainer = {};  // request stop and join
  vault->store()->Close();
  if (Status s = vault->audit_trail()->RecordSystemEvent("stop"); !s.ok()) {
    log::Error("audit.stop_not_recorded", {{"error", s.message()}});
  }
  log::Info("server.stopped");
  return 0;
}

int CmdInit(const Config& cfg) {
  Status s = api::Vault::Init(cfg.Vault());
  if (!s.ok()) return Fail(s);
  std::printf("initialised vault in %s\n", cfg.data_dir.c_str());
  return 0;
}

int CmdServe(const Config& cfg) {
  sigset_t signals = BlockTerminationSignals();
  auto vault = api::Vault::Open(cfg.Vault());
  if (!vault.ok()) return Fail(vault.status());
  auto served = StartServing(vault->get(), cfg);
  if (!served.ok()) return Fail(served.status());
  log::Info("server.listening", {{"port", std::to_string(served->server->port())},
                                 {"tls", cfg.tls_cert.empty() ? "off" : "on"}});
  return WaitAndShutdown(*served, vault->get(), signals);
}

int CmdTokenIssue(const Config& cfg, const auth::TokenRequest& req, int lifetime_minutes) {
  // Only the keyring: minting works beside a running server, which holds
  // the vault itself (store and audit log) exclusively.
  auto keyring = crypto::Keyring::Open(cfg.data_dir, cfg.key);
  if (!keyring.ok()) return Fail(keyring.status());
  auto token = IssueToken(**keyring, cfg, req, lifetime_minutes);
  if (!token.ok()) return Fail(token.status());
  // No token leaves unrecorded: a minted `system` token can read and export
  // every record. The entry names what the token grants, never the token.
  audit::AuditEntry entry = audit::CommandEntry(audit::AuditAction::kTokenIssued, "token.minted", "phivault token issue");
  entry.resources.push_back({"phivault:token-subject", req.sub, "", ""});
  // Percent-encoded, so a value holding '&' or '=' cannot pose as another field.
  api::QueryParams grants = {{"role", req.role},
                             {"scope", req.scope},
                             {"fhirUser", req.fhir_user},
                             {"lifetime_minutes", std::to_string(lifetime_minutes)}};
  for (const auto& c : req.clearances) grants.emplace_back("clearance", c);
  entry.query = api::EncodeQuery(grants);
  if (Status queued = audit::SubmitToInbox(cfg.data_dir, entry); !queued.ok()) {
    return Fail(Status(queued.code(), "the token was not issued because its audit entry could not be queued: " +
                                          queued.message()));
  }
  std::printf("%s\n", token->c_str());
  return 0;
}

int CmdImport(const Config& cfg, const std::vector<std::string>& files, const std::string& bulk_load) {
  auto vault = api::Vault::Open(cfg.Vault());
  if (!vault.ok()) return Fail(vault.status());
  auto summary = RunImport(vault->get(), files, bulk_load);
  if (!summary.ok()) return Fail(summary.status());
  PrintSummary(*summary);
  return summary->rejected > 0 && summary->loaded == 0 ? 2 : 0;
}

std::vector<std::string> SampleFiles(const std::string& dir) {
  std::vector<std::string> files;
  std::error_code ec;
  for (const char* sub : {"synthea-10", "synthea-bundles"}) {
    std::filesystem::path p = std::filesystem::path(dir) / sub;
    for (auto it = std::filesystem::directory_iterator(p, ec); !ec && it != std::filesystem::directory_iterator();
         it.increment(ec)) {
      std::string name = it->path().filename().string();
      bool data = (name.size() > 7 && name.ends_with(".ndjson") && name != "log.ndjson") ||
                  (name.ends_with(".json") && name.rfind("patient-", 0) == 0);
      if (data) files.push_back(it->path().string());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

int CmdDemo(Config cfg, const std::string& samples_dir) {
  sigset_t signals = BlockTerminationSignals();
  if (cfg.data_dir.empty()) cfg.data_dir = "./demo-data";
  // The demo key lives beside, never inside, the data directory.
  if (cfg.key.key_file.empty() && cfg.key.passphrase_file.empty() && cfg.key.key_env.empty()) {
    cfg.key.key_file = cfg.data_dir + ".key";
  }
  struct stat st;
  bool fresh = ::stat(crypto::KeyringFilePath(cfg.data_dir).c_str(), &st) != 0;
  if (fresh) {
    if (::stat(cfg.key.key_file.c_str(), &st) != 0) {
      Status g = crypto::GenerateKeyFile(cfg.key.key_file);
      if (!g.ok()) return Fail(g);
    }
    Status s = api::Vault::Init(cfg.Vault());
    if (!s.ok()) return Fail(s);
  }
  auto vault = api::Vault::Open(cfg.Vault());
  if (!vault.ok()) return Fail(vault.status());
  if (fresh) {
    std::vector<std::string> files = SampleFiles(samples_dir);
    if (files.empty()) {
      return Fail(NotFound("no sample data found under " + samples_dir + " (use --samples DIR)"));
    }
    auto summary = RunImport(vault->get(), files);
    if (!summary.ok()) return Fail(summary.status());
    PrintSummary(*summary);
  } else {
    std::fprintf(stderr, "reusing the demo vault in %s (delete it and %s to start over)\n", cfg.data_dir.c_str(),
                 cfg.key.key_file.c_str());
  }
  std::string patient_id = "<id>";
  store::HistoryQuery q;
  q.type = "Patient";
  q.count = 1;
  if (auto page = (*vault)->store()->History(q); page.ok() && !page->entries.empty()) {
    patient_id = page->entries.front().version.id;
  }
  if (fresh) {
    // A care team ties the demo clinician to the demo patient, so the
    // clinician token shows allow and the unrelated one shows deny.
    std::vector<boost::json::object> care_team;
    care_team.push_back(boost::json::object{
        {"resourceType", "CareTeam"},
        {"id", "demo-care-team"},
        {"status", "active"},
        {"subject", boost::json::object{{"reference", "Patient/" + patient_id}}},
        {"participant", boost::json::array{boost::json::object{
                            {"member", boost::json::object{{"reference", "Practitioner/demo-clinician"}}}}}}});
    api::ImportOptions opts;
    opts.auditor = (*vault)->audit_trail();
    auto out = api::ImportResources((*vault)->store(), std::move(care_team), opts);
    if (!out.ok()) return Fail(out.status());
    if (out->loaded != 1) return Fail(Internal("the demo care team was not stored"));
  }
  auto served = StartServing(vault->get(), cfg);
  if (!served.ok()) return Fail(served.status());
  if (fresh) {
    store::DeviceRecord dev;
    dev.device_id = "demo-monitor";
    // Registered for token use in the demo; production devices present a
    // client certificate (phivault device add --cert).
    dev.cert_sha256 = std::string(64, '0');
    dev.patients = {patient_id};
    Status d = served->accounts->AddDevice(dev);
    if (!d.ok() && d.code() != StatusCode::kAlreadyExists) return Fail(d);
  }
  const crypto::Keyring& kr = (*vault)->keyring();
  auto tok = [&](const char* sub, const char* role, const char* fhir_user, const char* scope) {
    auth::TokenRequest r;
    r.sub = sub;
    r.role = role;
    r.fhir_user = fhir_user;
    r.scope = scope;
    auto t = IssueToken(kr, cfg, r, 12 * 60);
    return t.ok() ? *t : std::string("<") + t.status().message() + ">";
  };
  std::string related = tok("demo-clinician", "clinician", "Practitioner/demo-clinician", "user/*.cruds");
  std::string unrelated = tok("demo-other-clinician", "clinician", "Practitioner/demo-unrelated", "user/*.cruds");
  std::string privacy = tok("demo-privacy-officer", "privacy-officer", "Practitioner/demo-privacy", "user/*.rs");
  std::string device = tok("demo-monitor", "device", "Device/demo-monitor", "system/Observation.cru");
  std::string ops = tok("demo-security-admin", "security-admin", "Practitioner/demo-security-admin", "user/Device.rs");
  std::string base = cfg.BaseUrl();
  std::printf(
      "\nphivault demo is serving %s/fhir (Ctrl-C to stop)\n"
      "data directory: %s   master key file: %s\n\n"
      "Tokens (valid 12 hours):\n"
      "  export CLIN=%s   # clinician on the patient's care team\n"
      "  export OTHER=%s   # clinician with no relationship\n"
      "  export PRIV=%s   # privacy officer\n"
      "  export DEV=%s   # device bound to the patient\n"
      "  export OPS=%s   # security admin (metrics)\n\n"
      "Try:\n"
      "  curl -s %s/fhir/metadata | head -c 300; echo\n"
      "  curl -s %s/fhir/Patient/%s -H \"Authorization: Bearer $CLIN\"            # allowed\n"
      "  curl -s %s/fhir/Patient/%s -H \"Authorization: Bearer $OTHER\"           # 404: denial looks like absence\n"
      "  curl -s %s/fhir/Patient/%s -H \"Authorization: Bearer $OTHER\" \\\n"
      "       -H 'X-Purpose-Of-Use: ETREAT' -H 'X-Break-Glass-Reason: patient unconscious'   # break-glass\n"
      "  curl -s %s/fhir/Patient/%s -H \"Authorization: Bearer $PRIV\"            # 403: a privacy officer reads audit data, not records\n"
      "  curl -s -X POST %s/fhir/Observation -H \"Authorization: Bearer $DEV\" -H 'Content-Type: application/fhir+json' \\\n"
      "       -d '{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"heart rate\"},"
      "\"subject\":{\"reference\":\"Patient/%s\"}}'\n"
      "  curl -s '%s/fhir/Patient/%s/_history?_count=5' -H \"Authorization: Bearer $CLIN\"\n"
      "  curl -s %s/metrics -H \"Authorization: Bearer $OPS\" | grep phivault_http\n",
      base.c_str(), cfg.data_dir.c_str(), cfg.key.key_file.c_str(), related.c_str(), unrelated.c_str(),
      privacy.c_str(), device.c_str(), ops.c_str(), base.c_str(), base.c_str(), patient_id.c_str(), base.c_str(),
      patient_id.c_str(), base.c_str(), patient_id.c_str(), base.c_str(), patient_id.c_str(), base.c_str(),
      patient_id.c_str(), base.c_str(), patient_id.c_str(), base.c_str());
  std::printf(
      "  curl -s '%s/fhir/Observation?patient=%s&_sort=-date&_count=3' -H \"Authorization: Bearer $CLIN\"   # search\n"
      "Every request above is in the tamper-evident audit log:\n"
      "  curl -s '%s/fhir/Patient/%s/$access-report' -H \"Authorization: Bearer $PRIV\"   # who saw this record\n"
      "  curl -s '%s/fhir/AuditEvent?patient=%s&_count=3' -H \"Authorization: Bearer $PRIV\"   # IHE ITI-81\n"
      "  curl -s %s/audit/checkpoint -H \"Authorization: Bearer $PRIV\"   # signed Merkle checkpoint\n"
      "  (after Ctrl-C)  phivault audit verify --data %s --key-file %s\n"
      "Everything under %s is encrypted; `grep -r` for a patient's name there finds nothing.\n",
      base.c_str(), patient_id.c_str(), base.c_str(), patient_id.c_str(), base.c_str(), patient_id.c_str(),
      base.c_str(), cfg.data_dir.c_str(), cfg.key.key_file.c_str(), cfg.data_dir.c_str());
  std::fflush(stdout);
  return WaitAndShutdown(*served, vault->get(), signals);
}

}  // namespace

int Main(int argc, char** argv) {
  CLI::App app{"phivault: a secure clinical data vault speaking FHIR R4"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "phivault 0.1.0");
  Config cfg;
  std::string config_file;
  ConfigFlags flags;

  auto add_common = [&](CLI::App* sub) {
    sub->add_option("--config", config_file, "TOML configuration file");
    flags.AddVaultFlags(sub);
  };
  auto add_server = [&](CLI::App* sub) { flags.AddServerFlags(sub); };

  CLI::App* init = app.add_subcommand("init", "create a vault: data directory, keyring and database");
  add_common(init);
  CLI::App* serve = app.add_subcommand("serve", "serve the FHIR API");
  add_common(serve);
  add_server(serve);
  std::vector<std::string> files;
  CLI::App* import = app.add_subcommand("import", "load FHIR NDJSON files and Bundles");
  add_common(import);
  import->add_option("files", files, "NDJSON (.ndjson) or Bundle (.json) files")->required();
  std::string bulk_load = "auto";
  import
      ->add_option("--bulk-load", bulk_load,
                   "build the search lookups once at the end instead of row by row: on, off, or auto "
                   "(on when the input is at least 8 MB and a quarter of the vault's size)")
      ->check(CLI::IsMember({"auto", "on", "off"}))
      ->capture_default_str();
  std::string samples_dir = PHIVAULT_SAMPLES_DIR;
  CLI::App* demo = app.add_subcommand("demo", "create a demo vault with sample patients and serve it");
  add_common(demo);
  add_server(demo);
  demo->add_option("--samples", samples_dir, "directory with the bundled Synthea samples");
  KeyCommandState key_cmds;
  AddKeyCommands(app, &key_cmds, add_common);
  CLI::App* token = app.add_subcommand("token", "tokens signed by this vault's built-in issuer");
  token->require_subcommand(1);
  CLI::App* token_issue = token->add_subcommand("issue", "print a signed access token (service accounts, scripts)");
  add_common(token_issue);
  add_server(token_issue);  // --base-url / --listen fix the issuer and audience
  auth::TokenRequest token_req;
  std::string token_clearances;
  int token_minutes = 15;
  token_issue->add_option("--sub", token_req.sub, "subject (account id)")->required();
  token_issue->add_option("--role", token_req.role, "clinician, registration, privacy-officer, security-admin, device, system or patient")->required();
  token_issue->add_option("--fhir-user", token_req.fhir_user, "Practitioner/…, Patient/… or Device/…");
  token_issue->add_option("--scope", token_req.scope, "space-separated SMART scopes");
  token_issue->add_option("--clearance", token_clearances, "comma-separated clearances (R, V, HIV, …)");
  token_issue->add_option("--lifetime-minutes", token_minutes, "validity (default 15)")->check(CLI::Range(1, 7 * 24 * 60));
  AccountCommandState accounts;
  AddAccountCommands(app, &accounts, add_common);
  AuditCommandState audit_cmds;
  AddAuditCommands(app, &audit_cmds, add_common);
  BackupCommandState backup_cmds;
  AddBackupCommands(app, &backup_cmds, add_common);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  // Before any key exists in memory; `keys generate` reads no config.
  if (key_cmds.generate != nullptr && key_cmds.generate->parsed()) HardenProcess(false);
  if (int rc = RunKeyGenerate(key_cmds); rc >= 0) return rc;
  if (!config_file.empty()) {
    Status s = LoadConfigFile(config_file, &cfg);
    if (!s.ok()) return Fail(s);
  }
  if (Status s = flags.ApplyTo(&cfg); !s.ok()) return Fail(s);
  log::SetMinLevel(cfg.log_level);
  HardenProcess(cfg.allow_core_dumps);
  if (int rc = RunAuditCommands(audit_cmds, cfg); rc >= 0) return rc;  // before Validate: verify needs no master key
  if (int rc = RunBackupCommands(backup_cmds, cfg); rc >= 0) return rc;  // validates itself: verify has no --data
  if (Status s = cfg.Validate(demo->parsed()); !s.ok()) return Fail(s);

  if (int rc = RunAccountCommands(accounts, cfg); rc >= 0) return rc;
  if (int rc = RunKeyRotate(key_cmds, cfg); rc >= 0) return rc;
  if (token_issue->parsed()) {
    std::stringstream cl(token_clearances);
    for (std::string c; std::getline(cl, c, ',');) {
      if (!c.empty()) token_req.clearances.push_back(c);
    }
    return CmdTokenIssue(cfg, token_req, token_minutes);
  }
  if (init->parsed()) return CmdInit(cfg);
  if (serve->parsed()) return CmdServe(cfg);
  if (import->parsed()) return CmdImport(cfg, files, bulk_load);
  if (demo->parsed()) return CmdDemo(cfg, samples_dir);
  return 1;
}

}  // namespace phivault::cli

int main(int argc, char** argv) { return phivault::cli::Main(argc, argv); }
