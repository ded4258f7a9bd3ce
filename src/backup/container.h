// The backup container: one file that carries a vault's files, sealed with
// the vault's backup key (docs/BACKUP-FORMAT.md has the byte layout).
//
//   header   magic "PVBACKUP", format version, then vault id, backup id,
//            creation time, KEK version, chunk size and the keyring file
//            (wrapped keys only, needed to unwrap the backup key again)
//   chunks   flag (final or not) | length | AES-256-GCM(sealed plaintext)
//            AAD = label || SHA-256(header) || chunk index || flag
//   plaintext (the chunks' contents in order) = file records, then one
//            manifest record (name, size, SHA-256 of every file), and
//            nothing after it
//
// The header is authenticated through every chunk's AAD, so an edited
// header, a chunk moved, dropped, duplicated or taken from another backup,
// a file cut short or extended all fail to open. The writer never needs to
// seek; the reader streams and never buffers more than one chunk, so a
// backup of any size is read in bounded memory.
//
// The reader treats the file as untrusted: every length is checked against
// limits before anything is allocated, any malformed byte gives DataLoss
// (or Unsupported for another format version), never a crash. It reports
// file contents to a sink as it decrypts them; only the final manifest
// check says whether they were all genuine, so a sink must not treat
// anything as valid before Read() returned OK (restore writes into a
// staging directory and discards it on error).
//
// Thread-safety: a writer or reader belongs to one thread. Lifetime: the
// AEAD and the byte source/sink passed in must outlive the object.
#ifndef PHIVAULT_BACKUP_CONTAINER_H_
#define PHIVAULT_BACKUP_CONTAINER_H_

#include <sodium.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/secure_bytes.h"
#include "common/status.h"
#include "crypto/aead.h"

namespace phivault::backup {

inline constexpr std::string_view kMagic = "PVBACKUP";
inline constexpr uint32_t kFormatVersion = 1;
inline constexpr uint32_t kDefaultChunkBytes = 1u << 20;
inline constexpr uint32_t kMinChunkBytes = 4096;
inline constexpr uint32_t kMaxChunkBytes = 16u << 20;
inline constexpr uint32_t kMaxHeaderBytes = 1u << 20;  // the keyring is a few KiB
inline constexpr uint32_t kMaxFiles = 100000;
inline constexpr size_t kBackupIdBytes = 16;

// What the header says. Nothing in it is secret.
struct Header {
  uint32_t format_version = kFormatVersion;
  std::string vault_id;
  std::string backup_id;  // kBackupIdBytes random bytes
  int64_t created_ms = 0;
  uint32_t kek_version = 0;
  uint32_t chunk_bytes = kDefaultChunkBytes;
  std::string keyring;  // the keyring file's bytes
};

std::string BackupIdHex(const Header& h);

// One manifest line.
struct FileEntry {
  std::string name;
  uint64_t size = 0;
  std::string sha256;  // 32 raw bytes
  bool operator==(const FileEntry&) const = default;
};

// Names a backup may contain; anything else (absolute paths, "..", other
// files) is refused by the reader before the sink hears of it, so a crafted
// backup cannot make restore write outside its directory.
bool IsAllowedFileName(std::string_view name);

// The per-backup content key: HKDF of the keyring's backup key with the
// backup id, so no two backups share a key.
SecureBytes ContentKey(const SecureBytes& backup_key, const Header& header);

// Appends to a byte sink (a file descriptor in practice).
using WriteFn = std::function<Status(std::string_view)>;

class ContainerWriter {
 public:
  // Writes the header at once. REQUIRES: header.chunk_bytes within
  // [kMinChunkBytes, kMaxChunkBytes], backup_id of kBackupIdBytes.
  static StatusOr<std::unique_ptr<ContainerWriter>> Start(const Header& header, const crypto::Aead* aead,
                                                          WriteFn out);
  ~ContainerWriter();
  // Adds one file of `size` bytes; its content follows through Append,
  // exactly `size` bytes in total, before the next BeginFile or Finish.
  Status BeginFile(std::string_view name, uint64_t size);
  Status Append(std::string_view data);
  // Writes the manifest and the final chunk.
  Status Finish();
  const std::vector<FileEntry>& manifest() const { return manifest_; }

 private:
  ContainerWriter() = default;
  Status Emit(bool final);
  Status EndFile();

  const crypto::Aead* aead_ = nullptr;
  WriteFn out_;
  std::string header_digest_;
  uint32_t chunk_bytes_ = 0;
  uint64_t index_ = 0;
  std::string buf_;  // plaintext not yet sealed
  std::vector<FileEntry> manifest_;
  uint64_t remaining_ = 0;  // bytes still owed to the current file
  bool in_file_ = false;
  bool finished_ = false;
  crypto_hash_sha256_state sha_{};
};

// Reads from a byte source: fills up to `n` bytes, returns how many (0 at
// the end of the input).
using ReadFn = std::function<StatusOr<size_t>(char* buf, size_t n)>;

// Receives a backup's files while it is read (see the file comment).
class ContainerSink {
 public:
  virtual ~ContainerSink() = default;
  virtual Status BeginFile(const std::string& name, uint64_t size) = 0;
  virtual Status FileData(std::string_view data) = 0;
  virtual Status EndFile() = 0;
};

class ContainerReader {
 public:
  // Reads and checks the header only (needs no key).
  static StatusOr<std::unique_ptr<ContainerReader>> Open(ReadFn in);
  const Header& header() const { return header_; }
  // Opens every chunk with `aead` (from ContentKey), hands the files to
  // `sink`, and checks the manifest against what was read. Returns the
  // manifest. DataLoss naming the first problem otherwise.
  StatusOr<std::vector<FileEntry>> Read(const crypto::Aead& aead, ContainerSink& sink);

 private:
  ContainerReader() = default;
  ReadFn in_;
  Header header_;
  std::string header_digest_;
};

// The plaintext record stream alone (what the chunks carry), for the
// fuzzer and for Read(): `next` returns the next decrypted piece ("" at the
// end). Exposed so the record parser can be fuzzed without an AEAD.
StatusOr<std::vector<FileEntry>> ParseRecords(const std::function<StatusOr<std::string>()>& next,
                                              ContainerSink& sink);

}  // namespace phivault::backup

#endif  // PHIVAULT_BACKUP_CONTAINER_H_
