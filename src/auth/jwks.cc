#include "auth/jwks.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <fstream>
#include <iterator>
#include <set>
#include <utility>

#include "auth/base64url.h"
#include "fhir/json_reader.h"

namespace phivault::auth {
namespace {

struct BnFree {
  void operator()(BIGNUM* b) const { BN_free(b); }
};
using BnPtr = std::unique_ptr<BIGNUM, BnFree>;
struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
struct PkeyCtxFree {
  void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
};
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree>;
struct MdCtxFree {
  void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
};
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;
struct ParamBldFree {
  void operator()(OSSL_PARAM_BLD* p) const { OSSL_PARAM_BLD_free(p); }
};
struct ParamFree {
  void operator()(OSSL_PARAM* p) const { OSSL_PARAM_free(p); }
};
struct EcdsaSigFree {
  void operator()(ECDSA_SIG* p) const { ECDSA_SIG_free(p); }
};

// Clears OpenSSL's thread-local error queue when leaving a scope, so a
// rejected key or signature never leaves errors for unrelated code to find.
struct ErrClear {
  ~ErrClear() { ERR_clear_error(); }
};

Status Bad(std::string_view kid, std::string_view what) {
  std::string m = "invalid JWKS: key";
  if (!kid.empty() && kid.size() <= 64 && IsBase64UrlAlphabet(kid)) {
    m += " '";
    m += kid;
    m += "'";
  }
  m += ": ";
  m += what;
  return InvalidArgument(std::move(m));
}

// A required base64url string member, decoded.
StatusOr<std::string> B64Member(const boost::json::object& jwk, std::string_view name, std::string_view kid) {
  const boost::json::value* v = jwk.if_contains(name);
  if (v == nullptr) return Bad(kid, std::string("missing \"") + std::string(name) + "\"");
  const boost::json::string* s = v->if_string();
  if (s == nullptr) return Bad(kid, std::string("\"") + std::string(name) + "\" is not a string");
  auto d = Base64UrlDecode(std::string_view(s->data(), s->size()));
  if (!d.ok()) return Bad(kid, std::string("\"") + std::string(name) + "\" is not canonical base64url");
  return std::move(d).value();
}

PkeyPtr FromData(const char* type, OSSL_PARAM* params) {
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  if (!ctx || EVP_PKEY_fromdata_init(ctx.get()) <= 0) return nullptr;
  EVP_PKEY* pkey = nullptr;
  if (EVP_PKEY_fromdata(ctx.get(), &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0) return nullptr;
  return PkeyPtr(pkey);
}

StatusOr<PkeyPtr> BuildRsa(const boost::json::object& jwk, std::string_view kid, const JwksParseOptions& opt, int* bits) {
  PV_ASSIGN_OR_RETURN(std::string n, B64Member(jwk, "n", kid));
  PV_ASSIGN_OR_RETURN(std::string e, B64Member(jwk, "e", kid));
  // Bound the work before building numbers (max_rsa_bits/8 plus a leading zero).
  if (n.size() > static_cast<size_t>(opt.max_rsa_bits / 8 + 1)) return Bad(kid, "RSA modulus too large");
  if (e.empty() || e.size() > 8) return Bad(kid, "RSA exponent out of range");
  BnPtr bn_n(BN_bin2bn(reinterpret_cast<const unsigned char*>(n.data()), static_cast<int>(n.size()), nullptr));
  BnPtr bn_e(BN_bin2bn(reinterpret_cast<const unsigned char*>(e.data()), static_cast<int>(e.size()), nullptr));
  if (!bn_n || !bn_e) return Internal("JWKS: out of memory building an RSA key");
  int nbits = BN_num_bits(bn_n.get());
  if (nbits < opt.min_rsa_bits) return Bad(kid, "RSA key shorter than the minimum (2048 bits)");
  if (nbits > opt.max_rsa_bits) return Bad(kid, "RSA modulus too large");
  if (!BN_is_odd(bn_n.get())) return Bad(kid, "RSA modulus is even");
  if (!BN_is_odd(bn_e.get()) || BN_num_bits(bn_e.get()) < 2 || BN_cmp(bn_e.get(), bn_n.get()) >= 0) {
    return Bad(kid, "RSA exponent out of range");
  }
  std::unique_ptr<OSSL_PARAM_BLD, ParamBldFree> bld(OSSL_PARAM_BLD_new());
  if (!bld || !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) ||
      !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get())) {
    return Internal("JWKS: cannot build RSA parameters");
  }
  std::unique_ptr<OSSL_PARAM, ParamFree> params(OSSL_PARAM_BLD_to_param(bld.get()));
  if (!params) return Internal("JWKS: cannot build RSA parameters");
  PkeyPtr pkey = FromData("RSA", params.get());
  if (!pkey) return Bad(kid, "OpenSSL rejected the RSA key");
  *bits = nbits;
  return pkey;
}

StatusOr<PkeyPtr> BuildP256(const boost::json::object& jwk, std::string_view kid) {
  PV_ASSIGN_OR_RETURN(std::string x, B64Member(jwk, "x", kid));
  PV_ASSIGN_OR_RETURN(std::string y, B64Member(jwk, "y", kid));
  if (x.size() != 32 || y.size() != 32) return Bad(kid, "P-256 coordinates must be 32 bytes");
  std::string point;
  point.reserve(65);
  point.push_back('\x04');
  point += x;
  point += y;
  char group[] = "P-256";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0),
      OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size()),
      OSSL_PARAM_construct_end(),
  };
  PkeyPtr pkey = FromData("EC", params);
  if (!pkey) return Bad(kid, "P-256 point is invalid");
  PkeyCtxPtr check(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey.get(), nullptr));
  if (!check || EVP_PKEY_public_check(check.get()) != 1) return Bad(kid, "P-256 point is not on the curve");
  return pkey;
}

