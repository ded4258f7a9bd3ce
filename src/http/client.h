// HttpsGet: a small, strict HTTPS client for fetching JSON documents such as
// an identity provider's JWKS.
//
// The server certificate must verify against `ca_file` (or the system store
// when empty) and match the URL's host name; TLS 1.2 is the minimum. The
// whole exchange has one deadline, the body is capped, redirects are not
// followed (a JWKS URL that moves is a configuration change), and only a 200
// answer counts. Plain http:// URLs are refused: key material must not be
// fetched over an unauthenticated channel.
//
// Thread-safety: a free function; each call uses its own io_context.
#ifndef PHIVAULT_HTTP_CLIENT_H_
#define PHIVAULT_HTTP_CLIENT_H_

#include <chrono>
#include <cstddef>
#include <string>

#include "common/status.h"

namespace phivault::http {

struct ClientOptions {
  std::string ca_file;  // PEM bundle; empty: the system's default trust store
  std::chrono::seconds timeout{10};
  size_t max_body_bytes = 1 << 20;
};

// Unavailable for network/TLS failures and non-200 answers, InvalidArgument
// for a URL that is not https://host[:port]/path.
StatusOr<std::string> HttpsGet(const std::string& url, const ClientOptions& options = {});

}  // namespace phivault::http

#endif  // PHIVAULT_HTTP_CLIENT_H_
