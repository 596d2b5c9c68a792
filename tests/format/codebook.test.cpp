// SPDX-License-Identifier: MIT
// tests/format/codebook.test.cpp: fq::Codebook (NF4, user, power-of-two and log level sets),
// codebook fake quantization (block absmax, per tensor; scalar and SIMD) and
// fq::CodebookFakeQuantizer with its presets.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <fakequant/format/codebook.hpp>
#include <fakequant/kernels/codebook_fake_quantize.hpp>
#include <fakequant/ops/fake_quant.hpp>
#include <fakequant/ops/ops.hpp>
#include <fakequant/quantizer/codebook_quantizer.hpp>
#include <fakequant/tape/tape.hpp>
#include <fakequant/testing/check_gradients.hpp>
#include <fakequant/testing/check_quantizer.hpp>

#include "test_util.hpp"

namespace {

using fq::Codebook;
using fq::ErrorCode;
using fq::Isa;
using fq_test::bits_of;
using fq_test::error_code_of;
using fq_test::error_message_of;

using fq_test::kInf;
using fq_test::kNaN;

// The NF4 levels as printed in the QLoRA paper (arXiv:2305.14314, appendix E) and in
// bitsandbytes' get_4bit_type('nf4'), typed here again as double literals: each is the exact
// value of a float32.
const double kNf4Paper[16] = {-1.0,
                              -0.6961928009986877,
                              -0.5250730514526367,
                              -0.39491748809814453,
                              -0.28444138169288635,
                              -0.18477343022823334,
                              -0.09105003625154495,
                              0.0,
                              0.07958029955625534,
                              0.16093020141124725,
                              0.24611230194568634,
                              0.33791524171829224,
                              0.44070982933044434,
                              0.5626170039176941,
                              0.7229568362236023,
                              1.0};

// Inverse of the standard normal CDF by bisection on erfc (independent of any table).
double norm_ppf(double p) {
  double lo = -10, hi = 10;
  for (int i = 0; i < 200; ++i) {
    const double mid = (lo + hi) / 2;
    (0.5 * std::erfc(-mid / std::sqrt(2.0)) < p ? lo : hi) = mid;
  }
  return (lo + hi) / 2;
}

// Exact "b is strictly nearer to v than a" for a < b (float v, a, b), in __float128 (the sums
// below are exact for the level sets of these tests).
bool strictly_nearer(float v, float a, float b) {
  if (v <= a) return false;
  if (v >= b) return true;
  return __float128(2) * __float128(v) > __float128(a) + __float128(b);
}
// Brute force: argmin over all levels of |v - L[k]|, the lowest index on ties.
std::size_t reference_index(const std::vector<float>& L, float v) {
  std::size_t best = 0;
  for (std::size_t k = 1; k < L.size(); ++k)
    if (strictly_nearer(v, L[best], L[k])) best = k;
  return best;
}

// Random floats: uniform in [-r, r], levels, exact midpoints +- 1 ulp, random bit patterns
// (subnormals, huge, +-Inf, NaN), +-0.
std::vector<float> make_inputs(const std::vector<float>& L, std::size_t n, float r,
                               std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-r, r);
  std::vector<float> x(n);
  for (auto& v : x) {
    const std::size_t k = rng() % (L.size() - 1);
    const double m = (double(L[k]) + double(L[k + 1])) / 2;
    switch (rng() % 8) {
      case 0:
        v = L[rng() % L.size()];
        break;
      case 1: {
        const float f = static_cast<float>(m);
        const int d = static_cast<int>(rng() % 3) - 1;
        v = d == 0 ? f : std::nextafter(f, d > 0 ? kInf : -kInf);
        break;
      }
      case 2:
        v = fq_test::float_from_bits(static_cast<std::uint32_t>(rng()));
        break;
      case 3:
        v = (rng() % 2 ? 1.0f : -1.0f) * fq_test::float_from_bits(rng() % 0x00800000u);
        break;
      case 4: {
        const float specials[6] = {0.0f, -0.0f, kInf, -kInf, kNaN, -kNaN};
        v = specials[rng() % 6];
        break;
      }
      default:
        v = u(rng);
        break;
    }
  }
  return x;
}

