// SPDX-License-Identifier: MIT
// fakequant/kernels/fixed_point.hpp: requantization of int32 accumulators in fixed point.
//
// A real multiplier M > 0 (e.g. s_in * s_w / s_out) is stored as an int32 mantissa m in
// [2^30, 2^31) and an exponent: M ~= m * 2^(shift - 31), |M - m * 2^(shift-31)| <= M * 2^-31.
// quantize_multiplier() computes it as TFLite's QuantizeMultiplier: frexp, then the mantissa
// rounded (half away) to 31 bits, renormalised if it rounds up to 2^31.
//
// Double rounding (gemmlowp / TFLite MultiplyByQuantizedMultiplier), for x in int32:
//   SaturatingRoundingDoublingHighMul(a, b) = round_half_up(a * b / 2^31)
//     (the high word of the doubled 64-bit product; a = b = INT32_MIN, whose result 2^31
//      does not fit, saturates to INT32_MAX). gemmlowp writes it as (a*b + nudge) / 2^31 with
//      nudge = 2^30 for a*b >= 0 and 1 - 2^30 otherwise and truncating division; that is
//      floor(a*b / 2^31 + 1/2) for both signs.
//   RoundingDivideByPOT(x, e) = round_half_away_from_zero(x / 2^e),   e in [0, 31].
//   y = RoundingDivideByPOT(SRDHM(x * 2^max(shift,0), m), max(-shift, 0))
// Two roundings: the result is within 1 of round(x * M) but differs from it on some ties
// and near-ties. (TFLite wraps on an overflowing left shift; here x * 2^shift saturates.)
//
// Single rounding: the exact product p = x * m (|p| < 2^62, exact in int64) shifted right by
// 31 - shift once, rounded by a Rounding policy of policy/rounding.hpp:
//   RoundHalfEven (default: as fake-quant's round-half-to-even), RoundHalfUp, RoundHalfAway,
//   RoundFloor;   y = saturate_int32(round(p / 2^(31 - shift))).
// It equals the exactly rounded x * (m * 2^(shift-31)), bit for bit (tested against a long
// double reference).
// Range: every function here takes a QuantizedMultiplier with multiplier >= 0 and shift in
// [-31, 31] (what quantize_multiplier returns). Outside it the shifts are undefined in C++
// and the vector epilogues (requant_avx2/avx512.hpp) compute something else, so the public
// entry points that take multipliers (gemm_requant's Requantize stage, linear_u8, conv2d_u8,
// the integer evaluation) refuse them with detail::check_quantized_multiplier, once per call;
// the element functions below do not check (they run per element).
#ifndef FQ_KERNELS_FIXED_POINT_HPP_
#define FQ_KERNELS_FIXED_POINT_HPP_

#include <cmath>        // frexp, isfinite, round
#include <cstdint>      // int32_t, int64_t
#include <limits>       // numeric_limits
#include <type_traits>  // is_same

#include <fakequant/base/error.hpp>
#include <fakequant/policy/rounding.hpp>

