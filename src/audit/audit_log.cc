#include "audit/audit_log.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <utility>

#include "audit/segment.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/secure_bytes.h"

namespace phivault::audit {
namespace {

constexpr uint64_t kSparseStep = 1024;  // ReadEntries scans at most this many records to find its start
// Present while the history failed its check (see Recover()).
constexpr std::string_view kHistoryDamagedFile = "history-damaged";
constexpr size_t kMaxReadEntries = 10000;
constexpr int kMaxLevels = 64;

std::string Errno(std::string_view what, const std::string& path) {
  return std::string(what) + " " + path + ": " + std::strerror(errno);
}

class PosixWritableFile : public WritableFile {
 public:
  PosixWritableFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~PosixWritableFile() override { ::close(fd_); }
  Status WriteAt(uint64_t offset, std::string_view data) override {
    while (!data.empty()) {
      const ssize_t n = ::pwrite(fd_, data.data(), data.size(), static_cast<off_t>(offset));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return Unavailable(Errno("audit: write failed:", path_));
      data.remove_prefix(static_cast<size_t>(n));
      offset += static_cast<uint64_t>(n);
    }
    return Status::Ok();
  }
  Status Sync() override {
    if (::fdatasync(fd_) != 0) return Unavailable(Errno("audit: fdatasync failed:", path_));
    return Status::Ok();
  }
  Status Truncate(uint64_t size) override {
    if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) return Unavailable(Errno("audit: truncate failed:", path_));
    return Status::Ok();
  }

 private:
  int fd_;
  std::string path_;
};

Status MakeDir(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return Internal(Errno("audit: cannot create", dir));
  return Status::Ok();
}

StatusOr<uint64_t> FileSize(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return NotFound(Errno("audit: cannot stat", path));
  return static_cast<uint64_t>(st.st_size);
}

StatusOr<std::string> ReadRange(const std::string& path, uint64_t offset, uint64_t len) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NotFound(Errno("audit: cannot open", path));
  std::string out(len, '\0');
  uint64_t done = 0;
  while (done < len) {
    const ssize_t n = ::pread(fd, out.data() + done, len - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<uint64_t>(n);
  }
  ::close(fd);
  out.resize(done);
  return out;
}

// Copies the first `len` bytes of `from` to a new file `to` and syncs it.
Status CopyPrefix(const std::string& from, const std::string& to, uint64_t len) {
  const int in = ::open(from.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) return NotFound(Errno("audit export: cannot open", from));
  const int out = ::open(to.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (out < 0) {
    ::close(in);
    return Internal(Errno("audit export: cannot create", to));
  }
  std::string buf(1 << 20, '\0');
  uint64_t done = 0;
  Status st;
  while (done < len && st.ok()) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), len - done));
    const ssize_t n = ::pread(in, buf.data(), want, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      st = DataLoss("audit export: " + from + " is shorter than expected");
      break;
    }
    size_t w = 0;
    while (w < static_cast<size_t>(n)) {
      const ssize_t m = ::write(out, buf.data() + w, static_cast<size_t>(n) - w);
      if (m < 0 && errno == EINTR) continue;
      if (m <= 0) {
        st = Unavailable(Errno("audit export: write failed:", to));
        break;
      }
      w += static_cast<size_t>(m);
    }
    done += static_cast<uint64_t>(n);
  }
  if (st.ok() && ::fsync(out) != 0) st = Unavailable(Errno("audit export: fsync failed:", to));
  ::close(in);
  ::close(out);
  return st;
}

}  // namespace

StatusOr<std::unique_ptr<WritableFile>> OpenPosixWritableFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return Unavailable(Errno("audit: cannot open", path));
  return std::unique_ptr<WritableFile>(new PosixWritableFile(fd, path));
}

// ------------------------------------------------------------ hash cache
//
// Level l lives in tree/level-LL.hash as consecutive 32-byte node hashes. The
// writer appends (buffering what failed to write, to retry with the next
// batch); readers pread nodes below the published size, which were written
// before that size was published. It is a cache: Open() rebuilds whatever is
// missing or suspect from the segment records.
class AuditLog::FileHashStore : public HashStore {
 public:
  explicit FileHashStore(std::string dir) : dir_(std::move(dir)) {
    for (auto& fd : fds_) fd.store(-1);
  }
  ~FileHashStore() override {
    for (auto& fd : fds_) {
      const int f = fd.load();
      if (f >= 0) ::close(f);
    }
  }

  // Opens existing level files and records their (whole-node) lengths.
  Status Init() {
    PV_RETURN_IF_ERROR(MakeDir(dir_));
    for (int l = 0; l < kMaxLevels; ++l) {
      auto size = FileSize(Path(l));
      if (!size.ok()) continue;
      PV_RETURN_IF_ERROR(OpenLevel(l));
      counts_[l] = *size / kHashSize;
    }
    return Status::Ok();
  }
  uint64_t count(int level) const { return counts_[level] + pending_[level].size() / kHashSize; }

  // Drops nodes at and above `count` (unflushed ones too).
  Status Truncate(int level, uint64_t count) {
    pending_[level].clear();
    if (fds_[level].load() < 0) return Status::Ok();
    if (::ftruncate(fds_[level].load(), static_cast<off_t>(count * kHashSize)) != 0) {
      return Internal(Errno("audit: cannot truncate", Path(level)));
    }
    counts_[level] = std::min(counts_[level], count);
    return Status::Ok();
  }

  void Add(const TreeNode& n) { pending_[n.level].append(HashView(n.hash)); }

  // Open-time check of the cache against a node recomputed from the records
  // (nodes arrive in index order per level): equal cached nodes are kept; the
  // first differing or missing one and everything after it is rewritten.
  Status Reconcile(const TreeNode& n) {
    const int l = n.level;
    if (n.index < counts_[l]) {
      Level& c = check_[l];
      if (n.index < c.start || n.index >= c.start + c.nodes.size()) {
        const uint64_t count = std::min<uint64_t>(counts_[l] - n.index, 16384);
        PV_RETURN_IF_ERROR(ReadNodes(l, n.index, count, &c.nodes));
        c.start = n.index;
      }
      if (c.nodes[n.index - c.start] == n.hash) return Status::Ok();
      ++mismatches_;
      PV_RETURN_IF_ERROR(Truncate(l, n.index));
      c.nodes.clear();
    }
    Add(n);
    if (pending_[l].size() >= (1u << 20)) return Flush();
    return Status::Ok();
  }
  uint64_t mismatches() const { return mismatches_; }