StatusOr<PkeyPtr> BuildEd25519(const boost::json::object& jwk, std::string_view kid) {
  PV_ASSIGN_OR_RETURN(std::string x, B64Member(jwk, "x", kid));
  if (x.size() != 32) return Bad(kid, "Ed25519 public key must be 32 bytes");
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, x.data(), x.size()),
      OSSL_PARAM_construct_end(),
  };
  PkeyPtr pkey = FromData("ED25519", params);
  if (!pkey) return Bad(kid, "OpenSSL rejected the Ed25519 key");
  return pkey;
}

std::string_view StringMember(const boost::json::object& o, std::string_view name, bool* present, bool* is_string) {
  const boost::json::value* v = o.if_contains(name);
  *present = v != nullptr;
  *is_string = false;
  if (v == nullptr) return {};
  const boost::json::string* s = v->if_string();
  if (s == nullptr) return {};
  *is_string = true;
  return {s->data(), s->size()};
}

bool ValidKid(std::string_view kid) {
  if (kid.empty() || kid.size() > 256) return false;
  for (char c : kid) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return false;
  }
  return true;
}

}  // namespace

std::string_view JwsAlgorithmName(JwsAlgorithm alg) {
  switch (alg) {
    case JwsAlgorithm::kRS256:
      return "RS256";
    case JwsAlgorithm::kES256:
      return "ES256";
    case JwsAlgorithm::kEdDSA:
      return "EdDSA";
  }
  return "?";
}

std::optional<JwsAlgorithm> ParseJwsAlgorithm(std::string_view name) {
  if (name == "RS256") return JwsAlgorithm::kRS256;
  if (name == "ES256") return JwsAlgorithm::kES256;
  if (name == "EdDSA") return JwsAlgorithm::kEdDSA;
  return std::nullopt;
}

VerificationKey::VerificationKey(std::string kid, KeyType type, std::string use, int bits, evp_pkey_st* pkey)
    : kid_(std::move(kid)), type_(type), use_(std::move(use)), bits_(bits), pkey_(pkey) {}

VerificationKey::~VerificationKey() { EVP_PKEY_free(pkey_); }

