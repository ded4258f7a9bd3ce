#include "http/client.h"

#include <openssl/ssl.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <charconv>

namespace phivault::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;

struct Url {
  std::string host;
  std::string port = "443";
  std::string target = "/";
};

StatusOr<Url> ParseHttpsUrl(const std::string& url) {
  constexpr std::string_view kScheme = "https://";
  if (url.rfind(kScheme, 0) != 0) return InvalidArgument("only https:// URLs are fetched");
  std::string_view rest = std::string_view(url).substr(kScheme.size());
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  Url u;
  if (slash != std::string_view::npos) u.target = std::string(rest.substr(slash));
  if (authority.empty() || authority.find('@') != std::string_view::npos) return InvalidArgument("bad URL host");
  size_t colon = authority.rfind(':');
  if (colon != std::string_view::npos && authority.find(']') == std::string_view::npos) {
    std::string_view port = authority.substr(colon + 1);
    unsigned p = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
    if (ec != std::errc() || end != port.data() + port.size() || p == 0 || p > 65535) {
      return InvalidArgument("bad URL port");
    }
    u.port = std::string(port);
    authority = authority.substr(0, colon);
  }
  u.host = std::string(authority);
  if (u.target.find_first_of("\r\n ") != std::string::npos) return InvalidArgument("bad URL path");
  return u;
}

}  // namespace

StatusOr<std::string> HttpsGet(const std::string& url, const ClientOptions& options) {
  PV_ASSIGN_OR_RETURN(Url u, ParseHttpsUrl(url));
  asio::io_context ioc;
  asio::ssl::context ctx(asio::ssl::context::tls_client);
  boost::system::error_code ec;
  ctx.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                      asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1 |
                      asio::ssl::context::no_compression,
                  ec);
  if (options.ca_file.empty()) {
    ctx.set_default_verify_paths(ec);
  } else {
    ctx.load_verify_file(options.ca_file, ec);
  }
  if (ec) return InvalidArgument("cannot load the CA bundle for " + u.host);
  ctx.set_verify_mode(asio::ssl::verify_peer, ec);
  beast::ssl_stream<beast::tcp_stream> stream(ioc, ctx);
  // SNI and host-name verification.
  if (!SSL_set_tlsext_host_name(stream.native_handle(), u.host.c_str())) {
    return Unavailable("TLS setup failed for " + u.host);
  }
  stream.set_verify_callback(asio::ssl::host_name_verification(u.host), ec);

  auto deadline = std::chrono::steady_clock::now() + options.timeout;
  beast::get_lowest_layer(stream).expires_at(deadline);
  asio::ip::tcp::resolver resolver(ioc);
  auto endpoints = resolver.resolve(u.host, u.port, ec);
  if (ec) return Unavailable("cannot resolve " + u.host);
  beast::get_lowest_layer(stream).connect(endpoints, ec);
  if (ec) return Unavailable("cannot connect to " + u.host + ": " + ec.message());
  stream.handshake(asio::ssl::stream_base::client, ec);
  if (ec) return Unavailable("TLS handshake with " + u.host + " failed: " + ec.message());

  bhttp::request<bhttp::empty_body> req{bhttp::verb::get, u.target, 11};
  req.set(bhttp::field::host, u.host);
  req.set(bhttp::field::user_agent, "phivault");
  req.set(bhttp::field::accept, "application/json");
  bhttp::write(stream, req, ec);
  if (ec) return Unavailable("request to " + u.host + " failed: " + ec.message());

  beast::flat_buffer buffer;
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(options.max_body_bytes);
  bhttp::read(stream, buffer, parser, ec);
  if (ec) return Unavailable("reading the answer from " + u.host + " failed: " + ec.message());
  if (parser.get().result() != bhttp::status::ok) {
    return Unavailable(u.host + " answered HTTP " + std::to_string(parser.get().result_int()));
  }
  stream.shutdown(ec);  // best effort; the body is complete
  return std::move(parser.get().body());
}

}  // namespace phivault::http
