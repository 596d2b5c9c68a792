// SPDX-License-Identifier: MIT
// Tests of fakequant/core/fake_quantize.hpp: pins, layouts, per-channel, backward, bad input.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include <fakequant/kernels/fake_quantize.hpp>
#include <fakequant/ops/elementwise.hpp>
#include <fakequant/ops/fake_quant.hpp>
#include <fakequant/quantizer/fake_quantizer.hpp>

#include "catch.hpp"
#include "test_util.hpp"

namespace {

using fq::QuantRange;
using fq::TensorView;
using fq_test::bits_of;

using fq_test::kInf;
using fq_test::kNaN;

// An independent transcription of ATen 1.13's CPU kernel (fake_quantize_tensor_cachemask
// kernel): int64 cast (INT64_MIN on overflow, as x86), fmin/fmax in double.
template <class T>
T aten_fq(T x, float s, std::int64_t z, std::int64_t qmin, std::int64_t qmax, bool& mask) {
  const float inv = 1.0f / s;
  const T qf = static_cast<T>(z) + std::nearbyint(x * inv);
  // float32: the int64 cast gives INT64_MIN on overflow and NaN (x86). float64: 1.13's kernel
  // clamps before the cast, so +Inf and huge levels saturate (PyTorch-generated goldens).
  const bool fits = qf >= T(-9223372036854775808.0) && qf < T(9223372036854775808.0);
  const bool saturate_high = std::is_same<T, double>::value && qf >= T(9223372036854775808.0);
  const std::int64_t qv = fits            ? static_cast<std::int64_t>(qf)
                          : saturate_high ? INT64_MAX
                                          : INT64_MIN;
  mask = qmin <= qv && qv <= qmax;
  const double c = std::fmin(std::fmax(double(qv), double(qmin)), double(qmax));
  return static_cast<T>((c - double(z)) * double(s));
}

template <class T>
std::vector<T> fq_pt(const std::vector<T>& x, float s, std::int32_t z, QuantRange r,
                     fq::Mask* m = nullptr) {
  std::vector<T> y(x.size());
  const auto n = static_cast<std::int64_t>(x.size());
  fq::fake_quantize_per_tensor(TensorView<const T>(x.data(), {n}), TensorView<T>(y.data(), {n}), m,
                               s, z, r);
  return y;
}

}  // namespace

TEST_CASE("P1: ties round to even and never give -0", "[fake_quant][golden]") {
  const auto y = fq_pt<float>({.5f, 1.5f, 2.5f, -.5f, -1.5f, -2.5f}, 1.0f, 0, {-128, 127});
  const std::vector<float> want{0, 2, 2, 0, -2, -2};
  CHECK(fq_test::first_bit_mismatch(y, want) == -1);
  CHECK(bits_of(y[3]) == bits_of(0.0f));  // +0, not -0
}

TEST_CASE("P2: x * f32(1/s) as ATen, not x / s", "[fake_quant][golden]") {
  const float a = -0x1.81999ap+3f, b = -0x1.84ccccp+3f;
  auto y = fq_pt<float>({a, b}, 0.1f, 0, {-128, 127});
  CHECK(y[0] == -120 * 0.1f);
  CHECK(y[1] == -122 * 0.1f);
  std::vector<float> x{a, b}, yd(2);
  fq::fake_quantize_per_tensor<fq::Numerics<fq::RoundHalfEven, fq::DivideByScale>>(
      TensorView<const float>(x.data(), {2}), TensorView<float>(yd.data(), {2}), nullptr, 0.1f, 0,
      {-128, 127});
  CHECK(yd[1] == -121 * 0.1f);  // the division rounds -121.4999 to -121
}

TEST_CASE("P3: the mask is tested on the rounded level", "[fake_quant][golden]") {
  fq::Mask m;
  const auto y = fq_pt<float>({-129.f, -128.5f, 127.4f, 127.5f}, 1.0f, 0, {-128, 127}, &m);
  CHECK(y == std::vector<float>{-128, -128, 127, 127});
  CHECK_FALSE(m.test_linear(0));
  CHECK(m.test_linear(1));
  CHECK(m.test_linear(2));
  CHECK_FALSE(m.test_linear(3));
  CHECK(m.count() == 2);
}

TEST_CASE("P4: double tensors use the float32 scale", "[fake_quant][golden]") {
  const auto y = fq_pt<double>({0.1}, 0.1f, 0, {-128, 127});
  CHECK(y[0] == 0.10000000149011612);
}

TEST_CASE("P5: NaN and +-Inf give quant_min with mask 0 (PyTorch 1.13)", "[fake_quant][golden]") {
  fq::Mask m;
  const auto y = fq_pt<float>({kNaN, kInf, -kInf}, 0.5f, 10, {0, 255}, &m);
  CHECK(y == std::vector<float>{-5, -5, -5});
  CHECK(m.count() == 0);
}

TEST_CASE("OverflowSaturate sends +Inf and huge values to quant_max", "[fake_quant][policy]") {
  std::vector<float> x{kNaN, kInf, -kInf, 1e30f, -1e30f}, y(5);
  fq::Mask m;
  fq::fake_quantize_per_tensor<
      fq::Numerics<fq::RoundHalfEven, fq::MulByInverse, fq::OverflowSaturate>>(
      TensorView<const float>(x.data(), {5}), TensorView<float>(y.data(), {5}), &m, 0.5f, 10,
      {0, 255});
  CHECK(y == std::vector<float>{-5, 122.5f, -5, 122.5f, -5});
  CHECK(m.count() == 0);
  // The default maps |x/s| >= 2^63 to quant_min, like the int64 cast in ATen 1.13.
  const auto yd = fq_pt<float>({1e30f, -1e30f, 1e10f}, 0.5f, 10, {0, 255});
  CHECK(yd == std::vector<float>{-5, -5, 122.5f});
}

