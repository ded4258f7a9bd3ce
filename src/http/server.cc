// The Beast/Asio implementation of Server. Kept in one translation unit so
// the heavy Asio/Beast/SSL templates are instantiated once.
//
// Object graph (all shared_ptr):
//   Server::Impl ──> Core (options, io_context, ssl context, counters)
//   Listener ──> Core            Session<Stream> ──> Core
//   ResponseSlot (inside every Responder copy) ──> Session
// The io_context lives in Core, so it outlives every Session (and thus every
// socket and strand), even a Session kept alive by a Responder that outlives
// the Server. Once Shutdown() has set Core::closed, no Responder can post into
// the io_context any more.
#include "http/server.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <condition_variable>
#include <ctime>
#include <future>
#include <mutex>
#include <new>
#include <optional>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "common/log.h"
#include "common/metrics.h"
#include "http/parser_internal.h"
#include "http/request_parser.h"

namespace phivault::http {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

// internal::FailNextSessionsForTesting: sessions still to fail.
std::atomic<int> session_faults{0};
bool TakeSessionFault() {
  int n = session_faults.load(std::memory_order_relaxed);
  while (n > 0 && !session_faults.compare_exchange_weak(n, n - 1, std::memory_order_relaxed)) {
  }
  return n > 0;
}

constexpr std::string_view kTls12Ciphers =
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256";
constexpr std::string_view kTls13Suites = "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256";
constexpr std::chrono::seconds kCloseDrainTimeout{2};
constexpr std::chrono::seconds kTlsShutdownTimeout{1};
constexpr size_t kMaxDrainBytes = 1 << 20;
constexpr size_t kIdleReadChunk = 4096;
constexpr size_t kMaxUnparsedBeyondHeader = 64 << 10;

int64_t NowMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch()).count();
}

// RFC 7231 IMF-fixdate, independent of the C locale.
std::string HttpDate() {
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[40];
  std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d GMT", kDays[tm.tm_wday % 7], tm.tm_mday,
                kMonths[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

std::string_view MethodLabel(bhttp::verb v) {
  switch (v) {
    case bhttp::verb::get: return "GET";
    case bhttp::verb::head: return "HEAD";
    case bhttp::verb::post: return "POST";
    case bhttp::verb::put: return "PUT";
    case bhttp::verb::delete_: return "DELETE";
    case bhttp::verb::patch: return "PATCH";
    case bhttp::verb::options: return "OPTIONS";
    default: return "other";
  }
}

bool IEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return (x >= 'A' && x <= 'Z' ? x - 'A' + 'a' : x) == (y >= 'A' && y <= 'Z' ? y - 'A' + 'a' : y);
         });
}

bool IsTokenChar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool ValidHeader(std::string_view name, std::string_view value) {
  if (name.empty() || !std::all_of(name.begin(), name.end(), IsTokenChar)) return false;
  return std::none_of(value.begin(), value.end(), [](char c) {
    unsigned char u = static_cast<unsigned char>(c);
    return (u < 0x20 && c != '\t') || u == 0x7f;
  });
}

bool IsManagedHeader(std::string_view name) {
  for (std::string_view m : {"content-length", "transfer-encoding", "connection", "date", "server",
                             "x-content-type-options", "cache-control", "strict-transport-security"}) {
    if (IEquals(name, m)) return true;
  }
  return false;
}

std::string SanitizeRoute(std::string_view route) {
  if (route.empty() || route.size() > 128) return "other";
  std::string out(route);
  for (char& c : out) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f) c = '_';
  }
  return out;
}

std::string EndpointString(const tcp::endpoint& ep) {
  std::string addr = ep.address().to_string();
  if (ep.address().is_v6()) addr = "[" + addr + "]";
  return addr + ":" + std::to_string(ep.port());
}

std::string Hex(const unsigned char* p, size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) {
    out += kHex[p[i] >> 4];
    out += kHex[p[i] & 15];
  }
  return out;
}

void ExtractPeerCert(SSL* ssl, std::string* sha256, std::string* subject) {
  X509* cert = SSL_get1_peer_certificate(ssl);
  if (cert == nullptr) return;
  // With verify_peer and no callback the handshake fails on an unverified
  // certificate; check anyway so an unverified one is never reported.
  if (SSL_get_verify_result(ssl) == X509_V_OK) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (X509_digest(cert, EVP_sha256(), md, &len) == 1) *sha256 = Hex(md, len);
    if (BIO* bio = BIO_new(BIO_s_mem())) {
      if (X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) >= 0) {
        char* data = nullptr;
        long n = BIO_get_mem_data(bio, &data);
        if (n > 0 && data != nullptr) subject->assign(data, static_cast<size_t>(n));
      }
      BIO_free(bio);
    }
  }
  X509_free(cert);
}

std::string OpenSslErrors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out;
}

