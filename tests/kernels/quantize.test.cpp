// SPDX-License-Identifier: MIT
// quantize / dequantize: dequantize(quantize(x)) equals fq::fake_quantize_per_tensor /
// per_channel bit for bit (every rounding, scale-application and overflow policy, NaN/Inf,
// ties, bounds), on the SIMD and the scalar path, for int8 and uint8 levels.
#include <cstdint>
#include <vector>

#include <fakequant/kernels/dequantize.hpp>
#include <fakequant/kernels/quantize.hpp>

#include "catch.hpp"
#include "test_util.hpp"

namespace {

using fq::Isa;
using fq::TensorView;

template <class N, class Q, class T>
void check_per_tensor(std::int64_t n, float s, std::int32_t z, fq::QuantRange r,
                      std::uint32_t seed) {
  const auto x =
      fq_test::make_fq_input<T>(static_cast<std::size_t>(n), s, r.quant_min, r.quant_max, z, seed);
  std::vector<T> ref(x.size());
  fq::fake_quantize_per_tensor<N>(TensorView<const T>(x.data(), {n}),
                                  TensorView<T>(ref.data(), {n}), nullptr, s, z, r);
  for (Isa path : {Isa::kAuto, Isa::kScalar}) {
    std::vector<Q> q(x.size());
    std::vector<T> y(x.size());
    fq::quantize_per_tensor<N>(TensorView<const T>(x.data(), {n}), TensorView<Q>(q.data(), {n}), s,
                               z, r, path);
    fq::dequantize_per_tensor(TensorView<const Q>(q.data(), {n}), TensorView<T>(y.data(), {n}), s,
                              z, path);
    INFO("n " << n << " s " << s << " z " << z << " path " << int(path) << " mismatch at "
              << fq_test::first_bit_mismatch(y, ref));
    REQUIRE(fq_test::first_bit_mismatch(y, ref) == -1);
    for (Q v : q) REQUIRE((v >= r.quant_min && v <= r.quant_max));
  }
}

template <class N, class Q>
void check_policy(fq::QuantRange r) {
  std::uint32_t seed = 11;
  for (std::int64_t n : {1, 7, 16, 33, 100, 1000}) {
    for (float s : {0.01f, 0.1f, 0.37f, 3.0f}) {
      const std::int32_t z = static_cast<std::int32_t>((r.quant_min + r.quant_max) / 2 + seed % 7);
      check_per_tensor<N, Q, float>(n, s, z, r, ++seed);
      check_per_tensor<N, Q, double>(n, s, z, r, ++seed);
    }
  }
}

template <class N, class Q>
void check_per_channel(fq::QuantRange r, int axis) {
  const std::int64_t rows = 9, cols = 37;
  const std::int64_t count = axis == 0 ? rows : cols;
  std::vector<float> scale(static_cast<std::size_t>(count));
  std::vector<std::int32_t> zp(scale.size());
  for (std::int64_t c = 0; c < count; ++c) {
    scale[static_cast<std::size_t>(c)] = 0.01f * float(c + 1);
    zp[static_cast<std::size_t>(c)] =
        static_cast<std::int32_t>(r.quant_min + (c * 37) % (r.quant_max - r.quant_min + 1));
  }
  const auto x = fq_test::make_fq_input<float>(static_cast<std::size_t>(rows * cols), 0.1f,
                                               r.quant_min, r.quant_max, 0, 99);
  std::vector<float> ref(x.size());
  TensorView<const float> xv(x.data(), {rows, cols});
  fq::fake_quantize_per_channel<N>(xv, TensorView<float>(ref.data(), {rows, cols}), nullptr,
                                   scale.data(), zp.data(), count, axis, r);
  for (Isa path : {Isa::kAuto, Isa::kScalar}) {
    std::vector<Q> q(x.size());
    std::vector<float> y(x.size());
    fq::quantize_per_channel<N>(xv, TensorView<Q>(q.data(), {rows, cols}), scale.data(), zp.data(),
                                count, axis, r, path);
    fq::dequantize_per_channel(TensorView<const Q>(q.data(), {rows, cols}),
                               TensorView<float>(y.data(), {rows, cols}), scale.data(), zp.data(),
                               count, axis, path);
    INFO("axis " << axis << " mismatch at " << fq_test::first_bit_mismatch(y, ref));
    REQUIRE(fq_test::first_bit_mismatch(y, ref) == -1);
  }
}

}  // namespace

