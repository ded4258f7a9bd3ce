#include "cli/account_commands.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <ctime>

#include "auth/password.h"
#include "auth/totp.h"
#include "common/log.h"
#include "common/secure_bytes.h"
#include "crypto/keyring.h"
#include "api/request_audit.h"
#include "store/account_store.h"

namespace phivault::cli {
namespace {

constexpr size_t kMaxPasswordBytes = 1024;

int Fail(const Status& s) {
  std::fprintf(stderr, "phivault: %s\n", s.message().c_str());
  switch (s.code()) {
    case StatusCode::kPermissionDenied: return 3;
    case StatusCode::kDataLoss: return 4;
    default: return 1;
  }
}

// Reads one line (without the newline) into a buffer reserved up front so
// the secret is never copied by a reallocation. Longer lines are an error.
StatusOr<std::string> ReadSecretLine(FILE* f) {
  std::string line;
  line.reserve(kMaxPasswordBytes + 2);
  for (;;) {
    int c = std::fgetc(f);
    if (c == EOF || c == '\n') break;
    if (line.size() > kMaxPasswordBytes) {
      SecureWipe(line.data(), line.size());
      return InvalidArgument("the password is longer than 1024 bytes");
    }
    line.push_back(static_cast<char>(c));
  }
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

// Echo off on the terminal for the lifetime of the object.
class NoEcho {
 public:
  explicit NoEcho(int fd) : fd_(fd) {
    if (tcgetattr(fd_, &saved_) == 0) {
      termios t = saved_;
      t.c_lflag &= ~static_cast<tcflag_t>(ECHO);
      active_ = tcsetattr(fd_, TCSAFLUSH, &t) == 0;
    }
  }
  ~NoEcho() {
    if (active_) tcsetattr(fd_, TCSAFLUSH, &saved_);
  }

 private:
  int fd_;
  termios saved_{};
  bool active_ = false;
};

StatusOr<std::string> ReadPassword(const std::string& file) {
  if (file == "-") return ReadSecretLine(stdin);
  if (!file.empty()) {
    struct stat st;
    if (::stat(file.c_str(), &st) != 0) return InvalidArgument("cannot read the password file " + file);
    // Same rule as key files: a password others can read is not a secret.
    if (S_ISREG(st.st_mode) && (st.st_mode & 077) != 0) {
      return InvalidArgument("the password file " + file + " must not be readable by group or others (chmod 600)");
    }
    FILE* f = std::fopen(file.c_str(), "rb");
    if (f == nullptr) return InvalidArgument("cannot read the password file " + file);
    auto line = ReadSecretLine(f);
    std::fclose(f);
    return line;
  }
  if (::isatty(STDIN_FILENO)) {
    NoEcho guard(STDIN_FILENO);
    std::fprintf(stderr, "New password: ");
    std::fflush(stderr);
    PV_ASSIGN_OR_RETURN(std::string first, ReadSecretLine(stdin));
    std::fprintf(stderr, "\nRepeat password: ");
    std::fflush(stderr);
    auto second = ReadSecretLine(stdin);
    std::fprintf(stderr, "\n");
    if (!second.ok()) {
      SecureWipe(first.data(), first.size());
      return second.status();
    }
    bool same = ConstantTimeEquals(first, *second);
    SecureWipe(second->data(), second->size());
    if (!same) {
      SecureWipe(first.data(), first.size());
      return InvalidArgument("the passwords do not match");
    }
    return first;
  }
  return ReadSecretLine(stdin);
}

std::vector<std::string> SplitComma(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find(',', start);
    if (end == std::string::npos) end = s.size();
    std::string part = s.substr(start, end - start);
    // Tolerate "R, HIV".
    while (!part.empty() && part.front() == ' ') part.erase(part.begin());
    while (!part.empty() && part.back() == ' ') part.pop_back();
    if (!part.empty()) out.push_back(part);
    start = end + 1;
  }
  return out;
}

std::string JoinComma(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ",") + s;
  return out;
}

std::string FormatTime(int64_t ms) {
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

void PrintOtpauth(const std::string& username, const SecureBytes& secret) {
  std::string uri = auth::OtpauthUri(username, secret);
  std::printf(
      "\nTOTP enrolment for %s. Give this URI (or a QR code of it) to the user's authenticator app now;\n"
      "it is shown only this once and is not stored in readable form anywhere:\n\n  %s\n\n",
      username.c_str(), uri.c_str());
  std::fflush(stdout);
  SecureWipe(uri.data(), uri.size());
}

struct Context {
  const AccountCommandState& state;
  std::unique_ptr<crypto::Keyring> keyring;
  std::shared_ptr<store::AccountStore> accounts;
  void Audit(std::string_view event, std::string_view user, std::string_view outcome) const {
    if (state.audit) {
      state.audit(event, user, "cli", outcome);
    } else {
      // Operator log: what happened, never who (names can identify patients).
      log::Info("account.admin", {{"action", std::string(event)}, {"outcome", std::string(outcome)}});
    }
  }
};

int UserAdd(Context& c) {
  const AccountCommandState& s = c.state;
  const std::string name = store::NormalizeUsername(s.username);
  // Cheap checks before asking for a password the admin would have to retype.
  if (!store::IsValidUsername(name)) {
    return Fail(InvalidArgument("user names are 1-64 characters of a-z 0-9 . _ @ - starting with a letter or digit"));
  }
  if (!store::IsUserRole(s.role)) {
    return Fail(InvalidArgument("--role must be clinician, registration, privacy-officer, security-admin or patient"));
  }
  if (c.accounts->GetUser(name).ok()) return Fail(Status(StatusCode::kAlreadyExists, "user " + name + " exists"));

  auto password = ReadPassword(s.password_file);
  if (!password.ok()) return Fail(password.status());
  Status policy = auth::CheckPasswordPolicy(*password, name);
  StatusOr<std::string> hash = policy.ok() ? auth::HashPassword(*password) : StatusOr<std::string>(policy);
  SecureWipe(password->data(), password->size());
  if (!hash.ok()) return Fail(hash.status());

  store::UserRecord u;
  u.username = name;
  u.role = s.role;
  u.fhir_user = s.fhir_user;
  u.clearances = SplitComma(s.clearances);
  u.scopes = s.scopes;
  u.password_hash = std::move(*hash);
  const bool mfa = store::RoleRequiresMfa(s.role) || s.mfa;
  SecureBytes secret = mfa ? auth::GenerateTotpSecret() : SecureBytes();
  Status created = c.accounts->CreateUser(u, mfa ? &secret : nullptr);
  c.Audit("user.add", name, created.ok() ? "success" : "failure");
  if (!created.ok()) return Fail(created);
  std::printf("created user %s (role %s%s)\n", name.c_str(), s.role.c_str(), mfa ? ", TOTP required" : "");
  if (mfa) PrintOtpauth(name, secret);
  return 0;
}

int UserDisable(Context& c) {
  const std::string name = store::NormalizeUsername(c.state.username);
  Status s = c.accounts->SetUserDisabled(name, true);
  c.Audit("user.disable", name, s.ok() ? "success" : "failure");
  if (!s.ok()) return Fail(s);
  std::printf(
      "disabled user %s: no new logins, refresh tokens revoked; access tokens already issued expire within their "
      "lifetime (15 minutes by default)\n",
      name.c_str());
  return 0;
}

int UserResetMfa(Context& c) {
  const std::string name = store::NormalizeUsername(c.state.username);
  auto user = c.accounts->GetUser(name);
  if (!user.ok()) return Fail(user.status());
  SecureBytes secret = auth::GenerateTotpSecret();
  Status s = c.accounts->SetTotpSecret(name, secret);
  c.Audit("user.reset_mfa", name, s.ok() ? "success" : "failure");
  if (!s.ok()) return Fail(s);
  std::printf("new TOTP secret for %s; the old one no longer works and its refresh tokens are revoked\n", name.c_str());
  PrintOtpauth(name, secret);
  return 0;
}

int UserList(Context& c) {
  auto users = c.accounts->ListUsers();
  if (!users.ok()) return Fail(users.status());
  std::printf("%-24s %-16s %-24s %-12s %-4s %-8s %-20s %s\n", "USERNAME", "ROLE", "FHIR USER", "CLEARANCES", "MFA",
              "STATUS", "CREATED", "SCOPES");
  for (const auto& u : *users) {
    std::printf("%-24s %-16s %-24s %-12s %-4s %-8s %-20s %s\n", u.username.c_str(), u.role.c_str(),
                u.fhir_user.empty() ? "-" : u.fhir_user.c_str(),
                u.clearances.empty() ? "-" : JoinComma(u.clearances).c_str(), u.mfa_enrolled ? "yes" : "no",
                u.disabled ? "disabled" : "active", FormatTime(u.created_ms).c_str(), u.scopes.c_str());
  }
  return 0;
}

int DeviceAdd(Context& c) {
  const AccountCommandState& s = c.state;
  auto id = ReadCertIdentity(s.cert_file);
  if (!id.ok()) return Fail(id.status());
  store::DeviceRecord d;
  d.device_id = s.device_id;
  d.cert_sha256 = id->sha256;
  d.cert_subject = id->subject;
  d.patients = s.patients;
  Status st = c.accounts->AddDevice(d);
  c.Audit("device.add", "", st.ok() ? "success" : "failure");
  if (!st.ok()) return Fail(st);
  std::printf("registered device %s\n  certificate SHA-256 %s\n  subject %s\n  bound to %zu patient(s)\n",
              d.device_id.c_str(), d.cert_sha256.c_str(), d.cert_subject.c_str(), d.patients.size());
  return 0;
}

int DeviceList(Context& c) {
  auto devices = c.accounts->ListDevices();
  if (!devices.ok()) return Fail(devices.status());
  std::printf("%-24s %-64s %-8s %-20s %-30s %s\n", "DEVICE", "CERT SHA-256", "STATUS", "CREATED", "SUBJECT",
              "PATIENTS");
  for (const auto& d : *devices) {
    std::printf("%-24s %-64s %-8s %-20s %-30s %s\n", d.device_id.c_str(), d.cert_sha256.c_str(),
                d.disabled ? "disabled" : "active", FormatTime(d.created_ms).c_str(), d.cert_subject.c_str(),
                JoinComma(d.patients).c_str());
  }
  return 0;
}

int DeviceDisable(Context& c) {
  Status s = c.accounts->SetDeviceDisabled(c.state.device_id, true);
  c.Audit("device.disable", "", s.ok() ? "success" : "failure");
  if (!s.ok()) return Fail(s);
  std::printf("disabled device %s\n", c.state.device_id.c_str());
  return 0;
}

std::string HexLower(const unsigned char* p, size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    out += kHex[p[i] >> 4];
    out += kHex[p[i] & 15];
  }
  return out;
}

}  // namespace

