// SPDX-License-Identifier: MIT
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <random>
#include <vector>

#include <catch2/catch.hpp>

#include <fakequant/layers/qlayers.hpp>
#include <fakequant/ops/loss.hpp>
#include <fakequant/optim/adam.hpp>

#include "layers/layers_test_util.hpp"
#include "test_util.hpp"

using fq::Tape;
using fq::Var;

TEST_CASE("QLinear: fake-quantized weights and activations, gradients through the STE",
          "[layers]") {
  std::mt19937 rng(3);
  fq::QLinear<> layer(6, 4, rng, fq::Activation::kReLU);
  fq_test::GradInput x({5, 6}, 9);
  Tape tape;
  Var y = layer.forward(tape, tape.leaf(x.value.data(), x.grad.data(), x.shape));
  // The weight quantizer observed the weights: each row's max |w| maps to ±127 (or -128).
  const auto& wq = layer.weight_quantizer().quantizer();
  REQUIRE(wq.scale().size() == 4);
  // y is on the output quantizer's grid and non-negative (fused ReLU before it).
  const auto& aq = layer.output_quantizer().quantizer();
  for (std::int64_t i = 0; i < y.numel(); ++i) {
    const float level = y.value()[i] / aq.scale()[0] + float(aq.zero_point()[0]);
    CHECK(std::abs(level - std::nearbyint(level)) < 1e-3f);
    CHECK(y.value()[i] >= 0.0f);
  }
  tape.backward(fq::ops::mean(tape, y));
  double gw = 0;
  for (float g : layer.weight().grad()) gw += std::abs(g);
  CHECK(gw > 0);
  CHECK(layer.parameters().size() == 2);
  int nq = 0;
  layer.for_each_quantizer([&](auto&) { ++nq; });
  CHECK(nq == 2);
}

TEST_CASE("QConvBn2d: with running statistics it equals the folded convolution", "[layers]") {
  std::mt19937 rng(5);
  fq::QConvBn2d<> layer(3, 4, 3, rng, fq::ops::Conv2dOptions::make(1, 1));
  for (std::size_t c = 0; c < 4; ++c) {
    layer.running_mean()[c] = 0.1f * float(c);
    layer.running_var()[c] = 0.5f + 0.25f * float(c);
    layer.gamma().value()[c] = 0.8f + 0.1f * float(c);
    layer.beta().value()[c] = -0.2f + 0.1f * float(c);
  }
  layer.for_each_quantizer([](auto& q) { q.enable_fake_quant(false); });
  layer.train(false);
  fq_test::GradInput x({2, 3, 5, 5}, 2);
  Tape tape;
  Var y = layer.forward(tape, tape.constant(x.value.data(), x.shape));
  // Folded: w' = w·f, b' = β − f·μ, f = γ/√(σ²+ε).
  std::vector<float> wf(layer.weight().value()), bf(4);
  for (std::size_t o = 0; o < 4; ++o) {
    const float f = layer.gamma().value()[o] / std::sqrt(layer.running_var()[o] + 1e-5f);
    for (std::size_t k = 0; k < 27; ++k) wf[o * 27 + k] *= f;
    bf[o] = layer.beta().value()[o] - f * layer.running_mean()[o];
  }
  Var ref = fq::ops::conv2d(tape, tape.constant(x.value.data(), x.shape),
                            tape.constant(wf.data(), {4, 3, 3, 3}), tape.constant(bf.data(), {4}),
                            fq::ops::Conv2dOptions::make(1, 1));
  for (std::int64_t i = 0; i < y.numel(); ++i)
    CHECK(y.value()[i] == Approx(ref.value()[i]).margin(1e-4));
}

TEST_CASE("QConvBn2d: training gradients match finite differences with quantization off",
          "[layers]") {
  std::mt19937 rng(8);
  fq::QConvBn2d<> layer(2, 3, 3, rng, fq::ops::Conv2dOptions::make(1, 1));
  layer.for_each_quantizer([](auto& q) {
    q.enable_fake_quant(false);
    q.enable_observer(false);
  });
  layer.freeze_bn_stats();  // running statistics: the forward is a smooth function of w and γ
  std::vector<fq_test::GradInput> in = {fq_test::GradInput({2, 2, 4, 4}, 1)};
  auto& w = layer.weight();
  auto& gamma = layer.gamma();
  // Check d/dw and d/dγ through the folding by perturbing the layer's own storage.
  Tape tape;
  auto loss_of = [&](bool grad) {
    Var l = fq_test::weighted_sum(
        tape, layer.forward(tape, tape.constant(in[0].value.data(), in[0].shape)), 3);
    const double v = l.value()[0];
    if (grad) tape.backward(l);
    tape.clear();
    return v;
  };
  w.zero_grad();
  gamma.zero_grad();
  loss_of(true);
  for (auto* p : {&w, &gamma})
    for (std::size_t i = 0; i < p->value().size(); i += 3) {
      const float v0 = p->value()[i], h = 1e-2f;
      p->value()[i] = v0 + h;
      const double lp = loss_of(false);
      p->value()[i] = v0 - h;
      const double lm = loss_of(false);
      p->value()[i] = v0;
      CHECK(p->grad()[i] == Approx((lp - lm) / (2 * h)).margin(2e-3));
    }
}

