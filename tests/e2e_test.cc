// End-to-end tests of the phivault binary: init, import, serve, SIGTERM, and
// the "nothing readable at rest, nothing in the logs" scan over the Synthea
// sample patients.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <boost/asio.hpp>
#include <boost/beast.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "common/testing/temp_dir.h"

extern char** environ;

namespace phivault {
namespace {

namespace json = boost::json;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using testing::ReadFile;
using testing::TempDir;

const std::string kBin = PHIVAULT_BIN;
const std::string kSamples = std::string(PHIVAULT_SOURCE_DIR) + "/data/samples";

pid_t Spawn(const std::vector<std::string>& args, const std::string& log_path) {
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(kBin.c_str()));
  for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  posix_spawn_file_actions_addopen(&fa, 2, log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  pid_t pid = -1;
  if (posix_spawn(&pid, kBin.c_str(), &fa, nullptr, argv.data(), environ) != 0) pid = -1;
  posix_spawn_file_actions_destroy(&fa);
  return pid;
}

int WaitExit(pid_t pid) {
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int RunBin(const std::vector<std::string>& args, const std::string& log_path) { return WaitExit(Spawn(args, log_path)); }

struct Response {
  int status = 0;
  std::string body;
  std::string etag;
};

Response Request(uint16_t port, bhttp::verb method, const std::string& target, const std::string& body = "",
                 const std::string& token = "") {
  boost::asio::io_context ioc;
  beast::tcp_stream stream(ioc);
  boost::system::error_code ec;
  stream.connect(boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port), ec);
  if (ec) return {};
  bhttp::request<bhttp::string_body> req{method, target, 11};
  req.set(bhttp::field::host, "127.0.0.1");
  if (!token.empty()) req.set(bhttp::field::authorization, "Bearer " + token);
  if (!body.empty()) {
    req.set(bhttp::field::content_type, "application/fhir+json");
    req.body() = body;
  }
  req.prepare_payload();
  bhttp::write(stream, req, ec);
  beast::flat_buffer buf;
  bhttp::response<bhttp::string_body> res;
  bhttp::read(stream, buf, res, ec);
  if (ec) return {};
  return {static_cast<int>(res.result_int()), res.body(), std::string(res[bhttp::field::etag])};
}

// Words from the sample patients that must never appear in plaintext:
// names, identifiers (SSN, MRN, licences, passports), street lines, phones.
std::set<std::string> PhiNeedles() {
  std::set<std::string> out;
  auto add_patient = [&](const json::object& p) {
    auto strings = [&](const json::value* arr, const char* field) {
      if (!arr || !arr->is_array()) return;
      for (auto& e : arr->as_array()) {
        if (!e.is_object()) continue;
        const json::value* f = e.as_object().if_contains(field);
        if (!f) continue;
        if (f->is_string() && f->as_string().size() >= 6) out.insert(std::string(f->as_string()));
        if (f->is_array()) {
          for (auto& s : f->as_array()) {
            if (s.is_string() && s.as_string().size() >= 6) out.insert(std::string(s.as_string()));
          }
        }
      }
    };
    strings(p.if_contains("name"), "family");
    strings(p.if_contains("name"), "given");
    strings(p.if_contains("identifier"), "value");
    strings(p.if_contains("address"), "line");
    strings(p.if_contains("telecom"), "value");
  };
  for (const auto& f : testing::FilesBelow(kSamples)) {
    if (f.ends_with("Patient.000.ndjson")) {
      std::istringstream in(ReadFile(f));
      std::string line;
      while (std::getline(in, line)) {
        if (!line.empty()) add_patient(json::parse(line).as_object());
      }
    } else if (f.find("/patient-") != std::string::npos && f.ends_with(".json")) {
      json::object b = json::parse(ReadFile(f)).as_object();
      for (auto& e : b["entry"].as_array()) {
        const json::object& r = e.as_object().at("resource").as_object();
        if (r.at("resourceType") == "Patient") add_patient(r);
      }
    }
  }
  return out;
}

// Returns "file: needle" for every hit of any needle in any file below dir.
std::vector<std::string> ScanForNeedles(const std::vector<std::string>& files, const std::set<std::string>& needles) {
  std::vector<std::string> hits;
  for (const auto& f : files) {
    std::string bytes = ReadFile(f);
    for (const auto& n : needles) {
      if (bytes.find(n) != std::string::npos) hits.push_back(f + ": " + n);
    }
  }
  return hits;
}

class E2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    key_ = tmp_.Sub("master.key");
    data_ = tmp_.Sub("vault");
    log_ = tmp_.Sub("phivault.log");
    ASSERT_EQ(RunBin({"keys", "generate", "--out", key_}, log_), 0) << ReadFile(log_);
    ASSERT_EQ(RunBin({"init", "--data", data_, "--key-file", key_}, log_), 0) << ReadFile(log_);
  }

