// SPDX-License-Identifier: MIT
// fakequant/learnable/lsq_numerics.hpp: the element formulas of LSQ / LSQ+ (learned scale s
// and zero point z) in two numerics modes, and the scalar reference kernels.
//
// Common: inv = f32(1/s), v = x * inv, all in float32; dx is dy * mask, a real multiplication
// by 1 or 0 as ATen's (detail::mask_multiply), so a masked -dy is -0.0 and a NaN dy gives NaN
// (quieted) wherever it is. Per element the kernels produce y, dx, t_s (the d scale summand)
// and t_z = dy * s where clipped, 0 elsewhere; the callers sum them and apply g once:
//     d scale = g * sum(t_s),   d zero point = -(g * sum(t_z))           (g: grad_scale.hpp)
// both never -0 (a sum of nothing, or of zeros, is +0 as ATen's sum). For a one-element sum
// this is ATen's per-element float result bit for bit (a float product of g and a float
// summand, rounded once, equals the double one rounded to float); longer sums differ from
// ATen's float .sum() only in summation order and precision.
//
// LsqTorch (= PyTorch 1.13's _fake_quantize_learnable_per_{tensor,channel}_affine, pins
// P7-P9 of peer-numerics.md, quirks included):
//   forward   zf = clamp(rne(z), qmin, qmax);  y = (clamp(rne(v) + zf) - zf) * s   (exactly
//             fake_quantize_per_tensor/per_channel, +-Inf/NaN/overflow -> qmin)
//   backward  zb = trunc(clamp(z + 0.5, qmin, qmax)) per tensor (half-up: z = 2.5 gives zf 2
//             but zb 3), zb = zf per channel;  xq = rne(fma(x, inv, zb)): zb is added BEFORE
//             rounding, and clipping is decided on the rounded xq:
//               qmin <= xq <= qmax:  dx = dy, t_s = (dy * d) * inv with
//                                    d = fma(xq - zb, s, -x), ATen's f32((xq - zb) s) - x
//                                    contracted, clipped 0 (t_z = 0)
//               xq < qmin, NaN, |xq| >= 2^63 (ATen's int64 cast): dx = 0, t_s = dy * (qmin - zb)
//               xq > qmax:           dx = 0, t_s = dy * (qmax - zb)
//             each t_s bit for bit ATen's per-element summand (before its * grad_factor).
//   The fma: ATen's x86 AVX2/AVX-512 kernels are compiled with FMA contraction, so x*inv+zb
//   and (xq - zb)*s - x are each rounded once (verified on this build: with
//   ATEN_CPU_CAPABILITY=default they are rounded twice, and xq differs at some points within
//   an ulp of a .5 boundary). LsqTorchNoFma reproduces that default-capability kernel
//   (x * inv rounded, then + zb rounded; d = f32(f32((xq - zb) s) - x)).
// LsqPaper (Esser et al. 2020; LSQ+ Bhalgat et al. 2020 with a zero point, beta = -z s):
//   one zero point zr = clamp(rne(z), qmin, qmax) in forward and backward (STE through the
//   rounding of z); clipping decided BEFORE rounding, on v itself:
//     y = (clamp(rne(v) + zr, qmin, qmax) - zr) * s   (saturating: +Inf -> qmax, NaN -> qmin)
//     qmin - zr <= v <= qmax - zr:  dx = dy, t_s = dy * (rne(v) - v), clipped 0
//     v < qmin - zr or NaN:         dx = 0,  t_s = dy * (qmin - zr), t_z = dy * s
//     v > qmax - zr:                dx = 0,  t_s = dy * (qmax - zr), t_z = dy * s
//   For finite in-range data y equals the PyTorch mode's bit for bit; only the gradients
//   differ (v in (qmax - zr, qmax - zr + 1/2] is clipped here, not in PyTorch).
// Ranges: every range must be float_exact_range (|q| <= 2^24, at most 2^24 levels), as the
// formulas run in float32; a wider one is refused (kInvalidRange).
#ifndef FQ_LEARNABLE_LSQ_NUMERICS_HPP_
#define FQ_LEARNABLE_LSQ_NUMERICS_HPP_

#include <algorithm>    // min, max
#include <cmath>        // nearbyint, fma, trunc
#include <cstddef>      // ptrdiff_t
#include <cstdint>      // int64_t
#include <type_traits>  // false_type, true_type
#include <vector>       // vector

#include <fakequant/base/config.hpp>
#include <fakequant/scheme/numerics.hpp>
#include <fakequant/scheme/range.hpp>

