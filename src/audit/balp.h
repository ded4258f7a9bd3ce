// BALP: the FHIR R4 AuditEvent view of an audit entry, for the IHE RESTful
// ATNA Retrieve (ITI-81) endpoint GET /fhir/AuditEvent.
//
// ToAuditEvent maps one AuditEntry (log index = AuditEvent.id) to an
// AuditEvent following the IHE Basic Audit Log Patterns (BALP 1.1):
//   read/vread            → Read   / PatientRead    (action R, subtype read/vread)
//   search, history, $op, → Query  / PatientQuery   (action E, query entity)
//   access-report, audit-query
//   create/update/delete  → Create / Update / Delete (+ Patient*), action C/U/D
//   batch/transaction     → rest + restful-interaction code, action E
//   login, login-failure, token-issued   → DCM 110114 User Authentication / 110122 Login
//   lockout, user/device change          → DCM 110113 Security Alert / 110137
//   break-glass                          → DCM 110113 / 110127 Emergency Override Started
//   consent change / key change          → DCM 110113 / 110135 / 110129
//   backup, export / restore             → DCM 110106 Export / 110107 Import
// Every event also carries a subtype coding in kPhivaultActionSystem with
// the entry's own action code, so ITI-81 clients can filter on it.
//
// meta.profile names a BALP profile only when the event conforms to it:
// the profiles fix outcome = 0 (success), so failed or denied events (still
// built the same way, with outcome 4 or 8) claim none; the Patient* variants
// need exactly one patient, so an event touching several patients claims the
// base profile and lists every patient entity (BALP suggests one event per
// patient, which would break the one entry = one AuditEvent mapping); Read,
// Create, Update and Delete need exactly one data entity.
//
// Query-pattern events put the returned resources in entities typed by
// their resource type (http://hl7.org/fhir/resource-types, allowed by the R4
// AuditEventEntityType binding), so they do not collide with BALP's
// type-discriminated query slice. The query entity holds the request's type
// and parameter NAMES (AuditEntry::query), never the values: a deliberate
// deviation from BALP's "raw request", which would put health data (names,
// birth dates, identifiers) into the audit trail and the SIEM feed.
//
// No agent carries a name or other PHI: users appear as account ids
// (who.identifier) and fhirUser references, clients and devices by id.
//
// Thread-safety: pure functions; safe from any thread.
#ifndef PHIVAULT_AUDIT_BALP_H_
#define PHIVAULT_AUDIT_BALP_H_

#include <boost/json/object.hpp>
#include <cstdint>
#include <string>
#include <string_view>

#include "audit/entry.h"

namespace phivault::audit {

inline constexpr std::string_view kBalpProfileBase = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/";
inline constexpr std::string_view kPhivaultActionSystem = "urn:phivault:audit-action";
inline constexpr std::string_view kPhivaultRoleSystem = "urn:phivault:role";
inline constexpr std::string_view kPhivaultUserSystem = "urn:phivault:user";
inline constexpr std::string_view kPhivaultClientSystem = "urn:phivault:client";
inline constexpr std::string_view kPhivaultDeviceSystem = "urn:phivault:device";

// AuditEvent.action for an entry's action: "C", "R", "U", "D" or "E".
std::string_view BalpActionCode(AuditAction a);
// AuditEvent.outcome: "0" success, "4" minor failure (denied, 4xx),
// "8" serious failure (5xx).
std::string_view BalpOutcomeCode(const AuditEntry& e);
// The BALP profile the event conforms to, or "" (see the file comment).
std::string BalpProfile(const AuditEntry& e);

// `base_url` identifies the vault (server agent, source observer), e.g.
// "https://vault.example.org/fhir".
boost::json::object ToAuditEvent(const AuditEntry& entry, uint64_t index, const std::string& base_url);

}  // namespace phivault::audit

#endif  // PHIVAULT_AUDIT_BALP_H_
