// SPDX-License-Identifier: MIT
// fakequant/learnable/lsq_simd.hpp: the fused LSQ forward+backward run kernel over
// xsimd::batch<float, A>.
//
// Lane by lane it performs exactly the operations of the scalar reference lsq_element()
// (learnable/lsq_numerics.hpp) for y and dx, so they are bit-identical to it; the y of a
// batch is simd::fake_quant_batch, the foundation's forward. The summands are accumulated
// in float batches over blocks of kLsqBlock elements as three sums (dy * in-range term,
// fused where FMA exists; dy below; dy above the range: the clipped terms qmin - zb and
// qmax - zb are applied once per block, in double), then added to double: a different
// rounding and order than the scalar kernel's element-by-element double sum (relative
// difference ~1e-6, tested with a tolerance). The PyTorch mode's fma needs a fused
// multiply-add instruction: with xsimd on x86 without FMA (e.g. SSE2 baseline) the PyTorch
// mode falls back to the scalar kernel (lsq_simd_supported() says which).
#ifndef FQ_LEARNABLE_LSQ_SIMD_HPP_
#define FQ_LEARNABLE_LSQ_SIMD_HPP_

#include <fakequant/config.hpp>

#if FQ_HAS_XSIMD
#include <algorithm>    // min
#include <cstdint>      // int64_t
#include <type_traits>  // is_base_of
#include <vector>       // vector

