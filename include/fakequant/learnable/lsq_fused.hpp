// SPDX-License-Identifier: MIT
// fakequant/learnable/lsq_fused.hpp: the fused LSQ / LSQ+ forward+backward functions
// lsq_per_tensor and lsq_per_channel (the LsqQuantizer that owns the parameters: lsq.hpp).
//
// Forward    y  = (clamp(rne(x * f32(1/s)) + zf, qmin, qmax) - zf) * s
// Backward   dx = dy * [not clipped]
//            d s = g * sum(dy * ds-term),  d z = g * sum(dy * (clipped ? -s : 0))
// with the zero points zf/zb, the clipping rule and the ds-term of the numerics policy (see
// learnable/lsq_numerics.hpp: LsqTorch = PyTorch 1.13 bit for bit for y and dx; LsqPaper =
// clip before rounding, one zero point) and g the gradient scale (learnable/grad_scale.hpp).
// The sums run over the tensor (per tensor) or over every dimension but the axis (per
// channel). One pass over memory reads x and dy and writes y and dx, accumulating both sums:
// use it in the backward pass (the forward is recomputed: no mask is kept between passes).
// Only float32 tensors. Empty tensors write nothing and give zero gradients.
// Arch (fq::DefaultArch) and the Isa path: the kernels' instruction set, as for fake
// quantization (simd/arch.hpp); the SIMD sums differ from the scalar ones in rounding only
// (learnable/lsq_simd.hpp), y and dx are bit-identical.
#ifndef FQ_LEARNABLE_LSQ_FUSED_HPP_
#define FQ_LEARNABLE_LSQ_FUSED_HPP_

#include <cmath>        // isfinite, isnan
#include <cstdint>      // int64_t
#include <type_traits>  // is_same
#include <utility>      // forward
#include <vector>       // vector

#include <fakequant/core/checks.hpp>
#include <fakequant/core/run_plan.hpp>
#include <fakequant/core/tensor_view.hpp>
#include <fakequant/learnable/lsq_numerics.hpp>
#include <fakequant/learnable/lsq_simd.hpp>
#include <fakequant/simd/arch.hpp>