TEST_CASE("rounding policies on ties", "[fake_quant][policy]") {
  const std::vector<float> x{2.5f, -2.5f, 3.5f, -3.5f, 2.25f, -2.75f};
  auto run = [&](auto numerics) {
    using N = decltype(numerics);
    std::vector<float> y(x.size());
    fq::fake_quantize_per_tensor<N>(TensorView<const float>(x.data(), {6}),
                                    TensorView<float>(y.data(), {6}), nullptr, 1.0f, 0,
                                    {-128, 127});
    return y;
  };
  CHECK(run(fq::Numerics<fq::RoundHalfEven>{}) == std::vector<float>{2, -2, 4, -4, 2, -3});
  CHECK(run(fq::Numerics<fq::RoundHalfAway>{}) == std::vector<float>{3, -3, 4, -4, 2, -3});
  CHECK(run(fq::Numerics<fq::RoundHalfUp>{}) == std::vector<float>{3, -2, 4, -3, 2, -3});
  CHECK(run(fq::Numerics<fq::RoundFloor>{}) == std::vector<float>{2, -3, 3, -4, 2, -3});
}

TEMPLATE_TEST_CASE("per-tensor equals the ATen 1.13 transcription bit for bit",
                   "[fake_quant][golden]", float, double) {
  using T = TestType;
  const struct {
    float s;
    std::int32_t z;
    QuantRange r;
  } cases[] = {{0.1f, 0, {0, 255}},     {0.05f, 128, {0, 255}},        {1.0f / 3, 3, {0, 255}},
               {0.02f, 64, {0, 127}},   {0.0078125f, -5, {-128, 127}}, {0.25f, 0, {-8, 7}},
               {0.3f, 7, {0, 15}},      {1e-3f, 0, {-32768, 32767}},   {0.5f, 0, {-2, 1}},
               {1e-6f, 0, {-128, 127}}, {3.0f, 255, {0, 255}}};
  std::uint32_t seed = 1;
  for (const auto& c : cases) {
    const auto x = fq_test::make_fq_input<T>(4099, c.s, c.r.quant_min, c.r.quant_max, c.z, seed++);
    fq::Mask m;
    const auto y = fq_pt<T>(x, c.s, c.z, c.r, &m);
    for (std::size_t i = 0; i < x.size(); ++i) {
      bool want_mask = false;
      const T want = aten_fq<T>(x[i], c.s, c.z, c.r.quant_min, c.r.quant_max, want_mask);
      INFO("scale " << c.s << " zp " << c.z << " x " << x[i] << " at " << i);
      REQUIRE(bits_of(y[i]) == bits_of(want));
      REQUIRE(m.test_linear(static_cast<std::int64_t>(i)) == want_mask);
    }
  }
}

TEST_CASE("per-channel: each channel uses its own parameters, on any axis", "[fake_quant]") {
  // shape [2, 3, 4, 5]; check axes 0..3 and -1 against per-element per-tensor calls.
  const std::int64_t shape[4] = {2, 3, 4, 5};
  const auto x = fq_test::make_fq_input<float>(120, 0.1f, 0, 255, 9, 77);
  for (int axis : {0, 1, 2, 3, -1}) {
    const int ax = axis < 0 ? axis + 4 : axis;
    const std::int64_t C = shape[ax];
    std::vector<float> s(static_cast<std::size_t>(C));
    std::vector<std::int32_t> z(static_cast<std::size_t>(C));
    for (std::int64_t c = 0; c < C; ++c) {
      s[static_cast<std::size_t>(c)] = 0.03f * float(c + 1);
      z[static_cast<std::size_t>(c)] = static_cast<std::int32_t>(40 * c);
    }
    std::vector<float> y(120);
    fq::Mask m;
    fq::fake_quantize_per_channel(TensorView<const float>(x.data(), {2, 3, 4, 5}),
                                  TensorView<float>(y.data(), {2, 3, 4, 5}), &m, s.data(), z.data(),
                                  C, axis, {0, 255});
    for (std::int64_t i = 0; i < 120; ++i) {
      std::int64_t idx[4], rem = i;
      for (int d = 3; d >= 0; --d) {
        idx[d] = rem % shape[d];
        rem /= shape[d];
      }
      const auto c = static_cast<std::size_t>(idx[ax]);
      bool want_mask = false;
      const float want =
          aten_fq<float>(x[static_cast<std::size_t>(i)], s[c], z[c], 0, 255, want_mask);
      INFO("axis " << axis << " element " << i);
      REQUIRE(bits_of(y[static_cast<std::size_t>(i)]) == bits_of(want));
      REQUIRE(m.test(idx) == want_mask);
    }
  }
}

TEST_CASE("per-channel float zero point is added before rounding (P6)", "[fake_quant][golden]") {
  std::vector<float> x{.5f, 1.5f, 2.5f, -.5f}, y(4);
  const float s = 1.0f;
  const std::int32_t zi = 3;
  fq::fake_quantize_per_channel(TensorView<const float>(x.data(), {1, 4}),
                                TensorView<float>(y.data(), {1, 4}), nullptr, &s, &zi, 1, 0,
                                {-128, 127});
  CHECK(y == std::vector<float>{0, 2, 2, 0});
  const float zf3 = 3.0f, zf05 = 0.5f;
  fq::fake_quantize_per_channel(TensorView<const float>(x.data(), {1, 4}),
                                TensorView<float>(y.data(), {1, 4}), nullptr, &s, &zf3, 1, 0,
                                {-128, 127});
  CHECK(y == std::vector<float>{1, 1, 3, -1});
  fq::fake_quantize_per_channel(TensorView<const float>(x.data(), {1, 4}),
                                TensorView<float>(y.data(), {1, 4}), nullptr, &s, &zf05, 1, 0,
                                {-128, 127});
  CHECK(y == std::vector<float>{.5f, 1.5f, 2.5f, -.5f});
}

