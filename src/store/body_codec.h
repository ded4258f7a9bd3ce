// Internal to the store: the plaintext envelope of a stored resource body
// (what is sealed with the patient's data key) and its preparation before
// the writer thread.
//
// An envelope is one format byte and a payload:
//   1  the JSON text as is (small bodies, or compression off);
//   2  one zstd frame of the JSON text;
//   3  parts, each one kind byte (1 raw, 2 zstd frame), its length as a
//      little-endian base-128 varint and that many bytes; the JSON text is
//      the concatenation of the parts' contents.
// Format 3 exists so that serializing and compressing a body can happen on
// the submitting thread, before the single writer thread knows the
// version's meta.versionId and meta.lastUpdated: those two values go into
// small raw parts the writer fills in, and everything around them is
// compressed ahead of time (PreparedBody).
//
// Thread-safety: free functions are safe from any thread; a PreparedBody is
// a plain value. Lifetime: none beyond its own.
#ifndef PHIVAULT_STORE_BODY_CODEC_H_
#define PHIVAULT_STORE_BODY_CODEC_H_

#include <cstdint>
#include <string>
#include <string_view>

#include <boost/json/object.hpp>

#include "common/status.h"

namespace phivault::store::body {

inline constexpr char kRawJson = 1;
inline constexpr char kZstdJson = 2;
inline constexpr char kParts = 3;
// Bodies up to this size are stored raw: compression would not pay.
inline constexpr size_t kMinCompressedSize = 256;

// Sets meta.versionId and meta.lastUpdated (creating meta if needed). Keys
// already present keep their position; new ones are appended.
void SetMeta(boost::json::object& resource, std::string_view version_id, std::string_view last_updated);

// The envelope of `json` the writer stores when nothing was prepared.
// `zstd_level` 0 disables compression. Internal on a compressor failure.
StatusOr<std::string> Encode(std::string_view json, int zstd_level);

// The JSON text of an envelope of any format. DataLoss if malformed or
// larger than 1 GiB.
StatusOr<std::string> Decode(std::string_view envelope);

// A body serialized and compressed ahead of the writer.
class PreparedBody {
 public:
  // Sets placeholders for meta.versionId and meta.lastUpdated in `resource`
  // (the writer's later SetMeta overwrites them in place), serializes it
  // and, when the text is large enough and `zstd_level` > 0, compresses the
  // text around the two values. Returns a body that is not usable() when
  // the placeholders cannot be found exactly once each (the resource's own
  // text contains one), or on a compressor failure; the writer then encodes
  // the body itself.
  // REQUIRES: `resource` is not changed afterwards except by SetMeta.
  static PreparedBody Prepare(boost::json::object& resource, int zstd_level);

  bool usable() const { return usable_; }

  // The JSON text `resource` serializes to once SetMeta(resource,
  // version_id, last_updated) has run, and its envelope.
  // REQUIRES: usable(); the values need no JSON escaping (digits and an
  // ISO 8601 instant).
  void Finish(std::string_view version_id, std::string_view last_updated, std::string* json,
              std::string* envelope) const;

 private:
  bool usable_ = false;
  bool compressed_ = false;
  std::string text_;  // serialized with the placeholders
  // Offsets of the two quoted placeholders in text_, in text order; which of
  // them is the version is told by version_first_.
  size_t first_ = 0, first_len_ = 0, second_ = 0, second_len_ = 0;
  bool version_first_ = true;
  // When compressed_: a zstd frame of each of the three pieces of text_
  // around the two values (before, between, after), or empty for a piece
  // too small to compress, which goes in raw.
  std::string frames_[3];
};

}  // namespace phivault::store::body

#endif  // PHIVAULT_STORE_BODY_CODEC_H_