StatusOr<std::unique_ptr<ssl::context>> MakeSslContext(const ServerOptions& o) {
  std::unique_ptr<ssl::context> ctx;
  try {
    ctx = std::make_unique<ssl::context>(ssl::context::tls_server);
  } catch (const std::exception&) {
    return Internal("cannot create TLS context: " + OpenSslErrors());
  }
  SSL_CTX* c = ctx->native_handle();
  SSL_CTX_set_options(c, SSL_OP_NO_SSLv2 | SSL_OP_NO_SSLv3 | SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1 |
                             SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  if (SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION) != 1 ||
      SSL_CTX_set_cipher_list(c, std::string(kTls12Ciphers).c_str()) != 1 ||
      SSL_CTX_set_ciphersuites(c, std::string(kTls13Suites).c_str()) != 1) {
    return Internal("cannot configure TLS protocol/ciphers: " + OpenSslErrors());
  }
  boost::system::error_code ec;
  ctx->use_certificate_chain_file(o.tls_cert_file, ec);
  if (ec) {
    ERR_clear_error();
    return InvalidArgument("cannot load TLS certificate file " + o.tls_cert_file + ": " + ec.message() +
                           " (expect a PEM certificate chain)");
  }
  ctx->use_private_key_file(o.tls_key_file, ssl::context::pem, ec);
  if (ec) {
    ERR_clear_error();
    return InvalidArgument("cannot load TLS key file " + o.tls_key_file + ": " + ec.message() +
                           " (expect an unencrypted PEM private key)");
  }
  if (SSL_CTX_check_private_key(c) != 1) {
    ERR_clear_error();
    return InvalidArgument("TLS key file " + o.tls_key_file + " does not match certificate " + o.tls_cert_file);
  }
  static const unsigned char kSidCtx[] = "phivault";
  SSL_CTX_set_session_id_context(c, kSidCtx, sizeof kSidCtx - 1);
  if (!o.tls_client_ca_file.empty()) {
    ctx->load_verify_file(o.tls_client_ca_file, ec);
    if (ec) {
      ERR_clear_error();
      return InvalidArgument("cannot load TLS client CA file " + o.tls_client_ca_file + ": " + ec.message());
    }
    if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(o.tls_client_ca_file.c_str())) {
      SSL_CTX_set_client_CA_list(c, names);  // takes ownership
    }
    ERR_clear_error();
    // Request, but do not require, a client certificate; one that is
    // presented must verify against the CA or the handshake fails.
    ctx->set_verify_mode(ssl::verify_peer, ec);
    if (ec) return Internal("cannot set TLS verify mode: " + ec.message());
  }
  return ctx;
}

class SessionBase {
 public:
  virtual ~SessionBase() = default;
  // Thread-safe: hands a handler's response to the session's strand.
  virtual void PostResponse(HttpResponse response) = 0;
  // Thread-safe: closes the connection (only if it waits for a new request
  // when `only_if_idle`).
  virtual void PostClose(bool only_if_idle) = 0;
};

// Shared server state. Immutable after Start() except for the atomics and
// the fields guarded by `mu`.
struct Core {
  std::shared_ptr<net::io_context> ioc;  // first member: destroyed last
  ServerOptions options;
  Handler* handler = nullptr;
  std::unique_ptr<ssl::context> ssl_ctx;  // non-null => HTTPS
  metrics::Registry* registry = nullptr;
  metrics::Gauge* open_connections = nullptr;
  metrics::Gauge* in_flight_gauge = nullptr;

  std::atomic<bool> stopping{false};
  std::atomic<size_t> connections{0};
  // Connections closed at accept: over max_connections, and over
  // max_connections_per_address.
  struct Refusals {
    std::atomic<int64_t> last_warning_ms{-1000000};
    std::atomic<uint64_t> unreported{0};
  };
  Refusals over_total, over_per_address;
  std::atomic<int64_t> last_accept_warning_ms{-1000000};

  std::mutex mu;
  std::condition_variable cv;
  bool closed = false;    // guarded by mu: no more posts from Responders
  size_t in_flight = 0;   // guarded by mu: requests handed to the handler, response not yet written
  uint64_t next_id = 0;   // guarded by mu
  std::unordered_map<uint64_t, std::weak_ptr<SessionBase>> sessions;  // guarded by mu
  // Open connections per client IP address (max_connections_per_address).
  std::unordered_map<std::string, size_t> per_address;  // guarded by mu

  // Undoes what OnAccept counted for connection `id` (counted under
  // per_address[address], or not at all when `address` is empty).
  void ReleaseConnection(uint64_t id, const std::string& address) {
    connections.fetch_sub(1);
    open_connections->Add(-1);
    std::lock_guard lock(mu);
    sessions.erase(id);
    if (!address.empty()) {
      auto it = per_address.find(address);
      if (it != per_address.end() && --it->second == 0) per_address.erase(it);
    }
  }

