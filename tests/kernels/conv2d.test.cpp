// SPDX-License-Identifier: MIT
// The int8 conv2d: every ISA (the im2col + GEMM paths and the channel-major AVX-512 path)
// equals a direct convolution reference in int64 (padding contributes real zero) followed by
// the same requantization, for random shapes with batch, stride, padding, groups, small K,
// both roundings, with and without bias, per-tensor and per-channel multipliers, ReLU and
// narrowed output ranges; through both the batched shape and the batch-count overload.
#include <algorithm>
#include <climits>
#include <cstdint>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <fakequant/kernels/conv2d.hpp>

#include "catch.hpp"

namespace {

/// A random convolution problem and its direct reference output (int64 sums, padding = real
/// 0, then the scalar requantization of fixed_point.hpp).
struct ConvCase {
  fq::Conv2dShape s;
  std::int32_t x_zp = 0;
  std::vector<std::uint8_t> x;
  std::vector<std::int8_t> w;
  std::vector<std::int32_t> bias;
  std::vector<fq::QuantizedMultiplier> mult;
  fq::RequantParams rp;

  void fill(std::mt19937& rng, bool with_bias, bool per_channel) {
    const std::int64_t cig = s.in_channels / s.groups;
    x_zp = static_cast<std::int32_t>(rng() % 256);
    x.resize(static_cast<std::size_t>(s.batch * s.in_channels * s.in_h * s.in_w));
    w.resize(static_cast<std::size_t>(s.out_channels * cig * s.kernel_h * s.kernel_w));
    for (auto& v : x) v = static_cast<std::uint8_t>(rng() % 256);
    for (auto& v : w) v = static_cast<std::int8_t>(static_cast<int>(rng() % 255) - 127);
    bias.clear();
    mult.clear();
    for (std::int64_t o = 0; o < s.out_channels; ++o) {
      bias.push_back(static_cast<std::int32_t>(rng() % 40001) - 20000);
      // Small multipliers keep most outputs inside [0, 255]; a few large ones saturate.
      const double m = o % 7 == 3 ? 0.05 : 0.0002 * double(1 + rng() % 16);
      mult.push_back(fq::quantize_multiplier(m));
    }
    rp.bias = with_bias ? bias.data() : nullptr;
    rp.multipliers = mult.data();
    rp.multiplier_count = per_channel ? s.out_channels : 1;
  }

  template <class Rounding>
  std::vector<std::uint8_t> reference() const {
    const std::int64_t oh = s.out_h(), ow = s.out_w(), cig = s.in_channels / s.groups,
                       cog = s.out_channels / s.groups;
    std::vector<std::uint8_t> ref(static_cast<std::size_t>(s.batch * s.out_channels * oh * ow));
    const std::int32_t lo = rp.relu ? std::max(rp.out_min, rp.out_zero_point) : rp.out_min;
    for (std::int64_t b = 0; b < s.batch; ++b)
      for (std::int64_t o = 0; o < s.out_channels; ++o)
        for (std::int64_t i = 0; i < oh; ++i)
          for (std::int64_t j = 0; j < ow; ++j) {
            const std::int64_t g = o / cog;
            std::int64_t acc = rp.bias ? rp.bias[o] : 0;
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
            // The bias add saturates in int32 (output_stages.hpp).
            acc = std::min<std::int64_t>(std::max<std::int64_t>(acc, INT32_MIN), INT32_MAX);
            const fq::QuantizedMultiplier qm =
                mult[static_cast<std::size_t>(rp.multiplier_count == 1 ? 0 : o)];
            std::int32_t q = Rounding::apply(static_cast<std::int32_t>(acc), qm);
            q = static_cast<std::int32_t>(std::min<std::int64_t>(
                std::max<std::int64_t>(std::int64_t{q} + rp.out_zero_point, lo), rp.out_max));
            ref[static_cast<std::size_t>(((b * s.out_channels + o) * oh + i) * ow + j)] =
                static_cast<std::uint8_t>(q);
          }
    return ref;
  }
};

std::string describe(const fq::Conv2dShape& s) {
  std::ostringstream os;
  os << "batch " << s.batch << " groups " << s.groups << " Cin " << s.in_channels << " Cout "
     << s.out_channels << " k " << s.kernel_h << "x" << s.kernel_w << " stride " << s.stride_h
     << "," << s.stride_w << " pad " << s.pad_h << "," << s.pad_w << " in " << s.in_h << "x"
     << s.in_w;
  return os.str();
}

/// Runs every ISA on `c` (once with the batched shape, once as the batch overload with the
/// one-image shape) and requires the reference bytes.
template <class Rounding>
void check_all_isas(const ConvCase& c, int t) {
  const std::vector<std::uint8_t> ref = c.template reference<Rounding>();
  fq::Conv2dShape one = c.s;
  one.batch = 1;
  const fq::PackedConv2dWeights pw(c.w.data(), c.s), pw1(c.w.data(), one);
  for (fq::Isa isa : fq::supported_isas()) {
    INFO("t " << t << " isa " << fq::to_string(isa) << " " << describe(c.s) << " relu " << c.rp.relu
              << " out [" << c.rp.out_min << ", " << c.rp.out_max << "] zp " << c.rp.out_zero_point
              << " bias " << (c.rp.bias != nullptr) << " multipliers " << c.rp.multiplier_count);
    std::vector<std::uint8_t> y(ref.size(), 0xEE);
    fq::conv2d_u8<Rounding>(c.x.data(), c.x_zp, pw, c.rp, y.data(), isa);
    REQUIRE(y == ref);
    std::vector<std::uint8_t> yb(ref.size(), 0xEE);
    fq::conv2d_u8<Rounding>(c.x.data(), c.x_zp, pw1, c.rp, yb.data(), c.s.batch, isa);
    REQUIRE(yb == ref);
  }
}

}  // namespace

