// Test-only helpers for the auth component: fixed RS256/ES256/EdDSA test keys
// (NOT secrets: generated for tests, published in the repository), JWK export
// of their public halves, and a raw JWS signer that can produce malformed
// tokens (wrong alg, DER ECDSA signatures, ...) for attack tests and the fuzzer.
//
// Thread-safety: functions are reentrant. Lifetime: the EVP_PKEYs returned by
// the Load* functions are owned by the caller (TestKey frees them).
// For tests and fuzzers only: aborts on OpenSSL failures.
#ifndef PHIVAULT_AUTH_TESTING_TEST_KEYS_H_
#define PHIVAULT_AUTH_TESTING_TEST_KEYS_H_

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "auth/base64url.h"

namespace phivault::auth::testing {

inline constexpr char kTestRsaPem[] = R"(-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCHdtK2HjLlCYuW
z8wbKa7qUWoFVeI0+zWhoQMvT/hMOfoAuT0DRrxjFbHwpKvU2XeDIDRV7H7sw34m
itlOJ+x37uDQaH7aRbIlRXxNS3KTyPj3zVVwjx8Umg6tIDuqcREYIo/sowyR2FOA
+qPx0cVGCA+GqeKaOZ68V5Mf5jmDiMs10JawBqxZ+Td+ijm8SgzZp7z9C5axnZff
F49XWcBaadhULeANR9vuBp8udphxTbPLgCZtmqdTegNsHyysUYl7+O3EuF0MWjko
cDaNMRQDx9w8u8YL7P1lpNK4wOPcPX117sN3dTvpiwlPm3fkM7yxJ/74VH7U01SL
vIcVQeHRAgMBAAECggEACkWEQghAK7BxmS81zB7OWI4bz+kXNz/lF9Wxpstq3xIh
AXUKSflPHOREPc7+syuvguMqP2mopiNHVCeAcAtZmYPPdX4MQFi7OABGJfDr8IYd
+rbjHPR9PX6rpjekzo5hkXGYIDACKqeQjV3JQ0jOAJAT5/jHFJKnP/i+pdM7K9yo
mOBptpGH/PO5GU6ysT2eJg14GA1Y1+moGfLjfFoIOHrMAQGdUcClgR73zi800B2E
coOoizJK9YcPBd5AXrvp8lLNXO1qUN7RxBx0JadXLyrgcCvES/IvU6zRfvBlGQ1l
KoqwBG2sxnlHMJOmUbg33TuyRJZ8sSIzW2Apog2gwQKBgQC60e+67NLw9jGhTxUL
mdqOq6DS2X23uxsu4YPXE2HdZRxO6IWcMCLAqKNZtx0WDLNywzG3qVbTG/nDnYrS
2TZCn21HmmyzIojz3KV0sQBXXE3GYfMJhs8U9UnWukRycvd8e9IpAGv95Leidt/e
Z3lsUk/hjUx9DPWbItJuZUyYfQKBgQC5oHpPsQnoHXVC84DtBYB9gohrDnYgoeT6
Atluzvu0Hvp32LgUtTRkvqqXJT/wvaO0OHOBByiEerYSfmx3GocDXQWnsLZOcMyr
jw+AJ5FE3t7e9Az89s4Ps4ZVtoqFqxXgbBKUmnXpzL1EaDaKB9PaW8agDEWN2uGL
prCNeuaC5QKBgDEQieGR6SSXxBkVZ/WQBrKJqMc3j6j9XvpFCBcoY/99Wp3uu4h1
q+rlX2FkkiMEWuy9DwWpV8BCDKqvaZJOsc11iYHQsNOrMkS5okqvYeOPvm1ntCjA
WwqqESZv7SIRx6XN7zgNgE9CDmiAx/LlQiKMy6X1Mi11hduknZeYyzERAoGAdcEN
lhwysqJtTql18eX5mqUBsRgda5oHzWmdUSPQnHTCYuCB9fD1aatiQDuLEkba4Gqn
KwTFeTT250h3uh6D42hRPA1nuN7plzNLm/p9tvjC3SBoVNij42X5I8qGmUDswc8N
AmPxxPzyW8DYSDuq8uwhVkoynUhqp9J4UWfTbtkCgYEAoVeBf6DDKXfeb47p5b8j
zxVG2aQgQJtkOOJQRlyKAZpOC9eyLAC/yKFpCfaHpPwD7tjH4+H4OG67KIDHv8tk
rF/hRIeKYFBmAtBzwTtZ2gp3kEeq2sVj709vuV7H9ATQU5eBvo7WuHU+nBP2O7lY
k5IvQ4PcF6oTJ0zqVLTurRY=
-----END PRIVATE KEY-----
)";
inline constexpr char kTestEcPem[] = R"(-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgGh6SyuxOi0b5emqu
3oppIQGYVXWYJWJvJyQ9u9TKNDyhRANCAARfS4lsO8xN47+8OXrWaUFywpLQo3et
i4nqWuTKzqlBjdJFOlZKhD0nDsngO0eZRxbEQ+Ph7iPnHNtPs9SXaMUa
-----END PRIVATE KEY-----
)";
// The Ed25519 test key is the seed 0x01 0x02 ... 0x20.
inline std::string TestEd25519Seed() {
  std::string s(32, '\0');
  for (int i = 0; i < 32; ++i) s[static_cast<size_t>(i)] = static_cast<char>(i + 1);
  return s;
}

