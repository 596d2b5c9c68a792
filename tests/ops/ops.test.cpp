// SPDX-License-Identifier: MIT
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include <catch2/catch.hpp>

#include <fakequant/base/aligned.hpp>
#include <fakequant/fakequant.hpp>
#include <fakequant/kernels/im2col.hpp>
#include <fakequant/ops/ops.hpp>
#include <fakequant/testing/check_op_gradients.hpp>

#include "ops/ops_test_util.hpp"
#include "test_util.hpp"

using fq::Tape;
using fq::Var;
using fq_test::check_grad;
using fq_test::GradInput;

namespace {}  // namespace

TEST_CASE("linear: forward equals x·wᵀ + b and gradients match finite differences", "[ops]") {
  GradInput x({5, 7}, 1), w({3, 7}, 2), b({3}, 3);
  Tape tape;
  Var y = fq::ops::linear(tape, tape.constant(x.value.data(), x.shape),
                          tape.constant(w.value.data(), w.shape),
                          tape.constant(b.value.data(), b.shape));
  for (int n = 0; n < 5; ++n)
    for (int o = 0; o < 3; ++o) {
      double s = b.at(o);
      for (int i = 0; i < 7; ++i) s += double(x.at(n * 7 + i)) * w.at(o * 7 + i);
      CHECK(y.value()[n * 3 + o] == Approx(s).epsilon(1e-5));
    }
  CHECK_FALSE(y.requires_grad());
  CHECK(tape.node_count() == 0);
  check_grad({x, w, b},
             [](Tape& t, std::vector<Var>& v) { return fq::ops::linear(t, v[0], v[1], v[2]); });
  check_grad({x, w}, [](Tape& t, std::vector<Var>& v) { return fq::ops::linear(t, v[0], v[1]); });
}

TEST_CASE("conv2d: gradients for stride, padding and groups", "[ops]") {
  struct Case {
    fq::Shape x, w;
    fq::ops::Conv2dOptions opt;
  };
  const Case cases[] = {
      {{2, 3, 6, 5}, {4, 3, 3, 3}, fq::ops::Conv2dOptions::make(1, 1)},
      {{1, 4, 7, 7}, {6, 2, 3, 2}, {2, 1, 0, 1, 2}},
      {{2, 2, 5, 5}, {2, 1, 1, 1}, fq::ops::Conv2dOptions::make(2, 0, 2)},
  };
  for (const Case& c : cases) {
    GradInput x(c.x, 4), w(c.w, 5), b({c.w[0]}, 6);
    const auto opt = c.opt;
    check_grad({x, w, b}, [opt](Tape& t, std::vector<Var>& v) {
      return fq::ops::conv2d(t, v[0], v[1], v[2], opt);
    });
  }
}

TEST_CASE("conv2d: forward equals the direct sum", "[ops]") {
  GradInput x({2, 4, 6, 6}, 7), w({4, 2, 3, 3}, 8), b({4}, 9);
  const auto opt = fq::ops::Conv2dOptions{2, 1, 1, 0, 2};
  Tape tape;
  Var y = fq::ops::conv2d(tape, tape.constant(x.value.data(), x.shape),
                          tape.constant(w.value.data(), w.shape),
                          tape.constant(b.value.data(), b.shape), opt);
  REQUIRE(y.shape() == fq::Shape({2, 4, 3, 4}));
  for (int n = 0; n < 2; ++n)
    for (int o = 0; o < 4; ++o)
      for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 4; ++j) {
          double s = b.at(o);
          for (int c = 0; c < 2; ++c)
            for (int p = 0; p < 3; ++p)
              for (int q = 0; q < 3; ++q) {
                const int yy = i * 2 - 1 + p, xx = j + q - 0;
                if (yy < 0 || yy >= 6 || xx < 0 || xx >= 6) continue;
                const int ci = (o / 2) * 2 + c;
                s += double(w.at(((o * 2 + c) * 3 + p) * 3 + q)) *
                     x.at(((n * 4 + ci) * 6 + yy) * 6 + xx);
              }
          CHECK(y.value()[((n * 4 + o) * 3 + i) * 4 + j] == Approx(s).margin(1e-5));
        }
}

namespace {
/// conv2d's y, dx, dw and db for upstream gradient dy, summed in double by the definition.
struct ConvReference {
  std::vector<double> y, dx, dw, db;
  ConvReference(const GradInput& x, const GradInput& w, const GradInput& b, const fq::Shape& ys,
                const std::vector<float>& dy, const fq::ops::Conv2dOptions& o)
      : y(std::size_t(ys.numel())), dx(x.value.size()), dw(w.value.size()), db(b.value.size()) {
    const std::int64_t n_n = x.shape[0], c_n = x.shape[1], h = x.shape[2], wd = x.shape[3],
                       o_n = w.shape[0], cg = w.shape[1], kh = w.shape[2], kw = w.shape[3],
                       og = o_n / o.groups, oh = ys[2], ow = ys[3];
    for (std::int64_t n = 0; n < n_n; ++n)
      for (std::int64_t oc = 0; oc < o_n; ++oc)
        for (std::int64_t i = 0; i < oh; ++i)
          for (std::int64_t j = 0; j < ow; ++j) {
            const auto yi = std::size_t(((n * o_n + oc) * oh + i) * ow + j);
            double s = b.value[std::size_t(oc)];
            db[std::size_t(oc)] += dy[yi];
            for (std::int64_t c = 0; c < cg; ++c)
              for (std::int64_t p = 0; p < kh; ++p)
                for (std::int64_t q = 0; q < kw; ++q) {
                  const std::int64_t yy = i * o.stride_h - o.pad_h + p,
                                     xx = j * o.stride_w - o.pad_w + q;
                  if (yy < 0 || yy >= h || xx < 0 || xx >= wd) continue;
                  const auto xi = std::size_t(((n * c_n + (oc / og) * cg + c) * h + yy) * wd + xx);
                  const auto wi = std::size_t(((oc * cg + c) * kh + p) * kw + q);
                  s += double(w.value[wi]) * x.value[xi];
                  dx[xi] += double(w.value[wi]) * dy[yi];
                  dw[wi] += double(x.value[xi]) * dy[yi];
                }
            y[yi] = s;
          }
  }
};

/// The largest |got − want| / (1 + |want|), with `base` (the gradient before) added to want.
double max_rel_error(const float* got, const std::vector<double>& want, float base) {
  double e = 0;
  for (std::size_t i = 0; i < want.size(); ++i)
    e = std::max(e, std::abs(double(got[i]) - (want[i] + base)) / (1.0 + std::abs(want[i])));
  return e;
}
}  // namespace

