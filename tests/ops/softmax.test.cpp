// SPDX-License-Identifier: MIT
// softmax and log_softmax (ops/softmax.hpp): gradients against finite differences on every axis,
// forward against a double reference that walks the slices by explicit strides, large and
// masked (−inf) inputs, and bad input.
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <vector>

#include <catch2/catch.hpp>

#include <fakequant/ops/softmax.hpp>
#include <fakequant/testing/check_op_gradients.hpp>

#include "ops/ops_test_util.hpp"
#include "test_util.hpp"

using fq::Tape;
using fq::Var;
using fq_test::check_grad;
using fq_test::GradInput;

namespace {
/// Softmax or log-softmax along `axis` (>= 0) in double: each slice gathered by its stride.
std::vector<double> softmax_ref(const std::vector<float>& x, const fq::Shape& s, int axis,
                                bool log) {
  std::int64_t stride = 1;
  for (int d = s.rank - 1; d > axis; --d) stride *= s[d];
  const std::int64_t n = s[axis];
  std::vector<double> y(x.size());
  for (std::int64_t i = 0; i < s.numel(); ++i) {
    if ((i / stride) % n != 0) continue;  // i is the first element of its slice
    double m = -INFINITY, sum = 0;
    for (std::int64_t k = 0; k < n; ++k) m = std::max(m, double(x[std::size_t(i + k * stride)]));
    for (std::int64_t k = 0; k < n; ++k) sum += std::exp(x[std::size_t(i + k * stride)] - m);
    for (std::int64_t k = 0; k < n; ++k) {
      const double z = x[std::size_t(i + k * stride)] - m;
      y[std::size_t(i + k * stride)] = log ? z - std::log(sum) : std::exp(z) / sum;
    }
  }
  return y;
}
}  // namespace

TEST_CASE("softmax, log_softmax: gradients match finite differences on every axis",
          "[ops][softmax]") {
  GradInput x({2, 3, 5}, 1, -3, 3);
  for (int axis : {0, 1, 2, -1, -2, -3})
    for (bool log : {false, true}) {
      INFO("axis " << axis << " log " << log);
      check_grad({x}, [axis, log](Tape& t, std::vector<Var>& v) {
        return log ? fq::ops::log_softmax(t, v[0], axis) : fq::ops::softmax(t, v[0], axis);
      });
    }
  GradInput v1({17}, 2, -3, 3);  // rank 1
  check_grad({v1}, [](Tape& t, std::vector<Var>& v) { return fq::ops::softmax(t, v[0]); });
  check_grad({v1}, [](Tape& t, std::vector<Var>& v) { return fq::ops::log_softmax(t, v[0], 0); });
}

TEST_CASE("softmax, log_softmax: forward equals a strided double reference", "[ops][softmax]") {
  const fq::Shape shapes[] = {{4, 37}, {3, 5, 7}, {2, 3, 4, 5}, {1, 9}, {9, 1}, {2, 1, 3}};
  std::uint32_t seed = 10;
  for (const fq::Shape& s : shapes) {
    GradInput x(s, seed++, -6, 6);
    Tape tape;
    const Var xv = tape.constant(x.value.data(), s);
    for (int axis = -s.rank; axis < s.rank; ++axis)
      for (bool log : {false, true}) {
        const Var y = log ? fq::ops::log_softmax(tape, xv, axis) : fq::ops::softmax(tape, xv, axis);
        REQUIRE(y.shape() == s);
        const auto want = softmax_ref(x.value, s, axis < 0 ? axis + s.rank : axis, log);
        for (std::size_t i = 0; i < want.size(); ++i) {
          INFO("shape " << s.str() << " axis " << axis << " log " << log << " element " << i);
          REQUIRE(y.value()[i] == Approx(want[i]).epsilon(2e-6).margin(log ? 4e-7 : 1e-7));
        }
      }
    CHECK(tape.node_count() == 0);
  }
}

