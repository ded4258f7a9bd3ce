// Fuzzes audit::ParseEntry, the reader of audit entries that may come back
// from an export or another tool, and everything downstream of a parsed
// entry (BALP AuditEvent, syslog formatting, query matching). Any input must
// be accepted or rejected cleanly. Invariants checked:
//   * an accepted entry re-serializes to printable ASCII that parses back to
//     an equal entry, and serializing is idempotent (one canonical form);
//   * the syslog message of any input (entry or not) has no line break.
// Seeds: fuzz/corpus/audit_entry.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "audit/balp.h"
#include "audit/entry.h"
#include "audit/query.h"
#include "audit/siem_exporter.h"

namespace {

using namespace phivault::audit;

void Check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::string msg = FormatSyslogMessage(input, 1, SyslogIdentity{"host", "1", "vault"});
  Check(msg.find('\n') == std::string::npos);

  auto parsed = ParseEntry(input);
  if (!parsed.ok()) return 0;
  const std::string canonical = Serialize(*parsed);
  for (char c : canonical) Check(c >= 0x20 && c < 0x7F);
  auto again = ParseEntry(canonical);
  Check(again.ok());
  Check(*again == *parsed);
  Check(Serialize(*again) == canonical);

  (void)ToAuditEvent(*parsed, 7, "https://vault.example.org/fhir");
  AuditQuery q;
  q.patient = parsed->patients;
  Check(parsed->patients.empty() || Matches(q, *parsed));
  std::vector<IndexedEntry> entries{{7, *parsed}};
  auto rows =
      BuildAccessReport(entries, parsed->patients.empty() ? "x" : parsed->patients[0], std::nullopt, std::nullopt);
  SortAccessReport(rows, {{ReportField::kResource, true}});
  return 0;
}