TEST_CASE("layouts: strided, transposed, Eigen and in-place give the same values", "[fake_quant]") {
  Eigen::MatrixXf a = Eigen::MatrixXf::Random(37, 53) * 2.0f;  // column-major
  Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> r = a;
  Eigen::MatrixXf ya(37, 53);
  Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> yr(37, 53);
  fq::Mask ma, mr;
  std::vector<float> s(37);
  std::vector<std::int32_t> z(37);
  for (int c = 0; c < 37; ++c) {
    s[static_cast<std::size_t>(c)] = 0.01f + 0.001f * float(c);
    z[static_cast<std::size_t>(c)] = c - 18;
  }
  fq::fake_quantize_per_channel(a, ya, &ma, s.data(), z.data(), 37, 0, {-128, 127});
  fq::fake_quantize_per_channel(r, yr, &mr, s.data(), z.data(), 37, 0, {-128, 127});
  CHECK((ya.array() == yr.array()).all());
  for (std::int64_t i = 0; i < 37; ++i)
    for (std::int64_t j = 0; j < 53; ++j) REQUIRE(ma.test({i, j}) == mr.test({i, j}));
  // A block (non-unit outer stride) and an in-place call.
  Eigen::MatrixXf big = Eigen::MatrixXf::Random(64, 64) * 2.0f, yb(20, 30);
  auto blk = big.block(3, 5, 20, 30);
  Eigen::MatrixXf copy = blk;
  fq::fake_quantize_per_tensor(blk, yb, nullptr, 0.05f, 1, {-128, 127});
  fq::fake_quantize_per_tensor(copy, copy, nullptr, 0.05f, 1, {-128, 127});
  CHECK((yb.array() == copy.array()).all());
  // Negative strides (a reversed vector) visit the same elements.
  std::vector<float> v{0.26f, -1.0f, 7.0f, 0.04f}, out(4), rev(4);
  fq::fake_quantize_per_tensor(TensorView<const float>(v.data() + 3, {4}, {-1}),
                               TensorView<float>(rev.data(), {4}), nullptr, 0.1f, 0, {-128, 127});
  fq::fake_quantize_per_tensor(TensorView<const float>(v.data(), {4}),
                               TensorView<float>(out.data(), {4}), nullptr, 0.1f, 0, {-128, 127});
  CHECK(rev == std::vector<float>{out[3], out[2], out[1], out[0]});
}

TEST_CASE("backward: masked STE and pass-through", "[fake_quant]") {
  std::vector<float> x{-200.f, -1.f, 0.f, 3.3f, 500.f, kNaN}, y(6);
  fq::Mask m;
  fq::fake_quantize_per_tensor(TensorView<const float>(x.data(), {6}),
                               TensorView<float>(y.data(), {6}), &m, 0.1f, 0, {-128, 127});
  std::vector<float> dy{1.f, 2.f, 3.f, 4.f, -5.f, 6.f}, dx(6);
  fq::fake_quantize_backward(TensorView<const float>(dy.data(), {6}), m,
                             TensorView<float>(dx.data(), {6}));
  CHECK(dx == std::vector<float>{0.f, 2.f, 3.f, 4.f, 0.f, 0.f});
  CHECK(bits_of(dx[4]) == bits_of(-0.0f));  // dY * mask, as ATen
  fq::fake_quantize_backward<fq::PassThroughSte>(TensorView<const float>(dy.data(), {6}), m,
                                                 TensorView<float>(dx.data(), {6}));
  CHECK(dx == dy);
  // The backward may read gradients in another layout than the forward wrote the mask in.
  Eigen::MatrixXf a = Eigen::MatrixXf::Random(9, 7) * 20.0f, ya(9, 7);
  fq::Mask ma;
  fq::fake_quantize_per_tensor(a, ya, &ma, 0.1f, 0, {-128, 127});
  Eigen::Matrix<float, 9, 7, Eigen::RowMajor>
      g = Eigen::Matrix<float, 9, 7, Eigen::RowMajor>::Ones(),
      gx;
  fq::fake_quantize_backward(g, ma, gx);
  for (int i = 0; i < 9; ++i)
    for (int j = 0; j < 7; ++j) {
      const float q = std::nearbyint(a(i, j) * (1.0f / 0.1f));
      const bool in = q >= -128 && q <= 127;  // the rounded level is in range
      REQUIRE(gx(i, j) == (in ? 1.0f : 0.0f));
    }
}

TEST_CASE("empty tensors are a no-op", "[fake_quant]") {
  fq::Mask m;
  fq::fake_quantize_per_tensor(TensorView<const float>(nullptr, {0, 5}),
                               TensorView<float>(nullptr, {0, 5}), &m, 0.1f, 0, {-128, 127});
  CHECK(m.numel() == 0);
  fq::fake_quantize_backward(TensorView<const float>(nullptr, {0, 5}), m,
                             TensorView<float>(nullptr, {0, 5}));
  fq::fake_quantize_per_channel(
      TensorView<const float>(nullptr, {3, 0}), TensorView<float>(nullptr, {3, 0}), &m,
      std::vector<float>(3, 1.f).data(), std::vector<std::int32_t>(3, 0).data(), 3, 0, {-128, 127});
  CHECK(m.numel() == 0);
}