fq::TensorView<const float> cview(const std::vector<float>& v,
                                  std::initializer_list<std::int64_t> s) {
  return fq::TensorView<const float>(v.data(), s);
}
fq::TensorView<float> view(std::vector<float>& v, std::initializer_list<std::int64_t> s) {
  return fq::TensorView<float>(v.data(), s);
}

// Levels times a block scale, as the kernels compute them (one float product).
std::vector<double> scaled_levels(const Codebook& b, float s) {
  std::vector<double> out;
  for (float l : b.levels()) out.push_back(double(l * s));
  return out;
}

}  // namespace

TEST_CASE("codebook: the NF4 table is QLoRA's", "[formats][codebook]") {
  for (int i = 0; i < 16; ++i) REQUIRE(double(fq::kNf4Levels[i]) == kNf4Paper[i]);
  // QLoRA's construction (bitsandbytes create_normal_map, offset 0.9677083): the quantiles of
  // N(0, 1) at 8 equal steps from offset to 1/2 (positive side), 7 (negative side), and 0,
  // normalized to max 1.
  const double offset = 0.9677083, top = norm_ppf(offset);
  std::vector<double> derived;
  for (int i = 0; i < 7; ++i) derived.push_back(-norm_ppf(offset + (0.5 - offset) * i / 7) / top);
  derived.push_back(0.0);
  for (int i = 7; i >= 0; --i) derived.push_back(norm_ppf(offset + (0.5 - offset) * i / 8) / top);
  std::sort(derived.begin(), derived.end());
  for (int i = 0; i < 16; ++i) CHECK(std::fabs(derived[std::size_t(i)] - kNf4Paper[i]) < 1e-6);
  const Codebook nf4 = Codebook::nf4();
  REQUIRE(nf4.size() == 16);
  CHECK(nf4.min_level() == -1.0f);
  CHECK(nf4.max_level() == 1.0f);
}

TEST_CASE("codebook: invalid level sets are refused with the bad index", "[formats][codebook]") {
  auto code = [](std::vector<float> v) { return error_code_of([&] { Codebook c(v); }); };
  auto message = [](std::vector<float> v) { return error_message_of([&] { Codebook c(v); }); };
  CHECK(code({0.0f, 1.0f, 0.5f}) == ErrorCode::kInvalidArgument);
  CHECK(message({0.0f, 1.0f, 0.5f}).find("level 2") != std::string::npos);
  CHECK(code({0.0f, 1.0f, 1.0f}) == ErrorCode::kInvalidArgument);
  CHECK(message({0.0f, 1.0f, 1.0f}).find("level 2") != std::string::npos);
  CHECK(code({-1.0f, kNaN, 1.0f}) == ErrorCode::kInvalidArgument);
  CHECK(message({-1.0f, kNaN, 1.0f}).find("level 1") != std::string::npos);
  CHECK(code({-1.0f, 0.0f, kInf}) == ErrorCode::kInvalidArgument);
  CHECK(code({0.5f}) == ErrorCode::kInvalidArgument);
  CHECK(message({0.5f}).find("at least 2") != std::string::npos);
  CHECK(code({}) == ErrorCode::kInvalidArgument);
  CHECK(error_code_of([] { Codebook c({1.0f, 0.0f}); }) == ErrorCode::kInvalidArgument);
  // Explicit thresholds must lie in [L[i], L[i+1]).
  CHECK(error_code_of([] {
          Codebook::with_thresholds({0, 1, 2}, {0.5f});
        }) == ErrorCode::kInvalidArgument);
  CHECK(error_code_of([] {
          Codebook::with_thresholds({0, 1, 2}, {0.5f, 2.0f});
        }) == ErrorCode::kInvalidArgument);
  CHECK(error_code_of([] {
          Codebook::with_thresholds({0, 1, 2}, {1.0f, 1.5f});
        }) == ErrorCode::kInvalidArgument);
  CHECK(Codebook::with_thresholds({0, 1, 2}, {0.0f, 1.9f}).nearest_level_index(1.95f) == 2);
}

