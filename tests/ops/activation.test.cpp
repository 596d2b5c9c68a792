// SPDX-License-Identifier: MIT
// gelu (erf and tanh forms) and silu (ops/activation.hpp): gradients against finite differences,
// forward and gradient against double-precision references (std::erf, std::tanh, std::exp), the
// far tails, and bad input.
#include <cmath>
#include <cstdint>
#include <functional>
#include <vector>

#include <catch2/catch.hpp>

#include <fakequant/ops/activation.hpp>
#include <fakequant/testing/check_op_gradients.hpp>

#include "ops/ops_test_util.hpp"
#include "test_util.hpp"

using fq::Tape;
using fq::Var;
using fq::ops::GeluApprox;
using fq_test::check_grad;
using fq_test::GradInput;

namespace {
// References in double, written from the definitions (not from the op's formulas).
double gelu_ref(double x, bool tanh_form) {
  if (!tanh_form) return x * 0.5 * std::erfc(-x / std::sqrt(2.0));
  const double u = std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x);
  return 0.5 * x * (1.0 + std::tanh(u));
}
double silu_ref(double x) { return x / (1.0 + std::exp(-x)); }
/// The derivative by a central difference in double (h small: the functions are smooth).
template <class F>
double deriv(F f, double x) {
  const double h = 1e-5 * std::max(1.0, std::abs(x));
  return (f(x + h) - f(x - h)) / (2 * h);
}

/// x from −lim to lim plus special values; an odd count, not a multiple of a SIMD width.
std::vector<float> sweep(float lim) {
  std::vector<float> x;
  for (int i = 0; i <= 400; ++i) x.push_back(-lim + 2 * lim * float(i) / 400.0f);
  for (float v : {0.0f, -0.0f, 1e-20f, -1e-20f, 1e-3f, -1e-3f, 0.5f, -0.5f}) x.push_back(v);
  return x;
}
}  // namespace

TEST_CASE("gelu, silu: gradients match finite differences", "[ops][activation]") {
  GradInput x({3, 5, 9}, 1, -4, 4);
  check_grad({x}, [](Tape& t, std::vector<Var>& v) { return fq::ops::gelu(t, v[0]); });
  check_grad(
      {x}, [](Tape& t, std::vector<Var>& v) { return fq::ops::gelu(t, v[0], GeluApprox::kTanh); });
  GradInput wide({2, 61}, 2, -8, 8);
  check_grad({wide}, [](Tape& t, std::vector<Var>& v) { return fq::ops::silu(t, v[0]); });
  check_grad({wide}, [](Tape& t, std::vector<Var>& v) { return fq::ops::gelu(t, v[0]); });
}

TEST_CASE("gelu, silu: forward and gradient equal double references up to |x| = 10 (100)",
          "[ops][activation]") {
  struct Op {
    const char* name;
    float lim;
    std::function<double(double)> f;
    std::function<Var(Tape&, const Var&)> op;
  };
  const Op ops[] = {
      {"gelu none", 10.0f, [](double v) { return gelu_ref(v, false); },
       [](Tape& t, const Var& v) { return fq::ops::gelu(t, v, GeluApprox::kNone); }},
      {"gelu tanh", 10.0f, [](double v) { return gelu_ref(v, true); },
       [](Tape& t, const Var& v) { return fq::ops::gelu(t, v, GeluApprox::kTanh); }},
      {"silu", 100.0f, silu_ref, [](Tape& t, const Var& v) { return fq::ops::silu(t, v); }},
  };
  for (const Op& op : ops) {
    std::vector<float> x = sweep(op.lim), dx(x.size(), 0.0f);
    const auto n = static_cast<std::int64_t>(x.size());
    Tape tape;
    const Var xv = tape.leaf(x.data(), dx.data(), {n});
    const Var y = op.op(tape, xv);
    REQUIRE(y.shape() == xv.shape());
    tape.backward(fq::custom_op(
        tape, {y}, {}, [](float* l) { *l = 0.0f; },
        [y](const float*, const float* g) {  // dL/dy = 1 everywhere
          for (std::int64_t i = 0; i < y.numel(); ++i) y.grad()[i] += g[0];
        }));
    for (std::size_t i = 0; i < x.size(); ++i) {
      const double xi = x[i];
      INFO(op.name << " x " << xi);
      // Absolute error of a few float ulps of |x| (1 + erf(x/√2) cancels for x << 0, as in
      // PyTorch's formula) plus 1e-6 relative.
      const double y_ref = op.f(xi),
                   tol = 1e-6 * std::abs(y_ref) + 5e-7 * std::max(1.0, std::abs(xi));
      CHECK(std::abs(y.value()[i] - y_ref) <= tol);
      const double d_ref = deriv(op.f, xi);
      CHECK(std::abs(dx[i] - d_ref) <= 1e-5 * std::abs(d_ref) + 2e-6 * std::max(1.0, std::abs(xi)));
    }
    CHECK(std::isfinite(dx.front()));
    CHECK(std::isfinite(dx.back()));
  }
}

