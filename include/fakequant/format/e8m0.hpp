// SPDX-License-Identifier: MIT
// fakequant/format/e8m0.hpp: the E8M0 shared scale of the OCP Microscaling (MX v1.0) formats,
// its selection from a block's amax, and the MX element formats it scales.
//
// E8M0: 8 exponent bits, no sign, no mantissa, bias 127. Code b in [0, 254] is the pure power
// of two X = 2^(b - 127) (2^-127, a float subnormal, up to 2^127); b = 255 (0xFF) is NaN. There
// is no zero and no infinity.
//
// Exponent selection (e8m0_from_amax), for the block amax A = max |V_i| (a float >= 0) and the
// element format's emax_elem (the exponent of its largest normal), with every exponent read
// off A's bits (never log2; a zero or subnormal A has exponent field 0, read as -127):
//   E8m0Floor  the spec (OCP MX v1.0 section 6.3): s = floor(log2 A) - emax_elem
//   E8m0Ceil   s = ceil(log2 A) - emax_elem (the exponent + 1 when A's mantissa field != 0)
//   E8m0Even   A rounded half-up to the element's mantissa width first (TorchAO's EVEN:
//              A_bits + 2^(22 - mbits), mantissa cleared), then floor: s = floor(log2 A') - emax
//   E8m0Rceil  NVIDIA's cvt.rp.ue8m0 on D = A * f32(1 / elem_max): X = the smallest power of two
//              >= D (D in (2^-127, 2^-126) gives 2^-126, D <= 2^-127 gives 2^-127), as TorchAO's
//              _to_mx_rceil (which multiplies by the rounded reciprocal, as here).
// Clamp: s is clamped to [-127, 127], so b = s + 127 is in [0, 254]. amax = 0 and subnormal amax
// give the smallest scale 2^-127 (b = 0) under FLOOR/EVEN (CEIL: 2^(-126 - emax) clamped, the
// same 2^-127). A finite amax never gives NaN: FLOOR's largest is 127 - emax_elem; the upper
// clamp only binds for CEIL/EVEN near FLT_MAX with MXINT8 (emax 0). A block holding NaN or +-Inf
// gets b = 255 (NaN), so the whole block dequantizes to NaN (spec and TorchAO).
// Differences from TorchAO (torchao/prototype/mx_formats/mx_tensor.py): it clamps s to
// [-127, 128], so 128 (possible only for CEIL/EVEN with emax 0, where it has no MXINT8) would
// give 0xFF = NaN; and its EVEN tests the *rounded* amax for finiteness, so an amax within half
// an element ulp of FLT_MAX rounds to Inf and gets NaN. Here both stay finite (clamp to 127;
// finiteness of the amax itself). Older TorchAO releases clamped the quantization scale to
// 2^-126 (FP32's smallest normal) while dequantizing with 2^-127 for b = 0; here X = 2^(b-127)
// both ways (2^-127 is a representable float), as the spec says and as current TorchAO does.
// Applying X: V / X is computed as V * 2^(127 - b) (the exact reciprocal, a float for every
// b in [0, 254]; 2^-127 for b = 254): bit-identical to the division, both being the exact
// quotient rounded once.
//
// MX element formats (MxElement<E>): the FloatFormat elements of format/minifloat.hpp (E4M3:
// emax 8, E5M2: 15, E2M3: 2, E3M2: 4, E2M1: 2), cast with round_to_format<E, FpSaturate>
// (round to nearest even, saturating to the largest normal: the spec's conversion), and
// MxInt8Element, the MXINT8 element: an 8-bit two's-complement integer with an implicit scale
// 2^-6, emax_elem 0. The spec's table gives the values code * 2^-6 for codes -128..127 (so
// -2 exists); its conversion saturates to the largest normal magnitude, +-127 * 2^-6 =
// +-1 63/64, so quantization uses the symmetric codes [-127, 127] (as the MX reference library
// microxcaling and Brevitas' MXInt8); rounding is to nearest, ties to even (the spec's default).
#ifndef FQ_FORMAT_E8M0_HPP_
#define FQ_FORMAT_E8M0_HPP_

#include <cmath>        // isnan, nearbyint
#include <cstdint>      // uint8_t, uint32_t, int32_t
#include <limits>       // numeric_limits
#include <type_traits>  // false_type, true_type

#include <fakequant/format/minifloat.hpp>
#include <fakequant/policy/fp_overflow.hpp>

