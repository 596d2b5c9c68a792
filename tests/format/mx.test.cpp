// SPDX-License-Identifier: MIT
// tests/format/mx.test.cpp: the E8M0 shared scale (format/e8m0.hpp), MX block fake
// quantization (kernels/mx_fake_quantize.hpp, scalar and SIMD) and fq::MxFakeQuantizer with its
// presets, against hand-computed cases and an independent reference (frexp/ldexp scaling and a
// nearest-value search in each element format's value table).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include <catch2/catch.hpp>

#include <fakequant/format/e8m0.hpp>
#include <fakequant/kernels/mx_fake_quantize.hpp>
#include <fakequant/quantizer/mx_quantizer.hpp>
#include <fakequant/testing/check_gradients.hpp>
#include <fakequant/testing/check_quantizer.hpp>

#include "test_util.hpp"

namespace {

using fq_test::kInf;
using fq_test::kNaN;

// ---- the independent reference ----

/// The non-negative values of an element format, sorted, built from its definition (not from
/// the library): subnormals m * 2^(1-bias-M), normals (2^M + m) * 2^(e-M), up to `max`.
std::vector<double> float_table(int ebits, int mbits, double max) {
  std::vector<double> t;
  const int bias = (1 << (ebits - 1)) - 1;
  for (int m = 0; m < (1 << mbits); ++m) t.push_back(std::ldexp(m, 1 - bias - mbits));
  for (int e = 1 - bias; e < 64; ++e)
    for (int m = 0; m < (1 << mbits); ++m) {
      const double v = std::ldexp((1 << mbits) + m, e - mbits);
      if (v > max) return t;
      t.push_back(v);
    }
  return t;
}

struct RefElem {
  std::vector<double> table;
  int emax;
  int mbits;
  double max;
};

template <class E>
RefElem ref_elem();
template <>
RefElem ref_elem<fq::FloatE4M3>() {
  return {float_table(4, 3, 448), 8, 3, 448};
}
template <>
RefElem ref_elem<fq::FloatE5M2>() {
  return {float_table(5, 2, 57344), 15, 2, 57344};
}
template <>
RefElem ref_elem<fq::FloatE2M3>() {
  return {float_table(2, 3, 7.5), 2, 3, 7.5};
}
template <>
RefElem ref_elem<fq::FloatE3M2>() {
  return {float_table(3, 2, 28), 4, 2, 28};
}
template <>
RefElem ref_elem<fq::FloatE2M1>() {
  return {float_table(2, 1, 6), 2, 1, 6};
}
template <>
RefElem ref_elem<fq::MxInt8Element>() {
  std::vector<double> t;
  for (int m = 0; m <= 127; ++m) t.push_back(m / 64.0);
  return {t, 0, 6, 127 / 64.0};
}

using fq_test::nearest_even;

int floor_log2(double a) {  // a > 0
  int e;
  std::frexp(a, &e);
  return e - 1;
}
int ceil_log2(double a) {  // a > 0
  int e;
  const double m = std::frexp(a, &e);
  return m == 0.5 ? e - 1 : e;
}

enum class Mode { kFloor, kCeil, kEven, kRceil };

/// The reference E8M0 code of a block (255 for NaN/Inf); for CEIL and EVEN amax must be 0 or
/// normal (the library reads a subnormal amax's exponent as -127, as TorchAO: hand-tested).
int ref_code(const float* x, int B, const RefElem& el, Mode mode) {
  double amax = 0;
  for (int i = 0; i < B; ++i) {
    if (!std::isfinite(x[i])) return 255;
    amax = std::max(amax, std::fabs(static_cast<double>(x[i])));
  }
  int s;
  if (mode == Mode::kRceil) {
    const float d = static_cast<float>(amax) * (1.0f / static_cast<float>(el.max));
    s = d == 0 ? -127 : ceil_log2(d);
  } else if (amax == 0) {
    s = -127;
  } else if (mode == Mode::kFloor) {
    s = floor_log2(amax) - el.emax;
  } else if (mode == Mode::kCeil) {
    s = ceil_log2(amax) - el.emax;
  } else {  // EVEN: amax rounded half-up to mbits mantissa bits, then floor
    const int f = floor_log2(amax);
    const double m = std::ldexp(amax, -f);  // [1, 2)
    const double r = std::floor(std::ldexp(m, el.mbits) + 0.5);
    s = (r >= std::ldexp(2.0, el.mbits) ? f + 1 : f) - el.emax;
  }
  return std::min(127, std::max(-127, s)) + 127;
}

/// Reference block: y and mask from the code.
void ref_block(const float* x, float* y, bool* m, int B, const RefElem& el, int code) {
  for (int i = 0; i < B; ++i) {
    if (code == 255) {
      y[i] = kNaN;
      m[i] = false;
      continue;
    }
    const double v = std::ldexp(static_cast<double>(x[i]), 127 - code);
    const double p = nearest_even(el.table, std::fabs(v));
    y[i] = static_cast<float>(std::ldexp(std::signbit(x[i]) ? -p : p, code - 127));
    m[i] = std::fabs(v) <= el.max;
  }
}

/// Random blocks spanning many binades, with zeros, table values, ties and -0.
std::vector<float> random_blocks(std::int64_t nblocks, int B, std::uint32_t seed, int kmin,
                                 const RefElem& el) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<float> x(static_cast<std::size_t>(nblocks * B));
  for (std::int64_t b = 0; b < nblocks; ++b) {
    const int k = kmin + static_cast<int>(rng() % static_cast<unsigned>(120 - kmin));
    const int spread = static_cast<int>(rng() % 24);
    for (int i = 0; i < B; ++i) {
      double v;
      const std::size_t t = rng() % el.table.size();
      switch (rng() % 8) {
        case 0:
          v = std::ldexp(el.table[t], k);  // a table value at the block's scale
          break;
        case 1:
          v = std::ldexp((el.table[t] + el.table[std::min(t + 1, el.table.size() - 1)]) / 2, k);
          break;  // a tie
        case 2:
          v = rng() % 4 ? std::ldexp(u(rng) * 8, k) : 0.0;
          break;
        default:
          v = std::ldexp(1 + u(rng),
                         k - static_cast<int>(rng() % static_cast<unsigned>(spread + 1)));
      }
      x[static_cast<std::size_t>(b * B + i)] = static_cast<float>(rng() % 2 ? -v : v);
    }
  }
  return x;
}