StatusOr<CertIdentity> ReadCertIdentity(const std::string& pem_file) {
  BIO* bio = BIO_new_file(pem_file.c_str(), "r");
  if (bio == nullptr) {
    ERR_clear_error();
    return InvalidArgument("cannot read the certificate file " + pem_file);
  }
  X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (cert == nullptr) {
    ERR_clear_error();
    return InvalidArgument("the certificate file " + pem_file + " holds no PEM certificate");
  }
  CertIdentity out;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  // X509_digest hashes the DER encoding: the same value the server computes
  // for the certificate a client presents.
  if (X509_digest(cert, EVP_sha256(), md, &len) == 1) out.sha256 = HexLower(md, len);
  if (BIO* mem = BIO_new(BIO_s_mem())) {
    if (X509_NAME_print_ex(mem, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) >= 0) {
      char* data = nullptr;
      long n = BIO_get_mem_data(mem, &data);
      if (n > 0 && data != nullptr) out.subject.assign(data, static_cast<size_t>(n));
    }
    BIO_free(mem);
  }
  X509_free(cert);
  ERR_clear_error();
  if (out.sha256.size() != 64) return Internal("cannot hash the certificate");
  return out;
}

void AddAccountCommands(CLI::App& app, AccountCommandState* s, const std::function<void(CLI::App*)>& add_common) {
  CLI::App* user = app.add_subcommand("user", "built-in user accounts (password + TOTP)");
  user->require_subcommand(1);
  s->user_add = user->add_subcommand("add", "create a user; prints the TOTP enrolment URI once");
  add_common(s->user_add);
  s->user_add->add_option("--username", s->username, "login name (a-z 0-9 . _ @ -, case-insensitive)")->required();
  s->user_add->add_option("--role", s->role, "clinician | registration | privacy-officer | security-admin | patient")
      ->required();
  s->user_add->add_option("--fhir-user", s->fhir_user, "the user's FHIR identity, e.g. Practitioner/123 or Patient/9");
  s->user_add->add_option("--clearance", s->clearances, "comma-separated clearances, e.g. R,HIV");
  s->user_add->add_option("--scopes", s->scopes, "SMART scopes (default: the role's)");
  s->user_add->add_flag("--mfa", s->mfa, "require TOTP for a patient account too");
  s->user_add->add_option("--password-file", s->password_file,
                          "file whose first line is the password (mode 0600; - for stdin); default: ask");

  s->user_disable = user->add_subcommand("disable", "disable a user and revoke its refresh tokens");
  add_common(s->user_disable);
  s->user_disable->add_option("--username", s->username, "login name")->required();

  s->user_reset_mfa = user->add_subcommand("reset-mfa", "replace a user's TOTP secret; prints the new URI once");
  add_common(s->user_reset_mfa);
  s->user_reset_mfa->add_option("--username", s->username, "login name")->required();

  s->user_list = user->add_subcommand("list", "list users (no secrets)");
  add_common(s->user_list);

  CLI::App* device = app.add_subcommand("device", "devices authenticated by client certificate (mTLS)");
  device->require_subcommand(1);
  s->device_add = device->add_subcommand("add", "register a device certificate and its patients");
  add_common(s->device_add);
  s->device_add->add_option("--device-id", s->device_id, "device id (FHIR id)")->required();
  s->device_add->add_option("--cert", s->cert_file, "the device's PEM certificate")->required();
  s->device_add->add_option("--patient", s->patients, "Patient id the device may write for (repeatable)")->required();

  s->device_list = device->add_subcommand("list", "list devices");
  add_common(s->device_list);

  s->device_disable = device->add_subcommand("disable", "disable a device");
  add_common(s->device_disable);
  s->device_disable->add_option("--device-id", s->device_id, "device id")->required();
}

