// SPDX-License-Identifier: MIT
// Tests of the layout ops (ops/shape.hpp) and of linear over [..., in], add with a broadcast b,
// scale and mul: forward against index-by-index references, gradients against finite
// differences, and the ErrorCode of every bad input.
#include <cstdint>
#include <functional>
#include <limits>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include <fakequant/ops/elementwise.hpp>
#include <fakequant/ops/linear.hpp>
#include <fakequant/ops/shape.hpp>
#include <fakequant/testing/check_op_gradients.hpp>

#include "ops/ops_test_util.hpp"
#include "test_util.hpp"

using fq::ErrorCode;
using fq::Shape;
using fq::Tape;
using fq::Var;
using fq_test::check_grad;
using fq_test::error_code_of;
using fq_test::GradInput;
using Index = std::vector<std::int64_t>;

namespace {
/// The multi-index of linear index i in s.
Index unravel(const Shape& s, std::int64_t i) {
  Index idx(static_cast<std::size_t>(s.rank));
  for (int d = s.rank - 1; d >= 0; --d) {
    idx[static_cast<std::size_t>(d)] = i % s[d];
    i /= s[d];
  }
  return idx;
}
std::int64_t ravel(const Shape& s, const Index& idx) {
  std::int64_t i = 0;
  for (int d = 0; d < s.rank; ++d) i = i * s[d] + idx[static_cast<std::size_t>(d)];
  return i;
}

Var constant(Tape& t, const GradInput& in) { return t.constant(in.value.data(), in.shape); }
}  // namespace

TEST_CASE("reshape: a checked view sharing value and gradient", "[ops][shape]") {
  GradInput x({2, 3, 4}, 1);
  std::vector<float> dx(24, 0.0f);
  Tape tape;
  const Var xv = tape.leaf(x.value.data(), dx.data(), x.shape);
  const Var y = fq::ops::reshape(tape, xv, {6, 4});
  CHECK(y.shape() == Shape({6, 4}));
  CHECK(y.value() == x.value.data());
  CHECK(y.grad() == dx.data());
  CHECK(tape.node_count() == 0);
  CHECK(error_code_of([&] { fq::ops::reshape(tape, xv, {5, 5}); }) == ErrorCode::kShapeMismatch);
  CHECK_THROWS_WITH(fq::ops::reshape(tape, xv, {5, 5}), Catch::Contains("reshape"));
}

TEST_CASE("transpose: forward swaps two axes, any pair, negative axes", "[ops][shape]") {
  const Shape shapes[] = {{3, 5}, {2, 3, 4}, {2, 3, 4, 5}, {3, 1, 4, 2, 2}};
  std::uint32_t seed = 10;
  for (const Shape& s : shapes)
    for (int d0 = -s.rank; d0 < s.rank; ++d0)
      for (int d1 = 0; d1 < s.rank; ++d1) {
        CAPTURE(s.str(), d0, d1);
        GradInput x(s, seed++);
        Tape tape;
        const Var xv = constant(tape, x);
        const Var y = fq::ops::transpose(tape, xv, d0, d1);
        const int a0 = d0 < 0 ? d0 + s.rank : d0;
        Shape ys = s;
        std::swap(ys.dims[static_cast<std::size_t>(a0)], ys.dims[static_cast<std::size_t>(d1)]);
        REQUIRE(y.shape() == ys);
        if (a0 == d1) CHECK(y.value() == xv.value());  // the identity: x itself
        for (std::int64_t i = 0; i < y.numel(); ++i) {
          Index idx = unravel(ys, i);
          std::swap(idx[static_cast<std::size_t>(a0)], idx[static_cast<std::size_t>(d1)]);
          REQUIRE(y.value()[i] == x.at(ravel(s, idx)));
        }
      }
}

