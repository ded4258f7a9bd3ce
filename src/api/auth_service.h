// AuthService: the vault's own OAuth 2.0 token endpoint for built-in accounts
// (POST /auth/token) and its public signing key (GET /.well-known/jwks.json);
// SessionTracker: idle expiry of the logins it creates.
//
// POST /auth/token accepts application/x-www-form-urlencoded (RFC 6749) or a
// flat JSON object with string members:
//   grant_type=password       username, password, totp (6 digits; required
//                             for clinician, registration, privacy-officer,
//                             security-admin, and for patients who enrolled),
//                             optional scope (a subset of the account's scopes)
//   grant_type=refresh_token  refresh_token, optional scope (a subset)
// and answers 200 {"access_token","token_type":"Bearer","expires_in",
// "refresh_token","scope"} with Cache-Control: no-store. Access tokens are
// EdDSA JWTs from auth::TokenIssuer (keyring token signing key, 15 minutes by
// default) with claims sub (user name), role, fhirUser, scope and
// "phivault_clearance" (array). Refresh tokens rotate on every use; a reused
// one revokes its whole login (family) and that login's sessions.
//
// Errors follow RFC 6749 section 5.2 with a JSON body {"error","error_description"}:
// 400 invalid_request / unsupported_grant_type / invalid_scope, 405 for other
// methods, 503 when the login queue is full. Every failed credential check —
// unknown user, wrong password, wrong or missing or replayed TOTP, disabled
// account, account without the MFA its role needs — gets the SAME 400
// invalid_grant body, and costs the same Argon2id verification (a dummy one
// for unknown names), so responses do not reveal which names exist. Attempts
// are throttled per account name (known or not) and per source address (IPv6
// by /64) with auth::LoginThrottle: a throttled or locked attempt gets 429
// with Retry-After and one fixed body, before any password is checked, so the
// right password does not get through a lock either. Locks are in memory
// (manual unlock by default): UnlockAccount() or a restart clears them.
// Refresh grants are not throttled: a refresh token is 256 random bits, and a
// stolen one is caught by reuse detection; they still go through the bounded
// queue. TOTP codes are single-use: the last accepted step is stored durably with
// the account (AccountStore::AcceptTotpStep), so a replay fails even across
// restarts.
//
// Password checks are slow on purpose (Argon2id, tens of MiB each), so token
// requests run on a small pool of worker threads (options.login_threads) with
// a bounded queue; Handle() never blocks a network thread on them.
//
// Audit: the AuditHook is called for every login success and failure, every
// token issued, throttled attempts, lockouts and refresh outcomes, with the
// user name ONLY when the account exists (people type passwords into the
// name field) and the source address without port. Never with a password,
// TOTP code or token.
//
// Thread-safety: Handle() may be called from any thread concurrently; every
// public method is thread-safe. Lifetime: the service keeps the account store
// (shared) and its own copies of keys; it does not keep the keyring. The
// destructor stops the workers and answers queued requests with 503 (each
// audited through the hook, which must therefore outlive the service); the
// Responders it was given may be called until then.
#ifndef PHIVAULT_API_AUTH_SERVICE_H_
#define PHIVAULT_API_AUTH_SERVICE_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "auth/login_throttle.h"
#include "auth/password.h"
#include "auth/token_issuer.h"
#include "auth/totp.h"
#include "common/status.h"
#include "crypto/keyring.h"
#include "http/types.h"
#include "store/account_store.h"

namespace phivault::api {

// (event, user name or "", source address or "cli", outcome). Events:
// login.success, login.failure, login.throttled, account.lockout,
// token.issued, token.refresh_failure, token.refresh_reuse, and for admin
// commands user.add, user.disable, user.reset_mfa, device.add,
// device.disable. Outcomes are short fixed words ("success",
// "invalid_grant", "locked", ...). Must not block for long; called on the
// login worker threads.
using AuditHook = std::function<void(std::string_view event, std::string_view username, std::string_view source,
                                     std::string_view outcome)>;

// Idle expiry and revocation of logins. A session is one login: the access
// tokens it gets, including those from refreshing, share one idle clock.
// AccessControl calls Touch(claims.jti, now) on every request authenticated
// with a token of this vault's issuer (AccessConfig::sessions) and rejects
// the request (401) when it answers kEnded.
//
// Touch answers kEnded when the token's login had no request for longer than
// idle_timeout, or was ended by EndFamily (refresh-token reuse: the login is
// compromised, so the access tokens already issued to it die at once, not at
// their expiry). An ended token stays known, and keeps answering kEnded,
// until its own expiry. A jti this tracker never saw (a token from before a
// restart, a service token from `phivault token issue`) is kUnknown, and
// the caller applies its own idle rule to it.
// A refresh is not activity: refreshing a login idle for longer than the
// timeout fails (ActiveFamily), so a background app cannot keep an
// abandoned session alive; requests are (Touch).
//
// Thread-safety: all methods are thread-safe (one mutex). Memory is bounded
// by max_entries; expired entries are pruned as new sessions start.
class SessionTracker {
 public:
  struct Options {
    std::chrono::seconds idle_timeout{15 * 60};
    size_t max_entries = 200000;
  };
  enum class State { kLive, kEnded, kUnknown };

  SessionTracker() : SessionTracker(Options{}) {}
  explicit SessionTracker(Options options);