namespace fq {

/// M ~= multiplier * 2^(shift - 31), multiplier in [2^30, 2^31) (or 0 for M < 2^-32).
struct QuantizedMultiplier {
  std::int32_t multiplier;
  int shift;  ///< in [-31, 31]
};

/// TFLite's QuantizeMultiplier for a real multiplier in (0, 2^31). Multipliers below 2^-32
/// give {0, 0} (everything requantizes to 0), as TFLite.
inline QuantizedMultiplier quantize_multiplier(double real) {
  FQ_CHECK(std::isfinite(real) && real > 0.0 && real < 2147483648.0, ErrorCode::kInvalidScale,
           detail::msg("quantize_multiplier: the multiplier must be finite and in (0, 2^31), got ",
                       real));
  int shift = 0;
  const double q = std::frexp(real, &shift);  // real = q * 2^shift, q in [0.5, 1)
  auto q_fixed = static_cast<std::int64_t>(std::round(q * 2147483648.0));
  if (q_fixed == (std::int64_t{1} << 31)) {
    q_fixed /= 2;
    ++shift;
  }
  if (shift < -31) return {0, 0};
  return {static_cast<std::int32_t>(q_fixed), shift};
}

namespace detail {
/// Refuses a multiplier outside the documented range (file comment): ErrorCode::kInvalidArgument.
inline void check_quantized_multiplier(QuantizedMultiplier qm, std::int64_t index,
                                       const char* where) {
  FQ_CHECK(
      qm.multiplier >= 0 && qm.shift >= -31 && qm.shift <= 31, ErrorCode::kInvalidArgument,
      msg(where, ": requantization multiplier ", index, " = {", qm.multiplier, ", shift ", qm.shift,
          "} is outside the supported range (multiplier >= 0, shift in [-31, 31]; "
          "use quantize_multiplier)"));
}
/// check_quantized_multiplier for `count` multipliers (a null array is an error if count > 0).
inline void check_quantized_multipliers(const QuantizedMultiplier* qm, std::int64_t count,
                                        const char* where) {
  FQ_CHECK(count <= 0 || qm != nullptr, ErrorCode::kInvalidArgument,
           msg(where, ": null requantization multipliers"));
  for (std::int64_t i = 0; i < count; ++i) check_quantized_multiplier(qm[i], i, where);
}
}  // namespace detail

/// The real value m * 2^(shift - 31) a QuantizedMultiplier stands for.
inline double real_multiplier(QuantizedMultiplier qm) noexcept {
  return std::ldexp(static_cast<double>(qm.multiplier), qm.shift - 31);
}

namespace detail {
inline std::int32_t saturate_int32(std::int64_t v) noexcept {
  constexpr std::int64_t lo = std::numeric_limits<std::int32_t>::min();
  constexpr std::int64_t hi = std::numeric_limits<std::int32_t>::max();
  return static_cast<std::int32_t>(v < lo ? lo : (v > hi ? hi : v));
}
}  // namespace detail

/// gemmlowp's SaturatingRoundingDoublingHighMul: round_half_up(a * b / 2^31), saturated.
inline std::int32_t saturating_rounding_doubling_high_mul(std::int32_t a, std::int32_t b) noexcept {
  if (a == b && a == std::numeric_limits<std::int32_t>::min())
    return std::numeric_limits<std::int32_t>::max();
  const std::int64_t ab = std::int64_t{a} * std::int64_t{b};
  const std::int64_t nudge = ab >= 0 ? (std::int64_t{1} << 30) : 1 - (std::int64_t{1} << 30);
  return static_cast<std::int32_t>((ab + nudge) / (std::int64_t{1} << 31));
}

/// gemmlowp's RoundingDivideByPOT: round_half_away_from_zero(x / 2^exponent), exponent 0..31.
inline std::int32_t rounding_divide_by_pot(std::int32_t x, int exponent) noexcept {
  const auto mask = static_cast<std::int32_t>((std::int64_t{1} << exponent) - 1);
  const std::int32_t remainder = x & mask;
  const std::int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/// TFLite's MultiplyByQuantizedMultiplier (double rounding; see the file comment).
inline std::int32_t multiply_by_quantized_multiplier(std::int32_t x,
                                                     QuantizedMultiplier qm) noexcept {
  const int left = qm.shift > 0 ? qm.shift : 0;
  const int right = qm.shift > 0 ? 0 : -qm.shift;
  const std::int32_t xs = detail::saturate_int32(std::int64_t{x} * (std::int64_t{1} << left));
  return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(xs, qm.multiplier), right);
}

/// Single rounding: saturate_int32(Rounding(x * m / 2^(31 - shift))) from the exact product.
template <class Rounding = RoundHalfEven>
inline std::int32_t multiply_by_quantized_multiplier_single(std::int32_t x,
                                                            QuantizedMultiplier qm) noexcept {
  static_assert(is_rounding<Rounding>::value,
                "multiply_by_quantized_multiplier_single: Rounding must be RoundHalfEven, "
                "RoundHalfAway, RoundHalfUp or RoundFloor.");
  const std::int64_t p = std::int64_t{x} * std::int64_t{qm.multiplier};
  const int total = 31 - qm.shift;  // in [0, 62]
  if (total <= 0) return detail::saturate_int32(p);
  const std::int64_t q = p >> total;                              // floor (arithmetic shift)
  const std::int64_t rem = p & ((std::int64_t{1} << total) - 1);  // p - q * 2^total, >= 0
  const std::int64_t half = std::int64_t{1} << (total - 1);
  bool up = false;
  if constexpr (std::is_same<Rounding, RoundHalfEven>::value)
    up = rem > half || (rem == half && (q & 1) != 0);
  else if constexpr (std::is_same<Rounding, RoundHalfUp>::value)
    up = rem >= half;
  else if constexpr (std::is_same<Rounding, RoundHalfAway>::value)
    up = rem > half || (rem == half && q >= 0);
  return detail::saturate_int32(q + (up ? 1 : 0));
}

/// Requantization policies for the output stages: which of the two functions above runs.
struct DoubleRounding {
  static std::int32_t apply(std::int32_t x, QuantizedMultiplier qm) noexcept {
    return multiply_by_quantized_multiplier(x, qm);
  }
};
template <class Rounding = RoundHalfEven>
struct SingleRounding {
  static std::int32_t apply(std::int32_t x, QuantizedMultiplier qm) noexcept {
    return multiply_by_quantized_multiplier_single<Rounding>(x, qm);
  }
};

template <class R>
struct is_requant_rounding : std::false_type {};
template <>
struct is_requant_rounding<DoubleRounding> : std::true_type {};
template <class Rounding>
struct is_requant_rounding<SingleRounding<Rounding>> : std::true_type {};

}  // namespace fq

#endif  // FQ_KERNELS_FIXED_POINT_HPP_
