#include "http/client.h"

#include <openssl/ssl.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
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

  // Every step is asynchronous under one deadline: Beast's timeouts do not
  // apply to blocking calls, and a stalled peer (or resolver) must not hold
  // the calling thread (a network thread, when a JWKS refresh runs from a
  // request) past options.timeout.
  beast::get_lowest_layer(stream).expires_after(options.timeout);
  asio::ip::tcp::resolver resolver(ioc);
  asio::steady_timer deadline(ioc, options.timeout);
  bhttp::request<bhttp::empty_body> req{bhttp::verb::get, u.target, 11};
  req.set(bhttp::field::host, u.host);
  req.set(bhttp::field::user_agent, "phivault");
  req.set(bhttp::field::accept, "application/json");
  beast::flat_buffer buffer;
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(options.max_body_bytes);

  Status result = Unavailable("no answer from " + u.host);
  auto exchange = [&]() -> asio::awaitable<void> {
    constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
    auto [rec, endpoints] = co_await resolver.async_resolve(u.host, u.port, kNoThrow);
    if (rec) {
      result = Unavailable("cannot resolve " + u.host);
      co_return;
    }
    auto [cec, endpoint] = co_await beast::get_lowest_layer(stream).async_connect(endpoints, kNoThrow);
    if (cec) {
      result = Unavailable("cannot connect to " + u.host + ": " + cec.message());
      co_return;
    }
    auto [hec] = co_await stream.async_handshake(asio::ssl::stream_base::client, kNoThrow);
    if (hec) {
      result = Unavailable("TLS handshake with " + u.host + " failed: " + hec.message());
      co_return;
    }
    auto [wec, written] = co_await bhttp::async_write(stream, req, kNoThrow);
    if (wec) {
      result = Unavailable("request to " + u.host + " failed: " + wec.message());
      co_return;
    }
    auto [rdec, read] = co_await bhttp::async_read(stream, buffer, parser, kNoThrow);
    if (rdec) {
      result = Unavailable("reading the answer from " + u.host + " failed: " + rdec.message());
      co_return;
    }
    result = Status::Ok();
  };
  deadline.async_wait([&](boost::system::error_code wait_ec) {
    if (wait_ec) return;  // cancelled: the exchange finished first
    resolver.cancel();
    beast::get_lowest_layer(stream).cancel();
  });
  asio::co_spawn(ioc, exchange(), [&](std::exception_ptr failed) {
    if (failed) result = Internal("HTTPS client failed");  // allocation; the steps themselves never throw
    deadline.cancel();
  });
  ioc.run();
  PV_RETURN_IF_ERROR(result);
  if (parser.get().result() != bhttp::status::ok) {
    return Unavailable(u.host + " answered HTTP " + std::to_string(parser.get().result_int()));
  }
  // No TLS close_notify: the body is complete, and waiting for the peer's
  // answer would be one more step that can stall.
  return std::move(parser.get().body());
}

}  // namespace phivault::http
