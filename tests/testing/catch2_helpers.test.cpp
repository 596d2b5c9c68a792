// SPDX-License-Identifier: MIT
// The testing kit's Catch2 helpers: a user's test in a few lines.
#include <vector>

#include <fakequant/scheme/presets.hpp>
#include <fakequant/testing/catch2.hpp>

#include "catch.hpp"
#include "testing/quantizers.hpp"

TEST_CASE("FQ_REQUIRE_QUANTIZER and FQ_REQUIRE_GRADIENTS on fq quantizers", "[testing_kit]") {
  fq::FakeQuantizer<fq::Int8WeightPerChannelSymmetric> w(3);
  w.set_qparams(std::vector<float>{0.1f, 0.05f, 0.2f}, std::vector<std::int32_t>(3, 0));
  FQ_REQUIRE_QUANTIZER(w, {});
  FQ_REQUIRE_GRADIENTS(w, {});
  FQ_CHECK_QUANTIZER(w, {});
  FQ_CHECK_GRADIENTS(w, {});
}

TEST_CASE("Passes, HasFailure and HasFailureAt matchers", "[testing_kit]") {
  fq_test::OffGrid q;
  q.set_qparams(0.02f, 37);
  const auto r = fq::testing::check_quantizer(q);
  CHECK_THAT(r, !fq::testing::Passes());
  CHECK_THAT(r, fq::testing::HasFailure("on_grid"));
  CHECK_THAT(r, fq::testing::HasFailureAt("on_grid", 5));
  CHECK_THAT(r, !fq::testing::HasFailureAt("on_grid", 6));
  CHECK_THAT(r, !fq::testing::HasFailure("gradient_dx"));
  CHECK(Catch::StringMaker<fq::testing::CheckResult>::convert(r).find("on_grid: element 5 ") !=
        std::string::npos);
}