TEST_CASE("bad input gets a clear error", "[fake_quant][errors]") {
  std::vector<float> x(8, 1.0f), y(8);
  const TensorView<const float> xv(x.data(), {8});
  const TensorView<float> yv(y.data(), {8});
  const auto code_of = [](auto&& f) { return fq_test::error_code_of(f); };
  using E = fq::ErrorCode;
  for (float bad : {0.0f, -1.0f, kNaN, kInf, 1e-39f})
    CHECK(code_of([&] {
            fq::fake_quantize_per_tensor(xv, yv, nullptr, bad, 0, {-128, 127});
          }) == E::kInvalidScale);
  CHECK(code_of([&] {
          fq::fake_quantize_per_tensor(xv, yv, nullptr, 0.1f, 0, {5, 4});
        }) == E::kInvalidRange);
  CHECK(code_of([&] {  // beyond int32 (wider ranges up to int32 are exact: see below)
          fq::fake_quantize_per_tensor(xv, yv, nullptr, 0.1f, 0, {0, std::int64_t{1} << 31});
        }) == E::kInvalidRange);
  CHECK(code_of([&] {
          fq::fake_quantize_per_tensor(xv, yv, nullptr, 0.1f, 0, {-(std::int64_t{1} << 31) - 1, 0});
        }) == E::kInvalidRange);
  CHECK(code_of([&] {
          fq::fake_quantize_per_tensor(xv, yv, nullptr, 0.1f, 300, {0, 255});
        }) == E::kInvalidZeroPoint);
  CHECK(code_of([&] {
          fq::fake_quantize_per_tensor(xv, yv, nullptr, 0.1f, kNaN, {0, 255});
        }) == E::kInvalidZeroPoint);
  CHECK(code_of([&] {
          fq::fake_quantize_per_tensor(xv, TensorView<float>(y.data(), {4, 2}), nullptr, 0.1f, 0,
                                       {0, 255});
        }) == E::kShapeMismatch);
  CHECK(code_of([&] {
          fq::fake_quantize_per_tensor(xv, TensorView<float>(y.data(), {8}, {0}), nullptr, 0.1f, 0,
                                       {0, 255});
        }) == E::kInvalidLayout);
  CHECK(code_of([&] {
          fq::fake_quantize_per_tensor(TensorView<const float>(x.data(), {7}),
                                       TensorView<float>(x.data() + 1, {7}), nullptr, 0.1f, 0,
                                       {0, 255});
        }) == E::kInvalidLayout);  // partial overlap
  const std::vector<float> s2{0.1f, 0.1f};
  const std::vector<std::int32_t> z2{0, 0};
  const TensorView<const float> x42(x.data(), {4, 2});
  const TensorView<float> y42(y.data(), {4, 2});
  CHECK(code_of([&] {
          fq::fake_quantize_per_channel(x42, y42, nullptr, s2.data(), z2.data(), 2, 0, {0, 255});
        }) == E::kParamCountMismatch);
  CHECK(code_of([&] {
          fq::fake_quantize_per_channel(x42, y42, nullptr, s2.data(), z2.data(), 2, 2, {0, 255});
        }) == E::kInvalidAxis);
  CHECK(code_of([&] {
          fq::fake_quantize_per_channel(x42, y42, nullptr, s2.data(), z2.data(), 2, -3, {0, 255});
        }) == E::kInvalidAxis);
  const std::vector<float> sbad{0.1f, -0.1f};
  CHECK(code_of([&] {
          fq::fake_quantize_per_channel(x42, y42, nullptr, sbad.data(), z2.data(), 2, 1, {0, 255});
        }) == E::kInvalidScale);
  fq::Mask m;
  CHECK(code_of([&] { fq::fake_quantize_backward(xv, m, yv); }) ==
        E::kInvalidArgument);  // a mask no forward wrote
  fq::fake_quantize_per_tensor(xv, yv, &m, 0.1f, 0, {0, 255});
  CHECK(code_of([&] { fq::fake_quantize_backward(x42, m, y42); }) == E::kShapeMismatch);
  // Shape errors print both shapes, not their ranks.
  try {
    fq::fake_quantize_per_tensor(xv, TensorView<float>(y.data(), {4, 2}), nullptr, 0.1f, 0,
                                 {0, 255});
    FAIL("no error");
  } catch (const fq::Error& e) {
    CHECK_THAT(e.what(), Catch::Contains("[8]") && Catch::Contains("[4, 2]"));
  }
  try {
    fq::fake_quantize_backward(x42, m, y42);
    FAIL("no error");
  } catch (const fq::Error& e) {
    CHECK_THAT(e.what(), Catch::Contains("[4, 2]") && Catch::Contains("[8]"));
  }
  // A NaN float zero point is named as such.
  try {
    fq::fake_quantize_per_tensor(xv, yv, nullptr, 0.1f, kNaN, {0, 255});
    FAIL("no error");
  } catch (const fq::Error& e) {
    CHECK_THAT(e.what(), Catch::Contains("zero point is NaN"));
  }
  // The message names the function and the value.
  try {
    fq::fake_quantize_per_tensor(xv, yv, nullptr, -2.0f, 0, {0, 255});
    FAIL("no error");
  } catch (const fq::Error& e) {
    CHECK_THAT(e.what(), Catch::Contains("fake_quantize_per_tensor") && Catch::Contains("-2"));
  }
}

// ---------------------------------------------------------------------------------------
// Issue 12: float zero points (fused and not), signs of zero, int32 ranges, one backward
// rule, empty per-channel tensors.