  // Rewrites one node where it stands. Only for nodes of the checked
  // history, which the writer never touches: it appends beyond them.
  Status Overwrite(const TreeNode& n) {
    const int fd = fds_[n.level].load();
    if (fd < 0) return Unavailable("audit: hash cache level missing");
    const ssize_t w = ::pwrite(fd, n.hash.data(), kHashSize, static_cast<off_t>(n.index * kHashSize));
    if (w != static_cast<ssize_t>(kHashSize)) return Unavailable(Errno("audit: cannot repair hash cache", Path(n.level)));
    return Status::Ok();
  }
  void ReleaseCheckBuffers() {
    for (auto& c : check_) c = Level{};
  }

  Status Flush() {
    Status first;
    for (int l = 0; l < kMaxLevels; ++l) {
      std::string& p = pending_[l];
      if (p.empty()) continue;
      if (fds_[l].load() < 0) {
        Status st = OpenLevel(l);
        if (!st.ok()) {
          if (first.ok()) first = st;
          continue;
        }
      }
      const int fd = fds_[l].load();
      size_t done = 0;
      while (done < p.size()) {
        const ssize_t n = ::pwrite(fd, p.data() + done, p.size() - done,
                                   static_cast<off_t>(counts_[l] * kHashSize + done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        done += static_cast<size_t>(n);
      }
      const size_t whole = done / kHashSize * kHashSize;
      counts_[l] += whole / kHashSize;
      p.erase(0, whole);
      if (!p.empty() && first.ok()) first = Unavailable(Errno("audit: cannot write hash cache", Path(l)));
    }
    return first;
  }

  StatusOr<Hash> Node(int level, uint64_t index) const override {
    if (level < 0 || level >= kMaxLevels) return InvalidArgument("audit: bad tree level");
    const int fd = fds_[level].load();
    if (fd < 0) return Unavailable("audit: hash cache level missing");
    Hash h;
    const ssize_t n = ::pread(fd, h.data(), kHashSize, static_cast<off_t>(index * kHashSize));
    if (n != static_cast<ssize_t>(kHashSize)) return Unavailable("audit: hash cache behind the log");
    return h;
  }

  // Reads nodes [start, start + n) of a level in one call (rebuilds).
  Status ReadNodes(int level, uint64_t start, uint64_t n, std::vector<Hash>* out) const {
    out->resize(n);
    const int fd = fds_[level].load();
    if (fd < 0) return Unavailable("audit: hash cache level missing");
    const size_t bytes = n * kHashSize;
    char* dst = reinterpret_cast<char*>(out->data());
    size_t done = 0;
    while (done < bytes) {
      const ssize_t r = ::pread(fd, dst + done, bytes - done, static_cast<off_t>(start * kHashSize + done));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return Unavailable("audit: hash cache short read");
      done += static_cast<size_t>(r);
    }
    return Status::Ok();
  }

 private:
  std::string Path(int level) const {
    char name[32];
    std::snprintf(name, sizeof(name), "/level-%02d.hash", level);
    return dir_ + name;
  }
  Status OpenLevel(int level) {
    const int fd = ::open(Path(level).c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return Unavailable(Errno("audit: cannot open", Path(level)));
    fds_[level].store(fd);
    return Status::Ok();
  }

  struct Level {
    uint64_t start = 0;
    std::vector<Hash> nodes;
  };
  std::string dir_;
  Level check_[kMaxLevels];
  uint64_t mismatches_ = 0;
  std::atomic<int> fds_[kMaxLevels];
  uint64_t counts_[kMaxLevels] = {};  // nodes on disk (writer/Open only)
  std::string pending_[kMaxLevels];
};

// ------------------------------------------------------------------ open

StatusOr<std::unique_ptr<AuditLog>> AuditLog::Open(const std::string& data_dir, const crypto::Keyring& keyring,
                                                   AuditLogOptions options) {
  std::unique_ptr<AuditLog> log(new AuditLog());
  log->dir_ = AuditDir(data_dir);
  log->vault_id_ = keyring.vault_id();
  log->origin_ = "phivault/" + keyring.vault_id();
  if (!options.open_file) options.open_file = OpenPosixWritableFile;
  if (options.max_batch == 0) options.max_batch = 1;
  log->options_ = std::move(options);
  PV_ASSIGN_OR_RETURN(log->aead_, crypto::Aead::New(keyring.Key(crypto::KeyPurpose::kAuditSeal)));
  PV_ASSIGN_OR_RETURN(log->signer_, NoteSigner::FromSeed(log->origin_, keyring.Key(crypto::KeyPurpose::kAuditSign)));
  PV_RETURN_IF_ERROR(MakeDir(log->dir_));
  log->store_ = std::make_unique<FileHashStore>(log->dir_ + "/tree");
  PV_RETURN_IF_ERROR(log->store_->Init());
  PV_RETURN_IF_ERROR(log->Recover());
  if (log->history_plan_.size > 0) log->history_ = HistoryState::kChecking;
  log->completer_ = std::thread([p = log.get()] { p->CompleterLoop(); });
  log->writer_ = std::thread([p = log.get()] { p->WriterLoop(); });
  if (log->history_plan_.size > 0) {
    log->history_thread_ = std::thread([p = log.get()] { p->HistoryCheckLoop(); });
  }
  return log;
}

Status AuditLog::Recover() {
  PV_ASSIGN_OR_RETURN(std::vector<SegmentFile> files, ListSegments(dir_));
  for (size_t i = 0; i < files.size(); ++i) {
    if (files[i].number != i + 1) {
      log::Error("audit_open_failed", {{"reason", "segment numbers have a gap"}, {"dir", dir_}});
      return DataLoss("audit: segment file " + SegmentFileName(i + 1) + " is missing");
    }
  }
  PV_RETURN_IF_ERROR(LoadCheckpoints());
  std::optional<TreeHead> head;
  if (have_checkpoint_) {
    PV_ASSIGN_OR_RETURN(head, ParseTreeHead(latest_note_.substr(0, latest_note_.rfind("\n\n") + 1)));
  }
  // Scan the records for framing, CRC and index sequence, rehash the
  // leaves, extend the tree and check the hash cache against it node by
  // node: the cache serves proofs and its border signs new roots, so it is
  // never trusted blindly (bit rot, a crash between a segment sync and a
  // cache write, a hand-edited file). Normally only the segments from the
  // one holding the latest checkpoint's size on are scanned here, starting
  // from the cached border, which the signed root authenticates; the
  // history before it is rehashed in the background (HistoryCheckLoop).
  // A history check that failed leaves a marker, so that a restart cannot
  // skip the check again: the next open rehashes everything and refuses
  // while the damage is there. Removed below once a full check passes
  // (say, after the audit directory was restored from a backup).
  const std::string damaged_marker = dir_ + "/" + std::string(kHistoryDamagedFile);
  const bool marked_damaged = ::access(damaged_marker.c_str(), F_OK) == 0;
  bool tail_only = false;
  if (head && head->size > 0 && options_.history_check == AuditLogOptions::HistoryCheck::kBackground &&
      !marked_damaged) {
    PV_ASSIGN_OR_RETURN(tail_only, PlanTailScan(files, *head));
  }
  const uint64_t hash_from = tail_only ? head->size : 0;
  const size_t first_scanned = segments_.size();  // PlanTailScan adds those before the checkpoint's
  uint64_t n = tail_only ? history_plan_.segments.back().first_index : 0;
  sparse_first_ = (n + kSparseStep - 1) / kSparseStep;
  std::vector<TreeNode> nodes;
  uint64_t tail_good = 0;
  bool tail_padding = false;  // only zero padding after tail_good
  bool tail_header_ok = true;
  for (size_t i = first_scanned; i < files.size(); ++i) {
    const bool last = i + 1 == files.size();
    PV_ASSIGN_OR_RETURN(auto reader, SegmentReader::Open(files[i].path));
    if (!reader->header_ok() || reader->first_index() != n) {
      if (last && !reader->header_ok()) {
        tail_header_ok = false;  // crash while creating the segment: rewritten below
        segments_.push_back({files[i].number, files[i].path, n});
        break;
      }
      log::Error("audit_open_failed", {{"reason", "bad segment header"}, {"file", files[i].path}});
      return DataLoss("audit: bad segment header in " + files[i].path);
    }
    segments_.push_back({files[i].number, files[i].path, n});
    Record r;
    SegmentReader::Result res;
    while ((res = reader->Next(&r)) == SegmentReader::Result::kRecord) {
      if (r.index != n) {
        log::Error("audit_open_failed", {{"reason", "record out of sequence"}, {"file", files[i].path},
                                         {"index", std::to_string(n)}});
        return DataLoss("audit: record out of sequence at index " + std::to_string(n));
      }
      if (n % kSparseStep == 0) sparse_.push_back({static_cast<uint32_t>(segments_.size() - 1), r.offset});
      if (n >= hash_from) {
        nodes.clear();
        range_.Append(HashLeaf(r.payload), &nodes);
        for (const TreeNode& node : nodes) PV_RETURN_IF_ERROR(store_->Reconcile(node));
      }
      ++n;
    }
    if (res != SegmentReader::Result::kEnd && !last) {
      log::Error("audit_open_failed", {{"reason", "damaged record before the last segment"},
                                       {"file", files[i].path}, {"index", std::to_string(n)}});
      return DataLoss("audit: damaged record at index " + std::to_string(n) + " in " + files[i].path);
    }
    if (last) {
      tail_good = reader->good_offset();
      tail_padding = reader->padding();
    }
  }
  size_ = n;

  PV_RETURN_IF_ERROR(store_->Flush());
  store_->ReleaseCheckBuffers();
  for (int l = 0; l < kMaxLevels; ++l) {
    // Nodes beyond the log: leaves of a torn tail or of a cut-off history.
    if (store_->count(l) > (size_ >> l)) PV_RETURN_IF_ERROR(store_->Truncate(l, size_ >> l));
  }
  if (store_->mismatches() > 0) {
    log::Warn("audit_hash_cache_repaired", {{"nodes", std::to_string(store_->mismatches())}});
  }
  if (head) {
    if (head->size > size_) {
      log::Error("audit_open_failed", {{"reason", "log shorter than its latest checkpoint"},
                                       {"entries", std::to_string(size_)}, {"checkpoint", std::to_string(head->size)}});
      return DataLoss("audit: log has " + std::to_string(size_) + " entries, its checkpoint covers " +
                      std::to_string(head->size));
    }
    // The records (or, with the history still to check, the border they
    // extend) must reproduce the last signed root.
    auto root = RootAt(*store_, head->size);
    if (!root.ok() || *root != head->root) {
      log::Error("audit_open_failed", {{"reason", "records do not match the latest checkpoint"}, {"dir", dir_}});
      return DataLoss("audit: records do not match the latest checkpoint; run `phivault audit verify`");
    }
  }
  // Reopen the last segment for appending and cut off a torn tail: those
  // records were never acknowledged (their sync had not returned). Only
  // now, after the checkpoint check: a damaged record with acknowledged
  // ones after it must stay on disk as evidence, not be cut off first.
  if (!segments_.empty()) {
    const Segment& seg = segments_.back();
    PV_ASSIGN_OR_RETURN(seg_file_, options_.open_file(seg.path));
    PV_ASSIGN_OR_RETURN(uint64_t file_size, FileSize(seg.path));
    if (!tail_header_ok) {
      PV_RETURN_IF_ERROR(seg_file_->Truncate(0));
      PV_RETURN_IF_ERROR(seg_file_->WriteAt(0, EncodeSegmentHeader(n)));
      PV_RETURN_IF_ERROR(seg_file_->Sync());
      tail_good = kSegmentHeaderSize;
      log::Warn("audit_segment_header_rewritten", {{"file", seg.path}});
    } else if (tail_padding) {
      // The writer's own zero fill, left by a crash: appends go on into it.
      seg_reserved_ = file_size;
    } else if (file_size > tail_good) {
      PV_RETURN_IF_ERROR(seg_file_->Truncate(tail_good));
      PV_RETURN_IF_ERROR(seg_file_->Sync());
      log::Warn("audit_torn_tail_truncated",
                {{"file", seg.path}, {"bytes", std::to_string(file_size - tail_good)}, {"entries", std::to_string(n)}});
    }
    seg_offset_ = tail_good;
    seg_reserved_ = std::max(seg_reserved_, tail_good);
    last_segment_bytes_ = tail_good;
  }

  root_ = range_.Root();
  if (marked_damaged) {
    if (::unlink(damaged_marker.c_str()) != 0) return Internal(Errno("audit: cannot remove", damaged_marker));
    PV_RETURN_IF_ERROR(SyncDirectory(dir_));
    log::Warn("audit_history_damage_cleared", {{"entries", std::to_string(size_)},
                                               {"reason", "a full check of the records passed"}});
  }
  return Status::Ok();
}

StatusOr<bool> AuditLog::PlanTailScan(const std::vector<SegmentFile>& files, const TreeHead& head) {
  // The background check compares every node of the history with the
  // cache and repairs it in place, so every one must be there.
  for (int l = 0; l < kMaxLevels; ++l) {
    if (store_->count(l) < (head.size >> l)) return false;
  }
  auto border = CompactRange::FromStore(*store_, head.size);
  if (!border.ok() || border->Root() != head.root) return false;
  // Segment headers name their first index: find the one holding entry
  // head.size without reading any record. Anything odd here is left to
  // the full scan, which names the damage.
  std::vector<Segment> segments;
  for (const SegmentFile& f : files) {
    PV_ASSIGN_OR_RETURN(std::optional<uint64_t> header, ReadSegmentFirstIndex(f.path));
    if (!header) return false;
    const uint64_t first = *header;
    if (segments.empty() ? first != 0 : first <= segments.back().first_index) return false;
    if (first > head.size) break;
    segments.push_back({f.number, f.path, first});
  }
  if (segments.empty()) return false;
  segments_.assign(segments.begin(), segments.end() - 1);
  history_plan_ = HistoryPlan{std::move(segments), head.size, head.root};
  range_ = std::move(*border);
  return true;
}

Status AuditLog::LoadCheckpoints() {
  const std::string path = dir_ + "/checkpoints";
  PV_ASSIGN_OR_RETURN(cp_file_, options_.open_file(path));
  PV_ASSIGN_OR_RETURN(uint64_t file_size, FileSize(path));
  // Only the tail matters here (the latest note); the file grows by one note
  // per checkpoint interval, so never read all of it on open.
  const uint64_t tail = std::min<uint64_t>(file_size, 256 * 1024);
  PV_ASSIGN_OR_RETURN(std::string chunk, ReadRange(path, file_size - tail, tail));
  size_t start = 0;
  if (file_size > tail) {
    // Resynchronise on a note boundary: a terminator followed by our origin line.
    const size_t b = chunk.find("\n\n" + origin_ + "\n");
    if (b == std::string::npos) return DataLoss("audit: checkpoints file tail is unreadable");
    start = b + 2;
  }
  size_t complete = 0;
  std::vector<std::string> notes = SplitNotes(std::string_view(chunk).substr(start), &complete);
  const uint64_t good = file_size - tail + start + complete;
  if (good < file_size) {
    PV_RETURN_IF_ERROR(cp_file_->Truncate(good));
    PV_RETURN_IF_ERROR(cp_file_->Sync());
    log::Warn("audit_checkpoint_tail_truncated", {{"bytes", std::to_string(file_size - good)}});
  }
  cp_offset_ = good;
  if (notes.empty()) {
    if (good > 0) return DataLoss("audit: checkpoints file holds no complete note");
    return Status::Ok();
  }
  audit::VerifierKey key{signer_->name(), signer_->key_id(), signer_->public_key()};
  auto head = VerifyCheckpoint(notes.back(), key);
  if (!head.ok()) {
    log::Error("audit_open_failed", {{"reason", "latest checkpoint does not verify"}, {"dir", dir_}});
    return DataLoss("audit: latest checkpoint does not verify: " + head.status().message());
  }
  have_checkpoint_ = true;
  latest_note_ = notes.back();
  latest_size_ = head->size;
  latest_time_ = std::chrono::steady_clock::now();
  return Status::Ok();
}

AuditLog::~AuditLog() {
  history_stop_.store(true, std::memory_order_relaxed);
  if (history_thread_.joinable()) history_thread_.join();
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (writer_.joinable()) writer_.join();
  {
    std::lock_guard<std::mutex> lock(done_mu_);
    done_stop_ = true;
  }
  done_cv_.notify_all();
  if (completer_.joinable()) completer_.join();
}

void AuditLog::Complete(Completion c) {
  {
    std::lock_guard<std::mutex> lock(done_mu_);
    done_queue_.push_back(std::move(c));
  }
  done_cv_.notify_one();
}

void AuditLog::CompleterLoop() {
  for (;;) {
    Completion c;
    {
      std::unique_lock<std::mutex> lock(done_mu_);
      done_cv_.wait(lock, [&] { return done_stop_ || !done_queue_.empty(); });
      if (done_queue_.empty()) return;  // stopping and drained
      c = std::move(done_queue_.front());
      done_queue_.pop_front();
    }
    for (size_t i = 0; i < c.callbacks.size(); ++i) {
      if (c.error.ok()) {
        c.callbacks[i](c.base + i);
      } else {
        c.callbacks[i](c.error);
      }
    }
  }
}

// ------------------------------------------------------- history check

void AuditLog::HistoryCheckLoop() {
  // Serving comes first: the check may take minutes on a year's log, and
  // nothing waits for it. (Per-thread nice value on Linux.)
  (void)::setpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)), 10);
  if (options_.before_history_check) options_.before_history_check();
  const auto started = std::chrono::steady_clock::now();
  std::vector<SparseEntry> sparse;
  uint64_t repaired = 0;
  bool cancelled = false;
  Status st = CheckHistory(&sparse, &repaired, &cancelled);
  if (st.ok() && sparse.size() != sparse_first_) st = Internal("audit: history index does not meet the tail's");
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
  if (!st.ok() && !cancelled) {
    // Before anyone is told: a restart must not skip the check again.
    Status marked = MarkHistoryDamaged(st);
    if (!marked.ok()) log::Error("audit_history_mark_failed", {{"error", marked.message()}});
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (st.ok()) {
      sparse_.insert(sparse_.begin(), sparse.begin(), sparse.end());
      sparse_first_ = 0;
      history_ = HistoryState::kVerified;
    } else if (cancelled) {
      history_ = HistoryState::kVerified;  // closing: nothing waits any more, nothing is claimed
    } else {
      history_ = HistoryState::kDamaged;
      history_error_ = st;
    }
  }
  history_cv_.notify_all();
  if (st.ok()) {
    if (repaired > 0) log::Warn("audit_hash_cache_repaired", {{"nodes", std::to_string(repaired)}});
    log::Info("audit_history_verified",
              {{"entries", std::to_string(history_plan_.size)}, {"ms", std::to_string(ms.count())}});
  } else if (!cancelled) {
    log::Error("audit_history_damaged",
               {{"error", st.message()},
                {"action", "requests fail with 503; run `phivault audit verify` and restore the audit directory"}});
  }
  history_plan_.segments.clear();
}

