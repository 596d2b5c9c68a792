// SPDX-License-Identifier: MIT
// The int8 linear layer and composable output stages: every ISA equals a scalar reference
// (naive int64 GEMM + bias, then the fixed-point functions, zero point, clamp / ReLU), for
// single and double rounding, per-channel and per-tensor multipliers.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include <fakequant/kernels/gemm_requant.hpp>
#include <fakequant/kernels/linear.hpp>

#include "catch.hpp"
#include "kernels/gemm_requant_check.hpp"

namespace {

struct Layer {
  std::int64_t m, n, k;
  std::int32_t x_zp;
  std::vector<std::uint8_t> x;
  std::vector<std::int8_t> w;
  std::vector<std::int32_t> bias;
  std::vector<fq::QuantizedMultiplier> mult;
  std::vector<std::int64_t> acc;  // sum (x - zp) * w + bias, exact
};

Layer make_layer(std::mt19937& rng, std::int64_t m, std::int64_t n, std::int64_t k) {
  Layer l{m, n, k, static_cast<std::int32_t>(rng() % 256), {}, {}, {}, {}, {}};
  std::uniform_int_distribution<int> u8(0, 255), s8(-127, 127), b(-20000, 20000);
  l.x.resize(static_cast<std::size_t>(m * k));
  l.w.resize(static_cast<std::size_t>(n * k));
  for (auto& v : l.x) v = static_cast<std::uint8_t>(u8(rng));
  for (auto& v : l.w) v = static_cast<std::int8_t>(s8(rng));
  std::uniform_real_distribution<double> f(0.3, 3.0);
  for (std::int64_t j = 0; j < n; ++j) {
    l.bias.push_back(b(rng));
    l.mult.push_back(fq::quantize_multiplier(f(rng) * 60.0 / (std::sqrt(double(k)) * 5400.0)));
  }
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j) {
      std::int64_t s = l.bias[static_cast<std::size_t>(j)];
      for (std::int64_t kk = 0; kk < k; ++kk)
        s += (std::int64_t(l.x[static_cast<std::size_t>(i * k + kk)]) - l.x_zp) *
             l.w[static_cast<std::size_t>(j * k + kk)];
      l.acc.push_back(s);
    }
  return l;
}

template <class Rounding>
std::uint8_t ref_out(std::int64_t acc, fq::QuantizedMultiplier qm, const fq::RequantParams& rp) {
  std::int32_t v = Rounding::apply(static_cast<std::int32_t>(acc), qm) + rp.out_zero_point;
  const std::int32_t lo = rp.relu ? std::max(rp.out_min, rp.out_zero_point) : rp.out_min;
  return static_cast<std::uint8_t>(std::min(std::max(v, lo), rp.out_max));
}

template <class Rounding>
void check_linear(const Layer& l, bool per_channel, bool relu, std::int32_t out_zp) {
  fq::RequantParams rp;
  rp.bias = l.bias.data();
  rp.multipliers = l.mult.data();
  rp.multiplier_count = per_channel ? l.n : 1;
  rp.out_zero_point = out_zp;
  rp.out_min = 0;
  rp.out_max = 250;
  rp.relu = relu;
  const fq::PackedWeights pw(l.w.data(), l.n, l.k, l.k);
  std::vector<std::uint8_t> ref(static_cast<std::size_t>(l.m * l.n));
  int spread = 0;
  for (std::int64_t i = 0; i < l.m; ++i)
    for (std::int64_t j = 0; j < l.n; ++j) {
      const auto idx = static_cast<std::size_t>(i * l.n + j);
      ref[idx] =
          ref_out<Rounding>(l.acc[idx], l.mult[per_channel ? static_cast<std::size_t>(j) : 0], rp);
      spread += ref[idx] != 0 && ref[idx] != 250 && ref[idx] != out_zp;
    }
  REQUIRE(spread > 0);  // the outputs are not all clamped
  for (fq::Isa isa : fq::supported_isas()) {
    std::vector<std::uint8_t> y(static_cast<std::size_t>(l.m * l.n), 0xEE);
    fq::linear_u8<Rounding>(l.x.data(), l.m, l.k, l.x_zp, pw, rp, y.data(), l.n, isa);
    INFO("isa " << fq::to_string(isa) << " M " << l.m << " N " << l.n << " K " << l.k);
    REQUIRE(y == ref);
  }
}

}  // namespace

