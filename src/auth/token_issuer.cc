#include "auth/token_issuer.h"

#include <sodium.h>

#include <algorithm>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include "auth/base64url.h"
#include "auth/jwt.h"

namespace phivault::auth {
namespace {

std::string Sha256(std::string_view data) {
  unsigned char out[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(out, reinterpret_cast<const unsigned char*>(data.data()), data.size());
  return std::string(reinterpret_cast<const char*>(out), sizeof out);
}

bool Printable(std::string_view s, bool allow_space) {
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7f) return false;
    if (c == ' ' && !allow_space) return false;
  }
  return true;
}

std::string RandomB64(size_t bytes) {
  SecureBytes r = SecureBytes::Random(bytes);
  return Base64UrlEncode(r.view());
}

Status Unauth(std::string_view reason) {
  return Status(StatusCode::kUnauthenticated, "invalid refresh token: " + std::string(reason));
}

}  // namespace

StatusOr<std::unique_ptr<TokenIssuer>> TokenIssuer::Create(const SecureBytes& seed, IssuerConfig config) {
  if (seed.size() != crypto_sign_SEEDBYTES) return InvalidArgument("token signing key must be 32 bytes");
  if (config.issuer.empty() || config.audience.empty()) {
    return InvalidArgument("token issuer needs an issuer and an audience");
  }
  if (config.lifetime.count() <= 0 || config.lifetime.count() > 24 * 3600) {
    return InvalidArgument("token lifetime must be between 1 s and 24 h");
  }
  if (config.role_claim.empty()) config.role_claim = "role";
  if (sodium_init() < 0) return Internal("libsodium failed to initialise");
  std::unique_ptr<TokenIssuer> t(new TokenIssuer());
  t->config_ = std::move(config);
  t->secret_key_ = SecureBytes(crypto_sign_SECRETKEYBYTES);
  unsigned char pk[crypto_sign_PUBLICKEYBYTES];
  if (crypto_sign_seed_keypair(pk, t->secret_key_.data(), seed.data()) != 0) {
    return Internal("cannot derive the Ed25519 token signing key");
  }
  t->public_key_.assign(reinterpret_cast<const char*>(pk), sizeof pk);
  // RFC 7638: the required members in lexicographic order, no whitespace.
  std::string thumb_input = "{\"crv\":\"Ed25519\",\"kty\":\"OKP\",\"x\":\"" + Base64UrlEncode(t->public_key_) + "\"}";
  t->kid_ = Base64UrlEncode(Sha256(thumb_input));
  return t;
}

StatusOr<IssuedToken> TokenIssuer::Issue(const TokenRequest& req, int64_t now_s) const {
  if (req.sub.empty() || req.sub.size() > 1024 || !Printable(req.sub, true)) {
    return InvalidArgument("token request: invalid sub");
  }
  if (req.scope.size() > 4096 || !Printable(req.scope, true)) return InvalidArgument("token request: invalid scope");
  if (!req.fhir_user.empty() && !ParseFhirUser(req.fhir_user)) {
    return InvalidArgument("token request: invalid fhirUser");
  }
  if (req.role.size() > 256 || !Printable(req.role, true)) return InvalidArgument("token request: invalid role");
  if (req.clearances.size() > 64) return InvalidArgument("token request: too many clearances");
  for (const std::string& c : req.clearances) {
    if (c.empty() || c.size() > 64 || !Printable(c, false)) return InvalidArgument("token request: invalid clearance");
  }

  if (req.session_id.size() > 128 || !Printable(req.session_id, false)) {
    return InvalidArgument("token request: invalid session id");
  }

  IssuedToken out;
  out.jti = RandomB64(16);
  out.issued_at = now_s;
  out.expires_at = now_s + config_.lifetime.count();

  boost::json::object header;
  header["alg"] = "EdDSA";
  header["kid"] = kid_;
  header["typ"] = "JWT";
  boost::json::object claims;
  claims["iss"] = config_.issuer;
  claims["sub"] = req.sub;
  claims["aud"] = config_.audience;
  claims["iat"] = out.issued_at;
  claims["nbf"] = out.issued_at;
  claims["exp"] = out.expires_at;
  claims["jti"] = out.jti;
  if (!req.scope.empty()) claims["scope"] = req.scope;
  if (!req.fhir_user.empty()) claims["fhirUser"] = req.fhir_user;
  if (!req.role.empty()) claims[config_.role_claim] = req.role;
  if (!req.session_id.empty()) claims["sid"] = req.session_id;
  if (!req.clearances.empty()) {
    boost::json::array clearances;
    for (const std::string& c : req.clearances) clearances.emplace_back(c);
    claims[kClearanceClaim] = std::move(clearances);
  }

  std::string input = Base64UrlEncode(boost::json::serialize(header)) + "." +
                      Base64UrlEncode(boost::json::serialize(claims));
  unsigned char sig[crypto_sign_BYTES];
  if (crypto_sign_detached(sig, nullptr, reinterpret_cast<const unsigned char*>(input.data()), input.size(),
                           secret_key_.data()) != 0) {
    return Internal("Ed25519 signing failed");
  }
  out.token = std::move(input);
  out.token += '.';
  out.token += Base64UrlEncode(std::string_view(reinterpret_cast<const char*>(sig), sizeof sig));
  return out;
}

