#include "backup/container.h"

#include <algorithm>
#include <cstring>
#include <set>

namespace phivault::backup {
namespace {

constexpr std::string_view kChunkLabel = "phivault-backup-chunk-v1";
constexpr std::string_view kKeyInfo = "phivault backup content key v1 ";
constexpr uint8_t kFileRecord = 1;
constexpr uint8_t kManifestRecord = 2;
constexpr size_t kMaxNameBytes = 255;
constexpr size_t kFrameHeaderBytes = 5;  // flag (1) + sealed length (4)
constexpr size_t kDigestBytes = crypto_hash_sha256_BYTES;

void PutU16(std::string* out, uint16_t v) {
  out->push_back(static_cast<char>(v >> 8));
  out->push_back(static_cast<char>(v));
}
void PutU32(std::string* out, uint32_t v) {
  for (int i = 3; i >= 0; --i) out->push_back(static_cast<char>(v >> (8 * i)));
}
void PutU64(std::string* out, uint64_t v) {
  for (int i = 7; i >= 0; --i) out->push_back(static_cast<char>(v >> (8 * i)));
}
uint64_t GetBE(std::string_view b) {
  uint64_t v = 0;
  for (unsigned char c : b) v = (v << 8) | c;
  return v;
}

std::string Sha256(std::string_view data) {
  std::string out(kDigestBytes, '\0');
  crypto_hash_sha256(reinterpret_cast<unsigned char*>(out.data()), reinterpret_cast<const unsigned char*>(data.data()),
                     data.size());
  return out;
}

std::string FinishSha(crypto_hash_sha256_state* st) {
  std::string out(kDigestBytes, '\0');
  crypto_hash_sha256_final(st, reinterpret_cast<unsigned char*>(out.data()));
  return out;
}

std::string EncodeHeader(const Header& h) {
  std::string body;
  body.push_back(static_cast<char>(h.vault_id.size()));
  body += h.vault_id;
  body += h.backup_id;
  PutU64(&body, static_cast<uint64_t>(h.created_ms));
  PutU32(&body, h.kek_version);
  PutU32(&body, h.chunk_bytes);
  PutU32(&body, static_cast<uint32_t>(h.keyring.size()));
  body += h.keyring;
  std::string out(kMagic);
  PutU32(&out, h.format_version);
  PutU32(&out, static_cast<uint32_t>(body.size()));
  return out + body;
}

std::string ChunkAad(std::string_view header_digest, uint64_t index, bool final) {
  std::string aad(kChunkLabel);
  aad.push_back('\0');
  aad += header_digest;
  PutU64(&aad, index);
  aad.push_back(final ? '\1' : '\0');
  return aad;
}

Status Damaged(std::string_view what) {
  return DataLoss("backup file is damaged or was modified: " + std::string(what));
}

// Reads exactly n bytes; false if the input ended first.
StatusOr<bool> ReadExactly(const ReadFn& in, char* buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    PV_ASSIGN_OR_RETURN(size_t r, in(buf + got, n - got));
    if (r == 0) return false;
    got += r;
  }
  return true;
}

// Pulls bytes out of the decrypted chunks for the record parser.
class Plaintext {
 public:
  explicit Plaintext(const std::function<StatusOr<std::string>()>& next) : next_(next) {}

  // Makes n bytes available (n is small: a record header); DataLoss if the
  // stream ends first.
  Status Need(size_t n) {
    while (cur_.size() - pos_ < n) {
      PV_ASSIGN_OR_RETURN(std::string more, next_());
      if (more.empty()) return Damaged("it ends inside a record (truncated)");
      cur_.erase(0, pos_);
      pos_ = 0;
      cur_ += more;
    }
    return Status::Ok();
  }
  StatusOr<std::string_view> Take(size_t n) {
    PV_RETURN_IF_ERROR(Need(n));
    std::string_view v(cur_.data() + pos_, n);
    pos_ += n;
    return v;
  }
  // Up to `max` bytes (at least one), for streaming file contents.
  StatusOr<std::string_view> TakeSome(uint64_t max) {
    PV_RETURN_IF_ERROR(Need(1));
    const size_t n = static_cast<size_t>(std::min<uint64_t>(max, cur_.size() - pos_));
    std::string_view v(cur_.data() + pos_, n);
    pos_ += n;
    return v;
  }
  StatusOr<bool> AtEnd() {
    if (pos_ < cur_.size()) return false;
    PV_ASSIGN_OR_RETURN(std::string more, next_());
    if (more.empty()) return true;
    cur_ = std::move(more);
    pos_ = 0;
    return false;
  }

