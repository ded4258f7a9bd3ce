// The backup container on its own: what is written reads back byte for
// byte, and every kind of damage (a flipped byte anywhere, truncation,
// appended bytes, reordered or spliced chunks, another format version, a
// crafted file name) is refused with a clear error, never a crash.
#include "backup/container.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

namespace phivault::backup {
namespace {

std::unique_ptr<crypto::Aead> NewAead() {
  auto a = crypto::Aead::New(SecureBytes::Random(32));
  EXPECT_TRUE(a.ok());
  return std::move(a).value();
}

Header TestHeader() {
  Header h;
  h.vault_id = "0b5f4f0c-4c55-4c1f-9d0e-3f6a2b7c8d9e";
  h.backup_id = std::string(kBackupIdBytes, '\x42');
  h.created_ms = 1767225600123;
  h.kek_version = 1;
  h.chunk_bytes = kMinChunkBytes;
  h.keyring = "vault_id=...\nkek=...\nsha256=...\n";
  return h;
}

// Collects what the reader hands out.
class MemorySink : public ContainerSink {
 public:
  Status BeginFile(const std::string& name, uint64_t size) override {
    current_ = name;
    sizes[name] = size;
    files[name];
    return Status::Ok();
  }
  Status FileData(std::string_view data) override {
    files[current_] += data;
    return Status::Ok();
  }
  Status EndFile() override { return Status::Ok(); }
  std::map<std::string, std::string> files;
  std::map<std::string, uint64_t> sizes;

 private:
  std::string current_;
};

std::string Pattern(size_t n, int seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + seed * 7 + (i >> 8)) & 0xff);
  return s;
}

std::map<std::string, std::string> TestFiles() {
  return {{"vault.db", Pattern(3 * kMinChunkBytes + 17, 1)},
          {"audit/checkpoints", ""},
          {"audit/seg-000001.log", Pattern(999, 2)}};
}

std::string Write(const Header& h, const crypto::Aead& aead, const std::map<std::string, std::string>& files) {
  std::string out;
  auto w = ContainerWriter::Start(h, &aead, [&out](std::string_view d) {
    out += d;
    return Status::Ok();
  });
  EXPECT_TRUE(w.ok()) << w.status().ToString();
  for (const auto& [name, content] : files) {
    EXPECT_TRUE((*w)->BeginFile(name, content.size()).ok());
    // Uneven pieces, so records straddle chunk boundaries in every way.
    for (size_t pos = 0; pos < content.size(); pos += 1000) {
      EXPECT_TRUE((*w)->Append(std::string_view(content).substr(pos, 1000)).ok());
    }
  }
  EXPECT_TRUE((*w)->Finish().ok());
  return out;
}

