// SPDX-License-Identifier: MIT
// The SIMD kernels are bit-exact against the scalar reference, for every numerics policy,
// float and double, per tensor and per channel (axis inner and outer), every tail length;
// also the shifted rounding at its range limit, in-place and unaligned runs, and the fast
// per-channel parameter check. The comparisons are registered only when the SIMD kernels are
// compiled (FQ_HAS_XSIMD): a scalar-only build has no second path to compare, and reports
// them skipped (tests/CMakeLists.txt) instead of passing a comparison of the scalar path with
// itself.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include <fakequant/kernels/fake_quantize.hpp>

#include "catch.hpp"
#include "test_util.hpp"

#if FQ_HAS_XSIMD
namespace {

using fq::Isa;
using fq::TensorView;

template <class N, class T>
void check_per_tensor(std::int64_t n, float s, std::int32_t z, fq::QuantRange r,
                      std::uint32_t seed) {
  const auto x =
      fq_test::make_fq_input<T>(static_cast<std::size_t>(n), s, r.quant_min, r.quant_max, z, seed);
  std::vector<T> ya(x.size()), ys(x.size());
  fq::Mask ma, ms;
  fq::fake_quantize_per_tensor<N>(TensorView<const T>(x.data(), {n}), TensorView<T>(ya.data(), {n}),
                                  &ma, s, z, r, Isa::kAuto);
  fq::fake_quantize_per_tensor<N>(TensorView<const T>(x.data(), {n}), TensorView<T>(ys.data(), {n}),
                                  &ms, s, z, r, Isa::kScalar);
  INFO("n " << n << " first mismatch " << fq_test::first_bit_mismatch(ya, ys));
  REQUIRE(fq_test::first_bit_mismatch(ya, ys) == -1);
  REQUIRE(ma.words() == ms.words());
  std::vector<T> yn(x.size());  // without a mask: the run loop's other branch
  fq::fake_quantize_per_tensor<N>(TensorView<const T>(x.data(), {n}), TensorView<T>(yn.data(), {n}),
                                  nullptr, s, z, r, Isa::kAuto);
  REQUIRE(fq_test::first_bit_mismatch(yn, ys) == -1);
  // Backward: dy with specials, both paths.
  auto dy = fq_test::make_fq_input<T>(static_cast<std::size_t>(n), 1.0f, -3, 3, 0, seed + 1);
  std::vector<T> da(x.size()), ds(x.size());
  fq::fake_quantize_backward(TensorView<const T>(dy.data(), {n}), ma, TensorView<T>(da.data(), {n}),
                             Isa::kAuto);
  fq::fake_quantize_backward(TensorView<const T>(dy.data(), {n}), ms, TensorView<T>(ds.data(), {n}),
                             Isa::kScalar);
  REQUIRE(fq_test::first_bit_mismatch(da, ds) == -1);
}

template <class N>
void check_all_sizes() {
  std::uint32_t seed = 100;
  for (std::int64_t n : {0, 1, 3, 7, 8, 15, 16, 17, 31, 33, 63, 64, 65, 127, 129, 1000, 4099}) {
    check_per_tensor<N, float>(n, 0.05f, 3, {0, 255}, seed++);
    check_per_tensor<N, double>(n, 0.05f, 3, {0, 255}, seed++);
  }
  check_per_tensor<N, float>(50000, 0.013333334f, 0, {-128, 127}, seed++);
  check_per_tensor<N, float>(50000, 0.3f, 7, {0, 15}, seed++);
  check_per_tensor<N, float>(50000, 1e-3f, -7, {-32768, 32767}, seed++);
  check_per_tensor<N, double>(20000, 0.25f, 0, {-8, 7}, seed++);
}

}  // namespace

TEST_CASE("SIMD per-tensor is bit-exact against scalar for every numerics policy",
          "[fake_quant][simd]") {
  INFO("SIMD architecture: " << fq::DefaultArch::name());
  check_all_sizes<fq::Numerics<fq::RoundHalfEven, fq::MulByInverse, fq::OverflowToQmin>>();
  check_all_sizes<fq::Numerics<fq::RoundHalfEven, fq::DivideByScale, fq::OverflowSaturate>>();
  check_all_sizes<fq::Numerics<fq::RoundHalfAway, fq::MulByInverse, fq::OverflowToQmin>>();
  check_all_sizes<fq::Numerics<fq::RoundHalfUp, fq::MulByInverse, fq::OverflowSaturate>>();
  check_all_sizes<fq::Numerics<fq::RoundHalfUp, fq::DivideByScale, fq::OverflowToQmin>>();
  check_all_sizes<fq::Numerics<fq::RoundFloor, fq::DivideByScale, fq::OverflowToQmin>>();
}

