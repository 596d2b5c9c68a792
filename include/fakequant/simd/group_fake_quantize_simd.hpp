// SPDX-License-Identifier: MIT
// fakequant/simd/group_fake_quantize_simd.hpp: the SIMD kernels of the group-wise fake quant
// (kernels/group_fake_quantize.hpp) for groups along the last axis: the min/max reduction of
// a group, fused with its qparams and its fake quant (the element formula of the per-tensor
// kernels, fake_quant_batch(_shifted) of simd/fake_quantize_simd.hpp) while it is in L1.
//
// Bit-identical to the scalar reference: min and max of finite floats are exact whatever the
// order of the comparisons; the only order-dependent choice (-0 vs +0) is erased by the
// qparams formula, which compares with 0 (kernels/group_fake_quantize.hpp); the batched
// qparams perform the scalar rule's operations lane by lane. Affine groups find NaN through a
// running sum (x86's min/max drop a NaN operand depending on its position); a NaN sum is
// resolved element by element, so +inf + -inf is never taken for a NaN. Symmetric groups
// reduce max |x| as int32 bits (abs_bits), which orders NaN above +inf: exact, one max.
// With scales chosen from the group's own finite x, |x * f32(1/s)| is bounded, so the clamp
// drops the NaN / 2^63 guard (group_quant_batch) and, for symmetric ranges, its lower side.
// Layouts: group_blocks takes W groups at a time when G divides the axis, G = W * 2^k <= 256
// and W groups fill whole mask words (the int4 G = 32 / 64 / 128 weights); group_rows takes
// the rest (short tails, per token, any G), per token with the next row's reduction fused
// into this row's fake quant (row_run_fused); groups along another axis use the per-channel
// kernel (fq_run_varying).
// Cost model (1 thread, L2-resident 1 MiB, AVX-512): the fake quant is ~7 vector operations
// per 16 floats and memcpy-bound; the reduction adds 2 (symmetric) or 3 (affine) per 16 and
// the W-group transpose / qparams ~1.5 per 16 for G = 32 (benchmarks/bm_group.cpp).
#ifndef FQ_SIMD_GROUP_FAKE_QUANTIZE_SIMD_HPP_
#define FQ_SIMD_GROUP_FAKE_QUANTIZE_SIMD_HPP_

#include <fakequant/base/config.hpp>

#if FQ_HAS_XSIMD
#include <algorithm>    // min, max
#include <cmath>        // isnan, isfinite
#include <cstddef>      // size_t
#include <cstdint>      // int64_t, int32_t, uint64_t
#include <limits>       // numeric_limits
#include <type_traits>  // is_base_of

#include <xsimd/xsimd.hpp>