TEST_CASE("linear_u8: every ISA equals the scalar reference", "[kernels][bit_exact]") {
  std::mt19937 rng(5);
  std::uniform_int_distribution<std::int64_t> dm(1, 130), dn(1, 70), dk(1, 400);
  for (int t = 0; t < 12; ++t) {
    const Layer l = make_layer(rng, dm(rng), dn(rng), dk(rng));
    check_linear<fq::SingleRounding<>>(l, true, t % 2 == 0, 128);
    check_linear<fq::DoubleRounding>(l, t % 3 != 0, t % 2 == 1, 3);
    check_linear<fq::SingleRounding<fq::RoundHalfUp>>(l, true, false, 100);
  }
}

TEST_CASE("output stages compose; int8 activations and output", "[kernels][bit_exact]") {
  std::mt19937 rng(9);
  const std::int64_t m = 11, n = 19, k = 45;
  std::vector<std::int8_t> a(static_cast<std::size_t>(m * k)), w(static_cast<std::size_t>(n * k));
  for (auto& v : a) v = static_cast<std::int8_t>(static_cast<int>(rng() % 256) - 128);
  for (auto& v : w) v = static_cast<std::int8_t>(static_cast<int>(rng() % 255) - 127);
  const fq::PackedWeights pw(w.data(), n, k, k);
  const fq::QuantizedMultiplier qm = fq::quantize_multiplier(0.002);
  const auto pipe = fq::make_output_pipeline(fq::Requantize<fq::DoubleRounding>{&qm, false},
                                             fq::AddZeroPoint{-5}, fq::Clamp{-100, 90});
  for (fq::Isa isa : fq::supported_isas()) {
    std::vector<std::int8_t> y(static_cast<std::size_t>(n * m));
    // Transposed output: element (i, j) at y[j * m + i].
    fq::gemm_requant(a.data(), m, k, pw, std::int32_t{-3}, pipe,
                     fq::GemmOutput<std::int8_t>{y.data(), 1, m, 0}, isa);
    for (std::int64_t i = 0; i < m; ++i)
      for (std::int64_t j = 0; j < n; ++j) {
        std::int32_t s = 0;
        for (std::int64_t kk = 0; kk < k; ++kk)
          s += (a[static_cast<std::size_t>(i * k + kk)] + 3) *
               w[static_cast<std::size_t>(j * k + kk)];
        const std::int32_t r =
            std::min(std::max(fq::multiply_by_quantized_multiplier(s, qm) - 5, -100), 90);
        REQUIRE(y[static_cast<std::size_t>(j * m + i)] == r);
      }
  }
  // Stage semantics.
  const std::int32_t bias[2] = {2147483000, 5};
  REQUIRE(fq::BiasAdd{bias}.apply(1000, 0) == 2147483647);
  REQUIRE(fq::BiasAdd{bias}.apply(-6, 1) == -1);
  REQUIRE(fq::Clamp{0, 10}.apply(-3, 0) == 0);
  REQUIRE(fq::make_output_pipeline(fq::AddZeroPoint{200}).apply_to<std::uint8_t>(100, 0) == 255);
}

