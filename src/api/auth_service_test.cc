#include "api/auth_service.h"

#include "http/testing/call.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <boost/json.hpp>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>

#include "auth/jwks.h"
#include "auth/jwt.h"
#include "auth/password.h"
#include "auth/totp.h"
#include "common/testing/temp_dir.h"
#include "crypto/keyring.h"

namespace phivault::api {
namespace {

namespace json = boost::json;

constexpr const char* kPassword = "Correct-Horse-Battery-42";
constexpr const char* kIssuer = "https://vault.test";

struct AuditEvent {
  std::string event, username, source, outcome;
};

class AuthServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string key = tmp_.Sub("master.key");
    ASSERT_TRUE(crypto::GenerateKeyFile(key).ok());
    data_ = tmp_.Sub("data");
    crypto::MasterKeySource src;
    src.key_file = key;
    auto kr = crypto::Keyring::Create(data_, src);
    ASSERT_TRUE(kr.ok()) << kr.status().ToString();
    keyring_ = std::move(*kr);
    auto st = store::OpenAccountStore(data_, *keyring_);
    ASSERT_TRUE(st.ok()) << st.status().ToString();
    accounts_ = std::move(*st);

    pw_params_.opslimit = 1;
    pw_params_.memlimit = 8192;
    alice_secret_ = auth::GenerateTotpSecret();
    AddUser("alice", "clinician", "Practitioner/pr1", &alice_secret_, {"R", "HIV"});
    MakeService();
  }

  void MakeService() {
    service_.reset();
    AuthServiceOptions o;
    o.issuer = kIssuer;
    o.password_params = pw_params_;
    o.now_s = [this] { return now_s_.load(); };
    o.steady_now = [this] { return base_ + std::chrono::milliseconds(steady_ms_.load()); };
    o.audit = [this](std::string_view e, std::string_view u, std::string_view s, std::string_view out) {
      std::lock_guard lk(audit_mu_);
      audit_.push_back({std::string(e), std::string(u), std::string(s), std::string(out)});
    };
    auto s = AuthService::Create(accounts_, *keyring_, std::move(o));
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    service_ = std::move(*s);
  }

  void AddUser(const std::string& name, const std::string& role, const std::string& fhir_user,
               const SecureBytes* secret, std::vector<std::string> clearances = {}) {
    store::UserRecord u;
    u.username = name;
    u.role = role;
    u.fhir_user = fhir_user;
    u.clearances = std::move(clearances);
    auto h = auth::HashPassword(kPassword, pw_params_);
    ASSERT_TRUE(h.ok());
    u.password_hash = *h;
    ASSERT_TRUE(accounts_->CreateUser(u, secret).ok());
  }

  // Reply with the Str() accessor these tests use.
  struct Reply : http::testing::Reply {
    std::string Str(const char* member) const {
      auto o = Json();
      auto* v = o.if_contains(member);
      return v && v->is_string() ? std::string(v->as_string()) : "";
    }
  };

  Reply Call(std::string method, std::string path, std::string body, std::string content_type,
             std::string remote = "192.0.2.1:5000") {
    http::HttpRequest req;
    req.method = std::move(method);
    req.target = path;
    req.path = path;
    req.body = std::move(body);
    req.remote_address = std::move(remote);
    if (!content_type.empty()) req.headers.emplace_back("content-type", content_type);
    return Reply{http::testing::CallHandler(*service_, std::move(req))};
  }

  Reply Login(const std::string& user, const std::string& password, const std::string& totp,
              std::string remote = "192.0.2.1:5000") {
    std::string body = "grant_type=password&username=" + user + "&password=" + password;
    if (!totp.empty()) body += "&totp=" + totp;
    return Call("POST", "/auth/token", body, "application/x-www-form-urlencoded", std::move(remote));
  }

  Reply Refresh(const std::string& token) {
    return Call("POST", "/auth/token", "grant_type=refresh_token&refresh_token=" + token,
                "application/x-www-form-urlencoded");
  }

