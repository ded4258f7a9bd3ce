// End-to-end tests of the account admin commands of the phivault binary
// (`user ...`, `device ...`): what they print, what they refuse, that a user
// they create can log in with the printed TOTP URI, and that nothing they
// store is readable at rest.
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <optional>

#include "api/auth_service.h"
#include "auth/totp.h"
#include "common/testing/temp_dir.h"
#include "crypto/keyring.h"
#include "run_bin.h"
#include "store/account_store.h"

namespace phivault {
namespace {

using testing::ReadFile;
using testing::TempDir;

constexpr const char* kPassword = "Tr0ub4dor-and-3-horses";

int RunBin(const std::vector<std::string>& args, const std::string& log_path) {
  return testing::WaitBin(testing::SpawnBin(args, log_path));
}

size_t Count(const std::string& hay, const std::string& needle) {
  size_t n = 0;
  for (size_t p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + 1)) ++n;
  return n;
}

// The base32 secret of the otpauth URI printed in `out`.
std::string SecretFromOutput(const std::string& out) {
  size_t p = out.find("otpauth://totp/");
  if (p == std::string::npos) return "";
  p = out.find("secret=", p);
  if (p == std::string::npos) return "";
  p += 7;
  size_t e = out.find_first_of("&\n ", p);
  return out.substr(p, e - p);
}

// A self-signed Ed25519 certificate in PEM; returns its DER SHA-256 (hex).
std::string MakeCert(const std::string& path, const std::string& cn) {
  EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  X509* x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
  X509_gmtime_adj(X509_getm_notBefore(x), 0);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(x, name);
  X509_set_pubkey(x, key);
  X509_sign(x, key, nullptr);
  FILE* f = std::fopen(path.c_str(), "w");
  PEM_write_X509(f, x);
  std::fclose(f);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  X509_digest(x, EVP_sha256(), md, &len);
  X509_free(x);
  EVP_PKEY_free(key);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned i = 0; i < len; ++i) {
    hex += kHex[md[i] >> 4];
    hex += kHex[md[i] & 15];
  }
  return hex;
}

class AccountsE2ETest : public ::testing::Test {
 protected:
  void SetUp() override {
    key_ = tmp_.Sub("master.key");
    data_ = tmp_.Sub("data");
    log_ = tmp_.Sub("out.log");
    ASSERT_EQ(RunBin({"keys", "generate", "--out", key_}, log_), 0) << ReadFile(log_);
    ASSERT_EQ(RunBin({"init", "--data", data_, "--key-file", key_}, log_), 0) << ReadFile(log_);
    pw_file_ = WritePassword("pw.txt", kPassword, 0600);
  }

  std::string WritePassword(const std::string& name, const std::string& pw, mode_t mode) {
    std::string path = tmp_.Sub(name);
    testing::WriteFile(path, pw + "\n");
    ::chmod(path.c_str(), mode);
    return path;
  }

  // Runs `phivault <args> --data D --key-file K`; returns the exit code, output in out_.
  int Admin(std::vector<std::string> args) {
    args.insert(args.end(), {"--data", data_, "--key-file", key_});
    int rc = RunBin(args, log_);
    out_ = ReadFile(log_);
    return rc;
  }

  // Logs in through an in-process AuthService over the CLI-written accounts.db.
  int Login(const std::string& user, const std::string& totp) {
    crypto::MasterKeySource src;
    src.key_file = key_;
    auto kr = crypto::Keyring::Open(data_, src);
    EXPECT_TRUE(kr.ok()) << kr.status().ToString();
    if (!kr.ok()) return -1;
    auto accounts = store::OpenAccountStore(data_, **kr);
    EXPECT_TRUE(accounts.ok());
    if (!accounts.ok()) return -1;
    api::AuthServiceOptions o;
    o.issuer = "https://vault.test";
    auto svc = api::AuthService::Create(*accounts, **kr, o);
    EXPECT_TRUE(svc.ok());
    if (!svc.ok()) return -1;
    http::HttpRequest req;
    req.method = "POST";
    req.path = req.target = "/auth/token";
    req.remote_address = "127.0.0.1:1";
    req.headers.emplace_back("content-type", "application/x-www-form-urlencoded");
    req.body = "grant_type=password&username=" + user + "&password=" + kPassword + "&totp=" + totp;
    std::mutex mu;
    std::condition_variable cv;
    std::optional<int> status;
    (*svc)->Handle(std::move(req), [&](http::HttpResponse r) {
      std::lock_guard lk(mu);
      status = r.status;
      cv.notify_one();
    });
    std::unique_lock lk(mu);
    cv.wait(lk, [&] { return status.has_value(); });
    return *status;
  }

  static std::string Code(const std::string& b32) {
    auto secret = auth::Base32Decode(b32);
    EXPECT_TRUE(secret.ok());
    int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                      std::chrono::system_clock::now().time_since_epoch()).count();
    return secret.ok() ? auth::TotpCode(*secret, now) : "";
  }

  TempDir tmp_;
  std::string key_, data_, log_, pw_file_, out_;
};

