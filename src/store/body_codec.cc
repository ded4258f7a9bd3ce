#include "store/body_codec.h"

#include <zstd.h>

#include <memory>

#include <boost/json.hpp>

#include "common/secure_bytes.h"

namespace phivault::store::body {
namespace {

constexpr size_t kMaxBody = size_t{1} << 30;
constexpr char kPartRaw = 1;
constexpr char kPartZstd = 2;
// Pieces this small are stored raw in a parts envelope: a zstd frame of
// them would not be smaller.
constexpr size_t kMinCompressedPiece = 256;

// Control characters keep the placeholders out of ordinary text; Prepare
// still checks that each occurs exactly once.
constexpr std::string_view kVersionPlaceholder = "\x01phivault-version-id\x01";
constexpr std::string_view kUpdatedPlaceholder = "\x01phivault-last-updated\x01";

struct CctxDeleter {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};
struct DctxDeleter {
  void operator()(ZSTD_DCtx* c) const { ZSTD_freeDCtx(c); }
};

ZSTD_CCtx* ThreadCctx() {
  thread_local std::unique_ptr<ZSTD_CCtx, CctxDeleter> cctx(ZSTD_createCCtx());
  return cctx.get();
}

// One zstd frame of `in` appended to `out`. False on a compressor failure.
bool AppendFrame(std::string_view in, int level, std::string* out) {
  size_t at = out->size();
  out->resize(at + ZSTD_compressBound(in.size()));
  size_t n = ZSTD_compressCCtx(ThreadCctx(), out->data() + at, out->size() - at, in.data(), in.size(), level);
  if (ZSTD_isError(n)) {
    out->resize(at);
    return false;
  }
  out->resize(at + n);
  return true;
}

// Appends the content of one zstd frame, bounded so the body stays within
// kMaxBody.
Status AppendDecompressed(std::string_view frame, std::string* out) {
  unsigned long long size = ZSTD_getFrameContentSize(frame.data(), frame.size());
  if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN || size > kMaxBody - out->size()) {
    return DataLoss("bad compressed resource body");
  }
  thread_local std::unique_ptr<ZSTD_DCtx, DctxDeleter> dctx(ZSTD_createDCtx());
  size_t at = out->size();
  out->resize(at + size);
  size_t n = ZSTD_decompressDCtx(dctx.get(), out->data() + at, size, frame.data(), frame.size());
  if (ZSTD_isError(n) || n != size) return DataLoss("bad compressed resource body");
  return Status::Ok();
}

void AppendPart(char kind, std::string_view bytes, std::string* out) {
  out->push_back(kind);
  uint64_t n = bytes.size();
  do {
    out->push_back(static_cast<char>((n & 0x7f) | (n > 0x7f ? 0x80 : 0)));
    n >>= 7;
  } while (n);
  out->append(bytes);
}

// The position of the only occurrence of `needle` in `text`, or npos when it
// occurs not at all or more than once.
size_t FindOnce(std::string_view text, std::string_view needle) {
  size_t at = text.find(needle);
  if (at == std::string_view::npos || text.find(needle, at + 1) != std::string_view::npos) return std::string_view::npos;
  return at;
}

void AppendQuoted(std::string_view value, std::string* out) {
  out->push_back('"');
  out->append(value);
  out->push_back('"');
}

}  // namespace

void SetMeta(boost::json::object& resource, std::string_view version_id, std::string_view last_updated) {
  boost::json::value& meta_v = resource["meta"];
  if (!meta_v.is_object()) meta_v = boost::json::object();
  boost::json::object& meta = meta_v.get_object();
  meta["versionId"] = version_id;
  meta["lastUpdated"] = last_updated;
}

StatusOr<std::string> Encode(std::string_view json, int zstd_level) {
  std::string envelope;
  if (zstd_level > 0 && json.size() > kMinCompressedSize) {
    envelope.push_back(kZstdJson);
    if (!AppendFrame(json, zstd_level, &envelope)) return Internal("compressing a resource body failed");
    return envelope;
  }
  envelope.reserve(1 + json.size());
  envelope.push_back(kRawJson);
  envelope.append(json);
  return envelope;
}

