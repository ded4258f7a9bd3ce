// Admin subcommands for built-in accounts and devices:
//
//   phivault user add       --username U --role R [--fhir-user T/id] [--clearance R,HIV]
//                           [--scopes "..."] [--mfa] [--password-file F]
//   phivault user disable   --username U
//   phivault user reset-mfa --username U
//   phivault user list
//   phivault device add     --device-id ID --cert FILE --patient ID [--patient ID ...]
//   phivault device list
//   phivault device disable --device-id ID
//
// each with the usual --config / --data / key flags. They work on
// DIR/accounts.db (store::AccountStore) and need only the keyring, not the
// vault database, so they can run while `serve` does (SQLite locking
// serialises the two processes; changes apply to the server's next login).
//
// Secrets: the password comes from --password-file (mode 0600, first line;
// "-" reads one line from stdin), else from the terminal without echo
// (asked twice), else one line from stdin; it must pass the password policy
// and is wiped after hashing (Argon2id, default cost). For roles that need
// MFA (and for --mfa) a TOTP secret is generated and its otpauth:// URI is
// printed to stdout exactly once; it is stored only sealed and never
// logged. `user list` prints no hash or secret.
//
// Every admin action calls AccountCommandState::audit (event, user name,
// "cli", outcome); the default writes one operator log line without the
// user name. The lead can point it at the audit log.
//
// Wiring (main.cc):
//   AccountCommandState accounts;
//   AddAccountCommands(app, &accounts, add_common);
//   ... after the config is loaded and validated:
//   if (int rc = RunAccountCommands(accounts, cfg); rc >= 0) return rc;
//
// Thread-safety: for the main thread of the CLI only. Lifetime: `state` must
// outlive parsing (CLI11 writes the flag values into it).
#ifndef PHIVAULT_CLI_ACCOUNT_COMMANDS_H_
#define PHIVAULT_CLI_ACCOUNT_COMMANDS_H_

#include <functional>
#include <string>
#include <vector>

#include "api/auth_service.h"
#include "cli/config.h"

namespace CLI {
class App;
}

namespace phivault::cli {

struct AccountCommandState {
  // Flag values.
  std::string username, role, fhir_user, clearances, scopes, password_file;
  bool mfa = false;
  std::string device_id, cert_file;
  std::vector<std::string> patients;
  // Admin audit callback; defaults to an operator log line.
  api::AuditHook audit;

  // The leaf subcommands (set by AddAccountCommands).
  CLI::App* user_add = nullptr;
  CLI::App* user_disable = nullptr;
  CLI::App* user_reset_mfa = nullptr;
  CLI::App* user_list = nullptr;
  CLI::App* device_add = nullptr;
  CLI::App* device_list = nullptr;
  CLI::App* device_disable = nullptr;
};

// Adds the `user` and `device` command groups to `app`. `add_common` is
// called for every leaf subcommand (main.cc's --config + vault flags).
void AddAccountCommands(CLI::App& app, AccountCommandState* state, const std::function<void(CLI::App*)>& add_common);

// Runs the account subcommand that was parsed and returns its exit code
// (0 ok, 1 error, 3 wrong key, 4 data integrity), or -1 if none of them was
// parsed. REQUIRES: cfg was loaded and validated.
int RunAccountCommands(const AccountCommandState& state, const Config& cfg);

// Lower-case hex SHA-256 of the certificate's DER encoding and its RFC 2253
// subject, computed exactly as the HTTP server does for mTLS clients, from
// the first certificate of a PEM file.
struct CertIdentity {
  std::string sha256;
  std::string subject;
};
StatusOr<CertIdentity> ReadCertIdentity(const std::string& pem_file);

}  // namespace phivault::cli

#endif  // PHIVAULT_CLI_ACCOUNT_COMMANDS_H_
