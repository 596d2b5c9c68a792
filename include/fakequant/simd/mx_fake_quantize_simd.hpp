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
#include <cstdint>      // int32_t, int64_t, uint8_t, uint32_t, uint64_t
#include <limits>       // numeric_limits
#include <type_traits>  // is_base_of

#include <xsimd/xsimd.hpp>

#include <fakequant/core/bit_writer.hpp>
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

}  // namespace simd
}  // namespace fq

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#endif  // FQ_HAS_XSIMD
#endif  // FQ_SIMD_MX_FAKE_QUANTIZE_SIMD_HPP_
