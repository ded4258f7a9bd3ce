#include "policy/values.h"

#include <vector>

#include "fhir/json_reader.h"
#include "fhir/resource_types.h"

namespace phivault::policy {

namespace json = boost::json;

const json::object* GetObject(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v ? v->if_object() : nullptr;
}

const json::array* GetArray(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v ? v->if_array() : nullptr;
}

std::string_view GetString(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (!v || !v->is_string()) return {};
  const json::string& s = v->get_string();
  return std::string_view(s.data(), s.size());
}

namespace {

std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    size_t p = s.find(sep, start);
    if (p == std::string_view::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, p - start));
    start = p + 1;
  }
}

}  // namespace

std::optional<std::string> NormalizeReference(std::string_view ref) {
  if (ref.empty() || ref.size() > 4096) return std::nullopt;
  bool absolute = false;
  if (ref.starts_with("https://") || ref.starts_with("http://")) {
    absolute = true;
    ref.remove_prefix(ref.find("://") + 3);
    size_t slash = ref.find('/');
    if (slash == std::string_view::npos) return std::nullopt;
    ref.remove_prefix(slash + 1);  // drop the host: the base is not compared (like compartment.h)
  }
  if (ref.find_first_of("?#") != std::string_view::npos) return std::nullopt;
  std::vector<std::string_view> parts = Split(ref, '/');
  // Strip a trailing "_history/v" so every version of a reference compares equal.
  if (parts.size() >= 4 && parts[parts.size() - 2] == "_history") parts.resize(parts.size() - 2);
  // A relative reference is exactly Type/id; an absolute one may have base path segments before it.
  if (parts.size() < 2 || (!absolute && parts.size() != 2)) return std::nullopt;
  std::string_view type = parts[parts.size() - 2];
  std::string_view id = parts[parts.size() - 1];
  if (!fhir::IsKnownResourceType(type) || !fhir::IsValidId(id)) return std::nullopt;
  std::string out;
  out.reserve(type.size() + 1 + id.size());
  out.append(type).append("/").append(id);
  return out;
}

std::optional<std::string> ReferenceOf(const json::value& reference_datatype) {
  const json::object* o = reference_datatype.if_object();
  if (!o) return std::nullopt;
  std::string_view r = GetString(*o, "reference");
  if (r.empty()) return std::nullopt;
  return NormalizeReference(r);
}

std::string_view RefType(std::string_view ref) {
  size_t slash = ref.find('/');
  return slash == std::string_view::npos ? ref : ref.substr(0, slash);
}

namespace {

// Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar
// (H. Hinnant's days_from_civil), exact for all years we accept.
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

bool IsLeap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

unsigned DaysInMonth(int64_t y, unsigned m) {
  static constexpr unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && IsLeap(y) ? 29 : kDays[m - 1];
}

// Reads exactly n digits at text[pos..]; advances pos.
bool Digits(std::string_view text, size_t& pos, size_t n, int& out) {
  if (pos + n > text.size()) return false;
  int v = 0;
  for (size_t i = 0; i < n; ++i) {
    char c = text[pos + i];
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  pos += n;
  out = v;
  return true;
}

constexpr int64_t kMsPerDay = 86400000;

}  // namespace

std::optional<TimeRange> ParseFhirDateTime(std::string_view t) {
  size_t pos = 0;
  int year = 0, month = 1, day = 1;
  if (!Digits(t, pos, 4, year) || year < 1) return std::nullopt;
  if (pos == t.size()) {
    int64_t first = DaysFromCivil(year, 1, 1) * kMsPerDay;
    return TimeRange{first, DaysFromCivil(year + 1, 1, 1) * kMsPerDay - 1};
  }
  if (t[pos++] != '-' || !Digits(t, pos, 2, month) || month < 1 || month > 12) return std::nullopt;
  if (pos == t.size()) {
    int64_t first = DaysFromCivil(year, month, 1) * kMsPerDay;
    return TimeRange{first, first + DaysInMonth(year, month) * kMsPerDay - 1};
  }
  if (t[pos++] != '-' || !Digits(t, pos, 2, day) || day < 1 ||
      day > static_cast<int>(DaysInMonth(year, month))) {
    return std::nullopt;
  }
  int64_t day_start = DaysFromCivil(year, month, day) * kMsPerDay;
  if (pos == t.size()) return TimeRange{day_start, day_start + kMsPerDay - 1};
  int hh = 0, mm = 0, ss = 0;
  if (t[pos++] != 'T' || !Digits(t, pos, 2, hh) || hh > 23 || pos >= t.size() || t[pos++] != ':' ||
      !Digits(t, pos, 2, mm) || mm > 59 || pos >= t.size() || t[pos++] != ':' || !Digits(t, pos, 2, ss) ||
      ss > 60) {
    return std::nullopt;
  }
  if (ss == 60) ss = 59;  // leap second: FHIR allows it; fold into the previous second
  int64_t ms = 0;
  int64_t precision_ms = 1000;  // the span the written value covers
  if (pos < t.size() && t[pos] == '.') {
    ++pos;
    size_t start = pos;
    int64_t scale = 100;
    while (pos < t.size() && t[pos] >= '0' && t[pos] <= '9') {
      if (scale > 0) ms += (t[pos] - '0') * scale;
      scale /= 10;
      ++pos;
    }
    size_t n = pos - start;
    if (n == 0 || n > 9) return std::nullopt;
    precision_ms = n >= 3 ? 1 : (n == 2 ? 10 : 100);
  }
  // With a time of day FHIR requires a zone: Z or +hh:mm / -hh:mm.
  if (pos >= t.size()) return std::nullopt;
  int64_t offset_ms = 0;
  if (t[pos] == 'Z') {
    ++pos;
  } else if (t[pos] == '+' || t[pos] == '-') {
    int sign = t[pos++] == '+' ? 1 : -1;
    int oh = 0, om = 0;
    if (!Digits(t, pos, 2, oh) || oh > 14 || pos >= t.size() || t[pos++] != ':' || !Digits(t, pos, 2, om) ||
        om > 59) {
      return std::nullopt;
    }
    offset_ms = sign * (oh * 3600000LL + om * 60000LL);
  } else {
    return std::nullopt;
  }
  if (pos != t.size()) return std::nullopt;
  int64_t first = day_start + hh * 3600000LL + mm * 60000LL + ss * 1000LL + ms - offset_ms;
  return TimeRange{first, first + precision_ms - 1};
}

std::optional<Bounds> ParsePeriod(const json::value& period) {
  const json::object* o = period.if_object();
  if (!o) return std::nullopt;
  Bounds b;
  for (std::string_view key : {std::string_view("start"), std::string_view("end")}) {
    const json::value* v = o->if_contains(key);
    if (!v) continue;
    if (!v->is_string()) return std::nullopt;
    std::optional<TimeRange> r = ParseFhirDateTime(std::string_view(v->get_string().data(), v->get_string().size()));
    if (!r) return std::nullopt;
    if (key == "start") {
      b.from = r->first_ms;
    } else {
      b.to = r->last_ms;
    }
  }
  return b;
}

int64_t SaturatingAdd(int64_t a, int64_t b) {
  int64_t out = 0;
  if (__builtin_add_overflow(a, b, &out)) return b > 0 ? kMaxTime : kMinTime;
  return out;
}

}  // namespace phivault::policy
