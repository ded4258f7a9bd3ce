// Internal to src/http: the Beast-level request parsing steps shared by
// ParseHttpRequest (request_parser.cc) and the Server (server.cc), so that the
// fuzzer exercises exactly what the server runs, and the server's per-address
// connection key (tested on its own), and a fault hook for the server's
// tests. Not part of the public API.
//
// Thread-safety: pure functions over caller-owned objects. Never throw.
#ifndef PHIVAULT_HTTP_PARSER_INTERNAL_H_
#define PHIVAULT_HTTP_PARSER_INTERNAL_H_

#include <boost/asio/ip/address.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/system/error_code.hpp>

#include <string>

#include "common/status.h"
#include "http/server.h"
#include "http/types.h"

namespace phivault::http::internal {

using BeastParser = boost::beast::http::request_parser<boost::beast::http::string_body>;

// Applies header_limit, body_limit and eager body parsing.
void ConfigureParser(BeastParser& parser, const ServerOptions& limits);

// Checks done once the header is complete: header count, Content-Length vs
// Transfer-Encoding, declared Content-Length vs max_body_bytes.
// REQUIRES: parser.is_header_done().
Status CheckHeader(const BeastParser& parser, const ServerOptions& limits);

// Maps a Beast parse/read error to a Status (see request_parser.h for the
// codes). Sets *just_close when the right reaction is to close the connection
// without answering (EOF, timeout, reset, partial message, TLS errors).
Status StatusForReadError(const boost::system::error_code& ec, bool* just_close);

// Builds the HttpRequest from a completely parsed message (moves the body and
// headers out of it) and validates the target. remote_address/tls are left
// for the caller.
// REQUIRES: parser.is_done().
StatusOr<HttpRequest> BuildRequest(BeastParser& parser);

// The key a connection counts under for ServerOptions::
// max_connections_per_address: an IPv4 address (also when IPv4-mapped), or
// the /64 prefix of an IPv6 one, which one subscriber gets and can rotate
// through at will.
std::string ConnectionAddressKey(const boost::asio::ip::address& address);

// Tests only: the next `n` sessions the server builds fail as if out of
// memory (their constructor throws std::bad_alloc).
void FailNextSessionsForTesting(int n);

}  // namespace phivault::http::internal

#endif  // PHIVAULT_HTTP_PARSER_INTERNAL_H_
