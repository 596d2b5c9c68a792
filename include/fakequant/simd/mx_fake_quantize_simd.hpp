// SPDX-License-Identifier: MIT
// fakequant/simd/mx_fake_quantize_simd.hpp: the block kernels of the MX formats
// (kernels/mx_fake_quantize.hpp) and of NVFP4 (kernels/nvfp4_fake_quantize.hpp) over
// xsimd::batch<float, A>, written once for every architecture A.
//
// Each kernel does, lane by lane, the scalar reference's IEEE operations (block amax as the
// integer max of |x|'s bits, the per-block scale by the very scalar function the reference
// calls, x * 2^(127-b) or x / total, one product for y), and casts the elements by
// saturating_round below, another exact route to round_to_format's result; the results are
// bit-identical (tests/format/mx.test.cpp and nvfp4.test.cpp compare them bit for bit). The
// block size must be a multiple of the batch width (the dispatch takes the scalar path
// otherwise); 16 and 32 have unrolled kernels.
#ifndef FQ_SIMD_MX_FAKE_QUANTIZE_SIMD_HPP_
#define FQ_SIMD_MX_FAKE_QUANTIZE_SIMD_HPP_

#include <fakequant/base/config.hpp>
#include <fakequant/format/e8m0.hpp>
#include <fakequant/format/minifloat.hpp>

#if FQ_HAS_XSIMD
#include <cstddef>      // size_t
#include <cstdint>      // int32_t, int64_t, uint8_t, uint32_t, uint64_t
#include <limits>       // numeric_limits
#include <type_traits>  // is_base_of

#include <xsimd/xsimd.hpp>

