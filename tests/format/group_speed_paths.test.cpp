// SPDX-License-Identifier: MIT
// The fast paths of the group kernels (simd/group_fake_quantize_simd.hpp) against the scalar
// reference (Isa::kScalar), bit for bit (y, mask words, scales, zero points): the W-group
// blocks (symmetric max |x| as int32 bits, affine min/max, super-blocks, word-wise masks),
// the per-row path with its unguarded clamp, and every fallback — G not a multiple of the
// batch width, short last groups, blocks with NaN / +-inf / a scale that overflows, -0 and
// subnormal groups, ties at the range end, in place, frozen.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include <fakequant/quantizer/group_quantizer.hpp>

#include "catch.hpp"
#include "test_util.hpp"

namespace {

using Shape = std::vector<std::int64_t>;
using fq_test::kInf;

fq::TensorView<float> view2(float* d, std::int64_t rows, std::int64_t cols) {
  return fq::TensorView<float>(d, {rows, cols});
}
fq::TensorView<const float> cview2(const float* d, std::int64_t rows, std::int64_t cols) {
  return fq::TensorView<const float>(d, {rows, cols});
}

/// Normal data, then one adversarial pattern per group chosen by `kind`, group by group.
std::vector<float> make_data(std::int64_t rows, std::int64_t cols, std::int64_t G, int kind,
                             std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 2.0f);
  std::vector<float> x(static_cast<std::size_t>(rows * cols));
  for (auto& v : x) v = nd(rng);
  if (kind == 0) return x;
  const std::int64_t gpa = (cols + G - 1) / G;
  std::uniform_int_distribution<int> pick(0, 9);
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t j = 0; j < gpa; ++j) {
      const std::int64_t n = std::min(G, cols - j * G);
      float* g = x.data() + r * cols + j * G;
      std::uniform_int_distribution<std::int64_t> at(0, n - 1);
      switch (pick(rng)) {
        case 0:
          g[at(rng)] = std::numeric_limits<float>::quiet_NaN();
          break;
        case 1:
          g[at(rng)] = kInf;
          break;
        case 2:  // +inf and -inf, no NaN: a NaN running sum without a NaN element
          g[at(rng)] = kInf, g[at(rng)] = -kInf;
          break;
        case 3:  // huge values: (M - m) / (qmax - qmin) overflows for affine ranges
          g[at(rng)] = 3.0e38f, g[at(rng)] = -3.0e38f;
          break;
        case 4:  // zeros of both signs
          for (std::int64_t i = 0; i < n; ++i) g[i] = (i & 1) ? -0.0f : 0.0f;
          break;
        case 5:  // subnormals (scale = eps)
          for (std::int64_t i = 0; i < n; ++i) g[i] = float(i % 7 - 3) * 1.0e-40f;
          break;
        case 6:  // levels and half levels: ties at the range ends
          for (std::int64_t i = 0; i < n; ++i) g[i] = float(static_cast<int>(i % 17) - 8) * 0.5f;
          break;
        case 7:  // a constant group
          for (std::int64_t i = 0; i < n; ++i) g[i] = -1.25f;
          break;
        default:
          break;
      }
    }
  return x;
}

template <class Q>
void compare(Q& q, std::int64_t rows, std::int64_t cols, const std::vector<float>& x) {
  std::vector<float> ya(x.size()), yb(x.size());
  fq::Mask ma, mb;
  q.forward(cview2(x.data(), rows, cols), view2(ya.data(), rows, cols), &ma, fq::Isa::kScalar);
  const auto sa = q.scale();
  const auto za = q.zero_point();
  q.forward(cview2(x.data(), rows, cols), view2(yb.data(), rows, cols), &mb, fq::Isa::kAuto);
  REQUIRE(std::memcmp(ya.data(), yb.data(), ya.size() * sizeof(float)) == 0);
  REQUIRE(ma.words() == mb.words());
  REQUIRE(std::memcmp(sa.data(), q.scale().data(), sa.size() * sizeof(float)) == 0);
  REQUIRE(za == q.zero_point());
  // Without a mask, and in place (y is x).
  std::vector<float> yc = x;
  q.forward(cview2(yc.data(), rows, cols), view2(yc.data(), rows, cols), nullptr, fq::Isa::kAuto);
  REQUIRE(std::memcmp(ya.data(), yc.data(), ya.size() * sizeof(float)) == 0);
  // Frozen (the guarded per-group kernel), when every group was finite.
  bool finite = true;
  for (float s : sa) finite = finite && std::isfinite(s) && std::isfinite(1.0f / s);
  if (finite) {
    q.freeze();
    std::vector<float> xf = x;  // frozen scales see other data too: overflow, NaN, inf
    xf[xf.size() / 2] = std::numeric_limits<float>::quiet_NaN();
    xf[xf.size() / 3] = kInf;
    xf[0] = -1.0e30f;
    q.forward(cview2(xf.data(), rows, cols), view2(ya.data(), rows, cols), &ma, fq::Isa::kScalar);
    q.forward(cview2(xf.data(), rows, cols), view2(yb.data(), rows, cols), &mb, fq::Isa::kAuto);
    REQUIRE(std::memcmp(ya.data(), yb.data(), ya.size() * sizeof(float)) == 0);
    REQUIRE(ma.words() == mb.words());
    q.unfreeze();
  }
}

