// SPDX-License-Identifier: MIT
// Every observer on extreme but finite data — floats near +-3e38 (FLT_MAX included), doubles
// near +-1e300 (DBL_MAX included) and ranges that grow 1e30-fold between batches — gives
// usable qparams (finite scale with a finite inverse, zero point in range, a finite grid) and
// finite fake-quantized values, inside fq::FakeQuantize as a user would run them; histogram
// growth keeps every count in bounds; the qparams functions refuse non-finite ranges and
// one-level ranges; the entropy chooser's bin count is bounded.
#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include <fakequant/observer/fake_quantize_module.hpp>
#include <fakequant/observer/fused_qparams.hpp>
#include <fakequant/observer/histogram_observer.hpp>
#include <fakequant/scheme/presets.hpp>

#include "catch.hpp"
#include "test_util.hpp"

namespace {

using fq_test::error_code_of;

constexpr float kFMax = std::numeric_limits<float>::max();
constexpr double kDMax = std::numeric_limits<double>::max();

template <class T>
using Batches = std::vector<std::vector<T>>;

// Float data near the ends of float32, one-sided huge data, and ranges growing by 1e30 and more
// between batches (both directions, from tiny spreads).
Batches<float> float_case(int i) {
  switch (i) {
    case 0:
      return {{-3e38f, -1.0f, 0.0f, 2.5f, 3e38f, 1e-30f}};
    case 1:
      return {{kFMax, -kFMax, 0.5f}};
    case 2:
      return {{1e38f, 3e38f, kFMax}};  // one-sided: the range is widened to 0
    case 3:
      return {{-1e-8f, 0.0f, 1e-8f, 5e-9f}, {-1e22f, 1e22f, 3.0f}, {3e38f, -2e38f, 7.0f}};
    case 4:
      return {{1.0f, 1.0000001f}, {1e30f, 1.0f}, {-3e38f}, {kFMax}};
    case 5:
      return {{-1e-30f, 1e-30f}, {-1e30f}, {1e-45f, 3.4e38f}};
    default:
      return {{3e38f, 3e38f}, {-3e38f, -3e38f}, {3e38f}};  // moving average across +-3e38
  }
}
constexpr int kFloatCases = 7;

Batches<double> double_case(int i) {
  switch (i) {
    case 0:
      return {{-1e300, 1e300, 0.0, 1.0}};
    case 1:
      return {{kDMax, -kDMax, 1e-300}};
    case 2:
      return {{0.0, 1e-300}, {1e300, -2.0}, {-1e300}};
    default:
      return {{1.0, 1.0 + 1e-15}, {1e200}, {-kDMax, 3.0}};
  }
}
constexpr int kDoubleCases = 4;

template <class T>
std::string describe(const Batches<T>& b) {
  std::string s;
  for (const auto& batch : b) {
    s += "[";
    for (T v : batch) s += std::to_string(static_cast<double>(v)) + " ";
    s += "] ";
  }
  return s;
}

// Runs fq::FakeQuantize<Scheme, Observer> over the batches (per channel: a [2, n] tensor whose
// second row is the first scaled by -0.5) and checks the qparams and outputs after each one.
template <class Scheme, class Observer, class T>
void check_module(const Batches<T>& batches, const char* name) {
  INFO(name << " on " << describe(batches));
  fq::FakeQuantize<Scheme, Observer> m(fq::FakeQuantizer<Scheme>::default_range());
  const fq::QuantRange r = m.quantizer().range();
  for (const std::vector<T>& b : batches) {
    const auto n = static_cast<std::int64_t>(b.size());
    std::vector<T> x = b;
    if (Scheme::granularity::kPerChannel)
      for (T v : b) x.push_back(v * T(-0.5));
    std::vector<T> y(x.size());
    const bool pc = Scheme::granularity::kPerChannel;
    const fq::TensorView<const T> xv =
        pc ? fq::TensorView<const T>(x.data(), {2, n}) : fq::TensorView<const T>(x.data(), {n});
    const fq::TensorView<T> yv =
        pc ? fq::TensorView<T>(y.data(), {2, n}) : fq::TensorView<T>(y.data(), {n});
    REQUIRE_NOTHROW(m.forward(xv, yv));
    REQUIRE(m.calibrated());
    const auto& s = m.quantizer().scale();
    const auto& z = m.quantizer().zero_point();
    for (std::size_t c = 0; c < s.size(); ++c) {
      INFO("channel " << c << ": scale " << s[c] << ", zero point " << double(z[c]));
      CHECK(std::isfinite(s[c]));
      CHECK(s[c] > 0.0f);
      CHECK(std::isfinite(1.0f / s[c]));
      if (!std::is_floating_point<std::decay_t<decltype(z[c])>>::value) {
        CHECK(double(z[c]) >= double(r.quant_min));  // a float zero point is an offset (-min/s)
        CHECK(double(z[c]) <= double(r.quant_max));
      }
      CHECK(std::isfinite(double(z[c])));
      // Both ends of the grid are finite floats.
      CHECK(std::isfinite(static_cast<float>((double(r.quant_min) - double(z[c])) * s[c])));
      CHECK(std::isfinite(static_cast<float>((double(r.quant_max) - double(z[c])) * s[c])));
    }
    for (std::size_t i = 0; i < y.size(); ++i) {
      INFO("element " << i << ": x = " << double(x[i]) << ", y = " << double(y[i]));
      CHECK(std::isfinite(y[i]));
    }
  }
}

// The same with the observer's own qparams, and usability on one batch: the largest value
// maps to a large positive level (at least the clip magnitude, FLT_MAX / 4).
template <class Scheme, class Observer>
void check_reaches_far(const char* name) {
  INFO(name);
  fq::FakeQuantize<Scheme, Observer> m(fq::FakeQuantizer<Scheme>::default_range());
  std::vector<float> x{-3e38f, 0.0f, 3e38f}, y(3);
  m.forward(fq::TensorView<const float>(x.data(), {3}), fq::TensorView<float>(y.data(), {3}));
  INFO("y = " << y[0] << ", " << y[1] << ", " << y[2]);
  CHECK(y[2] >= 0.99f * fq::kMaxObservedMagnitude);
  CHECK(y[0] <= -0.99f * fq::kMaxObservedMagnitude);
  CHECK(std::fabs(y[1]) <= m.quantizer().scale()[0]);
}

template <class Scheme, class Observer>
void check_all_cases(const char* name) {
  for (int i = 0; i < kFloatCases; ++i) check_module<Scheme, Observer>(float_case(i), name);
  for (int i = 0; i < kDoubleCases; ++i) check_module<Scheme, Observer>(double_case(i), name);
}

using U8 = fq::Uint8ActPerTensorAffine;
using S8 = fq::Int8WeightPerTensorSymmetric;
using S8Affine = fq::Int8ActPerTensorAffine;
using PcSym = fq::Int8WeightPerChannelSymmetric;
using PcAffine = fq::QScheme<fq::UInt8, fq::Affine, fq::PerChannel<0>>;
using FloatZp =
    fq::QScheme<fq::UInt8, fq::Affine, fq::PerTensor>::with_zero_point<fq::FloatZeroPoint>;

}  // namespace

