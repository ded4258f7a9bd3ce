#include "crypto/aead.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace phivault::crypto {
namespace {

std::unique_ptr<Aead> MakeAead(const SecureBytes& key) {
  auto a = Aead::New(key);
  EXPECT_TRUE(a.ok()) << a.status().ToString();
  return std::move(a).value();
}

std::string FromHex(std::string_view hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) out += static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16));
  return out;
}

TEST(AeadTest, RejectsWrongKeySize) {
  EXPECT_EQ(Aead::New(SecureBytes::Random(16)).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Aead::New(SecureBytes()).status().code(), StatusCode::kInvalidArgument);
}

TEST(AeadTest, RoundTrip) {
  auto key = SecureBytes::Random(32);
  auto aead = MakeAead(key);
  for (size_t len : {0u, 1u, 15u, 16u, 17u, 4064u, 100000u}) {
    std::string pt(len, '\0');
    for (size_t i = 0; i < len; ++i) pt[i] = static_cast<char>(i * 7 + 3);
    std::string sealed = aead->Seal(pt, "aad");
    ASSERT_EQ(sealed.size(), len + Aead::kOverhead);
    if (len >= 16) {
      EXPECT_EQ(sealed.find(pt.substr(0, 16)), std::string::npos);
    }
    auto opened = aead->Open(sealed, "aad");
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    EXPECT_EQ(*opened, pt);
  }
}

TEST(AeadTest, AnotherInstanceWithSameKeyOpens) {
  auto key = SecureBytes::Random(32);
  auto a = MakeAead(key);
  auto b = MakeAead(key);
  auto opened = b->Open(a->Seal("hello", "ctx"), "ctx");
  ASSERT_TRUE(opened.ok());
  EXPECT_EQ(*opened, "hello");
}

TEST(AeadTest, EveryTamperedByteFails) {
  auto aead = MakeAead(SecureBytes::Random(32));
  const std::string aad = "record/42";
  const std::string sealed = aead->Seal("a small secret record body", aad);
  for (size_t i = 0; i < sealed.size(); ++i) {
    for (uint8_t bit : {0x01, 0x80}) {
      std::string t = sealed;
      t[i] = static_cast<char>(t[i] ^ bit);
      EXPECT_EQ(aead->Open(t, aad).status().code(), StatusCode::kDataLoss) << "byte " << i;
    }
  }
  for (size_t i = 0; i < aad.size(); ++i) {
    std::string a = aad;
    a[i] = static_cast<char>(a[i] ^ 1);
    EXPECT_EQ(aead->Open(sealed, a).status().code(), StatusCode::kDataLoss);
  }
  EXPECT_EQ(aead->Open(sealed, aad + "x").status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(aead->Open(sealed, "").status().code(), StatusCode::kDataLoss);
  // Truncation and extension, including below the minimum length.
  for (size_t n = 0; n < sealed.size(); ++n) {
    EXPECT_EQ(aead->Open(sealed.substr(0, n), aad).status().code(), StatusCode::kDataLoss);
  }
  EXPECT_EQ(aead->Open(sealed + "x", aad).status().code(), StatusCode::kDataLoss);
}

TEST(AeadTest, WrongKeyFails) {
  auto a = MakeAead(SecureBytes::Random(32));
  auto b = MakeAead(SecureBytes::Random(32));
  EXPECT_EQ(b->Open(a->Seal("x", ""), "").status().code(), StatusCode::kDataLoss);
}

TEST(AeadTest, NoncesAreUniqueAcrossThreads) {
  auto aead = MakeAead(SecureBytes::Random(32));
  constexpr int kThreads = 4;
  constexpr int kPerThread = 20000;
  std::vector<std::vector<std::string>> nonces(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) nonces[t].push_back(aead->Seal("", "").substr(0, Aead::kNonceSize));
    });
  }
  for (auto& th : threads) th.join();
  std::set<std::string> all;
  for (auto& v : nonces) all.insert(v.begin(), v.end());
  EXPECT_EQ(all.size(), static_cast<size_t>(kThreads * kPerThread));
  // Two instances with the same key start at independent random points.
  auto other = MakeAead(SecureBytes::Random(32));
  EXPECT_EQ(all.count(other->Seal("", "").substr(0, Aead::kNonceSize)), 0u);
}

