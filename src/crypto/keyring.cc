#include "crypto/keyring.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <utility>

// Keyring file grammar (DIR/keyring.txt), one "name=value" per line, LF only:
//
//   phivault-keyring 1                      first line: magic and format version
//   vault_id=<uuid v4, lowercase>
//   kdf=none | argon2id                     none: key file / env var
//   argon2_salt=<base64, 16 bytes>          only with kdf=argon2id
//   argon2_opslimit=<decimal>               "
//   argon2_memlimit=<decimal bytes>         "
//   kek_version=<decimal>
//   kek=<base64 sealed KEK>                 AAD: "phivault-keyring" 0 vault_id 0 "kek" 0 version
//   key.<purpose>=<base64 sealed key>       AAD: "phivault-keyring" 0 vault_id 0 purpose 0 version
//   checksum=<hex SHA-256 of every byte before this line>
//
// The checksum is unkeyed on purpose: it cannot stop an attacker (the AEAD
// tags do that) but it lets Open report an edited or damaged file as DataLoss
// instead of blaming the operator's key. Unknown or repeated names are
// rejected, so a newer format is never half-understood.

namespace phivault::crypto {
namespace {

constexpr std::string_view kMagic = "phivault-keyring 1";
constexpr std::string_view kFileName = "keyring.txt";
constexpr std::string_view kMasterWrapInfo = "phivault/keyring/master-wrap/v1";
constexpr size_t kMaxKeyringFile = 64 * 1024;
constexpr size_t kMaxPassphraseFile = 4096;
// Bounds on Argon2 costs read from the (untrusted) keyring file: enough for
// any sane setting, small enough that a doctored file cannot make Open burn
// minutes of CPU or all the host's memory.
constexpr uint64_t kMaxOpslimit = 64;
constexpr uint64_t kMaxMemlimit = 4ull << 30;

Status AlreadyExists(std::string m) { return {StatusCode::kAlreadyExists, std::move(m)}; }

std::string ErrnoText(int e) { return std::strerror(e); }

// Closes a descriptor on every return path.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

bool WriteAll(int fd, const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

// Reads up to `max` bytes; returns the count or -1 (errno set).
ssize_t ReadUpTo(int fd, uint8_t* buf, size_t max) {
  size_t got = 0;
  while (got < max) {
    ssize_t r = ::read(fd, buf + got, max - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -1;
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  return static_cast<ssize_t>(got);
}

Status FsyncDir(const std::string& dir) {
  Fd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (d.get() < 0 || ::fsync(d.get()) != 0) {
    return Internal("cannot fsync directory " + dir + ": " + ErrnoText(errno));
  }
  return Status::Ok();
}

std::string DirOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// Opens a secret file (key or passphrase) and enforces the owner-only rule:
// a key readable by other accounts on the host is already disclosed.
StatusOr<int> OpenSecretFile(const std::string& path, std::string_view what) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    return InvalidArgument(std::string(what) + " " + path + " cannot be opened: " + ErrnoText(errno));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return InvalidArgument(std::string(what) + " " + path + " is not a regular file");
  }
  if ((st.st_mode & 077) != 0) {
    ::close(fd);
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return InvalidArgument(std::string(what) + " " + path + " has mode " + mode +
                           "; it must not be accessible by group or others (run: chmod 600 " + path + ")");
  }
  return fd;
}

std::string ToBase64(std::string_view bin) {
  std::string out(sodium_base64_ENCODED_LEN(bin.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(bin.data()), bin.size(),
                    sodium_base64_VARIANT_ORIGINAL);
  out.resize(std::strlen(out.c_str()));
  return out;
}

std::optional<std::string> FromBase64(std::string_view b64) {
  std::string out(b64.size() / 4 * 3 + 3, '\0');
  size_t len = 0;
  const char* end = nullptr;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), b64.data(), b64.size(), nullptr,
                        &len, &end, sodium_base64_VARIANT_ORIGINAL) != 0 ||
      end != b64.data() + b64.size()) {
    return std::nullopt;
  }
  out.resize(len);
  return out;
}

std::string Sha256Hex(std::string_view data) {
  unsigned char h[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(h, reinterpret_cast<const unsigned char*>(data.data()), data.size());
  char hex[crypto_hash_sha256_BYTES * 2 + 1];
  sodium_bin2hex(hex, sizeof hex, h, sizeof h);
  return std::string(hex);
}

std::string NewUuidV4() {
  uint8_t b[16];
  randombytes_buf(b, sizeof b);
  b[6] = static_cast<uint8_t>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<uint8_t>((b[8] & 0x3f) | 0x80);
  char out[37];
  std::snprintf(out, sizeof out, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
                b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
  return out;
}

bool IsUuid(std::string_view s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    const char c = s[i];
    if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

std::optional<uint64_t> ParseU64(std::string_view s) {
  uint64_t v = 0;
  if (s.empty() || s.size() > 20) return std::nullopt;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

std::string KekAad(const std::string& vault_id, uint32_t version) {
  std::string a = "phivault-keyring";
  a += '\0';
  a += vault_id;
  a += '\0';
  a += "kek";
  a += '\0';
  a += std::to_string(version);
  return a;
}

std::string PurposeAad(const std::string& vault_id, std::string_view purpose, uint32_t version) {
  std::string a = "phivault-keyring";
  a += '\0';
  a += vault_id;
  a += '\0';
  a += purpose;
  a += '\0';
  a += std::to_string(version);
  return a;
}

std::string DataKeyAad(const std::string& vault_id, uint32_t version, std::string_view context) {
  std::string a = "phivault-datakey";
  a += '\0';
  a += vault_id;
  a += '\0';
  a += std::to_string(version);
  a += '\0';
  a += context;
  return a;
}

enum class SourceKind { kKeyFile, kPassphrase, kEnv };

StatusOr<SourceKind> KindOf(const MasterKeySource& s) {
  const int n = !s.key_file.empty() + !s.passphrase_file.empty() + !s.key_env.empty();
  if (n != 1) {
    return InvalidArgument("exactly one master key source (key file, passphrase file or environment variable) must be set");
  }
  if (!s.key_file.empty()) return SourceKind::kKeyFile;
  if (!s.passphrase_file.empty()) return SourceKind::kPassphrase;
  return SourceKind::kEnv;
}

StatusOr<SecureBytes> ReadKeyEnv(const std::string& name) {
  const char* v = std::getenv(name.c_str());
  if (v == nullptr) return InvalidArgument("environment variable " + name + " is not set");
  const size_t len = std::strlen(v);
  if (len != 2 * Aead::kKeySize) {
    return InvalidArgument("environment variable " + name + " must hold the master key as exactly 64 hex characters");
  }
  SecureBytes key(Aead::kKeySize);
  size_t bin_len = 0;
  const char* end = nullptr;
  if (sodium_hex2bin(key.data(), key.size(), v, len, nullptr, &bin_len, &end) != 0 || bin_len != key.size() ||
      end != v + len) {
    return InvalidArgument("environment variable " + name + " must hold the master key as exactly 64 hex characters");
  }
  return key;
}

// First line of the passphrase file, without the line ending.
StatusOr<SecureBytes> ReadPassphrase(const std::string& path) {
  PV_ASSIGN_OR_RETURN(int raw_fd, OpenSecretFile(path, "passphrase file"));
  Fd fd(raw_fd);
  SecureBytes buf(kMaxPassphraseFile + 1);
  const ssize_t n = ReadUpTo(fd.get(), buf.data(), buf.size());
  if (n < 0) return InvalidArgument("passphrase file " + path + " cannot be read: " + ErrnoText(errno));
  size_t len = 0;
  while (len < static_cast<size_t>(n) && buf.data()[len] != '\n') ++len;
  if (len == static_cast<size_t>(n) && static_cast<size_t>(n) > kMaxPassphraseFile) {
    return InvalidArgument("passphrase file " + path + " has a first line longer than 4096 bytes");
  }
  if (len > 0 && buf.data()[len - 1] == '\r') --len;
  if (len == 0) return InvalidArgument("passphrase file " + path + " has an empty first line");
  return SecureBytes::From(std::string_view(reinterpret_cast<const char*>(buf.data()), len));
}

StatusOr<SecureBytes> Argon2id(const SecureBytes& passphrase, std::string_view salt, uint64_t ops, uint64_t mem) {
  SecureBytes out(Aead::kKeySize);
  if (crypto_pwhash(out.data(), out.size(), reinterpret_cast<const char*>(passphrase.data()), passphrase.size(),
                    reinterpret_cast<const unsigned char*>(salt.data()), ops, static_cast<size_t>(mem),
                    crypto_pwhash_ALG_ARGON2ID13) != 0) {
    return Status(StatusCode::kResourceExhausted, "Argon2id failed: not enough memory for memlimit " +
                                                      std::to_string(mem) + " bytes");
  }
  return out;
}

Status CheckArgonParams(uint64_t ops, uint64_t mem) {
  if (ops < crypto_pwhash_argon2id_OPSLIMIT_MIN || ops > kMaxOpslimit || mem < crypto_pwhash_argon2id_MEMLIMIT_MIN ||
      mem > kMaxMemlimit) {
    return InvalidArgument("Argon2id parameters out of range (opslimit 1..64, memlimit 8 KiB..4 GiB)");
  }
  return Status::Ok();
}

// Parsed keyring file; all fields still wrapped.
struct KeyringFile {
  std::string vault_id;
  std::string kdf;
  std::string argon2_salt;
  uint64_t argon2_opslimit = 0;
  uint64_t argon2_memlimit = 0;
  uint32_t kek_version = 0;
  std::string kek;
  std::string keys[kKeyPurposeCount];
};

// Appends "name=value\n". Plain appends only: GCC 12 at -O3 reports a false
// -Wrestrict on `s += "literal" + std::string`.
void AddLine(std::string& s, std::string_view name, std::string_view value) {
  s.append(name);
  s.push_back('=');
  s.append(value);
  s.push_back('\n');
}

std::string Serialize(const KeyringFile& f) {
  std::string s;
  s.append(kMagic);
  s.push_back('\n');
  AddLine(s, "vault_id", f.vault_id);
  AddLine(s, "kdf", f.kdf);
  if (f.kdf == "argon2id") {
    AddLine(s, "argon2_salt", ToBase64(f.argon2_salt));
    AddLine(s, "argon2_opslimit", std::to_string(f.argon2_opslimit));
    AddLine(s, "argon2_memlimit", std::to_string(f.argon2_memlimit));
  }
  AddLine(s, "kek_version", std::to_string(f.kek_version));
  AddLine(s, "kek", ToBase64(f.kek));
  for (int i = 0; i < kKeyPurposeCount; ++i) {
    std::string name = "key.";
    name.append(KeyPurposeName(static_cast<KeyPurpose>(i)));
    AddLine(s, name, ToBase64(f.keys[i]));
  }
  const std::string sum = Sha256Hex(s);
  AddLine(s, "checksum", sum);
  return s;
}

Status Corrupt(const std::string& path, std::string_view why) {
  return DataLoss("keyring file " + path + " is damaged or was modified (" + std::string(why) +
                  "); restore it from backup");
}

StatusOr<KeyringFile> Parse(std::string_view text, const std::string& path) {
  // Checksum first: everything after it can then assume an intact file.
  constexpr std::string_view kSumKey = "checksum=";
  if (text.empty() || text.back() != '\n') return Corrupt(path, "truncated");
  const size_t last_start = text.rfind('\n', text.size() - 2);
  if (last_start == std::string_view::npos) return Corrupt(path, "no checksum");
  const std::string_view body = text.substr(0, last_start + 1);
  const std::string_view sum_line = text.substr(last_start + 1, text.size() - last_start - 2);
  if (sum_line.substr(0, kSumKey.size()) != kSumKey) return Corrupt(path, "no checksum");
  if (!ConstantTimeEquals(sum_line.substr(kSumKey.size()), Sha256Hex(body))) {
    return Corrupt(path, "checksum mismatch");
  }

  KeyringFile f;
  std::map<std::string_view, std::string_view> fields;
  size_t pos = 0;
  bool first = true;
  while (pos < body.size()) {
    const size_t nl = body.find('\n', pos);
    const std::string_view line = body.substr(pos, nl - pos);
    pos = nl + 1;
    if (first) {
      if (line != kMagic) return Corrupt(path, "unknown format or version");
      first = false;
      continue;
    }
    const size_t eq = line.find('=');
    if (eq == std::string_view::npos) return Corrupt(path, "malformed line");
    if (!fields.emplace(line.substr(0, eq), line.substr(eq + 1)).second) return Corrupt(path, "repeated field");
  }
  auto take = [&](std::string_view name) -> std::optional<std::string_view> {
    auto it = fields.find(name);
    if (it == fields.end()) return std::nullopt;
    std::string_view v = it->second;
    fields.erase(it);
    return v;
  };
  auto vault_id = take("vault_id");
  if (!vault_id || !IsUuid(*vault_id)) return Corrupt(path, "bad vault_id");
  f.vault_id = std::string(*vault_id);
  auto kdf = take("kdf");
  if (!kdf || (*kdf != "none" && *kdf != "argon2id")) return Corrupt(path, "bad kdf");
  f.kdf = std::string(*kdf);
  if (f.kdf == "argon2id") {
    auto salt = take("argon2_salt");
    auto ops = take("argon2_opslimit");
    auto mem = take("argon2_memlimit");
    if (!salt || !ops || !mem) return Corrupt(path, "missing argon2 parameters");
    auto salt_bin = FromBase64(*salt);
    auto ops_v = ParseU64(*ops);
    auto mem_v = ParseU64(*mem);
    if (!salt_bin || salt_bin->size() != crypto_pwhash_SALTBYTES || !ops_v || !mem_v ||
        !CheckArgonParams(*ops_v, *mem_v).ok()) {
      return Corrupt(path, "bad argon2 parameters");
    }
    f.argon2_salt = std::move(*salt_bin);
    f.argon2_opslimit = *ops_v;
    f.argon2_memlimit = *mem_v;
  }
  auto ver = take("kek_version");
  auto ver_v = ver ? ParseU64(*ver) : std::nullopt;
  if (!ver_v || *ver_v == 0 || *ver_v > UINT32_MAX) return Corrupt(path, "bad kek_version");
  f.kek_version = static_cast<uint32_t>(*ver_v);
  auto kek = take("kek");
  auto kek_bin = kek ? FromBase64(*kek) : std::nullopt;
  if (!kek_bin || kek_bin->size() != Aead::kKeySize + Aead::kOverhead) return Corrupt(path, "bad kek");
  f.kek = std::move(*kek_bin);
  for (int i = 0; i < kKeyPurposeCount; ++i) {
    const std::string name = "key." + std::string(KeyPurposeName(static_cast<KeyPurpose>(i)));
    auto v = take(name);
    if (!v && i >= kFirstAddedKeyPurpose) continue;  // an older file: Open adds the key
    auto bin = v ? FromBase64(*v) : std::nullopt;
    if (!bin || bin->size() != Aead::kKeySize + Aead::kOverhead) return Corrupt(path, "bad " + name);
    f.keys[i] = std::move(*bin);
  }
  if (!fields.empty()) return Corrupt(path, "unknown field");
  return f;
}

// Writes `content` to dir/name with mode 0600 so that the name appears only
// once the bytes are durable: temp file, fsync, link (fails if the name
// exists, which is what Create wants), fsync the directory.
// Writes `content` durably to a fresh `tmp_path` (mode 0600), replacing a
// leftover from a crash during an earlier write.
Status WriteTempFile(const std::string& tmp_path, std::string_view content) {
  ::unlink(tmp_path.c_str());
  Fd fd(::open(tmp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (fd.get() < 0) return Internal("cannot create " + tmp_path + ": " + ErrnoText(errno));
  if (::fchmod(fd.get(), 0600) != 0 || !WriteAll(fd.get(), content.data(), content.size()) ||
      ::fsync(fd.get()) != 0 || ::close(fd.release()) != 0) {
    const int e = errno;
    ::unlink(tmp_path.c_str());
    return Internal("cannot write " + tmp_path + ": " + ErrnoText(e));
  }
  return Status::Ok();
}

Status WriteNewFileAtomically(const std::string& dir, std::string_view name, std::string_view content) {
  const std::string final_path = dir + "/" + std::string(name);
  const std::string tmp_path = final_path + ".tmp";
  PV_RETURN_IF_ERROR(WriteTempFile(tmp_path, content));
  if (::link(tmp_path.c_str(), final_path.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp_path.c_str());
    if (e == EEXIST) return AlreadyExists("a keyring already exists at " + final_path);
    return Internal("cannot create " + final_path + ": " + ErrnoText(e));
  }
  ::unlink(tmp_path.c_str());
  return FsyncDir(dir);
}

// Replaces dir/name with `content` (mode 0600) so that readers see either the
// old or the new file, never a torn one: temp file, fsync, rename, fsync dir.
Status ReplaceFileAtomically(const std::string& dir, std::string_view name, std::string_view content) {
  const std::string final_path = dir + "/" + std::string(name);
  const std::string tmp_path = final_path + ".tmp";
  PV_RETURN_IF_ERROR(WriteTempFile(tmp_path, content));
  if (::rename(tmp_path.c_str(), final_path.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp_path.c_str());
    return Internal("cannot replace " + final_path + ": " + ErrnoText(e));
  }
  return FsyncDir(dir);
}

}  // namespace

std::string KeyringFilePath(const std::string& dir) { return dir + "/" + std::string(kFileName); }

std::string_view KeyPurposeName(KeyPurpose p) {
  switch (p) {
    case KeyPurpose::kStorage: return "storage";
    case KeyPurpose::kSharedData: return "shared_data";
    case KeyPurpose::kAuditSeal: return "audit_seal";
    case KeyPurpose::kAuditSign: return "audit_sign";
    case KeyPurpose::kTokenSign: return "token_sign";
    case KeyPurpose::kBackup: return "backup";
    case KeyPurpose::kSearchCursor: return "search_cursor";
    case KeyPurpose::kBulkExport: return "bulk_export";
    case KeyPurpose::kTotpSeal: return "totp_seal";
  }
  return "unknown";
}

StatusOr<SecureBytes> ReadKeyFile(const std::string& path) {
  PV_ASSIGN_OR_RETURN(int raw_fd, OpenSecretFile(path, "key file"));
  Fd fd(raw_fd);
  SecureBytes buf(Aead::kKeySize + 1);  // one extra byte detects a longer file
  const ssize_t n = ReadUpTo(fd.get(), buf.data(), buf.size());
  if (n < 0) return InvalidArgument("key file " + path + " cannot be read: " + ErrnoText(errno));
  if (static_cast<size_t>(n) != Aead::kKeySize) {
    return InvalidArgument("key file " + path + " must contain exactly 32 raw bytes (create one with GenerateKeyFile)");
  }
  return SecureBytes::From(std::string_view(reinterpret_cast<const char*>(buf.data()), Aead::kKeySize));
}

Status GenerateKeyFile(const std::string& path) {
  Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (fd.get() < 0) {
    if (errno == EEXIST) return AlreadyExists("key file " + path + " already exists; refusing to overwrite it");
    return Internal("cannot create key file " + path + ": " + ErrnoText(errno));
  }
  SecureBytes key = SecureBytes::Random(Aead::kKeySize);
  // fchmod: the umask may have made the mode stricter than 0600, which is fine
  // for security but surprises operators; 0600 is what the docs promise.
  if (::fchmod(fd.get(), 0600) != 0 || !WriteAll(fd.get(), key.data(), key.size()) || ::fsync(fd.get()) != 0 ||
      ::close(fd.release()) != 0) {
    const int e = errno;
    ::unlink(path.c_str());
    return Internal("cannot write key file " + path + ": " + ErrnoText(e));
  }
  return FsyncDir(DirOf(path));
}

// Builds Keyring objects; a friend so the class keeps no public setters.
class KeyringLoader {
 public:
  static StatusOr<std::unique_ptr<Keyring>> Create(const std::string& dir, const MasterKeySource& source) {
    PV_ASSIGN_OR_RETURN(SourceKind kind, KindOf(source));
    const std::string path = KeyringFilePath(dir);
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0) return AlreadyExists("a keyring already exists at " + path);
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
      return Internal("cannot create data directory " + dir + ": " + ErrnoText(errno));
    }

    KeyringFile f;
    f.vault_id = NewUuidV4();
    f.kek_version = 1;
    PV_ASSIGN_OR_RETURN(SecureBytes master, NewMaster(kind, source, &f));

    std::unique_ptr<Keyring> k(new Keyring());
    k->vault_id_ = f.vault_id;
    k->kek_version_ = f.kek_version;
    k->kek_ = SecureBytes::Random(Aead::kKeySize);
    PV_ASSIGN_OR_RETURN(auto master_aead, Aead::New(DeriveKey(master, kMasterWrapInfo)));
    f.kek = master_aead->Seal(k->kek_.view(), KekAad(f.vault_id, f.kek_version));
    PV_ASSIGN_OR_RETURN(k->kek_aead_, Aead::New(k->kek_));
    for (int i = 0; i < kKeyPurposeCount; ++i) {
      k->keys_[i] = SecureBytes::Random(Aead::kKeySize);
      f.keys[i] = k->kek_aead_->Seal(k->keys_[i].view(),
                                     PurposeAad(f.vault_id, KeyPurposeName(static_cast<KeyPurpose>(i)), f.kek_version));
    }
    PV_RETURN_IF_ERROR(WriteNewFileAtomically(dir, kFileName, Serialize(f)));
    return k;
  }

  static StatusOr<std::unique_ptr<Keyring>> Open(const std::string& dir, const MasterKeySource& source) {
    const std::string path = KeyringFilePath(dir);
    PV_ASSIGN_OR_RETURN(std::string text, ReadKeyringFile(path));
    PV_ASSIGN_OR_RETURN(KeyringFile f, Parse(text, path));
    PV_ASSIGN_OR_RETURN(SecureBytes kek, UnwrapKek(f, source));

    std::unique_ptr<Keyring> k(new Keyring());
    k->vault_id_ = f.vault_id;
    k->kek_version_ = f.kek_version;
    k->kek_ = std::move(kek);
    PV_ASSIGN_OR_RETURN(k->kek_aead_, Aead::New(k->kek_));
    bool added = false;
    for (int i = 0; i < kKeyPurposeCount; ++i) {
      const std::string_view name = KeyPurposeName(static_cast<KeyPurpose>(i));
      if (f.keys[i].empty()) {  // a purpose newer than the file (Parse allows only those)
        k->keys_[i] = SecureBytes::Random(Aead::kKeySize);
        f.keys[i] = k->kek_aead_->Seal(k->keys_[i].view(), PurposeAad(f.vault_id, name, f.kek_version));
        added = true;
        continue;
      }
      auto key = k->kek_aead_->Open(f.keys[i], PurposeAad(f.vault_id, name, f.kek_version));
      // The KEK opened, so the master key is right: a failure here is tampering.
      if (!key.ok()) return Corrupt(path, "wrapped " + std::string(name) + " key does not authenticate");
      k->keys_[i] = SecureBytes::From(*key);
      SecureWipe(key->data(), key->size());
    }
    if (added) PV_RETURN_IF_ERROR(ReplaceFileAtomically(dir, kFileName, Serialize(f)));
    return k;
  }

  static Status RotateMaster(const std::string& dir, const MasterKeySource& current, const MasterKeySource& next) {
    PV_ASSIGN_OR_RETURN(SourceKind next_kind, KindOf(next));
    // Every purpose key must be in the file before the KEK is rewrapped, so
    // opening once (which adds missing ones) comes first.
    PV_RETURN_IF_ERROR(Open(dir, current).status());
    const std::string path = KeyringFilePath(dir);
    PV_ASSIGN_OR_RETURN(std::string text, ReadKeyringFile(path));
    PV_ASSIGN_OR_RETURN(KeyringFile f, Parse(text, path));
    PV_ASSIGN_OR_RETURN(SecureBytes kek, UnwrapKek(f, current));
    // Only the KEK's wrapping changes: the purpose keys and the patients'
    // data keys stay wrapped by the same KEK, so nothing else is rewritten.
    PV_ASSIGN_OR_RETURN(SecureBytes master, NewMaster(next_kind, next, &f));
    PV_ASSIGN_OR_RETURN(auto master_aead, Aead::New(DeriveKey(master, kMasterWrapInfo)));
    f.kek = master_aead->Seal(kek.view(), KekAad(f.vault_id, f.kek_version));
    return ReplaceFileAtomically(dir, kFileName, Serialize(f));
  }

 private:
  // The master key for a new wrapping of the KEK; for a passphrase, with a
  // fresh salt and the source's Argon2id cost, recorded in `f`.
  static StatusOr<SecureBytes> NewMaster(SourceKind kind, const MasterKeySource& source, KeyringFile* f) {
    if (kind != SourceKind::kPassphrase) {
      f->kdf = "none";
      f->argon2_salt.clear();
      f->argon2_opslimit = 0;
      f->argon2_memlimit = 0;
      return LoadRawMaster(kind, source);
    }
    PV_RETURN_IF_ERROR(CheckArgonParams(source.argon2_opslimit, source.argon2_memlimit));
    PV_ASSIGN_OR_RETURN(SecureBytes pass, ReadPassphrase(source.passphrase_file));
    f->kdf = "argon2id";
    f->argon2_salt.resize(crypto_pwhash_SALTBYTES);
    randombytes_buf(f->argon2_salt.data(), f->argon2_salt.size());
    f->argon2_opslimit = source.argon2_opslimit;
    f->argon2_memlimit = source.argon2_memlimit;
    return Argon2id(pass, f->argon2_salt, f->argon2_opslimit, f->argon2_memlimit);
  }

  // PermissionDenied for a wrong key, passphrase or kind of source.
  static StatusOr<SecureBytes> UnwrapKek(const KeyringFile& f, const MasterKeySource& source) {
    PV_ASSIGN_OR_RETURN(SourceKind kind, KindOf(source));
    SecureBytes master;
    if (f.kdf == "argon2id") {
      if (kind != SourceKind::kPassphrase) {
        return PermissionDenied("wrong master key or passphrase: this vault is unlocked with a passphrase file");
      }
      PV_ASSIGN_OR_RETURN(SecureBytes pass, ReadPassphrase(source.passphrase_file));
      PV_ASSIGN_OR_RETURN(master, Argon2id(pass, f.argon2_salt, f.argon2_opslimit, f.argon2_memlimit));
    } else {
      if (kind == SourceKind::kPassphrase) {
        return PermissionDenied("wrong master key or passphrase: this vault is unlocked with a key, not a passphrase");
      }
      PV_ASSIGN_OR_RETURN(master, LoadRawMaster(kind, source));
    }

    PV_ASSIGN_OR_RETURN(auto master_aead, Aead::New(DeriveKey(master, kMasterWrapInfo)));
    auto kek = master_aead->Open(f.kek, KekAad(f.vault_id, f.kek_version));
    if (!kek.ok()) return PermissionDenied("wrong master key or passphrase");
    SecureBytes out = SecureBytes::From(*kek);
    SecureWipe(kek->data(), kek->size());
    return out;
  }

  static StatusOr<SecureBytes> LoadRawMaster(SourceKind kind, const MasterKeySource& source) {
    if (kind == SourceKind::kKeyFile) return ReadKeyFile(source.key_file);
    return ReadKeyEnv(source.key_env);
  }

  static StatusOr<std::string> ReadKeyringFile(const std::string& path) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
    if (fd.get() < 0) {
      if (errno == ENOENT) return NotFound("no keyring at " + path + "; initialise the vault first");
      return Internal("cannot open keyring file " + path + ": " + ErrnoText(errno));
    }
    std::string text(kMaxKeyringFile + 1, '\0');
    const ssize_t n = ReadUpTo(fd.get(), reinterpret_cast<uint8_t*>(text.data()), text.size());
    if (n < 0) return Internal("cannot read keyring file " + path + ": " + ErrnoText(errno));
    if (static_cast<size_t>(n) > kMaxKeyringFile) return Corrupt(path, "too large");
    text.resize(static_cast<size_t>(n));
    return text;
  }
};

StatusOr<std::unique_ptr<Keyring>> Keyring::Create(const std::string& dir, const MasterKeySource& source) {
  return KeyringLoader::Create(dir, source);
}

StatusOr<std::unique_ptr<Keyring>> Keyring::Open(const std::string& dir, const MasterKeySource& source) {
  return KeyringLoader::Open(dir, source);
}

Status Keyring::RotateMasterKey(const std::string& dir, const MasterKeySource& current,
                                const MasterKeySource& next) {
  return KeyringLoader::RotateMaster(dir, current, next);
}

const SecureBytes& Keyring::Key(KeyPurpose purpose) const {
  const int i = static_cast<int>(purpose);
  if (i < 0 || i >= kKeyPurposeCount) {
    std::fputs("phivault: fatal: keyring: unknown key purpose\n", stderr);
    std::abort();
  }
  return keys_[i];
}

std::string Keyring::WrapDataKey(const SecureBytes& data_key, std::string_view context) const {
  std::string out(4, '\0');
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>(kek_version_ >> (8 * (3 - i)));
  out += kek_aead_->Seal(data_key.view(), DataKeyAad(vault_id_, kek_version_, context));
  return out;
}

StatusOr<SecureBytes> Keyring::UnwrapDataKey(std::string_view wrapped, std::string_view context) const {
  if (wrapped.size() < 4 + Aead::kOverhead) return DataLoss("wrapped data key is truncated");
  uint32_t version = 0;
  for (int i = 0; i < 4; ++i) version = (version << 8) | static_cast<uint8_t>(wrapped[i]);
  if (version != kek_version_) {
    return DataLoss("wrapped data key names KEK version " + std::to_string(version) + ", which this keyring lacks");
  }
  auto key = kek_aead_->Open(wrapped.substr(4), DataKeyAad(vault_id_, version, context));
  if (!key.ok()) return DataLoss("wrapped data key does not authenticate (modified, or bound to another context)");
  SecureBytes out = SecureBytes::From(*key);
  SecureWipe(key->data(), key->size());
  return out;
}

Keyring::~Keyring() = default;

}  // namespace phivault::crypto
