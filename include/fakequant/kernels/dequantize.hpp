// SPDX-License-Identifier: MIT
// fakequant/kernels/dequantize.hpp: int8 / uint8 levels back to real values.
//
//   y = (q - z) * s     computed in the output type T (float or double) from f32 s and z,
// the last step of scheme/numerics.hpp's element formula, so dequantize(quantize(x)) equals
// fake_quantize(x) bit for bit (q - z is exact; one rounding in the multiply). Per tensor or
// per channel. Float outputs along contiguous runs use xsimd; both paths are bit-identical.
// Arch (fq::DefaultArch) and the Isa path as for fake quantization (simd/arch.hpp).
#ifndef FQ_KERNELS_DEQUANTIZE_HPP_
#define FQ_KERNELS_DEQUANTIZE_HPP_

#include <cstdint>  // int8_t, uint8_t, int32_t, int64_t

#include <fakequant/kernels/quantize.hpp>

namespace fq {
namespace detail {

/// Arch: the caller's architecture tag (the loop is vectorised for its flags, simd/arch.hpp).
template <class Arch, class T, class Q>
void dequantize_run_scalar(const Q* q, std::ptrdiff_t qs, T* y, std::ptrdiff_t ys, std::int64_t n,
                           T scale, T zero) noexcept {
  for (std::int64_t i = 0; i < n; ++i) y[i * ys] = (T(q[i * qs]) - zero) * scale;
}

#if FQ_HAS_XSIMD
template <class A, class Q>
void dequantize_run_simd(const Q* q, float* y, std::int64_t n, float scale, float zero) noexcept {
  using B = xsimd::batch<float, A>;
  using BI = xsimd::batch<std::int32_t, A>;
  constexpr std::int64_t W = static_cast<std::int64_t>(B::size);
  const B s(scale), z(zero);
  alignas(64) std::int32_t lanes[B::size];
  std::int64_t i = 0;
  for (; i + W <= n; i += W) {
    for (std::int64_t j = 0; j < W; ++j) lanes[j] = q[i + j];
    ((xsimd::to_float(BI::load_aligned(lanes)) - z) * s).store_unaligned(y + i);
  }
  dequantize_run_scalar<A, float>(q + i, 1, y + i, 1, n - i, scale, zero);
}
#endif

template <class Arch, class T, class Q>
void dequantize_impl(const TensorView<const Q>& q, const TensorView<T>& y, const float* scale,
                     const std::int32_t* zero_point, std::int64_t count, int axis, bool simd) {
  for_each_quant_run(
      q, y, axis,
      [&](const Q* qp, std::ptrdiff_t qs, T* yp, std::ptrdiff_t ys, std::int64_t n,
          std::int64_t ch) {
        if (ch < 0) {
          for (std::int64_t i = 0; i < n; ++i)
            dequantize_run_scalar<Arch, T>(qp + i * qs, 1, yp + i * ys, 1, 1, T(scale[i]),
                                           T(float(zero_point[i])));
          return;
        }
        const std::int64_t c = count == 1 ? 0 : ch;
#if FQ_HAS_XSIMD
        if constexpr (std::is_same<T, float>::value && kSimdArch<Arch>) {
          if (simd && qs == 1 && ys == 1)
            return dequantize_run_simd<Arch>(qp, yp, n, scale[c], float(zero_point[c]));
        }
#endif
        (void)simd;  // only the SIMD kernels use it
        dequantize_run_scalar<Arch, T>(qp, qs, yp, ys, n, T(scale[c]), T(float(zero_point[c])));
      });
}

}  // namespace detail

/// y = (q - zero_point) * scale, q int8 or uint8, y float or double of q's shape.
/// @tparam Arch the kernels' instruction set; @param path Isa::kAuto or kScalar (simd/arch.hpp).
template <class Arch = DefaultArch, class T, class Q>
void dequantize_per_tensor(TensorView<const Q> q, TensorView<T> y, float scale,
                           std::int32_t zero_point, Isa path = Isa::kAuto) {
  detail::static_check_float<T>();
  detail::static_check_level_type<Q>();
  constexpr const char* kWhere = "dequantize_per_tensor";
  const bool simd = detail::use_simd_kernels<Arch>(path, kWhere);
  detail::check_scale(scale, kWhere);
  detail::check_quant_views(q, y, kWhere);
  detail::dequantize_impl<Arch>(q, y, &scale, &zero_point, 1, -1, simd);
}

/// Per-channel dequantize: scale/zero_point have `count` entries along `axis`.
template <class Arch = DefaultArch, class T, class Q>
void dequantize_per_channel(TensorView<const Q> q, TensorView<T> y, const float* scale,
                            const std::int32_t* zero_point, std::int64_t count, int axis,
                            Isa path = Isa::kAuto) {
  detail::static_check_float<T>();
  detail::static_check_level_type<Q>();
  constexpr const char* kWhere = "dequantize_per_channel";
  const bool simd = detail::use_simd_kernels<Arch>(path, kWhere);
  const int ax = detail::normalize_axis(axis, q.rank(), kWhere);
  FQ_CHECK(count == q.size(ax), ErrorCode::kParamCountMismatch,
           detail::msg(kWhere, ": ", count, " scale/zero-point pairs for ", q.size(ax),
                       " channels on axis ", axis));
  FQ_CHECK(count == 0 || (scale && zero_point), ErrorCode::kInvalidArgument,
           detail::msg(kWhere, ": null scale or zero-point array"));
  for (std::int64_t c = 0; c < count; ++c) detail::check_scale(scale[c], kWhere);
  detail::check_quant_views(q, y, kWhere);
  detail::dequantize_impl<Arch>(q, y, scale, zero_point, count, ax, simd);
}

}  // namespace fq

#endif  // FQ_KERNELS_DEQUANTIZE_HPP_
