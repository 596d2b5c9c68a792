// SPDX-License-Identifier: MIT
// fakequant/ops/norm.hpp: layer_norm and rms_norm over the last axis on a Tape.
//
// x has D = x.size(-1) values per row and numel / D rows; gamma and beta are [D] or Var().
//   layer_norm: μ = Σx/D, σ² = Σ(x−μ)²/D (biased), r = 1/√(σ²+ε), x̂ = (x−μ)·r,
//               y = x̂·γ + β (PyTorch F.layer_norm).
//     Gradient, with g = dy·γ (dy without γ):
//               dx += r·(g − mean(g) − x̂·mean(g·x̂)); dγ += Σ_rows dy·x̂; dβ += Σ_rows dy.
//   rms_norm:   r = 1/√(Σx²/D + ε), x̂ = x·r, y = x̂·γ (PyTorch 2.4 F.rms_norm, LLaMA RMSNorm).
//     Gradient: dx += r·(g − x̂·mean(g·x̂)); dγ += Σ_rows dy·x̂.
// dx is stored, not added, when the op is its first writer (tape/grad_state.hpp).
// Row statistics are accumulated in double, two passes (mean, then Σ(x−μ)²), so a constant row
// has σ² = 0 exactly and a row offset by 1e4 keeps its spread; r = 1/√(f32(σ²) + ε) in float. μ is
// kept as a float pair hi + lo (hi = f32(μ), lo = f32(μ − hi)) and x − μ is formed as (x − hi) −
// lo: exact when x is near μ, where PyTorch's float Welford and its x·r − μ·r lose the spread
// (docs/numerics.md). Other reductions (the gradient's means, dγ, dβ) accumulate in float, as
// PyTorch's; a row's means in an order fixed by D (simd/ordered_reduce.hpp), so a row's
// gradient does not depend on where the row lies. The backward keeps hi, lo and r per row in
// tape scratch and recomputes x̂. Arch: the instruction set of those sums; leave the default.
#ifndef FQ_OPS_NORM_HPP_
#define FQ_OPS_NORM_HPP_

#include <cmath>    // isfinite, sqrt
#include <cstdint>  // int64_t

#include <fakequant/base/config.hpp>
#include <fakequant/simd/arch.hpp>
#include <fakequant/simd/ordered_reduce.hpp>
#include <fakequant/tape/tape.hpp>