TEST_CASE("conv2d_u8: every ISA equals a direct convolution", "[kernels][bit_exact]") {
  std::mt19937 rng(3);
  auto r = [&](int lo, int hi) { return std::int64_t(lo + int(rng() % unsigned(hi - lo + 1))); };
  for (int t = 0; t < 40; ++t) {
    ConvCase c;
    fq::Conv2dShape& s = c.s;
    s.groups = r(1, 3);
    s.batch = r(1, 3);
    s.in_channels = s.groups * r(1, 5);
    // Up to 19 channels per group: full 8-channel tiles of the AVX-512 path and every tail.
    s.out_channels = s.groups * (t % 4 == 0 ? r(9, 19) : r(1, 5));
    s.kernel_h = r(1, 3);
    s.kernel_w = r(1, 3);
    s.stride_h = r(1, 3);
    s.stride_w = t % 3 == 0 ? r(2, 3) : 1;
    s.pad_h = r(0, 2);
    s.pad_w = r(0, 2);
    // Up to 20 x 20 positions: more than one 48-position tile, partial last vectors.
    const int big = t % 5 == 1 ? 20 : 9;
    s.in_h = r(std::max<int>(1, int(s.kernel_h - 2 * s.pad_h)), big);
    s.in_w = r(std::max<int>(1, int(s.kernel_w - 2 * s.pad_w)), big);
    c.fill(rng, t % 7 != 5, t % 6 != 4);
    c.rp.out_zero_point = static_cast<std::int32_t>(r(0, 255));
    c.rp.out_min = 0;
    c.rp.out_max = 255;
    if (t % 4 == 2) {  // a narrower range, e.g. ReLU6 (out_max < 255), with out_min > 0
      c.rp.out_min = static_cast<std::int32_t>(r(0, 40));
      c.rp.out_max = static_cast<std::int32_t>(r(150, 254));
      c.rp.out_zero_point = static_cast<std::int32_t>(r(c.rp.out_min, c.rp.out_max));
    }
    c.rp.relu = t % 2 == 0;
    if (t % 3 == 1)
      check_all_isas<fq::DoubleRounding>(c, t);
    else
      check_all_isas<fq::SingleRounding<fq::RoundHalfEven>>(c, t);
  }
}

TEST_CASE("conv2d_u8: the demo's shapes and small K", "[kernels][bit_exact]") {
  std::mt19937 rng(11);
  struct Geo {
    std::int64_t batch, cin, cout, k, hw, stride, pad;
  };
  // K = 9 (1 input channel, 3x3: K not a multiple of 4), K = 1 and 2 (1x1 / 1x2 kernels), the
  // demo's second layer (K = 288), a strided 1x1, and a 5x5 with padding 2.
  const Geo geos[] = {{3, 1, 32, 3, 28, 1, 1},
                      {2, 1, 5, 1, 7, 1, 0},
                      {2, 2, 3, 1, 6, 2, 0},
                      {2, 32, 64, 3, 14, 1, 1},
                      {1, 3, 17, 5, 11, 1, 2}};
  int t = 0;
  for (const Geo& g : geos) {
    ConvCase c;
    c.s.batch = g.batch;
    c.s.in_channels = g.cin;
    c.s.out_channels = g.cout;
    c.s.kernel_h = g.k;
    c.s.kernel_w = g.k == 1 && g.cin == 2 ? 2 : g.k;
    c.s.in_h = c.s.in_w = g.hw;
    c.s.stride_h = c.s.stride_w = g.stride;
    c.s.pad_h = c.s.pad_w = g.pad;
    c.fill(rng, true, true);
    c.rp.out_zero_point = 3;
    c.rp.relu = true;
    c.rp.out_max = t % 2 == 0 ? 200 : 255;
    check_all_isas<fq::SingleRounding<fq::RoundHalfEven>>(c, t++);
  }
}

