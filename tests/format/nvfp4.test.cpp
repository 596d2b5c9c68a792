// SPDX-License-Identifier: MIT
// tests/format/nvfp4.test.cpp: NVFP4 fake quantization (kernels/nvfp4_fake_quantize.hpp,
// scalar and SIMD) and fq::NvFp4FakeQuantizer: the two-level scale on hand-computed cases,
// single-level, all-zero and NaN tensors, an independent reference (nearest-value search in
// the E4M3 and E2M1 tables) on random blocks, frozen/dynamic modes, errors and the testing kit.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include <catch2/catch.hpp>

#include <fakequant/kernels/nvfp4_fake_quantize.hpp>
#include <fakequant/quantizer/nvfp4_quantizer.hpp>
#include <fakequant/testing/check_gradients.hpp>
#include <fakequant/testing/check_quantizer.hpp>

#include "test_util.hpp"

namespace {

using fq_test::kNaN;

const std::vector<double> kE2M1 = {0, 0.5, 1, 1.5, 2, 3, 4, 6};

/// The positive E4M3 values (from the format's definition: bias 7, 3 mantissa bits, max 448).
std::vector<double> e4m3_table() {
  std::vector<double> t;
  for (int m = 0; m < 8; ++m) t.push_back(std::ldexp(m, -9));
  for (int e = -6; e <= 8; ++e)
    for (int m = 0; m < 8; ++m)
      if (std::ldexp(8 + m, e - 3) <= 448) t.push_back(std::ldexp(8 + m, e - 3));
  return t;
}

using fq_test::nearest_even;

float signed_round(const std::vector<double>& t, float v) {
  if (std::isnan(v)) return v;
  const double p = nearest_even(t, std::fabs(static_cast<double>(v)));
  return static_cast<float>(std::signbit(v) ? -p : p);
}

/// TorchAO's _nvfp4_quantize written out per block with float32 operations and table casts.
void reference(const std::vector<float>& x, std::int64_t nblocks, bool two_level, float pts,
               std::vector<float>& y, std::vector<bool>& m, std::vector<float>& bs_out) {
  static const std::vector<double> e4m3 = e4m3_table();
  y.assign(x.size(), 0.0f);
  m.assign(x.size(), false);
  bs_out.assign(static_cast<std::size_t>(nblocks), 0.0f);
  for (std::int64_t b = 0; b < nblocks; ++b) {
    float amax = 0.0f;
    bool nan = false;
    for (int i = 0; i < 16; ++i) {
      const float a = std::fabs(x[static_cast<std::size_t>(b * 16 + i)]);
      nan = nan || std::isnan(a);
      amax = std::max(amax, a);
    }
    if (nan) amax = kNaN;
    float s = amax / 6.0f;
    if (two_level) s = s / pts;
    if (!std::isnan(s)) s = std::min(448.0f, std::max(0.015625f, s));
    const float bs = signed_round(e4m3, s);
    bs_out[static_cast<std::size_t>(b)] = bs;
    const float total = two_level ? pts * bs : bs;
    for (int i = 0; i < 16; ++i) {
      const auto k = static_cast<std::size_t>(b * 16 + i);
      const float d = x[k] / total;
      const float dc = std::isnan(d) ? d : std::min(6.0f, std::max(-6.0f, d));
      y[k] = signed_round(kE2M1, dc) * total;
      m[k] = std::fabs(d) <= 6.0f;
    }
  }
}

template <class Q>
std::vector<float> run(Q& q, std::vector<float> x, std::int64_t rows, std::int64_t cols,
                       fq::Mask* mask = nullptr, fq::Isa path = fq::Isa::kAuto) {
  std::vector<float> y(x.size());
  q.forward(fq::TensorView<const float>(x.data(), {rows, cols}),
            fq::TensorView<float>(y.data(), {rows, cols}), mask, path);
  return y;
}

std::vector<float> random_tensor(std::size_t n, std::uint32_t seed, int kmin, int kmax) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> x(n);
  for (std::size_t b = 0; b < n / 16; ++b) {
    const int k = kmin + static_cast<int>(rng() % static_cast<unsigned>(kmax - kmin + 1));
    for (std::size_t i = 0; i < 16; ++i) {
      const auto r = rng() % 10;
      float v = std::ldexp(u(rng), k - static_cast<int>(rng() % 6));
      if (r == 0) v = 0.0f;
      if (r == 1) v = std::ldexp(static_cast<float>(kE2M1[rng() % 8]), k - 3);
      x[b * 16 + i] = v;
    }
  }
  return x;
}

}  // namespace

