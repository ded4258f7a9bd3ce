// OperationOutcome bodies and the mapping from StatusCode to HTTP status and
// FHIR IssueType code, so that every client-visible failure is an
// OperationOutcome with the right HTTP status (DESIGN-NOTES "Errors").
//
// Mapping (HttpStatusFor / IssueCodeFor):
//   kOk 200 informational          kInvalidArgument 400 invalid
//   kNotFound 404 not-found        kGone 410 deleted
//   kConflict 409 conflict         kPreconditionFailed 412 conflict
//   kAlreadyExists 412 duplicate   kPermissionDenied 403 forbidden
//   kUnauthenticated 401 login     kTooLarge 413 too-long
//   kUnsupportedMedia 415 not-supported
//   kUnsupported 400 not-supported (FHIR answers unsupported parameters and
//       interactions on a supported type with 400; a caller that means
//       "whole interaction unknown" may send 501 itself)
//   kDataLoss 500 exception        kUnavailable 503 transient
//   kResourceExhausted 429 throttled  kInternal 500 exception
//
// Thread-safety: pure functions. Lifetime: returned views are static.
#ifndef PHIVAULT_FHIR_OPERATION_OUTCOME_H_
#define PHIVAULT_FHIR_OPERATION_OUTCOME_H_

#include <string>
#include <string_view>

#include "common/status.h"

namespace phivault::fhir {

// A compact JSON OperationOutcome with one issue. `severity` is one of fatal,
// error, warning, information; `issue_code` a FHIR IssueType code;
// `diagnostics` is omitted when empty.
// REQUIRES: `diagnostics` holds no health data (it is sent to the client and
// may be logged); Status messages satisfy this by convention.
// A non-empty `expression` becomes the issue's `expression` (one FHIRPath).
std::string OperationOutcomeJson(std::string_view severity, std::string_view issue_code,
                                 std::string_view diagnostics, std::string_view expression = {});

// OperationOutcomeJson for a failed status: severity "fatal" for kInternal and
// kDataLoss, "error" otherwise ("information" for OK), IssueCodeFor(code),
// the status message as diagnostics, Status::expression() as expression.
std::string OperationOutcomeFor(const Status& status);

int HttpStatusFor(StatusCode code);
std::string_view IssueCodeFor(StatusCode code);

}  // namespace phivault::fhir

#endif  // PHIVAULT_FHIR_OPERATION_OUTCOME_H_
