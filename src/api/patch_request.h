// FHIR PATCH with JSON Patch (RFC 6902): turns `PATCH /fhir/{type}/{id}`
// into the update it stands for, so that a patch takes exactly the path of a
// PUT (body validation with the service's ParseLimits, AuthorizeWrite, If-Match,
// group commit) and no second write path exists.
//
// RewritePatchAsUpdate reads the current version, checks the caller may
// update it and read it as it is now (a hidden record answers like a missing
// one; the read right is needed because the patch works on, and returns,
// the stored content),
// honours If-Match, applies the patch to a copy and replaces the request's
// body with the patched resource, its Content-Type with application/fhir+json
// and its If-Match with the version the patch was applied to. A write that
// lands between this read and the commit therefore fails with 412 instead of
// being silently overwritten. Only application/json-patch+json is accepted
// (FHIRPath Patch is not supported: 415).
//
// Errors come back as Status; PatchErrorResponse maps them: a patch that is
// well-formed but cannot be applied (missing target, failed `test`, a change
// of resourceType or id) or whose result is not a valid R4 resource
// (fhir/validator.h; the OperationOutcome carries the element's expression)
// is 422 Unprocessable Entity as FHIR asks, anything
// else keeps its usual status (400, 404, 410, 412, 415).
//
// Thread-safety: stateless functions; safe from any thread. Lifetime: no
// references are kept.
#ifndef PHIVAULT_API_PATCH_REQUEST_H_
#define PHIVAULT_API_PATCH_REQUEST_H_

#include <cstdint>
#include <string>

#include "api/access_control.h"
#include "api/request_context.h"
#include "audit/entry.h"
#include "common/status.h"
#include "fhir/json_reader.h"
#include "http/types.h"
#include "store/resource_store.h"

namespace phivault::api {

// A refusal is noted in `entry` (may be null) with the record it concerned
// and whose it is, as a refused read or update would be.
// REQUIRES: `type` is a known resource type and `id` a valid id.
Status RewritePatchAsUpdate(store::ResourceStore& store, AccessControl& access, const Caller& caller,
                            const std::string& type, const std::string& id, int64_t now_ms,
                            const fhir::ParseLimits& limits, http::HttpRequest& request,
                            audit::AuditEntry* entry = nullptr);

http::HttpResponse PatchErrorResponse(const Status& status, const OutputFormat& fmt);

}  // namespace phivault::api

#endif  // PHIVAULT_API_PATCH_REQUEST_H_
