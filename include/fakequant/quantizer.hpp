// SPDX-License-Identifier: MIT
// fakequant/quantizer.hpp: QScheme (the compile-time quantization scheme) and FakeQuantizer
// (a scheme plus its current scale and zero point(s)).
//
//   using W = fq::QScheme<fq::Int8, fq::Symmetric, fq::PerChannel<0>>;   // or a preset
//   fq::FakeQuantizer<W> q(out_features);      // channel count
//   q.set_qparams(scales, zero_points);        // e.g. from an observer
//   q.forward(w, w_q, &mask);                  // y = (clamp(round(x/s)+z) - z) * s
//   q.backward(dy, mask, dx);                  // dx = dy * mask (STE)
// Forward/backward formulas, rounding and clamp-gradient rules: core/fake_quantize.hpp.
#ifndef FQ_QUANTIZER_HPP_
#define FQ_QUANTIZER_HPP_

#include <cstdint>      // int32_t, int64_t
#include <type_traits>  // conditional, is_same
#include <utility>      // forward
#include <vector>       // vector

#include <fakequant/core/fake_quantize.hpp>
#include <fakequant/core/range.hpp>
#include <fakequant/policy/clamp_grad.hpp>
#include <fakequant/policy/granularity.hpp>
#include <fakequant/policy/mapping.hpp>
#include <fakequant/policy/zero_point.hpp>

