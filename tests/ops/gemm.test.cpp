// SPDX-License-Identifier: MIT
// The tape's float products (ops/gemm.hpp) where the CPU has FMA: every element of linear's and
// matmul's outputs and gradients is one fused chain in ascending K — fq::sgemm_reference's bits —
// so a row gets the same bits in a batch of any size. Gradients into leaves add onto what the
// leaf's buffer held (the chain starts there); matmul's alpha scales the finished chain.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include <catch2/catch.hpp>

#include <fakequant/kernels/sgemm.hpp>
#include <fakequant/ops/linear.hpp>
#include <fakequant/ops/matmul.hpp>

#include "ops/ops_test_util.hpp"

using fq::SgemmOperand;
using fq::Tape;
using fq::Var;

namespace {

std::vector<float> normal(std::size_t n, std::mt19937& rng, float sd = 1.0f) {
  std::normal_distribution<float> nd(0.0f, sd);
  std::vector<float> v(n);
  for (float& e : v) e = nd(rng);
  return v;
}

std::size_t differing(const float* a, const float* b, std::size_t n) {
  std::size_t bad = 0;
  for (std::size_t i = 0; i < n; ++i) bad += std::memcmp(a + i, b + i, sizeof(float)) != 0;
  return bad;
}

/// The transpose of an operand view: swapped strides.
SgemmOperand t(SgemmOperand o) { return {o.data, o.col_stride, o.row_stride}; }

constexpr bool kFused = fq::kSgemmSimd<fq::DefaultArch>;

}  // namespace

TEST_CASE("linear: outputs and gradients are fused chains in ascending K, for any batch",
          "[ops][gemm][bit_exact]") {
  if constexpr (!kFused) {
    WARN("this build's architecture has no FMA: linear runs on Eigen, whose order is its own");
    return;
  }
  std::mt19937 rng(3);
  struct Dims {
    std::int64_t rows, in, out;
  };
  // Row and column splits, edge tiles, K over several blocks, the demo's classifier.
  for (const Dims d : {Dims{37, 70, 53}, Dims{1, 300, 200}, Dims{130, 9, 100}, Dims{64, 784, 10},
                       Dims{5, 200, 1}}) {
    CAPTURE(d.rows, d.in, d.out);
    const auto sz = [](std::int64_t a, std::int64_t b) { return static_cast<std::size_t>(a * b); };
    std::vector<float> x = normal(sz(d.rows, d.in), rng), w = normal(sz(d.out, d.in), rng),
                       b = normal(sz(1, d.out), rng), dy = normal(sz(d.rows, d.out), rng),
                       dx0 = normal(sz(d.rows, d.in), rng), dw0 = normal(sz(d.out, d.in), rng);
    std::vector<float> dx = dx0, dw = dw0, db(b.size(), 0.0f);
    Tape tape;
    const Var xv = tape.leaf(x.data(), dx.data(), {d.rows, d.in});
    const Var wv = tape.leaf(w.data(), dw.data(), {d.out, d.in});
    const Var bv = tape.leaf(b.data(), db.data(), {d.out});
    const Var y = fq::ops::linear(tape, xv, wv, bv);
    fq_test::backward_with(tape, y, dy);

    std::vector<float> want_y(sz(d.rows, d.out)), want_dx = dx0, want_dw = dw0;
    fq::sgemm_reference(d.rows, d.out, d.in, {x.data(), d.in, 1}, {w.data(), 1, d.in},
                        want_y.data(), d.out, false);
    for (std::size_t e = 0; e < want_y.size(); ++e) want_y[e] += b[e % b.size()];
    fq::sgemm_reference(d.rows, d.in, d.out, {dy.data(), d.out, 1}, {w.data(), d.in, 1},
                        want_dx.data(), d.in, true);
    fq::sgemm_reference(d.out, d.in, d.rows, {dy.data(), 1, d.out}, {x.data(), d.in, 1},
                        want_dw.data(), d.in, true);
    CHECK(differing(y.value(), want_y.data(), want_y.size()) == 0);
    CHECK(differing(dx.data(), want_dx.data(), dx.size()) == 0);
    CHECK(differing(dw.data(), want_dw.data(), dw.size()) == 0);

    // Each of some rows alone, in a batch of one: the same bits as in the batch.
    for (std::int64_t r : {std::int64_t{0}, d.rows / 2, d.rows - 1}) {
      const auto off = sz(r, d.in);
      std::vector<float> dx1(dx0.begin() + static_cast<std::ptrdiff_t>(off),
                             dx0.begin() + static_cast<std::ptrdiff_t>(off + sz(1, d.in)));
      const std::vector<float> dy1(dy.begin() + static_cast<std::ptrdiff_t>(sz(r, d.out)),
                                   dy.begin() + static_cast<std::ptrdiff_t>(sz(r + 1, d.out)));
      Tape t1;
      const Var x1 = t1.leaf(x.data() + off, dx1.data(), {1, d.in});
      const Var y1 = fq::ops::linear(t1, x1, t1.constant(w.data(), {d.out, d.in}),
                                     t1.constant(b.data(), {d.out}));
      fq_test::backward_with(t1, y1, dy1);
      CAPTURE(r);
      CHECK(differing(y1.value(), y.value() + sz(r, d.out), sz(1, d.out)) == 0);
      CHECK(differing(dx1.data(), dx.data() + off, dx1.size()) == 0);
    }
  }
}

