// Interop with a real FHIR client: starts `phivault serve` on a fresh vault
// and runs tests/node/fhir_kit_client/drive.mjs, which uses the npm
// `fhir-kit-client` library (code nobody here wrote) to create, read, search
// with paging and _include, post a transaction with urn:uuid references, and
// read instance and type history; see that script for every check.
//
// Needs node and npm (scripts/install-deps.sh installs them). The first run
// installs tests/node/fhir_kit_client/node_modules with `npm ci` from the
// committed lock file (serialised across processes with flock on
// package.json); later runs reuse it and need no network. Unlike the jose
// test this one never skips: missing node, or an install that fails (no
// network on the first run), fails the test with npm's own output.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "common/testing/temp_dir.h"
#include "run_bin.h"

namespace phivault {
namespace {

using testing::ReadFile;

const std::string kClientDir = std::string(PHIVAULT_SOURCE_DIR) + "/tests/node/fhir_kit_client";

int Shell(const std::string& cmd) {
  int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

// The "fhir-kit-client": "X" pin in a package.json, or "" if absent.
std::string PinnedVersion(const std::string& package_json, const std::string& key) {
  std::smatch m;
  const std::string text = ReadFile(package_json);
  if (!std::regex_search(text, m, std::regex("\"" + key + "\"\\s*:\\s*\"([^\"]+)\""))) return "";
  return m[1];
}

// Installs the pinned client unless node_modules already holds that version.
// Returns "" on success, else what went wrong with npm's output.
std::string EnsureClientInstalled(const std::string& log) {
  // Serialise installs: the Debug and ASan suites may run at the same time.
  int lock_fd = ::open((kClientDir + "/package.json").c_str(), O_RDONLY | O_CLOEXEC);
  if (lock_fd < 0) return "missing " + kClientDir + "/package.json";
  if (::flock(lock_fd, LOCK_EX) != 0) {
    ::close(lock_fd);
    return "flock on package.json failed";
  }
  const std::string want = PinnedVersion(kClientDir + "/package.json", "fhir-kit-client");
  const std::string have = PinnedVersion(kClientDir + "/node_modules/fhir-kit-client/package.json", "version");
  std::string error;
  if (want.empty()) {
    error = "package.json does not pin fhir-kit-client";
  } else if (have != want) {
    // --prefer-offline: a reinstall after the first one is served from npm's cache.
    if (Shell("cd '" + kClientDir + "' && npm ci --prefer-offline --no-audit --no-fund >'" + log + "' 2>&1") != 0) {
      error = "npm ci could not install fhir-kit-client " + want + " in " + kClientDir +
              " (the first run needs the npm registry; later runs use node_modules):\n" + ReadFile(log);
    }
  }
  ::close(lock_fd);
  return error;
}

// A port nothing listens on right now. The server must know its port before
// it starts, because Bundle links are built from --base-url; a clash with
// another process in between makes Serve retry.
uint16_t FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  uint16_t port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

// Runs `argv` (found on PATH) with PHIVAULT_TOKEN added to the environment, so
// the token never appears on a command line; kills it after `timeout`.
// Returns the exit code, 128 + signal, or -1 if it could not start.
int RunWithToken(const std::vector<std::string>& args, const std::string& token, const std::string& out_path,
                 std::chrono::seconds timeout) {
  std::vector<std::string> env_store = {"PHIVAULT_TOKEN=" + token};
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::string_view(*e).starts_with("PHIVAULT_TOKEN=")) continue;
    env_store.emplace_back(*e);
  }
  std::vector<char*> envp;
  for (auto& e : env_store) envp.push_back(e.data());
  envp.push_back(nullptr);
  const pid_t pid = testing::SpawnWithOutput(args, out_path, envp.data());
  if (pid <= 0) return -1;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return 128 + SIGKILL;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

class FhirKitClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    key_ = tmp_.Sub("master.key");
    data_ = tmp_.Sub("vault");
    ASSERT_EQ(Run({"keys", "generate", "--out", key_}), 0) << ReadFile(tmp_.Sub("cmd.log"));
    ASSERT_EQ(Run({"init", "--data", data_, "--key-file", key_}), 0) << ReadFile(tmp_.Sub("cmd.log"));
  }

