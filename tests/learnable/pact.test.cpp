// SPDX-License-Identifier: MIT
// PACT (learnable/pact.hpp): the forward equals fake-quantizing clamp(x, 0, alpha); dx and
// d alpha against the paper's formulas and finite differences of the clipped surrogate; the
// L2 penalty's gradient; bad alpha.
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include <fakequant/kernels/fake_quantize.hpp>
#include <fakequant/learnable/learnable.hpp>

#include "catch.hpp"
#include "test_util.hpp"

namespace {

using fq::TensorView;
using fq_test::bits_of;

using fq_test::kInf;
using fq_test::kNaN;

using fq_test::error_code_of;

std::vector<float> randn(std::size_t n, float mean, float sigma, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(mean, sigma);
  std::vector<float> v(n);
  for (auto& e : v) e = nd(rng);
  return v;
}

}  // namespace

TEST_CASE("pact: forward is fake_quantize(clamp(x, 0, alpha)) on 2^Bits - 1 levels", "[pact]") {
  const std::size_t n = 3001;
  auto x = randn(n, 1.0f, 2.0f, 1);
  x[0] = kNaN;
  x[1] = kInf;
  x[2] = -kInf;
  x[3] = 0.0f;
  x[4] = 4.0f;  // = alpha
  const float alpha = 4.0f;
  const auto ni = static_cast<std::int64_t>(n);
  std::vector<float> y(n), clipped(n), want(n);
  fq::Pact<4>::forward(TensorView<const float>(x.data(), {ni}), TensorView<float>(y.data(), {ni}),
                       alpha);
  for (std::size_t i = 0; i < n; ++i)
    clipped[i] = std::isnan(x[i]) ? x[i] : std::fmin(std::fmax(x[i], 0.0f), alpha);
  const float s = alpha / 15.0f;
  CHECK(fq::Pact<4>::scale(alpha) == s);
  fq::fake_quantize_per_tensor(TensorView<const float>(clipped.data(), {ni}),
                               TensorView<float>(want.data(), {ni}), nullptr, s, 0, {0, 15});
  CHECK(fq_test::first_bit_mismatch(y, want) == -1);
  CHECK(y[0] == 0.0f);   // NaN -> 0
  CHECK(y[1] == alpha);  // +Inf -> alpha
  CHECK(y[2] == 0.0f);
  for (float v : y) REQUIRE((v >= 0.0f && v <= alpha));
  // forward_backward writes the same y; in place works.
  std::vector<float> y2(n), dx(n), dy(n, 1.0f), xi = x;
  fq::Pact<4>::forward_backward(
      TensorView<const float>(x.data(), {ni}), TensorView<const float>(dy.data(), {ni}),
      TensorView<float>(y2.data(), {ni}), TensorView<float>(dx.data(), {ni}), alpha);
  CHECK(fq_test::first_bit_mismatch(y2, want) == -1);
  fq::Pact<4>::forward(TensorView<const float>(xi.data(), {ni}), TensorView<float>(xi.data(), {ni}),
                       alpha);
  CHECK(fq_test::first_bit_mismatch(xi, want) == -1);
}

TEST_CASE("pact: gradients follow Choi et al. 2018, with the L2 penalty", "[pact]") {
  const std::size_t n = 5000;
  const auto x = randn(n, 1.0f, 2.0f, 2), dy = randn(n, 0.0f, 1.0f, 3);
  const float alpha = 2.5f, lambda = 0.01f;
  const auto ni = static_cast<std::int64_t>(n);
  std::vector<float> y(n), dx(n);
  const float da = fq::Pact<8>::forward_backward(
      TensorView<const float>(x.data(), {ni}), TensorView<const float>(dy.data(), {ni}),
      TensorView<float>(y.data(), {ni}), TensorView<float>(dx.data(), {ni}), alpha, lambda);
  double want_da = double(lambda) * alpha;
  int above = 0, inside = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const bool in = x[i] > 0.0f && x[i] < alpha;
    REQUIRE(bits_of(dx[i]) == bits_of(dy[i] * (in ? 1.0f : 0.0f)));
    if (x[i] >= alpha) {
      want_da += dy[i];
      ++above;
    }
    inside += in ? 1 : 0;
  }
  CHECK(above > 100);
  CHECK(inside > 100);
  CHECK(da == Approx(want_da).epsilon(1e-6));
  // Without the penalty, d alpha is exactly the sum over x >= alpha.
  const float da0 = fq::Pact<8>::forward_backward(
      TensorView<const float>(x.data(), {ni}), TensorView<const float>(dy.data(), {ni}),
      TensorView<float>(y.data(), {ni}), TensorView<float>(dx.data(), {ni}), alpha);
  CHECK(double(da) - double(da0) == Approx(double(lambda) * alpha).epsilon(1e-4));
}

