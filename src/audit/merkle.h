// RFC 6962 / RFC 9162 Merkle tree hashing for the tamper-evident audit log.
//
// Leaf hash = SHA-256(0x00 || data); interior node = SHA-256(0x01 || l || r);
// MTH of the empty tree = SHA-256(""). This file has three layers:
//   * reference functions that follow the RFC recursion literally over a span
//     of leaf hashes (O(n)); tests check the fast paths against them;
//   * proof verification (inclusion and consistency, the iterative algorithms
//     of RFC 9162 §2.1.3.2 and §2.1.4.2) over UNTRUSTED input: any proof,
//     hash length or size is accepted or rejected, never a crash;
//   * CompactRange (the O(log n) right border of a growing tree) and proof
//     generation over a HashStore of perfect-subtree hashes, so a proof in a
//     10M-entry log costs about 2*log2(n) store reads and no recomputation.
//
// Thread-safety: free functions are pure. CompactRange and MemoryHashStore are
// values: const methods may run concurrently, mutation needs external
// locking. HashStore implementations document their own rules.
#ifndef PHIVAULT_AUDIT_MERKLE_H_
#define PHIVAULT_AUDIT_MERKLE_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace phivault::audit {

inline constexpr size_t kHashSize = 32;
using Hash = std::array<uint8_t, kHashSize>;

inline std::string_view HashView(const Hash& h) { return {reinterpret_cast<const char*>(h.data()), h.size()}; }
inline std::string HashString(const Hash& h) { return std::string(HashView(h)); }
// 32 raw bytes -> Hash; nullopt for any other length.
std::optional<Hash> HashFromBytes(std::string_view bytes);

Hash Sha256(std::string_view data);
Hash HashLeaf(std::string_view data);
Hash HashChildren(const Hash& left, const Hash& right);
// MTH({}) = SHA-256 of the empty string.
Hash EmptyRoot();

// ---- Reference implementation (RFC 6962 §2.1, literal recursion, O(n)) ----
Hash ReferenceRoot(std::span<const Hash> leaf_hashes);
// PATH(index, D[n]) with n = leaf_hashes.size(). REQUIRES index < n.
std::vector<Hash> ReferenceInclusionProof(std::span<const Hash> leaf_hashes, uint64_t index);
// PROOF(size1, D[n]). REQUIRES 0 < size1 <= n.
std::vector<Hash> ReferenceConsistencyProof(std::span<const Hash> leaf_hashes, uint64_t size1);

// ---- Verification of untrusted proofs ----
// Proof elements, leaf hash and root must be exactly 32 bytes. InvalidArgument
// for malformed input, DataLoss when the proof does not lead to the root.
Status VerifyInclusion(uint64_t index, uint64_t size, std::string_view leaf_hash,
                       std::span<const std::string> proof, std::string_view root);
// Consistency between trees of size1 <= size2. size1 == 0 is rejected: every
// tree extends the empty one, so such a "proof" proves nothing and a caller
// asking for it has a bug. size1 == size2 requires an empty proof and equal
// roots.
Status VerifyConsistency(uint64_t size1, uint64_t size2, std::span<const std::string> proof,
                         std::string_view root1, std::string_view root2);

// ---- Stored trees ----
// Read access to perfect-subtree hashes: Node(level, i) is the hash of leaves
// [i << level, (i + 1) << level) and exists once the tree has that many
// leaves. Level 0 holds the leaf hashes. Errors are I/O errors.
class HashStore {
 public:
  virtual ~HashStore() = default;
  virtual StatusOr<Hash> Node(int level, uint64_t index) const = 0;
};

// MTH of the first `size` leaves: popcount(size) reads.
StatusOr<Hash> RootAt(const HashStore& store, uint64_t size);
// REQUIRES index < size (else InvalidArgument); about 2*log2(size) reads.
StatusOr<std::vector<Hash>> InclusionProof(const HashStore& store, uint64_t index, uint64_t size);
// REQUIRES 0 < size1 <= size2 (else InvalidArgument).
StatusOr<std::vector<Hash>> ConsistencyProof(const HashStore& store, uint64_t size1, uint64_t size2);

// A perfect-subtree node completed by an append.
struct TreeNode {
  int level;
  uint64_t index;
  Hash hash;
};

// The right border of a tree over leaves [0, size): one perfect-subtree hash
// per set bit of size, largest first. Appending is O(1) amortised, O(log n)
// worst case; Root() folds the border right to left as RFC 6962's MTH does.
class CompactRange {
 public:
  uint64_t size() const { return size_; }
  // Appends a leaf hash. When `completed` is non-null, every perfect subtree
  // finished by this append (the leaf itself at level 0, then parents) is
  // appended to it, which is exactly what a HashStore must persist.
  void Append(const Hash& leaf_hash, std::vector<TreeNode>* completed = nullptr);
  Hash Root() const;
  const std::vector<Hash>& border() const { return border_; }
  // Rebuilds the border for `size` leaves from stored nodes (popcount reads).
  static StatusOr<CompactRange> FromStore(const HashStore& store, uint64_t size);

 private:
  uint64_t size_ = 0;
  std::vector<Hash> border_;
};

// Every level in memory (64 bytes per leaf). For tests, benches and small
// trees; the audit log keeps its levels in files.
class MemoryHashStore : public HashStore {
 public:
  void Append(const Hash& leaf_hash);
  uint64_t size() const { return levels_.empty() ? 0 : levels_[0].size(); }
  void Reserve(uint64_t leaves);
  StatusOr<Hash> Node(int level, uint64_t index) const override;
  Hash Root() const { return range_.Root(); }

 private:
  std::vector<std::vector<Hash>> levels_;
  CompactRange range_;
  std::vector<TreeNode> scratch_;
};

}  // namespace phivault::audit

#endif  // PHIVAULT_AUDIT_MERKLE_H_
