// SPDX-License-Identifier: MIT
// LsqQuantizer and Pact meet the quantizer protocol: the testing kit's check_gradients passes
// them (dx by finite differences of the STE, the parameter gradients against the LSQ and PACT
// formulas), and their protocol backward adds the fused pass's parameter gradients.
#include <cstdint>
#include <vector>

#include <catch2/catch.hpp>

#include <fakequant/learnable/learnable.hpp>
#include <fakequant/testing/testing.hpp>

namespace {
// The paper's numerics and clipping with a linear scale and no gradient scale: the raw
// parameter gradients are then exactly the formulas' (testing/formulas.hpp).
using PaperLinearLsq = fq::LsqScheme<fq::LsqPaper, fq::NoGradScale>;
}  // namespace

TEST_CASE("check_gradients passes LsqQuantizer", "[learnable][lsq][testing_kit]") {
  constexpr float kScale = 0.05f, kZero = 12.0f;
  const fq::QuantRange range{0, 255};
  fq::LsqQuantizer<PaperLinearLsq> q(range);
  q.set_scale(kScale);
  q.set_zero_point(kZero);
  static_assert(fq::is_quantizer_v<fq::LsqQuantizer<PaperLinearLsq>>, "LSQ is a quantizer");
  fq::testing::GradientCheckOptions opt;
  opt.grid = fq::testing::Grid::per_tensor(
      fq::testing::Grid::affine_levels(kScale, static_cast<std::int32_t>(kZero), range));
  opt.formulas["lsq.scale"] = fq::testing::formulas::lsq_scale({kScale}, {kZero}, range);
  opt.formulas["lsq.zero_point"] = fq::testing::formulas::lsq_zero_point({kScale}, {kZero}, range);
  const auto r = fq::testing::check_gradients(q, opt);
  INFO(r.report());
  CHECK(r.passed());
  CHECK(r.checked("gradient_dx") > 0);
  CHECK(r.checked("param_gradient") == 2);

  // Another scale's formula disagrees: the check can fail.
  opt.formulas["lsq.scale"] = fq::testing::formulas::lsq_scale({2 * kScale}, {kZero}, range);
  CHECK(fq::testing::check_gradients(q, opt).has_failure("param_gradient"));
}

TEST_CASE("check_gradients passes Pact", "[learnable][pact][testing_kit]") {
  constexpr float kAlpha = 1.5f;
  fq::Pact<4> q(kAlpha);
  static_assert(fq::is_quantizer_v<fq::Pact<4>>, "PACT is a quantizer");
  const float s = fq::Pact<4>::scale(kAlpha);
  std::vector<double> levels;
  for (int k = 0; k <= 15; ++k) levels.push_back(static_cast<double>(static_cast<float>(k) * s));
  fq::testing::GradientCheckOptions opt;
  opt.grid = fq::testing::Grid::per_tensor(levels);
  opt.formulas["pact.alpha"] = fq::testing::formulas::pact_alpha({kAlpha});
  const auto r = fq::testing::check_gradients(q, opt);
  INFO(r.report());
  CHECK(r.passed());
  CHECK(r.checked("gradient_dx") > 0);
  CHECK(r.checked("param_gradient") == 1);

  opt.formulas["pact.alpha"] = fq::testing::formulas::pact_alpha({0.5f * kAlpha});
  CHECK(fq::testing::check_gradients(q, opt).has_failure("param_gradient"));
}

TEST_CASE("LsqQuantizer and Pact: the protocol backward adds, forward_backward overwrites",
          "[learnable][lsq][pact]") {
  std::vector<float> x = {-0.7f, 0.01f, 0.33f, 2.9f, 6.5f, -3.0f}, dy = {1, -2, 0.5f, 1, 3, -1};
  std::vector<float> y(6), dx(6), dx_ref(6);
  const fq::TensorView<const float> xv(x.data(), {6}), dyv(dy.data(), {6});
  const fq::TensorView<float> yv(y.data(), {6}), dxv(dx.data(), {6}), dxr(dx_ref.data(), {6});
  fq::Mask mask;

  fq::LsqQuantizer<fq::TorchLsq> q(fq::QuantRange{0, 15});
  q.set_scale(0.4f);
  q.set_zero_point(3.0f);
  q.forward_backward(xv, dyv, yv, dxr);
  const float ds = q.scale_grad()[0], dz = q.zero_point_grad()[0];
  REQUIRE(ds != 0.0f);
  REQUIRE(dz != 0.0f);
  q.forward(xv, yv, &mask);
  q.backward(xv, dyv, mask, dxv);
  for (std::size_t i = 0; i < 6; ++i) CHECK(dx[i] == dx_ref[i]);
  CHECK(q.scale_grad()[0] == ds + ds);
  CHECK(q.zero_point_grad()[0] == dz + dz);
  q.forward_backward(xv, dyv, yv, dxr);
  CHECK(q.scale_grad()[0] == ds);

  fq::Pact<4> p(2.0f, 0.1f);
  const float da = fq::Pact<4>::forward_backward(xv, dyv, yv, dxr, 2.0f, 0.1f);
  p.forward(xv, yv, &mask);
  p.backward(xv, dyv, mask, dxv);
  p.backward(xv, dyv, mask, dxv);
  for (std::size_t i = 0; i < 6; ++i) CHECK(dx[i] == dx_ref[i]);
  CHECK(p.alpha_grad() == (0.0f + da) + da);
}

TEST_CASE("Pact: a bad alpha or lambda is refused at construction", "[learnable][pact][errors]") {
  using E = fq::ErrorCode;
  const auto code = [](auto&& f) -> int {  // the ErrorCode thrown, -1 if none
    try {
      f();
    } catch (const fq::Error& e) {
      return static_cast<int>(e.code());
    }
    return -1;
  };
  CHECK(code([] { (void)fq::Pact<8>(0.0f); }) == static_cast<int>(E::kInvalidScale));
  CHECK(code([] { (void)fq::Pact<8>(1.0f, -1.0f); }) == static_cast<int>(E::kInvalidArgument));
  fq::Pact<8> p;
  CHECK(code([&] { p.set_alpha(-2.0f); }) == static_cast<int>(E::kInvalidScale));
  CHECK(p.alpha() == 6.0f);
}
