// SPDX-License-Identifier: MIT
// tests/format/mx_speed_paths.test.cpp: the fast paths of the MX and NVFP4 SIMD kernels
// (simd/mx_fake_quantize_simd.hpp: a batch width of blocks at a time, the transposed amax,
// the lane-wise E8M0 codes, the unscaled cast for codes in MxScaledRange, the lane-wise NVFP4
// block scales) against the scalar reference (Isa::kScalar) bit for bit: outputs, codes /
// block scales and mask words, on random and adversarial blocks (NaN of either sign and any
// payload, +-Inf, subnormals, all-zero and -0 blocks, FLT_MAX, ties, values at the cap),
// dynamic and frozen, for block counts around multiples of the batch width.
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
#include <fakequant/kernels/nvfp4_fake_quantize.hpp>

#include "test_util.hpp"

namespace {

using fq_test::kInf;
using fq_test::kNaN;

/// A random int in [0, n).
int ri(std::mt19937& g, int n) { return static_cast<int>(g() % static_cast<std::uint32_t>(n)); }

/// Block counts that cover whole groups of 4, 8 and 16 blocks and every kind of remainder.
const std::int64_t kCounts[] = {1,  2,  3,  4,  5,  7,  8,  9,  15, 16,
                                17, 23, 31, 32, 33, 47, 48, 63, 64, 77};

/// nblocks blocks of B: each block is random at its own binade (2^-149 .. 2^127), or one of the
/// adversarial kinds (a NaN or +-Inf somewhere, all zero, subnormal only, ties, the cap).
/// benign: binades -60 .. 60, ties and ordinary values, and one block in 40 adversarial (so
/// that whole groups take the fast paths, and some groups the slower ones).
std::vector<float> make_blocks(std::int64_t nblocks, int B, std::mt19937& rng,
                               bool benign = false) {
  std::vector<float> x(static_cast<std::size_t>(nblocks * B));
  std::uniform_real_distribution<float> u(-2.0f, 2.0f);
  for (std::int64_t b = 0; b < nblocks; ++b) {
    float* xb = x.data() + b * B;
    int kind = ri(rng, 12);
    int k = ri(rng, 280) - 150;  // the block's binade
    if (benign && ri(rng, 40) != 0) {
      kind = ri(rng, 3) == 0 ? 3 : 7;
      k = ri(rng, 121) - 60;
    }
    for (int i = 0; i < B; ++i) {
      float v;
      switch (kind) {
        case 0:  // all zero, mixed signs
          v = rng() % 2 ? 0.0f : -0.0f;
          break;
        case 1:  // subnormal only
          v = fq_test::float_from_bits(static_cast<std::uint32_t>(rng() % 0x7FFFFFu) |
                                       (rng() % 2 ? 0x80000000u : 0u));
          break;
        case 2:  // any bit pattern (NaN, Inf, huge, tiny)
          v = fq_test::float_from_bits(static_cast<std::uint32_t>(rng()));
          break;
        case 3:  // ties and steps of every small format at a power of two
          v = std::ldexp(static_cast<float>(ri(rng, 129) - 64) / 8.0f, k / 4);
          break;
        case 4:  // near the largest float
          v = (rng() % 2 ? 1.0f : -1.0f) * std::nextafter(std::numeric_limits<float>::max(), 0.0f) /
              static_cast<float>(1 + ri(rng, 3));
          break;
        default:
          v = std::ldexp(u(rng), k - ri(rng, 12));
      }
      xb[i] = v;
    }
    if (kind == 5 || kind == 6) {  // one special at a random place
      const float sp[] = {kNaN,
                          -kNaN,
                          kInf,
                          -kInf,
                          fq_test::float_from_bits(0x7F800001u),
                          fq_test::float_from_bits(0xFFC12345u)};
      xb[ri(rng, B)] = sp[ri(rng, 6)];
    }
  }
  return x;
}

/// Random E8M0 codes, the boundaries of the unscaled path and 0, 1, 254, 255 included.
template <class E>
std::vector<std::uint8_t> make_codes(std::int64_t nblocks, std::mt19937& rng, bool benign) {
  std::vector<std::uint8_t> c(static_cast<std::size_t>(nblocks));
  int lo = 1, hi = 254;
#if FQ_HAS_XSIMD
  if constexpr (!fq::MxElement<E>::kIsInt) {
    lo = fq::simd::MxScaledRange<E>::kLo;
    hi = fq::simd::MxScaledRange<E>::kHi;
  }
#endif
  const int edge[] = {0, 1, 254, 255, lo - 1, lo, lo + 1, hi - 1, hi, hi + 1, 127};
  for (auto& v : c) {
    const int r = benign && ri(rng, 40) != 0 ? 2 : ri(rng, 3);
    // Mostly codes inside the unscaled range (so whole groups take it), some anywhere.
    v = static_cast<std::uint8_t>(r == 0   ? edge[ri(rng, 11)]
                                  : r == 1 ? ri(rng, 256)
                                           : lo + ri(rng, hi - lo + 1));
  }
  return c;
}

template <class E, class M>
void mx_compare(int B, std::uint32_t seed) {
  std::mt19937 rng(seed);
  for (std::int64_t nb : kCounts)
    for (bool benign : {false, true}) {
      const std::vector<float> x = make_blocks(nb, B, rng, benign);
      const std::int64_t n = nb * B;
      fq::TensorView<const float> xv(x.data(), {n});
      for (bool compute : {true, false}) {
        std::vector<std::uint8_t> ca = make_codes<E>(nb, rng, benign), cs = ca;
        std::vector<float> ya(x.size()), ys(x.size());
        fq::Mask ma, ms;
        fq::mx_fake_quantize<E, M>(xv, fq::TensorView<float>(ya.data(), {n}), B, ca, compute, &ma,
                                   fq::Isa::kAuto);
        fq::mx_fake_quantize<E, M>(xv, fq::TensorView<float>(ys.data(), {n}), B, cs, compute, &ms,
                                   fq::Isa::kScalar);
        INFO("B " << B << " blocks " << nb << " compute " << compute << " benign " << benign);
        CHECK(fq_test::first_bit_mismatch(ya, ys) == -1);
        CHECK(ca == cs);
        CHECK(ma.words() == ms.words());
        // Without a mask too (the kernels take other branches then).
        std::vector<float> yb(x.size());
        fq::mx_fake_quantize<E, M>(xv, fq::TensorView<float>(yb.data(), {n}), B, ca, false, nullptr,
                                   fq::Isa::kAuto);
        CHECK(fq_test::first_bit_mismatch(yb, ys) == -1);
      }
    }
}

template <class E>
void mx_compare_modes(std::uint32_t seed) {
  for (int B : {16, 32}) {
    mx_compare<E, fq::E8m0Floor>(B, seed);
    mx_compare<E, fq::E8m0Ceil>(B, seed + 1);
    mx_compare<E, fq::E8m0Even>(B, seed + 2);
    mx_compare<E, fq::E8m0Rceil>(B, seed + 3);
  }
}

}  // namespace

