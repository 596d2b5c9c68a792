// SPDX-License-Identifier: MIT
// fakequant/policy/rounding.hpp: how x / s is rounded to an integer level.
//
//   RoundHalfEven  ties to even (std::nearbyint in the default FP environment): PyTorch,
//                  ONNX, Brevitas, NVIDIA. The default.            2.5 -> 2, -2.5 -> -2
//   RoundHalfAway  ties away from zero (std::round): TFLite's quantize, TF's nudge.
//                                                                  2.5 -> 3, -2.5 -> -3
//   RoundHalfUp    floor(v + 0.5), as TensorFlow's fake_quant ops: 2.5 -> 3, -2.5 -> -2
//                  (computed exactly so: v + 0.5 is rounded to float before the floor, and
//                  never fused with the preceding multiply)
//   RoundFloor     floor(v).                                       2.5 -> 2, -2.5 -> -3
#ifndef FQ_POLICY_ROUNDING_HPP_
#define FQ_POLICY_ROUNDING_HPP_

#include <cmath>        // nearbyint, round, floor
#include <type_traits>  // false_type, true_type

namespace fq {

namespace detail {
/// Keeps the compiler from contracting a multiply into a following add (an FMA would round
/// once where the reference semantics round twice).
template <class T>
inline T no_contract(T v) noexcept {
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
  __asm__("" : "+x"(v));
#elif defined(__GNUC__) || defined(__clang__)
  __asm__("" : "+r"(v));
#endif
  return v;
}
}  // namespace detail

/// Ties to even. The default, as PyTorch and ONNX.
struct RoundHalfEven {
  template <class T>
  static T apply(T v) noexcept {
    return std::nearbyint(v);
  }
};
/// Ties away from zero (std::round).
struct RoundHalfAway {
  template <class T>
  static T apply(T v) noexcept {
    return std::round(v);
  }
};
/// floor(v + 0.5): ties toward +infinity, as TensorFlow's fake_quant kernels.
struct RoundHalfUp {
  template <class T>
  static T apply(T v) noexcept {
    return std::floor(detail::no_contract(v) + T(0.5));
  }
};
/// floor(v).
struct RoundFloor {
  template <class T>
  static T apply(T v) noexcept {
    return std::floor(v);
  }
};

template <class R>
struct is_rounding : std::false_type {};
template <>
struct is_rounding<RoundHalfEven> : std::true_type {};
template <>
struct is_rounding<RoundHalfAway> : std::true_type {};
template <>
struct is_rounding<RoundHalfUp> : std::true_type {};
template <>
struct is_rounding<RoundFloor> : std::true_type {};

}  // namespace fq

#endif  // FQ_POLICY_ROUNDING_HPP_
