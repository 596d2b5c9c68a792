// SPDX-License-Identifier: MIT
// tests/testing/quantizers.hpp: quantizers for the testing-kit tests — a correct logarithmic
// one, a correct LSQ-style learnable one, and deliberately broken ones the kit must catch.
#ifndef FQ_TESTS_TESTING_QUANTIZERS_HPP_
#define FQ_TESTS_TESTING_QUANTIZERS_HPP_

#include <cmath>
#include <cstdint>
#include <vector>

#include <fakequant/quantizer/fake_quantizer.hpp>
#include <fakequant/scheme/presets.hpp>
#include <fakequant/testing/testing.hpp>

namespace fq_test {

using CView = fq::TensorView<const float>;
using View = fq::TensorView<float>;

/// Power-of-two levels: 0 and +-scale * 2^k for k in [kmin, 0]; nearest in the log domain
/// (ties of the mantissa at sqrt(2)/2 go up); NaN gives 0; mask = |x| <= scale.
class LogQuantizer {
 public:
  LogQuantizer(float scale, int kmin) : scale_(scale), kmin_(kmin) {}
  void forward(CView x, View y, fq::Mask* mask) const {
    fq::testing::elementwise_forward(x, y, mask, [&](float v, const std::int64_t*) {
      return fq::testing::Quantized{level(v), std::fabs(v) <= scale_};
    });
  }
  void backward(CView dy, const fq::Mask& mask, View dx) const {
    fq::testing::elementwise_backward(dy, mask, dx);
  }
  std::vector<double> levels() const {
    std::vector<double> lv{0.0};
    for (int k = kmin_; k <= 0; ++k) {
      lv.push_back(std::ldexp(double(scale_), k));
      lv.push_back(-std::ldexp(double(scale_), k));
    }
    return lv;
  }
  float level(float v) const {
    if (std::isnan(v)) return 0.0f;
    const float a = std::fmin(std::fabs(v) / scale_, 1.0f);
    int e;
    const float m = std::frexp(a, &e);  // a = m * 2^e, m in [0.5, 1)
    int k = m > 0.70710678f ? e : e - 1;
    if (a == 0.0f || k < kmin_ - 1) return 0.0f;
    if (k < kmin_) k = (a >= std::ldexp(0.5f, kmin_)) ? kmin_ : kmin_ - 1;
    const float out = k < kmin_ ? 0.0f : std::ldexp(scale_, k);
    return v < 0 ? -out : out;
  }

 private:
  float scale_;
  int kmin_;
};

/// LogQuantizer declaring that it does not round to nearest on its (uniform-looking) grid, so
/// the kit's default error bound is the bracketing one.
struct DeclaredLogQuantizer : LogQuantizer {
  using LogQuantizer::LogQuantizer;
  static constexpr bool kRoundsToNearest = false;
};

/// A user's own uint8 affine quantizer, written without fq's schemes: q = round(x / s) + z
/// clamped to [0, 255], y = (q - z) * s, mask = q inside the range. With `floor_bug` it rounds
/// down instead: every output is a level bracketing x, but up to a whole cell away.
class UserAffine {
 public:
  UserAffine(float s, std::int32_t z, bool floor_bug) : s_{s}, z_{z}, floor_bug_(floor_bug) {}
  void forward(CView x, View y, fq::Mask* mask) const {
    fq::testing::elementwise_forward(x, y, mask, [&](float v, const std::int64_t*) {
      const float t = v / s_[0];
      const float q = (floor_bug_ ? std::floor(t) : std::nearbyint(t)) + float(z_[0]);
      const float c = std::fmax(std::fmin(q, 255.0f), 0.0f);  // NaN: 255
      return fq::testing::Quantized{(c - float(z_[0])) * s_[0], q >= 0.0f && q <= 255.0f};
    });
  }
  void backward(CView dy, const fq::Mask& mask, View dx) const {
    fq::testing::elementwise_backward(dy, mask, dx);
  }
  const std::vector<float>& scale() const { return s_; }
  const std::vector<std::int32_t>& zero_point() const { return z_; }
  fq::QuantRange range() const { return {0, 255}; }

