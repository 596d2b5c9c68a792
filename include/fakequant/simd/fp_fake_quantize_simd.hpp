// SPDX-License-Identifier: MIT
// fakequant/simd/fp_fake_quantize_simd.hpp: the floating-point-format fake quantizer
// (kernels/fp_fake_quantize.hpp) over xsimd::batch<float, A>, written once for every
// architecture A. Per lane, the operations of the scalar reference
// detail::fp_fake_quant_element, in the same order:
//     v = x / s          (or x * m with m = 1/s exact, when s is a power of two: the same
//                         correctly rounded real x / s, so the same bits)
//     mask = |v| <= max  (in_format_range)
//     y = round_to_format<F, O>(v) * s      (round_to_format_from_abs below: the same bits as
//                                           simd::round_to_format of simd/minifloat_simd.hpp
//                                           in half the operations; the tests compare both)
// so the results are bit-identical to it. The kernels do whole batches and return how many
// elements they did; the caller finishes the tail with the scalar reference. Mask bits are
// appended with BitWriter, a 64-bit word at a time (fq_run_batches).
#ifndef FQ_SIMD_FP_FAKE_QUANTIZE_SIMD_HPP_
#define FQ_SIMD_FP_FAKE_QUANTIZE_SIMD_HPP_

#include <fakequant/base/config.hpp>

#if FQ_HAS_XSIMD
#include <cstddef>  // size_t
#include <cstdint>  // int32_t, int64_t, uint32_t, uint64_t
#include <limits>   // numeric_limits

#include <xsimd/xsimd.hpp>

