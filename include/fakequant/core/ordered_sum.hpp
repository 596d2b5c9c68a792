// SPDX-License-Identifier: MIT
// fakequant/core/ordered_sum.hpp: float sums whose rounding depends only on the element count,
// never on where the data lies in memory.
//
// Eigen's reductions over an unaligned Map (a plane of a tape buffer) add a scalar prologue up
// to the first aligned packet, so the same values at another address round differently (a
// 25-float sum changes its last bit at 5 of 16 offsets): batch norm's statistics would then
// depend on where the arena placed x. ordered_sum fixes the order by index alone:
//   s_j = Σ_{b} f(16·b + j) over the whole blocks of 16, lanes j = 0..15 (one vector of
//         running sums: the compiler vectorizes the lanes with unaligned loads),
//   s = ((s_0 + s_8) + (s_4 + s_12)) + … (pairwise: lane j with j + 8, then + 4, + 2, + 1),
//   then the n mod 16 remaining terms added in index order.
// The same on every instruction set (a term like (x − m)² may still be contracted into an FMA
// where the target has one, as any float expression under GCC's default -ffp-contract=fast).
#ifndef FQ_CORE_ORDERED_SUM_HPP_
#define FQ_CORE_ORDERED_SUM_HPP_

#include <cstdint>  // int64_t

namespace fq {
namespace detail {

/// Σ f(i) for i in [0, n) in the order of the file comment; f(i) returns float.
template <class F>
float ordered_sum(std::int64_t n, F&& f) noexcept {
  constexpr int kLanes = 16;
  float lane[kLanes] = {};
  std::int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) lane[j] += f(i + j);
  for (int half = kLanes / 2; half > 0; half /= 2)
    for (int j = 0; j < half; ++j) lane[j] += lane[j + half];
  float s = lane[0];
  for (; i < n; ++i) s += f(i);
  return s;
}

}  // namespace detail
}  // namespace fq

#endif  // FQ_CORE_ORDERED_SUM_HPP_
