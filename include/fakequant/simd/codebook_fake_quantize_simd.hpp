// SPDX-License-Identifier: MIT
// fakequant/simd/codebook_fake_quantize_simd.hpp: codebook fake quantization of contiguous
// runs over xsimd::batch<float, A>, bit-identical to the scalar reference
// detail::codebook_fake_quant (format/codebook.hpp): the same u = x * f32(1/s) (or x / s),
// the same count of thresholds strictly below u, the same product L[k] * s, the same mask
// compares and NaN rule; run tails go through the scalar reference itself.
//
// Level lookup, for n levels:
//   AVX-512, n <= 16: thresholds and levels live in one register each (padded with +Inf and
//     the top level); a branchless binary search finds k = #{t < u} — step 8 compares with a
//     broadcast t[7], steps 4, 2, 1 read their probe with permutexvar — and one more
//     permutexvar reads L[k]. The search is port-5 bound (compares into mask registers and
//     permutes share it): about 8 cycles per 16 elements.
//   AVX2, n <= 16: the same search on 8 lanes with the tables in two halves (steps 8 and 4
//     broadcast and blend, steps 2 and 1 and the level read permute both halves and blend).
//   otherwise: a select chain, y = L[0]; y = (u > t[i]) ? L[i+1] : y for i = 0 .. n-2, which
//     leaves L[#{t < u}] since the thresholds increase (n - 1 compares and blends).
// A block of 64 elements (NF4's) stays in registers and its lookups are interleaved. Its
// largest |x| bit pattern (an integer max) tells whether it is all finite; if so that pattern
// is the absmax itself, the NaN select is skipped, and with dynamic scales and
// L[0] <= -1 <= 1 <= L[n-1] the mask word is all ones (every x lies in [-amax, amax]). Block
// absmax otherwise: max of |x| over the finite lanes (others count as 0), exact in any order.
#ifndef FQ_SIMD_CODEBOOK_FAKE_QUANTIZE_SIMD_HPP_
#define FQ_SIMD_CODEBOOK_FAKE_QUANTIZE_SIMD_HPP_

#include <fakequant/base/config.hpp>
#include <fakequant/core/bit_writer.hpp>
#include <fakequant/format/codebook.hpp>

#if FQ_HAS_XSIMD
#include <cstddef>      // size_t
#include <cstdint>      // int32_t, int64_t, uint64_t
#include <cstring>      // memcpy
#include <limits>       // numeric_limits
#include <type_traits>  // is_base_of
#include <vector>       // vector

#include <xsimd/xsimd.hpp>

#include <fakequant/simd/xsimd_compat.hpp>

namespace fq {
namespace simd {

/// A codebook's tables laid out for the kernels of A (built once per call).
template <class A>
class CodebookKernel {
  using B = xsimd::batch<float, A>;
  static constexpr std::size_t W = B::size;

 public:
  explicit CodebookKernel(const Codebook& book)
      : book_(book),
        n_(book.size()),
        spans_unit_(book.min_level() <= -1.0f && book.max_level() >= 1.0f) {
    if (n_ <= 16) {
      const std::vector<float>& L = book_.levels();
      const std::vector<float>& th = book_.thresholds();
      for (std::size_t k = 0; k < 16; ++k) {
        tpad_[k] = k + 1 < n_ ? th[k] : std::numeric_limits<float>::infinity();
        lpad_[k] = k < n_ ? L[k] : L[n_ - 1];
      }
#if XSIMD_WITH_AVX512F
      if constexpr (std::is_base_of<xsimd::avx512f, A>::value) {
        tv_ = _mm512_load_ps(tpad_);
        lv_ = _mm512_load_ps(lpad_);
      }
#endif
    }
  }

  /// One block: s = its finite absmax when `dynamic` (else s is the given scale), then
  /// y[0, n) = fake quant of x[0, n); mask bits to bw if not null. A block of 64 (NF4's)
  /// stays in registers, its lookups interleaved.
  void block(const float* x, float* y, std::int64_t n, float& s, bool dynamic,
             detail::BitWriter* bw) const noexcept {
    if (n == 64 && 64 % W == 0) {
      block64(x, y, s, dynamic, bw);
      return;
    }
    if (dynamic) s = absmax(x, n);
    run(x, y, n, detail::codebook_scale(book_, s), bw);
  }

  /// max |x| over the finite elements of x[0, n) (0 if none): detail::finite_absmax.
  float absmax(const float* x, std::int64_t n) const noexcept {
    B acc(0.0f);
    std::int64_t i = 0;
    for (; i + static_cast<std::int64_t>(W) <= n; i += static_cast<std::int64_t>(W))
      acc = xsimd::max(acc, finite_abs(B::load_unaligned(x + i)));
    const float m = detail::finite_absmax(x + i, n - i);
    const float v = hmax(acc);
    return v > m ? v : m;
  }

