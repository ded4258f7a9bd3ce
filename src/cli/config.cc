#include "cli/config.h"

#include <CLI/CLI.hpp>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <toml++/toml.h>

#include "audit/publish.h"

namespace phivault::cli {
namespace {

StatusOr<log::Level> ParseLevel(std::string_view s) {
  if (s == "debug") return log::Level::kDebug;
  if (s == "info") return log::Level::kInfo;
  if (s == "warn") return log::Level::kWarn;
  if (s == "error") return log::Level::kError;
  return InvalidArgument("log level must be debug, info, warn or error");
}

}  // namespace

Status ValidateSiem(const SiemConfig& siem) {
  const bool any = !siem.collector.empty() || !siem.ca_file.empty() || !siem.server_name.empty() ||
                   !siem.client_cert.empty() || !siem.client_key.empty();
  if (!any) return Status::Ok();
  if (siem.collector.empty()) return InvalidArgument("audit.siem settings need audit.siem.collector (HOST:PORT)");
  if (!audit::ParseSyslogUrl("syslog+tls://" + siem.collector).ok()) {
    return InvalidArgument("audit.siem.collector must be HOST:PORT (IPv6 as [ADDR]:PORT)");
  }
  if (siem.ca_file.empty()) return InvalidArgument("audit.siem.ca_file is required: the CA of the collector's certificate");
  if (siem.client_cert.empty() != siem.client_key.empty()) {
    return InvalidArgument("audit.siem.client_cert and audit.siem.client_key go together");
  }
  return Status::Ok();
}

api::VaultConfig Config::Vault() const {
  api::VaultConfig v{data_dir, key};
  v.audit.max_gather = std::chrono::microseconds(audit_commit_delay_us);
  v.audit.history_check = audit_history_check == "at-open" ? audit::AuditLogOptions::HistoryCheck::kAtOpen
                                                            : audit::AuditLogOptions::HistoryCheck::kBackground;
  return v;
}

std::string Config::BaseUrl() const {
  if (!base_url.empty()) return base_url;
  return (tls_cert.empty() ? "http://" : "https://") + listen;
}

Status Config::SplitListen(std::string* host, uint16_t* port) const {
  auto colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0) return InvalidArgument("--listen must be HOST:PORT");
  std::string h = listen.substr(0, colon);
  if (h.size() > 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  unsigned p = 0;
  std::string_view ps = std::string_view(listen).substr(colon + 1);
  auto [end, ec] = std::from_chars(ps.data(), ps.data() + ps.size(), p);
  if (ec != std::errc() || end != ps.data() + ps.size() || p > 65535) return InvalidArgument("--listen has a bad port");
  *host = h;
  *port = static_cast<uint16_t>(p);
  return Status::Ok();
}

Status Config::Validate(bool demo) {
  if (data_dir.empty() && !demo) return InvalidArgument("--data DIR is required (or `data` in the config file)");
  int sources = !key.key_file.empty() + !key.passphrase_file.empty() + !key.key_env.empty();
  if (sources == 0 && std::getenv("PHIVAULT_MASTER_KEY") != nullptr) {
    key.key_env = "PHIVAULT_MASTER_KEY";
    sources = 1;
  }
  if (sources > 1) return InvalidArgument("give exactly one of --key-file, --passphrase-file, --key-env");
  if (sources == 0 && !demo) {
    return InvalidArgument(
        "no master key: give --key-file F (create one with `phivault keys generate --out F`), "
        "--passphrase-file F, or set PHIVAULT_MASTER_KEY");
  }
  if (tls_cert.empty() != tls_key.empty()) return InvalidArgument("tls.cert and tls.key go together");
  if (max_body_bytes < 1024) return InvalidArgument("max_body_bytes is too small");
  if (header_timeout_seconds < 1 || idle_timeout_seconds < 1 || body_timeout_seconds < 1) {
    return InvalidArgument("header, idle and body timeouts must be at least 1 second");
  }
  if (min_body_rate != 0 && min_body_rate < 1024) {
    // A byte a second would earn a trickling client a second a byte.
    return InvalidArgument("server.min_body_rate must be 0 (no extension) or at least 1024 bytes per second");
  }
  if (export_retention_seconds < 1) return InvalidArgument("export.retention_seconds must be at least 1");
  if (audit_commit_delay_us < 0 || audit_commit_delay_us > 20000) {
    return InvalidArgument("audit.commit_delay_us must be between 0 and 20000");
  }
  if (audit_history_check != "background" && audit_history_check != "at-open") {
    return InvalidArgument("audit.history_check must be \"background\" or \"at-open\"");
  }
  PV_RETURN_IF_ERROR(ValidateSiem(siem));
  std::string h;
  uint16_t p;
  return SplitListen(&h, &p);
}

Status LoadConfigFile(const std::string& path, Config* cfg) {
  toml::parse_result parsed = toml::parse_file(path);
  if (!parsed) {
    return InvalidArgument("config " + path + ": " + std::string(parsed.error().description()) + " at line " +
                           std::to_string(parsed.error().source().begin.line));
  }
  const toml::table& t = parsed.table();
  auto str = [&](std::string_view key, std::string* out) {
    if (auto v = t.at_path(key).value<std::string>()) *out = *v;
  };
  str("data", &cfg->data_dir);
  str("key_file", &cfg->key.key_file);
  str("passphrase_file", &cfg->key.passphrase_file);
  str("key_env", &cfg->key.key_env);
  if (auto v = t.at_path("allow_core_dumps").value<bool>()) cfg->allow_core_dumps = *v;
  str("server.listen", &cfg->listen);
  str("server.base_url", &cfg->base_url);
  str("tls.cert", &cfg->tls_cert);
  str("tls.key", &cfg->tls_key);
  str("tls.client_ca", &cfg->tls_client_ca);
  if (auto v = t.at_path("server.threads").value<int64_t>()) cfg->threads = static_cast<int>(*v);
  if (auto v = t.at_path("server.max_body_bytes").value<int64_t>()) cfg->max_body_bytes = static_cast<size_t>(*v);
  if (auto v = t.at_path("server.max_connections").value<int64_t>()) cfg->max_connections = static_cast<size_t>(*v);
  if (auto v = t.at_path("server.max_connections_per_address").value<int64_t>()) {
    if (*v < 0) return InvalidArgument("server.max_connections_per_address must be 0 (no limit) or more");
    cfg->max_connections_per_address = static_cast<size_t>(*v);
  }
  if (auto v = t.at_path("server.header_timeout_seconds").value<int64_t>()) cfg->header_timeout_seconds = static_cast<int>(*v);
  if (auto v = t.at_path("server.idle_timeout_seconds").value<int64_t>()) cfg->idle_timeout_seconds = static_cast<int>(*v);
  if (auto v = t.at_path("server.body_timeout_seconds").value<int64_t>()) cfg->body_timeout_seconds = static_cast<int>(*v);
  if (auto v = t.at_path("server.min_body_rate").value<int64_t>()) {
    if (*v < 0) return InvalidArgument("server.min_body_rate must not be negative");
    cfg->min_body_rate = static_cast<size_t>(*v);
  }
  if (auto v = t.at_path("auth.session_idle_seconds").value<int64_t>()) cfg->session_idle_seconds = *v;
  if (auto v = t.at_path("export.retention_seconds").value<int64_t>()) cfg->export_retention_seconds = *v;
  if (auto v = t.at_path("audit.commit_delay_us").value<int64_t>()) cfg->audit_commit_delay_us = *v;
  str("audit.history_check", &cfg->audit_history_check);
  if (const toml::array* issuers = t.at_path("auth.issuers").as_array()) {
    for (const toml::node& n : *issuers) {
      const toml::table* it = n.as_table();
      if (!it) return InvalidArgument("config " + path + ": auth.issuers must be an array of tables");
      api::ExternalIssuer e;
      e.issuer = it->at_path("issuer").value_or(std::string());
      e.jwks_file = it->at_path("jwks_file").value_or(std::string());
      e.jwks_url = it->at_path("jwks_url").value_or(std::string());
      e.ca_file = it->at_path("ca_file").value_or(std::string());
      e.role_claim = it->at_path("role_claim").value_or(std::string("role"));
      e.clearance_claim = it->at_path("clearance_claim").value_or(std::string("phivault_clearance"));
      if (auto aud = it->at_path("audience").value<std::string>()) e.audiences.push_back(*aud);
      if (e.issuer.empty() || e.audiences.empty() || e.jwks_file.empty() == e.jwks_url.empty()) {
        return InvalidArgument("config " + path +
                               ": each auth.issuers entry needs issuer, audience and one of jwks_file or jwks_url");
      }
      cfg->issuers.push_back(std::move(e));
    }
  }
  str("audit.siem.collector", &cfg->siem.collector);
  str("audit.siem.ca_file", &cfg->siem.ca_file);
  str("audit.siem.server_name", &cfg->siem.server_name);
  str("audit.siem.client_cert", &cfg->siem.client_cert);
  str("audit.siem.client_key", &cfg->siem.client_key);
  if (auto v = t.at_path("log.level").value<std::string>()) {
    PV_ASSIGN_OR_RETURN(cfg->log_level, ParseLevel(*v));
  }
  return Status::Ok();
}

void ConfigFlags::AddVaultFlags(CLI::App* app) {
  app->add_option("--data", data_dir_, "data directory");
  app->add_option("--key-file", key_file_, "master key file: 32 random bytes, mode 0600");
  app->add_option("--passphrase-file", passphrase_file_, "file with a passphrase (Argon2id), mode 0600");
  app->add_option("--key-env", key_env_, "environment variable holding the master key as 64 hex characters");
  app->add_option("--log-level", log_level_, "debug, info, warn or error");
  app->add_flag("--allow-core-dumps", allow_core_dumps_,
                "let the process dump core (off by default: a core file holds decrypted records and keys)");
  app->add_option("--audit-history-check", audit_history_check_,
                  "background (default): check the audit log's older records while serving; at-open: before");
}

void ConfigFlags::AddServerFlags(CLI::App* app) {
  app->add_option("--listen", listen_, "HOST:PORT to listen on (default 127.0.0.1:8080)");
  app->add_option("--base-url", base_url_, "public base URL used in links");
  app->add_option("--threads", threads_, "network threads (default: one per core)");
  app->add_option("--max-body-bytes", max_body_bytes_, "largest request body accepted (default 16 MiB)");
  app->add_option("--max-connections", max_connections_, "concurrent connections (default 1024)");
  app->add_option("--max-connections-per-address", max_connections_per_address_,
                  "concurrent connections from one client IP address (default 256, 0 = no limit)");
  app->add_option("--header-timeout", header_timeout_, "seconds a client has to send its headers (default 10)");
  app->add_option("--idle-timeout", idle_timeout_, "seconds an idle keep-alive connection stays open (default 60)");
  app->add_option("--body-timeout", body_timeout_,
                  "seconds a request body may take, plus one per --min-body-rate bytes received (default 30)");
  app->add_option("--min-body-rate", min_body_rate_,
                  "bytes per second that earn a slow upload more time (default 16384; 0 = none)");
  app->add_option("--audit-commit-delay-us", audit_commit_delay_us_,
                  "how long the audit writer may wait for a group under load (default 2000, 0..20000)");
  app->add_option("--tls-cert", tls_cert_, "TLS certificate chain (PEM); with --tls-key serves HTTPS only");
  app->add_option("--tls-key", tls_key_, "TLS private key (PEM)");
  app->add_option("--tls-client-ca", tls_client_ca_, "CA bundle for device client certificates (mTLS)");
  app->add_option("--oidc-issuer", oidc_issuer_, "accept tokens from this OpenID Connect issuer (iss)");
  app->add_option("--oidc-audience", oidc_audience_, "audience (aud) those tokens must carry");
  app->add_option("--oidc-jwks-file", oidc_jwks_file_, "the issuer's JWKS (JSON file), or");
  app->add_option("--oidc-jwks-url", oidc_jwks_url_, "the issuer's JWKS URL (https, refreshed hourly)");
  app->add_option("--oidc-ca-file", oidc_ca_file_, "CA bundle for --oidc-jwks-url (default: system store)");
  app->add_option("--oidc-role-claim", oidc_role_claim_, "claim holding the phivault role (default: role)");
  app->add_option("--siem-collector", siem_collector_, "stream the audit log to this RFC 5425 collector (HOST:PORT)");
  app->add_option("--siem-ca", siem_ca_, "CA bundle the collector's certificate must chain to");
  app->add_option("--siem-server-name", siem_server_name_, "name in the collector's certificate (default: its host)");
  app->add_option("--siem-client-cert", siem_client_cert_, "client certificate for the collector (PEM)");
  app->add_option("--siem-client-key", siem_client_key_, "client key for the collector (PEM)");
}

Status ConfigFlags::ApplyTo(Config* cfg) const {
  if (data_dir_) cfg->data_dir = *data_dir_;
  if (key_file_ || passphrase_file_ || key_env_) cfg->key = crypto::MasterKeySource{};
  if (key_file_) cfg->key.key_file = *key_file_;
  if (passphrase_file_) cfg->key.passphrase_file = *passphrase_file_;
  if (key_env_) cfg->key.key_env = *key_env_;
  if (listen_) cfg->listen = *listen_;
  if (base_url_) cfg->base_url = *base_url_;
  if (threads_) cfg->threads = *threads_;
  if (max_body_bytes_) cfg->max_body_bytes = *max_body_bytes_;
  if (max_connections_) cfg->max_connections = *max_connections_;
  if (max_connections_per_address_) cfg->max_connections_per_address = *max_connections_per_address_;
  if (header_timeout_) cfg->header_timeout_seconds = *header_timeout_;
  if (idle_timeout_) cfg->idle_timeout_seconds = *idle_timeout_;
  if (body_timeout_) cfg->body_timeout_seconds = *body_timeout_;
  if (min_body_rate_) cfg->min_body_rate = *min_body_rate_;
  if (audit_commit_delay_us_) cfg->audit_commit_delay_us = *audit_commit_delay_us_;
  if (audit_history_check_) cfg->audit_history_check = *audit_history_check_;
  if (tls_cert_) cfg->tls_cert = *tls_cert_;
  if (tls_key_) cfg->tls_key = *tls_key_;
  if (tls_client_ca_) cfg->tls_client_ca = *tls_client_ca_;
  if (log_level_) {
    PV_ASSIGN_OR_RETURN(cfg->log_level, ParseLevel(*log_level_));
  }
  if (allow_core_dumps_) cfg->allow_core_dumps = true;
  if (siem_collector_) cfg->siem.collector = *siem_collector_;
  if (siem_ca_) cfg->siem.ca_file = *siem_ca_;
  if (siem_server_name_) cfg->siem.server_name = *siem_server_name_;
  if (siem_client_cert_) cfg->siem.client_cert = *siem_client_cert_;
  if (siem_client_key_) cfg->siem.client_key = *siem_client_key_;
  if (oidc_issuer_ || oidc_audience_ || oidc_jwks_file_ || oidc_jwks_url_) {
    if (!oidc_issuer_ || !oidc_audience_ || oidc_jwks_file_.has_value() == oidc_jwks_url_.has_value()) {
      return InvalidArgument("--oidc-issuer and --oidc-audience go with one of --oidc-jwks-file or --oidc-jwks-url");
    }
    api::ExternalIssuer e;
    e.issuer = *oidc_issuer_;
    e.audiences = {*oidc_audience_};
    e.jwks_file = oidc_jwks_file_.value_or("");
    e.jwks_url = oidc_jwks_url_.value_or("");
    e.ca_file = oidc_ca_file_.value_or("");
    if (oidc_role_claim_) e.role_claim = *oidc_role_claim_;
    cfg->issuers.push_back(std::move(e));
  }
  return Status::Ok();
}

}  // namespace phivault::cli
