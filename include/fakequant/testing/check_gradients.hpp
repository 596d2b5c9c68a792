// SPDX-License-Identifier: MIT
// fakequant/testing/check_gradients.hpp: check_gradients, an STE-aware gradient checker for
// any type meeting the quantizer protocol (quantizer/concept.hpp).
//
// The loss is L = sum(dy * y) with a random dy (|dy| in [0.5, 1.5]).
// dx: the straight-through estimator (STE) treats rounding as the identity, so dL/dx_i is the
// slope of the *unrounded* forward: dy_i inside [lo, hi] (the first and last level of the
// element's channel) and 0 outside (SteKind::kClamped, fq's MaskedSte), or dy_i everywhere
// (SteKind::kIdentity, PassThroughSte). The checker measures that slope on the real forward
// with a central finite difference over x_i +- h, h = span_cells cells of the grid, so that
// the staircase averages out:
//     FD_i = (L(x_i + h) - L(x_i - h)) / 2h,   |dx_i - FD_i| <= |dy_i| (e(x_i+h) + e(x_i-h)) / 2h
// where e(v) = |y(v) - clamp(v, lo, hi)| is the staircase's measured distance from the
// unrounded forward at the two ends, capped by the error bound (half a cell for
// round-to-nearest, a cell for kBracketing, 0 beyond the ends). A point is skipped
//   - near a rounding boundary: the output at x_i +- h changes within +-delta (delta =
//     boundary_delta cells), so the FD would depend on the tie rule, or
//   - near a clamping boundary: [x_i - h - delta, x_i + h + delta] reaches an end of the range
//     (or, outside the range, the band of one cell where the mask may go either way),
// and the result says how many were skipped (stats gradient_dx.skipped_rounding,
// gradient_dx.skipped_clamp). Outside the range a kIdentity STE is compared with dy directly.
// L is recomputed over the whole tensor, so a quantizer whose outputs depend on other
// elements (e.g. a data-dependent scale) shows that dependence.
// Learnable parameters (Q::visit_parameters): the kit zeroes each grad, runs one backward and
// compares each component with options.formulas[name] — an analytic formula the user gives
// (per element, summed per channel, or whole), e.g. testing/formulas.hpp's STE/LSQ/PACT ones.
// Finite differences cannot check these: an STE gradient (LSQ's -x/s + round(x/s)) is not the
// derivative of the staircase.
#ifndef FQ_TESTING_CHECK_GRADIENTS_HPP_
#define FQ_TESTING_CHECK_GRADIENTS_HPP_

#include <algorithm>    // max
#include <cmath>        // fabs, nan
#include <cstdint>      // int64_t, uint32_t
#include <functional>   // function
#include <limits>       // numeric_limits
#include <map>          // map
#include <optional>     // optional
#include <random>       // mt19937
#include <string>       // string
#include <type_traits>  // void_t
#include <utility>      // move
#include <vector>       // vector

#include <fakequant/core/mask.hpp>
#include <fakequant/quantizer/concept.hpp>
#include <fakequant/testing/check_quantizer.hpp>
#include <fakequant/testing/elementwise.hpp>
#include <fakequant/testing/grid.hpp>
#include <fakequant/testing/harness.hpp>
#include <fakequant/testing/result.hpp>