  HttpResponse RenderError(int status, std::string_view message) const {
    if (options.error_renderer) return options.error_renderer(status, message);
    return DefaultErrorResponse(status, message);
  }

  void RecordRequest(const std::string& route, std::string_view method, int status, double seconds) {
    registry
        ->GetCounter("phivault_http_requests_total", "HTTP requests by route template, method and status.",
                     {{"route", route}, {"method", std::string(method)}, {"status", std::to_string(status)}})
        .Increment();
    registry
        ->GetHistogram("phivault_http_request_duration_seconds",
                       "Time from a complete request header to the response written, by route template.",
                       {{"route", route}})
        .Observe(seconds);
  }

  // Closes a connection refused at accept; at most once a second calls
  // `warn` with the number refused since its last call.
  template <class Warn>
  void Refuse(tcp::socket& socket, Refusals& r, Warn warn) {
    beast::error_code ignored;
    socket.close(ignored);
    const uint64_t unreported = r.unreported.fetch_add(1) + 1;
    if (RateLimit(r.last_warning_ms)) {
      r.unreported.fetch_sub(unreported);
      warn(std::to_string(unreported));
    }
  }

  // True at most once a second; counts the suppressed ones.
  bool RateLimit(std::atomic<int64_t>& last) {
    int64_t now = NowMillis();
    int64_t prev = last.load(std::memory_order_relaxed);
    return now - prev >= 1000 && last.compare_exchange_strong(prev, now);
  }
};

// Lives inside every copy of a Responder; guarantees exactly one response.
class ResponseSlot {
 public:
  explicit ResponseSlot(std::shared_ptr<SessionBase> session, std::shared_ptr<Core> core)
      : session_(std::move(session)), core_(std::move(core)) {}
  ~ResponseSlot() {
    if (!used_.exchange(true)) {
      log::Error("http_responder_dropped", {{"action", "answered 500; the handler must call its Responder"}});
      session_->PostResponse(core_->RenderError(500, "internal error: no response produced"));
    }
  }
  void Respond(HttpResponse r) {
    if (used_.exchange(true)) {
      log::Warn("http_responder_called_twice", {{"action", "second response ignored"}});
      return;
    }
    session_->PostResponse(std::move(r));
  }

 private:
  std::shared_ptr<SessionBase> session_;
  std::shared_ptr<Core> core_;
  std::atomic<bool> used_{false};
};

template <class Stream>
class Session : public SessionBase, public std::enable_shared_from_this<Session<Stream>> {
  static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;
  enum class State { kStart, kIdle, kReadingHeader, kReadingBody, kHandling, kRejecting, kWriting, kClosing, kClosed };

 public:
  // `address`: the key this connection is counted under in
  // core->per_address (empty: not counted).
  Session(std::shared_ptr<Core> core, tcp::socket&& socket, uint64_t id, std::string remote, std::string address)
      : core_(std::move(core)),
        stream_(MakeStream(std::move(socket), *core_)),
        executor_(stream_.get_executor()),
        id_(id),
        remote_(std::move(remote)),
        address_(std::move(address)) {
    // Bytes the parser has not consumed yet: a whole header, or the line of
    // a chunk (size and extensions) or trailer being read. Beast limits the
    // header only; without a cap, a chunk line that never ends would grow
    // the buffer for as long as the peer keeps sending, before any
    // authentication. Full buffer: buffer_overflow, and the connection closes.
    buffer_.max_size(opts().max_header_bytes + kMaxUnparsedBeyondHeader);
    if (TakeSessionFault()) throw std::bad_alloc();
  }

  ~Session() override { core_->ReleaseConnection(id_, address_); }

  uint64_t id() const { return id_; }

  void Start() {
    net::dispatch(executor_, [self = this->shared_from_this()] { self->DoStart(); });
  }

  void PostResponse(HttpResponse response) override {
    std::lock_guard lock(core_->mu);
    if (core_->closed) return;  // after shutdown: dropped
    net::post(executor_, [self = this->shared_from_this(), r = std::move(response)]() mutable {
      self->Deliver(std::move(r));
    });
  }

  void PostClose(bool only_if_idle) override {
    net::post(executor_, [self = this->shared_from_this(), only_if_idle] {
      if (only_if_idle && self->state_ != State::kIdle) return;
      self->CloseNow();
    });
  }

 private:
  static Stream MakeStream(tcp::socket&& socket, Core& core) {
    if constexpr (kTls) {
      return Stream(std::move(socket), *core.ssl_ctx);
    } else {
      return Stream(std::move(socket));
    }
  }

  beast::tcp_stream& Lowest() { return beast::get_lowest_layer(stream_); }
  const ServerOptions& opts() const { return core_->options; }