std::string TokenIssuer::JwksJson() const {
  boost::json::object key;
  key["kty"] = "OKP";
  key["crv"] = "Ed25519";
  key["x"] = Base64UrlEncode(public_key_);
  key["kid"] = kid_;
  key["alg"] = "EdDSA";
  key["use"] = "sig";
  boost::json::array keys;
  keys.push_back(std::move(key));
  boost::json::object doc;
  doc["keys"] = std::move(keys);
  return boost::json::serialize(doc);
}

// ---- Refresh tokens -----------------------------------------------------------

Status InMemoryRefreshTokenStore::Insert(const std::string& token_hash, const RefreshTokenRecord& record) {
  std::lock_guard lock(mu_);
  if (records_.size() >= max_entries_) {
    return Status(StatusCode::kResourceExhausted, "refresh token store is full");
  }
  if (!records_.emplace(token_hash, record).second) {
    return Status(StatusCode::kAlreadyExists, "refresh token collision");
  }
  return Status::Ok();
}

StatusOr<RefreshTokenRecord> InMemoryRefreshTokenStore::MarkUsed(const std::string& token_hash) {
  std::lock_guard lock(mu_);
  auto it = records_.find(token_hash);
  if (it == records_.end()) return NotFound("unknown refresh token");
  RefreshTokenRecord before = it->second;
  it->second.used = true;
  return before;
}

void InMemoryRefreshTokenStore::RevokeFamily(std::string_view family) {
  std::lock_guard lock(mu_);
  std::erase_if(records_, [&](const auto& kv) { return kv.second.family == family; });
}

void InMemoryRefreshTokenStore::RevokeSubject(std::string_view subject) {
  std::lock_guard lock(mu_);
  std::erase_if(records_, [&](const auto& kv) { return kv.second.subject == subject; });
}

void InMemoryRefreshTokenStore::Prune(int64_t now_s) {
  std::lock_guard lock(mu_);
  // Used tokens are kept until their family ends so a replay is still recognised.
  std::erase_if(records_, [&](const auto& kv) {
    const RefreshTokenRecord& r = kv.second;
    return now_s >= r.family_expires_at || (!r.used && now_s >= r.expires_at);
  });
}

size_t InMemoryRefreshTokenStore::size() const {
  std::lock_guard lock(mu_);
  return records_.size();
}

RefreshTokenManager::RefreshTokenManager(std::shared_ptr<RefreshTokenStore> store, Options options)
    : store_(std::move(store)), options_(options) {}

std::string RefreshTokenManager::HashToken(std::string_view token) { return Sha256(token); }

StatusOr<std::string> RefreshTokenManager::Store(RefreshTokenRecord record) {
  std::string token = RandomB64(32);
  PV_RETURN_IF_ERROR(store_->Insert(HashToken(token), record));
  return token;
}

StatusOr<std::string> RefreshTokenManager::Issue(std::string_view subject, std::string_view scope, int64_t now_s) {
  if (subject.empty()) return InvalidArgument("refresh token needs a subject");
  RefreshTokenRecord r;
  r.subject = std::string(subject);
  r.scope = std::string(scope);
  r.family = RandomB64(16);
  r.family_expires_at = now_s + options_.max_family_lifetime.count();
  r.expires_at = std::min(now_s + options_.ttl.count(), r.family_expires_at);
  return Store(std::move(r));
}

StatusOr<RefreshTokenManager::Rotated> RefreshTokenManager::Rotate(std::string_view token, int64_t now_s) {
  if (token.size() != 43 || !IsBase64UrlAlphabet(token) || !Base64UrlDecode(token).ok()) return Unauth("malformed");
  auto rec = store_->MarkUsed(HashToken(token));
  if (!rec.ok()) return Unauth("unknown");
  if (rec->used) {
    store_->RevokeFamily(rec->family);
    return Unauth("reused; every token of this login is revoked");
  }
  if (now_s >= rec->expires_at || now_s >= rec->family_expires_at) return Unauth("expired");
  RefreshTokenRecord next = *rec;
  next.used = false;
  next.expires_at = std::min(now_s + options_.ttl.count(), rec->family_expires_at);
  PV_ASSIGN_OR_RETURN(std::string fresh, Store(next));
  return Rotated{std::move(fresh), std::move(next)};
}

}  // namespace phivault::auth
