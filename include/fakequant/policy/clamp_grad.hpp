// SPDX-License-Identifier: MIT
// fakequant/policy/clamp_grad.hpp: the straight-through estimator's rule at the clamp.
//
//   MaskedSte      dx = dy * [quant_min <= q <= quant_max], q the rounded level: zero
//                  gradient where the forward clamped (PyTorch, Brevitas' where-clamp). Default.
//   PassThroughSte dx = dy everywhere (Brevitas' TensorClampSte, Bengio et al.'s plain STE).
#ifndef FQ_POLICY_CLAMP_GRAD_HPP_
#define FQ_POLICY_CLAMP_GRAD_HPP_

#include <type_traits>  // false_type, true_type

namespace fq {

/// Gradient masked to zero where the forward clamped.
struct MaskedSte {
  static constexpr bool kPassThrough = false;
};
/// Gradient passed through the clamp unchanged.
struct PassThroughSte {
  static constexpr bool kPassThrough = true;
};

template <class C>
struct is_clamp_grad : std::false_type {};
template <>
struct is_clamp_grad<MaskedSte> : std::true_type {};
template <>
struct is_clamp_grad<PassThroughSte> : std::true_type {};

}  // namespace fq

#endif  // FQ_POLICY_CLAMP_GRAD_HPP_
