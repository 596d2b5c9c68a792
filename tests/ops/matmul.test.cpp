// SPDX-License-Identifier: MIT
// Tests of ops::matmul: forward against a naive triple loop and gradients against finite
// differences for every transpose flag, batch ranks 0, 1 and 2, and a shared rank-2 b.
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <vector>

#include <catch2/catch.hpp>

#include <fakequant/ops/matmul.hpp>
#include <fakequant/testing/check_op_gradients.hpp>

#include "ops/ops_test_util.hpp"
#include "test_util.hpp"

using fq::Shape;
using fq::Tape;
using fq::Var;
using fq_test::check_grad;
using fq_test::GradInput;

namespace {
/// The stored shape of an operand: batch dims, then rows x cols (swapped when transposed).
Shape stored(const std::vector<std::int64_t>& batch, std::int64_t rows, std::int64_t cols,
             bool transposed) {
  Shape s;
  for (std::int64_t e : batch) s.dims[static_cast<std::size_t>(s.rank++)] = e;
  s.dims[static_cast<std::size_t>(s.rank++)] = transposed ? cols : rows;
  s.dims[static_cast<std::size_t>(s.rank++)] = transposed ? rows : cols;
  return s;
}

/// c[i, r, col] = Σ_k op(a)[i, r, k] op(b)[i, k, col] in double, indexing the storage directly.
std::vector<double> naive_matmul(const std::vector<float>& a, const std::vector<float>& b,
                                 std::int64_t batches, std::int64_t m, std::int64_t k,
                                 std::int64_t n, bool ta, bool tb, bool shared_b) {
  std::vector<double> c(static_cast<std::size_t>(batches * m * n));
  for (std::int64_t i = 0; i < batches; ++i)
    for (std::int64_t r = 0; r < m; ++r)
      for (std::int64_t col = 0; col < n; ++col) {
        double s = 0;
        for (std::int64_t q = 0; q < k; ++q) {
          const std::int64_t ai = i * m * k + (ta ? q * m + r : r * k + q);
          const std::int64_t bi = (shared_b ? 0 : i * k * n) + (tb ? col * k + q : q * n + col);
          s += double(a[static_cast<std::size_t>(ai)]) * b[static_cast<std::size_t>(bi)];
        }
        c[static_cast<std::size_t>((i * m + r) * n + col)] = s;
      }
  return c;
}

struct Case {
  std::vector<std::int64_t> batch;  // a's batch dims (and b's unless shared)
  std::int64_t m, k, n;
  bool shared_b;
};
const Case kCases[] = {
    {{}, 3, 4, 5, false},        // [M, K] x [K, N]
    {{2}, 3, 4, 2, false},       // [B, M, K] x [B, K, N]
    {{2, 3}, 4, 3, 4, false},    // [B, H, T, D] x [B, H, D, T] style
    {{3}, 2, 5, 3, true},        // [B, M, K] x [K, N], shared weight
    {{2, 2}, 3, 4, 2, true},     // [B, T, M, K] x [K, N]
    {{1}, 1, 1, 1, false},       // degenerate sizes
    {{2}, 17, 9, 11, false},     // above Eigen's small-product threshold
    {{2, 2}, 13, 10, 12, true},  // shared b through the flat GEMM and per batch
};
}  // namespace

TEST_CASE("matmul: forward equals a naive triple loop for every flag and batch rank",
          "[ops][matmul]") {
  std::uint32_t seed = 1;
  for (const Case& c : kCases)
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        CAPTURE(c.batch.size(), c.m, c.k, c.n, c.shared_b, ta, tb);
        GradInput a(stored(c.batch, c.m, c.k, ta), seed++),
            b(stored(c.shared_b ? std::vector<std::int64_t>{} : c.batch, c.k, c.n, tb), seed++);
        Tape tape;
        const Var y = fq::ops::matmul(tape, tape.constant(a.value.data(), a.shape),
                                      tape.constant(b.value.data(), b.shape), ta, tb);
        REQUIRE(y.shape() == stored(c.batch, c.m, c.n, false));
        CHECK_FALSE(y.requires_grad());
        CHECK(tape.node_count() == 0);
        std::int64_t batches = 1;
        for (std::int64_t e : c.batch) batches *= e;
        const auto ref = naive_matmul(a.value, b.value, batches, c.m, c.k, c.n, ta, tb, c.shared_b);
        for (std::size_t i = 0; i < ref.size(); ++i)
          REQUIRE(y.value()[i] == Approx(ref[i]).margin(1e-5));
      }
}

