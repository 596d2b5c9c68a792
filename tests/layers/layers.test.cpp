// SPDX-License-Identifier: MIT
#include <random>

#include <catch2/catch.hpp>

#include <fakequant/layers/qlayers.hpp>
#include <fakequant/ops/loss.hpp>
#include <fakequant/optim/adam.hpp>

#include "ops/grad_check.hpp"

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
