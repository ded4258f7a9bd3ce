// Building a request's audit entry (audit::AuditEntry) from what the FHIR
// layer sees: the HTTP request, the authenticated caller, the policy
// decisions, the resources returned or written, and the final status.
//
// What goes in is ids and codes only: resource type/id/version, patient ids,
// account ids, policy rule names, and the request's source address, user
// agent, purpose of use and break-glass reason. Never resource content or
// search values (docs/AUDIT-EVENTS.md).
//
// Thread-safety: free functions over values; safe from any thread.
#ifndef PHIVAULT_API_REQUEST_AUDIT_H_
#define PHIVAULT_API_REQUEST_AUDIT_H_

#include <string>
#include <string_view>
#include <vector>

#include "api/access_control.h"
#include "api/audit_trail.h"
#include "api/request_context.h"
#include "audit/entry.h"
#include "http/types.h"
#include "policy/engine.h"
#include "store/account_store.h"
#include "store/resource_store.h"

namespace phivault::api {

// Time, correlation id (a well-formed X-Request-Id, else a new one), source
// address without port, user agent, purpose of use and break-glass reason,
// and a default action from the HTTP method that handlers refine.
void StartEntry(audit::AuditEntry& e, const http::HttpRequest& req, int64_t now_ms);
// Makes req's X-Request-Id `id` (the one StartEntry chose), so entries
// started later from the same request carry it too.
void SetRequestIdHeader(http::HttpRequest& req, const std::string& id);
void SetAgent(audit::AuditEntry& e, const Caller& caller);
// The deciding rule and its trace; marks break-glass access.
void NoteDecision(audit::AuditEntry& e, const policy::Decision& d);
// A resource returned (or asked for and refused), with its patient link.
void AddResource(audit::AuditEntry& e, const store::ResourceVersion& v);
// An upper bound on the bytes AddResource(e, v) adds to the serialized entry.
size_t AddedResourceBytes(const store::ResourceVersion& v);
// Room kept for what a write's entry gains after its record was stored (the
// answer's status, the data category, the match a conditional create shows),
// so the final entry fits wherever the stored record did.
inline constexpr size_t kAnswerFieldsBytes = 4096;
// Asked for, but unknown to the store: type and id only.
void AddRequested(audit::AuditEntry& e, std::string_view type, std::string_view id);
// Every write that succeeded, with its prior version and patient link.
void AddWriteResults(audit::AuditEntry& e, const std::vector<StatusOr<store::WriteResult>>& results);
// "Type?name&name": the parameter names of a search or history, never values.
std::string QueryShape(std::string_view path, const QueryParams& params);
// Outcome from the HTTP status (>= 400 is denied); patients sorted, unique.
void FinishEntry(audit::AuditEntry& e, int http_status);

// The entry of an authentication event reported by AuthService's AuditHook
// (login success/failure, lockout, token issued, refresh failures): the
// account name only when the account exists, the source address, and the
// hook's outcome as the rule.
audit::AuditEntry AuthEventEntry(std::string_view event, std::string_view username, std::string_view source,
                                 std::string_view outcome, int64_t now_ms);

// The entry of a request the HTTP layer refused before any handler saw it
// (http::ServerOptions::on_rejected): no identity, the source address, the
// status, and a rule naming the refusal ("malformed", "body-too-large",
// "header-too-large", "shutting-down", "body-timeout"; else "http").
audit::AuditEntry RejectedRequestEntry(std::string_view remote_address, int http_status, int64_t now_ms);

// The audit record of a user or device change made by `agent` (the CLI
// passes "operator": whoever holds the master key), for
// store::AccountStore::SetChangeRecordBuilder.
store::ChangeRecordBuilder AccountChangeRecorder(std::string agent);

// The Done callback that sends `resp` once its entry is durable, and a 503
// OperationOutcome (no health data) if the audit log cannot be written.
RequestAuditor::Done ReleaseWhenAudited(http::Responder respond, http::HttpResponse resp, const OutputFormat& fmt,
                                        std::string_view route);

}  // namespace phivault::api

#endif  // PHIVAULT_API_REQUEST_AUDIT_H_
