// SPDX-License-Identifier: MIT
// fakequant/simd/minifloat_simd.hpp: the cast float -> small float format -> float of
// format/minifloat.hpp over xsimd::batch<float, A>, written once for every architecture A,
// bit-identical to the scalar round_to_format (same steps: the exponent from the bits,
// two exact power-of-two scalings around nearbyint, the overflow rule, the sign, NaN kept).
#ifndef FQ_SIMD_MINIFLOAT_SIMD_HPP_
#define FQ_SIMD_MINIFLOAT_SIMD_HPP_

#include <fakequant/base/config.hpp>
#include <fakequant/format/minifloat.hpp>

#if FQ_HAS_XSIMD
#include <cstdint>  // int32_t
#include <limits>   // numeric_limits

#include <xsimd/xsimd.hpp>

namespace fq {
namespace simd {

/// round_to_format<F, O> on every lane (format/minifloat.hpp).
template <class F, class O, class A>
FQ_INLINE xsimd::batch<float, A> round_to_format(const xsimd::batch<float, A>& v) noexcept {
  static_assert(O::kSaturate || F::kHasNaN,
                "round_to_format: a format without Inf and NaN (FP6, FP4) can only saturate "
                "(fq::FpSaturate).");
  using BF = xsimd::batch<float, A>;
  using BI = xsimd::batch<std::int32_t, A>;
  const BF sign_bit(-0.0f);
  const BF a = xsimd::abs(v);
  BI e = (xsimd::bitwise_cast<BI>(a) >> 23) - BI(127);
  e = xsimd::min(xsimd::max(e, BI(F::kEmin)), BI(F::kEmax + 1));
  const BF up = xsimd::bitwise_cast<BF>((BI(F::kManBits + 127) - e) << 23);
  const BF down = xsimd::bitwise_cast<BF>((e + BI(127 - F::kManBits)) << 23);
  BF r = xsimd::nearbyint(a * up) * down;
  float over;
  if constexpr (O::kSaturate)
    over = F::kMax;
  else if constexpr (F::kHasInf)
    over = std::numeric_limits<float>::infinity();
  else
    over = std::numeric_limits<float>::quiet_NaN();
  r = xsimd::select(r > BF(F::kMax), BF(over), r);
  r = r | (v & sign_bit);
  return xsimd::select(xsimd::isnan(v), v + v, r);  // NaN: quiet, payload and sign kept
}

/// in_format_range<F> on every lane: |v| <= max (false for NaN and +-Inf).
template <class F, class A>
FQ_INLINE xsimd::batch_bool<float, A> in_format_range(const xsimd::batch<float, A>& v) noexcept {
  return xsimd::abs(v) <= xsimd::batch<float, A>(F::kMax);
}

}  // namespace simd
}  // namespace fq

#endif  // FQ_HAS_XSIMD
#endif  // FQ_SIMD_MINIFLOAT_SIMD_HPP_
