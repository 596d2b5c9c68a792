// SPDX-License-Identifier: MIT
// fakequant/testing/check_quantizer.hpp: check_quantizer, the forward property suite for any
// type meeting the quantizer protocol (quantizer/concept.hpp); its options:
// testing/quantizer_check_options.hpp.
//
// It generates inputs around the grid of every channel (exact levels, ties between levels,
// random points in every cell, values just beyond and far beyond the ends), runs the forward
// and checks, for element i of channel c with levels lo = L[0] < ... < hi = L[n-1]:
//   finite           finite x gives finite y
//   on_grid          y is a level of channel c (or the user predicate holds)
//   error_bound      lo <= x <= hi: y is a level bracketing x (kBracketing), or additionally
//                    |y - x| <= half the bracketing cell (kHalfStep: round to nearest). The
//                    default (kAuto) is kHalfStep unless the quantizer says it does not round
//                    to nearest: `static constexpr bool kRoundsToNearest = false;` or an fq
//                    scheme with RoundFloor. A quantizer that rounds otherwise (floor, log
//                    domain, stochastic) declares that or sets options.error_bound =
//                    kBracketing, so that a floor-instead-of-round bug fails by default.
//   clamp            x < lo gives lo, x > hi gives hi
//   mask             lo < x < hi gives mask 1; x more than one outer cell beyond the ends
//                    gives 0 (x = lo, x = hi and the band beyond may go either way: PyTorch
//                    decides on the rounded level, TensorFlow and PACT on x)
//   monotonic        x_a < x_b in one channel gives y_a <= y_b
//   idempotent       forward(y) == y, bit for bit
//   channel_independence   (per-channel) changing only other channels' inputs leaves this
//                    channel's outputs and mask bits unchanged
//   non_finite       NaN, +Inf, -Inf inputs (three per channel), by NonFinite expectation:
//                    kOnGridMaskOff (default; fq's and PyTorch's rule): y is a finite level and
//                    the mask bit is 0; kNaNPropagates: NaN gives NaN, +-Inf a finite level,
//                    mask 0; kUnchecked: only that the call succeeds. With `elementwise`, the
//                    finite elements' outputs must not change either.
// Each failure names the property, the element's row-major index, its channel, the input,
// the expected and the actual value. The grid comes from options.grid, else from grid_of(q)
// for affine quantizers (fq::FakeQuantizer); a custom quantizer without levels may give an
// on_grid predicate instead (then error_bound, clamp and mask are not checked: notes say so).
// The quantizer must keep its parameters fixed across calls (test a FakeQuantize module's
// quantizer(), or disable its observer).
#ifndef FQ_TESTING_CHECK_QUANTIZER_HPP_
#define FQ_TESTING_CHECK_QUANTIZER_HPP_

#include <algorithm>    // sort, min
#include <cmath>        // isfinite, isnan, fabs
#include <cstdint>      // int64_t, uint32_t
#include <cstring>      // memcpy
#include <functional>   // function
#include <limits>       // numeric_limits
#include <numeric>      // iota
#include <optional>     // optional
#include <random>       // mt19937
#include <type_traits>  // is_same
#include <utility>      // pair
#include <vector>       // vector

#include <fakequant/core/mask.hpp>
#include <fakequant/quantizer/concept.hpp>
#include <fakequant/testing/grid.hpp>
#include <fakequant/testing/harness.hpp>
#include <fakequant/testing/quantizer_check_options.hpp>
#include <fakequant/testing/result.hpp>

