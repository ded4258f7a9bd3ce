#include "cli/backup_commands.h"

#include <CLI/CLI.hpp>
#include <cstdio>

#include "audit/publish.h"
#include "backup/backup.h"
#include "fhir/time.h"

namespace phivault::cli {
namespace {

int Report(std::string_view command, const Status& s) {
  std::fprintf(stderr, "phivault %s: FAILED: %s\n", std::string(command).c_str(), s.message().c_str());
  if (s.code() == StatusCode::kPermissionDenied) return 3;
  return s.code() == StatusCode::kDataLoss ? 4 : 1;
}

std::string Describe(const backup::BackupSummary& s) {
  return "vault " + s.header.vault_id + ", backup " + backup::BackupIdHex(s.header) + ", created " +
         fhir::FormatInstant(s.header.created_ms) + ", " + std::to_string(s.files.size()) + " files, " +
         std::to_string(s.bytes) + " bytes";
}

// What the published checkpoints proved; none covering the backup (allowed
// with --allow-uncovered) is said plainly.
void ReportPublished(const backup::BackupSummary& s, size_t given) {
  if (given == 0) return;
  std::printf("published checkpoints: %llu agree with the backup's audit log, %llu are newer than the backup\n",
              static_cast<unsigned long long>(s.published_checked),
              static_cast<unsigned long long>(s.published_beyond));
  if (s.published_checked == 0) {
    std::fprintf(stderr,
                 "warning: no published checkpoint is old enough to cover this backup, so its history was not "
                 "cross-checked\n");
  }
}

}  // namespace

void AddBackupCommands(CLI::App& app, BackupCommandState* s, const std::function<void(CLI::App*)>& add_common) {
  s->backup = app.add_subcommand("backup", "write an encrypted backup of the vault (safe while serving)");
  add_common(s->backup);
  s->backup->add_option("--out", s->out, "the backup file to create (never replaced)");
  s->backup->require_subcommand(0, 1);
  s->verify = s->backup->add_subcommand("verify", "check a backup file completely without restoring it");
  add_common(s->verify);
  s->verify->add_option("--in", s->in, "the backup file")->required();
  s->verify->add_option("--checkpoint", s->checkpoints,
                        "file of checkpoints published outside the vault (repeatable): refuses a rewritten history");
  s->verify->add_flag("--allow-uncovered", s->allow_uncovered,
                      "accept a backup older than every published checkpoint (taken before publication began)");
  s->restore = app.add_subcommand("restore", "restore a backup into a new or empty data directory");
  add_common(s->restore);
  s->restore->add_option("--from", s->from, "the backup file")->required();
  s->restore->add_option("--audit-data", s->audit_data,
                         "data directory of a vault that records a refused restore (optional)");
  s->restore->add_option("--checkpoint", s->checkpoints,
                         "file of checkpoints published outside the vault (repeatable): refuses a rewritten history");
  s->restore->add_flag("--allow-uncovered", s->allow_uncovered,
                       "accept a backup older than every published checkpoint (taken before publication began)");
}

int RunBackupCommands(const BackupCommandState& s, const Config& cfg) {
  const bool verify = s.verify != nullptr && s.verify->parsed();
  const bool backup = !verify && s.backup != nullptr && s.backup->parsed();
  const bool restore = s.restore != nullptr && s.restore->parsed();
  if (!verify && !backup && !restore) return -1;
  const std::string_view command = verify ? "backup verify" : (backup ? "backup" : "restore");
  Config c = cfg;
  // verify reads only the file; Validate wants a data directory.
  if (verify && c.data_dir.empty()) c.data_dir = ".";
  if (Status v = c.Validate(false); !v.ok()) return Report(command, v);

  if (backup) {
    if (s.out.empty()) return Report(command, InvalidArgument("--out FILE is required"));
    auto made = backup::AuditedBackup(c.data_dir, c.key, s.out);
    if (!made.ok()) return Report(command, made.status());
    std::printf("backup written to %s: %s\n", s.out.c_str(), Describe(*made).c_str());
    return 0;
  }
  backup::CrossCheck cross;
  cross.allow_uncovered = s.allow_uncovered;
  if (auto published = audit::ReadPublishedCheckpoints(s.checkpoints); published.ok()) {
    cross.published = std::move(*published);
  } else {
    // A restore refused this early is still a refused restore.
    if (restore) backup::RecordRefusedRestore(s.from, published.status(), s.audit_data);
    return Report(command, published.status());
  }
  if (verify) {
    auto checked = backup::VerifyBackup(s.in, c.key, cross);
    if (!checked.ok()) return Report(command, checked.status());
    std::printf("backup OK: %s: %s, %llu audit entries verified\n", s.in.c_str(), Describe(*checked).c_str(),
                static_cast<unsigned long long>(checked->audit_entries));
    ReportPublished(*checked, cross.published.size());
    return 0;
  }
  auto restored = backup::AuditedRestore(s.from, c.key, c.data_dir, s.audit_data, cross);
  if (!restored.ok()) return Report(command, restored.status());
  std::printf("restored %s into %s: %s; it opens with the same master key\n", s.from.c_str(), c.data_dir.c_str(),
              Describe(*restored).c_str());
  ReportPublished(*restored, cross.published.size());
  return 0;
}

}  // namespace phivault::cli
