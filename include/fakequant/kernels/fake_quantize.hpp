// SPDX-License-Identifier: MIT
// fakequant/kernels/fake_quantize.hpp: fake quantization of a strided tensor and its STE
// backward — the public entry points. They run the scalar reference's driver
// (core/fake_quantize.hpp: checks, run plan, scalar runs) with a runner that hands contiguous
// runs to the xsimd kernels of Arch (simd/fake_quantize_simd.hpp); this is the one place that
// chooses between the two, from the Isa argument (simd/arch.hpp). Both are bit-identical.
//
// Forward (formulas, rounding, NaN/Inf rule and PyTorch equivalence: core/fake_quantize.hpp):
//     y    = (clamp(round(x * f32(1/s)) + z, quant_min, quant_max) - z) * s
//     mask = quant_min <= round(x * f32(1/s)) + z <= quant_max
// Backward (straight-through estimator): dx = dy * mask (MaskedSte) or dx = dy
// (PassThroughSte).
//
// Arch: the instruction set of the kernels, fq::DefaultArch (this translation unit's flags)
// by default; it is part of every instantiation's name, so translation units compiled with
// different -m flags never share one (simd/arch.hpp). Isa path: kAuto (Arch's kernels),
// kScalar (the scalar reference), or the Isa naming Arch; others are kInvalidArgument.
#ifndef FQ_KERNELS_FAKE_QUANTIZE_HPP_
#define FQ_KERNELS_FAKE_QUANTIZE_HPP_

#include <cstdint>      // int32_t, int64_t, uint64_t
#include <type_traits>  // is_same
#include <utility>      // forward

#include <fakequant/base/config.hpp>
#include <fakequant/core/fake_quantize.hpp>
#include <fakequant/simd/arch.hpp>
#include <fakequant/simd/fake_quantize_simd.hpp>

namespace fq {
namespace detail {

/// The runner of the core driver (core/fake_quantize.hpp) that takes contiguous runs with the
/// SIMD kernels of Arch when `simd` (from the Isa argument); every hook declines for
/// ScalarArch, for builds without xsimd, and for types the kernels do not cover.
template <class Arch>
struct SimdRuns {
  using arch = Arch;
  bool simd;

  SimdRuns(Isa path, const char* where) : simd(use_simd_kernels<Arch>(path, where)) {}

  template <class N, class T>
  bool run(const T* x, T* y, std::int64_t n, const ElementParams<T>& p, BitWriter* bw,
           const QuantRange& r) const noexcept {
#if FQ_HAS_XSIMD
    if constexpr (kSimdArch<Arch>) {
      simd::fq_run<N, Arch>(x, y, n, p, bw, r);
      return true;
    }
#endif
    (void)x, (void)y, (void)n, (void)p, (void)bw, (void)r;
    return false;
  }

  template <class N, class T, class Z>
  bool run_varying(const T* x, T* y, std::int64_t n, const float* scale, const Z* zero_point,
                   const QuantRange& r, BitWriter* bw) const noexcept {
#if FQ_HAS_XSIMD
    if constexpr (kSimdArch<Arch> && kFloatInt32<T, Z>) {
      simd::fq_run_varying<N, Arch>(x, y, n, scale, zero_point, r, bw);
      return true;
    }
#endif
    (void)x, (void)y, (void)n, (void)scale, (void)zero_point, (void)r, (void)bw;
    return false;
  }

  template <class N, class T, class Z>
  bool rows(const T* x, std::ptrdiff_t x_row, T* y, std::ptrdiff_t y_row, std::int64_t m,
            std::int64_t n, const float* scale, const Z* zero_point, const QuantRange& r,
            std::uint64_t* words) const noexcept {
#if FQ_HAS_XSIMD
    if constexpr (kSimdArch<Arch> && kFloatInt32<T, Z>) {
      simd::fq_rows<N, Arch>(x, x_row, y, y_row, m, n, scale, zero_point, r, words);
      return true;
    }
#endif
    (void)x, (void)x_row, (void)y, (void)y_row, (void)m, (void)n, (void)scale;
    (void)zero_point, (void)r, (void)words;
    return false;
  }