#include <fakequant/core/bit_writer.hpp>
#include <fakequant/simd/fake_quantize_simd.hpp>
#include <fakequant/simd/minifloat_simd.hpp>
#include <fakequant/simd/xsimd_compat.hpp>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace fq {
namespace simd {

/// True where xsimd's min(a, b) is the x86 instruction that returns b when either is NaN (in
/// xsimd 8.1 the AVX and AVX-512 architectures do not derive from sse2, so the test is on
/// the target, not on A).
#if defined(__x86_64__) || defined(__i386__)
inline constexpr bool kX86MinMax = true;
#else
inline constexpr bool kX86MinMax = false;
#endif

/// round_to_format<F, O>(v) on every lane, given a = |v|: bit-identical to
/// simd::round_to_format (simd/minifloat_simd.hpp) and the scalar reference, in about half
/// the operations. With e = clamp(exponent(a), emin, emax + 1) as there, the grid spacing is
/// u = 2^(e - M); c = 2^(e - M + 23) is a multiple of u whose ulp is u, and a < 2^(e + 1) <= c
/// (or a > max), so  (a + c) - c  rounds a to a multiple of u, ties to even (c / u = 2^23 is
/// even), exactly what nearbyint(a / u) * u does; no multiplication, no conversion. c comes
/// from a's exponent field with integer clamps and an add. NaN: a + c is a quieted, and the
/// overflow rule keeps it, so the sign OR gives v quieted, as v + v. Checked against the
/// scalar round_to_format on all 2^32 floats for every format and policy.
template <class F, class O, class A>
FQ_INLINE xsimd::batch<float, A> round_to_format_from_abs(
    const xsimd::batch<float, A>& v, const xsimd::batch<float, A>& a) noexcept {
  static_assert(O::kSaturate || F::kHasNaN,
                "round_to_format: a format without Inf and NaN (FP6, FP4) can only saturate "
                "(fq::FpSaturate).");
  using BF = xsimd::batch<float, A>;
  using BI = xsimd::batch<std::int32_t, A>;
  const BI lo((F::kEmin + 127) << 23), shift((23 - F::kManBits) << 23);
  BF r;
  if constexpr (O::kSaturate && kX86MinMax) {
    // Saturating first gives the same values (max is on the grid; beyond it the reference
    // saturates anyway) and bounds e by emax; x86's min returns its second operand, a NaN,
    // so NaN passes. The exponent field of NaN/Inf never reaches c.
    const BF as = xsimd::min(BF(F::kMax), a);
    const BI ce = xsimd::max(xsimd::bitwise_cast<BI>(as) & BI(0x7f800000), lo);
    const BF c = xsimd::bitwise_cast<BF>(ce + shift);
    r = (as + c) - c;
  } else {
    BI ce = xsimd::max(xsimd::bitwise_cast<BI>(a) & BI(0x7f800000), lo);
    ce = xsimd::min(ce, BI((F::kEmax + 1 + 127) << 23));
    const BF c = xsimd::bitwise_cast<BF>(ce + shift);
    r = (a + c) - c;
    float over;
    if constexpr (O::kSaturate)
      over = F::kMax;
    else if constexpr (F::kHasInf)
      over = std::numeric_limits<float>::infinity();
    else
      over = std::numeric_limits<float>::quiet_NaN();
    r = xsimd::select(r > BF(F::kMax), BF(over), r);  // false for NaN: kept
  }
  return r | (v & BF(-0.0f));
}

/// The element formula on one batch (file comment); kMul: v = x * m, else v = x / s.
template <class F, class O, bool kMul, class A>
FQ_INLINE xsimd::batch<float, A> fp_fake_quant_batch(const xsimd::batch<float, A>& x,
                                                     const xsimd::batch<float, A>& s,
                                                     const xsimd::batch<float, A>& m,
                                                     std::uint64_t& in) noexcept {
  using BF = xsimd::batch<float, A>;
  BF v;
  if constexpr (kMul)
    v = x * m;
  else
    v = x / s;
  const BF a = xsimd::abs(v);
  in = to_bits(a <= BF(F::kMax));  // in_format_range: false for NaN and +-Inf
  return round_to_format_from_abs<F, O>(v, a) * s;
}

/// Whole batches of a contiguous run with one scale s (m = 1/s, used when kMul); returns
/// the number of elements done. Mask bits go to `bw` when with_mask.
template <class F, class O, bool kMul, class A>
std::int64_t fp_run(const float* x, float* y, std::int64_t n, float s, float m,
                    detail::BitWriter& bw, bool with_mask) noexcept {
  using B = xsimd::batch<float, A>;
  const B sb(s), mb(m);
  return fq_run_batches<A>(
      x, y, n,
      [&](const B& xb, std::uint64_t& in) {
        return fp_fake_quant_batch<F, O, kMul>(xb, sb, mb, in);
      },
      bw, with_mask);
}

/// Whole batches of a contiguous run walking the channel axis: element i uses scale[i]
/// (always divided: the scales differ per lane). Returns the number of elements done.
template <class F, class O, class A>
std::int64_t fp_run_varying(const float* x, float* y, std::int64_t n, const float* scale,
                            detail::BitWriter& bw, bool with_mask) noexcept {
  using B = xsimd::batch<float, A>;
  constexpr std::int64_t W = static_cast<std::int64_t>(B::size);
  std::int64_t i = 0;
  std::uint64_t in = 0;
  for (; i + W <= n; i += W) {
    const B s = B::load_unaligned(scale + i);
    fp_fake_quant_batch<F, O, false>(B::load_unaligned(x + i), s, s, in).store_unaligned(y + i);
    if (with_mask) bw.put(in, static_cast<int>(W));
  }
  return i;
}

/// The largest |x| bit pattern (sign cleared) over whole batches of a contiguous run, folded
/// into `acc`; returns the number of elements done. The bits of |x| order like the values,
/// with +Inf above every finite value and NaN above +Inf, so one integer max gives the amax
/// and tells non-finite data (>= 0x7f800000) apart, exactly and in any order.
template <class A>
std::int64_t abs_bits_max(const float* x, std::int64_t n, std::uint32_t& acc) noexcept {
  using BF = xsimd::batch<float, A>;
  using BI = xsimd::batch<std::int32_t, A>;
  constexpr std::int64_t W = static_cast<std::int64_t>(BF::size);
  const BI magnitude(0x7fffffff);
  auto bits = [&](std::int64_t at) {
    return xsimd::bitwise_cast<BI>(BF::load_unaligned(x + at)) & magnitude;
  };
  BI m0(0), m1(0), m2(0), m3(0);  // four chains: the max's latency off the critical path
  std::int64_t i = 0;
  for (; i + 4 * W <= n; i += 4 * W) {
    m0 = xsimd::max(m0, bits(i));
    m1 = xsimd::max(m1, bits(i + W));
    m2 = xsimd::max(m2, bits(i + 2 * W));
    m3 = xsimd::max(m3, bits(i + 3 * W));
  }
  for (; i + W <= n; i += W) m0 = xsimd::max(m0, bits(i));
  alignas(64) std::int32_t lanes[BI::size];
  xsimd::max(xsimd::max(m0, m1), xsimd::max(m2, m3)).store_aligned(lanes);
  for (std::size_t k = 0; k < BI::size; ++k) {
    const auto r = static_cast<std::uint32_t>(lanes[k]);  // >= 0: the sign bit is cleared
    acc = r > acc ? r : acc;
  }
  return i;
}

}  // namespace simd
}  // namespace fq

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#endif  // FQ_HAS_XSIMD
#endif  // FQ_SIMD_FP_FAKE_QUANTIZE_SIMD_HPP_
