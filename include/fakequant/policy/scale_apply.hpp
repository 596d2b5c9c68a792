// SPDX-License-Identifier: MIT
// fakequant/policy/scale_apply.hpp: how x is brought onto the integer grid.
//
//   MulByInverse  v = x * f32(1 / s), the inverse computed once in float32 (PyTorch's ATen
//                 kernels; for double tensors the product is taken in double with the
//                 float32 inverse, as ATen). The default.
//   DivideByScale v = x / s (ONNX QuantizeLinear, Brevitas, TensorFlow's *_vars op).
// The two differ by one level on a few inputs per thousand (pin P2 in docs/numerics.md).
#ifndef FQ_POLICY_SCALE_APPLY_HPP_
#define FQ_POLICY_SCALE_APPLY_HPP_

#include <type_traits>  // false_type, true_type

namespace fq {

/// v = x * (1.0f / s): PyTorch.
struct MulByInverse {};
/// v = x / s: ONNX, Brevitas.
struct DivideByScale {};

template <class S>
struct is_scale_apply : std::false_type {};
template <>
struct is_scale_apply<MulByInverse> : std::true_type {};
template <>
struct is_scale_apply<DivideByScale> : std::true_type {};

}  // namespace fq

#endif  // FQ_POLICY_SCALE_APPLY_HPP_