TEST_CASE("SIMD per-channel is bit-exact against scalar, channel axis outer and inner",
          "[fake_quant][simd]") {
  for (int axis : {0, 1, 3}) {
    for (std::int64_t inner : {1, 5, 16, 33}) {
      const std::int64_t shape[4] = {3, 19, inner, 21};
      const std::int64_t n = 3 * 19 * inner * 21;
      const std::int64_t C = shape[axis];
      std::vector<float> s(static_cast<std::size_t>(C));
      std::vector<std::int32_t> z(static_cast<std::size_t>(C));
      for (std::int64_t c = 0; c < C; ++c) {
        s[static_cast<std::size_t>(c)] = 0.01f * float(c + 1) + 1e-4f * float(c * c);
        z[static_cast<std::size_t>(c)] = static_cast<std::int32_t>(c % 7) - 3;
      }
      const auto x = fq_test::make_fq_input<float>(static_cast<std::size_t>(n), 0.05f, -128, 127, 0,
                                                   static_cast<std::uint32_t>(axis * 100 + inner));
      std::vector<float> ya(x.size()), ys(x.size());
      fq::Mask ma, ms;
      const TensorView<const float> xv(x.data(), {3, 19, inner, 21});
      fq::fake_quantize_per_channel(xv, TensorView<float>(ya.data(), {3, 19, inner, 21}), &ma,
                                    s.data(), z.data(), C, axis, {-128, 127}, Isa::kAuto);
      fq::fake_quantize_per_channel(xv, TensorView<float>(ys.data(), {3, 19, inner, 21}), &ms,
                                    s.data(), z.data(), C, axis, {-128, 127}, Isa::kScalar);
      INFO("axis " << axis << " inner " << inner);
      REQUIRE(fq_test::first_bit_mismatch(ya, ys) == -1);
      REQUIRE(ma.words() == ms.words());
    }
  }
}

TEST_CASE("SIMD per-channel rows (channel axis outermost) are bit-exact, short and long rows",
          "[fake_quant][simd]") {
  // [C, K] weights with C > the kernel's block of 64 channels and every row length around the
  // batch widths, symmetric and affine zero points, several numerics policies; also strided
  // rows (a column block of a wider matrix) and negative row strides.
  using Even = fq::Numerics<fq::RoundHalfEven, fq::MulByInverse, fq::OverflowToQmin>;
  using Div = fq::Numerics<fq::RoundHalfUp, fq::DivideByScale, fq::OverflowSaturate>;
  std::uint32_t seed = 7000;
  for (std::int64_t C : {1, 3, 64, 130}) {
    for (std::int64_t K : {1, 2, 5, 8, 15, 16, 17, 31, 32, 33, 64, 65, 100}) {
      for (bool symmetric : {true, false}) {
        const std::int64_t ld = K + 3;  // row stride of the parent buffer
        std::vector<float> s(static_cast<std::size_t>(C));
        std::vector<std::int32_t> z(static_cast<std::size_t>(C));
        for (std::int64_t c = 0; c < C; ++c) {
          s[static_cast<std::size_t>(c)] = 0.003f * float(c % 11 + 1) + 1e-5f * float(c);
          z[static_cast<std::size_t>(c)] = symmetric ? 0 : static_cast<std::int32_t>(c % 9) - 4;
        }
        const auto x = fq_test::make_fq_input<float>(static_cast<std::size_t>(C * ld), 0.02f, -128,
                                                     127, 0, seed++);
        auto check = [&](auto numerics, const TensorView<const float>& xv,
                         const TensorView<float>& ya, const TensorView<float>& ys,
                         const std::vector<float>& ba, const std::vector<float>& bs) {
          using N = decltype(numerics);
          fq::Mask ma, ms;
          fq::fake_quantize_per_channel<N>(xv, ya, &ma, s.data(), z.data(), C, 0, {-128, 127},
                                           Isa::kAuto);
          fq::fake_quantize_per_channel<N>(xv, ys, &ms, s.data(), z.data(), C, 0, {-128, 127},
                                           Isa::kScalar);
          INFO("C " << C << " K " << K << " symmetric " << symmetric);
          REQUIRE(fq_test::first_bit_mismatch(ba, bs) == -1);
          REQUIRE(ma.words() == ms.words());
          if (C * K >= 64) REQUIRE(ma.count() > 0);  // the data reach the grid
        };
        std::vector<float> ya(x.size()), ys(x.size());
        // Dense [C, K].
        const TensorView<const float> dense(x.data(), {C, K});
        check(Even{}, dense, TensorView<float>(ya.data(), {C, K}),
              TensorView<float>(ys.data(), {C, K}), ya, ys);
        check(Div{}, dense, TensorView<float>(ya.data(), {C, K}),
              TensorView<float>(ys.data(), {C, K}), ya, ys);
        // Rows of K inside rows of ld; then the rows walked backwards.
        check(Even{}, TensorView<const float>(x.data(), {C, K}, {ld, 1}),
              TensorView<float>(ya.data(), {C, K}, {ld, 1}),
              TensorView<float>(ys.data(), {C, K}, {ld, 1}), ya, ys);
        const std::size_t last = static_cast<std::size_t>((C - 1) * ld);
        check(Even{}, TensorView<const float>(x.data() + last, {C, K}, {-ld, 1}),
              TensorView<float>(ya.data() + last, {C, K}, {-ld, 1}),
              TensorView<float>(ys.data() + last, {C, K}, {-ld, 1}), ya, ys);
      }
    }
  }
}

