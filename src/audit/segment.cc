#include "audit/segment.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>

namespace phivault::audit {
namespace {

void PutLe32(char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>(v >> (8 * i));
}
void PutLe64(char* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<char>(v >> (8 * i));
}
uint32_t GetLe32(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}
uint64_t GetLe64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

const std::array<uint32_t, 256>& CrcTable() {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;  // Castagnoli, reflected
      t[i] = c;
    }
    return t;
  }();
  return table;
}

// SSE4.2 has a CRC-32C instruction; it keeps the checksum far below the cost
// of the SHA-256 leaf hash on the verify path. Portable table fallback.
__attribute__((target("sse4.2"))) uint32_t Crc32cHw(uint32_t crc, const uint8_t* p, size_t n) {
  uint64_t c = crc;
  while (n >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    c = __builtin_ia32_crc32di(c, v);
    p += 8;
    n -= 8;
  }
  uint32_t c32 = static_cast<uint32_t>(c);
  while (n-- > 0) c32 = __builtin_ia32_crc32qi(c32, *p++);
  return c32;
}

}  // namespace

uint32_t Crc32c(uint32_t crc, const void* data, size_t n) {
  static const bool hw = __builtin_cpu_supports("sse4.2");
  const uint8_t* p = static_cast<const uint8_t*>(data);
  uint32_t c = ~crc;
  if (hw) {
    c = Crc32cHw(c, p, n);
  } else {
    const auto& t = CrcTable();
    for (size_t i = 0; i < n; ++i) c = t[(c ^ p[i]) & 0xff] ^ (c >> 8);
  }
  return ~c;
}

std::string EncodeSegmentHeader(uint64_t first_index) {
  std::string h(kSegmentHeaderSize, '\0');
  std::memcpy(h.data(), kSegmentMagic.data(), kSegmentMagic.size());
  PutLe64(h.data() + 8, first_index);
  return h;
}

void AppendRecord(std::string* out, uint64_t index, std::string_view payload) {
  const size_t at = out->size();
  out->resize(at + kRecordHeaderSize);
  char* h = out->data() + at;
  PutLe32(h, static_cast<uint32_t>(payload.size()));
  PutLe64(h + 4, index);
  uint32_t crc = Crc32c(0, h, 12);
  crc = Crc32c(crc, payload.data(), payload.size());
  PutLe32(h + 12, crc);
  out->append(payload);
}

std::string SegmentFileName(uint64_t number) {
  char name[40];
  std::snprintf(name, sizeof(name), "seg-%06llu.log", static_cast<unsigned long long>(number));
  return name;
}

StatusOr<std::vector<SegmentFile>> ListSegments(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return NotFound("audit: cannot list directory " + dir + ": " + std::strerror(errno));
  std::vector<SegmentFile> out;
  while (dirent* e = ::readdir(d)) {
    std::string_view name = e->d_name;
    if (name.size() < 12 || name.substr(0, 4) != "seg-" || name.substr(name.size() - 4) != ".log") continue;
    std::string_view digits = name.substr(4, name.size() - 8);
    if (digits.empty() || digits.size() > 18) continue;
    uint64_t n = 0;
    bool ok = true;
    for (char c : digits) {
      if (c < '0' || c > '9') ok = false;
      n = n * 10 + static_cast<uint64_t>(c - '0');
    }
    if (!ok) continue;
    out.push_back({n, dir + "/" + std::string(name)});
  }
  ::closedir(d);
  std::sort(out.begin(), out.end(), [](const SegmentFile& a, const SegmentFile& b) { return a.number < b.number; });
  return out;
}

StatusOr<std::optional<uint64_t>> ReadSegmentFirstIndex(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NotFound("audit: cannot open " + path + ": " + std::strerror(errno));
  char header[kSegmentHeaderSize];
  ssize_t got;
  do {
    got = ::pread(fd, header, sizeof(header), 0);
  } while (got < 0 && errno == EINTR);
  ::close(fd);
  if (got != static_cast<ssize_t>(sizeof(header)) ||
      std::memcmp(header, kSegmentMagic.data(), kSegmentMagic.size()) != 0) {
    return std::optional<uint64_t>();
  }
  return std::optional<uint64_t>(GetLe64(header + 8));
}

