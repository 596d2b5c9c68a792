// SPDX-License-Identifier: MIT
// fakequant/ops/activation.hpp: gelu and silu on a Tape (element-wise, Eigen array expressions).
//
//   gelu, GeluApprox::kNone: y = 0.5·x·(1 + erf(x/√2))
//     dx += dy·(Φ + x·φ), Φ = 0.5·(1 + erf(x/√2)), φ = exp(−x²/2)/√(2π)
//   gelu, GeluApprox::kTanh: u = √(2/π)·(x + 0.044715·x³), t = tanh(u), y = 0.5·x·(1 + t)
//     dx += dy·(0.5·(1 + t) + 0.5·x·(1 − t²)·√(2/π)·(1 + 3·0.044715·x²))
//   silu: y = x·σ(x) = x / (1 + exp(−x));  dx += dy·σ·(1 + x·(1 − σ)), σ = 1 / (1 + exp(−x))
// These are PyTorch's GeluKernel / GeluBackwardKernel / silu kernels' formulas. erf is Eigen's
// vectorised rational approximation (a few ulp; ±1 beyond |x/√2| = 4); PyTorch's AVX2 erf is
// Abramowitz–Stegun 7.1.26 (≤ 1.5e-7 absolute): they agree to ~1e-7 absolute, not bit for bit.
// The tanh form is evaluated as y = x·σ(2u) = x / (1 + exp(−2u)) (the same function), with
// 0.5·(1 + t) = σ(2u) and 1 − t² = 4·σ(2u)·σ(−2u) in the gradient: unlike PyTorch's
// 0.5·x·(1 + tanh(u)), whose 1 + t cancels to 0 for x < −4.5 or so, it keeps the tail's
// relative accuracy (PyTorch float32 gives 0 there; the difference is < 1e-6 absolute).
// For very negative x the erf form gives 0·x (1 + erf cancels), as PyTorch. silu(x) for
// x < −88: exp(−x) overflows to +inf and y = −0, σ = 0, as PyTorch.
// The backward recomputes σ from x in chunks of a stack buffer: no memory kept per element.
#ifndef FQ_OPS_ACTIVATION_HPP_
#define FQ_OPS_ACTIVATION_HPP_

#include <algorithm>                           // min
#include <cstdint>                             // int64_t
#include <unsupported/Eigen/SpecialFunctions>  // ArrayBase::erf

#include <Eigen/Core>

#include <fakequant/tape/tape.hpp>

