// SPDX-License-Identifier: MIT
// The testing kit's property suite passes fq's own quantizers and a correct custom one, and
// reports each deliberately broken quantizer with the property and element it violates.
#include <cmath>
#include <string>
#include <vector>

#include <fakequant/observer/fake_quantize_module.hpp>
#include <fakequant/scheme/presets.hpp>
#include <fakequant/testing/testing.hpp>

#include "catch.hpp"
#include "testing/quantizers.hpp"

namespace {

template <class Scheme>
fq::FakeQuantizer<Scheme> per_tensor(float s, std::int32_t z) {
  fq::FakeQuantizer<Scheme> q;
  q.set_qparams(s, z);
  return q;
}

bool mentions(const fq::testing::CheckResult& r, const std::string& property, std::int64_t index) {
  const fq::testing::Failure* f = r.first_failure(property);
  if (!f) return false;
  return f->index == index &&
         f->message.find("element " + std::to_string(index) + " ") != std::string::npos;
}

}  // namespace

TEST_CASE("FakeQuantizer meets the quantizer concept as it is", "[testing_kit]") {
  STATIC_REQUIRE(fq::testing::is_quantizer_v<fq::FakeQuantizer<fq::Uint8ActPerTensorAffine>>);
  STATIC_REQUIRE(fq::testing::is_quantizer_v<fq::FakeQuantizer<fq::Int8WeightPerChannelSymmetric>>);
  STATIC_REQUIRE(fq::testing::is_quantizer_v<fq_test::LogQuantizer>);
  STATIC_REQUIRE(fq::testing::is_quantizer_v<fq_test::LearnableScale>);
  STATIC_REQUIRE(fq::testing::has_learnable_parameters_v<fq_test::LearnableScale>);
  STATIC_REQUIRE_FALSE(fq::testing::has_learnable_parameters_v<fq_test::LogQuantizer>);
  STATIC_REQUIRE_FALSE(fq::testing::is_quantizer_v<int>);
  struct ForwardOnly {
    void forward(fq::TensorView<const float>, fq::TensorView<float>, fq::Mask*) {}
  };
  STATIC_REQUIRE_FALSE(fq::testing::is_quantizer_v<ForwardOnly>);
}

TEST_CASE("check_quantizer passes fq's presets", "[testing_kit]") {
  SECTION("uint8 affine per tensor") {
    auto q = per_tensor<fq::Uint8ActPerTensorAffine>(0.02f, 37);
    const auto r = fq::testing::check_quantizer(q);
    INFO(r.report());
    CHECK(r.passed());
    CHECK(r.checked("on_grid") > 0);
    CHECK(r.checked("error_bound") > 0);
    CHECK(r.checked("clamp") > 0);
    CHECK(r.checked("non_finite") == 3);
  }
  SECTION("int8 symmetric and int4 per tensor, ONNX numerics") {
    auto a = per_tensor<fq::Int8WeightPerTensorSymmetric>(0.013f, 0);
    auto b = per_tensor<fq::Int4WeightPerTensorSymmetric>(0.3f, 0);
    auto c = per_tensor<fq::Uint8ActPerTensorAffineOnnx>(0.1f, 128);
    const auto ra = fq::testing::check_quantizer(a), rb = fq::testing::check_quantizer(b),
               rc = fq::testing::check_quantizer(c);
    INFO(ra.report() << rb.report() << rc.report());
    CHECK(ra.passed());
    CHECK(rb.passed());
    CHECK(rc.passed());
  }
  SECTION("run-time range (reduce_range)") {
    fq::FakeQuantizer<fq::RuntimeActPerTensorAffine> q(fq::QuantRange{0, 127});
    q.set_qparams(0.05f, 64);
    const auto r = fq::testing::check_quantizer(q);
    INFO(r.report());
    CHECK(r.passed());
  }
  SECTION("per channel on axis 0 and on axis 1") {
    fq::FakeQuantizer<fq::Int8WeightPerChannelSymmetricNarrow> w(5);
    w.set_qparams(std::vector<float>{0.1f, 0.02f, 1.5f, 0.007f, 0.3f},
                  std::vector<std::int32_t>(5, 0));
    const auto rw = fq::testing::check_quantizer(w);
    INFO(rw.report());
    CHECK(rw.passed());
    CHECK(rw.checked("channel_independence") > 0);

    using Act = fq::QScheme<fq::UInt4, fq::Affine, fq::PerChannel<1>>;
    fq::FakeQuantizer<Act> a(3);
    a.set_qparams(std::vector<float>{0.25f, 0.01f, 2.0f}, std::vector<std::int32_t>{0, 7, 15});
    fq::testing::QuantizerCheckOptions opt;
    opt.shape = {4, 3, 16};
    const auto ra = fq::testing::check_quantizer(a, opt);
    INFO(ra.report());
    CHECK(ra.passed());
    CHECK(ra.checked("channel_independence") == 4 * 3 * 16);
  }
}

