// Vault: a data directory unlocked with its master key — the keyring, the
// resource store and the audit log — as the subcommands that touch health
// data (serve, import, demo) need it.
//
// One process at a time: Open takes an exclusive lock on DIR/vault.lock, so
// a second `serve` or an `import` beside a running server fails cleanly
// instead of interleaving appends to the audit log. Open also finishes what
// a crash interrupted: write records left in the store's audit outbox are
// appended to the log (AuditTrail::Recover) before anything is served.
//
// Thread-safety: the accessors are safe from any thread once Open returns.
// Lifetime: owns everything it opens. Destruction closes the store first
// (its queued writes drain, and their audit records still reach the log),
// then the audit log (final checkpoint), then wipes the keys.
#ifndef PHIVAULT_API_VAULT_H_
#define PHIVAULT_API_VAULT_H_

#include <memory>
#include <string>

#include "api/audit_trail.h"
#include "audit/audit_log.h"
#include "common/status.h"
#include "crypto/keyring.h"
#include "store/resource_store.h"

namespace phivault::api {

struct VaultConfig {
  std::string data_dir;
  crypto::MasterKeySource key;
  // Tests inject failing files here (see audit::AuditLogOptions).
  audit::AuditLogOptions audit;
};

class Vault {
 public:
  // Creates the data directory (mode 0700), the keyring, the database and
  // the audit log (its first entry records the creation). Refuses if DIR
  // already holds a vault.
  static Status Init(const VaultConfig& config);
  // Unlocks an existing vault. PermissionDenied on a wrong key; nothing is
  // written in that case. Unavailable if another process has it open.
  static StatusOr<std::unique_ptr<Vault>> Open(const VaultConfig& config);

  ~Vault();
  store::ResourceStore* store() { return store_.get(); }
  const crypto::Keyring& keyring() const { return *keyring_; }
  audit::AuditLog* audit_log() { return audit_log_.get(); }
  AuditTrail* audit_trail() { return trail_.get(); }

 private:
  Vault() = default;
  int lock_fd_ = -1;
  std::unique_ptr<crypto::Keyring> keyring_;
  std::unique_ptr<store::ResourceStore> store_;
  std::unique_ptr<audit::AuditLog> audit_log_;
  std::unique_ptr<AuditTrail> trail_;
};

}  // namespace phivault::api

#endif  // PHIVAULT_API_VAULT_H_