TEST_CASE("transpose: gradients", "[ops][shape]") {
  GradInput x({2, 3, 4, 2}, 20);
  const int pairs[][2] = {{0, 1}, {1, 3}, {-1, -2}, {0, 3}, {2, 2}};
  for (const auto& p : pairs) {
    const int d0 = p[0], d1 = p[1];
    check_grad({x}, [d0, d1](Tape& t, std::vector<Var>& v) {
      return fq::ops::transpose(t, v[0], d0, d1);
    });
  }
}

TEST_CASE("split_heads and merge_heads: forward, round trip and gradients", "[ops][shape]") {
  const std::int64_t B = 2, T = 5, H = 3, Dh = 4;
  GradInput x({B, T, H * Dh}, 30);
  Tape tape;
  const Var y = fq::ops::split_heads(tape, constant(tape, x), H);
  REQUIRE(y.shape() == Shape({B, H, T, Dh}));
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t h = 0; h < H; ++h)
      for (std::int64_t t = 0; t < T; ++t)
        for (std::int64_t e = 0; e < Dh; ++e)
          REQUIRE(y.value()[((b * H + h) * T + t) * Dh + e] ==
                  x.at((b * T + t) * H * Dh + h * Dh + e));
  const Var z = fq::ops::merge_heads(tape, y);
  REQUIRE(z.shape() == x.shape);
  for (std::int64_t i = 0; i < z.numel(); ++i) REQUIRE(z.value()[i] == x.at(i));
  check_grad({x}, [](Tape& t, std::vector<Var>& v) { return fq::ops::split_heads(t, v[0], 3); });
  GradInput q({2, 3, 4, 2}, 31);
  check_grad({q}, [](Tape& t, std::vector<Var>& v) { return fq::ops::merge_heads(t, v[0]); });
  // One head: a plain reshape's values.
  const Var one = fq::ops::split_heads(tape, constant(tape, x), 1);
  for (std::int64_t i = 0; i < one.numel(); ++i) REQUIRE(one.value()[i] == x.at(i));
}

TEST_CASE("concat: forward along each axis and gradients", "[ops][shape]") {
  GradInput a({2, 3, 4}, 40);
  for (int axis : {0, 1, 2, -1}) {
    CAPTURE(axis);
    const int ax = axis < 0 ? axis + 3 : axis;
    Shape sb = a.shape, sc = a.shape;
    sb.dims[static_cast<std::size_t>(ax)] = 1;
    sc.dims[static_cast<std::size_t>(ax)] = 2;
    GradInput b(sb, 41), c(sc, 42);
    Tape tape;
    const Var y =
        fq::ops::concat(tape, {constant(tape, a), constant(tape, b), constant(tape, c)}, axis);
    Shape ys = a.shape;
    ys.dims[static_cast<std::size_t>(ax)] += 3;
    REQUIRE(y.shape() == ys);
    const std::int64_t na = a.shape[ax];
    for (std::int64_t i = 0; i < y.numel(); ++i) {
      Index idx = unravel(ys, i);
      std::int64_t& e = idx[static_cast<std::size_t>(ax)];
      float expect;
      if (e < na) {
        expect = a.at(ravel(a.shape, idx));
      } else if (e < na + 1) {
        e -= na;
        expect = b.at(ravel(sb, idx));
      } else {
        e -= na + 1;
        expect = c.at(ravel(sc, idx));
      }
      REQUIRE(y.value()[i] == expect);
    }
    check_grad({a, b, c}, [axis](Tape& t, std::vector<Var>& v) {
      return fq::ops::concat(t, {v[0], v[1], v[2]}, axis);
    });
    // A constant among the inputs gets nothing; the others their slices.
    check_grad({a, c}, [axis, &b](Tape& t, std::vector<Var>& v) {
      return fq::ops::concat(t, {v[0], t.constant(b.value.data(), b.shape), v[1]}, axis);
    });
  }
}