TEST_CASE("MX grouped fast paths are bit-identical to the scalar reference",
          "[formats][mx][simd][mx_speed]") {
  mx_compare_modes<fq::FloatE2M1>(11);
  mx_compare_modes<fq::FloatE4M3>(21);
  mx_compare_modes<fq::FloatE5M2>(31);
  mx_compare_modes<fq::FloatE2M3>(41);
  mx_compare_modes<fq::FloatE3M2>(51);
  mx_compare_modes<fq::MxInt8Element>(61);
}

TEST_CASE("MX fast path: a large tensor of ordinary data, 2D shape",
          "[formats][mx][simd][mx_speed]") {
  // Whole groups in the unscaled range: the path the benchmark times, over 2^20 elements.
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const std::int64_t rows = 256, cols = 4096;
  std::vector<float> x(static_cast<std::size_t>(rows * cols));
  for (auto& v : x) v = nd(rng) * std::ldexp(1.0f, ri(rng, 40) - 20);
  fq::TensorView<const float> xv(x.data(), {rows, cols});
  std::vector<float> ya(x.size()), ys(x.size());
  std::vector<std::uint8_t> ca, cs;
  fq::Mask ma, ms;
  fq::mx_fake_quantize<fq::FloatE2M1>(xv, fq::TensorView<float>(ya.data(), {rows, cols}), 32, ca,
                                      true, &ma);
  fq::mx_fake_quantize<fq::FloatE2M1>(xv, fq::TensorView<float>(ys.data(), {rows, cols}), 32, cs,
                                      true, &ms, fq::Isa::kScalar);
  CHECK(fq_test::first_bit_mismatch(ya, ys) == -1);
  CHECK(ca == cs);
  CHECK(ma.words() == ms.words());
}