TEST_CASE("softmax, log_softmax: large, offset, constant and masked rows", "[ops][softmax]") {
  const float inf = std::numeric_limits<float>::infinity();
  const std::int64_t k = 19;
  GradInput x({6, k}, 20, -1, 1);
  for (std::int64_t i = 0; i < k; ++i) {
    x.value[std::size_t(0 * k + i)] *= 80.0f;
    x.value[std::size_t(1 * k + i)] = 1e4f + 3.0f * x.at(k + i);
    x.value[std::size_t(2 * k + i)] = -1e4f + x.at(2 * k + i);
    x.value[std::size_t(3 * k + i)] = 7.0f;
  }
  x.value[std::size_t(4 * k + 2)] = -inf;  // a masked position (attention masks)
  x.value[std::size_t(4 * k + 11)] = -inf;
  x.value[std::size_t(5 * k + 4)] = 90.0f;  // one dominant logit
  Tape tape;
  const Var xv = tape.constant(x.value.data(), x.shape);
  const Var p = fq::ops::softmax(tape, xv), lp = fq::ops::log_softmax(tape, xv);
  const auto pw = softmax_ref(x.value, x.shape, 1, false),
             lw = softmax_ref(x.value, x.shape, 1, true);
  for (std::int64_t r = 0; r < 6; ++r) {
    double sum = 0;
    for (std::int64_t i = 0; i < k; ++i) {
      const auto e = std::size_t(r * k + i);
      INFO("row " << r << " col " << i);
      REQUIRE(std::isfinite(p.value()[e]));
      REQUIRE(p.value()[e] == Approx(pw[e]).epsilon(2e-6).margin(1e-7));
      if (std::isinf(lw[e])) {
        REQUIRE(lp.value()[e] == -inf);
        REQUIRE(p.value()[e] == 0.0f);
      } else {
        // (x − m) − log s: accurate to an ulp of the result, not of m (m = 1e4 here).
        REQUIRE(lp.value()[e] == Approx(lw[e]).epsilon(2e-6).margin(1e-6));
      }
      sum += p.value()[e];
    }
    CHECK(sum == Approx(1.0).epsilon(1e-5));
  }
  for (std::int64_t i = 0; i < k; ++i) CHECK(p.value()[3 * k + i] == Approx(1.0 / double(k)));
}

TEST_CASE("softmax, log_softmax: gradients accumulate and the masked entries get none",
          "[ops][softmax]") {
  // dx = y ⊙ (dy − Σ dy ⊙ y) by hand for a 1×3 row with dy = (1, 0, 0): y0·(1 − y0), −y0·y1, ...
  std::vector<float> x = {0.5f, -1.0f, 2.0f, -INFINITY}, dx(4, 10.0f);
  for (bool log : {false, true}) {
    Tape tape;
    std::fill(dx.begin(), dx.end(), 10.0f);
    const Var xv = tape.leaf(x.data(), dx.data(), {1, 4});
    const Var y = log ? fq::ops::log_softmax(tape, xv) : fq::ops::softmax(tape, xv);
    const Var l = fq::custom_op(
        tape, {y}, {}, [&](float* out) { *out = y.value()[0]; },
        [y](const float*, const float* g) { y.grad()[0] += g[0]; });
    tape.backward(l);
    double e[3], s = 0;
    for (int i = 0; i < 3; ++i) s += e[i] = std::exp(double(x[std::size_t(i)]));
    const double y0 = e[0] / s;
    INFO("log " << log);
    // softmax: d y0 / d x_j = y0·([j = 0] − y_j); log_softmax: d log y0 / d x_j = [j = 0] − y_j.
    for (int j = 0; j < 3; ++j) {
      const double yj = e[j] / s, dj = (j == 0 ? 1.0 : 0.0) - yj;
      CHECK(dx[std::size_t(j)] == Approx(10.0 + (log ? dj : y0 * dj)).epsilon(1e-6));
    }
    CHECK(dx[3] == 10.0f);  // probability 0: no gradient
  }
}