JwsAlgorithm VerificationKey::algorithm() const {
  switch (type_) {
    case KeyType::kRsa:
      return JwsAlgorithm::kRS256;
    case KeyType::kEcP256:
      return JwsAlgorithm::kES256;
    case KeyType::kEd25519:
      return JwsAlgorithm::kEdDSA;
  }
  return JwsAlgorithm::kEdDSA;
}

bool VerificationKey::Verify(std::string_view signing_input, std::string_view signature) const {
  ErrClear clear;
  if (pkey_ == nullptr) return false;
  MdCtxPtr md(EVP_MD_CTX_new());
  if (!md) return false;
  const auto* in = reinterpret_cast<const unsigned char*>(signing_input.data());
  switch (type_) {
    case KeyType::kRsa: {
      if (signature.size() != static_cast<size_t>(EVP_PKEY_get_size(pkey_))) return false;
      EVP_PKEY_CTX* pctx = nullptr;
      if (EVP_DigestVerifyInit(md.get(), &pctx, EVP_sha256(), nullptr, pkey_) != 1) return false;
      if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) <= 0) return false;
      return EVP_DigestVerify(md.get(), reinterpret_cast<const unsigned char*>(signature.data()), signature.size(), in,
                              signing_input.size()) == 1;
    }
    case KeyType::kEcP256: {
      // JOSE carries r||s as two 32-byte big-endian integers (RFC 7518 3.4);
      // OpenSSL wants a DER ECDSA-Sig-Value. A DER signature is rejected by length.
      if (signature.size() != 64) return false;
      const auto* s = reinterpret_cast<const unsigned char*>(signature.data());
      std::unique_ptr<ECDSA_SIG, EcdsaSigFree> sig(ECDSA_SIG_new());
      BIGNUM* r = BN_bin2bn(s, 32, nullptr);
      BIGNUM* ss = BN_bin2bn(s + 32, 32, nullptr);
      if (!sig || r == nullptr || ss == nullptr || ECDSA_SIG_set0(sig.get(), r, ss) != 1) {
        BN_free(r);
        BN_free(ss);
        return false;
      }
      unsigned char* der = nullptr;
      int der_len = i2d_ECDSA_SIG(sig.get(), &der);
      if (der_len <= 0) return false;
      bool ok = EVP_DigestVerifyInit(md.get(), nullptr, EVP_sha256(), nullptr, pkey_) == 1 &&
                EVP_DigestVerify(md.get(), der, static_cast<size_t>(der_len), in, signing_input.size()) == 1;
      OPENSSL_free(der);
      return ok;
    }
    case KeyType::kEd25519: {
      if (signature.size() != 64) return false;
      return EVP_DigestVerifyInit(md.get(), nullptr, nullptr, nullptr, pkey_) == 1 &&
             EVP_DigestVerify(md.get(), reinterpret_cast<const unsigned char*>(signature.data()), signature.size(), in,
                              signing_input.size()) == 1;
    }
  }
  return false;
}

