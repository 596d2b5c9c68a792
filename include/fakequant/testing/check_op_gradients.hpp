// SPDX-License-Identifier: MIT
// fakequant/testing/check_op_gradients.hpp: a finite-difference check of a tape op's gradient,
// for users who wrap their own kernels with fq::custom_op (tape/custom_op.hpp) and for the
// library's own ops.
//
//   std::vector<fq::testing::OpInput> in{{{5, 7}, /*seed=*/1}, {{3, 7}, 2}};
//   auto r = fq::testing::check_op_gradients(in, [](fq::Tape& t, std::vector<fq::Var>& v) {
//     return my_op(t, v[0], v[1]);                  // e.g. a custom_op around your kernel
//   });
//   REQUIRE(r.passed());                            // r.report() names the worst element
//
// The check reduces the op's output y to L = Σ y ⊙ r for a fixed random r in [-1, 1] (so every
// output element matters), runs Tape::backward once for the analytic gradient of every input,
// and compares each element with the central difference (L(x + h) − L(x − h)) / 2h, evaluated
// in float and differenced in double. An element fails ("op_gradient") when
//   |analytic − numeric| / max(1, |numeric|) > tolerance,
// or when either is not finite. The failure's channel is the input's index, its index the
// element's. Central differences are O(h²) accurate for smooth ops; ops with kinks (ReLU,
// max, rounding) need inputs away from them, or a step h smaller than the distance to them.
// Cost: 2 forward passes per input element, so keep the inputs small (tens to hundreds).
#ifndef FQ_TESTING_CHECK_OP_GRADIENTS_HPP_
#define FQ_TESTING_CHECK_OP_GRADIENTS_HPP_

#include <algorithm>  // fill, max
#include <cmath>      // abs, isfinite
#include <cstddef>    // size_t
#include <cstdint>    // int64_t, uint32_t
#include <random>     // mt19937, uniform_real_distribution
#include <sstream>    // ostringstream
#include <utility>    // move
#include <vector>     // vector

#include <fakequant/base/error.hpp>
#include <fakequant/tape/custom_op.hpp>
#include <fakequant/tape/tape.hpp>
#include <fakequant/testing/result.hpp>

namespace fq {
namespace testing {

/// One input of an op gradient check: its values (owned here) and the gradient the tape writes.
struct OpInput {
  Shape shape;
  std::vector<float> value;
  std::vector<float> grad;

