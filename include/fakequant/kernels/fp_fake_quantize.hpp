// SPDX-License-Identifier: MIT
// fakequant/kernels/fp_fake_quantize.hpp: fake quantization to a small floating-point element
// format F (format/minifloat.hpp: FP8 E4M3 / E5M2, FP6 E2M3 / E3M2, FP4 E2M1) with a float
// scale per tensor or per channel — the FP8 training recipes' cast — and the current-scaling
// helpers that compute that scale from the tensor (amax).
//
// Forward, per element, with the scale s of its tensor or channel:
//     v    = x / s                        a float division, as TorchAO's
//                                         _quantize_affine_float8 (tensor_fp32 / scale)
//     y    = round_to_format<F, O>(v) * s  round to nearest even on F's grid, subnormals
//                                         included; overflow per O (policy/fp_overflow.hpp):
//                                         FpSaturate gives +-max (TorchAO clamps to +-max
//                                         before its cast: the same values), FpNoSaturate
//                                         gives +-Inf (E5M2) or NaN (E4M3)
//     mask = |v| <= F::kMax               the STE passes the gradient inside the format's
//                                         range (TorchAO: the gradient of its clamp); 0 for
//                                         NaN and +-Inf
// NaN x gives NaN y (quieted, sign and payload kept); +-Inf gives +-max * s (FpSaturate).
// Backward: fake_quantize_backward<MaskedSte> (kernels/fake_quantize.hpp): dx = dy * mask.
// When s is a power of two whose reciprocal is a float, the SIMD kernel multiplies by that
// exact reciprocal instead of dividing: x * 2^-k and x / 2^k are the same real number,
// rounded once, so the bits do not change (the scalar reference always divides).
//
// Current scaling (TorchAO's Float8FakeQuantizer / _choose_scale_float8, and the
// torchao.float8 training recipe): s = max(amax, 1e-12) / F::kMax, with amax = max |x| over
// the tensor or the channel. The floor 1e-12 is torchao.float8's EPS (amax_to_scale); the QAT
// fake quantizer has none by default and gives s = 0 and NaN outputs (0 / 0) for an all-zero
// tensor. NaN or Inf in x is refused there (ErrorCode::kNonFiniteInput), as fq's observers
// do: TorchAO's amax would turn every output of the tensor into NaN (or 0).
//
// Tensors: float, contiguous row-major x and y of one shape; y may be x itself (in place).
// The mask bit i is element i (row-major). Scales must be finite and > 0
// (ErrorCode::kInvalidScale; NaN is named). An empty tensor is a no-op.
// Arch and the Isa path as kernels/fake_quantize.hpp (simd/arch.hpp).
#ifndef FQ_KERNELS_FP_FAKE_QUANTIZE_HPP_
#define FQ_KERNELS_FP_FAKE_QUANTIZE_HPP_

#include <cmath>        // isfinite, isnan
#include <cstdint>      // int64_t, uint32_t, uint64_t
#include <type_traits>  // is_same
#include <utility>      // forward
#include <vector>       // vector

#include <fakequant/base/config.hpp>
#include <fakequant/base/error.hpp>
#include <fakequant/core/bit_writer.hpp>
#include <fakequant/core/checks.hpp>
#include <fakequant/core/group_layout.hpp>
#include <fakequant/core/mask.hpp>
#include <fakequant/core/run_plan.hpp>
#include <fakequant/core/tensor_view.hpp>
#include <fakequant/format/minifloat.hpp>
#include <fakequant/kernels/fake_quantize.hpp>
#include <fakequant/policy/fp_overflow.hpp>
#include <fakequant/simd/arch.hpp>
#include <fakequant/simd/fp_fake_quantize_simd.hpp>

