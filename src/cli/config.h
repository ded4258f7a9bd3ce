// Config: every setting of the phivault binary, from a TOML file and flags.
//
// Precedence: flag > config file > environment (PHIVAULT_MASTER_KEY only) >
// default. Defaults are safe: listen on loopback, 16 MiB bodies, TLS off only
// because no certificate exists yet (configure tls.cert/tls.key for anything
// beyond localhost).
//
// Example phivault.toml:
//   data = "/var/lib/phivault"
//   key_file = "/etc/phivault/master.key"     # or passphrase_file / key_env
//   # allow_core_dumps = true                  # off by default: a core file holds plaintext
//   [server]
//   listen = "0.0.0.0:8443"
//   base_url = "https://vault.example.org"
//   [tls]
//   cert = "/etc/phivault/tls.crt"
//   key = "/etc/phivault/tls.key"
//   [auth]
//   session_idle_seconds = 900
//   [[auth.issuers]]                           # external OpenID Connect providers
//   issuer = "https://login.example.org/realms/hospital"
//   audience = "https://vault.example.org/fhir"
//   jwks_url = "https://login.example.org/realms/hospital/protocol/openid-connect/certs"
//   # or jwks_file = "/etc/phivault/idp-jwks.json"; ca_file = "..." for a private CA
//   role_claim = "role"
//   [audit.siem]                                # stream the audit log to a SIEM (RFC 5425)
//   collector = "siem.example.org:6514"        # HOST:PORT ([v6]:PORT); port defaults to 6514
//   ca_file = "/etc/phivault/siem-ca.pem"      # required: CA the collector's certificate chains to
//   server_name = "siem.example.org"           # optional: name to check (default: the host)
//   client_cert = "/etc/phivault/siem.crt"     # optional client certificate ...
//   client_key = "/etc/phivault/siem.key"      # ... and its key
//   [audit]
//   commit_delay_us = 2000                      # group commit: how long the audit writer may wait
//                                               # for a group to gather under load (0..20000)
//   history_check = "background"                # or "at-open": rehash the whole log before serving
//   [log]
//   level = "info"
#ifndef PHIVAULT_CLI_CONFIG_H_
#define PHIVAULT_CLI_CONFIG_H_

#include <cstdint>
#include <optional>
#include <string>

#include "api/access_control.h"
#include "api/vault.h"
#include "common/log.h"
#include "common/status.h"

namespace CLI {
class App;
}

namespace phivault::cli {

// The SIEM collector ([audit.siem] / --siem-*). Empty collector = no export.
struct SiemConfig {
  std::string collector;  // HOST:PORT
  std::string ca_file, server_name, client_cert, client_key;
  bool enabled() const { return !collector.empty(); }
};

struct Config {
  std::string data_dir;
  crypto::MasterKeySource key;
  std::string listen = "127.0.0.1:8080";
  std::string base_url;  // default: derived from listen and TLS
  int threads = 0;
  size_t max_body_bytes = 16u << 20;
  size_t max_connections = 1024;
  size_t max_connections_per_address = 256;  // 0 = no limit
  int header_timeout_seconds = 10;
  int idle_timeout_seconds = 60;
  int body_timeout_seconds = 30;             // plus 1 s per min_body_rate bytes received
  size_t min_body_rate = 16u << 10;          // bytes per second; 0 = none
  std::string tls_cert, tls_key, tls_client_ca;
  // External OpenID Connect issuers whose tokens are accepted ([[auth.issuers]]).
  std::vector<api::ExternalIssuer> issuers;
  int64_t session_idle_seconds = 15 * 60;
  // Bulk $export files and manifests are deleted this long after the export completes.
  int64_t export_retention_seconds = 60 * 60;
  log::Level log_level = log::Level::kInfo;
  // Core dumps copy decrypted records and keys to disk, so the binary
  // disables them unless this is set (debugging without patient data).
  bool allow_core_dumps = false;
  SiemConfig siem;
  // Like PostgreSQL's commit_delay: under load the audit writer waits up to
  // this long for about as many entries as its last group before one fsync
  // covers them all. 0 syncs whatever is pending at once. An idle log never
  // waits. See bench/README.md for how it moves audited throughput.
  int64_t audit_commit_delay_us = 2000;
  // "background": open checks only the audit records after the latest
  // signed checkpoint and rehashes the older ones while serving (a damaged
  // history found then stops every audited request with 503). "at-open":
  // rehash the whole log before serving, which grows with the log (about
  // 1.5 s per million entries). See docs/AUDIT-LOG-FORMAT.md.
  std::string audit_history_check = "background";

  api::VaultConfig Vault() const;
  std::string BaseUrl() const;
  Status SplitListen(std::string* host, uint16_t* port) const;
  // Checks consistency; fills the key source from PHIVAULT_MASTER_KEY when no
  // other source is given. `demo` picks its own key file.
  Status Validate(bool demo);
};

Status LoadConfigFile(const std::string& path, Config* cfg);
// OK when no SIEM is configured, or when the collector parses and a CA is
// given (client certificate and key together). Part of Config::Validate.
Status ValidateSiem(const SiemConfig& siem);

// Flags mirror the config keys; only flags given on the command line override.
class ConfigFlags {
 public:
  void AddVaultFlags(CLI::App* app);
  void AddServerFlags(CLI::App* app);
  // InvalidArgument for a flag value that does not parse (e.g. --log-level).
  Status ApplyTo(Config* cfg) const;

 private:
  std::optional<std::string> data_dir_, key_file_, passphrase_file_, key_env_, listen_, base_url_, tls_cert_, tls_key_,
      tls_client_ca_, log_level_, oidc_issuer_, oidc_audience_, oidc_jwks_file_, oidc_jwks_url_, oidc_ca_file_,
      oidc_role_claim_, siem_collector_, siem_ca_, siem_server_name_, siem_client_cert_, siem_client_key_,
      audit_history_check_;
  std::optional<int> threads_, header_timeout_, idle_timeout_, body_timeout_;
  std::optional<size_t> min_body_rate_;
  bool allow_core_dumps_ = false;
  std::optional<int64_t> audit_commit_delay_us_;
  std::optional<size_t> max_body_bytes_, max_connections_, max_connections_per_address_;
};

}  // namespace phivault::cli

#endif  // PHIVAULT_CLI_CONFIG_H_
