// Backup, verification and restore of a whole vault (`phivault backup`,
// `phivault backup verify`, `phivault restore`), each recorded as exactly
// one audit entry. docs/BACKUP-FORMAT.md has the file format; the design
// choices are in docs/DECISIONS.md.
//
// CreateBackup takes a consistent snapshot of a vault that `serve` may be
// using, without the vault lock: the keyring file, vault.db and accounts.db
// through SQLite's online backup API (each a single read transaction, pages
// re-sealed by the encrypting VFS with the same storage key, so the copy is
// ciphertext like the original), then the audit log up to its last complete
// record (audit::ExportSnapshot). The copies are staged in a private
// directory beside the output, packed into one container sealed with a key
// derived from the keyring's backup key (container.h), written to a temp
// file, fsynced and renamed into place (mode 0600).
//
// VerifyBackup opens every chunk, checks the manifest and every digest, and
// runs the audit log verifier (audit::Verify) over the contained log with the
// vault's own verifier key. RestoreBackup verifies the same way while it
// unpacks into a staging directory beside the target, and only then renames
// the staging directory onto the target, so the target is either absent (or
// left as the empty directory it was) or a complete vault, never a partial
// one.
//
// Auditing (Audited* functions): the backup entry goes into the source
// vault's audit inbox (audit/inbox.h), because `serve` may hold its log; the
// restore entry goes into the restored vault's inbox, so its first open
// appends it after the restored log. A restore that fails leaves no vault to
// hold its entry; it is recorded in the inbox of `audit_dir` when given (the
// operator names a vault that keeps such records), otherwise only logged.
//
// Thread-safety: the functions keep no state, but two backups writing the
// same output path at once are not supported. Lifetime: nothing outlives a
// call.
#ifndef PHIVAULT_BACKUP_BACKUP_H_
#define PHIVAULT_BACKUP_BACKUP_H_

#include <cstdint>
#include <string>
#include <vector>

#include "audit/entry.h"
#include "backup/container.h"
#include "common/status.h"
#include "crypto/keyring.h"

namespace phivault::backup {

struct BackupSummary {
  Header header;  // keyring bytes included
  std::vector<FileEntry> files;
  uint64_t bytes = 0;            // size of the backup file
  uint64_t audit_entries = 0;    // entries of the contained audit log (verify/restore)
  uint64_t published_checked = 0;  // published checkpoints the contained log agrees with
  uint64_t published_beyond = 0;   // published checkpoints newer than the backup (not checkable)
};

// Checkpoints of the vault's log published outside the vault (`phivault
// audit publish`), to cross-check a backup's audit log against
// (`--checkpoint FILE`). Empty `published`: no cross-check.
struct CrossCheck {
  std::vector<std::string> published;
  // Accept a backup that no published checkpoint is old enough to cover
  // (taken before publication began). Without it such a backup is refused:
  // a log cut short to hide entries looks exactly like that.
  bool allow_uncovered = false;
};

// REQUIRES: `data_dir` holds a vault; `out_path` does not exist yet
// (AlreadyExists otherwise: a backup is never silently replaced).
// PermissionDenied on a wrong master key (nothing is written then).
StatusOr<BackupSummary> CreateBackup(const std::string& data_dir, const crypto::MasterKeySource& key,
                                     const std::string& out_path, uint32_t chunk_bytes = kDefaultChunkBytes);

// Reads and checks everything (see the file comment); writes nothing but a
// private scratch directory beside the file, removed before returning.
// DataLoss naming the first problem; PermissionDenied for a wrong master key.
//
// With `cross.published`, every published checkpoint no larger than the
// backup's log must match it, so a backup whose history was rewritten and
// re-signed, even with the vault's real key, is refused (DataLoss, "fork"),
// and so is one that does not verify under the backup's key. Later ones
// cannot be checked against an earlier prefix and are counted in
// published_beyond. When none is old enough: PreconditionFailed unless
// `cross.allow_uncovered`. Not detected: a log cut between two published
// checkpoints (docs/DECISIONS.md).
StatusOr<BackupSummary> VerifyBackup(const std::string& backup_path, const crypto::MasterKeySource& key,
                                     const CrossCheck& cross = {});

// REQUIRES: `new_dir` does not exist or is an empty directory
// (FailedPrecondition-like InvalidArgument otherwise). Nothing is left in
// `new_dir` on any error. `cross` as for VerifyBackup.
StatusOr<BackupSummary> RestoreBackup(const std::string& backup_path, const crypto::MasterKeySource& key,
                                      const std::string& new_dir, const CrossCheck& cross = {});

// Just the header (no key needed): names the backup in audit entries and
// messages even when the rest cannot be opened.
StatusOr<Header> ReadBackupHeader(const std::string& backup_path);

// The audit entry of a backup or restore attempt: the OS user, outcome
// allowed or denied (rule = "ok" or the status code name), and the backup
// named by vault id, creation time and backup id (`header` may be null
// when the file could not be read at all). No health data.
audit::AuditEntry BackupAuditEntry(audit::AuditAction action, const Header* header, const Status& result,
                                   std::string_view command);

// CreateBackup + its audit entry in DATA_DIR's inbox. The returned status is
// the backup's; when only the entry could not be queued, Unavailable.
StatusOr<BackupSummary> AuditedBackup(const std::string& data_dir, const crypto::MasterKeySource& key,
                                      const std::string& out_path);
// RestoreBackup + its entry (see the file comment for where it goes).
StatusOr<BackupSummary> AuditedRestore(const std::string& backup_path, const crypto::MasterKeySource& key,
                                       const std::string& new_dir, const std::string& audit_dir = "",
                                       const CrossCheck& cross = {});
// The record of a restore refused before it began (e.g. its --checkpoint
// files could not be read): an operator log line, and a denied entry in
// `audit_dir`'s inbox when given. What AuditedRestore does on failure.
void RecordRefusedRestore(const std::string& backup_path, const Status& refused, const std::string& audit_dir);

}  // namespace phivault::backup

#endif  // PHIVAULT_BACKUP_BACKUP_H_
