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
// The analytic gradient is also taken with each input entering through a copy on the tape — a
// tape variable whose gradient the op may store into as its first writer instead of adding
// (tape/grad_state.hpp), in an arena first filled with NaN: it must equal the gradient the
// inputs get as leaves bit for bit. Then again with a second consumer of each copy whose
// gradient (0.5) reaches it first, so the op must add: the leaves' gradient + 0.5 within 0.125
// (an op may add in several steps, which rounds otherwise). Property
// "op_gradient_first_writer" (also alone: check_first_writer): an op that claims a gradient
// and leaves an element unwritten, or stores where it must add, fails.
// Cost: 2 forward passes per input element, so keep the inputs small (tens to hundreds).
#ifndef FQ_TESTING_CHECK_OP_GRADIENTS_HPP_
#define FQ_TESTING_CHECK_OP_GRADIENTS_HPP_

#include <algorithm>    // copy_n, fill, fill_n, max
#include <cmath>        // abs, isfinite
#include <cstddef>      // size_t
#include <cstdint>      // int64_t, uint32_t
#include <limits>       // numeric_limits
#include <random>       // mt19937, uniform_real_distribution
#include <sstream>      // ostringstream
#include <type_traits>  // remove_reference_t
#include <utility>      // move
#include <vector>       // vector

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
        float* const dy = y.grad();
        for (std::int64_t i = 0; i < y.numel(); ++i) dy[i] += dl[0] * r[i];
      });
}
/// x copied into a tape variable whose backward adds its gradient into x's.
inline Var tape_copy(Tape& tape, const Var& x) {
  return custom_op(
      tape, {x}, x.shape(), [&](float* y) { std::copy_n(x.value(), x.numel(), y); },
      [x](const float*, const float* dy) {
        float* const dx = x.grad();
        for (std::int64_t i = 0; i < x.numel(); ++i) dx[i] += dy[i];
      });
}
/// loss + 0·c as a tape op whose backward adds d loss · preload into c's gradient: a second
/// consumer of c, recorded after the op under test, so its gradient reaches c first.
inline Var plus_preload(Tape& tape, const Var& loss, const Var& c, float preload) {
  return custom_op(
      tape, {loss, c}, {}, [&](float* l) { *l = loss.value()[0]; },
      [loss, c, preload](const float*, const float* dl) {
        loss.grad()[0] += dl[0];
        float* const dc = c.grad();
        for (std::int64_t i = 0; i < c.numel(); ++i) dc[i] += dl[0] * preload;
      });
}
/// Fills the memory the tape's next step will use (up to the arena's peak) with NaN, so that
/// a gradient claimed but not written whole shows as NaN.
inline void poison_arena(Tape& tape) {
  tape.clear();
  const std::size_t peak = tape.arena().peak_bytes();
  constexpr std::size_t kFloats = Arena::kAlign / sizeof(float);
  while (tape.arena().bytes_in_use() < peak)
    std::fill_n(tape.scratch<float>(kFloats), kFloats, std::numeric_limits<float>::quiet_NaN());
  tape.clear();
}

/// One evaluation of L = Σ build(tape, vars) ⊙ r (file comment) for check_op_gradients and
/// check_first_writer: r drawn on the first call, once the output size is known.
template <class Build>
class WeightedLoss {
 public:
  WeightedLoss(std::vector<OpInput>& inputs, Build& build, std::uint32_t seed, const char* where)
      : inputs_(inputs), build_(build), seed_(seed), where_(where) {}

