#include "fhir/operation_outcome.h"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include "fhir/json_reader.h"

namespace phivault::fhir {

namespace json = boost::json;

std::string OperationOutcomeJson(std::string_view severity, std::string_view issue_code,
                                 std::string_view diagnostics, std::string_view expression) {
  json::object issue;
  issue["severity"] = json::string_view(severity);
  issue["code"] = json::string_view(issue_code);
  if (!diagnostics.empty()) issue["diagnostics"] = json::string_view(diagnostics);
  if (!expression.empty()) issue["expression"] = json::array{json::string_view(expression)};
  json::object oo;
  oo["resourceType"] = "OperationOutcome";
  json::array issues;
  issues.push_back(std::move(issue));
  oo["issue"] = std::move(issues);
  return Serialize(oo, false);
}

std::string OperationOutcomeFor(const Status& status) {
  std::string_view severity = "error";
  if (status.ok()) severity = "information";
  if (status.code() == StatusCode::kInternal || status.code() == StatusCode::kDataLoss) severity = "fatal";
  return OperationOutcomeJson(severity, IssueCodeFor(status.code()), status.message(), status.expression());
}

int HttpStatusFor(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return 200;
    case StatusCode::kInvalidArgument: return 400;
    case StatusCode::kNotFound: return 404;
    case StatusCode::kGone: return 410;
    case StatusCode::kConflict: return 409;
    case StatusCode::kPreconditionFailed: return 412;
    case StatusCode::kAlreadyExists: return 412;
    case StatusCode::kPermissionDenied: return 403;
    case StatusCode::kUnauthenticated: return 401;
    case StatusCode::kTooLarge: return 413;
    case StatusCode::kUnsupportedMedia: return 415;
    case StatusCode::kUnsupported: return 400;
    case StatusCode::kDataLoss: return 500;
    case StatusCode::kUnavailable: return 503;
    case StatusCode::kResourceExhausted: return 429;
    case StatusCode::kInternal: return 500;
  }
  return 500;
}

std::string_view IssueCodeFor(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "informational";
    case StatusCode::kInvalidArgument: return "invalid";
    case StatusCode::kNotFound: return "not-found";
    case StatusCode::kGone: return "deleted";
    case StatusCode::kConflict: return "conflict";
    case StatusCode::kPreconditionFailed: return "conflict";
    case StatusCode::kAlreadyExists: return "duplicate";
    case StatusCode::kPermissionDenied: return "forbidden";
    case StatusCode::kUnauthenticated: return "login";
    case StatusCode::kTooLarge: return "too-long";
    case StatusCode::kUnsupportedMedia: return "not-supported";
    case StatusCode::kUnsupported: return "not-supported";
    case StatusCode::kDataLoss: return "exception";
    case StatusCode::kUnavailable: return "transient";
    case StatusCode::kResourceExhausted: return "throttled";
    case StatusCode::kInternal: return "exception";
  }
  return "exception";
}

}  // namespace phivault::fhir
