// SPDX-License-Identifier: MIT
// fakequant/kernels/requant_avx512.hpp: the standard requantizing epilogue, 16 columns at a
// time with AVX-512, bit-identical to the scalar output stages (output_stages.hpp).
//
// For a row of raw int32 sums c[0..n) (gemm_raw: before the zero-point compensation) and
// per-column multiplier m, shift s:
//   x = sat32((c + comp) + bias)         (comp: the compensation of gemm.hpp, so c + comp is
//                                         the exact int32 GEMM result; 64-bit add, clamp)
//   single rounding (RoundHalfEven): p = x * m (int64), t = 31 - s in [0, 62],
//       q = (p + 2^(t-1) - 1 + ((p >> t) & 1)) >> t   for t >= 1;   q = p for t = 0
//   double rounding (gemmlowp): xs = sat32(x * 2^max(s,0)), h = floor((xs * m + 2^30) / 2^31)
//       (= SRDHM: m >= 0, so the INT32_MIN * INT32_MIN case cannot occur),
//       e = max(-s, 0), q = (h >> e) + ((h & (2^e-1)) > ((2^e-1) >> 1) + (h < 0))
//   y = clamp(q + z, lo, hi)  — equal to the scalar sat32 / sat32 / clamp chain because lo, hi
//       lie inside int32 and every step is monotone.
// Eight columns per step in int64 lanes (vpmuldq for the products); the per-column constants
// are prepared once per call (prepare_requant_row), so a row costs one pass.
#ifndef FQ_KERNELS_REQUANT_AVX512_HPP_
#define FQ_KERNELS_REQUANT_AVX512_HPP_

#include <fakequant/simd/isa.hpp>

#if FQ_KERNELS_X86
#include <cstdint>  // int32_t, int64_t, uint8_t, int8_t
#include <immintrin.h>
#include <type_traits>  // is_same

namespace fq {
namespace detail {

/// Per-call, per-column constants of the vector epilogue: int64 arrays of n entries, padded
/// with zeros to a multiple of 8 (prepared once per call by gemm_requant).
struct RequantRowParams {
  const std::int64_t* bias;  ///< bias[n] - (z_A + s) * col_sums[n] (gemm.hpp compensation)
  const std::int64_t* mult;  ///< m
  const std::int64_t* c0;    ///< single: t = 31 - shift;       double: max(shift, 0)
  const std::int64_t* c1;    ///< single: 2^(t-1) - 1 (0 if t = 0); double: max(-shift, 0)
  std::int32_t zero_point;
  std::int32_t lo;
  std::int32_t hi;
};

/// Per-column constants for the epilogue (see RequantRowParams), n padded to a multiple of 8.
/// Arch: the caller's architecture tag (the loop is compiled with its flags, simd/arch.hpp).
template <class Arch, bool kSingle>
void prepare_requant_row(const std::int32_t* bias, const std::int32_t* comp,
                         const std::int32_t* mult, const std::int32_t* shift, std::int64_t n,
                         std::int64_t* out /* 4 * padded n */) {
  const std::int64_t np = (n + 7) / 8 * 8;
  for (std::int64_t j = 0; j < np; ++j) {
    const bool in = j < n;
    const std::int64_t s = in ? shift[j] : 0;
    out[j] = in ? std::int64_t{bias ? bias[j] : 0} + comp[j] : 0;
    out[np + j] = in ? mult[j] : 0;
    if (kSingle) {
      const std::int64_t t = 31 - s;
      out[2 * np + j] = t;
      out[3 * np + j] = t > 0 ? (std::int64_t{1} << (t - 1)) - 1 : 0;
    } else {
      out[2 * np + j] = s > 0 ? s : 0;
      out[3 * np + j] = s > 0 ? 0 : -s;
    }
  }
}

/// Eight columns (int64 lanes) from x = c + bias through rounding, zero point and clamp.
template <bool kSingle>
FQ_TARGET_AVX512VNNI_INLINE __m512i requant8(__m512i x, __m512i m, __m512i c0, __m512i c1,
                                             __m512i zp, __m512i lo, __m512i hi) {
  const __m512i one = _mm512_set1_epi64(1);
  const __m512i i32min = _mm512_set1_epi64(-2147483648LL), i32max = _mm512_set1_epi64(2147483647LL);
  x = _mm512_min_epi64(_mm512_max_epi64(x, i32min), i32max);  // sat32(acc + bias)
  __m512i q;
  if (kSingle) {
    // floor((p + 2^(t-1) - 1 + odd) / 2^t), odd = bit t of p, is p / 2^t rounded half to
    // even for t >= 1 (a tie rounds up exactly when floor(p / 2^t) is odd); t = 0 is p.
    const __m512i p = _mm512_mul_epi32(x, m);
    const __m512i odd = _mm512_and_si512(_mm512_srav_epi64(p, c0), one);
    q = _mm512_srav_epi64(_mm512_add_epi64(p, _mm512_add_epi64(c1, odd)), c0);
    q = _mm512_mask_mov_epi64(q, _mm512_cmpeq_epi64_mask(c0, _mm512_setzero_si512()), p);
  } else {
    const __m512i xs = _mm512_min_epi64(_mm512_max_epi64(_mm512_sllv_epi64(x, c0), i32min), i32max);
    const __m512i h = _mm512_srai_epi64(
        _mm512_add_epi64(_mm512_mul_epi32(xs, m), _mm512_set1_epi64(1LL << 30)), 31);
    const __m512i mask = _mm512_sub_epi64(_mm512_sllv_epi64(one, c1), one);
    const __m512i rem = _mm512_and_si512(h, mask);
    const __m512i threshold =
        _mm512_add_epi64(_mm512_srli_epi64(mask, 1), _mm512_srli_epi64(h, 63));
    q = _mm512_srav_epi64(h, c1);
    q = _mm512_mask_add_epi64(q, _mm512_cmpgt_epi64_mask(rem, threshold), q, one);
  }
  q = _mm512_add_epi64(q, zp);
  return _mm512_min_epi64(_mm512_max_epi64(q, lo), hi);
}

/// o[j] = epilogue(c[j]) for j in [0, n), c the raw int32 sums, o contiguous.
template <bool kSingle, class Out>
FQ_TARGET_AVX512VNNI void requant_row_avx512(const std::int32_t* c, std::int64_t n,
                                             const RequantRowParams& p, Out* o) {
  const __m512i zp = _mm512_set1_epi64(p.zero_point), lo = _mm512_set1_epi64(p.lo),
                hi = _mm512_set1_epi64(p.hi);
  for (std::int64_t j = 0; j < n; j += 8) {
    const std::int64_t rem = n - j;
    const __mmask8 mask = rem >= 8 ? __mmask8(0xFF) : static_cast<__mmask8>((1u << rem) - 1u);
    const __m512i acc = _mm512_cvtepi32_epi64(_mm256_maskz_loadu_epi32(mask, c + j));
    const __m512i x = _mm512_add_epi64(acc, _mm512_loadu_si512(p.bias + j));
    const __m512i q =
        requant8<kSingle>(x, _mm512_loadu_si512(p.mult + j), _mm512_loadu_si512(p.c0 + j),
                          _mm512_loadu_si512(p.c1 + j), zp, lo, hi);
    _mm512_mask_cvtepi64_storeu_epi8(o + j, mask, q);  // q in [lo, hi]: truncation is exact
  }
}

}  // namespace detail
}  // namespace fq

#endif  // FQ_KERNELS_X86
#endif  // FQ_KERNELS_REQUANT_AVX512_HPP_
