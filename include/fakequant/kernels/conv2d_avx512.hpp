// SPDX-License-Identifier: MIT
// fakequant/kernels/conv2d_avx512.hpp: the int8 convolution computed channel-major with
// AVX-512 VNNI, the requantization fused into the register tile (the conv2d.hpp fast path).
//
//   y[o][p] = clamp(requant(sum_k (col[k][p] - z_x) * W[o][k] + bias[o], M[o]) + z_y, lo, hi)
// for one image and one group (k = (c * kh + i) * kw + j, p = oh * out_w + ow), the same
// numbers as im2col + gemm_requant (conv2d.hpp) bit for bit: the int32 sum is exact (K bound
// of gemm.hpp) and the epilogue is requant8 of requant_avx512.hpp — or, with single rounding,
// for a channel whose folded bias keeps sum + bias inside int32 (|sum| <= K4 · 255 · 128: every
// real layer), the same arithmetic on the int32 lanes as they are (conv_store16_exact32: no
// saturation, no widening of the accumulators; the epilogue was half the demo's conv time).
// Why channel-major: NCHW wants 16 consecutive positions of one channel in a vector. So the
// activations are the vector operand of vpdpbusd (u8: positions in lanes, four k per lane)
// and the weights the broadcast one (s8, four k of one channel): the accumulators hold
// output rows, which are requantized in registers and stored as 16 contiguous bytes, with
// no int32 scratch and no transpose.
// Layout of the unfolded activations ("col4"): [ceil(K/4)][P16][4] bytes, P16 = P rounded up
// to 16: group g, position p holds col[4g..4g+3][p]. The input is first copied with its zero
// padding (value z_x) so every window read is in bounds; for stride 1 four rows of k are
// interleaved 16 positions at a time, other strides are gathered byte by byte. k past K (the
// last group) reuses a real row: its weights are zero, so it adds nothing.
// The weights: [Cout][K4] int8 rows, K4 = K rounded up to 4, zero padded (PackedConv2dWeights).
#ifndef FQ_KERNELS_CONV2D_AVX512_HPP_
#define FQ_KERNELS_CONV2D_AVX512_HPP_

#include <fakequant/kernels/requant_avx512.hpp>
#include <fakequant/simd/isa.hpp>

#if FQ_KERNELS_X86
#include <algorithm>  // min
#include <cstdint>    // int8_t, int32_t, int64_t, uint8_t
#include <cstring>    // memcpy, memset
#include <immintrin.h>

