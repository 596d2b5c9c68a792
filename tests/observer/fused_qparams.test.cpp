// SPDX-License-Identifier: MIT
// FusedQParams (PyTorch's fused QAT module's qparams) against torch 1.13's
// torch.fused_moving_avg_obs_fake_quant (tests/observer/gen_golden_fused.py): running
// min/max, scale, zero point and the fake-quantized output, bit for bit, after each step.
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include <fakequant/observer/fake_quantize_module.hpp>
#include <fakequant/observer/fused_qparams.hpp>

#include "catch.hpp"
#include "observer/fused_golden_data.hpp"
#include "test_util.hpp"

namespace {

using fq::TensorView;
using fq_test::bits_of;
using fq_test::float_from_bits;

using PerTensorAffine = fq::QScheme<fq::RuntimeRange, fq::Affine>;
using PerChannelAffine = fq::QScheme<fq::RuntimeRange, fq::Affine, fq::PerChannel<0>>;

template <class Scheme, class Observer>
void run_case(const fq_golden::FusedCase& c) {
  fq::FakeQuantize<Scheme, Observer> m(fq::QuantRange{c.quant_min, c.quant_max},
                                       static_cast<float>(c.averaging_constant));
  const std::int64_t n = c.rows * c.cols;
  for (int k = 0; k < 3; ++k) {
    const auto& s = c.step[k];
    INFO("case " << c.name << " step " << k);
    std::vector<float> x(static_cast<std::size_t>(n)), y(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = float_from_bits(s.x_bits[i]);
    m.forward(TensorView<const float>(x.data(), {c.rows, c.cols}),
              TensorView<float>(y.data(), {c.rows, c.cols}));
    for (std::int64_t ch = 0; ch < c.channels; ++ch) {
      const auto u = static_cast<std::size_t>(ch);
      INFO("channel " << ch);
      REQUIRE(bits_of(m.observer().min_val()[u]) == s.min_bits[ch]);
      REQUIRE(bits_of(m.observer().max_val()[u]) == s.max_bits[ch]);
      REQUIRE(bits_of(m.quantizer().scale()[u]) == s.scale_bits[ch]);
      REQUIRE(m.quantizer().zero_point()[u] == s.zero_point[ch]);
    }
    for (std::size_t i = 0; i < y.size(); ++i) {
      INFO("element " << i << " x " << x[i]);
      REQUIRE(bits_of(y[i]) == s.y_bits[i]);
    }
  }
}

}  // namespace

TEST_CASE("fused qparams: golden torch.fused_moving_avg_obs_fake_quant", "[observer][golden]") {
  int checked = 0;
  for (const auto& c : fq_golden::kFusedCases) {
    if (c.per_channel) {
      if (c.symmetric_quant)
        run_case<PerChannelAffine, fq::FusedMovingAveragePerChannelMinMaxObserver<true>>(c);
      else
        run_case<PerChannelAffine, fq::FusedMovingAveragePerChannelMinMaxObserver<false>>(c);
    } else {
      if (c.symmetric_quant)
        run_case<PerTensorAffine, fq::FusedMovingAverageMinMaxObserver<true>>(c);
      else
        run_case<PerTensorAffine, fq::FusedMovingAverageMinMaxObserver<false>>(c);
    }
    ++checked;
  }
  CHECK(checked == 50);
}

TEST_CASE("fused qparams: where they differ from the observers' (pins P13, P14)", "[observer]") {
  const fq::QuantRange s8{-128, 127};
  // P13: all zeros -> observer eps, fused 0.1.
  CHECK(fq::ObserverQParams::compute<PerTensorAffine>(0.0f, 0.0f, s8).scale ==
        std::numeric_limits<float>::epsilon());
  CHECK(fq::FusedAffineQParams::compute<PerTensorAffine>(0.0f, 0.0f, s8).scale == 0.1f);
  // P14: positive data with symmetric_quant falls back to affine: z = -128, s = max / 255.
  const auto q = fq::FusedSymmetricQParams::compute<PerTensorAffine>(0.1f, 1.1f, s8);
  CHECK(q.zero_point == -128);
  CHECK(q.scale == static_cast<float>(static_cast<double>(1.1f) / 255.0));
  // Two-sided symmetric: max(|min| / 128, max / 127), z = rne(-0.5) = 0; observers: /127.5.
  const auto t = fq::FusedSymmetricQParams::compute<PerTensorAffine>(-1.0f, 1.0f, s8);
  CHECK(t.zero_point == 0);
  CHECK(t.scale == Approx(1.0 / 127.0).epsilon(1e-6));
  CHECK(
      fq::calculate_qparams<fq::QScheme<fq::RuntimeRange, fq::Symmetric>>(-1.0f, 1.0f, s8).scale ==
      1.0f / 127.5f);
  // The 6.1e-5 floor.
  CHECK(fq::FusedAffineQParams::compute<PerTensorAffine>(-1e-4f, 1e-4f, s8).scale == 6.1e-5f);
  // Nothing observed: (1, 0); min > max: an error.
  const float inf = std::numeric_limits<float>::infinity();
  CHECK(fq::FusedAffineQParams::compute<PerTensorAffine>(inf, -inf, s8).scale == 1.0f);
  CHECK_THROWS_AS(fq::FusedAffineQParams::compute<PerTensorAffine>(1.0f, 0.0f, s8), fq::Error);
  // The default policy of the observers is unchanged (ObserverQParams).
  static_assert(
      std::is_same<fq::MinMaxObserver, fq::MinMaxObserverBase<fq::RunningMinMaxUpdate, false,
                                                              fq::ObserverQParams>>::value,
      "MinMaxObserver keeps the observers' qparams");
}
