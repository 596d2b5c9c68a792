// SPDX-License-Identifier: MIT
// GroupFakeQuantizer: layouts (last axis, inner axis, short tail, run-time G, per token)
// against an independent reference that gathers each group by multi-index; dynamic vs frozen;
// in place; SIMD vs scalar bit for bit; the non-finite rule; bad input; the testing kit on
// frozen quantizers; the tape and QLinear.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include <fakequant/layers/qlinear.hpp>
#include <fakequant/ops/fake_quant.hpp>
#include <fakequant/ops/ops.hpp>
#include <fakequant/quantizer/group_quantizer.hpp>
#include <fakequant/testing/catch2.hpp>
#include <fakequant/testing/check_gradients.hpp>
#include <fakequant/testing/check_quantizer.hpp>

#include "catch.hpp"
#include "test_util.hpp"

namespace {

using fq_test::bits_of;
using fq_test::error_code_of;
using Shape = std::vector<std::int64_t>;

template <class T>
fq::TensorView<T> view(T* data, const Shape& shape) {
  std::vector<std::int64_t> strides(shape.size(), 1);
  for (int d = static_cast<int>(shape.size()) - 2; d >= 0; --d)
    strides[static_cast<std::size_t>(d)] =
        strides[static_cast<std::size_t>(d) + 1] * shape[static_cast<std::size_t>(d) + 1];
  return fq::TensorView<T>(data, static_cast<int>(shape.size()), shape.data(), strides.data());
}

std::int64_t numel(const Shape& s) {
  std::int64_t n = 1;
  for (auto d : s) n *= d;
  return n;
}

/// The expected result, computed differently from the library: each element's group from its
/// multi-index, each group's members collected, the TorchAO formulas written out.
struct Ref {
  std::vector<float> y, scale;
  std::vector<std::int32_t> zero;
  std::vector<bool> mask;
};

Ref reference(const std::vector<float>& x, const Shape& shape, int axis, std::int64_t G,
              bool symmetric, bool legacy, float eps, std::int64_t qmin, std::int64_t qmax) {
  const int rank = static_cast<int>(shape.size());
  const int a = axis < 0 ? axis + rank : axis;
  const std::int64_t len = shape[static_cast<std::size_t>(a)];
  if (G < 0) G = len;
  const std::int64_t gpa = (len + G - 1) / G;
  std::int64_t inner = 1;
  for (int d = a + 1; d < rank; ++d) inner *= shape[static_cast<std::size_t>(d)];
  const std::int64_t n = numel(shape);
  std::vector<std::int64_t> group(static_cast<std::size_t>(n));
  std::int64_t groups = 0;
  for (std::int64_t f = 0; f < n; ++f) {
    std::int64_t rest = f, idx[8] = {};
    for (int d = rank - 1; d >= 0; --d) {
      idx[d] = rest % shape[static_cast<std::size_t>(d)];
      rest /= shape[static_cast<std::size_t>(d)];
    }
    std::int64_t o = 0, i = 0;
    for (int d = 0; d < a; ++d) o = o * shape[static_cast<std::size_t>(d)] + idx[d];
    for (int d = a + 1; d < rank; ++d) i = i * shape[static_cast<std::size_t>(d)] + idx[d];
    group[static_cast<std::size_t>(f)] = (o * gpa + idx[a] / G) * inner + i;
    groups = std::max(groups, group[static_cast<std::size_t>(f)] + 1);
  }
  Ref r;
  r.scale.resize(static_cast<std::size_t>(groups));
  r.zero.resize(static_cast<std::size_t>(groups));
  const float fmin = float(qmin), fmax = float(qmax);
  for (std::int64_t g = 0; g < groups; ++g) {
    std::vector<float> m;
    for (std::int64_t f = 0; f < n; ++f)
      if (group[static_cast<std::size_t>(f)] == g) m.push_back(x[static_cast<std::size_t>(f)]);
    const float lo = std::min(*std::min_element(m.begin(), m.end()), 0.0f);
    const float hi = std::max(*std::max_element(m.begin(), m.end()), 0.0f);
    float s;
    std::int32_t z;
    if (symmetric) {
      s = std::max(std::max(-lo, hi) / (float(qmax - qmin) / 2.0f), eps);
      z = std::int32_t((qmin + qmax + 1) / 2);
    } else {
      s = std::max((hi - lo) / float(qmax - qmin), eps);
      if (!legacy) {
        z = std::int32_t(std::clamp(fmin - std::nearbyint(lo / s), fmin, fmax));
      } else {
        const float dl = lo / s, dh = hi / s;
        const float zf = (fmin + dl) + (fmax + dh) > 0 ? fmin - dl : fmax - dh;
        z = std::int32_t(std::nearbyint(std::clamp(zf, fmin, fmax)));
      }
    }
    r.scale[static_cast<std::size_t>(g)] = s;
    r.zero[static_cast<std::size_t>(g)] = z;
  }
  for (std::int64_t f = 0; f < n; ++f) {
    const auto g = static_cast<std::size_t>(group[static_cast<std::size_t>(f)]);
    const float s = r.scale[g], z = float(r.zero[g]);
    const float q = std::nearbyint(x[static_cast<std::size_t>(f)] * (1.0f / s)) + z;
    r.mask.push_back(q >= fmin && q <= fmax);
    r.y.push_back((std::clamp(q, fmin, fmax) - z) * s);
  }
  return r;
}

std::vector<float> group_data(std::int64_t n, std::uint32_t seed, bool adversarial = false) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<float> x(static_cast<std::size_t>(n));
  for (std::size_t i = 0; i < x.size(); ++i) {
    x[i] = g(rng) * (i % 7 == 0 ? 10.0f : 1.0f);
    if (adversarial) {
      switch (rng() % 8) {
        case 0:
          x[i] = float(int(rng() % 15) - 7) * 0.125f + 0.0625f;
          break;  // ties
        case 1:
          x[i] = 0.0f;
          break;
        case 2:
          x[i] = -0.0f;
          break;
        case 3:
          x[i] = std::ldexp(1.0f, int(rng() % 200) - 100);
          break;
        case 4:
          x[i] = 1e-40f;
          break;  // subnormal
        default:
          break;
      }
    }
  }
  return x;
}

