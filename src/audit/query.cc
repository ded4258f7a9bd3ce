#include "audit/query.h"

#include <algorithm>
#include <cctype>
#include <map>

#include "audit/balp.h"

namespace phivault::audit {
namespace {

constexpr int64_t kMsPerDay = 86400000;

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
// days_from_civil): exact for every year FHIR can write, no tz database.
int64_t DaysFromCivil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

bool IsLeap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int64_t DaysInMonth(int64_t y, int64_t m) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && IsLeap(y) ? 29 : kDays[m - 1];
}

// Reads exactly n digits at s[pos]; false if any is missing.
bool Digits(std::string_view s, size_t pos, size_t n, int64_t* out) {
  if (pos + n > s.size()) return false;
  int64_t v = 0;
  for (size_t i = 0; i < n; ++i) {
    const char c = s[pos + i];
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *out = v;
  return true;
}

std::vector<std::string> SplitComma(std::string_view v) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= v.size()) {
    const size_t comma = v.find(',', start);
    const size_t end = comma == std::string_view::npos ? v.size() : comma;
    if (end > start) out.emplace_back(v.substr(start, end - start));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return out;
}

bool AnyOf(const std::vector<std::string>& alternatives, auto&& pred) {
  return alternatives.empty() || std::any_of(alternatives.begin(), alternatives.end(), pred);
}

std::string Who(const AuditEntry& e) {
  if (!e.agent.subject.empty()) return e.agent.subject;
  if (!e.agent.device_id.empty()) return e.agent.device_id;
  if (!e.agent.client_id.empty()) return e.agent.client_id;
  return "anonymous";
}

std::string Ref(const AuditResource& r) {
  std::string ref = r.type;
  if (!r.id.empty()) ref += "/" + r.id;
  if (!r.id.empty() && !r.version.empty()) ref += "/_history/" + r.version;
  return ref;
}

std::string ResourceColumn(const AuditEntry& e) {
  if (e.resources.empty()) return e.query;
  std::string out;
  if (e.patients.size() > 1) {
    std::map<std::string, size_t> counts;
    for (const AuditResource& r : e.resources) ++counts[r.type];
    for (const auto& [type, n] : counts) {
      if (!out.empty()) out += ", ";
      out += type + " x" + std::to_string(n);
    }
    return out;
  }
  for (const AuditResource& r : e.resources) {
    if (!out.empty()) out += ", ";
    out += Ref(r);
  }
  return out;
}

// -1, 0, 1 comparison of one field.
int CompareField(const AccessReportRow& a, const AccessReportRow& b, ReportField f) {
  auto cmp = [](const auto& x, const auto& y) { return x < y ? -1 : (y < x ? 1 : 0); };
  switch (f) {
    case ReportField::kWhen:
      return cmp(a.when_ms, b.when_ms);
    case ReportField::kWho:
      return cmp(a.who, b.who);
    case ReportField::kRole:
      return cmp(a.role, b.role);
    case ReportField::kAction:
      return cmp(a.action, b.action);
    case ReportField::kResource:
      return cmp(a.resource, b.resource);
    case ReportField::kPurpose:
      return cmp(a.purpose, b.purpose);
    case ReportField::kBreakGlass:
      return cmp(a.break_glass, b.break_glass);
    case ReportField::kOutcome:
      return cmp(a.outcome, b.outcome);
  }
  return 0;
}

}  // namespace

std::string_view StripPatientPrefix(std::string_view p) {
  constexpr std::string_view kPrefix = "Patient/";
  return p.substr(0, kPrefix.size()) == kPrefix ? p.substr(kPrefix.size()) : p;
}