std::string ReadSeed(const std::string& name) {
  std::ifstream in(std::string(PHIVAULT_SOURCE_DIR) + "/fuzz/corpus/backup_container/" + name, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

ReadFn FromString(const std::string& bytes) {
  auto pos = std::make_shared<size_t>(0);
  return [&bytes, pos](char* buf, size_t n) -> StatusOr<size_t> {
    const size_t k = std::min(n, bytes.size() - *pos);
    std::memcpy(buf, bytes.data() + *pos, k);
    *pos += k;
    return k;
  };
}

Status ReadBack(const std::string& bytes, const crypto::Aead& aead, MemorySink* sink = nullptr) {
  MemorySink local;
  auto r = ContainerReader::Open(FromString(bytes));
  if (!r.ok()) return r.status();
  return (*r)->Read(aead, sink ? *sink : local).status();
}

size_t U32At(const std::string& b, size_t pos) {
  size_t v = 0;
  for (size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(b[pos + i]);
  return v;
}

// Offsets of each chunk frame (flag byte) in a container.
std::vector<size_t> FrameOffsets(const std::string& bytes) {
  size_t pos = kMagic.size() + 4;
  pos += 4 + U32At(bytes, pos);
  std::vector<size_t> out;
  while (pos < bytes.size()) {
    out.push_back(pos);
    pos += 5 + U32At(bytes, pos + 1);
  }
  return out;
}

TEST(BackupContainer, WhatIsWrittenReadsBackWithItsManifest) {
  auto aead = NewAead();
  const Header h = TestHeader();
  const auto files = TestFiles();
  const std::string bytes = Write(h, *aead, files);
  EXPECT_GT(FrameOffsets(bytes).size(), 3u) << "several chunks";

  auto r = ContainerReader::Open(FromString(bytes));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)->header().vault_id, h.vault_id);
  EXPECT_EQ((*r)->header().backup_id, h.backup_id);
  EXPECT_EQ((*r)->header().created_ms, h.created_ms);
  EXPECT_EQ((*r)->header().keyring, h.keyring);
  MemorySink sink;
  auto manifest = (*r)->Read(*aead, sink);
  ASSERT_TRUE(manifest.ok()) << manifest.status().ToString();
  EXPECT_EQ(sink.files, files);
  ASSERT_EQ(manifest->size(), files.size());
  for (const auto& f : *manifest) {
    EXPECT_EQ(f.size, files.at(f.name).size());
    EXPECT_EQ(f.sha256.size(), 32u);
  }
}

TEST(BackupContainer, ContentIsNotReadableInTheFile) {
  auto aead = NewAead();
  const std::string secret = "Zyxwvut-patient-name-" + std::string(64, 'Q');
  const std::string bytes = Write(TestHeader(), *aead, {{"vault.db", secret}});
  EXPECT_EQ(bytes.find("Zyxwvut"), std::string::npos);
  EXPECT_EQ(bytes.find("vault.db"), std::string::npos) << "file names are sealed too";
}

TEST(BackupContainer, EveryFlippedByteIsRefused) {
  auto aead = NewAead();
  const std::string good = Write(TestHeader(), *aead, TestFiles());
  ASSERT_TRUE(ReadBack(good, *aead).ok());
  // Every byte of the header and of each frame header, and a sample of the
  // sealed bodies.
  std::vector<size_t> offsets;
  const auto frames = FrameOffsets(good);
  for (size_t i = 0; i < frames.front(); ++i) offsets.push_back(i);
  for (size_t f : frames) {
    for (size_t i = 0; i < 5 + 12 + 3; ++i) offsets.push_back(f + i);
  }
  for (size_t i = frames.front(); i < good.size(); i += 97) offsets.push_back(i);
  offsets.push_back(good.size() - 1);
  for (size_t off : offsets) {
    std::string bad = good;
    bad[off] ^= 0x01;
    Status s = ReadBack(bad, *aead);
    ASSERT_FALSE(s.ok()) << "flipped byte at " << off << " went unnoticed";
    EXPECT_TRUE(s.code() == StatusCode::kDataLoss || s.code() == StatusCode::kUnsupported)
        << off << ": " << s.ToString();
  }
}

TEST(BackupContainer, TruncationAndAppendedBytesAreRefused) {
  auto aead = NewAead();
  const std::string good = Write(TestHeader(), *aead, TestFiles());
  std::vector<size_t> cuts = {0, 3, kMagic.size() + 8, good.size() - 1};
  for (size_t f : FrameOffsets(good)) {
    cuts.push_back(f);
    cuts.push_back(f + 3);
    cuts.push_back(f + 100);
  }
  for (size_t cut : cuts) {
    Status s = ReadBack(good.substr(0, cut), *aead);
    ASSERT_FALSE(s.ok()) << "cut at " << cut;
    EXPECT_EQ(s.code(), StatusCode::kDataLoss) << s.ToString();
  }
  Status s = ReadBack(good + "x", *aead);
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("appended"), std::string::npos) << s.message();
  s = ReadBack(good + good.substr(FrameOffsets(good).back()), *aead);
  EXPECT_EQ(s.code(), StatusCode::kDataLoss) << "a repeated final chunk";
}

TEST(BackupContainer, ReorderedDroppedAndSplicedChunksAreRefused) {
  auto aead = NewAead();
  const std::string good = Write(TestHeader(), *aead, TestFiles());
  const auto f = FrameOffsets(good);
  ASSERT_GE(f.size(), 3u);
  // Swap chunks 0 and 1 (same size: both full).
  const std::string c0 = good.substr(f[0], f[1] - f[0]), c1 = good.substr(f[1], f[2] - f[1]);
  std::string swapped = good.substr(0, f[0]) + c1 + c0 + good.substr(f[2]);
  EXPECT_EQ(ReadBack(swapped, *aead).code(), StatusCode::kDataLoss);
  // Drop chunk 1.
  std::string dropped = good.substr(0, f[1]) + good.substr(f[2]);
  EXPECT_EQ(ReadBack(dropped, *aead).code(), StatusCode::kDataLoss);
  // Chunk 1 from another backup under the same key and the same header
  // fields except its id.
  Header other = TestHeader();
  other.backup_id = std::string(kBackupIdBytes, '\x43');
  const std::string foreign = Write(other, *aead, TestFiles());
  const auto g = FrameOffsets(foreign);
  std::string spliced = good.substr(0, f[1]) + foreign.substr(g[1], g[2] - g[1]) + good.substr(f[2]);
  Status s = ReadBack(spliced, *aead);
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("chunk 1"), std::string::npos) << s.message();
  // The right bytes under another key.
  EXPECT_EQ(ReadBack(good, *NewAead()).code(), StatusCode::kDataLoss);
}