TEST_CASE("observers on extreme finite data: finite qparams and outputs, per tensor",
          "[observer][calibration][extreme]") {
  check_all_cases<U8, fq::MinMaxObserver>("MinMax affine");
  check_all_cases<S8, fq::MinMaxObserver>("MinMax symmetric");
  check_all_cases<FloatZp, fq::MinMaxObserver>("MinMax float zero point");
  check_all_cases<U8, fq::MovingAverageMinMaxObserver>("MovingAverage affine");
  check_all_cases<S8, fq::MovingAverageMinMaxObserver>("MovingAverage symmetric");
  check_all_cases<S8Affine, fq::FusedMovingAverageMinMaxObserver<false>>("fused affine");
  check_all_cases<S8Affine, fq::FusedMovingAverageMinMaxObserver<true>>("fused symmetric");
  check_all_cases<U8, fq::MseHistogramObserver>("histogram MSE");
  check_all_cases<U8, fq::PercentileHistogramObserver>("histogram percentile");
  check_all_cases<U8, fq::EntropyHistogramObserver>("histogram entropy");
  check_all_cases<S8, fq::EntropyHistogramObserver>("histogram entropy symmetric");
  check_all_cases<S8Affine, fq::HistogramObserver<fq::MseRange, fq::FusedAffineQParams>>(
      "histogram MSE, fused qparams");
}