namespace {

/// x = v * s for levels v around the limits of the shifted rounding (|v| near 2^20 .. 2^24,
/// ties included, both signs), plus specials.
std::vector<float> shifted_limit_input(float s) {
  std::vector<float> x;
  for (float base : {0.0f, 0x1p19f, 0x1p20f, 0x1p21f, 0x1p22f - 1.0f, 0x1p22f, 0x1p23f, 0x1p24f}) {
    for (float d : {-2.5f, -1.5f, -1.0f, -0.5f, -0.25f, 0.0f, 0.25f, 0.5f, 1.0f, 1.5f, 2.5f}) {
      for (float sign : {1.0f, -1.0f}) x.push_back(sign * (base + d) * s);
    }
  }
  for (float v : {-0.0f, 1e30f, -1e30f, 9.3e18f, -9.3e18f}) x.push_back(v);
  x.push_back(std::numeric_limits<float>::infinity());
  x.push_back(std::numeric_limits<float>::quiet_NaN());
  return x;
}

template <class N>
void check_per_tensor_data(const std::vector<float>& x, float s, std::int32_t z, fq::QuantRange r) {
  const auto n = static_cast<std::int64_t>(x.size());
  std::vector<float> ya(x.size()), ys(x.size());
  fq::Mask ma, ms;
  fq::fake_quantize_per_tensor<N>(TensorView<const float>(x.data(), {n}),
                                  TensorView<float>(ya.data(), {n}), &ma, s, z, r, Isa::kAuto);
  fq::fake_quantize_per_tensor<N>(TensorView<const float>(x.data(), {n}),
                                  TensorView<float>(ys.data(), {n}), &ms, s, z, r, Isa::kScalar);
  INFO("range [" << r.quant_min << ", " << r.quant_max << "] z " << z << " s " << s
                 << " first mismatch " << fq_test::first_bit_mismatch(ya, ys));
  REQUIRE(fq_test::first_bit_mismatch(ya, ys) == -1);
  REQUIRE(ma.words() == ms.words());
}

}  // namespace

TEST_CASE("SIMD per-tensor: the shifted rounding, its range limit and the wide ranges",
          "[fake_quant][simd]") {
  // Ranges within +-2^20 round by adding 1.5 * 2^23 and clamp shifted by z; wider ones take
  // the general batch (zero point 0: the one without the final subtraction).
  using Torch = fq::TorchNumerics;
  using DivSat = fq::Numerics<fq::RoundHalfEven, fq::DivideByScale, fq::OverflowSaturate>;
  constexpr std::int64_t k20 = std::int64_t{1} << 20;
  const fq::QuantRange ranges[] = {
      {-k20, k20},
      {-k20 - 1, k20},
      {0, k20 + 1},
      {-8 * k20, 8 * k20},         // levels up to 2^23: the shifted rounding would be wrong here
      {0, std::int64_t{1} << 24},  // the widest float-exact ranges (2^24 levels): SIMD
      {-8 * k20, 8 * k20 + 1},     // (one level more: the exact wide path on both)
      {-(std::int64_t{1} << 24), std::int64_t{1} << 24},
      {-8, 7}};
  std::uint32_t seed = 9100;
  for (const auto& r : ranges) {
    for (std::int64_t z64 : {std::int64_t{0}, std::int64_t{7}, r.quant_min, r.quant_max}) {
      const auto z = static_cast<std::int32_t>(z64);
      for (float s : {1.0f, 0.5f, 0.013f}) {
        const auto edge = shifted_limit_input(s);
        check_per_tensor_data<Torch>(edge, s, z, r);
        check_per_tensor_data<DivSat>(edge, s, z, r);
        const auto x = fq_test::make_fq_input<float>(3001, s, r.quant_min, r.quant_max, z, seed++);
        check_per_tensor_data<Torch>(x, s, z, r);
        check_per_tensor_data<DivSat>(x, s, z, r);
      }
    }
  }
}

