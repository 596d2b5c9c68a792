// SPDX-License-Identifier: MIT
// fakequant/testing/grid.hpp: Grid, the set of values a quantizer may output, per channel.
//
// The testing kit checks outputs against a grid: the sorted distinct levels of each channel
// (one list for a per-tensor quantizer) and the channel axis of x. For an affine quantizer
// with scale s, zero point z and range [quant_min, quant_max] the levels are
//     level(c) = (c - z) * s  for c = quant_min .. quant_max,
// rounded to float as fq's kernels compute them (an exact product rounded once); grid_of(q)
// builds that for any type with scale(), zero_point() and range() (fq::FakeQuantizer). A
// custom quantizer lists its levels with Grid::per_tensor / Grid::per_channel.
#ifndef FQ_TESTING_GRID_HPP_
#define FQ_TESTING_GRID_HPP_

#include <algorithm>  // sort, unique, upper_bound
#include <cstdint>    // int64_t
#include <utility>    // move
#include <vector>     // vector

#include <fakequant/base/error.hpp>
#include <fakequant/quantizer/concept.hpp>
#include <fakequant/scheme/range.hpp>

namespace fq {
namespace testing {

/// The representable outputs of a quantizer, per channel, and the channel axis of x.
struct Grid {
  /// levels[c]: the sorted distinct levels of channel c (one entry for per-tensor).
  std::vector<std::vector<double>> levels;
  /// The channel axis of x, or -1 for a per-tensor grid.
  int axis = -1;

  bool empty() const noexcept { return levels.empty(); }
  std::int64_t channels() const noexcept { return static_cast<std::int64_t>(levels.size()); }

  /// One set of levels for the whole tensor (any order, duplicates allowed).
  static Grid per_tensor(std::vector<double> lv) {
    Grid g;
    g.levels.push_back(normalized(std::move(lv), 0));
    return g;
  }
  /// One set of levels per index along `axis` (>= 0).
  static Grid per_channel(std::vector<std::vector<double>> lv, int axis) {
    FQ_CHECK(axis >= 0, ErrorCode::kInvalidAxis,
             ::fq::detail::msg("Grid::per_channel: axis must be >= 0, got ", axis));
    Grid g;
    g.axis = axis;
    for (std::size_t c = 0; c < lv.size(); ++c)
      g.levels.push_back(normalized(std::move(lv[c]), static_cast<std::int64_t>(c)));
    return g;
  }
  /// The affine levels (c - z) * s, c in range, for one scale and zero point.
  template <class Z>
  static std::vector<double> affine_levels(float scale, Z zero_point, QuantRange range) {
    std::vector<double> lv;
    lv.reserve(static_cast<std::size_t>(range.span() + 1));
    for (std::int64_t c = range.quant_min; c <= range.quant_max; ++c)
      lv.push_back(static_cast<double>(
          static_cast<float>((static_cast<double>(c) - static_cast<double>(zero_point)) *
                             static_cast<double>(scale))));
    return lv;
  }

  /// The channel's levels, for channel c (0 for per-tensor).
  const std::vector<double>& channel(std::int64_t c) const {
    return levels[static_cast<std::size_t>(levels.size() == 1 ? 0 : c)];
  }

 private:
  static std::vector<double> normalized(std::vector<double> lv, std::int64_t c) {
    FQ_CHECK(!lv.empty(), ErrorCode::kInvalidArgument,
             ::fq::detail::msg("Grid: channel ", c, " has no levels"));
    std::sort(lv.begin(), lv.end());
    lv.erase(std::unique(lv.begin(), lv.end()), lv.end());
    return lv;
  }
};

/// The grid of a quantizer with scale(), zero_point() and range() (e.g. fq::FakeQuantizer),
/// per channel on Q::kAxis if Q::kPerChannel.
template <class Q>
Grid grid_of(const Q& q) {
  static_assert(::fq::detail::has_affine_grid<Q>::value,
                "fq::testing::grid_of: the quantizer must provide scale(), zero_point() and "
                "range() (as fq::FakeQuantizer); otherwise list its levels with Grid::per_tensor "
                "or Grid::per_channel.");
  const auto& s = q.scale();
  const auto& z = q.zero_point();
  std::vector<std::vector<double>> lv;
  for (std::size_t c = 0; c < s.size(); ++c)
    lv.push_back(Grid::affine_levels(static_cast<float>(s[c]), z[c], q.range()));
  bool per_channel = false;
  int axis = -1;
  if constexpr (::fq::detail::has_channel_axis<Q>::value) {
    per_channel = Q::kPerChannel;
    axis = Q::kAxis;
  }
  if (!per_channel) return Grid::per_tensor(std::move(lv.at(0)));
  return Grid::per_channel(std::move(lv), axis);
}

}  // namespace testing
}  // namespace fq

#endif  // FQ_TESTING_GRID_HPP_
