// HTTPS and mTLS tests. Certificates are generated at test time with the
// OpenSSL C API (P-256 keys) into a temporary directory.
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <gtest/gtest.h>

#include <boost/asio/ssl.hpp>
#include <boost/beast/ssl.hpp>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <thread>
#include <vector>

#include "common/metrics.h"
#include "http/http_test_util.h"
#include "http/client.h"
#include "http/server.h"

namespace phivault::http {
namespace {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;
using testing::MakeRequest;
using testing::RawConn;
using testing::TestHandler;

struct KeyCert {
  EVP_PKEY* key = nullptr;
  X509* cert = nullptr;
  ~KeyCert() {
    EVP_PKEY_free(key);
    X509_free(cert);
  }
};

void AddExt(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  ASSERT_NE(ext, nullptr);
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

// Makes a P-256 key and a certificate for `cn`, signed by `issuer` (self-signed when null).
std::unique_ptr<KeyCert> MakeCert(const std::string& cn, const KeyCert* issuer, bool ca, long serial) {
  auto kc = std::make_unique<KeyCert>();
  kc->key = EVP_EC_gen("P-256");
  kc->cert = X509_new();
  X509_set_version(kc->cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(kc->cert), serial);
  X509_gmtime_adj(X509_getm_notBefore(kc->cert), -3600);
  X509_gmtime_adj(X509_getm_notAfter(kc->cert), 3600 * 24);
  X509_set_pubkey(kc->cert, kc->key);
  X509_NAME* name = X509_get_subject_name(kc->cert);
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("phivault test"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(kc->cert, issuer ? X509_get_subject_name(issuer->cert) : name);
  X509* issuer_cert = issuer ? issuer->cert : kc->cert;
  AddExt(kc->cert, issuer_cert, NID_basic_constraints, ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
  AddExt(kc->cert, issuer_cert, NID_subject_key_identifier, "hash");
  if (ca) {
    AddExt(kc->cert, issuer_cert, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    AddExt(kc->cert, issuer_cert, NID_key_usage, "critical,digitalSignature");
    AddExt(kc->cert, issuer_cert, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1");
  }
  X509_sign(kc->cert, issuer ? issuer->key : kc->key, EVP_sha256());
  return kc;
}

void WritePem(const std::filesystem::path& p, const KeyCert& kc, bool key) {
  FILE* f = std::fopen(p.c_str(), "w");
  ASSERT_NE(f, nullptr);
  if (key) {
    PEM_write_PrivateKey(f, kc.key, nullptr, nullptr, 0, nullptr, nullptr);
  } else {
    PEM_write_X509(f, kc.cert);
  }
  std::fclose(f);
}

std::string CertSha256Hex(X509* cert) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  X509_digest(cert, EVP_sha256(), md, &len);
  std::string out;
  char buf[3];
  for (unsigned i = 0; i < len; ++i) {
    std::snprintf(buf, sizeof buf, "%02x", md[i]);
    out += buf;
  }
  return out;
}

class TlsServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* base = std::getenv("PHIVAULT_TEST_TMP");
    dir_ = std::filesystem::path(base ? base : "/tmp") /
           ("http-tls-" + std::to_string(::getpid()) + "-" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
    server_cert_ = MakeCert("localhost", nullptr, false, 1);
    ca_ = MakeCert("phivault test CA", nullptr, true, 2);
    client_ = MakeCert("clinician-app", ca_.get(), false, 3);
    rogue_ca_ = MakeCert("rogue CA", nullptr, true, 4);
    rogue_client_ = MakeCert("rogue-app", rogue_ca_.get(), false, 5);
    WritePem(dir_ / "server.crt", *server_cert_, false);
    WritePem(dir_ / "server.key", *server_cert_, true);
    WritePem(dir_ / "ca.crt", *ca_, false);
  }
  void TearDown() override {
    server_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  ServerOptions Options(bool mtls) {
    ServerOptions o;
    o.port = 0;
    o.threads = 2;
    o.metrics = &registry_;
    o.tls_cert_file = dir_ / "server.crt";
    o.tls_key_file = dir_ / "server.key";
    if (mtls) o.tls_client_ca_file = dir_ / "ca.crt";
    return o;
  }
  void StartServer(ServerOptions o) {
    auto s = Server::Start(std::move(o), &handler_);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    server_ = std::move(s).value();
  }

  // Client context trusting the test server certificate.
  std::unique_ptr<ssl::context> ClientContext() {
    auto ctx = std::make_unique<ssl::context>(ssl::context::tls_client);
    X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx->native_handle()), server_cert_->cert);
    ctx->set_verify_mode(ssl::verify_peer);
    return ctx;
  }

  // One HTTPS request; returns the response or sets *ec.
  bhttp::response<bhttp::string_body> Get(ssl::context& ctx, const std::string& target, beast::error_code* ec,
                                          std::string* version = nullptr) {
    net::io_context ioc;
    beast::ssl_stream<tcp::socket> s(ioc, ctx);
    s.next_layer().connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), server_->port()), *ec);
    if (*ec) return {};
    testing::SetRecvTimeout(s.next_layer().native_handle(), std::chrono::seconds(10));
    s.handshake(ssl::stream_base::client, *ec);
    if (*ec) return {};
    if (version) *version = SSL_get_version(s.native_handle());
    bhttp::write(s, MakeRequest(bhttp::verb::get, target), *ec);
    if (*ec) return {};
    beast::flat_buffer buf;
    bhttp::response<bhttp::string_body> res;
    bhttp::read(s, buf, res, *ec);
    beast::error_code ignored;
    s.shutdown(ignored);
    return res;
  }

