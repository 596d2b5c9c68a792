// SPDX-License-Identifier: MIT
// fakequant/format/minifloat.hpp: small floating-point element formats — FP8 E4M3 / E5M2,
// FP6 E2M3 / E3M2, FP4 E2M1 — as compile-time FloatFormat policies, with the scalar
// reference of the cast float -> format -> float, and the bit codes.
//
// A FloatFormat<E, M, Specials> has 1 sign bit, E exponent bits (bias 2^(E-1) - 1) and M
// mantissa bits; Specials says what the all-ones exponent means:
//   FloatSpecials::kIeee       Inf (mantissa 0) and NaN (else): E5M2, max 57344 = 1.75 * 2^15
//   FloatSpecials::kOnlyNaN    the "fn" formats: no Inf; only S.1111.111 is NaN: E4M3 (OCP),
//                              max 448 = 1.75 * 2^8
//   FloatSpecials::kFinite     every code is a number (no Inf, no NaN): the OCP MX FP6 and FP4
//                              element formats; E2M3 max 7.5, E3M2 max 28, E2M1 max 6
// Subnormals (exponent field 0) are 0.m * 2^(1 - bias) in every format, and -0 exists.
//
// Cast (round_to_format), for a float v:
//   NaN -> v quieted (NaN propagates with its sign and payload, also for FP6/FP4, which have no
//   NaN code: a fake-quant output is a float, and a NaN must not turn into a number).
//   Else, with a = |v| and e = max(floor(log2 a), emin), emin = 1 - bias, the exponent read
//   off a's bits (never log2):  r = nearbyint(a * 2^(M - e)) * 2^(e - M)
//   — round to nearest, ties to even, on the grid of spacing 2^(e - M), which is the format's
//   grid for normal and subnormal values alike; both scalings are exact powers of two.
//   r > max: FpSaturate -> max; FpNoSaturate -> Inf (kIeee) or NaN (kOnlyNaN)
//   (policy/fp_overflow.hpp). +-Inf: the same rule. The sign of v is kept (-0 included).
// In-range test for the straight-through estimator: in_range(v) = |v| <= max (false for NaN
// and +-Inf); the fake quantizers pass the gradient exactly there.
// The SIMD twin (simd/minifloat_simd.hpp) follows the same steps and is bit-identical.
#ifndef FQ_FORMAT_MINIFLOAT_HPP_
#define FQ_FORMAT_MINIFLOAT_HPP_

#include <cmath>        // copysign, fabs, isinf, isnan, nearbyint
#include <cstdint>      // int32_t, uint8_t, uint32_t
#include <cstring>      // memcpy
#include <limits>       // numeric_limits
#include <type_traits>  // false_type, true_type

#include <fakequant/base/error.hpp>
#include <fakequant/policy/fp_overflow.hpp>

namespace fq {

/// What a format's all-ones exponent field encodes (see the file comment).
enum class FloatSpecials {
  kIeee,     ///< Inf and NaN, as IEEE 754 (E5M2)
  kOnlyNaN,  ///< no Inf; only the all-ones code is NaN (E4M3 "fn")
  kFinite,   ///< neither: every code is a number (FP6, FP4)
};

/// A small floating-point element format: 1 sign bit, ExpBits exponent bits, ManBits
/// mantissa bits, bias 2^(ExpBits-1) - 1.
template <int ExpBits, int ManBits, FloatSpecials Specials>
struct FloatFormat {
  static_assert(ExpBits >= 2 && ExpBits <= 5 && ManBits >= 1 && ManBits <= 3,
                "FloatFormat: ExpBits must be 2..5 and ManBits 1..3 (formats of at most 8 bits).");
  static_assert(Specials != FloatSpecials::kOnlyNaN || ExpBits + ManBits >= 3,
                "FloatFormat: a kOnlyNaN format needs at least 3 exponent+mantissa bits.");
  static constexpr int kExpBits = ExpBits;
  static constexpr int kManBits = ManBits;
  static constexpr FloatSpecials kSpecials = Specials;
  static constexpr int kBits = 1 + ExpBits + ManBits;
  static constexpr int kCodes = 1 << kBits;
  static constexpr int kBias = (1 << (ExpBits - 1)) - 1;
  static constexpr int kEmin = 1 - kBias;  ///< exponent of the smallest normal
  static constexpr bool kHasInf = Specials == FloatSpecials::kIeee;
  static constexpr bool kHasNaN = Specials != FloatSpecials::kFinite;
  /// Exponent of the largest finite value, and its mantissa field.
  static constexpr int kEmax =
      (Specials == FloatSpecials::kIeee ? (1 << ExpBits) - 2 : (1 << ExpBits) - 1) - kBias;
  static constexpr int kMaxMantissa =
      Specials == FloatSpecials::kOnlyNaN ? (1 << ManBits) - 2 : (1 << ManBits) - 1;