template <class Q>
void expect_matches_reference(Q& q, const Shape& shape, int axis, std::int64_t G, bool sym,
                              bool legacy, float eps, std::uint32_t seed) {
  const auto range = Q::range();
  for (bool adv : {false, true}) {
    const std::vector<float> x = group_data(numel(shape), seed, adv);
    std::vector<float> y(x.size());
    fq::Mask mask;
    q.forward(view(x.data(), shape), view(y.data(), shape), &mask);
    const Ref r = reference(x, shape, axis, G, sym, legacy, eps, range.quant_min, range.quant_max);
    REQUIRE(q.scale().size() == r.scale.size());
    for (std::size_t g = 0; g < r.scale.size(); ++g) {
      INFO("group " << g);
      REQUIRE(bits_of(q.scale()[g]) == bits_of(r.scale[g]));
      REQUIRE(q.zero_point()[g] == r.zero[g]);
    }
    for (std::size_t i = 0; i < x.size(); ++i) {
      INFO("element " << i << " x = " << x[i]);
      REQUIRE(bits_of(y[i]) == bits_of(r.y[i]));
      REQUIRE(mask.test_linear(static_cast<std::int64_t>(i)) == r.mask[i]);
    }
  }
}

constexpr float kTiny = std::numeric_limits<float>::min();
using fq_test::kEps;

}  // namespace