TEST_CASE("NVFP4 two-level scale: hand-computed cases", "[formats][nvfp4]") {
  // Tensor amax 2688 -> pts = 2688 / 2688 = 1.
  std::vector<float> x(48, 0.0f);
  x[0] = 2688.0f, x[1] = 1000.0f, x[2] = 1200.0f, x[3] = -448.0f;             // block 0: amax 2688
  x[16] = 30.0f, x[17] = 7.0f, x[18] = 12.0f, x[19] = 13.0f, x[20] = -12.5f;  // block 1: 30
  x[32] = 0.1f, x[33] = 0.05f;                                                // block 2: 0.1
  for (fq::Isa path : {fq::Isa::kAuto, fq::Isa::kScalar}) {
    fq::NvFp4 q;
    fq::Mask mask;
    const std::vector<float> y = run(q, x, 1, 48, &mask, path);
    CHECK(q.per_tensor_scale() == 1.0f);
    // bs = amax / 6 / pts: 448 -> 448; 5 -> 5; 0.01666.. -> E4M3 9 * 2^-9 = 0.017578125.
    CHECK(q.block_scales() == std::vector<float>{448.0f, 5.0f, 0.017578125f});
    CHECK(y[0] == 2688.0f);        // 6 * 448
    CHECK(y[1] == 896.0f);         // 1000 / 448 = 2.23 -> 2
    CHECK(y[2] == 1344.0f);        // 2.68 -> 3
    CHECK(y[3] == -448.0f);        // -1
    CHECK(y[16] == 30.0f);         // 6 * 5
    CHECK(y[17] == 7.5f);          // 1.4 -> 1.5
    CHECK(y[18] == 10.0f);         // 2.4 -> 2
    CHECK(y[19] == 15.0f);         // 2.6 -> 3
    CHECK(y[20] == -10.0f);        // -2.5: a tie, to the even code 2
    CHECK(y[32] == 0.10546875f);   // 5.69 -> 6
    CHECK(y[33] == 0.052734375f);  // 2.84 -> 3
    CHECK(mask.count() == 48);
  }
  // pts = 2 (tensor amax 5376): block 0 scale 896 / 2 = 448, block 1 5 / 2 = 2.5; totals 896, 5.
  std::vector<float> z(32, 0.0f);
  z[0] = 5376.0f, z[1] = 1000.0f, z[16] = 30.0f, z[17] = 13.0f;
  fq::NvFp4 q;
  std::vector<float> y = run(q, z, 1, 32);
  CHECK(q.per_tensor_scale() == 2.0f);
  CHECK(q.block_scales() == std::vector<float>{448.0f, 2.5f});
  CHECK(y[0] == 5376.0f);
  CHECK(y[1] == 896.0f);  // 1.116 -> 1
  CHECK(y[16] == 30.0f);
  CHECK(y[17] == 15.0f);
  // A set per-tensor scale (pts = 1) with a block scale that E4M3 rounds: amax 6.6 -> 1.1 ->
  // 1.125; 6.6 / 1.125 = 5.87 -> 6 -> 6.75. A tiny block's scale clamps up to 2^-6.
  q.set_per_tensor_amax(2688.0f);
  CHECK_FALSE(q.dynamic_per_tensor_scale());
  std::vector<float> w(32, 0.0f);
  w[0] = 6.6f, w[16] = 0.01f;
  fq::Mask mask;
  y = run(q, w, 2, 16, &mask);
  CHECK(q.per_tensor_scale() == 1.0f);
  CHECK(q.block_scales() == std::vector<float>{1.125f, 0.015625f});
  CHECK(y[0] == 6.75f);
  CHECK(y[16] == 0.0078125f);  // 0.64 -> 0.5
  CHECK(mask.test_linear(0));
  q.clear_per_tensor_scale();
  CHECK(q.dynamic_per_tensor_scale());
}

