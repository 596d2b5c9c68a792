// SPDX-License-Identifier: MIT
// The testing kit's STE-aware gradient checker: passes fq's quantizers (masked and
// pass-through STE, per tensor and per channel), the custom log quantizer and a correct
// LSQ-style learnable scale; reports wrong gradients with the element.
#include <string>
#include <vector>

#include <fakequant/scheme/presets.hpp>
#include <fakequant/testing/testing.hpp>

#include "catch.hpp"
#include "testing/quantizers.hpp"

TEST_CASE("check_gradients passes fq's quantizers", "[testing_kit]") {
  fq::FakeQuantizer<fq::Uint8ActPerTensorAffine> a;
  a.set_qparams(0.02f, 37);
  const auto ra = fq::testing::check_gradients(a);
  INFO(ra.report());
  CHECK(ra.passed());
  CHECK(ra.checked("gradient_dx") == 48);
  CHECK(ra.stat("gradient_dx.skipped_rounding") + ra.stat("gradient_dx.skipped_clamp") > 0);

  fq::FakeQuantizer<fq::Int4WeightPerChannelSymmetric> w(4);
  w.set_qparams(std::vector<float>{0.1f, 0.2f, 0.01f, 1.0f}, std::vector<std::int32_t>(4, 0));
  const auto rw = fq::testing::check_gradients(w);
  INFO(rw.report());
  CHECK(rw.passed());
  CHECK(rw.checked("gradient_dx") > 0);

  fq::FakeQuantizer<fq::Uint8ActPerTensorAffine::with_clamp_grad<fq::PassThroughSte>> p;
  p.set_qparams(0.02f, 37);
  const auto rp = fq::testing::check_gradients(p);
  INFO(rp.report());
  CHECK(rp.passed());
}

TEST_CASE("check_gradients passes the custom log quantizer", "[testing_kit]") {
  fq_test::LogQuantizer q(2.0f, -6);
  fq::testing::GradientCheckOptions opt;
  opt.grid = fq::testing::Grid::per_tensor(q.levels());
  opt.error_bound = fq::testing::ErrorBound::kBracketing;
  const auto r = fq::testing::check_gradients(q, opt);
  INFO(r.report());
  CHECK(r.passed());
  CHECK(r.checked("gradient_dx") > 0);
}

TEST_CASE("check_gradients reports a gradient scaled by 2 and an inverted mask", "[testing_kit]") {
  fq_test::WrongGradient<fq::Uint8ActPerTensorAffine> q;
  q.set_qparams(0.02f, 37);
  auto r = fq::testing::check_gradients(q);
  REQUIRE(r.has_failure("gradient_dx"));
  const auto* f = r.first_failure("gradient_dx");
  CHECK(f->message.find("element " + std::to_string(f->index) + " ") != std::string::npos);
  CHECK(f->actual == Approx(2 * f->expected).epsilon(0.01));
  // Every checked point inside the range is wrong.
  CHECK(r.failure_count("gradient_dx") > 0);

  q.invert = true;
  r = fq::testing::check_gradients(q);
  REQUIRE(r.has_failure("gradient_dx"));
  f = r.first_failure("gradient_dx");
  CHECK(f->message.find("element " + std::to_string(f->index) + " ") != std::string::npos);
  CHECK(f->expected != f->actual);
}

TEST_CASE("check_gradients compares learnable-parameter gradients with formulas", "[testing_kit]") {
  fq_test::LearnableScale q(0.125f, -8, 7);
  fq::testing::GradientCheckOptions opt;
  opt.grid = fq::testing::Grid::per_tensor(fq::testing::Grid::affine_levels(0.125f, 0, q.range()));
  opt.formulas["scale"] = fq::testing::formulas::lsq_scale({0.125f}, {0.0}, q.range());
  const auto r = fq::testing::check_gradients(q, opt);
  INFO(r.report());
  CHECK(r.passed());
  CHECK(r.checked("param_gradient") == 1);

  SECTION("a wrong scale gradient is reported with the parameter's name and element") {
    q.wrong_ds = true;
    const auto rw = fq::testing::check_gradients(q, opt);
    REQUIRE(rw.has_failure("param_gradient"));
    const auto* f = rw.first_failure("param_gradient");
    CHECK(f->index == 0);
    CHECK(f->message.find("parameter 'scale' element 0") != std::string::npos);
    CHECK(f->expected != f->actual);
    CHECK_FALSE(rw.has_failure("gradient_dx"));
  }
  SECTION("a parameter without a formula is a failure, or a note when allowed") {
    opt.formulas.clear();
    CHECK(fq::testing::check_gradients(q, opt).has_failure("param_gradient"));
    opt.require_formulas = false;
    const auto rn = fq::testing::check_gradients(q, opt);
    CHECK(rn.passed());
    CHECK(rn.checked("param_gradient") == 0);
  }
  SECTION("the STE-none formula catches a gradient that should not exist") {
    opt.formulas["scale"] = fq::testing::formulas::ste_none();
    CHECK(fq::testing::check_gradients(q, opt).has_failure("param_gradient"));
  }
}

TEST_CASE("check_gradients checks a per-channel PACT alpha against the PACT formula",
          "[testing_kit]") {
  const std::vector<float> alpha{1.0f, 2.5f, 0.75f};
  fq_test::Pact q(alpha, 4);
  std::vector<std::vector<double>> lv;
  for (std::size_t c = 0; c < q.channels(); ++c) lv.push_back(q.levels(c));
  fq::testing::GradientCheckOptions opt;
  opt.grid = fq::testing::Grid::per_channel(lv, 0);
  opt.formulas["alpha"] = fq::testing::formulas::pact_alpha(alpha);
  const auto r = fq::testing::check_gradients(q, opt);
  INFO(r.report());
  CHECK(r.passed());
  CHECK(r.checked("param_gradient") == 3);
  CHECK(r.checked("gradient_dx") > 0);
  // The formula of another alpha disagrees on some channel, and the failure names it.
  opt.formulas["alpha"] = fq::testing::formulas::pact_alpha({1.0f, 2.0f, 0.75f});
  const auto rw = fq::testing::check_gradients(q, opt);
  REQUIRE(rw.has_failure("param_gradient"));
  CHECK(rw.first_failure("param_gradient")->message.find("parameter 'alpha' element 1") !=
        std::string::npos);

  fq::testing::QuantizerCheckOptions fwd;
  fwd.grid = opt.grid;
  const auto rf = fq::testing::check_quantizer(q, fwd);
  INFO(rf.report());
  CHECK(rf.passed());
}