namespace fq {

/// The amax floor of current scaling (torchao.float8's EPS): an all-zero tensor or channel
/// gets the scale 1e-12 / F::kMax instead of 0.
inline constexpr float kFpAmaxFloor = 1e-12f;

/// Current scaling: the scale of a tensor or channel whose largest |x| is amax (>= 0, finite).
template <class F>
inline float fp_scale_from_amax(float amax) noexcept {
  static_assert(is_float_format<F>::value, "fp_scale_from_amax: F must be an fq::FloatFormat.");
  return (amax > kFpAmaxFloor ? amax : kFpAmaxFloor) / F::kMax;
}

namespace detail {

template <class F, class O>
constexpr void static_check_fp() {
  static_assert(is_float_format<F>::value,
                "fp_fake_quantize: F must be an fq::FloatFormat (fq::FloatE4M3, FloatE5M2, "
                "FloatE2M3, FloatE3M2, FloatE2M1).");
  static_assert(is_fp_overflow<O>::value,
                "fp_fake_quantize: O must be fq::FpSaturate or fq::FpNoSaturate.");
  static_assert(O::kSaturate || F::kHasNaN,
                "fp_fake_quantize: a format without Inf and NaN (FP6, FP4) can only saturate "
                "(fq::FpSaturate).");
}

template <class T>
constexpr void static_check_float_only() {
  static_assert(std::is_same<T, float>::value,
                "fp_fake_quantize: the floating-point formats take float tensors.");
}

/// A format scale must be finite and > 0; NaN is named as such.
inline void check_fp_scale(float s, const char* where, std::int64_t channel = -1) {
  FQ_CHECK(!std::isnan(s), ErrorCode::kInvalidScale,
           channel < 0 ? msg(where, ": the scale is NaN")
                       : msg(where, ": the scale of channel ", channel, " is NaN"));
  FQ_CHECK(std::isfinite(s) && s > 0.0f, ErrorCode::kInvalidScale,
           channel < 0 ? msg(where, ": the scale must be finite and > 0, got ", s)
                       : msg(where, ": the scale of channel ", channel,
                             " must be finite and > 0, got ", s));
}

/// The scalar reference of one element (file comment); `in` receives the mask bit.
template <class F, class O>
FQ_INLINE float fp_fake_quant_element(float x, float s, bool& in) noexcept {
  const float v = x / s;
  in = in_format_range<F>(v);
  return round_to_format<F, O>(v) * s;
}

/// True, with m = 1/s exactly, if s is a power of two whose reciprocal is a float (a normal
/// s: exponent field 1..254, mantissa 0, sign +).
inline bool exact_reciprocal(float s, float& m) noexcept {
  const std::uint32_t b = float_bits(s);
  if ((b & 0x807fffffu) != 0) return false;
  const std::uint32_t e = b >> 23;
  if (e < 1 || e > 254) return false;
  m = 1.0f / s;
  return true;
}

/// The scalar reference over a contiguous run with one scale.
template <class Arch, class F, class O>
void fp_run_scalar(const float* x, float* y, std::int64_t n, float s, BitWriter* bw) noexcept {
  for (std::int64_t i = 0; i < n; ++i) {
    bool in = false;
    y[i] = fp_fake_quant_element<F, O>(x[i], s, in);
    if (bw) bw->put_bit(in);
  }
}

/// The scalar reference over a contiguous run walking the channel axis (scale[i]).
template <class Arch, class F, class O>
void fp_run_scalar_varying(const float* x, float* y, std::int64_t n, const float* scale,
                           BitWriter* bw) noexcept {
  for (std::int64_t i = 0; i < n; ++i) {
    bool in = false;
    y[i] = fp_fake_quant_element<F, O>(x[i], scale[i], in);
    if (bw) bw->put_bit(in);
  }
}

/// A run with one scale: the SIMD batches of Arch when `simd`, the tail (or all) scalar.
template <class Arch, class F, class O>
void fp_run(const float* x, float* y, std::int64_t n, float s, BitWriter* bw, bool simd) {
#if FQ_HAS_XSIMD
  if constexpr (kSimdArch<Arch>) {
    if (simd) {
      // A local copy, used by reference only, so that its state can live in registers.
      BitWriter local = bw ? *bw : BitWriter(nullptr, 0);
      float m = 0.0f;
      const std::int64_t i =
          exact_reciprocal(s, m)
              ? simd::fp_run<F, O, true, Arch>(x, y, n, s, m, local, bw != nullptr)
              : simd::fp_run<F, O, false, Arch>(x, y, n, s, m, local, bw != nullptr);
      BitWriter tail = local;
      fp_run_scalar<Arch, F, O>(x + i, y + i, n - i, s, bw ? &tail : nullptr);
      if (bw) *bw = tail;
      return;
    }
  }
#endif
  (void)simd;
  fp_run_scalar<Arch, F, O>(x, y, n, s, bw);
}

/// A run walking the channel axis: SIMD batches when `simd`, the tail scalar.
template <class Arch, class F, class O>
void fp_run_varying(const float* x, float* y, std::int64_t n, const float* scale, BitWriter* bw,
                    bool simd) {
  std::int64_t i = 0;
#if FQ_HAS_XSIMD
  if constexpr (kSimdArch<Arch>) {
    if (simd) {
      BitWriter local = bw ? *bw : BitWriter(nullptr, 0);
      i = simd::fp_run_varying<F, O, Arch>(x, y, n, scale, local, bw != nullptr);
      if (bw) *bw = local;
    }
  }
#endif
  (void)simd;
  fp_run_scalar_varying<Arch, F, O>(x + i, y + i, n - i, scale + i, bw);
}

/// [outer, channels, inner] of a contiguous tensor split at axis `ax` (normalized).
struct ChannelSplit {
  std::int64_t outer = 1, channels = 1, inner = 1;
};
template <class T>
inline ChannelSplit split_at_axis(const TensorView<T>& v, int ax) noexcept {
  ChannelSplit c;
  for (int d = 0; d < ax; ++d) c.outer *= v.size(d);
  c.channels = v.size(ax);
  for (int d = ax + 1; d < v.rank(); ++d) c.inner *= v.size(d);
  return c;
}

/// Largest |x| bits over a contiguous run (see simd::abs_bits_max), folded into acc.
template <class Arch>
void abs_bits_max_run(const float* x, std::int64_t n, std::uint32_t& acc, bool simd) noexcept {
  std::int64_t i = 0;
#if FQ_HAS_XSIMD
  if constexpr (kSimdArch<Arch>) {
    if (simd) i = simd::abs_bits_max<Arch>(x, n, acc);
  }
#endif
  (void)simd;
  std::uint32_t m = acc;
  for (; i < n; ++i) {
    const std::uint32_t b = float_bits(x[i]) & 0x7fffffffu;
    m = b > m ? b : m;
  }
  acc = m;
}

/// amax from the folded bits; NaN/Inf data is kNonFiniteInput.
inline float amax_of_bits(std::uint32_t bits, const char* where) {
  FQ_CHECK(bits < 0x7f800000u, ErrorCode::kNonFiniteInput,
           msg(where,
               ": the tensor contains NaN or Inf, so its amax (and the current scale) "
               "would not be finite"));
  return bits_float(bits);
}

}  // namespace detail

/// Fake-quantizes x into y on format F with one scale (see the file comment).
/// @tparam F the element format; O the overflow policy (FpSaturate by default).
/// @param mask if not null, receives the STE mask (|x / s| <= F::kMax) for the backward.
/// @param scale finite and > 0. @param path Isa::kAuto or Isa::kScalar (simd/arch.hpp).
template <class F, class O = FpSaturate, class Arch = DefaultArch, class X, class Y>
void fp_fake_quantize_per_tensor(X&& x, Y&& y, Mask* mask, float scale, Isa path = Isa::kAuto) {
  detail::static_check_fp<F, O>();
  detail::static_check_float_only<detail::view_scalar_t<Y>>();
  constexpr const char* kWhere = "fp_fake_quantize_per_tensor";
  const bool simd = detail::use_simd_kernels<Arch>(path, kWhere);
  const TensorView<const float> xv = detail::as_view(std::forward<X>(x));
  const TensorView<float> yv = detail::as_view(std::forward<Y>(y));
  detail::check_fp_scale(scale, kWhere);
  detail::check_contiguous_io(xv, yv, kWhere);
  std::uint64_t* words =
      mask ? mask->prepare(xv.rank(), xv.shape(), detail::row_major_order()) : nullptr;
  const std::int64_t n = xv.numel();
  if (n == 0) return;
  detail::BitWriter bw(words, 0);
  detail::fp_run<Arch, F, O>(xv.data(), yv.data(), n, scale, words ? &bw : nullptr, simd);
  if (words) bw.flush();
}

/// Fake-quantizes x into y on format F with one scale per index along `axis`.
/// @param scales `channels` scales (finite, > 0); channels must equal x's extent on axis
/// (ErrorCode::kParamCountMismatch). @param axis in [-rank, rank). Others as per tensor.
template <class F, class O = FpSaturate, class Arch = DefaultArch, class X, class Y>
void fp_fake_quantize_per_channel(X&& x, Y&& y, Mask* mask, const float* scales,
                                  std::int64_t channels, int axis, Isa path = Isa::kAuto) {
  detail::static_check_fp<F, O>();
  detail::static_check_float_only<detail::view_scalar_t<Y>>();
  constexpr const char* kWhere = "fp_fake_quantize_per_channel";
  const bool simd = detail::use_simd_kernels<Arch>(path, kWhere);
  const TensorView<const float> xv = detail::as_view(std::forward<X>(x));
  const TensorView<float> yv = detail::as_view(std::forward<Y>(y));
  const int ax = detail::normalize_axis(axis, xv.rank(), kWhere);
  detail::check_contiguous_io(xv, yv, kWhere);
  FQ_CHECK(
      channels == xv.size(ax), ErrorCode::kParamCountMismatch,
      detail::msg(kWhere, ": ", channels, " scales for ", xv.size(ax), " channels on axis ", axis));
  FQ_CHECK(channels == 0 || scales != nullptr, ErrorCode::kInvalidArgument,
           detail::msg(kWhere, ": null scale array"));
  for (std::int64_t c = 0; c < channels; ++c) detail::check_fp_scale(scales[c], kWhere, c);
  std::uint64_t* words =
      mask ? mask->prepare(xv.rank(), xv.shape(), detail::row_major_order()) : nullptr;
  if (xv.numel() == 0) return;
  const detail::ChannelSplit sp = detail::split_at_axis(xv, ax);
  detail::BitWriter bw(words, 0);
  detail::BitWriter* bwp = words ? &bw : nullptr;
  const float* xp = xv.data();
  float* yp = yv.data();
  for (std::int64_t o = 0; o < sp.outer; ++o) {
    if (sp.inner == 1) {  // the channel axis is the last non-trivial one: scales vary per lane
      detail::fp_run_varying<Arch, F, O>(xp, yp, sp.channels, scales, bwp, simd);
      xp += sp.channels;
      yp += sp.channels;
      continue;
    }
    for (std::int64_t c = 0; c < sp.channels; ++c, xp += sp.inner, yp += sp.inner)
      detail::fp_run<Arch, F, O>(xp, yp, sp.inner, scales[c], bwp, simd);
  }
  if (words) bw.flush();
}

/// max |x| over a contiguous float tensor (0 for an empty one); NaN or Inf in x is
/// ErrorCode::kNonFiniteInput. Exact (a max), so every path gives the same value.
template <class Arch = DefaultArch, class X>
float fp_amax(X&& x, Isa path = Isa::kAuto) {
  constexpr const char* kWhere = "fp_amax";
  const bool simd = detail::use_simd_kernels<Arch>(path, kWhere);
  const TensorView<const float> xv = detail::as_view(std::forward<X>(x));
  FQ_CHECK(xv.is_contiguous() || xv.numel() == 0, ErrorCode::kInvalidLayout,
           detail::msg(kWhere, ": the tensor must be contiguous row-major (strides ",
                       detail::strides_str(xv), ")"));
  std::uint32_t bits = 0;
  if (xv.numel() > 0) detail::abs_bits_max_run<Arch>(xv.data(), xv.numel(), bits, simd);
  return detail::amax_of_bits(bits, kWhere);
}

/// Current scaling per tensor: fp_scale_from_amax<F>(fp_amax(x)).
template <class F, class Arch = DefaultArch, class X>
float fp_dynamic_scale_per_tensor(X&& x, Isa path = Isa::kAuto) {
  return fp_scale_from_amax<F>(fp_amax<Arch>(std::forward<X>(x), path));
}

/// Current scaling per channel: scales[c] = fp_scale_from_amax<F>(max |x| over channel c of
/// `axis`); channels must equal x's extent there. NaN/Inf in x: kNonFiniteInput, and
/// `scales` is left unchanged.
template <class F, class Arch = DefaultArch, class X>
void fp_dynamic_scales_per_channel(X&& x, float* scales, std::int64_t channels, int axis,
                                   Isa path = Isa::kAuto) {
  constexpr const char* kWhere = "fp_dynamic_scales_per_channel";
  const bool simd = detail::use_simd_kernels<Arch>(path, kWhere);
  const TensorView<const float> xv = detail::as_view(std::forward<X>(x));
  const int ax = detail::normalize_axis(axis, xv.rank(), kWhere);
  FQ_CHECK(xv.is_contiguous() || xv.numel() == 0, ErrorCode::kInvalidLayout,
           detail::msg(kWhere, ": the tensor must be contiguous row-major (strides ",
                       detail::strides_str(xv), ")"));
  FQ_CHECK(
      channels == xv.size(ax), ErrorCode::kParamCountMismatch,
      detail::msg(kWhere, ": ", channels, " scales for ", xv.size(ax), " channels on axis ", axis));
  FQ_CHECK(channels == 0 || scales != nullptr, ErrorCode::kInvalidArgument,
           detail::msg(kWhere, ": null scale array"));
  std::vector<std::uint32_t> bits(static_cast<std::size_t>(channels), 0u);
  if (xv.numel() > 0) {
    const detail::ChannelSplit sp = detail::split_at_axis(xv, ax);
    const float* xp = xv.data();
    std::uint32_t* acc = bits.data();
    for (std::int64_t o = 0; o < sp.outer; ++o) {
      if (sp.inner == 1) {  // one element per channel: an element-wise max (vectorised)
        for (std::int64_t c = 0; c < sp.channels; ++c) {
          const std::uint32_t b = detail::float_bits(xp[c]) & 0x7fffffffu;
          acc[c] = b > acc[c] ? b : acc[c];
        }
        xp += sp.channels;
        continue;
      }
      for (std::int64_t c = 0; c < sp.channels; ++c, xp += sp.inner)
        detail::abs_bits_max_run<Arch>(xp, sp.inner, acc[c], simd);
    }
  }
  std::uint32_t worst = 0;
  for (std::uint32_t b : bits) worst = b > worst ? b : worst;
  (void)detail::amax_of_bits(worst, kWhere);  // refuse NaN/Inf before writing any scale
  for (std::int64_t c = 0; c < channels; ++c)
    scales[c] = fp_scale_from_amax<F>(detail::bits_float(bits[static_cast<std::size_t>(c)]));
}

}  // namespace fq

#endif  // FQ_KERNELS_FP_FAKE_QUANTIZE_HPP_