TEST_CASE("slice: forward and gradients", "[ops][shape]") {
  GradInput x({3, 5, 4}, 50);
  Tape tape;
  const Var y = fq::ops::slice(tape, constant(tape, x), -2, 1, 3);
  REQUIRE(y.shape() == Shape({3, 3, 4}));
  for (std::int64_t i = 0; i < y.numel(); ++i) {
    Index idx = unravel(y.shape(), i);
    idx[1] += 1;
    REQUIRE(y.value()[i] == x.at(ravel(x.shape, idx)));
  }
  for (int axis : {0, 1, 2})
    check_grad(
        {x}, [axis](Tape& t, std::vector<Var>& v) { return fq::ops::slice(t, v[0], axis, 1, 2); });
  // The class token of [B, T, D]: slice(x, 1, 0, 1).
  const Var cls = fq::ops::slice(tape, constant(tape, x), 1, 0, 1);
  REQUIRE(cls.shape() == Shape({3, 1, 4}));
  CHECK(cls.value()[4] == x.at(20));
  CHECK(fq::ops::slice(tape, constant(tape, x), 1, 5, 0).numel() == 0);
}

TEST_CASE("expand: forward repeats x over new leading dims; gradients sum", "[ops][shape]") {
  GradInput tok({1, 4}, 60);
  Tape tape;
  const Var y = fq::ops::expand(tape, constant(tape, tok), {3, 1, 4});
  REQUIRE(y.shape() == Shape({3, 1, 4}));
  for (std::int64_t i = 0; i < 12; ++i) REQUIRE(y.value()[i] == tok.at(i % 4));
  check_grad({tok}, [](Tape& t, std::vector<Var>& v) {
    return fq::ops::expand(t, v[0], {2, 3, 1, 4});
  });
  check_grad({tok}, [](Tape& t, std::vector<Var>& v) { return fq::ops::expand(t, v[0], {1, 4}); });
  // Hand-computed: the gradient of Σ y is the number of copies.
  std::vector<float> dtok(4, 0.0f);
  const Var e =
      fq::ops::expand(tape, tape.leaf(tok.value.data(), dtok.data(), tok.shape), {5, 1, 4});
  Var loss = tape.variable({});
  loss.value()[0] = 0;
  tape.push_backward([e, loss] {
    for (std::int64_t i = 0; i < e.numel(); ++i) e.grad()[i] += loss.grad()[0];
  });
  tape.backward(loss);
  CHECK(dtok == std::vector<float>(4, 5.0f));
}

TEST_CASE("mean over an axis: forward and gradients", "[ops][shape]") {
  GradInput x({3, 4, 5}, 70, -2, 3);
  for (int axis : {0, 1, 2, -1, -3}) {
    CAPTURE(axis);
    const int ax = axis < 0 ? axis + 3 : axis;
    Tape tape;
    const Var y = fq::ops::mean(tape, constant(tape, x), axis);
    Shape ys;
    for (int d = 0; d < 3; ++d)
      if (d != ax) ys.dims[static_cast<std::size_t>(ys.rank++)] = x.shape[d];
    REQUIRE(y.shape() == ys);
    for (std::int64_t i = 0; i < y.numel(); ++i) {
      Index idx = unravel(ys, i);
      idx.insert(idx.begin() + ax, 0);
      double s = 0;
      for (std::int64_t a = 0; a < x.shape[ax]; ++a) {
        idx[static_cast<std::size_t>(ax)] = a;
        s += x.at(ravel(x.shape, idx));
      }
      REQUIRE(y.value()[i] == Approx(s / double(x.shape[ax])).margin(1e-5));
    }
    check_grad({x}, [axis](Tape& t, std::vector<Var>& v) { return fq::ops::mean(t, v[0], axis); });
  }
  // A rank-1 x gives a scalar; its gradient is 1/n everywhere.
  GradInput v1({6}, 71);
  check_grad({v1}, [](Tape& t, std::vector<Var>& v) { return fq::ops::mean(t, v[0], 0); });
}