namespace fq {
namespace ops {

/// PyTorch's F.gelu(approximate='none' | 'tanh').
enum class GeluApprox { kNone, kTanh };

namespace impl {
constexpr float kSqrt1_2 = 0.70710678118654752440f;  // 1/√2
constexpr float kInvSqrt2Pi = 0.39894228040143267794f;  // 1/√(2π) (PyTorch: 2/√π · 1/√2 · ½)
constexpr float kSqrt2OverPi = 0.79788456080286535588f;  // √(2/π)  (PyTorch: √2 · 2/√π · ½)
constexpr float kGeluKappa = 0.044715f;
constexpr std::int64_t kActChunk = 256;  // elements per stack buffer in the backward

/// Calls f(offset, length) over [0, n) in chunks of at most kActChunk.
template <class F>
void for_chunks(std::int64_t n, F&& f) {
  for (std::int64_t o = 0; o < n; o += kActChunk) f(o, std::min(kActChunk, n - o));
}
}  // namespace impl

/// GELU, exact (erf) or tanh-approximated, as PyTorch's F.gelu.
inline Var gelu(Tape& tape, const Var& x, GeluApprox approx = GeluApprox::kNone) {
  fq::detail::check_tape(tape, {&x}, "gelu");
  FQ_CHECK(approx == GeluApprox::kNone || approx == GeluApprox::kTanh, ErrorCode::kInvalidArgument,
           fq::detail::msg("gelu: approx must be GeluApprox::kNone or kTanh, got ",
                           static_cast<int>(approx)));
  const bool need = fq::detail::needs_grad(tape, {&x});
  Var y = tape.variable(x.shape(), need);
  if (x.numel() == 0) return y;
  const auto xv = x.array();
  if (approx == GeluApprox::kNone)
    y.array() = xv * 0.5f * (1.0f + (xv * impl::kSqrt1_2).erf());
  else  // 0.5·x·(1 + tanh(u)) = x·σ(2u): no cancellation of 1 + tanh(u) for u << 0
    y.array() =
        xv / (1.0f + (-2.0f * impl::kSqrt2OverPi * (xv + impl::kGeluKappa * (xv * xv * xv))).exp());
  if (need)
    tape.push_backward([x, y, approx] {
      using Chunk = Eigen::Map<Eigen::ArrayXf>;
      using CChunk = Eigen::Map<const Eigen::ArrayXf>;
      if (approx == GeluApprox::kNone) {
        // x·φ(x) with x clamped at ±14 (beyond, |x·φ(x)| < 1e-41): Eigen's SSE/AVX2 exp returns
        // 2.9e-39, not 0, for arguments below −88.38, which x = −1e30 would scale up to ~1e-9.
        const auto xa = x.array();
        const auto xp = xa.max(-14.0f).min(14.0f);
        x.grad_array() += y.grad_array() * (0.5f * (1.0f + (xa * impl::kSqrt1_2).erf()) +
                                            xp * (impl::kInvSqrt2Pi * (xp * xp * -0.5f).exp()));
        return;
      }
      // With e = exp(−2u) and s = σ(2u) = 1/(1 + e): 0.5·(1 + t) = s and 1 − t² = 4·e·s², both
      // without cancellation. e is capped at 1e30 so that e·s² stays finite (s = 0 otherwise),
      // and x at ±10 so that x³ cannot overflow (beyond, the derivative is 1 or < 1e-27).
      alignas(64) float xb[impl::kActChunk];
      alignas(64) float eb[impl::kActChunk];
      alignas(64) float sb[impl::kActChunk];
      impl::for_chunks(x.numel(), [&](std::int64_t o, std::int64_t n) {
        const CChunk dy(y.grad() + o, n);
        Chunk xc(xb, n), e(eb, n), s(sb, n);
        xc = CChunk(x.value() + o, n).max(-10.0f).min(10.0f);
        const auto x2 = xc * xc;
        e = (-2.0f * impl::kSqrt2OverPi * (xc + impl::kGeluKappa * (x2 * xc))).exp().min(1e30f);
        s = 1.0f / (1.0f + e);
        Chunk(x.grad() + o, n) +=
            dy * (s + (2.0f * xc) * (e * s * s) *
                          (impl::kSqrt2OverPi * (1.0f + 3.0f * impl::kGeluKappa * x2)));
      });
    });
  return y;
}

/// SiLU (swish): y = x·σ(x), as PyTorch's F.silu.
inline Var silu(Tape& tape, const Var& x) {
  fq::detail::check_tape(tape, {&x}, "silu");
  const bool need = fq::detail::needs_grad(tape, {&x});
  Var y = tape.variable(x.shape(), need);
  if (x.numel() == 0) return y;
  y.array() = x.array() / (1.0f + (-x.array()).exp());
  if (need)
    tape.push_backward([x, y] {
      alignas(64) float buf[impl::kActChunk];
      impl::for_chunks(x.numel(), [&](std::int64_t o, std::int64_t n) {
        const Eigen::Map<const Eigen::ArrayXf> xc(x.value() + o, n), dy(y.grad() + o, n);
        Eigen::Map<Eigen::ArrayXf> s(buf, n);
        s = 1.0f / (1.0f + (-xc).exp());
        Eigen::Map<Eigen::ArrayXf>(x.grad() + o, n) += dy * s * (1.0f + xc * (1.0f - s));
      });
    });
  return y;
}

}  // namespace ops
}  // namespace fq

#endif  // FQ_OPS_ACTIVATION_HPP_