namespace fq {
namespace detail {

/// The geometry of one unfold (one image, one group), all validated by conv2d_u8.
struct Col4Geometry {
  std::int64_t channels, in_h, in_w, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w;
  std::int64_t out_h, out_w;
  std::int64_t k() const noexcept { return channels * kernel_h * kernel_w; }
  std::int64_t k_groups() const noexcept { return (k() + 3) / 4; }
  std::int64_t p() const noexcept { return out_h * out_w; }
  std::int64_t p16() const noexcept { return (p() + 15) / 16 * 16; }
  std::int64_t padded_h() const noexcept { return in_h + 2 * pad_h; }
  std::int64_t padded_w() const noexcept { return in_w + 2 * pad_w; }
};

/// xp[c][padded_h][padded_w] = x with a border of pad_value.
inline void pad_image_u8(const std::uint8_t* x, const Col4Geometry& g, std::uint8_t pad_value,
                         std::uint8_t* xp) noexcept {
  const std::int64_t hp = g.padded_h(), wp = g.padded_w();
  if (g.pad_h == 0 && g.pad_w == 0) {
    std::memcpy(xp, x, static_cast<std::size_t>(g.channels * hp * wp));
    return;
  }
  std::memset(xp, pad_value, static_cast<std::size_t>(g.channels * hp * wp));
  for (std::int64_t c = 0; c < g.channels; ++c)
    for (std::int64_t h = 0; h < g.in_h; ++h)
      std::memcpy(xp + (c * hp + h + g.pad_h) * wp + g.pad_w, x + (c * g.in_h + h) * g.in_w,
                  static_cast<std::size_t>(g.in_w));
}

/// The first byte of the padded input that row k of the unfolded matrix reads at oh = ow = 0.
inline const std::uint8_t* col4_row_origin(const std::uint8_t* xp, const Col4Geometry& g,
                                           std::int64_t k) noexcept {
  const std::int64_t kk = k < g.k() ? k : 0;  // k past K: any real row (zero weights)
  const std::int64_t c = kk / (g.kernel_h * g.kernel_w), r = kk % (g.kernel_h * g.kernel_w);
  return xp + (c * g.padded_h() + r / g.kernel_w) * g.padded_w() + r % g.kernel_w;
}

/// col4 (see the file comment) from the padded input xp. Positions in [P, P16) are left as
/// they are (the kernel reads them but never stores their results).
FQ_TARGET_AVX512VNNI inline void im2col4_u8(const std::uint8_t* xp, const Col4Geometry& g,
                                            std::uint8_t* col4) {
  const std::int64_t kg = g.k_groups(), p16 = g.p16(), wp = g.padded_w();
  for (std::int64_t grp = 0; grp < kg; ++grp) {
    const std::uint8_t* r[4];
    for (std::int64_t t = 0; t < 4; ++t) r[t] = col4_row_origin(xp, g, 4 * grp + t);
    std::uint8_t* dst = col4 + grp * p16 * 4;
    if (g.stride_w == 1) {
      for (std::int64_t oh = 0; oh < g.out_h; ++oh) {
        const std::int64_t row = oh * g.stride_h * wp;
        for (std::int64_t ow = 0; ow < g.out_w; ow += 16) {
          const std::int64_t n = std::min<std::int64_t>(16, g.out_w - ow);
          const __mmask16 m16 =
              n == 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << n) - 1u);
          const __m128i a0 = _mm_maskz_loadu_epi8(m16, r[0] + row + ow);
          const __m128i a1 = _mm_maskz_loadu_epi8(m16, r[1] + row + ow);
          const __m128i a2 = _mm_maskz_loadu_epi8(m16, r[2] + row + ow);
          const __m128i a3 = _mm_maskz_loadu_epi8(m16, r[3] + row + ow);
          const __m128i lo01 = _mm_unpacklo_epi8(a0, a1), hi01 = _mm_unpackhi_epi8(a0, a1);
          const __m128i lo23 = _mm_unpacklo_epi8(a2, a3), hi23 = _mm_unpackhi_epi8(a2, a3);
          __m512i v = _mm512_castsi128_si512(_mm_unpacklo_epi16(lo01, lo23));
          v = _mm512_inserti32x4(v, _mm_unpackhi_epi16(lo01, lo23), 1);
          v = _mm512_inserti32x4(v, _mm_unpacklo_epi16(hi01, hi23), 2);
          v = _mm512_inserti32x4(v, _mm_unpackhi_epi16(hi01, hi23), 3);
          const __mmask64 m64 =
              n == 16 ? ~__mmask64(0) : (__mmask64(1) << (4 * static_cast<unsigned>(n))) - 1u;
          _mm512_mask_storeu_epi8(dst + (oh * g.out_w + ow) * 4, m64, v);
        }
      }
    } else {
      for (std::int64_t oh = 0; oh < g.out_h; ++oh)
        for (std::int64_t ow = 0; ow < g.out_w; ++ow) {
          const std::int64_t off = oh * g.stride_h * wp + ow * g.stride_w;
          std::uint8_t* d = dst + (oh * g.out_w + ow) * 4;
          for (int t = 0; t < 4; ++t) d[t] = r[t][off];
        }
    }
  }
}

/// Per-channel constants of the fused epilogue, int64, one entry per output channel of the
/// group (the RequantRowParams arrays of requant_avx512.hpp, indexed by channel).
using ConvEpilogue = RequantRowParams;

/// 16 accumulators (channel o, positions p..p+15) -> 16 requantized bytes at y (n of them).
template <bool kSingle>
FQ_TARGET_AVX512VNNI_INLINE void conv_store16(__m512i acc, const ConvEpilogue& e, std::int64_t o,
                                              __m512i zp, __m512i lo, __m512i hi, std::uint8_t* y,
                                              __mmask16 mask) {
  const __m512i bias = _mm512_set1_epi64(e.bias[o]), m = _mm512_set1_epi64(e.mult[o]),
                c0 = _mm512_set1_epi64(e.c0[o]), c1 = _mm512_set1_epi64(e.c1[o]);
  const __m512i x0 = _mm512_add_epi64(_mm512_cvtepi32_epi64(_mm512_castsi512_si256(acc)), bias);
  const __m512i x1 =
      _mm512_add_epi64(_mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(acc, 1)), bias);
  const __m128i q0 = _mm512_cvtepi64_epi8(requant8<kSingle>(x0, m, c0, c1, zp, lo, hi));
  const __m128i q1 = _mm512_cvtepi64_epi8(requant8<kSingle>(x1, m, c0, c1, zp, lo, hi));
  _mm_mask_storeu_epi8(y, mask, _mm_unpacklo_epi64(q0, q1));  // q in [lo, hi]: exact bytes
}

/// True when raw sum + bias cannot leave int32 for any raw sum with |sum| <= bound: the
/// saturation of requant8 is then the identity and the bias add can be done in int32.
inline bool conv_bias_exact32(std::int64_t bias, std::int64_t bound) noexcept {
  return bias >= std::int64_t{-2147483647 - 1} + bound && bias <= std::int64_t{2147483647} - bound;
}