StatusOr<std::unique_ptr<SegmentReader>> SegmentReader::Open(const std::string& path, uint64_t start_offset) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NotFound("audit: cannot open " + path + ": " + std::strerror(errno));
  std::unique_ptr<SegmentReader> r(new SegmentReader());
  r->fd_ = fd;
  // The header alone first: a positioned read (one entry, an index lookup)
  // must not pull in the start of the file as well.
  char header[kSegmentHeaderSize];
  ssize_t got;
  do {
    got = ::pread(fd, header, sizeof(header), 0);
  } while (got < 0 && errno == EINTR);
  if (got == static_cast<ssize_t>(sizeof(header)) &&
      std::memcmp(header, kSegmentMagic.data(), kSegmentMagic.size()) == 0) {
    r->header_ok_ = true;
    r->first_index_ = GetLe64(header + 8);
  }
  r->good_offset_ = kSegmentHeaderSize;
  if (r->header_ok_) {
    // Records start after the header, or at a boundary the caller knows.
    const uint64_t at = std::max<uint64_t>(start_offset, kSegmentHeaderSize);
    r->file_offset_ = at;
    r->good_offset_ = at;
    if (::lseek(fd, static_cast<off_t>(at), SEEK_SET) < 0) return Internal("audit: seek failed in " + path);
  } else {
    // Recovery decides what a file without a valid header holds: it reads
    // from the first byte.
    r->Fill(kSegmentHeaderSize);
  }
  return r;
}

SegmentReader::~SegmentReader() {
  if (fd_ >= 0) ::close(fd_);
}

bool SegmentReader::Fill(size_t n) {
  while (len_ - pos_ < n) {
    if (eof_) return false;
    if (pos_ > 0) {
      // Slide the unread tail to the front; the buffer is reused, so steady
      // state reading costs no allocation.
      std::memmove(buf_.data(), buf_.data() + pos_, len_ - pos_);
      file_offset_ += pos_;
      len_ -= pos_;
      pos_ = 0;
    }
    // The buffer grows with the reading: a reader that wants one record
    // reads kMinReadBuffer, a scan soon reads kMaxReadBuffer at a time.
    if (buf_.size() < kMaxReadBuffer) {
      buf_.resize(buf_.empty() ? kMinReadBuffer : std::min(kMaxReadBuffer, 2 * buf_.size()));
    }
    if (buf_.size() < n) buf_.resize(n);
    const ssize_t got = ::read(fd_, buf_.data() + len_, buf_.size() - len_);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      eof_ = true;  // read errors end the stream too: the caller sees kTorn
      read_error_ = got < 0;
      return len_ - pos_ >= n;
    }
    len_ += static_cast<size_t>(got);
  }
  return true;
}

bool SegmentReader::RestIsZero() {
  // Bounded: a sparse file of terabytes of zeros must not keep a verifier
  // reading for hours.
  const uint64_t start = file_offset_ + pos_;
  while (true) {
    for (size_t i = pos_; i < len_; ++i) {
      if (buf_[i] != 0) return false;
    }
    pos_ = len_;
    if (file_offset_ + pos_ - start > kMaxPaddingBytes) return false;
    if (!Fill(1)) return !read_error_;
  }
}

SegmentReader::Result SegmentReader::Next(Record* out) {
  if (!header_ok_) return Result::kCorrupt;
  if (padding_) return Result::kEnd;
  if (bad_padding_) return Result::kCorrupt;
  if (!Fill(1)) return Result::kEnd;
  // No record starts with as many zero bytes as its header holds (the CRC of
  // a zero length and index is not zero), so zeros here are padding, or
  // damage if anything but zeros follows them.
  (void)Fill(kRecordHeaderSize);  // fewer bytes at the end of the file are checked below
  const size_t have = std::min(len_ - pos_, kRecordHeaderSize);
  if (std::all_of(buf_.data() + pos_, buf_.data() + pos_ + have, [](char c) { return c == 0; })) {
    // RestIsZero consumes the file, so the answer is kept for repeat calls.
    if (RestIsZero()) {
      padding_ = true;
      return Result::kEnd;
    }
    bad_padding_ = true;
    return Result::kCorrupt;
  }
  if (!Fill(kRecordHeaderSize)) return Result::kTorn;
  const char* h = buf_.data() + pos_;
  const uint32_t len = GetLe32(h);
  if (len > kMaxRecordBytes) return Result::kCorrupt;
  if (!Fill(kRecordHeaderSize + len)) return Result::kTorn;
  h = buf_.data() + pos_;  // Fill may have moved the data
  uint32_t crc = Crc32c(0, h, 12);
  crc = Crc32c(crc, h + kRecordHeaderSize, len);
  if (crc != GetLe32(h + 12)) return Result::kCorrupt;
  out->offset = file_offset_ + pos_;
  out->index = GetLe64(h + 4);
  out->payload = std::string_view(h + kRecordHeaderSize, len);
  pos_ += kRecordHeaderSize + len;
  good_offset_ = file_offset_ + pos_;
  return Result::kRecord;
}

}  // namespace phivault::audit