namespace fq {
namespace testing {

/// Which straight-through estimator the quantizer implements.
enum class SteKind {
  kAuto,      ///< from an fq scheme's ClampGrad (PassThroughSte: kIdentity), else kClamped
  kClamped,   ///< dx = dy inside the range, 0 outside (MaskedSte)
  kIdentity,  ///< dx = dy everywhere (PassThroughSte)
};

/// What a parameter formula sees: the tensors of one forward/backward (row-major, contiguous).
struct ParamGradInputs {
  const float* x;
  const float* y;
  const float* dy;
  const Mask* mask;
  std::int64_t numel;
  int axis;               ///< channel axis, -1 per tensor
  std::int64_t channels;  ///< 1 per tensor
  std::int64_t inner;     ///< product of the extents after the axis
  std::int64_t channel_of(std::int64_t i) const noexcept {
    return axis < 0 ? 0 : (i / inner) % channels;
  }
};

/// The expected gradient of sum(dy * y) w.r.t. one parameter. Give per_element (the
/// contribution of one element, summed into component `channel`, or 0 for a one-component
/// parameter) or whole (all components at once).
struct ParamFormula {
  std::function<double(float x, float dy, std::int64_t channel)> per_element;
  std::function<std::vector<double>(const ParamGradInputs&)> whole;
  std::string source = "the analytic formula";
};

/// A formula from a per-element contribution f(x, dy, channel).
inline ParamFormula per_element_formula(std::function<double(float, float, std::int64_t)> f,
                                        std::string source = "the analytic formula") {
  ParamFormula p;
  p.per_element = std::move(f);
  p.source = std::move(source);
  return p;
}

/// Options of check_gradients. The defaults suit fq::FakeQuantizer.
struct GradientCheckOptions {
  Grid grid;                        ///< empty: grid_of(q) for affine quantizers
  std::optional<int> channel_axis;  ///< as QuantizerCheckOptions
  std::vector<std::int64_t> shape;  ///< as QuantizerCheckOptions
  std::uint32_t seed = 20240602u;
  std::int64_t points = 48;      ///< dx points to check (skipped points do not count)
  double span_cells = 3.0;       ///< h, in cells of the grid at x
  double boundary_delta = 1e-3;  ///< delta, in cells
  SteKind ste = SteKind::kAuto;
  ErrorBound error_bound = ErrorBound::kAuto;
  double abs_tol = 1e-6;  ///< added to every tolerance
  bool check_dx = true;
  /// Formulas by parameter name (as visit_parameters reports it).
  std::map<std::string, ParamFormula> formulas;
  /// A parameter without a formula is a failure (else a note).
  bool require_formulas = true;
  /// |actual - expected| <= param_rel_tol * sum|contributions| + abs_tol.
  double param_rel_tol = 1e-4;
  std::size_t max_failures_per_property = 8;
};

namespace detail {

template <class Q, class = void>
struct passes_through : std::false_type {};
template <class Q>
struct passes_through<Q, std::void_t<decltype(Q::scheme::clamp_grad::kPassThrough)>>
    : std::integral_constant<bool, Q::scheme::clamp_grad::kPassThrough> {};

template <class Q>
void zero_param_grads(Q& q) {
  if constexpr (::fq::detail::has_parameters<Q>::value) {
    q.visit_parameters([](const char*, TensorView<float>, TensorView<float> grad) {
      for_each_index(grad.rank(), grad.shape(),
                     [&](std::int64_t, const std::int64_t* index) { *grad.at(index) = 0.0f; });
    });
  }
}

/// Reads a view's elements in row-major order.
inline std::vector<double> to_vector(const TensorView<float>& v) {
  std::vector<double> out;
  for_each_index(v.rank(), v.shape(), [&](std::int64_t, const std::int64_t* index) {
    out.push_back(static_cast<double>(*v.at(index)));
  });
  return out;
}

}  // namespace detail

/// Runs the STE-aware gradient checks on q; see the file comment.
template <class Q>
CheckResult check_gradients(Q& q, const GradientCheckOptions& opt = GradientCheckOptions{}) {
  static_assert(assert_quantizer<Q>());
  CheckResult r(opt.max_failures_per_property);
  const Grid grid = detail::resolve_grid(q, opt.grid);
  const int axis = detail::resolve_axis<Q>(opt.channel_axis, grid);
  detail::Layout L;
  if (!detail::make_layout(opt.shape, axis, grid, L, r)) return r;
  const auto n = static_cast<std::size_t>(L.numel);
  const ErrorBound bound = detail::resolve_error_bound<Q>(opt.error_bound);
  SteKind ste = opt.ste;
  if (ste == SteKind::kAuto)
    ste = detail::passes_through<Q>::value ? SteKind::kIdentity : SteKind::kClamped;

  std::vector<float> x = detail::make_inputs(L, grid, {-4.0, 4.0}, opt.seed);
  std::vector<float> y(n), dy(n), dx(n), yp(n);
  std::mt19937 rng(opt.seed ^ 0x9e3779b9u);
  std::uniform_real_distribution<float> mag(0.5f, 1.5f);
  for (float& g : dy) g = (rng() % 2 ? 1.0f : -1.0f) * mag(rng);
  Mask mask;
  detail::zero_param_grads(q);
  if (!detail::guarded(r, "forward/backward", [&] {
        detail::call_forward(q, L.cview(x.data()), L.view(y.data()), &mask);
        detail::call_backward(q, L.cview(x.data()), L.cview(dy.data()), mask, L.view(dx.data()));
      }))
    return r;

  // Parameter gradients first: the finite-difference probes below run more forwards.
  if constexpr (::fq::detail::has_parameters<Q>::value) {
    const ParamGradInputs in{x.data(), y.data(), dy.data(),  &mask,
                             L.numel,  L.axis,   L.channels, L.inner};
    q.visit_parameters([&](const char* name, TensorView<float> value, TensorView<float> grad) {
      const std::vector<double> actual = detail::to_vector(grad);
      const auto it = opt.formulas.find(name);
      if (it == opt.formulas.end()) {
        if (opt.require_formulas)
          r.add_failure("param_gradient", -1, 0, std::nan(""), 0.0, 0.0,
                        detail::say("parameter '", name,
                                    "' has no formula in options.formulas, so its gradient is not "
                                    "checked"));
        else
          r.add_note(
              detail::say("param_gradient: parameter '", name, "' has no formula: not checked"));
        return;
      }
      const ParamFormula& f = it->second;
      std::vector<double> expected(actual.size(), 0.0), scale(actual.size(), 0.0);
      if (f.per_element) {
        for (std::int64_t i = 0; i < L.numel; ++i) {
          const auto u = static_cast<std::size_t>(i);
          const std::int64_t ch = L.channel_of(i);
          const std::size_t k = actual.size() == 1 ? 0 : static_cast<std::size_t>(ch);
          if (k >= expected.size()) continue;
          const double v = f.per_element(x[u], dy[u], ch);
          expected[k] += v;
          scale[k] += std::fabs(v);
        }
      } else if (f.whole) {
        expected = f.whole(in);
        for (std::size_t k = 0; k < expected.size(); ++k) scale[k] = std::fabs(expected[k]);
      }
      if (expected.size() != actual.size()) {
        r.add_failure("param_gradient", -1, 0, std::nan(""), static_cast<double>(expected.size()),
                      static_cast<double>(actual.size()),
                      detail::say("parameter '", name, "': the formula gives ", expected.size(),
                                  " components, the parameter has ", actual.size()));
        return;
      }
      const std::vector<double> values = detail::to_vector(value);
      for (std::size_t k = 0; k < actual.size(); ++k) {
        r.add_stat("param_gradient.checked", 1);
        const double tol = opt.param_rel_tol * scale[k] + opt.abs_tol;
        if (!(std::fabs(actual[k] - expected[k]) <= tol))
          r.add_failure("param_gradient", static_cast<std::int64_t>(k),
                        static_cast<std::int64_t>(k), values[k], expected[k], actual[k],
                        detail::say("parameter '", name, "' element ", k, " (value ", values[k],
                                    "): expected ", expected[k], " (", f.source, ", tolerance ",
                                    tol, "), actual ", actual[k]));
      }
    });
  }
  if (opt.check_dx && grid.empty())
    r.add_note("gradient_dx: no grid levels, so no finite-difference step: not checked");
  if (opt.check_dx && !grid.empty()) {
    constexpr double kFloatEps = std::numeric_limits<float>::epsilon();
    std::vector<float> xp = x;
    Mask probe_mask;
    // Forward with x_i replaced by v; returns y_i and the loss sum(dy * y) in double.
    auto probe = [&](std::size_t i, double v, double& loss) {
      xp[i] = static_cast<float>(v);
      detail::call_forward(q, L.cview(xp.data()), L.view(yp.data()), &probe_mask);
      xp[i] = x[i];
      loss = 0;
      for (std::size_t j = 0; j < n; ++j) loss += static_cast<double>(dy[j]) * yp[j];
      return yp[i];
    };
    std::int64_t checked = 0, skipped_round = 0, skipped_clamp = 0, pass_through = 0;
    const bool ok = detail::guarded(r, "forward (finite differences)", [&] {
      for (std::size_t i = 0; i < n && checked < opt.points; ++i) {
        const auto li = static_cast<std::int64_t>(i);
        const std::int64_t c = L.channel_of(li);
        const std::vector<double>& lv = grid.channel(c);
        const double lo = lv.front(), hi = lv.back();
        const double xi = x[i];
        const double cell = detail::cell_width(lv, xi);
        const double h = opt.span_cells * cell;
        const double delta = std::max(opt.boundary_delta * cell, 8 * std::fabs(xi) * kFloatEps);
        const bool inside = xi > lo && xi < hi;
        const bool below = xi<lo, above = xi> hi;
        if (ste == SteKind::kIdentity && !inside) {
          // Pass-through outside the range: the STE says dx = dy; the staircase is flat there.
          if (xi == lo || xi == hi) continue;
          ++pass_through;
          r.add_stat("gradient_dx.checked", 1);
          if (std::fabs(dx[i] - dy[i]) > opt.abs_tol)
            r.add_failure("gradient_dx", li, c, xi, dy[i], dx[i],
                          detail::say("element ", li, " (channel ", c, "): input ", xi,
                                      " outside the range with a pass-through STE, dy = ", dy[i],
                                      ", expected ", dy[i], ", actual ", dx[i]));
          ++checked;
          continue;
        }
        const double g_lo = detail::cell_width(lv, lo), g_hi = detail::cell_width(lv, hi);
        const bool clear = inside  ? (xi - h - delta > lo && xi + h + delta < hi)
                           : below ? xi + h + delta < lo - g_lo
                           : above ? xi - h - delta > hi + g_hi
                                   : false;
        if (!clear) {
          ++skipped_clamp;
          continue;
        }
        double unused;
        const float a0 = probe(i, xi + h - delta, unused), a1 = probe(i, xi + h + delta, unused);
        const float b0 = probe(i, xi - h - delta, unused), b1 = probe(i, xi - h + delta, unused);
        if (!detail::same_bits(a0, a1) || !detail::same_bits(b0, b1)) {
          ++skipped_round;
          continue;
        }
        const auto xplus = static_cast<float>(xi + h), xminus = static_cast<float>(xi - h);
        double lplus, lminus;
        const double yplus = probe(i, xplus, lplus), yminus = probe(i, xminus, lminus);
        const double width = static_cast<double>(xplus) - static_cast<double>(xminus);
        const double fd = (lplus - lminus) / width;
        // The staircase's distance from the unrounded forward clamp(v, lo, hi) at both ends:
        // measured, capped by the error bound (a larger one is check_quantizer's business).
        auto err = [&](double v, double yv) {
          const double w = detail::cell_width(lv, v);
          const double cap = v < lo || v > hi ? 0.0 : bound == ErrorBound::kHalfStep ? w / 2 : w;
          const double e = std::fabs(yv - std::min(std::max(v, lo), hi));
          return std::min(e, cap) + 4 * std::fabs(v) * kFloatEps;
        };
        const double tol =
            std::fabs(dy[i]) * (err(xplus, yplus) + err(xminus, yminus)) / width + opt.abs_tol;
        ++checked;
        r.add_stat("gradient_dx.checked", 1);
        if (!(std::fabs(dx[i] - fd) <= tol))
          r.add_failure(
              "gradient_dx", li, c, xi, fd, dx[i],
              detail::say("element ", li, " (channel ", c, "): input ", xi, ", dy = ", dy[i],
                          ", expected ", fd,
                          " (central finite difference of sum(dy * y) over x +- ", h, ", ",
                          opt.span_cells, " cells; tolerance ", tol, "), actual ", dx[i]));
      }
    });
    r.add_stat("gradient_dx.skipped_rounding", skipped_round);
    r.add_stat("gradient_dx.skipped_clamp", skipped_clamp);
    if (ok) {
      r.add_note(detail::say("gradient_dx: ", checked, " points checked (", pass_through,
                             " outside the range against dy), ", skipped_round,
                             " skipped near a rounding boundary, ", skipped_clamp,
                             " near a clamping boundary"));
      if (checked < opt.points)
        r.add_note(
            detail::say("gradient_dx: only ", checked, " of the ", opt.points,
                        " requested points were clear of boundaries (larger shape or smaller "
                        "span_cells gives more)"));
    }
  }

  return r;
}

}  // namespace testing
}  // namespace fq

#endif  // FQ_TESTING_CHECK_GRADIENTS_HPP_