namespace fq {
namespace testing {

namespace detail {

/// Takes the grid from the options, else from an affine quantizer.
template <class Q>
Grid resolve_grid(const Q& q, const Grid& given) {
  if (!given.empty()) return given;
  if constexpr (::fq::detail::has_affine_grid<Q>::value)
    return grid_of(q);
  else
    return Grid{};
}

/// Inputs around the levels of each channel (see the file comment).
inline std::vector<float> make_inputs(const Layout& L, const Grid& grid,
                                      std::pair<double, double> range, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u01(0.0, 1.0);
  std::vector<float> x(static_cast<std::size_t>(L.numel));
  for (std::int64_t i = 0; i < L.numel; ++i) {
    double v;
    if (grid.empty()) {
      v = range.first + (range.second - range.first) * u01(rng);
    } else {
      const std::vector<double>& lv = grid.channel(L.channel_of(i));
      const double lo = lv.front(), hi = lv.back();
      const double g_lo = cell_width(lv, lo), g_hi = cell_width(lv, hi);
      const std::size_t k = static_cast<std::size_t>(rng() % lv.size());
      const std::size_t k1 = k + 1 < lv.size() ? k + 1 : k;
      switch (rng() % 10) {
        case 0:
        case 1:
          v = lo - 2 * g_lo + (hi - lo + 2 * g_lo + 2 * g_hi) * u01(rng);
          break;
        case 2:
          v = lv[k];
          break;
        case 3:
          v = (lv[k] + lv[k1]) / 2;  // a tie between neighbouring levels
          break;
        case 4:
        case 5:
        case 6:
          v = lv[k] + (lv[k1] - lv[k]) * u01(rng);  // anywhere in a cell: every cell is visited
          break;
        case 7:
          v = rng() % 2 ? lo - g_lo * u01(rng) : hi + g_hi * u01(rng);
          break;
        case 8:
          v = rng() % 2 ? lo - (1 + u01(rng)) * (hi - lo + g_lo)
                        : hi + (1 + u01(rng)) * (hi - lo + g_hi);
          break;
        default:
          v = lv[k] + (lv[k1] - lv[k]) * (rng() % 2 ? 1e-4 : 1 - 1e-4);  // next to a level
          break;
      }
    }
    x[static_cast<std::size_t>(i)] = static_cast<float>(v);
  }
  return x;
}

inline bool same_bits(float a, float b) noexcept {
  std::uint32_t ua = 0, ub = 0;
  std::memcpy(&ua, &a, sizeof a);
  std::memcpy(&ub, &b, sizeof b);
  return ua == ub;
}

}  // namespace detail

/// Runs the forward property suite on q; see the file comment for the properties.
template <class Q>
CheckResult check_quantizer(Q& q, const QuantizerCheckOptions& opt = QuantizerCheckOptions{}) {
  static_assert(assert_quantizer<Q>());
  CheckResult r(opt.max_failures_per_property);
  const Grid grid = detail::resolve_grid(q, opt.grid);
  if (grid.empty() && !opt.on_grid) {
    r.add_failure("setup", -1, 0, 0.0, 0.0, 0.0,
                  "no grid: give options.grid (Grid::per_tensor / per_channel) or an on_grid "
                  "predicate; only quantizers with scale(), zero_point() and range() have one "
                  "derived");
    return r;
  }
  const int axis = detail::resolve_axis<Q>(opt.channel_axis, grid);
  detail::Layout L;
  if (!detail::make_layout(opt.shape, axis, grid, L, r)) return r;
  const ErrorBound bound = detail::resolve_error_bound<Q>(opt.error_bound);
  const bool have_levels = !grid.empty();
  if (have_levels && opt.check_error_bound) detail::note_assumed_bound<Q>(opt.error_bound, r);
  if (!have_levels) r.add_note("no levels given: error_bound, clamp and mask not checked");
  const auto n = static_cast<std::size_t>(L.numel);
  constexpr double kFloatEps = std::numeric_limits<float>::epsilon();

  const std::vector<float> x = detail::make_inputs(L, grid, opt.input_range, opt.seed);
  std::vector<float> y(n, 0.0f);
  Mask mask;
  if (!detail::guarded(r, "forward", [&] {
        detail::call_forward(q, L.cview(x.data()), L.view(y.data()), &mask);
      }))
    return r;
  if (mask.numel() != L.numel) {
    r.add_failure("mask", -1, 0, 0.0, static_cast<double>(L.numel),
                  static_cast<double>(mask.numel()),
                  detail::say("the forward wrote a mask of ", mask.numel(), " elements for ",
                              L.numel, " inputs"));
    return r;
  }

  auto on_grid = [&](double v, std::int64_t c) {
    if (opt.on_grid) return opt.on_grid(v, c);
    return detail::on_levels(grid.channel(c), v, opt.grid_ulps);
  };

  for (std::int64_t i = 0; i < L.numel; ++i) {
    const auto u = static_cast<std::size_t>(i);
    const std::int64_t c = L.channel_of(i);
    const double xi = x[u], yi = y[u];
    const bool bit = mask.test_linear(i);
    r.add_stat("finite.checked", 1);
    if (!std::isfinite(yi)) {
      r.add_failure("finite", i, c, xi, 0.0, yi,
                    detail::say("element ", i, " (channel ", c, "): finite input ", xi,
                                ", expected a finite output, actual ", yi));
      continue;
    }
    if (opt.check_on_grid) {
      r.add_stat("on_grid.checked", 1);
      if (!on_grid(yi, c)) {
        double prev = yi, next = yi;
        if (have_levels) detail::bracket(grid.channel(c), yi, prev, next);
        const double nearest = std::fabs(prev - yi) <= std::fabs(next - yi) ? prev : next;
        r.add_failure("on_grid", i, c, xi, nearest, yi,
                      detail::say("element ", i, " (channel ", c, "): input ", xi,
                                  ", expected a grid level (nearest ", nearest, "), actual ", yi));
      }
    }
    if (!have_levels) continue;
    const std::vector<double>& lv = grid.channel(c);
    const double lo = lv.front(), hi = lv.back();
    const double cell = detail::cell_width(lv, xi);
    // Rounding slack: x * f32(1/s) is a few float ulps of x away from the exact x / s.
    const double slack = opt.rel_tol * cell + 4 * std::fabs(xi) * kFloatEps;
    if (opt.check_error_bound && xi >= lo && xi <= hi) {
      r.add_stat("error_bound.checked", 1);
      double prev, next;
      detail::bracket(lv, xi, prev, next);
      const bool is_prev = std::fabs(yi - prev) <= slack, is_next = std::fabs(yi - next) <= slack;
      const double nearest = xi - prev <= next - xi ? prev : next;
      bool ok = is_prev || is_next;
      if (bound == ErrorBound::kHalfStep)
        ok = ok && std::fabs(yi - xi) <= (next - prev) / 2 + slack;
      if (!ok)
        r.add_failure(
            "error_bound", i, c, xi, nearest, yi,
            prev == next
                ? detail::say("element ", i, " (channel ", c, "): input ", xi,
                              " is a level, expected ", xi, ", actual ", yi)
                : detail::say(
                      "element ", i, " (channel ", c, "): input ", xi, " lies in [", prev, ", ",
                      next, "], expected ",
                      bound == ErrorBound::kHalfStep ? "the nearest level " : "one of them, e.g. ",
                      nearest, ", actual ", yi, " (error ", std::fabs(yi - xi), ")"));
    }
    if (opt.check_clamp && (xi < lo || xi > hi)) {
      r.add_stat("clamp.checked", 1);
      const double end = xi < lo ? lo : hi;
      if (std::fabs(yi - end) > slack)
        r.add_failure("clamp", i, c, xi, end, yi,
                      detail::say("element ", i, " (channel ", c, "): input ", xi, " is outside [",
                                  lo, ", ", hi, "], expected ", end, ", actual ", yi));
    }
    if (opt.check_mask) {
      const double g_lo = detail::cell_width(lv, lo), g_hi = detail::cell_width(lv, hi);
      const bool inside = xi > lo && xi < hi;  // at an end the STE slope is undefined
      const bool outside = xi < lo - g_lo || xi > hi + g_hi;
      if (inside || outside) {
        r.add_stat("mask.checked", 1);
        if (bit != inside)
          r.add_failure(
              "mask", i, c, xi, inside ? 1.0 : 0.0, bit ? 1.0 : 0.0,
              detail::say("element ", i, " (channel ", c, "): input ", xi,
                          inside ? " is inside [" : " is beyond a cell outside [", lo, ", ", hi,
                          "], expected mask ", inside ? 1 : 0, ", actual ", bit ? 1 : 0));
      }
    }
  }

  if (opt.check_monotonic) {
    std::vector<std::int64_t> order(n);
    std::iota(order.begin(), order.end(), std::int64_t{0});
    std::sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) {
      const std::int64_t ca = L.channel_of(a), cb = L.channel_of(b);
      const float xa = x[static_cast<std::size_t>(a)], xb = x[static_cast<std::size_t>(b)];
      return ca != cb ? ca < cb : (xa != xb ? xa < xb : a < b);
    });
    for (std::size_t k = 1; k < n; ++k) {
      const std::int64_t a = order[k - 1], b = order[k];
      const auto ua = static_cast<std::size_t>(a), ub = static_cast<std::size_t>(b);
      if (L.channel_of(a) != L.channel_of(b)) continue;
      r.add_stat("monotonic.checked", 1);
      if (x[ua] < x[ub] && y[ub] < y[ua])
        r.add_failure("monotonic", b, L.channel_of(b), x[ub], y[ua], y[ub],
                      detail::say("element ", b, " (channel ", L.channel_of(b), "): input ", x[ub],
                                  ", expected >= ", y[ua], " (the output of element ", a,
                                  " whose input ", x[ua], " is smaller), actual ", y[ub]));
    }
  }