  // Starts `serve` on an ephemeral port and returns it (0 on failure).
  uint16_t Serve(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {"serve", "--data", data_, "--key-file", key_, "--listen", "127.0.0.1:0"};
    args.insert(args.end(), extra.begin(), extra.end());
    size_t log_start = ReadFile(log_).size();  // look only at this run's lines
    server_ = Spawn(args, log_);
    for (int i = 0; i < 200; ++i) {
      std::string log = ReadFile(log_).substr(log_start);
      auto at = log.rfind("event=server.listening port=");
      if (at != std::string::npos) return static_cast<uint16_t>(std::stoi(log.substr(at + 28)));
      int st = 0;
      if (waitpid(server_, &st, WNOHANG) == server_) {  // it refused to start
        server_ = -1;
        return 0;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return 0;
  }

  // A token from `phivault token issue`. The issuer and audience are the
  // server's base URL, derived from --listen as given (127.0.0.1:0 here).
  std::string IssueToken(uint16_t port, const std::string& role, const std::string& scope) {
    (void)port;
    std::string out = tmp_.Sub("token.txt");
    std::filesystem::remove(out);
    int rc = RunBin({"token", "issue", "--data", data_, "--key-file", key_, "--listen",
                     "127.0.0.1:0", "--sub", "e2e", "--role", role, "--scope", scope},
                    out);
    if (rc != 0) return "";
    std::string t = ReadFile(out);
    while (!t.empty() && (t.back() == '\n' || t.back() == '\r')) t.pop_back();
    return t;
  }

  int Stop() {
    kill(server_, SIGTERM);
    int rc = WaitExit(server_);
    server_ = -1;
    return rc;
  }

  void TearDown() override {
    if (server_ > 0) {
      kill(server_, SIGKILL);
      WaitExit(server_);
    }
  }

  TempDir tmp_;
  std::string key_, data_, log_;
  pid_t server_ = -1;
};

TEST_F(E2eTest, RefusesLooseKeyFileAndWrongKeyWithoutTouchingAnything) {
  std::string loose = tmp_.Sub("loose.key");
  testing::WriteFile(loose, std::string(32, 'k'));
  chmod(loose.c_str(), 0644);
  EXPECT_NE(RunBin({"init", "--data", tmp_.Sub("other"), "--key-file", loose}, log_), 0);
  EXPECT_NE(ReadFile(log_).find("chmod 600"), std::string::npos) << ReadFile(log_);

  std::string wrong = tmp_.Sub("wrong.key");
  ASSERT_EQ(RunBin({"keys", "generate", "--out", wrong}, log_), 0);
  std::map<std::string, std::string> before;
  for (auto& f : testing::FilesBelow(data_)) before[f] = ReadFile(f);
  int rc = RunBin({"serve", "--data", data_, "--key-file", wrong, "--listen", "127.0.0.1:0"}, log_);
  EXPECT_NE(rc, 0);
  EXPECT_NE(ReadFile(log_).find("wrong master key"), std::string::npos) << ReadFile(log_);
  std::map<std::string, std::string> after;
  for (auto& f : testing::FilesBelow(data_)) after[f] = ReadFile(f);
  EXPECT_EQ(before, after);
}

TEST_F(E2eTest, ImportServeStopAndNothingReadableAtRestOrInLogs) {
  std::set<std::string> needles = PhiNeedles();
  ASSERT_GT(needles.size(), 100u) << "the sample data should yield many names, identifiers and addresses";

  // The bulk path (lookups built at the end, sorted through temp files) is
  // the one a first import takes; the scans below cover what it wrote.
  std::vector<std::string> args = {"import", "--data", data_, "--key-file", key_, "--bulk-load", "on"};
  for (auto& f : testing::FilesBelow(kSamples)) {
    if ((f.ends_with(".ndjson") && !f.ends_with("log.ndjson")) || f.find("/patient-") != std::string::npos) {
      args.push_back(f);
    }
  }
  ASSERT_EQ(RunBin(args, log_), 0) << ReadFile(log_);
  std::string import_log = ReadFile(log_);
  EXPECT_NE(import_log.find("import finished"), std::string::npos);
  EXPECT_NE(import_log.find(" 0 rejected"), std::string::npos) << import_log;

  uint16_t port = Serve();
  ASSERT_NE(port, 0) << ReadFile(log_);
  std::string token = IssueToken(port, "system", "system/*.cruds");
  ASSERT_FALSE(token.empty());
  EXPECT_EQ(Request(port, bhttp::verb::get, "/fhir/Patient/79a66c97-6131-3213-f3c9-4606946ab056").status, 401)
      << "no token, no data";
  // A patient from the NDJSON set, by its original id.
  Response r = Request(port, bhttp::verb::get, "/fhir/Patient/79a66c97-6131-3213-f3c9-4606946ab056", "", token);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.body.find("Upton904"), std::string::npos);
  Response created = Request(port, bhttp::verb::post, "/fhir/Observation",
                             R"({"resourceType":"Observation","status":"final","code":{"text":"x"},)"
                             R"("subject":{"reference":"Patient/79a66c97-6131-3213-f3c9-4606946ab056"}})",
                             token);
  EXPECT_EQ(created.status, 201) << created.body;
  EXPECT_EQ(Request(port, bhttp::verb::get, "/fhir/Patient/nope", "", token).status, 404);
  // Search through the index the import wrote; the scans below cover it.
  Response found = Request(port, bhttp::verb::get, "/fhir/Patient?family=upton&_count=5", "", token);
  ASSERT_EQ(found.status, 200) << found.body;
  EXPECT_NE(found.body.find("79a66c97-6131-3213-f3c9-4606946ab056"), std::string::npos) << found.body;
  // Tokens are scanned for too: a token in the log would be a leak.
  needles.insert(token);
  EXPECT_EQ(Request(port, bhttp::verb::get, "/metrics").status, 401) << "monitoring authenticates";
  Response metrics = Request(port, bhttp::verb::get, "/metrics", "", token);
  EXPECT_NE(metrics.body.find("phivault_http_requests_total"), std::string::npos);

  // Scan while serving (WAL, shm present), then after a clean stop.
  auto hits = ScanForNeedles(testing::FilesBelow(data_), needles);
  EXPECT_TRUE(hits.empty()) << hits.size() << " plaintext hits, first: " << hits.front();
  EXPECT_EQ(Stop(), 0) << "SIGTERM must drain and exit 0";
  hits = ScanForNeedles(testing::FilesBelow(data_), needles);
  EXPECT_TRUE(hits.empty()) << hits.size() << " plaintext hits, first: " << hits.front();
  hits = ScanForNeedles({log_}, needles);
  EXPECT_TRUE(hits.empty()) << "log leaks: " << hits.front();

  // The data survives a restart.
  port = Serve();
  ASSERT_NE(port, 0);
  token = IssueToken(port, "system", "system/*.rs");
  EXPECT_EQ(Request(port, bhttp::verb::get, "/fhir/Patient/79a66c97-6131-3213-f3c9-4606946ab056", "", token).status,
            200);
  EXPECT_EQ(Stop(), 0);
}

// The core file size limit of a running process, as /proc reports it
// ("Max core file size  SOFT  HARD  bytes"): "0 0" when dumps are off.
std::string CoreLimits(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/limits");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("Max core file size", 0) != 0) continue;
    std::istringstream fields(line.substr(18));
    std::string soft, hard;
    fields >> soft >> hard;
    return soft + " " + hard;
  }
  return "?";
}

