// AuditEntry: the content of one audit log entry (issue 4), and its stable
// JSON encoding.
//
// One entry records one event: a FHIR interaction (allowed or denied, with
// every resource it returned or wrote), an authentication event (login,
// failed login, token issued, lockout, break-glass grant), an administrative
// change (user, device, consent, key) or a bulk operation (backup, restore,
// export). The fields follow ASTM E2147 / IHE BALP: when, who, from where,
// what, why, and the outcome. An entry holds identifiers and codes only,
// never resource content: the log is sealed at rest, but entries also leave
// the vault as AuditEvent resources (ITI-81) and as syslog to a SIEM.
// Free-text fields are limited to what the issue requires (user agent,
// break-glass reason); see docs for what that implies for the SIEM.
//
// Serialize() writes compact JSON, version "v":1, with stable field names;
// empty strings, empty lists and false flags are omitted. Its output is pure
// printable ASCII (non-ASCII characters are \u-escaped and invalid UTF-8 is
// replaced by U+FFFD), so it can be embedded as-is in a syslog MSG and
// always parses back. ParseEntry() treats its input as untrusted (the log
// can be exported and re-read, and a future version may add fields): it
// never aborts, rejects anything malformed with InvalidArgument, rejects a
// different "v" with Unsupported, and ignores unknown members (v1 evolves
// only by adding optional members).
//
// Thread-safety: plain values and pure functions; safe from any thread.
#ifndef PHIVAULT_AUDIT_ENTRY_H_
#define PHIVAULT_AUDIT_ENTRY_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace phivault::audit {

inline constexpr int kEntryFormatVersion = 1;

// What happened. The JSON code of each action is in ActionCode().
enum class AuditAction {
  kRead,           // "read"
  kVRead,          // "vread"
  kSearch,         // "search"
  kHistory,        // "history"
  kCreate,         // "create"
  kUpdate,         // "update"
  kDelete,         // "delete"
  kBatch,          // "batch"
  kTransaction,    // "transaction"
  kOperation,      // "operation": $everything and other FHIR operations
  kLogin,          // "login"
  kLoginFailure,   // "login-failure"
  kTokenIssued,    // "token-issued"
  kLockout,        // "lockout"
  kBreakGlass,     // "break-glass": a break-glass grant was opened
  kUserChange,     // "user-change"
  kDeviceChange,   // "device-change"
  kConsentChange,  // "consent-change"
  kKeyChange,      // "key-change"
  kBackup,         // "backup"
  kRestore,        // "restore"
  kExport,         // "export"
  kAccessReport,   // "access-report": Patient/{id}/$access-report
  kAuditQuery,     // "audit-query": GET /fhir/AuditEvent (ITI-81)
  kSystem,         // "system": vault lifecycle (start, stop, audit-log probe); see `event`
};
inline constexpr int kAuditActionCount = 25;

std::string_view ActionCode(AuditAction a);
std::optional<AuditAction> ParseActionCode(std::string_view code);

enum class AuditOutcome { kAllowed, kDenied };
std::string_view OutcomeCode(AuditOutcome o);  // "allowed" / "denied"

// Who acted. Ids only (account ids, client ids, device ids), never names.
struct AuditAgent {
  std::string subject;    // user or device account id ("" if unauthenticated)
  std::string role;       // policy role name ("clinician", "patient", ...)
  std::string fhir_user;  // fhirUser claim, e.g. "Practitioner/123"
  std::string client_id;  // OAuth client (app) id
  std::string device_id;  // device id when a device acted
  bool operator==(const AuditAgent&) const = default;
};

// One resource the event touched (read, returned, written or deleted).
struct AuditResource {
  std::string type;           // FHIR resource type
  std::string id;             // logical id
  std::string version;        // version returned or written ("" if unknown)
  std::string prior_version;  // writes: the version replaced ("" for create)
  bool operator==(const AuditResource&) const = default;
};

struct AuditEntry {
  // When: milliseconds since the Unix epoch, UTC.
  int64_t time_ms = 0;
  // Correlation: the request's X-Request-Id (or the id the vault assigned).
  std::string request_id;
  // Who.
  AuditAgent agent;
  // From where.
  std::string source_address;  // peer IP address (no port)
  std::string user_agent;      // User-Agent header, as sent
  // What.
  AuditAction action = AuditAction::kRead;
  std::vector<AuditResource> resources;
  // Search, history and operations: the resource type and the parameter
  // NAMES of the request (e.g. "Observation?code&patient"), never the
  // values, which may be health data. BALP's query entity is built from it.
  std::string query;
  std::vector<std::string> patients;  // Patient ids touched (the patient link)
  std::string data_category;          // e.g. policy resource class "clinical"
  // Why.
  std::string purpose_of_use;      // v3-ActReason code, e.g. "TREAT", "ETREAT"
  bool break_glass = false;        // allowed only through a break-glass grant
  std::string break_glass_reason;  // X-Break-Glass-Reason as given
  // Outcome.
  AuditOutcome outcome = AuditOutcome::kAllowed;
  std::string rule;     // the deciding policy rule ("allow", "consent", ...)
  // The policy rules evaluated, in order, each with "+" (passed) or "-"
  // ("role+ scope+ care-relationship-"): the decision's trace without its
  // details, which could name sensitivity labels (themselves health data).
  std::string decision;
  // System and authentication events: what happened ("start", "stop",
  // "audit-probe"; "login.failure", "token.refresh_reuse", ...).
  std::string event;
  int http_status = 0;  // 0 when the event had no HTTP response
  // Writes: the id of the write record the store kept with the write in the
  // same transaction (ResourceStore's audit outbox); 0 otherwise. Recovery
  // after a crash uses it to append each record exactly once.
  int64_t write_record = 0;

  bool operator==(const AuditEntry&) const = default;
};

// Compact, versioned JSON; printable ASCII only. See the file comment.
std::string Serialize(const AuditEntry& entry);

// Parses Serialize()'s output. Untrusted input: never aborts.
StatusOr<AuditEntry> ParseEntry(std::string_view json);

// Largest accepted input (the audit log's own default entry limit).
inline constexpr size_t kMaxEntryBytes = 1u << 20;

}  // namespace phivault::audit

#endif  // PHIVAULT_AUDIT_ENTRY_H_