  std::filesystem::path dir_;
  std::unique_ptr<KeyCert> server_cert_, ca_, client_, rogue_ca_, rogue_client_;
  metrics::Registry registry_;
  TestHandler handler_;
  std::unique_ptr<Server> server_;
};

TEST_F(TlsServerTest, HttpsWorksWithTls13AndSecurityHeaders) {
  StartServer(Options(false));
  auto ctx = ClientContext();
  beast::error_code ec;
  std::string version;
  auto r = Get(*ctx, "/fhir/metadata", &ec, &version);
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(version, "TLSv1.3");
  EXPECT_EQ(r.result_int(), 200);
  EXPECT_EQ(r.body(), "GET /fhir/metadata?|");
  EXPECT_EQ(r["Strict-Transport-Security"], "max-age=31536000; includeSubDomains");
  EXPECT_EQ(r[bhttp::field::cache_control], "no-store");
  auto seen = handler_.seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_TRUE(seen[0].tls);
  EXPECT_TRUE(seen[0].client_cert_sha256.empty());
}

TEST_F(TlsServerTest, Tls12WithRestrictedCiphers) {
  StartServer(Options(false));
  auto ctx = ClientContext();
  SSL_CTX_set_max_proto_version(ctx->native_handle(), TLS1_2_VERSION);
  beast::error_code ec;
  std::string version;
  auto r = Get(*ctx, "/x", &ec, &version);
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(version, "TLSv1.2");
  // A TLS 1.2 client offering only non-ECDHE / CBC suites is refused.
  auto weak = ClientContext();
  SSL_CTX_set_max_proto_version(weak->native_handle(), TLS1_2_VERSION);
  ASSERT_EQ(SSL_CTX_set_cipher_list(weak->native_handle(), "AES128-SHA:ECDHE-ECDSA-AES128-SHA:AES256-GCM-SHA384"), 1);
  beast::error_code weak_ec;
  Get(*weak, "/x", &weak_ec);
  EXPECT_TRUE(weak_ec);
}

TEST_F(TlsServerTest, Tls11IsRefused) {
  StartServer(Options(false));
  auto ctx = ClientContext();
  SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_VERSION);
  SSL_CTX_set_max_proto_version(ctx->native_handle(), TLS1_1_VERSION);
  SSL_CTX_set_cipher_list(ctx->native_handle(), "DEFAULT:@SECLEVEL=0");  // the client would allow it
  beast::error_code ec;
  Get(*ctx, "/x", &ec);
  EXPECT_TRUE(ec);
  EXPECT_EQ(handler_.calls(), 0);
}

TEST_F(TlsServerTest, PlainHttpToTlsPortFails) {
  StartServer(Options(false));
  RawConn c(server_->port(), std::chrono::seconds(5));
  ASSERT_FALSE(c.Send("GET /x HTTP/1.1\r\nHost: h\r\n\r\n"));
  std::string got = c.ReadAll();
  EXPECT_EQ(got.find("HTTP/1.1"), std::string::npos) << got;
  EXPECT_EQ(handler_.calls(), 0);
  // The server is still fine afterwards.
  auto ctx = ClientContext();
  beast::error_code ec;
  EXPECT_EQ(Get(*ctx, "/y", &ec).result_int(), 200);
  EXPECT_FALSE(ec);
}

TEST_F(TlsServerTest, MutualTlsReportsClientCertificate) {
  StartServer(Options(true));
  auto ctx = ClientContext();
  ASSERT_EQ(SSL_CTX_use_certificate(ctx->native_handle(), client_->cert), 1);
  ASSERT_EQ(SSL_CTX_use_PrivateKey(ctx->native_handle(), client_->key), 1);
  beast::error_code ec;
  auto r = Get(*ctx, "/fhir/Patient", &ec);
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(r.result_int(), 200);
  auto seen = handler_.seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].client_cert_sha256, CertSha256Hex(client_->cert));
  EXPECT_EQ(seen[0].client_cert_sha256.size(), 64u);
  EXPECT_EQ(seen[0].client_cert_subject, "CN=clinician-app,O=phivault test");
}