TEST_CASE("group: layouts against the reference", "[formats][group]") {
  SECTION("int4 symmetric G=32 along the last axis") {
    fq::Int4WeightGroup32Symmetric q;
    expect_matches_reference(q, {6, 128}, -1, 32, true, false, kTiny, 1);
    REQUIRE(q.layout().groups() == 24);
    REQUIRE(q.layout().groups_per_axis == 4);
  }
  SECTION("uint4 affine G=128") {
    fq::Int4WeightGroup128Affine q;
    expect_matches_reference(q, {3, 256}, -1, 128, false, false, kTiny, 2);
  }
  SECTION("axis not last: PerGroup<8, 1> on [3, 24, 5]") {
    fq::GroupFakeQuantizer<fq::QScheme<fq::Int4, fq::Symmetric, fq::PerGroup<8, 1>>> q;
    expect_matches_reference(q, {3, 24, 5}, 1, 8, true, false, kTiny, 3);
    REQUIRE(q.layout().inner == 5);
  }
  SECTION("axis 0, affine int8, with a short tail") {
    fq::GroupFakeQuantizer<
        fq::QScheme<fq::Int8, fq::Affine, fq::PerGroup<4, 0, fq::GroupTail::kShortLast>>>
        q;
    expect_matches_reference(q, {10, 7}, 0, 4, false, false, kTiny, 4);
    REQUIRE(q.layout().groups() == 3 * 7);
  }
  SECTION("kShortLast along the last axis: [5, 70] in groups of 32 (32, 32, 6)") {
    fq::GroupFakeQuantizer<
        fq::QScheme<fq::Int4, fq::Symmetric, fq::PerGroup<32, -1, fq::GroupTail::kShortLast>>>
        q;
    expect_matches_reference(q, {5, 70}, -1, 32, true, false, kTiny, 5);
    REQUIRE(q.layout().groups() == 15);
    REQUIRE(q.layout().group_len(2) == 6);
  }
  SECTION("run-time group size") {
    fq::Int4WeightGroupSymmetric q(48);
    expect_matches_reference(q, {4, 96}, -1, 48, true, false, kTiny, 6);
    REQUIRE(q.group_size() == 48);
  }
  SECTION("per token, int8 affine (8da4w), legacy, int4, symmetric") {
    fq::Int8ActPerTokenDynamic a;
    expect_matches_reference(a, {2, 3, 50}, -1, -1, false, false, kEps, 7);
    REQUIRE(a.layout().groups() == 6);
    fq::Int8ActPerTokenDynamicLegacy b;
    expect_matches_reference(b, {2, 3, 50}, -1, -1, false, true, kEps, 8);
    fq::Int4ActPerTokenDynamic c;
    expect_matches_reference(c, {4, 33}, -1, -1, false, false, kEps, 9);
    fq::Int8ActPerTokenSymmetricDynamic d;
    expect_matches_reference(d, {7, 40}, -1, -1, true, false, kEps, 10);
  }
  SECTION("int2 and int8 weight presets") {
    fq::Int2WeightGroup32Symmetric a;
    expect_matches_reference(a, {2, 64}, -1, 32, true, false, kTiny, 11);
    fq::Int8WeightGroup32Symmetric b;
    expect_matches_reference(b, {2, 64}, -1, 32, true, false, kTiny, 12);
    fq::Int4WeightGroup64Symmetric c;
    expect_matches_reference(c, {2, 128}, -1, 64, true, false, kTiny, 13);
  }
}

TEST_CASE("group: hand-computed int4 values", "[formats][group]") {
  // amax 7.5 -> s = 1; ties 0.5 -> 0, 1.5 -> 2, -2.5 -> -2; 7.5 -> 8 clamps to 7 (mask 0).
  fq::GroupFakeQuantizer<fq::QScheme<fq::Int4, fq::Symmetric, fq::PerGroup<4>>> q;
  std::vector<float> x = {0.5f, 1.5f, -2.5f, 7.5f}, y(4);
  fq::Mask m;
  q.forward(view(x.data(), {1, 4}), view(y.data(), {1, 4}), &m);
  REQUIRE(q.scale()[0] == 1.0f);
  REQUIRE(y == std::vector<float>{0.0f, 2.0f, -2.0f, 7.0f});
  REQUIRE(m.test_linear(0));
  REQUIRE_FALSE(m.test_linear(3));
  // uint4 affine on [-1, 2]: s = 3 / 15 = 0.2, z = 0 - round(-1 / 0.2) = 5.
  fq::GroupFakeQuantizer<fq::QScheme<fq::UInt4, fq::Affine, fq::PerGroup<4>>> a;
  x = {-1.0f, 2.0f, 0.0f, 0.3f};
  a.forward(view(x.data(), {1, 4}), view(y.data(), {1, 4}));
  REQUIRE(a.scale()[0] == 3.0f / 15.0f);
  REQUIRE(a.zero_point()[0] == 5);
  REQUIRE(y[2] == 0.0f);  // zero is exact
}