TEST_CASE("gelu, silu: the far tails are ~0 or exactly the identity, never NaN",
          "[ops][activation]") {
  std::vector<float> x = {-1e30f, -1e4f, -100.0f, -89.0f, 1e4f, 1e30f}, dx(x.size(), 0.0f);
  for (int which = 0; which < 3; ++which) {
    Tape tape;
    std::fill(dx.begin(), dx.end(), 0.0f);
    const Var xv = tape.leaf(x.data(), dx.data(), {6});
    const Var y = which == 2   ? fq::ops::silu(tape, xv)
                  : which == 1 ? fq::ops::gelu(tape, xv, GeluApprox::kTanh)
                               : fq::ops::gelu(tape, xv);
    tape.backward(fq::custom_op(
        tape, {y}, {}, [](float* l) { *l = 0.0f; },
        [y](const float*, const float* g) {
          for (std::int64_t i = 0; i < y.numel(); ++i) y.grad()[i] += g[0];
        }));
    for (std::size_t i = 0; i < x.size(); ++i) {
      INFO("op " << which << " x " << x[i]);
      if (x[i] < 0) {
        CHECK(std::abs(y.value()[i]) < 1e-30f);
        CHECK(std::abs(dx[i]) < 1e-25f);
      } else {
        CHECK(y.value()[i] == x[i]);
        CHECK(dx[i] == 1.0f);
      }
    }
  }
}

TEST_CASE("gelu, silu: empty tensors, no-grad recording and bad input", "[ops][activation]") {
  using fq::ErrorCode;
  using fq_test::error_code_of;
  Tape tape, other;
  const Var e = tape.leaf(nullptr, nullptr, {0, 4});
  CHECK(fq::ops::gelu(tape, e).shape() == fq::Shape({0, 4}));
  CHECK(fq::ops::gelu(tape, e, GeluApprox::kTanh).numel() == 0);
  CHECK(fq::ops::silu(tape, e).numel() == 0);
  CHECK(tape.node_count() == 0);
  GradInput x({2, 3}, 5);
  {
    fq::NoGradGuard guard(tape);
    const Var y = fq::ops::gelu(tape, tape.leaf(x.value.data(), x.grad.data(), x.shape));
    CHECK_FALSE(y.requires_grad());
    CHECK(tape.node_count() == 0);
  }
  const Var xv = tape.constant(x.value.data(), x.shape);
  CHECK(error_code_of([&] { fq::ops::gelu(tape, xv, static_cast<GeluApprox>(7)); }) ==
        ErrorCode::kInvalidArgument);
  CHECK(error_code_of([&] { fq::ops::gelu(other, xv); }) == ErrorCode::kInvalidArgument);
  CHECK(error_code_of([&] { fq::ops::silu(other, xv); }) == ErrorCode::kInvalidArgument);
  CHECK(error_code_of([&] { fq::ops::gelu(tape, Var()); }) == ErrorCode::kInvalidArgument);
  const Var freed = tape.variable({2, 3}, false);
  tape.clear();
  CHECK(error_code_of([&] { fq::ops::gelu(tape, freed); }) == ErrorCode::kInvalidState);
  CHECK(error_code_of([&] { fq::ops::silu(tape, freed); }) == ErrorCode::kInvalidState);
  CHECK_THROWS_WITH(fq::ops::gelu(tape, xv, static_cast<GeluApprox>(7)), Catch::Contains("gelu"));
}

TEST_CASE("gelu, silu: a row's bits do not depend on where it lies", "[ops][activation]") {
  // Rows of 37 and 100 floats start at every offset mod 16; Eigen's scalar head and tail (an
  // exp or erf an ulp off the packet one) once gave some rows other bits.
  const std::function<Var(Tape&, const Var&)> ops[] = {
      [](Tape& t, const Var& x) { return fq::ops::gelu(t, x, GeluApprox::kNone); },
      [](Tape& t, const Var& x) { return fq::ops::gelu(t, x, GeluApprox::kTanh); },
      [](Tape& t, const Var& x) { return fq::ops::silu(t, x); }};
  for (const auto& op : ops)
    for (const fq::Shape& s : {fq::Shape{16, 37}, fq::Shape{16, 100}, fq::Shape{3, 300}})
      fq_test::check_copies_bitwise(s, op);
}