template <class E, class M>
void check_against_reference(Mode mode, std::int64_t nblocks, std::uint32_t seed) {
  constexpr int B = 32;
  const RefElem el = ref_elem<E>();
  const int kmin = mode == Mode::kCeil || mode == Mode::kEven ? -110 : -150;
  const std::vector<float> x = random_blocks(nblocks, B, seed, kmin, el);
  std::vector<float> y(x.size()), ys(x.size()), yr(x.size());
  std::vector<std::uint8_t> e, es;
  fq::Mask mask, masks;
  fq::TensorView<const float> xv(x.data(), {nblocks, B});
  fq::mx_fake_quantize<E, M>(xv, fq::TensorView<float>(y.data(), {nblocks, B}), B, e, true, &mask);
  fq::mx_fake_quantize<E, M>(xv, fq::TensorView<float>(ys.data(), {nblocks, B}), B, es, true,
                             &masks, fq::Isa::kScalar);
  std::int64_t bad = 0;
  std::unique_ptr<bool[]> mr(new bool[B]);
  for (std::int64_t b = 0; b < nblocks && bad < 5; ++b) {
    const float* xb = x.data() + b * B;
    const int code = ref_code(xb, B, el, mode);
    ref_block(xb, yr.data() + b * B, mr.get(), B, el, code);
    if (e[static_cast<std::size_t>(b)] != code) {
      INFO("block " << b << " code " << int{e[static_cast<std::size_t>(b)]} << " ref " << code);
      CHECK(false);
      ++bad;
    }
    for (int i = 0; i < B; ++i) {
      const std::int64_t k = b * B + i;
      if (fq_test::bits_of(y[static_cast<std::size_t>(k)]) !=
              fq_test::bits_of(yr[static_cast<std::size_t>(k)]) ||
          mask.test_linear(k) != mr[static_cast<std::size_t>(i)]) {
        INFO("element " << k << " x " << xb[i] << " y " << y[static_cast<std::size_t>(k)] << " ref "
                        << yr[static_cast<std::size_t>(k)] << " code " << code);
        CHECK(false);
        ++bad;
      }
    }
  }
  CHECK(bad == 0);
  CHECK(fq_test::first_bit_mismatch(y, ys) == -1);
  CHECK(e == es);
  CHECK(mask.words() == masks.words());
}