TEST(BackupContainer, AnotherFormatVersionIsUnsupported) {
  auto aead = NewAead();
  std::string bytes = Write(TestHeader(), *aead, TestFiles());
  bytes[kMagic.size() + 3] = 2;
  Status s = ReadBack(bytes, *aead);
  EXPECT_EQ(s.code(), StatusCode::kUnsupported);
  EXPECT_NE(s.message().find("version 2"), std::string::npos) << s.message();
  EXPECT_EQ(ReadBack("not a backup at all", *aead).code(), StatusCode::kDataLoss);
  EXPECT_EQ(ReadBack("", *aead).code(), StatusCode::kDataLoss);
}

TEST(BackupContainer, OnlyKnownFileNames) {
  for (const char* ok : {"vault.db", "accounts.db", "audit/checkpoints", "audit/seg-000001.log",
                         "audit/seg-1234567.log"}) {
    EXPECT_TRUE(IsAllowedFileName(ok)) << ok;
  }
  for (const char* bad : {"", "keyring.txt", "../vault.db", "/etc/passwd", "audit/seg-1.log", "audit/seg-00000a.log",
                          "audit/../vault.db", "audit/seg-000001.log/x", "audit/tree/level-00.hash"}) {
    EXPECT_FALSE(IsAllowedFileName(bad)) << bad;
  }
  auto aead = NewAead();
  auto w = ContainerWriter::Start(TestHeader(), aead.get(), [](std::string_view) { return Status::Ok(); });
  ASSERT_TRUE(w.ok());
  EXPECT_EQ((*w)->BeginFile("../escape", 1).code(), StatusCode::kInvalidArgument);
}

// The fuzzer's seeds are written by fuzz/make_backup_seeds.py from
// docs/BACKUP-FORMAT.md alone (Python's AES-GCM): the C++ reader accepting
// them shows the document and the code agree.
TEST(BackupContainer, ReadsAFileWrittenFromTheFormatDocument) {
  const std::string seed = ReadSeed("whole-multichunk");
  ASSERT_GT(seed.size(), 1u);
  SecureBytes key(32);
  std::memset(key.data(), 0x5a, key.size());
  auto aead = crypto::Aead::New(key);
  ASSERT_TRUE(aead.ok());
  const std::string bytes = seed.substr(1);  // the fuzzer's mode byte
  MemorySink sink;
  auto r = ContainerReader::Open(FromString(bytes));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)->header().created_ms, 1767225600000);
  auto manifest = (*r)->Read(**aead, sink);
  ASSERT_TRUE(manifest.ok()) << manifest.status().ToString();
  ASSERT_EQ(manifest->size(), 5u);
  EXPECT_EQ(sink.files.at("accounts.db"), std::string(100, 'a'));
  EXPECT_EQ(sink.files.at("vault.db").size(), 256u * 20);
}

// A crafted plaintext (as if the key were known) naming a path outside the
// directory never reaches the sink.
TEST(BackupContainer, CraftedNameNeverReachesTheSink) {
  std::string plain;
  plain.push_back(1);
  const std::string name = "../../etc/passwd";
  plain.push_back(0);
  plain.push_back(static_cast<char>(name.size()));
  plain += name;
  plain += std::string(8, '\0');
  bool given = false;
  auto next = [&]() -> StatusOr<std::string> {
    if (given) return std::string();
    given = true;
    return plain;
  };
  MemorySink sink;
  auto r = ParseRecords(next, sink);
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
  EXPECT_TRUE(sink.files.empty());
}

}  // namespace
}  // namespace phivault::backup