  std::string AliceCode() const { return auth::TotpCode(alice_secret_, now_s_.load()); }

  // Moves both clocks: wall time (TOTP, tokens) and the throttle's monotonic clock.
  void Advance(int64_t seconds) {
    now_s_ += seconds;
    steady_ms_ += seconds * 1000;
  }

  StatusOr<auth::Claims> VerifyWithServedJwks(const std::string& token) {
    Reply jwks = Call("GET", "/.well-known/jwks.json", "", "");
    EXPECT_EQ(jwks.status, 200);
    auto set = auth::KeySet::Parse(jwks.body);
    if (!set.ok()) return set.status();
    auth::VerifierConfig vc;
    vc.issuer = kIssuer;
    vc.audiences = {std::string(kIssuer) + "/fhir"};
    auth::JwtVerifier verifier(vc, std::make_shared<auth::StaticKeySetProvider>(*set));
    return verifier.Verify(token, now_s_.load());
  }

  std::vector<AuditEvent> Events(std::string_view name) {
    std::lock_guard lk(audit_mu_);
    std::vector<AuditEvent> out;
    for (auto& e : audit_) {
      if (e.event == name) out.push_back(e);
    }
    return out;
  }

  testing::TempDir tmp_;
  std::string data_;
  std::unique_ptr<crypto::Keyring> keyring_;
  std::shared_ptr<store::AccountStore> accounts_;
  auth::PasswordHashParams pw_params_;
  SecureBytes alice_secret_;
  std::atomic<int64_t> now_s_{1'800'000'000};
  std::atomic<int64_t> steady_ms_{0};
  std::chrono::steady_clock::time_point base_ = std::chrono::steady_clock::now();
  std::mutex audit_mu_;
  std::vector<AuditEvent> audit_;
  std::unique_ptr<AuthService> service_;
};

TEST_F(AuthServiceTest, LoginWithTotpIssuesVerifiableToken) {
  Reply r = Login("alice", kPassword, AliceCode());
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Header("Cache-Control"), "no-store");
  EXPECT_EQ(r.Str("token_type"), "Bearer");
  EXPECT_EQ(r.Json()["expires_in"].as_int64(), 900);
  EXPECT_EQ(r.Str("scope"), store::DefaultScopesForRole("clinician"));
  EXPECT_EQ(r.Str("refresh_token").size(), 43u);

  auto claims = VerifyWithServedJwks(r.Str("access_token"));
  ASSERT_TRUE(claims.ok()) << claims.status().ToString();
  EXPECT_EQ(claims->sub, "alice");
  EXPECT_EQ(claims->role, "clinician");
  EXPECT_EQ(claims->fhir_user, "Practitioner/pr1");
  EXPECT_EQ(claims->scope, store::DefaultScopesForRole("clinician"));
  EXPECT_EQ(claims->exp, now_s_.load() + 900);
  const json::value* clearance = claims->raw.if_contains(auth::kClearanceClaim);
  ASSERT_NE(clearance, nullptr);
  EXPECT_EQ(json::serialize(*clearance), R"(["R","HIV"])");

  EXPECT_EQ(service_->sessions().Touch(claims->jti, now_s_.load()), SessionTracker::State::kLive);
  ASSERT_EQ(Events("login.success").size(), 1u);
  EXPECT_EQ(Events("login.success")[0].username, "alice");
  EXPECT_EQ(Events("login.success")[0].source, "192.0.2.1");
  EXPECT_EQ(Events("token.issued").size(), 1u);
  // Audit fields never carry secrets.
  std::lock_guard lk(audit_mu_);
  for (auto& e : audit_) {
    for (const std::string* f : {&e.event, &e.username, &e.source, &e.outcome}) {
      EXPECT_EQ(f->find(kPassword), std::string::npos);
      EXPECT_EQ(f->find(r.Str("refresh_token")), std::string::npos);
    }
  }
}