TEST_CASE("quantize: dequantize(quantize(x)) == fake_quantize_per_tensor(x)",
          "[kernels][bit_exact]") {
  using namespace fq;
  check_policy<TorchNumerics, std::uint8_t>({0, 255});
  check_policy<TorchNumerics, std::int8_t>({-128, 127});
  check_policy<Numerics<RoundHalfUp, DivideByScale>, std::uint8_t>({0, 255});
  check_policy<Numerics<RoundHalfAway, MulByInverse, OverflowSaturate>, std::int8_t>({-127, 127});
  check_policy<Numerics<RoundFloor, DivideByScale, OverflowSaturate>, std::uint8_t>({0, 15});
}

TEST_CASE("quantize: per channel equals fake_quantize_per_channel", "[kernels][bit_exact]") {
  using namespace fq;
  for (int axis : {0, 1, -1}) {
    check_per_channel<TorchNumerics, std::uint8_t>({0, 255}, axis);
    check_per_channel<TorchNumerics, std::int8_t>({-128, 127}, axis);
    check_per_channel<Numerics<RoundHalfUp, DivideByScale, OverflowSaturate>, std::int8_t>(
        {-127, 127}, axis);
  }
}

TEST_CASE("quantize: strided views and exact levels", "[kernels][bit_exact]") {
  // A transposed (column-major) view quantizes element by element like the contiguous one.
  std::vector<float> x = {-1.0f, 0.25f, 0.75f, 1.25f, 2.5f, 100.0f};
  std::vector<std::uint8_t> q(6), qt(6);
  fq::quantize_per_tensor(TensorView<const float>(x.data(), {2, 3}),
                          TensorView<std::uint8_t>(q.data(), {2, 3}), 0.5f, 10, {0, 255});
  fq::quantize_per_tensor(TensorView<const float>(x.data(), {3, 2}, {1, 3}),
                          TensorView<std::uint8_t>(qt.data(), {3, 2}, {2, 1}), 0.5f, 10, {0, 255});
  // x / 0.5 = -2, 0.5, 1.5, 2.5, 5, 200: ties to even -> 0, 2, 2, 5, 200; + 10; 210 fits.
  const std::vector<std::uint8_t> expect = {8, 10, 12, 12, 15, 210};
  REQUIRE(q == expect);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 2; ++j)
      REQUIRE(qt[static_cast<std::size_t>(i * 2 + j)] == q[static_cast<std::size_t>(j * 3 + i)]);
}

TEST_CASE("quantize: bad arguments are reported", "[kernels]") {
  std::vector<float> x(4, 1.0f);
  std::vector<std::int8_t> q(4);
  TensorView<const float> xv(x.data(), {4});
  TensorView<std::int8_t> qv(q.data(), {4});
  REQUIRE_THROWS_AS(fq::quantize_per_tensor(xv, qv, 0.1f, 0, {0, 255}), fq::Error);  // range
  REQUIRE_THROWS_AS(fq::quantize_per_tensor(xv, qv, 0.0f, 0, {-128, 127}), fq::Error);
  REQUIRE_THROWS_AS(fq::quantize_per_tensor(xv, qv, 0.1f, 200, {-128, 127}), fq::Error);
  REQUIRE_THROWS_AS(
      fq::quantize_per_tensor(xv, TensorView<std::int8_t>(q.data(), {3}), 0.1f, 0, {-128, 127}),
      fq::Error);
  const float s[2] = {0.1f, 0.1f};
  const std::int32_t z[2] = {0, 0};
  REQUIRE_THROWS_AS(fq::quantize_per_channel(xv, qv, s, z, 2, 0, {-128, 127}), fq::Error);
  REQUIRE_THROWS_AS(fq::dequantize_per_tensor(TensorView<const std::int8_t>(q.data(), {4}),
                                              TensorView<float>(x.data(), {4}), -1.0f, 0),
                    fq::Error);
  // Empty tensors are a no-op.
  fq::quantize_per_tensor(TensorView<const float>(nullptr, {0}),
                          TensorView<std::int8_t>(nullptr, {0}), 0.1f, 0, {-128, 127});
}