namespace fq {

/// Gradients of a per-tensor LSQ call, w.r.t. the scale and the (float) zero point given.
struct LsqGrad {
  float scale;
  float zero_point;
};

namespace detail {

/// Validates the four views of a fused call: same shapes; y may be x and dx may be dy
/// (in place), otherwise no overlap.
inline void check_lsq_views(const TensorView<const float>& x, const TensorView<const float>& dy,
                            const TensorView<float>& y, const TensorView<float>& dx,
                            const char* where) {
  check_output(x, y, where);
  check_output(dy, dx, where);
  check_output(x, dx, where);
  check_output(dy, y, where);
  FQ_CHECK(y.numel() == 0 || y.data() != dx.data(), ErrorCode::kInvalidLayout,
           msg(where, ": y and dx must be different tensors"));
  if (y.numel() > 0) check_output(TensorView<const float>(y), dx, where);
}

/// A learned zero point must be finite; NaN (e.g. after a diverged step) is named as such,
/// before any conversion to an integer.
inline void check_lsq_zero_point(float z, const char* where) {
  FQ_CHECK(!std::isnan(z), ErrorCode::kInvalidZeroPoint, msg(where, ": zero point is NaN"));
  FQ_CHECK(std::isfinite(z), ErrorCode::kInvalidZeroPoint,
           msg(where, ": zero point must be finite, got ", z));
}

/// LSQ computes in float32: the range must be float-exact (|q| <= 2^24, at most 2^24 levels).
inline void check_lsq_range(const QuantRange& r, const char* where) {
  check_range(r, where);
  FQ_CHECK(float_exact_range(r), ErrorCode::kInvalidRange,
           msg(where, ": range [", r.quant_min, ", ", r.quant_max,
               "] has more than 2^24 levels; LSQ computes in float32, where they are not exact"));
}

inline void check_grad_factor(float g, const char* where) {
  FQ_CHECK(std::isfinite(g), ErrorCode::kInvalidArgument,
           msg(where, ": grad_factor must be finite, got ", g));
}

/// True if the SIMD kernel of numerics M exists for Arch.
template <class M, class Arch>
constexpr bool lsq_simd_arch() noexcept {
#if FQ_HAS_XSIMD
  if constexpr (kSimdArch<Arch>) return simd::lsq_simd_supported<M, Arch>();
#endif
  return false;
}

/// Runs the fused kernel over x, dy, y, dx with the parameters param_vec[ch] and the
/// accumulators sums[ch] of each channel; the SIMD kernels of Arch run if `simd` (from the
/// Isa argument) and M has them on Arch.
template <class M, class Arch>
void lsq_runs(const TensorView<const float>& x, const TensorView<const float>& dy,
              const TensorView<float>& y, const TensorView<float>& dx, int axis, bool simd,
              const std::vector<LsqParams>& param_vec, LsqSums* sums) {
  if (x.numel() == 0) return;
  const LsqParams* params = param_vec.data();
  const DimOrder order = order_by_strides(x.rank(), x.strides());
  const auto plan = make_run_plan<4>(
      x.rank(), x.shape(), {&x.strides(), &dy.strides(), &y.strides(), &dx.strides()}, order, axis);
  const auto last = static_cast<std::size_t>(plan.nd - 1);
  std::ptrdiff_t st[4];
  for (std::size_t k = 0; k < 4; ++k) st[k] = static_cast<std::ptrdiff_t>(plan.stride[k][last]);
  constexpr bool kSimd = lsq_simd_arch<M, Arch>();
  const bool simd_ok = kSimd && simd && st[0] == 1 && st[1] == 1 && st[2] == 1 && st[3] == 1;
#if FQ_HAS_XSIMD
  // Runs along the axis (channels innermost): per-channel parameter arrays; kLsqBlock runs are
  // gathered and swept a batch of channels at a time (simd::lsq_block_varying).
  const bool varying_simd = simd_ok && plan.axis == plan.nd - 1;
  const LsqParamArrays arrays(varying_simd ? param_vec : std::vector<LsqParams>());
  std::vector<float> blk(varying_simd ? 2 * param_vec.size() : 0, 0.0f);
  simd::LsqRunPtrs block[simd::kLsqBlock];
  std::int64_t pending = 0, run_n = 0;
#endif
  for_each_run(plan, [&](const auto& off, std::int64_t n, std::int64_t ch, std::int64_t) {
    const float* xp = x.data() + off[0];
    const float* gp = dy.data() + off[1];
    float* yp = y.data() + off[2];
    float* dxp = dx.data() + off[3];
    if (ch < 0) {
#if FQ_HAS_XSIMD
      if constexpr (kSimd) {
        if (varying_simd) {
          run_n = n;  // every run walks the whole axis
          block[pending++] = simd::LsqRunPtrs{xp, gp, yp, dxp};
          if (pending == simd::kLsqBlock) {
            simd::lsq_block_varying<M, Arch>(block, pending, run_n, arrays, params, blk.data(),
                                             sums);
            pending = 0;
          }
          return;
        }
      }
#endif
      lsq_run_scalar_varying<Arch, M>(xp, st[0], gp, st[1], yp, st[2], dxp, st[3], n, params, sums);
      return;
    }
    const auto c = static_cast<std::size_t>(ch);
#if FQ_HAS_XSIMD
    if constexpr (kSimd) {
      if (simd_ok) {
        simd::lsq_run<M, Arch>(xp, gp, yp, dxp, n, params[c], sums[c]);
        return;
      }
    }
#endif
    (void)simd_ok;
    lsq_run_scalar<Arch, M>(xp, st[0], gp, st[1], yp, st[2], dxp, st[3], n, params[c], sums[c]);
  });
#if FQ_HAS_XSIMD
  if constexpr (kSimd) {
    if (pending > 0)
      simd::lsq_block_varying<M, Arch>(block, pending, run_n, arrays, params, blk.data(), sums);
  }
#endif
}

}  // namespace detail

/// Fused LSQ forward+backward, one scale and zero point for the tensor.
/// @tparam M LsqTorch (default) | LsqTorchNoFma | LsqPaper.
/// @param x, dy inputs (float; Eigen objects convert). @param y, dx outputs of x's shape;
/// y may be x, dx may be dy. @param scale > 0, finite (the effective scale).
/// @param zero_point finite float; rounded and clamped per M. @param grad_factor g.
/// @param path Isa::kAuto or Isa::kScalar (simd/arch.hpp).
/// @return d scale and d zero point (already multiplied by g).
template <class M = LsqTorch, class Arch = DefaultArch, class X, class DY, class Y, class DX>
LsqGrad lsq_per_tensor(X&& x, DY&& dy, Y&& y, DX&& dx, float scale, float zero_point,
                       QuantRange range, float grad_factor = 1.0f, Isa path = Isa::kAuto) {
  static_assert(is_lsq_numerics<M>::value,
                "lsq_per_tensor: M must be LsqTorch, LsqTorchNoFma or LsqPaper.");
  static_assert(std::is_same<detail::view_scalar_t<Y>, float>::value &&
                    std::is_same<detail::view_scalar_t<DX>, float>::value,
                "learnable fake quantization takes float tensors.");
  constexpr const char* kWhere = "lsq_per_tensor";
  const bool simd = detail::use_simd_kernels<Arch>(path, kWhere);
  const TensorView<const float> xv = detail::as_view(std::forward<X>(x));
  const TensorView<const float> gv = detail::as_view(std::forward<DY>(dy));
  const TensorView<float> yv = detail::as_view(std::forward<Y>(y));
  const TensorView<float> dxv = detail::as_view(std::forward<DX>(dx));
  detail::check_lsq_range(range, kWhere);
  detail::check_scale(scale, kWhere);
  detail::check_lsq_zero_point(zero_point, kWhere);
  detail::check_grad_factor(grad_factor, kWhere);
  detail::check_lsq_views(xv, gv, yv, dxv, kWhere);
  const std::vector<detail::LsqParams> p{
      detail::make_lsq_params<M>(scale, zero_point, range, false)};
  detail::LsqSums sums;
  detail::lsq_runs<M, Arch>(xv, gv, yv, dxv, -1, simd, p, &sums);
  const double g = static_cast<double>(grad_factor);
  return LsqGrad{detail::lsq_scale_grad(g, sums.ts), detail::lsq_zero_point_grad(g, sums.tz)};
}

/// Fused LSQ forward+backward, one scale and zero point per index along `axis`.
/// @param scale, zero_point arrays of `count` entries (count = x's extent on axis; for an
/// empty x any count, whose gradients are set to +0).
/// @param dscale, dzero_point outputs of `count` entries (overwritten, multiplied by g).
/// @param axis in [-rank, rank). Other parameters as lsq_per_tensor.
template <class M = LsqTorch, class Arch = DefaultArch, class X, class DY, class Y, class DX>
void lsq_per_channel(X&& x, DY&& dy, Y&& y, DX&& dx, const float* scale, const float* zero_point,
                     std::int64_t count, int axis, QuantRange range, float grad_factor,
                     float* dscale, float* dzero_point, Isa path = Isa::kAuto) {
  static_assert(is_lsq_numerics<M>::value,
                "lsq_per_channel: M must be LsqTorch, LsqTorchNoFma or LsqPaper.");
  static_assert(std::is_same<detail::view_scalar_t<Y>, float>::value &&
                    std::is_same<detail::view_scalar_t<DX>, float>::value,
                "learnable fake quantization takes float tensors.");
  constexpr const char* kWhere = "lsq_per_channel";
  const bool simd = detail::use_simd_kernels<Arch>(path, kWhere);
  const TensorView<const float> xv = detail::as_view(std::forward<X>(x));
  const TensorView<const float> gv = detail::as_view(std::forward<DY>(dy));
  const TensorView<float> yv = detail::as_view(std::forward<Y>(y));
  const TensorView<float> dxv = detail::as_view(std::forward<DX>(dx));
  detail::check_lsq_range(range, kWhere);
  const int ax = detail::normalize_axis(axis, xv.rank(), kWhere);
  FQ_CHECK(count == xv.size(ax) || (xv.numel() == 0 && count >= 0), ErrorCode::kParamCountMismatch,
           detail::msg(kWhere, ": ", count, " scale/zero-point pairs for ", xv.size(ax),
                       " channels on axis ", axis));
  FQ_CHECK(count == 0 || (scale && zero_point && dscale && dzero_point),
           ErrorCode::kInvalidArgument,
           detail::msg(kWhere, ": null scale, zero-point or gradient array"));
  detail::check_grad_factor(grad_factor, kWhere);
  if (xv.numel() == 0) {  // nothing to quantize: zero gradients, parameters not checked
    detail::check_lsq_views(xv, gv, yv, dxv, kWhere);
    for (std::int64_t c = 0; c < count; ++c) dscale[c] = dzero_point[c] = 0.0f;
    return;
  }
  for (std::int64_t c = 0; c < count; ++c) {
    detail::check_scale(scale[c], kWhere);
    detail::check_lsq_zero_point(zero_point[c], kWhere);
  }
  detail::check_lsq_views(xv, gv, yv, dxv, kWhere);
  const auto n = static_cast<std::size_t>(count);
  std::vector<detail::LsqParams> params(n);
  std::vector<detail::LsqSums> sums(n);
  for (std::size_t c = 0; c < n; ++c)
    params[c] = detail::make_lsq_params<M>(scale[c], zero_point[c], range, true);
  detail::lsq_runs<M, Arch>(xv, gv, yv, dxv, ax, simd, params, sums.data());
  const double g = static_cast<double>(grad_factor);
  for (std::size_t c = 0; c < n; ++c) {
    dscale[c] = detail::lsq_scale_grad(g, sums[c].ts);
    dzero_point[c] = detail::lsq_zero_point_grad(g, sums[c].tz);
  }
}

}  // namespace fq

#endif  // FQ_LEARNABLE_LSQ_FUSED_HPP_
