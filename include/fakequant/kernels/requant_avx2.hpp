// SPDX-License-Identifier: MIT
// fakequant/kernels/requant_avx2.hpp: the standard requantizing epilogue of
// requant_avx512.hpp with AVX2, four columns at a time, bit-identical to the scalar output
// stages (output_stages.hpp).
//
// The same formulas as requant_avx512.hpp (single rounding RoundHalfEven or gemmlowp's double
// rounding, zero point, clamp), on the same per-column constants (RequantRowParams), in int64
// lanes. AVX2 lacks the 64-bit min/max and arithmetic right shifts, so they are built from
// vpcmpgtq + blend and from the identity  a >> t = ~(~a >>> t)  for a < 0 (>>> logical).
// Bit t of p (the tie parity) is taken with a logical shift, equal to the arithmetic one for
// t < 64.
#ifndef FQ_KERNELS_REQUANT_AVX2_HPP_
#define FQ_KERNELS_REQUANT_AVX2_HPP_

#include <fakequant/kernels/requant_avx512.hpp>  // RequantRowParams, prepare_requant_row
#include <fakequant/simd/isa.hpp>

#if FQ_KERNELS_X86
#include <cstdint>  // int32_t, int64_t
#include <cstring>  // memcpy
#include <immintrin.h>

#define FQ_TARGET_AVX2_INLINE inline __attribute__((target("avx2"), always_inline))

namespace fq {
namespace detail {

FQ_TARGET_AVX2_INLINE __m256i max_epi64_avx2(__m256i a, __m256i b) {
  return _mm256_blendv_epi8(b, a, _mm256_cmpgt_epi64(a, b));
}
FQ_TARGET_AVX2_INLINE __m256i min_epi64_avx2(__m256i a, __m256i b) {
  return _mm256_blendv_epi8(a, b, _mm256_cmpgt_epi64(a, b));
}
/// a >> t (arithmetic), t in [0, 63] per lane.
FQ_TARGET_AVX2_INLINE __m256i srav_epi64_avx2(__m256i a, __m256i t) {
  const __m256i s = _mm256_cmpgt_epi64(_mm256_setzero_si256(), a);  // all ones where a < 0
  return _mm256_xor_si256(_mm256_srlv_epi64(_mm256_xor_si256(a, s), t), s);
}

/// Four columns (int64 lanes) from x = c + bias through rounding, zero point and clamp.
template <bool kSingle>
FQ_TARGET_AVX2_INLINE __m256i requant4_avx2(__m256i x, __m256i m, __m256i c0, __m256i c1,
                                            __m256i zp, __m256i lo, __m256i hi) {
  const __m256i one = _mm256_set1_epi64x(1);
  const __m256i i32min = _mm256_set1_epi64x(-2147483648LL),
                i32max = _mm256_set1_epi64x(2147483647LL);
  x = min_epi64_avx2(max_epi64_avx2(x, i32min), i32max);  // sat32(acc + bias)
  __m256i q;
  if (kSingle) {
    const __m256i p = _mm256_mul_epi32(x, m);
    const __m256i odd = _mm256_and_si256(_mm256_srlv_epi64(p, c0), one);
    q = srav_epi64_avx2(_mm256_add_epi64(p, _mm256_add_epi64(c1, odd)), c0);
    q = _mm256_blendv_epi8(q, p, _mm256_cmpeq_epi64(c0, _mm256_setzero_si256()));  // t = 0
  } else {
    const __m256i xs = min_epi64_avx2(max_epi64_avx2(_mm256_sllv_epi64(x, c0), i32min), i32max);
    const __m256i h =
        srav_epi64_avx2(_mm256_add_epi64(_mm256_mul_epi32(xs, m), _mm256_set1_epi64x(1LL << 30)),
                        _mm256_set1_epi64x(31));
    const __m256i mask = _mm256_sub_epi64(_mm256_sllv_epi64(one, c1), one);
    const __m256i rem = _mm256_and_si256(h, mask);
    const __m256i threshold =
        _mm256_add_epi64(_mm256_srli_epi64(mask, 1), _mm256_srli_epi64(h, 63));
    q = srav_epi64_avx2(h, c1);
    q = _mm256_sub_epi64(q, _mm256_cmpgt_epi64(rem, threshold));  // + 1 where rem > threshold
  }
  q = _mm256_add_epi64(q, zp);
  return min_epi64_avx2(max_epi64_avx2(q, lo), hi);
}

/// o[j] = epilogue(c[j]) for j in [0, n), c the raw int32 sums, o contiguous (1-byte Out).
template <bool kSingle, class Out>
FQ_TARGET_AVX2 void requant_row_avx2(const std::int32_t* c, std::int64_t n,
                                     const RequantRowParams& p, Out* o) {
  static_assert(sizeof(Out) == 1, "requant_row_avx2: the output must be one byte.");
  const __m256i zp = _mm256_set1_epi64x(p.zero_point), lo = _mm256_set1_epi64x(p.lo),
                hi = _mm256_set1_epi64x(p.hi);
  // The low byte of each int64 lane (q in [lo, hi]: truncation is exact), lanes 0..3.
  const __m256i pick = _mm256_setr_epi32(0, 2, 4, 6, 0, 0, 0, 0);
  const __m128i bytes = _mm_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
  for (std::int64_t j = 0; j < n; j += 4) {
    const std::int64_t rem = n - j;
    __m128i acc32;
    if (rem >= 4) {
      acc32 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(c + j));
    } else {
      std::int32_t tmp[4] = {0, 0, 0, 0};
      std::memcpy(tmp, c + j, static_cast<std::size_t>(rem) * sizeof(std::int32_t));
      acc32 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(tmp));
    }
    const __m256i x =
        _mm256_add_epi64(_mm256_cvtepi32_epi64(acc32),
                         _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p.bias + j)));
    const __m256i q = requant4_avx2<kSingle>(
        x, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p.mult + j)),
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p.c0 + j)),
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p.c1 + j)), zp, lo, hi);
    const __m128i b =
        _mm_shuffle_epi8(_mm256_castsi256_si128(_mm256_permutevar8x32_epi32(q, pick)), bytes);
    const auto word = static_cast<std::uint32_t>(_mm_cvtsi128_si32(b));
    std::memcpy(o + j, &word, static_cast<std::size_t>(rem >= 4 ? 4 : rem));  // little endian
  }
}

}  // namespace detail
}  // namespace fq

#endif  // FQ_KERNELS_X86
#endif  // FQ_KERNELS_REQUANT_AVX2_HPP_