Status AuditLog::MarkHistoryDamaged(const Status& why) {
  const std::string path = dir_ + "/" + std::string(kHistoryDamagedFile);
  PV_ASSIGN_OR_RETURN(auto file, OpenPosixWritableFile(path));
  PV_RETURN_IF_ERROR(file->Truncate(0));
  PV_RETURN_IF_ERROR(file->WriteAt(0, why.message() + "\n"));
  PV_RETURN_IF_ERROR(file->Sync());
  return SyncDirectory(dir_);
}

Status AuditLog::CheckHistory(std::vector<SparseEntry>* sparse, uint64_t* repaired, bool* cancelled) {
  // Nodes that differ from the records are rewritten only once the records
  // have reproduced the signed root: until then the cached nodes may be the
  // only trace of what a rewritten record hashed to. Bounded memory: past
  // kMaxRepairs a pass applies what it has and the check runs again.
  constexpr size_t kMaxRepairs = 1u << 20;
  for (;;) {
    std::vector<TreeNode> repairs;
    bool more = false;
    sparse->clear();
    PV_RETURN_IF_ERROR(CheckHistoryPass(sparse, &repairs, kMaxRepairs, &more, cancelled));
    for (const TreeNode& node : repairs) PV_RETURN_IF_ERROR(store_->Overwrite(node));
    *repaired += repairs.size();
    if (!more) return Status::Ok();
  }
}

