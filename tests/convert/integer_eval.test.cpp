// SPDX-License-Identifier: MIT
#include <cmath>
#include <random>
#include <vector>

#include <catch2/catch.hpp>

#include <fakequant/convert/convert.hpp>
#include <fakequant/kernels/max_pool.hpp>
#include <fakequant/ops/pool.hpp>

#include "convert/convert_test_util.hpp"

using fq::Tape;
using fq::Var;

namespace {

template <class Layer>
void calibrate(Layer& layer, const std::vector<float>& x, fq::Shape shape) {
  Tape tape;
  fq::NoGradGuard ng(tape);
  layer.forward(tape, tape.constant(x.data(), shape));
  layer.for_each_quantizer([](auto& q) { q.enable_observer(false); });
}
}  // namespace

TEST_CASE("integer arithmetic: a float-output QLinear gives the deployed logits bit for bit",
          "[convert][bit_exact]") {
  std::mt19937 rng(5);
  for (int trial = 0; trial < 50; ++trial) {
    const std::int64_t in = 1 + std::int64_t(rng() % 300), out = 1 + std::int64_t(rng() % 12);
    fq::QLinear<fq::DefaultWeightFakeQuant, fq::NoFakeQuant> layer(in, out, rng);
    const fq::ActQParams xq{0.01f + 0.001f * float(rng() % 50), std::int32_t(rng() % 256)};
    std::vector<std::uint8_t> xl;
    const std::vector<float> x = fq_convert_test::random_input(std::size_t(3 * in), xq, rng, xl);
    calibrate(layer, x, {3, in});
    layer.use_integer_arithmetic(xq);
    Tape tape;
    fq::NoGradGuard ng(tape);
    const Var sim = layer.forward(tape, tape.constant(x.data(), {3, in}));
    std::vector<float> y(std::size_t(3 * out));
    fq::convert(layer, xq).run(xl.data(), 3, y.data());
    for (std::size_t i = 0; i < y.size(); ++i) REQUIRE(sim.value()[i] == y[i]);
  }
}

TEST_CASE("integer arithmetic: a fused ReLU6 clamps at the output level of 6", "[convert]") {
  std::mt19937 rng(11);
  fq::QLinear<> layer(16, 8, rng, fq::Activation::kReLU6);
  for (float& w : layer.weight().value()) w *= 20.0f;  // pre-activations well beyond 6
  const fq::ActQParams xq{0.05f, 128};
  std::vector<std::uint8_t> xl;
  const std::vector<float> x = fq_convert_test::random_input(64 * 16, xq, rng, xl);
  calibrate(layer, x, {64, 16});
  // A wider output range than [0, 6] (the observer itself would stop at 6).
  layer.output_quantizer().quantizer().set_qparams(0.05f, 0);
  const fq::Int8Linear q = fq::convert(layer, xq);
  CHECK(q.params().out_max == 120);  // 6 / 0.05
  std::vector<std::uint8_t> y(64 * 8);
  q.run(xl.data(), 64, y.data());
  int at_six = 0;
  for (std::uint8_t v : y) {
    REQUIRE(v <= 120);
    at_six += v == 120;
  }
  CHECK(at_six > 0);
  layer.use_integer_arithmetic(xq);
  Tape tape;
  fq::NoGradGuard ng(tape);
  const Var sim = layer.forward(tape, tape.constant(x.data(), {64, 16}));
  for (std::size_t i = 0; i < y.size(); ++i) REQUIRE(sim.value()[i] == float(y[i]) * 0.05f);
}

TEST_CASE("integer arithmetic: conv+BN, max pool and linear equal the deployed network",
          "[convert][bit_exact]") {
  std::mt19937 rng(21);
  fq::QConvBn2d<> conv(2, 6, 3, rng, fq::ops::Conv2dOptions::make(1, 1), fq::Activation::kReLU);
  fq::QLinear<fq::DefaultWeightFakeQuant, fq::NoFakeQuant> fc(6 * 4 * 4, 5, rng);
  const fq::ActQParams xq{0.02f, 0};
  std::vector<std::uint8_t> xl;
  const std::int64_t n = 7;
  const std::vector<float> x =
      fq_convert_test::random_input(std::size_t(n * 2 * 8 * 8), xq, rng, xl);
  auto forward = [&](Tape& tape) {
    const Var h =
        fq::ops::max_pool2d(tape, conv.forward(tape, tape.constant(x.data(), {n, 2, 8, 8})), 2, 2);
    return fc.forward(tape, h.reshape({n, 6 * 4 * 4}));
  };
  {  // calibrate with batch statistics, then evaluate with the running ones
    Tape tape;
    fq::NoGradGuard ng(tape);
    forward(tape);
    conv.train(false);
    conv.for_each_quantizer([](auto& q) { q.enable_observer(false); });
    fc.for_each_quantizer([](auto& q) { q.enable_observer(false); });
  }
  const fq::Int8Conv2d c = fq::convert(conv, xq, 8, 8);
  const fq::Int8Linear l = fq::convert(fc, c.output_qparams());
  std::vector<std::uint8_t> a(std::size_t(n * c.out_numel())), p(a.size() / 4);
  std::vector<float> logits(std::size_t(n * 5));
  c.run(xl.data(), n, a.data());
  fq::max_pool2d_u8(a.data(), n * 6, 8, 8, 2, 2, p.data());
  l.run(p.data(), n, logits.data());

  conv.use_integer_arithmetic(xq);
  fc.use_integer_arithmetic(c.output_qparams());
  Tape tape;
  fq::NoGradGuard ng(tape);
  const Var sim = forward(tape);
  for (std::size_t i = 0; i < logits.size(); ++i) REQUIRE(sim.value()[i] == logits[i]);
}

TEST_CASE("integer arithmetic: misuse is reported", "[convert]") {
  std::mt19937 rng(3);
  fq::QLinear<> layer(4, 3, rng);
  const fq::ActQParams xq{0.1f, 10};
  std::vector<std::uint8_t> xl;
  const std::vector<float> x = fq_convert_test::random_input(8, xq, rng, xl);
  calibrate(layer, x, {2, 4});
  layer.use_integer_arithmetic(xq);
  CHECK(layer.uses_integer_arithmetic());
  Tape tape;
  CHECK_THROWS_WITH(layer.forward(tape, tape.constant(x.data(), {2, 4})),
                    Catch::Contains("NoGradGuard"));
  fq::NoGradGuard ng(tape);
  std::vector<float> off = x;
  off[5] += 0.01f;
  CHECK_THROWS_WITH(layer.forward(tape, tape.constant(off.data(), {2, 4})),
                    Catch::Contains("input element 5") && Catch::Contains("not on the grid"));
  CHECK_THROWS_AS(layer.forward(tape, tape.constant(x.data(), {4, 2})), fq::Error);
  layer.use_float_arithmetic();
  CHECK_NOTHROW(layer.forward(tape, tape.constant(off.data(), {2, 4})));

  fq::QConvBn2d<> conv(1, 2, 3, rng);
  std::vector<float> img(25, 0.0f);
  conv.forward(tape, tape.constant(img.data(), {1, 1, 5, 5}));
  conv.use_integer_arithmetic({0.1f, 0});
  CHECK_THROWS_WITH(conv.forward(tape, tape.constant(img.data(), {1, 1, 5, 5})),
                    Catch::Contains("running statistics"));
  conv.freeze_bn_stats();
  CHECK_NOTHROW(conv.forward(tape, tape.constant(img.data(), {1, 1, 5, 5})));
}