template <class E, class M = fq::E8m0Floor>
std::vector<float> mx_run(std::vector<float> x, std::int64_t rows, std::int64_t cols,
                          std::vector<std::uint8_t>* codes = nullptr, fq::Mask* mask = nullptr,
                          fq::Isa path = fq::Isa::kAuto) {
  std::vector<float> y(x.size());
  std::vector<std::uint8_t> e;
  fq::mx_fake_quantize<E, M>(fq::TensorView<const float>(x.data(), {rows, cols}),
                             fq::TensorView<float>(y.data(), {rows, cols}), 32, e, true, mask,
                             path);
  if (codes) *codes = e;
  return y;
}

std::vector<float> block_with(std::initializer_list<float> head, float fill = 0.0f) {
  std::vector<float> b(32, fill);
  std::copy(head.begin(), head.end(), b.begin());
  return b;
}

}  // namespace

TEST_CASE("E8M0 codes decode to 2^(b-127), 0xFF is NaN", "[formats][mx]") {
  CHECK(fq::e8m0_to_float(127) == 1.0f);
  CHECK(fq::e8m0_to_float(0) == static_cast<float>(std::ldexp(1.0, -127)));
  CHECK(fq::e8m0_to_float(1) == static_cast<float>(std::ldexp(1.0, -126)));
  CHECK(fq::e8m0_to_float(254) == static_cast<float>(std::ldexp(1.0, 127)));
  CHECK(std::isnan(fq::e8m0_to_float(255)));
  for (int b = 0; b <= 254; ++b) {
    const auto c = static_cast<std::uint8_t>(b);
    CHECK(fq::e8m0_to_float(c) == static_cast<float>(std::ldexp(1.0, b - 127)));
    CHECK(fq::e8m0_reciprocal(c) == static_cast<float>(std::ldexp(1.0, 127 - b)));
  }
  CHECK(std::isnan(fq::e8m0_reciprocal(255)));
}