#include <fakequant/core/bit_writer.hpp>
#include <fakequant/policy/fp_overflow.hpp>
#include <fakequant/simd/minifloat_simd.hpp>
#include <fakequant/simd/xsimd_compat.hpp>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace fq {
namespace simd {

/// round_to_format<F, FpSaturate>(v) on every lane, given a = |v|, bit-identical to the scalar
/// cast by another route: the magnitude is saturated first (min(max, a): the same result as
/// rounding then saturating, since max is on the grid; x86's min returns its second operand,
/// a, when a is NaN), then rounded to nearest even on the grid of spacing 2^(e - M) by adding
/// and subtracting C = 2^(e + 23 - M), whose float ulp is that spacing (e = max(exponent of a,
/// emin)); the sign of v is put back. A NaN stays a quieted NaN with v's sign and payload,
/// as v + v. Fewer operations than nearbyint with two scalings; the MX kernels' hot path.
template <class F, class A>
FQ_INLINE xsimd::batch<float, A> saturating_round(const xsimd::batch<float, A>& v,
                                                  const xsimd::batch<float, A>& a) noexcept {
  using BF = xsimd::batch<float, A>;
  using BI = xsimd::batch<std::int32_t, A>;
  const BF c = xsimd::min(BF(F::kMax), a);
  BI eb = xsimd::bitwise_cast<BI>(c) & BI(0x7F800000);
  eb = xsimd::max(eb, BI((F::kEmin + 127) << 23));
  const BF magic = xsimd::bitwise_cast<BF>(eb + BI((23 - F::kManBits) << 23));
  const BF r = (c + magic) - magic;
  return r | (v & BF(-0.0f));
}

/// The MX element cast (MxElement<E>::round) on every lane; a = |v|.
template <class E, class A>
FQ_INLINE xsimd::batch<float, A> mx_round_element(const xsimd::batch<float, A>& v,
                                                  const xsimd::batch<float, A>& a) noexcept {
  if constexpr (MxElement<E>::kIsInt) {
    using BF = xsimd::batch<float, A>;
    BF q = xsimd::nearbyint(v * BF(64.0f));
    q = xsimd::min(xsimd::max(q, BF(-127.0f)), BF(127.0f));
    // xsimd's != is ordered (NaN != NaN is false on x86), hence isnan; min/max dropped NaN.
    return xsimd::select(xsimd::isnan(v), v + v, q * BF(0.015625f));
  } else {
    (void)a;
    return saturating_round<E, A>(v, a);
  }
}

/// The largest lane of an int32 batch.
template <class A>
FQ_INLINE std::int32_t hmax(const xsimd::batch<std::int32_t, A>& v) noexcept {
#if XSIMD_WITH_AVX512F
  if constexpr (std::is_base_of<xsimd::avx512f, A>::value) {
    return _mm512_reduce_max_epi32(v);
  } else
#endif
#if XSIMD_WITH_AVX2
      if constexpr (std::is_base_of<xsimd::avx2, A>::value) {
    __m128i m = _mm_max_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    m = _mm_max_epi32(m, _mm_shuffle_epi32(m, 0x4E));
    m = _mm_max_epi32(m, _mm_shuffle_epi32(m, 0xB1));
    return _mm_cvtsi128_si32(m);
  } else
#endif
  {
    alignas(64) std::int32_t lanes[xsimd::batch<std::int32_t, A>::size];
    v.store_aligned(lanes);
    std::int32_t m = 0;
    for (std::int32_t l : lanes) m = l > m ? l : m;
    return m;
  }
}

/// max over i < n of the bits of |x[i]| (sign cleared): the bits of the amax, NaN above Inf.
/// n must be a multiple of the batch width.
template <class A>
FQ_INLINE std::uint32_t abs_max_bits_block(const float* x, std::int64_t n) noexcept {
  using BF = xsimd::batch<float, A>;
  using BI = xsimd::batch<std::int32_t, A>;
  constexpr std::int64_t W = static_cast<std::int64_t>(BF::size);
  const BI magnitude(0x7FFFFFFF);
  BI acc(0);
  for (std::int64_t i = 0; i < n; i += W)
    acc = xsimd::max(acc, xsimd::bitwise_cast<BI>(BF::load_unaligned(x + i)) & magnitude);
  return static_cast<std::uint32_t>(hmax<A>(acc));
}

/// The same over any n (the tail scalar): the per-tensor amax of NVFP4.
template <class A>
inline std::uint32_t abs_max_bits(const float* x, std::int64_t n) noexcept {
  constexpr std::int64_t W = static_cast<std::int64_t>(xsimd::batch<float, A>::size);
  const std::int64_t body = n - n % W;
  std::uint32_t m = body > 0 ? abs_max_bits_block<A>(x, body) : 0u;
  for (std::int64_t i = body; i < n; ++i) {
    const std::uint32_t u = detail::float_bits(x[i]) & 0x7FFFFFFFu;
    m = u > m ? u : m;
  }
  return m;
}

/// MX blocks: y = round(x * 2^(127-b)) * 2^(b-127) per block of B (a multiple of the width);
/// b computed from the block (compute) or read from exps; mask bits to bw if not null.
template <class E, class M, class A>
void mx_blocks(const float* x, float* y, std::int64_t nblocks, std::int64_t B, std::uint8_t* exps,
               bool compute, detail::BitWriter* bw) noexcept {
  using T = MxElement<E>;
  using BF = xsimd::batch<float, A>;
  constexpr std::int64_t W = static_cast<std::int64_t>(BF::size);
  const BF emax(T::kMax);
  for (std::int64_t blk = 0; blk < nblocks; ++blk) {
    const float* xb = x + blk * B;
    float* yb = y + blk * B;
    if (compute)
      exps[blk] = detail::e8m0_from_amax_bits<M::kMode>(abs_max_bits_block<A>(xb, B), T::kEmax,
                                                        T::kManBits, T::kMax);
    if (exps[blk] == kE8m0NaN) {  // the block is the canonical NaN (scalar reference)
      for (std::int64_t i = 0; i < B; i += W) {
        BF(std::numeric_limits<float>::quiet_NaN()).store_unaligned(yb + i);
        if (bw) bw->put(0, static_cast<int>(W));
      }
      continue;
    }
    const BF r(e8m0_reciprocal(exps[blk])), s(e8m0_to_float(exps[blk]));
    for (std::int64_t i = 0; i < B; i += W) {
      const BF v = BF::load_unaligned(xb + i) * r;
      const BF a = xsimd::abs(v);
      (mx_round_element<E, A>(v, a) * s).store_unaligned(yb + i);
      if (bw) bw->put(to_bits(a <= emax), static_cast<int>(W));
    }
  }
}

/// One MX block of compile-time size B: scale from the block (compute) or exps; returns the
/// block's B mask bits (lane k of batch j is bit j * W + k).
template <class E, class M, int B, class A>
FQ_INLINE std::uint64_t mx_block_fixed(const float* xb, float* yb, std::uint8_t& exp,
                                       bool compute) noexcept {
  using T = MxElement<E>;
  using BF = xsimd::batch<float, A>;
  using BI = xsimd::batch<std::int32_t, A>;
  constexpr int W = static_cast<int>(BF::size);
  if (compute) {
    const BI magnitude(0x7FFFFFFF);
    BI m = xsimd::bitwise_cast<BI>(BF::load_unaligned(xb)) & magnitude;
    for (int i = W; i < B; i += W)
      m = xsimd::max(m, xsimd::bitwise_cast<BI>(BF::load_unaligned(xb + i)) & magnitude);
    exp = detail::e8m0_from_amax_bits<M::kMode>(static_cast<std::uint32_t>(hmax<A>(m)), T::kEmax,
                                                T::kManBits, T::kMax);
  }
  if (exp == kE8m0NaN) {  // the block is the canonical NaN (scalar reference)
    for (int i = 0; i < B; i += W)
      BF(std::numeric_limits<float>::quiet_NaN()).store_unaligned(yb + i);
    return 0;
  }
  const BF r(e8m0_reciprocal(exp)), s(e8m0_to_float(exp)), emax(T::kMax);
  std::uint64_t bits = 0;
  for (int i = 0; i < B; i += W) {
    const BF v = BF::load_unaligned(xb + i) * r;
    const BF a = xsimd::abs(v);
    (mx_round_element<E, A>(v, a) * s).store_unaligned(yb + i);
    bits |= to_bits(a <= emax) << (i % 64);
  }
  return bits;
}

/// mx_blocks for a compile-time block size B (a multiple of the width that divides 64): the
/// loops unroll and each mask word (64 / B blocks; bit i of the tensor is bit i % 64 of
/// words[i / 64]) is assembled in a register and stored whole; words may be null.
template <class E, class M, int B, class A>
void mx_blocks_fixed(const float* x, float* y, std::int64_t nblocks, std::uint8_t* exps,
                     bool compute, std::uint64_t* words) noexcept {
  constexpr int W = static_cast<int>(xsimd::batch<float, A>::size);
  static_assert(B % W == 0 && 64 % B == 0,
                "mx_blocks_fixed: B must be a multiple of the "
                "batch width and divide 64");
  constexpr std::int64_t kPerWord = 64 / B;
  std::int64_t blk = 0;
  for (; blk + kPerWord <= nblocks; blk += kPerWord) {
    std::uint64_t word = 0;
    for (std::int64_t j = 0; j < kPerWord; ++j)
      word |=
          mx_block_fixed<E, M, B, A>(x + (blk + j) * B, y + (blk + j) * B, exps[blk + j], compute)
          << (j * B);
    if (words) words[blk / kPerWord] = word;
  }
  if (blk < nblocks) {
    std::uint64_t word = 0;
    for (std::int64_t j = 0; blk + j < nblocks; ++j)
      word |=
          mx_block_fixed<E, M, B, A>(x + (blk + j) * B, y + (blk + j) * B, exps[blk + j], compute)
          << (j * B);
    if (words) words[blk / kPerWord] = word;
  }
}

// ---- 16 (one batch width of) blocks at a time ----
// The per-block work (the horizontal max, the E8M0 code, the scale and its reciprocal, their
// broadcast) done once per block costs about as much as the elements of an MXFP4 block. The
// group kernels below do it for W = batch-width blocks at once: the W blocks' partial maxima
// are transposed and reduced into one batch (lane j = block j's amax bits), the W codes and
// scales are computed lane-wise by the same integer/float operations as the scalar functions,
// stored to a small array, and each block then reads its scale by a broadcast load.

/// Lane j of the result = the largest lane of m[j], j < W (W = the batch width): the amax
/// bits of W blocks at once (the lanes are >= 0). AVX-512: a transpose-reduction in 4 shuffle/max
/// levels (45 operations for 16 blocks instead of 16 horizontal reductions); elsewhere hmax per
/// block.
template <class A>
FQ_INLINE xsimd::batch<std::int32_t, A> transpose_hmax(
    const xsimd::batch<std::int32_t, A>* m) noexcept {
  using BI = xsimd::batch<std::int32_t, A>;
#if XSIMD_WITH_AVX512F
  if constexpr (std::is_base_of<xsimd::avx512f, A>::value) {
    // The levels leave block k + 4i in lane 4k + i; feeding block 4(s % 4) + s / 4 into slot
    // s (a 4x4 transpose of the order) puts block j in lane j.
    __m512i l1[8];
    for (int p = 0; p < 8; ++p) {  // [a0 a1 b0 b1] max [a2 a3 b2 b3] (128-bit quarters)
      const int s0 = 2 * p, s1 = 2 * p + 1;
      const __m512i a = m[4 * (s0 % 4) + s0 / 4], b = m[4 * (s1 % 4) + s1 / 4];
      l1[p] = _mm512_max_epi32(_mm512_shuffle_i32x4(a, b, 0x44), _mm512_shuffle_i32x4(a, b, 0xEE));
    }
    __m512i l2[4];
    for (std::size_t p = 0; p < 4; ++p)  // quarters [A A B B], [C C D D] -> [A B C D]
      l2[p] = _mm512_max_epi32(_mm512_shuffle_i32x4(l1[2 * p], l1[2 * p + 1], 0x88),
                               _mm512_shuffle_i32x4(l1[2 * p], l1[2 * p + 1], 0xDD));
    __m512i l3[2];
    for (std::size_t p = 0; p < 2; ++p)  // per quarter: 2 blocks x 2 partials
      l3[p] = _mm512_max_epi32(_mm512_unpacklo_epi64(l2[2 * p], l2[2 * p + 1]),
                               _mm512_unpackhi_epi64(l2[2 * p], l2[2 * p + 1]));
    const __m512 f0 = _mm512_castsi512_ps(l3[0]), f1 = _mm512_castsi512_ps(l3[1]);
    return _mm512_max_epi32(_mm512_castps_si512(_mm512_shuffle_ps(f0, f1, 0x88)),
                            _mm512_castps_si512(_mm512_shuffle_ps(f0, f1, 0xDD)));
  } else
#endif
  {
    alignas(64) std::int32_t lanes[BI::size];
    for (std::size_t j = 0; j < BI::size; ++j) lanes[j] = hmax<A>(m[j]);
    return BI::load_aligned(lanes);
  }
}

/// detail::e8m0_from_amax_bits<Mode> on every lane (u = amax bits, sign cleared): the same
/// integer operations (and, for RCEIL, the same float product), so the same codes.
template <E8m0Mode Mode, class A>
FQ_INLINE xsimd::batch<std::int32_t, A> e8m0_codes(const xsimd::batch<std::int32_t, A>& u, int emax,
                                                   int mbits, float elem_max) noexcept {
  using BI = xsimd::batch<std::int32_t, A>;
  using BF = xsimd::batch<float, A>;
  const BI one(1), zero(0);
  BI b;
  if constexpr (Mode == E8m0Mode::kRceil) {
    const BI d = xsimd::bitwise_cast<BI>(xsimd::bitwise_cast<BF>(u) * BF(1.0f / elem_max));
    const BI be = d >> 23, m = d & BI(0x7FFFFF);
    const BI up = xsimd::select(be == zero, xsimd::select(m > BI(0x400000), one, zero),
                                xsimd::select(m != zero, one, zero));
    b = xsimd::min(be + up, BI(254));
  } else {
    BI e;
    if constexpr (Mode == E8m0Mode::kCeil)
      e = (u >> 23) - BI(127 + emax) + xsimd::select((u & BI(0x7FFFFF)) != zero, one, zero);
    else if constexpr (Mode == E8m0Mode::kEven)
      e = ((u + BI(1 << (22 - mbits))) >> 23) - BI(127 + emax);
    else
      e = (u >> 23) - BI(127 + emax);
    b = xsimd::min(xsimd::max(e, BI(-127)), BI(127)) + BI(127);
  }
  return xsimd::select(u >= BI(0x7F800000), BI(kE8m0NaN), b);
}

/// The bits of e8m0_to_float(b) and e8m0_reciprocal(b) on every lane (b < 255).
template <class A>
FQ_INLINE void e8m0_scales(const xsimd::batch<std::int32_t, A>& b, xsimd::batch<float, A>& s,
                           xsimd::batch<float, A>& r) noexcept {
  using BI = xsimd::batch<std::int32_t, A>;
  using BF = xsimd::batch<float, A>;
  const BI zero(0), sub(0x00400000), rb = BI(254) - b;
  s = xsimd::bitwise_cast<BF>(xsimd::select(b == zero, sub, b << 23));
  r = xsimd::bitwise_cast<BF>(xsimd::select(rb == zero, sub, rb << 23));
}

/// The elements of one MX block of compile-time size B given its scale s and reciprocal r;
/// returns its B mask bits.
template <class E, int B, class A>
FQ_INLINE std::uint64_t mx_block_apply(const float* xb, float* yb, float r, float s) noexcept {
  using BF = xsimd::batch<float, A>;
  constexpr int W = static_cast<int>(BF::size);
  const BF rv(r), sv(s), emax(MxElement<E>::kMax);
  std::uint64_t bits = 0;
  for (int i = 0; i < B; i += W) {
    const BF v = BF::load_unaligned(xb + i) * rv;
    const BF a = xsimd::abs(v);
    (mx_round_element<E, A>(v, a) * sv).store_unaligned(yb + i);
    bits |= to_bits(a <= emax) << (i % 64);
  }
  return bits;
}

/// The codes b of a float element E for which mx_block_apply_scaled is exact: s = 2^(b-127),
/// elem_max * s and 2^(emin + b - 127) are normal floats and the largest rounding constant
/// 2^(emax + b - 127 + 23 - M) is finite (file comment of mx_block_apply_scaled).
template <class E>
struct MxScaledRange {
  static constexpr int kLo = 1 - E::kEmin > 1 ? 1 - E::kEmin : 1;
  static constexpr int kHi =
      231 - E::kEmax + E::kManBits < 253 - E::kEmax ? 231 - E::kEmax + E::kManBits : 253 - E::kEmax;
};

/// mx_block_apply for a float element E and a code b in MxScaledRange<E>, without scaling: the
/// cast is done on x itself on the grid scaled by s = 2^(b-127). Given cap = elem_max * s and
/// lo = the bits of 2^(emin + b - 127): c = min(cap, |x|), C = max(exponent bits of c, lo) +
/// (23 - M) << 23, y = ((c + C) - C) | sign(x), mask |x| <= cap. Every quantity is the
/// reference's (v = x * 2^(127-b), saturating_round(v) * s) times s, a power of two, and every
/// one is a normal float in that range, so the sums round at the same places and y has the
/// same bits: where v = x * r would under- or overflow, both give +-0 (|v| < 2^-126 is below
/// half the element's smallest step) or +-elem_max * s (saturated), and |v| <= elem_max iff
/// |x| <= cap; NaN x passes min (x86) and comes out quieted with its sign and payload.
/// Two multiplies fewer per batch than mx_block_apply.
template <class E, int B, class A>
FQ_INLINE std::uint64_t mx_block_apply_scaled(const float* xb, float* yb, float cap,
                                              std::int32_t lo) noexcept {
  using BF = xsimd::batch<float, A>;
  using BI = xsimd::batch<std::int32_t, A>;
  constexpr int W = static_cast<int>(BF::size);
  const BF capv(cap);
  const BI lov(lo);
  std::uint64_t bits = 0;
  for (int i = 0; i < B; i += W) {
    const BF x = BF::load_unaligned(xb + i);
    const BF a = xsimd::abs(x);
    const BF c = xsimd::min(capv, a);
    const BI eb = xsimd::max(xsimd::bitwise_cast<BI>(c) & BI(0x7F800000), lov);
    const BF magic = xsimd::bitwise_cast<BF>(eb + BI((23 - E::kManBits) << 23));
    (((c + magic) - magic) | (x & BF(-0.0f))).store_unaligned(yb + i);
    bits |= to_bits(a <= capv) << (i % 64);
  }
  return bits;
}

/// W partial maxima (bits of |x|) of W consecutive blocks of compile-time size B.
template <int B, class A>
FQ_INLINE xsimd::batch<std::int32_t, A> group_amax_bits(const float* x) noexcept {
  using BF = xsimd::batch<float, A>;
  using BI = xsimd::batch<std::int32_t, A>;
  constexpr int W = static_cast<int>(BF::size);
  const BI magnitude(0x7FFFFFFF);
  BI m[BF::size];
  for (int j = 0; j < W; ++j) {
    m[j] = xsimd::bitwise_cast<BI>(BF::load_unaligned(x + std::ptrdiff_t{j} * B)) & magnitude;
    for (int i = W; i < B; i += W)
      m[j] = xsimd::max(
          m[j],
          xsimd::bitwise_cast<BI>(BF::load_unaligned(x + std::ptrdiff_t{j} * B + i)) & magnitude);
  }
  return transpose_hmax<A>(m);
}

/// W consecutive MX blocks of compile-time size B (B a multiple of the width, W * B a
/// multiple of 64): the codes from the blocks (compute) or exps, the elements, and the
/// W * B / 64 mask words (if words is not null).
template <class E, class M, int B, class A>
FQ_INLINE void mx_group_fixed(const float* x, float* y, std::uint8_t* exps, bool compute,
                              std::uint64_t* words) noexcept {
  using T = MxElement<E>;
  using BF = xsimd::batch<float, A>;
  using BI = xsimd::batch<std::int32_t, A>;
  constexpr int W = static_cast<int>(BF::size);
  static_assert(B % W == 0 && 64 % B == 0 && (W * B) % 64 == 0, "mx_group_fixed: block size");
  alignas(64) std::int32_t codes[BF::size];
  alignas(64) float rs[BF::size], ss[BF::size];
  BI b;
  if (compute) {
    b = e8m0_codes<M::kMode, A>(group_amax_bits<B, A>(x), T::kEmax, T::kManBits, T::kMax);
    b.store_aligned(codes);
    for (int j = 0; j < W; ++j) exps[j] = static_cast<std::uint8_t>(codes[j]);
  } else {
    for (int j = 0; j < W; ++j) codes[j] = exps[j];
    b = BI::load_aligned(codes);
  }
  BF s, r;
  e8m0_scales<A>(b, s, r);
  constexpr int kPerWord = 64 / B;
  if constexpr (!T::kIsInt) {
    using R = MxScaledRange<E>;
    if (xsimd::all((b >= BI(R::kLo)) & (b <= BI(R::kHi)))) {  // the common case: no scaling
      alignas(64) float caps[BF::size];
      alignas(64) std::int32_t los[BF::size];
      (BF(T::kMax) * s).store_aligned(caps);  // exact: s and the product are normal
      ((b + BI(E::kEmin)) << 23).store_aligned(los);
      for (int w = 0; w < W / kPerWord; ++w) {
        std::uint64_t word = 0;
        for (int k = 0; k < kPerWord; ++k) {
          const int j = w * kPerWord + k;
          word |= mx_block_apply_scaled<E, B, A>(x + std::ptrdiff_t{j} * B,
                                                 y + std::ptrdiff_t{j} * B, caps[j], los[j])
                  << (k * B);
        }
        if (words) words[w] = word;
      }
      return;
    }
  }
  s.store_aligned(ss);
  r.store_aligned(rs);
  if (!xsimd::any(b == BI(kE8m0NaN))) {  // no NaN block, no test per block
    for (int w = 0; w < W / kPerWord; ++w) {
      std::uint64_t word = 0;
      for (int k = 0; k < kPerWord; ++k) {
        const int j = w * kPerWord + k;
        word |= mx_block_apply<E, B, A>(x + std::ptrdiff_t{j} * B, y + std::ptrdiff_t{j} * B, rs[j],
                                        ss[j])
                << (k * B);
      }
      if (words) words[w] = word;
    }
    return;
  }
  for (int w = 0; w < W / kPerWord; ++w) {
    std::uint64_t word = 0;
    for (int k = 0; k < kPerWord; ++k) {
      const int j = w * kPerWord + k;
      if (codes[j] == kE8m0NaN) {  // the canonical NaN block (scalar reference), mask 0
        for (int i = 0; i < B; i += W)
          BF(std::numeric_limits<float>::quiet_NaN())
              .store_unaligned(y + std::ptrdiff_t{j} * B + i);
      } else {
        word |= mx_block_apply<E, B, A>(x + std::ptrdiff_t{j} * B, y + std::ptrdiff_t{j} * B, rs[j],
                                        ss[j])
                << (k * B);
      }
    }
    if (words) words[w] = word;
  }
}

/// NVFP4 elements of one block: d = x / total, y = round_E2M1(d) * total, mask |d| <= 6.
template <class A>
FQ_INLINE void nvfp4_block(const float* xb, float* yb, std::int64_t B, float total,
                           detail::BitWriter* bw) noexcept {
  using BF = xsimd::batch<float, A>;
  constexpr std::int64_t W = static_cast<std::int64_t>(BF::size);
  if (total != total) {  // NaN total: the block is the canonical NaN (scalar reference)
    for (std::int64_t i = 0; i < B; i += W) {
      BF(std::numeric_limits<float>::quiet_NaN()).store_unaligned(yb + i);
      if (bw) bw->put(0, static_cast<int>(W));
    }
    return;
  }
  const BF t(total), six(FloatE2M1::kMax);
  for (std::int64_t i = 0; i < B; i += W) {
    const BF d = BF::load_unaligned(xb + i) / t;
    const BF a = xsimd::abs(d);
    (saturating_round<FloatE2M1, A>(d, a) * t).store_unaligned(yb + i);
    if (bw) bw->put(to_bits(a <= six), static_cast<int>(W));
  }
}

/// nvfp4_block for a compile-time B (a multiple of the width, <= 64): returns the B mask bits.
template <int B, class A>
FQ_INLINE std::uint64_t nvfp4_block_fixed(const float* xb, float* yb, float total) noexcept {
  using BF = xsimd::batch<float, A>;
  constexpr int W = static_cast<int>(BF::size);
  static_assert(B % W == 0 && B <= 64, "nvfp4_block_fixed: block size");
  if (total != total) {  // NaN total: the block is the canonical NaN (scalar reference)
    for (int i = 0; i < B; i += W)
      BF(std::numeric_limits<float>::quiet_NaN()).store_unaligned(yb + i);
    return 0;
  }
  const BF t(total), six(FloatE2M1::kMax);
  std::uint64_t bits = 0;
  for (int i = 0; i < B; i += W) {
    const BF d = BF::load_unaligned(xb + i) / t;
    const BF a = xsimd::abs(d);
    (saturating_round<FloatE2M1, A>(d, a) * t).store_unaligned(yb + i);
    bits |= to_bits(a <= six) << i;
  }
  return bits;
}

/// mx_blocks_fixed, W blocks at a time by mx_group_fixed where W * B is a multiple of 64 (the
/// mask words then split at group boundaries); the remaining blocks one at a time.
template <class E, class M, int B, class A>
void mx_blocks_grouped(const float* x, float* y, std::int64_t nblocks, std::uint8_t* exps,
                       bool compute, std::uint64_t* words) noexcept {
  constexpr std::int64_t W = static_cast<std::int64_t>(xsimd::batch<float, A>::size);
  std::int64_t blk = 0;
  if constexpr ((W * B) % 64 == 0 && 64 % B == 0) {
    for (; blk + W <= nblocks; blk += W)
      mx_group_fixed<E, M, B, A>(x + blk * B, y + blk * B, exps + blk, compute,
                                 words ? words + blk * B / 64 : nullptr);
  }
  if (blk < nblocks)
    mx_blocks_fixed<E, M, B, A>(x + blk * B, y + blk * B, nblocks - blk, exps + blk, compute,
                                words ? words + blk * B / 64 : nullptr);
}

/// NVFP4 elements of one block of compile-time B (a multiple of the width, <= 64) given a
/// total scale that is not NaN: returns the B mask bits.
template <int B, class A>
FQ_INLINE std::uint64_t nvfp4_block_apply(const float* xb, float* yb, float total) noexcept {
  using BF = xsimd::batch<float, A>;
  constexpr int W = static_cast<int>(BF::size);
  const BF t(total), six(FloatE2M1::kMax);
  std::uint64_t bits = 0;
  for (int i = 0; i < B; i += W) {
    const BF d = BF::load_unaligned(xb + i) / t;
    const BF a = xsimd::abs(d);
    (saturating_round<FloatE2M1, A>(d, a) * t).store_unaligned(yb + i);
    bits |= to_bits(a <= six) << i;
  }
  return bits;
}

/// W consecutive NVFP4 blocks of compile-time B (W * B a multiple of 64, 64 % B == 0): the
/// E4M3 block scales computed lane-wise from the blocks (compute; kernels/nvfp4_fake_quantize.hpp's
/// nvfp4_block_scale, operation by operation) or read from bscales, the totals, the elements,
/// and W * B / 64 mask words (if words is not null).
template <int B, class A>
FQ_INLINE void nvfp4_group_fixed(const float* x, float* y, float* bscales, bool compute, float pts,
                                 bool two_level, std::uint64_t* words) noexcept {
  using BF = xsimd::batch<float, A>;
  constexpr int W = static_cast<int>(BF::size);
  static_assert(B % W == 0 && 64 % B == 0 && (W * B) % 64 == 0, "nvfp4_group_fixed: block size");
  BF bs;
  if (compute) {
    BF s = xsimd::bitwise_cast<BF>(group_amax_bits<B, A>(x)) / BF(FloatE2M1::kMax);
    if (two_level) s = s / BF(pts);
    const BF lo(0.015625f), hi(FloatE4M3::kMax);                  // E4M3's smallest normal and max
    s = xsimd::select(s < lo, lo, xsimd::select(s > hi, hi, s));  // false for NaN: kept
    bs = round_to_format<FloatE4M3, FpSaturate, A>(s);
    bs.store_unaligned(bscales);
  } else {
    bs = BF::load_unaligned(bscales);
  }
  const BF total = two_level ? BF(pts) * bs : bs;
  alignas(64) float ts[BF::size];
  total.store_aligned(ts);
  constexpr int kPerWord = 64 / B;
  const bool any_nan = xsimd::any(xsimd::isnan(total));
  for (int w = 0; w < W / kPerWord; ++w) {
    std::uint64_t word = 0;
    for (int k = 0; k < kPerWord; ++k) {
      const int j = w * kPerWord + k;
      if (any_nan && ts[j] != ts[j]) {  // the canonical NaN block (scalar reference), mask 0
        for (int i = 0; i < B; i += W)
          BF(std::numeric_limits<float>::quiet_NaN())
              .store_unaligned(y + std::ptrdiff_t{j} * B + i);
      } else {
        word |= nvfp4_block_apply<B, A>(x + std::ptrdiff_t{j} * B, y + std::ptrdiff_t{j} * B, ts[j])
                << (k * B);
      }
    }
    if (words) words[w] = word;
  }
}

/// nvfp4_group_fixed over the whole groups of nblocks blocks; returns the blocks done (a
/// multiple of W; the caller does the rest).
template <int B, class A>
std::int64_t nvfp4_blocks_grouped(const float* x, float* y, std::int64_t nblocks, float* bscales,
                                  bool compute, float pts, bool two_level,
                                  std::uint64_t* words) noexcept {
  constexpr std::int64_t W = static_cast<std::int64_t>(xsimd::batch<float, A>::size);
  std::int64_t blk = 0;
  if constexpr ((W * B) % 64 == 0 && 64 % B == 0 && B % W == 0) {
    for (; blk + W <= nblocks; blk += W)
      nvfp4_group_fixed<B, A>(x + blk * B, y + blk * B, bscales + blk, compute, pts, two_level,
                              words ? words + blk * B / 64 : nullptr);
  }
  return blk;
}

}  // namespace simd
}  // namespace fq

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#endif  // FQ_HAS_XSIMD
#endif  // FQ_SIMD_MX_FAKE_QUANTIZE_SIMD_HPP_