  void DoStart() {
    if (core_->stopping.load()) return CloseNow();
    Lowest().expires_after(opts().header_timeout);
    if constexpr (kTls) {
      stream_.async_handshake(ssl::stream_base::server,
                              [self = this->shared_from_this()](beast::error_code ec) { self->OnHandshake(ec); });
    } else {
      WaitForRequest(/*fresh=*/true);
    }
  }

  void OnHandshake(beast::error_code ec) {
    if (state_ == State::kClosed) return;
    if (ec) {
      log::Debug("http_tls_handshake_failed", {{"error", ec.message()}});
      return CloseNow();
    }
    if constexpr (kTls) ExtractPeerCert(stream_.native_handle(), &cert_sha256_, &cert_subject_);
    WaitForRequest(/*fresh=*/true);
  }

  // Waits for the first byte of the next request; the connection counts as
  // idle meanwhile (closed at once by a graceful shutdown). A fresh
  // connection keeps the deadline set in DoStart, so the TLS handshake, the
  // first byte and the whole header share one header_timeout. On keep-alive
  // the first byte may take idle_timeout, then the header gets header_timeout.
  void WaitForRequest(bool fresh) {
    if (core_->stopping.load()) return fresh ? CloseNow() : GracefulClose();
    if (buffer_.size() > 0) return ReadHeader(/*reset_deadline=*/true);
    state_ = State::kIdle;
    if (!fresh) Lowest().expires_after(opts().idle_timeout);
    stream_.async_read_some(buffer_.prepare(kIdleReadChunk),
                            [self = this->shared_from_this(), fresh](beast::error_code ec, size_t n) {
                              if (self->state_ == State::kClosed) return;
                              if (ec) return self->CloseNow();
                              self->buffer_.commit(n);
                              self->ReadHeader(/*reset_deadline=*/!fresh);
                            });
  }

  void ReadHeader(bool reset_deadline) {
    state_ = State::kReadingHeader;
    parser_.emplace();
    internal::ConfigureParser(*parser_, opts());
    method_label_ = "other";
    version_ = 11;
    head_ = false;
    if (reset_deadline) Lowest().expires_after(opts().header_timeout);
    bhttp::async_read_header(stream_, buffer_, *parser_,
                             [self = this->shared_from_this()](beast::error_code ec, size_t) { self->OnHeader(ec); });
  }

  void OnHeader(beast::error_code ec) {
    if (state_ == State::kClosed) return;
    request_start_ = Clock::now();
    if (ec) return OnReadError(ec);
    const auto& msg = parser_->get();
    method_label_ = MethodLabel(msg.method());
    version_ = msg.version();
    head_ = msg.method() == bhttp::verb::head;
    Status s = internal::CheckHeader(*parser_, opts());
    if (!s.ok()) return SendError(HttpStatusForParseError(s), s.message());
    if (parser_->is_done()) return OnRequestComplete();
    body_start_ = Clock::now();
    body_bytes_ = 0;
    auto expect = msg.find(bhttp::field::expect);
    if (expect != msg.end() && IEquals(expect->value(), "100-continue") && buffer_.size() == 0) {
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      Lowest().expires_after(opts().idle_timeout);
      net::async_write(stream_, net::const_buffer(kContinue.data(), kContinue.size()),
                       [self = this->shared_from_this()](beast::error_code wec, size_t) {
                         if (self->state_ == State::kClosed) return;
                         if (wec) return self->CloseNow();
                         self->ReadBody();
                       });
      return;
    }
    ReadBody();
  }

  // Each read must make progress within idle_timeout, and the whole body
  // must arrive by the deadline ServerOptions::body_timeout describes.
  void ReadBody() {
    state_ = State::kReadingBody;
    Clock::time_point deadline = body_start_ + opts().body_timeout;
    if (opts().min_body_rate > 0) deadline += std::chrono::seconds(body_bytes_ / opts().min_body_rate);
    Lowest().expires_at(std::min(deadline, Clock::now() + opts().idle_timeout));
    bhttp::async_read_some(stream_, buffer_, *parser_,
                           [self = this->shared_from_this()](beast::error_code ec, size_t n) {
                             if (self->state_ == State::kClosed) return;
                             self->body_bytes_ += n;
                             // A whole header came in: the request is refused
                             // (and reported), not just dropped. The timer has
                             // closed the socket, so the answer goes nowhere.
                             if (ec == beast::error::timeout) {
                               return self->SendError(408, "the request body did not arrive in time");
                             }
                             if (ec) return self->OnReadError(ec);
                             if (self->parser_->is_done()) return self->OnRequestComplete();
                             self->ReadBody();
                           });
  }

  void OnReadError(beast::error_code ec) {
    bool just_close = false;
    Status s = internal::StatusForReadError(ec, &just_close);
    if (just_close) return CloseNow();
    SendError(HttpStatusForParseError(s), s.message());
  }

