// Server: phivault's HTTP/1.1 (or HTTPS-only) front end, built on Boost.Beast.
//
// Start() binds, then runs an io_context on `threads` threads. Each
// connection is served on its own strand, one request at a time (keep-alive,
// no concurrent pipelining): the server reads and validates a request within
// the configured limits and timeouts, hands it to the Handler, and writes the
// response when the Handler's Responder is called (from any thread). Errors
// the HTTP layer detects itself (400 malformed, 413 body too large, 431
// header too large / too many headers) are rendered by
// ServerOptions::error_renderer and the connection is then closed. Every
// response carries Date, Content-Length, `Server: phivault`,
// `X-Content-Type-Options: nosniff`, `Cache-Control: no-store` and, with TLS,
// `Strict-Transport-Security`.
//
// Metrics (ServerOptions::metrics, default registry when null):
//   phivault_http_requests_total{route,method,status}
//   phivault_http_request_duration_seconds{route}
//   phivault_http_open_connections, phivault_http_in_flight_requests
// `route` is the template the handler put in the X-Phivault-Route response
// header (stripped before sending), else "other"; unknown methods become
// "other". No id or query value ever becomes a label.
//
// Thread-safety: port() may be called from any thread; Shutdown() and the
// destructor from any thread except the server's own network threads (i.e.
// not from inside Handler::Handle).
//
// Lifetime: the Handler must outlive the Server. Responders may outlive it.
#ifndef PHIVAULT_HTTP_SERVER_H_
#define PHIVAULT_HTTP_SERVER_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"
#include "http/types.h"

namespace phivault::metrics {
class Registry;
}

namespace phivault::http {

struct ServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;                     // port 0 = ephemeral (tests)
  int threads = 0;                          // 0 = std::thread::hardware_concurrency()
  size_t max_body_bytes = 16 << 20;         // 413 beyond
  size_t max_header_bytes = 16 << 10;       // 431 beyond (request line + header fields)
  size_t max_header_count = 100;            // 431 beyond
  size_t max_connections = 1024;            // further accepts are closed immediately (warning, rate-limited)
  // The same for each client IPv4 address or IPv6 /64 (0 = no limit).
  // Behind a reverse proxy every client shares the proxy's address: raise
  // it there.
  size_t max_connections_per_address = 256;
  std::chrono::seconds header_timeout{10};  // whole header (and TLS handshake) must arrive within this (slow-loris)
  std::chrono::seconds idle_timeout{60};    // keep-alive idle; each body read; the whole response write
  // A request body must be complete within body_timeout plus one second per
  // min_body_rate bytes received so far (Apache's mod_reqtimeout MinRate), so
  // a client trickling a body cannot hold a connection for long; a fast
  // upload of any allowed size still fits. 0 = no extension.
  std::chrono::seconds body_timeout{30};
  size_t min_body_rate = 16 << 10;  // bytes per second
  std::string tls_cert_file, tls_key_file;  // both set => HTTPS only (PEM; the cert file may hold a chain)
  std::string tls_client_ca_file;           // set => request (but do not require) client certs verified against this CA
  // Renders an error the HTTP layer itself produces (400 malformed, 413, 431,
  // 500 when a handler drops its Responder). Empty => DefaultErrorResponse.
  // Called on network threads; must be thread-safe and must not block.
  std::function<HttpResponse(int status, std::string_view message)> error_renderer;
  // Told of every request the HTTP layer answers itself, before any handler
  // saw it (400 malformed, 413, 431, 503 while shutting down, 408 for a body
  // past its deadline), with the peer's address, the status and the
  // client-safe reason: the handler audits every other request, and these
  // must not go unrecorded. The answer is written only once `release` is
  // called (exactly once, from any thread), so a client cannot send refused
  // requests faster than they are recorded. Network threads; must be
  // thread-safe and must not block. May be empty.
  std::function<void(std::string_view remote, int status, std::string_view reason, std::function<void()> release)>
      on_rejected;
  // Where request metrics go; nullptr => metrics::Registry::Default().
  // REQUIRES: outlives the Server.
  metrics::Registry* metrics = nullptr;
};

class Server {
 public:
  // Binds host:port and starts the network threads. Fails (without throwing)
  // if the address cannot be bound or the TLS files cannot be loaded.
  // REQUIRES: handler != nullptr and outlives the returned Server.
  static StatusOr<std::unique_ptr<Server>> Start(ServerOptions options, Handler* handler);

  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  ~Server();  // calls Shutdown() if needed

  // The bound port (the ephemeral one when options.port was 0).
  uint16_t port() const;

  // Graceful: stop accepting (new connections are refused), close idle
  // keep-alive connections, let in-flight requests finish and their responses
  // be written (up to `grace`), then close every remaining connection and
  // join the threads. Idempotent.
  void Shutdown(std::chrono::milliseconds grace = std::chrono::seconds(30));

 private:
  struct Impl;
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace phivault::http

#endif  // PHIVAULT_HTTP_SERVER_H_
