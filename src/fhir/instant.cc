#include "fhir/instant.h"

#include <chrono>

namespace phivault::fhir {

namespace {

// Exactly `n` ASCII digits at `pos`.
std::optional<int> Digits(std::string_view s, size_t pos, size_t n) {
  if (pos + n > s.size()) return std::nullopt;
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return std::nullopt;
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

bool At(std::string_view s, size_t pos, char c) { return pos < s.size() && s[pos] == c; }

}  // namespace

std::optional<int64_t> ParseInstantMillis(std::string_view s) {
  auto year = Digits(s, 0, 4), month = Digits(s, 5, 2), day = Digits(s, 8, 2);
  auto hour = Digits(s, 11, 2), minute = Digits(s, 14, 2), second = Digits(s, 17, 2);
  if (!year || !month || !day || !hour || !minute || !second) return std::nullopt;
  if (!At(s, 4, '-') || !At(s, 7, '-') || !At(s, 10, 'T') || !At(s, 13, ':') || !At(s, 16, ':')) return std::nullopt;
  if (*hour > 23 || *minute > 59 || *second > 59) return std::nullopt;
  std::chrono::year_month_day ymd{std::chrono::year(*year), std::chrono::month(static_cast<unsigned>(*month)),
                                  std::chrono::day(static_cast<unsigned>(*day))};
  if (!ymd.ok()) return std::nullopt;
  size_t pos = 19;
  int64_t millis = 0;
  if (At(s, pos, '.')) {
    ++pos;
    size_t start = pos;
    int64_t scale = 100;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      millis += (s[pos] - '0') * scale;
      scale /= 10;
      ++pos;
    }
    if (pos == start || pos - start > 9) return std::nullopt;
  }
  int64_t offset_min = 0;
  if (At(s, pos, 'Z')) {
    ++pos;
  } else if (At(s, pos, '+') || At(s, pos, '-')) {
    int sign = s[pos] == '-' ? -1 : 1;
    auto oh = Digits(s, pos + 1, 2), om = Digits(s, pos + 4, 2);
    if (!oh || !om || !At(s, pos + 3, ':') || *oh > 14 || *om > 59) return std::nullopt;
    offset_min = sign * (*oh * 60 + *om);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != s.size()) return std::nullopt;
  int64_t days = std::chrono::sys_days(ymd).time_since_epoch().count();
  int64_t secs = days * 86400 + *hour * 3600 + *minute * 60 + *second - offset_min * 60;
  return secs * 1000 + millis;
}

}  // namespace phivault::fhir