TEST_CASE("codebook: pow2 and log factories give the stated level sets", "[formats][codebook]") {
  CHECK(fq::make_pow2_codebook(3, true, true).levels() ==
        std::vector<float>{-1.0f, -0.5f, -0.25f, 0.0f, 0.25f, 0.5f, 1.0f});
  CHECK(fq::make_pow2_codebook(3, false, true).levels() ==
        std::vector<float>{-1.0f, -0.5f, -0.25f, 0.25f, 0.5f, 1.0f});
  CHECK(fq::make_pow2_codebook(3, true, false).levels() ==
        std::vector<float>{0.0f, 0.25f, 0.5f, 1.0f});
  CHECK(fq::make_pow2_codebook(2, false, false).levels() == std::vector<float>{0.5f, 1.0f});
  CHECK(fq::make_pow2_codebook(126, true, true).size() == 253);
  CHECK(fq::make_log_codebook(4.0f, 3, true, false).levels() ==
        std::vector<float>{0.0f, 0.0625f, 0.25f, 1.0f});
  CHECK(fq::make_log_codebook(10.0f, 3, false, true).levels() ==
        std::vector<float>{-1.0f, -0.1f, -0.01f, 0.01f, 0.1f, 1.0f});
  CHECK(fq::Pow2Signed<7>::codebook().size() == 15);
  CHECK(error_code_of([] { fq::make_pow2_codebook(1, false, false); }) ==
        ErrorCode::kInvalidArgument);
  CHECK(error_code_of([] { fq::make_pow2_codebook(0, true, true); }) ==
        ErrorCode::kInvalidArgument);
  CHECK(error_code_of([] { fq::make_pow2_codebook(127, true, true); }) ==
        ErrorCode::kInvalidArgument);
  CHECK(error_code_of([] { fq::make_log_codebook(1.0f, 3, true, true); }) ==
        ErrorCode::kInvalidArgument);
  CHECK(error_code_of([] { fq::make_log_codebook(kNaN, 3, true, true); }) ==
        ErrorCode::kInvalidArgument);
  CHECK(error_code_of([] { fq::make_log_codebook(10.0f, 60, true, true); }) ==
        ErrorCode::kInvalidArgument);
}

TEST_CASE("codebook: nearest level at midpoints, levels, their neighbours and beyond the ends",
          "[formats][codebook]") {
  const std::vector<Codebook> books = {Codebook::nf4(), fq::make_pow2_codebook(6, false, true),
                                       fq::make_log_codebook(3.0f, 5, true, true),
                                       Codebook({-3.0f, -2.9999998f, 0.1f, 0.3f, 7.0f})};
  for (const Codebook& b : books) {
    const std::vector<float>& L = b.levels();
    for (std::size_t k = 0; k < L.size(); ++k) {
      REQUIRE(b.nearest_level_index(L[k]) == k);
      REQUIRE(bits_of(b.nearest_level(L[k])) == bits_of(L[k]));
    }
    for (std::size_t k = 0; k + 1 < L.size(); ++k) {
      const double m = (double(L[k]) + double(L[k + 1])) / 2;
      const float f = static_cast<float>(m);
      if (double(f) == m) {
        // A float midpoint: the tie goes to the lower level; the next float up to the upper.
        REQUIRE(b.nearest_level_index(f) == k);
        REQUIRE(b.nearest_level_index(std::nextafter(f, kInf)) == k + 1);
        REQUIRE(b.nearest_level_index(std::nextafter(f, -kInf)) == k);
      } else {
        // No tie: the floats on either side of the exact midpoint.
        const float below = double(f) < m ? f : std::nextafter(f, -kInf);
        const float above = std::nextafter(below, kInf);
        REQUIRE(double(below) < m);
        REQUIRE(double(above) > m);
        REQUIRE(b.nearest_level_index(below) == k);
        REQUIRE(b.nearest_level_index(above) == k + 1);
      }
      REQUIRE(b.nearest_level_index(f) == reference_index(L, f));
    }
    REQUIRE(b.nearest_level_index(-kInf) == 0);
    REQUIRE(b.nearest_level_index(std::nextafter(L.front(), -kInf)) == 0);
    REQUIRE(b.nearest_level_index(-1e30f) == 0);
    REQUIRE(b.nearest_level_index(1e30f) == L.size() - 1);
    REQUIRE(b.nearest_level_index(std::nextafter(L.back(), kInf)) == L.size() - 1);
    REQUIRE(b.nearest_level_index(kInf) == L.size() - 1);
    REQUIRE(std::isnan(b.nearest_level(kNaN)));
  }
  // Hand-checked NF4 ties: 0.2035212516784668 = (0.16093020141124725 + 0.24611230194568634) / 2
  // exactly, a float: it goes to level 9 (0.1609...), the next float to level 10.
  const Codebook nf4 = Codebook::nf4();
  CHECK(nf4.nearest_level_index(0.2035212516784668f) == 9);
  CHECK(nf4.nearest_level_index(std::nextafter(0.2035212516784668f, 1.0f)) == 10);
  CHECK(nf4.nearest_level_index(0.0f) == 7);
  CHECK(nf4.nearest_level_index(-0.0f) == 7);
}