namespace {

/// ATen 1.13's float-zero-point kernel (fake_quantize_per_channel_affine, float zero_point):
/// q = int64(rne(x * f32(1/s) + z)) with the sum fused (x86 AVX2/AVX-512 dispatch) or rounded
/// twice (ATEN_CPU_CAPABILITY=default); y = (clamp(q) - z) * s in double.
template <class T>
T aten_fq_float_zp(T x, float s, float z, std::int64_t qmin, std::int64_t qmax, bool fused,
                   bool& mask) {
  const float inv = 1.0f / s;
  const T t = fused ? std::fma(x, T(inv), T(z)) : fq::detail::no_contract(x * T(inv)) + T(z);
  const T qf = std::nearbyint(t);
  const bool fits = qf >= T(-9223372036854775808.0) && qf < T(9223372036854775808.0);
  const bool saturate_high = std::is_same<T, double>::value && qf >= T(9223372036854775808.0);
  const std::int64_t qv = fits            ? static_cast<std::int64_t>(qf)
                          : saturate_high ? INT64_MAX
                                          : INT64_MIN;
  mask = qmin <= qv && qv <= qmax;
  const double c = std::fmin(std::fmax(double(qv), double(qmin)), double(qmax));
  return static_cast<T>((c - double(z)) * double(s));
}

/// x around the levels of [qmin, qmax] with zero point z and scale s: near both ends, across
/// the range, beyond it, and NaN / +-Inf / +-0.
template <class T>
std::vector<T> wide_input(float s, double z, std::int64_t qmin, std::int64_t qmax,
                          std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(-0.1, 1.1);
  std::vector<T> x;
  const double span = double(qmax) - double(qmin);
  for (double k : {double(qmin) - 2, double(qmin) - 1, double(qmin), double(qmin) + 1,
                   double(qmax) - 1, double(qmax), double(qmax) + 1, double(qmax) + 2, 16777215.0,
                   16777217.0, -16777217.0, 33554433.0})
    for (double off : {0.0, 0.5, -0.25}) x.push_back(static_cast<T>((k + off - z) * double(s)));
  for (int i = 0; i < 300; ++i)
    x.push_back(static_cast<T>((double(qmin) + u(rng) * span - z) * double(s)));
  for (T v : {std::numeric_limits<T>::quiet_NaN(), std::numeric_limits<T>::infinity(),
              -std::numeric_limits<T>::infinity(), T(0.0), T(-0.0), T(3e38), T(-3e38)})
    x.push_back(v);
  return x;
}

template <class N, class T, class Z>
void check_wide(const std::vector<T>& x, float s, Z z, QuantRange r, bool fused) {
  const auto n = static_cast<std::int64_t>(x.size());
  std::vector<T> y(x.size());
  fq::Mask m;
  for (auto path : {fq::Isa::kAuto, fq::Isa::kScalar}) {
    fq::fake_quantize_per_tensor<N>(TensorView<const T>(x.data(), {n}),
                                    TensorView<T>(y.data(), {n}), &m, s, z, r, path);
    for (std::int64_t i = 0; i < n; ++i) {
      const auto iu = static_cast<std::size_t>(i);
      bool want_mask = false;
      T want;
      if constexpr (std::is_floating_point<Z>::value)
        want = aten_fq_float_zp<T>(x[iu], s, z, r.quant_min, r.quant_max, fused, want_mask);
      else
        want = aten_fq<T>(x[iu], s, z, r.quant_min, r.quant_max, want_mask);
      INFO("range [" << r.quant_min << ", " << r.quant_max << "] s " << s << " z " << z << " x "
                     << x[iu] << " y " << y[iu] << " want " << want);
      REQUIRE(bits_of(y[iu]) == bits_of(want));
      REQUIRE(m.test_linear(i) == want_mask);
    }
  }
}

}  // namespace

TEST_CASE("int32 ranges beyond float32's exact integers are exact, float and double",
          "[fake_quant][range]") {
  constexpr std::int64_t k24 = std::int64_t{1} << 24, k31 = std::int64_t{1} << 31;
  const QuantRange ranges[] = {{-k24, k24},     {-k31, k31 - 1},     {0, k31 - 1},
                               {-k31, 0},       {-2 * k24, 2 * k24}, {-k24 - 3, k24 - 5},
                               {-100, k24 + 7}, {-128, 127},         {-k24, k24 - 1}};
  int wide = 0;
  std::uint32_t seed = 1;
  for (const QuantRange& r : ranges) {
    wide += !fq::float_exact_range(r);
    const std::int64_t span = r.quant_max - r.quant_min;
    for (float s : {1.0f, 0.37f, 1e-3f, 3.0f}) {
      for (std::int64_t z64 : {r.quant_min, r.quant_max, r.quant_min + span / 3 + 1}) {
        const auto z = static_cast<std::int32_t>(z64);
        check_wide<fq::TorchNumerics>(
            wide_input<float>(s, double(z), r.quant_min, r.quant_max, seed), s, z, r, true);
        check_wide<fq::TorchNumerics>(
            wide_input<double>(s, double(z), r.quant_min, r.quant_max, seed), s, z, r, true);
        const float zf = static_cast<float>(z64) + 0.25f;
        const auto xf = wide_input<float>(s, double(zf), r.quant_min, r.quant_max, seed);
        check_wide<fq::TorchNumerics>(xf, s, zf, r, true);
        check_wide<fq::TorchNumericsNoFma>(xf, s, zf, r, false);
        ++seed;
      }
    }
  }
  CHECK(wide >= 7);
  // The old failure: (c - z) rounded to float32 before the multiply. With quant_max = 2^24
  // and z = 2^24 - 33554369, c - z = 33554369 is not a float: y is f32(33554369 * 0.37f) =
  // 12415117, not f32(f32(33554369) * 0.37f) = 12415116.
  const float x = 1e10f;  // clipped to quant_max (not beyond 2^63, which gives quant_min)
  float y = 0;
  fq::fake_quantize_per_tensor(TensorView<const float>(&x, {1}), TensorView<float>(&y, {1}),
                               nullptr, 0.37f, (1 << 24) - 33554369, {-k24, k24});
  CHECK(y == 12415117.0f);
}