TEST_CASE("group: dynamic, frozen, in place", "[formats][group]") {
  fq::Int4WeightGroup32Symmetric q;
  const Shape shape{4, 64};
  std::vector<float> x = group_data(256, 21), y(256), y2(256);
  REQUIRE(q.dynamic());
  q.forward(view(x.data(), shape), view(y.data(), shape));
  const std::vector<float> s1 = q.scale();
  q.freeze();
  REQUIRE_FALSE(q.dynamic());
  std::vector<float> x2 = x;
  for (float& v : x2) v *= 4.0f;  // beyond the frozen ranges: clamped
  fq::Mask m;
  q.forward(view(x2.data(), shape), view(y2.data(), shape), &m);
  REQUIRE(q.scale() == s1);
  REQUIRE(m.count() < 256);
  for (std::size_t i = 0; i < 256; ++i) REQUIRE(std::fabs(y2[i]) <= 8.0f * s1[i / 32]);
  q.unfreeze();
  q.forward(view(x2.data(), shape), view(y2.data(), shape), &m);
  REQUIRE(q.scale()[0] == 4.0f * s1[0]);  // a power of two: exact
  REQUIRE(m.count() > 200);
  // In place equals out of place.
  std::vector<float> z = x2;
  q.forward(view(z.data(), shape), view(z.data(), shape));
  REQUIRE(std::memcmp(z.data(), y2.data(), 256 * sizeof(float)) == 0);
  // A frozen quantizer refuses another layout.
  q.freeze();
  std::vector<float> w(128);
  REQUIRE(error_code_of([&] {
            q.forward(view(w.data(), {2, 64}), view(w.data(), {2, 64}));
          }) == fq::ErrorCode::kShapeMismatch);
  // Empty tensors do nothing, and leave a mask of 0 elements.
  fq::Int8ActPerTokenDynamic e;
  std::vector<float> none(1);
  e.forward(view(none.data(), {0, 16}), view(none.data(), {0, 16}), &m);
  REQUIRE(m.numel() == 0);
}

TEST_CASE("group: SIMD and scalar are bit-identical", "[formats][group][simd]") {
  auto both = [](auto& q, const Shape& shape, std::uint32_t seed) {
    for (int adv = 0; adv < 3; ++adv) {
      std::vector<float> x = group_data(numel(shape), seed + std::uint32_t(adv), adv > 0);
      if (adv == 2) {  // non-finite values in a few groups
        x[x.size() / 3] = std::numeric_limits<float>::quiet_NaN();
        x[x.size() / 2] = std::numeric_limits<float>::infinity();
        x.back() = -std::numeric_limits<float>::infinity();
      }
      std::vector<float> ya(x.size()), yb(x.size());
      fq::Mask ma, mb;
      q.forward(view(x.data(), shape), view(ya.data(), shape), &ma, fq::Isa::kScalar);
      const auto sa = q.scale();
      const auto za = q.zero_point();
      q.forward(view(x.data(), shape), view(yb.data(), shape), &mb, fq::Isa::kAuto);
      REQUIRE(std::memcmp(ya.data(), yb.data(), ya.size() * sizeof(float)) == 0);
      REQUIRE(ma.words() == mb.words());
      REQUIRE(std::memcmp(sa.data(), q.scale().data(), sa.size() * sizeof(float)) == 0);
      REQUIRE(za == q.zero_point());
      if (adv < 2) {  // frozen: the per-group kernel alone
        q.freeze();
        q.forward(view(x.data(), shape), view(ya.data(), shape), &ma, fq::Isa::kScalar);
        q.forward(view(x.data(), shape), view(yb.data(), shape), &mb, fq::Isa::kAuto);
        REQUIRE(std::memcmp(ya.data(), yb.data(), ya.size() * sizeof(float)) == 0);
        REQUIRE(ma.words() == mb.words());
        q.unfreeze();
      }
    }
  };
  for (std::int64_t g : {1, 3, 7, 8, 15, 16, 17, 31, 32, 33, 64, 100, 128}) {
    INFO("G = " << g);
    fq::Int4WeightGroupSymmetric s(g);
    both(s, {5, 4 * g}, 100);
    fq::GroupFakeQuantizer<fq::QScheme<
        fq::UInt4, fq::Affine, fq::PerGroup<fq::kRuntimeGroupSize, -1, fq::GroupTail::kShortLast>>>
        a(g);
    both(a, {3, 4 * g + 5}, 200);
  }
  for (std::int64_t c : {1, 5, 16, 17, 63, 64, 65, 200, 1000}) {
    INFO("C = " << c);
    fq::Int8ActPerTokenDynamic t;
    both(t, {3, c}, 300);
    fq::Int8ActPerTokenDynamicLegacy l;
    both(l, {2, c}, 400);
    fq::Int8ActPerTokenSymmetricDynamic s;
    both(s, {2, c}, 500);
  }
  fq::GroupFakeQuantizer<fq::QScheme<fq::Int4, fq::Affine, fq::PerGroup<4, 1>>> inner;
  both(inner, {3, 8, 37}, 600);
}