TEST_CASE("codebook: NF4 with bitsandbytes' constants differs from the nearest level at 4 floats",
          "[formats][codebook]") {
  const Codebook exact = Codebook::nf4(), bnb = Codebook::nf4_bitsandbytes();
  // bitsandbytes' literals for the midpoints 1|2, 3|4, 4|5 and 8|9 are one float above the
  // exact midpoint: that float itself is nearer to the upper level but bitsandbytes says lower.
  const int off_by_one[4] = {1, 3, 4, 8};
  for (int k : off_by_one) {
    const float c = fq::kNf4BitsandbytesThresholds[k];
    const double m = (kNf4Paper[k] + kNf4Paper[k + 1]) / 2;
    REQUIRE(double(c) > m);
    REQUIRE(double(std::nextafter(c, -kInf)) < m);
    CHECK(exact.nearest_level_index(c) == std::size_t(k + 1));
    CHECK(bnb.nearest_level_index(c) == std::size_t(k));
  }
  // Everywhere else they agree (every float in [-1.25, 1.25] around the thresholds, and 2^20
  // random floats).
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1.25f, 1.25f);
  int differ = 0;
  for (int i = 0; i < (1 << 20); ++i) {
    const float v = u(rng);
    differ += exact.nearest_level_index(v) != bnb.nearest_level_index(v);
  }
  CHECK(differ == 0);
  for (int k = 0; k < 15; ++k) {
    float v = fq::kNf4BitsandbytesThresholds[k];
    for (int s = 0; s < 8; ++s) v = std::nextafter(v, -kInf);
    for (int s = 0; s < 16; ++s, v = std::nextafter(v, kInf)) {
      const bool special =
          (k == 1 || k == 3 || k == 4 || k == 8) && v == fq::kNf4BitsandbytesThresholds[k];
      CHECK((exact.nearest_level_index(v) == bnb.nearest_level_index(v)) != special);
    }
  }
}

TEST_CASE("codebook: 2^20 random inputs against a brute-force scan, scalar and SIMD",
          "[formats][codebook]") {
  std::mt19937 rng(11);
  std::vector<Codebook> books = {Codebook::nf4(), fq::make_pow2_codebook(7, true, true),
                                 fq::make_log_codebook(10.0f, 4, false, true)};
  for (int n : {2, 3, 9, 16, 17, 40}) {  // <= 16: the AVX-512 permute path; > 16: select chain
    std::uniform_real_distribution<float> u(-4.0f, 4.0f);
    std::vector<float> lv(static_cast<std::size_t>(n));
    do {
      for (auto& v : lv) v = u(rng);
      std::sort(lv.begin(), lv.end());
    } while (std::adjacent_find(lv.begin(), lv.end()) != lv.end());
    books.push_back(Codebook(lv));
  }
  std::size_t checked = 0;
  for (std::size_t b = 0; b < books.size(); ++b) {
    const Codebook& book = books[b];
    const std::size_t n = b == 0 ? (std::size_t{1} << 20) : (std::size_t{1} << 16) + 13;
    const std::vector<float> x = make_inputs(book.levels(), n, 1.5f * book.max_level() + 1.0f,
                                             static_cast<std::uint32_t>(100 + b));
    std::vector<float> ys(n), yv(n);
    fq::Mask ms, mv;
    const auto nn = static_cast<std::int64_t>(n);
    fq::codebook_fake_quantize_per_tensor(cview(x, {nn}), view(ys, {nn}), &ms, book, 1.0f,
                                          Isa::kScalar);
    fq::codebook_fake_quantize_per_tensor(cview(x, {nn}), view(yv, {nn}), &mv, book, 1.0f);
    REQUIRE(fq_test::first_bit_mismatch(ys, yv) == -1);
    REQUIRE(ms.words() == mv.words());
    std::size_t bad = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const float v = x[i];
      const bool in = v >= book.min_level() && v <= book.max_level();
      if (std::isnan(v)) {
        bad += !std::isnan(ys[i]) || ms.test_linear(static_cast<std::int64_t>(i));
        continue;
      }
      const std::size_t k = reference_index(book.levels(), v);
      bad += bits_of(ys[i]) != bits_of(book.level(k)) ||
             ms.test_linear(static_cast<std::int64_t>(i)) != in || book.nearest_level_index(v) != k;
    }
    CHECK(bad == 0);
    checked += n;
  }
  CHECK(checked >= 1000000);
}

