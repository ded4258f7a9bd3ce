#include "api/auth_service.h"

#include <arpa/inet.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cstring>
#include <optional>

#include "api/request_context.h"
#include "common/log.h"
#include "common/secure_bytes.h"
#include "fhir/json_reader.h"

namespace phivault::api {
namespace {

using Params = std::vector<std::pair<std::string, std::string>>;

constexpr std::string_view kTokenPath = "/auth/token";
constexpr std::string_view kJwksPath = "/.well-known/jwks.json";
// Throttle key for names no account can have: one shared bucket, so garbage
// names cannot fill the throttle table, and nothing about real names leaks.
constexpr std::string_view kInvalidNameKey = "\x01invalid-name";
constexpr int64_t kPruneIntervalS = 3600;

// What RefreshTokenManager did inside the store on this thread. The manager
// calls its store synchronously on the caller's thread, so thread-local
// capture is exact and needs no changes to the auth library.
thread_local std::string t_inserted_family;
thread_local bool t_reused = false;
thread_local std::string t_reused_subject;
thread_local std::string t_reused_family;
// Set when this worker's current token request has recorded an entry that
// explains a refusal (a failed login, throttling, a refresh failure).
thread_local bool t_refusal_audited = false;
// The authenticated account of the current request, once its password
// checked out, so a later refusal (scope) names who was refused.
thread_local std::string t_request_username;

int64_t SystemNowS() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

const std::string* Find(const Params& p, std::string_view name) {
  for (const auto& [k, v] : p) {
    if (k == name) return &v;
  }
  return nullptr;
}

// Passwords, codes and refresh tokens pass through these strings.
void Wipe(Params& p) {
  for (auto& [k, v] : p) SecureWipe(v.data(), v.size());
  p.clear();
}

void Wipe(std::string& s) { SecureWipe(s.data(), s.size()); }

http::HttpResponse OAuthJson(int status, std::string body) {
  http::HttpResponse r;
  r.status = status;
  r.headers.emplace_back("Content-Type", "application/json; charset=utf-8");
  // RFC 6749 5.1: token responses must not be cached.
  r.headers.emplace_back("Cache-Control", "no-store");
  r.headers.emplace_back("Pragma", "no-cache");
  r.body = std::move(body);
  SetRoute(r, kTokenPath);
  return r;
}

http::HttpResponse OAuthError(int status, std::string_view error, std::string_view description) {
  boost::json::object o;
  o["error"] = error;
  o["error_description"] = description;
  return OAuthJson(status, boost::json::serialize(o));
}

// One fixed body for every failed credential check, whatever failed.
http::HttpResponse InvalidGrant() {
  return OAuthError(400, "invalid_grant", "the credentials are not valid");
}

http::HttpResponse Throttled(const auth::LoginThrottle::Decision& d, std::chrono::seconds lock_hint) {
  http::HttpResponse r = OAuthError(429, "invalid_grant", "too many failed attempts; try again later");
  int64_t secs = (d.retry_after.count() + 999) / 1000;
  if (d.locked && d.retry_after.count() == 0) secs = lock_hint.count();
  r.headers.emplace_back("Retry-After", std::to_string(std::max<int64_t>(secs, 1)));
  return r;
}

std::vector<std::string> SplitSpaces(std::string_view s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && s[i] == ' ') ++i;
    size_t j = i;
    while (j < s.size() && s[j] != ' ') ++j;
    if (j > i) out.emplace_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

std::string Join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) {
    if (!out.empty()) out += ' ';
    out += s;
  }
  return out;
}

// The scopes of `have` that are also in `allowed`, in `have`'s order.
std::string Intersect(std::string_view have, std::string_view allowed) {
  std::vector<std::string> a = SplitSpaces(allowed), out;
  for (auto& s : SplitSpaces(have)) {
    if (std::find(a.begin(), a.end(), s) != a.end() && std::find(out.begin(), out.end(), s) == out.end()) {
      out.push_back(std::move(s));
    }
  }
  return Join(out);
}