TEST_CASE("pact: finite differences of the clipped surrogate away from the kinks", "[pact]") {
  // PACT's STE treats rounding as identity: the gradients are those of clamp(x, 0, alpha),
  // whose finite differences (in x and in alpha) are exact away from x = 0 and x = alpha.
  const float alpha = 1.75f;
  auto x = randn(2000, 0.8f, 1.5f, 4);
  std::vector<float> keep;
  for (float v : x)
    if (std::fabs(v) > 1e-2f && std::fabs(v - alpha) > 1e-2f) keep.push_back(v);
  const auto ni = static_cast<std::int64_t>(keep.size());
  std::vector<float> y(keep.size()), dx(keep.size());
  auto clip = [](double v, double a) { return std::fmin(std::fmax(v, 0.0), a); };
  const double h = 1e-4;
  for (std::size_t i = 0; i < keep.size(); ++i) {
    const float one = 1.0f;
    float yi, dxi;
    const float da = fq::Pact<3>::forward_backward(
        TensorView<const float>(&keep[i], {1}), TensorView<const float>(&one, {1}),
        TensorView<float>(&yi, {1}), TensorView<float>(&dxi, {1}), alpha);
    const double v = keep[i];
    const double fdx = (clip(v + h, alpha) - clip(v - h, alpha)) / (2 * h);
    const double fda = (clip(v, alpha + h) - clip(v, alpha - h)) / (2 * h);
    INFO("x " << v);
    REQUIRE(std::fabs(fdx - dxi) < 1e-9);
    REQUIRE(std::fabs(fda - da) < 1e-9);
  }
  (void)ni;
}

TEST_CASE("pact: bad alpha and bad input get clear errors", "[pact][errors]") {
  using E = fq::ErrorCode;
  std::vector<float> x(8, 1.0f), dy(8, 1.0f), y(8), dx(8);
  const TensorView<const float> xv(x.data(), {8}), gv(dy.data(), {8});
  const TensorView<float> yv(y.data(), {8}), dxv(dx.data(), {8});
  for (float bad : {0.0f, -1.0f, kNaN, kInf, -kInf}) {
    CHECK(error_code_of([&] { fq::Pact<8>::forward(xv, yv, bad); }) == E::kInvalidScale);
    CHECK(error_code_of([&] { fq::Pact<8>::forward_backward(xv, gv, yv, dxv, bad); }) ==
          E::kInvalidScale);
  }
  CHECK(error_code_of([&] { fq::Pact<8>::forward(xv, yv, 1e-43f); }) ==
        E::kInvalidScale);  // alpha/n
  CHECK(error_code_of([&] { fq::Pact<8>::forward_backward(xv, gv, yv, dxv, 1.0f, -1.0f); }) ==
        E::kInvalidArgument);
  CHECK(error_code_of([&] { fq::Pact<8>::forward_backward(xv, gv, yv, yv, 1.0f); }) ==
        E::kInvalidLayout);
  CHECK(error_code_of([&] {
          fq::Pact<8>::forward_backward(xv, TensorView<const float>(dy.data(), {2, 4}), yv, dxv,
                                        1.0f);
        }) == E::kShapeMismatch);
  // Empty input: a no-op whose d alpha is only the penalty's.
  const float da = fq::Pact<8>::forward_backward(
      TensorView<const float>(nullptr, {0}), TensorView<const float>(nullptr, {0}),
      TensorView<float>(nullptr, {0}), TensorView<float>(nullptr, {0}), 2.0f, 0.5f);
  CHECK(da == 1.0f);
}
