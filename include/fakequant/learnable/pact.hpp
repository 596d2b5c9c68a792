// SPDX-License-Identifier: MIT
// fakequant/learnable/pact.hpp: PACT (Choi et al. 2018, arXiv:1805.06085) — activations
// clipped to a learned [0, alpha], then quantized unsigned on Bits bits.
//
// Forward   c = clamp(x, 0, alpha);  n = 2^Bits - 1;  s = f32(alpha / n)
//           y = clamp(rne(c * f32(1/s)), 0, n) * s
//           i.e. exactly fake_quantize_per_tensor(clamp(x, 0, alpha), s, 0, [0, n]) (ATen's
//           x * f32(1/s); distiller's round(c * n/alpha) / (n/alpha) differs by 1 ulp in ~4%).
// Backward  (straight-through through the rounding, as the paper)
//           dx     = dy * [0 < x < alpha]        (relu'(0) = 0; x = alpha goes to alpha)
//           dalpha = sum(dy * [x >= alpha]) + lambda * alpha
//           the last term is the gradient of the optional L2 penalty (lambda / 2) alpha^2.
// NaN x gives y = 0 and no gradient; +Inf gives y = alpha-level and sends dy to alpha.
// alpha must be finite and > 0 (ErrorCode::kInvalidScale otherwise), as must alpha / n.
// PACT has only the scalar kernel (auto-vectorised): Arch (fq::DefaultArch) names the
// instantiation for the TU's flags (simd/arch.hpp), and the Isa path is checked as for the
// other entry points (kAuto and kScalar run the same code).
//
// The static functions take alpha as an argument. A Pact object owns alpha, its gradient and
// lambda, and meets the quantizer protocol (quantizer/concept.hpp) for ops::fake_quant and the
// testing kit: forward(x, y, mask) writes y and the mask [0 < x < alpha] (where dx passes);
// backward(x, dy, mask, dx) runs forward_backward with a scratch y, writes dx and ADDS d alpha
// (lambda * alpha included, once per call) to alpha_grad(); visit_parameters(f) reports
// ("pact.alpha", alpha, alpha_grad) for the optimizer (fq::optim::parameters_of).
#ifndef FQ_LEARNABLE_PACT_HPP_
#define FQ_LEARNABLE_PACT_HPP_

#include <algorithm>  // min, max
#include <cmath>      // isfinite, isnan
#include <cstdint>    // int64_t, uint64_t
#include <limits>     // numeric_limits
#include <utility>    // forward
#include <vector>     // vector

#include <fakequant/base/state.hpp>
#include <fakequant/core/checks.hpp>
#include <fakequant/core/mask.hpp>
#include <fakequant/core/run_plan.hpp>
#include <fakequant/core/tensor_view.hpp>
#include <fakequant/scheme/numerics.hpp>
#include <fakequant/scheme/range.hpp>
#include <fakequant/simd/arch.hpp>

namespace fq {

namespace detail {
template <int Bits>
inline ElementParams<float> pact_params(float alpha, const char* where) {
  FQ_CHECK(std::isfinite(alpha) && alpha > 0.0f, ErrorCode::kInvalidScale,
           msg(where, ": alpha must be finite and > 0, got ", alpha));
  const QuantRange r = IntRange<Bits, false>::value();
  const float s = alpha / static_cast<float>(r.quant_max);
  check_scale(s, where);
  return make_element_params<TorchNumerics, float>(s, 0.0f, r);
}

FQ_INLINE float pact_clip(float x, float alpha) noexcept {
  return std::isnan(x) ? x : std::min(std::max(x, 0.0f), alpha);
}

/// A contiguous row-major view of x's shape over `buf` (resized): the scratch y of a
/// learnable quantizer's protocol backward, which runs its fused forward+backward.
inline TensorView<float> scratch_like(const TensorView<const float>& x, std::vector<float>& buf) {
  buf.resize(static_cast<std::size_t>(x.numel()));
  std::int64_t strides[kMaxRank] = {};
  std::int64_t step = 1;
  for (int d = x.rank() - 1; d >= 0; --d) {
    strides[d] = step;
    step *= x.size(d);
  }
  return TensorView<float>(buf.data(), x.rank(), x.shape().data(), strides);
}
}  // namespace detail

/// PACT on Bits-bit unsigned levels: the forward and the gradients of one call.
template <int Bits>
struct Pact {
  static_assert(Bits >= 2 && Bits <= 16, "Pact: Bits must be between 2 and 16.");
  static constexpr QuantRange range() noexcept { return IntRange<Bits, false>::value(); }