TEST_CASE("QLinear + Adam: a QAT layer learns a linear map", "[layers][optim]") {
  std::mt19937 rng(11);
  fq::QLinear<fq::DefaultWeightFakeQuant, fq::NoFakeQuant> layer(4, 2, rng);
  fq::optim::AdamOptions o;
  o.lr = 0.05;
  fq::optim::Adam opt(layer.parameters(), o);
  std::normal_distribution<float> g;
  std::vector<float> x(64 * 4);
  std::vector<std::int32_t> t(64);
  Tape tape;
  double first = 0, last = 0;
  for (int step = 0; step < 150; ++step) {
    for (std::size_t i = 0; i < 64; ++i) {
      for (std::size_t k = 0; k < 4; ++k) x[i * 4 + k] = g(rng);
      t[i] = x[i * 4] + 0.5f * x[i * 4 + 1] > 0 ? 1 : 0;
    }
    Var loss = fq::ops::softmax_cross_entropy(
        tape, layer.forward(tape, tape.constant(x.data(), {64, 4})), t.data());
    if (step == 0) first = loss.value()[0];
    if (step >= 130) last += loss.value()[0] / 20;  // the mean of the last 20 batches
    tape.backward(loss);
    opt.step();
    opt.zero_grad();
    tape.clear();
  }
  CHECK(last < 0.25 * first);
}

TEST_CASE("QAT layers: construction refuses geometry and BN parameters nothing can compute",
          "[layers]") {
  using fq::ErrorCode;
  using fq_test::error_code_of;
  using Linear = fq::QLinear<>;
  using Conv = fq::QConv2d<>;
  using ConvBn = fq::QConvBn2d<>;
  std::mt19937 rng(1);
  // 0 input features would initialise U(±1/√0): NaN biases.
  CHECK(error_code_of([&] { Linear(0, 4, rng); }) == ErrorCode::kInvalidArgument);
  CHECK(error_code_of([&] { Linear(4, 0, rng); }) == ErrorCode::kInvalidArgument);
  CHECK(error_code_of([&] { Linear(-1, 4, rng); }) == ErrorCode::kInvalidArgument);
  CHECK_THROWS_WITH(Linear(0, 4, rng), Catch::Contains("QLinear") && Catch::Contains("got 0"));
  auto opt = [](std::int64_t stride, std::int64_t pad, std::int64_t groups) {
    return fq::ops::Conv2dOptions::make(stride, pad, groups);
  };
  const std::vector<std::function<void()>> bad_conv = {
      [&] { Conv(4, 8, 3, rng, opt(1, 0, 0)); },   // groups 0: in_ch / 0
      [&] { Conv(4, 8, 3, rng, opt(1, 0, -2)); },  // negative groups
      [&] { Conv(6, 8, 3, rng, opt(1, 0, 4)); },   // in_ch not divisible by the groups
      [&] { Conv(4, 6, 3, rng, opt(1, 0, 4)); },   // out_ch not divisible by the groups
      [&] { Conv(4, 8, 0, rng); },                 // kernel 0
      [&] { Conv(0, 8, 3, rng); },                 // no input channels
      [&] { Conv(4, 0, 3, rng); },                 // no output channels
      [&] { Conv(4, 8, 3, rng, opt(0, 0, 1)); },   // stride 0
      [&] { Conv(4, 8, 3, rng, opt(1, -1, 1)); },  // negative padding
      [&] { ConvBn(4, 8, 3, rng, opt(1, 0, 0)); },
      [&] { ConvBn(4, 8, 0, rng); },
  };
  for (std::size_t i = 0; i < bad_conv.size(); ++i) {
    INFO("case " << i);
    CHECK(error_code_of(bad_conv[i]) == ErrorCode::kInvalidArgument);
  }
  CHECK_THROWS_WITH(Conv(4, 8, 3, rng, opt(1, 0, 0)),
                    Catch::Contains("QConv2d") && Catch::Contains("groups 0"));
  // BN folding divides by √(running_var + eps): eps <= 0 or NaN gives inf/NaN.
  const float nan = std::numeric_limits<float>::quiet_NaN(),
              inf = std::numeric_limits<float>::infinity();
  for (float eps : {0.0f, -1e-3f, nan, inf}) {
    INFO("eps " << eps);
    CHECK(error_code_of([&] { ConvBn(2, 2, 1, rng, {}, fq::Activation::kNone, 0.1f, eps); }) ==
          ErrorCode::kInvalidArgument);
  }
  for (float momentum : {-0.1f, 1.5f, nan}) {
    INFO("momentum " << momentum);
    CHECK(error_code_of([&] { ConvBn(2, 2, 1, rng, {}, fq::Activation::kNone, momentum); }) ==
          ErrorCode::kInvalidArgument);
  }
  // Sane layers still construct, with finite initial values.
  Linear lin(3, 2, rng);
  Conv conv(4, 8, 3, rng, opt(2, 1, 2));
  ConvBn cbn(4, 8, 3, rng, opt(1, 1, 4));
  for (float v : lin.bias().value()) CHECK(std::isfinite(v));
  CHECK(conv.weight().shape() == fq::Shape{8, 2, 3, 3});
  CHECK(cbn.weight().shape() == fq::Shape{8, 1, 3, 3});
  fq::Parameter p({2}, "p");
  CHECK(error_code_of([&] { p.init_uniform(rng, 0); }) == ErrorCode::kInvalidArgument);
}
