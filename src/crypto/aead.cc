#include "crypto/aead.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <sodium.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

namespace phivault::crypto {
namespace {

// A failure inside OpenSSL for a well-formed call (allocation, provider not
// loaded) is an environment fault, not untrusted input: refusing to continue
// is safer than returning something unencrypted.
[[noreturn]] void Fatal(const char* what) {
  std::fprintf(stderr, "phivault: fatal: crypto: %s\n", what);
  std::abort();
}

// Fetched once: EVP_CIPHER_fetch walks the provider tables and takes a lock,
// which is measurable per page. The pointer is immutable and thread-safe.
const EVP_CIPHER* Aes256Gcm() {
  static EVP_CIPHER* const cipher = [] {
    EVP_CIPHER* c = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
    if (c == nullptr) Fatal("AES-256-GCM is not available from the OpenSSL default provider");
    return c;
  }();
  return cipher;
}

struct CtxDeleter {
  // Frees the context and wipes the key schedule it holds.
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
using CtxPtr = std::unique_ptr<EVP_CIPHER_CTX, CtxDeleter>;

// Contexts kept per key for reuse (each holds an expanded key schedule in
// ordinary heap, so few). A burst of more concurrent callers allocates,
// keys and frees the extra ones.
constexpr size_t kMaxIdleContexts = 4;

// EVP_*Update takes int lengths; feed larger inputs in chunks.
constexpr size_t kChunk = size_t{1} << 30;

// The key schedule is expanded once per cipher context, not per call (a
// 4 KiB database page seals about a fifth faster). Contexts are not
// thread-safe, so each call leases one from its key's pool.
class AesGcm final : public Aead {
 public:
  explicit AesGcm(SecureBytes key) : key_(std::move(key)) {
    pool_.reserve(kMaxIdleContexts);  // returning a context never allocates
    // Random 96-bit start; see the header for why this beats random nonces.
    uint8_t start[kNonceSize];
    randombytes_buf(start, sizeof start);
    uint32_t hi = 0;
    uint64_t lo = 0;
    for (int i = 0; i < 4; ++i) hi = (hi << 8) | start[i];
    for (int i = 4; i < 12; ++i) lo = (lo << 8) | start[i];
    start_hi_ = hi;
    start_lo_ = lo;
    SecureWipe(start, sizeof start);
  }

  std::string Seal(std::string_view plaintext, std::string_view aad) const override {
    std::string out(kNonceSize + plaintext.size() + kTagSize, '\0');
    auto* o = reinterpret_cast<uint8_t*>(out.data());
    if (!plaintext.empty()) std::memcpy(o + kNonceSize, plaintext.data(), plaintext.size());
    // Reuse the detached form: encrypt in place inside `out`, then move the
    // nonce to the front and keep the tag at the end.
    uint8_t trailer[kOverhead];
    Status s = SealInPlace(o + kNonceSize, plaintext.size(), aad, trailer);
    if (!s.ok()) Fatal("seal failed");
    std::memcpy(o, trailer, kNonceSize);
    std::memcpy(o + kNonceSize + plaintext.size(), trailer + kNonceSize, kTagSize);
    return out;
  }

  StatusOr<std::string> Open(std::string_view sealed, std::string_view aad) const override {
    if (sealed.size() < kOverhead) return DataLoss("sealed data is truncated");
    const size_t len = sealed.size() - kOverhead;
    std::string out(sealed.substr(kNonceSize, len));
    uint8_t trailer[kOverhead];
    std::memcpy(trailer, sealed.data(), kNonceSize);
    std::memcpy(trailer + kNonceSize, sealed.data() + kNonceSize + len, kTagSize);
    Status s = OpenInPlace(reinterpret_cast<uint8_t*>(out.data()), len, aad, trailer);
    if (!s.ok()) {
      // Unauthenticated plaintext must never escape, even in a moved-from string.
      SecureWipe(out.data(), out.size());
      return s;
    }
    return out;
  }

  Status SealInPlace(uint8_t* data, size_t len, std::string_view aad, uint8_t* trailer) const override {
    NextNonce(trailer);
    Lease lease(*this);
    EVP_CIPHER_CTX* ctx = lease.get();
    if (EVP_EncryptInit_ex2(ctx, nullptr, nullptr, trailer, nullptr) != 1) Fatal("encrypt init");
    int n = 0;
    if (!FeedAad(ctx, aad, /*encrypt=*/true)) Fatal("encrypt aad");
    for (size_t off = 0; off < len; off += kChunk) {
      const int c = static_cast<int>(std::min(kChunk, len - off));
      if (EVP_EncryptUpdate(ctx, data + off, &n, data + off, c) != 1 || n != c) Fatal("encrypt update");
    }
    if (EVP_EncryptFinal_ex(ctx, nullptr, &n) != 1) Fatal("encrypt final");
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, static_cast<int>(kTagSize), trailer + kNonceSize) != 1) {
      Fatal("get tag");
    }
    return Status::Ok();
  }