/// One output channel's constants for conv_store16_exact32 (single rounding).
struct ConvRow32 {
  __m512i bias;        ///< int32 lanes: the folded bias
  __m512i mult;        ///< int64 lanes: m
  __m512i t;           ///< int64 lanes: t = 31 - shift
  __m512i round;       ///< int64 lanes: 2^(t-1) - 1 (0 if t = 0)
  __m512i odd_bit;     ///< int64 lanes: 1 if t > 0, else 0 (t = 0: q = p, no tie to break)
  __m512i q_lo, q_hi;  ///< int64 lanes: lo - z_y and hi - z_y
  __m512i zp;          ///< int32 lanes: z_y
};

FQ_TARGET_AVX512VNNI_INLINE ConvRow32 conv_row32(const ConvEpilogue& e, std::int64_t o) {
  const __m512i t = _mm512_set1_epi64(e.c0[o]);
  return ConvRow32{_mm512_set1_epi32(static_cast<std::int32_t>(e.bias[o])),
                   _mm512_set1_epi64(e.mult[o]),
                   t,
                   _mm512_set1_epi64(e.c1[o]),
                   _mm512_min_epi64(t, _mm512_set1_epi64(1)),
                   _mm512_set1_epi64(std::int64_t{e.lo} - e.zero_point),
                   _mm512_set1_epi64(std::int64_t{e.hi} - e.zero_point),
                   _mm512_set1_epi32(e.zero_point)};
}

/// requant8 (single rounding) of 8 products p = x · m in int64 lanes, clamped to
/// [lo - z_y, hi - z_y] (the zero point is added afterwards, in int32).
FQ_TARGET_AVX512VNNI_INLINE __m512i conv_round8(__m512i p, const ConvRow32& r) {
  const __m512i odd = _mm512_and_si512(_mm512_srav_epi64(p, r.t), r.odd_bit);
  const __m512i q = _mm512_srav_epi64(_mm512_add_epi64(p, _mm512_add_epi64(r.round, odd)), r.t);
  return _mm512_min_epi64(_mm512_max_epi64(q, r.q_lo), r.q_hi);
}

/// conv_store16 (single rounding) when conv_bias_exact32 holds, on the 16 int32 lanes as they
/// are: x = acc + bias in int32 (exact), the products of the even and the odd lanes by two
/// vpmuldq (no widening), clamp(q, lo - z_y, hi - z_y) in int64 — equal to clamp(q + z_y, lo,
/// hi) - z_y — then the halves blended back into int32 lanes, z_y added and narrowed to bytes
/// (in [lo, hi]: exact). The same bytes as conv_store16<true>, in about two thirds of the
/// instructions (tests/kernels/conv2d.test.cpp covers both sides of the bound).
FQ_TARGET_AVX512VNNI_INLINE void conv_store16_exact32(__m512i acc, const ConvRow32& r,
                                                      std::uint8_t* y, __mmask16 mask) {
  const __m512i x = _mm512_add_epi32(acc, r.bias);
  const __m512i even = conv_round8(_mm512_mul_epi32(x, r.mult), r);
  const __m512i odd = conv_round8(_mm512_mul_epi32(_mm512_srli_epi64(x, 32), r.mult), r);
  const __m512i q = _mm512_mask_blend_epi32(__mmask16(0xAAAA), even, _mm512_slli_epi64(odd, 32));
  _mm_mask_storeu_epi8(y, mask, _mm512_cvtepi32_epi8(_mm512_add_epi32(q, r.zp)));
}

