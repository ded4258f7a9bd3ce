// Fuzzes the OAuth token endpoint (POST /auth/token, api/auth_service.h),
// the one place that takes credentials from anyone on the network, against a
// real account store. It reaches the body parsers (form and JSON), the grant
// dispatch, password and TOTP checks, the throttle, refresh-token rotation
// and reuse detection, and scope narrowing.
//
// Input: byte 0 picks the Content-Type (bits 0-1) and what is put before the
// rest of the body (bits 2-3): nothing, alice's right password, or the live
// refresh token of an earlier login, so the paths behind a valid credential
// are reached too. The rest is the body.
//
// Every request must get one answer that is a JSON object; a refusal carries
// an OAuth "error" and leaves at least one audit event; no 500; a token is
// issued only for a right credential; no audit field ever holds a password.
#include <atomic>
#include <boost/json.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "api/auth_service.h"
#include "auth/password.h"
#include "crypto/keyring.h"
#include "fuzz_scratch.h"
#include "http/testing/call.h"

namespace {

using namespace phivault;

constexpr std::string_view kPassword = "Fuzz-Correct-Horse-77";

struct Fixture {
  std::unique_ptr<crypto::Keyring> keyring;
  std::shared_ptr<store::AccountStore> accounts;
  std::unique_ptr<api::AuthService> service;
  std::atomic<int64_t> now_s{1767225600};
  std::atomic<int64_t> steady_ms{0};
  std::chrono::steady_clock::time_point base = std::chrono::steady_clock::now();
  std::mutex mu;
  std::string refresh;  // the latest refresh token issued
  size_t audit_events = 0;
  bool audit_leak = false;
};

Fixture& Get() {
  static Fixture* f = [] {
    auto* fx = new Fixture;
    const std::string dir = fuzzing::MakeScratchDir();
    auto k = crypto::Keyring::Create(dir, fuzzing::MakeKeyFile(dir));
    if (!k.ok()) std::abort();
    fx->keyring = std::move(*k);
    auto st = store::OpenAccountStore(dir, *fx->keyring);
    if (!st.ok()) std::abort();
    fx->accounts = std::move(*st);

    auth::PasswordHashParams pw;
    pw.opslimit = 1;
    pw.memlimit = 8192;
    store::UserRecord u;
    u.username = "alice";
    u.role = "patient";  // no second factor unless enrolled
    u.fhir_user = "Patient/p1";
    auto h = auth::HashPassword(kPassword, pw);
    if (!h.ok()) std::abort();
    u.password_hash = *h;
    if (!fx->accounts->CreateUser(u, nullptr).ok()) std::abort();

    api::AuthServiceOptions o;
    o.issuer = "https://vault.fuzz";
    o.password_params = pw;
    o.login_threads = 1;
    // Lockouts and address back-off lift within the minute each input
    // advances the clocks, so neither shuts the endpoint for the run.
    o.throttle.lockout_duration = std::chrono::seconds(60);
    o.throttle.max_delay = std::chrono::seconds(30);
    o.now_s = [fx] { return fx->now_s.load(); };
    o.steady_now = [fx] { return fx->base + std::chrono::milliseconds(fx->steady_ms.load()); };
    o.audit = [fx](std::string_view e, std::string_view u, std::string_view s, std::string_view out) {
      std::lock_guard lk(fx->mu);
      ++fx->audit_events;
      for (std::string_view field : {e, u, s, out}) {
        if (field.find(kPassword) != std::string_view::npos) fx->audit_leak = true;
      }
    };
    auto s = api::AuthService::Create(fx->accounts, *fx->keyring, std::move(o));
    if (!s.ok()) std::abort();
    fx->service = std::move(*s);
    return fx;
  }();
  return *f;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  Fixture& fx = Get();
  // A minute per input: lockouts (60 s) lift and idle sessions end, so
  // neither state sticks for the rest of the run.
  fx.now_s += 61;
  fx.steady_ms += 61000;

  static constexpr const char* kTypes[] = {"application/x-www-form-urlencoded", "application/json",
                                           "application/json; charset=utf-8", "text/plain"};
  const uint8_t mode = data[0];
  std::string body;
  bool right_credential = false;
  {
    std::lock_guard lk(fx.mu);
    if ((mode >> 2 & 3) == 1) {
      body = "grant_type=password&username=alice&password=" + std::string(kPassword) + "&";
      right_credential = true;
    } else if ((mode >> 2 & 3) == 2 && !fx.refresh.empty()) {
      body = "grant_type=refresh_token&refresh_token=" + fx.refresh + "&";
      right_credential = true;
    }
    fx.audit_events = 0;
  }
  body.append(reinterpret_cast<const char*>(data) + 1, size - 1);
  {
    // The fuzzer may also learn a credential from the comparisons it
    // watches and write it itself.
    std::lock_guard lk(fx.mu);
    if (body.find(kPassword) != std::string::npos ||
        (!fx.refresh.empty() && body.find(fx.refresh) != std::string::npos)) {
      right_credential = true;
    }
  }

  http::HttpRequest req = http::testing::MakeRequest("POST", "/auth/token");
  req.headers.emplace_back("content-type", kTypes[mode & 3]);
  req.remote_address = "192.0.2.7:4000";
  req.body = std::move(body);
  http::testing::Reply r = http::testing::CallHandler(*fx.service, std::move(req));

  if (r.status != 200 && r.status != 400 && r.status != 429 && r.status != 503) std::abort();
  boost::json::object o = r.Json();
  if (o.empty()) std::abort();  // every answer is a JSON object
  std::lock_guard lk(fx.mu);
  if (fx.audit_leak) std::abort();
  if (r.status == 200) {
    const auto* access = o.if_contains("access_token");
    const auto* refresh = o.if_contains("refresh_token");
    if (!right_credential || access == nullptr || refresh == nullptr || !refresh->is_string()) std::abort();
    fx.refresh = std::string(refresh->get_string());
  } else {
    const auto* err = o.if_contains("error");
    if (err == nullptr || !err->is_string()) std::abort();
    if (fx.audit_events == 0) std::abort();  // a refusal nobody can see
  }
  return 0;
}
