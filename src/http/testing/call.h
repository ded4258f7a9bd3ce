// Test and benchmark helper: calls an http::Handler and waits for its
// Responder, which may run later on another thread (writes answer from the
// store's commit callback). For tests and benchmarks only.
#ifndef PHIVAULT_HTTP_TESTING_CALL_H_
#define PHIVAULT_HTTP_TESTING_CALL_H_

#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include <boost/json.hpp>

#include "http/types.h"

namespace phivault::http::testing {

// A response with the accessors tests keep needing.
struct Reply {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  std::string Header(const std::string& name) const {
    for (const auto& [k, v] : headers) {
      if (k == name) return v;
    }
    return "";
  }
  // The body as a JSON object; empty if it is not one.
  boost::json::object Json() const {
    boost::system::error_code ec;
    boost::json::value v = boost::json::parse(body, ec);
    return !ec && v.is_object() ? v.as_object() : boost::json::object();
  }
};

// A request for `target` (path and optional query, as on the request line),
// with "authorization: Bearer <bearer>" unless `bearer` is empty.
inline HttpRequest MakeRequest(std::string method, std::string target, std::string_view bearer = {}) {
  HttpRequest req;
  req.method = std::move(method);
  const size_t q = target.find('?');
  req.path = target.substr(0, q);
  req.query = q == std::string::npos ? "" : target.substr(q + 1);
  req.target = std::move(target);
  if (!bearer.empty()) req.headers.emplace_back("authorization", "Bearer " + std::string(bearer));
  return req;
}

inline Reply CallHandler(Handler& handler, HttpRequest request) {
  std::mutex mu;
  std::condition_variable cv;
  std::optional<HttpResponse> response;
  handler.Handle(std::move(request), [&](HttpResponse r) {
    std::lock_guard lk(mu);
    response = std::move(r);
    cv.notify_one();
  });
  std::unique_lock lk(mu);
  cv.wait(lk, [&] { return response.has_value(); });
  return Reply{response->status, std::move(response->headers), std::move(response->body)};
}

}  // namespace phivault::http::testing

#endif  // PHIVAULT_HTTP_TESTING_CALL_H_