TEST_F(AuthServiceTest, JsonBodyAndScopeNarrowing) {
  std::string body = R"({"grant_type":"password","username":"ALICE","password":")" + std::string(kPassword) +
                     R"(","totp":")" + AliceCode() + R"(","scope":"openid user/*.cruds"})";
  Reply r = Call("POST", "/auth/token", body, "application/json; charset=utf-8");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Str("scope"), "openid user/*.cruds");

  Advance(30);
  body = R"({"grant_type":"password","username":"alice","password":")" + std::string(kPassword) +
         R"(","totp":")" + AliceCode() + R"(","scope":"system/*.cruds"})";
  r = Call("POST", "/auth/token", body, "application/json");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.Str("error"), "invalid_scope");
  // The password checked out, then the scope was refused: both are recorded,
  // and the refusal names the account.
  EXPECT_EQ(Events("login.success").size(), 2u);
  EXPECT_EQ(Events("token.issued").size(), 1u);
  auto refused = Events("token.request_refused");
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_EQ(refused[0].username, "alice");
  EXPECT_EQ(refused[0].outcome, "invalid_scope");
}

TEST_F(AuthServiceTest, FailedLoginsAreIndistinguishable) {
  SecureBytes bob_secret = auth::GenerateTotpSecret();
  AddUser("bob", "registration", "", &bob_secret);
  ASSERT_TRUE(accounts_->SetUserDisabled("bob", true).ok());
  AddUser("norm", "privacy-officer", "", nullptr);  // role needs MFA, never enrolled

  std::vector<Reply> replies;
  int addr = 1;
  auto attempt = [&](const std::string& user, const std::string& pw, const std::string& code) {
    Advance(31);  // past any backoff and into a fresh TOTP step
    replies.push_back(Login(user, pw, code, "198.51.100." + std::to_string(addr++) + ":4000"));
  };
  attempt("nobody", kPassword, "123456");                                      // unknown user
  attempt("alice", "Wrong-Password-123", AliceCode());                         // wrong password
  attempt("alice", kPassword, AliceCode() == "000000" ? "000001" : "000000");  // wrong TOTP
  attempt("alice", kPassword, "");                                             // missing TOTP
  attempt("bob", kPassword, auth::TotpCode(bob_secret, now_s_.load() + 31));   // disabled (right password + code)
  attempt("norm", kPassword, "");                                              // MFA role, not enrolled
  attempt("Nobody.Else", "x", "");                                             // unknown, short password
  attempt(std::string(300, 'z'), kPassword, "");                               // not even a valid name
  for (const Reply& r : replies) {
    EXPECT_EQ(r.status, 400);
    EXPECT_EQ(r.body, replies[0].body);
    EXPECT_EQ(r.Header("Retry-After"), "");
  }
  EXPECT_EQ(replies[0].Str("error"), "invalid_grant");
  // Failures name the account only when it exists.
  auto failures = Events("login.failure");
  ASSERT_EQ(failures.size(), replies.size());
  EXPECT_EQ(failures[0].username, "");
  EXPECT_EQ(failures[1].username, "alice");
  EXPECT_EQ(failures[6].username, "");
  // A failed login is recorded once, not again as a refused request.
  EXPECT_TRUE(Events("token.request_refused").empty());
}