TEST_CASE("softmax, log_softmax: masked and underflowing entries are exactly 0 on every path",
          "[ops][softmax]") {
  // Each code path (short rows, long rows, a row longer than a block, a middle axis) with
  // −inf, −1e30 and −100-below-the-max logits: probability 0, log-probability finite or −inf,
  // and no gradient from the probability (dy = 0 there keeps dx at its 10).
  const float inf = std::numeric_limits<float>::infinity();
  struct Case {
    fq::Shape shape;
    int axis;
  };
  for (const Case& c : {Case{{3, 7}, -1}, Case{{3, 40}, -1}, Case{{1, 3000}, -1},
                        Case{{2, 9, 5}, 1}, Case{{9, 3}, 0}}) {
    GradInput x(c.shape, 31, -1, 1);
    const int a = c.axis < 0 ? c.axis + c.shape.rank : c.axis;
    std::int64_t inner = 1;
    for (int d = a + 1; d < c.shape.rank; ++d) inner *= c.shape.dims[std::size_t(d)];
    std::vector<char> tiny(x.value.size(), 0);
    // Along the axis, three entries per slice fall far below the rest (a fixed pattern).
    for (std::size_t e = 0; e < x.value.size(); ++e) {
      const auto pos = (std::int64_t(e) / inner) % c.shape.dims[std::size_t(a)];
      if (pos == 1 || pos == 4 || pos == 5) {
        x.value[e] = pos == 1 ? -inf : pos == 4 ? -1e30f : x.value[e] - 100.0f;
        tiny[e] = 1;
      }
    }
    for (bool log : {false, true}) {
      INFO("shape " << c.shape.str() << " axis " << c.axis << " log " << log);
      Tape tape;
      std::vector<float> dx(x.value.size(), 10.0f), dy(x.value.size());
      const Var xv = tape.leaf(x.value.data(), dx.data(), c.shape);
      const Var y =
          log ? fq::ops::log_softmax(tape, xv, c.axis) : fq::ops::softmax(tape, xv, c.axis);
      for (std::size_t e = 0; e < dy.size(); ++e) dy[e] = tiny[e] ? 0.0f : 0.25f * x.value[e];
      const Var l = fq::custom_op(
          tape, {y}, {}, [](float* out) { *out = 0.0f; },
          [&dy, y](const float*, const float* g) {
            for (std::size_t e = 0; e < dy.size(); ++e) y.grad()[e] += g[0] * dy[e];
          });
      tape.backward(l);
      std::size_t zeros = 0;
      for (std::size_t e = 0; e < dy.size(); ++e) {
        if (!tiny[e]) continue;
        INFO("element " << e << " x " << x.value[e]);
        if (log) {
          REQUIRE(!std::isnan(y.value()[e]));
          REQUIRE(y.value()[e] <= -99.0f);
        } else {
          REQUIRE(y.value()[e] == 0.0f);
        }
        REQUIRE(dx[e] == 10.0f);
        ++zeros;
      }
      CHECK(zeros == 3 * x.value.size() / std::size_t(c.shape.dims[std::size_t(a)]));
    }
  }
}

TEST_CASE("softmax, log_softmax: empty tensors, no-grad recording and bad input",
          "[ops][softmax]") {
  using fq::ErrorCode;
  using fq_test::error_code_of;
  Tape tape, other;
  for (const fq::Shape& s : {fq::Shape{0, 5}, fq::Shape{3, 0}, fq::Shape{2, 0, 4}}) {
    const Var e = tape.leaf(nullptr, nullptr, s);
    for (int axis = -s.rank; axis < s.rank; ++axis) {
      CHECK(fq::ops::softmax(tape, e, axis).shape() == s);
      CHECK(fq::ops::log_softmax(tape, e, axis).shape() == s);
    }
  }
  CHECK(tape.node_count() == 0);
  GradInput x({2, 3, 4}, 5);
  {
    fq::NoGradGuard guard(tape);
    const Var y = fq::ops::softmax(tape, tape.leaf(x.value.data(), x.grad.data(), x.shape), 1);
    CHECK_FALSE(y.requires_grad());
    CHECK(tape.node_count() == 0);
  }
  const Var xv = tape.constant(x.value.data(), x.shape);
  for (int axis : {3, -4, 100, -100}) {
    INFO("axis " << axis);
    CHECK(error_code_of([&] { fq::ops::softmax(tape, xv, axis); }) == ErrorCode::kInvalidAxis);
    CHECK(error_code_of([&] { fq::ops::log_softmax(tape, xv, axis); }) == ErrorCode::kInvalidAxis);
  }
  float one = 1.0f;
  const Var scalar = tape.constant(&one, {});
  CHECK(error_code_of([&] { fq::ops::softmax(tape, scalar); }) == ErrorCode::kInvalidAxis);
  CHECK(error_code_of([&] { fq::ops::log_softmax(tape, scalar, 0); }) == ErrorCode::kInvalidAxis);
  CHECK(error_code_of([&] { fq::ops::softmax(other, xv); }) == ErrorCode::kInvalidArgument);
  CHECK(error_code_of([&] { fq::ops::log_softmax(tape, Var()); }) == ErrorCode::kInvalidArgument);
  const Var freed = tape.variable({2, 3}, false);
  tape.clear();
  CHECK(error_code_of([&] { fq::ops::softmax(tape, freed); }) == ErrorCode::kInvalidState);
  CHECK_THROWS_WITH(fq::ops::softmax(tape, xv, 3), Catch::Contains("softmax: axis 3"));
}

