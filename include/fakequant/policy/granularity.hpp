// SPDX-License-Identifier: MIT
// fakequant/policy/granularity.hpp: one (scale, zero point) per tensor, per channel or per
// group of consecutive elements.
//
// PerChannel<Axis>: one pair per index along Axis of a strided tensor of any rank; a
// negative Axis counts from the end (weights [out, in]: 0; NCHW: 1; NHWC: -1).
// PerGroup<G, Axis, Tail>: one pair per G consecutive elements along Axis (default the last,
// the reduction axis K of a [N, K] weight: scales of shape [N, ceil(K / G)], as TorchAO,
// GPTQ and AWQ). G = kRuntimeGroupSize: the size is given at run time. Tail says what a last
// group shorter than G does: GroupTail::kMustDivide (TorchAO: G must divide the axis, else
// fq::Error kShapeMismatch) or GroupTail::kShortLast (the last group holds the K mod G rest
// and gets its own scale from its own elements).
// PerToken: one pair per row of the last axis (the whole axis is one group): TorchAO's
// per-token dynamic activation quantization. Group granularities are taken by the group
// quantizers (quantizer/group_quantizer.hpp), not by FakeQuantizer (a static_assert).
#ifndef FQ_POLICY_GRANULARITY_HPP_
#define FQ_POLICY_GRANULARITY_HPP_

#include <type_traits>  // false_type, true_type

#include <fakequant/base/config.hpp>

namespace fq {

/// One scale and zero point for the whole tensor.
struct PerTensor {
  static constexpr bool kPerChannel = false;
  static constexpr bool kPerGroup = false;
  static constexpr int kAxis = 0;
};

/// One scale and zero point per index along Axis (negative: from the end).
template <int Axis = 0>
struct PerChannel {
  static_assert(Axis >= -kMaxRank && Axis < kMaxRank,
                "PerChannel: Axis must lie in [-fq::kMaxRank, fq::kMaxRank) = [-8, 8); tensors "
                "have at most fq::kMaxRank dimensions.");
  static constexpr bool kPerChannel = true;
  static constexpr bool kPerGroup = false;
  static constexpr int kAxis = Axis;
};

/// What a last group shorter than the group size does (PerGroup).
enum class GroupTail {
  kMustDivide,  ///< the group size must divide the axis (TorchAO); else fq::Error
  kShortLast,   ///< the last group holds the rest, with its own scale
};
/// A PerGroup size given at run time (to the quantizer's constructor).
inline constexpr int kRuntimeGroupSize = 0;
/// The group is the whole axis (PerToken).
inline constexpr int kWholeAxisGroup = -1;

/// One scale and zero point per GroupSize consecutive elements along Axis (see the file
/// comment). GroupSize: > 0, kRuntimeGroupSize or kWholeAxisGroup.
template <int GroupSize, int Axis = -1, GroupTail Tail = GroupTail::kMustDivide>
struct PerGroup {
  static_assert(GroupSize > 0 || GroupSize == kRuntimeGroupSize || GroupSize == kWholeAxisGroup,
                "PerGroup: GroupSize must be > 0, fq::kRuntimeGroupSize (given at run time) or "
                "fq::kWholeAxisGroup (one group per row, as fq::PerToken).");
  static_assert(Axis >= -kMaxRank && Axis < kMaxRank,
                "PerGroup: Axis must lie in [-fq::kMaxRank, fq::kMaxRank) = [-8, 8).");
  static constexpr bool kPerChannel = false;
  static constexpr bool kPerGroup = true;
  static constexpr int kAxis = Axis;
  static constexpr int kGroupSize = GroupSize;
  static constexpr GroupTail kTail = Tail;
};
/// One scale and zero point per row of the last axis: per-token activations.
using PerToken = PerGroup<kWholeAxisGroup, -1>;

template <class G>
struct is_granularity : std::false_type {};
template <>
struct is_granularity<PerTensor> : std::true_type {};
template <int A>
struct is_granularity<PerChannel<A>> : std::true_type {};
template <int G, int A, GroupTail T>
struct is_granularity<PerGroup<G, A, T>> : std::true_type {};

}  // namespace fq

#endif  // FQ_POLICY_GRANULARITY_HPP_
