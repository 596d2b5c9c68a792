// SPDX-License-Identifier: MIT
// fakequant/learnable/lsq_numerics.hpp: the element formulas of LSQ / LSQ+ (learned scale s
// and zero point z) in two numerics modes, and the scalar reference kernels.
//
// Common: inv = f32(1/s), v = x * inv, all in float32; dx is dy * mask, a multiplication by
// 1 or 0 as ATen's, so a masked -dy is -0.0 and a masked NaN stays NaN. Per element the
// kernels produce y, dx, t_s = dy * ds-term and t_z = dy * [clipped]; the callers sum them:
//     d scale = g * sum(t_s),   d zero point = -s * g * sum(t_z)       (g: grad_scale.hpp)
//
// LsqTorch (= PyTorch 1.13's _fake_quantize_learnable_per_{tensor,channel}_affine, pins
// P7-P9 of peer-numerics.md, quirks included):
//   forward   zf = clamp(rne(z), qmin, qmax);  y = (clamp(rne(v) + zf) - zf) * s   (exactly
//             fake_quantize_per_tensor/per_channel, +-Inf/NaN/overflow -> qmin)
//   backward  zb = trunc(clamp(z + 0.5, qmin, qmax)) per tensor (half-up: z = 2.5 gives zf 2
//             but zb 3), zb = zf per channel;  xq = rne(fma(x, inv, zb)): zb is added BEFORE
//             rounding, and clipping is decided on the rounded xq:
//               qmin <= xq <= qmax:  dx = dy, ds-term = (xq - zb) - v, clipped 0
//                                    (ATen: ((xq - zb) s - x) inv; equal up to rounding)
//               xq < qmin, NaN, |xq| >= 2^63 (ATen's int64 cast): dx = 0, qmin - zb, 1
//               xq > qmax:           dx = 0, qmax - zb, 1
//   The fma: ATen's x86 AVX2/AVX-512 kernels are compiled with FMA contraction, so x*inv+zb
//   is rounded once (verified on this build: with ATEN_CPU_CAPABILITY=default it is rounded
//   twice, and xq differs at some points within an ulp of a .5 boundary). LsqTorchNoFma
//   reproduces that default-capability kernel (x * inv rounded, then + zb rounded).
// LsqPaper (Esser et al. 2020; LSQ+ Bhalgat et al. 2020 with a zero point, beta = -z s):
//   one zero point zr = clamp(rne(z), qmin, qmax) in forward and backward (STE through the
//   rounding of z); clipping decided BEFORE rounding, on v itself:
//     y = (clamp(rne(v) + zr, qmin, qmax) - zr) * s   (saturating: +Inf -> qmax, NaN -> qmin)
//     qmin - zr <= v <= qmax - zr:  dx = dy, ds-term = rne(v) - v, clipped 0
//     v < qmin - zr or NaN:         dx = 0,  qmin - zr, 1
//     v > qmax - zr:                dx = 0,  qmax - zr, 1
//   For finite in-range data y equals the PyTorch mode's bit for bit; only the gradients
//   differ (v in (qmax - zr, qmax - zr + 1/2] is clipped here, not in PyTorch).
#ifndef FQ_LEARNABLE_LSQ_NUMERICS_HPP_
#define FQ_LEARNABLE_LSQ_NUMERICS_HPP_

#include <algorithm>    // min, max
#include <cmath>        // nearbyint, fma, trunc
#include <cstddef>      // ptrdiff_t
#include <cstdint>      // int64_t
#include <type_traits>  // false_type, true_type
#include <vector>       // vector

#include <fakequant/core/numerics.hpp>
#include <fakequant/core/range.hpp>

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

/// One element: y, dx, and the summands t_s (d scale) and t_z (d zero point, before -s g).
template <class M>
FQ_INLINE void lsq_element(float x, float dy, const LsqParams& p, float& y, float& dx, float& ts,
                           float& tz) noexcept {
  using N = typename M::forward_numerics;
  const float v = x * p.inv;
  const float q = std::nearbyint(v) + p.zf;
  y = (clamp_level<N>(q, p.qmin, p.qmax) - p.zf) * p.scale;
  bool below, above;
  float in_term;
  if constexpr (M::kTorch) {
    float t;
    if constexpr (M::kFma)
      t = std::fma(x, p.inv, p.zb);
    else
      t = no_contract(v) + p.zb;
    const float xq = std::nearbyint(t);
    below = !(xq >= p.qmin && xq < kInt64Limit<float>);
    above = !below && xq > p.qmax;
    in_term = (xq - p.zb) - v;
  } else {
    below = !(v >= p.lo);
    above = !below && v > p.hi;
    in_term = std::nearbyint(v) - v;
  }
  const bool in = !below && !above;
  dx = dy * (in ? 1.0f : 0.0f);
  ts = dy * (in ? in_term : (below ? p.lo : p.hi));
  tz = in ? 0.0f : dy;
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

/// Scalar fused forward+backward over a strided run with constant parameters.
template <class M>
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
/// and adds to acc[i].
template <class M>
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