// The requested scope if it is a subset of `granted`; nullopt otherwise.
std::optional<std::string> Narrow(const std::string* requested, const std::string& granted) {
  if (requested == nullptr || requested->empty()) return granted;
  std::vector<std::string> g = SplitSpaces(granted);
  std::vector<std::string> req = SplitSpaces(*requested);
  for (const auto& s : req) {
    if (std::find(g.begin(), g.end(), s) == g.end()) return std::nullopt;
  }
  return Intersect(*requested, granted);
}

std::string LowerMediaType(const std::string* header) {
  if (header == nullptr) return "";
  std::string_view v = *header;
  v = v.substr(0, v.find(';'));
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  std::string out(v);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

StatusOr<std::string> FormDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '+') {
      out += ' ';
    } else if (c == '%') {
      int hi = i + 1 < s.size() ? HexValue(s[i + 1]) : -1;
      int lo = i + 2 < s.size() ? HexValue(s[i + 2]) : -1;
      if (hi < 0 || lo < 0) {
        Wipe(out);
        return InvalidArgument("bad percent escape in form body");
      }
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else {
      out += c;
    }
  }
  if (out.find('\0') != std::string::npos) {
    Wipe(out);
    return InvalidArgument("NUL byte in form body");
  }
  return out;
}

StatusOr<Params> ParseJsonBody(std::string_view body, size_t max_bytes) {
  fhir::ParseLimits limits;
  limits.max_depth = 2;
  limits.max_bytes = max_bytes;
  auto v = fhir::ParseJson(body, limits);
  if (!v.ok()) return InvalidArgument("the body is not a valid JSON object");
  if (!v->is_object()) return InvalidArgument("the body must be a JSON object");
  Params out;
  for (auto& kv : v->as_object()) {
    if (!kv.value().is_string()) {
      Wipe(out);
      return InvalidArgument("every token request parameter must be a JSON string");
    }
    const auto& s = kv.value().as_string();
    out.emplace_back(std::string(kv.key()), std::string(s.data(), s.size()));
  }
  // The parsed tree held the password too; clear its strings before it goes.
  for (auto& kv : v->as_object()) {
    auto& s = kv.value().as_string();
    SecureWipe(s.data(), s.size());
  }
  return out;
}

}  // namespace

// ---- SessionTracker ---------------------------------------------------------------

SessionTracker::SessionTracker(Options options) : options_(options) {
  if (options_.max_entries < 16) options_.max_entries = 16;
}

void SessionTracker::PruneLocked(int64_t now_s) {
  const int64_t idle = options_.idle_timeout.count();
  std::erase_if(families_, [&](const auto& kv) { return now_s - kv.second > idle; });
  // A token whose login ended stays until its expiry: forgetting it earlier
  // would turn its kEnded into kUnknown, which callers may accept.
  std::erase_if(tokens_, [&](const auto& kv) { return kv.second.expires_at_s <= now_s; });
  std::erase_if(ended_, [&](const auto& kv) { return kv.second <= now_s; });
}

bool SessionTracker::Start(std::string_view jti, std::string_view family, int64_t expires_at_s, int64_t now_s) {
  std::lock_guard lock(mu_);
  if (auto e = ended_.find(std::string(family)); e != ended_.end()) {
    if (now_s < e->second) return false;
    ended_.erase(e);
  }
  if (tokens_.size() >= options_.max_entries || families_.size() >= options_.max_entries) {
    PruneLocked(now_s);
    // Still full of live sessions: end the oldest login rather than grow
    // without bound (its user logs in again).
    if (families_.size() >= options_.max_entries) {
      auto oldest = std::min_element(families_.begin(), families_.end(),
                                     [](const auto& a, const auto& b) { return a.second < b.second; });
      families_.erase(oldest);
    }
    // Still full of unexpired tokens: forget tokens of live logins first.
    // Such a token becomes kUnknown, which callers accept under their own
    // idle rule: harmless for a live login, a revival for an ended one.
    if (tokens_.size() >= options_.max_entries) {
      std::erase_if(tokens_, [&](const auto& kv) { return families_.contains(kv.second.family); });
    }
    while (tokens_.size() >= options_.max_entries) tokens_.erase(tokens_.begin());
  }
  families_.try_emplace(std::string(family), now_s);
  tokens_[std::string(jti)] = Token{std::string(family), expires_at_s};
  return true;
}

