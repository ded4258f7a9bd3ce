// Merkle hashing and proofs: RFC 6962 test vectors (transparency-dev/merkle,
// copied to testdata/merkle), known roots, and every (index, size) up to 64
// against the literal RFC recursion.
#include "audit/merkle.h"

#include <gtest/gtest.h>

#include <boost/json/src.hpp>  // header-only Boost.JSON, for the vector files only
#include <filesystem>
#include <fstream>
#include <sstream>

#include "audit/checkpoint.h"

namespace phivault::audit {
namespace {

namespace fs = std::filesystem;

std::string Hex(const Hash& h) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s;
  for (uint8_t b : h) {
    s += kDigits[b >> 4];
    s += kDigits[b & 15];
  }
  return s;
}

std::string B64(const boost::json::value& v) {
  auto r = Base64Decode(std::string(v.as_string()));
  EXPECT_TRUE(r.ok()) << v;
  return r.ok() ? *r : std::string();
}

std::vector<std::string> Proof(const boost::json::value& v) {
  std::vector<std::string> out;
  if (v.is_null()) return out;
  for (const auto& e : v.as_array()) out.push_back(B64(e));
  return out;
}

std::vector<fs::path> VectorFiles(const std::string& kind) {
  std::vector<fs::path> out;
  const fs::path root = fs::path(PHIVAULT_SOURCE_DIR) / "src/audit/testdata/merkle" / kind;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (e.is_regular_file() && e.path().extension() == ".json") out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

boost::json::value Load(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return boost::json::parse(ss.str());
}

TEST(MerkleVectors, Inclusion) {
  int happy = 0, bad = 0;
  for (const fs::path& p : VectorFiles("inclusion")) {
    const auto v = Load(p);
    const auto& o = v.as_object();
    const Status st = VerifyInclusion(o.at("leafIdx").to_number<uint64_t>(), o.at("treeSize").to_number<uint64_t>(),
                                      B64(o.at("leafHash")), Proof(o.at("proof")), B64(o.at("root")));
    const bool want_err = o.at("wantErr").as_bool();
    EXPECT_EQ(!st.ok(), want_err) << p << ": " << st.ToString();
    (want_err ? bad : happy)++;
  }
  EXPECT_GE(happy, 6);
  EXPECT_GE(bad, 50);
}

TEST(MerkleVectors, Consistency) {
  int happy = 0, bad = 0;
  for (const fs::path& p : VectorFiles("consistency")) {
    const auto v = Load(p);
    const auto& o = v.as_object();
    const Status st = VerifyConsistency(o.at("size1").to_number<uint64_t>(), o.at("size2").to_number<uint64_t>(),
                                        Proof(o.at("proof")), B64(o.at("root1")), B64(o.at("root2")));
    const bool want_err = o.at("wantErr").as_bool();
    EXPECT_EQ(!st.ok(), want_err) << p << ": " << st.ToString();
    (want_err ? bad : happy)++;
  }
  EXPECT_GE(happy, 5);
  EXPECT_GE(bad, 50);
}

// The eight leaves of the RFC 6962 reference tests (CT / transparency-dev).
std::vector<Hash> ReferenceLeaves() {
  const std::vector<std::string> data = {
      "", std::string(1, '\0'), "\x10", "\x20\x21", "\x30\x31", "\x40\x41\x42\x43",
      "\x50\x51\x52\x53\x54\x55\x56\x57", "\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f"};
  std::vector<Hash> out;
  for (const auto& d : data) out.push_back(HashLeaf(d));
  return out;
}

TEST(Merkle, KnownRoots) {
  EXPECT_EQ(Hex(EmptyRoot()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  const std::vector<std::string> want = {
      "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
      "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
      "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
      "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
      "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
      "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
      "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
      "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
  };
  const auto leaves = ReferenceLeaves();
  CompactRange range;
  MemoryHashStore store;
  for (size_t n = 1; n <= leaves.size(); ++n) {
    range.Append(leaves[n - 1]);
    store.Append(leaves[n - 1]);
    EXPECT_EQ(Hex(ReferenceRoot(std::span(leaves).first(n))), want[n - 1]) << n;
    EXPECT_EQ(Hex(range.Root()), want[n - 1]) << n;
    auto r = RootAt(store, n);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(Hex(*r), want[n - 1]) << n;
  }
}

std::vector<std::string> Strings(const std::vector<Hash>& v) {
  std::vector<std::string> out;
  for (const Hash& h : v) out.push_back(HashString(h));
  return out;
}

TEST(Merkle, EveryInclusionProofUpTo64) {
  std::vector<Hash> leaves;
  MemoryHashStore store;
  for (int i = 0; i < 64; ++i) {
    leaves.push_back(HashLeaf("leaf " + std::to_string(i)));
    store.Append(leaves.back());
  }
  for (uint64_t size = 1; size <= 64; ++size) {
    const auto sub = std::span(leaves).first(size);
    const Hash root = ReferenceRoot(sub);
    CompactRange cr;
    for (const Hash& h : sub) cr.Append(h);
    ASSERT_EQ(cr.Root(), root);
    auto from_store = CompactRange::FromStore(store, size);
    ASSERT_TRUE(from_store.ok());
    ASSERT_EQ(from_store->Root(), root);
    for (uint64_t i = 0; i < size; ++i) {
      auto proof = InclusionProof(store, i, size);
      ASSERT_TRUE(proof.ok());
      ASSERT_EQ(*proof, ReferenceInclusionProof(sub, i)) << i << "/" << size;
      auto p = Strings(*proof);
      ASSERT_TRUE(VerifyInclusion(i, size, HashView(leaves[i]), p, HashView(root)).ok()) << i << "/" << size;
      // Every single-bit change, wrong index, wrong size or wrong leaf fails.
      for (size_t k = 0; k < p.size(); ++k) {
        auto bad = p;
        bad[k][k % 32] ^= 0x01;
        EXPECT_FALSE(VerifyInclusion(i, size, HashView(leaves[i]), bad, HashView(root)).ok());
      }
      if (size > 1) {
        EXPECT_FALSE(VerifyInclusion((i + 1) % size, size, HashView(leaves[i]), p, HashView(root)).ok());
        EXPECT_FALSE(VerifyInclusion(i, size, HashView(leaves[(i + 1) % size]), p, HashView(root)).ok());
      }
      // (A different tree size is not asserted to fail: for some (index,
      // size) pairs the RFC algorithm walks the same path, and the size is
      // bound by the signed checkpoint, not by the proof.)
      if (!p.empty()) {
        auto shorter = p;
        shorter.pop_back();
        EXPECT_FALSE(VerifyInclusion(i, size, HashView(leaves[i]), shorter, HashView(root)).ok());
      }
      auto longer = p;
      longer.push_back(HashString(root));
      EXPECT_FALSE(VerifyInclusion(i, size, HashView(leaves[i]), longer, HashView(root)).ok());
    }
  }
}

TEST(Merkle, EveryConsistencyProofUpTo64) {
  std::vector<Hash> leaves;
  MemoryHashStore store;
  for (int i = 0; i < 64; ++i) {
    leaves.push_back(HashLeaf("entry " + std::to_string(i)));
    store.Append(leaves.back());
  }
  for (uint64_t size2 = 1; size2 <= 64; ++size2) {
    const Hash root2 = ReferenceRoot(std::span(leaves).first(size2));
    for (uint64_t size1 = 1; size1 <= size2; ++size1) {
      const Hash root1 = ReferenceRoot(std::span(leaves).first(size1));
      auto proof = ConsistencyProof(store, size1, size2);
      ASSERT_TRUE(proof.ok());
      ASSERT_EQ(*proof, ReferenceConsistencyProof(std::span(leaves).first(size2), size1)) << size1 << "/" << size2;
      auto p = Strings(*proof);
      ASSERT_TRUE(VerifyConsistency(size1, size2, p, HashView(root1), HashView(root2)).ok()) << size1 << "/" << size2;
      for (size_t k = 0; k < p.size(); ++k) {
        auto bad = p;
        bad[k][3] ^= 0x80;
        EXPECT_FALSE(VerifyConsistency(size1, size2, bad, HashView(root1), HashView(root2)).ok());
      }
      if (size1 < size2) {
        const Hash other = HashLeaf("not a root");
        EXPECT_FALSE(VerifyConsistency(size1, size2, p, HashView(other), HashView(root2)).ok());
        EXPECT_FALSE(VerifyConsistency(size1, size2, p, HashView(root1), HashView(other)).ok());
      }
    }
  }
}

TEST(Merkle, VerifyRejectsHostileShapes) {
  const Hash h = HashLeaf("x");
  std::vector<std::string> huge(1000, HashString(h));
  EXPECT_FALSE(VerifyInclusion(0, 1, HashView(h), huge, HashView(h)).ok());
  EXPECT_FALSE(VerifyInclusion(5, 3, HashView(h), {}, HashView(h)).ok());
  EXPECT_FALSE(VerifyInclusion(UINT64_MAX - 1, UINT64_MAX, HashView(h), huge, HashView(h)).ok());
  EXPECT_FALSE(VerifyConsistency(1, UINT64_MAX, huge, HashView(h), HashView(h)).ok());
  EXPECT_FALSE(VerifyConsistency(3, 2, {}, HashView(h), HashView(h)).ok());
  std::vector<std::string> short_elem = {"abc"};
  EXPECT_FALSE(VerifyInclusion(0, 2, HashView(h), short_elem, HashView(h)).ok());
}

// Counts reads so the O(log n) claim is tested, with a fake 10M-leaf tree.
class CountingStore : public HashStore {
 public:
  StatusOr<Hash> Node(int level, uint64_t index) const override {
    ++reads;
    Hash h{};
    h[0] = static_cast<uint8_t>(level);
    for (int i = 0; i < 8; ++i) h[1 + i] = static_cast<uint8_t>(index >> (8 * i));
    return h;
  }
  mutable int reads = 0;
};

TEST(Merkle, ProofsCostLogarithmicReads) {
  CountingStore store;
  const uint64_t n = 10'000'000;
  int worst = 0;
  for (uint64_t i : {uint64_t{0}, uint64_t{1}, n / 2, n - 2, n - 1, uint64_t{8'388'607}, uint64_t{9'999'000}}) {
    store.reads = 0;
    auto p = InclusionProof(store, i, n);
    ASSERT_TRUE(p.ok());
    EXPECT_LE(p->size(), 24u);
    worst = std::max(worst, store.reads);
  }
  EXPECT_LE(worst, 2 * 24);
  store.reads = 0;
  auto c = ConsistencyProof(store, 7'654'321, n);
  ASSERT_TRUE(c.ok());
  EXPECT_LE(store.reads, 2 * 24 + 2);
}

}  // namespace
}  // namespace phivault::audit