StatusOr<std::shared_ptr<const KeySet>> KeySet::Parse(std::string_view json, const JwksParseOptions& options) {
  ErrClear clear;
  if (json.size() > options.max_bytes) return InvalidArgument("invalid JWKS: document too large");
  fhir::ParseLimits limits;
  limits.max_bytes = options.max_bytes;
  limits.max_depth = 8;
  auto parsed = fhir::ParseJson(json, limits);
  if (!parsed.ok()) return InvalidArgument("invalid JWKS: " + parsed.status().message());
  const boost::json::object* top = parsed->if_object();
  if (top == nullptr) return InvalidArgument("invalid JWKS: not a JSON object");
  const boost::json::value* keys_v = top->if_contains("keys");
  const boost::json::array* keys = keys_v ? keys_v->if_array() : nullptr;
  if (keys == nullptr) return InvalidArgument("invalid JWKS: \"keys\" must be an array");
  if (keys->size() > options.max_keys) return InvalidArgument("invalid JWKS: too many keys");

  std::shared_ptr<KeySet> set(new KeySet());
  std::set<std::string, std::less<>> kids;
  size_t index = 0;
  for (const boost::json::value& kv : *keys) {
    ++index;
    const boost::json::object* jwk = kv.if_object();
    if (jwk == nullptr) return InvalidArgument("invalid JWKS: a key is not a JSON object");
    bool present = false, is_string = false;
    std::string_view kid = StringMember(*jwk, "kid", &present, &is_string);
    if (present && (!is_string || !ValidKid(kid))) return Bad({}, "\"kid\" must be a non-empty printable string");
    std::string label = kid.empty() ? "#" + std::to_string(index) : std::string(kid);

    std::string_view kty = StringMember(*jwk, "kty", &present, &is_string);
    if (!is_string) return Bad(kid, "missing or non-string \"kty\"");
    // Private or symmetric key material must never be published: refuse the set.
    if (kty == "oct") return Bad(kid, "symmetric (\"oct\") keys are not accepted");
    for (const char* priv : {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}) {
      if (jwk->if_contains(priv) != nullptr) return Bad(kid, "contains private key material");
    }

    std::string_view use = StringMember(*jwk, "use", &present, &is_string);
    if (present && !is_string) return Bad(kid, "\"use\" is not a string");
    if (present && use != "sig") {
      set->skipped_.push_back(label + ": use is not \"sig\"");
      continue;
    }
    if (const boost::json::value* ops = jwk->if_contains("key_ops")) {
      const boost::json::array* arr = ops->if_array();
      if (arr == nullptr) return Bad(kid, "\"key_ops\" is not an array");
      bool verify = false;
      for (const auto& op : *arr) {
        const boost::json::string* s = op.if_string();
        if (s != nullptr && *s == "verify") verify = true;
      }
      if (!verify) {
        set->skipped_.push_back(label + ": key_ops lacks \"verify\"");
        continue;
      }
    }

    std::optional<KeyType> type;
    std::string_view crv = StringMember(*jwk, "crv", &present, &is_string);
    if (present && !is_string) return Bad(kid, "\"crv\" is not a string");
    if (kty == "RSA") {
      type = KeyType::kRsa;
    } else if (kty == "EC") {
      if (crv == "P-256") {
        type = KeyType::kEcP256;
      } else if (!present) {
        return Bad(kid, "EC key without \"crv\"");
      }
    } else if (kty == "OKP") {
      if (crv == "Ed25519") {
        type = KeyType::kEd25519;
      } else if (!present) {
        return Bad(kid, "OKP key without \"crv\"");
      }
    } else {
      set->skipped_.push_back(label + ": unsupported kty");
      continue;
    }
    if (!type) {
      set->skipped_.push_back(label + ": unsupported curve");
      continue;
    }
    JwsAlgorithm key_alg = *type == KeyType::kRsa     ? JwsAlgorithm::kRS256
                           : *type == KeyType::kEcP256 ? JwsAlgorithm::kES256
                                                       : JwsAlgorithm::kEdDSA;
    std::string_view alg = StringMember(*jwk, "alg", &present, &is_string);
    if (present && !is_string) return Bad(kid, "\"alg\" is not a string");
    if (present) {
      std::optional<JwsAlgorithm> a = ParseJwsAlgorithm(alg);
      if (!a) {
        set->skipped_.push_back(label + ": unsupported alg");
        continue;
      }
      if (*a != key_alg) return Bad(kid, "\"alg\" does not match the key type");
    }

    int bits = 0;
    PkeyPtr pkey;
    switch (*type) {
      case KeyType::kRsa: {
        PV_ASSIGN_OR_RETURN(pkey, BuildRsa(*jwk, kid, options, &bits));
        break;
      }
      case KeyType::kEcP256: {
        PV_ASSIGN_OR_RETURN(pkey, BuildP256(*jwk, kid));
        bits = 256;
        break;
      }
      case KeyType::kEd25519: {
        PV_ASSIGN_OR_RETURN(pkey, BuildEd25519(*jwk, kid));
        bits = 256;
        break;
      }
    }
    if (!kid.empty() && !kids.emplace(kid).second) return Bad(kid, "duplicate kid");
    set->keys_.push_back(std::make_unique<VerificationKey>(std::string(kid), *type, std::string(use), bits, pkey.release()));
  }
  if (set->keys_.empty()) return InvalidArgument("invalid JWKS: no usable signing key");
  return std::shared_ptr<const KeySet>(std::move(set));
}

