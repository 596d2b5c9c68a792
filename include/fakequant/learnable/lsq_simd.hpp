// SPDX-License-Identifier: MIT
// fakequant/learnable/lsq_simd.hpp: the fused LSQ forward+backward run kernel over
// xsimd::batch<float, A>.
//
// Lane by lane it performs exactly the operations of the scalar reference lsq_element()
// (learnable/lsq_numerics.hpp) for y and dx, so they are bit-identical to it; the y of a
// batch is simd::fake_quant_batch (or its shifted form), the foundation's forward. The
// backward classifies a lane by clamping its level (xq in the PyTorch mode, v in the
// paper's) to the range with the forward's overflow rule: the lane is in range exactly when
// the clamp leaves it unchanged, and the clamped level minus zb is the clipped ds-term
// (qmin - zb or qmax - zb) itself. The summands t_s and t_z = dy * s (clipped lanes) are
// lane by lane the scalar kernel's, bit for bit; they are accumulated in float batches over
// blocks of kLsqRunBlock elements (kLsqBlock runs along the channel axis), then added to
// double: a different rounding and order than the scalar kernel's element-by-element double
// sum (within 1e-5 of the sum of |summands|, tested). The PyTorch mode's fma needs a fused
// multiply-add instruction: with xsimd on x86 without FMA (e.g. SSE2 baseline) the PyTorch
// mode falls back to the scalar kernel (lsq_simd_supported() says which).
#ifndef FQ_LEARNABLE_LSQ_SIMD_HPP_
#define FQ_LEARNABLE_LSQ_SIMD_HPP_

#include <fakequant/base/config.hpp>

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

/// Elements of a run (lsq_run) whose summands are accumulated in float before being added to
/// double: each lane of the two accumulator sets adds 1024 / (2 W) summands.
inline constexpr std::int64_t kLsqRunBlock = 1024;

/// Runs along the channel axis summed in float per channel (lsq_block_varying) before being
/// added to double: each lane adds one summand per run, so this bounds the float sums' length
/// as kLsqRunBlock does (the clipped terms qmin - zb, qmax - zb are in the sums, and large).
inline constexpr std::int64_t kLsqBlock = 64;

/// Runs a batch of channels is swept down (lsq_block_varying) before the next batch: 4 keeps
/// each operand's few lines in L1 between sweeps (64 and 8 measured 2x and 1.2x slower at
/// 256 channels, bm_lsq LastAxis).
inline constexpr std::int64_t kLsqSweep = 4;

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
  B flo, fhi;  ///< the forward's shifted range qmin - zf, qmax - zf (fake_quant_batch_shifted)
  explicit LsqBatchParams(const detail::LsqParams& p) noexcept
      : inv(p.inv),
        scale(p.scale),
        zf(p.zf),
        zb(p.zb),
        qmin(p.qmin),
        qmax(p.qmax),
        lo(p.lo),
        hi(p.hi),
        flo(p.qmin - p.zf),
        fhi(p.qmax - p.zf) {}
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
        hi(B::load_unaligned(a.hi.data() + i)),
        flo(qmin_b - zf),
        fhi(qmax_b - zf) {}
};

