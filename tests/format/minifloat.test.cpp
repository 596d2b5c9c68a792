// SPDX-License-Identifier: MIT
// tests/format/minifloat.test.cpp: the small floating-point element formats of
// format/minifloat.hpp (FP8 E4M3 / E5M2, FP6 E2M3 / E3M2, FP4 E2M1) against the OCP 8-bit
// floating point spec (v1.0) and the OCP Microscaling spec (v1.0) tables, exhaustively:
//   - key codes hand-listed from the specs (max, min normal, min/max subnormal, 1.0, NaN, Inf)
//     and the whole FP4 table; every code against a formula-free enumeration (the positive
//     codes counted up from 0 by a step that starts at the smallest subnormal and doubles
//     every 2^M codes from the second binade on);
//   - encode(decode(c)) == c for every non-NaN code;
//   - every midpoint between adjacent codes rounds to the even code, under both policies,
//     and its float neighbours round to the nearer code;
//   - overflow, NaN, Inf, subnormals, +-0 per policy;
//   - >= 10^6 random inputs per format and policy against a reference that searches the
//     sorted table of finite values (ties to the even code) and then applies the overflow rule;
//   - simd::round_to_format and the fake-quant kernels' twin (simd/fp_fake_quantize_simd.hpp)
//     bit-identical to the scalar round_to_format on the same inputs, tails included.
#include <algorithm>  // lower_bound
#include <cmath>      // isnan, ldexp, nextafter
#include <cstdint>    // uint8_t, uint32_t
#include <cstring>    // memcpy
#include <limits>     // numeric_limits
#include <random>     // mt19937
#include <vector>     // vector

#include <catch2/catch.hpp>

#include <fakequant/format/minifloat.hpp>
#include <fakequant/policy/fp_overflow.hpp>
#include <fakequant/simd/arch.hpp>
#include <fakequant/simd/fp_fake_quantize_simd.hpp>
#include <fakequant/simd/minifloat_simd.hpp>

#include "test_util.hpp"