struct PkeyDeleter {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using TestKey = std::unique_ptr<EVP_PKEY, PkeyDeleter>;

inline TestKey LoadPem(const char* pem) {
  BIO* bio = BIO_new_mem_buf(pem, -1);
  EVP_PKEY* k = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (k == nullptr) std::abort();
  return TestKey(k);
}
inline TestKey TestRsaKey() { return LoadPem(kTestRsaPem); }
inline TestKey TestEcKey() { return LoadPem(kTestEcPem); }
inline TestKey TestEdKey() {
  std::string seed = TestEd25519Seed();
  EVP_PKEY* k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr,
                                             reinterpret_cast<const unsigned char*>(seed.data()), seed.size());
  if (k == nullptr) std::abort();
  return TestKey(k);
}
// Fresh keys ("rsa" with bits, "ec", "ed") for wrong-key tests.
inline TestKey GenerateKey(std::string_view type, size_t rsa_bits = 2048) {
  EVP_PKEY* k = nullptr;
  if (type == "rsa") k = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", rsa_bits);
  if (type == "ec") k = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  if (type == "ed") k = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  if (k == nullptr) std::abort();
  return TestKey(k);
}

inline std::string BnParam(EVP_PKEY* k, const char* name) {
  BIGNUM* bn = nullptr;
  if (EVP_PKEY_get_bn_param(k, name, &bn) != 1) std::abort();
  std::string out(static_cast<size_t>(BN_num_bytes(bn)), '\0');
  BN_bn2bin(bn, reinterpret_cast<unsigned char*>(out.data()));
  BN_free(bn);
  return out;
}

// The public JWK of `k` as JSON, with `extra` (e.g. ",\"alg\":\"RS256\"") appended inside.
inline std::string PublicJwk(EVP_PKEY* k, std::string_view kid, std::string_view extra = ",\"use\":\"sig\"") {
  std::string j;
  switch (EVP_PKEY_get_base_id(k)) {
    case EVP_PKEY_RSA:
      j = "{\"kty\":\"RSA\",\"n\":\"" + Base64UrlEncode(BnParam(k, OSSL_PKEY_PARAM_RSA_N)) + "\",\"e\":\"" +
          Base64UrlEncode(BnParam(k, OSSL_PKEY_PARAM_RSA_E)) + "\"";
      break;
    case EVP_PKEY_EC: {
      std::string x = BnParam(k, OSSL_PKEY_PARAM_EC_PUB_X), y = BnParam(k, OSSL_PKEY_PARAM_EC_PUB_Y);
      x.insert(0, 32 - x.size(), '\0');
      y.insert(0, 32 - y.size(), '\0');
      j = "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"" + Base64UrlEncode(x) + "\",\"y\":\"" + Base64UrlEncode(y) + "\"";
      break;
    }
    case EVP_PKEY_ED25519: {
      unsigned char pub[32];
      size_t len = sizeof pub;
      if (EVP_PKEY_get_raw_public_key(k, pub, &len) != 1) std::abort();
      j = "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"" +
          Base64UrlEncode(std::string_view(reinterpret_cast<const char*>(pub), len)) + "\"";
      break;
    }
    default:
      std::abort();
  }
  if (!kid.empty()) j += ",\"kid\":\"" + std::string(kid) + "\"";
  j += extra;
  j += "}";
  return j;
}

// The fixed three-key test JWKS: kids "rsa-1", "ec-1", "ed-1".
inline std::string TestJwks() {
  TestKey r = TestRsaKey(), e = TestEcKey(), d = TestEdKey();
  return "{\"keys\":[" + PublicJwk(r.get(), "rsa-1") + "," + PublicJwk(e.get(), "ec-1") + "," +
         PublicJwk(d.get(), "ed-1") + "]}";
}

// Signs base64url(header).base64url(payload) with `k` using the algorithm its
// type implies (RSA: PKCS#1 v1.5 SHA-256; EC: ECDSA SHA-256, raw r||s unless
// `der`; Ed25519: EdDSA), whatever `header` says.
inline std::string SignRaw(std::string_view header, std::string_view payload, EVP_PKEY* k, bool der = false) {
  std::string input = Base64UrlEncode(header) + "." + Base64UrlEncode(payload);
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  int type = EVP_PKEY_get_base_id(k);
  const EVP_MD* digest = type == EVP_PKEY_ED25519 ? nullptr : EVP_sha256();
  size_t len = 0;
  if (EVP_DigestSignInit(md, nullptr, digest, nullptr, k) != 1 ||
      EVP_DigestSign(md, nullptr, &len, reinterpret_cast<const unsigned char*>(input.data()), input.size()) != 1) {
    std::abort();
  }
  std::string sig(len, '\0');
  if (EVP_DigestSign(md, reinterpret_cast<unsigned char*>(sig.data()), &len,
                     reinterpret_cast<const unsigned char*>(input.data()), input.size()) != 1) {
    std::abort();
  }
  sig.resize(len);
  EVP_MD_CTX_free(md);
  if (type == EVP_PKEY_EC && !der) {
    const unsigned char* p = reinterpret_cast<const unsigned char*>(sig.data());
    ECDSA_SIG* es = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size()));
    if (es == nullptr) std::abort();
    std::string raw(64, '\0');
    BN_bn2binpad(ECDSA_SIG_get0_r(es), reinterpret_cast<unsigned char*>(raw.data()), 32);
    BN_bn2binpad(ECDSA_SIG_get0_s(es), reinterpret_cast<unsigned char*>(raw.data()) + 32, 32);
    ECDSA_SIG_free(es);
    sig = raw;
  }
  return input + "." + Base64UrlEncode(sig);
}

}  // namespace phivault::auth::testing

#endif  // PHIVAULT_AUTH_TESTING_TEST_KEYS_H_
