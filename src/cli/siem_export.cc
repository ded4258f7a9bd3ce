#include "cli/siem_export.h"

#include "audit/publish.h"
#include "common/log.h"

namespace phivault::cli {

StatusOr<audit::SiemExporterOptions> SiemOptions(const Config& cfg, const std::string& vault_id) {
  PV_RETURN_IF_ERROR(ValidateSiem(cfg.siem));
  if (!cfg.siem.enabled()) return InvalidArgument("no SIEM collector configured");
  PV_ASSIGN_OR_RETURN(audit::SyslogTarget t, audit::ParseSyslogUrl("syslog+tls://" + cfg.siem.collector));
  audit::SiemExporterOptions o;
  o.data_dir = cfg.data_dir;
  o.host = t.host;
  o.port = t.port;
  o.server_name = cfg.siem.server_name;
  o.ca_file = cfg.siem.ca_file;
  o.client_cert_file = cfg.siem.client_cert;
  o.client_key_file = cfg.siem.client_key;
  o.vault_id = vault_id;
  return o;
}

StatusOr<std::unique_ptr<audit::SiemExporter>> StartSiemExport(const Config& cfg, const audit::AuditLog& log,
                                                              const std::string& vault_id) {
  if (!cfg.siem.enabled()) {
    PV_RETURN_IF_ERROR(ValidateSiem(cfg.siem));  // e.g. a CA without a collector: say so
    return std::unique_ptr<audit::SiemExporter>();
  }
  PV_ASSIGN_OR_RETURN(audit::SiemExporterOptions o, SiemOptions(cfg, vault_id));
  return audit::SiemExporter::Start(log, std::move(o));
}

}  // namespace phivault::cli
