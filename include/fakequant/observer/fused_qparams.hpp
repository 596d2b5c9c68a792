// SPDX-License-Identifier: MIT
// fakequant/observer/fused_qparams.hpp: the qparams chooser of PyTorch's fused QAT module
// (FusedMovingAvgObsFakeQuantize -> torch.fused_moving_avg_obs_fake_quant, ATen
// choose_qparams_fake_quant -> quant_utils::ChooseQuantizationParams), which is what the
// default QAT qconfig really runs. It differs from the observers' rule (scheme/qparams.hpp):
//   Symmetric (only when min < 0 < max; otherwise it falls back to affine):
//     ms = max(f32(|min| / 128), f32(max / 127))   (int8: /128 and /127, not /127.5; in general
//          /((qmax-qmin)/2 + 1) and /((qmax-qmin)/2), integer division), in double
//     min = f32(-128 ms), max = f32(127 ms);  z = rne((qmin + qmax) / 2)
//   Then for both (min = min(min, 0), max = max(max, 0)):
//     s = (double(max) - min) / (qmax - qmin);  s = 0.1 if f32(s) == 0 or 1/f32(s) is Inf
//     s < 6.1e-5f: s = 6.1e-5f and [min, max] is widened by the same factor
//     z (affine) = rne of whichever of qmin - min/s, qmax - max/s has the smaller error
//                  |qmin| - |min/s| vs |qmax| - |max/s|, clamped to [qmin, qmax]
//     scale = f32(s)
// The running min/max update of the fused op is MovingAverageMinMaxObserver's (c = 0.01).
// Extreme ranges are clipped to +-FLT_MAX / 4 first, as in scheme/qparams.hpp.
// PyTorch fake-quantizes with whatever zero point this picks (z = -128 for one-sided int8
// "symmetric" data), so these choosers need an Affine scheme: the mapping is the chooser's.
#ifndef FQ_OBSERVER_FUSED_QPARAMS_HPP_
#define FQ_OBSERVER_FUSED_QPARAMS_HPP_

#include <algorithm>    // min, max
#include <cmath>        // fabs, isinf, nearbyint
#include <cstdint>      // int64_t
#include <type_traits>  // is_same

#include <fakequant/observer/minmax_observer.hpp>
#include <fakequant/scheme/qparams.hpp>

namespace fq {

/// ChooseQuantizationParams' floor on the scale (float 6.1e-5, about float16's smallest
/// normal).
inline constexpr float kFusedMinScale = 6.1e-5f;

/// PyTorch's fused-module qparams (see the file comment), as an observer QParamsPolicy.
/// @tparam SymmetricQuant the fused op's symmetric_quant flag (true for the default QAT
/// qconfig's per-channel symmetric weights, false for its affine activations).
template <bool SymmetricQuant = false>
struct FusedQParams {
  static constexpr bool kSymmetricQuant = SymmetricQuant;

  template <class Scheme>
  static QParams<typename Scheme::zero_point_type> compute(float min_val, float max_val,
                                                           QuantRange range) {
    using Z = typename Scheme::zero_point_type;
    static_assert(!Scheme::mapping::kSymmetric,
                  "FusedQParams: PyTorch's fused chooser falls back to an affine zero point for "
                  "one-sided data, so use it with an Affine scheme (choose symmetric_quant with "
                  "FusedQParams<true>).");
    static_assert(!std::is_same<Z, float>::value,
                  "FusedQParams: the fused chooser produces an integer zero point; use an "
                  "IntegerZeroPoint scheme.");
    constexpr const char* kWhere = "FusedQParams";
    check_range(range, kWhere);
    if (std::isinf(min_val) && min_val > 0 && std::isinf(max_val) && max_val < 0)
      return {1.0f, Z(0)};  // nothing observed yet: the observers' convention
    // Finite, ordered, clipped to +-kMaxObservedMagnitude (scheme/qparams.hpp): the scale and
    // the widened symmetric range (|min| * 128 / 127) stay finite floats.
    detail::prepare_observed_range(min_val, max_val, range, kWhere);
    const std::int64_t qmin = range.quant_min, qmax = range.quant_max;
    float mn = min_val, mx = max_val;
    const bool sym = SymmetricQuant && mn < 0.0f && mx > 0.0f;
    if (sym) {
      const std::int64_t sym_qmin = -((qmax - qmin) / 2 + 1), sym_qmax = (qmax - qmin) / 2;
      // float / int in float, then the larger of the two widened to double, as ATen.
      const double ms = static_cast<double>(std::max(std::fabs(mn / static_cast<float>(sym_qmin)),
                                                     std::fabs(mx / static_cast<float>(sym_qmax))));
      mn = static_cast<float>(ms * static_cast<double>(sym_qmin));
      mx = static_cast<float>(ms * static_cast<double>(sym_qmax));
    }
    mn = std::min(mn, 0.0f);
    mx = std::max(mx, 0.0f);
    const auto span = static_cast<double>(qmax - qmin);
    double s = (static_cast<double>(mx) - static_cast<double>(mn)) / span;
    if (static_cast<float>(s) == 0.0f || std::isinf(1.0f / static_cast<float>(s))) s = 0.1;
    if (s < static_cast<double>(kFusedMinScale)) {
      const auto org = static_cast<float>(s);
      s = static_cast<double>(kFusedMinScale);
      if (mn == 0.0f) {
        mx = kFusedMinScale * static_cast<float>(qmax - qmin);
      } else if (mx == 0.0f) {
        mn = -kFusedMinScale * static_cast<float>(qmax - qmin);
      } else {
        const float amplifier = kFusedMinScale / org;
        mn *= amplifier;
        mx *= amplifier;
      }
    }
    const double lo = static_cast<double>(mn) / s, hi = static_cast<double>(mx) / s;
    const double z_from_min = static_cast<double>(qmin) - lo;
    const double z_from_max = static_cast<double>(qmax) - hi;
    const double err_min = std::fabs(static_cast<double>(qmin)) - std::fabs(lo);
    const double err_max = std::fabs(static_cast<double>(qmax)) - std::fabs(hi);
    double z0 = err_min < err_max ? z_from_min : z_from_max;
    if (sym) z0 = static_cast<double>(qmin + qmax) / 2.0;
    std::int64_t z;
    if (z0 < static_cast<double>(qmin))
      z = qmin;
    else if (z0 > static_cast<double>(qmax))
      z = qmax;
    else
      z = static_cast<std::int64_t>(std::nearbyint(z0));
    return {static_cast<float>(s), static_cast<Z>(z)};
  }
};

/// symmetric_quant = false (the default QAT qconfig's activations).
using FusedAffineQParams = FusedQParams<false>;
/// symmetric_quant = true (the default QAT qconfig's weights).
using FusedSymmetricQParams = FusedQParams<true>;

/// The observer half of FusedMovingAvgObsFakeQuantize (per tensor): moving-average min/max
/// with the fused chooser. Use with an Affine scheme in fq::FakeQuantize.
template <bool SymmetricQuant = false>
using FusedMovingAverageMinMaxObserver =
    MinMaxObserverBase<MovingAverageUpdate, false, FusedQParams<SymmetricQuant>>;
/// Per channel (PyTorch's fused op supports axis 0 only; fakequant any axis).
template <bool SymmetricQuant = false>
using FusedMovingAveragePerChannelMinMaxObserver =
    MinMaxObserverBase<MovingAverageUpdate, true, FusedQParams<SymmetricQuant>>;

}  // namespace fq

#endif  // FQ_OBSERVER_FUSED_QPARAMS_HPP_
