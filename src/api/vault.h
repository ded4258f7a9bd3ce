// Vault: a data directory unlocked with its master key — the keyring plus the
// resource store — as every subcommand (init, serve, import, demo) needs it.
//
// Thread-safety: the accessors are safe from any thread once Open returns.
// Lifetime: owns the keyring and the store; the store is closed (queued
// writes drained) before the keys are wiped.
#ifndef PHIVAULT_API_VAULT_H_
#define PHIVAULT_API_VAULT_H_

#include <memory>
#include <string>

#include "common/status.h"
#include "crypto/keyring.h"
#include "store/resource_store.h"

namespace phivault::api {

struct VaultConfig {
  std::string data_dir;
  crypto::MasterKeySource key;
};

class Vault {
 public:
  // Creates the data directory (mode 0700), the keyring and the database.
  // Refuses if DIR already holds a vault.
  static Status Init(const VaultConfig& config);
  // Unlocks an existing vault. PermissionDenied on a wrong key; nothing is
  // written in that case.
  static StatusOr<std::unique_ptr<Vault>> Open(const VaultConfig& config);

  ~Vault();
  store::ResourceStore* store() { return store_.get(); }
  const crypto::Keyring& keyring() const { return *keyring_; }

 private:
  Vault() = default;
  std::unique_ptr<crypto::Keyring> keyring_;
  std::unique_ptr<store::ResourceStore> store_;
};

}  // namespace phivault::api

#endif  // PHIVAULT_API_VAULT_H_
