// SPDX-License-Identifier: MIT
// tests/ops/train_ops_fast_paths.test.cpp: the fast paths of the memory-bound training ops give
// the bits of their definitions — max_pool2d's AVX-512 2x2 forward against the scalar scan
// (values and arg-max, with NaNs and ties), the branch-free ReLU/ReLU6 backward against
// dx + (0 < x < hi ? dy : 0) (with NaN and infinite dy, −0 in dx), and im2col's "same"-padding
// memcpy path against the window definition.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include <catch2/catch.hpp>

#include <fakequant/kernels/im2col.hpp>
#include <fakequant/ops/elementwise.hpp>
#include <fakequant/ops/pool.hpp>
#include <fakequant/tape/tape.hpp>

namespace {

std::uint32_t bits(float v) {
  std::uint32_t b = 0;
  std::memcpy(&b, &v, sizeof b);
  return b;
}

// Few distinct levels (many ties), some NaNs.
std::vector<float> tied_values(std::size_t n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<float> v(n);
  for (auto& e : v) {
    const std::uint32_t r = rng() % 16;
    e = r == 0 ? std::numeric_limits<float>::quiet_NaN() : float(int(r % 5) - 2);
  }
  return v;
}

struct PoolResult {
  std::vector<float> y, dx;
};

template <class Arch>
PoolResult pool(const std::vector<float>& x, fq::Shape s, std::int64_t k, std::int64_t st,
                const std::vector<float>& dy) {
  fq::Tape tape;
  PoolResult r;
  r.dx.assign(x.size(), 0.0f);
  fq::Var y = fq::ops::max_pool2d<Arch>(tape,
                                        tape.leaf(const_cast<float*>(x.data()),  // NOLINT
                                                  r.dx.data(), s),
                                        k, st);
  r.y.assign(y.value(), y.value() + y.numel());
  REQUIRE(dy.size() >= static_cast<std::size_t>(y.numel()));
  std::memcpy(y.grad(), dy.data(), static_cast<std::size_t>(y.numel()) * sizeof(float));
  fq::Var loss = tape.variable({}, true);
  loss.value()[0] = 0.0f;
  tape.backward(loss);
  return r;
}

}  // namespace

TEST_CASE("max_pool2d: the AVX-512 2x2 forward gives the scalar scan's values and arg-max",
          "[ops]") {
  struct Case {
    fq::Shape s;
    std::int64_t k, st;
  };
  const Case cases[] = {{{2, 3, 28, 28}, 2, 2}, {{3, 2, 14, 14}, 2, 2}, {{1, 2, 9, 11}, 3, 2},
                        {{2, 1, 8, 8}, 2, 1},   {{1, 1, 7, 5}, 3, 1},   {{1, 2, 4, 4}, 2, 2},
                        {{1, 2, 7, 10}, 2, 2},  {{1, 1, 5, 40}, 2, 2},  {{1, 1, 6, 9}, 2, 2}};
  for (const Case& c : cases) {
    const auto n = static_cast<std::size_t>(c.s.numel());
    const std::vector<float> x = tied_values(n, 7);
    std::vector<float> dy(n);
    std::mt19937 rng(3);
    for (auto& e : dy) e = float(rng() % 1000) / 64.0f + 1.0f;  // exact sums, all distinct
    const PoolResult a = pool<fq::DefaultArch>(x, c.s, c.k, c.st, dy);
    const PoolResult b = pool<fq::ScalarArch>(x, c.s, c.k, c.st, dy);
    INFO("shape " << c.s.str() << " k " << c.k << " s " << c.st);
    REQUIRE(a.y.size() == b.y.size());
    for (std::size_t i = 0; i < a.y.size(); ++i) REQUIRE(bits(a.y[i]) == bits(b.y[i]));
    for (std::size_t i = 0; i < n; ++i) REQUIRE(bits(a.dx[i]) == bits(b.dx[i]));
  }
  // The scalar scan itself: the first maximum wins, NaN wins (and the first NaN).
  const std::vector<float> x = {1.0f,
                                3.0f,
                                3.0f,
                                2.0f,  // window rows of a 2x4 input
                                std::numeric_limits<float>::quiet_NaN(),
                                0.0f,
                                3.0f,
                                1.0f};
  const std::vector<float> dy = {1.0f, 1.0f};
  const PoolResult r = pool<fq::ScalarArch>(x, {1, 1, 2, 4}, 2, 2, dy);
  CHECK(std::isnan(r.y[0]));
  CHECK(r.y[1] == 3.0f);
  CHECK(r.dx == std::vector<float>{0, 0, 1, 0, 1, 0, 0, 0});
}

