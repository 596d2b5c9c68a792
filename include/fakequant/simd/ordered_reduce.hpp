// SPDX-License-Identifier: MIT
// fakequant/simd/ordered_reduce.hpp: float sums and exponentials whose bits depend on the
// element count and the instruction set (Arch) only, never on where the data lies in memory
// or where a row sits in a larger buffer.
//
// Why: Eigen's reductions and coefficient-wise functions over an unaligned Map peel scalars up
// to the first aligned packet. A sum's order then moves with the address (the same 25 floats
// summed at 16 offsets gave three different last bits), and exp runs std::exp on the peeled
// elements and Eigen's packet exp on the rest, which differ by an ulp. So the same row of
// logits gave a softmax that changed with its position in the batch or the arena.
//
//   ordered_sum<Arch>(n, vterm, term)  Σ term(k) for k in [0, n): SIMD: two vectors of running
//       sums over the whole pairs of batches (s0 += vterm(k), s1 += vterm(k + W)), a last whole
//       batch into s0, xsimd::hadd(s0 + s1), then the n mod W (or W + n mod W) remaining terms
//       added in index order with term(k). ScalarArch: core/ordered_sum.hpp (16 lanes).
//       vterm(k) returns the batch of term(k) .. term(k + W − 1), computed with the same
//       operations lane by lane.
//   exp_flushed<Arch>(z, e, n)  e[i] = exp(z[i]), 0 where that is below FLT_MIN (in place when
//       z == e). Every element goes through the same batch exp (xsimd::exp): the last partial
//       batch is padded with zeros in a local buffer. ScalarArch: std::exp. The flush gives
//       masked logits (−inf, or x − m < −87.34) an exact 0 on every instruction set. xsimd's
//       exp overflows to +inf above ≈ 88.38 (std::exp above ≈ 88.72); the callers pass z ≤ 0.
#ifndef FQ_SIMD_ORDERED_REDUCE_HPP_
#define FQ_SIMD_ORDERED_REDUCE_HPP_

#include <cmath>    // exp
#include <cstdint>  // int64_t
#include <limits>   // numeric_limits

#include <fakequant/base/config.hpp>
#include <fakequant/core/ordered_sum.hpp>
#include <fakequant/simd/arch.hpp>

// GCC 12 reports its own AVX-512 intrinsics (_mm512_undefined_*) as uninitialized when they
// are inlined here (GCC bug 105593); the kernels read no uninitialized data.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

namespace fq {
namespace simd {

/// Σ term(k) over [0, n) in the order of the file comment.
template <class Arch, class VTerm, class Term>
FQ_INLINE float ordered_sum(std::int64_t n, VTerm&& vterm, Term&& term) noexcept {
#if FQ_HAS_XSIMD
  if constexpr (kSimdArch<Arch>) {
    using B = xsimd::batch<float, Arch>;
    constexpr auto kW = static_cast<std::int64_t>(B::size);
    B s0(0.0f), s1(0.0f);
    std::int64_t k = 0;
    for (; k + 2 * kW <= n; k += 2 * kW) {
      s0 += vterm(k);
      s1 += vterm(k + kW);
    }
    if (k + kW <= n) {
      s0 += vterm(k);
      k += kW;
    }
    float s = xsimd::hadd(s0 + s1);
    for (; k < n; ++k) s += term(k);
    return s;
  }
#endif
  (void)vterm;
  return fq::detail::ordered_sum(n, term);
}

/// Σ a[k] over [0, n).
template <class Arch>
float ordered_sum(const float* a, std::int64_t n) noexcept {
  const auto term = [&](std::int64_t k) { return a[k]; };
#if FQ_HAS_XSIMD
  if constexpr (kSimdArch<Arch>) {
    using B = xsimd::batch<float, Arch>;
    return ordered_sum<Arch>(
        n, [&](std::int64_t k) { return B::load_unaligned(a + k); }, term);
  }
#endif
  return fq::detail::ordered_sum(n, term);
}

/// Σ a[k]·b[k] over [0, n).
template <class Arch>
float ordered_dot(const float* a, const float* b, std::int64_t n) noexcept {
  const auto term = [&](std::int64_t k) { return a[k] * b[k]; };
#if FQ_HAS_XSIMD
  if constexpr (kSimdArch<Arch>) {
    using B = xsimd::batch<float, Arch>;
    return ordered_sum<Arch>(
        n, [&](std::int64_t k) { return B::load_unaligned(a + k) * B::load_unaligned(b + k); },
        term);
  }
#endif
  return fq::detail::ordered_sum(n, term);
}

/// e[i] = exp(z[i]) for i in [0, n), flushed to 0 below FLT_MIN (file comment).
template <class Arch>
void exp_flushed(const float* z, float* e, std::int64_t n) noexcept {
  constexpr float kMin = std::numeric_limits<float>::min();
#if FQ_HAS_XSIMD
  if constexpr (kSimdArch<Arch>) {
    using B = xsimd::batch<float, Arch>;
    constexpr auto kW = static_cast<std::int64_t>(B::size);
    const B lo(kMin), zero(0.0f);
    const auto one = [&](const B& v) {
      const B r = xsimd::exp(v);
      return xsimd::select(r < lo, zero, r);  // NaN compares false: NaN stays
    };
    std::int64_t i = 0;
    for (; i + kW <= n; i += kW) one(B::load_unaligned(z + i)).store_unaligned(e + i);
    if (i < n) {
      alignas(64) float pad[B::size] = {};
      for (std::int64_t j = 0; i + j < n; ++j) pad[j] = z[i + j];
      one(B::load_aligned(pad)).store_aligned(pad);
      for (std::int64_t j = 0; i + j < n; ++j) e[i + j] = pad[j];
    }
    return;
  }
#endif
  for (std::int64_t i = 0; i < n; ++i) {
    const float r = std::exp(z[i]);
    e[i] = r < kMin ? 0.0f : r;
  }
}

}  // namespace simd
}  // namespace fq

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#endif  // FQ_SIMD_ORDERED_REDUCE_HPP_