// The McGrew-Viega GCM specification's Test Case 16 (AES-256, 96-bit IV,
// with AAD), in the sealed form nonce || ciphertext || tag.
TEST(AeadTest, OpensTheGcmSpecificationVector) {
  auto aead = MakeAead(SecureBytes::From(FromHex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308")));
  const std::string sealed = FromHex(
      "cafebabefacedbaddecaf888"
      "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0a"
      "bcc9f662"
      "76fc6ece0f4e1768cddf8853bb2d551b");
  const std::string aad = FromHex("feedfacedeadbeeffeedfacedeadbeefabaddad2");
  auto opened = aead->Open(sealed, aad);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  EXPECT_EQ(*opened, FromHex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e24"
                             "49a6b525b16aedf5aa0de657ba637b39"));
}

// One context, reused call after call on one thread: a failed open must not
// leave state (tag, AAD, direction) that lets a later call pass or fail
// wrongly.
TEST(AeadTest, ReusedContextCarriesNothingBetweenCalls) {
  auto aead = MakeAead(SecureBytes::Random(32));
  const std::string a = aead->Seal("first record", "aad-a");
  const std::string b = aead->Seal("second record", "aad-b");
  for (int i = 0; i < 3; ++i) {
    EXPECT_FALSE(aead->Open(a, "aad-b").ok());  // wrong aad
    auto good = aead->Open(a, "aad-a");
    ASSERT_TRUE(good.ok());
    EXPECT_EQ(*good, "first record");
    // b's body under a's tag, and a's body under b's tag: both refused.
    std::string mixed = b.substr(0, b.size() - Aead::kTagSize) + a.substr(a.size() - Aead::kTagSize);
    EXPECT_FALSE(aead->Open(mixed, "aad-b").ok());
    const std::string c = aead->Seal("third record", "aad-c");
    auto opened = aead->Open(c, "aad-c");
    ASSERT_TRUE(opened.ok());
    EXPECT_EQ(*opened, "third record");
    EXPECT_FALSE(aead->Open(c.substr(0, c.size() - 1), "aad-c").ok());  // tag cut short
  }
}

// Each key keeps its expanded schedule in reusable contexts: interleaving
// keys, directions, failures and threads must never let one call run under
// another call's key or leftover state.
TEST(AeadTest, InterleavedKeysDirectionsAndFailures) {
  auto k1 = SecureBytes::Random(32);
  auto k2 = SecureBytes::Random(32);
  auto a1 = MakeAead(k1);
  auto a2 = MakeAead(k2);
  auto a1_again = MakeAead(k1);
  constexpr int kThreads = 4;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) {
        const std::string pt = "record " + std::to_string(t) + "/" + std::to_string(i);
        const std::string s1 = a1->Seal(pt, "aad1");
        const std::string s2 = a2->Seal(pt, "aad2");
        // A failed open (wrong key, then wrong aad) leaves its context usable.
        if (a2->Open(s1, "aad1").ok() || a1->Open(s1, "aad2").ok()) ++failures;
        auto o1 = a1_again->Open(s1, "aad1");
        auto o2 = a2->Open(s2, "aad2");
        if (!o1.ok() || *o1 != pt || !o2.ok() || *o2 != pt) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  // A key made after another is destroyed does not inherit its schedule.
  const std::string sealed = a2->Seal("x", "");
  a2.reset();
  auto a3 = MakeAead(SecureBytes::Random(32));
  EXPECT_FALSE(a3->Open(sealed, "").ok());
  EXPECT_TRUE(MakeAead(k2)->Open(sealed, "").ok());
}

TEST(AeadTest, InPlaceRoundTripAndTamper) {
  auto aead = MakeAead(SecureBytes::Random(32));
  const std::string_view aad1("db\x00\x00\x00\x00\x00\x00\x00\x01", 10);
  const std::string_view aad2("db\x00\x00\x00\x00\x00\x00\x00\x02", 10);
  std::string page(4064, 'P');
  std::string buf = page;
  uint8_t trailer[Aead::kOverhead];
  auto* d = reinterpret_cast<uint8_t*>(buf.data());
  ASSERT_TRUE(aead->SealInPlace(d, buf.size(), aad1, trailer).ok());
  EXPECT_NE(buf, page);
  std::string sealed = buf;
  ASSERT_TRUE(aead->OpenInPlace(d, buf.size(), aad1, trailer).ok());
  EXPECT_EQ(buf, page);

  // The detached form interoperates with Seal/Open (same wire layout).
  std::string joined(reinterpret_cast<char*>(trailer), Aead::kNonceSize);
  joined += sealed;
  joined.append(reinterpret_cast<char*>(trailer) + Aead::kNonceSize, Aead::kTagSize);
  auto opened = aead->Open(joined, aad1);
  ASSERT_TRUE(opened.ok());
  EXPECT_EQ(*opened, page);

  for (size_t i : {size_t{0}, size_t{100}, sealed.size() - 1}) {
    buf = sealed;
    buf[i] ^= 0x20;
    EXPECT_EQ(aead->OpenInPlace(d, buf.size(), aad1, trailer).code(),
              StatusCode::kDataLoss);
  }
  for (size_t i = 0; i < Aead::kOverhead; ++i) {
    buf = sealed;
    uint8_t t2[Aead::kOverhead];
    std::memcpy(t2, trailer, sizeof t2);
    t2[i] ^= 1;
    EXPECT_EQ(aead->OpenInPlace(d, buf.size(), aad1, t2).code(),
              StatusCode::kDataLoss);
  }
  buf = sealed;
  // Another page number (position) must fail: pages cannot be moved.
  EXPECT_EQ(aead->OpenInPlace(d, buf.size(), aad2, trailer).code(),
            StatusCode::kDataLoss);
}

TEST(AeadTest, SealTwiceGivesDifferentCiphertexts) {
  auto aead = MakeAead(SecureBytes::Random(32));
  EXPECT_NE(aead->Seal("same", "a"), aead->Seal("same", "a"));
}

// RFC 5869 appendix A, test case 1 (SHA-256, with salt and info).
TEST(HkdfTest, Rfc5869Case1) {
  auto ikm = SecureBytes::From(FromHex("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b"));
  auto okm = DeriveKeyWithSalt(ikm, FromHex("000102030405060708090a0b0c"), FromHex("f0f1f2f3f4f5f6f7f8f9"), 42);
  EXPECT_EQ(okm.view(), FromHex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"));
}

// RFC 5869 appendix A, test case 3 (no salt, no info): the DeriveKey form.
TEST(HkdfTest, Rfc5869Case3NoSalt) {
  auto ikm = SecureBytes::From(FromHex("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b"));
  auto okm = DeriveKey(ikm, "", 42);
  EXPECT_EQ(okm.view(), FromHex("8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"));
}

TEST(HkdfTest, InfoSeparatesPurposes) {
  auto ikm = SecureBytes::Random(32);
  EXPECT_FALSE(DeriveKey(ikm, "a").Equals(DeriveKey(ikm, "b")));
  EXPECT_TRUE(DeriveKey(ikm, "a").Equals(DeriveKey(ikm, "a")));
  EXPECT_EQ(DeriveKey(ikm, "a").size(), 32u);
}

}  // namespace
}  // namespace phivault::crypto
