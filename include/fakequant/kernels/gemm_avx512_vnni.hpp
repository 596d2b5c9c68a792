// SPDX-License-Identifier: MIT
// fakequant/kernels/gemm_avx512_vnni.hpp: the raw int8 GEMM with AVX-512 VNNI (vpdpbusd).
//
// Computes exactly what gemm_scalar.hpp computes. Micro-kernel: 6 rows x 64 columns (24 zmm
// int32 accumulators, 4 zmm of packed weights, 1 broadcast activation group of 4 bytes); one
// vpdpbusd adds 16 columns x 4 products. vpdpbusd (not vpdpbusds) wraps instead of saturating,
// and the K bound of gemm.hpp keeps every partial sum inside int32 anyway.
// Blocking: K in blocks of kKcGroups groups (the 64-column weight panel of one block, <= 128
// KiB, stays in L2 while kMc rows of activations stream over it); C is accumulated across K
// blocks. Compiled with a target attribute: no -march flag is needed, the caller checks the
// CPU (isa.hpp).
#ifndef FQ_KERNELS_GEMM_AVX512_VNNI_HPP_
#define FQ_KERNELS_GEMM_AVX512_VNNI_HPP_

#include <fakequant/simd/isa.hpp>

#if FQ_KERNELS_X86
#include <algorithm>  // min
#include <cstddef>    // ptrdiff_t
#include <cstdint>    // int32_t, int64_t, uint8_t, uint32_t
#include <cstring>    // memcpy
#include <immintrin.h>

#include <fakequant/kernels/packed_weights.hpp>

