// Audit inbox: audit entries from phivault commands that cannot append to the
// log themselves, because a running `phivault serve` holds the vault (the
// log has exactly one writer) or because they run without the master key.
// Today: `phivault audit export` (an export of the audit log),
// `phivault keys rotate-master` (a key change), `phivault backup` (a backup,
// while `serve` may run), `phivault restore` (into the restored vault's
// own inbox, so its first open records the restore after the restored log)
// and `phivault token issue` (a token minted with the vault's key).
//
// A command drops one file per event into DATA_DIR/audit-inbox/, written
// atomically (temp file, fsync, rename, fsync of the directory), holding the
// entry's Serialize()d JSON, owned by the data directory's owner even when
// the command runs as root (so a server running as that owner can read
// it). Those events are about the vault itself, never
// about a patient, so the file holds no health data and needs no key. The
// process that owns the log (serve, every second; Vault::Open) drains the
// inbox: it appends each entry, waits until it is durable, then deletes the
// file. A crash between the two appends the entry again at the next drain,
// so delivery is at least once. The entry's time is when the event happened.
//
// Anyone who can write into the data directory can drop a file here, so the
// drain trusts nothing: it accepts only the actions commands produce
// (export, key-change, backup, restore, token-issued) with an agent that names the
// operating system user ("os-user:"), and moves anything else aside as
// rejected-*.json with a warning. A forged file can therefore add a
// misleading export, key-change, backup, restore or token line, never a clinical
// access, and cannot remove or alter any entry.
//
// Thread-safety: the functions keep no state; DrainInbox must not run twice
// at once for the same data directory (the vault's lock ensures that).
#ifndef PHIVAULT_AUDIT_INBOX_H_
#define PHIVAULT_AUDIT_INBOX_H_

#include <cstddef>
#include <string>
#include <string_view>

#include "audit/audit_log.h"
#include "audit/entry.h"
#include "common/status.h"

namespace phivault::audit {

std::string InboxDir(const std::string& data_dir);

// The agent subject for events a command-line user caused: "os-user:<name>"
// for the real uid (or "os-user:uid-<n>" when it has no name).
std::string OsUserSubject();

// An entry for an event a command-line user caused: now, the OS user as
// agent, client "phivault-cli", user agent `command` (e.g. "phivault keys
// rotate-master").
AuditEntry CommandEntry(AuditAction action, std::string_view event, std::string_view command);

// Durably adds `entry` to the inbox. REQUIRES: entry.action is kExport,
// kKeyChange, kBackup, kRestore or kTokenIssued and entry.agent.subject starts with
// "os-user:" (InvalidArgument
// otherwise, so a caller cannot queue what the drain would reject).
Status SubmitToInbox(const std::string& data_dir, const AuditEntry& entry);

// Appends every acceptable inbox entry to `log` (oldest file name first),
// deleting each file once its entry is durable. Returns how many were
// appended; stops at the first append error (the rest stay for next time).
StatusOr<size_t> DrainInbox(const std::string& data_dir, AuditLog& log);

}  // namespace phivault::audit

#endif  // PHIVAULT_AUDIT_INBOX_H_
