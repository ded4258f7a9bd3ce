#include "api/request_audit.h"

#include <algorithm>

#include "common/log.h"
#include "fhir/time.h"

namespace phivault::api {
namespace {

// Correlation ids from clients are kept only when they are short and plain:
// they end up in syslog lines and AuditEvents.
bool IsPlainId(std::string_view s, size_t max) {
  if (s.empty() || s.size() > max) return false;
  return std::all_of(s.begin(), s.end(), [](unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
           c == '.';
  });
}

std::string AddressWithoutPort(std::string_view a) {
  if (!a.empty() && a.front() == '[') {  // "[::1]:443"
    auto close = a.find(']');
    return std::string(close == std::string_view::npos ? a.substr(1) : a.substr(1, close - 1));
  }
  auto colon = a.rfind(':');
  if (colon != std::string_view::npos && a.find(':') == colon) return std::string(a.substr(0, colon));
  return std::string(a);
}

audit::AuditAction ActionForMethod(std::string_view method) {
  if (method == "POST") return audit::AuditAction::kCreate;
  if (method == "PUT" || method == "PATCH") return audit::AuditAction::kUpdate;
  if (method == "DELETE") return audit::AuditAction::kDelete;
  return audit::AuditAction::kRead;
}

constexpr size_t kMaxFreeText = 512;  // user agent, break-glass reason

}  // namespace

void StartEntry(audit::AuditEntry& e, const http::HttpRequest& req, int64_t now_ms) {
  e.time_ms = now_ms;
  const std::string* rid = req.Header("x-request-id");
  e.request_id = rid && IsPlainId(*rid, 64) ? *rid : NewId();
  e.source_address = AddressWithoutPort(req.remote_address);
  if (const std::string* ua = req.Header("user-agent")) e.user_agent = ua->substr(0, kMaxFreeText);
  if (const std::string* pou = req.Header("x-purpose-of-use"); pou && IsPlainId(*pou, 32)) e.purpose_of_use = *pou;
  if (const std::string* why = req.Header("x-break-glass-reason")) e.break_glass_reason = why->substr(0, kMaxFreeText);
  e.action = ActionForMethod(req.method);
}

void SetRequestIdHeader(http::HttpRequest& req, const std::string& id) {
  std::erase_if(req.headers, [](const auto& h) { return h.first == "x-request-id"; });
  req.headers.emplace_back("x-request-id", id);
}

void SetAgent(audit::AuditEntry& e, const Caller& caller) {
  const policy::Principal& p = caller.principal;
  e.agent.subject = p.subject;
  e.agent.role = std::string(policy::RoleName(p.role));
  e.agent.fhir_user = p.fhir_user;
  e.agent.client_id = p.client_id;
  if (p.role == policy::Role::kDevice) e.agent.device_id = p.subject;
}

void NoteDecision(audit::AuditEntry& e, const policy::Decision& d) {
  e.rule = d.rule;
  std::string trace;
  for (const policy::RuleCheck& c : d.trace) {
    if (!trace.empty()) trace += ' ';
    trace += c.rule;
    trace += c.passed ? '+' : '-';
  }
  e.decision = std::move(trace);
  if (d.allowed && d.break_glass) e.break_glass = true;
}

void AddResource(audit::AuditEntry& e, const store::ResourceVersion& v) {
  e.resources.push_back({v.type, v.id, std::to_string(v.version), ""});
  e.patients.insert(e.patients.end(), v.patients.begin(), v.patients.end());
}

size_t AddedResourceBytes(const store::ResourceVersion& v) {
  // {"type":"","id":"","version":"","prior_version":""} and a comma: 52
  // bytes, plus a version of at most 20 digits. Types, ids and patient
  // references need no JSON escapes.
  size_t n = 52 + 20 + v.type.size() + v.id.size();
  for (const auto& p : v.patients) n += p.size() + 3;  // "p",
  return n;
}

void AddRequested(audit::AuditEntry& e, std::string_view type, std::string_view id) {
  e.resources.push_back({std::string(type), std::string(id), "", ""});
}

void AddWriteResults(audit::AuditEntry& e, const std::vector<StatusOr<store::WriteResult>>& results) {
  for (const auto& r : results) {
    if (!r.ok() || r->no_op) continue;
    e.resources.push_back({r->type, r->id, std::to_string(r->version),
                           r->prior_version ? std::to_string(r->prior_version) : std::string()});
    e.patients.insert(e.patients.end(), r->patients.begin(), r->patients.end());
  }
}

std::string QueryShape(std::string_view path, const QueryParams& params) {
  std::string q(path);
  char sep = '?';
  for (const auto& [name, value] : params) {
    if (name == "_format" || name == "_pretty") continue;
    q += sep;
    q += name;
    sep = '&';
  }
  return q;
}

void FinishEntry(audit::AuditEntry& e, int http_status) {
  e.http_status = http_status;
  e.outcome = http_status >= 400 ? audit::AuditOutcome::kDenied : audit::AuditOutcome::kAllowed;
  std::sort(e.patients.begin(), e.patients.end());
  e.patients.erase(std::unique(e.patients.begin(), e.patients.end()), e.patients.end());
}

audit::AuditEntry RejectedRequestEntry(std::string_view remote_address, int http_status, int64_t now_ms) {
  audit::AuditEntry e;
  e.time_ms = now_ms;
  e.request_id = NewId();
  e.source_address = AddressWithoutPort(remote_address);
  e.action = audit::AuditAction::kSystem;
  e.event = "http.rejected";
  switch (http_status) {
    case 400: e.rule = "malformed"; break;
    case 413: e.rule = "body-too-large"; break;
    case 431: e.rule = "header-too-large"; break;
    case 503: e.rule = "shutting-down"; break;
    case 408: e.rule = "body-timeout"; break;
    default: e.rule = "http"; break;
  }
  FinishEntry(e, http_status);
  return e;
}

audit::AuditEntry AuthEventEntry(std::string_view event, std::string_view username, std::string_view source,
                                 std::string_view outcome, int64_t now_ms) {
  audit::AuditEntry e;
  e.time_ms = now_ms;
  e.request_id = NewId();
  e.agent.subject = std::string(username);
  e.source_address = std::string(source);
  e.rule = std::string(outcome);
  e.event = std::string(event);
  e.outcome = audit::AuditOutcome::kDenied;
  if (event == "login.success") {
    e.action = audit::AuditAction::kLogin;
    e.outcome = audit::AuditOutcome::kAllowed;
  } else if (event == "token.issued") {
    e.action = audit::AuditAction::kTokenIssued;
    e.outcome = audit::AuditOutcome::kAllowed;
  } else if (event == "account.lockout") {
    e.action = audit::AuditAction::kLockout;
  } else {
    // login.failure, login.throttled, token.refresh_failure, token.refresh_reuse,
    // token.request_refused
    e.action = audit::AuditAction::kLoginFailure;
  }
  return e;
}

store::ChangeRecordBuilder AccountChangeRecorder(std::string agent) {
  return [agent = std::move(agent)](const store::AccountChange& c) {
    audit::AuditEntry e;
    e.time_ms = fhir::NowMillis();
    e.request_id = NewId();
    e.agent.subject = agent;
    e.action = c.kind == "device" ? audit::AuditAction::kDeviceChange : audit::AuditAction::kUserChange;
    e.event = c.kind + "." + c.action;
    // Accounts are not FHIR resources; the type names them as the vault's.
    e.resources.push_back({c.kind == "device" ? "Device" : "phivault:user", c.id, "", ""});
    return audit::Serialize(e);
  };
}

RequestAuditor::Done ReleaseWhenAudited(http::Responder respond, http::HttpResponse resp, const OutputFormat& fmt,
                                        std::string_view route) {
  return [respond = std::move(respond), resp = std::move(resp), fmt, route](Status audited) mutable {
    if (audited.ok()) {
      respond(std::move(resp));
      return;
    }
    // Fail closed: whatever the answer was, it is withheld.
    http::HttpResponse r = OutcomeResponse(503, "error", "transient",
                                           "the audit log cannot be written, so the answer is withheld; "
                                           "retry later (a committed change is recorded once the log recovers)",
                                           fmt);
    r.headers.emplace_back("Retry-After", "5");
    SetRoute(r, route);
    respond(std::move(r));
  };
}

}  // namespace phivault::api