template <class Range, class Mapping>
using RuntimeGroups = fq::GroupFakeQuantizer<fq::QScheme<
    Range, Mapping, fq::PerGroup<fq::kRuntimeGroupSize, -1, fq::GroupTail::kShortLast>>>;

template <class Q>
void sweep(std::int64_t G, const fq::GroupQParamsRule* rule) {
  Q q(G);
  if (rule) q.set_rule(*rule);
  // cols: whole blocks (16 groups and more), a partial block, a short last group.
  for (std::int64_t cols : {G * 16, G * 37, G * 3 + (G > 1 ? G / 2 + 1 : 0), G}) {
    for (std::int64_t rows : {std::int64_t{1}, std::int64_t{5}}) {
      for (int kind = 0; kind < 2; ++kind) {
        INFO("G " << G << " cols " << cols << " rows " << rows << " kind " << kind);
        compare(q, rows, cols,
                make_data(rows, cols, G, kind, static_cast<std::uint32_t>(G * 131 + cols + kind)));
      }
    }
  }
}

const std::int64_t kGroupSizes[] = {4, 8, 12, 16, 17, 24, 32, 48, 64, 96, 128, 256, 512};

}  // namespace

TEST_CASE("group speed paths: symmetric blocks bit-identical to the scalar reference",
          "[formats][group][simd]") {
  for (std::int64_t G : kGroupSizes) {
    sweep<RuntimeGroups<fq::Int4, fq::Symmetric>>(G, nullptr);
    sweep<RuntimeGroups<fq::Int2, fq::Symmetric>>(G, nullptr);
  }
  sweep<RuntimeGroups<fq::Int8, fq::Symmetric>>(32, nullptr);
  sweep<RuntimeGroups<fq::Int8, fq::Symmetric>>(64, nullptr);
}

TEST_CASE("group speed paths: affine blocks and rows bit-identical to the scalar reference",
          "[formats][group][simd]") {
  const fq::GroupQParamsRule legacy{fq::GroupZeroPoint::kPerTokenMinError,
                                    fq::GroupScaleEps::kFloat32Epsilon};
  const fq::GroupQParamsRule act{fq::GroupZeroPoint::kChooseQParamsAffine,
                                 fq::GroupScaleEps::kFloat32Epsilon};
  for (std::int64_t G : kGroupSizes) {
    sweep<RuntimeGroups<fq::UInt4, fq::Affine>>(G, nullptr);
    sweep<RuntimeGroups<fq::Int8, fq::Affine>>(G, &legacy);
  }
  sweep<RuntimeGroups<fq::Int8, fq::Affine>>(32, &act);
  sweep<RuntimeGroups<fq::Int4, fq::Affine>>(128, &act);
}

TEST_CASE("group speed paths: per token rows bit-identical to the scalar reference",
          "[formats][group][simd]") {
  for (std::int64_t cols : {1024, 1000, 64, 70, 5}) {
    INFO("cols " << cols);
    for (int kind = 0; kind < 2; ++kind) {
      const auto x = make_data(7, cols, cols, kind, static_cast<std::uint32_t>(cols + kind));
      fq::Int8ActPerTokenDynamic a;
      compare(a, 7, cols, x);
      fq::Int8ActPerTokenDynamicLegacy b;
      compare(b, 7, cols, x);
      fq::Int8ActPerTokenSymmetricDynamic c;
      compare(c, 7, cols, x);
    }
  }
}

TEST_CASE("group speed paths: a NaN group zeroes its mask and its y only", "[formats][group]") {
  // Hand-checked: 16 groups of 32 where group 3 holds a NaN and group 9 an infinity.
  std::vector<float> x(16 * 32);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = float(static_cast<int>(i % 15) - 7);
  x[3 * 32 + 5] = std::numeric_limits<float>::quiet_NaN();
  x[9 * 32 + 31] = kInf;
  fq::Int4WeightGroup32Symmetric q;
  std::vector<float> y(x.size());
  fq::Mask m;
  q.forward(cview2(x.data(), 1, 512), view2(y.data(), 1, 512), &m);
  for (std::size_t i = 0; i < x.size(); ++i) {
    const std::size_t g = i / 32;
    if (g == 3 || g == 9) {
      REQUIRE(std::isnan(y[i]));
      REQUIRE(((m.words()[i / 64] >> (i % 64)) & 1u) == 0);
    } else {  // amax 7 -> s = 7 / 7.5; levels round(x * 15/14): exact for |x| <= 7 here
      REQUIRE(std::isfinite(y[i]));
    }
  }
  REQUIRE(std::isnan(q.scale()[3]));
  REQUIRE(q.scale()[9] == kInf);
  REQUIRE(q.scale()[0] == 7.0f / 7.5f);
}