  /// L; with grad, its gradients accumulated into the inputs' `grad`, or into `through` (one
  /// vector per input) with each input entering through a tape copy — which, if preload is
  /// not 0, has a second consumer adding preload to its gradient before the op's backward.
  double operator()(bool grad, std::vector<std::vector<float>>* through = nullptr,
                    float preload = 0.0f) {
    std::vector<Var> vars;
    vars.reserve(inputs_.size());
    for (std::size_t a = 0; a < inputs_.size(); ++a) {
      OpInput& in = inputs_[a];
      float* g = through ? (*through)[a].data() : grad ? in.grad.data() : nullptr;
      vars.push_back(tape_.leaf(in.value.data(), g, in.shape));
      if (through) vars.back() = tape_copy(tape_, vars.back());
    }
    const std::vector<Var> copies = vars;  // build may change its vector
    const Var y = build_(tape_, vars);
    if (r_.empty()) {
      r_.resize(static_cast<std::size_t>(y.numel()));
      std::mt19937 rng(seed_);
      std::uniform_real_distribution<float> u(-1.0f, 1.0f);
      for (float& v : r_) v = u(rng);
    }
    FQ_CHECK(static_cast<std::size_t>(y.numel()) == r_.size(), ErrorCode::kShapeMismatch,
             ::fq::detail::msg(where_, ": the op's output changed size between evaluations (",
                               r_.size(), " then ", y.numel(), ")"));
    Var loss = weighted_sum(tape_, y, r_.data());
    if (through && preload != 0.0f)
      for (const Var& c : copies) loss = plus_preload(tape_, loss, c, preload);
    const double l = loss.value()[0];
    if (grad) tape_.backward(loss);
    tape_.clear();
    return l;
  }

  /// The inputs' gradients as leaves (into their `grad`), then through tape copies in a
  /// NaN-filled arena, without and with a preload (file comment); an element that differs
  /// (bit for bit; with the preload, by more than a quarter of it) is a failure of `result`.
  void compare_first_writer(CheckResult& result) {
    for (OpInput& in : inputs_) std::fill(in.grad.begin(), in.grad.end(), 0.0f);
    (*this)(true);
    for (const float preload : {0.0f, 0.5f}) {
      std::vector<std::vector<float>> through(inputs_.size());
      for (std::size_t a = 0; a < inputs_.size(); ++a)
        through[a].assign(inputs_[a].grad.size(), 0.0f);
      poison_arena(tape_);
      (*this)(true, &through, preload);
      for (std::size_t a = 0; a < inputs_.size(); ++a) {
        for (std::size_t e = 0; e < through[a].size(); ++e) {
          const float leaf = inputs_[a].grad[e] + preload, copy = through[a][e];
          if (preload == 0.0f ? leaf == copy : std::abs(leaf - copy) <= 0.25f * preload) continue;
          if (std::isnan(leaf) && std::isnan(copy)) continue;
          std::ostringstream os;
          os << "input " << a << " element " << e << ": analytic gradient " << leaf
             << " as a leaf, " << copy << " through a tape variable ("
             << (preload == 0.0f ? "stored by its first writer)"
                                 : "added to another consumer's gradient)");
          result.add_failure("op_gradient_first_writer", static_cast<std::int64_t>(e),
                             static_cast<std::int64_t>(a), inputs_[a].value[e], leaf, copy,
                             os.str());
        }
        result.add_stat("op_gradient_first_writer.checked",
                        static_cast<std::int64_t>(through[a].size()));
      }
    }
  }

 private:
  std::vector<OpInput>& inputs_;
  Build& build_;
  std::uint32_t seed_;
  const char* where_;
  Tape tape_;
  std::vector<float> r_;
};
}  // namespace detail

/// Checks that the op `build(tape, vars)` gives its inputs the same gradient whether they are
/// the tape's leaves or tape variables, whose gradients the op may store into as their first
/// writer (file comment; tape/grad_state.hpp) — for ops where central differences do not
/// apply (rounding, max). Property "op_gradient_first_writer"; the inputs' `grad` holds the
/// gradient of L = Σ y ⊙ r (r seeded by `seed`).
template <class Build>
CheckResult check_first_writer(std::vector<OpInput>& inputs, Build&& build,
                               std::uint32_t seed = 7) {
  constexpr const char* kWhere = "testing::check_first_writer";
  FQ_CHECK(!inputs.empty(), ErrorCode::kInvalidArgument,
           ::fq::detail::msg(kWhere, ": no inputs to differentiate"));
  CheckResult result;
  detail::WeightedLoss<std::remove_reference_t<Build>> loss(inputs, build, seed, kWhere);
  loss.compare_first_writer(result);
  return result;
}

/// Checks the gradient of the op `build(tape, vars)` (vars: one Var per input, in order)
/// against central differences, and the first-writer path as check_first_writer (file
/// comment). The inputs' values are restored afterwards; their `grad` holds the analytic
/// gradient.
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
  detail::WeightedLoss<std::remove_reference_t<Build>> eval(inputs, build, opt.seed, kWhere);
  eval.compare_first_writer(result);  // leaves the leaf gradients in the inputs' `grad`
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