TEST_CASE("check_quantizer passes float zero points, other roundings and double-width ranges",
          "[testing_kit]") {
  using FloatZp =
      fq::QScheme<fq::Int8, fq::Affine, fq::PerChannel<0>>::with_zero_point<fq::FloatZeroPoint>;
  fq::FakeQuantizer<FloatZp> f(2);
  f.set_qparams(std::vector<float>{0.1f, 0.03f}, std::vector<float>{2.5f, -17.25f});
  using HalfAway = fq::Int8ActPerTensorAffine::with_rounding<fq::RoundHalfAway>;
  auto h = per_tensor<HalfAway>(0.07f, -5);
  using Int16 = fq::QScheme<fq::IntRange<16, true>, fq::Symmetric>;
  auto w = per_tensor<Int16>(1e-3f, 0);
  const auto rf = fq::testing::check_quantizer(f), rh = fq::testing::check_quantizer(h),
             rw = fq::testing::check_quantizer(w);
  INFO(rf.report() << rh.report() << rw.report());
  CHECK(rf.passed());
  CHECK(rh.passed());
  CHECK(rw.passed());
  CHECK(fq::testing::check_gradients(f).passed());
}

TEST_CASE("check_quantizer passes a custom logarithmic quantizer", "[testing_kit]") {
  fq_test::LogQuantizer q(2.0f, -6);
  fq::testing::QuantizerCheckOptions opt;
  opt.grid = fq::testing::Grid::per_tensor(q.levels());
  opt.error_bound = fq::testing::ErrorBound::kBracketing;
  const auto r = fq::testing::check_quantizer(q, opt);
  INFO(r.report());
  CHECK(r.passed());
  // Round to nearest in the linear domain is a stronger claim it does not meet.
  opt.error_bound = fq::testing::ErrorBound::kHalfStep;
  CHECK(fq::testing::check_quantizer(q, opt).has_failure("error_bound"));
}

TEST_CASE("check_quantizer's default bound catches a floor-instead-of-round quantizer",
          "[testing_kit]") {
  // A user's quantizer that does not say how it rounds is held to round-to-nearest. (A scale
  // of 2^-5 makes every level exact, so that floor rounding is also idempotent.)
  fq_test::UserAffine good(0.03125f, 37, false), floor_bug(0.03125f, 37, true);
  const auto rg = fq::testing::check_quantizer(good);
  INFO(rg.report());
  CHECK(rg.passed());
  CHECK(rg.checked("error_bound") > 0);
  bool noted = false;
  for (const std::string& n : rg.notes()) noted = noted || n.find("kHalfStep") != std::string::npos;
  CHECK(noted);
  const auto rb = fq::testing::check_quantizer(floor_bug);
  CHECK_FALSE(rb.passed());
  REQUIRE(rb.has_failure("error_bound"));
  CHECK(rb.first_failure("error_bound")->message.find("the nearest level") != std::string::npos);
  // Stating the weaker bound, or declaring the rounding, accepts a deliberate floor quantizer.
  fq::testing::QuantizerCheckOptions opt;
  opt.error_bound = fq::testing::ErrorBound::kBracketing;
  CHECK(fq::testing::check_quantizer(floor_bug, opt).passed());
  fq_test::DeclaredFloor declared(0.03125f, 37);
  const auto rd = fq::testing::check_quantizer(declared);
  INFO(rd.report());
  CHECK(rd.passed());
  // fq's own floor scheme says so through its rounding policy.
  using Floor = fq::Uint8ActPerTensorAffine::with_rounding<fq::RoundFloor>;
  auto f = per_tensor<Floor>(0.03125f, 37);
  const auto rf = fq::testing::check_quantizer(f);
  INFO(rf.report());
  CHECK(rf.passed());
  opt.error_bound = fq::testing::ErrorBound::kHalfStep;
  CHECK(fq::testing::check_quantizer(f, opt).has_failure("error_bound"));
  // The logarithmic quantizer is not round-to-nearest on its grid: by default it fails, with
  // the bound stated (or declared) it passes.
  fq_test::LogQuantizer lq(2.0f, -6);
  fq::testing::QuantizerCheckOptions lopt;
  lopt.grid = fq::testing::Grid::per_tensor(lq.levels());
  CHECK(fq::testing::check_quantizer(lq, lopt).has_failure("error_bound"));
  fq_test::DeclaredLogQuantizer dl(2.0f, -6);
  const auto rl = fq::testing::check_quantizer(dl, lopt);
  INFO(rl.report());
  CHECK(rl.passed());
  fq::testing::GradientCheckOptions gopt;
  gopt.grid = lopt.grid;
  CHECK(fq::testing::check_gradients(dl, gopt).passed());
}

TEST_CASE("check_quantizer reports an output off the grid with its element", "[testing_kit]") {
  fq_test::OffGrid q;
  q.set_qparams(0.02f, 37);
  const auto r = fq::testing::check_quantizer(q);
  REQUIRE(r.has_failure("on_grid"));
  CHECK(mentions(r, "on_grid", 5));  // the first corrupted element
  for (const auto& f : r.failures())
    if (f.property == "on_grid") CHECK(f.index % 17 == 5);
  const auto* f = r.first_failure("on_grid");
  CHECK(f->actual != f->expected);
  CHECK(f->message.find("input") != std::string::npos);
}

