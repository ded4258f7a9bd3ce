// Test helper: a real rsyslogd (Debian's rsyslog + rsyslog-gnutls) as an
// RFC 5425 collector on loopback with a TLS listener and a test CA made with
// the openssl CLI; every message it receives is written to DIR/out.log as
// "version|pri|hostname|app|msgid|sd|msg". Used by the SIEM exporter tests
// and the `audit publish` end-to-end test. For tests only.
//
// Thread-safety: one Rsyslog per test thread. Lifetime: the destructor stops
// the daemon.
#ifndef PHIVAULT_AUDIT_RSYSLOG_TEST_UTIL_H_
#define PHIVAULT_AUDIT_RSYSLOG_TEST_UTIL_H_

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/testing/temp_dir.h"

extern char** environ;

namespace phivault::audit::testing {

using phivault::testing::ReadFile;
using phivault::testing::WriteFile;
using namespace std::chrono_literals;

inline constexpr const char* kRsyslogd = "/usr/sbin/rsyslogd";

inline bool WaitFor(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return pred();
}

inline uint16_t FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  uint16_t port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  ::close(fd);
  return port;
}

inline bool Listening(uint16_t port) {
  // /proc/net/tcp lists listeners as state 0A; no connection is made, so
  // rsyslog logs no aborted TLS session.
  std::istringstream in(ReadFile("/proc/net/tcp"));
  std::string line;
  char want[16];
  std::snprintf(want, sizeof want, ":%04X", port);
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string sl, local, remote, state;
    f >> sl >> local >> remote >> state;
    if (state == "0A" && local.size() > 5 && local.substr(local.size() - 5) == want) return true;
  }
  return false;
}

// A test CA and a server certificate for 127.0.0.1 / localhost.
inline bool MakeCerts(const std::string& dir) {
  WriteFile(dir + "/ext.cnf",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
            "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n");
  const std::string cmd =
      "cd '" + dir +
      "' && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem "
      "-days 2 -subj /CN=phivault-test-ca -addext basicConstraints=critical,CA:TRUE "
      "-addext keyUsage=critical,keyCertSign,cRLSign"
      " && openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key -out server.csr "
      "-subj /CN=localhost"
      " && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 "
      "-extfile ext.cnf";
  return std::system(("(" + cmd + ") > '" + dir + "/openssl.log' 2>&1").c_str()) == 0;
}

// rsyslogd as a child process: TLS listener on 127.0.0.1:port, every message
// written to out.log as "version|pri|hostname|app|msgid|sd|msg".
class Rsyslog {
 public:
  Rsyslog(std::string dir, uint16_t port) : dir_(std::move(dir)), port_(port) {
    WriteFile(
        dir_ + "/rsyslog.conf",
        "global(workDirectory=\"" + dir_ +
            "\" maxMessageSize=\"256k\" net.enableDNS=\"off\"\n"
            "  defaultNetstreamDriver=\"gtls\"\n"
            "  defaultNetstreamDriverCAFile=\"" +
            dir_ +
            "/ca.pem\"\n"
            "  defaultNetstreamDriverCertFile=\"" +
            dir_ +
            "/server.pem\"\n"
            "  defaultNetstreamDriverKeyFile=\"" +
            dir_ +
            "/server.key\")\n"
            "module(load=\"imtcp\" streamDriver.name=\"gtls\" streamDriver.mode=\"1\" streamDriver.authMode=\"anon\")\n"
            "input(type=\"imtcp\" address=\"127.0.0.1\" port=\"" +
            std::to_string(port_) +
            "\")\n"
            "template(name=\"pv\" type=\"string\" string=\"%protocol-version%|%pri%|%hostname%|%app-name%|%msgid%|"
            "%structured-data%|%msg%\\n\")\n"
            "action(type=\"omfile\" file=\"" +
            dir_ + "/out.log\" template=\"pv\")\n");
  }
  ~Rsyslog() { Stop(); }

  bool Start() {
    const std::string conf = dir_ + "/rsyslog.conf";
    const std::string pidfile = dir_ + "/rsyslog-" + std::to_string(++starts_) + ".pid";
    const std::string log = dir_ + "/rsyslog.stderr";
    std::vector<std::string> args = {kRsyslogd, "-n", "-f", conf, "-i", pidfile};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    posix_spawn_file_actions_addopen(&fa, 2, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    const int rc = posix_spawn(&pid_, kRsyslogd, &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
      pid_ = -1;
      return false;
    }
    return WaitFor([&] { return Listening(port_); }, 10s);
  }

  void Stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    int status = 0;
    if (!WaitFor([&] { return ::waitpid(pid_, &status, WNOHANG) == pid_; }, 10s)) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
    }
    pid_ = -1;
  }

  struct Line {
    std::string version, pri, hostname, app, msgid, sd, msg;
  };
  std::vector<Line> Lines() const {
    std::vector<Line> out;
    std::istringstream in(ReadFile(dir_ + "/out.log"));
    std::string s;
    while (std::getline(in, s)) {
      Line l;
      std::string* fields[] = {&l.version, &l.pri, &l.hostname, &l.app, &l.msgid, &l.sd};
      size_t pos = 0;
      for (std::string* f : fields) {
        const size_t bar = s.find('|', pos);
        if (bar == std::string::npos) break;
        *f = s.substr(pos, bar - pos);
        pos = bar + 1;
      }
      l.msg = s.substr(pos);
      out.push_back(std::move(l));
    }
    return out;
  }
  // The index="N" of every message, in arrival order.
  std::vector<uint64_t> Indices() const {
    std::vector<uint64_t> out;
    for (const Line& l : Lines()) {
      const size_t p = l.sd.find("index=\"");
      if (p != std::string::npos) out.push_back(std::stoull(l.sd.substr(p + 7)));
    }
    return out;
  }
  std::string Stderr() const { return ReadFile(dir_ + "/rsyslog.stderr"); }

 private:
  std::string dir_;
  uint16_t port_;
  pid_t pid_ = -1;
  int starts_ = 0;
};

}  // namespace phivault::audit::testing

#endif  // PHIVAULT_AUDIT_RSYSLOG_TEST_UTIL_H_
