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

struct Config {
  std::string data_dir;
  crypto::MasterKeySource key;
  std::string listen = "127.0.0.1:8080";
  std::string base_url;  // default: derived from listen and TLS
  int threads = 0;
  size_t max_body_bytes = 16u << 20;
  size_t max_connections = 1024;
  int header_timeout_seconds = 10;
  int idle_timeout_seconds = 60;
  std::string tls_cert, tls_key, tls_client_ca;
  // External OpenID Connect issuers whose tokens are accepted ([[auth.issuers]]).
  std::vector<api::ExternalIssuer> issuers;
  int64_t session_idle_seconds = 15 * 60;
  log::Level log_level = log::Level::kInfo;

  api::VaultConfig Vault() const { return {data_dir, key}; }
  std::string BaseUrl() const;
  Status SplitListen(std::string* host, uint16_t* port) const;
  // Checks consistency; fills the key source from PHIVAULT_MASTER_KEY when no
  // other source is given. `demo` picks its own key file.
  Status Validate(bool demo);
};

Status LoadConfigFile(const std::string& path, Config* cfg);

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
      oidc_role_claim_;
  std::optional<int> threads_, header_timeout_, idle_timeout_;
  std::optional<size_t> max_body_bytes_, max_connections_;
};

}  // namespace phivault::cli

#endif  // PHIVAULT_CLI_CONFIG_H_