 private:
  static constexpr float pow2(int k) noexcept {
    float r = 1.0f;
    for (; k > 0; --k) r *= 2.0f;
    for (; k < 0; ++k) r *= 0.5f;
    return r;
  }

 public:
  /// Largest finite value.
  static constexpr float kMax =
      (1.0f + static_cast<float>(kMaxMantissa) / static_cast<float>(1 << ManBits)) * pow2(kEmax);
  static constexpr float kMinNormal = pow2(kEmin);
  static constexpr float kMinSubnormal = pow2(kEmin - ManBits);
};

/// OCP 8-bit floating point E4M3 ("fn": no Inf, NaN = S.1111.111, max 448).
using FloatE4M3 = FloatFormat<4, 3, FloatSpecials::kOnlyNaN>;
/// OCP 8-bit floating point E5M2 (IEEE-like: Inf, NaN, max 57344).
using FloatE5M2 = FloatFormat<5, 2, FloatSpecials::kIeee>;
/// OCP MX 6-bit E2M3 (no Inf/NaN, max 7.5).
using FloatE2M3 = FloatFormat<2, 3, FloatSpecials::kFinite>;
/// OCP MX 6-bit E3M2 (no Inf/NaN, max 28).
using FloatE3M2 = FloatFormat<3, 2, FloatSpecials::kFinite>;
/// OCP MX 4-bit E2M1 (no Inf/NaN, max 6; values 0, 0.5, 1, 1.5, 2, 3, 4, 6).
using FloatE2M1 = FloatFormat<2, 1, FloatSpecials::kFinite>;

template <class F>
struct is_float_format : std::false_type {};
template <int E, int M, FloatSpecials S>
struct is_float_format<FloatFormat<E, M, S>> : std::true_type {};

namespace detail {
inline std::uint32_t float_bits(float v) noexcept {
  std::uint32_t b;
  std::memcpy(&b, &v, sizeof b);
  return b;
}
inline float bits_float(std::uint32_t b) noexcept {
  float v;
  std::memcpy(&v, &b, sizeof v);
  return v;
}
/// 2^k for k in [-126, 127], built from the exponent field (exact).
inline float pow2_exact(int k) noexcept {
  return bits_float(static_cast<std::uint32_t>(k + 127) << 23);
}
/// The exponent of a's leading bit, read off the bits (a >= 0; -127 for 0 and subnormals,
/// 128 for Inf/NaN), clamped to [lo, hi].
inline int clamped_exponent(float a, int lo, int hi) noexcept {
  int e = static_cast<int>(float_bits(a) >> 23) - 127;
  return e < lo ? lo : (e > hi ? hi : e);
}
}  // namespace detail

/// The format value nearest v (ties to even), as a float; overflow per O (see the file
/// comment). The scalar reference of the SIMD twin in simd/minifloat_simd.hpp.
template <class F, class O = FpSaturate>
inline float round_to_format(float v) noexcept {
  static_assert(is_float_format<F>::value, "round_to_format: F must be an fq::FloatFormat.");
  static_assert(is_fp_overflow<O>::value,
                "round_to_format: O must be fq::FpSaturate or fq::FpNoSaturate.");
  static_assert(O::kSaturate || F::kHasNaN,
                "round_to_format: a format without Inf and NaN (FP6, FP4) can only saturate "
                "(fq::FpSaturate).");
  if (std::isnan(v)) return v + v;  // quiet, payload and sign kept
  const float a = std::fabs(v);
  // e is clamped above at emax + 1 so that both scalings stay normal floats; any a with a
  // larger exponent overflows below.
  const int e = detail::clamped_exponent(a, F::kEmin, F::kEmax + 1);
  float r =
      std::nearbyint(a * detail::pow2_exact(F::kManBits - e)) * detail::pow2_exact(e - F::kManBits);
  if (r > F::kMax) {
    if constexpr (O::kSaturate)
      r = F::kMax;
    else if constexpr (F::kHasInf)
      r = std::numeric_limits<float>::infinity();
    else
      r = std::numeric_limits<float>::quiet_NaN();
  }
  return std::copysign(r, v);
}

/// True where the straight-through estimator passes the gradient: |v| <= max.
template <class F>
inline bool in_format_range(float v) noexcept {
  return std::fabs(v) <= F::kMax;
}

/// The value of a code (the low F::kBits bits of `code`; the rest must be 0).
template <class F>
inline float decode_format(std::uint8_t code) {
  FQ_CHECK((code >> F::kBits) == 0, ErrorCode::kInvalidArgument,
           detail::msg("decode_format: code ", int{code}, " has more than ", F::kBits, " bits"));
  const bool neg = ((code >> (F::kBits - 1)) & 1) != 0;
  const int ef = (code >> F::kManBits) & ((1 << F::kExpBits) - 1);
  const int mf = code & ((1 << F::kManBits) - 1);
  const int eall = (1 << F::kExpBits) - 1;
  float r;
  if (F::kSpecials == FloatSpecials::kIeee && ef == eall)
    r = mf == 0 ? std::numeric_limits<float>::infinity() : std::numeric_limits<float>::quiet_NaN();
  else if (F::kSpecials == FloatSpecials::kOnlyNaN && ef == eall && mf == (1 << F::kManBits) - 1)
    r = std::numeric_limits<float>::quiet_NaN();
  else if (ef == 0)
    r = static_cast<float>(mf) * detail::pow2_exact(F::kEmin - F::kManBits);
  else
    r = static_cast<float>((1 << F::kManBits) + mf) *
        detail::pow2_exact(ef - F::kBias - F::kManBits);
  return neg ? -r : r;
}

/// The code of round_to_format<F, O>(v). NaN gives the all-ones code with v's sign (kOnlyNaN,
/// kIeee); a format without NaN (FP6, FP4) refuses NaN with fq::Error kNonFiniteInput.
template <class F, class O = FpSaturate>
inline std::uint8_t encode_format(float v) {
  const int sign = std::signbit(v) ? 1 << (F::kBits - 1) : 0;
  const int eall = (1 << F::kExpBits) - 1;
  const float r = round_to_format<F, O>(v);
  if (std::isnan(r)) {
    FQ_CHECK(F::kHasNaN, ErrorCode::kNonFiniteInput,
             "encode_format: this format (FP6/FP4) has no NaN code");
    return static_cast<std::uint8_t>(sign | (eall << F::kManBits) | ((1 << F::kManBits) - 1));
  }
  if (std::isinf(r)) return static_cast<std::uint8_t>(sign | (eall << F::kManBits));
  const float a = std::fabs(r);
  int ef = 0, mf = 0;
  if (a < F::kMinNormal) {
    mf = static_cast<int>(a * detail::pow2_exact(F::kManBits - F::kEmin));
  } else {
    const int e = detail::clamped_exponent(a, F::kEmin, F::kEmax);
    ef = e + F::kBias;
    mf = static_cast<int>(a * detail::pow2_exact(F::kManBits - e)) - (1 << F::kManBits);
  }
  return static_cast<std::uint8_t>(sign | (ef << F::kManBits) | mf);
}

}  // namespace fq

#endif  // FQ_FORMAT_MINIFLOAT_HPP_