TEST_CASE("relu, relu6: the branch-free backward adds dy or +0 exactly", "[ops]") {
  const float inf = std::numeric_limits<float>::infinity(),
              nan = std::numeric_limits<float>::quiet_NaN();
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.0f, 4.0f);
  const std::size_t n = 203;  // a SIMD body and a scalar tail
  std::vector<float> x(n), dy(n), dx0(n);
  for (std::size_t i = 0; i < n; ++i) {
    x[i] = nd(rng);
    dy[i] = nd(rng);
    dx0[i] = i % 7 == 0 ? -0.0f : nd(rng);
  }
  x[1] = 0.0f;
  x[2] = 6.0f;
  x[3] = nan;
  x[4] = inf;
  x[5] = -inf;
  dy[6] = nan;
  dy[7] = inf;
  dy[8] = -inf;
  for (const bool six : {false, true}) {
    const float hi = six ? 6.0f : inf;
    auto run = [&](auto arch) {
      using Arch = decltype(arch);
      fq::Tape tape;
      std::vector<float> dx = dx0;
      fq::Var xv = tape.leaf(x.data(), dx.data(), {static_cast<std::int64_t>(n)});
      fq::Var y = six ? fq::ops::relu6<Arch>(tape, xv) : fq::ops::relu<Arch>(tape, xv);
      std::memcpy(y.grad(), dy.data(), n * sizeof(float));
      fq::Var loss = tape.variable({}, true);
      loss.value()[0] = 0.0f;
      tape.backward(loss);
      return dx;
    };
    const std::vector<float> a = run(fq::DefaultArch{}), b = run(fq::ScalarArch{});
    for (std::size_t i = 0; i < n; ++i) {
      const float want = dx0[i] + (x[i] > 0.0f && x[i] < hi ? dy[i] : 0.0f);
      INFO("relu" << (six ? "6" : "") << " element " << i << " x " << x[i] << " dy " << dy[i]);
      REQUIRE(bits(a[i]) == bits(want));
      REQUIRE(bits(b[i]) == bits(want));
    }
  }
}

TEST_CASE("im2col: the stride-1 'same' rows (one memcpy per kernel offset) equal the windows",
          "[ops]") {
  std::mt19937 rng(43);
  for (int trial = 0; trial < 40; ++trial) {
    fq::Conv2dShape s;
    s.in_channels = 1 + std::int64_t(rng() % 3);
    const std::int64_t half_w = std::int64_t(rng() % 3);  // kernel_w 1, 3, 5
    s.kernel_w = 2 * half_w + 1;
    s.pad_w = half_w;
    s.kernel_h = 1 + std::int64_t(rng() % 5);
    s.pad_h = std::int64_t(rng() % 4);
    s.in_w = 1 + std::int64_t(rng() % 9);
    s.in_h = std::max<std::int64_t>(1, s.kernel_h - 2 * s.pad_h) + std::int64_t(rng() % 6);
    REQUIRE(s.out_w() == s.in_w);  // the path under test
    const std::int64_t c = s.in_channels, k = c * s.kernel_h * s.kernel_w,
                       p = s.out_h() * s.out_w(), ldt = p + 2;
    std::vector<float> x(static_cast<std::size_t>(c * s.in_h * s.in_w));
    for (auto& e : x) e = float(rng() % 512) - 255.5f;
    std::vector<float> ct(static_cast<std::size_t>(k * ldt), -1.0f);
    fq::im2col(x.data(), c, s, 0.25f, ct.data(), ldt, fq::Im2colLayout::kRowPerOffset);
    for (std::int64_t ch = 0; ch < c; ++ch)
      for (std::int64_t i = 0; i < s.kernel_h; ++i)
        for (std::int64_t j = 0; j < s.kernel_w; ++j) {
          const std::int64_t col = (ch * s.kernel_h + i) * s.kernel_w + j;
          for (std::int64_t pos = 0; pos < ldt; ++pos) {
            const std::int64_t oh = pos / s.out_w(), ow = pos % s.out_w(), h = oh - s.pad_h + i,
                               w = ow - s.pad_w + j;
            const bool in = h >= 0 && h < s.in_h && w >= 0 && w < s.in_w;
            const float want = pos >= p ? -1.0f
                               : in ? x[static_cast<std::size_t>((ch * s.in_h + h) * s.in_w + w)]
                                    : 0.25f;
            INFO("trial " << trial << " column " << col << " position " << pos);
            REQUIRE(ct[static_cast<std::size_t>(col * ldt + pos)] == want);
          }
        }
  }
}