namespace {

using fq_test::bits_of;
using fq_test::float_from_bits;

using fq_test::kInf;

bool same_bits(float a, float b) { return bits_of(a) == bits_of(b); }

/// Positive finite values of F in code order (index i = code i), by counting: the step is
/// the smallest subnormal for the first two binades (subnormals and the first normal one)
/// and doubles every 2^M codes after. No exponent/bias decoding. The last code(s) reserved
/// for NaN/Inf are dropped.
template <class F>
std::vector<double> enumerate_positive() {
  const int per_binade = 1 << F::kManBits;
  int count = 1 << (F::kExpBits + F::kManBits);                       // codes with sign 0
  if (F::kSpecials == fq::FloatSpecials::kIeee) count -= per_binade;  // Inf and NaNs
  if (F::kSpecials == fq::FloatSpecials::kOnlyNaN) count -= 1;        // S.1111.111
  double step = static_cast<double>(F::kMinSubnormal);
  std::vector<double> v;
  double x = 0.0;
  for (int i = 0; i < count; ++i) {
    if (i >= 2 * per_binade && i % per_binade == 0) step *= 2;
    v.push_back(x);
    x += step;
  }
  return v;
}

/// The grid point after the largest finite value as if the exponent were unbounded (one
/// step of the top binade above max, whether or not max ends its binade); its code index is
/// t.size(), which decides the tie at the top.
double virtual_next(const std::vector<double>& t) {
  return t.back() + (t.back() - t[t.size() - 2]);
}

/// The independent reference: nearest of the sorted table (ties to the even index = even
/// code), then the overflow rule (file comment of policy/fp_overflow.hpp).
template <class F, class O>
float table_round(float v, const std::vector<double>& t, double next) {
  if (std::isnan(v)) return float_from_bits(static_cast<std::uint32_t>(bits_of(v)) | 0x00400000u);
  const double a = std::fabs(static_cast<double>(v));
  const bool neg = std::signbit(v);
  double r;
  bool over = false;
  if (a >= next) {
    over = true;
  } else {
    // the neighbours in t ∪ {next}
    const auto it = std::lower_bound(t.begin(), t.end(), a);
    const std::size_t hi_i = static_cast<std::size_t>(it - t.begin());
    if (hi_i < t.size() && t[hi_i] == a) {
      r = a;
      return neg ? -static_cast<float>(r) : static_cast<float>(r);
    }
    const std::size_t lo_i = hi_i - 1;  // a > 0 = t[0] here
    const double lo = t[lo_i], hi = hi_i < t.size() ? t[hi_i] : next;
    bool up;
    if (a - lo != hi - a)
      up = hi - a < a - lo;
    else
      up = (hi_i % 2) == 0;  // ties to the even code
    if (up && hi_i == t.size()) over = true;
    r = up ? hi : lo;
  }
  float out;
  if (over) {
    if (O::kSaturate)
      out = static_cast<float>(t.back());
    else
      out = F::kHasInf ? kInf : std::numeric_limits<float>::quiet_NaN();
  } else {
    out = static_cast<float>(r);
  }
  return neg ? -out : out;
}

bool agree(float expect, float got) {
  if (std::isnan(expect)) return std::isnan(got) && std::signbit(expect) == std::signbit(got);
  return same_bits(expect, got);
}

/// Random inputs: random bit patterns, every float binade (subnormals included), values in
/// and around the format's range, ±0, ±Inf, NaN, and the format's midpoints nudged.
template <class F>
std::vector<float> random_inputs(std::size_t n, std::uint32_t seed, const std::vector<double>& t) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u01(0.0, 1.0);
  auto u32 = [&] { return static_cast<std::uint32_t>(rng()); };
  constexpr std::uint32_t kFormatBinades = F::kEmax - F::kEmin + F::kManBits + 7;
  std::vector<float> x(n);
  for (auto& v : x) {
    const std::uint32_t kind = u32() % 8;
    const float sign = (u32() & 1) ? -1.0f : 1.0f;
    if (kind == 0) {
      v = float_from_bits(u32());
    } else if (kind == 1) {  // any float binade, float subnormals included
      const int k = static_cast<int>(u32() % 277) - 149;
      v = sign * static_cast<float>(std::ldexp(1.0 + u01(rng), k));
    } else if (kind <= 4) {  // the format's binades and a few beyond
      const int k = F::kEmin - F::kManBits - 3 + static_cast<int>(u32() % kFormatBinades);
      v = sign * static_cast<float>(std::ldexp(1.0 + u01(rng), k));
    } else if (kind == 5) {  // midpoints and their float neighbours
      const std::size_t i = u32() % (t.size() - 1);
      const float m = static_cast<float>((t[i] + t[i + 1]) / 2);
      const std::uint32_t w = u32() % 3;
      v = sign * (w == 0 ? m : std::nextafter(m, w == 1 ? 0.0f : kInf));
    } else if (kind == 6) {  // exact format values
      v = sign * static_cast<float>(t[u32() % t.size()]);
    } else {
      static const float sp[] = {0.0f,
                                 kInf,
                                 std::numeric_limits<float>::quiet_NaN(),
                                 std::numeric_limits<float>::denorm_min(),
                                 std::numeric_limits<float>::max(),
                                 1e-30f};
      v = sign * sp[u32() % 6];
    }
  }
  return x;
}

template <class F, class O>
void check_random_against_table(std::uint32_t seed) {
  const std::vector<double> t = enumerate_positive<F>();
  const double next = virtual_next(t);
  const std::vector<float> x = random_inputs<F>(1100000, seed, t);
  std::size_t bad = 0;
  for (float v : x) {
    const float e = table_round<F, O>(v, t, next), g = fq::round_to_format<F, O>(v);
    if (!agree(e, g)) {
      if (++bad <= 5)
        FAIL_CHECK("input " << v << " (bits " << bits_of(v) << "): table " << e
                            << ", round_to_format " << g);
    }
  }
  CHECK(bad == 0);
}