TEST_CASE("matmul: gradients match finite differences for every flag and batch rank",
          "[ops][matmul]") {
  std::uint32_t seed = 100;
  for (const Case& c : kCases) {
    if (c.m * c.k > 40) continue;  // the big cases are covered by the forward test
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        CAPTURE(c.batch.size(), c.m, c.k, c.n, c.shared_b, ta, tb);
        GradInput a(stored(c.batch, c.m, c.k, ta), seed++),
            b(stored(c.shared_b ? std::vector<std::int64_t>{} : c.batch, c.k, c.n, tb), seed++);
        check_grad({a, b}, [ta, tb](Tape& t, std::vector<Var>& v) {
          return fq::ops::matmul(t, v[0], v[1], ta, tb);
        });
      }
  }
}

TEST_CASE("matmul: gradients accumulate, also when a and b are one variable", "[ops][matmul]") {
  // a·aᵀ and aᵀ·a: both branches of the backward add into the same gradient.
  GradInput a({2, 3, 4}, 7);
  check_grad({a}, [](Tape& t, std::vector<Var>& v) {
    return fq::ops::matmul(t, v[0], v[0], false, true);
  });
  check_grad({a}, [](Tape& t, std::vector<Var>& v) {
    return fq::ops::matmul(t, v[0], v[0], true, false);
  });
  // Hand-computed: a = [[1, 2]], b = [[3], [4]] -> c = 11; dc = 1 gives da = bᵀ, db = aᵀ, added
  // to what the gradients already hold.
  std::vector<float> av = {1, 2}, bv = {3, 4}, da = {10, 10}, db = {20, 20};
  Tape tape;
  const Var c = fq::ops::matmul(tape, tape.leaf(av.data(), da.data(), {1, 2}),
                                tape.leaf(bv.data(), db.data(), {2, 1}));
  REQUIRE(c.value()[0] == 11.0f);
  tape.backward(c);
  CHECK(da == std::vector<float>{13, 14});
  CHECK(db == std::vector<float>{21, 22});
}

TEST_CASE("matmul: only the inputs that require a gradient receive one", "[ops][matmul]") {
  GradInput a({2, 3, 4}, 8), b({4, 5}, 9);
  std::vector<float> da(a.value.size(), 0.0f);
  Tape tape;
  const Var y = fq::ops::matmul(tape, tape.leaf(a.value.data(), da.data(), a.shape),
                                tape.constant(b.value.data(), b.shape));
  REQUIRE(y.requires_grad());
  std::vector<float> ones(static_cast<std::size_t>(y.numel()), 1.0f);
  // L = Σ y: da[i, r, q] = Σ_col b[q, col].
  Var loss = tape.variable({});
  loss.value()[0] = 0;
  tape.push_backward([y, loss] {
    for (std::int64_t i = 0; i < y.numel(); ++i) y.grad()[i] += loss.grad()[0];
  });
  tape.backward(loss);
  for (std::size_t i = 0; i < da.size(); ++i) {
    const std::size_t q = i % 4;
    double s = 0;
    for (std::size_t col = 0; col < 5; ++col) s += b.value[q * 5 + col];
    REQUIRE(da[i] == Approx(s).margin(1e-5));
  }
}

TEST_CASE("matmul: empty extents", "[ops][matmul]") {
  Tape tape;
  std::vector<float> b(12, 1.0f);
  // K = 0: an empty sum, every output 0.
  const Var c =
      fq::ops::matmul(tape, tape.constant(nullptr, {3, 0}), tape.constant(nullptr, {0, 4}));
  REQUIRE(c.shape() == Shape({3, 4}));
  for (std::int64_t i = 0; i < 12; ++i) REQUIRE(c.value()[i] == 0.0f);
  // M = 0 or a zero batch: an empty output.
  CHECK(fq::ops::matmul(tape, tape.constant(nullptr, {0, 3}), tape.constant(b.data(), {3, 4}))
            .numel() == 0);
  CHECK(fq::ops::matmul(tape, tape.constant(nullptr, {0, 2, 3}), tape.constant(b.data(), {3, 4}))
            .shape() == Shape({0, 2, 4}));
}