#if FQ_HAS_XSIMD
TEST_CASE("e8m0_codes matches e8m0_from_amax_bits on every lane", "[formats][mx][simd][mx_speed]") {
  using A = fq::DefaultArch;
  using BI = xsimd::batch<std::int32_t, A>;
  constexpr std::size_t W = BI::size;
  std::mt19937 rng(3);
  std::vector<std::uint32_t> us;
  for (std::uint32_t e = 0; e <= 0xFF; ++e)  // every exponent field, mantissa edges
    for (std::uint32_t m : {0u, 1u, 0x3FFFFFu, 0x400000u, 0x400001u, 0x7FFFFFu, 0x100000u,
                            0x0FFFFFu, 0x200000u, 0x1FFFFFu, 0x7E0000u, 0x7C0000u})
      us.push_back((e << 23) | m);
  for (int i = 0; i < 200000; ++i) us.push_back(static_cast<std::uint32_t>(rng()) & 0x7FFFFFFFu);
  while (us.size() % W) us.push_back(0);
  auto check = [&](auto mode, int emax, int mbits, float emaxv) {
    constexpr fq::E8m0Mode kMode = decltype(mode)::kMode;
    alignas(64) std::int32_t in[W], out[W];
    std::int64_t bad = 0;
    for (std::size_t i = 0; i < us.size(); i += W) {
      for (std::size_t l = 0; l < W; ++l) in[l] = static_cast<std::int32_t>(us[i + l]);
      fq::simd::e8m0_codes<kMode, A>(BI::load_aligned(in), emax, mbits, emaxv).store_aligned(out);
      for (std::size_t l = 0; l < W; ++l)
        if (out[l] != fq::detail::e8m0_from_amax_bits<kMode>(us[i + l], emax, mbits, emaxv) &&
            bad++ < 5) {
          INFO("u " << us[i + l] << " emax " << emax);
          CHECK(false);
        }
    }
    CHECK(bad == 0);
  };
  auto all_modes = [&](int emax, int mbits, float emaxv) {
    check(fq::E8m0Floor{}, emax, mbits, emaxv);
    check(fq::E8m0Ceil{}, emax, mbits, emaxv);
    check(fq::E8m0Even{}, emax, mbits, emaxv);
    check(fq::E8m0Rceil{}, emax, mbits, emaxv);
  };
  all_modes(2, 1, 6.0f);            // E2M1
  all_modes(8, 3, 448.0f);          // E4M3
  all_modes(15, 2, 57344.0f);       // E5M2
  all_modes(0, 6, 127.0f / 64.0f);  // MXINT8
}

