// HTTP request/response values exchanged between the phivault HTTP server and
// its Handler (the FHIR API layer), plus the Handler interface itself.
//
// HttpRequest and HttpResponse are plain values: safe to move between threads,
// not safe to mutate concurrently. The server produces one HttpRequest per
// request after it has parsed and validated it (see request_parser.h): the
// method and target are syntactically valid, `path` is percent-decoded and
// contains no NUL/control characters and no "." or ".." segments.
//
// Handler: called by the server on one of its network threads. It must not
// block on I/O for long; it may answer synchronously (call `respond` before
// returning) or later from any other thread. The Responder must be called
// exactly once; a second call is ignored (and logged), and if every copy of a
// Responder is destroyed without being called the client gets a 500. A
// Responder may outlive the Server; calls after shutdown are dropped.
//
// Privacy: the server never logs bodies, queries or header values; handlers
// must keep to the same rule.
#ifndef PHIVAULT_HTTP_TYPES_H_
#define PHIVAULT_HTTP_TYPES_H_

#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace phivault::http {

struct HttpRequest {
  std::string method;            // "GET", ...
  std::string target;            // raw request-target, e.g. "/fhir/Patient/1?_pretty=true"
  std::string path;              // percent-decoded path without query ("/fhir/Patient/1")
  std::string query;             // raw query string without '?', not decoded
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;
  std::string remote_address;    // "127.0.0.1:54321"
  bool tls = false;
  std::string client_cert_sha256;   // hex SHA-256 of the client certificate DER when mTLS presented one, else empty
  std::string client_cert_subject;  // one-line subject when presented

  // First header named `lower_name` (REQUIRES: lower-case), or nullptr.
  const std::string* Header(std::string_view lower_name) const;
};

// Header the handler may set to give the metrics a LOW-cardinality route
// template (e.g. "/fhir/{type}/{id}"). The server strips it before sending.
inline constexpr std::string_view kRouteHeader = "X-Phivault-Route";

struct HttpResponse {
  int status = 200;  // 200..599; anything else is replaced by a 500
  // Content-Length, Transfer-Encoding, Connection, Date and Server are set by
  // the server and ignored here; headers with CR, LF or NUL are dropped.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

using Responder = std::function<void(HttpResponse)>;  // call exactly once, from any thread

class Handler {
 public:
  virtual ~Handler() = default;
  virtual void Handle(HttpRequest request, Responder respond) = 0;
};

// The server's default error rendering: a minimal FHIR OperationOutcome
// (application/fhir+json) whose diagnostics is `message`.
// REQUIRES: `message` holds no health data.
HttpResponse DefaultErrorResponse(int status, std::string_view message);

}  // namespace phivault::http

#endif  // PHIVAULT_HTTP_TYPES_H_