  void OnRequestComplete() {
    Lowest().expires_never();
    keep_alive_ = parser_->keep_alive();
    StatusOr<HttpRequest> built = internal::BuildRequest(*parser_);
    parser_.reset();
    if (!built.ok()) return SendError(HttpStatusForParseError(built.status()), built.status().message());
    // A request that finished arriving during shutdown is not started: its
    // answer could no longer be sent, and a write would happen unseen.
    if (core_->stopping.load()) return SendError(503, "the server is shutting down");
    HttpRequest req = std::move(built).value();
    req.remote_address = remote_;
    req.tls = kTls;
    req.client_cert_sha256 = cert_sha256_;
    req.client_cert_subject = cert_subject_;
    state_ = State::kHandling;
    {
      std::lock_guard lock(core_->mu);
      ++core_->in_flight;
    }
    counted_in_flight_ = true;
    core_->in_flight_gauge->Add(1);
    auto slot = std::make_shared<ResponseSlot>(this->shared_from_this(), core_);
    Responder respond = [slot](HttpResponse r) { slot->Respond(std::move(r)); };
    try {
      core_->handler->Handle(std::move(req), std::move(respond));
    } catch (...) {
      // Handlers must not throw; if one does, the dropped Responder answers 500.
      log::Error("http_handler_threw", {{"action", "fix the handler; answered 500 if it had not responded"}});
    }
  }

  void Deliver(HttpResponse r) {
    if (state_ != State::kHandling) return;  // closed meanwhile
    WriteResponse(std::move(r), /*close_after=*/false);
  }

  void SendError(int status, std::string_view message) {
    parser_.reset();
    HttpResponse r = core_->RenderError(status, message);
    if (!opts().on_rejected) return WriteResponse(std::move(r), /*close_after=*/true);
    state_ = State::kRejecting;
    opts().on_rejected(remote_, status, message, [self = this->shared_from_this(), r = std::move(r)]() mutable {
      std::lock_guard lock(self->core_->mu);
      if (self->core_->closed) return;  // after shutdown: dropped
      net::post(self->executor_, [self, r = std::move(r)]() mutable {
        if (self->state_ != State::kRejecting) return;  // closed meanwhile
        self->WriteResponse(std::move(r), /*close_after=*/true);
      });
    });
  }

  void WriteResponse(HttpResponse r, bool close_after) {
    if (r.status < 200 || r.status > 599) {
      log::Error("http_invalid_response_status", {{"status", std::to_string(r.status)}});
      r = core_->RenderError(500, "internal error: invalid response status");
      if (r.status < 200 || r.status > 599) r.status = 500;
    }
    route_ = "other";
    res_ = {};
    res_.version(version_ == 10 ? 10 : 11);
    res_.result(static_cast<unsigned>(r.status));
    for (const auto& [name, value] : r.headers) {
      if (IEquals(name, kRouteHeader)) {
        route_ = SanitizeRoute(value);
        continue;
      }
      if (IsManagedHeader(name)) continue;
      if (!ValidHeader(name, value)) {
        log::Warn("http_response_header_dropped", {{"reason", "invalid characters"}});
        continue;
      }
      res_.insert(name, value);
    }
    res_.set(bhttp::field::server, "phivault");
    res_.set(bhttp::field::date, HttpDate());
    res_.set("X-Content-Type-Options", "nosniff");
    res_.set(bhttp::field::cache_control, "no-store");
    if (kTls) res_.set("Strict-Transport-Security", "max-age=31536000; includeSubDomains");
    close_after_ = close_after || !keep_alive_ || core_->stopping.load();
    res_.keep_alive(!close_after_);
    const bool bodiless = r.status == 204 || r.status == 304;
    if (!bodiless) {
      res_.content_length(r.body.size());
      if (!head_) res_.body() = std::move(r.body);
    }
    status_ = r.status;
    state_ = State::kWriting;
    Lowest().expires_after(opts().idle_timeout);
    bhttp::async_write(stream_, res_,
                       [self = this->shared_from_this()](beast::error_code ec, size_t) { self->OnWrite(ec); });
  }

  void OnWrite(beast::error_code ec) {
    double seconds = std::chrono::duration<double>(Clock::now() - request_start_).count();
    core_->RecordRequest(route_, method_label_, status_, seconds);
    res_ = {};
    FinishInFlight();
    if (ec || state_ == State::kClosed) return CloseNow();
    if (close_after_) return GracefulClose();
    WaitForRequest(/*fresh=*/false);
  }

  void FinishInFlight() {
    if (!counted_in_flight_) return;
    counted_in_flight_ = false;
    core_->in_flight_gauge->Add(-1);
    {
      std::lock_guard lock(core_->mu);
      --core_->in_flight;
    }
    core_->cv.notify_all();
  }

