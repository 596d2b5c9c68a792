// SPDX-License-Identifier: MIT
// fakequant/core/fake_quantize.hpp: fake quantization of a strided tensor and its STE backward.
//
// Forward (per element; s, z per tensor or per channel; see core/numerics.hpp for the exact
// operation order and the NaN/Inf rule):
//     q    = round(x * f32(1/s)) + z              int32 z (ties to even by default)
//     q    = round(fma(x, f32(1/s), z))           float z (TorchNumerics; TorchNumericsNoFma:
//                                                  round(f32(x * f32(1/s)) + z))
//     y    = (clamp(q, quant_min, quant_max) - z) * s     (never -0.0)
//     mask = quant_min <= q <= quant_max           (on the rounded level, as ATen)
// Backward (straight-through estimator):
//     MaskedSte       dx = dy * mask               (ATen's dY * mask, bit for bit: a NaN dy
//                                                  stays NaN, quieted, also where masked)
//     PassThroughSte  dx = dy
// With TorchNumerics (the default) the forward equals PyTorch 1.13's
// fake_quantize_per_tensor_affine(_cachemask) and fake_quantize_per_channel_affine bit for
// bit as dispatched on x86 (AVX2 / AVX-512), for float and double tensors, NaN, Inf, ties and
// the mask at the bounds, on every int32 range (ranges wider than float32's exact integers,
// e.g. [-2^24, 2^24] or qint32's, take an exact slower path for float tensors);
// TorchNumericsNoFma equals ATen's scalar kernel (ATEN_CPU_CAPABILITY=default), which rounds
// x * f32(1/s) before adding a float zero point.
// x and y may be the same view (in place). Empty tensors are a no-op (per channel, the
// parameter count and values are not checked then: there is nothing to quantize). Bad
// arguments are reported through fq::detail::fail (see error.hpp).
#ifndef FQ_CORE_FAKE_QUANTIZE_HPP_
#define FQ_CORE_FAKE_QUANTIZE_HPP_

#include <cmath>        // fabs
#include <cstdint>      // int32_t, int64_t, uint32_t
#include <cstring>      // memcpy
#include <limits>       // numeric_limits
#include <type_traits>  // is_same, remove_const
#include <utility>      // forward

#include <fakequant/core/checks.hpp>
#include <fakequant/core/mask.hpp>
#include <fakequant/scheme/numerics.hpp>
#include <fakequant/core/tensor_view.hpp>
#include <fakequant/core/fake_quantize_scalar.hpp>
#include <fakequant/core/run_plan.hpp>
#include <fakequant/policy/clamp_grad.hpp>
#include <fakequant/simd/fake_quantize_simd.hpp>