 private:
  const std::function<StatusOr<std::string>()>& next_;
  std::string cur_;
  size_t pos_ = 0;
};

StatusOr<std::string> TakeName(Plaintext& p) {
  PV_ASSIGN_OR_RETURN(std::string_view len_bytes, p.Take(2));
  const size_t len = static_cast<size_t>(GetBE(len_bytes));
  if (len == 0 || len > kMaxNameBytes) return Damaged("a file name has an invalid length");
  PV_ASSIGN_OR_RETURN(std::string_view name, p.Take(len));
  if (!IsAllowedFileName(name)) return Damaged("it names a file a backup never holds");
  return std::string(name);
}

}  // namespace

std::string BackupIdHex(const Header& h) {
  std::string hex(2 * h.backup_id.size() + 1, '\0');
  sodium_bin2hex(hex.data(), hex.size(), reinterpret_cast<const unsigned char*>(h.backup_id.data()),
                 h.backup_id.size());
  hex.pop_back();
  return hex;
}

bool IsAllowedFileName(std::string_view name) {
  if (name == "vault.db" || name == "accounts.db" || name == "audit/checkpoints") return true;
  constexpr std::string_view kSegPrefix = "audit/seg-", kSegSuffix = ".log";
  if (!name.starts_with(kSegPrefix) || !name.ends_with(kSegSuffix)) return false;
  const std::string_view digits = name.substr(kSegPrefix.size(), name.size() - kSegPrefix.size() - kSegSuffix.size());
  return digits.size() >= 6 && digits.size() <= 20 &&
         std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; });
}

SecureBytes ContentKey(const SecureBytes& backup_key, const Header& header) {
  return crypto::DeriveKey(backup_key, std::string(kKeyInfo) + BackupIdHex(header));
}

// ---- writer ----

StatusOr<std::unique_ptr<ContainerWriter>> ContainerWriter::Start(const Header& header, const crypto::Aead* aead,
                                                                  WriteFn out) {
  if (header.chunk_bytes < kMinChunkBytes || header.chunk_bytes > kMaxChunkBytes) {
    return InvalidArgument("backup chunk size out of range");
  }
  if (header.backup_id.size() != kBackupIdBytes || header.vault_id.empty() || header.vault_id.size() > 255) {
    return InvalidArgument("backup header needs a vault id and a backup id");
  }
  const std::string encoded = EncodeHeader(header);
  if (encoded.size() > kMaxHeaderBytes) return InvalidArgument("backup header too large (keyring file too large)");
  std::unique_ptr<ContainerWriter> w(new ContainerWriter());
  w->aead_ = aead;
  w->out_ = std::move(out);
  w->header_digest_ = Sha256(encoded);
  w->chunk_bytes_ = header.chunk_bytes;
  PV_RETURN_IF_ERROR(w->out_(encoded));
  return w;
}

ContainerWriter::~ContainerWriter() { SecureWipe(buf_.data(), buf_.size()); }

Status ContainerWriter::Emit(bool final) {
  const size_t n = final ? buf_.size() : chunk_bytes_;
  std::string frame;
  frame.push_back(final ? '\1' : '\0');
  const std::string sealed = aead_->Seal(std::string_view(buf_).substr(0, n), ChunkAad(header_digest_, index_, final));
  PutU32(&frame, static_cast<uint32_t>(sealed.size()));
  frame += sealed;
  SecureWipe(buf_.data(), n);
  buf_.erase(0, n);
  ++index_;
  return out_(frame);
}

Status ContainerWriter::BeginFile(std::string_view name, uint64_t size) {
  if (finished_ || in_file_) return Internal("backup writer: BeginFile out of order");
  if (!IsAllowedFileName(name)) return InvalidArgument("backup writer: not a backup file name: " + std::string(name));
  if (manifest_.size() >= kMaxFiles) return InvalidArgument("backup writer: too many files");
  for (const auto& f : manifest_) {
    if (f.name == name) return InvalidArgument("backup writer: file added twice: " + std::string(name));
  }
  buf_.push_back(static_cast<char>(kFileRecord));
  PutU16(&buf_, static_cast<uint16_t>(name.size()));
  buf_ += name;
  PutU64(&buf_, size);
  manifest_.push_back({std::string(name), size, {}});
  crypto_hash_sha256_init(&sha_);
  remaining_ = size;
  in_file_ = true;
  if (size == 0) return EndFile();
  return Status::Ok();
}

