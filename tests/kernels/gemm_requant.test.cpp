// SPDX-License-Identifier: MIT
// gemm_requant with contiguous and strided (transposed: the layout a convolution writes)
// outputs: every ISA (the vector epilogues of requant_avx512.hpp and requant_avx2.hpp, through
// a contiguous row and a scatter for strided outputs) equals the scalar stages at the extremes:
// int32-saturating biases, shifts of 0 and 62 bits, exact ties, narrow and empty clamps, uint8
// and int8 activations/outputs.
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include <fakequant/kernels/gemm_requant.hpp>

#include "catch.hpp"
#include "kernels/gemm_requant_check.hpp"

using fq_kernels_test::check_requant_paths;

TEST_CASE("gemm_requant: a strided output equals the scalar stages at the extremes",
          "[kernels][bit_exact]") {
  std::mt19937 rng(5);
  const std::int64_t m = 101, n = 21, k = 37;  // m > one 96-row chunk; n and k not aligned
  std::vector<std::uint8_t> a(static_cast<std::size_t>(m * k));
  std::vector<std::int8_t> w(static_cast<std::size_t>(n * k));
  for (auto& v : a) v = static_cast<std::uint8_t>(rng() % 256);
  for (auto& v : w) v = static_cast<std::int8_t>(static_cast<int>(rng() % 256) - 128);
  const fq::PackedWeights pw(w.data(), n, k, k);
  std::vector<std::int8_t> as(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) as[i] = static_cast<std::int8_t>(int(a[i]) - 128);
  std::vector<std::int32_t> bias(static_cast<std::size_t>(n));
  std::vector<fq::QuantizedMultiplier> mult(static_cast<std::size_t>(n));
  std::uniform_real_distribution<double> e(-30.0, 10.0);
  for (std::int64_t j = 0; j < n; ++j) {
    bias[static_cast<std::size_t>(j)] = static_cast<std::int32_t>(rng());  // full int32 range
    mult[static_cast<std::size_t>(j)] = fq::quantize_multiplier(std::pow(2.0, e(rng)));
  }
  mult[2] = fq::QuantizedMultiplier{0, 0};
  mult[4] = fq::QuantizedMultiplier{(1 << 30) + 1, 31};  // no rounding shift; odd products
  mult[6] = fq::QuantizedMultiplier{2147483647, -31};
  mult[8] = fq::QuantizedMultiplier{(1 << 30) + 1, 30};  // shift by 1: many exact ties
  for (const fq::Clamp cl : {fq::Clamp{0, 255}, fq::Clamp{20, 200}, fq::Clamp{-128, 127},
                             fq::Clamp{-1000, 1000}, fq::Clamp{50, 20}}) {
    for (std::int32_t zp : {0, 90, -60}) {
      const fq::BiasAdd ba{bias.data()};
      const fq::AddZeroPoint az{zp};
      const fq::Requantize<fq::SingleRounding<>> rs{mult.data(), true};
      const fq::Requantize<fq::DoubleRounding> rd{mult.data(), true};
      const fq::Requantize<fq::SingleRounding<>> rs1{mult.data() + 1, false};
      check_requant_paths<std::uint8_t>(a, m, k, pw, fq::make_output_pipeline(ba, rs, az, cl));
      check_requant_paths<std::uint8_t>(a, m, k, pw, fq::make_output_pipeline(ba, rd, az, cl));
      check_requant_paths<std::int8_t>(a, m, k, pw, fq::make_output_pipeline(rs1, az, cl));
      check_requant_paths<std::int8_t>(as, m, k, pw, fq::make_output_pipeline(ba, rd, az, cl));
      check_requant_paths<std::uint8_t>(as, m, k, pw, fq::make_output_pipeline(rs, az, cl));
    }
  }
}
