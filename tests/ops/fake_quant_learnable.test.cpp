// SPDX-License-Identifier: MIT
// ops::fake_quant with the learnable quantizers (LsqQuantizer, Pact) through the quantizer
// protocol: x's gradient and the parameter gradients equal the fused forward_backward's bit for
// bit, accumulate over two nodes sharing one quantizer, and are recorded even when x needs no
// gradient; fq::optim::parameters_of hands out the parameters the protocol visits.
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <fakequant/learnable/learnable.hpp>
#include <fakequant/ops/elementwise.hpp>
#include <fakequant/ops/fake_quant.hpp>
#include <fakequant/optim/param.hpp>
#include <fakequant/tape/tape.hpp>
#include <fakequant/testing/check_op_gradients.hpp>

using fq::Tape;
using fq::TensorView;
using fq::Var;

namespace {

std::vector<float> uniform(std::size_t n, std::uint32_t seed, float lo, float hi) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (float& e : v) e = u(rng);
  return v;
}

/// Two fake_quant nodes sharing q, on x1 (with a gradient) and x2 (a constant unless
/// x2_grad), loss = Σ y1·r1 + Σ y2·r2, one backward. Returns x1's gradient.
template <class Q>
std::vector<float> two_nodes(Q& q, std::vector<float>& x1, std::vector<float>& x2,
                             const std::vector<float>& r1, const std::vector<float>& r2,
                             std::int64_t rows, std::int64_t cols) {
  Tape tape;
  std::vector<float> g1(x1.size(), 0.0f);
  const Var v1 = tape.leaf(x1.data(), g1.data(), {rows, cols});
  const Var v2 = tape.constant(x2.data(), {rows, cols});
  const Var y1 = fq::ops::fake_quant(tape, v1, q);
  const Var y2 = fq::ops::fake_quant(tape, v2, q);
  REQUIRE(y2.requires_grad());  // the parameters need the node although x2 has no gradient
  tape.backward(fq::ops::add(tape, fq::testing::detail::weighted_sum(tape, y1, r1.data()),
                             fq::testing::detail::weighted_sum(tape, y2, r2.data())));
  return g1;
}

using PerChannelLsq = fq::LsqScheme<fq::LsqTorch, fq::TorchGradScale, fq::LinearScale<>,
                                    fq::NoScaleRestriction, fq::PerChannel<0>>;

}  // namespace

TEMPLATE_TEST_CASE("fake_quant with an LsqQuantizer: gradients are the fused pass's, summed",
                   "[ops][lsq]", fq::TorchLsq, PerChannelLsq) {
  constexpr std::int64_t kRows = 3, kCols = 40;
  const std::int64_t channels = fq::LsqQuantizer<TestType>::kPerChannel ? kRows : 1;
  fq::LsqQuantizer<TestType> q(fq::QuantRange{0, 255}, channels);
  q.set_scale(0.013f);
  q.set_zero_point(70.0f);
  std::vector<float> x1 = uniform(kRows * kCols, 1, -1.5f, 2.5f);
  std::vector<float> x2 = uniform(kRows * kCols, 2, -1.5f, 2.5f);
  const std::vector<float> r1 = uniform(x1.size(), 3, -1.0f, 1.0f);
  const std::vector<float> r2 = uniform(x1.size(), 4, -1.0f, 1.0f);

  // The references: one fused call per node on a copy of q.
  fq::LsqQuantizer<TestType> ref = q;
  std::vector<float> y_ref(x1.size()), dx1(x1.size()), dx2(x1.size());
  const auto view = [&](std::vector<float>& v) {
    return TensorView<float>(v.data(), {kRows, kCols});
  };
  const auto cview = [&](const std::vector<float>& v) {
    return TensorView<const float>(v.data(), {kRows, kCols});
  };
  ref.forward_backward(cview(x2), cview(r2), view(y_ref), view(dx2));
  const std::vector<float> s2 = ref.scale_grad(), z2 = ref.zero_point_grad();
  ref.forward_backward(cview(x1), cview(r1), view(y_ref), view(dx1));
  const std::vector<float> s1 = ref.scale_grad(), z1 = ref.zero_point_grad();

  const std::vector<float> g1 = two_nodes(q, x1, x2, r1, r2, kRows, kCols);
  for (std::size_t i = 0; i < g1.size(); ++i) REQUIRE(g1[i] == dx1[i]);
  // The backward runs node 2 first: (0 + g2) + g1, each term the fused pass's.
  for (std::size_t c = 0; c < s1.size(); ++c) {
    CHECK(q.scale_grad()[c] == (0.0f + s2[c]) + s1[c]);
    CHECK(q.zero_point_grad()[c] == (0.0f + z2[c]) + z1[c]);
    CHECK(q.scale_grad()[c] != s1[c]);  // the second node did add
  }

  // The optimizer's view of the same buffers: scale first, then the zero point.
  const std::vector<fq::optim::ParamRef> p = fq::optim::parameters_of(q);
  REQUIRE(p.size() == 2);
  CHECK(std::string(p[0].name) == "lsq.scale");
  CHECK(p[0].grad == q.scale_grad().data());
  CHECK(p[0].value == q.scale_param().data());
  CHECK(p[0].size == static_cast<std::size_t>(channels));
  CHECK_FALSE(p[0].weight_decay);
  CHECK(std::string(p[1].name) == "lsq.zero_point");
  CHECK(p[1].grad == q.zero_point_grad().data());
  fq::optim::zero_grad(p);
  CHECK(q.scale_grad()[0] == 0.0f);
}