TEST_CASE("codebook blocks: absmax per block of 64, hand-checked NF4 values",
          "[formats][codebook]") {
  // One row of 128: block 0 has absmax 2 (at element 5), block 1 is all zero.
  std::vector<float> x(128, 0.0f), y(128);
  for (int i = 0; i < 64; ++i) x[std::size_t(i)] = 0.01f * float(i % 17) - 0.05f;
  x[5] = -2.0f;
  x[6] = 1.2f;  // u = 0.6: between 0.5626 and 0.7230, midpoint 0.6428: 0.5626 * 2
  x[7] = 2.0f * 0.33791524171829224f;  // a level: exact
  fq::Nf4Block64 q;
  fq::Mask m;
  q.forward(cview(x, {1, 128}), view(y, {1, 128}), &m);
  REQUIRE(q.scale() == std::vector<float>{2.0f, 0.0f});
  CHECK(y[5] == -2.0f);
  CHECK(y[6] == 2.0f * 0.5626170039176941f);
  CHECK(y[7] == x[7]);
  for (int i = 64; i < 128; ++i) {
    REQUIRE(bits_of(y[std::size_t(i)]) == bits_of(0.0f));  // +0, not bitsandbytes' -0
    REQUIRE(m.test_linear(i));
  }
  CHECK(m.count() == 128);
}

TEST_CASE("codebook blocks: the absmax element maps to +-absmax; NaN and Inf",
          "[formats][codebook]") {
  std::mt19937 rng(3);
  std::normal_distribution<float> g(0.0f, 0.02f);
  const std::int64_t rows = 37, cols = 192;
  std::vector<float> x(std::size_t(rows * cols)), y(x.size());
  for (auto& v : x) v = g(rng) * float(1 + rng() % 50);
  x[10] = kNaN;
  x[70] = kInf;
  x[200] = -kInf;
  fq::Nf4Block64 q;
  fq::Mask m;
  q.forward(cview(x, {rows, cols}), view(y, {rows, cols}), &m);
  REQUIRE(q.scale().size() == std::size_t(rows * 3));
  for (std::int64_t b = 0; b < rows * 3; ++b) {
    float amax = 0.0f;
    std::size_t at = 0;
    for (std::size_t i = std::size_t(b * 64); i < std::size_t(b * 64 + 64); ++i)
      if (std::isfinite(x[i]) && std::fabs(x[i]) > amax) amax = std::fabs(x[i]), at = i;
    REQUIRE(q.scale()[std::size_t(b)] == amax);
    REQUIRE(y[at] == x[at]);  // +-amax exactly
  }
  CHECK(std::isnan(y[10]));
  CHECK_FALSE(m.test_linear(10));
  CHECK(y[70] == q.scale()[1]);  // +Inf: the top level (1) times the block's finite absmax
  CHECK_FALSE(m.test_linear(70));
  CHECK(y[200] == -q.scale()[3]);
  CHECK_FALSE(m.test_linear(200));
  CHECK(m.count() == rows * cols - 3);  // dynamic absmax: every finite x is inside
}

