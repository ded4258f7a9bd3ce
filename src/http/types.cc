#include "http/types.h"

#include <cstdio>

namespace phivault::http {

const std::string* HttpRequest::Header(std::string_view lower_name) const {
  for (const auto& [name, value] : headers) {
    if (name == lower_name) return &value;
  }
  return nullptr;
}

namespace {

std::string_view IssueCode(int status) {
  switch (status) {
    case 400: return "invalid";
    case 401: return "login";
    case 403: return "forbidden";
    case 404: return "not-found";
    case 408: return "timeout";
    case 413:
    case 414:
    case 431: return "too-long";
    case 429: return "throttled";
    case 503: return "transient";
    default: return status >= 500 ? "exception" : "processing";
  }
}

void AppendJsonString(std::string& out, std::string_view s) {
  out += '"';
  for (char c : s) {
    unsigned char u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", u);
      out += buf;
    } else {
      out += c;
    }
  }
  out += '"';
}

}  // namespace

HttpResponse DefaultErrorResponse(int status, std::string_view message) {
  HttpResponse r;
  r.status = status;
  r.headers.emplace_back("Content-Type", "application/fhir+json");
  r.body = R"({"resourceType":"OperationOutcome","issue":[{"severity":"error","code":")";
  r.body += IssueCode(status);
  r.body += R"(","diagnostics":)";
  AppendJsonString(r.body, message);
  r.body += "}]}";
  return r;
}

}  // namespace phivault::http
