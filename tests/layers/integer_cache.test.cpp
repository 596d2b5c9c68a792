// SPDX-License-Identifier: MIT
// tests/layers/integer_cache.test.cpp: a layer in integer arithmetic builds its integer layer
// once and rebuilds it exactly when something it was built from changes (weights, bias, batch
// norm statistics, quantizer qparams, input qparams and extents): each test checks that the
// next integer forward equals a freshly built integer layer, and that it differs from the output
// before the change (which a stale cache would still give).
#include <cstdint>
#include <random>
#include <vector>

#include <catch2/catch.hpp>

#include <fakequant/int8/conv2d.hpp>
#include <fakequant/int8/linear.hpp>
#include <fakequant/layers/qlayers.hpp>

#include "convert/convert_test_util.hpp"

using fq::Tape;
using fq::Var;

namespace {

/// Runs the layer's forward without gradient and returns its output values.
template <class Layer>
std::vector<float> run(Layer& layer, const std::vector<float>& x, fq::Shape shape) {
  Tape tape;
  fq::NoGradGuard ng(tape);
  const Var y = layer.forward(tape, tape.constant(x.data(), shape));
  return std::vector<float>(y.value(), y.value() + y.numel());
}

/// Calibrates a layer's quantizers on x, then freezes them.
template <class Layer>
void calibrate(Layer& layer, const std::vector<float>& x, fq::Shape shape) {
  run(layer, x, shape);
  layer.for_each_quantizer([](auto& q) { q.enable_observer(false); });
}

/// The float values of a fresh Int8Linear built from the layer's current parameters.
template <class Layer>
std::vector<float> fresh_linear(const Layer& layer, fq::ActQParams in,
                                const std::vector<std::uint8_t>& xq, std::int64_t m) {
  const fq::Int8Linear l(layer.int8_params(in), layer.weight().shape()[1]);
  std::vector<std::uint8_t> yq(static_cast<std::size_t>(m * l.out_features()));
  l.run(xq.data(), m, yq.data());
  std::vector<float> y(yq.size());
  for (std::size_t i = 0; i < y.size(); ++i)
    y[i] = (float(yq[i]) - float(l.output_qparams().zero_point)) * l.output_qparams().scale;
  return y;
}

/// The float values of a fresh Int8Conv2d built from the layer's current parameters.
template <class Layer>
std::vector<float> fresh_conv(const Layer& layer, fq::ActQParams in,
                              const std::vector<std::uint8_t>& xq, fq::Shape shape) {
  const fq::Int8Conv2d c(layer.int8_params(in), layer.conv_shape(shape[2], shape[3]));
  std::vector<std::uint8_t> yq(static_cast<std::size_t>(shape[0] * c.out_numel()));
  c.run(xq.data(), shape[0], yq.data());
  std::vector<float> y(yq.size());
  for (std::size_t i = 0; i < y.size(); ++i)
    y[i] = (float(yq[i]) - float(c.output_qparams().zero_point)) * c.output_qparams().scale;
  return y;
}
}  // namespace

TEST_CASE(
    "integer arithmetic: QLinear builds its Int8Linear once and follows weight, bias and "
    "qparams changes",
    "[layers][integer]") {
  std::mt19937 rng(31);
  fq::QLinear<> layer(24, 10, rng, fq::Activation::kReLU);
  const fq::ActQParams xq{0.02f, 100};
  std::vector<std::uint8_t> xl;
  const std::vector<float> x = fq_convert_test::random_input(8 * 24, xq, rng, xl);
  calibrate(layer, x, {8, 24});
  layer.use_integer_arithmetic(xq);

  const std::vector<float> y0 = run(layer, x, {8, 24});
  CHECK(y0 == fresh_linear(layer, xq, xl, 8));
  CHECK(run(layer, x, {8, 24}) == y0);
  CHECK(layer.integer_builds() == 1);  // the second forward reused the cached layer

  SECTION("new weights") {
    for (float& w : layer.weight().value()) w = -0.5f * w;
    const std::vector<float> expect = fresh_linear(layer, xq, xl, 8);
    REQUIRE(expect != y0);  // a stale cache would still give y0
    CHECK(run(layer, x, {8, 24}) == expect);
    CHECK(layer.integer_builds() == 2);
  }
  SECTION("a new bias") {
    for (float& b : layer.bias().value()) b += 0.3f;
    const std::vector<float> expect = fresh_linear(layer, xq, xl, 8);
    REQUIRE(expect != y0);
    CHECK(run(layer, x, {8, 24}) == expect);
    CHECK(layer.integer_builds() == 2);
  }
  SECTION("new output qparams") {
    auto& q = layer.output_quantizer().quantizer();
    q.set_qparams(q.scale()[0] * 2.0f, q.zero_point()[0]);
    const std::vector<float> expect = fresh_linear(layer, xq, xl, 8);
    REQUIRE(expect != y0);
    CHECK(run(layer, x, {8, 24}) == expect);
    CHECK(layer.integer_builds() == 2);
  }
  SECTION("new weight qparams") {
    auto& q = layer.weight_quantizer().quantizer();
    std::vector<float> scales = q.scale();
    for (float& s : scales) s *= 3.0f;
    q.set_qparams(scales, q.zero_point());
    const std::vector<float> expect = fresh_linear(layer, xq, xl, 8);
    REQUIRE(expect != y0);
    CHECK(run(layer, x, {8, 24}) == expect);
    CHECK(layer.integer_builds() == 2);
  }
  SECTION("new input qparams") {
    const fq::ActQParams xq2{0.03f, 90};
    std::vector<std::uint8_t> xl2;
    const std::vector<float> x2 = fq_convert_test::random_input(8 * 24, xq2, rng, xl2);
    layer.use_integer_arithmetic(xq2);
    CHECK(run(layer, x2, {8, 24}) == fresh_linear(layer, xq2, xl2, 8));
    CHECK(layer.integer_builds() == 2);
    // Off the new grid, the old input is refused rather than read with stale qparams.
    CHECK_THROWS_WITH(run(layer, x, {8, 24}), Catch::Contains("not on the grid"));
  }
  SECTION("a float forward in between changes nothing") {
    layer.use_float_arithmetic();
    run(layer, x, {8, 24});
    layer.use_integer_arithmetic(xq);
    CHECK(run(layer, x, {8, 24}) == y0);
    CHECK(layer.integer_builds() == 1);
  }
}

