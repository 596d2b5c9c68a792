// SPDX-License-Identifier: MIT
// Power-of-two scale restriction (observer/scale_restriction.hpp): exact against a double
// log2 reference, the ceil policy never clips an observer's range, the STE gradient.
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include <fakequant/kernels/fake_quantize.hpp>
#include <fakequant/learnable/learnable.hpp>
#include <fakequant/quantizer/fake_quantizer.hpp>
#include <fakequant/scheme/qparams.hpp>

#include "catch.hpp"

TEST_CASE("power-of-two scales: ceil and round in the log2 domain", "[lsq][pot]") {
  CHECK(fq::PowerOfTwoCeil::apply(0.3f) == 0.5f);
  CHECK(fq::PowerOfTwoRound::apply(0.3f) == 0.25f);  // log2 0.3 = -1.74
  CHECK(fq::PowerOfTwoRound::apply(0.36f) == 0.5f);  // log2 0.36 = -1.47
  CHECK(fq::PowerOfTwoCeil::apply(0.25f) == 0.25f);  // powers of two are kept
  CHECK(fq::PowerOfTwoRound::apply(0.25f) == 0.25f);
  CHECK(fq::PowerOfTwoCeil::apply(1e-42f) == std::ldexp(1.0f, -126));  // kept normal
  CHECK(fq::PowerOfTwoCeil::apply(3e38f) == std::ldexp(1.0f, 126));
  CHECK(fq::NoScaleRestriction::apply(0.3f) == 0.3f);
  std::mt19937 rng(5);
  std::uniform_real_distribution<double> e(-30.0, 30.0);
  for (int i = 0; i < 20000; ++i) {
    const float s = static_cast<float>(std::exp2(e(rng)));
    const double l = std::log2(double(s));
    INFO("s " << s);
    REQUIRE(double(fq::PowerOfTwoCeil::apply(s)) == std::exp2(std::ceil(l)));
    // round in the log domain; exact halves cannot occur for floats (sqrt(2) is irrational)
    REQUIRE(double(fq::PowerOfTwoRound::apply(s)) == std::exp2(std::floor(l + 0.5)));
    REQUIRE(fq::PowerOfTwoCeil::grad(s, fq::PowerOfTwoCeil::apply(s)) ==
            fq::PowerOfTwoCeil::apply(s) / s);
  }
}

TEST_CASE("power-of-two scales on observer qparams never clip the observed range", "[lsq][pot]") {
  using Scheme = fq::QScheme<fq::UInt8>;
  using SymScheme = fq::QScheme<fq::Int8, fq::Symmetric>;
  std::mt19937 rng(6);
  std::normal_distribution<float> nd(0.0f, 3.0f);
  for (int i = 0; i < 2000; ++i) {
    float mn = nd(rng), mx = nd(rng);
    if (mn > mx) std::swap(mn, mx);
    const fq::QuantRange r = fq::UInt8::value();
    const auto qp = fq::calculate_qparams<Scheme>(mn, mx, r);
    const auto pot = fq::apply_scale_restriction(qp);
    REQUIRE(pot.zero_point == qp.zero_point);
    REQUIRE(pot.scale >= qp.scale);
    REQUIRE(std::log2(pot.scale) == std::floor(std::log2(pot.scale)));
    const double lo = (double(r.quant_min) - pot.zero_point) * pot.scale;
    const double hi = (double(r.quant_max) - pot.zero_point) * pot.scale;
    const double qlo = (double(r.quant_min) - qp.zero_point) * qp.scale;
    const double qhi = (double(r.quant_max) - qp.zero_point) * qp.scale;
    REQUIRE(lo <= qlo);
    REQUIRE(hi >= qhi);
    const auto sym = fq::calculate_qparams<SymScheme>(mn, mx, fq::Int8::value());
    const auto psym = fq::apply_scale_restriction<fq::PowerOfTwoRound>(sym);
    REQUIRE(psym.zero_point == 0);
    REQUIRE(psym.scale <= sym.scale * std::sqrt(2.0f) * 1.0000001f);
    REQUIRE(psym.scale >= sym.scale / std::sqrt(2.0f) / 1.0000001f);
  }
  std::vector<float> scales = {0.3f, 0.125f, 1.1f};
  fq::apply_scale_restriction(scales.data(), 3);
  CHECK(scales == std::vector<float>{0.5f, 0.125f, 2.0f});
  scales[1] = -1.0f;
  try {
    fq::apply_scale_restriction(scales.data(), 3);
    FAIL("a negative scale must be rejected");
  } catch (const fq::Error& e) {
    CHECK(e.code() == fq::ErrorCode::kInvalidScale);
  }
}