  /// Values drawn uniformly from [lo, hi) with a fixed seed.
  OpInput(Shape s, std::uint32_t seed, float lo = -1.0f, float hi = 1.0f)
      : shape(s), value(static_cast<std::size_t>(s.numel())), grad(value.size()) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> u(lo, hi);
    for (float& v : value) v = u(rng);
  }
  /// Given values (row-major, numel of `s`).
  OpInput(Shape s, std::vector<float> values)
      : shape(s), value(std::move(values)), grad(value.size()) {
    FQ_CHECK(
        static_cast<std::int64_t>(value.size()) == s.numel(), ErrorCode::kShapeMismatch,
        ::fq::detail::msg("testing::OpInput: ", value.size(), " values for the shape ", s.str()));
  }
  float at(std::int64_t i) const { return value[static_cast<std::size_t>(i)]; }
};

/// Settings of check_op_gradients.
struct OpGradientOptions {
  float step = 1e-2f;       ///< h of the central difference
  double tolerance = 2e-3;  ///< on |analytic − numeric| / max(1, |numeric|)
  std::uint32_t seed = 7;   ///< of the weights r in L = Σ y ⊙ r
};

namespace detail {
/// L = Σ y ⊙ r as a tape op (its backward adds dL · r into y's gradient).
inline Var weighted_sum(Tape& tape, const Var& y, const float* r) {
  return custom_op(
      tape, {y}, {},
      [&](float* l) {
        double s = 0;
        for (std::int64_t i = 0; i < y.numel(); ++i) s += double(y.value()[i]) * r[i];
        *l = static_cast<float>(s);
      },
      [y, r](const float*, const float* dl) {
        for (std::int64_t i = 0; i < y.numel(); ++i) y.grad()[i] += dl[0] * r[i];
      });
}
}  // namespace detail

/// Checks the gradient of the op `build(tape, vars)` (vars: one Var per input, in order)
/// against central differences (file comment). The inputs' values are restored afterwards;
/// their `grad` holds the analytic gradient.
template <class Build>
CheckResult check_op_gradients(std::vector<OpInput>& inputs, Build&& build,
                               const OpGradientOptions& opt = {}) {
  constexpr const char* kWhere = "testing::check_op_gradients";
  FQ_CHECK(!inputs.empty(), ErrorCode::kInvalidArgument,
           ::fq::detail::msg(kWhere, ": no inputs to differentiate"));
  FQ_CHECK(std::isfinite(opt.step) && opt.step > 0.0f && std::isfinite(opt.tolerance) &&
               opt.tolerance >= 0.0,
           ErrorCode::kInvalidArgument,
           ::fq::detail::msg(kWhere, ": step (", opt.step, ") must be finite and > 0, tolerance (",
                             opt.tolerance, ") finite and >= 0"));
  CheckResult result;
  Tape tape;
  std::vector<float> r;
  auto eval = [&](bool grad) {
    std::vector<Var> vars;
    vars.reserve(inputs.size());
    for (OpInput& in : inputs)
      vars.push_back(tape.leaf(in.value.data(), grad ? in.grad.data() : nullptr, in.shape));
    const Var y = build(tape, vars);
    if (r.empty()) {  // the weights of L, drawn once the output size is known
      r.resize(static_cast<std::size_t>(y.numel()));
      std::mt19937 rng(opt.seed);
      std::uniform_real_distribution<float> u(-1.0f, 1.0f);
      for (float& v : r) v = u(rng);
    }
    FQ_CHECK(static_cast<std::size_t>(y.numel()) == r.size(), ErrorCode::kShapeMismatch,
             ::fq::detail::msg(kWhere, ": the op's output changed size between evaluations (",
                               r.size(), " then ", y.numel(), ")"));
    const Var loss = detail::weighted_sum(tape, y, r.data());
    const double l = loss.value()[0];
    if (grad) tape.backward(loss);
    tape.clear();
    return l;
  };
  for (OpInput& in : inputs) std::fill(in.grad.begin(), in.grad.end(), 0.0f);
  eval(true);
  double worst = 0;
  std::int64_t checked = 0;
  for (std::size_t a = 0; a < inputs.size(); ++a) {
    OpInput& in = inputs[a];
    for (std::size_t e = 0; e < in.value.size(); ++e) {
      const float x0 = in.value[e];
      in.value[e] = x0 + opt.step;
      const double lp = eval(false);
      in.value[e] = x0 - opt.step;
      const double lm = eval(false);
      in.value[e] = x0;
      const double numeric = (lp - lm) / (2.0 * double(opt.step));
      const double analytic = in.grad[e];
      const double err = std::abs(analytic - numeric) / std::max(1.0, std::abs(numeric));
      ++checked;
      const bool finite = std::isfinite(numeric) && std::isfinite(analytic);
      if (finite) worst = std::max(worst, err);
      if (!finite || !(err <= opt.tolerance)) {
        std::ostringstream os;
        os << "input " << a << " element " << e << " (x = " << x0 << "): analytic gradient "
           << analytic << ", central difference " << numeric << " (h = " << opt.step
           << "), relative error " << err << " > tolerance " << opt.tolerance;
        result.add_failure("op_gradient", static_cast<std::int64_t>(e),
                           static_cast<std::int64_t>(a), x0, numeric, analytic, os.str());
      }
    }
  }
  result.add_stat("op_gradient.checked", checked);
  std::ostringstream note;
  note << "op_gradient: worst finite relative error " << worst << " over " << checked
       << " elements";
  result.add_note(note.str());
  return result;
}

}  // namespace testing
}  // namespace fq

#endif  // FQ_TESTING_CHECK_OP_GRADIENTS_HPP_
