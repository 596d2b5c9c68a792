// SPDX-License-Identifier: MIT
// The policy tags (include/fakequant/policy/): each rounding rule at ties of both signs and
// beside them, and the traits QScheme uses to name a misplaced knob in one sentence.
#include <cmath>
#include <limits>
#include <type_traits>

#include <fakequant/policy/clamp_grad.hpp>
#include <fakequant/policy/granularity.hpp>
#include <fakequant/policy/mapping.hpp>
#include <fakequant/policy/overflow.hpp>
#include <fakequant/policy/rounding.hpp>
#include <fakequant/policy/scale_apply.hpp>
#include <fakequant/policy/zero_point.hpp>

#include "catch.hpp"

namespace {
template <class R>
void check_rounding(const float (&in)[8], const float (&want)[8]) {
  for (int i = 0; i < 8; ++i) {
    INFO("input " << in[i]);
    CHECK(R::apply(in[i]) == want[i]);
    CHECK(R::apply(static_cast<double>(in[i])) == static_cast<double>(want[i]));
  }
}
}  // namespace

TEST_CASE("rounding policies: ties of both signs and the values beside them", "[policy]") {
  const float in[8] = {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 2.4999998f, -2.5000002f};
  check_rounding<fq::RoundHalfEven>(in, {0.0f, 2.0f, 2.0f, -0.0f, -2.0f, -2.0f, 2.0f, -3.0f});
  check_rounding<fq::RoundHalfAway>(in, {1.0f, 2.0f, 3.0f, -1.0f, -2.0f, -3.0f, 2.0f, -3.0f});
  check_rounding<fq::RoundHalfUp>(in, {1.0f, 2.0f, 3.0f, 0.0f, -1.0f, -2.0f, 2.0f, -3.0f});
  check_rounding<fq::RoundFloor>(in, {0.0f, 1.0f, 2.0f, -1.0f, -2.0f, -3.0f, 2.0f, -3.0f});
  // RoundHalfUp computes floor(x + 0.5) in the input's precision: for the largest float below
  // 0.5 the sum rounds to 1.0f, so the result is 1 (in double the same input gives 0).
  CHECK(fq::RoundHalfUp::apply(0.49999997f) == 1.0f);
  CHECK(fq::RoundHalfUp::apply(static_cast<double>(0.49999997f)) == 0.0);
  CHECK(std::isnan(fq::RoundHalfEven::apply(std::numeric_limits<float>::quiet_NaN())));
}

TEST_CASE("policy traits recognise exactly their own tags", "[policy]") {
  STATIC_REQUIRE(fq::is_rounding<fq::RoundHalfEven>::value);
  STATIC_REQUIRE_FALSE(fq::is_rounding<fq::MulByInverse>::value);
  STATIC_REQUIRE(fq::is_scale_apply<fq::DivideByScale>::value);
  STATIC_REQUIRE_FALSE(fq::is_scale_apply<fq::RoundFloor>::value);
  STATIC_REQUIRE(fq::is_mapping<fq::Symmetric>::value);
  STATIC_REQUIRE_FALSE(fq::is_mapping<fq::PerTensor>::value);
  STATIC_REQUIRE(fq::is_granularity<fq::PerChannel<-1>>::value);
  STATIC_REQUIRE(fq::is_granularity<fq::PerTensor>::value);
  STATIC_REQUIRE_FALSE(fq::is_granularity<fq::Affine>::value);
  STATIC_REQUIRE(fq::is_clamp_grad<fq::PassThroughSte>::value);
  STATIC_REQUIRE(fq::is_overflow<fq::OverflowSaturate>::value);
  STATIC_REQUIRE(fq::is_zero_point_policy<fq::FloatZeroPointNoFma>::value);
  STATIC_REQUIRE_FALSE(fq::is_zero_point_policy<fq::ZeroPointFma>::value);
  STATIC_REQUIRE(fq::is_zero_point_add<fq::ZeroPointNoFma>::value);
  // The knobs' values and that the tags stay plain (trivially copyable, empty) structs.
  STATIC_REQUIRE(fq::PerChannel<-1>::kAxis == -1);
  STATIC_REQUIRE(fq::PerChannel<3>::kPerChannel);
  STATIC_REQUIRE_FALSE(fq::PerTensor::kPerChannel);
  STATIC_REQUIRE(fq::Symmetric::kSymmetric);
  STATIC_REQUIRE(fq::OverflowSaturate::kSaturate);
  STATIC_REQUIRE(fq::PassThroughSte::kPassThrough);
  STATIC_REQUIRE(std::is_same<fq::FloatZeroPoint::type, float>::value);
  STATIC_REQUIRE(std::is_same<fq::FloatZeroPointNoFma::add, fq::ZeroPointNoFma>::value);
  STATIC_REQUIRE(std::is_trivially_copyable<fq::RoundHalfUp>::value);
  STATIC_REQUIRE(std::is_empty<fq::PerChannel<0>>::value);
}