TEST_F(AuthServiceTest, UnknownNamesCostAPasswordCheckToo) {
  // With a realistic Argon2id cost, an unknown name must take about as long
  // as a wrong password for a real one (DummyVerifyPassword). Loose bounds:
  // this guards against the dummy check going missing, not against jitter.
  pw_params_.opslimit = 2;
  pw_params_.memlimit = size_t{8} << 20;
  AddUser("timed", "registration", "", nullptr);
  MakeService();
  auto median_ms = [&](const std::string& user) {
    std::vector<double> t;
    for (int i = 0; i < 5; ++i) {
      Advance(400);
      auto start = std::chrono::steady_clock::now();
      EXPECT_EQ(Login(user, "Wrong-Password-123", "", "192.0.2." + std::to_string(100 + i) + ":1").status, 400);
      t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
    }
    std::sort(t.begin(), t.end());
    return t[2];
  };
  double known = median_ms("timed");
  double unknown = median_ms("nobody-at-all");
  EXPECT_GT(unknown, known / 4) << "known " << known << " ms, unknown " << unknown << " ms";
  EXPECT_LT(unknown, known * 4) << "known " << known << " ms, unknown " << unknown << " ms";
}

TEST_F(AuthServiceTest, RepeatedFailuresLockTheAccountAndUnknownNamesAlike) {
  for (int i = 0; i < 5; ++i) {
    Advance(400);  // past the per-account backoff (1 s doubling)
    EXPECT_EQ(Login("alice", "Wrong-Password-" + std::to_string(i), "", "203.0.113." + std::to_string(i) + ":1").status,
              400);
    EXPECT_EQ(Login("ghost", "Wrong-Password-" + std::to_string(i), "", "203.0.113." + std::to_string(i) + ":2").status,
              400);
  }
  Advance(400);
  Reply locked = Login("alice", kPassword, AliceCode(), "203.0.113.99:1");
  EXPECT_EQ(locked.status, 429) << "the right password does not open a locked account";
  EXPECT_FALSE(locked.Header("Retry-After").empty());
  Reply ghost = Login("ghost", kPassword, "", "203.0.113.98:1");
  EXPECT_EQ(ghost.status, 429);
  EXPECT_EQ(ghost.body, locked.body);
  EXPECT_EQ(ghost.Header("Retry-After"), locked.Header("Retry-After"));

  auto lockouts = Events("account.lockout");
  ASSERT_EQ(lockouts.size(), 2u);
  EXPECT_EQ(lockouts[0].username, "alice");
  EXPECT_EQ(lockouts[1].username, "");

  service_->UnlockAccount("Alice");
  Advance(30);
  EXPECT_EQ(Login("alice", kPassword, AliceCode(), "203.0.113.97:1").status, 200);
}

TEST_F(AuthServiceTest, SourceAddressIsSlowedDown) {
  // Guessing across many names from one address: after the free failures the
  // address must wait, whatever name it tries next.
  // The default config lets 5 failures through, then backs off.
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(Login("user" + std::to_string(i), "Wrong-Password-1", "", "192.0.2.77:1").status, 400);
  }
  Reply slowed = Login("alice", kPassword, AliceCode(), "192.0.2.77:2");
  ASSERT_EQ(slowed.status, 429);
  ASSERT_FALSE(slowed.Header("Retry-After").empty());
  int retry = std::stoi(slowed.Header("Retry-After"));
  EXPECT_GE(retry, 1);
  // Another address is not affected, and this one may try again later.
  EXPECT_EQ(Login("alice", kPassword, AliceCode(), "192.0.2.78:1").status, 200);
  Advance(retry + 30);
  EXPECT_EQ(Login("alice", kPassword, AliceCode(), "192.0.2.77:3").status, 200);
  EXPECT_FALSE(Events("login.throttled").empty());
}

TEST_F(AuthServiceTest, TotpCodeCannotBeReplayed) {
  std::string code = AliceCode();
  ASSERT_EQ(Login("alice", kPassword, code).status, 200);
  Reply again = Login("alice", kPassword, code, "192.0.2.2:1");
  EXPECT_EQ(again.status, 400);
  EXPECT_EQ(again.Str("error"), "invalid_grant");
  // Survives a restart of the service (the guard is stored with the account).
  MakeService();
  Advance(2);
  EXPECT_EQ(Login("alice", kPassword, code, "192.0.2.3:1").status, 400);
  Advance(30);
  EXPECT_EQ(Login("alice", kPassword, AliceCode(), "192.0.2.4:1").status, 200);
}

