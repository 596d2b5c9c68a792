// SPDX-License-Identifier: MIT
// fakequant/core/numerics.hpp: the element-wise fake-quant formula — the scalar reference.
//
// For one element, with scale s > 0, zero point z and range [qmin, qmax]:
//   v  = x * f32(1/s)        (MulByInverse, default)   or   x / s   (DivideByScale)
//   IntegerZeroPoint:  q = round(v) + z                FloatZeroPoint:  q = round(v + z)
//   mask = qmin <= q <= qmax                           (tested on the rounded level)
//   c  = clamp(q, qmin, qmax), with NaN/Inf/overflow mapped per the Overflow policy
//   y  = (c - z) * s                                   (never -0.0: c - z = +0 when equal)
// All arithmetic is in the tensor type T with s and z first narrowed to float32, as ATen:
// float tensors compute in float (each product of an exact integer and a float is exact in
// double, so this equals ATen's double-then-float path); the float-zero-point output is
// computed in double and rounded once. The SIMD kernels perform exactly these operations.
#ifndef FQ_CORE_NUMERICS_HPP_
#define FQ_CORE_NUMERICS_HPP_

#include <algorithm>    // min, max
#include <cmath>        // isnan
#include <type_traits>  // is_same

#include <fakequant/core/range.hpp>
#include <fakequant/policy/overflow.hpp>
#include <fakequant/policy/rounding.hpp>
#include <fakequant/policy/scale_apply.hpp>

namespace fq {

/// The numerics knobs of the element formula, bundled for the low-level functions.
template <class Rounding = RoundHalfEven, class ScaleApply = MulByInverse,
          class Overflow = OverflowToQmin>
struct Numerics {
  static_assert(is_rounding<Rounding>::value,
                "Numerics: Rounding must be RoundHalfEven, RoundHalfAway, RoundHalfUp or "
                "RoundFloor.");
  static_assert(is_scale_apply<ScaleApply>::value,
                "Numerics: ScaleApply must be MulByInverse or DivideByScale.");
  static_assert(is_overflow<Overflow>::value,
                "Numerics: Overflow must be OverflowToQmin or OverflowSaturate.");
  using rounding = Rounding;
  using scale_apply = ScaleApply;
  using overflow = Overflow;
};

/// PyTorch 1.13's fake_quantize_* numerics: ties to even, x * f32(1/s), overflow to qmin.
using TorchNumerics = Numerics<>;

namespace detail {

/// 2^63: where ATen's float -> int64 conversion overflows.
template <class T>
inline constexpr T kInt64Limit = T(9223372036854775808.0);

/// The per-channel constants of the element formula, in the tensor type T.
template <class T>
struct ElementParams {
  T mult;   ///< f32(1/s) for MulByInverse, s for DivideByScale
  T scale;  ///< s
  T zero;   ///< z
  T qmin;
  T qmax;
};

template <class N, class T>
inline ElementParams<T> make_element_params(float scale, float zero, const QuantRange& r) noexcept {
  const float mult =
      std::is_same<typename N::scale_apply, MulByInverse>::value ? 1.0f / scale : scale;
  return ElementParams<T>{T(mult), T(scale), T(zero), T(r.quant_min), T(r.quant_max)};
}

/// v = x * f32(1/s) or x / s.
template <class N, class T>
FQ_INLINE T apply_scale(T x, T mult) noexcept {
  if constexpr (std::is_same<typename N::scale_apply, MulByInverse>::value)
    return x * mult;
  else
    return x / mult;
}

/// True if the Overflow policy saturates for tensors of type T: OverflowSaturate always;
/// OverflowToQmin only for double, because PyTorch 1.13's float64 kernel clamps before its
/// int64 cast (+Inf -> quant_max) while its float32 kernel does not (+Inf -> quant_min).
template <class N, class T>
inline constexpr bool kSaturates = N::overflow::kSaturate || std::is_same<T, double>::value;

/// The clamped level c of a rounded level q, NaN/overflow mapped per the Overflow policy.
template <class N, class T>
FQ_INLINE T clamp_level(T q, T qmin, T qmax) noexcept {
  const T c = std::min(std::max(q, qmin), qmax);
  if constexpr (kSaturates<N, T>)
    return std::isnan(q) ? qmin : c;
  else
    return q < kInt64Limit<T> ? c : qmin;  // false for NaN and >= 2^63
}

/// One element with an integer zero point; `in_range` receives the mask bit.
template <class N, class T>
FQ_INLINE T fake_quant_element(T x, const ElementParams<T>& p, bool& in_range) noexcept {
  const T q = N::rounding::apply(apply_scale<N>(x, p.mult)) + p.zero;
  in_range = (q >= p.qmin) && (q <= p.qmax);
  return (clamp_level<N>(q, p.qmin, p.qmax) - p.zero) * p.scale;
}

/// One element with a float zero point added before rounding; output computed in double.
template <class N, class T>
FQ_INLINE T fake_quant_element_float_zp(T x, const ElementParams<T>& p, bool& in_range) noexcept {
  const T q = N::rounding::apply(no_contract(apply_scale<N>(x, p.mult)) + p.zero);
  in_range = (q >= p.qmin) && (q <= p.qmax);
  const double c = static_cast<double>(clamp_level<N>(q, p.qmin, p.qmax));
  return static_cast<T>((c - static_cast<double>(p.zero)) * static_cast<double>(p.scale));
}

}  // namespace detail
}  // namespace fq

#endif  // FQ_CORE_NUMERICS_HPP_
