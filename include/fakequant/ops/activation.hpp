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
// Forward and backward run in chunks of stack buffers, zero-padded to whole packets (no memory
// kept per element; an element's bits do not depend on where it lies: impl::for_padded_chunks).
// dx is stored, not added, when the op is its first writer (tape/grad_state.hpp).
#ifndef FQ_OPS_ACTIVATION_HPP_
#define FQ_OPS_ACTIVATION_HPP_

#include <algorithm>                           // copy_n, fill, min
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
constexpr std::int64_t kActChunk = 256;  // elements per stack buffer
constexpr std::int64_t kActPad = 16;     // the widest packet (AVX-512 floats)

using AChunk = Eigen::Map<Eigen::ArrayXf, Eigen::Aligned64>;

/// Calls f(o, n, p) over [0, n) in chunks of at most kActChunk, with the chunk of `a` (and of
/// `b` when not null) copied into the 64-byte-aligned buffers ab (bb) and zero-padded to p =
/// n rounded up to kActPad. Eigen then runs every element through the same packet code: no
/// scalar head or tail, whose exp and erf differ from the packet ones in the last bit, so an
/// element's bits depend on neither its address nor its place (docs/numerics.md).
template <class F>
void for_padded_chunks(std::int64_t n, const float* a, float* ab, const float* b, float* bb,
                       F&& f) {
  for (std::int64_t o = 0; o < n; o += kActChunk) {
    const std::int64_t m = std::min(kActChunk, n - o), p = (m + kActPad - 1) / kActPad * kActPad;
    std::copy_n(a + o, m, ab);
    std::fill(ab + m, ab + p, 0.0f);
    if (b != nullptr) {
      std::copy_n(b + o, m, bb);
      std::fill(bb + m, bb + p, 0.0f);
    }
    f(o, m, p);
  }
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
  {
    alignas(64) float xb[impl::kActChunk];
    alignas(64) float yb[impl::kActChunk];
    impl::for_padded_chunks(
        x.numel(), x.value(), xb, nullptr, nullptr,
        [&](std::int64_t o, std::int64_t m, std::int64_t p) {
          const impl::AChunk xv(xb, p);
          impl::AChunk yv(yb, p);
          if (approx == GeluApprox::kNone)
            yv = xv * 0.5f * (1.0f + (xv * impl::kSqrt1_2).erf());
          else  // 0.5·x·(1 + tanh(u)) = x·σ(2u): no cancellation of 1 + tanh(u) for u << 0
            yv = xv /
                 (1.0f +
                  (-2.0f * impl::kSqrt2OverPi * (xv + impl::kGeluKappa * (xv * xv * xv))).exp());
          std::copy_n(yb, m, y.value() + o);
        });
  }
  if (need)
    tape.push_backward([x, y, approx] {
      alignas(64) float xb[impl::kActChunk];
      alignas(64) float db[impl::kActChunk];  // dy, then dx
      alignas(64) float eb[impl::kActChunk];
      alignas(64) float sb[impl::kActChunk];
      const GradWrite dx = x.claim_grad();
      impl::for_padded_chunks(
          x.numel(), x.value(), xb, y.grad(), db,
          [&](std::int64_t o, std::int64_t m, std::int64_t p) {
            const impl::AChunk xa(xb, p);
            impl::AChunk d(db, p);
            if (approx == GeluApprox::kNone) {
              // x·φ(x) with x clamped at ±14 (beyond, |x·φ(x)| < 1e-41): Eigen's SSE/AVX2 exp
              // returns 2.9e-39, not 0, for arguments below −88.38, which x = −1e30 would scale up
              // to ~1e-9.
              const auto xp = xa.max(-14.0f).min(14.0f);
              d = d * (0.5f * (1.0f + (xa * impl::kSqrt1_2).erf()) +
                       xp * (impl::kInvSqrt2Pi * (xp * xp * -0.5f).exp()));
            } else {
              // With e = exp(−2u) and s = σ(2u) = 1/(1 + e): 0.5·(1 + t) = s and 1 − t² = 4·e·s²,
              // both without cancellation. e is capped at 1e30 so that e·s² stays finite (s = 0
              // otherwise), and x at ±10 so that x³ cannot overflow (beyond, the derivative is 1
              // or < 1e-27).
              impl::AChunk xc(xb, p), e(eb, p), s(sb, p);
              xc = xc.max(-10.0f).min(10.0f);
              const auto x2 = xc * xc;
              e = (-2.0f * impl::kSqrt2OverPi * (xc + impl::kGeluKappa * (x2 * xc)))
                      .exp()
                      .min(1e30f);
              s = 1.0f / (1.0f + e);
              d = d * (s + (2.0f * xc) * (e * s * s) *
                               (impl::kSqrt2OverPi * (1.0f + 3.0f * impl::kGeluKappa * x2)));
            }
            write_grad(dx, o, m, impl::AChunk(db, m));
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
  {
    alignas(64) float xb[impl::kActChunk];
    alignas(64) float yb[impl::kActChunk];
    impl::for_padded_chunks(x.numel(), x.value(), xb, nullptr, nullptr,
                            [&](std::int64_t o, std::int64_t m, std::int64_t p) {
                              const impl::AChunk xv(xb, p);
                              impl::AChunk(yb, p) = xv / (1.0f + (-xv).exp());
                              std::copy_n(yb, m, y.value() + o);
                            });
  }
  if (need)
    tape.push_backward([x, y] {
      alignas(64) float xb[impl::kActChunk];
      alignas(64) float db[impl::kActChunk];  // dy, then dx
      alignas(64) float sb[impl::kActChunk];
      const GradWrite dx = x.claim_grad();
      impl::for_padded_chunks(x.numel(), x.value(), xb, y.grad(), db,
                              [&](std::int64_t o, std::int64_t m, std::int64_t p) {
                                const impl::AChunk xc(xb, p);
                                impl::AChunk d(db, p), s(sb, p);
                                s = 1.0f / (1.0f + (-xc).exp());
                                d = d * s * (1.0f + xc * (1.0f - s));
                                write_grad(dx, o, m, impl::AChunk(db, m));
                              });
    });
  return y;
}

}  // namespace ops
}  // namespace fq

#endif  // FQ_OPS_ACTIVATION_HPP_