/// Every code: decode against the enumeration, encode(decode) identity, midpoints.
template <class F>
void check_all_codes() {
  const std::vector<double> t = enumerate_positive<F>();
  const int half = F::kCodes / 2;
  for (int c = 0; c < F::kCodes; ++c) {
    const auto code = static_cast<std::uint8_t>(c);
    const float d = fq::decode_format<F>(code);
    const int mag = c % half;
    const bool neg = c >= half;
    INFO("code " << c);
    if (mag < static_cast<int>(t.size())) {
      CHECK(std::fabs(d) == t[static_cast<std::size_t>(mag)]);
      CHECK(std::signbit(d) == neg);
      // encode∘decode is the identity on every finite code, -0 included
      CHECK(int{fq::encode_format<F, fq::FpSaturate>(d)} == c);
      if constexpr (F::kHasNaN) CHECK(int{fq::encode_format<F, fq::FpNoSaturate>(d)} == c);
    } else if (F::kHasInf && mag == static_cast<int>(t.size())) {
      CHECK(d == (neg ? -kInf : kInf));
      if constexpr (F::kHasInf) CHECK(int{fq::encode_format<F, fq::FpNoSaturate>(d)} == c);
      CHECK(int{fq::encode_format<F, fq::FpSaturate>(d)} == c - 1);  // saturates to max
    } else {
      CHECK(std::isnan(d));
    }
  }
}

template <class F, class O>
void check_midpoints() {
  const std::vector<double> t = enumerate_positive<F>();
  for (std::size_t i = 0; i + 1 < t.size(); ++i) {
    const double m = (t[i] + t[i + 1]) / 2;  // exact in float: a few bits
    const float mf = static_cast<float>(m);
    REQUIRE(static_cast<double>(mf) == m);
    const double even = (i % 2 == 0) ? t[i] : t[i + 1];
    INFO("between codes " << i << " and " << i + 1 << ": " << t[i] << ", " << t[i + 1]);
    CHECK(fq::round_to_format<F, O>(mf) == static_cast<float>(even));
    CHECK(fq::round_to_format<F, O>(-mf) == -static_cast<float>(even));
    CHECK(fq::round_to_format<F, O>(std::nextafter(mf, 0.0f)) == static_cast<float>(t[i]));
    CHECK(fq::round_to_format<F, O>(std::nextafter(mf, kInf)) == static_cast<float>(t[i + 1]));
  }
}

#if FQ_HAS_XSIMD
/// Applies a batch function to n floats: whole batches, then the tail through a padded batch.
template <class Fn>
std::vector<float> apply_batches(const std::vector<float>& x, Fn fn) {
  using B = xsimd::batch<float, fq::DefaultArch>;
  constexpr std::size_t W = B::size;
  std::vector<float> y(x.size());
  std::size_t i = 0;
  for (; i + W <= x.size(); i += W)
    fn(B::load_unaligned(x.data() + i)).store_unaligned(y.data() + i);
  if (i < x.size()) {
    alignas(64) float pad[W] = {}, out[W];
    std::memcpy(pad, x.data() + i, (x.size() - i) * sizeof(float));
    fn(B::load_aligned(pad)).store_aligned(out);
    std::memcpy(y.data() + i, out, (x.size() - i) * sizeof(float));
  }
  return y;
}

