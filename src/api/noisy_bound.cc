#include "api/noisy_bound.h"

#include <sodium.h>

#include <algorithm>
#include <cmath>

namespace phivault::api {

int64_t NoisyBound(int64_t base) {
  if (base < 20) return base;
  const double scale = static_cast<double>(base) / 20.0;
  // u uniform in (-1/2, 1/2), never an endpoint: 52 random bits, offset by
  // half a step (exact in a double's 53-bit mantissa). A generator the
  // caller cannot predict: with a known sequence the noise would subtract
  // out.
  uint64_t bits = 0;
  randombytes_buf(&bits, sizeof bits);
  const double u = (static_cast<double>(bits >> 12) + 0.5) / 4503599627370496.0 - 0.5;
  // Inverse CDF of the Laplace distribution (its sign is immaterial).
  const double laplace = scale * std::copysign(std::log1p(-2.0 * std::fabs(u)), u);
  const int64_t drawn = base + static_cast<int64_t>(std::llround(laplace));
  return std::clamp(drawn, base / 4, base * 7 / 4);
}

int64_t NoisyRefillBound(int64_t base, int page_size) {
  return NoisyBound(std::max<int64_t>(base, int64_t{64} * page_size));
}

}  // namespace phivault::api
