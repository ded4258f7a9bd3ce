// An SQLite VFS that keeps every byte SQLite writes encrypted and authenticated.
//
// Main database pages and WAL frame bodies are sealed with AES-256-GCM: the
// first (page_size - kReservedBytes) bytes are encrypted in place and the
// page's reserved tail holds nonce || tag. AAD binds the file role ("db" or
// "wal") and the page number (db) or frame index (wal), so a page moved to
// another position fails to open. SQLite is told to reserve kReservedBytes per
// page (SQLITE_FCNTL_RESERVE_BYTES) so it never stores data there.
//
// WAL frame headers and the WAL header stay in plaintext: they hold page
// numbers, salts and checksums, never content. The -shm index likewise. All
// other files SQLite asks for (temp tables, sorter spill, statement and
// rollback journals) are kept in memory and never reach the disk.
//
// A page that fails authentication in the main database is reported as
// SQLITE_IOERR_DATA, which the store maps to StatusCode::kDataLoss. A WAL
// frame that fails authentication is handed to SQLite as zeros, which fails
// SQLite's own checksum chain and ends WAL recovery there, because a torn final
// frame after power loss looks the same; this is logged as a warning.
//
// Thread-safety: registration is not thread-safe (do it once at startup);
// connections opened through the VFS follow SQLite's own rules.
#ifndef PHIVAULT_STORE_ENCRYPTED_VFS_H_
#define PHIVAULT_STORE_ENCRYPTED_VFS_H_

#include <memory>
#include <string>

#include "common/status.h"
#include "crypto/aead.h"

namespace phivault::store {

inline constexpr int kPageSize = 4096;
inline constexpr int kReservedBytes = 32;  // >= Aead::kOverhead

// Registers (or re-registers) a VFS named `vfs_name` on top of the default
// unix VFS. Databases opened with this VFS must be created through
// PrepareEncryptedDatabase before any table is written.
Status RegisterEncryptedVfs(const std::string& vfs_name, std::shared_ptr<const crypto::Aead> page_aead);

}  // namespace phivault::store

#endif  // PHIVAULT_STORE_ENCRYPTED_VFS_H_
