#include "audit/verify.h"

#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <memory>
#include <sstream>
#include <vector>

#include "audit/checkpoint.h"
#include "audit/merkle.h"
#include "audit/segment.h"

namespace phivault::audit {
namespace {

bool IsDir(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// Records of all segments in file-name order, as one stream.
class RecordStream {
 public:
  enum class Kind { kRecord, kEnd, kDamaged, kBadHeader, kIoError };
  explicit RecordStream(std::vector<SegmentFile> files) : files_(std::move(files)) {}

  Kind Next(Record* r) {
    while (true) {
      if (!reader_) {
        if (next_ >= files_.size()) return Kind::kEnd;
        auto opened = SegmentReader::Open(files_[next_].path);
        current_ = files_[next_].path;
        ++next_;
        if (!opened.ok()) return Kind::kIoError;
        reader_ = std::move(opened).value();
        if (!reader_->header_ok()) return Kind::kBadHeader;
      }
      switch (reader_->Next(r)) {
        case SegmentReader::Result::kRecord:
          return Kind::kRecord;
        case SegmentReader::Result::kEnd:
          reader_.reset();
          continue;
        case SegmentReader::Result::kTorn:
        case SegmentReader::Result::kCorrupt:
          return Kind::kDamaged;
      }
    }
  }
  const std::string& current() const { return current_; }

 private:
  std::vector<SegmentFile> files_;
  size_t next_ = 0;
  std::unique_ptr<SegmentReader> reader_;
  std::string current_;
};

struct KnownCheckpoint {
  uint64_t size;
  Hash root;
  bool published;  // from `published`, not the log's own file
  size_t ordinal;
};

std::string Describe(const KnownCheckpoint& c) {
  return std::string(c.published ? "published checkpoint #" : "checkpoint #") + std::to_string(c.ordinal + 1) +
         " (size " + std::to_string(c.size) + ")";
}

}  // namespace

std::string_view ProblemName(Problem p) {
  switch (p) {
    case Problem::kNone: return "none";
    case Problem::kModified: return "modification";
    case Problem::kDeleted: return "deletion";
    case Problem::kInserted: return "insertion";
    case Problem::kReordered: return "reordering";
    case Problem::kTruncated: return "truncation";
    case Problem::kFork: return "fork";
    case Problem::kBadCheckpoint: return "bad checkpoint";
  }
  return "unknown";
}

StatusOr<VerifyResult> Verify(const std::string& path, std::string_view vkey, std::span<const std::string> published,
                              const VerifyOptions& options) {
  PV_ASSIGN_OR_RETURN(VerifierKey key, ParseVerifierKey(vkey));
  const std::string dir = IsDir(path + "/audit") ? path + "/audit" : path;
  if (!IsDir(dir)) return NotFound("audit verify: no directory " + dir);
  PV_ASSIGN_OR_RETURN(std::vector<SegmentFile> files, ListSegments(dir));

  VerifyResult res;
  auto fail = [&](Problem p, uint64_t index, std::string reason) {
    res.ok = false;
    res.problem = p;
    res.first_bad_index = index;
    res.reason = std::move(reason);
    return res;
  };

  // 1. Every checkpoint must carry a valid signature by the key and name
  //    this log's origin.
  std::vector<KnownCheckpoint> cps;
  {
    std::ifstream in(dir + "/checkpoints", std::ios::binary);
    std::stringstream ss;
    if (in) ss << in.rdbuf();
    const std::string file = ss.str();
    // An unterminated final note is a write in progress or a crash remnant
    // (recovery cuts it off): it is unsigned data and proves nothing.
    std::vector<std::string> notes = SplitNotes(file);
    for (size_t i = 0; i < notes.size(); ++i) {
      auto head = VerifyCheckpoint(notes[i], key);
      if (!head.ok()) {
        return fail(Problem::kBadCheckpoint, VerifyResult::kNoIndex,
                    "checkpoint #" + std::to_string(i + 1) + ": " + head.status().message());
      }
      cps.push_back({head->size, head->root, false, i});
    }
  }
  for (size_t i = 0; i < published.size(); ++i) {
    auto head = VerifyCheckpoint(published[i], key);
    if (!head.ok()) {
      return fail(Problem::kBadCheckpoint, VerifyResult::kNoIndex,
                  "published checkpoint #" + std::to_string(i + 1) + ": " + head.status().message());
    }
    cps.push_back({head->size, head->root, true, i});
  }
  std::stable_sort(cps.begin(), cps.end(), [](const KnownCheckpoint& a, const KnownCheckpoint& b) {
    if (a.size != b.size) return a.size < b.size;
    return !a.published && b.published;  // the log's own first: it decides modification vs fork
  });

  // 2. Stream the records, recompute the tree, and compare at each
  //    checkpoint size.
  CompactRange range;
  size_t next_cp = 0;
  // Largest size at which a checkpoint matched: a changed entry lies at or
  // after it. For a fork only published checkpoints count, because the
  // log's own ones may have been re-signed over the rewritten history.
  uint64_t last_match = 0;
  uint64_t last_published_match = 0;
  auto check_checkpoints = [&]() -> bool {
    while (next_cp < cps.size() && cps[next_cp].size == range.size()) {
      const KnownCheckpoint& c = cps[next_cp];
      if (range.Root() != c.root) {
        const Problem p = c.published ? Problem::kFork : Problem::kModified;
        const uint64_t bound = p == Problem::kFork ? last_published_match : last_match;
        fail(p, bound,
             Describe(c) + " does not match the log: " +
                 (p == Problem::kFork ? "the history was rewritten after it was published"
                                      : "an entry before it was changed") +
                 "; the first bad entry is at or after index " + std::to_string(bound));
        return false;
      }
      last_match = c.size;
      if (c.published) {
        last_published_match = c.size;
        ++res.published_checked;
      }
      ++res.checkpoints;
      ++next_cp;
    }
    return true;
  };
  if (!check_checkpoints()) return res;

  RecordStream stream(files);
  Record r;
  std::string prev_payload;
  while (true) {
    const RecordStream::Kind kind = stream.Next(&r);
    const uint64_t pos = range.size();
    res.entries = pos;
    if (kind == RecordStream::Kind::kEnd) break;
    if (kind == RecordStream::Kind::kIoError) return Internal("audit verify: cannot read " + stream.current());
    if (kind == RecordStream::Kind::kBadHeader) {
      return fail(Problem::kModified, pos, "segment " + stream.current() + " has a damaged header");
    }
    if (kind == RecordStream::Kind::kDamaged) {
      return fail(Problem::kModified, pos,
                  "record " + std::to_string(pos) + " is damaged (bad length or checksum) in " + stream.current());
    }
    if (r.index != pos) {
      const uint64_t claim = r.index;
      if (claim < pos) {
        // A second record claims an index already seen. If it is a byte copy
        // of its predecessor (or claims an older index) it is the intruder;
        // otherwise the pair at pos-1/pos is ambiguous and pos-1 is the first
        // position that may be bad.
        const bool copy_of_prev = claim + 1 == pos && r.payload == prev_payload;
        const uint64_t bad = (claim + 1 == pos && !copy_of_prev) ? pos - 1 : pos;
        return fail(Problem::kInserted, bad,
                    "record at position " + std::to_string(pos) + " claims index " + std::to_string(claim) +
                        ": an entry was inserted");
      }
      // claim > pos: the entry for `pos` is either later (moved) or gone.
      // Look ahead (bounded) for a record claiming pos.
      uint64_t at = pos;
      bool found = false;
      bool resumes = false;
      for (uint64_t steps = 0; steps < (1u << 20); ++steps) {
        Record n;
        if (stream.Next(&n) != RecordStream::Kind::kRecord) break;
        ++at;
        if (found) {
          resumes = n.index == at;
          break;
        }
        if (n.index == pos) {
          found = true;
          resumes = true;  // if it is the last record, nothing contradicts a move
        }
      }
      if (!found) {
        return fail(Problem::kDeleted, pos,
                    "record at position " + std::to_string(pos) + " claims index " + std::to_string(claim) +
                        ": entries from " + std::to_string(pos) + " were deleted");
      }
      if (resumes) {
        return fail(Problem::kReordered, pos, "entry " + std::to_string(pos) + " was moved later in the log");
      }
      return fail(Problem::kInserted, pos, "record at position " + std::to_string(pos) + " was inserted");
    }
    range.Append(HashLeaf(r.payload));
    prev_payload.assign(r.payload);
    if (!check_checkpoints()) return res;
  }
  res.root = HashString(range.Root());
  if (next_cp < cps.size() && options.log_may_be_prefix &&
      std::all_of(cps.begin() + static_cast<std::ptrdiff_t>(next_cp), cps.end(),
                  [](const KnownCheckpoint& c) { return c.published; })) {
    res.published_beyond = cps.size() - next_cp;
    next_cp = cps.size();
  }
  if (next_cp < cps.size()) {
    const KnownCheckpoint& c = cps.back();
    return fail(Problem::kTruncated, range.size(),
                Describe(c) + " covers " + std::to_string(c.size) + " entries, the log has " +
                    std::to_string(range.size()));
  }
  res.ok = true;
  res.entries = range.size();
  return res;
}

}  // namespace phivault::audit