TEST_CASE("conv2d_u8: the AVX-512 epilogue in int32 and its bound, t = 0", "[kernels][bit_exact]") {
  // The channel-major path adds bias and sum in int32 when |sum| <= K4 · 255 · 128 keeps it in
  // int32 (conv_bias_exact32), else in int64 with saturation. All inputs 255 with z_x = 0 and
  // constant weights -128 or 127 reach the sum's extremes, so a bias one past the bound would
  // wrap in int32: x = INT32_MIN requantizes to -64 (out 36), a wrapped one to +64 (out 164).
  // K = 4 (1x1, 4 channels): K4 = K, bound = 130560.
  const std::int64_t bound = 4 * 255 * 128;
  ConvCase c;
  c.s.batch = 2;
  c.s.in_channels = 4;
  c.s.out_channels = 7;
  c.s.kernel_h = c.s.kernel_w = 1;
  c.s.in_h = 5;
  c.s.in_w = 19;  // P = 95: full and partial vectors
  c.x_zp = 0;
  c.x.assign(static_cast<std::size_t>(2 * 4 * 5 * 19), 255);
  struct Channel {
    int w;
    std::int64_t bias;
    fq::QuantizedMultiplier m;
  };
  const fq::QuantizedMultiplier big{1 << 30, -24};  // t = 55: x / 2^25 (INT32_MIN -> -64)
  const Channel ch[] = {
      {-128, INT32_MIN + bound, big},      // at the bound: int32, sum + bias = INT32_MIN exactly
      {-128, INT32_MIN + bound - 1, big},  // one past: int64, saturates to INT32_MIN
      {127, INT32_MAX - bound, big},       // at the bound: int32
      {127, INT32_MAX - 100, big},         // past it: int64, saturates to INT32_MAX
      {0, 37, {2, 31}},                    // t = 0: q = 2 · 37 = 74
      {1, -999, {3, 31}},                  // t = 0, odd product: 3 · (1020 - 999) = 63
      {-3, 5000, fq::quantize_multiplier(0.003)},  // an ordinary channel
  };
  for (const Channel& k : ch) {
    for (int i = 0; i < 4; ++i) c.w.push_back(static_cast<std::int8_t>(k.w));
    c.bias.push_back(static_cast<std::int32_t>(k.bias));
    c.mult.push_back(k.m);
  }
  c.rp.bias = c.bias.data();
  c.rp.multipliers = c.mult.data();
  c.rp.multiplier_count = 7;
  c.rp.out_zero_point = 100;
  const std::vector<std::uint8_t> ref = c.reference<fq::SingleRounding<fq::RoundHalfEven>>();
  const std::int64_t p = 5 * 19;
  const int expect[] = {36, 36, 164, 164, 174, 163};
  for (int o = 0; o < 6; ++o) {
    INFO("channel " << o);
    CHECK(int(ref[static_cast<std::size_t>(o * p)]) == expect[o]);  // the reference itself
  }
  check_all_isas<fq::SingleRounding<fq::RoundHalfEven>>(c, 0);
  check_all_isas<fq::DoubleRounding>(c, 1);
}

TEST_CASE("conv2d_u8: zero images and a negative count", "[kernels]") {
  fq::Conv2dShape s;
  s.in_channels = 2;
  s.out_channels = 3;
  const std::vector<std::int8_t> w(6, 1);
  const fq::PackedConv2dWeights pw(w.data(), s);
  const fq::QuantizedMultiplier m = fq::quantize_multiplier(0.01);
  fq::RequantParams rp;
  rp.multipliers = &m;
  fq::conv2d_u8(nullptr, 0, pw, rp, nullptr, 0);  // nothing to do: no error, no access
  std::vector<std::uint8_t> x(2), y(3);
  REQUIRE_THROWS_AS(fq::conv2d_u8(x.data(), 0, pw, rp, y.data(), -1), fq::Error);
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