Status AuditLog::CheckHistoryPass(std::vector<SparseEntry>* sparse, std::vector<TreeNode>* repairs,
                                  size_t max_repairs, bool* more, bool* cancelled) {
  const HistoryPlan& plan = history_plan_;
  const size_t last = plan.segments.size() - 1;  // the one holding entry plan.size, or starting there
  CompactRange range;
  std::vector<TreeNode> nodes;
  // Cached nodes are read in runs per level, like Reconcile.
  struct Run {
    uint64_t start = 0;
    std::vector<Hash> nodes;
  };
  std::vector<Run> runs(kMaxLevels);
  uint64_t n = 0;
  for (size_t i = 0; i <= last; ++i) {
    const Segment& seg = plan.segments[i];
    PV_ASSIGN_OR_RETURN(auto reader, SegmentReader::Open(seg.path));
    if (!reader->header_ok() || reader->first_index() != n) {
      return DataLoss("audit: bad segment header in " + seg.path);
    }
    // Earlier segments are read to their end (the next header must follow
    // on); the last only up to the checkpoint.
    Record r;
    SegmentReader::Result res = SegmentReader::Result::kEnd;
    while ((i < last || n < plan.size) && (res = reader->Next(&r)) == SegmentReader::Result::kRecord) {
      if (r.index != n) return DataLoss("audit: record out of sequence at index " + std::to_string(n));
      if (n >= plan.size) return DataLoss("audit: " + seg.path + " runs past the next segment's first entry");
      if (i < last && n % kSparseStep == 0) sparse->push_back({static_cast<uint32_t>(i), r.offset});
      nodes.clear();
      range.Append(HashLeaf(r.payload), &nodes);
      for (const TreeNode& node : nodes) {
        Run& run = runs[node.level];
        if (node.index < run.start || node.index >= run.start + run.nodes.size()) {
          // Open checked that the cache holds every node of the history.
          const uint64_t have = plan.size >> node.level;
          PV_RETURN_IF_ERROR(store_->ReadNodes(node.level, node.index,
                                               std::min<uint64_t>(have - node.index, 16384), &run.nodes));
          run.start = node.index;
        }
        if (run.nodes[node.index - run.start] != node.hash) {
          if (repairs->size() < max_repairs) {
            repairs->push_back(node);
          } else {
            *more = true;
          }
        }
      }
      ++n;
      if (n % 4096 == 0 && history_stop_.load(std::memory_order_relaxed)) {
        *cancelled = true;
        return Unavailable("audit: log closing");
      }
    }
    if (i < last && res != SegmentReader::Result::kEnd) {
      return DataLoss("audit: damaged record at index " + std::to_string(n) + " in " + seg.path);
    }
  }
  if (n != plan.size) {
    return DataLoss("audit: log has " + std::to_string(n) + " entries before the last segment scanned at open, " +
                    "its checkpoint covers " + std::to_string(plan.size));
  }
  if (range.Root() != plan.root) return DataLoss("audit: records do not match the latest checkpoint");
  return Status::Ok();
}

