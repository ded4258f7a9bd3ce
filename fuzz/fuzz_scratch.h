// Fuzzer fixtures only: a scratch directory under /tmp that is removed when
// the fuzzer exits, and a master key file in it. A fuzzer keeps one fixture
// for its whole run, so at most one scratch directory per process is made.
// Any setup failure aborts: a fuzzer without its fixture would test nothing.
#ifndef PHIVAULT_FUZZ_FUZZ_SCRATCH_H_
#define PHIVAULT_FUZZ_FUZZ_SCRATCH_H_

#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "crypto/keyring.h"

namespace phivault::fuzzing {

// REQUIRES: called once per process.
inline std::string MakeScratchDir() {
  static char tmpl[] = "/tmp/phivault-fuzz-XXXXXX";
  const char* dir = ::mkdtemp(tmpl);
  if (dir == nullptr) std::abort();
  std::atexit([] { std::filesystem::remove_all(tmpl); });
  return dir;
}

// A new master key file in `dir`, for crypto::Keyring::Create or a VaultConfig.
inline crypto::MasterKeySource MakeKeyFile(const std::string& dir) {
  crypto::MasterKeySource src;
  src.key_file = dir + "/master.key";
  if (!crypto::GenerateKeyFile(src.key_file).ok()) std::abort();
  return src;
}

}  // namespace phivault::fuzzing

#endif  // PHIVAULT_FUZZ_FUZZ_SCRATCH_H_