TEST_F(AuthServiceTest, RefreshRotatesAndReuseRevokesTheFamily) {
  Reply login = Login("alice", kPassword, AliceCode());
  ASSERT_EQ(login.status, 200);
  std::string r1 = login.Str("refresh_token");
  auto c1 = VerifyWithServedJwks(login.Str("access_token"));
  ASSERT_TRUE(c1.ok());

  Advance(600);
  ASSERT_EQ(service_->sessions().Touch(c1->jti, now_s_.load()), SessionTracker::State::kLive);
  Reply first = Refresh(r1);
  ASSERT_EQ(first.status, 200) << first.body;
  std::string r2 = first.Str("refresh_token");
  EXPECT_NE(r2, r1);
  auto c2 = VerifyWithServedJwks(first.Str("access_token"));
  ASSERT_TRUE(c2.ok());
  EXPECT_EQ(c2->sub, "alice");
  EXPECT_EQ(c2->role, "clinician");
  EXPECT_NE(c2->jti, c1->jti);
  EXPECT_EQ(service_->sessions().Touch(c2->jti, now_s_.load()), SessionTracker::State::kLive);

  Reply second = Refresh(r2);
  ASSERT_EQ(second.status, 200);
  std::string r3 = second.Str("refresh_token");

  // An attacker replays the first token: the whole login is revoked.
  Reply reuse = Refresh(r1);
  EXPECT_EQ(reuse.status, 400);
  EXPECT_EQ(reuse.Str("error"), "invalid_grant");
  EXPECT_EQ(Refresh(r3).status, 400) << "the legitimate client's newest token died with the family";
  EXPECT_EQ(service_->sessions().Touch(c2->jti, now_s_.load()), SessionTracker::State::kEnded) << "and so did its sessions";
  auto reuses = Events("token.refresh_reuse");
  ASSERT_EQ(reuses.size(), 1u);
  EXPECT_EQ(reuses[0].username, "alice");

  EXPECT_EQ(Refresh("not-a-token").status, 400);
  EXPECT_EQ(Refresh(std::string(43, 'A')).status, 400);
}

TEST_F(AuthServiceTest, IdleSessionsExpireAndCannotBeRefreshed) {
  Reply login = Login("alice", kPassword, AliceCode());
  ASSERT_EQ(login.status, 200);
  auto c = VerifyWithServedJwks(login.Str("access_token"));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(service_->sessions().Touch("unknown-jti", now_s_.load()), SessionTracker::State::kUnknown);
  Advance(14 * 60);
  EXPECT_EQ(service_->sessions().Touch(c->jti, now_s_.load()), SessionTracker::State::kLive);
  Advance(15 * 60 + 1);
  EXPECT_EQ(service_->sessions().Touch(c->jti, now_s_.load()), SessionTracker::State::kEnded);
  Reply r = Refresh(login.Str("refresh_token"));
  EXPECT_EQ(r.status, 400);
  EXPECT_FALSE(Events("token.refresh_failure").empty());
  EXPECT_EQ(Events("token.refresh_failure").back().outcome, "idle_timeout");
}

TEST_F(AuthServiceTest, DisabledUserCannotRefresh) {
  Reply login = Login("alice", kPassword, AliceCode());
  ASSERT_EQ(login.status, 200);
  ASSERT_TRUE(accounts_->SetUserDisabled("alice", true).ok());
  EXPECT_EQ(Refresh(login.Str("refresh_token")).status, 400);
}

