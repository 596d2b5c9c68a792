// SPDX-License-Identifier: MIT
// fq::col2im_add (kernels/col2im.hpp): the adjoint of im2col (checked on small integers, where
// every sum is exact), and the SIMD kernel bit for bit the scalar reference on geometries with
// rows shorter than, equal to and longer than a vector, padding wider than the kernel's reach,
// strides, row strides ld > OH·OW, signed zeros, infinities and NaN (NaN where the reference
// has NaN: its payload follows the operand order the compiler picks). The buffers are sized
// exactly, so ASan sees any read or write past them.
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include <fakequant/kernels/col2im.hpp>
#include <fakequant/kernels/im2col.hpp>

#include "catch.hpp"
#include "test_util.hpp"

namespace {

std::vector<fq::Conv2dShape> geometries() {
  std::vector<fq::Conv2dShape> out;
  for (std::int64_t w : {1, 5, 8, 14, 16, 17, 33})
    for (std::int64_t k : {1, 2, 3, 5})
      for (std::int64_t pad : {0, 1, 2})
        for (std::int64_t sh : {1, 2})
          for (std::int64_t sw : {1, 2}) {
            fq::Conv2dShape g;
            g.in_channels = w % 2 == 0 ? 2 : 3;
            g.in_h = (w + k) % 7 + 2;
            g.in_w = w;
            g.kernel_h = k;
            g.kernel_w = k == 5 ? 3 : k;
            g.stride_h = sh;
            g.stride_w = sw;
            g.pad_h = pad;
            g.pad_w = (pad + k) % 3;
            // The kernel within the padded input (check_conv2d_shape's rule).
            if (g.in_h + 2 * g.pad_h >= g.kernel_h && g.in_w + 2 * g.pad_w >= g.kernel_w)
              out.push_back(g);
          }
  return out;
}

}  // namespace

TEST_CASE("col2im_add: the adjoint of im2col", "[kernels]") {
  std::mt19937 rng(3);
  for (const fq::Conv2dShape& g : geometries()) {
    const std::int64_t p = g.out_h() * g.out_w(), rows = g.in_channels * g.kernel_h * g.kernel_w,
                       n = g.in_channels * g.in_h * g.in_w;
    std::vector<float> x(static_cast<std::size_t>(n)), d(static_cast<std::size_t>(rows * p));
    for (float& e : x) e = static_cast<float>(static_cast<int>(rng() % 9) - 4);
    for (float& e : d) e = static_cast<float>(static_cast<int>(rng() % 9) - 4);
    std::vector<float> cols(d.size());
    fq::im2col(x.data(), g.in_channels, g, 0.0f, cols.data(), p, fq::Im2colLayout::kRowPerOffset);
    std::vector<float> dx(x.size(), 0.0f);
    fq::col2im_add(d.data(), p, g, dx.data());
    double lhs = 0, rhs = 0;  // <im2col(x), d> = <x, col2im(d)>, exact in double
    for (std::size_t i = 0; i < d.size(); ++i) lhs += double(cols[i]) * double(d[i]);
    for (std::size_t i = 0; i < x.size(); ++i) rhs += double(x[i]) * double(dx[i]);
    INFO("in " << g.in_h << "x" << g.in_w << " kernel " << g.kernel_h << "x" << g.kernel_w
               << " stride " << g.stride_h << "," << g.stride_w << " pad " << g.pad_h << ","
               << g.pad_w);
    REQUIRE(lhs == rhs);
    // One dx element by the definition: the sum of the dcols entries that read it.
    const std::int64_t c = g.in_channels - 1, y = g.in_h / 2, xx = g.in_w - 1;
    float want = 0.0f;
    for (std::int64_t pp = 0; pp < g.kernel_h; ++pp)
      for (std::int64_t q = 0; q < g.kernel_w; ++q)
        for (std::int64_t i = 0; i < g.out_h(); ++i)
          for (std::int64_t j = 0; j < g.out_w(); ++j)
            if (i * g.stride_h - g.pad_h + pp == y && j * g.stride_w - g.pad_w + q == xx)
              want += d[static_cast<std::size_t>(((c * g.kernel_h + pp) * g.kernel_w + q) * p +
                                                 i * g.out_w() + j)];
    REQUIRE(dx[static_cast<std::size_t>((c * g.in_h + y) * g.in_w + xx)] == want);
  }
}

