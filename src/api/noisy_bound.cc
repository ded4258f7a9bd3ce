#include "api/noisy_bound.h"

#include <sodium.h>

#include <algorithm>
#include <cmath>

namespace phivault::api {

int64_t NoisyBound(int64_t base) {
  if (base < 20) return base;
  const double scale = static_cast<double>(base) / 20.0;
  // u uniform in (-1/2, 1/2), never an endpoint: 53 random bits, offset by
  // half a step. A generator the caller cannot predict: with a known
  // sequence the noise would subtract out.
  uint64_t bits = 0;
  randombytes_buf(&bits, sizeof bits);
  const double u = (static_cast<double>(bits >> 11) + 0.5) / 9007199254740992.0 - 0.5;
  const double laplace = -scale * std::copysign(std::log1p(-2.0 * std::fabs(u)), u);
  const double clamp = 15.0 * scale;
  const double bounded = std::clamp(laplace, -clamp, clamp);
  return base + static_cast<int64_t>(std::llround(bounded));
}

}  // namespace phivault::api
