// SPDX-License-Identifier: MIT
// fakequant/policy/granularity.hpp: one (scale, zero point) per tensor or per channel.
//
// PerChannel<Axis>: one pair per index along Axis of a strided tensor of any rank; a
// negative Axis counts from the end (weights [out, in]: 0; NCHW: 1; NHWC: -1).
#ifndef FQ_POLICY_GRANULARITY_HPP_
#define FQ_POLICY_GRANULARITY_HPP_

#include <type_traits>  // false_type, true_type

#include <fakequant/base/config.hpp>

namespace fq {

/// One scale and zero point for the whole tensor.
struct PerTensor {
  static constexpr bool kPerChannel = false;
  static constexpr int kAxis = 0;
};

/// One scale and zero point per index along Axis (negative: from the end).
template <int Axis = 0>
struct PerChannel {
  static_assert(Axis >= -kMaxRank && Axis < kMaxRank,
                "PerChannel: Axis must lie in [-fq::kMaxRank, fq::kMaxRank) = [-8, 8); tensors "
                "have at most fq::kMaxRank dimensions.");
  static constexpr bool kPerChannel = true;
  static constexpr int kAxis = Axis;
};

template <class G>
struct is_granularity : std::false_type {};
template <>
struct is_granularity<PerTensor> : std::true_type {};
template <int A>
struct is_granularity<PerChannel<A>> : std::true_type {};

}  // namespace fq

#endif  // FQ_POLICY_GRANULARITY_HPP_
