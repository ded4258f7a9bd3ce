// AuditIndex: which audit-log entries touched which patient, and which were
// made by which agent, so that an access report (Patient/{id}/$access-report)
// or an AuditEvent search by patient or agent (a privacy officer's "what did
// this user look at") reads those entries instead of decrypting the whole
// log.
//
// The index is derived data. The audit log is the record; the index covers a
// prefix of it, [0, through), and remembers the log's Merkle root over that
// prefix. Whoever feeds it (api::AuditIndexer) compares that root with the
// log's at open: a log that was restored, truncated or replaced no longer
// matches, and the index is emptied and rebuilt from the log. Losing the
// file costs only the time to rebuild it, so it is not in backups.
//
// It lives in DIR/audit-index.db, opened through the vault's encrypting
// SQLite VFS (storage key, see encrypted_vfs.h): which patient a principal
// looked at is itself sensitive, and nothing is readable at rest. Commits use
// synchronous=NORMAL: after a crash the file may lose its last batches, but
// never its consistency (postings and the covered prefix commit together).
//
// Thread-safety: every method may be called from any thread. Writes share one
// connection and lookups another, each behind its own mutex, so a lookup
// never waits for a batch being written (WAL readers do not block).
// Lifetime: OpenAuditIndex registers (or re-registers) the encrypting VFS;
// do it at startup, like OpenAccountStore.
#ifndef PHIVAULT_STORE_AUDIT_INDEX_H_
#define PHIVAULT_STORE_AUDIT_INDEX_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "crypto/keyring.h"

namespace phivault::store {

inline constexpr const char* kAuditIndexFileName = "audit-index.db";

// The prefix of the log the index covers: entries [0, through), whose Merkle
// root is `root` (32 bytes; empty when through is 0).
struct AuditIndexCoverage {
  uint64_t through = 0;
  std::string root;
};

// What an entry is listed under. The numbers are stored; do not reuse them.
enum class AuditKey : int {
  kPatient = 1,  // a patient the entry touched (the bare id, as entries record it)
  kAgent = 2,    // who acted: the agent's subject, fhirUser, client id or device id
};

// Entry `entry` is listed under (kind, value).
struct AuditPosting {
  AuditKey kind = AuditKey::kPatient;
  std::string value;
  uint64_t entry = 0;
};

class AuditIndex {
 public:
  virtual ~AuditIndex() = default;

  virtual StatusOr<AuditIndexCoverage> Coverage() = 0;

  // Adds the postings of entries [from, next.through) and moves the coverage
  // to `next`, in one transaction.
  // REQUIRES: from < next.through; every posting's entry in that range.
  // Conflict (and nothing written) if `from` is not the current
  // coverage's `through`: another feeder got there first.
  virtual Status Extend(uint64_t from, const AuditIndexCoverage& next, const std::vector<AuditPosting>& postings) = 0;

  // Forgets everything: the coverage goes back to 0.
  virtual Status Reset() = 0;

  // The entries in [start, end) listed under (kind, value), ascending, at
  // most `limit` of them.
  virtual StatusOr<std::vector<uint64_t>> EntriesFor(AuditKey kind, std::string_view value, uint64_t start,
                                                     uint64_t end, size_t limit) = 0;
};

// Opens or creates DIR/audit-index.db. DataLoss if its pages do not
// authenticate (another key, or a modified file): the caller may delete the
// file and open again, since the log can rebuild it. A file written in
// another layout (an older release's) is emptied at open, coverage 0, so
// that it is rebuilt and never answers with postings it lacks.
StatusOr<std::unique_ptr<AuditIndex>> OpenAuditIndex(const std::string& dir, const crypto::Keyring& keyring);

}  // namespace phivault::store

#endif  // PHIVAULT_STORE_AUDIT_INDEX_H_