TEST_CASE("linear_u8: bad arguments are reported", "[kernels]") {
  std::vector<std::int8_t> w(8, 1);
  const fq::PackedWeights pw(w.data(), 2, 4, 4);
  std::vector<std::uint8_t> x(4, 1), y(2);
  const fq::QuantizedMultiplier qm = fq::quantize_multiplier(0.5);
  fq::RequantParams rp;
  rp.multipliers = &qm;
  rp.multiplier_count = 3;
  REQUIRE_THROWS_AS(fq::linear_u8(x.data(), 1, 4, 0, pw, rp, y.data(), 2), fq::Error);
  rp.multiplier_count = 1;
  rp.out_zero_point = 300;
  REQUIRE_THROWS_AS(fq::linear_u8(x.data(), 1, 4, 0, pw, rp, y.data(), 2), fq::Error);
  rp.out_zero_point = 0;
  REQUIRE_THROWS_AS(fq::linear_u8(x.data(), 1, 4, 0, pw, rp, y.data(), 1), fq::Error);
  fq::linear_u8(x.data(), 1, 4, 0, pw, rp, y.data(), 2);
  REQUIRE(y[0] == 2);  // 4 * 0.5
}

using fq_kernels_test::check_requant_paths;

TEST_CASE("requantizing epilogue: vector path equals the scalar stages at the extremes",
          "[kernels][bit_exact]") {
  std::mt19937 rng(21);
  const std::int64_t m = 5, n = 77, k = 300;
  std::vector<std::uint8_t> a(static_cast<std::size_t>(m * k));
  std::vector<std::int8_t> w(static_cast<std::size_t>(n * k));
  for (auto& v : a) v = static_cast<std::uint8_t>(rng() % 256);
  for (auto& v : w) v = static_cast<std::int8_t>(static_cast<int>(rng() % 256) - 128);
  const fq::PackedWeights pw(w.data(), n, k, k);
  std::vector<std::int8_t> as(a.size());  // int8 activations: the shifted (a XOR 0x80) path
  for (std::size_t i = 0; i < a.size(); ++i) as[i] = static_cast<std::int8_t>(int(a[i]) - 128);
  std::vector<std::int32_t> bias(static_cast<std::size_t>(n));
  std::vector<fq::QuantizedMultiplier> mult(static_cast<std::size_t>(n));
  std::uniform_real_distribution<double> e(-40.0, 25.0);
  for (std::int64_t j = 0; j < n; ++j) {
    bias[static_cast<std::size_t>(j)] = static_cast<std::int32_t>(rng());  // full int32 range
    mult[static_cast<std::size_t>(j)] = fq::quantize_multiplier(std::pow(2.0, e(rng)));
  }
  mult[3] = fq::QuantizedMultiplier{0, 0};
  mult[5] = fq::QuantizedMultiplier{1 << 30, 31};  // no rounding shift at all
  mult[6] = fq::QuantizedMultiplier{2147483647, -31};
  mult[7] = fq::QuantizedMultiplier{(1 << 30) + 1, 30};  // shift by 1: many exact ties
  for (const fq::Clamp cl : {fq::Clamp{0, 255}, fq::Clamp{-1000, 1000}, fq::Clamp{300, 400},
                             fq::Clamp{50, 20}, fq::Clamp{-128, 127}, fq::Clamp{10, 10}}) {
    for (std::int32_t zp : {0, 100, -60}) {
      for (bool per_channel : {true, false}) {
        const fq::BiasAdd ba{bias.data()};
        const fq::AddZeroPoint az{zp};
        const fq::Requantize<fq::SingleRounding<>> rs{mult.data(), per_channel};
        const fq::Requantize<fq::DoubleRounding> rd{mult.data(), per_channel};
        check_requant_paths<std::uint8_t>(a, m, k, pw, fq::make_output_pipeline(ba, rs, az, cl));
        check_requant_paths<std::int8_t>(a, m, k, pw, fq::make_output_pipeline(ba, rd, az, cl));
        check_requant_paths<std::uint8_t>(a, m, k, pw, fq::make_output_pipeline(rd, az, cl));
        check_requant_paths<std::int8_t>(a, m, k, pw, fq::make_output_pipeline(rs, az, cl));
        check_requant_paths<std::uint8_t>(as, m, k, pw, fq::make_output_pipeline(ba, rs, az, cl));
        check_requant_paths<std::int8_t>(as, m, k, pw, fq::make_output_pipeline(rd, az, cl));
      }
    }
  }
}