TEST_CASE("codebook blocks: SIMD and scalar are bit-identical, tails included",
          "[formats][codebook]") {
  struct Case {
    std::int64_t rows, cols, block;
  };
  const Case cases[] = {
      {3, 64, 64}, {5, 100, 64}, {7, 13, 64},   {4, 96, 32},  {6, 45, 7},
      {2, 1, 64},  {9, 33, 16},  {1, 1000, 64}, {8, 128, 16}, {3, 70, fq::kWholeAxisGroup}};
  const std::vector<Codebook> books = {Codebook::nf4(), Codebook::nf4_bitsandbytes(),
                                       fq::make_pow2_codebook(4, true, false),
                                       fq::make_log_codebook(2.5f, 12, true, true)};
  std::uint32_t seed = 1;
  for (const Codebook& book : books) {
    for (const Case& c : cases) {
      for (int finite = 0; finite < 2; ++finite) {
        const std::int64_t n = c.rows * c.cols;
        std::vector<float> x = make_inputs(book.levels(), std::size_t(n), 2.0f, seed++);
        if (finite) {
          // All finite (the kernels' fast paths for finite blocks): Gaussian, some zero blocks.
          std::mt19937 rng(seed);
          std::normal_distribution<float> g(0.0f, 0.5f);
          for (std::size_t i = 0; i < x.size(); ++i) x[i] = (i / 64) % 5 == 3 ? 0.0f : g(rng);
        }
        for (std::size_t i = 0; i < x.size(); i += 29) x[i] = 1e-41f * float(i % 5);  // subnormal
        std::vector<float> ys(x.size()), yv(x.size()), ss, sv;
        fq::Mask ms, mv;
        const auto L = fq::codebook_block_layout(cview(x, {c.rows, c.cols}), c.block,
                                                 fq::GroupTail::kShortLast);
        ss.resize(std::size_t(L.groups()));
        sv.resize(ss.size());
        fq::codebook_fake_quantize_blocks(cview(x, {c.rows, c.cols}), view(ys, {c.rows, c.cols}),
                                          &ms, book, L, ss.data(), true, Isa::kScalar);
        fq::codebook_fake_quantize_blocks(cview(x, {c.rows, c.cols}), view(yv, {c.rows, c.cols}),
                                          &mv, book, L, sv.data(), true);
        REQUIRE(fq_test::first_bit_mismatch(ss, sv) == -1);
        REQUIRE(fq_test::first_bit_mismatch(ys, yv) == -1);
        REQUIRE(ms.words() == mv.words());
        // Frozen scales (half the absmax: some elements clamp) and a subnormal scale (divide).
        for (auto& s : ss) s = s > 0.0f ? s * 0.5f : 1e-39f;
        ss[0] = 1e-40f;
        fq::codebook_fake_quantize_blocks(cview(x, {c.rows, c.cols}), view(ys, {c.rows, c.cols}),
                                          &ms, book, L, ss.data(), false, Isa::kScalar);
        fq::codebook_fake_quantize_blocks(cview(x, {c.rows, c.cols}), view(yv, {c.rows, c.cols}),
                                          &mv, book, L, ss.data(), false);
        REQUIRE(fq_test::first_bit_mismatch(ys, yv) == -1);
        REQUIRE(ms.words() == mv.words());
        // Per element: the scalar reference formula.
        for (std::int64_t i = 0; i < n; ++i) {
          const float s = ss[std::size_t(L.group_of_flat(i))];
          const float xi = x[std::size_t(i)];
          if (std::isnan(xi)) {
            REQUIRE(std::isnan(ys[std::size_t(i)]));
            continue;
          }
          const float inv = 1.0f / s;
          const float u = std::isfinite(inv) ? xi * inv : xi / s;
          REQUIRE(bits_of(ys[std::size_t(i)]) ==
                  bits_of(book.level(reference_index(book.levels(), u)) * s));
          REQUIRE(ms.test_linear(i) == (xi >= book.min_level() * s && xi <= book.max_level() * s));
        }
      }
    }
  }
}