  /// A quantizer object (file comment) with clipping level alpha (finite, > 0; default 6, as
  /// ReLU6) and L2 weight l2_lambda (finite, >= 0); kInvalidScale / kInvalidArgument else.
  explicit Pact(float alpha = 6.0f, float l2_lambda = 0.0f) : l2_lambda_(l2_lambda) {
    set_alpha(alpha);
    FQ_CHECK(std::isfinite(l2_lambda) && l2_lambda >= 0.0f, ErrorCode::kInvalidArgument,
             detail::msg("Pact: l2_lambda must be finite and >= 0, got ", l2_lambda));
  }
  float alpha() const noexcept { return alpha_; }
  void set_alpha(float alpha) {
    (void)detail::pact_params<Bits>(alpha, "Pact::set_alpha");
    alpha_ = alpha;
  }
  /// The accumulated d alpha (backward adds to it; the optimizer's zero_grad clears it).
  float alpha_grad() const noexcept { return alpha_grad_; }
  float l2_lambda() const noexcept { return l2_lambda_; }

  /// The protocol's forward: y = PACT(x) with this alpha and, if mask is not null, the bits
  /// [0 < x < alpha] (row-major order), where the backward passes dy.
  template <class Arch = DefaultArch>
  void forward(TensorView<const float> x, TensorView<float> y, Mask* mask) const {
    forward<Arch>(x, y, alpha_);
    if (mask == nullptr) return;
    std::uint64_t* words = mask->prepare(x.rank(), x.shape(), detail::row_major_order());
    const std::int64_t n = x.numel();
    for (std::int64_t w = 0; w < (n + 63) / 64; ++w) words[w] = 0;
    std::int64_t index[kMaxRank] = {};
    for (std::int64_t i = 0; i < n; ++i) {
      const float v = *x.at(index);
      if (v > 0.0f && v < alpha_) words[i >> 6] |= std::uint64_t{1} << (i & 63);
      for (int d = x.rank() - 1; d >= 0; --d) {  // next row-major index
        if (++index[d] < x.size(d)) break;
        index[d] = 0;
      }
    }
  }

  /// The protocol's backward (file comment): dx, and d alpha added to alpha_grad(). The
  /// mask is not needed (forward_backward recomputes it from x).
  template <class Arch = DefaultArch>
  void backward(TensorView<const float> x, TensorView<const float> dy, const Mask& /*mask*/,
                TensorView<float> dx) {
    std::vector<float> y;
    alpha_grad_ +=
        forward_backward<Arch>(x, dy, detail::scratch_like(x, y), dx, alpha_, l2_lambda_);
  }

  /// The learnable parameter: f("pact.alpha", alpha, its gradient).
  template <class F>
  void visit_parameters(F&& f) {
    f("pact.alpha", TensorView<float>::vector(&alpha_, 1),
      TensorView<float>::vector(&alpha_grad_, 1));
  }

  /// The checkpoint state (base/state.hpp): alpha (finite, > 0, its scale normal); Bits and
  /// lambda must match. The gradient is not state (zero_grad clears it each step).
  template <class V>
  void visit_state(V& v) {
    v.kind("pact");
    v.config("bits", Bits);
    v.config("l2_lambda", l2_lambda_);
    v.state("alpha", alpha_,
            state_in(static_cast<double>(std::numeric_limits<float>::min()) *
                         static_cast<double>(range().quant_max),
                     static_cast<double>(std::numeric_limits<float>::max())));
  }

  /// The quantization scale PACT uses for alpha: f32(alpha / (2^Bits - 1)).
  static float scale(float alpha) { return detail::pact_params<Bits>(alpha, "Pact::scale").scale; }

  /// Forward only: y = quantize(clamp(x, 0, alpha)). y may be x.
  template <class Arch = DefaultArch, class X, class Y>
  static void forward(X&& x, Y&& y, float alpha, Isa path = Isa::kAuto) {
    constexpr const char* kWhere = "Pact::forward";
    (void)detail::use_simd_kernels<Arch>(path, kWhere);
    const TensorView<const float> xv = detail::as_view(std::forward<X>(x));
    const TensorView<float> yv = detail::as_view(std::forward<Y>(y));
    const detail::ElementParams<float> p = detail::pact_params<Bits>(alpha, kWhere);
    detail::check_output(xv, yv, kWhere);
    run<Arch, false>(xv, xv, yv, yv, p, alpha);
  }

