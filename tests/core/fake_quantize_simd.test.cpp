// SPDX-License-Identifier: MIT
// The SIMD kernels are bit-exact against the scalar reference, for every numerics policy,
// float and double, per tensor and per channel (axis inner and outer), every tail length.
#include <cstdint>
#include <vector>

#include <fakequant/core/fake_quantize.hpp>

#include "catch.hpp"
#include "test_util.hpp"

namespace {

using fq::KernelPath;
using fq::TensorView;

template <class N, class T>
void check_per_tensor(std::int64_t n, float s, std::int32_t z, fq::QuantRange r,
                      std::uint32_t seed) {
  const auto x =
      fq_test::make_fq_input<T>(static_cast<std::size_t>(n), s, r.quant_min, r.quant_max, z, seed);
  std::vector<T> ya(x.size()), ys(x.size());
  fq::Mask ma, ms;
  fq::fake_quantize_per_tensor<N>(TensorView<const T>(x.data(), {n}), TensorView<T>(ya.data(), {n}),
                                  &ma, s, z, r, KernelPath::kAuto);
  fq::fake_quantize_per_tensor<N>(TensorView<const T>(x.data(), {n}), TensorView<T>(ys.data(), {n}),
                                  &ms, s, z, r, KernelPath::kScalar);
  INFO("n " << n << " first mismatch " << fq_test::first_bit_mismatch(ya, ys));
  REQUIRE(fq_test::first_bit_mismatch(ya, ys) == -1);
  REQUIRE(ma.words() == ms.words());
  // Backward: dy with specials, both paths.
  auto dy = fq_test::make_fq_input<T>(static_cast<std::size_t>(n), 1.0f, -3, 3, 0, seed + 1);
  std::vector<T> da(x.size()), ds(x.size());
  fq::fake_quantize_backward(TensorView<const T>(dy.data(), {n}), ma, TensorView<T>(da.data(), {n}),
                             KernelPath::kAuto);
  fq::fake_quantize_backward(TensorView<const T>(dy.data(), {n}), ms, TensorView<T>(ds.data(), {n}),
                             KernelPath::kScalar);
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
#if FQ_HAS_XSIMD
  INFO("SIMD architecture: " << fq::simd::DefaultArch::name());
#else
  WARN("built without xsimd: the scalar path is compared with itself");
#endif
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
                                    s.data(), z.data(), C, axis, {-128, 127}, KernelPath::kAuto);
      fq::fake_quantize_per_channel(xv, TensorView<float>(ys.data(), {3, 19, inner, 21}), &ms,
                                    s.data(), z.data(), C, axis, {-128, 127}, KernelPath::kScalar);
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
                                           KernelPath::kAuto);
          fq::fake_quantize_per_channel<N>(xv, ys, &ms, s.data(), z.data(), C, 0, {-128, 127},
                                           KernelPath::kScalar);
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
