#include "fhir/time.h"

#include <algorithm>
#include <chrono>
#include <cstdio>

namespace phivault::fhir {
namespace {

// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z in Unix milliseconds.
constexpr int64_t kMinMs = -62135596800000;
constexpr int64_t kMaxMs = 253402300799999;

struct Civil {
  int64_t year;
  unsigned month, day, hour, minute, second, millis, weekday;  // weekday 0 = Sunday
};

int64_t FloorDiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

// Howard Hinnant's civil_from_days.
Civil ToCivil(int64_t ms) {
  ms = std::clamp(ms, kMinMs, kMaxMs);
  int64_t days = FloorDiv(ms, 86400000);
  int64_t rem = ms - days * 86400000;
  Civil c{};
  c.millis = static_cast<unsigned>(rem % 1000);
  rem /= 1000;
  c.second = static_cast<unsigned>(rem % 60);
  rem /= 60;
  c.minute = static_cast<unsigned>(rem % 60);
  c.hour = static_cast<unsigned>(rem / 60);
  c.weekday = static_cast<unsigned>(((days % 7) + 7 + 4) % 7);  // 1970-01-01 was a Thursday
  int64_t z = days + 719468;
  int64_t era = FloorDiv(z, 146097);
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  c.day = static_cast<unsigned>(doy - (153 * mp + 2) / 5 + 1);
  c.month = static_cast<unsigned>(mp < 10 ? mp + 3 : mp - 9);
  c.year = yoe + era * 400 + (c.month <= 2);
  return c;
}

}  // namespace

std::string FormatInstant(int64_t unix_ms) {
  Civil c = ToCivil(unix_ms);
  char buf[40];
  int n = std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02u:%02u:%02u.%03uZ",
                        static_cast<long long>(c.year), c.month, c.day, c.hour, c.minute, c.second,
                        c.millis);
  return std::string(buf, n > 0 ? static_cast<size_t>(n) : 0);
}

std::string FormatHttpDate(int64_t unix_ms) {
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  Civil c = ToCivil(unix_ms);
  char buf[48];
  int n = std::snprintf(buf, sizeof buf, "%s, %02u %s %04lld %02u:%02u:%02u GMT", kDays[c.weekday],
                        c.day, kMonths[c.month - 1], static_cast<long long>(c.year), c.hour, c.minute,
                        c.second);
  return std::string(buf, n > 0 ? static_cast<size_t>(n) : 0);
}

int64_t NowMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace phivault::fhir
