// Key management subcommands:
//
//   phivault keys generate      --out FILE
//   phivault keys rotate-master --data DIR <current key flags>
//                               (--new-key-file F | --new-passphrase-file F | --new-key-env VAR)
//
// `generate` writes a new 32-byte master key file (mode 0600). `rotate-master`
// rewraps the vault's key-encryption key under a new master key
// (crypto::Keyring::RotateMasterKey): no data is re-encrypted, the old master
// key stops opening the vault, and a running `serve` is unaffected, so it is
// safe to run while serving. Concurrent rotations are serialised by an
// exclusive lock on DIR/keyring.lock. Every attempt, successful or refused
// (a wrong current key), becomes a `key-change` audit entry through the
// audit inbox (audit/inbox.h); it names the operating system user and never
// any key material.
//
// Wiring (main.cc): AddKeyCommands(app, &state, add_common) before parsing;
// RunKeyGenerate(state) before the config is loaded (it needs none);
// RunKeyRotate(state, cfg) once the config is validated. Each returns the
// exit code, or -1 when its subcommand was not the one given.
//
// Thread-safety: main thread of the CLI only. Lifetime: `state` must outlive
// parsing (CLI11 writes the flag values into it).
#ifndef PHIVAULT_CLI_KEY_COMMANDS_H_
#define PHIVAULT_CLI_KEY_COMMANDS_H_

#include <functional>
#include <string>

#include "cli/config.h"

namespace CLI {
class App;
}

namespace phivault::cli {

struct KeyCommandState {
  std::string out;  // generate --out
  std::string new_key_file, new_passphrase_file, new_key_env;
  CLI::App* generate = nullptr;
  CLI::App* rotate = nullptr;
};

void AddKeyCommands(CLI::App& app, KeyCommandState* state, const std::function<void(CLI::App*)>& add_common);
int RunKeyGenerate(const KeyCommandState& state);
int RunKeyRotate(const KeyCommandState& state, const Config& cfg);

}  // namespace phivault::cli

#endif  // PHIVAULT_CLI_KEY_COMMANDS_H_
