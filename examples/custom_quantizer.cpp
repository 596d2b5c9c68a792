// SPDX-License-Identifier: MIT
// examples/custom_quantizer.cpp: write your own quantizer and unit-test it with fakequant's
// testing kit (no Catch2 needed; tests with Catch2 use <fakequant/testing/catch2.hpp>).
//
// The quantizer: power-of-two levels (shift-only hardware), 0 and +-scale * 2^k for k in
// [kmin, 0], nearest in the log domain; a masked straight-through gradient. The kit checks
// its forward (on the grid, bracketing error — stated, since the default is round to nearest —
// clamping, mask, monotonic, idempotent, NaN/Inf) and its gradient (finite differences away
// from rounding boundaries), then shows that it catches the same quantizer with a gradient
// scaled by 2. Exit status 0 = all as expected.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <vector>

#include <fakequant/testing/testing.hpp>

namespace {

class Log2Quantizer {
 public:
  Log2Quantizer(float scale, int kmin) : scale_(scale), kmin_(kmin) {}

  // The concept (fakequant/quantizer/concept.hpp): forward(x, y, mask) and
  // backward(dy, mask, dx) over fq::TensorView.
  void forward(fq::TensorView<const float> x, fq::TensorView<float> y, fq::Mask* mask) const {
    fq::testing::elementwise_forward(x, y, mask, [&](float v, const std::int64_t*) {
      return fq::testing::Quantized{level(v), std::fabs(v) <= scale_};  // NaN: mask 0
    });
  }
  void backward(fq::TensorView<const float> dy, const fq::Mask& mask,
                fq::TensorView<float> dx) const {
    for (std::int64_t i = 0; i < dy.numel(); ++i)  // the kit's tensors are contiguous vectors
      dx.data()[i] = mask.test_linear(i) ? gradient_gain_ * dy.data()[i] : 0.0f;
  }

  /// Every value the forward may produce.
  std::vector<double> levels() const {
    std::vector<double> lv{0.0};
    for (int k = kmin_; k <= 0; ++k) {
      lv.push_back(std::ldexp(double{scale_}, k));
      lv.push_back(-std::ldexp(double{scale_}, k));
    }
    return lv;
  }
  void break_gradient() { gradient_gain_ = 2.0f; }

 private:
  float level(float v) const {
    if (std::isnan(v)) return 0.0f;
    const float a = std::fmin(std::fabs(v) / scale_, 1.0f);  // +-Inf clamp to +-scale
    if (a < std::ldexp(0.5f, kmin_)) return 0.0f;            // below half the smallest level
    int e;
    const float m = std::frexp(a, &e);    // a = m * 2^e, m in [0.5, 1)
    int k = m > 0.70710678f ? e : e - 1;  // nearest power of two in the log domain
    if (k < kmin_) k = kmin_;
    const float out = std::ldexp(scale_, k);
    return v < 0 ? -out : out;
  }

  float scale_;
  int kmin_;
  float gradient_gain_ = 1.0f;
};

static_assert(fq::testing::is_quantizer_v<Log2Quantizer>,
              "Log2Quantizer meets the testing kit's quantizer concept");

}  // namespace

int main() {
  Log2Quantizer q(/*scale=*/4.0f, /*kmin=*/-7);
  const fq::testing::Grid grid = fq::testing::Grid::per_tensor(q.levels());

  fq::testing::QuantizerCheckOptions fwd;
  fwd.grid = grid;
  // Log-domain rounding is not nearest on the grid: state the bracketing bound (the default,
  // round to nearest, would reject it; or declare kRoundsToNearest = false in the class).
  fwd.error_bound = fq::testing::ErrorBound::kBracketing;
  const fq::testing::CheckResult forward = fq::testing::check_quantizer(q, fwd);
  std::printf("forward properties of Log2Quantizer:\n%s\n", forward.report().c_str());

  fq::testing::GradientCheckOptions grad;
  grad.grid = grid;
  grad.error_bound = fq::testing::ErrorBound::kBracketing;
  const fq::testing::CheckResult gradient = fq::testing::check_gradients(q, grad);
  std::printf("gradient of Log2Quantizer:\n%s\n", gradient.report().c_str());

  Log2Quantizer broken = q;
  broken.break_gradient();
  const fq::testing::CheckResult caught = fq::testing::check_gradients(broken, grad);
  std::printf("the same with its gradient scaled by 2 (must fail):\n%s\n",
              caught.report(3).c_str());

  const bool ok = forward.passed() && gradient.passed() && caught.has_failure("gradient_dx");
  std::printf("%s\n", ok ? "custom_quantizer: OK" : "custom_quantizer: UNEXPECTED RESULT");
  return ok ? 0 : 1;
}
