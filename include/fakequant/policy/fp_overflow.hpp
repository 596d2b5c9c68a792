// SPDX-License-Identifier: MIT
// fakequant/policy/fp_overflow.hpp: what a cast to a small floating-point element format
// (format/minifloat.hpp) does with a value beyond the format's largest finite value `max`.
//
// The value is first rounded to nearest even as if the exponent were unbounded; then
//   FpSaturate     a result above max (and +-Inf) gives +-max. ONNX Cast(saturate=1),
//                  TorchAO's float8 fake quantizers (which clamp before casting), OCP MX.
//   FpNoSaturate   a result above max gives +-Inf where the format has infinities (E5M2)
//                  and NaN where it has only NaN (E4M3: 0x7F/0xFF); +-Inf gives +-Inf or NaN
//                  the same way. PyTorch's eager tensor.to(torch.float8_*) cast.
// Formats with neither infinities nor NaN (FP6, FP4) take only FpSaturate (a static_assert).
// NaN is NaN under both.
#ifndef FQ_POLICY_FP_OVERFLOW_HPP_
#define FQ_POLICY_FP_OVERFLOW_HPP_

#include <type_traits>  // false_type, true_type

namespace fq {

/// Values beyond the format's largest finite value saturate to it (ONNX saturate=1, OCP MX).
struct FpSaturate {
  static constexpr bool kSaturate = true;
};
/// Values beyond the largest finite value become Inf (E5M2) or NaN (E4M3): torch's cast.
struct FpNoSaturate {
  static constexpr bool kSaturate = false;
};

template <class O>
struct is_fp_overflow : std::false_type {};
template <>
struct is_fp_overflow<FpSaturate> : std::true_type {};
template <>
struct is_fp_overflow<FpNoSaturate> : std::true_type {};

}  // namespace fq

#endif  // FQ_POLICY_FP_OVERFLOW_HPP_
