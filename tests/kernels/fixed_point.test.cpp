// SPDX-License-Identifier: MIT
// Fixed-point requantization against exact references computed in long double (x86: 64-bit
// significand, so x * m < 2^62 and the shifts are exact): single rounding is bit-exact to
// the exactly rounded product; double rounding equals an independent evaluation of gemmlowp's
// formula and is within 1 of the exactly rounded x * M.
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>

#include <fakequant/kernels/fixed_point.hpp>

#include "catch.hpp"

namespace {

constexpr std::int32_t kMin = std::numeric_limits<std::int32_t>::min();
constexpr std::int32_t kMax = std::numeric_limits<std::int32_t>::max();

long double sat(long double v) {
  return v < kMin ? (long double)kMin : (v > kMax ? (long double)kMax : v);
}

// Exact p = x * m / 2^(31 - shift) as long double.
long double exact_scaled(std::int32_t x, fq::QuantizedMultiplier qm) {
  return std::ldexp(static_cast<long double>(x) * static_cast<long double>(qm.multiplier),
                    qm.shift - 31);
}

template <class R>
std::int32_t single_ref(std::int32_t x, fq::QuantizedMultiplier qm) {
  const long double v = exact_scaled(x, qm);
  long double r;
  if constexpr (std::is_same<R, fq::RoundHalfEven>::value)
    r = std::nearbyint(v);  // default rounding mode: ties to even
  else if constexpr (std::is_same<R, fq::RoundHalfUp>::value)
    r = std::floor(v + 0.5L);
  else if constexpr (std::is_same<R, fq::RoundHalfAway>::value)
    r = std::round(v);
  else
    r = std::floor(v);
  return static_cast<std::int32_t>(sat(r));
}

// gemmlowp's formula: round_half_up(x' * m / 2^31) then round_half_away(/ 2^right).
std::int32_t double_ref(std::int32_t x, fq::QuantizedMultiplier qm) {
  const int left = qm.shift > 0 ? qm.shift : 0, right = qm.shift > 0 ? 0 : -qm.shift;
  const long double xs = sat(std::ldexp(static_cast<long double>(x), left));
  long double h = std::floor(std::ldexp(xs * qm.multiplier, -31) + 0.5L);
  h = sat(h);  // only INT32_MIN * INT32_MIN, impossible with m >= 0
  return static_cast<std::int32_t>(std::round(std::ldexp(h, -right)));
}

std::int32_t random_x(std::mt19937& rng) {
  switch (rng() % 4) {
    case 0:
      return static_cast<std::int32_t>(rng() % 2001) - 1000;
    case 1:
      return static_cast<std::int32_t>(static_cast<int>(rng() % 2000001) - 1000000);
    default:
      return static_cast<std::int32_t>(rng());
  }
}

}  // namespace

TEST_CASE("fixed_point: quantize_multiplier", "[kernels]") {
  std::mt19937 rng(1);
  std::uniform_real_distribution<double> e(-30.0, 30.0);
  for (int i = 0; i < 2000; ++i) {
    const double real = std::pow(2.0, e(rng));
    const auto qm = fq::quantize_multiplier(real);
    REQUIRE(qm.multiplier >= (1 << 30));
    REQUIRE(qm.shift >= -31);
    REQUIRE(qm.shift <= 31);
    REQUIRE(std::abs(fq::real_multiplier(qm) - real) <= real * std::ldexp(1.0, -31));
  }
  REQUIRE(fq::quantize_multiplier(1.0).multiplier == (1 << 30));
  REQUIRE(fq::quantize_multiplier(1.0).shift == 1);
  // 1 - 2^-40 rounds up to 2^31: renormalised.
  const auto up = fq::quantize_multiplier(1.0 - std::ldexp(1.0, -40));
  REQUIRE(up.multiplier == (1 << 30));
  REQUIRE(up.shift == 1);
  REQUIRE(fq::quantize_multiplier(1e-12).multiplier == 0);
  for (double bad : {0.0, -1.0, std::nan(""), double(INFINITY), 4e9})
    REQUIRE_THROWS_AS(fq::quantize_multiplier(bad), fq::Error);
}

