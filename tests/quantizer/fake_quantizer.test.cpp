// SPDX-License-Identifier: MIT
// Property tests of FakeQuantizer for every policy combination and bit width: outputs on the
// grid, idempotence, error bound, monotonicity, mask <=> in range, per-channel independence.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include <fakequant/quantizer/fake_quantizer.hpp>
#include <fakequant/scheme/presets.hpp>

#include "catch.hpp"
#include "test_util.hpp"

namespace {

using fq::TensorView;

// The rounding a scheme uses, in double (for the independent in-range check).
template <class R>
double round_d(double v) {
  if (std::is_same<R, fq::RoundHalfEven>::value) return std::nearbyint(v);
  if (std::is_same<R, fq::RoundHalfAway>::value) return std::round(v);
  if (std::is_same<R, fq::RoundHalfUp>::value) return std::floor(v + 0.5);
  return std::floor(v);
}
template <class Scheme>
using rounding_of = typename Scheme::numerics::rounding;

template <class Scheme>
fq::FakeQuantizer<Scheme> make_quantizer(std::int64_t channels, std::mt19937& rng) {
  auto q = Scheme::granularity::kPerChannel ? fq::FakeQuantizer<Scheme>(channels)
                                            : fq::FakeQuantizer<Scheme>(std::int64_t{1});
  std::uniform_real_distribution<float> sd(0.01f, 0.2f);
  const auto r = q.range();
  std::uniform_int_distribution<std::int64_t> zd(r.quant_min, r.quant_max);
  std::vector<float> s(static_cast<std::size_t>(q.channels()));
  std::vector<std::int32_t> z(s.size());
  for (std::size_t c = 0; c < s.size(); ++c) {
    s[c] = sd(rng);
    z[c] =
        Scheme::mapping::kSymmetric ? q.default_zero_point() : static_cast<std::int32_t>(zd(rng));
  }
  q.set_qparams(s, z);
  return q;
}

}  // namespace

TEMPLATE_TEST_CASE(
    "quantizer properties hold for every scheme", "[policy][fake_quant]",
    fq::Int8WeightPerTensorSymmetric, fq::Int8WeightPerChannelSymmetric,
    fq::Int8WeightPerChannelSymmetricNarrow, fq::Int4WeightPerChannelSymmetric,
    fq::Uint8ActPerTensorAffine, fq::Uint4ActPerTensorAffine, fq::Int8ActPerTensorAffine,
    fq::Uint8ActPerTensorAffineOnnx, (fq::QScheme<fq::Int2, fq::Affine, fq::PerChannel<1>>),
    (fq::QScheme<fq::IntRange<3, false>, fq::Symmetric>),
    (fq::QScheme<fq::Int16, fq::Affine, fq::PerChannel<-1>>), (fq::QScheme<fq::UInt16, fq::Affine>),
    (fq::QScheme<fq::IntRange<6, true, true>, fq::Symmetric, fq::PerChannel<1>>),
    (fq::QScheme<fq::Int8, fq::Affine, fq::PerTensor, fq::RoundHalfAway>),
    (fq::QScheme<fq::UInt8, fq::Affine, fq::PerChannel<0>, fq::RoundHalfUp>),
    (fq::QScheme<fq::Int4, fq::Symmetric, fq::PerTensor, fq::RoundFloor, fq::DivideByScale>)) {
  using Scheme = TestType;
  using R = rounding_of<Scheme>;
  constexpr bool kNearest = !std::is_same<R, fq::RoundFloor>::value;
  std::mt19937 rng(42);
  const std::int64_t rows = 6, cols = 40;
  const int axis =
      Scheme::granularity::kAxis < 0 ? Scheme::granularity::kAxis + 2 : Scheme::granularity::kAxis;
  const std::int64_t C = axis == 0 ? rows : cols;
  auto q = make_quantizer<Scheme>(C, rng);
  const auto r = q.range();
  std::vector<float> x(static_cast<std::size_t>(rows * cols));
  std::normal_distribution<float> g(0.0f, 1.0f);
  const auto chan = [&](std::int64_t i) {
    return static_cast<std::size_t>(
        Scheme::granularity::kPerChannel ? (axis == 0 ? i / cols : i % cols) : 0);
  };
  for (std::int64_t i = 0; i < rows * cols; ++i) {
    const std::size_t c = chan(i);
    const float s = q.scale()[c];
    const auto z = q.zero_point()[c];
    // Spread over 1.4x the representable range, kept away from rounding boundaries.
    const double lo = (double(r.quant_min) - z) * s, hi = (double(r.quant_max) - z) * s;
    double v = (lo + hi) / 2 + g(rng) * (hi - lo) * 0.35;
    const double frac = v / s - std::floor(v / s);
    if (std::abs(frac - 0.5) < 0.01 || frac < 0.01 || frac > 0.99) v += 0.1 * s;
    x[static_cast<std::size_t>(i)] = static_cast<float>(v);
  }
  std::vector<float> y(x.size()), y2(x.size());
  fq::Mask m;
  q.forward(TensorView<const float>(x.data(), {rows, cols}),
            TensorView<float>(y.data(), {rows, cols}), &m);
  q.forward(TensorView<const float>(y.data(), {rows, cols}),
            TensorView<float>(y2.data(), {rows, cols}));
  for (std::int64_t i = 0; i < rows * cols; ++i) {
    const auto iu = static_cast<std::size_t>(i);
    const std::size_t c = chan(i);
    const float s = q.scale()[c];
    const auto z = q.zero_point()[c];
    INFO("element " << i << " x " << x[iu] << " y " << y[iu] << " s " << s << " z " << z);
    // On the grid: y = (k - z) * s for an integer level k in range.
    const double k = std::nearbyint(double(y[iu]) / s) + z;
    REQUIRE(k >= double(r.quant_min));
    REQUIRE(k <= double(r.quant_max));
    REQUIRE(y[iu] == static_cast<float>((k - z) * double(s)));
    // Idempotent (for round-to-nearest: floor may drop a level at an inexact product).
    if (kNearest) REQUIRE(fq_test::bits_of(y2[iu]) == fq_test::bits_of(y[iu]));
    // The mask is set exactly when the rounded level is in range.
    const double level = round_d<R>(double(x[iu]) / s) + z;
    const bool in = level >= double(r.quant_min) && level <= double(r.quant_max);
    REQUIRE(m.test_linear(i) == in);
    // Inside the range the error is at most half a step (a full step for floor).
    if (in)
      REQUIRE(std::abs(double(y[iu]) - double(x[iu])) <= (kNearest ? 0.5 : 1.0) * s * (1 + 1e-5));
  }
  // Monotone: sorted inputs give sorted outputs, channel by channel.
  std::vector<float> xs(x), ys(x.size());
  if (!Scheme::granularity::kPerChannel) {
    std::sort(xs.begin(), xs.end());
    q.forward(TensorView<const float>(xs.data(), {rows, cols}),
              TensorView<float>(ys.data(), {rows, cols}));
    REQUIRE(std::is_sorted(ys.begin(), ys.end()));
  } else {
    // Per-channel independence: changing channel 0's data and scale leaves the others alone.
    std::vector<float> s = q.scale();
    std::vector<std::int32_t> z = q.zero_point();
    s[0] *= 3.0f;
    auto q2 = q;
    q2.set_qparams(s, z);
    for (std::int64_t i = 0; i < rows * cols; ++i)
      if (chan(i) == 0) xs[static_cast<std::size_t>(i)] *= -7.0f;
    q2.forward(TensorView<const float>(xs.data(), {rows, cols}),
               TensorView<float>(ys.data(), {rows, cols}));
    for (std::int64_t i = 0; i < rows * cols; ++i)
      if (chan(i) != 0)
        REQUIRE(fq_test::bits_of(ys[static_cast<std::size_t>(i)]) ==
                fq_test::bits_of(y[static_cast<std::size_t>(i)]));
  }
}