TEST_CASE("E8M0 exponent selection: hand cases for every mode", "[formats][mx]") {
  using fq::FloatE2M1;
  const float sub = 1e-40f, fmax = std::numeric_limits<float>::max();
  // FLOOR (the spec): floor(log2 amax) - emax_elem, emax = 2 for E2M1.
  CHECK(fq::e8m0_from_amax<FloatE2M1>(6.0f) == 127);   // 2 - 2
  CHECK(fq::e8m0_from_amax<FloatE2M1>(4.0f) == 127);   // exact power of two
  CHECK(fq::e8m0_from_amax<FloatE2M1>(7.99f) == 127);  // just below 8: clips to 6
  CHECK(fq::e8m0_from_amax<FloatE2M1>(8.0f) == 128);
  CHECK(fq::e8m0_from_amax<FloatE2M1>(1.0f) == 125);
  CHECK(fq::e8m0_from_amax<FloatE2M1>(0.0f) == 0);  // clamped to 2^-127
  CHECK(fq::e8m0_from_amax<FloatE2M1>(sub) == 0);
  CHECK(fq::e8m0_from_amax<FloatE2M1>(fmax) == 252);  // 127 - 2
  CHECK(fq::e8m0_from_amax<FloatE2M1>(kNaN) == 255);
  CHECK(fq::e8m0_from_amax<FloatE2M1>(kInf) == 255);
  CHECK(fq::e8m0_from_amax<fq::FloatE4M3>(448.0f) == 127);  // 8 - 8
  CHECK(fq::e8m0_from_amax<fq::FloatE4M3>(1.0f) == 119);
  CHECK(fq::e8m0_from_amax<fq::FloatE5M2>(57344.0f) == 127);  // 15 - 15
  CHECK(fq::e8m0_from_amax<fq::FloatE2M3>(7.5f) == 127);
  CHECK(fq::e8m0_from_amax<fq::FloatE3M2>(28.0f) == 127);
  CHECK(fq::e8m0_from_amax<fq::MxInt8Element>(1.5f) == 127);              // emax 0
  CHECK(fq::e8m0_from_amax<fq::MxInt8Element>(fmax) == 254);              // 127 - 0
  CHECK(fq::e8m0_from_amax<fq::FloatE4M3>(std::ldexp(1.0f, -120)) == 0);  // -128 clamped
  // CEIL: ceil(log2 amax) - emax.
  using Ceil = fq::E8m0Ceil;
  CHECK(fq::e8m0_from_amax<FloatE2M1, Ceil>(6.0f) == 128);
  CHECK(fq::e8m0_from_amax<FloatE2M1, Ceil>(4.0f) == 127);
  CHECK(fq::e8m0_from_amax<FloatE2M1, Ceil>(8.0f) == 128);
  CHECK(fq::e8m0_from_amax<FloatE2M1, Ceil>(0.0f) == 0);
  CHECK(fq::e8m0_from_amax<FloatE2M1, Ceil>(sub) == 0);
  CHECK(fq::e8m0_from_amax<FloatE2M1, Ceil>(fmax) == 253);          // 128 - 2
  CHECK(fq::e8m0_from_amax<fq::MxInt8Element, Ceil>(fmax) == 254);  // 128 clamped to 127
  CHECK(fq::e8m0_from_amax<fq::MxInt8Element, Ceil>(sub) == 1);     // exponent read as -127, +1
  CHECK(fq::e8m0_from_amax<FloatE2M1, Ceil>(kNaN) == 255);
  // EVEN: amax rounded (half up) to the element's mantissa width, then floor.
  using Even = fq::E8m0Even;
  CHECK(fq::e8m0_from_amax<FloatE2M1, Even>(6.0f) == 127);  // 1.5 * 4 stays
  CHECK(fq::e8m0_from_amax<FloatE2M1, Even>(7.0f) == 128);  // 1.75 * 4 rounds to 8
  CHECK(fq::e8m0_from_amax<FloatE2M1, Even>(6.99f) == 127);
  CHECK(fq::e8m0_from_amax<fq::FloatE4M3, Even>(496.0f) == 128);  // 1.9375 * 256 -> 512
  CHECK(fq::e8m0_from_amax<fq::FloatE4M3, Even>(495.0f) == 127);
  CHECK(fq::e8m0_from_amax<fq::FloatE4M3, Even>(480.0f) == 127);  // 1.875: 3 bits already
  CHECK(fq::e8m0_from_amax<FloatE2M1, Even>(0.0f) == 0);
  CHECK(fq::e8m0_from_amax<FloatE2M1, Even>(fmax) == 253);  // rounds up to 2^128: finite here
  CHECK(fq::e8m0_from_amax<FloatE2M1, Even>(kInf) == 255);
  // RCEIL: the smallest power of two >= amax * f32(1 / elem_max).
  using Rceil = fq::E8m0Rceil;
  CHECK(fq::e8m0_from_amax<FloatE2M1, Rceil>(6.0f) == 127);  // 6 * f32(1/6) rounds to 1
  CHECK(fq::e8m0_from_amax<FloatE2M1, Rceil>(6.5f) == 128);
  CHECK(fq::e8m0_from_amax<FloatE2M1, Rceil>(12.0f) == 128);
  CHECK(fq::e8m0_from_amax<FloatE2M1, Rceil>(3.0f) == 126);
  CHECK(fq::e8m0_from_amax<fq::FloatE4M3, Rceil>(448.0f) == 127);
  CHECK(fq::e8m0_from_amax<FloatE2M1, Rceil>(0.0f) == 0);
  CHECK(fq::e8m0_from_amax<FloatE2M1, Rceil>(kNaN) == 255);
  // D in (2^-127, 2^-126) gives 2^-126 (code 1); D <= 2^-127 gives code 0.
  CHECK(fq::e8m0_from_amax<fq::MxInt8Element, Rceil>(std::ldexp(3.0f, -127)) ==
        1);  // D 1.51*2^-127
  CHECK(fq::e8m0_from_amax<fq::MxInt8Element, Rceil>(std::ldexp(1.5f, -127)) ==
        0);  // D 0.76*2^-127
  CHECK(fq::e8m0_from_amax<FloatE2M1, Rceil>(std::ldexp(1.0f, -140)) == 0);
}