SessionTracker::State SessionTracker::Touch(std::string_view jti, int64_t now_s) {
  std::lock_guard lock(mu_);
  auto t = tokens_.find(std::string(jti));
  if (t == tokens_.end()) return State::kUnknown;
  if (t->second.expires_at_s <= now_s) return State::kEnded;
  auto f = families_.find(t->second.family);
  if (f == families_.end()) return State::kEnded;
  if (now_s - f->second > options_.idle_timeout.count()) {
    families_.erase(f);
    return State::kEnded;
  }
  f->second = std::max(f->second, now_s);
  return State::kLive;
}

bool SessionTracker::ActiveFamily(std::string_view family, int64_t now_s) {
  std::lock_guard lock(mu_);
  auto f = families_.find(std::string(family));
  return f != families_.end() && now_s - f->second <= options_.idle_timeout.count();
}

void SessionTracker::EndFamily(std::string_view family, int64_t now_s) {
  std::lock_guard lock(mu_);
  std::string f(family);
  families_.erase(f);
  // Until every token it had expires, and at least an idle timeout, a
  // refresh racing this call must not Start the family again.
  int64_t until = now_s + options_.idle_timeout.count();
  for (const auto& [jti, t] : tokens_) {
    if (t.family == f) until = std::max(until, t.expires_at_s);
  }
  ended_[f] = until;
  if (ended_.size() > options_.max_entries) {
    auto oldest = std::min_element(ended_.begin(), ended_.end(),
                                   [](const auto& a, const auto& b) { return a.second < b.second; });
    ended_.erase(oldest);
  }
}

size_t SessionTracker::size() const {
  std::lock_guard lock(mu_);
  return tokens_.size();
}

// ---- the refresh token store seen by RefreshTokenManager ---------------------------

class AuthService::RefreshStoreAdapter final : public auth::RefreshTokenStore {
 public:
  explicit RefreshStoreAdapter(std::shared_ptr<store::AccountStore> s) : s_(std::move(s)) {}
  Status Insert(const std::string& hash, const auth::RefreshTokenRecord& r) override {
    t_inserted_family = r.family;
    return s_->Insert(hash, r);
  }
  StatusOr<auth::RefreshTokenRecord> MarkUsed(const std::string& hash) override {
    auto r = s_->MarkUsed(hash);
    if (r.ok() && r->used) {
      t_reused = true;
      t_reused_subject = r->subject;
      t_reused_family = r->family;
    }
    return r;
  }
  void RevokeFamily(std::string_view family) override { s_->RevokeFamily(family); }
  void RevokeSubject(std::string_view subject) override { s_->RevokeSubject(subject); }
  void Prune(int64_t now_s) override { s_->Prune(now_s); }

 private:
  std::shared_ptr<store::AccountStore> s_;
};

// ---- AuthService -----------------------------------------------------------------------

StatusOr<std::unique_ptr<AuthService>> AuthService::Create(std::shared_ptr<store::AccountStore> accounts,
                                                           const crypto::Keyring& keyring,
                                                           AuthServiceOptions options) {
  if (accounts == nullptr) return InvalidArgument("the token service needs an account store");
  if (options.issuer.empty()) return InvalidArgument("the token service needs an issuer (the base URL)");
  if (options.audience.empty()) options.audience = options.issuer + "/fhir";
  if (!options.now_s) options.now_s = SystemNowS;
  options.login_threads = std::clamp(options.login_threads, 1, 64);
  options.max_queued = std::max<size_t>(options.max_queued, 1);
  options.max_body_bytes = std::clamp<size_t>(options.max_body_bytes, 256, 1 << 20);

  std::unique_ptr<AuthService> s(new AuthService());
  auth::IssuerConfig ic;
  ic.issuer = options.issuer;
  ic.audience = options.audience;
  ic.lifetime = options.access_token_lifetime;
  PV_ASSIGN_OR_RETURN(s->issuer_, auth::TokenIssuer::Create(keyring.Key(crypto::KeyPurpose::kTokenSign), ic));
  s->jwks_json_ = s->issuer_->JwksJson();
  s->accounts_ = std::move(accounts);
  s->refresh_store_ = std::make_shared<RefreshStoreAdapter>(s->accounts_);
  s->refresh_ = std::make_unique<auth::RefreshTokenManager>(s->refresh_store_, options.refresh);
  s->throttle_ = std::make_unique<auth::LoginThrottle>(options.throttle, options.steady_now);
  s->sessions_ = std::make_unique<SessionTracker>(options.sessions);
  s->audit_ = options.audit;
  s->options_ = std::move(options);
  for (int i = 0; i < s->options_.login_threads; ++i) {
    s->workers_.emplace_back([p = s.get()] { p->WorkerLoop(); });
  }
  return s;
}

