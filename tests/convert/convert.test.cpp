// SPDX-License-Identifier: MIT
#include <algorithm>
#include <cmath>
#include <random>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include <fakequant/convert/convert.hpp>

#include "convert/convert_test_util.hpp"

using fq::Tape;
using fq::Var;

namespace {
// Runs a layer's evaluation forward on uint8-representable input and returns the output
// levels of its output quantizer; the same input's levels go to `xq`.
template <class Layer>
std::vector<int> simulated_levels(Layer& layer, const std::vector<float>& x, fq::Shape shape,
                                  fq::ActQParams out) {
  Tape tape;
  fq::NoGradGuard ng(tape);
  Var y = layer.forward(tape, tape.constant(x.data(), shape));
  std::vector<int> lv(static_cast<std::size_t>(y.numel()));
  for (std::size_t i = 0; i < lv.size(); ++i)
    lv[i] = static_cast<int>(std::nearbyint(y.value()[i] / out.scale)) + out.zero_point;
  return lv;
}

using fq_convert_test::random_input;

// The same layer evaluated in integer arithmetic (layers/integer_eval.hpp), as levels.
template <class Layer>
std::vector<int> integer_levels(Layer& layer, const std::vector<float>& x, fq::Shape shape,
                                fq::ActQParams in, fq::ActQParams out) {
  layer.use_integer_arithmetic(in);
  const std::vector<int> lv = simulated_levels(layer, x, shape, out);
  layer.use_float_arithmetic();
  return lv;
}

struct Agreement {
  std::size_t total = 0, exact = 0;
  int worst = 0;
  void add(const std::vector<int>& sim, const std::vector<std::uint8_t>& integer) {
    for (std::size_t i = 0; i < sim.size(); ++i) {
      const int d = std::abs(sim[i] - int(integer[i]));
      worst = std::max(worst, d);
      exact += d == 0;
      ++total;
    }
  }
};
// Calibrates a conv layer on random uint8-representable input of `shape`, freezes its
// observers, and adds the agreement of its converted integer layer with the simulation.
template <class Layer>
void add_conv_agreement(Layer& layer, fq::ActQParams xq, fq::Shape shape, std::mt19937& rng,
                        Agreement& agree, Agreement& integer_agree) {
  std::vector<std::uint8_t> xl;
  std::vector<float> x = random_input(std::size_t(shape.numel()), xq, rng, xl);
  simulated_levels(layer, x, shape, {1.0f, 0});
  layer.for_each_quantizer([](auto& q) { q.enable_observer(false); });
  const fq::ActQParams yq = fq::act_qparams(layer.output_quantizer());
  const auto sim = simulated_levels(layer, x, shape, yq);
  const fq::Int8Conv2d q = fq::convert(layer, xq, shape[2], shape[3]);
  std::vector<std::uint8_t> y(std::size_t(shape[0] * q.out_numel()));
  REQUIRE(y.size() == sim.size());
  q.run(xl.data(), shape[0], y.data());
  agree.add(sim, y);
  integer_agree.add(integer_levels(layer, x, shape, xq, yq), y);
}
}  // namespace

const fq::Activation kActs[] = {fq::Activation::kNone, fq::Activation::kReLU,
                                fq::Activation::kReLU6};

