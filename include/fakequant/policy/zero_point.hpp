// SPDX-License-Identifier: MIT
// fakequant/policy/zero_point.hpp: integer zero point added after rounding, or a float one
// added before — and, for a float one, whether x * f32(1/s) + z is rounded once or twice.
//
//   IntegerZeroPoint    q = round(x / s) + z, z an integer in [quant_min, quant_max]
//                       (ATen's int zero point; TFLite; ONNX). The default.
//   FloatZeroPoint      q = round(fma(x, f32(1/s), z)): z any finite float, no range check,
//                       added BEFORE rounding and with one rounding of x * f32(1/s) + z, as
//                       ATen's x86 kernels (AVX2 / AVX-512, the default dispatch: they are
//                       compiled with floating-point contraction). The output
//                       (clamp(q) - z) * s is computed in double and rounded once to the
//                       tensor type (ATen's per-channel kernel with a float zero_point; pin P6).
//   FloatZeroPointNoFma q = round(f32(x * f32(1/s)) + z): the product rounded first, as ATen's
//                       scalar kernel (ATEN_CPU_CAPABILITY=default). Otherwise as above.
// The two float forms differ only where x * f32(1/s) + z lies within an ulp of a .5
// boundary; there y, the mask and the gradient differ by one level. With DivideByScale there
// is no product to fuse: both compute round(f32(x / s) + z).
//
// The low-level functions (fake_quantize_per_tensor / _per_channel) take the choice in their
// Numerics (ZeroPointFma, ZeroPointNoFma; TorchNumerics and TorchNumericsNoFma in
// scheme/numerics.hpp), as LsqTorch and LsqTorchNoFma do for the learnable backward.
#ifndef FQ_POLICY_ZERO_POINT_HPP_
#define FQ_POLICY_ZERO_POINT_HPP_

#include <cstdint>      // int32_t
#include <type_traits>  // false_type, true_type

namespace fq {

/// A float zero point is added to x * f32(1/s) with one rounding (fused multiply-add):
/// ATen's AVX2 / AVX-512 kernels, the x86 default. The default.
struct ZeroPointFma {
  static constexpr bool kFused = true;
};
/// A float zero point is added to the rounded product f32(x * f32(1/s)): ATen's scalar
/// kernel (ATEN_CPU_CAPABILITY=default).
struct ZeroPointNoFma {
  static constexpr bool kFused = false;
};

template <class A>
struct is_zero_point_add : std::false_type {};
template <>
struct is_zero_point_add<ZeroPointFma> : std::true_type {};
template <>
struct is_zero_point_add<ZeroPointNoFma> : std::true_type {};

/// z is an int32 added after rounding.
struct IntegerZeroPoint {
  using type = std::int32_t;
  using add = ZeroPointFma;  ///< unused: an integer zero point is added after rounding
};
/// z is a float added before rounding, x * f32(1/s) + z rounded once (ATen's x86 default).
struct FloatZeroPoint {
  using type = float;
  using add = ZeroPointFma;
};
/// z is a float added before rounding to the rounded product (ATen's scalar kernel).
struct FloatZeroPointNoFma {
  using type = float;
  using add = ZeroPointNoFma;
};

template <class Z>
struct is_zero_point_policy : std::false_type {};
template <>
struct is_zero_point_policy<IntegerZeroPoint> : std::true_type {};
template <>
struct is_zero_point_policy<FloatZeroPoint> : std::true_type {};
template <>
struct is_zero_point_policy<FloatZeroPointNoFma> : std::true_type {};

}  // namespace fq

#endif  // FQ_POLICY_ZERO_POINT_HPP_
