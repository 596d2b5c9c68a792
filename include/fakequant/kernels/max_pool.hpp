// SPDX-License-Identifier: MIT
// fakequant/kernels/max_pool.hpp: max pooling of uint8 NCHW levels (no padding), the integer
// model's pooling.
//
//   y[c][i][j] = max_{p, q < k} x[c][i·s + p][j·s + q],  OH = (H − k) / s + 1 (likewise OW)
// Exact with respect to the float simulation: a per-tensor quantizer is monotone, so the max of
// the levels is the level of the max, and the output keeps the input's qparams.
// Paths (bit-identical: a max has one answer; tests/int8/model.test.cpp checks each against a
// direct max): the 2x2 stride-2 window (the demo's pooling) on AVX-512 (Isa::kAvx512Vnni or
// kAmx) takes 32 outputs per step — the byte max of the two input rows, then the max of each
// 16-bit lane's two bytes, narrowed to bytes (vpmovwb), with masked loads and stores at the row
// end: 3.6-3.8x the scalar loop on the demo's two poolings (bm_int8_model), which the compiler
// does not vectorize across the pairs. Other windows and ISAs run the scalar loop, with the
// window fixed at compile time for the common ones.
#ifndef FQ_KERNELS_MAX_POOL_HPP_
#define FQ_KERNELS_MAX_POOL_HPP_

#include <algorithm>  // min
#include <cstdint>    // int64_t, uint8_t

#include <fakequant/base/error.hpp>
#include <fakequant/simd/isa.hpp>

#if FQ_KERNELS_X86
#include <immintrin.h>
#endif

namespace fq {

namespace detail {
/// max_pool2d_u8 with the window K and stride S fixed at compile time when they are > 0 (the
/// compiler then unrolls the window and vectorizes the row; about 2x faster than the run-time
/// loop on the demo's 2x2 pooling), or taken from k and s when they are 0.
template <std::int64_t K, std::int64_t S>
void max_pool2d_u8_rows(const std::uint8_t* x, std::int64_t nc, std::int64_t h, std::int64_t w,
                        std::int64_t k_rt, std::int64_t s_rt, std::uint8_t* y) {
  const std::int64_t k = K > 0 ? K : k_rt, s = S > 0 ? S : s_rt;
  const std::int64_t oh = (h - k) / s + 1, ow = (w - k) / s + 1;
  for (std::int64_t c = 0; c < nc; ++c)
    for (std::int64_t i = 0; i < oh; ++i) {
      const std::uint8_t* in = x + (c * h + i * s) * w;
      std::uint8_t* out = y + (c * oh + i) * ow;
      for (std::int64_t j = 0; j < ow; ++j) {
        std::uint8_t m = 0;
        for (std::int64_t p = 0; p < k; ++p)
          for (std::int64_t q = 0; q < k; ++q) {
            const std::uint8_t v = in[p * w + j * s + q];
            m = v > m ? v : m;
          }
        out[j] = m;
      }
    }
}

#if FQ_KERNELS_X86
/// The AVX-512 path of the 2x2 stride-2 window (file comment); arguments checked.
FQ_TARGET_AVX512VNNI inline void max_pool2d_u8_2x2_avx512(const std::uint8_t* x, std::int64_t nc,
                                                          std::int64_t h, std::int64_t w,
                                                          std::uint8_t* y) {
  const std::int64_t oh = (h - 2) / 2 + 1, ow = (w - 2) / 2 + 1;
  const __m512i low_bytes = _mm512_set1_epi16(0x00FF);
  for (std::int64_t c = 0; c < nc; ++c)
    for (std::int64_t i = 0; i < oh; ++i) {
      const std::uint8_t* a = x + (c * h + 2 * i) * w;  // rows 2i and 2i + 1
      const std::uint8_t* b = a + w;
      std::uint8_t* out = y + (c * oh + i) * ow;
      for (std::int64_t j = 0; j < ow; j += 32) {
        const std::int64_t m = std::min<std::int64_t>(32, ow - j);  // outputs; 2m <= w inputs
        const __mmask64 in_mask =
            m == 32 ? ~__mmask64(0) : (__mmask64(1) << (2 * static_cast<unsigned>(m))) - 1u;
        const __mmask32 out_mask =
            m == 32 ? ~__mmask32(0) : static_cast<__mmask32>((1u << static_cast<unsigned>(m)) - 1u);
        const __m512i v = _mm512_max_epu8(_mm512_maskz_loadu_epi8(in_mask, a + 2 * j),
                                          _mm512_maskz_loadu_epi8(in_mask, b + 2 * j));
        const __m512i pair = _mm512_max_epu16(_mm512_and_si512(v, low_bytes),
                                              _mm512_srli_epi16(v, 8));  // <= 255 per lane
        _mm256_mask_storeu_epi8(out + j, out_mask, _mm512_cvtepi16_epi8(pair));
      }
    }
}
#endif
}  // namespace detail

/// Max pooling of `nc` uint8 planes h × w with a k × k window and stride s (file comment).
/// isa: as conv2d_u8 (kAuto: the best the CPU runs; kScalar forces the scalar loop).
inline void max_pool2d_u8(const std::uint8_t* x, std::int64_t nc, std::int64_t h, std::int64_t w,
                          std::int64_t k, std::int64_t s, std::uint8_t* y, Isa isa = Isa::kAuto) {
  FQ_CHECK(k > 0 && s > 0 && nc >= 0, ErrorCode::kInvalidArgument,
           detail::msg("max_pool2d_u8: window ", k, ", stride ", s, " and ", nc,
                       " planes: window and stride must be > 0, planes >= 0"));
  FQ_CHECK(k <= h && k <= w, ErrorCode::kShapeMismatch,
           detail::msg("max_pool2d_u8: window ", k, " does not fit the ", h, "x", w, " input"));
  if (nc == 0) return;
  FQ_CHECK(x != nullptr && y != nullptr, ErrorCode::kInvalidArgument,
           "max_pool2d_u8: null input or output");
  const Isa path = resolve_isa(isa, "max_pool2d_u8");
#if FQ_KERNELS_X86
  if (k == 2 && s == 2 && (path == Isa::kAvx512Vnni || path == Isa::kAmx)) {
    detail::max_pool2d_u8_2x2_avx512(x, nc, h, w, y);
    return;
  }
#else
  static_cast<void>(path);
#endif
  if (k == 2 && s == 2)
    detail::max_pool2d_u8_rows<2, 2>(x, nc, h, w, k, s, y);
  else if (k == 3 && s == 2)
    detail::max_pool2d_u8_rows<3, 2>(x, nc, h, w, k, s, y);
  else if (k == 3 && s == 1)
    detail::max_pool2d_u8_rows<3, 1>(x, nc, h, w, k, s, y);
  else
    detail::max_pool2d_u8_rows<0, 0>(x, nc, h, w, k, s, y);
}

}  // namespace fq

#endif  // FQ_KERNELS_MAX_POOL_HPP_