TEST_CASE("fake_quant with an LsqQuantizer: a fixed zero point is not a parameter", "[ops][lsq]") {
  fq::LsqQuantizer<fq::TorchLsq> q(fq::QuantRange{-128, 127}, 1, /*learn_zero_point=*/false);
  const auto p = fq::optim::parameters_of(q);
  REQUIRE(p.size() == 1);
  CHECK(std::string(p[0].name) == "lsq.scale");
}

TEST_CASE("fake_quant with a Pact: dx and d alpha are forward_backward's, summed", "[ops][pact]") {
  constexpr std::int64_t kRows = 2, kCols = 50;
  constexpr float kAlpha = 1.75f, kLambda = 0.01f;
  fq::Pact<4> q(kAlpha, kLambda);
  std::vector<float> x1 = uniform(kRows * kCols, 5, -1.0f, 3.0f);
  std::vector<float> x2 = uniform(kRows * kCols, 6, -1.0f, 3.0f);
  const std::vector<float> r1 = uniform(x1.size(), 7, -1.0f, 1.0f);
  const std::vector<float> r2 = uniform(x1.size(), 8, -1.0f, 1.0f);
  std::vector<float> y_ref(x1.size()), dx1(x1.size()), dx2(x1.size());
  const float a1 =
      fq::Pact<4>::forward_backward(TensorView<const float>(x1.data(), {kRows, kCols}),
                                    TensorView<const float>(r1.data(), {kRows, kCols}),
                                    TensorView<float>(y_ref.data(), {kRows, kCols}),
                                    TensorView<float>(dx1.data(), {kRows, kCols}), kAlpha, kLambda);
  const float a2 =
      fq::Pact<4>::forward_backward(TensorView<const float>(x2.data(), {kRows, kCols}),
                                    TensorView<const float>(r2.data(), {kRows, kCols}),
                                    TensorView<float>(y_ref.data(), {kRows, kCols}),
                                    TensorView<float>(dx2.data(), {kRows, kCols}), kAlpha, kLambda);

  const std::vector<float> g1 = two_nodes(q, x1, x2, r1, r2, kRows, kCols);
  for (std::size_t i = 0; i < g1.size(); ++i) REQUIRE(g1[i] == dx1[i]);
  CHECK(q.alpha_grad() == (0.0f + a2) + a1);
  CHECK(q.alpha_grad() != a1);

  const std::vector<fq::optim::ParamRef> p = fq::optim::parameters_of(q);
  REQUIRE(p.size() == 1);
  CHECK(std::string(p[0].name) == "pact.alpha");
  CHECK(p[0].size == 1);
  CHECK(*p[0].value == kAlpha);
  CHECK(*p[0].grad == q.alpha_grad());
  CHECK_FALSE(p[0].weight_decay);
}

TEST_CASE("fake_quant with a Pact: the forward is PACT's and the mask is where dx passes",
          "[ops][pact]") {
  fq::Pact<3> q(2.0f);
  std::vector<float> x = {-1.0f, 0.0f, 0.3f, 1.99f, 2.0f, 5.0f}, y(6), y_ref(6);
  fq::Mask mask;
  q.forward(TensorView<const float>(x.data(), {6}), TensorView<float>(y.data(), {6}), &mask);
  fq::Pact<3>::forward(TensorView<const float>(x.data(), {6}), TensorView<float>(y_ref.data(), {6}),
                       2.0f);
  for (std::size_t i = 0; i < 6; ++i) {
    CHECK(y[i] == y_ref[i]);
    CHECK(mask.test_linear(static_cast<std::int64_t>(i)) == (x[i] > 0.0f && x[i] < 2.0f));
  }
}

TEST_CASE("fake_quant with a learnable quantizer off the tape: no node, no gradient",
          "[ops][lsq]") {
  fq::LsqQuantizer<fq::TorchLsq> q(fq::QuantRange{0, 255});
  q.set_scale(0.1f);
  std::vector<float> x = uniform(16, 9, -1.0f, 1.0f);
  Tape tape;
  fq::NoGradGuard guard(tape);
  const Var y = fq::ops::fake_quant(tape, tape.constant(x.data(), {16}), q);
  CHECK_FALSE(y.requires_grad());
}
