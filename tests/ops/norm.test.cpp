// SPDX-License-Identifier: MIT
// layer_norm and rms_norm (ops/norm.hpp): gradients against finite differences, forward against
// a double-precision reference, adversarial rows, the optional parameters, and bad input.
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include <fakequant/ops/norm.hpp>
#include <fakequant/testing/check_op_gradients.hpp>

#include "ops/ops_test_util.hpp"
#include "test_util.hpp"

using fq::Tape;
using fq::Var;
using fq_test::GradInput;

namespace {
/// The shared check with a tolerance of 3e-3 (a norm's gradient mixes every element of a row).
void check_norm_grad(std::vector<GradInput> in,
                     const std::function<Var(Tape&, std::vector<Var>&)>& f) {
  fq_test::check_grad(std::move(in), f, 1e-2f, 3e-3);
}

/// Layer norm (rms = false) or RMS norm of one row in double, the textbook way.
std::vector<double> norm_ref(const float* x, std::int64_t d, const float* g, const float* b,
                             double eps, bool rms) {
  double mean = 0, var = 0;
  for (std::int64_t i = 0; i < d; ++i) mean += x[i];
  mean = rms ? 0.0 : mean / double(d);
  for (std::int64_t i = 0; i < d; ++i) var += (x[i] - mean) * (x[i] - mean);
  var /= double(d);
  std::vector<double> y(static_cast<std::size_t>(d));
  for (std::int64_t i = 0; i < d; ++i)
    y[std::size_t(i)] = (x[i] - mean) / std::sqrt(var + eps) * (g ? g[i] : 1.0) + (b ? b[i] : 0.0);
  return y;
}
}  // namespace

TEST_CASE("layer_norm: gradients of x, gamma and beta match finite differences", "[ops][norm]") {
  GradInput x({2, 3, 7}, 1, -2, 2), gamma({7}, 2, 0.5f, 1.5f), beta({7}, 3);
  check_norm_grad({x, gamma, beta}, [](Tape& t, std::vector<Var>& v) {
    return fq::ops::layer_norm(t, v[0], v[1], v[2]);
  });
  check_norm_grad({x}, [](Tape& t, std::vector<Var>& v) {
    return fq::ops::layer_norm(t, v[0], Var(), Var(), 1e-3f);
  });
  check_norm_grad({x, gamma}, [](Tape& t, std::vector<Var>& v) {
    return fq::ops::layer_norm(t, v[0], v[1], Var());
  });
  check_norm_grad({x, beta}, [](Tape& t, std::vector<Var>& v) {
    return fq::ops::layer_norm(t, v[0], Var(), v[1]);
  });
  GradInput wide({3, 40}, 4, -3, 5), g40({40}, 5, 0.5f, 1.5f), b40({40}, 6);
  check_norm_grad({wide, g40, b40}, [](Tape& t, std::vector<Var>& v) {
    return fq::ops::layer_norm(t, v[0], v[1], v[2]);
  });
}

TEST_CASE("rms_norm: gradients of x and gamma match finite differences", "[ops][norm]") {
  GradInput x({2, 3, 7}, 11, -2, 2), gamma({7}, 12, 0.5f, 1.5f);
  check_norm_grad({x, gamma},
                  [](Tape& t, std::vector<Var>& v) { return fq::ops::rms_norm(t, v[0], v[1]); });
  check_norm_grad(
      {x}, [](Tape& t, std::vector<Var>& v) { return fq::ops::rms_norm(t, v[0], Var(), 1e-2f); });
  GradInput wide({3, 40}, 13, -3, 5), g40({40}, 14, 0.5f, 1.5f);
  check_norm_grad({wide, g40},
                  [](Tape& t, std::vector<Var>& v) { return fq::ops::rms_norm(t, v[0], v[1]); });
}

