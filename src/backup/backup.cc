#include "backup/backup.h"

#include <dirent.h>
#include <fcntl.h>
#include <sodium.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "audit/audit_log.h"
#include "audit/inbox.h"
#include "audit/publish.h"
#include "audit/segment.h"
#include "audit/verify.h"
#include "common/fs.h"
#include "common/log.h"
#include "fhir/time.h"
#include "store/encrypted_vfs.h"
#include "store/sqlite_store.h"

namespace phivault::backup {
namespace {

namespace fs = std::filesystem;

constexpr const char* kAccountsFile = "accounts.db";
constexpr size_t kCopyBytes = 1u << 20;

std::string Errno(std::string_view what, const std::string& path) {
  return std::string(what) + " " + path + ": " + std::strerror(errno);
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

std::string ParentDir(const std::string& path) {
  std::string p = fs::path(path).parent_path().string();
  return p.empty() ? "." : p;
}

using Fd = UniqueFd;

// A private directory (mode 0700 from mkdtemp) removed with everything in
// it unless Release()d: every error path leaves nothing behind.
class ScratchDir {
 public:
  static StatusOr<ScratchDir> Make(const std::string& prefix) {
    std::string tmpl = prefix + "XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) return Unavailable(Errno("cannot create a staging directory", tmpl));
    return ScratchDir(std::move(tmpl));
  }
  ScratchDir(ScratchDir&& o) noexcept : path_(std::move(o.path_)) { o.path_.clear(); }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  ScratchDir& operator=(ScratchDir&&) = delete;
  ~ScratchDir() {
    if (path_.empty()) return;
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  void Release() { path_.clear(); }

 private:
  explicit ScratchDir(std::string p) : path_(std::move(p)) {}
  std::string path_;
};

Status WriteNewFile(const std::string& path, std::string_view data) {
  Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (fd.get() < 0) return Unavailable(Errno("cannot create", path));
  PV_RETURN_IF_ERROR(WriteAll(fd.get(), data, path));
  if (::fsync(fd.get()) != 0) return Unavailable(Errno("fsync failed on", path));
  return Status::Ok();
}

// ---- consistent database snapshot ----

Status SqliteFailure(sqlite3* db, std::string_view what, const std::string& path) {
  const int rc = db != nullptr ? sqlite3_extended_errcode(db) : SQLITE_ERROR;
  const std::string msg = std::string(what) + " " + path + ": " + (db ? sqlite3_errmsg(db) : "out of memory");
  if (rc == SQLITE_IOERR_DATA || rc == SQLITE_CORRUPT || rc == SQLITE_NOTADB) return DataLoss(msg);
  return Unavailable(msg);
}

struct Db {
  sqlite3* db = nullptr;
  ~Db() { sqlite3_close_v2(db); }
};

StatusOr<sqlite3*> OpenEncrypted(Db& holder, const std::string& path, const std::string& vfs, int flags) {
  const int rc = sqlite3_open_v2(path.c_str(), &holder.db, flags | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_PRIVATECACHE,
                                 vfs.c_str());
  if (rc != SQLITE_OK) return SqliteFailure(holder.db, "cannot open", path);
  sqlite3_extended_result_codes(holder.db, 1);
  sqlite3_busy_timeout(holder.db, 5000);
  PV_RETURN_IF_ERROR(store::PrepareEncryptedDatabase(holder.db));
  return holder.db;
}

// Copies `from` into the new file `to` with SQLite's online backup API, in
// one step: one read transaction on the source, so the copy is the
// database as of one commit, while the server keeps writing (WAL readers
// do not block the writer). Both files go through the encrypting VFS with
// the same storage key; `to` has the same base name as `from`, which the
// page seals bind, so the copied file opens in place of the original.
Status SnapshotDatabase(const std::string& from, const std::string& to, const std::string& vfs) {
  Db src, dst;
  PV_ASSIGN_OR_RETURN(sqlite3 * s, OpenEncrypted(src, from, vfs, SQLITE_OPEN_READWRITE));
  if (sqlite3_exec(s, "PRAGMA query_only=ON; PRAGMA mmap_size=0;", nullptr, nullptr, nullptr) != SQLITE_OK) {
    return SqliteFailure(s, "cannot configure", from);
  }
  PV_ASSIGN_OR_RETURN(sqlite3 * d, OpenEncrypted(dst, to, vfs, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE));
  ::chmod(to.c_str(), 0600);
  sqlite3_backup* b = sqlite3_backup_init(d, "main", s, "main");
  if (b == nullptr) return SqliteFailure(d, "cannot start the snapshot of", from);
  int rc;
  for (int attempt = 0;; ++attempt) {
    rc = sqlite3_backup_step(b, -1);
    if ((rc != SQLITE_BUSY && rc != SQLITE_LOCKED) || attempt >= 200) break;
    sqlite3_sleep(50);
  }
  sqlite3_backup_finish(b);
  if (rc != SQLITE_DONE) return SqliteFailure(d, "snapshot failed for", from);
  return Status::Ok();
}

// The highest write-record id named by an entry in the segments of
// `audit_dir` numbered `first_segment` or later.
StatusOr<int64_t> MaxWriteRecord(const std::string& audit_dir, uint64_t first_segment,
                                 const crypto::Keyring& keyring) {
  PV_ASSIGN_OR_RETURN(auto aead, crypto::Aead::New(keyring.Key(crypto::KeyPurpose::kAuditSeal)));
  PV_ASSIGN_OR_RETURN(std::vector<audit::SegmentFile> segs, audit::ListSegments(audit_dir));
  int64_t max_id = 0;
  for (const auto& seg : segs) {
    if (seg.number < first_segment) continue;
    PV_ASSIGN_OR_RETURN(auto reader, audit::SegmentReader::Open(seg.path));
    audit::Record rec;
    while (reader->Next(&rec) == audit::SegmentReader::Result::kRecord) {
      auto plain = aead->Open(rec.payload, audit::EntryAad(keyring.vault_id(), rec.index));
      if (!plain.ok()) continue;  // damage is for verify to report, not for this bound
      auto entry = audit::ParseEntry(*plain);
      SecureWipe(plain->data(), plain->size());
      if (entry.ok()) max_id = std::max(max_id, entry->write_record);
    }
  }
  return max_id;
}

// The log copy is taken after the database copy, so it may hold entries of
// writes committed in between, whose write-record ids the copied database
// would hand out again. Recovery in the restored vault matches outbox
// records to log entries by that id (api::AuditTrail::Recover), so the
// copy's outbox ids must start above every id in the log.
Status RaiseOutboxSequence(const std::string& db_path, const std::string& vfs, int64_t min_last_id) {
  if (min_last_id <= 0) return Status::Ok();
  Db holder;
  PV_ASSIGN_OR_RETURN(sqlite3 * d, OpenEncrypted(holder, db_path, vfs, SQLITE_OPEN_READWRITE));
  const std::string sql =
      "UPDATE sqlite_sequence SET seq = " + std::to_string(min_last_id) +
      " WHERE name = 'audit_outbox' AND seq < " + std::to_string(min_last_id) +
      "; INSERT INTO sqlite_sequence(name, seq) SELECT 'audit_outbox', " + std::to_string(min_last_id) +
      " WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'audit_outbox');"
      // Everything back into the database file: no WAL travels in a backup.
      " PRAGMA journal_mode=DELETE;";
  if (sqlite3_exec(d, sql.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) {
    return SqliteFailure(d, "cannot adjust the audit outbox sequence of", db_path);
  }
  return Status::Ok();
}

// ---- writing the container ----

Status AddFile(ContainerWriter& w, const std::string& path, const std::string& name) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return Unavailable(Errno("cannot open", path));
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return Unavailable(Errno("cannot stat", path));
  PV_RETURN_IF_ERROR(w.BeginFile(name, static_cast<uint64_t>(st.st_size)));
  std::string buf(kCopyBytes, '\0');
  uint64_t left = static_cast<uint64_t>(st.st_size);
  while (left > 0) {
    const ssize_t n = ::read(fd.get(), buf.data(), std::min<uint64_t>(left, buf.size()));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Unavailable(Errno("cannot read", path));
    if (n == 0) return Internal("file shrank while being backed up: " + path);
    PV_RETURN_IF_ERROR(w.Append(std::string_view(buf.data(), static_cast<size_t>(n))));
    left -= static_cast<uint64_t>(n);
  }
  return Status::Ok();
}

// The staged files in container order: databases, checkpoints, segments.
StatusOr<std::vector<std::string>> StagedNames(const std::string& staging) {
  std::vector<std::string> names = {store::kDatabaseFileName};
  if (Exists(staging + "/" + kAccountsFile)) names.push_back(kAccountsFile);
  names.push_back("audit/checkpoints");
  PV_ASSIGN_OR_RETURN(std::vector<audit::SegmentFile> segs, audit::ListSegments(staging + "/audit"));
  for (const auto& s : segs) names.push_back("audit/" + audit::SegmentFileName(s.number));
  return names;
}

StatusOr<std::unique_ptr<crypto::Aead>> ContentAead(const crypto::Keyring& keyring, const Header& h) {
  return crypto::Aead::New(ContentKey(keyring.Key(crypto::KeyPurpose::kBackup), h));
}

// ---- reading the container ----

// Reads a backup file through `fd` (which must outlive the reader).
ReadFn FdReader(int fd, const std::string& path) {
  return [fd, path](char* buf, size_t n) -> StatusOr<size_t> {
    while (true) {
      const ssize_t r = ::read(fd, buf, n);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return Unavailable(Errno("cannot read", path));
      return static_cast<size_t>(r);
    }
  };
}

// Writes the backup's files below `dir`; with `audit_only`, drops the
// databases after their digest was taken (verify needs only the log on disk).
class DirSink : public ContainerSink {
 public:
  DirSink(std::string dir, bool audit_only) : dir_(std::move(dir)), audit_only_(audit_only) {}
  ~DirSink() override {
    if (fd_ >= 0) ::close(fd_);
  }
  Status BeginFile(const std::string& name, uint64_t) override {
    names_.push_back(name);
    if (audit_only_ && !name.starts_with("audit/")) return Status::Ok();
    if (name.starts_with("audit/") && ::mkdir((dir_ + "/audit").c_str(), 0700) != 0 && errno != EEXIST) {
      return Unavailable(Errno("cannot create", dir_ + "/audit"));
    }
    path_ = dir_ + "/" + name;  // IsAllowedFileName vetted the name
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd_ < 0) return Unavailable(Errno("cannot create", path_));
    return Status::Ok();
  }
  Status FileData(std::string_view data) override {
    return fd_ >= 0 ? WriteAll(fd_, data, path_) : Status::Ok();
  }
  Status EndFile() override {
    if (fd_ < 0) return Status::Ok();
    const int rc = ::fsync(fd_);
    ::close(fd_);
    fd_ = -1;
    if (rc != 0) return Unavailable(Errno("fsync failed on", path_));
    return Status::Ok();
  }
  bool Has(std::string_view name) const { return std::find(names_.begin(), names_.end(), name) != names_.end(); }

 private:
  std::string dir_;
  bool audit_only_;
  std::string path_;
  int fd_ = -1;
  std::vector<std::string> names_;
};

// Opens `backup_path`, unlocks its keyring (copied into `dir`) with `key`,
// and unpacks into `dir`, checking every chunk, the manifest and the
// contained audit log. `dir` exists and is private.
StatusOr<BackupSummary> Unpack(const std::string& backup_path, const crypto::MasterKeySource& key,
                               const std::string& dir, bool audit_only, const CrossCheck& cross) {
  Fd fd(::open(backup_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return NotFound(Errno("cannot open the backup file", backup_path));
  struct stat st;
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) return InvalidArgument("not a regular file: " + backup_path);
  PV_ASSIGN_OR_RETURN(auto reader, ContainerReader::Open(FdReader(fd.get(), backup_path)));
  BackupSummary out;
  out.header = reader->header();
  out.bytes = static_cast<uint64_t>(st.st_size);
  PV_RETURN_IF_ERROR(WriteNewFile(crypto::KeyringFilePath(dir), out.header.keyring));
  auto keyring = crypto::Keyring::Open(dir, key);
  if (!keyring.ok()) {
    if (keyring.status().code() == StatusCode::kPermissionDenied) {
      return PermissionDenied("the master key does not open this backup's keyring (" + keyring.status().message() +
                              ")");
    }
    return DataLoss("the keyring in the backup cannot be used: " + keyring.status().message());
  }
  if ((*keyring)->vault_id() != out.header.vault_id) {
    return DataLoss("backup file is damaged or was modified: its header names another vault than its keyring");
  }
  PV_ASSIGN_OR_RETURN(auto aead, ContentAead(**keyring, out.header));
  DirSink sink(dir, audit_only);
  PV_ASSIGN_OR_RETURN(out.files, reader->Read(*aead, sink));
  if (!sink.Has(store::kDatabaseFileName) || !sink.Has("audit/checkpoints")) {
    return DataLoss("backup file is incomplete: it holds no vault database or no audit log");
  }
  PV_ASSIGN_OR_RETURN(std::string vkey, audit::AuditVerifierKey(**keyring));
  // The backup's log is a prefix of the log the published checkpoints were
  // issued for.
  audit::VerifyOptions verify_options;
  verify_options.log_may_be_prefix = true;
  PV_ASSIGN_OR_RETURN(audit::VerifyResult v, audit::Verify(dir + "/audit", vkey, cross.published, verify_options));
  if (!v.ok) {
    std::string where = v.first_bad_index == audit::VerifyResult::kNoIndex
                            ? std::string()
                            : " at index " + std::to_string(v.first_bad_index);
    return DataLoss("the audit log in the backup does not verify: " + std::string(audit::ProblemName(v.problem)) +
                    where + " (" + v.reason + ")");
  }
  out.audit_entries = v.entries;
  out.published_checked = v.published_checked;
  out.published_beyond = v.published_beyond;
  if (!cross.published.empty() && v.published_checked == 0 && !cross.allow_uncovered) {
    return Status(StatusCode::kPreconditionFailed,
                  "no published checkpoint is old enough to cover the backup's audit log (all " +
                      std::to_string(v.published_beyond) +
                      " are newer), so its history cannot be cross-checked; a log cut short to hide entries looks "
                      "the same. If the backup predates publication, pass --allow-uncovered");
  }
  if (!audit_only) {
    if (Exists(dir + "/audit")) PV_RETURN_IF_ERROR(SyncDirectory(dir + "/audit"));
    PV_RETURN_IF_ERROR(SyncDirectory(dir));
  }
  return out;
}

Status CheckRestoreTarget(const std::string& new_dir) {
  if (new_dir.empty()) return InvalidArgument("--data NEWDIR is required");
  struct stat st;
  if (::lstat(new_dir.c_str(), &st) != 0) {
    if (errno == ENOENT) return Status::Ok();
    return InvalidArgument(Errno("cannot inspect", new_dir));
  }
  if (!S_ISDIR(st.st_mode)) return InvalidArgument(new_dir + " exists and is not a directory");
  std::error_code ec;
  if (!fs::is_empty(new_dir, ec) || ec) {
    return InvalidArgument(new_dir + " is not empty; restore only into a new or empty directory");
  }
  return Status::Ok();
}

using BeforePublish = std::function<Status(const std::string& staging, const BackupSummary&)>;

StatusOr<BackupSummary> RestoreImpl(const std::string& backup_path, const crypto::MasterKeySource& key,
                                    const std::string& new_dir, const CrossCheck& cross,
                                    const BeforePublish& before_publish) {
  PV_RETURN_IF_ERROR(CheckRestoreTarget(new_dir));
  std::string target = new_dir;
  while (target.size() > 1 && target.back() == '/') target.pop_back();
  // A sibling, so the final rename stays within one file system.
  PV_ASSIGN_OR_RETURN(ScratchDir staging, ScratchDir::Make(target + ".restore-"));
  PV_ASSIGN_OR_RETURN(BackupSummary summary, Unpack(backup_path, key, staging.path(), false, cross));
  if (before_publish) PV_RETURN_IF_ERROR(before_publish(staging.path(), summary));
  PV_RETURN_IF_ERROR(SyncDirectory(staging.path()));
  // rename() replaces an empty directory atomically; the target is then
  // either as it was or the complete restored vault.
  if (::rename(staging.path().c_str(), target.c_str()) != 0) {
    return Unavailable(Errno("cannot move the restored vault into place at", target));
  }
  staging.Release();
  // The vault is in place (and holds its "restored" entry): reporting the
  // restore as failed now would contradict it. The rename is durable once
  // the parent directory reaches the disk, which the operator is told to
  // make sure of.
  if (Status synced = SyncDirectory(ParentDir(target)); !synced.ok()) {
    log::Warn("backup.restore_not_synced", {{"data", target},
                                            {"error", synced.message()},
                                            {"action", "run sync before relying on the restored directory"}});
  }
  return summary;
}

}  // namespace

StatusOr<BackupSummary> CreateBackup(const std::string& data_dir, const crypto::MasterKeySource& key,
                                     const std::string& out_path, uint32_t chunk_bytes) {
  if (data_dir.empty() || out_path.empty()) return InvalidArgument("--data DIR and --out FILE are required");
  if (!Exists(crypto::KeyringFilePath(data_dir))) return NotFound("no vault in " + data_dir);
  if (Exists(out_path)) return Status(StatusCode::kAlreadyExists, out_path + " exists; a backup never replaces a file");
  PV_ASSIGN_OR_RETURN(ScratchDir staging, ScratchDir::Make(out_path + ".staging-"));
  const std::string& stage = staging.path();

  // The keyring is unlocked from the staged copy, so the keyring inside the
  // backup is exactly the one its keys came from, even if a key rotation
  // replaces the live file meanwhile.
  PV_ASSIGN_OR_RETURN(std::string keyring_text, ReadWholeFile(crypto::KeyringFilePath(data_dir)));
  PV_RETURN_IF_ERROR(WriteNewFile(crypto::KeyringFilePath(stage), keyring_text));
  PV_ASSIGN_OR_RETURN(auto keyring, crypto::Keyring::Open(stage, key));

  // The databases first, then the log: the log copy then holds every entry
  // of every write in the database copy (or the write's record is still in
  // the copied outbox, which the restored vault's first open appends).
  const std::string audit_dir = audit::AuditLog::AuditDir(data_dir);
  if (!Exists(audit_dir)) return NotFound("no audit log in " + data_dir);
  // Entries in earlier segments were appended before the database copy
  // starts, so their writes are in it (see RaiseOutboxSequence).
  PV_ASSIGN_OR_RETURN(std::vector<audit::SegmentFile> live_segments, audit::ListSegments(audit_dir));
  const uint64_t first_new_segment = live_segments.empty() ? 0 : live_segments.back().number;
  const std::string vfs = "phivault-backup-" + keyring->vault_id();
  PV_ASSIGN_OR_RETURN(auto page_aead, crypto::Aead::New(keyring->Key(crypto::KeyPurpose::kStorage)));
  PV_RETURN_IF_ERROR(store::RegisterEncryptedVfs(vfs, std::shared_ptr<const crypto::Aead>(std::move(page_aead))));
  PV_RETURN_IF_ERROR(SnapshotDatabase(data_dir + "/" + store::kDatabaseFileName,
                                      stage + "/" + store::kDatabaseFileName, vfs));
  if (Exists(data_dir + "/" + kAccountsFile)) {
    PV_RETURN_IF_ERROR(SnapshotDatabase(data_dir + "/" + kAccountsFile, stage + "/" + kAccountsFile, vfs));
  }
  PV_RETURN_IF_ERROR(audit::ExportSnapshot(audit_dir, stage + "/audit", ""));
  PV_ASSIGN_OR_RETURN(int64_t max_record, MaxWriteRecord(stage + "/audit", first_new_segment, *keyring));
  PV_RETURN_IF_ERROR(RaiseOutboxSequence(stage + "/" + store::kDatabaseFileName, vfs, max_record));

  BackupSummary out;
  Header& h = out.header;
  h.vault_id = keyring->vault_id();
  h.backup_id.resize(kBackupIdBytes);
  randombytes_buf(h.backup_id.data(), h.backup_id.size());
  h.created_ms = fhir::NowMillis();
  h.kek_version = keyring->kek_version();
  h.chunk_bytes = chunk_bytes;
  PV_ASSIGN_OR_RETURN(h.keyring, ReadWholeFile(crypto::KeyringFilePath(stage)));
  PV_ASSIGN_OR_RETURN(auto aead, ContentAead(*keyring, h));

  const std::string tmp = stage + "/backup.part";
  Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (fd.get() < 0) return Unavailable(Errno("cannot create", tmp));
  const int raw = fd.get();
  PV_ASSIGN_OR_RETURN(auto writer, ContainerWriter::Start(h, aead.get(), [raw, &tmp, &out](std::string_view d) {
                        out.bytes += d.size();
                        return WriteAll(raw, d, tmp);
                      }));
  PV_ASSIGN_OR_RETURN(std::vector<std::string> names, StagedNames(stage));
  for (const auto& name : names) PV_RETURN_IF_ERROR(AddFile(*writer, stage + "/" + name, name));
  PV_RETURN_IF_ERROR(writer->Finish());
  out.files = writer->manifest();
  if (::fsync(raw) != 0) return Unavailable(Errno("fsync failed on", tmp));
  // link() refuses an existing name, so a file that appeared meanwhile is
  // not replaced either.
  if (::link(tmp.c_str(), out_path.c_str()) != 0) return Unavailable(Errno("cannot create", out_path));
  PV_RETURN_IF_ERROR(SyncDirectory(ParentDir(out_path)));
  return out;
}

StatusOr<Header> ReadBackupHeader(const std::string& backup_path) {
  Fd fd(::open(backup_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return NotFound(Errno("cannot open the backup file", backup_path));
  PV_ASSIGN_OR_RETURN(auto reader, ContainerReader::Open(FdReader(fd.get(), backup_path)));
  return reader->header();
}

StatusOr<BackupSummary> VerifyBackup(const std::string& backup_path, const crypto::MasterKeySource& key,
                                     const CrossCheck& cross) {
  std::error_code ec;
  fs::path tmp = fs::temp_directory_path(ec);
  if (ec) tmp = "/tmp";
  PV_ASSIGN_OR_RETURN(ScratchDir scratch, ScratchDir::Make((tmp / "phivault-verify-").string()));
  return Unpack(backup_path, key, scratch.path(), true, cross);
}

StatusOr<BackupSummary> RestoreBackup(const std::string& backup_path, const crypto::MasterKeySource& key,
                                      const std::string& new_dir, const CrossCheck& cross) {
  return RestoreImpl(backup_path, key, new_dir, cross, {});
}

audit::AuditEntry BackupAuditEntry(audit::AuditAction action, const Header* header, const Status& result,
                                   std::string_view command) {
  audit::AuditEntry e =
      audit::CommandEntry(action, action == audit::AuditAction::kRestore ? "restore" : "backup", command);
  e.outcome = result.ok() ? audit::AuditOutcome::kAllowed : audit::AuditOutcome::kDenied;
  e.rule = result.ok() ? "ok" : std::string(StatusCodeName(result.code()));
  if (header != nullptr) {
    e.request_id = "backup-" + BackupIdHex(*header);
    e.resources.push_back({"Backup", header->vault_id, fhir::FormatInstant(header->created_ms), ""});
  }
  return e;
}

StatusOr<BackupSummary> AuditedBackup(const std::string& data_dir, const crypto::MasterKeySource& key,
                                      const std::string& out_path) {
  StatusOr<BackupSummary> made = CreateBackup(data_dir, key, out_path);
  const audit::AuditEntry entry = BackupAuditEntry(audit::AuditAction::kBackup, made.ok() ? &made->header : nullptr,
                                                   made.status(), "phivault backup");
  // A directory without a vault has no log to record into.
  if (data_dir.empty() || !Exists(crypto::KeyringFilePath(data_dir))) return made;
  if (Status queued = audit::SubmitToInbox(data_dir, entry); !queued.ok()) {
    log::Error("backup.audit_not_queued", {{"data", data_dir}, {"error", queued.message()}});
    if (made.ok()) return Unavailable("the backup was written but its audit entry could not be queued: " +
                                      queued.message());
  }
  return made;
}

StatusOr<BackupSummary> AuditedRestore(const std::string& backup_path, const crypto::MasterKeySource& key,
                                       const std::string& new_dir, const std::string& audit_dir,
                                       const CrossCheck& cross) {
  StatusOr<BackupSummary> restored =
      RestoreImpl(backup_path, key, new_dir, cross, [](const std::string& staging, const BackupSummary& s) {
        // Inside the restored vault before it appears: its first open
        // appends the entry after the restored log.
        return audit::SubmitToInbox(
            staging, BackupAuditEntry(audit::AuditAction::kRestore, &s.header, Status::Ok(), "phivault restore"));
      });
  if (!restored.ok()) RecordRefusedRestore(backup_path, restored.status(), audit_dir);
  return restored;
}

void RecordRefusedRestore(const std::string& backup_path, const Status& refused, const std::string& audit_dir) {
  StatusOr<Header> header = ReadBackupHeader(backup_path);
  const audit::AuditEntry entry = BackupAuditEntry(audit::AuditAction::kRestore, header.ok() ? &*header : nullptr,
                                                   refused, "phivault restore");
  log::Warn("backup.restore_refused", {{"file", backup_path},
                                       {"backup", header.ok() ? BackupIdHex(*header) : "unreadable"},
                                       {"reason", std::string(StatusCodeName(refused.code()))}});
  if (audit_dir.empty()) return;
  if (!Exists(crypto::KeyringFilePath(audit_dir))) {
    log::Error("backup.audit_not_queued", {{"data", audit_dir}, {"error", "no vault there"}});
  } else if (Status queued = audit::SubmitToInbox(audit_dir, entry); !queued.ok()) {
    log::Error("backup.audit_not_queued", {{"data", audit_dir}, {"error", queued.message()}});
  }
}

}  // namespace phivault::backup