TEST_CASE("int32 ranges per channel: int and float zero points, channel axis outer and inner",
          "[fake_quant][range]") {
  constexpr std::int64_t k31 = std::int64_t{1} << 31;
  const QuantRange r{-k31, k31 - 1};
  const std::int64_t C = 5, K = 67;
  const std::vector<float> s{1.0f, 0.37f, 1e-3f, 3.0f, 0.05f};
  const std::vector<std::int32_t> zi{-2147483647 - 1, 2147483647, 0, 12345, -99999999};
  std::vector<float> zf(zi.size());
  for (std::size_t c = 0; c < zi.size(); ++c) zf[c] = static_cast<float>(zi[c]) + 0.5f;
  std::vector<float> x(static_cast<std::size_t>(C * K)), y(x.size());
  for (std::int64_t c = 0; c < C; ++c) {
    const auto xc = wide_input<float>(s[std::size_t(c)], double(zi[std::size_t(c)]), r.quant_min,
                                      r.quant_max, std::uint32_t(c + 7));
    for (std::int64_t k = 0; k < K; ++k) x[std::size_t(c * K + k)] = xc[std::size_t(k * 5)];
  }
  for (int axis : {0, 1}) {
    // axis 0: [C, K] row-major; axis 1: the same data viewed as [K, C] (channel innermost).
    const std::int64_t rows = axis == 0 ? C : K, cols = axis == 0 ? K : C;
    const std::int64_t shape[2] = {rows, cols};
    const std::int64_t strides[2] = {axis == 0 ? K : 1, axis == 0 ? 1 : K};
    const TensorView<const float> xv(x.data(), 2, shape, strides);
    const TensorView<float> yv(y.data(), 2, shape, strides);
    fq::Mask m;
    for (bool float_zp : {false, true}) {
      for (auto path : {fq::Isa::kAuto, fq::Isa::kScalar}) {
        if (float_zp)
          fq::fake_quantize_per_channel(xv, yv, &m, s.data(), zf.data(), C, axis, r, path);
        else
          fq::fake_quantize_per_channel(xv, yv, &m, s.data(), zi.data(), C, axis, r, path);
        for (std::int64_t c = 0; c < C; ++c)
          for (std::int64_t k = 0; k < K; ++k) {
            const auto i = static_cast<std::size_t>(c * K + k);
            const auto cu = static_cast<std::size_t>(c);
            bool want_mask = false;
            const float want =
                float_zp ? aten_fq_float_zp<float>(x[i], s[cu], zf[cu], r.quant_min, r.quant_max,
                                                   true, want_mask)
                         : aten_fq<float>(x[i], s[cu], zi[cu], r.quant_min, r.quant_max, want_mask);
            INFO("axis " << axis << " channel " << c << " x " << x[i]);
            REQUIRE(bits_of(y[i]) == bits_of(want));
            REQUIRE(m.test(axis == 0 ? std::initializer_list<std::int64_t>{c, k}
                                     : std::initializer_list<std::int64_t>{k, c}) == want_mask);
          }
      }
    }
  }
}

TEST_CASE("float zero points: fused by default, twice rounded with TorchNumericsNoFma",
          "[fake_quant][policy]") {
  // x chosen so that x * f32(1/s) + z lies within a few ulps of a .5 boundary: inside the
  // range and at both clip edges, where the mask differs too.
  const QuantRange r{-128, 127};
  int differ = 0, mask_differ = 0;
  for (float s : {0.1f, 0.037f, 0.0123f, 0.3f}) {
    for (float z : {3.3f, -4.25f, 0.5f, 1.7f}) {
      std::vector<float> x;
      for (std::int64_t k :
           {std::int64_t{-129}, std::int64_t{-128}, std::int64_t{-5}, std::int64_t{0},
            std::int64_t{1}, std::int64_t{17}, std::int64_t{126}, std::int64_t{127}}) {
        float b = static_cast<float>((double(k) + 0.5 - double(z)) * double(s));
        for (int i = 0; i < 8; ++i) b = std::nextafter(b, -kInf);
        for (int i = 0; i < 17; ++i, b = std::nextafter(b, kInf)) x.push_back(b);
      }
      const auto n = static_cast<std::int64_t>(x.size());
      std::vector<float> yf(x.size()), yu(x.size());
      fq::Mask mf, mu;
      fq::fake_quantize_per_channel(TensorView<const float>(x.data(), {1, n}),
                                    TensorView<float>(yf.data(), {1, n}), &mf, &s, &z, 1, 0, r);
      fq::fake_quantize_per_channel<fq::TorchNumericsNoFma>(
          TensorView<const float>(x.data(), {1, n}), TensorView<float>(yu.data(), {1, n}), &mu, &s,
          &z, 1, 0, r);
      for (std::int64_t i = 0; i < n; ++i) {
        const auto iu = static_cast<std::size_t>(i);
        bool want_mf = false, want_mu = false;
        const float want_f = aten_fq_float_zp<float>(x[iu], s, z, -128, 127, true, want_mf);
        const float want_u = aten_fq_float_zp<float>(x[iu], s, z, -128, 127, false, want_mu);
        INFO("s " << s << " z " << z << " x " << x[iu]);
        REQUIRE(bits_of(yf[iu]) == bits_of(want_f));
        REQUIRE(bits_of(yu[iu]) == bits_of(want_u));
        REQUIRE(mf.test_linear(i) == want_mf);
        REQUIRE(mu.test_linear(i) == want_mu);
        differ += bits_of(want_f) != bits_of(want_u);
        mask_differ += want_mf != want_mu;
      }
      // Per tensor, a float zero point follows the same two rules.
      std::vector<float> yp(x.size());
      fq::fake_quantize_per_tensor(TensorView<const float>(x.data(), {n}),
                                   TensorView<float>(yp.data(), {n}), nullptr, s, z, r);
      REQUIRE(fq_test::first_bit_mismatch(yp, yf) == -1);
      fq::fake_quantize_per_tensor<fq::TorchNumericsNoFma>(TensorView<const float>(x.data(), {n}),
                                                           TensorView<float>(yp.data(), {n}),
                                                           nullptr, s, z, r);
      REQUIRE(fq_test::first_bit_mismatch(yp, yu) == -1);
    }
  }
  CHECK(differ >= 20);  // the chosen points do tell the two kernels apart
  CHECK(mask_differ >= 2);
  // The QScheme knob: FloatZeroPoint is fused, FloatZeroPointNoFma is not.
  using Fused =
      fq::QScheme<fq::Int8, fq::Affine, fq::PerChannel<0>>::with_zero_point<fq::FloatZeroPoint>;
  using Unfused = Fused::with_zero_point<fq::FloatZeroPointNoFma>;
  STATIC_REQUIRE(std::is_same<Fused::numerics, fq::TorchNumerics>::value);
  STATIC_REQUIRE(std::is_same<Unfused::numerics, fq::TorchNumericsNoFma>::value);
}