TEST_CASE("transpose_hmax and the block amax of a group", "[formats][mx][simd][mx_speed]") {
  using A = fq::DefaultArch;
  using BI = xsimd::batch<std::int32_t, A>;
  constexpr int W = static_cast<int>(BI::size);
  std::mt19937 rng(8);
  for (int rep = 0; rep < 200; ++rep) {
    alignas(64) std::int32_t lanes[W * W];
    for (auto& v : lanes) v = static_cast<std::int32_t>(rng() & (rep % 2 ? 0x7FFFFFFFu : 0xFFu));
    BI m[W];
    for (int j = 0; j < W; ++j) m[j] = BI::load_aligned(lanes + j * W);
    alignas(64) std::int32_t out[W];
    fq::simd::transpose_hmax<A>(m).store_aligned(out);
    for (int j = 0; j < W; ++j) {
      std::int32_t mx = 0;
      for (int l = 0; l < W; ++l) mx = std::max(mx, lanes[j * W + l]);
      CHECK(out[j] == mx);
    }
  }
  // group_amax_bits: the exact amax bits, and >= 0x7F800000 exactly for a NaN or Inf block.
  for (int B : {16, 32}) {
    for (int rep = 0; rep < 100; ++rep) {
      std::vector<float> x = make_blocks(W, B, rng);
      alignas(64) std::int32_t out[W];
      if (B == 16)
        fq::simd::group_amax_bits<16, A>(x.data()).store_aligned(out);
      else
        fq::simd::group_amax_bits<32, A>(x.data()).store_aligned(out);
      for (int j = 0; j < W; ++j) {
        const std::uint32_t ref = fq::detail::abs_max_bits_scalar(x.data() + j * B, B);
        const auto got = static_cast<std::uint32_t>(out[j]);
        if (ref >= 0x7F800000u)
          CHECK(got >= 0x7F800000u);
        else
          CHECK(got == ref);
      }
    }
  }
}
#endif

namespace {

void nvfp4_compare(bool two_level, bool dyn_pts, bool dyn_blocks, std::uint32_t seed) {
  std::mt19937 rng(seed);
  for (std::int64_t nb : kCounts)
    for (bool benign : {false, true}) {
      const std::vector<float> x = make_blocks(nb, 16, rng, benign);
      const std::int64_t n = nb * 16;
      fq::TensorView<const float> xv(x.data(), {nb, 16});
      fq::NvFp4State sa;
      sa.two_level = two_level;
      sa.dynamic_pts = dyn_pts;
      sa.dynamic_blocks = dyn_blocks;
      const float pts_choice[] = {0.03125f, 1.0f, 3.7e-5f, 1e-30f, kNaN, 1e20f};
      sa.pts = benign ? 0.03125f : pts_choice[ri(rng, 6)];
      if (!dyn_blocks) {  // E4M3 values, NaN, 0 and the clamp ends among them
        sa.block_scales.resize(static_cast<std::size_t>(nb));
        for (auto& s : sa.block_scales) {
          const int r = benign && ri(rng, 40) != 0 ? 3 : ri(rng, 8);
          s = r == 0   ? kNaN
              : r == 1 ? 0.0f
              : r == 2 ? 448.0f
                       : fq::round_to_format<fq::FloatE4M3, fq::FpSaturate>(std::ldexp(
                             static_cast<float>(ri(rng, 1000)) / 100.0f, ri(rng, 16) - 8));
        }
      }
      fq::NvFp4State ss = sa;
      std::vector<float> ya(x.size()), ys(x.size());
      fq::Mask ma, ms;
      fq::nvfp4_fake_quantize(xv, fq::TensorView<float>(ya.data(), {nb, 16}), sa, &ma);
      fq::nvfp4_fake_quantize(xv, fq::TensorView<float>(ys.data(), {nb, 16}), ss, &ms,
                              fq::Isa::kScalar);
      INFO("blocks " << nb << " benign " << benign << " two " << two_level << " dyn pts " << dyn_pts
                     << " dyn blocks " << dyn_blocks);
      CHECK(fq_test::first_bit_mismatch(ya, ys) == -1);
      CHECK(fq_test::first_bit_mismatch(sa.block_scales, ss.block_scales) == -1);
      CHECK(fq_test::bits_of(sa.pts) == fq_test::bits_of(ss.pts));
      CHECK(ma.words() == ms.words());
      (void)n;
    }
}

}  // namespace

TEST_CASE("NVFP4 grouped fast path is bit-identical to the scalar reference",
          "[formats][nvfp4][simd][mx_speed]") {
  std::uint32_t seed = 100;
  for (bool two : {true, false})
    for (bool dp : {true, false})
      for (bool db : {true, false}) nvfp4_compare(two, dp, db, seed++);
}
