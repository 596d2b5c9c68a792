// SPDX-License-Identifier: MIT
// Tests of fakequant/core/fake_quantize.hpp: pins, layouts, per-channel, backward, bad input.
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include <fakequant/core/fake_quantize.hpp>

#include "catch.hpp"
#include "test_util.hpp"

namespace {

using fq::QuantRange;
using fq::TensorView;
using fq_test::bits_of;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

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
  CHECK(code_of([&] {
          fq::fake_quantize_per_tensor(xv, yv, nullptr, 0.1f, 0, {0, 1 << 25});
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
  fq::fake_quantize_per_tensor(xv, yv, &m, 0.1f, 0, {0, 255});
  CHECK(code_of([&] { fq::fake_quantize_backward(x42, m, y42); }) == E::kShapeMismatch);
  // The message names the function and the value.
  try {
    fq::fake_quantize_per_tensor(xv, yv, nullptr, -2.0f, 0, {0, 255});
    FAIL("no error");
  } catch (const fq::Error& e) {
    CHECK_THAT(e.what(), Catch::Contains("fake_quantize_per_tensor") && Catch::Contains("-2"));
  }
}