TEST_CASE("group: non-finite inputs", "[formats][group]") {
  fq::Int4WeightGroup32Symmetric q;
  std::vector<float> x = group_data(128, 31), y(128);
  x[5] = std::numeric_limits<float>::quiet_NaN();   // group 0
  x[40] = -std::numeric_limits<float>::infinity();  // group 1
  fq::Mask m;
  for (fq::Isa path : {fq::Isa::kScalar, fq::Isa::kAuto}) {
    q.forward(view(x.data(), {2, 64}), view(y.data(), {2, 64}), &m, path);
    REQUIRE(std::isnan(q.scale()[0]));
    REQUIRE(std::isinf(q.scale()[1]));
    REQUIRE(std::isfinite(q.scale()[2]));
    for (std::int64_t i = 0; i < 64; ++i) {
      REQUIRE(std::isnan(y[static_cast<std::size_t>(i)]));
      REQUIRE_FALSE(m.test_linear(i));
    }
    for (std::size_t i = 64; i < 128; ++i) REQUIRE(std::isfinite(y[i]));
    REQUIRE(error_code_of([&] { q.freeze(); }) == fq::ErrorCode::kInvalidScale);
  }
}

TEST_CASE("group: +inf and -inf, and sums that overflow, are not NaN", "[formats][group]") {
  // The SIMD min/max pass finds NaN through a running sum; +inf + -inf (or finite values whose
  // partial sums overflow both ways) make that sum NaN without a NaN element.
  fq::Int4WeightGroup32Symmetric q;
  fq::Int8ActPerTokenDynamic t;
  std::vector<float> x = group_data(32 * 64, 33), ya(x.size()), yb(x.size());
  x[0] = std::numeric_limits<float>::infinity();  // group 0: +inf and -inf
  x[1] = -std::numeric_limits<float>::infinity();
  for (std::size_t i = 32; i < 64; ++i) x[i] = 3e38f;   // group 1: sums to +inf
  for (std::size_t i = 64; i < 96; ++i) x[i] = -3e38f;  // group 2: sums to -inf
  const Shape shape{32, 64};
  for (fq::Isa path : {fq::Isa::kScalar, fq::Isa::kAuto}) {
    q.forward(view(x.data(), shape), view(path == fq::Isa::kScalar ? ya.data() : yb.data(), shape),
              nullptr, path);
    REQUIRE(std::isinf(q.scale()[0]));
    REQUIRE(q.scale()[1] == 3e38f / 7.5f);
    REQUIRE(q.scale()[2] == 3e38f / 7.5f);
  }
  REQUIRE(std::memcmp(ya.data() + 32, yb.data() + 32, (x.size() - 32) * sizeof(float)) == 0);
  for (fq::Isa path : {fq::Isa::kScalar, fq::Isa::kAuto}) {  // per token: row 0 has both
    t.forward(view(x.data(), shape), view(ya.data(), shape), nullptr, path);
    REQUIRE(std::isinf(t.scale()[0]));
    REQUIRE(std::isfinite(t.scale()[1]));
  }
}

