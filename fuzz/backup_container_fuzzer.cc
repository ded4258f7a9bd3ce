// Fuzzes the backup file reader (backup/container.h): a backup is read from
// disk and may be damaged or crafted, so any input must be refused with a
// Status, never a crash, an assertion or unbounded memory. The first input
// byte picks the target:
//   even: the whole file (header, chunk framing, AEAD) under a fixed content
//         key, so seeds sealed with that key (fuzz/corpus/backup_container,
//         made by fuzz/make_backup_seeds.py) reach the
//         record parser and mutations of their framing are explored;
//   odd:  the decrypted record stream alone (ParseRecords), handed over in
//         pieces whose sizes come from the second byte, so record fields
//         straddle chunk boundaries in every way.
// Invariants checked: the sink only ever hears of allowed file names, each
// file gets exactly its declared number of bytes before EndFile, and an
// accepted stream's manifest matches what the sink saw.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "backup/container.h"

namespace {

using namespace phivault;
using namespace phivault::backup;

void Check(bool ok) {
  if (!ok) std::abort();
}

class CheckingSink : public ContainerSink {
 public:
  Status BeginFile(const std::string& name, uint64_t size) override {
    Check(IsAllowedFileName(name) && !open_);
    open_ = true;
    left_ = size;
    seen.push_back({name, size, {}});
    return Status::Ok();
  }
  Status FileData(std::string_view data) override {
    Check(open_ && !data.empty() && data.size() <= left_);
    left_ -= data.size();
    return Status::Ok();
  }
  Status EndFile() override {
    Check(open_ && left_ == 0);
    open_ = false;
    return Status::Ok();
  }
  std::vector<FileEntry> seen;

 private:
  bool open_ = false;
  uint64_t left_ = 0;
};

void CheckManifest(const StatusOr<std::vector<FileEntry>>& r, const CheckingSink& sink) {
  if (!r.ok()) return;
  Check(r->size() == sink.seen.size());
  for (size_t i = 0; i < r->size(); ++i) {
    Check((*r)[i].name == sink.seen[i].name && (*r)[i].size == sink.seen[i].size && (*r)[i].sha256.size() == 32);
  }
}

const crypto::Aead& FixedAead() {
  static const std::unique_ptr<crypto::Aead> aead = [] {
    SecureBytes key(32);
    std::memset(key.data(), 0x5a, key.size());  // the seeds' key (fuzz/make_backup_seeds.py)
    return std::move(crypto::Aead::New(key)).value();
  }();
  return *aead;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string input(reinterpret_cast<const char*>(data) + 1, size - 1);
  CheckingSink sink;
  if ((data[0] & 1) == 0) {
    size_t pos = 0;
    auto in = [&](char* buf, size_t n) -> StatusOr<size_t> {
      const size_t k = std::min(n, input.size() - pos);
      std::memcpy(buf, input.data() + pos, k);
      pos += k;
      return k;
    };
    auto reader = ContainerReader::Open(in);
    if (!reader.ok()) return 0;
    CheckManifest((*reader)->Read(FixedAead(), sink), sink);
    return 0;
  }
  const size_t piece = 1 + (input.empty() ? 0 : static_cast<uint8_t>(input[0]));
  size_t pos = input.empty() ? 0 : 1;
  std::function<StatusOr<std::string>()> next = [&]() -> StatusOr<std::string> {
    const std::string out = input.substr(pos, piece);
    pos += out.size();
    return out;
  };
  CheckManifest(ParseRecords(next, sink), sink);
  return 0;
}