AuditLog::HistoryState AuditLog::history_state() const {
  std::lock_guard<std::mutex> lock(mu_);
  return history_;
}

Status AuditLog::WaitForHistoryCheck() const {
  std::unique_lock<std::mutex> lock(mu_);
  history_cv_.wait(lock, [&] { return history_ != HistoryState::kChecking; });
  return history_ == HistoryState::kDamaged ? history_error_ : Status::Ok();
}

// ----------------------------------------------------------------- append

std::string EntryAad(std::string_view vault_id, uint64_t index) {
  std::string a = "phivault-audit-entry";
  a += '\0';
  a += vault_id;
  a += '\0';
  for (int i = 7; i >= 0; --i) a += static_cast<char>(index >> (8 * i));
  return a;
}

std::string AuditLog::Aad(uint64_t index) const { return EntryAad(vault_id_, index); }

void AuditLog::Append(std::string entry, DurableCallback durable) {
  if (entry.size() > options_.max_entry_bytes || entry.size() + crypto::Aead::kOverhead > kMaxRecordBytes) {
    SecureWipe(entry.data(), entry.size());
    durable(InvalidArgument("audit: entry too large"));
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (history_ == HistoryState::kDamaged) {
      SecureWipe(entry.data(), entry.size());
      durable(Unavailable("audit: the log's history failed its check: " + history_error_.message()));
      return;
    }
    if (!stop_ && queue_.size() < options_.max_pending) {
      queue_.push_back({std::move(entry), std::move(durable)});
      if (queue_.size() == 1 || queue_.size() == gather_target_) cv_.notify_one();
      return;
    }
  }
  const bool stopping = [&] {
    std::lock_guard<std::mutex> lock(mu_);
    return stop_;
  }();
  SecureWipe(entry.data(), entry.size());
  durable(stopping ? Unavailable("audit: log is shutting down")
                   : Status(StatusCode::kResourceExhausted, "audit: too many pending entries"));
}

