// SPDX-License-Identifier: MIT
// fakequant/quantizer/fake_quantizer.hpp: FakeQuantizer, a QScheme (scheme/qscheme.hpp) plus
// its current scale and zero point(s).
//
//   using W = fq::QScheme<fq::Int8, fq::Symmetric, fq::PerChannel<0>>;   // or a preset
//   fq::FakeQuantizer<W> q(out_features);      // channel count
//   q.set_qparams(scales, zero_points);        // e.g. from an observer
//   q.forward(w, w_q, &mask);                  // y = (clamp(round(x/s)+z) - z) * s
//   q.backward(dy, mask, dx);                  // dx = dy * mask (STE)
// Forward/backward formulas, rounding and clamp-gradient rules: core/fake_quantize.hpp.
// forward/backward are member templates on Arch (fq::DefaultArch, the kernels' instruction
// set; simd/arch.hpp), so the class is one type in every translation unit while each TU's
// flags give their own instantiations of the kernels.
#ifndef FQ_QUANTIZER_FAKE_QUANTIZER_HPP_
#define FQ_QUANTIZER_FAKE_QUANTIZER_HPP_

#include <cstdint>      // int32_t, int64_t
#include <type_traits>  // conditional, is_integral, is_same
#include <utility>      // forward
#include <vector>       // vector

#include <fakequant/base/state.hpp>
#include <fakequant/kernels/fake_quantize.hpp>
#include <fakequant/scheme/qscheme.hpp>

namespace fq {

/// A QScheme with its current quantization parameters: one (scale, zero point) pair per
/// tensor or per channel. Initial parameters are scale 1 and the scheme's default zero point.
template <class Scheme>
class FakeQuantizer {
  static_assert(!Scheme::granularity::kPerGroup,
                "FakeQuantizer: a PerGroup or PerToken scheme needs fq::GroupFakeQuantizer "
                "(quantizer/group_quantizer.hpp).");

 public:
  using scheme = Scheme;
  using zero_point_type = typename Scheme::zero_point_type;
  static constexpr bool kPerChannel = Scheme::granularity::kPerChannel;
  static constexpr int kAxis = Scheme::granularity::kAxis;

  /// Per-tensor scheme with a compile-time range.
  FakeQuantizer() : FakeQuantizer(1, default_range()) {
    static_assert(!Scheme::range::kRuntime,
                  "FakeQuantizer: a RuntimeRange scheme needs its QuantRange at construction.");
    static_assert(!kPerChannel,
                  "FakeQuantizer: a PerChannel scheme needs the channel count at construction.");
  }
  /// Per-tensor scheme with a run-time range.
  explicit FakeQuantizer(QuantRange range) : FakeQuantizer(1, range) {
    static_assert(!kPerChannel,
                  "FakeQuantizer: a PerChannel scheme needs the channel count at construction.");
  }
  /// Per-channel scheme with `channels` channels (range from the scheme, or given).
  explicit FakeQuantizer(std::int64_t channels, QuantRange range = default_range())
      : range_(range) {
    check_range(range_, "FakeQuantizer");
    if constexpr (!Scheme::range::kRuntime)
      FQ_CHECK(range_ == Scheme::range::value(), ErrorCode::kInvalidRange,
               "FakeQuantizer: the range must equal the scheme's compile-time IntRange");
    FQ_CHECK(channels >= 1, ErrorCode::kInvalidArgument,
             detail::msg("FakeQuantizer: channel count must be >= 1, got ", channels));
    FQ_CHECK(kPerChannel || channels == 1, ErrorCode::kInvalidArgument,
             "FakeQuantizer: a PerTensor scheme has exactly one channel");
    scale_.assign(static_cast<std::size_t>(channels), 1.0f);
    zero_point_.assign(static_cast<std::size_t>(channels), default_zero_point());
  }

  /// The scheme's range: IntRange's value, or a placeholder for RuntimeRange.
  static constexpr QuantRange default_range() noexcept {
    if constexpr (Scheme::range::kRuntime)
      return QuantRange{0, 255};
    else
      return Scheme::range::value();
  }

  QuantRange range() const noexcept { return range_; }
  std::int64_t channels() const noexcept { return static_cast<std::int64_t>(scale_.size()); }
  const std::vector<float>& scale() const noexcept { return scale_; }
  const std::vector<zero_point_type>& zero_point() const noexcept { return zero_point_; }
  /// True once set_qparams succeeded (from an observer or explicitly); the initial scale 1 is
  /// a placeholder, which convert refuses (int8/params.hpp).
  bool has_qparams() const noexcept { return has_qparams_; }
  /// The zero point a Symmetric scheme requires (0 for affine schemes' initial value).
  zero_point_type default_zero_point() const noexcept {
    if constexpr (Scheme::mapping::kSymmetric)
      return symmetric_zero_point<Scheme>(range_);
    else
      return zero_point_type(range_.quant_min > 0 ? range_.quant_min
                                                  : (range_.quant_max < 0 ? range_.quant_max : 0));
  }