TEST_CASE("SIMD per-tensor in place and from unaligned starts, around the batch boundaries",
          "[fake_quant][simd]") {
  // The run loop loads each batch before storing the previous one: in place (y = x) and at
  // any offset the result must not change.
  std::uint32_t seed = 9300;
  for (std::int64_t n : {1, 15, 16, 17, 31, 32, 33, 47, 48, 63, 64, 65, 80, 127, 128, 129, 1000}) {
    for (std::size_t offset : {std::size_t{0}, std::size_t{1}, std::size_t{3}}) {
      for (std::int32_t z : {0, 3}) {
        const auto src = fq_test::make_fq_input<float>(static_cast<std::size_t>(n) + offset, 0.05f,
                                                       0, 255, z, seed++);
        std::vector<float> inplace(src), ys(src.size());
        fq::Mask ma, ms;
        fq::fake_quantize_per_tensor(TensorView<const float>(inplace.data() + offset, {n}),
                                     TensorView<float>(inplace.data() + offset, {n}), &ma, 0.05f, z,
                                     {0, 255}, Isa::kAuto);
        fq::fake_quantize_per_tensor(TensorView<const float>(src.data() + offset, {n}),
                                     TensorView<float>(ys.data() + offset, {n}), &ms, 0.05f, z,
                                     {0, 255}, Isa::kScalar);
        const std::vector<float> got(inplace.begin() + static_cast<std::ptrdiff_t>(offset),
                                     inplace.end());
        const std::vector<float> want(ys.begin() + static_cast<std::ptrdiff_t>(offset), ys.end());
        INFO("n " << n << " offset " << offset << " z " << z);
        REQUIRE(fq_test::first_bit_mismatch(got, want) == -1);
        REQUIRE(ma.words() == ms.words());
      }
    }
  }
}

TEST_CASE("SIMD backward: NaN payloads and quietness equal the scalar reference's",
          "[fake_quant][simd][backward]") {
  // Signaling and quiet NaNs of both signs, +-Inf and -g, masked and not, every tail length:
  // dx = dy * mask is a real multiplication on both paths (no folding of dy * 1 into dy).
  const float specials[] = {fq_test::float_from_bits(0x7fa00001u),
                            fq_test::float_from_bits(0xffa00002u),
                            fq_test::float_from_bits(0x7fc00003u),
                            std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::infinity(),
                            -3.0f,
                            -0.0f};
  for (std::int64_t n : {1, 7, 16, 17, 63, 64, 65, 129, 300}) {
    std::vector<float> x(static_cast<std::size_t>(n)), y(x.size()), dy(x.size());
    std::vector<double> xd(x.size()), yd(x.size()), dyd(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) {
      x[i] = (i % 4 == 1) ? 1e6f : 0.25f * float(i % 9);
      dy[i] = specials[i % 7];
      xd[i] = x[i];
      dyd[i] = static_cast<double>(dy[i]);  // (a signaling NaN converts to a quiet one)
    }
    dyd[0] = fq_test::double_from_bits(0x7ff4000000000001ull);  // a signaling double NaN
    fq::Mask m, md;
    fq::fake_quantize_per_tensor(TensorView<const float>(x.data(), {n}),
                                 TensorView<float>(y.data(), {n}), &m, 0.1f, 0, {-128, 127});
    fq::fake_quantize_per_tensor(TensorView<const double>(xd.data(), {n}),
                                 TensorView<double>(yd.data(), {n}), &md, 0.1f, 0, {-128, 127});
    std::vector<float> a(x.size()), s(x.size());
    std::vector<double> ad(x.size()), sd(x.size());
    fq::fake_quantize_backward(TensorView<const float>(dy.data(), {n}), m,
                               TensorView<float>(a.data(), {n}), Isa::kAuto);
    fq::fake_quantize_backward(TensorView<const float>(dy.data(), {n}), m,
                               TensorView<float>(s.data(), {n}), Isa::kScalar);
    fq::fake_quantize_backward(TensorView<const double>(dyd.data(), {n}), md,
                               TensorView<double>(ad.data(), {n}), Isa::kAuto);
    fq::fake_quantize_backward(TensorView<const double>(dyd.data(), {n}), md,
                               TensorView<double>(sd.data(), {n}), Isa::kScalar);
    INFO("n " << n);
    REQUIRE(fq_test::first_bit_mismatch(a, s) == -1);
    REQUIRE(fq_test::first_bit_mismatch(ad, sd) == -1);
    REQUIRE(fq_test::bits_of(a[0]) == 0x7fe00001u);             // quieted, in range
    if (n > 1) REQUIRE(fq_test::bits_of(a[1]) == 0xffe00002u);  // quieted, masked
    REQUIRE(fq_test::bits_of(ad[0]) == 0x7ffc000000000001ull);
  }
}