 private:
  std::vector<float> s_;
  std::vector<std::int32_t> z_;
  bool floor_bug_;
};

/// UserAffine with the floor rounding declared (a deliberate floor quantizer).
struct DeclaredFloor : UserAffine {
  DeclaredFloor(float s, std::int32_t z) : UserAffine(s, z, true) {}
  static constexpr bool kRoundsToNearest = false;
};

/// A FakeQuantizer whose backward is wrong: dx = 2 * dy * mask, or dy * !mask if `invert`.
template <class Scheme>
struct WrongGradient : fq::FakeQuantizer<Scheme> {
  using fq::FakeQuantizer<Scheme>::FakeQuantizer;
  bool invert = false;
  void backward(CView dy, const fq::Mask& mask, View dx) const {
    fq::testing::detail::for_each_index(
        dy.rank(), dy.shape(), [&](std::int64_t, const std::int64_t* index) {
          const bool bit = mask.test(index);
          *dx.at(index) =
              invert ? (bit ? 0.0f : *dy.at(index)) : (bit ? 2.0f * *dy.at(index) : 0.0f);
        });
  }
};

/// A FakeQuantizer that adds 0.3 * scale to every element whose row-major index is 5 mod 17.
struct OffGrid : fq::FakeQuantizer<fq::Uint8ActPerTensorAffine> {
  void forward(CView x, View y, fq::Mask* mask) const {
    fq::FakeQuantizer<fq::Uint8ActPerTensorAffine>::forward(x, y, mask);
    fq::testing::detail::for_each_index(y.rank(), y.shape(),
                                        [&](std::int64_t i, const std::int64_t* index) {
                                          if (i % 17 == 5) *y.at(index) += 0.3f * scale()[0];
                                        });
  }
};

/// A FakeQuantizer that quantizes 1.02 * x: on the grid and monotonic, but not idempotent.
struct NonIdempotent : fq::FakeQuantizer<fq::Int8WeightPerTensorSymmetric> {
  void forward(CView x, View y, fq::Mask* mask) const {
    std::vector<float> xs(static_cast<std::size_t>(x.numel()));
    fq::testing::detail::for_each_index(x.rank(), x.shape(),
                                        [&](std::int64_t i, const std::int64_t* index) {
                                          xs[static_cast<std::size_t>(i)] = 1.02f * *x.at(index);
                                        });
    std::vector<std::int64_t> shape(x.shape().begin(), x.shape().begin() + x.rank());
    std::vector<std::int64_t> strides(shape.size(), 1);
    for (std::size_t d = shape.size(); d-- > 1;) strides[d - 1] = strides[d] * shape[d];
    fq::FakeQuantizer<fq::Int8WeightPerTensorSymmetric>::forward(
        CView(xs.data(), x.rank(), shape.data(), strides.data()), y, mask);
  }
};

/// Per-channel (axis 0) int8 symmetric with power-of-two scales, whose exact ties round up or
/// down by the sign of the same position in the next channel: every property holds except
/// per-channel independence.
struct LeakyChannels : fq::FakeQuantizer<fq::Int8WeightPerChannelSymmetric> {
  using Base = fq::FakeQuantizer<fq::Int8WeightPerChannelSymmetric>;
  explicit LeakyChannels(std::int64_t c) : Base(c) {}
  void forward(CView x, View y, fq::Mask* mask) const {
    Base::forward(x, y, mask);
    const std::int64_t channels = x.size(0), inner = x.numel() / channels;
    fq::testing::detail::for_each_index(
        x.rank(), x.shape(), [&](std::int64_t i, const std::int64_t* index) {
          const std::int64_t c = i / inner;
          const double s = scale()[static_cast<std::size_t>(c)];
          const double v = double(*x.at(index)) / s;
          if (v - std::floor(v) != 0.5 || v < -128 || v > 127) return;
          std::int64_t other[fq::kMaxRank];
          for (int d = 0; d < x.rank(); ++d) other[d] = index[d];
          other[0] = (c + 1) % channels;
          const double level = *x.at(other) < 0 ? std::floor(v) : std::ceil(v);
          *y.at(index) = static_cast<float>(level * s);
        });
  }
};

/// An LSQ-style learnable per-tensor scale: y = clamp(round(x/s), qn, qp) * s, masked STE for
/// x, ds from the LSQ paper (or, if `wrong_ds`, without its -x/s term).
class LearnableScale {
 public:
  LearnableScale(float s, std::int64_t qn, std::int64_t qp) : s_(s), qn_(qn), qp_(qp) {}
  bool wrong_ds = false;
  void forward(CView x, View y, fq::Mask* mask) const {
    fq::testing::elementwise_forward(x, y, mask, [&](float v, const std::int64_t*) {
      const float q = std::nearbyint(v / s_);
      const float c = std::fmin(std::fmax(q, float(qn_)), float(qp_));
      return fq::testing::Quantized{c * s_, q >= float(qn_) && q <= float(qp_)};
    });
  }
  void backward(CView x, CView dy, const fq::Mask& mask, View dx) {
    fq::testing::elementwise_backward(dy, mask, dx);
    double ds = 0;
    fq::testing::detail::for_each_index(
        x.rank(), x.shape(), [&](std::int64_t, const std::int64_t* index) {
          const float vf = *x.at(index) * (1.0f / s_);
          const double v = double(vf);
          const double d = v < double(qn_)   ? double(qn_)
                           : v > double(qp_) ? double(qp_)
                                             : double(std::nearbyint(vf)) - (wrong_ds ? 0.0 : v);
          ds += double(*dy.at(index)) * d;
        });
    grad_ += static_cast<float>(ds);
  }
  template <class F>
  void visit_parameters(F&& f) {
    f("scale", View(&s_, {1}), View(&grad_, {1}));
  }
  fq::QuantRange range() const { return {qn_, qp_}; }
  float scale_value() const { return s_; }