TEST_CASE("conv2d: batches of many image chunks, pointwise and strided, against the definition",
          "[ops]") {
  // Batches not a multiple of conv2d's chunk count (and below it); a pointwise (1x1, stride 1,
  // no padding) grouped convolution, whose unfolding is the image itself; a 1x1 one with a
  // stride (unfolded); a stride-3 width (col2im's strided loop). Each with every subset of
  // x and w needing gradients, leaves whose gradients start non-zero (conv2d adds to them).
  struct Case {
    fq::Shape x, w;
    fq::ops::Conv2dOptions opt;
  };
  const Case cases[] = {
      {{19, 3, 5, 6}, {4, 3, 3, 3}, fq::ops::Conv2dOptions::make(1, 1)},
      {{33, 4, 4, 3}, {6, 2, 1, 1}, fq::ops::Conv2dOptions::make(1, 0, 2)},
      {{5, 2, 5, 4}, {3, 2, 1, 1}, fq::ops::Conv2dOptions::make(2, 0)},
      {{17, 2, 7, 8}, {2, 2, 3, 2}, {2, 3, 1, 2, 1}},
      {{3, 2, 3, 3}, {2, 1, 3, 3}, fq::ops::Conv2dOptions::make(1, 2, 2)},
  };
  std::uint32_t seed = 100;
  for (const Case& c : cases)
    for (int needs = 1; needs < 4; ++needs) {  // bit 0: x, bit 1: w; the bias always
      CAPTURE(c.x.str(), c.w.str(), needs);
      GradInput x(c.x, ++seed), w(c.w, ++seed), b({c.w[0]}, ++seed);
      const float base = 0.25f;
      for (auto* in : {&x, &w, &b}) in->grad.assign(in->value.size(), base);
      Tape tape;
      const Var xv = (needs & 1) ? tape.leaf(x.value.data(), x.grad.data(), x.shape)
                                 : tape.constant(x.value.data(), x.shape);
      const Var wv = (needs & 2) ? tape.leaf(w.value.data(), w.grad.data(), w.shape)
                                 : tape.constant(w.value.data(), w.shape);
      const Var bv = tape.leaf(b.value.data(), b.grad.data(), b.shape);
      const Var y = fq::ops::conv2d(tape, xv, wv, bv, c.opt);
      const GradInput r(y.shape(), ++seed);  // loss = mean(y ⊙ r): dy = r / numel
      const Var loss =
          fq::ops::mean(tape, fq::ops::mul(tape, y, tape.constant(r.value.data(), r.shape)));
      tape.backward(loss);
      std::vector<float> dy(r.value);
      for (float& v : dy) v /= float(y.numel());
      const ConvReference ref(x, w, b, y.shape(), dy, c.opt);
      CHECK(max_rel_error(y.value(), ref.y, 0.0f) < 1e-5);
      CHECK(max_rel_error(b.grad.data(), ref.db, base) < 1e-5);
      if (needs & 1) CHECK(max_rel_error(x.grad.data(), ref.dx, base) < 1e-5);
      if (needs & 2) CHECK(max_rel_error(w.grad.data(), ref.dw, base) < 1e-5);
      if (!(needs & 1))
        CHECK(std::all_of(x.grad.begin(), x.grad.end(), [&](float v) { return v == base; }));
      if (!(needs & 2))
        CHECK(std::all_of(w.grad.begin(), w.grad.end(), [&](float v) { return v == base; }));
    }
}