/// R channels x NP * 16 positions over all k groups, requantized into y (row stride p).
template <int R, int NP, bool kSingle>
FQ_TARGET_AVX512VNNI void conv_tile_vnni(const std::uint8_t* col4, std::int64_t p16,
                                         std::int64_t kg, const std::int8_t* w, std::int64_t k4,
                                         const ConvEpilogue& e, std::int64_t o0, std::int64_t p0,
                                         std::int64_t p, std::uint8_t* y) {
  __m512i acc[std::size_t{R}][std::size_t{NP}];
  FQ_UNROLL
  for (int r = 0; r < R; ++r) FQ_UNROLL
  for (int v = 0; v < NP; ++v) acc[r][v] = _mm512_setzero_si512();
  const std::uint8_t* a = col4 + p0 * 4;
  for (std::int64_t g = 0; g < kg; ++g) {
    __m512i av[std::size_t{NP}];
    FQ_UNROLL
    for (int v = 0; v < NP; ++v) av[v] = _mm512_loadu_si512(a + g * p16 * 4 + std::int64_t{v} * 64);
    FQ_UNROLL
    for (int r = 0; r < R; ++r) {
      std::int32_t wv;
      std::memcpy(&wv, w + r * k4 + g * 4, 4);
      const __m512i bv = _mm512_set1_epi32(wv);
      FQ_UNROLL
      for (int v = 0; v < NP; ++v) acc[r][v] = _mm512_dpbusd_epi32(acc[r][v], av[v], bv);
    }
  }
  const __m512i zp = _mm512_set1_epi64(e.zero_point), lo = _mm512_set1_epi64(e.lo),
                hi = _mm512_set1_epi64(e.hi);
  // |raw sum| <= K4 · 255 · 128 (u8 times s8; the padded k have zero weights).
  const std::int64_t bound = kg * 4 * 255 * 128;
  FQ_UNROLL
  for (int r = 0; r < R; ++r) {
    const std::int64_t o = o0 + r;
    // The epilogue is chosen once per channel row (the branch below is loop-invariant).
    const bool exact32 = kSingle && conv_bias_exact32(e.bias[o], bound);
    const ConvRow32 row = exact32 ? conv_row32(e, o) : ConvRow32{};
    FQ_UNROLL
    for (int v = 0; v < NP; ++v) {
      const std::int64_t q = p0 + std::int64_t{v} * 16, rem = p - q;
      if (rem <= 0) continue;
      const __mmask16 mask =
          rem >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << rem) - 1u);
      if (exact32)
        conv_store16_exact32(acc[r][v], row, y + o * p + q, mask);
      else
        conv_store16<kSingle>(acc[r][v], e, o, zp, lo, hi, y + o * p + q, mask);
    }
  }
}

template <bool kSingle>
using ConvTileFn = void (*)(const std::uint8_t*, std::int64_t, std::int64_t, const std::int8_t*,
                            std::int64_t, const ConvEpilogue&, std::int64_t, std::int64_t,
                            std::int64_t, std::uint8_t*);

/// Channel rows per tile and position vectors per tile (R x NP accumulators: 8 x 3 = 24 zmm).
inline constexpr int kConvTileR = 8;
inline constexpr int kConvTileNp = 3;

template <bool kSingle, int R>
ConvTileFn<kSingle> conv_tile_for_np(int np) {
  return np == 1   ? &conv_tile_vnni<R, 1, kSingle>
         : np == 2 ? &conv_tile_vnni<R, 2, kSingle>
                   : &conv_tile_vnni<R, 3, kSingle>;
}

template <bool kSingle>
ConvTileFn<kSingle> conv_tile_for(int r, int np) {
  switch (r) {
    case 1:
      return conv_tile_for_np<kSingle, 1>(np);
    case 2:
      return conv_tile_for_np<kSingle, 2>(np);
    case 3:
      return conv_tile_for_np<kSingle, 3>(np);
    case 4:
      return conv_tile_for_np<kSingle, 4>(np);
    case 5:
      return conv_tile_for_np<kSingle, 5>(np);
    case 6:
      return conv_tile_for_np<kSingle, 6>(np);
    case 7:
      return conv_tile_for_np<kSingle, 7>(np);
    default:
      return conv_tile_for_np<kSingle, 8>(np);
  }
}

/// y[o][p] for `channels` output channels of one group of one image from its col4 (see the
/// file comment); w the group's first weight row, e indexed from the group's first channel.
template <bool kSingle>
void conv_group_vnni(const std::uint8_t* col4, const Col4Geometry& g, const std::int8_t* w,
                     std::int64_t k4, std::int64_t channels, const ConvEpilogue& e,
                     std::uint8_t* y) {
  const std::int64_t p = g.p(), p16 = g.p16(), kg = g.k_groups(), vecs = p16 / 16;
  const ConvTileFn<kSingle> full = conv_tile_for<kSingle>(kConvTileR, kConvTileNp);
  for (std::int64_t v0 = 0; v0 < vecs; v0 += kConvTileNp) {
    const int np = static_cast<int>(std::min<std::int64_t>(kConvTileNp, vecs - v0));
    const ConvTileFn<kSingle> tile = np == kConvTileNp ? full : conv_tile_for<kSingle>(8, np);
    std::int64_t o = 0;
    for (; o + kConvTileR <= channels; o += kConvTileR)
      tile(col4, p16, kg, w + o * k4, k4, e, o, v0 * 16, p, y);
    if (o < channels)
      conv_tile_for<kSingle>(static_cast<int>(channels - o), np)(col4, p16, kg, w + o * k4, k4, e,
                                                                 o, v0 * 16, p, y);
  }
}

}  // namespace detail
}  // namespace fq

#endif  // FQ_KERNELS_X86
#endif  // FQ_KERNELS_CONV2D_AVX512_HPP_
