// SPDX-License-Identifier: MIT
// fakequant/core/run_plan.hpp: walks K same-shaped strided tensors as 1-D runs.
//
// The dimensions are visited in a fixed order (outermost first); size-1 dimensions are
// dropped and neighbours that are contiguous in every operand are merged, so dense tensors
// become one run (per tensor) or one run per channel (per channel). The channel axis is never
// merged. Elements are numbered in visiting order: that number is the mask's bit index.
#ifndef FQ_CORE_RUN_PLAN_HPP_
#define FQ_CORE_RUN_PLAN_HPP_

#include <array>    // array
#include <cstddef>  // ptrdiff_t
#include <cstdint>  // int64_t, int8_t

#include <fakequant/base/config.hpp>
#include <fakequant/core/tensor_view.hpp>

namespace fq {
namespace detail {

/// A visiting order: order[0] is the outermost logical dimension.
using DimOrder = std::array<std::int8_t, kMaxRank>;

// The plan builders are always inlined: their small array loops are vectorised for the
// caller's -m flags, and a shared out-of-line copy would carry one TU's instruction set into
// every other (simd/arch.hpp).

/// Row-major order 0, 1, ..., rank-1.
FQ_INLINE DimOrder row_major_order() noexcept {
  DimOrder o{};
  for (int d = 0; d < kMaxRank; ++d) o[static_cast<std::size_t>(d)] = static_cast<std::int8_t>(d);
  return o;
}

/// Dimensions by decreasing |stride| (stable): memory order for a dense tensor of any layout.
FQ_INLINE DimOrder order_by_strides(int rank, const Dims& strides) noexcept {
  DimOrder o = row_major_order();
  auto mag = [&](std::int8_t d) {
    const std::int64_t s = strides[static_cast<std::size_t>(d)];
    return s < 0 ? -s : s;
  };
  for (int i = 1; i < rank; ++i) {  // insertion sort: rank <= 8
    const std::int8_t d = o[static_cast<std::size_t>(i)];
    int j = i - 1;
    while (j >= 0 && mag(o[static_cast<std::size_t>(j)]) < mag(d)) {
      o[static_cast<std::size_t>(j) + 1] = o[static_cast<std::size_t>(j)];
      --j;
    }
    o[static_cast<std::size_t>(j) + 1] = d;
  }
  return o;
}

/// The loop nest over K operands: nd loops, the last one the run.
template <std::size_t K>
struct RunPlan {
  int nd = 0;
  Dims extent{};
  std::array<Dims, K> stride{};
  int axis = -1;  ///< loop carrying the channel index, or -1
  std::int64_t numel = 0;
};

/// Builds the loop nest for `shape` visited in `order`; `axis` is a logical dim or -1.
template <std::size_t K>
FQ_INLINE RunPlan<K> make_run_plan(int rank, const Dims& shape,
                                   const std::array<const Dims*, K>& strides, const DimOrder& order,
                                   int axis) noexcept {
  RunPlan<K> p;
  p.numel = 1;
  for (int i = 0; i < rank; ++i) p.numel *= shape[static_cast<std::size_t>(i)];
  for (int i = 0; i < rank; ++i) {
    const int d = order[static_cast<std::size_t>(i)];
    const auto du = static_cast<std::size_t>(d);
    if (shape[du] == 1 && d != axis) continue;
    const bool is_axis = d == axis;
    if (p.nd > 0 && !is_axis && p.axis != p.nd - 1) {  // try to merge into the previous loop
      const auto prev = static_cast<std::size_t>(p.nd - 1);
      bool mergeable = true;
      for (std::size_t k = 0; k < K; ++k)
        mergeable = mergeable && (*strides[k])[du] * shape[du] == p.stride[k][prev];
      if (mergeable) {
        p.extent[prev] *= shape[du];
        for (std::size_t k = 0; k < K; ++k) p.stride[k][prev] = (*strides[k])[du];
        continue;
      }
    }
    const auto at = static_cast<std::size_t>(p.nd);
    p.extent[at] = shape[du];
    for (std::size_t k = 0; k < K; ++k) p.stride[k][at] = (*strides[k])[du];
    if (is_axis) p.axis = p.nd;
    ++p.nd;
  }
  if (p.nd == 0) {  // all extents 1 (or rank 0): one run of one element
    p.nd = 1;
    p.extent[0] = 1;
    for (std::size_t k = 0; k < K; ++k) p.stride[k][0] = 1;
  }
  return p;
}

/// Calls f(offsets, n, channel, bit_pos) for each run, in visiting order. offsets[k] is the
/// element offset of operand k; channel is the channel of the whole run, or -1 when the run
/// itself walks the channel axis (element i then has channel i). Runs of an empty plan are
/// not visited.
template <std::size_t K, class F>
void for_each_run(const RunPlan<K>& p, F&& f) {
  if (p.numel == 0) return;
  const int last = p.nd - 1;
  const std::int64_t n = p.extent[static_cast<std::size_t>(last)];
  const std::int64_t runs = p.numel / n;
  std::array<std::int64_t, kMaxRank> idx{};
  std::array<std::ptrdiff_t, K> off{};
  std::int64_t bit = 0;
  for (std::int64_t r = 0; r < runs; ++r) {
    const std::int64_t channel =
        p.axis == last ? -1 : (p.axis >= 0 ? idx[static_cast<std::size_t>(p.axis)] : 0);
    f(off, n, channel, bit);
    bit += n;
    for (int d = last - 1; d >= 0; --d) {
      const auto du = static_cast<std::size_t>(d);
      for (std::size_t k = 0; k < K; ++k) off[k] += static_cast<std::ptrdiff_t>(p.stride[k][du]);
      if (++idx[du] < p.extent[du]) break;
      for (std::size_t k = 0; k < K; ++k)
        off[k] -= static_cast<std::ptrdiff_t>(p.stride[k][du] * p.extent[du]);
      idx[du] = 0;
    }
  }
}

}  // namespace detail
}  // namespace fq

#endif  // FQ_CORE_RUN_PLAN_HPP_