StatusOr<uint64_t> AuditLog::AppendAndWait(std::string entry) {
  struct Waiter {
    std::mutex m;
    std::condition_variable cv;
    bool done = false;
    StatusOr<uint64_t> result = Status(StatusCode::kInternal, "audit: no result");
  };
  auto w = std::make_shared<Waiter>();
  Append(std::move(entry), [w](StatusOr<uint64_t> r) {
    std::lock_guard<std::mutex> lock(w->m);
    w->result = std::move(r);
    w->done = true;
    w->cv.notify_one();
  });
  std::unique_lock<std::mutex> lock(w->m);
  w->cv.wait(lock, [&] { return w->done; });
  return w->result;
}

void AuditLog::WriterLoop() {
  std::vector<Pending> batch;
  size_t last_batch = 0;
  while (true) {
    bool stopping;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, options_.checkpoint_interval, [&] { return stop_ || !queue_.empty(); });
      // Under load the callers of the last group come back within a
      // fraction of an fsync: let most of them join this group.
      const size_t target = std::min(last_batch - last_batch / 4, options_.max_batch);
      if (!stop_ && target > 1 && queue_.size() < target && options_.max_gather.count() > 0) {
        gather_target_ = target;
        cv_.wait_for(lock, options_.max_gather, [&] { return stop_ || queue_.size() >= target; });
        gather_target_ = 0;
      }
      stopping = stop_;
      if (queue_.size() <= options_.max_batch) {
        batch.swap(queue_);
      } else {
        batch.assign(std::make_move_iterator(queue_.begin()),
                     std::make_move_iterator(queue_.begin() + static_cast<ptrdiff_t>(options_.max_batch)));
        queue_.erase(queue_.begin(), queue_.begin() + static_cast<ptrdiff_t>(options_.max_batch));
      }
    }
    last_batch = batch.size();
    if (!batch.empty()) CommitBatch(batch);
    batch.clear();
    // Sign when due; on shutdown sign whatever is not yet covered.
    {
      bool more;
      {
        std::lock_guard<std::mutex> lock(mu_);
        more = !queue_.empty();
      }
      if (!more || !stopping) {
        auto cp = CheckpointImpl(stopping && !more ? CheckpointMode::kFinal : CheckpointMode::kAuto);
        if (!cp.ok() && cp.status().code() != StatusCode::kNotFound) {
          log::Error("audit_checkpoint_failed", {{"error", cp.status().message()}});
        }
      }
      if (stopping && !more) break;
    }
  }
  // A closed log ends at its last record, without padding or the records
  // of a failed batch (whose callers were told it failed). If this fails,
  // the next open cuts a torn tail and keeps padding.
  if (seg_file_) {
    Status st = TrimSegment();
    if (!st.ok()) log::Warn("audit_trim_failed", {{"error", st.message()}});
  }
}

Status AuditLog::TrimSegment() {
  if (seg_reserved_ <= seg_offset_ && !seg_needs_repair_) return Status::Ok();
  PV_RETURN_IF_ERROR(seg_file_->Truncate(seg_offset_));
  PV_RETURN_IF_ERROR(seg_file_->Sync());
  seg_reserved_ = seg_offset_;
  seg_needs_repair_ = false;
  return Status::Ok();
}

Status AuditLog::PrepareSegment() {
  // A failed batch may have left part of its records behind: cut back to
  // the last durable byte before writing anything else.
  if (seg_needs_repair_) PV_RETURN_IF_ERROR(TrimSegment());
  if (seg_file_ && seg_offset_ < options_.segment_bytes) return Status::Ok();
  // Only the segment being appended to carries padding.
  if (seg_file_) PV_RETURN_IF_ERROR(TrimSegment());
  const uint64_t number = segments_.empty() ? 1 : segments_.back().number + 1;
  const std::string path = dir_ + "/" + SegmentFileName(number);
  PV_ASSIGN_OR_RETURN(auto file, options_.open_file(path));
  // The file may exist from an earlier failed attempt: rewrite it whole.
  PV_RETURN_IF_ERROR(file->Truncate(0));
  PV_RETURN_IF_ERROR(file->WriteAt(0, EncodeSegmentHeader(size_)));
  PV_RETURN_IF_ERROR(file->Sync());
  PV_RETURN_IF_ERROR(SyncDirectory(dir_));
  seg_file_ = std::move(file);
  seg_offset_ = kSegmentHeaderSize;
  seg_reserved_ = kSegmentHeaderSize;
  std::lock_guard<std::mutex> lock(mu_);
  segments_.push_back({number, path, size_});
  last_segment_bytes_ = seg_offset_;
  return Status::Ok();
}