StatusOr<std::string> Decode(std::string_view plain) {
  if (plain.empty()) return DataLoss("empty resource body envelope");
  char format = plain[0];
  plain.remove_prefix(1);
  std::string out;
  if (format == kRawJson) return std::string(plain);
  if (format == kZstdJson) {
    if (Status s = AppendDecompressed(plain, &out); !s.ok()) return s;
    return out;
  }
  if (format != kParts) return DataLoss("unknown resource body format");
  while (!plain.empty()) {
    char kind = plain[0];
    plain.remove_prefix(1);
    uint64_t n = 0;
    for (int shift = 0;; shift += 7) {
      if (plain.empty() || shift > 28) return DataLoss("truncated resource body part");
      unsigned char c = static_cast<unsigned char>(plain[0]);
      plain.remove_prefix(1);
      n |= static_cast<uint64_t>(c & 0x7f) << shift;
      if (!(c & 0x80)) break;
    }
    if (n > plain.size()) return DataLoss("truncated resource body part");
    std::string_view bytes = plain.substr(0, n);
    plain.remove_prefix(n);
    if (kind == kPartRaw) {
      if (bytes.size() > kMaxBody - out.size()) return DataLoss("resource body too large");
      out.append(bytes);
    } else if (kind == kPartZstd) {
      if (Status s = AppendDecompressed(bytes, &out); !s.ok()) return s;
    } else {
      return DataLoss("unknown resource body part");
    }
  }
  return out;
}

PreparedBody PreparedBody::Prepare(boost::json::object& resource, int zstd_level) {
  PreparedBody b;
  SetMeta(resource, kVersionPlaceholder, kUpdatedPlaceholder);
  b.text_ = boost::json::serialize(resource);
  const std::string version_q = boost::json::serialize(boost::json::value(kVersionPlaceholder));
  const std::string updated_q = boost::json::serialize(boost::json::value(kUpdatedPlaceholder));
  size_t v = FindOnce(b.text_, version_q);
  size_t u = FindOnce(b.text_, updated_q);
  if (v == std::string::npos || u == std::string::npos) return b;
  b.version_first_ = v < u;
  b.first_ = b.version_first_ ? v : u;
  b.first_len_ = b.version_first_ ? version_q.size() : updated_q.size();
  b.second_ = b.version_first_ ? u : v;
  b.second_len_ = b.version_first_ ? updated_q.size() : version_q.size();
  if (zstd_level > 0 && b.text_.size() > kMinCompressedSize) {
    std::string_view t = b.text_;
    const std::string_view pieces[3] = {t.substr(0, b.first_),
                                        t.substr(b.first_ + b.first_len_, b.second_ - b.first_ - b.first_len_),
                                        t.substr(b.second_ + b.second_len_)};
    for (int i = 0; i < 3; ++i) {
      if (pieces[i].size() < kMinCompressedPiece) continue;
      if (!AppendFrame(pieces[i], zstd_level, &b.frames_[i])) return b;
    }
    b.compressed_ = true;
  }
  b.usable_ = true;
  return b;
}

void PreparedBody::Finish(std::string_view version_id, std::string_view last_updated, std::string* json,
                          std::string* envelope) const {
  std::string_view first = version_first_ ? version_id : last_updated;
  std::string_view second = version_first_ ? last_updated : version_id;
  std::string_view t = text_;
  json->clear();
  json->reserve(text_.size() + 8);
  json->append(t.substr(0, first_));
  AppendQuoted(first, json);
  json->append(t.substr(first_ + first_len_, second_ - first_ - first_len_));
  AppendQuoted(second, json);
  json->append(t.substr(second_ + second_len_));
  envelope->clear();
  if (!compressed_) {
    envelope->reserve(1 + json->size());
    envelope->push_back(kRawJson);
    envelope->append(*json);
    return;
  }
  // The JSON text is pieces[0] value pieces[1] value pieces[2]; a piece
  // with a frame goes in compressed, everything else raw, adjacent raw
  // text merged into one part.
  const size_t bounds[4] = {0, first_, second_, text_.size()};
  const size_t skip[3] = {0, first_len_, second_len_};
  envelope->reserve(1 + frames_[0].size() + frames_[1].size() + frames_[2].size() + 64);
  envelope->push_back(kParts);
  std::string raw;
  for (int i = 0; i < 3; ++i) {
    if (i > 0) AppendQuoted(i == 1 ? first : second, &raw);
    if (frames_[i].empty()) {
      raw.append(t.substr(bounds[i] + skip[i], bounds[i + 1] - bounds[i] - skip[i]));
      continue;
    }
    if (!raw.empty()) AppendPart(kPartRaw, raw, envelope);
    SecureWipe(raw.data(), raw.size());
    raw.clear();
    AppendPart(kPartZstd, frames_[i], envelope);
  }
  if (!raw.empty()) AppendPart(kPartRaw, raw, envelope);
  SecureWipe(raw.data(), raw.size());
}

}  // namespace phivault::store::body