TEST_CASE("integer arithmetic: QConvBn2d follows weight, batch-norm and qparams changes",
          "[layers][integer]") {
  std::mt19937 rng(32);
  fq::QConvBn2d<> layer(2, 5, 3, rng, fq::ops::Conv2dOptions::make(1, 1), fq::Activation::kReLU6);
  const fq::ActQParams xq{0.03f, 20};
  const fq::Shape shape{3, 2, 7, 7};
  std::vector<std::uint8_t> xl;
  const std::vector<float> x =
      fq_convert_test::random_input(std::size_t(shape.numel()), xq, rng, xl);
  calibrate(layer, x, shape);
  layer.train(false);
  layer.use_integer_arithmetic(xq);

  const std::vector<float> y0 = run(layer, x, shape);
  CHECK(y0 == fresh_conv(layer, xq, xl, shape));
  CHECK(run(layer, x, shape) == y0);
  CHECK(layer.integer_builds() == 1);

  SECTION("new weights") {
    for (float& w : layer.weight().value()) w *= -1.0f;
    const std::vector<float> expect = fresh_conv(layer, xq, xl, shape);
    REQUIRE(expect != y0);
    CHECK(run(layer, x, shape) == expect);
    CHECK(layer.integer_builds() == 2);
  }
  SECTION("new running statistics") {
    for (float& v : layer.running_var()) v *= 4.0f;
    for (float& m : layer.running_mean()) m -= 0.2f;
    const std::vector<float> expect = fresh_conv(layer, xq, xl, shape);
    REQUIRE(expect != y0);
    CHECK(run(layer, x, shape) == expect);
    CHECK(layer.integer_builds() == 2);
  }
  SECTION("new γ and β") {
    for (float& g : layer.gamma().value()) g *= 0.5f;
    for (float& b : layer.beta().value()) b += 0.1f;
    const std::vector<float> expect = fresh_conv(layer, xq, xl, shape);
    REQUIRE(expect != y0);
    CHECK(run(layer, x, shape) == expect);
    CHECK(layer.integer_builds() == 2);
  }
  SECTION("new output qparams") {
    auto& q = layer.output_quantizer().quantizer();
    q.set_qparams(q.scale()[0] * 0.5f, q.zero_point()[0]);
    const std::vector<float> expect = fresh_conv(layer, xq, xl, shape);
    REQUIRE(expect != y0);
    CHECK(run(layer, x, shape) == expect);
    CHECK(layer.integer_builds() == 2);
  }
  SECTION("other input extents, then the first again") {
    const fq::Shape small{3, 2, 5, 5};
    std::vector<std::uint8_t> sl;
    const std::vector<float> xs =
        fq_convert_test::random_input(std::size_t(small.numel()), xq, rng, sl);
    CHECK(run(layer, xs, small) == fresh_conv(layer, xq, sl, small));
    CHECK(run(layer, x, shape) == y0);
    CHECK(layer.integer_builds() == 3);
  }
}

TEST_CASE("integer arithmetic: QConv2d follows bias changes; a failed build caches nothing",
          "[layers][integer]") {
  std::mt19937 rng(33);
  fq::QConv2d<> layer(1, 4, 3, rng);
  const fq::ActQParams xq{0.05f, 0};
  const fq::Shape shape{2, 1, 6, 6};
  std::vector<std::uint8_t> xl;
  const std::vector<float> x =
      fq_convert_test::random_input(std::size_t(shape.numel()), xq, rng, xl);

  // Uncalibrated: the build fails, and keeps failing (nothing half-built is cached).
  layer.use_integer_arithmetic(xq);
  CHECK_THROWS_WITH(run(layer, x, shape), Catch::Contains("not calibrated"));
  CHECK_THROWS_WITH(run(layer, x, shape), Catch::Contains("not calibrated"));
  CHECK(layer.integer_builds() == 0);

  layer.use_float_arithmetic();
  calibrate(layer, x, shape);
  layer.use_integer_arithmetic(xq);
  const std::vector<float> y0 = run(layer, x, shape);
  CHECK(y0 == fresh_conv(layer, xq, xl, shape));
  for (float& b : layer.bias().value()) b -= 0.25f;
  const std::vector<float> expect = fresh_conv(layer, xq, xl, shape);
  REQUIRE(expect != y0);
  CHECK(run(layer, x, shape) == expect);
  CHECK(layer.integer_builds() == 2);
}