  if (opt.check_idempotent) {
    std::vector<float> y2(n, 0.0f);
    if (detail::guarded(r, "forward (idempotence)", [&] {
          detail::call_forward(q, L.cview(y.data()), L.view(y2.data()), nullptr);
        })) {
      for (std::int64_t i = 0; i < L.numel; ++i) {
        const auto u = static_cast<std::size_t>(i);
        r.add_stat("idempotent.checked", 1);
        if (!detail::same_bits(y[u], y2[u]))
          r.add_failure("idempotent", i, L.channel_of(i), y[u], y[u], y2[u],
                        detail::say("element ", i, " (channel ", L.channel_of(i),
                                    "): forward(forward(x)) != forward(x) for x = ", x[u],
                                    ": input ", y[u], ", expected ", y[u], ", actual ", y2[u]));
      }
    }
  }

  if (opt.check_channel_independence && L.axis >= 0 && L.channels > 1) {
    std::vector<float> x2(n), y2(n);
    Mask mask2;
    for (std::int64_t c = 0; c < L.channels; ++c) {
      for (std::int64_t i = 0; i < L.numel; ++i) {
        const auto u = static_cast<std::size_t>(i);
        // Other channels get another channel's inputs, scaled: new values, still around the grid.
        x2[u] = L.channel_of(i) == c ? x[u] : -1.5f * x[(u * 7 + 3) % n];
      }
      if (!detail::guarded(r, "forward (channel independence)", [&] {
            detail::call_forward(q, L.cview(x2.data()), L.view(y2.data()), &mask2);
          }))
        break;
      for (std::int64_t i = 0; i < L.numel; ++i) {
        if (L.channel_of(i) != c) continue;
        const auto u = static_cast<std::size_t>(i);
        r.add_stat("channel_independence.checked", 1);
        if (!detail::same_bits(y[u], y2[u]))
          r.add_failure("channel_independence", i, c, x[u], y[u], y2[u],
                        detail::say("element ", i, " (channel ", c, "): input ", x[u],
                                    " unchanged, only other channels' inputs changed; expected ",
                                    y[u], ", actual ", y2[u]));
        else if (mask2.numel() == L.numel && mask.test_linear(i) != mask2.test_linear(i))
          r.add_failure(
              "channel_independence", i, c, x[u], mask.test_linear(i) ? 1.0 : 0.0,
              mask2.test_linear(i) ? 1.0 : 0.0,
              detail::say("element ", i, " (channel ", c, "): input ", x[u],
                          " unchanged, only other channels' inputs changed; expected "
                          "mask ",
                          mask.test_linear(i) ? 1 : 0, ", actual ", mask2.test_linear(i) ? 1 : 0));
      }
    }
  }