TEST_CASE("codebook quantizer: dynamic, frozen, in place", "[formats][codebook]") {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-3.0f, 3.0f);
  std::vector<float> x(8 * 128), y(x.size()), y2(x.size());
  for (auto& v : x) v = u(rng);
  fq::Nf4Block64 q;
  CHECK(q.dynamic());
  CHECK(error_code_of([&] { q.freeze(); }) == ErrorCode::kInvalidState);
  q.forward(cview(x, {8, 128}), view(y, {8, 128}));
  const std::vector<float> amax = q.scale();
  REQUIRE(amax.size() == 16);
  q.freeze();
  CHECK_FALSE(q.dynamic());
  q.forward(cview(x, {8, 128}), view(y2, {8, 128}));
  REQUIRE(fq_test::first_bit_mismatch(y, y2) == -1);
  // Frozen: other data uses the frozen scales (x doubled: values beyond clamp, mask 0).
  std::vector<float> x2 = x;
  for (auto& v : x2) v *= 2.0f;
  fq::Mask m;
  q.forward(cview(x2, {8, 128}), view(y2, {8, 128}), &m);
  REQUIRE(q.scale() == amax);
  for (std::int64_t i = 0; i < 1024; ++i) {
    const float s = amax[std::size_t(i / 64)];
    const float xi = x2[std::size_t(i)];
    REQUIRE(std::fabs(y2[std::size_t(i)]) <= s);
    REQUIRE(m.test_linear(i) == (std::fabs(xi) <= s));
  }
  CHECK(m.count() < 1024);
  // Another block layout is refused while frozen.
  CHECK(error_code_of([&] {
          q.forward(cview(x, {16, 64}), view(y, {16, 64}));
        }) == ErrorCode::kShapeMismatch);
  q.unfreeze();
  q.forward(cview(x2, {8, 128}), view(y2, {8, 128}));
  for (std::size_t b = 0; b < 16; ++b) REQUIRE(q.scale()[b] == 2.0f * amax[b]);
  // In place equals out of place.
  std::vector<float> z = x;
  q.forward(cview(x, {8, 128}), view(y, {8, 128}));
  q.forward(cview(z, {8, 128}), view(z, {8, 128}));
  REQUIRE(fq_test::first_bit_mismatch(y, z) == -1);
  // Idempotent in dynamic mode: the block absmax survives.
  q.forward(cview(y, {8, 128}), view(y2, {8, 128}));
  REQUIRE(fq_test::first_bit_mismatch(y, y2) == -1);
  // set_scales with a shape: frozen with that layout.
  fq::Nf4Block32 q32;
  q32.set_scales(std::vector<float>(32, 1.0f), {8, 128});
  CHECK_FALSE(q32.dynamic());
  q32.forward(cview(x, {8, 128}), view(y, {8, 128}));
  for (std::size_t i = 0; i < x.size(); ++i) REQUIRE(y[i] == Codebook::nf4().nearest_level(x[i]));
}

TEST_CASE("codebook quantizer: bad input", "[formats][codebook]") {
  std::vector<float> x(200, 0.5f), y(200);
  fq::Nf4Block64 q;
  for (float bad : {0.0f, -1.0f, kNaN, kInf}) {
    std::vector<float> s(4, 1.0f);
    s[2] = bad;
    CHECK(error_code_of([&] { q.set_scales(s); }) == ErrorCode::kInvalidScale);
    CHECK(error_message_of([&] { q.set_scales(s); }).find("zero or negative block amax") !=
          std::string::npos);
  }
  CHECK(error_code_of([&] {
          q.set_scales(std::vector<float>(3, 1.0f), {2, 128});
        }) == ErrorCode::kParamCountMismatch);
  q.set_scales(std::vector<float>(3, 1.0f));
  CHECK(error_code_of([&] {
          q.forward(cview(x, {2, 100}), view(y, {2, 100}));
        }) == ErrorCode::kShapeMismatch);  // 4 blocks, 3 scales
  q.unfreeze();
  // Shapes, layouts, ranks.
  CHECK(error_code_of([&] {
          q.forward(cview(x, {2, 100}), view(y, {4, 50}));
        }) == ErrorCode::kShapeMismatch);
  const std::int64_t shape[2] = {10, 10}, strides[2] = {1, 10};
  CHECK(error_code_of([&] {
          q.forward(fq::TensorView<const float>(x.data(), 2, shape, strides), view(y, {10, 10}));
        }) == ErrorCode::kInvalidLayout);
  CHECK(error_code_of([&] {
          q.forward(fq::TensorView<const float>(x.data(), 0, shape, strides),
                    fq::TensorView<float>(y.data(), 0, shape, strides));
        }) == ErrorCode::kInvalidLayout);
  fq::CodebookFakeQuantizer<fq::Nf4, 64, fq::GroupTail::kMustDivide> strict;
  CHECK(error_code_of([&] {
          strict.forward(cview(x, {2, 100}), view(y, {2, 100}));
        }) == ErrorCode::kShapeMismatch);
  CHECK(error_code_of([] { fq::CodebookBlock b(Codebook::nf4(), 0); }) ==
        ErrorCode::kInvalidArgument);
  CHECK(error_code_of([] { fq::CodebookBlock b(Codebook::nf4(), -5); }) ==
        ErrorCode::kInvalidArgument);
  CHECK(error_code_of([&] {
          fq::codebook_fake_quantize_per_tensor(cview(x, {200}), view(y, {200}), nullptr,
                                                Codebook::nf4(), 0.0f);
        }) == ErrorCode::kInvalidScale);
#if FQ_HAS_XSIMD
  if (fq::kSimdArch<fq::DefaultArch> && fq::isa_of_arch<fq::DefaultArch>() != Isa::kAvx512Vnni)
    CHECK(error_code_of([&] {
            q.forward(cview(x, {2, 100}), view(y, {2, 100}), nullptr, Isa::kAvx512Vnni);
          }) == ErrorCode::kInvalidArgument);
#endif
  // Empty tensors do nothing.
  std::vector<float> none;
  fq::Mask m;
  q.forward(fq::TensorView<const float>(none.data(), {0, 64}),
            fq::TensorView<float>(none.data(), {0, 64}), &m);
  CHECK(m.numel() == 0);
}

