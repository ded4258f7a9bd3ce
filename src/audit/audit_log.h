// AuditLog: the vault's append-only, tamper-evident audit log.
//
// Entries are sealed (AES-256-GCM, key = keyring Key(kAuditSeal), AAD = vault
// id + entry index, so a ciphertext is bound to its position) and appended as
// length-prefixed, CRC-checked records to segment files DIR/audit/seg-*.log.
// Leaf i of an RFC 6962 Merkle tree is SHA-256(0x00 || sealed entry i): the
// tree covers what is stored, so an auditor holding only the exported files
// and the public key can verify the log without any data key. Signed
// checkpoints (C2SP signed notes, Ed25519 key = crypto_sign_seed_keypair(
// Key(kAuditSign)), origin "phivault/<vault-id>") are appended to
// DIR/audit/checkpoints at least once per checkpoint_interval while entries
// arrive. Perfect-subtree hashes are cached in DIR/audit/tree/level-NN.hash
// (a rebuildable cache, never trusted by `audit verify`) so proofs cost
// O(log n) reads. docs/AUDIT-LOG-FORMAT.md describes every file.
//
// Durability: Append() hands the entry to a single writer thread that groups
// everything pending into one write and one fdatasync (group commit), then
// runs the callbacks: an index is reported only once its record is durable.
// When a write or sync fails (ENOSPC, EIO) the batch's callbacks get
// Unavailable, no index is acknowledged, healthy() turns false, and the next
// batch first cuts the segment back to its last durable byte and retries, so
// service resumes on its own once the disk works again. Open() recovers from
// a crash: a torn record at the tail of the last segment is truncated and the
// hash cache is checked against the records and repaired; the records before
// the latest checkpoint are checked in the background (HistoryState).
//
// Thread-safety: every public method is safe to call from any thread.
// Callbacks run, in append order, on a completion thread (or, for immediate
// rejections, on the caller's thread), so the writer starts the next group
// while the last group's callbacks run; they must not block for long or call
// AppendAndWait.
// Lifetime: the destructor commits everything already appended, signs a final
// checkpoint, and joins the writer; the Keyring need not outlive Open().
#ifndef PHIVAULT_AUDIT_AUDIT_LOG_H_
#define PHIVAULT_AUDIT_AUDIT_LOG_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "audit/checkpoint.h"
#include "audit/merkle.h"
#include "audit/segment.h"
#include "common/status.h"
#include "crypto/aead.h"
#include "crypto/keyring.h"

namespace phivault::audit {

// The write side of a segment or checkpoints file. Injectable so tests can
// make writes and syncs fail on demand (ENOSPC/EIO cannot be provoked on a
// real disk here). Implementations report failures as Unavailable.
class WritableFile {
 public:
  virtual ~WritableFile() = default;
  virtual Status WriteAt(uint64_t offset, std::string_view data) = 0;  // all bytes or an error
  virtual Status Sync() = 0;                                           // fdatasync
  virtual Status Truncate(uint64_t size) = 0;
};
// Opens (creating with mode 0600 if needed, never truncating) a file for writing.
using FileOpener = std::function<StatusOr<std::unique_ptr<WritableFile>>(const std::string& path)>;
StatusOr<std::unique_ptr<WritableFile>> OpenPosixWritableFile(const std::string& path);

struct AuditLogOptions {
  FileOpener open_file;  // empty: OpenPosixWritableFile
  // A new segment starts once the current one reaches this size.
  uint64_t segment_bytes = 64ull << 20;
  // A checkpoint is signed at most this long after the size last changed.
  std::chrono::milliseconds checkpoint_interval{1000};
  size_t max_batch = 16384;        // entries per group commit
  // Group commit under load: when the previous group was large, the writer
  // waits up to this long after the first entry arrives for about as many
  // entries to gather, instead of syncing the first few alone and making
  // the rest wait for a second fsync. An idle log never waits.
  std::chrono::microseconds max_gather{2000};
  // The writer zero-fills this much segment space ahead of its records (0:
  // none). Overwriting blocks that are already written lets each group's
  // fdatasync skip the inode update an append needs: on ext4 it costs about
  // 40% less CPU and time per sync. Readers take trailing zeros as padding;
  // a segment is cut back to its records when the log rotates or closes.
  // At most kMaxPaddingBytes (64 MiB) is used.
  uint64_t preallocate_bytes = 1u << 20;
  size_t max_pending = 1u << 20;   // queued entries before Append refuses (ResourceExhausted)
  size_t max_entry_bytes = 1u << 20;
  // A group write (write + fdatasync) still running after this long makes
  // healthy() false while it lasts: a hung disk (NFS, iSCSI, a dying drive)
  // must take the node out of the load balancer, not hold every request.
  std::chrono::milliseconds stall_after{5000};
  // Where Open() checks the records before the latest signed checkpoint.
  // kBackground: Open() checks only the records after it, against the
  // cached tree border that reproduces its signed root, and a low-priority
  // thread rehashes the history while the log serves (see HistoryState).
  // Opening then costs one segment, not one pass over a log that grows by
  // millions of entries a week. kAtOpen: Open() rehashes everything first.
  // Open() falls back to kAtOpen when there is no checkpoint or the cache
  // does not reproduce it.
  enum class HistoryCheck { kBackground, kAtOpen };
  HistoryCheck history_check = HistoryCheck::kBackground;
  // Tests: runs on the history thread before the background check starts.
  std::function<void()> before_history_check;
};

class AuditLog {
 public:
  using DurableCallback = std::function<void(StatusOr<uint64_t>)>;

