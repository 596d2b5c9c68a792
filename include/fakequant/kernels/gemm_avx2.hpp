// SPDX-License-Identifier: MIT
// fakequant/kernels/gemm_avx2.hpp: the raw int8 GEMM with AVX2, widening (no saturation).
//
// Computes exactly what gemm_scalar.hpp computes. vpmaddubsw (u8 x s8 pairs summed into
// int16) would saturate: two products 255 * 127 already exceed 32767. This path instead
// widens both operands to int16 (vpmovzxbw for the activations, vpmovsxbw for the weights)
// and multiplies with vpmaddwd, whose int16 x int16 pair sums are exact in int32, so every
// u8 x s8 input gives the exact sum (within the K bound of gemm.hpp), at about half the
// throughput of vpmaddubsw.
// Micro-kernel: 4 rows x 8 columns (one 32-byte half of a packed 64-byte block). vpmaddwd
// leaves, per column, the sums of k pairs (0,1) and (2,3) in adjacent lanes; the two are added
// once at the end (vphaddd + a lane permute), not per group.
#ifndef FQ_KERNELS_GEMM_AVX2_HPP_
#define FQ_KERNELS_GEMM_AVX2_HPP_

#include <fakequant/simd/isa.hpp>

#if FQ_KERNELS_X86
#include <algorithm>  // min
#include <cstdint>    // int32_t, int64_t, uint8_t
#include <cstring>    // memcpy
#include <immintrin.h>

#include <fakequant/kernels/gemm_avx512_vnni.hpp>  // load_group
#include <fakequant/kernels/packed_weights.hpp>

namespace fq {
namespace detail {

/// One MR x 8 tile over groups [g0, g1); b points at the 32-byte half of the first block.
template <int MR, bool kFlip>
FQ_TARGET_AVX2 void avx2_tile(const std::uint8_t* a, std::int64_t lda, const std::int8_t* b,
                              std::int64_t g0, std::int64_t g1, std::int64_t k, std::int32_t* c,
                              std::int64_t ldc, int ncols, bool add) {
  __m256i lo[std::size_t{MR}], hi[std::size_t{MR}];
  FQ_UNROLL
  for (int r = 0; r < MR; ++r) lo[r] = hi[r] = _mm256_setzero_si256();
  for (std::int64_t g = g0; g < g1; ++g) {
    const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + g * 64));
    const __m256i blo = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(raw));       // columns 0-3
    const __m256i bhi = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(raw, 1));  // columns 4-7
    FQ_UNROLL
    for (int r = 0; r < MR; ++r) {
      const __m256i av = _mm256_cvtepu8_epi16(_mm_set1_epi32(load_group<kFlip>(a + r * lda, g, k)));
      lo[r] = _mm256_add_epi32(lo[r], _mm256_madd_epi16(av, blo));
      hi[r] = _mm256_add_epi32(hi[r], _mm256_madd_epi16(av, bhi));
    }
  }
  FQ_UNROLL
  for (int r = 0; r < MR; ++r) {
    // hadd gives columns [0 1 4 5 | 2 3 6 7]; the 64-bit permute (0, 2, 1, 3) orders them.
    const __m256i sum = _mm256_permute4x64_epi64(_mm256_hadd_epi32(lo[r], hi[r]), 0xD8);
    std::int32_t* dst = c + r * ldc;
    if (ncols == 8) {
      __m256i v = sum;
      if (add) v = _mm256_add_epi32(v, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(dst)));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), v);
    } else {
      alignas(32) std::int32_t tmp[8];
      _mm256_store_si256(reinterpret_cast<__m256i*>(tmp), sum);
      for (int j = 0; j < ncols; ++j) dst[j] = add ? dst[j] + tmp[j] : tmp[j];
    }
  }
}

using Avx2TileFn = void (*)(const std::uint8_t*, std::int64_t, const std::int8_t*, std::int64_t,
                            std::int64_t, std::int64_t, std::int32_t*, std::int64_t, int, bool);

template <bool kFlip>
Avx2TileFn avx2_tile_for(int mr) {
  return mr == 1   ? &avx2_tile<1, kFlip>
         : mr == 2 ? &avx2_tile<2, kFlip>
         : mr == 3 ? &avx2_tile<3, kFlip>
                   : &avx2_tile<4, kFlip>;
}

/// Raw C = a' * W^T with AVX2 (see gemm_scalar.hpp for the definition).
template <bool kFlip>
void gemm_raw_avx2(const std::uint8_t* a, std::int64_t m, std::int64_t lda, const PackedWeights& w,
                   std::int32_t* c, std::int64_t ldc) {
  constexpr std::int64_t kMr = 4, kNr = 8, kMc = 64, kKcGroups = 512;
  const std::int64_t n = w.n(), k = w.k(), kg = w.k_groups(), ps = w.panel_stride();
  if (kg == 0) {
    for (std::int64_t i = 0; i < m; ++i)
      for (std::int64_t j = 0; j < n; ++j) c[i * ldc + j] = 0;
    return;
  }
  for (std::int64_t g0 = 0; g0 < kg; g0 += kKcGroups) {
    const std::int64_t g1 = std::min(kg, g0 + kKcGroups);
    for (std::int64_t m0 = 0; m0 < m; m0 += kMc) {
      const std::int64_t m1 = std::min(m, m0 + kMc);
      for (std::int64_t j0 = 0; j0 < n; j0 += kNr) {
        const int ncols = static_cast<int>(std::min(kNr, n - j0));
        const std::int8_t* b = w.data() + (j0 / kPanelCols) * ps + (j0 % kPanelCols) * 4;
        std::int64_t i = m0;
        for (; i + kMr <= m1; i += kMr)
          avx2_tile<4, kFlip>(a + i * lda, lda, b, g0, g1, k, c + i * ldc + j0, ldc, ncols, g0 > 0);
        if (i < m1)
          avx2_tile_for<kFlip>(static_cast<int>(m1 - i))(a + i * lda, lda, b, g0, g1, k,
                                                         c + i * ldc + j0, ldc, ncols, g0 > 0);
      }
    }
  }
}

}  // namespace detail
}  // namespace fq

#endif  // FQ_KERNELS_X86
#endif  // FQ_KERNELS_GEMM_AVX2_HPP_