TEST_F(AuthServiceTest, PatientsMayLogInWithoutMfaUnlessEnrolled) {
  AddUser("pat", "patient", "Patient/p1", nullptr);
  Reply r = Login("pat", kPassword, "");
  ASSERT_EQ(r.status, 200) << r.body;
  auto c = VerifyWithServedJwks(r.Str("access_token"));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->role, "patient");
  EXPECT_EQ(c->fhir_user, "Patient/p1");
  EXPECT_EQ(c->raw.if_contains(auth::kClearanceClaim), nullptr);

  SecureBytes s = auth::GenerateTotpSecret();
  ASSERT_TRUE(accounts_->SetTotpSecret("pat", s).ok());
  Advance(5);
  EXPECT_EQ(Login("pat", kPassword, "", "192.0.2.9:1").status, 400);
  Advance(5);
  EXPECT_EQ(Login("pat", kPassword, auth::TotpCode(s, now_s_.load()), "192.0.2.9:2").status, 200);
}

TEST_F(AuthServiceTest, MalformedRequestsAreRejectedCleanly) {
  auto form = [&](const std::string& body) {
    return Call("POST", "/auth/token", body, "application/x-www-form-urlencoded");
  };
  EXPECT_EQ(Call("GET", "/auth/token", "", "").status, 405);
  EXPECT_EQ(Call("POST", "/auth/token", "grant_type=password", "text/plain").Str("error"), "invalid_request");
  EXPECT_EQ(Call("POST", "/auth/token", "grant_type=password", "").status, 400);
  EXPECT_EQ(form("grant_type=client_credentials").Str("error"), "unsupported_grant_type");
  EXPECT_EQ(form("").Str("error"), "invalid_request");
  EXPECT_EQ(form("grant_type=password&username=alice").Str("error"), "invalid_request");
  EXPECT_EQ(form("grant_type=password&grant_type=password&username=a&password=b").Str("error"), "invalid_request");
  EXPECT_EQ(form("grant_type=password&username=%zz&password=b").Str("error"), "invalid_request");
  EXPECT_EQ(form("grant_type=password&username=%00&password=b").Str("error"), "invalid_request");
  EXPECT_EQ(form("grant_type=password&username=a&password=%4").Str("error"), "invalid_request");
  EXPECT_EQ(form(std::string(100000, 'a')).status, 400);
  EXPECT_EQ(form(std::string("\xff\xfe=\x01&&&==&")).status, 400);
  auto js = [&](const std::string& body) { return Call("POST", "/auth/token", body, "application/json"); };
  EXPECT_EQ(js("[1,2]").Str("error"), "invalid_request");
  EXPECT_EQ(js("{\"grant_type\":\"password\",\"username\":1}").Str("error"), "invalid_request");
  EXPECT_EQ(js("{\"grant_type\":\"password\",\"grant_type\":\"password\"}").Str("error"), "invalid_request");
  EXPECT_EQ(js("{\"grant_type\":{\"a\":{\"b\":1}}}").status, 400);
  EXPECT_EQ(js("{not json").status, 400);
  // Each refused request to the token endpoint left exactly one entry, with the
  // OAuth error as its outcome and the caller's address; none names an account.
  auto refused = Events("token.request_refused");
  ASSERT_EQ(refused.size(), 17u);
  EXPECT_EQ(refused[0].outcome, "invalid_request");  // the GET
  EXPECT_EQ(refused[3].outcome, "unsupported_grant_type");
  for (const auto& e : refused) {
    EXPECT_EQ(e.source, "192.0.2.1");
    EXPECT_EQ(e.username, "");
  }
  {
    std::lock_guard lk(audit_mu_);
    EXPECT_EQ(audit_.size(), refused.size());
  }
  EXPECT_EQ(Call("POST", "/.well-known/jwks.json", "", "").status, 405);
  EXPECT_EQ(Call("GET", "/auth/other", "", "").status, 404);
  EXPECT_TRUE(AuthService::Handles("/auth/token"));
  EXPECT_TRUE(AuthService::Handles("/.well-known/jwks.json"));
  EXPECT_FALSE(AuthService::Handles("/fhir/Patient"));
}

