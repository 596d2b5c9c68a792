// SPDX-License-Identifier: MIT
// fakequant/policy/overflow.hpp: levels of NaN, +-Inf and huge inputs.
//
// Let qf = round(x / s) + z (a float). Both policies clamp finite qf to [quant_min,
// quant_max] and set the mask to 0 outside it; they differ where PyTorch 1.13 converts qf to
// int64, which on x86 yields INT64_MIN for NaN and for |qf| >= 2^63:
//   OverflowToQmin  float tensors: NaN, +Inf, -Inf and qf >= 2^63 all give quant_min
//                   (PyTorch 1.13's float32 CPU kernel, bit for bit; pin P5). Double
//                   tensors saturate as below, because 1.13's float64 kernel clamps before
//                   the cast (+Inf -> quant_max; golden-tested). The default.
//   OverflowSaturate +Inf and qf >= 2^63 give quant_max, -Inf gives quant_min, NaN gives
//                   quant_min (PyTorch >= 2.1, which clamps before the cast).
// In both, the mask is 0 for NaN and +-Inf, so no gradient flows through them.
#ifndef FQ_POLICY_OVERFLOW_HPP_
#define FQ_POLICY_OVERFLOW_HPP_

#include <type_traits>  // false_type, true_type

namespace fq {

/// PyTorch 1.13: float tensors send NaN, +-Inf and |level| >= 2^63 to quant_min; double
/// tensors saturate (see the file comment).
struct OverflowToQmin {
  static constexpr bool kSaturate = false;
};
/// Saturate: +Inf / huge give quant_max; NaN gives quant_min: newer PyTorch.
struct OverflowSaturate {
  static constexpr bool kSaturate = true;
};

template <class O>
struct is_overflow : std::false_type {};
template <>
struct is_overflow<OverflowToQmin> : std::true_type {};
template <>
struct is_overflow<OverflowSaturate> : std::true_type {};

}  // namespace fq

#endif  // FQ_POLICY_OVERFLOW_HPP_