#include <fakequant/core/bit_writer.hpp>
#include <fakequant/core/fake_quantize_scalar.hpp>
#include <fakequant/scheme/numerics.hpp>
#include <fakequant/scheme/range.hpp>
#include <fakequant/simd/fake_quantize_simd.hpp>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace fq {
namespace simd {

/// The minimum / maximum lane of a batch (exact: min and max of floats round nothing).
template <class A>
FQ_INLINE float hmin(const xsimd::batch<float, A>& v) noexcept {
#if XSIMD_WITH_AVX512F
  if constexpr (std::is_base_of<xsimd::avx512f, A>::value) return _mm512_reduce_min_ps(v);
#endif
  alignas(64) float a[xsimd::batch<float, A>::size];
  v.store_aligned(a);
  float r = a[0];
  for (std::size_t k = 1; k < xsimd::batch<float, A>::size; ++k) r = std::min(r, a[k]);
  return r;
}
template <class A>
FQ_INLINE float hmax(const xsimd::batch<float, A>& v) noexcept {
#if XSIMD_WITH_AVX512F
  if constexpr (std::is_base_of<xsimd::avx512f, A>::value) return _mm512_reduce_max_ps(v);
#endif
  alignas(64) float a[xsimd::batch<float, A>::size];
  v.store_aligned(a);
  float r = a[0];
  for (std::size_t k = 1; k < xsimd::batch<float, A>::size; ++k) r = std::max(r, a[k]);
  return r;
}

/// min and max of x[0, n) (n >= 1) and whether any element is NaN (then mn and mx are
/// meaningless). Infinities take part as ordinary values. NaN is found through a running sum
/// (NaN + anything is NaN), one add per batch instead of a compare and a mask OR; a NaN sum
/// without a NaN element (+inf + -inf after overflow) is resolved by a scalar rescan. Four
/// accumulators hide the latency on long groups.
template <class A>
FQ_INLINE void group_minmax(const float* x, std::int64_t n, float& mn, float& mx,
                            bool& has_nan) noexcept {
  using B = xsimd::batch<float, A>;
  constexpr std::int64_t W = static_cast<std::int64_t>(B::size);
  float lo = std::numeric_limits<float>::infinity(), hi = -lo;
  bool nan = false;
  std::int64_t i = 0;
  if (n >= W) {
    B lo0 = B::load_unaligned(x), hi0 = lo0, sum0 = lo0;
    i = W;
    if (n >= 4 * W) {  // four chains: the min / max / add latencies hidden (per token)
      B lo1 = B::load_unaligned(x + W), hi1 = lo1, sum1 = lo1;
      B lo2 = B::load_unaligned(x + 2 * W), hi2 = lo2, sum2 = lo2;
      B lo3 = B::load_unaligned(x + 3 * W), hi3 = lo3, sum3 = lo3;
      for (i = 4 * W; i + 4 * W <= n; i += 4 * W) {
        const B a = B::load_unaligned(x + i), b = B::load_unaligned(x + i + W);
        const B c = B::load_unaligned(x + i + 2 * W), d = B::load_unaligned(x + i + 3 * W);
        lo0 = xsimd::min(lo0, a);
        hi0 = xsimd::max(hi0, a);
        sum0 = sum0 + a;
        lo1 = xsimd::min(lo1, b);
        hi1 = xsimd::max(hi1, b);
        sum1 = sum1 + b;
        lo2 = xsimd::min(lo2, c);
        hi2 = xsimd::max(hi2, c);
        sum2 = sum2 + c;
        lo3 = xsimd::min(lo3, d);
        hi3 = xsimd::max(hi3, d);
        sum3 = sum3 + d;
      }
      lo0 = xsimd::min(xsimd::min(lo0, lo1), xsimd::min(lo2, lo3));
      hi0 = xsimd::max(xsimd::max(hi0, hi1), xsimd::max(hi2, hi3));
      sum0 = (sum0 + sum1) + (sum2 + sum3);
    }
    for (; i + W <= n; i += W) {
      const B v = B::load_unaligned(x + i);
      lo0 = xsimd::min(lo0, v);
      hi0 = xsimd::max(hi0, v);
      sum0 = sum0 + v;
    }
    lo = hmin(lo0);
    hi = hmax(hi0);
    if (xsimd::any(xsimd::isnan(sum0)))  // a NaN, or +inf + -inf: look element by element
      for (std::int64_t k = 0; k < i && !nan; ++k) nan = std::isnan(x[k]);
  }
  for (; i < n; ++i) {
    const float v = x[i];
    nan = nan || std::isnan(v);
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  mn = lo;
  mx = hi;
  has_nan = nan;
}

#if XSIMD_WITH_AVX512F
/// Lane k of the result = op over the 16 lanes of v[k]: a transposing reduction tree (4
/// levels of two shuffles and an op per pair; 45 instructions per 16 vectors instead of 16
/// horizontal reductions). `op` must be associative and commutative (min / max: exact).
template <class Op>
FQ_INLINE __m512 transpose_reduce_512(const __m512* v, Op op) noexcept {
  __m512 c[8], e[4], g[2];
  for (std::size_t p = 0; p < 8; ++p)  // chunks [a a b b]: 8 partial lanes per vector
    c[p] = op(_mm512_shuffle_f32x4(v[2 * p], v[2 * p + 1], 0x44),
              _mm512_shuffle_f32x4(v[2 * p], v[2 * p + 1], 0xEE));
  for (std::size_t q = 0; q < 4; ++q)  // chunk k: vector 4q + k, 4 partial lanes
    e[q] = op(_mm512_shuffle_f32x4(c[2 * q], c[2 * q + 1], 0x88),
              _mm512_shuffle_f32x4(c[2 * q], c[2 * q + 1], 0xDD));
  for (std::size_t h = 0; h < 2; ++h)  // chunk k: 2 lanes of e[2h]'s vector k, 2 of e[2h+1]'s
    g[h] = op(_mm512_shuffle_ps(e[2 * h], e[2 * h + 1], 0x44),
              _mm512_shuffle_ps(e[2 * h], e[2 * h + 1], 0xEE));
  const __m512 m = op(_mm512_shuffle_ps(g[0], g[1], 0x88), _mm512_shuffle_ps(g[0], g[1], 0xDD));
  // Lane 4k + m holds vector 4m + k: a 4 x 4 transpose back to vector order.
  const __m512i idx = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  return _mm512_permutexvar_ps(idx, m);
}
#endif

/// MIN[k] = the minimum lane of lo[k], MAX[k] = the maximum lane of hi[k], k < W (W batches
/// each), written in group order (AVX-512: transpose_reduce_512; the result is the same,
/// min/max being exact).
template <class A>
FQ_INLINE void transpose_minmax(const xsimd::batch<float, A>* lo, const xsimd::batch<float, A>* hi,
                                float* mn, float* mx) noexcept {
  using B = xsimd::batch<float, A>;
#if XSIMD_WITH_AVX512F
  if constexpr (std::is_base_of<xsimd::avx512f, A>::value) {
    __m512 l[16], h[16];
    for (int k = 0; k < 16; ++k) l[k] = lo[k], h[k] = hi[k];
    _mm512_storeu_ps(
        mn, transpose_reduce_512(l, [](__m512 a, __m512 b) { return _mm512_min_ps(a, b); }));
    _mm512_storeu_ps(
        mx, transpose_reduce_512(h, [](__m512 a, __m512 b) { return _mm512_max_ps(a, b); }));
    return;
  }
#endif
  for (std::size_t k = 0; k < B::size; ++k) {
    mn[k] = hmin(lo[k]);
    mx[k] = hmax(hi[k]);
  }
}

/// The qparams of W groups at once from their min and max (all finite): lane for lane the
/// operations of the scalar rule (kernels/group_fake_quantize.hpp: group_qparams), so the
/// same bits. `legacy`: the min-error zero point; `sym_zero`: the symmetric zero point.
template <bool Symmetric, class A>
FQ_INLINE void group_qparams_batch(const xsimd::batch<float, A>& mn,
                                   const xsimd::batch<float, A>& mx, const QuantRange& r,
                                   bool legacy, float eps, std::int32_t sym_zero,
                                   xsimd::batch<float, A>& scale,
                                   xsimd::batch<float, A>& zero) noexcept {
  using B = xsimd::batch<float, A>;
  const B zero_f(0.0f), eps_b(eps);
  const B qmin(static_cast<float>(r.quant_min)), qmax(static_cast<float>(r.quant_max));
  const B lo = xsimd::select(mn < zero_f, mn, zero_f);
  const B hi = xsimd::select(mx > zero_f, mx, zero_f);
  if constexpr (Symmetric) {
    const B neg = -lo;
    const B amax = xsimd::select(neg < hi, hi, neg);  // std::max(-lo, hi)
    const B s = amax / B(static_cast<float>(static_cast<double>(r.quant_max - r.quant_min) / 2));
    scale = xsimd::select(s < eps_b, eps_b, s);
    zero = B(static_cast<float>(sym_zero));
  } else {
    const B s = (hi - lo) / B(static_cast<float>(r.quant_max - r.quant_min));
    scale = xsimd::select(s < eps_b, eps_b, s);
    if (!legacy) {
      const B t = qmin - xsimd::nearbyint(lo / scale);
      zero = xsimd::select(t < qmin, qmin, t);
      zero = xsimd::select(qmax < zero, qmax, zero);
    } else {
      const B d_lo = lo / scale, d_hi = hi / scale;
      const B from_min = qmin + d_lo, from_max = qmax + d_hi;
      B zf = xsimd::select(from_min + from_max > zero_f, qmin - d_lo, qmax - d_hi);
      zf = xsimd::select(zf < qmin, qmin, zf);
      zf = xsimd::select(qmax < zf, qmax, zf);
      zero = xsimd::nearbyint(zf);
    }
  }
}

/// The element formula of fake_quant_batch(_shifted) on one batch with a group's constants
/// (lo = qmin - z, hi = qmax - z for the shifted form). kGuard: the clamp maps NaN and levels
/// >= 2^63 per the Overflow policy (clamp_level_batch), for arbitrary x. Without it, a plain
/// min/max clamp: valid only for x of a finite group whose scale was chosen from it (dynamic),
/// where v = x * f32(1/s) is finite and |v| <= (qmax - qmin) * (1 + 2^-22), so the guard
/// never fires and the bits are the same — one comparison fewer per batch. kLowerFree (with
/// !kGuard, shifted): the caller proved round(v) >= lo (group_blocks_pg), so the clamp is a
/// min alone.
template <class N, bool kGuard, class A, bool kLowerFree = false>
FQ_INLINE xsimd::batch<float, A> group_quant_batch(
    const xsimd::batch<float, A>& x, const xsimd::batch<float, A>& mult,
    const xsimd::batch<float, A>& scale, const xsimd::batch<float, A>& zero,
    const xsimd::batch<float, A>& lo, const xsimd::batch<float, A>& hi,
    const xsimd::batch<float, A>& qmin, const xsimd::batch<float, A>& qmax, bool shifted,
    std::uint64_t& in) noexcept {
  using B = xsimd::batch<float, A>;
  if constexpr (kShiftedRounding<N, float>) {
    if (shifted) {
      if constexpr (kGuard) {
        return fake_quant_batch_shifted<N>(apply_mult<N>(x, mult), scale, lo, hi, in);
      } else {
        const B r = shifted_level(apply_mult<N>(x, mult));
        const B c = kLowerFree ? xsimd::min(r, hi) : xsimd::min(xsimd::max(r, lo), hi);
        in = to_bits(c == r);
        return c * scale;
      }
    }
  }
  if constexpr (kGuard) {
    return fake_quant_batch<N>(x, mult, scale, zero, qmin, qmax, in);
  } else {
    const B q = round_batch<typename N::rounding>(apply_mult<N>(x, mult)) + zero;
    const B c = xsimd::min(xsimd::max(q, qmin), qmax);
    in = to_bits(c == q);
    return (c - zero) * scale;
  }
}

/// The fake quant of one finite group (kGuard: see group_quant_batch) with the mask appended
/// to bw; whole batches by fq_run_batches (64-bit mask words, pipelined loads), the tail by
/// the scalar reference.
template <class N, bool kGuard, class A>
FQ_INLINE void group_run_simd(const float* x, float* y, std::int64_t n,
                              const detail::ElementParams<float>& p, bool shifted,
                              detail::BitWriter& bw, bool with_mask) noexcept {
  using B = xsimd::batch<float, A>;
  const B mult(p.mult), sc(p.scale), zb(p.zero), qmin(p.qmin), qmax(p.qmax);
  const B lo(p.qmin - p.zero), hi(p.qmax - p.zero);
  constexpr std::int64_t W = static_cast<std::int64_t>(B::size);
  constexpr std::int64_t kPerWord = 64 / W;
  auto fq = [&](const B& xb, std::uint64_t& in) {
    return group_quant_batch<N, kGuard, A>(xb, mult, sc, zb, lo, hi, qmin, qmax, shifted, in);
  };
  // As fq_run_batches, 64 elements a step, each step's batches loaded before any is stored.
  std::int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    B xs[static_cast<std::size_t>(kPerWord)];
    for (std::int64_t k = 0; k < kPerWord; ++k) xs[k] = B::load_unaligned(x + i + k * W);
    std::uint64_t word = 0;
    for (std::int64_t k = 0; k < kPerWord; ++k) {
      std::uint64_t in = 0;
      fq(xs[k], in).store_unaligned(y + i + k * W);
      word |= in << (k * W);
    }
    if (with_mask) bw.put(word, 64);
  }
  for (; i + W <= n; i += W) {
    std::uint64_t in = 0;
    fq(B::load_unaligned(x + i), in).store_unaligned(y + i);
    if (with_mask) bw.put(in, static_cast<int>(W));
  }
  if (i < n) {
    detail::BitWriter tail = bw;  // a copy: taking bw's address would pin it to memory
    detail::fq_run_scalar<A, N, false>(x + i, 1, y + i, 1, n - i, p, with_mask ? &tail : nullptr);
    bw = tail;
  }
}

/// Whole-row groups (per token), n a multiple of 64: the fake quant of row x (a finite group
/// whose scale was chosen from it: unguarded clamp) in one loop with the reduction of the
/// next row nx (min, max and the NaN-detecting sum of group_minmax, 64 / W chains), so that
/// the reduction's min/max work shares the loop with the quantize's multiplies and stores
/// instead of running as a pass of its own. Returns nx's min, max and NaN flag.
template <class N, class A>
FQ_INLINE void row_run_fused(const float* x, float* y, std::int64_t n,
                             const detail::ElementParams<float>& p, bool shifted,
                             detail::BitWriter& bw, bool with_mask, const float* nx, float& mn,
                             float& mx, bool& has_nan) noexcept {
  using B = xsimd::batch<float, A>;
  constexpr std::int64_t W = static_cast<std::int64_t>(B::size);
  constexpr std::int64_t kPerWord = 64 / W;
  constexpr auto kC = static_cast<std::size_t>(kPerWord);
  const B mult(p.mult), sc(p.scale), zb(p.zero), qmin(p.qmin), qmax(p.qmax);
  const B lo(p.qmin - p.zero), hi(p.qmax - p.zero);
  B cl[kC], ch[kC], cs[kC];
  for (std::size_t k = 0; k < kC; ++k)
    cl[k] = ch[k] = cs[k] = B::load_unaligned(nx + static_cast<std::int64_t>(k) * W);
  for (std::int64_t i = 0; i < n; i += 64) {
    B xs[kC];
    for (std::size_t k = 0; k < kC; ++k)
      xs[k] = B::load_unaligned(x + i + static_cast<std::int64_t>(k) * W);
    if (i > 0)
      for (std::size_t k = 0; k < kC; ++k) {
        const B v = B::load_unaligned(nx + i + static_cast<std::int64_t>(k) * W);
        cl[k] = xsimd::min(cl[k], v);
        ch[k] = xsimd::max(ch[k], v);
        cs[k] = cs[k] + v;
      }
    std::uint64_t word = 0;
    for (std::size_t k = 0; k < kC; ++k) {
      std::uint64_t in = 0;
      group_quant_batch<N, false, A>(xs[k], mult, sc, zb, lo, hi, qmin, qmax, shifted, in)
          .store_unaligned(y + i + static_cast<std::int64_t>(k) * W);
      word |= in << (static_cast<std::int64_t>(k) * W);
    }
    if (with_mask) bw.put(word, 64);
  }
  for (std::size_t k = 1; k < kC; ++k) {
    cl[0] = xsimd::min(cl[0], cl[k]);
    ch[0] = xsimd::max(ch[0], ch[k]);
    cs[0] = cs[0] + cs[k];
  }
  mn = hmin(cl[0]);
  mx = hmax(ch[0]);
  bool nan = false;
  if (xsimd::any(xsimd::isnan(cs[0])))  // a NaN, or +inf + -inf: look element by element
    for (std::int64_t k = 0; k < n && !nan; ++k) nan = std::isnan(nx[k]);
  has_nan = nan;
}

/// Groups of G consecutive elements along the last axis of a [rows, axis_len] tensor (the
/// last group of a row may be short): group g = row * ceil(axis_len / G) + j. With `choose`,
/// each group's (scale, zero point) is first computed from its elements by
/// qparams(min, max, has_nan, scale[g], zero[g]) while they are in L1; then the group is
/// fake-quantized (group_run_simd; unguarded clamp for the chosen scales). A group with a
/// non-finite scale gives quiet NaNs and mask bits 0.
template <class N, class A, class QParams>
void group_rows(const float* x, float* y, std::int64_t rows, std::int64_t axis_len, std::int64_t G,
                const QuantRange& r, float* scale, std::int32_t* zero, bool choose,
                QParams&& qparams, detail::BitWriter* writer) noexcept {
  const bool with_mask = writer != nullptr;
  // A local writer, never address-taken in the loop, so that its state stays in registers.
  detail::BitWriter bw = with_mask ? *writer : detail::BitWriter(nullptr, 0);
  const std::int64_t gpa = (axis_len + G - 1) / G, total = rows * gpa;
  const bool shifted = kShiftedRounding<N, float> && shifted_range_ok(r);
  auto where = [&](std::int64_t g, std::int64_t& off, std::int64_t& n) {
    const std::int64_t row = g / gpa, j = g - row * gpa;
    off = row * axis_len + j * G;
    n = axis_len - j * G < G ? axis_len - j * G : G;
  };
  auto choose_group = [&](std::int64_t g) {
    std::int64_t off, n;
    where(g, off, n);
    float mn, mx;
    bool nan;
    group_minmax<A>(x + off, n, mn, mx, nan);
    qparams(mn, mx, nan, scale[g], zero[g]);
  };
  const bool fuse = choose && gpa == 1 && axis_len % 64 == 0 && axis_len > 0;
  if (choose && total > 0) choose_group(0);
  for (std::int64_t g = 0; g < total; ++g) {
    std::int64_t off, n;
    where(g, off, n);
    // The next group's qparams first: the latency of its reduction tail and divisions then
    // overlaps this group's fake quant (y may be x: group g + 1 is read before g is written).
    // Per token (whole-row groups of a multiple of 64) row g + 1's reduction runs inside row
    // g's fake quant instead (row_run_fused), unless row g is not finite.
    if (choose && g + 1 < total && (!fuse || !std::isfinite(scale[g]))) choose_group(g + 1);
    const float* xg = x + off;
    float* yg = y + off;
    if (!std::isfinite(scale[g])) {
      for (std::int64_t i = 0; i < n; ++i) yg[i] = std::numeric_limits<float>::quiet_NaN();
      if (with_mask)
        for (std::int64_t i = 0; i < n; i += 64)
          bw.put(0, static_cast<int>(std::min<std::int64_t>(64, n - i)));
      continue;
    }
    const auto p = detail::make_element_params<N, float>(scale[g], static_cast<double>(zero[g]), r);
    if (fuse && g + 1 < total) {  // and row g + 1's qparams
      float mn, mx;
      bool nan;
      row_run_fused<N, A>(xg, yg, n, p, shifted, bw, with_mask, xg + n, mn, mx, nan);
      qparams(mn, mx, nan, scale[g + 1], zero[g + 1]);
      continue;
    }
    if (choose)  // finite scale chosen from these x: all finite (group_quant_batch)
      group_run_simd<N, false, A>(xg, yg, n, p, shifted, bw, with_mask);
    else
      group_run_simd<N, true, A>(xg, yg, n, p, shifted, bw, with_mask);
  }
  if (with_mask) *writer = bw;
}

/// The bits of |v| as int32: ordered as |v| for every float, NaN above +inf (0x7f800000), so
/// one integer max over a group gives its max |x| and tells inf and NaN apart exactly.
template <class A>
FQ_INLINE xsimd::batch<std::int32_t, A> abs_bits(const xsimd::batch<float, A>& v) noexcept {
  using BI = xsimd::batch<std::int32_t, A>;
  return xsimd::bitwise_cast<BI>(v) & BI(0x7fffffff);
}

/// out[k] = the maximum lane of acc[k], k < W (W int32 batches). AVX-512: the transposing
/// tree of transpose_minmax with an integer max.
template <class A>
FQ_INLINE xsimd::batch<std::int32_t, A> transpose_max_i32(
    const xsimd::batch<std::int32_t, A>* acc) noexcept {
  using BI = xsimd::batch<std::int32_t, A>;
#if XSIMD_WITH_AVX512F
  if constexpr (std::is_base_of<xsimd::avx512f, A>::value) {
    auto op = [](__m512 a, __m512 b) {
      return _mm512_castsi512_ps(_mm512_max_epi32(_mm512_castps_si512(a), _mm512_castps_si512(b)));
    };
    __m512 v[16];
    for (int k = 0; k < 16; ++k) v[k] = _mm512_castsi512_ps(acc[k]);
    return BI(_mm512_castps_si512(transpose_reduce_512(v, op)));
  }
#endif
  alignas(64) std::int32_t a[BI::size], out[BI::size];
  for (std::size_t k = 0; k < BI::size; ++k) {
    acc[k].store_aligned(a);
    std::int32_t m = a[0];
    for (std::size_t i = 1; i < BI::size; ++i) m = std::max(m, a[i]);
    out[k] = m;
  }
  return BI::load_aligned(out);
}

/// The blocks of group_blocks with kPG = G / W batches per group (file comment there).
template <std::int64_t kPG, class N, bool Symmetric, class A, class ScalarQParams>
std::int64_t group_blocks_pg(const float* x, float* y, std::int64_t groups, const QuantRange& r,
                             float* scale, std::int32_t* zero, bool choose, bool legacy, float eps,
                             std::int32_t sym_zero, ScalarQParams&& scalar_qparams,
                             std::uint64_t* words) noexcept {
  using B = xsimd::batch<float, A>;
  using BI = xsimd::batch<std::int32_t, A>;
  constexpr std::int64_t W = static_cast<std::int64_t>(B::size);
  constexpr std::int64_t G = kPG * W;
  constexpr std::int64_t kPerWord = 64 / W;      // batches per mask word
  constexpr std::int64_t kWords = G / kPerWord;  // mask words per block (W groups)
  constexpr bool kInverse = std::is_same<typename N::scale_apply, MulByInverse>::value;
  static_assert(G % kPerWord == 0, "group_blocks: a block must fill whole mask words");
  const bool shifted = kShiftedRounding<N, float> && shifted_range_ok(r);
  const B qmin(static_cast<float>(r.quant_min)), qmax(static_cast<float>(r.quant_max));
  const B inf(std::numeric_limits<float>::infinity());
  // Symmetric dynamic blocks: one zero point, so lo / hi / z are constants.
  const B zsym(static_cast<float>(sym_zero));
  const B lo_sym = qmin - zsym, hi_sym = qmax - zsym;
  // A chosen symmetric scale s = max(f32(M / half), eps) (M = max |x|) bounds every
  // |v| = |x * f32(1/s)| by half * (1 + 2^-21) (three roundings; a subnormal M / half is
  // floored to eps, far above it), so round(v) >= -(floor(half) + 1): with lo at or below
  // that, the lower clamp never acts (TorchAO's signed ranges: lo = qmin, half = qmax + 0.5).
  const double half = static_cast<double>(r.quant_max - r.quant_min) / 2;
  const bool lower_free =
      static_cast<double>(r.quant_min - sym_zero) <= -(std::floor(half) + 1) && half < 1048576.0;
  const std::int64_t blocks = groups / W;
  // kSuper blocks at a time (kSuper * W * G floats, <= 16 KiB: still in L1 for the second
  // pass): their reductions and qparams first, then their fake quant, so that the latency of
  // a block's reduction tree and divisions overlaps the work of the others.
  constexpr std::int64_t kSuper = G <= 64 ? 4 : (G <= 128 ? 2 : 1);
  constexpr auto kArr = static_cast<std::size_t>(kSuper * W);
  alignas(64) float mult_a[kArr], s_a[kArr], z_a[kArr], lo_a[kArr], hi_a[kArr];
  for (std::int64_t sb = 0; sb < blocks; sb += kSuper) {
    const std::int64_t nb = blocks - sb < kSuper ? blocks - sb : kSuper;
    bool finite_blk[static_cast<std::size_t>(kSuper)];
    bool sym_blk[static_cast<std::size_t>(kSuper)];  // every zero point the symmetric one
    for (std::int64_t j = 0; j < nb; ++j) {
      const std::int64_t g0 = (sb + j) * W;
      const float* xb0 = x + g0 * G;
      B s, zf;
      bool finite = true;
      if (choose) {
        if constexpr (Symmetric) {
          // max |x| per group as int32 bits (abs_bits): NaN and inf found exactly, and the
          // scalar rule's max(-min(m, 0), max(M, 0)) is max |x| (the sign of a zero aside,
          // which the scale's max with eps erases).
          BI acc[B::size];
          for (std::int64_t k = 0; k < W; ++k) {
            const float* xg = xb0 + k * G;
            BI a = abs_bits(B::load_unaligned(xg));
            for (std::int64_t i = 1; i < kPG; ++i)
              a = xsimd::max(a, abs_bits(B::load_unaligned(xg + i * W)));
            acc[k] = a;
          }
          const BI amax = transpose_max_i32<A>(acc);
          finite = xsimd::all(amax < BI(0x7f800000));
          const B s0 = xsimd::bitwise_cast<B>(amax) /
                       B(static_cast<float>(static_cast<double>(r.quant_max - r.quant_min) / 2));
          s = xsimd::select(s0 < B(eps), B(eps), s0);  // std::max(s0, eps)
          zf = zsym;
        } else {
          B vlo[B::size], vhi[B::size];
          B sum(0.0f);  // NaN if the block holds a NaN (or +inf + -inf): then the scalar rule
          for (std::int64_t k = 0; k < W; ++k) {
            const float* xg = xb0 + k * G;
            B lo = B::load_unaligned(xg), hi = lo, part = lo;
            for (std::int64_t i = 1; i < kPG; ++i) {
              const B v = B::load_unaligned(xg + i * W);
              lo = xsimd::min(lo, v);
              hi = xsimd::max(hi, v);
              part = part + v;
            }
            vlo[k] = lo;
            vhi[k] = hi;
            sum = sum + part;
          }
          alignas(64) float mn[B::size], mx[B::size];
          transpose_minmax<A>(vlo, vhi, mn, mx);
          const B bmn = B::load_aligned(mn), bmx = B::load_aligned(mx);
          finite = !xsimd::any(xsimd::isnan(sum)) && xsimd::all(xsimd::abs(bmn) < inf) &&
                   xsimd::all(xsimd::abs(bmx) < inf);
          if (finite) group_qparams_batch<Symmetric, A>(bmn, bmx, r, legacy, eps, sym_zero, s, zf);
        }
        finite = finite && xsimd::all(s < inf);  // (M+ - m-) / (qmax - qmin) may overflow
        if (finite) {
          s.store_unaligned(scale + g0);
          xsimd::to_int(zf).store_unaligned(zero + g0);
        } else {  // rare: every group of the block by the scalar rule
          for (std::int64_t k = 0; k < W; ++k) {
            float gmn, gmx;
            bool nan;
            group_minmax<A>(xb0 + k * G, G, gmn, gmx, nan);
            scalar_qparams(gmn, gmx, nan, scale[g0 + k], zero[g0 + k]);
          }
        }
      } else {
        s = B::load_unaligned(scale + g0);
        zf = xsimd::to_float(BI::load_unaligned(zero + g0));
      }
      finite_blk[j] = finite;
      sym_blk[j] = Symmetric && xsimd::all(zf == zsym);
      if (!finite) continue;
      (kInverse ? B(1.0f) / s : s).store_aligned(mult_a + j * W);
      s.store_aligned(s_a + j * W);
      zf.store_aligned(z_a + j * W);
      (qmin - zf).store_aligned(lo_a + j * W);
      (qmax - zf).store_aligned(hi_a + j * W);
    }
    for (std::int64_t j = 0; j < nb; ++j) {
      const std::int64_t g0 = (sb + j) * W;
      const float* xb0 = x + g0 * G;
      float* yb0 = y + g0 * G;
      if (!finite_blk[j]) {  // the block, group by group, through the generic kernel
        detail::BitWriter t(words, words ? g0 * G : 0);
        group_rows<N, A>(xb0, yb0, 1, W * G, G, r, scale + g0, zero + g0, false, scalar_qparams,
                         words ? &t : nullptr);
        if (words) t.flush();  // a no-op: the block ends on a word boundary
        continue;
      }
      std::uint64_t* wb = words ? words + (sb + j) * kWords : nullptr;
      const float *m_j = mult_a + j * W, *s_j = s_a + j * W, *z_j = z_a + j * W,
                  *lo_j = lo_a + j * W, *hi_j = hi_a + j * W;
      // kPerWord batches per step, loaded before any is stored (x may be y; and a load issued
      // after a store to an address equal modulo 4 KiB may wait on it); batch b of the block
      // belongs to group b / kPG.
      auto quantize = [&](auto guard, auto const_zero, auto shift, auto free_lo) {
        constexpr bool kGuard = decltype(guard)::value;
        constexpr bool kConstZero = decltype(const_zero)::value;
        constexpr bool kShift = decltype(shift)::value;
        constexpr bool kFree = decltype(free_lo)::value;
        for (std::int64_t c = 0; c < kWords; ++c) {
          B xs[static_cast<std::size_t>(kPerWord)];
          for (std::int64_t k2 = 0; k2 < kPerWord; ++k2)
            xs[k2] = B::load_unaligned(xb0 + (c * kPerWord + k2) * W);
          std::uint64_t word = 0;
          for (std::int64_t k2 = 0; k2 < kPerWord; ++k2) {
            // k = b / kPG, spelled so that the batches of one group share their broadcasts.
            const std::int64_t b = c * kPerWord + k2;
            const std::int64_t k =
                kPG <= kPerWord ? c * (kPerWord / kPG) + k2 / kPG : c / (kPG / kPerWord);
            std::uint64_t in = 0;
            B yb;
            if constexpr (kConstZero)
              yb = group_quant_batch<N, kGuard, A, kFree>(xs[k2], B(m_j[k]), B(s_j[k]), zsym,
                                                          lo_sym, hi_sym, qmin, qmax, kShift, in);
            else
              yb = group_quant_batch<N, kGuard, A>(xs[k2], B(m_j[k]), B(s_j[k]), B(z_j[k]),
                                                   B(lo_j[k]), B(hi_j[k]), qmin, qmax, kShift, in);
            yb.store_unaligned(yb0 + b * W);
            word |= in << (k2 * W);
          }
          if (wb) wb[c] = word;
        }
      };
      using T = std::true_type;
      using F = std::false_type;
      if (shifted) {
        if (choose && Symmetric && lower_free)
          quantize(F{}, T{}, T{}, T{});
        else if (choose && Symmetric)
          quantize(F{}, T{}, T{}, F{});
        else if (choose)
          quantize(F{}, F{}, T{}, F{});
        else
          sym_blk[j] ? quantize(T{}, T{}, T{}, F{}) : quantize(T{}, F{}, T{}, F{});
      } else {
        if (choose)
          quantize(F{}, F{}, F{}, F{});
        else
          quantize(T{}, F{}, F{}, F{});
      }
    }
  }
  return blocks * W;
}

/// The groups of a [rows, axis_len] tensor when G divides axis_len, G = W * 2^k <= 256 (W
/// groups fit in L1) and a block of W groups fills whole 64-bit mask words, W groups per
/// block: the block's reduction (symmetric: max |x| as int32 bits, abs_bits; affine: min,
/// max and a NaN-detecting sum), transposed so that lane k holds group k (transpose_max_i32,
/// transpose_minmax), the W groups' qparams as batches (group_qparams_batch: one division for
/// W scales; a block with a non-finite group takes scalar_qparams and group_rows for all of
/// its groups), then the fake quant of the block with the group constants broadcast per batch
/// and the mask stored as whole words to `words` (bit 0 = element 0 of x; may be null).
/// Returns the groups done (a multiple of W; 0 if the layout does not qualify); group_rows
/// does the rest.
template <class N, bool Symmetric, class A, class ScalarQParams>
std::int64_t group_blocks(const float* x, float* y, std::int64_t rows, std::int64_t axis_len,
                          std::int64_t G, const QuantRange& r, float* scale, std::int32_t* zero,
                          bool choose, bool legacy, float eps, std::int32_t sym_zero,
                          ScalarQParams&& scalar_qparams, std::uint64_t* words) noexcept {
  constexpr std::int64_t W = static_cast<std::int64_t>(xsimd::batch<float, A>::size);
  if (G <= 0 || axis_len % G != 0 || G % W != 0 || G > 256 || (W * G) % 64 != 0) return 0;
  const std::int64_t groups = rows * (axis_len / G);
  auto run = [&](auto pg) -> std::int64_t {
    constexpr std::int64_t kPG = decltype(pg)::value;
    if constexpr ((kPG * W * W) % 64 == 0)
      return group_blocks_pg<kPG, N, Symmetric, A>(x, y, groups, r, scale, zero, choose, legacy,
                                                   eps, sym_zero, scalar_qparams, words);
    else
      return 0;
  };
  switch (G / W) {
    case 1:
      return run(std::integral_constant<std::int64_t, 1>{});
    case 2:
      return run(std::integral_constant<std::int64_t, 2>{});
    case 4:
      return run(std::integral_constant<std::int64_t, 4>{});
    case 8:
      return run(std::integral_constant<std::int64_t, 8>{});
    case 16:
      return run(std::integral_constant<std::int64_t, 16>{});
    case 32:
      return run(std::integral_constant<std::int64_t, 32>{});
    default:
      return 0;
  }
}

}  // namespace simd
}  // namespace fq

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#endif  // FQ_HAS_XSIMD
#endif  // FQ_SIMD_GROUP_FAKE_QUANTIZE_SIMD_HPP_
