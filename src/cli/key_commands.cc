#include "cli/key_commands.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "audit/entry.h"
#include "audit/inbox.h"
#include "crypto/keyring.h"

namespace phivault::cli {
namespace {

int Report(const Status& s) {
  std::fprintf(stderr, "phivault keys: %s\n", s.message().c_str());
  return s.code() == StatusCode::kPermissionDenied ? 3 : 1;
}

// Held for the life of the object; released by the kernel if we die.
class RotationLock {
 public:
  static StatusOr<RotationLock> Take(const std::string& data_dir) {
    const std::string path = data_dir + "/keyring.lock";
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return Unavailable("cannot open " + path + ": " + std::strerror(errno));
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      ::close(fd);
      return Unavailable("another key rotation of " + data_dir + " is running");
    }
    return RotationLock(fd);
  }
  RotationLock(RotationLock&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  RotationLock(const RotationLock&) = delete;
  RotationLock& operator=(const RotationLock&) = delete;
  RotationLock& operator=(RotationLock&&) = delete;
  ~RotationLock() {
    if (fd_ >= 0) ::close(fd_);
  }

 private:
  explicit RotationLock(int fd) : fd_(fd) {}
  int fd_;
};

}  // namespace

void AddKeyCommands(CLI::App& app, KeyCommandState* s, const std::function<void(CLI::App*)>& add_common) {
  CLI::App* keys = app.add_subcommand("keys", "key management");
  keys->require_subcommand(1);
  s->generate = keys->add_subcommand("generate", "write a new 32-byte master key file (mode 0600)");
  s->generate->add_option("--out", s->out, "where to write the key file")->required();
  s->rotate = keys->add_subcommand(
      "rotate-master", "rewrap the vault's keys under a new master key (no data is re-encrypted; safe while serving)");
  add_common(s->rotate);
  auto* f = s->rotate->add_option("--new-key-file", s->new_key_file, "the new master key file (32 bytes, mode 0600)");
  auto* p = s->rotate->add_option("--new-passphrase-file", s->new_passphrase_file,
                                  "a file with the new passphrase (Argon2id), mode 0600");
  auto* e = s->rotate->add_option("--new-key-env", s->new_key_env, "environment variable holding the new key (hex)");
  f->excludes(p)->excludes(e);
  p->excludes(e);
}

int RunKeyGenerate(const KeyCommandState& s) {
  if (s.generate == nullptr || !s.generate->parsed()) return -1;
  Status st = crypto::GenerateKeyFile(s.out);
  if (!st.ok()) return Report(st);
  std::printf("wrote a new master key to %s; keep it outside the data directory and back it up offline\n",
              s.out.c_str());
  return 0;
}

int RunKeyRotate(const KeyCommandState& s, const Config& cfg) {
  if (s.rotate == nullptr || !s.rotate->parsed()) return -1;
  crypto::MasterKeySource next = cfg.key;  // keeps the configured Argon2id cost
  next.key_file = s.new_key_file;
  next.passphrase_file = s.new_passphrase_file;
  next.key_env = s.new_key_env;
  if (next.key_file.empty() && next.passphrase_file.empty() && next.key_env.empty()) {
    return Report(InvalidArgument("give the new master key: --new-key-file, --new-passphrase-file or --new-key-env"));
  }
  auto lock = RotationLock::Take(cfg.data_dir);
  if (!lock.ok()) return Report(lock.status());
  const Status rotated = crypto::Keyring::RotateMasterKey(cfg.data_dir, cfg.key, next);

  audit::AuditEntry entry =
      audit::CommandEntry(audit::AuditAction::kKeyChange, "master-key-rotation", "phivault keys rotate-master");
  entry.outcome = rotated.ok() ? audit::AuditOutcome::kAllowed : audit::AuditOutcome::kDenied;
  entry.rule = rotated.ok() ? "master-key" : std::string(StatusCodeName(rotated.code()));
  // A vault that does not exist has no log to record into.
  const bool vault_exists = rotated.code() != StatusCode::kNotFound;
  const Status recorded = vault_exists ? audit::SubmitToInbox(cfg.data_dir, entry) : Status::Ok();
  if (!rotated.ok()) return Report(rotated);
  std::printf("the vault in %s now opens only with the new master key; destroy the old one once you have "
              "checked that the new one opens it\n",
              cfg.data_dir.c_str());
  if (!recorded.ok()) {
    std::fprintf(stderr, "phivault keys: the rotation took effect but its audit entry could not be queued: %s\n",
                 recorded.message().c_str());
    return 1;
  }
  return 0;
}

}  // namespace phivault::cli