namespace fq {

/// Which kernels run: the SIMD kernels where they apply (default), or only the scalar
/// reference (for tests and debugging; the results are identical).
enum class KernelPath { kAuto, kScalar };

namespace detail {

template <class T>
constexpr void static_check_float() {
  static_assert(std::is_same<T, float>::value || std::is_same<T, double>::value,
                "fake quantization takes float or double tensors.");
}

/// Whether every channel passes check_scale and check_zero_point: branch-free loops without
/// a division, which the compiler vectorises (the checks themselves run only to report a
/// failure). For a float s, "finite, > 0, finite f32(1/s)" is exactly 2^-128 < s <= max
/// (checked over every positive float); as the bits of positive floats are ordered like
/// unsigned integers (and negative ones, NaN and Inf fall outside), that is one unsigned
/// range test per scale, `bits - lo <= width` with wrap-around, folded into a running max. Not
/// inlined: inlined into a caller with a constant channel count, GCC 12 leaves these loops
/// scalar (3x slower at 256 channels).
template <class Z>
[[gnu::noinline]] bool all_channel_params_valid(const float* scale, const Z* zero_point,
                                                std::int64_t count, const QuantRange& r) noexcept {
  constexpr float kMax = std::numeric_limits<float>::max();
  constexpr std::uint32_t kLoBits = 0x00200001u;   // the float after 2^-128 (0x00200000)
  constexpr std::uint32_t kMaxBits = 0x7f7fffffu;  // bits of kMax
  std::uint32_t worst = 0;
  for (std::int64_t c = 0; c < count; ++c) {
    std::uint32_t bits;
    std::memcpy(&bits, scale + c, sizeof bits);
    const std::uint32_t off = bits - kLoBits;
    worst = off > worst ? off : worst;
  }
  if (worst > kMaxBits - kLoBits) return false;
  if constexpr (std::is_floating_point<Z>::value) {
    int bad = 0;
    for (std::int64_t c = 0; c < count; ++c)
      bad |= static_cast<int>(!(std::fabs(zero_point[c]) <= kMax));
    return bad == 0;
  } else {
    constexpr std::int64_t kLo = std::numeric_limits<std::int32_t>::min();
    constexpr std::int64_t kHi = std::numeric_limits<std::int32_t>::max();
    if (r.quant_min < kLo || r.quant_max > kHi) return false;  // the exact checks decide
    // lo <= z <= hi as one unsigned test: z - lo <= hi - lo (wrapping in uint32).
    const auto lo = static_cast<std::uint32_t>(static_cast<std::int32_t>(r.quant_min));
    const auto width = static_cast<std::uint32_t>(static_cast<std::int32_t>(r.quant_max)) - lo;
    std::uint32_t zworst = 0;
    for (std::int64_t c = 0; c < count; ++c) {
      const std::uint32_t off = static_cast<std::uint32_t>(zero_point[c]) - lo;
      zworst = off > zworst ? off : zworst;
    }
    return zworst <= width;
  }
}

inline bool use_simd(KernelPath path) noexcept {
#if FQ_HAS_XSIMD
  return path == KernelPath::kAuto && simd::kHaveSimd;
#else
  (void)path;
  return false;
#endif
}

/// Shared body of the per-tensor and per-channel forwards. `params(ch)` gives the element
/// parameters of channel ch; `varying(...)` handles a run along the channel axis; `rows(...)`
/// may take over a whole plan of contiguous rows, one channel each, writing the mask words
/// itself from bit 0 (returns false if not).
template <class N, class Z, class T, class Params, class Varying, class Rows>
void fake_quantize_runs(const TensorView<const T>& x, const TensorView<T>& y, Mask* mask, int axis,
                        const QuantRange& range, KernelPath path, Params&& params,
                        Varying&& varying, Rows&& rows) {
  (void)range;  // only the SIMD kernels use it
  const DimOrder order = order_by_strides(x.rank(), x.strides());
  std::uint64_t* words = mask ? mask->prepare(x.rank(), x.shape(), order) : nullptr;
  if (x.numel() == 0) return;
  const auto plan =
      make_run_plan<2>(x.rank(), x.shape(), {&x.strides(), &y.strides()}, order, axis);
  const auto last = static_cast<std::size_t>(plan.nd - 1);
  const std::ptrdiff_t xs = static_cast<std::ptrdiff_t>(plan.stride[0][last]);
  const std::ptrdiff_t ys = static_cast<std::ptrdiff_t>(plan.stride[1][last]);
  constexpr bool kFloatZp = std::is_floating_point<Z>::value;
  const bool simd_ok = use_simd(path) && !kFloatZp && xs == 1 && ys == 1;
  BitWriter writer(words, 0);
  BitWriter* bw = words ? &writer : nullptr;
  // The channel loop right outside contiguous runs (weights [C, K]): one call for all rows.
  if (simd_ok && plan.nd == 2 && plan.axis == 0 &&
      rows(x.data(), static_cast<std::ptrdiff_t>(plan.stride[0][0]), y.data(),
           static_cast<std::ptrdiff_t>(plan.stride[1][0]), plan.extent[0], plan.extent[1], words))
    return;
  for_each_run(plan, [&](const auto& off, std::int64_t n, std::int64_t ch, std::int64_t) {
    const T* xp = x.data() + off[0];
    T* yp = y.data() + off[1];
    if (ch < 0) {
      varying(xp, xs, yp, ys, n, simd_ok, bw);
      return;
    }
    const ElementParams<T> p = params(ch);
#if FQ_HAS_XSIMD
    if constexpr (!kFloatZp) {
      if (simd_ok) {
        simd::fq_run<N, simd::DefaultArch>(xp, yp, n, p, bw, range);
        return;
      }
    }
#endif
    fq_run_scalar<N, kFloatZp>(xp, xs, yp, ys, n, p, bw);
  });
  if (bw) bw->flush();
}

/// The forward of float tensors on a range that is not float_exact_range: the exact scalar
/// path (fake_quant_element_wide), for every KernelPath. `params(ch)` gives the WideParams of
/// channel ch; runs along the channel axis read `scale` and `zero_point` directly.
template <class N, class Z, class Params>
void fake_quantize_wide(const TensorView<const float>& x, const TensorView<float>& y, Mask* mask,
                        int axis, const QuantRange& range, Params&& params, const float* scale,
                        const Z* zero_point) {
  constexpr bool kFloatZp = std::is_floating_point<Z>::value;
  const DimOrder order = order_by_strides(x.rank(), x.strides());
  std::uint64_t* words = mask ? mask->prepare(x.rank(), x.shape(), order) : nullptr;
  if (x.numel() == 0) return;
  const auto plan =
      make_run_plan<2>(x.rank(), x.shape(), {&x.strides(), &y.strides()}, order, axis);
  const auto last = static_cast<std::size_t>(plan.nd - 1);
  const std::ptrdiff_t xs = static_cast<std::ptrdiff_t>(plan.stride[0][last]);
  const std::ptrdiff_t ys = static_cast<std::ptrdiff_t>(plan.stride[1][last]);
  BitWriter writer(words, 0);
  BitWriter* bw = words ? &writer : nullptr;
  for_each_run(plan, [&](const auto& off, std::int64_t n, std::int64_t ch, std::int64_t) {
    const float* xp = x.data() + off[0];
    float* yp = y.data() + off[1];
    if (ch < 0)
      fq_run_wide_varying<N>(xp, xs, yp, ys, n, scale, zero_point, range, bw);
    else
      fq_run_wide<N, kFloatZp>(xp, xs, yp, ys, n, params(ch), bw);
  });
  if (bw) bw->flush();
}

}  // namespace detail

/// Fake-quantizes x into y with one scale and zero point.
/// @tparam N Numerics (rounding, scale application, overflow); TorchNumerics by default.
/// @param x input view (float or double; Eigen objects convert).
/// @param y output view of x's shape; may be x itself.
/// @param mask if not null, receives the STE mask for fake_quantize_backward.
/// @param scale > 0, finite. @param zero_point int32 (added after rounding) or float (added
/// before rounding, ATen's float-zero-point rule). @param range [quant_min, quant_max].
template <class N = TorchNumerics, class X, class Y, class Z = std::int32_t>
void fake_quantize_per_tensor(X&& x, Y&& y, Mask* mask, float scale, Z zero_point, QuantRange range,
                              KernelPath path = KernelPath::kAuto) {
  using T = detail::view_scalar_t<Y>;
  detail::static_check_float<T>();
  static_assert(std::is_same<Z, std::int32_t>::value || std::is_same<Z, float>::value,
                "fake_quantize_per_tensor: zero_point must be std::int32_t or float.");
  constexpr const char* kWhere = "fake_quantize_per_tensor";
  const TensorView<const T> xv = detail::as_view(std::forward<X>(x));
  const TensorView<T> yv = detail::as_view(std::forward<Y>(y));
  check_fake_quant_range(range, kWhere);
  detail::check_scale(scale, kWhere);
  detail::check_zero_point(zero_point, range, kWhere);
  detail::check_output(xv, yv, kWhere);
  if constexpr (std::is_same<T, float>::value) {
    if (!float_exact_range(range)) {  // once per call: the exact path for wide ranges
      const auto wp = detail::make_wide_params<N>(scale, static_cast<double>(zero_point), range);
      detail::fake_quantize_wide<N, Z>(
          xv, yv, mask, -1, range, [&](std::int64_t) { return wp; }, &scale, &zero_point);
      return;
    }
  }
  const auto p = detail::make_element_params<N, T>(scale, static_cast<double>(zero_point), range);
  detail::fake_quantize_runs<N, Z>(
      xv, yv, mask, -1, range, path, [&](std::int64_t) { return p; },
      [](const T*, std::ptrdiff_t, T*, std::ptrdiff_t, std::int64_t, bool, detail::BitWriter*) {},
      [](const T*, std::ptrdiff_t, T*, std::ptrdiff_t, std::int64_t, std::int64_t, std::uint64_t*) {
        return false;
      });
}

/// Fake-quantizes x into y with one scale and zero point per index along `axis`.
/// @param scale, zero_point arrays of `count` entries; count must equal x's extent on axis.
/// @param axis in [-rank, rank) (negative counts from the end; ATen accepts only >= 0).
/// Other parameters as fake_quantize_per_tensor.
template <class N = TorchNumerics, class X, class Y, class Z>
void fake_quantize_per_channel(X&& x, Y&& y, Mask* mask, const float* scale, const Z* zero_point,
                               std::int64_t count, int axis, QuantRange range,
                               KernelPath path = KernelPath::kAuto) {
  using T = detail::view_scalar_t<Y>;
  detail::static_check_float<T>();
  static_assert(std::is_same<Z, std::int32_t>::value || std::is_same<Z, float>::value,
                "fake_quantize_per_channel: zero_point must be std::int32_t or float.");
  constexpr const char* kWhere = "fake_quantize_per_channel";
  const TensorView<const T> xv = detail::as_view(std::forward<X>(x));
  const TensorView<T> yv = detail::as_view(std::forward<Y>(y));
  check_fake_quant_range(range, kWhere);
  const int ax = detail::normalize_axis(axis, xv.rank(), kWhere);
  if (xv.numel() == 0) {  // a no-op: nothing to quantize, so no parameter to check
    detail::check_output(xv, yv, kWhere);
    if (mask)
      mask->prepare(xv.rank(), xv.shape(), detail::order_by_strides(xv.rank(), xv.strides()));
    return;
  }
  FQ_CHECK(count == xv.size(ax), ErrorCode::kParamCountMismatch,
           detail::msg(kWhere, ": ", count, " scale/zero-point pairs for ", xv.size(ax),
                       " channels on axis ", axis));
  FQ_CHECK(count == 0 || (scale && zero_point), ErrorCode::kInvalidArgument,
           detail::msg(kWhere, ": null scale or zero-point array"));
  if (!detail::all_channel_params_valid(scale, zero_point, count, range)) {
    for (std::int64_t c = 0; c < count; ++c) {  // report the first bad one
      detail::check_scale(scale[c], kWhere);
      detail::check_zero_point(zero_point[c], range, kWhere);
    }
  }
  detail::check_output(xv, yv, kWhere);
  if constexpr (std::is_same<T, float>::value) {
    if (!float_exact_range(range)) {  // once per call: the exact path for wide ranges
      detail::fake_quantize_wide<N, Z>(
          xv, yv, mask, ax, range,
          [&](std::int64_t c) {
            return detail::make_wide_params<N>(scale[c], static_cast<double>(zero_point[c]), range);
          },
          scale, zero_point);
      return;
    }
  }
  detail::fake_quantize_runs<N, Z>(
      xv, yv, mask, ax, range, path,
      [&](std::int64_t c) {
        return detail::make_element_params<N, T>(scale[c], static_cast<double>(zero_point[c]),
                                                 range);
      },
      [&](const T* xp, std::ptrdiff_t xs, T* yp, std::ptrdiff_t ys, std::int64_t n, bool simd_ok,
          detail::BitWriter* bw) {
#if FQ_HAS_XSIMD
        if constexpr (std::is_same<T, float>::value && std::is_same<Z, std::int32_t>::value) {
          if (simd_ok) {
            simd::fq_run_varying<N, simd::DefaultArch>(xp, yp, n, scale, zero_point, range, bw);
            return;
          }
        }
#endif
        (void)simd_ok;
        detail::fq_run_scalar_varying<N>(xp, xs, yp, ys, n, scale, zero_point, range, bw);
      },
      [&](const T* xp, std::ptrdiff_t x_row, T* yp, std::ptrdiff_t y_row, std::int64_t rows,
          std::int64_t n, std::uint64_t* words) {
#if FQ_HAS_XSIMD
        if constexpr (std::is_same<T, float>::value && std::is_same<Z, std::int32_t>::value) {
          simd::fq_rows<N, simd::DefaultArch>(xp, x_row, yp, y_row, rows, n, scale, zero_point,
                                              range, words);
          return true;
        }
#endif
        (void)xp, (void)x_row, (void)yp, (void)y_row, (void)rows, (void)n, (void)words;
        return false;
      });
}

/// The straight-through backward: dx = dy * mask (MaskedSte) or dx = dy (PassThroughSte).
/// dy and dx must have the shape the mask was written for; dx may be dy itself. dy * mask is
/// a real multiplication by 1 or 0 (detail::mask_multiply) on every path: a NaN dy gives NaN,
/// quieted, wherever it is; +-Inf at a masked position gives NaN; a masked -g gives -0.
template <class ClampGrad = MaskedSte, class DY, class DX>
void fake_quantize_backward(DY&& dy, const Mask& mask, DX&& dx,
                            KernelPath path = KernelPath::kAuto) {
  static_assert(is_clamp_grad<ClampGrad>::value,
                "fake_quantize_backward: ClampGrad must be MaskedSte or PassThroughSte.");
  using T = detail::view_scalar_t<DX>;
  detail::static_check_float<T>();
  constexpr const char* kWhere = "fake_quantize_backward";
  const TensorView<const T> g = detail::as_view(std::forward<DY>(dy));
  const TensorView<T> out = detail::as_view(std::forward<DX>(dx));
  detail::check_output(g, out, kWhere);
  FQ_CHECK(mask.written(), ErrorCode::kInvalidArgument,
           detail::msg(kWhere, ": the mask was never written; pass the Mask a forward filled"));
  bool shape_ok = g.rank() == mask.rank();
  for (int d = 0; shape_ok && d < g.rank(); ++d)
    shape_ok = g.size(d) == mask.shape()[static_cast<std::size_t>(d)];
  FQ_CHECK(shape_ok, ErrorCode::kShapeMismatch,
           detail::msg(kWhere, ": gradient shape ", detail::shape_string(g.rank(), g.shape()),
                       " differs from the shape the mask was written for ",
                       detail::shape_string(mask.rank(), mask.shape())));
  if (g.numel() == 0) return;
  const auto plan = detail::make_run_plan<2>(g.rank(), g.shape(), {&g.strides(), &out.strides()},
                                             mask.order(), -1);
  const auto last = static_cast<std::size_t>(plan.nd - 1);
  const std::ptrdiff_t gs = static_cast<std::ptrdiff_t>(plan.stride[0][last]);
  const std::ptrdiff_t os = static_cast<std::ptrdiff_t>(plan.stride[1][last]);
  const bool simd_ok = detail::use_simd(path) && gs == 1 && os == 1;
  detail::for_each_run(plan, [&](const auto& off, std::int64_t n, std::int64_t, std::int64_t bit) {
    const T* gp = g.data() + off[0];
    T* op = out.data() + off[1];
    if constexpr (ClampGrad::kPassThrough) {
      if (gp != op)
        for (std::int64_t i = 0; i < n; ++i) op[i * os] = gp[i * gs];
    } else {
      detail::BitReader br(mask.words().data(), bit);
#if FQ_HAS_XSIMD
      if (simd_ok) {
        simd::ste_run<simd::DefaultArch>(gp, op, n, br);
        return;
      }
#endif
      (void)simd_ok;
      detail::ste_run_scalar(gp, gs, op, os, n, br);
    }
  });
}

}  // namespace fq

#endif  // FQ_CORE_FAKE_QUANTIZE_HPP_
