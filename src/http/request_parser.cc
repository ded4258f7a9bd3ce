#include "http/request_parser.h"

#include <algorithm>
#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>
#include <iterator>
#include <limits>

#include "http/parser_internal.h"

namespace phivault::http {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace net = boost::asio;

namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string ToLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

}  // namespace

Status SplitTarget(std::string_view target, std::string* path, std::string* query) {
  if (target.empty() || target.front() != '/') return InvalidArgument("request target must start with '/'");
  if (target.find('#') != std::string_view::npos) return InvalidArgument("request target must not contain '#'");
  size_t q = target.find('?');
  std::string_view raw_path = target.substr(0, q);
  std::string_view raw_query = q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
  std::string decoded;
  decoded.reserve(raw_path.size());
  for (size_t i = 0; i < raw_path.size(); ++i) {
    char c = raw_path[i];
    if (c == '%') {
      if (i + 2 >= raw_path.size()) return InvalidArgument("invalid percent-encoding in path");
      int hi = HexValue(raw_path[i + 1]);
      int lo = HexValue(raw_path[i + 2]);
      if (hi < 0 || lo < 0) return InvalidArgument("invalid percent-encoding in path");
      c = static_cast<char>(hi * 16 + lo);
      i += 2;
    }
    unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return InvalidArgument("control character in path");
    decoded += c;
  }
  // Reject dot segments in the decoded path ("/a/../b", "/a/%2e%2e/b", "/a/./b").
  size_t start = 0;
  while (start <= decoded.size()) {
    size_t end = decoded.find('/', start);
    if (end == std::string::npos) end = decoded.size();
    std::string_view seg(decoded.data() + start, end - start);
    if (seg == "." || seg == "..") return InvalidArgument("dot segment in path");
    start = end + 1;
  }
  *path = std::move(decoded);
  *query = std::string(raw_query);
  return Status::Ok();
}

int HttpStatusForParseError(const Status& status) {
  switch (status.code()) {
    case StatusCode::kTooLarge: return 413;
    case StatusCode::kResourceExhausted: return 431;
    default: return 400;
  }
}

namespace internal {

void ConfigureParser(BeastParser& parser, const ServerOptions& limits) {
  parser.header_limit(static_cast<std::uint32_t>(
      std::min<size_t>(limits.max_header_bytes, std::numeric_limits<std::uint32_t>::max())));
  parser.body_limit(static_cast<std::uint64_t>(limits.max_body_bytes));
  parser.eager(true);
}

Status CheckHeader(const BeastParser& parser, const ServerOptions& limits) {
  const auto& msg = parser.get();
  size_t count = static_cast<size_t>(std::distance(msg.begin(), msg.end()));
  if (count > limits.max_header_count) return {StatusCode::kResourceExhausted, "too many header fields"};
  bool has_cl = msg.find(bhttp::field::content_length) != msg.end();
  bool has_te = msg.find(bhttp::field::transfer_encoding) != msg.end();
  if (has_cl && has_te) return InvalidArgument("both Content-Length and Transfer-Encoding");
  if (auto cl = parser.content_length(); cl && *cl > limits.max_body_bytes) {
    return {StatusCode::kTooLarge, "request body too large"};
  }
  return Status::Ok();
}

Status StatusForReadError(const boost::system::error_code& ec, bool* just_close) {
  *just_close = false;
  if (ec == bhttp::error::header_limit) return {StatusCode::kResourceExhausted, "request header too large"};
  if (ec == bhttp::error::body_limit) return {StatusCode::kTooLarge, "request body too large"};
  if (ec == bhttp::error::end_of_stream || ec == bhttp::error::partial_message || ec == bhttp::error::need_more ||
      ec == bhttp::error::buffer_overflow) {
    *just_close = true;
    return InvalidArgument("incomplete request");
  }
  if (ec.category() == bhttp::make_error_code(bhttp::error::bad_method).category()) {
    return InvalidArgument("malformed request");
  }
  *just_close = true;  // transport: EOF, reset, timeout, TLS
  return Unavailable("connection error");
}

StatusOr<HttpRequest> BuildRequest(BeastParser& parser) {
  auto msg = parser.release();
  HttpRequest req;
  req.method = std::string(msg.method_string());
  req.target = std::string(msg.target());
  PV_RETURN_IF_ERROR(SplitTarget(req.target, &req.path, &req.query));
  req.headers.reserve(static_cast<size_t>(std::distance(msg.begin(), msg.end())));
  for (const auto& f : msg) {
    req.headers.emplace_back(ToLower(f.name_string()), std::string(f.value()));
  }
  req.body = std::move(msg.body());
  return req;
}

}  // namespace internal

StatusOr<HttpRequest> ParseHttpRequest(std::string_view raw_bytes, const ServerOptions& limits) {
  internal::BeastParser parser;
  internal::ConfigureParser(parser, limits);
  std::string_view rest = raw_bytes;
  bool header_checked = false;
  while (!parser.is_done()) {
    beast::error_code ec;
    if (rest.empty()) {
      if (!parser.got_some()) return InvalidArgument("empty request");  // put_eof asserts otherwise
      parser.put_eof(ec);
      if (ec || !parser.is_done()) return InvalidArgument("incomplete request");
      break;
    }
    size_t n = parser.put(net::const_buffer(rest.data(), rest.size()), ec);
    rest.remove_prefix(std::min(n, rest.size()));
    if (ec && ec != bhttp::error::need_more) {
      bool just_close = false;
      Status s = internal::StatusForReadError(ec, &just_close);
      if (s.code() == StatusCode::kUnavailable) return InvalidArgument("malformed request");
      return s;
    }
    if (parser.is_header_done() && !header_checked) {
      header_checked = true;
      PV_RETURN_IF_ERROR(internal::CheckHeader(parser, limits));
    }
    // All remaining input was offered (eager parsing consumes as much as it
    // can), so need_more means the request is cut short. Offering the same
    // bytes again would violate Beast's contract (it asserts in
    // parse_chunk_header); found by http_request_fuzzer.
    if (ec == bhttp::error::need_more || (n == 0 && !parser.is_done())) {
      return InvalidArgument("incomplete request");
    }
  }
  if (!header_checked) PV_RETURN_IF_ERROR(internal::CheckHeader(parser, limits));
  return internal::BuildRequest(parser);
}

}  // namespace phivault::http
