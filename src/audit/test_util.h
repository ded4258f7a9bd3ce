// Test helpers for the audit component: a keyring in a temporary vault
// directory, a failure-injecting WritableFile, and raw segment surgery for
// tamper tests. For tests only.
#ifndef PHIVAULT_AUDIT_TEST_UTIL_H_
#define PHIVAULT_AUDIT_TEST_UTIL_H_

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <memory>
#include <string>
#include <vector>

#include "audit/audit_log.h"
#include "audit/segment.h"
#include "common/testing/temp_dir.h"
#include "crypto/keyring.h"

namespace phivault::audit::testing {

inline std::unique_ptr<crypto::Keyring> MakeKeyring(const std::string& dir) {
  crypto::MasterKeySource src;
  src.key_file = dir + "/master.key";
  EXPECT_TRUE(crypto::GenerateKeyFile(src.key_file).ok());
  auto k = crypto::Keyring::Create(dir, src);
  EXPECT_TRUE(k.ok()) << k.status().ToString();
  return std::move(k).value();
}

// Shared switches for FaultyFile; the test flips them while the log runs.
struct Faults {
  std::atomic<bool> fail_writes{false};
  std::atomic<bool> fail_syncs{false};
  std::atomic<int> syncs{0};
  std::atomic<int> writes{0};
  std::atomic<int> sync_delay_ms{0};  // a slow or hung disk
};

// Wraps a real file. A failing write first writes half of its bytes, as a
// disk filling up mid-record would, then reports ENOSPC.
class FaultyFile : public WritableFile {
 public:
  FaultyFile(std::unique_ptr<WritableFile> inner, std::shared_ptr<Faults> f) : inner_(std::move(inner)), f_(std::move(f)) {}
  Status WriteAt(uint64_t offset, std::string_view data) override {
    ++f_->writes;
    if (f_->fail_writes) {
      inner_->WriteAt(offset, data.substr(0, data.size() / 2)).IgnoreError();
      return Unavailable("injected: No space left on device");
    }
    return inner_->WriteAt(offset, data);
  }
  Status Sync() override {
    ++f_->syncs;
    if (int ms = f_->sync_delay_ms.load(); ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    if (f_->fail_syncs) return Unavailable("injected: Input/output error");
    return inner_->Sync();
  }
  Status Truncate(uint64_t size) override {
    if (f_->fail_writes) return Unavailable("injected: truncate failed");
    return inner_->Truncate(size);
  }

 private:
  std::unique_ptr<WritableFile> inner_;
  std::shared_ptr<Faults> f_;
};

inline FileOpener FaultyOpener(std::shared_ptr<Faults> f) {
  return [f](const std::string& path) -> StatusOr<std::unique_ptr<WritableFile>> {
    PV_ASSIGN_OR_RETURN(auto inner, OpenPosixWritableFile(path));
    return std::unique_ptr<WritableFile>(new FaultyFile(std::move(inner), f));
  };
}

// A segment file split into its header and raw records (header + payload).
struct RawSegment {
  std::string header;
  std::vector<std::string> records;
  std::vector<std::string> payloads;
};

inline RawSegment ReadSegment(const std::string& path) {
  RawSegment s;
  const std::string bytes = phivault::testing::ReadFile(path);
  s.header = bytes.substr(0, kSegmentHeaderSize);
  auto r = SegmentReader::Open(path);
  EXPECT_TRUE(r.ok());
  Record rec;
  while ((*r)->Next(&rec) == SegmentReader::Result::kRecord) {
    s.records.push_back(bytes.substr(rec.offset, kRecordHeaderSize + rec.payload.size()));
    s.payloads.emplace_back(rec.payload);
  }
  return s;
}

inline void WriteSegment(const std::string& path, const RawSegment& s) {
  std::string out = s.header;
  for (const auto& r : s.records) out += r;
  phivault::testing::WriteFile(path, out);
}

inline std::string EncodeRecord(uint64_t index, std::string_view payload) {
  std::string out;
  AppendRecord(&out, index, payload);
  return out;
}

}  // namespace phivault::audit::testing

#endif  // PHIVAULT_AUDIT_TEST_UTIL_H_
