// SPDX-License-Identifier: MIT
// fakequant/policy/mapping.hpp: affine (scale + zero point) or symmetric (fixed zero point).
//
// Symmetric fixes the zero point: 0 for a signed range; for an unsigned range the midpoint
// as PyTorch's quint8 symmetric observers choose it — 2^(Bits-1) for IntRange (128 for
// uint8), (quant_min + quant_max) // 2 for a RuntimeRange (PyTorch's custom-range rule).
#ifndef FQ_POLICY_MAPPING_HPP_
#define FQ_POLICY_MAPPING_HPP_

#include <type_traits>  // false_type, true_type

namespace fq {

/// y = (clamp(round(x / s) + z) - z) * s with a free integer zero point z.
struct Affine {
  static constexpr bool kSymmetric = false;
};
/// The zero point is fixed by the range (see the file comment); only the scale is chosen.
struct Symmetric {
  static constexpr bool kSymmetric = true;
};

template <class M>
struct is_mapping : std::false_type {};
template <>
struct is_mapping<Affine> : std::true_type {};
template <>
struct is_mapping<Symmetric> : std::true_type {};

}  // namespace fq

#endif  // FQ_POLICY_MAPPING_HPP_