namespace fq {

/// A compile-time quantization scheme. Change one knob with the with_* aliases:
/// `QScheme<Int4>::with_rounding<RoundHalfAway>`.
/// @tparam Range IntRange<Bits, Signed, Narrow> or RuntimeRange.
/// @tparam Mapping Affine or Symmetric. @tparam Granularity PerTensor or PerChannel<Axis>.
/// @tparam Rounding RoundHalfEven (default) | RoundHalfAway | RoundHalfUp | RoundFloor.
/// @tparam ScaleApply MulByInverse (default, PyTorch) | DivideByScale (ONNX).
/// @tparam ClampGrad MaskedSte (default) | PassThroughSte.
/// @tparam Overflow OverflowToQmin (default, PyTorch 1.13) | OverflowSaturate.
/// @tparam ZeroPoint IntegerZeroPoint (default) | FloatZeroPoint (x * f32(1/s) + z rounded
/// once, ATen's x86 kernels) | FloatZeroPointNoFma (rounded twice, ATen's scalar kernel).
template <class Range, class Mapping = Affine, class Granularity = PerTensor,
          class Rounding = RoundHalfEven, class ScaleApply = MulByInverse,
          class ClampGrad = MaskedSte, class Overflow = OverflowToQmin,
          class ZeroPoint = IntegerZeroPoint>
struct QScheme {
 private:
  // Each knob must be its own kind of policy. The checks are chained so that exactly one
  // fails (the first problem, in one sentence), and the member types below fall back to a
  // valid policy, so that code using the scheme adds no "is not a member" errors after it.
  template <bool Own, class T>
  static constexpr bool kMisplaced =
      !Own && (is_range<T>::value || is_mapping<T>::value || is_granularity<T>::value ||
               is_rounding<T>::value || is_scale_apply<T>::value || is_clamp_grad<T>::value ||
               is_overflow<T>::value || is_zero_point_policy<T>::value);
  static constexpr bool kOk0 = !(kMisplaced<is_range<Range>::value, Range> ||
                                 kMisplaced<is_mapping<Mapping>::value, Mapping> ||
                                 kMisplaced<is_granularity<Granularity>::value, Granularity> ||
                                 kMisplaced<is_rounding<Rounding>::value, Rounding> ||
                                 kMisplaced<is_scale_apply<ScaleApply>::value, ScaleApply> ||
                                 kMisplaced<is_clamp_grad<ClampGrad>::value, ClampGrad> ||
                                 kMisplaced<is_overflow<Overflow>::value, Overflow> ||
                                 kMisplaced<is_zero_point_policy<ZeroPoint>::value, ZeroPoint>);
  static constexpr bool kOk1 = kOk0 && is_range<Range>::value;
  static constexpr bool kOk2 = kOk1 && is_mapping<Mapping>::value;
  static constexpr bool kOk3 = kOk2 && is_granularity<Granularity>::value;
  static constexpr bool kOk4 = kOk3 && is_rounding<Rounding>::value;
  static constexpr bool kOk5 = kOk4 && is_scale_apply<ScaleApply>::value;
  static constexpr bool kOk6 = kOk5 && is_clamp_grad<ClampGrad>::value;
  static constexpr bool kOk7 = kOk6 && is_overflow<Overflow>::value;
  static constexpr bool kOk8 = kOk7 && is_zero_point_policy<ZeroPoint>::value;
  static_assert(kOk0,
                "QScheme: the template arguments are out of order; the order is QScheme<Range, "
                "Mapping, Granularity, Rounding, ScaleApply, ClampGrad, Overflow, ZeroPoint>, "
                "e.g. QScheme<fq::Int8, fq::Symmetric, fq::PerChannel<0>> (a later knob alone: "
                "the with_* aliases, e.g. QScheme<fq::Int8>::with_rounding<fq::RoundHalfAway>).");
  static_assert(!kOk0 || kOk1,
                "QScheme: Range must be an IntRange<Bits, Signed, Narrow> (e.g. fq::Int8) or "
                "fq::RuntimeRange.");
  static_assert(!kOk1 || kOk2, "QScheme: Mapping must be fq::Affine or fq::Symmetric.");
  static_assert(!kOk2 || kOk3,
                "QScheme: Granularity must be fq::PerTensor or fq::PerChannel<Axis>.");
  static_assert(!kOk3 || kOk4,
                "QScheme: Rounding must be RoundHalfEven, RoundHalfAway, RoundHalfUp or "
                "RoundFloor.");
  static_assert(!kOk4 || kOk5,
                "QScheme: ScaleApply must be fq::MulByInverse or fq::DivideByScale.");
  static_assert(!kOk5 || kOk6, "QScheme: ClampGrad must be fq::MaskedSte or fq::PassThroughSte.");
  static_assert(!kOk6 || kOk7,
                "QScheme: Overflow must be fq::OverflowToQmin or fq::OverflowSaturate.");
  static_assert(!kOk7 || kOk8,
                "QScheme: ZeroPoint must be fq::IntegerZeroPoint, fq::FloatZeroPoint or "
                "fq::FloatZeroPointNoFma.");
  template <bool Ok, class T, class Fallback>
  using valid_or = std::conditional_t<Ok, T, Fallback>;
  using range_t = valid_or<kOk1, Range, Int8>;
  using mapping_t = valid_or<kOk2, Mapping, Affine>;
  using granularity_t = valid_or<kOk3, Granularity, PerTensor>;
  using rounding_t = valid_or<kOk4, Rounding, RoundHalfEven>;
  using scale_apply_t = valid_or<kOk5, ScaleApply, MulByInverse>;
  using clamp_grad_t = valid_or<kOk6, ClampGrad, MaskedSte>;
  using overflow_t = valid_or<kOk7, Overflow, OverflowToQmin>;
  using zero_point_t = valid_or<kOk8, ZeroPoint, IntegerZeroPoint>;
  static_assert(!kOk8 || !(mapping_t::kSymmetric &&
                           std::is_floating_point<typename zero_point_t::type>::value),
                "QScheme: a Symmetric mapping fixes an integer zero point; use Affine for a "
                "float zero point.");

 public:
  using range = range_t;
  using mapping = mapping_t;
  using granularity = granularity_t;
  using clamp_grad = clamp_grad_t;
  using zero_point_policy = zero_point_t;
  using zero_point_type = typename zero_point_t::type;
  using numerics = Numerics<rounding_t, scale_apply_t, overflow_t, typename zero_point_t::add>;