#include <fakequant/learnable/lsq_numerics.hpp>
#include <fakequant/simd/fake_quantize_simd.hpp>
#include <fakequant/simd/xsimd_compat.hpp>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace fq {
namespace simd {

/// Elements whose summands are accumulated in float before being added to double.
inline constexpr std::int64_t kLsqBlock = 1024;

/// True if a*b+c can be computed with one rounding on batches of architecture A.
template <class A>
inline constexpr bool kHaveFusedMulAdd =
#if XSIMD_WITH_AVX512F
    std::is_base_of<xsimd::avx512f, A>::value ||
#endif
#if defined(__FMA__) && XSIMD_WITH_AVX
    std::is_base_of<xsimd::avx, A>::value ||
#endif
#if defined(__FMA__) && XSIMD_WITH_SSE2
    std::is_base_of<xsimd::sse2, A>::value ||
#endif
    false;

/// a*b+c rounded once (only where kHaveFusedMulAdd<A>).
template <class A>
FQ_INLINE xsimd::batch<float, A> fused_mul_add(const xsimd::batch<float, A>& a,
                                               const xsimd::batch<float, A>& b,
                                               const xsimd::batch<float, A>& c) noexcept {
#if XSIMD_WITH_AVX512F
  if constexpr (std::is_base_of<xsimd::avx512f, A>::value) {
    return _mm512_fmadd_ps(a, b, c);
  } else
#endif
#if defined(__FMA__) && XSIMD_WITH_AVX
      if constexpr (std::is_base_of<xsimd::avx, A>::value) {
    return _mm256_fmadd_ps(a, b, c);
  } else
#endif
#if defined(__FMA__) && XSIMD_WITH_SSE2
      if constexpr (std::is_base_of<xsimd::sse2, A>::value) {
    return _mm_fmadd_ps(a, b, c);
  } else
#endif
  {
    static_assert(kHaveFusedMulAdd<A>, "fused_mul_add: no fused multiply-add on this arch.");
    return a * b + c;
  }
}

/// True if the SIMD kernel of numerics M runs on architecture A.
template <class M, class A>
constexpr bool lsq_simd_supported() noexcept {
  return !M::kFma || kHaveFusedMulAdd<A>;
}

/// The constants of a run, broadcast once (kept in registers: the stores to y and dx could
/// alias a LsqParams in memory, so the compiler would reload it every batch).
template <class A>
struct LsqBatchParams {
  using B = xsimd::batch<float, A>;
  B inv, scale, zf, zb, qmin, qmax, lo, hi;
  explicit LsqBatchParams(const detail::LsqParams& p) noexcept
      : inv(p.inv),
        scale(p.scale),
        zf(p.zf),
        zb(p.zb),
        qmin(p.qmin),
        qmax(p.qmax),
        lo(p.lo),
        hi(p.hi) {}
  /// Lanes i..i+W of per-channel arrays (channel c in lane c - i).
  LsqBatchParams(const detail::LsqParamArrays& a, std::int64_t i, const B& qmin_b,
                 const B& qmax_b) noexcept
      : inv(B::load_unaligned(a.inv.data() + i)),
        scale(B::load_unaligned(a.scale.data() + i)),
        zf(B::load_unaligned(a.zf.data() + i)),
        zb(B::load_unaligned(a.zb.data() + i)),
        qmin(qmin_b),
        qmax(qmax_b),
        lo(B::load_unaligned(a.lo.data() + i)),
        hi(B::load_unaligned(a.hi.data() + i)) {}
};

/// Partial sums of a block: dy * in-range term, dy below, dy above the range.
template <class A>
struct LsqBatchSums {
  using B = xsimd::batch<float, A>;
  B in = B(0.0f), below = B(0.0f), above = B(0.0f);
};

/// acc += m ? v : 0 (one masked add on AVX-512).
template <class A>
FQ_INLINE void add_where(xsimd::batch<float, A>& acc, const xsimd::batch_bool<float, A>& m,
                         const xsimd::batch<float, A>& v) noexcept {
#if XSIMD_WITH_AVX512F
  if constexpr (std::is_base_of<xsimd::avx512f, A>::value) {
    acc = _mm512_mask_add_ps(acc, m, acc, v);
    return;
  }
#endif
  acc += xsimd::select(m, v, xsimd::batch<float, A>(0.0f));
}

/// acc += m ? a * b : 0 (one masked fused multiply-add on AVX-512).
template <class A>
FQ_INLINE void fma_where(xsimd::batch<float, A>& acc, const xsimd::batch_bool<float, A>& m,
                         const xsimd::batch<float, A>& a,
                         const xsimd::batch<float, A>& b) noexcept {
#if XSIMD_WITH_AVX512F
  if constexpr (std::is_base_of<xsimd::avx512f, A>::value) {
    acc = _mm512_mask3_fmadd_ps(a, b, acc, m);
    return;
  }
#endif
  acc += xsimd::select(m, a * b, xsimd::batch<float, A>(0.0f));
}

/// The element formulas on one batch; adds the batch's summands to `sums`.
template <class M, class A>
FQ_INLINE void lsq_batch(const float* x, const float* dy, float* y, float* dx,
                         const LsqBatchParams<A>& p, LsqBatchSums<A>& sums) noexcept {
  using B = xsimd::batch<float, A>;
  const B xb = B::load_unaligned(x), g = B::load_unaligned(dy);
  std::uint64_t unused = 0;
  fake_quant_batch<typename M::forward_numerics>(xb, p.inv, p.scale, p.zf, p.qmin, p.qmax, unused)
      .store_unaligned(y);
  const B v = xb * p.inv;
  xsimd::batch_bool<float, A> ok_lo, le;
  B in_term;
  if constexpr (M::kTorch) {
    B t;
    if constexpr (M::kFma)
      t = fused_mul_add(xb, p.inv, p.zb);
    else
      t = no_contract(v) + p.zb;
    const B xq = xsimd::nearbyint(t);
    ok_lo = (xq >= p.qmin) & (xq < B(detail::kInt64Limit<float>));
    le = xq <= p.qmax;
    in_term = (xq - p.zb) - v;
  } else {
    ok_lo = v >= p.lo;
    le = v <= p.hi;
    in_term = xsimd::nearbyint(v) - v;
  }
  const auto in = ok_lo & le;
  (g * xsimd::select(in, B(1.0f), B(0.0f))).store_unaligned(dx);
  fma_where(sums.in, in, g, in_term);
  add_where(sums.below, ~ok_lo, g);
  add_where(sums.above, ok_lo & ~le, g);
}

/// Fused forward+backward over a contiguous run with constant parameters.
template <class M, class A>
void lsq_run(const float* x, const float* dy, float* y, float* dx, std::int64_t n,
             const detail::LsqParams& params, detail::LsqSums& acc) noexcept {
  using B = xsimd::batch<float, A>;
  constexpr std::int64_t W = static_cast<std::int64_t>(B::size);
  const LsqBatchParams<A> p(params);
  std::int64_t i = 0;
  while (n - i >= W) {
    const std::int64_t end = std::min(n, i + kLsqBlock);
    LsqBatchSums<A> s0, s1;  // two sets: independent dependency chains
    for (; i + 2 * W <= end; i += 2 * W) {
      lsq_batch<M, A>(x + i, dy + i, y + i, dx + i, p, s0);
      lsq_batch<M, A>(x + i + W, dy + i + W, y + i + W, dx + i + W, p, s1);
    }
    for (; i + W <= end; i += W) lsq_batch<M, A>(x + i, dy + i, y + i, dx + i, p, s0);
    const double in = static_cast<double>(xsimd::hadd(s0.in + s1.in));
    const double below = static_cast<double>(xsimd::hadd(s0.below + s1.below));
    const double above = static_cast<double>(xsimd::hadd(s0.above + s1.above));
    acc.ts += in + static_cast<double>(params.lo) * below + static_cast<double>(params.hi) * above;
    acc.tz += below + above;
  }
  detail::lsq_run_scalar<M>(x + i, 1, dy + i, 1, y + i, 1, dx + i, 1, n - i, params, acc);
}

/// Fused forward+backward over a contiguous run walking the channel axis (element i has
/// channel i): the parameters come from per-channel arrays, and lane sums go to the
/// per-channel float block sums `blk` (three per channel: in, below, above; the caller
/// flushes them, see flush_lsq_block_sums). The tail goes straight to `acc`.
template <class M, class A>
void lsq_run_varying(const float* x, const float* dy, float* y, float* dx, std::int64_t n,
                     const detail::LsqParamArrays& pa, const detail::LsqParams* params, float* blk,
                     detail::LsqSums* acc) noexcept {
  using B = xsimd::batch<float, A>;
  constexpr std::int64_t W = static_cast<std::int64_t>(B::size);
  const B qmin(params[0].qmin), qmax(params[0].qmax);
  const std::int64_t nc = static_cast<std::int64_t>(pa.inv.size());
  std::int64_t i = 0;
  for (; i + W <= n; i += W) {
    const LsqBatchParams<A> p(pa, i, qmin, qmax);
    LsqBatchSums<A> sums;
    sums.in = B::load_unaligned(blk + i);
    sums.below = B::load_unaligned(blk + nc + i);
    sums.above = B::load_unaligned(blk + 2 * nc + i);
    lsq_batch<M, A>(x + i, dy + i, y + i, dx + i, p, sums);
    sums.in.store_unaligned(blk + i);
    sums.below.store_unaligned(blk + nc + i);
    sums.above.store_unaligned(blk + 2 * nc + i);
  }
  detail::lsq_run_scalar_varying<M>(x + i, 1, dy + i, 1, y + i, 1, dx + i, 1, n - i, params + i,
                                    acc + i);
}

/// Adds the per-channel float block sums of lsq_run_varying to `acc` and clears them.
inline void flush_lsq_block_sums(float* blk, const detail::LsqParams* params, detail::LsqSums* acc,
                                 std::int64_t nc) noexcept {
  for (std::int64_t c = 0; c < nc; ++c) {
    const double in = blk[c], below = blk[nc + c], above = blk[2 * nc + c];
    acc[c].ts +=
        in + static_cast<double>(params[c].lo) * below + static_cast<double>(params[c].hi) * above;
    acc[c].tz += below + above;
    blk[c] = blk[nc + c] = blk[2 * nc + c] = 0.0f;
  }
}

}  // namespace simd
}  // namespace fq

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#endif  // FQ_HAS_XSIMD
#endif  // FQ_LEARNABLE_LSQ_SIMD_HPP_
