// Starting the SIEM export (audit/siem_exporter.h) from the configuration,
// for `serve`: [audit.siem] in the TOML file or the --siem-* flags
// (cli/config.h).
//
// Wiring (main.cc StartServing / WaitAndShutdown), once the AuditLog is open:
//   PV_ASSIGN_OR_RETURN(s.siem, StartSiemExport(cfg, *s.audit_log, vault->keyring().vault_id()));
//   ... on shutdown, BEFORE the AuditLog is destroyed:
//   if (served.siem) served.siem->Stop();   (or served.siem.reset())
// and, after each durable append, optionally served.siem->Notify() to send
// at once instead of at the next poll (200 ms).
//
// Thread-safety: call from the main thread. Lifetime: the returned exporter
// reads `log` until stopped; `log` must outlive it.
#ifndef PHIVAULT_CLI_SIEM_EXPORT_H_
#define PHIVAULT_CLI_SIEM_EXPORT_H_

#include <memory>
#include <string>

#include "audit/audit_log.h"
#include "audit/siem_exporter.h"
#include "cli/config.h"

namespace phivault::cli {

// The exporter options for this configuration. REQUIRES cfg.siem.enabled().
StatusOr<audit::SiemExporterOptions> SiemOptions(const Config& cfg, const std::string& vault_id);

// Starts streaming `log` to the configured collector; nullptr (and OK) when
// no collector is configured. Errors: bad settings or unreadable
// certificate files (InvalidArgument), a damaged cursor (DataLoss). A
// collector that is down is not an error: the exporter retries on its own.
StatusOr<std::unique_ptr<audit::SiemExporter>> StartSiemExport(const Config& cfg, const audit::AuditLog& log,
                                                              const std::string& vault_id);

}  // namespace phivault::cli

#endif  // PHIVAULT_CLI_SIEM_EXPORT_H_