TEST_CASE("layout ops: empty tensors give empty results", "[ops][shape]") {
  Tape tape;
  const Var e = tape.constant(nullptr, {2, 0, 3});
  CHECK(fq::ops::transpose(tape, e, 0, 2).shape() == Shape({3, 0, 2}));
  CHECK(fq::ops::split_heads(tape, e, 3).shape() == Shape({2, 3, 0, 1}));
  CHECK(fq::ops::merge_heads(tape, tape.constant(nullptr, {2, 0, 3, 4})).shape() ==
        Shape({2, 3, 0}));
  CHECK(fq::ops::concat(tape, {e, e}, 1).shape() == Shape({2, 0, 3}));
  CHECK(fq::ops::slice(tape, e, 2, 1, 2).shape() == Shape({2, 0, 2}));
  CHECK(fq::ops::expand(tape, e, {4, 2, 0, 3}).numel() == 0);
  CHECK(fq::ops::mean(tape, e, 2).shape() == Shape({2, 0}));
}

TEST_CASE("layout ops: bad input is refused with the right ErrorCode", "[ops][shape]") {
  std::vector<float> buf(64, 1.0f);
  Tape tape, other;
  auto v = [&](Shape s) { return tape.constant(buf.data(), s); };
  const Var x = v({2, 3, 4});
  CHECK(error_code_of([&] { fq::ops::transpose(tape, x, 0, 3); }) == ErrorCode::kInvalidAxis);
  CHECK(error_code_of([&] { fq::ops::transpose(tape, x, -4, 1); }) == ErrorCode::kInvalidAxis);
  CHECK_THROWS_WITH(fq::ops::transpose(tape, x, 0, 3), Catch::Contains("transpose: axis 3"));
  CHECK(error_code_of([&] { fq::ops::transpose(other, x, 0, 1); }) == ErrorCode::kInvalidArgument);
  CHECK(error_code_of([&] {
          fq::ops::split_heads(tape, v({2, 3}), 1);
        }) == ErrorCode::kShapeMismatch);
  CHECK(error_code_of([&] { fq::ops::split_heads(tape, x, 3); }) == ErrorCode::kInvalidArgument);
  CHECK(error_code_of([&] { fq::ops::split_heads(tape, x, 0); }) == ErrorCode::kInvalidArgument);
  CHECK(error_code_of([&] { fq::ops::split_heads(tape, x, -2); }) == ErrorCode::kInvalidArgument);
  CHECK_THROWS_WITH(fq::ops::split_heads(tape, x, 3),
                    Catch::Contains("3 heads do not divide D = 4"));
  CHECK(error_code_of([&] { fq::ops::merge_heads(tape, x); }) == ErrorCode::kShapeMismatch);
  CHECK(error_code_of([&] { fq::ops::concat(tape, {}, 0); }) == ErrorCode::kInvalidArgument);
  CHECK(error_code_of([&] {
          fq::ops::concat(tape, {x, v({2, 3, 5})}, 1);
        }) == ErrorCode::kShapeMismatch);
  CHECK(error_code_of([&] {
          fq::ops::concat(tape, {x, v({2, 12})}, 1);
        }) == ErrorCode::kShapeMismatch);
  CHECK(error_code_of([&] { fq::ops::concat(tape, {x, x}, 3); }) == ErrorCode::kInvalidAxis);
  CHECK(error_code_of([&] { fq::ops::concat(tape, {x, v({2, 3, 5})}, 2); }) == ErrorCode{});
  CHECK(error_code_of([&] { fq::ops::slice(tape, x, 1, 2, 2); }) == ErrorCode::kInvalidArgument);
  CHECK(error_code_of([&] { fq::ops::slice(tape, x, 1, -1, 1); }) == ErrorCode::kInvalidArgument);
  CHECK(error_code_of([&] { fq::ops::slice(tape, x, 1, 0, -1); }) == ErrorCode::kInvalidArgument);
  CHECK(error_code_of([&] { fq::ops::slice(tape, x, 1, 1, INT64_MAX); }) ==
        ErrorCode::kInvalidArgument);
  CHECK(error_code_of([&] { fq::ops::slice(tape, x, 3, 0, 1); }) == ErrorCode::kInvalidAxis);
  CHECK(error_code_of([&] { fq::ops::expand(tape, x, {3, 4}); }) == ErrorCode::kShapeMismatch);
  CHECK(error_code_of([&] {
          fq::ops::expand(tape, x, {2, 2, 4, 4});
        }) == ErrorCode::kShapeMismatch);
  CHECK(error_code_of([&] { fq::ops::mean(tape, x, 3); }) == ErrorCode::kInvalidAxis);
  CHECK(error_code_of([&] { fq::ops::mean(tape, v({}), 0); }) == ErrorCode::kInvalidAxis);
  CHECK(error_code_of([&] { fq::ops::mean(tape, v({2, 0}), 1); }) == ErrorCode::kShapeMismatch);
  const Var stale = tape.variable({2, 2});
  tape.clear();
  CHECK(error_code_of([&] { fq::ops::transpose(tape, stale, 0, 1); }) == ErrorCode::kInvalidState);
  CHECK(error_code_of([&] { fq::ops::concat(tape, {stale}, 0); }) == ErrorCode::kInvalidState);
}