AuthService::~AuthService() { Stop(); }

void AuthService::Stop() {
  {
    std::lock_guard lock(queue_mu_);
    stopping_ = true;
  }
  queue_cv_.notify_all();
  for (auto& t : workers_) t.join();
  workers_.clear();
  std::deque<Job> left;
  {
    std::lock_guard lock(queue_mu_);
    left.swap(queue_);
  }
  // Requests still queued are refused unread, and audited like every other
  // refusal: a flood cut short by a restart must still show in the log.
  for (auto& job : left) {
    Wipe(job.request.body);
    Audit("token.request_refused", "", SourceAddress(job.request.remote_address), "temporarily_unavailable");
    job.respond(OAuthError(503, "temporarily_unavailable", "the server is shutting down"));
  }
}

bool AuthService::Handles(std::string_view path) { return path == kTokenPath || path == kJwksPath; }

std::string AuthService::JwksJson() const { return jwks_json_; }

void AuthService::UnlockAccount(std::string_view username) {
  throttle_->Unlock(store::NormalizeUsername(username));
}

void AuthService::SetAuditHook(AuditHook hook) {
  std::lock_guard lock(audit_mu_);
  audit_ = std::move(hook);
}

void AuthService::Audit(std::string_view event, std::string_view username, std::string_view source,
                        std::string_view outcome) {
  AuditHook hook;
  {
    std::lock_guard lock(audit_mu_);
    hook = audit_;
  }
  if (outcome != "success") t_refusal_audited = true;
  if (hook) hook(event, username, source, outcome);
}

namespace {

// The OAuth "error" code of a refusal built by OAuthError ("" if none).
std::string OAuthErrorCode(const http::HttpResponse& r) {
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(r.body, ec);
  if (ec || !v.is_object()) return "";
  const boost::json::value* e = v.get_object().if_contains("error");
  return e != nullptr && e->is_string() ? std::string(e->get_string()) : "";
}

}  // namespace

void AuthService::Handle(http::HttpRequest request, http::Responder respond) {
  if (request.path == kJwksPath) {
    if (request.method != "GET" && request.method != "HEAD") {
      http::HttpResponse r = OAuthError(405, "invalid_request", "use GET");
      r.headers.emplace_back("Allow", "GET, HEAD");
      SetRoute(r, kJwksPath);
      respond(std::move(r));
      return;
    }
    http::HttpResponse r;
    r.status = 200;
    r.headers.emplace_back("Content-Type", "application/json");
    // Public data; short caching lets verifiers notice a key rotation soon.
    r.headers.emplace_back("Cache-Control", "public, max-age=300");
    r.body = jwks_json_;
    SetRoute(r, kJwksPath);
    respond(std::move(r));
    return;
  }
  if (request.path != kTokenPath) {
    respond(OAuthError(404, "invalid_request", "not found"));
    return;
  }
  // Refusals before the queue are audited here (HandleToken audits the
  // rest): a flood that fills the queue is as much the privacy officer's
  // business as one bad password.
  if (request.method != "POST") {
    http::HttpResponse r = OAuthError(405, "invalid_request", "use POST");
    r.headers.emplace_back("Allow", "POST");
    Wipe(request.body);
    Audit("token.request_refused", "", SourceAddress(request.remote_address), "invalid_request");
    respond(std::move(r));
    return;
  }
  std::unique_lock lock(queue_mu_);
  if (stopping_ || queue_.size() >= options_.max_queued) {
    lock.unlock();
    Wipe(request.body);
    http::HttpResponse r = OAuthError(503, "temporarily_unavailable", "too many token requests; try again shortly");
    r.headers.emplace_back("Retry-After", "1");
    Audit("token.request_refused", "", SourceAddress(request.remote_address), "temporarily_unavailable");
    respond(std::move(r));
    return;
  }
  queue_.push_back(Job{std::move(request), std::move(respond)});
  lock.unlock();
  queue_cv_.notify_one();
}

