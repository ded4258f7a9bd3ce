#include "api/patch_request.h"

#include <algorithm>
#include <cctype>

#include <boost/json.hpp>

#include "api/request_audit.h"
#include "fhir/json_patch.h"
#include "fhir/operation_outcome.h"
#include "fhir/validator.h"

namespace phivault::api {

namespace {

namespace json = boost::json;

bool IsJsonPatchMedia(const std::string* content_type) {
  if (!content_type) return false;
  std::string_view m(*content_type);
  m = m.substr(0, m.find(';'));
  while (!m.empty() && std::isspace(static_cast<unsigned char>(m.back()))) m.remove_suffix(1);
  while (!m.empty() && std::isspace(static_cast<unsigned char>(m.front()))) m.remove_prefix(1);
  constexpr std::string_view kPatch = "application/json-patch+json";
  return std::equal(m.begin(), m.end(), kPatch.begin(), kPatch.end(),
                    [](char a, char b) { return std::tolower(static_cast<unsigned char>(a)) == b; });
}

void SetHeader(http::HttpRequest& req, std::string name, std::string value) {
  std::erase_if(req.headers, [&](const auto& h) { return h.first == name; });
  req.headers.emplace_back(std::move(name), std::move(value));
}

}  // namespace

Status RewritePatchAsUpdate(store::ResourceStore& store, AccessControl& access, const Caller& caller,
                            const std::string& type, const std::string& id, int64_t now_ms,
                            const fhir::ParseLimits& limits, http::HttpRequest& request,
                            audit::AuditEntry* entry) {
  if (!IsJsonPatchMedia(request.Header("content-type"))) {
    return Status(StatusCode::kUnsupportedMedia, "PATCH takes a JSON Patch: use Content-Type application/json-patch+json");
  }
  PV_ASSIGN_OR_RETURN(json::value patch, fhir::ParseJson(request.body, limits));
  policy::Decision gate = access.DecideType(caller, policy::Interaction::kUpdate, type);
  if (!gate.allowed) {
    if (entry) {
      NoteDecision(*entry, gate);
      AddRequested(*entry, type, id);
    }
    return policy::DecisionStatus(gate);
  }
  StatusOr<store::ResourceVersion> stored = store.Read(type, id);
  if (!stored.ok()) {
    if (entry) AddRequested(*entry, type, id);
    return stored.status();
  }
  store::ResourceVersion& current = *stored;
  // Both decisions are on the record as it is now; a refusal is audited
  // with that record and answered as DecisionStatus says (hidden: 404).
  // The right to change it (what it becomes is checked again by the update
  // path: its patients may change), and the right to read it: unlike PUT,
  // a patch is applied to the stored content and the result is returned, so
  // without it a write-only scope, or a consent that denies access but not
  // correction, could read the record with an empty patch (or probe it
  // with "test").
  for (policy::Interaction i : {policy::Interaction::kUpdate, policy::Interaction::kRead}) {
    policy::Decision d = access.Decide(caller, i, current, request, now_ms);
    if (d.allowed) continue;
    if (entry) {
      NoteDecision(*entry, d);
      AddResource(*entry, current);
    }
    return policy::DecisionStatus(d);
  }
  if (current.deleted) return Status(StatusCode::kGone, "resource was deleted");
  if (const std::string* im = request.Header("if-match")) {
    PV_ASSIGN_OR_RETURN(int64_t wanted, ParseIfMatch(*im));
    if (wanted != current.version) return Status(StatusCode::kPreconditionFailed, "If-Match does not match the current version");
  }
  // Stored bodies passed these limits when written; parse with the same ones.
  PV_ASSIGN_OR_RETURN(json::value doc, fhir::ParseJson(current.json, limits));
  fhir::JsonPatchLimits patch_limits;
  patch_limits.max_depth = limits.max_depth;
  patch_limits.max_document_bytes = std::max<size_t>(limits.max_bytes, 1) * 2;
  PV_ASSIGN_OR_RETURN(json::value patched, fhir::ApplyJsonPatch(patch, doc, patch_limits));
  const json::object* o = patched.if_object();
  const json::value* rt = o ? o->if_contains("resourceType") : nullptr;
  const json::value* pid = o ? o->if_contains("id") : nullptr;
  if (!rt || !rt->is_string() || rt->get_string() != type) {
    return Status(StatusCode::kConflict, "a patch may not change or remove resourceType");
  }
  if (!pid || !pid->is_string() || pid->get_string() != id) {
    return Status(StatusCode::kConflict, "a patch may not change or remove the id");
  }
  // A well-formed patch whose result is not valid R4 is unprocessable (422),
  // unlike an invalid body sent to update (400).
  if (Status v = fhir::ValidateResource(*o); !v.ok()) {
    return Status(StatusCode::kConflict, "the patched resource is invalid: " + v.message())
        .WithExpression(v.expression());
  }
  request.body = fhir::Serialize(patched);
  // The update path would refuse it as a body too large to send (413); the
  // client sent a small patch whose result is what cannot be stored.
  if (request.body.size() > limits.max_bytes) {
    return Status(StatusCode::kConflict, "the patched resource would exceed the largest resource accepted");
  }
  SetHeader(request, "content-type", "application/fhir+json");
  SetHeader(request, "if-match", ETag(current.version));
  return Status::Ok();
}

http::HttpResponse PatchErrorResponse(const Status& status, const OutputFormat& fmt) {
  if (status.code() == StatusCode::kConflict) {
    return JsonResponse(422, fhir::OperationOutcomeJson("error", "processing", status.message(), status.expression()),
                        fmt);
  }
  return ErrorResponse(status, fmt);
}

}  // namespace phivault::api
