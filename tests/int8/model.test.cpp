// SPDX-License-Identifier: MIT
// tests/int8/model.test.cpp: the integer model on its own floor — the uint8 max-pool kernel,
// an Int8Model assembled by hand from integer steps (no QAT layer involved) against running the
// steps one by one, and its model file round trip.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include <fakequant/int8/model.hpp>
#include <fakequant/int8/model_file.hpp>
#include <fakequant/kernels/fixed_point.hpp>
#include <fakequant/kernels/max_pool.hpp>
#include <fakequant/kernels/quantize.hpp>

#include "test_util.hpp"

TEST_CASE("max_pool2d_u8: every window, stride and ISA path equals a direct max",
          "[int8][bit_exact]") {
  std::mt19937 rng(12);
  std::uniform_int_distribution<int> u(0, 255);
  // Widths around the AVX-512 2x2 path's 32-output step (w = 64, 65, 66: one full step and a
  // tail of 0 or 1 output; 130: five steps, 28: the demo), odd heights and widths (the last row
  // or column is dropped), planes of 1 x w.
  const std::pair<int, int> sizes[] = {{7, 9},  {8, 8},  {5, 14},  {28, 28}, {14, 14}, {3, 64},
                                       {4, 65}, {5, 66}, {2, 130}, {9, 2},   {2, 3},   {1, 1}};
  for (const fq::Isa isa : fq::supported_isas())
    for (const auto& ks :
         {std::pair<int, int>{2, 2}, {3, 2}, {3, 1}, {2, 1}, {1, 1}, {4, 3}, {5, 2}})
      for (const auto& hw : sizes) {
        const std::int64_t k = ks.first, s = ks.second, h = hw.first, w = hw.second, nc = 3;
        if (k > h || k > w) continue;
        std::vector<std::uint8_t> x(static_cast<std::size_t>(nc * h * w));
        for (auto& v : x) v = static_cast<std::uint8_t>(u(rng));
        x[0] = 255;  // the extremes in a window
        x[1] = 0;
        const std::int64_t oh = (h - k) / s + 1, ow = (w - k) / s + 1;
        // One guard byte past the output: a store past it would be seen.
        std::vector<std::uint8_t> y(static_cast<std::size_t>(nc * oh * ow + 1), 77);
        fq::max_pool2d_u8(x.data(), nc, h, w, k, s, y.data(), isa);
        CHECK(y.back() == 77);
        for (std::int64_t c = 0; c < nc; ++c)
          for (std::int64_t i = 0; i < oh; ++i)
            for (std::int64_t j = 0; j < ow; ++j) {
              int m = -1;
              for (std::int64_t p = 0; p < k; ++p)
                for (std::int64_t q = 0; q < k; ++q)
                  m = std::max(
                      m, int(x[static_cast<std::size_t>((c * h + i * s + p) * w + j * s + q)]));
              INFO("isa " << fq::to_string(isa) << " k " << k << " s " << s << " h " << h << " w "
                          << w);
              REQUIRE(int(y[static_cast<std::size_t>((c * oh + i) * ow + j)]) == m);
            }
      }
  std::vector<std::uint8_t> x(8 * 3), y(8);
  CHECK(fq_test::error_code_of([&] { fq::max_pool2d_u8(x.data(), 1, 2, 2, 3, 1, y.data()); }) ==
        fq::ErrorCode::kShapeMismatch);
  CHECK(fq_test::error_code_of([&] { fq::max_pool2d_u8(x.data(), 1, 2, 2, 0, 1, y.data()); }) ==
        fq::ErrorCode::kInvalidArgument);
}

namespace {
/// Parameters of a layer with `out` channels of `k` weights taking input qparams `in`.
fq::Int8LayerParams params(std::int64_t out, std::int64_t k, fq::ActQParams in, bool float_out,
                           std::mt19937& rng) {
  std::uniform_int_distribution<int> w(-127, 127), b(-500, 500);
  fq::Int8LayerParams p;
  p.in = in;
  p.float_out = float_out;
  p.relu = !float_out;
  for (std::int64_t i = 0; i < out * k; ++i) p.weight.push_back(static_cast<std::int8_t>(w(rng)));
  for (std::int64_t o = 0; o < out; ++o) {
    p.weight_scale.push_back(0.002f + 0.0001f * float(o));
    p.bias.push_back(b(rng));
    p.real_bias.push_back(0.01f * float(p.bias.back()));
  }
  if (!float_out) {
    p.out = {0.08f, 10};
    for (std::int64_t o = 0; o < out; ++o)
      p.multiplier.push_back(fq::quantize_multiplier(
          double(in.scale) * double(p.weight_scale[std::size_t(o)]) / double(p.out.scale)));
  }
  return p;
}
}  // namespace

TEST_CASE(
    "Int8Model: steps assembled by hand run as the steps one by one, and after a file "
    "round trip",
    "[int8][bit_exact]") {
  std::mt19937 rng(5);
  const fq::ActQParams in{0.02f, 7};
  fq::Conv2dShape s;
  s.in_channels = 2;
  s.out_channels = 3;
  s.kernel_h = s.kernel_w = 3;
  s.in_h = s.in_w = 6;
  s.pad_h = s.pad_w = 1;
  const fq::Int8Conv2d conv(params(3, 2 * 9, in, false, rng), s);
  const fq::Int8MaxPool2d pool(3, 6, 6, 2, 2);
  const fq::Int8Flatten flatten({3, 3, 3});
  const fq::Int8Linear fc(params(4, 27, conv.output_qparams(), true, rng), 27);
  fq::Int8Model model(in, {2, 6, 6}, {conv, pool, flatten, fc});
  REQUIRE(model.float_output());
  REQUIRE(model.output_numel() == 4);

  const std::int64_t n = 5;
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> images(static_cast<std::size_t>(n * 72));
  for (float& v : images) v = nd(rng);
  std::vector<float> logits(static_cast<std::size_t>(n * 4));
  model.set_run_chunk_bytes(150);  // two images per chunk: chunking changes nothing
  model.run(images.data(), n, logits.data());

  std::vector<std::uint8_t> xq(images.size()), a(static_cast<std::size_t>(n * 108)),
      p(static_cast<std::size_t>(n * 27));
  fq::quantize_per_tensor<fq::TorchNumerics>(fq::TensorView<const float>(images.data(), {n, 72}),
                                             fq::TensorView<std::uint8_t>(xq.data(), {n, 72}),
                                             in.scale, in.zero_point, fq::QuantRange{0, 255});
  conv.run(xq.data(), n, a.data());
  pool.run(a.data(), n, p.data());
  std::vector<float> expect(logits.size());
  fc.run(p.data(), n, expect.data());
  for (std::size_t i = 0; i < logits.size(); ++i) REQUIRE(logits[i] == expect[i]);

  const std::string path = "fq_int8_model_test.fqi8";
  fq::save_int8_model(path, model);
  const fq::Int8Model loaded = fq::load_int8_sequential(path);
  std::remove(path.c_str());
  std::vector<float> again(logits.size());
  loaded.run(images.data(), n, again.data());
  CHECK(again == logits);
  CHECK(loaded.steps().size() == 4);

  // A chain whose qparams do not match is refused, naming the step.
  const fq::Int8Linear stray(params(4, 27, {0.5f, 0}, true, rng), 27);
  CHECK_THROWS_WITH(fq::Int8Model(in, {2, 6, 6}, {conv, pool, flatten, stray}),
                    Catch::Contains("step 3 (Int8Linear)"));
}
