// Benchmarks only: a scratch directory (under $PHIVAULT_BENCH_TMP, default
// /tmp) holding a fresh master key and keyring, removed on destruction. Any
// setup failure aborts: a benchmark without its fixture measures nothing.
#ifndef PHIVAULT_BENCH_SCRATCH_KEYRING_H_
#define PHIVAULT_BENCH_SCRATCH_KEYRING_H_

#include <stdlib.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "crypto/keyring.h"

namespace phivault::bench {

struct ScratchKeyring {
  std::string dir;
  std::unique_ptr<crypto::Keyring> keyring;

  // `name` appears in the directory name and in failure messages.
  explicit ScratchKeyring(const std::string& name) {
    const char* base = std::getenv("PHIVAULT_BENCH_TMP");
    std::string tmpl = std::string(base ? base : "/tmp") + "/phivault-" + name + "-XXXXXX";
    if (!::mkdtemp(tmpl.data())) Fail(name, "mkdtemp failed");
    dir = tmpl;
    crypto::MasterKeySource src;
    src.key_file = dir + "/master.key";
    if (!crypto::GenerateKeyFile(src.key_file).ok()) Fail(name, "cannot write the key file");
    auto k = crypto::Keyring::Create(dir, src);
    if (!k.ok()) Fail(name, k.status().ToString());
    keyring = std::move(k).value();
  }
  ~ScratchKeyring() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  ScratchKeyring(const ScratchKeyring&) = delete;
  ScratchKeyring& operator=(const ScratchKeyring&) = delete;

 private:
  [[noreturn]] static void Fail(const std::string& name, const std::string& what) {
    std::fprintf(stderr, "%s: %s\n", name.c_str(), what.c_str());
    std::abort();
  }
};

}  // namespace phivault::bench

#endif  // PHIVAULT_BENCH_SCRATCH_KEYRING_H_