  void TearDown() override {
    if (server_ > 0) {
      ::kill(server_, SIGKILL);
      testing::WaitBin(server_);
    }
  }

  int Run(const std::vector<std::string>& args) { return testing::WaitBin(testing::SpawnBin(args, tmp_.Sub("cmd.log"))); }

  // Starts `serve` on a free port with links built for that port. Returns the
  // port, or 0 if the server would not start.
  uint16_t Serve() {
    for (int attempt = 0; attempt < 5; ++attempt) {
      const uint16_t port = FreePort();
      if (port == 0) continue;
      base_ = "http://127.0.0.1:" + std::to_string(port);
      server_ = testing::SpawnBin(ServerArgs({"serve"}), server_log());
      const std::string ready = "event=server.listening port=" + std::to_string(port);
      for (int i = 0; i < 400; ++i) {
        if (ReadFile(server_log()).find(ready) != std::string::npos) return port;
        int st = 0;
        if (::waitpid(server_, &st, WNOHANG) == server_) break;  // e.g. the port was taken meanwhile
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      ::kill(server_, SIGKILL);
      testing::WaitBin(server_);
      server_ = -1;
    }
    return 0;
  }

  // The data, key, listen address and base URL shared by `serve` and
  // `token issue`, so the token's issuer and audience are the server's.
  std::vector<std::string> ServerArgs(std::vector<std::string> command) const {
    const std::string listen = base_.substr(std::string("http://").size());
    for (const char* a : {"--data", data_.c_str(), "--key-file", key_.c_str(), "--listen", listen.c_str(),
                          "--base-url", base_.c_str()}) {
      command.emplace_back(a);
    }
    return command;
  }

  std::string IssueToken(const std::string& role, const std::string& scope) {
    const std::string out = tmp_.Sub("token.txt");
    std::vector<std::string> args = ServerArgs({"token", "issue"});
    for (const char* a : {"--sub", "fhir-kit-client", "--role", role.c_str(), "--scope", scope.c_str()}) {
      args.emplace_back(a);
    }
    if (testing::WaitBin(testing::SpawnBin(args, out)) != 0) return "";
    std::string t = ReadFile(out);
    while (!t.empty() && (t.back() == '\n' || t.back() == '\r')) t.pop_back();
    return t;
  }

  int Stop() {
    ::kill(server_, SIGTERM);
    int rc = testing::WaitBin(server_);
    server_ = -1;
    return rc;
  }

  std::string server_log() const { return tmp_.Sub("serve.log"); }

  testing::TempDir tmp_;
  std::string key_, data_, base_;
  pid_t server_ = -1;
};

TEST_F(FhirKitClientTest, CreateReadSearchIncludeTransactionAndHistory) {
  ASSERT_EQ(Shell("node --version >/dev/null 2>&1"), 0)
      << "node is required for the fhir-kit-client interop test (scripts/install-deps.sh installs nodejs and npm)";
  const std::string install_error = EnsureClientInstalled(tmp_.Sub("npm.log"));
  ASSERT_TRUE(install_error.empty()) << install_error;

  ASSERT_NE(Serve(), 0) << ReadFile(server_log());
  const std::string token = IssueToken("system", "system/*.cruds");
  ASSERT_FALSE(token.empty()) << ReadFile(tmp_.Sub("token.txt"));

  const std::string log = tmp_.Sub("drive.log");
  const int rc = RunWithToken({"node", kClientDir + "/drive.mjs", base_ + "/fhir"}, token, log,
                              std::chrono::seconds(300));
  EXPECT_EQ(rc, 0) << "drive.mjs (fhir-kit-client) failed:\n" << ReadFile(log) << "\nserver log:\n" << ReadFile(server_log());
  EXPECT_NE(ReadFile(log).find("fhir-kit: all checks passed"), std::string::npos) << ReadFile(log);
  EXPECT_EQ(Stop(), 0) << "SIGTERM must drain and exit 0:\n" << ReadFile(server_log());
  // The token went through the environment and requests only: never logged.
  EXPECT_EQ(ReadFile(server_log()).find(token), std::string::npos);
}

}  // namespace
}  // namespace phivault