  // Sends FIN (or TLS close_notify) and discards what the client still sends
  // for a short while, so that an early error response is not destroyed by a
  // TCP reset caused by unread request bytes.
  void GracefulClose() {
    state_ = State::kClosing;
    if constexpr (kTls) {
      Lowest().expires_after(kTlsShutdownTimeout);
      stream_.async_shutdown([self = this->shared_from_this()](beast::error_code) { self->CloseNow(); });
    } else {
      beast::error_code ec;
      Lowest().socket().shutdown(tcp::socket::shutdown_send, ec);
      if (ec) return CloseNow();
      Lowest().expires_after(kCloseDrainTimeout);  // one deadline for the whole drain
      Drain();
    }
  }

  void Drain() {
    stream_.async_read_some(net::buffer(drain_buf_),
                            [self = this->shared_from_this()](beast::error_code ec, size_t n) {
                              if (self->state_ == State::kClosed) return;
                              self->drained_ += n;
                              if (ec || self->drained_ > kMaxDrainBytes) return self->CloseNow();
                              self->Drain();
                            });
  }

  void CloseNow() {
    if (state_ == State::kClosed) return;
    state_ = State::kClosed;
    FinishInFlight();
    Lowest().close();  // cancels pending operations and the timer
  }

  std::shared_ptr<Core> core_;
  Stream stream_;
  const net::any_io_executor executor_;  // the connection's strand
  const uint64_t id_;
  const std::string remote_;
  const std::string address_;

  // Everything below is touched only on the strand.
  State state_ = State::kStart;
  beast::flat_buffer buffer_;
  std::optional<internal::BeastParser> parser_;
  bhttp::response<bhttp::string_body> res_;
  std::string cert_sha256_, cert_subject_;
  std::string method_label_ = "other";
  std::string route_ = "other";
  unsigned version_ = 11;
  bool head_ = false;
  bool keep_alive_ = false;
  bool close_after_ = true;
  bool counted_in_flight_ = false;
  int status_ = 0;
  Clock::time_point request_start_ = Clock::now();
  Clock::time_point body_start_ = Clock::now();
  uint64_t body_bytes_ = 0;
  size_t drained_ = 0;
  std::array<char, 4096> drain_buf_{};
};

class Listener : public std::enable_shared_from_this<Listener> {
 public:
  explicit Listener(std::shared_ptr<Core> core)
      : core_(std::move(core)), acceptor_(net::make_strand(*core_->ioc)), retry_(acceptor_.get_executor()) {}

  Status Bind(const tcp::endpoint& endpoint) {
    beast::error_code ec;
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
    if (ec) {
      return Unavailable("cannot listen on " + EndpointString(endpoint) + ": " + ec.message() +
                         " (is the port in use or privileged?)");
    }
    auto local = acceptor_.local_endpoint(ec);
    port_ = ec ? endpoint.port() : local.port();
    return Status::Ok();
  }

  uint16_t port() const { return port_; }

  void Accept() {
    acceptor_.async_accept(net::make_strand(*core_->ioc),
                           [self = shared_from_this()](beast::error_code ec, tcp::socket socket) {
                             self->OnAccept(ec, std::move(socket));
                           });
  }

  // Closes the acceptor on its strand; the future is ready once it is closed.
  std::future<void> Close() {
    auto done = std::make_shared<std::promise<void>>();
    std::future<void> f = done->get_future();
    net::post(acceptor_.get_executor(), [self = shared_from_this(), done] {
      beast::error_code ec;
      self->acceptor_.close(ec);
      self->retry_.cancel();
      done->set_value();
    });
    return f;
  }