TEST_CASE("codebook quantizer: the testing kit on frozen quantizers", "[formats][codebook]") {
  std::mt19937 rng(9);
  std::uniform_real_distribution<float> u(0.05f, 3.0f);
  const std::int64_t blocks = 6;
  std::vector<float> amax(blocks);
  for (auto& s : amax) s = u(rng);
  auto run = [&](auto& q, const Codebook& book) {
    q.set_scales(amax, {blocks, 64});
    std::vector<std::vector<double>> lv;
    for (float s : amax) lv.push_back(scaled_levels(book, s));
    fq::testing::QuantizerCheckOptions o;
    o.grid = fq::testing::Grid::per_channel(lv, 0);
    o.shape = {blocks, 64};
    o.non_finite = fq::testing::NonFinite::kNaNPropagates;
    o.error_bound = fq::testing::ErrorBound::kHalfStep;  // nearest level on a non-uniform grid
    const auto r = fq::testing::check_quantizer(q, o);
    INFO(r.report());
    CHECK(r.passed());
    fq::testing::GradientCheckOptions g;
    g.grid = o.grid;
    g.shape = o.shape;
    g.points = 96;
    const auto rg = fq::testing::check_gradients(q, g);
    INFO(rg.report());
    CHECK(rg.passed());
  };
  fq::Nf4Block64 nf4;
  run(nf4, Codebook::nf4());
  fq::Nf4Block64Bitsandbytes bnb;
  run(bnb, Codebook::nf4_bitsandbytes());
  fq::Pow2Block64 pow2;
  run(pow2, fq::make_pow2_codebook(7, true, true));
  const Codebook user({-0.9f, -0.2f, 0.0f, 0.15f, 0.4f, 1.0f});
  fq::CodebookBlock custom(user, 64);
  run(custom, user);
}

TEST_CASE("codebook quantizer: on the tape with ops::fake_quant", "[formats][codebook]") {
  std::mt19937 rng(21);
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<float> w(4 * 128), grad(w.size(), 0.0f), ref(w.size());
  for (auto& v : w) v = g(rng);
  fq::Nf4Block64 q;
  q.set_scales(std::vector<float>(8, 1.5f), {4, 128});  // frozen below the data's absmax
  fq::Mask m;
  q.forward(cview(w, {4, 128}), view(ref, {4, 128}), &m);
  REQUIRE(m.count() < 512);
  fq::Tape tape;
  fq::Var wv = tape.leaf(w.data(), grad.data(), {4, 128});
  fq::Var y = fq::ops::fake_quant(tape, wv, q);
  for (std::size_t i = 0; i < ref.size(); ++i) REQUIRE(bits_of(y.value()[i]) == bits_of(ref[i]));
  tape.backward(fq::ops::mean(tape, y));
  for (std::int64_t i = 0; i < 512; ++i)
    REQUIRE(grad[std::size_t(i)] == (m.test_linear(i) ? 1.0f / 512.0f : 0.0f));
}