TEST_CASE("MX blocks at their amax: exact at elem_max * 2^k, clip just below the next binade",
          "[formats][mx]") {
  for (int k : {-130, -20, 0, 7, 100}) {
    const float X = std::ldexp(1.0f, k);
    // MXFP4: every E2M1 value times 2^k is reproduced exactly, the scale is 2^k.
    std::vector<float> x = block_with({6 * X, -4 * X, 3 * X, -2 * X, 1.5f * X, -X, 0.5f * X});
    std::vector<std::uint8_t> code;
    fq::Mask mask;
    std::vector<float> y = mx_run<fq::FloatE2M1>(x, 1, 32, &code, &mask);
    CHECK(int{code[0]} == std::max(0, k + 127));
    if (k >= -127) {
      CHECK(y == x);
      CHECK(mask.count() == 32);
    }
    // Just below 8 * 2^k: FLOOR keeps 2^k and the amax element saturates to 6 * 2^k (the spec),
    // its mask bit off; CEIL takes 2^(k+1) and rounds it to 8 * 2^k.
    const float below = std::nextafter(8 * X, 0.0f);
    if (k > -120) {
      x = block_with({below, X});
      y = mx_run<fq::FloatE2M1>(x, 1, 32, &code, &mask);
      CHECK(y[0] == 6 * X);
      CHECK(y[1] == X);
      CHECK_FALSE(mask.test_linear(0));
      CHECK(mask.test_linear(1));
      y = mx_run<fq::FloatE2M1, fq::E8m0Ceil>(x, 1, 32, &code, &mask);
      CHECK(int{code[0]} == k + 128);
      CHECK(y[0] == 8 * X);
      CHECK(mask.test_linear(0));
    }
    // MXFP8 E4M3: 448 * 2^k exact; 500 * 2^k saturates to 448 * 2^k.
    if (k > -100) {
      x = block_with({448 * X, 500 * X / 2});
      y = mx_run<fq::FloatE4M3>(x, 1, 32, &code);
      CHECK(y[0] == 448 * X);
      CHECK(y[1] == 256 * X);  // 250 rounds to 256 (spacing 16 at 2^7)
      x = block_with({500 * X, 3 * X});
      y = mx_run<fq::FloatE4M3>(x, 1, 32, &code);
      CHECK(y[0] == 448 * X);
      CHECK(y[1] == 3 * X);
    }
  }
  // MXINT8: amax 1.5 -> X = 1, elements round to multiples of 2^-6, ties to even.
  std::vector<float> x = block_with({1.5f, 1.99f, -0.5f / 64, 1.5f / 64, 2.5f / 64, -0.3f});
  std::vector<std::uint8_t> code;
  std::vector<float> y = mx_run<fq::MxInt8Element>(x, 1, 32, &code);
  CHECK(code[0] == 127);
  CHECK(y[0] == 1.5f);
  CHECK(y[1] == 1.984375f);  // 127.36 -> 127: saturates at 1 63/64
  CHECK(y[2] == 0.0f);
  CHECK(std::signbit(y[2]));   // -0.5 -> -0 (ties to even, sign kept)
  CHECK(y[3] == 2.0f / 64);    // 1.5 -> 2
  CHECK(y[4] == 2.0f / 64);    // 2.5 -> 2
  CHECK(y[5] == -19.0f / 64);  // -19.2 -> -19
  // amax 1.999 -> X = 1, 1.999 * 64 = 127.9 saturates to 127 (never -128 / -2: symmetric).
  x = block_with({-1.999f, 1.0f});
  y = mx_run<fq::MxInt8Element>(x, 1, 32, &code);
  CHECK(y[0] == -1.984375f);
}

TEST_CASE("MX blocks with NaN or Inf are NaN; all-zero blocks are zero", "[formats][mx]") {
  std::vector<float> x(4 * 32, 0.25f);
  x[3] = kNaN;                                                                          // block 0
  x[32 + 31] = -kInf;                                                                   // block 1
  for (int i = 64; i < 96; ++i) x[static_cast<std::size_t>(i)] = i % 2 ? 0.0f : -0.0f;  // block 2
  for (fq::Isa path : {fq::Isa::kAuto, fq::Isa::kScalar}) {
    std::vector<std::uint8_t> code;
    fq::Mask mask;
    const std::vector<float> y = mx_run<fq::FloatE4M3>(x, 2, 64, &code, &mask, path);
    CHECK(code == std::vector<std::uint8_t>{255, 255, 0, 117});  // 0.25: -2 - 8
    for (int i = 0; i < 64; ++i) {
      CHECK(fq_test::bits_of(y[static_cast<std::size_t>(i)]) == fq_test::bits_of(kNaN));
      CHECK_FALSE(mask.test_linear(i));
    }
    for (int i = 64; i < 96; ++i) {
      CHECK(fq_test::bits_of(y[static_cast<std::size_t>(i)]) ==
            fq_test::bits_of(x[static_cast<std::size_t>(i)]));  // +-0 kept
      CHECK(mask.test_linear(i));
    }
    for (int i = 96; i < 128; ++i) CHECK(y[static_cast<std::size_t>(i)] == 0.25f);
  }
}

