// SPDX-License-Identifier: MIT
// fakequant/scheme/numerics.hpp: the element-wise fake-quant formula — the scalar reference.
//
// For one element, with scale s > 0, zero point z and range [qmin, qmax]:
//   v  = x * f32(1/s)        (MulByInverse, default)   or   x / s   (DivideByScale)
//   IntegerZeroPoint:  q = round(v) + z
//   FloatZeroPoint:    q = round(fma(x, f32(1/s), z))  (ZeroPointFma, default: one rounding)
//                      q = round(f32(v) + z)           (ZeroPointNoFma: two roundings)
//   mask = qmin <= q <= qmax                           (tested on the rounded level)
//   c  = clamp(q, qmin, qmax), with NaN/Inf/overflow mapped per the Overflow policy
//   y  = (c - z) * s                                   (never -0.0, as ATen's int64 level)
// All arithmetic is in the tensor type T with s first narrowed to float32, as ATen: float
// tensors compute in float (each product of an exact integer and a float is exact in
// double, so this equals ATen's double-then-float path); the float-zero-point output is
// computed in double and rounded once. The SIMD kernels perform exactly these operations.
//
// Float tensors take this path when every level and every difference of two levels is exact
// in float32 (float_exact_range: |q| <= 2^24 and quant_max - quant_min <= 2^24, every range up
// to 16 bits). Wider int32 ranges take fake_quant_element_wide: q as above (in float, as
// ATen), then ATen's exact int64 clamp and mask and y = f32(double(c - z) * s). Double
// tensors are exact for every int32 range on this path (z is held exactly).
#ifndef FQ_SCHEME_NUMERICS_HPP_
#define FQ_SCHEME_NUMERICS_HPP_

#include <algorithm>    // min, max
#include <cmath>        // isnan, fma
#include <type_traits>  // is_same

#include <fakequant/base/config.hpp>
#include <fakequant/policy/overflow.hpp>
#include <fakequant/policy/rounding.hpp>
#include <fakequant/policy/scale_apply.hpp>
#include <fakequant/policy/zero_point.hpp>
#include <fakequant/scheme/range.hpp>