namespace {
int64_t SteadyNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

void AuditLog::CommitBatch(std::vector<Pending>& batch) {
  // Seen by healthy() from other threads while the write and sync run.
  write_started_ms_.store(std::max<int64_t>(SteadyNowMs(), 1), std::memory_order_relaxed);
  struct Done {
    std::atomic<int64_t>& started;
    ~Done() { started.store(0, std::memory_order_relaxed); }
  } done{write_started_ms_};
  auto fail = [&](const Status& st) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      healthy_ = false;
    }
    log::Error("audit_write_failed", {{"error", st.message()},
                                      {"entries", std::to_string(batch.size())},
                                      {"action", "requests fail with 503 until the audit directory is writable"}});
    Completion c;
    c.error = Unavailable("audit log unavailable: " + st.message());
    for (Pending& p : batch) {
      SecureWipe(p.entry.data(), p.entry.size());
      c.callbacks.push_back(std::move(p.durable));
    }
    Complete(std::move(c));
  };
  Status st = PrepareSegment();
  if (!st.ok()) {
    fail(st);
    return;
  }
  const uint64_t base = size_;  // only this thread changes size_
  const uint32_t seg_ordinal = static_cast<uint32_t>(segments_.size() - 1);
  std::string buf;
  std::vector<Hash> leaves;
  std::vector<SparseEntry> sparse;
  leaves.reserve(batch.size());
  for (size_t i = 0; i < batch.size(); ++i) {
    const uint64_t index = base + i;
    std::string sealed = aead_->Seal(batch[i].entry, Aad(index));
    SecureWipe(batch[i].entry.data(), batch[i].entry.size());
    if (index % kSparseStep == 0) sparse.push_back({seg_ordinal, seg_offset_ + buf.size()});
    AppendRecord(&buf, index, sealed);
    leaves.push_back(HashLeaf(sealed));
  }
  const size_t record_bytes = buf.size();
  const uint64_t records_end = seg_offset_ + record_bytes;
  if (options_.preallocate_bytes > 0 && records_end > seg_reserved_) {
    // The zeros go out with this group, so its own sync makes the new size
    // durable and the next groups only overwrite.
    constexpr uint64_t kBlock = 4096;
    const uint64_t ahead = std::min<uint64_t>(options_.preallocate_bytes, kMaxPaddingBytes - 2 * kBlock);
    const uint64_t reserve_to = (records_end + ahead + kBlock - 1) / kBlock * kBlock;
    buf.append(static_cast<size_t>(reserve_to - records_end), '\0');
  }
  st = seg_file_->WriteAt(seg_offset_, buf);
  if (st.ok()) st = seg_file_->Sync();
  if (!st.ok()) {
    seg_needs_repair_ = true;
    fail(st);
    return;
  }
  // Durable. Extend the tree and the cache before publishing the new size,
  // so a reader never asks the cache for a node it does not yet hold.
  seg_reserved_ = std::max(seg_reserved_, seg_offset_ + buf.size());
  seg_offset_ = records_end;
  std::vector<TreeNode> nodes;
  for (const Hash& h : leaves) range_.Append(h, &nodes);
  for (const TreeNode& n : nodes) store_->Add(n);
  Status cache = store_->Flush();
  if (!cache.ok()) log::Warn("audit_hash_cache_behind", {{"error", cache.message()}});
  bool recovered;
  {
    std::lock_guard<std::mutex> lock(mu_);
    size_ = base + batch.size();
    root_ = range_.Root();
    last_segment_bytes_ = seg_offset_;
    sparse_.insert(sparse_.end(), sparse.begin(), sparse.end());
    recovered = !healthy_;
    healthy_ = true;
  }
  if (recovered) log::Info("audit_write_recovered", {{"entries", std::to_string(size_)}});
  Completion c;
  c.base = base;
  c.callbacks.reserve(batch.size());
  for (Pending& p : batch) c.callbacks.push_back(std::move(p.durable));
  Complete(std::move(c));
}

// ------------------------------------------------------------ checkpoints

StatusOr<std::string> AuditLog::Checkpoint() { return CheckpointImpl(CheckpointMode::kIfDue); }
StatusOr<std::string> AuditLog::SignCheckpoint() { return CheckpointImpl(CheckpointMode::kNow); }

StatusOr<std::string> AuditLog::CheckpointImpl(CheckpointMode mode) {
  std::lock_guard<std::mutex> cp_lock(cp_mu_);
  uint64_t size;
  Hash root;
  {
    std::lock_guard<std::mutex> lock(mu_);
    size = size_;
    root = root_;
  }
  const auto now = std::chrono::steady_clock::now();
  const bool automatic = mode == CheckpointMode::kAuto || mode == CheckpointMode::kFinal;
  // The writer signs only when entries arrived: an empty log gets its first
  // checkpoint from its first entry (or from an explicit request).
  if (automatic && !have_checkpoint_ && size == 0) return NotFound("audit: nothing to checkpoint");
  if (have_checkpoint_) {
    if (latest_size_ == size) return latest_note_;
    const bool due = now - latest_time_ >= options_.checkpoint_interval;
    if ((mode == CheckpointMode::kAuto || mode == CheckpointMode::kIfDue) && !due) return latest_note_;
  }
  TreeHead head{origin_, size, root, {}};
  PV_ASSIGN_OR_RETURN(std::string note, signer_->Sign(FormatTreeHead(head)));
  if (cp_needs_repair_) {
    PV_RETURN_IF_ERROR(cp_file_->Truncate(cp_offset_));
    cp_needs_repair_ = false;
  }
  Status st = cp_file_->WriteAt(cp_offset_, note + "\n");
  if (st.ok()) st = cp_file_->Sync();
  if (!st.ok()) {
    cp_needs_repair_ = true;
    return st;
  }
  cp_offset_ += note.size() + 1;
  have_checkpoint_ = true;
  latest_note_ = note;
  latest_size_ = size;
  latest_time_ = now;
  return note;
}

// ---------------------------------------------------------------- queries

uint64_t AuditLog::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return size_;
}

bool AuditLog::healthy() const {
  const int64_t started = write_started_ms_.load(std::memory_order_relaxed);
  if (started != 0 && SteadyNowMs() - started > options_.stall_after.count()) return false;
  std::lock_guard<std::mutex> lock(mu_);
  return healthy_ && history_ != HistoryState::kDamaged && queue_.size() < options_.max_pending;
}

StatusOr<std::string> AuditLog::Root(uint64_t size) const {
  if (size > this->size()) return InvalidArgument("audit: size beyond the log");
  PV_ASSIGN_OR_RETURN(Hash h, RootAt(*store_, size));
  return HashString(h);
}

StatusOr<std::string> AuditLog::LeafHash(uint64_t index) const {
  if (index >= size()) return InvalidArgument("audit: index beyond the log");
  PV_ASSIGN_OR_RETURN(Hash h, store_->Node(0, index));
  return HashString(h);
}

StatusOr<std::vector<std::string>> AuditLog::InclusionProof(uint64_t index, uint64_t size) const {
  if (size > this->size()) return InvalidArgument("audit: size beyond the log");
  PV_ASSIGN_OR_RETURN(std::vector<Hash> proof, audit::InclusionProof(*store_, index, size));
  std::vector<std::string> out;
  out.reserve(proof.size());
  for (const Hash& h : proof) out.push_back(HashString(h));
  return out;
}

