// SPDX-License-Identifier: MIT
// fakequant/testing/formulas.hpp: analytic parameter gradients for check_gradients — the
// STE, LSQ and PACT formulas, per element of L = sum(dy * y).
//
// With v = x * f32(1/s) in float32 (as fq's kernels) and the level range shifted by the
// zero point z (Qn = quant_min - z, Qp = quant_max - z; pass the integer z the forward uses),
// the LSQ paper (Esser et al. 2020) decides the clipping on v, before rounding:
//   d y / d s = Qn if v < Qn,  Qp if v > Qp,  rne(v) - v otherwise           (times g)
//   d y / d z = -s if v < Qn or v > Qp,  0 otherwise  ((c - z) * s with c clamped)
// (at v = Qn or Qp exactly both forms give the same y; these count them as in range, as
// fakequant's LsqPaper mode does).
// where g is the gradient scale (1/sqrt(N * Qp) in the paper, 1/sqrt(numel * quant_max) in
// PyTorch's _LearnableFakeQuantize, or 1). PyTorch 1.13's learnable fake-quant decides the
// clipping after rounding and rounds z differently in its backward (pins P7-P9 of the
// reference notes): a quantizer in that mode needs its own per_element_formula.
// PACT (Choi et al. 2018): y = quantize(clamp(x, 0, alpha)), d y / d alpha = [x >= alpha].
// No learnable parameter: ste_none() (the gradient must be 0).
#ifndef FQ_TESTING_FORMULAS_HPP_
#define FQ_TESTING_FORMULAS_HPP_

#include <cmath>    // nearbyint
#include <cstdint>  // int64_t
#include <utility>  // move
#include <vector>   // vector

#include <fakequant/scheme/range.hpp>
#include <fakequant/testing/check_gradients.hpp>

namespace fq {
namespace testing {
namespace formulas {

/// The parameter must receive no gradient.
inline ParamFormula ste_none() {
  return per_element_formula([](float, float, std::int64_t) { return 0.0; },
                             "no gradient (STE with a fixed parameter)");
}

/// LSQ d/ds, paper form, one scale and zero point per channel (vectors of length 1 for a
/// per-tensor quantizer), times grad_scale. Rounding: ties to even.
inline ParamFormula lsq_scale(std::vector<float> scale, std::vector<double> zero_point,
                              QuantRange range, double grad_scale = 1.0) {
  return per_element_formula(
      [scale = std::move(scale), zero_point = std::move(zero_point), range, grad_scale](
          float x, float dy, std::int64_t c) {
        const auto k = static_cast<std::size_t>(scale.size() == 1 ? 0 : c);
        const double z = zero_point[k];
        const double qn = static_cast<double>(range.quant_min) - z;
        const double qp = static_cast<double>(range.quant_max) - z;
        const float vf = x * (1.0f / scale[k]);
        const double v = static_cast<double>(vf);
        const double d = v < qn ? qn : v > qp ? qp : static_cast<double>(std::nearbyint(vf) - vf);
        return static_cast<double>(dy) * d * grad_scale;
      },
      "the LSQ scale gradient (paper form)");
}

/// LSQ+ d/dz for y = (clamp(round(x/s) + z) - z) * s, paper clipping, times grad_scale.
inline ParamFormula lsq_zero_point(std::vector<float> scale, std::vector<double> zero_point,
                                   QuantRange range, double grad_scale = 1.0) {
  return per_element_formula(
      [scale = std::move(scale), zero_point = std::move(zero_point), range, grad_scale](
          float x, float dy, std::int64_t c) {
        const auto k = static_cast<std::size_t>(scale.size() == 1 ? 0 : c);
        const double s = scale[k], z = zero_point[k];
        const double v = static_cast<double>(x * (1.0f / scale[k]));
        const bool clipped = v < static_cast<double>(range.quant_min) - z ||
                             v > static_cast<double>(range.quant_max) - z;
        return clipped ? -static_cast<double>(dy) * s * grad_scale : 0.0;
      },
      "the LSQ zero-point gradient (paper form)");
}

/// PACT d/dalpha: dy where x >= alpha (one alpha per channel, or one).
inline ParamFormula pact_alpha(std::vector<float> alpha) {
  return per_element_formula(
      [alpha = std::move(alpha)](float x, float dy, std::int64_t c) {
        const auto k = static_cast<std::size_t>(alpha.size() == 1 ? 0 : c);
        return x >= alpha[k] ? static_cast<double>(dy) : 0.0;
      },
      "the PACT clipping gradient");
}

}  // namespace formulas
}  // namespace testing
}  // namespace fq

#endif  // FQ_TESTING_FORMULAS_HPP_