TEST_CASE("MX matches the independent reference on random blocks, every element and mode",
          "[formats][mx]") {
  using fq::E8m0Floor;
  // >= 10^5 random blocks in all (3.6 * 10^6 elements).
  check_against_reference<fq::FloatE2M1, E8m0Floor>(Mode::kFloor, 30000, 1);
  check_against_reference<fq::FloatE4M3, E8m0Floor>(Mode::kFloor, 20000, 2);
  check_against_reference<fq::FloatE5M2, E8m0Floor>(Mode::kFloor, 15000, 3);
  check_against_reference<fq::FloatE2M3, E8m0Floor>(Mode::kFloor, 10000, 4);
  check_against_reference<fq::FloatE3M2, E8m0Floor>(Mode::kFloor, 10000, 5);
  check_against_reference<fq::MxInt8Element, E8m0Floor>(Mode::kFloor, 10000, 6);
  check_against_reference<fq::FloatE2M1, fq::E8m0Ceil>(Mode::kCeil, 5000, 7);
  check_against_reference<fq::MxInt8Element, fq::E8m0Ceil>(Mode::kCeil, 3000, 8);
  check_against_reference<fq::FloatE2M1, fq::E8m0Even>(Mode::kEven, 5000, 9);
  check_against_reference<fq::FloatE4M3, fq::E8m0Even>(Mode::kEven, 3000, 10);
  check_against_reference<fq::FloatE2M1, fq::E8m0Rceil>(Mode::kRceil, 5000, 11);
  check_against_reference<fq::FloatE4M3, fq::E8m0Rceil>(Mode::kRceil, 3000, 12);
}

TEST_CASE("MX SIMD path is bit-identical to the scalar reference on adversarial data",
          "[formats][mx][simd]") {
  std::mt19937 rng(77);
  const float specials[] = {0.0f, -0.0f, kNaN,  kInf, -kInf,  1e-45f,   -1e-40f,  3.4e38f,
                            6.0f, 5.0f,  0.25f, 7.0f, 448.0f, 57344.0f, 1.0f / 64};
  const std::int64_t rows = 37, cols = 96;
  std::vector<float> x(static_cast<std::size_t>(rows * cols));
  for (auto& v : x) {
    const unsigned r = rng() % 4;
    if (r == 0)
      v = specials[rng() % (sizeof specials / sizeof specials[0])];
    else if (r == 1)
      v = fq_test::float_from_bits(static_cast<std::uint32_t>(rng()));  // any bit pattern
    else
      v = std::ldexp(static_cast<float>(rng() % 4096) / 256.0f - 8.0f,
                     static_cast<int>(rng() % 40) - 20);
  }
  auto both = [&](auto elem, auto mode) {
    using E = decltype(elem);
    using M = decltype(mode);
    std::vector<std::uint8_t> ca, cs;
    fq::Mask ma, ms;
    const auto ya = mx_run<E, M>(x, rows, cols, &ca, &ma, fq::Isa::kAuto);
    const auto ys = mx_run<E, M>(x, rows, cols, &cs, &ms, fq::Isa::kScalar);
    CHECK(fq_test::first_bit_mismatch(ya, ys) == -1);
    CHECK(ca == cs);
    CHECK(ma.words() == ms.words());
  };
  both(fq::FloatE2M1{}, fq::E8m0Floor{});
  both(fq::FloatE4M3{}, fq::E8m0Ceil{});
  both(fq::FloatE5M2{}, fq::E8m0Even{});
  both(fq::FloatE2M3{}, fq::E8m0Rceil{});
  both(fq::FloatE3M2{}, fq::E8m0Floor{});
  both(fq::MxInt8Element{}, fq::E8m0Floor{});
  both(fq::MxInt8Element{}, fq::E8m0Rceil{});
}