// A token service with one login worker that the test can hold inside the
// audit hook of the first request it audits, so that later requests stay
// queued until Release().
class HeldWorker {
 public:
  HeldWorker(const std::shared_ptr<store::AccountStore>& accounts, const crypto::Keyring& keyring,
             const auth::PasswordHashParams& pw, size_t max_queued) {
    AuthServiceOptions o;
    o.issuer = kIssuer;
    o.password_params = pw;
    o.login_threads = 1;
    o.max_queued = max_queued;
    o.audit = [this](std::string_view e, std::string_view u, std::string_view src, std::string_view out) {
      std::unique_lock lk(mu_);
      seen_.push_back({std::string(e), std::string(u), std::string(src), std::string(out)});
      if (!held_) {
        held_ = true;
        cv_.notify_all();
        cv_.wait(lk, [&] { return released_; });
      }
    };
    auto svc = AuthService::Create(accounts, keyring, std::move(o));
    EXPECT_TRUE(svc.ok()) << svc.status().ToString();
    if (svc.ok()) service = std::move(*svc);
  }

  void Post(std::string body, std::string remote, std::function<void(http::HttpResponse)> respond) {
    http::HttpRequest req;
    req.method = "POST";
    req.target = req.path = "/auth/token";
    req.body = std::move(body);
    req.remote_address = std::move(remote);
    req.headers.emplace_back("content-type", "application/x-www-form-urlencoded");
    service->Handle(std::move(req), std::move(respond));
  }
  // Sends a malformed request and waits until the worker is held auditing it.
  void HoldTheWorker() {
    Post("grant_type=nope", "192.0.2.1:1", [](http::HttpResponse) {});
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return held_; });
  }
  void Release() {
    {
      std::lock_guard lk(mu_);
      released_ = true;
    }
    cv_.notify_all();
  }
  // The audit entries seen from `source` (an address without port).
  std::vector<AuditEvent> From(std::string_view source) {
    std::lock_guard lk(mu_);
    std::vector<AuditEvent> out;
    for (const auto& e : seen_) {
      if (e.source == source) out.push_back(e);
    }
    return out;
  }

  ~HeldWorker() {
    Release();
    service.reset();  // its hook uses the members below
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool released_ = false, held_ = false;
  std::vector<AuditEvent> seen_;

 public:
  std::unique_ptr<AuthService> service;  // last: destroyed before the hook's state
};

TEST_F(AuthServiceTest, ARequestRefusedBecauseTheQueueIsFullIsAudited) {
  // One queue slot: while the worker is held, a second request waits in the
  // queue and a third finds it full.
  HeldWorker w(accounts_, *keyring_, pw_params_, 1);
  ASSERT_NE(w.service, nullptr);
  w.HoldTheWorker();
  w.Post("grant_type=nope", "192.0.2.2:1", [](http::HttpResponse) {});
  int status = 0;
  w.Post("grant_type=password&username=a&password=b", "192.0.2.3:1", [&](http::HttpResponse r) { status = r.status; });
  EXPECT_EQ(status, 503);
  w.Release();
  w.service.reset();  // joins the worker
  const std::vector<AuditEvent> refused = w.From("192.0.2.3");
  ASSERT_EQ(refused.size(), 1u) << "the refused request left no entry";
  EXPECT_EQ(refused[0].event, "token.request_refused");
  EXPECT_EQ(refused[0].outcome, "temporarily_unavailable");
  EXPECT_EQ(refused[0].username, "") << "the body of a refused request is never read";
}

