// Helpers shared by the FHIR handlers: content negotiation, ETags, query
// parameters and response construction. Everything here is pure and works on
// untrusted input without throwing.
//
// Thread-safety: stateless functions.
#ifndef PHIVAULT_API_REQUEST_CONTEXT_H_
#define PHIVAULT_API_REQUEST_CONTEXT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "http/types.h"
#include "store/resource_store.h"

namespace phivault::api {

using QueryParams = std::vector<std::pair<std::string, std::string>>;

// Splits and percent-decodes `a=b&c=d`. '+' stays literal: FHIR values such as
// timezone offsets use it. InvalidArgument on a bad escape or a NUL byte.
StatusOr<QueryParams> ParseQuery(std::string_view raw);
const std::string* FindParam(const QueryParams& params, std::string_view name);
// The inverse for links the server writes (next/previous/self): `a=b&c=d`
// with everything but unreserved characters and FHIR's `:|,/$` escaped.
std::string EncodeQuery(const QueryParams& params);
// True when the request asks for FHIR's lenient handling of unknown
// parameters (Prefer: handling=lenient).
bool PreferLenient(const http::HttpRequest& req);

// Response format chosen from _format and Accept. kNotAcceptable when only
// formats we do not produce (XML, turtle) were asked for.
struct OutputFormat {
  bool pretty = false;
  bool plain_json = false;  // answer as application/json (the client asked for it)
};
StatusOr<OutputFormat> NegotiateFormat(const http::HttpRequest& req, const QueryParams& params);

// OK when a body-carrying request is JSON (application/fhir+json or
// application/json, any charset parameter must be utf-8); kUnsupportedMedia otherwise.
Status CheckContentType(const http::HttpRequest& req);

// Parses an If-Match value: W/"3" or "3". InvalidArgument otherwise.
StatusOr<int64_t> ParseIfMatch(std::string_view value);
std::string ETag(int64_t version);

// Parses an If-None-Exist query. Without `type`: identifier=[system|]value
// and _id=id only (kUnsupported otherwise). With the created resource's
// `type`: any search parameter of that type with its modifiers and prefixes
// (search/query.h), but no chains, _has or result parameters (_sort,
// _include, ...): a condition that looked into other resources could probe
// records the caller may not see.
StatusOr<store::ExistCondition> ParseExistCondition(std::string_view query, std::string_view type = {});

// Response builders. Every response from the FHIR layer goes through these so
// headers (content type, route label) are uniform.
http::HttpResponse JsonResponse(int status, std::string body, const OutputFormat& fmt);
http::HttpResponse ErrorResponse(const Status& status, const OutputFormat& fmt = {});
http::HttpResponse OutcomeResponse(int status, std::string_view severity, std::string_view code,
                                   std::string_view diagnostics, const OutputFormat& fmt = {});
// The answer to a failed AccessControl::Authenticate: 403 when the caller is
// known but refused (kPermissionDenied: an unregistered or disabled device),
// else 401 with the Bearer challenge.
http::HttpResponse AuthenticationFailure(const Status& status, const OutputFormat& fmt = {});
void SetRoute(http::HttpResponse& resp, std::string_view route);
void AddVersionHeaders(http::HttpResponse& resp, int64_t version, int64_t last_updated_ms);

// Re-indents a JSON text when the client asked for _pretty=true.
std::string Render(std::string json, const OutputFormat& fmt);

// JSON string literal with escaping, for hand-assembled Bundles.
std::string JsonString(std::string_view s);

// A new server-assigned logical id (random UUID v4).
std::string NewId();

}  // namespace phivault::api

#endif  // PHIVAULT_API_REQUEST_CONTEXT_H_
