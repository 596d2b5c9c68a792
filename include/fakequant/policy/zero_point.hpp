// SPDX-License-Identifier: MIT
// fakequant/policy/zero_point.hpp: integer zero point added after rounding, or a float one
// added before.
//
//   IntegerZeroPoint q = round(x / s) + z, z an integer in [quant_min, quant_max]
//                    (ATen's int zero point; TFLite; ONNX). The default.
//   FloatZeroPoint   q = round(x / s + z), z any finite float, no range check; the output
//                    (clamp(q) - z) * s is computed in double and rounded once to the tensor
//                    type (ATen's per-channel kernel with a float zero_point; pin P6).
#ifndef FQ_POLICY_ZERO_POINT_HPP_
#define FQ_POLICY_ZERO_POINT_HPP_

#include <cstdint>      // int32_t
#include <type_traits>  // false_type, true_type

namespace fq {

/// z is an int32 added after rounding.
struct IntegerZeroPoint {
  using type = std::int32_t;
};
/// z is a float added before rounding.
struct FloatZeroPoint {
  using type = float;
};

template <class Z>
struct is_zero_point_policy : std::false_type {};
template <>
struct is_zero_point_policy<IntegerZeroPoint> : std::true_type {};
template <>
struct is_zero_point_policy<FloatZeroPoint> : std::true_type {};

}  // namespace fq

#endif  // FQ_POLICY_ZERO_POINT_HPP_