TEST_CASE("conv2d_divided: scale_channels(conv2d) in one op, gradients included", "[ops]") {
  GradInput d({4}, 31, 0.5f, 2.0f);
  for (const auto& opt :
       {fq::ops::Conv2dOptions::make(1, 1), fq::ops::Conv2dOptions{2, 1, 0, 1, 2}}) {
    GradInput x({3, 2, 5, 6}, 32), w({4, 2 / opt.groups, 3, 3}, 33);
    check_grad({x, w, d}, [opt](Tape& t, std::vector<Var>& v) {
      return fq::ops::conv2d_divided(t, v[0], v[1], v[2], opt);
    });
    // The same forward bits and (to rounding) gradients as the two ops it fuses, on a batch of
    // several image chunks.
    GradInput xb({21, 2, 5, 6}, 34);
    std::vector<float> g1[3], g2[3];
    std::vector<float> y1, y2;
    for (int pass = 0; pass < 2; ++pass) {
      auto& gr = pass == 0 ? g1 : g2;
      gr[0].assign(xb.value.size(), 0.0f);
      gr[1].assign(w.value.size(), 0.0f);
      gr[2].assign(d.value.size(), 0.0f);
      Tape t;
      const Var xv = t.leaf(xb.value.data(), gr[0].data(), xb.shape),
                wv = t.leaf(w.value.data(), gr[1].data(), w.shape),
                dv = t.leaf(d.value.data(), gr[2].data(), d.shape);
      const Var y = pass == 0 ? fq::ops::conv2d_divided(t, xv, wv, dv, opt)
                              : fq::ops::scale_channels(t, fq::ops::conv2d(t, xv, wv, Var(), opt),
                                                        dv, 1, /*divide=*/true);
      (pass == 0 ? y1 : y2).assign(y.value(), y.value() + y.numel());
      t.backward(fq::ops::mean(t, fq::ops::mul(t, y, y)));
    }
    CHECK(y1 == y2);
    for (int i = 0; i < 3; ++i)
      for (std::size_t e = 0; e < g1[i].size(); ++e)
        CHECK(g1[i][e] == Approx(g2[i][e]).epsilon(1e-4).margin(1e-6));
  }
  Tape t;
  GradInput x({1, 2, 4, 4}, 35), w({3, 2, 3, 3}, 36);
  CHECK_THROWS_WITH(fq::ops::conv2d_divided(t, t.constant(x.value.data(), x.shape),
                                            t.constant(w.value.data(), w.shape),
                                            t.constant(d.value.data(), d.shape)),
                    Catch::Contains("4 divisors for 3 output channels"));
}

TEST_CASE("element-wise ops, pooling, batch norm and cross-entropy: gradients", "[ops]") {
  GradInput a({3, 4, 4, 4}, 11, -2, 8), b({3, 4, 4, 4}, 12);
  check_grad({a}, [](Tape& t, std::vector<Var>& v) { return fq::ops::relu(t, v[0]); });
  check_grad({a}, [](Tape& t, std::vector<Var>& v) { return fq::ops::relu6(t, v[0]); });
  check_grad({a, b}, [](Tape& t, std::vector<Var>& v) { return fq::ops::add(t, v[0], v[1]); });
  check_grad({a}, [](Tape& t, std::vector<Var>& v) { return fq::ops::mean(t, v[0]); });
  check_grad({a}, [](Tape& t, std::vector<Var>& v) { return fq::ops::max_pool2d(t, v[0], 2); });
  check_grad({a}, [](Tape& t, std::vector<Var>& v) { return fq::ops::avg_pool2d(t, v[0], 3, 1); });
  GradInput s({4}, 13, 0.5f, 2.0f);
  for (int axis : {1, 3})
    for (bool div : {false, true})
      check_grad({a, s}, [axis, div](Tape& t, std::vector<Var>& v) {
        return fq::ops::scale_channels(t, v[0], v[1], axis, div);
      });
  GradInput gamma({4}, 14, 0.5f, 1.5f), beta({4}, 15);
  for (bool training : {true, false}) {
    std::vector<float> rm(4, 0.1f), rv(4, 0.9f);
    fq::ops::BatchNormOptions opt;
    opt.training = training;
    opt.update_stats = false;
    check_grad(
        {a, gamma, beta},
        [&](Tape& t, std::vector<Var>& v) {
          return fq::ops::batch_norm(t, v[0], v[1], v[2], rm.data(), rv.data(), opt);
        },
        1e-2f, 5e-3);
  }
  GradInput logits({6, 5}, 16, -3, 3);
  const std::int32_t labels[] = {0, 4, 2, 2, 1, 3};
  check_grad({logits}, [&](Tape& t, std::vector<Var>& v) {
    return fq::ops::softmax_cross_entropy(t, v[0], labels);
  });
  GradInput fold({4}, 17, 0.5f, 1.5f);
  std::vector<float> rv(4, 0.7f);
  check_grad({fold}, [&](Tape& t, std::vector<Var>& v) {
    return fq::ops::bn_fold_factor(t, v[0], rv.data(), 1e-5f);
  });
}

namespace {
// relu(batch_norm(x)) (or relu6) as two ops or as batch_norm_relu: y, the gradients of x, γ
// and β of L = mean(y ⊙ r), and the running statistics, as one vector of floats.
std::vector<float> bn_relu_run(bool fused, const fq::Shape& shape, bool training, float hi,
                               std::uint32_t seed, bool nan = false) {
  const std::int64_t c = shape[1];
  GradInput x(shape, seed, -3, 5), gamma({c}, seed + 1, 2, 8), beta({c}, seed + 2, -1, 1),
      r(shape, seed + 3);
  if (nan) x.value[1] = std::numeric_limits<float>::quiet_NaN();  // channel 0 of image 0
  std::vector<float> rm(static_cast<std::size_t>(c), 0.25f), rv(rm.size(), 1.5f);
  fq::ops::BatchNormOptions o;
  o.training = training;
  Tape tape;
  const Var xv = tape.leaf(x.value.data(), x.grad.data(), shape),
            g = tape.leaf(gamma.value.data(), gamma.grad.data(), {c}),
            b = tape.leaf(beta.value.data(), beta.grad.data(), {c});
  const bool relu6 = hi == 6.0f;
  Var y;
  if (fused) {
    y = fq::ops::batch_norm_relu(tape, xv, g, b, rm.data(), rv.data(), o, hi);
  } else {
    const Var z = fq::ops::batch_norm(tape, xv, g, b, rm.data(), rv.data(), o);
    y = relu6 ? fq::ops::relu6(tape, z) : fq::ops::relu(tape, z);
  }
  if (!nan)  // (a NaN output makes a NaN loss, which the tape refuses)
    tape.backward(fq::ops::mean(tape, fq::ops::mul(tape, y, tape.constant(r.value.data(), shape))));
  std::vector<float> out(y.value(), y.value() + y.numel());
  for (const auto* v : {&x.grad, &gamma.grad, &beta.grad, &rm, &rv})
    out.insert(out.end(), v->begin(), v->end());
  return out;
}
}  // namespace