TEST_CASE("linear over [..., in]: forward and gradients for ranks 2 to 4", "[ops][linear]") {
  const Shape shapes[] = {{5, 7}, {2, 3, 7}, {2, 2, 3, 7}};
  std::uint32_t seed = 80;
  for (const Shape& s : shapes) {
    CAPTURE(s.str());
    GradInput x(s, seed++), w({4, 7}, seed++), b({4}, seed++);
    Tape tape;
    const Var y = fq::ops::linear(tape, constant(tape, x), constant(tape, w), constant(tape, b));
    Shape ys = s;
    ys.dims[static_cast<std::size_t>(s.rank - 1)] = 4;
    REQUIRE(y.shape() == ys);
    const std::int64_t rows = x.shape.numel() / 7;
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t o = 0; o < 4; ++o) {
        double acc = b.at(o);
        for (std::int64_t i = 0; i < 7; ++i) acc += double(x.at(r * 7 + i)) * w.at(o * 7 + i);
        REQUIRE(y.value()[r * 4 + o] == Approx(acc).margin(1e-5));
      }
    if (s.rank == 4) x = GradInput({2, 1, 3, 7}, seed++);  // keep the check small
    check_grad({x, w, b},
               [](Tape& t, std::vector<Var>& v) { return fq::ops::linear(t, v[0], v[1], v[2]); });
    check_grad({x, w}, [](Tape& t, std::vector<Var>& v) { return fq::ops::linear(t, v[0], v[1]); });
  }
  std::vector<float> buf(64, 1.0f);
  Tape tape;
  auto v = [&](Shape s) { return tape.constant(buf.data(), s); };
  CHECK(error_code_of([&] {
          fq::ops::linear(tape, v({7}), v({4, 7}));
        }) == ErrorCode::kShapeMismatch);
  CHECK(error_code_of([&] {
          fq::ops::linear(tape, v({2, 3, 6}), v({4, 7}));
        }) == ErrorCode::kShapeMismatch);
  CHECK(error_code_of([&] {
          fq::ops::linear(tape, v({2, 3, 7}), v({4, 7}), v({3}));
        }) == ErrorCode::kShapeMismatch);
  CHECK_THROWS_WITH(fq::ops::linear(tape, v({2, 3, 6}), v({4, 7})), Catch::Contains("[..., in]"));
  CHECK(fq::ops::linear(tape, v({0, 3, 7}), v({4, 7})).shape() == Shape({0, 3, 4}));
}