TEST_CASE("col2im_add: the SIMD kernel gives the scalar reference's bits", "[kernels][bit_exact]") {
  INFO("Arch: " << fq::DefaultArch::name());
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0.0f, 3.0f);
  const float inf = std::numeric_limits<float>::infinity(),
              nan = std::numeric_limits<float>::quiet_NaN();
  const auto value = [&] {
    const std::uint32_t r = rng() % 64;
    return r == 0 ? nan : r == 1 ? inf : r == 2 ? -inf : r < 8 ? -0.0f : r < 12 ? 0.0f : nd(rng);
  };
  for (const fq::Conv2dShape& g : geometries())
    for (std::int64_t pad_ld : {0, 3}) {
      const std::int64_t p = g.out_h() * g.out_w(), ld = p + pad_ld,
                         rows = g.in_channels * g.kernel_h * g.kernel_w;
      // Exactly the floats col2im_add may read: rows − 1 strides and the last row's P.
      std::vector<float> d(static_cast<std::size_t>((rows - 1) * ld + p));
      std::vector<float> dx0(static_cast<std::size_t>(g.in_channels * g.in_h * g.in_w));
      for (float& e : d) e = value();
      for (float& e : dx0) e = value();
      std::vector<float> a = dx0, b = dx0, s = dx0;
      fq::col2im_add<fq::DefaultArch>(d.data(), ld, g, a.data());
      fq::detail::col2im_add_scalar(d.data(), ld, g, b.data());
      fq::col2im_add<fq::ScalarArch>(d.data(), ld, g, s.data());
      INFO("in " << g.in_h << "x" << g.in_w << " kernel " << g.kernel_h << "x" << g.kernel_w
                 << " stride " << g.stride_h << "," << g.stride_w << " pad " << g.pad_h << ","
                 << g.pad_w << " ld " << ld);
      for (std::size_t i = 0; i < a.size(); ++i) {
        INFO("dx[" << i << "] " << a[i] << " vs " << b[i]);
        if (std::isnan(b[i])) {       // a NaN's payload and sign depend on operand order, which
          REQUIRE(std::isnan(a[i]));  // the compiler may swap in a commutative add
          REQUIRE(std::isnan(s[i]));
        } else {
          REQUIRE(fq_test::bits_of(a[i]) == fq_test::bits_of(b[i]));
          REQUIRE(fq_test::bits_of(s[i]) == fq_test::bits_of(b[i]));
        }
      }
    }
  // -0 stays -0 where no term reaches a dx element (a select, not + 0), and a sum that ends at
  // -0 (-0 + -0) keeps its sign: a 1x1 input, 3x3 kernel, padding 1, one output.
  fq::Conv2dShape g;
  g.in_h = g.in_w = 1;
  g.kernel_h = g.kernel_w = 3;
  g.pad_h = g.pad_w = 1;
  std::vector<float> d(9, 5.0f), dx{-0.0f};
  d[4] = -0.0f;  // the centre tap is the only one that reads the pixel
  fq::col2im_add(d.data(), 1, g, dx.data());
  CHECK(fq_test::bits_of(dx[0]) == fq_test::bits_of(-0.0f));
}

TEST_CASE("col2im_add: a bad geometry, row stride or buffer is an error", "[kernels]") {
  std::vector<float> d(64, 1.0f), dx(16, 0.0f);
  fq::Conv2dShape g;  // 1 channel, 4x4, 3x3 kernel, padding 1: 16 outputs
  g.in_h = g.in_w = 4;
  g.kernel_h = g.kernel_w = 3;
  g.pad_h = g.pad_w = 1;
  std::vector<float> big(9 * 16, 0.5f);
  CHECK_NOTHROW(fq::col2im_add(big.data(), 16, g, dx.data()));
  CHECK(dx[5] == 4.5f);  // an inner pixel: all nine taps
  // The error's code, or 0 when the call succeeds.
  const auto code = [&](const fq::Conv2dShape& s, std::int64_t ld, const float* src, float* dst) {
    try {
      fq::col2im_add(src, ld, s, dst);
    } catch (const fq::Error& e) {
      return static_cast<int>(e.code());
    }
    return 0;
  };
  const auto as_int = [](fq::ErrorCode c) { return static_cast<int>(c); };
  fq::Conv2dShape zero_kernel = g;
  zero_kernel.kernel_w = 0;
  CHECK(code(zero_kernel, 16, big.data(), dx.data()) == as_int(fq::ErrorCode::kShapeMismatch));
  fq::Conv2dShape too_big = g;
  too_big.kernel_h = 7;  // larger than the padded 6x6 input
  CHECK(code(too_big, 16, big.data(), dx.data()) == as_int(fq::ErrorCode::kShapeMismatch));
  CHECK(code(g, 15, big.data(), dx.data()) ==
        as_int(fq::ErrorCode::kInvalidArgument));  // ld < OH·OW
  CHECK(code(g, 16, nullptr, dx.data()) == as_int(fq::ErrorCode::kInvalidArgument));
  CHECK(code(g, 16, big.data(), nullptr) == as_int(fq::ErrorCode::kInvalidArgument));
  // Nine rows of a stride near INT64_MAX: dcols itself does not fit int64.
  CHECK(code(g, std::int64_t{1} << 61, big.data(), dx.data()) ==
        as_int(fq::ErrorCode::kOutOfMemory));
}