TEST_F(AuthServiceTest, RequestsStillQueuedAtShutdownAreAudited) {
  // The worker is held while a second request waits in the queue; then the
  // service is destroyed. Whichever way the release and the stop
  // interleave, the queued request must leave exactly one entry. In the
  // usual order (the stop is seen first, the release comes 100 ms later)
  // the destructor refuses it, and that refusal is what this test is about.
  HeldWorker w(accounts_, *keyring_, pw_params_, 4);
  ASSERT_NE(w.service, nullptr);
  w.HoldTheWorker();
  std::atomic<int> queued_status{0};
  w.Post("grant_type=nope", "192.0.2.2:1", [&](http::HttpResponse r) { queued_status = r.status; });
  std::thread stopper([&] { w.service.reset(); });  // blocks joining the held worker
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  w.Release();
  stopper.join();
  const std::vector<AuditEvent> queued = w.From("192.0.2.2");
  ASSERT_EQ(queued.size(), 1u) << "the queued request left no entry (or two)";
  EXPECT_EQ(queued[0].event, "token.request_refused");
  if (queued_status == 503) {
    EXPECT_EQ(queued[0].outcome, "temporarily_unavailable") << "refused by the shutdown";
    EXPECT_EQ(queued[0].username, "") << "the body of a request refused at shutdown is never read";
  } else {
    EXPECT_EQ(queued_status, 400) << "the worker answered it before the stop";
  }
}

TEST(AuthHelpersTest, ParseFormBody) {
  auto p = ParseFormBody("a=1&b=x+y%21&c=&d");
  ASSERT_TRUE(p.ok());
  ASSERT_EQ(p->size(), 4u);
  EXPECT_EQ((*p)[1].second, "x y!");
  EXPECT_EQ((*p)[2].second, "");
  EXPECT_EQ((*p)[3].first, "d");
  EXPECT_FALSE(ParseFormBody("a=%").ok());
  EXPECT_FALSE(ParseFormBody("a=%g0").ok());
  EXPECT_FALSE(ParseFormBody("a=1&a=2").ok());
}

TEST(AuthHelpersTest, SourceAddress) {
  EXPECT_EQ(SourceAddress("127.0.0.1:54321"), "127.0.0.1");
  EXPECT_EQ(SourceAddress("[2001:db8:1:2:3:4:5:6]:443"), "2001:db8:1:2::/64");
  EXPECT_EQ(SourceAddress("[::1]:443"), "::/64");
  EXPECT_EQ(SourceAddress("unknown"), "unknown");
  EXPECT_EQ(SourceAddress(""), "");
}

TEST(SessionTrackerTest, BoundedAndEndable) {
  SessionTracker::Options o;
  o.max_entries = 16;
  SessionTracker t(o);
  for (int i = 0; i < 100; ++i) {
    EXPECT_TRUE(t.Start("j" + std::to_string(i), "f" + std::to_string(i), 10'000, 100 + i));
  }
  EXPECT_LE(t.size(), 16u);
  EXPECT_EQ(t.Touch("j99", 200), SessionTracker::State::kLive);
  t.EndFamily("f99", 200);
  EXPECT_EQ(t.Touch("j99", 200), SessionTracker::State::kEnded);
  EXPECT_EQ(t.Touch("j99", 9'000), SessionTracker::State::kEnded) << "an ended login stays ended until expiry";
  // A refresh that raced the reuse cannot bring the login back.
  EXPECT_FALSE(t.Start("j99b", "f99", 10'000, 201));
  EXPECT_EQ(t.Touch("j99", 201), SessionTracker::State::kEnded);
  EXPECT_EQ(t.Touch("j99b", 201), SessionTracker::State::kUnknown) << "never registered";
  // Filling the table forgets live logins' tokens, never the ended one's.
  for (int i = 100; i < 200; ++i) {
    EXPECT_TRUE(t.Start("j" + std::to_string(i), "f" + std::to_string(i), 10'000, 300 + i));
  }
  EXPECT_EQ(t.Touch("j99", 600), SessionTracker::State::kEnded);
  EXPECT_TRUE(t.Start("x", "fx", 150, 100));
  EXPECT_EQ(t.Touch("x", 150), SessionTracker::State::kEnded) << "the token itself expired";
}

}  // namespace
}  // namespace phivault::api
