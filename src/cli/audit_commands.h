// `phivault audit ...`: the operator and auditor side of the audit log.
//
//   phivault audit pubkey  --data DIR                       print the checkpoint verifier key
//   phivault audit verify  --data DIR [--vkey KEY|FILE] [--checkpoint FILE ...]
//   phivault audit export  --data DIR --out DIR2 [--vkey KEY|FILE]
//   phivault audit publish --data DIR --to FILE|syslog+tls://HOST:PORT [--follow]
//                          [--ca FILE] [--client-cert FILE --client-key FILE] [--server-name NAME]
//                          [--vkey KEY|FILE] [--interval-ms N]
//
// with the usual --config and key flags. Which commands need the master key:
//   * pubkey: yes (the key is derived from the keyring's audit signing seed).
//   * verify: no. It needs the verifier key only, taken from --vkey (a key
//     string or a file holding one), else from DIR/vkey.txt when DIR is an
//     export, else from the keyring when a master key is configured. An
//     auditor should pin the key with --vkey (obtained once from `audit
//     pubkey` through a trusted channel): an export's own vkey.txt proves
//     only that the export is self-consistent, which is why verify says so
//     when it used it.
//   * export: no key to copy the files (see audit/publish.h, they are only
//     read, so it is safe while `serve` runs); the verifier key written to
//     vkey.txt comes from --vkey or the keyring.
//   * publish: the verifier key (--vkey or keyring) so that only checkpoints
//     that verify are published.
//
// verify reads the files as they are: on a vault that `serve` is writing to,
// the record being appended at that moment can look torn and be reported as
// damage at the last index. Verify a running vault through `audit export`
// (which stops at the last complete record) or while it is stopped.
//
// verify exits 0 when the log is intact, 4 when it found a problem (it
// prints the kind, the first bad index and one line of reason), 1 for
// unusable inputs. Given --checkpoint files (published notes, a collector's
// log with PVCKPT1: lines, or a file from GET /audit/checkpoint), a history
// rewritten and re-signed even with the real key is reported as a fork.
//
// publish appends every checkpoint of DIR/audit/checkpoints larger than the
// largest already published. What was published is read back from the
// target file itself, or for syslog from DIR/audit/published-HOST_PORT
// (a local copy of every note sent, appended after the collector's TCP
// stack acknowledged it: at-least-once delivery). A published checkpoint
// whose root differs from the log's checkpoint of the same size is a fork:
// publish refuses to continue and exits 4. --follow polls every
// --interval-ms (default 1000) until SIGTERM or SIGINT, reconnecting to a
// collector that went away. For syslog, --ca/--client-cert/--client-key
// default to the [audit.siem] settings.
//
// Wiring (main.cc):
//   AuditCommandState audit_cmds;
//   AddAuditCommands(app, &audit_cmds, add_common);
//   ... after the config file and flags are applied, BEFORE cfg.Validate()
//   (verify and export must run without a master key):
//   if (int rc = RunAuditCommands(audit_cmds, cfg); rc >= 0) return rc;
//
// Thread-safety: main thread of the CLI only. Lifetime: `state` must
// outlive parsing.
#ifndef PHIVAULT_CLI_AUDIT_COMMANDS_H_
#define PHIVAULT_CLI_AUDIT_COMMANDS_H_

#include <functional>
#include <string>
#include <vector>

#include "cli/config.h"

namespace CLI {
class App;
}

namespace phivault::cli {

struct AuditCommandState {
  std::string vkey, out_dir, to, ca_file, client_cert, client_key, server_name;
  std::vector<std::string> checkpoints;
  bool follow = false;
  int interval_ms = 1000;

  CLI::App* pubkey = nullptr;
  CLI::App* verify = nullptr;
  CLI::App* export_cmd = nullptr;
  CLI::App* publish = nullptr;
};

// Adds the `audit` command group. `add_common` adds --config and the vault
// flags to each leaf.
void AddAuditCommands(CLI::App& app, AuditCommandState* state, const std::function<void(CLI::App*)>& add_common);

// Runs the audit subcommand that was parsed; its exit code, or -1 if none
// was. REQUIRES: config file and flags applied (Validate not needed).
int RunAuditCommands(const AuditCommandState& state, const Config& cfg);

}  // namespace phivault::cli

#endif  // PHIVAULT_CLI_AUDIT_COMMANDS_H_