void AuthService::WorkerLoop() {
  for (;;) {
    Job job;
    bool prune = false;
    {
      std::unique_lock lock(queue_mu_);
      queue_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      job = std::move(queue_.front());
      queue_.pop_front();
      int64_t now = Now();
      if (now - last_prune_s_ >= kPruneIntervalS) {
        last_prune_s_ = now;
        prune = true;
      }
    }
    if (prune) accounts_->Prune(Now());
    http::HttpResponse resp = HandleToken(job.request);
    Wipe(job.request.body);
    job.respond(std::move(resp));
  }
}

http::HttpResponse AuthService::HandleToken(http::HttpRequest& request) {
  // Every refused token request leaves an audit entry, including the ones
  // refused before any credential was looked at (a malformed body, an
  // unknown grant, a scope beyond the account's): probing the token
  // endpoint must be visible to the privacy officer.
  t_refusal_audited = false;
  http::HttpResponse resp = HandleTokenRequest(request);
  if (resp.status >= 400 && !t_refusal_audited) {
    std::string code = OAuthErrorCode(resp);
    Audit("token.request_refused", t_request_username, SourceAddress(request.remote_address),
          code.empty() ? std::string_view("refused") : std::string_view(code));
  }
  t_request_username.clear();
  return resp;
}

http::HttpResponse AuthService::HandleTokenRequest(http::HttpRequest& request) {
  if (request.body.size() > options_.max_body_bytes) {
    return OAuthError(400, "invalid_request", "the request is too large");
  }
  std::string media = LowerMediaType(request.Header("content-type"));
  if (media != "application/x-www-form-urlencoded" && media != "application/json") {
    return OAuthError(400, "invalid_request", "Content-Type must be application/x-www-form-urlencoded or application/json");
  }
  StatusOr<Params> parsed = media == "application/json" ? ParseJsonBody(request.body, options_.max_body_bytes)
                                                        : ParseFormBody(request.body);
  if (!parsed.ok()) return OAuthError(400, "invalid_request", parsed.status().message());
  Params params = std::move(parsed).value();
  const std::string source = SourceAddress(request.remote_address);
  const std::string* grant = Find(params, "grant_type");
  http::HttpResponse resp;
  if (grant == nullptr || grant->empty()) {
    resp = OAuthError(400, "invalid_request", "grant_type is required");
  } else if (*grant == "password") {
    resp = PasswordGrant(params, source);
  } else if (*grant == "refresh_token") {
    resp = RefreshGrant(params, source);
  } else {
    resp = OAuthError(400, "unsupported_grant_type", "grant_type must be password or refresh_token");
  }
  Wipe(params);
  return resp;
}

