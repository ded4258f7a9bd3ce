// Offline verification of an audit log (`phivault audit verify`).
//
// Needs no data key: it reads the segment records (sealed entries), recomputes
// every leaf hash SHA-256(0x00 || sealed entry) and the RFC 6962 tree, checks
// the signature of every checkpoint in the log's checkpoints file (and of any
// externally published ones passed in) against the verifier key, and checks
// that each checkpoint's root equals the recomputed root at its size. All
// checkpoints agreeing with one recomputed tree is exactly their pairwise
// consistency. What it finds, and where:
//   * a record edited, removed, added or moved without fixing the framing:
//     exact index (each record carries its index and a CRC);
//   * a carefully re-framed edit: caught by the first checkpoint whose root no
//     longer matches; the bad index is then known to lie at or after the last
//     checkpoint that did match, which is what first_bad_index reports;
//   * truncation: a checkpoint covers more entries than the log holds;
//   * a fork (history rewritten and re-signed, even with the real key): an
//     earlier externally published checkpoint disagrees with the tree.
// Input is untrusted; malformed files are findings, never crashes.
//
// Thread-safety: Verify is reentrant.
#ifndef PHIVAULT_AUDIT_VERIFY_H_
#define PHIVAULT_AUDIT_VERIFY_H_

#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>

#include "common/status.h"

namespace phivault::audit {

enum class Problem {
  kNone,
  kModified,       // a record's bytes changed (or a checkpoint no longer matches)
  kDeleted,        // a record is missing from the sequence
  kInserted,       // an extra record is in the sequence
  kReordered,      // records are out of order
  kTruncated,      // a checkpoint covers entries the log no longer has
  kFork,           // the log's own checkpoints are consistent, a published one is not
  kBadCheckpoint,  // a checkpoint is malformed, for another log, or its signature fails
};
std::string_view ProblemName(Problem p);

struct VerifyResult {
  static constexpr uint64_t kNoIndex = std::numeric_limits<uint64_t>::max();
  bool ok = false;
  Problem problem = Problem::kNone;
  uint64_t first_bad_index = kNoIndex;  // lowest entry index that may be bad
  std::string reason;                   // one line for the operator; no entry content
  uint64_t entries = 0;                 // records read before stopping
  uint64_t checkpoints = 0;             // checkpoints verified (signature and root)
  std::string root;                     // 32 raw bytes: recomputed root over `entries`
  uint64_t published_checked = 0;       // published checkpoints matched against the tree
  uint64_t published_beyond = 0;        // published checkpoints larger than the log (prefix mode only)
};

struct VerifyOptions {
  // The log is an earlier prefix of the one the published checkpoints were
  // issued for (a backup's log). A published checkpoint larger than the log
  // cannot be checked without the entries after it: it is counted in
  // published_beyond instead of reported as truncation. Its signature is
  // still checked, and the log's own checkpoints must all fit.
  bool log_may_be_prefix = false;
};

// `path` is a data directory (its audit/ subdirectory is used), the audit
// directory itself, or an Export() directory. `vkey` is the verifier key
// string. `published` are signed checkpoints obtained earlier through another
// channel. Returns a Status error only when the inputs cannot be used at all
// (unreadable directory, malformed vkey); integrity findings are in the result.
StatusOr<VerifyResult> Verify(const std::string& path, std::string_view vkey,
                              std::span<const std::string> published = {}, const VerifyOptions& options = {});

}  // namespace phivault::audit

#endif  // PHIVAULT_AUDIT_VERIFY_H_
