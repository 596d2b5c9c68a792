// SPDX-License-Identifier: MIT
// fakequant/kernels/quantize.hpp: real tensors to int8 / uint8 levels, per tensor or per channel.
//
//   q = clamp(round(x * f32(1/s)) + z, qmin, qmax)    (MulByInverse; x / s with DivideByScale)
// with the Numerics policy N of fake quantization (rounding, scale application, NaN/Inf
// overflow rule), computed by the same operations as scheme/numerics.hpp, so that
//   dequantize(quantize(x)) == fake_quantize(x)   bit for bit (tested),
// i.e. the integer model stores exactly the levels the fake-quant simulation used. No
// gradient (inference). [qmin, qmax] must lie within the range of Q (int8 or uint8).
// Float tensors with a constant scale along a contiguous run use xsimd (the same batch
// operations as the fake-quant SIMD kernel; levels are narrowed to bytes through int32);
// everything else, and builds without xsimd, use the scalar formula. Both are bit-identical.
// Arch (fq::DefaultArch) and the Isa path as for fake quantization (simd/arch.hpp).
#ifndef FQ_KERNELS_QUANTIZE_HPP_
#define FQ_KERNELS_QUANTIZE_HPP_

#include <cstdint>      // int8_t, uint8_t, int32_t, int64_t
#include <limits>       // numeric_limits
#include <type_traits>  // is_same

#include <fakequant/core/checks.hpp>
#include <fakequant/core/run_plan.hpp>
#include <fakequant/core/tensor_view.hpp>
#include <fakequant/kernels/fake_quantize.hpp>  // static_check_float; the same levels
#include <fakequant/scheme/numerics.hpp>
#include <fakequant/simd/arch.hpp>
#include <fakequant/simd/fake_quantize_simd.hpp>