TEST_CASE("MxFakeQuantizer: dynamic, frozen, layouts, errors, in place, backward",
          "[formats][mx]") {
  fq::MxFp4 q;
  CHECK(q.dynamic());
  std::vector<float> x(3 * 64), y(x.size());
  for (std::size_t i = 0; i < x.size(); ++i)
    x[i] = std::sin(static_cast<float>(i)) * float(i % 7 + 1);
  fq::Mask mask;
  q.forward(fq::TensorView<const float>(x.data(), {3, 64}),
            fq::TensorView<float>(y.data(), {3, 64}), &mask);
  REQUIRE(q.scale_exponents().size() == 6);  // [3, 64 / 32], row-major
  for (std::size_t b = 0; b < 6; ++b)
    CHECK(q.scale_exponents()[b] == fq::e8m0_from_amax<fq::FloatE2M1>([&] {
            float a = 0;
            for (std::size_t i = b * 32; i < b * 32 + 32; ++i) a = std::max(a, std::fabs(x[i]));
            return a;
          }()));
  CHECK(q.scales()[0] == fq::e8m0_to_float(q.scale_exponents()[0]));
  // In place gives the same bits.
  std::vector<float> z = x;
  q.forward(fq::TensorView<const float>(z.data(), {3, 64}),
            fq::TensorView<float>(z.data(), {3, 64}));
  CHECK(fq_test::first_bit_mismatch(z, y) == -1);
  // Backward: dx = dy * mask.
  std::vector<float> dy(x.size(), 2.0f), dx(x.size());
  q.backward(fq::TensorView<const float>(dy.data(), {3, 64}), mask,
             fq::TensorView<float>(dx.data(), {3, 64}));
  for (std::int64_t i = 0; i < 192; ++i)
    CHECK(dx[static_cast<std::size_t>(i)] == (mask.test_linear(i) ? 2.0f : 0.0f));
  // Frozen: the scales stay while x changes.
  q.freeze();
  CHECK_FALSE(q.dynamic());
  const std::vector<std::uint8_t> frozen = q.scale_exponents();
  std::vector<float> x2 = x;
  for (auto& v : x2) v *= 16.0f;
  q.forward(fq::TensorView<const float>(x2.data(), {3, 64}),
            fq::TensorView<float>(y.data(), {3, 64}));
  CHECK(q.scale_exponents() == frozen);
  for (std::size_t i = 0; i < y.size(); ++i)
    CHECK(std::fabs(y[i]) <= 6.0f * q.scales()[i / 32]);  // saturated at the frozen scale
  CHECK(std::fabs(y[7]) == 6.0f * q.scales()[0]);
  CHECK(fq_test::error_code_of([&] {
          q.forward(fq::TensorView<const float>(x.data(), {2, 96}),
                    fq::TensorView<float>(y.data(), {2, 96}));
        }) == fq::ErrorCode::kShapeMismatch);
  q.unfreeze();
  CHECK(q.dynamic());
  q.forward(fq::TensorView<const float>(x2.data(), {3, 64}),
            fq::TensorView<float>(y.data(), {3, 64}));
  CHECK(q.scale_exponents()[0] == frozen[0] + 4);
  // Errors.
  CHECK(fq_test::error_code_of([&] {
          q.forward(fq::TensorView<const float>(x.data(), {4, 48}),
                    fq::TensorView<float>(y.data(), {4, 48}));
        }) == fq::ErrorCode::kShapeMismatch);  // 48 is not a multiple of 32
  fq::MxFp8E4M3 r;
  CHECK(fq_test::error_code_of([&] { r.freeze(); }) == fq::ErrorCode::kInvalidState);
  CHECK(fq_test::error_code_of([&] {
          r.set_scale_exponents({2, 64}, {127, 127, 127});
        }) == fq::ErrorCode::kParamCountMismatch);
  CHECK(fq_test::error_code_of([&] {
          r.set_scale_exponents({2, 64}, {127, 255, 127, 1});
        }) == fq::ErrorCode::kInvalidScale);
  CHECK(fq_test::error_code_of([&] {
          r.set_scales({1, 32}, {3.0f});
        }) == fq::ErrorCode::kInvalidScale);
  CHECK(fq_test::error_code_of([&] {
          r.set_scales({1, 32}, {0.0f});
        }) == fq::ErrorCode::kInvalidScale);
  CHECK(fq_test::error_code_of([&] {
          r.set_scales({1, 32}, {-2.0f});
        }) == fq::ErrorCode::kInvalidScale);
  CHECK(fq_test::error_code_of([&] {
          r.set_scales({1, 32}, {kNaN});
        }) == fq::ErrorCode::kInvalidScale);
  CHECK(fq_test::error_code_of([&] {
          r.set_scales({1, 33}, {1.0f, 1.0f});
        }) == fq::ErrorCode::kShapeMismatch);
  r.set_scales({1, 32}, {static_cast<float>(std::ldexp(1.0, -127))});
  CHECK(r.scale_exponents()[0] == 0);
  r.set_scales({1, 32}, {0.5f});
  CHECK(r.scale_exponents()[0] == 126);
  std::vector<float> a = block_with({100.0f, 0.3f}), b(32);
  r.forward(fq::TensorView<const float>(a.data(), {1, 32}),
            fq::TensorView<float>(b.data(), {1, 32}));
  CHECK(b[0] == 96.0f);    // 200 at X = 0.5: a tie between 192 (even) and 208 in E4M3
  CHECK(b[1] == 0.3125f);  // 0.6 -> 0.625
  // A NaN block cannot be frozen.
  fq::MxInt8 s;
  a[5] = kNaN;
  s.forward(fq::TensorView<const float>(a.data(), {1, 32}),
            fq::TensorView<float>(b.data(), {1, 32}));
  CHECK(fq_test::error_code_of([&] { s.freeze(); }) == fq::ErrorCode::kNonFiniteInput);
  // Empty tensors are fine.
  fq::MxFp6E2M3 e;
  e.forward(fq::TensorView<const float>(a.data(), {0, 32}),
            fq::TensorView<float>(b.data(), {0, 32}));
  CHECK(e.scale_exponents().empty());
}