TEST_F(TlsServerTest, MutualTlsIsOptionalButVerified) {
  StartServer(Options(true));
  {
    auto ctx = ClientContext();  // no client certificate: allowed
    beast::error_code ec;
    auto r = Get(*ctx, "/a", &ec);
    ASSERT_FALSE(ec) << ec.message();
    EXPECT_EQ(r.result_int(), 200);
  }
  {
    auto ctx = ClientContext();  // certificate from an unknown CA: refused
    ASSERT_EQ(SSL_CTX_use_certificate(ctx->native_handle(), rogue_client_->cert), 1);
    ASSERT_EQ(SSL_CTX_use_PrivateKey(ctx->native_handle(), rogue_client_->key), 1);
    beast::error_code ec;
    Get(*ctx, "/b", &ec);
    EXPECT_TRUE(ec);
  }
  auto seen = handler_.seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_TRUE(seen[0].client_cert_sha256.empty());
}

TEST_F(TlsServerTest, BadTlsFilesFailStart) {
  ServerOptions o = Options(false);
  o.tls_key_file = dir_ / "missing.key";
  auto s = Server::Start(o, &handler_);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("missing.key"), std::string::npos);
  o = Options(false);
  o.tls_key_file = dir_ / "ca.crt";  // not a key
  EXPECT_FALSE(Server::Start(o, &handler_).ok());
  WritePem(dir_ / "other.key", *ca_, true);
  o.tls_key_file = dir_ / "other.key";  // key of another certificate
  EXPECT_FALSE(Server::Start(o, &handler_).ok());
  o = Options(false);
  o.tls_key_file.clear();
  EXPECT_FALSE(Server::Start(o, &handler_).ok());
}

// The HTTPS client that fetches identity providers' JWKS: verifies the
// server against the given CA, refuses plain http and non-200 answers, and
// caps the body.
TEST_F(TlsServerTest, HttpsGetVerifiesTheServerAndChecksTheAnswer) {
  WritePem(dir_ / "server-only.crt", *server_cert_, false);
  handler_.fn = [](HttpRequest req, Responder respond) {
    HttpResponse r;
    r.status = req.path == "/jwks.json" ? 200 : 404;
    r.headers.emplace_back("Content-Type", "application/json");
    r.body = req.path == "/jwks.json" ? R"({"keys":[]})" : "{}";
    respond(std::move(r));
  };
  StartServer(Options(false));
  std::string base = "https://localhost:" + std::to_string(server_->port());
  ClientOptions trusting;
  trusting.ca_file = (dir_ / "server-only.crt").string();
  auto body = HttpsGet(base + "/jwks.json", trusting);
  ASSERT_TRUE(body.ok()) << body.status().ToString();
  EXPECT_EQ(*body, R"({"keys":[]})");

  EXPECT_EQ(HttpsGet(base + "/missing", trusting).status().code(), StatusCode::kUnavailable);
  ClientOptions wrong_ca;
  wrong_ca.ca_file = (dir_ / "ca.crt").string();  // did not sign the server certificate
  EXPECT_EQ(HttpsGet(base + "/jwks.json", wrong_ca).status().code(), StatusCode::kUnavailable);
  ClientOptions tiny = trusting;
  tiny.max_body_bytes = 4;
  EXPECT_FALSE(HttpsGet(base + "/jwks.json", tiny).ok());
  EXPECT_EQ(HttpsGet("http://localhost:" + std::to_string(server_->port()) + "/jwks.json", trusting).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(HttpsGet("https://user@localhost/x", trusting).status().code(), StatusCode::kInvalidArgument);
}

// A peer that accepts and then says nothing (a stalled identity provider)
// must not hold the calling thread, which may be a network thread, past the
// client's timeout: blocking calls would wait for ever.
TEST(HttpsClientTest, SilentPeerTimesOut) {
  net::io_context ioc;
  tcp::acceptor acceptor(ioc, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
  const uint16_t port = acceptor.local_endpoint().port();
  std::vector<tcp::socket> held;
  std::thread silent([&] {
    boost::system::error_code ec;
    held.push_back(acceptor.accept(ec));  // never reads, never writes
  });
  ClientOptions options;
  options.timeout = std::chrono::seconds(1);
  auto r = HttpsGet("https://127.0.0.1:" + std::to_string(port) + "/jwks.json", options);
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable) << r.status().ToString();
  silent.join();
}

}  // namespace
}  // namespace phivault::http