  // Registers an access token of login `family`, valid until expires_at_s.
  // A new family starts its idle clock now; an existing one keeps its clock.
  // False, registering nothing, for a family that was ended: a refresh that
  // raced the reuse that ended its login must not bring the login back (the
  // caller then refuses the token).
  [[nodiscard]] bool Start(std::string_view jti, std::string_view family, int64_t expires_at_s, int64_t now_s);
  // See above. Records activity when the answer is kLive.
  State Touch(std::string_view jti, int64_t now_s);
  // True if the login had activity within the idle timeout (refresh grant).
  bool ActiveFamily(std::string_view family, int64_t now_s);
  // Ends a login at once (refresh token reuse, logout): its tokens' Touch
  // answers kEnded from now on.
  void EndFamily(std::string_view family, int64_t now_s);
  size_t size() const;

 private:
  struct Token {
    std::string family;
    int64_t expires_at_s;
  };
  void PruneLocked(int64_t now_s);
  Options options_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Token> tokens_;       // jti -> login
  std::unordered_map<std::string, int64_t> families_;   // live login -> last activity (s)
  // Logins ended by EndFamily -> the last expiry of their tokens then; kept
  // until that passes, so Start cannot revive them meanwhile.
  std::unordered_map<std::string, int64_t> ended_;
};

struct AuthServiceOptions {
  // Token "iss" (the vault's base URL, e.g. https://vault.example.org) and
  // "aud" (default: issuer + "/fhir").
  std::string issuer;
  std::string audience;
  std::chrono::seconds access_token_lifetime{15 * 60};
  auth::RefreshTokenManager::Options refresh;
  SessionTracker::Options sessions;
  auth::ThrottleConfig throttle;
  // Argon2id cost of the dummy check for unknown names and of rehashing;
  // keep it equal to what `phivault user add` uses (the defaults).
  auth::PasswordHashParams password_params;
  auth::TotpParams totp;
  int login_threads = 2;
  size_t max_queued = 64;     // beyond: 503 + Retry-After
  size_t max_body_bytes = 8192;
  // Unix time in seconds; tests inject. Default: the system clock.
  std::function<int64_t()> now_s;
  // Monotonic clock for the throttle; tests inject. Default: steady_clock.
  auth::LoginThrottle::Clock steady_now;
  AuditHook audit;  // may be empty
};

class AuthService final : public http::Handler {
 public:
  // REQUIRES: accounts != nullptr. InvalidArgument for a bad issuer config.
  static StatusOr<std::unique_ptr<AuthService>> Create(std::shared_ptr<store::AccountStore> accounts,
                                                       const crypto::Keyring& keyring, AuthServiceOptions options);
  ~AuthService() override;  // Stop()s

  // Stops the login workers and refuses the requests still queued (503,
  // each audited). Later token requests are refused as the queue is full.
  // Idempotent. `serve` calls it before it records its stop, so that those
  // refusals precede the stop in the log.
  void Stop();

  // True for the paths this service answers (/auth/token, /.well-known/jwks.json).
  static bool Handles(std::string_view path);
  // Answers a request for one of those paths (404 for any other).
  void Handle(http::HttpRequest request, http::Responder respond) override;

  // The public key set the access tokens verify with (what GET jwks.json serves).
  std::string JwksJson() const;
  const auth::TokenIssuer& issuer() const { return *issuer_; }
  SessionTracker& sessions() { return *sessions_; }
  // Clears a lockout and backoff for `username` (for an admin endpoint).
  void UnlockAccount(std::string_view username);
  // Replaces the audit hook (e.g. once the audit log is open). Thread-safe.
  void SetAuditHook(AuditHook hook);

 private:
  struct Job {
    http::HttpRequest request;
    http::Responder respond;
  };
  class RefreshStoreAdapter;

  AuthService() = default;
  void WorkerLoop();
  // Answers one token request; audits a refusal that recorded no entry.
  http::HttpResponse HandleToken(http::HttpRequest& request);
  http::HttpResponse HandleTokenRequest(http::HttpRequest& request);
  http::HttpResponse PasswordGrant(const std::vector<std::pair<std::string, std::string>>& params,
                                   const std::string& source);
  http::HttpResponse RefreshGrant(const std::vector<std::pair<std::string, std::string>>& params,
                                  const std::string& source);
  StatusOr<http::HttpResponse> IssueTokens(const store::UserRecord& user, const std::string& scope,
                                           const std::string& refresh_token, const std::string& family,
                                           int64_t now_s);
  void Audit(std::string_view event, std::string_view username, std::string_view source, std::string_view outcome);
  int64_t Now() const { return options_.now_s(); }

  AuthServiceOptions options_;
  std::shared_ptr<store::AccountStore> accounts_;
  std::shared_ptr<RefreshStoreAdapter> refresh_store_;
  std::unique_ptr<auth::TokenIssuer> issuer_;
  std::unique_ptr<auth::RefreshTokenManager> refresh_;
  std::unique_ptr<auth::LoginThrottle> throttle_;
  std::unique_ptr<SessionTracker> sessions_;
  std::string jwks_json_;

  std::mutex audit_mu_;
  AuditHook audit_;

  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::deque<Job> queue_;
  bool stopping_ = false;
  std::vector<std::thread> workers_;
  int64_t last_prune_s_ = 0;  // guarded by queue_mu_
};

// The source address of a request for throttling and audit: the IP without
// port; IPv6 addresses reduced to their /64 (one host usually owns a /64).
std::string SourceAddress(std::string_view remote_address);

// Parses an application/x-www-form-urlencoded body ('+' is a space, %XX
// escapes). InvalidArgument for a bad escape, a NUL byte or a repeated name
// (RFC 6749 3.1: parameters must not be repeated).
StatusOr<std::vector<std::pair<std::string, std::string>>> ParseFormBody(std::string_view body);

}  // namespace phivault::api

#endif  // PHIVAULT_API_AUTH_SERVICE_H_