  // Opens or creates the log under DATA_DIR/audit and recovers from a crash.
  // DataLoss if the files are inconsistent in a way recovery must not paper
  // over (a bad record before the tail, a gap in segment numbers, fewer
  // entries than the latest checkpoint covers, a checkpoint that does not
  // verify). With HistoryCheck::kBackground, damage before the latest
  // checkpoint is found after Open() returns: see HistoryState.
  static StatusOr<std::unique_ptr<AuditLog>> Open(const std::string& data_dir, const crypto::Keyring& keyring,
                                                  AuditLogOptions options = {});
  ~AuditLog();
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // Queues one entry (plaintext; wiped after sealing). `durable` receives the
  // entry's index once it is on disk, or an error: Unavailable (write failed
  // or shutting down), InvalidArgument (too large), ResourceExhausted.
  void Append(std::string entry, DurableCallback durable);
  // Append and block until durable.
  StatusOr<uint64_t> AppendAndWait(std::string entry);

  uint64_t size() const;   // durable entries
  // False between a failed write and the next good one, while a group write
  // has run longer than stall_after, while the queue is full, and for good
  // once the history check has failed.
  bool healthy() const;

  // The check of the records before the latest checkpoint found at open.
  // kChecking: a background check runs (AuditLogOptions::history_check);
  // proofs over older entries may come from a damaged cache and then fail
  // to verify until it repairs them. kDamaged: the records do not reproduce
  // the signed root or are unreadable, as an open with kAtOpen would have
  // refused (DataLoss); from then on every Append fails with Unavailable, so
  // nothing is served unaudited on a log that lost its integrity, and
  // `phivault audit verify` names the first bad entry.
  enum class HistoryState { kVerified, kChecking, kDamaged };
  HistoryState history_state() const;
  // Blocks until no history check runs; its result (the DataLoss for kDamaged).
  Status WaitForHistoryCheck() const;
  const std::string& origin() const { return origin_; }
  std::string VerifierKey() const { return signer_->VerifierKeyString(); }

  // The latest signed checkpoint; signs a new one first if the size changed
  // and checkpoint_interval has passed (or no checkpoint exists yet).
  StatusOr<std::string> Checkpoint();
  // Signs a checkpoint of the current size now (unless the latest already
  // covers it) and returns it.
  StatusOr<std::string> SignCheckpoint();

  // Tree queries over durable entries. Hashes are 32 raw bytes.
  StatusOr<std::string> Root(uint64_t size) const;
  StatusOr<std::string> LeafHash(uint64_t index) const;
  StatusOr<std::vector<std::string>> InclusionProof(uint64_t index, uint64_t size) const;
  StatusOr<std::vector<std::string>> ConsistencyProof(uint64_t size1, uint64_t size2) const;

  // Decrypted entries [start, end); at most 10000 at a time.
  StatusOr<std::vector<std::string>> ReadEntries(uint64_t start, uint64_t end) const;
  // Decrypted entries at `indices`, in that order; at most 10000 at a time.
  // REQUIRES (else InvalidArgument): ascending, no repeats, each below size().
  // Decrypts only those entries (an index lookup reads scattered entries).
  StatusOr<std::vector<std::string>> ReadSelected(const std::vector<uint64_t>& indices) const;

  // Writes a consistent snapshot for an auditor: OUT/seg-*.log, OUT/checkpoints
  // and OUT/vkey.txt. Contains no key and no plaintext.
  Status Export(const std::string& out_dir) const;

  static std::string AuditDir(const std::string& data_dir) { return data_dir + "/audit"; }

 private:
  struct Pending {
    std::string entry;
    DurableCallback durable;
  };
  struct Segment {
    uint64_t number;
    std::string path;
    uint64_t first_index;
  };
  struct SparseEntry {
    uint32_t segment;  // position in segments_
    uint64_t offset;
  };
  // Where a read starts: the record of entry `index` is at `from`.
  struct ReadPosition {
    SparseEntry from{};
    uint64_t index = 0;
  };
  // The nearest recorded position at or before entry `start`.
  // REQUIRES: mu_ held; start < size_.
  StatusOr<ReadPosition> PositionLocked(uint64_t start) const;
  // Reads the records from `pos` up to entry `end` (exclusive) in `segments`
  // and appends the decrypted entries `wanted` accepts, in index order.
  Status ReadFrom(const std::vector<Segment>& segments, ReadPosition pos, uint64_t end,
                  const std::function<bool(uint64_t)>& wanted, std::vector<std::string>* out) const;
  class FileHashStore;