StatusOr<std::pair<int64_t, int64_t>> ParseDateRange(std::string_view s) {
  const Status bad = InvalidArgument("date: expected YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss[.fff](Z|+hh:mm)");
  int64_t y = 0, mo = 1, d = 1;
  if (!Digits(s, 0, 4, &y) || y < 1) return bad;
  if (s.size() == 4) {
    const int64_t lo = DaysFromCivil(y, 1, 1) * kMsPerDay;
    return std::make_pair(lo, DaysFromCivil(y + 1, 1, 1) * kMsPerDay - 1);
  }
  if (s[4] != '-' || !Digits(s, 5, 2, &mo) || mo < 1 || mo > 12) return bad;
  if (s.size() == 7) {
    const int64_t lo = DaysFromCivil(y, mo, 1) * kMsPerDay;
    return std::make_pair(lo, lo + DaysInMonth(y, mo) * kMsPerDay - 1);
  }
  if (s.size() < 10 || s[7] != '-' || !Digits(s, 8, 2, &d) || d < 1 || d > DaysInMonth(y, mo)) return bad;
  const int64_t day = DaysFromCivil(y, mo, d) * kMsPerDay;
  if (s.size() == 10) return std::make_pair(day, day + kMsPerDay - 1);

  int64_t h = 0, mi = 0, sec = 0;
  if (s[10] != 'T' || !Digits(s, 11, 2, &h) || s.size() < 19 || s[13] != ':' || !Digits(s, 14, 2, &mi) ||
      s[16] != ':' || !Digits(s, 17, 2, &sec) || h > 23 || mi > 59 || sec > 60) {
    return bad;
  }
  size_t pos = 19;
  int64_t ms = 0;
  int64_t precision = 1000;  // width of the interval the value names
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    size_t ndig = 0;
    int64_t scale = 100;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      if (ndig < 3) ms += (s[pos] - '0') * scale, scale /= 10;
      ++pos, ++ndig;
    }
    if (ndig == 0 || ndig > 9) return bad;
    precision = ndig >= 3 ? 1 : (ndig == 2 ? 10 : 100);
  }
  int64_t offset_min = 0;
  if (pos < s.size() && s[pos] == 'Z') {
    ++pos;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    int64_t oh = 0, om = 0;
    if (!Digits(s, pos + 1, 2, &oh) || pos + 3 >= s.size() || s[pos + 3] != ':' || !Digits(s, pos + 4, 2, &om) ||
        oh > 14 || om > 59) {
      return bad;
    }
    offset_min = (s[pos] == '-' ? -1 : 1) * (oh * 60 + om);
    pos += 6;
  } else {
    return bad;  // FHIR requires a zone whenever a time is given
  }
  if (pos != s.size()) return bad;
  const int64_t lo = day + ((h * 60 + mi - offset_min) * 60 + std::min<int64_t>(sec, 59)) * 1000 + ms;
  return std::make_pair(lo, lo + precision - 1);
}

bool Matches(const AuditQuery& q, const AuditEntry& e) {
  if (q.date_ge && e.time_ms < *q.date_ge) return false;
  if (q.date_le && e.time_ms > *q.date_le) return false;
  if (!AnyOf(q.patient, [&](const std::string& p) {
        const std::string_view id = StripPatientPrefix(p);
        return std::find(e.patients.begin(), e.patients.end(), id) != e.patients.end();
      })) {
    return false;
  }
  if (!AnyOf(q.agent, [&](const std::string& a) {
        return !a.empty() &&
               (a == e.agent.subject || a == e.agent.fhir_user || a == e.agent.client_id || a == e.agent.device_id);
      })) {
    return false;
  }
  if (!AnyOf(q.action,
             [&](const std::string& a) { return a == ActionCode(e.action) || a == BalpActionCode(e.action); })) {
    return false;
  }
  return AnyOf(q.outcome, [&](const std::string& o) { return o == BalpOutcomeCode(e) || o == OutcomeCode(e.outcome); });
}

std::vector<IndexedEntry> FilterEntries(const std::vector<IndexedEntry>& entries, const AuditQuery& q, size_t limit) {
  std::vector<IndexedEntry> out;
  for (const IndexedEntry& ie : entries) {
    if (out.size() >= limit) break;
    if (Matches(q, ie.entry)) out.push_back(ie);
  }
  return out;
}