// A core file would put decrypted records and keys on disk: the server
// runs with core dumps off unless the operator allows them.
TEST_F(E2eTest, ServerDumpsNoCoreUnlessAllowed) {
  ASSERT_NE(Serve(), 0) << ReadFile(log_);
  EXPECT_EQ(CoreLimits(server_), "0 0");
  EXPECT_EQ(Stop(), 0);
  // Allowed, the server keeps the limits it inherited (this test's own).
  ASSERT_NE(Serve({"--allow-core-dumps"}), 0) << ReadFile(log_);
  EXPECT_EQ(CoreLimits(server_), CoreLimits(getpid()));
  EXPECT_EQ(Stop(), 0);
}

// With tls.cert/tls.key the server speaks HTTPS only, TLS 1.2 or newer.
TEST_F(E2eTest, ServesHttpsOnlyWhenACertificateIsConfigured) {
  std::string cert = tmp_.Sub("cert.pem"), key = tmp_.Sub("key.pem");
  std::string gen = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost "
                    "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout " + key + " -out " + cert +
                    " >/dev/null 2>&1";
  if (std::system(gen.c_str()) != 0 || std::system("command -v curl >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "openssl or curl is missing (scripts/install-deps.sh installs both)";
  }
  uint16_t port = Serve({"--tls-cert", cert, "--tls-key", key});
  ASSERT_NE(port, 0) << ReadFile(log_);
  std::string p = std::to_string(port);
  auto curl = [&](const std::string& args) {
    return std::system(("curl -s -o /dev/null --max-time 5 " + args + " >/dev/null 2>&1").c_str());
  };
  EXPECT_EQ(curl("--fail --cacert " + cert + " https://localhost:" + p + "/fhir/metadata"), 0);
  EXPECT_NE(curl("--fail http://127.0.0.1:" + p + "/fhir/metadata"), 0) << "plain HTTP must not be served";
  EXPECT_NE(curl("--cacert " + cert + " --tls-max 1.1 https://localhost:" + p + "/healthz"), 0) << "TLS 1.1 refused";
  EXPECT_EQ(Stop(), 0);
}

TEST_F(E2eTest, ModifiedDataDirectoryIsDetectedNotServed) {
  uint16_t port = Serve();
  ASSERT_NE(port, 0) << ReadFile(log_);
  // Incompressible text, so the sealed body spans several pages.
  std::string big;
  uint32_t x = 12345;
  for (int i = 0; i < 20000; ++i) {
    x = x * 1103515245 + 12345;
    big += "abcdefghijklmnopqrstuvwxyz"[(x >> 16) % 26];
  }
  std::string token = IssueToken(port, "system", "system/*.cruds");
  Response c = Request(port, bhttp::verb::put, "/fhir/Patient/victim",
                       R"({"resourceType":"Patient","id":"victim","text":{"status":"generated","div":")" + big + R"("}})",
                       token);
  ASSERT_EQ(c.status, 201) << c.body;
  ASSERT_EQ(Stop(), 0);

  std::string db = data_ + "/vault.db";
  std::string bytes = ReadFile(db);
  // Damage the second half of the file, where the large body's pages are.
  size_t pages = bytes.size() / 4096;
  for (size_t page = pages / 2; page < pages; ++page) bytes[page * 4096 + 7] ^= 1;
  testing::WriteFile(db, bytes);

  port = Serve();
  if (port == 0) {
    EXPECT_NE(ReadFile(log_).find("integrity"), std::string::npos) << ReadFile(log_);
    return;
  }
  token = IssueToken(port, "system", "system/*.cruds");
  Response r = Request(port, bhttp::verb::get, "/fhir/Patient/victim", "", token);
  EXPECT_EQ(r.status, 500) << r.body;
  EXPECT_NE(r.body.find("integrity"), std::string::npos) << r.body;
  EXPECT_EQ(r.body.find(big.substr(0, 32)), std::string::npos);
}

}  // namespace
}  // namespace phivault