TEST_CASE("softmax, log_softmax: rows across and beyond a block (2048 elements), gradients",
          "[ops][softmax]") {
  // [300, 7]: blocks of 292 rows and a partial one; [3, 5000]: rows longer than a block.
  for (const fq::Shape& s : {fq::Shape{300, 7}, fq::Shape{3, 5000}, fq::Shape{2, 2048}}) {
    GradInput x(s, 50, -8, 8), dy(s, 51);
    const std::int64_t n = s[1];
    for (bool log : {false, true}) {
      Tape tape;
      std::vector<float> dx(x.value.size(), 0.0f);
      const Var y = log ? fq::ops::log_softmax(tape, tape.leaf(x.value.data(), dx.data(), s))
                        : fq::ops::softmax(tape, tape.leaf(x.value.data(), dx.data(), s));
      tape.backward(fq::custom_op(
          tape, {y}, {}, [](float* l) { *l = 0.0f; },
          [y, d = dy.value.data()](const float*, const float* g) {
            for (std::int64_t i = 0; i < y.numel(); ++i) y.grad()[i] += g[0] * d[i];
          }));
      const auto want = softmax_ref(x.value, s, 1, false);  // probabilities in double
      for (std::int64_t r = 0; r < s[0]; ++r) {
        double gy = 0, gs = 0;  // Σ dy·p and Σ dy
        for (std::int64_t i = 0; i < n; ++i) {
          gy += double(dy.at(r * n + i)) * want[std::size_t(r * n + i)];
          gs += dy.at(r * n + i);
        }
        for (std::int64_t i = 0; i < n; ++i) {
          const auto e = std::size_t(r * n + i);
          const double p = want[e];
          INFO("shape " << s.str() << " log " << log << " row " << r << " col " << i);
          REQUIRE(y.value()[e] == Approx(log ? std::log(p) : p).epsilon(1e-5).margin(1e-6));
          const double d = log ? dy.at(r * n + i) - p * gs : p * (dy.at(r * n + i) - gy);
          REQUIRE(dx[e] == Approx(d).epsilon(1e-4).margin(1e-6));
        }
      }
    }
  }
}

TEST_CASE("softmax, log_softmax: identical slices get identical bits wherever they lie",
          "[ops][softmax]") {
  // Rows of 7 (the short-row loops), 37 and 100 (blocks of rows: 37·r covers every float
  // offset mod 16), 3000 (a row longer than a block), and middle and first axes.
  struct Case {
    fq::Shape shape;
    int axis;
  };
  for (const Case& c : {Case{{40, 7}, -1}, Case{{33, 37}, -1}, Case{{45, 100}, -1},
                        Case{{3, 3000}, -1}, Case{{9, 5, 3}, 1}, Case{{7, 13, 1}, 1}})
    for (bool log : {false, true}) {
      INFO("shape " << c.shape.str() << " axis " << c.axis << " log " << log);
      fq_test::check_copies_bitwise(c.shape, [&](Tape& t, const Var& x) {
        return log ? fq::ops::log_softmax(t, x, c.axis) : fq::ops::softmax(t, x, c.axis);
      });
    }
}
