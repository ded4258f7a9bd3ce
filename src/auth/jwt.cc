#include "auth/jwt.h"

#include <sodium.h>

#include <algorithm>
#include <boost/json/array.hpp>
#include <boost/json/string.hpp>
#include <boost/json/value.hpp>
#include <cmath>
#include <limits>
#include <utility>

#include "auth/base64url.h"
#include "fhir/json_reader.h"

namespace phivault::auth {
namespace {

constexpr size_t kMaxHeaderBytes = 2048;

Status Fail(std::string_view reason) {
  return Status(StatusCode::kUnauthenticated, "invalid token: " + std::string(reason));
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

std::optional<std::string_view> StringOf(const boost::json::value* v) {
  if (v == nullptr) return std::nullopt;
  const boost::json::string* s = v->if_string();
  if (s == nullptr) return std::nullopt;
  return std::string_view(s->data(), s->size());
}

// A NumericDate (RFC 7519 2): a JSON number of seconds; fractions are floored.
std::optional<int64_t> NumericDate(const boost::json::value& v) {
  constexpr int64_t kLimit = int64_t{1} << 52;  // far beyond any real date; keeps arithmetic safe
  if (const int64_t* i = v.if_int64()) {
    if (*i > kLimit || *i < -kLimit) return std::nullopt;
    return *i;
  }
  if (const uint64_t* u = v.if_uint64()) {
    if (*u > static_cast<uint64_t>(kLimit)) return std::nullopt;
    return static_cast<int64_t>(*u);
  }
  if (const double* d = v.if_double()) {
    if (!std::isfinite(*d) || *d > static_cast<double>(kLimit) || *d < -static_cast<double>(kLimit)) {
      return std::nullopt;
    }
    return static_cast<int64_t>(std::floor(*d));
  }
  return std::nullopt;
}

// Reads an optional NumericDate member; false if present but malformed.
bool OptionalDate(const boost::json::object& o, std::string_view name, std::optional<int64_t>* out) {
  const boost::json::value* v = o.if_contains(name);
  if (v == nullptr) return true;
  *out = NumericDate(*v);
  return out->has_value();
}

const boost::json::value* FindClaim(const boost::json::object& payload, std::string_view name) {
  if (const boost::json::value* v = payload.if_contains(name)) return v;
  if (name.find('.') == std::string_view::npos) return nullptr;
  const boost::json::object* cur = &payload;
  while (true) {
    size_t dot = name.find('.');
    std::string_view part = name.substr(0, dot);
    const boost::json::value* v = cur->if_contains(part);
    if (v == nullptr) return nullptr;
    if (dot == std::string_view::npos) return v;
    cur = v->if_object();
    if (cur == nullptr) return nullptr;
    name.remove_prefix(dot + 1);
  }
}

bool IsAllowedFhirUserType(std::string_view t) {
  return t == "Practitioner" || t == "PractitionerRole" || t == "Patient" || t == "RelatedPerson" || t == "Person" ||
         t == "Device";
}

std::string Sha256(std::string_view data) {
  unsigned char out[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(out, reinterpret_cast<const unsigned char*>(data.data()), data.size());
  return std::string(reinterpret_cast<const char*>(out), sizeof out);
}

}  // namespace

std::optional<FhirUserRef> ParseFhirUser(std::string_view fhir_user) {
  if (fhir_user.empty() || fhir_user.size() > 2048) return std::nullopt;
  for (char c : fhir_user) {
    if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f) return std::nullopt;
  }
  // Relative "Type/id", or an absolute http(s) URL whose last two segments are Type/id.
  std::string_view rest = fhir_user;
  if (rest.starts_with("https://") || rest.starts_with("http://")) {
    if (rest.find('?') != std::string_view::npos || rest.find('#') != std::string_view::npos) return std::nullopt;
    size_t last = rest.rfind('/');
    if (last == std::string_view::npos || last == 0) return std::nullopt;
    size_t prev = rest.rfind('/', last - 1);
    if (prev == std::string_view::npos) return std::nullopt;
    rest = rest.substr(prev + 1);
  }
  size_t slash = rest.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  std::string_view type = rest.substr(0, slash), id = rest.substr(slash + 1);
  if (!IsAllowedFhirUserType(type) || !fhir::IsValidId(id)) return std::nullopt;
  return FhirUserRef{std::string(type), std::string(id)};
}

Status CheckTimes(const Claims& claims, int64_t now_s, std::chrono::seconds leeway) {
  const int64_t lw = std::clamp<int64_t>(leeway.count(), 0, 24 * 3600);
  if (now_s >= claims.exp + lw) return Fail("expired");
  if (claims.nbf && *claims.nbf > now_s + lw) return Fail("not yet valid");
  if (claims.iat && *claims.iat > now_s + lw) return Fail("issued in the future");
  return Status::Ok();
}

JwtVerifier::JwtVerifier(VerifierConfig config, std::shared_ptr<KeySetProvider> keys)
    : config_(std::move(config)), keys_(std::move(keys)) {}

StatusOr<Claims> JwtVerifier::Verify(std::string_view token, int64_t now_s) const {
  return Verify(token, now_s, nullptr);
}

StatusOr<Claims> JwtVerifier::Verify(std::string_view token, int64_t now_s,
                                     std::shared_ptr<const KeySet>* key_set_used) const {
  if (config_.issuer.empty() || config_.audiences.empty()) return Fail("verifier has no issuer or audience");
  if (token.empty()) return Fail("empty");
  if (token.size() > config_.max_token_bytes) return Fail("too large");

  // 1. Three canonical base64url segments.
  size_t d1 = token.find('.');
  if (d1 == std::string_view::npos) return Fail("malformed");
  size_t d2 = token.find('.', d1 + 1);
  if (d2 == std::string_view::npos || token.find('.', d2 + 1) != std::string_view::npos) return Fail("malformed");
  std::string_view h64 = token.substr(0, d1), p64 = token.substr(d1 + 1, d2 - d1 - 1), s64 = token.substr(d2 + 1);
  if (h64.empty() || p64.empty()) return Fail("malformed");
  if (s64.empty()) return Fail("unsigned");
  if (h64.size() > kMaxHeaderBytes * 4 / 3 + 4) return Fail("header too large");

  // 2. Header.
  auto header_bytes = Base64UrlDecode(h64);
  if (!header_bytes.ok()) return Fail("malformed header encoding");
  fhir::ParseLimits limits;
  limits.max_bytes = config_.max_token_bytes;
  limits.max_depth = 16;
  auto header_json = fhir::ParseJson(*header_bytes, limits);
  if (!header_json.ok()) return Fail("malformed header");
  const boost::json::object* header = header_json->if_object();
  if (header == nullptr) return Fail("header is not an object");
  std::optional<std::string_view> alg_name = StringOf(header->if_contains("alg"));
  if (!alg_name) return Fail("missing alg");
  if (std::find(config_.allowed_algs.begin(), config_.allowed_algs.end(), *alg_name) == config_.allowed_algs.end()) {
    return Fail("algorithm not allowed");
  }
  std::optional<JwsAlgorithm> alg = ParseJwsAlgorithm(*alg_name);
  if (!alg) return Fail("algorithm not allowed");
  for (const char* forbidden : {"crit", "cty", "enc", "zip"}) {
    if (header->if_contains(forbidden) != nullptr) return Fail("unsupported header parameter");
  }
  if (const boost::json::value* typ = header->if_contains("typ")) {
    std::optional<std::string_view> t = StringOf(typ);
    if (!t || !(EqualsIgnoreCase(*t, "JWT") || EqualsIgnoreCase(*t, "application/jwt") ||
                EqualsIgnoreCase(*t, "at+jwt") || EqualsIgnoreCase(*t, "application/at+jwt"))) {
      return Fail("unsupported typ");
    }
  }
  std::string_view kid;
  bool has_kid = false;
  if (const boost::json::value* k = header->if_contains("kid")) {
    std::optional<std::string_view> ks = StringOf(k);
    if (!ks || ks->empty()) return Fail("malformed kid");
    kid = *ks;
    has_kid = true;
  }
  // "jwk", "jku", "x5u", "x5c", "x5t" are deliberately ignored: keys come only
  // from the configured set.

  // 3. Key selection: by kid from the current set; the key fixes the algorithm.
  std::shared_ptr<const KeySet> set = keys_->Current();
  if (!set) return Fail("no verification keys available");
  const VerificationKey* key = nullptr;
  if (has_kid) {
    key = set->FindByKid(kid);
    if (key == nullptr && keys_->RefreshForUnknownKid(now_s)) {
      set = keys_->Current();
      if (!set) return Fail("no verification keys available");
      key = set->FindByKid(kid);
    }
    if (key == nullptr) return Fail("unknown kid");
  } else {
    if (set->size() != 1) return Fail("missing kid");
    key = set->keys().front().get();
  }
  if (key->algorithm() != *alg) return Fail("algorithm does not match the key");

  // 4. Signature over the ASCII signing input.
  auto sig = Base64UrlDecode(s64);
  if (!sig.ok()) return Fail("malformed signature encoding");
  if (!key->Verify(token.substr(0, d2), *sig)) return Fail("bad signature");

  // 5. Payload and claims, now that it is authentic.
  auto payload_bytes = Base64UrlDecode(p64);
  if (!payload_bytes.ok()) return Fail("malformed payload encoding");
  auto payload_json = fhir::ParseJson(*payload_bytes, limits);
  if (!payload_json.ok()) return Fail("malformed payload");
  boost::json::object* payload = payload_json->if_object();
  if (payload == nullptr) return Fail("payload is not an object");

  Claims c;
  std::optional<std::string_view> iss = StringOf(payload->if_contains("iss"));
  if (!iss) return Fail("missing issuer");
  if (*iss != config_.issuer) return Fail("wrong issuer");
  c.iss = std::string(*iss);

  const boost::json::value* aud = payload->if_contains("aud");
  if (aud == nullptr) return Fail("missing audience");
  if (const boost::json::string* s = aud->if_string()) {
    c.aud.emplace_back(s->data(), s->size());
  } else if (const boost::json::array* a = aud->if_array()) {
    if (a->empty() || a->size() > 64) return Fail("malformed audience");
    for (const auto& e : *a) {
      const boost::json::string* s = e.if_string();
      if (s == nullptr) return Fail("malformed audience");
      c.aud.emplace_back(s->data(), s->size());
    }
  } else {
    return Fail("malformed audience");
  }
  bool aud_ok = false;
  for (const auto& a : c.aud) {
    for (const auto& want : config_.audiences) aud_ok |= (a == want);
  }
  if (!aud_ok) return Fail("wrong audience");

  const boost::json::value* exp = payload->if_contains("exp");
  if (exp == nullptr) return Fail("missing exp");
  std::optional<int64_t> exp_v = NumericDate(*exp);
  if (!exp_v) return Fail("malformed exp");
  c.exp = *exp_v;
  if (!OptionalDate(*payload, "nbf", &c.nbf)) return Fail("malformed nbf");
  if (!OptionalDate(*payload, "iat", &c.iat)) return Fail("malformed iat");
  PV_RETURN_IF_ERROR(CheckTimes(c, now_s, config_.leeway));

  std::optional<std::string_view> sub = StringOf(payload->if_contains("sub"));
  if (!sub || sub->empty() || sub->size() > 1024) return Fail("missing or malformed sub");
  c.sub = std::string(*sub);

  if (const boost::json::value* scope = payload->if_contains("scope")) {
    std::optional<std::string_view> s = StringOf(scope);
    if (!s) return Fail("malformed scope");
    c.scope = std::string(*s);
  } else if (const boost::json::value* scp = payload->if_contains("scp")) {
    // Some issuers (Okta, Entra ID) use "scp": a string or an array of strings.
    if (std::optional<std::string_view> s = StringOf(scp)) {
      c.scope = std::string(*s);
    } else if (const boost::json::array* a = scp->if_array()) {
      for (const auto& e : *a) {
        const boost::json::string* s = e.if_string();
        if (s == nullptr || s->empty() || std::find(s->begin(), s->end(), ' ') != s->end()) {
          return Fail("malformed scp");
        }
        if (!c.scope.empty()) c.scope += ' ';
        c.scope.append(s->data(), s->size());
      }
    } else {
      return Fail("malformed scp");
    }
  }
  c.scopes = ParseScopes(c.scope);

  if (const boost::json::value* fu = payload->if_contains("fhirUser")) {
    std::optional<std::string_view> s = StringOf(fu);
    if (!s || !ParseFhirUser(*s)) return Fail("malformed fhirUser");
    c.fhir_user = std::string(*s);
  }
  if (!config_.role_claim.empty()) {
    if (const boost::json::value* role = FindClaim(*payload, config_.role_claim)) {
      if (std::optional<std::string_view> s = StringOf(role)) {
        c.roles.emplace_back(*s);
      } else if (const boost::json::array* a = role->if_array()) {
        for (const auto& e : *a) {
          const boost::json::string* s = e.if_string();
          if (s == nullptr) return Fail("malformed role claim");
          c.roles.emplace_back(s->data(), s->size());
        }
      } else {
        return Fail("malformed role claim");
      }
      if (!c.roles.empty()) c.role = c.roles.front();
    }
  }
  if (const boost::json::value* jti = payload->if_contains("jti")) {
    std::optional<std::string_view> s = StringOf(jti);
    if (!s) return Fail("malformed jti");
    c.jti = std::string(*s);
  }
  c.kid = std::string(kid);
  c.alg = std::string(JwsAlgorithmName(*alg));
  c.raw = std::move(*payload);
  if (key_set_used != nullptr) *key_set_used = std::move(set);
  return c;
}

CachingVerifier::CachingVerifier(std::shared_ptr<const JwtVerifier> verifier, Options options)
    : verifier_(std::move(verifier)), options_(options) {
  if (options_.max_entries == 0) options_.max_entries = 1;
}

StatusOr<Claims> CachingVerifier::Verify(std::string_view token, int64_t now_s) {
  const VerifierConfig& cfg = verifier_->config();
  if (token.empty() || token.size() > cfg.max_token_bytes) return verifier_->Verify(token, now_s);
  std::string key = Sha256(token);
  std::shared_ptr<const KeySet> current = verifier_->keys().Current();
  {
    std::lock_guard lock(mu_);
    auto it = index_.find(key);
    if (it != index_.end()) {
      Entry& e = *it->second;
      std::shared_ptr<const KeySet> used = e.key_set.lock();
      if (used && used == current && now_s < e.valid_until_s && CheckTimes(*e.claims, now_s, cfg.leeway).ok()) {
        lru_.splice(lru_.begin(), lru_, it->second);
        ++hits_;
        return Claims(*e.claims);
      }
      lru_.erase(it->second);
      index_.erase(it);
    }
    ++misses_;
  }
  std::shared_ptr<const KeySet> used;
  auto claims = verifier_->Verify(token, now_s, &used);
  if (!claims.ok()) return claims;
  const int64_t lw = std::clamp<int64_t>(cfg.leeway.count(), 0, 24 * 3600);
  int64_t until = std::min(claims->exp + lw, now_s + static_cast<int64_t>(options_.max_ttl.count()));
  auto shared = std::make_shared<const Claims>(*claims);
  {
    std::lock_guard lock(mu_);
    if (index_.find(key) == index_.end()) {
      while (lru_.size() >= options_.max_entries) {
        index_.erase(lru_.back().key);
        lru_.pop_back();
      }
      lru_.push_front(Entry{key, std::move(shared), until, used});
      index_.emplace(std::move(key), lru_.begin());
    }
  }
  return claims;
}

size_t CachingVerifier::size() const {
  std::lock_guard lock(mu_);
  return lru_.size();
}
uint64_t CachingVerifier::hits() const {
  std::lock_guard lock(mu_);
  return hits_;
}
uint64_t CachingVerifier::misses() const {
  std::lock_guard lock(mu_);
  return misses_;
}
void CachingVerifier::Clear() {
  std::lock_guard lock(mu_);
  lru_.clear();
  index_.clear();
}

}  // namespace phivault::auth