TEST_CASE("observers on extreme finite data: finite qparams and outputs, per channel",
          "[observer][calibration][extreme]") {
  check_all_cases<PcSym, fq::PerChannelMinMaxObserver>("per-channel MinMax symmetric");
  check_all_cases<PcAffine, fq::PerChannelMinMaxObserver>("per-channel MinMax affine");
  check_all_cases<PcSym, fq::MovingAveragePerChannelMinMaxObserver>(
      "per-channel MovingAverage symmetric");
  check_all_cases<PcAffine, fq::FusedMovingAveragePerChannelMinMaxObserver<true>>(
      "per-channel fused symmetric");
}

TEST_CASE("observers on +-3e38: the grid reaches the clip magnitude FLT_MAX / 4",
          "[observer][calibration][extreme]") {
  check_reaches_far<U8, fq::MinMaxObserver>("MinMax affine");
  check_reaches_far<S8, fq::MinMaxObserver>("MinMax symmetric");
  check_reaches_far<U8, fq::MovingAverageMinMaxObserver>("MovingAverage");
  check_reaches_far<S8Affine, fq::FusedMovingAverageMinMaxObserver<true>>("fused symmetric");
  check_reaches_far<U8, fq::MseHistogramObserver>("histogram MSE");
  // Below the clip magnitude nothing changes: PyTorch's rule, bit for bit.
  const auto q = fq::calculate_qparams<U8>(-1e37f, 2e37f, {0, 255});
  CHECK(q.scale == (2e37f - -1e37f) / 255.0f);
  // Double data beyond float's range is observed as +-FLT_MAX.
  fq::MinMaxObserver o;
  std::vector<double> d{-1e300, 5.0, kDMax};
  o.observe(fq::TensorView<const double>(d.data(), {3}));
  CHECK(o.min_val()[0] == -kFMax);
  CHECK(o.max_val()[0] == kFMax);
  // A moving average across +-3e38 stays finite (float32 would overflow: PyTorch gives inf).
  fq::MovingAverageMinMaxObserver ma(0.5f);
  std::vector<float> lo{-3e38f}, hi{3e38f};
  ma.observe(fq::TensorView<const float>(lo.data(), {1}));
  ma.observe(fq::TensorView<const float>(hi.data(), {1}));
  CHECK(ma.max_val()[0] == 0.0f);  // -3e38 + 0.5 * (3e38 - -3e38), in double
}

TEST_CASE("qparams refuse non-finite ranges and ranges of one level",
          "[observer][calibration][extreme][errors]") {
  const float inf = std::numeric_limits<float>::infinity();
  CHECK(error_code_of([&] {
          fq::calculate_qparams<U8>(-inf, 1.0f, {0, 255});
        }) == fq::ErrorCode::kNonFiniteInput);
  CHECK(error_code_of([&] {
          fq::calculate_qparams<U8>(-1.0f, inf, {0, 255});
        }) == fq::ErrorCode::kNonFiniteInput);
  CHECK(error_code_of([&] {
          fq::calculate_qparams<U8>(-inf, inf, {0, 255});
        }) == fq::ErrorCode::kNonFiniteInput);
  CHECK(error_code_of([&] {
          fq::FusedAffineQParams::compute<S8Affine>(-inf, 1.0f, {-128, 127});
        }) == fq::ErrorCode::kNonFiniteInput);
  using Rt = fq::RuntimeActPerTensorAffine;
  CHECK(error_code_of([&] {
          fq::calculate_qparams<Rt>(-1.0f, 1.0f, {5, 5});
        }) == fq::ErrorCode::kInvalidRange);
  CHECK(error_code_of([&] {
          fq::FusedAffineQParams::compute<Rt>(-1.0f, 1.0f, {5, 5});
        }) == fq::ErrorCode::kInvalidRange);
  // Nothing observed yet is still PyTorch's (1, 0).
  const auto q = fq::calculate_qparams<U8>(inf, -inf, {0, 255});
  CHECK(q.scale == 1.0f);
  CHECK(q.zero_point == 0);
}