  /// Fused forward+backward: writes y and dx, returns d alpha (including lambda * alpha).
  /// y may be x and dx may be dy.
  template <class Arch = DefaultArch, class X, class DY, class Y, class DX>
  static float forward_backward(X&& x, DY&& dy, Y&& y, DX&& dx, float alpha, float l2_lambda = 0.0f,
                                Isa path = Isa::kAuto) {
    constexpr const char* kWhere = "Pact::forward_backward";
    (void)detail::use_simd_kernels<Arch>(path, kWhere);
    const TensorView<const float> xv = detail::as_view(std::forward<X>(x));
    const TensorView<const float> gv = detail::as_view(std::forward<DY>(dy));
    const TensorView<float> yv = detail::as_view(std::forward<Y>(y));
    const TensorView<float> dxv = detail::as_view(std::forward<DX>(dx));
    const detail::ElementParams<float> p = detail::pact_params<Bits>(alpha, kWhere);
    FQ_CHECK(std::isfinite(l2_lambda) && l2_lambda >= 0.0f, ErrorCode::kInvalidArgument,
             detail::msg(kWhere, ": l2_lambda must be finite and >= 0, got ", l2_lambda));
    detail::check_output(xv, yv, kWhere);
    detail::check_output(gv, dxv, kWhere);
    detail::check_output(xv, dxv, kWhere);
    detail::check_output(gv, yv, kWhere);
    FQ_CHECK(yv.numel() == 0 || yv.data() != dxv.data(), ErrorCode::kInvalidLayout,
             detail::msg(kWhere, ": y and dx must be different tensors"));
    const double sum = run<Arch, true>(xv, gv, yv, dxv, p, alpha);
    return static_cast<float>(sum + static_cast<double>(l2_lambda) * static_cast<double>(alpha));
  }

 private:
  /// One pass over the runs; returns sum(dy * [x >= alpha]) when Backward.
  template <class Arch, bool Backward>
  static double run(const TensorView<const float>& x, const TensorView<const float>& g,
                    const TensorView<float>& y, const TensorView<float>& dx,
                    const detail::ElementParams<float>& p, float alpha) {
    double acc = 0.0;
    if (x.numel() == 0) return acc;
    const auto plan = detail::make_run_plan<4>(
        x.rank(), x.shape(), {&x.strides(), &g.strides(), &y.strides(), &dx.strides()},
        detail::order_by_strides(x.rank(), x.strides()), -1);
    const auto last = static_cast<std::size_t>(plan.nd - 1);
    const auto s0 = static_cast<std::ptrdiff_t>(plan.stride[0][last]);
    const auto s1 = static_cast<std::ptrdiff_t>(plan.stride[1][last]);
    const auto s2 = static_cast<std::ptrdiff_t>(plan.stride[2][last]);
    const auto s3 = static_cast<std::ptrdiff_t>(plan.stride[3][last]);
    detail::for_each_run(plan, [&](const auto& off, std::int64_t n, std::int64_t, std::int64_t) {
      const float* xp = x.data() + off[0];
      const float* gp = g.data() + off[1];
      float* yp = y.data() + off[2];
      float* dp = dx.data() + off[3];
      for (std::int64_t i = 0; i < n; ++i) {
        const float xe = xp[i * s0];
        bool in = false;
        const float ye =
            detail::fake_quant_element<TorchNumerics>(detail::pact_clip(xe, alpha), p, in);
        if constexpr (Backward) {
          const float ge = gp[i * s1];
          dp[i * s3] = ge * ((xe > 0.0f && xe < alpha) ? 1.0f : 0.0f);
          if (xe >= alpha) acc += static_cast<double>(ge);
        }
        yp[i * s2] = ye;
      }
    });
    return acc;
  }

  float alpha_ = 6.0f;
  float alpha_grad_ = 0.0f;
  float l2_lambda_ = 0.0f;
};

}  // namespace fq

#endif  // FQ_LEARNABLE_PACT_HPP_