  /// y[0, n) = fake quant of x[0, n) with the block constants p; mask bits to bw if not null.
  void run(const float* x, float* y, std::int64_t n, const detail::CodebookScale& p,
           detail::BitWriter* bw) const noexcept {
    const B s(p.scale), inv(p.inv), lo(p.lo), hi(p.hi);
    std::int64_t i = 0;
    constexpr auto w = static_cast<std::int64_t>(W);
    for (; i + w <= n; i += w) {
      const B xb = B::load_unaligned(x + i);
      B u[1] = {p.divide ? xb / s : xb * inv}, lv[1];
      levels<1>(u, lv);
      output(xb, lv[0], s).store_unaligned(y + i);
      if (bw) bw->put(to_bits((xb >= lo) && (xb <= hi)), static_cast<int>(W));
    }
    for (; i < n; ++i) {
      bool in = false;
      y[i] = detail::codebook_fake_quant(book_, x[i], p, in);
      if (bw) bw->put_bit(in);
    }
  }

 private:
  // A block of 64 = kJ batches (4 on AVX-512, 8 on AVX2, 16 on SSE), in registers.
  static constexpr std::size_t kJ = 64 / W;
  void block64(const float* x, float* y, float& scale, bool dynamic,
               detail::BitWriter* bw) const noexcept {
    using BI = xsimd::batch<std::int32_t, A>;
    B xb[kJ];
    for (std::size_t j = 0; j < kJ; ++j) xb[j] = B::load_unaligned(x + j * W);
    // The largest |x| bit pattern: below the Inf pattern iff the block is finite, and then it
    // is the absmax itself (non-negative floats order as their bits).
    const BI abs_bits(0x7FFFFFFF);
    BI mb = xsimd::bitwise_cast<BI>(xb[0]) & abs_bits;
    for (std::size_t j = 1; j < kJ; ++j)
      mb = xsimd::max(mb, xsimd::bitwise_cast<BI>(xb[j]) & abs_bits);
    const std::int32_t top = hmax_int(mb);
    const bool finite = top < 0x7F800000;
    if (dynamic) {
      if (finite) {
        std::memcpy(&scale, &top, sizeof scale);
      } else {
        B acc = finite_abs(xb[0]);
        for (std::size_t j = 1; j < kJ; ++j) acc = xsimd::max(acc, finite_abs(xb[j]));
        scale = hmax(acc);
      }
    }
    const detail::CodebookScale p = detail::codebook_scale(book_, scale);
    const B s(p.scale), inv(p.inv), lo(p.lo), hi(p.hi);
    B u[kJ], lv[kJ];
    for (std::size_t j = 0; j < kJ; ++j) u[j] = p.divide ? xb[j] / s : xb[j] * inv;
    levels<kJ>(u, lv);
    for (std::size_t j = 0; j < kJ; ++j)
      (finite ? lv[j] * s : output(xb[j], lv[j], s)).store_unaligned(y + j * W);
    if (!bw) return;
    std::uint64_t word = ~std::uint64_t{0};
    // L[0] <= -1 and L[n-1] >= 1 with dynamic scales: every finite x lies in [-amax, amax].
    if (!(dynamic && finite && spans_unit_)) {
      word = 0;
      for (std::size_t j = 0; j < kJ; ++j)
        word |= to_bits((xb[j] >= lo) && (xb[j] <= hi)) << (j * W);
    }
    bw->put(word, 64);
  }

  static std::int32_t hmax_int(const xsimd::batch<std::int32_t, A>& v) noexcept {
#if XSIMD_WITH_AVX512F
    if constexpr (std::is_base_of<xsimd::avx512f, A>::value) return _mm512_reduce_max_epi32(v);
#endif
    alignas(64) std::int32_t lanes[W];
    v.store_aligned(lanes);
    std::int32_t m = lanes[0];
    for (std::size_t k = 1; k < W; ++k) m = lanes[k] > m ? lanes[k] : m;
    return m;
  }

  // L[k] * s, or the quieted NaN x. xsimd::isnan, not x != x: xsimd 8.1 compiles != to
  // _CMP_NEQ_OQ on AVX-512, false for NaN.
  static B output(const B& xb, const B& level, const B& s) noexcept {
    return xsimd::select(xsimd::isnan(xb), xb + xb, level * s);
  }
  // |x| where finite, else 0.
  static B finite_abs(const B& xb) noexcept {
    const B a = xsimd::abs(xb);
    return xsimd::select(a <= B(std::numeric_limits<float>::max()), a, B(0.0f));
  }
  // The largest lane (lanes are non-negative and not NaN: exact in any order).
  static float hmax(const B& v) noexcept {
#if XSIMD_WITH_AVX512F
    if constexpr (std::is_base_of<xsimd::avx512f, A>::value) return _mm512_reduce_max_ps(v);
#endif
    alignas(64) float lanes[W];
    v.store_aligned(lanes);
    float m = lanes[0];
    for (std::size_t k = 1; k < W; ++k) m = lanes[k] > m ? lanes[k] : m;
    return m;
  }

