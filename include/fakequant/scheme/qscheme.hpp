// SPDX-License-Identifier: MIT
// fakequant/scheme/qscheme.hpp: QScheme, the compile-time quantization scheme (a range, a
// mapping, a granularity and the numerics knobs), and the zero point a Symmetric scheme fixes.
// Everything observers and kernels need to know about a scheme, without the quantizer engine.
//
//   using W = fq::QScheme<fq::Int8, fq::Symmetric, fq::PerChannel<0>>;   // or a preset
//   using A = fq::QScheme<fq::UInt8>::with_rounding<fq::RoundHalfAway>;  // one knob changed
#ifndef FQ_SCHEME_QSCHEME_HPP_
#define FQ_SCHEME_QSCHEME_HPP_

#include <cstdint>      // int32_t, int64_t
#include <type_traits>  // conditional, is_floating_point

#include <fakequant/policy/clamp_grad.hpp>
#include <fakequant/policy/granularity.hpp>
#include <fakequant/policy/mapping.hpp>
#include <fakequant/policy/zero_point.hpp>
#include <fakequant/scheme/numerics.hpp>
#include <fakequant/scheme/range.hpp>

namespace fq {

/// A compile-time quantization scheme. Change one knob with the with_* aliases:
/// `QScheme<Int4>::with_rounding<RoundHalfAway>`.
/// @tparam Range IntRange<Bits, Signed, Narrow> or RuntimeRange.
/// @tparam Mapping Affine or Symmetric. @tparam Granularity PerTensor, PerChannel<Axis>, or
/// PerGroup<G, Axis, Tail> / PerToken (for fq::GroupFakeQuantizer).
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
  static_assert(
      !kOk2 || kOk3,
      "QScheme: Granularity must be fq::PerTensor, fq::PerChannel<Axis>, fq::PerGroup<G> or "
      "fq::PerToken.");
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

}  // namespace fq

#endif  // FQ_SCHEME_QSCHEME_HPP_