http::HttpResponse AuthService::PasswordGrant(const Params& params, const std::string& source) {
  const std::string* username = Find(params, "username");
  const std::string* password = Find(params, "password");
  const std::string* totp = Find(params, "totp");
  if (username == nullptr || password == nullptr || username->empty() || password->empty()) {
    return OAuthError(400, "invalid_request", "username and password are required");
  }
  const std::string name = store::NormalizeUsername(*username);
  const bool valid_name = store::IsValidUsername(name);
  const std::string account_key = valid_name ? name : std::string(kInvalidNameKey);

  // Throttle before any password work: a locked account stays locked even
  // for the right password, and the answer is the same for unknown names.
  auth::LoginThrottle::Decision d = throttle_->Check(account_key, source);
  if (!d.allowed) {
    Audit("login.throttled", "", source, d.locked ? "locked" : "backoff");
    std::chrono::seconds hint = options_.throttle.lockout_duration.count() > 0 ? options_.throttle.lockout_duration
                                                                               : options_.throttle.window;
    return Throttled(d, hint);
  }

  const int64_t now = Now();
  std::optional<store::UserRecord> user;
  if (valid_name) {
    auto u = accounts_->GetUser(name);
    if (u.ok()) {
      user = std::move(*u);
    } else if (u.status().code() != StatusCode::kNotFound) {
      log::Error("auth.account_lookup_failed", {{"error", u.status().message()}});
      return OAuthError(503, "temporarily_unavailable", "the account directory is unavailable");
    }
  }
  // Same Argon2id cost whether or not the name exists.
  bool ok = false;
  if (user) {
    ok = auth::VerifyPassword(user->password_hash, *password);
  } else {
    auth::DummyVerifyPassword(*password, options_.password_params);
  }
  if (ok && user->disabled) ok = false;
  if (ok && (store::RoleRequiresMfa(user->role) || user->mfa_enrolled)) {
    // Fail closed: an account whose role needs MFA but has no secret (never
    // enrolled, or being reset) cannot log in.
    ok = false;
    if (user->mfa_enrolled && totp != nullptr) {
      auto secret = accounts_->GetTotpSecret(name);
      if (secret.ok()) {
        std::optional<int64_t> step = auth::VerifyTotp(*secret, *totp, now, options_.totp);
        ok = step.has_value() && accounts_->AcceptTotpStep(name, *step);
      } else {
        log::Error("auth.totp_secret_unavailable", {{"error", secret.status().message()}});
      }
    }
  }
  if (!ok) {
    throttle_->RecordFailure(account_key, source);
    std::string_view who = user ? std::string_view(name) : std::string_view();
    Audit("login.failure", who, source, "invalid_grant");
    if (throttle_->IsLocked(account_key)) Audit("account.lockout", who, source, "locked");
    return InvalidGrant();
  }
  throttle_->RecordSuccess(account_key, source);
  Audit("login.success", name, source, "success");
  t_request_username = name;

  if (auth::PasswordNeedsRehash(user->password_hash, options_.password_params)) {
    auto h = auth::HashPassword(*password, options_.password_params);
    if (h.ok()) accounts_->SetPasswordHash(name, *h).IgnoreError();  // best effort: the old hash still works
  }
  std::optional<std::string> scope = Narrow(Find(params, "scope"), user->scopes);
  if (!scope) return OAuthError(400, "invalid_scope", "the requested scope exceeds the account's scopes");

  t_inserted_family.clear();
  auto refresh = refresh_->Issue(name, *scope, now);
  if (!refresh.ok()) {
    log::Error("auth.refresh_issue_failed", {{"error", refresh.status().message()}});
    return OAuthError(503, "temporarily_unavailable", "cannot issue tokens right now");
  }
  auto resp = IssueTokens(*user, *scope, *refresh, t_inserted_family, now);
  Wipe(*refresh);
  if (!resp.ok()) {
    if (resp.status().code() == StatusCode::kPermissionDenied) return InvalidGrant();
    return OAuthError(500, "server_error", "cannot issue tokens");
  }
  Audit("token.issued", name, source, "success");
  return std::move(resp).value();
}