Status ContainerWriter::Append(std::string_view data) {
  if (!in_file_ || data.size() > remaining_) return Internal("backup writer: more data than the file's size");
  crypto_hash_sha256_update(&sha_, reinterpret_cast<const unsigned char*>(data.data()), data.size());
  remaining_ -= data.size();
  while (!data.empty()) {
    const size_t room = chunk_bytes_ + 1 - std::min<size_t>(buf_.size(), chunk_bytes_ + 1);
    const size_t take = std::min(room, data.size());
    buf_.append(data.data(), take);
    data.remove_prefix(take);
    // Strictly more than a chunk: the final chunk always has content.
    while (buf_.size() > chunk_bytes_) PV_RETURN_IF_ERROR(Emit(false));
  }
  if (remaining_ == 0) return EndFile();
  return Status::Ok();
}

Status ContainerWriter::EndFile() {
  manifest_.back().sha256 = FinishSha(&sha_);
  in_file_ = false;
  return Status::Ok();
}

Status ContainerWriter::Finish() {
  if (finished_ || in_file_) return Internal("backup writer: Finish before the last file was complete");
  buf_.push_back(static_cast<char>(kManifestRecord));
  PutU32(&buf_, static_cast<uint32_t>(manifest_.size()));
  for (const auto& f : manifest_) {
    PutU16(&buf_, static_cast<uint16_t>(f.name.size()));
    buf_ += f.name;
    PutU64(&buf_, f.size);
    buf_ += f.sha256;
  }
  while (buf_.size() > chunk_bytes_) PV_RETURN_IF_ERROR(Emit(false));
  finished_ = true;
  return Emit(true);
}

// ---- reader ----

StatusOr<std::unique_ptr<ContainerReader>> ContainerReader::Open(ReadFn in) {
  std::string fixed(kMagic.size() + 8, '\0');
  PV_ASSIGN_OR_RETURN(bool got, ReadExactly(in, fixed.data(), fixed.size()));
  if (!got || std::string_view(fixed).substr(0, kMagic.size()) != kMagic) {
    return DataLoss("not a phivault backup file (no PVBACKUP header)");
  }
  std::unique_ptr<ContainerReader> r(new ContainerReader());
  Header& h = r->header_;
  h.format_version = static_cast<uint32_t>(GetBE(std::string_view(fixed).substr(kMagic.size(), 4)));
  if (h.format_version != kFormatVersion) {
    return Status(StatusCode::kUnsupported, "backup format version " + std::to_string(h.format_version) +
                                                " is not readable by this phivault (it reads version " +
                                                std::to_string(kFormatVersion) + ")");
  }
  const uint64_t body_len = GetBE(std::string_view(fixed).substr(kMagic.size() + 4, 4));
  if (body_len > kMaxHeaderBytes) return Damaged("header length out of range");
  std::string body(static_cast<size_t>(body_len), '\0');
  PV_ASSIGN_OR_RETURN(got, ReadExactly(in, body.data(), body.size()));
  if (!got) return Damaged("it ends inside the header (truncated)");

  std::string_view b(body);
  auto take = [&b](size_t n, std::string_view* out) {
    if (b.size() < n) return false;
    *out = b.substr(0, n);
    b.remove_prefix(n);
    return true;
  };
  std::string_view f;
  if (!take(1, &f)) return Damaged("header too short");
  const size_t vid_len = static_cast<unsigned char>(f[0]);
  if (vid_len == 0 || !take(vid_len, &f)) return Damaged("header has no vault id");
  h.vault_id = std::string(f);
  if (!take(kBackupIdBytes, &f)) return Damaged("header too short");
  h.backup_id = std::string(f);
  if (!take(8, &f)) return Damaged("header too short");
  h.created_ms = static_cast<int64_t>(GetBE(f));
  if (!take(4, &f)) return Damaged("header too short");
  h.kek_version = static_cast<uint32_t>(GetBE(f));
  if (!take(4, &f)) return Damaged("header too short");
  h.chunk_bytes = static_cast<uint32_t>(GetBE(f));
  if (h.chunk_bytes < kMinChunkBytes || h.chunk_bytes > kMaxChunkBytes) return Damaged("chunk size out of range");
  if (!take(4, &f)) return Damaged("header too short");
  const size_t keyring_len = static_cast<size_t>(GetBE(f));
  if (!take(keyring_len, &f) || !b.empty()) return Damaged("header length does not match its fields");
  h.keyring = std::string(f);
  r->header_digest_ = Sha256(fixed + body);
  r->in_ = std::move(in);
  return r;
}

