// Interop with the npm `jose` library: tests/node/jose_tokens/sign.mjs signs
// RS256, ES256 and EdDSA tokens (valid ones and every attack variant it can
// produce) with fresh keys; the C++ verifier must accept exactly the valid ones.
//
// Needs node and npm. Installs tests/node/jose_tokens/node_modules with
// `npm ci` if missing (serialised across processes with flock on package.json).
// Skips only if node/npm are missing or the install fails for lack of network.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <set>
#include <string>

#include "auth/jwt.h"
#include "common/testing/temp_dir.h"
#include "fhir/json_reader.h"

namespace phivault::auth {
namespace {

constexpr char kIss[] = "https://idp.example.test";
constexpr char kAud[] = "https://vault.example.test/fhir";

int RunShell(const std::string& cmd) {
  int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

std::string Quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

bool LooksLikeNetworkFailure(const std::string& log) {
  for (const char* marker : {"ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "ENETUNREACH",
                             "getaddrinfo", "network", "proxy", "self-signed certificate", "UNABLE_TO_GET_ISSUER"}) {
    if (log.find(marker) != std::string::npos) return true;
  }
  return false;
}

TEST(JoseInterop, VerifierAcceptsExactlyTheValidTokens) {
  const std::string dir = std::string(PHIVAULT_SOURCE_DIR) + "/tests/node/jose_tokens";
  if (RunShell("node --version >/dev/null 2>&1") != 0 || RunShell("npm --version >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "node and npm are required for the jose interop test (install nodejs and npm)";
  }
  testing::TempDir tmp;
  {
    // Serialise installs: several test binaries (debug, asan) may run at once.
    int lock_fd = ::open((dir + "/package.json").c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(lock_fd, 0) << "missing " << dir << "/package.json";
    ASSERT_EQ(::flock(lock_fd, LOCK_EX), 0);
    if (!std::filesystem::exists(dir + "/node_modules/jose/package.json")) {
      const std::string log = tmp.Sub("npm.log");
      int rc = RunShell("cd " + Quote(dir) + " && npm ci --no-audit --no-fund >" + Quote(log) + " 2>&1");
      if (rc != 0) {
        rc = RunShell("cd " + Quote(dir) + " && npm install --no-audit --no-fund >>" + Quote(log) + " 2>&1");
      }
      if (rc != 0) {
        std::string text = testing::ReadFile(log);
        ::close(lock_fd);
        if (LooksLikeNetworkFailure(text)) {
          GTEST_SKIP() << "npm could not install jose (no network?):\n" << text;
        }
        FAIL() << "npm ci failed in " << dir << ":\n" << text;
      }
    }
    ::close(lock_fd);
  }

  const int64_t now = static_cast<int64_t>(std::time(nullptr));
  const std::string out = tmp.Sub("out");
  const std::string log = tmp.Sub("sign.log");
  int rc = RunShell("node " + Quote(dir + "/sign.mjs") + " " + Quote(out) + " " + std::to_string(now) + " " + Quote(kIss) +
               " " + Quote(kAud) + " >" + Quote(log) + " 2>&1");
  ASSERT_EQ(rc, 0) << "sign.mjs failed:\n" << testing::ReadFile(log);

  auto set = KeySet::Parse(testing::ReadFile(out + "/jwks.json"));
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  ASSERT_EQ((*set)->size(), 3u);
  VerifierConfig config;
  config.issuer = kIss;
  config.audiences = {kAud};
  auto verifier = std::make_shared<JwtVerifier>(config, std::make_shared<StaticKeySetProvider>(*set));
  CachingVerifier cache(verifier);

  auto doc = fhir::ParseJson(testing::ReadFile(out + "/tokens.json"));
  ASSERT_TRUE(doc.ok()) << doc.status().ToString();
  const boost::json::array* tokens = doc->if_array();
  ASSERT_NE(tokens, nullptr);
  int accepted = 0, rejected = 0;
  std::set<std::string> algs;
  for (const auto& v : *tokens) {
    const boost::json::object* t = v.if_object();
    ASSERT_NE(t, nullptr);
    std::string name(t->at("name").as_string().c_str());
    std::string expect(t->at("expect").as_string().c_str());
    std::string token(t->at("token").as_string().c_str());
    auto r = verifier->Verify(token, now);
    auto c = cache.Verify(token, now);
    EXPECT_EQ(r.ok(), c.ok()) << name;
    if (expect == "accept") {
      ++accepted;
      ASSERT_TRUE(r.ok()) << name << ": " << r.status().ToString();
      EXPECT_EQ(r->iss, kIss) << name;
      EXPECT_FALSE(r->sub.empty()) << name;
      EXPECT_FALSE(r->scopes.empty()) << name;
      algs.insert(r->alg);
      // The second look is a cache hit with the same result.
      auto again = cache.Verify(token, now);
      ASSERT_TRUE(again.ok()) << name;
      EXPECT_EQ(again->jti, r->jti);
    } else {
      ++rejected;
      ASSERT_FALSE(r.ok()) << name << " was accepted";
      EXPECT_EQ(r.status().code(), StatusCode::kUnauthenticated) << name;
      // Tell the reason in the log for the record (never the token).
      std::cout << "  rejected " << name << ": " << r.status().message() << "\n";
    }
  }
  EXPECT_GE(accepted, 9);
  EXPECT_GE(rejected, 30);
  EXPECT_EQ(algs, (std::set<std::string>{"RS256", "ES256", "EdDSA"}));
}

}  // namespace
}  // namespace phivault::auth
