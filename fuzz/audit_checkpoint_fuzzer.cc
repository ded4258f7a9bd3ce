// Fuzzes everything the audit component parses from untrusted sources:
// signed notes and checkpoint bodies, verifier keys, checkpoints files,
// published checkpoints (files or collector logs) and syslog target URLs,
// inclusion/consistency proofs, and segment files. Any input must be
// accepted or rejected cleanly. Invariants checked:
//   * a note that verifies under the fuzz key has a canonical body
//     (FormatTreeHead(parse(text)) == text), so no two spellings verify;
//   * a parsed verifier key prints back to the same string;
//   * a segment's padding holds only zeros, to the end of the file.
// The first input byte selects the target; the seed corpus in
// fuzz/corpus/audit_checkpoint has a valid note signed by the fuzz key.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "audit/checkpoint.h"
#include "audit/merkle.h"
#include "audit/publish.h"
#include "audit/segment.h"

namespace {

using namespace phivault;
using namespace phivault::audit;

// Seed: 32 bytes of 0x42; name "phivault/fuzz".
const NoteSigner& FuzzSigner() {
  static const NoteSigner* s = [] {
    auto r = NoteSigner::FromSeed("phivault/fuzz", SecureBytes::From(std::string(32, '\x42')));
    if (!r.ok()) std::abort();
    return r->release();
  }();
  return *s;
}

uint64_t Load64(std::string_view& in) {
  uint64_t v = 0;
  for (int i = 0; i < 8 && !in.empty(); ++i) {
    v = (v << 8) | static_cast<uint8_t>(in.front());
    in.remove_prefix(1);
  }
  return v;
}

std::vector<std::string> Chunks(std::string_view in) {
  // Mostly 32-byte elements, occasionally odd sizes, as a hostile proof has.
  std::vector<std::string> out;
  while (!in.empty() && out.size() < 200) {
    size_t len = 32;
    if (static_cast<uint8_t>(in.front()) == 0xff && in.size() > 1) {
      len = static_cast<uint8_t>(in[1]) % 40;
      in.remove_prefix(2);
    }
    len = std::min(len, in.size());
    out.emplace_back(in.substr(0, len));
    in.remove_prefix(len);
  }
  return out;
}

void FuzzNote(std::string_view in) {
  const NoteSigner& signer = FuzzSigner();
  VerifierKey key{signer.name(), signer.key_id(), signer.public_key()};
  auto text = OpenNote(in, key);
  auto head = VerifyCheckpoint(in, key);
  if (head.ok()) {
    if (!text.ok() || FormatTreeHead(*head) != *text) std::abort();
  }
  (void)ParseTreeHead(in);
  auto vk = ParseVerifierKey(in);
  if (vk.ok() && vk->name.empty()) std::abort();
  size_t complete = 0;
  auto notes = SplitNotes(in, &complete);
  if (complete > in.size()) std::abort();
  for (const auto& n : notes) (void)VerifyCheckpoint(n, key);
  (void)Base64Decode(in);
  // Published checkpoints read back by `audit verify --checkpoint` and
  // `audit publish` (files, collector logs) and the syslog target URL.
  for (const auto& n : ExtractCheckpoints(in)) (void)VerifyCheckpoint(n, key);
  (void)ParseSyslogUrl(in);
}

void FuzzProofs(std::string_view in) {
  const uint64_t a = Load64(in);
  const uint64_t b = Load64(in);
  std::vector<std::string> c = Chunks(in);
  const std::string x = c.empty() ? std::string() : c[0];
  const std::string y = c.size() < 2 ? std::string() : c[1];
  std::vector<std::string> proof(c.begin() + std::min<size_t>(2, c.size()), c.end());
  (void)VerifyInclusion(a, b, x, proof, y);
  (void)VerifyInclusion(a % 4096, b % 4096, x, proof, y);
  (void)VerifyConsistency(a, b, proof, x, y);
  (void)VerifyConsistency(a % 4096, b % 4096, proof, x, y);
}

void FuzzSegment(std::string_view in) {
  // SegmentReader works on files: give it an anonymous in-memory one.
  const int fd = ::memfd_create("audit-seg", 0);
  if (fd < 0) return;
  std::string data(kSegmentMagic);
  data.append(8, '\0');
  data.append(in);
  if (::write(fd, data.data(), data.size()) != static_cast<ssize_t>(data.size())) {
    ::close(fd);
    return;
  }
  const std::string path = "/proc/self/fd/" + std::to_string(fd);
  auto r = SegmentReader::Open(path);
  if (r.ok()) {
    Record rec;
    int n = 0;
    SegmentReader::Result res;
    struct Seen {
      uint64_t offset, index;
      std::string payload;  // a copy: Record::payload dies with the next Next()
    };
    std::vector<Seen> firsts;  // to re-read from their offsets below
    while ((res = (*r)->Next(&rec)) == SegmentReader::Result::kRecord && n++ < 100000) {
      if (rec.payload.size() > kMaxRecordBytes) std::abort();
      (void)HashLeaf(rec.payload);
      if (firsts.size() < 8) firsts.push_back({rec.offset, rec.index, std::string(rec.payload)});
    }
    // A reader opened at a record's offset (as ReadEntries and ReadSelected
    // open one) reads that same record.
    for (const Seen& want : firsts) {
      auto at = SegmentReader::Open(path, want.offset);
      Record got;
      if (!at.ok() || (*at)->Next(&got) != SegmentReader::Result::kRecord) std::abort();
      if (got.offset != want.offset || got.index != want.index || got.payload != want.payload) std::abort();
    }
    // Padding is zeros to the end of the file and nothing else, and the
    // reader's answer after the last record does not change when asked again.
    if (res != SegmentReader::Result::kRecord) {
      if ((*r)->padding()) {
        if (res != SegmentReader::Result::kEnd || (*r)->good_offset() > data.size()) std::abort();
        if (data.find_first_not_of('\0', (*r)->good_offset()) != std::string::npos) std::abort();
      }
      if ((*r)->Next(&rec) != res) std::abort();
    }
  }
  ::close(fd);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0: FuzzNote(in); break;
    case 1: FuzzProofs(in); break;
    case 2: FuzzSegment(in); break;
  }
  return 0;
}