TEST_CASE("fixed_point: gemmlowp primitives", "[kernels][bit_exact]") {
  REQUIRE(fq::saturating_rounding_doubling_high_mul(kMin, kMin) == kMax);
  // +-0.5 rounds up (towards +inf): 2^30 * 2^30 / 2^31 * 2^-29 ... use a * b = +-2^30.
  REQUIRE(fq::saturating_rounding_doubling_high_mul(1 << 15, 1 << 15) == 1);
  REQUIRE(fq::saturating_rounding_doubling_high_mul(-(1 << 15), 1 << 15) == 0);
  REQUIRE(fq::saturating_rounding_doubling_high_mul(3 << 15, 1 << 15) == 2);      // 1.5 -> 2
  REQUIRE(fq::saturating_rounding_doubling_high_mul(-(3 << 15), 1 << 15) == -1);  // -1.5 -> -1
  REQUIRE(fq::rounding_divide_by_pot(5, 1) == 3);
  REQUIRE(fq::rounding_divide_by_pot(-5, 1) == -3);
  REQUIRE(fq::rounding_divide_by_pot(3, 1) == 2);
  REQUIRE(fq::rounding_divide_by_pot(-3, 1) == -2);
  REQUIRE(fq::rounding_divide_by_pot(-4, 1) == -2);
  REQUIRE(fq::rounding_divide_by_pot(kMin, 31) == -1);
  REQUIRE(fq::rounding_divide_by_pot(kMax, 31) == 1);
  REQUIRE(fq::rounding_divide_by_pot(7, 0) == 7);
}

TEST_CASE("fixed_point: single rounding is exact, double rounding follows gemmlowp",
          "[kernels][bit_exact]") {
  std::mt19937 rng(2);
  std::uniform_int_distribution<std::int32_t> md(1 << 30, kMax);
  std::uniform_int_distribution<int> sd(-31, 31);
  int double_off = 0;
  for (int i = 0; i < 200000; ++i) {
    // Multipliers with few significant bits and small shifts make exact ties frequent.
    std::int32_t m = md(rng);
    if (i % 3 == 0) m &= ~((1 << 24) - 1);
    const fq::QuantizedMultiplier qm{m, i % 2 ? sd(rng) : sd(rng) / 8};
    const std::int32_t x = random_x(rng);
    INFO("x " << x << " m " << qm.multiplier << " shift " << qm.shift);
    REQUIRE(fq::multiply_by_quantized_multiplier_single(x, qm) ==
            single_ref<fq::RoundHalfEven>(x, qm));
    REQUIRE(fq::multiply_by_quantized_multiplier_single<fq::RoundHalfUp>(x, qm) ==
            single_ref<fq::RoundHalfUp>(x, qm));
    REQUIRE(fq::multiply_by_quantized_multiplier_single<fq::RoundHalfAway>(x, qm) ==
            single_ref<fq::RoundHalfAway>(x, qm));
    REQUIRE(fq::multiply_by_quantized_multiplier_single<fq::RoundFloor>(x, qm) ==
            single_ref<fq::RoundFloor>(x, qm));
    const std::int32_t d = fq::multiply_by_quantized_multiplier(x, qm);
    REQUIRE(d == double_ref(x, qm));
    const long double exact = exact_scaled(x, qm);
    if (std::fabs(exact) < 2147483000.0L &&
        (qm.shift <= 0 || std::fabs(std::ldexp((long double)x, qm.shift)) < 2147483647.0L)) {
      const long double err = std::fabs(static_cast<long double>(d) - std::nearbyint(exact));
      REQUIRE(err <= 1.0L);
      double_off += err != 0.0L;
    }
  }
  // Double rounding really differs from single rounding somewhere (the test can fail).
  REQUIRE(double_off > 0);
}

TEST_CASE("fixed_point: saturation", "[kernels][bit_exact]") {
  const fq::QuantizedMultiplier big{kMax, 31};
  REQUIRE(fq::multiply_by_quantized_multiplier_single(kMax, big) == kMax);
  REQUIRE(fq::multiply_by_quantized_multiplier_single(kMin, big) == kMin);
  REQUIRE(fq::multiply_by_quantized_multiplier(kMax, big) == kMax - 1);  // (2^31-1)^2 / 2^31
  REQUIRE(fq::multiply_by_quantized_multiplier(kMin, big) == kMin + 1);  // SRDHM(kMin, m) > kMin
  REQUIRE(fq::multiply_by_quantized_multiplier_single(5, {0, 0}) == 0);
}