StatusOr<std::vector<FileEntry>> ContainerReader::Read(const crypto::Aead& aead, ContainerSink& sink) {
  uint64_t index = 0;
  bool final_seen = false;
  std::function<StatusOr<std::string>()> next = [&]() -> StatusOr<std::string> {
    if (final_seen) {
      char extra;
      PV_ASSIGN_OR_RETURN(size_t n, in_(&extra, 1));
      if (n != 0) return Damaged("bytes follow the final chunk (appended data)");
      return std::string();
    }
    char frame[kFrameHeaderBytes];
    PV_ASSIGN_OR_RETURN(size_t first, in_(frame, 1));
    if (first == 0) return Damaged("the final chunk is missing (truncated)");
    PV_ASSIGN_OR_RETURN(bool got, ReadExactly(in_, frame + 1, kFrameHeaderBytes - 1));
    if (!got) return Damaged("chunk " + std::to_string(index) + " is cut off (truncated)");
    if (frame[0] != 0 && frame[0] != 1) return Damaged("chunk " + std::to_string(index) + " has a bad flag");
    const bool final = frame[0] == 1;
    const uint64_t len = GetBE(std::string_view(frame + 1, 4));
    if (len < crypto::Aead::kOverhead || len > header_.chunk_bytes + crypto::Aead::kOverhead) {
      return Damaged("chunk " + std::to_string(index) + " has a bad length");
    }
    std::string sealed(static_cast<size_t>(len), '\0');
    PV_ASSIGN_OR_RETURN(got, ReadExactly(in_, sealed.data(), sealed.size()));
    if (!got) return Damaged("chunk " + std::to_string(index) + " is cut off (truncated)");
    auto plain = aead.Open(sealed, ChunkAad(header_digest_, index, final));
    if (!plain.ok()) {
      return Damaged("chunk " + std::to_string(index) +
                     " does not authenticate (changed, reordered, or from another backup)");
    }
    if (plain->empty()) return Damaged("chunk " + std::to_string(index) + " is empty");
    ++index;
    final_seen = final;
    return std::move(*plain);
  };
  return ParseRecords(next, sink);
}

StatusOr<std::vector<FileEntry>> ParseRecords(const std::function<StatusOr<std::string>()>& next,
                                              ContainerSink& sink) {
  Plaintext p(next);
  std::vector<FileEntry> seen;
  std::set<std::string> names;
  while (true) {
    PV_ASSIGN_OR_RETURN(std::string_view type, p.Take(1));
    if (static_cast<uint8_t>(type[0]) == kManifestRecord) break;
    if (static_cast<uint8_t>(type[0]) != kFileRecord) return Damaged("unknown record type");
    if (seen.size() >= kMaxFiles) return Damaged("too many files");
    PV_ASSIGN_OR_RETURN(std::string name, TakeName(p));
    if (!names.insert(name).second) return Damaged("a file appears twice: " + name);
    PV_ASSIGN_OR_RETURN(std::string_view size_bytes, p.Take(8));
    const uint64_t size = GetBE(size_bytes);
    PV_RETURN_IF_ERROR(sink.BeginFile(name, size));
    crypto_hash_sha256_state sha;
    crypto_hash_sha256_init(&sha);
    for (uint64_t left = size; left > 0;) {
      PV_ASSIGN_OR_RETURN(std::string_view piece, p.TakeSome(left));
      crypto_hash_sha256_update(&sha, reinterpret_cast<const unsigned char*>(piece.data()), piece.size());
      PV_RETURN_IF_ERROR(sink.FileData(piece));
      left -= piece.size();
    }
    PV_RETURN_IF_ERROR(sink.EndFile());
    seen.push_back({std::move(name), size, FinishSha(&sha)});
  }
  PV_ASSIGN_OR_RETURN(std::string_view count_bytes, p.Take(4));
  if (GetBE(count_bytes) != seen.size()) return Damaged("the manifest lists another number of files than it holds");
  std::vector<FileEntry> manifest;
  for (size_t i = 0; i < seen.size(); ++i) {
    FileEntry e;
    PV_ASSIGN_OR_RETURN(e.name, TakeName(p));
    PV_ASSIGN_OR_RETURN(std::string_view size_bytes, p.Take(8));
    e.size = GetBE(size_bytes);
    PV_ASSIGN_OR_RETURN(std::string_view digest, p.Take(kDigestBytes));
    e.sha256 = std::string(digest);
    if (e.name != seen[i].name || e.size != seen[i].size) return Damaged("the manifest does not match the files");
    if (e.sha256 != seen[i].sha256) return Damaged("the SHA-256 of " + e.name + " does not match the manifest");
    manifest.push_back(std::move(e));
  }
  PV_ASSIGN_OR_RETURN(bool end, p.AtEnd());
  if (!end) return Damaged("data follows the manifest");
  return manifest;
}

}  // namespace phivault::backup
