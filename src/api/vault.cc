#include "api/vault.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "store/sqlite_store.h"

namespace phivault::api {

Status Vault::Init(const VaultConfig& config) {
  if (config.data_dir.empty()) return InvalidArgument("--data is required");
  if (::mkdir(config.data_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return InvalidArgument("cannot create data directory " + config.data_dir + ": " + std::strerror(errno));
  }
  // The data directory holds only ciphertext, but its metadata (sizes, times)
  // is still nobody else's business.
  ::chmod(config.data_dir.c_str(), 0700);
  PV_ASSIGN_OR_RETURN(std::unique_ptr<crypto::Keyring> keyring, crypto::Keyring::Create(config.data_dir, config.key));
  store::SqliteStoreOptions opts;
  opts.data_dir = config.data_dir;
  opts.create = true;
  PV_ASSIGN_OR_RETURN(std::unique_ptr<store::ResourceStore> store, store::OpenSqliteStore(opts, keyring.get()));
  store->Close();
  return Status::Ok();
}

StatusOr<std::unique_ptr<Vault>> Vault::Open(const VaultConfig& config) {
  if (config.data_dir.empty()) return InvalidArgument("--data is required");
  std::unique_ptr<Vault> v(new Vault());
  PV_ASSIGN_OR_RETURN(v->keyring_, crypto::Keyring::Open(config.data_dir, config.key));
  store::SqliteStoreOptions opts;
  opts.data_dir = config.data_dir;
  PV_ASSIGN_OR_RETURN(v->store_, store::OpenSqliteStore(opts, v->keyring_.get()));
  return v;
}

Vault::~Vault() {
  if (store_) store_->Close();
  store_.reset();
  keyring_.reset();
}

}  // namespace phivault::api