TEST_CASE("group: bad input", "[formats][group]") {
  fq::Int4WeightGroup32Symmetric q;
  std::vector<float> x(96), y(96);
  // G = 32 does not divide 48 under kMustDivide.
  REQUIRE(error_code_of([&] {
            q.forward(view(x.data(), {2, 48}), view(y.data(), {2, 48}));
          }) == fq::ErrorCode::kShapeMismatch);
  REQUIRE(error_code_of([&] { q.freeze(); }) == fq::ErrorCode::kInvalidState);
  REQUIRE(error_code_of([&] { q.set_qparams({1.0f}, {0}); }) == fq::ErrorCode::kInvalidState);
  const fq::GroupLayout L = q.layout_of(Shape{3, 32}.data(), 2);
  REQUIRE(error_code_of([&] {
            q.set_qparams(L, {1.0f, 1.0f}, {0, 0});
          }) == fq::ErrorCode::kParamCountMismatch);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  REQUIRE(error_code_of([&] {
            q.set_qparams(L, {1.0f, nan, 1.0f}, {0, 0, 0});
          }) == fq::ErrorCode::kInvalidScale);
  REQUIRE(error_code_of([&] {
            q.set_qparams(L, {1.0f, 0.0f, 1.0f}, {0, 0, 0});
          }) == fq::ErrorCode::kInvalidScale);
  REQUIRE(error_code_of([&] {
            q.set_qparams(L, {1.0f, -1.0f, 1.0f}, {0, 0, 0});
          }) == fq::ErrorCode::kInvalidScale);
  REQUIRE(error_code_of([&] {
            q.set_qparams(L, {1.0f, 1.0f, 1.0f}, {0, 1, 0});
          }) == fq::ErrorCode::kInvalidZeroPoint);  // symmetric: zero point fixed
  fq::Int4WeightGroup128Affine a;
  const fq::GroupLayout La = a.layout_of(Shape{1, 128}.data(), 2);
  REQUIRE(error_code_of([&] { a.set_qparams(La, {1.0f}, {16}); }) ==
          fq::ErrorCode::kInvalidZeroPoint);
  a.set_qparams(La, {0.5f}, {15});  // valid: frozen
  REQUIRE_FALSE(a.dynamic());
  // Non-contiguous input.
  std::vector<float> big(64 * 2);
  const std::int64_t shp[2] = {2, 32}, str[2] = {64, 1};
  fq::TensorView<const float> strided(big.data(), 2, shp, str);
  REQUIRE(error_code_of([&] {
            q.forward(strided, view(y.data(), {2, 32}));
          }) == fq::ErrorCode::kInvalidLayout);
  // Output of another shape.
  REQUIRE(error_code_of([&] {
            q.forward(view(x.data(), {2, 32}), view(y.data(), {1, 64}));
          }) == fq::ErrorCode::kShapeMismatch);
  REQUIRE(error_code_of([] { fq::Int4WeightGroupSymmetric r(0); }) ==
          fq::ErrorCode::kInvalidArgument);
  // The low-level entry point validates the scales it is given.
  const float s[2] = {1.0f, std::numeric_limits<float>::infinity()};
  const std::int32_t z[2] = {0, 0};
  const fq::GroupLayout L2 = q.layout_of(Shape{2, 32}.data(), 2);
  REQUIRE(error_code_of([&] {
            fq::fake_quantize_per_group<fq::Int4WeightGroup32Symmetric::scheme>(
                view<const float>(x.data(), {2, 32}), view(y.data(), {2, 32}), nullptr, L2, s, z,
                fq::Int4WeightGroup32Symmetric::range());
          }) == fq::ErrorCode::kInvalidScale);
}

namespace {

/// A frozen quantizer on [groups, G] (each row one group) and its grid: one channel per group.
template <class Q>
fq::testing::Grid frozen_grid(Q& q, std::int64_t groups, std::int64_t G, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(0.01f, 0.5f);
  std::vector<float> s(static_cast<std::size_t>(groups));
  std::vector<std::int32_t> z(s.size());
  const auto r = Q::range();
  for (std::size_t g = 0; g < s.size(); ++g) {
    s[g] = u(rng);
    z[g] = Q::scheme::mapping::kSymmetric
               ? Q::symmetric_zero_point()
               : std::int32_t(r.quant_min + std::int64_t(rng() % std::uint64_t(r.span() + 1)));
  }
  const Shape shape{groups, G};
  q.set_qparams(q.layout_of(shape.data(), 2), s, z);
  std::vector<std::vector<double>> lv;
  for (std::size_t g = 0; g < s.size(); ++g)
    lv.push_back(fq::testing::Grid::affine_levels(s[g], z[g], r));
  return fq::testing::Grid::per_channel(std::move(lv), 0);
}

}  // namespace