namespace fq {
namespace detail {

/// Four activation bytes at k = 4g .. 4g+3 (zero past K) as one int32, flipped if kFlip.
template <bool kFlip>
FQ_INLINE std::int32_t load_group(const std::uint8_t* row, std::int64_t g, std::int64_t k) {
  std::uint32_t x = 0;
  const std::int64_t k0 = g * kGroupK;
  if (k0 + kGroupK <= k)
    std::memcpy(&x, row + k0, 4);
  else
    std::memcpy(&x, row + k0, static_cast<std::size_t>(k - k0));  // little endian: low bytes
  if (kFlip) x ^= 0x80808080u;
  return static_cast<std::int32_t>(x);
}

/// One MR x (NP * 16) tile over groups [g0, g1); writes (or adds to) `ncols` columns of C.
template <int MR, int NP, bool kFlip>
FQ_TARGET_AVX512VNNI void vnni_tile(const std::uint8_t* a, std::int64_t lda, const std::int8_t* b,
                                    std::int64_t ps, std::int64_t g0, std::int64_t g1,
                                    std::int64_t k, std::int32_t* c, std::int64_t ldc, int ncols,
                                    bool add) {
  __m512i acc[std::size_t{MR}][std::size_t{NP}];
  FQ_UNROLL
  for (int r = 0; r < MR; ++r) FQ_UNROLL
  for (int p = 0; p < NP; ++p) acc[r][p] = _mm512_setzero_si512();
  const std::int64_t gfull = std::min(g1, k / kGroupK);
  const __m512i flip = _mm512_set1_epi32(static_cast<int>(0x80808080u));
  std::int64_t g = g0;
  for (; g < gfull; ++g) {
    __m512i bv[std::size_t{NP}];
    FQ_UNROLL
    for (int p = 0; p < NP; ++p) bv[p] = _mm512_loadu_si512(b + p * ps + g * 64);
    FQ_UNROLL
    for (int r = 0; r < MR; ++r) {
      std::int32_t x;
      std::memcpy(&x, a + r * lda + g * kGroupK, 4);
      __m512i av = _mm512_set1_epi32(x);
      if (kFlip) av = _mm512_xor_si512(av, flip);
      FQ_UNROLL
      for (int p = 0; p < NP; ++p) acc[r][p] = _mm512_dpbusd_epi32(acc[r][p], av, bv[p]);
    }
  }
  for (; g < g1; ++g) {  // the last, partial group of K
    __m512i bv[std::size_t{NP}];
    FQ_UNROLL
    for (int p = 0; p < NP; ++p) bv[p] = _mm512_loadu_si512(b + p * ps + g * 64);
    FQ_UNROLL
    for (int r = 0; r < MR; ++r) {
      const __m512i av = _mm512_set1_epi32(load_group<kFlip>(a + r * lda, g, k));
      FQ_UNROLL
      for (int p = 0; p < NP; ++p) acc[r][p] = _mm512_dpbusd_epi32(acc[r][p], av, bv[p]);
    }
  }
  FQ_UNROLL
  for (int r = 0; r < MR; ++r) FQ_UNROLL
  for (int p = 0; p < NP; ++p) {
    const int rem = ncols - p * 16;
    const __mmask16 mask = rem >= 16  ? __mmask16(0xFFFF)
                           : rem <= 0 ? __mmask16(0)
                                      : static_cast<__mmask16>((1u << rem) - 1u);
    std::int32_t* dst = c + r * ldc + std::ptrdiff_t{p} * 16;
    __m512i v = acc[r][p];
    if (add) v = _mm512_add_epi32(v, _mm512_maskz_loadu_epi32(mask, dst));
    _mm512_mask_storeu_epi32(dst, mask, v);
  }
}

using VnniTileFn = void (*)(const std::uint8_t*, std::int64_t, const std::int8_t*, std::int64_t,
                            std::int64_t, std::int64_t, std::int64_t, std::int32_t*, std::int64_t,
                            int, bool);

template <bool kFlip, int MR>
constexpr VnniTileFn vnni_tile_for(int np) {
  return np == 1   ? &vnni_tile<MR, 1, kFlip>
         : np == 2 ? &vnni_tile<MR, 2, kFlip>
         : np == 3 ? &vnni_tile<MR, 3, kFlip>
                   : &vnni_tile<MR, 4, kFlip>;
}

template <bool kFlip>
VnniTileFn vnni_tile_for(int mr, int np) {
  switch (mr) {
    case 1:
      return vnni_tile_for<kFlip, 1>(np);
    case 2:
      return vnni_tile_for<kFlip, 2>(np);
    case 3:
      return vnni_tile_for<kFlip, 3>(np);
    case 4:
      return vnni_tile_for<kFlip, 4>(np);
    case 5:
      return vnni_tile_for<kFlip, 5>(np);
    default:
      return vnni_tile_for<kFlip, 6>(np);
  }
}

/// Raw C = a' * W^T with VNNI (see gemm_scalar.hpp for the definition).
template <bool kFlip>
void gemm_raw_avx512_vnni(const std::uint8_t* a, std::int64_t m, std::int64_t lda,
                          const PackedWeights& w, std::int32_t* c, std::int64_t ldc) {
  constexpr std::int64_t kMr = 6, kNr = 64, kMc = 96, kKcGroups = 512;
  const std::int64_t n = w.n(), k = w.k(), kg = w.k_groups(), ps = w.panel_stride();
  if (kg == 0) {  // K = 0: C = 0
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
        const int np = (ncols + 15) / 16;
        const std::int8_t* b = w.data() + (j0 / kPanelCols) * ps;
        std::int64_t i = m0;
        const VnniTileFn full = vnni_tile_for<kFlip>(static_cast<int>(kMr), np);
        for (; i + kMr <= m1; i += kMr)
          full(a + i * lda, lda, b, ps, g0, g1, k, c + i * ldc + j0, ldc, ncols, g0 > 0);
        if (i < m1)
          vnni_tile_for<kFlip>(static_cast<int>(m1 - i), np)(a + i * lda, lda, b, ps, g0, g1, k,
                                                             c + i * ldc + j0, ldc, ncols, g0 > 0);
      }
    }
  }
}

}  // namespace detail
}  // namespace fq

#endif  // FQ_KERNELS_X86
#endif  // FQ_KERNELS_GEMM_AVX512_VNNI_HPP_