TEST_CASE("y is never -0.0, float or integer zero point, any path", "[fake_quant]") {
  // x * f32(1/s) in [-0.5, 0) rounds to -0; ATen's int64 level makes it +0.
  const std::vector<float> base{-0.0f,       0.0f,  -1e-30f, -0.01f, -0.049f, -0.05f,
                                -0.0500001f, 0.01f, -0.3f,   0.3f,   -0.5f};
  std::vector<float> x;
  for (int rep = 0; rep < 13; ++rep) x.insert(x.end(), base.begin(), base.end());
  const auto n = static_cast<std::int64_t>(x.size());
  std::vector<float> y(x.size());
  auto require_no_negative_zero = [&](const char* what) {
    for (float v : y) {
      INFO(what);
      REQUIRE(bits_of(v) != bits_of(-0.0f));
    }
  };
  for (auto path : {fq::Isa::kAuto, fq::Isa::kScalar}) {
    for (const QuantRange r : {QuantRange{-128, 127}, QuantRange{0, 255}}) {
      for (float z : {0.0f, -0.0f}) {
        for (float s : {0.1f, 1.0f}) {
          fq::fake_quantize_per_tensor(TensorView<const float>(x.data(), {n}),
                                       TensorView<float>(y.data(), {n}), nullptr, s, z, r, path);
          require_no_negative_zero("per tensor, float zero point");
          fq::fake_quantize_per_tensor<fq::TorchNumericsNoFma>(
              TensorView<const float>(x.data(), {n}), TensorView<float>(y.data(), {n}), nullptr, s,
              z, r, path);
          require_no_negative_zero("per tensor, float zero point, no fma");
          const std::vector<float> sc(static_cast<std::size_t>(n), s), zc(sc.size(), z);
          fq::fake_quantize_per_channel(TensorView<const float>(x.data(), {1, n}),
                                        TensorView<float>(y.data(), {1, n}), nullptr, sc.data(),
                                        zc.data(), n, 1, r, path);  // a run along the channels
          require_no_negative_zero("per channel along the axis, float zero point");
        }
      }
      fq::fake_quantize_per_tensor(TensorView<const float>(x.data(), {n}),
                                   TensorView<float>(y.data(), {n}), nullptr, 0.1f, 0, r, path);
      require_no_negative_zero("per tensor, integer zero point");
      std::vector<double> xd(x.begin(), x.end()), yd(x.size());
      fq::fake_quantize_per_tensor(TensorView<const double>(xd.data(), {n}),
                                   TensorView<double>(yd.data(), {n}), nullptr, 0.1f, -0.0f, r,
                                   path);
      for (double v : yd) REQUIRE(bits_of(v) != bits_of(-0.0));
    }
  }
}

TEST_CASE("one backward rule: dy * mask on every path, the tape's node included, NaN and Inf",
          "[fake_quant][backward]") {
  // ATen's dY * mask: NaN * 0 is NaN, Inf * 0 is NaN, -g * 0 is -0, and a signaling NaN comes
  // out quieted (payload kept) where the mask is 1 as where it is 0 — on the SIMD path, the
  // scalar path and the tape's fake-quant node alike.
  const float snan = fq_test::float_from_bits(0x7fa00001u);
  const float snan_neg = fq_test::float_from_bits(0xffa00002u);
  const float qnan = fq_test::float_from_bits(0x7fc00123u);
  const std::vector<float> dys{snan, snan_neg, qnan, kInf, -kInf, -2.0f, 0.0f, -0.0f, 1.5f};
  const std::int64_t n = 150;  // SIMD batches and a scalar tail
  std::vector<float> x(static_cast<std::size_t>(n)), dy(x.size()), y(x.size());
  for (std::int64_t i = 0; i < n; ++i) {
    const auto iu = static_cast<std::size_t>(i);
    x[iu] = (i % 3 == 0) ? 1000.0f : 0.5f * float(i % 7);  // every third element clipped
    dy[iu] = dys[static_cast<std::size_t>(i) % dys.size()];
  }
  fq::FakeQuantizer<fq::QScheme<fq::Int8>> q;
  q.set_qparams(0.1f, 0);
  fq::Mask m;
  q.forward(TensorView<const float>(x.data(), {n}), TensorView<float>(y.data(), {n}), &m);
  std::vector<float> da(x.size()), ds(x.size());
  fq::fake_quantize_backward(TensorView<const float>(dy.data(), {n}), m,
                             TensorView<float>(da.data(), {n}), fq::Isa::kAuto);
  fq::fake_quantize_backward(TensorView<const float>(dy.data(), {n}), m,
                             TensorView<float>(ds.data(), {n}), fq::Isa::kScalar);
  for (std::int64_t i = 0; i < n; ++i) {
    const auto iu = static_cast<std::size_t>(i);
    const bool in = m.test_linear(i);
    INFO("element " << i << " dy bits " << std::hex << bits_of(dy[iu]) << " in " << in);
    REQUIRE(bits_of(da[iu]) == bits_of(ds[iu]));  // SIMD = scalar, NaN payloads included
    if (std::isnan(dy[iu])) {
      REQUIRE(std::isnan(da[iu]));
      REQUIRE((bits_of(da[iu]) & 0x00400000u) != 0);                                // quiet
      REQUIRE((bits_of(da[iu]) | 0x00400000u) == (bits_of(dy[iu]) | 0x00400000u));  // payload
    } else if (std::isinf(dy[iu])) {
      REQUIRE((in ? bits_of(da[iu]) == bits_of(dy[iu]) : std::isnan(da[iu])));
    } else {
      REQUIRE(bits_of(da[iu]) == bits_of(dy[iu] * (in ? 1.0f : 0.0f)));
    }
  }
  // The tape's node adds the same rule's dx into the gradient (0 + dx).
  fq::Tape tape;
  std::vector<float> grad(x.size(), 0.0f);
  fq::Var xv = tape.leaf(x.data(), grad.data(), {n});
  fq::Var yv = fq::ops::fake_quant(tape, xv, q);
  // Seed y's gradient with dy itself (no arithmetic on it first): the loss comes from another
  // leaf, and backward runs every recorded node.
  float one = 1.0f, one_grad = 0.0f;
  const fq::Var loss = fq::ops::mean(tape, tape.leaf(&one, &one_grad, {1}));
  std::copy(dy.begin(), dy.end(), yv.grad());
  tape.backward(loss);
  for (std::size_t i = 0; i < x.size(); ++i) {
    INFO("element " << i);
    REQUIRE(bits_of(grad[i]) == bits_of(0.0f + da[i]));
  }
}