TEST_CASE("NVFP4 single-level, all-zero and NaN tensors", "[formats][nvfp4]") {
  fq::NvFp4SingleLevel s;
  std::vector<float> x(32, 0.0f);
  x[0] = 3000.0f, x[1] = 30.0f, x[16] = 30.0f, x[17] = 13.0f;
  fq::Mask mask;
  std::vector<float> y = run(s, x, 1, 32, &mask);
  CHECK(s.block_scales() == std::vector<float>{448.0f, 5.0f});  // 500 clamps to 448
  CHECK(s.per_tensor_scale() == 1.0f);
  CHECK(y[0] == 2688.0f);  // 6.7 saturates at 6
  CHECK_FALSE(mask.test_linear(0));
  CHECK(y[1] == 0.0f);  // 30 / 448 = 0.067 -> 0
  CHECK(y[16] == 30.0f);
  CHECK(y[17] == 15.0f);
  // All zero: y = 0 (TorchAO's two-level gives 0/0 = NaN here; documented difference).
  std::vector<float> zero(64, 0.0f);
  fq::NvFp4 q;
  y = run(q, zero, 4, 16, &mask);
  CHECK(q.per_tensor_scale() == 1.0f);
  for (float v : y) CHECK(v == 0.0f);
  CHECK(mask.count() == 64);
  // NaN: the whole tensor under the dynamic two-level scale (as TorchAO), one block otherwise.
  zero[20] = kNaN;
  zero[0] = 1.0f;
  for (fq::Isa path : {fq::Isa::kAuto, fq::Isa::kScalar}) {
    y = run(q, zero, 4, 16, &mask, path);
    for (float v : y) CHECK(std::isnan(v));
    CHECK(mask.count() == 0);
    y = run(s, zero, 4, 16, &mask, path);
    CHECK(y[0] == 1.03125f);  // bs = E4M3(1/6) = 11 * 2^-6; 1 / bs = 5.8 -> 6
    for (int i = 16; i < 32; ++i) CHECK(std::isnan(y[static_cast<std::size_t>(i)]));
    CHECK(mask.count() == 48);
  }
}

