// On-disk segment format of the audit log (see docs/AUDIT-LOG-FORMAT.md).
//
//   segment file  DIR/audit/seg-NNNNNN.log (NNNNNN = 1, 2, ... zero-padded)
//   header        "PVAUDIT1" | first entry index (u64 LE)            16 bytes
//   record        length L (u32 LE) | entry index (u64 LE) |
//                 CRC-32C over the 12 bytes before it and the payload (u32 LE) |
//                 payload: the sealed entry, L bytes
//   padding       zero bytes to the end of the file: space the writer filled
//                 ahead of its records so that a group commit's fdatasync
//                 does not also have to write the inode (see audit_log.h)
//
// The CRC is not a security measure (anyone can recompute it): it tells a
// torn or rotted record from a good one during crash recovery, and lets
// `audit verify` name the exact record a naive edit touched. Integrity comes
// from the Merkle tree and the signed checkpoints.
//
// SegmentReader reads untrusted files: any content yields records, kTorn or
// kCorrupt, never a crash, and memory stays bounded by kMaxRecordBytes.
//
// Thread-safety: SegmentReader is single-threaded; free functions are pure.
#ifndef PHIVAULT_AUDIT_SEGMENT_H_
#define PHIVAULT_AUDIT_SEGMENT_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace phivault::audit {

inline constexpr std::string_view kSegmentMagic = "PVAUDIT1";
inline constexpr size_t kSegmentHeaderSize = 16;
inline constexpr size_t kRecordHeaderSize = 16;
// Largest payload accepted from disk or from a caller; audit entries are a
// few hundred bytes, this only bounds what a hostile file can make us buffer.
inline constexpr uint32_t kMaxRecordBytes = 4u << 20;
// Longest zero padding a reader accepts after the last record (the writer
// pads at most AuditLogOptions::preallocate_bytes plus one block).
inline constexpr uint64_t kMaxPaddingBytes = 64ull << 20;

uint32_t Crc32c(uint32_t crc, const void* data, size_t n);

std::string EncodeSegmentHeader(uint64_t first_index);
void AppendRecord(std::string* out, uint64_t index, std::string_view payload);

std::string SegmentFileName(uint64_t number);
struct SegmentFile {
  uint64_t number = 0;
  std::string path;
};
// Every seg-NNNNNN.log in `dir`, sorted by number. Other names are ignored.
StatusOr<std::vector<SegmentFile>> ListSegments(const std::string& dir);

// The first entry index a segment's header names, read without buffering
// any record (open scans every header of a long log); nullopt for a short
// or wrong header. NotFound if the file cannot be opened.
StatusOr<std::optional<uint64_t>> ReadSegmentFirstIndex(const std::string& path);

struct Record {
  uint64_t offset = 0;        // of the record header in the file
  uint64_t index = 0;         // as claimed by the record header
  std::string_view payload;   // valid until the next call to Next()
};

class SegmentReader {
 public:
  enum class Result { kRecord, kEnd, kTorn, kCorrupt };

  // NotFound/Internal if the file cannot be opened. A short or wrong header
  // is reported by header_ok(), not as an error, so recovery can decide.
  static StatusOr<std::unique_ptr<SegmentReader>> Open(const std::string& path, uint64_t start_offset = 0);
  ~SegmentReader();
  SegmentReader(const SegmentReader&) = delete;
  SegmentReader& operator=(const SegmentReader&) = delete;

  bool header_ok() const { return header_ok_; }
  uint64_t first_index() const { return first_index_; }
  // kTorn: the file ends inside a record (crash mid-write). kCorrupt: a
  // complete record with a bad length or CRC. After either, Next() repeats it.
  // kEnd also when only zero padding follows the last record (padding()
  // then says so); zeros followed by anything else, more than
  // kMaxPaddingBytes of them, or a read error among them are kCorrupt, so
  // nothing can hide behind padding. A segment being written to can show
  // a record over padding half written: readers of a live log re-read.
  Result Next(Record* out);
  bool padding() const { return padding_; }
  // End of the last good record: where a torn tail is cut.
  uint64_t good_offset() const { return good_offset_; }

 private:
  SegmentReader() = default;
  // Makes `n` bytes available at buf_[pos_]; false at end of file.
  bool Fill(size_t n);
  // True if every byte from the read position to the end of file is zero.
  bool RestIsZero();

  static constexpr size_t kMinReadBuffer = 16 << 10;
  static constexpr size_t kMaxReadBuffer = 1 << 20;

  int fd_ = -1;
  bool header_ok_ = false;
  uint64_t first_index_ = 0;
  uint64_t good_offset_ = 0;
  uint64_t file_offset_ = 0;  // file offset of buf_[0]
  std::string buf_;
  size_t pos_ = 0;
  size_t len_ = 0;
  bool eof_ = false;
  bool padding_ = false;
  bool bad_padding_ = false;
  bool read_error_ = false;
};

}  // namespace phivault::audit

#endif  // PHIVAULT_AUDIT_SEGMENT_H_