template <class F, class O>
void check_simd_twins(std::uint32_t seed) {
  using B = xsimd::batch<float, fq::DefaultArch>;
  const std::vector<double> t = enumerate_positive<F>();
  for (std::size_t n : {std::size_t{1}, std::size_t{7}, B::size + 3, std::size_t{300001}}) {
    const std::vector<float> x = random_inputs<F>(n, seed + static_cast<std::uint32_t>(n), t);
    std::vector<float> ref(n);
    for (std::size_t i = 0; i < n; ++i) ref[i] = fq::round_to_format<F, O>(x[i]);
    const std::vector<float> a =
        apply_batches(x, [](const B& v) { return fq::simd::round_to_format<F, O>(v); });
    const std::vector<float> b = apply_batches(
        x, [](const B& v) { return fq::simd::round_to_format_from_abs<F, O>(v, xsimd::abs(v)); });
    INFO("n = " << n);
    CHECK(fq_test::first_bit_mismatch(ref, a) == -1);
    CHECK(fq_test::first_bit_mismatch(ref, b) == -1);
  }
}
#endif

}  // namespace

TEST_CASE("minifloat: key codes from the OCP tables", "[formats][minifloat]") {
  using fq::decode_format;
  SECTION("FP8 E4M3 (OCP 8-bit FP: bias 7, no Inf, NaN S.1111.111, max 448)") {
    using F = fq::FloatE4M3;
    CHECK(decode_format<F>(0x7E) == 448.0f);
    CHECK(decode_format<F>(0xFE) == -448.0f);
    CHECK(decode_format<F>(0x08) == 0.015625f);     // min normal 2^-6
    CHECK(decode_format<F>(0x07) == 0.013671875f);  // max subnormal 0.875 * 2^-6
    CHECK(decode_format<F>(0x01) == 0.001953125f);  // min subnormal 2^-9
    CHECK(decode_format<F>(0x38) == 1.0f);
    CHECK(decode_format<F>(0x77) == 240.0f);
    CHECK(decode_format<F>(0x78) == 256.0f);  // exponent 1111 is a normal binade
    CHECK(std::isnan(decode_format<F>(0x7F)));
    CHECK(std::isnan(decode_format<F>(0xFF)));
    CHECK(same_bits(decode_format<F>(0x80), -0.0f));
    CHECK(F::kMax == 448.0f);
  }
  SECTION("FP8 E5M2 (OCP 8-bit FP: bias 15, IEEE Inf/NaN, max 57344)") {
    using F = fq::FloatE5M2;
    CHECK(decode_format<F>(0x7B) == 57344.0f);
    CHECK(decode_format<F>(0x7C) == kInf);
    CHECK(decode_format<F>(0xFC) == -kInf);
    for (int c : {0x7D, 0x7E, 0x7F, 0xFD, 0xFE, 0xFF})
      CHECK(std::isnan(decode_format<F>(static_cast<std::uint8_t>(c))));
    CHECK(decode_format<F>(0x04) == 6.103515625e-05f);    // min normal 2^-14
    CHECK(decode_format<F>(0x03) == 4.57763671875e-05f);  // max subnormal 0.75 * 2^-14
    CHECK(decode_format<F>(0x01) == 1.52587890625e-05f);  // min subnormal 2^-16
    CHECK(decode_format<F>(0x3C) == 1.0f);
    CHECK(F::kMax == 57344.0f);
  }
  SECTION("FP6 E2M3 (OCP MX: bias 1, no Inf/NaN, max 7.5)") {
    using F = fq::FloatE2M3;
    CHECK(decode_format<F>(0x1F) == 7.5f);
    CHECK(decode_format<F>(0x3F) == -7.5f);
    CHECK(decode_format<F>(0x08) == 1.0f);    // min normal 2^0
    CHECK(decode_format<F>(0x07) == 0.875f);  // max subnormal
    CHECK(decode_format<F>(0x01) == 0.125f);  // min subnormal 2^-3
    CHECK(decode_format<F>(0x18) == 4.0f);
  }
  SECTION("FP6 E3M2 (OCP MX: bias 3, no Inf/NaN, max 28)") {
    using F = fq::FloatE3M2;
    CHECK(decode_format<F>(0x1F) == 28.0f);
    CHECK(decode_format<F>(0x3F) == -28.0f);
    CHECK(decode_format<F>(0x04) == 0.25f);    // min normal 2^-2
    CHECK(decode_format<F>(0x03) == 0.1875f);  // max subnormal
    CHECK(decode_format<F>(0x01) == 0.0625f);  // min subnormal 2^-4
    CHECK(decode_format<F>(0x0C) == 1.0f);
  }
  SECTION("FP4 E2M1 (OCP MX: the whole table)") {
    using F = fq::FloatE2M1;
    const float table[16] = {0.0f,  0.5f,  1.0f,  1.5f,  2.0f,  3.0f,  4.0f,  6.0f,
                             -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};
    for (int c = 0; c < 16; ++c)
      CHECK(same_bits(decode_format<F>(static_cast<std::uint8_t>(c)), table[c]));
  }
  CHECK_THROWS_AS(decode_format<fq::FloatE2M1>(0x10), fq::Error);
}

