// Fuzzes the request parsing the HTTP server runs on untrusted bytes:
//  * ParseHttpRequest (whole request in one buffer), and
//  * the incremental path: the same Beast parser fed in growing slices, the
//    way Beast's async_read_header/async_read_some loop feeds it from the
//    socket, followed by the same CheckHeader/BuildRequest steps.
// The first input byte picks the mode, small limits (so the 413/431 paths are
// reached) and the slice size.
#include <algorithm>
#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "http/parser_internal.h"
#include "http/request_parser.h"

namespace {

using phivault::http::HttpRequest;
using phivault::http::ServerOptions;

void CheckRequest(const HttpRequest& req, const ServerOptions& limits) {
  if (req.path.empty() || req.path[0] != '/') __builtin_trap();
  if (req.path.find('\0') != std::string::npos) __builtin_trap();
  if (req.body.size() > limits.max_body_bytes) __builtin_trap();
  if (req.headers.size() > limits.max_header_count) __builtin_trap();
  for (const auto& [name, value] : req.headers) {
    for (char c : name) {
      if (c >= 'A' && c <= 'Z') __builtin_trap();
    }
  }
  (void)req.Header("host");
}

void Incremental(std::string_view raw, size_t step, const ServerOptions& limits) {
  namespace bhttp = boost::beast::http;
  phivault::http::internal::BeastParser parser;
  phivault::http::internal::ConfigureParser(parser, limits);
  size_t have = std::min(step, raw.size());  // bytes "received" so far
  size_t pos = 0;                            // bytes consumed by the parser
  bool header_checked = false;
  while (!parser.is_done()) {
    boost::beast::error_code ec;
    size_t n = parser.put(boost::asio::const_buffer(raw.data() + pos, have - pos), ec);
    pos += n;
    if (ec && ec != bhttp::error::need_more) return;  // the server answers 400/413/431 or closes
    if (!header_checked && parser.is_header_done()) {
      header_checked = true;
      if (!phivault::http::internal::CheckHeader(parser, limits).ok()) return;
    }
    if (parser.is_done()) break;
    if (ec == bhttp::error::need_more || pos == have) {
      if (have == raw.size()) {  // peer closed: what Beast's read does on EOF
        if (parser.got_some()) parser.put_eof(ec);
        return;
      }
      have = std::min(raw.size(), have + step);
    }
  }
  auto r = phivault::http::internal::BuildRequest(parser);
  if (r.ok()) CheckRequest(*r, limits);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t control = data[0];
  std::string_view raw(reinterpret_cast<const char*>(data + 1), size - 1);
  ServerOptions limits;
  if (control & 1) {
    limits.max_body_bytes = 64;
    limits.max_header_bytes = 256;
    limits.max_header_count = 4;
  }
  if (control & 2) {
    Incremental(raw, static_cast<size_t>(control >> 2) + 1, limits);
    return 0;
  }
  auto r = phivault::http::ParseHttpRequest(raw, limits);
  if (r.ok()) {
    CheckRequest(*r, limits);
  } else {
    int status = phivault::http::HttpStatusForParseError(r.status());
    if (status != 400 && status != 413 && status != 431) __builtin_trap();
  }
  return 0;
}
