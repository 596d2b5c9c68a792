// SPDX-License-Identifier: MIT
// fakequant/simd/group_fake_quantize_simd.hpp: the SIMD kernels of the group-wise fake quant
// (kernels/group_fake_quantize.hpp) for groups along the last axis: the min/max reduction of
// a group, fused with its qparams and its fake quant (the element formula of the per-tensor
// kernels, fake_quant_batch(_shifted) of simd/fake_quantize_simd.hpp) while it is in L1.
//
// Bit-identical to the scalar reference: min and max of finite floats are exact whatever the
// order of the comparisons; the only order-dependent choice (-0 vs +0) is erased by the
// qparams formula, which compares with 0 (kernels/group_fake_quantize.hpp); the batched
// qparams perform the scalar rule's operations lane by lane. NaN is found through a running
// sum (x86's min/max drop a NaN operand depending on its position); a NaN sum is resolved
// element by element, so +inf + -inf is never taken for a NaN.
// Layouts: group_blocks takes W groups at a time when G divides the axis, W divides G and
// G <= 256 (the int4 G = 32 / 64 / 128 weights); group_rows takes the rest (short tails, per
// token, any G); groups along another axis use the per-channel kernel (fq_run_varying).
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
/// without a NaN element (+inf + -inf after overflow) is resolved by a scalar rescan. Two
/// accumulators hide the latency on long groups (per token).
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
    if (n >= 2 * W) {
      B lo1 = B::load_unaligned(x + W), hi1 = lo1, sum1 = lo1;
      for (i = 2 * W; i + 2 * W <= n; i += 2 * W) {
        const B a = B::load_unaligned(x + i), b = B::load_unaligned(x + i + W);
        lo0 = xsimd::min(lo0, a);
        hi0 = xsimd::max(hi0, a);
        sum0 = sum0 + a;
        lo1 = xsimd::min(lo1, b);
        hi1 = xsimd::max(hi1, b);
        sum1 = sum1 + b;
      }
      lo0 = xsimd::min(lo0, lo1);
      hi0 = xsimd::max(hi0, hi1);
      sum0 = sum0 + sum1;
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

/// MIN[k] = the minimum lane of lo[k], MAX[k] = the maximum lane of hi[k], k < W (W batches
/// each), written in group order. AVX-512: a transposing reduction tree (4 levels of two
/// shuffles and a min/max per pair; 45 instructions per 16 groups instead of 16 horizontal
/// reductions); the result is the same, min/max being exact.
template <class A>
FQ_INLINE void transpose_minmax(const xsimd::batch<float, A>* lo, const xsimd::batch<float, A>* hi,
                                float* mn, float* mx) noexcept {
  using B = xsimd::batch<float, A>;
#if XSIMD_WITH_AVX512F
  if constexpr (std::is_base_of<xsimd::avx512f, A>::value) {
    auto tree = [](const B* v, auto op) {
      __m512 c[8], e[4], g[2];
      for (int p = 0; p < 8; ++p)  // chunks [a a b b]: 8 partial lanes per group
        c[p] = op(_mm512_shuffle_f32x4(v[2 * p], v[2 * p + 1], 0x44),
                  _mm512_shuffle_f32x4(v[2 * p], v[2 * p + 1], 0xEE));
      for (int q = 0; q < 4; ++q)  // chunk k: group 4q + k, 4 partial lanes
        e[q] = op(_mm512_shuffle_f32x4(c[2 * q], c[2 * q + 1], 0x88),
                  _mm512_shuffle_f32x4(c[2 * q], c[2 * q + 1], 0xDD));
      for (int h = 0; h < 2; ++h)  // chunk k: 2 lanes of e[2h]'s group k, 2 of e[2h+1]'s
        g[h] = op(_mm512_shuffle_ps(e[2 * h], e[2 * h + 1], 0x44),
                  _mm512_shuffle_ps(e[2 * h], e[2 * h + 1], 0xEE));
      const __m512 m = op(_mm512_shuffle_ps(g[0], g[1], 0x88), _mm512_shuffle_ps(g[0], g[1], 0xDD));
      // Lane 4k + m holds group 4m + k: a 4 x 4 transpose back to group order.
      const __m512i idx = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
      return _mm512_permutexvar_ps(idx, m);
    };
    _mm512_storeu_ps(mn, tree(lo, [](__m512 a, __m512 b) { return _mm512_min_ps(a, b); }));
    _mm512_storeu_ps(mx, tree(hi, [](__m512 a, __m512 b) { return _mm512_max_ps(a, b); }));
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

/// Groups of G consecutive elements along the last axis of a [rows, axis_len] tensor (the
/// last group of a row may be short): group g = row * ceil(axis_len / G) + j. With `choose`,
/// each group's (scale, zero point) is first computed from its elements by
/// qparams(min, max, has_nan, scale[g], zero[g]) while they are in L1; then the group is
/// fake-quantized with the element formula of fake_quant_batch(_shifted), the tail by the
/// scalar reference. A group with a non-finite scale gives quiet NaNs and mask bits 0.
template <class N, class A, class QParams>
void group_rows(const float* x, float* y, std::int64_t rows, std::int64_t axis_len, std::int64_t G,
                const QuantRange& r, float* scale, std::int32_t* zero, bool choose,
                QParams&& qparams, detail::BitWriter* writer) noexcept {
  using B = xsimd::batch<float, A>;
  constexpr std::int64_t W = static_cast<std::int64_t>(B::size);
  constexpr int kPerWord = static_cast<int>(64 / W);
  const bool with_mask = writer != nullptr;
  // A local writer, never address-taken in the loop, so that its state stays in registers.
  detail::BitWriter bw = with_mask ? *writer : detail::BitWriter(nullptr, 0);
  const std::int64_t gpa = (axis_len + G - 1) / G;
  const bool shifted = kShiftedRounding<N, float> && shifted_range_ok(r);
  for (std::int64_t row = 0; row < rows; ++row)
    for (std::int64_t j = 0; j < gpa; ++j) {
      const std::int64_t g = row * gpa + j, off = row * axis_len + j * G;
      const std::int64_t n = axis_len - j * G < G ? axis_len - j * G : G;
      const float* xg = x + off;
      float* yg = y + off;
      if (choose) {
        float mn, mx;
        bool nan;
        group_minmax<A>(xg, n, mn, mx, nan);
        qparams(mn, mx, nan, scale[g], zero[g]);
      }
      if (!std::isfinite(scale[g])) {
        for (std::int64_t i = 0; i < n; ++i) yg[i] = std::numeric_limits<float>::quiet_NaN();
        if (with_mask)
          for (std::int64_t i = 0; i < n; i += 64)
            bw.put(0, static_cast<int>(std::min<std::int64_t>(64, n - i)));
        continue;
      }
      const auto p =
          detail::make_element_params<N, float>(scale[g], static_cast<double>(zero[g]), r);
      const B mult(p.mult), sc(p.scale), zb(p.zero), qmin(p.qmin), qmax(p.qmax);
      const B lo(p.qmin - p.zero), hi(p.qmax - p.zero);
      std::int64_t i = 0;
      std::uint64_t word = 0;
      int filled = 0;
      if (n >= W) {
        B next = B::load_unaligned(xg);
        for (; i + W <= n; i += W) {
          const B xb = next;  // pipelined: the next load before this store (4K aliasing)
          if (i + 2 * W <= n) next = B::load_unaligned(xg + i + W);
          std::uint64_t in = 0;
          B yb;
          if constexpr (kShiftedRounding<N, float>) {
            if (shifted)
              yb = fake_quant_batch_shifted<N>(apply_mult<N>(xb, mult), sc, lo, hi, in);
            else
              yb = fake_quant_batch<N>(xb, mult, sc, zb, qmin, qmax, in);
          } else {
            yb = fake_quant_batch<N>(xb, mult, sc, zb, qmin, qmax, in);
          }
          yb.store_unaligned(yg + i);
          if (with_mask) {
            word |= in << (filled * W);
            if (++filled == kPerWord) {
              bw.put(word, 64);
              word = 0;
              filled = 0;
            }
          }
        }
        if (with_mask && filled) bw.put(word, filled * static_cast<int>(W));
      }
      if (i < n) {
        detail::BitWriter tail = bw;  // a copy: taking bw's address would pin it to memory
        detail::fq_run_scalar<A, N, false>(xg + i, 1, yg + i, 1, n - i, p,
                                           with_mask ? &tail : nullptr);
        bw = tail;
      }
    }
  if (with_mask) *writer = bw;
}

/// The groups of a [rows, axis_len] tensor when G divides axis_len, G is a multiple of the
/// batch width W and G <= 256 (W groups fit in L1), W groups per block: the block's min/max
/// (transpose_minmax), its qparams as batches (group_qparams_batch; a block with a non-finite group
/// takes scalar_qparams for every group), then the fake quant of each group
/// (fake_quant_batch(_shifted)), the mask in 64-bit words. Returns the groups done (a multiple of
/// W, 0 if the layout does not qualify); group_rows does the rest.
template <class N, bool Symmetric, class A, class ScalarQParams>
std::int64_t group_blocks(const float* x, float* y, std::int64_t rows, std::int64_t axis_len,
                          std::int64_t G, const QuantRange& r, float* scale, std::int32_t* zero,
                          bool choose, bool legacy, float eps, std::int32_t sym_zero,
                          ScalarQParams&& scalar_qparams, detail::BitWriter* writer) noexcept {
  using B = xsimd::batch<float, A>;
  using BI = xsimd::batch<std::int32_t, A>;
  constexpr std::int64_t W = static_cast<std::int64_t>(B::size);
  constexpr int kPerWord = static_cast<int>(64 / W);
  if (G <= 0 || axis_len % G != 0 || G % W != 0 || G > 256) return 0;
  const std::int64_t groups = rows * (axis_len / G);
  const bool with_mask = writer != nullptr;
  detail::BitWriter bw = with_mask ? *writer : detail::BitWriter(nullptr, 0);
  const bool shifted = kShiftedRounding<N, float> && shifted_range_ok(r);
  const B qmin(static_cast<float>(r.quant_min)), qmax(static_cast<float>(r.quant_max));
  const std::int64_t blocks = groups / W;
  alignas(64) float mn[B::size], mx[B::size], mult_a[B::size], lo_a[B::size], hi_a[B::size];
  for (std::int64_t blk = 0; blk < blocks; ++blk) {
    const std::int64_t g0 = blk * W;
    const float* xb0 = x + g0 * G;
    float* yb0 = y + g0 * G;
    B s, zf;
    bool finite = true;
    if (choose) {
      B vlo[B::size], vhi[B::size];
      B sum(0.0f);  // NaN if the block holds a NaN (or +inf + -inf): then the scalar rule
      for (std::int64_t k = 0; k < W; ++k) {
        const float* xg = xb0 + k * G;
        B lo = B::load_unaligned(xg), hi = lo, part = lo;
        for (std::int64_t i = W; i < G; i += W) {
          const B v = B::load_unaligned(xg + i);
          lo = xsimd::min(lo, v);
          hi = xsimd::max(hi, v);
          part = part + v;
        }
        vlo[k] = lo;
        vhi[k] = hi;
        sum = sum + part;
      }
      transpose_minmax<A>(vlo, vhi, mn, mx);
      const B bmn = B::load_aligned(mn), bmx = B::load_aligned(mx);
      const B inf(std::numeric_limits<float>::infinity());
      finite = !xsimd::any(xsimd::isnan(sum)) && xsimd::all(xsimd::abs(bmn) < inf) &&
               xsimd::all(xsimd::abs(bmx) < inf);
      if (finite) {
        group_qparams_batch<Symmetric, A>(bmn, bmx, r, legacy, eps, sym_zero, s, zf);
        s.store_unaligned(scale + g0);
        xsimd::to_int(zf).store_unaligned(zero + g0);
      } else {  // rare: every group of the block by the scalar rule, NaN looked up exactly
        for (std::int64_t k = 0; k < W; ++k) {
          bool nan = false;
          for (std::int64_t i = 0; i < G && !nan; ++i) nan = std::isnan(xb0[k * G + i]);
          scalar_qparams(mn[k], mx[k], nan, scale[g0 + k], zero[g0 + k]);
        }
      }
    }
    if (!finite) {               // the block, group by group, through the generic kernel
      detail::BitWriter t = bw;  // a copy: taking bw's address would pin it to memory
      group_rows<N, A>(xb0, yb0, 1, W * G, G, r, scale + g0, zero + g0, false, scalar_qparams,
                       with_mask ? &t : nullptr);
      bw = t;
      continue;
    }
    if (!choose) {
      s = B::load_unaligned(scale + g0);
      zf = xsimd::to_float(BI::load_unaligned(zero + g0));
    }
    const B mult = std::is_same<typename N::scale_apply, MulByInverse>::value ? B(1.0f) / s : s;
    mult.store_aligned(mult_a);
    (qmin - zf).store_aligned(lo_a);
    (qmax - zf).store_aligned(hi_a);
    alignas(64) float s_a[B::size], z_a[B::size];
    s.store_aligned(s_a);
    zf.store_aligned(z_a);
    // One flat loop over the block's G batches (batch b in group b / (G / W)), software-
    // pipelined by one batch: each load is issued before the previous store, which would
    // otherwise stall it when x and y are a multiple of 4 KiB apart (4K aliasing).
    std::uint64_t word = 0;
    int filled = 0;
    const std::int64_t per_group = G / W;
    std::int64_t k = -1, left = 0;
    B m, sc, zb, lo, hi;
    B next = B::load_unaligned(xb0);
    for (std::int64_t b = 0; b < G; ++b) {
      if (left == 0) {
        ++k;
        left = per_group;
        m = B(mult_a[k]);
        sc = B(s_a[k]);
        zb = B(z_a[k]);
        lo = B(lo_a[k]);
        hi = B(hi_a[k]);
      }
      --left;
      const B xb = next;
      if (b + 1 < G) next = B::load_unaligned(xb0 + (b + 1) * W);
      std::uint64_t in = 0;
      B yb;
      if constexpr (kShiftedRounding<N, float>) {
        if (shifted)
          yb = fake_quant_batch_shifted<N>(apply_mult<N>(xb, m), sc, lo, hi, in);
        else
          yb = fake_quant_batch<N>(xb, m, sc, zb, qmin, qmax, in);
      } else {
        yb = fake_quant_batch<N>(xb, m, sc, zb, qmin, qmax, in);
      }
      yb.store_unaligned(yb0 + b * W);
      if (with_mask) {
        word |= in << (filled * W);
        if (++filled == kPerWord) {
          bw.put(word, 64);
          word = 0;
          filled = 0;
        }
      }
    }
    if (with_mask && filled) bw.put(word, filled * static_cast<int>(W));  // narrow batches
  }
  if (with_mask) *writer = bw;
  return blocks * W;
}

}  // namespace simd
}  // namespace fq

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#endif  // FQ_HAS_XSIMD
#endif  // FQ_SIMD_GROUP_FAKE_QUANTIZE_SIMD_HPP_