namespace fq {
namespace ops {

namespace impl {
/// Σ (x[i] − shift)^p over a row, p = 1 or 2, in double. Eight independent lanes summed at the
/// end: the compiler vectorises the lanes (float → double conversions, adds) without having to
/// reassociate anything (Eigen's cast<double>().sum() stays scalar: ~4x slower).
template <int P>
double row_sum_double(const float* x, std::int64_t d, double shift) {
  double lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  std::int64_t i = 0;
  for (; i + 8 <= d; i += 8)
    for (int j = 0; j < 8; ++j) {
      const double v = static_cast<double>(x[i + j]) - shift;
      lane[j] += P == 1 ? v : v * v;
    }
  for (int j = 0; i < d; ++i, ++j) {
    const double v = static_cast<double>(x[i]) - shift;
    lane[j] += P == 1 ? v : v * v;
  }
  return ((lane[0] + lane[4]) + (lane[1] + lane[5])) + ((lane[2] + lane[6]) + (lane[3] + lane[7]));
}

/// Σ_k g_k (kXhat false) or Σ_k g_k·x̂_k (kXhat true) over a row of d, with g = dy·γ (kGamma)
/// or dy and x̂ = ((x − hi) − lo)·r (rms_norm: hi = lo = 0, which leaves x·r unchanged), in the
/// order of simd::ordered_sum.
template <class Arch, bool kGamma, bool kXhat>
float grad_row_sum(const float* dy, const float* gamma, const float* x, float hi, float lo, float r,
                   std::int64_t d) noexcept {
  const auto term = [&](std::int64_t k) {
    const float g = kGamma ? dy[k] * gamma[k] : dy[k];
    return kXhat ? g * (((x[k] - hi) - lo) * r) : g;
  };
#if FQ_HAS_XSIMD
  if constexpr (kSimdArch<Arch>) {
    using B = xsimd::batch<float, Arch>;
    const auto vterm = [&](std::int64_t k) {
      B g = B::load_unaligned(dy + k);
      if constexpr (kGamma) g = g * B::load_unaligned(gamma + k);
      if constexpr (kXhat) g = g * (((B::load_unaligned(x + k) - B(hi)) - B(lo)) * B(r));
      return g;
    };
    return simd::ordered_sum<Arch>(d, vterm, term);
  }
#endif
  return fq::detail::ordered_sum(d, term);
}

/// Whether an optional parameter (gamma, beta) was given: Var() stands for none.
inline bool has_param(const Var& v) noexcept { return v.tape() != nullptr || v.value() != nullptr; }

/// Validates x, an optional [D] parameter and eps for the normalisations; returns D.
inline std::int64_t check_norm_args(const Tape& tape, const Var& x, const Var& p, const char* pname,
                                    float eps, const char* op) {
  fq::detail::check_tape(tape, {&x}, op);
  FQ_CHECK(x.shape().rank >= 1, ErrorCode::kShapeMismatch,
           fq::detail::msg(op, ": x is a scalar; it needs a last axis to normalise over"));
  const std::int64_t d = x.size(x.shape().rank - 1);
  if (has_param(p)) {
    fq::detail::check_tape(tape, {&p}, op);
    FQ_CHECK(p.shape().rank == 1 && p.size(0) == d, ErrorCode::kShapeMismatch,
             fq::detail::msg(op, ": ", pname, " ", p.shape().str(), " must be [", d, "] for x ",
                             x.shape().str()));
  }
  FQ_CHECK(std::isfinite(eps) && eps > 0.0f, ErrorCode::kInvalidArgument,
           fq::detail::msg(op, ": eps must be finite and > 0, got ", eps));
  return d;
}
}  // namespace impl

/// y = (x − mean) / √(var + eps) · gamma + beta over the last axis; gamma, beta [D] or Var().
template <class Arch = DefaultArch>
Var layer_norm(Tape& tape, const Var& x, const Var& gamma, const Var& beta, float eps = 1e-5f) {
  const bool has_g = impl::has_param(gamma), has_b = impl::has_param(beta);
  const std::int64_t d = impl::check_norm_args(tape, x, gamma, "gamma", eps, "layer_norm");
  impl::check_norm_args(tape, x, beta, "beta", eps, "layer_norm");
  const bool need = fq::detail::needs_grad(tape, {&x}) ||
                    (has_g && fq::detail::needs_grad(tape, {&gamma})) ||
                    (has_b && fq::detail::needs_grad(tape, {&beta}));
  Var y = tape.variable(x.shape(), need);
  if (x.numel() == 0) return y;  // no rows (or D = 0): nothing to compute or differentiate
  const std::int64_t rows = x.numel() / d;
  // Per row: hi, lo (the mean as a float pair) and r = 1/√(σ²+ε); only the backward needs them.
  float* stats = need ? tape.scratch<float>(static_cast<std::size_t>(3 * rows)) : nullptr;
  using Row = Eigen::Map<Eigen::ArrayXf>;
  using CRow = Eigen::Map<const Eigen::ArrayXf>;
  const float* xp = x.value();
  float* yp = y.value();
  const float* gp = gamma.value();
  const float* bp = beta.value();
  const auto dd = static_cast<double>(d);
  FQ_PARALLEL_FOR
  for (std::int64_t i = 0; i < rows; ++i) {
    const CRow xr(xp + i * d, d);
    Row yr(yp + i * d, d);
    const double mean = impl::row_sum_double<1>(xp + i * d, d, 0.0) / dd;
    const double var = impl::row_sum_double<2>(xp + i * d, d, mean) / dd;
    const auto hi = static_cast<float>(mean);
    const auto lo = static_cast<float>(mean - static_cast<double>(hi));
    const float r = 1.0f / std::sqrt(static_cast<float>(var) + eps);  // as PyTorch, in float
    if (stats) {
      stats[3 * i] = hi;
      stats[3 * i + 1] = lo;
      stats[3 * i + 2] = r;
    }
    const auto xhat = ((xr - hi) - lo) * r;
    if (has_g && has_b)
      yr = xhat * CRow(gp, d) + CRow(bp, d);
    else if (has_g)
      yr = xhat * CRow(gp, d);
    else if (has_b)
      yr = xhat + CRow(bp, d);
    else
      yr = xhat;
  }
  if (need)
    tape.push_backward([x, gamma, beta, y, stats, rows, d, has_g, has_b] {
      const float inv_d = 1.0f / static_cast<float>(d);
      // dx is stored by its first writer. γ or β can share x's gradient only as a reshape of a
      // one-row x, and they add after the row's store.
      const GradWrite dxw = x.claim_grad();
      for (std::int64_t i = 0; i < rows; ++i) {
        const float hi = stats[3 * i], lo = stats[3 * i + 1], r = stats[3 * i + 2];
        const CRow xr(x.value() + i * d, d), dy(y.grad() + i * d, d);
        const auto xhat = ((xr - hi) - lo) * r;
        if (dxw.data != nullptr) {
          const auto put = [&dxw, i, d](const auto& e) { write_grad(dxw, i * d, d, e); };
          const float* gv = gamma.value();
          const float* xv = x.value() + i * d;
          const float* dyv = y.grad() + i * d;
          if (has_g) {
            const auto g = dy * CRow(gv, d);
            const float mg =
                impl::grad_row_sum<Arch, true, false>(dyv, gv, xv, hi, lo, r, d) * inv_d;
            const float mgx =
                impl::grad_row_sum<Arch, true, true>(dyv, gv, xv, hi, lo, r, d) * inv_d;
            put(r * (g - mg - xhat * mgx));
          } else {
            const float mg =
                impl::grad_row_sum<Arch, false, false>(dyv, gv, xv, hi, lo, r, d) * inv_d;
            const float mgx =
                impl::grad_row_sum<Arch, false, true>(dyv, gv, xv, hi, lo, r, d) * inv_d;
            put(r * (dy - mg - xhat * mgx));
          }
        }
        if (has_g && gamma.requires_grad()) Row(gamma.grad(), d) += dy * xhat;
        if (has_b && beta.requires_grad()) Row(beta.grad(), d) += dy;
      }
    });
  return y;
}

/// y = x / √(mean(x²) + eps) · gamma over the last axis; gamma [D] or Var().
template <class Arch = DefaultArch>
Var rms_norm(Tape& tape, const Var& x, const Var& gamma, float eps = 1e-6f) {
  const bool has_g = impl::has_param(gamma);
  const std::int64_t d = impl::check_norm_args(tape, x, gamma, "gamma", eps, "rms_norm");
  const bool need =
      fq::detail::needs_grad(tape, {&x}) || (has_g && fq::detail::needs_grad(tape, {&gamma}));
  Var y = tape.variable(x.shape(), need);
  if (x.numel() == 0) return y;
  const std::int64_t rows = x.numel() / d;
  float* rs = need ? tape.scratch<float>(static_cast<std::size_t>(rows)) : nullptr;
  using Row = Eigen::Map<Eigen::ArrayXf>;
  using CRow = Eigen::Map<const Eigen::ArrayXf>;
  const float* xp = x.value();
  float* yp = y.value();
  const float* gp = gamma.value();
  const auto dd = static_cast<double>(d);
  FQ_PARALLEL_FOR
  for (std::int64_t i = 0; i < rows; ++i) {
    const CRow xr(xp + i * d, d);
    const double ms = impl::row_sum_double<2>(xp + i * d, d, 0.0) / dd;
    const float r = 1.0f / std::sqrt(static_cast<float>(ms) + eps);
    if (rs) rs[i] = r;
    if (has_g)
      Row(yp + i * d, d) = (xr * r) * CRow(gp, d);
    else
      Row(yp + i * d, d) = xr * r;
  }
  if (need)
    tape.push_backward([x, gamma, y, rs, rows, d, has_g] {
      const float inv_d = 1.0f / static_cast<float>(d);
      const GradWrite dxw = x.claim_grad();  // as layer_norm's
      for (std::int64_t i = 0; i < rows; ++i) {
        const float r = rs[i];
        const CRow xr(x.value() + i * d, d), dy(y.grad() + i * d, d);
        const auto xhat = xr * r;
        if (dxw.data != nullptr) {
          const auto put = [&dxw, i, d](const auto& e) { write_grad(dxw, i * d, d, e); };
          const float* gv = gamma.value();
          const float* xv = x.value() + i * d;
          const float* dyv = y.grad() + i * d;
          if (has_g) {
            const auto g = dy * CRow(gv, d);
            put(r *
                (g - xhat * (impl::grad_row_sum<Arch, true, true>(dyv, gv, xv, 0.0f, 0.0f, r, d) *
                             inv_d)));
          } else {
            put(r *
                (dy - xhat * (impl::grad_row_sum<Arch, false, true>(dyv, gv, xv, 0.0f, 0.0f, r, d) *
                              inv_d)));
          }
        }
        if (has_g && gamma.requires_grad()) Row(gamma.grad(), d) += dy * xhat;
      }
    });
  return y;
}

}  // namespace ops
}  // namespace fq

#endif  // FQ_OPS_NORM_HPP_
