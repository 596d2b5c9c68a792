// SPDX-License-Identifier: MIT
// tests/int8/layers.test.cpp: the integer layers on their own floor — Int8Linear and
// Int8Conv2d built from hand-made fq::Int8LayerParams (no QAT layer involved) against a direct
// evaluation of the formulas of int8/params.hpp, and their construction checks.
#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include <catch2/catch.hpp>

#include <fakequant/int8/conv2d.hpp>
#include <fakequant/int8/linear.hpp>
#include <fakequant/int8/params.hpp>
#include <fakequant/kernels/fixed_point.hpp>

#include "test_util.hpp"

namespace {
/// Random parameters of a layer with `out` channels of `k` weights; float output or uint8
/// output with (when relu) a fused ReLU.
fq::Int8LayerParams random_params(std::int64_t out, std::int64_t k, bool float_out, bool relu,
                                  std::mt19937& rng) {
  std::uniform_int_distribution<int> w(-127, 127), b(-2000, 2000), z(0, 255);
  std::uniform_real_distribution<float> s(0.001f, 0.02f);
  fq::Int8LayerParams p;
  p.in = {0.05f, z(rng)};
  p.float_out = float_out;
  p.relu = relu && !float_out;
  for (std::int64_t i = 0; i < out * k; ++i) p.weight.push_back(static_cast<std::int8_t>(w(rng)));
  for (std::int64_t o = 0; o < out; ++o) {
    p.weight_scale.push_back(s(rng));
    p.bias.push_back(b(rng));
    p.real_bias.push_back(static_cast<float>(p.bias.back()) * p.in.scale * p.weight_scale.back());
  }
  if (!float_out) {
    p.out = {0.1f, z(rng) / 2 + 60};
    for (std::int64_t o = 0; o < out; ++o)
      p.multiplier.push_back(fq::quantize_multiplier(
          double(p.in.scale) * double(p.weight_scale[std::size_t(o)]) / double(p.out.scale)));
    p.out_min = 3;
    p.out_max = 250;
  }
  return p;
}

/// The uint8 output level of int8/params.hpp for accumulator acc of channel o.
int reference_level(const fq::Int8LayerParams& p, std::int32_t acc, std::size_t o) {
  const std::int32_t v =
      fq::multiply_by_quantized_multiplier_single(acc + p.bias[o], p.multiplier[o]) +
      p.out.zero_point;
  const std::int32_t lo = p.relu ? std::max(p.out_min, p.out.zero_point) : p.out_min;
  return std::min(std::max(v, lo), p.out_max);
}
}  // namespace

TEST_CASE("Int8Linear: hand-made parameters give the formulas of int8/params.hpp", "[int8]") {
  std::mt19937 rng(3);
  for (int trial = 0; trial < 40; ++trial) {
    const std::int64_t k = 1 + std::int64_t(rng() % 70), out = 1 + std::int64_t(rng() % 20),
                       m = 1 + std::int64_t(rng() % 5);
    const bool float_out = trial % 3 == 0, relu = trial % 2 == 0;
    const fq::Int8LayerParams p = random_params(out, k, float_out, relu, rng);
    const fq::Int8Linear l(p, k);
    REQUIRE(l.in_features() == k);
    REQUIRE(l.out_features() == out);
    std::uniform_int_distribution<int> u(0, 255);
    std::vector<std::uint8_t> x(static_cast<std::size_t>(m * k));
    for (auto& v : x) v = static_cast<std::uint8_t>(u(rng));
    std::vector<std::uint8_t> yq(static_cast<std::size_t>(m * out));
    std::vector<float> yf(yq.size());
    if (float_out)
      l.run(x.data(), m, yf.data());
    else
      l.run(x.data(), m, yq.data());
    for (std::int64_t i = 0; i < m; ++i)
      for (std::int64_t o = 0; o < out; ++o) {
        std::int32_t acc = 0;
        for (std::int64_t j = 0; j < k; ++j)
          acc +=
              (int(x[std::size_t(i * k + j)]) - p.in.zero_point) * p.weight[std::size_t(o * k + j)];
        const auto e = std::size_t(i * out + o);
        if (float_out)
          REQUIRE(yf[e] == p.float_output(acc, std::size_t(o)));
        else
          REQUIRE(int(yq[e]) == reference_level(p, acc, std::size_t(o)));
      }
  }
}

