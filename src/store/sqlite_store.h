// SqliteStore: the embedded ResourceStore, one SQLite database in the data
// directory, opened through the encrypting VFS (encrypted_vfs.h) so that no
// page, WAL frame or temporary file reaches the disk in plaintext.
//
// Resource bodies are additionally sealed per patient (envelope encryption):
// each patient gets a random data key, wrapped by the keyring's KEK and kept
// in the database; resources in no patient compartment use the shared data
// key. AAD binds type, id, version and key owner, so a sealed body copied
// onto another record fails to open. Destroying one patient's wrapped key
// makes that patient's bodies unreadable (crypto-shredding, a later issue).
//
// Hot reads are served from an in-memory cache of decrypted latest versions,
// written through by the writer at commit (see SqliteStoreOptions).
//
// Concurrency: one writer thread owns the write connection and applies queued
// batches in group commits (one BEGIN..COMMIT and one WAL fsync for many
// callers, synchronous=FULL). Reads use a pool of read connections and see
// only committed data (WAL snapshot isolation).
//
// Thread-safety: all public methods are safe from any thread.
// Lifetime: the Keyring must outlive the store.
#ifndef PHIVAULT_STORE_SQLITE_STORE_H_
#define PHIVAULT_STORE_SQLITE_STORE_H_

#include <memory>
#include <string>

#include "common/status.h"
#include "crypto/keyring.h"
#include "store/resource_store.h"

namespace phivault::store {

struct SqliteStoreOptions {
  std::string data_dir;
  bool create = false;        // init: create the database; otherwise it must exist
  int max_group_ops = 4096;   // ops applied in one group commit at most
  int zstd_level = 1;         // body compression before sealing; 0 disables
  // Decrypted latest versions kept in memory for reads (0 disables). The
  // writer updates entries at commit, so a read never sees an older version
  // than an acknowledged write. Memory is not "at rest"; the cache never
  // touches the disk.
  size_t cache_bytes = 64u << 20;
  // SQLite page cache of the writer connection (readers keep 8 MB each).
  // Pages are cached decrypted, in memory only.
  size_t writer_cache_bytes = 64u << 20;
  // The largest audit record (AuditRecordBuilder) a batch may store: at most
  // the audit log's max_entry_bytes, which must accept every stored record
  // or the write would stay unaudited (and retried) forever. A batch whose
  // record is larger stores nothing and fails with TooLarge.
  size_t max_audit_record_bytes = 1u << 20;
  // Unwrapped patient data keys kept in memory (least recently used
  // evicted; an evicted key is unwrapped again when next needed).
  size_t max_cached_patient_keys = 4096;
};

// Opens (or with options.create, creates) DIR/vault.db. Fails with
// PermissionDenied if the database was made under another vault's keys, and
// DataLoss if its pages fail authentication.
StatusOr<std::unique_ptr<ResourceStore>> OpenSqliteStore(const SqliteStoreOptions& options,
                                                         const crypto::Keyring* keyring);

// The database file name inside the data directory.
inline constexpr const char* kDatabaseFileName = "vault.db";

// The encrypting VFS (encrypted_vfs.h) through which a vault's database
// files are opened, registered with its storage key by whatever opens them.
// One name per vault, so that vaults open side by side in one process (as in
// tests) never open a file under another vault's key.
inline std::string VaultVfsName(const std::string& vault_id) { return "phivault-encrypted-" + vault_id; }

}  // namespace phivault::store

#endif  // PHIVAULT_STORE_SQLITE_STORE_H_
