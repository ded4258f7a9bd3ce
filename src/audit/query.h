// Audit queries: the filter behind GET /fhir/AuditEvent (IHE ITI-81,
// RESTful ATNA Retrieve) and the rows of Patient/{id}/$access-report
// (accounting of disclosures, ONC 170.315(d)(11); audit report (d)(3)).
//
// Everything here is a pure function over decoded entries: the caller reads
// the log (AuditLog::ReadEntries, at most 10000 entries per call), parses
// each entry (ParseEntry) and passes the (index, entry) pairs in. Which
// entries are read is the caller's choice: all of them (a scan), or those an
// index lists for a patient (api/audit_indexer.h). These functions decide
// either way, so both give the same answer.
//
// Matching rules (ITI-81 search parameters of AuditEvent):
//   patient  the entry touched that patient ("Patient/123" or "123")
//   agent    equals the agent's subject, fhirUser, client id or device id
//   date     ge/gt/le/lt/eq prefixes with FHIR date or dateTime precision
//            (a partial date covers its whole interval)
//   action   an entry action code ("read", "login"...) or a BALP action
//            letter ("C", "R", "U", "D", "E")
//   outcome  a BALP outcome code ("0", "4", "8") or "allowed"/"denied"
// Within a parameter, comma-separated values are alternatives (OR); across
// parameters every condition must hold (AND).
//
// Thread-safety: values and pure functions; safe from any thread.
#ifndef PHIVAULT_AUDIT_QUERY_H_
#define PHIVAULT_AUDIT_QUERY_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "audit/entry.h"
#include "common/status.h"

namespace phivault::audit {

// An entry together with its log index (its AuditEvent id).
struct IndexedEntry {
  uint64_t index = 0;
  AuditEntry entry;
};

struct AuditQuery {
  std::vector<std::string> patient;  // any of (ids, "Patient/" prefix optional)
  std::vector<std::string> agent;    // any of
  std::optional<int64_t> date_ge;    // inclusive bounds, ms since the epoch
  std::optional<int64_t> date_le;
  std::vector<std::string> action;   // any of
  std::vector<std::string> outcome;  // any of
  // Parameters ParseAuditQuery did not understand (FHIR's lenient handling:
  // the caller may ignore them, or refuse with Prefer: handling=strict).
  std::vector<std::string> unknown_params;
};

bool Matches(const AuditQuery& q, const AuditEntry& e);

// "Patient/x" -> "x"; anything else unchanged. Entries record bare ids.
std::string_view StripPatientPrefix(std::string_view p);

// The matching entries, in the order given (index order when read from the
// log), at most `limit` of them.
std::vector<IndexedEntry> FilterEntries(const std::vector<IndexedEntry>& entries, const AuditQuery& q,
                                        size_t limit = SIZE_MAX);

// Builds a query from decoded URL parameters (name, value) in request order.
// InvalidArgument names the parameter, never echoes its value. Parameters
// starting with '_' (paging, _format...) are left to the caller and are not
// reported as unknown.
StatusOr<AuditQuery> ParseAuditQuery(const std::vector<std::pair<std::string, std::string>>& params);

// A FHIR date/dateTime/instant as the closed interval [first ms, last ms]
// it covers: "2024" is the whole year, "2024-03-01T10:00:00+01:00" one
// second. Years 0001..9999; a time needs seconds and a zone (FHIR rules).
StatusOr<std::pair<int64_t, int64_t>> ParseDateRange(std::string_view value);

// One line of an access report.
struct AccessReportRow {
  uint64_t index = 0;   // the entry (AuditEvent id), for drill-down
  int64_t when_ms = 0;  // UTC
  std::string who;      // account id (device or client id if none)
  std::string who_fhir_user;
  std::string role;
  std::string action;  // entry action code
  // The resources touched ("Observation/1/_history/2, ..."). When the same
  // entry also touched other patients, only counts per type are shown
  // ("Observation x3"): ids of another patient's records are not ours to show.
  std::string resource;
  std::string purpose;  // v3-ActReason code
  bool break_glass = false;
  std::string break_glass_reason;
  std::string outcome;  // "allowed" / "denied"
};

enum class ReportField { kWhen, kWho, kRole, kAction, kResource, kPurpose, kBreakGlass, kOutcome };
std::optional<ReportField> ParseReportField(std::string_view name);  // "when", "who", ... "break_glass"

struct ReportSortKey {
  ReportField field = ReportField::kWhen;
  bool descending = false;
};
// "_sort"-style list: "-when,who" = when descending, then who ascending.
StatusOr<std::vector<ReportSortKey>> ParseReportSort(std::string_view spec);

// Rows for every entry that touched `patient_id` with start_ms <= time <=
// end_ms (either bound optional), allowed or denied, in the order given.
std::vector<AccessReportRow> BuildAccessReport(const std::vector<IndexedEntry>& entries, std::string_view patient_id,
                                               std::optional<int64_t> start_ms, std::optional<int64_t> end_ms);

// Stable sort by the keys in order; ties keep time then log order.
void SortAccessReport(std::vector<AccessReportRow>& rows, const std::vector<ReportSortKey>& keys);

}  // namespace phivault::audit

#endif  // PHIVAULT_AUDIT_QUERY_H_