 private:
  void OnAccept(beast::error_code ec, tcp::socket socket) {
    if (core_->stopping.load() || !acceptor_.is_open()) return;
    if (ec) {
      if (ec == net::error::operation_aborted) return;
      if (core_->RateLimit(core_->last_accept_warning_ms)) {
        log::Warn("http_accept_failed", {{"error", ec.message()}, {"action", "check the file descriptor limit"}});
      }
      retry_.expires_after(std::chrono::milliseconds(50));  // e.g. EMFILE: do not spin
      retry_.async_wait([self = shared_from_this()](beast::error_code wec) {
        if (!wec) self->Accept();
      });
      return;
    }
    if (core_->connections.load() >= core_->options.max_connections) {
      core_->Refuse(socket, core_->over_total, [&](std::string rejected) {
        log::Warn("http_connection_limit", {{"max_connections", std::to_string(core_->options.max_connections)},
                                            {"rejected", std::move(rejected)},
                                            {"action", "raise max_connections or add capacity"}});
      });
      return Accept();
    }
    beast::error_code opt_ec;
    socket.set_option(tcp::no_delay(true), opt_ec);
    auto remote = socket.remote_endpoint(opt_ec);
    std::string remote_str = opt_ec ? "unknown" : EndpointString(remote);
    const size_t per_address_limit = core_->options.max_connections_per_address;
    std::string address =
        opt_ec || per_address_limit == 0 ? std::string() : internal::ConnectionAddressKey(remote.address());
    uint64_t id = 0;
    bool refused = false;
    {
      std::lock_guard lock(core_->mu);
      if (!address.empty()) {
        size_t& open = core_->per_address[address];
        refused = open >= per_address_limit;
        if (!refused) ++open;
      }
      if (!refused) id = core_->next_id++;
    }
    if (refused) {
      // One client (or everyone behind one proxy) must not take every
      // connection the server has.
      core_->Refuse(socket, core_->over_per_address, [&](std::string rejected) {
        log::Warn("http_connection_limit_per_address",
                  {{"address", address},
                   {"max_connections_per_address", std::to_string(per_address_limit)},
                   {"rejected", std::move(rejected)},
                   {"action", "behind a reverse proxy, raise max_connections_per_address"}});
      });
      return Accept();
    }
    core_->connections.fetch_add(1);
    core_->open_connections->Add(1);
    try {
      if (core_->ssl_ctx) {
        StartSession(NewSession<beast::ssl_stream<beast::tcp_stream>>(std::move(socket), id, std::move(remote_str),
                                                                      address));
      } else {
        StartSession(NewSession<beast::tcp_stream>(std::move(socket), id, std::move(remote_str), address));
      }
    } catch (const std::exception& e) {
      // Registering or starting a built session failed (no memory): its
      // destructor has given the slot back. Keep accepting either way.
      WarnSessionFailed(e);
    }
    Accept();
  }

  // Null if the session could not be built (e.g. no memory for its TLS
  // state): the socket closes, and the counts do not keep its slot.
  template <class Stream>
  std::shared_ptr<Session<Stream>> NewSession(tcp::socket&& socket, uint64_t id, std::string remote,
                                              const std::string& address) {
    try {
      return std::make_shared<Session<Stream>>(core_, std::move(socket), id, std::move(remote), address);
    } catch (const std::exception& e) {
      core_->ReleaseConnection(id, address);
      WarnSessionFailed(e);
      return nullptr;
    }
  }

  void WarnSessionFailed(const std::exception& e) {
    if (core_->RateLimit(core_->last_accept_warning_ms)) {
      log::Warn("http_session_failed", {{"error", e.what()}, {"action", "check the server's memory"}});
    }
  }

  // Registered before it starts, so that a shutdown racing the accept
  // (CloseSessions) sees every session that may already be running.
  template <class S>
  void StartSession(std::shared_ptr<S> session) {
    if (!session) return;
    {
      std::lock_guard lock(core_->mu);
      core_->sessions.emplace(session->id(), session);
    }
    session->Start();
  }

  std::shared_ptr<Core> core_;
  tcp::acceptor acceptor_;
  net::steady_timer retry_;
  uint16_t port_ = 0;
};

}  // namespace

struct Server::Impl {
  std::shared_ptr<Core> core;
  std::shared_ptr<Listener> listener;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
  std::vector<std::thread> threads;
  std::mutex threads_mu;
  std::condition_variable threads_cv;
  int running = 0;  // guarded by threads_mu
  std::mutex shutdown_mu;
  bool shut_down = false;  // guarded by shutdown_mu

  // Posts a close to every live session (copying the list first, so no
  // session can be destroyed while core->mu is held).
  void CloseSessions(bool only_if_idle) {
    std::vector<std::weak_ptr<SessionBase>> list;
    {
      std::lock_guard lock(core->mu);
      for (const auto& [id, w] : core->sessions) list.push_back(w);
    }
    for (auto& w : list) {
      if (auto s = w.lock()) s->PostClose(only_if_idle);
    }
  }
};

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() { Shutdown(); }

uint16_t Server::port() const { return impl_->listener->port(); }

void internal::FailNextSessionsForTesting(int n) { session_faults.store(n); }

std::string internal::ConnectionAddressKey(const net::ip::address& address) {
  if (!address.is_v6()) return address.to_string();
  const net::ip::address_v6 v6 = address.to_v6();
  if (v6.is_v4_mapped()) return net::ip::make_address_v4(net::ip::v4_mapped, v6).to_string();
  net::ip::address_v6::bytes_type bytes = v6.to_bytes();
  std::fill(bytes.begin() + 8, bytes.end(), 0);
  return net::ip::address_v6(bytes).to_string() + "/64";
}