namespace fq {
namespace detail {

template <class Q>
constexpr void static_check_level_type() {
  static_assert(std::is_same<Q, std::int8_t>::value || std::is_same<Q, std::uint8_t>::value,
                "quantize/dequantize: the integer tensor must be std::int8_t or std::uint8_t.");
}

/// The range must fit the integer type.
template <class Q>
void check_level_range(const QuantRange& r, const char* where) {
  check_range(r, where);
  constexpr std::int64_t lo = std::numeric_limits<Q>::min(), hi = std::numeric_limits<Q>::max();
  FQ_CHECK(r.quant_min >= lo && r.quant_max <= hi, ErrorCode::kInvalidRange,
           msg(where, ": range [", r.quant_min, ", ", r.quant_max, "] does not fit the ",
               std::is_same<Q, std::int8_t>::value ? "int8" : "uint8", " output"));
}

/// The clamped level of one element: the `c` of fake_quant_element.
template <class N, class T>
FQ_INLINE T quant_level(T x, const ElementParams<T>& p) noexcept {
  const T q = N::rounding::apply(apply_scale<N>(x, p.mult)) + p.zero;
  return clamp_level<N>(q, p.qmin, p.qmax);
}

/// Arch: the caller's architecture tag (the loop is vectorised for its flags, simd/arch.hpp).
template <class Arch, class N, class T, class Q>
void quantize_run_scalar(const T* x, std::ptrdiff_t xs, Q* q, std::ptrdiff_t qs, std::int64_t n,
                         const ElementParams<T>& p) noexcept {
  for (std::int64_t i = 0; i < n; ++i)
    q[i * qs] = static_cast<Q>(static_cast<int>(quant_level<N>(x[i * xs], p)));
}

#if FQ_HAS_XSIMD
template <class N, class A, class Q>
void quantize_run_simd(const float* x, Q* q, std::int64_t n,
                       const ElementParams<float>& p) noexcept {
  using B = xsimd::batch<float, A>;
  constexpr std::int64_t W = static_cast<std::int64_t>(B::size);
  const B mult(p.mult), zero(p.zero), qmin(p.qmin), qmax(p.qmax);
  alignas(64) std::int32_t lanes[B::size];
  std::int64_t i = 0;
  for (; i + W <= n; i += W) {
    B v;
    if constexpr (std::is_same<typename N::scale_apply, MulByInverse>::value)
      v = B::load_unaligned(x + i) * mult;
    else
      v = B::load_unaligned(x + i) / mult;
    const B lv = simd::round_batch<typename N::rounding>(v) + zero;
    B c = xsimd::min(xsimd::max(lv, qmin), qmax);
    if constexpr (kSaturates<N, float>)
      c = xsimd::select(lv == lv, c, qmin);
    else
      c = xsimd::select(lv < B(kInt64Limit<float>), c, qmin);
    xsimd::to_int(c).store_aligned(lanes);
    for (std::int64_t j = 0; j < W; ++j) q[i + j] = static_cast<Q>(lanes[j]);
  }
  quantize_run_scalar<A, N>(x + i, 1, q + i, 1, n - i, p);
}
#endif

/// Walks x and q (same shape) as runs; `run(xp, xs, qp, qs, n, ch)` with ch = -1 for a run
/// along the channel axis.
template <class T, class Q, class F>
void for_each_quant_run(const TensorView<T>& x, const TensorView<Q>& q, int axis, F&& run) {
  if (x.numel() == 0) return;
  const DimOrder order = order_by_strides(x.rank(), x.strides());
  const auto plan =
      make_run_plan<2>(x.rank(), x.shape(), {&x.strides(), &q.strides()}, order, axis);
  const auto last = static_cast<std::size_t>(plan.nd - 1);
  const auto xs = static_cast<std::ptrdiff_t>(plan.stride[0][last]);
  const auto qs = static_cast<std::ptrdiff_t>(plan.stride[1][last]);
  for_each_run(plan, [&](const auto& off, std::int64_t n, std::int64_t ch, std::int64_t) {
    run(x.data() + off[0], xs, q.data() + off[1], qs, n, ch);
  });
}

/// Shape, layout and pointer checks shared by quantize and dequantize: the output must not
/// overlap itself (check_no_self_overlap) nor the input at all — the element types differ, so
/// even the exact in-place aliasing that fake quantization allows would overwrite input
/// elements not read yet (spans_disjoint, core/checks.hpp).
template <class A, class B>
void check_quant_views(const TensorView<A>& in, const TensorView<B>& out, const char* where) {
  FQ_CHECK(
      same_shape(in, out), ErrorCode::kShapeMismatch,
      msg(where, ": input shape ", shape_str(in), " and output shape ", shape_str(out), " differ"));
  if (out.numel() == 0) return;
  check_no_self_overlap(out, where);
  FQ_CHECK(in.data() != nullptr && out.data() != nullptr, ErrorCode::kInvalidArgument,
           msg(where, ": null data pointer for a non-empty tensor"));
  FQ_CHECK(spans_disjoint(in, out), ErrorCode::kInvalidLayout,
           msg(where,
               ": the output overlaps the input (the element types differ, so in-place "
               "is not possible); use separate memory"));
}

template <class N, class Arch, class T, class Q>
void quantize_impl(const TensorView<const T>& x, const TensorView<Q>& q, const float* scale,
                   const std::int32_t* zero_point, std::int64_t count, int axis,
                   const QuantRange& r, bool simd) {
  for_each_quant_run(
      x, q, axis,
      [&](const T* xp, std::ptrdiff_t xs, Q* qp, std::ptrdiff_t qs, std::int64_t n,
          std::int64_t ch) {
        if (ch < 0) {  // the run walks the channels
          for (std::int64_t i = 0; i < n; ++i) {
            const auto p =
                make_element_params<N, T>(scale[i], static_cast<float>(zero_point[i]), r);
            quantize_run_scalar<Arch, N>(xp + i * xs, 1, qp + i * qs, 1, 1, p);
          }
          return;
        }
        const std::int64_t c = count == 1 ? 0 : ch;
        const auto p = make_element_params<N, T>(scale[c], static_cast<float>(zero_point[c]), r);
#if FQ_HAS_XSIMD
        if constexpr (std::is_same<T, float>::value && kSimdArch<Arch>) {
          if (simd && xs == 1 && qs == 1) return quantize_run_simd<N, Arch>(xp, qp, n, p);
        }
#endif
        (void)simd;  // only the SIMD kernels use it
        quantize_run_scalar<Arch, N>(xp, xs, qp, qs, n, p);
      });
}

}  // namespace detail

/// Quantizes x (float or double) into the int8/uint8 tensor q of the same shape.
/// @tparam N Numerics, as for fake_quantize_per_tensor (TorchNumerics by default).
/// @param scale > 0, finite. @param zero_point in range. @param range within Q's limits.
/// @tparam Arch the kernels' instruction set; @param path Isa::kAuto or kScalar (simd/arch.hpp).
template <class N = TorchNumerics, class Arch = DefaultArch, class T, class Q>
void quantize_per_tensor(TensorView<const T> x, TensorView<Q> q, float scale,
                         std::int32_t zero_point, QuantRange range, Isa path = Isa::kAuto) {
  detail::static_check_float<T>();
  detail::static_check_level_type<Q>();
  constexpr const char* kWhere = "quantize_per_tensor";
  const bool simd = detail::use_simd_kernels<Arch>(path, kWhere);
  detail::check_level_range<Q>(range, kWhere);
  detail::check_scale(scale, kWhere);
  detail::check_zero_point(zero_point, range, kWhere);
  detail::check_quant_views(x, q, kWhere);
  detail::quantize_impl<N, Arch>(x, q, &scale, &zero_point, 1, -1, range, simd);
}

/// Quantizes x with one scale and zero point per index along `axis` (count entries).
template <class N = TorchNumerics, class Arch = DefaultArch, class T, class Q>
void quantize_per_channel(TensorView<const T> x, TensorView<Q> q, const float* scale,
                          const std::int32_t* zero_point, std::int64_t count, int axis,
                          QuantRange range, Isa path = Isa::kAuto) {
  detail::static_check_float<T>();
  detail::static_check_level_type<Q>();
  constexpr const char* kWhere = "quantize_per_channel";
  const bool simd = detail::use_simd_kernels<Arch>(path, kWhere);
  detail::check_level_range<Q>(range, kWhere);
  const int ax = detail::normalize_axis(axis, x.rank(), kWhere);
  FQ_CHECK(count == x.size(ax), ErrorCode::kParamCountMismatch,
           detail::msg(kWhere, ": ", count, " scale/zero-point pairs for ", x.size(ax),
                       " channels on axis ", axis));
  FQ_CHECK(count == 0 || (scale && zero_point), ErrorCode::kInvalidArgument,
           detail::msg(kWhere, ": null scale or zero-point array"));
  for (std::int64_t c = 0; c < count; ++c) {
    detail::check_scale(scale[c], kWhere);
    detail::check_zero_point(zero_point[c], range, kWhere);
  }
  detail::check_quant_views(x, q, kWhere);
  detail::quantize_impl<N, Arch>(x, q, scale, zero_point, count, ax, range, simd);
}

}  // namespace fq

#endif  // FQ_KERNELS_QUANTIZE_HPP_