  Status OpenInPlace(uint8_t* data, size_t len, std::string_view aad, const uint8_t* trailer) const override {
    Lease lease(*this);
    EVP_CIPHER_CTX* ctx = lease.get();
    if (EVP_DecryptInit_ex2(ctx, nullptr, nullptr, trailer, nullptr) != 1) Fatal("decrypt init");
    if (!FeedAad(ctx, aad, /*encrypt=*/false)) Fatal("decrypt aad");
    int n = 0;
    for (size_t off = 0; off < len; off += kChunk) {
      const int c = static_cast<int>(std::min(kChunk, len - off));
      if (EVP_DecryptUpdate(ctx, data + off, &n, data + off, c) != 1 || n != c) Fatal("decrypt update");
    }
    // SECURITY: the tag must be set on every call, and a failure must never
    // be ignored. A reused context keeps the previous call's tag state, and
    // without this call DecryptFinal would accept unauthenticated data.
    // OpenSSL takes a non-const tag pointer but only reads it.
    uint8_t tag[kTagSize];
    std::memcpy(tag, trailer + kNonceSize, kTagSize);
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, static_cast<int>(kTagSize), tag) != 1) Fatal("set tag");
    if (EVP_DecryptFinal_ex(ctx, nullptr, &n) != 1) {
      return DataLoss("authentication failed: data was modified or sealed under another key or context");
    }
    return Status::Ok();
  }

 private:
  // A context keyed with key_ (the nonce is set per call), returned to the
  // pool when the call ends. Encryption and decryption share the schedule.
  class Lease {
   public:
    explicit Lease(const AesGcm& owner) : owner_(owner) {
      {
        std::lock_guard lock(owner_.pool_mu_);
        if (!owner_.pool_.empty()) {
          ctx_ = std::move(owner_.pool_.back());
          owner_.pool_.pop_back();
          return;
        }
      }
      ctx_.reset(EVP_CIPHER_CTX_new());
      if (!ctx_) Fatal("cannot allocate a cipher context");
      if (EVP_EncryptInit_ex2(ctx_.get(), Aes256Gcm(), owner_.key_.data(), nullptr, nullptr) != 1) Fatal("key init");
    }
    ~Lease() {
      std::lock_guard lock(owner_.pool_mu_);
      if (owner_.pool_.size() < kMaxIdleContexts) owner_.pool_.push_back(std::move(ctx_));
    }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    EVP_CIPHER_CTX* get() const { return ctx_.get(); }

   private:
    const AesGcm& owner_;
    CtxPtr ctx_;
  };

  static bool FeedAad(EVP_CIPHER_CTX* ctx, std::string_view aad, bool encrypt) {
    int n = 0;
    const auto* a = reinterpret_cast<const uint8_t*>(aad.data());
    for (size_t off = 0; off < aad.size(); off += kChunk) {
      const int c = static_cast<int>(std::min(kChunk, aad.size() - off));
      const int ok = encrypt ? EVP_EncryptUpdate(ctx, nullptr, &n, a + off, c)
                             : EVP_DecryptUpdate(ctx, nullptr, &n, a + off, c);
      if (ok != 1) return false;
    }
    return true;
  }

  // nonce = start + counter as a 96-bit big-endian integer. The counter is a
  // 64-bit atomic, so two concurrent seals never see the same value; 2^64
  // seals per instance cannot be reached.
  void NextNonce(uint8_t* nonce) const {
    const uint64_t n = counter_.fetch_add(1, std::memory_order_relaxed);
    const uint64_t lo = start_lo_ + n;
    const uint32_t hi = start_hi_ + (lo < start_lo_ ? 1u : 0u);
    for (int i = 0; i < 4; ++i) nonce[i] = static_cast<uint8_t>(hi >> (8 * (3 - i)));
    for (int i = 0; i < 8; ++i) nonce[4 + i] = static_cast<uint8_t>(lo >> (8 * (7 - i)));
  }

  SecureBytes key_;
  mutable std::mutex pool_mu_;
  mutable std::vector<CtxPtr> pool_;  // guarded by pool_mu_; freed (and wiped) with this object
  uint32_t start_hi_ = 0;
  uint64_t start_lo_ = 0;
  mutable std::atomic<uint64_t> counter_{0};
};

}  // namespace

StatusOr<std::unique_ptr<Aead>> Aead::New(const SecureBytes& key) {
  if (key.size() != kKeySize) return InvalidArgument("AES-256-GCM key must be 32 bytes");
  (void)Aes256Gcm();  // fail at construction, not at the first page write
  return std::unique_ptr<Aead>(new AesGcm(key.Clone()));
}

SecureBytes DeriveKeyWithSalt(const SecureBytes& ikm, std::string_view salt, std::string_view info, size_t size) {
  static EVP_KDF* const kdf = [] {
    EVP_KDF* k = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
    if (k == nullptr) Fatal("HKDF is not available from the OpenSSL default provider");
    return k;
  }();
  SecureBytes out(size);
  if (size == 0) return out;
  if (ikm.empty()) Fatal("HKDF called with an empty key");
  EVP_KDF_CTX* ctx = EVP_KDF_CTX_new(kdf);
  if (ctx == nullptr) Fatal("cannot allocate a KDF context");
  char digest[] = "SHA256";
  OSSL_PARAM params[5];
  size_t i = 0;
  params[i++] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0);
  // OpenSSL does not write through these pointers; the casts only satisfy its C API.
  params[i++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<uint8_t*>(ikm.data()), ikm.size());
  if (!info.empty()) {
    params[i++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, const_cast<char*>(info.data()), info.size());
  }
  // Without a salt RFC 5869 uses HashLen zero bytes.
  if (!salt.empty()) {
    params[i++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, const_cast<char*>(salt.data()), salt.size());
  }
  params[i++] = OSSL_PARAM_construct_end();
  const int ok = EVP_KDF_derive(ctx, out.data(), out.size(), params);
  EVP_KDF_CTX_free(ctx);  // clears its copy of the key
  if (ok != 1) Fatal("HKDF derivation failed (output longer than 255*32 bytes or info too long?)");
  return out;
}

SecureBytes DeriveKey(const SecureBytes& ikm, std::string_view info, size_t size) {
  return DeriveKeyWithSalt(ikm, {}, info, size);
}

}  // namespace phivault::crypto
