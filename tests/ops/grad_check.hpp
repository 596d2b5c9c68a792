// SPDX-License-Identifier: MIT
// tests/ops/grad_check.hpp: finite-difference gradient check for tape ops.
#ifndef FQ_TESTS_OPS_GRAD_CHECK_HPP_
#define FQ_TESTS_OPS_GRAD_CHECK_HPP_

#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include <fakequant/tape/tape.hpp>

namespace fq_test {

/// An input of a gradient check: its values and the gradient the tape writes.
struct GradInput {
  fq::Shape shape;
  std::vector<float> value, grad;
  GradInput(fq::Shape s, std::uint32_t seed, float lo = -1.0f, float hi = 1.0f)
      : shape(s), value(static_cast<std::size_t>(s.numel())), grad(value.size()) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> u(lo, hi);
    for (float& v : value) v = u(rng);
  }
  float at(std::int64_t i) const { return value[static_cast<std::size_t>(i)]; }
};

/// Scalar L = Σ y ⊙ r for a fixed random r, so every output element matters.
inline fq::Var weighted_sum(fq::Tape& tape, const fq::Var& y, std::uint32_t seed) {
  auto* r = tape.scratch<float>(static_cast<std::size_t>(y.numel()));
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (std::int64_t i = 0; i < y.numel(); ++i) r[i] = u(rng);
  return fq::custom_op(
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

/// The largest |analytic − numeric| / max(1, |numeric|) over all inputs, with central
/// differences of step h (computed in double from float evaluations). `f` builds the op.
inline double max_grad_error(std::vector<GradInput>& in,
                             const std::function<fq::Var(fq::Tape&, std::vector<fq::Var>&)>& f,
                             float h = 1e-2f, std::string* where = nullptr) {
  fq::Tape tape;
  auto eval = [&](bool grad) {
    std::vector<fq::Var> v;
    for (auto& i : in)
      v.push_back(tape.leaf(i.value.data(), grad ? i.grad.data() : nullptr, i.shape));
    fq::Var loss = weighted_sum(tape, f(tape, v), 7);
    const double l = loss.value()[0];
    if (grad) tape.backward(loss);
    tape.clear();
    return l;
  };
  for (auto& i : in) std::fill(i.grad.begin(), i.grad.end(), 0.0f);
  eval(true);
  double worst = 0;
  for (std::size_t a = 0; a < in.size(); ++a)
    for (std::size_t e = 0; e < in[a].value.size(); ++e) {
      const float x0 = in[a].value[e];
      in[a].value[e] = x0 + h;
      const double lp = eval(false);
      in[a].value[e] = x0 - h;
      const double lm = eval(false);
      in[a].value[e] = x0;
      const double num = (lp - lm) / (2.0 * double(h));
      const double err = std::abs(double(in[a].grad[e]) - num) / std::max(1.0, std::abs(num));
      if (err > worst) {
        worst = err;
        if (where)
          *where = "input " + std::to_string(a) + " element " + std::to_string(e) + ": analytic " +
                   std::to_string(in[a].grad[e]) + ", numeric " + std::to_string(num);
      }
    }
  return worst;
}

}  // namespace fq_test

#endif  // FQ_TESTS_OPS_GRAD_CHECK_HPP_
