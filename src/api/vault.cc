#include "api/vault.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "api/request_audit.h"
#include "audit/inbox.h"
#include "store/sqlite_store.h"

namespace phivault::api {
namespace {

// The lock lives as long as its descriptor; flock locks are released by the
// kernel when the process dies, so a crash never leaves the vault locked.
StatusOr<int> LockDataDir(const std::string& data_dir) {
  const std::string path = data_dir + "/vault.lock";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return Unavailable("cannot open " + path + ": " + std::strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    ::close(fd);
    if (err == EWOULDBLOCK) {
      return Unavailable("the vault in " + data_dir +
                         " is in use by another phivault process (stop `phivault serve` first)");
    }
    return Unavailable("cannot lock " + path + ": " + std::strerror(err));
  }
  return fd;
}

}  // namespace

Status Vault::Init(const VaultConfig& config) {
  if (config.data_dir.empty()) return InvalidArgument("--data is required");
  if (::mkdir(config.data_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return InvalidArgument("cannot create data directory " + config.data_dir + ": " + std::strerror(errno));
  }
  // The data directory holds only ciphertext, but its metadata (sizes, times)
  // is still nobody else's business.
  ::chmod(config.data_dir.c_str(), 0700);
  PV_ASSIGN_OR_RETURN(int fd, LockDataDir(config.data_dir));
  struct Unlock {
    int fd;
    ~Unlock() { ::close(fd); }
  } unlock{fd};
  PV_ASSIGN_OR_RETURN(std::unique_ptr<crypto::Keyring> keyring, crypto::Keyring::Create(config.data_dir, config.key));
  store::SqliteStoreOptions opts;
  opts.data_dir = config.data_dir;
  opts.create = true;
  PV_ASSIGN_OR_RETURN(std::unique_ptr<store::ResourceStore> store, store::OpenSqliteStore(opts, keyring.get()));
  PV_ASSIGN_OR_RETURN(std::unique_ptr<audit::AuditLog> log,
                      audit::AuditLog::Open(config.data_dir, *keyring, config.audit));
  AuditTrail trail(log.get(), store.get());
  PV_RETURN_IF_ERROR(trail.RecordSystemEvent("init"));
  store->Close();
  return Status::Ok();
}

StatusOr<std::unique_ptr<Vault>> Vault::Open(const VaultConfig& config) {
  if (config.data_dir.empty()) return InvalidArgument("--data is required");
  std::unique_ptr<Vault> v(new Vault());
  PV_ASSIGN_OR_RETURN(v->keyring_, crypto::Keyring::Open(config.data_dir, config.key));
  // After the key check: a wrong key must not even create the lock file.
  PV_ASSIGN_OR_RETURN(v->lock_fd_, LockDataDir(config.data_dir));
  store::SqliteStoreOptions opts;
  opts.data_dir = config.data_dir;
  // What the store keeps for the log must be what the log accepts, with
  // room for what the entry gains once the write is answered.
  const size_t max_entry = config.audit.max_entry_bytes;
  opts.max_audit_record_bytes = max_entry > 2 * kAnswerFieldsBytes ? max_entry - kAnswerFieldsBytes : max_entry / 2;
  PV_ASSIGN_OR_RETURN(v->store_, store::OpenSqliteStore(opts, v->keyring_.get()));
  PV_ASSIGN_OR_RETURN(v->audit_log_, audit::AuditLog::Open(config.data_dir, *v->keyring_, config.audit));
  v->trail_ = std::make_unique<AuditTrail>(v->audit_log_.get(), v->store_.get());
  PV_RETURN_IF_ERROR(v->trail_->Recover().status());
  // Events other commands queued while the vault was closed or served.
  PV_RETURN_IF_ERROR(audit::DrainInbox(config.data_dir, *v->audit_log_).status());
  return v;
}

Vault::~Vault() {
  // Store first: its last commits hand their records to the trail and log.
  // Then the log, whose last callbacks still use the trail and the store.
  if (store_) store_->Close();
  audit_log_.reset();
  trail_.reset();
  store_.reset();
  keyring_.reset();
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

}  // namespace phivault::api
