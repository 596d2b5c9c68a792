// SPDX-License-Identifier: MIT
// Tests of fakequant/core/tensor_view.hpp.
#include <cstdint>
#include <limits>
#include <vector>

#include <fakequant/core/tensor_view.hpp>
#include <fakequant/kernels/fake_quantize.hpp>

#include "catch.hpp"
#include "test_util.hpp"

TEST_CASE("TensorView shapes and strides", "[tensor_view]") {
  std::vector<float> buf(24);
  fq::TensorView<float> v(buf.data(), {2, 3, 4});
  CHECK(v.rank() == 3);
  CHECK(v.numel() == 24);
  CHECK(v.stride(0) == 12);
  CHECK(v.stride(2) == 1);
  CHECK(v.is_contiguous());
  const std::int64_t idx[3] = {1, 2, 3};
  CHECK(v.at(idx) == buf.data() + 23);
  fq::TensorView<float> t(buf.data(), {4, 6}, {1, 4});
  CHECK_FALSE(t.is_contiguous());
  fq::TensorView<const float> c = v;
  CHECK(c.data() == buf.data());
  CHECK_THROWS_AS(fq::TensorView<float>(buf.data(), {2, -1}), fq::Error);
  CHECK_THROWS_AS(fq::TensorView<float>(buf.data(), {2, 3}, {1}), fq::Error);
}

TEST_CASE("Eigen objects convert to rank-2 views", "[tensor_view]") {
  Eigen::MatrixXf m(3, 5);
  fq::TensorView v(m);
  STATIC_REQUIRE(std::is_same<decltype(v), fq::TensorView<float>>::value);
  CHECK(v.size(0) == 3);
  CHECK(v.size(1) == 5);
  CHECK(v.stride(0) == 1);
  CHECK(v.stride(1) == 3);
  Eigen::Matrix<double, 3, 5, Eigen::RowMajor> r;
  fq::TensorView<double> rv(r);
  CHECK(rv.stride(0) == 5);
  CHECK(rv.stride(1) == 1);
  const Eigen::MatrixXf& cm = m;
  fq::TensorView cv(cm);
  STATIC_REQUIRE(std::is_same<decltype(cv), fq::TensorView<const float>>::value);
  Eigen::Ref<const Eigen::MatrixXf> ref = m.block(1, 1, 2, 3);
  fq::TensorView<const float> refv(ref);
  CHECK(refv.data() == &m(1, 1));
  CHECK(refv.stride(1) == 3);
}

TEST_CASE("TensorView: size arithmetic that overflows is refused", "[tensor_view]") {
  using fq::ErrorCode;
  using fq_test::error_code_of;
  std::vector<float> buf(16);
  float* p = buf.data();
  const std::int64_t big = std::int64_t{1} << 40;
  // Element counts: the product of the non-zero extents must fit int64, even next to a 0.
  CHECK(error_code_of([&] { fq::TensorView<float>(p, {big, big}); }) == ErrorCode::kOutOfMemory);
  CHECK(error_code_of([&] { fq::TensorView<float>(p, {0, big, big}); }) == ErrorCode::kOutOfMemory);
  CHECK_THROWS_WITH(fq::TensorView<float>(p, {big, big}), Catch::Contains("[1099511627776, "));
  // A contiguous view whose bytes exceed the address space.
  CHECK(error_code_of([&] { fq::TensorView<float>(p, {std::int64_t{1} << 62}); }) ==
        ErrorCode::kOutOfMemory);
  // Strides whose reach overflows, or an unrepresentable |stride|.
  CHECK(error_code_of([&] { fq::TensorView<float>(p, {4}, {std::int64_t{1} << 62}); }) ==
        ErrorCode::kOutOfMemory);
  CHECK(error_code_of([&] {
          fq::TensorView<float>(p, {2, 2}, {std::int64_t{1} << 61, std::int64_t{1} << 61});
        }) == ErrorCode::kOutOfMemory);
  CHECK(error_code_of([&] {
          fq::TensorView<float>(p, {2}, {std::numeric_limits<std::int64_t>::min()});
        }) == ErrorCode::kOutOfMemory);
  // What is fine: an empty view with any strides, a broadcast (stride 0) input of many
  // elements, negative strides.
  CHECK(fq::TensorView<float>(p, {0, 3}, {std::int64_t{1} << 62, 1}).numel() == 0);
  CHECK(fq::TensorView<const float>(p, {big}, {0}).numel() == big);
  CHECK(fq::TensorView<float>(p + 15, {4, 4}, {-4, -1}).numel() == 16);
}

TEST_CASE("TensorView: the self-overlap test", "[tensor_view]") {
  std::vector<float> buf(64);
  float* p = buf.data();
  auto ok = [](const fq::TensorView<float>& v) { return fq::detail::provably_non_overlapping(v); };
  CHECK(ok(fq::TensorView<float>(p, {2, 3, 4})));
  CHECK(ok(fq::TensorView<float>(p, {4, 6}, {1, 4})));         // transposed
  CHECK(ok(fq::TensorView<float>(p, {3, 2}, {4, 2})));         // gaps
  CHECK(ok(fq::TensorView<float>(p + 15, {4, 4}, {-4, -1})));  // reversed
  CHECK(ok(fq::TensorView<float>(p, {1, 5}, {0, 1})));         // stride 0 on an extent of 1
  CHECK(ok(fq::TensorView<float>(p, {0, 5}, {0, 0})));         // empty
  CHECK(ok(fq::TensorView<float>(p, {2, 2, 2}, {1, 4, 2})));   // a permutation
  CHECK_FALSE(ok(fq::TensorView<float>(p, {3, 4}, {0, 1})));   // stride 0
  CHECK_FALSE(ok(fq::TensorView<float>(p, {2, 3}, {1, 1})));   // (1, 0) and (0, 1) coincide
  CHECK_FALSE(ok(fq::TensorView<float>(p, {3, 2}, {1, 2})));   // (2, 0) and (0, 1) coincide
  CHECK_FALSE(ok(fq::TensorView<float>(p, {2, 3}, {2, 1})));   // rows interleave
  CHECK_FALSE(ok(fq::TensorView<float>(p + 8, {3, 3}, {-2, 1})));
  CHECK_THROWS_WITH(
      fq::detail::check_no_self_overlap(fq::TensorView<float>(p, {2, 3}, {1, 1}), "op"),
      Catch::Contains("shape [2, 3] with strides [1, 1] overlaps itself"));
}

TEST_CASE("fake quantization refuses an output that overlaps itself", "[tensor_view]") {
  std::vector<float> x(6, 0.5f), y(8, 0.0f);
  const fq::QuantRange r{0, 255};
  // Rows of y interleave: y[1][0] is y[0][1].
  fq::TensorView<float> bad(y.data(), {2, 3}, {1, 1});
  CHECK(fq_test::error_code_of([&] {
          fq::fake_quantize_per_tensor(fq::TensorView<const float>(x.data(), {2, 3}), bad, nullptr,
                                       0.1f, 0, r);
        }) == fq::ErrorCode::kInvalidLayout);
  fq::TensorView<float> good(y.data(), {2, 3}, {1, 2});  // transposed: fine
  fq::fake_quantize_per_tensor(fq::TensorView<const float>(x.data(), {2, 3}), good, nullptr, 0.1f,
                               0, r);
  CHECK(y[5] == 0.5f);
}