namespace {
template <class Q>
void run_kit(Q& q, const RefElem& el, std::uint32_t seed, double abs_tol = 1e-6) {
  const std::int64_t nblocks = 6;
  std::vector<std::uint8_t> codes;
  for (std::int64_t b = 0; b < nblocks; ++b)
    codes.push_back(static_cast<std::uint8_t>(120 + 3 * b));
  q.set_scale_exponents({nblocks, 32}, codes);
  std::vector<std::vector<double>> levels;
  for (std::uint8_t c : codes) {
    std::vector<double> lv;
    for (double v : el.table) {
      lv.push_back(std::ldexp(v, c - 127));
      lv.push_back(-std::ldexp(v, c - 127));
    }
    levels.push_back(lv);
  }
  fq::testing::QuantizerCheckOptions opt;
  opt.grid = fq::testing::Grid::per_channel(levels, 0);
  opt.shape = {nblocks, 32};
  opt.non_finite = fq::testing::NonFinite::kNaNPropagates;
  opt.seed = seed;
  const auto r = fq::testing::check_quantizer(q, opt);
  INFO(r.report());
  CHECK(r.passed());
  fq::testing::GradientCheckOptions g;
  g.grid = opt.grid;
  g.shape = opt.shape;
  g.seed = seed;
  g.abs_tol = abs_tol;
  const auto rg = fq::testing::check_gradients(q, g);
  INFO(rg.report());
  CHECK(rg.passed());
  CHECK(rg.checked("gradient_dx") > 0);
}
}  // namespace

TEST_CASE("MX quantizers pass the testing kit (frozen, one block per channel)",
          "[formats][mx][testing_kit]") {
  fq::MxFp4 a;
  run_kit(a, ref_elem<fq::FloatE2M1>(), 1);
  fq::MxFp8E4M3 b;
  run_kit(b, ref_elem<fq::FloatE4M3>(), 2);
  fq::MxFp8E5M2 c;
  // E5M2's levels span 2^32 in one channel: the finite difference of sum(dy * y) at its
  // smallest cells carries ~1e-9 of summation rounding, ~1e-5 in dx.
  run_kit(c, ref_elem<fq::FloatE5M2>(), 3, 1e-3);
  fq::MxFp6E2M3 d;
  run_kit(d, ref_elem<fq::FloatE2M3>(), 4);
  fq::MxFp6E3M2 e;
  run_kit(e, ref_elem<fq::FloatE3M2>(), 5);
  fq::MxInt8 f;
  run_kit(f, ref_elem<fq::MxInt8Element>(), 6);
}