TEST_CASE("check_quantizer reports a non-idempotent quantizer", "[testing_kit]") {
  fq_test::NonIdempotent q;
  q.set_qparams(0.05f, 0);
  const auto r = fq::testing::check_quantizer(q);
  REQUIRE(r.has_failure("idempotent"));
  const auto* f = r.first_failure("idempotent");
  CHECK(mentions(r, "idempotent", f->index));
  CHECK(f->expected != f->actual);
}

TEST_CASE("check_quantizer reports a per-channel quantizer that reads other channels",
          "[testing_kit]") {
  fq_test::LeakyChannels q(4);
  q.set_qparams(std::vector<float>{0.125f, 0.5f, 0.0625f, 1.0f}, std::vector<std::int32_t>(4, 0));
  const auto r = fq::testing::check_quantizer(q);
  INFO(r.report());
  REQUIRE(r.has_failure("channel_independence"));
  const auto* f = r.first_failure("channel_independence");
  CHECK(mentions(r, "channel_independence", f->index));
  CHECK(f->message.find("(channel " + std::to_string(f->channel) + ")") != std::string::npos);
  // Only that property is broken.
  CHECK(r.failure_count() == r.failure_count("channel_independence"));
  // The same quantizer checked as if per tensor has nothing to compare.
  fq::testing::QuantizerCheckOptions opt;
  opt.check_channel_independence = false;
  CHECK(fq::testing::check_quantizer(q, opt).passed());
}

TEST_CASE("check_quantizer reports setup problems instead of guessing", "[testing_kit]") {
  fq_test::LogQuantizer q(1.0f, -3);
  const auto r = fq::testing::check_quantizer(q);  // no grid given, none derivable
  CHECK(r.has_failure("setup"));
  fq::testing::QuantizerCheckOptions opt;
  opt.on_grid = [](double y, std::int64_t) {
    return y == 0.0 ||
           std::fabs(std::log2(std::fabs(y))) == std::floor(std::fabs(std::log2(std::fabs(y))));
  };
  const auto r2 = fq::testing::check_quantizer(q, opt);
  INFO(r2.report());
  CHECK(r2.passed());
  CHECK(r2.notes().size() == 1);
}

TEST_CASE("check_quantizer checks the documented NaN/Inf expectation", "[testing_kit]") {
  fq_test::NaNOut q;
  q.set_qparams(0.02f, 37);
  const auto r = fq::testing::check_quantizer(q);
  REQUIRE(r.has_failure("non_finite"));
  CHECK(mentions(r, "non_finite", 0));  // the NaN sits at element 0
  CHECK(r.failure_count() == 1);
  fq::testing::QuantizerCheckOptions opt;
  opt.non_finite = fq::testing::NonFinite::kNaNPropagates;
  CHECK(fq::testing::check_quantizer(q, opt).passed());
  // fq's own rule fails the NaN-propagating expectation.
  fq::FakeQuantizer<fq::Uint8ActPerTensorAffine> fq_q;
  fq_q.set_qparams(0.02f, 37);
  CHECK(fq::testing::check_quantizer(fq_q, opt).has_failure("non_finite"));
}

TEST_CASE("check_quantizer records an exception as a failure", "[testing_kit]") {
  fq_test::RejectsNaN q;
  q.set_qparams(0.02f, 37);
  const auto r = fq::testing::check_quantizer(q);
  REQUIRE(r.has_failure("exception"));
  CHECK(r.first_failure("exception")->message.find("RejectsNaN: non-finite input") !=
        std::string::npos);
  CHECK(r.checked("on_grid") > 0);  // the other properties still ran
}

TEST_CASE("A FakeQuantize module is checked with its observer disabled", "[testing_kit]") {
  fq::FakeQuantize<fq::Uint8ActPerTensorAffine, fq::MinMaxObserver> m;
  std::vector<float> calib{-1.0f, 3.0f}, out(2);
  m.forward(fq::TensorView<const float>(calib.data(), {2}), fq::TensorView<float>(out.data(), {2}));
  fq::testing::QuantizerCheckOptions opt;
  opt.grid = fq::testing::grid_of(m.quantizer());
  m.disable_observer();
  const auto r = fq::testing::check_quantizer(m, opt);
  INFO(r.report());
  CHECK(r.passed());
  // With the observer on, the parameters follow the data and the grid no longer holds.
  m.enable_observer();
  CHECK_FALSE(fq::testing::check_quantizer(m, opt).passed());
}

TEST_CASE("check_quantizer reports a decreasing quantizer as non-monotonic", "[testing_kit]") {
  fq_test::Decreasing q;
  q.set_qparams(0.05f, 0);
  const auto r = fq::testing::check_quantizer(q);
  REQUIRE(r.has_failure("monotonic"));
  const auto* f = r.first_failure("monotonic");
  CHECK(mentions(r, "monotonic", f->index));
  CHECK(f->actual < f->expected);
}
