// An SQLite VFS that keeps every byte SQLite writes encrypted and authenticated.
//
// Main database pages and WAL frame bodies are sealed with AES-256-GCM: the
// first (page_size - kReservedBytes) bytes are encrypted in place and the
// page's reserved tail holds 4 zero bytes then nonce (12) || tag (16), i.e.
// the trailer is the LAST 28 bytes of the page. AAD binds the file role ("db"
// or "wal"), the database file's base name (so a page cannot move between two
// databases sharing the key) and the 1-based page number (db) or 0-based frame
// index (wal) as 8 big-endian bytes, so a page moved to another position or
// file fails to open. SQLite is told to reserve kReservedBytes per page
// (SQLITE_FCNTL_RESERVE_BYTES) so it never stores data there. The page size is
// fixed at kPageSize; the VFS refuses to write a page 1 that declares another
// page size or fewer reserved bytes, so an unprepared database fails loudly
// instead of having its data overwritten by trailers. Memory mapping is never
// offered to SQLite (it would hand SQLite ciphertext).
//
// WAL frame headers and the WAL header stay in plaintext: they hold page
// numbers, salts and checksums, never content. The -shm index likewise. All
// other files SQLite asks for (temp tables, sorter spill, statement and
// rollback journals) are kept in memory and never reach the disk. That also
// means a rollback journal does not survive a crash: use journal_mode=WAL
// (set right after PrepareEncryptedDatabase), which keeps crash safety.
//
// A page that fails authentication in the main database is reported as
// SQLITE_IOERR_DATA, which the store maps to StatusCode::kDataLoss. A WAL
// frame that fails authentication while SQLite scans the log (WAL recovery
// reads each frame header together with its body) is handed to SQLite as
// zeros, which fails SQLite's own checksum chain and ends WAL recovery there,
// because a torn final frame after power loss looks the same; this is logged
// as a warning. A frame body read on its own (a reader or a checkpoint
// fetching a page the wal-index already points at) that fails is
// SQLITE_IOERR_DATA, so zeros are never served as page content.
//
// Thread-safety: registration is not thread-safe (do it once at startup);
// connections opened through the VFS follow SQLite's own rules.
#ifndef PHIVAULT_STORE_ENCRYPTED_VFS_H_
#define PHIVAULT_STORE_ENCRYPTED_VFS_H_

#include <memory>
#include <string>

struct sqlite3;

#include "common/status.h"
#include "crypto/aead.h"

namespace phivault::store {

inline constexpr int kPageSize = 4096;
inline constexpr int kReservedBytes = 32;  // >= Aead::kOverhead

// Registers (or re-registers) a VFS named `vfs_name` on top of the default
// unix VFS. Databases opened with this VFS must be created through
// PrepareEncryptedDatabase before any table is written.
// Re-registering a name makes new connections use the new key; connections
// already open keep the old one (the old VFS object is never freed).
Status RegisterEncryptedVfs(const std::string& vfs_name, std::shared_ptr<const crypto::Aead> page_aead);

// Call on every connection right after sqlite3_open_v2 with the encrypted VFS,
// before any other statement (in particular before PRAGMA journal_mode=WAL).
// On a brand-new (empty) database it sets kReservedBytes of reserve and
// kPageSize pages, which take effect when the first table is written. On an
// existing database it checks both and returns InvalidArgument if they differ.
// InvalidArgument as well if `db`'s main database is not on an encrypted VFS;
// DataLoss if the schema pages (page 1 first) do not authenticate (wrong key
// or modified file).
Status PrepareEncryptedDatabase(sqlite3* db);

}  // namespace phivault::store

#endif  // PHIVAULT_STORE_ENCRYPTED_VFS_H_
