// SPDX-License-Identifier: MIT
// Tests of fakequant/core/tensor_view.hpp.
#include <fakequant/core/tensor_view.hpp>

#include <vector>

#include "catch.hpp"

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