  /// Sets a per-tensor scale and zero point (validated; Symmetric requires its fixed z).
  void set_qparams(float scale, zero_point_type zero_point) {
    FQ_CHECK(channels() == 1, ErrorCode::kParamCountMismatch,
             detail::msg("FakeQuantizer::set_qparams: 1 pair for ", channels(), " channels"));
    set_qparams(&scale, &zero_point, 1);
  }
  /// Sets per-channel scales and zero points (`count` must equal channels()).
  void set_qparams(const float* scale, const zero_point_type* zero_point, std::int64_t count) {
    constexpr const char* kWhere = "FakeQuantizer::set_qparams";
    FQ_CHECK(count == channels(), ErrorCode::kParamCountMismatch,
             detail::msg(kWhere, ": ", count, " pairs for ", channels(), " channels"));
    for (std::int64_t c = 0; c < count; ++c) {
      detail::check_scale(scale[c], kWhere);
      detail::check_zero_point(zero_point[c], range_, kWhere);
      if constexpr (Scheme::mapping::kSymmetric)
        FQ_CHECK(zero_point[c] == default_zero_point(), ErrorCode::kInvalidZeroPoint,
                 detail::msg(kWhere, ": a symmetric scheme needs zero point ", default_zero_point(),
                             ", got ", zero_point[c]));
    }
    scale_.assign(scale, scale + count);
    zero_point_.assign(zero_point, zero_point + count);
    has_qparams_ = true;
  }
  void set_qparams(const std::vector<float>& scale,
                   const std::vector<zero_point_type>& zero_point) {
    FQ_CHECK(scale.size() == zero_point.size(), ErrorCode::kParamCountMismatch,
             "FakeQuantizer::set_qparams: scale and zero-point vectors differ in length");
    set_qparams(scale.data(), zero_point.data(), static_cast<std::int64_t>(scale.size()));
  }

  /// The checkpoint state (base/state.hpp): the qparams (their count is the channel count) and
  /// whether they were set; the range must match.
  template <class V>
  void visit_state(V& v) {
    v.kind("fake_quantizer");
    v.config("per_channel", kPerChannel);
    v.config("quant_min", range_.quant_min);
    v.config("quant_max", range_.quant_max);
    const StateSize n = kPerChannel ? StateSize{1} : StateSize{1, 1, nullptr};
    v.state_vector("scale", scale_, state_scale(), n);
    StateCheck z = state_finite();  // a float zero point
    if constexpr (Scheme::mapping::kSymmetric)
      z = state_in(static_cast<double>(default_zero_point()),
                   static_cast<double>(default_zero_point()));
    else if constexpr (std::is_integral<zero_point_type>::value)
      z = state_in(static_cast<double>(range_.quant_min), static_cast<double>(range_.quant_max));
    v.state_vector("zero_point", zero_point_, z, StateSize{n.min, n.max, "scale"});
    v.state("has_qparams", has_qparams_);
  }

  /// y = fake_quant(x); the STE mask goes to `mask` if not null. y may be x.
  /// @param path Isa::kAuto or Isa::kScalar (simd/arch.hpp).
  template <class Arch = DefaultArch, class X, class Y>
  void forward(X&& x, Y&& y, Mask* mask = nullptr, Isa path = Isa::kAuto) const {
    using N = typename Scheme::numerics;
    if constexpr (kPerChannel) {
      fake_quantize_per_channel<N, Arch>(std::forward<X>(x), std::forward<Y>(y), mask,
                                         scale_.data(), zero_point_.data(), channels(), kAxis,
                                         range_, path);
    } else {
      fake_quantize_per_tensor<N, Arch>(std::forward<X>(x), std::forward<Y>(y), mask, scale_[0],
                                        zero_point_[0], range_, path);
    }
  }

  /// dx = dy * mask (MaskedSte) or dy (PassThroughSte). dx may be dy.
  template <class Arch = DefaultArch, class DY, class DX>
  void backward(DY&& dy, const Mask& mask, DX&& dx, Isa path = Isa::kAuto) const {
    fake_quantize_backward<typename Scheme::clamp_grad, Arch>(std::forward<DY>(dy), mask,
                                                              std::forward<DX>(dx), path);
  }

 private:
  QuantRange range_;
  std::vector<float> scale_;
  std::vector<zero_point_type> zero_point_;
  bool has_qparams_ = false;
};

}  // namespace fq

#endif  // FQ_QUANTIZER_FAKE_QUANTIZER_HPP_
