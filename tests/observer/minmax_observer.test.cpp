// SPDX-License-Identifier: MIT
// Tests of the MinMax / MovingAverage observers (pins P12) and their errors.
#include <limits>
#include <vector>

#include <fakequant/observer/minmax_observer.hpp>
#include <fakequant/scheme/presets.hpp>

#include "catch.hpp"

using fq::TensorView;

TEST_CASE("MinMaxObserver keeps the running range", "[observer]") {
  fq::MinMaxObserver obs;
  std::vector<float> a{-0.3f, 0.1f, 0.9f, 1.7f}, b{-2.0f, 0.5f};
  obs.observe(TensorView<const float>(a.data(), {4}));
  CHECK(obs.min_val()[0] == -0.3f);
  CHECK(obs.max_val()[0] == 1.7f);
  obs.observe(TensorView<const float>(b.data(), {2}));
  CHECK(obs.min_val()[0] == -2.0f);
  CHECK(obs.max_val()[0] == 1.7f);
  const auto q = obs.calculate_qparams<fq::Uint8ActPerTensorAffine>({0, 255});
  CHECK(q.scale == std::max((1.7f - -2.0f) / 255.0f, fq::kObserverEps));
  obs.observe(TensorView<const float>(nullptr, {0}));  // empty: ignored
  CHECK(obs.min_val()[0] == -2.0f);
  obs.reset();
  CHECK(obs.min_val()[0] == std::numeric_limits<float>::infinity());
}

TEST_CASE("P12: moving average copies the first batch, then m += c (b - m)", "[observer][golden]") {
  fq::MovingAverageMinMaxObserver obs;
  std::vector<float> a{-1.0f, 1.0f}, b{-3.0f, 5.0f};
  obs.observe(TensorView<const float>(a.data(), {2}));
  CHECK(obs.min_val()[0] == -1.0f);
  obs.observe(TensorView<const float>(b.data(), {2}));
  CHECK(double(obs.min_val()[0]) == -1.0199999809265137);
  CHECK(double(obs.max_val()[0]) == 1.0399999618530273);
}

TEST_CASE("per-channel observers reduce over every other axis", "[observer]") {
  // shape [2, 3, 2], channel axis 1
  std::vector<float> x{1, -1, 2, 5, -3, 0, 4, 4, -7, 1, 2, 2};
  fq::PerChannelMinMaxObserver obs(0.01f, 1);
  obs.observe(TensorView<const float>(x.data(), {2, 3, 2}));
  CHECK(obs.min_val() == std::vector<float>{-1, -7, -3});
  CHECK(obs.max_val() == std::vector<float>{4, 5, 2});
  fq::PerChannelMinMaxObserver last(0.01f, -1);  // channel axis innermost
  last.observe(TensorView<const float>(x.data(), {2, 3, 2}));
  CHECK(last.min_val() == std::vector<float>{-7, -1});
  CHECK(last.max_val() == std::vector<float>{4, 5});
  std::vector<float> s;
  std::vector<std::int32_t> z;
  obs.calculate_qparams<fq::Int8WeightPerChannelSymmetric>({-128, 127}, s, z);
  CHECK(s.size() == 3);
  CHECK(s[1] == 7.0f / 127.5f);
  CHECK(z == std::vector<std::int32_t>{0, 0, 0});
  // A later batch with another channel count is an error.
  std::vector<float> y(8);
  CHECK_THROWS_AS(obs.observe(TensorView<const float>(y.data(), {2, 4})), fq::Error);
  fq::MovingAveragePerChannelMinMaxObserver ema(0.5f, 0);
  std::vector<float> p{0, 2, -2, 4}, q{2, 4, -6, 8};
  ema.observe(TensorView<const float>(p.data(), {2, 2}));
  ema.observe(TensorView<const float>(q.data(), {2, 2}));
  CHECK(ema.min_val() == std::vector<float>{1, -4});
  CHECK(ema.max_val() == std::vector<float>{3, 6});
}

TEST_CASE("observers reject NaN and Inf data", "[observer][errors]") {
  fq::MinMaxObserver obs;
  for (float bad :
       {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    std::vector<float> x{1.0f, bad, 2.0f};
    try {
      obs.observe(TensorView<const float>(x.data(), {3}));
      FAIL("no error");
    } catch (const fq::Error& e) {
      CHECK(e.code() == fq::ErrorCode::kNonFiniteInput);
    }
  }
  CHECK_THROWS_AS(fq::MovingAverageMinMaxObserver(0.0f), fq::Error);
  fq::PerChannelMinMaxObserver pc(0.01f, 3);
  std::vector<float> x(4);
  CHECK_THROWS_AS(pc.observe(TensorView<const float>(x.data(), {2, 2})), fq::Error);
}