  if (opt.check_non_finite) {
    // NaN, +Inf, -Inf at the first three elements of every channel.
    std::vector<float> x3 = x, y3(n, 0.0f);
    std::vector<std::int64_t> seen(static_cast<std::size_t>(L.channels), 0);
    std::vector<char> special(n, 0);
    const float values[3] = {std::numeric_limits<float>::quiet_NaN(),
                             std::numeric_limits<float>::infinity(),
                             -std::numeric_limits<float>::infinity()};
    for (std::int64_t i = 0; i < L.numel; ++i) {
      std::int64_t& k = seen[static_cast<std::size_t>(L.channel_of(i))];
      if (k < 3) {
        x3[static_cast<std::size_t>(i)] = values[k++];
        special[static_cast<std::size_t>(i)] = 1;
      }
    }
    Mask mask3;
    if (detail::guarded(r, "forward (NaN/Inf inputs)", [&] {
          detail::call_forward(q, L.cview(x3.data()), L.view(y3.data()), &mask3);
        })) {
      const bool have_mask = mask3.numel() == L.numel;
      for (std::int64_t i = 0; i < L.numel; ++i) {
        const auto u = static_cast<std::size_t>(i);
        const std::int64_t c = L.channel_of(i);
        const double xi = x3[u], yi = y3[u];
        if (!special[u]) {
          if (opt.elementwise && opt.non_finite != NonFinite::kUnchecked &&
              !detail::same_bits(y[u], y3[u]))
            r.add_failure("non_finite", i, c, xi, y[u], yi,
                          detail::say("element ", i, " (channel ", c, "): finite input ", xi,
                                      " changed output when other elements were NaN/Inf; "
                                      "expected ",
                                      y[u], ", actual ", yi));
          continue;
        }
        if (opt.non_finite == NonFinite::kUnchecked) continue;
        r.add_stat("non_finite.checked", 1);
        const bool want_nan = opt.non_finite == NonFinite::kNaNPropagates && std::isnan(xi);
        const bool ok_value = want_nan ? std::isnan(yi) : std::isfinite(yi) && on_grid(yi, c);
        if (!ok_value)
          r.add_failure("non_finite", i, c, xi, want_nan ? xi : 0.0, yi,
                        detail::say("element ", i, " (channel ", c, "): input ", xi,
                                    want_nan ? ", expected NaN" : ", expected a finite grid level",
                                    ", actual ", yi));
        else if (have_mask && mask3.test_linear(i))
          r.add_failure("non_finite", i, c, xi, 0.0, 1.0,
                        detail::say("element ", i, " (channel ", c, "): input ", xi,
                                    ", expected mask 0 (no gradient through NaN/Inf), actual 1"));
      }
    }
  }
  return r;
}

}  // namespace testing
}  // namespace fq

#endif  // FQ_TESTING_CHECK_QUANTIZER_HPP_
