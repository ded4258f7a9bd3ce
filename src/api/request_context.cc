#include "api/request_context.h"

#include <sodium.h>

#include <algorithm>
#include <cctype>
#include <charconv>

#include <boost/json.hpp>

#include "fhir/json_reader.h"
#include "fhir/operation_outcome.h"
#include "fhir/time.h"
#include "search/query.h"

namespace phivault::api {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

StatusOr<std::string> PercentDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%') {
      if (i + 2 >= s.size()) return InvalidArgument("bad percent-escape in query");
      int hi = HexValue(s[i + 1]), lo = HexValue(s[i + 2]);
      if (hi < 0 || lo < 0) return InvalidArgument("bad percent-escape in query");
      char c = static_cast<char>(hi * 16 + lo);
      if (c == '\0') return InvalidArgument("NUL byte in query");
      out += c;
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Media type without parameters, lower-cased.
std::string MediaType(std::string_view v) {
  auto semi = v.find(';');
  return Lower(Trim(v.substr(0, semi)));
}

bool IsJsonMedia(std::string_view m) {
  return m == "application/fhir+json" || m == "application/json" || m == "json" || m == "application/json+fhir";
}

}  // namespace

StatusOr<QueryParams> ParseQuery(std::string_view raw) {
  QueryParams out;
  while (!raw.empty()) {
    auto amp = raw.find('&');
    std::string_view part = raw.substr(0, amp);
    raw = amp == std::string_view::npos ? std::string_view() : raw.substr(amp + 1);
    if (part.empty()) continue;
    auto eq = part.find('=');
    PV_ASSIGN_OR_RETURN(std::string name, PercentDecode(part.substr(0, eq)));
    std::string value;
    if (eq != std::string_view::npos) {
      PV_ASSIGN_OR_RETURN(value, PercentDecode(part.substr(eq + 1)));
    }
    out.emplace_back(std::move(name), std::move(value));
    if (out.size() > 256) return InvalidArgument("too many query parameters");
  }
  return out;
}

namespace {
bool UnreservedInQuery(unsigned char c) {
  return std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == ':' || c == '|' || c == ',' ||
         c == '/' || c == '$';
}
}  // namespace

std::string EncodeQuery(const QueryParams& params) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  auto encode = [&](std::string_view s) {
    for (unsigned char c : s) {
      if (UnreservedInQuery(c)) {
        out += static_cast<char>(c);
      } else {
        out += '%';
        out += kHex[c >> 4];
        out += kHex[c & 15];
      }
    }
  };
  for (const auto& [k, v] : params) {
    if (!out.empty()) out += '&';
    encode(k);
    out += '=';
    encode(v);
  }
  return out;
}

bool PreferLenient(const http::HttpRequest& req) {
  const std::string* p = req.Header("prefer");
  return p && p->find("handling=lenient") != std::string::npos;
}

const std::string* FindParam(const QueryParams& params, std::string_view name) {
  for (const auto& [k, v] : params) {
    if (k == name) return &v;
  }
  return nullptr;
}

StatusOr<OutputFormat> NegotiateFormat(const http::HttpRequest& req, const QueryParams& params) {
  OutputFormat fmt;
  if (const std::string* p = FindParam(params, "_pretty")) fmt.pretty = (*p == "true");
  if (const std::string* f = FindParam(params, "_format")) {
    std::string m = MediaType(*f);
    if (!IsJsonMedia(m)) return Status(StatusCode::kUnsupportedMedia, "only JSON is supported (_format)");
    fmt.plain_json = (m == "application/json" || m == "json");
    return fmt;
  }
  if (const std::string* accept = req.Header("accept")) {
    bool acceptable = false;
    bool fhir = false, plain = false;
    std::string_view rest = *accept;
    while (!rest.empty()) {
      auto comma = rest.find(',');
      std::string m = MediaType(rest.substr(0, comma));
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      if (m == "application/fhir+json" || m == "application/json+fhir") fhir = true;
      if (m == "application/json") plain = true;
      if (IsJsonMedia(m) || m == "*/*" || m == "application/*" || m.empty()) acceptable = true;
    }
    if (!acceptable) return Status(StatusCode::kUnsupportedMedia, "only JSON is supported (Accept)");
    fmt.plain_json = plain && !fhir;
  }
  return fmt;
}

Status CheckContentType(const http::HttpRequest& req) {
  const std::string* ct = req.Header("content-type");
  if (!ct) return Status(StatusCode::kUnsupportedMedia, "Content-Type is required: use application/fhir+json");
  if (!IsJsonMedia(MediaType(*ct)) || MediaType(*ct) == "json") {
    return Status(StatusCode::kUnsupportedMedia, "unsupported Content-Type: use application/fhir+json");
  }
  std::string lower = Lower(*ct);
  auto cs = lower.find("charset=");
  if (cs != std::string::npos) {
    std::string_view charset = Trim(std::string_view(lower).substr(cs + 8));
    charset = charset.substr(0, charset.find(';'));
    if (charset != "utf-8" && charset != "\"utf-8\"") {
      return Status(StatusCode::kUnsupportedMedia, "unsupported charset: use utf-8");
    }
  }
  return Status::Ok();
}