TEST_CASE("NVFP4 matches the independent reference and SIMD matches scalar",
          "[formats][nvfp4][simd]") {
  const std::int64_t nblocks = 100000;
  const std::vector<float> x = random_tensor(static_cast<std::size_t>(nblocks * 16), 5, -40, 40);
  std::vector<float> yr, bsr;
  std::vector<bool> mr;
  for (bool two : {true, false}) {
    fq::NvFp4State st;
    st.two_level = two;
    std::vector<float> y(x.size()), ys(x.size());
    fq::Mask mask, masks;
    fq::TensorView<const float> xv(x.data(), {nblocks, 16});
    fq::nvfp4_fake_quantize(xv, fq::TensorView<float>(y.data(), {nblocks, 16}), st, &mask);
    const std::vector<float> bs = st.block_scales;
    const float pts = st.pts;
    fq::nvfp4_fake_quantize(xv, fq::TensorView<float>(ys.data(), {nblocks, 16}), st, &masks,
                            fq::Isa::kScalar);
    CHECK(fq_test::first_bit_mismatch(y, ys) == -1);
    CHECK(mask.words() == masks.words());
    CHECK(st.block_scales == bs);
    if (two) {
      float amax = 0;
      for (float v : x) amax = std::max(amax, std::fabs(v));
      CHECK(pts == amax / 2688.0f);
    }
    reference(x, nblocks, two, pts, yr, mr, bsr);
    CHECK(bs == bsr);
    std::int64_t bad = 0;
    for (std::size_t i = 0; i < x.size() && bad < 5; ++i)
      if (fq_test::bits_of(y[i]) != fq_test::bits_of(yr[i]) ||
          mask.test_linear(static_cast<std::int64_t>(i)) != mr[i]) {
        INFO("element " << i << " x " << x[i] << " y " << y[i] << " ref " << yr[i]);
        CHECK(false);
        ++bad;
      }
  }
  // Adversarial: NaN, Inf, -0, subnormals, huge values, any bit pattern; frozen and dynamic.
  std::mt19937 rng(9);
  std::vector<float> a(16 * 203);
  const float sp[] = {0.0f, -0.0f, kNaN,  std::numeric_limits<float>::infinity(), 1e-45f, 3e38f,
                      6.0f, 2.5f,  448.0f};
  for (auto& v : a)
    v = rng() % 3 == 0 ? sp[rng() % 9]
                       : (rng() % 2 ? fq_test::float_from_bits(static_cast<std::uint32_t>(rng()))
                                    : std::ldexp(static_cast<float>(rng() % 1000) / 100.0f - 5.0f,
                                                 static_cast<int>(rng() % 20) - 10));
  for (bool two : {true, false}) {
    fq::NvFp4State st;
    st.two_level = two;
    st.dynamic_pts = false;
    st.pts = 0.03125f;
    std::vector<float> y1(a.size()), y2(a.size());
    fq::Mask m1, m2;
    fq::TensorView<const float> av(a.data(), {7, 29, 16});
    fq::nvfp4_fake_quantize(av, fq::TensorView<float>(y1.data(), {7, 29, 16}), st, &m1);
    fq::nvfp4_fake_quantize(av, fq::TensorView<float>(y2.data(), {7, 29, 16}), st, &m2,
                            fq::Isa::kScalar);
    CHECK(fq_test::first_bit_mismatch(y1, y2) == -1);
    CHECK(m1.words() == m2.words());
  }
}