TEST_CASE("FakeQuantizer validates its parameters", "[policy][errors]") {
  fq::FakeQuantizer<fq::Int8WeightPerChannelSymmetric> w(4);
  CHECK(w.channels() == 4);
  CHECK(w.zero_point() == std::vector<std::int32_t>(4, 0));
  const std::vector<float> s{0.1f, 0.2f, 0.3f};
  const std::vector<std::int32_t> z{0, 0, 0};
  CHECK_THROWS_AS(w.set_qparams(s, z), fq::Error);  // 3 pairs for 4 channels
  const std::vector<float> s4{0.1f, 0.2f, 0.3f, 0.4f};
  CHECK_THROWS_AS(w.set_qparams(s4, {0, 0, 1, 0}), fq::Error);  // symmetric needs z = 0
  CHECK_NOTHROW(w.set_qparams(s4, {0, 0, 0, 0}));
  fq::FakeQuantizer<fq::QScheme<fq::UInt8, fq::Symmetric>> u;
  CHECK(u.zero_point()[0] == 128);  // PyTorch's quint8 symmetric zero point
  fq::FakeQuantizer<fq::QScheme<fq::RuntimeRange, fq::Symmetric>> rr(fq::QuantRange{0, 15});
  CHECK(rr.zero_point()[0] == 7);  // (quant_min + quant_max) // 2 for a custom range
  fq::FakeQuantizer<fq::Uint8ActPerTensorAffine> a;
  CHECK_THROWS_AS(a.set_qparams(0.0f, 0), fq::Error);
  CHECK_THROWS_AS(a.set_qparams(0.1f, 256), fq::Error);
  CHECK_THROWS_AS((fq::FakeQuantizer<fq::Uint8ActPerTensorAffine>(fq::QuantRange{0, 127})),
                  fq::Error);
  CHECK_THROWS_AS(fq::FakeQuantizer<fq::Int8WeightPerChannelSymmetric>(0), fq::Error);
  fq::FakeQuantizer<fq::RuntimeActPerTensorAffine> fb(
      fq::torch_quant_range(fq::TorchDtype::kQUInt8, true));
  CHECK(fb.range() == fq::QuantRange{0, 127});
}

TEST_CASE("PassThroughSte schemes pass the gradient through the clamp", "[policy][fake_quant]") {
  fq::FakeQuantizer<fq::Uint8ActPerTensorAffine::with_clamp_grad<fq::PassThroughSte>> q;
  q.set_qparams(0.1f, 0);
  std::vector<float> x{-5.f, 1.f, 100.f}, y(3), dy{1.f, 2.f, 3.f}, dx(3);
  fq::Mask m;
  q.forward(TensorView<const float>(x.data(), {3}), TensorView<float>(y.data(), {3}), &m);
  CHECK(m.count() == 1);
  q.backward(TensorView<const float>(dy.data(), {3}), m, TensorView<float>(dx.data(), {3}));
  CHECK(dx == dy);
}