TEST_F(AccountsE2ETest, UserLifecycle) {
  ASSERT_EQ(Admin({"user", "add", "--username", "Quentin.Zarkov", "--role", "clinician", "--fhir-user",
                   "Practitioner/prac-qz-31337", "--clearance", "R,HIV", "--password-file", pw_file_}),
            0)
      << out_;
  EXPECT_EQ(Count(out_, "otpauth://totp/"), 1u) << "the URI is printed exactly once";
  const std::string secret = SecretFromOutput(out_);
  ASSERT_GE(secret.size(), 32u);
  EXPECT_EQ(out_.find(kPassword), std::string::npos);

  ASSERT_EQ(Admin({"user", "list"}), 0) << out_;
  EXPECT_NE(out_.find("quentin.zarkov"), std::string::npos);
  EXPECT_NE(out_.find("R,HIV"), std::string::npos);
  EXPECT_EQ(out_.find("argon2"), std::string::npos);
  EXPECT_EQ(out_.find(secret), std::string::npos);
  EXPECT_EQ(out_.find("otpauth"), std::string::npos);

  // Refusals.
  EXPECT_NE(Admin({"user", "add", "--username", "quentin.zarkov", "--role", "clinician", "--fhir-user",
                   "Practitioner/x", "--password-file", pw_file_}),
            0);
  EXPECT_NE(Admin({"user", "add", "--username", "weak", "--role", "registration", "--password-file",
                   WritePassword("weak.txt", "password", 0600)}),
            0);
  EXPECT_NE(out_.find("password"), std::string::npos) << out_;
  EXPECT_NE(Admin({"user", "add", "--username", "loose", "--role", "registration", "--password-file",
                   WritePassword("loose.txt", kPassword, 0644)}),
            0);
  EXPECT_NE(Admin({"user", "add", "--username", "nofhir", "--role", "clinician", "--password-file", pw_file_}), 0);
  EXPECT_NE(Admin({"user", "add", "--username", "x", "--role", "root", "--password-file", pw_file_}), 0);
  EXPECT_NE(Admin({"user", "disable", "--username", "nobody"}), 0);

  // The printed URI is the working second factor.
  EXPECT_EQ(Login("quentin.zarkov", Code(secret)), 200);

  ASSERT_EQ(Admin({"user", "reset-mfa", "--username", "quentin.zarkov"}), 0) << out_;
  const std::string fresh = SecretFromOutput(out_);
  ASSERT_FALSE(fresh.empty());
  EXPECT_NE(fresh, secret);
  EXPECT_EQ(Login("quentin.zarkov", Code(secret)), 400) << "the old secret no longer works";
  // (a fresh TOTP step is not needed: the reset also cleared the replay guard)
  EXPECT_EQ(Login("quentin.zarkov", Code(fresh)), 200);

  ASSERT_EQ(Admin({"user", "disable", "--username", "quentin.zarkov"}), 0) << out_;
  ASSERT_EQ(Admin({"user", "list"}), 0);
  EXPECT_NE(out_.find("disabled"), std::string::npos);

  // Patients need no MFA unless asked for.
  ASSERT_EQ(Admin({"user", "add", "--username", "pat-qz", "--role", "patient", "--fhir-user", "Patient/pat-qz-1",
                   "--password-file", pw_file_}),
            0)
      << out_;
  EXPECT_EQ(out_.find("otpauth://"), std::string::npos);

  // Nothing the commands stored is readable in the data directory.
  for (const std::string& f : testing::FilesBelow(data_)) {
    std::string bytes = ReadFile(f);
    for (const std::string& needle : {std::string("quentin.zarkov"), std::string("prac-qz-31337"), secret, fresh,
                                      std::string("pat-qz-1"), std::string(kPassword)}) {
      EXPECT_EQ(bytes.find(needle), std::string::npos) << f;
    }
  }
}

TEST_F(AccountsE2ETest, Devices) {
  const std::string cert = tmp_.Sub("monitor.pem");
  const std::string sha = MakeCert(cert, "monitor-7.ward-3");
  ASSERT_EQ(sha.size(), 64u);
  ASSERT_EQ(Admin({"device", "add", "--device-id", "monitor-7", "--cert", cert, "--patient", "p1", "--patient", "p2"}),
            0)
      << out_;
  EXPECT_NE(out_.find(sha), std::string::npos);
  EXPECT_NE(out_.find("CN=monitor-7.ward-3"), std::string::npos);
  EXPECT_NE(Admin({"device", "add", "--device-id", "monitor-8", "--cert", cert, "--patient", "p1"}), 0)
      << "a certificate belongs to one device";
  testing::WriteFile(tmp_.Sub("junk.pem"), "not a certificate");
  EXPECT_NE(Admin({"device", "add", "--device-id", "m9", "--cert", tmp_.Sub("junk.pem"), "--patient", "p1"}), 0);
  EXPECT_NE(Admin({"device", "add", "--device-id", "m9", "--cert", cert}), 0) << "--patient is required";

  ASSERT_EQ(Admin({"device", "disable", "--device-id", "monitor-7"}), 0) << out_;
  ASSERT_EQ(Admin({"device", "list"}), 0);
  EXPECT_NE(out_.find("monitor-7"), std::string::npos);
  EXPECT_NE(out_.find("disabled"), std::string::npos);
  EXPECT_NE(out_.find("p1,p2"), std::string::npos);

  crypto::MasterKeySource src;
  src.key_file = key_;
  auto kr = crypto::Keyring::Open(data_, src);
  ASSERT_TRUE(kr.ok());
  auto accounts = store::OpenAccountStore(data_, **kr);
  ASSERT_TRUE(accounts.ok());
  auto d = (*accounts)->FindDeviceByCert(sha);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->device_id, "monitor-7");
  EXPECT_TRUE(d->disabled);
}

TEST_F(AccountsE2ETest, WrongKeyIsRefused) {
  std::string wrong = tmp_.Sub("wrong.key");
  ASSERT_EQ(RunBin({"keys", "generate", "--out", wrong}, log_), 0);
  EXPECT_EQ(RunBin({"user", "list", "--data", data_, "--key-file", wrong}, log_), 3) << ReadFile(log_);
}

}  // namespace
}  // namespace phivault