#endif  // FQ_HAS_XSIMD

using fq::TensorView;

TEST_CASE("per-channel parameter checks: the fast range test agrees with the exact checks",
          "[fake_quant][errors]") {
  // all_channel_params_valid tests the scales' bits as one unsigned range; these values sit on
  // either side of its limits (2^-128 itself is invalid: its inverse overflows).
  using E = fq::ErrorCode;
  const auto code_of = [](auto&& f) { return fq_test::error_code_of(f); };
  std::vector<float> x(64, 0.5f), y(64);
  const TensorView<const float> xv(x.data(), {4, 16});
  const TensorView<float> yv(y.data(), {4, 16});
  auto run = [&](float bad_scale, std::int32_t bad_zero, fq::QuantRange r) {
    std::vector<float> s(4, 0.1f);
    std::vector<std::int32_t> z(4, 0);
    s[2] = bad_scale;
    z[3] = bad_zero;
    return code_of(
        [&] { fq::fake_quantize_per_channel(xv, yv, nullptr, s.data(), z.data(), 4, 0, r); });
  };
  auto fast = [](float scale, std::int32_t zero, fq::QuantRange r) {
    const float s[2] = {0.1f, scale};
    const std::int32_t z[2] = {0, zero};
    return fq::detail::all_channel_params_valid<fq::DefaultArch>(s, z, 2, r);
  };
  const float after_limit = std::nextafter(0x1p-128f, 1.0f);
  for (float ok : {after_limit, 1e-38f, 1.0f, std::numeric_limits<float>::max()}) {
    CHECK(fast(ok, 0, {-128, 127}));
    CHECK(run(ok, 0, {-128, 127}) == E{});
  }
  for (float bad : {0x1p-128f, 0.0f, -0.0f, -1.0f, std::numeric_limits<float>::denorm_min(),
                    std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN(),
                    -std::numeric_limits<float>::max()}) {
    CHECK_FALSE(fast(bad, 0, {-128, 127}));
    CHECK(run(bad, 0, {-128, 127}) == E::kInvalidScale);
  }
  CHECK(fast(0.1f, -128, {-128, 127}));
  CHECK(fast(0.1f, 127, {-128, 127}));
  CHECK_FALSE(fast(0.1f, 128, {-128, 127}));
  CHECK_FALSE(fast(0.1f, -129, {-128, 127}));
  CHECK(run(0.1f, 127, {-128, 127}) == E{});
  CHECK(run(0.1f, -128, {-128, 127}) == E{});
  CHECK(run(0.1f, 128, {-128, 127}) == E::kInvalidZeroPoint);
  CHECK(run(0.1f, -129, {-128, 127}) == E::kInvalidZeroPoint);
  constexpr std::int32_t k24 = std::int32_t{1} << 24;  // a range beyond float-exact
  CHECK(run(0.1f, -k24, {-k24, k24}) == E{});
  CHECK(run(0.1f, k24, {-k24, k24}) == E{});
  CHECK(run(0.1f, k24 + 1, {-k24, k24}) == E::kInvalidZeroPoint);
  CHECK(run(0.1f, 5, {0, 4}) == E::kInvalidZeroPoint);
  CHECK(run(0.1f, -1, {0, 4}) == E::kInvalidZeroPoint);
}