TEST_CASE("batch_norm_relu: relu(batch_norm) and relu6 bit for bit, forward and backward",
          "[ops]") {
  std::uint32_t seed = 700;
  // Planes of 25 floats (not a whole number of cache lines: misaligned planes), 16, and 1.
  for (const fq::Shape& shape :
       {fq::Shape{4, 3, 5, 5}, fq::Shape{3, 2, 4, 4}, fq::Shape{6, 5}, fq::Shape{2, 4, 7, 9}})
    for (bool training : {true, false})
      for (float hi : {std::numeric_limits<float>::infinity(), 6.0f}) {
        INFO("shape " << shape.str() << " training " << training << " hi " << hi);
        const auto two = bn_relu_run(false, shape, training, hi, seed);
        const auto one = bn_relu_run(true, shape, training, hi, seed);
        ++seed;
        CHECK(fq_test::first_bit_mismatch(one, two) == -1);
        const auto n = static_cast<std::size_t>(shape.numel());
        CHECK(std::count(two.begin(), two.begin() + static_cast<std::ptrdiff_t>(n), 0.0f) > 0);
        if (hi == 6.0f)
          CHECK(std::count(two.begin(), two.begin() + static_cast<std::ptrdiff_t>(n), 6.0f) > 0);
      }
  // A NaN input: its channel's statistics and outputs are NaN or clamped alike (forward only).
  for (bool training : {true, false})
    CHECK(fq_test::first_bit_mismatch(
              bn_relu_run(true, {3, 2, 4, 4}, training, 6.0f, 900, true),
              bn_relu_run(false, {3, 2, 4, 4}, training, 6.0f, 900, true)) == -1);
  Tape tape;
  GradInput x({2, 2}, 1), g({2}, 2), b({2}, 3);
  std::vector<float> rm(2, 0.0f), rv(2, 1.0f);
  CHECK_THROWS_WITH(
      fq::ops::batch_norm_relu(tape, tape.constant(x.value.data(), {2, 2}),
                               tape.constant(g.value.data(), {2}),
                               tape.constant(b.value.data(), {2}), rm.data(), rv.data(), {}, 0.0f),
      Catch::Contains("batch_norm_relu: the clamp's upper bound must be > 0"));
}

TEST_CASE("batch_norm: the same bits wherever x lies in memory", "[ops]") {
  // Planes of 25 and 49 floats: every copy below starts at a different offset within a cache
  // line, which changed the last bit of Eigen's unaligned sums (and so of μ, σ², y and dx).
  for (const fq::Shape& shape : {fq::Shape{4, 3, 5, 5}, fq::Shape{2, 2, 7, 7}})
    for (bool relu : {false, true}) {
      const std::int64_t c = shape[1];
      GradInput x(shape, 41, -3, 5), gamma({c}, 42, 2, 8), beta({c}, 43, -1, 1), r(shape, 44);
      std::vector<float> first;
      for (std::int64_t offset = 0; offset < 16; ++offset) {
        // x and its gradient at `offset` floats into 64-byte aligned storage.
        std::vector<float, fq::detail::Align64Allocator<float>> xs(x.value.size() + 16),
            dxs(xs.size());
        std::copy(x.value.begin(), x.value.end(), xs.begin() + offset);
        std::vector<float> dg(gamma.value.size()), db(dg.size()), rm(dg.size(), 0.25f),
            rv(dg.size(), 1.5f);
        Tape tape;
        const Var xv = tape.leaf(xs.data() + offset, dxs.data() + offset, shape),
                  g = tape.leaf(gamma.value.data(), dg.data(), {c}),
                  b = tape.leaf(beta.value.data(), db.data(), {c});
        const Var y = relu ? fq::ops::batch_norm_relu(tape, xv, g, b, rm.data(), rv.data())
                           : fq::ops::batch_norm(tape, xv, g, b, rm.data(), rv.data());
        tape.backward(
            fq::ops::mean(tape, fq::ops::mul(tape, y, tape.constant(r.value.data(), shape))));
        std::vector<float> out(y.value(), y.value() + y.numel());
        out.insert(out.end(), dxs.begin() + offset, dxs.begin() + offset + shape.numel());
        for (const auto* v : {&dg, &db, &rm, &rv}) out.insert(out.end(), v->begin(), v->end());
        INFO("shape " << shape.str() << " relu " << relu << " offset " << offset);
        if (offset == 0)
          first = out;
        else
          CHECK(fq_test::first_bit_mismatch(out, first) == -1);
      }
    }
}