TEST_CASE("histogram growth by huge factors keeps every count in bounds",
          "[histogram][calibration][extreme]") {
  const double pool[] = {0.0,    1.0,    -1.0,  1e-30, -1e-30, 1e30,   -1e30,
                         3e38,   -3e38,  1e-45, 2e-38, 1e10,   -5e37,  1.0000001,
                         1e-300, -1e300, 1e300, kDMax, -kDMax, 3.4e38, -1e-8};
  constexpr int kPool = sizeof(pool) / sizeof(pool[0]);
  std::mt19937 rng(11);
  for (int trial = 0; trial < 1500; ++trial) {
    const bool dbl = trial % 2 == 1;
    fq::Histogram h(1 + static_cast<std::int64_t>(rng() % 3000));
    const int batches = 2 + static_cast<int>(rng() % 4);
    double seen_min = std::numeric_limits<double>::infinity(), seen_max = -seen_min;
    for (int b = 0; b < batches; ++b) {
      const std::size_t n = 1 + rng() % 5;
      std::vector<double> xd(n);
      std::vector<float> xf(n);
      for (std::size_t i = 0; i < n; ++i) {
        double v = pool[rng() % kPool] * (1.0 + 0.01 * double(rng() % 7));
        if (!std::isfinite(v)) v = v > 0 ? kDMax : -kDMax;
        // Float data: within float's range; double data beyond it counts as +-FLT_MAX.
        const double sat = std::fmax(std::fmin(v, double(kFMax)), -double(kFMax));
        xd[i] = v;
        xf[i] = static_cast<float>(sat);
        seen_min = std::fmin(seen_min, dbl ? sat : double(xf[i]));
        seen_max = std::fmax(seen_max, dbl ? sat : double(xf[i]));
      }
      if (dbl)
        h.add(fq::TensorView<const double>(xd.data(), {static_cast<std::int64_t>(n)}));
      else
        h.add(fq::TensorView<const float>(xf.data(), {static_cast<std::int64_t>(n)}));
    }
    INFO("trial " << trial);
    std::uint64_t sum = 0;
    for (std::uint64_t c : h.counts()) sum += c;
    CHECK(sum == h.total());
    CHECK(std::isfinite(h.lower()));
    CHECK(std::isfinite(h.upper()));
    CHECK(h.lower() <= seen_min);
    CHECK(h.upper() >= seen_max);
    CHECK(h.data_min() == seen_min);
    CHECK(h.data_max() == seen_max);
    for (const fq::ClipRange r :
         {fq::MseRange{}.choose(h, {0, 255}), fq::PercentileRange{}.choose(h, {0, 255}),
          fq::EntropyRange{}.choose(h, {0, 255})}) {
      CHECK(std::isfinite(r.min_val));
      CHECK(std::isfinite(r.max_val));
      CHECK(r.min_val <= r.max_val);
      const auto q = fq::calculate_qparams<U8>(r.min_val, r.max_val, {0, 255});
      CHECK(std::isfinite(q.scale));
      CHECK(std::isfinite(1.0f / q.scale));
    }
  }
}

TEST_CASE("EntropyRange bounds its O(bins^2) search", "[histogram][calibration][extreme]") {
  fq::EntropyRange too_many{fq::kMaxEntropyBins + 1};
  fq::Histogram h(16);
  std::vector<float> x{-1.0f, 0.5f, 2.0f};
  h.add(fq::TensorView<const float>(x.data(), {3}));
  CHECK(error_code_of([&] { too_many.choose(h, {0, 255}); }) == fq::ErrorCode::kInvalidArgument);
  CHECK_NOTHROW(fq::EntropyRange{fq::kMaxEntropyBins}.choose(h, {0, 255}));
  // A histogram of 2^20 bins (the most it allows) with the automatic bin count: the search is
  // capped at kMaxEntropyBins magnitude bins, so it takes about a second, not minutes.
  fq::EntropyHistogramObserver ob(std::int64_t{1} << 20);
  std::mt19937 rng(3);
  std::normal_distribution<float> g;
  std::vector<float> v(1 << 16);
  for (float& e : v) e = g(rng);
  ob.observe(fq::TensorView<const float>(v.data(), {static_cast<std::int64_t>(v.size())}));
  const auto t0 = std::chrono::steady_clock::now();
  const auto q = ob.calculate_qparams<S8>({-128, 127});
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CHECK(std::isfinite(q.scale));
  CHECK(seconds < 60.0);  // generous for sanitizer builds; it was minutes before the cap
}