 private:
  float s_;
  float grad_ = 0.0f;
  std::int64_t qn_, qp_;
};

/// A FakeQuantizer that returns NaN for NaN inputs (instead of fq's level quant_min).
struct NaNOut : fq::FakeQuantizer<fq::Uint8ActPerTensorAffine> {
  void forward(CView x, View y, fq::Mask* mask) const {
    fq::FakeQuantizer<fq::Uint8ActPerTensorAffine>::forward(x, y, mask);
    fq::testing::detail::for_each_index(x.rank(), x.shape(),
                                        [&](std::int64_t, const std::int64_t* index) {
                                          if (std::isnan(*x.at(index))) *y.at(index) = *x.at(index);
                                        });
  }
};

/// A FakeQuantizer that rejects non-finite input through fq's error mechanism.
struct RejectsNaN : fq::FakeQuantizer<fq::Uint8ActPerTensorAffine> {
  void forward(CView x, View y, fq::Mask* mask) const {
    fq::testing::detail::for_each_index(
        x.rank(), x.shape(), [&](std::int64_t, const std::int64_t* index) {
          FQ_CHECK(std::isfinite(*x.at(index)), fq::ErrorCode::kNonFiniteInput,
                   "RejectsNaN: non-finite input");
        });
    fq::FakeQuantizer<fq::Uint8ActPerTensorAffine>::forward(x, y, mask);
  }
};

/// PACT with one learnable alpha per channel on axis 0: y = quantize(clamp(x, 0, alpha_c)) with
/// 2^bits - 1 steps; dx = dy on 0 < x < alpha, d alpha = sum dy over x >= alpha.
class Pact {
 public:
  Pact(std::vector<float> alpha, int bits) : alpha_(std::move(alpha)), grad_(alpha_.size()) {
    n_ = static_cast<float>((1 << bits) - 1);
  }
  void forward(CView x, View y, fq::Mask* mask) const {
    fq::testing::elementwise_forward(x, y, mask, [&](float v, const std::int64_t* index) {
      const float a = alpha_[static_cast<std::size_t>(index[0])], s = a / n_;
      const float c = std::isnan(v) ? 0.0f : std::fmin(std::fmax(v, 0.0f), a);
      return fq::testing::Quantized{std::nearbyint(c / s) * s, v > 0.0f && v < a};
    });
  }
  void backward(CView x, CView dy, const fq::Mask& mask, View dx) {
    fq::testing::elementwise_backward(dy, mask, dx);
    fq::testing::detail::for_each_index(x.rank(), x.shape(),
                                        [&](std::int64_t, const std::int64_t* index) {
                                          const auto c = static_cast<std::size_t>(index[0]);
                                          if (*x.at(index) >= alpha_[c]) grad_[c] += *dy.at(index);
                                        });
  }
  template <class F>
  void visit_parameters(F&& f) {
    const auto n = static_cast<std::int64_t>(alpha_.size());
    f("alpha", View(alpha_.data(), {n}), View(grad_.data(), {n}));
  }
  static constexpr bool kPerChannel = true;
  static constexpr int kAxis = 0;
  std::vector<double> levels(std::size_t c) const {
    std::vector<double> lv;
    for (int k = 0; k <= static_cast<int>(n_); ++k)
      lv.push_back(double(static_cast<float>(k) * (alpha_[c] / n_)));
    return lv;
  }
  std::size_t channels() const { return alpha_.size(); }

 private:
  std::vector<float> alpha_, grad_;
  float n_;
};

/// A FakeQuantizer whose output is negated: decreasing in x.
struct Decreasing : fq::FakeQuantizer<fq::Int8WeightPerTensorSymmetric> {
  void forward(CView x, View y, fq::Mask* mask) const {
    fq::FakeQuantizer<fq::Int8WeightPerTensorSymmetric>::forward(x, y, mask);
    fq::testing::detail::for_each_index(
        y.rank(), y.shape(),
        [&](std::int64_t, const std::int64_t* index) { *y.at(index) *= -1.0f; });
  }
};

}  // namespace fq_test

#endif  // FQ_TESTS_TESTING_QUANTIZERS_HPP_