TEST_CASE("NvFp4FakeQuantizer: frozen mode, in place, errors, backward", "[formats][nvfp4]") {
  const std::vector<float> x = random_tensor(64, 3, -2, 2);
  fq::NvFp4 q;
  fq::Mask mask;
  const std::vector<float> y = run(q, x, 2, 32, &mask);
  std::vector<float> z = x;
  fq::NvFp4 p;
  p.forward(fq::TensorView<const float>(z.data(), {2, 32}),
            fq::TensorView<float>(z.data(), {2, 32}));
  CHECK(fq_test::first_bit_mismatch(z, y) == -1);  // in place
  std::vector<float> dy(64, -3.0f), dx(64);
  q.backward(fq::TensorView<const float>(dy.data(), {2, 32}), mask,
             fq::TensorView<float>(dx.data(), {2, 32}));
  for (std::int64_t i = 0; i < 64; ++i)
    CHECK(dx[static_cast<std::size_t>(i)] == (mask.test_linear(i) ? -3.0f : 0.0f));
  q.freeze();
  CHECK_FALSE(q.dynamic());
  const std::vector<float> bs = q.block_scales();
  const float pts = q.per_tensor_scale();
  std::vector<float> x2 = x;
  for (auto& v : x2) v *= 4.0f;
  run(q, x2, 2, 32);
  CHECK(q.block_scales() == bs);
  CHECK(q.per_tensor_scale() == pts);
  CHECK(fq_test::error_code_of([&] { run(q, x, 1, 64); }) == fq::ErrorCode::kShapeMismatch);
  q.unfreeze();
  run(q, x2, 2, 32);
  CHECK(q.per_tensor_scale() == pts * 4.0f);
  // Errors.
  fq::NvFp4 r;
  CHECK(fq_test::error_code_of([&] { r.freeze(); }) == fq::ErrorCode::kInvalidState);
  CHECK(fq_test::error_code_of([&] { run(r, x, 4, 16); }) == fq::ErrorCode{});  // no error
  CHECK(fq_test::error_code_of([&] { run(r, std::vector<float>(40), 2, 20); }) ==
        fq::ErrorCode::kShapeMismatch);
  for (float bad : {0.0f, -1.0f, kNaN, std::numeric_limits<float>::infinity(), 1e-40f})
    CHECK(fq_test::error_code_of([&] { r.set_per_tensor_scale(bad); }) ==
          fq::ErrorCode::kInvalidScale);
  CHECK(fq_test::error_code_of([&] { r.set_per_tensor_amax(0.0f); }) ==
        fq::ErrorCode::kInvalidScale);
  for (float bad : {0.0f, -2.0f, kNaN, 3.3f, 500.0f})
    CHECK(fq_test::error_code_of([&] {
            r.set_scales({1, 16}, {bad}, 1.0f);
          }) == fq::ErrorCode::kInvalidScale);
  CHECK(fq_test::error_code_of([&] {
          r.set_scales({1, 16}, {1.0f}, 0.0f);
        }) == fq::ErrorCode::kInvalidScale);
  CHECK(fq_test::error_code_of([&] {
          r.set_scales({1, 32}, {1.0f}, 1.0f);
        }) == fq::ErrorCode::kParamCountMismatch);
  CHECK(fq_test::error_code_of([&] {
          r.set_scales({1, 24}, {1.0f, 1.0f}, 1.0f);
        }) == fq::ErrorCode::kShapeMismatch);
  fq::NvFp4SingleLevel s;
  CHECK(fq_test::error_code_of([&] {
          s.set_scales({1, 16}, {1.0f}, 2.0f);
        }) == fq::ErrorCode::kInvalidArgument);
  std::vector<float> n(16, 1.0f);
  n[3] = kNaN;
  run(s, n, 1, 16);
  CHECK(fq_test::error_code_of([&] { s.freeze(); }) == fq::ErrorCode::kNonFiniteInput);
  // set_scales freezes; a subnormal E4M3 block scale is valid.
  r.set_scales({1, 32}, {0.001953125f, 3.5f}, 0.5f);
  CHECK_FALSE(r.dynamic());
  std::vector<float> v(32, 0.0f);
  v[0] = 0.0029296875f;  // / (0.5 * 2^-9) = 3 exactly
  v[16] = 10.0f;         // / 1.75 = 5.71 -> 6 -> 10.5
  const std::vector<float> out = run(r, v, 1, 32);
  CHECK(out[0] == 0.0029296875f);
  CHECK(out[16] == 10.5f);
}

namespace {
template <class Q>
void run_kit(Q& q, float pts, std::uint32_t seed) {
  const std::vector<float> bs = {0.015625f, 0.25f, 1.0f, 3.5f, 40.0f, 448.0f};
  const std::int64_t nblocks = static_cast<std::int64_t>(bs.size());
  q.set_scales({nblocks, 16}, bs, pts);
  std::vector<std::vector<double>> levels;
  for (float b : bs) {
    const float total = Q::kTwoLevel ? pts * b : b;
    std::vector<double> lv;
    for (double e : kE2M1) {
      lv.push_back(static_cast<float>(e) * total);
      lv.push_back(-static_cast<float>(e) * total);
    }
    levels.push_back(lv);
  }
  fq::testing::QuantizerCheckOptions opt;
  opt.grid = fq::testing::Grid::per_channel(levels, 0);
  opt.shape = {nblocks, 16};
  opt.non_finite = fq::testing::NonFinite::kNaNPropagates;
  opt.seed = seed;
  const auto r = fq::testing::check_quantizer(q, opt);
  INFO(r.report());
  CHECK(r.passed());
  fq::testing::GradientCheckOptions g;
  g.grid = opt.grid;
  g.shape = opt.shape;
  g.seed = seed;
  const auto rg = fq::testing::check_gradients(q, g);
  INFO(rg.report());
  CHECK(rg.passed());
  CHECK(rg.checked("gradient_dx") > 0);
}
}  // namespace

TEST_CASE("NVFP4 quantizers pass the testing kit (frozen, one block per channel)",
          "[formats][nvfp4][testing_kit]") {
  fq::NvFp4 a;
  run_kit(a, 0.7f, 1);
  fq::NvFp4SingleLevel b;
  run_kit(b, 1.0f, 2);
}