TEST_CASE("layer_norm, rms_norm: forward equals a double reference, adversarial rows included",
          "[ops][norm]") {
  const std::int64_t d = 45;  // not a multiple of any SIMD width
  GradInput x({6, d}, 21, -1, 1), gamma({d}, 22, 0.5f, 1.5f), beta({d}, 23);
  for (std::int64_t i = 0; i < d; ++i) {
    x.value[std::size_t(1 * d + i)] *= 80.0f;           // large magnitudes
    x.value[std::size_t(2 * d + i)] += 1e4f;            // a large offset, spread 1
    x.value[std::size_t(3 * d + i)] = -2.5f;            // constant: variance 0
    x.value[std::size_t(4 * d + i)] = 1e-3f * x.at(i);  // tiny values
    x.value[std::size_t(5 * d + i)] = -1e4f + 0.01f * x.at(d + i) / 80.0f;  // spread ~10 ulp
  }
  Tape tape;
  const Var xv = tape.constant(x.value.data(), x.shape);
  const Var gv = tape.constant(gamma.value.data(), gamma.shape);
  const Var bv = tape.constant(beta.value.data(), beta.shape);
  for (int rms = 0; rms < 2; ++rms)
    for (int affine = 0; affine < 2; ++affine) {
      const float eps = rms ? 1e-6f : 1e-5f;
      const Var y = rms ? fq::ops::rms_norm(tape, xv, affine ? gv : Var())
                        : fq::ops::layer_norm(tape, xv, affine ? gv : Var(), affine ? bv : Var());
      REQUIRE(y.shape() == x.shape);
      CHECK_FALSE(y.requires_grad());
      for (std::int64_t r = 0; r < 6; ++r) {
        const auto want = norm_ref(x.value.data() + r * d, d, affine ? gamma.value.data() : nullptr,
                                   affine && !rms ? beta.value.data() : nullptr, eps, rms != 0);
        for (std::int64_t i = 0; i < d; ++i) {
          INFO("rms " << rms << " affine " << affine << " row " << r << " col " << i);
          CHECK(y.value()[r * d + i] == Approx(want[std::size_t(i)]).epsilon(1e-5).margin(2e-6));
        }
      }
    }
  CHECK(tape.node_count() == 0);
  // The constant row normalises to exactly 0: y = beta.
  const Var y = fq::ops::layer_norm(tape, xv, gv, bv);
  for (std::int64_t i = 0; i < d; ++i) CHECK(y.value()[3 * d + i] == beta.at(i));
}

TEST_CASE("layer_norm, rms_norm: gradients accumulate, empty tensors, no-grad recording",
          "[ops][norm]") {
  GradInput x({4, 8}, 31), gamma({8}, 32, 0.5f, 1.5f), beta({8}, 33);
  Tape tape;
  // Pre-filled gradients must be added to, not overwritten: run the same loss twice.
  std::vector<float> once;
  for (int pass = 0; pass < 2; ++pass) {
    std::vector<float> dx(32, pass ? 0.5f : 0.0f), dg(8, pass ? 0.25f : 0.0f);
    const Var xv = tape.leaf(x.value.data(), dx.data(), x.shape);
    const Var gv = tape.leaf(gamma.value.data(), dg.data(), gamma.shape);
    const Var y = fq::ops::layer_norm(tape, xv, gv, tape.constant(beta.value.data(), {8}));
    const Var z = fq::ops::rms_norm(tape, y, gv);
    // L = Σ z ⊙ c with a fixed c: backward through both ops.
    std::vector<float> c(32);
    for (std::size_t i = 0; i < c.size(); ++i) c[i] = std::sin(float(i));
    const Var l = fq::custom_op(
        tape, {z}, {},
        [&](float* out) {
          double s = 0;
          for (std::size_t i = 0; i < 32; ++i) s += double(z.value()[i]) * c[i];
          *out = float(s);
        },
        [z, cp = c.data()](const float*, const float* g) {
          for (std::int64_t i = 0; i < 32; ++i) z.grad()[i] += g[0] * cp[i];
        });
    tape.backward(l);
    if (pass == 0) {
      once = dx;
      once.insert(once.end(), dg.begin(), dg.end());
    } else {
      for (std::size_t i = 0; i < 32; ++i) CHECK(dx[i] == Approx(once[i] + 0.5f).margin(1e-6));
      for (std::size_t i = 0; i < 8; ++i) CHECK(dg[i] == Approx(once[32 + i] + 0.25f).margin(1e-6));
    }
    tape.clear();
  }
  // Empty tensors: an empty result, no closure, no memory read.
  for (const fq::Shape& s : {fq::Shape{0, 8}, fq::Shape{3, 0}}) {
    const Var e = tape.leaf(nullptr, nullptr, s);
    const std::int64_t d = s[1];
    std::vector<float> p(static_cast<std::size_t>(d), 1.0f), dp(p.size());
    const Var pv = tape.leaf(p.data(), dp.data(), {d});
    CHECK(fq::ops::layer_norm(tape, e, pv, pv).shape() == s);
    CHECK(fq::ops::rms_norm(tape, e, pv).shape() == s);
  }
  CHECK(tape.node_count() == 0);
  // No recording: no closure, no gradient.
  std::vector<float> dx(32);
  fq::NoGradGuard guard(tape);
  const Var y =
      fq::ops::layer_norm(tape, tape.leaf(x.value.data(), dx.data(), x.shape), Var(), Var());
  CHECK_FALSE(y.requires_grad());
  CHECK(tape.node_count() == 0);
}

