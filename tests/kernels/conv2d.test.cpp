// SPDX-License-Identifier: MIT
// The int8 conv2d (im2col + GEMM): every ISA equals a direct convolution reference in int64
// (padding contributes real zero) followed by the same requantization, for random shapes
// with stride, padding and groups.
#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include <fakequant/kernels/conv2d.hpp>

#include "catch.hpp"

TEST_CASE("conv2d_u8: every ISA equals a direct convolution", "[kernels][bit_exact]") {
  std::mt19937 rng(3);
  auto r = [&](int lo, int hi) { return std::int64_t(lo + int(rng() % unsigned(hi - lo + 1))); };
  for (int t = 0; t < 25; ++t) {
    fq::Conv2dShape s;
    s.groups = r(1, 3);
    s.batch = r(1, 2);
    s.in_channels = s.groups * r(1, 4);
    s.out_channels = s.groups * r(1, 5);
    s.kernel_h = r(1, 3);
    s.kernel_w = r(1, 3);
    s.stride_h = r(1, 2);
    s.stride_w = r(1, 2);
    s.pad_h = r(0, 2);
    s.pad_w = r(0, 1);
    s.in_h = r(std::max<int>(1, int(s.kernel_h - 2 * s.pad_h)), 9);
    s.in_w = r(std::max<int>(1, int(s.kernel_w - 2 * s.pad_w)), 9);
    const std::int64_t oh = s.out_h(), ow = s.out_w(), cig = s.in_channels / s.groups,
                       cog = s.out_channels / s.groups;
    const auto x_zp = static_cast<std::int32_t>(rng() % 256);
    std::vector<std::uint8_t> x(
        static_cast<std::size_t>(s.batch * s.in_channels * s.in_h * s.in_w));
    std::vector<std::int8_t> w(
        static_cast<std::size_t>(s.out_channels * cig * s.kernel_h * s.kernel_w));
    for (auto& v : x) v = static_cast<std::uint8_t>(rng() % 256);
    for (auto& v : w) v = static_cast<std::int8_t>(static_cast<int>(rng() % 255) - 127);
    std::vector<std::int32_t> bias;
    std::vector<fq::QuantizedMultiplier> mult;
    for (std::int64_t o = 0; o < s.out_channels; ++o) {
      bias.push_back(static_cast<std::int32_t>(rng() % 4001) - 2000);
      mult.push_back(fq::quantize_multiplier(0.0005 * double(1 + rng() % 8)));
    }
    fq::RequantParams rp;
    rp.bias = bias.data();
    rp.multipliers = mult.data();
    rp.multiplier_count = s.out_channels;
    rp.out_zero_point = 120;
    rp.relu = t % 2 == 0;
    std::vector<std::uint8_t> ref(static_cast<std::size_t>(s.batch * s.out_channels * oh * ow));
    for (std::int64_t b = 0; b < s.batch; ++b)
      for (std::int64_t o = 0; o < s.out_channels; ++o)
        for (std::int64_t i = 0; i < oh; ++i)
          for (std::int64_t j = 0; j < ow; ++j) {
            const std::int64_t g = o / cog;
            std::int64_t acc = bias[static_cast<std::size_t>(o)];
            for (std::int64_t c = 0; c < cig; ++c)
              for (std::int64_t u = 0; u < s.kernel_h; ++u)
                for (std::int64_t v = 0; v < s.kernel_w; ++v) {
                  const std::int64_t h = i * s.stride_h - s.pad_h + u,
                                     ww = j * s.stride_w - s.pad_w + v;
                  if (h < 0 || h >= s.in_h || ww < 0 || ww >= s.in_w) continue;
                  const std::int64_t xv = x[static_cast<std::size_t>(
                      ((b * s.in_channels + g * cig + c) * s.in_h + h) * s.in_w + ww)];
                  const std::int64_t wv = w[static_cast<std::size_t>(
                      ((o * cig + c) * s.kernel_h + u) * s.kernel_w + v)];
                  acc += (xv - x_zp) * wv;
                }
            std::int32_t q =
                fq::multiply_by_quantized_multiplier_single(static_cast<std::int32_t>(acc),
                                                            mult[static_cast<std::size_t>(o)]) +
                120;
            q = std::min(std::max(q, rp.relu ? 120 : 0), 255);
            ref[static_cast<std::size_t>(((b * s.out_channels + o) * oh + i) * ow + j)] =
                static_cast<std::uint8_t>(q);
          }
    const fq::PackedConv2dWeights pw(w.data(), s);
    for (fq::Isa isa : fq::supported_isas()) {
      std::vector<std::uint8_t> y(ref.size(), 0xEE);
      fq::conv2d_u8(x.data(), x_zp, pw, rp, y.data(), isa);
      INFO("t " << t << " isa " << fq::to_string(isa) << " groups " << s.groups << " Cin "
                << s.in_channels << " Cout " << s.out_channels << " k " << s.kernel_h << "x"
                << s.kernel_w << " stride " << s.stride_h << "," << s.stride_w << " pad " << s.pad_h
                << "," << s.pad_w << " in " << s.in_h << "x" << s.in_w);
      REQUIRE(y == ref);
    }
  }
}

TEST_CASE("conv2d_u8: bad shapes are reported", "[kernels]") {
  std::vector<std::int8_t> w(64, 1);
  fq::Conv2dShape s;
  s.in_channels = 3;
  s.out_channels = 4;
  s.groups = 2;  // does not divide 3
  REQUIRE_THROWS_AS(fq::PackedConv2dWeights(w.data(), s), fq::Error);
  s.groups = 1;
  s.kernel_h = 5;  // larger than the 1x1 input
  REQUIRE_THROWS_AS(fq::PackedConv2dWeights(w.data(), s), fq::Error);
  s.kernel_h = 1;
  s.stride_w = 0;
  REQUIRE_THROWS_AS(fq::PackedConv2dWeights(w.data(), s), fq::Error);
}