TEST_CASE("matmul: bad shapes are refused at op creation", "[ops][matmul]") {
  using fq::ErrorCode;
  using fq_test::error_code_of;
  std::vector<float> buf(256, 0.5f);
  Tape tape, other;
  auto v = [&](Shape s) { return tape.constant(buf.data(), s); };
  auto mm = [&](Shape a, Shape b, bool ta = false, bool tb = false) {
    return error_code_of([&] { fq::ops::matmul(tape, v(a), v(b), ta, tb); });
  };
  CHECK(mm({3}, {3, 2}) == ErrorCode::kShapeMismatch);  // rank 1
  CHECK(mm({2, 3}, {3}) == ErrorCode::kShapeMismatch);
  CHECK(mm({2, 3}, {4, 2}) == ErrorCode::kShapeMismatch);  // K 3 vs 4
  CHECK(mm({2, 3}, {2, 4}, false, true) == ErrorCode::kShapeMismatch);
  CHECK(mm({3, 2}, {4, 2}, true, false) == ErrorCode::kShapeMismatch);
  CHECK(mm({2, 2, 3}, {3, 3, 4}) == ErrorCode::kShapeMismatch);     // batch 2 vs 3
  CHECK(mm({2, 2, 2, 3}, {2, 3, 4}) == ErrorCode::kShapeMismatch);  // batch ranks differ
  CHECK(mm({2, 3}, {2, 3, 4}) == ErrorCode::kShapeMismatch);        // only b may be shared
  CHECK(mm({2, 3}, {3, 4}) == ErrorCode{});
  CHECK(mm({5, 2, 3}, {3, 4}) == ErrorCode{});
  CHECK(mm({5, 3, 2}, {4, 3}, true, true) == ErrorCode{});
  CHECK_THROWS_WITH(fq::ops::matmul(tape, v({2, 3}), v({4, 2})),
                    Catch::Contains("matmul") && Catch::Contains("K = 3"));
  CHECK(error_code_of([&] {
          fq::ops::matmul(other, v({2, 3}), v({3, 2}));
        }) == ErrorCode::kInvalidArgument);
  const Var stale = tape.variable({2, 2});
  tape.clear();
  CHECK(error_code_of([&] {
          fq::ops::matmul(tape, stale, v({2, 2}));
        }) == ErrorCode::kInvalidState);
}

TEST_CASE("matmul: alpha scales the product and both gradients", "[ops][matmul]") {
  // Forward: alpha · (a · bᵀ) against a double loop; a [2, 3, 4], b [2, 5, 4]
  // (transpose_b).
  const std::int64_t B = 2, M = 3, K = 4, N = 5;
  const float alpha = 0.37f;
  std::vector<float> a(static_cast<std::size_t>(B * M * K)), b(static_cast<std::size_t>(B * N * K));
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = std::sin(0.7f * float(i) + 0.1f);
  for (std::size_t i = 0; i < b.size(); ++i) b[i] = std::cos(0.3f * float(i) - 0.2f);
  fq::Tape tape;
  const fq::Var c = fq::ops::matmul(tape, tape.constant(a.data(), {B, M, K}),
                                    tape.constant(b.data(), {B, N, K}), false, true, alpha);
  for (std::int64_t i = 0; i < B; ++i)
    for (std::int64_t r = 0; r < M; ++r)
      for (std::int64_t col = 0; col < N; ++col) {
        double s = 0;
        for (std::int64_t q = 0; q < K; ++q)
          s += double(a[std::size_t((i * M + r) * K + q)]) * b[std::size_t((i * N + col) * K + q)];
        CHECK(c.value()[(i * M + r) * N + col] == Approx(alpha * s).margin(1e-6));
      }
  // Gradients, for every flag combination.
  for (int flags = 0; flags < 4; ++flags) {
    const bool ta = flags & 1, tb = flags & 2;
    std::vector<fq::testing::OpInput> in{{ta ? fq::Shape{2, 4, 3} : fq::Shape{2, 3, 4}, 31},
                                         {tb ? fq::Shape{2, 5, 4} : fq::Shape{2, 4, 5}, 32}};
    fq::testing::OpGradientOptions opt;
    opt.step = 1e-2f;
    opt.tolerance = 2e-3;
    const auto r = fq::testing::check_op_gradients(
        in,
        [&](fq::Tape& t, std::vector<fq::Var>& v) {
          return fq::ops::matmul(t, v[0], v[1], ta, tb, -1.7f);
        },
        opt);
    INFO(r.report());
    CHECK(r.passed());
  }
  // A non-finite alpha is refused.
  CHECK(fq_test::error_code_of([&] {
          fq::ops::matmul(tape, tape.constant(a.data(), {B, M, K}),
                          tape.constant(b.data(), {B, N, K}), false, true,
                          std::numeric_limits<float>::quiet_NaN());
        }) == fq::ErrorCode::kInvalidArgument);
}