namespace fq {

/// How the E8M0 exponent is chosen from a block's amax (see the file comment).
enum class E8m0Mode { kFloor, kCeil, kEven, kRceil };

/// The OCP MX v1.0 rule: X = 2^(floor(log2 amax) - emax_elem).
struct E8m0Floor {
  static constexpr E8m0Mode kMode = E8m0Mode::kFloor;
};
/// X = 2^(ceil(log2 amax) - emax_elem): never saturates the amax element.
struct E8m0Ceil {
  static constexpr E8m0Mode kMode = E8m0Mode::kCeil;
};
/// amax rounded to the element's mantissa width, then FLOOR (TorchAO's EVEN).
struct E8m0Even {
  static constexpr E8m0Mode kMode = E8m0Mode::kEven;
};
/// X = the smallest power of two >= amax / elem_max (NVIDIA cvt.rp.ue8m0; TorchAO's RCEIL).
struct E8m0Rceil {
  static constexpr E8m0Mode kMode = E8m0Mode::kRceil;
};

template <class M>
struct is_e8m0_mode : std::false_type {};
template <>
struct is_e8m0_mode<E8m0Floor> : std::true_type {};
template <>
struct is_e8m0_mode<E8m0Ceil> : std::true_type {};
template <>
struct is_e8m0_mode<E8m0Even> : std::true_type {};
template <>
struct is_e8m0_mode<E8m0Rceil> : std::true_type {};

/// The NaN code of E8M0.
inline constexpr std::uint8_t kE8m0NaN = 0xFF;

/// The value 2^(b - 127) of an E8M0 code (NaN for 0xFF).
inline float e8m0_to_float(std::uint8_t b) noexcept {
  if (b == kE8m0NaN) return std::numeric_limits<float>::quiet_NaN();
  // b = 0 is the float subnormal 2^-127 (mantissa bit 22); else the exponent field is b.
  return detail::bits_float(b == 0 ? 0x00400000u : static_cast<std::uint32_t>(b) << 23);
}

/// 1 / 2^(b - 127) = 2^(127 - b), exact (NaN for 0xFF).
inline float e8m0_reciprocal(std::uint8_t b) noexcept {
  return b == kE8m0NaN ? std::numeric_limits<float>::quiet_NaN()
                       : e8m0_to_float(static_cast<std::uint8_t>(254 - b));
}

namespace detail {
/// The E8M0 code from the bits of a block's amax with the sign cleared (any float >= 0, NaN
/// included), for an element format with emax_elem `emax`, mantissa width `mbits` and largest
/// value `elem_max` (see the file comment for the modes). Integer arithmetic only, so the SIMD
/// kernels call this very function per block.
template <E8m0Mode Mode>
inline std::uint8_t e8m0_from_amax_bits(std::uint32_t u, int emax, int mbits,
                                        float elem_max) noexcept {
  if (u >= 0x7F800000u) return kE8m0NaN;  // Inf or NaN in the block
  std::int32_t e;                         // unbiased exponent of the power of two chosen
  if constexpr (Mode == E8m0Mode::kRceil) {
    const std::uint32_t d = float_bits(bits_float(u) * (1.0f / elem_max));
    const std::uint32_t be = d >> 23, m = d & 0x7FFFFFu;
    const bool up = be == 0 ? m > 0x400000u : m != 0;  // subnormal D: 2^-127 is code 0
    std::int32_t b = static_cast<std::int32_t>(be) + (up ? 1 : 0);
    return static_cast<std::uint8_t>(b > 254 ? 254 : b);
  } else if constexpr (Mode == E8m0Mode::kCeil) {
    e = static_cast<std::int32_t>(u >> 23) - 127 + ((u & 0x7FFFFFu) != 0 ? 1 : 0) - emax;
  } else if constexpr (Mode == E8m0Mode::kEven) {
    const std::uint32_t r = u + (std::uint32_t{1} << (22 - mbits));  // u < 2^31: no overflow
    e = static_cast<std::int32_t>(r >> 23) - 127 - emax;
  } else {
    e = static_cast<std::int32_t>(u >> 23) - 127 - emax;
  }
  e = e < -127 ? -127 : (e > 127 ? 127 : e);
  return static_cast<std::uint8_t>(e + 127);
}
}  // namespace detail

// ---- MX element formats ----

/// The MXINT8 element: int8 two's complement with an implicit scale 2^-6 (see the file comment).
struct MxInt8Element {};

/// What the MX kernels need of an element format E: emax_elem, mantissa bits (EVEN), the
/// largest value, and the saturating round-to-nearest-even cast (scalar reference).
template <class E, class = void>
struct MxElement {
  static_assert(is_float_format<E>::value,
                "MxElement: the element must be an fq::FloatFormat (FloatE4M3, FloatE5M2, "
                "FloatE2M3, FloatE3M2, FloatE2M1) or fq::MxInt8Element.");
  static constexpr bool kIsInt = false;
  static constexpr int kEmax = E::kEmax;
  static constexpr int kManBits = E::kManBits;
  static constexpr float kMax = E::kMax;
  static float round(float v) noexcept { return round_to_format<E, FpSaturate>(v); }
};

template <>
struct MxElement<MxInt8Element> {
  static constexpr bool kIsInt = true;
  static constexpr int kEmax = 0;
  static constexpr int kManBits = 6;  ///< the 2^-6 step (EVEN rounds amax to this width)
  static constexpr float kMax = 127.0f / 64.0f;
  /// clamp(nearbyint(v * 64), -127, 127) / 64; NaN stays NaN (quieted), the sign of 0 kept.
  static float round(float v) noexcept {
    if (std::isnan(v)) return v + v;
    float q = std::nearbyint(v * 64.0f);  // exact scaling by 2^6
    q = q < -127.0f ? -127.0f : (q > 127.0f ? 127.0f : q);
    return q * 0.015625f;
  }
};

template <class E>
struct is_mx_element : is_float_format<E> {};
template <>
struct is_mx_element<MxInt8Element> : std::true_type {};

/// The E8M0 code of a block whose amax is `amax` (>= 0, or NaN), for element E and mode M.
template <class E, class M = E8m0Floor>
inline std::uint8_t e8m0_from_amax(float amax) noexcept {
  static_assert(is_mx_element<E>::value, "e8m0_from_amax: E must be an MX element format.");
  static_assert(is_e8m0_mode<M>::value,
                "e8m0_from_amax: M must be fq::E8m0Floor, E8m0Ceil, E8m0Even or E8m0Rceil.");
  using T = MxElement<E>;
  return detail::e8m0_from_amax_bits<M::kMode>(detail::float_bits(amax) & 0x7FFFFFFFu, T::kEmax,
                                               T::kManBits, T::kMax);
}

}  // namespace fq

#endif  // FQ_FORMAT_E8M0_HPP_