TEMPLATE_TEST_CASE("minifloat: every code, encode(decode), midpoints to the even code",
                   "[formats][minifloat]", fq::FloatE4M3, fq::FloatE5M2, fq::FloatE2M3,
                   fq::FloatE3M2, fq::FloatE2M1) {
  using F = TestType;
  check_all_codes<F>();
  check_midpoints<F, fq::FpSaturate>();
  if constexpr (F::kHasNaN) check_midpoints<F, fq::FpNoSaturate>();
}

TEST_CASE("minifloat: overflow, NaN, Inf per policy", "[formats][minifloat]") {
  using fq::FpNoSaturate;
  using fq::FpSaturate;
  using fq::round_to_format;
  using E4 = fq::FloatE4M3;
  using E5 = fq::FloatE5M2;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  // E4M3: 464 is the tie between 448 (even) and 480 (odd, the NaN code): 448
  CHECK(round_to_format<E4, FpNoSaturate>(464.0f) == 448.0f);
  CHECK(std::isnan(round_to_format<E4, FpNoSaturate>(std::nextafter(464.0f, kInf))));
  CHECK(std::isnan(round_to_format<E4, FpNoSaturate>(-500.0f)));
  CHECK(std::signbit(round_to_format<E4, FpNoSaturate>(-500.0f)));
  CHECK(std::isnan(round_to_format<E4, FpNoSaturate>(kInf)));
  CHECK(round_to_format<E4, FpSaturate>(1e30f) == 448.0f);
  CHECK(round_to_format<E4, FpSaturate>(-kInf) == -448.0f);
  // E5M2: 61440 is the tie between 57344 (odd) and 65536 (even): Inf
  CHECK(round_to_format<E5, FpNoSaturate>(61440.0f) == kInf);
  CHECK(round_to_format<E5, FpNoSaturate>(-61440.0f) == -kInf);
  CHECK(round_to_format<E5, FpNoSaturate>(std::nextafter(61440.0f, 0.0f)) == 57344.0f);
  CHECK(round_to_format<E5, FpNoSaturate>(kInf) == kInf);
  CHECK(round_to_format<E5, FpSaturate>(61440.0f) == 57344.0f);
  CHECK(round_to_format<E5, FpSaturate>(-kInf) == -57344.0f);
  // FP6 / FP4 saturate
  CHECK(round_to_format<fq::FloatE2M3>(7.75f) == 7.5f);  // tie 7.5 (odd) / 8: saturates
  CHECK(round_to_format<fq::FloatE3M2>(-1e9f) == -28.0f);
  CHECK(round_to_format<fq::FloatE2M1>(kInf) == 6.0f);
  CHECK(round_to_format<fq::FloatE2M1>(5.0f) == 4.0f);  // tie 4 (even) / 6
  // NaN propagates in every format and policy, sign and payload kept (quieted)
  const float payload = float_from_bits(0xFFA12345u);  // a negative signaling NaN
  for (float r :
       {round_to_format<E4, FpSaturate>(payload), round_to_format<E4, FpNoSaturate>(payload),
        round_to_format<E5, FpSaturate>(payload), round_to_format<fq::FloatE2M1>(payload),
        round_to_format<fq::FloatE2M3>(nan)}) {
    CHECK(std::isnan(r));
  }
  CHECK(bits_of(round_to_format<fq::FloatE2M1>(payload)) == 0xFFE12345u);
  CHECK(fq::in_format_range<E4>(448.0f));
  CHECK_FALSE(fq::in_format_range<E4>(std::nextafter(448.0f, kInf)));
  CHECK_FALSE(fq::in_format_range<E4>(nan));
  CHECK_FALSE(fq::in_format_range<E5>(-kInf));
  // NaN codes: E4M3 and E5M2 encode NaN; FP6/FP4 refuse it
  CHECK(int{fq::encode_format<E4>(-nan)} == 0xFF);
  CHECK(int{fq::encode_format<E5>(nan)} == 0x7F);
  CHECK(fq_test::error_code_of([&] { (void)fq::encode_format<fq::FloatE2M1>(nan); }) ==
        fq::ErrorCode::kNonFiniteInput);
}