StatusOr<int64_t> ParseIfMatch(std::string_view v) {
  v = Trim(v);
  if (v.size() >= 2 && v[0] == 'W' && v[1] == '/') v.remove_prefix(2);
  if (v.size() < 3 || v.front() != '"' || v.back() != '"') return InvalidArgument("If-Match must be W/\"version\"");
  v = v.substr(1, v.size() - 2);
  int64_t n = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || p != v.data() + v.size() || n < 1) return InvalidArgument("If-Match must be W/\"version\"");
  return n;
}

std::string ETag(int64_t version) { return "W/\"" + std::to_string(version) + "\""; }

StatusOr<store::ExistCondition> ParseExistCondition(std::string_view query, std::string_view type) {
  if (!query.empty() && query.front() == '?') query.remove_prefix(1);
  PV_ASSIGN_OR_RETURN(QueryParams params, ParseQuery(query));
  store::ExistCondition cond;
  if (params.empty()) return InvalidArgument("If-None-Exist is empty");
  bool general = false;
  for (const auto& [k, v] : params) general |= k != "_id" && k != "identifier";
  if (general && !type.empty()) {
    search::SearchParseOptions po;
    po.passthrough.clear();
    PV_ASSIGN_OR_RETURN(search::SearchRequest req, search::ParseSearch(type, params, po));
    if (!req.query.sort.empty() || !req.includes.empty() || !req.elements.empty() ||
        req.summary != search::SummaryMode::kFalse || req.total != search::TotalMode::kNone) {
      return InvalidArgument("If-None-Exist takes search conditions only");
    }
    for (const auto& c : req.query.conditions) {
      if (c.kind != store::SearchCondition::Kind::kPlain) {
        return InvalidArgument("If-None-Exist does not support chained parameters or _has");
      }
    }
    for (const auto& [k, v] : params) {
      if (k == "_count") return InvalidArgument("If-None-Exist takes search conditions only");
    }
    if (req.query.conditions.empty()) return InvalidArgument("If-None-Exist is empty");
    cond.query = std::move(req.query);
    return cond;
  }
  for (const auto& [k, v] : params) {
    if (k == "_id") {
      if (!fhir::IsValidId(v)) return InvalidArgument("If-None-Exist: invalid _id");
      cond.id = v;
    } else if (k == "identifier") {
      auto bar = v.find('|');
      if (bar == std::string::npos) {
        cond.identifier_value = v;
      } else {
        cond.identifier_system = v.substr(0, bar);
        cond.identifier_value = v.substr(bar + 1);
      }
      if (cond.identifier_value.empty()) return InvalidArgument("If-None-Exist: identifier needs a value");
    } else {
      return Status(StatusCode::kUnsupported,
                    "If-None-Exist supports only the _id and identifier parameters in this version");
    }
  }
  return cond;
}

void SetRoute(http::HttpResponse& resp, std::string_view route) {
  resp.headers.emplace_back("X-Phivault-Route", std::string(route));
}

http::HttpResponse JsonResponse(int status, std::string body, const OutputFormat& fmt) {
  http::HttpResponse r;
  r.status = status;
  r.headers.emplace_back("Content-Type", fmt.plain_json ? "application/json; charset=utf-8"
                                                        : "application/fhir+json; charset=utf-8");
  r.body = Render(std::move(body), fmt);
  return r;
}

http::HttpResponse OutcomeResponse(int status, std::string_view severity, std::string_view code,
                                   std::string_view diagnostics, const OutputFormat& fmt) {
  return JsonResponse(status, fhir::OperationOutcomeJson(severity, code, diagnostics), fmt);
}

http::HttpResponse AuthenticationFailure(const Status& status, const OutputFormat& fmt) {
  if (status.code() == StatusCode::kPermissionDenied) {
    return OutcomeResponse(403, "error", "forbidden", status.message(), fmt);
  }
  http::HttpResponse r = OutcomeResponse(401, "error", "login", status.message(), fmt);
  r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"phivault\"");
  return r;
}

http::HttpResponse ErrorResponse(const Status& status, const OutputFormat& fmt) {
  return JsonResponse(fhir::HttpStatusFor(status.code()),
                      fhir::OperationOutcomeJson("error", fhir::IssueCodeFor(status.code()), status.message(),
                                                 status.expression()),
                      fmt);
}

void AddVersionHeaders(http::HttpResponse& resp, int64_t version, int64_t last_updated_ms) {
  resp.headers.emplace_back("ETag", ETag(version));
  resp.headers.emplace_back("Last-Modified", fhir::FormatHttpDate(last_updated_ms));
}

std::string Render(std::string json, const OutputFormat& fmt) {
  if (!fmt.pretty || json.empty()) return json;
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(json, ec);
  if (ec) return json;
  return fhir::Serialize(v, true);
}

std::string JsonString(std::string_view s) { return boost::json::serialize(boost::json::value(boost::json::string_view(s.data(), s.size()))); }

std::string NewId() {
  unsigned char b[16];
  randombytes_buf(b, sizeof b);
  b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);
  static const char* hex = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out += '-';
    out += hex[b[i] >> 4];
    out += hex[b[i] & 15];
  }
  return out;
}

}  // namespace phivault::api