TEST_CASE(
    "convert: random QLinear layers equal integer arithmetic bit for bit on every path and "
    "the float simulation within 1 LSB",
    "[convert][bit_exact]") {
  std::mt19937 rng(123);
  Agreement agree, integer_agree, double_rounding;
  for (int trial = 0; trial < 1000; ++trial) {
    const std::int64_t in = 1 + std::int64_t(rng() % 70), out = 1 + std::int64_t(rng() % 40),
                       m = 1 + std::int64_t(rng() % 9);
    fq::QLinear<> layer(in, out, rng, kActs[trial % 3]);
    const fq::ActQParams xq{0.02f + 0.01f * float(rng() % 5), std::int32_t(rng() % 256)};
    std::vector<std::uint8_t> xl;
    std::vector<float> x = random_input(std::size_t(m * in), xq, rng, xl);
    // Calibrate (weights and output range), then freeze the observers and simulate.
    simulated_levels(layer, x, {m, in}, {1.0f, 0});
    layer.for_each_quantizer([](auto& q) { q.enable_observer(false); });
    const fq::ActQParams yq = fq::act_qparams(layer.output_quantizer());
    const auto sim = simulated_levels(layer, x, {m, in}, yq);
    const fq::Int8Linear q = fq::convert(layer, xq);
    std::vector<std::uint8_t> y(std::size_t(m * out));
    q.run(xl.data(), m, y.data());
    agree.add(sim, y);
    const std::vector<int> integer = integer_levels(layer, x, {m, in}, xq, yq);
    integer_agree.add(integer, y);
    const fq::PackedWeights packed(q.params().weight.data(), out, in, in);
    for (fq::Isa isa : fq::supported_isas()) {
      std::vector<std::uint8_t> yi(y.size()), yd(y.size());
      fq::linear_u8(xl.data(), m, in, xq.zero_point, packed, q.params().requant(), yi.data(), out,
                    isa);
      integer_agree.add(integer, yi);
      fq::linear_u8<fq::DoubleRounding>(xl.data(), m, in, xq.zero_point, packed,
                                        q.params().requant(), yd.data(), out, isa);
      double_rounding.add(integer, yd);
    }
  }
  INFO(agree.exact << " of " << agree.total << " levels equal the float simulation's");
  CHECK(agree.worst <= 1);
  CHECK(double(agree.exact) >= 0.99 * double(agree.total));
  CHECK(integer_agree.total == (1 + fq::supported_isas().size()) * agree.total);
  CHECK(integer_agree.exact == integer_agree.total);
  CHECK(double_rounding.worst <= 1);
}

TEST_CASE(
    "convert: random QConvBn2d layers (BN folded) equal integer arithmetic bit for bit and "
    "the float simulation within 1 LSB",
    "[convert][bit_exact]") {
  std::mt19937 rng(7);
  Agreement agree, integer_agree;
  for (int trial = 0; trial < 200; ++trial) {
    const std::int64_t g = trial % 3 == 0 ? 2 : 1, c = g * (1 + std::int64_t(rng() % 3)),
                       o = g * (1 + std::int64_t(rng() % 4));
    const std::int64_t h = 5 + std::int64_t(rng() % 4), w = 5 + std::int64_t(rng() % 4),
                       n = 1 + std::int64_t(rng() % 3);
    const auto opt =
        fq::ops::Conv2dOptions{1 + std::int64_t(rng() % 2), 1, std::int64_t(rng() % 2), 1, g};
    fq::QConvBn2d<> layer(c, o, 3, rng, opt, kActs[1 + trial % 2]);
    std::normal_distribution<float> nd;
    for (std::size_t i = 0; i < std::size_t(o); ++i) {
      layer.gamma().value()[i] = 0.5f + std::abs(nd(rng));
      layer.beta().value()[i] = 0.3f * nd(rng);
      layer.running_mean()[i] = 0.2f * nd(rng);
      layer.running_var()[i] = 0.3f + std::abs(nd(rng));
    }
    layer.train(false);
    const fq::ActQParams xq{0.05f, std::int32_t(rng() % 256)};
    add_conv_agreement(layer, xq, {n, c, h, w}, rng, agree, integer_agree);
  }
  INFO(agree.exact << " of " << agree.total << " levels equal the float simulation's");
  CHECK(agree.worst <= 1);
  CHECK(double(agree.exact) >= 0.99 * double(agree.total));
  CHECK(integer_agree.total == agree.total);
  CHECK(integer_agree.exact == integer_agree.total);
}

TEST_CASE("convert: a float-output QLinear gives the simulation's logits", "[convert]") {
  std::mt19937 rng(9);
  fq::QLinear<fq::DefaultWeightFakeQuant, fq::NoFakeQuant> layer(30, 10, rng);
  const fq::ActQParams xq{0.03f, 12};
  std::vector<std::uint8_t> xl;
  std::vector<float> x = random_input(4 * 30, xq, rng, xl);
  Tape tape;
  Var ref = layer.forward(tape, tape.constant(x.data(), {4, 30}));
  const fq::Int8Linear q = fq::convert(layer, xq);
  std::vector<float> y(40);
  q.run(xl.data(), 4, y.data());
  for (std::size_t i = 0; i < 40; ++i) CHECK(y[i] == Approx(ref.value()[i]).margin(1e-4));
  std::vector<std::uint8_t> wrong(40);
  CHECK_THROWS_WITH(q.run(xl.data(), 4, wrong.data()), Catch::Contains("float output"));
}