TEST_CASE("layer_norm, rms_norm: bad input is refused with its error code", "[ops][norm]") {
  using fq::ErrorCode;
  using fq_test::error_code_of;
  GradInput x({2, 5}, 41), g5({5}, 42), g4({4}, 43), g15({1, 5}, 44);
  float scalar = 1.0f;
  Tape tape, other;
  const Var xv = tape.constant(x.value.data(), x.shape);
  const Var g5v = tape.constant(g5.value.data(), g5.shape);
  const Var g4v = tape.constant(g4.value.data(), g4.shape);
  const Var g15v = tape.constant(g15.value.data(), g15.shape);
  const Var sv = tape.constant(&scalar, {});
  auto ln = [&](const Var& a, const Var& g, const Var& b, float eps = 1e-5f) {
    return error_code_of([&] { fq::ops::layer_norm(tape, a, g, b, eps); });
  };
  auto rms = [&](const Var& a, const Var& g, float eps = 1e-6f) {
    return error_code_of([&] { fq::ops::rms_norm(tape, a, g, eps); });
  };
  CHECK(ln(xv, g5v, g5v) == ErrorCode{});
  CHECK(rms(xv, g5v) == ErrorCode{});
  CHECK(ln(xv, g4v, g5v) == ErrorCode::kShapeMismatch);     // gamma of the wrong size
  CHECK(ln(xv, g5v, g4v) == ErrorCode::kShapeMismatch);     // beta of the wrong size
  CHECK(ln(xv, g15v, Var()) == ErrorCode::kShapeMismatch);  // gamma not [D]
  CHECK(rms(xv, g4v) == ErrorCode::kShapeMismatch);
  CHECK(ln(sv, Var(), Var()) == ErrorCode::kShapeMismatch);  // a scalar has no last axis
  CHECK(rms(sv, Var()) == ErrorCode::kShapeMismatch);
  const float nan = std::numeric_limits<float>::quiet_NaN(),
              inf = std::numeric_limits<float>::infinity();
  for (float eps : {0.0f, -1e-5f, nan, inf}) {
    INFO("eps " << eps);
    CHECK(ln(xv, Var(), Var(), eps) == ErrorCode::kInvalidArgument);
    CHECK(rms(xv, Var(), eps) == ErrorCode::kInvalidArgument);
  }
  const Var xo = other.constant(x.value.data(), x.shape);
  CHECK(ln(xo, Var(), Var()) == ErrorCode::kInvalidArgument);  // another tape
  CHECK(ln(xv, other.constant(g5.value.data(), {5}), Var()) == ErrorCode::kInvalidArgument);
  CHECK(rms(xo, Var()) == ErrorCode::kInvalidArgument);
  Var freed = tape.variable({2, 5}, false);
  tape.clear();
  CHECK(ln(freed, Var(), Var()) == ErrorCode::kInvalidState);  // freed by clear()
  CHECK(rms(freed, Var()) == ErrorCode::kInvalidState);
  CHECK_THROWS_WITH(fq::ops::layer_norm(tape, xv, g4v, Var()), Catch::Contains("layer_norm"));
}

TEST_CASE("layer_norm, rms_norm: identical rows get identical bits wherever they lie",
          "[ops][norm]") {
  // Rows of 37 and 100 floats start at every offset mod 16; 16 and 64 are aligned rows; with
  // and without gamma (and beta).
  for (std::int64_t d : {16, 37, 64, 100})
    for (bool affine : {false, true}) {
      INFO("D " << d << " affine " << affine);
      const auto du = static_cast<std::size_t>(d);
      std::vector<float> gamma(du), beta(du), dg(du), db(du);
      for (std::size_t j = 0; j < gamma.size(); ++j) {
        gamma[j] = 0.5f + 0.01f * float(j);
        beta[j] = 0.1f - 0.003f * float(j);
      }
      const fq::Shape s{33, d};
      fq_test::check_copies_bitwise(s, [&](Tape& t, const Var& x) {
        const Var g = affine ? t.leaf(gamma.data(), dg.data(), {d}) : Var();
        const Var b = affine ? t.leaf(beta.data(), db.data(), {d}) : Var();
        return fq::ops::layer_norm(t, x, g, b);
      });
      fq_test::check_copies_bitwise(s, [&](Tape& t, const Var& x) {
        const Var g = affine ? t.leaf(gamma.data(), dg.data(), {d}) : Var();
        return fq::ops::rms_norm(t, x, g);
      });
    }
}