TEST_CASE("Int8Conv2d: hand-made parameters give the direct convolution's levels", "[int8]") {
  std::mt19937 rng(8);
  for (int trial = 0; trial < 30; ++trial) {
    fq::Conv2dShape s;
    s.groups = 1 + std::int64_t(rng() % 2);
    s.in_channels = s.groups * (1 + std::int64_t(rng() % 3));
    s.out_channels = s.groups * (1 + std::int64_t(rng() % 4));
    s.kernel_h = 1 + std::int64_t(rng() % 3);
    s.kernel_w = 1 + std::int64_t(rng() % 3);
    s.in_h = s.kernel_h + std::int64_t(rng() % 6);
    s.in_w = s.kernel_w + std::int64_t(rng() % 6);
    s.stride_h = 1 + std::int64_t(rng() % 2);
    s.stride_w = 1 + std::int64_t(rng() % 2);
    s.pad_h = std::int64_t(rng() % 2);
    s.pad_w = std::int64_t(rng() % 2);
    const std::int64_t n = 2, kg = s.group_k(), cig = s.in_channels / s.groups,
                       cog = s.out_channels / s.groups;
    const fq::Int8LayerParams p = random_params(s.out_channels, kg, false, trial % 2 == 0, rng);
    const fq::Int8Conv2d c(p, s);
    std::uniform_int_distribution<int> u(0, 255);
    std::vector<std::uint8_t> x(static_cast<std::size_t>(n * c.in_numel()));
    for (auto& v : x) v = static_cast<std::uint8_t>(u(rng));
    std::vector<std::uint8_t> y(static_cast<std::size_t>(n * c.out_numel()));
    c.run(x.data(), n, y.data());
    const std::int64_t oh = s.out_h(), ow = s.out_w();
    for (std::int64_t b = 0; b < n; ++b)
      for (std::int64_t o = 0; o < s.out_channels; ++o)
        for (std::int64_t i = 0; i < oh; ++i)
          for (std::int64_t j = 0; j < ow; ++j) {
            std::int32_t acc = 0;
            const std::int64_t g = o / cog;
            for (std::int64_t ci = 0; ci < cig; ++ci)
              for (std::int64_t a = 0; a < s.kernel_h; ++a)
                for (std::int64_t d = 0; d < s.kernel_w; ++d) {
                  const std::int64_t h = i * s.stride_h - s.pad_h + a,
                                     w = j * s.stride_w - s.pad_w + d;
                  if (h < 0 || h >= s.in_h || w < 0 || w >= s.in_w) continue;  // real 0
                  const int xv = x[std::size_t(
                      ((b * s.in_channels + g * cig + ci) * s.in_h + h) * s.in_w + w)];
                  acc += (xv - p.in.zero_point) *
                         p.weight[std::size_t(o * kg + (ci * s.kernel_h + a) * s.kernel_w + d)];
                }
            INFO("trial " << trial);
            REQUIRE(int(y[std::size_t(((b * s.out_channels + o) * oh + i) * ow + j)]) ==
                    reference_level(p, acc, std::size_t(o)));
          }
  }
}

TEST_CASE("Int8Linear and Int8Conv2d refuse inconsistent parameters", "[int8][errors]") {
  std::mt19937 rng(2);
  fq::Int8LayerParams p = random_params(4, 6, false, false, rng);
  CHECK_NOTHROW(fq::Int8Linear(p, 6));
  CHECK(fq_test::error_code_of([&] { fq::Int8Linear(p, 5); }) ==
        fq::ErrorCode::kInvalidArgument);  // 24 weights are not 4 x 5
  fq::Int8LayerParams short_bias = p;
  short_bias.bias.pop_back();
  CHECK(fq_test::error_code_of([&] { fq::Int8Linear(short_bias, 6); }) != fq::ErrorCode{});
  fq::Conv2dShape s;
  s.in_channels = 1;
  s.out_channels = 4;
  s.kernel_h = 2;
  s.kernel_w = 3;
  s.in_h = s.in_w = 5;
  CHECK_NOTHROW(fq::Int8Conv2d(p, s));
  fq::Int8LayerParams float_out = random_params(4, 6, true, false, rng);
  CHECK_THROWS_WITH(fq::Int8Conv2d(float_out, s), Catch::Contains("uint8 output levels"));
  s.in_h = 1;  // the kernel no longer fits
  CHECK(fq_test::error_code_of([&] { fq::Int8Conv2d(p, s); }) == fq::ErrorCode::kShapeMismatch);
}
