// Backup subcommands (src/backup/backup.h does the work):
//
//   phivault backup        --data DIR --out FILE     <key flags>
//   phivault backup verify --in FILE                 <key flags> [--checkpoint FILE… [--allow-uncovered]]
//   phivault restore       --from FILE --data NEWDIR <key flags> [--audit-data DIR]
//                                                    [--checkpoint FILE… [--allow-uncovered]]
//
// `backup` is safe while `serve` runs (it takes no vault lock) and records a
// `backup` audit entry through DIR's audit inbox, also when refused (wrong
// master key: outcome denied). `restore` writes into a new or empty
// directory only, after checking everything, and records a `restore` entry
// in the restored vault; a refused restore is recorded in the inbox of the
// vault given with --audit-data (it has no vault of its own). `verify`
// writes nothing and is not audited: it reads only the backup file.
// `--checkpoint` names files of checkpoints published outside the vault
// (`phivault audit publish`); the backup's audit log must agree with every
// one that it is old enough to cover, and at least one must be, unless
// --allow-uncovered (backup::VerifyBackup).
//
// Exit codes as elsewhere: 0 ok, 3 wrong master key, 4 damaged or tampered
// backup (one line naming what failed), 1 anything else.
//
// Wiring (main.cc): AddBackupCommands(app, &state, add_common) before
// parsing; RunBackupCommands(state, cfg) after the config file and flags
// are applied and BEFORE cfg.Validate() (verify has no --data). Returns the
// exit code, or -1 when none of these subcommands was given.
//
// Thread-safety: main thread of the CLI only. Lifetime: `state` must
// outlive parsing (CLI11 writes the flag values into it).
#ifndef PHIVAULT_CLI_BACKUP_COMMANDS_H_
#define PHIVAULT_CLI_BACKUP_COMMANDS_H_

#include <functional>
#include <string>
#include <vector>

#include "cli/config.h"

namespace CLI {
class App;
}

namespace phivault::cli {

struct BackupCommandState {
  std::string out, in, from, audit_data;
  std::vector<std::string> checkpoints;
  bool allow_uncovered = false;
  CLI::App* backup = nullptr;
  CLI::App* verify = nullptr;
  CLI::App* restore = nullptr;
};

void AddBackupCommands(CLI::App& app, BackupCommandState* state, const std::function<void(CLI::App*)>& add_common);
int RunBackupCommands(const BackupCommandState& state, const Config& cfg);

}  // namespace phivault::cli

#endif  // PHIVAULT_CLI_BACKUP_COMMANDS_H_