int RunAccountCommands(const AccountCommandState& state, const Config& cfg) {
  using Fn = int (*)(Context&);
  const std::pair<CLI::App*, Fn> commands[] = {
      {state.user_add, UserAdd},       {state.user_disable, UserDisable}, {state.user_reset_mfa, UserResetMfa},
      {state.user_list, UserList},     {state.device_add, DeviceAdd},     {state.device_list, DeviceList},
      {state.device_disable, DeviceDisable},
  };
  Fn run = nullptr;
  for (const auto& [app, fn] : commands) {
    if (app != nullptr && app->parsed()) run = fn;
  }
  if (run == nullptr) return -1;

  Context c{state, nullptr, nullptr};
  auto keyring = crypto::Keyring::Open(cfg.data_dir, cfg.key);
  if (!keyring.ok()) return Fail(keyring.status());
  c.keyring = std::move(*keyring);
  auto accounts = store::OpenAccountStore(cfg.data_dir, *c.keyring);
  if (!accounts.ok()) return Fail(accounts.status());
  c.accounts = std::move(*accounts);
  // Each change keeps its audit record beside it; the server moves it into
  // the audit log (within a second if it is running, else when it starts).
  c.accounts->SetChangeRecordBuilder(api::AccountChangeRecorder("operator"));
  return run(c);
}

}  // namespace phivault::cli