TEST_CASE("minifloat: subnormals and signed zero", "[formats][minifloat]") {
  using E4 = fq::FloatE4M3;
  using fq::round_to_format;
  const float sub = E4::kMinSubnormal;  // 2^-9
  CHECK(same_bits(round_to_format<E4>(-0.0f), -0.0f));
  CHECK(same_bits(round_to_format<E4>(0.0f), 0.0f));
  CHECK(same_bits(round_to_format<E4>(sub / 2), 0.0f));    // tie 0 (even) / 2^-9
  CHECK(same_bits(round_to_format<E4>(-sub / 2), -0.0f));  // the sign survives the flush
  CHECK(round_to_format<E4>(std::nextafter(sub / 2, 1.0f)) == sub);
  CHECK(round_to_format<E4>(1.5f * sub) == 2 * sub);  // tie 1 (odd) / 2: 2
  CHECK(round_to_format<E4>(2.5f * sub) == 2 * sub);  // tie 2 (even) / 3
  CHECK(same_bits(round_to_format<E4>(-std::numeric_limits<float>::denorm_min()), -0.0f));
  CHECK(round_to_format<fq::FloatE2M1>(0.25f) == 0.0f);  // tie 0 / 0.5
  CHECK(round_to_format<fq::FloatE2M1>(0.75f) == 1.0f);  // tie 0.5 (odd) / 1
  CHECK(round_to_format<fq::FloatE5M2>(1.52587890625e-05f * 0.75f) == 1.52587890625e-05f);
}

TEMPLATE_TEST_CASE("minifloat: 10^6 random inputs against the table search", "[formats][minifloat]",
                   fq::FloatE4M3, fq::FloatE5M2, fq::FloatE2M3, fq::FloatE3M2, fq::FloatE2M1) {
  using F = TestType;
  check_random_against_table<F, fq::FpSaturate>(1234u + F::kBits * 7u + F::kManBits);
  if constexpr (F::kHasNaN) check_random_against_table<F, fq::FpNoSaturate>(999u + F::kManBits);
}

#if FQ_HAS_XSIMD
TEMPLATE_TEST_CASE("minifloat: SIMD casts bit-identical to the scalar reference",
                   "[formats][minifloat][simd]", fq::FloatE4M3, fq::FloatE5M2, fq::FloatE2M3,
                   fq::FloatE3M2, fq::FloatE2M1) {
  using F = TestType;
  check_simd_twins<F, fq::FpSaturate>(77u);
  if constexpr (F::kHasNaN) check_simd_twins<F, fq::FpNoSaturate>(78u);
}
#endif
