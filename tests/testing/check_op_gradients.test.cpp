// SPDX-License-Identifier: MIT
// The testing kit's op gradient checker (testing/check_op_gradients.hpp): passes custom ops
// with correct gradients, reports a wrong one with its input and element, and refuses bad
// settings.
#include <cmath>
#include <cstdint>
#include <vector>

#include <fakequant/tape/custom_op.hpp>
#include <fakequant/testing/check_op_gradients.hpp>

#include "catch.hpp"

using fq::Tape;
using fq::Var;
using fq::testing::OpInput;

namespace {
/// y = a ⊙ b + sin(a), as a custom op whose gradient of b is scaled by `b_factor` (1: right).
Var product_sin(Tape& t, const Var& a, const Var& b, float b_factor) {
  return fq::custom_op(
      t, {a, b}, a.shape(),
      [&](float* y) {
        for (std::int64_t i = 0; i < a.numel(); ++i)
          y[i] = a.value()[i] * b.value()[i] + std::sin(a.value()[i]);
      },
      [a, b, b_factor](const float*, const float* dy) {
        for (std::int64_t i = 0; i < a.numel(); ++i) {
          if (a.grad()) a.grad()[i] += dy[i] * (b.value()[i] + std::cos(a.value()[i]));
          if (b.grad()) b.grad()[i] += b_factor * dy[i] * a.value()[i];
        }
      });
}
}  // namespace

TEST_CASE("check_op_gradients passes a custom op with the right gradient", "[testing_kit]") {
  std::vector<OpInput> in{{{3, 4}, 1}, {{3, 4}, 2}};
  const auto r = fq::testing::check_op_gradients(
      in, [](Tape& t, std::vector<Var>& v) { return product_sin(t, v[0], v[1], 1.0f); });
  INFO(r.report());
  CHECK(r.passed());
  CHECK(r.checked("op_gradient") == 24);
  // The analytic gradient is left in the inputs: d(Σ y·r)/db = r ⊙ a, non-zero somewhere.
  bool any = false;
  for (float g : in[1].grad) any = any || g != 0.0f;
  CHECK(any);
}

TEST_CASE("check_op_gradients names the input and element of a wrong gradient", "[testing_kit]") {
  std::vector<OpInput> in{{{2, 3}, 3}, OpInput({2, 3}, {0.5f, -0.25f, 1.0f, 0.0f, 2.0f, -1.0f})};
  const auto r = fq::testing::check_op_gradients(
      in, [](Tape& t, std::vector<Var>& v) { return product_sin(t, v[0], v[1], 1.25f); });
  CHECK_FALSE(r.passed());
  CHECK(r.failure_count("op_gradient") >= 5);  // every b element with a = x0 not tiny
  const fq::testing::Failure* f = r.first_failure("op_gradient");
  REQUIRE(f != nullptr);
  CHECK(f->channel == 1);  // the input index: b, not a
  CHECK(f->message.find("input 1 element") != std::string::npos);
  // The inputs are restored after the perturbations.
  CHECK(in[1].value[4] == 2.0f);
}

TEST_CASE("check_op_gradients: a loose tolerance passes what a tight one fails", "[testing_kit]") {
  std::vector<OpInput> in{{{4}, 5}, {{4}, 6}};
  auto op = [](Tape& t, std::vector<Var>& v) { return product_sin(t, v[0], v[1], 1.001f); };
  fq::testing::OpGradientOptions tight;
  tight.tolerance = 1e-5;
  CHECK_FALSE(fq::testing::check_op_gradients(in, op, tight).passed());
  fq::testing::OpGradientOptions loose;
  loose.tolerance = 1e-2;
  CHECK(fq::testing::check_op_gradients(in, op, loose).passed());
}

TEST_CASE("check_op_gradients refuses bad settings and inputs", "[testing_kit]") {
  std::vector<OpInput> none;
  auto op = [](Tape& t, std::vector<Var>& v) { return product_sin(t, v[0], v[0], 1.0f); };
  CHECK_THROWS_AS(fq::testing::check_op_gradients(none, op), fq::Error);
  std::vector<OpInput> in{{{2}, 1}};
  fq::testing::OpGradientOptions bad;
  bad.step = 0.0f;
  CHECK_THROWS_AS(fq::testing::check_op_gradients(in, op, bad), fq::Error);
  CHECK_THROWS_AS(OpInput({2, 2}, std::vector<float>{1.0f, 2.0f}), fq::Error);
}

namespace {
/// y = 3·x as a custom op whose backward claims x's gradient (tape/grad_state.hpp). Bug 0:
/// none; 1: leaves element 1 unwritten when it stores; 2: stores even when it must add.
Var triple_claiming(Tape& t, const Var& x, int bug) {
  return fq::custom_op(
      t, {x}, x.shape(),
      [&](float* y) {
        for (std::int64_t i = 0; i < x.numel(); ++i) y[i] = 3.0f * x.value()[i];
      },
      [x, bug](const float*, const float* dy) {
        const fq::GradWrite dx = x.claim_grad();
        for (std::int64_t i = 0; i < x.numel(); ++i) {
          if (dx.overwrite && bug == 1 && i == 1) continue;
          if (dx.overwrite || bug == 2)
            dx.data[i] = 3.0f * dy[i];
          else
            dx.data[i] += 3.0f * dy[i];
        }
      });
}
}  // namespace

TEST_CASE(
    "check_first_writer: an op that claims a gradient must write it whole and add after "
    "another writer",
    "[testing_kit]") {
  for (int bug : {0, 1, 2}) {
    INFO("bug " << bug);
    std::vector<OpInput> in{{{2, 5}, 4}};
    const auto build = [bug](Tape& t, std::vector<Var>& v) {
      return triple_claiming(t, v[0], bug);
    };
    const auto r = fq::testing::check_first_writer(in, build);
    INFO(r.report());
    CHECK(r.checked("op_gradient_first_writer") == 20);  // two rounds of 10
    CHECK(r.passed() == (bug == 0));
    if (bug == 1) CHECK(r.failure_count("op_gradient_first_writer") == 1);   // element 1: NaN
    if (bug == 2) CHECK(r.failure_count("op_gradient_first_writer") == 10);  // 0.5 lost
    // check_op_gradients runs the same comparison (the op is linear: differences are exact).
    const auto g = fq::testing::check_op_gradients(in, build);
    CHECK(g.passed() == (bug == 0));
    CHECK(g.failure_count("op_gradient") == 0);
  }
}