TEST_CASE("batch_norm: training statistics and running updates follow PyTorch", "[ops]") {
  GradInput x({4, 2, 3, 3}, 21, -1, 3), gamma({2}, 22), beta({2}, 23);
  std::vector<float> rm = {0.5f, -0.5f}, rv = {2.0f, 0.5f};
  Tape tape;
  Var y = fq::ops::batch_norm(tape, tape.constant(x.value.data(), x.shape),
                              tape.constant(gamma.value.data(), {2}),
                              tape.constant(beta.value.data(), {2}), rm.data(), rv.data());
  for (int c = 0; c < 2; ++c) {
    double s = 0, s2 = 0;
    for (int n = 0; n < 4; ++n)
      for (int i = 0; i < 9; ++i) s += x.at((n * 2 + c) * 9 + i);
    const double mean = s / 36;
    for (int n = 0; n < 4; ++n)
      for (int i = 0; i < 9; ++i) s2 += std::pow(x.at((n * 2 + c) * 9 + i) - mean, 2);
    const double var = s2 / 36;
    CHECK(rm[static_cast<std::size_t>(c)] ==
          Approx(0.9 * (c ? -0.5 : 0.5) + 0.1 * mean).epsilon(1e-5));
    CHECK(rv[static_cast<std::size_t>(c)] ==
          Approx(0.9 * (c ? 0.5 : 2.0) + 0.1 * var * 36 / 35).epsilon(1e-5));
    const float x0 = x.at(c * 9);
    CHECK(y.value()[c * 9] ==
          Approx(gamma.at(c) * (x0 - mean) / std::sqrt(var + 1e-5) + beta.at(c)).margin(1e-5));
  }
}

TEST_CASE("fake_quant node: forward equals the quantizer, gradient is the STE mask", "[ops]") {
  fq::FakeQuantizer<fq::Int8WeightPerChannelSymmetric> q(3);
  const std::vector<float> scales = {0.01f, 0.02f, 0.005f};
  const std::vector<std::int32_t> zps = {0, 0, 0};
  q.set_qparams(scales, zps);
  GradInput x({3, 50}, 31, -2, 2);
  std::vector<float> ref(x.value.size());
  fq::Mask m;
  q.forward(fq::TensorView<const float>(x.value.data(), {3, 50}),
            fq::TensorView<float>(ref.data(), {3, 50}), &m);
  Tape tape;
  Var xv = tape.leaf(x.value.data(), x.grad.data(), x.shape);
  Var y = fq::ops::fake_quant(tape, xv, q);
  Var y2 = fq::ops::fake_quant(tape, xv, q);  // one quantizer, two nodes: two masks
  for (std::size_t i = 0; i < ref.size(); ++i) REQUIRE(y.value()[i] == ref[i]);
  tape.backward(fq::ops::mean(tape, fq::ops::add(tape, y, y2)));
  for (std::int64_t i = 0; i < 150; ++i) {
    const float expect = m.test_linear(i) ? 2.0f / 150.0f : 0.0f;
    REQUIRE(x.grad[static_cast<std::size_t>(i)] == Approx(expect));
  }
}

TEST_CASE("ops: bad input is reported", "[ops]") {
  GradInput x({2, 3}, 1), w({4, 5}, 2);
  Tape tape, other;
  Var xv = tape.constant(x.value.data(), x.shape);
  CHECK_THROWS_AS(fq::ops::linear(tape, xv, tape.constant(w.value.data(), w.shape)), fq::Error);
  CHECK_THROWS_WITH(fq::ops::relu(other, xv), Catch::Contains("another tape"));
  CHECK_THROWS_WITH(fq::ops::conv2d(tape, xv, xv), Catch::Contains("NCHW"));
  const std::int32_t bad[] = {0, 7};
  CHECK_THROWS_WITH(fq::ops::softmax_cross_entropy(tape, xv, bad), Catch::Contains("label 7"));
  GradInput big({1, 1, 2, 2}, 3);
  CHECK_THROWS_AS(fq::ops::max_pool2d(tape, tape.constant(big.value.data(), big.shape), 3),
                  fq::Error);
}

TEST_CASE("fake_quant node: a pass-through STE quantizer passes the whole gradient", "[ops]") {
  fq::FakeQuantizer<fq::Uint8ActPerTensorAffine::with_clamp_grad<fq::PassThroughSte>> q;
  q.set_qparams(0.01f, 10);
  GradInput x({4, 40}, 41, -2, 4);  // much of it outside [-0.1, 2.45]
  Tape tape;
  Var y = fq::ops::fake_quant(tape, tape.leaf(x.value.data(), x.grad.data(), x.shape), q);
  tape.backward(fq::ops::mean(tape, y));
  for (float g : x.grad) REQUIRE(g == Approx(1.0f / 160.0f));
}

TEST_CASE("fake_quant node: per-channel conv weights with short rows, masked STE", "[ops]") {
  // [8, 3, 3, 3] weights, per output channel: 27-element rows, not a multiple of a SIMD batch.
  fq::FakeQuantizer<fq::Int8WeightPerChannelSymmetric> q(8);
  std::vector<float> scales(8);
  for (std::size_t c = 0; c < 8; ++c) scales[c] = 0.004f + 0.001f * float(c);
  q.set_qparams(scales, std::vector<std::int32_t>(8, 0));
  GradInput w({8, 3, 3, 3}, 51, -0.7f, 0.7f);
  Tape tape;
  Var y = fq::ops::fake_quant(tape, tape.leaf(w.value.data(), w.grad.data(), w.shape), q);
  tape.backward(fq::ops::mean(tape, y));
  for (std::size_t c = 0; c < 8; ++c)
    for (std::size_t k = 0; k < 27; ++k) {
      const float x = w.value[c * 27 + k];
      const bool in_range = std::nearbyint(x * (1.0f / scales[c])) >= -128.0f &&
                            std::nearbyint(x * (1.0f / scales[c])) <= 127.0f;
      REQUIRE(w.grad[c * 27 + k] == (in_range ? 1.0f / 216.0f : 0.0f));
    }
}