TEST_CASE("add: b broadcast over a's leading dims", "[ops][elementwise]") {
  GradInput a({2, 3, 4}, 90);
  const Shape bs[] = {{2, 3, 4}, {3, 4}, {1, 3, 4}, {4}, {1, 1, 4}, {1}, {}};
  std::uint32_t seed = 91;
  for (const Shape& s : bs) {
    CAPTURE(s.str());
    GradInput b(s, seed++);
    Tape tape;
    const Var y = fq::ops::add(tape, constant(tape, a), constant(tape, b));
    REQUIRE(y.shape() == a.shape);
    const std::int64_t nb = b.shape.numel();
    for (std::int64_t i = 0; i < y.numel(); ++i) REQUIRE(y.value()[i] == a.at(i) + b.at(i % nb));
    check_grad({a, b}, [](Tape& t, std::vector<Var>& v) { return fq::ops::add(t, v[0], v[1]); });
  }
  std::vector<float> buf(64, 1.0f);
  Tape tape;
  auto v = [&](Shape s) { return tape.constant(buf.data(), s); };
  const Var x = v({2, 3, 4});
  for (const Shape& s : {Shape{3, 5}, Shape{2, 3}, Shape{2, 1, 4}, Shape{1, 2, 3, 4}, Shape{3}})
    CHECK(error_code_of([&] { fq::ops::add(tape, x, v(s)); }) == ErrorCode::kShapeMismatch);
  CHECK(error_code_of([&] { fq::ops::add(tape, v({4}), x); }) == ErrorCode::kShapeMismatch);
  CHECK(fq::ops::add(tape, v({0, 3, 4}), v({3, 4})).numel() == 0);
}

TEST_CASE("scale and mul: forward and gradients", "[ops][elementwise]") {
  GradInput a({3, 5}, 100), b({3, 5}, 101);
  Tape tape;
  const Var s = fq::ops::scale(tape, constant(tape, a), -0.25f);
  const Var m = fq::ops::mul(tape, constant(tape, a), constant(tape, b));
  for (std::int64_t i = 0; i < 15; ++i) {
    REQUIRE(s.value()[i] == a.at(i) * -0.25f);
    REQUIRE(m.value()[i] == a.at(i) * b.at(i));
  }
  check_grad({a}, [](Tape& t, std::vector<Var>& v) { return fq::ops::scale(t, v[0], 3.5f); });
  check_grad({a, b}, [](Tape& t, std::vector<Var>& v) { return fq::ops::mul(t, v[0], v[1]); });
  check_grad({a}, [](Tape& t, std::vector<Var>& v) { return fq::ops::mul(t, v[0], v[0]); });
  const Var x = constant(tape, a);
  CHECK(error_code_of([&] { fq::ops::scale(tape, x, std::numeric_limits<float>::infinity()); }) ==
        ErrorCode::kInvalidArgument);
  CHECK(error_code_of([&] { fq::ops::scale(tape, x, std::numeric_limits<float>::quiet_NaN()); }) ==
        ErrorCode::kInvalidArgument);
  CHECK(error_code_of([&] {
          fq::ops::mul(tape, x, constant(tape, GradInput({5, 3}, 1)));
        }) == ErrorCode::kShapeMismatch);
  Tape other;
  CHECK(error_code_of([&] { fq::ops::mul(other, x, x); }) == ErrorCode::kInvalidArgument);
}

TEST_CASE("mean over the last axis: identical rows get identical bits wherever they lie",
          "[ops][shape]") {
  // Rows of 37 floats start at every offset mod 16.
  const std::int64_t rows = 33, n = 37;
  std::vector<float> x(std::size_t(rows * n));
  for (std::size_t e = 0; e < x.size(); ++e) x[e] = std::sin(0.9f * float(e % std::size_t(n)));
  Tape tape;
  const Var y = fq::ops::mean(tape, tape.constant(x.data(), {rows, n}), 1);
  for (std::int64_t r = 1; r < rows; ++r)
    CHECK(fq_test::bits_of(y.value()[r]) == fq_test::bits_of(y.value()[0]));
}