TEST_CASE("group: the testing kit on frozen quantizers", "[formats][group][testing_kit]") {
  auto run = [](auto& q, std::int64_t groups, std::int64_t G, std::uint32_t seed) {
    fq::testing::QuantizerCheckOptions o;
    o.grid = frozen_grid(q, groups, G, seed);
    o.channel_axis = 0;
    o.shape = {groups, G};
    FQ_REQUIRE_QUANTIZER(q, o);
    fq::testing::GradientCheckOptions go;
    go.grid = o.grid;
    go.channel_axis = 0;
    go.shape = o.shape;
    FQ_REQUIRE_GRADIENTS(q, go);
  };
  fq::Int4WeightGroup32Symmetric a;
  run(a, 8, 32, 1);
  fq::Int4WeightGroup128Affine b;
  run(b, 4, 128, 2);
  fq::Int2WeightGroup32Symmetric c;
  run(c, 6, 32, 3);
  fq::Int8ActPerTokenDynamic d;
  run(d, 5, 48, 4);
}

TEST_CASE("group: STE backward and the tape", "[formats][group][tape]") {
  fq::Int4WeightGroup32Symmetric q;
  const Shape shape{4, 64};
  std::vector<float> x = group_data(256, 41), y(256), dy(256), dx(256);
  for (std::size_t i = 0; i < 256; ++i) dy[i] = 0.5f + float(i % 5);
  x[3] = 100.0f;  // the group's scale is 100 / 7.5: x[3] rounds to 7.5 -> 8 > 7: masked
  fq::Mask m;
  q.forward(view(x.data(), shape), view(y.data(), shape), &m);
  q.backward(view(dy.data(), shape), m, view(dx.data(), shape));
  REQUIRE_FALSE(m.test_linear(3));
  for (std::size_t i = 0; i < 256; ++i)
    REQUIRE(dx[i] == (m.test_linear(std::int64_t(i)) ? dy[i] : 0.0f));

  fq::Tape tape;
  std::vector<float> gx(256, 0.0f);
  fq::Var xv = tape.leaf(x.data(), gx.data(), {4, 64});
  fq::Int4WeightGroup32Symmetric tq;
  fq::Var yv = fq::ops::fake_quant(tape, xv, tq);
  for (std::int64_t i = 0; i < 256; ++i)
    REQUIRE(bits_of(yv.value()[i]) == bits_of(y[std::size_t(i)]));
  tape.backward(fq::ops::mean(tape, yv));
  for (std::size_t i = 0; i < 256; ++i)
    REQUIRE(gx[i] == (m.test_linear(std::int64_t(i)) ? 1.0f / 256.0f : 0.0f));
}

TEST_CASE("group: QLinear with int4 group weights and int8 per-token outputs",
          "[formats][group][layers]") {
  std::mt19937 rng(7);
  fq::QLinear<fq::Int4WeightGroup32Symmetric, fq::Int8ActPerTokenDynamic> layer(64, 8, rng);
  std::vector<float> x = group_data(5 * 64, 51), gx(x.size(), 0.0f);
  fq::Tape tape;
  fq::Var xv = tape.leaf(x.data(), gx.data(), {5, 64});
  fq::Var y = layer.forward(tape, xv);
  tape.backward(fq::ops::mean(tape, y));
  // The layer's weight fake quant equals the quantizer called directly.
  const std::vector<float>& w = layer.weight().value();
  std::vector<float> wq(w.size());
  fq::Int4WeightGroup32Symmetric direct;
  direct.forward(view(w.data(), {8, 64}), view(wq.data(), {8, 64}));
  REQUIRE(layer.weight_quantizer().scale() == direct.scale());
  REQUIRE(layer.weight_quantizer().layout().groups() == 16);
  // The output is x . wq^T + b, fake-quantized per token: on each row's grid, within one step.
  const auto& aq = layer.output_quantizer();
  REQUIRE(aq.scale().size() == 5);
  const std::vector<float>& b = layer.bias().value();
  for (std::int64_t r = 0; r < 5; ++r)
    for (std::int64_t o = 0; o < 8; ++o) {
      double acc = b[std::size_t(o)];
      for (std::int64_t k = 0; k < 64; ++k)
        acc += double(x[std::size_t(r * 64 + k)]) * double(wq[std::size_t(o * 64 + k)]);
      const float s = aq.scale()[std::size_t(r)];
      const float got = y.value()[r * 8 + o];
      const float level = got / s + float(aq.zero_point()[std::size_t(r)]);
      REQUIRE(std::fabs(level - std::nearbyint(level)) < 1e-3f);
      REQUIRE(std::fabs(double(got) - acc) <= 0.51 * double(s) + 1e-5);
    }
  double gw = 0;
  for (float g : layer.weight().grad()) gw += std::fabs(g);
  REQUIRE(gw > 0);
}