  template <class T>
  bool ste(const T* dy, T* dx, std::int64_t n, BitReader& br) const noexcept {
#if FQ_HAS_XSIMD
    if constexpr (kSimdArch<Arch>) {
      simd::ste_run<Arch>(dy, dx, n, br);
      return true;
    }
#endif
    (void)dy, (void)dx, (void)n, (void)br;
    return false;
  }

 private:
  // The channel-walking kernels cover float tensors with int32 zero points.
  template <class T, class Z>
  static constexpr bool kFloatInt32 =
      std::is_same<T, float>::value&& std::is_same<Z, std::int32_t>::value;
};

}  // namespace detail

/// Fake-quantizes x into y with one scale and zero point.
/// @tparam N Numerics (rounding, scale application, overflow); TorchNumerics by default.
/// @tparam Arch the kernels' instruction set (file comment); leave the default.
/// @param x input view (float or double; Eigen objects convert).
/// @param y output view of x's shape; may be x itself.
/// @param mask if not null, receives the STE mask for fake_quantize_backward.
/// @param scale > 0, finite. @param zero_point int32 (added after rounding) or float (added
/// before rounding, ATen's float-zero-point rule). @param range [quant_min, quant_max].
/// @param path Isa::kAuto (default) or Isa::kScalar (simd/arch.hpp).
template <class N = TorchNumerics, class Arch = DefaultArch, class X, class Y,
          class Z = std::int32_t>
void fake_quantize_per_tensor(X&& x, Y&& y, Mask* mask, float scale, Z zero_point, QuantRange range,
                              Isa path = Isa::kAuto) {
  detail::fake_quantize_per_tensor_driver<N>(
      std::forward<X>(x), std::forward<Y>(y), mask, scale, zero_point, range,
      detail::SimdRuns<Arch>(path, "fake_quantize_per_tensor"));
}

/// Fake-quantizes x into y with one scale and zero point per index along `axis`.
/// @param scale, zero_point arrays of `count` entries; count must equal x's extent on axis.
/// @param axis in [-rank, rank) (negative counts from the end; ATen accepts only >= 0).
/// Other parameters as fake_quantize_per_tensor.
template <class N = TorchNumerics, class Arch = DefaultArch, class X, class Y, class Z>
void fake_quantize_per_channel(X&& x, Y&& y, Mask* mask, const float* scale, const Z* zero_point,
                               std::int64_t count, int axis, QuantRange range,
                               Isa path = Isa::kAuto) {
  detail::fake_quantize_per_channel_driver<N>(
      std::forward<X>(x), std::forward<Y>(y), mask, scale, zero_point, count, axis, range,
      detail::SimdRuns<Arch>(path, "fake_quantize_per_channel"));
}

/// The straight-through backward: dx = dy * mask (MaskedSte) or dx = dy (PassThroughSte).
/// dy and dx must have the shape the mask was written for; dx may be dy itself. dy * mask is
/// a real multiplication by 1 or 0 (detail::mask_multiply) on every path: a NaN dy gives NaN,
/// quieted, wherever it is; +-Inf at a masked position gives NaN; a masked -g gives -0.
template <class ClampGrad = MaskedSte, class Arch = DefaultArch, class DY, class DX>
void fake_quantize_backward(DY&& dy, const Mask& mask, DX&& dx, Isa path = Isa::kAuto) {
  detail::fake_quantize_backward_driver<ClampGrad>(
      std::forward<DY>(dy), mask, std::forward<DX>(dx),
      detail::SimdRuns<Arch>(path, "fake_quantize_backward"));
}

}  // namespace fq

#endif  // FQ_KERNELS_FAKE_QUANTIZE_HPP_
