#include "api/noisy_bound.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <map>

namespace phivault::api {
namespace {

// The draws follow a Laplace distribution with scale base / 20 around the
// base, within the documented clamp. The bands below are many standard
// errors wide (20,000 draws), so the test does not flake.
TEST(NoisyBound, DrawsAreLaplaceAroundTheBaseWithinTheClamp) {
  constexpr int64_t kBase = 20000;
  constexpr double kScale = kBase / 20.0;
  constexpr int kDraws = 20000;
  double sum = 0;
  int within_one_scale = 0, above = 0;
  std::map<int64_t, int> seen;
  for (int i = 0; i < kDraws; ++i) {
    const int64_t v = NoisyBound(kBase);
    ASSERT_GE(v, kBase / 4);
    ASSERT_LE(v, kBase * 7 / 4);
    sum += static_cast<double>(v);
    within_one_scale += std::abs(static_cast<double>(v - kBase)) <= kScale;
    above += v > kBase;
    ++seen[v];
  }
  // Mean: standard error sqrt(2) * scale / sqrt(draws), about 10.
  EXPECT_NEAR(sum / kDraws, static_cast<double>(kBase), 80.0);
  // P(|X| <= b) = 1 - 1/e = 0.632 for a Laplace variable of scale b.
  EXPECT_NEAR(static_cast<double>(within_one_scale) / kDraws, 0.632, 0.03);
  EXPECT_NEAR(static_cast<double>(above) / kDraws, 0.5, 0.03);
  // Spread over many values, none of them favoured.
  EXPECT_GT(seen.size(), 2000u);
  for (const auto& [value, times] : seen) EXPECT_LT(times, 100) << value;
}

TEST(NoisyBound, ASmallBaseIsReturnedAsIs) {
  EXPECT_EQ(NoisyBound(0), 0);
  EXPECT_EQ(NoisyBound(19), 19);
  for (int i = 0; i < 1000; ++i) {
    const int64_t v = NoisyBound(20);
    EXPECT_GE(v, 5);
    EXPECT_LE(v, 35);
  }
}

}  // namespace
}  // namespace phivault::api