StatusOr<AuditQuery> ParseAuditQuery(const std::vector<std::pair<std::string, std::string>>& params) {
  AuditQuery q;
  bool seen_patient = false, seen_agent = false, seen_action = false, seen_outcome = false;
  // A repeated list parameter would mean AND (FHIR); for single-valued
  // fields that is either redundant or empty, so it is refused as ambiguous.
  auto list = [](const std::string& name, const std::string& value, bool* seen,
                 std::vector<std::string>* out) -> Status {
    if (*seen) return InvalidArgument("search parameter '" + name + "' given more than once; use a comma list");
    *seen = true;
    *out = SplitComma(value);
    if (out->empty()) return InvalidArgument("search parameter '" + name + "' is empty");
    return Status::Ok();
  };
  for (const auto& [name, value] : params) {
    if (name == "patient") {
      PV_RETURN_IF_ERROR(list(name, value, &seen_patient, &q.patient));
    } else if (name == "agent") {
      PV_RETURN_IF_ERROR(list(name, value, &seen_agent, &q.agent));
    } else if (name == "action") {
      PV_RETURN_IF_ERROR(list(name, value, &seen_action, &q.action));
    } else if (name == "outcome") {
      PV_RETURN_IF_ERROR(list(name, value, &seen_outcome, &q.outcome));
    } else if (name == "date") {
      std::string_view v = value, prefix = "eq";
      if (v.size() >= 2 && std::isalpha(static_cast<unsigned char>(v[0]))) prefix = v.substr(0, 2), v.remove_prefix(2);
      auto range = ParseDateRange(v);
      if (!range.ok()) return InvalidArgument("search parameter 'date': " + range.status().message());
      const auto [lo, hi] = *range;
      auto ge = [&](int64_t t) { q.date_ge = q.date_ge ? std::max(*q.date_ge, t) : t; };
      auto le = [&](int64_t t) { q.date_le = q.date_le ? std::min(*q.date_le, t) : t; };
      if (prefix == "eq") {
        ge(lo), le(hi);
      } else if (prefix == "ge" || prefix == "sa") {
        ge(prefix == "sa" ? hi + 1 : lo);
      } else if (prefix == "gt") {
        ge(hi + 1);
      } else if (prefix == "le" || prefix == "eb") {
        le(prefix == "eb" ? lo - 1 : hi);
      } else if (prefix == "lt") {
        le(lo - 1);
      } else {
        return InvalidArgument("search parameter 'date': unsupported prefix (use eq, ge, gt, le, lt)");
      }
    } else if (name.empty() || name[0] != '_') {
      q.unknown_params.push_back(name);
    }
  }
  return q;
}

std::optional<ReportField> ParseReportField(std::string_view n) {
  if (n == "when") return ReportField::kWhen;
  if (n == "who") return ReportField::kWho;
  if (n == "role") return ReportField::kRole;
  if (n == "action") return ReportField::kAction;
  if (n == "resource") return ReportField::kResource;
  if (n == "purpose") return ReportField::kPurpose;
  if (n == "break_glass" || n == "break-glass") return ReportField::kBreakGlass;
  if (n == "outcome") return ReportField::kOutcome;
  return std::nullopt;
}

StatusOr<std::vector<ReportSortKey>> ParseReportSort(std::string_view spec) {
  std::vector<ReportSortKey> keys;
  for (const std::string& item : SplitComma(spec)) {
    std::string_view name = item;
    ReportSortKey k;
    if (!name.empty() && name[0] == '-') k.descending = true, name.remove_prefix(1);
    auto f = ParseReportField(name);
    if (!f) {
      return InvalidArgument(
          "_sort: unknown field (use when, who, role, action, resource, purpose, break_glass, outcome)");
    }
    k.field = *f;
    keys.push_back(k);
  }
  if (keys.empty()) return InvalidArgument("_sort: empty");
  return keys;
}

std::vector<AccessReportRow> BuildAccessReport(const std::vector<IndexedEntry>& entries, std::string_view patient_id,
                                               std::optional<int64_t> start_ms, std::optional<int64_t> end_ms) {
  std::vector<AccessReportRow> rows;
  const std::string_view id = StripPatientPrefix(patient_id);
  for (const IndexedEntry& ie : entries) {
    const AuditEntry& e = ie.entry;
    if (start_ms && e.time_ms < *start_ms) continue;
    if (end_ms && e.time_ms > *end_ms) continue;
    if (std::find(e.patients.begin(), e.patients.end(), id) == e.patients.end()) continue;
    AccessReportRow r;
    r.index = ie.index;
    r.when_ms = e.time_ms;
    r.who = Who(e);
    r.who_fhir_user = e.agent.fhir_user;
    r.role = e.agent.role;
    r.action = std::string(ActionCode(e.action));
    r.resource = ResourceColumn(e);
    r.purpose = e.purpose_of_use;
    r.break_glass = e.break_glass || e.action == AuditAction::kBreakGlass;
    r.break_glass_reason = e.break_glass_reason;
    r.outcome = std::string(OutcomeCode(e.outcome));
    rows.push_back(std::move(r));
  }
  return rows;
}

void SortAccessReport(std::vector<AccessReportRow>& rows, const std::vector<ReportSortKey>& keys) {
  std::stable_sort(rows.begin(), rows.end(), [&](const AccessReportRow& a, const AccessReportRow& b) {
    for (const ReportSortKey& k : keys) {
      const int c = CompareField(a, b, k.field);
      if (c != 0) return k.descending ? c > 0 : c < 0;
    }
    if (a.when_ms != b.when_ms) return a.when_ms < b.when_ms;
    return a.index < b.index;
  });
}

}  // namespace phivault::audit