StatusOr<std::vector<std::string>> AuditLog::ConsistencyProof(uint64_t size1, uint64_t size2) const {
  if (size2 > size()) return InvalidArgument("audit: size beyond the log");
  PV_ASSIGN_OR_RETURN(std::vector<Hash> proof, audit::ConsistencyProof(*store_, size1, size2));
  std::vector<std::string> out;
  out.reserve(proof.size());
  for (const Hash& h : proof) out.push_back(HashString(h));
  return out;
}

StatusOr<AuditLog::ReadPosition> AuditLog::PositionLocked(uint64_t start) const {
  ReadPosition p;
  const uint64_t slot = start / kSparseStep;
  if (slot >= sparse_first_) {
    if (slot - sparse_first_ >= sparse_.size()) return Internal("audit: record index incomplete");
    p.from = sparse_[slot - sparse_first_];
    p.index = slot * kSparseStep;
  } else {
    // Not indexed until the history check is done: scan the segment.
    auto after = std::upper_bound(segments_.begin(), segments_.end(), start,
                                  [](uint64_t i, const Segment& s) { return i < s.first_index; });
    p.from = {static_cast<uint32_t>(after - segments_.begin() - 1), 0};
    p.index = segments_[p.from.segment].first_index;
  }
  return p;
}

Status AuditLog::ReadFrom(const std::vector<Segment>& segments, ReadPosition pos, uint64_t end,
                          const std::function<bool(uint64_t)>& wanted, std::vector<std::string>* out) const {
  uint64_t index = pos.index;
  for (size_t s = pos.from.segment; s < segments.size() && index < end; ++s) {
    PV_ASSIGN_OR_RETURN(auto reader, SegmentReader::Open(segments[s].path, s == pos.from.segment ? pos.from.offset : 0));
    Record r;
    while (index < end && reader->Next(&r) == SegmentReader::Result::kRecord) {
      if (r.index != index) return DataLoss("audit: record out of sequence at index " + std::to_string(index));
      if (wanted(index)) {
        PV_ASSIGN_OR_RETURN(std::string plain, aead_->Open(r.payload, Aad(index)));
        out->push_back(std::move(plain));
      }
      ++index;
    }
  }
  if (index < end) return DataLoss("audit: entries missing from the segment files");
  return Status::Ok();
}

StatusOr<std::vector<std::string>> AuditLog::ReadEntries(uint64_t start, uint64_t end) const {
  std::vector<Segment> segments;
  ReadPosition pos;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (start > end || end > size_) return InvalidArgument("audit: range beyond the log");
    if (end - start > kMaxReadEntries) return InvalidArgument("audit: at most 10000 entries per read");
    if (start == end) return std::vector<std::string>{};
    segments = segments_;
    PV_ASSIGN_OR_RETURN(pos, PositionLocked(start));
  }
  std::vector<std::string> out;
  PV_RETURN_IF_ERROR(ReadFrom(segments, pos, end, [start](uint64_t i) { return i >= start; }, &out));
  return out;
}

StatusOr<std::vector<std::string>> AuditLog::ReadSelected(const std::vector<uint64_t>& indices) const {
  if (indices.size() > kMaxReadEntries) return InvalidArgument("audit: at most 10000 entries per read");
  for (size_t k = 1; k < indices.size(); ++k) {
    if (indices[k] <= indices[k - 1]) return InvalidArgument("audit: indices must ascend");
  }
  // One pass per run of indices that share a sparse slot: each pass starts
  // at the slot's recorded position and stops after the run's last index.
  struct Run {
    size_t first, last;  // into indices, inclusive
    ReadPosition pos;
  };
  std::vector<Run> runs;
  std::vector<Segment> segments;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!indices.empty() && indices.back() >= size_) return InvalidArgument("audit: index beyond the log");
    segments = segments_;
    for (size_t k = 0; k < indices.size(); ++k) {
      if (!runs.empty() && indices[k] / kSparseStep == indices[runs.back().last] / kSparseStep) {
        runs.back().last = k;
        continue;
      }
      PV_ASSIGN_OR_RETURN(ReadPosition pos, PositionLocked(indices[k]));
      runs.push_back({k, k, pos});
    }
  }
  std::vector<std::string> out;
  out.reserve(indices.size());
  for (const Run& run : runs) {
    size_t next = run.first;
    PV_RETURN_IF_ERROR(ReadFrom(
        segments, run.pos, indices[run.last] + 1,
        [&](uint64_t i) {
          if (next > run.last || indices[next] != i) return false;
          ++next;
          return true;
        },
        &out));
  }
  return out;
}

Status AuditLog::Export(const std::string& out_dir) const {
  PV_RETURN_IF_ERROR(MakeDir(out_dir));
  // Checkpoints first: every checkpoint covers a durable size, so segments
  // snapshotted afterwards cover every exported checkpoint.
  uint64_t cp_bytes;
  {
    std::lock_guard<std::mutex> lock(cp_mu_);
    cp_bytes = cp_offset_;
  }
  std::vector<Segment> segments;
  uint64_t last_bytes;
  {
    std::lock_guard<std::mutex> lock(mu_);
    segments = segments_;
    last_bytes = last_segment_bytes_;
  }
  PV_RETURN_IF_ERROR(CopyPrefix(dir_ + "/checkpoints", out_dir + "/checkpoints", cp_bytes));
  for (size_t i = 0; i < segments.size(); ++i) {
    uint64_t len = last_bytes;
    if (i + 1 < segments.size()) {
      PV_ASSIGN_OR_RETURN(len, FileSize(segments[i].path));
    }
    PV_RETURN_IF_ERROR(CopyPrefix(segments[i].path, out_dir + "/" + SegmentFileName(segments[i].number), len));
  }
  const std::string vkey = VerifierKey() + "\n";
  const std::string vpath = out_dir + "/vkey.txt";
  auto f = OpenPosixWritableFile(vpath);
  if (!f.ok()) return f.status();
  PV_RETURN_IF_ERROR((*f)->Truncate(0));
  PV_RETURN_IF_ERROR((*f)->WriteAt(0, vkey));
  PV_RETURN_IF_ERROR((*f)->Sync());
  return SyncDirectory(out_dir);
}

StatusOr<std::string> AuditVerifierKey(const crypto::Keyring& keyring) {
  PV_ASSIGN_OR_RETURN(auto signer,
                      NoteSigner::FromSeed("phivault/" + keyring.vault_id(), keyring.Key(crypto::KeyPurpose::kAuditSign)));
  return signer->VerifierKeyString();
}

}  // namespace phivault::audit