StatusOr<std::unique_ptr<Server>> Server::Start(ServerOptions options, Handler* handler) {
  if (handler == nullptr) return InvalidArgument("http server needs a handler");
  const bool tls = !options.tls_cert_file.empty() || !options.tls_key_file.empty();
  if (tls && (options.tls_cert_file.empty() || options.tls_key_file.empty())) {
    return InvalidArgument("set both tls_cert_file and tls_key_file, or neither");
  }
  if (!tls && !options.tls_client_ca_file.empty()) {
    return InvalidArgument("tls_client_ca_file needs tls_cert_file and tls_key_file");
  }
  int threads = options.threads > 0 ? options.threads : static_cast<int>(std::thread::hardware_concurrency());
  threads = std::max(threads, 1);

  auto core = std::make_shared<Core>();
  core->ioc = std::make_shared<net::io_context>(threads);
  core->handler = handler;
  core->registry = options.metrics != nullptr ? options.metrics : &metrics::Registry::Default();
  core->open_connections = &core->registry->GetGauge("phivault_http_open_connections", "Open HTTP connections.");
  core->in_flight_gauge =
      &core->registry->GetGauge("phivault_http_in_flight_requests", "Requests handed to the handler, not yet answered.");
  if (tls) {
    PV_ASSIGN_OR_RETURN(core->ssl_ctx, MakeSslContext(options));
  }
  core->options = std::move(options);
  const ServerOptions& o = core->options;

  beast::error_code ec;
  tcp::endpoint endpoint;
  auto address = net::ip::make_address(o.host, ec);
  if (!ec) {
    endpoint = tcp::endpoint(address, o.port);
  } else {
    tcp::resolver resolver(*core->ioc);
    auto results = resolver.resolve(o.host, std::to_string(o.port), ec);
    if (ec || results.empty()) {
      return InvalidArgument("cannot resolve listen host " + o.host + ": " + (ec ? ec.message() : "no address"));
    }
    endpoint = results.begin()->endpoint();
  }

  auto impl = std::make_unique<Impl>();
  impl->core = core;
  impl->listener = std::make_shared<Listener>(core);
  PV_RETURN_IF_ERROR(impl->listener->Bind(endpoint));
  impl->work.emplace(core->ioc->get_executor());
  impl->listener->Accept();
  impl->running = threads;
  Impl* raw = impl.get();
  for (int i = 0; i < threads; ++i) {
    impl->threads.emplace_back([core, raw] {
      for (;;) {
        try {
          core->ioc->run();
          break;
        } catch (const std::exception& e) {
          log::Error("http_io_thread_exception", {{"what", e.what()}});
        } catch (...) {
          log::Error("http_io_thread_exception", {{"what", "unknown"}});
        }
      }
      std::lock_guard lock(raw->threads_mu);
      --raw->running;
      raw->threads_cv.notify_all();
    });
  }
  log::Info("http_server_started", {{"host", o.host},
                                    {"port", std::to_string(impl->listener->port())},
                                    {"tls", tls ? "true" : "false"},
                                    {"mtls", o.tls_client_ca_file.empty() ? "false" : "true"},
                                    {"threads", std::to_string(threads)}});
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

void Server::Shutdown(std::chrono::milliseconds grace) {
  std::lock_guard shutdown_lock(impl_->shutdown_mu);
  if (impl_->shut_down) return;
  impl_->shut_down = true;
  Core& core = *impl_->core;
  log::Info("http_server_stopping", {{"grace_ms", std::to_string(grace.count())}});
  const auto deadline = Clock::now() + grace;

  // 1. Stop accepting: once this returns, new connections are refused.
  core.stopping.store(true);
  std::future<void> closed = impl_->listener->Close();
  if (closed.wait_for(std::chrono::seconds(5)) != std::future_status::ready) {
    log::Error("http_shutdown_acceptor_stuck", {{"action", "continuing shutdown"}});
  }
  // 2. Idle keep-alive connections go now; busy ones close after their response.
  impl_->CloseSessions(/*only_if_idle=*/true);

  // 3. Let in-flight requests finish and their responses be written.
  size_t abandoned = 0;
  {
    std::unique_lock lock(core.mu);
    core.cv.wait_until(lock, deadline, [&] { return core.in_flight == 0; });
    abandoned = core.in_flight;
    core.closed = true;  // late Responders are dropped from here on
  }
  if (abandoned > 0) {
    log::Warn("http_shutdown_grace_expired", {{"abandoned_requests", std::to_string(abandoned)}});
  }

  // 4. Close everything that is left and let the threads run dry.
  impl_->CloseSessions(/*only_if_idle=*/false);
  impl_->work.reset();
  {
    std::unique_lock lock(impl_->threads_mu);
    if (!impl_->threads_cv.wait_for(lock, std::chrono::seconds(5), [&] { return impl_->running == 0; })) {
      log::Warn("http_shutdown_forced", {{"action", "stopping io_context with pending operations"}});
      core.ioc->stop();
    }
  }
  for (auto& t : impl_->threads) {
    if (t.joinable()) t.join();
  }
  log::Info("http_server_stopped", {{"abandoned_requests", std::to_string(abandoned)}});
}

}  // namespace phivault::http