namespace fq {

/// The numerics knobs of the element formula, bundled for the low-level functions.
template <class Rounding = RoundHalfEven, class ScaleApply = MulByInverse,
          class Overflow = OverflowToQmin, class ZeroPointAdd = ZeroPointFma>
struct Numerics {
  static_assert(is_rounding<Rounding>::value,
                "Numerics: Rounding must be RoundHalfEven, RoundHalfAway, RoundHalfUp or "
                "RoundFloor.");
  static_assert(is_scale_apply<ScaleApply>::value,
                "Numerics: ScaleApply must be MulByInverse or DivideByScale.");
  static_assert(is_overflow<Overflow>::value,
                "Numerics: Overflow must be OverflowToQmin or OverflowSaturate.");
  static_assert(is_zero_point_add<ZeroPointAdd>::value,
                "Numerics: ZeroPointAdd must be ZeroPointFma or ZeroPointNoFma.");
  using rounding = Rounding;
  using scale_apply = ScaleApply;
  using overflow = Overflow;
  using zero_point_add = ZeroPointAdd;
};

/// PyTorch 1.13's fake_quantize_* numerics: ties to even, x * f32(1/s), overflow to qmin, and
/// a float zero point added with one rounding (ATen's AVX2 / AVX-512 kernels, the x86 default).
using TorchNumerics = Numerics<>;
/// As TorchNumerics, with a float zero point added to the rounded product: ATen's scalar
/// kernel (ATEN_CPU_CAPABILITY=default). Integer zero points give the same results.
using TorchNumericsNoFma = Numerics<RoundHalfEven, MulByInverse, OverflowToQmin, ZeroPointNoFma>;

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

/// The constants of one (scale, zero point) pair. `zero` is an int32 or float zero point,
/// held exactly for double tensors and rounded to float for float tensors (as ATen's
/// `z + nearbyint(x * inv)`, an int64 + float sum; exact for every float-exact range).
template <class N, class T>
inline ElementParams<T> make_element_params(float scale, double zero,
                                            const QuantRange& r) noexcept {
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

/// dy * m for a mask bit m — ATen's dY * mask, the one straight-through rule of every
/// backward (fake_quantize_backward, the tape's fake-quant node, LSQ's dx) — as a real
/// multiplication by 1.0 or 0.0: a NaN gradient stays NaN, quieted (as by every IEEE
/// arithmetic operation) also where m = 1; +-Inf * 0 is NaN; a masked -g gives -0. The factor
/// is hidden from the optimiser, which would otherwise fold dy * 1 into dy and leave a
/// signaling NaN unquieted on one path but not another.
template <class T>
FQ_INLINE T mask_multiply(T dy, bool bit) noexcept {
  return dy * no_contract(bit ? T(1) : T(0));
}

/// The rounded level of a float zero point: round(fma(x, mult, z)) (ZeroPointFma with
/// MulByInverse) or round(f32(x * mult) + z) (ZeroPointNoFma; DivideByScale: x / s + z).
template <class N, class T>
FQ_INLINE T float_zp_level(T x, T mult, T zero) noexcept {
  if constexpr (N::zero_point_add::kFused &&
                std::is_same<typename N::scale_apply, MulByInverse>::value)
    return N::rounding::apply(std::fma(x, mult, zero));
  else
    return N::rounding::apply(no_contract(apply_scale<N>(x, mult)) + zero);
}

/// One element with a float zero point added before rounding; output computed in double.
/// `+ 0.0` turns a level of -0 (x * f32(1/s) + z in [-0.5, 0)) into +0, as ATen's int64 level:
/// y is never -0.
template <class N, class T>
FQ_INLINE T fake_quant_element_float_zp(T x, const ElementParams<T>& p, bool& in_range) noexcept {
  const T q = float_zp_level<N>(x, p.mult, p.zero);
  in_range = (q >= p.qmin) && (q <= p.qmax);
  const double c = static_cast<double>(clamp_level<N>(q, p.qmin, p.qmax)) + 0.0;
  return static_cast<T>((c - static_cast<double>(p.zero)) * static_cast<double>(p.scale));
}

/// The constants of a float tensor's element on a range that is not float-exact: the level
/// is formed in float as on the fast path (z rounded to float, as ATen's int64 + float sum),
/// while the clamp, the mask and c - z use the exact range and zero point, as ATen's int64
/// arithmetic.
struct WideParams {
  float mult;     ///< f32(1/s) or s
  float scale;    ///< s
  float zero;     ///< z as float (in the level)
  double zero_d;  ///< z exactly (in c - z)
  double qmin, qmax;
};

template <class N>
inline WideParams make_wide_params(float scale, double zero, const QuantRange& r) noexcept {
  const float mult =
      std::is_same<typename N::scale_apply, MulByInverse>::value ? 1.0f / scale : scale;
  return WideParams{mult,
                    scale,
                    static_cast<float>(zero),
                    zero,
                    static_cast<double>(r.quant_min),
                    static_cast<double>(r.quant_max)};
}

/// One float element on a wide range (any int32 range), bit for bit ATen 1.13's float kernel:
///   q = round(v) + f32(z)  or the float-zero-point level, in float
///   mask = qmin <= int64(q) <= qmax;  c = clamp(int64(q), qmin, qmax)  (NaN, |q| >= 2^63 per
///   the Overflow policy);  y = f32(double(c - z) * double(s))  (ATen computes the product in
///   double and stores float: two roundings, as here)
template <class N, bool FloatZp>
FQ_INLINE float fake_quant_element_wide(float x, const WideParams& p, bool& in_range) noexcept {
  float q;
  if constexpr (FloatZp)
    q = float_zp_level<N>(x, p.mult, p.zero);
  else
    q = N::rounding::apply(apply_scale<N>(x, p.mult)) + p.zero;
  const double qd = static_cast<double>(q);
  in_range = (qd >= p.qmin) && (qd <= p.qmax);
  double c = std::min(std::max(qd, p.qmin), p.qmax);
  if constexpr (kSaturates<N, float>)
    c = std::isnan(qd) ? p.qmin : c;
  else
    c = qd < kInt64Limit<double> ? c : p.qmin;  // false for NaN and >= 2^63
  return static_cast<float>(((c + 0.0) - p.zero_d) * static_cast<double>(p.scale));
}

}  // namespace detail
}  // namespace fq

#endif  // FQ_SCHEME_NUMERICS_HPP_