/// Partial sums of a block: dy * ds-term (t_s), and dy over the clipped lanes (t_z).
template <class A>
struct LsqBatchSums {
  using B = xsimd::batch<float, A>;
  B ts = B(0.0f), tz = B(0.0f);
  LsqBatchSums& operator+=(const LsqBatchSums& o) noexcept {
    ts += o.ts;
    tz += o.tz;
    return *this;
  }
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

/// How lsq_batch computes a batch (lsq_run picks the form per run).
enum class LsqForm {
  kGeneral,  ///< fake_quant_batch, then the backward's own level
  kShifted,  ///< y by fake_quant_batch_shifted (range within +-2^20): one operation fewer
  /// PyTorch mode with zf = zb = 0 (symmetric) and the shifted form: the backward's level
  /// rne(fma(x, 1/s, 0)) = rne(v) is the forward's r (up to the sign of zero, which changes no
  /// classification), and qmin - zb = qmin: the backward reuses the forward's clamp.
  kSharedLevel,
};

/// The PyTorch mode's summands of a batch, lane by lane lsq_element's t_s: w = xq - zb (in
/// range) or qmin - zb / qmax - zb (clipped); in range (dy * d) * inv with d = fma(w, s, -x)
/// (LsqTorch) or f32(w * s) - x (LsqTorchNoFma), clipped dy * w.
template <class M, class A>
FQ_INLINE xsimd::batch<float, A> torch_summand(const xsimd::batch<float, A>& xb,
                                               const xsimd::batch<float, A>& g,
                                               const xsimd::batch<float, A>& w,
                                               const xsimd::batch_bool<float, A>& in,
                                               const LsqBatchParams<A>& p) noexcept {
  using B = xsimd::batch<float, A>;
  B d;
  if constexpr (M::kFma)
    d = fused_mul_add(w, p.scale, -xb);
  else
    d = no_contract(w * p.scale) - xb;
  const B prod = g * xsimd::select(in, d, w);
#if XSIMD_WITH_AVX512F
  if constexpr (std::is_base_of<xsimd::avx512f, A>::value)
    return _mm512_mask_mul_ps(prod, in, prod, p.inv);  // * inv in the lanes in range
  else
#endif
    return xsimd::select(in, prod * p.inv, prod);
}

/// The element formulas on one batch; adds the batch's summands to `sums`.
template <class M, class A, LsqForm kForm = LsqForm::kGeneral>
FQ_INLINE void lsq_batch(const xsimd::batch<float, A>& xb, const xsimd::batch<float, A>& g,
                         float* y, float* dx, const LsqBatchParams<A>& p,
                         LsqBatchSums<A>& sums) noexcept {
  using B = xsimd::batch<float, A>;
  using N = typename M::forward_numerics;
  static_assert(kForm == LsqForm::kGeneral || kShiftedRounding<N, float>,
                "lsq_batch: the shifted forms need round half to even");
  static_assert(kForm != LsqForm::kSharedLevel || M::kTorch,
                "lsq_batch: the shared level is the PyTorch mode's");
  const B v = xb * p.inv;
  // c: the level clamped to the range by the forward's rule (NaN, and >= 2^63 in the PyTorch
  // mode, go to qmin); in range exactly when c equals the level (lsq_element's below/above
  // tests). The summand: PyTorch mode (dy * d) * inv in range with d = (xq - zb) s - x (fused
  // or not as M), dy * (qmin - zb | qmax - zb) clipped (w = c - zb is both); paper mode
  // dy * (rne(v) - v) in range, dy * (qmin - zr | qmax - zr) clipped.
  xsimd::batch_bool<float, A> in;
  B ts;
  if constexpr (kForm == LsqForm::kSharedLevel) {
    const B r = shifted_level(v);  // as fake_quant_batch_shifted, with lo, hi = qmin, qmax
    const B c = clamp_level_batch<N>(r, p.flo, p.fhi);
    (c * p.scale).store_unaligned(y);
    in = c == r;
    ts = torch_summand<M>(xb, g, c, in, p);  // w = c - zb = c (zb = 0)
  } else {
    std::uint64_t unused = 0;
    if constexpr (kForm == LsqForm::kShifted)
      fake_quant_batch_shifted<N>(v, p.scale, p.flo, p.fhi, unused).store_unaligned(y);
    else
      fake_quant_batch<N>(xb, p.inv, p.scale, p.zf, p.qmin, p.qmax, unused).store_unaligned(y);
    if constexpr (M::kTorch) {
      B t;
      if constexpr (M::kFma)
        t = fused_mul_add(xb, p.inv, p.zb);
      else
        t = no_contract(v) + p.zb;
      const B xq = xsimd::nearbyint(t);
      const B c = clamp_level_batch<N>(xq, p.qmin, p.qmax);
      in = c == xq;
      ts = torch_summand<M>(xb, g, c - p.zb, in, p);
    } else {
      const B c = clamp_level_batch<N>(v, p.lo, p.hi);
      in = c == v;
      ts = g * xsimd::select(in, xsimd::nearbyint(v) - no_contract(v), c);  // v not fused
    }
  }
  (g * no_contract(xsimd::select(in, B(1.0f), B(0.0f)))).store_unaligned(dx);
  sums.ts += ts;
  add_where(sums.tz, ~in, g * p.scale);
}

/// The whole batches of lsq_run; returns how many elements it did.
template <class M, class A, LsqForm kForm>
FQ_INLINE std::int64_t lsq_run_batches(const float* x, const float* dy, float* y, float* dx,
                                       std::int64_t n, const detail::LsqParams& params,
                                       detail::LsqSums& acc) noexcept {
  using B = xsimd::batch<float, A>;
  constexpr std::int64_t W = static_cast<std::int64_t>(B::size);
  const LsqBatchParams<A> p(params);
  std::int64_t i = 0;
  while (n - i >= W) {
    const std::int64_t last = std::min(n, i + kLsqRunBlock) - W;  // the block's last batch
    LsqBatchSums<A> s0, s1;  // two sets: independent dependency chains
    // Software-pipelined by one batch: each batch is loaded before the previous one is stored.
    // Otherwise, with buffers a few bytes apart modulo 4 KiB (consecutive heap blocks are 16
    // bytes apart), every load would wait on the previous batch's stores, whose addresses
    // match it in the low 12 bits (4K aliasing: up to 1.35x slower).
    B xa = B::load_unaligned(x + i), ga = B::load_unaligned(dy + i);
    for (; i + W <= last; i += 2 * W) {
      const B xb = B::load_unaligned(x + i + W), gb = B::load_unaligned(dy + i + W);
      lsq_batch<M, A, kForm>(xa, ga, y + i, dx + i, p, s0);
      if (i + 2 * W <= last) {
        xa = B::load_unaligned(x + i + 2 * W);
        ga = B::load_unaligned(dy + i + 2 * W);
      }
      lsq_batch<M, A, kForm>(xb, gb, y + i + W, dx + i + W, p, s1);
    }
    if (i <= last) {
      lsq_batch<M, A, kForm>(xa, ga, y + i, dx + i, p, s0);
      i += W;
    }
    s0 += s1;
    acc.ts += static_cast<double>(xsimd::hadd(s0.ts));
    acc.tz += static_cast<double>(xsimd::hadd(s0.tz));
  }
  return i;
}

/// Fused forward+backward over a contiguous run with constant parameters.
template <class M, class A>
void lsq_run(const float* x, const float* dy, float* y, float* dx, std::int64_t n,
             const detail::LsqParams& params, detail::LsqSums& acc) noexcept {
  // The symmetric PyTorch mode shares the forward's level; the paper's mode cannot.
  constexpr LsqForm kSymmetricForm = M::kTorch ? LsqForm::kSharedLevel : LsqForm::kShifted;
  std::int64_t i = -1;
  if constexpr (kShiftedRounding<typename M::forward_numerics, float>) {
    if (params.qmin >= -0x1p20f && params.qmax <= 0x1p20f) {
      if (is_positive_zero(params.zf) && is_positive_zero(params.zb))
        i = lsq_run_batches<M, A, kSymmetricForm>(x, dy, y, dx, n, params, acc);
      else
        i = lsq_run_batches<M, A, LsqForm::kShifted>(x, dy, y, dx, n, params, acc);
    }
  }
  if (i < 0) i = lsq_run_batches<M, A, LsqForm::kGeneral>(x, dy, y, dx, n, params, acc);
  detail::lsq_run_scalar<A, M>(x + i, 1, dy + i, 1, y + i, 1, dx + i, 1, n - i, params, acc);
}

/// One run walking the channel axis (lsq_block_varying): where its x, dy, y and dx start.
struct LsqRunPtrs {
  const float* x;
  const float* dy;
  float* y;
  float* dx;
};

/// Fused forward+backward over m <= kLsqBlock runs of n elements walking the channel axis
/// (element i of every run has channel i). A batch of W channels is swept down kLsqSweep
/// runs before the next batch, so its parameters and float sums (blk: t_s at blk[c], t_z at
/// blk[n + c], zero on entry and on return) are loaded and stored once per kLsqSweep runs
/// rather than once per run (at 256 channels that traffic was 3x the data's). Each channel's
/// float sum still adds the runs in order from +0 and is added to acc in double after the m
/// runs: the same sums as one run at a time with a flush every kLsqBlock runs, bit for bit.
/// The n % W tail channels go to acc directly, run by run.
template <class M, class A>
void lsq_block_varying(const LsqRunPtrs* runs, std::int64_t m, std::int64_t n,
                       const detail::LsqParamArrays& pa, const detail::LsqParams* params,
                       float* blk, detail::LsqSums* acc) noexcept {
  using B = xsimd::batch<float, A>;
  constexpr std::int64_t W = static_cast<std::int64_t>(B::size);
  const B qmin(params[0].qmin), qmax(params[0].qmax);
  const std::int64_t full = n - n % W;
  for (std::int64_t r0 = 0; r0 < m; r0 += kLsqSweep) {
    const std::int64_t r1 = r0 + kLsqSweep < m ? r0 + kLsqSweep : m;
    for (std::int64_t i = 0; i < full; i += W) {
      const LsqBatchParams<A> p(pa, i, qmin, qmax);
      LsqBatchSums<A> sums;
      sums.ts = B::load_unaligned(blk + i);
      sums.tz = B::load_unaligned(blk + n + i);
      for (std::int64_t r = r0; r < r1; ++r) {
        const LsqRunPtrs& q = runs[r];
        lsq_batch<M, A>(B::load_unaligned(q.x + i), B::load_unaligned(q.dy + i), q.y + i, q.dx + i,
                        p, sums);
      }
      sums.ts.store_unaligned(blk + i);
      sums.tz.store_unaligned(blk + n + i);
    }
  }
  for (std::int64_t c = 0; c < full; ++c) {
    acc[c].ts += static_cast<double>(blk[c]);
    acc[c].tz += static_cast<double>(blk[n + c]);
    blk[c] = blk[n + c] = 0.0f;
  }
  if (full == n) return;
  for (std::int64_t r = 0; r < m; ++r) {
    const LsqRunPtrs& q = runs[r];
    detail::lsq_run_scalar_varying<A, M>(q.x + full, 1, q.dy + full, 1, q.y + full, 1, q.dx + full,
                                         1, n - full, params + full, acc + full);
  }
}

}  // namespace simd
}  // namespace fq

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#endif  // FQ_HAS_XSIMD
#endif  // FQ_LEARNABLE_LSQ_SIMD_HPP_