TEST_CASE("matmul: fused chains in ascending K; alpha scales the finished chain",
          "[ops][gemm][bit_exact]") {
  if constexpr (!kFused) {
    WARN("this build's architecture has no FMA: matmul runs on Eigen, whose order is its own");
    return;
  }
  std::mt19937 rng(5);
  const std::int64_t nb = 3, m = 19, k = 37, n = 50;
  for (const float alpha : {1.0f, 0.125f, -0.3f})
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        CAPTURE(alpha, ta, tb);
        std::vector<float> a = normal(static_cast<std::size_t>(nb * m * k), rng),
                           b = normal(static_cast<std::size_t>(nb * k * n), rng),
                           dc = normal(static_cast<std::size_t>(nb * m * n), rng),
                           da0 = normal(a.size(), rng), db0 = normal(b.size(), rng);
        std::vector<float> da = da0, db = db0;
        Tape tape;
        const Var av =
            tape.leaf(a.data(), da.data(), ta ? fq::Shape{nb, k, m} : fq::Shape{nb, m, k});
        const Var bv =
            tape.leaf(b.data(), db.data(), tb ? fq::Shape{nb, n, k} : fq::Shape{nb, k, n});
        const Var c = fq::ops::matmul(tape, av, bv, ta, tb, alpha);
        fq_test::backward_with(tape, c, dc);

        std::vector<float> want_c(dc.size()), want_da = da0, want_db = db0, s;
        // g = (alpha == 1 ? chain from g : fma(alpha, chain from 0, g)) for a gradient g.
        const auto add = [&](std::int64_t rows, std::int64_t cols, std::int64_t kk, SgemmOperand x,
                             SgemmOperand y, float* g) {
          if (alpha == 1.0f) return fq::sgemm_reference(rows, cols, kk, x, y, g, cols, true);
          s.assign(static_cast<std::size_t>(rows * cols), 0.0f);
          fq::sgemm_reference(rows, cols, kk, x, y, s.data(), cols, false);
          for (std::size_t e = 0; e < s.size(); ++e) g[e] = std::fma(alpha, s[e], g[e]);
        };
        for (std::int64_t i = 0; i < nb; ++i) {
          const float* ai = a.data() + i * m * k;
          const float* bi = b.data() + i * k * n;
          const float* dci = dc.data() + i * m * n;
          const SgemmOperand opa = ta ? SgemmOperand{ai, 1, m} : SgemmOperand{ai, k, 1};
          const SgemmOperand opb = tb ? SgemmOperand{bi, 1, k} : SgemmOperand{bi, n, 1};
          const SgemmOperand dcm{dci, n, 1};
          float* ci = want_c.data() + i * m * n;
          fq::sgemm_reference(m, n, k, opa, opb, ci, n, false);
          if (alpha != 1.0f)
            for (std::int64_t e = 0; e < m * n; ++e) ci[e] *= alpha;
          // d op(a) = dc · op(b)ᵀ, d op(b) = op(a)ᵀ · dc, each stored in its operand's layout.
          if (ta)
            add(k, m, n, opb, t(dcm), want_da.data() + i * m * k);
          else
            add(m, k, n, dcm, t(opb), want_da.data() + i * m * k);
          if (tb)
            add(n, k, m, t(dcm), opa, want_db.data() + i * k * n);
          else
            add(k, n, m, t(opa), dcm, want_db.data() + i * k * n);
        }
        CHECK(differing(c.value(), want_c.data(), want_c.size()) == 0);
        CHECK(differing(da.data(), want_da.data(), da.size()) == 0);
        CHECK(differing(db.data(), want_db.data(), db.size()) == 0);
      }
}

// (Square weights: check_copies_bitwise compares an output of x's shape.)
TEST_CASE("linear and matmul: a row's bits do not depend on where it lies in the batch",
          "[ops][gemm][bit_exact]") {
  if constexpr (!kFused) {
    WARN("this build's architecture has no FMA: the products run on Eigen");
    return;
  }
  std::mt19937 rng(9);
  const std::vector<float> w = normal(70 * 70, rng), v = normal(70 * 70, rng);
  fq_test::check_copies_bitwise({29, 70}, [&](Tape& tape, const Var& x) {
    return fq::ops::linear(tape, x, tape.constant(w.data(), {70, 70}));
  });
  fq_test::check_copies_bitwise({4, 9, 70}, [&](Tape& tape, const Var& x) {
    return fq::ops::matmul(tape, x, tape.constant(v.data(), {70, 70}));
  });
}