  template <class R>
  using with_range =
      QScheme<R, Mapping, Granularity, Rounding, ScaleApply, ClampGrad, Overflow, ZeroPoint>;
  template <class M>
  using with_mapping =
      QScheme<Range, M, Granularity, Rounding, ScaleApply, ClampGrad, Overflow, ZeroPoint>;
  template <class G>
  using with_granularity =
      QScheme<Range, Mapping, G, Rounding, ScaleApply, ClampGrad, Overflow, ZeroPoint>;
  template <class R>
  using with_rounding =
      QScheme<Range, Mapping, Granularity, R, ScaleApply, ClampGrad, Overflow, ZeroPoint>;
  template <class S>
  using with_scale_apply =
      QScheme<Range, Mapping, Granularity, Rounding, S, ClampGrad, Overflow, ZeroPoint>;
  template <class C>
  using with_clamp_grad =
      QScheme<Range, Mapping, Granularity, Rounding, ScaleApply, C, Overflow, ZeroPoint>;
  template <class O>
  using with_overflow =
      QScheme<Range, Mapping, Granularity, Rounding, ScaleApply, ClampGrad, O, ZeroPoint>;
  template <class Z>
  using with_zero_point =
      QScheme<Range, Mapping, Granularity, Rounding, ScaleApply, ClampGrad, Overflow, Z>;
};

/// The zero point a Symmetric scheme uses on `range`: 0 if signed (quant_min < 0); for an
/// unsigned IntRange<Bits> 2^(Bits-1) (128 for uint8, as PyTorch's quint8); for a
/// RuntimeRange (quant_min + quant_max) // 2 (PyTorch's custom-range rule).
template <class Scheme>
constexpr std::int32_t symmetric_zero_point(const QuantRange& range) noexcept {
  using R = typename Scheme::range;
  if (range.quant_min < 0) return 0;
  if constexpr (R::kRuntime) {
    return static_cast<std::int32_t>((range.quant_min + range.quant_max) / 2);
  } else {
    return static_cast<std::int32_t>(std::int64_t{1} << (R::kBits - 1));
  }
}

/// A QScheme with its current quantization parameters: one (scale, zero point) pair per
/// tensor or per channel. Initial parameters are scale 1 and the scheme's default zero point.
template <class Scheme>
class FakeQuantizer {
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
  /// a placeholder, which convert refuses (convert/int8_params.hpp).
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

  /// y = fake_quant(x); the STE mask goes to `mask` if not null. y may be x.
  template <class X, class Y>
  void forward(X&& x, Y&& y, Mask* mask = nullptr, KernelPath path = KernelPath::kAuto) const {
    using N = typename Scheme::numerics;
    if constexpr (kPerChannel) {
      fake_quantize_per_channel<N>(std::forward<X>(x), std::forward<Y>(y), mask, scale_.data(),
                                   zero_point_.data(), channels(), kAxis, range_, path);
    } else {
      fake_quantize_per_tensor<N>(std::forward<X>(x), std::forward<Y>(y), mask, scale_[0],
                                  zero_point_[0], range_, path);
    }
  }

  /// dx = dy * mask (MaskedSte) or dy (PassThroughSte). dx may be dy.
  template <class DY, class DX>
  void backward(DY&& dy, const Mask& mask, DX&& dx, KernelPath path = KernelPath::kAuto) const {
    fake_quantize_backward<typename Scheme::clamp_grad>(std::forward<DY>(dy), mask,
                                                        std::forward<DX>(dx), path);
  }

 private:
  QuantRange range_;
  std::vector<float> scale_;
  std::vector<zero_point_type> zero_point_;
  bool has_qparams_ = false;
};

}  // namespace fq

#endif  // FQ_QUANTIZER_HPP_