TEST_CASE("ops: conv2d geometry whose sizes overflow is refused", "[ops]") {
  using fq::ErrorCode;
  using fq_test::error_code_of;
  GradInput x({1, 1, 4, 4}, 1), w({1, 1, 2, 2}, 2);
  Tape tape;
  const Var xv = tape.constant(x.value.data(), x.shape),
            wv = tape.constant(w.value.data(), w.shape);
  auto conv = [&](std::int64_t pad, std::int64_t stride) {
    return error_code_of(
        [&] { fq::ops::conv2d(tape, xv, wv, Var(), fq::ops::Conv2dOptions::make(stride, pad)); });
  };
  CHECK(conv(std::int64_t{1} << 62, 1) == ErrorCode::kOutOfMemory);  // H + 2·pad overflows
  CHECK(conv(std::int64_t{1} << 40, 1) == ErrorCode::kOutOfMemory);  // OH·OW overflows
  CHECK(conv(std::int64_t{1} << 30, 1) == ErrorCode::kOutOfMemory);  // one image's unfolding does
  CHECK(conv(1, 0) == ErrorCode::kInvalidArgument);
  CHECK(conv(-1, 1) == ErrorCode::kInvalidArgument);
  CHECK_THROWS_WITH(fq::ops::conv2d(tape, xv, wv, Var(), fq::ops::Conv2dOptions::make(1, 1, 0)),
                    Catch::Contains("groups 0"));
  CHECK(conv(1, 1) == ErrorCode{});  // the same op with a sane geometry runs
}

TEST_CASE("ops: conv2d refuses a scratch beyond int64 before allocating", "[ops]") {
  // 16 images of 4x4 padded by 2^28: one image's unfolding (4 x ~2^58 floats) and the output
  // (16 x ~2^58) fit int64, but 16 chunks of two unfoldings each (the backward's) do not.
  GradInput x({16, 1, 4, 4}, 1), w({1, 1, 2, 2}, 2);
  Tape tape;
  const Var xv = tape.leaf(x.value.data(), x.grad.data(), x.shape),
            wv = tape.constant(w.value.data(), w.shape);
  const auto opt = fq::ops::Conv2dOptions::make(1, std::int64_t{1} << 28);
  CHECK(fq_test::error_code_of([&] { fq::ops::conv2d(tape, xv, wv, Var(), opt); }) ==
        fq::ErrorCode::kOutOfMemory);
  CHECK_THROWS_WITH(fq::ops::conv2d(tape, xv, wv, Var(), opt),
                    Catch::Contains("conv2d: the convolution's scratch overflows"));
}

TEST_CASE("ops: batch-norm eps must be finite and > 0", "[ops]") {
  using fq::ErrorCode;
  using fq_test::error_code_of;
  GradInput x({4, 2}, 1), g({2}, 2), b({2}, 3);
  std::vector<float> mean(2, 0.0f), var(2, 0.0f);  // a zero variance: eps alone keeps 1/√ finite
  Tape tape;
  const Var xv = tape.constant(x.value.data(), x.shape),
            gv = tape.constant(g.value.data(), g.shape),
            bv = tape.constant(b.value.data(), b.shape);
  const float nan = std::numeric_limits<float>::quiet_NaN(),
              inf = std::numeric_limits<float>::infinity();
  for (float eps : {0.0f, -1e-5f, nan, inf}) {
    INFO("eps " << eps);
    CHECK(error_code_of([&] { fq::ops::bn_fold_factor(tape, gv, var.data(), eps); }) ==
          ErrorCode::kInvalidArgument);
    fq::ops::BatchNormOptions o;
    o.eps = eps;
    o.training = false;
    CHECK(error_code_of([&] {
            fq::ops::batch_norm(tape, xv, gv, bv, mean.data(), var.data(), o);
          }) == ErrorCode::kInvalidArgument);
  }
  const Var f = fq::ops::bn_fold_factor(tape, gv, var.data(), 1e-5f);
  for (int c = 0; c < 2; ++c) CHECK(std::isfinite(f.value()[c]));
}

