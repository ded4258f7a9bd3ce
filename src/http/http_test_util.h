// Test-only helpers for the http tests: a scriptable Handler and blocking
// clients with receive timeouts (so a broken server fails a test instead of
// hanging it). Not part of the library.
#ifndef PHIVAULT_HTTP_HTTP_TEST_UTIL_H_
#define PHIVAULT_HTTP_HTTP_TEST_UTIL_H_

#include <sys/socket.h>
#include <sys/time.h>

#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "http/types.h"

namespace phivault::http::testing {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

class TestHandler : public Handler {
 public:
  // Default behaviour: echo "METHOD path?query|body", route "/echo/{id}".
  std::function<void(HttpRequest, Responder)> fn;

  void Handle(HttpRequest request, Responder respond) override {
    {
      std::lock_guard lock(mu_);
      seen_.push_back(request);
    }
    calls_.fetch_add(1);
    if (fn) return fn(std::move(request), std::move(respond));
    HttpResponse r;
    r.headers.emplace_back("Content-Type", "text/plain");
    r.headers.emplace_back(kRouteHeader, "/echo/{id}");
    r.body = request.method + " " + request.path + "?" + request.query + "|" + request.body;
    respond(std::move(r));
  }
  int calls() const { return calls_.load(); }
  std::vector<HttpRequest> seen() {
    std::lock_guard lock(mu_);
    return seen_;
  }

 private:
  std::atomic<int> calls_{0};
  std::mutex mu_;
  std::vector<HttpRequest> seen_;
};

inline void SetRecvTimeout(int fd, std::chrono::milliseconds t) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(t.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((t.count() % 1000) * 1000);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

// A blocking TCP connection to 127.0.0.1:port.
class RawConn {
 public:
  explicit RawConn(uint16_t port, std::chrono::milliseconds timeout = std::chrono::seconds(10)) : sock_(ioc_) {
    sock_.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port), ec_);
    if (!ec_) SetRecvTimeout(sock_.native_handle(), timeout);
  }
  bool connected() const { return !ec_; }
  beast::error_code Send(std::string_view bytes) {
    beast::error_code ec;
    net::write(sock_, net::buffer(bytes.data(), bytes.size()), ec);
    return ec;
  }
  // Reads until EOF, error or timeout. *ec gets the terminating error.
  std::string ReadAll(beast::error_code* ec = nullptr) {
    std::string out;
    char buf[4096];
    for (;;) {
      beast::error_code e;
      size_t n = sock_.read_some(net::buffer(buf), e);
      out.append(buf, n);
      if (e) {
        if (ec) *ec = e;
        return out;
      }
    }
  }
  // Reads one HTTP response with Beast.
  bhttp::response<bhttp::string_body> ReadResponse(beast::error_code* ec) {
    bhttp::response<bhttp::string_body> res;
    bhttp::read(sock_, buffer_, res, *ec);
    return res;
  }
  bhttp::response<bhttp::string_body> Roundtrip(bhttp::request<bhttp::string_body> req, beast::error_code* ec) {
    req.prepare_payload();
    bhttp::write(sock_, req, *ec);
    if (*ec) return {};
    return ReadResponse(ec);
  }
  tcp::socket& socket() { return sock_; }
  // Closes with a TCP reset instead of a FIN.
  void Reset() {
    beast::error_code ignored;
    sock_.set_option(net::socket_base::linger(true, 0), ignored);
    sock_.close(ignored);
  }

 private:
  net::io_context ioc_;
  tcp::socket sock_;
  beast::error_code ec_;
  beast::flat_buffer buffer_;
};

inline bhttp::request<bhttp::string_body> MakeRequest(bhttp::verb verb, std::string target, std::string body = "") {
  bhttp::request<bhttp::string_body> req{verb, target, 11};
  req.set(bhttp::field::host, "127.0.0.1");
  req.body() = std::move(body);
  req.prepare_payload();
  return req;
}

}  // namespace phivault::http::testing

#endif  // PHIVAULT_HTTP_HTTP_TEST_UTIL_H_
