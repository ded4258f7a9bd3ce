// ParseHttpRequest: parses one complete HTTP/1.x request held in memory with
// exactly the limits and validation the Server applies to requests it reads
// from a socket. Used by the fuzzer and by tests; the server shares the
// implementation (parser_internal.h).
//
// Validation: Beast's parser (header_limit = max_header_bytes, body_limit =
// max_body_bytes), then at most max_header_count fields, no
// Content-Length together with Transfer-Encoding, origin-form target
// ("/..."), no '#' in the target, a path that percent-decodes cleanly with no
// NUL/control characters and no "." or ".." segments.
//
// Thread-safety: pure functions. Never throws, asserts or crashes on any
// input.
#ifndef PHIVAULT_HTTP_REQUEST_PARSER_H_
#define PHIVAULT_HTTP_REQUEST_PARSER_H_

#include <string>
#include <string_view>

#include "common/status.h"
#include "http/server.h"
#include "http/types.h"

namespace phivault::http {

// Errors: kInvalidArgument (HTTP 400: malformed, incomplete, bad target),
// kTooLarge (413: body above max_body_bytes), kResourceExhausted (431: header
// above max_header_bytes or more than max_header_count fields). Bytes after
// the first complete request are ignored. remote_address/tls are left empty.
StatusOr<HttpRequest> ParseHttpRequest(std::string_view raw_bytes, const ServerOptions& limits);

// Splits a request-target into the percent-decoded path and the raw query and
// validates it as described above. Returns kInvalidArgument on failure.
Status SplitTarget(std::string_view target, std::string* path, std::string* query);

// The HTTP status the server answers with for an error of ParseHttpRequest
// (400, 413 or 431; 400 for anything unexpected).
int HttpStatusForParseError(const Status& status);

}  // namespace phivault::http

#endif  // PHIVAULT_HTTP_REQUEST_PARSER_H_