StatusOr<std::shared_ptr<const KeySet>> KeySet::LoadFile(const std::string& path, const JwksParseOptions& options) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound("JWKS file " + path + " cannot be opened");
  std::string body;
  char buf[8192];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    body.append(buf, static_cast<size_t>(in.gcount()));
    if (body.size() > options.max_bytes) return InvalidArgument("JWKS file " + path + " is too large");
  }
  auto set = Parse(body, options);
  if (!set.ok()) return InvalidArgument("JWKS file " + path + ": " + set.status().message());
  return set;
}

const VerificationKey* KeySet::FindByKid(std::string_view kid) const {
  if (kid.empty()) return nullptr;
  for (const auto& k : keys_) {
    if (k->kid() == kid) return k.get();
  }
  return nullptr;
}

std::shared_ptr<const KeySet> StaticKeySetProvider::Current() const {
  std::lock_guard lock(mu_);
  return set_;
}

void StaticKeySetProvider::Replace(std::shared_ptr<const KeySet> set) {
  {
    std::lock_guard lock(mu_);
    set_.swap(set);
  }
  // The old set (now in `set`) is released here, outside the lock.
}

RefreshingKeySetProvider::RefreshingKeySetProvider(Fetcher fetcher, Options options)
    : fetcher_(std::move(fetcher)), options_(options) {}

std::shared_ptr<const KeySet> RefreshingKeySetProvider::Current() const {
  std::lock_guard lock(mu_);
  return set_;
}

Status RefreshingKeySetProvider::Refresh(int64_t now_s) {
  // One fetch at a time, and nobody waits for it: callers run on network
  // threads, and the set they have (or the lack of one) is their answer.
  std::unique_lock fetch_lock(fetch_mu_, std::try_to_lock);
  if (!fetch_lock.owns_lock()) return Unavailable("a JWKS fetch is already running");
  {
    std::lock_guard lock(mu_);
    last_attempt_s_ = now_s;
  }
  StatusOr<std::string> body = fetcher_ ? fetcher_() : StatusOr<std::string>(Unavailable("no JWKS fetcher"));
  Status error;
  if (body.ok()) {
    auto set = KeySet::Parse(*body, options_.parse);
    if (set.ok()) {
      std::shared_ptr<const KeySet> old;
      {
        std::lock_guard lock(mu_);
        old = std::exchange(set_, std::move(set).value());
        last_success_s_ = now_s;
        have_set_ = true;
      }
      return Status::Ok();
    }
    error = set.status();
  } else {
    error = body.status();
  }
  std::shared_ptr<const KeySet> dropped;
  {
    std::lock_guard lock(mu_);
    if (have_set_ && now_s - last_success_s_ > options_.max_stale.count()) {
      dropped = std::exchange(set_, nullptr);
      have_set_ = false;
    }
  }
  return Unavailable("JWKS refresh failed: " + error.message());
}

Status RefreshingKeySetProvider::RefreshIfDue(int64_t now_s) {
  {
    std::lock_guard lock(mu_);
    if (have_set_ && now_s - last_success_s_ < options_.refresh_interval.count()) return Status::Ok();
    // While the issuer is unreachable every request would find a refresh
    // due: after any attempt, wait min_refresh_interval.
    if (last_attempt_s_ != 0 && now_s - last_attempt_s_ < options_.min_refresh_interval.count()) {
      return Status::Ok();
    }
    last_attempt_s_ = now_s;  // claimed: concurrent callers skip
  }
  return Refresh(now_s);
}

bool RefreshingKeySetProvider::RefreshForUnknownKid(int64_t now_s) {
  {
    // Check and claim the slot under one lock so concurrent misses cause one fetch.
    std::lock_guard lock(mu_);
    if (last_attempt_s_ != 0 && now_s - last_attempt_s_ < options_.min_refresh_interval.count()) return false;
    last_attempt_s_ = now_s;
  }
  return Refresh(now_s).ok();
}

}  // namespace phivault::auth