  AuditLog() = default;
  enum class CheckpointMode {
    kAuto,   // writer thread: when due and entries arrived
    kFinal,  // writer at shutdown: whatever is not yet covered
    kIfDue,  // Checkpoint()
    kNow,    // SignCheckpoint()
  };
  // The callbacks of one group: indices from `base`, or all get `error`.
  struct Completion {
    std::vector<DurableCallback> callbacks;
    uint64_t base = 0;
    Status error;
  };
  // What Recover() left for the background history check.
  struct HistoryPlan {
    std::vector<Segment> segments;  // those holding entries [0, size)
    uint64_t size = 0;              // entries the latest checkpoint covers
    Hash root{};                    // its signed root
  };
  Status Recover();
  // True if only the segments from the one holding entry head.size on need
  // scanning at open: the cache holds the whole history and its border
  // reproduces the signed root. Then segments_ holds those before it,
  // range_ the border, and history_plan_ what the background check covers.
  StatusOr<bool> PlanTailScan(const std::vector<SegmentFile>& files, const TreeHead& head);
  Status LoadCheckpoints();
  void HistoryCheckLoop();
  // `cancelled`: stopped because the log is closing (the status then says
  // nothing about the history).
  Status CheckHistory(std::vector<SparseEntry>* sparse, uint64_t* repaired, bool* cancelled);
  Status CheckHistoryPass(std::vector<SparseEntry>* sparse, std::vector<TreeNode>* repairs, size_t max_repairs,
                          bool* more, bool* cancelled);
  // Leaves DIR/audit/history-damaged, which makes the next Open() check
  // everything first.
  Status MarkHistoryDamaged(const Status& why);
  void WriterLoop();
  void CompleterLoop();
  void Complete(Completion c);
  void CommitBatch(std::vector<Pending>& batch);
  Status PrepareSegment();
  // Cuts the zero padding off the current segment (rotation, shutdown).
  Status TrimSegment();
  StatusOr<std::string> CheckpointImpl(CheckpointMode mode);
  std::string Aad(uint64_t index) const;

  std::string dir_;  // DATA_DIR/audit
  std::string vault_id_;
  std::string origin_;
  AuditLogOptions options_;
  std::unique_ptr<crypto::Aead> aead_;
  std::unique_ptr<NoteSigner> signer_;
  std::unique_ptr<FileHashStore> store_;

  // Guards the queue and the published (durable) state below.
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Pending> queue_;
  size_t gather_target_ = 0;  // queue size the writer waits for (0: none)
  bool stop_ = false;
  uint64_t size_ = 0;
  Hash root_{};
  std::vector<Segment> segments_;
  uint64_t last_segment_bytes_ = 0;  // durable bytes of segments_.back()
  // Record position of every kSparseStep-th index, from index
  // sparse_first_ * kSparseStep on (0 once the history check has indexed the
  // older segments; ReadEntries scans a segment from its start before).
  std::vector<SparseEntry> sparse_;
  uint64_t sparse_first_ = 0;
  bool healthy_ = true;
  HistoryState history_ = HistoryState::kVerified;
  Status history_error_;
  mutable std::condition_variable history_cv_;
  // Steady-clock ms at which the running group write began; 0 when none runs.
  std::atomic<int64_t> write_started_ms_{0};

  // Writer thread only (and Open, before the writer starts).
  CompactRange range_;
  std::unique_ptr<WritableFile> seg_file_;
  uint64_t seg_offset_ = 0;    // end of the durable records
  uint64_t seg_reserved_ = 0;  // end of the file: zero padding from seg_offset_
  bool seg_needs_repair_ = false;

  // Guards the checkpoints file and the latest checkpoint. Lock order: cp_mu_, then mu_.
  mutable std::mutex cp_mu_;
  std::unique_ptr<WritableFile> cp_file_;
  uint64_t cp_offset_ = 0;
  bool cp_needs_repair_ = false;
  bool have_checkpoint_ = false;
  std::string latest_note_;
  uint64_t latest_size_ = 0;
  std::chrono::steady_clock::time_point latest_time_{};

  std::thread writer_;

  HistoryPlan history_plan_;  // history thread only (and Open)
  std::atomic<bool> history_stop_{false};
  std::thread history_thread_;

  std::mutex done_mu_;
  std::condition_variable done_cv_;
  std::deque<Completion> done_queue_;
  bool done_stop_ = false;
  std::thread completer_;
};

// The AAD an entry at `index` is sealed with (docs/AUDIT-LOG-FORMAT.md), for
// readers of the segment files that hold the vault's keyring (backup).
std::string EntryAad(std::string_view vault_id, uint64_t index);

// The checkpoint verifier key ("<name>+<keyid>+<base64>") of a vault, for
// `phivault audit pubkey`; needs no log files.
StatusOr<std::string> AuditVerifierKey(const crypto::Keyring& keyring);

}  // namespace phivault::audit

#endif  // PHIVAULT_AUDIT_AUDIT_LOG_H_