TEST_CASE("im2col: both layouts, float and uint8, equal the window definition", "[ops]") {
  std::mt19937 rng(41);
  for (int trial = 0; trial < 60; ++trial) {
    fq::Conv2dShape s;
    s.in_channels = 1 + std::int64_t(rng() % 3);
    s.kernel_h = 1 + std::int64_t(rng() % 3);
    s.kernel_w = 1 + std::int64_t(rng() % 3);
    s.in_h = s.kernel_h + std::int64_t(rng() % 5);
    s.in_w = s.kernel_w + std::int64_t(rng() % 5);
    s.stride_h = 1 + std::int64_t(rng() % 2);
    s.stride_w = 1 + std::int64_t(rng() % 3);
    s.pad_h = std::int64_t(rng() % 2);
    s.pad_w = std::int64_t(rng() % 3);
    const std::int64_t c = s.in_channels, k = c * s.kernel_h * s.kernel_w,
                       p = s.out_h() * s.out_w();
    std::vector<std::uint8_t> xu(static_cast<std::size_t>(c * s.in_h * s.in_w));
    std::vector<float> xf(xu.size());
    for (std::size_t i = 0; i < xu.size(); ++i) {
      xu[i] = static_cast<std::uint8_t>(rng() % 256);
      xf[i] = float(xu[i]) - 100.5f;
    }
    const std::int64_t ld = k + 3, ldt = p + 2;  // row strides beyond the rows, left untouched
    std::vector<std::uint8_t> cu(static_cast<std::size_t>(p * ld), 7);
    std::vector<float> cf(cu.size(), -1.0f), ct(static_cast<std::size_t>(k * ldt), -1.0f);
    fq::im2col(xu.data(), c, s, std::uint8_t{42}, cu.data(), ld);
    fq::im2col(xf.data(), c, s, 0.5f, cf.data(), ld);
    fq::im2col(xf.data(), c, s, 0.5f, ct.data(), ldt, fq::Im2colLayout::kRowPerOffset);
    for (std::int64_t oh = 0; oh < s.out_h(); ++oh)
      for (std::int64_t ow = 0; ow < s.out_w(); ++ow)
        for (std::int64_t ch = 0; ch < c; ++ch)
          for (std::int64_t i = 0; i < s.kernel_h; ++i)
            for (std::int64_t j = 0; j < s.kernel_w; ++j) {
              const std::int64_t h = oh * s.stride_h - s.pad_h + i,
                                 w = ow * s.stride_w - s.pad_w + j;
              const bool in = h >= 0 && h < s.in_h && w >= 0 && w < s.in_w;
              const auto xi = static_cast<std::size_t>((ch * s.in_h + h) * s.in_w + w);
              const std::int64_t pos = oh * s.out_w() + ow,
                                 col = (ch * s.kernel_h + i) * s.kernel_w + j;
              INFO("trial " << trial << " position " << pos << " column " << col);
              REQUIRE(int(cu[static_cast<std::size_t>(pos * ld + col)]) == (in ? xu[xi] : 42));
              REQUIRE(cf[static_cast<std::size_t>(pos * ld + col)] == (in ? xf[xi] : 0.5f));
              REQUIRE(ct[static_cast<std::size_t>(col * ldt + pos)] == (in ? xf[xi] : 0.5f));
            }
    for (std::int64_t pos = 0; pos < p; ++pos)
      for (std::int64_t col = k; col < ld; ++col)
        REQUIRE(int(cu[static_cast<std::size_t>(pos * ld + col)]) == 7);
    for (std::int64_t col = 0; col < k; ++col)
      for (std::int64_t pos = p; pos < ldt; ++pos)
        REQUIRE(ct[static_cast<std::size_t>(col * ldt + pos)] == -1.0f);
  }
}

TEST_CASE("softmax_cross_entropy: identical samples get identical gradient bits wherever they lie",
          "[ops]") {
  // Rows of K = 10 (the demo), 37 and 100 logits start at many float offsets mod 16.
  for (std::int64_t k : {10, 37, 100}) {
    INFO("K " << k);
    const std::int64_t n = 33;
    std::mt19937 rng(5);
    std::normal_distribution<float> nd(0.0f, 3.0f);
    std::vector<float> row(std::size_t(k), 0.0f);
    for (float& v : row) v = nd(rng);
    std::vector<float> x(std::size_t(n * k)), dx(x.size(), 0.0f);
    for (std::size_t e = 0; e < x.size(); ++e) x[e] = row[e % std::size_t(k)];
    const std::vector<std::int32_t> labels(std::size_t(n), std::int32_t(k / 3));
    Tape tape;
    const Var l =
        fq::ops::softmax_cross_entropy(tape, tape.leaf(x.data(), dx.data(), {n, k}), labels.data());
    tape.backward(l);
    std::size_t bad = 0;
    for (std::size_t e = std::size_t(k); e < dx.size(); ++e)
      bad += fq_test::bits_of(dx[e]) != fq_test::bits_of(dx[e % std::size_t(k)]);
    CHECK(bad == 0);
    CHECK(dx[std::size_t(k / 3)] < 0.0f);  // the label's probability is below 1
  }
}

TEST_CASE("conv2d, conv2d_divided: identical planes give identical bias and divisor gradients",
          "[ops]") {
  // Every output channel has the same weights, bias and divisor, so every plane of y and dy is
  // the same (conv2d with a bias, conv2d_divided with divisors); planes of 7·7 = 49 floats start at
  // every offset mod 16 (channel o at 49·o), so db[o] and dd[o] (sums over the planes) must all
  // have channel 0's bits.
  const std::int64_t oc = 16;
  GradInput x({2, 3, 7, 7}, 41);
  std::vector<float> w(std::size_t(oc) * 27), b(std::size_t(oc), 0.25f), d(std::size_t(oc), 1.5f);
  for (std::size_t e = 0; e < w.size(); ++e) w[e] = 0.1f * float(int(e % 27) - 13);
  for (bool divided : {false, true}) {
    INFO("divided " << divided);
    std::vector<float> db(b.size(), 0.0f), dd(d.size(), 0.0f);
    Tape t;
    const Var xv = t.constant(x.value.data(), x.shape), wv = t.constant(w.data(), {oc, 3, 3, 3});
    const Var bv = t.leaf(b.data(), db.data(), {oc}), dv = t.leaf(d.data(), dd.data(), {oc});
    const auto opt = fq::ops::Conv2dOptions::make(1, 1);
    const Var y =
        divided ? fq::ops::conv2d_divided(t, xv, wv, dv, opt) : fq::ops::conv2d(t, xv, wv, bv, opt);
    constexpr std::size_t kPlane = 49;
    const Var l = fq::custom_op(
        t, {y}, {}, [](float* out) { *out = 0.0f; },
        [y](const float*, const float* g) {
          for (std::int64_t e = 0; e < y.numel(); ++e)
            y.grad()[e] += g[0] * std::sin(0.37f * float(std::size_t(e) % kPlane));
        });
    t.backward(l);
    const std::vector<float>& g = divided ? dd : db;  // conv2d_divided has no bias
    for (std::size_t o = 1; o < g.size(); ++o) {
      INFO("channel " << o);
      CHECK(fq_test::bits_of(g[o]) == fq_test::bits_of(g[0]));
    }
    CHECK(g[0] != 0.0f);
  }
}