TEST_CASE("convert: bad input is reported", "[convert]") {
  std::mt19937 rng(1);
  fq::QLinear<> fresh(8, 4, rng);  // never run: its weight observer has not seen the weights
  CHECK_THROWS_WITH(fq::convert(fresh, {0.1f, 0}),
                    Catch::Contains("convert(QLinear): the weight quantizer is not calibrated"));
}

TEST_CASE(
    "convert: random QConv2d layers (with bias) equal integer arithmetic bit for bit and "
    "the float simulation within 1 LSB",
    "[convert][bit_exact]") {
  std::mt19937 rng(17);
  Agreement agree, integer_agree;
  for (int trial = 0; trial < 100; ++trial) {
    const std::int64_t c = 1 + std::int64_t(rng() % 3), o = 1 + std::int64_t(rng() % 5);
    const std::int64_t h = 4 + std::int64_t(rng() % 5), n = 1 + std::int64_t(rng() % 2);
    const auto opt =
        fq::ops::Conv2dOptions::make(1 + std::int64_t(rng() % 2), std::int64_t(rng() % 2));
    fq::QConv2d<> layer(c, o, 3, rng, opt, kActs[trial % 3]);
    const fq::ActQParams xq{0.04f, std::int32_t(rng() % 256)};
    add_conv_agreement(layer, xq, {n, c, h, h}, rng, agree, integer_agree);
  }
  INFO(agree.exact << " of " << agree.total << " levels equal the float simulation's");
  CHECK(agree.worst <= 1);
  CHECK(double(agree.exact) >= 0.99 * double(agree.total));
  CHECK(integer_agree.total == agree.total);
  CHECK(integer_agree.exact == integer_agree.total);
}

TEST_CASE(
    "convert(QConvBn2d): the tape-free folding gives the simulation's weight levels and "
    "the folded bias bit for bit",
    "[convert][bit_exact]") {
  std::mt19937 rng(23);
  std::uniform_real_distribution<float> u(0.2f, 3.0f), m(-1.0f, 1.0f);
  for (int trial = 0; trial < 20; ++trial) {
    fq::QConvBn2d<> layer(3, 6, 3, rng, fq::ops::Conv2dOptions::make(1, 1));
    for (float& g : layer.gamma().value()) g = u(rng);
    for (float& b : layer.beta().value()) b = m(rng);
    for (float& v : layer.running_var()) v = u(rng);
    for (float& mu : layer.running_mean()) mu = m(rng);
    std::vector<std::uint8_t> xl;
    const std::vector<float> x = random_input(2 * 3 * 5 * 5, {0.03f, 0}, rng, xl);
    layer.train(false);
    simulated_levels(layer, x, {2, 3, 5, 5}, {1.0f, 0});  // calibrates on the folded weights
    layer.for_each_quantizer([](auto& q) { q.enable_observer(false); });
    const fq::Int8LayerParams p = layer.int8_params({0.03f, 0});

    // The evaluation forward's own folding, on a tape, then its weight fake quantizer.
    Tape tape;
    fq::NoGradGuard ng(tape);
    const Var f = fq::ops::bn_fold_factor(
        tape, tape.constant(layer.gamma().value().data(), layer.gamma().shape()),
        layer.running_var().data(), layer.eps());
    const Var w = fq::ops::scale_channels(
        tape, tape.constant(layer.weight().value().data(), layer.weight().shape()), f, 0);
    const Var wq = fq::ops::fake_quant(tape, w, layer.weight_quantizer());
    const std::int64_t per_channel = w.numel() / 6;
    for (std::int64_t i = 0; i < w.numel(); ++i) {
      const float s = p.weight_scale[std::size_t(i / per_channel)];
      REQUIRE(float(p.weight[std::size_t(i)]) * s == wq.value()[i]);
    }
    for (std::size_t o = 0; o < 6; ++o)
      REQUIRE(p.real_bias[o] == layer.beta().value()[o] - layer.running_mean()[o] * f.value()[o]);
  }
}