  // lv[j] = L[#{ i : u[j] > t[i] }] for J batches, interleaved for instruction-level
  // parallelism.
  template <std::size_t J>
  void levels(const B (&u)[J], B (&lv)[J]) const noexcept {
#if XSIMD_WITH_AVX512F
    if constexpr (std::is_base_of<xsimd::avx512f, A>::value) {
      if (n_ <= 16) {
        __m512i k[J];
        // Step 8 probes t[7] in every lane: a broadcast, no permute.
        const __m512 t7 = _mm512_set1_ps(tpad_[7]),
                     eight = _mm512_castsi512_ps(_mm512_set1_epi32(8));
        for (std::size_t j = 0; j < J; ++j)
          k[j] = _mm512_castps_si512(
              _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(u[j], t7, _CMP_GT_OQ), eight));
        for (int step = 4; step >= 1; step >>= 1) {
          const __m512i off = _mm512_set1_epi32(step - 1), inc = _mm512_set1_epi32(step);
          for (std::size_t j = 0; j < J; ++j) {
            const __m512 t = _mm512_permutexvar_ps(_mm512_add_epi32(k[j], off), tv_);
            const __mmask16 gt = _mm512_cmp_ps_mask(u[j], t, _CMP_GT_OQ);
            k[j] = _mm512_mask_add_epi32(k[j], gt, k[j], inc);
          }
        }
        for (std::size_t j = 0; j < J; ++j) lv[j] = B(_mm512_permutexvar_ps(k[j], lv_));
        return;
      }
    }
#endif
#if XSIMD_WITH_AVX2
    if constexpr (std::is_base_of<xsimd::avx2, A>::value && W == 8) {
      if (n_ <= 16) {
        levels_avx2(u, lv);
        return;
      }
    }
#endif
    const std::vector<float>& L = book_.levels();
    const std::vector<float>& t = book_.thresholds();
    for (std::size_t j = 0; j < J; ++j) lv[j] = B(L[0]);
    for (std::size_t i = 0; i + 1 < n_; ++i) {
      const B ti(t[i]), li(L[i + 1]);
      for (std::size_t j = 0; j < J; ++j) lv[j] = xsimd::select(u[j] > ti, li, lv[j]);
    }
  }

#if XSIMD_WITH_AVX2
  // The binary search of the AVX-512 path on 8 lanes: the 16-entry tables are two halves;
  // steps 8 and 4 use broadcasts (the half is the step-8 outcome, m8), steps 2 and 1 and the
  // level read permute both halves and pick by m8 (k >= 8 iff m8: the later steps add <= 7).
  template <std::size_t J>
  void levels_avx2(const B (&u)[J], B (&lv)[J]) const noexcept {
    const __m256 t7 = _mm256_set1_ps(tpad_[7]), t3 = _mm256_set1_ps(tpad_[3]),
                 t11 = _mm256_set1_ps(tpad_[11]);
    const __m256 tlo = _mm256_load_ps(tpad_), thi = _mm256_load_ps(tpad_ + 8);
    const __m256 llo = _mm256_load_ps(lpad_), lhi = _mm256_load_ps(lpad_ + 8);
    const __m256i c8 = _mm256_set1_epi32(8), c4 = _mm256_set1_epi32(4), c2 = _mm256_set1_epi32(2),
                  c1 = _mm256_set1_epi32(1);
    for (std::size_t j = 0; j < J; ++j) {
      const __m256 uj = u[j];
      const __m256 m8 = _mm256_cmp_ps(uj, t7, _CMP_GT_OQ);
      __m256i k = _mm256_and_si256(_mm256_castps_si256(m8), c8);
      __m256 m = _mm256_cmp_ps(uj, _mm256_blendv_ps(t3, t11, m8), _CMP_GT_OQ);
      k = _mm256_add_epi32(k, _mm256_and_si256(_mm256_castps_si256(m), c4));
      __m256i probe = _mm256_add_epi32(k, c1);
      m = _mm256_cmp_ps(uj,
                        _mm256_blendv_ps(_mm256_permutevar8x32_ps(tlo, probe),
                                         _mm256_permutevar8x32_ps(thi, probe), m8),
                        _CMP_GT_OQ);
      k = _mm256_add_epi32(k, _mm256_and_si256(_mm256_castps_si256(m), c2));
      m = _mm256_cmp_ps(
          uj,
          _mm256_blendv_ps(_mm256_permutevar8x32_ps(tlo, k), _mm256_permutevar8x32_ps(thi, k), m8),
          _CMP_GT_OQ);
      k = _mm256_add_epi32(k, _mm256_and_si256(_mm256_castps_si256(m), c1));
      lv[j] = B(
          _mm256_blendv_ps(_mm256_permutevar8x32_ps(llo, k), _mm256_permutevar8x32_ps(lhi, k), m8));
    }
  }
#endif

#if XSIMD_WITH_AVX512F
  __m512 tv_{}, lv_{};  // tpad_ and lpad_ in registers
#endif

  const Codebook& book_;
  std::size_t n_;
  bool spans_unit_;  // L[0] <= -1 and L[n-1] >= 1
  // n <= 16: thresholds padded with +Inf, levels padded with the top level.
  alignas(64) float tpad_[16] = {};
  alignas(64) float lpad_[16] = {};
};

}  // namespace simd
}  // namespace fq

#endif  // FQ_HAS_XSIMD
#endif  // FQ_SIMD_CODEBOOK_FAKE_QUANTIZE_SIMD_HPP_