namespace fq {

/// PyTorch-compatible LSQ numerics. @tparam Fma true: x*inv+zb rounded once (ATen's AVX2 /
/// AVX-512 kernels, the x86 default); false: rounded twice (ATEN_CPU_CAPABILITY=default).
template <bool Fma>
struct LsqTorchNumerics {
  static constexpr bool kTorch = true;
  static constexpr bool kFma = Fma;
  using forward_numerics = TorchNumerics;
};
using LsqTorch = LsqTorchNumerics<true>;
using LsqTorchNoFma = LsqTorchNumerics<false>;

/// The LSQ paper's numerics: clip before rounding, one zero point.
struct LsqPaper {
  static constexpr bool kTorch = false;
  static constexpr bool kFma = false;
  using forward_numerics = Numerics<RoundHalfEven, MulByInverse, OverflowSaturate>;
};

template <class M>
struct is_lsq_numerics : std::false_type {};
template <bool F>
struct is_lsq_numerics<LsqTorchNumerics<F>> : std::true_type {};
template <>
struct is_lsq_numerics<LsqPaper> : std::true_type {};

namespace detail {

/// Per-channel constants of the LSQ element formulas.
struct LsqParams {
  float inv;    ///< f32(1/s)
  float scale;  ///< s
  float zf;     ///< forward zero point (an integer)
  float zb;     ///< backward zero point (an integer)
  float qmin, qmax;
  float lo, hi;  ///< ds-terms of clipped elements: qmin - zb, qmax - zb
};

/// The LSQ constants of one (scale, zero point) pair; per_channel selects PyTorch's
/// per-channel zero-point rule (zb = zf).
template <class M>
inline LsqParams make_lsq_params(float scale, float zero_point, const QuantRange& r,
                                 bool per_channel) noexcept {
  const float qmin = static_cast<float>(r.quant_min), qmax = static_cast<float>(r.quant_max);
  const float zf = std::min(std::max(std::nearbyint(zero_point), qmin), qmax);
  float zb = zf;
  if (M::kTorch && !per_channel) zb = std::trunc(std::min(std::max(zero_point + 0.5f, qmin), qmax));
  return LsqParams{1.0f / scale, scale, zf, zb, qmin, qmax, qmin - zb, qmax - zb};
}

/// One element: y, dx, and the summands t_s (d scale) and t_z (d zero point, before -g).
template <class M>
FQ_INLINE void lsq_element(float x, float dy, const LsqParams& p, float& y, float& dx, float& ts,
                           float& tz) noexcept {
  using N = typename M::forward_numerics;
  const float v = x * p.inv;
  const float q = std::nearbyint(v) + p.zf;
  y = (clamp_level<N>(q, p.qmin, p.qmax) - p.zf) * p.scale;
  bool below, above;
  if constexpr (M::kTorch) {
    float t;
    if constexpr (M::kFma)
      t = std::fma(x, p.inv, p.zb);
    else
      t = no_contract(v) + p.zb;
    const float xq = std::nearbyint(t);
    below = !(xq >= p.qmin && xq < kInt64Limit<float>);
    above = !below && xq > p.qmax;
    if (!below && !above) {
      const float w = xq - p.zb;  // exact: an integer within the range's span
      float d;
      if constexpr (M::kFma)
        d = std::fma(w, p.scale, -x);
      else
        d = no_contract(w * p.scale) - x;
      ts = no_contract(dy * d) * p.inv;
    }
  } else {
    below = !(v >= p.lo);
    above = !below && v > p.hi;
    if (!below && !above) ts = dy * (std::nearbyint(v) - no_contract(v));  // v not fused
  }
  const bool in = !below && !above;
  dx = mask_multiply(dy, in);
  if (!in) ts = dy * (below ? p.lo : p.hi);
  tz = in ? 0.0f : dy * p.scale;
}

/// d scale and d zero point from the sums (see the file comment): never -0.
inline float lsq_scale_grad(double g, double sum_ts) noexcept {
  return static_cast<float>(0.0 + g * sum_ts);
}
inline float lsq_zero_point_grad(double g, double sum_tz) noexcept {
  return static_cast<float>(0.0 - g * sum_tz);
}

/// The per-channel constants as arrays (structure of arrays), for SIMD runs along the axis.
struct LsqParamArrays {
  std::vector<float> inv, scale, zf, zb, lo, hi;
  explicit LsqParamArrays(const std::vector<LsqParams>& p) {
    for (const LsqParams& e : p) {
      inv.push_back(e.inv);
      scale.push_back(e.scale);
      zf.push_back(e.zf);
      zb.push_back(e.zb);
      lo.push_back(e.lo);
      hi.push_back(e.hi);
    }
  }
};

/// Sums of one channel: d scale and d zero point before the factors.
struct LsqSums {
  double ts = 0.0;
  double tz = 0.0;
};

/// Scalar fused forward+backward over a strided run with constant parameters. Arch: the
/// caller's architecture tag (the loop is vectorised for its flags, simd/arch.hpp).
template <class Arch, class M>
void lsq_run_scalar(const float* x, std::ptrdiff_t xs, const float* dy, std::ptrdiff_t dys,
                    float* y, std::ptrdiff_t ys, float* dx, std::ptrdiff_t dxs, std::int64_t n,
                    const LsqParams& p, LsqSums& acc) noexcept {
  for (std::int64_t i = 0; i < n; ++i) {
    float yv, dxv, ts, tz;
    lsq_element<M>(x[i * xs], dy[i * dys], p, yv, dxv, ts, tz);
    y[i * ys] = yv;
    dx[i * dxs] = dxv;
    acc.ts += static_cast<double>(ts);
    acc.tz += static_cast<double>(tz);
  }
}

/// Scalar fused forward+backward over a run walking the channel axis: element i uses p[i]
/// and adds to acc[i]. Arch as lsq_run_scalar.
template <class Arch, class M>
void lsq_run_scalar_varying(const float* x, std::ptrdiff_t xs, const float* dy, std::ptrdiff_t dys,
                            float* y, std::ptrdiff_t ys, float* dx, std::ptrdiff_t dxs,
                            std::int64_t n, const LsqParams* p, LsqSums* acc) noexcept {
  for (std::int64_t i = 0; i < n; ++i) {
    float yv, dxv, ts, tz;
    lsq_element<M>(x[i * xs], dy[i * dys], p[i], yv, dxv, ts, tz);
    y[i * ys] = yv;
    dx[i * dxs] = dxv;
    acc[i].ts += static_cast<double>(ts);
    acc[i].tz += static_cast<double>(tz);
  }
}

}  // namespace detail
}  // namespace fq

#endif  // FQ_LEARNABLE_LSQ_NUMERICS_HPP_
