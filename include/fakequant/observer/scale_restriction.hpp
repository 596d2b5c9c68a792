// SPDX-License-Identifier: MIT
// fakequant/observer/scale_restriction.hpp: restricting a scale to values hardware can apply,
// here powers of two (fixed-point / shift-only hardware: y = q << k or q >> k).
//
//   NoScaleRestriction  s' = s.
//   PowerOfTwoCeil      s' = 2^ceil(log2 s)   THE DEFAULT for calibrated qparams: s' >= s, so
//                       the range an observer chose is never clipped (with the zero point
//                       kept, [(qmin - z) s', (qmax - z) s'] contains [(qmin - z) s,
//                       (qmax - z) s] because that interval contains 0). Brevitas' PoT
//                       quantizers also ceil. Cost: up to 2x coarser steps.
//   PowerOfTwoRound     s' = 2^round(log2 s), ties (s = 2^(k+1/2), never a float) up: the
//                       nearest power of two in ratio terms (error <= sqrt(2)x either way).
//                       For learned scales (LSQ), where the range itself is being learned
//                       and an always-upward bias would only inflate it.
// Both are computed exactly from the float's exponent and significand (frexp; no log2 call,
// no libm rounding) and kept within [2^-126, 2^126] (normal, finite inverse).
// Gradient (STE through the rounding of the exponent e = log2 s): ds'/ds = s' / s.
// apply_scale_restriction() restricts observer qparams: the scale changes, the zero point is
// kept (a float zero point, in units of levels, scales with it).
#ifndef FQ_OBSERVER_SCALE_RESTRICTION_HPP_
#define FQ_OBSERVER_SCALE_RESTRICTION_HPP_

#include <cmath>        // frexp, ldexp
#include <cstdint>      // int64_t
#include <type_traits>  // false_type, true_type

#include <fakequant/core/checks.hpp>
#include <fakequant/scheme/qparams.hpp>

namespace fq {

/// The scale is used as it is.
struct NoScaleRestriction {
  static constexpr bool kRestricts = false;
  static float apply(float s) noexcept { return s; }
  /// ds'/ds.
  static float grad(float /*s*/, float /*restricted*/) noexcept { return 1.0f; }
};

namespace detail {
/// 2^k for the power-of-two policies: s = m 2^e with m in [0.5, 1); Ceil chooses ceil, else
/// round in the log domain (m >= sqrt(1/2) rounds up).
template <bool Ceil>
inline float power_of_two_scale(float s) noexcept {
  int e = 0;
  const float m = std::frexp(s, &e);  // s = m * 2^e
  int k = e;                          // log2 s in (e - 1, e]
  // Down to e - 1 when s is exactly 2^(e-1), or when rounding and log2 m < -1/2.
  if (m == 0.5f || (!Ceil && static_cast<double>(m) < 0.70710678118654752440)) k = e - 1;
  if (k < -126) k = -126;
  if (k > 126) k = 126;
  return std::ldexp(1.0f, k);
}
}  // namespace detail

/// s' = 2^ceil(log2 s): never smaller than s, so a calibrated range is not clipped.
struct PowerOfTwoCeil {
  static constexpr bool kRestricts = true;
  static float apply(float s) noexcept { return detail::power_of_two_scale<true>(s); }
  static float grad(float s, float restricted) noexcept { return restricted / s; }
};

/// s' = 2^round(log2 s): the nearest power of two in ratio terms (for learned scales).
struct PowerOfTwoRound {
  static constexpr bool kRestricts = true;
  static float apply(float s) noexcept { return detail::power_of_two_scale<false>(s); }
  static float grad(float s, float restricted) noexcept { return restricted / s; }
};

template <class R>
struct is_scale_restriction : std::false_type {};
template <>
struct is_scale_restriction<NoScaleRestriction> : std::true_type {};
template <>
struct is_scale_restriction<PowerOfTwoCeil> : std::true_type {};
template <>
struct is_scale_restriction<PowerOfTwoRound> : std::true_type {};

/// Observer qparams with the scale restricted by R (PowerOfTwoCeil by default); the zero
/// point is kept. The scale must be finite and > 0 (a clear error otherwise).
template <class R = PowerOfTwoCeil, class Z>
QParams<Z> apply_scale_restriction(const QParams<Z>& qp) {
  static_assert(is_scale_restriction<R>::value,
                "apply_scale_restriction: R must be NoScaleRestriction, PowerOfTwoCeil or "
                "PowerOfTwoRound.");
  detail::check_scale(qp.scale, "apply_scale_restriction");
  return QParams<Z>{R::apply(qp.scale), qp.zero_point};
}

/// Per-channel form: restricts `count` scales in place.
template <class R = PowerOfTwoCeil>
void apply_scale_restriction(float* scales, std::int64_t count) {
  static_assert(is_scale_restriction<R>::value,
                "apply_scale_restriction: R must be NoScaleRestriction, PowerOfTwoCeil or "
                "PowerOfTwoRound.");
  FQ_CHECK(count == 0 || scales != nullptr, ErrorCode::kInvalidArgument,
           "apply_scale_restriction: null scale array");
  for (std::int64_t c = 0; c < count; ++c)
    detail::check_scale(scales[c], "apply_scale_restriction");
  for (std::int64_t c = 0; c < count; ++c) scales[c] = R::apply(scales[c]);
}

}  // namespace fq

#endif  // FQ_OBSERVER_SCALE_RESTRICTION_HPP_