TEST_CASE("per-channel: an empty tensor is a no-op whatever the parameter count", "[fake_quant]") {
  fq::Mask m;
  const std::vector<float> s(4, 0.1f);
  const std::vector<std::int32_t> z(4, 0);
  // A quantizer sized for 4 channels meets an empty batch of another shape: nothing to do.
  fq::fake_quantize_per_channel(TensorView<const float>(nullptr, {0}),
                                TensorView<float>(nullptr, {0}), &m, s.data(), z.data(), 4, 0,
                                {-128, 127});
  CHECK(m.numel() == 0);
  CHECK(m.written());
  fq::fake_quantize_per_channel(TensorView<const float>(nullptr, {0, 3}),
                                TensorView<float>(nullptr, {0, 3}), &m, s.data(), z.data(), 4, 1,
                                {-128, 127});
  CHECK(m.numel() == 0);
  fq::fake_quantize_backward(TensorView<const float>(nullptr, {0, 3}), m,
                             TensorView<float>(nullptr, {0, 3}));
}

TEST_CASE("Isa: kScalar and an explicit ScalarArch run the scalar reference", "[fake_quant][isa]") {
  const std::vector<float> x = {-1.3f, -0.25f, 0.0f,  0.125f, 0.375f, 2.0f, 100.0f, -100.0f, 0.05f,
                                0.15f, 0.25f,  0.35f, -0.05f, -0.15f, 7.0f, -7.0f,  0.2f};
  const auto n = static_cast<std::int64_t>(x.size());
  std::vector<float> ya(x.size()), yb(x.size()), yc(x.size());
  fq::Mask ma, mb, mc;
  fq::fake_quantize_per_tensor(TensorView<const float>(x.data(), {n}),
                               TensorView<float>(ya.data(), {n}), &ma, 0.1f, 3, {-8, 7});
  fq::fake_quantize_per_tensor(TensorView<const float>(x.data(), {n}),
                               TensorView<float>(yb.data(), {n}), &mb, 0.1f, 3, {-8, 7},
                               fq::Isa::kScalar);
  fq::fake_quantize_per_tensor<fq::TorchNumerics, fq::ScalarArch>(
      TensorView<const float>(x.data(), {n}), TensorView<float>(yc.data(), {n}), &mc, 0.1f, 3,
      {-8, 7});
  for (std::size_t i = 0; i < x.size(); ++i) {
    INFO("element " << i);
    REQUIRE(bits_of(ya[i]) == bits_of(yb[i]));
    REQUIRE(bits_of(ya[i]) == bits_of(yc[i]));
  }
  CHECK(ma.words() == mb.words());
  CHECK(ma.words() == mc.words());
  CHECK(std::string(fq::ScalarArch::name()) == "scalar");
}

TEST_CASE("Isa: an instruction set the Arch's kernels do not run is kInvalidArgument",
          "[fake_quant][isa]") {
  std::vector<float> x(8, 0.5f), y(8);
  const TensorView<const float> xv(x.data(), {8});
  const TensorView<float> yv(y.data(), {8});
  // ScalarArch names no instruction set: only kAuto and kScalar are valid.
  for (fq::Isa isa : {fq::Isa::kAvx2, fq::Isa::kAvx512Vnni}) {
    INFO(fq::to_string(isa));
    const auto call = [&] {
      fq::fake_quantize_per_tensor<fq::TorchNumerics, fq::ScalarArch>(xv, yv, nullptr, 0.1f, 0,
                                                                      {-128, 127}, isa);
    };
    CHECK(fq_test::error_code_of(call) == fq::ErrorCode::kInvalidArgument);
    CHECK_THAT(fq_test::error_message_of(call),
               Catch::Matchers::Contains("fake_quantize_per_tensor: the Isa") &&
                   Catch::Matchers::Contains("is not the instruction set of these kernels, which "
                                             "run scalar"));
  }
  // The int8 GEMM's VNNI value names no fake-quant kernel on any Arch.
  CHECK(fq_test::error_code_of([&] {
          fq::fake_quantize_backward(xv, fq::Mask(), yv, fq::Isa::kAvx512Vnni);
        }) == fq::ErrorCode::kInvalidArgument);
  // The Isa that names DefaultArch's instruction set is accepted as kAuto.
  const fq::Isa own = fq::isa_of_arch<fq::DefaultArch>();
  fq::fake_quantize_per_tensor(xv, yv, nullptr, 0.1f, 0, {-128, 127}, own);
  CHECK(y[0] == 0.5f);
}