namespace {
// check_first_writer (testing/check_op_gradients.hpp) with the report on failure.
void check_first_writer(std::vector<GradInput> in,
                        const std::function<Var(Tape&, std::vector<Var>&)>& f) {
  const fq::testing::CheckResult r = fq::testing::check_first_writer(in, f);
  INFO(r.report());
  CHECK(r.passed());
  CHECK(r.checked("op_gradient_first_writer") > 0);
}
}  // namespace

TEST_CASE("first writer: ops that store an input's whole gradient give the gradient of adding",
          "[ops][first_writer]") {
  // Ops away from finite differences (max, rounding) and inputs shared within one op; the
  // smooth ops go through the same comparison in check_grad.
  GradInput x({2, 3, 9, 7}, 41, -2, 2);
  check_first_writer({x}, [](Tape& t, std::vector<Var>& v) {
    return fq::ops::max_pool2d(t, v[0], 3, 2);  // overlapping windows: several dy per dx
  });
  check_first_writer({x}, [](Tape& t, std::vector<Var>& v) {
    return fq::ops::max_pool2d(t, v[0], 2);  // a row and a column no window covers
  });
  GradInput gamma({3}, 42, 0.5f, 1.5f), beta({3}, 43);
  for (bool training : {true, false}) {
    check_first_writer({x, gamma, beta}, [training](Tape& t, std::vector<Var>& v) {
      std::vector<float> rm(3, 0.1f), rv(3, 0.9f);
      fq::ops::BatchNormOptions o;
      o.training = training;
      o.update_stats = false;
      return fq::ops::batch_norm_relu(t, v[0], v[1], v[2], rm.data(), rv.data(), o);
    });
  }
  // x and γ, β one Var (γ, β a reshape of x [1, C]): batch norm must not claim x's gradient.
  check_first_writer({GradInput({1, 4}, 44)}, [](Tape& t, std::vector<Var>& v) {
    std::vector<float> rm(4, 0.0f), rv(4, 1.0f);
    fq::ops::BatchNormOptions o;
    o.training = false;
    const Var g = v[0].reshape({4});
    return fq::ops::batch_norm(t, v[0], g, g, rm.data(), rv.data(), o);
  });
  // The same for layer_norm's γ, β and scale_channels' s (smooth: checked against differences).
  check_grad({GradInput({1, 6}, 50)}, [](Tape& t, std::vector<Var>& v) {
    const Var g = v[0].reshape({6});
    return fq::ops::layer_norm(t, v[0], g, g);
  });
  check_grad({GradInput({1, 6}, 51, 0.5f, 1.5f)}, [](Tape& t, std::vector<Var>& v) {
    return fq::ops::scale_channels(t, v[0], v[0].reshape({6}), 1, true);
  });
  // linear(x, x) and conv2d(x, w) with x = w: the second gradient adds to the first's store.
  check_grad({GradInput({5, 5}, 45)},
             [](Tape& t, std::vector<Var>& v) { return fq::ops::linear(t, v[0], v[0]); });
  check_grad({GradInput({2, 2, 1, 1}, 46)}, [](Tape& t, std::vector<Var>& v) {
    return fq::ops::conv2d(t, v[0], v[0]);  // pointwise: dx is the product itself
  });
  check_grad({GradInput({2, 2, 3, 3}, 47)}, [](Tape& t, std::vector<Var>& v) {
    return fq::ops::conv2d(t, v[0], v[0], Var(), fq::ops::Conv2dOptions::make(1, 1));
  });
  // The masked STE and a learnable quantizer's own backward (its dx written in place).
  fq::FakeQuantizer<fq::Int8WeightPerChannelSymmetric> pc(3);
  pc.set_qparams(std::vector<float>{0.01f, 0.02f, 0.005f}, std::vector<std::int32_t>{0, 0, 0});
  check_first_writer({GradInput({3, 50}, 48, -2, 2)}, [&pc](Tape& t, std::vector<Var>& v) {
    return fq::ops::fake_quant(t, v[0], pc);
  });
  fq::LsqQuantizer<fq::TorchLsq> lsq(fq::QuantRange{0, 255}, 1);
  lsq.set_scale(0.013f);
  lsq.set_zero_point(70.0f);
  check_first_writer({GradInput({3, 40}, 49, -1.5f, 2.5f)}, [&lsq](Tape& t, std::vector<Var>& v) {
    return fq::ops::fake_quant(t, v[0], lsq);
  });
}