http::HttpResponse AuthService::RefreshGrant(const Params& params, const std::string& source) {
  const std::string* token = Find(params, "refresh_token");
  if (token == nullptr || token->empty()) return OAuthError(400, "invalid_request", "refresh_token is required");
  const int64_t now = Now();
  t_reused = false;
  t_inserted_family.clear();
  auto rotated = refresh_->Rotate(*token, now);
  if (!rotated.ok()) {
    if (t_reused) {
      // Someone holds a token that was already exchanged: the login is
      // compromised. Rotate revoked its refresh tokens; end its sessions too.
      sessions_->EndFamily(t_reused_family, now);
      Audit("token.refresh_reuse", t_reused_subject, source, "family_revoked");
      t_reused = false;
    } else {
      Audit("token.refresh_failure", "", source, "invalid_grant");
    }
    return InvalidGrant();
  }
  const std::string family = rotated->record.family;
  auto end_login = [&](std::string_view subject, std::string_view outcome) {
    refresh_store_->RevokeFamily(family);
    sessions_->EndFamily(family, now);
    Audit("token.refresh_failure", subject, source, outcome);
    return InvalidGrant();
  };
  auto user = accounts_->GetUser(rotated->record.subject);
  if (!user.ok() || user->disabled) return end_login(user.ok() ? rotated->record.subject : "", "invalid_grant");
  if (!sessions_->ActiveFamily(family, now)) return end_login(user->username, "idle_timeout");

  t_request_username = user->username;
  // Never more than the account has now: an admin may have narrowed it.
  std::string granted = Intersect(rotated->record.scope, user->scopes);
  std::optional<std::string> scope = Narrow(Find(params, "scope"), granted);
  if (!scope) return OAuthError(400, "invalid_scope", "the requested scope exceeds the original grant");
  auto resp = IssueTokens(*user, *scope, rotated->token, family, now);
  Wipe(rotated->token);
  if (!resp.ok()) {
    if (resp.status().code() == StatusCode::kPermissionDenied) return InvalidGrant();
    return OAuthError(500, "server_error", "cannot issue tokens");
  }
  Audit("token.issued", user->username, source, "success");
  return std::move(resp).value();
}

StatusOr<http::HttpResponse> AuthService::IssueTokens(const store::UserRecord& user, const std::string& scope,
                                                      const std::string& refresh_token, const std::string& family,
                                                      int64_t now_s) {
  auth::TokenRequest req;
  req.sub = user.username;
  req.scope = scope;
  req.fhir_user = user.fhir_user;
  req.role = user.role;
  req.clearances = user.clearances;
  req.session_id = family;
  auto t = issuer_->Issue(req, now_s);
  if (!t.ok()) {
    log::Error("auth.issue_failed", {{"error", t.status().message()}});
    return t.status();
  }
  if (!sessions_->Start(t->jti, family, t->expires_at, now_s)) {
    Wipe(t->token);
    return PermissionDenied("the login was ended while this token was issued");
  }
  boost::json::object o;
  o["access_token"] = t->token;
  o["token_type"] = "Bearer";
  o["expires_in"] = t->expires_at - t->issued_at;
  o["refresh_token"] = refresh_token;
  o["scope"] = scope;
  std::string body = boost::json::serialize(o);
  Wipe(t->token);
  return OAuthJson(200, std::move(body));
}

std::string SourceAddress(std::string_view remote) {
  std::string_view host = remote;
  if (!host.empty() && host.front() == '[') {
    size_t close = host.find(']');
    host = close == std::string_view::npos ? host.substr(1) : host.substr(1, close - 1);
  } else if (size_t colon = host.rfind(':'); colon != std::string_view::npos && host.find(':') == colon) {
    host = host.substr(0, colon);  // v4:port
  }
  std::string h(host);
  unsigned char v6[16];
  if (inet_pton(AF_INET6, h.c_str(), v6) == 1) {
    std::memset(v6 + 8, 0, 8);
    char buf[INET6_ADDRSTRLEN];
    if (inet_ntop(AF_INET6, v6, buf, sizeof buf) != nullptr) return std::string(buf) + "/64";
  }
  return h;
}

StatusOr<Params> ParseFormBody(std::string_view body) {
  Params out;
  size_t i = 0;
  while (i <= body.size()) {
    size_t amp = body.find('&', i);
    if (amp == std::string_view::npos) amp = body.size();
    std::string_view pair = body.substr(i, amp - i);
    i = amp + 1;
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    auto name = FormDecode(pair.substr(0, eq));
    auto value = FormDecode(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1));
    if (!name.ok() || !value.ok()) {
      Wipe(out);
      return !name.ok() ? name.status() : value.status();
    }
    if (Find(out, *name) != nullptr) {
      Wipe(out);
      Wipe(*value);
      return InvalidArgument("a token request parameter is repeated");
    }
    out.emplace_back(std::move(*name), std::move(*value));
  }
  return out;
}

}  // namespace phivault::api
